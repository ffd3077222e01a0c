//! `xdplb realserver setup|teardown`: prepares a web server behind xdplb for direct server
//! return as the LVS-DR recipe does (each VIP as a /32 on `lo`, `arp_ignore=1`,
//! `arp_announce=2`), records what it changed per network namespace, and undoes exactly that.
//!
//! Which sysctls: the kernel uses the larger of `conf/all/X` and `conf/IF/X` for both
//! `arp_ignore` and `arp_announce` (ip-sysctl.rst), so `all` alone covers every interface,
//! including ones added later. As the LVS knowledge base's recipe does, the interfaces that
//! face the VIP's segment (an address whose subnet holds the VIP) are set too, so that the
//! server stays quiet if someone resets `all`. `lo` is left alone: it neither sends nor
//! receives ARP, so its values change nothing.
//!
//! State: `/run/xdplb/realserver-<netns inode>.toml` (/run is shared by every network
//! namespace; the inode of /proc/thread-self/ns/net tells them apart). It holds each sysctl's
//! value before setup and the VIPs setup added, and is written before anything is changed, so
//! that a teardown after an interrupted setup still restores the original values.

use std::{
    collections::BTreeSet,
    fmt, io,
    net::Ipv4Addr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::netlink::{self, Address, Netlink, NetlinkError, VipPresence, XDPLB_IFA_PROTO};

/// Where state files live (one per network namespace).
const STATE_DIR: &str = "/run/xdplb";

/// The per-interface IPv4 sysctls of the calling thread's network namespace.
const SYSCTL_ROOT: &str = "/proc/sys/net/ipv4/conf";

/// The calling thread's network namespace (`self` would name the main thread's).
const NETNS: &str = "/proc/thread-self/ns/net";

/// An ARP sysctl and the least value DR needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Knob {
    name: &'static str,
    want: i64,
}

// ip-sysctl.rst, arp_ignore: "1 - reply only if the target IP address is local address
// configured on the incoming interface". Higher values (2, 3, 8) are stricter still.
const ARP_IGNORE: Knob = Knob { name: "arp_ignore", want: 1 };
// ip-sysctl.rst, arp_announce: "2 - Always use the best local address for this target. In this
// mode we ignore the source address in the IP packet and try to select local address that we
// prefer for talks with the target host." 2 is the highest value.
const ARP_ANNOUNCE: Knob = Knob { name: "arp_announce", want: 2 };
const KNOBS: [Knob; 2] = [ARP_IGNORE, ARP_ANNOUNCE];

/// What failed while setting up or tearing down, naming the file, address or interface.
#[derive(Debug, thiserror::Error)]
pub enum RealServerError {
    /// `setup` was given no address.
    #[error("no VIP given: name one or more with --vip IP")]
    NoVip,
    /// The address cannot serve as a VIP.
    #[error("{vip} cannot be a VIP: it is {reason}")]
    BadVip {
        /// The address given.
        vip: Ipv4Addr,
        /// What kind of address it is.
        reason: &'static str,
    },
    /// The VIP is already on a real interface, where the server would answer ARP for it.
    #[error(
        "VIP {vip} is configured on {interface} as {vip}/{prefix_len}: a DR real server holds \
         it on lo only, or it answers ARP for it and draws the director's traffic (remove it \
         with `ip addr del {vip}/{prefix_len} dev {interface}`)"
    )]
    VipOnInterface {
        /// The VIP.
        vip: Ipv4Addr,
        /// The interface that holds it.
        interface: String,
        /// Its prefix length there.
        prefix_len: u8,
    },
    /// A file (sysctl, state, namespace) could not be read, written or removed.
    #[error("{action} {path}: {cause}")]
    File {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Writing a sysctl failed.
    #[error("writing {value} to {path}: {cause}")]
    WriteSysctl {
        /// The sysctl file.
        path: PathBuf,
        /// The value being written.
        value: i64,
        /// What the kernel said.
        cause: io::Error,
    },
    /// A sysctl file held something that is not an integer.
    #[error("{path} holds {text:?}, not an integer")]
    NotInteger {
        /// The sysctl file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
    /// The state file could not be understood.
    #[error("state file {path}: {reason} (if nothing of a setup is left, remove the file)")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An interface named in /proc/sys has no index (it went away, or no `lo`).
    #[error("looking up interface {name}: {cause}")]
    Interface {
        /// The interface name.
        name: String,
        /// What the kernel said.
        cause: nix::Error,
    },
    /// A netlink operation failed (it names the address and interface).
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The runtime that drives netlink could not be started.
    #[error("starting the netlink runtime: {0}")]
    Runtime(io::Error),
}

/// What setup or teardown did, one line per sysctl or address, for the operator to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One human-readable line per action or finding.
    pub lines: Vec<String>,
}

impl Report {
    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// One sysctl that setup changed: what it was and what setup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SysctlChange {
    interface: String,
    name: String,
    previous: i64,
    set: i64,
}

/// The state file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The inode of the network namespace this describes (also in the file name).
    netns: u64,
    /// VIPs on `lo` that are ours to remove (added by setup, or our leftovers it adopted).
    #[serde(default)]
    vips: Vec<Ipv4Addr>,
    /// Sysctls setup raised, with the values to restore.
    #[serde(default)]
    sysctl: Vec<SysctlChange>,
}

impl State {
    fn change(&self, interface: &str, name: &str) -> Option<&SysctlChange> {
        self.sysctl.iter().find(|c| c.interface == interface && c.name == name)
    }

    fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# Written by `xdplb realserver setup` for network namespace net:[{}].\n\
             # `xdplb realserver teardown` removes these VIPs from lo and restores the\n\
             # previous sysctl values, then deletes this file.\n{body}",
            self.netns
        ))
    }
}

/// Where a run keeps its state and finds its sysctls (fixed in production; tests use their own
/// state directory).
#[derive(Debug, Clone)]
struct Paths {
    state_dir: PathBuf,
    sysctl_root: PathBuf,
    netns: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(STATE_DIR),
            sysctl_root: PathBuf::from(SYSCTL_ROOT),
            netns: PathBuf::from(NETNS),
        }
    }
}

impl Paths {
    fn sysctl(&self, interface: &str, name: &str) -> PathBuf {
        self.sysctl_root.join(interface).join(name)
    }

    fn state_file(&self, netns: u64) -> PathBuf {
        self.state_dir.join(format!("realserver-{netns}.toml"))
    }
}

/// `xdplb realserver setup --vip IP…`: raises the ARP sysctls, then adds each VIP to `lo`
/// (in that order, so the server never answers ARP for a VIP). Running it again is harmless and
/// adds VIPs not yet there; the values to restore stay those from before the first run.
pub fn setup(vips: &[Ipv4Addr]) -> Result<Report, RealServerError> {
    block_on(setup_with(&Paths::default(), vips))
}

/// `xdplb realserver teardown`: removes the VIPs setup added from `lo`, then restores the
/// sysctls it changed (those changed since by someone else are left as they are). With no
/// record of a setup it removes only VIPs marked as xdplb's from `lo`; running it twice is
/// harmless.
pub fn teardown() -> Result<Report, RealServerError> {
    block_on(teardown_with(&Paths::default()))
}

fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, RealServerError>>,
) -> Result<T, RealServerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RealServerError::Runtime)?;
    runtime.block_on(work)
}

/// Refuses addresses that cannot be a service address; returns them without repeats.
fn validate_vips(vips: &[Ipv4Addr]) -> Result<Vec<Ipv4Addr>, RealServerError> {
    if vips.is_empty() {
        return Err(RealServerError::NoVip);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &vip in vips {
        let reason = if vip.is_unspecified() {
            Some("the unspecified address")
        } else if vip.is_loopback() {
            Some("a loopback address")
        } else if vip.is_multicast() {
            Some("a multicast address")
        } else if vip.is_broadcast() {
            Some("the broadcast address")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(RealServerError::BadVip { vip, reason });
        }
        if seen.insert(vip) {
            out.push(vip);
        }
    }
    Ok(out)
}

/// Whether `addr/prefix_len` is a subnet that holds `ip`.
fn subnet_holds(addr: &Address, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(addr.prefix_len.min(32))).unwrap_or(0);
    u32::from(addr.addr) & mask == u32::from(ip) & mask
}

/// The interfaces (other than `lo`) whose subnets hold one of the VIPs: ARP requests for a VIP
/// arrive there.
fn facing_interfaces(vips: &[Ipv4Addr], interfaces: &[(String, Vec<Address>)]) -> Vec<String> {
    interfaces
        .iter()
        .filter(|(name, addrs)| {
            name != "lo" && addrs.iter().any(|a| vips.iter().any(|&vip| subnet_holds(a, vip)))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The VIP already on an interface other than `lo`, if any: setup refuses it.
fn vip_on_interface(
    vips: &[Ipv4Addr],
    interfaces: &[(String, Vec<Address>)],
) -> Option<RealServerError> {
    interfaces.iter().filter(|(name, _)| name != "lo").find_map(|(name, addrs)| {
        addrs.iter().find(|a| vips.contains(&a.addr)).map(|a| RealServerError::VipOnInterface {
            vip: a.addr,
            interface: name.clone(),
            prefix_len: a.prefix_len,
        })
    })
}

/// sysctl(8)'s name for a per-interface IPv4 setting (a `.` in an interface name becomes `/`).
fn sysctl_name(interface: &str, name: &str) -> String {
    format!("net.ipv4.conf.{}.{name}", interface.replace('.', "/"))
}

/// What setup does with one sysctl.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SysctlPlan {
    /// Already at least the wanted value and not ours: nothing to write, nothing to restore.
    Keep,
    /// Write `want`; remember `previous` (new) or keep the earlier record (a repeated setup).
    Raise { record: SysctlChange, write: bool },
}

fn plan_sysctl(
    interface: &str,
    knob: Knob,
    current: i64,
    recorded: Option<&SysctlChange>,
) -> SysctlPlan {
    match recorded {
        // A repeated setup: the value to restore is still the one from before the first run;
        // write again only if someone lowered it since.
        Some(record) => SysctlPlan::Raise { record: record.clone(), write: current < knob.want },
        None if current >= knob.want => SysctlPlan::Keep,
        None => SysctlPlan::Raise {
            record: SysctlChange {
                interface: interface.to_owned(),
                name: knob.name.to_owned(),
                previous: current,
                set: knob.want,
            },
            write: true,
        },
    }
}

/// What teardown does with one recorded sysctl, given its value now (`None`: the interface
/// is gone).
fn restore_value(change: &SysctlChange, current: Option<i64>) -> Option<i64> {
    match current {
        Some(now) if now == change.set && now != change.previous => Some(change.previous),
        _ => None,
    }
}

fn read_sysctl(path: &Path) -> Result<i64, RealServerError> {
    let text = std::fs::read_to_string(path).map_err(|cause| RealServerError::File {
        action: "reading",
        path: path.to_owned(),
        cause,
    })?;
    text.trim()
        .parse()
        .map_err(|_| RealServerError::NotInteger { path: path.to_owned(), text: text.clone() })
}

fn write_sysctl(path: &Path, value: i64) -> Result<(), RealServerError> {
    std::fs::write(path, format!("{value}\n")).map_err(|cause| RealServerError::WriteSysctl {
        path: path.to_owned(),
        value,
        cause,
    })
}

fn netns_inode(paths: &Paths) -> Result<u64, RealServerError> {
    std::fs::metadata(&paths.netns).map(|m| m.ino()).map_err(|cause| RealServerError::File {
        action: "reading the network namespace",
        path: paths.netns.clone(),
        cause,
    })
}

fn load_state(path: &Path) -> Result<Option<State>, RealServerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => {
            return Err(RealServerError::File { action: "reading", path: path.to_owned(), cause })
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| RealServerError::BadState { path: path.to_owned(), reason: e.to_string() })
}

/// Writes the state file whole or not at all (a rename over the old one).
fn save_state(dir: &Path, path: &Path, state: &State) -> Result<(), RealServerError> {
    std::fs::create_dir_all(dir).map_err(|cause| RealServerError::File {
        action: "creating",
        path: dir.to_owned(),
        cause,
    })?;
    let text = state
        .to_toml()
        .map_err(|e| RealServerError::BadState { path: path.to_owned(), reason: e.to_string() })?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(|cause| RealServerError::File {
        action: "writing",
        path: tmp.clone(),
        cause,
    })?;
    std::fs::rename(&tmp, path).map_err(|cause| RealServerError::File {
        action: "renaming into place",
        path: path.to_owned(),
        cause,
    })
}

fn interface_index(name: &str) -> Result<u32, RealServerError> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|cause| RealServerError::Interface { name: name.to_owned(), cause })
}

/// Every interface of this namespace except `lo`, with its IPv4 addresses. The names come
/// from /proc/sys/net/ipv4/conf, which always shows the reader's own namespace.
async fn interfaces(
    paths: &Paths,
    nl: &Netlink,
) -> Result<Vec<(String, Vec<Address>)>, RealServerError> {
    let entries = std::fs::read_dir(&paths.sysctl_root).map_err(|cause| RealServerError::File {
        action: "listing",
        path: paths.sysctl_root.clone(),
        cause,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|cause| RealServerError::File {
            action: "listing",
            path: paths.sysctl_root.clone(),
            cause,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches!(name.as_str(), "all" | "default" | "lo") {
            names.push(name);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for name in names {
        match nix::net::if_::if_nametoindex(name.as_str()) {
            Ok(index) => out.push((name, nl.ipv4_addresses(index).await?)),
            // Removed between the listing and now: it receives no ARP any more.
            Err(nix::Error::ENODEV) => {}
            Err(cause) => return Err(RealServerError::Interface { name, cause }),
        }
    }
    Ok(out)
}

async fn setup_with(paths: &Paths, vips: &[Ipv4Addr]) -> Result<Report, RealServerError> {
    let vips = validate_vips(vips)?;
    let netns = netns_inode(paths)?;
    let state_path = paths.state_file(netns);
    let prior = load_state(&state_path)?.unwrap_or(State { netns, ..State::default() });

    let nl = Netlink::connect().await?;
    let lo = interface_index("lo")?;
    let interfaces = interfaces(paths, &nl).await?;
    if let Some(clash) = vip_on_interface(&vips, &interfaces) {
        return Err(clash);
    }
    let facing = facing_interfaces(&vips, &interfaces);

    // Plan everything before changing anything, and record it first.
    let mut report = Report::default();
    let mut state = prior.clone();
    let mut writes = Vec::new();
    for interface in std::iter::once("all").chain(facing.iter().map(String::as_str)) {
        for knob in KNOBS {
            let path = paths.sysctl(interface, knob.name);
            let current = read_sysctl(&path)?;
            let shown = sysctl_name(interface, knob.name);
            match plan_sysctl(interface, knob, current, prior.change(interface, knob.name)) {
                SysctlPlan::Keep => report.say(format!(
                    "{shown} = {current} (already at least {}; left as is)",
                    knob.want
                )),
                SysctlPlan::Raise { record, write } => {
                    if write {
                        report.say(format!("{shown} = {} (was {current})", record.set));
                        writes.push((path, record.set));
                    } else {
                        report.say(format!(
                            "{shown} = {current} (set by an earlier setup; was {})",
                            record.previous
                        ));
                    }
                    if prior.change(interface, knob.name).is_none() {
                        state.sysctl.push(record);
                    }
                }
            }
        }
    }
    if facing.is_empty() {
        report.say(format!(
            "no interface has a subnet holding {}: only net.ipv4.conf.all is set",
            join(&vips)
        ));
    }

    let on_lo = nl.ipv4_addresses(lo).await?;
    let mut to_add = Vec::new();
    for &vip in &vips {
        match netlink::classify_vip(&on_lo, vip) {
            VipPresence::Absent => {
                to_add.push(vip);
                if !state.vips.contains(&vip) {
                    state.vips.push(vip);
                }
            }
            VipPresence::OursLeftover => {
                report.say(format!("{vip}/32 already on lo (added by xdplb)"));
                if !state.vips.contains(&vip) {
                    state.vips.push(vip);
                }
            }
            VipPresence::Operators { prefix_len, .. } => report.say(format!(
                "{vip}/{prefix_len} already on lo, not added by xdplb: left as is, and teardown \
                 keeps it"
            )),
        }
    }

    save_state(&paths.state_dir, &state_path, &state)?;
    // Sysctls first: the VIP must never sit on lo while the server would answer ARP for it.
    for (path, value) in writes {
        write_sysctl(&path, value)?;
    }
    for vip in to_add {
        nl.add_vip(lo, vip).await?;
        report.say(format!("{vip}/32 added to lo"));
    }
    if let Ok(link) = nl.link_by_index(lo).await {
        if !link.up {
            report.say("lo is down: the VIPs take no traffic until `ip link set lo up`");
        }
    }
    report.say(format!("recorded in {} for teardown", state_path.display()));
    Ok(report)
}

async fn teardown_with(paths: &Paths) -> Result<Report, RealServerError> {
    let netns = netns_inode(paths)?;
    let state_path = paths.state_file(netns);
    let nl = Netlink::connect().await?;
    let lo = interface_index("lo")?;
    let on_lo = nl.ipv4_addresses(lo).await?;
    let mut report = Report::default();

    let Some(state) = load_state(&state_path)? else {
        report.say(format!(
            "no record of a setup in this network namespace ({}): no sysctl to restore",
            state_path.display()
        ));
        // A setup interrupted before it saved its state cannot have added a VIP, but a state
        // file removed by hand can leave ours behind: those carry our mark.
        for a in on_lo.iter().filter(|a| a.proto == XDPLB_IFA_PROTO && a.prefix_len == 32) {
            nl.remove_address(lo, a.addr, 32).await?;
            report.say(format!("{}/32 removed from lo (marked as added by xdplb)", a.addr));
        }
        return Ok(report);
    };

    // VIPs first: the server must stop accepting VIP traffic before it may answer ARP again.
    for &vip in &state.vips {
        match netlink::classify_vip(&on_lo, vip) {
            VipPresence::OursLeftover => {
                nl.remove_address(lo, vip, 32).await?;
                report.say(format!("{vip}/32 removed from lo"));
            }
            VipPresence::Absent => report.say(format!("{vip} no longer on lo")),
            VipPresence::Operators { prefix_len, .. } => report.say(format!(
                "{vip}/{prefix_len} on lo was replaced by someone else since setup: left as is"
            )),
        }
    }
    for change in &state.sysctl {
        let path = paths.sysctl(&change.interface, &change.name);
        let shown = sysctl_name(&change.interface, &change.name);
        let current = match read_sysctl(&path) {
            Ok(v) => Some(v),
            Err(RealServerError::File { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e),
        };
        match (restore_value(change, current), current) {
            (Some(previous), _) => {
                write_sysctl(&path, previous)?;
                report.say(format!("{shown} = {previous} (restored; was {})", change.set));
            }
            (None, None) => report.say(format!("{shown}: interface gone, nothing to restore")),
            (None, Some(now)) if now == change.previous => {
                report.say(format!("{shown} = {now} (already the value before setup)"));
            }
            (None, Some(now)) => report.say(format!(
                "{shown} = {now}: changed by someone else since setup set {}; left as is",
                change.set
            )),
        }
    }
    std::fs::remove_file(&state_path).map_err(|cause| RealServerError::File {
        action: "removing",
        path: state_path.clone(),
        cause,
    })?;
    report.say(format!("removed {}", state_path.display()));
    Ok(report)
}

fn join(vips: &[Ipv4Addr]) -> String {
    vips.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nix::sched::{unshare, CloneFlags};
    use proptest::prelude::*;
    use std::process::Command;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    fn addr(a: [u8; 4], prefix_len: u8) -> Address {
        Address { addr: Ipv4Addr::from(a), prefix_len, proto: 0 }
    }

    #[test]
    fn vips_must_be_unicast_and_lose_repeats() {
        assert!(matches!(validate_vips(&[]), Err(RealServerError::NoVip)));
        for (bad, reason) in [
            (Ipv4Addr::UNSPECIFIED, "the unspecified address"),
            (Ipv4Addr::LOCALHOST, "a loopback address"),
            (Ipv4Addr::new(224, 0, 0, 18), "a multicast address"),
            (Ipv4Addr::BROADCAST, "the broadcast address"),
        ] {
            let err = validate_vips(&[VIP, bad]).unwrap_err();
            assert_eq!(err.to_string(), format!("{bad} cannot be a VIP: it is {reason}"));
        }
        let other = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(validate_vips(&[VIP, other, VIP]).unwrap(), vec![VIP, other]);
    }

    #[test]
    fn facing_interfaces_are_those_on_the_vips_subnet() {
        let ifaces = vec![
            ("eth0".to_owned(), vec![addr([192, 168, 10, 103], 24)]),
            ("eth1".to_owned(), vec![addr([10, 0, 0, 5], 8)]),
            ("lo".to_owned(), vec![addr([127, 0, 0, 1], 8), addr([192, 168, 10, 110], 32)]),
            ("wg0".to_owned(), vec![]),
            ("eth2".to_owned(), vec![addr([0, 0, 0, 0], 0)]),
        ];
        assert_eq!(facing_interfaces(&[VIP], &ifaces), vec!["eth0", "eth2"]);
        assert_eq!(facing_interfaces(&[Ipv4Addr::new(10, 9, 9, 9)], &ifaces), vec!["eth1", "eth2"]);
        assert!(vip_on_interface(&[VIP], &ifaces).is_none(), "lo holding the VIP is the point");
    }

    #[test]
    fn a_vip_on_a_real_interface_is_refused_with_the_fix() {
        let ifaces = vec![("eth0".to_owned(), vec![addr([192, 168, 10, 110], 24)])];
        let err = vip_on_interface(&[VIP], &ifaces).unwrap();
        let text = err.to_string();
        assert!(text.starts_with("VIP 192.168.10.110 is configured on eth0 as 192.168.10.110/24"));
        assert!(text.contains("`ip addr del 192.168.10.110/24 dev eth0`"), "{text}");
    }

    #[test]
    fn sysctl_names_follow_sysctl8() {
        assert_eq!(sysctl_name("all", "arp_ignore"), "net.ipv4.conf.all.arp_ignore");
        assert_eq!(sysctl_name("eth0.10", "arp_announce"), "net.ipv4.conf.eth0/10.arp_announce");
    }

    #[test]
    fn plan_raises_only_what_is_too_low_and_keeps_the_first_previous() {
        assert_eq!(plan_sysctl("all", ARP_IGNORE, 1, None), SysctlPlan::Keep);
        assert_eq!(plan_sysctl("all", ARP_IGNORE, 8, None), SysctlPlan::Keep);
        let fresh = plan_sysctl("eth0", ARP_ANNOUNCE, 1, None);
        let record = SysctlChange {
            interface: "eth0".into(),
            name: "arp_announce".into(),
            previous: 1,
            set: 2,
        };
        assert_eq!(fresh, SysctlPlan::Raise { record: record.clone(), write: true });
        // Second setup: still ours, the value before the first setup is kept.
        assert_eq!(
            plan_sysctl("eth0", ARP_ANNOUNCE, 2, Some(&record)),
            SysctlPlan::Raise { record: record.clone(), write: false }
        );
        // Lowered by someone since: raised again, previous unchanged.
        assert_eq!(
            plan_sysctl("eth0", ARP_ANNOUNCE, 0, Some(&record)),
            SysctlPlan::Raise { record, write: true }
        );
    }

    #[test]
    fn restore_only_what_is_still_ours() {
        let change = SysctlChange {
            interface: "all".into(),
            name: "arp_ignore".into(),
            previous: 0,
            set: 1,
        };
        assert_eq!(restore_value(&change, Some(1)), Some(0));
        assert_eq!(restore_value(&change, Some(2)), None, "someone else's value");
        assert_eq!(restore_value(&change, Some(0)), None, "already restored");
        assert_eq!(restore_value(&change, None), None, "interface gone");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdplb-rs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn broken_state_files_are_named_with_the_fix() {
        let dir = temp_dir("bad-state");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("realserver-1.toml");
        std::fs::write(&path, "netns = 1\nvips = [\"not an address\"]\n").unwrap();
        let err = load_state(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("state file {}: ", path.display())), "{err}");
        assert!(err.ends_with("(if nothing of a setup is left, remove the file)"), "{err}");
        assert_eq!(load_state(&dir.join("absent.toml")).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn change_strategy() -> impl Strategy<Value = SysctlChange> {
        ("[a-z][a-z0-9.]{0,14}", prop_oneof![Just("arp_ignore"), Just("arp_announce")], 0..9i64)
            .prop_map(|(interface, name, previous)| SysctlChange {
                interface,
                name: name.to_owned(),
                previous,
                set: previous + 1,
            })
    }

    proptest! {
        #[test]
        fn state_round_trips_through_its_file(
            netns in any::<u32>(),
            vips in proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 0..5),
            sysctl in proptest::collection::vec(change_strategy(), 0..6),
        ) {
            let state = State { netns: u64::from(netns), vips, sysctl };
            let text = state.to_toml().unwrap();
            prop_assert_eq!(toml::from_str::<State>(&text).unwrap(), state);
        }

        #[test]
        fn subnet_holds_agrees_with_a_prefix_compare(
            a in any::<u32>(),
            b in any::<u32>(),
            len in 0u8..=32,
        ) {
            let net = Address { addr: Ipv4Addr::from(a), prefix_len: len, proto: 0 };
            let same_prefix = len == 0 || (a ^ b) >> (32 - u32::from(len)) == 0;
            prop_assert_eq!(subnet_holds(&net, Ipv4Addr::from(b)), same_prefix);
            prop_assert!(subnet_holds(&net, Ipv4Addr::from(a)));
        }
    }

    // ---- Against the kernel, in a network namespace private to one thread ----

    fn run(cmd: &str) -> String {
        let mut words = cmd.split_whitespace();
        let program = words.next().unwrap();
        let out = Command::new(program).args(words).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn sysctl(path: &str) -> i64 {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{path}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs `body` on a thread of its own in a fresh network namespace (gone when the thread
    /// ends) with eth0 (192.168.10.103/24, the seed's web1) and a state directory of its own.
    fn in_netns(tag: &'static str, body: impl FnOnce(Paths) + Send + 'static) {
        let thread = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) needs root");
            for cmd in [
                "ip link set lo up",
                "ip link add eth0 type veth peer name peer0",
                "ip addr add 192.168.10.103/24 dev eth0",
                "ip link set eth0 up",
            ] {
                run(cmd);
            }
            let state_dir = temp_dir(tag);
            let paths = Paths { state_dir: state_dir.clone(), ..Paths::default() };
            body(paths);
            let _ = std::fs::remove_dir_all(state_dir);
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn done(work: impl std::future::Future<Output = Result<Report, RealServerError>>) -> Report {
        block_on(work).unwrap()
    }

    fn on_lo() -> String {
        run("ip -o -4 addr show dev lo")
    }

    #[test]
    fn kernel_setup_then_teardown_restores_everything() {
        in_netns("cycle", |paths| {
            // An operator's earlier value on eth0 that is already strict enough stays theirs.
            std::fs::write("/proc/sys/net/ipv4/conf/eth0/arp_ignore", "2").unwrap();
            let before: Vec<i64> =
                ["all/arp_ignore", "all/arp_announce", "eth0/arp_ignore", "eth0/arp_announce"]
                    .iter()
                    .map(|p| sysctl(p))
                    .collect();
            assert_eq!(before, vec![0, 0, 2, 0]);

            let report = done(setup_with(&paths, &[VIP]));
            let text = report.to_string();
            assert!(on_lo().contains("inet 192.168.10.110/32 "), "{}", on_lo());
            assert_eq!(sysctl("all/arp_ignore"), 1);
            assert_eq!(sysctl("all/arp_announce"), 2);
            assert_eq!(sysctl("eth0/arp_ignore"), 2, "stricter value kept");
            assert_eq!(sysctl("eth0/arp_announce"), 2);
            assert!(text.contains("net.ipv4.conf.all.arp_ignore = 1 (was 0)"), "{text}");
            assert!(text.contains("net.ipv4.conf.eth0.arp_ignore = 2 (already at least 1"));
            assert!(text.contains("192.168.10.110/32 added to lo"), "{text}");
            let ns = netns_inode(&paths).unwrap();
            let state = load_state(&paths.state_file(ns)).unwrap().unwrap();
            assert_eq!(state.vips, vec![VIP]);
            assert_eq!(state.sysctl.len(), 3, "{state:?}");

            // Again, with one more VIP: idempotent, and the original values stay recorded.
            let second = Ipv4Addr::new(192, 168, 10, 111);
            let text = done(setup_with(&paths, &[VIP, second])).to_string();
            assert!(text.contains("192.168.10.110/32 already on lo (added by xdplb)"), "{text}");
            assert!(text.contains("(set by an earlier setup; was 0)"), "{text}");
            let again = load_state(&paths.state_file(ns)).unwrap().unwrap();
            assert_eq!(again.vips, vec![VIP, second]);
            assert_eq!(again.sysctl, state.sysctl);

            // Someone changes all/arp_announce by hand after setup: teardown leaves theirs.
            std::fs::write("/proc/sys/net/ipv4/conf/all/arp_announce", "1").unwrap();
            let text = done(teardown_with(&paths)).to_string();
            assert!(!on_lo().contains("192.168.10.11"), "{}", on_lo());
            assert!(on_lo().contains("127.0.0.1"));
            assert_eq!(sysctl("all/arp_ignore"), 0);
            assert_eq!(sysctl("all/arp_announce"), 1, "changed since setup: left");
            assert_eq!(sysctl("eth0/arp_ignore"), 2);
            assert_eq!(sysctl("eth0/arp_announce"), 0);
            assert!(text.contains("changed by someone else since setup set 2; left as is"));
            assert!(!paths.state_file(ns).exists());

            // Twice is harmless.
            let text = done(teardown_with(&paths)).to_string();
            assert!(text.starts_with("no record of a setup"), "{text}");
        });
    }

    #[test]
    fn kernel_setup_refuses_a_vip_on_eth0_and_changes_nothing() {
        in_netns("clash", |paths| {
            run("ip addr add 192.168.10.110/24 dev eth0");
            let err = block_on(setup_with(&paths, &[VIP])).unwrap_err();
            let RealServerError::VipOnInterface { ref interface, .. } = err else {
                panic!("expected VipOnInterface, got {err}");
            };
            assert_eq!(interface, "eth0");
            assert_eq!(sysctl("all/arp_ignore"), 0);
            assert!(!on_lo().contains("192.168.10.110"));
            assert!(!paths.state_file(netns_inode(&paths).unwrap()).exists());
        });
    }

    #[test]
    fn kernel_operators_vip_on_lo_is_kept_and_leftovers_of_ours_are_removed() {
        in_netns("operator", |paths| {
            run("ip addr add 192.168.10.110/32 dev lo");
            let text = block_on(setup_with(&paths, &[VIP])).unwrap().to_string();
            assert!(text.contains("not added by xdplb: left as is"), "{text}");
            block_on(teardown_with(&paths)).unwrap();
            assert!(on_lo().contains("192.168.10.110/32"), "operator's VIP kept: {}", on_lo());
            run("ip addr del 192.168.10.110/32 dev lo");

            // A VIP of ours whose state file was removed by hand still goes at teardown.
            block_on(setup_with(&paths, &[VIP])).unwrap();
            let ns = netns_inode(&paths).unwrap();
            std::fs::remove_file(paths.state_file(ns)).unwrap();
            let text = block_on(teardown_with(&paths)).unwrap().to_string();
            assert!(text.contains("192.168.10.110/32 removed from lo (marked"), "{text}");
            assert!(!on_lo().contains("192.168.10.110"));
        });
    }
}
