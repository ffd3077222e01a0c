//! Running the real `xdplb` binary as the device under test: a
//! configuration for the bench topology (one VIP service, the two fake real
//! servers), the process in the DUT's namespace pinned to the DUT's core,
//! ready when it logs "data plane ready", stopped with SIGTERM and its final
//! counters read back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::gen::Traffic;
use crate::topo::{Side, REAL_SERVERS, VIP};

/// The UDP/TCP port of the bench's virtual service.
pub const SERVICE_PORT: u16 = 5001;
const READY: &str = "data plane ready";
const FINAL_COUNTERS: &str = "xdplb: final counters:";

/// How xdplb's workers wait for frames (`[dataplane] poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Poll {
    /// Spin always.
    Busy,
    /// Spin while busy, sleep in poll(2) when idle.
    Adaptive,
    /// Spin always, and run the queue's NAPI receive processing from the
    /// worker (preferred busy polling, as testpmd's af_xdp driver does).
    BusyNapi,
}

impl Poll {
    /// The config keyword.
    pub fn name(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Adaptive => "adaptive",
            Self::BusyNapi => "busy_napi",
        }
    }
}

/// Why xdplb could not be run.
#[derive(Debug, thiserror::Error)]
pub enum XdplbError {
    /// The binary is not where it was looked for.
    #[error(
        "the xdplb binary is not at {0}: build the root package first (`cargo build` or \
         `cargo build --release` in the workspace), or name it with --xdplb PATH / XDPLB_BIN"
    )]
    NotBuilt(PathBuf),
    /// The configuration file could not be written.
    #[error("writing {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// It could not be started, or did not become ready.
    #[error("xdplb did not start: {reason}; its last output:\n{log}")]
    Start {
        /// What happened.
        reason: String,
        /// The last lines it printed.
        log: String,
    },
    /// `xdplb status --json` failed or said something unexpected.
    #[error("xdplb status --json: {0}")]
    Status(String),
    /// It did not stop cleanly.
    #[error("xdplb did not stop cleanly: {reason}; its last output:\n{log}")]
    Stop {
        /// What happened.
        reason: String,
        /// The last lines it printed.
        log: String,
    },
}

/// Settings of one xdplb run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdplbSettings {
    /// The binary.
    pub binary: PathBuf,
    /// Worker polling.
    pub poll: Poll,
    /// Flow-table entries per worker.
    pub flow_table_size: u32,
    /// The cores xdplb's threads may run on; worker i is pinned to
    /// `cores[i % len]` (`[dataplane] cores`).
    pub cores: Vec<usize>,
    /// Workers (= RX queues served, 0..workers).
    pub workers: u32,
    /// UDP or TCP service.
    pub traffic: Traffic,
}

/// Finds the xdplb binary: `explicit`, else $XDPLB_BIN, else next to the
/// running executable (target/PROFILE/), else one directory up (a test
/// executable lives in target/PROFILE/deps/).
pub fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf, XdplbError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(XdplbError::NotBuilt(path.to_owned()))
        };
    }
    if let Some(path) = std::env::var_os("XDPLB_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(XdplbError::NotBuilt(path)) };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("xdplb"), dir.parent().unwrap_or(dir).join("xdplb")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| XdplbError::NotBuilt(candidates[0].clone()))
}

/// The configuration for the bench topology.
pub fn config_text(settings: &XdplbSettings, interface: &str) -> String {
    let protocol = settings.traffic.protocol();
    let mut text = format!(
        "# Written by xdplb-bench for one run; removed afterwards.\n\
         [[virtual_server]]\n\
         vip = \"{VIP}\"\nport = {SERVICE_PORT}\nprotocol = \"{protocol}\"\n\
         lvs_sched = \"wrr\"\nlvs_method = \"DR\"\n"
    );
    for rs in REAL_SERVERS {
        text.push_str(&format!(
            "\n[[virtual_server.real_server]]\nip = \"{rs}\"\nport = {SERVICE_PORT}\nweight = 1\n"
        ));
    }
    text.push_str(&format!(
        "\n[dataplane]\ninterface = \"{interface}\"\nxdp_mode = \"native\"\nqueues = {}\n\
         cores = [{}]\npoll = \"{}\"\nflow_table_size = {}\n",
        settings.workers,
        cpu_list(&settings.cores),
        settings.poll.name(),
        settings.flow_table_size
    ));
    text
}

/// "1, 0": the cores as a TOML array's inside.
fn cpu_list(cores: &[usize]) -> String {
    cores.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// One worker's load from `xdplb status --json` (`worker_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct WorkerBusy {
    /// The RX queue it serves.
    pub queue: u32,
    /// Seconds it spent handling frames since it started.
    pub busy_seconds: f64,
    /// Seconds it has run.
    pub total_seconds: f64,
}

/// The `worker_stats` of `xdplb status --json` output.
pub fn parse_worker_stats(json: &str) -> Result<Vec<WorkerBusy>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Status {
        worker_stats: Vec<WorkerBusy>,
    }
    Ok(serde_json::from_str::<Status>(json)?.worker_stats)
}

/// A running xdplb; killed on drop if [`Self::stop`] was not called.
#[derive(Debug)]
pub struct XdplbProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    config: PathBuf,
    binary: PathBuf,
    netns: String,
}

impl XdplbProcess {
    /// Writes the configuration, starts xdplb in the DUT's namespace pinned
    /// to `settings.cores`, and waits (at most `timeout`) for it to be ready.
    pub fn start(
        settings: &XdplbSettings,
        dut: &Side,
        timeout: Duration,
    ) -> Result<Self, XdplbError> {
        let config = std::env::temp_dir().join(format!("{}-xdplb.toml", dut.netns));
        std::fs::write(&config, config_text(settings, &dut.ifname))
            .map_err(|source| XdplbError::Config { path: config.clone(), source })?;
        let spawned = Command::new("ip")
            .args(["netns", "exec", &dut.netns, "taskset", "-c"])
            .arg(cpu_list(&settings.cores).replace(' ', ""))
            .arg(&settings.binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&config);
                return Err(XdplbError::Start {
                    reason: format!("spawning: {e}"),
                    log: String::new(),
                });
            }
        };
        let (tx, lines) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut process = Self {
            child,
            lines,
            log: Vec::new(),
            config,
            binary: settings.binary.clone(),
            netns: dut.netns.clone(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            match process.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let ready = line.contains(READY);
                    process.log.push(line);
                    if ready {
                        return Ok(process);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(XdplbError::Start {
                        reason: format!("it exited ({status})"),
                        log: process.tail(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(XdplbError::Start {
                        reason: format!("no \"{READY}\" within {timeout:?}"),
                        log: process.tail(),
                    });
                }
            }
        }
    }

    /// The process id (`ip netns exec` and `taskset` exec into xdplb).
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    /// Each worker's busy time so far, from `xdplb status --json` (through
    /// its control socket in the DUT's namespace).
    pub fn worker_busy(&self) -> Result<Vec<WorkerBusy>, XdplbError> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(&self.binary)
            .args(["status", "--json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| XdplbError::Status(format!("spawning: {e}")))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(XdplbError::Status(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        parse_worker_stats(&text).map_err(|e| XdplbError::Status(format!("{e} in {text:.200}")))
    }

    /// Stops it with SIGTERM and returns its final counters.
    pub fn stop(mut self) -> Result<BTreeMap<String, u64>, XdplbError> {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let status = self
            .child
            .wait()
            .map_err(|e| XdplbError::Stop { reason: format!("waiting: {e}"), log: self.tail() })?;
        // The reader thread ends with the pipe; collect what it read.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        if !status.success() {
            return Err(XdplbError::Stop {
                reason: format!("it exited {status}"),
                log: self.tail(),
            });
        }
        Ok(self.log.iter().rev().find_map(|l| parse_final_counters(l)).unwrap_or_default())
    }

    fn tail(&self) -> String {
        let start = self.log.len().saturating_sub(20);
        self.log[start..].join("\n")
    }
}

impl Drop for XdplbProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The `k=v` pairs of xdplb's "final counters" line.
pub fn parse_final_counters(line: &str) -> Option<BTreeMap<String, u64>> {
    let rest = &line[line.find(FINAL_COUNTERS)? + FINAL_COUNTERS.len()..];
    Some(
        rest.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn final_counters_are_parsed() {
        let line =
            "xdplb: final counters: worker.rx=10 worker.forward.new_flow=3 steer.redirected=10 bad";
        let counters = parse_final_counters(line).unwrap();
        assert_eq!(counters["worker.rx"], 10);
        assert_eq!(counters["worker.forward.new_flow"], 3);
        assert_eq!(counters.len(), 3);
        assert_eq!(parse_final_counters("something else"), None);
    }

    /// The configuration written for a run is one xdplb accepts.
    #[test]
    fn config_is_valid_for_xdplb() {
        for traffic in [Traffic::Udp, Traffic::TcpSyn] {
            let settings = XdplbSettings {
                binary: PathBuf::from("xdplb"),
                poll: Poll::Busy,
                flow_table_size: 262_144,
                cores: vec![1],
                workers: 1,
                traffic,
            };
            let text = config_text(&settings, "xb1d");
            let config = control::config::parse(&text, "bench.toml").unwrap();
            assert_eq!(config.dataplane.interface, "xb1d");
            assert_eq!(config.dataplane.flow_table_size, 262_144);
            assert_eq!(config.dataplane.cores, Some(vec![1]));
            assert_eq!(config.virtual_servers[0].real_servers.len(), 2);
        }
        let two = XdplbSettings {
            binary: PathBuf::from("xdplb"),
            poll: Poll::Adaptive,
            flow_table_size: 65_536,
            cores: vec![1, 0],
            workers: 2,
            traffic: Traffic::TcpSyn,
        };
        let config = control::config::parse(&config_text(&two, "xb1d"), "bench.toml").unwrap();
        assert_eq!(config.dataplane.cores, Some(vec![1, 0]));
        assert_eq!(config.dataplane.queues, Some(2));
    }

    #[test]
    fn worker_stats_are_read_from_status_json() {
        let json = r#"{"services": [], "worker_stats": [
            {"queue": 0, "core": 1, "busy_seconds": 2.5, "total_seconds": 10.0},
            {"queue": 1, "core": null, "busy_seconds": 0.0, "total_seconds": 10.0}]}"#;
        let stats = parse_worker_stats(json).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[1].queue, stats[1].busy_seconds), (1, 0.0));
        assert_eq!(stats[0].busy_seconds, 2.5);
        assert!(parse_worker_stats("{}").is_err());
    }
}
