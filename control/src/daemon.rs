//! `xdplb run`: brings the data plane up on one interface (XDP program,
//! sockets, pinned workers), owns the VIPs, keeps real servers' MACs
//! current and published, and takes everything down again on SIGTERM or
//! SIGINT. Runs on the calling thread with a current-thread tokio runtime.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{self, Config, ConfigError};
use crate::garp::GarpSender;
use crate::health::task::{HealthReport, Probe};
use crate::health::{CheckerConfig, Transition as HealthTransition, UrlCheck};
use crate::netlink::{self, Link, NeighbourEvent, NeighbourSetup, Netlink, VipPresence};
use crate::publish::{real_server_addresses, PublishState, ServerKey};
use crate::reload::ReloadPlan;
use crate::vrrp::runner::{Effect, Runner};
use crate::vrrp::socket::VrrpSocket;

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
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
}

/// How long a clean stop waits for queued notify scripts.
const NOTIFY_GRACE: Duration = Duration::from_secs(1);

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
    let interface = config.dataplane_interface();
    if let Some(instance) = config.vrrp_instances.iter().find(|i| i.interface != interface) {
        return Err(DaemonError::Unsupported(format!(
            "{}: vrrp_instance {:?} runs on {}, but the data plane serves {interface}; xdplb \
             runs VRRP on the data-plane interface only",
            config.file(),
            instance.name,
            instance.interface
        )));
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
    /// VRRP instances; each holds its VIPs only while master.
    runners: Vec<Runner>,
    /// Sends adverts and GARPs from our own MAC.
    sender: Option<GarpSender>,
    /// Receives adverts; sends unicast ones.
    vrrp_socket: Option<VrrpSocket>,
    /// Notify scripts, run one after another off the control loop.
    notifier: Option<(mpsc::UnboundedSender<String>, JoinHandle<()>)>,
    health_tasks: Vec<JoinHandle<()>>,
    /// One probe task per checked real server.
    checks: HashMap<ServerKey, JoinHandle<()>>,
}

/// What the control loop knows about real servers and VIPs; a reload
/// carries all of it over for the servers that stay.
#[derive(Default)]
struct Plane {
    macs: HashMap<Ipv4Addr, Mac>,
    down: HashSet<ServerKey>,
    /// Backend ids, quorum states, persistence templates.
    state: PublishState,
    health_last: HashMap<ServerKey, String>,
    health_latency: HashMap<ServerKey, crate::status::HealthLatency>,
    /// VIPs we hold now: the unconditional ones, and VRRP ones while master.
    held: BTreeSet<Ipv4Addr>,
    /// Real-server addresses whose neighbour events matter.
    tracked: Vec<Ipv4Addr>,
    generation: u64,
    unresolved: Vec<Ipv4Addr>,
    reload: crate::status::ReloadStatus,
    started: Option<Instant>,
}

impl Plane {
    /// Builds and publishes the snapshot for `config`; logs quorum changes
    /// and queues their quorum_up/quorum_down commands.
    fn publish(
        &mut self,
        config: &Config,
        local_mac: Mac,
        tables: &SharedSnapshot,
        notifier: Option<&mpsc::UnboundedSender<String>>,
    ) -> Result<(), DaemonError> {
        self.generation += 1;
        let (snapshot, events) =
            self.state.build(config, &self.macs, &self.down, local_mac, self.generation)?;
        log_unresolved(&snapshot, &mut self.unresolved);
        tables.publish(snapshot);
        for event in events {
            let service = format!(
                "{} {}:{}",
                event.service.proto.name(),
                event.service.vip,
                event.service.port
            );
            match event.transition {
                crate::quorum::Transition::Gained => tracing::info!(
                    %service, live_weight = event.live_weight, threshold = event.threshold,
                    "quorum gained"
                ),
                crate::quorum::Transition::Lost => tracing::warn!(
                    %service, live_weight = event.live_weight, threshold = event.threshold,
                    "quorum lost"
                ),
            }
            if let (Some(command), Some(notifier)) = (event.command, notifier) {
                let _ = notifier.send(command);
            }
        }
        Ok(())
    }

    fn record_reload(&mut self, outcome: &Result<Vec<String>, String>) {
        let at = match self.started {
            Some(t) => format!("{:.1} s after start", t.elapsed().as_secs_f64()),
            None => "at start".to_owned(),
        };
        match outcome {
            Ok(_) => self.reload.succeeded += 1,
            Err(_) => self.reload.failed += 1,
        }
        self.reload.last =
            Some(crate::status::LastReload { at, error: outcome.as_ref().err().cloned() });
    }
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
        runners: Vec::new(),
        sender: None,
        vrrp_socket: None,
        notifier: None,
        health_tasks: Vec::new(),
        checks: HashMap::new(),
    };
    let mut config = config;
    let outcome = serve(&mut config, &mut running).await;
    let counters = shutdown(&config, &mut running).await;
    if let Some(line) = counters {
        eprintln!("xdplb: final counters: {line}");
    }
    outcome
}

async fn serve(config: &mut Config, running: &mut Running) -> Result<(), DaemonError> {
    let interface = running.link.name.clone();
    let index = running.link.index;
    let vips = config.unconditional_vips();
    let vrrp_vips: Vec<Ipv4Addr> = config
        .vrrp_instances
        .iter()
        .flat_map(|i| i.virtual_ipaddress.iter().map(|net| net.addr))
        .collect();

    // Refuse a clash before touching anything. Leftovers of ours are only
    // touched once the XDP program is attached: while another xdplb runs on
    // this interface, "leftovers" are its VIPs, and the attach refuses us.
    let existing = running.netlink.ipv4_addresses(index).await?;
    let (mut to_add, mut adopt, mut stale) = (Vec::new(), Vec::new(), Vec::new());
    for &vip in vips.iter().chain(&vrrp_vips) {
        match netlink::classify_vip(&existing, vip) {
            VipPresence::Absent if vips.contains(&vip) => to_add.push(vip),
            VipPresence::Absent => {}
            VipPresence::OursLeftover if vips.contains(&vip) => adopt.push(vip),
            VipPresence::OursLeftover => stale.push(vip),
            VipPresence::Operators { prefix_len, proto } => {
                return Err(DaemonError::VipClash { vip, interface, prefix_len, proto });
            }
        }
    }
    let primary = primary_address(&existing, &vrrp_vips, &vips).ok_or_else(|| {
        DaemonError::Unsupported(format!(
            "{interface} has no IPv4 address of its own: VRRP adverts and health probes need one"
        ))
    })?;

    let queues = queue_count(config, &running.link)?;
    let mut steering = Steering::attach(&interface, attach_mode(config))?;
    tracing::info!(interface, mode = steering.mode(), "XDP steering program attached");
    let program_id = dataplane::steer::attached_program_id(&interface);
    for vip in adopt {
        tracing::info!(%vip, interface, "adopting a VIP left by an earlier xdplb run");
        running.vips.push(vip);
    }
    // A VRRP VIP of ours left by a crash goes at once, so that this host's
    // kernel stops answering ARP for it before the election says who owns it.
    for vip in stale {
        running.netlink.remove_address(index, vip, 32).await?;
        tracing::info!(%vip, interface, "removed a VRRP VIP left by an earlier xdplb run");
    }

    let mut plane = Plane::default();
    let macs = &mut plane.macs;
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
    refresh_macs(&running.netlink, index, config, macs).await;

    plane.started = Some(Instant::now());
    // The notifier runs notify and quorum_up/quorum_down commands in order.
    running.notifier = Some(spawn_notifier());
    let tables = Arc::new(SharedSnapshot::new(Snapshot::default()));
    plane.publish(config, running.link.mac, &tables, notifier_of(running))?;

    let dp = &config.dataplane;
    let xsk_config = XskConfig {
        frame_size: dp.frame_size,
        frames: dp.umem_frames,
        ring_size: dp.ring_size,
        bind: bind_mode(config),
        busy_poll_budget: (dp.poll == config::PollMode::BusyNapi)
            .then(|| u16::try_from(dp.batch_size).unwrap_or(u16::MAX)),
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
                config::PollMode::Busy | config::PollMode::BusyNapi => PollMode::Busy,
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
    running.steering = Some(steering);
    // Only VIPs we hold are steered: VRRP VIPs join when we become master.
    plane.held = vips.iter().copied().collect();
    steer_held(config, running, &plane.held)?;

    for vip in to_add {
        running.netlink.add_vip(index, vip).await?;
        running.vips.push(vip);
        tracing::info!(%vip, interface, "VIP added");
    }

    // The sender stays with the loop: a reload starts new checkers.
    let (health_tx, mut health_rx) = mpsc::unbounded_channel::<HealthReport>();
    for key in crate::reload::checks(config).into_keys() {
        if let Some(task) = spawn_check(config, key, primary, &health_tx) {
            running.checks.insert(key, task);
        }
    }

    let now = Instant::now();
    let subnet = existing
        .iter()
        .find(|a| a.addr == primary)
        .map(|a| config::Ipv4Net { addr: a.addr, prefix_len: a.prefix_len });
    for instance in &config.vrrp_instances {
        running.runners.push(new_runner(instance, primary, subnet, &running.link, now)?);
    }
    if !running.runners.is_empty() {
        running.sender = Some(GarpSender::open(index)?);
        running.vrrp_socket = Some(VrrpSocket::open(&interface, index)?);
    }
    let (script_tx, mut script_rx) = mpsc::unbounded_channel::<(String, bool)>();
    let mut script_ok: HashMap<String, bool> = HashMap::new();
    for script in tracked_scripts(config)? {
        script_ok.insert(script.name.clone(), !script.init_fail);
        running.health_tasks.push(tokio::spawn(run_vrrp_script(script.clone(), script_tx.clone())));
    }
    drop(script_tx);
    let mut faults = vec![false; running.runners.len()];
    tracing::info!(
        interface,
        queues,
        services = config.virtual_servers.len(),
        vips = ?running.vips,
        vrrp_instances = running.runners.len(),
        "data plane ready"
    );

    crate::service::ready(&format!(
        "serving {} service(s) on {interface} with {queues} worker(s)",
        config.virtual_servers.len()
    ));
    let mut events = running.netlink.neighbour_events(index).await?;
    // systemd's watchdog (WatchdogSec): pinged from the control loop, and
    // only while the data plane can forward.
    let mut systemd_watchdog = crate::service::watchdog_interval().map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut refresh = tokio::time::interval(config.control.neighbour_refresh);
    let mut watchdog = tokio::time::interval(Duration::from_millis(250));
    plane.tracked = real_server_addresses(config);
    let mut packet = vec![0u8; 2048];
    let mut dataplane_problem: Option<Problem> = None;
    let socket_name =
        config.control.socket.clone().unwrap_or_else(|| crate::status::DEFAULT_SOCKET.to_owned());
    let control_socket = crate::status::listen(&socket_name)?;
    // `xdplb reload` requests come back to the loop, which owns the state.
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<tokio::net::UnixStream>();
    tracing::info!(socket = socket_name, "control socket listening (xdplb status)");
    let (scrape_tx, mut scrapes) = mpsc::unbounded_channel::<crate::metrics::ReportRequest>();
    if let Some(listen) = config.metrics.listen {
        let task = crate::metrics::serve(listen, scrape_tx.clone()).await.map_err(|e| {
            DaemonError::Unsupported(format!("[metrics] listen = \"{listen}\": {e}"))
        })?;
        running.health_tasks.push(task);
        tracing::info!(%listen, "Prometheus metrics on http://{listen}/metrics");
    }
    drop(scrape_tx);
    // Everything that needs more than the running set is open by now.
    match crate::privileges::drop_to_running_set() {
        Ok(kept) => tracing::info!(kept = ?kept, "capabilities dropped to the running set"),
        Err(e) => tracing::warn!("{e}; running with the capabilities it started with"),
    }
    loop {
        apply_effects(config, running, &mut plane.held).await?;
        let deadline = running.runners.iter().filter_map(Runner::deadline).min();
        let sleep =
            tokio::time::sleep_until(deadline.map_or_else(
                || tokio::time::Instant::now() + Duration::from_secs(3600),
                Into::into,
            ));
        let mut changed = false;
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()); }
            _ = sighup.recv() => {
                tracing::info!(file = config.file(), "SIGHUP: reloading the configuration");
                let outcome =
                    reload(config, running, &mut plane, &tables, &health_tx, primary).await;
                plane.record_reload(&outcome);
            }
            Some(mut stream) = reload_rx.recv() => {
                tracing::info!(file = config.file(), "xdplb reload: reloading the configuration");
                let outcome =
                    reload(config, running, &mut plane, &tables, &health_tx, primary).await;
                plane.record_reload(&outcome);
                tokio::spawn(async move {
                    crate::status::answer_reload(&mut stream, &outcome).await;
                });
            }
            Some((name, ok)) = script_rx.recv() => {
                tracing::info!(script = %name, "vrrp_script {}", if ok { "succeeds" } else { "fails" });
                script_ok.insert(name, ok);
                update_faults(config, running, &mut faults, dataplane_problem.is_some(), &script_ok).await;
            }
            received = recv_vrrp(running.vrrp_socket.as_ref(), &mut packet) => {
                let len = received?;
                let now = Instant::now();
                for runner in &mut running.runners {
                    runner.on_packet(now, &packet[..len]);
                }
            }
            _ = sleep => {
                let now = Instant::now();
                for runner in &mut running.runners {
                    runner.on_timeout(now);
                }
            }
            Some(report) = health_rx.recv() => {
                // A report from a checker a reload has just stopped is stale.
                if running.checks.contains_key(&report.key) {
                    let last = match &report.result.outcome {
                        Ok(()) => format!("ok in {:?}", report.result.latency),
                        Err(why) => format!("failed: {why}"),
                    };
                    plane.health_last.insert(report.key, last);
                    plane
                        .health_latency
                        .entry(report.key)
                        .or_default()
                        .record(report.result.latency, report.result.outcome.is_ok());
                    changed = apply_health(config, &mut plane.down, &report);
                }
            }
            event = events.next() => match event {
                Some(NeighbourEvent::Changed(n)) if plane.tracked.contains(&n.ip) => {
                    changed = update_mac(&mut plane.macs, n.ip, n.usable_mac());
                }
                Some(NeighbourEvent::Removed(ip)) if plane.tracked.contains(&ip) => {
                    changed = update_mac(&mut plane.macs, ip, None);
                }
                Some(NeighbourEvent::Overrun) => {
                    changed = refresh_macs(&running.netlink, index, config, &mut plane.macs).await;
                }
                Some(_) => {}
                None => {
                    tracing::warn!("neighbour event stream ended; reopening it");
                    events = running.netlink.neighbour_events(index).await?;
                }
            },
            _ = refresh.tick() => {
                changed = refresh_macs(&running.netlink, index, config, &mut plane.macs).await;
            }
            Some(reply) = scrapes.recv() => {
                let _ = reply.send(build_report(config, running, &tables.load_full(), &plane));
            }
            accepted = control_socket.accept() => {
                if let Ok((mut stream, _)) = accepted {
                    let status = build_report(config, running, &tables.load_full(), &plane);
                    let reloads = reload_tx.clone();
                    // Reading the request may take a while: never on the control loop.
                    tokio::spawn(async move {
                        match crate::status::read_request(&mut stream).await {
                            Some(crate::status::Request::Reload) => {
                                let _ = reloads.send(stream);
                            }
                            Some(request) => {
                                crate::status::answer(&mut stream, request, &status).await;
                            }
                            None => {}
                        }
                    });
                }
            }
            _ = tick_optional(systemd_watchdog.as_mut()) => {
                // A restart cannot bring a cable back: only a broken process
                // (dead worker, program gone) stops the pings.
                if !dataplane_problem.as_ref().is_some_and(|p| p.restart_helps) {
                    crate::service::watchdog_ping();
                }
            }
            _ = watchdog.tick() => {
                let problem = forwarding_problem(running, &interface, program_id).await;
                if let (Some(p), true) = (&problem, running.runners.is_empty()) {
                    return Err(DaemonError::Worker(p.why.clone()));
                }
                if problem != dataplane_problem {
                    match &problem {
                        Some(p) => {
                            tracing::error!("data plane cannot forward: {}", p.why);
                            crate::service::status(&format!("FAULT: {}", p.why));
                        }
                        None => {
                            tracing::info!("data plane can forward again");
                            crate::service::status("serving");
                        }
                    }
                    dataplane_problem = problem;
                }
                update_faults(config, running, &mut faults, dataplane_problem.is_some(), &script_ok).await;
            }
        }
        if changed {
            plane.publish(config, running.link.mac, &tables, notifier_of(running))?;
        }
    }
}

async fn tick_optional(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn recv_vrrp(socket: Option<&VrrpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(socket) => socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// The interface's own address that adverts and probes come from: the
/// first one that is not a VIP.
fn primary_address(
    existing: &[netlink::Address],
    vrrp_vips: &[Ipv4Addr],
    vips: &[Ipv4Addr],
) -> Option<Ipv4Addr> {
    existing.iter().map(|a| a.addr).find(|a| !vrrp_vips.contains(a) && !vips.contains(a))
}

fn new_runner(
    instance: &config::VrrpInstance,
    primary: Ipv4Addr,
    subnet: Option<config::Ipv4Net>,
    link: &Link,
    now: Instant,
) -> Result<Runner, DaemonError> {
    use crate::vrrp::packet::{Auth, Local};
    let unsupported =
        |what: String| DaemonError::Unsupported(format!("vrrp_instance {}: {what}", instance.name));
    let state = instance.state_config(primary);
    let auth = match &instance.auth_pass {
        Some(pass) => {
            Auth::pass(pass.as_bytes()).map_err(|e| unsupported(format!("auth_pass: {e}")))?
        }
        None => Auth::None,
    };
    let interval_field = state.interval_field().ok_or_else(|| {
        unsupported(format!(
            "advert_int {:?} cannot be carried by {:?}",
            instance.advert_int, state.version
        ))
    })?;
    let local = Local {
        version: state.version,
        vrid: instance.virtual_router_id,
        auth,
        interval_field,
        virtual_addresses: instance.vips(),
        subnet,
        unicast_peers: instance.unicast_peer.clone(),
    };
    let machine = crate::vrrp::Instance::new(state, now).map_err(|e| unsupported(e.to_string()))?;
    tracing::info!(
        instance = %instance.name,
        vrid = instance.virtual_router_id,
        priority = instance.priority,
        unicast = instance.is_unicast(),
        "VRRP instance starts as BACKUP"
    );
    Ok(Runner::new(instance.name.clone(), machine, local, link.mac, instance.garp_config()))
}

/// Carries out what the VRRP runners asked for: frames out, VIPs in or
/// out (address and steering together), state changes logged.
async fn apply_effects(
    config: &Config,
    running: &mut Running,
    held: &mut BTreeSet<Ipv4Addr>,
) -> Result<(), DaemonError> {
    let now = Instant::now();
    let index = running.link.index;
    for i in 0..running.runners.len() {
        let effects = running.runners[i].effects(now);
        for effect in effects {
            let runner = &running.runners[i];
            match effect {
                Effect::Send(frame) => {
                    if let Some(sender) = &running.sender {
                        if let Err(e) = sender.send(&frame) {
                            tracing::warn!(instance = runner.name(), error = %e, "sending a VRRP/GARP frame");
                        }
                    }
                }
                Effect::SendIp(dst, packet) => {
                    if let Some(socket) = &running.vrrp_socket {
                        if let Err(e) = socket.send_to(&packet, dst) {
                            tracing::warn!(instance = runner.name(), %dst, error = %e, "sending a unicast advert");
                        }
                    }
                }
                Effect::TakeVips => {
                    let vips = runner.vips().to_vec();
                    for vip in vips {
                        match running.netlink.add_vip(index, vip).await {
                            Ok(()) => {}
                            Err(e) if e.os_error() == Some(libc::EEXIST) => {}
                            Err(e) => return Err(e.into()),
                        }
                        if !running.vips.contains(&vip) {
                            running.vips.push(vip);
                        }
                        held.insert(vip);
                        tracing::info!(%vip, "VIP added (VRRP master)");
                    }
                    steer_held(config, running, held)?;
                }
                Effect::ReleaseVips => {
                    let vips = runner.vips().to_vec();
                    for vip in &vips {
                        held.remove(vip);
                    }
                    steer_held(config, running, held)?;
                    for vip in vips {
                        if let Err(e) = running.netlink.remove_address(index, vip, 32).await {
                            tracing::warn!(%vip, error = %e, "removing VIP");
                        }
                        running.vips.retain(|v| *v != vip);
                        tracing::info!(%vip, "VIP removed (no longer VRRP master)");
                    }
                }
                Effect::Changed(t) => {
                    tracing::info!(
                        "VRRP {}: {} -> {} ({:?})",
                        runner.name(),
                        t.from,
                        t.to,
                        t.reason
                    );
                    if let (Some(instance), Some(notifier)) =
                        (config.vrrp_instances.get(i), running.notifier.as_ref().map(|(tx, _)| tx))
                    {
                        for command in notify_commands(instance, t.to) {
                            let _ = notifier.send(command);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Steers exactly the services whose VIP we hold.
fn steer_held(
    config: &Config,
    running: &mut Running,
    held: &BTreeSet<Ipv4Addr>,
) -> Result<(), DaemonError> {
    let services: Vec<_> =
        config.services().map(|(key, _)| key).filter(|key| held.contains(&key.vip)).collect();
    if let Some(steering) = running.steering.as_mut() {
        steering.set_services(&services)?;
    }
    Ok(())
}

/// Why the data plane cannot forward right now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    why: String,
    /// Whether restarting the process could fix it (a dead worker, a
    /// detached program), as opposed to the outside world (a link down).
    restart_helps: bool,
}

/// Why the data plane cannot forward right now, if it cannot.
async fn forwarding_problem(
    running: &Running,
    interface: &str,
    program_id: Option<u32>,
) -> Option<Problem> {
    if let Some(dead) = running.workers.iter().find(|w| !w.is_alive()) {
        let why = format!("the worker of queue {} stopped", dead.queue());
        return Some(Problem { why, restart_helps: true });
    }
    match running.netlink.link_by_index(running.link.index).await {
        Ok(link) if !link.up || !link.running => {
            let why = format!("interface {interface} is down");
            return Some(Problem { why, restart_helps: false });
        }
        Ok(_) => {}
        Err(e) => {
            return Some(Problem {
                why: format!("interface {interface}: {e}"),
                restart_helps: false,
            })
        }
    }
    if program_id.is_some() && dataplane::steer::attached_program_id(interface) != program_id {
        let why = format!("the XDP steering program is no longer attached to {interface}");
        return Some(Problem { why, restart_helps: true });
    }
    None
}

/// Starts the probe task of one checked real server of `config`.
fn spawn_check(
    config: &Config,
    key: ServerKey,
    source: Ipv4Addr,
    reports: &mpsc::UnboundedSender<HealthReport>,
) -> Option<JoinHandle<()>> {
    let (vs, rs) = find_server(config, &key)?;
    let (probe, port, checker, bind) = if let Some(http) = &rs.http_get {
        let urls = http
            .urls
            .iter()
            .map(|u| UrlCheck {
                path: u.path.clone(),
                status_code: Some(u.status_code),
                digest: u.digest.clone(),
            })
            .collect();
        let checker = CheckerConfig {
            delay_loop: vs.delay_loop,
            retry: http.retry,
            delay_before_retry: http.delay_before_retry,
            alpha: false,
        };
        (
            Probe::Http { urls, timeout: http.connect_timeout },
            http.connect_port,
            checker,
            http.bindto,
        )
    } else {
        let tcp = rs.tcp_check.as_ref()?;
        let checker = CheckerConfig {
            delay_loop: vs.delay_loop,
            retry: tcp.retry,
            delay_before_retry: tcp.delay_before_retry,
            alpha: false,
        };
        (Probe::Tcp { timeout: tcp.connect_timeout }, tcp.connect_port, checker, tcp.bindto)
    };
    let target = SocketAddr::from((rs.ip, port));
    Some(tokio::spawn(crate::health::task::run(
        key,
        target,
        Some(bind.unwrap_or(source)),
        probe,
        checker,
        reports.clone(),
    )))
}

/// The configured server a key stands for.
fn find_server<'a>(
    config: &'a Config,
    key: &ServerKey,
) -> Option<(&'a config::VirtualServer, &'a config::RealServer)> {
    let vs = config.virtual_servers.iter().find(|vs| vs.key() == key.service)?;
    let rs = vs.real_servers.iter().find(|rs| rs.ip == key.ip && rs.port == key.port)?;
    Some((vs, rs))
}

/// Loads the configuration file again and applies it without a restart.
/// Everything that can fail without side effects (reading, validation,
/// live checks, what needs a restart, VIP clashes, the snapshot) is checked
/// before anything changes: a refused reload leaves the running state as it
/// was. Returns the changes made, one line each, or why nothing changed.
async fn reload(
    config: &mut Config,
    running: &mut Running,
    plane: &mut Plane,
    tables: &SharedSnapshot,
    health_tx: &mpsc::UnboundedSender<HealthReport>,
    primary: Ipv4Addr,
) -> Result<Vec<String>, String> {
    let refused = |why: String| {
        tracing::error!("reload refused, the running configuration is unchanged: {why}");
        crate::service::status(&format!("serving; last reload refused: {why}"));
        Err(why)
    };
    let path = std::path::PathBuf::from(config.file());
    let new = match config::load(&path) {
        Ok(new) => new,
        Err(e) => return refused(e.to_string()),
    };
    if let Err(e) = refuse_unsupported(&new) {
        return refused(e.to_string());
    }
    match config::live::InterfaceFacts::from_system() {
        Ok(facts) => {
            if let Err(e) = config::live::check(&new, &facts).and_then(|r| r.require_complete()) {
                return refused(e.to_string());
            }
        }
        Err(e) => return refused(format!("listing interfaces: {e}")),
    }
    let restart = crate::reload::restart_required(config, &new);
    if !restart.is_empty() {
        return refused(format!("needs a restart: {}", restart.join("; ")));
    }
    let plan = ReloadPlan::new(config, &new);
    let index = running.link.index;
    let existing = match running.netlink.ipv4_addresses(index).await {
        Ok(existing) => existing,
        Err(e) => return refused(format!("reading {}'s addresses: {e}", running.link.name)),
    };
    let mut adopt = Vec::new();
    for &vip in &plan.vips_added {
        match netlink::classify_vip(&existing, vip) {
            VipPresence::Absent => {}
            VipPresence::OursLeftover => adopt.push(vip),
            VipPresence::Operators { prefix_len, proto } => {
                let e = DaemonError::VipClash {
                    vip,
                    interface: running.link.name.clone(),
                    prefix_len,
                    proto,
                };
                return refused(e.to_string());
            }
        }
    }
    let mut trial = plane.state.clone();
    if let Err(e) = trial.build(&new, &plane.macs, &plane.down, running.link.mac, 0) {
        return refused(e.to_string());
    }

    // Applying. New real servers' neighbours first, so that the snapshot
    // that brings them has their MACs where the kernel knows them already.
    for &ip in &plan.neighbours_added {
        match running.netlink.ensure_managed_neighbour(index, ip).await {
            Ok(NeighbourSetup::Managed) => running.neighbours.push(ip),
            Ok(NeighbourSetup::Static(n)) => {
                if let Some(mac) = n.usable_mac() {
                    plane.macs.insert(ip, mac);
                }
            }
            Err(e) => tracing::warn!(%ip, error = %e, "could not create a managed neighbour entry"),
        }
    }
    refresh_macs(&running.netlink, index, &new, &mut plane.macs).await;
    for &key in &plan.checks_stopped {
        if let Some(task) = running.checks.remove(&key) {
            task.abort();
        }
        plane.down.remove(&key);
        plane.health_last.remove(&key);
        plane.health_latency.remove(&key);
    }
    *config = new;
    plane.tracked = real_server_addresses(config);
    let published = plane.publish(config, running.link.mac, tables, notifier_of(running));
    for &vip in &plan.vips_added {
        if adopt.contains(&vip) {
            tracing::info!(%vip, "adopting a VIP left by an earlier xdplb run");
        } else if let Err(e) = running.netlink.add_vip(index, vip).await {
            tracing::error!(%vip, error = %e, "reload: could not add the VIP");
            continue;
        } else {
            tracing::info!(%vip, "VIP added");
        }
        running.vips.push(vip);
        plane.held.insert(vip);
    }
    for vip in &plan.vips_removed {
        plane.held.remove(vip);
    }
    let steered = steer_held(config, running, &plane.held);
    for &vip in &plan.vips_removed {
        match running.netlink.remove_address(index, vip, 32).await {
            Ok(()) => tracing::info!(%vip, "VIP removed"),
            Err(e) => tracing::error!(%vip, error = %e, "reload: could not remove the VIP"),
        }
        running.vips.retain(|v| *v != vip);
    }
    for &ip in &plan.neighbours_removed {
        plane.macs.remove(&ip);
        if running.neighbours.contains(&ip) {
            if let Err(e) = running.netlink.remove_managed_neighbour(index, ip).await {
                tracing::warn!(%ip, error = %e, "could not remove our neighbour entry");
            }
            running.neighbours.retain(|n| *n != ip);
        }
    }
    for &key in &plan.checks_started {
        if let Some(task) = spawn_check(config, key, primary, health_tx) {
            running.checks.insert(key, task);
        }
    }
    if let Err(e) = published.map_err(|e| e.to_string()).and(steered.map_err(|e| e.to_string())) {
        tracing::error!("reload applied only in part: {e}");
        return Err(format!("applied only in part: {e}"));
    }
    if plan.summary.is_empty() {
        tracing::info!("reload: configuration applied (no service or weight changed)");
    }
    for line in &plan.summary {
        tracing::info!("reload: {line}");
    }
    crate::service::status("serving; configuration reloaded");
    Ok(plan.summary)
}

/// What `xdplb status` shows, from the daemon's current state.
/// The kernel's AF_XDP socket statistics, summed over the workers.
fn socket_totals(workers: &[WorkerHandle]) -> dataplane::worker::SocketStats {
    workers.iter().map(WorkerHandle::socket_stats).fold(Default::default(), |t, s| {
        dataplane::worker::SocketStats {
            rx_dropped: t.rx_dropped + s.rx_dropped,
            rx_ring_full: t.rx_ring_full + s.rx_ring_full,
            rx_invalid: t.rx_invalid + s.rx_invalid,
            tx_invalid: t.tx_invalid + s.tx_invalid,
        }
    })
}

fn notifier_of(running: &Running) -> Option<&mpsc::UnboundedSender<String>> {
    running.notifier.as_ref().map(|(tx, _)| tx)
}

fn build_report(
    config: &Config,
    running: &Running,
    snapshot: &Snapshot,
    plane: &Plane,
) -> crate::status::StatusReport {
    use crate::status::{RealServerStatus, ServiceStatus, StatusReport, VrrpStatus, WorkerStatus};
    use dataplane::tables::BackendId;
    let mut flows: HashMap<BackendId, (u64, u64)> = HashMap::new();
    let mut traffic: HashMap<BackendId, (u64, u64)> = HashMap::new();
    let mut workers = CounterView::default();
    let mut worker_stats = Vec::new();
    for (i, worker) in running.workers.iter().enumerate() {
        workers = workers.sum(worker.counters());
        for b in worker.census().iter() {
            let entry = flows.entry(b.backend).or_default();
            entry.0 += u64::from(b.active);
            entry.1 += u64::from(b.inactive);
        }
        for t in worker.backend_traffic() {
            let entry = traffic.entry(t.backend).or_default();
            entry.0 += t.packets;
            entry.1 += t.bytes;
        }
        let (busy, total) = worker.busy();
        worker_stats.push(WorkerStatus {
            queue: worker.queue(),
            core: config.dataplane.cores.as_ref().and_then(|c| c.get(i % c.len().max(1))).copied(),
            busy_seconds: busy.as_secs_f64(),
            total_seconds: total.as_secs_f64(),
        });
    }
    // One line of `ipvsadm -Ln` for a server of ours.
    let line = |key: &ServerKey, configured_weight: u32, checked: bool| -> RealServerStatus {
        let id = plane.state.ids.get(key);
        let backend = id.and_then(|id| snapshot.backend(id));
        let (active_conn, inact_conn) =
            id.and_then(|id| flows.get(&id).copied()).unwrap_or_default();
        let (packets, bytes) = id.and_then(|id| traffic.get(&id).copied()).unwrap_or_default();
        RealServerStatus {
            address: key.ip.to_string(),
            port: key.port,
            configured_weight,
            weight: backend.map(|b| b.schedulable_weight()),
            mac: backend.and_then(|b| b.mac).map(fmt_mac),
            active_conn,
            inact_conn,
            health: match (checked, plane.down.contains(key)) {
                (false, _) => "unchecked",
                (true, true) => "down",
                (true, false) => "up",
            }
            .to_owned(),
            last_check: plane.health_last.get(key).cloned(),
            packets,
            bytes,
            health_latency: plane.health_latency.get(key).cloned().unwrap_or_default(),
        }
    };
    let services = config
        .virtual_servers
        .iter()
        .map(|vs| {
            let mut service = ServiceStatus {
                protocol: vs.protocol.name().to_owned(),
                vip: vs.vip.to_string(),
                port: vs.port,
                scheduler: config::sched_name(vs.lvs_sched).to_owned(),
                active: plane.held.contains(&vs.vip),
                real_servers: vs
                    .real_servers
                    .iter()
                    .map(|rs| {
                        let checked = rs.http_get.is_some() || rs.tcp_check.is_some();
                        line(&ServerKey::of(vs, rs), rs.weight, checked)
                    })
                    .collect(),
                sorry_server: ServerKey::sorry_of(vs).map(|k| line(&k, 1, false)),
                ..Default::default()
            };
            if let Some(decision) = plane.state.quorum(&vs.key()) {
                service.set_quorum(vs, decision);
            }
            service.fill_totals();
            service
        })
        .collect();
    let vrrp = running
        .runners
        .iter()
        .zip(&config.vrrp_instances)
        .map(|(runner, instance)| VrrpStatus {
            name: runner.name().to_owned(),
            state: runner.state().name().to_owned(),
            priority: instance.priority,
            vips: runner.vips().iter().map(ToString::to_string).collect(),
            counters: runner.counters().named(),
        })
        .collect();
    let mut counters: Vec<(String, u64)> = Vec::new();
    if let Some(Ok(steer)) = running.steering.as_ref().map(Steering::counters) {
        counters.extend(
            SteerStat::ALL.iter().map(|s| (format!("steer.{}", s.name()), steer[*s as usize])),
        );
    }
    counters.extend(workers.named().map(|(name, value)| (format!("worker.{name}"), value)));
    counters.extend(
        socket_totals(&running.workers)
            .named()
            .iter()
            .map(|(name, value)| (format!("xsk.{name}"), *value)),
    );
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interface: running.link.name.clone(),
        xdp_mode: running.steering.as_ref().map_or("detached", Steering::mode).to_owned(),
        workers: running.workers.len(),
        flow_table_size: config.dataplane.flow_table_size,
        services,
        vrrp,
        counters,
        worker_stats,
        reload: plane.reload.clone(),
    }
}

/// Takes a probe report; returns whether the snapshot must change.
fn apply_health(config: &Config, down: &mut HashSet<ServerKey>, report: &HealthReport) -> bool {
    let Some((_, rs)) = find_server(config, &report.key) else {
        return false;
    };
    match (report.transition, &report.result.outcome) {
        (Some(HealthTransition::Down), Err(why)) => {
            tracing::warn!(
                server = %rs.ip,
                inhibit_on_failure = rs.inhibit_on_failure,
                "health check failed: {why}; {}",
                if rs.inhibit_on_failure { "weight 0, existing flows drain" } else { "removed, its flows end" }
            );
            down.insert(report.key)
        }
        (Some(HealthTransition::Down), Ok(())) => down.insert(report.key),
        (Some(HealthTransition::Up), _) => {
            tracing::info!(server = %rs.ip, weight = rs.weight, "health check passes again; back in service");
            down.remove(&report.key)
        }
        (None, Err(why)) => {
            tracing::debug!(server = %rs.ip, "health check attempt failed: {why}");
            false
        }
        (None, Ok(())) => false,
    }
}

/// Puts each VRRP instance in or out of FAULT: the data plane cannot
/// forward, one of its `track_interface`s is down, or one of its
/// `track_script`s fails.
async fn update_faults(
    config: &Config,
    running: &mut Running,
    faults: &mut [bool],
    dataplane_down: bool,
    script_ok: &HashMap<String, bool>,
) {
    let now = Instant::now();
    for (i, instance) in config.vrrp_instances.iter().enumerate() {
        let mut reason = dataplane_down.then(|| "the data plane cannot forward".to_owned());
        for name in &instance.track_interface {
            if reason.is_none() {
                match running.netlink.link_by_name(name).await {
                    Ok(link) if link.up && link.running => {}
                    Ok(_) => reason = Some(format!("tracked interface {name} is down")),
                    Err(e) => reason = Some(format!("tracked interface {name}: {e}")),
                }
            }
        }
        if reason.is_none() {
            if let Some(name) =
                instance.track_script.iter().find(|n| !script_ok.get(*n).copied().unwrap_or(true))
            {
                reason = Some(format!("tracked script {name} fails"));
            }
        }
        let fault = reason.is_some();
        if let (Some(was), Some(runner)) = (faults.get_mut(i), running.runners.get_mut(i)) {
            if *was != fault {
                match &reason {
                    Some(why) => tracing::warn!(instance = %instance.name, "entering FAULT: {why}"),
                    None => tracing::info!(instance = %instance.name, "leaving FAULT"),
                }
                runner.set_fault(now, fault);
                *was = fault;
            }
        }
    }
}

/// The vrrp_scripts some instance tracks. Priority weights are not
/// supported yet: a script must have weight 0 (failure means FAULT).
fn tracked_scripts(config: &Config) -> Result<Vec<&config::VrrpScript>, DaemonError> {
    let mut out: Vec<&config::VrrpScript> = Vec::new();
    for instance in &config.vrrp_instances {
        for script in config.track_scripts(instance) {
            if script.weight != 0 {
                return Err(DaemonError::Unsupported(format!(
                    "{}: vrrp_script {:?} has weight {}: priority adjustment by scripts is not \
                     supported yet; use weight 0 (a failing script puts the instance in FAULT)",
                    config.file(),
                    script.name,
                    script.weight
                )));
            }
            if !out.iter().any(|s| s.name == script.name) {
                out.push(script);
            }
        }
    }
    Ok(out)
}

/// Runs one vrrp_script every `interval` (bounded by `timeout`) and reports
/// its state after `rise` successes or `fall` failures in a row.
async fn run_vrrp_script(
    script: config::VrrpScript,
    reports: mpsc::UnboundedSender<(String, bool)>,
) {
    let mut ok = !script.init_fail;
    let (mut successes, mut failures) = (0u32, 0u32);
    let mut tick = tokio::time::interval(script.interval);
    loop {
        tick.tick().await;
        let mut command = tokio::process::Command::new("/bin/sh");
        command.arg("-c").arg(&script.script).kill_on_drop(true);
        let passed = match tokio::time::timeout(script.timeout, command.status()).await {
            Ok(Ok(status)) => status.success(),
            Ok(Err(e)) => {
                tracing::warn!(script = %script.name, error = %e, "cannot run vrrp_script");
                false
            }
            Err(_) => false,
        };
        if passed {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        let now_ok = if ok { failures < script.fall } else { successes >= script.rise };
        if now_ok != ok {
            ok = now_ok;
            if reports.send((script.name.clone(), ok)).is_err() {
                return;
            }
        }
    }
}

/// The notify commands for entering `state`, in keepalived's order: the
/// state's own script, then the generic `notify` with its arguments.
fn notify_commands(instance: &config::VrrpInstance, state: crate::vrrp::State) -> Vec<String> {
    let mut out: Vec<String> =
        instance.notify_script(state).map(str::to_owned).into_iter().collect();
    if let Some(generic) = &instance.notify {
        if state != crate::vrrp::State::Init {
            // keepalived.conf(5): "MASTER"|"BACKUP"|"FAULT"|"STOP"|"DELETED".
            let word = match state {
                crate::vrrp::State::Stopped => "STOP",
                other => other.name(),
            };
            out.push(format!("{generic} INSTANCE {} {word} {}", instance.name, instance.priority));
        }
    }
    out
}

/// Runs notify commands one after another with `/bin/sh -c`, off the
/// control loop so that a slow script never delays VRRP.
fn spawn_notifier() -> (mpsc::UnboundedSender<String>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        while let Some(command) = rx.recv().await {
            match tokio::process::Command::new("/bin/sh").arg("-c").arg(&command).status().await {
                Ok(status) if status.success() => tracing::info!(%command, "notify script ran"),
                Ok(status) => tracing::warn!(%command, %status, "notify script failed"),
                Err(e) => tracing::warn!(%command, error = %e, "cannot run notify script"),
            }
        }
    });
    (tx, task)
}

/// Undoes what `serve` did, in reverse: VRRP instances stop (a priority-0
/// advert from a master), VIPs off the interface (so the kernel stops
/// answering ARP for them), workers stopped and joined, the XDP program
/// detached, our neighbour entries removed. Returns the final counters as
/// one `key=value` line.
async fn shutdown(config: &Config, running: &mut Running) -> Option<String> {
    crate::service::stopping();
    for task in std::mem::take(&mut running.health_tasks) {
        task.abort();
    }
    for (_, task) in std::mem::take(&mut running.checks) {
        task.abort();
    }
    let now = Instant::now();
    for runner in &mut running.runners {
        runner.shutdown(now);
    }
    let mut held = BTreeSet::new();
    if let Err(e) = apply_effects(config, running, &mut held).await {
        tracing::error!(error = %e, "stopping VRRP");
    }
    if let Some((queue, task)) = running.notifier.take() {
        drop(queue);
        // Let notify_stop (and anything queued before it) run, within reason.
        if tokio::time::timeout(NOTIFY_GRACE, task).await.is_err() {
            tracing::warn!("notify scripts still running at exit; not waiting for them");
        }
    }
    let index = running.link.index;
    for vip in std::mem::take(&mut running.vips) {
        match running.netlink.remove_address(index, vip, 32).await {
            Ok(()) => tracing::info!(%vip, "VIP removed"),
            Err(e) => tracing::error!(%vip, error = %e, "could not remove VIP"),
        }
    }
    running.stop.store(true, Ordering::Relaxed);
    let mut workers = std::mem::take(&mut running.workers);
    for handle in &mut workers {
        if let Err(e) = handle.join() {
            tracing::error!("{e}");
        }
    }
    // Read after the join: a worker publishes its last batch on the way out.
    let worker_totals = workers.iter().fold(CounterView::default(), |t, w| t.sum(w.counters()));
    let socket_totals = socket_totals(&workers);
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
    fields.extend(socket_totals.named().iter().map(|(name, value)| format!("xsk.{name}={value}")));
    let mut vrrp = crate::vrrp::runner::RunnerCounters::default();
    for runner in &running.runners {
        let c = runner.counters();
        vrrp.adverts_sent += c.adverts_sent;
        vrrp.adverts_received += c.adverts_received;
        vrrp.garps_sent += c.garps_sent;
        vrrp.other_vrid += c.other_vrid;
        for (total, n) in vrrp.dropped.iter_mut().zip(c.dropped.iter()) {
            *total += n;
        }
    }
    for (name, value) in vrrp.named() {
        match name.as_str() {
            "garps_sent" => fields.push(format!("garp.sent={value}")),
            _ => fields.push(format!("vrrp.{name}={value}")),
        }
    }
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
