//! Hitless reload in the seed's lab: SIGHUP (and `xdplb reload`) change
//! weights under traffic without losing a flow, drain and remove servers
//! as IPVS does, and a broken or restart-only file changes nothing and is
//! reported in the log and in status.
//!
//! Needs root (namespaces, veth, XDP). Run serially, as CI does:
//! `cargo test --test reload_lab -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testlab::anyhow::{ensure, Context, Result};
use testlab::{Host, HttpStream, Lab, LabOptions, XdplbProcess};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SERVED_TIMEOUT: Duration = Duration::from_secs(30);
/// A reload is a few netlink calls and one snapshot: seconds are generous.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

/// The single-LB config with these weights, written to `path`.
fn write_weights(lab: &Lab, path: &Path, weights: &[(Host, u32)]) -> Result<()> {
    let toml = lab.single_lb(weights).to_toml();
    std::fs::write(path, toml).with_context(|| format!("write {}", path.display()))
}

/// Starts xdplb on lb1 with `weights` and waits until both servers answer.
fn start(lab: &Lab, weights: [u32; 2]) -> Result<(XdplbProcess, PathBuf)> {
    let path = lab.next_file("xdplb", "toml");
    write_weights(lab, &path, &[(Host::Web1, weights[0]), (Host::Web2, weights[1])])?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("data plane ready", READY_TIMEOUT)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)
        .with_context(|| format!("xdplb log:\n{}", lb.log()))?;
    Ok((lb, path))
}

fn status(lab: &Lab, json: bool) -> Result<String> {
    let mut argv = vec![xdplb().display().to_string(), "status".to_owned()];
    if json {
        argv.push("--json".to_owned());
    }
    lab.exec(Host::Lb1, &argv)
}

/// The `-> IP:80 ...` line of `server` in `xdplb status`: (weight, active, inactive).
fn server_line(text: &str, server: Host) -> Option<(u32, u64, u64)> {
    let line =
        text.lines().find(|l| l.trim_start().starts_with(&format!("-> {}:80", server.ip())))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((f.get(3)?.parse().ok()?, f.get(4)?.parse().ok()?, f.get(5)?.parse().ok()?))
}

/// Opens long downloads until one is answered by `want`.
fn stream_on(lab: &Lab, want: Host, seconds: u32) -> Result<HttpStream> {
    for _ in 0..16 {
        let stream =
            lab.http_stream(Host::Pc, &lab.vip_url(&format!("/slow?seconds={seconds}")))?;
        if stream.server(Duration::from_secs(10))? == want.name() {
            return Ok(stream);
        }
        // The other server's stream finishes on its own in the background.
        drop(stream);
    }
    testlab::anyhow::bail!("16 long downloads, none answered by {}", want.name())
}

fn split(lab: &Lab, n: usize) -> Result<BTreeMap<String, usize>> {
    let many = lab.http_get_many(Host::Pc, &lab.vip_url("/"), n)?;
    ensure!(many.failures.is_empty(), "failed requests: {:?}", many.failures);
    ensure!(many.non_200() == 0, "non-200 answers");
    Ok(many.by_body())
}

/// The scenario: a long download from the server whose share falls
/// (1:1 → 3:1) keeps going across the SIGHUP, its flow entry survives (it
/// is still counted in status), and new connections then split 3:1.
#[test]
fn weights_change_under_traffic_without_losing_a_flow() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    let (mut lb, path) = start(&lab, [1, 1])?;
    let stream = stream_on(&lab, Host::Web2, 8)?;
    let before = stream.lines_so_far();

    write_weights(&lab, &path, &[(Host::Web1, 3), (Host::Web2, 1)])?;
    lb.sighup()?;
    lb.wait_for_log(
        "reload: real server 192.168.10.103:80 of TCP 192.168.10.110:80: weight 1 → 3",
        RELOAD_TIMEOUT,
    )?;

    // The census is refreshed once a second: web2 keeps its active flow
    // and the new weight shows.
    let mut text = String::new();
    testlab::wait_until("status to show 3:1 and web2's open flow", RELOAD_TIMEOUT, POLL, || {
        text = status(&lab, false)?;
        Ok(server_line(&text, Host::Web1).map(|l| l.0) == Some(3)
            && server_line(&text, Host::Web2).map(|l| (l.0, l.1)) == Some((1, 1)))
    })
    .with_context(|| format!("last status:\n{text}"))?;

    let by = split(&lab, 200)?;
    let (web1, web2) = (by.get("web1").copied().unwrap_or(0), by.get("web2").copied().unwrap_or(0));
    ensure!(web1 + web2 == 200, "answers {by:?}");
    ensure!(web1.abs_diff(150) <= 8 && web2.abs_diff(50) <= 8, "split {by:?}, want 150/50 ± 8");

    ensure!(stream.lines_so_far() > before, "the download stalled");
    let done = stream.join().context("the long download across the reload")?;
    ensure!(done.status == 200, "status {}", done.status);
    ensure!(done.servers() == ["web2"], "the download changed servers: {:?}", done.servers());
    ensure!(done.lines.len() == 80, "the download was cut at {} of 80 lines", done.lines.len());

    let json = status(&lab, true)?;
    ensure!(json.contains("\"reload\""), "status --json has no reload outcome: {json}");
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    Ok(())
}

/// Weight 0 drains (the flow goes on, nothing new); removing the server
/// from the file ends its flows, as IPVS does when a destination is deleted.
#[test]
fn weight_0_drains_and_removal_ends_flows() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    let (mut lb, path) = start(&lab, [1, 1])?;
    let stream = stream_on(&lab, Host::Web1, 12)?;

    write_weights(&lab, &path, &[(Host::Web1, 0), (Host::Web2, 1)])?;
    lb.sighup()?;
    lb.wait_for_log("weight 1 → 0 (drains", RELOAD_TIMEOUT)?;
    let by = split(&lab, 20)?;
    ensure!(by == BTreeMap::from([("web2".to_owned(), 20)]), "after drain: {by:?}");
    let seen = stream.lines_so_far();
    testlab::wait_until("the draining download to go on", RELOAD_TIMEOUT, POLL, || {
        Ok(stream.lines_so_far() >= seen + 5)
    })?;
    ensure!(!stream.is_finished(), "the draining download ended early");

    write_weights(&lab, &path, &[(Host::Web2, 1)])?;
    lb.sighup()?;
    lb.wait_for_log(
        "real server 192.168.10.103:80 removed from TCP 192.168.10.110:80",
        RELOAD_TIMEOUT,
    )?;
    // Its next segments are scheduled afresh to web2, which resets them.
    testlab::wait_until(
        "the removed server's download to end",
        Duration::from_secs(10),
        POLL,
        || Ok(stream.is_finished()),
    )?;
    match stream.join() {
        Err(_) => {}
        Ok(done) => ensure!(done.lines.len() < 120, "the download survived removal: {done:?}"),
    }
    let text = status(&lab, false)?;
    ensure!(server_line(&text, Host::Web1).is_none(), "web1 still listed:\n{text}");
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    Ok(())
}

/// A broken file and a restart-only change are refused, say why (log and
/// status), and change nothing; `xdplb reload` reports the outcome.
#[test]
fn a_bad_reload_changes_nothing_and_says_why() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    let (mut lb, path) = start(&lab, [3, 1])?;
    let good = std::fs::read_to_string(&path)?;

    let broken = good.replacen("weight = 3", "weight = \"three\"", 1);
    ensure!(broken != good, "the edit applies");
    std::fs::write(&path, &broken)?;
    lb.sighup()?;
    lb.wait_for_log("reload refused, the running configuration is unchanged", RELOAD_TIMEOUT)?;
    let log = lb.log();
    let line = broken.lines().position(|l| l.contains("\"three\"")).unwrap() + 1;
    ensure!(
        log.contains(&format!("{}:{line}", path.display())),
        "the refusal does not name {}:{line}:\n{log}",
        path.display()
    );
    let json = status(&lab, true)?;
    ensure!(json.contains("three") || json.contains(&format!(":{line}")), "status: {json}");
    let by = split(&lab, 80)?;
    let web1 = by.get("web1").copied().unwrap_or(0);
    ensure!(web1.abs_diff(60) <= 4, "old 3:1 no longer applies: {by:?}");

    // The same through the command, which answers with the refusal.
    let restart_only = good.replacen("[dataplane]", "[dataplane]\nflow_table_size = 1024", 1);
    ensure!(restart_only != good, "the edit applies");
    std::fs::write(&path, &restart_only)?;
    let refused = lab.exec(Host::Lb1, &[xdplb().display().to_string(), "reload".to_owned()]);
    let err = format!("{:#}", refused.expect_err("a restart-only change must fail"));
    ensure!(err.contains("flow_table_size changed (65536 → 1024)"), "{err}");

    std::fs::write(&path, good.replacen("weight = 3", "weight = 2", 1))?;
    let ok = lab.exec(Host::Lb1, &[xdplb().display().to_string(), "reload".to_owned()])?;
    ensure!(ok.contains("weight 3 → 2"), "xdplb reload said: {ok}");
    ensure!(lb.is_running()?, "xdplb stopped; log:\n{}", lb.log());
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    Ok(())
}
