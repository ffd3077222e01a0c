//! What a configuration reload (SIGHUP, `xdplb reload`) may change while
//! running, and what exactly it changes: pure comparisons of the running
//! configuration with the new one, so the daemon applies a reload in one
//! ordered pass and the rules are tested without a network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::{Config, HttpGet, TcpCheck};
use crate::publish::{real_server_addresses, ServerKey};

/// Why the new configuration cannot be applied without a restart: one line
/// per difference, naming the setting and both values. Empty = reloadable.
pub fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    let (a, b) = (&old.dataplane, &new.dataplane);
    let mut field = |name: &str, before: String, after: String| {
        if before != after {
            why.push(format!("[dataplane] {name} changed ({before} → {after})"));
        }
    };
    field("interface", a.interface.clone(), b.interface.clone());
    field("queues", format!("{:?}", a.queues), format!("{:?}", b.queues));
    field("cores", format!("{:?}", a.cores), format!("{:?}", b.cores));
    field("xdp_mode", format!("{:?}", a.xdp_mode), format!("{:?}", b.xdp_mode));
    field("bind_mode", format!("{:?}", a.bind_mode), format!("{:?}", b.bind_mode));
    field("poll", format!("{:?}", a.poll), format!("{:?}", b.poll));
    field("batch_size", a.batch_size.to_string(), b.batch_size.to_string());
    field("ring_size", a.ring_size.to_string(), b.ring_size.to_string());
    field("frame_size", a.frame_size.to_string(), b.frame_size.to_string());
    field("umem_frames", a.umem_frames.to_string(), b.umem_frames.to_string());
    field("flow_table_size", a.flow_table_size.to_string(), b.flow_table_size.to_string());
    field("tcp_timeout", secs(a.tcp_timeout), secs(b.tcp_timeout));
    field("tcpfin_timeout", secs(a.tcpfin_timeout), secs(b.tcpfin_timeout));
    field("udp_timeout", secs(a.udp_timeout), secs(b.udp_timeout));
    if a != b && why.is_empty() {
        why.push("[dataplane] changed".to_owned());
    }

    let names = |c: &Config| c.vrrp_instances.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    for instance in &new.vrrp_instances {
        match old.vrrp_instances.iter().find(|o| o.name == instance.name) {
            None => why.push(format!("vrrp_instance {:?} added", instance.name)),
            Some(o) if o != instance => why.push(format!(
                "vrrp_instance {:?} changed (VRRP settings are applied at start only, so that \
                 a reload never makes the instance flap)",
                instance.name
            )),
            Some(_) => {}
        }
    }
    for name in names(old).into_iter().filter(|n| !names(new).contains(n)) {
        why.push(format!("vrrp_instance {name:?} removed"));
    }
    if old.vrrp_scripts != new.vrrp_scripts {
        why.push("vrrp_script blocks changed".to_owned());
    }
    if old.global_defs != new.global_defs {
        why.push("[global_defs] changed".to_owned());
    }
    if old.control != new.control {
        why.push("[control] changed".to_owned());
    }
    if old.metrics != new.metrics {
        why.push("[metrics] changed".to_owned());
    }
    why
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// What a health checker of a real server probes; a checker whose spec is
/// unchanged keeps running (and keeps its up/down state) across a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// The service's `delay_loop`.
    pub delay_loop: Duration,
    /// The server's HTTP_GET, if any.
    pub http_get: Option<HttpGet>,
    /// The server's TCP_CHECK, if any.
    pub tcp_check: Option<TcpCheck>,
}

/// Every checked real server of `config` with what it probes.
pub fn checks(config: &Config) -> BTreeMap<ServerKey, CheckSpec> {
    let mut out = BTreeMap::new();
    for vs in &config.virtual_servers {
        for rs in &vs.real_servers {
            if rs.http_get.is_some() || rs.tcp_check.is_some() {
                let spec = CheckSpec {
                    delay_loop: vs.delay_loop,
                    http_get: rs.http_get.clone(),
                    tcp_check: rs.tcp_check.clone(),
                };
                out.insert(ServerKey::of(vs, rs), spec);
            }
        }
    }
    out
}

/// The changes a reloadable new configuration makes, in the terms the
/// daemon applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Unconditional VIPs (no VRRP instance moves them) to add.
    pub vips_added: Vec<Ipv4Addr>,
    /// Unconditional VIPs no service uses any more.
    pub vips_removed: Vec<Ipv4Addr>,
    /// Real-server addresses that need a neighbour entry.
    pub neighbours_added: Vec<Ipv4Addr>,
    /// Real-server addresses no service uses any more.
    pub neighbours_removed: Vec<Ipv4Addr>,
    /// Health checkers to stop (server gone, check removed or changed).
    pub checks_stopped: Vec<ServerKey>,
    /// Health checkers to start (new server, new or changed check).
    pub checks_started: Vec<ServerKey>,
    /// One line per change, for the log.
    pub summary: Vec<String>,
}

impl ReloadPlan {
    /// Compares the running configuration with a reloadable new one.
    pub fn new(old: &Config, new: &Config) -> Self {
        let (old_vips, new_vips) = (old.unconditional_vips(), new.unconditional_vips());
        let (old_rs, new_rs) = (real_server_addresses(old), real_server_addresses(new));
        let (old_checks, new_checks) = (checks(old), checks(new));
        let mut plan = ReloadPlan {
            vips_added: new_vips.iter().filter(|v| !old_vips.contains(v)).copied().collect(),
            vips_removed: old_vips.iter().filter(|v| !new_vips.contains(v)).copied().collect(),
            neighbours_added: new_rs.iter().filter(|v| !old_rs.contains(v)).copied().collect(),
            neighbours_removed: old_rs.iter().filter(|v| !new_rs.contains(v)).copied().collect(),
            checks_stopped: old_checks
                .iter()
                .filter(|(k, spec)| new_checks.get(k) != Some(spec))
                .map(|(k, _)| *k)
                .collect(),
            checks_started: new_checks
                .iter()
                .filter(|(k, spec)| old_checks.get(k) != Some(spec))
                .map(|(k, _)| *k)
                .collect(),
            summary: Vec::new(),
        };
        plan.summary = summarize(old, new);
        plan
    }
}

/// Services and real servers added, removed or re-weighted.
fn summarize(old: &Config, new: &Config) -> Vec<String> {
    let servers = |c: &Config| -> BTreeMap<ServerKey, u32> {
        c.virtual_servers
            .iter()
            .flat_map(|vs| vs.real_servers.iter().map(move |rs| (ServerKey::of(vs, rs), rs.weight)))
            .collect()
    };
    let services = |c: &Config| -> BTreeSet<_> { c.services().map(|(k, _)| k).collect() };
    let (old_services, new_services) = (services(old), services(new));
    let (old_servers, new_servers) = (servers(old), servers(new));
    let name =
        |k: &dataplane::tables::ServiceKey| format!("{} {}:{}", k.proto.name(), k.vip, k.port);
    let mut out = Vec::new();
    for k in new_services.difference(&old_services) {
        out.push(format!("service {} added", name(k)));
    }
    for k in old_services.difference(&new_services) {
        out.push(format!("service {} removed: its flows end", name(k)));
    }
    for (k, weight) in &new_servers {
        match old_servers.get(k) {
            None if old_services.contains(&k.service) => out.push(format!(
                "real server {}:{} added to {} (weight {weight})",
                k.ip,
                k.port,
                name(&k.service)
            )),
            Some(before) if before != weight => out.push(format!(
                "real server {}:{} of {}: weight {before} → {weight}{}",
                k.ip,
                k.port,
                name(&k.service),
                if *weight == 0 { " (drains: its flows go on, no new ones)" } else { "" }
            )),
            _ => {}
        }
    }
    for k in old_servers.keys().filter(|k| !new_servers.contains_key(k)) {
        if new_services.contains(&k.service) {
            out.push(format!(
                "real server {}:{} removed from {}: its flows end",
                k.ip,
                k.port,
                name(&k.service)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    const BASE: &str = r#"
[dataplane]
interface = "eth0"

[[virtual_server]]
vip = "192.168.10.110"
port = 80

[[virtual_server.real_server]]
ip = "192.168.10.103"
port = 80
weight = 1
[virtual_server.real_server.http_get]
connect_port = 80
[[virtual_server.real_server.http_get.url]]
path = "/"
status_code = 200

[[virtual_server.real_server]]
ip = "192.168.10.104"
port = 80
weight = 1
"#;

    fn parse(text: &str) -> Config {
        config::parse(text, "test.toml").expect("valid config")
    }

    fn edited(from: &str, to: &str) -> Config {
        let text = BASE.replacen(from, to, 1);
        assert_ne!(text, BASE, "the edit {from:?} applies");
        parse(&text)
    }

    #[test]
    fn weights_servers_and_services_reload_without_restart() {
        let old = parse(BASE);
        let new = edited("weight = 1\n[virtual_server", "weight = 3\n[virtual_server");
        assert!(restart_required(&old, &new).is_empty());
        let plan = ReloadPlan::new(&old, &new);
        assert_eq!(
            plan.summary,
            vec!["real server 192.168.10.103:80 of TCP 192.168.10.110:80: weight 1 → 3"]
        );
        // The check did not change: the checker keeps running and its state.
        assert!(plan.checks_started.is_empty() && plan.checks_stopped.is_empty());
        assert!(plan.vips_added.is_empty() && plan.neighbours_added.is_empty());
    }

    #[test]
    fn a_new_service_brings_its_vip_and_neighbours() {
        let old = parse(BASE);
        let text = format!(
            "{BASE}\n[[virtual_server]]\nvip = \"192.168.10.111\"\nport = 53\nprotocol = \"UDP\"\n\
             [[virtual_server.real_server]]\nip = \"192.168.10.105\"\nport = 53\n"
        );
        let new = parse(&text);
        assert!(restart_required(&old, &new).is_empty());
        let plan = ReloadPlan::new(&old, &new);
        assert_eq!(plan.vips_added, vec![Ipv4Addr::new(192, 168, 10, 111)]);
        assert_eq!(plan.neighbours_added, vec![Ipv4Addr::new(192, 168, 10, 105)]);
        assert_eq!(plan.summary, vec!["service UDP 192.168.10.111:53 added"]);
        // And back: the VIP and the neighbour go.
        let back = ReloadPlan::new(&new, &old);
        assert_eq!(back.vips_removed, vec![Ipv4Addr::new(192, 168, 10, 111)]);
        assert_eq!(back.neighbours_removed, vec![Ipv4Addr::new(192, 168, 10, 105)]);
        assert_eq!(back.summary, vec!["service UDP 192.168.10.111:53 removed: its flows end"]);
    }

    #[test]
    fn a_changed_check_restarts_only_that_checker() {
        let old = parse(BASE);
        let new = edited("status_code = 200", "status_code = 204");
        let plan = ReloadPlan::new(&old, &new);
        let key = *checks(&old).keys().next().expect("one checked server");
        assert_eq!(
            (plan.checks_stopped.clone(), plan.checks_started.clone()),
            (vec![key], vec![key])
        );
        assert!(plan.summary.is_empty(), "no service or weight changed: {:?}", plan.summary);
    }

    #[test]
    fn removed_and_drained_servers_are_named() {
        let old = parse(BASE);
        let removed = BASE.replacen(
            "\n[[virtual_server.real_server]]\nip = \"192.168.10.104\"\nport = 80\nweight = 1\n",
            "\n",
            1,
        );
        let new = parse(&removed);
        let plan = ReloadPlan::new(&old, &new);
        assert_eq!(
            plan.summary,
            vec!["real server 192.168.10.104:80 removed from TCP 192.168.10.110:80: its flows end"]
        );
        assert_eq!(plan.neighbours_removed, vec![Ipv4Addr::new(192, 168, 10, 104)]);
        let drained = edited(
            "ip = \"192.168.10.104\"\nport = 80\nweight = 1",
            "ip = \"192.168.10.104\"\nport = 80\nweight = 0",
        );
        assert_eq!(
            ReloadPlan::new(&old, &drained).summary,
            vec![
                "real server 192.168.10.104:80 of TCP 192.168.10.110:80: weight 1 → 0 \
                 (drains: its flows go on, no new ones)"
            ]
        );
    }

    #[test]
    fn what_needs_a_restart_is_named_with_both_values() {
        let old = parse(BASE);
        let new = edited("interface = \"eth0\"", "interface = \"eth1\"\nflow_table_size = 1024");
        let why = restart_required(&old, &new);
        assert_eq!(
            why,
            vec![
                "[dataplane] interface changed (eth0 → eth1)",
                "[dataplane] flow_table_size changed (65536 → 1024)",
            ]
        );
    }
}
