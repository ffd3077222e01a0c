//! The XDP steering program (`steer.bpf.c`, built by build.rs): loaded and
//! attached with aya, its service and socket maps filled from the tables,
//! its per-CPU pass/redirect counters read back. The attachment is a
//! bpf_link, so it comes off when the process exits or dies.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf, Pod};

use crate::tables::ServiceKey;
use crate::verdict::SteerStat;

static PROGRAM: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));
const PROGRAM_NAME: &str = "xdplb_steer";

/// Mirror of `struct service_key` in maps.h (network byte order fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C)]
struct ServiceKeyC {
    vip: u32,
    port: u16,
    proto: u8,
    pad: u8,
}
const _: () = assert!(std::mem::size_of::<ServiceKeyC>() == 8);

// SAFETY: ServiceKeyC is repr(C), has no padding (4 + 2 + 1 + 1 bytes, the
// explicit `pad` byte included) and every bit pattern is a valid value.
unsafe impl Pod for ServiceKeyC {}

impl From<&ServiceKey> for ServiceKeyC {
    fn from(key: &ServiceKey) -> Self {
        ServiceKeyC {
            vip: u32::from_ne_bytes(key.vip.octets()),
            port: key.port.to_be(),
            proto: key.proto as u8,
            pad: 0,
        }
    }
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode where the driver allows it, else generic.
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (SKB) mode: works on any interface, slower.
    Generic,
}

/// Why the steering program could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("loading the XDP steering program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the XDP object has no {kind} named {name}")]
    Missing { kind: &'static str, name: &'static str },
    #[error("the kernel rejected the XDP steering program: {0}")]
    Verify(ProgramError),
    #[error(
        "interface {interface} already has an XDP program attached{holder}; \
         xdplb will not replace it (detach it with `ip link set dev {interface} xdp off` \
         if it is a leftover)"
    )]
    Busy { interface: String, holder: String },
    #[error("attaching the XDP steering program to {interface} in {mode} mode: {source}")]
    Attach { interface: String, mode: &'static str, source: ProgramError },
    #[error("updating XDP map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    #[error("BPF_PROG_TEST_RUN of the steering program: {0}")]
    TestRun(io::Error),
    #[error("registering the AF_XDP socket of queue {queue}: {source}")]
    Socket { queue: u32, source: aya::maps::MapError },
}

/// The loaded, attached program and its maps.
pub struct Steering {
    interface: String,
    mode: &'static str,
    services: HashMap<MapData, ServiceKeyC, u32>,
    vips: HashMap<MapData, u32, u32>,
    sockets: XskMap<MapData>,
    stats: PerCpuArray<MapData, u64>,
    installed: BTreeSet<ServiceKeyC>,
    installed_vips: BTreeSet<u32>,
    // Owns the program and its bpf_link: dropping it detaches the program.
    ebpf: Ebpf,
}

impl Steering {
    /// Loads the program and attaches it to `interface`.
    pub fn attach(interface: &str, mode: AttachMode) -> Result<Self, SteerError> {
        let mut steering = Self::load()?;
        let attempts: &[(XdpMode, &'static str)] = match mode {
            AttachMode::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
            AttachMode::Native => &[(XdpMode::Driver, "native")],
            AttachMode::Generic => &[(XdpMode::Skb, "generic")],
        };
        let program = steering.program_mut()?;
        let mut last_error = None;
        for &(xdp_mode, name) in attempts {
            match program.attach(interface, xdp_mode) {
                Ok(_) => {
                    steering.interface = interface.to_owned();
                    steering.mode = name;
                    return Ok(steering);
                }
                Err(e) if is_busy(&e) => {
                    return Err(SteerError::Busy {
                        interface: interface.to_owned(),
                        holder: describe_attached_program(interface),
                    })
                }
                Err(e) => {
                    tracing::debug!(interface, mode = name, error = %e, "XDP attach failed");
                    last_error = Some((name, e));
                }
            }
        }
        let (mode, source) =
            last_error.ok_or(SteerError::Missing { kind: "attach mode", name: "any" })?;
        Err(SteerError::Attach { interface: interface.to_owned(), mode, source })
    }

    /// Loads and verifies the program and takes its maps, attached nowhere
    /// (what [`Self::attach`] starts from, and what tests run frames through).
    pub fn load() -> Result<Self, SteerError> {
        let mut ebpf = Ebpf::load(PROGRAM)?;
        let map_err = |map| move |source| SteerError::Map { map, source };
        let services = HashMap::try_from(take_map(&mut ebpf, "xdplb_services")?)
            .map_err(map_err("xdplb_services"))?;
        let vips =
            HashMap::try_from(take_map(&mut ebpf, "xdplb_vips")?).map_err(map_err("xdplb_vips"))?;
        let sockets =
            XskMap::try_from(take_map(&mut ebpf, "xdplb_xsks")?).map_err(map_err("xdplb_xsks"))?;
        let stats = PerCpuArray::try_from(take_map(&mut ebpf, "xdplb_stats")?)
            .map_err(map_err("xdplb_stats"))?;
        let mut steering = Steering {
            interface: String::new(),
            mode: "detached",
            services,
            vips,
            sockets,
            stats,
            installed: BTreeSet::new(),
            installed_vips: BTreeSet::new(),
            ebpf,
        };
        steering.program_mut()?.load().map_err(SteerError::Verify)?;
        Ok(steering)
    }

    fn program_mut(&mut self) -> Result<&mut Xdp, SteerError> {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(SteerError::Missing { kind: "program", name: PROGRAM_NAME })?
            .try_into()
            .map_err(SteerError::Verify)
    }

    /// Runs one frame through the program with `BPF_PROG_TEST_RUN` and
    /// returns its XDP action (XDP_PASS = 2, XDP_REDIRECT = 4); the
    /// counters move as for a real frame.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, SteerError> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(SteerError::Missing { kind: "program", name: PROGRAM_NAME })?
            .try_into()
            .map_err(SteerError::Verify)?;
        let fd = program.fd().map_err(SteerError::Verify)?.as_fd().as_raw_fd();
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = libxdp_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libxdp_sys::bpf_test_run_opts>(),
            data_in: frame.as_ptr().cast(),
            data_out: out.as_mut_ptr().cast(),
            data_size_in: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data_size_out: u32::try_from(out.len()).unwrap_or(u32::MAX),
            ctx_in: std::ptr::null(),
            ctx_out: std::ptr::null_mut(),
            ctx_size_in: 0,
            ctx_size_out: 0,
            retval: 0,
            repeat: 1,
            duration: 0,
            flags: 0,
            cpu: 0,
            batch_size: 0,
        };
        // SAFETY: `opts` is a fully initialised bpf_test_run_opts whose `sz`
        // is its own size; data_in/data_out point to live buffers of the
        // stated sizes for the duration of the call, and the ctx pointers
        // are null with zero sizes.
        let rc = unsafe { libxdp_sys::bpf_prog_test_run_opts(fd, &mut opts) };
        if rc != 0 {
            return Err(SteerError::TestRun(io::Error::from_raw_os_error(-rc)));
        }
        Ok(opts.retval)
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// "native" or "generic".
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// Makes the program steer exactly these services (and their VIPs):
    /// adds what is new first, then removes what is gone.
    pub fn set_services(&mut self, wanted: &[ServiceKey]) -> Result<(), SteerError> {
        let wanted_keys: BTreeSet<ServiceKeyC> = wanted.iter().map(ServiceKeyC::from).collect();
        let wanted_vips: BTreeSet<u32> = wanted_keys.iter().map(|k| k.vip).collect();
        let map_err = |map| move |source| SteerError::Map { map, source };
        for vip in wanted_vips.difference(&self.installed_vips) {
            self.vips.insert(vip, 1, 0).map_err(map_err("xdplb_vips"))?;
        }
        for key in wanted_keys.difference(&self.installed) {
            self.services.insert(key, 1, 0).map_err(map_err("xdplb_services"))?;
        }
        for key in self.installed.difference(&wanted_keys) {
            self.services.remove(key).map_err(map_err("xdplb_services"))?;
        }
        for vip in self.installed_vips.difference(&wanted_vips) {
            self.vips.remove(vip).map_err(map_err("xdplb_vips"))?;
        }
        self.installed = wanted_keys;
        self.installed_vips = wanted_vips;
        Ok(())
    }

    /// The VIP addresses currently steered.
    pub fn vips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.installed_vips.iter().map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    }

    /// Sends frames of RX queue `queue` to this AF_XDP socket.
    pub fn register_socket(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), SteerError> {
        let fd = socket.as_raw_fd();
        self.sockets.set(queue, fd, 0).map_err(|source| SteerError::Socket { queue, source })
    }

    /// The program's counters, summed over CPUs, indexed by [`SteerStat`].
    pub fn counters(&self) -> Result<[u64; SteerStat::COUNT], SteerError> {
        let mut out = [0u64; SteerStat::COUNT];
        for stat in SteerStat::ALL {
            let per_cpu = self
                .stats
                .get(&(stat as u32), 0)
                .map_err(|source| SteerError::Map { map: "xdplb_stats", source })?;
            out[stat as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("interface", &self.interface)
            .field("mode", &self.mode)
            .field("services", &self.installed.len())
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, SteerError> {
    ebpf.take_map(name).ok_or(SteerError::Missing { kind: "map", name })
}

fn is_busy(error: &ProgramError) -> bool {
    match error {
        ProgramError::SyscallError(e) => {
            matches!(e.io_error.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
        }
        _ => false,
    }
}

/// Names the XDP program currently attached to `interface`, for the error
/// that refuses to replace it: " (program \"name\", id N)".
fn describe_attached_program(interface: &str) -> String {
    let Some(id) = attached_program_id(interface) else {
        return String::new();
    };
    let name = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == id)
        .and_then(|info| info.name_as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!(" (program \"{name}\", id {id})")
}

/// The id of the XDP program attached to `interface` in any mode.
pub fn attached_program_id(interface: &str) -> Option<u32> {
    let index = nix::net::if_::if_nametoindex(interface).ok()?;
    let mut id: u32 = 0;
    // SAFETY: `id` is a valid, writable u32 for the duration of the call and
    // bpf_xdp_query_id only writes one u32 through the pointer.
    let rc = unsafe { libxdp_sys::bpf_xdp_query_id(i32::try_from(index).ok()?, 0, &mut id) };
    if rc != 0 {
        tracing::debug!(interface, error = %io::Error::from_raw_os_error(-rc), "bpf_xdp_query_id");
        return None;
    }
    (id != 0).then_some(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tables::L4Proto;
    use crate::wire::build::{self, FrameSpec};
    use crate::wire::{EtherType, Ipv4Packet, TcpFlags};

    const XDP_PASS: u32 = 2;
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 10);

    #[test]
    fn service_key_is_in_network_byte_order() {
        let key = ServiceKey { vip: VIP, port: 80, proto: L4Proto::Tcp };
        let c = ServiceKeyC::from(&key);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&c.vip.to_ne_bytes());
        bytes.extend_from_slice(&c.port.to_ne_bytes());
        bytes.extend_from_slice(&[c.proto, c.pad]);
        assert_eq!(bytes, [192, 168, 10, 110, 0, 80, 6, 0]);
    }

    fn syn_to(dst: Ipv4Addr, port: u16) -> Vec<u8> {
        build::tcp_frame(&FrameSpec::new(CLIENT, 40000, dst, port), TcpFlags::SYN, &[])
    }

    fn icmp_error_about(vip_port: u16) -> Vec<u8> {
        let reply =
            build::tcp_frame(&FrameSpec::new(VIP, vip_port, CLIENT, 40000), TcpFlags::ACK, &[]);
        build::icmp_frag_needed_frame(&FrameSpec::new(CLIENT, 0, VIP, 0), 1400, &reply)
    }

    fn fragment() -> Vec<u8> {
        let mut frame = syn_to(VIP, 80);
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_dont_frag(false);
        ip.set_frag_offset(100);
        ip.fill_checksum();
        frame
    }

    /// One frame per reason through the real program (BPF_PROG_TEST_RUN):
    /// every frame is passed with its own counter moved. With no socket in
    /// the XSKMAP, frames bound for a worker end as `no_socket`: the test
    /// sees the decision without needing an interface.
    #[test]
    fn every_pass_reason_moves_its_counter() {
        let mut steering = Steering::load().expect("load the steering program (needs root)");
        steering.set_services(&[ServiceKey { vip: VIP, port: 80, proto: L4Proto::Tcp }]).unwrap();

        let mut ihl4 = syn_to(VIP, 80);
        ihl4[14] = 0x44;
        let mut total_too_long = syn_to(VIP, 80);
        Ipv4Packet::new_unchecked(&mut total_too_long[14..]).set_total_len(1000);
        let ipv6 = {
            let mut f = syn_to(VIP, 80);
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            f
        };
        let echo = build::icmp_echo_request_frame(&FrameSpec::new(CLIENT, 0, VIP, 0), 1, 1, b"hi");
        let cases: Vec<(&str, Vec<u8>, SteerStat)> = vec![
            ("service SYN, no socket bound", syn_to(VIP, 80), SteerStat::NoSocket),
            ("fragment to a VIP goes to the worker", fragment(), SteerStat::NoSocket),
            ("ICMP error about a service flow", icmp_error_about(80), SteerStat::NoSocket),
            ("ICMP error about another port", icmp_error_about(22), SteerStat::NotService),
            ("ICMP echo to the VIP", echo, SteerStat::NotService),
            ("other port on the VIP", syn_to(VIP, 22), SteerStat::NotService),
            ("not a VIP", syn_to(Ipv4Addr::new(192, 168, 10, 101), 80), SteerStat::NotVip),
            ("802.1Q", build::with_vlan(&syn_to(VIP, 80), EtherType::Vlan, 7), SteerStat::Vlan),
            ("802.1ad", build::with_vlan(&syn_to(VIP, 80), EtherType::QinQ, 7), SteerStat::Vlan),
            ("IPv6", ipv6, SteerStat::NotIpv4),
            ("IHL 4", ihl4, SteerStat::BadIpv4Header),
            ("total length past the frame", total_too_long, SteerStat::Truncated),
            ("IPv4 header cut short", syn_to(VIP, 80)[..14 + 12].to_vec(), SteerStat::Truncated),
            ("ports cut short", syn_to(VIP, 80)[..14 + 20 + 2].to_vec(), SteerStat::Truncated),
        ];
        for (what, frame, stat) in cases {
            // The kernel refuses test frames shorter than an Ethernet header,
            // so truncation is tested from 14 bytes up.
            let before = steering.counters().unwrap();
            let action = steering.test_run(&frame).unwrap();
            let after = steering.counters().unwrap();
            assert_eq!(action, XDP_PASS, "{what}");
            for s in SteerStat::ALL {
                let moved = after[s as usize] - before[s as usize];
                assert_eq!(moved, u64::from(s == stat), "{what}: counter {}", s.name());
            }
        }
    }

    #[test]
    fn set_services_adds_and_removes_map_entries() {
        let mut steering = Steering::load().expect("load the steering program (needs root)");
        let web = ServiceKey { vip: VIP, port: 80, proto: L4Proto::Tcp };
        let dns =
            ServiceKey { vip: Ipv4Addr::new(192, 168, 10, 111), port: 53, proto: L4Proto::Udp };
        steering.set_services(&[web, dns]).unwrap();
        assert_eq!(steering.vips().count(), 2);
        steering.set_services(&[web]).unwrap();
        assert_eq!(steering.vips().collect::<Vec<_>>(), vec![VIP]);
        // The removed VIP is no longer steered.
        let before = steering.counters().unwrap()[SteerStat::NotVip as usize];
        let frame = build::udp_frame(&FrameSpec::new(CLIENT, 5353, dns.vip, 53), b"q");
        steering.test_run(&frame).unwrap();
        assert_eq!(steering.counters().unwrap()[SteerStat::NotVip as usize], before + 1);
    }
}
