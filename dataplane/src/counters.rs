//! Per-worker counters on their own cache lines. The owning worker counts
//! into a plain local array and publishes it once per batch with relaxed
//! stores; control sums the published values. No shared `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::verdict::{DropReason, ForwardKind, Verdict};

const RX: usize = 0;
const TX: usize = 1;
const IP_OPTIONS: usize = 2;
const FORWARD_BASE: usize = 3;
const DROP_BASE: usize = FORWARD_BASE + ForwardKind::COUNT;
/// How many counters a worker keeps.
pub const COUNT: usize = DROP_BASE + DropReason::COUNT;

/// A worker's counting array, owned by the worker thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCounters([u64; COUNT]);

impl Default for LocalCounters {
    fn default() -> Self {
        Self([0; COUNT])
    }
}

impl LocalCounters {
    /// Frames taken from the RX ring.
    pub fn add_rx(&mut self, frames: u64) {
        self.0[RX] += frames;
    }

    /// Frames placed on the TX ring.
    pub fn add_tx(&mut self, frames: u64) {
        self.0[TX] += frames;
    }

    /// A forwarded IPv4 packet that carried options (forwarded untouched).
    pub fn add_ip_options(&mut self) {
        self.0[IP_OPTIONS] += 1;
    }

    /// Counts a verdict by its kind or reason.
    pub fn add_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Forward(kind) => self.0[FORWARD_BASE + kind as usize] += 1,
            Verdict::Drop(reason) => self.add_drop(reason, 1),
        }
    }

    /// Counts `frames` drops for `reason` (e.g. a TX ring that had no room).
    pub fn add_drop(&mut self, reason: DropReason, frames: u64) {
        self.0[DROP_BASE + reason as usize] += frames;
    }

    /// A readable view of the counts.
    pub fn view(&self) -> CounterView {
        CounterView(self.0)
    }
}

/// The published copy of one worker's counters, on its own cache lines.
#[derive(Debug, Default)]
pub struct SharedCounters(CachePadded<[AtomicU64; COUNT]>);

impl SharedCounters {
    /// Publishes the worker's local counts (called by the owner only).
    pub fn publish(&self, local: &LocalCounters) {
        for (shared, value) in self.0.iter().zip(local.0.iter()) {
            shared.store(*value, Ordering::Relaxed);
        }
    }

    /// What the worker last published.
    pub fn read(&self) -> CounterView {
        let mut out = [0; COUNT];
        for (o, shared) in out.iter_mut().zip(self.0.iter()) {
            *o = shared.load(Ordering::Relaxed);
        }
        CounterView(out)
    }
}

/// A copy of counters that can be summed and named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterView([u64; COUNT]);

impl Default for CounterView {
    fn default() -> Self {
        Self([0; COUNT])
    }
}

impl CounterView {
    pub fn rx(&self) -> u64 {
        self.0[RX]
    }
    pub fn tx(&self) -> u64 {
        self.0[TX]
    }
    pub fn ip_options(&self) -> u64 {
        self.0[IP_OPTIONS]
    }
    pub fn forwarded(&self, kind: ForwardKind) -> u64 {
        self.0[FORWARD_BASE + kind as usize]
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.0[DROP_BASE + reason as usize]
    }
    /// All forwarded frames, whatever their kind.
    pub fn forwarded_total(&self) -> u64 {
        ForwardKind::ALL.iter().map(|&k| self.forwarded(k)).sum()
    }
    /// All dropped frames, whatever their reason.
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.dropped(r)).sum()
    }

    /// Element-wise sum, for totals over workers.
    pub fn sum(self, other: CounterView) -> CounterView {
        let mut out = self.0;
        for (o, v) in out.iter_mut().zip(other.0.iter()) {
            *o += v;
        }
        CounterView(out)
    }

    /// Every counter with its stable name (`rx`, `forward.new_flow`,
    /// `drop.fragment` …), for logs, status and metrics.
    pub fn named(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let fixed = [("rx", self.rx()), ("tx", self.tx()), ("ip_options", self.ip_options())]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v));
        let forwards = ForwardKind::ALL
            .into_iter()
            .map(|k| (format!("forward.{}", k.name()), self.forwarded(k)));
        let drops =
            DropReason::ALL.into_iter().map(|r| (format!("drop.{}", r.name()), self.dropped(r)));
        fixed.chain(forwards).chain(drops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let mut local = LocalCounters::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                local.add_verdict(Verdict::Drop(reason));
            }
        }
        for (i, kind) in ForwardKind::ALL.into_iter().enumerate() {
            for _ in 0..(i + 100) {
                local.add_verdict(Verdict::Forward(kind));
            }
        }
        let view = local.view();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(view.dropped(reason), i as u64 + 1, "{}", reason.name());
        }
        for (i, kind) in ForwardKind::ALL.into_iter().enumerate() {
            assert_eq!(view.forwarded(kind), i as u64 + 100, "{}", kind.name());
        }
        assert_eq!(view.rx(), 0);
    }

    #[test]
    fn published_counters_sum_across_workers() {
        let shared = [SharedCounters::default(), SharedCounters::default()];
        let mut a = LocalCounters::default();
        a.add_rx(5);
        a.add_tx(4);
        a.add_drop(DropReason::TxRingFull, 1);
        let mut b = LocalCounters::default();
        b.add_rx(7);
        b.add_ip_options();
        shared[0].publish(&a);
        shared[1].publish(&b);
        let total =
            shared.iter().map(SharedCounters::read).fold(CounterView::default(), CounterView::sum);
        assert_eq!((total.rx(), total.tx(), total.ip_options()), (12, 4, 1));
        assert_eq!(total.dropped_total(), 1);
        let names: Vec<String> = total.named().map(|(n, _)| n).collect();
        assert!(names.contains(&"drop.tx_ring_full".to_owned()));
        assert_eq!(names.len(), COUNT);
    }

    #[test]
    fn shared_counters_own_their_cache_lines() {
        assert!(std::mem::align_of::<SharedCounters>() >= 64);
    }
}
