//! The soak: two xdplb directors in VRRP (lb1 priority 120, lb2 110) in
//! front of a TCP/80 service and a UDP service, under paced HTTP and UDP
//! load from the pc for `XDPLB_SOAK_SECS` (default 120, what CI runs), with
//! a reload every 20 s, a health flap every 30 s (the first of each inside
//! the memory warm-up) and one failover in the middle. Then: failures only
//! around the failover, lb1's resident memory flat after warm-up, every flow
//! table drained to empty, and the counters in agreement with the clients'
//! own totals and the AF_XDP sockets' statistics.
//!
//! Needs root (namespaces, veth, XDP). `cargo test --test soak -- --nocapture`;
//! the long setting: `XDPLB_SOAK_SECS=3600 cargo test --test soak`. The
//! figures go to stderr uncaptured, one line each (`soak: …`).

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testlab::anyhow::{ensure, Context, Result};
use testlab::lab::mac_str;
use testlab::soak::{
    real_server_rows, service_packets, slope_kib_per_min, Load, RequestLog, RssSample, RssSampler,
    Window, XskStats, UDP_PORT,
};
use testlab::{
    wait_until, Counters, Host, Lab, LabOptions, SingleLb, VrrpLb, VrrpSpec, XdplbProcess,
};

/// The run's length unless `XDPLB_SOAK_SECS` says otherwise.
const DEFAULT_SECS: u64 = 120;
/// Requests a second per protocol: modest, so a loaded 2-core box copes.
const RATE: u32 = 40;
const RELOAD_EVERY: Duration = Duration::from_secs(20);
const FLAP_EVERY: Duration = Duration::from_secs(30);
/// The first reload and the first flap come early, so that every periodic
/// event has run once inside the memory warm-up (the first 20 %: 24 s of
/// the CI run): the first reload allocates some 80 KiB once, which later
/// in a 2-minute window would read as a slope near the bound.
const FIRST_RELOAD: Duration = Duration::from_secs(10);
const FIRST_FLAP: Duration = Duration::from_secs(15);
/// Short flow timeouts (seconds), so the tables drain within the test.
const TCP_TIMEOUT: u64 = 5;
const TCPFIN_TIMEOUT: u64 = 3;
const UDP_TIMEOUT: u64 = 3;
/// Failures are allowed from the cable pull until this long after lb1 has
/// preempted and serves again: requests in flight then may still time out.
const AFTER_FAILOVER: Duration = Duration::from_secs(5);
/// The first part of the run that the memory slope leaves out.
const WARM_UP_FRACTION: f64 = 0.2;
/// The bound: less than 1 MiB per 10 minutes.
const MAX_SLOPE_KIB_PER_MIN: f64 = 1024.0 / 10.0;
const RSS_EVERY: Duration = Duration::from_secs(2);
/// A loaded 2-core machine can take seconds to load and attach the program.
const READY: Duration = Duration::from_secs(60);
/// From start to a stable master: 3 × advert_int + skew, plus start-up.
const ELECTION: Duration = Duration::from_secs(30);
const SERVED: Duration = Duration::from_secs(30);
/// A reload is a few netlink calls and one snapshot.
const RELOADED: Duration = Duration::from_secs(15);
/// delay_loop + retry × (delay_before_retry + connect_timeout) = 3 s, with room.
const HEALTH: Duration = Duration::from_secs(20);
/// Link down → backup master → router entry moved; and back (preemption).
const TAKEOVER: Duration = Duration::from_secs(20);
/// The longest flow timeout, the census's 1 s refresh, and room for a loaded machine.
const DRAINED: Duration = Duration::from_secs(TCP_TIMEOUT + 2 + 10);
/// The contract: SIGTERM stops xdplb within 2 s.
const STOP_WITHIN: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "soak: {line}");
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The run's length: `XDPLB_SOAK_SECS`, or the CI default.
fn duration() -> Result<Duration> {
    match std::env::var("XDPLB_SOAK_SECS") {
        Ok(text) => {
            let n: u64 = text
                .trim()
                .parse()
                .with_context(|| format!("XDPLB_SOAK_SECS={text:?} is not a whole number"))?;
            ensure!(n >= 30, "XDPLB_SOAK_SECS={n}: the soak needs at least 30 s");
            Ok(Duration::from_secs(n))
        }
        Err(_) => Ok(Duration::from_secs(DEFAULT_SECS)),
    }
}

/// A director's configuration: VI_1 at `priority`, the seed's TCP service
/// and a UDP service on the same VIP, both with quick HTTP health checks of
/// /health_check.html (inhibit_on_failure), `weights` for web1 and web2.
fn config(lab: &Lab, priority: u8, weights: [u32; 2]) -> String {
    let mut service: SingleLb =
        lab.single_lb(&[(Host::Web1, weights[0]), (Host::Web2, weights[1])]);
    service.delay_loop = 1.0;
    service.retry = Some(1);
    service.delay_before_retry = Some(1.0);
    service.connect_timeout = 1.0;
    service.dataplane_extra = vec![
        format!("tcp_timeout = {TCP_TIMEOUT}.0"),
        format!("tcpfin_timeout = {TCPFIN_TIMEOUT}.0"),
        format!("udp_timeout = {UDP_TIMEOUT}.0"),
    ];
    let mut text = VrrpLb { vrrp: VrrpSpec::seed(lab.vip(), priority), service }.to_toml();
    text.push_str(&format!(
        "\n[[virtual_server]]\nvip = \"{}\"\nport = {UDP_PORT}\nprotocol = \"UDP\"\n\
         lvs_sched = \"wrr\"\nlvs_method = \"DR\"\ndelay_loop = 1.0\n",
        lab.vip()
    ));
    for (web, weight) in [(Host::Web1, weights[0]), (Host::Web2, weights[1])] {
        text.push_str(&format!(
            "\n[[virtual_server.real_server]]\nip = \"{}\"\nport = {UDP_PORT}\nweight = {weight}\n\
             inhibit_on_failure = true\n[virtual_server.real_server.http_get]\n\
             connect_port = 80\nconnect_timeout = 1.0\nretry = 1\ndelay_before_retry = 1.0\n\
             [[virtual_server.real_server.http_get.url]]\npath = \"/health_check.html\"\n\
             status_code = 200\n",
            web.ip()
        ));
    }
    text
}

/// One director under test and its configuration file.
struct Director {
    host: Host,
    priority: u8,
    path: PathBuf,
    process: XdplbProcess,
}

impl Director {
    fn start(lab: &Lab, host: Host, priority: u8, weights: [u32; 2]) -> Result<Self> {
        let path = lab.dir().join(format!("{}-soak.toml", host.name()));
        std::fs::write(&path, config(lab, priority, weights))
            .with_context(|| format!("write {}", path.display()))?;
        let mut process = lab.start_xdplb(host, &path, &xdplb())?;
        process.wait_for_log("data plane ready", READY)?;
        Ok(Self { host, priority, path, process })
    }

    fn rows(&self, lab: &Lab) -> Result<Vec<testlab::soak::RealServerRow>> {
        real_server_rows(&lab.status_json(self.host, &xdplb())?)
    }
}

/// Waits until `director` reports every real server at `web`'s address
/// (TCP and UDP) with health `want`.
fn wait_health(lab: &Lab, director: &Director, web: Host, want: &str) -> Result<()> {
    let mut last = String::new();
    let what = format!("{} to report {} {want}", director.host.name(), web.name());
    wait_until(&what, HEALTH, POLL, || {
        let rows = director.rows(lab)?;
        let mine: Vec<_> = rows.iter().filter(|r| r.address == web.ip()).collect();
        last = format!("{:?}", mine.iter().map(|r| (&r.protocol, &r.health)).collect::<Vec<_>>());
        Ok(mine.len() == 2 && mine.iter().all(|r| r.health == want))
    })
    .with_context(|| format!("last: {last}; log:\n{}", director.process.log()))
}

/// Rewrites both directors' files with `weights` and sends each SIGHUP;
/// waits until each reports them as configured for both services.
fn reload(lab: &Lab, directors: &[&Director], weights: [u32; 2]) -> Result<()> {
    for d in directors {
        std::fs::write(&d.path, config(lab, d.priority, weights))
            .with_context(|| format!("write {}", d.path.display()))?;
        d.process.sighup()?;
    }
    for d in directors {
        let mut last = String::new();
        wait_until(&format!("{} to apply {weights:?}", d.host.name()), RELOADED, POLL, || {
            let rows = d.rows(lab)?;
            last = format!("{rows:?}");
            Ok(rows.len() == 4
                && rows.iter().all(|r| {
                    let want = if r.address == Host::Web1.ip() { weights[0] } else { weights[1] };
                    r.configured_weight == u64::from(want)
                }))
        })
        .with_context(|| format!("last status: {last}; log:\n{}", d.process.log()))?;
    }
    Ok(())
}

/// What the failover measured.
struct Failover {
    /// The cable pull → the end of the span failures are allowed in.
    window: Window,
    /// lb2 carried traffic from `lb2_from` to `lb2_to` (its GARP moved the
    /// router's entry; lb1's cable went back in).
    lb2_from: Instant,
    lb2_to: Instant,
    /// Cable pull → router's entry on lb2.
    takeover: Duration,
    /// Cable back → router's entry on lb1.
    preempt: Duration,
}

/// Pulls lb1's cable: lb2 becomes master and the router follows its GARP;
/// traffic goes on through lb2; the cable goes back in and lb1 preempts.
fn failover(lab: &Lab, lb1: &Director, lb2: &Director, load: &Load) -> Result<Failover> {
    let watch = lab.watch_router_vip()?;
    let pulled = Instant::now();
    let down = lab.pull_cable(Host::Lb1)?;
    let moved = watch
        .wait_for_change_to(Host::Lb2.mac(), down, TAKEOVER)
        .with_context(|| format!("lb2 log:\n{}", lb2.process.log()))?;
    let takeover = moved.time.saturating_sub(down);
    let lb2_from = pulled + takeover;
    lab.wait_for_sole_holder(Host::Lb2, &[Host::Lb1], TAKEOVER)?;
    // Traffic through lb2: a second's worth of answers of each protocol.
    let answered = |load: &Load| {
        let (done, failed) = (load.done(), load.failed());
        (done.0 - failed.0, done.1 - failed.1)
    };
    let before = answered(load);
    let want = RATE as usize;
    wait_until("answers through lb2", SERVED, POLL, || {
        let now = answered(load);
        Ok(now.0 >= before.0 + want && now.1 >= before.1 + want)
    })?;
    let lb2_to = Instant::now();
    let up = lab.plug_cable(Host::Lb1)?;
    let back = watch
        .wait_for_change_to(Host::Lb1.mac(), up, TAKEOVER)
        .with_context(|| format!("lb1 log:\n{}", lb1.process.log()))?;
    let preempt = back.time.saturating_sub(up);
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], TAKEOVER)?;
    for web in Host::WEB {
        wait_health(lab, lb1, web, "up")?;
    }
    let window = Window { from: pulled, to: Instant::now() + AFTER_FAILOVER };
    Ok(Failover { window, lb2_from, lb2_to, takeover, preempt })
}

/// Waits until `director`'s census shows no flow at all; returns how long.
fn wait_drained(lab: &Lab, director: &Director) -> Result<Duration> {
    let started = Instant::now();
    let mut last = String::new();
    let what = format!("{}'s flow table to drain", director.host.name());
    wait_until(&what, DRAINED, POLL, || {
        let rows = director.rows(lab)?;
        last = format!(
            "{:?}",
            rows.iter()
                .map(|r| format!(
                    "{} {}: {}/{}",
                    r.protocol, r.address, r.active_conn, r.inact_conn
                ))
                .collect::<Vec<_>>()
        );
        Ok(rows.len() == 4 && rows.iter().all(|r| r.active_conn == 0 && r.inact_conn == 0))
    })
    .with_context(|| format!("last census (active/inactive): {last}"))?;
    Ok(started.elapsed())
}

/// Clean stop within the contract; the final counters.
fn stop(director: Director) -> Result<Counters> {
    let name = director.host.name();
    let exit = director.process.terminate()?;
    ensure!(exit.status.success(), "xdplb on {name} exited {}:\n{}", exit.status, exit.log);
    ensure!(exit.elapsed <= STOP_WITHIN, "{name} took {:?} to stop", exit.elapsed);
    ensure!(
        !exit.log.contains("reload refused") && !exit.log.contains("applied only in part"),
        "a reload failed on {name}:\n{}",
        exit.log
    );
    Ok(exit.counters()?.clone())
}

/// Drop reasons that mean a frame or the data plane went wrong, never the
/// lab's failover: none of them may count.
const NEVER_DROPPED: [&str; 8] = [
    "worker.drop.truncated",
    "worker.drop.not_ipv4",
    "worker.drop.bad_ipv4_header",
    "worker.drop.bad_ipv4_checksum",
    "worker.drop.fragment",
    "worker.drop.no_service",
    "worker.drop.flow_table_full",
    "worker.drop.tx_ring_full",
];

/// The counters' own consistency, and against the socket's statistics:
/// every frame the XDP program redirected was received by the worker or
/// lost by the socket (`ss` statistics where the kernel lists sockets,
/// else xdplb's own `xsk.*` counters); every received frame got one
/// verdict; every forwarded frame went onto the TX ring or was counted
/// tx_ring_full (which is counted as a drop too, after its forward).
fn check_frames(host: Host, c: &Counters, xsk: Option<XskStats>) -> Result<String> {
    let name = host.name();
    let redirected = c.get("steer.redirected")?;
    let rx = c.get("worker.rx")?;
    let tx = c.get("worker.tx")?;
    let forwarded = c.sum("worker.forward.");
    let dropped = c.sum("worker.drop.");
    let tx_full = c.get("worker.drop.tx_ring_full")?;
    let socket = match xsk {
        Some(s) => {
            ensure!(
                redirected == rx + s.lost_on_receive(),
                "{name}: steer.redirected={redirected} but worker.rx={rx} + socket lost {} \
                 ({s:?}): {c}",
                s.lost_on_receive()
            );
            format!(
                "socket lost {} (rx dropped {}, rx queue full {}, fill ring empty {})",
                s.lost_on_receive(),
                s.rx_dropped,
                s.rx_queue_full,
                s.rx_fill_ring_empty
            )
        }
        None => {
            // xdplb's own reading of XDP_STATISTICS, on its final line.
            let lost = c.get("xsk.rx_dropped")? + c.get("xsk.rx_ring_full")?;
            ensure!(
                redirected == rx + lost,
                "{name}: steer.redirected={redirected} but worker.rx={rx} + socket lost {lost} \
                 (xsk.rx_dropped + xsk.rx_ring_full): {c}"
            );
            format!("socket lost {lost} (xdplb's xsk.rx_dropped + xsk.rx_ring_full)")
        }
    };
    ensure!(
        forwarded + dropped - tx_full == rx,
        "{name}: forwarded {forwarded} + dropped {dropped} − tx_ring_full {tx_full} ≠ rx {rx}: {c}"
    );
    ensure!(tx + tx_full == forwarded, "{name}: tx {tx} + tx_ring_full {tx_full} ≠ {forwarded}");
    for key in NEVER_DROPPED {
        ensure!(c.get(key)? == 0, "{name}: {key} = {}: {c}", c.get(key)?);
    }
    Ok(format!(
        "{name}: steer.redirected={redirected} worker.rx={rx} ({socket}); forwarded {forwarded} \
         (new_flow {} established {} sloppy_tcp {} icmp_error {}) + dropped {dropped} = rx; \
         tx {tx}",
        c.get("worker.forward.new_flow")?,
        c.get("worker.forward.established")?,
        c.get("worker.forward.sloppy_tcp")?,
        c.get("worker.forward.icmp_error")?,
    ))
}

/// The non-zero drop counters, for the report.
fn drops(c: &Counters) -> String {
    let list: Vec<String> = c
        .map()
        .iter()
        .filter(|(k, v)| k.starts_with("worker.drop.") && **v > 0)
        .map(|(k, v)| format!("{}={v}", k.trim_start_matches("worker.drop.")))
        .collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(" ")
    }
}

/// The AF_XDP statistics of `host`'s sockets, summed; `None` if ss shows none.
fn xsk_stats(lab: &Lab, host: Host) -> Result<Option<XskStats>> {
    let all = lab.xsk_statistics(host)?;
    Ok((!all.is_empty()).then(|| all.into_iter().fold(XskStats::default(), XskStats::sum)))
}

fn log_line(log: &RequestLog) -> String {
    format!(
        "{}: sent {} answered {} failed {} (by server {:?})",
        log.proto.name(),
        log.sent(),
        log.answered(),
        log.failed(),
        log.by_server()
    )
}

/// The requests answered while lb2 held the router's entry: from the
/// takeover until lb1's cable went back in.
fn answered_within(log: &RequestLog, from: Instant, to: Instant) -> usize {
    log.requests
        .iter()
        .filter(|r| r.answered_by.is_some() && r.start >= from && r.end <= to)
        .count()
}

#[test]
fn soak() -> Result<()> {
    let run = duration()?;
    let lab = Lab::build(LabOptions::default())?;
    let _udp: Vec<_> = Host::WEB
        .into_iter()
        .map(|web| lab.start_udp_server(web, UDP_PORT))
        .collect::<Result<_>>()?;

    let lb1 = Director::start(&lab, Host::Lb1, 120, [1, 1])?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)
        .with_context(|| format!("lb1 log:\n{}", lb1.process.log()))?;
    let lb2 = Director::start(&lab, Host::Lb2, 110, [1, 1])?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)
        .with_context(|| format!("lb2 log:\n{}", lb2.process.log()))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));
    for d in [&lb1, &lb2] {
        for web in Host::WEB {
            wait_health(&lab, d, web, "up")?;
        }
    }
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED)?;

    let rss = RssSampler::start(lb1.process.pid().as_raw(), RSS_EVERY);
    let udp_to = SocketAddrV4::new(lab.vip(), UDP_PORT);
    let load = Load::start(&lab, Host::Pc, &lab.vip_url("/"), udp_to, RATE);
    let started = Instant::now();
    let end = started + run;
    report(&format!("running {} s at {RATE} requests/s per protocol", run.as_secs()));

    let mut next_reload = started + FIRST_RELOAD;
    let mut next_flap = started + FIRST_FLAP;
    let failover_at = started + run / 2;
    let mut failover_done: Option<Failover> = None;
    let mut reloads = 0u32;
    let mut flaps = 0u32;
    let mut next_progress = started + Duration::from_secs(10);
    // The most flows lb1's census showed under load: draining means something.
    let mut most_flows = 0u64;
    while Instant::now() < end {
        ensure!(!load.is_finished(), "a client stopped early");
        let now = Instant::now();
        if failover_done.is_none() && now >= failover_at {
            let f = failover(&lab, &lb1, &lb2, &load).context("the failover")?;
            report(&format!(
                "failover at {} s: router on lb2 {} s after the cable pull, back on lb1 {} s \
                 after the cable went in; failures allowed for {} s",
                secs(f.window.from - started),
                secs(f.takeover),
                secs(f.preempt),
                secs(f.window.to - f.window.from)
            ));
            failover_done = Some(f);
        } else if now >= next_reload {
            reloads += 1;
            let weights = if reloads % 2 == 1 { [2, 1] } else { [1, 2] };
            reload(&lab, &[&lb1, &lb2], weights).with_context(|| format!("reload {reloads}"))?;
            next_reload += RELOAD_EVERY;
        } else if now >= next_flap {
            flaps += 1;
            let web = if flaps % 2 == 1 { Host::Web1 } else { Host::Web2 };
            lab.set_health(web, false)?;
            for d in [&lb1, &lb2] {
                wait_health(&lab, d, web, "down").with_context(|| format!("flap {flaps}"))?;
            }
            lab.set_health(web, true)?;
            for d in [&lb1, &lb2] {
                wait_health(&lab, d, web, "up").with_context(|| format!("flap {flaps}"))?;
            }
            next_flap += FLAP_EVERY;
        } else if now >= next_progress {
            let (done, failed) = (load.done(), load.failed());
            let kib = testlab::soak::rss_kib(lb1.process.pid().as_raw())?;
            let flows: u64 = lb1.rows(&lab)?.iter().map(|r| r.active_conn + r.inact_conn).sum();
            most_flows = most_flows.max(flows);
            report(&format!(
                "{:>5} s: HTTP {} ({} failed), UDP {} ({} failed), lb1 RSS {kib} KiB, \
                 {flows} flows",
                (now - started).as_secs(),
                done.0,
                failed.0,
                done.1,
                failed.1
            ));
            next_progress = now + Duration::from_secs(10);
        } else {
            std::thread::sleep(POLL);
        }
    }
    let (http, udp) = load.stop()?;
    let traffic_time = started.elapsed();
    let samples = rss.stop()?;
    let failover = failover_done.context("the run ended before its failover")?;
    ensure!(
        failover.window.to <= started + traffic_time,
        "the failover window reached past the end of the load: make the run longer"
    );

    // Flows drain, on both directors, once the clients are quiet.
    ensure!(most_flows > 0, "lb1's census never showed a flow under load");
    let drain1 = wait_drained(&lab, &lb1)?;
    let drain2 = wait_drained(&lab, &lb2)?;
    let xsk1 = xsk_stats(&lab, Host::Lb1)?;
    let xsk2 = xsk_stats(&lab, Host::Lb2)?;
    // Frames per protocol, where status counts them per service.
    let mut per_proto = Vec::new();
    for d in [&lb1, &lb2] {
        let status = lab.status_json(d.host, &xdplb())?;
        per_proto.push((service_packets(&status, "TCP"), service_packets(&status, "UDP")));
    }
    for d in [&lb1, &lb2] {
        let hups = d.process.log_count("SIGHUP: reloading");
        ensure!(hups == reloads as usize, "{} logged {hups} of {reloads} reloads", d.host.name());
    }
    let c2 = stop(lb2)?;
    let c1 = stop(lb1)?;

    report(&format!(
        "ran {} s of traffic; {reloads} reloads, {flaps} health flaps, 1 failover (router on \
         lb2 {} s after lb1's cable pull, back on lb1 {} s after it went back in)",
        secs(traffic_time),
        secs(failover.takeover),
        secs(failover.preempt)
    ));
    report(&log_line(&http));
    report(&log_line(&udp));
    report(&format!(
        "flow tables (lb1 held up to {most_flows} flows) empty {} s (lb1), {} s (lb2) after \
         the load",
        secs(drain1),
        secs(drain2)
    ));

    // Failures only around the failover.
    let windows = [failover.window];
    for log in [&http, &udp] {
        let outside = log.failed_outside(&windows);
        ensure!(
            outside.is_empty(),
            "{}: {} failed requests outside the failover window ({} s – {} s); first at {} s; \
             messages: {:#?}",
            log.proto.name(),
            outside.len(),
            secs(failover.window.from - started),
            secs(failover.window.to - started),
            secs(outside[0].start.saturating_duration_since(started)),
            log.failure_samples
        );
        for web in ["web1", "web2"] {
            ensure!(log.by_server().get(web).copied().unwrap_or(0) > 0, "{web} never answered");
        }
    }
    report(&format!(
        "failures inside the failover window: HTTP {}, UDP {}; outside: 0",
        http.failed(),
        udp.failed()
    ));

    // Memory: the least-squares slope after warm-up.
    let warm = Duration::from_secs_f64(run.as_secs_f64() * WARM_UP_FRACTION);
    let after: Vec<RssSample> = samples.iter().copied().filter(|s| s.at >= warm).collect();
    ensure!(after.len() >= 10, "only {} RSS samples after warm-up", after.len());
    let slope = slope_kib_per_min(&after).context("no RSS slope")?;
    let (min, max) = (
        after.iter().map(|s| s.kib).min().unwrap_or(0),
        after.iter().map(|s| s.kib).max().unwrap_or(0),
    );
    report(&format!(
        "lb1 RSS after {} s warm-up: {} samples, {min}–{max} KiB, slope {slope:.1} KiB/min \
         ({:.0} KiB per 10 min; bound {:.0})",
        warm.as_secs(),
        after.len(),
        slope * 10.0,
        MAX_SLOPE_KIB_PER_MIN * 10.0
    ));
    ensure!(
        slope < MAX_SLOPE_KIB_PER_MIN,
        "lb1's RSS grows {slope:.1} KiB/min after warm-up: {after:?}"
    );

    // Counters: frames, each director on its own.
    report(&check_frames(Host::Lb1, &c1, xsk1)?);
    report(&check_frames(Host::Lb2, &c2, xsk2)?);
    report(&format!("drops: lb1 {}; lb2 {}", drops(&c1), drops(&c2)));

    // Counters against the clients. Each HTTP request is one TCP connection
    // whose SYN is a new flow where it arrives (a retransmitted SYN finds
    // the entry); each UDP request is one datagram from a source port no
    // other request used within the flow timeout: one new flow. The data
    // plane counts TCP and UDP new flows together, so both sum.
    let new1 = c1.get("worker.forward.new_flow")?;
    let new2 = c2.get("worker.forward.new_flow")?;
    let sloppy1 = c1.get("worker.forward.sloppy_tcp")?;
    let sent = (http.sent() + udp.sent()) as u64;
    // Outside the window only lb1 was master and every request was answered.
    let outside = (http.outside(&windows) + udp.outside(&windows)) as u64;
    let in_window = (http.overlapping(failover.window) + udp.overlapping(failover.window)) as u64;
    let via_lb2 = (answered_within(&http, failover.lb2_from, failover.lb2_to)
        + answered_within(&udp, failover.lb2_from, failover.lb2_to)) as u64;
    report(&format!(
        "requests outside the window {outside} ≤ lb1 new flows {new1} ≤ all requests {sent}; \
         answered through lb2 {via_lb2} ≤ lb2 new flows {new2} ≤ requests in the window \
         {in_window}; lb1 sloppy_tcp {sloppy1} ≤ HTTP in the window {}",
        http.overlapping(failover.window)
    ));
    ensure!(outside <= new1, "lb1 counted {new1} new flows for {outside} requests outside");
    // Frames: an answered HTTP request took at least SYN, the handshake's
    // ACK and the GET from the client; a UDP request one datagram. Outside
    // the window all of them went through lb1.
    let forwarded1 = c1.sum("worker.forward.");
    let (http_out, udp_out) =
        (http.answered_outside(&windows) as u64, udp.answered_outside(&windows) as u64);
    let min_frames = 3 * http_out + udp_out;
    report(&format!(
        "lb1 forwarded {forwarded1} frames ≥ {min_frames} (3 per answered HTTP request + 1 per \
         UDP request outside the window)"
    ));
    ensure!(forwarded1 >= min_frames, "lb1 forwarded {forwarded1} frames, fewer than {min_frames}");
    match (per_proto[0], per_proto[1]) {
        ((Some(tcp1), Some(udp1)), (Some(tcp2), Some(udp2))) => {
            // Every UDP request is one datagram, forwarded by at most one
            // director (the one the router sent it to); an answered one by
            // exactly one. Each is a flow of its own, so a new flow; the
            // rest of lb1's new flows are HTTP connections.
            let (udp_answered, udp_sent) = (udp.answered() as u64, udp.sent() as u64);
            report(&format!(
                "UDP: answered {udp_answered} ≤ datagrams forwarded {} (lb1 {udp1} + lb2 {udp2}) \
                 ≤ sent {udp_sent}; TCP frames forwarded: lb1 {tcp1} ≥ {} (3 per HTTP request \
                 outside the window), lb2 {tcp2}",
                udp1 + udp2,
                3 * http_out
            ));
            ensure!(
                udp_answered <= udp1 + udp2 && udp1 + udp2 <= udp_sent,
                "UDP: {udp_answered} answered, {} forwarded, {udp_sent} sent",
                udp1 + udp2
            );
            ensure!(udp_out <= udp1, "lb1 forwarded {udp1} datagrams for {udp_out} answers");
            ensure!(tcp1 >= 3 * http_out, "lb1 forwarded {tcp1} TCP frames for {http_out}");
            ensure!(udp1 <= new1, "lb1: {udp1} datagrams but {new1} new flows in all");
            let tcp_new1 = new1 - udp1;
            report(&format!(
                "lb1 TCP new flows (new_flow − UDP datagrams) {tcp_new1}: HTTP outside the \
                 window {} ≤ it ≤ HTTP sent {}",
                http.outside(&windows),
                http.sent()
            ));
            ensure!(
                http.outside(&windows) as u64 <= tcp_new1 && tcp_new1 <= http.sent() as u64,
                "lb1's TCP new flows {tcp_new1} do not match the HTTP requests"
            );
        }
        other => report(&format!(
            "per-service frame counts not in status ({other:?}): TCP and UDP compared together"
        )),
    }
    ensure!(new1 <= sent, "lb1 counted {new1} new flows for {sent} requests in all");
    ensure!(via_lb2 <= new2, "lb2 counted {new2} new flows for {via_lb2} answers through it");
    ensure!(
        new2 <= in_window,
        "lb2 counted {new2} new flows for {in_window} requests in the window"
    );
    ensure!(via_lb2 > 0, "no request was answered through lb2");
    // A connection lb1 did not see open arrives without SYN only when it
    // began on lb2: inside the window.
    ensure!(
        sloppy1 <= http.overlapping(failover.window) as u64,
        "lb1 sloppy_tcp {sloppy1} with {} HTTP requests in the window",
        http.overlapping(failover.window)
    );
    Ok(())
}
