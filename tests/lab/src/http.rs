//! A plain HTTP/1.0 client over std's `TcpStream`, meant to run on a thread
//! that has entered a lab namespace: every request is a new TCP connection,
//! i.e. a new flow for the load balancer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::netns;

/// Longest wait for a TCP handshake: a lost SYN is resent after 1 s, so this
/// survives two losses.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// Longest wait for any single read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body, lossy UTF-8.
    pub body: String,
}

/// `http://A.B.C.D[:PORT]/path` split into the address and the path.
pub fn parse_url(url: &str) -> Result<(SocketAddrV4, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow!("URL {url:?} is not http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, p.parse().with_context(|| format!("port in URL {url:?}"))?),
        None => (authority, 80),
    };
    let ip: Ipv4Addr = host.parse().with_context(|| format!("IPv4 host in URL {url:?}"))?;
    Ok((SocketAddrV4::new(ip, port), path.to_owned()))
}

/// Connects and sends `GET path` with `Connection: close`.
fn request(addr: SocketAddrV4, path: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(addr), CONNECT_TIMEOUT)
        .with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // One write, one segment: `write!` on the socket would send each piece.
    let head = format!("GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", addr.ip());
    stream.write_all(head.as_bytes()).with_context(|| format!("send request to {addr}"))?;
    Ok(stream)
}

/// Parses a whole response; checks the body against Content-Length if given.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| {
        anyhow!("response without end of headers: {:?}", String::from_utf8_lossy(raw))
    })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                let want: usize =
                    value.trim().parse().with_context(|| format!("Content-Length {value:?}"))?;
                ensure!(body.len() == want, "body of {} bytes, Content-Length {want}", body.len());
            }
        }
    }
    Ok(HttpResponse { status, body: String::from_utf8_lossy(body).into_owned() })
}

/// The code of a `HTTP/1.x NNN reason` line.
fn parse_status_line(line: &str) -> Result<u16> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => {
            code.parse().with_context(|| format!("status line {line:?}"))
        }
        _ => bail!("bad status line {line:?}"),
    }
}

/// One GET from the calling thread's namespace.
pub fn get(url: &str) -> Result<HttpResponse> {
    let (addr, path) = parse_url(url)?;
    let mut stream = request(addr, &path)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("read response from {url}"))?;
    parse_response(&raw).with_context(|| format!("GET {url}"))
}

/// The outcome of many requests, one connection each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManyResults {
    /// Every response, in order.
    pub responses: Vec<HttpResponse>,
    /// Every failure, as text, in order.
    pub failures: Vec<String>,
}

impl ManyResults {
    /// How many 200 responses carried each (trimmed) body, e.g. `web1` → 300.
    pub fn by_body(&self) -> BTreeMap<String, usize> {
        let mut tally = BTreeMap::new();
        for r in self.responses.iter().filter(|r| r.status == 200) {
            *tally.entry(r.body.trim().to_owned()).or_insert(0) += 1;
        }
        tally
    }

    /// How many responses had a status other than 200.
    pub fn non_200(&self) -> usize {
        self.responses.iter().filter(|r| r.status != 200).count()
    }

    /// How many requests were made.
    pub fn total(&self) -> usize {
        self.responses.len() + self.failures.len()
    }

    fn record(&mut self, result: Result<HttpResponse>) {
        match result {
            Ok(r) => self.responses.push(r),
            Err(e) => self.failures.push(format!("{e:#}")),
        }
    }
}

/// `n` GETs one after the other from the calling thread's namespace.
pub fn get_many(url: &str, n: usize) -> ManyResults {
    let mut out = ManyResults::default();
    for _ in 0..n {
        out.record(get(url));
    }
    out
}

/// Requests made by a background thread until told to stop (or `max` done).
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    handle: JoinHandle<Result<ManyResults>>,
}

impl Traffic {
    /// Starts GETs of `url` from namespace `netns`, at most `max` of them.
    pub fn start(netns: &str, url: &str, max: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (stop2, done2, url) = (stop.clone(), done.clone(), url.to_owned());
        let handle = netns::spawn_in(netns, move || {
            let mut out = ManyResults::default();
            while !stop2.load(Ordering::Relaxed) && out.total() < max {
                out.record(get(&url));
                done2.fetch_add(1, Ordering::Relaxed);
            }
            Ok(out)
        });
        Self { stop, done, handle }
    }

    /// Requests completed so far (answered or failed).
    pub fn completed(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Whether the thread has stopped by itself (reached `max`).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops after the request in flight and returns every outcome.
    pub fn stop(self) -> Result<ManyResults> {
        self.stop.store(true, Ordering::Relaxed);
        netns::join(self.handle)
    }
}

/// How a streamed (`/slow`) response went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamResult {
    /// The client side of the connection.
    pub local: SocketAddrV4,
    /// The status code.
    pub status: u16,
    /// The body lines, in order.
    pub lines: Vec<String>,
    /// From connect to end of stream.
    pub elapsed: Duration,
}

impl StreamResult {
    /// The distinct first words of the body lines: the servers that answered.
    pub fn servers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A long response being read by a background thread in a lab namespace.
#[derive(Debug)]
pub struct HttpStream {
    local: Receiver<SocketAddrV4>,
    first_line: Receiver<String>,
    lines: Arc<AtomicUsize>,
    handle: JoinHandle<Result<StreamResult>>,
}

impl HttpStream {
    /// Starts `GET url` from namespace `netns` and reads the body line by line.
    pub fn start(netns: &str, url: &str) -> Result<Self> {
        let (addr, path) = parse_url(url)?;
        let (local_tx, local) = mpsc::channel();
        let (line_tx, first_line) = mpsc::channel();
        let lines_read = Arc::new(AtomicUsize::new(0));
        let progress = lines_read.clone();
        let handle = netns::spawn_in(netns, move || {
            let started = Instant::now();
            let stream = request(addr, &path)?;
            let SocketAddr::V4(me) = stream.local_addr()? else {
                bail!("IPv6 local address for an IPv4 connection");
            };
            let _ = local_tx.send(me);
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).with_context(|| format!("status line from {addr}"))?;
            let status = parse_status_line(line.trim_end())?;
            loop {
                line.clear();
                reader.read_line(&mut line).with_context(|| format!("headers from {addr}"))?;
                ensure!(!line.is_empty(), "{addr} closed inside the headers");
                if line == "\r\n" {
                    break;
                }
            }
            let mut lines = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .with_context(|| format!("body from {addr} after {} lines", lines.len()))?;
                if n == 0 {
                    break;
                }
                if lines.is_empty() {
                    let _ = line_tx.send(line.trim_end().to_owned());
                }
                lines.push(line.trim_end().to_owned());
                progress.store(lines.len(), Ordering::Relaxed);
            }
            Ok(StreamResult { local: me, status, lines, elapsed: started.elapsed() })
        });
        Ok(Self { local, first_line, lines: lines_read, handle })
    }

    /// The client address once connected (fails if the connection failed).
    pub fn local_addr(&self, timeout: Duration) -> Result<SocketAddrV4> {
        self.local
            .recv_timeout(timeout)
            .map_err(|e| anyhow!("no connection within {timeout:?}: {e}"))
    }

    /// The first body line once it arrived, e.g. `web1 0`.
    pub fn first_line(&self, timeout: Duration) -> Result<String> {
        self.first_line
            .recv_timeout(timeout)
            .map_err(|e| anyhow!("no body line within {timeout:?}: {e}"))
    }

    /// The server that answered: the first word of the first line.
    pub fn server(&self, timeout: Duration) -> Result<String> {
        let line = self.first_line(timeout)?;
        line.split_whitespace().next().map(str::to_owned).ok_or_else(|| anyhow!("empty line"))
    }

    /// How many body lines have arrived so far.
    pub fn lines_so_far(&self) -> usize {
        self.lines.load(Ordering::Relaxed)
    }

    /// Whether the stream has ended (or failed).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the end of the stream.
    pub fn join(self) -> Result<StreamResult> {
        netns::join(self.handle)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let (a, p) = parse_url("http://192.168.10.110/").unwrap();
        assert_eq!((a.to_string(), p.as_str()), ("192.168.10.110:80".to_owned(), "/"));
        let (a, p) = parse_url("http://10.0.0.1:8080/slow?seconds=4").unwrap();
        assert_eq!((a.to_string(), p.as_str()), ("10.0.0.1:8080".to_owned(), "/slow?seconds=4"));
        let (_, p) = parse_url("http://10.0.0.1").unwrap();
        assert_eq!(p, "/");
        assert!(parse_url("https://10.0.0.1/").is_err());
        assert!(parse_url("http://example.com/").is_err());
        assert!(parse_url("http://10.0.0.1:99999/").is_err());
    }

    #[test]
    fn parses_responses_and_checks_their_length() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nweb1\n").unwrap();
        assert_eq!(r, HttpResponse { status: 200, body: "web1\n".to_owned() });
        let r = parse_response(b"HTTP/1.1 500 Oops\r\n\r\nx").unwrap();
        assert_eq!(r.status, 500);
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nweb1\n").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn gets_from_a_local_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = [0u8; 512];
                let n = s.read(&mut req).unwrap();
                assert!(req[..n].starts_with(b"GET /x HTTP/1.0\r\n"));
                s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nme!\n").unwrap();
            }
        });
        let url = format!("http://127.0.0.1:{port}/x");
        assert_eq!(get(&url).unwrap().body, "me!\n");
        let many = get_many(&url, 2);
        assert_eq!(many.by_body(), BTreeMap::from([("me!".to_owned(), 2)]));
        assert_eq!((many.failures.len(), many.total()), (0, 2));
        server.join().unwrap();
        // Nobody listens any more: a failure, recorded, not a panic.
        let many = get_many(&url, 1);
        assert_eq!((many.failures.len(), many.responses.len()), (1, 0));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = parse_response(&raw) {
                prop_assert!(raw.starts_with(b"HTTP/1."));
                prop_assert!(r.body.len() <= raw.len());
            }
        }

        #[test]
        fn bodies_round_trip(status in 100u16..600, body in "[a-z0-9 \n]{0,64}") {
            let raw = format!("HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            prop_assert_eq!(parse_response(raw.as_bytes()).unwrap(), HttpResponse { status, body });
        }
    }
}
