//! Real-server schedulers: which server a new flow goes to. Pure state
//! machines over a service's weights (0 = takes no new flow), reproducing the
//! kernel's IPVS sequences; no allocation per pick.

mod rr; // plain round-robin, as ip_vs_rr.c
mod wrr; // weighted round-robin, as ip_vs_wrr.c

pub use rr::Rr;
pub use wrr::Wrr;

use crate::tables;

/// One service's scheduler, of the kind its configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    /// Weighted round-robin (`lvs_sched wrr`).
    Wrr(Wrr),
    /// Round-robin (`lvs_sched rr`).
    Rr(Rr),
}

impl Scheduler {
    /// A fresh scheduler of `kind` over `weights`, one per server in order.
    pub fn new(kind: tables::Scheduler, weights: &[u32]) -> Self {
        match kind {
            tables::Scheduler::Wrr => Self::Wrr(Wrr::new(weights)),
            tables::Scheduler::Rr => Self::Rr(Rr::new(weights)),
        }
    }

    /// Which kind of scheduler this is.
    pub fn kind(&self) -> tables::Scheduler {
        match self {
            Self::Wrr(_) => tables::Scheduler::Wrr,
            Self::Rr(_) => tables::Scheduler::Rr,
        }
    }

    /// The weights the scheduler works on, in server order.
    pub fn weights(&self) -> &[u32] {
        match self {
            Self::Wrr(s) => s.weights(),
            Self::Rr(s) => s.weights(),
        }
    }

    /// The index into the weights of the server for the next new flow;
    /// never a server of weight 0, `None` when all weights are 0.
    #[expect(
        clippy::should_implement_trait,
        reason = "None means no server is available now, not the end of a sequence"
    )]
    pub fn next(&mut self) -> Option<usize> {
        match self {
            Self::Wrr(s) => s.next(),
            Self::Rr(s) => s.next(),
        }
    }

    /// Takes new weights as the kernel takes a weight change (see
    /// [`Wrr::set_weights`], [`Rr::set_weights`]); a different number of
    /// servers starts afresh. Allocates only when the list grows.
    pub fn set_weights(&mut self, weights: &[u32]) {
        match self {
            Self::Wrr(s) => s.set_weights(weights),
            Self::Rr(s) => s.set_weights(weights),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(s: &mut Scheduler, n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.next()).collect()
    }

    #[test]
    fn front_dispatches_to_the_named_kind() {
        let mut wrr = Scheduler::new(tables::Scheduler::Wrr, &[3, 1]);
        assert_eq!(wrr.kind(), tables::Scheduler::Wrr);
        assert_eq!(picks(&mut wrr, 4), [Some(0), Some(0), Some(0), Some(1)]);
        let mut rr = Scheduler::new(tables::Scheduler::Rr, &[3, 1]);
        assert_eq!(rr.kind(), tables::Scheduler::Rr);
        assert_eq!(picks(&mut rr, 4), [Some(0), Some(1), Some(0), Some(1)]);

        for s in [&mut wrr, &mut rr] {
            s.set_weights(&[0, 2]);
            assert_eq!(s.weights(), [0, 2]);
            assert_eq!(picks(s, 2), [Some(1), Some(1)]);
            s.set_weights(&[0, 0]);
            assert_eq!(s.next(), None);
            s.set_weights(&[]);
            assert_eq!(s.next(), None);
        }
    }
}
