// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The sink: counts every frame that arrives, per CPU, and drops it. For
 * every 2^n-th frame it reads the generator's send timestamp from the
 * payload and writes now - timestamp to a ring buffer that userspace turns
 * into a histogram. Also serves as the XDP_DROP peer that measures the
 * generator's own ceiling. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "common.h"

/* Timestamps further in the past than this are not ours (or are stale). */
#define MAX_PLAUSIBLE_NS (10ULL * 1000 * 1000 * 1000)
#define MAX_TS_OFFSET 1024

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_config);
} sink_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} sink_samples SEC(".maps");

static __always_inline __u64 *stat(__u32 index)
{
	return bpf_map_lookup_elem(&sink_stats, &index);
}

static __always_inline void bump(__u32 index)
{
	__u64 *counter = stat(index);

	if (counter)
		*counter += 1;
}

SEC("xdp")
int xdplb_bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct sink_config *cfg = bpf_map_lookup_elem(&sink_config, &zero);
	__u64 *frames = stat(SINK_FRAMES);
	__u64 *bytes = stat(SINK_BYTES);

	if (!cfg || !frames || !bytes)
		return XDP_DROP;
	__u64 n = *frames;
	*frames = n + 1;
	*bytes += data_end - data;

	__u32 shift = cfg->sample_log2;
	if (shift >= 32 || (n & ((1ULL << shift) - 1)) != 0)
		return XDP_DROP;

	__u32 offset = cfg->ts_offset;
	if (offset > MAX_TS_OFFSET)
		return XDP_DROP;
	void *at = data + offset;
	if (at + sizeof(__u64) > data_end) {
		bump(SINK_BAD_TS);
		return XDP_DROP;
	}
	__u64 sent;
	__builtin_memcpy(&sent, at, sizeof(sent));
	__u64 now = bpf_ktime_get_ns();
	if (sent == 0 || sent > now || now - sent > MAX_PLAUSIBLE_NS) {
		bump(SINK_BAD_TS);
		return XDP_DROP;
	}
	__u64 latency = now - sent;
	if (bpf_ringbuf_output(&sink_samples, &latency, sizeof(latency), BPF_RB_NO_WAKEUP))
		bump(SINK_RING_FULL);
	else
		bump(SINK_SAMPLED);
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
