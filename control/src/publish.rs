//! Turns what control knows (the configuration, real servers' MACs, health)
//! into the one immutable snapshot the workers read. Real servers are known
//! by identity (service, address, port) so that a reload keeps their ids,
//! and with them every flow entry that points at them; quorum state and
//! persistence templates are carried from one publication to the next.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::affinity::AffinityTable;
use dataplane::tables::{
    Backend, BackendId, Mac, Persistence, Service, ServiceKey, Snapshot, SnapshotError,
};

use crate::config::{Config, RealServer, VirtualServer};
use crate::quorum::{self, QuorumDecision, Transition};

/// A real server's identity, the same across reloads: its service, address
/// and port (unique within a service, the config refuses duplicates), or
/// the service's sorry server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    /// The virtual service the server belongs to.
    pub service: ServiceKey,
    /// The real server's address.
    pub ip: Ipv4Addr,
    /// The real server's port.
    pub port: u16,
    /// The service's sorry server (which may share a real server's address).
    pub sorry: bool,
}

impl ServerKey {
    /// The key of `rs` in `vs`.
    pub fn of(vs: &VirtualServer, rs: &RealServer) -> Self {
        Self { service: vs.key(), ip: rs.ip, port: rs.port, sorry: false }
    }

    /// The key of `vs`'s sorry server, if it has one.
    pub fn sorry_of(vs: &VirtualServer) -> Option<Self> {
        vs.sorry_server.map(|s| Self { service: vs.key(), ip: s.ip, port: s.port, sorry: true })
    }
}

/// Every server of `config` that gets a backend id: real and sorry servers.
fn all_servers(config: &Config) -> impl Iterator<Item = ServerKey> + '_ {
    config.virtual_servers.iter().flat_map(|vs| {
        vs.real_servers.iter().map(move |rs| ServerKey::of(vs, rs)).chain(ServerKey::sorry_of(vs))
    })
}

/// Hands out backend ids by identity. A server keeps its id for as long as
/// it stays in the configuration; a removed server's id is retired, so a
/// flow entry of a removed server can never reach a newcomer.
#[derive(Debug, Clone, Default)]
pub struct BackendIds {
    ids: BTreeMap<ServerKey, BackendId>,
    next: u32,
}

impl BackendIds {
    /// Gives every real and sorry server of `config` an id: the one it had,
    /// or a new one. Servers no longer configured lose theirs.
    pub fn assign(&mut self, config: &Config) {
        let wanted: HashSet<ServerKey> = all_servers(config).collect();
        self.ids.retain(|key, _| wanted.contains(key));
        for key in all_servers(config) {
            let next = &mut self.next;
            self.ids.entry(key).or_insert_with(|| {
                let id = BackendId(*next);
                *next += 1;
                id
            });
        }
    }

    /// The id of a configured server.
    pub fn get(&self, key: &ServerKey) -> Option<BackendId> {
        self.ids.get(key).copied()
    }

    /// The server an id stands for.
    pub fn key_of(&self, id: BackendId) -> Option<ServerKey> {
        self.ids.iter().find(|(_, v)| **v == id).map(|(k, _)| *k)
    }
}

/// Persistence templates per service: at most this many clients (masked
/// addresses) at once, 8 bytes each.
const AFFINITY_CAPACITY: usize = 1 << 16;

/// What one publication hands to the next: backend ids, each service's
/// quorum state and its persistence templates (kept while its
/// `persistence_timeout` and granularity stay the same).
#[derive(Debug, Clone, Default)]
pub struct PublishState {
    /// Backend ids by server identity.
    pub ids: BackendIds,
    quorum: HashMap<ServiceKey, QuorumDecision>,
    affinity: HashMap<ServiceKey, Persistence>,
}

/// A service whose quorum was gained or lost by the last publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumEvent {
    /// The service.
    pub service: ServiceKey,
    /// Gained or lost.
    pub transition: Transition,
    /// Total weight of the live real servers.
    pub live_weight: u64,
    /// The weight it was compared with.
    pub threshold: u64,
    /// `quorum_up` or `quorum_down`, to run.
    pub command: Option<String>,
}

impl PublishState {
    /// The quorum decision of a service as of the last publication.
    pub fn quorum(&self, service: &ServiceKey) -> Option<&QuorumDecision> {
        self.quorum.get(service)
    }

    /// Builds the snapshot for `config` (assigning ids first). A server in
    /// `down` gets weight 0 with `inhibit_on_failure` (its flows drain) and
    /// is left out otherwise (its flows end), as keepalived does; quorum and
    /// sorry server follow keepalived (see [`crate::quorum`]).
    pub fn build(
        &mut self,
        config: &Config,
        macs: &HashMap<Ipv4Addr, Mac>,
        down: &HashSet<ServerKey>,
        local_mac: Mac,
        generation: u64,
    ) -> Result<(Snapshot, Vec<QuorumEvent>), SnapshotError> {
        self.ids.assign(config);
        let mut events = Vec::new();
        let mut quorum = HashMap::new();
        let mut affinity = HashMap::new();
        let mut services = Vec::with_capacity(config.virtual_servers.len());
        for vs in &config.virtual_servers {
            let key = vs.key();
            let inputs = vs.quorum_inputs(|rs| down.contains(&ServerKey::of(vs, rs)));
            let previous = self.quorum.get(&key).map(|d| d.state);
            let decision = quorum::evaluate(&inputs, &vs.quorum_settings(), previous);
            if let Some(transition) = decision.transition {
                // At start keepalived only announces a quorum that is met,
                // or a lost one where a sorry server stands in.
                events.push(QuorumEvent {
                    service: key,
                    transition,
                    live_weight: decision.live_weight,
                    threshold: decision.threshold,
                    command: match transition {
                        Transition::Gained => vs.quorum_up.clone(),
                        Transition::Lost => vs.quorum_down.clone(),
                    },
                });
            }
            let mut backends = Vec::new();
            for (rs, member) in vs.real_servers.iter().zip(&decision.real_servers) {
                let (Some(weight), Some(id)) =
                    (member.weight(), self.ids.get(&ServerKey::of(vs, rs)))
                else {
                    continue;
                };
                backends.push(Backend {
                    id,
                    addr: rs.ip,
                    port: rs.port,
                    weight,
                    mac: macs.get(&rs.ip).copied(),
                });
            }
            if let (Some(sorry), Some(weight)) = (vs.sorry_server, decision.sorry_server.weight()) {
                if let Some(id) = ServerKey::sorry_of(vs).and_then(|k| self.ids.get(&k)) {
                    let mac = macs.get(&sorry.ip).copied();
                    backends.push(Backend { id, addr: sorry.ip, port: sorry.port, weight, mac });
                }
            }
            let persistence = vs.persistence().map(|p| {
                let timeout_secs = u32::try_from(p.timeout.as_secs()).unwrap_or(u32::MAX);
                match self.affinity.get(&key) {
                    Some(kept)
                        if kept.timeout_secs == timeout_secs && kept.netmask == p.netmask =>
                    {
                        kept.clone()
                    }
                    _ => Persistence {
                        timeout_secs,
                        netmask: p.netmask,
                        table: Arc::new(AffinityTable::new(AFFINITY_CAPACITY)),
                    },
                }
            });
            if let Some(p) = &persistence {
                affinity.insert(key, p.clone());
            }
            quorum.insert(key, decision);
            let service =
                Service { key, scheduler: vs.lvs_sched, members: Vec::new(), persistence };
            services.push((service, backends));
        }
        let snapshot = Snapshot::new(generation, local_mac, services)?;
        self.quorum = quorum;
        self.affinity = affinity;
        Ok((snapshot, events))
    }
}

/// Builds the snapshot for `config` from scratch state; for tests and for
/// one-off checks.
pub fn build_snapshot(
    config: &Config,
    ids: &BackendIds,
    macs: &HashMap<Ipv4Addr, Mac>,
    down: &HashSet<ServerKey>,
    local_mac: Mac,
    generation: u64,
) -> Result<Snapshot, SnapshotError> {
    let mut state = PublishState { ids: ids.clone(), ..PublishState::default() };
    state.build(config, macs, down, local_mac, generation).map(|(snapshot, _)| snapshot)
}

/// Every distinct real-server (and sorry-server) address, in file order:
/// the neighbours whose MACs the data plane needs.
pub fn real_server_addresses(config: &Config) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for ip in all_servers(config).map(|k| k.ip) {
        if !out.contains(&ip) {
            out.push(ip);
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
        let mut ids = BackendIds::default();
        ids.assign(&config);
        let snap =
            build_snapshot(&config, &ids, &macs, &HashSet::new(), [2, 0, 0, 0x0a, 0, 0x65], 7)
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
        let mut ids = BackendIds::default();
        ids.assign(&config);
        let web = &config.virtual_servers[0];
        let down = HashSet::from([
            ServerKey::of(web, &web.real_servers[0]),
            ServerKey::of(web, &web.real_servers[1]),
        ]);
        let snap =
            build_snapshot(&config, &ids, &HashMap::new(), &down, [0; 6], 1).expect("snapshot");
        let web = snap.services().iter().find(|s| s.key.port == 80).expect("web");
        // web1 (inhibit_on_failure) stays with weight 0; web2 is gone.
        assert_eq!(web.members, vec![BackendId(0)]);
        assert_eq!(snap.backend(BackendId(0)).map(|b| b.weight), Some(0));
        assert!(snap.backend(BackendId(1)).is_none());
        // Ids stay where they were: the UDP service's server is still 2.
        assert!(snap.backend(BackendId(2)).is_some());
    }
    #[test]
    fn ids_follow_servers_across_reloads_and_are_never_reused() {
        let before = config::parse(TWO_SERVICES, "a.toml").expect("valid config");
        let mut ids = BackendIds::default();
        ids.assign(&before);
        let web = &before.virtual_servers[0];
        let web1 = ServerKey::of(web, &web.real_servers[0]);
        let web2 = ServerKey::of(web, &web.real_servers[1]);
        let (id1, id2) = (ids.get(&web1).expect("web1"), ids.get(&web2).expect("web2"));
        // web1 leaves port 80, a new server joins in front of web2.
        let after_text = TWO_SERVICES.replacen(
            "ip = \"192.168.10.103\"\nport = 80\nweight = 3",
            "ip = \"192.168.10.105\"\nport = 80",
            1,
        );
        assert_ne!(after_text, TWO_SERVICES, "the edit applies");
        let after = config::parse(&after_text, "b.toml").expect("valid config");
        ids.assign(&after);
        assert_eq!(ids.get(&web2), Some(id2), "a server that stays keeps its id");
        assert_eq!(ids.get(&web1), None, "a removed server loses its id");
        let web = &after.virtual_servers[0];
        let newcomer = ids.get(&ServerKey::of(web, &web.real_servers[0])).expect("new server");
        assert_ne!(newcomer, id1, "a retired id is not handed out again");
        assert_eq!(ids.key_of(id2), Some(web2));
        let snap = build_snapshot(&after, &ids, &HashMap::new(), &HashSet::new(), [0; 6], 2)
            .expect("snapshot");
        assert!(snap.backend(id1).is_none(), "flows of the removed server find no backend");
        assert_eq!(snap.backend(id2).map(|b| b.addr), Some(web2.ip));
    }
    const SORRY: &str = r#"
[dataplane]
interface = "eth0"

[[virtual_server]]
vip = "192.168.10.110"
port = 80
quorum = 2
quorum_down = "/bin/logger lost"
sorry_server = { ip = "192.168.10.105" }
persistence_timeout = 300
persistence_granularity = "255.255.255.0"

[[virtual_server.real_server]]
ip = "192.168.10.103"
port = 80

[[virtual_server.real_server]]
ip = "192.168.10.104"
port = 80
"#;

    #[test]
    fn losing_the_quorum_swaps_in_the_sorry_server_and_back() {
        let config = config::parse(SORRY, "test.toml").expect("valid config");
        let vs = &config.virtual_servers[0];
        let web1 = ServerKey::of(vs, &vs.real_servers[0]);
        let sorry = ServerKey::sorry_of(vs).expect("sorry server");
        let mut state = PublishState::default();
        let macs = HashMap::new();
        let (snap, events) =
            state.build(&config, &macs, &HashSet::new(), [0; 6], 1).expect("snapshot");
        assert!(events.iter().all(|e| e.transition == Transition::Gained), "{events:?}");
        let members = |snap: &Snapshot| {
            let service = &snap.services()[0];
            service
                .members
                .iter()
                .map(|id| snap.backend(*id).map(|b| (b.addr.octets()[3], b.weight)))
                .collect::<Vec<_>>()
        };
        assert_eq!(members(&snap), vec![Some((103, 1)), Some((104, 1))]);
        // Persistence reaches the data plane with its mask.
        let p = snap.services()[0].persistence.clone().expect("persistent");
        assert_eq!((p.timeout_secs, p.netmask), (300, Ipv4Addr::new(255, 255, 255, 0)));

        // web1 fails: live weight 1 < quorum 2, the sorry server serves alone.
        let down = HashSet::from([web1]);
        let (snap, events) = state.build(&config, &macs, &down, [0; 6], 2).expect("snapshot");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].transition, Transition::Lost);
        assert_eq!(events[0].command.as_deref(), Some("/bin/logger lost"));
        assert_eq!(members(&snap), vec![Some((105, 1))]);
        assert_eq!(snap.services()[0].members, vec![state.ids.get(&sorry).expect("id")]);
        // The templates survive republication: same table.
        let p2 = snap.services()[0].persistence.clone().expect("persistent");
        assert!(Arc::ptr_eq(&p.table, &p2.table));

        // Back: the real servers return and the sorry server leaves.
        let (snap, events) =
            state.build(&config, &macs, &HashSet::new(), [0; 6], 3).expect("snapshot");
        assert_eq!(events.iter().map(|e| e.transition).collect::<Vec<_>>(), [Transition::Gained]);
        assert_eq!(members(&snap), vec![Some((103, 1)), Some((104, 1))]);
        assert_eq!(
            real_server_addresses(&config).last(),
            Some(&Ipv4Addr::new(192, 168, 10, 105)),
            "the sorry server needs a neighbour entry too"
        );
    }

    #[test]
    fn a_changed_persistence_setting_starts_a_new_template_table() {
        let config = config::parse(SORRY, "test.toml").expect("valid config");
        let mut state = PublishState::default();
        let (a, _) =
            state.build(&config, &HashMap::new(), &HashSet::new(), [0; 6], 1).expect("snap");
        let longer = config::parse(&SORRY.replace("= 300", "= 600"), "t.toml").expect("valid");
        let (b, _) =
            state.build(&longer, &HashMap::new(), &HashSet::new(), [0; 6], 2).expect("snap");
        let (pa, pb) = (a.services()[0].persistence.clone(), b.services()[0].persistence.clone());
        let (pa, pb) = (pa.expect("persistent"), pb.expect("persistent"));
        assert!(!Arc::ptr_eq(&pa.table, &pb.table));
        assert_eq!(pb.timeout_secs, 600);
    }
}
