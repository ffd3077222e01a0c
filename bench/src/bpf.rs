//! The bench's three XDP programs (generator, sink, XDP_TX reflector, built
//! from src/bpf/ by build.rs), loading and attaching them with aya, and the
//! one system call aya lacks: BPF_PROG_RUN with live frames. The only
//! `unsafe` of the crate lives here, one FFI call.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf};

/// The generator object (src/bpf/gen.bpf.c).
pub static GEN_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.bpf.o"));
/// The sink object (src/bpf/sink.bpf.c).
pub static SINK_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));
/// The XDP_TX reflector object (src/bpf/reflect.bpf.c).
pub static REFLECT_OBJECT: &[u8] =
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/reflect.bpf.o"));

/// `BPF_F_TEST_XDP_LIVE_FRAMES` (linux/bpf.h): frames are really sent
/// according to the program's verdict instead of being returned.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The most frames the kernel handles per live-frame batch.
pub const MAX_LIVE_BATCH: u32 = 256;

/// Why a bench program could not be loaded, attached or run.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// aya could not load the object.
    #[error("loading the XDP program {program}: {source}")]
    Load {
        /// Program name.
        program: &'static str,
        /// What aya said.
        source: Box<aya::EbpfError>,
    },
    /// The object lacks a program or map it should have.
    #[error("the XDP object has no {kind} named {name}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The verifier or the attach call refused.
    #[error("{what} of XDP program {program}: {source}")]
    Program {
        /// "loading", "attaching to ifindex N" ...
        what: String,
        /// Program name.
        program: &'static str,
        /// What aya said.
        source: Box<ProgramError>,
    },
    /// A map could not be read or written.
    #[error("XDP map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What aya said.
        source: Box<aya::maps::MapError>,
    },
    /// BPF_PROG_RUN failed.
    #[error("BPF_PROG_RUN of {program} (repeat {repeat}, ifindex {ifindex}): {source}")]
    Run {
        /// Program name.
        program: &'static str,
        /// Frames asked for.
        repeat: u32,
        /// Interface the frames were to leave by.
        ifindex: u32,
        /// The error the kernel returned.
        source: io::Error,
    },
}

/// Loads `object` and verifies its XDP program `program`, attached nowhere.
pub fn load(object: &[u8], program: &'static str) -> Result<Ebpf, BpfError> {
    let mut ebpf = Ebpf::load(object)
        .map_err(|source| BpfError::Load { program, source: Box::new(source) })?;
    xdp_mut(&mut ebpf, program)?.load().map_err(|source| BpfError::Program {
        what: "loading".to_owned(),
        program,
        source: Box::new(source),
    })?;
    Ok(ebpf)
}

/// Attaches the loaded `program` of `ebpf` in native (driver) mode to the
/// interface with index `ifindex` of the calling thread's network
/// namespace. The bpf_link is owned by `ebpf`: dropping it detaches.
pub fn attach(ebpf: &mut Ebpf, program: &'static str, ifindex: u32) -> Result<(), BpfError> {
    xdp_mut(ebpf, program)?.attach_to_if_index(ifindex, XdpMode::Driver).map_err(|source| {
        BpfError::Program {
            what: format!("attaching to ifindex {ifindex}"),
            program,
            source: Box::new(source),
        }
    })?;
    Ok(())
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut Xdp, BpfError> {
    ebpf.program_mut(program)
        .ok_or(BpfError::Missing { kind: "program", name: program })?
        .try_into()
        .map_err(|source| BpfError::Program {
            what: "finding".to_owned(),
            program,
            source: Box::new(source),
        })
}

/// Takes map `name` out of `ebpf`.
pub fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, BpfError> {
    ebpf.take_map(name).ok_or(BpfError::Missing { kind: "map", name })
}

/// Takes the one-entry ARRAY map `name` holding a `N`-byte struct.
pub fn config_map<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<Array<MapData, [u8; N]>, BpfError> {
    Array::try_from(take_map(ebpf, name)?)
        .map_err(|source| BpfError::Map { map: name, source: Box::new(source) })
}

/// Takes the PERCPU_ARRAY of u64 counters `name`.
pub fn counter_map(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<PerCpuArray<MapData, u64>, BpfError> {
    PerCpuArray::try_from(take_map(ebpf, name)?)
        .map_err(|source| BpfError::Map { map: name, source: Box::new(source) })
}

/// Counter `index` of `map`, summed over CPUs.
pub fn counter_sum(
    map: &PerCpuArray<MapData, u64>,
    name: &'static str,
    index: u32,
) -> Result<u64, BpfError> {
    let values = map
        .get(&index, 0)
        .map_err(|source| BpfError::Map { map: name, source: Box::new(source) })?;
    Ok(values.iter().sum())
}

/// Runs `program` `repeat` times over `frame` with live frames: every run's
/// verdict is carried out (XDP_TX sends the frame out of interface
/// `ifindex`, queue 0), in batches of `batch_size` frames. Must be called
/// from a thread in the network namespace of `ifindex`.
pub fn run_live(
    ebpf: &Ebpf,
    program: &'static str,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch_size: u32,
) -> Result<(), BpfError> {
    let run_err = |source| BpfError::Run { program, repeat, ifindex, source };
    let xdp: &Xdp = ebpf
        .program(program)
        .ok_or(BpfError::Missing { kind: "program", name: program })?
        .try_into()
        .map_err(|source| BpfError::Program {
            what: "finding".to_owned(),
            program,
            source: Box::new(source),
        })?;
    let fd = xdp
        .fd()
        .map_err(|source| BpfError::Program {
            what: "getting the fd".to_owned(),
            program,
            source: Box::new(source),
        })?
        .as_fd()
        .as_raw_fd();
    let frame_len = u32::try_from(frame.len())
        .map_err(|_| run_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex. The kernel wants data = data_meta = 0
    // and data_end = the frame's length.
    let ctx: [u32; 6] = [0, frame_len, 0, ifindex, 0, 0];
    let mut opts = libxdp_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libxdp_sys::bpf_test_run_opts>(),
        data_in: frame.as_ptr().cast(),
        data_out: std::ptr::null_mut(),
        data_size_in: frame_len,
        data_size_out: 0,
        ctx_in: ctx.as_ptr().cast(),
        ctx_out: std::ptr::null_mut(),
        ctx_size_in: u32::try_from(std::mem::size_of_val(&ctx)).unwrap_or(24),
        ctx_size_out: 0,
        retval: 0,
        repeat: i32::try_from(repeat)
            .map_err(|_| run_err(io::Error::from(io::ErrorKind::InvalidInput)))?,
        duration: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size: batch_size.clamp(1, MAX_LIVE_BATCH),
    };
    // SAFETY: `opts` is a fully initialised bpf_test_run_opts whose `sz` is
    // its own size; data_in and ctx_in point to live buffers of the stated
    // sizes for the duration of the call; data_out and ctx_out are null with
    // zero sizes, as live-frame mode requires.
    let rc = unsafe { libxdp_sys::bpf_prog_test_run_opts(fd, &mut opts) };
    if rc != 0 {
        return Err(run_err(io::Error::from_raw_os_error(-rc)));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every object loads and passes the verifier (needs root).
    #[test]
    fn programs_verify() {
        load(GEN_OBJECT, "xdplb_bench_gen").expect("generator verifies (needs root)");
        load(SINK_OBJECT, "xdplb_bench_sink").expect("sink verifies (needs root)");
        load(REFLECT_OBJECT, "xdplb_bench_reflect").expect("reflector verifies (needs root)");
    }
}
