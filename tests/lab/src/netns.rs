//! Named network namespaces: created under /run/netns by `ip netns add`,
//! removed by an RAII guard (as aya's test_helpers `NetNsGuard`), and entered
//! by one thread at a time with `setns` so Rust code can talk from inside.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use nix::sched::{setns, CloneFlags};

use crate::cmd;

/// Where `ip netns add` mounts a namespace it names.
const NETNS_RUN_DIR: &str = "/run/netns";

/// A named network namespace that `ip netns del` removes when dropped, also
/// when a test panics.
#[derive(Debug)]
pub struct NetNsGuard {
    name: String,
}

impl NetNsGuard {
    /// Creates namespace `name` (removing a stale one of that name first, left
    /// by a killed run whose PID ours reuses) and brings its `lo` up.
    pub fn create(name: &str) -> Result<Self> {
        if netns_path(name).exists() {
            cmd::run(&["ip", "netns", "del", name])?;
        }
        cmd::run(&["ip", "netns", "add", name])?;
        let guard = Self { name: name.to_owned() };
        cmd::run(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(guard)
    }

    /// The namespace's name, as `ip -n` and `ip netns exec` take it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        if let Err(e) = cmd::run(&["ip", "netns", "del", &self.name]) {
            eprintln!("testlab: cannot remove network namespace {}: {e:#}", self.name);
        }
    }
}

/// Deletes the namespaces named `<prefix><pid>-…` whose process `<pid>` is
/// gone: left by a test run that was killed before its guards could run.
pub fn remove_stale(prefix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("list {NETNS_RUN_DIR}")),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let name = entry.with_context(|| format!("list {NETNS_RUN_DIR}"))?.file_name();
        let name = name.to_string_lossy();
        let Some(pid) = name.strip_prefix(prefix).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            cmd::run(&["ip", "netns", "del", &name])?;
            removed.push(name.into_owned());
        }
    }
    Ok(removed)
}

/// The file `ip netns add NAME` bind-mounts the namespace on.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Moves the calling thread into namespace `name`. Only a thread of our own
/// making should call this: the thread stays there until it ends.
fn enter(name: &str) -> Result<()> {
    let path = netns_path(name);
    let file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
    setns(file, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns(CLONE_NEWNET) into {}", path.display()))
}

/// Runs `work` on a new thread inside namespace `name` without waiting for it.
pub fn spawn_in<T, F>(name: &str, work: F) -> JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let name = name.to_owned();
    std::thread::spawn(move || {
        enter(&name)?;
        work().with_context(|| format!("in network namespace {name}"))
    })
}

/// Runs `work` on a new thread inside namespace `name` and returns its result.
pub fn run_in<T, F>(name: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    join(spawn_in(name, work))
}

/// Waits for a thread started by [`spawn_in`], turning its panic into an error.
pub fn join<T>(handle: JoinHandle<Result<T>>) -> Result<T> {
    handle.join().map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        anyhow!("namespace thread panicked: {msg}")
    })?
}
