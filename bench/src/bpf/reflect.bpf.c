// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The kernel's own limit for bouncing a frame out of the interface it came
 * in on: swap the Ethernet addresses, count per CPU, XDP_TX. Stands in for
 * upstream's `xdp-bench tx` (which does not load on this kernel). */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reflect_frames SEC(".maps");

SEC("xdp")
int xdplb_bench_reflect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *eth = data;
	__u8 tmp[6];
	__u32 zero = 0;
	__u64 *frames;

	if (data + 14 > data_end)
		return XDP_PASS;
	__builtin_memcpy(tmp, eth, 6);
	__builtin_memcpy(eth, eth + 6, 6);
	__builtin_memcpy(eth + 6, tmp, 6);
	frames = bpf_map_lookup_elem(&reflect_frames, &zero);
	if (frames)
		*frames += 1;
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
