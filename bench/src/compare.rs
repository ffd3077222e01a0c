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
use crate::gen::{GenReport, GenSpec, Generator, Plan, Traffic};
use crate::refs::{self, KernelForward, Reflector, Testpmd};
use crate::report::{CpuCost, LatencySummary, Row};
use crate::sink::{Sink, SinkCounts, RING_SAMPLES};
use crate::stats::{self, Spread};
use crate::topo::{self, TopoConfig, Topology, VIP};
use crate::xdplb::{self, Poll, XdplbProcess, XdplbSettings, SERVICE_PORT};

/// Latency samples aimed for per paced run.
const LATENCY_SAMPLES: u64 = 200_000;
/// The fastest a flow-creating pass is sent: slow enough for the DUT to see
/// every frame on this box.
const FLOW_PASS_MAX_RATE: f64 = 200_000.0;
/// Time for frames in flight to land before counters are read.
const DRAIN: Duration = Duration::from_millis(50);

/// Everything `compare` is told.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Measured runs per forwarder.
    pub runs: usize,
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
    /// Distinct 5-tuples.
    pub flows: u32,
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
        let topo = Topology::create(TopoConfig { queues: 1 })?;
        topo.gen.pin_napi(options.gen_cpu)?;
        topo.dut.pin_napi(options.dut_cpu)?;
        topo::pin_current_thread(options.gen_cpu)?;
        // Sleeps of a paced run should end when asked, not 50 µs later.
        let _ = nix::sys::prctl::set_timerslack(1);
        let spec = gen_spec(&options, &topo, options.many_flows, options.traffic);
        let anchor = Some(topo.gen_anchor_ifindex);
        let generator = topo.gen.enter(|| Generator::load(spec, topo.gen.ifindex, anchor))??;
        let sink = topo.gen.enter(|| Sink::attach(topo.gen.ifindex))??;
        Ok(Self { options, topo, generator, sink, xdplb_binary, stop })
    }

    /// The cases to run, in order; with the ones left out and why.
    pub fn cases(&self) -> (Vec<Case>, Vec<(String, String)>) {
        let many = self.options.many_flows;
        let mut cases = vec![
            Case { forwarder: Forwarder::GeneratorCeiling, flows: many },
            Case { forwarder: Forwarder::XdpTx, flows: many },
        ];
        let mut skipped = Vec::new();
        if refs::testpmd_binary().is_some() {
            cases.push(Case { forwarder: Forwarder::Testpmd, flows: many });
        } else if wants(&self.options, "testpmd_macswap") {
            skipped
                .push(("testpmd_macswap".to_owned(), refs::TestpmdError::NotInstalled.to_string()));
        }
        cases.push(Case { forwarder: Forwarder::KernelForward, flows: many });
        for &poll in &self.options.polls {
            cases.push(Case { forwarder: Forwarder::Xdplb(poll), flows: 1 });
            cases.push(Case { forwarder: Forwarder::Xdplb(poll), flows: many });
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
        let total = cases.len() * self.options.runs + cases.len().saturating_sub(1);
        let mut step = 0;
        let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); cases.len()];
        for run in 0..self.options.runs {
            for (i, case) in cases.iter().enumerate() {
                step += 1;
                let m = self.measure(*case, None)?;
                progress(&format!(
                    "[{step:>2}/{total}] run {}/{} {}: {:.3} Mpps delivered, generator {:.3} Mpps, \
                     {:.0} ns/packet on the DUT",
                    run + 1,
                    self.options.runs,
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
            if case.forwarder == Forwarder::GeneratorCeiling || median <= 0.0 {
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
        Ok(Comparison { rows: self.rows(&cases, &runs, latencies), skipped })
    }

    fn rows(
        &self,
        cases: &[Case],
        runs: &[Vec<Measurement>],
        latencies: Vec<Option<LatencySummary>>,
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
            .map(|((case, ms), latency)| {
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
                let ratio = |reference: Option<f64>| match reference {
                    Some(r) if r > 0.0 && case.forwarder != Forwarder::GeneratorCeiling => {
                        Some(pps.median / r)
                    }
                    _ => None,
                };
                Row {
                    forwarder: case.forwarder.name().to_owned(),
                    variant: case.forwarder.variant(),
                    traffic: self.options.traffic,
                    frame_bytes: self.options.frame_bytes,
                    flows: case.flows,
                    workers: 1,
                    runs: ms.len(),
                    duration_s: self.options.duration.as_secs_f64(),
                    pps,
                    generator_pps: generator,
                    generator_ceiling_pps: ceiling,
                    generator_bound: ceiling.is_some_and(|c| {
                        case.forwarder != Forwarder::GeneratorCeiling
                            && pps.median >= 0.9 * c.median
                    }),
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
                    cpu_placement: self.placement(case.forwarder),
                    forwarder_counters: sum_counters(ms),
                    losses: sum_losses(ms),
                    generator_cpu_share: spread(ms, &|m| m.gen_cpu_share),
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
            Forwarder::Testpmd | Forwarder::Xdplb(Poll::Busy) => self.options.gen_cpu,
            _ => self.options.dut_cpu,
        }
    }

    /// Which core ran what, in words, for the report.
    fn placement(&self, forwarder: Forwarder) -> String {
        let (gen, dut) = (self.options.gen_cpu, self.options.dut_cpu);
        let napi = self.napi_cpu(forwarder);
        let what = match forwarder {
            Forwarder::GeneratorCeiling => "XDP_DROP in the DUT's NAPI thread",
            Forwarder::XdpTx => "XDP_TX in the DUT's NAPI thread",
            Forwarder::KernelForward => "IP forwarding in the DUT's NAPI thread",
            Forwarder::Testpmd => "testpmd's forwarding lcore (busy polling)",
            Forwarder::Xdplb(Poll::Busy) => "xdplb's worker (busy polling)",
            Forwarder::Xdplb(Poll::Adaptive) => "xdplb's worker (adaptive polling)",
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
        text
    }

    /// One measured run of `case`, at full speed or at `rate`.
    fn measure(&mut self, case: Case, rate: Option<f64>) -> Result<Measurement, CompareError> {
        self.check_stop()?;
        self.prepare_generator(case)?;
        let running = self.start(case)?;
        self.warm_up(case)?;
        let result = self.measured_run(&running, self.options.duration, rate);
        let counters = running.stop()?;
        Ok(Measurement { counters, ..result? })
    }

    fn measured_run(
        &mut self,
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
        let delivered_before = self.delivered(running)?;
        let gen0 = Snapshot::of_threads(&[me]);
        let (napi0, fwd0) = snapshot(&napi);
        let plan = Plan { duration, rate, batch_size: self.options.batch_size };
        let report = self.run_generator(&plan)?;
        let (napi1, fwd1) = snapshot(&napi);
        let gen_ns = Snapshot::of_threads(&[me]).since(&gen0).on_cpu_ns;
        std::thread::sleep(DRAIN);
        let delivered = self.delivered(running)?.saturating_sub(delivered_before);
        let mut losses = self.loss_counters()?;
        for (name, value) in &mut losses {
            *value = value.saturating_sub(losses0.get(name).copied().unwrap_or(0));
        }
        losses.retain(|_, v| *v > 0);
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
        self.sink.set_sampling(Some(shift), self.options.traffic.timestamp_offset())?;
        let before = self.sink.counts()?;
        let measured = self.measured_run(&running, self.options.latency_duration, Some(rate));
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
        let spec = gen_spec(&self.options, &self.topo, case.flows, self.options.traffic);
        self.generator.set_spec(spec)?;
        Ok(())
    }

    /// Before a measured run. A forwarder that keeps flows (xdplb) first
    /// gets one paced pass over every flow (SYNs when the traffic is
    /// established TCP), so that the run measures steady state over existing
    /// entries: paced, because at full speed most frames of the pass would be
    /// lost before they reach it. Then full speed for the warm-up time.
    fn warm_up(&mut self, case: Case) -> Result<(), CompareError> {
        let traffic = self.options.traffic;
        if matches!(case.forwarder, Forwarder::Xdplb(_)) && case.flows > 0 {
            if traffic == Traffic::TcpAck {
                let syn = gen_spec(&self.options, &self.topo, case.flows, Traffic::TcpSyn);
                self.generator.set_spec(syn)?;
            }
            let (rate, duration) =
                stats::flow_pass(case.flows, self.options.flow_pass, FLOW_PASS_MAX_RATE);
            let plan = Plan { duration, rate: Some(rate), batch_size: self.options.batch_size };
            self.run_generator(&plan)?;
            if traffic == Traffic::TcpAck {
                self.prepare_generator(case)?;
            }
        }
        let plan =
            Plan { duration: self.options.warmup, rate: None, batch_size: self.options.batch_size };
        self.run_generator(&plan)?;
        std::thread::sleep(DRAIN);
        Ok(())
    }

    fn run_generator(&self, plan: &Plan) -> Result<GenReport, CompareError> {
        Ok(self.topo.gen.enter(|| self.generator.run(plan, &self.stop))??)
    }

    fn start(&self, case: Case) -> Result<Running, CompareError> {
        let dut = &self.topo.dut;
        let cpu = self.options.dut_cpu;
        dut.pin_napi(self.napi_cpu(case.forwarder))?;
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
                    flow_table_size: self.options.flow_table_size,
                    cpu,
                    workers: 1,
                    traffic: self.options.traffic,
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

fn wants(options: &CompareOptions, name: &str) -> bool {
    options.only.is_empty() || options.only.iter().any(|o| o == name)
}

fn gen_spec(options: &CompareOptions, topo: &Topology, flows: u32, traffic: Traffic) -> GenSpec {
    GenSpec {
        traffic,
        frame_bytes: options.frame_bytes,
        flows,
        src_mac: topo.gen.mac,
        dst_mac: topo.dut.mac,
        dst_ip: VIP,
        dst_port: SERVICE_PORT,
    }
}

fn describe(case: Case) -> String {
    let variant = case.forwarder.variant().map(|v| format!(" {v}")).unwrap_or_default();
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
