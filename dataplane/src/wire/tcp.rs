//! The TCP header (RFC 9293 §3.1): the ports pick the flow, the flags say
//! whether it is new (SYN) or ending (FIN, RST). The checksum covers the
//! IPv4 pseudo-header, so it is computed with the addresses passed in.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::ipv4::PROTOCOL_TCP;
use super::{check_len, checksum, WireError};

/// The header length without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ: Range<usize> = 4..8;
    pub(super) const ACK: Range<usize> = 8..12;
    /// Data offset (4 bits), 3 reserved bits, then the 9 flag bits.
    pub(super) const OFF_FLAGS: Range<usize> = 12..14;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
    pub(super) const OPTIONS: usize = 20;
}

const FLAGS_MASK: u16 = 0x01ff;

/// The TCP control bits (NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: Self = Self(0x001);
    /// Synchronise sequence numbers: opens a connection.
    pub const SYN: Self = Self(0x002);
    /// Reset the connection.
    pub const RST: Self = Self(0x004);
    /// Push.
    pub const PSH: Self = Self(0x008);
    /// The acknowledgment number is valid.
    pub const ACK: Self = Self(0x010);
    /// The urgent pointer is valid.
    pub const URG: Self = Self(0x020);
    /// ECN echo.
    pub const ECE: Self = Self(0x040);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x080);
    /// ECN nonce (RFC 3540, historic).
    pub const NS: Self = Self(0x100);

    const NAMES: [(Self, &'static str); 9] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
        (Self::NS, "NS"),
    ];

    /// The flags in the low 9 bits of `bits`; the rest is ignored.
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits & FLAGS_MASK)
    }

    /// The flags as the low 9 bits of the header's 13th and 14th bytes.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// No flag set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags of both.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// PSH is set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    /// URG is set.
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    /// ECE is set.
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }

    /// CWR is set.
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }

    /// NS is set.
    pub const fn ns(self) -> bool {
        self.contains(Self::NS)
    }
}

impl BitOr for TcpFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

/// Lists the names, `SYN|ACK`, as tcpdump would; `-` for none.
impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A view of a TCP segment in `buffer`: the IPv4 payload, so that the
/// checksum covers exactly the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHeader<T> {
    /// Wraps `buffer` without looking at it: accessors panic if the header
    /// does not fit. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds 20 bytes, the data offset is at least 5
    /// and the header it claims fits.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), MIN_HEADER_LEN)?;
        let header = Self { buffer };
        let offset = header.data_offset();
        if offset < 5 {
            return Err(WireError::BadDataOffset(offset));
        }
        check_len(header.buffer.as_ref(), header.header_len())?;
        Ok(header)
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

    fn u32_at(&self, range: core::ops::Range<usize>) -> u32 {
        let b = &self.data()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn data_offset(&self) -> u8 {
        self.data()[field::OFF_FLAGS.start] >> 4
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The sequence number.
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }

    /// The acknowledgment number.
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }

    /// The header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(self.u16_at(field::OFF_FLAGS))
    }

    /// The receive window.
    pub fn window(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The options: bytes 20 to the header length.
    pub fn options(&self) -> &[u8] {
        &self.data()[field::OPTIONS..self.header_len()]
    }

    /// The segment's data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.data()[self.header_len()..]
    }

    /// Whether the checksum over the IPv4 pseudo-header and the whole
    /// buffer verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::verifies_pseudo(self.data(), src, dst, PROTOCOL_TCP)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpHeader<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    fn set_u32_at(&mut self, range: core::ops::Range<usize>, value: u32) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        self.set_u16_at(field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_u16_at(field::DST_PORT, port);
    }

    /// Sets the sequence number.
    pub fn set_seq(&mut self, seq: u32) {
        self.set_u32_at(field::SEQ, seq);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack(&mut self, ack: u32) {
        self.set_u32_at(field::ACK, ack);
    }

    /// Sets the data offset from a header length in bytes (rounded down to
    /// 4s); the buffer must hold that many bytes before options are used.
    pub fn set_header_len(&mut self, len: usize) {
        let offset = ((len / 4) & 0x0f) as u8;
        let b = &mut self.buffer.as_mut()[field::OFF_FLAGS.start];
        *b = (*b & 0x0f) | (offset << 4);
    }

    /// Sets the control bits, keeping the data offset and reserved bits.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let old = self.u16_at(field::OFF_FLAGS);
        self.set_u16_at(field::OFF_FLAGS, (old & !FLAGS_MASK) | flags.bits());
    }

    /// Sets the receive window.
    pub fn set_window(&mut self, window: u16) {
        self.set_u16_at(field::WINDOW, window);
    }

    /// Sets the checksum field as given (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.set_u16_at(field::CHECKSUM, checksum);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, urgent: u16) {
        self.set_u16_at(field::URGENT, urgent);
    }

    /// The options, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// The data after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes the checksum over the pseudo-header of `src` → `dst` and the
    /// whole buffer, and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let sum =
            checksum::compute_pseudo(self.data(), field::CHECKSUM.start, src, dst, PROTOCOL_TCP);
        self.set_checksum(sum);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    /// The TCP header of the hand-made SYN in `build::tests::SYN_FRAME`
    /// (192.168.20.2:40000 > 192.168.10.110:80, MSS 1460), whose checksum
    /// `tcpdump -vv` 4.99.3 reported correct.
    #[rustfmt::skip]
    const SYN: [u8; 24] = [
        // TCP: 40000 > 80, seq 0x3b9aca00, ack 0, offset 6, SYN, win 64240,
        // cksum 0x5b49, urg 0
        0x9c, 0x40, 0x00, 0x50, 0x3b, 0x9a, 0xca, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0,
        0x5b, 0x49, 0x00, 0x00,
        // Options: MSS 1460
        0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn parses_a_syn() {
        let tcp = TcpHeader::new_checked(&SYN[..]).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 80));
        assert_eq!((tcp.seq(), tcp.ack()), (1_000_000_000, 0));
        assert_eq!(tcp.header_len(), 24);
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        assert!(tcp.flags().syn() && !tcp.flags().ack() && !tcp.flags().fin());
        assert!(!tcp.flags().rst());
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.urgent(), 0);
        assert_eq!(tcp.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert!(tcp.payload().is_empty());
        assert!(tcp.verify_checksum(CLIENT, VIP));
        assert!(!tcp.verify_checksum(CLIENT, Ipv4Addr::new(192, 168, 10, 111)));
    }

    #[test]
    fn emits_a_syn() {
        let mut buf = [0u8; 24];
        let mut tcp = TcpHeader::new_unchecked(&mut buf[..]);
        tcp.set_src_port(40000);
        tcp.set_dst_port(80);
        tcp.set_seq(1_000_000_000);
        tcp.set_header_len(24);
        tcp.set_flags(TcpFlags::SYN);
        tcp.set_window(64240);
        tcp.options_mut().copy_from_slice(&[0x02, 0x04, 0x05, 0xb4]);
        tcp.fill_checksum(CLIENT, VIP);
        assert_eq!(buf, SYN);
    }

    #[test]
    fn rejects_fewer_than_20_bytes() {
        assert_eq!(
            TcpHeader::new_checked(&SYN[..19]),
            Err(WireError::Truncated { needed: 20, available: 19 })
        );
    }

    #[test]
    fn rejects_a_data_offset_below_5() {
        let mut buf = SYN;
        buf[12] = 0x42;
        assert_eq!(TcpHeader::new_checked(&buf[..]), Err(WireError::BadDataOffset(4)));
    }

    #[test]
    fn rejects_options_past_the_buffer() {
        // Offset 6 claims 24 bytes.
        assert_eq!(
            TcpHeader::new_checked(&SYN[..22]),
            Err(WireError::Truncated { needed: 24, available: 22 })
        );
    }

    #[test]
    fn flags_read_like_tcpdump() {
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::empty()), "-");
        let mut flags = TcpFlags::FIN;
        flags |= TcpFlags::ACK;
        assert!(flags.fin() && flags.ack() && !flags.syn());
        assert_eq!(TcpFlags::from_bits(0xffff).bits(), 0x01ff);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            match TcpHeader::new_checked(&bytes[..]) {
                Ok(tcp) => {
                    let range = bytes.as_ptr_range();
                    for part in [tcp.options(), tcp.payload()] {
                        let r = part.as_ptr_range();
                        prop_assert!(range.start <= r.start && r.end <= range.end);
                    }
                    prop_assert!((20..=60).contains(&tcp.header_len()));
                    prop_assert_eq!(tcp.options().len() + 20 + tcp.payload().len(), bytes.len());
                    let _ = (tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack(), tcp.flags());
                    let _ = (tcp.window(), tcp.checksum(), tcp.urgent());
                    let _ = tcp.verify_checksum(CLIENT, VIP);
                }
                Err(WireError::Truncated { available, .. }) => prop_assert_eq!(available, bytes.len()),
                Err(WireError::BadDataOffset(offset)) => prop_assert!(offset < 5),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn setters_round_trip(
            fields in any::<(u16, u16, u32, u32, u16, u16, u16)>(),
            flags in any::<u16>(),
            options_words in 0usize..=10,
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
        ) {
            let (sport, dport, seq, ack, window, sum, urgent) = fields;
            let header_len = 20 + 4 * options_words;
            let mut buf = vec![0u8; header_len + payload.len()];
            let mut tcp = TcpHeader::new_unchecked(&mut buf[..]);
            tcp.set_header_len(header_len);
            tcp.set_src_port(sport);
            tcp.set_dst_port(dport);
            tcp.set_seq(seq);
            tcp.set_ack(ack);
            tcp.set_flags(TcpFlags::from_bits(flags));
            tcp.set_window(window);
            tcp.set_checksum(sum);
            tcp.set_urgent(urgent);
            tcp.payload_mut().copy_from_slice(&payload);
            let tcp = TcpHeader::new_checked(&mut buf[..]).unwrap();
            prop_assert_eq!((tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack()), (sport, dport, seq, ack));
            prop_assert_eq!(tcp.flags().bits(), flags & 0x01ff);
            prop_assert_eq!((tcp.window(), tcp.checksum(), tcp.urgent()), (window, sum, urgent));
            prop_assert_eq!(tcp.header_len(), header_len);
            prop_assert_eq!(tcp.payload(), &payload[..]);
            let mut tcp = tcp;
            tcp.fill_checksum(src.into(), dst.into());
            prop_assert!(tcp.verify_checksum(src.into(), dst.into()));
        }
    }
}
