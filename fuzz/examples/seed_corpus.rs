//! Writes the seed corpora and dictionaries under fuzz/ from the project's
//! real inputs: keepalived 2.2.7 captures (control/testdata/*.pcap), frames
//! from the data plane's builders, configs/*.toml, the keepalived samples.
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`
//! (replaces fuzz/corpus/ and fuzz/dict/).

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use control::import::{import_text, ImportOptions};
use control::vrrp::{Advert, Auth, Version};
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{EtherType, TcpFlags};
use xdplb_fuzz::frame::{client_spec, fix_ipv4_checksum, CLIENT, MODE_FIX_CHECKSUM, MODE_TWICE};
use xdplb_fuzz::frame::{VIP1, VIP2};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The frames of a pcapng or classic pcap file, Ethernet first.
fn pcap_frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let u32_at = |at: usize| -> Result<u32> {
        let b = bytes.get(at..at + 4).ok_or("truncated capture")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut frames = Vec::new();
    match u32_at(0)? {
        // pcapng (little-endian, as dumpcap writes here): blocks of
        // type, length, body, length; Enhanced Packet Blocks hold frames.
        0x0a0d_0d0a => {
            let mut at = 0;
            while at + 12 <= bytes.len() {
                let (kind, len) = (u32_at(at)?, u32_at(at + 4)? as usize);
                if len < 12 {
                    return Err("bad pcapng block length".into());
                }
                if kind == 6 {
                    let caplen = u32_at(at + 20)? as usize;
                    let data = bytes.get(at + 28..at + 28 + caplen).ok_or("truncated block")?;
                    frames.push(data.to_vec());
                }
                at += len;
            }
        }
        // Classic pcap: a 24-byte header, then records of 16 + caplen bytes.
        0xa1b2_c3d4 | 0xa1b2_3c4d => {
            let mut at = 24;
            while at + 16 <= bytes.len() {
                let caplen = u32_at(at + 8)? as usize;
                let data = bytes.get(at + 16..at + 16 + caplen).ok_or("truncated record")?;
                frames.push(data.to_vec());
                at += 16 + caplen;
            }
        }
        magic => return Err(format!("not a capture: magic {magic:#x}").into()),
    }
    Ok(frames)
}

struct Corpus {
    dir: PathBuf,
    seen: BTreeSet<Vec<u8>>,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Result<Self> {
        let dir = root.join("corpus").join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Corpus { dir, seen: BTreeSet::new() })
    }

    /// Adds `bytes` as `name` unless the same bytes are there already.
    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if self.seen.insert(bytes.to_vec()) {
            fs::write(self.dir.join(name), bytes)?;
        }
        Ok(())
    }
}

fn ip(octets: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(octets)
}

/// A VRRP message: the IPv4 payload of an Ethernet frame carrying one.
fn vrrp_message(frame: &[u8]) -> Option<&[u8]> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || *ip.get(9)? != 112 {
        return None;
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ip.get(header_len..total)
}

fn frame_seeds(root: &Path, captures: &[(String, Vec<Vec<u8>>)]) -> Result<()> {
    let mut corpus = Corpus::new(root, "frame_verdict")?;
    // Real frames as keepalived sent them: adverts (not a service) and ARP.
    for (name, frames) in captures {
        for (i, frame) in frames.iter().enumerate().take(4) {
            corpus.add(&format!("{name}-{}", i + 1), &[&[0u8][..], frame].concat())?;
        }
    }
    let syn = |port| build::tcp_frame(&client_spec(port, VIP1, 80), TcpFlags::SYN, &[]);
    let icmp_about = |reply: &[u8], to: [u8; 4]| {
        let outer = FrameSpec { dst_ip: ip(to), ..client_spec(0, to, 0) };
        let outer = FrameSpec { src_ip: Ipv4Addr::new(192, 168, 10, 1), ..outer };
        build::icmp_frag_needed_frame(&outer, 1400, reply)
    };
    let reply_tcp = |port| {
        build::tcp_frame(&FrameSpec::new(ip(VIP1), 80, ip(CLIENT), port), TcpFlags::ACK, &[])
    };
    let reply_udp = build::udp_frame(&FrameSpec::new(ip(VIP1), 53, ip(CLIENT), 5353), b"answer");
    let mut fragment = syn(41000);
    fragment[14 + 6] = 0x20; // MF, offset 0
    fix_ipv4_checksum(&mut fragment);
    let mut bad_checksum = syn(41001);
    bad_checksum[14 + 10] ^= 0xff;
    let options = FrameSpec { ip_options: &[0x94, 0x04, 0, 0], ..client_spec(41002, VIP1, 80) };
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("syn-new", syn(41003)),
        ("syn-preloaded", syn(40000)),
        (
            "fin-preloaded",
            build::tcp_frame(&client_spec(40001, VIP1, 80), TcpFlags::FIN | TcpFlags::ACK, &[]),
        ),
        (
            "ack-sloppy",
            build::tcp_frame(
                &client_spec(41004, VIP1, 80),
                TcpFlags::ACK,
                b"GET / HTTP/1.0\r\n\r\n",
            ),
        ),
        (
            "syn-fin",
            build::tcp_frame(&client_spec(41005, VIP1, 80), TcpFlags::SYN | TcpFlags::FIN, &[]),
        ),
        ("udp-preloaded", build::udp_frame(&client_spec(5353, VIP1, 53), b"query")),
        ("udp-new", build::udp_frame(&client_spec(5354, VIP1, 53), b"query")),
        ("drained-service", build::tcp_frame(&client_spec(41006, VIP2, 443), TcpFlags::SYN, &[])),
        ("no-service", build::tcp_frame(&client_spec(41007, VIP1, 22), TcpFlags::SYN, &[])),
        ("ip-options", build::tcp_frame(&options, TcpFlags::SYN, &[])),
        ("fragment", fragment),
        ("bad-checksum", bad_checksum),
        ("vlan", build::with_vlan(&syn(41008), EtherType::Vlan, 10)),
        ("echo", build::icmp_echo_request_frame(&client_spec(0, VIP1, 0), 1, 1, b"ping")),
        ("icmp-preloaded-tcp", icmp_about(&reply_tcp(40001), VIP1)),
        ("icmp-preloaded-udp", icmp_about(&reply_udp, VIP1)),
        ("icmp-vip2", icmp_about(&reply_tcp(40000), VIP2)),
        ("icmp-unknown-flow", icmp_about(&reply_tcp(41009), VIP1)),
        ("short", syn(41010)[..30].to_vec()),
    ];
    for (name, frame) in frames {
        let mode = match name {
            "ack-sloppy" | "syn-fin" | "udp-new" | "syn-new" => MODE_TWICE | MODE_FIX_CHECKSUM,
            "bad-checksum" => 0,
            _ => MODE_FIX_CHECKSUM,
        };
        corpus.add(name, &[&[mode][..], &frame].concat())?;
    }
    Ok(())
}

fn vrrp_seeds(root: &Path, captures: &[(String, Vec<Vec<u8>>)]) -> Result<()> {
    let mut corpus = Corpus::new(root, "vrrp_decode")?;
    for (name, frames) in captures {
        // Adverts differ in their IP header only; the priority-0 one is apart.
        let mut messages: Vec<&[u8]> = frames.iter().filter_map(|f| vrrp_message(f)).collect();
        messages.sort();
        messages.dedup();
        for (i, message) in messages.iter().enumerate() {
            corpus.add(&format!("{name}-{}", i + 1), message)?;
        }
    }
    let vips = vec![Ipv4Addr::new(192, 168, 10, 110), Ipv4Addr::new(192, 168, 10, 111)];
    let adverts = [
        ("v3-vrid51", Version::V3, 100, Auth::None, vips.clone()),
        ("v3-none", Version::V3, 4095, Auth::None, vec![]),
        ("v2-noauth", Version::V2, 1, Auth::None, vips),
    ];
    for (name, version, interval_field, auth, addresses) in adverts {
        let advert = Advert { version, vrid: 51, priority: 110, interval_field, auth, addresses };
        let bytes = advert.to_bytes(xdplb_fuzz::vrrp::SRC, Ipv4Addr::new(224, 0, 0, 18))?;
        corpus.add(name, &bytes)?;
    }
    Ok(())
}

fn arp_seeds(root: &Path, captures: &[(String, Vec<Vec<u8>>)]) -> Result<()> {
    let mut corpus = Corpus::new(root, "arp_decode")?;
    for (name, frames) in captures {
        for (i, frame) in frames.iter().enumerate() {
            if frame.get(12..14) == Some(&[0x08, 0x06][..]) {
                corpus.add(&format!("{name}-{}", i + 1), frame)?;
            }
        }
    }
    let mut padded = control::garp::frame([0x02, 0, 0, 0x0a, 0, 0x66], ip(VIP2)).to_vec();
    padded.resize(60, 0);
    corpus.add("garp-padded", &padded)?;
    Ok(())
}

/// Words and keys of `texts`, as a libFuzzer dictionary.
fn dictionary(texts: &[String], extra: &[&str]) -> String {
    let mut words = BTreeSet::new();
    for text in texts {
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.len() >= 2 && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                words.insert(word.to_owned());
            }
        }
    }
    words.extend(extra.iter().map(|w| (*w).to_owned()));
    words.iter().map(|w| format!("\"{}\"\n", dict_escape(w))).collect()
}

/// A dictionary entry's escaping: `\\`, `\"`, and `\xNN` for anything unprintable.
fn dict_escape(word: &str) -> String {
    let mut out = String::new();
    for b in word.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> =
        fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>()?;
    paths.retain(|p| p.is_file());
    paths.sort();
    Ok(paths)
}

fn text_seeds(root: &Path, repo: &Path) -> Result<()> {
    let samples = repo.join("control/testdata/keepalived");
    let mut keepalived = read_dir_sorted(&samples)?;
    keepalived.extend(read_dir_sorted(&samples.join("debian-samples"))?);
    keepalived.retain(|p| p.extension().is_none_or(|e| e != "md"));
    let mut corpus = Corpus::new(root, "keepalived_import")?;
    let mut keepalived_texts = Vec::new();
    let mut imported = Vec::new();
    for path in &keepalived {
        let text = fs::read_to_string(path)?;
        let name = path.file_name().and_then(|n| n.to_str()).ok_or("file name")?;
        corpus.add(name, text.as_bytes())?;
        let options =
            ImportOptions { dataplane_interface: Some("eth0".into()), ..ImportOptions::default() };
        let report = import_text(&text, name, None, &options);
        if control::config::parse(&report.toml, "x").is_ok() {
            imported.push((format!("imported-{name}.toml"), report.toml));
        }
        keepalived_texts.push(text);
    }

    let mut corpus = Corpus::new(root, "config_toml")?;
    let mut config_texts = Vec::new();
    for path in read_dir_sorted(&repo.join("configs"))? {
        let text = fs::read_to_string(&path)?;
        let name = path.file_name().and_then(|n| n.to_str()).ok_or("file name")?;
        corpus.add(name, text.as_bytes())?;
        config_texts.push(text);
    }
    for (name, toml) in imported {
        corpus.add(&name, toml.as_bytes())?;
        config_texts.push(toml);
    }

    let dict = root.join("dict");
    fs::create_dir_all(&dict)?;
    let toml_syntax = ["[[", "]]", " = ", "\"", "'''", "\"\"\"", "true", "false", "#", "\n"];
    fs::write(dict.join("config_toml.dict"), dictionary(&config_texts, &toml_syntax))?;
    let conf_syntax = ["{", "}", "!", "#", "@", "$", "~SEQ(", "include", "\n"];
    fs::write(dict.join("keepalived_import.dict"), dictionary(&keepalived_texts, &conf_syntax))?;
    Ok(())
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = root.parent().ok_or("fuzz/ has a parent")?.to_path_buf();
    let mut captures = Vec::new();
    for path in read_dir_sorted(&repo.join("control/testdata"))? {
        if path.extension().is_some_and(|e| e == "pcap") {
            let name = path.file_stem().and_then(|n| n.to_str()).ok_or("file name")?;
            captures.push((name.to_owned(), pcap_frames(&fs::read(&path)?)?));
        }
    }
    frame_seeds(&root, &captures)?;
    vrrp_seeds(&root, &captures)?;
    arp_seeds(&root, &captures)?;
    text_seeds(&root, &repo)?;
    Ok(())
}
