//! keepalived's service options in the seed's lab: persistence keeps a
//! client on one real server where wrr alone would alternate, and a sorry
//! server takes over when the quorum is lost and leaves when it returns.
//!
//! Needs root (namespaces, veth, XDP). Run serially, as CI does:
//! `cargo test --test persistence_lab -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use testlab::anyhow::{ensure, Result};
use testlab::{Host, Lab, LabOptions, XdplbProcess};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SERVED_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

fn xdplb() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xdplb"))
}

/// The single-LB config for `servers`, with `service_lines` added to the
/// `[[virtual_server]]` table, started on lb1.
fn start(lab: &Lab, servers: &[(Host, u32)], service_lines: &str) -> Result<XdplbProcess> {
    let mut config = lab.single_lb(servers);
    config.delay_loop = 1.0;
    config.retry = Some(0);
    let text = config.to_toml();
    let anchor = "lvs_method = \"DR\"\n";
    ensure!(text.contains(anchor), "the service table has no {anchor:?}:\n{text}");
    let text = text.replacen(anchor, &format!("{anchor}{service_lines}\n"), 1);
    let path = lab.write_file("service.toml", &text)?;
    let mut lb = lab.start_xdplb(Host::Lb1, &path, &xdplb())?;
    lb.wait_for_log("data plane ready", READY_TIMEOUT)?;
    Ok(lb)
}

fn status(lab: &Lab) -> Result<String> {
    lab.exec(Host::Lb1, &[xdplb().display().to_string(), "status".to_owned()])
}

fn answers(lab: &Lab, from: Host, n: usize) -> Result<BTreeMap<String, usize>> {
    let many = lab.http_get_many(from, &lab.vip_url("/"), n)?;
    ensure!(many.failures.is_empty(), "failed requests: {:?}", many.failures);
    Ok(many.by_body())
}

/// With `persistence_timeout`, every new connection of a client goes to the
/// server its first one went to; without it, wrr 1:1 alternates.
#[test]
fn persistence_keeps_each_client_on_one_server() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    let lb = start(&lab, &[(Host::Web1, 1), (Host::Web2, 1)], "persistence_timeout = 60")?;
    // Both servers answer someone: the pc and the router are two clients.
    let mut owners = Vec::new();
    for client in [Host::Pc, Host::Router] {
        let by = answers(&lab, client, 30)?;
        ensure!(by.len() == 1, "{} went to more than one server: {by:?}", client.name());
        owners.push(by.into_keys().next().unwrap());
    }
    let text = status(&lab)?;
    ensure!(text.contains("TCP  192.168.10.110:80 wrr persistent 60"), "{text}");
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    let hits = exit.counters()?.get("worker.persistence_hits")?;
    ensure!(hits >= 58, "persistence hits {hits} of 58 follow-up connections");

    // The same two clients without persistence: each sees both servers.
    let lb = start(&lab, &[(Host::Web1, 1), (Host::Web2, 1)], "")?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1", "web2"], SERVED_TIMEOUT)?;
    let by = answers(&lab, Host::Pc, 30)?;
    ensure!(by.len() == 2, "without persistence the pc saw only {by:?}");
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    eprintln!("persistence: pc → {}, router → {}", owners[0], owners[1]);
    Ok(())
}

/// web1 alone with quorum 1 and web2 as the sorry server: web1's health
/// check fails → quorum lost, web2 answers everything; web1 recovers →
/// quorum gained, web2 is out again.
#[test]
fn the_sorry_server_stands_in_while_the_quorum_is_lost() -> Result<()> {
    let lab = Lab::build(LabOptions::default())?;
    let sorry = format!("sorry_server = {{ ip = \"{}\", port = 80 }}", Host::Web2.ip());
    let mut lb = start(&lab, &[(Host::Web1, 1)], &sorry)?;
    lab.wait_until_served(Host::Pc, &lab.vip_url("/"), &["web1"], SERVED_TIMEOUT)?;
    ensure!(answers(&lab, Host::Pc, 10)? == BTreeMap::from([("web1".to_owned(), 10)]));

    lab.set_health(Host::Web1, false)?;
    lb.wait_for_log("quorum lost", SERVED_TIMEOUT)?;
    // The snapshot that brings the sorry server is the one that logged it.
    testlab::wait_until("the sorry server to answer", SERVED_TIMEOUT, POLL, || {
        Ok(answers(&lab, Host::Pc, 1)?.contains_key("web2"))
    })?;
    ensure!(answers(&lab, Host::Pc, 10)? == BTreeMap::from([("web2".to_owned(), 10)]));
    let text = status(&lab)?;
    ensure!(
        text.contains(&format!("-> {}:80", Host::Web2.ip())),
        "sorry server not listed:\n{text}"
    );

    lab.set_health(Host::Web1, true)?;
    // The first "quorum gained" was logged at start.
    lb.wait_for_log_count("quorum gained", 2, SERVED_TIMEOUT)?;
    testlab::wait_until("web1 to answer again", SERVED_TIMEOUT, POLL, || {
        Ok(answers(&lab, Host::Pc, 1)?.contains_key("web1"))
    })?;
    ensure!(answers(&lab, Host::Pc, 10)? == BTreeMap::from([("web1".to_owned(), 10)]));
    let exit = lb.terminate()?;
    ensure!(exit.status.success(), "xdplb exited {}; log:\n{}", exit.status, exit.log);
    Ok(())
}
