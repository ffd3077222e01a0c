//! What happens to a frame and why. The XDP program decides every pass
//! (a frame in an AF_XDP socket cannot go back to the kernel); the workers
//! forward or drop. Every reason indexes its counter directly.

/// Why the XDP steering program handed a frame to the kernel (or, for
/// `Redirected`, to a socket). Mirrors `enum xdplb_stat` in
/// `steer/maps.h`; the numbering is the per-CPU counter index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SteerStat {
    /// Sent to the AF_XDP socket of its RX queue.
    Redirected = 0,
    /// Not IPv4 (ARP, IPv6, LLDP …): the kernel's business.
    NotIpv4 = 1,
    /// 802.1Q / 802.1ad tagged: the data plane serves untagged frames only.
    Vlan = 2,
    /// Shorter than the headers it claims.
    Truncated = 3,
    /// IPv4 header with IHL < 5 or a total length that does not fit.
    BadIpv4Header = 4,
    /// Destination is not a VIP.
    NotVip = 5,
    /// To a VIP but not to a configured port/protocol (SSH, ping …).
    NotService = 6,
    /// A VIP service, but no socket is bound on this RX queue.
    NoSocket = 7,
}

impl SteerStat {
    pub const COUNT: usize = 8;
    pub const ALL: [SteerStat; Self::COUNT] = [
        Self::Redirected,
        Self::NotIpv4,
        Self::Vlan,
        Self::Truncated,
        Self::BadIpv4Header,
        Self::NotVip,
        Self::NotService,
        Self::NoSocket,
    ];

    /// Stable snake_case name for logs, status and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Redirected => "redirected",
            Self::NotIpv4 => "not_ipv4",
            Self::Vlan => "vlan",
            Self::Truncated => "truncated",
            Self::BadIpv4Header => "bad_ipv4_header",
            Self::NotVip => "not_vip",
            Self::NotService => "not_service",
            Self::NoSocket => "no_socket",
        }
    }
}

/// Why a worker dropped a frame it received on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it claims.
    Truncated = 0,
    /// Not an untagged IPv4 frame (the XDP program should have passed it).
    NotIpv4 = 1,
    /// IHL < 5, total length out of range, or IP version not 4.
    BadIpv4Header = 2,
    /// The IPv4 header checksum does not verify.
    BadIpv4Checksum = 3,
    /// An IPv4 fragment: not forwarded (see the README, "Fragments").
    Fragment = 4,
    /// No service for this VIP:port/protocol in the current snapshot.
    NoService = 5,
    /// The service has no real server that can take a new flow
    /// (all weight 0, unhealthy, or without a known MAC).
    NoRealServer = 6,
    /// A new flow found the flow table full; existing flows are kept.
    FlowTableFull = 7,
    /// An ICMP error about a flow this worker does not know.
    IcmpNoFlow = 8,
    /// An ICMP message to a VIP that is not an error we forward, or whose
    /// embedded header is unreadable.
    IcmpUnsupported = 9,
    /// The flow's real server has no MAC any more.
    NoMac = 10,
    /// The TX ring had no room.
    TxRingFull = 11,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::Truncated,
        Self::NotIpv4,
        Self::BadIpv4Header,
        Self::BadIpv4Checksum,
        Self::Fragment,
        Self::NoService,
        Self::NoRealServer,
        Self::FlowTableFull,
        Self::IcmpNoFlow,
        Self::IcmpUnsupported,
        Self::NoMac,
        Self::TxRingFull,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::NotIpv4 => "not_ipv4",
            Self::BadIpv4Header => "bad_ipv4_header",
            Self::BadIpv4Checksum => "bad_ipv4_checksum",
            Self::Fragment => "fragment",
            Self::NoService => "no_service",
            Self::NoRealServer => "no_real_server",
            Self::FlowTableFull => "flow_table_full",
            Self::IcmpNoFlow => "icmp_no_flow",
            Self::IcmpUnsupported => "icmp_unsupported",
            Self::NoMac => "no_mac",
            Self::TxRingFull => "tx_ring_full",
        }
    }
}

/// How a forwarded frame found its real server; counted like drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardKind {
    /// Belongs to a flow already in the table.
    Established = 0,
    /// A TCP SYN or a UDP datagram without an entry: scheduled, entry made.
    NewFlow = 1,
    /// A TCP segment without SYN and without an entry (IPVS `sloppy_tcp`):
    /// scheduled like a new flow, counted apart.
    SloppyTcp = 2,
    /// An ICMP error about a known flow, sent to that flow's real server.
    IcmpError = 3,
}

impl ForwardKind {
    pub const COUNT: usize = 4;
    pub const ALL: [ForwardKind; Self::COUNT] =
        [Self::Established, Self::NewFlow, Self::SloppyTcp, Self::IcmpError];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Established => "established",
            Self::NewFlow => "new_flow",
            Self::SloppyTcp => "sloppy_tcp",
            Self::IcmpError => "icmp_error",
        }
    }
}

/// What a worker does with one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place; send it back out the interface.
    Forward(ForwardKind),
    Drop(DropReason),
}
