//! What a worker pays once per batch to see the current snapshot:
//! `SharedSnapshot::load` (an `ArcSwap` load) beside the obvious
//! alternative, a `Mutex<Arc<Snapshot>>` locked for an `Arc::clone`. Both
//! read the generation, as `Pipeline::sync` does first. One thread, no
//! publisher: the uncontended cost.
//!
//! Short runs (1 s warm-up, 2 s measurement); `cargo bench -p xdplb-bench
//! --bench snapshot -- --quick` is quicker still.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::tables::{
    Backend, BackendId, L4Proto, Scheduler, Service, ServiceKey, SharedSnapshot, Snapshot,
};

fn seed_lab_snapshot() -> Snapshot {
    let server = |id: u32, last: u8| Backend {
        id: BackendId(id),
        addr: Ipv4Addr::new(192, 168, 10, last),
        port: 80,
        weight: 1,
        mac: Some([2, 0, 0, 0x0a, 0, last]),
    };
    let service = Service {
        key: ServiceKey { vip: Ipv4Addr::new(192, 168, 10, 110), port: 80, proto: L4Proto::Tcp },
        scheduler: Scheduler::Wrr,
        members: Vec::new(),
        persistence: None,
    };
    Snapshot::new(
        1,
        [2, 0, 0, 0x0a, 0, 0x65],
        vec![(service, vec![server(0, 103), server(1, 104)])],
    )
    .expect("the seed lab snapshot is valid")
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_load");
    group.throughput(Throughput::Elements(1));
    let shared = SharedSnapshot::new(seed_lab_snapshot());
    group.bench_function("arc_swap_load", |b| {
        b.iter(|| {
            let snapshot = black_box(&shared).load();
            snapshot.generation
        })
    });
    let locked = Mutex::new(Arc::new(seed_lab_snapshot()));
    group.bench_function("mutex_arc_clone", |b| {
        b.iter(|| {
            let snapshot = match black_box(&locked).lock() {
                Ok(guard) => Arc::clone(&guard),
                Err(poisoned) => Arc::clone(&poisoned.into_inner()),
            };
            snapshot.generation
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = load
}
criterion_main!(benches);
