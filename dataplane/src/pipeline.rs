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
                    let info = TcpSegmentInfo { syn: flags.syn(), fin_or_rst: flags.fin() || flags.rst() };
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
    let proto =
        L4Proto::from_ip_protocol(quoted.protocol()).ok_or(DropReason::IcmpUnsupported)?;
    let (vip_port, client_port) =
        ports(quoted.payload()).ok_or(DropReason::IcmpUnsupported)?;
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
