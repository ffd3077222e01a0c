//! The effective configuration: plain typed values with every default filled
//! in, what the daemon runs from and what `check-config` prints back as TOML.
//! Field and key names follow keepalived's so that its users recognise them.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::tables::{L4Proto, Scheduler, ServiceKey};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::garp::GarpConfig;
use crate::health::{CheckerConfig, UrlCheck};
use crate::vrrp::{self, Version};

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
    /// Line of each virtual_server's `sorry_server` ip, if it has one, in config order.
    pub(crate) sorry_server_ip: Vec<Option<usize>>,
    /// Line of each vrrp_instance's `unicast_src_ip`, if it has one, in config order.
    pub(crate) vrrp_unicast_src_ip: Vec<Option<usize>>,
    /// Warnings found while reading (e.g. a truncated auth_pass), as line and text.
    pub(crate) notes: Vec<(Option<usize>, String)>,
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
    /// keepalived's global settings that xdplb reads (`[global_defs]`).
    pub global_defs: GlobalDefs,
    /// Scripts that vrrp_instances track, in file order (`[[vrrp_script]]`).
    #[serde(rename = "vrrp_script", skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<VrrpScript>,
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
    /// Prometheus metrics (`[metrics]`).
    #[serde(skip_serializing_if = "Metrics::is_off")]
    pub metrics: Metrics,
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

/// `[global_defs]`: the keepalived globals xdplb reads. The `vrrp_*` keys are
/// defaults for every vrrp_instance, which may set each again without the
/// `vrrp_` prefix; every instance's effective values are on [`VrrpInstance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalDefs {
    /// keepalived's `router_id`: a name for this machine, informational only.
    pub router_id: Option<String>,
    /// `vrrp_version`: the default VRRP version (default 2).
    pub vrrp_version: Version,
    /// `vrrp_garp_master_delay`: second GARP burst this long after becoming
    /// master; zero = no second burst (default 5 s).
    pub vrrp_garp_master_delay: Duration,
    /// `vrrp_garp_master_repeat`: GARP rounds per burst (default 5).
    pub vrrp_garp_master_repeat: u32,
    /// `vrrp_garp_master_refresh`: refresh burst period while master; zero = off (default).
    pub vrrp_garp_master_refresh: Duration,
    /// `vrrp_garp_master_refresh_repeat`: rounds per refresh burst (default 1).
    pub vrrp_garp_master_refresh_repeat: u32,
    /// `vrrp_garp_lower_prio_delay`: as `vrrp_garp_master_delay`, after a
    /// lower-priority advert heard as master. When not written, each instance
    /// takes its own `garp_master_delay`; this then shows `vrrp_garp_master_delay`.
    pub vrrp_garp_lower_prio_delay: Duration,
    /// `vrrp_garp_lower_prio_repeat`: as `vrrp_garp_master_repeat`, after a
    /// lower-priority advert; 0 sends none. Unwritten: as the delay above.
    pub vrrp_garp_lower_prio_repeat: u32,
    /// `vrrp_garp_interval`: least time between two GARP rounds (default 0).
    pub vrrp_garp_interval: Duration,
    /// `vrrp_higher_prio_send_advert`: default TRUE here (keepalived: false);
    /// see [`VrrpInstance::higher_prio_send_advert`].
    pub vrrp_higher_prio_send_advert: bool,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        let garp = GarpConfig::default();
        Self {
            router_id: None,
            vrrp_version: Version::V2,
            vrrp_garp_master_delay: garp.master_delay,
            vrrp_garp_master_repeat: garp.master_repeat,
            vrrp_garp_master_refresh: Duration::ZERO,
            vrrp_garp_master_refresh_repeat: garp.master_refresh_repeat,
            vrrp_garp_lower_prio_delay: garp.lower_prio_delay,
            vrrp_garp_lower_prio_repeat: garp.lower_prio_repeat,
            vrrp_garp_interval: garp.interval,
            vrrp_higher_prio_send_advert: true,
        }
    }
}

impl Serialize for GlobalDefs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("GlobalDefs", 10)?;
        if let Some(id) = &self.router_id {
            st.serialize_field("router_id", id)?;
        }
        st.serialize_field("vrrp_version", &self.vrrp_version.number())?;
        st.serialize_field("vrrp_garp_master_delay", &self.vrrp_garp_master_delay.as_secs_f64())?;
        st.serialize_field("vrrp_garp_master_repeat", &self.vrrp_garp_master_repeat)?;
        st.serialize_field(
            "vrrp_garp_master_refresh",
            &self.vrrp_garp_master_refresh.as_secs_f64(),
        )?;
        st.serialize_field(
            "vrrp_garp_master_refresh_repeat",
            &self.vrrp_garp_master_refresh_repeat,
        )?;
        st.serialize_field(
            "vrrp_garp_lower_prio_delay",
            &self.vrrp_garp_lower_prio_delay.as_secs_f64(),
        )?;
        st.serialize_field("vrrp_garp_lower_prio_repeat", &self.vrrp_garp_lower_prio_repeat)?;
        st.serialize_field("vrrp_garp_interval", &self.vrrp_garp_interval.as_secs_f64())?;
        st.serialize_field("vrrp_higher_prio_send_advert", &self.vrrp_higher_prio_send_advert)?;
        st.end()
    }
}

/// A `[[vrrp_script]]`: a command run every `interval` whose exit status
/// instances that list it in `track_script` follow (keepalived's vrrp_script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VrrpScript {
    /// The name `track_script` refers to; unique.
    pub name: String,
    /// The command line, kept as written. keepalived splits it at unquoted
    /// whitespace (single or double quotes keep a word together) and execs
    /// the first word directly when it is an executable file, otherwise runs
    /// the whole line with `/bin/sh -c`; exit status 0 is success.
    pub script: String,
    /// Time between runs (default 1 s).
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    /// A run still going after this long has failed (default: `interval`).
    #[serde(serialize_with = "ser_secs")]
    pub timeout: Duration,
    /// Priority adjustment, -253..253 (default 0). 0: `fall` failures put
    /// the tracking instances in FAULT; > 0: added to their priority while
    /// the script is up; < 0: added (so subtracted) while it is down.
    pub weight: i32,
    /// Consecutive successes that make a failed script up (default 1).
    pub rise: u32,
    /// Consecutive failures that make an up script failed (default 1).
    pub fall: u32,
    /// `username [:][groupname]` to run as; `None` = keepalived's script_user default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Start in the failed state until `rise` successes (default false: start up).
    pub init_fail: bool,
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
    /// Advert interval (default 1 s): whole seconds 1–255 for VRRPv2, whole
    /// centiseconds 0.01–40.95 s for VRRPv3.
    pub advert_int: Duration,
    /// `auth_type = "PASS"` with this password (≤ 8 bytes: a longer one is cut
    /// to 8, with a warning, as keepalived does); `None` = no authentication.
    pub auth_pass: Option<String>,
    /// The VIPs this instance owns while master; `/32` unless a prefix is given.
    pub virtual_ipaddress: Vec<Ipv4Net>,
    /// `vrrp_version` (keepalived's instance keyword `version` is read too):
    /// 2 or 3, default `[global_defs] vrrp_version`, itself default 2.
    pub vrrp_version: Version,
    /// `nopreempt`: a backup does not take over from a lower-priority master
    /// (default false). Needs `state = "BACKUP"`, as in keepalived.
    pub nopreempt: bool,
    /// `preempt_delay`: 0–1000 s (default 0); needs `state = "BACKUP"`.
    pub preempt_delay: Duration,
    /// `garp_master_delay`: second GARP burst after becoming master; zero =
    /// none (default: `[global_defs]`, 5 s).
    pub garp_master_delay: Duration,
    /// `garp_master_repeat`: GARP rounds per burst, ≥ 1 (default 5).
    pub garp_master_repeat: u32,
    /// `garp_master_refresh`: refresh period while master; zero = off (default).
    pub garp_master_refresh: Duration,
    /// `garp_master_refresh_repeat`: rounds per refresh, ≥ 1 (default 1).
    pub garp_master_refresh_repeat: u32,
    /// `garp_lower_prio_delay` (default `garp_master_delay`).
    pub garp_lower_prio_delay: Duration,
    /// `garp_lower_prio_repeat`, 0 = none (default `garp_master_repeat`).
    pub garp_lower_prio_repeat: u32,
    /// `garp_interval`: least time between two GARP rounds (default 0).
    pub garp_interval: Duration,
    /// `higher_prio_send_advert`: a master that hears a higher priority sends
    /// one advert at its own priority before it yields, so the winner
    /// re-announces. Default TRUE — a deliberate deviation from keepalived's
    /// false, so that the router is right after a split brain heals.
    pub higher_prio_send_advert: bool,
    /// `unicast_src_ip`: the source of our adverts (default: the interface's
    /// primary address).
    pub unicast_src_ip: Option<Ipv4Addr>,
    /// `unicast_peer`: when not empty, adverts go to each of these by unicast
    /// instead of to 224.0.0.18.
    pub unicast_peer: Vec<Ipv4Addr>,
    /// `notify_master`: run on becoming MASTER. Every notify value is a
    /// command line kept as written; keepalived splits it at unquoted
    /// whitespace, execs the first word if it is executable and otherwise
    /// runs the line with `/bin/sh -c`.
    pub notify_master: Option<String>,
    /// `notify_backup`: run on becoming BACKUP.
    pub notify_backup: Option<String>,
    /// `notify_fault`: run on entering FAULT.
    pub notify_fault: Option<String>,
    /// `notify_stop`: run when the instance stops.
    pub notify_stop: Option<String>,
    /// `notify`: run after the state's own script on every change, with
    /// keepalived's four extra arguments `INSTANCE <name> <STATE> <priority>`.
    pub notify: Option<String>,
    /// `track_interface`: any of these down puts the instance in FAULT (its
    /// own `interface` is always tracked).
    pub track_interface: Vec<String>,
    /// `track_script`: names of `[[vrrp_script]]`s this instance follows.
    pub track_script: Vec<String>,
}

impl Serialize for VrrpInstance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("VrrpInstance", 30)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("state", self.state.name())?;
        st.serialize_field("interface", &self.interface)?;
        st.serialize_field("virtual_router_id", &self.virtual_router_id)?;
        st.serialize_field("priority", &self.priority)?;
        st.serialize_field("vrrp_version", &self.vrrp_version.number())?;
        st.serialize_field("advert_int", &self.advert_int.as_secs_f64())?;
        if let Some(pass) = &self.auth_pass {
            st.serialize_field("auth_type", "PASS")?;
            st.serialize_field("auth_pass", pass)?;
        }
        st.serialize_field("nopreempt", &self.nopreempt)?;
        st.serialize_field("preempt_delay", &self.preempt_delay.as_secs_f64())?;
        st.serialize_field("higher_prio_send_advert", &self.higher_prio_send_advert)?;
        if let Some(src) = &self.unicast_src_ip {
            st.serialize_field("unicast_src_ip", src)?;
        }
        st.serialize_field("unicast_peer", &self.unicast_peer)?;
        st.serialize_field("garp_master_delay", &self.garp_master_delay.as_secs_f64())?;
        st.serialize_field("garp_master_repeat", &self.garp_master_repeat)?;
        st.serialize_field("garp_master_refresh", &self.garp_master_refresh.as_secs_f64())?;
        st.serialize_field("garp_master_refresh_repeat", &self.garp_master_refresh_repeat)?;
        st.serialize_field("garp_lower_prio_delay", &self.garp_lower_prio_delay.as_secs_f64())?;
        st.serialize_field("garp_lower_prio_repeat", &self.garp_lower_prio_repeat)?;
        st.serialize_field("garp_interval", &self.garp_interval.as_secs_f64())?;
        st.serialize_field("track_interface", &self.track_interface)?;
        st.serialize_field("track_script", &self.track_script)?;
        for (key, script) in [
            ("notify_master", &self.notify_master),
            ("notify_backup", &self.notify_backup),
            ("notify_fault", &self.notify_fault),
            ("notify_stop", &self.notify_stop),
            ("notify", &self.notify),
        ] {
            if let Some(script) = script {
                st.serialize_field(key, script)?;
            }
        }
        st.serialize_field("virtual_ipaddress", &self.virtual_ipaddress)?;
        st.end()
    }
}

impl VrrpInstance {
    /// The election settings for [`crate::vrrp::Instance`]. `primary_address`
    /// is the interface's primary IPv4 address; `unicast_src_ip`, when set,
    /// takes its place, since that is where our adverts come from (and the
    /// address an equal-priority tie is decided by).
    pub fn state_config(&self, primary_address: Ipv4Addr) -> vrrp::Config {
        vrrp::Config {
            version: self.vrrp_version,
            vrid: self.virtual_router_id,
            priority: self.priority,
            advert_int: self.advert_int,
            initial_state: self.state,
            preempt: !self.nopreempt,
            preempt_delay: self.preempt_delay,
            primary_address: self.source_address(primary_address),
            higher_prio_send_advert: self.higher_prio_send_advert,
        }
    }

    /// The address our adverts leave from: `unicast_src_ip`, else `primary_address`.
    pub fn source_address(&self, primary_address: Ipv4Addr) -> Ipv4Addr {
        self.unicast_src_ip.unwrap_or(primary_address)
    }

    /// The GARP schedule's settings ([`crate::garp::GarpSchedule`]).
    pub fn garp_config(&self) -> GarpConfig {
        GarpConfig {
            master_delay: self.garp_master_delay,
            master_repeat: self.garp_master_repeat,
            master_refresh: (!self.garp_master_refresh.is_zero())
                .then_some(self.garp_master_refresh),
            master_refresh_repeat: self.garp_master_refresh_repeat,
            lower_prio_delay: self.garp_lower_prio_delay,
            lower_prio_repeat: self.garp_lower_prio_repeat,
            interval: self.garp_interval,
        }
    }

    /// The VIP addresses of this instance, in file order (prefixes dropped).
    pub fn vips(&self) -> Vec<Ipv4Addr> {
        self.virtual_ipaddress.iter().map(|net| net.addr).collect()
    }

    /// Whether adverts go by unicast to `unicast_peer` rather than by multicast.
    pub fn is_unicast(&self) -> bool {
        !self.unicast_peer.is_empty()
    }

    /// The notify script for entering `state` (`notify_master`, `notify_backup`,
    /// `notify_fault`, or `notify_stop` for [`vrrp::State::Stopped`]); the
    /// generic `notify` runs after it and is [`Self::notify`].
    pub fn notify_script(&self, state: vrrp::State) -> Option<&str> {
        match state {
            vrrp::State::Master => self.notify_master.as_deref(),
            vrrp::State::Backup => self.notify_backup.as_deref(),
            vrrp::State::Fault => self.notify_fault.as_deref(),
            vrrp::State::Stopped => self.notify_stop.as_deref(),
            vrrp::State::Init => None,
        }
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
    /// `persistence_timeout`: whole seconds (≥ 1) a client keeps going to the
    /// real server it was first given, across connections (`ipvsadm -p`);
    /// `None` = no persistence, every new flow is scheduled on its own.
    #[serde(serialize_with = "ser_opt_whole_secs", skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Duration>,
    /// `persistence_granularity`: the netmask that groups clients for
    /// persistence (`ipvsadm -M`, a contiguous mask). `Some` exactly when
    /// `persistence_timeout` is (default 255.255.255.255: one client address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence_granularity: Option<Ipv4Addr>,
    /// `quorum`: least total weight of live real servers for the service to
    /// count as up (≥ 1, default 1); see [`crate::quorum`].
    pub quorum: u32,
    /// `hysteresis`: quorum is lost below `quorum - hysteresis` and regained
    /// at `quorum + hysteresis` (default 0, less than `quorum`).
    pub hysteresis: u32,
    /// `quorum_up`: command line run when the quorum is gained (kept as
    /// written, run like a vrrp_instance's notify scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<String>,
    /// `quorum_down`: command line run when the quorum is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<String>,
    /// `sorry_server = { ip = "…", port = N }`: the server that replaces the
    /// real servers while the quorum is lost; forwarded by DR like them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// `sorry_server_inhibit`: keep the sorry server in the pool with weight 0
    /// while it is not in use (its flows drain) instead of removing it
    /// (default false; true needs `sorry_server`).
    pub sorry_server_inhibit: bool,
    /// Real servers in file order; may be empty (legal, as in keepalived).
    #[serde(rename = "real_server", skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServer>,
}

/// `sorry_server = { ip = "…", port = N }` of a `[[virtual_server]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SorryServer {
    /// Its address; on-link, like a real server (DR).
    pub ip: Ipv4Addr,
    /// Always the virtual port (default): DR cannot rewrite ports.
    pub port: u16,
}

/// A service's persistence: how long and over which client netmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// `persistence_timeout`.
    pub timeout: Duration,
    /// `persistence_granularity` as a netmask.
    pub netmask: Ipv4Addr,
}

impl Persistence {
    /// The netmask's prefix length (the mask is contiguous: validated).
    pub fn prefix_len(&self) -> u8 {
        // At most 32: the count of ones in a u32.
        u32::from(self.netmask).leading_ones() as u8
    }
}

impl VirtualServer {
    /// The data plane's key for this service.
    pub fn key(&self) -> ServiceKey {
        ServiceKey { vip: self.vip, port: self.port, proto: self.protocol }
    }

    /// The service's persistence, if `persistence_timeout` is set.
    pub fn persistence(&self) -> Option<Persistence> {
        self.persistence_timeout.map(|timeout| Persistence {
            timeout,
            netmask: self.persistence_granularity.unwrap_or(Ipv4Addr::BROADCAST),
        })
    }

    /// The quorum settings [`crate::quorum::evaluate`] takes.
    pub fn quorum_settings(&self) -> crate::quorum::QuorumSettings {
        crate::quorum::QuorumSettings {
            quorum: self.quorum,
            hysteresis: self.hysteresis,
            sorry_server: self.sorry_server.is_some(),
            sorry_server_inhibit: self.sorry_server_inhibit,
        }
    }

    /// The real servers as [`crate::quorum::evaluate`] takes them, in file
    /// order; `is_down` says which failed their health check.
    pub fn quorum_inputs(
        &self,
        mut is_down: impl FnMut(&RealServer) -> bool,
    ) -> Vec<crate::quorum::ServerInput> {
        self.real_servers
            .iter()
            .map(|rs| crate::quorum::ServerInput {
                weight: rs.weight,
                up: !is_down(rs),
                inhibit_on_failure: rs.inhibit_on_failure,
            })
            .collect()
    }

    /// Total configured weight of the real servers (what the quorum can reach).
    pub fn total_weight(&self) -> u64 {
        self.real_servers.iter().map(|rs| u64::from(rs.weight)).sum()
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
    /// Expected status (default 200). keepalived without `status_code`
    /// accepts any 2xx; xdplb asks for one code (the seed writes 200).
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

impl RealServer {
    /// The hysteresis settings of this server's checker around the service's
    /// `delay_loop`: HTTP_GET's when it has one, else TCP_CHECK's, else `None`.
    pub fn checker_config(&self, delay_loop: Duration) -> Option<CheckerConfig> {
        match (&self.http_get, &self.tcp_check) {
            (Some(http), _) => Some(http.checker_config(delay_loop)),
            (None, Some(tcp)) => Some(tcp.checker_config(delay_loop)),
            (None, None) => None,
        }
    }
}

impl HttpGet {
    /// This checker's hysteresis settings around the service's `delay_loop`.
    pub fn checker_config(&self, delay_loop: Duration) -> CheckerConfig {
        CheckerConfig {
            delay_loop,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            alpha: false,
        }
    }

    /// The URLs as [`crate::health::http_get`] takes them, in file order.
    pub fn url_checks(&self) -> Vec<UrlCheck> {
        self.urls.iter().map(Url::url_check).collect()
    }
}

impl Url {
    /// This URL as [`crate::health::http_get`] takes it.
    pub fn url_check(&self) -> UrlCheck {
        UrlCheck {
            path: self.path.clone(),
            status_code: Some(self.status_code),
            digest: self.digest.clone(),
        }
    }
}

impl TcpCheck {
    /// This checker's hysteresis settings around the service's `delay_loop`.
    pub fn checker_config(&self, delay_loop: Duration) -> CheckerConfig {
        CheckerConfig {
            delay_loop,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            alpha: false,
        }
    }
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
#[serde(rename_all = "snake_case")]
pub enum PollMode {
    /// Spin while busy, sleep in poll(2) when idle.
    Adaptive,
    /// Spin always (lowest latency, one full core per worker).
    Busy,
    /// Spin always, with the kernel's preferred busy polling: each worker
    /// also runs its queue's NAPI receive processing, on its own core
    /// (SO_PREFER_BUSY_POLL, budget = batch_size), as DPDK's af_xdp driver
    /// does by default.
    BusyNapi,
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

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// `listen = "ADDR:PORT"`: serve `/metrics` there; `None` = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}

impl Metrics {
    fn is_off(&self) -> bool {
        self.listen.is_none()
    }
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_whole_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
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

    /// The VIPs that vrrp_instances move, in file order, each once.
    pub fn vrrp_vips(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for ip in self.vrrp_instances.iter().flat_map(|v| &v.virtual_ipaddress).map(|n| n.addr) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    /// The `[[vrrp_script]]` called `name`.
    pub fn vrrp_script(&self, name: &str) -> Option<&VrrpScript> {
        self.vrrp_scripts.iter().find(|s| s.name == name)
    }

    /// The scripts `instance` tracks, in its `track_script` order (every name
    /// was checked to exist when the file was read).
    pub fn track_scripts<'a>(&'a self, instance: &'a VrrpInstance) -> Vec<&'a VrrpScript> {
        instance.track_script.iter().filter_map(|name| self.vrrp_script(name)).collect()
    }

    /// Legal but suspicious settings, as `FILE:LINE: text` lines for check-config,
    /// in line order.
    pub fn warnings(&self) -> Vec<String> {
        let mut found: Vec<(Option<usize>, String)> = self.origin.notes.clone();
        for (i, vs) in self.virtual_servers.iter().enumerate() {
            if u64::from(vs.quorum) + u64::from(vs.hysteresis) > vs.total_weight()
                && !vs.real_servers.is_empty()
            {
                found.push((
                    self.origin.vip.get(i).copied(),
                    format!(
                        "virtual_server {} needs a live weight of {} for its quorum, more than \
                         its real servers' total {}: the quorum is never reached",
                        service_name(&vs.key()),
                        u64::from(vs.quorum) + u64::from(vs.hysteresis),
                        vs.total_weight()
                    ),
                ));
            }
            if vs.real_servers.is_empty() {
                found.push((
                    self.origin.vip.get(i).copied(),
                    format!(
                        "virtual_server {} has no real servers: its traffic is dropped",
                        service_name(&vs.key())
                    ),
                ));
            }
        }
        // A line-less warning goes last.
        found.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
        found
            .into_iter()
            .map(|(line, text)| {
                let at = line.map(|l| format!(":{l}")).unwrap_or_default();
                format!("{}{at}: {text}", self.origin.file)
            })
            .collect()
    }
}
