//! Per-worker counters on their own cache lines, and per-worker traffic per
//! real server. The owning worker counts into plain local arrays and
//! publishes them once per batch with relaxed stores; control sums the
//! published values. No shared `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::tables::BackendId;
use crate::verdict::{DropReason, ForwardKind, Verdict};

const RX: usize = 0;
const TX: usize = 1;
const IP_OPTIONS: usize = 2;
const PERSISTENCE_HITS: usize = 3;
const PERSISTENCE_RESCHEDULED: usize = 4;
const PERSISTENCE_TABLE_FULL: usize = 5;
const FORWARD_BASE: usize = 6;
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

    /// A new flow of a persistent service that followed its client's
    /// template to the template's real server.
    pub fn add_persistence_hit(&mut self) {
        self.0[PERSISTENCE_HITS] += 1;
    }

    /// A template whose real server could no longer take new flows
    /// (weight 0, no MAC, removed): the flow was scheduled afresh and the
    /// template overwritten.
    pub fn add_persistence_rescheduled(&mut self) {
        self.0[PERSISTENCE_RESCHEDULED] += 1;
    }

    /// A new flow of a persistent service scheduled without recording a
    /// template: the persistence table had no room (or, rarely, the real
    /// server id did not fit a template, or other workers kept the slots busy).
    pub fn add_persistence_table_full(&mut self) {
        self.0[PERSISTENCE_TABLE_FULL] += 1;
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
    /// New flows sent to their client's persistence template's server.
    pub fn persistence_hits(&self) -> u64 {
        self.0[PERSISTENCE_HITS]
    }
    /// Templates overwritten because their server could take no new flow.
    pub fn persistence_rescheduled(&self) -> u64 {
        self.0[PERSISTENCE_RESCHEDULED]
    }
    /// New flows of persistent services that got no template (table full).
    pub fn persistence_table_full(&self) -> u64 {
        self.0[PERSISTENCE_TABLE_FULL]
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
        let fixed = [
            ("rx", self.rx()),
            ("tx", self.tx()),
            ("ip_options", self.ip_options()),
            ("persistence_hits", self.persistence_hits()),
            ("persistence_rescheduled", self.persistence_rescheduled()),
            ("persistence_table_full", self.persistence_table_full()),
        ]
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

/// Real server ids up to this one have their own traffic counters in every
/// worker; frames to higher ids are counted together as untracked.
pub const MAX_TRACKED_BACKEND: u32 = 65535;
const TRACKED: usize = MAX_TRACKED_BACKEND as usize + 1;
/// The index of the bucket shared by ids above [`MAX_TRACKED_BACKEND`].
const UNTRACKED: usize = TRACKED;
const PACKETS: usize = 0;
const BYTES: usize = 1;

/// Frames and bytes (whole Ethernet frames) forwarded to one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendTraffic {
    pub backend: BackendId,
    pub packets: u64,
    pub bytes: u64,
}

/// A worker's traffic counts per real server, owned by the worker thread.
/// Allocated once at worker start (about 1 MiB, zero pages until touched);
/// counting a frame never allocates.
pub struct LocalTraffic {
    /// `[packets, bytes]` per id, then the untracked bucket.
    counts: Box<[[u64; 2]]>,
    /// Indices counted since the last publication, each listed once
    /// (`dirty` dedupes), so a batch publishes only what it touched.
    /// Its capacity covers every index: it never grows.
    touched: Vec<u32>,
    dirty: Box<[u64]>,
}

impl Default for LocalTraffic {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalTraffic {
    /// Zeroed counts for every trackable id.
    pub fn new() -> Self {
        LocalTraffic {
            counts: vec![[0; 2]; TRACKED + 1].into_boxed_slice(),
            touched: Vec::with_capacity(TRACKED + 1),
            dirty: vec![0; (TRACKED + 1).div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Counts one forwarded frame of `frame_len` bytes to `backend`.
    #[inline]
    pub fn add(&mut self, backend: BackendId, frame_len: usize) {
        let index = usize::try_from(backend.0).map_or(UNTRACKED, |i| i.min(UNTRACKED));
        let count = &mut self.counts[index];
        count[PACKETS] += 1;
        count[BYTES] += frame_len as u64;
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.dirty[word] & bit == 0 {
            self.dirty[word] |= bit;
            // Fits: index ≤ UNTRACKED = 65536.
            self.touched.push(index as u32);
        }
    }

    /// What has been counted for `backend` so far (tracked ids only).
    pub fn get(&self, backend: BackendId) -> BackendTraffic {
        let count = usize::try_from(backend.0)
            .ok()
            .filter(|&i| i < TRACKED)
            .map_or([0; 2], |i| self.counts[i]);
        BackendTraffic { backend, packets: count[PACKETS], bytes: count[BYTES] }
    }

    /// Publishes the counts changed since the last call (called by the owner
    /// only, once per batch): plain relaxed stores, no read-modify-write.
    pub fn publish(&mut self, shared: &SharedTraffic) {
        for index in self.touched.drain(..) {
            let index = index as usize;
            let (count, out) = (&self.counts[index], &shared.0[index]);
            out[PACKETS].store(count[PACKETS], Ordering::Relaxed);
            out[BYTES].store(count[BYTES], Ordering::Relaxed);
            self.dirty[index / 64] &= !(1u64 << (index % 64));
        }
    }
}

impl std::fmt::Debug for LocalTraffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTraffic").field("unpublished", &self.touched.len()).finish()
    }
}

/// The published copy of one worker's traffic per real server (about
/// 1 MiB per worker). Packets and bytes of one server are two stores, so a
/// reader may see them one batch apart.
pub struct SharedTraffic(Box<[[AtomicU64; 2]]>);

impl Default for SharedTraffic {
    fn default() -> Self {
        SharedTraffic((0..=TRACKED).map(|_| Default::default()).collect())
    }
}

impl SharedTraffic {
    /// Every tracked real server the worker has forwarded to, in id order
    /// (a walk of all 65536 ids: for status and metrics, not per packet).
    pub fn read(&self) -> Vec<BackendTraffic> {
        self.0[..TRACKED]
            .iter()
            .enumerate()
            .filter_map(|(id, count)| {
                let packets = count[PACKETS].load(Ordering::Relaxed);
                (packets > 0).then(|| BackendTraffic {
                    // Fits: id < 65536.
                    backend: BackendId(id as u32),
                    packets,
                    bytes: count[BYTES].load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Frames to real servers whose id is above [`MAX_TRACKED_BACKEND`],
    /// all together (`backend` is `MAX_TRACKED_BACKEND + 1`).
    pub fn untracked(&self) -> BackendTraffic {
        let count = &self.0[UNTRACKED];
        BackendTraffic {
            backend: BackendId(MAX_TRACKED_BACKEND + 1),
            packets: count[PACKETS].load(Ordering::Relaxed),
            bytes: count[BYTES].load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for SharedTraffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTraffic").finish_non_exhaustive()
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
    fn persistence_counters_are_named_and_summed() {
        let mut a = LocalCounters::default();
        a.add_persistence_hit();
        a.add_persistence_hit();
        a.add_persistence_rescheduled();
        let mut b = LocalCounters::default();
        b.add_persistence_table_full();
        b.add_persistence_hit();
        let total = a.view().sum(b.view());
        assert_eq!(
            (
                total.persistence_hits(),
                total.persistence_rescheduled(),
                total.persistence_table_full()
            ),
            (3, 1, 1)
        );
        let named: Vec<(String, u64)> = total.named().collect();
        assert!(named.contains(&("persistence_hits".to_owned(), 3)));
        assert!(named.contains(&("persistence_table_full".to_owned(), 1)));
        // Not verdicts: they leave the verdict totals alone.
        assert_eq!(total.forwarded_total() + total.dropped_total(), 0);
    }

    #[test]
    fn traffic_is_published_per_backend_once_per_batch() {
        let mut local = LocalTraffic::new();
        let shared = SharedTraffic::default();
        local.add(BackendId(3), 60);
        local.add(BackendId(3), 1514);
        local.add(BackendId(0), 100);
        local.add(BackendId(MAX_TRACKED_BACKEND), 64);
        // Nothing is visible before the batch ends.
        assert!(shared.read().is_empty());
        local.publish(&shared);
        let t = |backend, packets, bytes| BackendTraffic {
            backend: BackendId(backend),
            packets,
            bytes,
        };
        assert_eq!(shared.read(), vec![t(0, 1, 100), t(3, 2, 1574), t(MAX_TRACKED_BACKEND, 1, 64)]);
        // Ids above the limit share one bucket and never show as their own.
        local.add(BackendId(MAX_TRACKED_BACKEND + 1), 70);
        local.add(BackendId(u32::MAX), 30);
        local.add(BackendId(3), 40);
        local.publish(&shared);
        assert_eq!(shared.untracked(), t(MAX_TRACKED_BACKEND + 1, 2, 100));
        assert_eq!(shared.read().len(), 3);
        assert_eq!(shared.read()[1], t(3, 3, 1614));
        assert_eq!(local.get(BackendId(3)), t(3, 3, 1614));
        // Publishing cleared the batch's list: a quiet batch stores nothing new.
        assert!(local.touched.is_empty() && local.dirty.iter().all(|w| *w == 0));
    }

    #[test]
    fn counting_traffic_never_grows_the_batch_list() {
        let mut local = LocalTraffic::new();
        let capacity = local.touched.capacity();
        for id in 0..=(MAX_TRACKED_BACKEND + 10) {
            local.add(BackendId(id), 1);
            local.add(BackendId(id), 1);
        }
        assert_eq!(local.touched.len(), TRACKED + 1);
        assert_eq!(local.touched.capacity(), capacity);
    }

    #[test]
    fn shared_counters_own_their_cache_lines() {
        assert!(std::mem::align_of::<SharedCounters>() >= 64);
    }
}
