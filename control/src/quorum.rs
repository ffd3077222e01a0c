//! keepalived's quorum for one virtual service: from the real servers' weights
//! and health, whether the service has its quorum, when `quorum_up` /
//! `quorum_down` run, and which servers (real or sorry) the data plane uses.
//! Pure: the daemon calls [`evaluate`] after every health change and keeps
//! the returned state for the next call.
//!
//! Everything here follows keepalived 2.2's check/ipwrapper.c, quoted at each
//! rule: `weigh_live_realservers` (the live weight), `update_quorum_state`
//! (gain, loss, the start), `perform_quorum_state` (the real servers leave
//! the pool while the sorry server serves) and `ipvs_cmd` in
//! check/ipvswrapper.c (what "remove" means with inhibit_on_failure).

/// The weight keepalived gives its sorry server: check_data.c `alloc_ssvr`
/// sets `effective_weight = 1` and no keyword changes it.
pub const SORRY_SERVER_WEIGHT: u32 = 1;

/// Whether a service has its quorum (`"up"`/`"down"` in status JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuorumState {
    /// Enough live weight: the real servers serve.
    #[default]
    Up,
    /// Too little: the sorry server serves, if there is one.
    Down,
}

impl QuorumState {
    /// `"up"` or `"down"`, as status shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A change the daemon acts on: run `quorum_up` or `quorum_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// The quorum was gained (or the service started with it): run `quorum_up`.
    Gained,
    /// The quorum was lost (or the service started without it and has a
    /// sorry server): run `quorum_down`.
    Lost,
}

/// A service's quorum settings (see [`crate::config::VirtualServer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuorumSettings {
    /// `quorum`: least live weight, ≥ 1.
    pub quorum: u32,
    /// `hysteresis`: < `quorum`.
    pub hysteresis: u32,
    /// Whether a `sorry_server` is configured.
    pub sorry_server: bool,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
}

/// One configured real server as the quorum sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerInput {
    /// Its configured weight.
    pub weight: u32,
    /// Whether its health check passes (a server without a check is up).
    pub up: bool,
    /// `inhibit_on_failure`: "removed" means weight 0, not gone.
    pub inhibit_on_failure: bool,
}

/// Where a server stands in the data plane's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    /// In the pool with this weight; 0 takes no new flows but keeps its
    /// existing ones (keepalived's inhibit: `ipvs_cmd` turns a removal into
    /// "edit the destination to weight 0").
    Weight(u32),
    /// Not in the pool: its flows end.
    Out,
}

impl Member {
    /// The weight, if in the pool.
    pub const fn weight(self) -> Option<u32> {
        match self {
            Self::Weight(w) => Some(w),
            Self::Out => None,
        }
    }

    /// A server taken out of the pool: weight 0 with inhibit, gone without.
    const fn removed(inhibit: bool) -> Self {
        if inhibit {
            Self::Weight(0)
        } else {
            Self::Out
        }
    }
}

/// What [`evaluate`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDecision {
    /// The new state; pass it back as `previous` next time.
    pub state: QuorumState,
    /// `Some` when the daemon should run `quorum_up` / `quorum_down`.
    pub transition: Option<Transition>,
    /// Total weight of the live real servers.
    pub live_weight: u64,
    /// The weight the state was judged against (`quorum ± hysteresis`).
    pub threshold: u64,
    /// Whether the sorry server serves instead of the real servers.
    pub use_sorry: bool,
    /// Each real server's place in the pool, in input order.
    pub real_servers: Vec<Member>,
    /// The sorry server's place ([`Member::Out`] when none is configured).
    pub sorry_server: Member,
}

impl QuorumDecision {
    /// Whether the real servers serve (false while the sorry server does).
    pub fn keep_real_servers(&self) -> bool {
        !self.use_sorry
    }

    /// The sorry server's weight in the pool, 0 when not in use.
    pub fn sorry_weight(&self) -> u32 {
        self.sorry_server.weight().unwrap_or(0)
    }
}

/// The live weight: keepalived's `weigh_live_realservers`, "the sum of all
/// alive RS weight in a virtual server" (a failed server counts nothing,
/// inhibited or not).
pub fn live_weight(servers: &[ServerInput]) -> u64 {
    servers.iter().filter(|s| s.up).map(|s| u64::from(s.weight)).sum()
}

/// The new quorum state of a service and the pool that goes with it.
/// `previous` is the state the last call returned, `None` at start (and for
/// a service a reload adds).
///
/// The rules, from keepalived's ipwrapper.c `update_quorum_state`:
/// * the threshold is `quorum + (up ? -1 : 1) * hysteresis`;
/// * down → up when "weight_sum >= threshold" ("Gained quorum"), i.e. the
///   live weight reaches `quorum + hysteresis`;
/// * up → down when "!weight_sum || weight_sum < threshold" ("Lost
///   quorum"), i.e. below `quorum - hysteresis`, or nothing live at all;
/// * at start keepalived's state is down (`set_quorum_states` runs before
///   any server is alive), so a service that starts with enough weight
///   "gains" it and runs `quorum_up`; one that starts without runs
///   `quorum_down` only when it has a sorry server ("Starting with quorum
///   down", the branch taken for `init && !quorum_state_up && vs->s_svr`).
///
/// The pool, from the same function and `perform_quorum_state`:
/// * on losing the quorum with a sorry server, keepalived runs "Remove
///   remaining alive real servers" and then adds the sorry server: while the
///   quorum is down the sorry server is the only one taking flows, and the
///   real servers are removed — which for an `inhibit_on_failure` server
///   means weight 0 (check/ipvswrapper.c `ipvs_cmd`: a DELDEST on an
///   inhibited server becomes an EDITDEST to weight 0);
/// * without a sorry server losing the quorum changes no server: only the
///   script runs ("we don't push in a sorry server then");
/// * on regaining it, "Removing sorry server since we don't need it anymore"
///   and "Adding back alive real servers"; with `sorry_server_inhibit` the
///   sorry server stays at weight 0 instead ("Disabling sorry server"), and
///   `init_service_vs` puts it there at start too ("If we have a sorry server
///   with inhibit, add it now" with weight 0);
/// * every real server failing is the same rule: `quorum` ≥ 1, so no live
///   weight loses the quorum and the sorry server takes over.
pub fn evaluate(
    servers: &[ServerInput],
    settings: &QuorumSettings,
    previous: Option<QuorumState>,
) -> QuorumDecision {
    let live = live_weight(servers);
    let quorum = u64::from(settings.quorum);
    let hysteresis = u64::from(settings.hysteresis);
    let was_up = previous == Some(QuorumState::Up);
    let threshold =
        if was_up { quorum.saturating_sub(hysteresis) } else { quorum.saturating_add(hysteresis) };
    let (state, transition) = if was_up {
        if live == 0 || live < threshold {
            (QuorumState::Down, Some(Transition::Lost))
        } else {
            (QuorumState::Up, None)
        }
    } else if live >= threshold {
        (QuorumState::Up, Some(Transition::Gained))
    } else if previous.is_none() && settings.sorry_server {
        (QuorumState::Down, Some(Transition::Lost))
    } else {
        (QuorumState::Down, None)
    };
    let use_sorry = state == QuorumState::Down && settings.sorry_server;
    let real_servers = servers
        .iter()
        .map(|s| {
            if s.up && !use_sorry {
                Member::Weight(s.weight)
            } else {
                Member::removed(s.inhibit_on_failure)
            }
        })
        .collect();
    let sorry_server = if use_sorry {
        Member::Weight(SORRY_SERVER_WEIGHT)
    } else if settings.sorry_server {
        Member::removed(settings.sorry_server_inhibit)
    } else {
        Member::Out
    };
    QuorumDecision {
        state,
        transition,
        live_weight: live,
        threshold,
        use_sorry,
        real_servers,
        sorry_server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use QuorumState::{Down, Up};

    fn servers(list: &[(u32, bool)]) -> Vec<ServerInput> {
        list.iter()
            .map(|&(weight, up)| ServerInput { weight, up, inhibit_on_failure: false })
            .collect()
    }

    fn settings(quorum: u32, hysteresis: u32, sorry: bool, inhibit: bool) -> QuorumSettings {
        QuorumSettings { quorum, hysteresis, sorry_server: sorry, sorry_server_inhibit: inhibit }
    }

    /// Ten servers of weight 1, `live` of them up.
    fn pool(live: usize) -> Vec<ServerInput> {
        (0..10)
            .map(|i| ServerInput { weight: 1, up: i < live, inhibit_on_failure: false })
            .collect()
    }

    #[test]
    fn the_debian_quorum_sample_gains_at_9_and_loses_below_5() {
        // keepalived.conf.quorum: "the quorum will not be reached until 9
        // (7+2) live servers are present ... will not break until the pool
        // has 5 (7-2) or more live servers".
        let s = settings(7, 2, false, false);
        let mut state = evaluate(&pool(8), &s, None).state;
        assert_eq!(state, Down);
        let gained = evaluate(&pool(9), &s, Some(state));
        assert_eq!(
            (gained.state, gained.transition, gained.threshold),
            (Up, Some(Transition::Gained), 9)
        );
        state = gained.state;
        for live in [8, 7, 6, 5] {
            let d = evaluate(&pool(live), &s, Some(state));
            assert_eq!((d.state, d.transition), (Up, None), "{live} live");
        }
        let lost = evaluate(&pool(4), &s, Some(state));
        assert_eq!(
            (lost.state, lost.transition, lost.threshold),
            (Down, Some(Transition::Lost), 5)
        );
        // "Pool size change from 7 to 6 and back will not trigger a quorum flap".
        for live in [5, 6, 7, 8] {
            let d = evaluate(&pool(live), &s, Some(Down));
            assert_eq!((d.state, d.transition), (Down, None), "{live} live");
        }
    }

    #[test]
    fn the_live_weight_sums_the_weights_of_servers_up() {
        let list = servers(&[(3, true), (5, false), (2, true), (0, true)]);
        assert_eq!(live_weight(&list), 5);
        // Weight, not count: two servers of weight 3 and 2 make a quorum of 5.
        let d = evaluate(&list, &settings(5, 0, false, false), Some(Down));
        assert_eq!((d.state, d.transition), (Up, Some(Transition::Gained)));
        let d = evaluate(&list, &settings(6, 0, false, false), Some(Up));
        assert_eq!((d.state, d.transition), (Down, Some(Transition::Lost)));
    }

    #[test]
    fn start_gains_with_enough_weight_and_notifies_down_only_with_a_sorry_server() {
        let up = servers(&[(1, true)]);
        let down = servers(&[(1, false)]);
        let d = evaluate(&up, &settings(1, 0, false, false), None);
        assert_eq!((d.state, d.transition), (Up, Some(Transition::Gained)));
        let d = evaluate(&down, &settings(1, 0, false, false), None);
        assert_eq!((d.state, d.transition), (Down, None));
        let d = evaluate(&down, &settings(1, 0, true, false), None);
        assert_eq!((d.state, d.transition, d.use_sorry), (Down, Some(Transition::Lost), true));
        // Starting needs quorum + hysteresis, like any gain.
        let d = evaluate(&servers(&[(2, true)]), &settings(2, 1, false, false), None);
        assert_eq!((d.state, d.threshold), (Down, 3));
    }

    #[test]
    fn without_a_sorry_server_losing_the_quorum_changes_no_server() {
        let list = vec![
            ServerInput { weight: 2, up: true, inhibit_on_failure: false },
            ServerInput { weight: 4, up: false, inhibit_on_failure: true },
            ServerInput { weight: 1, up: false, inhibit_on_failure: false },
        ];
        let d = evaluate(&list, &settings(5, 0, false, false), Some(Up));
        assert_eq!((d.state, d.transition), (Down, Some(Transition::Lost)));
        assert!(!d.use_sorry && d.keep_real_servers());
        assert_eq!(d.real_servers, [Member::Weight(2), Member::Weight(0), Member::Out]);
        assert_eq!((d.sorry_server, d.sorry_weight()), (Member::Out, 0));
    }

    #[test]
    fn with_a_sorry_server_it_replaces_every_real_server() {
        let list = vec![
            ServerInput { weight: 2, up: true, inhibit_on_failure: false },
            ServerInput { weight: 3, up: true, inhibit_on_failure: true },
            ServerInput { weight: 4, up: false, inhibit_on_failure: true },
            ServerInput { weight: 1, up: false, inhibit_on_failure: false },
        ];
        let d = evaluate(&list, &settings(6, 0, true, false), Some(Up));
        assert_eq!((d.state, d.transition, d.use_sorry), (Down, Some(Transition::Lost), true));
        assert!(!d.keep_real_servers());
        // Live servers are removed too; inhibited ones stay at weight 0.
        assert_eq!(
            d.real_servers,
            [Member::Out, Member::Weight(0), Member::Weight(0), Member::Out]
        );
        assert_eq!((d.sorry_server, d.sorry_weight()), (Member::Weight(SORRY_SERVER_WEIGHT), 1));
        // Regained: the real servers are back, the sorry server leaves.
        let mut back = list.clone();
        back[2].up = true;
        let d = evaluate(&back, &settings(6, 0, true, false), Some(Down));
        assert_eq!((d.state, d.transition, d.use_sorry), (Up, Some(Transition::Gained), false));
        assert_eq!(
            d.real_servers,
            [Member::Weight(2), Member::Weight(3), Member::Weight(4), Member::Out]
        );
        assert_eq!(d.sorry_server, Member::Out);
    }

    #[test]
    fn sorry_server_inhibit_keeps_it_at_weight_0_while_not_in_use() {
        let s = settings(1, 0, true, true);
        let d = evaluate(&servers(&[(1, true)]), &s, None);
        assert_eq!((d.state, d.sorry_server), (Up, Member::Weight(0)));
        let d = evaluate(&servers(&[(1, false)]), &s, Some(Up));
        assert_eq!((d.state, d.sorry_server), (Down, Member::Weight(1)));
        let d = evaluate(&servers(&[(1, true)]), &s, Some(Down));
        assert_eq!((d.state, d.sorry_server), (Up, Member::Weight(0)));
    }

    #[test]
    fn every_server_down_uses_the_sorry_server() {
        let d =
            evaluate(&servers(&[(5, false), (5, false)]), &settings(1, 0, true, false), Some(Up));
        assert_eq!((d.state, d.live_weight, d.use_sorry), (Down, 0, true));
        assert_eq!(d.sorry_server, Member::Weight(1));
        // No servers at all: the same.
        let d = evaluate(&[], &settings(1, 0, true, false), None);
        assert!(d.use_sorry && d.real_servers.is_empty());
    }

    #[test]
    fn no_live_weight_loses_the_quorum_whatever_the_threshold() {
        // keepalived: "!weight_sum || weight_sum < threshold".
        let d = evaluate(&servers(&[(3, false)]), &settings(1, 1, false, false), Some(Up));
        assert_eq!((d.state, d.threshold), (Down, 0));
    }

    #[test]
    fn names_are_what_status_prints() {
        assert_eq!((Up.name(), Down.name()), ("up", "down"));
    }

    fn arb_servers() -> impl Strategy<Value = Vec<ServerInput>> {
        proptest::collection::vec(
            (0u32..=65535, any::<bool>(), any::<bool>()).prop_map(|(weight, up, inhibit)| {
                ServerInput { weight, up, inhibit_on_failure: inhibit }
            }),
            0..8,
        )
    }

    proptest! {
        /// The state changes only across the hysteresis band, the transition
        /// says exactly what changed, and the pool matches the state.
        #[test]
        fn decisions_follow_the_rules(
            list in arb_servers(),
            quorum in 1u32..200_000,
            h in 0u32..200_000,
            sorry in any::<bool>(),
            inhibit in any::<bool>(),
            previous in proptest::option::of(prop_oneof![Just(Up), Just(Down)]),
        ) {
            let hysteresis = h % quorum;
            let s = settings(quorum, hysteresis, sorry, inhibit);
            let d = evaluate(&list, &s, previous);
            let live = live_weight(&list);
            let (q, hy) = (u64::from(quorum), u64::from(hysteresis));
            if d.state == Up {
                prop_assert!(live >= q - hy && live > 0);
            }
            if previous == Some(Up) {
                prop_assert_eq!(d.state == Down, live < q - hy);
            } else {
                prop_assert_eq!(d.state == Up, live >= q + hy);
            }
            let changed = previous != Some(d.state);
            match d.transition {
                Some(Transition::Gained) => prop_assert!(d.state == Up && changed),
                Some(Transition::Lost) => prop_assert!(d.state == Down
                    && (previous == Some(Up) || previous.is_none() && sorry)),
                None => prop_assert!(!changed || previous.is_none() && d.state == Down && !sorry),
            }
            prop_assert_eq!(d.use_sorry, d.state == Down && sorry);
            prop_assert_eq!(d.real_servers.len(), list.len());
            for (m, rs) in d.real_servers.iter().zip(&list) {
                let expected = if rs.up && !d.use_sorry {
                    Member::Weight(rs.weight)
                } else if rs.inhibit_on_failure {
                    Member::Weight(0)
                } else {
                    Member::Out
                };
                prop_assert_eq!(*m, expected);
            }
            // Whatever serves, exactly one side takes new flows with a sorry server.
            if d.use_sorry {
                prop_assert!(d.real_servers.iter().all(|m| m.weight().unwrap_or(0) == 0));
                prop_assert_eq!(d.sorry_weight(), SORRY_SERVER_WEIGHT);
            } else {
                prop_assert_eq!(d.sorry_weight(), 0);
                prop_assert_eq!(d.sorry_server == Member::Out, !(sorry && inhibit));
            }
        }
    }
}
