//! Prometheus `/metrics` (`[metrics] listen`): the daemon's status report in
//! the text exposition format (prometheus-client), served by hyper on its own
//! task. Each scrape asks the control loop for a fresh report.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use crate::status::{LatencyHistogram, StatusReport};

type Labels = Vec<(String, String)>;

/// Histograms whose buckets the daemon already counted (the report is a
/// snapshot): prometheus-client's own `Histogram` only takes observations.
#[derive(Debug, Default)]
struct CountedHistograms(Vec<(Labels, LatencyHistogram)>);

impl EncodeMetric for CountedHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, h) in &self.0 {
            encoder.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                h.sum_seconds,
                h.count,
                &h.bucket_pairs(),
                None,
            )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The Prometheus text for one report.
pub fn render(report: &StatusReport) -> String {
    let mut registry = Registry::with_prefix("xdplb");

    let steer = Family::<Labels, Counter>::default();
    let worker_frames = Family::<Labels, Counter>::default();
    let forwarded = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let socket = Family::<Labels, Counter>::default();
    for (name, value) in &report.counters {
        let (family, label, key) = if let Some(reason) = name.strip_prefix("steer.") {
            (&steer, "reason", reason)
        } else if let Some(kind) = name.strip_prefix("worker.forward.") {
            (&forwarded, "kind", kind)
        } else if let Some(reason) = name.strip_prefix("worker.drop.") {
            (&dropped, "reason", reason)
        } else if let Some(what) = name.strip_prefix("worker.") {
            (&worker_frames, "counter", what)
        } else if let Some(what) = name.strip_prefix("xsk.") {
            (&socket, "counter", what)
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
    registry.register(
        "socket_frames",
        "What the kernel counted on the AF_XDP sockets (XDP_STATISTICS): frames redirected \
         that never reached a worker (rx_dropped, rx_ring_full) and bad descriptors",
        socket,
    );

    let weight = Family::<Labels, Gauge>::default();
    let connections = Family::<Labels, Gauge>::default();
    let up = Family::<Labels, Gauge>::default();
    let server_packets = Family::<Labels, Counter>::default();
    let server_bytes = Family::<Labels, Counter>::default();
    let service_packets = Family::<Labels, Counter>::default();
    let service_bytes = Family::<Labels, Counter>::default();
    let quorum_up = Family::<Labels, Gauge>::default();
    let live_weight = Family::<Labels, Gauge>::default();
    let sorry_in_use = Family::<Labels, Gauge>::default();
    let persistence = Family::<Labels, Gauge>::default();
    let mut latency = CountedHistograms::default();
    for service in &report.services {
        let svc = service.label();
        let service_labels = labels(&[("service", &svc)]);
        service_packets.get_or_create(&service_labels).inc_by(service.packets);
        service_bytes.get_or_create(&service_labels).inc_by(service.bytes);
        quorum_up
            .get_or_create(&service_labels)
            .set(i64::from(service.quorum.state == crate::quorum::QuorumState::Up));
        live_weight
            .get_or_create(&service_labels)
            .set(i64::try_from(service.quorum.live_weight).unwrap_or(i64::MAX));
        if service.sorry_server.is_some() {
            sorry_in_use.get_or_create(&service_labels).set(i64::from(service.sorry_server_in_use));
        }
        if let Some(p) = &service.persistence {
            persistence
                .get_or_create(&service_labels)
                .set(i64::try_from(p.timeout).unwrap_or(i64::MAX));
        }
        // The sorry server is a destination like the real servers.
        for rs in service.real_servers.iter().chain(&service.sorry_server) {
            let server = format!("{}:{}", rs.address, rs.port);
            let labels = labels(&[("service", &svc), ("server", &server)]);
            weight.get_or_create(&labels).set(rs.weight.map_or(-1, i64::from));
            for (state, n) in [("active", rs.active_conn), ("inactive", rs.inact_conn)] {
                let mut l = labels.clone();
                l.push(("state".to_owned(), state.to_owned()));
                connections.get_or_create(&l).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if rs.health != "unchecked" {
                up.get_or_create(&labels).set(i64::from(rs.health == "up"));
            }
            server_packets.get_or_create(&labels).inc_by(rs.packets);
            server_bytes.get_or_create(&labels).inc_by(rs.bytes);
            for (result, h) in
                [("ok", &rs.health_latency.ok), ("failed", &rs.health_latency.failed)]
            {
                if h.count > 0 {
                    let mut l = labels.clone();
                    l.push(("result".to_owned(), result.to_owned()));
                    latency.0.push((l, h.clone()));
                }
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
    registry.register(
        "real_server_forwarded_packets",
        "Frames forwarded to the real server",
        server_packets,
    );
    registry.register(
        "real_server_forwarded_bytes",
        "Bytes of the frames forwarded to the real server",
        server_bytes,
    );
    registry.register(
        "service_forwarded_packets",
        "Frames forwarded for the virtual service (its real and sorry servers)",
        service_packets,
    );
    registry.register(
        "service_forwarded_bytes",
        "Bytes of the frames forwarded for the virtual service",
        service_bytes,
    );
    registry.register("service_quorum_up", "1 while the service has its quorum", quorum_up);
    registry.register(
        "service_live_weight",
        "Total weight of the live real servers (what the quorum is judged on)",
        live_weight,
    );
    registry.register(
        "service_sorry_server_in_use",
        "1 while the sorry server serves instead of the real servers",
        sorry_in_use,
    );
    registry.register(
        "service_persistence_timeout_seconds",
        "How long a client stays with its real server (persistent services only)",
        persistence,
    );
    registry.register(
        "health_check_duration_seconds",
        "How long health checks took, by result",
        latency,
    );

    let busy = Family::<Labels, Counter<f64, AtomicU64>>::default();
    let run = Family::<Labels, Counter<f64, AtomicU64>>::default();
    for w in &report.worker_stats {
        let queue = w.queue.to_string();
        let l = labels(&[("queue", &queue)]);
        busy.get_or_create(&l).inc_by(w.busy_seconds.max(0.0));
        run.get_or_create(&l).inc_by(w.total_seconds.max(0.0));
    }
    registry.register(
        "worker_busy_seconds",
        "Time the worker spent handling frames (divide by xdplb_worker_seconds_total for its load)",
        busy,
    );
    registry.register("worker_seconds", "Time the worker has run", run);

    let reloads = Family::<Labels, Counter>::default();
    reloads.get_or_create(&labels(&[("result", "ok")])).inc_by(report.reload.succeeded);
    reloads.get_or_create(&labels(&[("result", "failed")])).inc_by(report.reload.failed);
    registry.register("config_reloads", "Configuration reloads, by result", reloads);
    let last_ok = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    last_ok.set(i64::from(report.reload.last_successful()));
    registry.register(
        "config_last_reload_successful",
        "Whether the last configuration reload (or the start) succeeded",
        last_ok,
    );

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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::status::{RealServerStatus, ServiceStatus, VrrpStatus};

    /// One sample of the text format: name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// The exposition text as (TYPE by family, samples), refusing anything
    /// the text format does not allow: a sample without a TYPE line for its
    /// family, a malformed label set, a value that is not a number.
    fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("TYPE family kind");
                types.insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, rest) = match line.find('{') {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => line.split_once(' ').expect("name value"),
            };
            let mut labels = BTreeMap::new();
            let value_text = if line.contains('{') {
                let mut chars = rest.char_indices().peekable();
                let end = loop {
                    let (at, c) = chars.next().expect("label set closes");
                    if c == '}' {
                        break at;
                    }
                    let key_start = at;
                    let eq = rest[key_start..].find('=').expect("key=") + key_start;
                    let key = rest[key_start..eq].trim_start_matches(',').to_owned();
                    assert_eq!(&rest[eq + 1..eq + 2], "\"", "quoted value in {line}");
                    let mut value = String::new();
                    let mut escaped = false;
                    let mut close = None;
                    for (i, c) in rest[eq + 2..].char_indices() {
                        match (escaped, c) {
                            (true, 'n') => (value.push('\n'), escaped = false).1,
                            (true, c) => (value.push(c), escaped = false).1,
                            (false, '\\') => escaped = true,
                            (false, '"') => {
                                close = Some(eq + 2 + i);
                                break;
                            }
                            (false, c) => value.push(c),
                        }
                    }
                    let close = close.expect("closing quote");
                    labels.insert(key, value);
                    while chars.peek().is_some_and(|(i, _)| *i <= close) {
                        chars.next();
                    }
                };
                rest[end + 1..].trim()
            } else {
                rest.trim()
            };
            let value = match value_text {
                "+Inf" => f64::INFINITY,
                v => v.parse::<f64>().unwrap_or_else(|_| panic!("value {v:?} in {line}")),
            };
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| types.contains_key(*f)))
                .unwrap_or(name);
            assert!(types.contains_key(family), "no TYPE for {name} in:\n{text}");
            samples.push((name.to_owned(), labels, value));
        }
        (types, samples)
    }

    fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && with.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    #[test]
    fn renders_counters_servers_and_vrrp_with_prometheus_names() {
        let report = StatusReport {
            counters: vec![
                ("steer.redirected".into(), 7),
                ("worker.rx".into(), 7),
                ("worker.forward.new_flow".into(), 3),
                ("worker.drop.fragment".into(), 2),
                ("xsk.rx_ring_full".into(), 4),
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
                    ..RealServerStatus::default()
                }],
                ..ServiceStatus::default()
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
            "xdplb_socket_frames_total{counter=\"rx_ring_full\"} 4",
            "xdplb_real_server_weight{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\"} 0",
            "xdplb_real_server_flows{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\",state=\"active\"} 4",
            "xdplb_real_server_up{service=\"TCP 192.168.10.110:80\",server=\"192.168.10.103:80\"} 0",
            "xdplb_vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1",
            "xdplb_vrrp_state{instance=\"VI_1\",state=\"BACKUP\"} 0",
            "xdplb_vrrp_events_total{instance=\"VI_1\",counter=\"adverts_sent\"} 9",
            // No reload yet: the start counts as success.
            "xdplb_config_last_reload_successful 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        parse(&text);
    }

    #[test]
    fn renders_traffic_quorum_latency_workers_and_reloads() {
        let report = crate::status::tests::full_report();
        let text = render(&report);
        let (types, samples) = parse(&text);
        for (family, kind) in [
            ("xdplb_real_server_forwarded_packets", "counter"),
            ("xdplb_service_forwarded_bytes", "counter"),
            ("xdplb_health_check_duration_seconds", "histogram"),
            ("xdplb_worker_busy_seconds", "counter"),
            ("xdplb_worker_seconds", "counter"),
            ("xdplb_config_reloads", "counter"),
            ("xdplb_config_last_reload_successful", "gauge"),
            ("xdplb_service_quorum_up", "gauge"),
            ("xdplb_service_sorry_server_in_use", "gauge"),
        ] {
            assert_eq!(types.get(family).map(String::as_str), Some(kind), "{family}:\n{text}");
        }
        let svc = ("service", "TCP 192.168.10.110:80");
        let web1 = [svc, ("server", "192.168.10.103:80")];
        let sorry = [svc, ("server", "192.168.10.200:80")];
        for (name, with, want) in [
            ("xdplb_real_server_forwarded_packets_total", &web1[..], 10.0),
            ("xdplb_real_server_forwarded_bytes_total", &web1[..], 1500.0),
            ("xdplb_real_server_forwarded_packets_total", &sorry[..], 2.0),
            ("xdplb_real_server_weight", &sorry[..], 1.0),
            ("xdplb_service_forwarded_packets_total", &[svc][..], 17.0),
            ("xdplb_service_forwarded_bytes_total", &[svc][..], 2320.0),
            ("xdplb_service_quorum_up", &[svc][..], 0.0),
            ("xdplb_service_live_weight", &[svc][..], 0.0),
            ("xdplb_service_sorry_server_in_use", &[svc][..], 1.0),
            ("xdplb_service_persistence_timeout_seconds", &[svc][..], 360.0),
            ("xdplb_worker_busy_seconds_total", &[("queue", "0")][..], 2.5),
            ("xdplb_worker_seconds_total", &[("queue", "0")][..], 10.0),
            ("xdplb_config_reloads_total", &[("result", "ok")][..], 2.0),
            ("xdplb_config_reloads_total", &[("result", "failed")][..], 1.0),
            ("xdplb_config_last_reload_successful", &[][..], 0.0),
        ] {
            assert_eq!(value(&samples, name, with), Some(want), "{name} {with:?}:\n{text}");
        }
        // The histogram: per result, cumulative buckets ending in +Inf = count.
        let ok = [web1[0], web1[1], ("result", "ok")];
        let failed = [web1[0], web1[1], ("result", "failed")];
        assert_eq!(value(&samples, "xdplb_health_check_duration_seconds_count", &ok), Some(1.0));
        assert_eq!(value(&samples, "xdplb_health_check_duration_seconds_sum", &failed), Some(3.0));
        for with in [&ok, &failed] {
            let buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|(n, l, _)| {
                    n == "xdplb_health_check_duration_seconds_bucket"
                        && with.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, l, v)| {
                    let le = &l["le"];
                    (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *v)
                })
                .collect();
            assert_eq!(buckets.len(), crate::status::HEALTH_LATENCY_BOUNDS.len() + 1);
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{buckets:?}");
            assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1.0)));
        }
        // 400 µs passed: counted from le="0.0005" on, not before.
        assert_eq!(
            value(
                &samples,
                "xdplb_health_check_duration_seconds_bucket",
                &[ok[0], ok[1], ok[2], ("le", "0.0005")]
            ),
            Some(1.0)
        );
        // 3 s failed: not within le="2.5", within le="5.0".
        let le = |b: &'static str| [failed[0], failed[1], failed[2], ("le", b)];
        assert_eq!(
            value(&samples, "xdplb_health_check_duration_seconds_bucket", &le("2.5")),
            Some(0.0)
        );
        assert_eq!(
            value(&samples, "xdplb_health_check_duration_seconds_bucket", &le("5.0")),
            Some(1.0)
        );
        // A server never checked has no histogram series.
        assert!(!samples.iter().any(|(n, l, _)| n.starts_with("xdplb_health_check")
            && l.get("server").map(String::as_str) == Some("192.168.10.104:80")));
    }
}
