//! Gives up, once the daemon is running, the capabilities only start-up
//! needs (loading the XDP program, opening AF_XDP, raw and packet sockets,
//! locking memory, everything else root has): what stays is what VRRP
//! transitions, reloads, neighbour upkeep and operators' scripts use.

use caps::{CapSet, Capability, CapsHashSet};

/// What the running daemon keeps: addresses and neighbours (NET_ADMIN), the
/// steering map's updates (BPF), and NET_RAW, which the daemon's sockets no
/// longer need but notify and track scripts do (`ping` is keepalived's
/// classic vrrp_script, and it needs NET_RAW under a reduced bounding set).
pub const KEPT: [Capability; 3] =
    [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW, Capability::CAP_BPF];

/// Why capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
#[error("dropping capabilities ({what}): {source}")]
pub struct PrivilegeError {
    what: &'static str,
    #[source]
    source: caps::errors::CapsError,
}

fn err(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError { what, source }
}

/// Drops every capability but [`KEPT`] from the calling thread: bounding
/// set first (when we may: under systemd the unit's CapabilityBoundingSet
/// already did it), then inheritable, ambient, permitted and effective.
/// Threads started afterwards inherit the result; threads started before
/// keep theirs, so call it on the control thread once start-up is over
/// (the workers drop everything themselves). Returns what is kept.
pub fn drop_to_running_set() -> Result<Vec<Capability>, PrivilegeError> {
    let kept: CapsHashSet = KEPT.into_iter().collect();
    let effective =
        caps::read(None, CapSet::Effective).map_err(err("reading the effective set"))?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        let bounding =
            caps::read(None, CapSet::Bounding).map_err(err("reading the bounding set"))?;
        for cap in bounding.difference(&kept) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(err("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable set"))?;
    caps::clear(None, CapSet::Ambient).map_err(err("ambient set"))?;
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(err("reading the permitted set"))?;
    let keep: CapsHashSet = permitted.intersection(&kept).copied().collect();
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted set"))?;
    let mut out: Vec<Capability> = keep.into_iter().collect();
    out.sort_by_key(|c| c.index());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in a thread of its own: capabilities are per thread, so the
    /// test harness's other threads keep theirs.
    #[test]
    fn a_dropped_thread_keeps_only_the_running_set() {
        let outcome = std::thread::spawn(|| {
            let before = caps::read(None, CapSet::Permitted).expect("read");
            let kept = drop_to_running_set().expect("drop");
            let after = caps::read(None, CapSet::Permitted).expect("read");
            let effective = caps::read(None, CapSet::Effective).expect("read");
            (before, kept, after, effective)
        })
        .join()
        .expect("thread");
        let (before, kept, after, effective) = outcome;
        let want: CapsHashSet = before.intersection(&KEPT.into_iter().collect()).copied().collect();
        assert_eq!(after, want);
        assert_eq!(effective, want);
        assert_eq!(kept.len(), want.len());
        assert!(!after.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!after.contains(&Capability::CAP_DAC_OVERRIDE));
        assert!(!after.contains(&Capability::CAP_SYS_RESOURCE));
    }
}
