//! The seed's lab (DESIGN.md, "Test topology") in network namespaces: a pc
//! behind a router, and a bridged segment with two load balancers and two
//! web servers. Every lab has its own namespace names and temp directory,
//! and tears everything down when dropped, also when a test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use dataplane::tables::Mac;

use crate::capture::Capture;
use crate::cmd;
use crate::config::SingleLb;
use crate::http::{self, HttpResponse, HttpStream, ManyResults, Traffic};
use crate::inject::PacketSocket;
use crate::netns::{self, NetNsGuard};
use crate::process::{ChildGuard, Registry, XdplbProcess};
use crate::wait::wait_until;

/// The seed's VIP.
pub const DEFAULT_VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
/// The router's address on the pc's side, the pc's default gateway.
pub const ROUTER_PC_SIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 1);
/// The router's MAC on the pc's side (its eth1).
pub const ROUTER_PC_SIDE_MAC: Mac = [0x02, 0x00, 0x00, 0x14, 0x00, 0x01];
/// The segment's prefix length (and the pc link's).
pub const PREFIX_LEN: u8 = 24;
/// The web servers' script, written into each lab's directory.
const WEBSERVER_PY: &str = include_str!("../webserver.py");
/// How often the lab looks again while waiting for something.
pub const POLL: Duration = Duration::from_millis(50);

/// Namespace names are `xl<pid>-<n>-<host>`: short, unique per process and
/// lab, and the PID tells whether a leftover one's owner is still alive.
const NETNS_PREFIX: &str = "xl";

/// Every lab in this process gets the next number, so names never repeat.
static LAB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A machine of the seed's lab; each is a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// The client, 192.168.20.10, behind the router.
    Pc,
    /// The seed's Cisco: eth1 192.168.20.1 to the pc, eth0 192.168.10.1 on the segment.
    Router,
    /// Load balancer 1, 192.168.10.101.
    Lb1,
    /// Load balancer 2, 192.168.10.102.
    Lb2,
    /// Web server 1, 192.168.10.103.
    Web1,
    /// Web server 2, 192.168.10.104.
    Web2,
}

impl Host {
    /// Every host.
    pub const ALL: [Host; 6] =
        [Host::Pc, Host::Router, Host::Lb1, Host::Lb2, Host::Web1, Host::Web2];
    /// The hosts with an eth0 on the bridged segment.
    pub const SEGMENT: [Host; 5] = [Host::Router, Host::Lb1, Host::Lb2, Host::Web1, Host::Web2];
    /// The web servers.
    pub const WEB: [Host; 2] = [Host::Web1, Host::Web2];

    /// The short name: `pc`, `router`, `lb1` …, also what a web server answers.
    pub const fn name(self) -> &'static str {
        match self {
            Host::Pc => "pc",
            Host::Router => "router",
            Host::Lb1 => "lb1",
            Host::Lb2 => "lb2",
            Host::Web1 => "web1",
            Host::Web2 => "web2",
        }
    }

    /// The address of its eth0.
    pub const fn ip(self) -> Ipv4Addr {
        match self {
            Host::Pc => Ipv4Addr::new(192, 168, 20, 10),
            Host::Router => Ipv4Addr::new(192, 168, 10, 1),
            Host::Lb1 => Ipv4Addr::new(192, 168, 10, 101),
            Host::Lb2 => Ipv4Addr::new(192, 168, 10, 102),
            Host::Web1 => Ipv4Addr::new(192, 168, 10, 103),
            Host::Web2 => Ipv4Addr::new(192, 168, 10, 104),
        }
    }

    /// The MAC of its eth0 (fixed, as the fixtures' 02:00:00:0a:00:xx).
    pub const fn mac(self) -> Mac {
        match self {
            Host::Pc => [0x02, 0x00, 0x00, 0x14, 0x00, 0x0a],
            Host::Router => [0x02, 0x00, 0x00, 0x0a, 0x00, 0x01],
            Host::Lb1 => [0x02, 0x00, 0x00, 0x0a, 0x00, 0x65],
            Host::Lb2 => [0x02, 0x00, 0x00, 0x0a, 0x00, 0x66],
            Host::Web1 => [0x02, 0x00, 0x00, 0x0a, 0x00, 0x67],
            Host::Web2 => [0x02, 0x00, 0x00, 0x0a, 0x00, 0x68],
        }
    }

    /// Its eth0's port on the segment's bridge (in the segment namespace).
    pub fn bridge_port(self) -> Option<String> {
        match self {
            Host::Pc => None,
            other => Some(format!("p-{}", other.name())),
        }
    }

    /// The host whose eth0 has `mac`, if any.
    pub fn by_mac(mac: Mac) -> Option<Host> {
        Self::ALL.into_iter().find(|h| h.mac() == mac)
    }

    /// The web server called `name` (`web1`, `web2`).
    pub fn web_by_name(name: &str) -> Option<Host> {
        Self::WEB.into_iter().find(|h| h.name() == name)
    }
}

/// Formats a MAC the way `ip` does.
pub fn mac_str(mac: Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOptions {
    /// The VIP the web servers carry on `lo`.
    pub vip: Ipv4Addr,
    /// RX/TX queues of each load balancer's eth0 (and its bridge port).
    pub lb_queues: u32,
    /// Whether to start the web servers (and wait until they answer).
    pub web_servers: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self { vip: DEFAULT_VIP, lb_queues: 1, web_servers: true }
    }
}

/// A built lab. Dropping it kills every process it started, deletes its
/// namespaces and removes its directory (kept, and named, after a panic).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    opts: LabOptions,
    segment: String,
    names: BTreeMap<Host, String>,
    registry: Registry,
    namespaces: Vec<NetNsGuard>,
    web_servers: Vec<ChildGuard>,
    files: AtomicUsize,
}

impl Lab {
    /// Builds the topology, configures every host and starts the web servers.
    pub fn build(opts: LabOptions) -> Result<Self> {
        require_root()?;
        for name in netns::remove_stale(NETNS_PREFIX)? {
            eprintln!("testlab: removed network namespace {name} of a run that was killed");
        }
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NETNS_PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("xdplb-lab-{prefix}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let names = Host::ALL.iter().map(|h| (*h, format!("{prefix}-{}", h.name()))).collect();
        let mut lab = Self {
            segment: format!("{prefix}-seg"),
            names,
            prefix,
            dir,
            opts,
            registry: Registry::default(),
            namespaces: Vec::new(),
            web_servers: Vec::new(),
            files: AtomicUsize::new(0),
        };
        lab.build_topology().context("building the lab topology")?;
        if lab.opts.web_servers {
            lab.start_web_servers().context("starting the lab's web servers")?;
        }
        Ok(lab)
    }

    fn build_topology(&mut self) -> Result<()> {
        let segment = self.segment.clone();
        self.create_ns(&segment)?;
        for host in Host::ALL {
            let name = self.ns(host).to_owned();
            self.create_ns(&name)?;
        }
        let seg = segment.as_str();
        // No multicast snooping: it runs ip_mc_check_igmp() on every IPv4
        // frame and drops those with a bad header, which the tests inject.
        ip_words(seg, "link add br0 type bridge forward_delay 0 mcast_snooping 0")?;
        ip_words(seg, "link set br0 up")?;
        // br_netfilter (when loaded) drops IPv4 frames with bad headers before
        // bridging them: off, the switch forwards whatever it is given.
        // -e: without br_netfilter these keys do not exist, which is fine.
        let no_netfilter = "sysctl -q -e -w net.bridge.bridge-nf-call-iptables=0 \
                            net.bridge.bridge-nf-call-ip6tables=0 \
                            net.bridge.bridge-nf-call-arptables=0";
        self.exec_in(seg, &no_netfilter.split_whitespace().collect::<Vec<_>>())?;

        let gateway = Host::Router.ip();
        for host in Host::SEGMENT {
            let ns = self.ns(host);
            let port = host.bridge_port().ok_or_else(|| anyhow!("{host:?} has no port"))?;
            let q = if matches!(host, Host::Lb1 | Host::Lb2) { self.opts.lb_queues } else { 1 };
            let mac = mac_str(host.mac());
            ip_words(
                seg,
                &format!(
                    "link add {port} numtxqueues {q} numrxqueues {q} type veth peer name eth0 \
                     netns {ns} address {mac} numtxqueues {q} numrxqueues {q}"
                ),
            )?;
            ip_words(seg, &format!("link set {port} master br0 up"))?;
            // The bridge keeps a VLAN tag it received out of band (skb
            // metadata); a veth would hand it on that way, invisible to the
            // host's XDP program. Inserted in software, the tag travels in
            // the frame, as on a real wire.
            self.exec_in(
                seg,
                &[
                    "ethtool",
                    "-K",
                    &port,
                    "tx-vlan-hw-insert",
                    "off",
                    "tx-vlan-stag-hw-insert",
                    "off",
                ],
            )?;
            ip_words(ns, &format!("addr add {}/{PREFIX_LEN} dev eth0", host.ip()))?;
            ip_words(ns, "link set eth0 up")?;
            if host != Host::Router {
                ip_words(ns, &format!("route add default via {gateway}"))?;
            }
        }

        let (router, pc) = (self.ns(Host::Router), self.ns(Host::Pc));
        let (router_mac, pc_mac) = (mac_str(ROUTER_PC_SIDE_MAC), mac_str(Host::Pc.mac()));
        ip_words(
            router,
            &format!(
                "link add eth1 address {router_mac} type veth peer name eth0 netns {pc} \
                 address {pc_mac}"
            ),
        )?;
        ip_words(router, &format!("addr add {ROUTER_PC_SIDE_IP}/{PREFIX_LEN} dev eth1"))?;
        ip_words(router, "link set eth1 up")?;
        ip_words(pc, &format!("addr add {}/{PREFIX_LEN} dev eth0", Host::Pc.ip()))?;
        ip_words(pc, "link set eth0 up")?;
        ip_words(pc, &format!("route add default via {ROUTER_PC_SIDE_IP}"))?;
        self.sysctl(Host::Router, &["net.ipv4.ip_forward=1"])?;

        for web in Host::WEB {
            ip_words(self.ns(web), &format!("addr add {}/32 dev lo", self.opts.vip))?;
            // The kernel uses the larger of `all` and the interface's value.
            self.sysctl(
                web,
                &[
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                    "net.ipv4.conf.eth0.arp_ignore=1",
                    "net.ipv4.conf.eth0.arp_announce=2",
                ],
            )?;
        }
        // Real NICs complete checksums; a veth may pass on a partial one,
        // which an AF_XDP socket would see as it is.
        for (host, ifname) in [
            (Host::Pc, "eth0"),
            (Host::Router, "eth0"),
            (Host::Router, "eth1"),
            (Host::Web1, "eth0"),
            (Host::Web2, "eth0"),
        ] {
            self.exec(host, &["ethtool", "-K", ifname, "tx", "off"])?;
        }
        Ok(())
    }

    /// Creates a namespace with IPv6 off (the lab is IPv4; no stray
    /// router solicitations in captures and counters).
    fn create_ns(&mut self, name: &str) -> Result<()> {
        self.namespaces.push(NetNsGuard::create(name)?);
        self.exec_in(
            name,
            &[
                "sysctl",
                "-q",
                "-e", // a kernel without IPv6 has no such keys: fine
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        Ok(())
    }

    fn start_web_servers(&mut self) -> Result<()> {
        let script = self.write_file("webserver.py", WEBSERVER_PY)?;
        for web in Host::WEB {
            let guard = self.start_webserver(web, &script, 80)?;
            self.web_servers.push(guard);
        }
        for web in Host::WEB {
            let url = format!("http://{}/health_check.html", web.ip());
            let what = format!("{} to answer {url} from the pc", web.name());
            let mut last = String::new();
            let ready = wait_until(&what, Duration::from_secs(20), POLL, || {
                match self.http_get(Host::Pc, &url) {
                    Ok(r) if r.status == 200 => return Ok(true),
                    Ok(r) => last = format!("status {}", r.status),
                    Err(e) => last = format!("{e:#}"),
                }
                Ok(false)
            });
            ready.with_context(|| format!("last attempt: {last}"))?;
        }
        Ok(())
    }

    /// Starts the lab's web server script on `host`, answering with the host's name.
    fn start_webserver(&self, host: Host, script: &Path, port: u16) -> Result<ChildGuard> {
        let state = self.state_dir(host)?;
        let log = self.dir.join(format!("{}-web{port}.log", host.name()));
        let argv = [
            python()?.to_owned(),
            script.to_string_lossy().into_owned(),
            "--name".to_owned(),
            host.name().to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--state-dir".to_owned(),
            state.to_string_lossy().into_owned(),
        ];
        ChildGuard::spawn(&self.registry, self.ns(host), &argv, &log)
    }

    /// Starts the lab's HTTP server (answering with the host's name) on any
    /// host and port, e.g. lb1:8080, and waits until it listens.
    pub fn start_http_server(&self, host: Host, port: u16) -> Result<ChildGuard> {
        let script = self.dir.join("webserver.py");
        if !script.exists() {
            self.write_file("webserver.py", WEBSERVER_PY)?;
        }
        let mut guard = self.start_webserver(host, &script, port)?;
        let url = format!("http://{}:{port}/health_check.html", host.ip());
        wait_until(&format!("{url} in {}", host.name()), Duration::from_secs(20), POLL, || {
            if let Some(status) = guard.try_wait()? {
                bail!("server exited ({status}): {}", guard.log());
            }
            let url = url.clone();
            self.run_in(host, move || Ok(http::get(&url).is_ok()))
        })?;
        Ok(guard)
    }

    /// The per-host directory the web server looks into (e.g. for `health_fail`).
    fn state_dir(&self, host: Host) -> Result<PathBuf> {
        let dir = self.dir.join(format!("{}-state", host.name()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(dir)
    }

    /// Makes `host`'s /health_check.html answer 200 (`true`) or 500 (`false`).
    pub fn set_health(&self, host: Host, healthy: bool) -> Result<()> {
        let flag = self.state_dir(host)?.join("health_fail");
        if healthy {
            match std::fs::remove_file(&flag) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("remove {}", flag.display()))
                }
                _ => Ok(()),
            }
        } else {
            std::fs::write(&flag, b"").with_context(|| format!("create {}", flag.display()))
        }
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: Host) -> &str {
        // Every host's name is made in `build`.
        self.names.get(&host).map_or("", String::as_str)
    }

    /// The namespace holding the bridge `br0` and the hosts' ports `p-<host>`.
    pub fn segment_ns(&self) -> &str {
        &self.segment
    }

    /// This lab's unique prefix (`xl<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This lab's directory (configs, logs, captures).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was built with.
    pub fn options(&self) -> &LabOptions {
        &self.opts
    }

    /// The VIP.
    pub fn vip(&self) -> Ipv4Addr {
        self.opts.vip
    }

    /// `http://VIP<path>`.
    pub fn vip_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.opts.vip)
    }

    /// Runs `argv` in `host`'s namespace; its stdout, or an error naming it.
    pub fn exec<S: AsRef<str>>(&self, host: Host, argv: &[S]) -> Result<String> {
        self.exec_in(self.ns(host), argv)
    }

    /// Runs `argv` in namespace `netns` (e.g. [`segment_ns`](Self::segment_ns)).
    pub fn exec_in<S: AsRef<str>>(&self, netns: &str, argv: &[S]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend(argv.iter().map(AsRef::as_ref));
        cmd::run(&full)
    }

    /// `ip -n NS args…` for `host`.
    pub fn ip(&self, host: Host, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "-n", self.ns(host)];
        full.extend_from_slice(args);
        cmd::run(&full)
    }

    fn sysctl(&self, host: Host, settings: &[&str]) -> Result<()> {
        let mut argv = vec!["sysctl", "-q", "-w"];
        argv.extend_from_slice(settings);
        self.exec(host, &argv).map(drop)
    }

    /// Starts `argv` in `host`'s namespace; it is killed when the guard drops.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(&self, host: Host, argv: &[S]) -> Result<ChildGuard> {
        let first = argv.first().map(|a| a.as_ref().to_string_lossy().into_owned());
        let program = first.as_deref().and_then(|p| p.rsplit('/').next()).unwrap_or("cmd");
        let log = self.next_file(&format!("{}-{program}", host.name()), "log");
        ChildGuard::spawn(&self.registry, self.ns(host), argv, &log)
    }

    /// Starts `binary run --config config` in `host`'s namespace, logging to
    /// a file of the lab's directory. Wait for readiness with
    /// [`XdplbProcess::wait_for_log`].
    pub fn start_xdplb(&self, host: Host, config: &Path, binary: &Path) -> Result<XdplbProcess> {
        if !binary.is_file() {
            bail!("xdplb binary {} does not exist; build it first", binary.display());
        }
        let log = self.next_file(&format!("{}-xdplb", host.name()), "log");
        let argv = [binary.as_os_str(), "run".as_ref(), "--config".as_ref(), config.as_os_str()];
        let child = ChildGuard::spawn(&self.registry, self.ns(host), &argv, &log)?;
        Ok(XdplbProcess::new(child))
    }

    /// Writes `contents` to `name` in the lab's directory.
    pub fn write_file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Writes a configuration to `name` in the lab's directory.
    pub fn write_config(&self, name: &str, config: &SingleLb) -> Result<PathBuf> {
        self.write_file(name, &config.to_toml())
    }

    /// The seed's service on this lab's VIP with the given web servers and weights.
    pub fn single_lb(&self, weights: &[(Host, u32)]) -> SingleLb {
        let servers: Vec<_> = weights.iter().map(|&(h, w)| (h.ip(), w)).collect();
        SingleLb::new(self.opts.vip, &servers)
    }

    /// A fresh file name in the lab's directory: `<stem>-<n>.<ext>`.
    pub fn next_file(&self, stem: &str, ext: &str) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{stem}-{n}.{ext}"))
    }

    /// Runs `work` on a thread inside `host`'s namespace and waits for it.
    pub fn run_in<T, F>(&self, host: Host, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        netns::run_in(self.ns(host), work)
    }

    /// Runs `work` on a thread inside `host`'s namespace without waiting.
    pub fn spawn_in<T, F>(&self, host: Host, work: F) -> JoinHandle<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        netns::spawn_in(self.ns(host), work)
    }

    /// One `GET url` from `host`.
    pub fn http_get(&self, host: Host, url: &str) -> Result<HttpResponse> {
        let url = url.to_owned();
        self.run_in(host, move || http::get(&url))
    }

    /// `n` GETs of `url` from `host`, one connection each, one after another.
    pub fn http_get_many(&self, host: Host, url: &str, n: usize) -> Result<ManyResults> {
        let url = url.to_owned();
        self.run_in(host, move || Ok(http::get_many(&url, n)))
    }

    /// GETs of `url` from `host` in the background until stopped (at most `max`).
    pub fn start_traffic(&self, host: Host, url: &str, max: usize) -> Traffic {
        Traffic::start(self.ns(host), url, max)
    }

    /// A long GET (e.g. `/slow?seconds=4`) from `host`, read in the background.
    pub fn http_stream(&self, host: Host, url: &str) -> Result<HttpStream> {
        HttpStream::start(self.ns(host), url)
    }

    /// GETs `url` from `host` until every one of `bodies` has answered (the
    /// service is up and each real server is in use); fails after `timeout`.
    pub fn wait_until_served(
        &self,
        host: Host,
        url: &str,
        bodies: &[&str],
        timeout: Duration,
    ) -> Result<()> {
        let mut seen = BTreeSet::new();
        let mut last = String::new();
        let what = format!("{url} from {} to be answered by {bodies:?}", host.name());
        let result = wait_until(&what, timeout, POLL, || {
            match self.http_get(host, url) {
                Ok(r) if r.status == 200 => {
                    seen.insert(r.body.trim().to_owned());
                }
                Ok(r) => last = format!("status {}: {}", r.status, r.body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            Ok(bodies.iter().all(|b| seen.contains(*b)))
        });
        result.with_context(|| format!("answered by {seen:?}; last failure: {last}"))
    }

    /// Sends raw frames out of `ifname` in `host`'s namespace, `gap` apart.
    pub fn inject(
        &self,
        host: Host,
        ifname: &str,
        frames: Vec<Vec<u8>>,
        gap: Duration,
    ) -> Result<usize> {
        let ifname = ifname.to_owned();
        self.run_in(host, move || PacketSocket::bind(&ifname)?.send_all(&frames, gap))
    }

    /// Captures on `host`'s eth0 (tcpdump `filter`, may be empty).
    pub fn capture(&self, host: Host, filter: &str) -> Result<Capture> {
        self.capture_in(self.ns(host), "eth0", filter)
    }

    /// Captures on `host`'s port of the segment's bridge: every frame to and
    /// from its eth0, seen from the switch.
    pub fn capture_port(&self, host: Host, filter: &str) -> Result<Capture> {
        let port = host.bridge_port().ok_or_else(|| anyhow!("the pc has no bridge port"))?;
        self.capture_in(&self.segment, &port, filter)
    }

    /// Captures on `ifname` in namespace `netns`.
    pub fn capture_in(&self, netns: &str, ifname: &str, filter: &str) -> Result<Capture> {
        let stem = format!(
            "{}-{ifname}",
            netns.strip_prefix(&self.prefix).unwrap_or(netns).trim_start_matches('-')
        );
        let file = self.next_file(&stem, "pcap");
        let log = file.with_extension("tcpdump.log");
        Capture::start(&self.registry, netns, ifname, filter, &file, &log)
    }

    /// Whether an XDP program is attached to `host`'s eth0 (`ip -d -j link`).
    pub fn xdp_attached(&self, host: Host) -> Result<bool> {
        let json = self.ip(host, &["-d", "-j", "link", "show", "dev", "eth0"])?;
        Ok(json.contains("\"xdp\":"))
    }

    /// The IPv4 addresses on `ifname` of `host` (`ip -o -4 addr show`).
    pub fn addresses(&self, host: Host, ifname: &str) -> Result<Vec<Ipv4Addr>> {
        let out = self.ip(host, &["-o", "-4", "addr", "show", "dev", ifname])?;
        let mut addrs = Vec::new();
        for line in out.lines() {
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                if w == "inet" {
                    let cidr = words.next().unwrap_or_default();
                    let ip = cidr.split('/').next().unwrap_or_default();
                    addrs.push(ip.parse().with_context(|| format!("address in {line:?}"))?);
                }
            }
        }
        Ok(addrs)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first (by PID), or a namespace would live on in them.
        self.registry.kill_all();
        self.web_servers.clear();
        while let Some(ns) = self.namespaces.pop() {
            drop(ns);
        }
        if std::thread::panicking() {
            eprintln!(
                "testlab: keeping {} (logs, configs, captures) for inspection",
                self.dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testlab: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// `ip -n NETNS <words>`, the words split at whitespace (none of the lab's
/// names or addresses contains any), so each call reads like the shell line.
fn ip_words(netns: &str, words: &str) -> Result<String> {
    let mut argv = vec!["ip", "-n", netns];
    argv.extend(words.split_whitespace());
    cmd::run(&argv)
}

/// Fails unless running as root: the lab needs namespaces, veths and XDP.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the namespace lab needs root (network namespaces, veth, XDP, AF_XDP); \
             run e.g. `sudo -E cargo test --test dataplane_lab -- --test-threads=1`"
        );
    }
    Ok(())
}

/// The Python interpreter behind `python3` on PATH, resolved once (a pyenv
/// shim would otherwise run in front of every server we start).
fn python() -> Result<&'static str> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            cmd::run(&["python3", "-c", "import sys; print(sys.executable)"])
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{e:#}"))
        })
        .as_deref()
        .map_err(|e| anyhow!("python3 is needed for the lab's web servers: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_distinct_addresses_and_macs() {
        for a in Host::ALL {
            for b in Host::ALL {
                if a != b {
                    assert_ne!(a.ip(), b.ip());
                    assert_ne!(a.mac(), b.mac());
                    assert_ne!(a.name(), b.name());
                }
            }
            assert_eq!(Host::by_mac(a.mac()), Some(a));
            // Interface names must fit IFNAMSIZ (15 characters).
            if let Some(port) = a.bridge_port() {
                assert!(port.len() <= 15, "{port}");
            }
        }
        assert_eq!(mac_str(Host::Lb1.mac()), "02:00:00:0a:00:65");
        assert_eq!(Host::web_by_name("web2"), Some(Host::Web2));
        assert_eq!(Host::web_by_name("lb1"), None);
    }
}
