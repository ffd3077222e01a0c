//! The importer against the seed's lab (must equal configs/seed-lab.toml),
//! a table of snippets with their exact notes, every Debian sample as shipped
//! and with `lb_kind DR`, line accounting, includes, and arbitrary text.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::convert::{self, UNHANDLED};
use super::lexer::{self, LexOptions};
use super::NoteKind::{Approximated as A, Cosmetic as C, NotCarried as N, Refused as R};
use super::*;
use crate::config;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keepalived")
}

/// The text with every `lb_kind NAT` line made `lb_kind DR` (same line numbers).
fn dr(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            if l.trim_start().starts_with("lb_kind") {
                l.replace("NAT", "DR")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn eth0() -> ImportOptions {
    ImportOptions { dataplane_interface: Some("eth0".into()), ..ImportOptions::default() }
}

/// (line, keyword, kind) of each note, sorted, optionally without the cosmetic ones.
fn shape(report: &ImportReport, cosmetic: bool) -> Vec<(usize, String, NoteKind)> {
    let mut out: Vec<_> = report
        .notes
        .iter()
        .filter(|n| cosmetic || n.kind != C)
        .map(|n| (n.line, n.keyword.clone(), n.kind))
        .collect();
    out.sort();
    out
}

fn expected(list: &[(usize, &str, NoteKind)]) -> Vec<(usize, String, NoteKind)> {
    let mut out: Vec<_> = list.iter().map(|(l, k, kind)| (*l, (*k).to_owned(), *kind)).collect();
    out.sort();
    out
}

fn listing(report: &ImportReport) -> String {
    report.notes.iter().map(|n| format!("  {:?} {n}\n", n.kind)).collect()
}

// ---------------------------------------------------------------------------
// The seed

#[test]
fn seed_converts_to_the_seed_lab_config() {
    let report = import(&testdata().join("keepalived.conf")).expect("the seed reads");
    // Only the empty notification_email block is left out, and it is cosmetic.
    assert_eq!(
        shape(&report, true),
        expected(&[(2, "notification_email", C)]),
        "{}",
        listing(&report)
    );
    assert!(report.notes[0].file.ends_with("testdata/keepalived/keepalived.conf"));
    assert!(report.complete);
    assert_eq!(report.exit_code(), 0);

    let converted = config::parse(&report.toml, "<converted>").expect("the result validates");
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/seed-lab.toml");
    let lab = config::load(&lab).expect("configs/seed-lab.toml validates");
    assert_eq!(converted, lab, "converted:\n{}", report.toml);
    // The VIP stays under VRRP, as in the seed: nothing is owned unconditionally.
    assert!(converted.unconditional_vips().is_empty());
    assert_eq!(converted.vrrp_vips(), lab.vrrp_vips());
}

#[test]
fn seed_values_name_their_keepalived_lines() {
    let report = import(&testdata().join("keepalived.conf")).expect("the seed reads");
    // Spot checks of the provenance comments: the group's VIP comes from the
    // included file's line 2, the checker port from its line 19.
    assert!(
        report.toml.contains("vip = \"192.168.10.110\"              # web_servers.conf:2"),
        "{}",
        report.toml
    );
    assert!(report.toml.contains("connect_port = 80                   # web_servers.conf:19"));
    assert!(report.toml.contains("auth_pass = \"1111\"                  # keepalived.conf:15"));
}

// ---------------------------------------------------------------------------
// Snippets

/// Owns 10.0.0.100 on eth0, so services on it are under VRRP (lines 1-6).
const PRELUDE: &str = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n \
                       virtual_ipaddress {\n 10.0.0.100\n }\n}\n";
const PRELUDE_LINES: usize = 7;

/// A DR service on 10.0.0.100:80 around `body` (body starts at line 10).
fn service(body: &str) -> String {
    format!("virtual_server 10.0.0.100 80 {{\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n{body}}}\n")
}

struct Snippet {
    what: &'static str,
    text: String,
    /// Every note, lines counted from the snippet's first line (after PRELUDE).
    notes: &'static [(usize, &'static str, NoteKind)],
    check: fn(&config::Config),
}

fn snippets() -> Vec<Snippet> {
    vec![
        Snippet {
            what: "NAT is refused with DR's reason, the service left out",
            text: "virtual_server 10.0.0.100 80 {\n lb_kind NAT\n lb_algo rr\n protocol TCP\n}\n".into(),
            notes: &[(2, "lb_kind", R)],
            check: |c| assert!(c.virtual_servers.is_empty()),
        },
        Snippet {
            what: "TUN is refused",
            text: "virtual_server 10.0.0.100 80 {\n lvs_method TUN type gue port 6080\n lvs_sched wrr\n protocol TCP\n}\n".into(),
            notes: &[(2, "lvs_method", R)],
            check: |c| assert!(c.virtual_servers.is_empty()),
        },
        Snippet {
            what: "no lvs_method is keepalived's NAT: refused at the virtual_server line",
            text: "virtual_server 10.0.0.100 80 {\n lvs_sched wrr\n protocol TCP\n real_server 10.0.0.3 80 {\n }\n}\n".into(),
            notes: &[(1, "virtual_server", R)],
            check: |c| assert!(c.virtual_servers.is_empty()),
        },
        Snippet {
            what: "no lvs_method but every real server DR: carried",
            text: "virtual_server 10.0.0.100 80 {\n lvs_sched wrr\n protocol TCP\n real_server 10.0.0.3 80 {\n  lb_kind DR\n }\n}\n".into(),
            notes: &[],
            check: |c| assert_eq!(c.virtual_servers[0].real_servers.len(), 1),
        },
        Snippet {
            what: "a scheduler xdplb lacks is refused; none is keepalived's wlc",
            text: format!(
                "{}{}",
                "virtual_server 10.0.0.100 80 {\n lvs_method DR\n lvs_sched lc\n protocol TCP\n}\n",
                "virtual_server 10.0.0.100 81 {\n lvs_method DR\n protocol TCP\n}\n"
            ),
            notes: &[(3, "lvs_sched", R), (6, "virtual_server", R)],
            check: |c| assert!(c.virtual_servers.is_empty()),
        },
        Snippet {
            what: "SCTP is refused; no protocol is keepalived's UDP",
            text: format!(
                "{}{}",
                "virtual_server 10.0.0.100 80 {\n lvs_method DR\n lvs_sched rr\n protocol SCTP\n}\n",
                "virtual_server 10.0.0.100 53 {\n lvs_method DR\n lvs_sched rr\n}\n"
            ),
            notes: &[(4, "protocol", R), (6, "virtual_server", C)],
            check: |c| {
                assert_eq!(c.virtual_servers.len(), 1);
                assert_eq!(c.virtual_servers[0].protocol.name(), "UDP");
                assert_eq!(c.virtual_servers[0].lvs_sched, dataplane::tables::Scheduler::Rr);
            },
        },
        Snippet {
            what: "persistence, quorum and sorry server are carried",
            text: service(
                " persistence_timeout 50\n persistence_granularity 255.255.255.0\n quorum 2\n \
                 hysteresis 1\n quorum_up \"/bin/up.sh now\"\n quorum_down /bin/down.sh\n \
                 sorry_server 10.0.0.9 80\n sorry_server_inhibit\n sorry_server_lvs_method DR\n",
            ),
            notes: &[],
            check: |c| {
                let vs = &c.virtual_servers[0];
                let p = vs.persistence().expect("persistent");
                assert_eq!((p.timeout.as_secs(), p.prefix_len()), (50, 24));
                assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
                assert_eq!(vs.quorum_up.as_deref(), Some("/bin/up.sh now"));
                assert_eq!(vs.quorum_down.as_deref(), Some("/bin/down.sh"));
                let sorry = vs.sorry_server.expect("sorry server");
                assert_eq!((sorry.ip.to_string(), sorry.port), ("10.0.0.9".to_owned(), 80));
                assert!(vs.sorry_server_inhibit);
            },
        },
        Snippet {
            what: "persistence as keepalived defaults it: 360 s, per client address",
            text: format!(
                "{}{}",
                service(" persistence_timeout\n"),
                "virtual_server 10.0.0.100 81 {\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n \
                 persistence_granularity 255.255.0.0\n}\n"
            ),
            notes: &[],
            check: |c| {
                let p = c.virtual_servers[0].persistence().expect("persistent");
                assert_eq!((p.timeout.as_secs(), p.prefix_len()), (360, 32));
                let p = c.virtual_servers[1].persistence().expect("persistent");
                assert_eq!((p.timeout.as_secs(), p.prefix_len()), (360, 16));
            },
        },
        Snippet {
            what: "a netmask with holes is ignored, as keepalived ignores it",
            text: service(" persistence_granularity 255.0.255.0\n"),
            notes: &[(5, "persistence_granularity", C)],
            check: |c| assert_eq!(c.virtual_servers[0].persistence(), None),
        },
        Snippet {
            what: "a hysteresis not below the quorum is carried as quorum - 1",
            text: service(" quorum 3\n hysteresis 5\n"),
            notes: &[(6, "hysteresis", A)],
            check: |c| assert_eq!((c.virtual_servers[0].quorum, c.virtual_servers[0].hysteresis), (3, 2)),
        },
        Snippet {
            what: "sorry_server_inhibit before its sorry_server is ignored, as by keepalived",
            text: service(" sorry_server_inhibit\n sorry_server 10.0.0.9 8080\n"),
            notes: &[(5, "sorry_server_inhibit", C), (6, "sorry_server", C)],
            check: |c| {
                let vs = &c.virtual_servers[0];
                // DR: the sorry server is sent the virtual port.
                assert_eq!(vs.sorry_server.map(|s| s.port), Some(80));
                assert!(!vs.sorry_server_inhibit);
            },
        },
        Snippet {
            what: "a sorry server no host can have is left out",
            text: service(" sorry_server 224.0.0.18 80\n"),
            notes: &[(5, "sorry_server", N)],
            check: |c| assert_eq!(c.virtual_servers[0].sorry_server, None),
        },
        Snippet {
            what: "a NAT sorry server or one that is a VIP is refused, the service kept",
            text: format!(
                "{}{}",
                service(" sorry_server 10.0.0.9 80\n sorry_server_lvs_method NAT\n"),
                "virtual_server 10.0.0.100 81 {\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n \
                 sorry_server 10.0.0.100 81\n}\n"
            ),
            notes: &[(6, "sorry_server_lvs_method", R), (12, "sorry_server", R)],
            check: |c| {
                assert_eq!(c.virtual_servers.len(), 2);
                assert!(c.virtual_servers.iter().all(|vs| vs.sorry_server.is_none()));
            },
        },
        Snippet {
            what: "checkers xdplb lacks are named, the real server kept without them",
            text: service(
                " real_server 10.0.0.3 80 {\n  SSL_GET {\n   url {\n    path /\n   }\n  }\n  \
                 MISC_CHECK {\n   misc_path /bin/true\n  }\n  SMTP_CHECK {\n  }\n  DNS_CHECK {\n   \
                 type A\n  }\n  TCP_CHECK {\n   connect_timeout 2\n  }\n }\n",
            ),
            notes: &[(6, "SSL_GET", N), (11, "MISC_CHECK", N), (14, "SMTP_CHECK", N), (16, "DNS_CHECK", N)],
            check: |c| {
                let rs = &c.virtual_servers[0].real_servers[0];
                assert!(rs.http_get.is_none());
                let tcp = rs.tcp_check.as_ref().expect("TCP_CHECK carried");
                assert_eq!(tcp.connect_timeout.as_secs_f64(), 2.0);
            },
        },
        Snippet {
            what: "checker settings inherit from the virtual and real server, nb_get_retry is retry",
            text: service(
                " connect_timeout 4\n delay_before_retry 2\n inhibit_on_failure\n real_server 10.0.0.3 80 {\n  \
                 retry 5\n  weight 7\n  HTTP_GET {\n   url {\n    path /ok\n    status_code 204\n    \
                 digest 640205B7B0FC66C1EA91C463FAC6334D\n   }\n   nb_get_retry 3\n   bindto 10.0.0.1\n  }\n }\n",
            ),
            notes: &[],
            check: |c| {
                let rs = &c.virtual_servers[0].real_servers[0];
                assert!(rs.inhibit_on_failure);
                assert_eq!(rs.weight, 7);
                let http = rs.http_get.as_ref().expect("HTTP_GET carried");
                assert_eq!(http.connect_timeout.as_secs_f64(), 4.0);
                assert_eq!(http.delay_before_retry.as_secs_f64(), 2.0);
                assert_eq!(http.retry, 3, "the checker's nb_get_retry beats the real server's retry");
                assert_eq!(http.bindto, Some("10.0.0.1".parse().expect("ip")));
                assert_eq!(http.urls[0].status_code, 204);
                assert_eq!(http.urls[0].digest.as_deref(), Some("640205b7b0fc66c1ea91c463fac6334d"));
            },
        },
        Snippet {
            what: "a status code range is narrowed, a missing one is 200 (keepalived: any 2xx)",
            text: service(
                " real_server 10.0.0.3 80 {\n  HTTP_GET {\n   url {\n    path /a\n    status_code 200-299 503\n   }\n   \
                 url {\n    path /b\n   }\n  }\n }\n",
            ),
            notes: &[(9, "status_code", A), (11, "url", A)],
            check: |c| {
                let urls = &c.virtual_servers[0].real_servers[0].http_get.as_ref().expect("http").urls;
                assert_eq!((urls[0].status_code, urls[1].status_code), (200, 200));
            },
        },
        Snippet {
            what: "a real server port differing from the virtual port: DR's port, checks keep theirs",
            text: service(" real_server 10.0.0.3 8080 {\n  TCP_CHECK {\n  }\n }\n"),
            notes: &[(5, "real_server", C)],
            check: |c| {
                let rs = &c.virtual_servers[0].real_servers[0];
                assert_eq!(rs.port, 80);
                assert_eq!(rs.tcp_check.as_ref().expect("tcp").connect_port, 8080);
            },
        },
        Snippet {
            what: "a real server that is a VIP, a duplicate, one with its own NAT",
            text: service(
                " real_server 10.0.0.100 80 {\n }\n real_server 10.0.0.3 80 {\n }\n real_server 10.0.0.3 80 {\n }\n \
                 real_server 10.0.0.4 80 {\n  lvs_method NAT\n }\n",
            ),
            notes: &[(5, "real_server", R), (9, "real_server", C), (12, "lvs_method", R)],
            check: |c| assert_eq!(c.virtual_servers[0].real_servers.len(), 1),
        },
        Snippet {
            what: "fwmark, port-less and IPv6 virtual servers are refused",
            text: "virtual_server fwmark 1 {\n lvs_method DR\n lvs_sched wrr\n}\n\
                   virtual_server 10.0.0.100 {\n lvs_method DR\n lvs_sched wrr\n}\n\
                   virtual_server 2001:db8::1 80 {\n lvs_method DR\n lvs_sched wrr\n}\n"
                .into(),
            notes: &[(1, "virtual_server", R), (5, "virtual_server", R), (9, "virtual_server", R)],
            check: |c| assert!(c.virtual_servers.is_empty()),
        },
        Snippet {
            what: "a group expands ranges; fwmark and IPv6 entries are refused, an unused group noted",
            text: "virtual_server_group G {\n 10.0.0.100-101 80\n 10.0.0.102/31 443\n fwmark 3\n 2001:db8::1 80\n \
                   10.0.1.0/16 80\n}\nvirtual_server_group UNUSED {\n 10.0.0.200 80\n}\n\
                   virtual_server group G {\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n}\n"
                .into(),
            notes: &[
                (2, "virtual_server", A),
                (3, "virtual_server", A),
                (3, "virtual_server", A),
                (4, "fwmark", R),
                (5, "2001:db8::1", R),
                (6, "10.0.1.0/16", R),
                (8, "virtual_server_group", C),
            ],
            check: |c| {
                let eps: Vec<String> =
                    c.virtual_servers.iter().map(|v| format!("{}:{}", v.vip, v.port)).collect();
                assert_eq!(eps, ["10.0.0.100:80", "10.0.0.101:80", "10.0.0.102:443", "10.0.0.103:443"]);
                // .100 is VI_1's; the others are owned unconditionally (noted above).
                assert_eq!(c.unconditional_vips().len(), 3);
            },
        },
        Snippet {
            what: "a virtual server listed twice keeps the first",
            text: format!("{}{}", service(""), service("")),
            notes: &[(6, "virtual_server", N)],
            check: |c| assert_eq!(c.virtual_servers.len(), 1),
        },
        Snippet {
            what: "vrrp_instance keys, carried and not",
            text: "vrrp_instance VI_2 {\n state MASTER\n interface eth0\n virtual_router_id 52\n priority 255\n \
                   advert_int 0.5\n nopreempt\n authentication {\n  auth_type AH\n  auth_pass x\n }\n \
                   unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n  10.0.0.5 min_ttl 2\n }\n \
                   track_interface {\n  eth1\n  eth2 weight 10\n }\n notify_master /etc/m.sh keepalived_script\n \
                   notify_backup \"/etc/b.sh BACKUP\"\n virtual_ipaddress {\n  10.0.0.110/24 dev eth0 label eth0:1\n  \
                   10.0.0.111 dev eth1\n  10.0.0.112 scope link\n }\n smtp_alert\n garp_master_delay 10\n \
                   higher_prio_send_advert off\n use_vmac\n}\n"
                .into(),
            notes: &[
                (5, "priority", A),
                (6, "advert_int", A),
                (7, "nopreempt", C),
                (8, "authentication", N),
                (15, "10.0.0.5", N),
                (19, "eth2", N),
                (21, "notify_master", N),
                (24, "10.0.0.110/24", C),
                (25, "10.0.0.111", N),
                (26, "10.0.0.112", A),
                (28, "smtp_alert", C),
                (31, "use_vmac", N),
            ],
            check: |c| {
                let v = &c.vrrp_instances[1];
                assert_eq!(v.name, "VI_2");
                assert_eq!((v.priority, v.advert_int.as_secs_f64()), (254, 1.0));
                assert!(!v.nopreempt, "keepalived ignores nopreempt with state MASTER");
                assert_eq!(v.auth_pass, None);
                assert_eq!(v.unicast_peer.len(), 2);
                assert_eq!(v.track_interface, ["eth1"]);
                assert_eq!(v.notify_master.as_deref(), Some("/etc/m.sh"));
                assert_eq!(v.notify_backup.as_deref(), Some("/etc/b.sh BACKUP"));
                let vips: Vec<String> = v.virtual_ipaddress.iter().map(ToString::to_string).collect();
                assert_eq!(vips, ["10.0.0.110/24", "10.0.0.112/32"]);
                assert_eq!(v.garp_master_delay.as_secs_f64(), 10.0);
                assert!(!v.higher_prio_send_advert);
            },
        },
        Snippet {
            what: "instances xdplb cannot run: IPv6, no interface, a VRID taken",
            text: "vrrp_instance V6 {\n interface eth0\n virtual_router_id 60\n virtual_ipaddress {\n  2001:db8::1\n }\n}\n\
                   vrrp_instance NOIF {\n virtual_router_id 61\n}\n\
                   vrrp_instance DUP {\n interface eth0\n virtual_router_id 51\n}\n"
                .into(),
            notes: &[(5, "2001:db8::1", R), (8, "vrrp_instance", R), (11, "vrrp_instance", N)],
            check: |c| assert_eq!(c.vrrp_instances.len(), 1),
        },
        Snippet {
            what: "vrrp_script and track_script",
            text: "vrrp_script chk {\n script \"/usr/bin/pgrep -x nginx\"\n interval 2\n fall 3\n rise 2\n \
                   weight 0\n user nobody\n}\nvrrp_script args {\n script /usr/bin/test -e \"/tmp/a b\"\n}\n\
                   vrrp_script rev {\n script /bin/true\n weight 10 reverse\n}\n\
                   vrrp_instance VI_3 {\n interface eth0\n virtual_router_id 53\n track_script {\n  chk\n  \
                   args weight 5\n  missing\n  rev\n }\n}\n"
                .into(),
            notes: &[(14, "weight", N), (21, "args", N), (22, "missing", N)],
            check: |c| {
                let s = c.vrrp_script("chk").expect("chk carried");
                assert_eq!(s.script, "/usr/bin/pgrep -x nginx");
                assert_eq!((s.interval.as_secs_f64(), s.fall, s.rise), (2.0, 3, 2));
                assert_eq!(s.user.as_deref(), Some("nobody"));
                assert_eq!(c.vrrp_script("args").expect("args").script, "/usr/bin/test -e '/tmp/a b'");
                assert_eq!(c.vrrp_instances[1].track_script, ["chk", "rev"]);
            },
        },
        Snippet {
            what: "global_defs: GARP and timeouts carried, cosmetic and unsupported named",
            text: "global_defs {\n router_id lb1\n notification_email {\n  ops@example.com\n }\n smtp_server 10.0.0.1\n \
                   vrrp_garp_master_delay 2\n vrrp_garp_master_repeat 3\n vrrp_garp_interval 0.001\n \
                   vrrp_garp_lower_prio_repeat 0\n vrrp_version 2\n lvs_timeouts tcp 7200 udp 60\n vrrp_strict\n \
                   enable_traps\n no_such_keyword 1\n}\n"
                .into(),
            notes: &[(3, "notification_email", C), (6, "smtp_server", C), (13, "vrrp_strict", N), (14, "enable_traps", C), (15, "no_such_keyword", N)],
            check: |c| {
                let g = &c.global_defs;
                assert_eq!(g.router_id.as_deref(), Some("lb1"));
                assert_eq!(g.vrrp_garp_master_delay.as_secs_f64(), 2.0);
                assert_eq!((g.vrrp_garp_master_repeat, g.vrrp_garp_lower_prio_repeat), (3, 0));
                assert_eq!(g.vrrp_garp_interval.as_secs_f64(), 0.001);
                assert_eq!(c.dataplane.tcp_timeout.as_secs_f64(), 7200.0);
                assert_eq!(c.dataplane.udp_timeout.as_secs_f64(), 60.0);
                assert_eq!(c.vrrp_instances[0].garp_master_delay.as_secs_f64(), 2.0);
            },
        },
        Snippet {
            what: "braces out of place, unknown blocks, a key set twice",
            text: "}\nvrrp_sync_group G {\n group {\n  VI_1\n }\n}\nstatic_routes {\n 10.1.0.0/16 via 10.0.0.1\n}\n\
                   {\n lost 1\n}\nfrobnicate 1\nvrrp_instance VI_4 {\n interface eth0\n virtual_router_id 54\n \
                   priority 10\n priority 20\n"
                .into(),
            notes: &[
                (1, "}", C),
                (2, "vrrp_sync_group", N),
                (7, "static_routes", N),
                (10, "{", N),
                (13, "frobnicate", N),
                (14, "vrrp_instance", C),
                (17, "priority", C),
            ],
            check: |c| assert_eq!(c.vrrp_instances[1].priority, 20),
        },
        Snippet {
            what: "comments, quotes and one-line blocks",
            text: "# a comment\n! another\nvirtual_server 10.0.0.100 80 { lvs_method DR  # inline\n lvs_sched \"wrr\" ! inline\n \
                   protocol TCP\n real_server 10.0.0.3 80 { weight 3 }\n}\n"
                .into(),
            notes: &[],
            check: |c| assert_eq!(c.virtual_servers[0].real_servers[0].weight, 3),
        },
    ]
}

#[test]
fn snippets_give_their_notes_at_exact_lines() {
    for s in snippets() {
        let text = format!("{PRELUDE}{}", s.text);
        let report = import_text(&text, "k.conf", None, &eth0());
        let want: Vec<(usize, &str, NoteKind)> =
            s.notes.iter().map(|(l, k, kind)| (l + PRELUDE_LINES, *k, *kind)).collect();
        assert_eq!(
            shape(&report, true),
            expected(&want),
            "{}:\n{}{}",
            s.what,
            listing(&report),
            report.toml
        );
        assert!(report.notes.iter().all(|n| n.file == "k.conf"), "{}", s.what);
        assert_eq!(report.complete, want.iter().all(|(_, _, k)| *k == C), "{}", s.what);
        let parsed = config::parse(&report.toml, "<converted>")
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", s.what, report.toml));
        (s.check)(&parsed);
    }
}

#[test]
fn notes_print_as_file_line_keyword_reason() {
    let report = import_text(
        &format!("{PRELUDE}virtual_server 10.0.0.100 80 {{\n lb_kind NAT\n lb_algo rr\n}}\n"),
        "conf.d/k.conf",
        None,
        &ImportOptions::default(),
    );
    let first = report.notes.first().expect("a note").to_string();
    assert!(
        first.starts_with(
            "conf.d/k.conf:9: lb_kind: NAT: xdplb forwards by direct server return only"
        ),
        "{first}"
    );
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn without_an_instance_the_interface_is_left_to_the_operator() {
    let text = "virtual_server 10.0.0.100 80 {\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n}\n";
    let report = import_text(text, "k.conf", None, &ImportOptions::default());
    let note = report.notes.iter().find(|n| n.keyword == "[dataplane] interface").expect("named");
    assert_eq!((note.line, note.kind), (1, N));
    assert!(note.reason.contains("fails validation"), "{}", note.reason);
    assert!(!report.complete);
    let err = config::parse(&report.toml, "x").expect_err("no interface");
    assert!(err.to_string().contains("no data-plane interface"), "{err}");
    // Given one, the result validates (the VIP is then xdplb's own, which is noted).
    let report = import_text(text, "k.conf", None, &eth0());
    assert_eq!(shape(&report, true), expected(&[(1, "virtual_server", A)]));
    let parsed = config::parse(&report.toml, "x").expect("validates");
    assert_eq!(parsed.dataplane_interface(), "eth0");
}

#[test]
fn a_given_interface_drops_services_whose_vip_lives_elsewhere() {
    let text = "vrrp_instance V {\n interface eth1\n virtual_router_id 9\n virtual_ipaddress {\n  10.9.0.1\n }\n}\n\
                virtual_server 10.9.0.1 80 {\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n}\n";
    let report = import_text(text, "k.conf", None, &eth0());
    assert_eq!(shape(&report, true), expected(&[(8, "virtual_server", N)]), "{}", listing(&report));
    let parsed = config::parse(&report.toml, "x").expect("validates");
    assert!(parsed.virtual_servers.is_empty());
    // Without the option the instance's interface is the data plane's.
    let report = import_text(text, "k.conf", None, &ImportOptions::default());
    assert!(report.complete, "{}", listing(&report));
    assert_eq!(config::parse(&report.toml, "x").expect("validates").dataplane_interface(), "eth1");
}

#[test]
fn the_configuration_id_selects_conditional_lines() {
    let path = testdata().join("debian-samples/keepalived.conf.conditional_conf");
    let high = ImportOptions { config_id: Some("high".into()), ..ImportOptions::default() };
    let report = import_with(&path, &high).expect("reads");
    // The @low lines are skipped as keepalived -i high skips them: cosmetic now.
    assert_eq!(
        shape(&report, false),
        expected(&[(3, "net_namespace", N), (23, "use_vmac", N), (29, "eth2", N)]),
        "{}",
        listing(&report)
    );
    let parsed = config::parse(&report.toml, "x").expect("validates");
    assert_eq!(
        parsed.vrrp_script("check_VI_0").expect("script").script,
        "/etc/keepalived/scripts/check_high_VI_0.sh"
    );
    assert_eq!(parsed.vrrp_instances[0].priority, 170);
    assert_eq!(parsed.vrrp_instances[0].track_script, ["check_VI_0"]);
}

// ---------------------------------------------------------------------------
// Debian's samples

struct Sample {
    name: &'static str,
    /// Notes that change behaviour, as shipped.
    shipped: &'static [(usize, &'static str, NoteKind)],
    /// The same with `lb_kind DR`; `None`: as shipped.
    dr: Option<&'static [(usize, &'static str, NoteKind)]>,
    /// Virtual servers and vrrp_instances the DR variant carries.
    services: usize,
    instances: usize,
}

const IF: &str = "[dataplane] interface";

#[rustfmt::skip]
const SAMPLES: &[Sample] = &[
    Sample { name: "keepalived.conf.HTTP_GET.port",
        shipped: &[(13, IF, N), (16, "lb_kind", R), (22, "SSL_GET", N)],
        dr: Some(&[(13, "virtual_server", A), (13, IF, N), (22, "SSL_GET", N)]),
        services: 1, instances: 0 },
    // Refused for IPv6 (and, as shipped, for NAT too: every reason is named).
    Sample { name: "keepalived.conf.IPv6",
        shipped: &[(13, "virtual_server", R), (13, IF, N), (16, "lb_kind", R), (21, "real_server", R)],
        dr: Some(&[(13, "virtual_server", R), (13, IF, N), (21, "real_server", R)]),
        services: 0, instances: 0 },
    Sample { name: "keepalived.conf.PING_CHECK",
        shipped: &[(14, IF, N), (17, "lb_kind", R), (23, "PING_CHECK", N)],
        dr: Some(&[(14, "virtual_server", A), (14, IF, N), (23, "PING_CHECK", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.SMTP_CHECK",
        shipped: &[(25, IF, N), (28, "lb_kind", R), (39, "SMTP_CHECK", N), (58, "SMTP_CHECK", N), (89, "SMTP_CHECK", N)],
        dr: Some(&[(25, "virtual_server", A), (25, IF, N), (39, "SMTP_CHECK", N), (58, "SMTP_CHECK", N), (89, "SMTP_CHECK", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.SSL_GET",
        shipped: &[(19, "authentication", N), (33, "lb_kind", R), (39, "SSL_GET", N),
                   (58, "lb_kind", R), (65, "url", A), (69, "url", A)],
        dr: Some(&[(19, "authentication", N), (30, "virtual_server", A), (39, "SSL_GET", N),
                   (65, "url", A), (69, "url", A)]),
        services: 2, instances: 1 },
    Sample { name: "keepalived.conf.UDP_CHECK",
        shipped: &[(14, IF, N), (17, "lb_kind", R), (23, "UDP_CHECK", N)],
        dr: Some(&[(14, "virtual_server", A), (14, IF, N), (23, "UDP_CHECK", N)]),
        services: 1, instances: 0 },
    // No -i given: every @high/@low line is skipped, as keepalived without -i
    // does, which leaves check_VI_0 without a script.
    Sample { name: "keepalived.conf.conditional_conf",
        shipped: &[(3, "@high", N), (4, "@low", N), (6, "vrrp_script", N), (7, "@high", N), (8, "@low", N),
                   (19, "@high", N), (20, "@low", N), (23, "use_vmac", N), (25, "check_VI_0", N), (29, "eth2", N)],
        dr: None, services: 0, instances: 1 },
    Sample { name: "keepalived.conf.fwmark",
        shipped: &[(7, "virtual_server", R), (7, IF, N), (10, "lb_kind", R)],
        dr: Some(&[(7, "virtual_server", R), (7, IF, N)]),
        services: 0, instances: 0 },
    Sample { name: "keepalived.conf.inhibit",
        shipped: &[(13, IF, N), (16, "lb_kind", R), (24, "url", A)],
        dr: Some(&[(13, "virtual_server", A), (13, IF, N), (24, "url", A)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.misc_check",
        shipped: &[(14, IF, N), (17, "lb_kind", R), (23, "MISC_CHECK", N)],
        dr: Some(&[(14, "virtual_server", A), (14, IF, N), (23, "MISC_CHECK", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.misc_check_arg",
        shipped: &[(13, IF, N), (16, "lb_kind", R), (22, "MISC_CHECK", N)],
        dr: Some(&[(13, "virtual_server", A), (13, IF, N), (22, "MISC_CHECK", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.quorum",
        shipped: &[(23, IF, N), (26, "lb_kind", R), (29, "alpha", N), (30, "omega", N)],
        dr: Some(&[(23, "virtual_server", A), (23, IF, N), (29, "alpha", N), (30, "omega", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.sample",
        shipped: &[(29, "lb_kind", R), (38, "url", A)],
        dr: Some(&[(26, "virtual_server", A), (38, "url", A)]),
        services: 1, instances: 1 },
    Sample { name: "keepalived.conf.status_code",
        shipped: &[(14, IF, N), (17, "lb_kind", R), (23, "SSL_GET", N)],
        dr: Some(&[(14, "virtual_server", A), (14, IF, N), (23, "SSL_GET", N)]),
        services: 1, instances: 0 },
    Sample { name: "keepalived.conf.track_interface",
        shipped: &[(7, "static_routes", N), (25, "192.168.200.17", N), (26, "192.168.200.18", N), (28, "virtual_routes", N)],
        dr: None, services: 0, instances: 1 },
    // In DR the group gives 11 VIP:ports (.3-10 is 8); 192.168.200.1 is both a
    // VIP of the group and a real server, which DR cannot do.
    Sample { name: "keepalived.conf.virtual_server_group",
        shipped: &[(18, "fwmark", R), (19, "fwmark", R), (22, IF, N), (25, "lb_kind", R), 
                   (32, "url", A), (45, "url", A)],
        dr: Some(&[(14, "virtual_server", A), (15, "virtual_server", A), (16, "virtual_server", A),
                   (17, "virtual_server", A), (17, "virtual_server", A), (17, "virtual_server", A), (17, "virtual_server", A),
                   (17, "virtual_server", A), (17, "virtual_server", A), (17, "virtual_server", A), (17, "virtual_server", A),
                   (18, "fwmark", R), (19, "fwmark", R), (22, IF, N), 
                   (29, "real_server", R), (32, "url", A), (45, "url", A)]),
        services: 11, instances: 0 },
    Sample { name: "keepalived.conf.virtualhost",
        shipped: &[(13, IF, N), (16, "lb_kind", R), (19, "virtualhost", N), (24, "SSL_GET", N)],
        dr: Some(&[(13, "virtual_server", A), (13, IF, N), (19, "virtualhost", N), (24, "SSL_GET", N)]),
        services: 1, instances: 0 },
    // Only e-mail and a label left out: complete.
    Sample { name: "keepalived.conf.vrrp", shipped: &[], dr: None, services: 0, instances: 4 },
    Sample { name: "keepalived.conf.vrrp.localcheck",
        shipped: &[(14, "weight", N), (27, "weight", N), (33, "weight", N), (39, "weight", N), (51, "eth1", N), (52, "eth2", N),
                   (57, "chk_haproxy", N), (73, "eth0", N), (74, "eth2", N), (78, "chk_haproxy", N)],
        dr: None, services: 0, instances: 9 },
    Sample { name: "keepalived.conf.vrrp.lvs_syncd",
        shipped: &[(3, "vrrp_sync_group", N), (11, "lvs_sync_daemon_interface", N), (53, "lb_kind", R)],
        dr: Some(&[(3, "vrrp_sync_group", N), (11, "lvs_sync_daemon_interface", N)]),
        services: 1, instances: 3 },
    Sample { name: "keepalived.conf.vrrp.routes",
        shipped: &[(7, "static_routes", N), (22, "192.168.200.17", N), (23, "192.168.200.18", N), (25, "virtual_routes", N)],
        dr: None, services: 0, instances: 1 },
    Sample { name: "keepalived.conf.vrrp.rules",
        shipped: &[(9, "static_rules", N), (21, "192.168.200.17", N), (22, "192.168.200.18", N), (24, "virtual_rules", N)],
        dr: None, services: 0, instances: 1 },
    Sample { name: "keepalived.conf.vrrp.scripts", shipped: &[(6, "vrrp_sync_group", N)], dr: None, services: 0, instances: 3 },
    Sample { name: "keepalived.conf.vrrp.static_ipaddress",
        shipped: &[(7, "static_ipaddress", N), (21, "virtual_routes", N)], dr: None, services: 0, instances: 1 },
    Sample { name: "keepalived.conf.vrrp.sync",
        shipped: &[(3, "vrrp_sync_group", N), (18, "vrrp_sync_group", N)], dr: None, services: 0, instances: 9 },
];

#[test]
fn every_debian_sample_has_its_expected_outcome() {
    let dir = testdata().join("debian-samples");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("samples")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = SAMPLES.iter().map(|s| s.name).collect();
    listed.sort_unstable();
    assert_eq!(on_disk, listed, "every copied sample has an expectation");

    for sample in SAMPLES {
        let path = dir.join(sample.name);
        let text = std::fs::read_to_string(&path).expect("sample");
        let shipped = import(&path).expect("reads");
        assert_eq!(
            shape(&shipped, false),
            expected(sample.shipped),
            "{} as shipped:\n{}",
            sample.name,
            listing(&shipped)
        );
        assert_eq!(shipped.complete, sample.shipped.is_empty(), "{}", sample.name);
        // A lb_kind NAT line is refused with DR's reason, at its own line.
        for (i, line) in text.split('\n').enumerate() {
            if line.trim_start().starts_with("lb_kind NAT") {
                let note = shipped.notes.iter().find(|n| n.line == i + 1).expect("NAT is named");
                assert_eq!(note.kind, R);
                assert!(
                    note.reason.contains("xdplb forwards by direct server return only"),
                    "{note}"
                );
            }
        }

        let label = path.display().to_string();
        let dr_text = dr(&text);
        let variant = import_text(&dr_text, &label, None, &ImportOptions::default());
        let want = sample.dr.unwrap_or(sample.shipped);
        assert_eq!(
            shape(&variant, false),
            expected(want),
            "{} with DR:\n{}",
            sample.name,
            listing(&variant)
        );
        // With the interface known (given, when no vrrp_instance names one),
        // the DR variant always loads: what is left out is only what is named.
        let given = import_text(&dr_text, &label, None, &eth0());
        let parsed = config::parse(&given.toml, "<converted>")
            .unwrap_or_else(|e| panic!("{} with DR: {e}\n{}", sample.name, given.toml));
        assert_eq!(
            (parsed.virtual_servers.len(), parsed.vrrp_instances.len()),
            (sample.services, sample.instances),
            "{}",
            sample.name
        );
        let names_interface = want.iter().any(|(_, k, _)| *k == IF);
        assert_eq!(config::parse(&variant.toml, "x").is_ok(), !names_interface, "{}", sample.name);
    }
}

// ---------------------------------------------------------------------------
// Every line accounted for

/// Lines keepalived reads: not blank and not only a comment.
fn code_lines(text: &str) -> Vec<usize> {
    text.split('\n')
        .enumerate()
        .filter(|(_, line)| {
            let mut quote = false;
            let mut code = String::new();
            for c in line.chars() {
                match c {
                    '"' => quote = !quote,
                    '!' | '#' if !quote => break,
                    _ => {}
                }
                code.push(c);
            }
            !code.trim().is_empty()
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Checks that every code line of every file read is carried or named, and
/// that no keyword fell through to the safety net.
fn assert_accounted(lexed: lexer::Lexed, texts: &[(String, String)], what: &str) {
    let converted = convert::convert(lexed, &eth0());
    for n in &converted.notes {
        assert_ne!(n.reason, UNHANDLED, "{what}: {n}");
    }
    for (file, text) in texts {
        for line in code_lines(text) {
            assert!(
                converted.accounted.contains(&(file.clone(), line)),
                "{what}: {file}:{line} is neither carried nor named"
            );
        }
    }
}

#[test]
fn every_line_of_every_sample_is_carried_or_named() {
    let dir = testdata().join("debian-samples");
    for sample in SAMPLES {
        let text = std::fs::read_to_string(dir.join(sample.name)).expect("sample");
        for (variant, text) in [("shipped", text.clone()), ("DR", dr(&text))] {
            let lexed = lexer::lex_text(&text, sample.name, None, &LexOptions::default());
            assert_accounted(
                lexed,
                &[(sample.name.to_owned(), text)],
                &format!("{} {variant}", sample.name),
            );
        }
    }
}

#[test]
fn every_line_of_the_seed_and_its_include_is_carried_or_named() {
    let main = testdata().join("keepalived.conf");
    let options = LexOptions { config_id: None, follow_includes: true };
    let lexed = lexer::lex_file(&main, &options).expect("reads");
    let texts: Vec<(String, String)> = ["keepalived.conf", "web_servers.conf"]
        .iter()
        .map(|f| {
            let path = testdata().join(f);
            (path.display().to_string(), std::fs::read_to_string(&path).expect("read"))
        })
        .collect();
    assert_accounted(lexed, &texts, "seed");
}

#[test]
fn snippets_leave_nothing_unaccounted() {
    for s in snippets() {
        let text = format!("{PRELUDE}{}", s.text);
        let lexed = lexer::lex_text(&text, "k.conf", None, &LexOptions::default());
        assert_accounted(lexed, &[("k.conf".to_owned(), text)], s.what);
    }
}

// ---------------------------------------------------------------------------
// Includes and files

#[test]
fn includes_glob_relative_to_the_including_file() {
    let dir = std::env::temp_dir().join(format!("xdplb-import-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).expect("temp dir");
    std::fs::write(
        dir.join("keepalived.conf"),
        format!("{PRELUDE}include conf.d/*.conf\ninclude missing/*.conf\n"),
    )
    .expect("write");
    std::fs::write(dir.join("conf.d/a.conf"), "include ../services/web.conf\n").expect("write");
    std::fs::write(
        dir.join("conf.d/b.conf"),
        "virtual_server 10.0.0.100 443 {\n lb_kind NAT\n lb_algo rr\n}\n",
    )
    .expect("write");
    std::fs::create_dir_all(dir.join("services")).expect("dir");
    std::fs::write(dir.join("services/web.conf"), service(" alpha\n")).expect("write");

    let report = import(&dir.join("keepalived.conf")).expect("reads");
    let got: Vec<(String, usize, NoteKind)> = report
        .notes
        .iter()
        .map(|n| {
            let file =
                Path::new(&n.file).strip_prefix(&dir).expect("under dir").display().to_string();
            (file, n.line, n.kind)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("keepalived.conf".to_owned(), 9, N),
            ("conf.d/../services/web.conf".to_owned(), 5, N),
            ("conf.d/b.conf".to_owned(), 2, R),
        ],
        "{}",
        listing(&report)
    );
    let parsed = config::parse(&report.toml, "x").expect("validates");
    assert_eq!(parsed.virtual_servers.len(), 1);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn unreadable_input_is_an_error_not_a_report() {
    let missing = testdata().join("no-such.conf");
    assert!(matches!(import(&missing), Err(ImportError::Read { .. })));
    assert!(matches!(import(&testdata()), Err(ImportError::NotAFile { .. })));
}

// ---------------------------------------------------------------------------
// Arbitrary input

/// Invariants of any report: the TOML is TOML; complete means it loads; each
/// note points at a line of the input (or at the converted TOML).
fn check_report(text: &str, report: &ImportReport) -> Result<(), TestCaseError> {
    let as_toml: Result<toml::Table, _> = toml::from_str(&report.toml);
    prop_assert!(as_toml.is_ok(), "not TOML: {:?}\n{}", as_toml.err(), report.toml);
    if report.complete {
        let loaded = config::parse(&report.toml, "x");
        prop_assert!(loaded.is_ok(), "complete but {:?}\n{}", loaded.err(), report.toml);
    }
    prop_assert_eq!(report.complete, report.notes.iter().all(|n| n.kind == C));
    let lines = text.split('\n').count();
    for n in &report.notes {
        prop_assert!(n.file == "<converted>" || (n.line >= 1 && n.line <= lines), "{}", n);
        prop_assert_ne!(n.reason.as_str(), UNHANDLED, "{}", n);
    }
    Ok(())
}

/// Words keepalived configurations are made of.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "global_defs",
            "vrrp_instance",
            "vrrp_script",
            "virtual_server",
            "virtual_server_group",
            "real_server",
            "HTTP_GET",
            "TCP_CHECK",
            "SSL_GET",
            "url",
            "path",
            "status_code",
            "digest",
            "interface",
            "virtual_router_id",
            "priority",
            "advert_int",
            "state",
            "MASTER",
            "BACKUP",
            "authentication",
            "auth_type",
            "PASS",
            "AH",
            "auth_pass",
            "virtual_ipaddress",
            "track_script",
            "track_interface",
            "unicast_peer",
            "nopreempt",
            "lb_kind",
            "lvs_method",
            "DR",
            "NAT",
            "lb_algo",
            "wrr",
            "rr",
            "lc",
            "protocol",
            "TCP",
            "UDP",
            "weight",
            "group",
            "fwmark",
            "delay_loop",
            "connect_port",
            "connect_timeout",
            "retry",
            "inhibit_on_failure",
            "script",
            "notify_master",
            "persistence_timeout",
            "sorry_server",
            "quorum",
            "include",
            "eth0",
            "eth1",
            "VI_1",
            "G",
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.100",
            "10.0.0.1-3",
            "10.0.0.0/30",
            "::1",
            "80",
            "8080",
            "0",
            "255",
            "-3",
            "1.5",
            "/",
            "/x",
            "{",
            "}",
            "!",
            "#",
            "\"",
            "@x",
            "$A=1",
            "~SEQ(i,1,2)",
            "dev",
            "label",
            "reverse",
            "on",
            "off",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9_./:-]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary characters never panic and keep the invariants.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n{}\"'!#@$~\\\\é\u{0}]{0,300}") {
        let report = import_text(&text, "p.conf", None, &eth0());
        check_report(&text, &report)?;
        let report = import_text(&text, "p.conf", None, &ImportOptions::default());
        check_report(&text, &report)?;
    }

    /// Keepalived-shaped text (its keywords, values and braces in any order)
    /// never panics and keeps the invariants.
    #[test]
    fn keepalived_shaped_text_never_panics(lines in prop::collection::vec(prop::collection::vec(word(), 0..5), 0..40)) {
        let text: String = lines.iter().map(|l| format!("{}\n", l.join(" "))).collect();
        let report = import_text(&text, "p.conf", None, &eth0());
        check_report(&text, &report)?;
    }

    /// A valid service with arbitrary values where numbers go is carried or
    /// named, and whenever nothing is named the result loads.
    #[test]
    fn service_values_are_checked_like_the_config(
        weight in "-?[0-9]{1,6}", port in "[0-9]{1,6}", timeout in "[0-9]{0,5}(\\.[0-9]{1,3})?",
        retry in "[0-9]{1,4}", code in "[0-9]{1,4}",
    ) {
        let text = format!(
            "{PRELUDE}virtual_server 10.0.0.100 80 {{\n lvs_method DR\n lvs_sched wrr\n protocol TCP\n \
             real_server 10.0.0.3 80 {{\n  weight {weight}\n  HTTP_GET {{\n   url {{\n    path /\n    \
             status_code {code}\n   }}\n   connect_port {port}\n   connect_timeout {timeout}\n   retry {retry}\n  }}\n }}\n}}\n"
        );
        let report = import_text(&text, "p.conf", None, &ImportOptions::default());
        check_report(&text, &report)?;
        prop_assert!(config::parse(&report.toml, "x").is_ok(), "{}\n{}", listing(&report), report.toml);
    }
}
