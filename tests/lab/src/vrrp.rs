//! What VRRP looks like on the segment, read back from captures: adverts and
//! ARP (gratuitous or not) decoded from frames, and the timeline questions
//! failover tests ask — who advertised when, and did two masters overlap.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::tables::Mac;
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{EtherType, EthernetFrame, Ipv4Packet};

use crate::capture::Capture;
use crate::lab::Host;
use crate::pcap::Frame;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The VRRP multicast group (RFC 3768 §5.2.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The Ethernet address of 224.0.0.18.
pub const VRRP_GROUP_MAC: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// tcpdump filter for what failover tests look at: adverts and ARP.
pub const VRRP_AND_ARP: &str = "ip proto 112 or arp";
/// Length of a VRRP header before its addresses.
const VRRP_HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data after the addresses.
const V2_AUTH_LEN: usize = 8;
/// ARP over Ethernet/IPv4: 28 bytes.
const ARP_LEN: usize = 28;

/// Whether `mac` is a VRRP virtual router MAC, 00:00:5e:00:01:xx (RFC 3768
/// §7.3): the seed's finding is that none ever appears.
pub fn is_virtual_router_mac(mac: Mac) -> bool {
    mac[..5] == [0x00, 0x00, 0x5e, 0x00, 0x01]
}

/// A VRRPv2 advert for the seed's VI_1 as bytes on the wire, each field
/// settable so that one thing at a time can be wrong (RFC 3768 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgedAdvert {
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 TTL (255 is the only valid one).
    pub ttl: u8,
    /// VRRP version.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Advertised priority.
    pub priority: u8,
    /// `auth_type PASS` data.
    pub password: [u8; 8],
    /// Whether the VRRP checksum is right.
    pub good_checksum: bool,
}

impl ForgedAdvert {
    /// A valid advert from `src_ip` at `priority`.
    pub fn valid(src_ip: Ipv4Addr, priority: u8) -> Self {
        Self {
            src_ip,
            ttl: 255,
            version: 2,
            vrid: 51,
            priority,
            password: *b"1111\0\0\0\0",
            good_checksum: true,
        }
    }

    /// This advert with one thing wrong at a time, each beside the reason
    /// xdplb counts its drop by (`vrrp.drop.<reason>`).
    pub fn one_thing_wrong(self) -> Vec<(&'static str, ForgedAdvert)> {
        vec![
            ("auth_failure", Self { password: *b"2222\0\0\0\0", ..self }),
            ("ttl", Self { ttl: 254, ..self }),
            ("version", Self { version: 3, ..self }),
            ("checksum", Self { good_checksum: false, ..self }),
            ("source_not_on_subnet", Self { src_ip: Ipv4Addr::new(192, 168, 99, 1), ..self }),
        ]
    }

    /// The frame from `src_mac` to 224.0.0.18 for `vip`.
    pub fn frame(&self, src_mac: Mac, vip: Ipv4Addr, ident: u16) -> Vec<u8> {
        // version/type, VRID, priority, count, auth type PASS, advert_int 1, checksum.
        let mut v = vec![(self.version << 4) | 1, self.vrid, self.priority, 1, 1, 1, 0, 0];
        v.extend_from_slice(&vip.octets());
        v.extend_from_slice(&self.password);
        let sum = vrrp_checksum(&v);
        let sum = if self.good_checksum { sum } else { sum ^ 0x5a5a };
        v[6..8].copy_from_slice(&sum.to_be_bytes());
        let spec = FrameSpec {
            src_mac,
            dst_mac: VRRP_GROUP_MAC,
            src_ip: self.src_ip,
            dst_ip: VRRP_GROUP,
            src_port: 0,
            dst_port: 0,
            ttl: self.ttl,
            ident,
            ip_options: &[],
        };
        build::ipv4_frame(&spec, IPPROTO_VRRP, &v)
    }
}

/// A VRRP advertisement as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Capture time since the epoch.
    pub time: Duration,
    /// Ethernet source: the sender's own MAC (never a virtual MAC).
    pub src_mac: Mac,
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// IPv4 source: the sender's primary address.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination (224.0.0.18, or a unicast peer).
    pub dst_ip: Ipv4Addr,
    /// IPv4 TTL (RFC 3768: 255).
    pub ttl: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// VRRP type (1: advertisement).
    pub kind: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority; 0 means "the master is leaving".
    pub priority: u8,
    /// Auth type (v2; 0 none, 1 PASS). Zero for v3.
    pub auth_type: u8,
    /// Advert interval: seconds in v2, centiseconds in v3.
    pub interval: u16,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr>,
    /// The v2 authentication data (8 bytes), if present.
    pub auth_data: Option<[u8; 8]>,
    /// Whether the VRRP checksum verifies (v2: over the VRRP message only).
    pub checksum_ok: bool,
}

impl Advert {
    /// The advert interval as a duration.
    pub fn interval(&self) -> Duration {
        match self.version {
            2 => Duration::from_secs(u64::from(self.interval)),
            _ => Duration::from_millis(u64::from(self.interval) * 10),
        }
    }
}

/// An ARP packet as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    /// Capture time since the epoch.
    pub time: Duration,
    /// Ethernet source.
    pub eth_src: Mac,
    /// Ethernet destination.
    pub eth_dst: Mac,
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// A gratuitous ARP: sender IP = target IP (keepalived sends requests).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// A request asking who has `ip`, not gratuitous: a host resolving it.
    pub fn asks_for(&self, ip: Ipv4Addr) -> bool {
        self.op == 1 && self.target_ip == ip && !self.is_gratuitous()
    }
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&b[at..at + 6]);
    mac
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The one's complement sum of `data` (RFC 1071), folded: 0xffff when a
/// message with its checksum field verifies.
fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum & 0xffff).unwrap_or(0)
}

/// The VRRP checksum to put into a message whose checksum field is zero.
pub fn vrrp_checksum(message: &[u8]) -> u16 {
    !ones_complement_sum(message)
}

/// Decodes a captured frame as a VRRP advert, if it is one (untagged IPv4,
/// protocol 112, a whole VRRP header and its addresses).
pub fn advert(frame: &Frame) -> Option<Advert> {
    let eth = EthernetFrame::new_checked(&frame.data[..]).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IPPROTO_VRRP || ip.is_fragment() {
        return None;
    }
    let v = ip.payload();
    if v.len() < VRRP_HEADER_LEN {
        return None;
    }
    let (version, kind) = (v[0] >> 4, v[0] & 0x0f);
    let count = usize::from(v[3]);
    let addr_end = VRRP_HEADER_LEN + 4 * count;
    if v.len() < addr_end {
        return None;
    }
    let addresses = (0..count).map(|i| ip_at(v, VRRP_HEADER_LEN + 4 * i)).collect();
    let (auth_type, interval, auth_data, message) = if version == 2 {
        let auth_data = v.get(addr_end..addr_end + V2_AUTH_LEN).map(|a| {
            let mut data = [0u8; 8];
            data.copy_from_slice(a);
            data
        });
        let end = if auth_data.is_some() { addr_end + V2_AUTH_LEN } else { addr_end };
        (v[4], u16::from(v[5]), auth_data, &v[..end])
    } else {
        (0, u16::from_be_bytes([v[4] & 0x0f, v[5]]), None, &v[..addr_end])
    };
    // v3 sums a pseudo-header too; only v2's checksum is checked here.
    let checksum_ok = version != 2 || ones_complement_sum(message) == 0xffff;
    Some(Advert {
        time: frame.time,
        src_mac: eth.src(),
        dst_mac: eth.dst(),
        src_ip: ip.src_addr(),
        dst_ip: ip.dst_addr(),
        ttl: ip.ttl(),
        version,
        kind,
        vrid: v[1],
        priority: v[2],
        auth_type,
        interval,
        addresses,
        auth_data,
        checksum_ok,
    })
}

/// Decodes a captured frame as Ethernet/IPv4 ARP, if it is one.
pub fn arp(frame: &Frame) -> Option<Arp> {
    let eth = EthernetFrame::new_checked(&frame.data[..]).ok()?;
    if eth.ethertype() != EtherType::Arp {
        return None;
    }
    let a = eth.payload();
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
    if a.len() < ARP_LEN || a[..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
        return None;
    }
    Some(Arp {
        time: frame.time,
        eth_src: eth.src(),
        eth_dst: eth.dst(),
        op: u16::from_be_bytes([a[6], a[7]]),
        sender_mac: mac_at(a, 8),
        sender_ip: ip_at(a, 14),
        target_mac: mac_at(a, 18),
        target_ip: ip_at(a, 24),
    })
}

/// Every advert among `frames`, in capture order.
pub fn adverts(frames: &[Frame]) -> Vec<Advert> {
    frames.iter().filter_map(advert).collect()
}

/// Every ARP packet among `frames`, in capture order.
pub fn arps(frames: &[Frame]) -> Vec<Arp> {
    frames.iter().filter_map(arp).collect()
}

/// The Ethernet sources of adverts with a nonzero priority sent at or after `since`.
pub fn advertisers(adverts: &[Advert], since: Duration) -> BTreeSet<Mac> {
    adverts.iter().filter(|a| a.time >= since && a.priority > 0).map(|a| a.src_mac).collect()
}

/// Gratuitous ARPs for `ip` sent from `mac` (Ethernet and ARP sender).
pub fn garps_from(arps: &[Arp], mac: Mac, ip: Ipv4Addr) -> Vec<&Arp> {
    arps.iter()
        .filter(|a| a.is_gratuitous() && a.sender_ip == ip)
        .filter(|a| a.eth_src == mac && a.sender_mac == mac)
        .collect()
}

/// A span of time, since the epoch, during which one sender advertised as master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Its first advert.
    pub start: Duration,
    /// Its last advert.
    pub end: Duration,
}

/// When `mac` acted as master: runs of its adverts (nonzero priority) no more
/// than `max_gap` apart. A priority-0 advert ends a run.
pub fn master_spans(adverts: &[Advert], mac: Mac, max_gap: Duration) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut open = false;
    for a in adverts.iter().filter(|a| a.src_mac == mac) {
        if a.priority == 0 {
            open = false;
            continue;
        }
        match spans.last_mut() {
            Some(last) if open && a.time.saturating_sub(last.end) <= max_gap => last.end = a.time,
            _ => spans.push(Span { start: a.time, end: a.time }),
        }
        open = true;
    }
    spans
}

/// The longest time both sets of spans cover at once.
pub fn longest_overlap(a: &[Span], b: &[Span]) -> Duration {
    let mut longest = Duration::ZERO;
    for x in a {
        for y in b {
            let (start, end) = (x.start.max(y.start), x.end.min(y.end));
            longest = longest.max(end.saturating_sub(start));
        }
    }
    longest
}

/// The adverts `host` sent at or after `since`, priority-0 ones left out.
pub fn adverts_from(frames: &[Frame], host: Host, since: Duration) -> Vec<Advert> {
    adverts(frames)
        .into_iter()
        .filter(|a| a.src_mac == host.mac() && a.time >= since && a.priority > 0)
        .collect()
}

/// Waits until `host` sent `n` adverts at or after `since`; returns the frames.
pub fn wait_adverts(
    cap: &Capture,
    host: Host,
    n: usize,
    since: Duration,
    timeout: Duration,
) -> anyhow::Result<Vec<Frame>> {
    cap.wait_for(&format!("{n} adverts from {}", host.name()), timeout, |f| {
        adverts_from(f, host, since).len() >= n
    })
}

/// GARP times grouped into bursts: a gap of more than a second starts a new one.
pub fn garp_bursts(times: &[Duration]) -> Vec<Vec<Duration>> {
    let mut bursts: Vec<Vec<Duration>> = Vec::new();
    for &t in times {
        match bursts.last_mut() {
            Some(burst) if t - burst[burst.len() - 1] <= Duration::from_secs(1) => burst.push(t),
            _ => bursts.push(vec![t]),
        }
    }
    bursts
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dataplane::wire::build::{self, FrameSpec};
    use proptest::prelude::*;

    const LB1: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65];
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    /// A VRRPv2 advert as keepalived sends it (fixtures/README.md).
    fn v2_advert(priority: u8, ident: u16) -> Vec<u8> {
        let mut vrrp = vec![0x21, 51, priority, 1, 1, 1, 0, 0];
        vrrp.extend_from_slice(&VIP.octets());
        vrrp.extend_from_slice(b"1111\0\0\0\0");
        let sum = vrrp_checksum(&vrrp);
        vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
        let spec = FrameSpec {
            src_mac: LB1,
            dst_mac: VRRP_GROUP_MAC,
            src_ip: Ipv4Addr::new(192, 168, 10, 101),
            dst_ip: VRRP_GROUP,
            src_port: 0,
            dst_port: 0,
            ttl: 255,
            ident,
            ip_options: &[],
        };
        build::ipv4_frame(&spec, IPPROTO_VRRP, &vrrp)
    }

    fn garp(mac: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&VIP.octets());
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&VIP.octets());
        f
    }

    fn at(secs: f64, data: Vec<u8>) -> Frame {
        let orig_len = u32::try_from(data.len()).unwrap();
        Frame { time: Duration::from_secs_f64(secs), data, orig_len }
    }

    #[test]
    fn decodes_a_keepalived_style_advert() {
        let a = advert(&at(1.5, v2_advert(120, 7))).unwrap();
        assert_eq!((a.version, a.kind, a.vrid, a.priority), (2, 1, 51, 120));
        assert_eq!((a.src_mac, a.dst_mac, a.ttl), (LB1, VRRP_GROUP_MAC, 255));
        assert_eq!((a.dst_ip, a.addresses.clone()), (VRRP_GROUP, vec![VIP]));
        assert_eq!((a.auth_type, a.auth_data), (1, Some(*b"1111\0\0\0\0")));
        assert_eq!(a.interval(), Duration::from_secs(1));
        assert!(a.checksum_ok);
        assert_eq!(a.time, Duration::from_millis(1500));
        let mut bad = v2_advert(120, 7);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!advert(&at(0.0, bad)).unwrap().checksum_ok);
        assert_eq!(arp(&at(0.0, v2_advert(1, 1))), None);
    }

    #[test]
    fn decodes_a_gratuitous_arp() {
        let a = arp(&at(2.0, garp(LB1))).unwrap();
        assert!(a.is_gratuitous());
        assert!(!a.asks_for(VIP), "a GARP is no resolution");
        assert_eq!((a.op, a.sender_mac, a.eth_src, a.sender_ip), (1, LB1, LB1, VIP));
        assert_eq!(garps_from(std::slice::from_ref(&a), LB1, VIP).len(), 1);
        assert_eq!(garps_from(&[a], [2, 0, 0, 0, 0, 1], VIP).len(), 0);
        assert_eq!(advert(&at(0.0, garp(LB1))), None);
    }

    #[test]
    fn virtual_router_macs_are_recognised() {
        assert!(is_virtual_router_mac([0x00, 0x00, 0x5e, 0x00, 0x01, 51]));
        assert!(!is_virtual_router_mac(LB1));
        assert!(!is_virtual_router_mac(VRRP_GROUP_MAC));
    }

    #[test]
    fn spans_and_overlap() {
        let other: Mac = [0x02, 0, 0, 0x0a, 0, 0x66];
        let mk = |mac: Mac, t: f64, prio: u8| {
            let mut a = advert(&at(t, v2_advert(prio, 1))).unwrap();
            a.src_mac = mac;
            a
        };
        // lb1 advertises 0..3, says goodbye at 3.2; the other takes over at 3.8.
        let ads = vec![
            mk(LB1, 0.0, 120),
            mk(LB1, 1.0, 120),
            mk(LB1, 2.0, 120),
            mk(LB1, 3.0, 120),
            mk(LB1, 3.2, 0),
            mk(other, 3.8, 110),
            mk(other, 4.8, 110),
            mk(LB1, 5.0, 120), // back, with a gap: a new span
            mk(other, 5.8, 110),
        ];
        let gap = Duration::from_millis(1500);
        let lb1 = master_spans(&ads, LB1, gap);
        let secs = |s: &Span| (s.start.as_secs_f64(), s.end.as_secs_f64());
        assert_eq!(lb1.iter().map(secs).collect::<Vec<_>>(), [(0.0, 3.0), (5.0, 5.0)]);
        let o = master_spans(&ads, other, gap);
        assert_eq!(o.iter().map(secs).collect::<Vec<_>>(), [(3.8, 5.8)]);
        assert_eq!(longest_overlap(&lb1, &o), Duration::ZERO, "a point inside is no length");
        let lb1_long = [Span { start: Duration::from_secs(4), end: Duration::from_secs(6) }];
        assert_eq!(longest_overlap(&lb1_long, &o), Duration::from_millis(1800));
        let all = advertisers(&ads, Duration::from_secs(4));
        assert_eq!(all, BTreeSet::from([LB1, other]));
        assert_eq!(advertisers(&ads, Duration::from_secs(6)), BTreeSet::new());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_not_without_panic(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            let frame = at(0.0, data.clone());
            if let Some(a) = advert(&frame) {
                prop_assert!(data.len() >= 14 + 20 + VRRP_HEADER_LEN);
                prop_assert!(a.addresses.len() <= 255);
            }
            if let Some(a) = arp(&frame) {
                prop_assert!(data.len() >= 14 + ARP_LEN);
                prop_assert_eq!(a.eth_src, mac_at(&data, 6));
            }
        }

        #[test]
        fn checksums_we_write_verify(prio in any::<u8>(), ident in any::<u16>()) {
            let a = advert(&at(0.0, v2_advert(prio, ident))).unwrap();
            prop_assert!(a.checksum_ok);
            prop_assert_eq!(a.priority, prio);
        }

        #[test]
        fn overlap_is_symmetric_and_bounded(
            a in proptest::collection::vec((0u64..100, 0u64..20), 0..6),
            b in proptest::collection::vec((0u64..100, 0u64..20), 0..6),
        ) {
            let spans = |v: &[(u64, u64)]| v.iter()
                .map(|&(s, l)| Span { start: Duration::from_secs(s), end: Duration::from_secs(s + l) })
                .collect::<Vec<_>>();
            let (a, b) = (spans(&a), spans(&b));
            let o = longest_overlap(&a, &b);
            prop_assert_eq!(o, longest_overlap(&b, &a));
            let longest_a = a.iter().map(|s| s.end - s.start).max().unwrap_or_default();
            prop_assert!(o <= longest_a);
        }
    }
}
