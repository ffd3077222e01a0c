//! Weighted round-robin that yields the same sequence as the kernel's
//! `net/netfilter/ipvs/ip_vs_wrr.c`, so a keepalived `lvs_sched wrr` user sees
//! the same spread of new connections, also across weight changes.

/// Weighted round-robin state over a fixed list of weights (IPVS `wrr`).
///
/// The kernel walks its destination list in passes: pass *k* picks every
/// server whose weight is at least the current weight `cw`, and `cw` steps
/// down by the gcd of the weights (`di`) from `mw` to 1. `mw` is the largest
/// weight minus `di - 1`, so the last pass (`cw == 1`) takes every server with
/// a weight > 0. Over one cycle server *i* is chosen `weight[i] / di` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrr {
    weights: Vec<u32>,
    /// The last server chosen (`mark->cl`); `None` is the list head, where a
    /// fresh or changed scheduler starts.
    cl: Option<usize>,
    /// The current weight (`mark->cw`); in `1..=mw` whenever `mw > 0`.
    cw: u32,
    /// `max weight - (di - 1)` (`mark->mw`); 0 means no server has a weight.
    mw: u32,
    /// The gcd of the weights > 0, or 1 (`mark->di`).
    di: u32,
}

impl Wrr {
    /// A scheduler at the head of the list, as `ip_vs_wrr_init_svc`.
    pub fn new(weights: &[u32]) -> Self {
        let mut wrr = Self { weights: weights.to_vec(), cl: None, cw: 0, mw: 0, di: 1 };
        wrr.recompute();
        wrr.cw = wrr.mw;
        wrr
    }

    /// The weights the scheduler works on, in server order.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The index of the server for the next new flow (`ip_vs_wrr_schedule`);
    /// `None` when every weight is 0.
    #[expect(
        clippy::should_implement_trait,
        reason = "None means no server is available now, not the end of a sequence"
    )]
    pub fn next(&mut self) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let mut start = self.cl.map_or(0, |last| last + 1);
        // A server with the largest weight qualifies for every `cw <= mw`, so
        // the pass that follows a wrap always finds one: two scans suffice
        // (the kernel's `stop`/`last_pass` guards only matter for overloaded
        // servers and weights changed behind its back, which we do not have).
        for _ in 0..2 {
            let cw = self.cw;
            let found = self
                .weights
                .get(start..)
                .and_then(|rest| rest.iter().position(|&weight| weight > 0 && weight >= cw));
            if let Some(offset) = found {
                let chosen = start + offset;
                self.cl = Some(chosen);
                return Some(chosen);
            }
            // End of the list: next pass, one gcd lower, or the top again.
            self.cw = match self.cw.checked_sub(self.di) {
                Some(lower) if lower > 0 => lower,
                _ => self.mw,
            };
            start = 0;
        }
        None
    }

    /// Takes new weights. For the same number of servers this is
    /// `ip_vs_wrr_dest_changed`: back to the head of the list, `di` and `mw`
    /// recomputed, `cw` clamped to the new `mw` (or rounded onto the new gcd
    /// grid). A different number of servers starts afresh, as [`Self::new`].
    pub fn set_weights(&mut self, weights: &[u32]) {
        if weights.len() != self.weights.len() {
            self.weights.clear();
            self.weights.extend_from_slice(weights);
            self.cl = None;
            self.recompute();
            self.cw = self.mw;
            return;
        }
        self.weights.copy_from_slice(weights);
        self.cl = None;
        self.recompute();
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            // `cw <= mw` and `mw % di == 1`, so this stays within `1..=mw`.
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// Recomputes `di` and `mw` from the weights.
    fn recompute(&mut self) {
        let di = self.weights.iter().filter(|&&w| w > 0).fold(0, |g, &w| gcd(g, w));
        self.di = di.max(1);
        let max = self.weights.iter().copied().max().unwrap_or(0);
        // `di` divides `max` whenever `max > 0`, so this cannot underflow;
        // with no weight at all `max` is 0 and `di` is 1.
        self.mw = max - (self.di - 1);
    }
}

/// Greatest common divisor; `gcd(0, w) == w`.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A straight transliteration of `ip_vs_wrr.c` (init_svc, dest_changed,
    /// schedule) over a circular list whose node `n` is the head, kept in the
    /// kernel's shape — signed `int`s, `stop`/`last_pass`/`restarted` — so that
    /// the production code, which is structured differently, is checked against
    /// the original loop rather than against itself.
    struct KernelWrr {
        weights: Vec<i64>,
        cl: usize,
        cw: i64,
        mw: i64,
        di: i64,
    }

    impl KernelWrr {
        fn head(&self) -> usize {
            self.weights.len()
        }

        fn list_next(&self, node: usize) -> usize {
            (node + 1) % (self.weights.len() + 1)
        }

        fn gcd_weight(&self) -> i64 {
            let mut g = 0;
            for &weight in &self.weights {
                if weight > 0 {
                    g = if g > 0 { gcd(weight as u32, g as u32) as i64 } else { weight };
                }
            }
            if g != 0 {
                g
            } else {
                1
            }
        }

        fn max_weight(&self) -> i64 {
            let mut weight = 0;
            for &w in &self.weights {
                if w > weight {
                    weight = w;
                }
            }
            weight
        }

        fn init_svc(weights: &[u32]) -> Self {
            let mut mark = KernelWrr {
                weights: weights.iter().map(|&w| w as i64).collect(),
                cl: weights.len(),
                cw: 0,
                mw: 0,
                di: 0,
            };
            mark.di = mark.gcd_weight();
            mark.mw = mark.max_weight() - (mark.di - 1);
            mark.cw = mark.mw;
            mark
        }

        fn dest_changed(&mut self, weights: &[u32]) {
            self.weights = weights.iter().map(|&w| w as i64).collect();
            self.cl = self.head();
            self.di = self.gcd_weight();
            self.mw = self.max_weight() - (self.di - 1);
            if self.cw > self.mw || self.cw == 0 {
                self.cw = self.mw;
            } else if self.di > 1 {
                self.cw = (self.cw / self.di) * self.di + 1;
            }
        }

        fn schedule(&mut self) -> Option<usize> {
            let head = self.head();
            let mut stop = None;
            let mut last_pass = false;
            let mut restarted = false;
            let mut dest = self.cl;
            if self.mw == 0 {
                return None;
            }
            let last = dest;
            loop {
                dest = self.list_next(dest);
                while dest != head {
                    if self.weights[dest] >= self.cw {
                        self.cl = dest;
                        return Some(dest);
                    }
                    if Some(dest) == stop {
                        self.cl = dest;
                        return None;
                    }
                    dest = self.list_next(dest);
                }
                self.cw -= self.di;
                if self.cw <= 0 {
                    self.cw = self.mw;
                    if last_pass || last == head {
                        self.cl = dest;
                        return None;
                    }
                    restarted = true;
                }
                last_pass = self.cw <= self.di;
                if last_pass && restarted && last != head {
                    stop = Some(last);
                }
            }
        }
    }

    /// Servers as letters, `A` for index 0, `-` for none.
    fn letters(wrr: &mut Wrr, n: usize) -> String {
        (0..n).map(|_| wrr.next().map_or('-', |i| (b'A' + i as u8) as char)).collect()
    }

    // The expected sequences below were worked out by hand by stepping the
    // kernel's loop (cw starts at mw = max - (di - 1), walks down by di to 1;
    // each pass picks, in list order, the servers with weight >= cw). They are
    // also checked against `KernelWrr` by `sequences_match_the_kernel_loop`.
    #[test]
    fn fresh_sequences_follow_the_kernel() {
        // di 1, mw 3: cw 3 → A; cw 2 → A; cw 1 → A B.
        assert_eq!(letters(&mut Wrr::new(&[3, 1]), 8), "AAABAAAB");
        // di 1, mw 5: A | A | A B | A B C | A B C.
        assert_eq!(letters(&mut Wrr::new(&[5, 3, 2]), 20), "AAABABCABCAAABABCABC");
        // di 2, mw 4 - 1 = 3: cw 3 → A; cw 1 → A B.
        assert_eq!(letters(&mut Wrr::new(&[4, 2]), 6), "AABAAB");
        // di 1, mw 5: A | A | A | A | A B C.
        assert_eq!(letters(&mut Wrr::new(&[5, 1, 1]), 14), "AAAAABCAAAAABC");
        // di 2, mw 3, B never: cw 3 → A; cw 1 → A C.
        assert_eq!(letters(&mut Wrr::new(&[4, 0, 2]), 6), "AACAAC");
    }

    #[test]
    fn no_weight_means_no_server() {
        assert_eq!(Wrr::new(&[]).next(), None);
        let mut wrr = Wrr::new(&[0, 0]);
        assert_eq!(letters(&mut wrr, 3), "---");
        // dest_changed with cw == 0 takes the new mw: a fresh cycle.
        wrr.set_weights(&[2, 1]);
        assert_eq!(letters(&mut wrr, 6), "AABAAB");
        wrr.set_weights(&[0, 0]);
        assert_eq!(letters(&mut wrr, 2), "--");
    }

    #[test]
    fn weight_changes_follow_dest_changed() {
        // (3,1) after A A: cw 2, cl A. → (1,1): mw 1, cw 2 > 1 → 1, from head.
        let mut wrr = Wrr::new(&[3, 1]);
        assert_eq!(letters(&mut wrr, 2), "AA");
        wrr.set_weights(&[1, 1]);
        assert_eq!(letters(&mut wrr, 4), "ABAB");

        // (3,1) after A A A: cw 1, cl A. → (1,1): cw kept at 1 but back to the
        // head, so A again where the old cycle would have given B.
        let mut wrr = Wrr::new(&[3, 1]);
        assert_eq!(letters(&mut wrr, 3), "AAA");
        wrr.set_weights(&[1, 1]);
        assert_eq!(letters(&mut wrr, 4), "ABAB");

        // (5,3,2) after A A A B: cw 3, cl B. → (5,0,2): di 1, mw 5, cw stays 3,
        // from head: cw 3 → A; 2 → A C; 1 → A C; then a full cycle from cw 5:
        // A | A | A | A C | A C.
        let mut wrr = Wrr::new(&[5, 3, 2]);
        assert_eq!(letters(&mut wrr, 4), "AAAB");
        wrr.set_weights(&[5, 0, 2]);
        assert_eq!(letters(&mut wrr, 12), "AACACAAAACAC");

        // (5,1) after A A: cw 4. → (6,2): di 2, mw 5, cw rounded to
        // (4 / 2) * 2 + 1 = 5: cw 5 → A; 3 → A; 1 → A B.
        let mut wrr = Wrr::new(&[5, 1]);
        assert_eq!(letters(&mut wrr, 2), "AA");
        wrr.set_weights(&[6, 2]);
        assert_eq!(letters(&mut wrr, 8), "AAABAAAB");

        // (5,1) after A: cw 5. → (2,2): di 2, mw 1, cw 5 > 1 → 1.
        let mut wrr = Wrr::new(&[5, 1]);
        assert_eq!(letters(&mut wrr, 1), "A");
        wrr.set_weights(&[2, 2]);
        assert_eq!(letters(&mut wrr, 4), "ABAB");

        // A different number of servers starts afresh.
        let mut wrr = Wrr::new(&[5, 1]);
        assert_eq!(letters(&mut wrr, 3), "AAA");
        wrr.set_weights(&[1, 3, 1]);
        assert_eq!(letters(&mut wrr, 5), "BBABC");
    }

    #[test]
    fn extreme_weights_do_not_overflow() {
        let mut wrr = Wrr::new(&[u32::MAX, u32::MAX]);
        assert_eq!(letters(&mut wrr, 4), "ABAB");
        let mut wrr = Wrr::new(&[u32::MAX, 1]);
        assert_eq!(letters(&mut wrr, 3), "AAA");
        wrr.set_weights(&[u32::MAX - 1, 65535, 0]);
        wrr.set_weights(&[65535, 65535]);
        assert_eq!(letters(&mut wrr, 2), "AB");
    }

    fn weight() -> impl Strategy<Value = u32> {
        prop_oneof![
            4 => 0..=6u32,
            2 => (1..=4u32).prop_map(|w| w * 6),
            1 => Just(0u32),
            1 => 60000..=65535u32,
        ]
    }

    proptest! {
        #[test]
        fn sequences_match_the_kernel_loop(
            initial in prop::collection::vec(weight(), 0..7),
            changes in prop::collection::vec(
                (0..40usize, prop::collection::vec(weight(), 0..7), any::<bool>()), 0..6),
        ) {
            let mut ours = Wrr::new(&initial);
            let mut kernel = KernelWrr::init_svc(&initial);
            for (picks, new_weights, same_len) in changes {
                for _ in 0..picks {
                    let chosen = ours.next();
                    prop_assert_eq!(chosen, kernel.schedule());
                    if let Some(i) = chosen {
                        prop_assert!(ours.weights()[i] > 0, "weight-0 server {} chosen", i);
                    }
                }
                // Mostly the same servers with new weights (dest_changed);
                // sometimes a different list, which both start afresh.
                let next_weights: Vec<u32> = if same_len {
                    (0..ours.weights().len())
                        .map(|i| new_weights.get(i).copied().unwrap_or(0))
                        .collect()
                } else {
                    new_weights
                };
                if next_weights.len() == ours.weights().len() {
                    kernel.dest_changed(&next_weights);
                } else {
                    kernel = KernelWrr::init_svc(&next_weights);
                }
                ours.set_weights(&next_weights);
            }
            for _ in 0..40 {
                prop_assert_eq!(ours.next(), kernel.schedule());
            }
        }

        #[test]
        fn one_cycle_gives_each_server_its_share(
            weights in prop::collection::vec(0..=40u32, 1..8),
        ) {
            let di = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
            let cycle: usize = weights.iter().map(|&w| (w / di) as usize).sum();
            let mut wrr = Wrr::new(&weights);
            let first: Vec<usize> = (0..cycle).map_while(|_| wrr.next()).collect();
            prop_assert_eq!(first.len(), cycle);
            for (i, &w) in weights.iter().enumerate() {
                let times = first.iter().filter(|&&c| c == i).count();
                prop_assert_eq!(times, (w / di) as usize, "server {} of {:?}", i, weights);
            }
            // The next cycle repeats the first.
            let second: Vec<usize> = (0..cycle).map_while(|_| wrr.next()).collect();
            prop_assert_eq!(first, second);
        }
    }
}
