//! Packet captures with tcpdump inside a lab namespace: started and waited
//! for until it listens, read while it runs, stopped with SIGINT by PID, and
//! its file parsed by [`crate::pcap`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::pcap::{self, Frame, LINKTYPE_ETHERNET};
use crate::process::{ChildGuard, Registry};
use crate::wait::wait_until;

/// How often the capture file and tcpdump's stderr are looked at.
const POLL: Duration = Duration::from_millis(20);
/// How long tcpdump may take to start listening or to exit.
const TCPDUMP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `tcpdump -w`.
#[derive(Debug)]
pub struct Capture {
    child: ChildGuard,
    file: PathBuf,
    what: String,
}

impl Capture {
    /// Starts `tcpdump -i ifname -w file -U -s 0 filter` in namespace `netns`
    /// and waits until it says it is listening.
    pub(crate) fn start(
        registry: &Registry,
        netns: &str,
        ifname: &str,
        filter: &str,
        file: &Path,
        log: &Path,
    ) -> Result<Self> {
        let file_arg = file.to_string_lossy().into_owned();
        // -Z root: Debian's tcpdump would otherwise drop to user tcpdump and
        // fail to write into our root-owned directory. --immediate-mode: no
        // frames left in the kernel buffer when SIGINT comes. -B: in
        // immediate mode each ring slot holds a whole snapshot (256 KiB with
        // -s 0), so the default 2 MiB ring holds 7 frames, and a burst that
        // arrives while tcpdump waits for a core on a loaded machine is
        // dropped; 32 MiB holds over a hundred.
        let mut argv = vec![
            "tcpdump",
            "-i",
            ifname,
            "-w",
            &file_arg,
            "-U",
            "-s",
            "0",
            "-B",
            "32768",
            "-n",
            "-Z",
            "root",
            "--immediate-mode",
        ];
        if !filter.is_empty() {
            argv.push(filter);
        }
        let mut child = ChildGuard::spawn(registry, netns, &argv, log)?;
        let what = format!("tcpdump on {ifname} in {netns} ({filter:?})");
        let listening = wait_until(&format!("{what} to listen"), TCPDUMP_TIMEOUT, POLL, || {
            if child.log().contains("listening on") {
                return Ok(true);
            }
            if let Some(status) = child.try_wait()? {
                bail!("{what} exited ({status}): {}", child.log().trim_end());
            }
            Ok(false)
        });
        listening.with_context(|| format!("tcpdump said: {}", child.log().trim_end()))?;
        Ok(Self { child, file: file.to_owned(), what })
    }

    /// The frames captured so far (a record still being written is left out).
    pub fn frames(&self) -> Result<Vec<Frame>> {
        read_file(&self.file)
    }

    /// Waits until `done` holds for the frames captured so far.
    pub fn wait_for<F>(&self, what: &str, timeout: Duration, mut done: F) -> Result<Vec<Frame>>
    where
        F: FnMut(&[Frame]) -> bool,
    {
        let mut frames = Vec::new();
        wait_until(&format!("{what} in {}", self.what), timeout, POLL, || {
            frames = self.frames()?;
            Ok(done(&frames))
        })?;
        Ok(frames)
    }

    /// Stops tcpdump with SIGINT and returns every frame it captured; fails if
    /// tcpdump reports frames dropped by the kernel (the capture would lie).
    pub fn stop(mut self) -> Result<Vec<Frame>> {
        self.child.signal(Signal::SIGINT)?;
        let status = self
            .child
            .wait_timeout(TCPDUMP_TIMEOUT)?
            .with_context(|| format!("{} ignored SIGINT", self.what))?;
        let log = self.child.log();
        if !status.success() {
            bail!("{} exited {status}: {}", self.what, log.trim_end());
        }
        if let Some(line) = log.lines().find(|l| l.contains("dropped by kernel")) {
            if !line.trim_start().starts_with("0 ") {
                bail!("{}: {line}", self.what);
            }
        }
        self.frames()
    }

    /// The pcap file.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// Reads a pcap file tcpdump may still be writing; it must hold Ethernet.
pub fn read_file(path: &Path) -> Result<Vec<Frame>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if bytes.len() < 24 {
        // tcpdump has not flushed its whole file header yet.
        return Ok(Vec::new());
    }
    let parsed = pcap::parse(&bytes).with_context(|| format!("parse {}", path.display()))?;
    if parsed.linktype != LINKTYPE_ETHERNET {
        bail!("{}: link type {}, expected Ethernet (1)", path.display(), parsed.linktype);
    }
    Ok(parsed.frames)
}
