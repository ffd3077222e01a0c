//! systemd integration for `xdplb run` as a `Type=notify` service: READY=1 once the data plane
//! forwards, STATUS= lines for `systemctl status`, watchdog keep-alives and STOPPING=1
//! (sd_notify(3)). Every call is a no-op when NOTIFY_SOCKET is unset, i.e. not run by systemd.

use std::{
    os::unix::fs::MetadataExt,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use sd_notify::NotifyState;

/// Set after the first failed notification, so that a broken socket warns once and not at every
/// watchdog ping.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Sends `states` as one datagram; a failure is logged (once), never fatal: systemd, when it is
/// there, acts on what does not arrive (start-up timeout, watchdog), and without systemd there is
/// nothing to tell.
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
            tracing::warn!(
                socket = %socket.to_string_lossy(),
                error = %e,
                "cannot notify the service manager (NOTIFY_SOCKET); further failures are not logged"
            );
        }
    }
}

/// Whether a service manager asked for notifications (NOTIFY_SOCKET is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// `READY=1` with a `STATUS=` line: call once the data plane forwards (after "data plane ready").
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// `STATUS=`: the one line `systemctl status xdplb` shows (VRRP state, a data-plane problem).
pub fn status(status: &str) {
    send(&[NotifyState::Status(&one_line(status))]);
}

/// `STOPPING=1`: call when a clean stop begins, before VIPs are removed and the program detached.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `WATCHDOG=1`: proves the control loop is alive; send every [`watchdog_interval`].
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// How often to call [`watchdog_ping`]: half of `WatchdogSec=` (WATCHDOG_USEC), as
/// sd_watchdog_enabled(3) advises; `None` when no watchdog is asked of this process.
pub fn watchdog_interval() -> Option<Duration> {
    ping_interval(sd_notify::watchdog_enabled())
}

/// Half the watchdog timeout; a zero timeout means no watchdog.
fn ping_interval(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| !t.is_zero()).map(|t| t / 2)
}

/// Whether stderr is connected to the journal (systemd.exec(5): JOURNAL_STREAM holds the
/// `DEVICE:INODE` of the stream; it only counts if stderr is still that stream). Logs written
/// there need no timestamp and no colour: the journal adds its own time and metadata.
pub fn logs_to_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = parse_journal_stream(&stream.to_string_lossy()) else {
        return false;
    };
    // /proc/self/fd/2 resolves to the open file itself, so its metadata is stderr's fstat.
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}

/// Parses JOURNAL_STREAM's `DEVICE:INODE` (both decimal).
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// A STATUS= value must be one line: the protocol is newline-separated `KEY=VALUE` pairs.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn watchdog_pings_at_half_the_timeout() {
        assert_eq!(ping_interval(Some(Duration::from_secs(2))), Some(Duration::from_secs(1)));
        assert_eq!(ping_interval(Some(Duration::from_micros(3))), Some(Duration::from_nanos(1500)));
        assert_eq!(ping_interval(Some(Duration::ZERO)), None);
        assert_eq!(ping_interval(None), None);
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:12345\n"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
        assert_eq!(parse_journal_stream("1:-1"), None);
    }

    proptest! {
        #[test]
        fn status_is_always_one_line_and_keeps_the_words(text in "[a-zA-Z0-9 \t\n\r]{0,64}") {
            let line = one_line(&text);
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            prop_assert_eq!(words(&line), words(&text));
        }

        #[test]
        fn journal_stream_round_trips(dev in any::<u64>(), ino in any::<u64>()) {
            prop_assert_eq!(parse_journal_stream(&format!("{dev}:{ino}")), Some((dev, ino)));
        }
    }
}
