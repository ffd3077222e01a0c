// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The traffic generator: run by BPF_PROG_RUN with live frames, each run
 * writes one frame from the template (live-frame pages are reused, and a
 * forwarder may have rewritten them in place), varies the client address and
 * port per frame, stamps the send time into the payload and returns XDP_TX,
 * which the kernel turns into a transmit out of the generator's interface. */

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "common.h"

#define ETH_HLEN_ 14
#define SRC_PORT_OFF (ETH_HLEN_ + 20)
#define TS_OFF_UDP 42
#define TS_OFF_TCP 54

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_config SEC(".maps");

/* Frames written on each CPU: the flow of the next frame follows from it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_frames SEC(".maps");

static __always_inline __u16 ipv4_checksum(const __u16 *words)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xdplb_bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_config *cfg = bpf_map_lookup_elem(&gen_config, &zero);
	__u64 *frames = bpf_map_lookup_elem(&gen_frames, &zero);

	if (!cfg || !frames)
		return XDP_ABORTED;
	if (data + GEN_HEADER_MAX > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, cfg->header, GEN_HEADER_MAX);

	__u64 n = *frames;
	*frames = n + 1;
	__u64 flow = cfg->flows ? n % cfg->flows : n;
	__u32 span = cfg->port_span ? cfg->port_span : 1;
	__u32 src_ip = cfg->src_ip_base + (__u32)(flow / span);
	__u16 src_port = cfg->src_port_base + (__u16)(flow % span);

	struct iphdr *ip = data + ETH_HLEN_;
	ip->saddr = bpf_htonl(src_ip);
	ip->check = 0;
	ip->check = ipv4_checksum((const __u16 *)ip);
	*(__u16 *)(data + SRC_PORT_OFF) = bpf_htons(src_port);

	__u64 now = bpf_ktime_get_ns();
	if (cfg->ts_offset == TS_OFF_TCP)
		__builtin_memcpy(data + TS_OFF_TCP, &now, sizeof(now));
	else
		__builtin_memcpy(data + TS_OFF_UDP, &now, sizeof(now));
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
