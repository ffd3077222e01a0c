//! xdplb configurations for lab tests, written in the TOML contract of
//! DESIGN.md ("Configuration") with keepalived's names: one load balancer
//! owning its VIP unconditionally (no VRRP), like configs/single-lb.toml.

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
            let _ = writeln!(t, "inhibit_on_failure = true");
            if self.health_check {
                let _ = writeln!(t, "[virtual_server.real_server.http_get]");
                let _ = writeln!(t, "connect_port = {}", rs.port);
                let _ = writeln!(t, "connect_timeout = 3.0");
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
}
