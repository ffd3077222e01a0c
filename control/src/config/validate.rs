//! From the file as written ([`super::raw`]) to the effective [`Config`]:
//! defaults, ranges and keywords first ("values"), then checks between
//! entries ("relations"); each phase reports its earliest error in the file.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use dataplane::tables::{L4Proto, Scheduler};
use toml::Spanned;

use super::model::{
    service_name, BindMode, Config, Control, Dataplane, GlobalDefs, HttpGet, Ipv4Net, LvsMethod,
    Metrics, Origin, PollMode, RealServer, SorryServer, TcpCheck, Url, VirtualServer, VrrpInstance,
    VrrpScript, VrrpState, XdpMode,
};
use super::raw::{
    RawConfig, RawControl, RawDataplane, RawGlobalDefs, RawHttpGet, RawMetrics, RawRealServer,
    RawSorryServer, RawTcpCheck, RawVirtualServer, RawVrrp, RawVrrpScript,
};
use super::{line_of, ConfigError};
use crate::vrrp::state::MAX_PREEMPT_DELAY;
use crate::vrrp::Version;

const DEFAULT_PRIORITY: i64 = 100;
const DEFAULT_ADVERT_INT: f64 = 1.0;
/// keepalived's default `delay_loop`.
const DEFAULT_DELAY_LOOP: f64 = 60.0;
/// keepalived's default checker `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: f64 = 5.0;
const DEFAULT_RETRY: i64 = 1;
/// keepalived: "3 seconds for HTTP_GET and SSL_GET, and 1 second otherwise".
const DEFAULT_HTTP_DELAY_BEFORE_RETRY: f64 = 3.0;
const DEFAULT_TCP_DELAY_BEFORE_RETRY: f64 = 1.0;
const DEFAULT_STATUS_CODE: i64 = 200;
const DEFAULT_WEIGHT: i64 = 1;
/// keepalived's default `quorum`: one unit of live weight.
const DEFAULT_QUORUM: i64 = 1;
/// keepalived reads `persistence_timeout` into 32 bits, as IPVS keeps it.
const MAX_PERSISTENCE_TIMEOUT: i64 = u32::MAX as i64;
const DEFAULT_BATCH_SIZE: i64 = 64;
const DEFAULT_RING_SIZE: i64 = 2048;
const DEFAULT_FRAME_SIZE: i64 = 4096;
const DEFAULT_FLOW_TABLE_SIZE: i64 = 65536;
/// IPVS's defaults, as `ipvsadm --set tcp tcpfin udp` shows them.
const DEFAULT_TCP_TIMEOUT: f64 = 900.0;
const DEFAULT_TCPFIN_TIMEOUT: f64 = 120.0;
const DEFAULT_UDP_TIMEOUT: f64 = 300.0;
const DEFAULT_NEIGHBOUR_REFRESH: f64 = 10.0;
/// keepalived's `vrrp_script` defaults: `interval` 1 s, `weight` 0, `rise`/`fall` 1
/// (`timeout` defaults to `interval`).
const DEFAULT_SCRIPT_INTERVAL: f64 = 1.0;
/// keepalived reads `rise` and `fall` as a C int, at least 1.
const MAX_RISE_FALL: i64 = i32::MAX as i64;
/// keepalived's track weights: a priority of 1-254 plus this stays representable.
const MAX_SCRIPT_WEIGHT: i64 = 253;

/// keepalived reads GARP delays as whole seconds up to UINT_MAX / TIMER_HZ.
const MAX_GARP_DELAY: f64 = 4294.0;
/// GARP rounds per burst: keepalived takes any unsigned int; more than this
/// is a flood, not an announcement.
const MAX_GARP_REPEAT: i64 = 1000;
const MAX_GARP_INTERVAL: f64 = 10.0;
/// The largest VRRPv3 interval: 12 bits of centiseconds.
const MAX_V3_ADVERT_CS: f64 = 4095.0;
/// What VRRPv2 carries in its password field; keepalived cuts a longer auth_pass here.
const AUTH_PASS_MAX: usize = 8;

/// The longest name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// glibc's CPU_SETSIZE: the CPU ids `sched_setaffinity` can name.
const MAX_CPU: i64 = 1023;
/// A week: longer idle timeouts only keep dead flows around.
const MAX_FLOW_TIMEOUT: f64 = 604_800.0;
const DAY: f64 = 86_400.0;

/// Errors found so far, by byte offset; the earliest wins, ties go to the
/// check that ran first, errors without a place come last.
struct Errors<'a> {
    text: &'a str,
    found: Vec<(usize, String)>,
    /// Warnings: legal, but worth saying (by byte offset).
    notes: Vec<(usize, String)>,
}

impl<'a> Errors<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, found: Vec::new(), notes: Vec::new() }
    }

    fn at(&mut self, span: Range<usize>, reason: impl Into<String>) {
        self.found.push((span.start, reason.into()));
    }

    fn note(&mut self, span: Range<usize>, text: impl Into<String>) {
        self.notes.push((span.start, text.into()));
    }

    fn nowhere(&mut self, reason: impl Into<String>) {
        self.found.push((usize::MAX, reason.into()));
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn earliest(self, file: &str) -> Option<ConfigError> {
        let mut best: Option<(usize, String)> = None;
        for (offset, reason) in self.found {
            if best.as_ref().is_none_or(|(b, _)| offset < *b) {
                best = Some((offset, reason));
            }
        }
        best.map(|(offset, reason)| ConfigError::Invalid {
            file: file.to_owned(),
            line: (offset != usize::MAX).then(|| line_of(self.text, offset)),
            reason,
        })
    }

    /// An integer in `lo..=hi`.
    fn int<T: TryFrom<i64>>(&mut self, key: &str, v: &Spanned<i64>, lo: i64, hi: i64) -> Option<T> {
        let n = *v.get_ref();
        if !(lo..=hi).contains(&n) {
            self.at(v.span(), format!("{key} {n} is out of range ({lo}-{hi})"));
            return None;
        }
        T::try_from(n).ok()
    }

    /// An optional integer in `lo..=hi`, `default` when absent.
    fn int_or<T: TryFrom<i64> + Default>(
        &mut self,
        key: &str,
        v: &Option<Spanned<i64>>,
        default: i64,
        lo: i64,
        hi: i64,
    ) -> T {
        match v {
            Some(v) => self.int(key, v, lo, hi),
            None => T::try_from(default).ok(),
        }
        .unwrap_or_default()
    }

    /// A power of two in `lo..=hi`.
    fn pow2(&mut self, key: &str, v: &Option<Spanned<i64>>, default: i64, lo: i64, hi: i64) -> u32 {
        let Some(v) = v else { return u32::try_from(default).unwrap_or_default() };
        let n = *v.get_ref();
        if !(lo..=hi).contains(&n) || n.count_ones() != 1 {
            self.at(v.span(), format!("{key} {n} is not a power of two between {lo} and {hi}"));
            return 0;
        }
        u32::try_from(n).unwrap_or_default()
    }

    /// A duration in seconds in `lo..=hi`, `default` when absent.
    fn secs(
        &mut self,
        key: &str,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> Duration {
        let Some(v) = v else { return Duration::from_secs_f64(default) };
        let x = *v.get_ref();
        // Written so that NaN fails too.
        if !(x >= lo && x <= hi) {
            self.at(v.span(), format!("{key} {x} is out of range ({lo}-{hi} seconds)"));
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(x).unwrap_or_default()
    }

    /// A duration in seconds in `lo..=hi`, `default` (already a duration) when absent.
    fn secs_or(
        &mut self,
        key: &str,
        v: &Option<Spanned<f64>>,
        default: Duration,
        lo: f64,
        hi: f64,
    ) -> Duration {
        match v {
            Some(_) => self.secs(key, v, 0.0, lo, hi),
            None => default,
        }
    }

    /// An optional integer in `lo..=hi`, `default` (already converted) when absent.
    fn int_or_value<T: TryFrom<i64> + Default>(
        &mut self,
        key: &str,
        v: &Option<Spanned<i64>>,
        default: T,
        lo: i64,
        hi: i64,
    ) -> T {
        match v {
            Some(v) => self.int(key, v, lo, hi).unwrap_or_default(),
            None => default,
        }
    }

    /// A VRRP version, 2 or 3; `None` when absent or wrong (the error is recorded).
    fn version(&mut self, key: &str, v: &Option<Spanned<i64>>) -> Option<Version> {
        let v = v.as_ref()?;
        let n = *v.get_ref();
        let version = u8::try_from(n).ok().and_then(Version::from_number);
        if version.is_none() {
            self.at(v.span(), format!("{key} {n} is not 2 or 3"));
        }
        version
    }

    /// A command line (script, notify): not blank, one line, no NUL.
    fn command(&mut self, key: &str, v: &Spanned<String>) -> String {
        let text = v.get_ref();
        if text.trim().is_empty() {
            self.at(v.span(), format!("{key} is empty: give the command to run"));
        } else if text.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
            self.at(v.span(), format!("{key} {text:?} is not one command line"));
        }
        text.clone()
    }

    /// One of a closed set of keywords, matched without regard to case.
    fn keyword<T: Copy>(
        &mut self,
        v: &Option<Spanned<String>>,
        default: T,
        options: &[(&str, T)],
        reject: impl FnOnce(&str) -> String,
    ) -> T {
        let Some(v) = v else { return default };
        match options.iter().find(|(name, _)| name.eq_ignore_ascii_case(v.get_ref())) {
            Some((_, value)) => *value,
            None => {
                self.at(v.span(), reject(v.get_ref()));
                default
            }
        }
    }

    /// An IPv4 address that can be a VIP or a real server.
    fn unicast(&mut self, key: &str, v: &Spanned<String>) -> Ipv4Addr {
        let Ok(ip) = v.get_ref().parse::<Ipv4Addr>() else {
            self.at(v.span(), format!("{key} {:?} is not an IPv4 address", v.get_ref()));
            return Ipv4Addr::UNSPECIFIED;
        };
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            self.at(v.span(), format!("{key} {ip} is not a unicast address a host can own"));
        }
        ip
    }

    fn interface_name(&mut self, v: &Spanned<String>) -> String {
        self.interface_key("interface", v)
    }

    /// An interface name given under `key`.
    fn interface_key(&mut self, key: &str, v: &Spanned<String>) -> String {
        let name = v.get_ref();
        let ok = !name.is_empty()
            && name.len() <= IFNAME_MAX
            && name != "."
            && name != ".."
            && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if !ok {
            self.at(
                v.span(),
                format!(
                    "{key} {name:?} is not a valid interface name \
                     (1-{IFNAME_MAX} bytes, no '/', ':' or whitespace)"
                ),
            );
        }
        name.clone()
    }
}

/// Where the entries that relation checks compare were written.
struct Spans {
    scripts: Vec<Range<usize>>,
    vrrp: Vec<VrrpSpans>,
    vs: Vec<VsSpans>,
    dataplane_interface: Option<Range<usize>>,
}

struct VrrpSpans {
    name: Range<usize>,
    interface: Range<usize>,
    vrid: Range<usize>,
    vips: Vec<Range<usize>>,
    nopreempt: Option<Range<usize>>,
    preempt_delay: Option<Range<usize>>,
    unicast_src_ip: Option<Range<usize>>,
    unicast_peer: Vec<Range<usize>>,
    track_interface: Vec<Range<usize>>,
    track_script: Vec<Range<usize>>,
}

struct VsSpans {
    vip: Range<usize>,
    rs_ip: Vec<Range<usize>>,
    rs_port: Vec<Option<Range<usize>>>,
    /// `sorry_server`'s ip and (if written) port.
    sorry_ip: Option<Range<usize>>,
    sorry_port: Option<Range<usize>>,
}

/// Builds the effective configuration, or the first error (see [`super::parse`]).
pub(super) fn build(raw: RawConfig, text: &str, file: &str) -> Result<Config, ConfigError> {
    let mut e = Errors::new(text);
    let spans = Spans {
        scripts: raw.vrrp_script.iter().map(|s| s.get_ref().name.span()).collect(),
        vrrp: raw.vrrp_instance.iter().map(|v| vrrp_spans(v.get_ref())).collect(),
        vs: raw.virtual_server.iter().map(|v| vs_spans(v.get_ref())).collect(),
        dataplane_interface: raw
            .dataplane
            .as_ref()
            .and_then(|d| d.get_ref().interface.as_ref())
            .map(Spanned::span),
    };
    let (global_defs, inherit) =
        global_defs(&mut e, raw.global_defs.as_ref().map(Spanned::get_ref));
    let mut config = Config {
        global_defs,
        vrrp_scripts: raw.vrrp_script.iter().map(|s| vrrp_script(&mut e, s.get_ref())).collect(),
        vrrp_instances: raw
            .vrrp_instance
            .iter()
            .map(|v| vrrp(&mut e, v.get_ref(), &inherit))
            .collect(),
        virtual_servers: raw.virtual_server.iter().map(|v| virtual_server(&mut e, v)).collect(),
        dataplane: dataplane(&mut e, raw.dataplane.as_ref().map(Spanned::get_ref)),
        control: control(&mut e, raw.control.as_ref().map(Spanned::get_ref)),
        metrics: metrics(&mut e, raw.metrics.as_ref().map(Spanned::get_ref)),
        origin: Origin::default(),
    };
    let notes = std::mem::take(&mut e.notes);
    if let Some(err) = e.earliest(file) {
        return Err(err);
    }

    let mut e = Errors::new(text);
    let interface_span = relations(&mut e, &mut config, &spans);
    if let Some(err) = e.earliest(file) {
        return Err(err);
    }

    config.origin = Origin {
        file: file.to_owned(),
        dataplane_interface: interface_span.map(|s| line_of(text, s.start)),
        vrrp_interface: spans.vrrp.iter().map(|v| line_of(text, v.interface.start)).collect(),
        vip: spans.vs.iter().map(|v| line_of(text, v.vip.start)).collect(),
        real_server_ip: spans
            .vs
            .iter()
            .map(|v| v.rs_ip.iter().map(|s| line_of(text, s.start)).collect())
            .collect(),
        sorry_server_ip: spans
            .vs
            .iter()
            .map(|v| v.sorry_ip.as_ref().map(|s| line_of(text, s.start)))
            .collect(),
        vrrp_unicast_src_ip: spans
            .vrrp
            .iter()
            .map(|v| v.unicast_src_ip.as_ref().map(|s| line_of(text, s.start)))
            .collect(),
        notes: notes
            .into_iter()
            .map(|(offset, note)| (Some(line_of(text, offset)), note))
            .chain(unused_scripts(&config, &spans, text))
            .collect(),
    };
    Ok(config)
}

/// keepalived runs a vrrp_script only while some instance tracks it: say so.
fn unused_scripts(config: &Config, spans: &Spans, text: &str) -> Vec<(Option<usize>, String)> {
    config
        .vrrp_scripts
        .iter()
        .zip(&spans.scripts)
        .filter(|(s, _)| !config.vrrp_instances.iter().any(|v| v.track_script.contains(&s.name)))
        .map(|(s, span)| {
            (
                Some(line_of(text, span.start)),
                format!("vrrp_script {:?} is tracked by no vrrp_instance: it never runs", s.name),
            )
        })
        .collect()
}

fn vrrp_spans(v: &RawVrrp) -> VrrpSpans {
    let all = |list: &[Spanned<String>]| list.iter().map(Spanned::span).collect();
    VrrpSpans {
        name: v.name.span(),
        interface: v.interface.span(),
        vrid: v.virtual_router_id.span(),
        vips: all(&v.virtual_ipaddress),
        nopreempt: v.nopreempt.as_ref().map(Spanned::span),
        preempt_delay: v.preempt_delay.as_ref().map(Spanned::span),
        unicast_src_ip: v.unicast_src_ip.as_ref().map(Spanned::span),
        unicast_peer: all(&v.unicast_peer),
        track_interface: all(&v.track_interface),
        track_script: all(&v.track_script),
    }
}

fn vs_spans(v: &RawVirtualServer) -> VsSpans {
    VsSpans {
        vip: v.vip.span(),
        rs_ip: v.real_server.iter().map(|r| r.get_ref().ip.span()).collect(),
        rs_port: v
            .real_server
            .iter()
            .map(|r| r.get_ref().port.as_ref().map(Spanned::span))
            .collect(),
        sorry_ip: v.sorry_server.as_ref().map(|s| s.get_ref().ip.span()),
        sorry_port: v
            .sorry_server
            .as_ref()
            .and_then(|s| s.get_ref().port.as_ref().map(Spanned::span)),
    }
}

/// The instance defaults `[global_defs]` gives. The lower-priority GARP ones
/// only when written: otherwise each instance's own master values apply.
struct Inherit {
    version: Version,
    garp_master_delay: Duration,
    garp_master_repeat: u32,
    garp_master_refresh: Duration,
    garp_master_refresh_repeat: u32,
    garp_lower_prio_delay: Option<Duration>,
    garp_lower_prio_repeat: Option<u32>,
    garp_interval: Duration,
    higher_prio_send_advert: bool,
}

fn global_defs(e: &mut Errors, g: Option<&RawGlobalDefs>) -> (GlobalDefs, Inherit) {
    let empty;
    let g = match g {
        Some(g) => g,
        None => {
            empty = RawGlobalDefs::default();
            &empty
        }
    };
    let d = GlobalDefs::default();
    let version = e.version("vrrp_version", &g.vrrp_version).unwrap_or(d.vrrp_version);
    let master_delay = e.secs_or(
        "vrrp_garp_master_delay",
        &g.vrrp_garp_master_delay,
        d.vrrp_garp_master_delay,
        0.0,
        MAX_GARP_DELAY,
    );
    let master_repeat = e.int_or_value(
        "vrrp_garp_master_repeat",
        &g.vrrp_garp_master_repeat,
        d.vrrp_garp_master_repeat,
        1,
        MAX_GARP_REPEAT,
    );
    let lower_delay = g.vrrp_garp_lower_prio_delay.as_ref().map(|_| {
        e.secs(
            "vrrp_garp_lower_prio_delay",
            &g.vrrp_garp_lower_prio_delay,
            0.0,
            0.0,
            MAX_GARP_DELAY,
        )
    });
    let lower_repeat = g
        .vrrp_garp_lower_prio_repeat
        .as_ref()
        .map(|r| e.int("vrrp_garp_lower_prio_repeat", r, 0, MAX_GARP_REPEAT).unwrap_or(0));
    let inherit = Inherit {
        version,
        garp_master_delay: master_delay,
        garp_master_repeat: master_repeat,
        garp_master_refresh: e.secs_or(
            "vrrp_garp_master_refresh",
            &g.vrrp_garp_master_refresh,
            d.vrrp_garp_master_refresh,
            0.0,
            DAY,
        ),
        garp_master_refresh_repeat: e.int_or_value(
            "vrrp_garp_master_refresh_repeat",
            &g.vrrp_garp_master_refresh_repeat,
            d.vrrp_garp_master_refresh_repeat,
            1,
            MAX_GARP_REPEAT,
        ),
        garp_lower_prio_delay: lower_delay,
        garp_lower_prio_repeat: lower_repeat,
        garp_interval: e.secs_or(
            "vrrp_garp_interval",
            &g.vrrp_garp_interval,
            d.vrrp_garp_interval,
            0.0,
            MAX_GARP_INTERVAL,
        ),
        higher_prio_send_advert: g
            .vrrp_higher_prio_send_advert
            .unwrap_or(d.vrrp_higher_prio_send_advert),
    };
    let router_id = g.router_id.as_ref().map(|id| {
        if id.get_ref().trim().is_empty() || id.get_ref().chars().any(char::is_control) {
            e.at(id.span(), format!("router_id {:?} is empty or not one line", id.get_ref()));
        }
        id.get_ref().clone()
    });
    let defs = GlobalDefs {
        router_id,
        vrrp_version: inherit.version,
        vrrp_garp_master_delay: inherit.garp_master_delay,
        vrrp_garp_master_repeat: inherit.garp_master_repeat,
        vrrp_garp_master_refresh: inherit.garp_master_refresh,
        vrrp_garp_master_refresh_repeat: inherit.garp_master_refresh_repeat,
        vrrp_garp_lower_prio_delay: lower_delay.unwrap_or(master_delay),
        vrrp_garp_lower_prio_repeat: lower_repeat.unwrap_or(master_repeat),
        vrrp_garp_interval: inherit.garp_interval,
        vrrp_higher_prio_send_advert: inherit.higher_prio_send_advert,
    };
    (defs, inherit)
}

fn vrrp_script(e: &mut Errors, s: &RawVrrpScript) -> VrrpScript {
    let name = s.name.get_ref();
    if name.trim().is_empty() {
        e.at(s.name.span(), "vrrp_script name is empty");
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        e.at(
            s.name.span(),
            format!("vrrp_script name {name:?} has whitespace: track_script names one word"),
        );
    }
    let interval = e.secs("interval", &s.interval, DEFAULT_SCRIPT_INTERVAL, 0.001, DAY);
    let user = s.user.as_ref().map(|u| {
        let text = u.get_ref();
        if text.trim().is_empty() || text.chars().any(char::is_control) {
            e.at(u.span(), format!("user {text:?} is not \"username [:][groupname]\""));
        }
        text.clone()
    });
    VrrpScript {
        name: name.clone(),
        script: e.command("script", &s.script),
        interval,
        timeout: e.secs_or("timeout", &s.timeout, interval, 0.001, DAY),
        weight: e.int_or("weight", &s.weight, 0, -MAX_SCRIPT_WEIGHT, MAX_SCRIPT_WEIGHT),
        rise: e.int_or("rise", &s.rise, 1, 1, MAX_RISE_FALL),
        fall: e.int_or("fall", &s.fall, 1, 1, MAX_RISE_FALL),
        user,
        init_fail: s.init_fail.unwrap_or(false),
    }
}

fn vrrp(e: &mut Errors, v: &RawVrrp, inherit: &Inherit) -> VrrpInstance {
    if v.name.get_ref().trim().is_empty() {
        e.at(v.name.span(), "vrrp_instance name is empty");
    }
    let state = e.keyword(
        &v.state,
        VrrpState::Backup,
        &[("BACKUP", VrrpState::Backup), ("MASTER", VrrpState::Master)],
        |s| format!("state {s:?} is not BACKUP or MASTER"),
    );
    let version = match &v.vrrp_version {
        Some(_) => e.version("vrrp_version", &v.vrrp_version),
        None => Some(inherit.version),
    };
    let garp_master_delay = e.secs_or(
        "garp_master_delay",
        &v.garp_master_delay,
        inherit.garp_master_delay,
        0.0,
        MAX_GARP_DELAY,
    );
    let garp_master_repeat = e.int_or_value(
        "garp_master_repeat",
        &v.garp_master_repeat,
        inherit.garp_master_repeat,
        1,
        MAX_GARP_REPEAT,
    );
    let notify = |e: &mut Errors, key: &str, v: &Option<Spanned<String>>| {
        v.as_ref().map(|s| e.command(key, s))
    };
    VrrpInstance {
        name: v.name.get_ref().clone(),
        state,
        interface: e.interface_name(&v.interface),
        virtual_router_id: e.int("virtual_router_id", &v.virtual_router_id, 1, 255).unwrap_or(0),
        priority: e.int_or("priority", &v.priority, DEFAULT_PRIORITY, 1, 254),
        advert_int: advert_int(e, &v.advert_int, version),
        auth_pass: auth(e, v, version),
        virtual_ipaddress: v.virtual_ipaddress.iter().map(|a| virtual_ipaddress(e, a)).collect(),
        vrrp_version: version.unwrap_or(inherit.version),
        nopreempt: v.nopreempt.as_ref().is_some_and(|n| *n.get_ref()),
        preempt_delay: e.secs(
            "preempt_delay",
            &v.preempt_delay,
            0.0,
            0.0,
            MAX_PREEMPT_DELAY.as_secs_f64(),
        ),
        garp_master_delay,
        garp_master_repeat,
        garp_master_refresh: e.secs_or(
            "garp_master_refresh",
            &v.garp_master_refresh,
            inherit.garp_master_refresh,
            0.0,
            DAY,
        ),
        garp_master_refresh_repeat: e.int_or_value(
            "garp_master_refresh_repeat",
            &v.garp_master_refresh_repeat,
            inherit.garp_master_refresh_repeat,
            1,
            MAX_GARP_REPEAT,
        ),
        garp_lower_prio_delay: e.secs_or(
            "garp_lower_prio_delay",
            &v.garp_lower_prio_delay,
            inherit.garp_lower_prio_delay.unwrap_or(garp_master_delay),
            0.0,
            MAX_GARP_DELAY,
        ),
        garp_lower_prio_repeat: e.int_or_value(
            "garp_lower_prio_repeat",
            &v.garp_lower_prio_repeat,
            inherit.garp_lower_prio_repeat.unwrap_or(garp_master_repeat),
            0,
            MAX_GARP_REPEAT,
        ),
        garp_interval: e.secs_or(
            "garp_interval",
            &v.garp_interval,
            inherit.garp_interval,
            0.0,
            MAX_GARP_INTERVAL,
        ),
        higher_prio_send_advert: v
            .higher_prio_send_advert
            .unwrap_or(inherit.higher_prio_send_advert),
        unicast_src_ip: v.unicast_src_ip.as_ref().map(|ip| e.unicast("unicast_src_ip", ip)),
        unicast_peer: v.unicast_peer.iter().map(|ip| e.unicast("unicast_peer", ip)).collect(),
        notify_master: notify(e, "notify_master", &v.notify_master),
        notify_backup: notify(e, "notify_backup", &v.notify_backup),
        notify_fault: notify(e, "notify_fault", &v.notify_fault),
        notify_stop: notify(e, "notify_stop", &v.notify_stop),
        notify: notify(e, "notify", &v.notify),
        track_interface: v
            .track_interface
            .iter()
            .map(|i| e.interface_key("track_interface", i))
            .collect(),
        track_script: v.track_script.iter().map(|s| s.get_ref().clone()).collect(),
    }
}

/// The advert interval: whole seconds for v2, whole centiseconds for v3;
/// not checked when the version itself is wrong (that error is enough).
fn advert_int(e: &mut Errors, a: &Option<Spanned<f64>>, version: Option<Version>) -> Duration {
    let Some(a) = a else { return Duration::from_secs_f64(DEFAULT_ADVERT_INT) };
    let x = *a.get_ref();
    match version {
        None => Duration::ZERO,
        Some(Version::V2) => {
            if (1.0..=255.0).contains(&x) && x.fract() == 0.0 {
                Duration::from_secs_f64(x)
            } else {
                e.at(
                    a.span(),
                    format!("advert_int {x} is out of range: VRRPv2 adverts carry whole seconds (1-255)"),
                );
                Duration::ZERO
            }
        }
        Some(Version::V3) => {
            //= https://www.rfc-editor.org/rfc/rfc5798#section-5.2.7
            //# The Maximum Advertisement Interval is a 12-bit field that indicates
            //# the time interval (in centiseconds) between ADVERTISEMENTS.
            let cs = (x * 100.0).round();
            if (1.0..=MAX_V3_ADVERT_CS).contains(&cs) && (x * 100.0 - cs).abs() < 1e-6 {
                // In range 1-4095: the conversion is exact.
                Duration::from_millis(cs as u64 * 10)
            } else {
                e.at(
                    a.span(),
                    format!(
                        "advert_int {x} is out of range: VRRPv3 adverts carry whole \
                         centiseconds (0.01-40.95)"
                    ),
                );
                Duration::ZERO
            }
        }
    }
}

fn auth(e: &mut Errors, v: &RawVrrp, version: Option<Version>) -> Option<String> {
    let Some(auth_type) = &v.auth_type else {
        if let Some(pass) = &v.auth_pass {
            e.at(pass.span(), "auth_pass is set without auth_type: add auth_type = \"PASS\"");
        }
        return None;
    };
    let kind = auth_type.get_ref();
    if kind.eq_ignore_ascii_case("AH") {
        e.at(
            auth_type.span(),
            "auth_type \"AH\" is not supported: xdplb authenticates VRRP with PASS only \
             (or leave auth_type out)",
        );
        return None;
    }
    if !kind.eq_ignore_ascii_case("PASS") {
        e.at(auth_type.span(), format!("auth_type {kind:?} is not PASS or AH"));
        return None;
    }
    if version == Some(Version::V3) {
        e.at(
            auth_type.span(),
            "auth_type is not allowed with vrrp_version 3: VRRPv3 adverts carry no \
             authentication (leave auth_type and auth_pass out)",
        );
        return None;
    }
    let Some(pass) = &v.auth_pass else {
        e.at(auth_type.span(), "auth_type \"PASS\" needs auth_pass");
        return None;
    };
    // The password is not repeated in errors: only its length matters here.
    let text = pass.get_ref();
    let len = text.len();
    if len == 0 {
        e.at(pass.span(), "auth_pass is empty");
    } else if len > AUTH_PASS_MAX {
        if !text.is_char_boundary(AUTH_PASS_MAX) {
            e.at(
                pass.span(),
                format!(
                    "auth_pass is {len} bytes long and VRRP carries only the first \
                     {AUTH_PASS_MAX}, which end inside a character: shorten it"
                ),
            );
            return None;
        }
        e.note(
            pass.span(),
            format!(
                "auth_pass is {len} bytes long: only the first {AUTH_PASS_MAX} are used, \
                 as keepalived does (\"Truncating auth_pass to {AUTH_PASS_MAX} characters\")"
            ),
        );
        return Some(text[..AUTH_PASS_MAX].to_owned());
    }
    Some(text.clone())
}

fn virtual_ipaddress(e: &mut Errors, v: &Spanned<String>) -> Ipv4Net {
    let text = v.get_ref();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text.as_str(), None),
    };
    let addr = addr.parse::<Ipv4Addr>();
    let prefix_len = prefix.map_or(Ok(32), str::parse::<u8>);
    match (addr, prefix_len) {
        (Ok(addr), Ok(prefix_len)) => {
            if !(1..=32).contains(&prefix_len) {
                e.at(
                    v.span(),
                    format!(
                        "virtual_ipaddress {text:?} has prefix {prefix_len}, out of range (1-32)"
                    ),
                );
            } else if addr.is_unspecified()
                || addr.is_broadcast()
                || addr.is_multicast()
                || addr.is_loopback()
            {
                e.at(
                    v.span(),
                    format!("virtual_ipaddress {addr} is not a unicast address a host can own"),
                );
            }
            Ipv4Net { addr, prefix_len }
        }
        _ => {
            e.at(v.span(), format!("virtual_ipaddress {text:?} is not IPV4 or IPV4/PREFIX"));
            Ipv4Net { addr: Ipv4Addr::UNSPECIFIED, prefix_len: 32 }
        }
    }
}

fn virtual_server(e: &mut Errors, v: &Spanned<RawVirtualServer>) -> VirtualServer {
    let v = v.get_ref();
    let vip = e.unicast("vip", &v.vip);
    let port: u16 = e.int("port", &v.port, 1, 65535).unwrap_or(0);
    let protocol = e.keyword(
        &v.protocol,
        L4Proto::Tcp,
        &[("TCP", L4Proto::Tcp), ("UDP", L4Proto::Udp)],
        |s| format!("protocol {s:?} is not supported: xdplb balances TCP or UDP"),
    );
    let lvs_sched = e.keyword(
        &v.lvs_sched,
        Scheduler::Wrr,
        &[("wrr", Scheduler::Wrr), ("rr", Scheduler::Rr)],
        |s| format!("lvs_sched {s:?} is not supported: xdplb schedules by wrr or rr"),
    );
    let lvs_method = e.keyword(&v.lvs_method, LvsMethod::Dr, &[("DR", LvsMethod::Dr)], |s| {
        format!(
            "lvs_method {s:?} is not supported: xdplb forwards by direct server return only (DR)"
        )
    });
    let persistence_timeout = v.persistence_timeout.as_ref().map(|t| {
        Duration::from_secs(
            e.int("persistence_timeout", t, 1, MAX_PERSISTENCE_TIMEOUT).unwrap_or(1),
        )
    });
    let persistence_granularity = match (&v.persistence_granularity, persistence_timeout) {
        (Some(g), Some(_)) => Some(netmask(e, g)),
        (Some(g), None) => {
            // keepalived then persists for 6 minutes; we ask for the timeout.
            e.at(
                g.span(),
                "persistence_granularity needs persistence_timeout: say how long a client \
                 stays with its real server (keepalived's default is 360)",
            );
            None
        }
        (None, Some(_)) => Some(Ipv4Addr::BROADCAST),
        (None, None) => None,
    };
    let quorum: u32 = e.int_or("quorum", &v.quorum, DEFAULT_QUORUM, 1, i64::from(u32::MAX));
    let hysteresis: u32 = e.int_or("hysteresis", &v.hysteresis, 0, 0, i64::from(u32::MAX));
    if let Some(h) = &v.hysteresis {
        if hysteresis >= quorum && quorum > 0 {
            e.at(
                h.span(),
                format!(
                    "hysteresis {hysteresis} must be less than quorum {quorum}: the quorum would \
                     only be lost with no live weight at all"
                ),
            );
        }
    }
    let notify = |e: &mut Errors, key: &str, v: &Option<Spanned<String>>| {
        v.as_ref().map(|s| e.command(key, s))
    };
    let sorry_server = v.sorry_server.as_ref().map(|s| sorry_server(e, s.get_ref(), port));
    let sorry_server_inhibit = v.sorry_server_inhibit.as_ref().is_some_and(|i| *i.get_ref());
    if let (true, None, Some(i)) = (sorry_server_inhibit, &sorry_server, &v.sorry_server_inhibit) {
        e.at(
            i.span(),
            "sorry_server_inhibit needs a sorry_server (keepalived ignores it without one)",
        );
    }
    VirtualServer {
        vip,
        port,
        protocol,
        lvs_sched,
        lvs_method,
        delay_loop: e.secs("delay_loop", &v.delay_loop, DEFAULT_DELAY_LOOP, 0.001, DAY),
        persistence_timeout,
        persistence_granularity,
        quorum,
        hysteresis,
        quorum_up: notify(e, "quorum_up", &v.quorum_up),
        quorum_down: notify(e, "quorum_down", &v.quorum_down),
        sorry_server,
        sorry_server_inhibit,
        real_servers: v.real_server.iter().map(|r| real_server(e, r.get_ref(), port)).collect(),
    }
}

/// A contiguous IPv4 netmask written as a dotted quad, as keepalived's
/// `persistence_granularity` (check_parser.c: "netmask is not solid").
fn netmask(e: &mut Errors, v: &Spanned<String>) -> Ipv4Addr {
    let text = v.get_ref();
    let Ok(mask) = text.parse::<Ipv4Addr>() else {
        e.at(
            v.span(),
            format!("persistence_granularity {text:?} is not a netmask (e.g. \"255.255.255.0\")"),
        );
        return Ipv4Addr::BROADCAST;
    };
    let bits = u32::from(mask);
    // Contiguous: ones from the top, then only zeros; at least one bit set.
    if bits == 0 || bits.leading_ones() + bits.trailing_zeros() != 32 {
        e.at(
            v.span(),
            format!(
                "persistence_granularity {mask} is not a contiguous netmask \
                 (ones then zeros, e.g. 255.255.255.0)"
            ),
        );
    }
    mask
}

fn sorry_server(e: &mut Errors, s: &RawSorryServer, virtual_port: u16) -> SorryServer {
    SorryServer {
        ip: e.unicast("sorry_server ip", &s.ip),
        port: match &s.port {
            Some(p) => e.int("sorry_server port", p, 1, 65535).unwrap_or(0),
            None => virtual_port,
        },
    }
}

fn real_server(e: &mut Errors, r: &RawRealServer, virtual_port: u16) -> RealServer {
    let port = match &r.port {
        Some(p) => e.int("port", p, 1, 65535).unwrap_or(0),
        None => virtual_port,
    };
    RealServer {
        ip: e.unicast("ip", &r.ip),
        port,
        weight: e.int_or("weight", &r.weight, DEFAULT_WEIGHT, 0, 65535),
        inhibit_on_failure: r.inhibit_on_failure.unwrap_or(false),
        http_get: r.http_get.as_ref().map(|h| http_get(e, h, port)),
        tcp_check: r.tcp_check.as_ref().map(|t| tcp_check(e, t.get_ref(), port)),
    }
}

fn bindto(e: &mut Errors, v: &Option<Spanned<String>>) -> Option<Ipv4Addr> {
    let v = v.as_ref()?;
    match v.get_ref().parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            e.at(v.span(), format!("bindto {:?} is not an IPv4 address", v.get_ref()));
            None
        }
    }
}

fn http_get(e: &mut Errors, h: &Spanned<RawHttpGet>, port: u16) -> HttpGet {
    let span = h.span();
    let h = h.get_ref();
    if h.url.is_empty() {
        e.at(span, "http_get needs at least one [[...http_get.url]] with a path");
    }
    HttpGet {
        connect_port: e.int_or("connect_port", &h.connect_port, i64::from(port), 1, 65535),
        connect_timeout: e.secs(
            "connect_timeout",
            &h.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
            0.001,
            3600.0,
        ),
        bindto: bindto(e, &h.bindto),
        retry: e.int_or("retry", &h.retry, DEFAULT_RETRY, 0, 100),
        delay_before_retry: e.secs(
            "delay_before_retry",
            &h.delay_before_retry,
            DEFAULT_HTTP_DELAY_BEFORE_RETRY,
            0.0,
            3600.0,
        ),
        urls: h
            .url
            .iter()
            .map(|u| {
                let u = u.get_ref();
                let path = u.path.get_ref();
                if !path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    e.at(
                        u.path.span(),
                        format!("url path {path:?} must start with '/' and have no spaces"),
                    );
                }
                Url {
                    path: path.clone(),
                    status_code: e.int_or(
                        "status_code",
                        &u.status_code,
                        DEFAULT_STATUS_CODE,
                        100,
                        599,
                    ),
                    digest: u.digest.as_ref().map(|d| digest(e, d)),
                }
            })
            .collect(),
    }
}

fn digest(e: &mut Errors, d: &Spanned<String>) -> String {
    let text = d.get_ref();
    if text.len() != 32 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        e.at(d.span(), format!("digest {text:?} is not an MD5 digest (32 hex digits)"));
    }
    text.to_ascii_lowercase()
}

fn tcp_check(e: &mut Errors, t: &RawTcpCheck, port: u16) -> TcpCheck {
    TcpCheck {
        connect_port: e.int_or("connect_port", &t.connect_port, i64::from(port), 1, 65535),
        connect_timeout: e.secs(
            "connect_timeout",
            &t.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
            0.001,
            3600.0,
        ),
        bindto: bindto(e, &t.bindto),
        retry: e.int_or("retry", &t.retry, DEFAULT_RETRY, 0, 100),
        delay_before_retry: e.secs(
            "delay_before_retry",
            &t.delay_before_retry,
            DEFAULT_TCP_DELAY_BEFORE_RETRY,
            0.0,
            3600.0,
        ),
    }
}

fn dataplane(e: &mut Errors, d: Option<&RawDataplane>) -> Dataplane {
    let empty;
    let d = match d {
        Some(d) => d,
        None => {
            empty = RawDataplane::default();
            &empty
        }
    };
    let ring_size = e.pow2("ring_size", &d.ring_size, DEFAULT_RING_SIZE, 64, 16384);
    let umem_frames = if d.umem_frames.is_some() {
        // At least a full fill ring, or RX starves before it starts.
        e.pow2("umem_frames", &d.umem_frames, 0, i64::from(ring_size.max(64)), 1 << 20)
    } else {
        ring_size.saturating_mul(2)
    };
    let cores = d.cores.as_ref().map(|c| {
        if c.get_ref().is_empty() {
            e.at(c.span(), "cores is empty: list CPU ids, or leave cores out for no pinning");
        }
        c.get_ref().iter().map(|id| e.int("cores entry", id, 0, MAX_CPU).unwrap_or(0)).collect()
    });
    let frame_size = match &d.frame_size {
        None => DEFAULT_FRAME_SIZE,
        Some(f) => {
            let n = *f.get_ref();
            if n != 2048 && n != 4096 {
                e.at(f.span(), format!("frame_size {n} is not 2048 or 4096"));
            }
            n
        }
    };
    Dataplane {
        interface: d.interface.as_ref().map(|i| e.interface_name(i)).unwrap_or_default(),
        xdp_mode: e.keyword(
            &d.xdp_mode,
            XdpMode::Auto,
            &[("auto", XdpMode::Auto), ("native", XdpMode::Native), ("generic", XdpMode::Generic)],
            |s| format!("xdp_mode {s:?} is not one of auto, native, generic"),
        ),
        bind_mode: e.keyword(
            &d.bind_mode,
            BindMode::Auto,
            &[("auto", BindMode::Auto), ("copy", BindMode::Copy), ("zerocopy", BindMode::ZeroCopy)],
            |s| format!("bind_mode {s:?} is not one of auto, copy, zerocopy"),
        ),
        queues: d.queues.as_ref().and_then(|q| e.int("queues", q, 1, 1024)),
        cores,
        poll: e.keyword(
            &d.poll,
            PollMode::Adaptive,
            &[
                ("adaptive", PollMode::Adaptive),
                ("busy", PollMode::Busy),
                ("busy_napi", PollMode::BusyNapi),
            ],
            |s| format!("poll {s:?} is not one of adaptive, busy, busy_napi"),
        ),
        batch_size: e.int_or("batch_size", &d.batch_size, DEFAULT_BATCH_SIZE, 1, 256),
        ring_size,
        frame_size: u32::try_from(frame_size).unwrap_or_default(),
        umem_frames,
        flow_table_size: e.int_or(
            "flow_table_size",
            &d.flow_table_size,
            DEFAULT_FLOW_TABLE_SIZE,
            1,
            1 << 24,
        ),
        tcp_timeout: e.secs(
            "tcp_timeout",
            &d.tcp_timeout,
            DEFAULT_TCP_TIMEOUT,
            1.0,
            MAX_FLOW_TIMEOUT,
        ),
        tcpfin_timeout: e.secs(
            "tcpfin_timeout",
            &d.tcpfin_timeout,
            DEFAULT_TCPFIN_TIMEOUT,
            1.0,
            MAX_FLOW_TIMEOUT,
        ),
        udp_timeout: e.secs(
            "udp_timeout",
            &d.udp_timeout,
            DEFAULT_UDP_TIMEOUT,
            1.0,
            MAX_FLOW_TIMEOUT,
        ),
    }
}

fn metrics(e: &mut Errors, m: Option<&RawMetrics>) -> Metrics {
    let listen = m.and_then(|m| m.listen.as_ref()).and_then(|l| match l.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            e.at(
                l.span(),
                format!("listen {:?} is not ADDR:PORT (e.g. \"127.0.0.1:9410\")", l.get_ref()),
            );
            None
        }
    });
    Metrics { listen }
}

fn control(e: &mut Errors, c: Option<&RawControl>) -> Control {
    let empty;
    let c = match c {
        Some(c) => c,
        None => {
            empty = RawControl::default();
            &empty
        }
    };
    let socket = c.socket.as_ref().map(|s| {
        if s.get_ref().is_empty() || s.get_ref().contains('\0') {
            e.at(s.span(), format!("socket {:?} is not a usable socket path", s.get_ref()));
        }
        s.get_ref().clone()
    });
    Control {
        neighbour_refresh: e.secs(
            "neighbour_refresh",
            &c.neighbour_refresh,
            DEFAULT_NEIGHBOUR_REFRESH,
            0.1,
            3600.0,
        ),
        socket,
    }
}

/// Checks between the keys of one vrrp_instance, and against the scripts and VIPs.
fn vrrp_relations(
    e: &mut Errors,
    v: &VrrpInstance,
    s: &VrrpSpans,
    scripts: &HashMap<&str, &Range<usize>>,
    vrrp_vips: &HashMap<Ipv4Addr, &Range<usize>>,
) {
    // keepalived: "nopreempt will not work with initial state MASTER" (and
    // likewise preempt_delay); it clears them with a warning, we refuse.
    if v.state == VrrpState::Master {
        if let (true, Some(span)) = (v.nopreempt, &s.nopreempt) {
            e.at(
                span.clone(),
                format!(
                    "nopreempt needs state = \"BACKUP\": vrrp_instance {:?} starts as MASTER, \
                     where keepalived ignores nopreempt",
                    v.name
                ),
            );
        }
        if let (false, Some(span)) = (v.preempt_delay.is_zero(), &s.preempt_delay) {
            e.at(
                span.clone(),
                format!(
                    "preempt_delay needs state = \"BACKUP\": vrrp_instance {:?} starts as \
                     MASTER, where keepalived ignores preempt_delay",
                    v.name
                ),
            );
        }
    }
    if let (Some(src), Some(span)) = (v.unicast_src_ip, &s.unicast_src_ip) {
        if vrrp_vips.contains_key(&src) {
            e.at(
                span.clone(),
                format!(
                    "unicast_src_ip {src} is a VIP: adverts leave from the director's own address"
                ),
            );
        }
    }
    let mut peers: HashMap<Ipv4Addr, &Range<usize>> = HashMap::new();
    for (peer, span) in v.unicast_peer.iter().zip(&s.unicast_peer) {
        if Some(*peer) == v.unicast_src_ip {
            e.at(
                span.clone(),
                format!(
                    "unicast_peer {peer} is unicast_src_ip itself: adverts would go to ourselves"
                ),
            );
        } else if vrrp_vips.contains_key(peer) {
            e.at(
                span.clone(),
                format!(
                    "unicast_peer {peer} is a VIP: peers are the other directors' own addresses"
                ),
            );
        }
        if let Some(first) = peers.insert(*peer, span) {
            let line = e.line(first);
            e.at(
                span.clone(),
                format!("unicast_peer {peer} is listed twice (first at line {line})"),
            );
        }
    }
    let mut tracked: HashMap<&str, &Range<usize>> = HashMap::new();
    for (name, span) in v.track_interface.iter().zip(&s.track_interface) {
        if let Some(first) = tracked.insert(name, span) {
            let line = e.line(first);
            e.at(
                span.clone(),
                format!("track_interface {name} is listed twice (first at line {line})"),
            );
        }
    }
    let mut tracked: HashMap<&str, &Range<usize>> = HashMap::new();
    for (name, span) in v.track_script.iter().zip(&s.track_script) {
        if !scripts.contains_key(name.as_str()) {
            let mut known: Vec<&str> = scripts.keys().copied().collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "there is none".to_owned()
            } else {
                format!("there are {}", known.join(", "))
            };
            e.at(
                span.clone(),
                format!(
                    "track_script {name:?} of vrrp_instance {:?} names no [[vrrp_script]] ({known})",
                    v.name
                ),
            );
        }
        if let Some(first) = tracked.insert(name, span) {
            let line = e.line(first);
            e.at(
                span.clone(),
                format!("track_script {name:?} is listed twice (first at line {line})"),
            );
        }
    }
}

/// Checks between entries and settles the data-plane interface; returns the
/// span of the key that named it.
fn relations(e: &mut Errors, config: &mut Config, spans: &Spans) -> Option<Range<usize>> {
    let mut names: HashMap<&str, &Range<usize>> = HashMap::new();
    let mut vrids: HashMap<(&str, u8), &str> = HashMap::new();
    let mut vrrp_vips: HashMap<Ipv4Addr, &Range<usize>> = HashMap::new();
    for (v, s) in config.vrrp_instances.iter().zip(&spans.vrrp) {
        if let Some(first) = names.insert(&v.name, &s.name) {
            let line = e.line(first);
            e.at(
                s.name.clone(),
                format!("vrrp_instance {:?} is defined twice (first at line {line})", v.name),
            );
        }
        if let Some(other) = vrids.insert((&v.interface, v.virtual_router_id), &v.name) {
            e.at(
                s.vrid.clone(),
                format!(
                    "virtual_router_id {} on {} is used by vrrp_instance {other:?} and {:?}",
                    v.virtual_router_id, v.interface, v.name
                ),
            );
        }
        for (net, span) in v.virtual_ipaddress.iter().zip(&s.vips) {
            if let Some(first) = vrrp_vips.insert(net.addr, span) {
                let line = e.line(first);
                e.at(
                    span.clone(),
                    format!(
                        "virtual_ipaddress {} is listed twice (first at line {line})",
                        net.addr
                    ),
                );
            }
        }
    }

    let mut scripts: HashMap<&str, &Range<usize>> = HashMap::new();
    for (script, span) in config.vrrp_scripts.iter().zip(&spans.scripts) {
        if let Some(first) = scripts.insert(&script.name, span) {
            let line = e.line(first);
            e.at(
                span.clone(),
                format!("vrrp_script {:?} is defined twice (first at line {line})", script.name),
            );
        }
    }
    for (v, s) in config.vrrp_instances.iter().zip(&spans.vrrp) {
        vrrp_relations(e, v, s, &scripts, &vrrp_vips);
    }

    let mut services = HashMap::new();
    let vips: Vec<Ipv4Addr> =
        config.virtual_servers.iter().map(|vs| vs.vip).chain(vrrp_vips.keys().copied()).collect();
    for (vs, s) in config.virtual_servers.iter().zip(&spans.vs) {
        let name = service_name(&vs.key());
        if let Some(first) = services.insert(vs.key(), &s.vip) {
            let line = e.line(first);
            e.at(
                s.vip.clone(),
                format!("virtual_server {name} is defined twice (first at line {line})"),
            );
        }
        let mut seen: HashMap<Ipv4Addr, &Range<usize>> = HashMap::new();
        for ((rs, ip_span), port_span) in vs.real_servers.iter().zip(&s.rs_ip).zip(&s.rs_port) {
            if rs.port != vs.port {
                e.at(
                    port_span.clone().unwrap_or_else(|| ip_span.clone()),
                    format!(
                        "DR cannot rewrite ports: real server {}:{} differs from virtual port {}",
                        rs.ip, rs.port, vs.port
                    ),
                );
            }
            if let Some(first) = seen.insert(rs.ip, ip_span) {
                let line = e.line(first);
                e.at(
                    ip_span.clone(),
                    format!(
                        "real server {}:{} is listed twice in virtual_server {name} (first at line {line})",
                        rs.ip, rs.port
                    ),
                );
            }
            if vips.contains(&rs.ip) {
                e.at(
                    ip_span.clone(),
                    format!(
                        "real server {} is also a VIP: DR needs real servers with addresses of their own",
                        rs.ip
                    ),
                );
            }
        }
        if let (Some(sorry), Some(ip_span)) = (&vs.sorry_server, &s.sorry_ip) {
            if sorry.port != vs.port {
                e.at(
                    s.sorry_port.clone().unwrap_or_else(|| ip_span.clone()),
                    format!(
                        "DR cannot rewrite ports: sorry_server {}:{} differs from virtual port {}",
                        sorry.ip, sorry.port, vs.port
                    ),
                );
            }
            if vips.contains(&sorry.ip) {
                e.at(
                    ip_span.clone(),
                    format!(
                        "sorry_server {} is a VIP: DR needs a sorry server with an address of its own",
                        sorry.ip
                    ),
                );
            }
        }
    }

    if let Some(span) = &spans.dataplane_interface {
        // VRRP moves a service's VIP; on another interface, traffic for it
        // would arrive where the data plane is not listening.
        let serves = &config.dataplane.interface;
        for vs in &config.virtual_servers {
            for (v, s) in config.vrrp_instances.iter().zip(&spans.vrrp) {
                let holds = v.virtual_ipaddress.iter().any(|net| net.addr == vs.vip);
                if holds && v.interface != *serves {
                    e.at(
                        s.interface.clone(),
                        format!(
                            "vrrp_instance {:?} holds VIP {} of virtual_server {} on {}, \
                             but the data plane serves {serves}",
                            v.name,
                            vs.vip,
                            service_name(&vs.key()),
                            v.interface
                        ),
                    );
                }
            }
        }
        return Some(span.clone());
    }
    let mut interfaces: Vec<&str> = Vec::new();
    let mut clash = None;
    for (v, s) in config.vrrp_instances.iter().zip(&spans.vrrp) {
        if !interfaces.contains(&v.interface.as_str()) {
            if !interfaces.is_empty() && clash.is_none() {
                clash = Some(s.interface.clone());
            }
            interfaces.push(&v.interface);
        }
    }
    match (interfaces.as_slice(), clash) {
        ([], _) => {
            e.nowhere("no data-plane interface: set [dataplane] interface, or name one in a vrrp_instance");
            None
        }
        (_, Some(span)) => {
            e.at(
                span,
                format!(
                    "vrrp_instances use several interfaces ({}): set [dataplane] interface \
                     to the one the data plane serves",
                    interfaces.join(", ")
                ),
            );
            None
        }
        ([only, ..], None) => {
            config.dataplane.interface = (*only).to_owned();
            spans.vrrp.first().map(|s| s.interface.clone())
        }
    }
}
