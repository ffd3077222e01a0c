//! The bench topology: two network namespaces, generator/sink and device
//! under test, joined by one veth pair with threaded NAPI so that each
//! side's receive work runs in a kernel thread that can be pinned. Created
//! with unique names, removed on drop (also when a run panics).

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use dataplane::tables::Mac;
use nix::sched::{sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::unistd::Pid;

/// The device under test's own address.
pub const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The generator side's address.
pub const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The virtual service address the generator sends to.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
/// The fake real servers: neighbours of the DUT whose MAC is the generator
/// side's, so that whatever the DUT forwards comes back to the sink.
pub const REAL_SERVERS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 99, 0, 10), Ipv4Addr::new(10, 99, 0, 11)];
/// The subnet prefix length of the link.
pub const PREFIX_LEN: u8 = 24;

const GEN_MAC: Mac = [0x02, 0x62, 0x65, 0x6e, 0x63, 0x01];
const DUT_MAC: Mac = [0x02, 0x62, 0x65, 0x6e, 0x63, 0x02];
const NAMESPACE_PREFIX: &str = "xb";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Why the topology could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or why it could not start.
        detail: String,
    },
    /// A /proc or /sys file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// An `ip` output did not have the expected shape.
    #[error("cannot read the {what} of {interface} from `{output}`")]
    Parse {
        /// What was looked for.
        what: &'static str,
        /// The interface.
        interface: String,
        /// The text read.
        output: String,
    },
    /// setns or sched_setaffinity failed.
    #[error("{call} ({target}): {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// Namespace or thread it was about.
        target: String,
        /// errno.
        source: nix::Error,
    },
    /// A count was out of range.
    #[error("{what} {value} is out of range {range}")]
    Range {
        /// What.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range.
        range: &'static str,
    },
}

/// One end of the link: its namespace and interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Network namespace name (under /run/netns).
    pub netns: String,
    /// Interface name inside it.
    pub ifname: String,
    /// Interface index inside it.
    pub ifindex: u32,
    /// The interface's MAC.
    pub mac: Mac,
    /// The interface's address.
    pub addr: Ipv4Addr,
}

impl Side {
    /// Runs `f` on the calling thread inside this side's namespace, then
    /// returns the thread to the namespace it was in.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> Result<R, TopoError> {
        in_netns(&self.netns, f)
    }

    /// The NAPI kernel threads of this side's interface (threaded NAPI
    /// names them `napi/IFNAME-ID`).
    pub fn napi_threads(&self) -> Result<Vec<i32>, TopoError> {
        napi_threads_of(&self.ifname)
    }

    /// The interface's driver counters (`ethtool -S`): for veth, per-queue
    /// XDP verdicts, ring-full drops and transmit errors.
    pub fn ethtool_stats(&self) -> Result<BTreeMap<String, u64>, TopoError> {
        let text = run("ip", &["netns", "exec", &self.netns, "ethtool", "-S", &self.ifname])?;
        Ok(parse_ethtool_stats(&text))
    }

    /// Frames each receive queue of this interface has taken in so far
    /// (veth's `rx_queue_N_xdp_packets`: every frame its NAPI instance
    /// polled, with or without an XDP program), indexed by queue.
    pub fn rx_queue_frames(&self) -> Result<Vec<u64>, TopoError> {
        Ok(queue_frames(&self.ethtool_stats()?))
    }

    /// Pins every NAPI thread of this side to `cpu`, and with
    /// `fifo_priority` makes it SCHED_FIFO at that priority (`chrt`), so
    /// that on a shared core the kernel's receive path runs when it has
    /// work and the generator gets what is left; returns how many.
    pub fn pin_napi(&self, cpu: usize, fifo_priority: Option<u8>) -> Result<usize, TopoError> {
        let threads = self.napi_threads()?;
        for &tid in &threads {
            pin_thread(tid, cpu)?;
            let tid = tid.to_string();
            match fifo_priority {
                Some(priority) => run("chrt", &["-f", "-p", &priority.to_string(), &tid])?,
                None => run("chrt", &["-o", "-p", "0", &tid])?,
            };
        }
        Ok(threads.len())
    }
}

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopoConfig {
    /// RX and TX queues of each veth end (1 = plain veth).
    pub queues: u32,
}

impl Default for TopoConfig {
    fn default() -> Self {
        Self { queues: 1 }
    }
}

/// The two namespaces and their link; removed on drop.
#[derive(Debug)]
pub struct Topology {
    /// Generator and sink.
    pub gen: Side,
    /// Device under test.
    pub dut: Side,
    /// Queues per veth end.
    pub queues: u32,
    /// An idle veth end in the generator's namespace that carries no
    /// traffic: the generator's program stays attached to it so that it
    /// stays in the kernel's XDP dispatcher. Otherwise every BPF_PROG_RUN
    /// call adds it to the dispatcher and removes it again, each time
    /// waiting for an RCU grace period (milliseconds per call).
    pub gen_anchor_ifindex: u32,
    /// The same for a second generator program (one program per interface).
    pub gen_second_anchor_ifindex: u32,
}

impl Topology {
    /// Builds the namespaces `xb<pid>[-<n>]-gen` and `-dut`, the veth pair
    /// between them (interfaces `xb<pid>[-<n>]g` / `d`: unique names, so the
    /// NAPI threads named after them can be told apart), threaded NAPI on
    /// both ends, addresses, and the real servers as permanent neighbours
    /// of the DUT pointing at the generator's MAC.
    pub fn create(config: TopoConfig) -> Result<Self, TopoError> {
        if !(1..=64).contains(&config.queues) {
            return Err(TopoError::Range {
                what: "veth queues",
                value: u64::from(config.queues),
                range: "1..=64",
            });
        }
        remove_stale_namespaces();
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let base = match n {
            0 => format!("{NAMESPACE_PREFIX}{}", std::process::id()),
            _ => format!("{NAMESPACE_PREFIX}{}-{n}", std::process::id()),
        };
        let gen_ns = format!("{base}-gen");
        let dut_ns = format!("{base}-dut");
        let gen_if = format!("{base}g");
        let dut_if = format!("{base}d");
        // The guard owns the namespaces from their creation on, so a failure
        // half-way removes what exists.
        let mut guard = NamespaceGuard { names: Vec::new() };
        for ns in [&gen_ns, &dut_ns] {
            run("ip", &["netns", "add", ns])?;
            guard.names.push(ns.clone());
            // Keep IPv6 chatter (router solicitations, DAD) out of the counts.
            run("ip", &["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
            run(
                "ip",
                &["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            )?;
        }
        let queues = config.queues.to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                "name",
                &gen_if,
                "netns",
                &gen_ns,
                "address",
                &mac_text(GEN_MAC),
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                &dut_if,
                "netns",
                &dut_ns,
                "address",
                &mac_text(DUT_MAC),
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
            ],
        )?;
        for (ns, ifname, addr) in [(&gen_ns, &gen_if, GEN_ADDR), (&dut_ns, &dut_if, DUT_ADDR)] {
            run("ip", &["-n", ns, "link", "set", "dev", ifname, "up"])?;
            run("ip", &["-n", ns, "addr", "add", &format!("{addr}/{PREFIX_LEN}"), "dev", ifname])?;
            // GRO on gives the veth its NAPI instances for good (not only
            // while an XDP program is attached), so their threads live as
            // long as the link and are pinned once.
            run("ip", &["netns", "exec", ns, "ethtool", "-K", ifname, "gro", "on"])?;
            let threaded = format!("echo 1 > /sys/class/net/{ifname}/threaded");
            run("ip", &["netns", "exec", ns, "sh", "-c", &threaded])?;
        }
        // Two anchors: one per generator program (a second one runs beside
        // the first to feed a second receiving queue), one program each.
        let mut anchors = Vec::new();
        for (anchor, anchor_peer) in [("a", "b"), ("c", "e")] {
            let anchor = format!("{base}{anchor}");
            let anchor_peer = format!("{base}{anchor_peer}");
            run(
                "ip",
                &[
                    "-n",
                    &gen_ns,
                    "link",
                    "add",
                    "name",
                    &anchor,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &anchor_peer,
                ],
            )?;
            for ifname in [&anchor, &anchor_peer] {
                run("ip", &["-n", &gen_ns, "link", "set", "dev", ifname, "up"])?;
            }
            anchors.push(ifindex(&gen_ns, &anchor)?);
        }
        let (gen_anchor_ifindex, gen_second_anchor_ifindex) = (anchors[0], anchors[1]);
        for rs in REAL_SERVERS {
            run(
                "ip",
                &[
                    "-n",
                    &dut_ns,
                    "neigh",
                    "replace",
                    &rs.to_string(),
                    "lladdr",
                    &mac_text(GEN_MAC),
                    "dev",
                    &dut_if,
                    "nud",
                    "permanent",
                ],
            )?;
        }
        let gen = Side {
            ifindex: ifindex(&gen_ns, &gen_if)?,
            netns: gen_ns,
            ifname: gen_if,
            mac: GEN_MAC,
            addr: GEN_ADDR,
        };
        let dut = Side {
            ifindex: ifindex(&dut_ns, &dut_if)?,
            netns: dut_ns,
            ifname: dut_if,
            mac: DUT_MAC,
            addr: DUT_ADDR,
        };
        // From here on Topology's Drop removes the namespaces.
        guard.names.clear();
        Ok(Self { gen, dut, queues: config.queues, gen_anchor_ifindex, gen_second_anchor_ifindex })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end in it, and with it the pair.
        for ns in [&self.dut.netns, &self.gen.netns] {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                eprintln!("xdplb-bench: removing namespace {ns}: {e}");
            }
        }
    }
}

/// Removes namespaces named in `names` on drop (a half-built topology).
struct NamespaceGuard {
    names: Vec<String>,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Removes `xb<pid>...` namespaces left by a bench process that no longer
/// exists (killed before its drop ran).
fn remove_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = owner_pid(&name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run("ip", &["netns", "del", &name]);
            }
        }
    }
}

/// The pid in a bench namespace name `xb<pid>[-<n>]-gen|dut`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let rest = rest.strip_suffix("-gen").or_else(|| rest.strip_suffix("-dut"))?;
    let pid = rest.split('-').next()?;
    pid.parse().ok()
}

/// The `name: value` lines of `ethtool -S` output.
fn parse_ethtool_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The `rx_queue_N_xdp_packets` counters of veth's `ethtool -S`, by queue
/// (a queue without its counter counts 0).
fn queue_frames(stats: &BTreeMap<String, u64>) -> Vec<u64> {
    let mut out = Vec::new();
    for (name, &value) in stats {
        let Some(queue) = name
            .strip_prefix("rx_queue_")
            .and_then(|rest| rest.strip_suffix("_xdp_packets"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        // Bounded: veth has at most a few thousand queues.
        if queue < 4096 {
            if out.len() <= queue {
                out.resize(queue + 1, 0);
            }
            out[queue] = value;
        }
    }
    out
}

/// "02:62:..." text of a MAC.
pub fn mac_text(mac: Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn ifindex(ns: &str, ifname: &str) -> Result<u32, TopoError> {
    let output = run("ip", &["-n", ns, "-o", "link", "show", "dev", ifname])?;
    output.split(':').next().and_then(|n| n.trim().parse().ok()).ok_or_else(|| TopoError::Parse {
        what: "ifindex",
        interface: ifname.to_owned(),
        output: output.clone(),
    })
}

/// Runs `program args...`, returns its stdout; an exit other than 0 is an
/// error carrying stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, TopoError> {
    let command = || format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| TopoError::Command { command: command(), detail: e.to_string() })?;
    if !output.status.success() {
        return Err(TopoError::Command {
            command: command(),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `f` on the calling thread inside network namespace `netns` (a name
/// under /run/netns), then moves the thread back. Only the network
/// namespace changes, which a thread of a multi-threaded process may do.
pub fn in_netns<R>(netns: &str, f: impl FnOnce() -> R) -> Result<R, TopoError> {
    let here_path = "/proc/thread-self/ns/net";
    let here = fs::File::open(here_path)
        .map_err(|source| TopoError::File { path: here_path.to_owned(), source })?;
    let there_path = format!("/run/netns/{netns}");
    let there = fs::File::open(&there_path)
        .map_err(|source| TopoError::File { path: there_path.clone(), source })?;
    setns(&there, CloneFlags::CLONE_NEWNET).map_err(|source| TopoError::Sys {
        call: "setns",
        target: there_path.clone(),
        source,
    })?;
    let result = f();
    setns(&here, CloneFlags::CLONE_NEWNET).map_err(|source| TopoError::Sys {
        call: "setns",
        target: here_path.to_owned(),
        source,
    })?;
    Ok(result)
}

/// Pins thread (or process) `tid` to `cpu`.
pub fn pin_thread(tid: i32, cpu: usize) -> Result<(), TopoError> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|source| TopoError::Sys {
        call: "CpuSet::set",
        target: format!("cpu {cpu}"),
        source,
    })?;
    sched_setaffinity(Pid::from_raw(tid), &set).map_err(|source| TopoError::Sys {
        call: "sched_setaffinity",
        target: format!("thread {tid} to cpu {cpu}"),
        source,
    })
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), TopoError> {
    pin_thread(0, cpu)
}

/// Kernel threads whose name is `napi/IFNAME-...` (a name is cut to 15
/// bytes, so a prefix of it counts when the cut falls inside IFNAME's
/// suffix).
fn napi_threads_of(ifname: &str) -> Result<Vec<i32>, TopoError> {
    let wanted = format!("napi/{ifname}-");
    let entries = fs::read_dir("/proc")
        .map_err(|source| TopoError::File { path: "/proc".to_owned(), source })?;
    let mut threads = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // A thread that exits between readdir and read is simply skipped.
        let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        if napi_name_matches(comm.trim_end(), &wanted) {
            threads.push(pid);
        }
    }
    threads.sort_unstable();
    Ok(threads)
}

/// Whether thread name `comm` (at most 15 bytes) is `wanted` + anything,
/// allowing for the kernel's cut.
fn napi_name_matches(comm: &str, wanted: &str) -> bool {
    const TASK_COMM_MAX: usize = 15;
    if comm.len() >= TASK_COMM_MAX && wanted.len() > comm.len() {
        return wanted.starts_with(comm) && comm.len() + 1 >= wanted.len();
    }
    comm.starts_with(wanted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn napi_names_match_with_and_without_the_cut() {
        assert!(napi_name_matches("napi/xb123g-270", "napi/xb123g-"));
        assert!(!napi_name_matches("napi/xb123d-270", "napi/xb123g-"));
        assert!(!napi_name_matches("napi/xb1234g-27", "napi/xb123g-"));
        // pid of 7 digits: "napi/xb4194304g-" is 16 bytes, cut to 15.
        assert!(napi_name_matches("napi/xb4194304g", "napi/xb4194304g-"));
        assert!(!napi_name_matches("napi/xb4194304d", "napi/xb4194304g-"));
    }

    #[test]
    fn stale_namespace_names_yield_their_pid() {
        assert_eq!(owner_pid("xb1234-gen"), Some(1234));
        assert_eq!(owner_pid("xb1234-3-dut"), Some(1234));
        assert_eq!(owner_pid("xb1234-lab"), None);
        assert_eq!(owner_pid("lab-gen"), None);
    }

    #[test]
    fn ethtool_stats_are_parsed() {
        let text = "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_drops: 17\n  junk\n";
        let stats = parse_ethtool_stats(text);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["rx_queue_0_drops"], 17);
    }

    #[test]
    fn queue_frames_are_indexed_by_queue() {
        let text = "NIC statistics:\n     rx_queue_1_xdp_packets: 5\n     rx_queue_0_xdp_packets: 7\n     \
                    rx_queue_0_xdp_bytes: 900\n     rx_queue_x_xdp_packets: 3\n";
        assert_eq!(queue_frames(&parse_ethtool_stats(text)), vec![7, 5]);
        assert!(queue_frames(&parse_ethtool_stats("peer_ifindex: 2\n")).is_empty());
    }

    #[test]
    fn mac_text_is_colon_hex() {
        assert_eq!(mac_text([0x02, 0x62, 0, 0xab, 0x0c, 0xff]), "02:62:00:ab:0c:ff");
    }

    /// Builds and removes a real topology (needs root): both namespaces
    /// exist with their NAPI threads while it lives and are gone after.
    #[test]
    fn topology_is_built_and_removed() {
        let topo = Topology::create(TopoConfig { queues: 2 }).expect("build topology (needs root)");
        let names = (topo.gen.netns.clone(), topo.dut.netns.clone());
        assert!(Path::new(&format!("/run/netns/{}", names.0)).exists());
        assert_eq!(topo.gen.napi_threads().unwrap().len(), 2);
        assert_eq!(topo.dut.napi_threads().unwrap().len(), 2);
        assert_eq!(topo.dut.pin_napi(0, Some(10)).unwrap(), 2);
        let neigh = run("ip", &["-n", &names.1, "neigh", "show", "dev", &topo.dut.ifname]).unwrap();
        assert!(neigh.contains(&mac_text(topo.gen.mac)), "{neigh}");
        let inside = topo.gen.enter(|| fs::read_to_string("/proc/thread-self/net/dev")).unwrap();
        assert!(inside.unwrap().contains(&topo.gen.ifname));
        drop(topo);
        assert!(!Path::new(&format!("/run/netns/{}", names.0)).exists());
        assert!(!Path::new(&format!("/run/netns/{}", names.1)).exists());
    }
}
