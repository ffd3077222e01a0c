/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Maps and shared structs of the steering program. Every struct here is
 * mirrored in Rust (dataplane/src/steer/mod.rs) with a size assertion. */
#ifndef XDPLB_MAPS_H
#define XDPLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XDPLB_MAX_SERVICES 4096
#define XDPLB_MAX_VIPS 1024
#define XDPLB_MAX_QUEUES 256

/* A virtual service. vip and port in network byte order, as on the wire. */
struct service_key {
	__u32 vip;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* Counter indices: mirror of dataplane::verdict::SteerStat. */
enum xdplb_stat {
	STAT_REDIRECTED = 0,
	STAT_NOT_IPV4 = 1,
	STAT_VLAN = 2,
	STAT_TRUNCATED = 3,
	STAT_BAD_IPV4_HEADER = 4,
	STAT_NOT_VIP = 5,
	STAT_NOT_SERVICE = 6,
	STAT_NO_SOCKET = 7,
	STAT_MAX = 8,
};

/* Configured services: presence is what matters; the value is reserved. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_SERVICES);
	__type(key, struct service_key);
	__type(value, __u32);
} xdplb_services SEC(".maps");

/* Every VIP address with at least one service: fragments and ICMP errors
 * carry no (usable) ports, so they are steered by address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} xdplb_vips SEC(".maps");

/* RX queue index -> AF_XDP socket. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDPLB_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xdplb_xsks SEC(".maps");

/* Per-CPU counters, one per enum xdplb_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xdplb_stats SEC(".maps");

#endif
