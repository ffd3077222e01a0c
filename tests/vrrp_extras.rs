//! The VRRP features beyond the seed's lab, end to end in tests/lab's
//! namespaces: notify scripts, `track_interface`, `track_script`, unicast
//! peers, VRRPv3 (xdplb with xdplb and with keepalived 2.2.7), and bad
//! adverts dropped and counted by reason (RFC 3768 §7.1).
//!
//! Needs root (namespaces, veth, XDP) and keepalived. Run serially:
//! `cargo test --test vrrp_extras -- --test-threads=1`. Measured times go
//! to stderr uncaptured, one line each.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testlab::anyhow::{ensure, Context, Result};
use testlab::lab::mac_str;
use testlab::neigh::now;
use testlab::vrrp::{
    self, adverts_from, garp_bursts, wait_adverts, Advert, ForgedAdvert, VRRP_AND_ARP,
};
use testlab::{
    holds_for, wait_until, Counters, Frame, Host, KaState, Lab, LabOptions, VrrpLb, VrrpSpec,
    XdplbProcess,
};

/// A loaded 2-core machine can take seconds to load and attach the program.
const READY: Duration = Duration::from_secs(60);
/// From start to a stable master: 3 × advert_int + skew, plus start-up.
const ELECTION: Duration = Duration::from_secs(30);
/// How long a capture may take to show frames already sent.
const CAPTURE: Duration = Duration::from_secs(15);
/// The contract: SIGTERM stops xdplb within 2 s.
const STOP_WITHIN: Duration = Duration::from_secs(2);
/// How long a notify script may take to show its line.
const NOTIFIED: Duration = Duration::from_secs(15);
/// The seed's advert_int.
const ADVERT_INT: Duration = Duration::from_secs(1);
/// keepalived's default garp_master_delay: the second GARP burst.
const GARP_MASTER_DELAY: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// What keepalived passes the generic `notify` for a stopping instance
/// (keepalived.conf(5): "MASTER"|"BACKUP"|"FAULT"|"STOP"|"DELETED").
const KEEPALIVED_STOP_WORD: &str = "STOP";

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

/// A lab without web servers: these tests look at VRRP, not at the service.
fn vrrp_only_lab() -> Result<Lab> {
    Lab::build(LabOptions { web_servers: false, ..LabOptions::default() })
}

/// A measured figure, written past the test harness's capture so CI logs show it.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The seed's VI_1 on this lab's VIP at `priority`.
fn spec(lab: &Lab, priority: u8) -> VrrpSpec {
    VrrpSpec::seed(lab.vip(), priority)
}

/// `key = "value"` with TOML's basic-string escapes.
fn toml_str(key: &str, value: &str) -> String {
    let escaped: String = value
        .chars()
        .map(|c| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!("{key} = \"{escaped}\"")
}

/// Starts xdplb on `host` with `spec`, the seed's service (no health
/// checks: these tests are about VRRP) and `extra` top-level TOML, without
/// waiting for it.
fn spawn_xdplb(lab: &Lab, host: Host, spec: &VrrpSpec, extra: &str) -> Result<XdplbProcess> {
    let mut service = lab.single_lb(&[(Host::Web1, 1), (Host::Web2, 1)]);
    service.health_check = false;
    let text = format!("{}\n{extra}", VrrpLb { vrrp: spec.clone(), service }.to_toml());
    let path = lab.next_file(&format!("{}-xdplb", host.name()), "toml");
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    lab.start_xdplb(host, &path, &xdplb())
}

/// Like [`spawn_xdplb`], then waits until the data plane is ready.
fn start_xdplb(lab: &Lab, host: Host, spec: &VrrpSpec, extra: &str) -> Result<XdplbProcess> {
    let mut p = spawn_xdplb(lab, host, spec, extra)?;
    p.wait_for_log("data plane ready", READY)?;
    Ok(p)
}

/// Clean stop: exit 0 within 2 s; returns the final counters.
fn stop(p: XdplbProcess, host: Host) -> Result<Counters> {
    let exit = p.terminate()?;
    ensure!(
        exit.status.success(),
        "xdplb on {} exited {}:\n{}",
        host.name(),
        exit.status,
        exit.log
    );
    ensure!(exit.elapsed <= STOP_WITHIN, "stop took {:?}:\n{}", exit.elapsed, exit.log);
    Ok(exit.counters()?.clone())
}

/// No advert dropped, some heard or sent.
fn no_drops(host: Host, c: &Counters) -> Result<()> {
    ensure!(c.get("vrrp.adverts_sent")? + c.get("vrrp.adverts_received")? > 0, "{c}");
    ensure!(c.sum("vrrp.drop.") == 0, "{}: adverts dropped: {c}", host.name());
    Ok(())
}

/// lb1 (`spec1`) becomes master alone, then lb2 (`spec2`) joins as backup.
fn start_pair(
    lab: &Lab,
    spec1: &VrrpSpec,
    spec2: &VrrpSpec,
) -> Result<(XdplbProcess, XdplbProcess)> {
    let lb1 = start_xdplb(lab, Host::Lb1, spec1, "")?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)
        .with_context(|| format!("lb1 log:\n{}", lb1.log()))?;
    let lb2 = start_xdplb(lab, Host::Lb2, spec2, "")?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)
        .with_context(|| format!("lb2 log:\n{}", lb2.log()))?;
    Ok((lb1, lb2))
}

/// The lines of a file (none while it does not exist).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Waits until `path` has at least `n` lines; returns them.
fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Result<Vec<String>> {
    let what = format!("{n} lines in {}", path.display());
    wait_until(&what, timeout, POLL, || Ok(lines(path).len() >= n))
        .with_context(|| format!("it has: {:#?}", lines(path)))?;
    Ok(lines(path))
}

/// Whether `pid` is a live process whose command line contains `word`.
fn is_running(pid: i32, word: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(word) && !stat.contains(") Z ")
}

/// The one's complement sum of `data`, folded (0xffff: a checksum verifies).
fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).unwrap()
}

/// Whether a captured VRRPv3 advert's checksum verifies: RFC 5798 §5.2.8
/// sums the IPv4 pseudo-header with the message.
fn v3_checksum_ok(frame: &Frame) -> bool {
    let ip = &frame.data[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let message = &ip[ihl..total];
    let mut summed = Vec::with_capacity(12 + message.len());
    summed.extend_from_slice(&ip[12..20]); // source, destination
    summed.extend_from_slice(&[0, vrrp::IPPROTO_VRRP]);
    summed.extend_from_slice(&u16::try_from(message.len()).unwrap().to_be_bytes());
    summed.extend_from_slice(message);
    ones_sum(&summed) == 0xffff
}

#[test]
fn notify_scripts_run_in_order_with_keepalived_arguments_and_never_block_vrrp() -> Result<()> {
    let lab = vrrp_only_lab()?;
    let log = lab.dir().join("notify.log");
    let record = |word: &str| format!("echo {word} >> {}", log.display());
    let mut lb1_spec = spec(&lab, 120);
    lb1_spec.extra_toml = vec![
        toml_str("notify_master", &record("master")),
        toml_str("notify_backup", &record("backup")),
        toml_str("notify_fault", &record("fault")),
        toml_str("notify_stop", &record("stop")),
        // keepalived appends `INSTANCE VI_1 <STATE> <priority>` to this one.
        toml_str("notify", &record("notify")),
    ];
    let generic = |state: &str| format!("notify INSTANCE VI_1 {state} 120");

    // Startup (BACKUP), alone on the segment: MASTER after the master-down interval.
    let lb1 = start_xdplb(&lab, Host::Lb1, &lb1_spec, "")?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)?;
    let seen = wait_lines(&log, 4, NOTIFIED)?;
    assert_eq!(seen, ["backup", &generic("BACKUP"), "master", &generic("MASTER")]);

    // Cable pulled: no carrier, FAULT, the VIP released.
    lab.pull_cable(Host::Lb1)?;
    wait_until("lb1 (no carrier) to release the VIP", Duration::from_secs(10), POLL, || {
        Ok(!lab.holds_vip(Host::Lb1)?)
    })?;
    let seen = wait_lines(&log, 6, NOTIFIED)?;
    assert_eq!(seen[4..], ["fault", &generic("FAULT")], "{seen:#?}");

    // Back: BACKUP with the full master-down interval, then MASTER again.
    lab.plug_cable(Host::Lb1)?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)?;
    let seen = wait_lines(&log, 10, NOTIFIED)?;
    assert_eq!(
        seen[6..],
        ["backup", &generic("BACKUP"), "master", &generic("MASTER")],
        "{seen:#?}"
    );

    // Clean stop: notify_stop, then the generic one, before the process ends.
    let exit = lb1.terminate()?;
    ensure!(exit.status.success() && exit.elapsed <= STOP_WITHIN, "{exit:?}");
    let seen = lines(&log);
    ensure!(seen.len() == 12, "after the stop: {seen:#?}\nxdplb log:\n{}", exit.log);
    assert_eq!(seen[10], "stop", "{seen:#?}");
    // keepalived.conf(5): the generic notify gets "STOP" on a clean stop.
    ensure!(
        seen[11] == format!("notify INSTANCE VI_1 {KEEPALIVED_STOP_WORD} 120"),
        "generic notify on stop: {:?}",
        seen[11]
    );
    assert_eq!(exit.log.matches("notify script ran").count(), 12, "{}", exit.log);

    // A notify_master that sleeps 10 s: adverts and both GARP bursts go on.
    let pid_file = lab.dir().join("notify-master.pid");
    let mut sleeper = spec(&lab, 120);
    sleeper.extra_toml = vec![toml_str(
        "notify_master",
        &format!("echo $$ > {}; exec sleep 10", pid_file.display()),
    )];
    let cap = lab.capture_port(Host::Lb1, VRRP_AND_ARP)?;
    let lb1 = start_xdplb(&lab, Host::Lb1, &sleeper, "")?;
    let mut pid = None;
    wait_until("notify_master to start sleeping", ELECTION, POLL, || {
        pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
        Ok(pid.is_some())
    })?;
    let pid = pid.context("no PID")?;
    let sleeping = now();
    let result = (|| -> Result<()> {
        ensure!(is_running(pid, "sleep"), "notify_master (PID {pid}) is not sleeping");
        let frames = cap.wait_for("lb1's second GARP burst and 6 adverts", CAPTURE, |f| {
            let arps = vrrp::arps(f);
            let garps = vrrp::garps_from(&arps, Host::Lb1.mac(), lab.vip());
            garp_bursts(&garps.iter().map(|a| a.time).collect::<Vec<_>>()).len() >= 2
                && adverts_from(f, Host::Lb1, sleeping).len() >= 6
        })?;
        let still = now();
        ensure!(is_running(pid, "sleep"), "notify_master ended before the check");
        let ads = adverts_from(&frames, Host::Lb1, Duration::ZERO);
        let gaps: Vec<Duration> = ads.windows(2).map(|w| w[1].time - w[0].time).collect();
        let longest = gaps.iter().max().copied().unwrap_or_default();
        report(&format!(
            "notify: while notify_master slept ({} s so far) lb1 sent {} adverts, longest gap \
             {} s",
            secs(still - sleeping),
            ads.len(),
            secs(longest)
        ));
        ensure!(longest < Duration::from_millis(1500), "adverts stalled: gaps {gaps:?}");
        let arps = vrrp::arps(&frames);
        let garps = vrrp::garps_from(&arps, Host::Lb1.mac(), lab.vip());
        let bursts = garp_bursts(&garps.iter().map(|a| a.time).collect::<Vec<_>>());
        let delay = bursts[1][0] - bursts[0][0];
        ensure!(
            delay.abs_diff(GARP_MASTER_DELAY) < Duration::from_millis(500),
            "second GARP burst {delay:?} after the first"
        );
        // Stopping does not wait for it either (beyond a short grace).
        let exit = lb1.terminate()?;
        ensure!(exit.status.success() && exit.elapsed <= STOP_WITHIN, "{exit:?}");
        ensure!(!lab.holds_vip(Host::Lb1)?, "the VIP stayed after the stop");
        Ok(())
    })();
    // The sleeper outlives xdplb by design (keepalived's scripts do too); it is ours to end.
    if is_running(pid, "sleep") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    result
}

#[test]
fn track_interface_down_is_fault_the_backup_takes_over_and_up_preempts_back() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    // The interface lb1 tracks: a veth pair of its own (dummy may be missing).
    lab.ip(Host::Lb1, &["link", "add", "trk0", "type", "veth", "peer", "name", "trk1"])?;
    lab.ip(Host::Lb1, &["link", "set", "trk1", "up"])?;
    lab.ip(Host::Lb1, &["link", "set", "trk0", "up"])?;
    let mut lb1_spec = spec(&lab, 120);
    lb1_spec.extra_toml = vec!["track_interface = [\"trk0\"]".to_owned()];
    let cap = lab.capture_port(Host::Router, VRRP_AND_ARP)?;
    let (lb1, lb2) = start_pair(&lab, &lb1_spec, &spec(&lab, 110))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));
    let watch = lab.watch_router_vip()?;

    let down = now();
    lab.ip(Host::Lb1, &["link", "set", "trk0", "down"])?;
    let moved = watch.wait_for_change_to(Host::Lb2.mac(), down, Duration::from_secs(15))?;
    report(&format!(
        "track_interface: tracked link down -> router on lb2 in {} s",
        secs(moved.time - down)
    ));
    // Entering FAULT a master says it is stopping: lb2 takes over in its
    // skew time (0.57 s), not the master-down interval (3.57 s).
    ensure!(moved.time - down < Duration::from_millis(2500), "took {:?}", moved.time - down);
    let frames = cap.wait_for("a GARP from lb2", CAPTURE, |f| {
        !vrrp::garps_from(&vrrp::arps(f), Host::Lb2.mac(), lab.vip()).is_empty()
    })?;
    let bye = vrrp::adverts(&frames)
        .into_iter()
        .find(|a| a.src_mac == Host::Lb1.mac() && a.priority == 0 && a.time >= down);
    ensure!(bye.is_some(), "lb1 sent no priority-0 advert on entering FAULT");
    let garp = vrrp::garps_from(&vrrp::arps(&frames), Host::Lb2.mac(), lab.vip())[0].time;
    ensure!(garp >= down && garp <= moved.time, "GARP at {garp:?}, the entry moved {moved:?}");
    wait_until("lb1 (FAULT) to release the VIP", Duration::from_secs(10), POLL, || {
        Ok(!lab.holds_vip(Host::Lb1)? && lab.holds_vip(Host::Lb2)?)
    })?;
    let log1 = lb1.log();
    ensure!(log1.contains("tracked interface trk0 is down"), "lb1 log:\n{log1}");
    ensure!(log1.contains("VRRP VI_1: MASTER -> FAULT"), "lb1 log:\n{log1}");
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], ELECTION)?;
    // In FAULT lb1 neither advertises nor answers lb2's adverts.
    let quiet_from = now();
    holds_for("lb1 quiet in FAULT", 2 * ADVERT_INT, POLL, || {
        Ok(adverts_from(&cap.frames()?, Host::Lb1, quiet_from).is_empty())
    })?;

    let up = now();
    lab.ip(Host::Lb1, &["link", "set", "trk0", "up"])?;
    let back = watch.wait_for_change_to(Host::Lb1.mac(), up, ELECTION)?;
    report(&format!(
        "track_interface: tracked link up -> lb1 preempts, router on lb1 in {} s",
        secs(back.time - up)
    ));
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], Duration::from_secs(10))?;
    let log1 = lb1.log();
    let fault_cleared = log1.find("VRRP VI_1: FAULT -> BACKUP").context("no FAULT -> BACKUP")?;
    let preempted = log1.rfind("VRRP VI_1: BACKUP -> MASTER").context("no BACKUP -> MASTER")?;
    ensure!(fault_cleared < preempted, "lb1 log:\n{log1}");
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], ELECTION)?;
    cap.stop()?;
    no_drops(Host::Lb2, &stop(lb2, Host::Lb2)?)?;
    no_drops(Host::Lb1, &stop(lb1, Host::Lb1)?)
}

#[test]
fn track_script_failing_fall_times_is_fault_and_rise_successes_bring_it_back() -> Result<()> {
    const FALL: usize = 2;
    const RISE: usize = 2;
    let lab = vrrp_only_lab()?;
    let runs = lab.dir().join("chk_file.log");
    let fail = lab.dir().join("fail");
    let (runs_s, fail_s) = (runs.display(), fail.display());
    // Each run says what it found; notify scripts mark the state changes in
    // the same file, so the order of runs and transitions is on one page.
    let script = format!(
        "if test ! -e {fail_s}; then echo ok >> {runs_s}; else echo fail >> {runs_s}; exit 1; fi"
    );
    let extra = format!(
        "[[vrrp_script]]\nname = \"chk_file\"\n{}\ninterval = 1.0\nweight = 0\nfall = {FALL}\n\
         rise = {RISE}\n",
        toml_str("script", &script)
    );
    let mut lb1_spec = spec(&lab, 120);
    lb1_spec.extra_toml = vec![
        "track_script = [\"chk_file\"]".to_owned(),
        toml_str("notify_master", &format!("echo MASTER >> {runs_s}")),
        toml_str("notify_backup", &format!("echo BACKUP >> {runs_s}")),
        toml_str("notify_fault", &format!("echo FAULT >> {runs_s}")),
    ];
    let cap = lab.capture_port(Host::Lb1, "ip proto 112")?;
    let lb1 = start_xdplb(&lab, Host::Lb1, &lb1_spec, &extra)?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)?;
    // A passing run after MASTER: the script runs and lets lb1 be master.
    wait_until("a passing run while master", Duration::from_secs(10), POLL, || {
        let l = lines(&runs);
        Ok(l.iter().position(|s| s == "MASTER").is_some_and(|m| l[m..].contains(&"ok".into())))
    })?;

    let mark = lines(&runs).len();
    let failing = now();
    std::fs::write(&fail, b"")?;
    wait_until("lb1 to release the VIP", Duration::from_secs(15), POLL, || {
        Ok(!lab.holds_vip(Host::Lb1)?)
    })?;
    let released = now();
    wait_until("the FAULT mark", NOTIFIED, POLL, || {
        Ok(lines(&runs)[mark..].contains(&"FAULT".into()))
    })?;
    let seen = lines(&runs);
    let fault = seen[mark..].iter().position(|s| s == "FAULT").context("no FAULT mark")?;
    let fails = seen[mark..mark + fault].iter().filter(|s| *s == "fail").count();
    ensure!(fails == FALL, "FAULT after {fails} failures, fall is {FALL}: {:?}", &seen[mark..]);
    report(&format!(
        "track_script: failing -> VIP released in {} s (fall {FALL}, interval 1 s)",
        secs(released - failing)
    ));
    let log1 = lb1.log();
    ensure!(log1.contains("tracked script chk_file fails"), "lb1 log:\n{log1}");
    // FAULT: no adverts, the VIP stays released.
    holds_for("lb1 in FAULT without the VIP", 2 * ADVERT_INT, POLL, || {
        Ok(!lab.holds_vip(Host::Lb1)?)
    })?;
    let late = adverts_from(&cap.frames()?, Host::Lb1, released);
    ensure!(late.is_empty(), "lb1 advertised in FAULT: {late:?}");

    let mark = lines(&runs).len();
    let passing = now();
    std::fs::remove_file(&fail)?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)?;
    let back = now();
    // notify_master runs just after the VIP is added: wait for its mark.
    wait_until("the MASTER mark after the recovery", NOTIFIED, POLL, || {
        Ok(lines(&runs)[mark..].contains(&"MASTER".into()))
    })?;
    let seen = lines(&runs);
    let backup = seen[mark..].iter().position(|s| s == "BACKUP").context("no BACKUP mark")?;
    let oks = seen[mark..mark + backup].iter().filter(|s| *s == "ok").count();
    ensure!(oks == RISE, "BACKUP after {oks} successes, rise is {RISE}: {:?}", &seen[mark..]);
    ensure!(seen[mark + backup..].contains(&"MASTER".into()), "{:?}", &seen[mark..]);
    report(&format!(
        "track_script: passing again -> master in {} s (rise {RISE}, then the master-down \
         interval)",
        secs(back - passing)
    ));
    cap.stop()?;
    no_drops(Host::Lb1, &stop(lb1, Host::Lb1)?)
}

#[test]
fn unicast_peers_elect_advertise_by_unicast_and_fail_over_on_clean_stop() -> Result<()> {
    let lab = vrrp_only_lab()?;
    let unicast = |me: Host, peer: Host, priority: u8| {
        let mut s = spec(&lab, priority);
        s.extra_toml = vec![
            format!("unicast_src_ip = \"{}\"", me.ip()),
            format!("unicast_peer = [\"{}\"]", peer.ip()),
        ];
        s
    };
    let caps = [
        lab.capture_port(Host::Lb1, "ip proto 112")?,
        lab.capture_port(Host::Lb2, "ip proto 112")?,
        lab.capture_port(Host::Router, "ip proto 112")?,
    ];
    // Both at once: an election.
    let mut lb1 = spawn_xdplb(&lab, Host::Lb1, &unicast(Host::Lb1, Host::Lb2, 120), "")?;
    let mut lb2 = spawn_xdplb(&lab, Host::Lb2, &unicast(Host::Lb2, Host::Lb1, 110), "")?;
    lb1.wait_for_log("data plane ready", READY)?;
    lb2.wait_for_log("data plane ready", READY)?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)
        .with_context(|| format!("lb1:\n{}\nlb2:\n{}", lb1.log(), lb2.log()))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));

    // Only lb1 advertises, to lb2's address from its own.
    let from = now();
    let frames = wait_adverts(&caps[0], Host::Lb1, 3, from, CAPTURE)?;
    for a in adverts_from(&frames, Host::Lb1, from) {
        assert_eq!(
            (a.src_ip, a.dst_ip, a.dst_mac),
            (Host::Lb1.ip(), Host::Lb2.ip(), Host::Lb2.mac())
        );
        assert_eq!((a.version, a.vrid, a.priority, a.ttl), (2, 51, 120, 255), "{a:?}");
        assert!(a.checksum_ok, "{a:?}");
    }
    let heard = adverts_from(&caps[1].frames()?, Host::Lb1, from);
    ensure!(!heard.is_empty(), "lb2's port saw none of lb1's adverts");
    let senders = vrrp::advertisers(&vrrp::adverts(&caps[1].frames()?), from);
    ensure!(senders.len() == 1, "advertisers in 3 intervals: {senders:?}");
    let watch = lab.watch_router_vip()?;

    // Clean stop of lb1: a unicast priority-0 advert, lb2 takes over in its skew time.
    let stopping = now();
    no_drops(Host::Lb1, &stop(lb1, Host::Lb1)?)?;
    let frames = wait_adverts(&caps[1], Host::Lb2, 1, stopping, CAPTURE)?;
    let ads = vrrp::adverts(&frames);
    let bye =
        ads.iter().find(|a| a.src_mac == Host::Lb1.mac() && a.priority == 0 && a.time >= stopping);
    let bye = bye.context("no priority-0 advert from lb1 at lb2's port")?;
    assert_eq!((bye.dst_ip, bye.ttl), (Host::Lb2.ip(), 255), "{bye:?}");
    let first = adverts_from(&frames, Host::Lb2, bye.time)[0].clone();
    assert_eq!((first.src_ip, first.dst_ip), (Host::Lb2.ip(), Host::Lb1.ip()), "{first:?}");
    let handover = first.time - bye.time;
    report(&format!("unicast: priority-0 handover (advert -> advert): {} s", secs(handover)));
    ensure!(handover < Duration::from_millis(1500), "handover took {handover:?}");
    watch.wait_for_change_to(Host::Lb2.mac(), stopping, Duration::from_secs(5))?;
    lab.wait_for_sole_holder(Host::Lb2, &[Host::Lb1], Duration::from_secs(5))?;
    no_drops(Host::Lb2, &stop(lb2, Host::Lb2)?)?;

    // Nothing ever went to the multicast group.
    for cap in caps {
        let frames = cap.stop()?;
        let group: Vec<Advert> =
            vrrp::adverts(&frames).into_iter().filter(|a| a.dst_ip == vrrp::VRRP_GROUP).collect();
        ensure!(group.is_empty(), "adverts to 224.0.0.18: {group:?}");
    }
    Ok(())
}

#[test]
fn vrrp_v3_half_second_adverts_fail_over_fast_and_interoperate_with_keepalived() -> Result<()> {
    let lab = vrrp_only_lab()?;
    let v3 = |priority: u8| {
        let mut s = spec(&lab, priority);
        s.auth_pass = None; // VRRPv3 has no authentication
        s.advert_int = 0.5;
        s.extra_toml = vec!["vrrp_version = 3".to_owned()];
        s.extra_keepalived = vec!["version 3".to_owned()];
        s
    };
    let half = Duration::from_millis(500);
    // RFC 5798 §6.1: 3 × 0.5 s + (256 − 110) × 0.5 s / 256.
    let master_down_110 = 3 * half + half * 146 / 256;

    // Two xdplb.
    let cap = lab.capture_port(Host::Router, "ip proto 112")?;
    let (lb1, lb2) = start_pair(&lab, &v3(120), &v3(110))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));
    let from = now();
    let frames = wait_adverts(&cap, Host::Lb1, 6, from, CAPTURE)?;
    let ads = adverts_from(&frames, Host::Lb1, from);
    for (a, f) in ads.iter().zip(frames.iter().filter(|f| {
        vrrp::advert(f).is_some_and(|a| a.src_mac == Host::Lb1.mac() && a.time >= from)
    })) {
        assert_eq!((a.version, a.kind, a.vrid, a.priority, a.ttl), (3, 1, 51, 120, 255), "{a:?}");
        assert_eq!(
            (a.interval, a.dst_ip, a.addresses.clone()),
            (50, vrrp::VRRP_GROUP, vec![lab.vip()])
        );
        assert!(v3_checksum_ok(f), "bad VRRPv3 checksum: {a:?}");
    }
    let span = ads[ads.len() - 1].time - ads[0].time;
    let mean = span / u32::try_from(ads.len() - 1)?;
    ensure!(mean.abs_diff(half) < Duration::from_millis(100), "adverts every {mean:?}");
    let senders = vrrp::advertisers(&vrrp::adverts(&frames), from);
    ensure!(senders.len() == 1, "advertisers: {senders:?}");

    let watch = lab.watch_router_vip()?;
    let down = lab.pull_cable(Host::Lb1)?;
    let moved = watch.wait_for_change_to(Host::Lb2.mac(), down, Duration::from_secs(10))?;
    let frames = wait_adverts(&cap, Host::Lb2, 1, down, CAPTURE)?;
    let last = adverts_from(&frames, Host::Lb1, from)
        .iter()
        .map(|a| a.time)
        .filter(|t| *t <= down)
        .max()
        .context("no advert from lb1 before the pull")?;
    let first = adverts_from(&frames, Host::Lb2, down)[0].time;
    report(&format!(
        "vrrp v3 (advert_int 0.5): lb1's last advert -> lb2's first {} s (master-down {} s); \
         cable pull -> router entry {} s",
        secs(first - last),
        secs(master_down_110),
        secs(moved.time - down)
    ));
    ensure!(first - last >= master_down_110 - Duration::from_millis(100), "{:?}", first - last);
    ensure!(first - last < master_down_110 + Duration::from_secs(1), "{:?}", first - last);
    lab.plug_cable(Host::Lb1)?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)?;
    no_drops(Host::Lb2, &stop(lb2, Host::Lb2)?)?;
    no_drops(Host::Lb1, &stop(lb1, Host::Lb1)?)?;
    wait_until("no VIP left", Duration::from_secs(5), POLL, || {
        Ok(!lab.holds_vip(Host::Lb1)? && !lab.holds_vip(Host::Lb2)?)
    })?;

    // keepalived 2.2.7 (lb1, 120) as master, xdplb (lb2, 110) as backup.
    let mut ka = lab.start_keepalived(Host::Lb1, &v3(120))?;
    ka.wait_for_state(KaState::Master, ELECTION)?;
    lab.wait_for_sole_holder(Host::Lb1, &[], ELECTION)?;
    let lb2 = start_xdplb(&lab, Host::Lb2, &v3(110), "")?;
    let joined = now();
    // Three master-down intervals: an xdplb that refused keepalived's
    // adverts would have taken over by then.
    holds_for("keepalived master, xdplb backup", 3 * master_down_110, POLL, || {
        Ok(lab.holds_vip(Host::Lb1)? && !lab.holds_vip(Host::Lb2)?)
    })
    .with_context(|| format!("xdplb log:\n{}", lb2.log()))?;
    let frames = cap.frames()?;
    ensure!(adverts_from(&frames, Host::Lb2, joined).is_empty(), "xdplb advertised as backup");
    let ka_ads = adverts_from(&frames, Host::Lb1, joined);
    ensure!(ka_ads.len() >= 4, "keepalived sent {} adverts", ka_ads.len());
    ensure!(ka_ads.iter().all(|a| a.version == 3 && a.interval == 50), "{ka_ads:?}");

    // keepalived stops: its priority-0 advert hands over in xdplb's skew time.
    let complaints = ka.complaints();
    ensure!(complaints.is_empty(), "keepalived complained: {complaints:#?}");
    let stopping = now();
    ka.terminate()?;
    let frames = wait_adverts(&cap, Host::Lb2, 1, stopping, CAPTURE)?;
    let ads = vrrp::adverts(&frames);
    let bye =
        ads.iter().find(|a| a.src_mac == Host::Lb1.mac() && a.priority == 0 && a.time >= stopping);
    let bye = bye.context("no priority-0 advert from keepalived")?.time;
    let handover = adverts_from(&frames, Host::Lb2, bye)[0].time - bye;
    report(&format!("vrrp v3 keepalived->xdplb priority-0 handover: {} s", secs(handover)));
    ensure!(handover < Duration::from_secs(1), "handover took {handover:?}");
    lab.wait_for_sole_holder(Host::Lb2, &[Host::Lb1], Duration::from_secs(5))?;

    // keepalived comes back and preempts xdplb: it took xdplb's adverts.
    let restarted = now();
    let ka = lab.start_keepalived(Host::Lb1, &v3(120))?;
    lab.wait_for_sole_holder(Host::Lb1, &[Host::Lb2], ELECTION)
        .with_context(|| format!("keepalived log:\n{}", ka.log()))?;
    report(&format!(
        "vrrp v3 keepalived (120) preempts xdplb (110) {} s after its start",
        secs(now() - restarted)
    ));
    let complaints = ka.complaints();
    ensure!(complaints.is_empty(), "keepalived complained about xdplb: {complaints:#?}");
    ensure!(ka.entered(KaState::Master) == 1, "keepalived states: {:?}", ka.states());
    let c2 = stop(lb2, Host::Lb2)?;
    no_drops(Host::Lb2, &c2)?;
    ensure!(c2.get("vrrp.adverts_received")? >= 4, "{c2}");
    ka.terminate()?;
    cap.stop()?;
    Ok(())
}

#[test]
fn bad_adverts_are_dropped_counted_by_reason_and_do_not_disturb_the_election() -> Result<()> {
    const EACH: u64 = 3;
    let lab = vrrp_only_lab()?;
    let cap = lab.capture_port(Host::Router, VRRP_AND_ARP)?;
    let (lb1, lb2) = start_pair(&lab, &spec(&lab, 120), &spec(&lab, 110))?;
    let mac = lab.router_resolves_vip(ELECTION)?;
    ensure!(mac == Host::Lb1.mac(), "the router resolved the VIP to {}", mac_str(mac));
    let watch = lab.watch_router_vip()?;

    // Each claims priority 254 from the router's address: accepted, it
    // would make the master (120) yield at once. One thing is wrong in each.
    let claim = ForgedAdvert::valid(Host::Router.ip(), 254);
    let cases = claim.one_thing_wrong();
    // And one well-formed advert of another virtual router: ignored, not dropped.
    let other_vrid = ForgedAdvert { vrid: 52, ..claim };
    let mut frames = Vec::new();
    let mut ident = 1u16;
    for _ in 0..EACH {
        for forged in cases.iter().map(|(_, f)| f).chain([&other_vrid]) {
            frames.push(forged.frame(Host::Router.mac(), lab.vip(), ident));
            ident += 1;
        }
    }
    let changes = |p: &XdplbProcess| (p.log_count("-> MASTER"), p.log_count("-> BACKUP"));
    let (before1, before2) = (changes(&lb1), changes(&lb2));
    let injected = now();
    let sent = lab.inject(Host::Router, "eth0", frames, Duration::from_millis(20))?;
    ensure!(u64::try_from(sent)? == EACH * (cases.len() as u64 + 1), "sent {sent} frames");

    // Undisturbed for two advert intervals past the last injected frame.
    holds_for("lb1 master, lb2 backup, the router on lb1", 2 * ADVERT_INT, POLL, || {
        Ok(lab.holds_vip(Host::Lb1)?
            && !lab.holds_vip(Host::Lb2)?
            && watch.current() == Some(Host::Lb1.mac()))
    })?;
    let frames = wait_adverts(&cap, Host::Lb1, 2, injected + Duration::from_millis(400), CAPTURE)?;
    let seen: Vec<Advert> = vrrp::adverts(&frames)
        .into_iter()
        .filter(|a| a.src_mac == Host::Router.mac() && a.time >= injected)
        .collect();
    ensure!(seen.len() == sent, "the router's port saw {} of {sent} injected adverts", seen.len());
    ensure!(
        vrrp::advertisers(&vrrp::adverts(&frames), injected + Duration::from_millis(400))
            == [Host::Lb1.mac()].into_iter().collect(),
        "someone else advertised"
    );
    ensure!(watch.first_change_to(Host::Lb2.mac(), injected).is_none(), "{}", watch.describe());
    ensure!(changes(&lb1) == before1, "lb1 log:\n{}", lb1.log());
    ensure!(changes(&lb2) == before2, "lb2 log:\n{}", lb2.log());
    cap.stop()?;

    // The backup and the master both heard every one and dropped each by its reason.
    for (host, p) in [(Host::Lb2, lb2), (Host::Lb1, lb1)] {
        let c = stop(p, host)?;
        let mut line = Vec::new();
        for (reason, _) in &cases {
            let n = c.get(&format!("vrrp.drop.{reason}"))?;
            line.push(format!("{reason}={n}"));
            ensure!(n == EACH, "{}: vrrp.drop.{reason} = {n}, sent {EACH}: {c}", host.name());
        }
        let total = c.sum("vrrp.drop.");
        ensure!(total == EACH * cases.len() as u64, "{}: {total} drops in all: {c}", host.name());
        ensure!(c.get("vrrp.other_vrid")? == EACH, "{}: {c}", host.name());
        report(&format!("bad adverts at {}: {}", host.name(), line.join(" ")));
    }
    Ok(())
}
