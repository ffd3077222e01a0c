//! The decision for one frame, without I/O: parse, find the service, follow
//! or create the flow, choose a real server, rewrite the Ethernet addresses.
//! Only the MACs change; IP and L4 bytes leave exactly as they came.

use crate::counters::LocalCounters;
use crate::flow::{FlowKey, FlowState, FlowTable, Timeouts};
use crate::sched::Scheduler;
use crate::tables::{BackendId, L4Proto, Mac, ServiceKey, Snapshot};
use crate::verdict::{DropReason, ForwardKind, Verdict};
use crate::wire::{
    ports, EtherType, EthernetFrame, IcmpPacket, Ipv4Packet, TcpHeader, UdpHeader, WireError,
};

/// Scheduler state of one service, kept across snapshots while the
/// service's real servers stay the same.
#[derive(Debug)]
struct ServiceSched {
    key: ServiceKey,
    members: Vec<BackendId>,
    weights: Vec<u32>,
    scheduler: Scheduler,
}

/// A worker's private decision state: its flow table and schedulers.
#[derive(Debug)]
pub struct Pipeline {
    flows: FlowTable,
    /// One per service, in the order of `Snapshot::services()`.
    scheds: Vec<ServiceSched>,
    generation: Option<u64>,
}

/// What a frame is, once parsed far enough to decide.
enum Parsed {
    Flow { key: FlowKey, tcp: Option<TcpSegmentInfo> },
    IcmpError { key: FlowKey },
}

#[derive(Clone, Copy)]
struct TcpSegmentInfo {
    syn: bool,
    fin_or_rst: bool,
}

impl Pipeline {
    /// A pipeline whose flow table holds `flow_capacity` flows.
    pub fn new(flow_capacity: usize, timeouts: Timeouts, hash_seed: u64) -> Self {
        Pipeline {
            flows: FlowTable::new(flow_capacity, timeouts, hash_seed),
            scheds: Vec::new(),
            generation: None,
        }
    }

    /// The flow table (for status and tests).
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Brings the schedulers in line with `snapshot` when it is new. A
    /// service whose server list is unchanged keeps its position and
    /// takes weight changes as the kernel does; others start afresh.
    pub fn sync(&mut self, snapshot: &Snapshot) {
        if self.generation == Some(snapshot.generation) {
            return;
        }
        self.generation = Some(snapshot.generation);
        let mut old = std::mem::take(&mut self.scheds);
        for service in snapshot.services() {
            let weights: Vec<u32> = service
                .members
                .iter()
                .map(|id| snapshot.backend(*id).map_or(0, |b| b.schedulable_weight()))
                .collect();
            let kept = old
                .iter()
                .position(|s| s.key == service.key && s.members == service.members)
                .map(|i| old.swap_remove(i))
                .filter(|s| s.scheduler.kind() == service.scheduler);
            let sched = match kept {
                Some(mut s) => {
                    if s.weights != weights {
                        s.scheduler.set_weights(&weights);
                        s.weights = weights;
                    }
                    s
                }
                None => ServiceSched {
                    key: service.key,
                    members: service.members.clone(),
                    scheduler: Scheduler::new(service.scheduler, &weights),
                    weights,
                },
            };
            self.scheds.push(sched);
        }
    }

    /// Expires up to `max_slots` flow-table slots' worth of idle flows.
    pub fn expire(&mut self, now: u32, max_slots: usize) -> usize {
        self.flows.expire(now, max_slots)
    }

    /// Decides one frame and, if it is forwarded, rewrites its Ethernet
    /// addresses in place. `sync` must have seen `snapshot`.
    pub fn process(
        &mut self,
        snapshot: &Snapshot,
        frame: &mut [u8],
        now: u32,
        counters: &mut LocalCounters,
    ) -> Verdict {
        match self.decide(snapshot, frame, now, counters) {
            Ok((kind, mac)) => match EthernetFrame::new_checked(frame) {
                Ok(mut eth) => {
                    eth.set_dst(mac);
                    eth.set_src(snapshot.local_mac);
                    Verdict::Forward(kind)
                }
                Err(_) => Verdict::Drop(DropReason::Truncated),
            },
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn decide(
        &mut self,
        snapshot: &Snapshot,
        frame: &[u8],
        now: u32,
        counters: &mut LocalCounters,
    ) -> Result<(ForwardKind, Mac), DropReason> {
        match parse(frame, counters)? {
            Parsed::IcmpError { key } => {
                let flow = self.flows.lookup(&key, now).ok_or(DropReason::IcmpNoFlow)?;
                let backend = snapshot.backend(flow.backend).ok_or(DropReason::IcmpNoFlow)?;
                let mac = backend.mac.ok_or(DropReason::NoMac)?;
                Ok((ForwardKind::IcmpError, mac))
            }
            Parsed::Flow { key, tcp } => self.forward_flow(snapshot, key, tcp, now),
        }
    }

    fn forward_flow(
        &mut self,
        snapshot: &Snapshot,
        key: FlowKey,
        tcp: Option<TcpSegmentInfo>,
        now: u32,
    ) -> Result<(ForwardKind, Mac), DropReason> {
        let service_key = ServiceKey { vip: key.dst, port: key.dst_port, proto: key.proto };
        let service = snapshot.service_index(&service_key).ok_or(DropReason::NoService)?;

        if let Some(flow) = self.flows.lookup(&key, now) {
            let reopened = tcp.is_some_and(|t| t.syn && flow.state.reopens_on_syn());
            match snapshot.backend(flow.backend) {
                // A server that left the configuration loses its flows:
                // the packet is scheduled afresh below.
                None => {}
                Some(_) if reopened => {}
                Some(backend) => {
                    if let Some(t) = tcp {
                        flow.state = flow.state.after_tcp_segment(t.fin_or_rst);
                    }
                    let mac = backend.mac.ok_or(DropReason::NoMac)?;
                    return Ok((ForwardKind::Established, mac));
                }
            }
        }

        let sched = self.scheds.get_mut(service).ok_or(DropReason::NoService)?;
        let member = sched.scheduler.next().ok_or(DropReason::NoRealServer)?;
        let id = *sched.members.get(member).ok_or(DropReason::NoRealServer)?;
        let mac = snapshot.backend(id).and_then(|b| b.mac).ok_or(DropReason::NoRealServer)?;
        let (state, kind) = match tcp {
            None => (FlowState::Udp, ForwardKind::NewFlow),
            Some(t) => {
                let state = FlowState::TcpActive.after_tcp_segment(t.fin_or_rst);
                let kind = if t.syn { ForwardKind::NewFlow } else { ForwardKind::SloppyTcp };
                (state, kind)
            }
        };
        self.flows.insert(key, id, state, now).map_err(|_| DropReason::FlowTableFull)?;
        Ok((kind, mac))
    }
}

fn wire_drop(error: WireError) -> DropReason {
    match error {
        WireError::Truncated { .. } => DropReason::Truncated,
        _ => DropReason::BadIpv4Header,
    }
}

/// Parses what the decision needs. Checks the IPv4 header checksum (L4
/// checksums are not ours to check: we never change L4 bytes).
fn parse(frame: &[u8], counters: &mut LocalCounters) -> Result<Parsed, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(wire_drop)?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(wire_drop)?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpv4Checksum);
    }
    if ip.is_fragment() {
        return Err(DropReason::Fragment);
    }
    if !ip.options().is_empty() {
        counters.add_ip_options();
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        1 => parse_icmp_error(ip.payload()),
        protocol => {
            let proto = L4Proto::from_ip_protocol(protocol).ok_or(DropReason::NoService)?;
            let (src_port, dst_port, tcp) = match proto {
                L4Proto::Tcp => {
                    let tcp = TcpHeader::new_checked(ip.payload()).map_err(wire_drop)?;
                    let flags = tcp.flags();
                    let info =
                        TcpSegmentInfo { syn: flags.syn(), fin_or_rst: flags.fin() || flags.rst() };
                    (tcp.src_port(), tcp.dst_port(), Some(info))
                }
                L4Proto::Udp => {
                    let udp = UdpHeader::new_checked(ip.payload()).map_err(wire_drop)?;
                    (udp.src_port(), udp.dst_port(), None)
                }
            };
            Ok(Parsed::Flow { key: FlowKey { src, dst, src_port, dst_port, proto }, tcp })
        }
    }
}

/// An ICMP error to a VIP quotes a datagram a real server sent from the
/// VIP to a client; the flow it belongs to is that datagram reversed.
fn parse_icmp_error(icmp: &[u8]) -> Result<Parsed, DropReason> {
    let icmp = IcmpPacket::new_checked(icmp).map_err(wire_drop)?;
    if !icmp.is_error() {
        return Err(DropReason::IcmpUnsupported);
    }
    let quoted = icmp.quoted_ipv4().map_err(|_| DropReason::IcmpUnsupported)?;
    let proto = L4Proto::from_ip_protocol(quoted.protocol()).ok_or(DropReason::IcmpUnsupported)?;
    let (vip_port, client_port) = ports(quoted.payload()).ok_or(DropReason::IcmpUnsupported)?;
    Ok(Parsed::IcmpError {
        key: FlowKey {
            src: quoted.dst_addr(),
            dst: quoted.src_addr(),
            src_port: client_port,
            dst_port: vip_port,
            proto,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::tables::{Backend, Scheduler as SchedKind, Service};
    use crate::wire::build::{self, FrameSpec};
    use crate::wire::{EtherType, TcpFlags};

    const LB_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x65];
    const ROUTER_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x01];
    const WEB1_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x67];
    const WEB2_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x68];
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 10);

    fn backend(id: u32, last: u8, weight: u32, mac: Option<Mac>) -> Backend {
        Backend {
            id: BackendId(id),
            addr: Ipv4Addr::new(192, 168, 10, last),
            port: 80,
            weight,
            mac,
        }
    }

    fn snapshot(generation: u64, backends: Vec<Backend>) -> Snapshot {
        let key = ServiceKey { vip: VIP, port: 80, proto: L4Proto::Tcp };
        let udp = ServiceKey { vip: VIP, port: 53, proto: L4Proto::Udp };
        let udp_backend =
            Backend { id: BackendId(100), port: 53, ..backend(100, 104, 1, Some(WEB2_MAC)) };
        Snapshot::new(
            generation,
            LB_MAC,
            vec![
                (Service { key, scheduler: SchedKind::Wrr, members: vec![] }, backends),
                (
                    Service { key: udp, scheduler: SchedKind::Wrr, members: vec![] },
                    vec![udp_backend],
                ),
            ],
        )
        .unwrap()
    }

    fn two_servers(weights: (u32, u32)) -> Snapshot {
        snapshot(
            1,
            vec![
                backend(0, 103, weights.0, Some(WEB1_MAC)),
                backend(1, 104, weights.1, Some(WEB2_MAC)),
            ],
        )
    }

    fn spec(port: u16) -> FrameSpec<'static> {
        FrameSpec { src_mac: ROUTER_MAC, dst_mac: LB_MAC, ..FrameSpec::new(CLIENT, port, VIP, 80) }
    }

    fn syn(port: u16) -> Vec<u8> {
        build::tcp_frame(&spec(port), TcpFlags::SYN, &[])
    }

    fn ack(port: u16) -> Vec<u8> {
        build::tcp_frame(&spec(port), TcpFlags::ACK, b"GET / HTTP/1.0\r\n\r\n")
    }

    struct Harness {
        pipeline: Pipeline,
        snapshot: Snapshot,
        counters: LocalCounters,
        now: u32,
    }

    impl Harness {
        fn new(snapshot: Snapshot) -> Self {
            Self::with_capacity(snapshot, 1024)
        }

        fn with_capacity(snapshot: Snapshot, capacity: usize) -> Self {
            let mut pipeline = Pipeline::new(capacity, Timeouts::default(), 42);
            pipeline.sync(&snapshot);
            Harness { pipeline, snapshot, counters: LocalCounters::default(), now: 0 }
        }

        fn publish(&mut self, snapshot: Snapshot) {
            self.pipeline.sync(&snapshot);
            self.snapshot = snapshot;
        }

        /// Runs one frame; returns the verdict and the frame as it leaves.
        fn run(&mut self, frame: &[u8]) -> (Verdict, Vec<u8>) {
            let mut buf = frame.to_vec();
            let verdict =
                self.pipeline.process(&self.snapshot, &mut buf, self.now, &mut self.counters);
            self.counters.add_verdict(verdict);
            (verdict, buf)
        }

        fn server_of(&mut self, frame: &[u8]) -> Option<Mac> {
            match self.run(frame) {
                (Verdict::Forward(_), out) => Some(out[0..6].try_into().unwrap()),
                _ => None,
            }
        }
    }

    fn rewritten(frame: &[u8], dst: Mac) -> Vec<u8> {
        let mut out = frame.to_vec();
        out[0..6].copy_from_slice(&dst);
        out[6..12].copy_from_slice(&LB_MAC);
        out
    }

    fn with_bad_ip_checksum(mut frame: Vec<u8>) -> Vec<u8> {
        frame[14 + 10] ^= 0xff;
        frame
    }

    fn fragment(more: bool, offset: u16) -> Vec<u8> {
        let mut frame = syn(40000);
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_dont_frag(false);
        ip.set_more_frags(more);
        ip.set_frag_offset(offset);
        ip.fill_checksum();
        frame
    }

    fn icmp_about(client_port: u16) -> Vec<u8> {
        // The quoted datagram is the real server's reply: VIP:80 → client.
        let reply = build::tcp_frame(
            &FrameSpec::new(VIP, 80, CLIENT, client_port),
            TcpFlags::SYN | TcpFlags::ACK,
            &[],
        );
        let outer = FrameSpec {
            src_mac: ROUTER_MAC,
            dst_mac: LB_MAC,
            ..FrameSpec::new(Ipv4Addr::new(192, 168, 10, 1), 0, VIP, 0)
        };
        build::icmp_frag_needed_frame(&outer, 1400, &reply)
    }

    /// Katran-style table: description, input frame, expected verdict and,
    /// for forwarded frames, the expected output frame. Stateless cases
    /// against a fresh pipeline with weights 1:1.
    #[test]
    fn verdict_table() {
        let udp = build::udp_frame(
            &FrameSpec {
                src_mac: ROUTER_MAC,
                dst_mac: LB_MAC,
                ..FrameSpec::new(CLIENT, 5353, VIP, 53)
            },
            b"query",
        );
        let options = build::tcp_frame(
            &FrameSpec { ip_options: &[0x94, 0x04, 0, 0], ..spec(40001) },
            TcpFlags::SYN,
            &[],
        );
        let no_service = build::tcp_frame(
            &FrameSpec {
                src_mac: ROUTER_MAC,
                dst_mac: LB_MAC,
                ..FrameSpec::new(CLIENT, 40000, VIP, 22)
            },
            TcpFlags::SYN,
            &[],
        );
        let gre = build::ipv4_frame(&spec(0), 47, &[0; 8]);
        let echo = build::icmp_echo_request_frame(
            &FrameSpec {
                src_mac: ROUTER_MAC,
                dst_mac: LB_MAC,
                ..FrameSpec::new(CLIENT, 0, VIP, 0)
            },
            1,
            1,
            b"ping",
        );
        let mut short_tcp = syn(40000);
        short_tcp.truncate(14 + 20 + 10);
        let mut ip = Ipv4Packet::new_unchecked(&mut short_tcp[14..]);
        ip.set_total_len(30);
        ip.fill_checksum();
        let mut bad_ihl = syn(40000);
        bad_ihl[14] = 0x44;
        let vlan = build::with_vlan(&syn(40000), EtherType::Vlan, 10);
        let arp = {
            let mut f = syn(40000);
            f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            f
        };

        type Case = (&'static str, Vec<u8>, Verdict, Option<Mac>);
        let cases: Vec<Case> = vec![
            (
                "TCP SYN: new flow to the first server",
                syn(40000),
                Verdict::Forward(ForwardKind::NewFlow),
                Some(WEB1_MAC),
            ),
            (
                "TCP ACK without entry: sloppy new flow",
                ack(40002),
                Verdict::Forward(ForwardKind::SloppyTcp),
                Some(WEB1_MAC),
            ),
            ("UDP datagram: new flow", udp, Verdict::Forward(ForwardKind::NewFlow), Some(WEB2_MAC)),
            (
                "IPv4 options: forwarded untouched",
                options,
                Verdict::Forward(ForwardKind::NewFlow),
                Some(WEB1_MAC),
            ),
            (
                "ICMP error about an unknown flow",
                icmp_about(40099),
                Verdict::Drop(DropReason::IcmpNoFlow),
                None,
            ),
            ("ICMP echo to the VIP", echo, Verdict::Drop(DropReason::IcmpUnsupported), None),
            ("port without a service", no_service, Verdict::Drop(DropReason::NoService), None),
            ("protocol without a service", gre, Verdict::Drop(DropReason::NoService), None),
            (
                "bad IPv4 header checksum",
                with_bad_ip_checksum(syn(40000)),
                Verdict::Drop(DropReason::BadIpv4Checksum),
                None,
            ),
            ("first fragment", fragment(true, 0), Verdict::Drop(DropReason::Fragment), None),
            ("later fragment", fragment(false, 185), Verdict::Drop(DropReason::Fragment), None),
            ("TCP header cut short", short_tcp, Verdict::Drop(DropReason::Truncated), None),
            ("IHL below 5", bad_ihl, Verdict::Drop(DropReason::BadIpv4Header), None),
            ("shorter than Ethernet", vec![0; 10], Verdict::Drop(DropReason::Truncated), None),
            ("802.1Q tagged", vlan, Verdict::Drop(DropReason::NotIpv4), None),
            ("ARP", arp, Verdict::Drop(DropReason::NotIpv4), None),
        ];
        for (what, frame, expected, mac) in cases {
            let mut h = Harness::new(two_servers((1, 1)));
            let (verdict, out) = h.run(&frame);
            assert_eq!(verdict, expected, "{what}");
            match mac {
                Some(mac) => {
                    assert_eq!(out, rewritten(&frame, mac), "{what}: only the MACs change")
                }
                None => assert_eq!(out, frame, "{what}: a dropped frame is not touched"),
            }
            // Every verdict moved exactly its own counter.
            let view = h.counters.view();
            let counted = match expected {
                Verdict::Forward(kind) => view.forwarded(kind),
                Verdict::Drop(reason) => view.dropped(reason),
            };
            assert_eq!((counted, view.forwarded_total() + view.dropped_total()), (1, 1), "{what}");
        }
    }

    #[test]
    fn ip_options_are_counted() {
        let mut h = Harness::new(two_servers((1, 1)));
        let frame = build::tcp_frame(
            &FrameSpec { ip_options: &[1, 1, 1, 0], ..spec(1) },
            TcpFlags::SYN,
            &[],
        );
        h.run(&frame);
        assert_eq!(h.counters.view().ip_options(), 1);
    }

    #[test]
    fn weights_3_to_1_split_new_flows_as_the_kernel() {
        let mut h = Harness::new(two_servers((3, 1)));
        let order: Vec<Mac> = (0..8).map(|p| h.server_of(&syn(41000 + p)).unwrap()).collect();
        let a = WEB1_MAC;
        let b = WEB2_MAC;
        assert_eq!(order, vec![a, a, a, b, a, a, a, b]);
    }

    #[test]
    fn a_flow_stays_on_its_server_while_others_rotate() {
        let mut h = Harness::new(two_servers((1, 1)));
        let first = h.server_of(&syn(40000)).unwrap();
        for p in 0..10 {
            h.server_of(&syn(50000 + p)).unwrap();
            h.now += 1;
            assert_eq!(h.server_of(&ack(40000)), Some(first), "segment {p} of the long flow");
        }
        assert_eq!(h.counters.view().forwarded(ForwardKind::Established), 10);
    }

    #[test]
    fn icmp_error_goes_to_the_server_of_the_quoted_flow() {
        let mut h = Harness::new(two_servers((1, 1)));
        let first = h.server_of(&syn(40000)).unwrap();
        let second = h.server_of(&syn(40001)).unwrap();
        assert_ne!(first, second);
        let (verdict, out) = h.run(&icmp_about(40001));
        assert_eq!(verdict, Verdict::Forward(ForwardKind::IcmpError));
        assert_eq!(out, rewritten(&icmp_about(40001), second));
    }

    #[test]
    fn weight_zero_drains_and_removal_reschedules() {
        let mut h = Harness::new(two_servers((1, 1)));
        assert_eq!(h.server_of(&syn(40000)), Some(WEB1_MAC));
        assert_eq!(h.server_of(&syn(40001)), Some(WEB2_MAC));

        // web1 inhibited: its flow keeps going, new flows avoid it.
        h.publish(snapshot(
            2,
            vec![backend(0, 103, 0, Some(WEB1_MAC)), backend(1, 104, 1, Some(WEB2_MAC))],
        ));
        assert_eq!(h.server_of(&ack(40000)), Some(WEB1_MAC));
        for p in 0..4 {
            assert_eq!(h.server_of(&syn(42000 + p)), Some(WEB2_MAC));
        }

        // web1 removed: its flow is scheduled afresh (and so ends at web2 with a RST).
        h.publish(snapshot(3, vec![backend(1, 104, 1, Some(WEB2_MAC))]));
        let (verdict, out) = h.run(&ack(40000));
        assert_eq!(verdict, Verdict::Forward(ForwardKind::SloppyTcp));
        assert_eq!(out[0..6], WEB2_MAC);
    }

    #[test]
    fn no_schedulable_server_drops_new_flows_only() {
        let mut h = Harness::new(two_servers((1, 1)));
        h.server_of(&syn(40000)).unwrap();
        h.publish(snapshot(2, vec![backend(0, 103, 0, Some(WEB1_MAC)), backend(1, 104, 1, None)]));
        assert_eq!(h.run(&syn(40001)).0, Verdict::Drop(DropReason::NoRealServer));
        assert_eq!(h.run(&ack(40000)).0, Verdict::Forward(ForwardKind::Established));
        // The MAC of a flow's server disappears: its packets cannot leave.
        h.publish(snapshot(3, vec![backend(0, 103, 0, None), backend(1, 104, 1, None)]));
        assert_eq!(h.run(&ack(40000)).0, Verdict::Drop(DropReason::NoMac));
    }

    #[test]
    fn full_table_refuses_new_flows_and_keeps_old_ones() {
        let mut h = Harness::with_capacity(two_servers((1, 1)), 4);
        for p in 0..4 {
            assert!(matches!(h.run(&syn(40000 + p)).0, Verdict::Forward(ForwardKind::NewFlow)));
        }
        assert_eq!(h.run(&syn(45000)).0, Verdict::Drop(DropReason::FlowTableFull));
        for p in 0..4 {
            assert_eq!(h.run(&ack(40000 + p)).0, Verdict::Forward(ForwardKind::Established));
        }
        // After the tcp timeout the old flows are gone and new ones fit.
        h.now += Timeouts::default().tcp + 1;
        assert_eq!(h.run(&syn(45000)).0, Verdict::Forward(ForwardKind::NewFlow));
    }

    #[test]
    fn fin_moves_a_flow_to_the_fin_timeout_and_syn_reopens_it() {
        let mut h = Harness::new(two_servers((1, 1)));
        let first = h.server_of(&syn(40000)).unwrap();
        let fin = build::tcp_frame(&spec(40000), TcpFlags::FIN | TcpFlags::ACK, &[]);
        assert_eq!(h.run(&fin).0, Verdict::Forward(ForwardKind::Established));
        // A SYN reusing the port of a closing flow is a new connection.
        let (verdict, out) = h.run(&syn(40000));
        assert_eq!(verdict, Verdict::Forward(ForwardKind::NewFlow));
        assert_ne!(out[0..6], first);
        // A closing flow expires after tcp_fin, not tcp.
        h.run(&fin);
        h.now += Timeouts::default().tcp_fin + 1;
        assert_eq!(h.run(&ack(40000)).0, Verdict::Forward(ForwardKind::SloppyTcp));
    }

    #[test]
    fn weight_change_keeps_flows_and_restarts_the_sequence() {
        let mut h = Harness::new(two_servers((1, 1)));
        let first = h.server_of(&syn(40000)).unwrap();
        h.publish(two_servers_generation((3, 1), 2));
        assert_eq!(h.server_of(&ack(40000)), Some(first));
        // As ip_vs_wrr_dest_changed: back to the head with the current
        // weight kept (1 ≤ new max 3), so this pass takes every server of
        // weight ≥ 1 before the cycle of 3:1 starts: A B, then A A A B.
        let order: Vec<Mac> = (0..6).map(|p| h.server_of(&syn(43000 + p)).unwrap()).collect();
        assert_eq!(order, vec![WEB1_MAC, WEB2_MAC, WEB1_MAC, WEB1_MAC, WEB1_MAC, WEB2_MAC]);
    }

    fn two_servers_generation(weights: (u32, u32), generation: u64) -> Snapshot {
        let mut s = two_servers(weights);
        s.generation = generation;
        s
    }

    proptest! {
        /// Whatever arrives: no panic, a verdict with a reason, and a
        /// forwarded frame differs from the input in its MACs only.
        #[test]
        fn arbitrary_frames_get_a_verdict_and_only_macs_change(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            as_ipv4 in any::<bool>(),
        ) {
            let mut frame = bytes;
            if as_ipv4 && frame.len() > 14 {
                frame[12] = 0x08;
                frame[13] = 0x00;
            }
            let mut h = Harness::new(two_servers((2, 1)));
            let (verdict, out) = h.run(&frame);
            prop_assert_eq!(out.len(), frame.len());
            match verdict {
                Verdict::Forward(_) => {
                    prop_assert_eq!(&out[12..], &frame[12..]);
                    prop_assert_eq!(&out[6..12], &LB_MAC[..]);
                }
                Verdict::Drop(_) => prop_assert_eq!(out, frame),
            }
            let view = h.counters.view();
            prop_assert_eq!(view.forwarded_total() + view.dropped_total(), 1);
        }

        /// Valid TCP frames to the service are always forwarded, whatever
        /// their ports, flags and options.
        #[test]
        fn valid_service_frames_are_forwarded(
            port in 1u16..,
            flags in any::<u16>(),
            options_words in 0usize..10,
        ) {
            let options = vec![1u8; options_words * 4];
            let frame = build::tcp_frame(
                &FrameSpec { ip_options: &options, ..spec(port) },
                TcpFlags::from_bits(flags & 0x1ff),
                b"x",
            );
            let mut h = Harness::new(two_servers((1, 1)));
            let (verdict, _) = h.run(&frame);
            prop_assert!(matches!(verdict, Verdict::Forward(_)), "{:?}", verdict);
        }
    }
}
