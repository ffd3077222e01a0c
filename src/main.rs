//! `xdplb`: the command line. Parses arguments, sets up logging and hands
//! over to the control crate; nothing else lives here.

use std::io::IsTerminal;
use std::net::Ipv4Addr;
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
    /// stop it cleanly (VIPs removed, program detached); SIGHUP reloads the
    /// file without losing a flow (see `xdplb reload`). Once started it keeps
    /// only CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF. Logs go to stderr; set
    /// XDPLB_LOG (e.g. `debug`, `xdplb_control=trace`) for more.
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
    /// Show the running appliance, like `ipvsadm -Ln` plus VRRP and health.
    ///
    /// Virtual services and real servers (Forward, Weight, ActiveConn,
    /// InActConn), each VRRP instance's state and priority, each real
    /// server's health and last check, and the counters by reason. Talks to
    /// the `xdplb run` of this network namespace over its control socket
    /// (root only).
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// The control socket (`[control] socket`); `@NAME` is abstract.
        #[arg(long, value_name = "PATH", default_value = control::status::DEFAULT_SOCKET)]
        socket: String,
    },
    /// Re-read the running appliance's configuration file and apply it.
    ///
    /// The file is checked completely first; if anything is wrong, or it
    /// changes what needs a restart ([dataplane], vrrp_instance, …), nothing
    /// changes and the reason is printed (exit status 1). Otherwise weights,
    /// real servers, services and health checks change without losing a
    /// flow to a server that stays, and the changes are printed. Same as
    /// SIGHUP to `xdplb run`, but with the answer.
    Reload {
        /// The control socket (`[control] socket`); `@NAME` is abstract.
        #[arg(long, value_name = "PATH", default_value = control::status::DEFAULT_SOCKET)]
        socket: String,
    },
    /// Convert a keepalived.conf (with its includes) to xdplb's TOML.
    ///
    /// The TOML goes to stdout; every line that is not carried over is named
    /// on stderr as `FILE:LINE: keyword: reason` (lb_kind NAT/TUN, SSL_GET,
    /// MISC_CHECK, …). Exit status 0: complete; 1: something that
    /// changes behaviour was not carried; 2: the file could not be read.
    ImportKeepalived {
        /// keepalived.conf (includes are followed as keepalived does).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// keepalived's `-i ID`: keep `@ID` lines, drop other `@…` lines.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// The data-plane interface, when no vrrp_instance names one.
        #[arg(long, value_name = "IF")]
        interface: Option<String>,
    },
    /// Prepare (or restore) this host as a real server behind a DR director.
    ///
    /// `setup` raises `arp_ignore`/`arp_announce` first and then puts each VIP
    /// on `lo`, so the server accepts VIP traffic but never answers ARP for
    /// it; `teardown` removes those VIPs and restores the sysctls it changed.
    /// Both are idempotent.
    Realserver {
        #[command(subcommand)]
        action: RealserverAction,
    },
}

#[derive(Debug, Subcommand)]
enum RealserverAction {
    /// Put the VIPs on lo and set arp_ignore=1, arp_announce=2.
    Setup {
        /// A virtual IP the director forwards to this host (repeat for more).
        #[arg(long = "vip", value_name = "IP", required = true)]
        vips: Vec<Ipv4Addr>,
    },
    /// Undo what setup did.
    Teardown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { file } => check_config(file),
        Command::Realserver { action } => realserver(action),
        Command::Status { json, socket } => control::status::query(&socket, json)
            .map(|text| {
                print!("{text}");
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
        Command::Reload { socket } => control::status::reload(&socket)
            .map(|text| {
                print!("{text}");
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
        Command::ImportKeepalived { file, id, interface } => import_keepalived(file, id, interface),
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // The journal stamps every line itself.
    if control::service::logs_to_journal() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn import_keepalived(
    file: PathBuf,
    config_id: Option<String>,
    dataplane_interface: Option<String>,
) -> anyhow::Result<ExitCode> {
    let options = control::import::ImportOptions { config_id, dataplane_interface };
    match control::import::import_with(&file, &options) {
        Ok(report) => {
            print!("{}", report.toml);
            for note in &report.notes {
                eprintln!("{note}");
            }
            Ok(ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1)))
        }
        Err(e) => {
            eprintln!("xdplb: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn realserver(action: RealserverAction) -> anyhow::Result<ExitCode> {
    let report = match action {
        RealserverAction::Setup { vips } => control::realserver::setup(&vips)?,
        RealserverAction::Teardown => control::realserver::teardown()?,
    };
    print!("{report}");
    Ok(ExitCode::SUCCESS)
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
