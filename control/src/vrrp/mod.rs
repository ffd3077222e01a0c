//! VRRP as keepalived 2.2.7 speaks it on the segment: the advertisement codec, frame builder
//! and receive checks ([`packet`]), and the election as a pure state machine with time passed
//! in ([`state`]). Neither does I/O: sockets, VIPs and gratuitous ARPs belong to the caller.

pub mod packet; // VRRPv2/v3 adverts: view, owned repr, keepalived's frame, RFC §7.1 receive checks
pub mod runner; // one instance wired to its effects: frames to send, VIPs to take or release
#[allow(unsafe_code)]
pub mod socket;
pub mod state; // the election: BACKUP/MASTER/FAULT, timers, preemption, keepalived's choices // the raw IPPROTO_VRRP receive socket, joined to 224.0.0.18

pub use packet::{Advert, Auth, DropReason, Rejection, Version};
pub use state::{Action, Config, Instance, State};

/// Golden frames: the keepalived 2.2.7 captures of `shared/fixtures/` (copied to control/
/// `testdata/`), read by a small pcapng (and classic pcap) reader.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod capture {
    use std::time::Duration;

    /// `shared/fixtures/vrrp-v2-adverts.pcap`: lvs1 (.101, priority 120) as master, one
    /// VRRPv2 advert a second, IP ID 1, 2, 3 …
    pub(crate) const V2_ADVERTS: &[u8] = include_bytes!("../../testdata/vrrp-v2-adverts.pcap");

    /// `shared/fixtures/vrrp-prio0-failover.pcap`: lvs1 stops cleanly (a priority-0 advert),
    /// lvs2 (.102, priority 110) takes over after its skew time.
    pub(crate) const PRIO0_FAILOVER: &[u8] =
        include_bytes!("../../testdata/vrrp-prio0-failover.pcap");

    /// One captured frame: its time since the epoch and its bytes (Ethernet first).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Frame {
        pub(crate) time: Duration,
        pub(crate) data: Vec<u8>,
    }

    fn u32_at(buf: &[u8], at: usize, big_endian: bool) -> u32 {
        let b = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn usize_at(buf: &[u8], at: usize, big_endian: bool) -> usize {
        usize::try_from(u32_at(buf, at, big_endian)).unwrap()
    }

    /// The frames of a capture, in order (frame 1 first, as Wireshark numbers them). The
    /// fixtures are pcapng (as dumpcap writes): a section header, one interface (Ethernet,
    /// microsecond timestamps) and enhanced packet blocks. Classic pcap is read too.
    pub(crate) fn frames(file: &[u8]) -> Vec<Frame> {
        match u32_at(file, 0, false) {
            0x0a0d_0d0a => pcapng(file),
            0xa1b2_c3d4 => classic(file, false),
            0xd4c3_b2a1 => classic(file, true),
            magic => panic!("not a capture file: magic {magic:#x}"),
        }
    }

    fn pcapng(file: &[u8]) -> Vec<Frame> {
        // The byte-order magic of the section header says which way every number is written.
        let big_endian = u32_at(file, 8, false) != 0x1a2b_3c4d;
        let mut frames = Vec::new();
        let mut at = 0;
        while at + 12 <= file.len() {
            let block_type = u32_at(file, at, big_endian);
            let len = usize_at(file, at + 4, big_endian);
            assert!(len >= 12 && at + len <= file.len(), "block at {at} of length {len}");
            if block_type == 1 {
                assert_eq!(u16::from_le_bytes([file[at + 8], file[at + 9]]), 1, "Ethernet only");
                // No if_tsresol option in the fixtures' interface block: microseconds.
                assert_eq!(len, 20, "interface block with options");
            }
            if block_type == 6 {
                let high = u64::from(u32_at(file, at + 12, big_endian));
                let low = u64::from(u32_at(file, at + 16, big_endian));
                let caplen = usize_at(file, at + 20, big_endian);
                let data = file[at + 28..at + 28 + caplen].to_vec();
                frames.push(Frame { time: Duration::from_micros((high << 32) | low), data });
            }
            at += len;
        }
        frames
    }

    fn classic(file: &[u8], big_endian: bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut at = 24;
        while at + 16 <= file.len() {
            let secs = u64::from(u32_at(file, at, big_endian));
            let micros = u64::from(u32_at(file, at + 4, big_endian));
            let caplen = usize_at(file, at + 8, big_endian);
            let data = file[at + 16..at + 16 + caplen].to_vec();
            frames.push(Frame {
                time: Duration::from_secs(secs) + Duration::from_micros(micros),
                data,
            });
            at += 16 + caplen;
        }
        frames
    }

    #[test]
    fn the_fixtures_hold_what_their_readme_says() {
        let adverts = frames(V2_ADVERTS);
        assert!(adverts.len() >= 10, "{} frames", adverts.len());
        assert!(adverts.iter().all(|f| f.data.len() == 54 && f.data[23] == 112));
        let failover = frames(PRIO0_FAILOVER);
        // Adverts (EtherType 0x0800) and gratuitous ARPs (0x0806), nothing else.
        assert!(failover.iter().all(|f| matches!(&f.data[12..14], [0x08, 0x00] | [0x08, 0x06])));
        assert!(failover.windows(2).all(|w| w[0].time <= w[1].time));
    }

    #[test]
    fn classic_pcap_reads_the_same_frames() {
        let ng = frames(V2_ADVERTS);
        let mut file = Vec::new();
        for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.truncate(24 - 4);
        file.extend_from_slice(&1u32.to_le_bytes());
        for f in &ng {
            let secs = u32::try_from(f.time.as_secs()).unwrap();
            let len = u32::try_from(f.data.len()).unwrap();
            for word in [secs, f.time.subsec_micros(), len, len] {
                file.extend_from_slice(&word.to_le_bytes());
            }
            file.extend_from_slice(&f.data);
        }
        assert_eq!(frames(&file), ng);
    }
}
