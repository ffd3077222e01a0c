//! VRRP advertisements on the wire: VRRPv2 (RFC 3768) and VRRPv3 over IPv4 (RFC 5798) as a
//! checked view over bytes ([`AdvertPacket`]) and an owned [`Advert`]; the frame keepalived
//! sends ([`FrameBuilder`]); and the receive checks of RFC 3768 §7.1 / RFC 5798 §7.1
//! ([`receive`], [`validate`]), where every dropped advert has a [`DropReason`].

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::tables::Mac;
use dataplane::wire::{ethernet, ipv4, EtherType, EthernetFrame, Ipv4Packet};

use crate::config::Ipv4Net;

//= https://www.rfc-editor.org/rfc/rfc3768#section-5.2.4
//# The IP protocol number assigned by the IANA for VRRP is 112 (decimal).
/// The IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;

//= https://www.rfc-editor.org/rfc/rfc3768#section-5.2.2
//# The IP multicast address as assigned by the IANA for VRRP is:
//#
//#    224.0.0.18
/// The group every advertisement goes to unless unicast peers are configured.
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// The Ethernet address of [`MULTICAST_GROUP`] (RFC 1112 §6.4).
pub const MULTICAST_MAC: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];

//= https://www.rfc-editor.org/rfc/rfc3768#section-5.2.3
//# The TTL MUST be set to 255.  A VRRP router receiving a packet with
//# the TTL not equal to 255 MUST discard the packet.
/// The IPv4 TTL of every advertisement.
pub const TTL: u8 = 255;

/// The IPv4 TOS byte keepalived sends: precedence "internetwork control" (0xc0).
pub const TOS: u8 = 0xc0;

/// The fixed part of the message, before the addresses.
pub const HEADER_LEN: usize = 8;

/// The VRRPv2 authentication data after the addresses (absent in v3).
pub const AUTH_DATA_LEN: usize = 8;

/// The message type of an advertisement, the only one defined.
pub const TYPE_ADVERTISEMENT: u8 = 1;

/// The most addresses one advertisement can list (the count is one byte).
pub const MAX_ADDRESSES: usize = 255;

/// The largest VRRPv3 interval: 12 bits of centiseconds (40.95 s).
pub const MAX_V3_INTERVAL_CS: u16 = 0x0fff;

mod field {
    use core::ops::Range;

    /// Version in the high nibble, type in the low nibble.
    pub(super) const VER_TYPE: usize = 0;
    pub(super) const VRID: usize = 1;
    pub(super) const PRIORITY: usize = 2;
    pub(super) const COUNT: usize = 3;
    /// v2: the authentication type.
    pub(super) const AUTH_TYPE: usize = 4;
    /// v2: the advertisement interval in seconds.
    pub(super) const ADVER_INT_V2: usize = 5;
    /// v3: 4 reserved bits, then the 12-bit interval in centiseconds.
    pub(super) const MAX_ADVER_INT_V3: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
    pub(super) const ADDRESSES: usize = 8;
}

/// The VRRP protocol version of an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768: whole-second intervals, optional password (keepalived's default).
    V2,
    /// VRRPv3, RFC 5798: centisecond intervals, no authentication.
    V3,
}

impl Version {
    /// The number in the version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// The version with this number, if we speak it.
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }

    /// The interval an advertisement field value stands for: seconds (v2) or centiseconds (v3).
    pub fn interval(self, field: u16) -> Duration {
        match self {
            Self::V2 => Duration::from_secs(u64::from(field)),
            Self::V3 => Duration::from_millis(u64::from(field) * 10),
        }
    }

    /// The advertisement field value for `interval`, if this version can carry it exactly:
    /// whole seconds 1–255 (v2) or whole centiseconds 1–4095 (v3).
    pub fn interval_field(self, interval: Duration) -> Option<u16> {
        let (unit, max) = match self {
            Self::V2 => (Duration::from_secs(1), u16::from(u8::MAX)),
            Self::V3 => (Duration::from_millis(10), MAX_V3_INTERVAL_CS),
        };
        let units = interval.as_nanos() / unit.as_nanos();
        let exact = interval.as_nanos() % unit.as_nanos() == 0;
        let field = u16::try_from(units).ok()?;
        (exact && (1..=max).contains(&field)).then_some(field)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VRRPv{}", self.number())
    }
}

//= https://www.rfc-editor.org/rfc/rfc2338#section-5.3.6
//# 0 - No Authentication
//# 1 - Simple Text Password
//# 2 - IP Authentication Header
/// The VRRPv2 authentication type byte. RFC 3768 reserves 1 and 2; keepalived still sends 1
/// (RFC 2338's simple password) for `auth_type PASS`, so we speak it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 0: no authentication.
    None,
    /// 1: a cleartext password of up to 8 bytes in the authentication data.
    Pass,
    /// 2: IPsec AH (keepalived's `auth_type AH`); not supported here.
    Ah,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for AuthType {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::None,
            1 => Self::Pass,
            2 => Self::Ah,
            other => Self::Unknown(other),
        }
    }
}

impl From<AuthType> for u8 {
    fn from(value: AuthType) -> Self {
        match value {
            AuthType::None => 0,
            AuthType::Pass => 1,
            AuthType::Ah => 2,
            AuthType::Unknown(other) => other,
        }
    }
}

/// VRRPv2 authentication as configured or as received; VRRPv3 carries none.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// No authentication (type 0); the authentication data is zero on the wire.
    None,
    /// keepalived's `auth_type PASS`: the password NUL-padded to 8 bytes (type 1).
    Pass([u8; AUTH_DATA_LEN]),
}

impl Auth {
    /// A password of 1 to 8 bytes, NUL-padded as keepalived sends it.
    pub fn pass(password: &[u8]) -> Result<Self, VrrpError> {
        if password.is_empty() || password.len() > AUTH_DATA_LEN {
            return Err(VrrpError::BadPassword { len: password.len() });
        }
        let mut data = [0; AUTH_DATA_LEN];
        data[..password.len()].copy_from_slice(password);
        Ok(Self::Pass(data))
    }

    /// The authentication type byte this sends.
    pub const fn auth_type(&self) -> AuthType {
        match self {
            Self::None => AuthType::None,
            Self::Pass(_) => AuthType::Pass,
        }
    }

    /// The 8 bytes of authentication data this sends.
    pub const fn data(&self) -> [u8; AUTH_DATA_LEN] {
        match self {
            Self::None => [0; AUTH_DATA_LEN],
            Self::Pass(data) => *data,
        }
    }
}

/// Leaves the password out of logs.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Pass(_) => f.write_str("Pass(..)"),
        }
    }
}

/// Why bytes are not an advertisement, or an advertisement cannot be written.
/// `Copy` and allocation-free: the receive path maps it to a [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VrrpError {
    /// The buffer ends before the fixed header does.
    #[error("VRRP message truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The version nibble is neither 2 nor 3.
    #[error("VRRP version {0}, expected 2 or 3")]
    BadVersion(u8),
    /// The type nibble is not 1 (advertisement).
    #[error("VRRP type {0}, expected 1 (advertisement)")]
    BadType(u8),
    /// A VRRPv2 authentication type other than 0 (none) or 1 (password).
    #[error("VRRPv2 authentication type {0} not supported (0 = none and 1 = PASS are)")]
    BadAuthType(u8),
    /// The message length disagrees with what its address count implies.
    #[error("VRRP message of {actual} bytes, but {count} addresses make {expected}")]
    LengthMismatch {
        /// The address count field.
        count: u8,
        /// The length that count implies.
        expected: usize,
        /// The length there is.
        actual: usize,
    },
    /// More addresses than the one-byte count can carry.
    #[error("{0} addresses in one advertisement, at most 255 fit")]
    TooManyAddresses(usize),
    /// An interval the version cannot carry (v2: 0–255 s; v3: 0–4095 cs).
    #[error("{version} cannot carry advertisement interval field {value}")]
    IntervalOutOfRange {
        /// The version of the advertisement.
        version: Version,
        /// The interval field asked for.
        value: u16,
    },
    /// Authentication asked for in a VRRPv3 advertisement, which has no field for it.
    #[error("VRRPv3 carries no authentication; use VRRPv2 for auth_type PASS")]
    AuthInV3,
    /// The buffer to write into is too small.
    #[error("buffer of {available} bytes, the advertisement needs {needed}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// A password that is empty or longer than 8 bytes.
    #[error("auth_pass of {len} bytes, expected 1 to 8")]
    BadPassword {
        /// Its length.
        len: usize,
    },
}

/// The length of a message of `version` listing `count` addresses.
pub const fn message_len(version: Version, count: usize) -> usize {
    HEADER_LEN
        + count * 4
        + match version {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        }
}

/// The VRID of a message, for demultiplexing several instances on one socket before
/// anything else is looked at.
pub fn peek_vrid(message: &[u8]) -> Option<u8> {
    message.get(field::VRID).copied()
}

/// A view of a VRRP message in `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AdvertPacket<T> {
    /// Wraps `buffer` without looking at it: accessors panic if it is shorter than
    /// the message claims. For buffers the caller sized itself.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a received message: the fixed header is there, the version is 2 or 3 and the
    /// buffer holds at least the addresses (and v2 authentication data) the count claims.
    /// The buffer may be longer; [`message`](Self::message) ends where the message does.
    pub fn new_checked(buffer: T) -> Result<Self, VrrpError> {
        let available = buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(VrrpError::Truncated { needed: HEADER_LEN, available });
        }
        let packet = Self { buffer };
        let number = packet.version_number();
        let version = Version::from_number(number).ok_or(VrrpError::BadVersion(number))?;
        let expected = message_len(version, usize::from(packet.count()));
        if available < expected {
            return Err(VrrpError::LengthMismatch {
                count: packet.count(),
                expected,
                actual: available,
            });
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The version nibble as sent.
    pub fn version_number(&self) -> u8 {
        self.data()[field::VER_TYPE] >> 4
    }

    /// The version, if it is one we speak (always, in a checked view).
    pub fn version(&self) -> Option<Version> {
        Version::from_number(self.version_number())
    }

    /// The type nibble (1 = advertisement).
    pub fn msg_type(&self) -> u8 {
        self.data()[field::VER_TYPE] & 0x0f
    }

    /// The virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.data()[field::VRID]
    }

    /// The sender's priority (0 = "stopping", 255 = address owner).
    pub fn priority(&self) -> u8 {
        self.data()[field::PRIORITY]
    }

    /// The number of addresses listed.
    pub fn count(&self) -> u8 {
        self.data()[field::COUNT]
    }

    /// The VRRPv2 authentication type (the reserved/interval byte in v3: not meaningful there).
    pub fn auth_type(&self) -> AuthType {
        AuthType::from(self.data()[field::AUTH_TYPE])
    }

    /// The interval field: seconds (v2) or centiseconds with the reserved bits masked (v3).
    pub fn interval_field(&self) -> u16 {
        match self.version() {
            Some(Version::V3) => {
                let b = &self.data()[field::MAX_ADVER_INT_V3];
                u16::from_be_bytes([b[0], b[1]]) & MAX_V3_INTERVAL_CS
            }
            _ => u16::from(self.data()[field::ADVER_INT_V2]),
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.data()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The length of the message: header, addresses and (v2) authentication data.
    pub fn message_len(&self) -> usize {
        let version = self.version().unwrap_or(Version::V3);
        message_len(version, usize::from(self.count()))
    }

    /// The message bytes, without anything that follows them in the buffer.
    pub fn message(&self) -> &[u8] {
        &self.data()[..self.message_len()]
    }

    /// The listed addresses.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let end = field::ADDRESSES + usize::from(self.count()) * 4;
        self.data()[field::ADDRESSES..end]
            .chunks_exact(4)
            .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }

    /// The VRRPv2 authentication data (`None` for v3).
    pub fn auth_data(&self) -> Option<&[u8]> {
        match self.version() {
            Some(Version::V2) => {
                let start = field::ADDRESSES + usize::from(self.count()) * 4;
                Some(&self.data()[start..start + AUTH_DATA_LEN])
            }
            _ => None,
        }
    }

    /// Whether the checksum verifies: over the message alone (v2) or over the message and
    /// the IPv4 pseudo-header of `src` and `dst` (v3). A view of an unknown version fails.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        match self.version() {
            Some(version) => {
                let sum = message_sum(version, self.message(), src, dst, false);
                fold(sum) == 0xffff
            }
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AdvertPacket<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version and type nibbles.
    pub fn set_version_type(&mut self, version: Version, msg_type: u8) {
        self.data_mut()[field::VER_TYPE] = (version.number() << 4) | (msg_type & 0x0f);
    }

    /// Sets the virtual router ID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.data_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.data_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count; the buffer must hold that many addresses before they are used.
    pub fn set_count(&mut self, count: u8) {
        self.data_mut()[field::COUNT] = count;
    }

    /// Sets the interval field for the version already set, writing v3's reserved bits as zero.
    pub fn set_interval_field(&mut self, field_value: u16) {
        match self.version() {
            Some(Version::V3) => {
                let value = (field_value & MAX_V3_INTERVAL_CS).to_be_bytes();
                self.data_mut()[field::MAX_ADVER_INT_V3].copy_from_slice(&value);
            }
            _ => {
                self.data_mut()[field::ADVER_INT_V2] = u8::try_from(field_value).unwrap_or(u8::MAX)
            }
        }
    }

    /// Sets the VRRPv2 authentication type.
    pub fn set_auth_type(&mut self, auth_type: AuthType) {
        self.data_mut()[field::AUTH_TYPE] = auth_type.into();
    }

    /// Sets the checksum field as given (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.data_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets address `index` (below the count).
    pub fn set_address(&mut self, index: usize, addr: Ipv4Addr) {
        let at = field::ADDRESSES + index * 4;
        self.data_mut()[at..at + 4].copy_from_slice(&addr.octets());
    }

    /// The VRRPv2 authentication data, writable (empty for v3).
    pub fn auth_data_mut(&mut self) -> &mut [u8] {
        let start = field::ADDRESSES + usize::from(self.count()) * 4;
        match self.version() {
            Some(Version::V2) => &mut self.data_mut()[start..start + AUTH_DATA_LEN],
            _ => &mut self.data_mut()[start..start],
        }
    }

    /// Computes the checksum (v3: over the pseudo-header of `src` and `dst`) and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let version = self.version().unwrap_or(Version::V3);
        let sum = message_sum(version, self.message(), src, dst, true);
        self.set_checksum(!fold(sum));
    }
}

//= https://www.rfc-editor.org/rfc/rfc3768#section-5.3.8
//# The checksum is the 16-bit one's complement of the one's complement
//# sum of the entire VRRP message starting with the version field.  For
//# computing the checksum, the checksum field is set to zero.
//
//= https://www.rfc-editor.org/rfc/rfc5798#section-5.2.8
//# The checksum is the 16-bit one's complement of the one's complement
//# sum of the entire VRRP message starting with the version field and a
//# "pseudo-header" as defined in Section 8.1 of [RFC2460].  The next
//# header field in the "pseudo-header" should be set to 112 (decimal)
//# for VRRP.  For computing the checksum, the checksum field is set to
//# zero.
// keepalived 2.2.7 reads that as the IPv4 pseudo-header for VRRPv3 over IPv4 (RFC 9568 later
// dropped it); interoperating with keepalived is what counts here.
/// The one's complement sum (unfolded) of `message` and, for v3, the IPv4 pseudo-header;
/// with `skip_checksum` the checksum field counts as zero.
fn message_sum(
    version: Version,
    message: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    skip_checksum: bool,
) -> u64 {
    let mut sum = 0u64;
    for (i, pair) in message.chunks(2).enumerate() {
        if skip_checksum && i * 2 == field::CHECKSUM.start {
            continue;
        }
        sum += u64::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
    }
    if version == Version::V3 {
        for word in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
            sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        sum += u64::from(PROTOCOL);
        sum += message.len() as u64;
    }
    sum
}

/// Folds the carries of a one's complement sum into 16 bits.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A VRRP advertisement, owned: what a router says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// The protocol version.
    pub version: Version,
    /// The virtual router ID, 1–255.
    pub vrid: u8,
    /// The sender's priority: 0 = stopping, 1–254 backups, 255 = address owner.
    pub priority: u8,
    /// The interval field: seconds (v2, ≤ 255) or centiseconds (v3, ≤ 4095).
    pub interval_field: u16,
    /// VRRPv2 authentication; always [`Auth::None`] in v3.
    pub auth: Auth,
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr>,
}

impl Advert {
    /// Parses one VRRP message, exactly (an IP payload: no trailing bytes). Checks the
    /// structure only; the checksum needs the IP addresses (see [`validate`]).
    pub fn parse(message: &[u8]) -> Result<Self, VrrpError> {
        let packet = AdvertPacket::new_checked(message)?;
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(VrrpError::BadType(packet.msg_type()));
        }
        let version = packet.version().ok_or(VrrpError::BadVersion(packet.version_number()))?;
        if message.len() != packet.message_len() {
            return Err(VrrpError::LengthMismatch {
                count: packet.count(),
                expected: packet.message_len(),
                actual: message.len(),
            });
        }
        let auth = match (version, packet.auth_type(), packet.auth_data()) {
            (Version::V3, ..) => Auth::None,
            (Version::V2, AuthType::None, _) => Auth::None,
            (Version::V2, AuthType::Pass, Some(data)) => {
                let mut pass = [0; AUTH_DATA_LEN];
                pass.copy_from_slice(data);
                Auth::Pass(pass)
            }
            (Version::V2, other, _) => return Err(VrrpError::BadAuthType(other.into())),
        };
        Ok(Self {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            interval_field: packet.interval_field(),
            auth,
            addresses: packet.addresses().collect(),
        })
    }

    /// The advertisement interval the sender announces.
    pub fn interval(&self) -> Duration {
        self.version.interval(self.interval_field)
    }

    /// The length of the message [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        message_len(self.version, self.addresses.len())
    }

    /// Writes the message into the start of `buf` with its checksum (v3: over the pseudo-header
    /// of `src` and `dst`); returns its length.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize, VrrpError> {
        let count = u8::try_from(self.addresses.len())
            .map_err(|_| VrrpError::TooManyAddresses(self.addresses.len()))?;
        let max = match self.version {
            Version::V2 => u16::from(u8::MAX),
            Version::V3 => MAX_V3_INTERVAL_CS,
        };
        if self.interval_field > max {
            return Err(VrrpError::IntervalOutOfRange {
                version: self.version,
                value: self.interval_field,
            });
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(VrrpError::AuthInV3);
        }
        let len = self.buffer_len();
        let available = buf.len();
        let buf = buf.get_mut(..len).ok_or(VrrpError::BufferTooSmall { needed: len, available })?;
        buf.fill(0);
        let mut packet = AdvertPacket::new_unchecked(buf);
        packet.set_version_type(self.version, TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_count(count);
        if self.version == Version::V2 {
            packet.set_auth_type(self.auth.auth_type());
        }
        packet.set_interval_field(self.interval_field);
        for (i, addr) in self.addresses.iter().enumerate() {
            packet.set_address(i, *addr);
        }
        if self.version == Version::V2 {
            packet.auth_data_mut().copy_from_slice(&self.auth.data());
        }
        packet.fill_checksum(src, dst);
        Ok(len)
    }

    /// The message as bytes (see [`emit`](Self::emit)).
    pub fn to_bytes(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Vec<u8>, VrrpError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf, src, dst)?;
        Ok(buf)
    }
}

/// The Ethernet address an IPv4 multicast group maps to (RFC 1112 §6.4): 01:00:5e and the
/// group's low 23 bits.
pub fn multicast_mac(group: Ipv4Addr) -> Mac {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Where an advertisement is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The VRRP group 224.0.0.18 (the default).
    Multicast,
    /// One unicast peer (keepalived's `unicast_peer`), at this Ethernet address.
    Unicast {
        /// The peer's address.
        ip: Ipv4Addr,
        /// The peer's Ethernet address (from the neighbour table).
        mac: Mac,
    },
}

impl Destination {
    /// The IPv4 destination.
    pub const fn ip(&self) -> Ipv4Addr {
        match self {
            Self::Multicast => MULTICAST_GROUP,
            Self::Unicast { ip, .. } => *ip,
        }
    }

    /// The Ethernet destination.
    pub const fn mac(&self) -> Mac {
        match self {
            Self::Multicast => MULTICAST_MAC,
            Self::Unicast { mac, .. } => *mac,
        }
    }
}

/// The IPv4 packet carrying `advert` as keepalived 2.2.7 sends it: TOS 0xc0, identification
/// `ident`, DF clear, TTL 255, protocol 112, no options. For raw sockets with `IP_HDRINCL`.
pub fn ipv4_packet(
    advert: &Advert,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
) -> Result<Vec<u8>, VrrpError> {
    let mut buf = vec![0; ipv4::MIN_HEADER_LEN + advert.buffer_len()];
    write_ipv4(&mut buf, advert, src, dst, ident)?;
    Ok(buf)
}

fn write_ipv4(
    buf: &mut [u8],
    advert: &Advert,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
) -> Result<(), VrrpError> {
    let (header, payload) = buf.split_at_mut(ipv4::MIN_HEADER_LEN);
    let len = advert.emit(payload, src, dst)?;
    let total = u16::try_from(ipv4::MIN_HEADER_LEN + len)
        .map_err(|_| VrrpError::TooManyAddresses(advert.addresses.len()))?;
    let mut ip = Ipv4Packet::new_unchecked(header);
    ip.set_version(4);
    ip.set_header_len(ipv4::MIN_HEADER_LEN);
    ip.set_dscp_ecn(TOS);
    ip.set_total_len(total);
    ip.set_ident(ident);
    ip.set_dont_frag(false);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(TTL);
    ip.set_protocol(PROTOCOL);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    Ok(())
}

/// The whole Ethernet frame carrying `advert`: from our own MAC (keepalived's default; never
/// the VRRP virtual MAC 00:00:5e:00:01:xx) to `dest`, with [`ipv4_packet`]'s header.
/// Not padded to 60 bytes: the NIC does that, and keepalived's captures show 54.
pub fn ethernet_frame(
    advert: &Advert,
    src_mac: Mac,
    src_ip: Ipv4Addr,
    dest: Destination,
    ident: u16,
) -> Result<Vec<u8>, VrrpError> {
    let mut buf = vec![0; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + advert.buffer_len()];
    let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    let mut frame = EthernetFrame::new_unchecked(eth);
    frame.set_dst(dest.mac());
    frame.set_src(src_mac);
    frame.set_ethertype(EtherType::Ipv4);
    write_ipv4(rest, advert, src_ip, dest.ip(), ident)?;
    Ok(buf)
}

/// Builds a router's successive advertisement frames with an IP identification that goes up
/// by one each time, as the kernel numbers keepalived's (1, 2, 3 … in the captures).
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    src_mac: Mac,
    src_ip: Ipv4Addr,
    next_ident: u16,
}

impl FrameBuilder {
    /// Frames from `src_mac` (our own interface MAC) and `src_ip` (the interface's primary
    /// address); the first carries identification 1.
    pub const fn new(src_mac: Mac, src_ip: Ipv4Addr) -> Self {
        Self { src_mac, src_ip, next_ident: 1 }
    }

    /// Starts the identification at `ident` instead.
    pub const fn with_next_ident(mut self, ident: u16) -> Self {
        self.next_ident = ident;
        self
    }

    /// The identification the next frame gets.
    pub const fn next_ident(&self) -> u16 {
        self.next_ident
    }

    /// The source address frames carry.
    pub const fn src_ip(&self) -> Ipv4Addr {
        self.src_ip
    }

    /// The next Ethernet frame, to `dest`.
    pub fn frame(&mut self, advert: &Advert, dest: Destination) -> Result<Vec<u8>, VrrpError> {
        let frame = ethernet_frame(advert, self.src_mac, self.src_ip, dest, self.next_ident)?;
        self.next_ident = self.next_ident.wrapping_add(1);
        Ok(frame)
    }

    /// The next IPv4 packet (for a raw IP socket), to `dst`.
    pub fn ipv4(&mut self, advert: &Advert, dst: Ipv4Addr) -> Result<Vec<u8>, VrrpError> {
        let packet = ipv4_packet(advert, self.src_ip, dst, self.next_ident)?;
        self.next_ident = self.next_ident.wrapping_add(1);
        Ok(packet)
    }
}

/// What the receive checks compare an advertisement with: one instance's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The version we speak (keepalived's `vrrp_version`, default 2).
    pub version: Version,
    /// Our VRID.
    pub vrid: u8,
    /// Our VRRPv2 authentication (must be [`Auth::None`] for v3).
    pub auth: Auth,
    /// Our interval field (seconds for v2, centiseconds for v3).
    pub interval_field: u16,
    /// Our virtual addresses, which adverts must list (keepalived checks them).
    pub virtual_addresses: Vec<Ipv4Addr>,
    /// The subnet of the interface; adverts from outside it are dropped. `None`: not checked.
    pub subnet: Option<Ipv4Net>,
    /// keepalived's `unicast_peer`: empty means multicast to 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
}

impl Local {
    /// Our own advertisement at `priority` (0 when stopping).
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.version,
            vrid: self.vrid,
            priority,
            interval_field: self.interval_field,
            auth: self.auth,
            addresses: self.virtual_addresses.clone(),
        }
    }
}

/// The IPv4 header fields the receive checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpMeta {
    /// The sender.
    pub src: Ipv4Addr,
    /// The group or unicast address it was sent to.
    pub dst: Ipv4Addr,
    /// The TTL as received.
    pub ttl: u8,
}

/// Why a received advertisement was dropped. `Copy`, `#[repr(u8)]`: the value indexes the
/// per-reason counters ([`DropReason::ALL`] lists them in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[repr(u8)]
pub enum DropReason {
    /// The IPv4 header is malformed (bad version, IHL or total length).
    #[error("malformed IPv4 header")]
    IpMalformed,
    /// The IPv4 protocol is not 112.
    #[error("IP protocol is not VRRP (112)")]
    NotVrrp,
    /// A fragment: adverts are never fragmented.
    #[error("IPv4 fragment")]
    IpFragment,
    /// The IPv4 header checksum is wrong.
    #[error("IPv4 header checksum mismatch")]
    IpChecksum,
    /// Shorter than the fixed VRRP header.
    #[error("shorter than the VRRP header")]
    Truncated,
    /// TTL not 255: the advert crossed a router (or was forged off-link).
    #[error("TTL is not 255")]
    Ttl,
    /// A version other than the one configured.
    #[error("VRRP version differs from ours")]
    Version,
    /// A type other than 1 (advertisement).
    #[error("unknown VRRP packet type")]
    PacketType,
    /// An authentication type we do not support (AH or unknown).
    #[error("unsupported authentication type")]
    AuthTypeInvalid,
    /// A supported authentication type that is not ours.
    #[error("authentication type differs from ours")]
    AuthTypeMismatch,
    /// The password differs from ours.
    #[error("wrong password")]
    AuthFailure,
    /// The length disagrees with the address count.
    #[error("length disagrees with the address count")]
    Length,
    /// The VRRP checksum is wrong.
    #[error("VRRP checksum mismatch")]
    Checksum,
    /// A VRRPv2 interval other than ours, or a VRRPv3 interval of 0.
    #[error("advertisement interval differs from ours")]
    AdvertInt,
    /// Multicast received while configured for unicast peers, or the other way round.
    #[error("multicast/unicast destination differs from our configuration")]
    Destination,
    /// The sender is not on the interface's subnet.
    #[error("source address not on the interface's subnet")]
    SourceNotOnSubnet,
    /// Unicast from an address that is not one of our peers.
    #[error("source address is not a configured unicast peer")]
    SourceNotPeer,
    /// A different number of virtual addresses than ours.
    #[error("number of virtual addresses differs from ours")]
    AddressCount,
    /// The virtual addresses differ from ours.
    #[error("virtual addresses differ from ours")]
    AddressList,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 19] = [
        Self::IpMalformed,
        Self::NotVrrp,
        Self::IpFragment,
        Self::IpChecksum,
        Self::Truncated,
        Self::Ttl,
        Self::Version,
        Self::PacketType,
        Self::AuthTypeInvalid,
        Self::AuthTypeMismatch,
        Self::AuthFailure,
        Self::Length,
        Self::Checksum,
        Self::AdvertInt,
        Self::Destination,
        Self::SourceNotOnSubnet,
        Self::SourceNotPeer,
        Self::AddressCount,
        Self::AddressList,
    ];

    /// The number of reasons (the size of a counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// The counter index.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name metrics and logs use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::IpMalformed => "ip_malformed",
            Self::NotVrrp => "not_vrrp",
            Self::IpFragment => "ip_fragment",
            Self::IpChecksum => "ip_checksum",
            Self::Truncated => "truncated",
            Self::Ttl => "ttl",
            Self::Version => "version",
            Self::PacketType => "packet_type",
            Self::AuthTypeInvalid => "auth_type_invalid",
            Self::AuthTypeMismatch => "auth_type_mismatch",
            Self::AuthFailure => "auth_failure",
            Self::Length => "length",
            Self::Checksum => "checksum",
            Self::AdvertInt => "advert_int",
            Self::Destination => "destination",
            Self::SourceNotOnSubnet => "source_not_on_subnet",
            Self::SourceNotPeer => "source_not_peer",
            Self::AddressCount => "address_count",
            Self::AddressList => "address_list",
        }
    }
}

/// What the receive checks decided about a packet that is not a usable advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// Another virtual router's advert: not ours, ignored, not an error.
    #[error("advert for VRID {0}, not ours")]
    OtherVrid(u8),
    /// Ours, and dropped for this reason (count it, log it).
    #[error("advert dropped: {0}")]
    Drop(DropReason),
}

impl From<DropReason> for Rejection {
    fn from(reason: DropReason) -> Self {
        Self::Drop(reason)
    }
}

/// An advertisement that passed every check, with the header fields it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The IPv4 header fields.
    pub ip: IpMeta,
    /// The advertisement.
    pub advert: Advert,
}

/// Checks a received IPv4 packet (as a raw `IPPROTO_VRRP` socket delivers it, header
/// included) and returns the advert in it: the IPv4 header first, then [`validate`].
pub fn receive(ip_packet: &[u8], local: &Local) -> Result<Received, Rejection> {
    let ip = Ipv4Packet::new_checked(ip_packet).map_err(|_| DropReason::IpMalformed)?;
    if ip.protocol() != PROTOCOL {
        return Err(DropReason::NotVrrp.into());
    }
    if ip.is_fragment() {
        return Err(DropReason::IpFragment.into());
    }
    if !ip.verify_checksum() {
        return Err(DropReason::IpChecksum.into());
    }
    let meta = IpMeta { src: ip.src_addr(), dst: ip.dst_addr(), ttl: ip.ttl() };
    let advert = validate(&meta, ip.payload(), local)?;
    Ok(Received { ip: meta, advert })
}

/// The receive checks of RFC 3768 §7.1 / RFC 5798 §7.1 (and keepalived's `vrrp_check_packet`)
/// on one VRRP `message` (the IP payload), in that order: another VRID is
/// [`Rejection::OtherVrid`], every failed check a [`Rejection::Drop`] with its reason.
pub fn validate(ip: &IpMeta, message: &[u8], local: &Local) -> Result<Advert, Rejection> {
    if message.len() < HEADER_LEN {
        return Err(DropReason::Truncated.into());
    }
    // keepalived demultiplexes on the VRID before any check: another router's broken advert
    // is its business, not a drop of ours.
    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify that the VRID is configured on the receiving
    //#    interface and the local router is not the IP Address owner
    //#    (Priority equals 255 (decimal)).
    let packet = AdvertPacket::new_unchecked(message);
    if packet.vrid() != local.vrid {
        return Err(Rejection::OtherVrid(packet.vrid()));
    }
    let multicast = local.unicast_peers.is_empty();

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify that the IP TTL is 255.
    // keepalived skips this for unicast peers, whose adverts may be routed.
    if multicast && ip.ttl != TTL {
        return Err(DropReason::Ttl.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify the VRRP version is 2.
    //
    //= https://www.rfc-editor.org/rfc/rfc5798#section-7.1
    //# -  MUST verify that the VRRP version is 3.
    if packet.version_number() != local.version.number() {
        return Err(DropReason::Version.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-5.3.2
    //# A packet with unknown type MUST be discarded.
    if packet.msg_type() != TYPE_ADVERTISEMENT {
        return Err(DropReason::PacketType.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-5.3.6
    //# A packet with unknown authentication type or that does not match the
    //# locally configured authentication method MUST be discarded.
    if local.version == Version::V2 {
        match packet.auth_type() {
            AuthType::None | AuthType::Pass => {}
            AuthType::Ah | AuthType::Unknown(_) => {
                return Err(DropReason::AuthTypeInvalid.into());
            }
        }
        if packet.auth_type() != local.auth.auth_type() {
            return Err(DropReason::AuthTypeMismatch.into());
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify that the received packet contains the complete VRRP
    //#    packet (including fixed fields, IP Address(es), and Authentication
    //#    Data).
    // keepalived also refuses trailing bytes: the IP total length bounds the message.
    if message.len() != packet.message_len() {
        return Err(DropReason::Length.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify the VRRP checksum.
    if !packet.verify_checksum(ip.src, ip.dst) {
        return Err(DropReason::Checksum.into());
    }

    // The password is compared after the checksum, as keepalived does: a corrupted advert
    // counts as corrupted, not as an attack.
    if let (Auth::Pass(ours), Some(theirs)) = (local.auth, packet.auth_data()) {
        if ours[..] != *theirs {
            return Err(DropReason::AuthFailure.into());
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MUST verify that the Adver Interval in the packet is the same as
    //#    the locally configured for this virtual router
    // VRRPv3 has no such rule: a backup adopts the master's interval (RFC 5798 §6.4.2), but
    // an interval of 0 would make its master-down timer fire at once.
    match local.version {
        Version::V2 if packet.interval_field() != local.interval_field => {
            return Err(DropReason::AdvertInt.into());
        }
        Version::V3 if packet.interval_field() == 0 => return Err(DropReason::AdvertInt.into()),
        _ => {}
    }

    if ip.dst.is_multicast() != multicast {
        return Err(DropReason::Destination.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-5.2.1
    //# The primary IP address of the interface the packet is being sent
    //# from.
    // So a multicast advert from outside our subnet is not from a router on our link.
    if let Some(subnet) = local.subnet {
        if multicast && !subnet.contains(ip.src) {
            return Err(DropReason::SourceNotOnSubnet.into());
        }
    }
    if !multicast && !local.unicast_peers.contains(&ip.src) {
        return Err(DropReason::SourceNotPeer.into());
    }

    //= https://www.rfc-editor.org/rfc/rfc3768#section-7.1
    //# -  MAY verify that the IP address(es) associated with the VRID are
    //#    valid
    // keepalived drops on a mismatch (also for VRRPv3, where the RFC only asks for a log):
    // two routers that disagree on the VIPs must not elect one another.
    if usize::from(packet.count()) != local.virtual_addresses.len() {
        return Err(DropReason::AddressCount.into());
    }
    if !local.virtual_addresses.iter().all(|vip| packet.addresses().any(|a| a == *vip)) {
        return Err(DropReason::AddressList.into());
    }

    Advert::parse(message).map_err(|e| Rejection::Drop(parse_reason(e)))
}

/// The drop reason for a parse failure (unreachable after the checks above; kept total).
const fn parse_reason(error: VrrpError) -> DropReason {
    match error {
        VrrpError::Truncated { .. } => DropReason::Truncated,
        VrrpError::BadVersion(_) => DropReason::Version,
        VrrpError::BadType(_) => DropReason::PacketType,
        VrrpError::BadAuthType(_) => DropReason::AuthTypeInvalid,
        _ => DropReason::Length,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vrrp::capture;
    use proptest::prelude::*;

    const LVS1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 101);
    const LVS2: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 102);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
    const LVS1_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65];
    const LVS2_MAC: Mac = [0x02, 0x00, 0x00, 0x0a, 0x00, 0x66];

    /// Frame 1 of `shared/fixtures/vrrp-v2-adverts.pcap`: keepalived 2.2.7's first advert
    /// as master (lvs1, VRID 51, priority 120, auth PASS "1111", VIP .110), 54 bytes.
    #[rustfmt::skip]
    const KEEPALIVED_ADVERT: [u8; 54] = [
        // Ethernet: to 01:00:5e:00:00:12, from lvs1's own MAC, IPv4
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x02, 0x00, 0x00, 0x0a, 0x00, 0x65, 0x08, 0x00,
        // IPv4: IHL 5, TOS 0xc0, length 40, ID 1, DF clear, TTL 255, proto 112, checksum,
        // 192.168.10.101 → 224.0.0.18
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x0f, 0x85,
        0xc0, 0xa8, 0x0a, 0x65, 0xe0, 0x00, 0x00, 0x12,
        // VRRP: v2 advert, VRID 51, priority 120, 1 address, auth 1, 1 s, checksum 0x3851
        0x21, 0x33, 0x78, 0x01, 0x01, 0x01, 0x38, 0x51,
        // 192.168.10.110, then "1111" NUL-padded to 8 bytes
        0xc0, 0xa8, 0x0a, 0x6e,
        0x31, 0x31, 0x31, 0x31, 0x00, 0x00, 0x00, 0x00,
    ];

    /// The seed lab's instance: VRID 51, advert_int 1, auth PASS "1111", VIP .110, /24.
    fn seed_local() -> Local {
        Local {
            version: Version::V2,
            vrid: 51,
            auth: Auth::pass(b"1111").unwrap(),
            interval_field: 1,
            virtual_addresses: vec![VIP],
            subnet: Some(Ipv4Net { addr: Ipv4Addr::new(192, 168, 10, 0), prefix_len: 24 }),
            unicast_peers: vec![],
        }
    }

    fn mac_of(ip: Ipv4Addr) -> Mac {
        match ip {
            LVS1 => LVS1_MAC,
            LVS2 => LVS2_MAC,
            other => panic!("no director at {other}"),
        }
    }

    #[test]
    fn keepalived_first_advert_decodes_field_by_field() {
        let ip = Ipv4Packet::new_checked(&KEEPALIVED_ADVERT[14..]).unwrap();
        assert_eq!((ip.dscp_ecn(), ip.ttl(), ip.protocol(), ip.ident()), (0xc0, 255, 112, 1));
        assert!(!ip.dont_frag() && !ip.is_fragment() && ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (LVS1, MULTICAST_GROUP));
        let packet = AdvertPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(packet.checksum(), 0x3851);
        assert!(packet.verify_checksum(LVS1, MULTICAST_GROUP));
        assert_eq!(packet.auth_data(), Some(&b"1111\0\0\0\0"[..]));
        let advert = Advert::parse(ip.payload()).unwrap();
        assert_eq!(
            advert,
            Advert {
                version: Version::V2,
                vrid: 51,
                priority: 120,
                interval_field: 1,
                auth: Auth::Pass(*b"1111\0\0\0\0"),
                addresses: vec![VIP],
            }
        );
        assert_eq!(advert.interval(), Duration::from_secs(1));
        assert_eq!(seed_local().advert(120), advert);
    }

    #[test]
    fn keepalived_first_advert_reencodes_byte_for_byte() {
        let advert = seed_local().advert(120);
        let frame = ethernet_frame(&advert, LVS1_MAC, LVS1, Destination::Multicast, 1).unwrap();
        assert_eq!(frame, KEEPALIVED_ADVERT);
        let packet = ipv4_packet(&advert, LVS1, MULTICAST_GROUP, 1).unwrap();
        assert_eq!(packet, KEEPALIVED_ADVERT[14..]);
        assert_eq!(advert.to_bytes(LVS1, MULTICAST_GROUP).unwrap(), KEEPALIVED_ADVERT[34..]);
    }

    /// Every advert in both captures: as the fixtures README describes it, accepted by the
    /// receive checks, and rebuilt byte for byte from the decoded advert and its IP ID.
    #[test]
    fn every_captured_advert_decodes_and_reencodes_exactly() {
        let mut seen = 0;
        for file in [capture::V2_ADVERTS, capture::PRIO0_FAILOVER] {
            let mut last_ident: Option<(Ipv4Addr, u16)> = None;
            for frame in capture::frames(file) {
                let eth = EthernetFrame::new_checked(&frame.data[..]).unwrap();
                if eth.ethertype() != EtherType::Ipv4 {
                    continue;
                }
                seen += 1;
                let got = receive(eth.payload(), &seed_local()).unwrap();
                let src = got.ip.src;
                assert_eq!(eth.dst(), MULTICAST_MAC);
                assert_eq!(eth.src(), mac_of(src), "adverts leave from the director's own MAC");
                assert_ne!(eth.src()[..5], [0x00, 0x00, 0x5e, 0x00, 0x01]);
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert_eq!((ip.dscp_ecn(), ip.ttl(), ip.protocol()), (TOS, TTL, PROTOCOL));
                assert!(!ip.dont_frag() && ip.dst_addr() == MULTICAST_GROUP);
                if let Some((prev_src, prev)) = last_ident {
                    if prev_src == src {
                        assert_eq!(ip.ident(), prev.wrapping_add(1), "IP ID +1 per advert");
                    }
                }
                last_ident = Some((src, ip.ident()));
                let advert = &got.advert;
                assert_eq!(
                    (advert.version, advert.vrid, advert.interval_field),
                    (Version::V2, 51, 1)
                );
                assert_eq!(advert.auth, Auth::pass(b"1111").unwrap());
                assert_eq!(advert.addresses, [VIP]);
                assert!([0, 110, 120].contains(&advert.priority));
                let rebuilt =
                    ethernet_frame(advert, eth.src(), src, Destination::Multicast, ip.ident())
                        .unwrap();
                assert_eq!(rebuilt, frame.data);
            }
        }
        assert!(seen >= 20, "{seen} adverts");
    }

    #[test]
    fn frame_builder_numbers_adverts_as_the_kernel_did_for_keepalived() {
        let mut builder = FrameBuilder::new(LVS1_MAC, LVS1);
        let advert = seed_local().advert(120);
        for frame in capture::frames(capture::V2_ADVERTS) {
            assert_eq!(builder.frame(&advert, Destination::Multicast).unwrap(), frame.data);
        }
        let mut builder = FrameBuilder::new(LVS2_MAC, LVS2).with_next_ident(u16::MAX);
        let last = builder.ipv4(&advert, MULTICAST_GROUP).unwrap();
        assert_eq!(Ipv4Packet::new_checked(&last[..]).unwrap().ident(), u16::MAX);
        assert_eq!(builder.next_ident(), 0);
    }

    #[test]
    fn unicast_destination_addresses_the_peer() {
        let dest = Destination::Unicast { ip: LVS2, mac: LVS2_MAC };
        let frame = ethernet_frame(&seed_local().advert(120), LVS1_MAC, LVS1, dest, 7).unwrap();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (LVS2_MAC, LVS1_MAC));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.dst_addr(), ip.ident(), ip.ttl()), (LVS2, 7, 255));
        let local = Local { unicast_peers: vec![LVS1], ..seed_local() };
        assert_eq!(receive(eth.payload(), &local).unwrap().advert.priority, 120);
    }

    #[test]
    fn multicast_mac_keeps_the_low_23_bits() {
        assert_eq!(multicast_mac(MULTICAST_GROUP), MULTICAST_MAC);
        assert_eq!(multicast_mac(Ipv4Addr::new(239, 129, 2, 3)), [1, 0, 0x5e, 1, 2, 3]);
    }

    /// A VRRPv3 advert (no capture of keepalived v3 in the fixtures): the layout of RFC 5798
    /// §5.1, the checksum over the IPv4 pseudo-header as keepalived computes it.
    #[test]
    fn v3_layout_and_pseudo_header_checksum() {
        let advert = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 110,
            interval_field: 100,
            auth: Auth::None,
            addresses: vec![VIP],
        };
        let bytes = advert.to_bytes(LVS2, MULTICAST_GROUP).unwrap();
        assert_eq!(bytes.len(), 12);
        assert_eq!(bytes[..6], [0x31, 51, 110, 1, 0x00, 100]);
        // The checksum by hand: pseudo-header (src, dst, 0, 112, length 12) and the message.
        let words =
            [0xc0a8u32, 0x0a66, 0xe000, 0x0012, 112, 12, 0x3133, 0x6e01, 0x0064, 0xc0a8, 0x0a6e];
        let sum = fold(words.iter().map(|w| u64::from(*w)).sum());
        assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), !sum);
        let packet = AdvertPacket::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(LVS2, MULTICAST_GROUP));
        assert!(!packet.verify_checksum(LVS2, LVS1), "the pseudo-header includes the destination");
        assert_eq!(Advert::parse(&bytes).unwrap(), advert);
        assert_eq!(advert.interval(), Duration::from_secs(1));
        // Reserved bits are ignored on reception (RFC 5798 §5.2.6) and written as zero.
        let mut reserved = bytes.clone();
        reserved[4] |= 0xf0;
        assert_eq!(Advert::parse(&reserved).unwrap(), advert);
    }

    #[test]
    fn emit_refuses_what_the_wire_cannot_carry() {
        let v2 = seed_local().advert(100);
        let too_long = Advert { interval_field: 256, ..v2.clone() };
        assert_eq!(
            too_long.to_bytes(LVS1, MULTICAST_GROUP),
            Err(VrrpError::IntervalOutOfRange { version: Version::V2, value: 256 })
        );
        let v3 =
            Advert { version: Version::V3, interval_field: 4096, auth: Auth::None, ..v2.clone() };
        assert!(matches!(
            v3.to_bytes(LVS1, MULTICAST_GROUP),
            Err(VrrpError::IntervalOutOfRange { .. })
        ));
        let v3_auth = Advert { version: Version::V3, ..v2.clone() };
        assert_eq!(v3_auth.to_bytes(LVS1, MULTICAST_GROUP), Err(VrrpError::AuthInV3));
        let many = Advert { addresses: vec![VIP; 256], ..v2.clone() };
        assert_eq!(many.to_bytes(LVS1, MULTICAST_GROUP), Err(VrrpError::TooManyAddresses(256)));
        let mut small = [0u8; 10];
        assert_eq!(
            v2.emit(&mut small, LVS1, MULTICAST_GROUP),
            Err(VrrpError::BufferTooSmall { needed: 20, available: 10 })
        );
        assert_eq!(Auth::pass(b"123456789"), Err(VrrpError::BadPassword { len: 9 }));
        assert_eq!(Auth::pass(b""), Err(VrrpError::BadPassword { len: 0 }));
    }

    #[test]
    fn parse_names_what_is_wrong() {
        let message = &KEEPALIVED_ADVERT[34..];
        assert_eq!(
            Advert::parse(&message[..7]),
            Err(VrrpError::Truncated { needed: 8, available: 7 })
        );
        let mut bad = message.to_vec();
        bad[0] = 0x41;
        assert_eq!(Advert::parse(&bad), Err(VrrpError::BadVersion(4)));
        bad[0] = 0x22;
        assert_eq!(Advert::parse(&bad), Err(VrrpError::BadType(2)));
        bad[0] = 0x21;
        bad[4] = 2;
        assert_eq!(Advert::parse(&bad), Err(VrrpError::BadAuthType(2)));
        assert_eq!(
            Advert::parse(&message[..19]),
            Err(VrrpError::LengthMismatch { count: 1, expected: 20, actual: 19 })
        );
        assert_eq!(
            Advert::parse(&[message, &[0; 4]].concat()),
            Err(VrrpError::LengthMismatch { count: 1, expected: 20, actual: 24 })
        );
        assert_eq!(
            VrrpError::LengthMismatch { count: 1, expected: 20, actual: 19 }.to_string(),
            "VRRP message of 19 bytes, but 1 addresses make 20"
        );
        assert_eq!(
            VrrpError::BadAuthType(2).to_string(),
            "VRRPv2 authentication type 2 not supported (0 = none and 1 = PASS are)"
        );
    }

    #[test]
    fn version_interval_fields() {
        assert_eq!(Version::V2.interval_field(Duration::from_secs(1)), Some(1));
        assert_eq!(Version::V2.interval_field(Duration::from_millis(1500)), None);
        assert_eq!(Version::V2.interval_field(Duration::from_secs(256)), None);
        assert_eq!(Version::V2.interval_field(Duration::ZERO), None);
        assert_eq!(Version::V3.interval_field(Duration::from_millis(1500)), Some(150));
        assert_eq!(Version::V3.interval_field(Duration::from_millis(1505)), None);
        assert_eq!(Version::V3.interval_field(Duration::from_millis(40_950)), Some(4095));
        assert_eq!(Version::V3.interval_field(Duration::from_millis(40_960)), None);
        assert_eq!(Version::V3.interval(150), Duration::from_millis(1500));
    }

    /// Which checksums [`mutated`] recomputes after the change.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fix {
        /// None: the change itself is what is tested.
        Nothing,
        /// The IPv4 header checksum.
        Ip,
        /// The VRRP checksum, then the IPv4 header checksum.
        Both,
    }

    /// Rewrites keepalived's advert (as an IPv4 packet), then recomputes the checksums
    /// `fix` names, so that the check under test is the one that fails.
    fn mutated(edit: impl FnOnce(&mut Vec<u8>), fix: Fix) -> Vec<u8> {
        let mut packet = KEEPALIVED_ADVERT[14..].to_vec();
        edit(&mut packet);
        if fix == Fix::Both {
            let ip = Ipv4Packet::new_unchecked(&packet[..]);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let version = Version::from_number(packet[20] >> 4).unwrap();
            let sum = message_sum(version, &packet[20..], src, dst, true);
            AdvertPacket::new_unchecked(&mut packet[20..]).set_checksum(!fold(sum));
        }
        if fix != Fix::Nothing {
            Ipv4Packet::new_unchecked(&mut packet[..]).fill_checksum();
        }
        packet
    }

    fn set_total_len(packet: &mut [u8], len: usize) {
        Ipv4Packet::new_unchecked(packet).set_total_len(u16::try_from(len).unwrap());
    }

    /// One case per drop reason: a change to keepalived's advert (or to our configuration)
    /// that the receive checks must drop for exactly that reason.
    #[test]
    fn every_drop_reason_has_a_case() {
        type Edit = fn(&mut Vec<u8>);
        type Configure = fn(&mut Local);
        let cases: [(DropReason, Edit, Fix, Configure); 19] = [
            (DropReason::IpMalformed, |p| p.truncate(10), Fix::Nothing, |_| {}),
            (DropReason::NotVrrp, |p| p[9] = 17, Fix::Ip, |_| {}),
            (DropReason::IpFragment, |p| p[6] = 0x20, Fix::Ip, |_| {}),
            (DropReason::IpChecksum, |p| p[8] = 254, Fix::Nothing, |_| {}),
            (
                DropReason::Truncated,
                |p| {
                    p.truncate(24);
                    set_total_len(p, 24)
                },
                Fix::Ip,
                |_| {},
            ),
            (DropReason::Ttl, |p| p[8] = 64, Fix::Both, |_| {}),
            (DropReason::Version, |p| p[20] = 0x31, Fix::Both, |_| {}),
            (DropReason::PacketType, |p| p[20] = 0x22, Fix::Both, |_| {}),
            (DropReason::AuthTypeInvalid, |p| p[24] = 2, Fix::Both, |_| {}),
            (DropReason::AuthTypeMismatch, |p| p[24] = 0, Fix::Both, |_| {}),
            (DropReason::AuthFailure, |p| p[35] = b'2', Fix::Both, |_| {}),
            (
                DropReason::Length,
                |p| {
                    p.extend([0; 4]);
                    set_total_len(p, 44)
                },
                Fix::Both,
                |_| {},
            ),
            (DropReason::Checksum, |p| p[31] = 0x6f, Fix::Ip, |_| {}),
            (DropReason::AdvertInt, |p| p[25] = 2, Fix::Both, |_| {}),
            (
                DropReason::Destination,
                |p| p[16..20].copy_from_slice(&[192, 168, 10, 102]),
                Fix::Both,
                |_| {},
            ),
            (
                DropReason::SourceNotOnSubnet,
                |p| p[12..16].copy_from_slice(&[10, 0, 0, 1]),
                Fix::Both,
                |_| {},
            ),
            (
                DropReason::SourceNotPeer,
                |p| p[16..20].copy_from_slice(&[192, 168, 10, 102]),
                Fix::Both,
                |l| l.unicast_peers = vec![Ipv4Addr::new(192, 168, 10, 103)],
            ),
            (
                DropReason::AddressCount,
                |_| {},
                Fix::Ip,
                |l| l.virtual_addresses.push(Ipv4Addr::new(192, 168, 10, 111)),
            ),
            (
                DropReason::AddressList,
                |_| {},
                Fix::Ip,
                |l| l.virtual_addresses = vec![Ipv4Addr::new(192, 168, 10, 111)],
            ),
        ];
        let mut covered = Vec::new();
        for (reason, edit, fix, configure) in cases {
            let packet = mutated(edit, fix);
            let mut local = seed_local();
            configure(&mut local);
            assert_eq!(receive(&packet, &local), Err(Rejection::Drop(reason)), "{}", reason.name());
            covered.push(reason);
        }
        covered.sort();
        assert_eq!(covered, DropReason::ALL, "one case per reason");
    }

    #[test]
    fn another_vrid_is_not_ours_not_a_drop() {
        // Even when broken in other ways: another router's problem is not ours to count.
        let packet = mutated(
            |p| {
                p[21] = 52;
                p[8] = 64
            },
            Fix::Ip,
        );
        assert_eq!(receive(&packet, &seed_local()), Err(Rejection::OtherVrid(52)));
        assert_eq!(peek_vrid(&packet[20..]), Some(52));
        assert!(receive(&KEEPALIVED_ADVERT[14..], &seed_local()).is_ok());
    }

    #[test]
    fn v3_adopts_any_interval_but_zero() {
        let local =
            Local { version: Version::V3, auth: Auth::None, interval_field: 100, ..seed_local() };
        for (field, ok) in [(100, true), (25, true), (4095, true), (0, false)] {
            let advert = Advert { interval_field: field, ..local.advert(110) };
            let packet = ipv4_packet(&advert, LVS2, MULTICAST_GROUP, 1).unwrap();
            let got = receive(&packet, &local);
            if ok {
                assert_eq!(got.unwrap().advert.interval_field, field);
            } else {
                assert_eq!(got, Err(Rejection::Drop(DropReason::AdvertInt)));
            }
        }
    }

    #[test]
    fn drop_reasons_index_their_counters_by_stable_names() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            let name = reason.name();
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            assert_eq!(DropReason::ALL.iter().filter(|r| r.name() == name).count(), 1);
        }
        assert_eq!(DropReason::COUNT, 19);
        assert_eq!(Rejection::Drop(DropReason::Ttl).to_string(), "advert dropped: TTL is not 255");
    }

    fn arb_advert() -> impl Strategy<Value = Advert> {
        let v2 = (any::<u8>(), prop::option::of(any::<[u8; 8]>())).prop_map(|(int, pass)| {
            (Version::V2, u16::from(int), pass.map_or(Auth::None, Auth::Pass))
        });
        let v3 = (0..=MAX_V3_INTERVAL_CS).prop_map(|int| (Version::V3, int, Auth::None));
        (
            prop_oneof![v2, v3],
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..12),
        )
            .prop_map(|((version, interval_field, auth), vrid, priority, addresses)| {
                Advert { version, vrid, priority, interval_field, auth, addresses }
            })
    }

    fn arb_ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..80),
            src in arb_ip(),
            ttl in any::<u8>(),
        ) {
            let _ = Advert::parse(&bytes);
            if let Ok(p) = AdvertPacket::new_checked(&bytes[..]) {
                let _ = (p.vrid(), p.priority(), p.auth_type(), p.interval_field(), p.checksum());
                let _ = (p.addresses().count(), p.auth_data(), p.message().len());
                let _ = p.verify_checksum(src, MULTICAST_GROUP);
            }
            let meta = IpMeta { src, dst: MULTICAST_GROUP, ttl };
            let _ = validate(&meta, &bytes, &seed_local());
            let _ = receive(&bytes, &seed_local());
            let _ = peek_vrid(&bytes);
        }

        #[test]
        fn encode_then_decode_is_the_identity(
            advert in arb_advert(),
            src in arb_ip(),
            dst in arb_ip(),
        ) {
            let bytes = advert.to_bytes(src, dst).unwrap();
            prop_assert_eq!(bytes.len(), advert.buffer_len());
            prop_assert_eq!(Advert::parse(&bytes).unwrap(), advert.clone());
            prop_assert!(AdvertPacket::new_checked(&bytes[..]).unwrap().verify_checksum(src, dst));
            // The whole path: our frame, through the receive checks of a matching instance.
            let local = Local {
                version: advert.version,
                vrid: advert.vrid,
                auth: advert.auth,
                interval_field: advert.interval_field,
                virtual_addresses: advert.addresses.clone(),
                subnet: Some(Ipv4Net { addr: src, prefix_len: 24 }),
                unicast_peers: vec![],
            };
            let frame = ethernet_frame(&advert, LVS1_MAC, src, Destination::Multicast, 9).unwrap();
            let got = receive(&frame[ethernet::HEADER_LEN..], &local);
            let zero_v3 = advert.version == Version::V3 && advert.interval_field == 0;
            if zero_v3 {
                prop_assert_eq!(got, Err(Rejection::Drop(DropReason::AdvertInt)));
            } else {
                prop_assert_eq!(got.unwrap().advert, advert);
            }
        }

        #[test]
        fn any_single_bit_flip_in_the_message_is_caught(
            advert in arb_advert(),
            src in arb_ip(),
            bit in any::<prop::sample::Index>(),
        ) {
            let mut bytes = advert.to_bytes(src, MULTICAST_GROUP).unwrap();
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let caught = match (Advert::parse(&bytes), AdvertPacket::new_checked(&bytes[..])) {
                (Ok(_), Ok(p)) => !p.verify_checksum(src, MULTICAST_GROUP),
                _ => true,
            };
            prop_assert!(caught, "bit {} flipped unnoticed", bit);
        }

        #[test]
        fn any_single_bit_flip_in_the_ip_packet_is_rejected(
            bit in 0usize..(40 * 8),
        ) {
            let mut packet = KEEPALIVED_ADVERT[14..].to_vec();
            packet[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(receive(&packet, &seed_local()).is_err(), "bit {}", bit);
        }
    }
}
