//! keepalived's TCP_CHECK: a server is up when a TCP connect to it succeeds
//! within the timeout. The connect leaves from the source address we are
//! given (the director's own), as keepalived's `bindto` does.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{CheckResult, ProbeFailure};

/// Probes `target` with a TCP connect from `bind` (any port; the kernel's
/// choice of address when `None`), giving up after `timeout`.
pub async fn tcp_check(
    target: SocketAddr,
    bind: Option<Ipv4Addr>,
    timeout: Duration,
) -> CheckResult {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, connect(target, bind)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(ProbeFailure::Timeout { target, timeout }),
    };
    CheckResult { latency: started.elapsed(), outcome }
}

/// A TCP connection to `target` from `bind`, with the failure named. No
/// timeout of its own: callers bound the whole attempt.
pub(super) async fn connect(
    target: SocketAddr,
    bind: Option<Ipv4Addr>,
) -> Result<TcpStream, ProbeFailure> {
    let bind_error =
        |source_ip: Ipv4Addr, e: io::Error| ProbeFailure::Bind { source_ip, reason: e.to_string() };
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| ProbeFailure::Connect { target, reason: format!("socket: {e}") })?;
    if let Some(source_ip) = bind {
        if target.is_ipv6() {
            return Err(ProbeFailure::Bind {
                source_ip,
                reason: format!("an IPv4 source cannot reach {target}"),
            });
        }
        socket.bind(SocketAddr::from((source_ip, 0))).map_err(|e| bind_error(source_ip, e))?;
    }
    socket.connect(target).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused(target),
        _ => ProbeFailure::Connect { target, reason: e.to_string() },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// A port on 127.0.0.1 that was just listening and is now closed.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr
    }

    #[tokio::test]
    async fn open_port_is_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let result = tcp_check(target, Some(Ipv4Addr::LOCALHOST), TIMEOUT).await;
        assert_eq!(result.outcome, Ok(()));
        assert!(result.latency < TIMEOUT);
        // It really connected from the address asked for.
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), Ipv4Addr::LOCALHOST);
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let target = closed_port().await;
        let result = tcp_check(target, None, TIMEOUT).await;
        assert_eq!(result.outcome, Err(ProbeFailure::Refused(target)));
        assert!(result.latency < TIMEOUT);
    }

    #[tokio::test]
    async fn a_source_we_do_not_own_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        // TEST-NET-3: on no interface here.
        let source_ip = Ipv4Addr::new(203, 0, 113, 7);
        let result = tcp_check(target, Some(source_ip), TIMEOUT).await;
        match result.outcome {
            Err(ProbeFailure::Bind { source_ip: named, .. }) => assert_eq!(named, source_ip),
            other => panic!("{other:?}"),
        }
    }
}
