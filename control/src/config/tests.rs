//! The configuration contract's tests: the sample files, a table of bad
//! configurations with their exact error, the round trip through
//! [`Config::to_toml`], and property tests over arbitrary and mutated text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use dataplane::tables::{L4Proto, Scheduler, ServiceKey};
use proptest::prelude::*;

use super::*;

const SEED_LAB: &str = include_str!("../../../configs/seed-lab.toml");
const SINGLE_LB: &str = include_str!("../../../configs/single-lb.toml");

/// A service on lines 1-3.
const VS: &str = "[[virtual_server]]\nvip = \"192.168.10.110\"\nport = 80\n";
/// A real server (two lines) to follow [`VS`].
const RS: &str = "[[virtual_server.real_server]]\nip = \"192.168.10.103\"\n";
/// A VRRP instance on lines 1-4.
const VRRP: &str =
    "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n";
/// Names the interface; goes last so that it moves no line.
const DP: &str = "[dataplane]\ninterface = \"eth0\"\n";

fn cat(parts: &[&str]) -> String {
    parts.concat()
}

#[test]
fn seed_lab_is_the_seed() {
    let config = parse(SEED_LAB, "seed-lab.toml").unwrap();
    let [vi] = config.vrrp_instances.as_slice() else { panic!("one vrrp_instance") };
    assert_eq!(vi.name, "VI_1");
    assert_eq!(vi.state, VrrpState::Backup);
    assert_eq!(vi.interface, "eth0");
    assert_eq!((vi.virtual_router_id, vi.priority), (51, 120));
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert_eq!(vi.auth_pass.as_deref(), Some("1111"));
    let vip = Ipv4Addr::new(192, 168, 10, 110);
    assert_eq!(vi.virtual_ipaddress, vec![Ipv4Net { addr: vip, prefix_len: 32 }]);

    let [vs] = config.virtual_servers.as_slice() else { panic!("one virtual_server") };
    assert_eq!(vs.key(), ServiceKey { vip, port: 80, proto: L4Proto::Tcp });
    assert_eq!(vs.lvs_sched, Scheduler::Wrr);
    assert_eq!(vs.delay_loop, Duration::from_secs(3));
    let ips: Vec<Ipv4Addr> = vs.real_servers.iter().map(|r| r.ip).collect();
    assert_eq!(ips, [Ipv4Addr::new(192, 168, 10, 103), Ipv4Addr::new(192, 168, 10, 104)]);
    for rs in &vs.real_servers {
        assert_eq!((rs.port, rs.weight, rs.inhibit_on_failure), (80, 1, true));
        assert!(rs.tcp_check.is_none());
        let http = rs.http_get.as_ref().expect("HTTP_GET");
        assert_eq!((http.connect_port, http.connect_timeout), (80, Duration::from_secs(3)));
        let [url] = http.urls.as_slice() else { panic!("one url") };
        assert_eq!((url.path.as_str(), url.status_code), ("/health_check.html", 200));
    }
    assert_eq!(config.dataplane_interface(), "eth0");
    // VRRP owns the VIP: nothing is owned unconditionally.
    assert!(config.unconditional_vips().is_empty());
    assert!(config.warnings().is_empty());
}

#[test]
fn single_lb_owns_its_vip_unconditionally() {
    let config = parse(SINGLE_LB, "single-lb.toml").unwrap();
    assert!(config.vrrp_instances.is_empty());
    assert_eq!(config.dataplane_interface(), "eth0");
    assert_eq!(config.dataplane.xdp_mode, XdpMode::Auto);
    assert_eq!(config.unconditional_vips(), [Ipv4Addr::new(192, 168, 10, 110)]);
    // The same services as the seed's lab.
    let lab = parse(SEED_LAB, "seed-lab.toml").unwrap();
    assert_eq!(config.virtual_servers, lab.virtual_servers);
    let keys: Vec<ServiceKey> = config.services().map(|(k, _)| k).collect();
    assert_eq!(keys, [lab.virtual_servers[0].key()]);
}

#[test]
fn load_reads_files_and_labels_errors_with_the_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let config = load(&dir.join("seed-lab.toml")).unwrap();
    assert!(config.file().ends_with("seed-lab.toml"));
    let missing = dir.join("no-such-file.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with(&format!("{}: cannot read: ", missing.display())));
    assert_eq!(err.line(), None);
}

#[test]
fn defaults_are_keepalived_and_ipvs_ones() {
    let config = parse(&cat(&[VS, RS, DP]), "t.toml").unwrap();
    let vs = &config.virtual_servers[0];
    assert_eq!(
        (vs.protocol, vs.lvs_sched, vs.lvs_method),
        (L4Proto::Tcp, Scheduler::Wrr, LvsMethod::Dr)
    );
    assert_eq!(vs.delay_loop, Duration::from_secs(60));
    let rs = &vs.real_servers[0];
    assert_eq!((rs.port, rs.weight, rs.inhibit_on_failure), (80, 1, false));
    let d = &config.dataplane;
    assert_eq!(
        (d.xdp_mode, d.bind_mode, d.poll),
        (XdpMode::Auto, BindMode::Auto, PollMode::Adaptive)
    );
    assert_eq!((d.queues, d.cores.as_ref()), (None, None));
    assert_eq!((d.batch_size, d.ring_size, d.frame_size), (64, 2048, 4096));
    assert_eq!((d.umem_frames, d.flow_table_size), (2 * 2048, 65536));
    assert_eq!(d.tcp_timeout, Duration::from_secs(900));
    assert_eq!(d.tcpfin_timeout, Duration::from_secs(120));
    assert_eq!(d.udp_timeout, Duration::from_secs(300));
    assert_eq!(config.control.neighbour_refresh, Duration::from_secs(10));

    let with_checks = cat(&[
        VS,
        RS,
        "[virtual_server.real_server.http_get]\n[[virtual_server.real_server.http_get.url]]\n",
        "path = \"/\"\n[virtual_server.real_server.tcp_check]\n",
        DP,
    ]);
    let config = parse(&with_checks, "t.toml").unwrap();
    let rs = &config.virtual_servers[0].real_servers[0];
    let http = rs.http_get.as_ref().unwrap();
    assert_eq!((http.connect_port, http.connect_timeout), (80, Duration::from_secs(5)));
    assert_eq!((http.retry, http.delay_before_retry), (1, Duration::from_secs(1)));
    assert_eq!((http.urls[0].status_code, http.urls[0].digest.as_ref()), (200, None));
    let tcp = rs.tcp_check.as_ref().unwrap();
    assert_eq!(
        (tcp.connect_port, tcp.connect_timeout, tcp.bindto),
        (80, Duration::from_secs(5), None)
    );
}

#[test]
fn the_interface_comes_from_the_vrrp_instances_when_they_agree() {
    let two = cat(&[
        VRRP,
        "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n",
    ]);
    assert_eq!(parse(&two, "t.toml").unwrap().dataplane_interface(), "eth0");
    // An explicit [dataplane] interface settles a disagreement.
    let differ = cat(&[
        VRRP,
        "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth1\"\nvirtual_router_id = 52\n",
    ]);
    let config = parse(&cat(&[&differ, "[dataplane]\ninterface = \"eth1\"\n"]), "t.toml").unwrap();
    assert_eq!(config.dataplane_interface(), "eth1");
    // The same VRID on different interfaces is fine.
    let vrid = cat(&[
        VRRP,
        "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth1\"\nvirtual_router_id = 51\n",
        DP,
    ]);
    assert!(parse(&vrid, "t.toml").is_ok());
}

#[test]
fn unconditional_vips_exclude_those_vrrp_lists() {
    let text = cat(&[
        VRRP,
        "virtual_ipaddress = [\"192.168.10.110/24\"]\n",
        VS,
        "[[virtual_server]]\nvip = \"192.168.10.111\"\nport = 80\n",
        "[[virtual_server]]\nvip = \"192.168.10.111\"\nport = 443\n",
        "[[virtual_server]]\nvip = \"192.168.10.110\"\nport = 53\nprotocol = \"udp\"\n",
    ]);
    let config = parse(&text, "t.toml").unwrap();
    assert_eq!(config.unconditional_vips(), [Ipv4Addr::new(192, 168, 10, 111)]);
    assert_eq!(config.virtual_servers[3].protocol, L4Proto::Udp);
    // Services without real servers are legal, and worth a warning.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 4);
    assert_eq!(warnings[0], "t.toml:7: virtual_server 192.168.10.110:80/TCP has no real servers: its traffic is dropped");
}

/// Bad configurations and the exact error each must give. Grows with every
/// key the contract gains.
fn bad_configs() -> Vec<(&'static str, String, &'static str)> {
    vec![
        // Shape: what the TOML reader finds.
        ("syntax", "[[virtual_server]\n".into(), "t.toml:1: unclosed array table, expected `]`"),
        (
            "unknown top-level key",
            cat(&["# from keepalived.conf\n\nglobal_defs = 1\n", DP]),
            "t.toml:3: unknown key `global_defs`, expected one of `vrrp_instance`, \
             `virtual_server`, `dataplane`, `control`",
        ),
        (
            "unknown real_server key",
            cat(&[VS, RS, "notify_down = \"/bin/true\"\n", DP]),
            "t.toml:6: unknown key `notify_down`, expected one of `ip`, `port`, `weight`, \
             `inhibit_on_failure`, `http_get`, `tcp_check`",
        ),
        (
            "unknown control key",
            cat(&[DP, "[control]\nsocket = \"/tmp/x\"\nrefresh = 3\n"]),
            "t.toml:5: unknown key `refresh`, expected `neighbour_refresh` or `socket`",
        ),
        (
            "port as a string",
            "[[virtual_server]]\nvip = \"192.168.10.110\"\nport = \"80\"\n".into(),
            "t.toml:3: port: invalid type: string \"80\", expected an integer",
        ),
        (
            "delay_loop as a string",
            cat(&[VS, "delay_loop = \"3\"\n", DP]),
            "t.toml:4: delay_loop: invalid type: string \"3\", expected a number",
        ),
        (
            "inhibit_on_failure as a keepalived flag",
            cat(&[VS, RS, "inhibit_on_failure = 1\n", DP]),
            "t.toml:6: inhibit_on_failure: invalid type: integer `1`, expected a boolean",
        ),
        (
            "missing vip",
            "\n[[virtual_server]]\nport = 80\n".into(),
            "t.toml:2: missing key `vip` in [[virtual_server]]",
        ),
        (
            "duplicate key",
            cat(&[VS, "port = 81\n", DP]),
            "t.toml:4: duplicate key `port`",
        ),
        // Values.
        (
            "priority 0",
            cat(&[VRRP, "priority = 0\n"]),
            "t.toml:5: priority 0 is out of range (1-254)",
        ),
        (
            "priority 255 (address owner) is not ours",
            cat(&[VRRP, "priority = 255\n"]),
            "t.toml:5: priority 255 is out of range (1-254)",
        ),
        (
            "virtual_router_id 256",
            "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 256\n".into(),
            "t.toml:4: virtual_router_id 256 is out of range (1-255)",
        ),
        (
            "advert_int below a second",
            cat(&[VRRP, "advert_int = 0.5\n"]),
            "t.toml:5: advert_int 0.5 is out of range: VRRPv2 adverts carry whole seconds (1-255)",
        ),
        (
            "unknown state",
            cat(&[VRRP, "state = \"FAULT\"\n"]),
            "t.toml:5: state \"FAULT\" is not BACKUP or MASTER",
        ),
        (
            "AH authentication",
            cat(&[VRRP, "auth_type = \"AH\"\nauth_pass = \"1111\"\n"]),
            "t.toml:5: auth_type \"AH\" is not supported: xdplb authenticates VRRP with PASS only \
             (or leave auth_type out)",
        ),
        (
            "auth_pass longer than 8 bytes",
            cat(&[VRRP, "auth_type = \"PASS\"\nauth_pass = \"123456789\"\n"]),
            "t.toml:6: auth_pass is 9 bytes long: VRRP carries at most 8",
        ),
        (
            "PASS without auth_pass",
            cat(&[VRRP, "auth_type = \"PASS\"\n"]),
            "t.toml:5: auth_type \"PASS\" needs auth_pass",
        ),
        (
            "auth_pass without auth_type",
            cat(&[VRRP, "auth_pass = \"1111\"\n"]),
            "t.toml:5: auth_pass is set without auth_type: add auth_type = \"PASS\"",
        ),
        (
            "virtual_ipaddress prefix 33",
            cat(&[VRRP, "virtual_ipaddress = [\n  \"192.168.10.110\",\n  \"192.168.10.111/33\",\n]\n"]),
            "t.toml:7: virtual_ipaddress \"192.168.10.111/33\" has prefix 33, out of range (1-32)",
        ),
        (
            "virtual_ipaddress in keepalived's long form",
            cat(&[VRRP, "virtual_ipaddress = [\"192.168.10.110/24 dev eth0\"]\n"]),
            "t.toml:5: virtual_ipaddress \"192.168.10.110/24 dev eth0\" is not IPV4 or IPV4/PREFIX",
        ),
        (
            "empty instance name",
            "[[vrrp_instance]]\nname = \"\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n".into(),
            "t.toml:2: vrrp_instance name is empty",
        ),
        (
            "interface name too long",
            "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0-is-much-too-long\"\nvirtual_router_id = 51\n"
                .into(),
            "t.toml:3: interface \"eth0-is-much-too-long\" is not a valid interface name \
             (1-15 bytes, no '/', ':' or whitespace)",
        ),
        (
            "alias label as interface",
            cat(&[VS, "[dataplane]\ninterface = \"eth0:1\"\n"]),
            "t.toml:5: interface \"eth0:1\" is not a valid interface name \
             (1-15 bytes, no '/', ':' or whitespace)",
        ),
        (
            "unparsable vip",
            "[[virtual_server]]\nvip = \"192.168.10.300\"\nport = 80\n[dataplane]\ninterface = \"eth0\"\n".into(),
            "t.toml:2: vip \"192.168.10.300\" is not an IPv4 address",
        ),
        (
            "vip 0.0.0.0",
            "[[virtual_server]]\nvip = \"0.0.0.0\"\nport = 80\n[dataplane]\ninterface = \"eth0\"\n".into(),
            "t.toml:2: vip 0.0.0.0 is not a unicast address a host can own",
        ),
        (
            "unparsable real server",
            cat(&[VS, "[[virtual_server.real_server]]\nip = \"web1\"\n", DP]),
            "t.toml:5: ip \"web1\" is not an IPv4 address",
        ),
        (
            "port 0",
            "[[virtual_server]]\nvip = \"192.168.10.110\"\nport = 0\n[dataplane]\ninterface = \"eth0\"\n".into(),
            "t.toml:3: port 0 is out of range (1-65535)",
        ),
        (
            "weight above keepalived's limit",
            cat(&[VS, RS, "weight = 70000\n", DP]),
            "t.toml:6: weight 70000 is out of range (0-65535)",
        ),
        (
            "unsupported scheduler",
            cat(&[VS, "lvs_sched = \"wlc\"\n", DP]),
            "t.toml:4: lvs_sched \"wlc\" is not supported: xdplb schedules by wrr or rr",
        ),
        (
            "NAT",
            cat(&[VS, "lvs_method = \"NAT\"\n", DP]),
            "t.toml:4: lvs_method \"NAT\" is not supported: xdplb forwards by direct server return only (DR)",
        ),
        (
            "TUN",
            cat(&[VS, "lvs_method = \"TUN\"\n", DP]),
            "t.toml:4: lvs_method \"TUN\" is not supported: xdplb forwards by direct server return only (DR)",
        ),
        (
            "SCTP",
            cat(&[VS, "protocol = \"SCTP\"\n", DP]),
            "t.toml:4: protocol \"SCTP\" is not supported: xdplb balances TCP or UDP",
        ),
        (
            "delay_loop 0",
            cat(&[VS, "delay_loop = 0\n", DP]),
            "t.toml:4: delay_loop 0 is out of range (0.001-86400 seconds)",
        ),
        (
            "http_get without url",
            cat(&[VS, RS, "[virtual_server.real_server.http_get]\nconnect_timeout = 3\n", DP]),
            "t.toml:6: http_get needs at least one [[...http_get.url]] with a path",
        ),
        (
            "url path without slash",
            cat(&[
                VS,
                RS,
                "[virtual_server.real_server.http_get]\n[[virtual_server.real_server.http_get.url]]\n",
                "path = \"health_check.html\"\n",
                DP,
            ]),
            "t.toml:8: url path \"health_check.html\" must start with '/' and have no spaces",
        ),
        (
            "status_code 99",
            cat(&[
                VS,
                RS,
                "[virtual_server.real_server.http_get]\n[[virtual_server.real_server.http_get.url]]\n",
                "path = \"/\"\nstatus_code = 99\n",
                DP,
            ]),
            "t.toml:9: status_code 99 is out of range (100-599)",
        ),
        (
            "digest not MD5",
            cat(&[
                VS,
                RS,
                "[virtual_server.real_server.http_get]\n[[virtual_server.real_server.http_get.url]]\n",
                "path = \"/\"\ndigest = \"abc\"\n",
                DP,
            ]),
            "t.toml:9: digest \"abc\" is not an MD5 digest (32 hex digits)",
        ),
        (
            "tcp_check bindto",
            cat(&[VS, RS, "[virtual_server.real_server.tcp_check]\nbindto = \"lb1\"\n", DP]),
            "t.toml:7: bindto \"lb1\" is not an IPv4 address",
        ),
        (
            "ring_size not a power of two",
            "[dataplane]\ninterface = \"eth0\"\nring_size = 1000\n".into(),
            "t.toml:3: ring_size 1000 is not a power of two between 64 and 16384",
        ),
        (
            "umem_frames below ring_size",
            "[dataplane]\ninterface = \"eth0\"\nring_size = 4096\numem_frames = 2048\n".into(),
            "t.toml:4: umem_frames 2048 is not a power of two between 4096 and 1048576",
        ),
        (
            "frame_size 3000",
            "[dataplane]\ninterface = \"eth0\"\nframe_size = 3000\n".into(),
            "t.toml:3: frame_size 3000 is not 2048 or 4096",
        ),
        (
            "batch_size 0",
            "[dataplane]\ninterface = \"eth0\"\nbatch_size = 0\n".into(),
            "t.toml:3: batch_size 0 is out of range (1-256)",
        ),
        (
            "queues 0",
            "[dataplane]\ninterface = \"eth0\"\nqueues = 0\n".into(),
            "t.toml:3: queues 0 is out of range (1-1024)",
        ),
        (
            "empty cores",
            "[dataplane]\ninterface = \"eth0\"\ncores = []\n".into(),
            "t.toml:3: cores is empty: list CPU ids, or leave cores out for no pinning",
        ),
        (
            "negative core, on its own line",
            "[dataplane]\ninterface = \"eth0\"\ncores = [\n  0,\n  -1,\n]\n".into(),
            "t.toml:5: cores entry -1 is out of range (0-1023)",
        ),
        (
            "xdp_mode driver",
            "[dataplane]\ninterface = \"eth0\"\nxdp_mode = \"driver\"\n".into(),
            "t.toml:3: xdp_mode \"driver\" is not one of auto, native, generic",
        ),
        (
            "bind_mode zero-copy",
            "[dataplane]\ninterface = \"eth0\"\nbind_mode = \"zero-copy\"\n".into(),
            "t.toml:3: bind_mode \"zero-copy\" is not one of auto, copy, zerocopy",
        ),
        (
            "poll spin",
            "[dataplane]\ninterface = \"eth0\"\npoll = \"spin\"\n".into(),
            "t.toml:3: poll \"spin\" is not one of adaptive, busy",
        ),
        (
            "flow_table_size 0",
            "[dataplane]\ninterface = \"eth0\"\nflow_table_size = 0\n".into(),
            "t.toml:3: flow_table_size 0 is out of range (1-16777216)",
        ),
        (
            "tcp_timeout nan",
            "[dataplane]\ninterface = \"eth0\"\ntcp_timeout = nan\n".into(),
            "t.toml:3: tcp_timeout NaN is out of range (1-604800 seconds)",
        ),
        (
            "neighbour_refresh 0",
            cat(&[DP, "[control]\nneighbour_refresh = 0.0\n"]),
            "t.toml:4: neighbour_refresh 0 is out of range (0.1-3600 seconds)",
        ),
        // Relations.
        (
            "real server on another port",
            cat(&[VS, RS, "port = 8080\n", DP]),
            "t.toml:6: DR cannot rewrite ports: real server 192.168.10.103:8080 differs from virtual port 80",
        ),
        (
            "duplicate virtual server",
            cat(&[VS, "\n", VS, DP]),
            "t.toml:6: virtual_server 192.168.10.110:80/TCP is defined twice (first at line 2)",
        ),
        (
            "duplicate real server",
            cat(&[VS, RS, RS, DP]),
            "t.toml:7: real server 192.168.10.103:80 is listed twice in virtual_server \
             192.168.10.110:80/TCP (first at line 5)",
        ),
        (
            "duplicate vrrp_instance name",
            cat(&[VRRP, "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n"]),
            "t.toml:6: vrrp_instance \"VI_1\" is defined twice (first at line 2)",
        ),
        (
            "duplicate VRID on one interface",
            cat(&[VRRP, "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n"]),
            "t.toml:8: virtual_router_id 51 on eth0 is used by vrrp_instance \"VI_1\" and \"VI_2\"",
        ),
        (
            "VIP listed by two instances",
            cat(&[
                VRRP,
                "virtual_ipaddress = [\"192.168.10.110\"]\n",
                "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n",
                "virtual_ipaddress = [\"192.168.10.110/24\"]\n",
            ]),
            "t.toml:10: virtual_ipaddress 192.168.10.110 is listed twice (first at line 5)",
        ),
        (
            "a VIP as a real server",
            cat(&[VS, "[[virtual_server.real_server]]\nip = \"192.168.10.110\"\n", DP]),
            "t.toml:5: real server 192.168.10.110 is also a VIP: DR needs real servers with addresses of their own",
        ),
        (
            "a VRRP VIP as a real server",
            cat(&[
                VRRP,
                "virtual_ipaddress = [\"192.168.10.111\"]\n",
                VS,
                "[[virtual_server.real_server]]\nip = \"192.168.10.111\"\n",
            ]),
            "t.toml:10: real server 192.168.10.111 is also a VIP: DR needs real servers with addresses of their own",
        ),
        (
            "vrrp_instances on two interfaces, none chosen",
            cat(&[VRRP, "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth1\"\nvirtual_router_id = 52\n"]),
            "t.toml:7: vrrp_instances use several interfaces (eth0, eth1): set [dataplane] interface \
             to the one the data plane serves",
        ),
        (
            "a service VIP moved by VRRP on another interface",
            cat(&[VRRP, "virtual_ipaddress = [\"192.168.10.110\"]\n", VS, "[dataplane]\ninterface = \"eth1\"\n"]),
            "t.toml:3: vrrp_instance \"VI_1\" holds VIP 192.168.10.110 of virtual_server \
             192.168.10.110:80/TCP on eth0, but the data plane serves eth1",
        ),
        (
            "no interface anywhere",
            VS.into(),
            "t.toml: no data-plane interface: set [dataplane] interface, or name one in a vrrp_instance",
        ),
        // Order: the earliest value error, and values before relations.
        (
            "earliest of two value errors",
            cat(&[VS, RS, "weight = -1\n", "port = 8080\n[dataplane]\ninterface = \"eth0\"\nbatch_size = 999\n"]),
            "t.toml:6: weight -1 is out of range (0-65535)",
        ),
        (
            "a later value error before an earlier relation error",
            cat(&[VS, RS, "port = 8080\n[dataplane]\ninterface = \"eth0\"\nbatch_size = 999\n"]),
            "t.toml:9: batch_size 999 is out of range (1-256)",
        ),
    ]
}

#[test]
fn bad_configs_give_their_exact_error() {
    let cases = bad_configs();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        match parse(text, "t.toml") {
            Ok(_) => failures.push(format!("{what}: parsed, expected {expected:?}")),
            Err(e) if e.to_string() != *expected => {
                failures.push(format!("{what}:\n   got {:?}\n  want {expected:?}", e.to_string()))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn sample_files_round_trip_through_to_toml() {
    for (name, text) in [("seed-lab.toml", SEED_LAB), ("single-lb.toml", SINGLE_LB)] {
        let config = parse(text, name).unwrap();
        let printed = config.to_toml();
        let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(again, config, "{printed}");
        // Printing is stable: a fixed point after one round.
        assert_eq!(again.to_toml(), printed);
        // Every default is written out.
        for key in ["umem_frames", "tcpfin_timeout", "neighbour_refresh", "delay_before_retry"] {
            assert!(printed.contains(key), "{key} missing from\n{printed}");
        }
    }
}

/// Pieces that make TOML and configuration errors likely when spliced in.
const TOKENS: &[&str] = &[
    "\n",
    "=",
    "\"",
    "[",
    "]",
    "[[",
    "]]",
    ",",
    ".",
    "0",
    "-1",
    "99999",
    "1e400",
    "nan",
    "x",
    " ",
    "#",
    "'",
    "{",
    "}",
    "true",
    "port",
    "vip",
    "[[virtual_server]]",
    "[dataplane]",
    "[[virtual_server.real_server]]",
    "192.168.10.300",
    "8080",
    "\u{e9}",
    "\t",
    "\"\"\"",
];

fn assert_line_within(text: &str, result: &Result<Config, ConfigError>) {
    let lines = text.matches('\n').count() + 1;
    match result {
        Ok(config) => {
            // Whatever parses must survive its own printing.
            let printed = config.to_toml();
            assert_eq!(parse(&printed, "printed").as_ref().ok(), Some(config), "{printed}");
        }
        Err(e) => {
            if let Some(line) = e.line() {
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            }
            assert!(e.to_string().starts_with("p.toml"), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let result = parse(&text, "p.toml");
        assert_line_within(&text, &result);
    }

    #[test]
    fn mutated_seed_lab_never_panics(
        ops in proptest::collection::vec(
            (0u8..3, any::<prop::sample::Index>(), 0..TOKENS.len(), 1usize..12),
            1..6,
        )
    ) {
        let mut chars: Vec<char> = SEED_LAB.chars().collect();
        for (op, at, token, len) in ops {
            let at = at.index(chars.len() + 1);
            match op {
                0 => {
                    let end = (at + len).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    chars.splice(at..at, TOKENS[token].chars());
                }
                _ => {
                    let end = (at + 1).min(chars.len());
                    chars.splice(at..end, TOKENS[token].chars());
                }
            }
        }
        let text: String = chars.into_iter().collect();
        let result = parse(&text, "p.toml");
        assert_line_within(&text, &result);
    }

    #[test]
    fn valid_configs_round_trip(
        priority in 1u8..=254,
        vrid in 1u8..=255,
        advert in 1u8..=255,
        master in any::<bool>(),
        udp in any::<bool>(),
        rr in any::<bool>(),
        weights in proptest::collection::vec(0u32..=65535, 0..4),
        delay_loop in 0.001f64..86400.0,
        connect_timeout in 0.001f64..3600.0,
        path in "/[a-z0-9_.]{0,12}",
        digest in proptest::option::of("[0-9a-fA-F]{32}"),
        ring_shift in 6u32..=14,
        umem_extra in 0u32..=3,
        cores in proptest::option::of(proptest::collection::vec(0usize..=1023, 1..4)),
        timeout in 1.0f64..604800.0,
    ) {
        let ring = 1u32 << ring_shift;
        let mut text = format!(
            "[[vrrp_instance]]\nname = \"VI_{vrid}\"\nstate = \"{}\"\ninterface = \"eth0\"\n\
             virtual_router_id = {vrid}\npriority = {priority}\nadvert_int = {advert}\n\
             virtual_ipaddress = [\"10.0.0.1/24\"]\n\
             [[virtual_server]]\nvip = \"10.0.0.1\"\nport = 443\nprotocol = \"{}\"\n\
             lvs_sched = \"{}\"\ndelay_loop = {delay_loop:?}\n",
            if master { "MASTER" } else { "BACKUP" },
            if udp { "UDP" } else { "TCP" },
            if rr { "rr" } else { "wrr" },
        );
        for (i, weight) in weights.iter().enumerate() {
            text += &format!(
                "[[virtual_server.real_server]]\nip = \"10.0.0.{}\"\nweight = {weight}\n\
                 [virtual_server.real_server.http_get]\nconnect_timeout = {connect_timeout:?}\n\
                 [[virtual_server.real_server.http_get.url]]\npath = \"{path}\"\n",
                i + 10
            );
            if let Some(d) = &digest {
                text += &format!("digest = \"{d}\"\n");
            }
        }
        text += &format!(
            "[dataplane]\nring_size = {ring}\numem_frames = {}\ntcp_timeout = {timeout:?}\n",
            ring << umem_extra
        );
        if let Some(cores) = &cores {
            text += &format!("cores = {cores:?}\n");
        }
        let config = parse(&text, "gen.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(config.virtual_servers[0].real_servers.len(), weights.len());
        prop_assert_eq!(config.dataplane.cores.as_ref(), cores.as_ref());
        let printed = config.to_toml();
        let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
        prop_assert_eq!(&again, &config);
        prop_assert_eq!(again.to_toml(), printed);
    }
}
