//! Waiting for a condition instead of sleeping for a guess: the only sleep
//! in the lab is the poll interval between two looks. The one fixed span is
//! [`holds_for`]: watching that something does *not* happen needs a window.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Polls `condition` every `poll` until it returns `Ok(true)`, an error, or
/// `timeout` passes (then fails naming `what`). The condition is always
/// tried at least once and once more at the deadline.
pub fn wait_until<F>(what: &str, timeout: Duration, poll: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition()? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

/// Polls `condition` every `poll` for `window` and fails, naming `what`, the
/// first time it does not hold: for "nothing changes" checks, whose window
/// must come from the protocol (e.g. two master-down intervals), not a guess.
pub fn holds_for<F>(what: &str, window: Duration, poll: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let started = Instant::now();
    let deadline = started + window;
    loop {
        if !condition()? {
            bail!("{what} stopped holding after {:?} of {window:?}", started.elapsed());
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until("third call", Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            Ok(calls == 3)
        })
        .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn times_out_naming_the_condition() {
        let started = Instant::now();
        let err =
            wait_until("never", Duration::from_millis(30), Duration::from_millis(5), || Ok(false))
                .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(err.to_string().contains("never"), "{err}");
    }

    #[test]
    fn stops_at_the_first_error() {
        let mut calls = 0;
        let err = wait_until("error", Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            bail!("broken")
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.to_string(), "broken");
    }

    #[test]
    fn holds_for_watches_the_whole_window() {
        let started = Instant::now();
        let mut calls = 0;
        holds_for("always", Duration::from_millis(30), Duration::from_millis(5), || {
            calls += 1;
            Ok(true)
        })
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(calls >= 2, "{calls}");
        let mut calls = 0;
        let err =
            holds_for("until the third", Duration::from_secs(5), Duration::from_millis(1), || {
                calls += 1;
                Ok(calls < 3)
            })
            .unwrap_err();
        assert_eq!(calls, 3);
        assert!(err.to_string().contains("until the third"), "{err}");
    }
}
