//! From keepalived's keyword tree to xdplb's tables: each keyword is carried,
//! or named with the reason it is not. The values written are the ones
//! `config::parse` accepts (the same ranges are checked here first), so that
//! an import without refusals always yields a configuration that loads; the
//! result is parsed once more at the end and any error is reported as a note.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use super::emit::{self, Output, RealServerOut, Section, ServiceOut, Table, Value};
use super::lexer::{split_script_words, Lexed, Loc};
use super::parser::{self, Node};
use super::{ImportOptions, Note, NoteKind};

/// What a whole conversion produced.
#[derive(Debug)]
pub(super) struct Converted {
    pub(super) toml: String,
    pub(super) notes: Vec<Note>,
    /// Every (file, line) the input's tokens occupy, each carried or noted.
    #[cfg_attr(not(test), expect(dead_code, reason = "the tests' line accounting reads it"))]
    pub(super) accounted: Vec<(String, usize)>,
}

/// The reason of the safety-net note: a node no handler looked at.
pub(super) const UNHANDLED: &str =
    "not converted by the importer (a keyword it does not know here): left out";

const DR_ONLY: &str = "xdplb forwards by direct server return only";
/// Ranges `config::parse` accepts (see config/validate.rs).
const MAX_GARP_DELAY: f64 = 4294.0;
const MAX_GARP_REPEAT: i64 = 1000;
const MAX_GARP_INTERVAL: f64 = 10.0;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 604_800.0;
const MAX_PREEMPT_DELAY: f64 = 1000.0;
const MAX_SCRIPT_WEIGHT: i64 = 253;
const IFNAME_MAX: usize = 15;
/// A virtual_server_group range wider than this is refused.
const MAX_RANGE: u32 = 256;

/// Global keywords that change nothing xdplb does (see the module docs).
const COSMETIC_GLOBAL: &[(&str, &str)] = &[
    ("notification_email", "e-mail alerts are not sent by xdplb"),
    ("notification_email_from", "e-mail alerts are not sent by xdplb"),
    ("smtp_server", "e-mail alerts are not sent by xdplb"),
    ("smtp_helo_name", "e-mail alerts are not sent by xdplb"),
    ("smtp_connect_timeout", "e-mail alerts are not sent by xdplb"),
    ("smtp_alert", "e-mail alerts are not sent by xdplb"),
    ("smtp_alert_vrrp", "e-mail alerts are not sent by xdplb"),
    ("smtp_alert_checker", "e-mail alerts are not sent by xdplb"),
    ("no_email_faults", "e-mail alerts are not sent by xdplb"),
    ("no_checker_emails", "e-mail alerts are not sent by xdplb"),
    ("email_faults", "e-mail alerts are not sent by xdplb"),
    ("snmp_socket", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_keepalived", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_vrrp", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_checker", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_rfc", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_rfcv2", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_snmp_rfcv3", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_traps", "xdplb has no SNMP agent (it has status and metrics)"),
    ("enable_dbus", "xdplb has no D-Bus interface (it has status and metrics)"),
    ("dbus_service_name", "xdplb has no D-Bus interface (it has status and metrics)"),
    ("process_names", "names of keepalived's own processes"),
    ("process_name", "names of keepalived's own processes"),
    ("vrrp_process_name", "names of keepalived's own processes"),
    ("checker_process_name", "names of keepalived's own processes"),
    ("bfd_process_name", "names of keepalived's own processes"),
    ("vrrp_priority", "scheduling of keepalived's own processes"),
    ("checker_priority", "scheduling of keepalived's own processes"),
    ("bfd_priority", "scheduling of keepalived's own processes"),
    ("vrrp_no_swap", "scheduling of keepalived's own processes"),
    ("checker_no_swap", "scheduling of keepalived's own processes"),
    ("bfd_no_swap", "scheduling of keepalived's own processes"),
    ("vrrp_rt_priority", "scheduling of keepalived's own processes"),
    ("checker_rt_priority", "scheduling of keepalived's own processes"),
    ("bfd_rt_priority", "scheduling of keepalived's own processes"),
    ("vrrp_rlimit_rttime", "scheduling of keepalived's own processes"),
    ("checker_rlimit_rttime", "scheduling of keepalived's own processes"),
    ("bfd_rlimit_rttime", "scheduling of keepalived's own processes"),
    ("vrrp_cpu_affinity", "scheduling of keepalived's own processes"),
    ("checker_cpu_affinity", "scheduling of keepalived's own processes"),
    ("bfd_cpu_affinity", "scheduling of keepalived's own processes"),
    ("max_auto_priority", "scheduling of keepalived's own processes"),
    ("min_auto_priority_delay", "scheduling of keepalived's own processes"),
    ("vrrp_netlink_cmd_rcv_bufs", "socket buffers of keepalived's own processes"),
    ("vrrp_netlink_cmd_rcv_bufs_force", "socket buffers of keepalived's own processes"),
    ("vrrp_netlink_monitor_rcv_bufs", "socket buffers of keepalived's own processes"),
    ("vrrp_netlink_monitor_rcv_bufs_force", "socket buffers of keepalived's own processes"),
    ("lvs_netlink_cmd_rcv_bufs", "socket buffers of keepalived's own processes"),
    ("lvs_netlink_cmd_rcv_bufs_force", "socket buffers of keepalived's own processes"),
    ("lvs_netlink_monitor_rcv_bufs", "socket buffers of keepalived's own processes"),
    ("lvs_netlink_monitor_rcv_bufs_force", "socket buffers of keepalived's own processes"),
    ("process_monitor_rcv_bufs", "socket buffers of keepalived's own processes"),
    ("process_monitor_rcv_bufs_force", "socket buffers of keepalived's own processes"),
    ("vrrp_rx_bufs_policy", "socket buffers of keepalived's own processes"),
    ("vrrp_rx_bufs_multiplier", "socket buffers of keepalived's own processes"),
    ("log_unknown_vrids", "a logging switch"),
    ("checker_log_all_failures", "a logging switch"),
    ("vrrp_gna_interval", "IPv6 neighbour adverts: xdplb's VIPs are IPv4"),
    ("vrrp_mcast_group6", "IPv6 VRRP: xdplb's VIPs are IPv4"),
    ("lvs_flush", "IPVS housekeeping: xdplb does not use IPVS"),
    ("lvs_flush_on_stop", "IPVS housekeeping: xdplb does not use IPVS"),
    ("config_save_dir", "keepalived's own debugging aid"),
    ("tmp_config_directory", "keepalived's own reading of its file"),
    ("random_seed", "seed of keepalived's $_RANDOM, which the importer does not expand"),
];

/// Keywords that mean the same thing wherever they appear.
const COSMETIC_ANYWHERE: &[(&str, &str)] = &[
    ("smtp_alert", "e-mail alerts are not sent by xdplb"),
    ("snmp_name", "xdplb has no SNMP agent (it has status and metrics)"),
    ("log_all_failures", "a logging switch"),
    ("debug", "keepalived's debug level (not implemented by keepalived either)"),
];

#[derive(Debug, Clone)]
struct RawNote {
    loc: Loc,
    keyword: String,
    reason: String,
    kind: NoteKind,
}

/// Bookkeeping for one conversion: notes, and which nodes were dealt with.
struct Cx<'o> {
    files: Vec<String>,
    /// The labels comments use: relative to the top file's directory.
    short: Vec<String>,
    notes: Vec<RawNote>,
    handled: Vec<bool>,
    options: &'o ImportOptions,
}

impl Cx<'_> {
    /// `FILE:LINE` for comments and reasons, FILE relative to the top file's directory.
    fn from(&self, loc: Loc) -> String {
        format!("{}:{}", self.short.get(loc.file.0).map_or("?", String::as_str), loc.line)
    }

    fn file(&self, loc: Loc) -> &str {
        self.files.get(loc.file.0).map_or("?", String::as_str)
    }

    /// `n` is carried (its children are dealt with one by one).
    fn carry(&mut self, n: &Node) {
        if let Some(h) = self.handled.get_mut(n.id) {
            *h = true;
        }
    }

    /// `n` and everything under it are carried.
    fn carry_tree(&mut self, n: &Node) {
        let handled = &mut self.handled;
        n.walk(&mut |m| {
            if let Some(h) = handled.get_mut(m.id) {
                *h = true;
            }
        });
    }

    /// `n` and everything under it are not carried, for `reason`.
    fn note(&mut self, n: &Node, kind: NoteKind, reason: impl Into<String>) {
        self.carry_tree(n);
        self.note_at(n.loc, &n.keyword, kind, reason);
    }

    /// A note about `n`'s line; its children are dealt with separately.
    fn note_line(&mut self, n: &Node, kind: NoteKind, reason: impl Into<String>) {
        self.carry(n);
        self.note_at(n.loc, &n.keyword, kind, reason);
    }

    fn note_at(&mut self, loc: Loc, keyword: &str, kind: NoteKind, reason: impl Into<String>) {
        let reason = reason.into();
        let duplicate =
            self.notes.iter().any(|n| n.loc == loc && n.keyword == keyword && n.reason == reason);
        if !duplicate {
            self.notes.push(RawNote { loc, keyword: keyword.to_owned(), reason, kind });
        }
    }

    /// The cosmetic keywords valid anywhere: noted, true when `n` was one.
    fn cosmetic(&mut self, n: &Node) -> bool {
        match COSMETIC_ANYWHERE.iter().find(|(k, _)| *k == n.keyword) {
            Some((_, why)) => {
                self.note(n, NoteKind::Cosmetic, format!("{why}: left out"));
                true
            }
            None => false,
        }
    }

    /// The first argument, or a note that there is none.
    fn value<'n>(&mut self, n: &'n Node) -> Option<&'n str> {
        let v = n.arg();
        if v.is_none() {
            self.note(
                n,
                NoteKind::NotCarried,
                "has no value (keepalived refuses it too): left out",
            );
        }
        v
    }

    /// A number of seconds in `lo..=hi`, as keepalived's read_timer / read_unsigned.
    fn seconds(&mut self, n: &Node, lo: f64, hi: f64) -> Option<f64> {
        let text = self.value(n)?;
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= lo && x <= hi => Some(x),
            _ => {
                self.note(
                    n,
                    NoteKind::NotCarried,
                    format!(
                        "{text:?} is not a number of seconds in xdplb's range {lo}-{hi}: left out"
                    ),
                );
                None
            }
        }
    }

    /// An integer in `lo..=hi`.
    fn integer(&mut self, n: &Node, lo: i64, hi: i64) -> Option<i64> {
        let text = self.value(n)?;
        match text.parse::<i64>() {
            Ok(x) if x >= lo && x <= hi => Some(x),
            _ => {
                self.note(
                    n,
                    NoteKind::NotCarried,
                    format!("{text:?} is not a whole number in xdplb's range {lo}-{hi}: left out"),
                );
                None
            }
        }
    }

    /// keepalived's optional `<BOOL>`: absent means true.
    fn boolean(&mut self, n: &Node) -> Option<bool> {
        match n.arg() {
            None | Some("on" | "true" | "yes") => Some(true),
            Some("off" | "false" | "no") => Some(false),
            Some(other) => {
                self.note(
                    n,
                    NoteKind::NotCarried,
                    format!("{other:?} is not one of on, off, true, false, yes, no: left out"),
                );
                None
            }
        }
    }

    /// An IPv4 address argument at `index`.
    fn ipv4(&mut self, n: &Node, index: usize) -> Option<Ipv4Addr> {
        let Some(text) = n.args.get(index) else {
            self.note(n, NoteKind::NotCarried, "has no address: left out");
            return None;
        };
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Some(ip),
            Ok(IpAddr::V6(_)) => {
                self.note(n, NoteKind::Refused, format!("{text} is IPv6: xdplb is IPv4 only"));
                None
            }
            Err(_) => {
                self.note(
                    n,
                    NoteKind::NotCarried,
                    format!("{text:?} is not an IPv4 address: left out"),
                );
                None
            }
        }
    }

    /// Sets `key` in `table` from `n`, naming an earlier value it replaces.
    fn set(&mut self, table: &mut Table, key: &'static str, value: Value, n: &Node) {
        self.carry(n);
        let from = self.from(n.loc);
        if let Some(Some(earlier)) = table.set(key, value, Some(from.clone())) {
            if let Some(loc) = self.loc_of(&earlier) {
                self.note_at(
                    loc,
                    key,
                    NoteKind::Cosmetic,
                    format!("set again at {from}: the later value wins, as in keepalived"),
                );
            }
        }
    }

    /// The location a `FILE:LINE` label names (the reverse of [`Self::from`]).
    fn loc_of(&self, from: &str) -> Option<Loc> {
        let (file, line) = from.rsplit_once(':')?;
        let line = line.parse().ok()?;
        let index = self.short.iter().position(|f| f == file)?;
        Some(Loc { file: super::lexer::FileId(index), line })
    }
}

/// Converts a lexed configuration.
pub(super) fn convert(lexed: Lexed, options: &ImportOptions) -> Converted {
    let Lexed { tokens, files, notes: lex_notes, consumed } = lexed;
    let parsed = parser::parse(tokens);
    let top_dir =
        files.first().and_then(|f| std::path::Path::new(f).parent().map(|p| p.to_path_buf()));
    let short = files
        .iter()
        .map(|f| {
            top_dir
                .as_deref()
                .and_then(|d| std::path::Path::new(f).strip_prefix(d).ok())
                .map_or_else(|| f.clone(), |p| p.display().to_string())
        })
        .collect();
    let mut cx =
        Cx { files, short, notes: Vec::new(), handled: vec![false; parsed.count], options };
    for n in lex_notes {
        cx.note_at(n.loc, &n.keyword, n.kind, n.reason);
    }
    for n in &parsed.notes {
        cx.note_at(n.loc, &n.keyword, n.kind, n.reason);
    }

    let mut out = Output {
        header: vec![
            "xdplb configuration converted from keepalived.conf by `xdplb import-keepalived`."
                .to_owned(),
            "Each value's comment is the keepalived line it comes from; keys not written take"
                .to_owned(),
            "keepalived's defaults, except higher_prio_send_advert, on in xdplb (see".to_owned(),
            "`xdplb check-config`). Lines not carried over are listed on stderr.".to_owned(),
        ],
        ..Output::default()
    };
    let mut conv = Conversion::default();
    for node in &parsed.nodes {
        top_level(&mut cx, node, &mut conv, &mut out);
    }
    finish_instances(&mut cx, &mut conv, &mut out);
    let services = virtual_servers(&mut cx, &conv);
    dataplane_and_services(&mut cx, &conv, services, &mut out);

    // The safety net: a node no handler looked at is named, never dropped.
    for node in &parsed.nodes {
        node.walk(&mut |m| {
            if !cx.handled.get(m.id).copied().unwrap_or(true) {
                cx.notes.push(RawNote {
                    loc: m.loc,
                    keyword: m.keyword.clone(),
                    reason: UNHANDLED.to_owned(),
                    kind: NoteKind::NotCarried,
                });
            }
        });
    }

    let toml = emit::write(&out);
    let mut notes: Vec<Note> = {
        let mut raw = cx.notes.clone();
        raw.sort_by_key(|n| n.loc);
        raw.into_iter()
            .map(|n| Note {
                file: cx.file(n.loc).to_owned(),
                line: n.loc.line,
                keyword: n.keyword,
                reason: n.reason,
                kind: n.kind,
            })
            .collect()
    };
    if let Err(e) = crate::config::parse(&toml, "<converted>") {
        let interface_noted = notes.iter().any(|n| n.keyword == "[dataplane] interface");
        if !(interface_noted && e.to_string().contains("no data-plane interface")) {
            notes.push(Note {
                file: "<converted>".to_owned(),
                line: e.line().unwrap_or(1),
                keyword: "xdplb check-config".to_owned(),
                reason: format!("the converted TOML does not pass validation: {e}"),
                kind: NoteKind::Refused,
            });
        }
    }

    let mut accounted: Vec<(String, usize)> = Vec::new();
    let mut locs: Vec<Loc> = consumed;
    locs.extend(parsed.skipped.iter().copied());
    locs.extend(cx.notes.iter().map(|n| n.loc));
    for node in &parsed.nodes {
        node.locs(&mut locs);
    }
    for loc in locs {
        accounted.push((cx.file(loc).to_owned(), loc.line));
    }
    accounted.sort();
    accounted.dedup();
    Converted { toml, notes, accounted }
}

/// What the top-level pass collects for the later ones.
#[derive(Default)]
struct Conversion<'t> {
    /// `[global_defs] vrrp_version`, the instances' default.
    global_version: Option<u8>,
    scripts: Vec<Script<'t>>,
    instances: Vec<Instance<'t>>,
    groups: Vec<&'t Node>,
    servers: Vec<&'t Node>,
}

fn top_level<'t>(cx: &mut Cx, n: &'t Node, conv: &mut Conversion<'t>, out: &mut Output) {
    match n.keyword.as_str() {
        "global_defs" => global_defs(cx, n, conv, out),
        "vrrp_script" => {
            if let Some(script) = vrrp_script(cx, n) {
                conv.scripts.push(script);
            }
        }
        "vrrp_instance" => {
            if let Some(instance) = vrrp_instance(cx, n) {
                conv.instances.push(instance);
            }
        }
        "virtual_server_group" => conv.groups.push(n),
        "virtual_server" => conv.servers.push(n),
        "{" => cx.note(
            n,
            NoteKind::NotCarried,
            "a block with no keyword before it: keepalived ignores the '{', the importer \
             leaves the block out",
        ),
        "vrrp_sync_group" => cx.note(
            n,
            NoteKind::NotCarried,
            "xdplb has no sync groups: each vrrp_instance fails over on its own",
        ),
        "static_ipaddress" | "static_routes" | "static_rules" => cx.note(
            n,
            NoteKind::NotCarried,
            "xdplb does not manage static addresses, routes or rules: configure them on the host",
        ),
        "SSL" => cx.note(
            n,
            NoteKind::NotCarried,
            "SSL settings serve SSL_GET, which xdplb does not have",
        ),
        "net_namespace" | "net_namespace_ipvs" | "namespace_with_ipsets" => cx.note(
            n,
            NoteKind::NotCarried,
            "xdplb runs in the network namespace it is started in (e.g. `ip netns exec`)",
        ),
        "vrrp_track_process"
        | "track_file"
        | "vrrp_track_file"
        | "bfd_instance"
        | "linkbeat_interfaces"
        | "garp_group" => cx.note(
            n,
            NoteKind::NotCarried,
            format!("{} is not supported by xdplb: left out", n.keyword),
        ),
        "instance" | "use_pid_dir" | "child_wait_time" | "linkbeat_use_polling" => {
            cx.note(n, NoteKind::Cosmetic, "how keepalived runs its own processes: left out")
        }
        _ => cx.note(
            n,
            NoteKind::NotCarried,
            format!(
                "{} is not a keepalived keyword xdplb knows at the top level: left out",
                n.keyword
            ),
        ),
    }
}

// ---------------------------------------------------------------------------
// global_defs

fn global_defs<'t>(cx: &mut Cx, n: &'t Node, conv: &mut Conversion<'t>, out: &mut Output) {
    cx.carry(n);
    let mut dataplane = out.dataplane.take().map(|s| s.table).unwrap_or_default();
    let mut section = out.global_defs.take().unwrap_or_else(|| Section {
        comment: vec![format!("{} global_defs", cx.from(n.loc))],
        table: Table::default(),
    });
    let mut table = std::mem::take(&mut section.table);
    for c in n.children() {
        let key = c.keyword.as_str();
        if let Some((_, why)) = COSMETIC_GLOBAL.iter().find(|(k, _)| *k == key) {
            cx.note(c, NoteKind::Cosmetic, format!("{why}: left out"));
            continue;
        }
        match key {
            "router_id" => {
                let id = c.args.join(" ");
                if id.trim().is_empty() || id.chars().any(char::is_control) {
                    cx.note(c, NoteKind::Cosmetic, "an empty router_id is left out (it is informational)");
                } else {
                    cx.set(&mut table, "router_id", Value::Str(id), c);
                }
            }
            "vrrp_version" => {
                if let Some(v) = cx.integer(c, 2, 3) {
                    conv.global_version = Some(if v == 3 { 3 } else { 2 });
                    cx.set(&mut table, "vrrp_version", Value::Int(v), c);
                }
            }
            "vrrp_garp_master_delay" | "vrrp_garp_lower_prio_delay" => {
                if let Some(x) = cx.seconds(c, 0.0, MAX_GARP_DELAY) {
                    cx.set(&mut table, static_key(key), Value::Float(x), c);
                }
            }
            "vrrp_garp_master_repeat" | "vrrp_garp_master_refresh_repeat" => {
                if let Some(x) = cx.integer(c, 1, MAX_GARP_REPEAT) {
                    cx.set(&mut table, static_key(key), Value::Int(x), c);
                }
            }
            "vrrp_garp_lower_prio_repeat" => {
                if let Some(x) = cx.integer(c, 0, MAX_GARP_REPEAT) {
                    cx.set(&mut table, "vrrp_garp_lower_prio_repeat", Value::Int(x), c);
                }
            }
            "vrrp_garp_master_refresh" => {
                if let Some(x) = cx.seconds(c, 0.0, DAY) {
                    cx.set(&mut table, "vrrp_garp_master_refresh", Value::Float(x), c);
                }
            }
            "vrrp_garp_interval" => {
                if let Some(x) = cx.seconds(c, 0.0, MAX_GARP_INTERVAL) {
                    cx.set(&mut table, "vrrp_garp_interval", Value::Float(x), c);
                }
            }
            "vrrp_higher_prio_send_advert" => {
                if let Some(b) = cx.boolean(c) {
                    cx.set(&mut table, "vrrp_higher_prio_send_advert", Value::Bool(b), c);
                }
            }
            "lvs_timeouts" => lvs_timeouts(cx, c, &mut dataplane),
            "vrrp_skip_check_adv_addr" | "vrrp_check_unicast_src" => cx.note(
                c,
                NoteKind::NotCarried,
                "xdplb checks adverts as RFC 3768/5798 say; relaxing or tightening the check \
                 is not supported",
            ),
            "vrrp_strict" => cx.note(
                c,
                NoteKind::NotCarried,
                "strict RFC mode (no authentication, VIPs not answering) is not supported: \
                 xdplb's VIPs accept traffic",
            ),
            "vrrp_iptables" | "vrrp_ipsets" | "nftables" | "nftables_priority"
            | "nftables_counters" | "nftables_ifindex" | "nftables_ipvs"
            | "nftables_ipvs_priority" | "nftables_ipvs_start_fwmark" => cx.note(
                c,
                NoteKind::NotCarried,
                "xdplb adds no firewall rules: VIPs always accept traffic",
            ),
            "vrrp_mcast_group4" => cx.note(
                c,
                NoteKind::NotCarried,
                "xdplb sends adverts to 224.0.0.18 (or unicast_peer): another group is not supported",
            ),
            "lvs_sync_daemon" | "lvs_id" => cx.note(
                c,
                NoteKind::NotCarried,
                "IPVS connection sync between directors is not supported: flows restart \
                 scheduling after a failover",
            ),
            "script_user" | "enable_script_security" => cx.note(
                c,
                NoteKind::NotCarried,
                "xdplb runs scripts as itself; set `user` on each vrrp_script",
            ),
            "notify_fifo" | "notify_fifo_script" | "vrrp_notify_fifo" | "vrrp_notify_fifo_script"
            | "lvs_notify_fifo" | "lvs_notify_fifo_script" | "fifo_write_vrrp_states_on_reload" => {
                cx.note(
                    c,
                    NoteKind::NotCarried,
                    "notify FIFOs are not supported: use notify scripts, status or metrics",
                )
            }
            _ => cx.note(
                c,
                NoteKind::NotCarried,
                format!("global_defs {key} is not supported by xdplb: left out"),
            ),
        }
    }
    section.table = table;
    out.global_defs = Some(section);
    if !dataplane.entries.is_empty() {
        out.dataplane = Some(Section { comment: Vec::new(), table: dataplane });
    }
}

/// The `&'static` spelling of a key that is its own keepalived keyword.
fn static_key(key: &str) -> &'static str {
    const KEYS: &[&str] = &[
        "vrrp_garp_master_delay",
        "vrrp_garp_lower_prio_delay",
        "vrrp_garp_master_repeat",
        "vrrp_garp_master_refresh_repeat",
        "garp_master_delay",
        "garp_lower_prio_delay",
        "garp_master_repeat",
        "garp_master_refresh_repeat",
        "garp_lower_prio_repeat",
        "garp_master_refresh",
        "garp_interval",
        "notify_master",
        "notify_backup",
        "notify_fault",
        "notify_stop",
        "notify",
        "quorum_up",
        "quorum_down",
        "connect_timeout",
        "retry",
        "delay_before_retry",
    ];
    KEYS.iter().find(|k| **k == key).copied().unwrap_or("unknown")
}

/// `lvs_timeouts [tcp N] [tcpfin N] [udp N]` → `[dataplane]` flow timeouts.
fn lvs_timeouts(cx: &mut Cx, n: &Node, dataplane: &mut Table) {
    let mut args = n.args.iter();
    let mut carried = false;
    while let Some(which) = args.next() {
        let key = match which.as_str() {
            "tcp" => "tcp_timeout",
            "tcpfin" => "tcpfin_timeout",
            "udp" => "udp_timeout",
            other => {
                cx.note_at(
                    n.loc,
                    &n.keyword,
                    NoteKind::NotCarried,
                    format!("{other:?} is not tcp, tcpfin or udp: left out"),
                );
                continue;
            }
        };
        match args.next().and_then(|v| v.parse::<f64>().ok()) {
            Some(x) if (1.0..=WEEK).contains(&x) => {
                dataplane.set(key, Value::Float(x), Some(cx.from(n.loc)));
                carried = true;
            }
            _ => cx.note_at(
                n.loc,
                &n.keyword,
                NoteKind::NotCarried,
                format!("{which} needs seconds in xdplb's range 1-{WEEK}: left out"),
            ),
        }
    }
    if !carried && n.args.is_empty() {
        cx.note(n, NoteKind::Cosmetic, "no timeouts given: IPVS's defaults apply, as in xdplb");
    }
    cx.carry(n);
}

// ---------------------------------------------------------------------------
// vrrp_script

struct Script<'t> {
    node: &'t Node,
    name: String,
    weight: i64,
    table: Table,
}

fn vrrp_script<'t>(cx: &mut Cx, n: &'t Node) -> Option<Script<'t>> {
    let Some(name) = n
        .arg()
        .filter(|a| !a.is_empty() && !a.chars().any(|c| c.is_whitespace() || c.is_control()))
        .map(str::to_owned)
    else {
        cx.note(n, NoteKind::NotCarried, "a vrrp_script needs a one-word name: left out");
        return None;
    };
    cx.carry(n);
    let mut table = Table::default();
    table.set("name", Value::Str(name.clone()), Some(cx.from(n.loc)));
    let mut weight = 0;
    for c in n.children() {
        if cx.cosmetic(c) {
            continue;
        }
        match c.keyword.as_str() {
            "script" => {
                if let Some(command) = command_line(cx, c) {
                    cx.set(&mut table, "script", Value::Str(command), c);
                }
            }
            "interval" | "timeout" => {
                if let Some(x) = cx.seconds(c, 0.001, DAY) {
                    let key = if c.keyword == "interval" { "interval" } else { "timeout" };
                    cx.set(&mut table, key, Value::Float(x), c);
                }
            }
            "weight" => {
                if c.args.get(1).is_some_and(|a| a == "reverse") {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        "weight … reverse is not supported by xdplb: the weight is left out \
                         (a failing script then means FAULT)",
                    );
                    continue;
                }
                if let Some(w) = cx.integer(c, -MAX_SCRIPT_WEIGHT, MAX_SCRIPT_WEIGHT) {
                    weight = w;
                    cx.set(&mut table, "weight", Value::Int(w), c);
                    if w != 0 {
                        cx.note_at(
                            c.loc,
                            &c.keyword,
                            NoteKind::NotCarried,
                            format!(
                                "weight {w}: xdplb does not adjust priorities by script yet \
                                 (`xdplb run` refuses to start while an instance tracks a \
                                 script with a weight); written as is"
                            ),
                        );
                    }
                }
            }
            "rise" | "fall" => {
                if let Some(x) = cx.integer(c, 1, i64::from(i32::MAX)) {
                    let key = if c.keyword == "rise" { "rise" } else { "fall" };
                    cx.set(&mut table, key, Value::Int(x), c);
                }
            }
            "user" => {
                let user = c.args.join(" ");
                if user.trim().is_empty() || user.chars().any(char::is_control) {
                    cx.note(c, NoteKind::NotCarried, "no user name: left out");
                } else {
                    cx.set(&mut table, "user", Value::Str(user), c);
                }
            }
            "init_fail" => cx.set(&mut table, "init_fail", Value::Bool(true), c),
            other => cx.note(
                c,
                NoteKind::NotCarried,
                format!("vrrp_script {other} is not supported by xdplb: left out"),
            ),
        }
    }
    if table.get("script").is_none() {
        cx.note_line(
            n,
            NoteKind::NotCarried,
            format!("vrrp_script {name:?} has no script (keepalived refuses it too): left out"),
        );
        return None;
    }
    Some(Script { node: n, name, weight, table })
}

/// A script or notify command as xdplb runs it (`/bin/sh -c`): keepalived's
/// words, single-quoted where the shell would split or expand them. A lone
/// word is kept as written, as keepalived hands a quoted command line to the
/// shell whole.
fn command_line(cx: &mut Cx, n: &Node) -> Option<String> {
    let rest = n.raw.trim_start().strip_prefix(n.keyword.as_str()).unwrap_or("");
    let words = split_script_words(rest);
    match words.as_slice() {
        [] => {
            cx.note(n, NoteKind::NotCarried, "has no command: left out");
            None
        }
        [one] if !one.trim().is_empty() && !one.contains(['\n', '\r', '\0']) => Some(one.clone()),
        [_] => {
            cx.note(n, NoteKind::NotCarried, "the command is blank or several lines: left out");
            None
        }
        many => Some(many.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ")),
    }
}

/// `word` as one shell word.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

// ---------------------------------------------------------------------------
// vrrp_instance

struct Instance<'t> {
    node: &'t Node,
    name: String,
    table: Table,
    interface: Option<String>,
    vrid: Option<u8>,
    master: bool,
    version: Option<u8>,
    advert_int: Option<(f64, &'t Node)>,
    auth: Option<&'t Node>,
    nopreempt: Option<&'t Node>,
    preempt_delay: Option<&'t Node>,
    unicast_src: Option<Ipv4Addr>,
    peers: Vec<(Ipv4Addr, &'t Node)>,
    /// Address, prefix length, `dev` if written, line.
    vips: Vec<(Ipv4Addr, u8, Option<String>, &'t Node)>,
    track_interface: Vec<(String, &'t Node)>,
    /// Name, weight override, line.
    track_script: Vec<(String, Option<i64>, &'t Node)>,
    /// Why the instance cannot be carried, with the line to name.
    refused: Option<(Loc, String, String)>,
}

fn vrrp_instance<'t>(cx: &mut Cx, n: &'t Node) -> Option<Instance<'t>> {
    let Some(name) = n.arg().filter(|a| !a.trim().is_empty()).map(str::to_owned) else {
        cx.note(n, NoteKind::NotCarried, "a vrrp_instance needs a name: left out");
        return None;
    };
    cx.carry(n);
    let mut inst = Instance {
        node: n,
        name: name.clone(),
        table: Table::default(),
        interface: None,
        vrid: None,
        master: false,
        version: None,
        advert_int: None,
        auth: None,
        nopreempt: None,
        preempt_delay: None,
        unicast_src: None,
        peers: Vec::new(),
        vips: Vec::new(),
        track_interface: Vec::new(),
        track_script: Vec::new(),
        refused: None,
    };
    inst.table.set("name", Value::Str(name), Some(cx.from(n.loc)));
    for c in n.children() {
        if cx.cosmetic(c) {
            continue;
        }
        instance_key(cx, c, &mut inst);
    }
    Some(inst)
}

fn instance_key<'t>(cx: &mut Cx, c: &'t Node, inst: &mut Instance<'t>) {
    let key = c.keyword.as_str();
    match key {
        "state" => match cx.value(c) {
            Some("MASTER") => {
                inst.master = true;
                cx.set(&mut inst.table, "state", Value::Str("MASTER".into()), c);
            }
            Some("BACKUP") => {
                inst.master = false;
                cx.set(&mut inst.table, "state", Value::Str("BACKUP".into()), c);
            }
            Some(other) => cx.note(
                c,
                NoteKind::NotCarried,
                format!("state {other:?} is not MASTER or BACKUP: left out (BACKUP)"),
            ),
            None => {}
        },
        "interface" => {
            if let Some(name) = cx.value(c) {
                if valid_ifname(name) {
                    inst.interface = Some(name.to_owned());
                    cx.set(&mut inst.table, "interface", Value::Str(name.to_owned()), c);
                } else {
                    cx.carry(c);
                    inst.refused = Some((
                        c.loc,
                        key.to_owned(),
                        format!("{name:?} is not an interface name xdplb accepts"),
                    ));
                }
            }
        }
        "virtual_router_id" => {
            if let Some(v) = cx.integer(c, 1, 255) {
                inst.vrid = u8::try_from(v).ok();
                cx.set(&mut inst.table, "virtual_router_id", Value::Int(v), c);
            }
        }
        "priority" => match c.arg().and_then(|v| v.parse::<i64>().ok()) {
            Some(255) => {
                cx.set(&mut inst.table, "priority", Value::Int(254), c);
                cx.note_at(
                    c.loc,
                    key,
                    NoteKind::Approximated,
                    "priority 255 (address owner: master at once) is not supported: written as \
                     254, the highest priority xdplb accepts",
                );
            }
            _ => {
                if let Some(p) = cx.integer(c, 1, 254) {
                    cx.set(&mut inst.table, "priority", Value::Int(p), c);
                }
            }
        },
        "advert_int" => {
            if let Some(x) = cx.seconds(c, 0.01, 255.0) {
                inst.advert_int = Some((x, c));
            }
        }
        "version" | "vrrp_version" => {
            if let Some(v) = cx.integer(c, 2, 3) {
                inst.version = Some(if v == 3 { 3 } else { 2 });
                cx.set(&mut inst.table, "vrrp_version", Value::Int(v), c);
            }
        }
        "authentication" => {
            cx.carry(c);
            inst.auth = Some(c);
        }
        "virtual_ipaddress" => {
            cx.carry(c);
            for entry in c.children() {
                virtual_ipaddress(cx, entry, inst);
            }
        }
        "nopreempt" => {
            cx.carry(c);
            inst.nopreempt = Some(c);
        }
        "preempt" => cx.note(c, NoteKind::Cosmetic, "preempting is the default: nothing to carry"),
        "preempt_delay" => {
            if cx.seconds(c, 0.0, MAX_PREEMPT_DELAY).is_some() {
                cx.carry(c);
                inst.preempt_delay = Some(c);
            }
        }
        "higher_prio_send_advert" => {
            if let Some(b) = cx.boolean(c) {
                cx.set(&mut inst.table, "higher_prio_send_advert", Value::Bool(b), c);
            }
        }
        "unicast_src_ip" | "mcast_src_ip" => {
            if let Some(ip) = cx.ipv4(c, 0) {
                if unicast_ok(ip) {
                    inst.unicast_src = Some(ip);
                    cx.set(&mut inst.table, "unicast_src_ip", Value::Str(ip.to_string()), c);
                } else {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        format!("{ip} is not a unicast address: left out"),
                    );
                }
            }
        }
        "unicast_peer" => {
            cx.carry(c);
            for peer in c.children() {
                unicast_peer(cx, peer, inst);
            }
        }
        "garp_master_delay" | "garp_lower_prio_delay" => {
            if let Some(x) = cx.seconds(c, 0.0, MAX_GARP_DELAY) {
                cx.set(&mut inst.table, static_key(key), Value::Float(x), c);
            }
        }
        "garp_master_repeat" | "garp_master_refresh_repeat" => {
            if let Some(x) = cx.integer(c, 1, MAX_GARP_REPEAT) {
                cx.set(&mut inst.table, static_key(key), Value::Int(x), c);
            }
        }
        "garp_lower_prio_repeat" => {
            if let Some(x) = cx.integer(c, 0, MAX_GARP_REPEAT) {
                cx.set(&mut inst.table, "garp_lower_prio_repeat", Value::Int(x), c);
            }
        }
        "garp_master_refresh" => {
            if let Some(x) = cx.seconds(c, 0.0, DAY) {
                cx.set(&mut inst.table, "garp_master_refresh", Value::Float(x), c);
            }
        }
        "garp_interval" => {
            if let Some(x) = cx.seconds(c, 0.0, MAX_GARP_INTERVAL) {
                cx.set(&mut inst.table, "garp_interval", Value::Float(x), c);
            }
        }
        "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
            notify(cx, c, &mut inst.table)
        }
        "track_interface" => {
            cx.carry(c);
            for t in c.children() {
                if t.args.is_empty() {
                    cx.carry(t);
                    inst.track_interface.push((t.keyword.clone(), t));
                } else {
                    cx.note(
                        t,
                        NoteKind::NotCarried,
                        format!(
                            "a weighted track_interface ({}) is not supported: xdplb's tracked \
                             interfaces only mean FAULT when down; left out",
                            t.args.join(" ")
                        ),
                    );
                }
            }
        }
        "track_script" => {
            cx.carry(c);
            for t in c.children() {
                match t.args.as_slice() {
                    [] => inst.track_script.push((t.keyword.clone(), None, t)),
                    [w, weight] if w == "weight" && weight.parse::<i64>().is_ok() => {
                        let weight = weight.parse::<i64>().ok();
                        inst.track_script.push((t.keyword.clone(), weight, t));
                    }
                    _ => cx.note(
                        t,
                        NoteKind::NotCarried,
                        format!(
                            "track_script options {:?} are not supported (reverse, …): left out",
                            t.args.join(" ")
                        ),
                    ),
                }
            }
        }
        "accept" => cx.note(
            c,
            NoteKind::Cosmetic,
            "accept mode is keepalived's default, and xdplb's VIPs always accept traffic",
        ),
        "native_ipv6" => {
            cx.carry(c);
            inst.refused =
                Some((c.loc, key.to_owned(), "an IPv6 instance: xdplb is IPv4 only".into()));
        }
        "smtp_alert" | "kernel_rx_buf_size" | "linkbeat_use_polling" => {
            cx.note(c, NoteKind::Cosmetic, "changes nothing xdplb does: left out")
        }
        "lvs_sync_daemon_interface" => cx.note(
            c,
            NoteKind::NotCarried,
            "IPVS connection sync between directors is not supported",
        ),
        "use_vmac" | "vmac_xmit_base" | "use_vmac_addr" | "use_ipvlan" => cx.note(
            c,
            NoteKind::NotCarried,
            "VRRP virtual MACs are not supported: xdplb, like keepalived by default, announces \
             the VIPs with the director's own MAC",
        ),
        "virtual_ipaddress_excluded" => cx.note(
            c,
            NoteKind::NotCarried,
            "addresses outside the adverts are not supported: list them in virtual_ipaddress \
             if xdplb should move them",
        ),
        "virtual_routes" | "virtual_rules" => cx.note(
            c,
            NoteKind::NotCarried,
            "xdplb does not add routes or rules on failover: left out",
        ),
        _ => cx.note(
            c,
            NoteKind::NotCarried,
            format!("vrrp_instance {key} is not supported by xdplb: left out"),
        ),
    }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn unicast_ok(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// One line of `virtual_ipaddress { IP[/PREFIX] [dev X] [label X] … }`.
fn virtual_ipaddress<'t>(cx: &mut Cx, e: &'t Node, inst: &mut Instance<'t>) {
    let (addr, prefix) = match e.keyword.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (e.keyword.as_str(), None),
    };
    let ip = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(_)) => {
            cx.carry(e);
            inst.refused = Some((
                e.loc,
                e.keyword.clone(),
                format!("{} is IPv6: an IPv6 instance, and xdplb is IPv4 only", e.keyword),
            ));
            return;
        }
        Err(_) => {
            cx.note(e, NoteKind::NotCarried, "not an IPv4 address: left out");
            return;
        }
    };
    let prefix_len = match prefix.map(str::parse::<u8>) {
        None => 32,
        Some(Ok(p)) if (1..=32).contains(&p) => p,
        Some(_) => {
            cx.note(e, NoteKind::NotCarried, "the prefix length is not 1-32: left out");
            return;
        }
    };
    if !unicast_ok(ip) {
        cx.note(
            e,
            NoteKind::NotCarried,
            format!("{ip} is not a unicast address a host can own: left out"),
        );
        return;
    }
    let mut dev = None;
    let mut options = e.args.iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "dev" => dev = options.next().cloned(),
            "label" => {
                let label = options.next().map(String::as_str).unwrap_or("");
                cx.note_at(
                    e.loc,
                    &e.keyword,
                    NoteKind::Cosmetic,
                    format!("label {label}: address labels are cosmetic: left out"),
                );
            }
            other => {
                // brd, scope, peer, home, -nodad, no_track, preferred_lft, …
                let takes_value = matches!(other, "brd" | "scope" | "peer" | "preferred_lft");
                let value = if takes_value { options.next().cloned() } else { None };
                cx.note_at(
                    e.loc,
                    &e.keyword,
                    NoteKind::Approximated,
                    format!(
                        "address option {other}{} is not supported: the VIP is added with \
                         xdplb's defaults",
                        value.map(|v| format!(" {v}")).unwrap_or_default()
                    ),
                );
            }
        }
    }
    cx.carry(e);
    if inst.vips.iter().any(|(v, _, _, _)| *v == ip) {
        cx.note(
            e,
            NoteKind::Cosmetic,
            format!("{ip} is listed twice in this instance: added once"),
        );
        return;
    }
    inst.vips.push((ip, prefix_len, dev, e));
}

fn unicast_peer<'t>(cx: &mut Cx, p: &'t Node, inst: &mut Instance<'t>) {
    let ip = match p.keyword.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if unicast_ok(ip) => ip,
        Ok(IpAddr::V6(_)) => {
            cx.note(p, NoteKind::Refused, "an IPv6 peer: xdplb is IPv4 only");
            return;
        }
        _ => {
            cx.note(p, NoteKind::NotCarried, "not a unicast IPv4 address: left out");
            return;
        }
    };
    if !p.args.is_empty() {
        cx.note_at(
            p.loc,
            &p.keyword,
            NoteKind::NotCarried,
            format!(
                "{}: TTL checks on adverts are not supported (the peer is kept)",
                p.args.join(" ")
            ),
        );
    }
    cx.carry(p);
    if inst.peers.iter().any(|(q, _)| *q == ip) {
        cx.note(p, NoteKind::Cosmetic, "listed twice: kept once");
        return;
    }
    inst.peers.push((ip, p));
}

/// `notify* SCRIPT [username [groupname]]`.
fn notify(cx: &mut Cx, c: &Node, table: &mut Table) {
    let rest = c.raw.trim_start().strip_prefix(c.keyword.as_str()).unwrap_or("");
    let words = split_script_words(rest);
    let Some(script) =
        words.first().filter(|w| !w.trim().is_empty() && !w.contains(['\n', '\r', '\0']))
    else {
        cx.note(c, NoteKind::NotCarried, "has no usable command: left out");
        return;
    };
    cx.set(table, static_key(&c.keyword), Value::Str(script.clone()), c);
    if words.len() > 1 {
        cx.note_at(
            c.loc,
            &c.keyword,
            NoteKind::NotCarried,
            format!(
                "runs as {}: xdplb runs notify scripts as itself (quote the command if those \
                 words were meant as its arguments)",
                words[1..].join(" ")
            ),
        );
    }
}

/// Checks that need the whole file: names, VRIDs, VIPs, scripts; then writes the tables.
fn finish_instances(cx: &mut Cx, conv: &mut Conversion, out: &mut Output) {
    let mut names: HashSet<String> = HashSet::new();
    let mut scripts_out: Vec<&Script> = Vec::new();
    for s in &conv.scripts {
        if !names.insert(s.name.clone()) {
            cx.note(
                s.node,
                NoteKind::NotCarried,
                format!("vrrp_script {:?} is defined twice: the later one is left out", s.name),
            );
            continue;
        }
        scripts_out.push(s);
    }
    let script_weight: HashMap<&str, i64> =
        scripts_out.iter().map(|s| (s.name.as_str(), s.weight)).collect();

    // First the instances that can run at all, and the VIPs they own.
    let mut instance_names: HashSet<String> = HashSet::new();
    let mut vrids: HashMap<(String, u8), String> = HashMap::new();
    let mut vips: HashMap<Ipv4Addr, String> = HashMap::new();
    let global_version = conv.global_version.unwrap_or(2);
    let mut kept = Vec::new();
    for mut inst in std::mem::take(&mut conv.instances) {
        let n = inst.node;
        let refusal = match (&inst.refused, &inst.interface, inst.vrid) {
            (Some((loc, keyword, why)), _, _) => {
                Some((*loc, keyword.clone(), NoteKind::Refused, why.clone()))
            }
            (None, None, _) => Some((
                n.loc,
                n.keyword.clone(),
                NoteKind::Refused,
                "no interface: xdplb runs VRRP on a named interface".to_owned(),
            )),
            (None, _, None) => Some((
                n.loc,
                n.keyword.clone(),
                NoteKind::Refused,
                "no virtual_router_id (keepalived refuses it too)".to_owned(),
            )),
            (None, Some(interface), Some(vrid)) => {
                if !instance_names.insert(inst.name.clone()) {
                    Some((
                        n.loc,
                        n.keyword.clone(),
                        NoteKind::NotCarried,
                        "defined twice".to_owned(),
                    ))
                } else if let Some(other) = vrids.get(&(interface.clone(), vrid)) {
                    Some((
                        n.loc,
                        n.keyword.clone(),
                        NoteKind::NotCarried,
                        format!("virtual_router_id {vrid} on {interface} is already vrrp_instance {other}'s"),
                    ))
                } else {
                    vrids.insert((interface.clone(), vrid), inst.name.clone());
                    None
                }
            }
        };
        if let Some((loc, keyword, kind, why)) = refusal {
            cx.carry_tree(n);
            cx.note_at(
                loc,
                &keyword,
                kind,
                format!("{why}: vrrp_instance {} is left out", inst.name),
            );
            continue;
        }
        let interface = inst.interface.clone().unwrap_or_default();
        for (ip, prefix, dev, e) in std::mem::take(&mut inst.vips) {
            if let Some(dev) = dev.filter(|d| *d != interface) {
                cx.note(
                    e,
                    NoteKind::NotCarried,
                    format!(
                        "dev {dev}: xdplb adds an instance's VIPs to its interface ({interface}); \
                         a VIP on another interface is left out"
                    ),
                );
                continue;
            }
            if let Some(owner) = vips.get(&ip) {
                cx.note(
                    e,
                    NoteKind::NotCarried,
                    format!("{ip} is already vrrp_instance {owner}'s VIP: left out here"),
                );
                continue;
            }
            vips.insert(ip, inst.name.clone());
            inst.vips.push((ip, prefix, None, e));
        }
        let version = inst.version.unwrap_or(global_version);
        instance_version_keys(cx, &mut inst, version);
        kept.push(inst);
    }

    // Then what refers to other entries: peers, tracked interfaces and scripts.
    for inst in &mut kept {
        let n = inst.node;
        let list: Vec<String> = inst
            .vips
            .iter()
            .map(
                |(ip, prefix, _, _)| {
                    if *prefix == 32 {
                        ip.to_string()
                    } else {
                        format!("{ip}/{prefix}")
                    }
                },
            )
            .collect();
        let first_vip = inst.vips.first().map(|(_, _, _, e)| cx.from(e.loc));
        inst.table.set("virtual_ipaddress", Value::Strs(list), first_vip);
        if let Some(src) = inst.unicast_src.filter(|ip| vips.contains_key(ip)) {
            inst.table.remove("unicast_src_ip");
            inst.unicast_src = None;
            let at = n
                .children()
                .iter()
                .rev()
                .find(|c| c.keyword == "unicast_src_ip" || c.keyword == "mcast_src_ip");
            if let Some(c) = at {
                cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!(
                        "{src} is a VIP: adverts leave from the director's own address; left out"
                    ),
                );
            }
        }
        let mut peers = Vec::new();
        for (ip, p) in std::mem::take(&mut inst.peers) {
            if Some(ip) == inst.unicast_src || vips.contains_key(&ip) {
                cx.note(
                    p,
                    NoteKind::NotCarried,
                    format!("{ip} is our own source or a VIP: left out"),
                );
                continue;
            }
            peers.push(ip.to_string());
            inst.peers.push((ip, p));
        }
        if !peers.is_empty() {
            let from = inst.peers.first().map(|(_, p)| cx.from(p.loc));
            inst.table.set("unicast_peer", Value::Strs(peers), from);
        }
        let mut tracked: Vec<String> = Vec::new();
        let mut first = None;
        for (name, t) in std::mem::take(&mut inst.track_interface) {
            if tracked.contains(&name) {
                cx.note(t, NoteKind::Cosmetic, "listed twice: tracked once");
                continue;
            }
            if !valid_ifname(&name) {
                cx.note(t, NoteKind::NotCarried, "not an interface name xdplb accepts: left out");
                continue;
            }
            first = first.or(Some(t.loc));
            tracked.push(name);
        }
        if !tracked.is_empty() {
            inst.table.set("track_interface", Value::Strs(tracked), first.map(|l| cx.from(l)));
        }
        let mut scripts: Vec<String> = Vec::new();
        let mut first = None;
        for (name, weight, t) in std::mem::take(&mut inst.track_script) {
            match script_weight.get(name.as_str()) {
                None => cx.note(
                    t,
                    NoteKind::NotCarried,
                    format!("no vrrp_script {name:?} is carried: left out"),
                ),
                Some(own) if weight.is_some_and(|w| w != *own) => cx.note(
                    t,
                    NoteKind::NotCarried,
                    format!(
                        "weight {} here differs from the vrrp_script's own ({own}): xdplb applies \
                         the script's weight only; left out",
                        weight.unwrap_or_default()
                    ),
                ),
                Some(_) if scripts.contains(&name) => {
                    cx.note(t, NoteKind::Cosmetic, "listed twice: tracked once")
                }
                Some(_) => {
                    cx.carry(t);
                    first = first.or(Some(t.loc));
                    scripts.push(name);
                }
            }
        }
        if !scripts.is_empty() {
            inst.table.set("track_script", Value::Strs(scripts), first.map(|l| cx.from(l)));
        }
        out.instances.push(Section {
            comment: vec![format!("{} vrrp_instance {}", cx.from(n.loc), inst.name)],
            table: inst.table.clone(),
        });
    }
    conv.instances = kept;
    for s in scripts_out {
        out.scripts.push(Section {
            comment: vec![format!("{} vrrp_script {}", cx.from(s.node.loc), s.name)],
            table: s.table.clone(),
        });
    }
}

/// Keys whose meaning depends on the instance's VRRP version and state.
fn instance_version_keys(cx: &mut Cx, inst: &mut Instance, version: u8) {
    if let Some((x, c)) = inst.advert_int {
        if version == 3 {
            let cs = (x * 100.0).round();
            if (1.0..=4095.0).contains(&cs) {
                cx.set(&mut inst.table, "advert_int", Value::Float(cs / 100.0), c);
                if (x * 100.0 - cs).abs() > 1e-6 {
                    cx.note_at(
                        c.loc,
                        "advert_int",
                        NoteKind::Approximated,
                        format!("VRRPv3 carries centiseconds: {x} written as {}", cs / 100.0),
                    );
                }
            } else {
                cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!("{x} is out of VRRPv3's range 0.01-40.95: left out"),
                );
            }
        } else {
            let whole = x.round().clamp(1.0, 255.0);
            cx.set(&mut inst.table, "advert_int", Value::Float(whole), c);
            if (whole - x).abs() > 1e-9 {
                cx.note_at(
                    c.loc,
                    "advert_int",
                    NoteKind::Approximated,
                    format!("VRRPv2 adverts carry whole seconds: {x} written as {whole}"),
                );
            }
        }
    }
    if let Some(auth) = inst.auth {
        let mut auth_type = None;
        let mut auth_pass = None;
        for c in auth.children() {
            match c.keyword.as_str() {
                "auth_type" => auth_type = Some(c),
                "auth_pass" => auth_pass = Some(c),
                other => cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!("authentication {other} is not known: left out"),
                ),
            }
        }
        let kind = auth_type.and_then(|c| c.arg());
        if version == 3 {
            cx.note(
                auth,
                NoteKind::Cosmetic,
                "VRRPv3 carries no authentication (keepalived ignores it too): left out",
            );
        } else if kind == Some("PASS") {
            match auth_pass.and_then(|c| c.arg().map(|p| (c, p))) {
                Some((c, pass)) => {
                    if let Some(t) = auth_type {
                        cx.set(&mut inst.table, "auth_type", Value::Str("PASS".into()), t);
                    }
                    cx.set(&mut inst.table, "auth_pass", Value::Str(pass.to_owned()), c);
                }
                None => cx.note(
                    auth,
                    NoteKind::NotCarried,
                    "auth_type PASS without auth_pass: authentication is left out",
                ),
            }
        } else if kind == Some("AH") {
            cx.note(
                auth,
                NoteKind::NotCarried,
                "auth_type AH (IPsec) is not supported: xdplb authenticates with PASS only; \
                 the instance runs without authentication, so peers must drop AH too",
            );
        } else {
            cx.note(
                auth,
                NoteKind::NotCarried,
                format!(
                    "auth_type {:?} is not PASS or AH: authentication is left out",
                    kind.unwrap_or("")
                ),
            );
        }
        cx.carry_tree(auth);
    }
    for (node, key) in [(inst.nopreempt, "nopreempt"), (inst.preempt_delay, "preempt_delay")] {
        let Some(c) = node else { continue };
        if inst.master {
            cx.note(
                c,
                NoteKind::Cosmetic,
                format!("{key} needs state BACKUP: keepalived ignores it with state MASTER, so it is left out"),
            );
        } else if key == "nopreempt" {
            cx.set(&mut inst.table, "nopreempt", Value::Bool(true), c);
        } else if let Some(x) = c.arg().and_then(|v| v.parse::<f64>().ok()) {
            cx.set(&mut inst.table, "preempt_delay", Value::Float(x), c);
        }
    }
}

// ---------------------------------------------------------------------------
// virtual servers

/// Checker settings a virtual server or real server gives its checkers.
#[derive(Debug, Clone, Default)]
struct CheckDefaults {
    connect_timeout: Option<(f64, String)>,
    retry: Option<(i64, String)>,
    delay_before_retry: Option<(f64, String)>,
    delay_loop: Option<(f64, Loc)>,
    inhibit: Option<(bool, String)>,
}

impl CheckDefaults {
    /// `self` where set, else `parent`.
    fn over(&self, parent: &CheckDefaults) -> CheckDefaults {
        CheckDefaults {
            connect_timeout: self
                .connect_timeout
                .clone()
                .or_else(|| parent.connect_timeout.clone()),
            retry: self.retry.clone().or_else(|| parent.retry.clone()),
            delay_before_retry: self
                .delay_before_retry
                .clone()
                .or_else(|| parent.delay_before_retry.clone()),
            delay_loop: self.delay_loop.or(parent.delay_loop),
            inhibit: self.inhibit.clone().or_else(|| parent.inhibit.clone()),
        }
    }
}

/// One VIP:port a virtual_server stands for.
#[derive(Debug, Clone)]
struct Endpoint {
    vip: Ipv4Addr,
    port: u16,
    /// Where it was written (the virtual_server line, or the group's entry).
    loc: Loc,
}

struct Checker {
    table: Table,
    urls: Vec<Section>,
    own: CheckDefaults,
    port_set: bool,
    node_loc: Loc,
}

struct RealServer<'t> {
    node: &'t Node,
    ip: Ipv4Addr,
    port: Option<u16>,
    table: Table,
    own: CheckDefaults,
    http: Option<Checker>,
    tcp: Option<Checker>,
}

struct Service<'t> {
    node: &'t Node,
    endpoints: Vec<Endpoint>,
    protocol: &'static str,
    table: Table,
    defaults: CheckDefaults,
    real_servers: Vec<RealServer<'t>>,
    sorry: Option<Sorry>,
}

/// A `sorry_server IP [PORT]` line, with the `sorry_server_inhibit` that followed it.
struct Sorry {
    ip: Ipv4Addr,
    port: Option<u16>,
    loc: Loc,
    inhibit: Option<Loc>,
}

/// keepalived's persistence timeout when none is written (IPVS_SVC_PERSISTENT_TIMEOUT).
const DEFAULT_PERSISTENCE_TIMEOUT: i64 = 360;

/// Converts every virtual_server; returns the ones xdplb can run.
fn virtual_servers<'t>(cx: &mut Cx, conv: &Conversion<'t>) -> Vec<Service<'t>> {
    let mut groups: HashMap<&'t str, &'t Node> = HashMap::new();
    for g in &conv.groups {
        match g.arg() {
            Some(name) if !groups.contains_key(name) => {
                groups.insert(name, g);
            }
            Some(name) => cx.note(
                g,
                NoteKind::NotCarried,
                format!("virtual_server_group {name} is defined twice: the later one is left out"),
            ),
            None => {
                cx.note(g, NoteKind::NotCarried, "a virtual_server_group needs a name: left out")
            }
        }
    }
    let mut used: HashSet<&str> = HashSet::new();
    let mut services = Vec::new();
    for n in &conv.servers {
        if let Some(service) = virtual_server(cx, n, &groups, &mut used) {
            services.push(service);
        }
    }
    for (name, g) in &groups {
        if !used.contains(name) {
            cx.note(
                g,
                NoteKind::Cosmetic,
                "used by no virtual_server (keepalived ignores it too): left out",
            );
        }
    }
    services
}

fn virtual_server<'t>(
    cx: &mut Cx,
    n: &'t Node,
    groups: &HashMap<&'t str, &'t Node>,
    used: &mut HashSet<&'t str>,
) -> Option<Service<'t>> {
    cx.carry(n);
    // Every reason to refuse the service is named, so that all can be fixed at once.
    let mut refusal: Vec<(Loc, String, String)> = Vec::new();
    let endpoints = match n.args.as_slice() {
        [group, name, ..] if group == "group" => match groups.get_key_value(name.as_str()) {
            Some((key, g)) => {
                used.insert(*key);
                group_endpoints(cx, g)
            }
            None => {
                refusal.push((
                    n.loc,
                    n.keyword.clone(),
                    format!("virtual_server_group {name} is not defined"),
                ));
                Vec::new()
            }
        },
        [fwmark, _, ..] if fwmark == "fwmark" => {
            refusal.push((
                n.loc,
                n.keyword.clone(),
                "firewall-mark services are not supported: xdplb matches VIP and port".into(),
            ));
            Vec::new()
        }
        [addr, port, ..] => match endpoint(addr, port) {
            Ok(e) => vec![Endpoint { vip: e.0, port: e.1, loc: n.loc }],
            Err(why) => {
                refusal.push((n.loc, n.keyword.clone(), why));
                Vec::new()
            }
        },
        [addr] => {
            let why = match addr.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => format!("{addr} is IPv6: xdplb is IPv4 only"),
                _ => "a virtual server without a port (all ports, persistent) is not \
                      supported: xdplb matches VIP and port"
                    .to_owned(),
            };
            refusal.push((n.loc, n.keyword.clone(), why));
            Vec::new()
        }
        [] => {
            refusal.push((n.loc, n.keyword.clone(), "has no address".into()));
            Vec::new()
        }
    };
    let mut svc = Service {
        node: n,
        endpoints,
        protocol: "UDP",
        table: Table::default(),
        defaults: CheckDefaults::default(),
        real_servers: Vec::new(),
        sorry: None,
    };
    let mut granularity: Option<Loc> = None;
    let mut protocol_set = false;
    let mut sched_set = false;
    let mut method: Option<(&Node, String)> = None;
    for c in n.children() {
        if cx.cosmetic(c) {
            continue;
        }
        let key = c.keyword.as_str();
        match key {
            "delay_loop" => {
                if let Some(x) = cx.seconds(c, 0.001, DAY) {
                    svc.defaults.delay_loop = Some((x, c.loc));
                    cx.set(&mut svc.table, "delay_loop", Value::Float(x), c);
                }
            }
            "lvs_sched" | "lb_algo" => match cx.value(c) {
                Some(s @ ("wrr" | "rr")) => {
                    sched_set = true;
                    cx.set(&mut svc.table, "lvs_sched", Value::Str(s.to_owned()), c);
                }
                Some(other) => {
                    sched_set = true;
                    cx.carry(c);
                    refusal.push((
                        c.loc,
                        key.to_owned(),
                        format!("scheduler {other} is not supported: xdplb schedules by wrr or rr"),
                    ));
                }
                None => {}
            },
            "lvs_method" | "lb_kind" => {
                if let Some(m) = cx.value(c) {
                    cx.carry(c);
                    method = Some((c, m.to_owned()));
                }
            }
            "protocol" => match cx.value(c) {
                Some(p) if p.eq_ignore_ascii_case("TCP") || p.eq_ignore_ascii_case("UDP") => {
                    protocol_set = true;
                    svc.protocol = if p.eq_ignore_ascii_case("TCP") { "TCP" } else { "UDP" };
                    cx.set(&mut svc.table, "protocol", Value::Str(svc.protocol.to_owned()), c);
                }
                Some(other) => {
                    protocol_set = true;
                    cx.carry(c);
                    refusal.push((
                        c.loc,
                        key.to_owned(),
                        format!("protocol {other} is not supported: xdplb balances TCP or UDP"),
                    ));
                }
                None => {}
            },
            "persistence_timeout" => {
                // keepalived.conf(5): "persistence_timeout [<INTEGER>]", "default 6 minutes".
                let timeout = match c.arg() {
                    None => Some(DEFAULT_PERSISTENCE_TIMEOUT),
                    Some(_) => cx.integer(c, 1, i64::from(u32::MAX)),
                };
                if let Some(t) = timeout {
                    cx.set(&mut svc.table, "persistence_timeout", Value::Int(t), c);
                }
            }
            "persistence_granularity" => {
                if let Some(mask) = cx.value(c) {
                    match contiguous_netmask(mask) {
                        Some(mask) => {
                            granularity = Some(c.loc);
                            cx.set(
                                &mut svc.table,
                                "persistence_granularity",
                                Value::Str(mask.to_string()),
                                c,
                            );
                        }
                        None => cx.note(
                            c,
                            NoteKind::Cosmetic,
                            format!(
                                "{mask:?} is not a contiguous IPv4 netmask: keepalived ignores it \
                                 (\"netmask is not solid\"), so does xdplb"
                            ),
                        ),
                    }
                }
            }
            "persistence_engine" => cx.note(
                c,
                NoteKind::NotCarried,
                "persistence engines (sip: affinity by Call-ID) are not supported by xdplb: left \
                 out, clients persist by address only",
            ),
            "quorum" => {
                if let Some(q) = cx.integer(c, 1, i64::from(u32::MAX)) {
                    cx.set(&mut svc.table, "quorum", Value::Int(q), c);
                }
            }
            "hysteresis" => {
                if let Some(h) = cx.integer(c, 0, i64::from(u32::MAX)) {
                    cx.set(&mut svc.table, "hysteresis", Value::Int(h), c);
                }
            }
            "quorum_up" | "quorum_down" => notify(cx, c, &mut svc.table),
            "sorry_server" => match cx.ipv4(c, 0) {
                Some(ip) if !unicast_ok(ip) => cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!("{ip} is not a unicast address a server can have: left out"),
                ),
                Some(ip) => {
                    // keepalived: no port, or port 0, leaves the port to IPVS.
                    let port = match c.args.get(1).map(|p| p.parse::<u16>()) {
                        None | Some(Ok(0)) => Ok(None),
                        Some(Ok(p)) => Ok(Some(p)),
                        Some(Err(_)) => Err(()),
                    };
                    match port {
                        Ok(port) => {
                            cx.carry(c);
                            // A second line replaces the first, inhibit and all (alloc_ssvr).
                            svc.sorry = Some(Sorry { ip, port, loc: c.loc, inhibit: None });
                        }
                        Err(()) => cx.note(
                            c,
                            NoteKind::Cosmetic,
                            format!(
                                "{:?} is not a port: keepalived skips this sorry server \
                                 (\"Invalid sorry server\"), so does xdplb",
                                c.args.get(1).map_or("", String::as_str)
                            ),
                        ),
                    }
                }
                None => {}
            },
            "sorry_server_inhibit" => match svc.sorry.as_mut() {
                Some(sorry) => {
                    cx.carry(c);
                    sorry.inhibit = Some(c.loc);
                }
                None => cx.note(
                    c,
                    NoteKind::Cosmetic,
                    "comes before or without a sorry_server: keepalived ignores it (\"Ignoring \
                     sorry_server inhibit used before or without sorry_server\"), so does xdplb",
                ),
            },
            "sorry_server_lvs_method" => {
                if let Some(m) = cx.value(c) {
                    match &svc.sorry {
                        None => cx.note(
                            c,
                            NoteKind::Cosmetic,
                            "comes before or without a sorry_server: keepalived ignores it, so \
                             does xdplb",
                        ),
                        Some(_) if m.eq_ignore_ascii_case("DR") => cx.carry(c),
                        Some(sorry) => {
                            let ip = sorry.ip;
                            cx.note(
                                c,
                                NoteKind::Refused,
                                format!("{m}: {DR_ONLY}: sorry_server {ip} is left out"),
                            );
                            svc.sorry = None;
                        }
                    }
                }
            }
            "alpha" => cx.note(
                c,
                NoteKind::NotCarried,
                "alpha mode (real servers start as failed until checked) is not supported",
            ),
            "omega" => cx.note(
                c,
                NoteKind::NotCarried,
                "omega mode (notifiers run at shutdown) is not supported",
            ),
            "ha_suspend" => cx.note(
                c,
                NoteKind::NotCarried,
                "ha_suspend is not supported: xdplb checks real servers on the backup too",
            ),
            "virtualhost" => cx.note(
                c,
                NoteKind::NotCarried,
                "the Host header of HTTP checks is not configurable in xdplb: left out",
            ),
            "ops"
            | "flag-1"
            | "flag-2"
            | "flag-3"
            | "sh-port"
            | "sh-fallback"
            | "mh-port"
            | "mh-fallback"
            | "one_packet_scheduling" => {
                cx.note(c, NoteKind::NotCarried, "IPVS scheduler flags are not supported by xdplb")
            }
            "ip_family" => {
                cx.note(c, NoteKind::Cosmetic, "only meaningful for fwmark services: left out")
            }
            "real_server" => {
                if let Some(rs) = real_server(cx, c) {
                    svc.real_servers.push(rs);
                }
            }
            _ => {
                if !check_default(cx, c, &mut svc.defaults) {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        format!("virtual_server {key} is not supported by xdplb: left out"),
                    );
                }
            }
        }
    }

    // check_parser.c: a granularity without a timeout persists for the default.
    if let (Some(loc), None) = (granularity, svc.table.get("persistence_timeout")) {
        svc.table.set(
            "persistence_timeout",
            Value::Int(DEFAULT_PERSISTENCE_TIMEOUT),
            Some(cx.from(loc)),
        );
    }
    quorum_hysteresis(cx, n, &mut svc.table);

    // keepalived's defaults when unwritten: NAT, wlc, UDP (check_data.c).
    let dr_everywhere = !svc.real_servers.is_empty()
        && svc
            .real_servers
            .iter()
            .all(|rs| rs_method(rs.node).is_some_and(|m| m.eq_ignore_ascii_case("DR")));
    match &method {
        Some((c, m)) if m.eq_ignore_ascii_case("DR") => {
            cx.set(&mut svc.table, "lvs_method", Value::Str("DR".into()), c);
        }
        Some((c, m)) => {
            refusal.push((c.loc, c.keyword.clone(), format!("{m}: {DR_ONLY}")));
        }
        None if dr_everywhere => {
            svc.table.set("lvs_method", Value::Str("DR".into()), None);
        }
        None => {
            refusal.push((
                n.loc,
                n.keyword.clone(),
                format!(
                    "no lvs_method: keepalived forwards by NAT then, and {DR_ONLY} (write \
                     lvs_method DR if the real servers are set up for it)"
                ),
            ));
        }
    }
    if !sched_set {
        refusal.push((
            n.loc,
            n.keyword.clone(),
            "no lvs_sched: keepalived schedules by wlc then, which xdplb does not have (write \
             lvs_sched wrr or rr)"
                .into(),
        ));
    }
    if !protocol_set && refusal.is_empty() {
        svc.table.set("protocol", Value::Str("UDP".into()), Some(cx.from(n.loc)));
        cx.note_at(
            n.loc,
            &n.keyword,
            NoteKind::Cosmetic,
            "no protocol: keepalived runs the service as UDP (and warns), so does xdplb",
        );
    }
    if !refusal.is_empty() {
        cx.carry_tree(n);
        let what = match svc.endpoints.as_slice() {
            [one] => format!("virtual_server {}:{}", one.vip, one.port),
            _ => format!("virtual_server {}", n.args.join(" ")),
        };
        for (loc, keyword, why) in refusal {
            cx.note_at(loc, &keyword, NoteKind::Refused, format!("{why}: {what} is left out"));
        }
        return None;
    }
    // A real server with its own forwarding method other than DR.
    svc.real_servers.retain(|rs| match rs_method(rs.node) {
        Some(m) if !m.eq_ignore_ascii_case("DR") => {
            let at = rs
                .node
                .children()
                .iter()
                .find(|c| c.keyword == "lvs_method" || c.keyword == "lb_kind");
            if let Some(c) = at {
                cx.note_at(
                    c.loc,
                    &c.keyword,
                    NoteKind::Refused,
                    format!("{m}: {DR_ONLY}: real_server {} is left out", rs.ip),
                );
            }
            false
        }
        _ => true,
    });
    Some(svc)
}

/// xdplb wants `hysteresis < quorum`. keepalived takes a larger one, and then
/// loses the quorum only with no live weight ("!weight_sum"): a hysteresis of
/// `quorum - 1` loses it at the same point, but regains it earlier.
fn quorum_hysteresis(cx: &mut Cx, n: &Node, table: &mut Table) {
    let quorum = match table.get("quorum") {
        Some(Value::Int(q)) => *q,
        _ => 1,
    };
    let Some(Value::Int(h)) = table.get("hysteresis").cloned() else { return };
    if h < quorum {
        return;
    }
    let from = table.entries.iter().find(|e| e.key == "hysteresis").and_then(|e| e.from.clone());
    let loc = from.as_deref().and_then(|f| cx.loc_of(f)).unwrap_or(n.loc);
    table.set("hysteresis", Value::Int(quorum - 1), from);
    cx.note_at(
        loc,
        "hysteresis",
        NoteKind::Approximated,
        format!(
            "hysteresis {h} is not below quorum {quorum}: keepalived then loses the quorum only \
             with no live weight, as xdplb does with hysteresis {}, which it carries; the quorum \
             comes back at a live weight of {} instead of {}",
            quorum - 1,
            quorum + quorum - 1,
            quorum + h
        ),
    );
}

/// `mask` if it is a dotted IPv4 netmask of contiguous ones (keepalived's
/// check_parser.c `pgr_handler`: "Ensure the netmask is solid").
fn contiguous_netmask(mask: &str) -> Option<Ipv4Addr> {
    let ip = mask.parse::<Ipv4Addr>().ok()?;
    let bits = u32::from(ip);
    (bits != 0 && bits.leading_ones() + bits.trailing_zeros() == 32).then_some(ip)
}

/// A real server's own `lvs_method`/`lb_kind`, if written.
fn rs_method(n: &Node) -> Option<String> {
    n.children()
        .iter()
        .rev()
        .find(|c| c.keyword == "lvs_method" || c.keyword == "lb_kind")
        .and_then(|c| c.arg().map(str::to_owned))
}

/// `IP PORT` of a virtual server.
fn endpoint(addr: &str, port: &str) -> Result<(Ipv4Addr, u16), String> {
    let vip = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(_)) => return Err(format!("{addr} is IPv6: xdplb is IPv4 only")),
        Err(_) => return Err(format!("{addr:?} is not an IPv4 address")),
    };
    if !unicast_ok(vip) {
        return Err(format!("{vip} is not a unicast address a VIP can be"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((vip, p)),
        _ => Err(format!("port {port:?} is not 1-65535")),
    }
}

/// The VIP:ports of a virtual_server_group: addresses, `A.B.C.D-E` and
/// `A.B.C.D-E.F.G.H` ranges, `A.B.C.D/N` blocks; fwmarks and IPv6 refused.
fn group_endpoints(cx: &mut Cx, g: &Node) -> Vec<Endpoint> {
    cx.carry(g);
    let mut out = Vec::new();
    for e in g.children() {
        if e.keyword == "fwmark" {
            cx.note(
                e,
                NoteKind::Refused,
                "firewall marks are not supported: xdplb matches VIP and port; left out of the group",
            );
            continue;
        }
        let Some(port) = e.arg() else {
            cx.note(
                e,
                NoteKind::Refused,
                "an address without a port (all ports) is not supported: xdplb matches VIP and port",
            );
            continue;
        };
        let range = match address_range(&e.keyword) {
            Ok(range) => range,
            Err(why) => {
                cx.note(e, NoteKind::Refused, format!("{why}: left out of the group"));
                continue;
            }
        };
        let mut ok = true;
        let mut found = Vec::new();
        for ip in range {
            match endpoint(&ip.to_string(), port) {
                Ok((vip, port)) => found.push(Endpoint { vip, port, loc: e.loc }),
                Err(why) => {
                    cx.note(e, NoteKind::Refused, format!("{why}: left out of the group"));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            cx.carry(e);
            out.extend(found);
        }
    }
    out
}

fn address_range(text: &str) -> Result<Vec<Ipv4Addr>, String> {
    let ipv6 = |s: &str| s.contains(':');
    if ipv6(text) {
        return Err(format!("{text} is IPv6: xdplb is IPv4 only"));
    }
    let parse = |s: &str| {
        s.parse::<Ipv4Addr>().map_err(|_| format!("{text:?} is not an IPv4 address or range"))
    };
    let (first, last) = if let Some((base, bits)) = text.split_once('/') {
        let base = u32::from(parse(base)?);
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| *b <= 32)
            .ok_or_else(|| format!("{text:?} has no prefix 0-32"))?;
        let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
        (base & mask, (base & mask) | !mask)
    } else if let Some((start, end)) = text.split_once('-') {
        let start = u32::from(parse(start)?);
        let end = if end.contains('.') {
            u32::from(parse(end)?)
        } else {
            let last: u32 = end
                .parse()
                .ok()
                .filter(|b| *b <= 255)
                .ok_or_else(|| format!("{text:?} is not a range"))?;
            (start & !0xff) | last
        };
        (start, end)
    } else {
        let ip = u32::from(parse(text)?);
        (ip, ip)
    };
    if last < first {
        return Err(format!("{text} is an empty range"));
    }
    if last - first >= MAX_RANGE {
        return Err(format!(
            "{text} has more than {MAX_RANGE} addresses: write them as several entries"
        ));
    }
    Ok((first..=last).map(Ipv4Addr::from).collect())
}

/// The checker defaults a virtual or real server may set; false if `c` is not one.
fn check_default(cx: &mut Cx, c: &Node, d: &mut CheckDefaults) -> bool {
    match c.keyword.as_str() {
        "connect_timeout" => {
            if let Some(x) = cx.seconds(c, 0.001, 3600.0) {
                cx.carry(c);
                d.connect_timeout = Some((x, cx.from(c.loc)));
            }
        }
        "retry" | "nb_get_retry" => {
            if let Some(x) = cx.integer(c, 0, 100) {
                cx.carry(c);
                d.retry = Some((x, cx.from(c.loc)));
            }
        }
        "delay_before_retry" => {
            if let Some(x) = cx.seconds(c, 0.0, 3600.0) {
                cx.carry(c);
                d.delay_before_retry = Some((x, cx.from(c.loc)));
            }
        }
        "inhibit_on_failure" => {
            if let Some(b) = cx.boolean(c) {
                cx.carry(c);
                d.inhibit = Some((b, cx.from(c.loc)));
            }
        }
        "delay_loop" => {
            if let Some(x) = cx.seconds(c, 0.001, DAY) {
                cx.carry(c);
                d.delay_loop = Some((x, c.loc));
            }
        }
        "warmup" => cx.note(
            c,
            NoteKind::Cosmetic,
            "the random delay before the first check is left out: xdplb checks at once",
        ),
        _ => return false,
    }
    true
}

fn real_server<'t>(cx: &mut Cx, n: &'t Node) -> Option<RealServer<'t>> {
    let ip = cx.ipv4(n, 0)?;
    if !unicast_ok(ip) {
        cx.note(
            n,
            NoteKind::NotCarried,
            format!("{ip} is not a unicast address a server can have: left out"),
        );
        return None;
    }
    let port = match n.args.get(1) {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                cx.note(n, NoteKind::NotCarried, format!("port {p:?} is not 1-65535: left out"));
                return None;
            }
        },
    };
    cx.carry(n);
    let mut rs = RealServer {
        node: n,
        ip,
        port,
        table: Table::default(),
        own: CheckDefaults::default(),
        http: None,
        tcp: None,
    };
    rs.table.set("ip", Value::Str(ip.to_string()), Some(cx.from(n.loc)));
    for c in n.children() {
        if cx.cosmetic(c) {
            continue;
        }
        let key = c.keyword.as_str();
        match key {
            "weight" => {
                if let Some(w) = cx.integer(c, 0, 65535) {
                    cx.set(&mut rs.table, "weight", Value::Int(w), c);
                }
            }
            // Checked by the virtual server.
            "lvs_method" | "lb_kind" => cx.carry(c),
            "HTTP_GET" | "TCP_CHECK" => {
                let http = key == "HTTP_GET";
                if (http && rs.http.is_some()) || (!http && rs.tcp.is_some()) {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        format!("a second {key} per real server is not supported: left out"),
                    );
                    continue;
                }
                let checker = checker(cx, c, http);
                if http {
                    rs.http = checker;
                } else {
                    rs.tcp = checker;
                }
            }
            "SSL_GET" | "SMTP_CHECK" | "DNS_CHECK" | "MISC_CHECK" | "UDP_CHECK" | "PING_CHECK"
            | "BFD_CHECK" | "FILE_CHECK" => cx.note(
                c,
                NoteKind::NotCarried,
                format!(
                    "{key} health checks are not supported by xdplb (HTTP_GET and TCP_CHECK are): \
                     the real server is carried without this check"
                ),
            ),
            "notify_up" | "notify_down" => cx.note(
                c,
                NoteKind::NotCarried,
                "real server notify scripts are not supported: watch status or metrics",
            ),
            "uthreshold" | "lthreshold" => cx.note(
                c,
                NoteKind::NotCarried,
                "connection thresholds are not supported: the server takes new flows by weight",
            ),
            "virtualhost" => cx.note(
                c,
                NoteKind::NotCarried,
                "the Host header of HTTP checks is not configurable in xdplb: left out",
            ),
            "alpha" => cx.note(
                c,
                NoteKind::NotCarried,
                "alpha mode (the server starts as failed until checked) is not supported",
            ),
            _ => {
                if !check_default(cx, c, &mut rs.own) {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        format!("real_server {key} is not supported by xdplb: left out"),
                    );
                }
            }
        }
    }
    Some(rs)
}

fn checker(cx: &mut Cx, n: &Node, http: bool) -> Option<Checker> {
    cx.carry(n);
    let mut ch = Checker {
        table: Table::default(),
        urls: Vec::new(),
        own: CheckDefaults::default(),
        port_set: false,
        node_loc: n.loc,
    };
    for c in n.children() {
        if cx.cosmetic(c) {
            continue;
        }
        let key = c.keyword.as_str();
        match key {
            "url" if http => {
                if let Some(url) = url(cx, c) {
                    ch.urls.push(url);
                }
            }
            "connect_port" => {
                if let Some(p) = cx.integer(c, 1, 65535) {
                    ch.port_set = true;
                    cx.set(&mut ch.table, "connect_port", Value::Int(p), c);
                }
            }
            "bindto" => {
                if let Some(ip) = cx.ipv4(c, 0) {
                    cx.set(&mut ch.table, "bindto", Value::Str(ip.to_string()), c);
                }
            }
            "connect_ip" => cx.note(
                c,
                NoteKind::NotCarried,
                "checks go to the real server's own address in xdplb: connect_ip is left out",
            ),
            "bind_port" | "bind_if" | "fwmark" => cx.note(
                c,
                NoteKind::NotCarried,
                format!("{key} of health checks is not supported: left out"),
            ),
            "http_protocol" | "fast_recovery" | "enable_sni" => cx.note(
                c,
                NoteKind::NotCarried,
                format!("{key} is not supported by xdplb's HTTP check: left out"),
            ),
            "alpha" => cx.note(c, NoteKind::NotCarried, "alpha mode is not supported"),
            "inhibit_on_failure" => cx.note(
                c,
                NoteKind::NotCarried,
                "inhibit_on_failure belongs to the real server, not to a check: left out",
            ),
            _ => {
                if !check_default(cx, c, &mut ch.own) {
                    cx.note(
                        c,
                        NoteKind::NotCarried,
                        format!("{} {key} is not supported by xdplb: left out", n.keyword),
                    );
                }
            }
        }
    }
    if http && ch.urls.is_empty() {
        cx.note_at(
            n.loc,
            &n.keyword,
            NoteKind::NotCarried,
            "no url to fetch (keepalived refuses it too): the HTTP check is left out",
        );
        return None;
    }
    Some(ch)
}

fn url(cx: &mut Cx, n: &Node) -> Option<Section> {
    let mut table = Table::default();
    for c in n.children() {
        let key = c.keyword.as_str();
        match key {
            "path" => match cx.value(c) {
                Some(p)
                    if p.starts_with('/')
                        && !p.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    cx.set(&mut table, "path", Value::Str(p.to_owned()), c);
                }
                Some(p) => cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!("{p:?} is not an absolute path: left out"),
                ),
                None => {}
            },
            "digest" => match cx.value(c) {
                Some(d) if d.len() == 32 && d.chars().all(|c| c.is_ascii_hexdigit()) => {
                    cx.set(&mut table, "digest", Value::Str(d.to_ascii_lowercase()), c);
                }
                Some(d) => cx.note(
                    c,
                    NoteKind::NotCarried,
                    format!("{d:?} is not an MD5 digest: left out"),
                ),
                None => {}
            },
            "status_code" => status_code(cx, c, &mut table),
            "virtualhost" => cx.note(
                c,
                NoteKind::NotCarried,
                "the Host header of HTTP checks is not configurable in xdplb: left out",
            ),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => cx.note(
                c,
                NoteKind::NotCarried,
                "matching the body against a regex is not supported (digest is): left out",
            ),
            _ => cx.note(c, NoteKind::NotCarried, format!("url {key} is not supported: left out")),
        }
    }
    if table.get("path").is_none() {
        cx.note(
            n,
            NoteKind::NotCarried,
            "a url without a path (keepalived refuses it too): left out",
        );
        return None;
    }
    cx.carry(n);
    if table.get("status_code").is_none() {
        table.set("status_code", Value::Int(200), None);
        cx.note_at(
            n.loc,
            &n.keyword,
            NoteKind::Approximated,
            "no status_code: keepalived accepts any 2xx, xdplb checks for 200",
        );
    }
    Some(Section { comment: vec![format!("{} url", cx.from(n.loc))], table })
}

/// `status_code 200` carried; codes and ranges narrowed to the first code.
fn status_code(cx: &mut Cx, c: &Node, table: &mut Table) {
    let first = c.arg().and_then(|a| a.split('-').next()).and_then(|a| a.parse::<i64>().ok());
    match first {
        Some(code) if (100..=599).contains(&code) => {
            cx.set(table, "status_code", Value::Int(code), c);
            if c.args.len() > 1 || c.arg().is_some_and(|a| a.contains('-')) {
                cx.note_at(
                    c.loc,
                    &c.keyword,
                    NoteKind::Approximated,
                    format!(
                        "xdplb checks for one status code: {} narrowed to {code}",
                        c.args.join(" ")
                    ),
                );
            }
        }
        _ => cx.note(c, NoteKind::NotCarried, "not a status code 100-599: left out"),
    }
}

// ---------------------------------------------------------------------------
// putting services together

/// Expands services to one per VIP:port, drops what xdplb's validation would
/// refuse (with notes), settles the data-plane interface and writes it all.
fn dataplane_and_services(
    cx: &mut Cx,
    conv: &Conversion,
    services: Vec<Service>,
    out: &mut Output,
) {
    let vrrp_vips: HashMap<Ipv4Addr, &Instance> = conv
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().map(move |(ip, _, _, _)| (*ip, i)))
        .collect();

    // The interface the data plane serves.
    let mut interface: Option<(String, String)> = cx
        .options
        .dataplane_interface
        .as_ref()
        .map(|name| (name.clone(), "given to the importer".to_owned()));
    if interface.is_none() {
        let owner = services
            .iter()
            .flat_map(|s| &s.endpoints)
            .find_map(|e| vrrp_vips.get(&e.vip).copied())
            .or(conv.instances.first());
        interface = owner.and_then(|i| {
            i.interface.clone().map(|name| (name, format!("vrrp_instance {}'s interface", i.name)))
        });
    }

    // Every VIP, for the "real server is a VIP" rule.
    let mut all_vips: HashSet<Ipv4Addr> = vrrp_vips.keys().copied().collect();
    all_vips.extend(services.iter().flat_map(|s| s.endpoints.iter().map(|e| e.vip)));

    let mut keys: HashMap<(Ipv4Addr, u16, &'static str), Loc> = HashMap::new();
    let mut unconditional_noted: HashSet<Ipv4Addr> = HashSet::new();
    for svc in &services {
        for ep in &svc.endpoints {
            if let Some(first) = keys.get(&(ep.vip, ep.port, svc.protocol)) {
                let first = cx.from(*first);
                cx.note_at(
                    ep.loc,
                    &svc.node.keyword,
                    NoteKind::NotCarried,
                    format!(
                        "{}:{}/{} is already a virtual server (at {first}): left out",
                        ep.vip, ep.port, svc.protocol
                    ),
                );
                continue;
            }
            if let (Some(owner), Some((serves, _))) = (vrrp_vips.get(&ep.vip), &interface) {
                if owner.interface.as_deref() != Some(serves.as_str()) {
                    cx.note_at(
                        ep.loc,
                        &svc.node.keyword,
                        NoteKind::NotCarried,
                        format!(
                            "VIP {} is vrrp_instance {}'s on {}, but xdplb's data plane serves one \
                             interface ({serves}): {}:{} is left out",
                            ep.vip,
                            owner.name,
                            owner.interface.as_deref().unwrap_or("?"),
                            ep.vip,
                            ep.port
                        ),
                    );
                    continue;
                }
            }
            keys.insert((ep.vip, ep.port, svc.protocol), ep.loc);
            if !vrrp_vips.contains_key(&ep.vip) && unconditional_noted.insert(ep.vip) {
                cx.note_at(
                    ep.loc,
                    &svc.node.keyword,
                    NoteKind::Approximated,
                    format!(
                        "VIP {} is in no vrrp_instance: keepalived leaves the address alone, \
                         xdplb adds it to the data-plane interface at start (on every director \
                         running this file); list it in a vrrp_instance to have it move",
                        ep.vip
                    ),
                );
            }
            out.services.push(service_out(cx, svc, ep, &all_vips));
        }
    }

    match interface {
        Some((name, why)) => {
            let section = out.dataplane.get_or_insert_with(Section::default);
            section.comment = vec![format!("The data plane serves {why}.")];
            section.table.set("interface", Value::Str(name), None);
        }
        None => {
            let at = services
                .first()
                .map(|s| s.node)
                .or(conv.servers.first().copied())
                .map(|n| n.loc)
                .unwrap_or(Loc { file: super::lexer::FileId(0), line: 1 });
            cx.note_at(
                at,
                "[dataplane] interface",
                NoteKind::NotCarried,
                "no vrrp_instance names an interface, so the importer cannot tell which one the \
                 data plane serves: set [dataplane] interface (or give it to the importer); until \
                 then the result fails validation (\"no data-plane interface\")",
            );
        }
    }
}

fn service_out(
    cx: &mut Cx,
    svc: &Service,
    ep: &Endpoint,
    all_vips: &HashSet<Ipv4Addr>,
) -> ServiceOut {
    let mut table = svc.table.clone();
    let from = Some(cx.from(ep.loc));
    table.set("vip", Value::Str(ep.vip.to_string()), from.clone());
    table.set("port", Value::Int(i64::from(ep.port)), from);
    let mut comment =
        vec![format!("{} virtual_server {}", cx.from(svc.node.loc), svc.node.args.join(" "))];
    if ep.loc != svc.node.loc {
        comment.push(format!("{} {}:{} (from the group)", cx.from(ep.loc), ep.vip, ep.port));
    }
    if let Some(sorry) = &svc.sorry {
        sorry_out(cx, sorry, ep, all_vips, &mut table);
    }
    let mut real_servers = Vec::new();
    let mut seen: HashSet<Ipv4Addr> = HashSet::new();
    for rs in &svc.real_servers {
        if all_vips.contains(&rs.ip) {
            cx.note_at(
                rs.node.loc,
                &rs.node.keyword,
                NoteKind::Refused,
                format!(
                    "{} is also a VIP: DR needs real servers with addresses of their own; left out",
                    rs.ip
                ),
            );
            continue;
        }
        if !seen.insert(rs.ip) {
            cx.note_at(
                rs.node.loc,
                &rs.node.keyword,
                NoteKind::Cosmetic,
                format!("{} is listed twice: keepalived drops the second, so does xdplb", rs.ip),
            );
            continue;
        }
        real_servers.push(real_server_out(cx, svc, rs, ep));
    }
    ServiceOut { section: Section { comment, table }, real_servers }
}

/// `sorry_server = { ip = "…" }` (the port is always the virtual port) and
/// `sorry_server_inhibit`, unless the sorry server is a VIP.
fn sorry_out(
    cx: &mut Cx,
    sorry: &Sorry,
    ep: &Endpoint,
    all_vips: &HashSet<Ipv4Addr>,
    table: &mut Table,
) {
    if all_vips.contains(&sorry.ip) {
        cx.note_at(
            sorry.loc,
            "sorry_server",
            NoteKind::Refused,
            format!(
                "{} is also a VIP: DR needs a sorry server with an address of its own; left out",
                sorry.ip
            ),
        );
        return;
    }
    if let Some(p) = sorry.port.filter(|p| *p != ep.port) {
        cx.note_at(
            sorry.loc,
            "sorry_server",
            NoteKind::Cosmetic,
            format!(
                "port {p}: DR cannot rewrite ports, so traffic goes to port {} (IPVS sends a DR \
                 destination the packet unchanged too)",
                ep.port
            ),
        );
    }
    let inline = vec![("ip", Value::Str(sorry.ip.to_string()))];
    table.set("sorry_server", Value::Inline(inline), Some(cx.from(sorry.loc)));
    if let Some(loc) = sorry.inhibit {
        table.set("sorry_server_inhibit", Value::Bool(true), Some(cx.from(loc)));
    }
}

fn real_server_out(cx: &mut Cx, svc: &Service, rs: &RealServer, ep: &Endpoint) -> RealServerOut {
    let mut table = rs.table.clone();
    let defaults = rs.own.over(&svc.defaults);
    if let Some((b, from)) = &defaults.inhibit {
        table.set("inhibit_on_failure", Value::Bool(*b), Some(from.clone()));
    }
    // DR sends to the virtual port; keepalived resets the real server's port
    // to it too, but its checks keep going to the port written.
    let check_port = rs.port.filter(|p| *p != ep.port);
    if let Some(p) = check_port {
        cx.note_at(
            rs.node.loc,
            &rs.node.keyword,
            NoteKind::Cosmetic,
            format!(
                "port {p}: DR cannot rewrite ports, so traffic goes to port {} (keepalived resets \
                 the port and warns too); health checks keep port {p}",
                ep.port
            ),
        );
    }
    let comment = vec![format!("{} real_server {}", cx.from(rs.node.loc), rs.node.args.join(" "))];
    let mut out =
        RealServerOut { section: Section { comment, table }, http_get: None, tcp_check: None };
    let svc_delay = svc.defaults.delay_loop.map(|(x, _)| x);
    for (checker, http) in [(&rs.http, true), (&rs.tcp, false)] {
        let Some(ch) = checker else { continue };
        let eff = ch.own.over(&defaults);
        if let Some((x, loc)) = eff.delay_loop {
            if Some(x) != svc_delay {
                cx.note_at(
                    loc,
                    "delay_loop",
                    NoteKind::NotCarried,
                    format!(
                        "a delay_loop of {x} s for one real server or check is not supported: \
                         xdplb checks every server of a service each {} s",
                        svc_delay.unwrap_or(60.0)
                    ),
                );
            }
        }
        let mut table = ch.table.clone();
        if let Some((x, from)) = eff.connect_timeout {
            table.set("connect_timeout", Value::Float(x), Some(from));
        }
        if let Some((x, from)) = eff.retry {
            table.set("retry", Value::Int(x), Some(from));
        }
        if let Some((x, from)) = eff.delay_before_retry {
            table.set("delay_before_retry", Value::Float(x), Some(from));
        }
        if let (Some(p), false) = (check_port, ch.port_set) {
            table.set("connect_port", Value::Int(i64::from(p)), Some(cx.from(rs.node.loc)));
        }
        let name = if http { "HTTP_GET" } else { "TCP_CHECK" };
        let section = Section { comment: vec![format!("{} {name}", cx.from(ch.node_loc))], table };
        if http {
            out.http_get = Some((section, ch.urls.clone()));
        } else {
            out.tcp_check = Some(section);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every keyword `static_key` is asked for maps to itself: a miss would
    /// write an `unknown` key, which the final validation would refuse.
    #[test]
    fn static_keys_are_their_own_keywords() {
        for key in [
            "vrrp_garp_master_delay",
            "vrrp_garp_lower_prio_delay",
            "vrrp_garp_master_repeat",
            "vrrp_garp_master_refresh_repeat",
            "garp_master_delay",
            "garp_lower_prio_delay",
            "garp_master_repeat",
            "garp_master_refresh_repeat",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "notify",
        ] {
            assert_eq!(static_key(key), key);
        }
    }

    #[test]
    fn command_words_are_quoted_for_the_shell() {
        assert_eq!(shell_word("/usr/bin/pgrep"), "/usr/bin/pgrep");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn group_ranges_expand_like_keepalived() {
        let ips = |t: &str| {
            address_range(t).map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(ips("10.0.0.1-3").expect("range"), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(ips("10.0.0.254-10.0.1.1").expect("range").len(), 4);
        assert_eq!(
            ips("10.0.0.5/30").expect("block"),
            ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
        );
        assert!(ips("10.0.0.9-3").is_err());
        assert!(ips("10.0.0.0/8").is_err());
        assert!(ips("fe80::1").is_err());
    }
}
