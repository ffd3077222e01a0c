//! The reference forwarders xdplb is compared with, each bouncing frames out
//! of the interface they came in on: the kernel's XDP_TX with a MAC swap
//! (the limit of that path on this box), DPDK's testpmd in macswap mode
//! over net_af_xdp (what a user would otherwise pick), and plain kernel IP
//! forwarding (the slow reference).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aya::maps::{MapData, PerCpuArray};
use aya::Ebpf;

use crate::bpf::{self, BpfError};
use crate::topo::{self, Side, TopoError, REAL_SERVERS, VIP};

const REFLECT_PROGRAM: &str = "xdplb_bench_reflect";

/// The XDP_TX reflector attached to an interface; dropping it detaches.
pub struct Reflector {
    frames: PerCpuArray<MapData, u64>,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Reflector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflector").finish_non_exhaustive()
    }
}

impl Reflector {
    /// Loads the reflector and attaches it (native mode) to interface
    /// `ifindex` of the calling thread's namespace.
    pub fn attach(ifindex: u32) -> Result<Self, BpfError> {
        let mut ebpf = bpf::load(bpf::REFLECT_OBJECT, REFLECT_PROGRAM)?;
        let frames = bpf::counter_map(&mut ebpf, "reflect_frames")?;
        bpf::attach(&mut ebpf, REFLECT_PROGRAM, ifindex)?;
        Ok(Self { frames, _ebpf: ebpf })
    }

    /// Frames reflected so far, summed over CPUs.
    pub fn frames(&self) -> Result<u64, BpfError> {
        bpf::counter_sum(&self.frames, "reflect_frames", 0)
    }
}

/// Kernel IP forwarding on the DUT: frames to the VIP are routed to the
/// first real server (whose MAC is the generator's) and leave by the
/// interface they came in on. Undone on drop.
#[derive(Debug)]
pub struct KernelForward {
    dut: Side,
}

impl KernelForward {
    /// Turns forwarding on in the DUT's namespace and routes the VIP.
    pub fn start(dut: &Side) -> Result<Self, TopoError> {
        let forward = Self { dut: dut.clone() };
        let ns = &dut.netns;
        let interface = &dut.ifname;
        for setting in [
            "net.ipv4.ip_forward=1".to_owned(),
            // The frames leave by the interface they came in on: no ICMP
            // redirect for each, and no reverse-path check of the clients.
            "net.ipv4.conf.all.send_redirects=0".to_owned(),
            format!("net.ipv4.conf.{interface}.send_redirects=0"),
            "net.ipv4.conf.all.rp_filter=0".to_owned(),
            format!("net.ipv4.conf.{interface}.rp_filter=0"),
        ] {
            topo::run("ip", &["netns", "exec", ns, "sysctl", "-qw", &setting])?;
        }
        topo::run(
            "ip",
            &[
                "-n",
                ns,
                "route",
                "replace",
                &format!("{VIP}/32"),
                "via",
                &REAL_SERVERS[0].to_string(),
                "dev",
                interface,
            ],
        )?;
        Ok(forward)
    }
}

impl Drop for KernelForward {
    fn drop(&mut self) {
        let ns = &self.dut.netns;
        let _ = topo::run("ip", &["-n", ns, "route", "del", &format!("{VIP}/32")]);
        let _ = topo::run("ip", &["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    }
}

/// Why testpmd could not be run.
#[derive(Debug, thiserror::Error)]
pub enum TestpmdError {
    /// The binary is not installed.
    #[error("dpdk-testpmd not installed (Debian package dpdk-dev)")]
    NotInstalled,
    /// It could not be started or did not come up.
    #[error("dpdk-testpmd: {0}")]
    Start(String),
}

/// dpdk-testpmd's path, if installed.
pub fn testpmd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("dpdk-testpmd")).find(|p| p.is_file())
}

/// dpdk-testpmd forwarding in macswap mode over net_af_xdp on the DUT's
/// interface, pinned to one core, no hugepages. Stopped on drop.
#[derive(Debug)]
pub struct Testpmd {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    prefix: String,
}

impl Testpmd {
    /// Starts testpmd in the DUT's namespace with its forwarding lcore on
    /// `cpu` and waits until it forwards.
    pub fn start(dut: &Side, cpu: usize) -> Result<Self, TestpmdError> {
        let binary = testpmd_binary().ok_or(TestpmdError::NotInstalled)?;
        let prefix = format!("xb{}", std::process::id());
        let vdev = format!("net_af_xdp0,iface={},start_queue=0,queue_count=1", dut.ifname);
        // EAL wants a main lcore besides the forwarding one; both are put on
        // `cpu` so the DUT stays on its core (the main lcore only waits for
        // a line on stdin).
        let lcores = format!("0@{cpu},1@{cpu}");
        let mut child = Command::new("ip")
            // testpmd's stdout is a pipe here: line-buffer it, or the line
            // that says it forwards stays in its stdio buffer.
            .args(["netns", "exec", &dut.netns, "stdbuf", "-oL"])
            .arg(binary)
            .args(["--lcores", &lcores, "--no-huge", "-m", "512", "--file-prefix", &prefix])
            .args(["--no-pci", "--vdev", &vdev])
            .args(["--", "--forward-mode=macswap", "--auto-start", "--total-num-mbufs=8192"])
            .args(["--nb-cores=1", "--stats-period=0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestpmdError::Start(format!("spawning: {e}")))?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut testpmd = Self { child, lines, log: Vec::new(), prefix };
        testpmd.wait_for("Press enter to exit", Duration::from_secs(30))?;
        Ok(testpmd)
    }

    fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<(), TestpmdError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.log.push(line);
                    if found {
                        return Ok(());
                    }
                }
                Err(_) => {
                    let tail = self.log.iter().rev().take(15).rev().cloned().collect::<Vec<_>>();
                    return Err(TestpmdError::Start(format!(
                        "did not print {marker:?} within {timeout:?}; last output:\n{}",
                        tail.join("\n")
                    )));
                }
            }
        }
    }

    /// The process id (its threads are the forwarder's).
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        // testpmd quits on a line on stdin; kill it if it does not.
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"\n");
        }
        let mut exited = false;
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // EAL's runtime directory for our --file-prefix.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}
