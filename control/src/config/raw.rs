//! The file as written: serde shapes with spans on every value a later check
//! may point at, `Option` where a default applies, unknown keys refused.
//! Numbers are read wide (`i64`, `f64`) so range errors can name the value.

use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub global_defs: Option<S<RawGlobalDefs>>,
    #[serde(default)]
    pub vrrp_script: Vec<S<RawVrrpScript>>,
    #[serde(default)]
    pub vrrp_instance: Vec<S<RawVrrp>>,
    #[serde(default)]
    pub virtual_server: Vec<S<RawVirtualServer>>,
    pub dataplane: Option<S<RawDataplane>>,
    pub control: Option<S<RawControl>>,
    pub metrics: Option<S<RawMetrics>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrp {
    pub name: S<String>,
    pub state: Option<S<String>>,
    pub interface: S<String>,
    pub virtual_router_id: S<i64>,
    pub priority: Option<S<i64>>,
    pub advert_int: Option<S<f64>>,
    pub auth_type: Option<S<String>>,
    pub auth_pass: Option<S<String>>,
    #[serde(default)]
    pub virtual_ipaddress: Vec<S<String>>,
    /// keepalived names the instance keyword `version`; both are read.
    #[serde(alias = "version")]
    pub vrrp_version: Option<S<i64>>,
    pub nopreempt: Option<S<bool>>,
    pub preempt_delay: Option<S<f64>>,
    pub garp_master_delay: Option<S<f64>>,
    pub garp_master_repeat: Option<S<i64>>,
    pub garp_master_refresh: Option<S<f64>>,
    pub garp_master_refresh_repeat: Option<S<i64>>,
    pub garp_lower_prio_delay: Option<S<f64>>,
    pub garp_lower_prio_repeat: Option<S<i64>>,
    pub garp_interval: Option<S<f64>>,
    pub higher_prio_send_advert: Option<bool>,
    pub unicast_src_ip: Option<S<String>>,
    #[serde(default)]
    pub unicast_peer: Vec<S<String>>,
    pub notify_master: Option<S<String>>,
    pub notify_backup: Option<S<String>>,
    pub notify_fault: Option<S<String>>,
    pub notify_stop: Option<S<String>>,
    pub notify: Option<S<String>>,
    #[serde(default)]
    pub track_interface: Vec<S<String>>,
    #[serde(default)]
    pub track_script: Vec<S<String>>,
}

/// keepalived's global_defs keys, `vrrp_` prefix and all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobalDefs {
    pub router_id: Option<S<String>>,
    pub vrrp_version: Option<S<i64>>,
    pub vrrp_garp_master_delay: Option<S<f64>>,
    pub vrrp_garp_master_repeat: Option<S<i64>>,
    pub vrrp_garp_master_refresh: Option<S<f64>>,
    pub vrrp_garp_master_refresh_repeat: Option<S<i64>>,
    pub vrrp_garp_lower_prio_delay: Option<S<f64>>,
    pub vrrp_garp_lower_prio_repeat: Option<S<i64>>,
    pub vrrp_garp_interval: Option<S<f64>>,
    pub vrrp_higher_prio_send_advert: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrpScript {
    pub name: S<String>,
    pub script: S<String>,
    pub interval: Option<S<f64>>,
    pub timeout: Option<S<f64>>,
    pub weight: Option<S<i64>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub user: Option<S<String>>,
    pub init_fail: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualServer {
    pub vip: S<String>,
    pub port: S<i64>,
    pub protocol: Option<S<String>>,
    pub lvs_sched: Option<S<String>>,
    pub lvs_method: Option<S<String>>,
    pub delay_loop: Option<S<f64>>,
    pub persistence_timeout: Option<S<i64>>,
    pub persistence_granularity: Option<S<String>>,
    pub quorum: Option<S<i64>>,
    pub hysteresis: Option<S<i64>>,
    pub quorum_up: Option<S<String>>,
    pub quorum_down: Option<S<String>>,
    pub sorry_server: Option<S<RawSorryServer>>,
    pub sorry_server_inhibit: Option<S<bool>>,
    #[serde(default)]
    pub real_server: Vec<S<RawRealServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSorryServer {
    pub ip: S<String>,
    pub port: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealServer {
    pub ip: S<String>,
    pub port: Option<S<i64>>,
    pub weight: Option<S<i64>>,
    pub inhibit_on_failure: Option<bool>,
    pub http_get: Option<S<RawHttpGet>>,
    pub tcp_check: Option<S<RawTcpCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpGet {
    pub connect_port: Option<S<i64>>,
    pub connect_timeout: Option<S<f64>>,
    pub bindto: Option<S<String>>,
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
    #[serde(default)]
    pub url: Vec<S<RawUrl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUrl {
    pub path: S<String>,
    pub status_code: Option<S<i64>>,
    pub digest: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcpCheck {
    pub connect_port: Option<S<i64>>,
    pub connect_timeout: Option<S<f64>>,
    pub bindto: Option<S<String>>,
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub interface: Option<S<String>>,
    pub xdp_mode: Option<S<String>>,
    pub bind_mode: Option<S<String>>,
    pub queues: Option<S<i64>>,
    pub cores: Option<S<Vec<S<i64>>>>,
    pub poll: Option<S<String>>,
    pub batch_size: Option<S<i64>>,
    pub ring_size: Option<S<i64>>,
    pub frame_size: Option<S<i64>>,
    pub umem_frames: Option<S<i64>>,
    pub flow_table_size: Option<S<i64>>,
    pub tcp_timeout: Option<S<f64>>,
    pub tcpfin_timeout: Option<S<f64>>,
    pub udp_timeout: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub neighbour_refresh: Option<S<f64>>,
    pub socket: Option<S<String>>,
}
