//! What the soak test (tests/soak.rs) needs beyond the lab: a UDP server on
//! the web servers that answers with its host name, a paced HTTP and UDP
//! load that logs every request with its times, resident memory sampled
//! with a least-squares slope, the AF_XDP sockets' own statistics (`ss
//! --xdp`), and every real server's row of `status --json`.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd;
use crate::faults::{Json, Status};
use crate::http;
use crate::lab::{Host, Lab, POLL};
use crate::netns;
use crate::process::ChildGuard;
use crate::wait::wait_until;

/// The UDP service's port, on the VIP and on the real servers.
pub const UDP_PORT: u16 = 5300;
/// How long a UDP request waits for its answer before it counts as failed.
pub const UDP_TIMEOUT: Duration = Duration::from_secs(2);
/// The UDP client's source ports: each request binds the next one, so every
/// datagram is a flow of its own until the range wraps (at 100 requests a
/// second, after 400 s: far longer than any UDP flow timeout), which keeps
/// "one request, one new flow" true. Random ephemeral ports would repeat
/// within a flow timeout now and then and join an existing flow.
const UDP_PORTS: std::ops::RangeInclusive<u16> = 20000..=59999;
/// Failure messages kept per protocol (the count is kept for all).
const FAILURE_SAMPLES: usize = 50;

/// The lab's UDP server: bound to the VIP (which the web servers carry on
/// `lo`), so that its answers leave from the VIP as DSR requires; answers
/// each datagram with `<name> <datagram>`.
const UDP_SERVER_PY: &str = "\
import socket, sys
name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((addr, port))
sys.stderr.write(f'{name} answering UDP on {addr}:{port}\\n')
sys.stderr.flush()
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(name.encode() + b' ' + data, peer)
";

impl Lab {
    /// Starts a UDP server on `host` bound to VIP:`port` that answers each
    /// datagram with `<host name> <datagram>`, and waits until it answers a
    /// request sent from `host` itself (over `lo`, not through a director).
    pub fn start_udp_server(&self, host: Host, port: u16) -> Result<ChildGuard> {
        let argv = [
            python()?.to_owned(),
            "-c".to_owned(),
            UDP_SERVER_PY.to_owned(),
            host.name().to_owned(),
            self.vip().to_string(),
            port.to_string(),
        ];
        let mut guard = self.spawn(host, &argv)?;
        let to = SocketAddrV4::new(self.vip(), port);
        let what = format!("the UDP server on {} to answer on {to}", host.name());
        wait_until(&what, Duration::from_secs(20), POLL, || {
            if let Some(status) = guard.try_wait()? {
                bail!("the UDP server exited ({status}): {}", guard.log());
            }
            let name = host.name();
            self.run_in(host, move || {
                let socket = UdpSocket::bind("0.0.0.0:0")?;
                Ok(udp_exchange(&socket, to, b"ready", Duration::from_millis(500))
                    .is_ok_and(|answer| answer == format!("{name} ready")))
            })
        })?;
        Ok(guard)
    }

    /// The statistics of every AF_XDP socket in `host`'s namespace, as the
    /// kernel keeps them (`ss --xdp -a -e -n`, sock_diag `XDP_SHOW_STATS`).
    /// Empty when ss shows none (no socket, or an ss without them).
    pub fn xsk_statistics(&self, host: Host) -> Result<Vec<XskStats>> {
        let out = self.exec(host, &["ss", "--xdp", "-a", "-e", "-n"])?;
        Ok(parse_ss_xdp(&out))
    }
}

/// The Python interpreter behind `python3`, resolved once (as the lab does
/// for its web servers: a pyenv shim would run in front of each server).
fn python() -> Result<&'static str> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            cmd::run(&["python3", "-c", "import sys; print(sys.executable)"])
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{e:#}"))
        })
        .as_deref()
        .map_err(|e| anyhow!("python3 is needed for the UDP server: {e}"))
}

/// Sends `payload` on `socket` to `to` and waits up to `timeout` for one answer.
fn udp_exchange(
    socket: &UdpSocket,
    to: SocketAddrV4,
    payload: &[u8],
    timeout: Duration,
) -> Result<String> {
    socket.connect(to).with_context(|| format!("connect a UDP socket to {to}"))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(payload).with_context(|| format!("send to {to}"))?;
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).with_context(|| format!("no answer from {to} in {timeout:?}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The protocols of the soak's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// `GET /` over a new TCP connection.
    Http,
    /// One datagram from a new source port, one answer.
    Udp,
}

impl Proto {
    /// `HTTP` or `UDP`.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Http => "HTTP",
            Proto::Udp => "UDP",
        }
    }
}

/// One request of the load: when it started and ended, and who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Before the connect (HTTP) or the send (UDP).
    pub start: Instant,
    /// After the answer, or the failure.
    pub end: Instant,
    /// The web server that answered; `None`: the request failed.
    pub answered_by: Option<Host>,
}

/// A span of time in which failures are allowed (around a failover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first instant of the span.
    pub from: Instant,
    /// The last instant of the span.
    pub to: Instant,
}

impl Window {
    /// Whether a request that ran from `start` to `end` overlaps the span.
    pub fn overlaps(&self, start: Instant, end: Instant) -> bool {
        start <= self.to && end >= self.from
    }
}

/// Every request one protocol's client made, in order.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// The protocol.
    pub proto: Proto,
    /// Every request.
    pub requests: Vec<Request>,
    /// The first failures' messages, with when they ended.
    pub failure_samples: Vec<(Instant, String)>,
}

impl RequestLog {
    fn new(proto: Proto) -> Self {
        Self { proto, requests: Vec::new(), failure_samples: Vec::new() }
    }

    fn record(&mut self, start: Instant, outcome: Result<Host>) {
        let end = Instant::now();
        let answered_by = match outcome {
            Ok(host) => Some(host),
            Err(e) => {
                if self.failure_samples.len() < FAILURE_SAMPLES {
                    self.failure_samples.push((end, format!("{e:#}")));
                }
                None
            }
        };
        self.requests.push(Request { start, end, answered_by });
    }

    /// Requests made.
    pub fn sent(&self) -> usize {
        self.requests.len()
    }

    /// Requests answered by a web server.
    pub fn answered(&self) -> usize {
        self.requests.iter().filter(|r| r.answered_by.is_some()).count()
    }

    /// Requests that failed.
    pub fn failed(&self) -> usize {
        self.sent() - self.answered()
    }

    /// Answers per web server name.
    pub fn by_server(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for host in self.requests.iter().filter_map(|r| r.answered_by) {
            *out.entry(host.name()).or_insert(0) += 1;
        }
        out
    }

    /// The failed requests that overlap none of `windows`.
    pub fn failed_outside(&self, windows: &[Window]) -> Vec<Request> {
        self.requests
            .iter()
            .filter(|r| r.answered_by.is_none())
            .filter(|r| !windows.iter().any(|w| w.overlaps(r.start, r.end)))
            .copied()
            .collect()
    }

    /// The requests (answered or not) that overlap `window`.
    pub fn overlapping(&self, window: Window) -> usize {
        self.requests.iter().filter(|r| window.overlaps(r.start, r.end)).count()
    }

    /// The answered requests that overlap none of `windows`.
    pub fn answered_outside(&self, windows: &[Window]) -> usize {
        self.requests
            .iter()
            .filter(|r| r.answered_by.is_some())
            .filter(|r| !windows.iter().any(|w| w.overlaps(r.start, r.end)))
            .count()
    }

    /// The requests that overlap none of `windows`.
    pub fn outside(&self, windows: &[Window]) -> usize {
        self.requests.iter().filter(|r| !windows.iter().any(|w| w.overlaps(r.start, r.end))).count()
    }
}

/// Paced traffic from one namespace: one HTTP client and one UDP client,
/// each on its own thread, each making `rate` requests a second at most
/// (one after another; a slow or failed request delays the next, it never
/// causes a burst to catch up).
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    done: [Arc<AtomicUsize>; 2],
    failed: [Arc<AtomicUsize>; 2],
    http: Option<JoinHandle<Result<RequestLog>>>,
    udp: Option<JoinHandle<Result<RequestLog>>>,
}

impl Drop for Load {
    /// A test that fails half-way leaves no client running against a torn-down lab.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Load {
    /// Starts GETs of `url` and datagrams to `udp_to` from `host`, `rate` a second each.
    pub fn start(lab: &Lab, host: Host, url: &str, udp_to: SocketAddrV4, rate: u32) -> Self {
        let period = Duration::from_secs(1) / rate.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let done = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let failed = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let (stop_h, done_h, failed_h, url) =
            (stop.clone(), done[0].clone(), failed[0].clone(), url.to_owned());
        let http = netns::spawn_in(lab.ns(host), move || {
            let mut log = RequestLog::new(Proto::Http);
            let mut pacer = Pacer::new(period);
            while !stop_h.load(Ordering::Relaxed) {
                pacer.wait();
                let start = Instant::now();
                let outcome = http::get(&url).and_then(|r| {
                    let name = r.body.trim();
                    match Host::web_by_name(name) {
                        Some(host) if r.status == 200 => Ok(host),
                        _ => bail!("status {} body {name:?}", r.status),
                    }
                });
                if outcome.is_err() {
                    failed_h.fetch_add(1, Ordering::Relaxed);
                }
                log.record(start, outcome);
                done_h.fetch_add(1, Ordering::Relaxed);
            }
            Ok(log)
        });
        let (stop_u, done_u, failed_u) = (stop.clone(), done[1].clone(), failed[1].clone());
        let udp = netns::spawn_in(lab.ns(host), move || {
            let mut log = RequestLog::new(Proto::Udp);
            let mut pacer = Pacer::new(period);
            let mut ports = SourcePorts::default();
            let mut n = 0u64;
            while !stop_u.load(Ordering::Relaxed) {
                pacer.wait();
                let socket = ports.bind()?;
                n += 1;
                let payload = format!("req {n}");
                let start = Instant::now();
                let outcome = udp_exchange(&socket, udp_to, payload.as_bytes(), UDP_TIMEOUT)
                    .and_then(|answer| {
                        let (name, echoed) = answer.split_once(' ').unwrap_or((&answer, ""));
                        match Host::web_by_name(name) {
                            Some(host) if echoed == payload => Ok(host),
                            _ => bail!("answer {answer:?} to {payload:?}"),
                        }
                    });
                if outcome.is_err() {
                    failed_u.fetch_add(1, Ordering::Relaxed);
                }
                log.record(start, outcome);
                done_u.fetch_add(1, Ordering::Relaxed);
            }
            Ok(log)
        });
        Self { stop, done, failed, http: Some(http), udp: Some(udp) }
    }

    /// Requests made so far: (HTTP, UDP).
    pub fn done(&self) -> (usize, usize) {
        (self.done[0].load(Ordering::Relaxed), self.done[1].load(Ordering::Relaxed))
    }

    /// Requests failed so far: (HTTP, UDP).
    pub fn failed(&self) -> (usize, usize) {
        (self.failed[0].load(Ordering::Relaxed), self.failed[1].load(Ordering::Relaxed))
    }

    /// Whether a client thread has ended (only an error ends one early).
    pub fn is_finished(&self) -> bool {
        [&self.http, &self.udp].iter().any(|h| h.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Stops both clients after their request in flight; their logs.
    pub fn stop(mut self) -> Result<(RequestLog, RequestLog)> {
        self.stop.store(true, Ordering::Relaxed);
        let (http, udp) = (self.http.take(), self.udp.take());
        let http = netns::join(http.context("joined twice")?).context("the HTTP client")?;
        let udp = netns::join(udp.context("joined twice")?).context("the UDP client")?;
        Ok((http, udp))
    }
}

/// Lets a loop run at most once per period.
#[derive(Debug)]
struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    fn new(period: Duration) -> Self {
        Self { period, next: Instant::now() }
    }

    /// Sleeps until the next slot; a late caller gets the next slot from now.
    fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next = self.next.max(now) + self.period;
    }
}

/// The UDP client's source ports, handed out in turn.
#[derive(Debug)]
struct SourcePorts {
    next: u16,
}

impl Default for SourcePorts {
    fn default() -> Self {
        Self { next: *UDP_PORTS.start() }
    }
}

impl SourcePorts {
    /// A socket bound to the next free port of the range.
    fn bind(&mut self) -> Result<UdpSocket> {
        let span = usize::from(UDP_PORTS.end() - UDP_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if port == *UDP_PORTS.end() { *UDP_PORTS.start() } else { port + 1 };
            match UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
                Ok(socket) => return Ok(socket),
                Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e).with_context(|| format!("bind UDP port {port}")),
            }
        }
        bail!("every UDP source port of {UDP_PORTS:?} is in use")
    }
}

/// One reading of a process's resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssSample {
    /// Time since sampling started.
    pub at: Duration,
    /// VmRSS in KiB.
    pub kib: u64,
}

/// The VmRSS line of /proc/PID/status, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// The resident memory of process `pid` in KiB.
pub fn rss_kib(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_vm_rss(&text).ok_or_else(|| anyhow!("no VmRSS in {path}"))
}

/// Samples a process's resident memory on a thread until stopped.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<RssSample>>>,
}

impl RssSampler {
    /// Samples `pid` now and every `every` after.
    pub fn start(pid: i32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut next = started;
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    samples.push(RssSample { at: now - started, kib: rss_kib(pid)? });
                    next += every;
                }
                std::thread::sleep(POLL.min(every));
            }
            Ok(samples)
        });
        Self { stop, handle }
    }

    /// Stops sampling; every sample, in order.
    pub fn stop(self) -> Result<Vec<RssSample>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow!("the RSS sampler panicked"))?
    }
}

/// The least-squares slope of `samples` in KiB per minute; `None` with
/// fewer than two distinct sample times.
pub fn slope_kib_per_min(samples: &[RssSample]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.at.as_secs_f64()).sum::<f64>() / n;
    let mean_m = samples.iter().map(|s| s.kib as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for s in samples {
        let dt = s.at.as_secs_f64() - mean_t;
        cov += dt * (s.kib as f64 - mean_m);
        var += dt * dt;
    }
    // Sample times are milliseconds apart at least: 1e-9 means "all equal".
    (var > 1e-9).then(|| cov / var * 60.0)
}

/// The kernel's statistics of one AF_XDP socket (struct xdp_diag_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped on receive: no fill-ring buffer, or too long.
    pub rx_dropped: u64,
    /// Invalid descriptors on the RX ring.
    pub rx_invalid: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_queue_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty: u64,
}

impl XskStats {
    /// Frames the socket lost after the XDP program redirected them to it.
    pub fn lost_on_receive(&self) -> u64 {
        self.rx_dropped + self.rx_queue_full
    }

    /// Element-wise sum, for the total over a host's sockets.
    pub fn sum(self, other: XskStats) -> XskStats {
        XskStats {
            rx_dropped: self.rx_dropped + other.rx_dropped,
            rx_invalid: self.rx_invalid + other.rx_invalid,
            rx_queue_full: self.rx_queue_full + other.rx_queue_full,
            rx_fill_ring_empty: self.rx_fill_ring_empty + other.rx_fill_ring_empty,
            tx_invalid: self.tx_invalid + other.tx_invalid,
            tx_ring_empty: self.tx_ring_empty + other.tx_ring_empty,
        }
    }
}

/// Every `stats(rx dropped:N,rx invalid:N,…)` group of `ss --xdp -e`
/// output (iproute2's misc/ss.c `xdp_show_stats`), one per socket.
pub fn parse_ss_xdp(text: &str) -> Vec<XskStats> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("stats(") {
        rest = &rest[at + "stats(".len()..];
        let Some(end) = rest.find(')') else { break };
        let mut stats = XskStats::default();
        let mut seen = 0;
        for field in rest[..end].split(',') {
            let Some((name, value)) = field.split_once(':') else { continue };
            let Ok(value) = value.trim().parse::<u64>() else { continue };
            let slot = match name.trim() {
                "rx dropped" => &mut stats.rx_dropped,
                "rx invalid" => &mut stats.rx_invalid,
                "rx queue full" => &mut stats.rx_queue_full,
                "rx fill ring empty" => &mut stats.rx_fill_ring_empty,
                "tx invalid" => &mut stats.tx_invalid,
                "tx ring empty" => &mut stats.tx_ring_empty,
                _ => continue,
            };
            *slot = value;
            seen += 1;
        }
        if seen > 0 {
            out.push(stats);
        }
        rest = &rest[end..];
    }
    out
}

/// One real server of one service, as `status --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerRow {
    /// The service's protocol (`TCP`, `UDP`).
    pub protocol: String,
    /// The service's port.
    pub service_port: u16,
    /// The real server's address.
    pub address: Ipv4Addr,
    /// Its health (`up`, `down`, `unchecked`).
    pub health: String,
    /// Its configured weight.
    pub configured_weight: u64,
    /// Flows in the table with it, established.
    pub active_conn: u64,
    /// Flows in the table with it, closing or UDP.
    pub inact_conn: u64,
}

/// Every real server of every service in `status`.
pub fn real_server_rows(status: &Status) -> Result<Vec<RealServerRow>> {
    let services = status.json.get("services").and_then(Json::as_array).unwrap_or_default();
    let mut rows = Vec::new();
    let bad = || anyhow!("unexpected status: {}", status.json.to_text());
    for service in services {
        let protocol = service.get("protocol").and_then(Json::as_str).ok_or_else(bad)?;
        let port = service.get("port").and_then(Json::as_u64).ok_or_else(bad)?;
        let servers = service.get("real_servers").and_then(Json::as_array).unwrap_or_default();
        for rs in servers {
            let number = |key: &str| rs.get(key).and_then(Json::as_u64).ok_or_else(bad);
            let address = rs.get("address").and_then(Json::as_str).ok_or_else(bad)?;
            rows.push(RealServerRow {
                protocol: protocol.to_owned(),
                service_port: u16::try_from(port)?,
                address: address.parse().with_context(|| format!("address {address:?}"))?,
                health: rs.get("health").and_then(Json::as_str).unwrap_or("?").to_owned(),
                configured_weight: number("configured_weight")?,
                active_conn: number("active_conn")?,
                inact_conn: number("inact_conn")?,
            });
        }
    }
    Ok(rows)
}

/// The frames forwarded for the services of `protocol` (`TCP`, `UDP`):
/// the sum of their `packets` in `status`; `None` when status has no such
/// field (an xdplb that does not count per service).
pub fn service_packets(status: &Status, protocol: &str) -> Option<u64> {
    let services = status.json.get("services").and_then(Json::as_array).unwrap_or_default();
    let mut total = 0;
    for service in services {
        if service.get("protocol").and_then(Json::as_str) == Some(protocol) {
            total += service.get("packets").and_then(Json::as_u64)?;
        }
    }
    Some(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\txdplb\nVmPeak:\t  900 kB\nVmRSS:\t   23456 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(23456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert!(rss_kib(i32::try_from(std::process::id()).unwrap()).unwrap() > 0);
    }

    #[test]
    fn reads_ss_xdp_statistics() {
        // The shape of iproute2 6.1's `ss --xdp -a -e -n` for one socket.
        let text = "Recv-Q Send-Q Local Address:Port Peer Address:Port\n\
                    0      0      eth0:q0            *  ino:1234 sk:1 \n\
                    \trx(entries:2048)\n\ttx(entries:2048)\n\
                    \tumem(id:1,size:16777216,num_pages:4096,chunk_size:4096,headroom:0,\
                    ifindex:2,qid:0,zc:0,refs:1)\n\
                    \tstats(rx dropped:3,rx invalid:0,rx queue full:2,rx fill ring empty:7,\
                    tx invalid:0,tx ring empty:11)\n";
        let stats = parse_ss_xdp(text);
        assert_eq!(
            stats,
            vec![XskStats {
                rx_dropped: 3,
                rx_invalid: 0,
                rx_queue_full: 2,
                rx_fill_ring_empty: 7,
                tx_invalid: 0,
                tx_ring_empty: 11
            }]
        );
        assert_eq!(stats[0].lost_on_receive(), 5);
        let two = format!("{text}{text}");
        let total = parse_ss_xdp(&two).into_iter().fold(XskStats::default(), XskStats::sum);
        assert_eq!((total.rx_dropped, total.tx_ring_empty), (6, 22));
        assert!(parse_ss_xdp("Recv-Q Send-Q\n").is_empty());
        assert!(parse_ss_xdp("stats(").is_empty());
    }

    #[test]
    fn windows_classify_requests() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let window = Window { from: at(10), to: at(20) };
        let mut log = RequestLog::new(Proto::Udp);
        let push = |log: &mut RequestLog, s, e, ok: bool| {
            let answered_by = ok.then_some(Host::Web1);
            log.requests.push(Request { start: at(s), end: at(e), answered_by });
        };
        push(&mut log, 1, 2, true);
        push(&mut log, 8, 11, false); // ends inside
        push(&mut log, 19, 25, false); // starts inside
        push(&mut log, 21, 22, false); // after
        push(&mut log, 5, 30, true); // spans it
        assert_eq!((log.sent(), log.answered(), log.failed()), (5, 2, 3));
        let outside = log.failed_outside(&[window]);
        assert_eq!(outside.len(), 1);
        assert_eq!(outside[0].start, at(21));
        assert_eq!(log.overlapping(window), 3);
        assert_eq!(log.outside(&[window]), 2);
        assert_eq!(log.answered_outside(&[window]), 1);
        assert_eq!(log.by_server(), BTreeMap::from([("web1", 2)]));
    }

    #[test]
    fn source_ports_are_handed_out_in_turn_and_skip_busy_ones() {
        let mut ports = SourcePorts::default();
        let a = ports.bind().unwrap().local_addr().unwrap().port();
        let b = ports.bind().unwrap().local_addr().unwrap().port();
        assert!(UDP_PORTS.contains(&a) && UDP_PORTS.contains(&b));
        // The next port is taken by someone else: it is skipped.
        let busy = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, b + 1));
        let c = ports.bind().unwrap().local_addr().unwrap().port();
        match busy {
            Ok(_) => assert_eq!(c, b + 2),
            Err(_) => assert!(c > b),
        }
    }

    #[test]
    fn the_pacer_spaces_calls_and_never_bursts_to_catch_up() {
        let period = Duration::from_millis(100);
        let mut pacer = Pacer::new(period);
        pacer.wait();
        let first = Instant::now();
        pacer.wait();
        pacer.wait();
        assert!(first.elapsed() >= 2 * period, "{:?}", first.elapsed());
        // A caller three periods late gets one slot at once, then waits again.
        std::thread::sleep(3 * period);
        let late = Instant::now();
        pacer.wait();
        assert!(late.elapsed() < period, "{:?}", late.elapsed());
        pacer.wait();
        assert!(late.elapsed() >= period, "{:?}", late.elapsed());
    }

    #[test]
    fn slope_needs_two_times() {
        assert_eq!(slope_kib_per_min(&[]), None);
        let one = RssSample { at: Duration::from_secs(1), kib: 5 };
        assert_eq!(slope_kib_per_min(&[one]), None);
        assert_eq!(slope_kib_per_min(&[one, one]), None);
    }

    #[test]
    fn reads_real_server_rows() {
        let status = Status::parse(
            r#"{"services":[
              {"protocol":"TCP","port":80,"real_servers":[
                {"address":"192.168.10.103","port":80,"configured_weight":2,"weight":2,
                 "health":"up","active_conn":3,"inact_conn":1}]},
              {"protocol":"UDP","port":5300,"real_servers":[
                {"address":"192.168.10.104","port":5300,"configured_weight":1,"weight":0,
                 "health":"down","active_conn":0,"inact_conn":7}]}]}"#,
        )
        .unwrap();
        let rows = real_server_rows(&status).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].protocol.as_str(), rows[0].service_port, rows[0].configured_weight),
            ("TCP", 80, 2)
        );
        assert_eq!((rows[0].active_conn, rows[0].inact_conn), (3, 1));
        assert_eq!((rows[1].address, rows[1].health.as_str()), (Host::Web2.ip(), "down"));
        let broken = Status::parse(r#"{"services":[{"protocol":"TCP"}]}"#).unwrap();
        assert!(real_server_rows(&broken).is_err());
        assert_eq!(service_packets(&status, "TCP"), None);
        let counted = Status::parse(
            r#"{"services":[{"protocol":"TCP","packets":5},{"protocol":"UDP","packets":7},
                            {"protocol":"UDP","packets":1}]}"#,
        )
        .unwrap();
        assert_eq!(service_packets(&counted, "TCP"), Some(5));
        assert_eq!(service_packets(&counted, "UDP"), Some(8));
        assert_eq!(service_packets(&counted, "SCTP"), Some(0));
    }

    proptest! {
        #[test]
        fn slope_of_a_line_is_its_gradient(
            base in 0u64..10_000_000,
            per_min in -10_000i64..10_000,
            n in 2usize..200,
        ) {
            // kib = base + per_min × minutes, sampled at whole minutes so
            // the values are whole KiB.
            let samples: Vec<RssSample> = (0..n)
                .map(|i| {
                    let minutes = i as i64;
                    let kib = (base as i64 + per_min * minutes + 1_000_000_000) as u64;
                    RssSample { at: Duration::from_secs(60 * i as u64), kib }
                })
                .collect();
            let slope = slope_kib_per_min(&samples).unwrap();
            prop_assert!((slope - per_min as f64).abs() < 1e-6, "{slope} vs {per_min}");
        }

        #[test]
        fn slope_ignores_a_constant_offset_and_scales(
            kibs in proptest::collection::vec(0u64..1_000_000, 2..100),
            offset in 0u64..1_000_000,
        ) {
            let samples: Vec<RssSample> = kibs
                .iter()
                .enumerate()
                .map(|(i, &kib)| RssSample { at: Duration::from_millis(500 * i as u64), kib })
                .collect();
            let shifted: Vec<RssSample> =
                samples.iter().map(|s| RssSample { kib: s.kib + offset, ..*s }).collect();
            let doubled: Vec<RssSample> =
                samples.iter().map(|s| RssSample { kib: s.kib * 2, ..*s }).collect();
            let a = slope_kib_per_min(&samples).unwrap();
            let b = slope_kib_per_min(&shifted).unwrap();
            let c = slope_kib_per_min(&doubled).unwrap();
            prop_assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
            prop_assert!((2.0 * a - c).abs() <= 1e-6 * (1.0 + c.abs()), "{a} vs {c}");
            // The same readings backwards in time: the opposite slope.
            let reversed: Vec<RssSample> = samples
                .iter()
                .zip(samples.iter().rev())
                .map(|(s, r)| RssSample { at: s.at, kib: r.kib })
                .collect();
            let d = slope_kib_per_min(&reversed).unwrap();
            prop_assert!((a + d).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {d}");
        }

        #[test]
        fn ss_parsing_never_panics(text in "\\PC{0,200}") {
            for s in parse_ss_xdp(&text) {
                prop_assert!(s.lost_on_receive() >= s.rx_dropped);
            }
        }
    }
}
