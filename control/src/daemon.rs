//! `xdplb run`: brings the data plane up on one interface (XDP program,
//! sockets, pinned workers), owns the VIPs, keeps real servers' MACs
//! current and published, and takes everything down again on SIGTERM or
//! SIGINT. Runs on the calling thread with a current-thread tokio runtime.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::counters::CounterView;
use dataplane::flow::{random_seed, Timeouts};
use dataplane::pipeline::Pipeline;
use dataplane::steer::{AttachMode, Steering};
use dataplane::tables::{Mac, SharedSnapshot, Snapshot};
use dataplane::verdict::SteerStat;
use dataplane::worker::{self, PollMode, WorkerConfig, WorkerHandle};
use dataplane::xsk::{BindMode, Xsk, XskConfig};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Config, ConfigError};
use crate::netlink::{self, Link, NeighbourEvent, NeighbourSetup, Netlink, VipPresence};
use crate::publish::{build_snapshot, real_server_addresses};

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Netlink(#[from] netlink::NetlinkError),
    #[error(transparent)]
    Steer(#[from] dataplane::steer::SteerError),
    #[error(transparent)]
    Xsk(#[from] dataplane::xsk::XskError),
    #[error(transparent)]
    Snapshot(#[from] dataplane::tables::SnapshotError),
    #[error("interface {0} is down; bring it up first (ip link set dev {0} up)")]
    InterfaceDown(String),
    #[error(
        "[dataplane] queues = {requested}, but {interface} has only {available} RX queue(s); \
         raise them with `ethtool -L {interface} combined {requested}` (or rx) or lower `queues`"
    )]
    TooManyQueues { interface: String, requested: u32, available: u32 },
    #[error(
        "VIP {vip} is already configured on {interface} as {vip}/{prefix_len} (proto {proto}) by \
         someone else; xdplb only takes over addresses it added itself: remove it \
         (ip addr del {vip}/{prefix_len} dev {interface}) or choose another VIP"
    )]
    VipClash { vip: Ipv4Addr, interface: String, prefix_len: u8, proto: u8 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Worker(String),
}

/// Runs the appliance until SIGTERM/SIGINT. `config` must already be loaded.
pub fn run(config: Config) -> Result<(), DaemonError> {
    refuse_unsupported(&config)?;
    let facts = config::live::InterfaceFacts::from_system()
        .map_err(|e| DaemonError::Unsupported(format!("listing interfaces: {e}")))?;
    config::live::check(&config, &facts)?.require_complete()?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async_run(config))
}

fn refuse_unsupported(config: &Config) -> Result<(), DaemonError> {
    if let Some(instance) = config.vrrp_instances.first() {
        return Err(DaemonError::Unsupported(format!(
            "{}: vrrp_instance {:?}: VRRP is not supported by `xdplb run` yet (it arrives with \
             the control plane); until then run a configuration without vrrp_instance, whose \
             VIPs xdplb owns unconditionally (see configs/single-lb.toml)",
            config.file(),
            instance.name
        )));
    }
    let checked = config
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .any(|rs| rs.http_get.is_some() || rs.tcp_check.is_some());
    if checked {
        tracing::warn!(
            "health checks (http_get/tcp_check) are configured but not run yet: every real \
             server is treated as healthy"
        );
    }
    Ok(())
}

/// Everything that must be undone on the way out, in the order it is undone.
struct Running {
    netlink: Netlink,
    link: Link,
    /// VIPs on the interface that are ours to remove (added or adopted).
    vips: Vec<Ipv4Addr>,
    /// Managed neighbour entries we created.
    neighbours: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
    workers: Vec<WorkerHandle>,
    steering: Option<Steering>,
}

async fn async_run(config: Config) -> Result<(), DaemonError> {
    let netlink = Netlink::connect().await?;
    let interface = config.dataplane_interface().to_owned();
    let link = netlink.link_by_name(&interface).await?;
    if !link.up {
        return Err(DaemonError::InterfaceDown(interface));
    }
    let mut running = Running {
        netlink,
        link,
        vips: Vec::new(),
        neighbours: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        workers: Vec::new(),
        steering: None,
    };
    let outcome = serve(&config, &mut running).await;
    let counters = shutdown(&mut running).await;
    if let Some(line) = counters {
        eprintln!("xdplb: final counters: {line}");
    }
    outcome
}

async fn serve(config: &Config, running: &mut Running) -> Result<(), DaemonError> {
    let interface = running.link.name.clone();
    let index = running.link.index;
    let vips = config.unconditional_vips();

    // Refuse a clash before touching anything.
    let existing = running.netlink.ipv4_addresses(index).await?;
    let mut to_add = Vec::new();
    for &vip in &vips {
        match netlink::classify_vip(&existing, vip) {
            VipPresence::Absent => to_add.push(vip),
            VipPresence::OursLeftover => {
                tracing::info!(%vip, interface, "adopting a VIP left by an earlier xdplb run");
                running.vips.push(vip);
            }
            VipPresence::Operators { prefix_len, proto } => {
                return Err(DaemonError::VipClash { vip, interface, prefix_len, proto });
            }
        }
    }

    let queues = queue_count(config, &running.link)?;
    let mut steering = Steering::attach(&interface, attach_mode(config))?;
    tracing::info!(interface, mode = steering.mode(), "XDP steering program attached");

    let mut macs = HashMap::new();
    for ip in real_server_addresses(config) {
        match running.netlink.ensure_managed_neighbour(index, ip).await {
            Ok(NeighbourSetup::Managed) => running.neighbours.push(ip),
            Ok(NeighbourSetup::Static(n)) => {
                tracing::info!(%ip, "real server has a static neighbour entry; using it as is");
                if let Some(mac) = n.usable_mac() {
                    macs.insert(ip, mac);
                }
            }
            Err(e) => tracing::warn!(%ip, error = %e, "could not create a managed neighbour entry"),
        }
    }
    refresh_macs(&running.netlink, index, config, &mut macs).await;

    let mut generation = 1;
    let tables =
        Arc::new(SharedSnapshot::new(build_snapshot(config, &macs, running.link.mac, generation)?));
    log_unresolved(&tables.load_full(), &mut Vec::new());

    let dp = &config.dataplane;
    let xsk_config = XskConfig {
        frame_size: dp.frame_size,
        frames: dp.umem_frames,
        ring_size: dp.ring_size,
        bind: bind_mode(config),
    };
    let timeouts = Timeouts {
        tcp: secs(dp.tcp_timeout),
        tcp_fin: secs(dp.tcpfin_timeout),
        udp: secs(dp.udp_timeout),
    };
    for queue in 0..queues {
        let xsk = Xsk::open(&interface, queue, &xsk_config, dp.batch_size as usize)?;
        steering.register_socket(queue, &xsk)?;
        let core = dp.cores.as_ref().and_then(|c| c.get(queue as usize % c.len().max(1))).copied();
        let worker_config = WorkerConfig {
            core,
            poll: match dp.poll {
                config::PollMode::Adaptive => PollMode::Adaptive,
                config::PollMode::Busy => PollMode::Busy,
            },
            expiry_per_batch: 64,
        };
        let bound = if xsk.zero_copy() { "zero-copy" } else { "copy" };
        let pipeline = Pipeline::new(dp.flow_table_size as usize, timeouts, random_seed());
        let handle = worker::spawn(
            xsk,
            pipeline,
            Arc::clone(&tables),
            worker_config,
            Arc::clone(&running.stop),
        )?;
        tracing::info!(queue, bind = bound, core = ?core, "worker started");
        running.workers.push(handle);
    }
    let services: Vec<_> = config.services().map(|(key, _)| key).collect();
    steering.set_services(&services)?;
    running.steering = Some(steering);

    for vip in to_add {
        running.netlink.add_vip(index, vip).await?;
        running.vips.push(vip);
        tracing::info!(%vip, interface, "VIP added");
    }
    tracing::info!(
        interface,
        queues,
        services = services.len(),
        vips = ?running.vips,
        "data plane ready"
    );

    let mut events = running.netlink.neighbour_events(index).await?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut refresh = tokio::time::interval(config.control.neighbour_refresh);
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    let mut unresolved = Vec::new();
    let tracked = real_server_addresses(config);
    loop {
        let mut changed = false;
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()); }
            _ = sighup.recv() => {
                tracing::warn!("SIGHUP: configuration reload is not implemented yet; ignoring it");
            }
            event = events.next() => match event {
                Some(NeighbourEvent::Changed(n)) if tracked.contains(&n.ip) => {
                    changed = update_mac(&mut macs, n.ip, n.usable_mac());
                }
                Some(NeighbourEvent::Removed(ip)) if tracked.contains(&ip) => {
                    changed = update_mac(&mut macs, ip, None);
                }
                Some(NeighbourEvent::Overrun) => {
                    changed = refresh_macs(&running.netlink, index, config, &mut macs).await;
                }
                Some(_) => {}
                None => {
                    tracing::warn!("neighbour event stream ended; reopening it");
                    events = running.netlink.neighbour_events(index).await?;
                }
            },
            _ = refresh.tick() => {
                changed = refresh_macs(&running.netlink, index, config, &mut macs).await;
            }
            _ = watchdog.tick() => {
                if let Some(dead) = running.workers.iter().find(|w| !w.is_alive()) {
                    return Err(DaemonError::Worker(format!(
                        "the worker of queue {} stopped unexpectedly", dead.queue()
                    )));
                }
            }
        }
        if changed {
            generation += 1;
            let snapshot = build_snapshot(config, &macs, running.link.mac, generation)?;
            log_unresolved(&snapshot, &mut unresolved);
            tables.publish(snapshot);
        }
    }
}

/// Undoes what `serve` did, in reverse: VIPs off the interface first (so the
/// kernel stops answering ARP for them), workers stopped and joined, the
/// XDP program detached, our neighbour entries removed. Returns the final
/// counters as one `key=value` line.
async fn shutdown(running: &mut Running) -> Option<String> {
    let index = running.link.index;
    for vip in std::mem::take(&mut running.vips) {
        match running.netlink.remove_address(index, vip, 32).await {
            Ok(()) => tracing::info!(%vip, "VIP removed"),
            Err(e) => tracing::error!(%vip, error = %e, "could not remove VIP"),
        }
    }
    running.stop.store(true, Ordering::Relaxed);
    let mut worker_totals = CounterView::default();
    for handle in std::mem::take(&mut running.workers) {
        worker_totals = worker_totals.sum(handle.counters());
        if let Err(e) = handle.join() {
            tracing::error!("{e}");
        }
    }
    let steer_totals = running.steering.as_ref().map(|s| s.counters());
    if running.steering.take().is_some() {
        tracing::info!("XDP steering program detached");
    }
    for ip in std::mem::take(&mut running.neighbours) {
        if let Err(e) = running.netlink.remove_managed_neighbour(index, ip).await {
            tracing::warn!(%ip, error = %e, "could not remove our neighbour entry");
        }
    }
    let steer_totals = match steer_totals? {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the XDP program's counters");
            [0; SteerStat::COUNT]
        }
    };
    let mut fields: Vec<String> = SteerStat::ALL
        .iter()
        .map(|s| format!("steer.{}={}", s.name(), steer_totals[*s as usize]))
        .collect();
    fields.extend(worker_totals.named().map(|(name, value)| format!("worker.{name}={value}")));
    Some(fields.join(" "))
}

fn update_mac(macs: &mut HashMap<Ipv4Addr, Mac>, ip: Ipv4Addr, mac: Option<Mac>) -> bool {
    let before = macs.get(&ip).copied();
    match mac {
        Some(m) => macs.insert(ip, m),
        None => macs.remove(&ip),
    };
    if before != mac {
        tracing::info!(%ip, mac = ?mac.map(fmt_mac), "real server's MAC changed");
    }
    before != mac
}

/// Re-reads every real server's neighbour entry; returns whether any MAC changed.
async fn refresh_macs(
    netlink: &Netlink,
    index: u32,
    config: &Config,
    macs: &mut HashMap<Ipv4Addr, Mac>,
) -> bool {
    let mut changed = false;
    for ip in real_server_addresses(config) {
        match netlink.neighbour(index, ip).await {
            Ok(entry) => changed |= update_mac(macs, ip, entry.and_then(|n| n.usable_mac())),
            Err(e) => tracing::warn!(%ip, error = %e, "reading the neighbour table"),
        }
    }
    changed
}

/// Logs, once per change, which real servers get no new flows for lack of a MAC.
fn log_unresolved(snapshot: &Snapshot, reported: &mut Vec<Ipv4Addr>) {
    let now: Vec<Ipv4Addr> =
        snapshot.backends().filter(|b| b.mac.is_none()).map(|b| b.addr).collect();
    for ip in now.iter().filter(|ip| !reported.contains(ip)) {
        tracing::warn!(
            %ip,
            "real server has no MAC yet (not in the neighbour table or not reachable): it gets \
             no new flows until it resolves"
        );
    }
    for ip in reported.iter().filter(|ip| !now.contains(ip)) {
        tracing::info!(%ip, "real server's MAC resolved: it takes new flows");
    }
    *reported = now;
}

fn queue_count(config: &Config, link: &Link) -> Result<u32, DaemonError> {
    let available = active_rx_queues(link).max(1);
    match config.dataplane.queues {
        None => Ok(available),
        Some(requested) if requested > available => {
            Err(DaemonError::TooManyQueues { interface: link.name.clone(), requested, available })
        }
        Some(requested) => Ok(requested),
    }
}

/// The RX queues in use (`ethtool -l`'s "current"), which sysfs lists; the
/// netlink count is the allocated maximum. sysfs describes the namespace it
/// was mounted in, so it is trusted only when its ifindex matches ours.
fn active_rx_queues(link: &Link) -> u32 {
    let dir = std::path::Path::new("/sys/class/net").join(&link.name);
    let same_device = std::fs::read_to_string(dir.join("ifindex"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(link.index);
    let listed = std::fs::read_dir(dir.join("queues")).ok().map(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count()
    });
    match listed {
        Some(n) if same_device && n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
        _ => link.rx_queues,
    }
}

fn attach_mode(config: &Config) -> AttachMode {
    match config.dataplane.xdp_mode {
        config::XdpMode::Auto => AttachMode::Auto,
        config::XdpMode::Native => AttachMode::Native,
        config::XdpMode::Generic => AttachMode::Generic,
    }
}

fn bind_mode(config: &Config) -> BindMode {
    match config.dataplane.bind_mode {
        config::BindMode::Auto => BindMode::Auto,
        config::BindMode::Copy => BindMode::Copy,
        config::BindMode::ZeroCopy => BindMode::ZeroCopy,
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn fmt_mac(mac: Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
