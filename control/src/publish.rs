//! Turns what control knows (the configuration, real servers' MACs, later
//! health and VRRP state) into the one immutable snapshot the workers read.
//! Pure: the daemon calls it whenever one of its inputs changes.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dataplane::tables::{Backend, BackendId, Mac, Service, Snapshot, SnapshotError};

use crate::config::Config;

/// Builds the snapshot for `config`. Real-server ids are assigned in file
/// order (service, then real server), so they are stable for one config.
pub fn build_snapshot(
    config: &Config,
    macs: &HashMap<Ipv4Addr, Mac>,
    local_mac: Mac,
    generation: u64,
) -> Result<Snapshot, SnapshotError> {
    let mut next_id = 0u32;
    let services = config
        .virtual_servers
        .iter()
        .map(|vs| {
            let backends = vs
                .real_servers
                .iter()
                .map(|rs| {
                    let id = BackendId(next_id);
                    next_id += 1;
                    Backend {
                        id,
                        addr: rs.ip,
                        port: rs.port,
                        weight: rs.weight,
                        mac: macs.get(&rs.ip).copied(),
                    }
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
        let snap = build_snapshot(&config, &macs, [2, 0, 0, 0x0a, 0, 0x65], 7).expect("snapshot");
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
}
