//! A minimal reader for the classic pcap files tcpdump writes (`-w`), enough
//! to get the captured Ethernet frames back. A file still being written may
//! end in a partial record, which is left out rather than treated as an error.

use std::fmt;
use std::time::Duration;

/// Length of the file header.
const FILE_HEADER_LEN: usize = 24;
/// Length of each record's header.
const RECORD_HEADER_LEN: usize = 16;
/// Magic number of a file with microsecond timestamps.
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic number of a file with nanosecond timestamps.
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Why bytes are not a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcapError {
    /// Fewer bytes than the 24-byte file header.
    ShortHeader(usize),
    /// The first four bytes are no pcap magic number.
    BadMagic([u8; 4]),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader(len) => write!(f, "pcap file of {len} bytes, the header needs 24"),
            Self::BadMagic(magic) => write!(f, "pcap magic {magic:02x?} unknown"),
        }
    }
}

impl std::error::Error for PcapError {}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time since the epoch.
    pub time: Duration,
    /// The bytes captured (all of them with `tcpdump -s 0`).
    pub data: Vec<u8>,
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// The contents of a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    /// The link type (1: Ethernet).
    pub linktype: u32,
    /// The complete records, in file order.
    pub frames: Vec<Frame>,
    /// Whether the bytes ended inside a record (a file still being written).
    pub partial_tail: bool,
}

/// Parses a pcap file of either byte order and timestamp precision.
pub fn parse(bytes: &[u8]) -> Result<Pcap, PcapError> {
    let header = bytes.get(..FILE_HEADER_LEN).ok_or(PcapError::ShortHeader(bytes.len()))?;
    let magic = [header[0], header[1], header[2], header[3]];
    let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
        (MAGIC_USEC, _) => (false, false),
        (MAGIC_NSEC, _) => (false, true),
        (_, MAGIC_USEC) => (true, false),
        (_, MAGIC_NSEC) => (true, true),
        _ => return Err(PcapError::BadMagic(magic)),
    };
    let word = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let linktype = word(header, 20);
    let mut frames = Vec::new();
    let mut rest = &bytes[FILE_HEADER_LEN..];
    let mut partial_tail = false;
    while !rest.is_empty() {
        let Some(record) = rest.get(..RECORD_HEADER_LEN) else {
            partial_tail = true;
            break;
        };
        let (secs, frac, incl_len, orig_len) =
            (word(record, 0), word(record, 4), word(record, 8), word(record, 12));
        let end = RECORD_HEADER_LEN.saturating_add(incl_len as usize);
        let Some(data) = rest.get(RECORD_HEADER_LEN..end) else {
            partial_tail = true;
            break;
        };
        let frac = if nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
        let time = Duration::from_secs(u64::from(secs)) + Duration::from_nanos(frac);
        frames.push(Frame { time, data: data.to_vec(), orig_len });
        rest = &rest[end..];
    }
    Ok(Pcap { linktype, frames, partial_tail })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes a pcap file the way libpcap does (little-endian, microseconds).
    fn write(frames: &[(u32, u32, Vec<u8>)], big_endian: bool) -> Vec<u8> {
        let word = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let half = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = Vec::new();
        out.extend(word(MAGIC_USEC));
        out.extend(half(2));
        out.extend(half(4));
        out.extend(word(0));
        out.extend(word(0));
        out.extend(word(262_144));
        out.extend(word(LINKTYPE_ETHERNET));
        for (secs, usecs, data) in frames {
            out.extend(word(*secs));
            out.extend(word(*usecs));
            out.extend(word(data.len() as u32));
            out.extend(word(data.len() as u32));
            out.extend(data);
        }
        out
    }

    #[test]
    fn reads_the_header_of_a_file_tcpdump_wrote() {
        // `tcpdump -i lo -w FILE -s 0` (tcpdump 4.99.3, libpcap 1.10.3, x86_64), `xxd FILE`.
        #[rustfmt::skip]
        let header = [
            0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,
        ];
        let pcap = parse(&header).unwrap();
        assert_eq!(pcap.linktype, LINKTYPE_ETHERNET);
        assert!(pcap.frames.is_empty());
        assert!(!pcap.partial_tail);
    }

    #[test]
    fn rejects_what_is_not_pcap() {
        assert_eq!(parse(&[0; 10]), Err(PcapError::ShortHeader(10)));
        assert_eq!(parse(&[0; 24]), Err(PcapError::BadMagic([0; 4])));
        // pcapng is a different format.
        let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a];
        ng.resize(24, 0);
        assert!(matches!(parse(&ng), Err(PcapError::BadMagic(_))));
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_both_byte_orders(
            frames in proptest::collection::vec(
                (any::<u32>(), 0u32..1_000_000, proptest::collection::vec(any::<u8>(), 0..200)),
                0..8,
            ),
            big_endian in any::<bool>(),
        ) {
            let pcap = parse(&write(&frames, big_endian)).unwrap();
            prop_assert!(!pcap.partial_tail);
            prop_assert_eq!(pcap.frames.len(), frames.len());
            for (got, (secs, usecs, data)) in pcap.frames.iter().zip(&frames) {
                prop_assert_eq!(&got.data, data);
                prop_assert_eq!(got.orig_len as usize, data.len());
                let want = Duration::from_secs(u64::from(*secs)) + Duration::from_micros(u64::from(*usecs));
                prop_assert_eq!(got.time, want);
            }
        }

        #[test]
        fn a_cut_file_yields_the_complete_records_before_the_cut(
            frames in proptest::collection::vec(
                (any::<u32>(), 0u32..1_000_000, proptest::collection::vec(any::<u8>(), 0..100)),
                1..6,
            ),
            cut in any::<proptest::sample::Index>(),
        ) {
            let bytes = write(&frames, false);
            let cut = FILE_HEADER_LEN + cut.index(bytes.len() - FILE_HEADER_LEN);
            let pcap = parse(&bytes[..cut]).unwrap();
            // Record i ends at this offset; exactly the records ending by the cut are read.
            let mut end = FILE_HEADER_LEN;
            let mut complete = 0;
            for (_, _, data) in &frames {
                end += RECORD_HEADER_LEN + data.len();
                if end <= cut {
                    complete += 1;
                }
            }
            prop_assert_eq!(pcap.frames.len(), complete);
            prop_assert_eq!(pcap.partial_tail, cut != FILE_HEADER_LEN && !frames_end_at(&frames, cut));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(pcap) = parse(&bytes) {
                let body: usize = pcap.frames.iter().map(|f| RECORD_HEADER_LEN + f.data.len()).sum();
                prop_assert!(FILE_HEADER_LEN + body <= bytes.len());
            }
        }
    }

    /// Whether `cut` falls exactly on a record boundary.
    fn frames_end_at(frames: &[(u32, u32, Vec<u8>)], cut: usize) -> bool {
        let mut end = FILE_HEADER_LEN;
        for (_, _, data) in frames {
            end += RECORD_HEADER_LEN + data.len();
            if end == cut {
                return true;
            }
        }
        false
    }
}
