//! The wrr pick (the kernel's `ip_vs_wrr.c` sequence) beside the naive
//! scheduler: each server's index repeated weight ÷ gcd times, walked
//! round-robin. Same shares per cycle; the naive list just spends memory
//! (and, on a weight change, a rebuild) to make each pick one load.
//!
//! Short runs (1 s warm-up, 2 s measurement); `cargo bench -p xdplb-bench
//! --bench wrr -- --quick` is quicker still.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::sched::Wrr;

/// The reference: an expanded weight list indexed round-robin.
struct Expanded {
    slots: Vec<usize>,
    next: usize,
}

impl Expanded {
    fn new(weights: &[u32]) -> Self {
        let gcd = weights.iter().filter(|&&w| w > 0).fold(0, |g, &w| gcd(g, w)).max(1);
        let slots = weights
            .iter()
            .enumerate()
            .flat_map(|(server, &w)| std::iter::repeat_n(server, (w / gcd) as usize))
            .collect();
        Self { slots, next: 0 }
    }

    fn pick(&mut self) -> Option<usize> {
        let server = *self.slots.get(self.next)?;
        self.next = if self.next + 1 == self.slots.len() { 0 } else { self.next + 1 };
        Some(server)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("wrr_pick");
    group.throughput(Throughput::Elements(1));
    // The seed lab's two servers at 3:1, and a larger pool of mixed weights.
    let cases: [(&str, Vec<u32>); 2] =
        [("2_servers_3_1", vec![3, 1]), ("16_servers_1_to_16", (1..=16).collect())];
    for (name, weights) in cases {
        // Both give each server the same share over a cycle.
        let cycle: u32 = weights.iter().sum();
        let mut ours = Wrr::new(&weights);
        let mut reference = Expanded::new(&weights);
        let mut shares = (vec![0u32; weights.len()], vec![0u32; weights.len()]);
        for _ in 0..cycle {
            shares.0[ours.next().expect("weights > 0")] += 1;
            shares.1[reference.pick().expect("weights > 0")] += 1;
        }
        assert_eq!(shares.0, weights, "{name}: wrr shares");
        assert_eq!(shares.1, weights, "{name}: reference shares");

        group.bench_with_input(BenchmarkId::new("wrr", name), &weights, |b, _| {
            b.iter(|| black_box(&mut ours).next())
        });
        group.bench_with_input(BenchmarkId::new("expanded_list", name), &weights, |b, _| {
            b.iter(|| black_box(&mut reference).pick())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = pick
}
criterion_main!(benches);
