//! The real `xdplb` binary in the seed's lab (tests/lab): weighted
//! balancing, direct server return proved from captures, ICMP errors to
//! the flow's server, flow affinity, host traffic left to the kernel,
//! clean stop and crash recovery, and bad input that moves only counters.
//!
//! Needs root (namespaces, veth, XDP). Run serially, as CI does:
//! `cargo test --test dataplane_lab -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{
    EtherType, EthernetFrame, IcmpPacket, IcmpType, Ipv4Packet, TcpFlags, TcpHeader,
};
use testlab::anyhow::{ensure, Context, Result};
use testlab::frames::{Endpoints, Garbage, Malformed};
use testlab::lab::mac_str;
use testlab::vrrp::ForgedAdvert;
use testlab::{Frame, Host, Lab, LabOptions, SingleLb, VrrpLb, VrrpSpec, XdplbProcess};

/// Generous: the first start builds nothing, but a loaded 2-core machine
/// can take seconds to load and attach the program and start workers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the service may take to answer through every real server
/// after `data plane ready` (neighbour resolution, first health checks).
const SERVED_TIMEOUT: Duration = Duration::from_secs(30);
/// The contract: SIGTERM/SIGINT stop xdplb within 2 s.
const STOP_WITHIN: Duration = Duration::from_secs(2);
/// How long a capture may take to see frames already sent.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(15);
/// Poll interval of every wait.
const POLL: Duration = Duration::from_millis(20);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

fn lab() -> Result<Lab> {
    Lab::build(LabOptions::default())
}

/// Writes `config`, starts xdplb on lb1 and waits for `data plane ready`.
fn start(lab: &Lab, config: &SingleLb) -> Result<XdplbProcess> {
    let path = lab.next_file("xdplb", "toml");
    std::fs::write(&path, config.to_toml()).with_context(|| format!("write {}", path.display()))?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("data plane ready", READY_TIMEOUT)?;
    Ok(lb)
}

/// Starts xdplb on lb1 with both web servers at `weights` and waits until
/// the VIP is answered by each of them from the pc.
fn start_serving(lab: &Lab, weights: [u32; 2]) -> Result<XdplbProcess> {
    let config = lab.single_lb(&[(Host::Web1, weights[0]), (Host::Web2, weights[1])]);
    let lb = start(lab, &config)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    Ok(lb)
}

/// Stops xdplb with SIGTERM and checks the contract: exit 0 within 2 s.
fn stop(lb: XdplbProcess) -> Result<testlab::Counters> {
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    ensure!(exit.elapsed <= STOP_WITHIN, "stop took {:?}; log:\n{}", exit.elapsed, exit.log);
    Ok(exit.counters()?.clone())
}

/// Ethernet, IPv4 and TCP of a captured frame, if it is an IPv4 TCP frame.
struct Parsed<'a> {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: Ipv4Packet<&'a [u8]>,
    ports: Option<(u16, u16)>,
    ip_bytes: &'a [u8],
}

fn parse(frame: &Frame) -> Option<Parsed<'_>> {
    let eth = EthernetFrame::new_checked(&frame.data[..]).ok()?;
    let (src_mac, dst_mac) = (eth.src(), eth.dst());
    let ip_bytes = &frame.data[14..];
    let ip = Ipv4Packet::new_checked(ip_bytes).ok()?;
    let ports = (ip.protocol() == 6 && !ip.is_fragment())
        .then(|| TcpHeader::new_checked(ip.payload()).ok())
        .flatten()
        .map(|t| (t.src_port(), t.dst_port()));
    Some(Parsed { src_mac, dst_mac, ip, ports, ip_bytes })
}

fn who(mac: [u8; 6]) -> String {
    Host::by_mac(mac).map_or_else(|| mac_str(mac), |h| h.name().to_owned())
}

#[test]
fn weights_3_to_1_split_400_new_connections() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [3, 1])?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 400)?;
    let counters = stop(lb)?;

    assert_eq!(many.failures, Vec::<String>::new(), "failed requests");
    assert_eq!(many.non_200(), 0, "non-200 responses");
    let by = many.by_body();
    let web1 = by.get("web1").copied().unwrap_or(0);
    let web2 = by.get("web2").copied().unwrap_or(0);
    assert_eq!(web1 + web2, 400, "answers by server: {by:?}");
    assert!(
        web1.abs_diff(300) <= 12 && web2.abs_diff(100) <= 12,
        "split {by:?}, want 300/100 ± 12"
    );
    assert!(counters.get("worker.forward.new_flow")? >= 400, "{counters}");
    Ok(())
}

#[test]
fn dsr_forwards_ip_bytes_unchanged_and_replies_bypass_the_lb() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    let vip = lab.vip();
    let on_lb1 = lab.capture_port(Host::Lb1, "ip")?;
    let on_router = lab.capture_port(Host::Router, "tcp port 80")?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 20)?;
    assert_eq!(many.failures, Vec::<String>::new());
    assert_eq!(many.by_body().len(), 2, "both servers answer: {:?}", many.by_body());

    let is_request = |p: &Parsed<'_>| {
        p.src_mac == Host::Router.mac()
            && p.dst_mac == Host::Lb1.mac()
            && p.ip.dst_addr() == vip
            && p.ports.is_some_and(|(_, dport)| dport == 80)
    };
    let is_forward = |p: &Parsed<'_>| {
        p.src_mac == Host::Lb1.mac()
            && Host::WEB.iter().any(|w| w.mac() == p.dst_mac)
            && p.ip.dst_addr() == vip
    };
    // Every request frame that reached lb1 has left it again, and the
    // segment is quiet (no frame since the last look), so that stopping the
    // capture cannot cut a request off from its forwarded copy.
    let seen = std::cell::Cell::new(0);
    on_lb1.wait_for("each request forwarded, then quiet", CAPTURE_TIMEOUT, |frames| {
        let parsed: Vec<_> = frames.iter().filter_map(parse).collect();
        let requests = parsed.iter().filter(|p| is_request(p)).count();
        let quiet = frames.len() == seen.replace(frames.len());
        quiet && requests >= 20 * 3 && parsed.iter().filter(|p| is_forward(p)).count() >= requests
    })?;
    let lb1_frames = on_lb1.stop()?;
    let router_frames = on_router.stop()?;
    stop(lb)?;

    let parsed: Vec<_> = lb1_frames.iter().filter_map(parse).collect();
    let mut forwarded: Vec<&Parsed<'_>> = parsed.iter().filter(|p| is_forward(p)).collect();
    let requests: Vec<&Parsed<'_>> = parsed.iter().filter(|p| is_request(p)).collect();
    let mut servers = BTreeMap::<String, usize>::new();
    for request in &requests {
        // Identical from the IPv4 header on: same ident, TTL not decremented,
        // checksums and payload untouched; only the MACs differ.
        let i =
            forwarded.iter().position(|f| f.ip_bytes == request.ip_bytes).with_context(|| {
                format!(
                    "request id {} ttl {} {:?} never left lb1 unchanged",
                    request.ip.ident(),
                    request.ip.ttl(),
                    request.ports
                )
            })?;
        *servers.entry(who(forwarded.swap_remove(i).dst_mac)).or_default() += 1;
    }
    assert_eq!(forwarded.len(), 0, "lb1 sent VIP frames it never received");
    assert_eq!(servers.len(), 2, "forwarded to {servers:?}");
    // Replies never pass through lb1 ...
    let through_lb1 = parsed
        .iter()
        .filter(|p| p.src_mac == Host::Lb1.mac() && p.ip.src_addr() == vip)
        .filter(|p| p.ports.is_some_and(|(sport, _)| sport == 80))
        .count();
    assert_eq!(through_lb1, 0, "replies from the VIP seen on lb1's port");
    // ... they reach the router straight from a web server.
    let replies: Vec<_> = router_frames
        .iter()
        .filter_map(parse)
        .filter(|p| p.ip.src_addr() == vip && p.ports.is_some_and(|(sport, _)| sport == 80))
        .collect();
    assert!(replies.len() >= 20 * 3, "only {} replies at the router", replies.len());
    let mut repliers = BTreeMap::<String, usize>::new();
    for reply in &replies {
        assert_eq!(reply.dst_mac, Host::Router.mac());
        *repliers.entry(who(reply.src_mac)).or_default() += 1;
    }
    assert_eq!(repliers.keys().collect::<Vec<_>>(), ["web1", "web2"], "replies from {repliers:?}");
    Ok(())
}

/// Whether a frame is an ICMP "fragmentation needed" to `vip`.
fn is_frag_needed_to(frame: &Frame, vip: Ipv4Addr) -> bool {
    parse(frame).is_some_and(|p| {
        p.ip.dst_addr() == vip
            && p.ip.protocol() == 1
            && IcmpPacket::new_checked(p.ip.payload())
                .is_ok_and(|i| i.msg_type() == IcmpType::DestUnreachable && i.code() == 4)
    })
}

#[test]
fn icmp_frag_needed_about_a_flow_reaches_that_flows_server() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    let vip = lab.vip();
    let stream = lab.http_stream(Host::Pc, &lab.vip_url("/slow?seconds=5"))?;
    let client = stream.local_addr(Duration::from_secs(10))?;
    let owner = stream.server(Duration::from_secs(10))?;
    let owner = Host::web_by_name(&owner).with_context(|| format!("answered by {owner}"))?;
    let other = if owner == Host::Web1 { Host::Web2 } else { Host::Web1 };
    let filter = format!("icmp and dst host {vip}");
    let at_owner = lab.capture(owner, &filter)?;
    let at_other = lab.capture(other, &filter)?;

    // What the router would send when the server's 1500-byte reply does not
    // fit the pc's link: outer 192.168.10.1 → VIP at lb1's MAC (the VIP's
    // ARP owner), quoting VIP:80 → pc:port.
    let reply = FrameSpec {
        src_mac: owner.mac(),
        dst_mac: Host::Router.mac(),
        src_ip: vip,
        dst_ip: *client.ip(),
        src_port: 80,
        dst_port: client.port(),
        ttl: 64,
        ident: 0x1234,
        ip_options: &[],
    };
    let original = build::tcp_frame(&reply, TcpFlags::ACK | TcpFlags::PSH, &[0x55; 1446]);
    let errors: Vec<Vec<u8>> = (0..3u16)
        .map(|i| {
            let outer = FrameSpec {
                src_mac: Host::Router.mac(),
                dst_mac: Host::Lb1.mac(),
                src_ip: Host::Router.ip(),
                dst_ip: vip,
                src_port: 0,
                dst_port: 0,
                ttl: 64,
                ident: 0x0100 + i,
                ip_options: &[],
            };
            build::icmp_frag_needed_frame(&outer, 1400, &original)
        })
        .collect();
    lab.inject(Host::Router, "eth0", errors, Duration::from_millis(1))?;
    at_owner.wait_for("3 frag-needed errors", CAPTURE_TIMEOUT, |frames| {
        frames.iter().filter(|f| is_frag_needed_to(f, vip)).count() >= 3
    })?;
    let at_owner = at_owner.stop()?;
    let at_other = at_other.stop()?;
    let done = stream.join()?;
    let counters = stop(lb)?;

    for f in at_owner.iter().filter(|f| is_frag_needed_to(f, vip)) {
        let p = parse(f).unwrap();
        assert_eq!((p.src_mac, p.dst_mac), (Host::Lb1.mac(), owner.mac()));
    }
    let strays = at_other.iter().filter(|f| is_frag_needed_to(f, vip)).count();
    assert_eq!(strays, 0, "{} got errors about {}'s flow", other.name(), owner.name());
    assert_eq!(done.servers(), [owner.name()], "the stream changed servers");
    assert!(counters.get("worker.forward.icmp_error")? >= 3, "{counters}");
    Ok(())
}

#[test]
fn a_long_connection_stays_while_new_ones_rotate() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    let stream = lab.http_stream(Host::Pc, &lab.vip_url("/slow?seconds=4"))?;
    let owner = stream.server(Duration::from_secs(10))?;
    // 20 new connections in 4 bursts spread over the stream's life.
    let mut answers = BTreeMap::<String, usize>::new();
    for burst in 1..=4 {
        let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 5)?;
        assert_eq!(many.failures, Vec::<String>::new(), "burst {burst}");
        for (body, n) in many.by_body() {
            *answers.entry(body).or_default() += n;
        }
        if burst < 4 {
            let seen = stream.lines_so_far();
            testlab::wait_until("the stream to go on", Duration::from_secs(10), POLL, || {
                Ok(stream.lines_so_far() >= seen + 5 || stream.is_finished())
            })?;
        }
    }
    assert!(!stream.is_finished(), "the 4 s stream ended before the 20 requests did");
    let done = stream.join()?;
    stop(lb)?;

    assert_eq!(done.status, 200);
    assert_eq!(done.servers(), [owner.as_str()], "the long connection changed servers");
    assert_eq!(done.lines.len(), 40, "the stream was cut");
    assert!(done.elapsed >= Duration::from_millis(3900), "{:?}", done.elapsed);
    assert_eq!(answers.values().sum::<usize>(), 20);
    for web in Host::WEB {
        let n = answers.get(web.name()).copied().unwrap_or(0);
        assert!(n >= 8, "{} answered {n} of 20 new connections: {answers:?}", web.name());
    }
    Ok(())
}

#[test]
fn host_traffic_and_other_ports_stay_with_lb1s_kernel() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    let lb1 = Host::Lb1.ip().to_string();
    let vip = lab.vip().to_string();

    // ARP and ping to lb1's own address from the router.
    lab.ip(Host::Router, &["neigh", "flush", "dev", "eth0"])?;
    lab.exec(Host::Router, &["ping", "-c", "3", "-i", "0.2", "-W", "2", &lb1])?;
    let neigh = lab.ip(Host::Router, &["neigh", "show", &lb1])?;
    assert!(neigh.contains(&mac_str(Host::Lb1.mac())), "router's ARP entry: {neigh}");
    // Ping to the VIP is no service: lb1's kernel answers it.
    lab.exec(Host::Router, &["ping", "-c", "3", "-i", "0.2", "-W", "2", &vip])?;
    let neigh = lab.ip(Host::Router, &["neigh", "show", &vip])?;
    assert!(neigh.contains(&mac_str(Host::Lb1.mac())), "VIP's ARP entry: {neigh}");

    // VIP:8080 is not in the config: lb1 itself answers it.
    let _lb1_http = lab.start_http_server(Host::Lb1, 8080)?;
    let many = lab.http_get_many(Host::Pc, &format!("http://{vip}:8080/"), 5)?;
    assert_eq!(many.failures, Vec::<String>::new());
    assert_eq!(many.by_body(), BTreeMap::from([("lb1".to_owned(), 5)]));
    // ... while port 80 is still balanced.
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 4)?;
    assert_eq!(many.failures, Vec::<String>::new());
    let counters = stop(lb)?;
    assert!(counters.get("steer.not_service")? >= 5 + 3, "{counters}");
    Ok(())
}

#[test]
fn sighup_is_harmless_and_sigterm_cleans_up() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    assert!(lab.xdp_attached(Host::Lb1)?, "no XDP program on lb1's eth0 while running");
    assert!(lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "VIP not on lb1's eth0");

    lb.sighup()?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 10)?;
    assert_eq!(many.failures, Vec::<String>::new(), "after SIGHUP");
    let mut lb = lb;
    assert!(lb.is_running()?, "SIGHUP stopped xdplb; log:\n{}", lb.log());

    stop(lb)?;
    assert!(!lab.xdp_attached(Host::Lb1)?, "XDP program left on lb1's eth0");
    assert!(!lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "VIP left on lb1's eth0");
    Ok(())
}

#[test]
fn after_kill_9_a_new_start_adopts_the_leftover_vip() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    lb.kill9()?;
    // A crash cleans nothing up: the VIP stays behind.
    assert!(lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "VIP gone after kill -9");

    let lb = start_serving(&lab, [1, 1])?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 10)?;
    assert_eq!(many.failures, Vec::<String>::new());
    stop(lb)?;
    assert!(!lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "adopted VIP not removed");
    assert!(!lab.xdp_attached(Host::Lb1)?, "XDP program left on lb1's eth0");
    Ok(())
}

/// Tens of thousands of bad frames at lb1's MAC while HTTP runs through the
/// VIP — every malformed kind the data plane names, ARP with a nonsense
/// body, VRRP adverts with one thing wrong, then random bytes: each kind
/// moves exactly the counter of its reason (XDP program, workers, VRRP),
/// no request fails, no worker is lost, lb1 stays master.
#[test]
fn malformed_frames_move_their_counters_and_nothing_else() -> Result<()> {
    /// Frames of each kind: 13 kinds, 26 000 frames.
    const EACH: u16 = 2000;
    /// Random frames afterwards.
    const GARBAGE: usize = 6000;
    /// VRRP adverts with one thing wrong, per kind: every 100th round, so
    /// that all of them (100 small frames) fit in the VRRP socket's default
    /// receive buffer even if the control thread is starved for the whole
    /// flood: a count short of the injection would then be a real loss.
    const VRRP_EVERY: u16 = 100;
    let lab = lab()?;
    // As the seed runs it, a VRRP instance in front of the service: the
    // control plane's socket is a target too.
    let service = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    let config = VrrpLb { vrrp: VrrpSpec::seed(lab.vip(), 120), service }.to_toml();
    let path = lab.write_file("flood.toml", &config)?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("-> MASTER", READY_TIMEOUT)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let to = Endpoints {
        src_mac: Host::Router.mac(),
        dst_mac: Host::Lb1.mac(),
        src_ip: Host::Router.ip(),
        vip: lab.vip(),
        port: 80,
    };
    // Round-robin over the kinds, so that every kind meets the HTTP traffic.
    // Adverts that would make lb1 yield at once (priority 254) if any
    // were taken; and ARP whose body is nonsense (hardware length 9).
    let bad_adverts = ForgedAdvert::valid(Host::Router.ip(), 254).one_thing_wrong();
    let bad_arp: Vec<u8> = [&[0, 1, 8, 0, 9, 4, 0, 7][..], &[0xa5; 30]].concat();
    let mut frames = Vec::new();
    let mut want = BTreeMap::<String, u64>::new();
    for i in 0..EACH {
        for kind in Malformed::ALL {
            frames.push(kind.frame(&to, i));
            *want.entry(kind.counter().to_owned()).or_default() += 1;
        }
        frames.push(to.ethernet(EtherType::Arp, &bad_arp));
        *want.entry("steer.not_ipv4".to_owned()).or_default() += 1;
        if i % VRRP_EVERY == 0 {
            for (reason, advert) in &bad_adverts {
                frames.push(advert.frame(Host::Router.mac(), lab.vip(), i));
                *want.entry(format!("vrrp.drop.{reason}")).or_default() += 1;
            }
        }
    }
    // ARP and IPv6 from the lab's own hosts also pass as not_ipv4: that one
    // is checked as "at least"; every other reason only the injection moves.
    let shared = ["steer.not_ipv4"];

    let traffic = lab.start_traffic(Host::Pc, &lab.vip_url("/"), 5000);
    testlab::wait_until("HTTP traffic to flow", Duration::from_secs(30), POLL, || {
        Ok(traffic.completed() >= 10 || traffic.is_finished())
    })?;
    let before = lab.status_json(Host::Lb1, &xdplb())?;
    let started = traffic.completed();
    let sent = lab.inject(Host::Router, "eth0", frames, Duration::from_micros(20))?;
    let deltas = |status: &testlab::faults::Status| -> Result<BTreeMap<&str, u64>> {
        let mut out = BTreeMap::new();
        let socket = ["xsk.rx_dropped", "xsk.rx_ring_full"];
        for counter in want.keys().map(String::as_str).chain(socket) {
            out.insert(counter, status.counter(counter)? - before.counter(counter)?);
        }
        Ok(out)
    };
    // Workers publish per batch, the XDP program per frame: wait for the tail.
    let mut got = BTreeMap::new();
    let _ = testlab::wait_until("every kind counted", Duration::from_secs(10), POLL, || {
        got = deltas(&lab.status_json(Host::Lb1, &xdplb())?)?;
        Ok(want.iter().all(|(c, n)| got.get(c.as_str()) >= Some(n)))
    });
    if got.is_empty() {
        // Every read failed: say why.
        got = deltas(&lab.status_json(Host::Lb1, &xdplb())?)?;
    }
    let lost = got["xsk.rx_dropped"] + got["xsk.rx_ring_full"];
    let mut wrong = Vec::new();
    for (counter, n) in &want {
        let counter = counter.as_str();
        let g = got[counter];
        let ok = if shared.contains(&counter) {
            g >= *n
        } else if counter.starts_with("worker.") {
            // A frame the socket lost never reached a worker: the only excuse.
            g <= *n && n - g <= lost
        } else {
            g == *n
        };
        if !ok {
            wrong.push(format!("{counter}: counted {g}, injected {n}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?} (socket lost {lost}); deltas {got:?}");

    // Then random bytes: nothing to predict per reason, but nothing may break.
    let mut garbage = Garbage::new(0x5eed);
    let junk: Vec<Vec<u8>> = (0..GARBAGE).map(|_| garbage.frame(&to)).collect();
    let junk_sent = lab.inject(Host::Router, "eth0", junk, Duration::from_micros(20))?;
    testlab::wait_until(
        "200 HTTP requests across the injection",
        Duration::from_secs(60),
        POLL,
        || Ok(traffic.completed() >= started + 200 || traffic.is_finished()),
    )?;
    let http = traffic.stop()?;
    let status = lab.status_json(Host::Lb1, &xdplb())?;
    assert_eq!(status.number("workers")?, 1, "a worker is gone");
    // None of the forged adverts was taken: lb1 stayed master throughout.
    assert!(lab.holds_vip(Host::Lb1)?, "lb1 lost the VIP; log:\n{}", lb.log());
    assert_eq!(lb.log_count("-> MASTER"), 1, "lb1's VRRP state moved; log:\n{}", lb.log());
    let counters = stop(lb)?;

    assert_eq!(http.failures, Vec::<String>::new(), "HTTP failures during the injection");
    assert_eq!(http.non_200(), 0);
    assert!(http.responses.len() >= started + 200, "only {} requests", http.responses.len());
    // Every frame the program redirected was received (or lost by the
    // socket, which says so), and every received frame got one verdict.
    let redirected = counters.get("steer.redirected")?;
    let rx = counters.get("worker.rx")?;
    let socket_lost = counters.get("xsk.rx_dropped")? + counters.get("xsk.rx_ring_full")?;
    assert_eq!(redirected, rx + socket_lost, "{counters}");
    let verdicts = counters.sum("worker.forward.") + counters.sum("worker.drop.")
        - counters.get("worker.drop.tx_ring_full")?;
    assert_eq!(verdicts, rx, "{counters}");
    eprintln!(
        "malformed: {sent} structured + {junk_sent} random frames during {} HTTP requests, 0 \
         failed; socket lost {socket_lost}",
        http.responses.len()
    );
    Ok(())
}

/// `xdplb status` in lb1's namespace: ipvsadm-like lines with the weights
/// and the long connection counted as active on its server; JSON for
/// scripts; the control socket refuses anyone but root.
#[test]
fn status_shows_services_weights_and_connections() -> Result<()> {
    let lab = lab()?;
    let config = lab.single_lb(&[(Host::Web1, 3), (Host::Web2, 1)]);
    let path = lab.next_file("xdplb", "toml");
    let text = format!("{}\n[metrics]\nlisten = \"192.168.10.101:9410\"\n", config.to_toml());
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("data plane ready", READY_TIMEOUT)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let stream = lab.http_stream(Host::Pc, &lab.vip_url("/slow?seconds=6"))?;
    let owner = stream.server(Duration::from_secs(10))?;
    let owner_ip = Host::web_by_name(&owner).context("owner")?.ip().to_string();
    let status = |args: &[&str]| -> Result<String> {
        let mut argv = vec![xdplb().display().to_string(), "status".to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        lab.exec(Host::Lb1, &argv)
    };
    // The census is refreshed once a second: wait for the stream to appear.
    let mut text = String::new();
    testlab::wait_until(
        "status to count the open connection",
        Duration::from_secs(10),
        POLL,
        || {
            text = status(&[])?;
            Ok(text.lines().any(|l| {
                l.contains(&format!("-> {owner_ip}:80")) && l.split_whitespace().nth(4) == Some("1")
            }))
        },
    )
    .with_context(|| format!("last status:\n{text}"))?;
    assert!(text.contains("TCP  192.168.10.110:80 wrr"), "{text}");
    let weights: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("-> 192.168.10.10"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(weights, ["3", "1"], "{text}");
    assert!(text.contains("worker.forward.new_flow"), "{text}");

    let json = status(&["--json"])?;
    assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'), "{json}");
    assert!(json.contains("\"active_conn\": 1"), "{json}");

    let refused = lab.exec(
        Host::Lb1,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &xdplb().display().to_string(),
            "status",
        ],
    );
    let err = refused.expect_err("status as nobody must fail");
    assert!(format!("{err:#}").contains("root only"), "{err:#}");

    // Prometheus: scraped from the router, read by a Prometheus text parser.
    let scrape = lab.http_get(Host::Router, "http://192.168.10.101:9410/metrics")?;
    assert_eq!(scrape.status, 200);
    let lines = scrape.body.lines().map(|l| Ok(l.to_owned()));
    let metrics = prometheus_parse::Scrape::parse(lines).context("parsing /metrics")?;
    let all = || format!("{:#?}", metrics.samples);
    let sample = |metric: &str, labels: &[(&str, &str)]| -> Option<f64> {
        metrics
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .find_map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    };
    let service = ("service", "TCP 192.168.10.110:80");
    let owner = format!("{owner_ip}:80");
    let server = ("server", owner.as_str());
    assert!(sample("xdplb_worker_frames_total", &[("counter", "rx")]) > Some(0.0), "{}", all());
    let new_flows = sample("xdplb_forwarded_frames_total", &[("kind", "new_flow")]);
    assert!(new_flows >= Some(1.0), "{}", all());
    let active = sample("xdplb_real_server_flows", &[service, server, ("state", "active")]);
    assert_eq!(active, Some(1.0), "{}", all());
    // Traffic per real server moves with the traffic (the census and the
    // counters of the open download's server at least).
    let packets = sample("xdplb_real_server_forwarded_packets_total", &[service, server]);
    assert!(packets >= Some(3.0), "{}", all());
    let bytes = sample("xdplb_real_server_forwarded_bytes_total", &[service, server]);
    assert!(bytes >= Some(3.0 * 54.0), "{}", all());
    assert!(
        metrics.samples.iter().any(|s| s.metric.starts_with("xdplb_health_check_duration_seconds")),
        "no health-check latency histogram: {}",
        all()
    );
    assert!(sample("xdplb_worker_busy_seconds_total", &[]).is_some(), "{}", all());
    stream.join()?;
    stop(lb)?;
    Ok(())
}

/// A second `xdplb run` on the same interface is refused, naming the XDP
/// program already there, and leaves the running one (its VIP included)
/// untouched.
#[test]
fn a_second_instance_on_the_same_interface_is_refused_and_harmless() -> Result<()> {
    let lab = lab()?;
    let lb = start_serving(&lab, [1, 1])?;
    let config = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    let path = lab.next_file("second", "toml");
    std::fs::write(&path, config.to_toml()).with_context(|| format!("write {}", path.display()))?;
    let mut second = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    testlab::wait_until("the second instance to give up", READY_TIMEOUT, POLL, || {
        Ok(!second.is_running()?)
    })
    .with_context(|| format!("second instance log:\n{}", second.log()))?;
    let log = second.log();
    assert!(
        log.contains("already has an XDP program attached") && log.contains("xdplb_steer"),
        "second instance log:\n{log}"
    );
    assert!(lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "the first one's VIP went");
    assert!(lab.xdp_attached(Host::Lb1)?, "the first one's XDP program went");
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 10)?;
    assert_eq!(many.failures, Vec::<String>::new());
    stop(lb)?;
    Ok(())
}

/// After start-up the control thread keeps CAP_NET_ADMIN, CAP_NET_RAW and
/// CAP_BPF only, the workers none (bounding sets included), and the
/// appliance still forwards, answers status and stops cleanly.
#[test]
fn capabilities_after_start_up_are_the_running_set() -> Result<()> {
    // CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_BPF (39).
    const RUNNING_SET: u64 = (1 << 12) | (1 << 13) | (1 << 39);
    let lab = lab()?;
    let mut lb = start_serving(&lab, [1, 1])?;
    lb.wait_for_log("capabilities dropped to the running set", READY_TIMEOUT)?;
    let pid = lb.pid().as_raw();
    let mut threads = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_owned)
        };
        let name = field("Name:").context("Name:")?;
        let eff = u64::from_str_radix(&field("CapEff:").context("CapEff:")?, 16)?;
        let prm = u64::from_str_radix(&field("CapPrm:").context("CapPrm:")?, 16)?;
        let bnd = u64::from_str_radix(&field("CapBnd:").context("CapBnd:")?, 16)?;
        threads.insert(name, (eff, prm, bnd));
    }
    let main = threads.get("xdplb").with_context(|| format!("no main thread: {threads:x?}"))?;
    assert_eq!(*main, (RUNNING_SET, RUNNING_SET, RUNNING_SET), "main thread: {threads:x?}");
    let worker = threads.get("xdplb-q0").with_context(|| format!("no worker: {threads:x?}"))?;
    assert_eq!(*worker, (0, 0, 0), "worker thread: {threads:x?}");
    for (name, (eff, prm, _)) in &threads {
        assert_eq!(eff & !RUNNING_SET, 0, "{name} has more than the running set: {threads:x?}");
        assert_eq!(prm & !RUNNING_SET, 0, "{name} may regain more: {threads:x?}");
    }
    // What the running set is for still works.
    let text = status(&lab)?;
    assert!(text.contains("TCP  192.168.10.110:80 wrr"), "{text}");
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 10)?;
    assert_eq!(many.failures, Vec::<String>::new());
    stop(lb)?;
    assert!(!lab.addresses(Host::Lb1, "eth0")?.contains(&lab.vip()), "VIP left on lb1's eth0");
    Ok(())
}

fn status(lab: &Lab) -> Result<String> {
    lab.exec(Host::Lb1, &[xdplb().display().to_string(), "status".to_owned()])
}

/// The seed's keepalived.conf + web_servers.conf, converted by
/// `xdplb import-keepalived`, run unchanged on lb1: it elects itself (no
/// peer), takes the VIP and serves HTTP through both web servers.
#[test]
fn the_imported_seed_configuration_runs_unchanged() -> Result<()> {
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("control/testdata/keepalived/keepalived.conf");
    let out = std::process::Command::new(xdplb())
        .arg("import-keepalived")
        .arg(&seed)
        .output()
        .context("running xdplb import-keepalived")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import exited {}: {stderr}", out.status);
    let toml = String::from_utf8(out.stdout).context("TOML is UTF-8")?;
    assert!(toml.contains("[[vrrp_instance]]") && toml.contains("[[virtual_server]]"), "{toml}");

    let lab = lab()?;
    let path = lab.write_file("imported-seed.toml", &toml)?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("data plane ready", READY_TIMEOUT)?;
    lb.wait_for_log("-> MASTER", READY_TIMEOUT)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 40)?;
    assert_eq!(many.failures, Vec::<String>::new());
    assert_eq!(many.total(), 40);
    stop(lb)?;
    Ok(())
}

/// `poll = "busy_napi"`: the worker spins and also runs its queue's NAPI
/// receive processing itself (preferred busy polling, the socket options
/// set while the capabilities allow it); the service answers as with the
/// other modes, wrr 1:1 still alternating.
#[test]
fn preferred_busy_polling_serves_the_same() -> Result<()> {
    let lab = lab()?;
    let mut config = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    config.dataplane_extra.push("poll = \"busy_napi\"".to_owned());
    let lb = start(&lab, &config)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 100)?;
    assert_eq!(many.failures, Vec::<String>::new());
    let by = many.by_body();
    assert!(by.get("web1") == Some(&50) && by.get("web2") == Some(&50), "{by:?}");
    let counters = stop(lb)?;
    assert!(counters.get("worker.forward.new_flow")? >= 100, "{counters}");
    Ok(())
}
