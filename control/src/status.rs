//! `xdplb status`: what the daemon reports over its control socket — the
//! services and real servers as `ipvsadm -Ln` shows them, VRRP state,
//! health and counters — and the socket itself: a Unix socket (abstract by
//! default, so scoped to the network namespace), root peers only, bounded reads.

use std::fmt::Write as _;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener as StdListener, UnixStream as StdStream};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::VirtualServer;
use crate::quorum::{QuorumDecision, QuorumState, SORRY_SERVER_WEIGHT};
use tokio::net::{UnixListener, UnixStream};

/// The default socket: abstract (`@xdplb`), so one per network namespace.
pub const DEFAULT_SOCKET: &str = "@xdplb";
/// The longest request the daemon reads.
const MAX_REQUEST: usize = 256;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything `status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    pub version: String,
    pub interface: String,
    pub xdp_mode: String,
    pub workers: usize,
    pub flow_table_size: u32,
    pub services: Vec<ServiceStatus>,
    pub vrrp: Vec<VrrpStatus>,
    /// `steer.<reason>` and `worker.<counter>` totals.
    pub counters: Vec<(String, u64)>,
    /// Each worker's busy time, by the queue it serves.
    pub worker_stats: Vec<WorkerStatus>,
    /// Reloads since start and how the last one went.
    pub reload: ReloadStatus,
}

/// One virtual service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceStatus {
    pub protocol: String,
    pub vip: String,
    pub port: u16,
    pub scheduler: String,
    /// Whether this node steers it now (its VIP is held).
    pub active: bool,
    pub real_servers: Vec<RealServerStatus>,
    /// Frames forwarded to its real servers and sorry server (counter);
    /// [`Self::fill_totals`] sums them from the servers.
    pub packets: u64,
    /// Bytes of those frames (counter).
    pub bytes: u64,
    /// `persistence_timeout` and `persistence_granularity`, if persistent.
    pub persistence: Option<PersistenceStatus>,
    /// The quorum: its state and what it was judged on.
    pub quorum: QuorumStatus,
    /// The sorry server, if configured: `weight` is `Some` while it is in the
    /// pool (in use, or at weight 0 with `sorry_server_inhibit`).
    pub sorry_server: Option<RealServerStatus>,
    /// Whether the sorry server serves instead of the real servers.
    pub sorry_server_in_use: bool,
}

/// A service's persistence, as `ipvsadm -Ln` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersistenceStatus {
    /// `persistence_timeout`, whole seconds (`persistent 360`).
    pub timeout: u64,
    /// `persistence_granularity` (`mask 255.255.255.0`; not shown at /32).
    pub netmask: String,
}

/// A service's quorum (see [`crate::quorum`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuorumStatus {
    /// Up or down.
    pub state: QuorumState,
    /// The configured `quorum`.
    pub quorum: u32,
    /// The configured `hysteresis`.
    pub hysteresis: u32,
    /// Total weight of the live real servers.
    pub live_weight: u64,
}

/// One real server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RealServerStatus {
    pub address: String,
    pub port: u16,
    /// The configured weight.
    pub configured_weight: u32,
    /// The weight new flows are scheduled by now (0 while inhibited or
    /// without a MAC); `None` when the server left the service (failed
    /// health check without inhibit_on_failure).
    pub weight: Option<u32>,
    pub mac: Option<String>,
    pub active_conn: u64,
    pub inact_conn: u64,
    /// "up", "down" or "unchecked".
    pub health: String,
    pub last_check: Option<String>,
    /// Frames forwarded to it (counter).
    pub packets: u64,
    /// Bytes of those frames (counter).
    pub bytes: u64,
    /// How long its health checks took, since start.
    pub health_latency: HealthLatency,
}

/// One worker thread's busy time: the ratio busy/total is its load.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// The RX queue it serves.
    pub queue: u32,
    /// The core it is pinned to, if pinned.
    pub core: Option<usize>,
    /// Seconds spent handling frames (counter).
    pub busy_seconds: f64,
    /// Seconds it has run (counter).
    pub total_seconds: f64,
}

impl WorkerStatus {
    /// Busy time as a percentage of run time (0 before it has run).
    pub fn busy_percent(&self) -> f64 {
        if self.total_seconds > 0.0 {
            (self.busy_seconds / self.total_seconds * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    }
}

/// Configuration reloads (SIGHUP) since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// Reloads applied.
    pub succeeded: u64,
    /// Reloads refused (the running configuration stayed).
    pub failed: u64,
    /// The last reload, `None` before the first.
    pub last: Option<LastReload>,
}

/// How the last reload went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastReload {
    /// When it finished, e.g. "2026-11-28T04:10:00Z" or "12.3 s after start".
    pub at: String,
    /// `None` when applied; why it was refused otherwise.
    pub error: Option<String>,
}

impl ReloadStatus {
    /// Whether the last reload (or, before any, the start) succeeded:
    /// `xdplb_config_last_reload_successful`.
    pub fn last_successful(&self) -> bool {
        self.last.as_ref().is_none_or(|l| l.error.is_none())
    }
}

/// Upper bounds, in seconds, of the health-check latency buckets; a last
/// bucket (`+Inf`) takes the rest. From a LAN's sub-millisecond answers to
/// keepalived-style timeouts of seconds.
pub const HEALTH_LATENCY_BOUNDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram with [`HEALTH_LATENCY_BOUNDS`]' buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative: `buckets[i]` counts those
    /// above bound `i - 1` and at most bound `i`; the last entry, those above
    /// every bound.
    pub buckets: [u64; HEALTH_LATENCY_BOUNDS.len() + 1],
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&mut self, seconds: f64) {
        let bucket = HEALTH_LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(HEALTH_LATENCY_BOUNDS.len());
        self.buckets[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// (upper bound, count in that bucket) pairs, `f64::MAX` for `+Inf`, as
    /// prometheus-client's histogram encoder takes them.
    pub fn bucket_pairs(&self) -> Vec<(f64, u64)> {
        HEALTH_LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

/// A real server's health-check latencies since start, by result; the
/// daemon keeps one per real server and calls [`Self::record`] after each check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthLatency {
    /// Checks that passed.
    pub ok: LatencyHistogram,
    /// Checks that failed (a timeout counts its full wait).
    pub failed: LatencyHistogram,
    /// The last check's latency in seconds, `None` before the first.
    pub last_seconds: Option<f64>,
    /// Whether the last check passed.
    pub last_ok: Option<bool>,
}

impl HealthLatency {
    /// Counts one check that took `latency` and passed (`ok`) or failed.
    pub fn record(&mut self, latency: Duration, ok: bool) {
        let seconds = latency.as_secs_f64();
        if ok { &mut self.ok } else { &mut self.failed }.observe(seconds);
        self.last_seconds = Some(seconds);
        self.last_ok = Some(ok);
    }
}

/// One VRRP instance.
#[derive(Debug, Clone, Serialize)]
pub struct VrrpStatus {
    pub name: String,
    pub state: String,
    pub priority: u8,
    pub vips: Vec<String>,
    pub counters: Vec<(String, u64)>,
}

impl ServiceStatus {
    /// Sets `packets` and `bytes` to the sums over the real servers and the
    /// sorry server.
    pub fn fill_totals(&mut self) {
        let servers = self.real_servers.iter().chain(&self.sorry_server);
        let (packets, bytes) = servers.fold((0u64, 0u64), |(p, b), r| {
            (p.saturating_add(r.packets), b.saturating_add(r.bytes))
        });
        self.packets = packets;
        self.bytes = bytes;
    }

    /// Fills what the configuration and the quorum decide: `persistence`,
    /// `quorum`, `sorry_server_in_use` and the sorry server's line (address,
    /// weights, health "unchecked": keepalived never checks it). Its MAC,
    /// flows and counters are the daemon's to add.
    pub fn set_quorum(&mut self, vs: &VirtualServer, decision: &QuorumDecision) {
        self.persistence = vs.persistence().map(|p| PersistenceStatus {
            timeout: p.timeout.as_secs(),
            netmask: p.netmask.to_string(),
        });
        self.quorum = QuorumStatus {
            state: decision.state,
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            live_weight: decision.live_weight,
        };
        self.sorry_server_in_use = decision.use_sorry;
        self.sorry_server = vs.sorry_server.map(|sorry| {
            let mut line = self.sorry_server.take().unwrap_or_default();
            line.address = sorry.ip.to_string();
            line.port = sorry.port;
            line.configured_weight = SORRY_SERVER_WEIGHT;
            line.weight = decision.sorry_server.weight();
            line.health = "unchecked".to_owned();
            line
        });
    }

    /// `TCP 192.168.10.110:80`, how metrics label the service.
    pub fn label(&self) -> String {
        format!("{} {}:{}", self.protocol, self.vip, self.port)
    }

    /// The servers in the pool as `ipvsadm -Ln` lists them: the real servers,
    /// then the sorry server while it is in the pool.
    fn destinations(&self) -> impl Iterator<Item = &RealServerStatus> {
        self.real_servers.iter().chain(self.sorry_server.iter().filter(|s| s.weight.is_some()))
    }
}

/// `0.42 ms`, `1.5 s`: a latency for people.
fn human_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

impl StatusReport {
    /// The text `xdplb status` prints: `ipvsadm -Ln` first, then services,
    /// VRRP, real servers, workers, the last reload and the non-zero counters.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "IP Virtual Server version xdplb {} (size={}) on {} ({} XDP, {} worker(s))",
            self.version, self.flow_table_size, self.interface, self.xdp_mode, self.workers
        );
        let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Flags");
        let _ =
            writeln!(out, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
        for s in &self.services {
            // ipvsadm: "wrr persistent 360 mask 255.255.255.0", the mask only when not /32.
            let persistent = s.persistence.as_ref().map_or_else(String::new, |p| {
                if p.netmask == "255.255.255.255" {
                    format!(" persistent {}", p.timeout)
                } else {
                    format!(" persistent {} mask {}", p.timeout, p.netmask)
                }
            });
            let flags = if s.active { "" } else { " (standby: VIP not held)" };
            let _ = writeln!(
                out,
                "{:<4} {}:{} {}{persistent}{flags}",
                s.protocol, s.vip, s.port, s.scheduler
            );
            for r in s.destinations() {
                let weight = r.weight.map_or_else(|| "-".to_owned(), |w| w.to_string());
                let _ = writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<6} {:<10} {}",
                    format!("{}:{}", r.address, r.port),
                    "Route",
                    weight,
                    r.active_conn,
                    r.inact_conn
                );
            }
        }
        if !self.services.is_empty() {
            let _ = writeln!(out, "\nServices");
            for s in &self.services {
                let q = &s.quorum;
                let sorry = match (&s.sorry_server, s.sorry_server_in_use) {
                    (Some(r), true) => format!(", sorry server {}:{} in use", r.address, r.port),
                    (Some(r), false) => {
                        format!(", sorry server {}:{} standing by", r.address, r.port)
                    }
                    (None, _) => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  {}: quorum {} (live weight {}, quorum {}, hysteresis {}){sorry}; \
                     {} packets, {} bytes",
                    s.label(),
                    q.state.name(),
                    q.live_weight,
                    q.quorum,
                    q.hysteresis,
                    s.packets,
                    s.bytes
                );
            }
        }
        if !self.vrrp.is_empty() {
            let _ = writeln!(out, "\nVRRP");
            for v in &self.vrrp {
                let _ = writeln!(
                    out,
                    "  {}: {} priority {} vips {}",
                    v.name,
                    v.state,
                    v.priority,
                    v.vips.join(", ")
                );
            }
        }
        let _ = writeln!(out, "\nReal servers");
        for s in &self.services {
            let sorry = s.sorry_server.iter().map(|r| (r, " (sorry server)"));
            for (r, role) in s.real_servers.iter().map(|r| (r, "")).chain(sorry) {
                let latency = r
                    .health_latency
                    .last_seconds
                    .map_or_else(String::new, |l| format!(", check took {}", human_seconds(l)));
                let _ = writeln!(
                    out,
                    "  {}:{}{role} ({} {}:{}): health {}, weight {}/{}, MAC {}{}{latency}, \
                     {} packets, {} bytes",
                    r.address,
                    r.port,
                    s.protocol,
                    s.vip,
                    s.port,
                    r.health,
                    r.weight.map_or_else(|| "removed".to_owned(), |w| w.to_string()),
                    r.configured_weight,
                    r.mac.as_deref().unwrap_or("unresolved"),
                    r.last_check.as_ref().map(|c| format!(", last check: {c}")).unwrap_or_default(),
                    r.packets,
                    r.bytes
                );
            }
        }
        if !self.worker_stats.is_empty() {
            let _ = writeln!(out, "\nWorkers");
            for w in &self.worker_stats {
                let core = w.core.map_or_else(|| "unpinned".to_owned(), |c| format!("core {c}"));
                let _ = writeln!(
                    out,
                    "  queue {} ({core}): busy {:.1}% of {:.1} s",
                    w.queue,
                    w.busy_percent(),
                    w.total_seconds
                );
            }
        }
        let r = &self.reload;
        let last = match &r.last {
            None => "none since start".to_owned(),
            Some(LastReload { at, error: None }) => format!("last at {at}: ok"),
            Some(LastReload { at, error: Some(e) }) => format!("last at {at}: failed: {e}"),
        };
        let _ = writeln!(out, "\nReload: {last} ({} ok, {} failed)", r.succeeded, r.failed);
        let _ = writeln!(out, "\nCounters (non-zero)");
        for (name, value) in self.counters.iter().filter(|(_, v)| *v > 0) {
            let _ = writeln!(out, "  {name} {value}");
        }
        out
    }
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("control socket {socket}: {source}")]
    Socket { socket: String, source: io::Error },
    #[error("control socket {socket}: {reason}")]
    Refused { socket: String, reason: String },
}

fn address(socket: &str) -> io::Result<SocketAddr> {
    match socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(socket),
    }
}

/// Binds the control socket (`@name` = abstract). A stale path socket
/// left by a crash is replaced.
pub fn listen(socket: &str) -> Result<UnixListener, StatusError> {
    let err = |source| StatusError::Socket { socket: socket.to_owned(), source };
    let addr = address(socket).map_err(err)?;
    if !socket.starts_with('@') && StdStream::connect_addr(&addr).is_err() {
        let _ = std::fs::remove_file(socket);
    }
    let listener = StdListener::bind_addr(&addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    UnixListener::from_std(listener).map_err(err)
}

/// A request the daemon understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `status`: the text report.
    Text,
    /// `status json`: the report as JSON.
    Json,
    /// `reload`: re-read the configuration file; the daemon answers with
    /// the changes made, or `error: ` and why nothing changed.
    Reload,
}

/// Reads one request from a connected client, after checking it is root.
/// Returns `None` (having answered with the reason) for anything else.
pub async fn read_request(stream: &mut UnixStream) -> Option<Request> {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    if uid != Some(0) {
        let _ = stream.write_all(b"error: the control socket is for root only\n").await;
        return None;
    }
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while len < buf.len() {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    len += n;
                    if buf[..len].contains(&b'\n') {
                        break;
                    }
                }
            }
        }
    })
    .await;
    if read.is_err() {
        return None;
    }
    match std::str::from_utf8(&buf[..len]).map(str::trim) {
        Ok("status") => Some(Request::Text),
        Ok("status json") => Some(Request::Json),
        Ok("reload") => Some(Request::Reload),
        _ => {
            let _ = stream
                .write_all(
                    b"error: unknown request (want \"status\", \"status json\" or \"reload\")\n",
                )
                .await;
            None
        }
    }
}

/// Answers a request with the report.
pub async fn answer(stream: &mut UnixStream, request: Request, report: &StatusReport) {
    let body = match request {
        Request::Text => report.to_text(),
        Request::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Request::Reload => "error: reload is answered by the control loop\n".to_owned(),
    };
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Answers a reload request with its outcome: the changes, one per line,
/// or `error: ` and why the running configuration stayed.
pub async fn answer_reload(stream: &mut UnixStream, outcome: &Result<Vec<String>, String>) {
    let body = match outcome {
        Ok(changes) if changes.is_empty() => "reloaded: no service or weight changed\n".to_owned(),
        Ok(changes) => format!("reloaded:\n{}\n", changes.join("\n")),
        Err(why) => format!("error: reload refused, nothing changed: {why}\n"),
    };
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The client side: asks the daemon behind `socket` and returns its answer.
pub fn query(socket: &str, json: bool) -> Result<String, StatusError> {
    let request: &[u8] = if json { b"status json\n" } else { b"status\n" };
    ask(socket, request, Duration::from_secs(10))
}

/// The client side of `xdplb reload`: the daemon's list of changes, or
/// [`StatusError::Refused`] with why nothing changed.
pub fn reload(socket: &str) -> Result<String, StatusError> {
    // Applying waits for netlink and live checks: allow more than a status read.
    ask(socket, b"reload\n", Duration::from_secs(60))
}

fn ask(socket: &str, request: &[u8], timeout: Duration) -> Result<String, StatusError> {
    use std::io::{Read, Write};
    let err = |source| StatusError::Socket { socket: socket.to_owned(), source };
    let addr = address(socket).map_err(err)?;
    let mut stream = StdStream::connect_addr(&addr).map_err(|source| StatusError::Socket {
        socket: socket.to_owned(),
        source: io::Error::new(
            source.kind(),
            format!("{source} (is `xdplb run` running in this network namespace?)"),
        ),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(err)?;
    // The daemon may refuse (and close) before reading: its answer is what counts.
    let written = stream.write_all(request);
    let mut out = String::new();
    let read = stream.read_to_string(&mut out);
    if out.is_empty() {
        written.and(read).map_err(err)?;
    }
    if let Some(reason) = out.strip_prefix("error: ") {
        return Err(StatusError::Refused {
            socket: socket.to_owned(),
            reason: reason.trim().to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn server(address: &str, weight: Option<u32>, packets: u64, bytes: u64) -> RealServerStatus {
        RealServerStatus {
            address: address.into(),
            port: 80,
            configured_weight: 1,
            weight,
            health: "up".into(),
            packets,
            bytes,
            ..RealServerStatus::default()
        }
    }

    /// A report with every field the daemon fills: a persistent service on
    /// its sorry server, a busy worker, a failed reload.
    pub(crate) fn full_report() -> StatusReport {
        let mut web1 = server("192.168.10.103", Some(0), 10, 1500);
        web1.health = "down".into();
        web1.health_latency.record(Duration::from_micros(400), true);
        web1.health_latency.record(Duration::from_secs(3), false);
        let web2 = server("192.168.10.104", None, 5, 700);
        let sorry = server("192.168.10.200", Some(1), 2, 120);
        let mut service = ServiceStatus {
            protocol: "TCP".into(),
            vip: "192.168.10.110".into(),
            port: 80,
            scheduler: "wrr".into(),
            active: true,
            real_servers: vec![web1, web2],
            persistence: Some(PersistenceStatus { timeout: 360, netmask: "255.255.255.0".into() }),
            quorum: QuorumStatus {
                state: QuorumState::Down,
                quorum: 2,
                hysteresis: 1,
                live_weight: 0,
            },
            sorry_server: Some(sorry),
            sorry_server_in_use: true,
            ..ServiceStatus::default()
        };
        service.fill_totals();
        StatusReport {
            version: "0.1.0".into(),
            interface: "eth0".into(),
            xdp_mode: "generic".into(),
            workers: 1,
            flow_table_size: 65536,
            services: vec![service],
            worker_stats: vec![WorkerStatus {
                queue: 0,
                core: Some(1),
                busy_seconds: 2.5,
                total_seconds: 10.0,
            }],
            reload: ReloadStatus {
                succeeded: 2,
                failed: 1,
                last: Some(LastReload {
                    at: "12.0 s after start".into(),
                    error: Some("t.toml:4: quorum 0 is out of range (1-4294967295)".into()),
                }),
            },
            ..StatusReport::default()
        }
    }

    #[test]
    fn text_shows_persistence_quorum_sorry_server_workers_and_reload() {
        let text = full_report().to_text();
        for line in [
            "TCP  192.168.10.110:80 wrr persistent 360 mask 255.255.255.0",
            "  -> 192.168.10.103:80            Route   0      0          0",
            "  -> 192.168.10.104:80            Route   -      0          0",
            // The sorry server is a destination like the others while in the pool.
            "  -> 192.168.10.200:80            Route   1      0          0",
            "  TCP 192.168.10.110:80: quorum down (live weight 0, quorum 2, hysteresis 1), \
             sorry server 192.168.10.200:80 in use; 17 packets, 2320 bytes",
            "  192.168.10.103:80 (TCP 192.168.10.110:80): health down, weight 0/1, MAC \
             unresolved, check took 3.00 s, 10 packets, 1500 bytes",
            "  192.168.10.200:80 (sorry server) (TCP 192.168.10.110:80): health up, weight 1/1, \
             MAC unresolved, 2 packets, 120 bytes",
            "  queue 0 (core 1): busy 25.0% of 10.0 s",
            "Reload: last at 12.0 s after start: failed: t.toml:4: quorum 0 is out of range \
             (1-4294967295) (2 ok, 1 failed)",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn text_leaves_out_a_host_mask_and_an_unused_sorry_server() {
        let mut report = full_report();
        let s = &mut report.services[0];
        s.persistence = Some(PersistenceStatus { timeout: 50, netmask: "255.255.255.255".into() });
        s.sorry_server_in_use = false;
        s.sorry_server.as_mut().unwrap().weight = None;
        report.reload = ReloadStatus::default();
        let text = report.to_text();
        assert!(text.lines().any(|l| l == "TCP  192.168.10.110:80 wrr persistent 50"), "{text}");
        assert!(!text.contains("-> 192.168.10.200"), "{text}");
        assert!(text.contains("sorry server 192.168.10.200:80 standing by"), "{text}");
        assert!(text.contains("\nReload: none since start (0 ok, 0 failed)\n"), "{text}");
        // Without persistence, the scheduler ends the line, as in ipvsadm.
        report.services[0].persistence = None;
        assert!(report.to_text().lines().any(|l| l == "TCP  192.168.10.110:80 wrr"));
    }

    #[test]
    fn json_carries_every_new_field() {
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&full_report()).unwrap()).unwrap();
        let service = &json["services"][0];
        assert_eq!(service["persistence"]["timeout"], 360);
        assert_eq!(service["persistence"]["netmask"], "255.255.255.0");
        assert_eq!(service["quorum"]["state"], "down");
        assert_eq!(service["sorry_server_in_use"], true);
        assert_eq!(service["sorry_server"]["address"], "192.168.10.200");
        assert_eq!(
            (service["packets"].as_u64(), service["bytes"].as_u64()),
            (Some(17), Some(2320))
        );
        let latency = &service["real_servers"][0]["health_latency"];
        assert_eq!(latency["ok"]["count"], 1);
        assert_eq!(latency["failed"]["buckets"].as_array().unwrap().len(), 15);
        assert_eq!(latency["last_ok"], false);
        assert_eq!(json["worker_stats"][0]["busy_seconds"], 2.5);
        assert_eq!(json["reload"]["failed"], 1);
        assert!(json["reload"]["last"]["error"].as_str().unwrap().contains("quorum 0"));
    }

    #[test]
    fn set_quorum_fills_persistence_quorum_and_the_sorry_server_line() {
        let text = "[[virtual_server]]\nvip = \"10.0.0.1\"\nport = 80\n\
                    persistence_timeout = 60\npersistence_granularity = \"255.255.0.0\"\n\
                    quorum = 2\nsorry_server = { ip = \"10.0.0.9\" }\nsorry_server_inhibit = true\n\
                    [[virtual_server.real_server]]\nip = \"10.0.0.2\"\nweight = 2\n\
                    [dataplane]\ninterface = \"eth0\"\n";
        let config = crate::config::parse(text, "t.toml").unwrap();
        let vs = &config.virtual_servers[0];
        let mut status = ServiceStatus::default();
        let down =
            crate::quorum::evaluate(&vs.quorum_inputs(|_| true), &vs.quorum_settings(), None);
        status.set_quorum(vs, &down);
        assert_eq!(
            status.persistence,
            Some(PersistenceStatus { timeout: 60, netmask: "255.255.0.0".into() })
        );
        assert_eq!(
            status.quorum,
            QuorumStatus { state: QuorumState::Down, quorum: 2, hysteresis: 0, live_weight: 0 }
        );
        assert!(status.sorry_server_in_use);
        let sorry = status.sorry_server.as_ref().unwrap();
        assert_eq!((sorry.address.as_str(), sorry.port, sorry.weight), ("10.0.0.9", 80, Some(1)));
        assert_eq!(sorry.health, "unchecked");
        // Quorum back: with sorry_server_inhibit the sorry server stays at weight 0,
        // and what the daemon added to its line is kept.
        status.sorry_server.as_mut().unwrap().packets = 7;
        let up = crate::quorum::evaluate(
            &vs.quorum_inputs(|_| false),
            &vs.quorum_settings(),
            Some(QuorumState::Down),
        );
        status.set_quorum(vs, &up);
        assert!(!status.sorry_server_in_use);
        let sorry = status.sorry_server.as_ref().unwrap();
        assert_eq!((sorry.weight, sorry.packets), (Some(0), 7));
        assert_eq!((status.quorum.state, status.quorum.live_weight), (QuorumState::Up, 2));
    }

    #[test]
    fn busy_percent_is_a_ratio_and_zero_before_running() {
        let w = WorkerStatus { busy_seconds: 1.0, total_seconds: 4.0, ..WorkerStatus::default() };
        assert_eq!(w.busy_percent(), 25.0);
        assert_eq!(WorkerStatus::default().busy_percent(), 0.0);
    }

    #[test]
    fn the_last_reload_decides_success() {
        let mut r = ReloadStatus::default();
        assert!(r.last_successful(), "the start itself succeeded");
        r.last = Some(LastReload { at: "now".into(), error: Some("bad".into()) });
        assert!(!r.last_successful());
        r.last = Some(LastReload { at: "later".into(), error: None });
        assert!(r.last_successful());
    }

    #[test]
    fn latencies_land_in_their_bucket_by_result() {
        let mut h = HealthLatency::default();
        h.record(Duration::from_micros(500), true); // on the first bound: le="0.0005"
        h.record(Duration::from_millis(30), true);
        h.record(Duration::from_secs(60), false); // beyond every bound: +Inf
        assert_eq!(h.ok.buckets[0], 1);
        assert_eq!(h.ok.buckets[6], 1, "30 ms is in (25 ms, 50 ms]");
        assert_eq!(h.failed.buckets[HEALTH_LATENCY_BOUNDS.len()], 1);
        assert_eq!((h.ok.count, h.failed.count), (2, 1));
        assert!((h.ok.sum_seconds - 0.0305).abs() < 1e-9);
        assert_eq!((h.last_seconds, h.last_ok), (Some(60.0), Some(false)));
        let pairs = h.ok.bucket_pairs();
        assert_eq!(pairs.len(), HEALTH_LATENCY_BOUNDS.len() + 1);
        assert_eq!(pairs.last(), Some(&(f64::MAX, 0)));
    }

    proptest! {
        /// Every observation lands in exactly one bucket, the one its bounds name.
        #[test]
        fn histogram_buckets_partition_the_observations(
            micros in proptest::collection::vec(0u64..20_000_000, 0..50),
        ) {
            let mut h = LatencyHistogram::default();
            for m in &micros {
                h.observe(Duration::from_micros(*m).as_secs_f64());
            }
            prop_assert_eq!(h.buckets.iter().sum::<u64>(), micros.len() as u64);
            prop_assert_eq!(h.count, micros.len() as u64);
            let mut lower = f64::NEG_INFINITY;
            for (i, (upper, n)) in h.bucket_pairs().into_iter().enumerate() {
                let expected = micros
                    .iter()
                    .map(|m| Duration::from_micros(*m).as_secs_f64())
                    .filter(|s| *s > lower && *s <= upper)
                    .count() as u64;
                prop_assert_eq!(n, expected, "bucket {}", i);
                lower = upper;
            }
        }
    }
}
