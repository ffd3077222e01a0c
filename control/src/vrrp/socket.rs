//! Receiving VRRP: a raw `IPPROTO_VRRP` socket bound to the interface,
//! joined to 224.0.0.18 there, read through tokio. Adverts are sent as whole
//! Ethernet frames (our own MAC as source, as keepalived does) through the
//! AF_PACKET sender in `garp`, not through this socket.

use std::io::{self, Read};
use std::net::Ipv4Addr;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::packet::{MULTICAST_GROUP, PROTOCOL};

/// A raw socket that receives the IPv4 packets (header included) of
/// protocol 112 arriving on one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
}

impl VrrpSocket {
    /// `socket(AF_INET, SOCK_RAW, 112)` bound to `interface`, member of
    /// 224.0.0.18 on it. Must be called inside a tokio runtime.
    pub fn open(interface: &str, ifindex: u32) -> io::Result<Self> {
        let socket =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(PROTOCOL))))
                .map_err(|e| context(e, "socket(AF_INET, SOCK_RAW, IPPROTO_VRRP)"))?;
        socket.set_nonblocking(true)?;
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| context(e, "SO_BINDTODEVICE"))?;
        socket
            .join_multicast_v4_n(&MULTICAST_GROUP, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(|e| context(e, "IP_ADD_MEMBERSHIP 224.0.0.18"))?;
        // Our own adverts leave through AF_PACKET and never loop back here;
        // say so explicitly for anything else sending to the group.
        socket.set_multicast_loop_v4(false)?;
        // Unicast adverts (keepalived's unicast_peer) go out through this
        // socket with the header we build, so the kernel resolves the peer.
        socket.set_header_included_v4(true).map_err(|e| context(e, "IP_HDRINCL"))?;
        // SAFETY: socket2::Socket owns its descriptor: it stays open and
        // `as_raw_fd` returns the same one until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Waits for the next packet; returns its length in `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

impl VrrpSocket {
    /// Sends one whole IPv4 packet (header included) to `dst`.
    pub fn send_to(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = socket2::SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(packet, &addr).map(|_| ())
    }
}

fn context(error: io::Error, call: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{call}: {error}"))
}

/// The IPv4 source of a received packet, for logs.
pub fn source_of(packet: &[u8]) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}
