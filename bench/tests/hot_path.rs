//! Hot-path discipline, measured with a counting global allocator: after a
//! warm-up, `Pipeline::process` over a mix of 100 000 frames (established
//! and new flows, FIN and reopening SYN, UDP, ICMP errors, a persistent
//! service, every drop the pipeline can reach, a full flow table, idle
//! expiry, two snapshot republications) takes no heap allocation per frame;
//! and the flow table costs at most 128 bytes a flow. Allocations of set-up
//! and of a snapshot sync are allowed, measured and printed
//! (`cargo test -p xdplb-bench --test hot_path -- --nocapture`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use bench::alloc_count::{self, AllocStats, CountingAlloc};
use dataplane::affinity::AffinityTable;
use dataplane::counters::LocalCounters;
use dataplane::flow::{FlowKey, FlowState, FlowTable, Timeouts};
use dataplane::pipeline::Pipeline;
use dataplane::tables::{
    Backend, BackendId, L4Proto, Mac, Persistence, Scheduler, Service, ServiceKey, SharedSnapshot,
    Snapshot,
};
use dataplane::verdict::{DropReason, ForwardKind, Verdict};
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{EtherType, Ipv4Packet, TcpFlags};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const LB_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x65];
const ROUTER_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x01];
const WEB1_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x67];
const WEB2_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x68];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 10);

const WARM_UP_FRAMES: usize = 20_000;
const MEASURED_FRAMES: usize = 100_000;
/// The clock advances one second per this many frames.
const FRAMES_PER_SECOND: usize = 1_000;
/// As a worker's batch: one snapshot load, one sync, one expiry step.
const BATCH: usize = 64;
const EXPIRY_PER_BATCH: usize = 64;
/// Small enough that the new flows of the last 60 s (the TCP timeout) fill
/// it during the measured run, so full-table inserts and refusals happen.
const FLOW_CAPACITY: usize = 8_192;
const TIMEOUTS: Timeouts = Timeouts { tcp: 60, tcp_fin: 10, udp: 30 };
/// Flows opened during set-up and kept alive by the mix.
const LONG_LIVED: u16 = 1_000;
const HTTPS_FLOWS: u16 = 100;
const UDP_CLIENTS: u16 = 200;

/// What a frame of the mix is, for the per-kind table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Established,
    Https,
    NewSyn,
    Fin,
    ReopenSyn,
    SloppyAck,
    Udp,
    IcmpError,
    IcmpNoFlow,
    IcmpEcho,
    BadChecksum,
    Fragment,
    ShortTcp,
    BadIhl,
    Runt,
    Vlan,
    Arp,
    NoServicePort,
    NoServiceProto,
    Inhibited,
    Persistent,
}

impl Kind {
    const ALL: [Kind; 21] = [
        Kind::Established,
        Kind::Https,
        Kind::NewSyn,
        Kind::Fin,
        Kind::ReopenSyn,
        Kind::SloppyAck,
        Kind::Udp,
        Kind::IcmpError,
        Kind::IcmpNoFlow,
        Kind::IcmpEcho,
        Kind::BadChecksum,
        Kind::Fragment,
        Kind::ShortTcp,
        Kind::BadIhl,
        Kind::Runt,
        Kind::Vlan,
        Kind::Arp,
        Kind::NoServicePort,
        Kind::NoServiceProto,
        Kind::Inhibited,
        Kind::Persistent,
    ];
}

fn backend(id: u32, last: u8, port: u16, weight: u32, mac: Option<Mac>) -> Backend {
    Backend { id: BackendId(id), addr: Ipv4Addr::new(192, 168, 10, last), port, weight, mac }
}

fn service(port: u16, proto: L4Proto) -> Service {
    Service {
        key: ServiceKey { vip: VIP, port, proto },
        scheduler: Scheduler::Wrr,
        members: vec![],
        persistence: None,
    }
}

/// The persistence of TCP :8443: per client /24, 300 s, one table that
/// every snapshot shares (as control hands the same `Arc` on).
fn persistence() -> Persistence {
    Persistence {
        timeout_secs: 300,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        table: Arc::new(AffinityTable::with_seed(8_192, 0x5eed)),
    }
}

/// The seed lab's service (VIP:80 on .103 and .104) with `weights`, plus
/// UDP :53, TCP :443 whose server's MAC is `https_mac`, TCP :8080 whose
/// only server is inhibited (weight 0), and the persistent TCP :8443.
fn snapshot(
    generation: u64,
    weights: (u32, u32),
    https_mac: Option<Mac>,
    persistence: &Persistence,
) -> Snapshot {
    let persistent =
        Service { persistence: Some(persistence.clone()), ..service(8443, L4Proto::Tcp) };
    Snapshot::new(
        generation,
        LB_MAC,
        vec![
            (
                service(80, L4Proto::Tcp),
                vec![
                    backend(0, 103, 80, weights.0, Some(WEB1_MAC)),
                    backend(1, 104, 80, weights.1, Some(WEB2_MAC)),
                ],
            ),
            (service(53, L4Proto::Udp), vec![backend(2, 103, 53, 1, Some(WEB1_MAC))]),
            (service(443, L4Proto::Tcp), vec![backend(3, 104, 443, 1, https_mac)]),
            (service(8080, L4Proto::Tcp), vec![backend(4, 103, 8080, 0, Some(WEB1_MAC))]),
            (
                persistent,
                vec![
                    backend(5, 103, 8443, 1, Some(WEB1_MAC)),
                    backend(6, 104, 8443, 1, Some(WEB2_MAC)),
                ],
            ),
        ],
    )
    .expect("valid snapshot")
}

fn to_vip(client: Ipv4Addr, client_port: u16, port: u16) -> FrameSpec<'static> {
    FrameSpec {
        src_mac: ROUTER_MAC,
        dst_mac: LB_MAC,
        ..FrameSpec::new(client, client_port, VIP, port)
    }
}

fn tcp(client: Ipv4Addr, client_port: u16, port: u16, flags: TcpFlags) -> Vec<u8> {
    let payload: &[u8] = if flags.syn() { &[] } else { b"GET / HTTP/1.0\r\n\r\n" };
    build::tcp_frame(&to_vip(client, client_port, port), flags, payload)
}

/// An ICMP "fragmentation needed" from the router about the real server's
/// reply VIP:80 → `client`:`client_port`.
fn icmp_about(client: Ipv4Addr, client_port: u16) -> Vec<u8> {
    let reply = build::tcp_frame(
        &FrameSpec::new(VIP, 80, client, client_port),
        TcpFlags::SYN | TcpFlags::ACK,
        &[],
    );
    build::icmp_frag_needed_frame(&to_vip(Ipv4Addr::new(192, 168, 10, 1), 0, 0), 1400, &reply)
}

/// The `k`th client of a series: 50 000 ports per address.
fn nth(series: u8, k: usize) -> (Ipv4Addr, u16) {
    let host = u8::try_from(k / 50_000).expect("fewer than 256 × 50 000 flows");
    (Ipv4Addr::new(192, 168, series, host), 10_000 + (k % 50_000) as u16)
}

/// Writes the frame mix, deterministically: xorshift picks the kind.
struct Mix {
    rng: u64,
    new_flows: usize,
    sloppy: usize,
    /// New flows a FIN closed, for reopening SYNs.
    closed: Vec<usize>,
}

impl Mix {
    fn new() -> Self {
        Mix { rng: 0x2545_f491_4f6c_dd1d, new_flows: 0, sloppy: 0, closed: Vec::new() }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn frames(&mut self, n: usize) -> Vec<(Kind, Vec<u8>)> {
        (0..n).map(|_| self.frame()).collect()
    }

    fn frame(&mut self) -> (Kind, Vec<u8>) {
        let r = self.next_random();
        let pick = (r >> 32) as u16;
        let percent = r % 100;
        let long_lived = 10_000 + pick % LONG_LIVED;
        match percent {
            0..=49 | 89..=99 => (Kind::Established, tcp(CLIENT, long_lived, 80, TcpFlags::ACK)),
            50..=61 => {
                let (client, port) = nth(21, self.new_flows);
                self.new_flows += 1;
                (Kind::NewSyn, tcp(client, port, 80, TcpFlags::SYN))
            }
            62..=64 => {
                let k = self.new_flows.saturating_sub(3);
                self.closed.push(k);
                let (client, port) = nth(21, k);
                (Kind::Fin, tcp(client, port, 80, TcpFlags::FIN | TcpFlags::ACK))
            }
            65..=66 => match self.closed.pop() {
                Some(k) => {
                    let (client, port) = nth(21, k);
                    (Kind::ReopenSyn, tcp(client, port, 80, TcpFlags::SYN))
                }
                None => (Kind::Established, tcp(CLIENT, long_lived, 80, TcpFlags::ACK)),
            },
            67 => {
                let (client, port) = nth(22, self.sloppy);
                self.sloppy += 1;
                (Kind::SloppyAck, tcp(client, port, 80, TcpFlags::ACK))
            }
            68..=71 => {
                let spec = to_vip(Ipv4Addr::new(192, 168, 20, 11), 5_000 + pick % UDP_CLIENTS, 53);
                (Kind::Udp, build::udp_frame(&spec, b"query"))
            }
            72..=73 => {
                let port = 12_000 + pick % HTTPS_FLOWS;
                (Kind::Https, tcp(CLIENT, port, 443, TcpFlags::ACK))
            }
            74 => (Kind::IcmpError, icmp_about(CLIENT, long_lived)),
            75 => (Kind::IcmpNoFlow, icmp_about(CLIENT, 9_000)),
            76 => {
                let spec = to_vip(CLIENT, 0, 0);
                (Kind::IcmpEcho, build::icmp_echo_request_frame(&spec, 1, pick, b"ping"))
            }
            77 => {
                let mut frame = tcp(CLIENT, long_lived, 80, TcpFlags::ACK);
                frame[14 + 10] ^= 0xff;
                (Kind::BadChecksum, frame)
            }
            78 => {
                let mut frame = tcp(CLIENT, long_lived, 80, TcpFlags::ACK);
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
                ip.set_dont_frag(false);
                ip.set_more_frags(true);
                ip.fill_checksum();
                (Kind::Fragment, frame)
            }
            79 => {
                let mut frame = tcp(CLIENT, long_lived, 80, TcpFlags::SYN);
                frame.truncate(14 + 20 + 10);
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
                ip.set_total_len(30);
                ip.fill_checksum();
                (Kind::ShortTcp, frame)
            }
            80 => {
                let mut frame = tcp(CLIENT, long_lived, 80, TcpFlags::ACK);
                frame[14] = 0x44;
                (Kind::BadIhl, frame)
            }
            81 => (Kind::Runt, vec![0; 10]),
            82 => {
                let frame = tcp(CLIENT, long_lived, 80, TcpFlags::ACK);
                (Kind::Vlan, build::with_vlan(&frame, EtherType::Vlan, 10))
            }
            83 => {
                let mut frame = tcp(CLIENT, long_lived, 80, TcpFlags::ACK);
                frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
                (Kind::Arp, frame)
            }
            84 => (Kind::NoServicePort, tcp(CLIENT, long_lived, 22, TcpFlags::SYN)),
            85 => (Kind::NoServiceProto, build::ipv4_frame(&to_vip(CLIENT, 0, 0), 47, &[0; 8])),
            86 => (Kind::Inhibited, tcp(CLIENT, long_lived, 8080, TcpFlags::SYN)),
            _ => {
                // New connections from 50 /24s, most of which have a template.
                let (_, port) = nth(23, self.new_flows);
                self.new_flows += 1;
                let client = Ipv4Addr::new(192, 168, 100 + (pick % 50) as u8, 7);
                (Kind::Persistent, tcp(client, port, 8443, TcpFlags::SYN))
            }
        }
    }
}

/// Allocations seen while the frames of one kind were processed.
#[derive(Debug, Default, Clone, Copy)]
struct PerKind {
    frames: u64,
    forwarded: u64,
    allocations: u64,
    bytes: u64,
}

/// A worker's loop without the rings: per batch one snapshot load, one
/// sync, the frames, one expiry step; every allocator call is put down to
/// the step that made it.
struct Worker {
    shared: SharedSnapshot,
    pipeline: Pipeline,
    counters: LocalCounters,
    seen_generation: Option<u64>,
    /// Loads, no-op syncs, frames and expiry: must stay at zero.
    steady: AllocStats,
    /// Syncs that met a new generation: (generation, what they allocated).
    syncs: Vec<(u64, AllocStats)>,
    per_kind: [PerKind; Kind::ALL.len()],
    /// The frame index and kind of the first frame that allocated.
    first_offender: Option<(usize, Kind, Verdict)>,
    expired: usize,
    buf: [u8; 2048],
}

impl Worker {
    fn run(&mut self, frames: &[(Kind, Vec<u8>)], first_index: usize) {
        for (b, batch) in frames.chunks(BATCH).enumerate() {
            let index = first_index + b * BATCH;
            let now = 1 + u32::try_from(index / FRAMES_PER_SECOND).expect("small");
            self.batch(batch, index, now);
        }
    }

    fn batch(&mut self, batch: &[(Kind, Vec<u8>)], index: usize, now: u32) {
        let (snapshot, load) = steady_step(|| self.shared.load());
        self.steady = self.steady.plus(load);
        let new_generation = self.seen_generation != Some(snapshot.generation);
        self.seen_generation = Some(snapshot.generation);
        let (_, sync) = if new_generation {
            alloc_count::measure(|| self.pipeline.sync(&snapshot))
        } else {
            steady_step(|| self.pipeline.sync(&snapshot))
        };
        if new_generation {
            self.syncs.push((snapshot.generation, sync));
        } else {
            self.steady = self.steady.plus(sync);
        }
        for (i, (kind, frame)) in batch.iter().enumerate() {
            let buf = &mut self.buf[..frame.len()];
            buf.copy_from_slice(frame);
            let (verdict, stats) =
                steady_step(|| self.pipeline.process(&snapshot, buf, now, &mut self.counters));
            self.counters.add_verdict(verdict);
            self.steady = self.steady.plus(stats);
            let entry = &mut self.per_kind[*kind as usize];
            entry.frames += 1;
            entry.forwarded += u64::from(matches!(verdict, Verdict::Forward(_)));
            entry.allocations += stats.heap_allocations();
            entry.bytes += stats.bytes_allocated;
            if stats.heap_allocations() > 0 && self.first_offender.is_none() {
                self.first_offender = Some((index + i, *kind, verdict));
            }
        }
        drop(snapshot);
        let (expired, stats) = steady_step(|| self.pipeline.expire(now, EXPIRY_PER_BATCH));
        self.expired += expired;
        self.steady = self.steady.plus(stats);
    }
}

/// Runs a step that must not allocate, with the trap armed so that the
/// first allocation that does happen leaves its backtrace.
fn steady_step<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    alloc_count::arm_trap(true);
    let out = alloc_count::measure(f);
    alloc_count::arm_trap(false);
    out
}

/// The frames of a backtrace in the data plane, arc-swap and this test:
/// where an allocation came from, without the allocator and std around it.
fn our_frames(backtrace: &std::backtrace::Backtrace) -> String {
    let text = backtrace.to_string();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| ["dataplane::", "arc_swap::", "hot_path::"].iter().any(|m| l.contains(m)))
        .collect();
    if ours.is_empty() {
        text
    } else {
        ours.join("\n")
    }
}

fn print_stats(what: &str, stats: AllocStats) {
    println!(
        "  {what:<44} {:>8} allocs {:>6} reallocs {:>11} bytes allocated {:>11} bytes freed",
        stats.allocs, stats.reallocs, stats.bytes_allocated, stats.bytes_freed
    );
}

#[test]
fn forwarding_allocates_nothing_per_packet() {
    // The measurement is only as good as the allocator behind it: it must
    // count, and its trap must catch an allocation with its backtrace.
    assert!(alloc_count::is_installed(), "CountingAlloc is not the global allocator");
    assert!(alloc_count::take_trapped().is_none());
    let ((), caught) = steady_step(|| drop(std::hint::black_box(vec![1u8; 100])));
    assert_eq!((caught.allocs, caught.bytes_allocated), (1, 100));
    let backtrace = alloc_count::take_trapped().expect("the armed trap caught the Vec");
    let backtrace = backtrace.to_string();
    assert!(backtrace.contains("forwarding_allocates_nothing_per_packet"), "{backtrace}");

    // Set-up: frames, snapshots, pipeline, long-lived flows. Allowed.
    let ((warm_up, measured, snapshots), frames_made) = alloc_count::measure(|| {
        let mut mix = Mix::new();
        let warm_up = mix.frames(WARM_UP_FRAMES);
        let measured = mix.frames(MEASURED_FRAMES);
        let p = persistence();
        let snapshots = [
            snapshot(1, (1, 1), Some(WEB2_MAC), &p),
            snapshot(2, (3, 1), None, &p),
            snapshot(3, (1, 1), Some(WEB2_MAC), &p),
        ];
        (warm_up, measured, snapshots)
    });
    let [initial, generation_2, generation_3] = snapshots;
    let republished = [generation_2, generation_3];
    let (mut worker, setup) = alloc_count::measure(|| {
        let mut pipeline = Pipeline::new(FLOW_CAPACITY, TIMEOUTS, 0x5eed);
        pipeline.sync(&initial);
        let mut counters = LocalCounters::default();
        let opened = (0..LONG_LIVED)
            .map(|p| (10_000 + p, 80))
            .chain((0..HTTPS_FLOWS).map(|p| (12_000 + p, 443)))
            .map(|(client_port, port)| {
                let mut syn = tcp(CLIENT, client_port, port, TcpFlags::SYN);
                pipeline.process(&initial, &mut syn, 0, &mut counters)
            })
            .filter(|v| *v == Verdict::Forward(ForwardKind::NewFlow))
            .count();
        assert_eq!(opened, usize::from(LONG_LIVED + HTTPS_FLOWS));
        Worker {
            shared: SharedSnapshot::new(initial),
            pipeline,
            counters: LocalCounters::default(),
            seen_generation: Some(1),
            steady: AllocStats::default(),
            syncs: Vec::with_capacity(8),
            per_kind: [PerKind::default(); Kind::ALL.len()],
            first_offender: None,
            expired: 0,
            buf: [0; 2048],
        }
    });

    // Warm-up: the same kind of traffic, not held to zero (first use of
    // the snapshot's thread-local state, for one).
    let ((), warm) = alloc_count::measure(|| worker.run(&warm_up, 0));
    worker.steady = AllocStats::default();
    worker.per_kind = [PerKind::default(); Kind::ALL.len()];
    worker.first_offender = None;
    worker.counters = LocalCounters::default();
    worker.expired = 0;
    let warm_trapped = alloc_count::take_trapped();

    // Measured: three parts, a republication (control's store) between them:
    // generation 2 turns web1:web2 to 3:1 and takes the :443 server's MAC
    // away (its flows drop for no_mac), generation 3 puts both back.
    let mut publishes = Vec::new();
    let parts = [0, MEASURED_FRAMES / 2, MEASURED_FRAMES * 3 / 4, MEASURED_FRAMES];
    for (part, next) in parts.windows(2).zip(republished.into_iter().map(Some).chain([None])) {
        let (start, end) = (part[0], part[1]);
        worker.run(&measured[start..end], WARM_UP_FRAMES + start);
        if let Some(next) = next {
            let generation = next.generation;
            let ((), stats) = alloc_count::measure(|| worker.shared.publish(next));
            publishes.push((generation, stats));
        }
    }
    let trapped = alloc_count::take_trapped();

    let view = worker.counters.view();
    let frames: u64 = worker.per_kind.iter().map(|k| k.frames).sum();
    let forwarded = view.forwarded_total();
    println!("hot path over {frames} frames after {WARM_UP_FRAMES} of warm-up:");
    println!(
        "  {:<16} {:>8} {:>10} {:>12} {:>12}",
        "kind", "frames", "forwarded", "allocations", "bytes"
    );
    for kind in Kind::ALL {
        let k = worker.per_kind[kind as usize];
        let name = format!("{kind:?}");
        println!(
            "  {name:<16} {:>8} {:>10} {:>12} {:>12}",
            k.frames, k.forwarded, k.allocations, k.bytes
        );
    }
    println!("verdicts:");
    for kind in ForwardKind::ALL {
        println!("  forward {:<20} {:>8}", kind.name(), view.forwarded(kind));
    }
    for reason in DropReason::ALL {
        println!("  drop    {:<20} {:>8}", reason.name(), view.dropped(reason));
    }
    println!("  persistence template hits: {}", view.persistence_hits());
    println!("  flows expired by the sweep: {}", worker.expired);
    println!("allocations:");
    print_stats("set-up: the frames of the mix, three snapshots", frames_made);
    print_stats("set-up: pipeline, first snapshot, 1 100 flows", setup);
    print_stats("warm-up (20 000 frames)", warm);
    if let Some(backtrace) = &warm_trapped {
        println!("    first warm-up allocation in:\n{}", our_frames(backtrace));
    }
    for (generation, stats) in &publishes {
        print_stats(&format!("publish generation {generation} (control side)"), *stats);
    }
    for (generation, stats) in &worker.syncs {
        print_stats(&format!("sync to generation {generation} (worker)"), *stats);
    }
    print_stats("steady state: load, sync, process, expire", worker.steady);
    let per_packet = worker.steady.heap_allocations() as f64 / forwarded.max(1) as f64;
    println!("  heap allocations per forwarded packet: {per_packet}");
    if let Some((index, kind, verdict)) = worker.first_offender {
        println!("first frame that allocated: #{index}, {kind:?}, {verdict:?}");
    }
    if let Some(backtrace) = &trapped {
        println!("first steady-state allocation in:\n{}", our_frames(backtrace));
    }

    // The mix covers what it claims to.
    for kind in ForwardKind::ALL {
        assert!(view.forwarded(kind) > 0, "no frame was forwarded as {}", kind.name());
    }
    for reason in DropReason::ALL.into_iter().filter(|r| *r != DropReason::TxRingFull) {
        assert!(view.dropped(reason) > 0, "no frame was dropped for {}", reason.name());
    }
    assert!(worker.expired > 0, "the sweep expired no flow");
    assert!(view.persistence_hits() > 0, "no new flow followed a persistence template");
    assert_eq!(worker.syncs.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(frames, MEASURED_FRAMES as u64);
    assert!(forwarded > frames / 2, "only {forwarded} of {frames} forwarded");

    assert_eq!(
        worker.steady.heap_allocations(),
        0,
        "the hot path allocated {} times ({} bytes) over {forwarded} forwarded packets; \
         first at frame {:?}; backtrace: {}",
        worker.steady.heap_allocations(),
        worker.steady.bytes_allocated,
        worker.first_offender,
        trapped.map_or_else(|| "none caught".to_owned(), |b| b.to_string()),
    );
}

fn flow_key(i: usize) -> FlowKey {
    let (src, src_port) = nth(30, i);
    FlowKey { src, dst: VIP, src_port, dst_port: 80, proto: L4Proto::Tcp }
}

#[test]
fn flow_table_costs_at_most_128_bytes_a_flow_and_filling_it_allocates_nothing() {
    assert!(alloc_count::is_installed(), "CountingAlloc is not the global allocator");
    for n in [1_000, 100_000, 1_000_000] {
        let (mut table, made) =
            alloc_count::measure(|| FlowTable::new(n, Timeouts::default(), 0x5eed));
        let (_, pipeline) = alloc_count::measure(|| Pipeline::new(n, Timeouts::default(), 0x5eed));
        let ((), filled) = alloc_count::measure(|| {
            for i in 0..n {
                let backend = BackendId(i as u32 % 2);
                table.insert(flow_key(i), backend, FlowState::TcpActive, 0).expect("fits");
            }
        });
        let per_flow = |bytes: u64| bytes as f64 / n as f64;
        println!(
            "{n:>9} flows: FlowTable::new allocated {} B ({:.1} B/flow), memory_bytes() {} B \
             ({:.1} B/flow); Pipeline::new {:.1} B/flow; filling it: {} allocations",
            made.bytes_allocated,
            per_flow(made.bytes_allocated),
            table.memory_bytes(),
            per_flow(table.memory_bytes() as u64),
            per_flow(pipeline.bytes_allocated),
            filled.heap_allocations(),
        );
        assert_eq!(table.len(), n);
        // What status reports is what the table took.
        assert_eq!(made.bytes_allocated, table.memory_bytes() as u64, "{n} flows: {made:?}");
        assert!(per_flow(made.bytes_allocated) <= 128.0, "{n} flows: {made:?}");
        assert!(per_flow(pipeline.bytes_allocated) <= 128.0, "{n} flows: {pipeline:?}");
        assert_eq!(filled.heap_allocations(), 0, "{n} inserts allocated: {filled:?}");
    }
}
