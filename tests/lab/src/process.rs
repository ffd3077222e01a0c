//! Processes the lab starts inside its namespaces: each is owned by a guard
//! that kills it by PID when dropped, and the lab kills any still registered
//! before it deletes the namespaces. `XdplbProcess` adds what tests need to
//! drive the binary under test: its log, signals and the final counters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd;
use crate::wait::wait_until;

/// How often process state and logs are looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// PIDs of the lab's children that have not been reaped yet. While a PID is
/// in here it cannot have been reused, so killing it is safe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry(Arc<Mutex<BTreeSet<i32>>>);

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<i32>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends SIGKILL to every child not yet reaped (their guards reap them).
    pub(crate) fn kill_all(&self) {
        for &pid in self.lock().iter() {
            // A child that already exited (a zombie until reaped) ignores the
            // signal; any error here changes nothing for the teardown.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A process started by the lab, killed (SIGKILL, by PID) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    what: String,
    pid: Pid,
    child: Child,
    exited: Option<ExitStatus>,
    log: PathBuf,
    registry: Registry,
}

impl ChildGuard {
    /// Starts `argv` inside namespace `netns` with stdout and stderr appended
    /// to `log`. `ip netns exec` and `setpriv` exec in place, so the PID is the
    /// program's. `setpriv --pdeathsig KILL` kills the program if the thread
    /// that started it ends without its guard (the test process was killed):
    /// call this from a thread that outlives the guard, as a test's own does.
    pub(crate) fn spawn<S: AsRef<std::ffi::OsStr>>(
        registry: &Registry,
        netns: &str,
        argv: &[S],
        log: &Path,
    ) -> Result<Self> {
        let (program, args) = cmd::split(argv)?;
        let what = format!("`{}` in {netns}", cmd::display(argv));
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open log {}", log.display()))?;
        let err = out.try_clone().with_context(|| format!("dup log {}", log.display()))?;
        // Registering before the PID exists would need a placeholder; the lock
        // held across spawn keeps kill_all from missing the new child.
        let mut pids = registry.lock();
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "setpriv", "--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("PID out of range")?);
        pids.insert(pid.as_raw());
        drop(pids);
        Ok(Self { what, pid, child, exited: None, log: log.to_owned(), registry: registry.clone() })
    }

    /// The process ID.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The file that receives the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the process wrote so far (lossy UTF-8).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `signal` to the process; fails if it has already been reaped.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if let Some(status) = self.exited {
            bail!("cannot send {signal} to {}: it already exited ({status})", self.what);
        }
        kill(self.pid(), signal).with_context(|| format!("kill({signal}) {}", self.what))
    }

    /// The exit status if the process has ended (reaping it), else `None`.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            let mut pids = self.registry.lock();
            if let Some(status) =
                self.child.try_wait().with_context(|| format!("waitpid {}", self.what))?
            {
                pids.remove(&self.pid.as_raw());
                self.exited = Some(status);
            }
        }
        Ok(self.exited)
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let what = format!("{} to exit", self.what);
        match wait_until(&what, timeout, POLL, || Ok(self.try_wait()?.is_some())) {
            Ok(()) => Ok(self.exited),
            Err(_) if self.exited.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends SIGKILL (unless it already ended) and reaps the process.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if self.try_wait()?.is_none() {
            // ESRCH is impossible while unreaped; any other error is real.
            self.signal(Signal::SIGKILL)?;
        }
        self.wait_timeout(Duration::from_secs(10))?
            .ok_or_else(|| anyhow!("{} survived SIGKILL for 10 s", self.what))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.try_wait()?.is_none())
    }

    /// The command and namespace, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("testlab: {e:#}");
        }
    }
}

/// The `xdplb` binary running in one lab namespace.
#[derive(Debug)]
pub struct XdplbProcess {
    child: ChildGuard,
    started: Instant,
}

/// How an `xdplb` run ended.
#[derive(Debug)]
pub struct XdplbExit {
    /// The exit status.
    pub status: ExitStatus,
    /// From the signal to the process being reaped.
    pub elapsed: Duration,
    /// Everything it wrote to stderr (and stdout).
    pub log: String,
    /// The counters from its last `final counters:` line, if it wrote one.
    pub counters: Option<Counters>,
}

impl XdplbExit {
    /// The final counters, or an error quoting the end of the log.
    pub fn counters(&self) -> Result<&Counters> {
        self.counters
            .as_ref()
            .ok_or_else(|| anyhow!("xdplb wrote no `final counters:` line; log:\n{}", self.log))
    }
}

impl XdplbProcess {
    pub(crate) fn new(child: ChildGuard) -> Self {
        Self { child, started: Instant::now() }
    }

    /// The process ID.
    pub fn pid(&self) -> Pid {
        self.child.pid()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        self.child.log_path()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        self.child.is_running()
    }

    /// Waits until the log contains `needle`; fails early, with the log, if
    /// the process exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let what = format!("`{needle}` in the log of {}", self.child.what());
        let result = wait_until(&what, timeout, POLL, || {
            if self.child.log().contains(needle) {
                return Ok(true);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}) before logging `{needle}`", self.child.what());
            }
            Ok(false)
        });
        result.with_context(|| format!("log {}:\n{}", self.log_path().display(), self.log()))
    }

    /// How many lines of its log contain `needle` (e.g. `-> MASTER`).
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `n` lines of the log contain `needle`; fails
    /// early, with the log, if the process exits first.
    pub fn wait_for_log_count(&mut self, needle: &str, n: usize, timeout: Duration) -> Result<()> {
        let what = format!("{n} lines with `{needle}` in the log of {}", self.child.what());
        let result = wait_until(&what, timeout, POLL, || {
            if self.log_count(needle) >= n {
                return Ok(true);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status})", self.child.what());
            }
            Ok(false)
        });
        result.with_context(|| format!("log {}:\n{}", self.log_path().display(), self.log()))
    }

    /// Sends SIGHUP (the contract: logged, never fatal).
    pub fn sighup(&self) -> Result<()> {
        self.child.signal(Signal::SIGHUP)
    }

    /// Sends SIGTERM and waits up to 10 s for the exit; the caller checks
    /// `elapsed` against its own bound. Fails, after SIGKILL, if it hangs.
    pub fn terminate(mut self) -> Result<XdplbExit> {
        self.stop(Signal::SIGTERM)
    }

    /// Like [`terminate`](Self::terminate) with SIGINT.
    pub fn interrupt(mut self) -> Result<XdplbExit> {
        self.stop(Signal::SIGINT)
    }

    fn stop(&mut self, signal: Signal) -> Result<XdplbExit> {
        let sent = Instant::now();
        self.child.signal(signal)?;
        let Some(status) = self.child.wait_timeout(Duration::from_secs(10))? else {
            let _ = self.child.kill();
            bail!("{} still running 10 s after {signal}; log:\n{}", self.child.what(), self.log());
        };
        let log = self.log();
        Ok(XdplbExit { status, elapsed: sent.elapsed(), counters: Counters::from_log(&log), log })
    }

    /// Kills it with SIGKILL (a crash: no cleanup) and returns its log.
    pub fn kill9(mut self) -> Result<String> {
        self.child.kill()?;
        Ok(self.log())
    }

    /// Time since it was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The `k=v` pairs of xdplb's `final counters:` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(BTreeMap<String, u64>);

/// The marker in front of the counters on xdplb's last stderr line.
pub const FINAL_COUNTERS: &str = "final counters:";

impl Counters {
    /// The counters of the last `final counters:` line in `log`, if any.
    pub fn from_log(log: &str) -> Option<Self> {
        let line = log.lines().rev().find(|l| l.contains(FINAL_COUNTERS))?;
        let (_, pairs) = line.split_once(FINAL_COUNTERS)?;
        Some(Self::parse_pairs(pairs))
    }

    /// Parses whitespace-separated `key=value` pairs, skipping any that are not.
    pub fn parse_pairs(pairs: &str) -> Self {
        Self(
            pairs
                .split_whitespace()
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The value of `key`, failing with the known keys if it is missing.
    pub fn get(&self, key: &str) -> Result<u64> {
        self.0.get(key).copied().ok_or_else(|| {
            anyhow!(
                "no counter `{key}`; have: {}",
                self.0.keys().cloned().collect::<Vec<_>>().join(" ")
            )
        })
    }

    /// The sum of every counter whose key starts with `prefix`.
    pub fn sum(&self, prefix: &str) -> u64 {
        self.0.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
    }

    /// All counters by key.
    pub fn map(&self) -> &BTreeMap<String, u64> {
        &self.0
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_last_final_counters_line() {
        let log = "starting\ndata plane ready\n\
                   xdplb: final counters: steer.redirected=1\n\
                   2025-01-01T00:00:00Z INFO xdplb: final counters: steer.redirected=12 worker.rx=7 junk\n";
        let c = Counters::from_log(log).unwrap();
        assert_eq!(c.get("steer.redirected").unwrap(), 12);
        assert_eq!(c.get("worker.rx").unwrap(), 7);
        let err = c.get("worker.tx").unwrap_err().to_string();
        assert!(err.contains("worker.tx") && err.contains("steer.redirected"), "{err}");
        assert_eq!(Counters::from_log("no counters here\n"), None);
    }

    #[test]
    fn sums_by_prefix() {
        let c = Counters::parse_pairs("worker.drop.a=1 worker.drop.b=2 worker.rx=10 steer.x=5");
        assert_eq!(c.sum("worker.drop."), 3);
        assert_eq!(c.sum("worker."), 13);
        assert_eq!(c.sum("nothing"), 0);
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(
            map in proptest::collection::btree_map("[a-z_.]{1,20}", any::<u64>(), 0..20),
        ) {
            let counters = Counters(map);
            let line = format!("xdplb: {FINAL_COUNTERS} {counters}");
            prop_assert_eq!(Counters::from_log(&line), Some(counters));
        }

        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let c = Counters::parse_pairs(&text);
            for key in c.map().keys() {
                prop_assert!(!key.contains(char::is_whitespace));
            }
        }
    }
}
