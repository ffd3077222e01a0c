//! The Ethernet II frame: two MACs and the EtherType in front of the
//! payload. The data plane rewrites only this header (DSR), so the setters
//! here are the ones a worker uses on a UMEM frame.

use super::{check_len, WireError};
use crate::tables::Mac;

/// The bytes in front of the payload.
pub const HEADER_LEN: usize = 14;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const DST: Range<usize> = 0..6;
    pub(super) const SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    pub(super) const PAYLOAD: RangeFrom<usize> = 14..;
}

/// What the payload of a frame (or of a VLAN tag) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800.
    Ipv4,
    /// 0x0806.
    Arp,
    /// 0x86dd.
    Ipv6,
    /// 0x8100, an 802.1Q VLAN tag follows.
    Vlan,
    /// 0x88a8, an 802.1ad service tag follows.
    QinQ,
    /// Anything else, with its value.
    Unknown(u16),
}

impl EtherType {
    /// Whether a [`VlanTag`](super::VlanTag) follows this EtherType.
    pub const fn is_vlan(self) -> bool {
        matches!(self, Self::Vlan | Self::QinQ)
    }
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => Self::Ipv4,
            0x0806 => Self::Arp,
            0x86dd => Self::Ipv6,
            0x8100 => Self::Vlan,
            0x88a8 => Self::QinQ,
            other => Self::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A view of an Ethernet II frame in `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without looking at it: accessors panic if it is
    /// shorter than [`HEADER_LEN`]. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds the whole header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), HEADER_LEN)?;
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The header's length: always 14 (a VLAN tag counts as payload).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The destination MAC.
    pub fn dst(&self) -> Mac {
        mac_at(self.buffer.as_ref(), field::DST.start)
    }

    /// The source MAC.
    pub fn src(&self) -> Mac {
        mac_at(self.buffer.as_ref(), field::SRC.start)
    }

    /// The EtherType.
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything after the header, Ethernet padding included (the FCS is
    /// not in the frames AF_XDP hands over).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let value = u16::from(ethertype);
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

fn mac_at(buf: &[u8], at: usize) -> Mac {
    let mut mac = [0; 6];
    mac.copy_from_slice(&buf[at..at + 6]);
    mac
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// keepalived 2.2.7's first VRRPv2 advert as lvs1, from
    /// `shared/fixtures/vrrp-v2-adverts.pcap` (`tcpdump -r … -xx -c 1`).
    #[rustfmt::skip]
    const VRRP_ADVERT: [u8; 54] = [
        // Ethernet: dst 01:00:5e:00:00:12, src 02:00:00:0a:00:65, IPv4
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x12,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x08, 0x00,
        // IPv4: tos 0xc0, len 40, id 1, ttl 255, proto 112, 192.168.10.101 > 224.0.0.18
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00,
        0xff, 0x70, 0x0f, 0x85, 0xc0, 0xa8, 0x0a, 0x65,
        0xe0, 0x00, 0x00, 0x12,
        // VRRP: v2 advert, vrid 51, prio 120, 1 addr, auth simple, 1 s, 192.168.10.110, "1111"
        0x21, 0x33, 0x78, 0x01, 0x01, 0x01, 0x38, 0x51,
        0xc0, 0xa8, 0x0a, 0x6e,
        0x31, 0x31, 0x31, 0x31, 0x00, 0x00, 0x00, 0x00,
    ];

    /// lvs1's first gratuitous ARP, from `shared/fixtures/keepalived-vip-arp.pcap`.
    #[rustfmt::skip]
    const GARP: [u8; 42] = [
        // Ethernet: broadcast, src 02:00:00:0a:00:65, ARP
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x08, 0x06,
        // ARP request: who-has 192.168.10.110 tell 192.168.10.110
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65, 0xc0, 0xa8, 0x0a, 0x6e,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xa8, 0x0a, 0x6e,
    ];

    #[test]
    fn parses_a_captured_vrrp_advert() {
        let frame = EthernetFrame::new_checked(&VRRP_ADVERT[..]).unwrap();
        assert_eq!(frame.dst(), [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
        assert_eq!(frame.src(), [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65]);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &VRRP_ADVERT[14..]);
    }

    #[test]
    fn parses_a_captured_garp() {
        let frame = EthernetFrame::new_checked(&GARP[..]).unwrap();
        assert_eq!(frame.dst(), [0xff; 6]);
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload().len(), 28);
    }

    #[test]
    fn emits_the_captured_header() {
        let mut buf = VRRP_ADVERT;
        buf[..14].fill(0);
        let mut frame = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        frame.set_dst([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
        frame.set_src([0x02, 0x00, 0x00, 0x0a, 0x00, 0x65]);
        frame.set_ethertype(EtherType::Ipv4);
        assert_eq!(frame.into_inner(), &VRRP_ADVERT[..]);
    }

    #[test]
    fn rejects_a_buffer_shorter_than_the_header() {
        assert_eq!(
            EthernetFrame::new_checked(&VRRP_ADVERT[..13]),
            Err(WireError::Truncated { needed: 14, available: 13 })
        );
        // Exactly a header is a frame with an empty payload.
        let frame = EthernetFrame::new_checked(&VRRP_ADVERT[..14]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn ethertypes_round_trip_through_u16() {
        for (value, known) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88a8, EtherType::QinQ),
        ] {
            assert_eq!(EtherType::from(value), known);
            assert_eq!(u16::from(known), value);
        }
        assert!(EtherType::Vlan.is_vlan() && EtherType::QinQ.is_vlan());
        assert!(!EtherType::Ipv4.is_vlan());
    }

    proptest! {
        #[test]
        fn ethertype_from_u16_is_lossless(value in any::<u16>()) {
            prop_assert_eq!(u16::from(EtherType::from(value)), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match EthernetFrame::new_checked(&bytes[..]) {
                Ok(frame) => {
                    prop_assert!(bytes.len() >= HEADER_LEN);
                    prop_assert_eq!(&frame.dst()[..], &bytes[0..6]);
                    prop_assert_eq!(&frame.src()[..], &bytes[6..12]);
                    let _ = frame.ethertype();
                    prop_assert_eq!(frame.payload(), &bytes[14..]);
                }
                Err(e) => {
                    prop_assert!(bytes.len() < HEADER_LEN);
                    prop_assert_eq!(e, WireError::Truncated { needed: 14, available: bytes.len() });
                }
            }
        }

        #[test]
        fn setters_touch_only_their_field(
            mut bytes in proptest::collection::vec(any::<u8>(), 14..40),
            dst in any::<Mac>(),
            src in any::<Mac>(),
            ethertype in any::<u16>(),
        ) {
            let before = bytes.clone();
            let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
            frame.set_dst(dst);
            frame.set_src(src);
            frame.set_ethertype(EtherType::from(ethertype));
            prop_assert_eq!(frame.dst(), dst);
            prop_assert_eq!(frame.src(), src);
            prop_assert_eq!(u16::from(frame.ethertype()), ethertype);
            prop_assert_eq!(frame.payload(), &before[14..]);
        }
    }
}
