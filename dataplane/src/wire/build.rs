//! Complete, valid frames for unit tests, the traffic generator and the
//! integration tests, which send them to real Linux hosts: every IPv4, TCP,
//! UDP and ICMP checksum is right. Builders allocate; views never do.

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType, EthernetFrame};
use super::icmp::{IcmpPacket, IcmpType, CODE_FRAG_NEEDED};
use super::ipv4::{self, Ipv4Packet, PROTOCOL_ICMP, PROTOCOL_TCP, PROTOCOL_UDP};
use super::tcp::{self, TcpFlags, TcpHeader};
use super::udp::{self, UdpHeader};
use super::vlan::{VlanTag, TAG_LEN};
use crate::tables::Mac;

/// The most option bytes an IPv4 header holds (IHL 15).
pub const MAX_IP_OPTIONS: usize = ipv4::MAX_HEADER_LEN - ipv4::MIN_HEADER_LEN;

/// The sequence number [`tcp_frame`] uses.
pub const DEFAULT_SEQ: u32 = 1_000_000_000;

/// The window [`tcp_frame`] advertises (Linux's initial window for MSS 1460).
pub const DEFAULT_WINDOW: u16 = 64240;

//= https://www.rfc-editor.org/rfc/rfc1812#section-4.3.2.3
//# the ICMP datagram SHOULD contain as much of the original
//# datagram as possible without the length of the ICMP datagram
//# exceeding 576 bytes.
const ICMP_ERROR_MAX_LEN: usize = 576;

/// Addresses and IPv4 fields of a frame to build. Every frame gets DF set,
/// as Linux sends TCP and UDP with path-MTU discovery on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec<'a> {
    /// Ethernet source.
    pub src_mac: Mac,
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// TCP/UDP source port (unused by ICMP builders).
    pub src_port: u16,
    /// TCP/UDP destination port (unused by ICMP builders).
    pub dst_port: u16,
    /// IPv4 time to live.
    pub ttl: u8,
    /// IPv4 identification.
    pub ident: u16,
    /// IPv4 options, zero-padded (End of Options List) to a multiple of 4.
    pub ip_options: &'a [u8],
}

impl FrameSpec<'static> {
    /// A spec from `src` to `dst` with locally administered MACs
    /// 02:00:00:00:00:01 → 02:00:00:00:00:02, TTL 64, ident 0, no options.
    pub fn new(src_ip: Ipv4Addr, src_port: u16, dst_ip: Ipv4Addr, dst_port: u16) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            ttl: 64,
            ident: 0,
            ip_options: &[],
        }
    }
}

/// The TCP fields [`tcp_frame_with`] takes beyond the ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window.
    pub window: u16,
    /// TCP options, zero-padded (End of Option List) to a multiple of 4.
    pub options: &'a [u8],
}

impl TcpSegment<'static> {
    /// A segment with `flags`, [`DEFAULT_SEQ`], ack 0, [`DEFAULT_WINDOW`], no options.
    pub fn new(flags: TcpFlags) -> Self {
        Self { seq: DEFAULT_SEQ, ack: 0, flags, window: DEFAULT_WINDOW, options: &[] }
    }
}

/// An Ethernet + IPv4 frame around `l4_len` bytes that `fill_l4` writes.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
fn ipv4_frame_with(
    spec: &FrameSpec<'_>,
    protocol: u8,
    l4_len: usize,
    fill_l4: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let options_len = spec.ip_options.len().next_multiple_of(4);
    assert!(
        options_len <= MAX_IP_OPTIONS,
        "{} bytes of IPv4 options, at most {MAX_IP_OPTIONS} fit",
        spec.ip_options.len()
    );
    let header_len = ipv4::MIN_HEADER_LEN + options_len;
    let Ok(total_len) = u16::try_from(header_len + l4_len) else {
        panic!("IPv4 packet of {} bytes, at most 65535 fit", header_len + l4_len);
    };

    let mut frame = vec![0u8; ethernet::HEADER_LEN + usize::from(total_len)];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst(spec.dst_mac);
    eth.set_src(spec.src_mac);
    eth.set_ethertype(EtherType::Ipv4);

    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_header_len(header_len);
    ip.set_total_len(total_len);
    ip.set_ident(spec.ident);
    ip.set_dont_frag(true);
    ip.set_ttl(spec.ttl);
    ip.set_protocol(protocol);
    ip.set_src_addr(spec.src_ip);
    ip.set_dst_addr(spec.dst_ip);
    ip.options_mut()[..spec.ip_options.len()].copy_from_slice(spec.ip_options);
    ip.fill_checksum();
    fill_l4(ip.payload_mut());
    frame
}

/// An Ethernet + IPv4 frame carrying `l4` as given (its checksum, if any,
/// is the caller's), with protocol number `protocol`.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
pub fn ipv4_frame(spec: &FrameSpec<'_>, protocol: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_frame_with(spec, protocol, l4.len(), |buf| buf.copy_from_slice(l4))
}

/// A TCP segment with `flags`, [`DEFAULT_SEQ`], ack 0, [`DEFAULT_WINDOW`],
/// no TCP options, and `payload`.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
pub fn tcp_frame(spec: &FrameSpec<'_>, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    tcp_frame_with(spec, &TcpSegment::new(flags), payload)
}

/// A TCP segment with every field chosen.
///
/// # Panics
/// If either options exceed 40 bytes or the packet 65535 bytes.
pub fn tcp_frame_with(spec: &FrameSpec<'_>, segment: &TcpSegment<'_>, payload: &[u8]) -> Vec<u8> {
    let options_len = segment.options.len().next_multiple_of(4);
    assert!(
        options_len <= MAX_IP_OPTIONS,
        "{} bytes of TCP options, at most 40 fit",
        segment.options.len()
    );
    let header_len = tcp::MIN_HEADER_LEN + options_len;
    ipv4_frame_with(spec, PROTOCOL_TCP, header_len + payload.len(), |buf| {
        let mut tcp = TcpHeader::new_unchecked(buf);
        tcp.set_src_port(spec.src_port);
        tcp.set_dst_port(spec.dst_port);
        tcp.set_seq(segment.seq);
        tcp.set_ack(segment.ack);
        tcp.set_header_len(header_len);
        tcp.set_flags(segment.flags);
        tcp.set_window(segment.window);
        tcp.options_mut()[..segment.options.len()].copy_from_slice(segment.options);
        tcp.payload_mut().copy_from_slice(payload);
        tcp.fill_checksum(spec.src_ip, spec.dst_ip);
    })
}

/// A UDP datagram carrying `payload`.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
pub fn udp_frame(spec: &FrameSpec<'_>, payload: &[u8]) -> Vec<u8> {
    let len = udp::HEADER_LEN + payload.len();
    ipv4_frame_with(spec, PROTOCOL_UDP, len, |buf| {
        let mut udp = UdpHeader::new_unchecked(buf);
        udp.set_src_port(spec.src_port);
        udp.set_dst_port(spec.dst_port);
        // ipv4_frame_with has checked that the whole packet fits in a u16.
        udp.set_length(u16::try_from(len).unwrap_or(u16::MAX));
        udp.payload_mut().copy_from_slice(payload);
        udp.fill_checksum(spec.src_ip, spec.dst_ip);
    })
}

/// An ICMP message of any type; the ports of `spec` are unused.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
pub fn icmp_frame(
    spec: &FrameSpec<'_>,
    msg_type: IcmpType,
    code: u8,
    rest_of_header: [u8; 4],
    payload: &[u8],
) -> Vec<u8> {
    let len = super::icmp::HEADER_LEN + payload.len();
    ipv4_frame_with(spec, PROTOCOL_ICMP, len, |buf| {
        let mut icmp = IcmpPacket::new_unchecked(buf);
        icmp.set_msg_type(msg_type);
        icmp.set_code(code);
        icmp.set_rest_of_header(rest_of_header);
        icmp.payload_mut().copy_from_slice(payload);
        icmp.fill_checksum();
    })
}

/// An echo request (ping) with `ident`, `seq` and `payload`.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`] or the packet 65535 bytes.
pub fn icmp_echo_request_frame(
    spec: &FrameSpec<'_>,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let [i0, i1] = ident.to_be_bytes();
    let [s0, s1] = seq.to_be_bytes();
    icmp_frame(spec, IcmpType::EchoRequest, 0, [i0, i1, s0, s1], payload)
}

/// A "fragmentation needed and DF set" with next-hop `mtu` about
/// `original_frame` (an Ethernet frame, typically one a real server sent
/// from the VIP): quotes its IPv4 packet from the header on, cut to its
/// total length and to what fits a 576-byte ICMP datagram (RFC 1812).
/// Bytes after the Ethernet header are quoted even if they are not IPv4,
/// so that tests can quote garbage.
///
/// # Panics
/// If the options exceed [`MAX_IP_OPTIONS`].
pub fn icmp_frag_needed_frame(spec: &FrameSpec<'_>, mtu: u16, original_frame: &[u8]) -> Vec<u8> {
    let original = original_frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
    let original = match Ipv4Packet::new_checked_header(original) {
        Ok(ip) => &original[..usize::from(ip.total_len()).min(original.len())],
        Err(_) => original,
    };
    let outer_header =
        ipv4::MIN_HEADER_LEN + spec.ip_options.len().next_multiple_of(4) + super::icmp::HEADER_LEN;
    let room = ICMP_ERROR_MAX_LEN.saturating_sub(outer_header);
    let quote = &original[..original.len().min(room)];
    let [hi, lo] = mtu.to_be_bytes();
    icmp_frame(spec, IcmpType::DestUnreachable, CODE_FRAG_NEEDED, [0, 0, hi, lo], quote)
}

/// `frame` with an 802.1Q (`tpid` [`EtherType::Vlan`]) or 802.1ad
/// ([`EtherType::QinQ`]) tag carrying `vid` inserted after the MACs; the
/// original EtherType becomes the tag's inner one. A frame shorter than an
/// Ethernet header is returned unchanged.
pub fn with_vlan(frame: &[u8], tpid: EtherType, vid: u16) -> Vec<u8> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return frame.to_vec();
    };
    let mut tagged = vec![0u8; frame.len() + TAG_LEN];
    let mut outer = EthernetFrame::new_unchecked(&mut tagged[..]);
    outer.set_dst(eth.dst());
    outer.set_src(eth.src());
    outer.set_ethertype(tpid);
    let mut tag = VlanTag::new_unchecked(outer.payload_mut());
    tag.set_vid(vid);
    tag.set_inner_ethertype(eth.ethertype());
    tag.payload_mut().copy_from_slice(eth.payload());
    tagged
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{ports, WireError};
    use proptest::prelude::*;

    // The lab of the seed: a client behind the router reaches the VIP on
    // lvs1. MACs as in shared/fixtures/README.md.
    const ROUTER_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x01];
    const LVS1_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65];
    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    // The three frames below were written by hand (checksums by a separate
    // Python script), saved as a pcap and decoded by tcpdump 4.99.3 with
    // -vv, which reported every checksum correct and, for a copy with each
    // checksum off by one, "bad cksum" / "incorrect" / "wrong icmp cksum".

    /// A client's SYN to the VIP, as the router forwards it to lvs1.
    #[rustfmt::skip]
    const SYN_FRAME: [u8; 58] = [
        // Ethernet: 02:00:00:0a:00:01 > 02:00:00:0a:00:65, IPv4
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x01,
        0x08, 0x00,
        // IPv4: len 44, id 1234, DF, ttl 63, TCP, cksum 0x9739, 192.168.20.2 > 192.168.10.110
        0x45, 0x00, 0x00, 0x2c, 0x04, 0xd2, 0x40, 0x00,
        0x3f, 0x06, 0x97, 0x39, 0xc0, 0xa8, 0x14, 0x02,
        0xc0, 0xa8, 0x0a, 0x6e,
        // TCP: 40000 > 80, seq 1000000000, offset 6, SYN, win 64240, cksum 0x5b49
        0x9c, 0x40, 0x00, 0x50, 0x3b, 0x9a, 0xca, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0,
        0x5b, 0x49, 0x00, 0x00,
        // TCP options: MSS 1460
        0x02, 0x04, 0x05, 0xb4,
    ];

    /// A client's UDP datagram "hello" to VIP port 9999.
    #[rustfmt::skip]
    const UDP_FRAME: [u8; 47] = [
        // Ethernet: 02:00:00:0a:00:01 > 02:00:00:0a:00:65, IPv4
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x01,
        0x08, 0x00,
        // IPv4: len 33, id 1235, DF, ttl 63, UDP, cksum 0x9738, 192.168.20.2 > 192.168.10.110
        0x45, 0x00, 0x00, 0x21, 0x04, 0xd3, 0x40, 0x00,
        0x3f, 0x11, 0x97, 0x38, 0xc0, 0xa8, 0x14, 0x02,
        0xc0, 0xa8, 0x0a, 0x6e,
        // UDP: 40001 > 9999, length 13, cksum 0x58f0
        0x9c, 0x41, 0x27, 0x0f, 0x00, 0x0d, 0x58, 0xf0,
        // "hello"
        0x68, 0x65, 0x6c, 0x6c, 0x6f,
    ];

    /// The router's "need to frag, MTU 1400" to the VIP about a 1500-byte
    /// reply a real server sent from VIP:80 to the client.
    #[rustfmt::skip]
    const FRAG_NEEDED_FRAME: [u8; 70] = [
        // Ethernet: 02:00:00:0a:00:01 > 02:00:00:0a:00:65, IPv4
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x01,
        0x08, 0x00,
        // IPv4: len 56, id 256, DF, ttl 64, ICMP, cksum 0xa405, 192.168.10.1 > 192.168.10.110
        0x45, 0x00, 0x00, 0x38, 0x01, 0x00, 0x40, 0x00,
        0x40, 0x01, 0xa4, 0x05, 0xc0, 0xa8, 0x0a, 0x01,
        0xc0, 0xa8, 0x0a, 0x6e,
        // ICMP: type 3, code 4, cksum 0x56ed, unused, MTU 1400
        0x03, 0x04, 0x56, 0xed, 0x00, 0x00, 0x05, 0x78,
        // Quoted IPv4: len 1500, id 0x5678, DF, ttl 64, TCP, cksum 0x3ee3,
        // 192.168.10.110 > 192.168.20.2
        0x45, 0x00, 0x05, 0xdc, 0x56, 0x78, 0x40, 0x00,
        0x40, 0x06, 0x3e, 0xe3, 0xc0, 0xa8, 0x0a, 0x6e,
        0xc0, 0xa8, 0x14, 0x02,
        // Quoted TCP, first 8 bytes: 80 > 40000, seq 0x01020304
        0x00, 0x50, 0x9c, 0x40, 0x01, 0x02, 0x03, 0x04,
    ];

    fn client_spec(dst_port: u16, src_port: u16, ident: u16) -> FrameSpec<'static> {
        FrameSpec {
            src_mac: ROUTER_MAC,
            dst_mac: LVS1_MAC,
            src_ip: CLIENT,
            dst_ip: VIP,
            src_port,
            dst_port,
            ttl: 63,
            ident,
            ip_options: &[],
        }
    }

    #[test]
    fn builds_the_golden_syn() {
        let segment =
            TcpSegment { options: &[0x02, 0x04, 0x05, 0xb4], ..TcpSegment::new(TcpFlags::SYN) };
        let frame = tcp_frame_with(&client_spec(80, 40000, 1234), &segment, &[]);
        assert_eq!(frame, SYN_FRAME);
    }

    #[test]
    fn parses_the_golden_syn() {
        let eth = EthernetFrame::new_checked(&SYN_FRAME[..]).unwrap();
        assert_eq!(
            (eth.src(), eth.dst(), eth.ethertype()),
            (ROUTER_MAC, LVS1_MAC, EtherType::Ipv4)
        );
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum() && ip.dont_frag() && !ip.is_fragment());
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (CLIENT, VIP, PROTOCOL_TCP));
        let tcp = TcpHeader::new_checked(ip.payload()).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port(), tcp.flags()), (40000, 80, TcpFlags::SYN));
        assert!(tcp.verify_checksum(CLIENT, VIP));
    }

    #[test]
    fn builds_the_golden_udp() {
        assert_eq!(udp_frame(&client_spec(9999, 40001, 1235), b"hello"), UDP_FRAME);
    }

    #[test]
    fn builds_the_golden_frag_needed() {
        let reply = FrameSpec {
            src_mac: LVS1_MAC,
            dst_mac: ROUTER_MAC,
            src_ip: VIP,
            dst_ip: CLIENT,
            src_port: 80,
            dst_port: 40000,
            ttl: 64,
            ident: 0x5678,
            ip_options: &[],
        };
        let segment = TcpSegment {
            seq: 0x0102_0304,
            ack: DEFAULT_SEQ + 1,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            ..TcpSegment::new(TcpFlags::ACK)
        };
        let original = tcp_frame_with(&reply, &segment, &[0; 1460]);
        assert_eq!(original.len(), 1514);
        let router = FrameSpec {
            src_ip: ROUTER,
            dst_ip: VIP,
            ttl: 64,
            ident: 0x0100,
            ..client_spec(0, 0, 0)
        };
        // The router quotes only the header and 8 bytes here; see
        // `frag_needed_quotes_up_to_576_bytes` for the default.
        let frame = icmp_frag_needed_frame(&router, 1400, &original[..14 + 28]);
        assert_eq!(frame, FRAG_NEEDED_FRAME);
    }

    #[test]
    fn frag_needed_quotes_up_to_576_bytes() {
        let reply = FrameSpec::new(VIP, 80, CLIENT, 40000);
        let original = tcp_frame(&reply, TcpFlags::ACK, &[0xab; 1460]);
        let frame = icmp_frag_needed_frame(&FrameSpec::new(ROUTER, 0, VIP, 0), 1400, &original);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(usize::from(ip.total_len()), 576);
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.payload(), &original[14..14 + 548]);

        // A short original is quoted whole but without its Ethernet padding.
        let mut short = tcp_frame(&reply, TcpFlags::ACK, &[]);
        short.resize(60, 0);
        let frame = icmp_frag_needed_frame(&FrameSpec::new(ROUTER, 0, VIP, 0), 1400, &short);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.payload(), &short[14..54]);
    }

    #[test]
    fn echo_request_carries_ident_and_seq() {
        let frame = icmp_echo_request_frame(&FrameSpec::new(CLIENT, 0, VIP, 0), 0x1234, 7, b"ping");
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), IcmpType::EchoRequest);
        assert_eq!(icmp.rest_of_header(), [0x12, 0x34, 0, 7]);
        assert_eq!(icmp.payload(), b"ping");
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn vlan_tag_goes_after_the_macs() {
        let tagged = with_vlan(&UDP_FRAME, EtherType::Vlan, 10);
        assert_eq!(tagged.len(), UDP_FRAME.len() + 4);
        let eth = EthernetFrame::new_checked(&tagged[..]).unwrap();
        assert_eq!(
            (eth.src(), eth.dst(), eth.ethertype()),
            (ROUTER_MAC, LVS1_MAC, EtherType::Vlan)
        );
        let tag = VlanTag::new_checked(eth.payload()).unwrap();
        assert_eq!((tag.vid(), tag.inner_ethertype()), (10, EtherType::Ipv4));
        assert_eq!(tag.payload(), &UDP_FRAME[14..]);
        assert_eq!(with_vlan(&UDP_FRAME[..10], EtherType::Vlan, 10), &UDP_FRAME[..10]);
    }

    #[test]
    fn ip_options_are_padded_to_4() {
        let spec =
            FrameSpec { ip_options: &[0x94, 0x04, 0x00], ..FrameSpec::new(CLIENT, 1, VIP, 2) };
        let frame = udp_frame(&spec, b"");
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(ip.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert!(ip.verify_checksum());
    }

    #[test]
    #[should_panic(expected = "44 bytes of IPv4 options, at most 40 fit")]
    fn too_many_ip_options_panic() {
        let spec = FrameSpec { ip_options: &[1; 44], ..FrameSpec::new(CLIENT, 1, VIP, 2) };
        let _ = udp_frame(&spec, b"");
    }

    /// Every spec field a builder takes, for the round trips.
    #[derive(Debug, Clone)]
    struct Spec {
        macs: (Mac, Mac),
        ips: ([u8; 4], [u8; 4]),
        ports: (u16, u16),
        ttl: u8,
        ident: u16,
        options: Vec<u8>,
    }

    impl Spec {
        fn frame_spec(&self) -> FrameSpec<'_> {
            FrameSpec {
                src_mac: self.macs.0,
                dst_mac: self.macs.1,
                src_ip: self.ips.0.into(),
                dst_ip: self.ips.1.into(),
                src_port: self.ports.0,
                dst_port: self.ports.1,
                ttl: self.ttl,
                ident: self.ident,
                ip_options: &self.options,
            }
        }
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            any::<(Mac, Mac)>(),
            any::<([u8; 4], [u8; 4])>(),
            any::<(u16, u16)>(),
            any::<(u8, u16)>(),
            (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)),
        )
            .prop_map(|(macs, ips, ports, (ttl, ident), options)| Spec {
                macs,
                ips,
                ports,
                ttl,
                ident,
                options,
            })
    }

    /// Parses the Ethernet and IPv4 headers of a built frame and checks
    /// that they say what `spec` said; returns the IPv4 payload.
    fn check_ip<'f>(
        frame: &'f [u8],
        spec: &FrameSpec<'_>,
        protocol: u8,
    ) -> Result<&'f [u8], TestCaseError> {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        prop_assert_eq!((eth.src(), eth.dst()), (spec.src_mac, spec.dst_mac));
        prop_assert_eq!(eth.ethertype(), EtherType::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
        prop_assert_eq!((ip.src_addr(), ip.dst_addr()), (spec.src_ip, spec.dst_ip));
        prop_assert_eq!((ip.ttl(), ip.ident(), ip.protocol()), (spec.ttl, spec.ident, protocol));
        prop_assert!(ip.dont_frag() && !ip.is_fragment());
        prop_assert_eq!(ip.options(), spec.ip_options);
        let payload = &frame[14 + ip.header_len()..];
        prop_assert_eq!(ip.payload(), payload);
        Ok(payload)
    }

    proptest! {
        #[test]
        fn tcp_round_trips(
            spec in spec(),
            seq in any::<u32>(),
            ack in any::<u32>(),
            flags in any::<u16>(),
            window in any::<u16>(),
            tcp_options in (0usize..=10).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let spec = spec.frame_spec();
            let flags = TcpFlags::from_bits(flags);
            let segment = TcpSegment { seq, ack, flags, window, options: &tcp_options };
            let frame = tcp_frame_with(&spec, &segment, &payload);
            let l4 = check_ip(&frame, &spec, PROTOCOL_TCP)?;
            let tcp = TcpHeader::new_checked(l4).unwrap();
            prop_assert_eq!((tcp.src_port(), tcp.dst_port()), (spec.src_port, spec.dst_port));
            prop_assert_eq!(ports(l4), Some((spec.src_port, spec.dst_port)));
            prop_assert_eq!((tcp.seq(), tcp.ack(), tcp.flags(), tcp.window()), (seq, ack, flags, window));
            prop_assert_eq!(tcp.options(), &tcp_options[..]);
            prop_assert_eq!(tcp.payload(), &payload[..]);
            prop_assert!(tcp.verify_checksum(spec.src_ip, spec.dst_ip));
        }

        #[test]
        fn udp_round_trips(spec in spec(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let spec = spec.frame_spec();
            let frame = udp_frame(&spec, &payload);
            let l4 = check_ip(&frame, &spec, PROTOCOL_UDP)?;
            let udp = UdpHeader::new_checked(l4).unwrap();
            prop_assert_eq!((udp.src_port(), udp.dst_port()), (spec.src_port, spec.dst_port));
            prop_assert_eq!(usize::from(udp.length()), l4.len());
            prop_assert_eq!(udp.payload(), &payload[..]);
            prop_assert_ne!(udp.checksum(), 0);
            prop_assert!(udp.verify_checksum(spec.src_ip, spec.dst_ip));
        }

        #[test]
        fn frag_needed_round_trips(
            outer in spec(),
            inner in spec(),
            mtu in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            let (outer, inner) = (outer.frame_spec(), inner.frame_spec());
            let original = tcp_frame(&inner, TcpFlags::ACK, &payload);
            let frame = icmp_frag_needed_frame(&outer, mtu, &original);
            let l4 = check_ip(&frame, &outer, PROTOCOL_ICMP)?;
            prop_assert!(frame.len() - 14 <= 576);
            let icmp = IcmpPacket::new_checked(l4).unwrap();
            prop_assert!(icmp.verify_checksum() && icmp.is_error());
            prop_assert_eq!(icmp.next_hop_mtu(), Some(mtu));
            // As much of the original as fits, at least its header and 8 bytes.
            let quoted = icmp.quoted_ipv4().unwrap();
            prop_assert!(quoted.payload().len() >= 8);
            prop_assert!(original[14..].starts_with(icmp.payload()));
            prop_assert_eq!((quoted.src_addr(), quoted.dst_addr()), (inner.src_ip, inner.dst_ip));
            prop_assert_eq!(usize::from(quoted.total_len()), original.len() - 14);
            prop_assert!(quoted.verify_checksum());
            prop_assert_eq!(ports(quoted.payload()), Some((inner.src_port, inner.dst_port)));
        }

        #[test]
        fn a_cut_packet_is_rejected(
            spec in spec(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            cut in any::<prop::sample::Index>(),
        ) {
            // Any strict prefix of a built packet is shorter than its total
            // length says: never a valid packet.
            let frame = udp_frame(&spec.frame_spec(), &payload);
            let cut = cut.index(frame.len() - 14) + 14;
            match Ipv4Packet::new_checked(&frame[14..cut]) {
                Ok(_) => prop_assert!(false, "accepted a packet cut to {} bytes", cut - 14),
                Err(WireError::Truncated { .. } | WireError::BadTotalLength { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
