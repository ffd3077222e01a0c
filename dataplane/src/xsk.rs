//! AF_XDP sockets: one UMEM and one socket per RX queue, with the fill,
//! completion, RX and TX rings behind a safe batch API. This module holds
//! all of xsk-rs's `unsafe`: a frame descriptor is only ever in one place
//! at a time (a kernel ring, the free pool, or the batch being handled).

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::socket::XdpStatistics;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Completions taken per batch at least.
const COMPLETION_BATCH: usize = 64;

/// How the socket binds to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy where the driver supports it, copy otherwise.
    Auto,
    /// Copy mode: works on every driver (veth supports only this).
    Copy,
    /// Zero-copy only: fails where the driver cannot.
    ZeroCopy,
}

/// Socket and UMEM sizes.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// Bytes per UMEM frame (2048 or 4096).
    pub frame_size: u32,
    /// Frames in the UMEM; at least twice the ring size so that the fill
    /// ring and the TX ring can both be full at once.
    pub frames: u32,
    /// Entries in each of the four rings (power of two).
    pub ring_size: u32,
    pub bind: BindMode,
    /// Preferred busy polling (SO_PREFER_BUSY_POLL) with this NAPI budget:
    /// the worker runs its queue's receive processing from its own
    /// `recvfrom()` once per batch, on its own core, instead of leaving it
    /// all to the kernel's NAPI thread. `None` = off.
    pub busy_poll_budget: Option<u16>,
}

/// SO_BUSY_POLL: how long one busy-poll call may spin in the kernel, µs
/// (what DPDK's af_xdp driver uses).
const BUSY_POLL_USECS: libc::c_int = 20;

/// Why a socket could not be opened or serviced.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("invalid AF_XDP setting: {0}")]
    Config(String),
    #[error("creating the UMEM ({frames} frames of {frame_size} bytes): {detail}")]
    Umem { frames: u32, frame_size: u32, detail: String },
    #[error(
        "zero-copy AF_XDP is not supported by {interface} queue {queue} ({detail}); \
         veth and other drivers without XDP zero-copy support work in copy mode only: \
         set bind_mode = \"copy\" or \"auto\""
    )]
    ZeroCopyUnsupported { interface: String, queue: u32, detail: String },
    #[error("binding an AF_XDP socket to {interface} queue {queue} in {mode} mode: {detail}")]
    Bind { interface: String, queue: u32, mode: &'static str, detail: String },
    #[error("{call} on the AF_XDP socket of queue {queue}: {source}")]
    Syscall { call: &'static str, queue: u32, source: io::Error },
}

/// What one call to [`Xsk::process_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Frames taken from the RX ring.
    pub received: usize,
    /// Frames placed on the TX ring.
    pub transmitted: usize,
    /// Frames the handler wanted sent but the TX ring had no room for.
    pub tx_ring_full: usize,
}

/// An AF_XDP socket bound to one RX queue, with its own UMEM.
pub struct Xsk {
    interface: String,
    queue: u32,
    zero_copy: bool,
    umem: Umem,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Frames owned by user space and in no ring.
    free: Vec<FrameDesc>,
    /// Descriptors of the batch being received (capacity fixed at open).
    rx_batch: Vec<FrameDesc>,
    /// Descriptors of the batch being sent.
    tx_batch: Vec<FrameDesc>,
    /// Frames on the TX ring whose completion has not been seen yet.
    tx_outstanding: usize,
    /// The TX ring's size: all of it free = the kernel took every descriptor.
    tx_ring_size: u32,
    // The socket must outlive its rings' users; xsk-rs keeps it alive
    // through the queues, this keeps the fd at hand for the XSKMAP.
    socket_fd: RawFd,
    /// Whether preferred busy polling is on ([`XskConfig::busy_poll_budget`]).
    busy_poll: bool,
}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk")
            .field("interface", &self.interface)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .field("free", &self.free.len())
            .field("tx_outstanding", &self.tx_outstanding)
            .finish_non_exhaustive()
    }
}

impl Xsk {
    /// Creates the UMEM and binds a socket to `interface` queue `queue`.
    /// libxdp is told to load no program: ours steers into the XSKMAP.
    pub fn open(
        interface: &str,
        queue: u32,
        config: &XskConfig,
        max_batch: usize,
    ) -> Result<Self, XskError> {
        if config.frames < 2 * config.ring_size {
            return Err(XskError::Config(format!(
                "umem_frames ({}) must be at least twice ring_size ({})",
                config.frames, config.ring_size
            )));
        }
        let ring = QueueSize::new(config.ring_size)
            .map_err(|e| XskError::Config(format!("ring_size {}: {e}", config.ring_size)))?;
        let frame_size = FrameSize::new(config.frame_size)
            .map_err(|e| XskError::Config(format!("frame_size {}: {e}", config.frame_size)))?;
        let umem_config = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| XskError::Config(format!("UMEM: {e}")))?;
        let frames = NonZeroU32::new(config.frames)
            .ok_or_else(|| XskError::Config("umem_frames must be > 0".to_owned()))?;
        let (umem, descs) = Umem::new(umem_config, frames, false).map_err(|e| XskError::Umem {
            frames: config.frames,
            frame_size: config.frame_size,
            detail: umem_error_hint(&error_chain(&e)),
        })?;
        let if_name: Interface = interface
            .parse()
            .map_err(|_| XskError::Config(format!("interface name {interface:?}")))?;

        let attempts: &[(BindFlags, &'static str)] = match config.bind {
            BindMode::Auto => {
                &[(BindFlags::XDP_ZEROCOPY, "zero-copy"), (BindFlags::XDP_COPY, "copy")]
            }
            BindMode::Copy => &[(BindFlags::XDP_COPY, "copy")],
            BindMode::ZeroCopy => &[(BindFlags::XDP_ZEROCOPY, "zero-copy")],
        };
        let mut last = None;
        for &(mode_flag, mode_name) in attempts {
            let socket_config = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(mode_flag | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM is not shared with another socket on this
            // (interface, queue) pair — each Xsk creates its own UMEM — and
            // libxdp's program load is inhibited, so the double-free hazard
            // xsk-rs documents for shared UMEMs cannot arise.
            match unsafe { Socket::new(socket_config, &umem, &if_name, queue) } {
                Ok((tx, rx, Some((fill, comp)))) => {
                    let socket_fd = rx.fd().as_raw_fd();
                    if let Some(budget) = config.busy_poll_budget {
                        enable_busy_poll(socket_fd, budget)
                            .map_err(|(call, source)| XskError::Syscall { call, queue, source })?;
                    }
                    let mut free = descs;
                    // Room for a completion batch on top of every frame, so
                    // reclaiming never grows the pool on the hot path.
                    free.reserve(COMPLETION_BATCH.max(max_batch));
                    let mut xsk = Xsk {
                        interface: interface.to_owned(),
                        queue,
                        zero_copy: mode_flag.contains(BindFlags::XDP_ZEROCOPY),
                        umem,
                        rx,
                        tx,
                        fill,
                        comp,
                        free,
                        rx_batch: vec![FrameDesc::default(); max_batch.max(1)],
                        tx_batch: Vec::with_capacity(max_batch.max(1)),
                        tx_outstanding: 0,
                        tx_ring_size: config.ring_size,
                        socket_fd,
                        busy_poll: config.busy_poll_budget.is_some(),
                    };
                    xsk.refill();
                    return Ok(xsk);
                }
                Ok((_, _, None)) => {
                    last = Some((mode_name, "libxdp returned no fill/completion rings".to_owned()))
                }
                Err(e) => last = Some((mode_name, error_chain(&e))),
            }
        }
        let (mode, detail) = last.unwrap_or(("copy", "no bind mode attempted".to_owned()));
        if config.bind == BindMode::ZeroCopy {
            return Err(XskError::ZeroCopyUnsupported {
                interface: interface.to_owned(),
                queue,
                detail,
            });
        }
        Err(XskError::Bind { interface: interface.to_owned(), queue, mode, detail })
    }

    /// The RX queue this socket serves.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the socket is bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Receives up to a batch of frames, hands each to `handle` (which
    /// may rewrite it in place and returns `true` to send it back out the
    /// interface), transmits the chosen ones and recycles the rest.
    pub fn process_batch<F>(&mut self, mut handle: F) -> Result<BatchOutcome, XskError>
    where
        F: FnMut(&mut [u8]) -> bool,
    {
        self.reclaim_completions();
        self.refill();
        self.kick_tx_if_needed()?;
        if self.busy_poll {
            self.busy_poll_napi();
        }

        // SAFETY: the descriptors come back filled in by the RX ring of
        // this socket, whose frames all belong to `self.umem`.
        let received = unsafe { self.rx.consume(&mut self.rx_batch) };
        let mut outcome = BatchOutcome { received, ..BatchOutcome::default() };
        if received == 0 {
            return Ok(outcome);
        }
        self.tx_batch.clear();
        for desc in &mut self.rx_batch[..received] {
            // SAFETY: `desc` was just consumed from the RX ring, so the
            // kernel has handed the frame to user space and it is in no
            // other ring; this is the only reference to its memory while
            // `handle` runs.
            let mut data = unsafe { self.umem.data_mut(desc) };
            if handle(data.contents_mut()) {
                self.tx_batch.push(*desc);
            } else {
                self.free.push(*desc);
            }
        }
        if !self.tx_batch.is_empty() {
            // SAFETY: every descriptor in tx_batch belongs to this UMEM
            // and is in no ring; after produce the TX ring owns the first
            // `sent` of them until they come back on the completion ring.
            let sent = unsafe { self.tx.produce(&self.tx_batch) };
            self.tx_outstanding += sent;
            outcome.transmitted = sent;
            outcome.tx_ring_full = self.tx_batch.len() - sent;
            self.free.extend_from_slice(&self.tx_batch[sent..]);
            self.kick_tx_if_needed()?;
        }
        Ok(outcome)
    }

    /// Sleeps until a frame arrives or `timeout_ms` passes; returns whether
    /// frames are waiting. Also serves as the fill-ring wake-up.
    pub fn wait_for_rx(&mut self, timeout_ms: i32) -> Result<bool, XskError> {
        self.rx.poll(timeout_ms).map_err(|source| XskError::Syscall {
            call: "poll",
            queue: self.queue,
            source,
        })
    }

    /// Whether transmitted frames still await completion.
    pub fn tx_pending(&self) -> bool {
        self.tx_outstanding > 0
    }

    /// The kernel's per-socket statistics (drops, ring-full events).
    pub fn statistics(&self) -> Result<XdpStatistics, XskError> {
        self.rx.fd().xdp_statistics().map_err(|source| XskError::Syscall {
            call: "getsockopt(XDP_STATISTICS)",
            queue: self.queue,
            source,
        })
    }

    /// One non-blocking `recvfrom()`: with preferred busy polling the
    /// kernel runs this queue's NAPI poll (up to the budget) right here,
    /// which is what fills the RX ring. Its result says nothing the rings
    /// do not (EAGAIN when nothing came), so it is not looked at.
    fn busy_poll_napi(&self) {
        // SAFETY: a zero-length receive into no buffer with MSG_DONTWAIT on
        // our own socket: the kernel writes nothing to user memory.
        let _ = unsafe {
            libc::recvfrom(
                self.socket_fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    fn reclaim_completions(&mut self) {
        if self.tx_outstanding == 0 {
            return;
        }
        let start = self.free.len();
        let room = self.rx_batch.len().max(COMPLETION_BATCH);
        self.free.resize(start + room, FrameDesc::default());
        // SAFETY: the completion ring only returns frames of this UMEM that
        // we put on the TX ring; once completed the kernel no longer
        // touches them, so they return to the free pool.
        let done = unsafe { self.comp.consume(&mut self.free[start..]) };
        self.free.truncate(start + done);
        self.tx_outstanding -= done.min(self.tx_outstanding);
    }

    fn refill(&mut self) {
        let want = u32::try_from(self.free.len()).unwrap_or(u32::MAX);
        let room = self.fill.nb_free(want) as usize;
        let n = room.min(self.free.len());
        if n == 0 {
            return;
        }
        let from = self.free.len() - n;
        // SAFETY: frames in the free pool belong to this UMEM and are in no
        // ring; the fill ring takes ownership of the ones produced.
        let produced = unsafe { self.fill.produce(&self.free[from..]) };
        self.free.truncate(self.free.len() - produced);
        if produced > 0 && self.fill.needs_wakeup() {
            // A zero-timeout poll is the wake-up the kernel asks for.
            let _ = self.rx.poll(0);
        }
    }

    fn kick_tx_if_needed(&mut self) -> Result<(), XskError> {
        // Sent-but-not-completed frames need no kick: only descriptors the
        // kernel has not taken off the TX ring yet do. In copy mode the TX
        // need_wakeup flag is always set, so without this check every poll
        // while completions lag (even an empty one) would cost a sendto().
        if self.tx_outstanding > 0
            && self.tx.nb_free_exact() < self.tx_ring_size
            && self.tx.needs_wakeup()
        {
            self.tx.wakeup().map_err(|source| XskError::Syscall {
                call: "sendto",
                queue: self.queue,
                source,
            })?;
        }
        Ok(())
    }
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.socket_fd
    }
}

/// Turns on preferred busy polling for `fd` (needs CAP_NET_ADMIN, held
/// while sockets are opened); names the option that failed.
fn enable_busy_poll(fd: RawFd, budget: u16) -> Result<(), (&'static str, io::Error)> {
    let options: [(&'static str, libc::c_int, libc::c_int); 3] = [
        ("setsockopt(SO_PREFER_BUSY_POLL)", libc::SO_PREFER_BUSY_POLL, 1),
        ("setsockopt(SO_BUSY_POLL)", libc::SO_BUSY_POLL, BUSY_POLL_USECS),
        ("setsockopt(SO_BUSY_POLL_BUDGET)", libc::SO_BUSY_POLL_BUDGET, libc::c_int::from(budget)),
    ];
    for (call, option, value) in options {
        // SAFETY: `value` is a live c_int and the length passed is its size;
        // the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err((call, io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// An error and its sources on one line (xsk-rs keeps the errno in the source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn umem_error_hint(detail: &str) -> String {
    if detail.contains("No buffer space") || detail.contains("ENOBUFS") {
        format!(
            "{detail} (the UMEM exceeds RLIMIT_MEMLOCK: run as root with CAP_IPC_LOCK, or \
             lower umem_frames/frame_size)"
        )
    } else {
        detail.to_owned()
    }
}
