//! `xdplb-bench compare`: every forwarder under the same generator, frames,
//! flows and duration, runs interleaved (run 1 of each, then run 2 of each
//! ...) so that a slow phase of the machine hits them all; then one paced
//! run per forwarder at half its median rate for latency.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::Snapshot;
use crate::gen::{GenReport, GenSpec, Generator, Plan, Traffic, CLIENT_BASE, SECOND_CLIENT_BASE};
use crate::refs::{self, KernelForward, Reflector, Testpmd};
use crate::report::{CpuCost, LatencySummary, Row, SynFlood};
use crate::sink::{Sink, SinkCounts, RING_SAMPLES};
use crate::stats::{self, Spread};
use crate::topo::{self, TopoConfig, Topology, VIP};
use crate::xdplb::{self, Poll, WorkerBusy, XdplbProcess, XdplbSettings, SERVICE_PORT};

/// Latency samples aimed for per paced run.
const LATENCY_SAMPLES: u64 = 200_000;
/// The fastest a flow-creating pass is sent: slow enough for the DUT to see
/// every frame on this box.
const FLOW_PASS_MAX_RATE: f64 = 200_000.0;
/// Time for frames in flight to land before counters are read.
const DRAIN: Duration = Duration::from_millis(50);
/// xdplb's flow table in the SYN-flood setting by default (xdplb's own
/// default): far smaller than the flood's source space, so that it fills
/// and the full-table policy shows.
pub const SYN_FLOOD_TABLE: u32 = 65_536;
/// Receive (and transmit) queues of each veth end when the CPUs allow two
/// (see [`two_queues`]): a second xdplb worker gets a queue of its own.
const QUEUES: u32 = 2;

/// Everything `compare` is told.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Measured runs per forwarder.
    pub runs: usize,
    /// Measured runs of the 2-worker and SYN-flood settings (at most `runs`).
    pub extra_runs: usize,
    /// Whether the 2-worker setting gets a latency run.
    pub extra_latency: bool,
    /// SCHED_FIFO priority of the NAPI threads (`None`: the default
    /// policy). Sharing the generator's core with CFS, the DUT's receive
    /// thread got a third of it however much work waited, so every
    /// forwarder measured the scheduler's split rather than itself.
    pub napi_fifo: Option<u8>,
    /// Whether XDP_TX also gets a latency run at the rate of each main
    /// xdplb row's (the latency goal compares p99 at the same rate).
    pub same_rate_reference: bool,
    /// Length of each measured run.
    pub duration: Duration,
    /// Full-speed sending before each measured run.
    pub warmup: Duration,
    /// Shortest paced pass over every flow before a run of a forwarder
    /// that keeps flows.
    pub flow_pass: Duration,
    /// Length of each paced latency run.
    pub latency_duration: Duration,
    /// Frame length without FCS.
    pub frame_bytes: usize,
    /// The "many flows" setting.
    pub many_flows: u32,
    /// What the frames carry.
    pub traffic: Traffic,
    /// Forwarders to run (by their JSON name); empty = all.
    pub only: Vec<String>,
    /// xdplb poll modes to run.
    pub polls: Vec<Poll>,
    /// The xdplb binary, if given.
    pub xdplb_binary: Option<PathBuf>,
    /// Core of the generator and sink.
    pub gen_cpu: usize,
    /// Core of the device under test.
    pub dut_cpu: usize,
    /// Frames per live-frame kernel batch.
    pub batch_size: u32,
    /// Flow-table entries per xdplb worker.
    pub flow_table_size: u32,
    /// Flow-table entries of xdplb in the SYN-flood setting.
    pub syn_flood_table: u32,
}

/// Why a comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Building or using the topology.
    #[error(transparent)]
    Topo(#[from] topo::TopoError),
    /// Loading or running a bench program.
    #[error(transparent)]
    Bpf(#[from] crate::bpf::BpfError),
    /// The generator.
    #[error(transparent)]
    Gen(#[from] crate::gen::GenError),
    /// xdplb.
    #[error(transparent)]
    Xdplb(#[from] xdplb::XdplbError),
    /// testpmd.
    #[error(transparent)]
    Testpmd(#[from] refs::TestpmdError),
    /// The latency histogram could not be made.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// The second generator's thread panicked.
    #[error("the second generator's thread panicked")]
    GeneratorThread,
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// One forwarder in one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Forwarder {
    /// The generator into XDP_DROP on the DUT: the generator's ceiling.
    GeneratorCeiling,
    /// Kernel XDP_TX with MAC swap.
    XdpTx,
    /// dpdk-testpmd macswap over net_af_xdp.
    Testpmd,
    /// Kernel IP forwarding.
    KernelForward,
    /// xdplb with its whole pipeline.
    Xdplb(Poll),
}

impl Forwarder {
    /// The name in the JSON and the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::GeneratorCeiling => "generator_ceiling",
            Self::XdpTx => "xdp_tx",
            Self::Testpmd => "testpmd_macswap",
            Self::KernelForward => "kernel_forward",
            Self::Xdplb(_) => "xdplb",
        }
    }

    /// The setting that tells rows of one forwarder apart.
    pub fn variant(self) -> Option<String> {
        match self {
            Self::Xdplb(poll) => Some(format!("poll={}", poll.name())),
            _ => None,
        }
    }
}

/// A forwarder and its flow count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Which.
    pub forwarder: Forwarder,
    /// Distinct 5-tuples (0 = a new one for every frame).
    pub flows: u32,
    /// DUT workers, each serving its own receive queue (xdplb only; 2 =
    /// two generators, one per CPU, as veth picks the receiving queue from
    /// the sending CPU).
    pub workers: u32,
    /// Every frame a TCP SYN of a new 5-tuple, against a flow table of
    /// `syn_flood_table` entries (xdplb only).
    pub syn_flood: bool,
}

impl Case {
    /// One worker, the options' traffic.
    pub fn steady(forwarder: Forwarder, flows: u32) -> Self {
        Self { forwarder, flows, workers: 1, syn_flood: false }
    }

    /// The setting that tells rows of one forwarder apart.
    pub fn variant(&self) -> Option<String> {
        let mut parts: Vec<String> = self.forwarder.variant().into_iter().collect();
        if self.workers > 1 {
            parts.push(format!("workers={}", self.workers));
        }
        if self.syn_flood {
            parts.push("syn_flood".to_owned());
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn traffic(&self, options: &CompareOptions) -> Traffic {
        if self.syn_flood {
            Traffic::TcpSyn
        } else {
            options.traffic
        }
    }

    fn flow_table_size(&self, options: &CompareOptions) -> u32 {
        if self.syn_flood {
            options.syn_flood_table
        } else {
            options.flow_table_size
        }
    }

    /// Whether this is one of the settings beside the main comparison
    /// (2 workers, SYN flood), which run `extra_runs` times.
    fn is_extra(&self) -> bool {
        self.workers > 1 || self.syn_flood
    }

    /// The flows of the first and of the second generator: with two, each
    /// sends its own half (one flow each when there is only one).
    fn split_flows(&self) -> (u32, u32) {
        match (self.workers, self.flows) {
            (0 | 1, flows) => (flows, 0),
            (_, flows @ (0 | 1)) => (flows, flows),
            (_, flows) => (flows - flows / 2, flows / 2),
        }
    }
}

/// What one measured run saw.
#[derive(Debug, Clone, Default, PartialEq)]
struct Measurement {
    /// The forwarder's own final counters (xdplb), warm-up included.
    counters: BTreeMap<String, u64>,
    delivered: u64,
    gen: Option<GenReport>,
    dut_ns: u64,
    napi_ns: u64,
    forwarder_ns: u64,
    forwarder_user_share: f64,
    /// Share of wall time the generator's thread was on its CPU: well
    /// below 1 at full speed means something else ran on that core.
    gen_cpu_share: f64,
    /// Where frames were lost: drop and error counters of both veth ends
    /// that moved during the run ("gen." / "dut." + ethtool name).
    losses: BTreeMap<String, u64>,
    /// Frames each of the DUT's receive queues took in during the run.
    queue_frames: Vec<u64>,
    /// Each xdplb worker's busy time over its process's life.
    worker_busy: Vec<WorkerBusy>,
}

impl Measurement {
    fn pps(&self) -> f64 {
        self.gen.map_or(0.0, |g| stats::rate(self.delivered, g.elapsed))
    }
}

/// A forwarder set up on the DUT for one run.
enum Running {
    Drop(Box<Sink>),
    Reflect(#[expect(dead_code, reason = "held for its Drop, which detaches it")] Reflector),
    Testpmd(Testpmd),
    Kernel(#[expect(dead_code, reason = "held for its Drop, which undoes it")] KernelForward),
    Xdplb(XdplbProcess),
}

impl Running {
    fn process(&self) -> Option<i32> {
        match self {
            Self::Testpmd(t) => Some(t.pid()),
            Self::Xdplb(x) => Some(x.pid()),
            _ => None,
        }
    }

    /// Each xdplb worker's busy time so far; empty for the others.
    fn worker_busy(&self) -> Vec<WorkerBusy> {
        match self {
            // Only a report: a failed status read leaves it empty.
            Self::Xdplb(process) => process.worker_busy().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Stops the forwarder; returns its own counters where it has some.
    fn stop(self) -> Result<BTreeMap<String, u64>, CompareError> {
        Ok(match self {
            Self::Xdplb(process) => process.stop()?,
            _ => BTreeMap::new(),
        })
    }
}

/// The result of a comparison: rows in case order, plus how it was run.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// One row per case.
    pub rows: Vec<Row>,
    /// The cases that could not run, with why (e.g. testpmd not installed).
    pub skipped: Vec<(String, String)>,
}

/// The harness: topology, generator and sink, and the options.
pub struct Harness {
    options: CompareOptions,
    topo: Topology,
    generator: Generator,
    /// A second generator for the second CPU: feeds the DUT's second
    /// receiving queue in the 2-worker setting.
    second: Option<Generator>,
    sink: Sink,
    xdplb_binary: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("topo", &self.topo).finish_non_exhaustive()
    }
}

impl Harness {
    /// Builds the topology, pins its NAPI threads, loads the generator and
    /// attaches the sink. The calling thread is pinned to the generator's
    /// core: it runs the generator.
    pub fn new(options: CompareOptions, stop: Arc<AtomicBool>) -> Result<Self, CompareError> {
        let xdplb_binary = match xdplb::locate_binary(options.xdplb_binary.as_deref()) {
            Ok(path) => Some(path),
            Err(e) if wants(&options, "xdplb") => return Err(e.into()),
            Err(_) => None,
        };
        let queues = if two_queues(&options) { QUEUES } else { 1 };
        let topo = Topology::create(TopoConfig { queues })?;
        // Only a NAPI thread that shares the generator's core runs FIFO: on
        // the DUT's core one would starve a forwarder that shares it.
        topo.gen.pin_napi(options.gen_cpu, options.napi_fifo)?;
        topo.dut.pin_napi(options.dut_cpu, None)?;
        topo::pin_current_thread(options.gen_cpu)?;
        // Sleeps of a paced run should end when asked, not 50 µs later.
        let _ = nix::sys::prctl::set_timerslack(1);
        let spec = gen_spec(&options, &topo, options.many_flows, options.traffic, CLIENT_BASE);
        let anchor = Some(topo.gen_anchor_ifindex);
        let generator = topo.gen.enter(|| Generator::load(spec, topo.gen.ifindex, anchor))??;
        let second = match xdplb_binary {
            Some(_) if queues > 1 && !options.polls.is_empty() => {
                let spec = GenSpec { client_base: SECOND_CLIENT_BASE, ..spec };
                let anchor = Some(topo.gen_second_anchor_ifindex);
                Some(topo.gen.enter(|| Generator::load(spec, topo.gen.ifindex, anchor))??)
            }
            _ => None,
        };
        let sink = topo.gen.enter(|| Sink::attach(topo.gen.ifindex))??;
        Ok(Self { options, topo, generator, second, sink, xdplb_binary, stop })
    }

    /// The cases to run, in order; with the ones left out and why.
    pub fn cases(&self) -> (Vec<Case>, Vec<(String, String)>) {
        let many = self.options.many_flows;
        let mut cases = vec![
            Case::steady(Forwarder::GeneratorCeiling, many),
            Case::steady(Forwarder::XdpTx, many),
        ];
        let mut skipped = Vec::new();
        if refs::testpmd_binary().is_some() {
            cases.push(Case::steady(Forwarder::Testpmd, many));
        } else if wants(&self.options, "testpmd_macswap") {
            skipped
                .push(("testpmd_macswap".to_owned(), refs::TestpmdError::NotInstalled.to_string()));
        }
        cases.push(Case::steady(Forwarder::KernelForward, many));
        for &poll in &self.options.polls {
            cases.push(Case::steady(Forwarder::Xdplb(poll), 1));
            cases.push(Case::steady(Forwarder::Xdplb(poll), many));
        }
        // The 2-worker and SYN-flood settings once, with the first poll mode.
        if let Some(&poll) = self.options.polls.first() {
            let forwarder = Forwarder::Xdplb(poll);
            if self.second.is_some() {
                cases.push(Case { workers: 2, ..Case::steady(forwarder, many) });
            } else if self.xdplb_binary.is_some() && wants(&self.options, "xdplb") {
                skipped.push((
                    format!("xdplb poll={} workers=2", poll.name()),
                    format!(
                        "veth hands a frame sent from cpu c to the peer's receive queue c mod \
                         queues, so the generator's cpu must be even and the DUT's odd to feed \
                         queues 0 and 1 (--gen-cpu {} --dut-cpu {})",
                        self.options.gen_cpu, self.options.dut_cpu
                    ),
                ));
            }
            cases.push(Case { syn_flood: true, ..Case::steady(forwarder, 0) });
        }
        cases.retain(|c| {
            c.forwarder == Forwarder::GeneratorCeiling || wants(&self.options, c.forwarder.name())
        });
        (cases, skipped)
    }

    /// Runs everything and returns the rows. `progress` is told about
    /// every run as it ends.
    pub fn compare(&mut self, progress: &mut dyn FnMut(&str)) -> Result<Comparison, CompareError> {
        let (cases, skipped) = self.cases();
        let (all_runs, extra_runs) = (self.options.runs, self.options.extra_runs);
        let extra_latency = self.options.extra_latency;
        let latency_run = |case: &Case| wants_latency(case) && (extra_latency || !case.is_extra());
        let runs_of = |case: &Case| {
            if case.is_extra() {
                extra_runs.clamp(1, all_runs.max(1))
            } else {
                all_runs
            }
        };
        let xdp_tx = cases.iter().copied().find(|c| c.forwarder == Forwarder::XdpTx);
        let same_rate_reference = self.options.same_rate_reference;
        let same_rate_run = |case: &Case| {
            same_rate_reference
                && xdp_tx.is_some()
                && matches!(case.forwarder, Forwarder::Xdplb(_))
                && latency_run(case)
                && !case.is_extra()
        };
        let total = cases
            .iter()
            .map(|c| runs_of(c) + usize::from(latency_run(c)) + usize::from(same_rate_run(c)))
            .sum::<usize>();
        let mut step = 0;
        let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); cases.len()];
        for run in 0..self.options.runs {
            for (i, case) in cases.iter().enumerate() {
                if run >= runs_of(case) {
                    continue;
                }
                step += 1;
                let m = self.measure(*case, None)?;
                progress(&format!(
                    "[{step:>2}/{total}] run {}/{} {}: {:.3} Mpps delivered, generator {:.3} Mpps, \
                     {:.0} ns/packet on the DUT",
                    run + 1,
                    runs_of(case),
                    describe(*case),
                    m.pps() / 1e6,
                    m.gen.map_or(0.0, |g| g.pps()) / 1e6,
                    per_packet(m.dut_ns, m.delivered),
                ));
                runs[i].push(m);
            }
        }
        let mut latencies = Vec::with_capacity(cases.len());
        for (i, case) in cases.iter().enumerate() {
            let median = Spread::of(&runs[i].iter().map(Measurement::pps).collect::<Vec<_>>())
                .map_or(0.0, |s| s.median);
            if !latency_run(case) || median <= 0.0 {
                latencies.push(None);
                continue;
            }
            step += 1;
            let latency = self.latency(*case, median / 2.0)?;
            progress(&format!(
                "[{step:>2}/{total}] latency {} at {:.3} Mpps: p50 {:.1} µs, p99 {:.1} µs",
                describe(*case),
                median / 2e6,
                latency.p50 as f64 / 1e3,
                latency.p99 as f64 / 1e3,
            ));
            latencies.push(Some(latency));
        }
        let mut same_rate = vec![None; cases.len()];
        for (i, case) in cases.iter().enumerate() {
            let (Some(reference), Some(rate)) = (xdp_tx, latencies[i].as_ref().map(|l| l.at_pps))
            else {
                continue;
            };
            if !same_rate_run(case) || rate <= 0.0 {
                continue;
            }
            step += 1;
            // Paced at what xdplb delivered in its latency run, so that
            // both see the same load.
            let latency = self.latency(reference, rate)?;
            progress(&format!(
                "[{step:>2}/{total}] latency {} at {:.3} Mpps (the rate of {}): p50 {:.1} µs, p99 \
                 {:.1} µs",
                describe(reference),
                rate / 1e6,
                describe(*case),
                latency.p50 as f64 / 1e3,
                latency.p99 as f64 / 1e3,
            ));
            same_rate[i] = Some(latency);
        }
        Ok(Comparison { rows: self.rows(&cases, &runs, latencies, same_rate), skipped })
    }

    fn rows(
        &self,
        cases: &[Case],
        runs: &[Vec<Measurement>],
        latencies: Vec<Option<LatencySummary>>,
        same_rate: Vec<Option<LatencySummary>>,
    ) -> Vec<Row> {
        let spread = |ms: &[Measurement], f: &dyn Fn(&Measurement) -> f64| {
            Spread::of(&ms.iter().map(f).collect::<Vec<_>>())
        };
        let median_of = |forwarder: Forwarder| {
            cases
                .iter()
                .position(|c| c.forwarder == forwarder)
                .and_then(|i| spread(&runs[i], &Measurement::pps))
                .map(|s| s.median)
        };
        let ceiling = cases
            .iter()
            .position(|c| c.forwarder == Forwarder::GeneratorCeiling)
            .and_then(|i| spread(&runs[i], &Measurement::pps));
        let xdp_tx = median_of(Forwarder::XdpTx);
        let testpmd = median_of(Forwarder::Testpmd);
        cases
            .iter()
            .zip(runs)
            .zip(latencies)
            .zip(same_rate)
            .map(|(((case, ms), latency), same_rate)| {
                let pps = spread(ms, &Measurement::pps).unwrap_or(Spread {
                    min: 0.0,
                    median: 0.0,
                    max: 0.0,
                });
                let generator = spread(ms, &|m| m.gen.map_or(0.0, |g| g.pps()));
                let delivered: u64 = ms.iter().map(|m| m.delivered).sum();
                let sum = |f: &dyn Fn(&Measurement) -> u64| ms.iter().map(f).sum::<u64>();
                let user_ns: f64 =
                    ms.iter().map(|m| m.forwarder_ns as f64 * m.forwarder_user_share).sum();
                // A flood's delivered rate is not a forwarding rate.
                let comparable = case.forwarder != Forwarder::GeneratorCeiling && !case.syn_flood;
                let ratio = |reference: Option<f64>| match reference {
                    Some(r) if r > 0.0 && comparable => Some(pps.median / r),
                    _ => None,
                };
                let queue_frames = sum_queues(ms);
                let worker_busy = sum_busy(ms);
                let syn_flood = case.syn_flood.then(|| {
                    syn_flood_summary(ms, case.flow_table_size(&self.options), sum(&|m| m.dut_ns))
                });
                let note = if case.syn_flood {
                    syn_flood.as_ref().map(SynFlood::note)
                } else if case.workers > 1 {
                    Some(two_worker_note(&queue_frames, &worker_busy, &self.options))
                } else {
                    None
                };
                Row {
                    forwarder: case.forwarder.name().to_owned(),
                    variant: case.variant(),
                    traffic: case.traffic(&self.options),
                    frame_bytes: self.options.frame_bytes,
                    flows: case.flows,
                    workers: case.workers,
                    runs: ms.len(),
                    duration_s: self.options.duration.as_secs_f64(),
                    pps,
                    generator_pps: generator,
                    generator_ceiling_pps: ceiling,
                    generator_bound: ceiling
                        .is_some_and(|c| comparable && pps.median >= 0.9 * c.median),
                    p99_ratio_to_xdp_tx_same_rate: match (&latency, &same_rate) {
                        (Some(own), Some(reference)) if reference.p99 > 0 => {
                            Some(own.p99 as f64 / reference.p99 as f64)
                        }
                        _ => None,
                    },
                    latency_ns: latency,
                    ratio_to_xdp_tx: ratio(xdp_tx),
                    ratio_to_testpmd: ratio(testpmd),
                    cpu_ns_per_packet: per_packet(sum(&|m| m.dut_ns), delivered),
                    cpu: CpuCost {
                        kernel_napi_ns_per_packet: per_packet(sum(&|m| m.napi_ns), delivered),
                        forwarder_ns_per_packet: per_packet(sum(&|m| m.forwarder_ns), delivered),
                        forwarder_user_ns_per_packet: if delivered > 0 {
                            user_ns / delivered as f64
                        } else {
                            0.0
                        },
                        counted: "on-CPU time (/proc/TID/schedstat) of the DUT's NAPI kernel \
                                  threads plus every thread of the forwarder process, during the \
                                  measured runs, divided by the frames that reached the sink; \
                                  busy polling counts; the user share is split by utime/stime \
                                  ticks"
                            .to_owned(),
                    },
                    cpu_placement: self.placement(*case),
                    forwarder_counters: sum_counters(ms),
                    losses: sum_losses(ms),
                    generator_cpu_share: spread(ms, &|m| m.gen_cpu_share),
                    note,
                    dut_rx_queue_frames: queue_frames,
                    worker_busy_seconds: worker_busy,
                    syn_flood,
                    xdp_tx_latency_same_rate: same_rate,
                }
            })
            .collect()
    }

    /// The core of the DUT's NAPI thread for `forwarder`. A forwarder that
    /// polls a socket without ever sleeping must not share its core with
    /// the NAPI thread that feeds it (testpmd fell to 0.1 Mpps that way:
    /// each starves the other), so for busy pollers the DUT's NAPI thread
    /// goes to the generator's core; in-kernel forwarders run inside the
    /// NAPI thread, which then has the DUT's core to itself.
    fn napi_cpu(&self, forwarder: Forwarder) -> usize {
        match forwarder {
            Forwarder::Testpmd
            | Forwarder::Xdplb(Poll::Busy)
            | Forwarder::Xdplb(Poll::BusyNapi) => self.options.gen_cpu,
            _ => self.options.dut_cpu,
        }
    }

    /// Which core ran what, in words, for the report.
    fn placement(&self, case: Case) -> String {
        let forwarder = case.forwarder;
        let (gen, dut) = (self.options.gen_cpu, self.options.dut_cpu);
        let napi = self.napi_cpu(forwarder);
        let what = match forwarder {
            Forwarder::GeneratorCeiling => "XDP_DROP in the DUT's NAPI thread",
            Forwarder::XdpTx => "XDP_TX in the DUT's NAPI thread",
            Forwarder::KernelForward => "IP forwarding in the DUT's NAPI thread",
            Forwarder::Testpmd => "testpmd's forwarding lcore (busy polling)",
            Forwarder::Xdplb(Poll::Busy) => "xdplb's worker (busy polling)",
            Forwarder::Xdplb(Poll::Adaptive) => "xdplb's worker (adaptive polling)",
            Forwarder::Xdplb(Poll::BusyNapi) => {
                "xdplb's worker (busy polling, running the queue's NAPI poll itself)"
            }
        };
        let mut text = format!(
            "cpu {gen}: generator (BPF_PROG_RUN) and the sink's NAPI thread; cpu {dut}: {what}"
        );
        if napi != dut {
            text.push_str(&format!(
                "; the DUT's NAPI thread (steering/copy into the socket) on cpu {napi}"
            ));
        } else if matches!(forwarder, Forwarder::Xdplb(_) | Forwarder::Testpmd) {
            text.push_str(&format!("; the DUT's NAPI thread shares cpu {dut}"));
        }
        if case.workers > 1 {
            text.push_str(&format!(
                "; a second generator on cpu {dut} (feeding the DUT's queue 1); xdplb's worker \
                 for queue 0 on cpu {dut}, for queue 1 on cpu {gen}"
            ));
        }
        if let Some(priority) = self.options.napi_fifo {
            text.push_str(&format!("; the NAPI threads on cpu {gen} run SCHED_FIFO {priority}"));
        }
        text
    }

    /// One measured run of `case`, at full speed or at `rate`.
    fn measure(&mut self, case: Case, rate: Option<f64>) -> Result<Measurement, CompareError> {
        self.check_stop()?;
        self.prepare_generator(case)?;
        let running = self.start(case)?;
        self.warm_up(case)?;
        let result = self.measured_run(case, &running, self.options.duration, rate);
        let worker_busy = running.worker_busy();
        let counters = running.stop()?;
        Ok(Measurement { counters, worker_busy, ..result? })
    }

    fn measured_run(
        &mut self,
        case: Case,
        running: &Running,
        duration: Duration,
        rate: Option<f64>,
    ) -> Result<Measurement, CompareError> {
        let napi = self.topo.dut.napi_threads()?;
        let process = running.process();
        let snapshot = |napi: &[i32]| {
            let n = Snapshot::of_threads(napi);
            let f = process.map(Snapshot::of_process).unwrap_or_default();
            (n, f)
        };
        let me = nix::unistd::gettid().as_raw();
        let losses0 = self.loss_counters()?;
        let queues0 = self.topo.dut.rx_queue_frames()?;
        let delivered_before = self.delivered(running)?;
        let gen0 = Snapshot::of_threads(&[me]);
        let (napi0, fwd0) = snapshot(&napi);
        let plan = Plan { duration, rate, batch_size: self.options.batch_size };
        let report = self.run_generator(case, &plan)?;
        let (napi1, fwd1) = snapshot(&napi);
        let gen_ns = Snapshot::of_threads(&[me]).since(&gen0).on_cpu_ns;
        std::thread::sleep(DRAIN);
        let delivered = self.delivered(running)?.saturating_sub(delivered_before);
        let mut losses = self.loss_counters()?;
        for (name, value) in &mut losses {
            *value = value.saturating_sub(losses0.get(name).copied().unwrap_or(0));
        }
        losses.retain(|_, v| *v > 0);
        let queue_frames: Vec<u64> = self
            .topo
            .dut
            .rx_queue_frames()?
            .iter()
            .enumerate()
            .map(|(q, v)| v.saturating_sub(queues0.get(q).copied().unwrap_or(0)))
            .collect();
        let napi_usage = napi1.since(&napi0);
        let fwd_usage = fwd1.since(&fwd0);
        Ok(Measurement {
            counters: BTreeMap::new(),
            delivered,
            gen: Some(report),
            dut_ns: napi_usage.on_cpu_ns + fwd_usage.on_cpu_ns,
            napi_ns: napi_usage.on_cpu_ns,
            forwarder_ns: fwd_usage.on_cpu_ns,
            forwarder_user_share: fwd_usage.user_share,
            gen_cpu_share: gen_ns as f64 / report.elapsed.as_nanos().max(1) as f64,
            losses,
            queue_frames,
            worker_busy: Vec::new(),
        })
    }

    /// The drop and error counters of both veth ends.
    fn loss_counters(&self) -> Result<BTreeMap<String, u64>, CompareError> {
        let mut out = BTreeMap::new();
        for (side, prefix) in [(&self.topo.gen, "gen."), (&self.topo.dut, "dut.")] {
            for (name, value) in side.ethtool_stats()? {
                // xdp_drops counts XDP_DROP verdicts: the sink's, not losses.
                let lost = name.contains("drop") || name.contains("err");
                if lost && !name.contains("xdp_drops") {
                    out.insert(format!("{prefix}{name}"), value);
                }
            }
        }
        Ok(out)
    }

    /// A paced run at `rate` with the sink sampling latencies.
    fn latency(&mut self, case: Case, rate: f64) -> Result<LatencySummary, CompareError> {
        self.check_stop()?;
        self.prepare_generator(case)?;
        let running = self.start(case)?;
        self.warm_up(case)?;
        let frames = stats::frames_due(rate, self.options.latency_duration);
        let shift = stats::sample_log2(frames, LATENCY_SAMPLES.min(RING_SAMPLES / 2));
        self.sink.drain(None);
        self.sink.set_sampling(Some(shift), case.traffic(&self.options).timestamp_offset())?;
        let before = self.sink.counts()?;
        let measured = self.measured_run(case, &running, self.options.latency_duration, Some(rate));
        self.sink.set_sampling(None, 0)?;
        running.stop()?;
        let measured = measured?;
        let counts: SinkCounts = self.sink.counts()?.since(&before);
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| CompareError::Histogram(format!("{e:?}")))?;
        self.sink.drain(Some(&mut histogram));
        let offered = measured.gen.map_or(0.0, |g| g.pps());
        let mut summary =
            LatencySummary::from_histogram(&histogram, measured.pps(), offered, counts);
        summary.losses = measured.losses;
        Ok(summary)
    }

    fn check_stop(&self) -> Result<(), CompareError> {
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(CompareError::Interrupted);
        }
        Ok(())
    }

    fn prepare_generator(&mut self, case: Case) -> Result<(), CompareError> {
        self.set_specs(case, case.traffic(&self.options))
    }

    /// Both generators' frames for `case`, carrying `traffic`; the second
    /// sends its own flows (another client range).
    fn set_specs(&mut self, case: Case, traffic: Traffic) -> Result<(), CompareError> {
        let (first, second) = case.split_flows();
        self.generator.set_spec(gen_spec(
            &self.options,
            &self.topo,
            first,
            traffic,
            CLIENT_BASE,
        ))?;
        if let Some(generator) = self.second.as_mut() {
            let spec = gen_spec(&self.options, &self.topo, second, traffic, SECOND_CLIENT_BASE);
            generator.set_spec(spec)?;
        }
        Ok(())
    }

    /// Before a measured run. A forwarder that keeps flows (xdplb) first
    /// gets one paced pass over every flow (SYNs when the traffic is
    /// established TCP), so that the run measures steady state over existing
    /// entries: paced, because at full speed most frames of the pass would be
    /// lost before they reach it. Then full speed for the warm-up time.
    ///
    /// A SYN flood gets no warm-up: each run starts xdplb with an empty
    /// table, so that the run sees the table fill and then the full-table
    /// policy at work.
    fn warm_up(&mut self, case: Case) -> Result<(), CompareError> {
        if case.syn_flood {
            return Ok(());
        }
        let traffic = case.traffic(&self.options);
        if matches!(case.forwarder, Forwarder::Xdplb(_)) && case.flows > 0 {
            if traffic == Traffic::TcpAck {
                self.set_specs(case, Traffic::TcpSyn)?;
            }
            let (rate, duration) =
                stats::flow_pass(case.flows, self.options.flow_pass, FLOW_PASS_MAX_RATE);
            let plan = Plan { duration, rate: Some(rate), batch_size: self.options.batch_size };
            self.run_generator(case, &plan)?;
            if traffic == Traffic::TcpAck {
                self.prepare_generator(case)?;
            }
        }
        let plan =
            Plan { duration: self.options.warmup, rate: None, batch_size: self.options.batch_size };
        self.run_generator(case, &plan)?;
        std::thread::sleep(DRAIN);
        Ok(())
    }

    /// Runs the generator for `case`. With two workers a second generator
    /// runs at the same time from a thread on the DUT's CPU (each at half
    /// the rate, if paced): veth hands a frame sent by CPU c to the peer's
    /// receive queue c mod queues, so that one feeds queue 1.
    fn run_generator(&self, case: Case, plan: &Plan) -> Result<GenReport, CompareError> {
        let second = match self.second.as_ref() {
            Some(second) if case.workers > 1 => second,
            _ => return Ok(self.topo.gen.enter(|| self.generator.run(plan, &self.stop))??),
        };
        let half = Plan { rate: plan.rate.map(|r| r / 2.0), ..*plan };
        let (gen, first, stop, cpu) =
            (&self.topo.gen, &self.generator, &self.stop, self.options.dut_cpu);
        std::thread::scope(|scope| {
            let other = scope.spawn(move || -> Result<GenReport, CompareError> {
                topo::pin_current_thread(cpu)?;
                let _ = nix::sys::prctl::set_timerslack(1);
                Ok(gen.enter(|| second.run(&half, stop))??)
            });
            let mine = gen.enter(|| first.run(&half, stop));
            let theirs = other.join().map_err(|_| CompareError::GeneratorThread)?;
            let (mine, theirs) = (mine??, theirs?);
            Ok(GenReport {
                frames: mine.frames + theirs.frames,
                elapsed: mine.elapsed.max(theirs.elapsed),
            })
        })
    }

    fn start(&self, case: Case) -> Result<Running, CompareError> {
        let dut = &self.topo.dut;
        let cpu = self.options.dut_cpu;
        let napi = self.napi_cpu(case.forwarder);
        let fifo = self.options.napi_fifo.filter(|_| napi == self.options.gen_cpu);
        dut.pin_napi(napi, fifo)?;
        // Worker i on cores[i]: the worker of queue 1 (fed from the DUT's
        // CPU) on the generator's CPU, so each core has one generator and
        // one worker.
        let cores = match case.workers {
            0 | 1 => vec![cpu],
            _ => vec![cpu, self.options.gen_cpu],
        };
        Ok(match case.forwarder {
            Forwarder::GeneratorCeiling => {
                Running::Drop(Box::new(dut.enter(|| Sink::attach(dut.ifindex))??))
            }
            Forwarder::XdpTx => Running::Reflect(dut.enter(|| Reflector::attach(dut.ifindex))??),
            Forwarder::Testpmd => Running::Testpmd(Testpmd::start(dut, cpu)?),
            Forwarder::KernelForward => Running::Kernel(KernelForward::start(dut)?),
            Forwarder::Xdplb(poll) => {
                let binary = self
                    .xdplb_binary
                    .clone()
                    .ok_or_else(|| xdplb::XdplbError::NotBuilt(PathBuf::from("xdplb")))?;
                let settings = XdplbSettings {
                    binary,
                    poll,
                    flow_table_size: case.flow_table_size(&self.options),
                    cores,
                    workers: case.workers.max(1),
                    traffic: case.traffic(&self.options),
                };
                Running::Xdplb(start_xdplb(&settings, dut)?)
            }
        })
    }

    /// Frames the forwarder delivered so far: what reached the DUT's drop
    /// program for the ceiling, what came back to the sink otherwise.
    fn delivered(&self, running: &Running) -> Result<u64, CompareError> {
        Ok(match running {
            Running::Drop(dut_sink) => dut_sink.counts()?.frames,
            _ => self.sink.counts()?.frames,
        })
    }
}

/// Loss counters added up over runs.
fn sum_losses(runs: &[Measurement]) -> BTreeMap<String, u64> {
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for (key, value) in runs.iter().flat_map(|m| &m.losses) {
        *total.entry(key.clone()).or_default() += value;
    }
    total
}

/// Frames per DUT receive queue, added up over runs.
fn sum_queues(runs: &[Measurement]) -> Vec<u64> {
    let mut total: Vec<u64> = Vec::new();
    for m in runs {
        if total.len() < m.queue_frames.len() {
            total.resize(m.queue_frames.len(), 0);
        }
        for (t, v) in total.iter_mut().zip(&m.queue_frames) {
            *t += v;
        }
    }
    total
}

/// Busy seconds per xdplb worker (by queue), added up over runs (each
/// run's process from its start to its stop).
fn sum_busy(runs: &[Measurement]) -> Vec<f64> {
    let mut total: Vec<f64> = Vec::new();
    for w in runs.iter().flat_map(|m| &m.worker_busy) {
        let q = usize::try_from(w.queue).unwrap_or(usize::MAX).min(4095);
        if total.len() <= q {
            total.resize(q + 1, 0.0);
        }
        total[q] += w.busy_seconds;
    }
    total
}

/// What the flood runs did, from xdplb's final counters of each run (a
/// flood run has no warm-up: the counters are the run's).
fn syn_flood_summary(runs: &[Measurement], table: u32, dut_ns: u64) -> SynFlood {
    let per_run = |key: &str| -> Vec<u64> {
        runs.iter().map(|m| m.counters.get(key).copied().unwrap_or(0)).collect()
    };
    let received = per_run("worker.rx");
    let received_pps = Spread::of(
        &runs
            .iter()
            .zip(&received)
            .map(|(m, &rx)| m.gen.map_or(0.0, |g| stats::rate(rx, g.elapsed)))
            .collect::<Vec<_>>(),
    );
    SynFlood::new(
        table,
        received,
        per_run("worker.forward.new_flow"),
        per_run("worker.drop.flow_table_full"),
        received_pps,
        dut_ns,
    )
}

/// The 2-worker row's note: which queues the generators' frames reached,
/// from the DUT's per-queue counters, and how busy each worker was.
fn two_worker_note(queues: &[u64], busy: &[f64], options: &CompareOptions) -> String {
    let total: u64 = queues.iter().sum();
    let busy_text = if busy.is_empty() {
        "not read (xdplb status failed)".to_owned()
    } else {
        busy.iter()
            .enumerate()
            .map(|(q, s)| format!("queue {q} {s:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fed: Vec<usize> = (0..queues.len()).filter(|&q| queues[q] > total / 100).collect();
    if total == 0 {
        return "no frame reached the DUT's receive queues".to_owned();
    }
    if let [only] = fed[..] {
        return format!(
            "veth delivered all frames to queue {only}: the second worker idled (worker busy: \
             {busy_text})"
        );
    }
    let shares = queues
        .iter()
        .enumerate()
        .map(|(q, &n)| format!("queue {q} {:.0}%", n as f64 * 100.0 / total as f64))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "two generators, on cpu {gen} and cpu {dut}, fed both receive queues (veth picks the \
         peer's queue from the sending CPU): {shares}; worker busy: {busy_text}. With 2 cores \
         each core also runs a generator, so this row shows the split, not scaling",
        gen = options.gen_cpu,
        dut = options.dut_cpu,
    )
}

/// The forwarder's own counters added up over runs; `None` when it has none.
fn sum_counters(runs: &[Measurement]) -> Option<BTreeMap<String, u64>> {
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for (key, value) in runs.iter().flat_map(|m| &m.counters) {
        *total.entry(key.clone()).or_default() += value;
    }
    (!total.is_empty()).then_some(total)
}

/// Starts xdplb, retrying while the kernel still holds the queue of the
/// previous run: an AF_XDP socket's buffer pool is released from a work
/// queue after its process exits, and until then binding another socket to
/// the same queue fails with EBUSY.
fn start_xdplb(settings: &XdplbSettings, dut: &topo::Side) -> Result<XdplbProcess, CompareError> {
    let mut attempt = 0;
    loop {
        match XdplbProcess::start(settings, dut, Duration::from_secs(30)) {
            Err(xdplb::XdplbError::Start { log, .. })
                if attempt < 60 && log.contains("Device or resource busy") =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return Ok(other?),
        }
    }
}

/// Whether the DUT gets two receive queues. veth hands a frame sent from
/// CPU c to the peer's queue c mod queues: the generator must feed queue 0
/// (the one a 1-worker xdplb serves) and a second generator on the DUT's
/// CPU queue 1.
fn two_queues(options: &CompareOptions) -> bool {
    options.gen_cpu % 2 == 0 && options.dut_cpu % 2 == 1
}

/// Whether `case` gets a paced latency run: not the ceiling (nothing comes
/// back), not a SYN flood (what it delivers is the table's size over the
/// run, not a forwarding rate whose half would be a meaningful load).
fn wants_latency(case: &Case) -> bool {
    case.forwarder != Forwarder::GeneratorCeiling && !case.syn_flood
}

fn wants(options: &CompareOptions, name: &str) -> bool {
    options.only.is_empty() || options.only.iter().any(|o| o == name)
}

fn gen_spec(
    options: &CompareOptions,
    topo: &Topology,
    flows: u32,
    traffic: Traffic,
    client_base: std::net::Ipv4Addr,
) -> GenSpec {
    GenSpec {
        traffic,
        frame_bytes: options.frame_bytes,
        flows,
        client_base,
        src_mac: topo.gen.mac,
        dst_mac: topo.dut.mac,
        dst_ip: VIP,
        dst_port: SERVICE_PORT,
    }
}

fn describe(case: Case) -> String {
    let variant = case.variant().map(|v| format!(" {v}")).unwrap_or_default();
    format!("{}{variant} flows={}", case.forwarder.name(), case.flows)
}

/// Nanoseconds per packet; 0 when nothing was delivered.
pub fn per_packet(ns: u64, packets: u64) -> f64 {
    if packets == 0 {
        0.0
    } else {
        ns as f64 / packets as f64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options() -> CompareOptions {
        CompareOptions {
            runs: 1,
            extra_runs: 1,
            extra_latency: true,
            same_rate_reference: false,
            napi_fifo: Some(10),
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            flow_pass: Duration::ZERO,
            latency_duration: Duration::from_secs(1),
            frame_bytes: 64,
            many_flows: 1000,
            traffic: Traffic::Udp,
            only: Vec::new(),
            polls: vec![Poll::Busy],
            xdplb_binary: None,
            gen_cpu: 0,
            dut_cpu: 1,
            batch_size: 64,
            flow_table_size: 2048,
            syn_flood_table: 65_536,
        }
    }

    #[test]
    fn two_queues_only_when_each_generator_feeds_its_own() {
        let o = options();
        assert!(two_queues(&o));
        assert!(!two_queues(&CompareOptions { gen_cpu: 1, dut_cpu: 0, ..o.clone() }));
        assert!(!two_queues(&CompareOptions { gen_cpu: 0, dut_cpu: 2, ..o.clone() }));
        assert!(two_queues(&CompareOptions { gen_cpu: 2, dut_cpu: 3, ..o }));
    }

    #[test]
    fn two_generators_split_the_flows_without_losing_one() {
        let xdplb = Forwarder::Xdplb(Poll::Busy);
        assert_eq!(Case::steady(xdplb, 1001).split_flows(), (1001, 0));
        for flows in [2, 3, 1000, 100_001, u32::MAX] {
            let (a, b) = Case { workers: 2, ..Case::steady(xdplb, flows) }.split_flows();
            assert_eq!(u64::from(a) + u64::from(b), u64::from(flows));
            assert!(a >= b && a - b <= 1);
        }
        // One flow (or a new one per frame) each: a 0 would mean a flood.
        assert_eq!(Case { workers: 2, ..Case::steady(xdplb, 1) }.split_flows(), (1, 1));
        assert_eq!(Case { workers: 2, ..Case::steady(xdplb, 0) }.split_flows(), (0, 0));
    }

    #[test]
    fn settings_show_in_the_variant_traffic_and_table() {
        let o = options();
        let steady = Case::steady(Forwarder::Xdplb(Poll::Busy), 1000);
        assert_eq!(steady.variant().as_deref(), Some("poll=busy"));
        let two = Case { workers: 2, ..steady };
        assert_eq!(two.variant().as_deref(), Some("poll=busy workers=2"));
        let flood = Case { syn_flood: true, ..Case::steady(Forwarder::Xdplb(Poll::Busy), 0) };
        assert_eq!(flood.variant().as_deref(), Some("poll=busy syn_flood"));
        assert_eq!((flood.traffic(&o), flood.flow_table_size(&o)), (Traffic::TcpSyn, 65_536));
        assert_eq!((steady.traffic(&o), steady.flow_table_size(&o)), (Traffic::Udp, 2048));
        assert_eq!(Case::steady(Forwarder::XdpTx, 1).variant(), None);
    }

    #[test]
    fn the_two_worker_note_says_which_queues_were_fed() {
        let o = options();
        let idle = two_worker_note(&[5000, 3], &[1.5, 0.0], &o);
        assert!(idle.starts_with("veth delivered all frames to queue 0"), "{idle}");
        assert!(idle.contains("the second worker idled") && idle.contains("queue 1 0.00 s"));
        let both = two_worker_note(&[3000, 1000], &[], &o);
        assert!(both.contains("queue 0 75%, queue 1 25%"), "{both}");
        assert!(both.contains("not read"), "{both}");
        let second_only = two_worker_note(&[0, 10], &[0.0, 1.0], &o);
        assert!(second_only.contains("all frames to queue 1"), "{second_only}");
        assert!(two_worker_note(&[0, 0], &[], &o).contains("no frame"));
    }

    #[test]
    fn queues_and_busy_times_add_up_over_runs() {
        let run = |queues: Vec<u64>, busy: &[(u32, f64)]| Measurement {
            queue_frames: queues,
            worker_busy: busy
                .iter()
                .map(|&(queue, busy_seconds)| WorkerBusy {
                    queue,
                    busy_seconds,
                    total_seconds: 2.0,
                })
                .collect(),
            ..Measurement::default()
        };
        let runs = [run(vec![10, 1], &[(0, 1.0), (1, 0.5)]), run(vec![5], &[(1, 0.25)])];
        assert_eq!(sum_queues(&runs), vec![15, 1]);
        assert_eq!(sum_busy(&runs), vec![1.0, 0.75]);
    }
}
