//! The UDP header (RFC 768): ports, a length that must fit the buffer, and
//! a checksum over the IPv4 pseudo-header where zero means "none".

use std::net::Ipv4Addr;

use super::ipv4::PROTOCOL_UDP;
use super::{check_len, checksum, WireError};

/// The header length.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

/// A view of a UDP datagram in `buffer` (the IPv4 payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// Wraps `buffer` without looking at it: accessors panic if the header
    /// or the length it claims does not fit. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds 8 bytes and 8 ≤ length field ≤ buffer length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), HEADER_LEN)?;
        let header = Self { buffer };
        let length = header.length();
        let available = header.buffer.as_ref().len();
        if usize::from(length) < HEADER_LEN || usize::from(length) > available {
            return Err(WireError::BadUdpLength { length, available });
        }
        Ok(header)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header and payload, in bytes.
    pub fn length(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The checksum field (0: the sender computed none).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The payload: after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }

    /// Whether the checksum verifies over the pseudo-header and the length
    /// field's bytes; a zero checksum (none sent) verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..usize::from(self.length())];
        checksum::verifies_pseudo(datagram, src, dst, PROTOCOL_UDP)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpHeader<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
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

    /// Sets the length field; the buffer must hold that many bytes before
    /// the payload is used.
    pub fn set_length(&mut self, length: u16) {
        self.set_u16_at(field::LENGTH, length);
    }

    /// Sets the checksum field as given (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.set_u16_at(field::CHECKSUM, checksum);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes the checksum over the pseudo-header of `src` → `dst` and the
    /// length field's bytes, and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let end = usize::from(self.length());
        let sum = checksum::compute_pseudo(
            &self.buffer.as_ref()[..end],
            field::CHECKSUM.start,
            src,
            dst,
            PROTOCOL_UDP,
        );
        //= https://www.rfc-editor.org/rfc/rfc768
        //# If the computed checksum is zero, it is transmitted as all ones.
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    /// The UDP datagram of the hand-made frame in
    /// `build::tests::UDP_FRAME`, whose checksum `tcpdump -vv` 4.99.3
    /// reported correct.
    #[rustfmt::skip]
    const DATAGRAM: [u8; 13] = [
        // UDP: 40001 > 9999, length 13, cksum 0x58f0
        0x9c, 0x41, 0x27, 0x0f, 0x00, 0x0d, 0x58, 0xf0,
        // Payload: "hello" (odd length: the last byte is padded in the sum)
        b'h', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn parses_and_emits_a_datagram() {
        let udp = UdpHeader::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.length()), (40001, 9999, 13));
        assert_eq!(udp.payload(), b"hello");
        assert!(udp.verify_checksum(CLIENT, VIP));

        let mut buf = [0u8; 13];
        let mut udp = UdpHeader::new_unchecked(&mut buf[..]);
        udp.set_src_port(40001);
        udp.set_dst_port(9999);
        udp.set_length(13);
        udp.payload_mut().copy_from_slice(b"hello");
        udp.fill_checksum(CLIENT, VIP);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut buf = DATAGRAM;
        buf[6..8].fill(0);
        assert!(UdpHeader::new_checked(&buf[..]).unwrap().verify_checksum(CLIENT, VIP));
        buf[6] = 0x01;
        assert!(!UdpHeader::new_checked(&buf[..]).unwrap().verify_checksum(CLIENT, VIP));
    }

    #[test]
    fn payload_stops_at_the_length_field() {
        let mut buf = [0u8; 20];
        buf[..13].copy_from_slice(&DATAGRAM);
        let udp = UdpHeader::new_checked(&buf[..]).unwrap();
        assert_eq!(udp.payload(), b"hello");
        assert!(udp.verify_checksum(CLIENT, VIP));
    }

    #[test]
    fn rejects_fewer_than_8_bytes() {
        assert_eq!(
            UdpHeader::new_checked(&DATAGRAM[..7]),
            Err(WireError::Truncated { needed: 8, available: 7 })
        );
    }

    #[test]
    fn rejects_a_length_below_8() {
        let mut buf = DATAGRAM;
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpHeader::new_checked(&buf[..]),
            Err(WireError::BadUdpLength { length: 7, available: 13 })
        );
    }

    #[test]
    fn rejects_a_length_past_the_buffer() {
        assert_eq!(
            UdpHeader::new_checked(&DATAGRAM[..12]),
            Err(WireError::BadUdpLength { length: 13, available: 12 })
        );
    }

    /// Bytes whose length field is often near the buffer length, so that
    /// both acceptance and each rejection are reached.
    fn udpish() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 0..40), -2i32..=2).prop_map(|(mut bytes, skew)| {
            if bytes.len() >= 6 {
                let claimed = i32::try_from(bytes.len()).unwrap() + skew;
                bytes[4..6].copy_from_slice(&u16::try_from(claimed).unwrap().to_be_bytes());
            }
            bytes
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), udpish()],
        ) {
            match UdpHeader::new_checked(&bytes[..]) {
                Ok(udp) => {
                    let range = bytes.as_ptr_range();
                    let r = udp.payload().as_ptr_range();
                    prop_assert!(range.start <= r.start && r.end <= range.end);
                    prop_assert_eq!(udp.payload().len() + 8, usize::from(udp.length()));
                    let _ = (udp.src_port(), udp.dst_port(), udp.checksum());
                    let _ = udp.verify_checksum(CLIENT, VIP);
                }
                Err(WireError::Truncated { .. }) => prop_assert!(bytes.len() < 8),
                Err(WireError::BadUdpLength { length, available }) => {
                    prop_assert!(length < 8 || usize::from(length) > available);
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn filled_checksum_verifies_and_is_never_zero(
            ports in any::<(u16, u16)>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
        ) {
            let mut buf = vec![0u8; 8 + payload.len()];
            let mut udp = UdpHeader::new_unchecked(&mut buf[..]);
            udp.set_src_port(ports.0);
            udp.set_dst_port(ports.1);
            udp.set_length(u16::try_from(8 + payload.len()).unwrap());
            udp.payload_mut().copy_from_slice(&payload);
            udp.fill_checksum(src.into(), dst.into());
            let udp = UdpHeader::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(udp.checksum(), 0);
            prop_assert!(udp.verify_checksum(src.into(), dst.into()));
            prop_assert_eq!((udp.src_port(), udp.dst_port()), ports);
            prop_assert_eq!(udp.payload(), &payload[..]);
        }
    }
}
