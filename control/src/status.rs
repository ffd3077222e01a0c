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
}

/// One virtual service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub protocol: String,
    pub vip: String,
    pub port: u16,
    pub scheduler: String,
    /// Whether this node steers it now (its VIP is held).
    pub active: bool,
    pub real_servers: Vec<RealServerStatus>,
}

/// One real server.
#[derive(Debug, Clone, Serialize)]
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

impl StatusReport {
    /// The text `xdplb status` prints: `ipvsadm -Ln` first, then VRRP,
    /// health and the non-zero counters.
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
            let flags = if s.active { "" } else { " (standby: VIP not held)" };
            let _ = writeln!(out, "{:<4} {}:{} {}{flags}", s.protocol, s.vip, s.port, s.scheduler);
            for r in &s.real_servers {
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
            for r in &s.real_servers {
                let _ = writeln!(
                    out,
                    "  {}:{} ({} {}:{}): health {}, weight {}/{}, MAC {}{}",
                    r.address,
                    r.port,
                    s.protocol,
                    s.vip,
                    s.port,
                    r.health,
                    r.weight.map_or_else(|| "removed".to_owned(), |w| w.to_string()),
                    r.configured_weight,
                    r.mac.as_deref().unwrap_or("unresolved"),
                    r.last_check.as_ref().map(|c| format!(", last check: {c}")).unwrap_or_default()
                );
            }
        }
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
    Text,
    Json,
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
        _ => {
            let _ = stream
                .write_all(b"error: unknown request (want \"status\" or \"status json\")\n")
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
    };
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The client side: asks the daemon behind `socket` and returns its answer.
pub fn query(socket: &str, json: bool) -> Result<String, StatusError> {
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
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
    let request: &[u8] = if json { b"status json\n" } else { b"status\n" };
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
