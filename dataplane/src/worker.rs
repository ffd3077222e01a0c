//! One pinned thread per RX queue: load the snapshot once per batch, decide
//! every frame with the [`Pipeline`], send forwarded frames back out the
//! same interface, publish counters. Spins while traffic flows and sleeps
//! in poll() when the ring stays empty (unless told to busy-poll).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::counters::{CounterView, LocalCounters, SharedCounters};
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

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    queue: u32,
    counters: Arc<SharedCounters>,
    census: Arc<FlowCensus>,
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
        self.counters.read()
    }

    /// Flows per real server in this worker's table, as of the last second.
    pub fn census(&self) -> Arc<Vec<BackendFlows>> {
        self.census.load_full()
    }

    /// Waits for the thread to end (after the stop flag was raised).
    pub fn join(mut self) -> Result<(), String> {
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
    let counters = Arc::new(SharedCounters::default());
    let census = Arc::new(FlowCensus::from_pointee(Vec::new()));
    let alive = Arc::new(AtomicBool::new(true));
    let thread = std::thread::Builder::new().name(format!("xdplb-q{queue}")).spawn({
        let counters = Arc::clone(&counters);
        let census = Arc::clone(&census);
        let alive = AliveGuard(Arc::clone(&alive));
        move || {
            let _alive = alive;
            run(xsk, pipeline, &tables, config, &stop, &counters, &census)
        }
    })?;
    Ok(WorkerHandle { queue, counters, census, alive, thread: Some(thread) })
}

fn run(
    mut xsk: Xsk,
    mut pipeline: Pipeline,
    tables: &SharedSnapshot,
    config: WorkerConfig,
    stop: &AtomicBool,
    shared: &SharedCounters,
    census: &FlowCensus,
) -> Result<(), XskError> {
    if let Some(core) = config.core {
        if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::info!(queue = xsk.queue(), core, "worker pinned");
        } else {
            tracing::warn!(queue = xsk.queue(), core, "could not pin worker; running unpinned");
        }
    }
    let origin = Instant::now();
    let mut local = LocalCounters::default();
    let mut idle_polls = 0u32;
    let mut census_second = u32::MAX;
    while !stop.load(Ordering::Relaxed) {
        let snapshot = tables.load();
        let now = seconds_since(origin);
        if now != census_second {
            census_second = now;
            census.store(Arc::new(take_census(&pipeline, now)));
        }
        pipeline.sync(&snapshot);
        let outcome = xsk.process_batch(|frame| {
            let verdict = pipeline.process(&snapshot, frame, now, &mut local);
            local.add_verdict(verdict);
            matches!(verdict, Verdict::Forward(_))
        })?;
        drop(snapshot);
        pipeline.expire(now, config.expiry_per_batch);

        if outcome.received > 0 {
            local.add_rx(outcome.received as u64);
            local.add_tx(outcome.transmitted as u64);
            local.add_drop(DropReason::TxRingFull, outcome.tx_ring_full as u64);
            shared.publish(&local);
            idle_polls = 0;
            continue;
        }
        idle_polls = idle_polls.saturating_add(1);
        if config.poll == PollMode::Adaptive
            && idle_polls >= IDLE_SPINS_BEFORE_SLEEP
            && !xsk.tx_pending()
        {
            shared.publish(&local);
            xsk.wait_for_rx(SLEEP_MS)?;
            idle_polls = 0;
        } else {
            std::hint::spin_loop();
        }
    }
    shared.publish(&local);
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

fn seconds_since(origin: Instant) -> u32 {
    u32::try_from(origin.elapsed().as_secs()).unwrap_or(u32::MAX)
}

/// How long a stop request may take to reach a sleeping worker.
pub const STOP_LATENCY: Duration = Duration::from_millis(SLEEP_MS as u64);
