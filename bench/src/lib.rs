//! xdplb's benchmark harness: a BPF_PROG_RUN live-frame generator and an
//! XDP sink in namespaces of their own, reference forwarders, and the
//! comparison that runs them all against xdplb and reports ratios.

pub mod alloc_count; // counting global allocator for the hot-path allocation test
pub mod bpf; // the three XDP programs, loading, and BPF_PROG_RUN (unsafe here and in alloc_count only)
pub mod compare; // interleaved runs of every forwarder, latency at half rate
pub mod cpu; // per-thread CPU time from /proc
pub mod gen; // the live-frame traffic generator
pub mod refs; // XDP_TX reflector, testpmd, kernel forwarding
pub mod report; // rows, terminal table, JSON, SVG
pub mod sink; // counting, dropping, latency-sampling XDP sink
pub mod stats; // min/median/max, pacing, sampling arithmetic
pub mod topo; // namespaces, veth, threaded NAPI, pinning
pub mod xdplb; // running the real xdplb binary as the device under test
