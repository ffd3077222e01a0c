//! keepalived's retry hysteresis for one checker of one real server, pure,
//! with time passed in: when to probe next, and when a run of results
//! turns the server down or back up (check_http.c / check_tcp.c, 2.2.7).

use std::time::{Duration, Instant};

use super::CheckResult;

/// A checker's timing and retry settings, named as keepalived's keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerConfig {
    /// `delay_loop`: time between checks of a server whose state is settled.
    pub delay_loop: Duration,
    /// `retry` (`nb_get_retry` before 2.0): failed attempts tolerated after
    /// the first; the server goes down on the `retry + 1`-th consecutive
    /// failure.
    pub retry: u32,
    /// `delay_before_retry`: time before the next attempt after a failure
    /// that did not yet bring the server down.
    pub delay_before_retry: Duration,
    /// `alpha`: start the server down, so it only takes traffic after its
    /// first successful check. keepalived's default is off: start up.
    pub alpha: bool,
}

impl CheckerConfig {
    /// HTTP_GET's defaults around `delay_loop`: retry 1, delay_before_retry 3 s.
    pub fn http_get(delay_loop: Duration) -> Self {
        Self { delay_loop, retry: 1, delay_before_retry: Duration::from_secs(3), alpha: false }
    }

    /// TCP_CHECK's defaults around `delay_loop`: retry 1, delay_before_retry 1 s.
    pub fn tcp_check(delay_loop: Duration) -> Self {
        Self { delay_loop, retry: 1, delay_before_retry: Duration::from_secs(1), alpha: false }
    }
}

/// A change of a server's state, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// It was up and has failed `retry + 1` checks in a row.
    Down,
    /// It was down and passed a check.
    Up,
}

/// The latest check, for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    /// When it completed.
    pub at: Instant,
    /// What it found.
    pub result: CheckResult,
}

/// The state of one checker of one real server, as keepalived keeps it.
///
/// * Start: up unless `alpha`. Either way keepalived preloads its failure
///   counter with `retry` ("For non alpha mode, one failure is enough
///   initially", check_data.c), so a server that fails its very first check
///   goes down at once; only after a success does `retry` apply.
/// * Success: the counter resets; a down server comes back up at once
///   (no consecutive-success threshold in keepalived). Next check after
///   `delay_loop`.
/// * Failure: the counter grows; when it exceeds `retry` an up server goes
///   down. Next check after `delay_before_retry` while retrying, and after
///   `max(delay_loop, delay_before_retry)` once down (HTTP_GET's epilog;
///   TCP_CHECK waits `delay_loop`, the same unless `delay_before_retry` is
///   the longer).
/// * The next check is timed from the completion of the last one, as
///   keepalived arms its timer in the epilog.
#[derive(Debug, Clone)]
pub struct Checker {
    config: CheckerConfig,
    up: bool,
    failures: u32,
    next_check: Instant,
    last: Option<LastCheck>,
}

impl Checker {
    /// A checker whose first probe is due at `first_check` (keepalived
    /// spreads first checks over a random part of `delay_loop`; the caller
    /// chooses).
    pub fn new(config: CheckerConfig, first_check: Instant) -> Self {
        Self {
            config,
            up: !config.alpha,
            failures: config.retry,
            next_check: first_check,
            last: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &CheckerConfig {
        &self.config
    }

    /// When the next probe should start.
    pub fn next_check_at(&self) -> Instant {
        self.next_check
    }

    /// Whether a probe is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_check <= now
    }

    /// Whether the server counts as up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive failed checks (preloaded with `retry` until the first
    /// success, see the type's documentation).
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// The latest check, if any has completed.
    pub fn last(&self) -> Option<&LastCheck> {
        self.last.as_ref()
    }

    /// Takes the result of a probe that completed at `now`; schedules the
    /// next one and says whether the server changed state.
    pub fn record(&mut self, now: Instant, result: CheckResult) -> Option<Transition> {
        let success = result.is_success();
        self.last = Some(LastCheck { at: now, result });
        if success {
            self.failures = 0;
            self.next_check = now + self.config.delay_loop;
            if !self.up {
                self.up = true;
                return Some(Transition::Up);
            }
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures <= self.config.retry {
            self.next_check = now + self.config.delay_before_retry;
            return None;
        }
        self.next_check = now + self.config.delay_loop.max(self.config.delay_before_retry);
        if self.up {
            self.up = false;
            return Some(Transition::Down);
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::ProbeFailure;
    use super::*;

    const S: u64 = 1000;

    fn fail() -> CheckResult {
        let target = "192.168.10.103:80".parse().unwrap();
        CheckResult::failure(Duration::from_millis(2), ProbeFailure::Refused(target))
    }

    /// Runs checks at the times the checker asks for, each taking no time;
    /// returns, per check, when it ran (ms from start) and what it changed.
    fn run(config: CheckerConfig, results: &[bool]) -> Vec<(u64, Option<Transition>)> {
        let start = Instant::now();
        let mut checker = Checker::new(config, start);
        results
            .iter()
            .map(|&ok| {
                let now = checker.next_check_at();
                assert!(checker.is_due(now));
                let result =
                    if ok { CheckResult::success(Duration::from_millis(1)) } else { fail() };
                let change = checker.record(now, result);
                (u64::try_from((now - start).as_millis()).unwrap(), change)
            })
            .collect()
    }

    fn config(retry: u32, delay_before_retry: u64) -> CheckerConfig {
        CheckerConfig {
            delay_loop: Duration::from_secs(3),
            retry,
            delay_before_retry: Duration::from_secs(delay_before_retry),
            alpha: false,
        }
    }

    #[test]
    fn table() {
        use Transition::{Down, Up};
        const T: bool = true;
        const F: bool = false;
        let alpha = CheckerConfig { alpha: true, ..config(1, 1) };
        let long_retry = config(1, 5);
        /// What, settings, results in order, (when in ms, change) per check.
        type Row<'a> = (&'a str, CheckerConfig, &'a [bool], &'a [(u64, Option<Transition>)]);
        #[rustfmt::skip]
        let table: &[Row<'_>] = &[
            ("healthy: every delay_loop, no change",
             config(1, 1), &[T, T, T], &[(0, None), (3 * S, None), (6 * S, None)]),
            ("retry 0: the first failure after a success brings it down",
             config(0, 1), &[T, F, F, T],
             &[(0, None), (3 * S, Some(Down)), (6 * S, None), (9 * S, Some(Up))]),
            ("retry 1: two failures, the second delay_before_retry after the first",
             config(1, 1), &[T, F, F, F, T],
             &[(0, None), (3 * S, None), (4 * S, Some(Down)), (7 * S, None), (10 * S, Some(Up))]),
            ("retry 3: four failures in a row",
             config(3, 1), &[T, F, F, F, F, F],
             &[(0, None), (3 * S, None), (4 * S, None), (5 * S, None), (6 * S, Some(Down)),
               (9 * S, None)]),
            ("a success in between resets the count",
             config(1, 1), &[T, F, T, F, T],
             &[(0, None), (3 * S, None), (4 * S, None), (7 * S, None), (8 * S, None)]),
            ("the very first check failing is enough, whatever retry says",
             config(3, 1), &[F, F, T, F],
             &[(0, Some(Down)), (3 * S, None), (6 * S, Some(Up)), (9 * S, None)]),
            ("delay_before_retry longer than delay_loop spaces checks while down",
             long_retry, &[T, F, F, F],
             &[(0, None), (3 * S, None), (8 * S, Some(Down)), (13 * S, None)]),
            ("alpha: starts down, the first success brings it up",
             alpha, &[T, F, F],
             &[(0, Some(Up)), (3 * S, None), (4 * S, Some(Down))]),
            ("alpha: failing from the start changes nothing",
             alpha, &[F, F, T],
             &[(0, None), (3 * S, None), (6 * S, Some(Up))]),
        ];
        for (what, config, results, expected) in table {
            assert_eq!(run(*config, results), *expected, "{what}");
        }
    }

    #[test]
    fn keeps_the_last_result_for_status() {
        let start = Instant::now();
        let mut checker = Checker::new(CheckerConfig::http_get(Duration::from_secs(3)), start);
        assert!(checker.is_up());
        assert!(checker.last().is_none());
        assert!(!checker.is_due(start - Duration::from_millis(1)));
        let at = start + Duration::from_millis(40);
        assert_eq!(checker.record(at, fail()), Some(Transition::Down));
        let last = checker.last().unwrap();
        assert_eq!(last.at, at);
        assert_eq!(last.result, fail());
        assert!(!checker.is_up());
        assert_eq!(checker.consecutive_failures(), 2);
        // Down: next check after max(delay_loop 3 s, delay_before_retry 3 s).
        assert_eq!(checker.next_check_at(), at + Duration::from_secs(3));
    }

    #[test]
    fn keepalived_defaults() {
        let http = CheckerConfig::http_get(Duration::from_secs(3));
        assert_eq!(
            (http.retry, http.delay_before_retry, http.alpha),
            (1, Duration::from_secs(3), false)
        );
        let tcp = CheckerConfig::tcp_check(Duration::from_secs(6));
        assert_eq!(
            (tcp.delay_loop, tcp.retry, tcp.delay_before_retry),
            (Duration::from_secs(6), 1, Duration::from_secs(1))
        );
    }
}
