//! The probe loop of one real server, run as its own tokio task so that no
//! check ever waits for another or for VRRP: probe when due, feed the
//! hysteresis, report transitions (and every result) to the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::{http_get, tcp_check, CheckResult, Checker, CheckerConfig, Transition, UrlCheck};

/// What to probe.
#[derive(Debug, Clone)]
pub enum Probe {
    /// keepalived's HTTP_GET: every url must pass.
    Http { urls: Vec<UrlCheck>, timeout: Duration },
    /// keepalived's TCP_CHECK.
    Tcp { timeout: Duration },
}

/// A report from a probe task.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The real server it probes.
    pub key: crate::publish::ServerKey,
    /// Set when the server changed state with this result.
    pub transition: Option<Transition>,
    pub result: CheckResult,
}

/// Probes `target` from `bind` until the receiver goes away.
pub async fn run(
    key: crate::publish::ServerKey,
    target: SocketAddr,
    bind: Option<Ipv4Addr>,
    probe: Probe,
    config: CheckerConfig,
    reports: UnboundedSender<HealthReport>,
) {
    let mut checker = Checker::new(config, Instant::now());
    loop {
        tokio::time::sleep_until(checker.next_check_at().into()).await;
        let result = match &probe {
            Probe::Tcp { timeout } => tcp_check(target, bind, *timeout).await,
            Probe::Http { urls, timeout } => {
                let mut last = CheckResult::success(Duration::ZERO);
                for url in urls {
                    last = http_get(target, bind, url, *timeout).await;
                    if !last.is_success() {
                        break;
                    }
                }
                last
            }
        };
        let transition = checker.record(Instant::now(), result.clone());
        if reports.send(HealthReport { key, transition, result }).is_err() {
            return;
        }
    }
}
