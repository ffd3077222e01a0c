//! `frame_verdict`: arbitrary bytes as an Ethernet frame through the worker's
//! decision, checked against a small reference model that reads the headers
//! with plain byte indexing and shares no code with `dataplane::wire`.
//!
//! Input: one mode byte, then the frame. Mode bit 0 rewrites the outer IPv4
//! header checksum first (so mutations past the checksum are reachable);
//! bit 1 runs the frame a second time (flow stickiness).

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use dataplane::counters::LocalCounters;
use dataplane::flow::Timeouts;
use dataplane::pipeline::Pipeline;
use dataplane::tables::{
    Backend, BackendId, L4Proto, Mac, Scheduler, Service, ServiceKey, Snapshot,
};
use dataplane::verdict::{DropReason, ForwardKind, Verdict};
use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::TcpFlags;

/// Mode bit: recompute the outer IPv4 header checksum before deciding.
pub const MODE_FIX_CHECKSUM: u8 = 0x01;
/// Mode bit: decide the same frame twice.
pub const MODE_TWICE: u8 = 0x02;

/// The director's own MAC: the source of every forwarded frame.
pub const LB_MAC: Mac = [0x02, 0, 0, 0x0a, 0, 0x65];
/// The router's MAC: the source of frames as they arrive.
pub const ROUTER_MAC: Mac = [0x02, 0, 0, 0x0a, 0, 0x01];
/// The VIP with two services (TCP 80 over three servers, UDP 53 over one).
pub const VIP1: [u8; 4] = [192, 168, 10, 110];
/// The VIP whose only service (TCP 443) has no server that takes flows.
pub const VIP2: [u8; 4] = [192, 168, 10, 111];
/// The client of the flows every run starts with.
pub const CLIENT: [u8; 4] = [192, 168, 20, 10];

/// Whether an ICMP error must be addressed to the VIP its quote left from to
/// be forwarded (README: "ICMP errors ... sent to a VIP"). The worker once
/// forwarded an error to any address whose quote named a known flow
/// (fuzz/artifacts-found/frame_verdict-icmp-not-to-vip); it checks now.
pub const ICMP_ERRORS_MUST_BE_TO_A_VIP: bool = true;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

/// A real server in the model: id, last address byte, weight, MAC.
struct ServerDef {
    id: u32,
    last: u8,
    weight: u32,
    mac: Option<Mac>,
}

/// A service in the model, in plain bytes.
struct ServiceDef {
    vip: [u8; 4],
    port: u16,
    proto: u8,
    scheduler: Scheduler,
    servers: &'static [ServerDef],
}

const SERVICES: &[ServiceDef] = &[
    ServiceDef {
        vip: VIP1,
        port: 80,
        proto: TCP,
        scheduler: Scheduler::Wrr,
        servers: &[
            ServerDef { id: 0, last: 103, weight: 2, mac: Some([0x02, 0, 0, 0x0a, 0, 0x67]) },
            ServerDef { id: 1, last: 104, weight: 1, mac: Some([0x02, 0, 0, 0x0a, 0, 0x68]) },
            // Not resolved yet: must never be chosen.
            ServerDef { id: 2, last: 105, weight: 5, mac: None },
        ],
    },
    ServiceDef {
        vip: VIP1,
        port: 53,
        proto: UDP,
        scheduler: Scheduler::Rr,
        servers: &[ServerDef {
            id: 3,
            last: 106,
            weight: 1,
            mac: Some([0x02, 0, 0, 0x0a, 0, 0x6a]),
        }],
    },
    ServiceDef {
        vip: VIP2,
        port: 443,
        proto: TCP,
        scheduler: Scheduler::Wrr,
        // Drained: keeps old flows, takes no new ones.
        servers: &[ServerDef {
            id: 4,
            last: 107,
            weight: 0,
            mac: Some([0x02, 0, 0, 0x0a, 0, 0x6b]),
        }],
    },
];

/// A flow key in the model's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelKey {
    /// Client address.
    pub src: [u8; 4],
    /// VIP.
    pub dst: [u8; 4],
    /// Client port.
    pub src_port: u16,
    /// Service port.
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// A flow every run creates before the fuzzed frame, so that established
/// flows and ICMP errors about them are reachable.
#[derive(Debug, Clone)]
pub struct Preload {
    /// The frame that opens it.
    pub frame: Vec<u8>,
    /// Its key.
    pub key: ModelKey,
}

/// The fixed world every input runs in.
#[derive(Debug)]
pub struct World {
    /// What the workers would read.
    pub snapshot: Snapshot,
    /// The flows opened before the fuzzed frame.
    pub preloads: Vec<Preload>,
}

fn ip(octets: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(octets)
}

fn l4(proto: u8) -> L4Proto {
    if proto == UDP {
        L4Proto::Udp
    } else {
        L4Proto::Tcp
    }
}

/// A frame from the router to the director, as the builders write it.
pub fn client_spec(src_port: u16, dst: [u8; 4], dst_port: u16) -> FrameSpec<'static> {
    FrameSpec {
        src_mac: ROUTER_MAC,
        dst_mac: LB_MAC,
        ..FrameSpec::new(ip(CLIENT), src_port, ip(dst), dst_port)
    }
}

/// The snapshot and the preloaded flows (built once).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let services = SERVICES
            .iter()
            .map(|s| {
                let key = ServiceKey { vip: ip(s.vip), port: s.port, proto: l4(s.proto) };
                let backends = s
                    .servers
                    .iter()
                    .map(|b| Backend {
                        id: BackendId(b.id),
                        addr: Ipv4Addr::new(192, 168, 10, b.last),
                        port: s.port,
                        weight: b.weight,
                        mac: b.mac,
                    })
                    .collect();
                (
                    Service { key, scheduler: s.scheduler, members: Vec::new(), persistence: None },
                    backends,
                )
            })
            .collect();
        let snapshot = match Snapshot::new(1, LB_MAC, services) {
            Ok(snapshot) => snapshot,
            Err(e) => panic!("the fixed snapshot is valid: {e}"),
        };
        let key = |src_port, dst_port, proto| ModelKey {
            src: CLIENT,
            dst: VIP1,
            src_port,
            dst_port,
            proto,
        };
        let preloads = vec![
            Preload {
                frame: build::tcp_frame(&client_spec(40000, VIP1, 80), TcpFlags::SYN, &[]),
                key: key(40000, 80, TCP),
            },
            Preload {
                frame: build::tcp_frame(&client_spec(40001, VIP1, 80), TcpFlags::SYN, &[]),
                key: key(40001, 80, TCP),
            },
            Preload {
                frame: build::udp_frame(&client_spec(5353, VIP1, 53), b"query"),
                key: key(5353, 53, UDP),
            },
        ];
        World { snapshot, preloads }
    })
}

/// What the reference model says must happen to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Dropped for this reason, untouched.
    Drop(DropReason),
    /// Part of a preloaded flow of service `SERVICES[service]`: to that flow's server.
    Established { mac: Mac, service: usize },
    /// A new flow of service `SERVICES[index]`: to one of its servers that
    /// takes flows; SYN or UDP is a new flow, other TCP is sloppy.
    New { service: usize, syn_or_udp: bool },
    /// An ICMP error about a preloaded flow: to that flow's server.
    IcmpError(Mac),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn quad(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// The Internet checksum (RFC 1071) of `bytes`, written out here so the
/// model does not share the implementation it checks.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u32::from(be16(bytes, i));
        i += 2;
    }
    if i < bytes.len() {
        sum += u32::from(bytes[i]) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Rewrites the outer IPv4 header checksum when a whole header is there.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let header_len = usize::from(frame[14] & 0x0f) * 4;
    if header_len < 20 || frame.len() < 14 + header_len {
        return;
    }
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = internet_checksum(&frame[14..14 + header_len]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// The reference model: the fate of `frame` after the preloads, whose flows
/// went to `flow_macs` (in `World::preloads` order). Also whether the frame
/// counts as carrying IPv4 options.
pub fn model(frame: &[u8], flow_macs: &[(ModelKey, Mac)]) -> (Expect, bool) {
    let drop = |reason| (Expect::Drop(reason), false);
    if frame.len() < 14 {
        return drop(DropReason::Truncated);
    }
    // Untagged IPv4 only: a VLAN tag is not IPv4 to the worker.
    if frame[12..14] != [0x08, 0x00] {
        return drop(DropReason::NotIpv4);
    }
    let ip = &frame[14..];
    if ip.len() < 20 {
        return drop(DropReason::Truncated);
    }
    if ip[0] >> 4 != 4 || ip[0] & 0x0f < 5 {
        return drop(DropReason::BadIpv4Header);
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if ip.len() < header_len {
        return drop(DropReason::Truncated);
    }
    let total_len = usize::from(be16(ip, 2));
    if total_len < header_len || total_len > ip.len() {
        return drop(DropReason::BadIpv4Header);
    }
    if internet_checksum(&ip[..header_len]) != 0 {
        return drop(DropReason::BadIpv4Checksum);
    }
    let more_fragments = ip[6] & 0x20 != 0;
    let offset = be16(ip, 6) & 0x1fff;
    if more_fragments || offset != 0 {
        return drop(DropReason::Fragment);
    }
    let options = header_len > 20;
    let (src, dst, proto) = (quad(ip, 12), quad(ip, 16), ip[9]);
    let payload = &ip[header_len..total_len];
    let expect = match proto {
        TCP | UDP => l4_expect(src, dst, proto, payload, flow_macs),
        ICMP => icmp_expect(dst, payload, flow_macs),
        _ => Expect::Drop(DropReason::NoService),
    };
    (expect, options)
}

fn l4_expect(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    l4: &[u8],
    flow_macs: &[(ModelKey, Mac)],
) -> Expect {
    let syn = if proto == TCP {
        if l4.len() < 20 {
            return Expect::Drop(DropReason::Truncated);
        }
        let data_offset = usize::from(l4[12] >> 4);
        if data_offset < 5 {
            return Expect::Drop(DropReason::BadIpv4Header);
        }
        if l4.len() < data_offset * 4 {
            return Expect::Drop(DropReason::Truncated);
        }
        l4[13] & 0x02 != 0
    } else {
        if l4.len() < 8 {
            return Expect::Drop(DropReason::Truncated);
        }
        let length = usize::from(be16(l4, 4));
        if length < 8 || length > l4.len() {
            return Expect::Drop(DropReason::BadIpv4Header);
        }
        true
    };
    let key = ModelKey { src, dst, src_port: be16(l4, 0), dst_port: be16(l4, 2), proto };
    let Some(service) =
        SERVICES.iter().position(|s| s.vip == dst && s.port == key.dst_port && s.proto == proto)
    else {
        return Expect::Drop(DropReason::NoService);
    };
    // Preloaded flows are active (opened by a SYN or a datagram): a SYN on
    // them does not reopen them, whatever else the segment carries.
    if let Some((_, mac)) = flow_macs.iter().find(|(k, _)| *k == key) {
        return Expect::Established { mac: *mac, service };
    }
    if !SERVICES[service].servers.iter().any(|b| b.weight > 0 && b.mac.is_some()) {
        return Expect::Drop(DropReason::NoRealServer);
    }
    Expect::New { service, syn_or_udp: syn }
}

fn icmp_expect(dst: [u8; 4], icmp: &[u8], flow_macs: &[(ModelKey, Mac)]) -> Expect {
    if icmp.len() < 8 {
        return Expect::Drop(DropReason::Truncated);
    }
    let unsupported = Expect::Drop(DropReason::IcmpUnsupported);
    // Destination unreachable, source quench, time exceeded, parameter problem.
    if ![3, 4, 11, 12].contains(&icmp[0]) {
        return unsupported;
    }
    let quoted = &icmp[8..];
    if quoted.len() < 20 || quoted[0] >> 4 != 4 || quoted[0] & 0x0f < 5 {
        return unsupported;
    }
    let header_len = usize::from(quoted[0] & 0x0f) * 4;
    let total_len = usize::from(be16(quoted, 2));
    if quoted.len() < header_len || total_len < header_len {
        return unsupported;
    }
    let proto = quoted[9];
    if proto != TCP && proto != UDP {
        return unsupported;
    }
    // The quote may be cut anywhere after its header; the ports must be there.
    let quoted_l4 = &quoted[header_len..total_len.min(quoted.len())];
    if quoted_l4.len() < 4 {
        return unsupported;
    }
    // The quote is the server's reply, VIP → client: the flow is its reverse.
    let key = ModelKey {
        src: quad(quoted, 16),
        dst: quad(quoted, 12),
        src_port: be16(quoted_l4, 2),
        dst_port: be16(quoted_l4, 0),
        proto,
    };
    // Addressed to the VIP the quoted datagram left from.
    let to_vip = dst == key.dst && SERVICES.iter().any(|s| s.vip == dst);
    match flow_macs.iter().find(|(k, _)| *k == key) {
        Some((_, mac)) if to_vip || !ICMP_ERRORS_MUST_BE_TO_A_VIP => Expect::IcmpError(*mac),
        // What the pipeline would call it if it checked.
        Some(_) => Expect::Drop(DropReason::IcmpNoFlow),
        None => Expect::Drop(DropReason::IcmpNoFlow),
    }
}

fn mac_at(frame: &[u8], at: usize) -> Mac {
    [frame[at], frame[at + 1], frame[at + 2], frame[at + 3], frame[at + 4], frame[at + 5]]
}

/// Runs one fuzz input and panics when the pipeline disagrees with the model.
pub fn check(data: &[u8]) {
    let (mode, frame) = match data.split_first() {
        Some((mode, frame)) => (*mode, frame),
        None => (0, data),
    };
    let mut input = frame.to_vec();
    if mode & MODE_FIX_CHECKSUM != 0 {
        fix_ipv4_checksum(&mut input);
    }
    let world = world();
    let mut pipeline = Pipeline::new(1024, Timeouts::default(), 42);
    pipeline.sync(&world.snapshot);
    let mut counters = LocalCounters::default();

    let mut flow_macs = Vec::with_capacity(world.preloads.len());
    for preload in &world.preloads {
        let mut frame = preload.frame.clone();
        let verdict = pipeline.process(&world.snapshot, &mut frame, 0, &mut counters);
        assert_eq!(verdict, Verdict::Forward(ForwardKind::NewFlow), "preload {:?}", preload.key);
        flow_macs.push((preload.key, mac_at(&frame, 0)));
    }
    assert_eq!(counters.view().ip_options(), 0);

    let (expect, options) = model(&input, &flow_macs);
    let mut frame = input.clone();
    let verdict = pipeline.process(&world.snapshot, &mut frame, 0, &mut counters);
    let mac = check_verdict(&input, &frame, verdict, expect);
    assert_eq!(counters.view().ip_options(), u64::from(options), "IPv4 options counted");

    if mode & MODE_TWICE != 0 {
        let mut again = input.clone();
        let second = pipeline.process(&world.snapshot, &mut again, 0, &mut counters);
        let expect_again = match (expect, mac) {
            // Now the flow exists and stays on its server, unless the segment
            // carried FIN or RST (the flow is closing) and SYN (which reopens
            // a closing flow: scheduled afresh).
            (Expect::New { service, .. } | Expect::Established { service, .. }, Some(mac)) => {
                let tcp_flags = tcp_flags(&input);
                if tcp_flags & 0x02 != 0 && tcp_flags & 0x05 != 0 {
                    Expect::New { service, syn_or_udp: true }
                } else {
                    Expect::Established { mac, service }
                }
            }
            (other, _) => other,
        };
        check_verdict(&input, &again, second, expect_again);
    }
}

/// The TCP flags byte of a frame the model accepted as TCP.
fn tcp_flags(frame: &[u8]) -> u8 {
    let header_len = usize::from(frame[14] & 0x0f) * 4;
    if frame[14 + 9] != TCP {
        return 0;
    }
    frame[14 + header_len + 13]
}

/// Checks one verdict and the frame as it left against the model; returns
/// the MAC a forwarded frame went to.
fn check_verdict(input: &[u8], out: &[u8], verdict: Verdict, expect: Expect) -> Option<Mac> {
    assert_eq!(out.len(), input.len(), "the frame keeps its length");
    let kind = match verdict {
        Verdict::Drop(reason) => {
            assert_eq!(Expect::Drop(reason), expect, "dropped");
            assert_eq!(out, input, "a dropped frame is not touched");
            return None;
        }
        Verdict::Forward(kind) => kind,
    };
    // Only the Ethernet addresses change: EtherType, IP and L4 bytes leave as they came.
    assert_eq!(&out[12..], &input[12..], "bytes after the MACs unchanged ({verdict:?})");
    assert_eq!(mac_at(out, 6), LB_MAC, "source MAC is ours ({verdict:?})");
    let dst = mac_at(out, 0);
    match expect {
        Expect::Drop(reason) => panic!("forwarded {kind:?} to {dst:02x?}, model: drop {reason:?}"),
        Expect::Established { mac, .. } => {
            assert_eq!((kind, dst), (ForwardKind::Established, mac), "an established flow")
        }
        Expect::IcmpError(mac) => {
            assert_eq!((kind, dst), (ForwardKind::IcmpError, mac), "an ICMP error")
        }
        Expect::New { service, syn_or_udp } => {
            let want = if syn_or_udp { ForwardKind::NewFlow } else { ForwardKind::SloppyTcp };
            assert_eq!(kind, want, "a new flow");
            let takes = SERVICES[service].servers.iter().filter(|b| b.weight > 0);
            assert!(
                takes.filter_map(|b| b.mac).any(|m| m == dst),
                "forwarded to {dst:02x?}, not a server of service {service} that takes flows"
            );
        }
    }
    Some(dst)
}
