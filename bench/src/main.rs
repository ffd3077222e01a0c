//! `xdplb-bench`: the command line of the benchmark harness. Parses
//! arguments and hands over to `bench::compare`; prints the table and
//! writes the JSON and SVG it is asked for.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bench::compare::{CompareOptions, Harness};
use bench::gen::{Traffic, MAX_FRAME, MIN_FRAME};
use bench::report;
use bench::xdplb::Poll;
use clap::{Parser, Subcommand, ValueEnum};

/// xdplb-bench — how fast xdplb forwards on this box, as a ratio to the
/// kernel's own XDP_TX and to DPDK testpmd, measured in one run with one
/// generator.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every forwarder with the same generator and compare them.
    ///
    /// Builds two namespaces joined by a veth pair (generator and sink on
    /// one core, the device under test on the other), measures the
    /// generator's own ceiling (into XDP_DROP), the kernel's XDP_TX with MAC
    /// swap, testpmd macswap (when installed), kernel forwarding, and xdplb
    /// with 1 and many flows, with 2 workers, and under a SYN flood; N runs
    /// each, interleaved; then latency at half of each forwarder's median
    /// rate. Needs root.
    Compare(CompareArgs),
    /// Print the table and draw the SVG again from a JSON file `compare` wrote.
    Plot {
        /// The JSON array.
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
        /// The SVG to draw.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// Fewer, shorter runs (under a minute; what CI runs).
    #[arg(long)]
    quick: bool,
    /// Write the rows as a JSON array here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw pps bars and latency CDFs into this SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Measured runs per forwarder (default 5; 3 with --quick, where the
    /// 2-worker and SYN-flood settings run once, without latency).
    #[arg(long)]
    runs: Option<usize>,
    /// Seconds per measured run (default 3; 1 with --quick).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Frame length in bytes, without FCS.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(MIN_FRAME as i64..=MAX_FRAME as i64))]
    frame_bytes: u16,
    /// Distinct 5-tuples of the "many flows" setting; 0 = a new one for
    /// every frame (with --traffic tcp-syn: a SYN flood, which measures flow
    /// insertion and the full-table policy).
    #[arg(long, default_value_t = 100_000)]
    flows: u32,
    /// What the frames carry (tcp-ack opens every flow with a SYN first).
    #[arg(long, value_enum, default_value_t = TrafficArg::Udp)]
    traffic: TrafficArg,
    /// Only these forwarders (xdp_tx, testpmd_macswap, kernel_forward,
    /// xdplb; the generator ceiling always runs), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// xdplb worker polling: busy (the max-rate setting), adaptive,
    /// busy-napi (busy with the kernel's preferred busy polling), both
    /// (busy and adaptive) or all three.
    #[arg(long, value_enum, default_value_t = PollArg::Busy)]
    poll: PollArg,
    /// The xdplb binary (default: next to this one, or $XDPLB_BIN).
    #[arg(long, value_name = "PATH")]
    xdplb: Option<PathBuf>,
    /// Core for the generator and the sink.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// Core for the device under test.
    #[arg(long, default_value_t = 1)]
    dut_cpu: usize,
    /// Scheduling of the NAPI threads: fifo (SCHED_FIFO 10, so that on the
    /// generator's core the kernel's receive path runs when it has work and
    /// the generator gives way) or other (the default policy, where the
    /// scheduler splits that core and the split shows in every figure).
    #[arg(long, value_enum, default_value_t = NapiSched::Fifo)]
    napi_sched: NapiSched,
    /// Frames per live-frame kernel batch (1-256).
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TrafficArg {
    Udp,
    TcpSyn,
    TcpAck,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NapiSched {
    Fifo,
    Other,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PollArg {
    Busy,
    Adaptive,
    BusyNapi,
    Both,
    All,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compare(args) => compare(args),
        Command::Plot { json, svg } => plot(&json, svg.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdplb-bench: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text
/// the message already carries.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn plot(json: &std::path::Path, svg: Option<&std::path::Path>) -> anyhow::Result<()> {
    let rows = report::read_json(json)?;
    print!("{}", report::table(&rows, &[]));
    if let Some(path) = svg {
        report::write_svg(&rows, path)?;
        eprintln!("xdplb-bench: wrote {}", path.display());
    }
    Ok(())
}

fn compare(args: CompareArgs) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("compare needs root (it creates network namespaces and loads XDP programs)");
    }
    let (runs, duration, warmup, latency): (usize, f64, f64, f64) =
        if args.quick { (3, 1.0, 0.3, 1.0) } else { (5, 3.0, 0.5, 3.0) };
    let duration = args.duration.unwrap_or(duration);
    if duration.is_nan() || duration <= 0.0 || duration > 600.0 {
        anyhow::bail!("--duration {duration} is outside (0, 600] seconds");
    }
    let runs = args.runs.unwrap_or(runs).max(1);
    let options = CompareOptions {
        runs,
        // --quick keeps under a minute: the 2-worker and SYN-flood settings
        // run once there, without a latency run.
        extra_runs: if args.quick { 1 } else { runs },
        extra_latency: !args.quick,
        same_rate_reference: !args.quick,
        napi_fifo: match args.napi_sched {
            NapiSched::Fifo => Some(10),
            NapiSched::Other => None,
        },
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup.min(duration)),
        flow_pass: Duration::from_secs_f64(if args.quick { 0.5 } else { 1.0 }),
        latency_duration: Duration::from_secs_f64(latency.min(duration.max(0.5))),
        frame_bytes: usize::from(args.frame_bytes),
        many_flows: args.flows,
        traffic: match args.traffic {
            TrafficArg::Udp => Traffic::Udp,
            TrafficArg::TcpSyn => Traffic::TcpSyn,
            TrafficArg::TcpAck => Traffic::TcpAck,
        },
        only: args.only,
        polls: match args.poll {
            PollArg::Busy => vec![Poll::Busy],
            PollArg::Adaptive => vec![Poll::Adaptive],
            PollArg::BusyNapi => vec![Poll::BusyNapi],
            PollArg::Both => vec![Poll::Busy, Poll::Adaptive],
            PollArg::All => vec![Poll::Busy, Poll::BusyNapi, Poll::Adaptive],
        },
        xdplb_binary: args.xdplb,
        gen_cpu: args.gen_cpu,
        dut_cpu: args.dut_cpu,
        batch_size: args.batch_size,
        // Room for every flow (twice over: a hash table); a flood (0) gets
        // xdplb's default, so that it fills and the full-table policy shows.
        flow_table_size: match args.flows {
            0 => 65_536,
            n => n.saturating_mul(2).next_power_of_two().min(1 << 24),
        },
        // A quarter of the default with --quick: a 1 s run must fill it
        // even where the DUT takes in only ~50 k SYNs/s.
        syn_flood_table: if args.quick {
            bench::compare::SYN_FLOOD_TABLE / 4
        } else {
            bench::compare::SYN_FLOOD_TABLE
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing a signal handler")?;
    }
    eprintln!(
        "xdplb-bench: {} run(s) of {:.1} s per forwarder, {} B {:?} frames, 1 and {} flows; \
         xdplb polls {:?}",
        options.runs,
        options.duration.as_secs_f64(),
        options.frame_bytes,
        options.traffic,
        options.many_flows,
        options.polls.iter().map(|p| p.name()).collect::<Vec<_>>(),
    );
    let mut harness = Harness::new(options.clone(), stop).context("setting up")?;
    let comparison = harness.compare(&mut |line| eprintln!("{line}")).context("comparing")?;
    drop(harness);
    print!("{}", report::table(&comparison.rows, &comparison.skipped));
    println!(
        "cpu placement: generator and sink on cpu {gen}, device under test on cpu {dut}; for \
         busy-polling forwarders (testpmd, xdplb poll=busy) the DUT's NAPI thread runs on cpu \
         {gen}, as a poller and the NAPI thread feeding it starve each other on one core (each \
         row's cpu_placement says what ran where).{fifo} xdplb poll=busy is the max-rate setting: a \
         whole core spins, and that counts in ns/pkt. On veth the receiving queue follows the \
         sending CPU (cpu mod queues), not a flow hash: one generator feeds one queue, so the \
         workers=2 row runs a second generator on cpu {dut} for queue 1 (its note and \
         dut_rx_queue_frames say what each queue got). The syn_flood row sends a TCP SYN of a \
         new 5-tuple in every frame against a {table}-entry flow table, each run from an empty \
         table.",
        table = options.syn_flood_table,
        fifo = if options.napi_fifo.is_some() {
            " The NAPI threads on the generator's core run SCHED_FIFO, so the receive path runs \
             whenever it has work and the generator gets what is left: with 2 cores that core's \
             per-frame work (generator, sink, and the DUT's receive path for busy pollers) caps \
             the whole-box rate, and CPU per packet on the DUT side shows efficiency."
        } else {
            ""
        },
        gen = options.gen_cpu,
        dut = options.dut_cpu,
    );
    if let Some(path) = &args.json {
        report::write_json(&comparison.rows, path)?;
        eprintln!("xdplb-bench: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        report::write_svg(&comparison.rows, path)?;
        eprintln!("xdplb-bench: wrote {}", path.display());
    }
    Ok(())
}
