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
use crate::garp::GarpConfig;
use crate::health::{CheckerConfig, UrlCheck};
use crate::vrrp::{self, Version};

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
    assert_eq!(config.global_defs.router_id.as_deref(), Some("LVS_DEVEL"));
    // What the seed does not write is keepalived's default, but for
    // higher_prio_send_advert (on here, for split-brain healing).
    assert_eq!(vi.vrrp_version, Version::V2);
    assert!(!vi.nopreempt && vi.preempt_delay.is_zero());
    assert!(vi.higher_prio_send_advert);
    assert_eq!(vi.garp_config(), GarpConfig::default());
    assert!(!vi.is_unicast() && vi.unicast_src_ip.is_none());
    assert!(vi.track_interface.is_empty() && vi.track_script.is_empty());
    assert_eq!(vi.notify_script(vrrp::State::Master), None);
    assert_eq!(config.vrrp_vips(), [vip]);

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
    // keepalived: no persistence, quorum 1, hysteresis 0, no sorry server.
    assert_eq!(
        (vs.persistence_timeout, vs.persistence_granularity, vs.persistence()),
        (None, None, None)
    );
    assert_eq!(
        (vs.quorum, vs.hysteresis, vs.quorum_up.as_ref(), vs.quorum_down.as_ref()),
        (1, 0, None, None)
    );
    assert_eq!((vs.sorry_server, vs.sorry_server_inhibit), (None, false));

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
    // keepalived: delay_before_retry is 3 s for HTTP_GET, 1 s for TCP_CHECK.
    assert_eq!((http.retry, http.delay_before_retry), (1, Duration::from_secs(3)));
    assert_eq!((http.urls[0].status_code, http.urls[0].digest.as_ref()), (200, None));
    let tcp = rs.tcp_check.as_ref().unwrap();
    assert_eq!(
        (tcp.connect_port, tcp.connect_timeout, tcp.bindto),
        (80, Duration::from_secs(5), None)
    );
    assert_eq!((tcp.retry, tcp.delay_before_retry), (1, Duration::from_secs(1)));
    // The defaults are the health module's own idea of keepalived's.
    let minute = Duration::from_secs(60);
    assert_eq!(http.checker_config(minute), CheckerConfig::http_get(minute));
    assert_eq!(tcp.checker_config(minute), CheckerConfig::tcp_check(minute));
    // HTTP_GET wins when a server has both.
    assert_eq!(rs.checker_config(minute), Some(CheckerConfig::http_get(minute)));
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
            cat(&["# from keepalived.conf\n\nvrrp_sync_group = 1\n", DP]),
            "t.toml:3: unknown key `vrrp_sync_group`, expected one of `global_defs`, \
             `vrrp_script`, `vrrp_instance`, `virtual_server`, `dataplane`, `control`, `metrics`",
        ),
        (
            "metrics listen that is not ADDR:PORT",
            cat(&[DP, "[metrics]\nlisten = \"localhost\"\n"]),
            "t.toml:4: listen \"localhost\" is not ADDR:PORT (e.g. \"127.0.0.1:9410\")",
        ),
        (
            "unknown key in [metrics]",
            cat(&[DP, "[metrics]\nport = 9410\n"]),
            "t.toml:4: unknown key `port`, expected `listen`",
        ),
        (
            "global_defs key without keepalived's vrrp_ prefix",
            cat(&["[global_defs]\ngarp_master_delay = 1\n", DP]),
            "t.toml:2: unknown key `garp_master_delay`, expected one of `router_id`, \
             `vrrp_version`, `vrrp_garp_master_delay`, `vrrp_garp_master_repeat`, \
             `vrrp_garp_master_refresh`, `vrrp_garp_master_refresh_repeat`, \
             `vrrp_garp_lower_prio_delay`, `vrrp_garp_lower_prio_repeat`, `vrrp_garp_interval`, \
             `vrrp_higher_prio_send_advert`",
        ),
        (
            "nopreempt as a keepalived flag",
            cat(&[VRRP, "nopreempt = 1\n"]),
            "t.toml:5: nopreempt: invalid type: integer `1`, expected a boolean",
        ),
        (
            "track_script as one string",
            cat(&[VRRP, "track_script = \"chk\"\n"]),
            "t.toml:5: track_script: invalid type: string \"chk\", expected an array",
        ),
        (
            "vrrp_script without script",
            "[[vrrp_script]]\nname = \"chk\"\ninterval = 2\n".into(),
            "t.toml:1: missing key `script` in [[vrrp_script]]",
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
            "auth_pass whose 8-byte cut splits a character",
            cat(&[VRRP, "auth_type = \"PASS\"\nauth_pass = \"1234567\u{e9}\"\n"]),
            "t.toml:6: auth_pass is 9 bytes long and VRRP carries only the first 8, which end \
             inside a character: shorten it",
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
        // VRRP: version, preemption, GARP, unicast, notify, tracking.
        (
            "vrrp_version 4",
            cat(&[VRRP, "vrrp_version = 4\n"]),
            "t.toml:5: vrrp_version 4 is not 2 or 3",
        ),
        (
            "keepalived's instance keyword version, 1",
            cat(&[VRRP, "version = 1\n"]),
            "t.toml:5: vrrp_version 1 is not 2 or 3",
        ),
        (
            "global vrrp_version 4",
            cat(&["[global_defs]\nvrrp_version = 4\n", DP]),
            "t.toml:2: vrrp_version 4 is not 2 or 3",
        ),
        (
            "v3 advert_int below a centisecond",
            cat(&[VRRP, "vrrp_version = 3\nadvert_int = 0.005\n"]),
            "t.toml:6: advert_int 0.005 is out of range: VRRPv3 adverts carry whole centiseconds \
             (0.01-40.95)",
        ),
        (
            "v3 advert_int above 12 bits of centiseconds",
            cat(&[VRRP, "vrrp_version = 3\nadvert_int = 41\n"]),
            "t.toml:6: advert_int 41 is out of range: VRRPv3 adverts carry whole centiseconds \
             (0.01-40.95)",
        ),
        (
            "v3 advert_int between centiseconds",
            cat(&[VRRP, "advert_int = 0.125\nversion = 3\n"]),
            "t.toml:5: advert_int 0.125 is out of range: VRRPv3 adverts carry whole centiseconds \
             (0.01-40.95)",
        ),
        (
            "v2 (from global_defs) advert_int 0.5",
            cat(&["[global_defs]\nvrrp_version = 2\n", VRRP, "advert_int = 0.5\n"]),
            "t.toml:7: advert_int 0.5 is out of range: VRRPv2 adverts carry whole seconds (1-255)",
        ),
        (
            "authentication with VRRPv3",
            cat(&[VRRP, "vrrp_version = 3\nauth_type = \"PASS\"\nauth_pass = \"1111\"\n"]),
            "t.toml:6: auth_type is not allowed with vrrp_version 3: VRRPv3 adverts carry no \
             authentication (leave auth_type and auth_pass out)",
        ),
        (
            "preempt_delay 2000",
            cat(&[VRRP, "preempt_delay = 2000\n"]),
            "t.toml:5: preempt_delay 2000 is out of range (0-1000 seconds)",
        ),
        (
            "negative preempt_delay",
            cat(&[VRRP, "preempt_delay = -1\n"]),
            "t.toml:5: preempt_delay -1 is out of range (0-1000 seconds)",
        ),
        (
            "garp_master_repeat 0",
            cat(&[VRRP, "garp_master_repeat = 0\n"]),
            "t.toml:5: garp_master_repeat 0 is out of range (1-1000)",
        ),
        (
            "garp_master_refresh_repeat 0",
            cat(&[VRRP, "garp_master_refresh_repeat = 0\n"]),
            "t.toml:5: garp_master_refresh_repeat 0 is out of range (1-1000)",
        ),
        (
            "garp_lower_prio_repeat -1",
            cat(&[VRRP, "garp_lower_prio_repeat = -1\n"]),
            "t.toml:5: garp_lower_prio_repeat -1 is out of range (0-1000)",
        ),
        (
            "garp_master_delay beyond keepalived's timer",
            cat(&[VRRP, "garp_master_delay = 5000\n"]),
            "t.toml:5: garp_master_delay 5000 is out of range (0-4294 seconds)",
        ),
        (
            "garp_master_refresh negative",
            cat(&[VRRP, "garp_master_refresh = -60\n"]),
            "t.toml:5: garp_master_refresh -60 is out of range (0-86400 seconds)",
        ),
        (
            "garp_interval of a minute",
            cat(&[VRRP, "garp_interval = 60\n"]),
            "t.toml:5: garp_interval 60 is out of range (0-10 seconds)",
        ),
        (
            "global vrrp_garp_master_repeat 0",
            cat(&["[global_defs]\nvrrp_garp_master_repeat = 0\n", DP]),
            "t.toml:2: vrrp_garp_master_repeat 0 is out of range (1-1000)",
        ),
        (
            "global vrrp_garp_lower_prio_delay negative",
            cat(&["[global_defs]\nvrrp_garp_lower_prio_delay = -5\n", DP]),
            "t.toml:2: vrrp_garp_lower_prio_delay -5 is out of range (0-4294 seconds)",
        ),
        (
            "empty router_id",
            cat(&["[global_defs]\nrouter_id = \"\"\n", DP]),
            "t.toml:2: router_id \"\" is empty or not one line",
        ),
        (
            "unparsable unicast_src_ip",
            cat(&[VRRP, "unicast_src_ip = \"lb1\"\n"]),
            "t.toml:5: unicast_src_ip \"lb1\" is not an IPv4 address",
        ),
        (
            "multicast unicast_peer",
            cat(&[VRRP, "unicast_peer = [\"224.0.0.18\"]\n"]),
            "t.toml:5: unicast_peer 224.0.0.18 is not a unicast address a host can own",
        ),
        (
            "empty notify_master",
            cat(&[VRRP, "notify_master = \" \"\n"]),
            "t.toml:5: notify_master is empty: give the command to run",
        ),
        (
            "notify on two lines",
            cat(&[VRRP, "notify = \"/bin/a\\n/bin/b\"\n"]),
            "t.toml:5: notify \"/bin/a\\n/bin/b\" is not one command line",
        ),
        (
            "track_interface with a keepalived weight",
            cat(&[VRRP, "track_interface = [\"eth1 weight 2\"]\n"]),
            "t.toml:5: track_interface \"eth1 weight 2\" is not a valid interface name \
             (1-15 bytes, no '/', ':' or whitespace)",
        ),
        (
            "vrrp_script weight 254",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\nweight = 254\n".into(),
            "t.toml:4: weight 254 is out of range (-253-253)",
        ),
        (
            "vrrp_script rise 0",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\nrise = 0\n".into(),
            "t.toml:4: rise 0 is out of range (1-2147483647)",
        ),
        (
            "vrrp_script fall 0",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\nfall = 0\n".into(),
            "t.toml:4: fall 0 is out of range (1-2147483647)",
        ),
        (
            "vrrp_script interval 0",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\ninterval = 0\n".into(),
            "t.toml:4: interval 0 is out of range (0.001-86400 seconds)",
        ),
        (
            "vrrp_script timeout 0",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\ntimeout = 0\n".into(),
            "t.toml:4: timeout 0 is out of range (0.001-86400 seconds)",
        ),
        (
            "vrrp_script empty script",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"\"\n".into(),
            "t.toml:3: script is empty: give the command to run",
        ),
        (
            "vrrp_script name with a space",
            "[[vrrp_script]]\nname = \"chk web\"\nscript = \"/bin/true\"\n".into(),
            "t.toml:2: vrrp_script name \"chk web\" has whitespace: track_script names one word",
        ),
        (
            "vrrp_script empty user",
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\nuser = \"\"\n".into(),
            "t.toml:4: user \"\" is not \"username [:][groupname]\"",
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
            "t.toml:3: poll \"spin\" is not one of adaptive, busy, busy_napi",
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
            "MASTER with nopreempt",
            cat(&[VRRP, "state = \"MASTER\"\nnopreempt = true\n"]),
            "t.toml:6: nopreempt needs state = \"BACKUP\": vrrp_instance \"VI_1\" starts as \
             MASTER, where keepalived ignores nopreempt",
        ),
        (
            "MASTER with preempt_delay",
            cat(&[VRRP, "preempt_delay = 10\nstate = \"MASTER\"\n"]),
            "t.toml:5: preempt_delay needs state = \"BACKUP\": vrrp_instance \"VI_1\" starts as \
             MASTER, where keepalived ignores preempt_delay",
        ),
        (
            "unicast_peer equal to unicast_src_ip",
            cat(&[
                VRRP,
                "unicast_src_ip = \"192.168.10.101\"\n",
                "unicast_peer = [\"192.168.10.102\", \"192.168.10.101\"]\n",
            ]),
            "t.toml:6: unicast_peer 192.168.10.101 is unicast_src_ip itself: adverts would go to \
             ourselves",
        ),
        (
            "unicast_peer listed twice",
            cat(&[VRRP, "unicast_peer = [\n  \"192.168.10.102\",\n  \"192.168.10.102\",\n]\n"]),
            "t.toml:7: unicast_peer 192.168.10.102 is listed twice (first at line 6)",
        ),
        (
            "unicast_peer is a VIP",
            cat(&[
                VRRP,
                "virtual_ipaddress = [\"192.168.10.110\"]\n",
                "unicast_peer = [\"192.168.10.110\"]\n",
            ]),
            "t.toml:6: unicast_peer 192.168.10.110 is a VIP: peers are the other directors' own \
             addresses",
        ),
        (
            "unicast_src_ip is a VIP",
            cat(&[
                VRRP,
                "virtual_ipaddress = [\"192.168.10.110\"]\n",
                "unicast_src_ip = \"192.168.10.110\"\n",
            ]),
            "t.toml:6: unicast_src_ip 192.168.10.110 is a VIP: adverts leave from the director's \
             own address",
        ),
        (
            "unknown track_script name, no scripts",
            cat(&[VRRP, "track_script = [\"chk_web\"]\n"]),
            "t.toml:5: track_script \"chk_web\" of vrrp_instance \"VI_1\" names no \
             [[vrrp_script]] (there is none)",
        ),
        (
            "unknown track_script name",
            cat(&[
                "[[vrrp_script]]\nname = \"chk_b\"\nscript = \"/bin/true\"\n",
                "[[vrrp_script]]\nname = \"chk_a\"\nscript = \"/bin/true\"\n",
                VRRP,
                "track_script = [\"chk_a\", \"chk_web\"]\n",
            ]),
            "t.toml:11: track_script \"chk_web\" of vrrp_instance \"VI_1\" names no \
             [[vrrp_script]] (there are chk_a, chk_b)",
        ),
        (
            "track_script listed twice",
            cat(&[
                "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\n",
                VRRP,
                "track_script = [\"chk\",\n  \"chk\"]\n",
            ]),
            "t.toml:9: track_script \"chk\" is listed twice (first at line 8)",
        ),
        (
            "track_interface listed twice",
            cat(&[VRRP, "track_interface = [\"eth1\", \"eth1\"]\n"]),
            "t.toml:5: track_interface eth1 is listed twice (first at line 5)",
        ),
        (
            "vrrp_script defined twice",
            cat(&[
                "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\n",
                "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/false\"\n",
                DP,
            ]),
            "t.toml:5: vrrp_script \"chk\" is defined twice (first at line 2)",
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
        // Persistence, quorum and sorry server.
        (
            "persistence_timeout 0",
            cat(&[VS, "persistence_timeout = 0\n", DP]),
            "t.toml:4: persistence_timeout 0 is out of range (1-4294967295)",
        ),
        (
            "persistence_timeout in fractions",
            cat(&[VS, "persistence_timeout = 1.5\n", DP]),
            "t.toml:4: persistence_timeout: invalid type: floating point `1.5`, expected an integer",
        ),
        (
            "persistence_granularity without persistence_timeout",
            cat(&[VS, "persistence_granularity = \"255.255.255.0\"\n", DP]),
            "t.toml:4: persistence_granularity needs persistence_timeout: say how long a client \
             stays with its real server (keepalived's default is 360)",
        ),
        (
            "persistence_granularity with holes",
            cat(&[VS, "persistence_timeout = 360\npersistence_granularity = \"255.0.255.0\"\n", DP]),
            "t.toml:5: persistence_granularity 255.0.255.0 is not a contiguous netmask \
             (ones then zeros, e.g. 255.255.255.0)",
        ),
        (
            "persistence_granularity of no bits",
            cat(&[VS, "persistence_timeout = 360\npersistence_granularity = \"0.0.0.0\"\n", DP]),
            "t.toml:5: persistence_granularity 0.0.0.0 is not a contiguous netmask \
             (ones then zeros, e.g. 255.255.255.0)",
        ),
        (
            "persistence_granularity as a prefix length",
            cat(&[VS, "persistence_timeout = 360\npersistence_granularity = \"/24\"\n", DP]),
            "t.toml:5: persistence_granularity \"/24\" is not a netmask (e.g. \"255.255.255.0\")",
        ),
        ("quorum 0", cat(&[VS, "quorum = 0\n", DP]), "t.toml:4: quorum 0 is out of range (1-4294967295)"),
        (
            "negative hysteresis",
            cat(&[VS, "quorum = 3\nhysteresis = -1\n", DP]),
            "t.toml:5: hysteresis -1 is out of range (0-4294967295)",
        ),
        (
            "hysteresis as large as quorum",
            cat(&[VS, "quorum = 2\nhysteresis = 2\n", DP]),
            "t.toml:5: hysteresis 2 must be less than quorum 2: the quorum would only be lost \
             with no live weight at all",
        ),
        (
            "hysteresis with the default quorum",
            cat(&[VS, "hysteresis = 1\n", DP]),
            "t.toml:4: hysteresis 1 must be less than quorum 1: the quorum would only be lost \
             with no live weight at all",
        ),
        (
            "empty quorum_up",
            cat(&[VS, "quorum_up = \" \"\n", DP]),
            "t.toml:4: quorum_up is empty: give the command to run",
        ),
        (
            "quorum_down of two lines",
            cat(&[VS, "quorum_down = \"/bin/a\\n/bin/b\"\n", DP]),
            "t.toml:4: quorum_down \"/bin/a\\n/bin/b\" is not one command line",
        ),
        (
            "sorry_server that is not an address",
            cat(&[VS, "sorry_server = { ip = \"sorry.example\" }\n", DP]),
            "t.toml:4: sorry_server ip \"sorry.example\" is not an IPv4 address",
        ),
        (
            "sorry_server port out of range",
            cat(&[VS, "sorry_server = { ip = \"192.168.10.9\", port = 0 }\n", DP]),
            "t.toml:4: sorry_server port 0 is out of range (1-65535)",
        ),
        (
            "sorry_server on another port",
            cat(&[VS, "sorry_server = { ip = \"192.168.10.9\", port = 8080 }\n", DP]),
            "t.toml:4: DR cannot rewrite ports: sorry_server 192.168.10.9:8080 differs from virtual port 80",
        ),
        (
            "sorry_server that is a VIP",
            cat(&[VS, "sorry_server = { ip = \"192.168.10.110\" }\n", DP]),
            "t.toml:4: sorry_server 192.168.10.110 is a VIP: DR needs a sorry server with an \
             address of its own",
        ),
        (
            "sorry_server without ip",
            cat(&[VS, "sorry_server = { port = 80 }\n", DP]),
            "t.toml:4: missing key `ip`",
        ),
        (
            "unknown sorry_server key",
            cat(&[VS, "[virtual_server.sorry_server]\nip = \"192.168.10.9\"\nweight = 2\n", DP]),
            "t.toml:6: unknown key `weight`, expected `ip` or `port`",
        ),
        (
            "sorry_server_inhibit without sorry_server",
            cat(&[VS, "sorry_server_inhibit = true\n", DP]),
            "t.toml:4: sorry_server_inhibit needs a sorry_server (keepalived ignores it without one)",
        ),
        (
            "sorry_server_inhibit as a keepalived flag",
            cat(&[VS, "sorry_server_inhibit = 1\n", DP]),
            "t.toml:4: sorry_server_inhibit: invalid type: integer `1`, expected a boolean",
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
fn persistence_quorum_and_sorry_server_are_read_and_printed_back() {
    let text = cat(&[
        VS,
        "persistence_timeout = 360\npersistence_granularity = \"255.255.255.0\"\n",
        "quorum = 3\nhysteresis = 1\n",
        "quorum_up = \"/etc/xdplb/quorum.sh up\"\nquorum_down = \"/etc/xdplb/quorum.sh down\"\n",
        "sorry_server = { ip = \"192.168.10.200\" }\nsorry_server_inhibit = true\n",
        RS,
        "weight = 2\n",
        "[[virtual_server.real_server]]\nip = \"192.168.10.104\"\n",
        DP,
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let vs = &config.virtual_servers[0];
    let p = vs.persistence().unwrap();
    assert_eq!(
        (p.timeout, p.netmask, p.prefix_len()),
        (secs(360), Ipv4Addr::new(255, 255, 255, 0), 24)
    );
    assert_eq!((vs.quorum, vs.hysteresis), (3, 1));
    assert_eq!(vs.quorum_up.as_deref(), Some("/etc/xdplb/quorum.sh up"));
    assert_eq!(vs.quorum_down.as_deref(), Some("/etc/xdplb/quorum.sh down"));
    // The port defaults to the virtual port, as a real server's does.
    assert_eq!(
        vs.sorry_server,
        Some(SorryServer { ip: Ipv4Addr::new(192, 168, 10, 200), port: 80 })
    );
    assert!(vs.sorry_server_inhibit);
    assert_eq!(
        vs.quorum_settings(),
        crate::quorum::QuorumSettings {
            quorum: 3,
            hysteresis: 1,
            sorry_server: true,
            sorry_server_inhibit: true
        }
    );
    assert_eq!(vs.total_weight(), 3);
    let inputs = vs.quorum_inputs(|rs| rs.ip == Ipv4Addr::new(192, 168, 10, 103));
    assert_eq!(
        inputs,
        [
            crate::quorum::ServerInput { weight: 2, up: false, inhibit_on_failure: false },
            crate::quorum::ServerInput { weight: 1, up: true, inhibit_on_failure: false },
        ]
    );
    let decision = crate::quorum::evaluate(&inputs, &vs.quorum_settings(), None);
    // Live weight 1 < 3 + 1 at start: down, on the sorry server (at weight 1).
    assert!(decision.use_sorry && decision.sorry_weight() == 1);
    // Reachable (3 + 1 <= 3 is not): check-config says the quorum is never reached.
    assert_eq!(
        config.warnings(),
        ["t.toml:2: virtual_server 192.168.10.110:80/TCP needs a live weight of 4 for its \
          quorum, more than its real servers' total 3: the quorum is never reached"]
    );
    let printed = config.to_toml();
    for key in [
        "persistence_timeout = 360\n",
        "persistence_granularity = \"255.255.255.0\"\n",
        "quorum = 3\n",
        "hysteresis = 1\n",
        "sorry_server_inhibit = true\n",
    ] {
        assert!(printed.contains(key), "{key} missing from\n{printed}");
    }
    assert_eq!(parse(&printed, "printed").unwrap(), config, "{printed}");
    // A timeout alone persists per client address.
    let alone = parse(&cat(&[VS, "persistence_timeout = 50\n", DP]), "t.toml").unwrap();
    let p = alone.virtual_servers[0].persistence().unwrap();
    assert_eq!((p.timeout, p.netmask, p.prefix_len()), (secs(50), Ipv4Addr::BROADCAST, 32));
    let printed = alone.to_toml();
    assert!(printed.contains("persistence_granularity = \"255.255.255.255\""), "{printed}");
    assert!(!printed.contains("sorry_server ="), "{printed}");
}

#[test]
fn single_lb_commented_quorum_example_is_valid_uncommented() {
    let keys = ["persistence", "quorum", "hysteresis", "sorry_server"];
    let text: String = SINGLE_LB
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if keys.iter().any(|k| rest.starts_with(k)) => format!("{rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_ne!(text, SINGLE_LB, "the example is still there");
    let config = parse(&text, "single-lb.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let vs = &config.virtual_servers[0];
    assert_eq!(vs.persistence().map(|p| p.prefix_len()), Some(24));
    assert_eq!((vs.quorum, vs.sorry_server.map(|s| s.port)), (2, Some(80)));
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
        for key in [
            "umem_frames",
            "tcpfin_timeout",
            "neighbour_refresh",
            "delay_before_retry",
            "[global_defs]",
            "vrrp_garp_lower_prio_repeat",
            "vrrp_higher_prio_send_advert",
        ] {
            assert!(printed.contains(key), "{key} missing from\n{printed}");
        }
        if !config.vrrp_instances.is_empty() {
            for key in INSTANCE_KEYS {
                assert!(printed.contains(&format!("\n{key} = ")), "{key} missing from\n{printed}");
            }
        }
    }
}

/// Every key a printed vrrp_instance carries, whatever the file said.
const INSTANCE_KEYS: &[&str] = &[
    "vrrp_version",
    "advert_int",
    "nopreempt",
    "preempt_delay",
    "higher_prio_send_advert",
    "unicast_peer",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_interval",
    "track_interface",
    "track_script",
];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn global_defs_are_instance_defaults_and_instances_override_them() {
    let text = cat(&[
        "[global_defs]\nvrrp_version = 3\nvrrp_garp_master_delay = 10\n",
        "vrrp_garp_master_repeat = 2\nvrrp_garp_master_refresh = 60\n",
        "vrrp_garp_master_refresh_repeat = 3\nvrrp_garp_interval = 0.001\n",
        "vrrp_higher_prio_send_advert = false\n",
        // Inherits everything.
        VRRP,
        // Overrides the master GARP values: its lower-priority ones follow them.
        "[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n",
        "version = 2\ngarp_master_delay = 0\ngarp_master_repeat = 1\n",
        "higher_prio_send_advert = true\n",
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let [one, two] = config.vrrp_instances.as_slice() else { panic!("two instances") };
    assert_eq!((one.vrrp_version, two.vrrp_version), (Version::V3, Version::V2));
    assert_eq!((one.higher_prio_send_advert, two.higher_prio_send_advert), (false, true));
    assert_eq!(
        one.garp_config(),
        GarpConfig {
            master_delay: secs(10),
            master_repeat: 2,
            master_refresh: Some(secs(60)),
            master_refresh_repeat: 3,
            lower_prio_delay: secs(10),
            lower_prio_repeat: 2,
            interval: Duration::from_millis(1),
        }
    );
    let garp = two.garp_config();
    assert_eq!((garp.master_delay, garp.master_repeat), (Duration::ZERO, 1));
    assert_eq!((garp.lower_prio_delay, garp.lower_prio_repeat), (Duration::ZERO, 1));
    assert_eq!((garp.master_refresh, garp.interval), (Some(secs(60)), Duration::from_millis(1)));
    // The effective globals: lower-priority ones unwritten show the master ones.
    let g = &config.global_defs;
    assert_eq!((g.vrrp_garp_lower_prio_delay, g.vrrp_garp_lower_prio_repeat), (secs(10), 2));

    // Written globally, the lower-priority values beat an instance's master ones.
    let text = cat(&[
        "[global_defs]\nvrrp_garp_lower_prio_delay = 7\nvrrp_garp_lower_prio_repeat = 0\n",
        VRRP,
        "garp_master_delay = 3\n",
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let garp = config.vrrp_instances[0].garp_config();
    assert_eq!((garp.master_delay, garp.master_repeat), (secs(3), 5));
    assert_eq!((garp.lower_prio_delay, garp.lower_prio_repeat), (secs(7), 0));
    // And the instance's own lower-priority keys beat the globals.
    let config =
        parse(&cat(&[&text, "garp_lower_prio_delay = 1\ngarp_lower_prio_repeat = 4\n"]), "t.toml")
            .unwrap();
    let garp = config.vrrp_instances[0].garp_config();
    assert_eq!((garp.lower_prio_delay, garp.lower_prio_repeat), (secs(1), 4));
}

#[test]
fn vrrpv3_advert_int_is_in_centiseconds() {
    for (written, millis) in
        [("0.01", 10), ("0.07", 70), ("0.5", 500), ("1", 1000), ("40.95", 40950)]
    {
        let text = cat(&[VRRP, "vrrp_version = 3\nadvert_int = ", written, "\n"]);
        let config = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{written}: {e}"));
        let vi = &config.vrrp_instances[0];
        assert_eq!(vi.advert_int, Duration::from_millis(millis), "{written}");
        let state = vi.state_config(Ipv4Addr::new(192, 168, 10, 101));
        assert_eq!(state.validate(), Ok(()), "{written}");
        assert_eq!(state.interval_field(), Some(u16::try_from(millis / 10).unwrap()));
        // Printed and read back: the same interval.
        let again = parse(&config.to_toml(), "printed").unwrap();
        assert_eq!(again.vrrp_instances[0].advert_int, vi.advert_int, "{written}");
    }
}

#[test]
fn state_config_carries_the_election_settings() {
    let text = cat(&[
        VRRP,
        "priority = 110\nadvert_int = 2\nnopreempt = true\npreempt_delay = 4.5\n",
        "higher_prio_send_advert = false\nvirtual_ipaddress = [\"192.168.10.110/24\", \"192.168.10.111\"]\n",
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let vi = &config.vrrp_instances[0];
    let primary = Ipv4Addr::new(192, 168, 10, 101);
    let state = vi.state_config(primary);
    assert_eq!(
        state,
        vrrp::Config {
            version: Version::V2,
            vrid: 51,
            priority: 110,
            advert_int: secs(2),
            initial_state: VrrpState::Backup,
            preempt: false,
            preempt_delay: Duration::from_millis(4500),
            primary_address: primary,
            higher_prio_send_advert: false,
        }
    );
    assert_eq!(state.validate(), Ok(()));
    assert_eq!(vi.vips(), [Ipv4Addr::new(192, 168, 10, 110), Ipv4Addr::new(192, 168, 10, 111)]);
    assert_eq!(config.vrrp_vips(), vi.vips());

    // unicast_src_ip is where adverts leave from, so it is the tie-break address.
    let unicast =
        cat(&[VRRP, "unicast_src_ip = \"192.168.10.150\"\nunicast_peer = [\"192.168.10.102\"]\n"]);
    let config = parse(&unicast, "t.toml").unwrap();
    let vi = &config.vrrp_instances[0];
    assert!(vi.is_unicast());
    assert_eq!(vi.state_config(primary).primary_address, Ipv4Addr::new(192, 168, 10, 150));
    assert_eq!(vi.unicast_peer, [Ipv4Addr::new(192, 168, 10, 102)]);
}

#[test]
fn notify_and_tracking_are_kept_as_written() {
    let text = cat(&[
        "[[vrrp_script]]\nname = \"chk_nginx\"\nscript = \"/usr/bin/pgrep -x 'nginx: master'\"\n",
        "interval = 2\nweight = -20\nfall = 3\nuser = \"nobody\"\n",
        "[[vrrp_script]]\nname = \"chk_disk\"\nscript = \"/bin/true\"\ninit_fail = true\n",
        VRRP,
        "notify_master = \"/etc/xdplb/master.sh VI_1\"\nnotify_backup = \"/etc/xdplb/backup.sh\"\n",
        "notify_fault = \"/etc/xdplb/fault.sh\"\nnotify_stop = \"/etc/xdplb/stop.sh\"\n",
        "notify = \"/etc/xdplb/notify.sh\"\n",
        "track_interface = [\"eth1\", \"bond0.10\"]\ntrack_script = [\"chk_disk\", \"chk_nginx\"]\n",
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let vi = &config.vrrp_instances[0];
    assert_eq!(vi.notify_script(vrrp::State::Master), Some("/etc/xdplb/master.sh VI_1"));
    assert_eq!(vi.notify_script(vrrp::State::Backup), Some("/etc/xdplb/backup.sh"));
    assert_eq!(vi.notify_script(vrrp::State::Fault), Some("/etc/xdplb/fault.sh"));
    assert_eq!(vi.notify_script(vrrp::State::Stopped), Some("/etc/xdplb/stop.sh"));
    assert_eq!(vi.notify_script(vrrp::State::Init), None);
    assert_eq!(vi.notify.as_deref(), Some("/etc/xdplb/notify.sh"));
    assert_eq!(vi.track_interface, ["eth1", "bond0.10"]);
    let names: Vec<&str> = config.track_scripts(vi).iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["chk_disk", "chk_nginx"]);

    let nginx = config.vrrp_script("chk_nginx").unwrap();
    assert_eq!(nginx.script, "/usr/bin/pgrep -x 'nginx: master'");
    assert_eq!((nginx.interval, nginx.timeout), (secs(2), secs(2)));
    assert_eq!((nginx.weight, nginx.rise, nginx.fall), (-20, 1, 3));
    assert_eq!((nginx.user.as_deref(), nginx.init_fail), (Some("nobody"), false));
    // keepalived's defaults: interval 1 s, timeout = interval, weight 0, rise/fall 1.
    let disk = config.vrrp_script("chk_disk").unwrap();
    assert_eq!((disk.interval, disk.timeout), (secs(1), secs(1)));
    assert_eq!((disk.weight, disk.rise, disk.fall, disk.init_fail), (0, 1, 1, true));
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());

    let again = parse(&config.to_toml(), "printed").unwrap();
    assert_eq!(again, config);
}

#[test]
fn a_vrrp_script_nobody_tracks_is_a_warning() {
    let text = cat(&["[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\n", DP]);
    let config = parse(&text, "t.toml").unwrap();
    assert_eq!(
        config.warnings(),
        ["t.toml:2: vrrp_script \"chk\" is tracked by no vrrp_instance: it never runs"]
    );
}

#[test]
fn a_long_auth_pass_is_cut_to_8_bytes_with_a_warning() {
    let text = cat(&[VRRP, "auth_type = \"PASS\"\nauth_pass = \"123456789\"\n", VS]);
    let config = parse(&text, "t.toml").unwrap();
    assert_eq!(config.vrrp_instances[0].auth_pass.as_deref(), Some("12345678"));
    // In line order with the other warnings.
    assert_eq!(
        config.warnings(),
        [
            "t.toml:6: auth_pass is 9 bytes long: only the first 8 are used, as keepalived does \
             (\"Truncating auth_pass to 8 characters\")",
            "t.toml:8: virtual_server 192.168.10.110:80/TCP has no real servers: its traffic is \
             dropped",
        ]
    );
    // What is printed is what is sent: no warning the second time.
    let again = parse(&config.to_toml(), "printed").unwrap();
    assert_eq!(again, config);
    assert_eq!(again.warnings().len(), 1);
}

#[test]
fn url_checks_are_what_the_http_checker_takes() {
    let text = cat(&[
        VS,
        RS,
        "[virtual_server.real_server.http_get]\nretry = 3\ndelay_before_retry = 2\n",
        "[[virtual_server.real_server.http_get.url]]\npath = \"/a\"\n",
        "[[virtual_server.real_server.http_get.url]]\npath = \"/b\"\nstatus_code = 204\n",
        "digest = \"9B3A0C85A887A256D6939DA88AABD8CD\"\n",
        DP,
    ]);
    let config = parse(&text, "t.toml").unwrap();
    let vs = &config.virtual_servers[0];
    let rs = &vs.real_servers[0];
    let http = rs.http_get.as_ref().unwrap();
    assert_eq!(
        http.url_checks(),
        [
            UrlCheck { path: "/a".into(), status_code: Some(200), digest: None },
            UrlCheck {
                path: "/b".into(),
                status_code: Some(204),
                digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
            },
        ]
    );
    assert_eq!(
        rs.checker_config(vs.delay_loop),
        Some(CheckerConfig {
            delay_loop: secs(60),
            retry: 3,
            delay_before_retry: secs(2),
            alpha: false
        })
    );
    let bare = parse(&cat(&[VS, RS, DP]), "t.toml").unwrap();
    assert_eq!(bare.virtual_servers[0].real_servers[0].checker_config(secs(3)), None);
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
        persistence in proptest::option::of((1u32..=u32::MAX, 1u32..=32)),
        quorum in 1u32..=1000,
        hysteresis in 0u32..1000,
        sorry in proptest::option::of((20u8..=250, any::<bool>())),
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
        if let Some((timeout, prefix)) = persistence {
            let mask = Ipv4Addr::from(u32::MAX << (32 - prefix));
            text += &format!("persistence_timeout = {timeout}\npersistence_granularity = \"{mask}\"\n");
        }
        text += &format!("quorum = {quorum}\nhysteresis = {}\n", hysteresis % quorum);
        if let Some((host, inhibit)) = sorry {
            text += &format!(
                "sorry_server = {{ ip = \"10.0.0.{host}\", port = 443 }}\nsorry_server_inhibit = {inhibit}\n"
            );
        }
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
        let vs = &config.virtual_servers[0];
        prop_assert_eq!(
            vs.persistence().map(|p| (p.timeout.as_secs(), u32::from(p.prefix_len()))),
            persistence.map(|(t, p)| (u64::from(t), p))
        );
        prop_assert_eq!(vs.sorry_server.map(|s| s.ip.octets()[3]), sorry.map(|(h, _)| h));
        let printed = config.to_toml();
        let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
        prop_assert_eq!(&again, &config);
        prop_assert_eq!(again.to_toml(), printed);
    }

    #[test]
    fn valid_vrrp_instances_round_trip(
        v3 in any::<bool>(),
        interval in 1u16..=4095,
        master in any::<bool>(),
        nopreempt in any::<bool>(),
        preempt_delay_ms in 0u32..=1_000_000,
        garp in (0u32..=4294, 1u32..=1000, 0u32..=86400, 1u32..=1000),
        lower in proptest::option::of((0u32..=4294, 0u32..=1000)),
        global_garp in proptest::option::of((0u32..=4294, 1u32..=1000)),
        unicast in proptest::option::of((2u8..=99, proptest::collection::btree_set(100u8..=200, 1..4))),
        notify in proptest::option::of("/[a-z]{1,8}(/[a-z_]{1,8})?( [A-Za-z0-9'_-]{1,6}){0,2}"),
        scripts in proptest::collection::vec((1u32..=600, -253i32..=253, 1u32..=10, 1u32..=10), 0..3),
    ) {
        let mut text = String::new();
        if let Some((delay, repeat)) = global_garp {
            text += &format!(
                "[global_defs]\nvrrp_garp_master_delay = {delay}\nvrrp_garp_master_repeat = {repeat}\n"
            );
        }
        for (i, (interval, weight, rise, fall)) in scripts.iter().enumerate() {
            text += &format!(
                "[[vrrp_script]]\nname = \"chk_{i}\"\nscript = \"/bin/check {i}\"\n\
                 interval = {interval}\nweight = {weight}\nrise = {rise}\nfall = {fall}\n"
            );
        }
        let (version, advert) = if v3 {
            (3, format!("{:?}", f64::from(interval) / 100.0))
        } else {
            (2, format!("{}", interval % 255 + 1))
        };
        text += &format!(
            "[[vrrp_instance]]\nname = \"VI_1\"\nstate = \"{}\"\ninterface = \"eth0\"\n\
             virtual_router_id = 51\nvrrp_version = {version}\nadvert_int = {advert}\n\
             virtual_ipaddress = [\"10.0.0.1/24\"]\n\
             garp_master_delay = {}\ngarp_master_repeat = {}\ngarp_master_refresh = {}\n\
             garp_master_refresh_repeat = {}\n",
            if master { "MASTER" } else { "BACKUP" },
            garp.0, garp.1, garp.2, garp.3,
        );
        if !master {
            text += &format!(
                "nopreempt = {nopreempt}\npreempt_delay = {:?}\n",
                f64::from(preempt_delay_ms) / 1000.0
            );
        }
        if let Some((delay, repeat)) = lower {
            text += &format!("garp_lower_prio_delay = {delay}\ngarp_lower_prio_repeat = {repeat}\n");
        }
        if let Some((src, peers)) = &unicast {
            let peers: Vec<String> = peers.iter().map(|p| format!("10.0.0.{p}")).collect();
            text += &format!("unicast_src_ip = \"10.0.0.{src}\"\nunicast_peer = {peers:?}\n");
        }
        if let Some(cmd) = &notify {
            text += &format!("notify_master = {cmd:?}\nnotify = {cmd:?}\n");
        }
        let names: Vec<String> = (0..scripts.len()).map(|i| format!("chk_{i}")).collect();
        text += &format!("track_script = {names:?}\n");

        let config = parse(&text, "gen.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let vi = &config.vrrp_instances[0];
        // Whatever the file says, the state machine accepts it.
        let state = vi.state_config(Ipv4Addr::new(10, 0, 0, 2));
        prop_assert_eq!(state.validate(), Ok(()));
        prop_assert_eq!(state.preempt, master || !nopreempt);
        let g = vi.garp_config();
        prop_assert_eq!((g.master_delay, g.master_repeat), (secs(garp.0.into()), garp.1));
        prop_assert_eq!(g.master_refresh, (garp.2 > 0).then(|| secs(garp.2.into())));
        let (lower_delay, lower_repeat) = lower.unwrap_or((garp.0, garp.1));
        prop_assert_eq!((g.lower_prio_delay, g.lower_prio_repeat), (secs(lower_delay.into()), lower_repeat));
        prop_assert_eq!(config.track_scripts(vi).len(), scripts.len());
        prop_assert_eq!(vi.notify_script(vrrp::State::Master), notify.as_deref());
        let printed = config.to_toml();
        let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
        prop_assert_eq!(&again, &config);
        prop_assert_eq!(again.to_toml(), printed);
    }
}
