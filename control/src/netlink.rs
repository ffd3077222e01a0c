//! The one place xdplb talks rtnetlink: interface lookup, the VIPs it adds and removes, and the
//! kernel neighbour entries whose MACs the data plane forwards to. Each operation is one async
//! function documented with its `ip` equivalent; everything here runs on the control thread.

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr},
    pin::Pin,
    task::{Context, Poll},
};

use dataplane::tables::Mac;
use futures::{channel::mpsc::UnboundedReceiver, Stream, StreamExt, TryStreamExt};
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage, AddressProtocol},
    link::{LinkAttribute, LinkFlags, LinkMessage},
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
        NeighbourState,
    },
    route::RouteProtocol,
    AddressFamily, RouteNetlinkMessage,
};
use rtnetlink::{
    packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST},
    sys::{AsyncSocket, SocketAddr},
    AddressMessageBuilder, Handle, MulticastGroup,
};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The `IFA_PROTO` (and `NDA_PROTOCOL`) value that marks addresses and neighbour entries xdplb
/// created. Values 0-3 belong to the kernel (unspec, kernel_lo, kernel_ra, kernel_ll); 0x58 is
/// 'X'. Linux 6.1+ stores it with the address; `ip -d addr` (iproute2 6.2+) shows "proto 0x58",
/// `ip -d neigh` shows "proto 88". Older kernels ignore the attribute, so a leftover VIP then
/// looks like an operator's address and start-up refuses it rather than stealing it.
pub const XDPLB_IFA_PROTO: u8 = 0x58;

/// [`Neighbour::flags`] bit for `NTF_EXT_MANAGED`: the kernel's own layout, `ndm_flags` in the
/// low byte and the `NDA_FLAGS_EXT` bits shifted up by 8 (`NTF_MANAGED` in the kernel).
pub const NTF_MANAGED: u32 = 1 << 8;

/// `NUD_VALID`: the states in which the kernel holds a usable link-layer address.
const NUD_VALID: u16 = libc::NUD_PERMANENT
    | libc::NUD_NOARP
    | libc::NUD_REACHABLE
    | libc::NUD_PROBE
    | libc::NUD_STALE
    | libc::NUD_DELAY;

/// Entries an operator pinned (`ip neigh add … lladdr …` / `nud noarp`): never rewritten by us.
const NUD_STATIC: u16 = libc::NUD_PERMANENT | libc::NUD_NOARP;

/// Socket receive buffer for neighbour events: a burst of table changes must not overrun it.
const EVENT_RCVBUF: usize = 1 << 20;

/// A failed rtnetlink operation, naming the operation, the value and the interface.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The rtnetlink socket could not be opened.
    #[error("opening an rtnetlink socket: {cause}")]
    Connect {
        /// What the kernel said.
        cause: io::Error,
    },
    /// No interface has this name (in this network namespace).
    #[error("no such interface: {0} (see `ip link show`)")]
    NoSuchInterface(String),
    /// Reading an interface failed for another reason than its absence.
    #[error("reading interface {interface}: {cause}")]
    GetLink {
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// The interface has no 6-byte link-layer address, so it cannot carry Ethernet frames.
    #[error("interface {interface} is not an Ethernet interface: its link-layer address is {len} bytes, not 6")]
    NotEthernet {
        /// Interface name.
        interface: String,
        /// Length of the link-layer address the kernel reported (0 if none).
        len: usize,
    },
    /// Dumping the addresses of an interface failed.
    #[error("listing the IPv4 addresses of {interface}: {cause}")]
    ListAddresses {
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Adding an address failed ("File exists" when it is already there).
    #[error("adding {addr}/{prefix_len} to {interface}: {cause}")]
    AddAddress {
        /// The address.
        addr: Ipv4Addr,
        /// Its prefix length.
        prefix_len: u8,
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Removing an address failed ("Cannot assign requested address" when it is not there).
    #[error("removing {addr}/{prefix_len} from {interface}: {cause}")]
    RemoveAddress {
        /// The address.
        addr: Ipv4Addr,
        /// Its prefix length.
        prefix_len: u8,
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Reading neighbour entries failed.
    #[error("looking up neighbour {what} on {interface}: {cause}")]
    GetNeighbour {
        /// The address looked up, or "entries" for a dump.
        what: String,
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Creating or updating a managed neighbour entry failed.
    #[error("making {ip} a managed neighbour on {interface} (needs Linux 5.16 or later): {cause}")]
    SetNeighbour {
        /// The neighbour's address.
        ip: Ipv4Addr,
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Deleting a neighbour entry failed.
    #[error("removing neighbour {ip} from {interface}: {cause}")]
    RemoveNeighbour {
        /// The neighbour's address.
        ip: Ipv4Addr,
        /// Interface name, or "ifindex N".
        interface: String,
        /// What the kernel said.
        cause: io::Error,
    },
    /// Opening the neighbour-event socket failed.
    #[error("subscribing to neighbour events (RTNLGRP_NEIGH): {cause}")]
    Subscribe {
        /// What the kernel said.
        cause: io::Error,
    },
}

impl NetlinkError {
    /// The errno behind this error, if the kernel gave one (e.g. `libc::EEXIST`).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Self::NoSuchInterface(_) => Some(libc::ENODEV),
            Self::NotEthernet { .. } => None,
            Self::Connect { cause }
            | Self::Subscribe { cause }
            | Self::GetLink { cause, .. }
            | Self::ListAddresses { cause, .. }
            | Self::AddAddress { cause, .. }
            | Self::RemoveAddress { cause, .. }
            | Self::GetNeighbour { cause, .. }
            | Self::SetNeighbour { cause, .. }
            | Self::RemoveNeighbour { cause, .. } => cause.raw_os_error(),
        }
    }
}

/// Turns rtnetlink's error into the kernel's errno where there is one.
fn io_error(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// A network interface as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its Ethernet address.
    pub mac: Mac,
    /// Its MTU.
    pub mtu: u32,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: operationally up (carrier present and not dormant).
    pub running: bool,
    /// Number of RX queues (`IFLA_NUM_RX_QUEUES`); AF_XDP binds one socket per queue.
    pub rx_queues: u32,
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The local address (`IFA_LOCAL`).
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `IFA_PROTO`: who added it (0 if unset; [`XDPLB_IFA_PROTO`] for us).
    pub proto: u8,
}

/// What start-up finds when it looks for a VIP on its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipPresence {
    /// Not configured: add it.
    Absent,
    /// A /32 marked with [`XDPLB_IFA_PROTO`], left by an earlier xdplb (e.g. after a crash):
    /// adopt it.
    OursLeftover,
    /// Someone else configured this address: refuse to take it over.
    Operators {
        /// Its prefix length.
        prefix_len: u8,
        /// Its `IFA_PROTO` (0 if unset).
        proto: u8,
    },
}

/// Decides whether `vip` is absent, a leftover of ours, or an operator's address.
///
/// Ours means the same address, /32 (as we add it) and our `IFA_PROTO`. Any other entry with
/// the same address wins over a leftover of ours: an operator's address is never taken over.
pub fn classify_vip(existing: &[Address], vip: Ipv4Addr) -> VipPresence {
    let mut presence = VipPresence::Absent;
    for a in existing.iter().filter(|a| a.addr == vip) {
        if a.proto == XDPLB_IFA_PROTO && a.prefix_len == 32 {
            presence = VipPresence::OursLeftover;
        } else {
            return VipPresence::Operators { prefix_len: a.prefix_len, proto: a.proto };
        }
    }
    presence
}

/// A kernel neighbour (ARP) entry on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour's IPv4 address.
    pub ip: Ipv4Addr,
    /// Its MAC, when the kernel reports one (`NDA_LLADDR`).
    pub mac: Option<Mac>,
    /// `NUD_*` state bits (`libc::NUD_REACHABLE`, …).
    pub state: u16,
    /// `NTF_*` flags in the low byte, `NTF_EXT_*` flags from bit 8 (see [`NTF_MANAGED`]).
    pub flags: u32,
    /// `NDA_PROTOCOL`: who created it (0 if unset; [`XDPLB_IFA_PROTO`] for us).
    pub proto: u8,
}

impl Neighbour {
    /// The MAC, only while the state says the kernel trusts it (`NUD_VALID`).
    pub fn usable_mac(&self) -> Option<Mac> {
        if self.state & NUD_VALID != 0 {
            self.mac
        } else {
            None
        }
    }

    /// Whether the kernel keeps this entry resolved by itself (`NTF_EXT_MANAGED`).
    pub fn is_managed(&self) -> bool {
        self.flags & NTF_MANAGED != 0
    }

    /// Whether this is a managed entry xdplb created.
    pub fn is_ours(&self) -> bool {
        self.is_managed() && self.proto == XDPLB_IFA_PROTO
    }

    /// Whether an operator pinned it (`PERMANENT` or `NOARP`).
    pub fn is_static(&self) -> bool {
        self.state & NUD_STATIC != 0
    }
}

/// What [`Netlink::ensure_managed_neighbour`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourSetup {
    /// The entry is now managed by the kernel and marked as ours.
    Managed,
    /// An operator's static entry exists; it was left alone (its MAC is used as it is).
    Static(Neighbour),
}

/// A change in the neighbour table of the watched interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourEvent {
    /// An entry was created or changed (`RTM_NEWNEIGH`): new MAC, new state.
    Changed(Neighbour),
    /// An entry was deleted (`RTM_DELNEIGH`).
    Removed(Ipv4Addr),
    /// The kernel dropped events because the socket buffer was full: re-read the entries you
    /// care about with [`Netlink::neighbour`] or [`Netlink::neighbours`].
    Overrun,
}

impl NeighbourEvent {
    /// The neighbour address this event is about (`None` for [`NeighbourEvent::Overrun`]).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        match self {
            Self::Changed(n) => Some(n.ip),
            Self::Removed(ip) => Some(*ip),
            Self::Overrun => None,
        }
    }
}

/// An open rtnetlink socket; its connection task runs on the runtime that called
/// [`Netlink::connect`] and stops when this is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens an rtnetlink socket (with `NETLINK_GET_STRICT_CHK`, so dumps are filtered by the
    /// kernel) and spawns its connection task on the current tokio runtime.
    pub async fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _unsolicited) = rtnetlink::new_connection_with_strict_check()
            .map_err(|cause| NetlinkError::Connect { cause })?;
        let connection = tokio::spawn(connection);
        Ok(Self { handle, connection })
    }

    /// `ip link show dev NAME`.
    pub async fn link_by_name(&self, name: &str) -> Result<Link, NetlinkError> {
        let reply = self.handle.link().get().match_name(name).execute().try_next().await;
        match reply {
            Ok(Some(msg)) => link_from_message(&msg),
            Ok(None) => Err(NetlinkError::NoSuchInterface(name.to_owned())),
            Err(e) => match io_error(e) {
                cause if cause.raw_os_error() == Some(libc::ENODEV) => {
                    Err(NetlinkError::NoSuchInterface(name.to_owned()))
                }
                cause => Err(NetlinkError::GetLink { interface: name.to_owned(), cause }),
            },
        }
    }

    /// `ip link show` of the interface with this index.
    pub async fn link_by_index(&self, index: u32) -> Result<Link, NetlinkError> {
        let interface = format!("ifindex {index}");
        let reply = self.handle.link().get().match_index(index).execute().try_next().await;
        match reply {
            Ok(Some(msg)) => link_from_message(&msg),
            Ok(None) => Err(NetlinkError::NoSuchInterface(interface)),
            Err(e) => match io_error(e) {
                cause if cause.raw_os_error() == Some(libc::ENODEV) => {
                    Err(NetlinkError::NoSuchInterface(interface))
                }
                cause => Err(NetlinkError::GetLink { interface, cause }),
            },
        }
    }

    /// The interface's name for an error message; "ifindex N" if it cannot be read.
    async fn describe(&self, index: u32) -> String {
        match self.link_by_index(index).await {
            Ok(link) => link.name,
            Err(NetlinkError::NotEthernet { interface, .. }) => interface,
            Err(_) => format!("ifindex {index}"),
        }
    }

    /// `ip -4 addr show dev IF`; an index with no interface gives an empty list.
    pub async fn ipv4_addresses(&self, index: u32) -> Result<Vec<Address>, NetlinkError> {
        let mut request = self.handle.address().get().set_link_index_filter(index);
        // With strict checking the kernel filters the dump by family and index itself.
        request.message_mut().header.family = AddressFamily::Inet;
        request.message_mut().header.index = index;
        let result: Result<Vec<AddressMessage>, _> = request.execute().try_collect().await;
        match result {
            Ok(msgs) => Ok(msgs.iter().filter_map(address_from_message).collect()),
            Err(e) => Err(NetlinkError::ListAddresses {
                interface: self.describe(index).await,
                cause: io_error(e),
            }),
        }
    }

    /// `ip addr add VIP/32 dev IF proto 0x58`: a VIP the way keepalived adds one, marked ours.
    pub async fn add_vip(&self, index: u32, vip: Ipv4Addr) -> Result<(), NetlinkError> {
        let mut request = self.handle.address().add(index, IpAddr::V4(vip), 32);
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(XDPLB_IFA_PROTO)));
        match request.execute().await {
            Ok(()) => {
                debug!(%vip, index, "added VIP");
                Ok(())
            }
            Err(e) => Err(NetlinkError::AddAddress {
                addr: vip,
                prefix_len: 32,
                interface: self.describe(index).await,
                cause: io_error(e),
            }),
        }
    }

    /// `ip addr del ADDR/PREFIX dev IF`.
    pub async fn remove_address(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let msg =
            AddressMessageBuilder::<Ipv4Addr>::new().index(index).address(addr, prefix_len).build();
        match self.handle.address().del(msg).execute().await {
            Ok(()) => {
                debug!(%addr, prefix_len, index, "removed address");
                Ok(())
            }
            Err(e) => Err(NetlinkError::RemoveAddress {
                addr,
                prefix_len,
                interface: self.describe(index).await,
                cause: io_error(e),
            }),
        }
    }

    /// `ip neigh get IP dev IF`; `None` when the kernel has no entry.
    pub async fn neighbour(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<Option<Neighbour>, NetlinkError> {
        match self.get_neighbour(index, ip).await {
            Ok(found) => Ok(found),
            Err(cause) => Err(NetlinkError::GetNeighbour {
                what: ip.to_string(),
                interface: self.describe(index).await,
                cause,
            }),
        }
    }

    /// One RTM_GETNEIGH without NLM_F_DUMP: rtnetlink's builder only dumps.
    async fn get_neighbour(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<Option<Neighbour>, io::Error> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(msg));
        req.header.flags = NLM_F_REQUEST;

        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(io_error)?;
        let mut found = None;
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                    found = neighbour_from_message(&m).filter(|n| n.ip == ip);
                }
                NetlinkPayload::Error(e) if e.raw_code() == -libc::ENOENT => return Ok(None),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                _ => {}
            }
        }
        Ok(found)
    }

    /// `ip -4 neigh show dev IF`: every IPv4 entry of the interface (to resync after an overrun).
    pub async fn neighbours(&self, index: u32) -> Result<Vec<Neighbour>, NetlinkError> {
        let mut request = self.handle.neighbours().get().set_address_family(AddressFamily::Inet);
        request.message_mut().attributes.push(NeighbourAttribute::IfIndex(index));
        let result: Result<Vec<NeighbourMessage>, _> = request.execute().try_collect().await;
        match result {
            Ok(msgs) => Ok(msgs
                .iter()
                .filter(|m| m.header.ifindex == index)
                .filter_map(neighbour_from_message)
                .collect()),
            Err(e) => Err(NetlinkError::GetNeighbour {
                what: "entries".to_owned(),
                interface: self.describe(index).await,
                cause: io_error(e),
            }),
        }
    }

    /// `ip neigh replace IP dev IF use managed protocol 0x58` (Linux 5.16+): the kernel itself
    /// resolves the entry and keeps re-probing it, so a real server's MAC is known before the
    /// first packet and followed when it changes.
    ///
    /// `use` keeps an existing entry's state and MAC (no flap to INCOMPLETE); an operator's
    /// PERMANENT/NOARP entry is left alone, since `use` would drop its PERMANENT state.
    pub async fn ensure_managed_neighbour(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<NeighbourSetup, NetlinkError> {
        if let Some(existing) = self.neighbour(index, ip).await? {
            if existing.is_static() {
                debug!(%ip, index, "static neighbour entry left alone");
                return Ok(NeighbourSetup::Static(existing));
            }
        }
        let mut request = self
            .handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .state(NeighbourState::None)
            .flags(NeighbourFlags::Use)
            .replace();
        let attributes = &mut request.message_mut().attributes;
        attributes.push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        attributes.push(NeighbourAttribute::Protocol(RouteProtocol::from(XDPLB_IFA_PROTO)));
        match request.execute().await {
            Ok(()) => {
                debug!(%ip, index, "managed neighbour entry set");
                Ok(NeighbourSetup::Managed)
            }
            Err(e) => Err(NetlinkError::SetNeighbour {
                ip,
                interface: self.describe(index).await,
                cause: io_error(e),
            }),
        }
    }

    /// `ip neigh del IP dev IF`, only if the entry is still a managed one of ours; returns
    /// whether it removed one.
    pub async fn remove_managed_neighbour(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<bool, NetlinkError> {
        match self.neighbour(index, ip).await? {
            Some(n) if n.is_ours() => {}
            _ => return Ok(false),
        }
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        match self.handle.neighbours().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) => match io_error(e) {
                // Gone between the lookup and the delete: nothing left to clean up.
                cause if cause.raw_os_error() == Some(libc::ENOENT) => Ok(false),
                cause => Err(NetlinkError::RemoveNeighbour {
                    ip,
                    interface: self.describe(index).await,
                    cause,
                }),
            },
        }
    }

    /// `ip monitor neigh dev IF`: opens a second socket bound to RTNLGRP_NEIGH and returns the
    /// IPv4 neighbour changes of this interface as a stream.
    pub async fn neighbour_events(&self, index: u32) -> Result<NeighbourEvents, NetlinkError> {
        let (mut connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh])
                .map_err(|cause| NetlinkError::Subscribe { cause })?;
        if let Err(cause) = connection.socket_mut().socket_mut().set_rx_buf_sz(EVENT_RCVBUF) {
            // The default buffer works too, it only overruns sooner.
            warn!(%cause, "could not enlarge the neighbour-event socket buffer");
        }
        let connection = tokio::spawn(connection);
        Ok(NeighbourEvents { index, messages, connection })
    }
}

/// Neighbour changes of one interface, from [`Netlink::neighbour_events`]; the socket closes
/// when this is dropped. The stream ends only if the socket fails: subscribe again and re-read.
pub struct NeighbourEvents {
    index: u32,
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    connection: JoinHandle<()>,
}

impl fmt::Debug for NeighbourEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeighbourEvents").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Drop for NeighbourEvents {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Stream for NeighbourEvents {
    type Item = NeighbourEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.messages.poll_next_unpin(cx) {
                Poll::Ready(Some((msg, _))) => {
                    if let Some(event) = event_from_message(msg, self.index) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads a link message; the data plane needs an Ethernet address, so anything else is an error.
fn link_from_message(msg: &LinkMessage) -> Result<Link, NetlinkError> {
    let mut name = None;
    let mut lladdr: &[u8] = &[];
    let mut mtu = 0;
    let mut rx_queues = 1;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) => lladdr = a,
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::NumRxQueues(n) => rx_queues = *n,
            _ => {}
        }
    }
    let name = name.unwrap_or_else(|| format!("ifindex {}", msg.header.index));
    let Ok(mac) = Mac::try_from(lladdr) else {
        return Err(NetlinkError::NotEthernet { interface: name, len: lladdr.len() });
    };
    Ok(Link {
        index: msg.header.index,
        name,
        mac,
        mtu,
        up: msg.header.flags.contains(LinkFlags::Up),
        running: msg.header.flags.contains(LinkFlags::Running),
        rx_queues,
    })
}

/// Reads an IPv4 address message; other families give `None`.
fn address_from_message(msg: &AddressMessage) -> Option<Address> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let mut local = None;
    let mut address = None;
    let mut proto = 0;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(*a),
            AddressAttribute::Protocol(p) => proto = u8::from(*p),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs only on point-to-point
    // links, where it names the peer.
    Some(Address { addr: local.or(address)?, prefix_len: msg.header.prefix_len, proto })
}

/// Reads an IPv4 neighbour message; other families and entries without an address give `None`.
fn neighbour_from_message(msg: &NeighbourMessage) -> Option<Neighbour> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    let mut ext_flags = 0u32;
    let mut proto = 0;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            NeighbourAttribute::LinkLayerAddress(l) => mac = Mac::try_from(l.as_slice()).ok(),
            NeighbourAttribute::ExtFlags(f) => ext_flags = f.bits(),
            NeighbourAttribute::Protocol(p) => proto = u8::from(*p),
            _ => {}
        }
    }
    Some(Neighbour {
        ip: ip?,
        mac,
        state: u16::from(msg.header.state),
        flags: u32::from(msg.header.flags.bits()) | ext_flags << 8,
        proto,
    })
}

/// Keeps the events about IPv4 neighbours of interface `index`.
fn event_from_message(
    msg: NetlinkMessage<RouteNetlinkMessage>,
    index: u32,
) -> Option<NeighbourEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m))
            if m.header.ifindex == index =>
        {
            neighbour_from_message(&m).map(NeighbourEvent::Changed)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m))
            if m.header.ifindex == index =>
        {
            neighbour_from_message(&m).map(|n| NeighbourEvent::Removed(n.ip))
        }
        NetlinkPayload::Overrun(_) => Some(NeighbourEvent::Overrun),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::{future::Future, process::Command, time::Duration};

    use netlink_packet_route::link::LinkMessage;
    use nix::sched::{unshare, CloneFlags};
    use proptest::prelude::*;
    use rtnetlink::packet_core::NetlinkHeader;

    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);

    fn addr(a: Ipv4Addr, prefix_len: u8, proto: u8) -> Address {
        Address { addr: a, prefix_len, proto }
    }

    #[test]
    fn classify_absent_when_no_entry_has_the_address() {
        assert_eq!(classify_vip(&[], VIP), VipPresence::Absent);
        let others = [addr(Ipv4Addr::new(192, 168, 10, 101), 24, 0), addr(VIP, 32, 0)];
        assert_eq!(classify_vip(&others[..1], VIP), VipPresence::Absent);
        assert_ne!(classify_vip(&others, VIP), VipPresence::Absent);
    }

    #[test]
    fn classify_our_leftover_only_for_a_slash_32_with_our_proto() {
        let list = [addr(Ipv4Addr::new(192, 168, 10, 101), 24, 0), addr(VIP, 32, XDPLB_IFA_PROTO)];
        assert_eq!(classify_vip(&list, VIP), VipPresence::OursLeftover);
        // Our mark on another prefix length is not something we ever add: treat it as theirs.
        let odd = [addr(VIP, 24, XDPLB_IFA_PROTO)];
        assert_eq!(
            classify_vip(&odd, VIP),
            VipPresence::Operators { prefix_len: 24, proto: XDPLB_IFA_PROTO }
        );
    }

    #[test]
    fn classify_operators_address_wins_over_our_leftover() {
        let theirs = addr(VIP, 24, 0);
        let ours = addr(VIP, 32, XDPLB_IFA_PROTO);
        let want = VipPresence::Operators { prefix_len: 24, proto: 0 };
        assert_eq!(classify_vip(&[ours, theirs], VIP), want);
        assert_eq!(classify_vip(&[theirs, ours], VIP), want);
        // keepalived's /32 (no proto) and a kernel-protocol mark are both the operator's.
        assert_eq!(
            classify_vip(&[addr(VIP, 32, 0)], VIP),
            VipPresence::Operators { prefix_len: 32, proto: 0 }
        );
        assert_eq!(
            classify_vip(&[addr(VIP, 32, 2)], VIP),
            VipPresence::Operators { prefix_len: 32, proto: 2 }
        );
    }

    fn pool_addr() -> impl Strategy<Value = Ipv4Addr> {
        (1u8..=4).prop_map(|last| Ipv4Addr::new(10, 0, 0, last))
    }

    fn any_address() -> impl Strategy<Value = Address> {
        let proto = prop_oneof![Just(0u8), Just(XDPLB_IFA_PROTO), any::<u8>()];
        let prefix = prop_oneof![Just(32u8), 0u8..=32];
        (pool_addr(), prefix, proto).prop_map(|(a, p, pr)| addr(a, p, pr))
    }

    proptest! {
        #[test]
        fn classify_vip_is_consistent_with_the_list(
            list in proptest::collection::vec(any_address(), 0..6),
            vip in pool_addr(),
        ) {
            let same: Vec<_> = list.iter().filter(|a| a.addr == vip).collect();
            let ours = |a: &&Address| a.proto == XDPLB_IFA_PROTO && a.prefix_len == 32;
            match classify_vip(&list, vip) {
                VipPresence::Absent => prop_assert!(same.is_empty()),
                VipPresence::OursLeftover => {
                    prop_assert!(!same.is_empty());
                    prop_assert!(same.iter().all(ours));
                }
                VipPresence::Operators { prefix_len, proto } => {
                    prop_assert!(same
                        .iter()
                        .any(|a| !ours(a) && a.prefix_len == prefix_len && a.proto == proto));
                }
            }
            let mut reversed = list.clone();
            reversed.reverse();
            prop_assert_eq!(
                std::mem::discriminant(&classify_vip(&list, vip)),
                std::mem::discriminant(&classify_vip(&reversed, vip))
            );
        }
    }

    #[test]
    fn link_message_becomes_a_link() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Mtu(9000),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 0x65]),
            LinkAttribute::NumRxQueues(4),
        ];
        let link = link_from_message(&msg).unwrap();
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "eth0".into(),
                mac: [2, 0, 0, 0, 0, 0x65],
                mtu: 9000,
                up: true,
                running: false,
                rx_queues: 4,
            }
        );
        msg.header.flags |= LinkFlags::Running;
        assert!(link_from_message(&msg).unwrap().running);
        // Every device has at least one queue, whether or not the kernel says so.
        msg.attributes.retain(|a| !matches!(a, LinkAttribute::NumRxQueues(_)));
        assert_eq!(link_from_message(&msg).unwrap().rx_queues, 1);
    }

    #[test]
    fn link_without_ethernet_address_is_refused_by_name() {
        let mut msg = LinkMessage::default();
        msg.header.index = 9;
        msg.attributes = vec![LinkAttribute::IfName("tun0".into()), LinkAttribute::Mtu(1500)];
        let err = link_from_message(&msg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface tun0 is not an Ethernet interface: its link-layer address is 0 bytes, not 6"
        );
        msg.attributes.push(LinkAttribute::Address(vec![0; 20]));
        assert!(matches!(link_from_message(&msg), Err(NetlinkError::NotEthernet { len: 20, .. })));
    }

    #[test]
    fn address_message_uses_local_and_proto() {
        let mut msg = AddressMessageBuilder::<Ipv4Addr>::new().index(3).address(VIP, 32).build();
        assert_eq!(address_from_message(&msg), Some(addr(VIP, 32, 0)));
        msg.attributes.push(AddressAttribute::Protocol(AddressProtocol::from(XDPLB_IFA_PROTO)));
        assert_eq!(address_from_message(&msg), Some(addr(VIP, 32, XDPLB_IFA_PROTO)));

        // Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
        let peer = Ipv4Addr::new(10, 9, 9, 9);
        let mut ptp = AddressMessage::default();
        ptp.header.family = AddressFamily::Inet;
        ptp.header.prefix_len = 32;
        ptp.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(peer)),
            AddressAttribute::Local(IpAddr::V4(VIP)),
        ];
        assert_eq!(address_from_message(&ptp).map(|a| a.addr), Some(VIP));

        let v6 = AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .address(std::net::Ipv6Addr::LOCALHOST, 128)
            .build();
        assert_eq!(address_from_message(&v6), None);
    }

    // The kernel's RTM_NEWNEIGH reply to `ip neigh get 192.168.77.5 dev d0` (Linux 6.18), after
    // `ip neigh replace 192.168.77.5 dev d0 managed protocol 0x58` resolved it to the veth peer
    // 02:00:00:00:00:02. Captured with `strace -e read=3 -xx ip neigh get …`.
    #[rustfmt::skip]
    const MANAGED_NEIGH_REPLY: [u8; 92] = [
        // nlmsghdr: len 92, RTM_NEWNEIGH, flags 0, seq, pid
        0x5c, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x2b, 0x21, 0x0a, 0x6b, 0xab, 0x1e, 0x00, 0x00,
        // ndmsg: AF_INET, ifindex 3, NUD_REACHABLE, flags 0, RTN_LOCAL
        0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x02,
        // NDA_DST 192.168.77.5
        0x08, 0x00, 0x01, 0x00, 0xc0, 0xa8, 0x4d, 0x05,
        // NDA_LLADDR 02:00:00:00:00:02 (+ 2 bytes padding)
        0x0a, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
        // NDA_PROBES 4
        0x08, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00,
        // NDA_CACHEINFO
        0x14, 0x00, 0x03, 0x00, 0x65, 0x00, 0x00, 0x00, 0x5e, 0x00, 0x00, 0x00,
        0x65, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        // NDA_PROTOCOL 0x58 (+ 3 bytes padding)
        0x05, 0x00, 0x0c, 0x00, 0x58, 0x00, 0x00, 0x00,
        // NDA_FLAGS_EXT NTF_EXT_MANAGED
        0x08, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x00,
    ];

    // Two RTM_NEWADDR messages of the kernel's reply to `ip -4 addr show dev d0` (Linux 6.18):
    // the operator's 192.168.77.1/24 (`ip addr add`), then the VIP `add_vip` put there, which
    // carries IFA_PROTO 0x58. Captured with `strace -e read=3 -xx ip -4 addr show dev d0`.
    #[rustfmt::skip]
    const OPERATOR_ADDR: [u8; 76] = [
        // nlmsghdr: len 76, RTM_NEWADDR, NLM_F_MULTI | NLM_F_DUMP_FILTERED, seq, pid
        0x4c, 0x00, 0x00, 0x00, 0x14, 0x00, 0x22, 0x00, 0x4a, 0x23, 0x0a, 0x6b, 0x4e, 0x63, 0x00, 0x00,
        // ifaddrmsg: AF_INET, /24, IFA_F_PERMANENT, scope global, ifindex 3
        0x02, 0x18, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00,
        // IFA_ADDRESS, IFA_LOCAL 192.168.77.1
        0x08, 0x00, 0x01, 0x00, 0xc0, 0xa8, 0x4d, 0x01, 0x08, 0x00, 0x02, 0x00, 0xc0, 0xa8, 0x4d, 0x01,
        // IFA_LABEL "d0"
        0x07, 0x00, 0x03, 0x00, 0x64, 0x30, 0x00, 0x00,
        // IFA_FLAGS IFA_F_PERMANENT
        0x08, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00,
        // IFA_CACHEINFO
        0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xcb, 0xdf, 0x01, 0x00, 0xcb, 0xdf, 0x01, 0x00,
    ];
    #[rustfmt::skip]
    const OUR_VIP_ADDR: [u8; 84] = [
        // nlmsghdr: len 84, RTM_NEWADDR, NLM_F_MULTI | NLM_F_DUMP_FILTERED, seq, pid
        0x54, 0x00, 0x00, 0x00, 0x14, 0x00, 0x22, 0x00, 0x4a, 0x23, 0x0a, 0x6b, 0x4e, 0x63, 0x00, 0x00,
        // ifaddrmsg: AF_INET, /32, IFA_F_PERMANENT, scope global, ifindex 3
        0x02, 0x20, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00,
        // IFA_ADDRESS, IFA_LOCAL 192.168.77.110
        0x08, 0x00, 0x01, 0x00, 0xc0, 0xa8, 0x4d, 0x6e, 0x08, 0x00, 0x02, 0x00, 0xc0, 0xa8, 0x4d, 0x6e,
        // IFA_LABEL "d0"
        0x07, 0x00, 0x03, 0x00, 0x64, 0x30, 0x00, 0x00,
        // IFA_PROTO 0x58 (+ 3 bytes padding)
        0x05, 0x00, 0x0b, 0x00, 0x58, 0x00, 0x00, 0x00,
        // IFA_FLAGS IFA_F_PERMANENT
        0x08, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00,
        // IFA_CACHEINFO
        0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xcc, 0xdf, 0x01, 0x00, 0xcc, 0xdf, 0x01, 0x00,
    ];

    fn parse_address(bytes: &[u8]) -> Address {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) = msg.payload else {
            panic!("not RTM_NEWADDR: {msg:?}");
        };
        address_from_message(&m).unwrap()
    }

    #[test]
    fn kernel_address_dump_classifies() {
        let vip = Ipv4Addr::new(192, 168, 77, 110);
        let own = Ipv4Addr::new(192, 168, 77, 1);
        let list = [parse_address(&OPERATOR_ADDR), parse_address(&OUR_VIP_ADDR)];
        assert_eq!(list, [addr(own, 24, 0), addr(vip, 32, XDPLB_IFA_PROTO)]);
        assert_eq!(classify_vip(&list, vip), VipPresence::OursLeftover);
        assert_eq!(classify_vip(&list, own), VipPresence::Operators { prefix_len: 24, proto: 0 });
    }

    #[test]
    fn kernel_managed_neighbour_reply_parses() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&MANAGED_NEIGH_REPLY).unwrap();
        let want = Neighbour {
            ip: Ipv4Addr::new(192, 168, 77, 5),
            mac: Some([2, 0, 0, 0, 0, 2]),
            state: libc::NUD_REACHABLE,
            flags: NTF_MANAGED,
            proto: XDPLB_IFA_PROTO,
        };
        assert!(want.is_ours() && !want.is_static());
        assert_eq!(want.usable_mac(), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(event_from_message(msg.clone(), 3), Some(NeighbourEvent::Changed(want)));
        assert_eq!(event_from_message(msg, 4), None, "another interface's entry");
    }

    #[test]
    fn neighbour_without_valid_state_has_no_usable_mac() {
        let base = Neighbour {
            ip: Ipv4Addr::new(192, 168, 77, 5),
            mac: Some([2, 0, 0, 0, 0, 2]),
            state: libc::NUD_FAILED,
            flags: 0,
            proto: 0,
        };
        assert_eq!(base.usable_mac(), None);
        assert_eq!(Neighbour { state: libc::NUD_INCOMPLETE, ..base }.usable_mac(), None);
        assert_eq!(Neighbour { state: libc::NUD_STALE, ..base }.usable_mac(), base.mac);
        assert!(Neighbour { state: libc::NUD_PERMANENT, ..base }.is_static());
        // Managed by someone else: not ours to delete.
        assert!(!Neighbour { flags: NTF_MANAGED, ..base }.is_ours());
    }

    #[test]
    fn overrun_and_deletion_become_events() {
        let mut header = NetlinkHeader::default();
        header.message_type = rtnetlink::packet_core::NLMSG_OVERRUN;
        let overrun = NetlinkMessage::new(header, NetlinkPayload::Overrun(Vec::new()));
        assert_eq!(event_from_message(overrun, 3), Some(NeighbourEvent::Overrun));

        let ip = Ipv4Addr::new(192, 168, 77, 9);
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = 3;
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        let del = NetlinkMessage::from(RouteNetlinkMessage::DelNeighbour(m.clone()));
        assert_eq!(event_from_message(del, 3), Some(NeighbourEvent::Removed(ip)));
        m.header.family = AddressFamily::Inet6;
        let v6 = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(m));
        assert_eq!(event_from_message(v6, 3), None);
    }

    proptest! {
        // Emit an RTM_NEWNEIGH as the kernel would, parse it back, and check what reaches the
        // daemon: the MAC only if 6 bytes, the flags in the kernel's layout.
        #[test]
        fn neighbour_event_round_trip(
            ip in any::<u32>(),
            state in any::<u16>(),
            ndm_flags in any::<u8>(),
            ext in any::<u32>(),
            lladdr in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            proto in proptest::option::of(any::<u8>()),
            index in 1u32..100,
        ) {
            let ip = Ipv4Addr::from(ip);
            let mut m = NeighbourMessage::default();
            m.header.family = AddressFamily::Inet;
            m.header.ifindex = index;
            m.header.state = NeighbourState::from(state);
            m.header.flags = NeighbourFlags::from_bits_retain(ndm_flags);
            m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
            if let Some(l) = &lladdr {
                m.attributes.push(NeighbourAttribute::LinkLayerAddress(l.clone()));
            }
            m.attributes.push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::from_bits_retain(ext)));
            if let Some(p) = proto {
                m.attributes.push(NeighbourAttribute::Protocol(RouteProtocol::from(p)));
            }
            let mut msg = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(m));
            msg.finalize();
            let mut bytes = vec![0; msg.buffer_len()];
            msg.serialize(&mut bytes);
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();

            let Some(NeighbourEvent::Changed(n)) = event_from_message(parsed, index) else {
                return Err(TestCaseError::fail("no Changed event"));
            };
            prop_assert_eq!(n.ip, ip);
            prop_assert_eq!(n.state, state);
            let want_mac = lladdr.filter(|l| l.len() == 6).map(|l| Mac::try_from(l.as_slice()).unwrap());
            prop_assert_eq!(n.mac, want_mac);
            prop_assert_eq!(n.flags & 0xff, u32::from(ndm_flags));
            prop_assert_eq!(n.is_managed(), ext & 1 != 0);
            prop_assert_eq!(n.proto, proto.unwrap_or(0));
            if state & NUD_VALID == 0 {
                prop_assert_eq!(n.usable_mac(), None);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes) {
                let _ = event_from_message(msg, 3);
            }
        }
    }

    #[test]
    fn errors_name_operation_value_and_interface() {
        let err = NetlinkError::AddAddress {
            addr: VIP,
            prefix_len: 32,
            interface: "eth0".into(),
            cause: io::Error::from_raw_os_error(libc::EEXIST),
        };
        assert_eq!(err.to_string(), "adding 192.168.10.110/32 to eth0: File exists (os error 17)");
        assert_eq!(err.os_error(), Some(libc::EEXIST));
        assert_eq!(NetlinkError::NoSuchInterface("eth9".into()).os_error(), Some(libc::ENODEV));
    }

    // ---- Against the kernel, in a network namespace private to one thread ----

    /// Runs `cmd` (split on spaces) from the calling thread, so in that thread's namespace.
    fn run(cmd: &str) -> String {
        let mut words = cmd.split_whitespace();
        let program = words.next().unwrap();
        let out = Command::new(program).args(words).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Two veths d0 (02:..:01, 192.168.77.1/24, MTU 1400) and d1 (02:..:02, 192.168.77.5/24)
    /// in one namespace; d1 accepts d0's local source address, so it answers d0's ARP.
    const TOPOLOGY: &[&str] = &[
        "ip link add d0 numrxqueues 3 type veth peer name d1",
        "ip link set d0 address 02:00:00:00:00:01 mtu 1400",
        "ip link set d1 address 02:00:00:00:00:02",
        "ip link set d0 up",
        "ip link set d1 up",
        "ip addr add 192.168.77.1/24 dev d0",
        "ip addr add 192.168.77.5/24 dev d1",
        "sysctl -qw net.ipv4.conf.d1.accept_local=1",
    ];

    /// Runs `body` on a new thread that first moves into a network namespace of its own
    /// (CLONE_NEWNET applies to the calling thread only) and builds [`TOPOLOGY`] there. The
    /// namespace, and every interface in it, disappears when the thread ends, pass or fail.
    fn in_netns<F, Fut>(body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let thread = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) needs root");
            for cmd in TOPOLOGY {
                run(cmd);
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(body());
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn d0_index() -> u32 {
        let line = run("ip -o link show dev d0");
        line.split(':').next().unwrap().trim().parse().unwrap()
    }

    #[test]
    fn kernel_link_lookup() {
        in_netns(|| async {
            let nl = Netlink::connect().await.unwrap();
            let link = nl.link_by_name("d0").await.unwrap();
            assert_eq!(
                link,
                Link {
                    index: d0_index(),
                    name: "d0".into(),
                    mac: [2, 0, 0, 0, 0, 1],
                    mtu: 1400,
                    up: true,
                    running: true,
                    rx_queues: 3,
                }
            );
            assert_eq!(nl.link_by_index(link.index).await.unwrap(), link);

            run("ip link set d1 down");
            let d0 = nl.link_by_name("d0").await.unwrap();
            assert!(d0.up && !d0.running, "peer down means no carrier: {d0:?}");

            let err = nl.link_by_name("nosuch0").await.unwrap_err();
            assert!(matches!(&err, NetlinkError::NoSuchInterface(n) if n == "nosuch0"), "{err}");
            assert!(matches!(
                nl.link_by_index(9999).await,
                Err(NetlinkError::NoSuchInterface(n)) if n == "ifindex 9999"
            ));
        });
    }

    #[test]
    fn kernel_vip_add_classify_remove() {
        in_netns(|| async {
            let nl = Netlink::connect().await.unwrap();
            let index = d0_index();
            let vip = Ipv4Addr::new(192, 168, 77, 110);
            assert_eq!(
                classify_vip(&nl.ipv4_addresses(index).await.unwrap(), vip),
                VipPresence::Absent
            );

            nl.add_vip(index, vip).await.unwrap();
            assert!(run("ip -o -4 addr show dev d0").contains("inet 192.168.77.110/32 "));
            let addrs = nl.ipv4_addresses(index).await.unwrap();
            assert!(addrs.contains(&addr(vip, 32, XDPLB_IFA_PROTO)), "{addrs:?}");
            assert!(addrs.contains(&addr(Ipv4Addr::new(192, 168, 77, 1), 24, 0)), "{addrs:?}");
            assert!(
                addrs.iter().all(|a| a.addr != Ipv4Addr::new(192, 168, 77, 5)),
                "d1's: {addrs:?}"
            );
            assert_eq!(classify_vip(&addrs, vip), VipPresence::OursLeftover);
            assert_eq!(
                classify_vip(&addrs, Ipv4Addr::new(192, 168, 77, 1)),
                VipPresence::Operators { prefix_len: 24, proto: 0 }
            );

            // An operator's /32, as keepalived or `ip addr add` leaves it: not ours.
            run("ip addr add 192.168.77.111/32 dev d0");
            let addrs = nl.ipv4_addresses(index).await.unwrap();
            assert_eq!(
                classify_vip(&addrs, Ipv4Addr::new(192, 168, 77, 111)),
                VipPresence::Operators { prefix_len: 32, proto: 0 }
            );

            let err = nl.add_vip(index, vip).await.unwrap_err();
            assert_eq!(err.os_error(), Some(libc::EEXIST));
            assert_eq!(
                err.to_string(),
                "adding 192.168.77.110/32 to d0: File exists (os error 17)"
            );

            nl.remove_address(index, vip, 32).await.unwrap();
            assert!(!run("ip -o -4 addr show dev d0").contains("192.168.77.110"));
            let addrs = nl.ipv4_addresses(index).await.unwrap();
            assert_eq!(classify_vip(&addrs, vip), VipPresence::Absent);
            let err = nl.remove_address(index, vip, 32).await.unwrap_err();
            assert!(err.to_string().starts_with("removing 192.168.77.110/32 from d0: "), "{err}");

            let err = nl.add_vip(9999, vip).await.unwrap_err();
            assert!(
                err.to_string().starts_with("adding 192.168.77.110/32 to ifindex 9999: "),
                "{err}"
            );
            // The kernel ends a dump for a missing index with an empty reply, not an error.
            assert_eq!(nl.ipv4_addresses(9999).await.unwrap(), Vec::new());
        });
    }

    /// Next event about `ip`, within a few seconds.
    async fn next_about(events: &mut NeighbourEvents, ip: Ipv4Addr) -> NeighbourEvent {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .unwrap_or_else(|_| panic!("no neighbour event about {ip} within 5 s"))
                .unwrap();
            if event.ip() == Some(ip) || event == NeighbourEvent::Overrun {
                return event;
            }
        }
    }

    #[test]
    fn kernel_neighbours_static_managed_and_events() {
        in_netns(|| async {
            let nl = Netlink::connect().await.unwrap();
            let index = d0_index();
            let peer_mac = nl.link_by_name("d1").await.unwrap().mac;
            let server = Ipv4Addr::new(192, 168, 77, 5);
            let pinned = Ipv4Addr::new(192, 168, 77, 9);
            let mut events = nl.neighbour_events(index).await.unwrap();

            run("ip neigh add 192.168.77.9 lladdr 02:00:00:00:00:09 dev d0");
            let n = nl.neighbour(index, pinned).await.unwrap().unwrap();
            assert_eq!(n.mac, Some([2, 0, 0, 0, 0, 9]));
            assert_eq!(n.state, libc::NUD_PERMANENT);
            assert!(n.is_static() && !n.is_managed());
            assert_eq!(nl.neighbour(index, Ipv4Addr::new(192, 168, 77, 19)).await.unwrap(), None);
            assert!(nl.neighbours(index).await.unwrap().contains(&n));

            // The kernel resolves a managed entry by itself: no traffic needed.
            assert_eq!(
                nl.ensure_managed_neighbour(index, server).await.unwrap(),
                NeighbourSetup::Managed
            );
            let shown = run("ip -d neigh show 192.168.77.5 dev d0");
            assert!(shown.contains("managed") && shown.contains("proto 88"), "{shown}");
            loop {
                match next_about(&mut events, server).await {
                    NeighbourEvent::Changed(n) if n.usable_mac() == Some(peer_mac) => break,
                    _ => continue,
                }
            }
            let n = nl.neighbour(index, server).await.unwrap().unwrap();
            assert!(n.is_ours(), "{n:?}");
            assert_eq!(n.usable_mac(), Some(peer_mac));
            // Ensuring again keeps the resolved MAC (no flap through INCOMPLETE).
            nl.ensure_managed_neighbour(index, server).await.unwrap();
            assert_eq!(
                nl.neighbour(index, server).await.unwrap().unwrap().usable_mac(),
                Some(peer_mac)
            );

            // An operator's static entry is reported, not rewritten.
            match nl.ensure_managed_neighbour(index, pinned).await.unwrap() {
                NeighbourSetup::Static(n) => assert_eq!(n.mac, Some([2, 0, 0, 0, 0, 9])),
                other => panic!("static entry touched: {other:?}"),
            }
            assert!(run("ip neigh show 192.168.77.9 dev d0").contains("PERMANENT"));

            // A MAC change reaches the event stream.
            run("ip neigh replace 192.168.77.9 lladdr 02:00:00:00:00:0a dev d0");
            match next_about(&mut events, pinned).await {
                NeighbourEvent::Changed(n) => assert_eq!(n.mac, Some([2, 0, 0, 0, 0, 0x0a])),
                other => panic!("expected the new MAC, got {other:?}"),
            }
            run("ip neigh del 192.168.77.9 dev d0");
            loop {
                match next_about(&mut events, pinned).await {
                    NeighbourEvent::Removed(_) => break,
                    NeighbourEvent::Overrun => panic!("overrun"),
                    NeighbourEvent::Changed(_) => continue,
                }
            }

            // Clean stop removes our entry and nothing else.
            run("ip neigh add 192.168.77.10 lladdr 02:00:00:00:00:10 dev d0");
            assert!(!nl
                .remove_managed_neighbour(index, Ipv4Addr::new(192, 168, 77, 10))
                .await
                .unwrap());
            assert!(run("ip neigh show 192.168.77.10 dev d0").contains("PERMANENT"));
            assert!(nl.remove_managed_neighbour(index, server).await.unwrap());
            assert_eq!(run("ip neigh show 192.168.77.5 dev d0").trim(), "");
            assert!(!nl.remove_managed_neighbour(index, server).await.unwrap());
        });
    }
}
