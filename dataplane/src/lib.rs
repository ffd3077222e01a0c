//! xdplb's data plane: the XDP steering program, AF_XDP sockets and the
//! pinned workers that forward VIP traffic by direct server return.
//!
//! Pure modules (no syscalls, testable anywhere) are listed first; the
//! modules that touch the kernel come after them.

// Pure: what a frame is, what happens to it, and the state that decides it.
pub mod affinity; // persistence templates shared lock-free by all workers
pub mod counters; // per-worker counters on their own cache lines, summed by control
pub mod flow; // bounded per-worker flow table with IPVS-like idle timeouts
pub mod pipeline; // frame → verdict → rewritten frame, without I/O
pub mod sched; // real-server schedulers: wrr (as ip_vs_wrr.c) and rr
pub mod tables; // the immutable snapshot control publishes to the workers
pub mod verdict; // verdicts and the reasons every pass and drop is counted by
pub mod wire; // checked zero-copy views over Ethernet, 802.1Q, IPv4, TCP, UDP, ICMP

// With side effects: the kernel-facing half.
#[allow(unsafe_code)]
pub mod steer; // the XDP steering program: build output, loader, maps, counters
pub mod worker; // one pinned thread per RX queue: rx → verdict → rewrite → tx
#[allow(unsafe_code)]
pub mod xsk; // AF_XDP sockets and rings; the only unsafe code in the crate
