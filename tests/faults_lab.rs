//! Faults in the seed's lab (tests/lab), each against the real `xdplb`:
//! the VRRP master killed with SIGKILL and started again, a web server
//! killed in the middle of downloads, a full flow table, and a real
//! server whose MAC changes under the data plane.
//!
//! Needs root (namespaces, veth, XDP). Run serially, as CI does:
//! `cargo test --test faults_lab -- --test-threads=1`. Measured times are
//! written to stderr uncaptured, one line each (`faults: …`).

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testlab::anyhow::{bail, ensure, Context, Result};
use testlab::faults::{get_on, gratuitous_arp, line_of, set_keepalive, Status};
use testlab::lab::mac_str;
use testlab::neigh::now;
use testlab::{
    holds_for, wait_until, Host, HttpStream, Lab, LabOptions, SingleLb, VrrpLb, VrrpSpec,
    XdplbProcess,
};

/// A loaded 2-core machine can take seconds to load and attach the program.
const READY: Duration = Duration::from_secs(60);
/// From start to a stable master: 3 × advert_int + skew, plus start-up.
const ELECTION: Duration = Duration::from_secs(30);
/// The service answering through every real server after a change.
const SERVED: Duration = Duration::from_secs(30);
/// The contract: SIGTERM stops xdplb within 2 s.
const STOP_WITHIN: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

fn lab() -> Result<Lab> {
    Lab::build(LabOptions::default())
}

/// A measured figure, written past the test harness's capture so CI logs show it.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "faults: {line}");
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `xdplb status --json` on lb1.
fn status(lab: &Lab) -> Result<Status> {
    lab.status_json(Host::Lb1, &xdplb())
}

/// The VIP's service port as a socket address.
fn vip80(lab: &Lab) -> SocketAddrV4 {
    SocketAddrV4::new(lab.vip(), 80)
}

/// HTTP through the VIP is answered by both web servers.
fn served(lab: &Lab) -> Result<()> {
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED)
}

/// Writes `toml` to a fresh file and starts xdplb with it on `host`, not waiting.
fn spawn(lab: &Lab, host: Host, toml: &str) -> Result<XdplbProcess> {
    let path = lab.next_file(&format!("{}-xdplb", host.name()), "toml");
    std::fs::write(&path, toml).with_context(|| format!("write {}", path.display()))?;
    lab.start_xdplb(host, &path, &xdplb())
}

/// Starts a lone xdplb with `config` on lb1 and waits for `data plane ready`.
fn start_single(lab: &Lab, config: &SingleLb) -> Result<XdplbProcess> {
    let mut lb = spawn(lab, Host::Lb1, &config.to_toml())?;
    lb.wait_for_log("data plane ready", READY)?;
    Ok(lb)
}

/// Stops xdplb with SIGTERM: exit 0 within 2 s.
fn stop(lb: XdplbProcess) -> Result<()> {
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    ensure!(exit.elapsed <= STOP_WITHIN, "stop took {:?}; log:\n{}", exit.elapsed, exit.log);
    Ok(())
}

// ---------------------------------------------------------------- kill -9

/// The seed's advert_int.
const ADVERT_INT: Duration = Duration::from_secs(1);
/// lb2's skew time at priority 110: (256 − 110)/256 s.
const SKEW_110: Duration = Duration::from_nanos(570_312_500);
/// From lb2's master-down timer firing to the router's entry moving: the
/// GARP leaves at once; this is room for a loaded machine's scheduling.
const GARP_MARGIN: Duration = Duration::from_secs(1);
/// What xdplb logs when it removes a VRRP VIP a crashed run left behind.
const LEFTOVER_REMOVED: &str = "removed a VRRP VIP left by an earlier xdplb run";
/// What xdplb logs once it has added a VRRP VIP on becoming master.
const VIP_ADDED_AS_MASTER: &str = "VIP added (VRRP master)";
const TO_MASTER: &str = "VRRP VI_1: BACKUP -> MASTER";

/// Starts xdplb on `host` as the seed's director (VI_1, `priority`,
/// advert_int 1, auth PASS, both web servers), not waiting.
fn spawn_director(lab: &Lab, host: Host, priority: u8) -> Result<XdplbProcess> {
    let vrrp = VrrpSpec::seed(lab.vip(), priority);
    let service = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    spawn(lab, host, &VrrpLb { vrrp, service }.to_toml())
}

/// One look at lb1 while it starts again: its log before and after a
/// reading of its addresses.
struct Look {
    at: Instant,
    removed_before: bool,
    vip: bool,
    master_after: bool,
}

#[test]
fn kill_9_of_the_master() -> Result<()> {
    // Kill → router on lb2: lb2 waits the master-down interval after lb1's
    // last advert, which came at most one interval before the kill.
    let bound = ADVERT_INT * 3 + SKEW_110 + GARP_MARGIN;
    let lab = lab()?;
    let mut lb1 = spawn_director(&lab, Host::Lb1, 120)?;
    lb1.wait_for_log("data plane ready", READY)?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)
        .with_context(|| format!("lb1 log:\n{}", lb1.log()))?;
    let mut lb2 = spawn_director(&lab, Host::Lb2, 110)?;
    lb2.wait_for_log("data plane ready", READY)?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)
        .with_context(|| format!("lb2 log:\n{}", lb2.log()))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));
    served(&lab)?;
    let watch = lab.watch_router_vip()?;

    let killed = now();
    lb1.kill9()?;
    // A crash cleans nothing up: the VIP stays on lb1's eth0.
    ensure!(lab.holds_vip(Host::Lb1)?, "lb1's VIP went away with the SIGKILLed xdplb");
    let moved = watch.wait_for_change_to(Host::Lb2.mac(), killed, Duration::from_secs(15))?;
    let failover = moved.time - killed;
    report(&format!(
        "kill -9 of the master -> router entry on lb2: {} s (bound {} s)",
        secs(failover),
        secs(bound)
    ));
    ensure!(failover <= bound, "failover took {failover:?}, bound {bound:?}");
    ensure!(lab.holds_vip(Host::Lb2)?, "lb2 is master without the VIP");
    served(&lab).with_context(|| format!("lb2 log:\n{}", lb2.log()))?;
    ensure!(lab.holds_vip(Host::Lb1)?, "lb1's leftover VIP went away by itself");

    // Start again: the leftover goes at start-up, before any election.
    let restarted = now();
    let mut lb1 = spawn_director(&lab, Host::Lb1, 120)?;
    let mut looks = Vec::new();
    let mut master_seen = None;
    wait_until("lb1 to add the VIP as master again", ELECTION, Duration::from_millis(10), || {
        let removed_before = lb1.log().contains(LEFTOVER_REMOVED);
        let vip = lab.holds_vip(Host::Lb1)?;
        let log = lb1.log();
        let master_after = log.contains(VIP_ADDED_AS_MASTER) || log.contains(TO_MASTER);
        let at = Instant::now();
        looks.push(Look { at, removed_before, vip, master_after });
        if log.contains(VIP_ADDED_AS_MASTER) {
            master_seen = Some(at);
            return Ok(true);
        }
        if !lb1.is_running()? {
            bail!("lb1's xdplb exited");
        }
        Ok(false)
    })
    .with_context(|| format!("lb1 log:\n{}", lb1.log()))?;
    let master_seen = master_seen.context("no time for lb1's VIP")?;
    let log = lb1.log();
    // Log order: the leftover removed, then the election won.
    let removed = line_of(&log, LEFTOVER_REMOVED).context("no leftover removal logged")?;
    let master = line_of(&log, TO_MASTER).context("lb1 never logged BACKUP -> MASTER")?;
    ensure!(removed < master, "leftover removed at line {removed}, master at {master}:\n{log}");
    ensure!(log.lines().nth(removed).is_some_and(|l| l.contains(&lab.vip().to_string())));
    // While lb1 was BACKUP (the removal logged before the look, no master
    // logged after it) it never held the VIP. The master's own VIP is added
    // just before it is logged: a look in that gap is not BACKUP.
    let backup: Vec<&Look> = looks.iter().filter(|l| l.removed_before && !l.master_after).collect();
    let gap = Duration::from_millis(500);
    let held = backup.iter().filter(|l| l.vip && l.at + gap < master_seen).count();
    ensure!(held == 0, "lb1 held the VIP in {held} of {} looks as BACKUP:\n{log}", backup.len());
    ensure!(
        backup.iter().filter(|l| !l.vip).count() >= 3,
        "too few looks at lb1 as BACKUP ({}) to tell",
        backup.len()
    );
    let window = backup.last().unwrap().at - backup[0].at;
    report(&format!(
        "restarted lb1: VIP absent in {} looks over {} s as BACKUP",
        backup.len(),
        secs(window)
    ));

    // 120 > 110: lb1 preempts and the router follows its GARPs.
    let back = watch
        .wait_for_change_to(Host::Lb1.mac(), restarted, ELECTION)
        .with_context(|| format!("lb1 log:\n{}", lb1.log()))?;
    let preempted = secs(back.time - restarted);
    report(&format!("restarted lb1 preempts: router back on lb1 {preempted} s after the start"));
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], Duration::from_secs(10))?;
    served(&lab)?;
    ensure!(lb2.is_running()?, "lb2's xdplb died");
    stop(lb2)?;
    stop(lb1)
}

// ------------------------------------------------- web server killed

/// delay_loop 1 + retry 1 × (delay_before_retry 1 + connect_timeout 1) = 3 s
/// for a check that times out; a dead server refuses at once. Plus room.
const HEALTH_BOUND: Duration = Duration::from_secs(8);
/// Each download streams 10 lines a second for this long.
const DOWNLOAD_SECS: u32 = 15;

/// Starts a /slow download from the pc through the VIP that `web` serves
/// (downloads that land on the other server are left to run out).
fn download_from(lab: &Lab, web: Host) -> Result<HttpStream> {
    for _ in 0..8 {
        let url = lab.vip_url(&format!("/slow?seconds={DOWNLOAD_SECS}"));
        let stream = lab.http_stream(Host::Pc, &url)?;
        if stream.server(Duration::from_secs(10))? == web.name() {
            return Ok(stream);
        }
    }
    bail!("8 downloads and none went to {}", web.name())
}

/// The real server's `health` in status, or `?` when it has none.
fn health(status: &Status, web: Host) -> Result<String> {
    Ok(status.real_server_str(web.ip(), "health")?.unwrap_or_else(|| "?".to_owned()))
}

#[test]
fn web_server_killed_mid_download() -> Result<()> {
    const NEW_CONNECTIONS: usize = 20;
    let lab = Lab::build(LabOptions { web_servers: false, ..LabOptions::default() })?;
    // Our own servers, so that we hold web1's PID.
    let mut web1 = lab.start_http_server(Host::Web1, 80)?;
    let _web2 = lab.start_http_server(Host::Web2, 80)?;
    let mut config = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    config.delay_loop = 1.0;
    config.retry = Some(1);
    config.delay_before_retry = Some(1.0);
    config.connect_timeout = 1.0;
    let lb = start_single(&lab, &config)?;
    served(&lab).with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let mut last = String::new();
    wait_until("both servers checked up", Duration::from_secs(15), POLL, || {
        let s = status(&lab)?;
        last = format!("{} {}", health(&s, Host::Web1)?, health(&s, Host::Web2)?);
        Ok(last == "up up")
    })
    .with_context(|| format!("health: {last}"))?;

    let from_web2 = download_from(&lab, Host::Web2)?;
    let from_web1 = download_from(&lab, Host::Web1)?;
    wait_until("web1's download to be under way", Duration::from_secs(10), POLL, || {
        Ok(from_web1.lines_so_far() >= 5 || from_web1.is_finished())
    })?;
    ensure!(!from_web1.is_finished(), "web1's download ended before the kill");
    let killed = Instant::now();
    let pid = web1.pid();
    web1.kill().with_context(|| format!("SIGKILL web1's server (PID {pid})"))?;

    let mut last = String::new();
    wait_until("web1 to be marked down", Duration::from_secs(30), POLL, || {
        last = health(&status(&lab)?, Host::Web1)?;
        Ok(last == "down")
    })
    .with_context(|| format!("web1's health: {last}; xdplb log:\n{}", lb.log()))?;
    let down = killed.elapsed();
    report(&format!("web1's server killed -> marked down in {} s", secs(down)));
    ensure!(down < HEALTH_BOUND, "web1 marked down after {down:?}");
    ensure!(!from_web2.is_finished(), "web2's download ended before web1 was marked down");

    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), NEW_CONNECTIONS)?;
    ensure!(many.failures.is_empty(), "failed connections: {:?}", many.failures);
    let by = many.by_body();
    ensure!(
        by.get("web2") == Some(&NEW_CONNECTIONS) && by.len() == 1,
        "{NEW_CONNECTIONS} new connections went to {by:?}"
    );
    let s = status(&lab)?;
    ensure!(health(&s, Host::Web1)? == "down", "web1: {}", s.json.to_text());
    // The seed's inhibit_on_failure: weight 0, not removal.
    ensure!(s.real_server_weight(Host::Web1.ip())? == Some(0), "web1: {}", s.json.to_text());
    ensure!(health(&s, Host::Web2)? == "up", "web2: {}", s.json.to_text());

    // web2's download went on untouched: every line, in order.
    let done = from_web2.join()?;
    let want: Vec<String> = (0..DOWNLOAD_SECS * 10).map(|i| format!("web2 {i}")).collect();
    ensure!(done.status == 200, "web2's download: status {}", done.status);
    ensure!(
        done.lines == want,
        "web2's download: {} lines, first difference at {:?}",
        done.lines.len(),
        done.lines.iter().zip(&want).position(|(a, b)| a != b)
    );
    // web1's was cut by the kill (an early end or an error, either is fine).
    wait_until("web1's download to end", Duration::from_secs(10), POLL, || {
        Ok(from_web1.is_finished())
    })?;
    let cut = from_web1.lines_so_far();
    ensure!(cut < want.len(), "web1's download completed although its server was killed");
    report(&format!(
        "web1's download cut after {cut} lines; web2's complete ({} lines)",
        want.len()
    ));
    stop(lb)
}

// ---------------------------------------------------- flow table full

/// The flow table's size per worker; the lab's lb1 has one queue, so one worker.
const FLOW_TABLE: usize = 64;
/// Idle timeout of an established TCP flow in this test.
const TCP_TIMEOUT: Duration = Duration::from_secs(3);
/// Keepalive probes keep each held flow alive well inside the timeout.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// The data plane counts idle time in whole seconds, and the census that
/// status reports is refreshed once a second: room for both, and a loaded machine.
const EXPIRY_SLACK: Duration = Duration::from_secs(4);

/// The flows lb1's status counts, active and inactive, over every real server.
fn flows_in_table(lab: &Lab) -> Result<u64> {
    let s = status(lab)?;
    let mut total = 0;
    for web in Host::WEB {
        let rs = s.real_server(web.ip())?;
        for key in ["active_conn", "inact_conn"] {
            total += rs.get(key).and_then(|v| v.as_u64()).context("connection counts")?;
        }
    }
    Ok(total)
}

#[test]
fn flow_table_full() -> Result<()> {
    let lab = lab()?;
    let mut config = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    config.dataplane_extra = vec![
        format!("flow_table_size = {FLOW_TABLE}"),
        format!("tcp_timeout = {:?}", TCP_TIMEOUT.as_secs_f64()),
        "tcpfin_timeout = 1.0".to_owned(),
        "udp_timeout = 1.0".to_owned(),
    ];
    let mut lb = start_single(&lab, &config)?;
    // No traffic before the table is filled: the census that status shows
    // is taken once a second, so flows of a moment ago may not be in it yet.
    // The servers' MACs and health are what new flows need.
    let mut last = String::new();
    wait_until("both servers up with their MACs", Duration::from_secs(20), POLL, || {
        let s = status(&lab)?;
        let mut ready = true;
        last.clear();
        for web in Host::WEB {
            let mac = s.real_server_str(web.ip(), "mac")?;
            let health = health(&s, web)?;
            ready &= mac.is_some() && health == "up";
            last += &format!("{}: {mac:?} {health}; ", web.name());
        }
        Ok(ready)
    })
    .with_context(|| format!("{last}xdplb log:\n{}", lb.log()))?;
    let s = status(&lab)?;
    let (workers, size) = (s.number("workers")?, s.number("flow_table_size")?);
    ensure!((workers, size) == (1, FLOW_TABLE as u64), "{workers} worker(s), table {size}");
    ensure!(s.counter("worker.rx")? == 0, "traffic through the VIP already: {}", s.json.to_text());

    // A full table of flows from the router, each its own source port,
    // kept alive by the kernel's keepalive probes.
    let mut held = lab.hold_tcp(
        Host::Router,
        vip80(&lab),
        FLOW_TABLE,
        Duration::from_secs(4),
        Some(KEEPALIVE),
    )?;
    wait_until("the census to count every held flow", Duration::from_secs(10), POLL, || {
        Ok(flows_in_table(&lab)? == FLOW_TABLE as u64)
    })?;
    // Exactly as many flows as the table holds fit, none refused.
    let drops_before = status(&lab)?.counter("worker.drop.flow_table_full")?;
    ensure!(drops_before == 0, "{drops_before} flows refused while filling the table");
    for i in 0..3 {
        let connected = lab.tcp_connects(Host::Router, vip80(&lab), Duration::from_secs(1))?;
        ensure!(!connected, "new connection {i} got through a full table of {FLOW_TABLE}");
    }
    let mut drops = 0;
    wait_until("flow_table_full drops in status", Duration::from_secs(5), POLL, || {
        drops = status(&lab)?.counter("worker.drop.flow_table_full")?;
        Ok(drops >= drops_before + 3)
    })
    .with_context(|| format!("flow_table_full: {drops_before} -> {drops}"))?;
    report(&format!("full table: flow_table_full {drops} after 3 refused connections"));

    // Live flows are never evicted: past a whole idle timeout they are all
    // still there, and a newcomer is still refused.
    let every = Duration::from_millis(200);
    holds_for("every held flow in the table", TCP_TIMEOUT + KEEPALIVE, every, || {
        Ok(flows_in_table(&lab)? == FLOW_TABLE as u64)
    })?;
    let connected = lab.tcp_connects(Host::Router, vip80(&lab), Duration::from_secs(1))?;
    ensure!(!connected, "a new connection got through after the idle timeout");
    // The existing flows work.
    let idle = held.split_off(8);
    let used = held;
    for stream in &used {
        let r = get_on(stream, "/")?;
        ensure!(r.status == 200 && r.body.starts_with("web"), "held connection: {r:?}");
    }
    ensure!(lb.is_running()?, "xdplb died with a full flow table:\n{}", lb.log());

    // The rest go quiet (no probes, no FIN): their flows expire.
    drop(used);
    for stream in &idle {
        set_keepalive(stream, None)?;
    }
    let quiet = Instant::now();
    wait_until("the idle flows to expire", Duration::from_secs(30), POLL, || {
        Ok(flows_in_table(&lab)? == 0)
    })?;
    let expired = quiet.elapsed();
    report(&format!("idle flows gone {} s after their keepalive stopped", secs(expired)));
    ensure!(expired <= TCP_TIMEOUT + EXPIRY_SLACK, "idle flows expired after {expired:?}");
    // Not before their timeout: the last probe went out at most a period
    // before, and the table counts in whole seconds.
    let earliest = TCP_TIMEOUT - KEEPALIVE - Duration::from_secs(1);
    ensure!(expired >= earliest, "idle flows expired after only {expired:?}");

    // A whole table of new flows fits again, and none was refused.
    let drops_before = status(&lab)?.counter("worker.drop.flow_table_full")?;
    let fresh = lab
        .hold_tcp(Host::Router, vip80(&lab), FLOW_TABLE, Duration::from_secs(4), None)
        .context("a full table of new flows after the expiry")?;
    for stream in &fresh[..2] {
        let r = get_on(stream, "/")?;
        ensure!(r.status == 200, "new connection: {r:?}");
    }
    let drops_after = status(&lab)?.counter("worker.drop.flow_table_full")?;
    ensure!(drops_after == drops_before, "flow_table_full {drops_before} -> {drops_after}");
    drop(fresh);
    drop(idle);
    stop(lb)
}

// ------------------------------------------------ neighbour MAC change

/// GARP → a new connection through the VIP reaches web1 again: a netlink
/// event and a snapshot, plus a SYN retransmission of room.
const MAC_FOLLOW_BOUND: Duration = Duration::from_secs(3);

#[test]
fn neighbour_mac_change() -> Result<()> {
    let new_mac = [0x02, 0x00, 0x00, 0x0a, 0x01, 0x67];
    let lab = lab()?;
    // Only the data plane talks to web1 from lb1: no health checks whose
    // failures would make lb1's kernel re-resolve web1 by itself.
    let mut config = lab.single_lb(&[(Host::Web1, 1)]);
    config.health_check = false;
    let lb = start_single(&lab, &config)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1"], SERVED)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let mac_in_status = |lab: &Lab| -> Result<Option<String>> {
        Ok(status(lab)?.real_server_str(Host::Web1.ip(), "mac")?.map(|m| m.to_ascii_lowercase()))
    };
    ensure!(mac_in_status(&lab)? == Some(mac_str(Host::Web1.mac())), "status before the change");

    lab.ip(Host::Web1, &["link", "set", "dev", "eth0", "address", &mac_str(new_mac)])?;
    // Nothing has told lb1 yet: its kernel and data plane still have the
    // old MAC, and frames to it go nowhere.
    let entry = lab.neighbour(Host::Lb1, Host::Web1.ip())?.and_then(|n| n.mac);
    ensure!(entry == Some(Host::Web1.mac()), "lb1's entry for web1 before the GARP: {entry:?}");
    let reached = lab.tcp_connects(Host::Pc, vip80(&lab), Duration::from_secs(1))?;
    ensure!(!reached, "a connection reached web1 at its old MAC");

    // web1 announces its new MAC, as a host whose NIC changed does.
    let garp = Instant::now();
    lab.inject(Host::Web1, "eth0", vec![gratuitous_arp(new_mac, Host::Web1.ip())], Duration::ZERO)?;
    wait_until("a connection through the VIP to web1", Duration::from_secs(15), POLL, || {
        lab.tcp_connects(Host::Pc, vip80(&lab), Duration::from_millis(500))
    })
    .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    let followed = garp.elapsed();
    report(&format!("web1's new MAC followed {} s after its GARP", secs(followed)));
    ensure!(followed <= MAC_FOLLOW_BOUND, "took {followed:?}");

    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), 10)?;
    ensure!(many.failures.is_empty(), "failures after the change: {:?}", many.failures);
    ensure!(many.by_body().get("web1") == Some(&10), "answers: {:?}", many.by_body());
    let entry = lab.neighbour(Host::Lb1, Host::Web1.ip())?.and_then(|n| n.mac);
    ensure!(entry == Some(new_mac), "lb1's entry for web1 after the GARP: {entry:?}");
    let mut last = None;
    wait_until("status to show web1's new MAC", Duration::from_secs(5), POLL, || {
        last = mac_in_status(&lab)?;
        Ok(last == Some(mac_str(new_mac)))
    })
    .with_context(|| format!("status says {last:?}"))?;
    stop(lb)
}
