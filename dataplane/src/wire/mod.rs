//! Checked zero-copy views over the headers a frame to a VIP carries, and
//! builders that write complete valid frames for tests and the generator.
//! A view checks every length its header claims once, in `new_checked`;
//! after that its getters cannot read outside the buffer.

pub mod build; // complete, checksummed frames written into a Vec (tests, bench, integration)
mod checksum; // the Internet checksum (RFC 1071) through pnet_packet::util
pub mod ethernet; // Ethernet II frame and its EtherType
pub mod icmp; // ICMP messages; errors embed the IPv4 header they are about
pub mod ipv4; // IPv4 packet: lengths, fragments, header checksum
pub mod tcp; // TCP header: ports, sequence numbers, flags, checksum
pub mod udp; // UDP header: ports, length, checksum
pub mod vlan; // the 802.1Q / 802.1ad tag that follows a VLAN EtherType

pub use ethernet::{EtherType, EthernetFrame};
pub use icmp::{IcmpPacket, IcmpType};
pub use ipv4::Ipv4Packet;
pub use tcp::{TcpFlags, TcpHeader};
pub use udp::UdpHeader;
pub use vlan::VlanTag;

/// Why a buffer is not the header it should be. `Copy` and allocation-free:
/// the workers map it to a drop reason on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the header (or the part of it we read) does.
    #[error("truncated: {needed} bytes needed, {available} present")]
    Truncated { needed: usize, available: usize },
    /// The IP version nibble is not 4.
    #[error("IP version {0}, expected 4")]
    BadVersion(u8),
    /// The IPv4 IHL is below 5 words (20 bytes).
    #[error("IPv4 IHL {0} words, the minimum is 5")]
    BadHeaderLength(u8),
    /// The IPv4 total length is shorter than the header or longer than the buffer.
    #[error("IPv4 total length {total_len} outside {header_len}..={available}")]
    BadTotalLength { total_len: u16, header_len: usize, available: usize },
    /// The TCP data offset is below 5 words (20 bytes).
    #[error("TCP data offset {0} words, the minimum is 5")]
    BadDataOffset(u8),
    /// The UDP length field is below 8 or longer than the buffer.
    #[error("UDP length {length} outside 8..={available}")]
    BadUdpLength { length: u16, available: usize },
}

/// The source and destination ports at the start of a TCP or UDP header:
/// all that an ICMP error's 8 embedded payload bytes guarantee.
pub fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    match l4 {
        [s0, s1, d0, d1, ..] => {
            Some((u16::from_be_bytes([*s0, *s1]), u16::from_be_bytes([*d0, *d1])))
        }
        _ => None,
    }
}

/// Fails with [`WireError::Truncated`] unless `buf` holds `needed` bytes.
fn check_len(buf: &[u8], needed: usize) -> Result<(), WireError> {
    if buf.len() < needed {
        return Err(WireError::Truncated { needed, available: buf.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ports_needs_four_bytes() {
        assert_eq!(ports(&[0x30, 0x39, 0x00, 0x50]), Some((12345, 80)));
        assert_eq!(ports(&[0x30, 0x39, 0x00, 0x50, 0xff]), Some((12345, 80)));
        assert_eq!(ports(&[0x30, 0x39, 0x00]), None);
        assert_eq!(ports(&[]), None);
    }

    #[test]
    fn errors_name_the_value() {
        let e = WireError::BadTotalLength { total_len: 19, header_len: 20, available: 40 };
        assert_eq!(e.to_string(), "IPv4 total length 19 outside 20..=40");
        let e = WireError::Truncated { needed: 14, available: 3 };
        assert_eq!(e.to_string(), "truncated: 14 bytes needed, 3 present");
    }

    proptest! {
        #[test]
        fn ports_reads_the_first_four_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            match ports(&bytes) {
                Some((s, d)) => {
                    prop_assert!(bytes.len() >= 4);
                    prop_assert_eq!(s.to_be_bytes(), [bytes[0], bytes[1]]);
                    prop_assert_eq!(d.to_be_bytes(), [bytes[2], bytes[3]]);
                }
                None => prop_assert!(bytes.len() < 4),
            }
        }
    }
}
