//! Hand-made frames for injection, built with `dataplane::wire`: the kinds of
//! bad input the data plane must survive, each paired with the counter the
//! final counters must show it in, and a little random garbage.

use std::net::Ipv4Addr;

use dataplane::tables::Mac;
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{EtherType, EthernetFrame, Ipv4Packet, TcpFlags};

/// Who sends the frames and where to: MACs, source address, VIP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Ethernet source (e.g. the router's eth0).
    pub src_mac: Mac,
    /// Ethernet destination (e.g. lb1's eth0).
    pub dst_mac: Mac,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// The VIP.
    pub vip: Ipv4Addr,
    /// The service port at the VIP.
    pub port: u16,
}

impl Endpoints {
    /// A SYN to VIP:port from source port `sport`, IPv4 ident `ident`, with
    /// `ip_options`.
    pub fn syn(&self, sport: u16, ident: u16, ip_options: &[u8]) -> Vec<u8> {
        let spec = FrameSpec {
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            src_ip: self.src_ip,
            dst_ip: self.vip,
            src_port: sport,
            dst_port: self.port,
            ttl: 64,
            ident,
            ip_options,
        };
        build::tcp_frame(&spec, TcpFlags::SYN, &[])
    }

    /// An Ethernet header from `src_mac` to `dst_mac` with `ethertype`, then `payload`.
    pub fn ethernet(&self, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + payload.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst(self.dst_mac);
        eth.set_src(self.src_mac);
        eth.set_ethertype(ethertype);
        eth.payload_mut().copy_from_slice(payload);
        frame
    }
}

/// A kind of bad (or merely unusual) frame to a VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// IPv4 EtherType but only 10 bytes of the IPv4 header.
    TruncatedIpv4Header,
    /// A whole IPv4 header whose total length claims more than the frame holds.
    TruncatedPacket,
    /// To the VIP with 2 bytes of TCP: not even the ports.
    TruncatedPorts,
    /// To VIP:port with 12 bytes of TCP: the ports, but not the flags.
    TruncatedTcpHeader,
    /// IHL 4: a header shorter than the minimum.
    ShortIhl,
    /// A valid SYN to VIP:port carrying IPv4 options (forwarded, counted).
    IpOptions,
    /// The first fragment (MF set) of a SYN to VIP:port.
    FirstFragment,
    /// A later fragment (offset 64 bytes) to the VIP: no ports.
    LaterFragment,
    /// An 802.1Q-tagged SYN to VIP:port.
    Vlan,
    /// An 802.1ad-tagged SYN to VIP:port.
    QinQ,
    /// An IPv6 packet (no next header).
    Ipv6,
    /// EtherType 0x88b5 (local experimental): not IP at all.
    NonIp,
    /// A SYN to VIP:port whose IPv4 header checksum is wrong.
    BadChecksum,
}

impl Malformed {
    /// Every kind.
    pub const ALL: [Malformed; 13] = [
        Malformed::TruncatedIpv4Header,
        Malformed::TruncatedPacket,
        Malformed::TruncatedPorts,
        Malformed::TruncatedTcpHeader,
        Malformed::ShortIhl,
        Malformed::IpOptions,
        Malformed::FirstFragment,
        Malformed::LaterFragment,
        Malformed::Vlan,
        Malformed::QinQ,
        Malformed::Ipv6,
        Malformed::NonIp,
        Malformed::BadChecksum,
    ];

    /// The xdplb counter (a key of its `final counters:` line) this kind
    /// must move: the steering program passes what is not ours, the
    /// workers drop what is ours but broken.
    pub const fn counter(self) -> &'static str {
        match self {
            Self::TruncatedIpv4Header | Self::TruncatedPacket | Self::TruncatedPorts => {
                "steer.truncated"
            }
            Self::TruncatedTcpHeader => "worker.drop.truncated",
            Self::ShortIhl => "steer.bad_ipv4_header",
            Self::IpOptions => "worker.ip_options",
            Self::FirstFragment | Self::LaterFragment => "worker.drop.fragment",
            Self::Vlan | Self::QinQ => "steer.vlan",
            Self::Ipv6 | Self::NonIp => "steer.not_ipv4",
            Self::BadChecksum => "worker.drop.bad_ipv4_checksum",
        }
    }

    /// Frame number `i` of this kind (`i` varies the source port and IPv4 ident).
    pub fn frame(self, to: &Endpoints, i: u16) -> Vec<u8> {
        let sport = 20_000u16.wrapping_add(i);
        let ident = 0x4000u16.wrapping_add(i);
        match self {
            Self::TruncatedIpv4Header => {
                let syn = to.syn(sport, ident, &[]);
                syn[..14 + 10].to_vec()
            }
            Self::TruncatedPacket => {
                let syn = to.syn(sport, ident, &[]);
                syn[..14 + 20 + 2].to_vec()
            }
            Self::TruncatedPorts => cut_ipv4(to.syn(sport, ident, &[]), 20 + 2),
            Self::TruncatedTcpHeader => cut_ipv4(to.syn(sport, ident, &[]), 20 + 12),
            Self::ShortIhl => {
                let mut frame = to.syn(sport, ident, &[]);
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
                ip.set_header_len(16);
                ip.fill_checksum();
                frame
            }
            // Router Alert (RFC 2113), the option routers do meet.
            Self::IpOptions => to.syn(sport, ident, &[0x94, 0x04, 0x00, 0x00]),
            Self::FirstFragment => fragment(to.syn(sport, ident, &[]), true, 0),
            Self::LaterFragment => fragment(to.syn(sport, ident, &[]), false, 8),
            Self::Vlan => build::with_vlan(&to.syn(sport, ident, &[]), EtherType::Vlan, 10),
            Self::QinQ => build::with_vlan(&to.syn(sport, ident, &[]), EtherType::QinQ, 10),
            Self::Ipv6 => to.ethernet(EtherType::Ipv6, &ipv6_no_next_header(i)),
            Self::NonIp => {
                let mut payload = vec![0u8; 46];
                payload[..2].copy_from_slice(&i.to_be_bytes());
                to.ethernet(EtherType::Unknown(0x88b5), &payload)
            }
            Self::BadChecksum => {
                let mut frame = to.syn(sport, ident, &[]);
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
                let good = ip.checksum();
                ip.set_checksum(good ^ 0x0101);
                frame
            }
        }
    }
}

/// Keeps the first `ip_len` bytes of the IPv4 packet, with the total length
/// (and checksum) saying so: a short but self-consistent packet.
fn cut_ipv4(mut frame: Vec<u8>, ip_len: u16) -> Vec<u8> {
    frame.truncate(14 + usize::from(ip_len));
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_total_len(ip_len);
    ip.fill_checksum();
    frame
}

/// Makes the packet a fragment: MF as given, `offset` in 8-byte units, DF off.
fn fragment(mut frame: Vec<u8>, more: bool, offset: u16) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_dont_frag(false);
    ip.set_more_frags(more);
    ip.set_frag_offset(offset);
    ip.fill_checksum();
    frame
}

/// A 40-byte IPv6 header, next header 59 (none), fe80::1 → fe80::2.
fn ipv6_no_next_header(flow: u16) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[2..4].copy_from_slice(&flow.to_be_bytes());
    h[6] = 59;
    h[7] = 64;
    h[8] = 0xfe;
    h[9] = 0x80;
    h[23] = 1;
    h[24] = 0xfe;
    h[25] = 0x80;
    h[39] = 2;
    h
}

/// A small deterministic generator (xorshift64*) for garbage frames; no
/// crate needed and every run sends the same bytes for the same seed.
#[derive(Debug, Clone)]
pub struct Garbage(u64);

impl Garbage {
    /// A generator from `seed` (0 is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
    }

    /// A frame to `to.dst_mac` of 14–200 bytes: every other one random after
    /// the MACs, the others an IPv4 header start to the VIP:port over random
    /// bytes, so that garbage reaches past the steering program too.
    pub fn frame(&mut self, to: &Endpoints) -> Vec<u8> {
        let len = 14 + (self.next() % 187) as usize;
        let mut frame = self.bytes(len);
        frame[..6].copy_from_slice(&to.dst_mac);
        frame[6..12].copy_from_slice(&to.src_mac);
        if self.next() % 2 == 0 && len >= 14 + 24 {
            frame[12..14].copy_from_slice(&[0x08, 0x00]);
            frame[14] = 0x45;
            let total = u16::try_from(len - 14).unwrap_or(u16::MAX);
            frame[16..18].copy_from_slice(&total.to_be_bytes());
            frame[23] = 6;
            frame[30..34].copy_from_slice(&to.vip.octets());
            frame[36..38].copy_from_slice(&to.port.to_be_bytes());
        }
        frame
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dataplane::wire::{TcpHeader, VlanTag, WireError};
    use proptest::prelude::*;

    const TO: Endpoints = Endpoints {
        src_mac: [0x02, 0, 0, 0x0a, 0, 0x01],
        dst_mac: [0x02, 0, 0, 0x0a, 0, 0x65],
        src_ip: Ipv4Addr::new(192, 168, 10, 1),
        vip: Ipv4Addr::new(192, 168, 10, 110),
        port: 80,
    };

    fn ip(frame: &[u8]) -> Result<Ipv4Packet<&[u8]>, WireError> {
        Ipv4Packet::new_checked(&frame[14..])
    }

    /// Each kind has the defect its name says, as the wire views see it.
    fn check_kind(kind: Malformed, frame: &[u8]) -> Result<(), TestCaseError> {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        prop_assert_eq!((eth.src(), eth.dst()), (TO.src_mac, TO.dst_mac));
        match kind {
            Malformed::TruncatedIpv4Header => {
                let truncated = matches!(ip(frame), Err(WireError::Truncated { .. }));
                prop_assert!(truncated);
            }
            Malformed::TruncatedPacket => {
                let too_long = matches!(ip(frame), Err(WireError::BadTotalLength { .. }));
                prop_assert!(too_long);
            }
            Malformed::TruncatedPorts | Malformed::TruncatedTcpHeader => {
                let p = ip(frame).unwrap();
                prop_assert!(p.verify_checksum());
                prop_assert_eq!(p.dst_addr(), TO.vip);
                prop_assert!(TcpHeader::new_checked(p.payload()).is_err());
                let has_ports = dataplane::wire::ports(p.payload()).is_some();
                prop_assert_eq!(has_ports, kind == Malformed::TruncatedTcpHeader);
            }
            Malformed::ShortIhl => {
                prop_assert!(matches!(ip(frame), Err(WireError::BadHeaderLength(4))));
            }
            Malformed::IpOptions => {
                let p = ip(frame).unwrap();
                prop_assert!(p.verify_checksum() && !p.options().is_empty() && !p.is_fragment());
                prop_assert_eq!(TcpHeader::new_checked(p.payload()).unwrap().dst_port(), TO.port);
            }
            Malformed::FirstFragment | Malformed::LaterFragment => {
                let p = ip(frame).unwrap();
                prop_assert!(p.verify_checksum() && p.is_fragment() && !p.dont_frag());
                prop_assert_eq!(p.more_frags(), kind == Malformed::FirstFragment);
                prop_assert_eq!(p.frag_offset() == 0, kind == Malformed::FirstFragment);
            }
            Malformed::Vlan | Malformed::QinQ => {
                prop_assert!(eth.ethertype().is_vlan());
                let tag = VlanTag::new_checked(eth.payload()).unwrap();
                prop_assert_eq!(tag.inner_ethertype(), EtherType::Ipv4);
            }
            Malformed::Ipv6 => prop_assert_eq!(eth.ethertype(), EtherType::Ipv6),
            Malformed::NonIp => prop_assert_eq!(eth.ethertype(), EtherType::Unknown(0x88b5)),
            Malformed::BadChecksum => {
                let p = ip(frame).unwrap();
                prop_assert!(!p.verify_checksum());
                prop_assert_eq!(p.dst_addr(), TO.vip);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn every_kind_has_its_defect(i in any::<u16>()) {
            for kind in Malformed::ALL {
                check_kind(kind, &kind.frame(&TO, i))?;
            }
        }

        #[test]
        fn garbage_is_addressed_and_bounded(seed in any::<u64>()) {
            let mut g = Garbage::new(seed);
            for _ in 0..20 {
                let f = g.frame(&TO);
                prop_assert!((14..=200).contains(&f.len()));
                prop_assert_eq!(&f[..6], &TO.dst_mac[..]);
                prop_assert_eq!(&f[6..12], &TO.src_mac[..]);
            }
        }
    }

    #[test]
    fn frames_differ_by_index() {
        for kind in Malformed::ALL {
            assert_ne!(kind.frame(&TO, 1), kind.frame(&TO, 2), "{kind:?}");
        }
    }
}
