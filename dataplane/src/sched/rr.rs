//! Plain round-robin as the kernel's `net/netfilter/ipvs/ip_vs_rr.c`: each
//! new flow goes to the next server after the last one chosen, skipping
//! servers with weight 0.

/// Round-robin state over a fixed list of weights (IPVS `rr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    weights: Vec<u32>,
    /// The last server chosen (`svc->sched_data`); `None` is the list head.
    last: Option<usize>,
}

impl Rr {
    /// A scheduler at the head of the list, as `ip_vs_rr_init_svc`.
    pub fn new(weights: &[u32]) -> Self {
        Self { weights: weights.to_vec(), last: None }
    }

    /// The weights the scheduler works on, in server order.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The index of the server for the next new flow: the first server with
    /// a weight > 0 after the last one chosen, wrapping round once; `None`
    /// when every weight is 0.
    #[expect(
        clippy::should_implement_trait,
        reason = "None means no server is available now, not the end of a sequence"
    )]
    pub fn next(&mut self) -> Option<usize> {
        let n = self.weights.len();
        let start = self.last.map_or(0, |last| last + 1);
        let chosen = (0..n).map(|offset| (start + offset) % n).find(|&i| self.weights[i] > 0)?;
        self.last = Some(chosen);
        Some(chosen)
    }

    /// Takes new weights. For the same number of servers the position is
    /// kept (the kernel's `rr` has no `upd_dest` hook); a different number of
    /// servers starts afresh, as [`Self::new`].
    pub fn set_weights(&mut self, weights: &[u32]) {
        if weights.len() == self.weights.len() {
            self.weights.copy_from_slice(weights);
        } else {
            self.weights.clear();
            self.weights.extend_from_slice(weights);
            self.last = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A transliteration of `ip_vs_rr_schedule` over a circular list whose
    /// node `n` is the head: continue after `p`, stop after coming back to
    /// `last`, take a second pass only when not starting from the head.
    struct KernelRr {
        weights: Vec<u32>,
        p: usize,
    }

    impl KernelRr {
        fn schedule(&mut self) -> Option<usize> {
            let head = self.weights.len();
            let next = |node: usize| (node + 1) % (head + 1);
            let last = self.p;
            let mut dest = self.p;
            let mut pass = 0;
            loop {
                dest = next(dest);
                while dest != head {
                    if self.weights[dest] > 0 {
                        self.p = dest;
                        return Some(dest);
                    }
                    if dest == last {
                        return None;
                    }
                    dest = next(dest);
                }
                pass += 1;
                if !(pass < 2 && self.p != head) {
                    return None;
                }
            }
        }
    }

    fn letters(rr: &mut Rr, n: usize) -> String {
        (0..n).map(|_| rr.next().map_or('-', |i| (b'A' + i as u8) as char)).collect()
    }

    // Worked by hand: the next server after the last one chosen, weight > 0.
    #[test]
    fn cycles_over_servers_with_a_weight() {
        assert_eq!(letters(&mut Rr::new(&[1, 1, 1]), 7), "ABCABCA");
        // Weights do not skew rr, only 0 excludes.
        assert_eq!(letters(&mut Rr::new(&[5, 0, 1]), 5), "ACACA");
        assert_eq!(letters(&mut Rr::new(&[0, 0]), 2), "--");
        assert_eq!(letters(&mut Rr::new(&[]), 1), "-");
    }

    #[test]
    fn weight_changes_keep_the_position() {
        let mut rr = Rr::new(&[1, 1, 1]);
        assert_eq!(letters(&mut rr, 1), "A");
        rr.set_weights(&[1, 0, 1]);
        assert_eq!(letters(&mut rr, 3), "CAC");
        rr.set_weights(&[0, 0, 0]);
        assert_eq!(letters(&mut rr, 1), "-");
        rr.set_weights(&[1, 1, 1]);
        // Still after C, the last one chosen.
        assert_eq!(letters(&mut rr, 2), "AB");
        // A different list starts at its head.
        rr.set_weights(&[1, 1]);
        assert_eq!(letters(&mut rr, 3), "ABA");
    }

    proptest! {
        #[test]
        fn matches_the_kernel_loop_and_visits_each_server_once_a_round(
            initial in prop::collection::vec(0..3u32, 0..7),
            changes in prop::collection::vec(
                (0..20usize, prop::collection::vec(0..3u32, 0..7), any::<bool>()), 0..6),
        ) {
            let mut ours = Rr::new(&initial);
            let mut kernel = KernelRr { weights: initial.clone(), p: initial.len() };
            for (picks, new_weights, same_len) in changes {
                let live = ours.weights().iter().filter(|&&w| w > 0).count();
                let mut seen = Vec::new();
                for _ in 0..picks {
                    let chosen = ours.next();
                    prop_assert_eq!(chosen, kernel.schedule());
                    if let Some(i) = chosen {
                        prop_assert!(ours.weights()[i] > 0);
                        seen.push(i);
                    }
                }
                // Any `live` consecutive picks are `live` different servers.
                for window in seen.windows(live.max(1)) {
                    let mut sorted = window.to_vec();
                    sorted.sort_unstable();
                    sorted.dedup();
                    prop_assert_eq!(sorted.len(), window.len());
                }
                let next_weights: Vec<u32> = if same_len {
                    (0..ours.weights().len())
                        .map(|i| new_weights.get(i).copied().unwrap_or(0))
                        .collect()
                } else {
                    new_weights
                };
                if next_weights.len() != ours.weights().len() {
                    kernel.p = next_weights.len();
                }
                kernel.weights.clone_from(&next_weights);
                ours.set_weights(&next_weights);
            }
        }
    }
}
