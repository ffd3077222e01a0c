//! Health checks of the real servers as keepalived 2.2.7 runs them: the
//! HTTP_GET and TCP_CHECK probes, and the retry hysteresis that turns their
//! results into up/down transitions.

pub mod http; // HTTP_GET: status code and optional MD5 digest, over a socket bound to our address
pub mod hysteresis; // delay_loop / retry / delay_before_retry: results → Up/Down, pure
pub mod task;
pub mod tcp; // TCP_CHECK: a connect from our address // one real server's probe loop as a tokio task, reporting transitions

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use http::{http_get, UrlCheck};
pub use hysteresis::{Checker, CheckerConfig, LastCheck, Transition};
pub use tcp::tcp_check;

/// Why a probe failed, naming what it saw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    /// The server answered the SYN with a reset.
    #[error("connection to {0} refused")]
    Refused(SocketAddr),
    /// The whole attempt (connect, request, response) took too long.
    #[error("no complete answer from {target} within {timeout:?}")]
    Timeout { target: SocketAddr, timeout: Duration },
    /// Connecting failed otherwise (unreachable, reset, …).
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: SocketAddr, reason: String },
    /// The source address could not be used.
    #[error("cannot bind the probe to {source_ip}: {reason}")]
    Bind { source_ip: Ipv4Addr, reason: String },
    /// The HTTP status is not the one expected.
    #[error("HTTP status {got} ≠ {}", expected.map_or_else(|| "2xx".to_owned(), |c| c.to_string()))]
    Status { got: u16, expected: Option<u16> },
    /// The MD5 of the body is not the one expected.
    #[error("MD5 digest {got} ≠ {expected}")]
    Digest { got: String, expected: String },
    /// The request could not be written or the response not read.
    #[error("HTTP exchange with {target} failed: {reason}")]
    Http { target: SocketAddr, reason: String },
}

/// One probe's outcome and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// From the start of the connect to the end of the response.
    pub latency: Duration,
    /// Success, or why not.
    pub outcome: Result<(), ProbeFailure>,
}

impl CheckResult {
    /// A probe that passed.
    pub fn success(latency: Duration) -> Self {
        Self { latency, outcome: Ok(()) }
    }

    /// A probe that failed.
    pub fn failure(latency: Duration, failure: ProbeFailure) -> Self {
        Self { latency, outcome: Err(failure) }
    }

    /// Whether the probe passed.
    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_was_seen() {
        let target: SocketAddr = "192.168.10.103:80".parse().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            (ProbeFailure::Refused(target), "connection to 192.168.10.103:80 refused"),
            (ProbeFailure::Status { got: 500, expected: Some(200) }, "HTTP status 500 ≠ 200"),
            (ProbeFailure::Status { got: 404, expected: None }, "HTTP status 404 ≠ 2xx"),
            (
                ProbeFailure::Timeout { target, timeout: Duration::from_secs(3) },
                "no complete answer from 192.168.10.103:80 within 3s",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
    }
}
