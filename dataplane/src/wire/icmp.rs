//! ICMP messages (RFC 792). The data plane forwards errors about a flow
//! (fragmentation needed above all, for PMTU discovery) to that flow's real
//! server; an error's payload quotes the IPv4 header and ≥ 8 bytes it is about.

use super::ipv4::Ipv4Packet;
use super::{check_len, checksum, WireError};

/// The header length: type, code, checksum and the 4 "rest of header" bytes.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// Meaning depends on the type: echo id and sequence, next-hop MTU …
    pub(super) const REST: Range<usize> = 4..8;
    pub(super) const PAYLOAD: RangeFrom<usize> = 8..;
}

/// The code of a Destination Unreachable that asks for a smaller packet
/// (RFC 1191 "fragmentation needed and DF set").
pub const CODE_FRAG_NEEDED: u8 = 4;

/// The ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpType {
    /// 0.
    EchoReply,
    /// 3.
    DestUnreachable,
    /// 4 (deprecated by RFC 6633, still an error).
    SourceQuench,
    /// 5.
    Redirect,
    /// 8.
    EchoRequest,
    /// 11.
    TimeExceeded,
    /// 12.
    ParameterProblem,
    /// Anything else, with its value.
    Unknown(u8),
}

impl IcmpType {
    /// Whether this type is an error that quotes the packet it is about.
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Self::DestUnreachable
                | Self::SourceQuench
                | Self::TimeExceeded
                | Self::ParameterProblem
        )
    }
}

impl From<u8> for IcmpType {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::EchoReply,
            3 => Self::DestUnreachable,
            4 => Self::SourceQuench,
            5 => Self::Redirect,
            8 => Self::EchoRequest,
            11 => Self::TimeExceeded,
            12 => Self::ParameterProblem,
            other => Self::Unknown(other),
        }
    }
}

impl From<IcmpType> for u8 {
    fn from(value: IcmpType) -> Self {
        match value {
            IcmpType::EchoReply => 0,
            IcmpType::DestUnreachable => 3,
            IcmpType::SourceQuench => 4,
            IcmpType::Redirect => 5,
            IcmpType::EchoRequest => 8,
            IcmpType::TimeExceeded => 11,
            IcmpType::ParameterProblem => 12,
            IcmpType::Unknown(other) => other,
        }
    }
}

/// A view of an ICMP message in `buffer` (the IPv4 payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without looking at it: accessors panic if it is
    /// shorter than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), HEADER_LEN)?;
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The message type.
    pub fn msg_type(&self) -> IcmpType {
        IcmpType::from(self.data()[field::TYPE])
    }

    /// The code.
    pub fn code(&self) -> u8 {
        self.data()[field::CODE]
    }

    /// Whether the message is an error (types 3, 4, 11, 12).
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.data()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Bytes 4..8, whose meaning depends on the type.
    pub fn rest_of_header(&self) -> [u8; 4] {
        let b = &self.data()[field::REST];
        [b[0], b[1], b[2], b[3]]
    }

    /// The next-hop MTU of a "fragmentation needed" (RFC 1191 §4): the low
    /// half of the rest of the header. `None` for any other message.
    pub fn next_hop_mtu(&self) -> Option<u16> {
        if self.msg_type() != IcmpType::DestUnreachable || self.code() != CODE_FRAG_NEEDED {
            return None;
        }
        let [_, _, hi, lo] = self.rest_of_header();
        Some(u16::from_be_bytes([hi, lo]))
    }

    /// Everything after the 8-byte header: for an error, the quoted IPv4
    /// header and at least 8 bytes of its payload.
    pub fn payload(&self) -> &[u8] {
        &self.data()[field::PAYLOAD]
    }

    /// The IPv4 header an error quotes, checked leniently (its total length
    /// may exceed what was quoted). Fails for a non-error or a bad quote.
    pub fn quoted_ipv4(&self) -> Result<Ipv4Packet<&[u8]>, WireError> {
        Ipv4Packet::new_checked_header(self.payload())
    }

    /// Whether the checksum over the whole buffer verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.data())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, msg_type: IcmpType) {
        self.buffer.as_mut()[field::TYPE] = u8::from(msg_type);
    }

    /// Sets the code.
    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the checksum field as given (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets bytes 4..8.
    pub fn set_rest_of_header(&mut self, rest: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&rest);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }

    /// Computes the checksum over the whole message (the buffer) and stores it.
    pub fn fill_checksum(&mut self) {
        let sum = checksum::compute(self.buffer.as_ref(), field::CHECKSUM.start);
        self.set_checksum(sum);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// A router's "fragmentation needed, next-hop MTU 1400" to the VIP about
    /// a 1500-byte reply the real server sent from it (DSR), as in
    /// `build::tests::FRAG_NEEDED_FRAME`; hand-made, checksum 0x56ed reported
    /// correct by `tcpdump -vv` 4.99.3 (which flags a wrong one).
    #[rustfmt::skip]
    const FRAG_NEEDED: [u8; 36] = [
        // ICMP: type 3, code 4, cksum 0x56ed, unused 0, MTU 1400
        0x03, 0x04, 0x56, 0xed, 0x00, 0x00, 0x05, 0x78,
        // Quoted IPv4: 192.168.10.110 > 192.168.20.2, TCP, len 1500, id 0x5678, DF, ttl 64
        0x45, 0x00, 0x05, 0xdc, 0x56, 0x78, 0x40, 0x00,
        0x40, 0x06, 0x3e, 0xe3, 0xc0, 0xa8, 0x0a, 0x6e,
        0xc0, 0xa8, 0x14, 0x02,
        // Quoted TCP, first 8 bytes: 80 > 40000, seq 0x01020304
        0x00, 0x50, 0x9c, 0x40, 0x01, 0x02, 0x03, 0x04,
    ];

    #[test]
    fn parses_a_frag_needed() {
        let icmp = IcmpPacket::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!(icmp.msg_type(), IcmpType::DestUnreachable);
        assert_eq!(icmp.code(), CODE_FRAG_NEEDED);
        assert!(icmp.is_error());
        assert_eq!(icmp.rest_of_header(), [0, 0, 0x05, 0x78]);
        assert_eq!(icmp.next_hop_mtu(), Some(1400));
        assert!(icmp.verify_checksum());
        let quoted = icmp.quoted_ipv4().unwrap();
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(192, 168, 10, 110));
        assert_eq!(quoted.dst_addr(), Ipv4Addr::new(192, 168, 20, 2));
        assert_eq!(quoted.total_len(), 1500);
        assert!(quoted.verify_checksum());
        assert_eq!(quoted.payload().len(), 8);
        assert_eq!(crate::wire::ports(quoted.payload()), Some((80, 40000)));
    }

    #[test]
    fn emits_a_frag_needed() {
        let mut buf = [0u8; 36];
        buf[8..].copy_from_slice(&FRAG_NEEDED[8..]);
        let mut icmp = IcmpPacket::new_checked(&mut buf[..]).unwrap();
        icmp.set_msg_type(IcmpType::DestUnreachable);
        icmp.set_code(CODE_FRAG_NEEDED);
        icmp.set_rest_of_header([0, 0, 0x05, 0x78]);
        icmp.fill_checksum();
        assert_eq!(buf, FRAG_NEEDED);
    }

    #[test]
    fn echo_is_not_an_error() {
        let mut buf = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let mut icmp = IcmpPacket::new_checked(&mut buf[..]).unwrap();
        icmp.fill_checksum();
        assert_eq!(icmp.msg_type(), IcmpType::EchoRequest);
        assert!(!icmp.is_error());
        assert_eq!(icmp.next_hop_mtu(), None);
        assert!(icmp.payload().is_empty());
        assert!(icmp.verify_checksum());
        assert!(icmp.quoted_ipv4().is_err());
    }

    #[test]
    fn rejects_fewer_than_8_bytes() {
        assert_eq!(
            IcmpPacket::new_checked(&FRAG_NEEDED[..7]),
            Err(WireError::Truncated { needed: 8, available: 7 })
        );
    }

    #[test]
    fn types_round_trip_and_classify() {
        for value in 0..=u8::MAX {
            let ty = IcmpType::from(value);
            assert_eq!(u8::from(ty), value);
            assert_eq!(ty.is_error(), matches!(value, 3 | 4 | 11 | 12), "type {value}");
            assert_eq!(
                matches!(ty, IcmpType::Unknown(_)),
                !matches!(value, 0 | 3 | 4 | 5 | 8 | 11 | 12)
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..80),
            looks_quoted in any::<bool>(),
        ) {
            // Half the time, an error quoting something that starts like IPv4.
            if looks_quoted && bytes.len() > 8 {
                bytes[0] = 3;
                bytes[8] = 0x40 | (bytes[8] & 0x0f);
            }
            match IcmpPacket::new_checked(&bytes[..]) {
                Ok(icmp) => {
                    prop_assert_eq!(icmp.payload(), &bytes[8..]);
                    prop_assert_eq!(&icmp.rest_of_header()[..], &bytes[4..8]);
                    let _ = (icmp.msg_type(), icmp.code(), icmp.is_error(), icmp.checksum());
                    let _ = (icmp.next_hop_mtu(), icmp.verify_checksum());
                    if let Ok(quoted) = icmp.quoted_ipv4() {
                        let range = bytes.as_ptr_range();
                        let r = quoted.payload().as_ptr_range();
                        prop_assert!(range.start <= r.start && r.end <= range.end);
                    }
                }
                Err(_) => prop_assert!(bytes.len() < HEADER_LEN),
            }
        }

        #[test]
        fn filled_checksum_verifies(mut bytes in proptest::collection::vec(any::<u8>(), 8..80)) {
            let mut icmp = IcmpPacket::new_checked(&mut bytes[..]).unwrap();
            icmp.fill_checksum();
            prop_assert!(icmp.verify_checksum());
            let flip = bytes.len() - 1;
            bytes[flip] ^= 1;
            prop_assert!(!IcmpPacket::new_checked(&bytes[..]).unwrap().verify_checksum());
        }
    }
}
