//! The 4 bytes an 802.1Q (0x8100) or 802.1ad (0x88a8) EtherType puts in
//! front of the real EtherType: priority, drop eligibility, VLAN id. The
//! data plane serves untagged frames; this view lets it say why it passes one.

use super::ethernet::EtherType;
use super::{check_len, WireError};

/// The tag's length: TCI and the inner EtherType.
pub const TAG_LEN: usize = 4;

mod field {
    use core::ops::{Range, RangeFrom};

    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub(super) const TCI: Range<usize> = 0..2;
    pub(super) const ETHERTYPE: Range<usize> = 2..4;
    pub(super) const PAYLOAD: RangeFrom<usize> = 4..;
}

/// A view of a VLAN tag (the payload of a VLAN-tagged Ethernet frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` without looking at it: accessors panic if it is
    /// shorter than [`TAG_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds the whole tag.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_len(buffer.as_ref(), TAG_LEN)?;
        Ok(Self { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The VLAN id (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// The drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// The EtherType of what follows the tag (another tag for QinQ).
    pub fn inner_ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the VLAN id; only its low 12 bits are kept.
    pub fn set_vid(&mut self, vid: u16) {
        self.set_tci((self.tci() & !0x0fff) | (vid & 0x0fff));
    }

    /// Sets the priority code point; only its low 3 bits are kept.
    pub fn set_pcp(&mut self, pcp: u8) {
        self.set_tci((self.tci() & 0x1fff) | (u16::from(pcp & 0x07) << 13));
    }

    /// Sets the drop eligible indicator.
    pub fn set_dei(&mut self, dei: bool) {
        self.set_tci((self.tci() & !0x1000) | if dei { 0x1000 } else { 0 });
    }

    /// Sets the EtherType of what follows the tag.
    pub fn set_inner_ethertype(&mut self, ethertype: EtherType) {
        let value = u16::from(ethertype);
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Everything after the tag, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;
    use proptest::prelude::*;

    /// Hand-made from IEEE 802.1Q §9.6: TPID 0x8100, then TCI = PCP 5,
    /// DEI 0, VID 10 (0xa00a), then the IPv4 EtherType.
    #[rustfmt::skip]
    const TAGGED: [u8; 22] = [
        // Ethernet: dst, src, 802.1Q
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x0a, 0x00, 0x65,
        0x81, 0x00,
        // Tag: PCP 5, VID 10, IPv4
        0xa0, 0x0a, 0x08, 0x00,
        // Start of the IPv4 header
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn parses_a_tagged_frame() {
        let frame = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.vid(), 10);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(tag.inner_ethertype(), EtherType::Ipv4);
        assert_eq!(tag.payload(), &TAGGED[18..]);
    }

    #[test]
    fn emits_the_same_tag() {
        let mut buf = [0u8; 8];
        buf[4..].copy_from_slice(&TAGGED[18..]);
        let mut tag = VlanTag::new_checked(&mut buf[..]).unwrap();
        tag.set_pcp(5);
        tag.set_dei(true);
        tag.set_dei(false);
        tag.set_vid(10);
        tag.set_inner_ethertype(EtherType::Ipv4);
        assert_eq!(tag.into_inner(), &TAGGED[14..]);
    }

    #[test]
    fn rejects_a_short_tag() {
        assert_eq!(
            VlanTag::new_checked(&TAGGED[14..17]),
            Err(WireError::Truncated { needed: 4, available: 3 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            match VlanTag::new_checked(&bytes[..]) {
                Ok(tag) => {
                    prop_assert!(tag.vid() < 4096);
                    prop_assert!(tag.pcp() < 8);
                    let _ = (tag.dei(), tag.inner_ethertype());
                    prop_assert_eq!(tag.payload(), &bytes[4..]);
                }
                Err(_) => prop_assert!(bytes.len() < TAG_LEN),
            }
        }

        #[test]
        fn fields_are_independent(vid in 0u16..4096, pcp in 0u8..8, dei in any::<bool>(), start in any::<[u8; 4]>()) {
            let mut buf = start;
            let mut tag = VlanTag::new_checked(&mut buf[..]).unwrap();
            tag.set_vid(vid);
            tag.set_pcp(pcp);
            tag.set_dei(dei);
            prop_assert_eq!((tag.vid(), tag.pcp(), tag.dei()), (vid, pcp, dei));
            prop_assert_eq!(&buf[2..], &start[2..]);
        }
    }
}
