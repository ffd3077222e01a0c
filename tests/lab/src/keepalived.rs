//! keepalived 2.2.7 as the other director: VRRP only (`-P`: without IPVS
//! keepalived would stop at once on the seed's virtual_server section), in
//! the foreground of a lab namespace, with its own config and pid files in
//! the lab's directory. It forks a VRRP child, which a SIGKILL of the parent
//! would leave behind, so the child is found by its pid file and killed too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::VrrpSpec;
use crate::lab::{Host, Lab};
use crate::process::ChildGuard;
use crate::wait::wait_until;

/// Where scripts/install-deps.sh (the Debian package) puts keepalived.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";
/// How long keepalived may take to start or to stop.
const KEEPALIVED_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval for its log and pid files.
const POLL: Duration = Duration::from_millis(20);

/// A VRRP state as keepalived logs it (`(VI_1) Entering MASTER STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KaState {
    /// BACKUP.
    Backup,
    /// MASTER.
    Master,
    /// FAULT.
    Fault,
}

impl KaState {
    fn word(self) -> &'static str {
        match self {
            KaState::Backup => "BACKUP",
            KaState::Master => "MASTER",
            KaState::Fault => "FAULT",
        }
    }
}

/// A running keepalived (parent and VRRP child) in one lab host.
#[derive(Debug)]
pub struct Keepalived {
    parent: ChildGuard,
    host: Host,
    instance: String,
    vrrp_pidfile: PathBuf,
    vrrp_pid: Pid,
}

impl Lab {
    /// Writes `spec` as keepalived.conf and starts `keepalived -n -l -D -P`
    /// in `host`; returns once its VRRP child runs and has entered its
    /// first state.
    pub fn start_keepalived(&self, host: Host, spec: &VrrpSpec) -> Result<Keepalived> {
        if !Path::new(KEEPALIVED).is_file() {
            bail!("{KEEPALIVED} is missing; run scripts/install-deps.sh (Debian's keepalived)");
        }
        let stem = format!("{}-keepalived", host.name());
        let conf = self.next_file(&stem, "conf");
        std::fs::write(&conf, spec.to_keepalived())
            .with_context(|| format!("write {}", conf.display()))?;
        let pid = conf.with_extension("pid");
        let vrrp_pidfile = conf.with_extension("vrrp.pid");
        let check_pid = conf.with_extension("check.pid");
        for f in [&pid, &vrrp_pidfile, &check_pid] {
            // A leftover would make keepalived believe it already runs.
            let _ = std::fs::remove_file(f);
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let argv = [
            KEEPALIVED.to_owned(),
            "-n".to_owned(), // foreground: the PID we hold is the parent's
            "-l".to_owned(), // log to the console: our log file
            "-D".to_owned(),
            "-P".to_owned(), // VRRP only
            "-f".to_owned(),
            path(&conf),
            "-p".to_owned(),
            path(&pid),
            "-r".to_owned(),
            path(&vrrp_pidfile),
            "-c".to_owned(),
            path(&check_pid),
        ];
        let mut parent = self.spawn(host, &argv)?;
        let mut vrrp_pid = None;
        let entering = format!("({}) Entering ", spec.name);
        let what = format!("keepalived in {} to start its VRRP instance", host.name());
        let started = wait_until(&what, KEEPALIVED_TIMEOUT, POLL, || {
            if let Some(status) = parent.try_wait()? {
                bail!("keepalived exited ({status})");
            }
            vrrp_pid = read_pid(&vrrp_pidfile);
            Ok(vrrp_pid.is_some() && parent.log().contains(&entering))
        });
        started.with_context(|| format!("keepalived log:\n{}", parent.log()))?;
        let vrrp_pid = vrrp_pid.context("keepalived wrote no VRRP pid file")?;
        Ok(Keepalived { parent, host, instance: spec.name.clone(), vrrp_pidfile, vrrp_pid })
    }
}

/// The PID in a pid file, if it exists and holds one.
fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

/// Whether `pid` is (still) a keepalived process: pid files outlive their
/// process, and a PID can be reused.
fn is_keepalived(pid: Pid) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("keepalived"))
        .unwrap_or(false)
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

impl Keepalived {
    /// The host it runs in.
    pub fn host(&self) -> Host {
        self.host
    }

    /// The parent's PID.
    pub fn pid(&self) -> Pid {
        self.parent.pid()
    }

    /// The VRRP child's PID.
    pub fn vrrp_pid(&self) -> Pid {
        self.vrrp_pid
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.parent.log()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        self.parent.log_path()
    }

    /// The states the instance entered, in order.
    pub fn states(&self) -> Vec<KaState> {
        let prefix = format!("({}) Entering ", self.instance);
        self.log()
            .lines()
            .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
            .filter_map(|rest| {
                [KaState::Backup, KaState::Master, KaState::Fault]
                    .into_iter()
                    .find(|s| rest.starts_with(&format!("{} STATE", s.word())))
            })
            .collect()
    }

    /// The state it entered last.
    pub fn state(&self) -> Option<KaState> {
        self.states().last().copied()
    }

    /// How many times it entered `state`.
    pub fn entered(&self, state: KaState) -> usize {
        self.states().iter().filter(|s| **s == state).count()
    }

    /// Waits until the last state it entered is `state`.
    pub fn wait_for_state(&mut self, state: KaState, timeout: Duration) -> Result<()> {
        let what = format!("keepalived in {} to enter {}", self.host.name(), state.word());
        let result = wait_until(&what, timeout, POLL, || {
            if let Some(status) = self.parent.try_wait()? {
                bail!("keepalived exited ({status})");
            }
            Ok(self.state() == Some(state))
        });
        result.with_context(|| format!("keepalived log:\n{}", self.log()))
    }

    /// Log lines that say it received something it did not like (bad
    /// checksum, authentication, interval, TTL …): none should appear when
    /// the other director is xdplb.
    pub fn complaints(&self) -> Vec<String> {
        const WORDS: [&str; 7] =
            ["invalid", "bad ", "checksum", "mismatch", "wrong", "error", "ttl"];
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                WORDS.iter().any(|w| l.contains(w))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Clean stop: SIGTERM to the parent, which stops the VRRP child (a
    /// master sends its priority-0 advert and removes the VIP). Returns the log.
    pub fn terminate(mut self) -> Result<String> {
        self.parent.signal(Signal::SIGTERM)?;
        let what = format!("keepalived in {} to stop after SIGTERM", self.host.name());
        self.parent
            .wait_timeout(KEEPALIVED_TIMEOUT)?
            .with_context(|| format!("{what}; log:\n{}", self.log()))?;
        let vrrp_pid = self.vrrp_pid;
        wait_until(&format!("{what} (VRRP child)"), KEEPALIVED_TIMEOUT, POLL, || {
            Ok(!is_keepalived(vrrp_pid))
        })?;
        Ok(self.log())
    }

    /// A crash: both processes killed with SIGKILL, nothing cleaned up (the
    /// VIP stays on the interface, no priority-0 advert).
    pub fn crash(mut self) -> Result<String> {
        self.kill_all()?;
        Ok(self.log())
    }

    fn kill_all(&mut self) -> Result<()> {
        // Stopped, the parent can neither respawn the child nor, dying,
        // make it stop cleanly (its death signal is SIGTERM).
        if self.parent.is_running()? {
            self.parent.signal(Signal::SIGSTOP)?;
        }
        for pid in [Some(self.vrrp_pid), read_pid(&self.vrrp_pidfile)].into_iter().flatten() {
            if is_keepalived(pid) {
                // ESRCH: it just ended, which is what we want.
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        self.parent.kill()?;
        let vrrp_pid = self.vrrp_pid;
        wait_until("keepalived's VRRP child to die", KEEPALIVED_TIMEOUT, POLL, || {
            Ok(!is_keepalived(vrrp_pid))
        })
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Err(e) = self.kill_all() {
            eprintln!("testlab: stopping keepalived in {}: {e:#}", self.host.name());
        }
    }
}
