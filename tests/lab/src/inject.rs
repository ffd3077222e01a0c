//! Raw Ethernet frames sent from inside a lab namespace through an AF_PACKET
//! socket bound to one interface: how tests put malformed or hand-made
//! frames on the wire. Binding needs a `sockaddr_ll`, which nix 0.29 can
//! only build unsafely, so this one module holds the lab's unsafe code.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{send, socket, AddressFamily, MsgFlags, SockFlag, SockType};

/// An AF_PACKET socket that sends whole frames out of one interface of the
/// calling thread's namespace. Protocol 0: it receives nothing.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

impl PacketSocket {
    /// Opens the socket and binds it to `ifname`.
    pub fn bind(ifname: &str) -> Result<Self> {
        let ifindex =
            if_nametoindex(ifname).with_context(|| format!("if_nametoindex({ifname})"))?;
        let fd = socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC, None)
            .context("socket(AF_PACKET, SOCK_RAW)")?;
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0,
            sll_ifindex: i32::try_from(ifindex).context("ifindex out of range")?,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `fd` is an open socket we own; `addr` is a fully initialised
        // sockaddr_ll that lives across the call, and `len` is its size, so the
        // kernel reads only memory of `addr`.
        let rc =
            unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_ll).cast(), len) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("bind(AF_PACKET) to {ifname}"));
        }
        Ok(Self { fd, ifname: ifname.to_owned() })
    }

    /// Sends one frame (Ethernet header included) as it is.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        let sent = send(self.fd.as_raw_fd(), frame, MsgFlags::empty())
            .with_context(|| format!("send {} bytes on {}", frame.len(), self.ifname))?;
        ensure!(sent == frame.len(), "sent {sent} of {} bytes on {}", frame.len(), self.ifname);
        Ok(())
    }

    /// Sends every frame, `gap` apart so a burst cannot overrun the receiver's
    /// queue (the tests count frames; a queue drop would look like a bug).
    pub fn send_all(&self, frames: &[Vec<u8>], gap: Duration) -> Result<usize> {
        for (i, frame) in frames.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                std::thread::sleep(gap);
            }
            self.send(frame).with_context(|| format!("frame {i}"))?;
        }
        Ok(frames.len())
    }
}
