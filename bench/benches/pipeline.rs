//! What one frame costs in `Pipeline::process` (parse, flow lookup or
//! scheduling, MAC rewrite) against the seed lab's service: VIP
//! 192.168.10.110:80 over two real servers, .103 and .104.
//!
//! Short runs (1 s warm-up, 2 s measurement); `cargo bench -p xdplb-bench
//! --bench pipeline -- --quick` is quicker still.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::counters::LocalCounters;
use dataplane::flow::Timeouts;
use dataplane::pipeline::Pipeline;
use dataplane::tables::{
    Backend, BackendId, L4Proto, Mac, Scheduler, Service, ServiceKey, Snapshot,
};
use dataplane::verdict::{DropReason, ForwardKind, Verdict};
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::TcpFlags;

const LB_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x65];
const ROUTER_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x01];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
/// The new-flow bench cycles through the ports of this many clients.
const CLIENTS: u8 = 16;
/// Flow-table capacity: one client's worth of ports, as a worker's table
/// holds a fraction of the flows it has seen.
const FLOW_CAPACITY: usize = 1 << 16;

fn seed_lab_snapshot() -> Snapshot {
    let server = |id: u32, last: u8| Backend {
        id: BackendId(id),
        addr: Ipv4Addr::new(192, 168, 10, last),
        port: 80,
        weight: 1,
        mac: Some([2, 0, 0, 0x0a, 0, last]),
    };
    let service = Service {
        key: ServiceKey { vip: VIP, port: 80, proto: L4Proto::Tcp },
        scheduler: Scheduler::Wrr,
        members: Vec::new(),
        persistence: None,
    };
    Snapshot::new(1, LB_MAC, vec![(service, vec![server(0, 103), server(1, 104)])])
        .expect("the seed lab snapshot is valid")
}

fn client(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 20, 10 + n)
}

fn tcp(client: Ipv4Addr, port: u16, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    let spec =
        FrameSpec { src_mac: ROUTER_MAC, dst_mac: LB_MAC, ..FrameSpec::new(client, port, VIP, 80) };
    build::tcp_frame(&spec, flags, payload)
}

fn pipeline(snapshot: &Snapshot) -> Pipeline {
    let mut pipeline = Pipeline::new(FLOW_CAPACITY, Timeouts::default(), 0x5eed);
    pipeline.sync(snapshot);
    pipeline
}

/// SYNs of flows never seen: the source port advances every frame (the
/// IPv4 checksum does not cover it); after each client's 65 536 ports the
/// next client's template takes over and the clock moves past the TCP
/// timeout, so the table runs full of expired flows that inserts reclaim,
/// as a worker's does.
struct NewSyns {
    templates: Vec<Vec<u8>>,
    port: u16,
    which: usize,
    now: u32,
}

impl NewSyns {
    fn new() -> Self {
        let templates = (0..CLIENTS).map(|n| tcp(client(n), 0, TcpFlags::SYN, &[])).collect();
        NewSyns { templates, port: 0, which: 0, now: 0 }
    }

    /// The next SYN and the time it arrives.
    fn next(&mut self) -> (&mut [u8], u32) {
        self.port = self.port.wrapping_add(1);
        if self.port == 0 {
            self.which = (self.which + 1) % self.templates.len();
            self.now += Timeouts::default().tcp + 1;
        }
        let frame = &mut self.templates[self.which];
        frame[34..36].copy_from_slice(&self.port.to_be_bytes());
        (frame, self.now)
    }
}

fn process(c: &mut Criterion) {
    let snapshot = seed_lab_snapshot();
    let mut counters = LocalCounters::default();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));

    // (a) A data segment of a flow the table holds: parse, lookup, rewrite.
    let mut p = pipeline(&snapshot);
    let mut syn = tcp(client(0), 40000, TcpFlags::SYN, &[]);
    let first = p.process(&snapshot, &mut syn, 0, &mut counters);
    assert_eq!(first, Verdict::Forward(ForwardKind::NewFlow));
    let mut ack = tcp(client(0), 40000, TcpFlags::ACK, b"GET / HTTP/1.0\r\n\r\n");
    group.bench_function("established", |b| {
        b.iter(|| p.process(&snapshot, black_box(&mut ack), 1, &mut counters))
    });
    let after = p.process(&snapshot, &mut ack, 1, &mut counters);
    assert_eq!(after, Verdict::Forward(ForwardKind::Established));

    // (b) A SYN of a new flow: lookup miss, wrr pick, insert.
    let mut p = pipeline(&snapshot);
    let mut syns = NewSyns::new();
    group.bench_function("new_flow_syn", |b| {
        b.iter(|| {
            let (frame, now) = syns.next();
            p.process(&snapshot, black_box(frame), now, &mut counters)
        })
    });
    // Still on that path: no refusal, no reuse, across several turns.
    for _ in 0..4 * usize::from(u16::MAX) {
        let (frame, now) = syns.next();
        let verdict = p.process(&snapshot, frame, now, &mut counters);
        assert_eq!(verdict, Verdict::Forward(ForwardKind::NewFlow));
    }

    // (c) A frame whose IPv4 header checksum fails: dropped after the
    // Ethernet and IPv4 length checks and the checksum, before any lookup.
    let mut p = pipeline(&snapshot);
    let mut bad = tcp(client(0), 40001, TcpFlags::SYN, &[]);
    bad[14 + 10] ^= 0xff;
    group.bench_function("drop_bad_checksum", |b| {
        b.iter(|| p.process(&snapshot, black_box(&mut bad), 1, &mut counters))
    });
    let after = p.process(&snapshot, &mut bad, 1, &mut counters);
    assert_eq!(after, Verdict::Drop(DropReason::BadIpv4Checksum));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = process
}
criterion_main!(benches);
