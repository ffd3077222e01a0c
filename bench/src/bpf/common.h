/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Layouts shared by the bench's XDP programs and their Rust loaders
 * (bench/src/bpf.rs mirrors every struct here, with a size assertion). */
#ifndef XDPLB_BENCH_COMMON_H
#define XDPLB_BENCH_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Bytes of every frame the generator rewrites from its template on each
 * run: Ethernet + IPv4 + TCP (54) + the 8-byte timestamp, rounded up. The
 * smallest frame the generator sends is this long. */
#define GEN_HEADER_MAX 64

/* The generator's settings, one entry of gen_config. Host byte order
 * unless named otherwise. */
struct gen_config {
	__u8 header[GEN_HEADER_MAX]; /* template: Ethernet, IPv4, UDP/TCP, payload start */
	__u32 flows;                 /* distinct 5-tuples cycled through; 0 = a new one per frame */
	__u32 src_ip_base;           /* first client address */
	__u16 src_port_base;         /* first client port */
	__u16 port_span;             /* client ports per client address (>= 1) */
	__u32 ts_offset;             /* where the 8-byte timestamp goes: 42 (UDP) or 54 (TCP) */
};

/* The sink's settings, one entry of sink_config. */
struct sink_config {
	__u32 sample_log2; /* record the latency of every 2^n-th frame; >= 32: none */
	__u32 ts_offset;   /* where the generator put its timestamp */
};

/* Indices of the sink's per-CPU counters. */
enum sink_stat {
	SINK_FRAMES = 0,
	SINK_BYTES = 1,
	SINK_SAMPLED = 2,   /* latencies written to the ring */
	SINK_RING_FULL = 3, /* samples lost: the ring was full */
	SINK_BAD_TS = 4,    /* sampled frame without a plausible timestamp */
	SINK_STAT_MAX = 5,
};

#endif
