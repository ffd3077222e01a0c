//! Gratuitous ARP as keepalived 2.2.7 sends it when a director becomes master:
//! the frame, a checked ARP view that recognises GARPs and replies, the burst
//! schedule as a pure timer with time passed in, and a raw socket that sends.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use dataplane::tables::Mac;
use dataplane::wire::{ethernet, EtherType, EthernetFrame};
use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};

/// The length of an Ethernet/IPv4 ARP message.
pub const ARP_LEN: usize = 28;
/// The length of a gratuitous ARP frame: keepalived sends the 42 bytes of
/// Ethernet header and ARP message, unpadded (`keepalived-vip-arp.pcap`);
/// a real NIC pads it to the 60-byte minimum on the wire.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ARP_LEN;
/// The broadcast MAC.
pub const BROADCAST: Mac = [0xff; 6];

/// ARP `htype` for Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// ARP `ptype` for IPv4 (its EtherType).
const PTYPE_IPV4: u16 = 0x0800;

mod field {
    use core::ops::Range;

    pub(super) const HTYPE: Range<usize> = 0..2;
    pub(super) const PTYPE: Range<usize> = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Range<usize> = 6..8;
    pub(super) const SHA: Range<usize> = 8..14;
    pub(super) const SPA: Range<usize> = 14..18;
    pub(super) const THA: Range<usize> = 18..24;
    pub(super) const TPA: Range<usize> = 24..28;
}

/// Why bytes are not an Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ArpError {
    /// The buffer ends before the message (or the Ethernet header) does.
    #[error("truncated ARP frame: {needed} bytes needed, {available} present")]
    Truncated { needed: usize, available: usize },
    /// The frame's EtherType is not ARP.
    #[error("EtherType {0:#06x} is not ARP (0x0806)")]
    NotArp(u16),
    /// The message resolves something other than IPv4 over Ethernet.
    #[error(
        "ARP for hardware {htype:#06x} / protocol {ptype:#06x} with address lengths \
         {hlen}/{plen}, expected Ethernet/IPv4 (0x0001/0x0800, 6/4)"
    )]
    NotEthernetIpv4 { htype: u16, ptype: u16, hlen: u8, plen: u8 },
}

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who-has (a gratuitous ARP is one, as keepalived sends it).
    Request,
    /// 2: is-at.
    Reply,
    /// Anything else, with its value.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => Self::Request,
            2 => Self::Reply,
            other => Self::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP message (RFC 826) in `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without looking at it: accessors panic if it is shorter
    /// than [`ARP_LEN`]. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` if it holds a whole message that maps IPv4 addresses
    /// to 6-byte hardware addresses (the only kind whose fields sit where
    /// the getters read them). Trailing bytes (Ethernet padding) are allowed.
    pub fn new_checked(buffer: T) -> Result<Self, ArpError> {
        let bytes = buffer.as_ref();
        if bytes.len() < ARP_LEN {
            return Err(ArpError::Truncated { needed: ARP_LEN, available: bytes.len() });
        }
        let packet = Self { buffer };
        let (htype, ptype) = (packet.hardware_type(), packet.protocol_type());
        let bytes = packet.buffer.as_ref();
        let (hlen, plen) = (bytes[field::HLEN], bytes[field::PLEN]);
        if htype != HTYPE_ETHERNET || ptype != PTYPE_IPV4 || hlen != 6 || plen != 4 {
            return Err(ArpError::NotEthernetIpv4 { htype, ptype, hlen, plen });
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The hardware type (1: Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// The protocol type (0x0800: IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }

    /// Request, reply or something else.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(&self.buffer.as_ref()[field::OPER]))
    }

    /// The sender's MAC.
    pub fn sender_mac(&self) -> Mac {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    /// The sender's IPv4 address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SPA])
    }

    /// The target's MAC (ff:ff:ff:ff:ff:ff in keepalived's GARP, zeros in a
    /// kernel's request).
    pub fn target_mac(&self) -> Mac {
        mac(&self.buffer.as_ref()[field::THA])
    }

    /// The target's IPv4 address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::TPA])
    }

    /// Whether this announces the sender's own address (sender IP = target
    /// IP), request or reply: what neighbours update their caches from.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip() == self.target_ip()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed part: Ethernet hardware, IPv4 protocol, lengths 6/4.
    pub fn set_ethernet_ipv4(&mut self) {
        let bytes = self.buffer.as_mut();
        bytes[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        bytes[field::PTYPE].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        bytes[field::HLEN] = 6;
        bytes[field::PLEN] = 4;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, operation: ArpOperation) {
        let value = u16::from(operation);
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the sender's MAC.
    pub fn set_sender_mac(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&mac);
    }

    /// Sets the sender's IPv4 address.
    pub fn set_sender_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&ip.octets());
    }

    /// Sets the target's MAC.
    pub fn set_target_mac(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&mac);
    }

    /// Sets the target's IPv4 address.
    pub fn set_target_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&ip.octets());
    }
}

/// The ARP message in an untagged Ethernet frame, checked.
pub fn parse_frame(frame: &[u8]) -> Result<ArpPacket<&[u8]>, ArpError> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| ArpError::Truncated {
        needed: ethernet::HEADER_LEN,
        available: frame.len(),
    })?;
    match ethernet.ethertype() {
        EtherType::Arp => ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]),
        other => Err(ArpError::NotArp(u16::from(other))),
    }
}

/// The gratuitous ARP keepalived 2.2.7 sends for `vip` from an interface
/// whose MAC is `our_mac` (vrrp_arp.c, checked against the capture): an ARP
/// request broadcast from our own MAC (never the VRRP virtual MAC), sender =
/// our MAC and the VIP, target = ff:ff:ff:ff:ff:ff and the VIP again.
pub fn frame(our_mac: Mac, vip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut bytes = [0u8; FRAME_LEN];
    let mut ethernet = EthernetFrame::new_unchecked(&mut bytes[..]);
    ethernet.set_dst(BROADCAST);
    ethernet.set_src(our_mac);
    ethernet.set_ethertype(EtherType::Arp);
    let mut arp = ArpPacket::new_unchecked(ethernet.payload_mut());
    arp.set_ethernet_ipv4();
    arp.set_operation(ArpOperation::Request);
    arp.set_sender_mac(our_mac);
    arp.set_sender_ip(vip);
    arp.set_target_mac(BROADCAST);
    arp.set_target_ip(vip);
    bytes
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn mac(b: &[u8]) -> Mac {
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// keepalived's GARP settings (`vrrp_garp_*` in global_defs, `garp_*` per
/// instance), with its defaults from [`Default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// `garp_master_delay`: the second burst after becoming master comes
    /// this long after the first; zero means no second burst. Default 5 s.
    pub master_delay: Duration,
    /// `garp_master_repeat`: rounds per burst. Default 5.
    pub master_repeat: u32,
    /// `garp_master_refresh`: a refresh burst this often while master.
    /// Default none (keepalived's 0).
    pub master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`: rounds per refresh burst. Default 1.
    pub master_refresh_repeat: u32,
    /// `garp_lower_prio_delay`: like `master_delay`, after a lower-priority
    /// advert heard as master. keepalived's default is `master_delay`.
    pub lower_prio_delay: Duration,
    /// `garp_lower_prio_repeat`: like `master_repeat`, after a lower-priority
    /// advert; zero sends nothing. keepalived's default is `master_repeat`.
    pub lower_prio_repeat: u32,
    /// `garp_interval`: the least time between two rounds on the interface.
    /// Default zero: a burst leaves at once.
    pub interval: Duration,
}

impl Default for GarpConfig {
    fn default() -> Self {
        Self {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: None,
            master_refresh_repeat: 1,
            lower_prio_delay: Duration::from_secs(5),
            lower_prio_repeat: 5,
            interval: Duration::ZERO,
        }
    }
}

/// When to send gratuitous ARPs, as keepalived 2.2.7 does (vrrp.c,
/// vrrp_scheduler.c, vrrp_arp.c). A pure timer: the caller passes the time,
/// sends what [`poll`](Self::poll) returns and sleeps until
/// [`poll_timeout`](Self::poll_timeout).
///
/// The unit is a *round*: one GARP for each VIP of the instance, as
/// keepalived's `vrrp_send_link_update(vrrp, rep)` sends `rep` rounds.
///
/// * Becoming master (`vrrp_state_become_master`): a burst of
///   `master_repeat` rounds at once and, unless `master_delay` is zero,
///   another `master_delay` later (`vrrp_gratuitous_arp_thread`); the
///   refresh timer starts.
/// * While master with `master_refresh` set: `master_refresh_repeat` rounds
///   every `master_refresh`. keepalived only looks at the refresh timer when
///   it sends an advert, so its refresh lands up to one `advert_int` late
///   (the manual calls the value a "minimum time interval"); here it lands
///   on time.
/// * A lower-priority advert heard as master (`vrrp_state_master_rx`):
///   `lower_prio_repeat` rounds at once and again `lower_prio_delay` later,
///   on top of whatever is pending (keepalived adds a timer, cancels none).
/// * Leaving master: nothing more. keepalived leaves its delayed timer
///   armed but it sends nothing once the VIPs are gone; same result.
/// * `garp_interval` (per interface in keepalived): rounds that fall due
///   together leave one per `interval`; with the default zero, all at once.
#[derive(Debug, Clone)]
pub struct GarpSchedule {
    config: GarpConfig,
    master: bool,
    /// Bursts not yet due: when, and how many rounds.
    bursts: Vec<(Instant, u32)>,
    /// The next refresh burst while master, if refreshing.
    refresh_at: Option<Instant>,
    /// Rounds due but held back by `interval`.
    owed: usize,
    /// The earliest time the next round may leave when `interval` > 0.
    next_round_at: Option<Instant>,
}

impl GarpSchedule {
    /// A schedule that sends nothing until [`on_become_master`](Self::on_become_master).
    pub fn new(config: GarpConfig) -> Self {
        Self {
            config,
            master: false,
            bursts: Vec::new(),
            refresh_at: None,
            owed: 0,
            next_round_at: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &GarpConfig {
        &self.config
    }

    /// Whether we are master (between `on_become_master` and `on_leave_master`).
    pub fn is_master(&self) -> bool {
        self.master
    }

    /// We became master at `now`: a burst now, another after `master_delay`,
    /// and refreshes from now on if configured. Anything pending is replaced.
    pub fn on_become_master(&mut self, now: Instant) {
        self.on_leave_master();
        self.master = true;
        self.push_burst(now, self.config.master_repeat);
        if !self.config.master_delay.is_zero() {
            self.push_burst(now + self.config.master_delay, self.config.master_repeat);
        }
        self.refresh_at = self.config.master_refresh.filter(|r| !r.is_zero()).map(|r| now + r);
    }

    /// As master we heard a lower-priority advert at `now`: announce again,
    /// now and after `lower_prio_delay`. Ignored unless master.
    pub fn on_reannounce(&mut self, now: Instant) {
        if !self.master {
            return;
        }
        self.push_burst(now, self.config.lower_prio_repeat);
        if !self.config.lower_prio_delay.is_zero() {
            self.push_burst(now + self.config.lower_prio_delay, self.config.lower_prio_repeat);
        }
    }

    /// We are no longer master: cancel every pending burst and refresh.
    pub fn on_leave_master(&mut self) {
        self.master = false;
        self.bursts.clear();
        self.refresh_at = None;
        self.owed = 0;
    }

    /// When [`poll`](Self::poll) next has something to send; `None` when
    /// nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let bursts = self.bursts.iter().map(|&(at, _)| at);
        let owed = if self.owed > 0 { self.next_round_at } else { None };
        bursts.chain(self.refresh_at).chain(owed).min()
    }

    /// How many rounds to send at `now` (one GARP per VIP each).
    pub fn poll(&mut self, now: Instant) -> usize {
        if !self.master {
            return 0;
        }
        let mut due = 0usize;
        self.bursts.retain(|&(at, rounds)| {
            if at <= now {
                due += rounds as usize;
                false
            } else {
                true
            }
        });
        if let (Some(at), Some(every)) = (self.refresh_at, self.config.master_refresh) {
            if at <= now {
                due += self.config.master_refresh_repeat as usize;
                // Keep the cadence, but never owe more than one refresh
                // after a late poll.
                let next = at + every;
                self.refresh_at = Some(if next <= now { now + every } else { next });
            }
        }
        self.owed += due;
        if self.config.interval.is_zero() {
            return std::mem::take(&mut self.owed);
        }
        if self.owed > 0 && self.next_round_at.is_none_or(|at| at <= now) {
            self.owed -= 1;
            self.next_round_at = Some(now + self.config.interval);
            return 1;
        }
        0
    }

    fn push_burst(&mut self, at: Instant, rounds: u32) {
        if rounds > 0 {
            self.bursts.push((at, rounds));
        }
    }
}

/// Why the GARP socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GarpSocketError {
    /// No link with that interface index.
    #[error("no interface with index {0}")]
    NoInterface(u32),
    /// A syscall failed.
    #[error("{call} for the GARP socket on interface {ifindex}: {source}")]
    Syscall {
        call: &'static str,
        ifindex: u32,
        #[source]
        source: nix::Error,
    },
}

impl From<GarpSocketError> for io::Error {
    fn from(error: GarpSocketError) -> Self {
        match &error {
            GarpSocketError::NoInterface(_) => io::Error::new(io::ErrorKind::NotFound, error),
            GarpSocketError::Syscall { source, .. } => {
                io::Error::new(io::Error::from(*source).kind(), error)
            }
        }
    }
}

/// An AF_PACKET raw socket bound to one interface, that sends whole frames
/// (keepalived's "gratuitous ARP shared channel"). It is opened with
/// protocol 0, so the kernel hands it no frames to read.
#[derive(Debug)]
pub struct GarpSender {
    fd: OwnedFd,
    ifindex: u32,
    mac: Mac,
}

impl GarpSender {
    /// Opens the socket and binds it to interface `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        Ok(Self::open_checked(ifindex)?)
    }

    fn open_checked(ifindex: u32) -> Result<Self, GarpSocketError> {
        let link = link_addr(ifindex)?;
        let syscall = |call| move |source| GarpSocketError::Syscall { call, ifindex, source };
        let fd = socket::socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC, None)
            .map_err(syscall("socket(AF_PACKET, SOCK_RAW)"))?;
        socket::bind(fd.as_raw_fd(), &link).map_err(syscall("bind"))?;
        let mac = link.addr().unwrap_or_default();
        Ok(Self { fd, ifindex, mac })
    }

    /// The interface the socket sends on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's MAC when the socket was opened: the source of our GARPs.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// Sends one complete frame, Ethernet header included.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty())?;
        if sent != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes on interface {}", frame.len(), self.ifindex),
            ));
        }
        Ok(())
    }
}

/// The link-layer address of interface `ifindex`, ready for `bind`.
///
/// nix 0.29 has no public constructor for a `LinkAddr`, but `getifaddrs`
/// hands one out for every link (its AF_PACKET entry, with the index, the
/// hardware type and the MAC): taking it from there needs no `unsafe`. Its
/// protocol is 0, so binding keeps the socket's own protocol.
pub(crate) fn link_addr(ifindex: u32) -> Result<LinkAddr, GarpSocketError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|source| GarpSocketError::Syscall {
        call: "getifaddrs",
        ifindex,
        source,
    })?;
    addrs
        .filter_map(|entry| entry.address.and_then(|a| a.as_link_addr().copied()))
        .find(|link| link.ifindex() == ifindex as usize)
        .ok_or(GarpSocketError::NoInterface(ifindex))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// lvs1 in the fixtures: its MAC and the VIP (shared/fixtures/README.md).
    const LVS1_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65];
    const ROUTER_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x01];
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
    const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);

    /// keepalived 2.2.7 as lvs1 becoming master, captured on the segment
    /// bridge: 10 GARPs, the router's request for the VIP and lvs1's reply.
    fn fixture() -> Vec<(Duration, Vec<u8>)> {
        // A byte-for-byte copy of shared/fixtures/keepalived-vip-arp.pcap.
        crate::vrrp::capture::frames(include_bytes!("../testdata/keepalived-vip-arp.pcap"))
            .into_iter()
            .map(|f| (f.time, f.data))
            .collect()
    }

    #[test]
    fn frame_is_keepalived_garp_byte_for_byte() {
        let captured = fixture();
        let garps: Vec<_> = captured
            .iter()
            .filter(|(_, data)| parse_frame(data).is_ok_and(|arp| arp.is_gratuitous()))
            .collect();
        assert_eq!(garps.len(), 10);
        let ours = frame(LVS1_MAC, VIP);
        for (time, data) in garps {
            assert_eq!(data.as_slice(), &ours[..], "GARP at {time:?}");
        }
    }

    #[test]
    fn parses_the_captured_arp_exchange() {
        let captured = fixture();
        let (_, request) = &captured[10];
        let request = parse_frame(request).unwrap();
        assert_eq!(request.operation(), ArpOperation::Request);
        assert!(!request.is_gratuitous());
        assert_eq!(
            (request.sender_mac(), request.sender_ip(), request.target_mac(), request.target_ip()),
            (ROUTER_MAC, ROUTER_IP, [0; 6], VIP)
        );
        let (_, reply) = &captured[11];
        let reply = parse_frame(reply).unwrap();
        assert_eq!(reply.operation(), ArpOperation::Reply);
        assert_eq!(
            (reply.sender_mac(), reply.sender_ip(), reply.target_mac(), reply.target_ip()),
            (LVS1_MAC, VIP, ROUTER_MAC, ROUTER_IP)
        );
    }

    #[test]
    fn garp_fields() {
        let bytes = frame(LVS1_MAC, VIP);
        let arp = parse_frame(&bytes).unwrap();
        assert_eq!(arp.hardware_type(), 1);
        assert_eq!(arp.protocol_type(), 0x0800);
        assert_eq!(arp.operation(), ArpOperation::Request);
        assert!(arp.is_gratuitous());
        assert_eq!(arp.sender_mac(), LVS1_MAC);
        assert_eq!(arp.target_mac(), BROADCAST);
        assert_eq!(EthernetFrame::new_checked(&bytes[..]).unwrap().dst(), BROADCAST);
    }

    #[test]
    fn rejects_what_is_not_ethernet_ipv4_arp() {
        let good = frame(LVS1_MAC, VIP);
        assert_eq!(
            parse_frame(&good[..41]).unwrap_err(),
            ArpError::Truncated { needed: 28, available: 27 }
        );
        assert_eq!(
            parse_frame(&good[..13]).unwrap_err(),
            ArpError::Truncated { needed: 14, available: 13 }
        );
        let mut ipv4 = good;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_frame(&ipv4).unwrap_err(), ArpError::NotArp(0x0800));
        let mut ipv6 = good;
        ipv6[16..18].copy_from_slice(&[0x86, 0xdd]);
        ipv6[19] = 16;
        let err = parse_frame(&ipv6).unwrap_err();
        assert_eq!(err, ArpError::NotEthernetIpv4 { htype: 1, ptype: 0x86dd, hlen: 6, plen: 16 });
        assert!(err.to_string().contains("0x86dd"), "{err}");
        // Ethernet padding after the message is fine.
        let mut padded = good.to_vec();
        padded.resize(60, 0);
        assert_eq!(parse_frame(&padded).unwrap().target_ip(), VIP);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(arp) = parse_frame(&bytes) {
                // Accepted only if the fixed part says Ethernet/IPv4.
                prop_assert!(bytes.len() >= FRAME_LEN);
                prop_assert_eq!(&bytes[12..14], &[0x08, 0x06]);
                prop_assert_eq!(&bytes[14..20], &[0x00, 0x01, 0x08, 0x00, 0x06, 0x04]);
                let _ = (arp.operation(), arp.sender_mac(), arp.target_ip(), arp.is_gratuitous());
            }
            if let Ok(arp) = ArpPacket::new_checked(&bytes[..]) {
                prop_assert_eq!(arp.sender_ip().octets(), [bytes[14], bytes[15], bytes[16], bytes[17]]);
            }
        }

        #[test]
        fn build_parse_round_trip(
            mac in any::<[u8; 6]>(),
            vip in any::<u32>(),
            op in any::<u16>(),
            target in any::<([u8; 6], u32)>(),
        ) {
            let vip = Ipv4Addr::from(vip);
            let garp = frame(mac, vip);
            let arp = parse_frame(&garp).unwrap();
            prop_assert_eq!(
                (arp.sender_mac(), arp.sender_ip(), arp.target_mac(), arp.target_ip()),
                (mac, vip, BROADCAST, vip)
            );
            prop_assert!(arp.is_gratuitous());
            prop_assert_eq!(EthernetFrame::new_checked(&garp[..]).unwrap().src(), mac);

            // Every field written through the setters reads back.
            let mut buf = [0u8; ARP_LEN];
            let mut arp = ArpPacket::new_unchecked(&mut buf[..]);
            arp.set_ethernet_ipv4();
            arp.set_operation(ArpOperation::from(op));
            arp.set_sender_mac(mac);
            arp.set_sender_ip(vip);
            arp.set_target_mac(target.0);
            arp.set_target_ip(Ipv4Addr::from(target.1));
            let arp = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(u16::from(arp.operation()), op);
            prop_assert_eq!(arp.target_mac(), target.0);
            prop_assert_eq!(arp.target_ip(), Ipv4Addr::from(target.1));
            prop_assert_eq!(arp.is_gratuitous(), u32::from(vip) == target.1);
        }
    }

    /// What happens to a schedule, at milliseconds from the start.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        BecomeMaster,
        Reannounce,
        LeaveMaster,
    }

    /// Drives a schedule the way the daemon does — sleep until
    /// `poll_timeout` or the next event, then poll — and returns when
    /// rounds went out, in milliseconds from the start, and how many.
    fn run(config: GarpConfig, events: &[(u64, Event)], until_ms: u64) -> Vec<(u64, usize)> {
        let start = Instant::now();
        let ms = |t: Instant| u64::try_from((t - start).as_millis()).unwrap();
        let mut schedule = GarpSchedule::new(config);
        let mut events = events.iter().peekable();
        let mut sent = Vec::new();
        loop {
            let next_event = events.peek().map(|&&(at, _)| start + Duration::from_millis(at));
            let Some(now) = [next_event, schedule.poll_timeout()].into_iter().flatten().min()
            else {
                break;
            };
            if ms(now) > until_ms {
                break;
            }
            while let Some(&&(at, event)) = events.peek() {
                if at > ms(now) {
                    break;
                }
                match event {
                    Event::BecomeMaster => schedule.on_become_master(now),
                    Event::Reannounce => schedule.on_reannounce(now),
                    Event::LeaveMaster => schedule.on_leave_master(),
                }
                events.next();
            }
            let n = schedule.poll(now);
            if n > 0 {
                sent.push((ms(now), n));
            }
        }
        sent
    }

    #[test]
    fn schedule_matches_the_capture() {
        // The capture's GARPs grouped into bursts (frames less than 100 ms
        // apart), as offsets from the first: 5 at once, 5 more 5 s later.
        let garps: Vec<Duration> = fixture()
            .into_iter()
            .filter(|(_, data)| parse_frame(data).is_ok_and(|arp| arp.is_gratuitous()))
            .map(|(time, _)| time)
            .collect();
        let mut bursts: Vec<(u64, usize)> = Vec::new();
        let mut last = garps[0];
        for &time in &garps {
            let offset = u64::try_from((time - garps[0]).as_millis()).unwrap();
            match bursts.last_mut() {
                Some((_, n)) if time - last < Duration::from_millis(100) => *n += 1,
                _ => bursts.push((offset, 1)),
            }
            last = time;
        }
        let simulated = run(GarpConfig::default(), &[(0, Event::BecomeMaster)], 60_000);
        assert_eq!(simulated, [(0, 5), (5_000, 5)]);
        assert_eq!(bursts.len(), simulated.len(), "{bursts:?}");
        for (captured, expected) in bursts.iter().zip(&simulated) {
            assert_eq!(captured.1, expected.1);
            assert!(captured.0.abs_diff(expected.0) <= 10, "{bursts:?} vs {simulated:?}");
        }
    }

    #[test]
    fn schedule_table() {
        use Event::*;
        let default = GarpConfig::default();
        let refresh = GarpConfig {
            master_refresh: Some(Duration::from_secs(60)),
            master_refresh_repeat: 2,
            ..default
        };
        let spaced = GarpConfig { interval: Duration::from_millis(100), ..default };
        let no_second = GarpConfig { master_delay: Duration::ZERO, master_repeat: 1, ..default };
        let quiet_reannounce = GarpConfig { lower_prio_repeat: 0, ..default };
        /// What, settings, events (ms), run until (ms), rounds sent (ms, how many).
        type Row<'a> = (&'a str, GarpConfig, &'a [(u64, Event)], u64, &'a [(u64, usize)]);
        #[rustfmt::skip]
        let table: &[Row<'_>] = &[
            ("defaults: 5 now, 5 after 5 s, then silence",
             default, &[(0, BecomeMaster)], 600_000, &[(0, 5), (5_000, 5)]),
            ("backup: nothing",
             default, &[], 600_000, &[]),
            ("leaving master cancels the second burst",
             default, &[(0, BecomeMaster), (2_000, LeaveMaster)], 600_000, &[(0, 5)]),
            ("lower-priority advert: 5 + 5 again",
             default, &[(0, BecomeMaster), (20_000, Reannounce)], 600_000,
             &[(0, 5), (5_000, 5), (20_000, 5), (25_000, 5)]),
            ("reannounce before the second burst adds to it",
             default, &[(0, BecomeMaster), (3_000, Reannounce)], 600_000,
             &[(0, 5), (3_000, 5), (5_000, 5), (8_000, 5)]),
            ("reannounce as backup is ignored",
             default, &[(0, Reannounce)], 600_000, &[]),
            ("garp_lower_prio_repeat 0: no reannounce",
             quiet_reannounce, &[(0, BecomeMaster), (20_000, Reannounce)], 600_000,
             &[(0, 5), (5_000, 5)]),
            ("garp_master_delay 0: one burst only",
             no_second, &[(0, BecomeMaster)], 600_000, &[(0, 1)]),
            ("refresh every 60 s, 2 rounds, until leaving",
             refresh, &[(0, BecomeMaster), (200_000, LeaveMaster)], 600_000,
             &[(0, 5), (5_000, 5), (60_000, 2), (120_000, 2), (180_000, 2)]),
            ("becoming master again restarts everything",
             default, &[(0, BecomeMaster), (1_000, LeaveMaster), (10_000, BecomeMaster)], 600_000,
             &[(0, 5), (10_000, 5), (15_000, 5)]),
            ("garp_interval spaces the rounds of a burst",
             spaced, &[(0, BecomeMaster)], 600_000,
             &[(0, 1), (100, 1), (200, 1), (300, 1), (400, 1),
               (5_000, 1), (5_100, 1), (5_200, 1), (5_300, 1), (5_400, 1)]),
            ("garp_interval: overlapping bursts queue behind each other",
             spaced, &[(0, BecomeMaster), (250, Reannounce)], 600_000,
             &[(0, 1), (100, 1), (200, 1), (300, 1), (400, 1),
               (500, 1), (600, 1), (700, 1), (800, 1), (900, 1),
               (5_000, 1), (5_100, 1), (5_200, 1), (5_300, 1), (5_400, 1),
               (5_500, 1), (5_600, 1), (5_700, 1), (5_800, 1), (5_900, 1)]),
        ];
        for (what, config, events, until, expected) in table {
            assert_eq!(run(*config, events, *until), *expected, "{what}");
        }
    }

    #[test]
    fn late_poll_sends_what_fell_due_once() {
        let start = Instant::now();
        let config =
            GarpConfig { master_refresh: Some(Duration::from_secs(10)), ..Default::default() };
        let mut schedule = GarpSchedule::new(config);
        schedule.on_become_master(start);
        // Asleep for a minute: both bursts and one refresh, not six.
        assert_eq!(schedule.poll(start + Duration::from_secs(60)), 5 + 5 + 1);
        assert_eq!(schedule.poll_timeout(), Some(start + Duration::from_secs(70)));
        assert_eq!(schedule.poll(start + Duration::from_secs(61)), 0);
    }

    /// Runs `ip ARGS` (in the calling thread's network namespace).
    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn sender_puts_the_garp_on_the_wire() {
        // A throwaway network namespace, private to this thread: it goes
        // away with the thread, veths included.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            ip(&[
                "link",
                "add",
                "d0",
                "address",
                "02:00:00:0a:00:65",
                "type",
                "veth",
                "peer",
                "name",
                "d1",
            ]);
            ip(&["link", "set", "d0", "up"]);
            ip(&["link", "set", "d1", "up"]);
            let d0 = nix::net::if_::if_nametoindex("d0").unwrap();
            let d1 = nix::net::if_::if_nametoindex("d1").unwrap();

            // A receiving packet socket on the peer, all protocols.
            let rx = socket::socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                socket::SockProtocol::EthAll,
            )
            .unwrap();
            socket::bind(rx.as_raw_fd(), &link_addr(d1).unwrap()).unwrap();
            let timeout = nix::sys::time::TimeVal::new(2, 0);
            socket::setsockopt(&rx, socket::sockopt::ReceiveTimeout, &timeout).unwrap();

            let sender = GarpSender::open(d0).unwrap();
            assert_eq!(sender.ifindex(), d0);
            assert_eq!(sender.mac(), LVS1_MAC);
            let garp = frame(sender.mac(), VIP);
            sender.send(&garp).unwrap();

            // Skip whatever else the fresh links say (IPv6 DAD, MLD).
            let mut buf = [0u8; 2048];
            loop {
                let n = socket::recv(rx.as_raw_fd(), &mut buf, MsgFlags::empty())
                    .expect("no GARP on d1 within 2 s");
                if parse_frame(&buf[..n]).is_ok() {
                    assert_eq!(&buf[..n], &garp[..]);
                    break;
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn sender_names_a_missing_interface() {
        let err = GarpSender::open(u32::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains(&u32::MAX.to_string()), "{err}");
    }
}
