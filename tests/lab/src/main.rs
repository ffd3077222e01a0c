//! `xdplb-lab demo`: the seed's experiment end to end. Builds the lab, runs
//! xdplb on lb1, fetches the VIP from the pc and shows both web servers
//! answering, then tears everything down.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
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

/// The seed's test: 10 fetches of the VIP from the pc, both servers answer.
fn demo(xdplb: &Path, config: &Path) -> Result<bool> {
    println!("building the lab (pc - router - segment with lb1, lb2, web1, web2)");
    let lab = Lab::build(LabOptions::default())?;
    println!("starting {} on lb1 with {}", xdplb.display(), config.display());
    let mut lb = lab.start_xdplb(Host::Lb1, config, xdplb)?;
    lb.wait_for_log("data plane ready", Duration::from_secs(60))?;
    println!("xdplb is ready; fetching {} from the pc {REQUESTS} times", lab.vip_url("/"));

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
    let exit = lb.terminate()?;
    println!("xdplb stopped in {:?} ({})", exit.elapsed, exit.status);
    if let Some(counters) = &exit.counters {
        println!("final counters: {counters}");
    }
    drop(lab);
    println!("lab removed");

    let both = Host::WEB.iter().all(|w| answers.contains_key(w.name()));
    println!("answers by server: {answers:?}, failures: {failures}");
    if both && failures == 0 && exit.status.success() {
        println!("OK: both web servers answered through the VIP, replies straight to the pc");
        Ok(true)
    } else {
        println!("FAILED");
        Ok(false)
    }
}

/// `name` in the directory of this executable (cargo puts both binaries there).
fn beside_self(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("current_exe")?;
    let dir = me.parent().with_context(|| format!("{} has no directory", me.display()))?;
    Ok(dir.join(name))
}

/// configs/single-lb.toml from the working directory, else from the source tree.
fn default_config() -> Result<PathBuf> {
    let here = PathBuf::from("configs/single-lb.toml");
    if here.is_file() {
        return Ok(here);
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/single-lb.toml");
    if tree.is_file() {
        return Ok(tree);
    }
    bail!("configs/single-lb.toml not found here or at {}; pass --config", tree.display())
}
