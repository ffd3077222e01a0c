//! The traffic generator: an XDP program run by BPF_PROG_RUN with live
//! frames on the generator's interface (the way xdp-trafficgen works), so
//! the kernel transmits each frame it writes. IPv4 UDP or TCP (SYN or
//! established ACK) towards the VIP, 1 to 2^32 flows, at full speed or paced
//! from userspace by sending what a cumulative schedule says is due.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData};
use aya::Ebpf;
use dataplane::tables::Mac;
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::TcpFlags;
use serde::{Deserialize, Serialize};

use crate::bpf::{self, BpfError};
use crate::stats::{self, Pacer};

const PROGRAM: &str = "xdplb_bench_gen";
/// Bytes of the template the program copies into every frame (GEN_HEADER_MAX).
pub const HEADER_MAX: usize = 64;
/// Size of `struct gen_config` (common.h): the template and five fields.
const CONFIG_LEN: usize = HEADER_MAX + 16;
/// Smallest frame: the template must fit.
pub const MIN_FRAME: usize = HEADER_MAX;
/// Largest frame: a full Ethernet payload, without FCS.
pub const MAX_FRAME: usize = 1514;
/// The first client address; flow i uses CLIENT_BASE + i / PORT_SPAN.
pub const CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
/// The first client address of a second generator running beside the
/// first (on another CPU): its flows must not be the first one's, or both
/// receiving queues would see the same 5-tuples (a NIC's flow hash never
/// splits a flow). 2^20 addresses above CLIENT_BASE: a flood of 60000 x 2^20
/// frames before they meet.
pub const SECOND_CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(10, 216, 0, 0);
/// The first client port.
pub const PORT_BASE: u16 = 1024;
/// Client ports per client address.
pub const PORT_SPAN: u16 = 60000;
/// Frames per BPF_PROG_RUN call at full speed: long enough to amortise the
/// call, short enough (a few ms) to stop on time.
const MAX_RATE_CHUNK: u32 = 1 << 14;
/// Frames per BPF_PROG_RUN call when paced, at most: half of veth's
/// receive ring, so that a burst never overflows it.
const PACED_CHUNK: u32 = 128;
/// BPF_PROG_RUN calls per second when paced, at most (see [`Pacer::new`]:
/// a call per frame exhausted the kernel's 65,534 memory-model ids, ENOSPC,
/// and slowed every later run of the invocation).
const PACED_CALLS_PER_SEC: f64 = 4000.0;
/// How far a paced run may fall behind before it gives frames up instead of
/// catching up in a burst: veth's receive ring holds 256 frames.
const PACED_BACKLOG: u64 = 256;

/// What the frames carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// IPv4 UDP datagrams.
    Udp,
    /// TCP SYNs (each frame opens a flow, as far as a balancer can tell).
    TcpSyn,
    /// TCP ACKs of established flows (send SYNs of every flow first).
    TcpAck,
}

impl Traffic {
    /// The IP protocol's name, as a virtual server's `protocol`.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::TcpSyn | Self::TcpAck => "TCP",
        }
    }

    /// Where the payload (and the timestamp) starts.
    pub fn timestamp_offset(self) -> usize {
        match self {
            Self::Udp => 14 + 20 + 8,
            Self::TcpSyn | Self::TcpAck => 14 + 20 + 20,
        }
    }
}

/// Why the generator could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The program failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// The frame size is outside what the generator writes.
    #[error("frame size {0} B is outside {MIN_FRAME}..={MAX_FRAME}")]
    FrameSize(usize),
}

/// The frames to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenSpec {
    /// Protocol and TCP flags.
    pub traffic: Traffic,
    /// Frame length without FCS.
    pub frame_bytes: usize,
    /// Distinct 5-tuples cycled through; 0 = a new one for every frame.
    pub flows: u32,
    /// The first client (source) address ([`CLIENT_BASE`] unless a second
    /// generator runs beside the first).
    pub client_base: Ipv4Addr,
    /// Ethernet source (the generator's interface).
    pub src_mac: Mac,
    /// Ethernet destination (the device under test).
    pub dst_mac: Mac,
    /// Destination address (the VIP).
    pub dst_ip: Ipv4Addr,
    /// Destination port.
    pub dst_port: u16,
}

impl GenSpec {
    /// The frame every run starts from: the template, padded to size with
    /// zeros, its IPv4 total length and UDP length covering the padding.
    pub fn frame(&self) -> Result<Vec<u8>, GenError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_bytes) {
            return Err(GenError::FrameSize(self.frame_bytes));
        }
        let mut spec = FrameSpec::new(self.client_base, PORT_BASE, self.dst_ip, self.dst_port);
        spec.src_mac = self.src_mac;
        spec.dst_mac = self.dst_mac;
        let headers = self.traffic.timestamp_offset();
        let payload = vec![0u8; self.frame_bytes - headers];
        let frame = match self.traffic {
            Traffic::Udp => build::udp_frame(&spec, &payload),
            Traffic::TcpSyn => build::tcp_frame(&spec, TcpFlags::SYN, &payload),
            Traffic::TcpAck => build::tcp_frame(&spec, TcpFlags::ACK, &payload),
        };
        Ok(frame)
    }

    /// `struct gen_config` as the program reads it (native byte order).
    fn config_bytes(&self) -> Result<[u8; CONFIG_LEN], GenError> {
        let frame = self.frame()?;
        let mut out = [0u8; CONFIG_LEN];
        out[..HEADER_MAX].copy_from_slice(&frame[..HEADER_MAX]);
        if self.traffic == Traffic::Udp {
            // UDP checksum 0 = none (RFC 768): the program changes the
            // source port and address without fixing an L4 checksum, and no
            // one on this path checks one (a DR balancer never does).
            out[40..42].fill(0);
        }
        let mut at = HEADER_MAX;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.flows.to_ne_bytes());
        put(&u32::from(self.client_base).to_ne_bytes());
        put(&PORT_BASE.to_ne_bytes());
        put(&PORT_SPAN.to_ne_bytes());
        let ts_offset = u32::try_from(self.traffic.timestamp_offset()).unwrap_or(u32::MAX);
        put(&ts_offset.to_ne_bytes());
        Ok(out)
    }
}

/// How long and how fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// How long.
    pub duration: Duration,
    /// Frames per second; `None` = as fast as the program runs.
    pub rate: Option<f64>,
    /// Frames per kernel batch (1-256; xdp-trafficgen's default is 64).
    pub batch_size: u32,
}

/// What a run sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenReport {
    /// Frames the program ran on (each one sent, or dropped by the kernel
    /// when the peer's queue was full).
    pub frames: u64,
    /// From the first call to the end of the last.
    pub elapsed: Duration,
}

impl GenReport {
    /// Frames per second run.
    pub fn pps(&self) -> f64 {
        stats::rate(self.frames, self.elapsed)
    }
}

/// The loaded generator program and its settings.
pub struct Generator {
    ebpf: Ebpf,
    config: Array<MapData, [u8; CONFIG_LEN]>,
    frame: Vec<u8>,
    spec: GenSpec,
    ifindex: u32,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("spec", &self.spec)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

impl Generator {
    /// Loads the program for frames out of interface `ifindex` (in the
    /// namespace of whatever thread later calls [`Self::run`]). When
    /// `anchor_ifindex` is given (an idle interface of the calling thread's
    /// namespace), the program is attached there for as long as it lives:
    /// a program attached somewhere stays in the kernel's XDP dispatcher,
    /// which spares each BPF_PROG_RUN call two RCU grace periods (the
    /// difference between ~0.5 and several Mpps).
    pub fn load(
        spec: GenSpec,
        ifindex: u32,
        anchor_ifindex: Option<u32>,
    ) -> Result<Self, GenError> {
        let mut ebpf = bpf::load(bpf::GEN_OBJECT, PROGRAM)?;
        if let Some(anchor) = anchor_ifindex {
            bpf::attach(&mut ebpf, PROGRAM, anchor)?;
        }
        let config = bpf::config_map::<CONFIG_LEN>(&mut ebpf, "gen_config")?;
        let mut generator = Self { ebpf, config, frame: Vec::new(), spec, ifindex };
        generator.set_spec(spec)?;
        Ok(generator)
    }

    /// Changes what the next runs send (flows restart from the first).
    pub fn set_spec(&mut self, spec: GenSpec) -> Result<(), GenError> {
        let bytes = spec.config_bytes()?;
        self.config
            .set(0, bytes, 0)
            .map_err(|source| BpfError::Map { map: "gen_config", source: Box::new(source) })?;
        self.frame = spec.frame()?;
        self.spec = spec;
        Ok(())
    }

    /// The current settings.
    pub fn spec(&self) -> &GenSpec {
        &self.spec
    }

    /// Sends `frames` frames in one BPF_PROG_RUN call. The calling thread
    /// must be in the generator's namespace.
    pub fn send(&self, frames: u32, batch_size: u32) -> Result<(), GenError> {
        bpf::run_live(&self.ebpf, PROGRAM, &self.frame, self.ifindex, frames, batch_size)?;
        Ok(())
    }

    /// Sends according to `plan`, stopping early when `stop` is set. The
    /// calling thread must be in the generator's namespace (and is best
    /// pinned: the kernel sends on the queue of the CPU it runs on).
    pub fn run(&self, plan: &Plan, stop: &AtomicBool) -> Result<GenReport, GenError> {
        let start = Instant::now();
        let mut frames = 0u64;
        let mut pacer =
            plan.rate.map(|rate| Pacer::new(rate, PACED_CHUNK, PACED_BACKLOG, PACED_CALLS_PER_SEC));
        loop {
            let elapsed = start.elapsed();
            if elapsed >= plan.duration || stop.load(Ordering::Relaxed) {
                break;
            }
            let batch = match pacer.as_mut() {
                None => MAX_RATE_CHUNK,
                Some(pacer) => pacer.next_batch(elapsed),
            };
            if batch == 0 {
                // Ahead of the schedule: sleep until the next frame is due
                // (timer slack is set low by the caller).
                let next = pacer.as_ref().map_or(Duration::ZERO, Pacer::next_due);
                std::thread::sleep(next.saturating_sub(elapsed).max(Duration::from_micros(2)));
                continue;
            }
            match self.send(batch, plan.batch_size) {
                Ok(()) => frames += u64::from(batch),
                // A signal cut the call short (the loop head sees a stop
                // request); the frames it sent before are not counted.
                Err(GenError::Bpf(BpfError::Run { source, .. }))
                    if source.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(GenReport { frames, elapsed: start.elapsed() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dataplane::wire::{EthernetFrame, Ipv4Packet};

    fn spec(traffic: Traffic, frame_bytes: usize) -> GenSpec {
        GenSpec {
            traffic,
            frame_bytes,
            flows: 1000,
            client_base: CLIENT_BASE,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            dst_ip: Ipv4Addr::new(10, 99, 0, 100),
            dst_port: 5001,
        }
    }

    #[test]
    fn frames_have_the_asked_size_and_valid_headers() {
        for traffic in [Traffic::Udp, Traffic::TcpSyn, Traffic::TcpAck] {
            for size in [MIN_FRAME, 128, 1500, MAX_FRAME] {
                let frame = spec(traffic, size).frame().unwrap();
                assert_eq!(frame.len(), size, "{traffic:?}");
                let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum(), "{traffic:?} {size}");
                assert_eq!(usize::from(ip.total_len()), size - 14);
            }
        }
        assert!(matches!(spec(Traffic::Udp, 63).frame(), Err(GenError::FrameSize(63))));
        assert!(matches!(spec(Traffic::Udp, 1515).frame(), Err(GenError::FrameSize(1515))));
    }

    #[test]
    fn config_layout_matches_common_h() {
        let s = spec(Traffic::TcpSyn, 64);
        let bytes = s.config_bytes().unwrap();
        assert_eq!(&bytes[..HEADER_MAX], &s.frame().unwrap()[..HEADER_MAX]);
        assert_eq!(bytes[64..68], 1000u32.to_ne_bytes());
        assert_eq!(bytes[68..72], u32::from(CLIENT_BASE).to_ne_bytes());
        assert_eq!(bytes[72..74], PORT_BASE.to_ne_bytes());
        assert_eq!(bytes[74..76], PORT_SPAN.to_ne_bytes());
        assert_eq!(bytes[76..80], 54u32.to_ne_bytes());
        // The TCP flags byte of the template is the SYN's.
        assert_eq!(bytes[14 + 20 + 13], 0x02);
        let second = GenSpec { client_base: SECOND_CLIENT_BASE, ..s };
        let bytes = second.config_bytes().unwrap();
        assert_eq!(bytes[68..72], u32::from(SECOND_CLIENT_BASE).to_ne_bytes());
        // The template's source address is the base: the first flow's.
        assert_eq!(bytes[14 + 12..14 + 16], SECOND_CLIENT_BASE.octets());
        let udp = spec(Traffic::Udp, 64).config_bytes().unwrap();
        assert_eq!(udp[40..42], [0, 0], "UDP checksum off");
        assert_eq!(udp[76..80], 42u32.to_ne_bytes());
    }
}
