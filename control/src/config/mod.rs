//! The configuration contract: TOML whose names follow keepalived's, read into
//! a plain, fully defaulted [`Config`] that [`Config::to_toml`] prints back.
//! Checks against the host's interfaces are separate, in [`live`].
//!
//! The file has six parts; every key is optional unless marked required,
//! and an unknown key anywhere is an error. Defaults are keepalived's, with
//! one deliberate exception: `higher_prio_send_advert` is on.
//!
//! ```toml
//! [global_defs]                  # keepalived's names, `vrrp_` prefix and all
//! router_id = "LVS_DEVEL"        # informational
//! vrrp_version = 2               # 2 | 3: default of every vrrp_instance
//! vrrp_garp_master_delay = 5.0   # defaults of the instances' garp_* keys below
//! vrrp_garp_master_repeat = 5
//! vrrp_garp_master_refresh = 0.0
//! vrrp_garp_master_refresh_repeat = 1
//! vrrp_garp_lower_prio_delay = 5.0   # unwritten: each instance's garp_master_delay
//! vrrp_garp_lower_prio_repeat = 5    # unwritten: each instance's garp_master_repeat
//! vrrp_garp_interval = 0.0
//! vrrp_higher_prio_send_advert = true
//!
//! [[vrrp_script]]                # zero or more; runs only if some instance tracks it
//! name = "chk_nginx"             # required, unique, one word
//! script = "/usr/bin/pgrep nginx"    # required; a command line (see notify_master)
//! interval = 1.0                 # seconds between runs
//! timeout = 1.0                  # default: interval
//! weight = 0                     # -253..253; 0 = `fall` failures mean FAULT
//! rise = 1                       # successes to come up, >= 1
//! fall = 1                       # failures to go down, >= 1
//! user = "nobody"                # optional: "username [:][groupname]"
//! init_fail = false              # start failed
//!
//! [[vrrp_instance]]              # zero or more
//! name = "VI_1"                  # required, unique
//! state = "BACKUP"               # BACKUP (default) | MASTER
//! interface = "eth0"             # required
//! virtual_router_id = 51         # required, 1-255, unique per interface
//! priority = 100                 # 1-254
//! vrrp_version = 2               # 2 | 3 (keepalived's `version` is read too);
//!                                # default: [global_defs] vrrp_version
//! advert_int = 1.0               # v2: whole seconds 1-255; v3: centiseconds 0.01-40.95
//! auth_type = "PASS"             # PASS, or leave out; AH is refused; not with v3
//! auth_pass = "1111"             # required with PASS; > 8 bytes: cut to 8, warned
//! nopreempt = false              # true needs state BACKUP
//! preempt_delay = 0.0            # seconds 0-1000; > 0 needs state BACKUP
//! higher_prio_send_advert = true # keepalived's default is false (see GlobalDefs)
//! unicast_src_ip = "192.168.10.101"  # optional source of our adverts (on `interface`)
//! unicast_peer = []              # not empty: adverts go by unicast to each
//! garp_master_delay = 5.0        # seconds 0-4294; second GARP burst, 0 = none
//! garp_master_repeat = 5         # GARP rounds per burst, 1-1000
//! garp_master_refresh = 0.0      # refresh period while master, 0 = off
//! garp_master_refresh_repeat = 1 # 1-1000
//! garp_lower_prio_delay = 5.0    # default: garp_master_delay
//! garp_lower_prio_repeat = 5     # 0-1000, default: garp_master_repeat
//! garp_interval = 0.0            # seconds 0-10 between GARP rounds
//! track_interface = []           # interface names: any down = FAULT
//! track_script = []              # [[vrrp_script]] names
//! notify_master = "/etc/xdplb/master.sh"   # optional command lines, kept as
//! notify_backup = "…"            # written: keepalived splits them at unquoted
//! notify_fault = "…"             # whitespace, execs the first word if it is
//! notify_stop = "…"              # executable, else runs the line with /bin/sh -c;
//! notify = "…"                   # `notify` gets INSTANCE NAME STATE PRIORITY appended
//! virtual_ipaddress = ["192.168.10.110"]   # "IP" (/32) or "IP/PREFIX"
//!
//! [[virtual_server]]             # zero or more, unique by vip/port/protocol
//! vip = "192.168.10.110"         # required
//! port = 80                      # required, 1-65535
//! protocol = "TCP"               # TCP (default) | UDP
//! lvs_sched = "wrr"              # wrr (default) | rr
//! lvs_method = "DR"              # DR only (the default)
//! delay_loop = 60.0              # seconds between health checks
//! persistence_timeout = 360      # whole seconds a client sticks to its real server
//!                                # (ipvsadm -p); absent: no persistence
//! persistence_granularity = "255.255.255.0"  # contiguous netmask grouping clients
//!                                # (ipvsadm -M); only with persistence_timeout;
//!                                # default 255.255.255.255
//! quorum = 1                     # least total weight of live real servers, >= 1
//! hysteresis = 0                 # lost below quorum - hysteresis, regained at
//!                                # quorum + hysteresis; less than quorum
//! quorum_up = "/etc/xdplb/quorum.sh up"      # optional command lines, run
//! quorum_down = "/etc/xdplb/quorum.sh down"  # like notify_master
//! sorry_server = { ip = "192.168.10.200", port = 80 }  # optional; replaces the
//!                                # real servers while the quorum is lost; on-link,
//!                                # not a VIP; port: the virtual port (default)
//! sorry_server_inhibit = false   # true: weight 0 while unused instead of removed
//!
//! [[virtual_server.real_server]] # zero or more (none is legal, as in keepalived)
//! ip = "192.168.10.103"          # required; on-link, not a VIP, unique per service
//! port = 80                      # the virtual port (DR cannot rewrite ports)
//! weight = 1                     # 0-65535
//! inhibit_on_failure = false     # failed check: weight 0 instead of removal
//! [virtual_server.real_server.http_get]    # optional
//! connect_port = 80              # default: the real server's port
//! connect_timeout = 5.0          # seconds, as keepalived
//! bindto = "192.168.10.101"      # optional source address
//! retry = 1                      # 0-100
//! delay_before_retry = 3.0       # seconds (TCP_CHECK: 1.0), as keepalived
//! [[virtual_server.real_server.http_get.url]]  # at least one
//! path = "/health_check.html"    # required, starts with '/'
//! status_code = 200              # 100-599 (keepalived without it: any 2xx)
//! digest = "…"                   # optional MD5 of the body, 32 hex digits
//! [virtual_server.real_server.tcp_check]   # optional: connect_port,
//!                                # connect_timeout, bindto, retry, delay_before_retry
//!
//! [dataplane]
//! interface = "eth0"             # required unless the vrrp_instances name one
//! xdp_mode = "auto"              # auto | native | generic
//! bind_mode = "auto"             # auto | copy | zerocopy
//! queues = 2                     # RX queues 0..queues; absent: all of them
//! cores = [0, 1]                 # worker i on cores[i % len]; absent: no pinning
//! poll = "adaptive"              # adaptive | busy | busy_napi (busy + the
//!                                # kernel's preferred busy polling)
//! batch_size = 64                # 1-256
//! ring_size = 2048               # power of two 64-16384
//! frame_size = 4096              # 2048 | 4096
//! umem_frames = 4096             # per worker; power of two >= ring_size,
//!                                # default 2 x ring_size (16 MiB at the defaults)
//! flow_table_size = 65536        # per worker, 1-16777216
//! tcp_timeout = 900.0            # as ipvsadm --set tcp tcpfin udp
//! tcpfin_timeout = 120.0
//! udp_timeout = 300.0
//!
//! [control]
//! neighbour_refresh = 10.0       # seconds between neighbour re-checks
//! socket = "/run/xdplb/xdplb.sock" # status socket; absent: abstract @xdplb (per namespace)
//!
//! [metrics]
//! listen = "127.0.0.1:9410"      # Prometheus /metrics; absent: off
//! ```
//!
//! Errors read `FILE:LINE: reason`. Only the first is reported, in this order:
//! 1. TOML syntax and shape (unknown key, wrong type, missing required key),
//!    as the TOML reader meets them, top to bottom;
//! 2. values (ranges, keywords, addresses): the earliest in the file;
//! 3. relations between entries (duplicates, DR port rule, a VIP that is also
//!    a real server or the sorry server, track_script names, unicast peers, nopreempt with MASTER,
//!    which interface the data plane serves): the earliest in the file, and an
//!    error with no line of its own last.
//!
//! Legal but doubtful settings (a cut auth_pass, an untracked vrrp_script, a
//! service without real servers, a quorum its real servers cannot reach) are
//! [`Config::warnings`].

mod model;
mod raw;
mod validate;

pub mod live;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use model::{
    sched_name, service_name, BindMode, Config, Control, Dataplane, GlobalDefs, HttpGet, Ipv4Net,
    LvsMethod, Metrics, Persistence, PollMode, RealServer, SorryServer, TcpCheck, Url,
    VirtualServer, VrrpInstance, VrrpScript, VrrpState, XdpMode,
};

/// Why a configuration was refused; `Display` is `FILE:LINE: reason`, or
/// `FILE: reason` when no line applies.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the expected shape: syntax, unknown key, wrong type, missing key.
    #[error("{file}{}: {reason}", At(*.line))]
    Syntax {
        /// The file label.
        file: String,
        /// 1-based line, when the TOML reader knows it.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// Well-formed, but not a configuration xdplb can run.
    #[error("{file}{}: {reason}", At(*.line))]
    Invalid {
        /// The file label.
        file: String,
        /// 1-based line of the offending key or value.
        line: Option<usize>,
        /// What is wrong, naming the value.
        reason: String,
    },
    /// Contradicted by the host: interface missing, real server not on-link.
    #[error("{file}{}: {reason}", At(*.line))]
    Live {
        /// The file label.
        file: String,
        /// 1-based line of the key the host contradicts.
        line: Option<usize>,
        /// What is wrong, naming the value.
        reason: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { line, .. } | Self::Invalid { line, .. } | Self::Live { line, .. } => {
                *line
            }
        }
    }
}

/// `:LINE` or nothing.
struct At(Option<usize>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// Reads and validates a configuration file; errors are labelled with `path` as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    parse(&text, &file)
}

/// Parses and validates configuration text; `file_label` prefixes every error.
pub fn parse(text: &str, file_label: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file_label.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        reason: toml_reason(text, &e),
    })?;
    validate::build(raw, text, file_label)
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The TOML reader's message, in the file's words: the key it is about and
/// TOML's type names rather than Rust's.
fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    let span = e.span();
    let spanned_text = span.as_ref().and_then(|s| text.get(s.clone())).unwrap_or("").trim();
    if message == "duplicate key" && !spanned_text.is_empty() {
        return format!("duplicate key `{spanned_text}`");
    }
    if message.starts_with("unknown field") {
        return message.replacen("unknown field", "unknown key", 1);
    }
    if let Some(rest) = message.strip_prefix("missing field") {
        // The span is the table's header, e.g. `[[virtual_server]]`.
        return if spanned_text.starts_with('[') && !spanned_text.contains('\n') {
            format!("missing key{rest} in {spanned_text}")
        } else {
            format!("missing key{rest}")
        };
    }
    let message = message
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array")
        .replace("map,", "table,")
        .replace("sequence,", "array,");
    match span.and_then(|s| key_before(text, s.start)) {
        Some(key) => format!("{key}: {message}"),
        None => message,
    }
}

/// The key of `key = value` when `offset` is where the value starts.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let head = before[line_start..].trim_end().strip_suffix('=')?.trim_end();
    let key = head.rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace()).next()?;
    let key = key.trim_matches('"');
    (!key.is_empty()).then_some(key)
}
