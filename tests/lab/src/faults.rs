//! What the fault tests (tests/faults_lab.rs) need beyond the lab: `xdplb
//! status --json` read back, TCP flows held open from a namespace (kept
//! alive or left idle on purpose), and a gratuitous ARP frame built by hand.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dataplane::tables::Mac;
use nix::sys::socket::{setsockopt, sockopt};

use crate::http::{self, HttpResponse};
use crate::lab::{Host, Lab};

/// A JSON value, as `xdplb status --json` prints it. Numbers keep their
/// text, so a u64 counter is read back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in order.
    Object(Vec<(String, Json)>),
}

/// Deepest nesting the reader follows: bounds its recursion on any input.
const MAX_DEPTH: usize = 64;

impl Json {
    /// Parses one JSON document (RFC 8259) with nothing but whitespace after it.
    pub fn parse(text: &str) -> Result<Json> {
        let mut reader = Reader { text: text.as_bytes(), at: 0 };
        let value = reader.value(0)?;
        reader.skip_ws();
        if reader.at != reader.text.len() {
            bail!("JSON: trailing text at byte {}", reader.at);
        }
        Ok(value)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Compact JSON text (strings escaped as RFC 8259 requires).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A cursor over the JSON text.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() != Some(byte) {
            bail!("JSON: expected {:?} at byte {}", char::from(byte), self.at);
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json> {
        if !self.text[self.at..].starts_with(word.as_bytes()) {
            bail!("JSON: bad literal at byte {}", self.at);
        }
        self.at += word.len();
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            bail!("JSON: nested deeper than {MAX_DEPTH} at byte {}", self.at);
        }
        self.skip_ws();
        match self.peek() {
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => bail!("JSON: expected ',' or ']' at byte {}", self.at),
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => bail!("JSON: expected ',' or '}}' at byte {}", self.at),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => bail!("JSON: expected a value at byte {}", self.at),
        }
    }

    fn number(&mut self) -> Result<Json> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = |r: &mut Self| {
            let from = r.at;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.at += 1;
            }
            r.at > from
        };
        if !digits(self) {
            bail!("JSON: number without digits at byte {start}");
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                bail!("JSON: no digits after '.' at byte {}", self.at);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                bail!("JSON: no exponent digits at byte {}", self.at);
            }
        }
        // Only ASCII was consumed.
        Ok(Json::Number(String::from_utf8_lossy(&self.text[start..self.at]).into_owned()))
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else { bail!("JSON: unterminated string") };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(esc) = self.peek() else { bail!("JSON: unterminated escape") };
                    self.at += 1;
                    let c = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        other => {
                            bail!("JSON: bad escape \\{} at byte {}", char::from(other), self.at)
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => {
                    bail!("JSON: control byte {b:#04x} in a string at byte {}", self.at)
                }
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|e| anyhow!("JSON: string is not UTF-8: {e}"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let hex = self.text.get(self.at..self.at + 4).ok_or_else(|| anyhow!("JSON: short \\u"))?;
        let hex = std::str::from_utf8(hex).map_err(|_| anyhow!("JSON: bad \\u"))?;
        let n = u32::from_str_radix(hex, 16).map_err(|_| anyhow!("JSON: bad \\u{hex}"))?;
        self.at += 4;
        Ok(n)
    }

    /// The character of a `\uXXXX` escape (a surrogate pair is two escapes).
    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if !self.text[self.at..].starts_with(b"\\u") {
                bail!("JSON: lone high surrogate at byte {}", self.at);
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                bail!("JSON: bad low surrogate at byte {}", self.at);
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| anyhow!("JSON: \\u{code:04x} is no character"))
    }
}

/// `xdplb status --json` read back: the parts the fault tests look at.
#[derive(Debug, Clone)]
pub struct Status {
    /// The whole document.
    pub json: Json,
}

impl Status {
    /// Parses the output of `xdplb status --json`.
    pub fn parse(text: &str) -> Result<Self> {
        let json = Json::parse(text).with_context(|| format!("status --json said:\n{text}"))?;
        Ok(Self { json })
    }

    /// A top-level number (`workers`, `flow_table_size`).
    pub fn number(&self, key: &str) -> Result<u64> {
        self.json
            .get(key)
            .and_then(Json::as_u64)
            .ok_or_else(|| anyhow!("status has no number `{key}`: {}", self.json.to_text()))
    }

    /// The counter `name` (e.g. `worker.drop.flow_table_full`) from the
    /// `counters` list of `[name, value]` pairs; `vrrp.X` (as the final
    /// counters name it) is the sum of `X` over the VRRP instances.
    pub fn counter(&self, name: &str) -> Result<u64> {
        if let Some(vrrp_name) = name.strip_prefix("vrrp.") {
            let instances = self.json.get("vrrp").and_then(Json::as_array).unwrap_or_default();
            ensure!(!instances.is_empty(), "status has no vrrp instance for `{name}`");
            let mut sum = 0;
            for instance in instances {
                sum += pair_value(counter_pairs(instance), vrrp_name)
                    .ok_or_else(|| anyhow!("vrrp instance status has no counter `{vrrp_name}`"))?;
            }
            return Ok(sum);
        }
        let pairs = counter_pairs(&self.json);
        pair_value(pairs, name).ok_or_else(|| {
            let names: Vec<&str> =
                pairs.iter().filter_map(|p| p.as_array()?.first()?.as_str()).collect();
            anyhow!("status has no counter `{name}`; it has: {}", names.join(" "))
        })
    }

    /// The real server at `ip` (of whichever service lists it first).
    pub fn real_server(&self, ip: Ipv4Addr) -> Result<&Json> {
        let ip = ip.to_string();
        let services = self.json.get("services").and_then(Json::as_array).unwrap_or_default();
        services
            .iter()
            .filter_map(|s| s.get("real_servers").and_then(Json::as_array))
            .flatten()
            .find(|r| r.get("address").and_then(Json::as_str) == Some(ip.as_str()))
            .ok_or_else(|| anyhow!("status lists no real server {ip}: {}", self.json.to_text()))
    }

    /// A string field of the real server at `ip` (`health`, `mac`), if set.
    pub fn real_server_str(&self, ip: Ipv4Addr, field: &str) -> Result<Option<String>> {
        Ok(self.real_server(ip)?.get(field).and_then(Json::as_str).map(str::to_owned))
    }

    /// The weight new flows of the real server at `ip` are scheduled by
    /// (`None`: removed from its service).
    pub fn real_server_weight(&self, ip: Ipv4Addr) -> Result<Option<u64>> {
        Ok(self.real_server(ip)?.get("weight").and_then(Json::as_u64))
    }
}

impl Lab {
    /// Runs `binary status --json` in `host`'s namespace and parses it.
    pub fn status_json(&self, host: Host, binary: &Path) -> Result<Status> {
        let binary = binary.to_string_lossy().into_owned();
        let text = self.exec(host, &[binary.as_str(), "status", "--json"])?;
        Status::parse(&text)
    }

    /// Opens `n` TCP connections from `host` to `to`, one after the other,
    /// each a new flow (its own source port), with keepalive probes
    /// `keepalive` apart from the start (see [`set_keepalive`]); fails naming
    /// the first that does not connect within `timeout`. The sockets stay in
    /// `host`'s namespace whichever thread uses them later.
    pub fn hold_tcp(
        &self,
        host: Host,
        to: SocketAddrV4,
        n: usize,
        timeout: Duration,
        keepalive: Option<Duration>,
    ) -> Result<Vec<TcpStream>> {
        self.run_in(host, move || {
            (0..n)
                .map(|i| {
                    let stream = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)
                        .with_context(|| format!("connection {i} of {n} to {to}"))?;
                    set_keepalive(&stream, keepalive)?;
                    Ok(stream)
                })
                .collect()
        })
    }

    /// Whether a TCP connection from `host` to `to` is accepted within
    /// `timeout` (closed again at once). A refused or timed-out one is `false`.
    pub fn tcp_connects(&self, host: Host, to: SocketAddrV4, timeout: Duration) -> Result<bool> {
        self.run_in(host, move || {
            Ok(TcpStream::connect_timeout(&SocketAddr::V4(to), timeout).is_ok())
        })
    }
}

/// Sends `GET path` over an open connection and reads the whole response
/// (the lab's servers speak HTTP/1.0 and close after it).
pub fn get_on(stream: &TcpStream, path: &str) -> Result<HttpResponse> {
    let peer = stream.peer_addr().context("peer of a held connection")?;
    stream.set_read_timeout(Some(http::IO_TIMEOUT))?;
    stream.set_write_timeout(Some(http::IO_TIMEOUT))?;
    let head = format!("GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", peer.ip());
    let mut writer = stream;
    writer.write_all(head.as_bytes()).with_context(|| format!("send a request to {peer}"))?;
    let mut raw = Vec::new();
    let mut reader = stream;
    reader.read_to_end(&mut raw).with_context(|| format!("read the response from {peer}"))?;
    http::parse_response(&raw).with_context(|| format!("GET {path} from {peer}"))
}

/// Turns TCP keepalive on `stream` on with probes `every` (idle time and
/// interval alike), or off with `None`: the kernel's own way of keeping a
/// quiet flow alive in a balancer's table, and of letting it go idle.
pub fn set_keepalive(stream: &TcpStream, every: Option<Duration>) -> Result<()> {
    if let Some(every) = every {
        let secs = u32::try_from(every.as_secs().max(1)).context("keepalive period")?;
        setsockopt(stream, sockopt::TcpKeepIdle, &secs).context("TCP_KEEPIDLE")?;
        setsockopt(stream, sockopt::TcpKeepInterval, &secs).context("TCP_KEEPINTVL")?;
    }
    setsockopt(stream, sockopt::KeepAlive, &every.is_some()).context("SO_KEEPALIVE")?;
    Ok(())
}

/// The length of an Ethernet frame without its FCS at the minimum: ARP is padded to it.
const MIN_FRAME: usize = 60;

/// A gratuitous ARP request from `mac` for `ip` (sender = target = `ip`,
/// broadcast), as Linux sends on `arp_notify` and keepalived on takeover:
/// every host on the segment with an entry for `ip` updates it to `mac`.
pub fn gratuitous_arp(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MIN_FRAME);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]); // ARP
    frame.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]); // Ethernet, IPv4
    frame.extend_from_slice(&[0x00, 0x01]); // request
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip.octets());
    frame.resize(MIN_FRAME, 0);
    frame
}

/// The index of the first line of `log` containing `needle`.
pub fn line_of(log: &str, needle: &str) -> Option<usize> {
    log.lines().position(|l| l.contains(needle))
}

/// The `counters` list of `[name, value]` pairs of `json` (empty if none).
fn counter_pairs(json: &Json) -> &[Json] {
    json.get("counters").and_then(Json::as_array).unwrap_or_default()
}

/// The value of the `[name, value]` pair called `name` in `pairs`.
fn pair_value(pairs: &[Json], name: &str) -> Option<u64> {
    pairs
        .iter()
        .filter_map(Json::as_array)
        .find(|pair| pair.first().and_then(Json::as_str) == Some(name))
        .and_then(|pair| pair.get(1).and_then(Json::as_u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pcap::Frame;
    use proptest::prelude::*;

    const STATUS: &str = r#"{
  "version": "0.1.0",
  "workers": 1,
  "flow_table_size": 64,
  "services": [
    {
      "protocol": "TCP", "vip": "192.168.10.110", "port": 80, "active": true,
      "real_servers": [
        { "address": "192.168.10.103", "port": 80, "configured_weight": 1, "weight": 0,
          "mac": "02:00:00:0a:00:67", "health": "down", "last_check": null },
        { "address": "192.168.10.104", "port": 80, "configured_weight": 1, "weight": null,
          "mac": null, "health": "up", "last_check": "ok \"quoted\"\n" }
      ]
    }
  ],
  "vrrp": [],
  "counters": [["worker.rx", 18446744073709551615], ["worker.drop.flow_table_full", 3]]
}"#;

    #[test]
    fn reads_what_status_json_says() {
        let s = Status::parse(STATUS).unwrap();
        assert_eq!((s.number("workers").unwrap(), s.number("flow_table_size").unwrap()), (1, 64));
        assert_eq!(s.counter("worker.drop.flow_table_full").unwrap(), 3);
        assert_eq!(s.counter("worker.rx").unwrap(), u64::MAX);
        let err = s.counter("worker.tx").unwrap_err().to_string();
        assert!(err.contains("worker.tx") && err.contains("worker.rx"), "{err}");
        let web1 = Ipv4Addr::new(192, 168, 10, 103);
        let web2 = Ipv4Addr::new(192, 168, 10, 104);
        assert_eq!(s.real_server_str(web1, "health").unwrap().as_deref(), Some("down"));
        assert_eq!(s.real_server_str(web1, "mac").unwrap().as_deref(), Some("02:00:00:0a:00:67"));
        assert_eq!(s.real_server_weight(web1).unwrap(), Some(0));
        assert_eq!(s.real_server_weight(web2).unwrap(), None);
        assert_eq!(s.real_server_str(web2, "mac").unwrap(), None);
        let check = s.real_server(web2).unwrap().get("last_check").unwrap();
        assert_eq!(check.as_str(), Some("ok \"quoted\"\n"));
        assert!(s.real_server(Ipv4Addr::new(192, 168, 10, 1)).is_err());
        assert!(s.number("services").is_err());
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01x",
            "\"\\q\"",
            "\"\\ud800\"",
            "nul",
            "[] []",
            "-",
            "1.",
            "1e",
            "\"a\u{1}\"",
        ] {
            assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(Json::parse(&deep).is_err());
        assert_eq!(
            Json::parse(" [\"\\u00e9\\ud83d\\ude00\\/\", -1.5e3, {}] ").unwrap(),
            Json::Array(vec![
                Json::String("é😀/".to_owned()),
                Json::Number("-1.5e3".to_owned()),
                Json::Object(vec![]),
            ])
        );
    }

    #[test]
    fn gratuitous_arp_decodes_as_one() {
        let mac = [0x02, 0, 0, 0x0a, 0x01, 0x67];
        let ip = Ipv4Addr::new(192, 168, 10, 103);
        let frame = Frame { time: Duration::ZERO, data: gratuitous_arp(mac, ip), orig_len: 60 };
        assert_eq!(frame.data.len(), MIN_FRAME);
        let arp = crate::vrrp::arp(&frame).unwrap();
        assert!(arp.is_gratuitous(), "{arp:?}");
        assert_eq!((arp.op, arp.eth_dst, arp.eth_src, arp.sender_mac), (1, [0xff; 6], mac, mac));
        assert_eq!((arp.sender_ip, arp.target_ip), (ip, ip));
    }

    #[test]
    fn finds_the_first_line() {
        let log = "a\nremoved a VRRP VIP\nVRRP VI_1: BACKUP -> MASTER\n";
        assert_eq!(line_of(log, "removed a VRRP VIP"), Some(1));
        assert_eq!(line_of(log, "-> MASTER"), Some(2));
        assert_eq!(line_of(log, "nothing"), None);
    }

    fn json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<u64>().prop_map(|n| Json::Number(n.to_string())),
            any::<i32>().prop_map(|n| Json::Number(format!("{n}.25e-3"))),
            any::<String>().prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(Json::Object),
            ]
        })
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back_the_same(value in json()) {
            prop_assert_eq!(Json::parse(&value.to_text()).unwrap(), value);
        }

        #[test]
        fn any_text_parses_or_fails_without_panic(text in "\\PC{0,80}") {
            if let Ok(value) = Json::parse(&text) {
                // Whatever parsed is JSON again, the same value.
                prop_assert_eq!(Json::parse(&value.to_text()).unwrap(), value);
            }
        }
    }
}
