//! One pinned thread per RX queue: load the snapshot once per batch, decide
//! every frame with the [`Pipeline`], send forwarded frames back out the
//! same interface, publish counters, traffic per real server and busy time.
//! Spins while traffic flows and sleeps in poll() when the ring stays empty
//! (unless told to busy-poll).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::counters::{
    BackendTraffic, CounterView, LocalCounters, LocalTraffic, SharedCounters, SharedTraffic,
};
use crate::flow::FlowState;
use crate::pipeline::Pipeline;
use crate::tables::BackendId;
use crate::tables::SharedSnapshot;
use crate::verdict::{DropReason, Verdict};
use crate::xsk::{Xsk, XskError};

/// How a worker waits for traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin while frames keep coming, sleep in poll() once the ring has
    /// stayed empty for a while: an idle appliance costs almost no CPU.
    Adaptive,
    /// Never sleep: lowest latency, one core burnt per worker.
    Busy,
}

/// Per-worker settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// CPU to pin the thread to, if any.
    pub core: Option<usize>,
    pub poll: PollMode,
    /// Flow-table slots to examine for expiry per batch.
    pub expiry_per_batch: usize,
}

/// Empty polls before an adaptive worker goes to sleep. At a few hundred
/// nanoseconds per empty poll this is tens of microseconds of spinning:
/// long enough to ride out gaps inside a burst, short enough to idle.
const IDLE_SPINS_BEFORE_SLEEP: u32 = 256;
/// Longest sleep in poll(); bounds how long a stop request waits.
const SLEEP_MS: i32 = 100;
/// A spinning idle worker sweeps its flow table on one empty poll in this
/// many (an adaptive one also before each sleep):
/// expiry has seconds to spare, and a busy-polling worker that swept on
/// every empty poll streamed its table through the cache shared with the
/// core that feeds it (46 % of its cycles in a profile).
const IDLE_POLLS_PER_SWEEP: u32 = 1024;

/// How many flows of a worker's table a real server has, as `ipvsadm -Ln`
/// counts them: active (TCP without FIN/RST seen) and inactive (the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFlows {
    pub backend: BackendId,
    pub active: u32,
    pub inactive: u32,
}

/// A worker's flow census, replaced once a second (never per packet).
pub type FlowCensus = ArcSwap<Vec<BackendFlows>>;

/// What a worker publishes besides its thread: read by control.
#[derive(Debug, Default)]
struct Published {
    counters: SharedCounters,
    traffic: SharedTraffic,
    census: FlowCensus,
    /// Nanoseconds spent on batches that carried frames.
    busy_ns: AtomicU64,
    /// The kernel's statistics of the worker's AF_XDP socket, read once a
    /// second and at exit: [`SocketStats`] in field order.
    socket: [AtomicU64; 4],
}

/// What the kernel counted on a worker's AF_XDP socket (`XDP_STATISTICS`):
/// frames the XDP program redirected that never reached the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// No free frame in the fill ring to copy into.
    pub rx_dropped: u64,
    /// The RX ring was full.
    pub rx_ring_full: u64,
    /// Malformed RX descriptors.
    pub rx_invalid: u64,
    /// Malformed TX descriptors we produced.
    pub tx_invalid: u64,
}

impl SocketStats {
    /// `(name, value)` pairs, for logs, status and metrics.
    pub fn named(&self) -> [(&'static str, u64); 4] {
        [
            ("rx_dropped", self.rx_dropped),
            ("rx_ring_full", self.rx_ring_full),
            ("rx_invalid", self.rx_invalid),
            ("tx_invalid", self.tx_invalid),
        ]
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    queue: u32,
    published: Arc<Published>,
    started: Instant,
    alive: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), XskError>>>,
}

impl WorkerHandle {
    /// The RX queue this worker serves.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the thread is still running its loop.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The counters it last published.
    pub fn counters(&self) -> CounterView {
        self.published.counters.read()
    }

    /// Flows per real server in this worker's table, as of the last second.
    pub fn census(&self) -> Arc<Vec<BackendFlows>> {
        self.published.census.load_full()
    }

    /// Frames and bytes this worker forwarded to each real server, as of its
    /// last batch: every id up to [`crate::counters::MAX_TRACKED_BACKEND`]
    /// with at least one frame, in id order. Counted when the frame is
    /// forwarded, like `forward.*` (a frame then lost to a full TX ring is
    /// in both this and `drop.tx_ring_full`). Walks 65536 ids: for status
    /// and metrics, not a tight loop.
    pub fn backend_traffic(&self) -> Vec<BackendTraffic> {
        self.published.traffic.read()
    }

    /// Frames to real servers with ids above `MAX_TRACKED_BACKEND`, together.
    pub fn untracked_traffic(&self) -> BackendTraffic {
        self.published.traffic.untracked()
    }

    /// Time spent handling frames, and time since the worker started: their
    /// ratio is the worker's load. Busy time runs from the snapshot load to
    /// the counter publication of every batch that carried at least one
    /// frame; polls of an empty ring are not busy, so a `poll = "busy"`
    /// worker that spins on an idle ring shows near 0 % busy although its
    /// core is at 100 %.
    pub fn busy(&self) -> (Duration, Duration) {
        let busy = Duration::from_nanos(self.published.busy_ns.load(Ordering::Relaxed));
        (busy, self.started.elapsed())
    }

    /// The kernel's statistics of this worker's socket, as of the last second.
    pub fn socket_stats(&self) -> SocketStats {
        let [a, b, c, d] = &self.published.socket;
        SocketStats {
            rx_dropped: a.load(Ordering::Relaxed),
            rx_ring_full: b.load(Ordering::Relaxed),
            rx_invalid: c.load(Ordering::Relaxed),
            tx_invalid: d.load(Ordering::Relaxed),
        }
    }

    /// Waits for the thread to end (after the stop flag was raised).
    pub fn join(&mut self) -> Result<(), String> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(format!("worker of queue {}: {e}", self.queue)),
            Some(Err(_)) => Err(format!("worker of queue {} panicked", self.queue)),
        }
    }
}

/// Clears the alive flag however the thread ends, panics included.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Starts a worker thread for `xsk`.
pub fn spawn(
    xsk: Xsk,
    pipeline: Pipeline,
    tables: Arc<SharedSnapshot>,
    config: WorkerConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<WorkerHandle> {
    let queue = xsk.queue();
    let published = Arc::new(Published::default());
    let alive = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let thread = std::thread::Builder::new().name(format!("xdplb-q{queue}")).spawn({
        let published = Arc::clone(&published);
        let alive = AliveGuard(Arc::clone(&alive));
        move || {
            let _alive = alive;
            run(xsk, pipeline, &tables, config, &stop, &published)
        }
    })?;
    Ok(WorkerHandle { queue, published, started, alive, thread: Some(thread) })
}

/// The process-wide origin of the workers' seconds clock (see [`now_secs`]).
static CLOCK_ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The workers' coarse clock: whole seconds since the first worker (or the
/// first caller) read it. Shared by all workers of the process, so that
/// expiry seconds in the shared persistence tables mean the same to all of
/// them; control passes it to [`crate::affinity::AffinityTable::len_live`].
pub fn now_secs() -> u32 {
    secs_at(Instant::now())
}

/// [`now_secs`] at `instant`, so that a worker reads the clock once per
/// batch for both its seconds and its busy time.
fn secs_at(instant: Instant) -> u32 {
    let origin = CLOCK_ORIGIN.get_or_init(Instant::now);
    u32::try_from(instant.saturating_duration_since(*origin).as_secs()).unwrap_or(u32::MAX)
}

/// Empties every capability set of the calling thread (capabilities are
/// per thread): bounding first, while CAP_SETPCAP is still effective.
fn drop_all_capabilities() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)? {
        caps::clear(None, CapSet::Bounding)?;
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)
}

/// One getsockopt, once a second: never per packet.
fn publish_socket_stats(xsk: &Xsk, into: &[AtomicU64; 4]) {
    if let Ok(s) = xsk.statistics() {
        let values = [s.rx_dropped(), s.rx_ring_full(), s.rx_invalid_descs(), s.tx_invalid_descs()];
        for (slot, value) in into.iter().zip(values) {
            slot.store(value, Ordering::Relaxed);
        }
    }
}

fn run(
    mut xsk: Xsk,
    mut pipeline: Pipeline,
    tables: &SharedSnapshot,
    config: WorkerConfig,
    stop: &AtomicBool,
    published: &Published,
) -> Result<(), XskError> {
    let (shared, census) = (&published.counters, &published.census);
    if let Some(core) = config.core {
        if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::info!(queue = xsk.queue(), core, "worker pinned");
        } else {
            tracing::warn!(queue = xsk.queue(), core, "could not pin worker; running unpinned");
        }
    }
    // The socket is open and bound: nothing a worker does from here on
    // (ring access, sendto and poll on its own socket) needs a capability.
    match drop_all_capabilities() {
        Ok(()) => tracing::debug!(queue = xsk.queue(), "worker dropped every capability"),
        Err(e) => tracing::warn!(queue = xsk.queue(), "worker keeps its capabilities: {e}"),
    }
    let mut local = LocalCounters::default();
    let mut traffic = LocalTraffic::new();
    let mut busy_ns = 0u64;
    let mut idle_polls = 0u32;
    let mut census_second = u32::MAX;
    while !stop.load(Ordering::Relaxed) {
        let batch_start = Instant::now();
        let snapshot = tables.load();
        let now = secs_at(batch_start);
        if now != census_second {
            census_second = now;
            census.store(Arc::new(take_census(&pipeline, now)));
            publish_socket_stats(&xsk, &published.socket);
        }
        pipeline.sync(&snapshot);
        let outcome = xsk.process_batch(|frame| {
            let verdict = pipeline.process(&snapshot, frame, now, &mut local);
            local.add_verdict(verdict);
            match (verdict, pipeline.last_backend()) {
                (Verdict::Forward(_), Some(backend)) => {
                    traffic.add(backend, frame.len());
                    true
                }
                (Verdict::Forward(_), None) => true,
                (Verdict::Drop(_), _) => false,
            }
        })?;
        drop(snapshot);

        if outcome.received > 0 {
            pipeline.expire(now, config.expiry_per_batch);
            local.add_rx(outcome.received as u64);
            local.add_tx(outcome.transmitted as u64);
            local.add_drop(DropReason::TxRingFull, outcome.tx_ring_full as u64);
            shared.publish(&local);
            traffic.publish(&published.traffic);
            // Fits for 584 years of busy time.
            busy_ns = busy_ns.saturating_add(batch_start.elapsed().as_nanos() as u64);
            published.busy_ns.store(busy_ns, Ordering::Relaxed);
            idle_polls = 0;
            continue;
        }
        idle_polls = idle_polls.saturating_add(1);
        let sleeping = config.poll == PollMode::Adaptive
            && idle_polls >= IDLE_SPINS_BEFORE_SLEEP
            && !xsk.tx_pending();
        if sleeping || idle_polls % IDLE_POLLS_PER_SWEEP == 0 {
            pipeline.expire(now, config.expiry_per_batch);
        }
        if sleeping {
            shared.publish(&local);
            xsk.wait_for_rx(SLEEP_MS)?;
            idle_polls = 0;
        } else {
            std::hint::spin_loop();
        }
    }
    shared.publish(&local);
    traffic.publish(&published.traffic);
    publish_socket_stats(&xsk, &published.socket);
    Ok(())
}

/// Counts the live flows per real server (once a second: a walk of the table).
fn take_census(pipeline: &Pipeline, now: u32) -> Vec<BackendFlows> {
    let mut out: Vec<BackendFlows> = Vec::new();
    for (_, flow) in pipeline.flows().iter(now) {
        let entry = match out.iter_mut().find(|b| b.backend == flow.backend) {
            Some(entry) => entry,
            None => {
                out.push(BackendFlows { backend: flow.backend, active: 0, inactive: 0 });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        if flow.state == FlowState::TcpActive {
            entry.active += 1;
        } else {
            entry.inactive += 1;
        }
    }
    out
}

/// How long a stop request may take to reach a sleeping worker.
pub const STOP_LATENCY: Duration = Duration::from_millis(SLEEP_MS as u64);
