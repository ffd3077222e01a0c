//! Turns what control knows (the configuration, real servers' MACs, later
//! health and VRRP state) into the one immutable snapshot the workers read.
//! Pure: the daemon calls it whenever one of its inputs changes.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use dataplane::tables::{Backend, BackendId, Mac, Service, Snapshot, SnapshotError};

use crate::config::Config;

/// A real server's place in the configuration: (service index, server index).
pub type ServerKey = (usize, usize);

/// Builds the snapshot for `config`. Real-server ids are assigned in file
/// order (service, then real server), so they are stable for one config.
/// A server in `down` gets weight 0 with `inhibit_on_failure` (its flows
/// drain) and is left out otherwise (its flows end), as keepalived does.
pub fn build_snapshot(
    config: &Config,
    macs: &HashMap<Ipv4Addr, Mac>,
    down: &HashSet<ServerKey>,
    local_mac: Mac,
    generation: u64,
) -> Result<Snapshot, SnapshotError> {
    let mut next_id = 0u32;
    let services = config
        .virtual_servers
        .iter()
        .enumerate()
        .map(|(service_index, vs)| {
            let backends = vs
                .real_servers
                .iter()
                .enumerate()
                .filter_map(|(server_index, rs)| {
                    let id = BackendId(next_id);
                    next_id += 1;
                    let is_down = down.contains(&(service_index, server_index));
                    if is_down && !rs.inhibit_on_failure {
                        return None;
                    }
                    Some(Backend {
                        id,
                        addr: rs.ip,
                        port: rs.port,
                        weight: if is_down { 0 } else { rs.weight },
                        mac: macs.get(&rs.ip).copied(),
                    })
                })
                .collect();
            let service = Service { key: vs.key(), scheduler: vs.lvs_sched, members: Vec::new() };
            (service, backends)
        })
        .collect();
    Snapshot::new(generation, local_mac, services)
}

/// Every distinct real-server address, in file order.
pub fn real_server_addresses(config: &Config) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for rs in config.virtual_servers.iter().flat_map(|vs| &vs.real_servers) {
        if !out.contains(&rs.ip) {
            out.push(rs.ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use dataplane::tables::{L4Proto, ServiceKey};

    const TWO_SERVICES: &str = r#"
[dataplane]
interface = "eth0"

[[virtual_server]]
vip = "192.168.10.110"
port = 80

[[virtual_server.real_server]]
ip = "192.168.10.103"
port = 80
weight = 3

[[virtual_server.real_server]]
ip = "192.168.10.104"
port = 80

[[virtual_server]]
vip = "192.168.10.110"
port = 53
protocol = "UDP"
lvs_sched = "rr"

[[virtual_server.real_server]]
ip = "192.168.10.104"
port = 53
"#;

    #[test]
    fn snapshot_carries_weights_macs_and_stable_ids() {
        let config = config::parse(TWO_SERVICES, "test.toml").expect("valid config");
        let mac = [2, 0, 0, 0x0a, 0, 0x68];
        let macs = HashMap::from([(Ipv4Addr::new(192, 168, 10, 104), mac)]);
        let snap = build_snapshot(&config, &macs, &HashSet::new(), [2, 0, 0, 0x0a, 0, 0x65], 7)
            .expect("snapshot");
        assert_eq!(snap.generation, 7);
        let web =
            ServiceKey { vip: Ipv4Addr::new(192, 168, 10, 110), port: 80, proto: L4Proto::Tcp };
        let idx = snap.service_index(&web).expect("web service");
        assert_eq!(snap.services()[idx].members, vec![BackendId(0), BackendId(1)]);
        let web1 = snap.backend(BackendId(0)).expect("web1");
        assert_eq!((web1.weight, web1.mac, web1.schedulable_weight()), (3, None, 0));
        assert_eq!(snap.backend(BackendId(1)).and_then(|b| b.mac), Some(mac));
        // The UDP service's server is a separate backend with the same MAC.
        assert_eq!(snap.backend(BackendId(2)).map(|b| (b.port, b.mac)), Some((53, Some(mac))));
        assert_eq!(
            real_server_addresses(&config),
            vec![Ipv4Addr::new(192, 168, 10, 103), Ipv4Addr::new(192, 168, 10, 104)]
        );
    }

    #[test]
    fn a_failed_server_is_inhibited_or_removed() {
        let text = TWO_SERVICES.replacen("weight = 3", "weight = 3\ninhibit_on_failure = true", 1);
        let config = config::parse(&text, "test.toml").expect("valid config");
        let down = HashSet::from([(0, 0), (0, 1)]);
        let snap = build_snapshot(&config, &HashMap::new(), &down, [0; 6], 1).expect("snapshot");
        let web = snap.services().iter().find(|s| s.key.port == 80).expect("web");
        // web1 (inhibit_on_failure) stays with weight 0; web2 is gone.
        assert_eq!(web.members, vec![BackendId(0)]);
        assert_eq!(snap.backend(BackendId(0)).map(|b| b.weight), Some(0));
        assert!(snap.backend(BackendId(1)).is_none());
        // Ids stay where they were: the UDP service's server is still 2.
        assert!(snap.backend(BackendId(2)).is_some());
    }
}
