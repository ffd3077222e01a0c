//! The flow table beside `std::collections::HashMap` doing the same job
//! (same keys and values, std's SipHash-1-3 against ours) at 1 k, 100 k and
//! 1 M flows: a lookup of a live flow that refreshes its `last_seen`, and a
//! new flow's insert, paired with the removal of the oldest so that the
//! number of flows stays put.
//!
//! Short runs (1 s warm-up, 2 s measurement); `cargo bench -p xdplb-bench
//! --bench flow_table -- --quick` is quicker still.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::{Flow, FlowKey, FlowState, FlowTable, Timeouts};
use dataplane::tables::{BackendId, L4Proto};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

/// The `i`th distinct client flow to the VIP's port 80.
fn key(i: usize) -> FlowKey {
    let i = i as u32;
    FlowKey {
        src: Ipv4Addr::from(0x0a00_0000 | (i >> 16)),
        dst: VIP,
        src_port: i as u16,
        dst_port: 80,
        proto: L4Proto::Tcp,
    }
}

/// `0..n` in a fixed pseudo-random order, so that large tables are probed
/// all over rather than along the cache.
fn shuffled(n: usize) -> Vec<FlowKey> {
    let mut keys: Vec<FlowKey> = (0..n).map(key).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        // xorshift64: enough to scatter; not a statistical claim.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    keys
}

fn flow(i: usize) -> Flow {
    Flow { backend: BackendId(i as u32 % 2), state: FlowState::TcpActive, last_seen: 0 }
}

fn table(n: usize) -> FlowTable {
    let mut table = FlowTable::new(n, Timeouts::default(), 0x5eed);
    for i in 0..n {
        table.insert(key(i), flow(i).backend, FlowState::TcpActive, 0).expect("within capacity");
    }
    table
}

fn map(n: usize) -> HashMap<FlowKey, Flow> {
    let mut map = HashMap::with_capacity(n);
    map.extend((0..n).map(|i| (key(i), flow(i))));
    map
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_lookup");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let order = shuffled(n);
        let mut ours = table(n);
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new("flow_table", n), &n, |b, _| {
            b.iter(|| {
                let key = &order[next];
                next = if next + 1 == order.len() { 0 } else { next + 1 };
                ours.lookup(black_box(key), 1).map(|f| f.backend)
            })
        });
        drop(ours);
        let mut reference = map(n);
        let mut next = 0;
        group.bench_with_input(BenchmarkId::new("std_hashmap", n), &n, |b, _| {
            b.iter(|| {
                let key = &order[next];
                next = if next + 1 == order.len() { 0 } else { next + 1 };
                reference.get_mut(black_box(key)).map(|f| {
                    f.last_seen = 1;
                    f.backend
                })
            })
        });
    }
    group.finish();
}

/// A sliding window of `n` flows: each iteration inserts flow `oldest + n`
/// and removes flow `oldest`, so load and size stay where they are.
fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_insert_remove");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut ours = table(n);
        let mut oldest = 0usize;
        group.bench_with_input(BenchmarkId::new("flow_table", n), &n, |b, _| {
            b.iter(|| {
                let new = key(oldest + n);
                let inserted = ours.insert(black_box(new), BackendId(1), FlowState::TcpActive, 1);
                let removed = ours.remove(&key(oldest));
                oldest += 1;
                (inserted.is_ok(), removed.is_some())
            })
        });
        drop(ours);
        let mut reference = map(n);
        let mut oldest = 0usize;
        group.bench_with_input(BenchmarkId::new("std_hashmap", n), &n, |b, _| {
            b.iter(|| {
                let new = key(oldest + n);
                let flow =
                    Flow { backend: BackendId(1), state: FlowState::TcpActive, last_seen: 1 };
                let inserted = reference.insert(black_box(new), flow);
                let removed = reference.remove(&key(oldest));
                oldest += 1;
                (inserted.is_none(), removed.is_some())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = lookup, insert
}
criterion_main!(benches);
