// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* xdplb's steering program: frames for a configured VIP service go to the
 * AF_XDP socket of their RX queue; everything else goes to the kernel.
 * Every pass has a reason and a per-CPU counter, because a frame that
 * reaches a socket can never come back to the kernel. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_MF_OFFSET_MASK 0x3fff
#define ICMP_DEST_UNREACH_ 3
#define ICMP_SOURCE_QUENCH_ 4
#define ICMP_TIME_EXCEEDED_ 11
#define ICMP_PARAMETERPROB_ 12
#define ICMP_HEADER_LEN 8

static __always_inline int count(__u32 stat, int action)
{
	__u64 *counter = bpf_map_lookup_elem(&xdplb_stats, &stat);

	if (counter)
		*counter += 1;
	return action;
}

static __always_inline int pass(__u32 stat)
{
	return count(stat, XDP_PASS);
}

static __always_inline int to_socket(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;

	/* bpf_redirect_map would fall back to XDP_PASS silently; look first so
	 * the fallback is counted. */
	if (!bpf_map_lookup_elem(&xdplb_xsks, &queue))
		return pass(STAT_NO_SOCKET);
	count(STAT_REDIRECTED, XDP_REDIRECT);
	return bpf_redirect_map(&xdplb_xsks, queue, XDP_PASS);
}

static __always_inline int is_icmp_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH_ || type == ICMP_SOURCE_QUENCH_ ||
	       type == ICMP_TIME_EXCEEDED_ || type == ICMP_PARAMETERPROB_;
}

/* An ICMP error to a VIP is ours only if the datagram it quotes left one of
 * our services (source VIP:port), so errors about the host's own traffic
 * still reach its kernel. */
static __always_inline int steer_icmp(struct xdp_md *ctx, void *icmp, void *data_end)
{
	__u8 *hdr = icmp;
	struct iphdr *inner;
	struct service_key key = {};
	__u16 *ports;
	__u32 inner_len;

	if ((void *)(hdr + ICMP_HEADER_LEN) > data_end)
		return pass(STAT_TRUNCATED);
	if (!is_icmp_error(hdr[0]))
		return pass(STAT_NOT_SERVICE);
	inner = (void *)(hdr + ICMP_HEADER_LEN);
	if ((void *)(inner + 1) > data_end)
		return pass(STAT_TRUNCATED);
	if (inner->version != 4 || inner->ihl < 5)
		return pass(STAT_BAD_IPV4_HEADER);
	inner_len = inner->ihl * 4;
	ports = (void *)inner + inner_len;
	if ((void *)(ports + 2) > data_end)
		return pass(STAT_TRUNCATED);
	key.vip = inner->saddr;
	key.port = ports[0];
	key.proto = inner->protocol;
	if (!bpf_map_lookup_elem(&xdplb_services, &key))
		return pass(STAT_NOT_SERVICE);
	return to_socket(ctx);
}

SEC("xdp")
int xdplb_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct service_key key = {};
	__u32 hdr_len, total_len;
	__u16 *ports;

	if ((void *)(eth + 1) > data_end)
		return pass(STAT_TRUNCATED);
	if (eth->h_proto == bpf_htons(ETH_P_8021Q_) || eth->h_proto == bpf_htons(ETH_P_8021AD_))
		return pass(STAT_VLAN);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(STAT_NOT_IPV4);

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return pass(STAT_TRUNCATED);
	if (ip->version != 4 || ip->ihl < 5)
		return pass(STAT_BAD_IPV4_HEADER);
	hdr_len = ip->ihl * 4;
	total_len = bpf_ntohs(ip->tot_len);
	if (total_len < hdr_len)
		return pass(STAT_BAD_IPV4_HEADER);
	if ((void *)ip + total_len > data_end)
		return pass(STAT_TRUNCATED);

	if (!bpf_map_lookup_elem(&xdplb_vips, &ip->daddr))
		return pass(STAT_NOT_VIP);

	/* Fragments to a VIP: non-first ones carry no ports, and the kernel
	 * must not reassemble traffic for a service it does not serve. The
	 * worker drops them and counts them (see the README). */
	if (ip->frag_off & bpf_htons(IP_MF_OFFSET_MASK))
		return to_socket(ctx);

	if (ip->protocol == IPPROTO_ICMP)
		return steer_icmp(ctx, (void *)ip + hdr_len, data_end);

	ports = (void *)ip + hdr_len;
	if ((void *)(ports + 2) > data_end)
		return pass(STAT_TRUNCATED);
	key.vip = ip->daddr;
	key.port = ports[1];
	key.proto = ip->protocol;
	if (!bpf_map_lookup_elem(&xdplb_services, &key))
		return pass(STAT_NOT_SERVICE);
	return to_socket(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
