//! The arithmetic of a benchmark, kept pure so it is tested without a
//! kernel: min/median/max of repeated runs, the pacing schedule of a
//! fixed-rate run, and how sparsely the sink samples latencies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Minimum, median and maximum of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, ignoring NaNs; `None` when nothing is left.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median =
            if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Self { min: sorted[0], median, max: sorted[n - 1] })
    }

    /// Every field divided by `divisor` (e.g. pps to Mpps).
    pub fn scaled(self, divisor: f64) -> Self {
        Self { min: self.min / divisor, median: self.median / divisor, max: self.max / divisor }
    }
}

/// How many frames a run at `rate` frames/s should have sent `elapsed`
/// after its start: the cumulative schedule a paced sender catches up with
/// (catching up on a cumulative count keeps the long-run rate exact however
/// late each wake-up is).
pub fn frames_due(rate: f64, elapsed: Duration) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        return 0;
    }
    let due = rate * elapsed.as_secs_f64();
    if due >= u64::MAX as f64 {
        u64::MAX
    } else {
        due as u64
    }
}

/// A paced sender's schedule: how many frames to send next so that the
/// count sent follows `rate` cumulatively, without bursting after a stall.
/// When the sender falls more than `max_backlog` frames behind (it was not
/// scheduled for a while), the excess is given up rather than sent back to
/// back: a burst would overflow the receiver's ring and measure the burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    rate: f64,
    min_batch: u32,
    max_batch: u32,
    max_backlog: u64,
    accounted: u64,
    skipped: u64,
}

impl Pacer {
    /// A schedule of `rate` frames/s in batches of at most `max_batch`,
    /// and of at least `rate / max_calls_per_sec` (capped at `max_batch`):
    /// every BPF_PROG_RUN call costs the kernel a page pool, and one that
    /// ends with frames still in the receiver's ring lingers for a second
    /// (with each release walking all that linger), so a pacer that sent
    /// every frame on its own would load the box it measures.
    pub fn new(rate: f64, max_batch: u32, max_backlog: u64, max_calls_per_sec: f64) -> Self {
        let max_batch = max_batch.max(1);
        let min_batch = if rate.is_finite() && rate > 0.0 && max_calls_per_sec > 0.0 {
            // Saturating: a huge quotient caps at max_batch below.
            (rate / max_calls_per_sec).ceil() as u32
        } else {
            1
        };
        let min_batch = min_batch.clamp(1, max_batch);
        Self { rate, min_batch, max_batch, max_backlog, accounted: 0, skipped: 0 }
    }

    /// The fewest frames a call sends.
    pub fn min_batch(&self) -> u32 {
        self.min_batch
    }

    /// The next batch to send `elapsed` after the start (0 = wait: fewer
    /// than the minimum batch are due). The caller sends it before asking
    /// again.
    pub fn next_batch(&mut self, elapsed: Duration) -> u32 {
        let due = frames_due(self.rate, elapsed);
        let floor = due.saturating_sub(self.max_backlog);
        if self.accounted < floor {
            self.skipped += floor - self.accounted;
            self.accounted = floor;
        }
        let owed = due.saturating_sub(self.accounted);
        if owed < u64::from(self.min_batch) {
            return 0;
        }
        let batch = owed.min(u64::from(self.max_batch));
        self.accounted += batch;
        u32::try_from(batch).unwrap_or(self.max_batch)
    }

    /// When the next batch is due, counted from the start.
    pub fn next_due(&self) -> Duration {
        if self.rate.is_nan() || self.rate <= 0.0 {
            return Duration::MAX;
        }
        Duration::from_secs_f64((self.accounted + u64::from(self.min_batch)) as f64 / self.rate)
    }

    /// Frames given up after stalls.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Rate and length of a paced pass that sends every one of `flows` flows
/// at least once: at least `min_duration` long, at most `max_rate`, with
/// 10 % to spare for frames a stalled sender gives up.
pub fn flow_pass(flows: u32, min_duration: Duration, max_rate: f64) -> (f64, Duration) {
    let frames = f64::from(flows) * 1.1;
    let secs = min_duration.as_secs_f64().max(frames / max_rate).max(1e-3);
    (frames / secs, Duration::from_secs_f64(secs))
}

/// The sink records the latency of every 2^n-th frame: the smallest n that
/// keeps the samples of `frames` frames within `budget` (0 = every frame).
pub fn sample_log2(frames: u64, budget: u64) -> u32 {
    let budget = budget.max(1);
    let mut shift = 0;
    while shift < 31 && frames >> shift > budget {
        shift += 1;
    }
    shift
}

/// Frames per second from a count and a duration; 0 for an empty duration.
pub fn rate(frames: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        frames as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
        assert_eq!(Spread::of(&[5.0]).unwrap().median, 5.0);
    }

    proptest! {
        #[test]
        fn spread_is_ordered_and_bounded(values in prop::collection::vec(-1e9f64..1e9, 1..40)) {
            let s = Spread::of(&values).unwrap();
            prop_assert!(s.min <= s.median && s.median <= s.max);
            prop_assert!(values.iter().all(|v| *v >= s.min && *v <= s.max));
            let below = values.iter().filter(|v| **v < s.median).count();
            let above = values.iter().filter(|v| **v > s.median).count();
            prop_assert!(below <= values.len() / 2 && above <= values.len() / 2);
        }

        /// However the wake-ups fall, a paced sender never gets ahead of the
        /// schedule, and what it sent plus what it gave up is the schedule.
        #[test]
        fn pacing_tracks_the_schedule(
            rate in 1.0f64..20e6,
            calls in prop_oneof![Just(f64::INFINITY), 100.0f64..1e6],
            steps in prop::collection::vec(1u64..5_000_000, 1..200),
        ) {
            let mut pacer = Pacer::new(rate, 64, 256, calls);
            let mut elapsed = Duration::ZERO;
            let mut sent = 0u64;
            for step in steps {
                elapsed += Duration::from_nanos(step);
                let due = frames_due(rate, elapsed);
                let mut burst = 0u64;
                loop {
                    let batch = pacer.next_batch(elapsed);
                    if batch == 0 { break; }
                    prop_assert!(batch <= 64 && batch >= pacer.min_batch());
                    sent += u64::from(batch);
                    burst += u64::from(batch);
                }
                prop_assert!(sent <= due);
                // All that is due is sent or given up, but for less than
                // one minimum batch.
                let owed = due - sent - pacer.skipped();
                prop_assert!(owed < u64::from(pacer.min_batch()), "owed {}", owed);
                // Never more than the backlog at once, however long the stall.
                prop_assert!(burst <= 256);
                prop_assert!(pacer.next_due() >= elapsed);
            }
        }

        #[test]
        fn a_flow_pass_covers_every_flow_within_the_rate(
            flows in 1u32..2_000_000, min_ms in 1u64..2000, max_rate in 1e3f64..1e7,
        ) {
            let (rate, duration) = flow_pass(flows, Duration::from_millis(min_ms), max_rate);
            prop_assert!(rate <= max_rate * 1.000_001);
            prop_assert!(duration >= Duration::from_millis(min_ms));
            prop_assert!(frames_due(rate, duration) as f64 >= f64::from(flows) * 1.09);
        }

        #[test]
        fn sampling_stays_within_budget(frames in 0u64..1u64 << 40, budget in 1u64..1_000_000) {
            let shift = sample_log2(frames, budget);
            prop_assert!(frames >> shift <= budget || shift == 31);
            if shift > 0 {
                // One step sparser would not have been needed.
                prop_assert!(frames >> (shift - 1) > budget);
            }
        }
    }

    #[test]
    fn pacing_examples() {
        assert_eq!(frames_due(1e6, Duration::from_millis(1)), 1000);
        let mut pacer = Pacer::new(1e6, 64, 1000, f64::INFINITY);
        assert_eq!(pacer.next_batch(Duration::from_micros(100)), 64);
        assert_eq!(pacer.next_batch(Duration::from_micros(100)), 36);
        assert_eq!(pacer.next_batch(Duration::from_micros(100)), 0);
        assert_eq!(pacer.next_due(), Duration::from_micros(101));
        // A 10 ms stall: 9,900 frames owed, all but 1,000 given up.
        assert_eq!(pacer.next_batch(Duration::from_millis(10)), 64);
        assert_eq!(pacer.skipped(), 8_900);
        // At most 2,000 calls a second: 500 frames due each time, capped
        // at 64; nothing is sent until 64 are due.
        let mut pacer = Pacer::new(1e6, 64, 1000, 2000.0);
        assert_eq!(pacer.min_batch(), 64);
        assert_eq!(pacer.next_batch(Duration::from_micros(63)), 0);
        assert_eq!(pacer.next_due(), Duration::from_micros(64));
        assert_eq!(pacer.next_batch(Duration::from_micros(64)), 64);
        let slow = Pacer::new(10_000.0, 64, 256, 2000.0);
        assert_eq!(slow.min_batch(), 5);
        assert_eq!(frames_due(0.0, Duration::from_secs(1)), 0);
        assert_eq!(rate(3_000_000, Duration::from_secs(2)), 1.5e6);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
    }
}
