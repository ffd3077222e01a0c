//! `xdplb`: the command line. Parses arguments, sets up logging and hands
//! over to the control crate; nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// xdplb — an AF_XDP load balancer that forwards by direct server return
/// (like LVS/IPVS in DR mode), configured with keepalived's names in TOML.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance in the foreground.
    ///
    /// Attaches the XDP steering program to the data-plane interface, starts
    /// one pinned worker per RX queue, adds the VIPs it owns and forwards
    /// their traffic to the real servers by MAC rewrite. SIGTERM or SIGINT
    /// stop it cleanly (VIPs removed, program detached); SIGHUP is logged
    /// and ignored until reload exists. Logs go to stderr; set XDPLB_LOG
    /// (e.g. `debug`, `xdplb_control=trace`) for more.
    Run {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and print the effective configuration.
    ///
    /// Every default is filled in. Errors are printed as `FILE:LINE: reason`
    /// and exit with status 1. Checks against the host (the interface exists,
    /// real servers are on-link) run when the interface exists in this
    /// network namespace; the ones skipped are listed.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { file } => check_config(file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdplb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XDPLB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = control::config::load(&path)?;
    control::daemon::run(config).with_context(|| format!("running with {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = control::config::load(&path)?;
    let facts = control::config::live::InterfaceFacts::from_system()
        .context("listing this namespace's interfaces")?;
    let report = control::config::live::check(&config, &facts)?;
    print!("{}", config.to_toml());
    for warning in config.warnings() {
        eprintln!("xdplb: warning: {warning}");
    }
    for skipped in &report.skipped {
        eprintln!("xdplb: skipped live check: {skipped}");
    }
    Ok(ExitCode::SUCCESS)
}
