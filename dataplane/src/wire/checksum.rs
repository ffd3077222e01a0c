//! The Internet checksum (RFC 1071) for the views and builders, computed by
//! `pnet_packet::util` so that one maintained implementation does the sums.
//! Callers pass whole messages; the checksum field is skipped by word index.

use std::net::Ipv4Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::util;

/// The word index no header has: nothing is skipped, so a message whose
/// checksum field is right sums to zero.
const SKIP_NOTHING: usize = usize::MAX;

/// The checksum of `data` with the 16-bit word at `checksum_offset` taken as zero.
pub(crate) fn compute(data: &[u8], checksum_offset: usize) -> u16 {
    util::checksum(data, checksum_offset / 2)
}

/// Whether `data`, checksum field included, sums to 0xffff (RFC 1071 §1: the
/// receiver's check).
pub(crate) fn verifies(data: &[u8]) -> bool {
    !data.is_empty() && util::checksum(data, SKIP_NOTHING) == 0
}

/// The TCP/UDP checksum of `segment` over the IPv4 pseudo-header (RFC 793
/// §3.1, RFC 768), with the word at `checksum_offset` taken as zero.
pub(crate) fn compute_pseudo(
    segment: &[u8],
    checksum_offset: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
) -> u16 {
    // The trailing `extra_data` of pnet's function drops an odd last byte, so
    // the whole segment goes in `data`, which handles odd lengths.
    util::ipv4_checksum(
        segment,
        checksum_offset / 2,
        &[],
        &src,
        &dst,
        IpNextHeaderProtocol(protocol),
    )
}

/// Whether `segment`, checksum field included, verifies over the pseudo-header.
pub(crate) fn verifies_pseudo(segment: &[u8], src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> bool {
    compute_pseudo(segment, SKIP_NOTHING, src, dst, protocol) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 §3, the numerical example: the one's complement sum of
    /// 00 01 f2 03 f4 f5 f6 f7 is ddf2, so the checksum is its complement.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(compute(&data, SKIP_NOTHING), !0xddf2);
    }

    /// The sum in the plain, obvious way, to check pnet's against.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |lo| u64::from(*lo));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    proptest! {
        #[test]
        fn matches_the_reference_and_then_verifies(
            mut data in proptest::collection::vec(any::<u8>(), 2..300),
            at in 0usize..150,
        ) {
            let at = (at * 2) % (data.len() & !1);
            data[at] = 0;
            data[at + 1] = 0;
            let sum = compute(&data, at);
            prop_assert_eq!(sum, reference(&data));
            data[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            prop_assert!(verifies(&data));
        }

        #[test]
        fn pseudo_header_sum_matches_the_reference(
            segment in proptest::collection::vec(any::<u8>(), 8..200),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            protocol in any::<u8>(),
        ) {
            let mut padded = segment.clone();
            padded[6] = 0;
            padded[7] = 0;
            let len = u16::try_from(padded.len()).unwrap().to_be_bytes();
            let mut whole = [&src[..], &dst[..], &[0, protocol], &len[..]].concat();
            whole.extend_from_slice(&padded);
            let sum = compute_pseudo(&segment, 6, src.into(), dst.into(), protocol);
            prop_assert_eq!(sum, reference(&whole));
            padded[6..8].copy_from_slice(&sum.to_be_bytes());
            prop_assert!(verifies_pseudo(&padded, src.into(), dst.into(), protocol));
        }
    }
}
