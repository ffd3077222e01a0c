//! The XDP steering program (`steer.bpf.c`, built by build.rs): loaded and
//! attached with aya, its service and socket maps filled from the tables,
//! its per-CPU pass/redirect counters read back. The attachment is a
//! bpf_link, so it comes off when the process exits or dies.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

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
    _ebpf: Ebpf,
}

impl Steering {
    /// Loads the program and attaches it to `interface`.
    pub fn attach(interface: &str, mode: AttachMode) -> Result<Self, SteerError> {
        let mut ebpf = Ebpf::load(PROGRAM)?;
        let services = take_map(&mut ebpf, "xdplb_services")?;
        let vips = take_map(&mut ebpf, "xdplb_vips")?;
        let sockets = take_map(&mut ebpf, "xdplb_xsks")?;
        let stats = take_map(&mut ebpf, "xdplb_stats")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(SteerError::Missing { kind: "program", name: PROGRAM_NAME })?
            .try_into()
            .map_err(SteerError::Verify)?;
        program.load().map_err(SteerError::Verify)?;

        let attempts: &[(XdpMode, &'static str)] = match mode {
            AttachMode::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
            AttachMode::Native => &[(XdpMode::Driver, "native")],
            AttachMode::Generic => &[(XdpMode::Skb, "generic")],
        };
        let mut attached = None;
        let mut last_error = None;
        for &(xdp_mode, name) in attempts {
            match program.attach(interface, xdp_mode) {
                Ok(_) => {
                    attached = Some(name);
                    break;
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
        let Some(mode) = attached else {
            let (mode, source) = last_error.ok_or(SteerError::Missing {
                kind: "attach mode",
                name: "any",
            })?;
            return Err(SteerError::Attach { interface: interface.to_owned(), mode, source });
        };
        let services = HashMap::try_from(services)
            .map_err(|source| SteerError::Map { map: "xdplb_services", source })?;
        let vips =
            HashMap::try_from(vips).map_err(|source| SteerError::Map { map: "xdplb_vips", source })?;
        let sockets =
            XskMap::try_from(sockets).map_err(|source| SteerError::Map { map: "xdplb_xsks", source })?;
        let stats = PerCpuArray::try_from(stats)
            .map_err(|source| SteerError::Map { map: "xdplb_stats", source })?;
        Ok(Steering {
            interface: interface.to_owned(),
            mode,
            services,
            vips,
            sockets,
            stats,
            installed: BTreeSet::new(),
            installed_vips: BTreeSet::new(),
            _ebpf: ebpf,
        })
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
    let rc = unsafe {
        libxdp_sys::bpf_xdp_query_id(i32::try_from(index).ok()?, 0, &mut id)
    };
    if rc != 0 {
        tracing::debug!(interface, error = %io::Error::from_raw_os_error(-rc), "bpf_xdp_query_id");
        return None;
    }
    (id != 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::L4Proto;

    #[test]
    fn service_key_is_in_network_byte_order() {
        let key = ServiceKey { vip: Ipv4Addr::new(192, 168, 10, 110), port: 80, proto: L4Proto::Tcp };
        let c = ServiceKeyC::from(&key);
        let bytes: [u8; 8] = [
            c.vip.to_ne_bytes()[0],
            c.vip.to_ne_bytes()[1],
            c.vip.to_ne_bytes()[2],
            c.vip.to_ne_bytes()[3],
            c.port.to_ne_bytes()[0],
            c.port.to_ne_bytes()[1],
            c.proto,
            c.pad,
        ];
        assert_eq!(bytes, [192, 168, 10, 110, 0, 80, 6, 0]);
    }
}
