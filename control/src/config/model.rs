//! The effective configuration: plain typed values with every default filled
//! in, what the daemon runs from and what `check-config` prints back as TOML.
//! Field and key names follow keepalived's so that its users recognise them.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::tables::{L4Proto, Scheduler, ServiceKey};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

/// Where a configuration came from: the file label and the lines of the keys
/// that later checks (live checks, warnings) point at. It is not part of the
/// configuration's value, so it never makes two configs unequal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub(crate) file: String,
    /// Line of the key that named the data-plane interface.
    pub(crate) dataplane_interface: Option<usize>,
    /// Line of each vrrp_instance's `interface`, in config order.
    pub(crate) vrrp_interface: Vec<usize>,
    /// Line of each virtual_server's `vip`, in config order.
    pub(crate) vip: Vec<usize>,
    /// Line of each real server's `ip`, per virtual_server, in config order.
    pub(crate) real_server_ip: Vec<Vec<usize>>,
}

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Origin {}

/// The effective configuration, fully defaulted; see the module docs for the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// VRRP instances, in file order (`[[vrrp_instance]]`).
    #[serde(rename = "vrrp_instance", skip_serializing_if = "Vec::is_empty")]
    pub vrrp_instances: Vec<VrrpInstance>,
    /// Virtual services, in file order (`[[virtual_server]]`).
    #[serde(rename = "virtual_server", skip_serializing_if = "Vec::is_empty")]
    pub virtual_servers: Vec<VirtualServer>,
    /// The packet path (`[dataplane]`).
    pub dataplane: Dataplane,
    /// The control plane (`[control]`).
    pub control: Control,
    #[serde(skip)]
    pub(crate) origin: Origin,
}

/// The initial VRRP state of an instance (keepalived's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Start as backup and wait for adverts (keepalived's default).
    Backup,
    /// Start as master.
    Master,
}

impl VrrpState {
    /// The keyword as written in the file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Backup => "BACKUP",
            Self::Master => "MASTER",
        }
    }
}

/// An IPv4 address with a prefix length, as in `192.168.10.110/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    /// The address itself (host bits kept).
    pub addr: Ipv4Addr,
    /// The prefix length, 0–32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// The network mask of this prefix.
    pub fn mask(self) -> u32 {
        match self.prefix_len {
            0 => 0,
            len => u32::MAX << (32 - u32::from(len.min(32))),
        }
    }

    /// Whether `ip` is in this prefix's subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(self.addr) ^ u32::from(ip)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `[[vrrp_instance]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// keepalived's instance name (`VI_1`).
    pub name: String,
    /// Initial state.
    pub state: VrrpState,
    /// Interface the adverts are sent on and the VIPs are added to.
    pub interface: String,
    /// VRID, 1–255.
    pub virtual_router_id: u8,
    /// Priority, 1–254 (default 100).
    pub priority: u8,
    /// Advert interval (default 1 s); whole seconds, as VRRPv2 carries them.
    pub advert_int: Duration,
    /// `auth_type = "PASS"` with this password (≤ 8 bytes); `None` = no authentication.
    pub auth_pass: Option<String>,
    /// The VIPs this instance owns while master; `/32` unless a prefix is given.
    pub virtual_ipaddress: Vec<Ipv4Net>,
}

impl Serialize for VrrpInstance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let auth = self.auth_pass.is_some();
        let mut st = s.serialize_struct("VrrpInstance", if auth { 9 } else { 7 })?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("state", self.state.name())?;
        st.serialize_field("interface", &self.interface)?;
        st.serialize_field("virtual_router_id", &self.virtual_router_id)?;
        st.serialize_field("priority", &self.priority)?;
        st.serialize_field("advert_int", &self.advert_int.as_secs_f64())?;
        if let Some(pass) = &self.auth_pass {
            st.serialize_field("auth_type", "PASS")?;
            st.serialize_field("auth_pass", pass)?;
        }
        st.serialize_field("virtual_ipaddress", &self.virtual_ipaddress)?;
        st.end()
    }
}

/// How a virtual service forwards; xdplb knows direct server return only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LvsMethod {
    /// Direct server return: rewrite the Ethernet addresses only.
    #[serde(rename = "DR")]
    Dr,
}

/// A `[[virtual_server]]`: one VIP:port/protocol and its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualServer {
    /// The virtual IP clients address.
    pub vip: Ipv4Addr,
    /// The virtual port (1–65535).
    pub port: u16,
    /// TCP or UDP (default TCP).
    #[serde(serialize_with = "ser_proto")]
    pub protocol: L4Proto,
    /// wrr or rr (default wrr).
    #[serde(serialize_with = "ser_sched")]
    pub lvs_sched: Scheduler,
    /// Always DR.
    pub lvs_method: LvsMethod,
    /// Time between health checks (default 60 s, as keepalived).
    #[serde(serialize_with = "ser_secs")]
    pub delay_loop: Duration,
    /// Real servers in file order; may be empty (legal, as in keepalived).
    #[serde(rename = "real_server", skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServer>,
}

impl VirtualServer {
    /// The data plane's key for this service.
    pub fn key(&self) -> ServiceKey {
        ServiceKey { vip: self.vip, port: self.port, proto: self.protocol }
    }
}

/// A `[[virtual_server.real_server]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealServer {
    /// The real server's address; must be on-link (DR).
    pub ip: Ipv4Addr,
    /// Always the virtual port: DR cannot rewrite ports.
    pub port: u16,
    /// WRR weight, 0–65535 (default 1); 0 takes no new flows.
    pub weight: u32,
    /// A failed check sets the weight to 0 instead of removing the server.
    pub inhibit_on_failure: bool,
    /// HTTP health check, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGet>,
    /// TCP connect health check, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_check: Option<TcpCheck>,
}

/// `[virtual_server.real_server.http_get]`: keepalived's HTTP_GET checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpGet {
    /// Port to probe (default: the real server's port).
    pub connect_port: u16,
    /// Connect and response timeout (default 5 s, as keepalived).
    #[serde(serialize_with = "ser_secs")]
    pub connect_timeout: Duration,
    /// Source address of the probes, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindto: Option<Ipv4Addr>,
    /// Failed attempts before the server counts as down (default 1).
    pub retry: u32,
    /// Pause between attempts (default 1 s).
    #[serde(serialize_with = "ser_secs")]
    pub delay_before_retry: Duration,
    /// The URLs to fetch; at least one.
    #[serde(rename = "url")]
    pub urls: Vec<Url>,
}

/// `[[...http_get.url]]`: one URL an HTTP check fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Url {
    /// Absolute path, starting with `/`.
    pub path: String,
    /// Expected status (default 200).
    pub status_code: u16,
    /// Expected MD5 of the body, 32 lowercase hex digits, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// `[virtual_server.real_server.tcp_check]`: keepalived's TCP_CHECK checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpCheck {
    /// Port to connect to (default: the real server's port).
    pub connect_port: u16,
    /// Connect timeout (default 5 s, as keepalived).
    #[serde(serialize_with = "ser_secs")]
    pub connect_timeout: Duration,
    /// Source address of the probes, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindto: Option<Ipv4Addr>,
    /// Failed attempts before the server counts as down (default 1).
    pub retry: u32,
    /// Pause between attempts (default 1 s).
    #[serde(serialize_with = "ser_secs")]
    pub delay_before_retry: Duration,
}

/// Which XDP attach mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native where the driver allows, generic otherwise.
    Auto,
    /// Driver mode only; fail if unsupported.
    Native,
    /// Generic (SKB) mode.
    Generic,
}

/// How AF_XDP sockets bind to their queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// Zero-copy where the driver allows, copy otherwise.
    Auto,
    /// Copy mode only.
    Copy,
    /// Zero-copy only; fail if unsupported.
    #[serde(rename = "zerocopy")]
    ZeroCopy,
}

/// How workers wait for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin while busy, sleep in poll(2) when idle.
    Adaptive,
    /// Spin always (lowest latency, one full core per worker).
    Busy,
}

/// `[dataplane]`: the one interface the data plane serves and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dataplane {
    /// The interface, given here or taken from the vrrp_instances.
    pub interface: String,
    /// XDP attach mode (default auto).
    pub xdp_mode: XdpMode,
    /// AF_XDP bind mode (default auto).
    pub bind_mode: BindMode,
    /// Serve RX queues `0..queues`; `None` = every RX queue of the interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// Worker `i` is pinned to `cores[i % len]`; `None` = no pinning requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Polling behaviour (default adaptive).
    pub poll: PollMode,
    /// Frames handled per batch, 1–256 (default 64).
    pub batch_size: u32,
    /// Descriptors per AF_XDP ring, a power of two 64–16384 (default 2048).
    pub ring_size: u32,
    /// UMEM frame size, 2048 or 4096 (default 4096).
    pub frame_size: u32,
    /// UMEM frames per worker, a power of two ≥ ring_size (default 2 × ring_size,
    /// so the fill ring and the TX ring can both be full: 16 MiB at the defaults).
    pub umem_frames: u32,
    /// Flow-table entries per worker (default 65536).
    pub flow_table_size: u32,
    /// Idle timeout of an established TCP flow (default 900 s, `ipvsadm --set tcp`).
    #[serde(serialize_with = "ser_secs")]
    pub tcp_timeout: Duration,
    /// Idle timeout of a TCP flow after FIN (default 120 s, `ipvsadm --set tcpfin`).
    #[serde(serialize_with = "ser_secs")]
    pub tcpfin_timeout: Duration,
    /// Idle timeout of a UDP flow (default 300 s, `ipvsadm --set udp`).
    #[serde(serialize_with = "ser_secs")]
    pub udp_timeout: Duration,
}

/// `[control]`: the control plane's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// How often real servers' neighbour entries are re-checked (default 10 s).
    #[serde(serialize_with = "ser_secs")]
    pub neighbour_refresh: Duration,
    /// The status socket; `None` = the daemon's per-namespace default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_proto<S: Serializer>(p: &L4Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

fn ser_sched<S: Serializer>(sched: &Scheduler, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sched_name(*sched))
}

/// keepalived's name of a scheduler.
pub fn sched_name(sched: Scheduler) -> &'static str {
    match sched {
        Scheduler::Wrr => "wrr",
        Scheduler::Rr => "rr",
    }
}

/// `192.168.10.110:80/TCP`, the way errors and warnings name a service.
pub fn service_name(key: &ServiceKey) -> String {
    format!("{}:{}/{}", key.vip, key.port, key.proto.name())
}

impl Config {
    /// The effective configuration as TOML: every default filled in, keys in a
    /// stable order; [`super::parse`] reads it back into an equal `Config`.
    pub fn to_toml(&self) -> String {
        // Every value is a string, integer, float, bool or array of those, in
        // tables the serializer can nest: the only failure toml reports is a
        // type it cannot represent, which this struct does not contain.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }

    /// The interface the data plane serves.
    pub fn dataplane_interface(&self) -> &str {
        &self.dataplane.interface
    }

    /// The label of the file this config was read from (as errors show it).
    pub fn file(&self) -> &str {
        &self.origin.file
    }

    /// The VIPs of virtual servers that no vrrp_instance lists: xdplb owns them
    /// unconditionally (adds them at start, removes them at stop). File order,
    /// each once.
    pub fn unconditional_vips(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for vs in &self.virtual_servers {
            let by_vrrp = self
                .vrrp_instances
                .iter()
                .flat_map(|v| &v.virtual_ipaddress)
                .any(|net| net.addr == vs.vip);
            if !by_vrrp && !out.contains(&vs.vip) {
                out.push(vs.vip);
            }
        }
        out
    }

    /// The virtual services with their data-plane keys, in file order.
    pub fn services(&self) -> impl Iterator<Item = (ServiceKey, &VirtualServer)> {
        self.virtual_servers.iter().map(|vs| (vs.key(), vs))
    }

    /// Legal but suspicious settings, as `FILE:LINE: text` lines for check-config.
    pub fn warnings(&self) -> Vec<String> {
        self.virtual_servers
            .iter()
            .enumerate()
            .filter(|(_, vs)| vs.real_servers.is_empty())
            .map(|(i, vs)| {
                let at = self.origin.vip.get(i).map(|l| format!(":{l}")).unwrap_or_default();
                format!(
                    "{}{at}: virtual_server {} has no real servers: its traffic is dropped",
                    self.origin.file,
                    service_name(&vs.key())
                )
            })
            .collect()
    }
}
