//! Prometheus `/metrics` (`[metrics] listen`): the daemon's status report in
//! the text exposition format (prometheus-client), served by hyper on its own
//! task. Each scrape asks the control loop for a fresh report.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use crate::status::StatusReport;

type Labels = Vec<(String, String)>;

/// The Prometheus text for one report.
pub fn render(report: &StatusReport) -> String {
    let mut registry = Registry::with_prefix("xdplb");

    let steer = Family::<Labels, Counter>::default();
    let worker_frames = Family::<Labels, Counter>::default();
    let forwarded = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    for (name, value) in &report.counters {
        let (family, label, key) = if let Some(reason) = name.strip_prefix("steer.") {
            (&steer, "reason", reason)
        } else if let Some(kind) = name.strip_prefix("worker.forward.") {
            (&forwarded, "kind", kind)
        } else if let Some(reason) = name.strip_prefix("worker.drop.") {
            (&dropped, "reason", reason)
        } else if let Some(what) = name.strip_prefix("worker.") {
            (&worker_frames, "counter", what)
        } else {
            continue;
        };
        family.get_or_create(&vec![(label.to_owned(), key.to_owned())]).inc_by(*value);
    }
    registry.register(
        "steer_frames",
        "Frames the XDP program handled, by outcome (redirected or why it passed them)",
        steer,
    );
    registry.register(
        "worker_frames",
        "Frames the workers received (rx) and sent (tx)",
        worker_frames,
    );
    registry.register("forwarded_frames", "Frames forwarded, by how the flow was found", forwarded);
    registry.register("dropped_frames", "Frames the workers dropped, by reason", dropped);

    let weight = Family::<Labels, Gauge>::default();
    let connections = Family::<Labels, Gauge>::default();
    let up = Family::<Labels, Gauge>::default();
    for service in &report.services {
        let svc = format!("{} {}:{}", service.protocol, service.vip, service.port);
        for rs in &service.real_servers {
            let server = format!("{}:{}", rs.address, rs.port);
            let labels = vec![("service".to_owned(), svc.clone()), ("server".to_owned(), server)];
            weight.get_or_create(&labels).set(rs.weight.map_or(-1, i64::from));
            for (state, n) in [("active", rs.active_conn), ("inactive", rs.inact_conn)] {
                let mut l = labels.clone();
                l.push(("state".to_owned(), state.to_owned()));
                connections.get_or_create(&l).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if rs.health != "unchecked" {
                up.get_or_create(&labels).set(i64::from(rs.health == "up"));
            }
        }
    }
    registry.register(
        "real_server_weight",
        "Weight new flows are scheduled by (0: inhibited or no MAC; -1: removed)",
        weight,
    );
    registry.register("real_server_flows", "Flows in the workers' tables", connections);
    registry.register("real_server_up", "Health check state (1 up, 0 down)", up);

    let vrrp_state = Family::<Labels, Gauge>::default();
    let vrrp_counters = Family::<Labels, Counter>::default();
    for v in &report.vrrp {
        for state in ["BACKUP", "MASTER", "FAULT", "STOPPED"] {
            let labels = vec![
                ("instance".to_owned(), v.name.clone()),
                ("state".to_owned(), state.to_owned()),
            ];
            vrrp_state.get_or_create(&labels).set(i64::from(v.state == state));
        }
        for (name, value) in &v.counters {
            let labels =
                vec![("instance".to_owned(), v.name.clone()), ("counter".to_owned(), name.clone())];
            vrrp_counters.get_or_create(&labels).inc_by(*value);
        }
    }
    registry.register("vrrp_state", "1 for the VRRP instance's current state", vrrp_state);
    registry.register("vrrp_events", "VRRP adverts, GARPs and drops by reason", vrrp_counters);

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// A scrape asking the control loop for its report.
pub type ReportRequest = oneshot::Sender<StatusReport>;

/// Serves `/metrics` on `listen` until the runtime stops; each scrape sends
/// a request on `reports` and renders the answer.
pub async fn serve(
    listen: SocketAddr,
    reports: mpsc::UnboundedSender<ReportRequest>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let reports = reports.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let reports = reports.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &reports).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}

async fn respond<B>(
    request: &Request<B>,
    reports: &mpsc::UnboundedSender<ReportRequest>,
) -> Response<Full<Bytes>> {
    let reply = |status, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "xdplb serves /metrics only\n".to_owned());
    }
    let (tx, rx) = oneshot::channel();
    if reports.send(tx).is_err() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "xdplb is stopping\n".to_owned());
    }
    match rx.await {
        Ok(report) => {
            let mut response = reply(StatusCode::OK, render(&report));
            if let Ok(value) = "text/plain; version=0.0.4; charset=utf-8".parse() {
                response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
            }
            response
        }
        Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "xdplb is stopping\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{RealServerStatus, ServiceStatus, VrrpStatus};

    #[test]
    fn renders_counters_servers_and_vrrp_with_prometheus_names() {
        let report = StatusReport {
            counters: vec![
                ("steer.redirected".into(), 7),
                ("worker.rx".into(), 7),
                ("worker.forward.new_flow".into(), 3),
                ("worker.drop.fragment".into(), 2),
            ],
            services: vec![ServiceStatus {
                protocol: "TCP".into(),
                vip: "192.168.10.110".into(),
                port: 80,
                scheduler: "wrr".into(),
                active: true,
                real_servers: vec![RealServerStatus {
                    address: "192.168.10.103".into(),
                    port: 80,
                    configured_weight: 3,
                    weight: Some(0),
                    mac: None,
                    active_conn: 4,
                    inact_conn: 1,
                    health: "down".into(),
                    last_check: None,
                }],
            }],
            vrrp: vec![VrrpStatus {
                name: "VI_1".into(),
                state: "MASTER".into(),
                priority: 120,
                vips: vec![],
                counters: vec![("adverts_sent".into(), 9)],
            }],
            ..StatusReport::default()
        };
        let text = render(&report);
        for line in [
            "xdplb_steer_frames_total{reason=\"redirected\"} 7",
            "xdplb_worker_frames_total{counter=\"rx\"} 7",
            "xdplb_forwarded_frames_total{kind=\"new_flow\"} 3",
            "xdplb_dropped_frames_total{reason=\"fragment\"} 2",
            "xdplb_real_server_weight{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\"} 0",
            "xdplb_real_server_flows{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\",state=\"active\"} 4",
            "xdplb_real_server_up{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\"} 0",
            "xdplb_vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1",
            "xdplb_vrrp_state{instance=\"VI_1\",state=\"BACKUP\"} 0",
            "xdplb_vrrp_events_total{instance=\"VI_1\",counter=\"adverts_sent\"} 9",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
