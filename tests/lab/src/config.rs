//! xdplb configurations for lab tests, written in the TOML contract of
//! DESIGN.md ("Configuration") with keepalived's names: one load balancer
//! owning its VIP unconditionally (like configs/single-lb.toml), or a VRRP
//! instance in front of it (like configs/seed-lab.toml), which also renders
//! as keepalived.conf so keepalived 2.2.7 can be the other director.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// One real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Its own address on the segment.
    pub ip: Ipv4Addr,
    /// The port it serves on.
    pub port: u16,
    /// WRR weight.
    pub weight: u32,
}

/// A single-director configuration: one VIP:port/TCP service, owned without
/// VRRP, served on one interface.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleLb {
    /// The data-plane interface.
    pub interface: String,
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The real servers, in order.
    pub real_servers: Vec<RealServer>,
    /// Whether each real server gets the seed's HTTP_GET /health_check.html check.
    pub health_check: bool,
    /// Seconds between health checks (keepalived `delay_loop`).
    pub delay_loop: f64,
    /// A failed check sets weight 0 (drain) instead of removing the server.
    pub inhibit_on_failure: bool,
    /// The health check's `connect_timeout` in seconds.
    pub connect_timeout: f64,
    /// The health check's `retry`, when not keepalived's default.
    pub retry: Option<u32>,
    /// The health check's `delay_before_retry` in seconds, when not the default.
    pub delay_before_retry: Option<f64>,
    /// Extra `key = value` lines for the `[dataplane]` table.
    pub dataplane_extra: Vec<String>,
}

impl SingleLb {
    /// The seed's service on `vip`:80 over eth0, with `real_servers` as
    /// (address, weight) on port 80 and health checks on.
    pub fn new(vip: Ipv4Addr, real_servers: &[(Ipv4Addr, u32)]) -> Self {
        Self {
            interface: "eth0".to_owned(),
            vip,
            port: 80,
            real_servers: real_servers
                .iter()
                .map(|&(ip, weight)| RealServer { ip, port: 80, weight })
                .collect(),
            health_check: true,
            delay_loop: 3.0,
            inhibit_on_failure: true,
            connect_timeout: 3.0,
            retry: None,
            delay_before_retry: None,
            dataplane_extra: Vec::new(),
        }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(t, "# Written by testlab::config::SingleLb for one lab test.");
        let _ = writeln!(t, "[[virtual_server]]");
        let _ = writeln!(t, "vip = \"{}\"", self.vip);
        let _ = writeln!(t, "port = {}", self.port);
        let _ = writeln!(t, "protocol = \"TCP\"");
        let _ = writeln!(t, "lvs_sched = \"wrr\"");
        let _ = writeln!(t, "lvs_method = \"DR\"");
        let _ = writeln!(t, "delay_loop = {:?}", self.delay_loop);
        for rs in &self.real_servers {
            let _ = writeln!(t, "\n[[virtual_server.real_server]]");
            let _ = writeln!(t, "ip = \"{}\"", rs.ip);
            let _ = writeln!(t, "port = {}", rs.port);
            let _ = writeln!(t, "weight = {}", rs.weight);
            let _ = writeln!(t, "inhibit_on_failure = {}", self.inhibit_on_failure);
            if self.health_check {
                let _ = writeln!(t, "[virtual_server.real_server.http_get]");
                let _ = writeln!(t, "connect_port = {}", rs.port);
                let _ = writeln!(t, "connect_timeout = {:?}", self.connect_timeout);
                if let Some(retry) = self.retry {
                    let _ = writeln!(t, "retry = {retry}");
                }
                if let Some(delay) = self.delay_before_retry {
                    let _ = writeln!(t, "delay_before_retry = {delay:?}");
                }
                let _ = writeln!(t, "[[virtual_server.real_server.http_get.url]]");
                let _ = writeln!(t, "path = \"/health_check.html\"");
                let _ = writeln!(t, "status_code = 200");
            }
        }
        let _ = writeln!(t, "\n[dataplane]");
        let _ = writeln!(t, "interface = \"{}\"", self.interface);
        for line in &self.dataplane_extra {
            let _ = writeln!(t, "{line}");
        }
        t
    }
}

/// The initial VRRP state (`state`): keepalived's BACKUP or MASTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpStart {
    /// `state BACKUP`, as the seed has it on both directors.
    Backup,
    /// `state MASTER`.
    Master,
}

impl VrrpStart {
    /// The keyword both configuration formats use.
    pub const fn keyword(self) -> &'static str {
        match self {
            VrrpStart::Backup => "BACKUP",
            VrrpStart::Master => "MASTER",
        }
    }
}

/// One `vrrp_instance`, written either as xdplb TOML or as keepalived.conf,
/// so that the same election runs whichever implementation a director uses.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpSpec {
    /// The instance name (`VI_1`).
    pub name: String,
    /// The initial state.
    pub state: VrrpStart,
    /// The interface it runs on.
    pub interface: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority` (1-254).
    pub priority: u8,
    /// `advert_int` in seconds.
    pub advert_int: f64,
    /// `auth_type PASS` with this password, or no authentication.
    pub auth_pass: Option<String>,
    /// `virtual_ipaddress`.
    pub vips: Vec<Ipv4Addr>,
    /// `nopreempt`.
    pub nopreempt: bool,
    /// `preempt_delay` in seconds, when set.
    pub preempt_delay: Option<f64>,
    /// `garp_master_delay` in seconds, when set.
    pub garp_master_delay: Option<f64>,
    /// Extra `key = value` lines for xdplb's `[[vrrp_instance]]` table.
    pub extra_toml: Vec<String>,
    /// Extra lines for keepalived's `vrrp_instance` block.
    pub extra_keepalived: Vec<String>,
}

impl VrrpSpec {
    /// The seed's VI_1 (VRID 51, advert_int 1, auth PASS "1111", state
    /// BACKUP) on eth0 for `vip`, at `priority`.
    pub fn seed(vip: Ipv4Addr, priority: u8) -> Self {
        Self {
            name: "VI_1".to_owned(),
            state: VrrpStart::Backup,
            interface: "eth0".to_owned(),
            vrid: 51,
            priority,
            advert_int: 1.0,
            auth_pass: Some("1111".to_owned()),
            vips: vec![vip],
            nopreempt: false,
            preempt_delay: None,
            garp_master_delay: None,
            extra_toml: Vec::new(),
            extra_keepalived: Vec::new(),
        }
    }

    /// The `[[vrrp_instance]]` table of xdplb's TOML.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "[[vrrp_instance]]");
        let _ = writeln!(t, "name = \"{}\"", self.name);
        let _ = writeln!(t, "state = \"{}\"", self.state.keyword());
        let _ = writeln!(t, "interface = \"{}\"", self.interface);
        let _ = writeln!(t, "virtual_router_id = {}", self.vrid);
        let _ = writeln!(t, "priority = {}", self.priority);
        let _ = writeln!(t, "advert_int = {:?}", self.advert_int);
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(t, "auth_type = \"PASS\"");
            let _ = writeln!(t, "auth_pass = \"{pass}\"");
        }
        let vips: Vec<String> = self.vips.iter().map(|v| format!("\"{v}\"")).collect();
        let _ = writeln!(t, "virtual_ipaddress = [{}]", vips.join(", "));
        if self.nopreempt {
            let _ = writeln!(t, "nopreempt = true");
        }
        if let Some(delay) = self.preempt_delay {
            let _ = writeln!(t, "preempt_delay = {delay:?}");
        }
        if let Some(delay) = self.garp_master_delay {
            let _ = writeln!(t, "garp_master_delay = {delay:?}");
        }
        for line in &self.extra_toml {
            let _ = writeln!(t, "{line}");
        }
        t
    }

    /// keepalived.conf holding only this instance (run it with `-P`).
    pub fn to_keepalived(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "# Written by testlab::config::VrrpSpec for one lab test.");
        let _ = writeln!(t, "vrrp_instance {} {{", self.name);
        let _ = writeln!(t, "    state {}", self.state.keyword());
        let _ = writeln!(t, "    interface {}", self.interface);
        let _ = writeln!(t, "    virtual_router_id {}", self.vrid);
        let _ = writeln!(t, "    priority {}", self.priority);
        let _ = writeln!(t, "    advert_int {}", self.advert_int);
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(t, "    authentication {{");
            let _ = writeln!(t, "        auth_type PASS");
            let _ = writeln!(t, "        auth_pass {pass}");
            let _ = writeln!(t, "    }}");
        }
        let _ = writeln!(t, "    virtual_ipaddress {{");
        for vip in &self.vips {
            let _ = writeln!(t, "        {vip}");
        }
        let _ = writeln!(t, "    }}");
        if self.nopreempt {
            let _ = writeln!(t, "    nopreempt");
        }
        if let Some(delay) = self.preempt_delay {
            let _ = writeln!(t, "    preempt_delay {delay}");
        }
        if let Some(delay) = self.garp_master_delay {
            let _ = writeln!(t, "    garp_master_delay {delay}");
        }
        for line in &self.extra_keepalived {
            let _ = writeln!(t, "    {line}");
        }
        let _ = writeln!(t, "}}");
        t
    }
}

/// A director of the seed's lab: a VRRP instance and the service behind its
/// VIP, as configs/seed-lab.toml with a priority of choice.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpLb {
    /// The VRRP instance.
    pub vrrp: VrrpSpec,
    /// The service on the VIP (its `vip` is the instance's).
    pub service: SingleLb,
}

impl VrrpLb {
    /// The TOML text.
    pub fn to_toml(&self) -> String {
        format!("{}\n{}", self.vrrp.to_toml(), self.service.to_toml())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_service_and_each_weight() {
        let vip = Ipv4Addr::new(192, 168, 10, 110);
        let mut cfg = SingleLb::new(
            vip,
            &[(Ipv4Addr::new(192, 168, 10, 103), 3), (Ipv4Addr::new(192, 168, 10, 104), 1)],
        );
        cfg.dataplane_extra.push("xdp_mode = \"skb\"".to_owned());
        let toml = cfg.to_toml();
        assert!(toml.contains("vip = \"192.168.10.110\"\nport = 80\n"), "{toml}");
        assert!(toml.contains("ip = \"192.168.10.103\"\nport = 80\nweight = 3\n"), "{toml}");
        assert!(toml.contains("ip = \"192.168.10.104\"\nport = 80\nweight = 1\n"), "{toml}");
        assert_eq!(toml.matches("[[virtual_server.real_server]]").count(), 2);
        assert_eq!(toml.matches("path = \"/health_check.html\"").count(), 2);
        assert!(
            toml.ends_with("[dataplane]\ninterface = \"eth0\"\nxdp_mode = \"skb\"\n"),
            "{toml}"
        );
        cfg.health_check = false;
        assert!(!cfg.to_toml().contains("http_get"));
    }

    #[test]
    fn health_check_keys_follow_the_fields() {
        let vip = Ipv4Addr::new(192, 168, 10, 110);
        let mut cfg = SingleLb::new(vip, &[(Ipv4Addr::new(192, 168, 10, 103), 1)]);
        cfg.inhibit_on_failure = false;
        cfg.connect_timeout = 1.0;
        cfg.retry = Some(2);
        cfg.delay_before_retry = Some(0.5);
        let toml = cfg.to_toml();
        assert!(toml.contains("inhibit_on_failure = false\n"), "{toml}");
        assert!(toml.contains("connect_timeout = 1.0\nretry = 2\ndelay_before_retry = 0.5\n"));
        cfg.retry = None;
        cfg.delay_before_retry = None;
        let toml = cfg.to_toml();
        assert!(!toml.contains("retry"), "{toml}");
    }

    #[test]
    fn vrrp_spec_renders_the_seed_in_both_formats() {
        let vip = Ipv4Addr::new(192, 168, 10, 110);
        let mut spec = VrrpSpec::seed(vip, 120);
        let toml = spec.to_toml();
        for line in [
            "name = \"VI_1\"",
            "state = \"BACKUP\"",
            "interface = \"eth0\"",
            "virtual_router_id = 51",
            "priority = 120",
            "advert_int = 1.0",
            "auth_type = \"PASS\"",
            "auth_pass = \"1111\"",
            "virtual_ipaddress = [\"192.168.10.110\"]",
        ] {
            assert!(toml.lines().any(|l| l == line), "{line} missing in\n{toml}");
        }
        assert!(!toml.contains("nopreempt"));
        let conf = spec.to_keepalived();
        for line in [
            "vrrp_instance VI_1 {",
            "    state BACKUP",
            "    virtual_router_id 51",
            "    priority 120",
            "    advert_int 1",
            "        auth_pass 1111",
            "        192.168.10.110",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line:?} missing in\n{conf}");
        }
        assert_eq!(conf.matches('{').count(), conf.matches('}').count(), "{conf}");
        spec.nopreempt = true;
        spec.auth_pass = None;
        assert!(spec.to_toml().contains("nopreempt = true\n"));
        assert!(spec.to_keepalived().contains("    nopreempt\n"));
        assert!(!spec.to_keepalived().contains("authentication"));
        let lb = VrrpLb { vrrp: spec, service: SingleLb::new(vip, &[]) };
        let toml = lb.to_toml();
        assert!(toml.starts_with("[[vrrp_instance]]\n"), "{toml}");
        assert!(toml.contains("[[virtual_server]]\nvip = \"192.168.10.110\""), "{toml}");
    }
}
