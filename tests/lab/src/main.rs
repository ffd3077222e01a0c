//! `xdplb-lab demo`: the seed's experiment end to end. Builds the lab, runs
//! xdplb on both directors with the seed's configuration, shows the router's
//! ARP entry, fetches the VIP, stops the master, shows the entry move and the
//! fetches keep working, then tears everything down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testlab::lab::mac_str;
use testlab::{Host, Lab, LabOptions};

/// How many times the pc fetches the VIP.
const REQUESTS: usize = 10;

const USAGE: &str = "usage: xdplb-lab demo [--xdplb PATH] [--config PATH]";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xdplb-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("demo") {
        bail!("{USAGE}");
    }
    let mut xdplb = None;
    let mut config = None;
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value; {USAGE}"))?;
        match arg.as_str() {
            "--xdplb" => xdplb = Some(PathBuf::from(value)),
            "--config" => config = Some(PathBuf::from(value)),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let xdplb = match xdplb {
        Some(path) => path,
        None => beside_self("xdplb")?,
    };
    let config = match config {
        Some(path) => path,
        None => default_config()?,
    };
    demo(&xdplb, &config)
}

/// The seed's lab as the seed has it: xdplb on lb1 and lb2 with the same
/// configs/seed-lab.toml (both priority 120, state BACKUP), the router's ARP
/// entry for the VIP shown next to each director's MAC, 10 fetches answered
/// by both web servers, then the master stops and the entry moves.
fn demo(xdplb: &Path, config: &Path) -> Result<bool> {
    println!("building the lab (pc - router - segment with lb1, lb2, web1, web2)");
    let lab = Lab::build(LabOptions::default())?;
    for host in [Host::Lb1, Host::Lb2] {
        println!("  {} {} MAC {}", host.name(), host.ip(), mac_str(host.mac()));
    }
    println!("starting {} on lb1 and lb2 with {}", xdplb.display(), config.display());
    let mut lbs = Vec::new();
    for host in [Host::Lb1, Host::Lb2] {
        let mut lb = lab.start_xdplb(host, config, xdplb)?;
        lb.wait_for_log("data plane ready", Duration::from_secs(60))?;
        lbs.push((host, lb));
    }
    println!("waiting for the VRRP election (equal priorities: the first master-down timer wins)");
    let master = wait_for_master(&lab)?;
    let backup = if master == Host::Lb1 { Host::Lb2 } else { Host::Lb1 };
    println!("{} is master and holds {}", master.name(), lab.vip());
    let mac = lab.router_resolves_vip(Duration::from_secs(20))?;
    show_router_entry(mac);

    let (mut answers, mut failures) = fetch(&lab, "before failover");
    let index = lbs.iter().position(|(h, _)| *h == master).context("master process")?;
    let (_, stopping) = lbs.remove(index);
    println!(
        "stopping the master {} (SIGTERM: a priority-0 advert, then the VIP goes)",
        master.name()
    );
    let exit = stopping.terminate()?;
    println!("{} stopped in {:?} ({})", master.name(), exit.elapsed, exit.status);
    lab.wait_for_sole_holder(backup, &[master], Duration::from_secs(10))?;
    testlab::wait_until(
        "the router's entry for the VIP to move",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok(lab.router_vip_mac()? == Some(backup.mac())),
    )?;
    println!("{} took over", backup.name());
    show_router_entry(backup.mac());
    let (after, more_failures) = fetch(&lab, "after failover");
    for (server, n) in after {
        *answers.entry(server).or_default() += n;
    }
    failures += more_failures;
    let mut clean = exit.status.success();
    for (host, lb) in lbs {
        let exit = lb.terminate()?;
        println!("{} stopped in {:?} ({})", host.name(), exit.elapsed, exit.status);
        clean &= exit.status.success();
    }
    drop(lab);
    println!("lab removed");

    let both = Host::WEB.iter().all(|w| answers.contains_key(w.name()));
    println!("answers by server: {answers:?}, failures: {failures}");
    if both && failures == 0 && clean {
        println!("OK: both web servers answered through the VIP before and after the failover");
        Ok(true)
    } else {
        println!("FAILED");
        Ok(false)
    }
}

fn wait_for_master(lab: &Lab) -> Result<Host> {
    let mut master = None;
    testlab::wait_until(
        "one director to become master",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            for host in [Host::Lb1, Host::Lb2] {
                if lab.holds_vip(host)? {
                    master = Some(host);
                    return Ok(true);
                }
            }
            Ok(false)
        },
    )?;
    master.context("no master")
}

fn show_router_entry(mac: dataplane::tables::Mac) {
    let owner = Host::by_mac(mac).map_or("?", Host::name);
    println!(
        "router: ip neigh {} lladdr {} ({owner}'s own MAC, no VRRP virtual MAC)",
        testlab::DEFAULT_VIP,
        mac_str(mac)
    );
}

/// REQUESTS fetches of the VIP from the pc, printed; answers by server and failures.
fn fetch(lab: &Lab, when: &str) -> (std::collections::BTreeMap<String, usize>, usize) {
    println!("fetching {} from the pc {REQUESTS} times ({when})", lab.vip_url("/"));
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = 0;
    for i in 1..=REQUESTS {
        match lab.http_get(Host::Pc, &lab.vip_url("/")) {
            Ok(r) if r.status == 200 => {
                println!("  {i:2}: {}", r.body.trim());
                *answers.entry(r.body.trim().to_owned()).or_default() += 1;
            }
            Ok(r) => {
                println!("  {i:2}: HTTP {}", r.status);
                failures += 1;
            }
            Err(e) => {
                println!("  {i:2}: failed: {e:#}");
                failures += 1;
            }
        }
    }
    (answers, failures)
}

/// `name` in the directory of this executable (cargo puts both binaries there).
fn beside_self(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("current_exe")?;
    let dir = me.parent().with_context(|| format!("{} has no directory", me.display()))?;
    Ok(dir.join(name))
}

/// configs/seed-lab.toml from the working directory, else from the source tree.
fn default_config() -> Result<PathBuf> {
    let here = PathBuf::from("configs/seed-lab.toml");
    if here.is_file() {
        return Ok(here);
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/seed-lab.toml");
    if tree.is_file() {
        return Ok(tree);
    }
    bail!("configs/seed-lab.toml not found here or at {}; pass --config", tree.display())
}
