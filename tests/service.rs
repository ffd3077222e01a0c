//! xdplb as a system service: the packaged unit verifies clean, its capability set is enough
//! for the real daemon and each capability in it is needed, READY=1 / WATCHDOG=1 / STOPPING=1
//! reach a test NOTIFY_SOCKET at the right moments, and `xdplb realserver setup|teardown`
//! prepares and restores a web server's namespace.
//!
//! Needs root (namespaces, veth, XDP, sysctls) and systemd-analyze (Debian package `systemd`).
//! Run serially, as CI does: `cargo test --test service -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use testlab::anyhow::{bail, ensure, Context, Result};
use testlab::netns::{self, NetNsGuard};
use testlab::{cmd, holds_for, wait_until};

/// Prefix of this file's namespaces: `xsvc<pid>-<n>`, so a killed run's are found and removed.
const NETNS_PREFIX: &str = "xsvc";
/// Loading and attaching the program and starting workers on a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The contract: a clean stop within 2 s; generous here, the exit status is what is checked.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// The VIP of configs/single-lb.toml.
const VIP: &str = "192.168.10.110";
/// WATCHDOG_USEC given to the daemon: pings are due every second.
const WATCHDOG_USEC: u64 = 2_000_000;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A directory of this test's own under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xdplb-service-{}-{n}-{tag}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh namespace (removed on drop) in the seed's addressing: eth0 is the director's
/// 192.168.10.101/24, its veth peer web0 holds web1's 192.168.10.103, so configs/single-lb.toml
/// runs unchanged (its real servers are on-link; none needs to answer for the daemon to start).
fn director_netns() -> Result<NetNsGuard> {
    testlab::lab::require_root()?;
    for name in netns::remove_stale(NETNS_PREFIX)? {
        eprintln!("service test: removed network namespace {name} of a killed run");
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ns = NetNsGuard::create(&format!("{NETNS_PREFIX}{}-{n}", std::process::id()))?;
    let name = ns.name().to_owned();
    for args in [
        &["link", "add", "eth0", "type", "veth", "peer", "name", "web0"][..],
        &["addr", "add", "192.168.10.101/24", "dev", "eth0"],
        &["addr", "add", "192.168.10.103/24", "dev", "web0"],
        &["link", "set", "eth0", "up"],
        &["link", "set", "web0", "up"],
    ] {
        let mut argv = vec!["ip", "-n", name.as_str()];
        argv.extend_from_slice(args);
        cmd::run(&argv)?;
    }
    Ok(ns)
}

/// `xdplb run` inside a namespace, killed (SIGKILL, by PID) and reaped on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `xdplb run --config CONFIG` in `ns`, with `setpriv` first applying `privs`
    /// (e.g. a capability bounding set) and `env` added to the environment.
    fn start(
        ns: &NetNsGuard,
        config: &Path,
        log: PathBuf,
        privs: &[String],
        env: &[(&str, String)],
    ) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns.name(), "setpriv", "--pdeathsig", "KILL"])
            .args(privs)
            .arg("--")
            .arg(xdplb())
            .args(["run", "--config"])
            .arg(config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().context("cannot start xdplb")?;
        Ok(Self { child, log, exited: None })
    }

    fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// Waits until the log says `data plane ready`, or the daemon exits (its status is returned).
    fn wait_ready_or_exit(&mut self) -> Result<Option<ExitStatus>> {
        let mut status = None;
        wait_until("`data plane ready` or an exit", READY_TIMEOUT, POLL, || {
            status = self.try_wait()?;
            Ok(status.is_some() || self.log().contains("data plane ready"))
        })
        .with_context(|| format!("xdplb log:\n{}", self.log()))?;
        Ok(status)
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> Result<ExitStatus> {
        if self.try_wait()?.is_none() {
            kill(self.pid(), Signal::SIGTERM)?;
        }
        wait_until("xdplb to exit after SIGTERM", STOP_TIMEOUT, POLL, || {
            Ok(self.try_wait()?.is_some())
        })
        .with_context(|| format!("xdplb log:\n{}", self.log()))?;
        self.try_wait()?.context("no exit status")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(None)) {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The value of `key=` in the unit's [Service] section.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    unit.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_owned())
}

fn unit_text() -> String {
    std::fs::read_to_string(repo_file("packaging/xdplb.service")).unwrap()
}

/// The unit's CapabilityBoundingSet as setpriv names them: `net_admin`, `bpf`, ...
fn unit_capabilities() -> Vec<String> {
    let set = unit_value(&unit_text(), "CapabilityBoundingSet").expect("CapabilityBoundingSet=");
    set.split_whitespace().map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase()).collect()
}

/// setpriv arguments that leave root with exactly `caps` (after exec, root's permitted and
/// effective sets are its bounding set), as systemd does with CapabilityBoundingSet=.
fn only_caps(caps: &[String]) -> Vec<String> {
    let list: String = caps.iter().map(|c| format!(",+{c}")).collect();
    vec!["--inh-caps=-all".into(), format!("--bounding-set=-all{list}")]
}

#[test]
fn packaged_unit_verifies_without_a_word() -> Result<()> {
    let unit = unit_text();
    assert_eq!(unit_value(&unit, "Type").as_deref(), Some("notify"));
    assert_eq!(
        unit_value(&unit, "ExecStart").as_deref(),
        Some("/usr/bin/xdplb run --config /etc/xdplb/xdplb.toml")
    );
    assert!(unit_value(&unit, "WatchdogSec").is_some(), "no WatchdogSec=");
    assert_eq!(
        unit_value(&unit, "AmbientCapabilities"),
        unit_value(&unit, "CapabilityBoundingSet"),
        "ambient and bounding sets differ"
    );
    // systemd-analyze checks that ExecStart's program exists: point it at the one just built.
    let dir = TempDir::new("unit")?;
    let copy = dir.path("xdplb.service");
    std::fs::write(&copy, unit.replace("/usr/bin/xdplb", &xdplb().to_string_lossy()))?;
    let out = cmd::output(&[
        "systemd-analyze".as_ref(),
        "verify".as_ref(),
        "--man=no".as_ref(),
        copy.as_os_str(),
    ])
    .context("systemd-analyze (Debian package systemd) must be installed")?;
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Unknown keys are only warnings: any output at all is a failure.
    ensure!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    Ok(())
}

#[test]
fn unit_capabilities_are_enough_and_each_is_needed() -> Result<()> {
    let caps = unit_capabilities();
    assert!(!caps.is_empty());
    let ns = director_netns()?;
    let dir = TempDir::new("caps")?;
    // The unit lifts RLIMIT_MEMLOCK (LimitMEMLOCK=infinity) instead of granting CAP_IPC_LOCK;
    // here the limit cannot be raised (8 MiB), so the UMEM is made to fit under it.
    let config = dir.path("xdplb.toml");
    let base = std::fs::read_to_string(repo_file("configs/single-lb.toml"))?;
    let last_table = base.lines().rfind(|l| l.starts_with('['));
    ensure!(last_table == Some("[dataplane]"), "single-lb.toml no longer ends with [dataplane]");
    std::fs::write(&config, format!("{base}ring_size = 512\numem_frames = 1024\n"))?;

    let mut daemon = Daemon::start(&ns, &config, dir.path("all.log"), &only_caps(&caps), &[])?;
    let status = daemon.wait_ready_or_exit()?;
    ensure!(
        status.is_none(),
        "xdplb with the unit's capabilities {caps:?} exited {status:?}:\n{}",
        daemon.log()
    );
    let addrs = cmd::run(&["ip", "-n", ns.name(), "-4", "addr", "show", "dev", "eth0"])?;
    ensure!(addrs.contains(&format!("{VIP}/32")), "VIP not added: {addrs}");
    let status = daemon.terminate()?;
    ensure!(
        status.success(),
        "clean stop with the unit's capabilities: {status}\n{}",
        daemon.log()
    );
    drop(daemon);

    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let log = dir.path(&format!("without-{missing}.log"));
        let mut daemon = Daemon::start(&ns, &config, log, &only_caps(&fewer), &[])?;
        let status = daemon.wait_ready_or_exit()?;
        ensure!(
            matches!(status, Some(s) if !s.success()),
            "xdplb started without CAP_{}: it is not needed ({status:?}); log:\n{}",
            missing.to_ascii_uppercase(),
            daemon.log()
        );
        let addrs = cmd::run(&["ip", "-n", ns.name(), "-4", "addr", "show", "dev", "eth0"])?;
        ensure!(!addrs.contains(VIP), "a failed start left the VIP behind: {addrs}");
    }
    Ok(())
}

/// One datagram from the daemon and when it arrived.
struct Note {
    at: Instant,
    text: String,
}

/// Reads datagrams until `stop` says so or `timeout` passes; `stop` sees each one as it arrives.
fn receive_until(
    socket: &UnixDatagram,
    notes: &mut Vec<Note>,
    timeout: Duration,
    mut stop: impl FnMut(&Note) -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        socket.set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let note = Note {
                    at: Instant::now(),
                    text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                };
                let done = stop(&note)?;
                notes.push(note);
                if done {
                    return Ok(true);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn has_line(note: &Note, line: &str) -> bool {
    note.text.lines().any(|l| l == line)
}

#[test]
fn notify_socket_gets_ready_after_the_data_plane_then_watchdog_then_stopping() -> Result<()> {
    let ns = director_netns()?;
    let dir = TempDir::new("notify")?;
    let socket_path = dir.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    let env = [
        ("NOTIFY_SOCKET", socket_path.to_string_lossy().into_owned()),
        ("WATCHDOG_USEC", WATCHDOG_USEC.to_string()),
    ];
    let mut daemon =
        Daemon::start(&ns, &repo_file("configs/single-lb.toml"), dir.path("xdplb.log"), &[], &env)?;
    let mut notes = Vec::new();

    // READY=1: when it arrives, the data plane must already be up.
    let mut at_ready = None;
    let got = receive_until(&socket, &mut notes, READY_TIMEOUT, |note| {
        if !has_line(note, "READY=1") {
            return Ok(false);
        }
        let addrs = cmd::run(&["ip", "-n", ns.name(), "-4", "addr", "show", "dev", "eth0"])?;
        let link = cmd::run(&["ip", "-n", ns.name(), "link", "show", "dev", "eth0"])?;
        at_ready = Some((daemon.log(), addrs, link));
        Ok(true)
    })?;
    if !got {
        let status = daemon.try_wait()?;
        bail!("no READY=1 within {READY_TIMEOUT:?} (exit: {status:?}); log:\n{}", daemon.log());
    }
    let (log, addrs, link) = at_ready.unwrap();
    ensure!(log.contains("data plane ready"), "READY=1 before `data plane ready`; log:\n{log}");
    ensure!(addrs.contains(&format!("{VIP}/32")), "READY=1 before the VIP was added: {addrs}");
    ensure!(link.contains("xdp"), "READY=1 before the XDP program was attached: {link}");
    let ready = notes.last().unwrap();
    let ready_at = ready.at;
    ensure!(
        ready.text.lines().any(|l| l.starts_with("STATUS=") && l.len() > "STATUS=".len()),
        "READY=1 without a STATUS= line: {:?}",
        ready.text
    );
    ensure!(notes[..notes.len() - 1].iter().all(|n| !has_line(n, "READY=1")), "READY=1 sent twice");

    // Watchdog pings every WATCHDOG_USEC/2 = 1 s: watch 4.5 s of them.
    receive_until(&socket, &mut notes, Duration::from_millis(4500), |_| Ok(false))?;
    let pings: Vec<Instant> = notes
        .iter()
        .filter(|n| n.at >= ready_at && has_line(n, "WATCHDOG=1"))
        .map(|n| n.at)
        .collect();
    ensure!(
        pings.len() >= 4,
        "{} WATCHDOG=1 in the 4.5 s after READY=1, want one a second",
        pings.len()
    );
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len())?;
    ensure!(
        mean >= Duration::from_millis(750) && mean <= Duration::from_millis(1250),
        "WATCHDOG=1 every {mean:?} on average, want about 1 s (half of WATCHDOG_USEC): {gaps:?}"
    );
    let longest = gaps.iter().max().copied().unwrap_or_default();
    ensure!(longest < Duration::from_millis(1600), "a {longest:?} gap between pings: {gaps:?}");

    // SIGTERM: STOPPING=1, then a clean exit.
    kill(daemon.pid(), Signal::SIGTERM)?;
    let stopping =
        receive_until(&socket, &mut notes, STOP_TIMEOUT, |n| Ok(has_line(n, "STOPPING=1")))?;
    let status = daemon.terminate()?;
    ensure!(stopping, "no STOPPING=1 after SIGTERM; log:\n{}", daemon.log());
    ensure!(status.success(), "exit {status} after SIGTERM; log:\n{}", daemon.log());
    Ok(())
}

#[test]
fn a_notify_socket_nobody_listens_on_is_one_warning_not_a_failure() -> Result<()> {
    // systemd gone or the socket wrong: the daemon still serves, says so once (not at every
    // watchdog ping) and stops cleanly.
    let ns = director_netns()?;
    let dir = TempDir::new("deaf")?;
    let env = [
        ("NOTIFY_SOCKET", dir.path("nobody.sock").to_string_lossy().into_owned()),
        ("WATCHDOG_USEC", WATCHDOG_USEC.to_string()),
    ];
    let mut daemon =
        Daemon::start(&ns, &repo_file("configs/single-lb.toml"), dir.path("xdplb.log"), &[], &env)?;
    let status = daemon.wait_ready_or_exit()?;
    ensure!(
        status.is_none(),
        "exited {status:?}:
{}",
        daemon.log()
    );
    let warning = "cannot notify the service manager";
    wait_until("the NOTIFY_SOCKET warning", READY_TIMEOUT, POLL, || {
        Ok(daemon.log().contains(warning))
    })
    .with_context(|| daemon.log())?;
    // Three watchdog periods: each would have warned again.
    let window = Duration::from_micros(WATCHDOG_USEC / 2) * 3;
    holds_for("a single NOTIFY_SOCKET warning", window, POLL, || {
        Ok(daemon.log().matches(warning).count() == 1 && daemon.try_wait()?.is_none())
    })
    .with_context(|| daemon.log())?;
    let status = daemon.terminate()?;
    ensure!(status.success(), "exit {status}:\n{}", daemon.log());
    Ok(())
}

/// `ip netns exec NS xdplb ARGS…`, with its output (fails on a non-zero exit).
fn xdplb_in(ns: &NetNsGuard, args: &[&str]) -> Result<String> {
    let bin = xdplb();
    let mut argv = vec!["ip", "netns", "exec", ns.name(), bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    cmd::run(&argv)
}

fn sysctl_in(ns: &NetNsGuard, key: &str) -> Result<String> {
    Ok(cmd::run(&["ip", "netns", "exec", ns.name(), "sysctl", "-n", key])?.trim().to_owned())
}

fn arp_sysctls(ns: &NetNsGuard) -> Result<Vec<String>> {
    ["all", "eth0"]
        .iter()
        .flat_map(|i| ["arp_ignore", "arp_announce"].map(|k| format!("net.ipv4.conf.{i}.{k}")))
        .map(|key| Ok(format!("{key}={}", sysctl_in(ns, &key)?)))
        .collect()
}

fn lo_addresses(ns: &NetNsGuard) -> Result<String> {
    cmd::run(&["ip", "-n", ns.name(), "-4", "addr", "show", "dev", "lo"])
}

#[test]
fn realserver_setup_and_teardown_restore_the_namespace() -> Result<()> {
    // A web server's namespace: eth0 on the VIP's segment, lo up.
    testlab::lab::require_root()?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ns = NetNsGuard::create(&format!("{NETNS_PREFIX}{}-{n}", std::process::id()))?;
    for args in [
        &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"][..],
        &["addr", "add", "192.168.10.103/24", "dev", "eth0"],
        &["link", "set", "eth0", "up"],
    ] {
        let mut argv = vec!["ip", "-n", ns.name()];
        argv.extend_from_slice(args);
        cmd::run(&argv)?;
    }
    let inode =
        cmd::run(&["stat", "-L", "-c", "%i", netns::netns_path(ns.name()).to_str().unwrap()])?;
    let state = PathBuf::from(format!("/run/xdplb/realserver-{}.toml", inode.trim()));
    let before = arp_sysctls(&ns)?;
    let host = || -> Result<Vec<String>> {
        ["arp_ignore", "arp_announce"]
            .iter()
            .map(|k| Ok(std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/all/{k}"))?))
            .collect()
    };
    let host_before = host()?;
    assert!(before.iter().all(|s| s.ends_with("=0")), "a new namespace starts at 0: {before:?}");

    let said = xdplb_in(&ns, &["realserver", "setup", "--vip", VIP])?;
    ensure!(lo_addresses(&ns)?.contains(&format!("inet {VIP}/32 ")), "VIP not on lo:\n{said}");
    let after = arp_sysctls(&ns)?;
    assert_eq!(
        after,
        [
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.eth0.arp_ignore=1",
            "net.ipv4.conf.eth0.arp_announce=2",
        ],
        "setup said:\n{said}"
    );
    ensure!(state.exists(), "no state file {}:\n{said}", state.display());
    assert_eq!(host()?, host_before, "setup changed the test's own namespace");

    // Again: harmless, same result.
    xdplb_in(&ns, &["realserver", "setup", "--vip", VIP])?;
    assert_eq!(arp_sysctls(&ns)?, after);
    assert_eq!(lo_addresses(&ns)?.matches(VIP).count(), 1);

    let said = xdplb_in(&ns, &["realserver", "teardown"])?;
    ensure!(!lo_addresses(&ns)?.contains(VIP), "VIP left on lo:\n{said}");
    assert_eq!(arp_sysctls(&ns)?, before, "teardown said:\n{said}");
    ensure!(!state.exists(), "state file {} left behind", state.display());
    xdplb_in(&ns, &["realserver", "teardown"]).context("a second teardown must be harmless")?;

    // Refused, with the reason, when the VIP sits on a real interface.
    cmd::run(&["ip", "-n", ns.name(), "addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
    let bin = xdplb();
    let out = cmd::output(&[
        "ip",
        "netns",
        "exec",
        ns.name(),
        bin.to_str().unwrap(),
        "realserver",
        "setup",
        "--vip",
        VIP,
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "setup accepted a VIP on eth0");
    ensure!(stderr.contains(&format!("VIP {VIP} is configured on eth0")), "{stderr}");
    assert_eq!(arp_sysctls(&ns)?, before, "a refused setup changed sysctls");
    Ok(())
}
