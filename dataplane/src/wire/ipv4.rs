//! The IPv4 packet (RFC 791): the header's lengths are checked once, so
//! options and payload can be sliced without further bounds checks. DSR
//! forwarding reads this header and never changes it.

use std::net::Ipv4Addr;

use super::{check_len, checksum, WireError};

/// The header length without options.
pub const MIN_HEADER_LEN: usize = 20;
/// The header length with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// The protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;
/// The protocol number of TCP.
pub const PROTOCOL_TCP: u8 = 6;
/// The protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;

mod field {
    use core::ops::Range;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    /// Reserved bit, DF, MF, then the 13-bit fragment offset.
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
    pub(super) const OPTIONS: usize = 20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet in `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without looking at it: accessors panic if the lengths
    /// the header claims do not fit. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a received packet: version 4, IHL ≥ 5, the header fits, and
    /// header length ≤ total length ≤ buffer length. The buffer may be
    /// longer than the total length (Ethernet padding); [`payload`](Self::payload)
    /// ends at the total length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_checked_header(buffer)?;
        let available = packet.buffer.as_ref().len();
        if usize::from(packet.total_len()) > available {
            return Err(WireError::BadTotalLength {
                total_len: packet.total_len(),
                header_len: packet.header_len(),
                available,
            });
        }
        Ok(packet)
    }

    /// Wraps the header an ICMP error quotes: as [`new_checked`](Self::new_checked)
    /// except that the total length may exceed the buffer, since the error
    /// carries only the start of the original packet.
    pub fn new_checked_header(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), MIN_HEADER_LEN)?;
        let packet = Self { buffer };
        if packet.version() != 4 {
            return Err(WireError::BadVersion(packet.version()));
        }
        let ihl = packet.ihl();
        if ihl < 5 {
            return Err(WireError::BadHeaderLength(ihl));
        }
        let header_len = packet.header_len();
        check_len(packet.buffer.as_ref(), header_len)?;
        if usize::from(packet.total_len()) < header_len {
            return Err(WireError::BadTotalLength {
                total_len: packet.total_len(),
                header_len,
                available: packet.buffer.as_ref().len(),
            });
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.data()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn ihl(&self) -> u8 {
        self.data()[field::VER_IHL] & 0x0f
    }

    /// The version nibble (4 in any checked view).
    pub fn version(&self) -> u8 {
        self.data()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The total length field: header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The DSCP and ECN byte (formerly TOS).
    pub fn dscp_ecn(&self) -> u8 {
        self.data()[field::DSCP_ECN]
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Whether the Don't Fragment flag is set.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// Whether the More Fragments flag is set.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        self.u16_at(field::FLG_OFF) & OFFSET_MASK
    }

    /// Whether this is a fragment (first, middle or last) of a larger packet:
    /// only the first carries the L4 ports.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.data()[field::TTL]
    }

    /// The protocol number of the payload (see [`PROTOCOL_TCP`] and friends).
    pub fn protocol(&self) -> u8 {
        self.data()[field::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr_at(self.data(), field::SRC_ADDR.start)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr_at(self.data(), field::DST_ADDR.start)
    }

    /// The options: bytes 20 to the header length (empty for IHL 5).
    pub fn options(&self) -> &[u8] {
        &self.data()[field::OPTIONS..self.header_len()]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(&self.data()[..self.header_len()])
    }

    /// The payload: from the header length to the total length, or to the
    /// end of the buffer if that comes first (an ICMP error's quote).
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.total_len()).min(self.data().len());
        &self.data()[self.header_len()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.data_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.data_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the IHL from a header length in bytes (rounded down to 4s). The
    /// buffer must hold that many bytes before options or payload are used.
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = ((len / 4) & 0x0f) as u8;
        let b = &mut self.data_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets the total length field.
    pub fn set_total_len(&mut self, len: u16) {
        self.set_u16_at(field::LENGTH, len);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.data_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        self.set_u16_at(field::IDENT, ident);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let old = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, if on { old | flag } else { old & !flag });
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset in 8-byte units; only its low 13 bits are kept.
    pub fn set_frag_offset(&mut self, offset: u16) {
        let old = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, (old & !OFFSET_MASK) | (offset & OFFSET_MASK));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.data_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol number.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.data_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the header checksum field as given (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.set_u16_at(field::CHECKSUM, checksum);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.data_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.data_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The options, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.data_mut()[field::OPTIONS..end]
    }

    /// The payload, writable (the same bytes as [`payload`](Ipv4Packet::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len()).min(self.data().len());
        &mut self.data_mut()[start..end]
    }

    /// Computes the header checksum over the header length and stores it.
    pub fn fill_checksum(&mut self) {
        let sum = checksum::compute(&self.data()[..self.header_len()], field::CHECKSUM.start);
        self.set_checksum(sum);
    }
}

fn addr_at(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The IPv4 header of keepalived 2.2.7's first VRRPv2 advert, from
    /// `shared/fixtures/vrrp-v2-adverts.pcap`, then its 20-byte VRRP message.
    #[rustfmt::skip]
    const VRRP_ADVERT: [u8; 40] = [
        // IPv4: IHL 5, tos 0xc0, len 40, id 1, no flags, ttl 255, proto 112,
        // cksum 0x0f85, 192.168.10.101 > 224.0.0.18
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00,
        0xff, 0x70, 0x0f, 0x85, 0xc0, 0xa8, 0x0a, 0x65,
        0xe0, 0x00, 0x00, 0x12,
        // VRRP
        0x21, 0x33, 0x78, 0x01, 0x01, 0x01, 0x38, 0x51,
        0xc0, 0xa8, 0x0a, 0x6e,
        0x31, 0x31, 0x31, 0x31, 0x00, 0x00, 0x00, 0x00,
    ];

    /// Hand-made: an IGMPv2 report's header with the Router Alert option
    /// (RFC 2113: 0x94 0x04 0x00 0x00), DF, checksum 0x38f4, checked with
    /// `tcpdump -vv` 4.99.3, which flags a wrong one ("bad cksum 38f5 (->38f4)!").
    #[rustfmt::skip]
    const WITH_ROUTER_ALERT: [u8; 32] = [
        // IPv4: IHL 6, tos 0xc0, len 32, id 0, DF, ttl 1, proto 2 (IGMP),
        // cksum, 192.168.10.101 > 224.0.0.22
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00,
        0x01, 0x02, 0x38, 0xf4, 0xc0, 0xa8, 0x0a, 0x65,
        0xe0, 0x00, 0x00, 0x16,
        // Options: Router Alert
        0x94, 0x04, 0x00, 0x00,
        // IGMPv2 membership report for 224.0.0.22 (payload, not checked here)
        0x16, 0x00, 0x09, 0xe9, 0xe0, 0x00, 0x00, 0x16,
    ];

    #[test]
    fn parses_a_captured_header() {
        let p = Ipv4Packet::new_checked(&VRRP_ADVERT[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.dscp_ecn(), 0xc0);
        assert_eq!(p.ident(), 1);
        assert!(!p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 255);
        assert_eq!(p.protocol(), 112);
        assert_eq!(p.checksum(), 0x0f85);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 10, 101));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(224, 0, 0, 18));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &VRRP_ADVERT[20..]);
    }

    #[test]
    fn emits_the_captured_header() {
        let mut buf = [0u8; 40];
        buf[20..].copy_from_slice(&VRRP_ADVERT[20..]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0xc0);
        p.set_total_len(40);
        p.set_ident(1);
        p.set_ttl(255);
        p.set_protocol(112);
        p.set_src_addr(Ipv4Addr::new(192, 168, 10, 101));
        p.set_dst_addr(Ipv4Addr::new(224, 0, 0, 18));
        p.fill_checksum();
        assert_eq!(buf, VRRP_ADVERT);
    }

    #[test]
    fn parses_an_options_header() {
        let p = Ipv4Packet::new_checked(&WITH_ROUTER_ALERT[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), 2);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &WITH_ROUTER_ALERT[24..]);
    }

    #[test]
    fn emits_an_options_header() {
        let mut buf = [0u8; 32];
        buf[24..].copy_from_slice(&WITH_ROUTER_ALERT[24..]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp_ecn(0xc0);
        p.set_total_len(32);
        p.set_dont_frag(true);
        p.set_ttl(1);
        p.set_protocol(2);
        p.set_src_addr(Ipv4Addr::new(192, 168, 10, 101));
        p.set_dst_addr(Ipv4Addr::new(224, 0, 0, 22));
        p.options_mut().copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        p.fill_checksum();
        assert_eq!(buf, WITH_ROUTER_ALERT);
    }

    #[test]
    fn payload_stops_at_total_length_before_ethernet_padding() {
        // A 40-byte packet in a 46-byte minimum Ethernet payload.
        let mut padded = [0u8; 46];
        padded[..40].copy_from_slice(&VRRP_ADVERT);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &VRRP_ADVERT[20..]);
    }

    #[test]
    fn fragments() {
        let mut buf = VRRP_ADVERT;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_more_frags(true);
        assert!(p.is_fragment() && p.more_frags() && p.frag_offset() == 0);
        p.set_more_frags(false);
        p.set_frag_offset(185); // 1480 bytes in
        assert!(p.is_fragment() && !p.more_frags() && p.frag_offset() == 185);
        p.set_dont_frag(true);
        assert!(p.dont_frag() && p.frag_offset() == 185);
        p.set_frag_offset(0);
        assert!(!p.is_fragment() && p.dont_frag());
    }

    // One test per rejection of each constructor.

    #[test]
    fn rejects_a_buffer_shorter_than_20_bytes() {
        let err = Err(WireError::Truncated { needed: 20, available: 19 });
        assert_eq!(Ipv4Packet::new_checked(&VRRP_ADVERT[..19]), err);
        assert_eq!(Ipv4Packet::new_checked_header(&VRRP_ADVERT[..19]), err);
    }

    #[test]
    fn rejects_a_version_other_than_4() {
        let mut buf = VRRP_ADVERT;
        buf[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&buf[..]), Err(WireError::BadVersion(6)));
        assert_eq!(Ipv4Packet::new_checked_header(&buf[..]), Err(WireError::BadVersion(6)));
    }

    #[test]
    fn rejects_ihl_below_5() {
        let mut buf = VRRP_ADVERT;
        buf[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&buf[..]), Err(WireError::BadHeaderLength(4)));
        assert_eq!(Ipv4Packet::new_checked_header(&buf[..]), Err(WireError::BadHeaderLength(4)));
    }

    #[test]
    fn rejects_a_header_longer_than_the_buffer() {
        // IHL 6 claims 24 bytes; only 22 are there.
        let err = Err(WireError::Truncated { needed: 24, available: 22 });
        assert_eq!(Ipv4Packet::new_checked(&WITH_ROUTER_ALERT[..22]), err);
        assert_eq!(Ipv4Packet::new_checked_header(&WITH_ROUTER_ALERT[..22]), err);
    }

    #[test]
    fn rejects_a_total_length_shorter_than_the_header() {
        let mut buf = WITH_ROUTER_ALERT;
        buf[2..4].copy_from_slice(&23u16.to_be_bytes());
        let err = Err(WireError::BadTotalLength { total_len: 23, header_len: 24, available: 32 });
        assert_eq!(Ipv4Packet::new_checked(&buf[..]), err);
        assert_eq!(Ipv4Packet::new_checked_header(&buf[..]), err);
    }

    #[test]
    fn rejects_a_total_length_longer_than_the_buffer_unless_quoted() {
        let err = Err(WireError::BadTotalLength { total_len: 40, header_len: 20, available: 28 });
        assert_eq!(Ipv4Packet::new_checked(&VRRP_ADVERT[..28]), err);
        // An ICMP error quotes the header and 8 bytes of a 40-byte packet.
        let quoted = Ipv4Packet::new_checked_header(&VRRP_ADVERT[..28]).unwrap();
        assert_eq!(quoted.total_len(), 40);
        assert_eq!(quoted.payload(), &VRRP_ADVERT[20..28]);
        assert!(quoted.verify_checksum());
    }

    /// Checks every accessor of an accepted view and that the slices it
    /// returns lie inside `bytes`.
    fn accessors_stay_inside(p: &Ipv4Packet<&[u8]>, bytes: &[u8]) -> Result<(), TestCaseError> {
        let range = bytes.as_ptr_range();
        for part in [p.options(), p.payload()] {
            let r = part.as_ptr_range();
            prop_assert!(range.start <= r.start && r.end <= range.end);
        }
        prop_assert_eq!(p.version(), 4);
        prop_assert!((20..=60).contains(&p.header_len()) && p.header_len() <= bytes.len());
        prop_assert!(usize::from(p.total_len()) >= p.header_len());
        prop_assert_eq!(p.options().len(), p.header_len() - 20);
        let _ = (p.dscp_ecn(), p.ident(), p.dont_frag(), p.is_fragment(), p.ttl());
        let _ = (p.protocol(), p.checksum(), p.src_addr(), p.dst_addr(), p.verify_checksum());
        Ok(())
    }

    /// Bytes that often look like IPv4: version 4 and a plausible total length.
    fn ipv4ish() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 0..80), 0u8..16, any::<bool>()).prop_map(
            |(mut bytes, ihl, fit_len)| {
                if let Some(b) = bytes.first_mut() {
                    *b = 0x40 | ihl;
                }
                if fit_len && bytes.len() >= 4 {
                    let len = u16::try_from(bytes.len()).unwrap();
                    bytes[2..4].copy_from_slice(&len.to_be_bytes());
                }
                bytes
            },
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 0..80), ipv4ish()],
        ) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                accessors_stay_inside(&p, &bytes)?;
                prop_assert!(usize::from(p.total_len()) <= bytes.len());
                prop_assert_eq!(p.payload().len(), usize::from(p.total_len()) - p.header_len());
            }
            if let Ok(p) = Ipv4Packet::new_checked_header(&bytes[..]) {
                accessors_stay_inside(&p, &bytes)?;
            }
        }

        /// The Internet checksum catches every single-bit error in the bytes
        /// it covers. A flipped IHL bit changes which bytes those are, so for
        /// it the claim is only that the packet is rejected, fails the
        /// checksum, or no longer reads as the same header.
        #[test]
        fn any_single_bit_flip_fails_the_checksum(
            options_words in 0usize..=10,
            options_seed in any::<u8>(),
            fields in any::<(u8, u16, u16, u8, u8, [u8; 4], [u8; 4])>(),
        ) {
            let (dscp, ident, flg_off, ttl, protocol, src, dst) = fields;
            let header_len = 20 + options_words * 4;
            let mut buf = vec![0u8; header_len + 8];
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            p.set_version(4);
            p.set_header_len(header_len);
            p.set_total_len(u16::try_from(header_len + 8).unwrap());
            p.set_dscp_ecn(dscp);
            p.set_ident(ident);
            p.set_dont_frag(flg_off & FLAG_DF != 0);
            p.set_frag_offset(flg_off);
            p.set_ttl(ttl);
            p.set_protocol(protocol);
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            for (i, b) in p.options_mut().iter_mut().enumerate() {
                *b = options_seed.wrapping_mul(i as u8 + 1);
            }
            p.fill_checksum();
            prop_assert!(Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());

            for bit in 0..header_len * 8 {
                let mut flipped = buf.clone();
                flipped[bit / 8] ^= 0x80 >> (bit % 8);
                let in_ihl = bit / 8 == 0 && bit % 8 >= 4;
                if in_ihl {
                    let same = Ipv4Packet::new_checked(&flipped[..])
                        .map(|q| q.header_len() == header_len && q.verify_checksum());
                    prop_assert!(same != Ok(true), "bit {} went unnoticed", bit);
                } else {
                    // Unchecked: a flipped version bit must fail the sum too.
                    let q = Ipv4Packet::new_unchecked(&flipped[..]);
                    prop_assert!(!q.verify_checksum(), "bit {} went unnoticed", bit);
                }
            }
        }

        #[test]
        fn setters_round_trip(
            fields in any::<(u8, u16, bool, bool, u16, u8, u8, u16, [u8; 4], [u8; 4])>(),
        ) {
            let (dscp, ident, df, mf, offset, ttl, protocol, sum, src, dst) = fields;
            let mut buf = VRRP_ADVERT;
            let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
            p.set_dscp_ecn(dscp);
            p.set_ident(ident);
            p.set_dont_frag(df);
            p.set_more_frags(mf);
            p.set_frag_offset(offset);
            p.set_ttl(ttl);
            p.set_protocol(protocol);
            p.set_checksum(sum);
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            prop_assert_eq!(p.dscp_ecn(), dscp);
            prop_assert_eq!(p.ident(), ident);
            prop_assert_eq!((p.dont_frag(), p.more_frags()), (df, mf));
            prop_assert_eq!(p.frag_offset(), offset & OFFSET_MASK);
            prop_assert_eq!(p.is_fragment(), mf || offset & OFFSET_MASK != 0);
            prop_assert_eq!((p.ttl(), p.protocol(), p.checksum()), (ttl, protocol, sum));
            prop_assert_eq!((p.src_addr(), p.dst_addr()), (Ipv4Addr::from(src), Ipv4Addr::from(dst)));
            prop_assert_eq!(p.header_len(), 20);
            prop_assert_eq!(p.total_len(), 40);
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
        }
    }
}
