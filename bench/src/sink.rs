//! The sink: an XDP program that counts and drops every frame reaching an
//! interface and, when asked, samples the latency of every 2^n-th frame
//! (now minus the generator's timestamp in the payload) into a ring buffer
//! that [`Sink::drain`] turns into an hdrhistogram. Attached to the
//! generator's interface it counts what a forwarder sent back; attached to
//! the DUT's it is the XDP_DROP peer that measures the generator's ceiling.

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::Ebpf;
use hdrhistogram::Histogram;

use crate::bpf::{self, BpfError};

const PROGRAM: &str = "xdplb_bench_sink";
const CONFIG_LEN: usize = 8;
/// `sample_log2` value that turns sampling off.
const SAMPLING_OFF: u32 = 32;
/// Latency samples the ring holds (8 MiB of 16-byte records).
pub const RING_SAMPLES: u64 = (8 << 20) / 16;

/// Counters of the sink program, summed over CPUs (enum sink_stat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Frames seen (and dropped).
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Latencies written to the ring.
    pub sampled: u64,
    /// Samples lost because the ring was full.
    pub ring_full: u64,
    /// Sampled frames without a plausible timestamp.
    pub bad_timestamp: u64,
}

impl SinkCounts {
    /// What moved from `before` to `self`.
    pub fn since(&self, before: &SinkCounts) -> SinkCounts {
        SinkCounts {
            frames: self.frames.saturating_sub(before.frames),
            bytes: self.bytes.saturating_sub(before.bytes),
            sampled: self.sampled.saturating_sub(before.sampled),
            ring_full: self.ring_full.saturating_sub(before.ring_full),
            bad_timestamp: self.bad_timestamp.saturating_sub(before.bad_timestamp),
        }
    }
}

/// The attached sink; dropping it detaches the program.
pub struct Sink {
    config: Array<MapData, [u8; CONFIG_LEN]>,
    stats: PerCpuArray<MapData, u64>,
    ring: RingBuf<MapData>,
    ifindex: u32,
    // Owns the program and its bpf_link.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("ifindex", &self.ifindex).finish_non_exhaustive()
    }
}

impl Sink {
    /// Loads the sink and attaches it (native mode) to interface `ifindex`
    /// of the calling thread's namespace, sampling off.
    pub fn attach(ifindex: u32) -> Result<Self, BpfError> {
        let mut ebpf = bpf::load(bpf::SINK_OBJECT, PROGRAM)?;
        let config = bpf::config_map::<CONFIG_LEN>(&mut ebpf, "sink_config")?;
        let stats = bpf::counter_map(&mut ebpf, "sink_stats")?;
        let ring = RingBuf::try_from(bpf::take_map(&mut ebpf, "sink_samples")?)
            .map_err(|source| BpfError::Map { map: "sink_samples", source: Box::new(source) })?;
        let mut sink = Self { config, stats, ring, ifindex, _ebpf: ebpf };
        sink.set_sampling(None, 0)?;
        bpf::attach(&mut sink._ebpf, PROGRAM, ifindex)?;
        Ok(sink)
    }

    /// Samples the latency of every 2^`log2`-th frame from the timestamp at
    /// byte `ts_offset`; `None` stops sampling.
    pub fn set_sampling(&mut self, log2: Option<u32>, ts_offset: usize) -> Result<(), BpfError> {
        let shift = log2.map_or(SAMPLING_OFF, |s| s.min(SAMPLING_OFF - 1));
        let mut bytes = [0u8; CONFIG_LEN];
        bytes[..4].copy_from_slice(&shift.to_ne_bytes());
        let offset = u32::try_from(ts_offset).unwrap_or(u32::MAX);
        bytes[4..].copy_from_slice(&offset.to_ne_bytes());
        self.config
            .set(0, bytes, 0)
            .map_err(|source| BpfError::Map { map: "sink_config", source: Box::new(source) })
    }

    /// The counters now.
    pub fn counts(&self) -> Result<SinkCounts, BpfError> {
        let get = |i| bpf::counter_sum(&self.stats, "sink_stats", i);
        Ok(SinkCounts {
            frames: get(0)?,
            bytes: get(1)?,
            sampled: get(2)?,
            ring_full: get(3)?,
            bad_timestamp: get(4)?,
        })
    }

    /// Empties the ring into `histogram` (or discards the samples when it
    /// is `None`); returns how many samples there were.
    pub fn drain(&mut self, mut histogram: Option<&mut Histogram<u64>>) -> u64 {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if let (Some(h), Ok(bytes)) = (histogram.as_deref_mut(), <[u8; 8]>::try_from(&*item)) {
                // Values beyond the histogram's range are clamped, not lost.
                h.saturating_record(u64::from_ne_bytes(bytes));
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_since_subtracts_field_by_field() {
        let before =
            SinkCounts { frames: 10, bytes: 640, sampled: 1, ring_full: 0, bad_timestamp: 2 };
        let after =
            SinkCounts { frames: 25, bytes: 1600, sampled: 4, ring_full: 1, bad_timestamp: 2 };
        let d = after.since(&before);
        assert_eq!(
            d,
            SinkCounts { frames: 15, bytes: 960, sampled: 3, ring_full: 1, bad_timestamp: 0 }
        );
        // A counter that went backwards (a new program) reads as 0, never wraps.
        assert_eq!(before.since(&after).frames, 0);
    }
}
