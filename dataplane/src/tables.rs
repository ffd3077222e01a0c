//! The tables control publishes and workers read: one immutable
//! [`Snapshot`] of services, real servers (with MACs, weights, health) and
//! our own MAC, swapped in by a single atomic store ([`SharedSnapshot`]).
//! Workers load it once per batch and never lock.

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::affinity::AffinityTable;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// The transport protocols a virtual service can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum L4Proto {
    Tcp = 6,
    Udp = 17,
}

impl L4Proto {
    pub const fn from_ip_protocol(protocol: u8) -> Option<Self> {
        match protocol {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }
}

/// A virtual service: what a client addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: L4Proto,
}

/// A real server's identity, stable for the life of the process so that a
/// flow entry keeps meaning the same server across snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u32);

/// How a service picks a real server for a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// Weighted round-robin, the sequence of the kernel's `ip_vs_wrr.c`.
    Wrr,
    /// Plain round-robin over servers with weight > 0.
    Rr,
}

/// A real server as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub id: BackendId,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// The weight new flows are scheduled by: the configured weight, or 0
    /// while a health check inhibits the server. Existing flows keep going.
    pub weight: u32,
    /// The server's MAC from the neighbour table; `None` until resolved.
    pub mac: Option<Mac>,
}

impl Backend {
    /// Whether the scheduler may give this server a new flow.
    pub fn takes_new_flows(&self) -> bool {
        self.weight > 0 && self.mac.is_some()
    }

    /// The weight the scheduler sees: 0 when the server cannot take a new flow.
    pub fn schedulable_weight(&self) -> u32 {
        if self.takes_new_flows() {
            self.weight
        } else {
            0
        }
    }
}

/// A virtual service and its real servers, in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub members: Vec<BackendId>,
    /// Client persistence (`persistence_timeout`); `None`: every new flow
    /// is scheduled on its own.
    pub persistence: Option<Persistence>,
}

/// A persistent service's settings and its templates (IPVS persistent
/// service, keepalived `persistence_timeout` / `persistence_granularity`):
/// new flows from a client network that has a live template go to the
/// template's real server, as long as that server can take new flows.
#[derive(Debug, Clone)]
pub struct Persistence {
    /// Template lifetime in seconds, renewed while the client keeps making
    /// connections or sending on them; 0 turns persistence off. Cut to
    /// [`crate::affinity::MAX_TIMEOUT_SECS`].
    pub timeout_secs: u32,
    /// Clients whose addresses agree under this mask share a template
    /// (`persistence_granularity`; 255.255.255.255 = one client address).
    pub netmask: Ipv4Addr,
    /// The templates, shared by all workers. Control owns it and hands the
    /// same `Arc` to every snapshot while the service keeps its persistence
    /// settings, so templates survive republication; one table per service
    /// (the table is keyed by client only).
    pub table: Arc<AffinityTable>,
}

impl Persistence {
    /// Persistence with a fresh table of `capacity` templates (see [`AffinityTable::new`]).
    pub fn new(timeout_secs: u32, netmask: Ipv4Addr, capacity: usize) -> Self {
        Persistence { timeout_secs, netmask, table: Arc::new(AffinityTable::new(capacity)) }
    }

    /// The template key of a client address: the address under the netmask.
    pub fn client_key(&self, client: Ipv4Addr) -> u32 {
        u32::from(client) & u32::from(self.netmask)
    }
}

/// Equal when the settings agree and both use the very same table.
impl PartialEq for Persistence {
    fn eq(&self, other: &Self) -> bool {
        self.timeout_secs == other.timeout_secs
            && self.netmask == other.netmask
            && Arc::ptr_eq(&self.table, &other.table)
    }
}

impl Eq for Persistence {}

/// Everything a worker needs to forward, as of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Increases with every publication; workers rebuild per-service
    /// scheduler state when it changes.
    pub generation: u64,
    /// Our own MAC: the source of every forwarded frame.
    pub local_mac: Mac,
    services: Vec<Service>,
    backends: Vec<Option<Backend>>,
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("service {vip}:{port}/{proto} is listed twice", proto = .0.proto.name(), vip = .0.vip, port = .0.port)]
    DuplicateService(ServiceKey),
    #[error("real server id {0:?} is used twice")]
    DuplicateBackend(BackendId),
}

impl Snapshot {
    /// Builds a snapshot; each service brings its own backends.
    pub fn new(
        generation: u64,
        local_mac: Mac,
        services: Vec<(Service, Vec<Backend>)>,
    ) -> Result<Self, SnapshotError> {
        let mut out = Snapshot {
            generation,
            local_mac,
            services: Vec::with_capacity(services.len()),
            backends: Vec::new(),
        };
        for (mut service, backends) in services {
            service.members = backends.iter().map(|b| b.id).collect();
            for backend in backends {
                let slot = backend.id.0 as usize;
                if out.backends.len() <= slot {
                    out.backends.resize(slot + 1, None);
                }
                if out.backends[slot].is_some() {
                    return Err(SnapshotError::DuplicateBackend(backend.id));
                }
                out.backends[slot] = Some(backend);
            }
            out.services.push(service);
        }
        out.services.sort_by_key(|s| s.key);
        if let Some(w) = out.services.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(SnapshotError::DuplicateService(w[0].key));
        }
        Ok(out)
    }

    /// Services sorted by key; the index is stable for this snapshot.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The index of a service in [`Self::services`].
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.services.binary_search_by(|s| s.key.cmp(key)).ok()
    }

    /// A real server by id, if it is still part of the configuration.
    pub fn backend(&self, id: BackendId) -> Option<&Backend> {
        self.backends.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// All real servers of all services.
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.backends.iter().flatten()
    }
}

/// The single publication point: control stores, workers load.
#[derive(Debug)]
pub struct SharedSnapshot(ArcSwap<Snapshot>);

impl SharedSnapshot {
    pub fn new(initial: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(initial))
    }

    /// Publishes a new snapshot in one atomic store.
    pub fn publish(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }

    /// The current snapshot; workers call this once per batch.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    /// A snapshot to keep across batches without pinning a guard.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: u32, last: u8, weight: u32, mac: Option<Mac>) -> Backend {
        Backend {
            id: BackendId(id),
            addr: Ipv4Addr::new(192, 168, 10, last),
            port: 80,
            weight,
            mac,
        }
    }

    fn service(port: u16) -> Service {
        Service {
            key: ServiceKey { vip: Ipv4Addr::new(192, 168, 10, 110), port, proto: L4Proto::Tcp },
            scheduler: Scheduler::Wrr,
            members: Vec::new(),
            persistence: None,
        }
    }

    #[test]
    fn finds_services_and_backends_by_key_and_id() {
        let snap = Snapshot::new(
            1,
            [2, 0, 0, 0, 0, 1],
            vec![
                (service(443), vec![backend(2, 103, 1, Some([1; 6]))]),
                (service(80), vec![backend(0, 103, 3, Some([1; 6])), backend(1, 104, 1, None)]),
            ],
        )
        .expect("valid snapshot");
        let idx = snap.service_index(&service(80).key).expect("port 80 present");
        assert_eq!(snap.services()[idx].members, vec![BackendId(0), BackendId(1)]);
        assert!(snap.service_index(&service(22).key).is_none());
        assert_eq!(snap.backend(BackendId(2)).map(|b| b.addr.octets()[3]), Some(103));
        assert!(snap.backend(BackendId(7)).is_none());
        // No MAC: not schedulable, whatever the weight.
        assert_eq!(snap.backend(BackendId(1)).map(Backend::schedulable_weight), Some(0));
    }

    #[test]
    fn persistence_is_equal_only_with_the_same_table() {
        let p = Persistence::new(300, Ipv4Addr::new(255, 255, 255, 0), 0);
        assert_eq!(p.client_key(Ipv4Addr::new(192, 168, 20, 99)), 0xc0a8_1400);
        assert_eq!(p, p.clone());
        let other_table = Persistence::new(300, p.netmask, 0);
        assert_ne!(p, other_table);
        assert_ne!(p, Persistence { timeout_secs: 60, ..p.clone() });
        assert_ne!(p, Persistence { netmask: Ipv4Addr::BROADCAST, ..p.clone() });
        let with = Service { persistence: Some(p.clone()), ..service(80) };
        assert_ne!(with, service(80));
    }

    #[test]
    fn rejects_duplicates() {
        let dup_service =
            Snapshot::new(0, [0; 6], vec![(service(80), vec![]), (service(80), vec![])]);
        assert!(matches!(dup_service, Err(SnapshotError::DuplicateService(_))));
        let dup_backend = Snapshot::new(
            0,
            [0; 6],
            vec![
                (service(80), vec![backend(0, 103, 1, None)]),
                (service(81), vec![backend(0, 104, 1, None)]),
            ],
        );
        assert_eq!(dup_backend, Err(SnapshotError::DuplicateBackend(BackendId(0))));
    }
}
