//! Checks a configuration against the interfaces of the current network
//! namespace: a pure core over [`InterfaceFacts`], plus [`InterfaceFacts::from_system`]
//! (getifaddrs) to take those facts from the host.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::{Config, ConfigError, Ipv4Net};

/// The interfaces of a network namespace and their IPv4 addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceFacts {
    interfaces: BTreeMap<String, Vec<Ipv4Net>>,
}

/// Listing the host's interfaces failed.
#[derive(Debug, thiserror::Error)]
#[error("getifaddrs: {0}")]
pub struct InterfaceListError(#[from] nix::Error);

impl InterfaceFacts {
    /// No interfaces at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an interface and its addresses (an interface may have none).
    pub fn insert(&mut self, name: &str, addrs: impl IntoIterator<Item = Ipv4Net>) {
        self.interfaces.entry(name.to_owned()).or_default().extend(addrs);
    }

    /// Builder form of [`Self::insert`].
    pub fn with(mut self, name: &str, addrs: impl IntoIterator<Item = Ipv4Net>) -> Self {
        self.insert(name, addrs);
        self
    }

    /// The IPv4 addresses of `name`, or `None` if there is no such interface.
    pub fn addresses(&self, name: &str) -> Option<&[Ipv4Net]> {
        self.interfaces.get(name).map(Vec::as_slice)
    }

    /// The interfaces of the calling thread's network namespace.
    pub fn from_system() -> Result<Self, InterfaceListError> {
        let mut facts = Self::new();
        for ifa in nix::ifaddrs::getifaddrs()? {
            // Every interface has an AF_PACKET entry, so even one without an
            // IPv4 address is recorded as existing.
            let v4 = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()).map(|a| a.ip());
            let mask = ifa.netmask.as_ref().and_then(|m| m.as_sockaddr_in()).map(|m| m.ip());
            let net = v4.map(|addr| Ipv4Net {
                addr,
                prefix_len: mask
                    .map_or(32, |m| u8::try_from(u32::from(m).leading_ones()).unwrap_or(32)),
            });
            facts.insert(&ifa.interface_name, net);
        }
        Ok(facts)
    }
}

/// One check [`check`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveCheck {
    /// The data-plane interface exists in this namespace.
    DataplaneInterfaceExists {
        /// The interface.
        interface: String,
    },
    /// Every real server is in a subnet of the data-plane interface.
    RealServersOnLink {
        /// The interface.
        interface: String,
    },
    /// A vrrp_instance's interface exists in this namespace.
    VrrpInterfaceExists {
        /// The instance name.
        instance: String,
        /// The interface.
        interface: String,
    },
    /// A vrrp_instance's `unicast_src_ip` is an address of its interface.
    UnicastSrcIpOnInterface {
        /// The instance name.
        instance: String,
        /// The interface.
        interface: String,
        /// The configured source address.
        address: Ipv4Addr,
    },
}

impl fmt::Display for LiveCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataplaneInterfaceExists { interface } => {
                write!(f, "data-plane interface {interface} exists")
            }
            Self::RealServersOnLink { interface } => {
                write!(f, "real servers are on-link on {interface}")
            }
            Self::VrrpInterfaceExists { instance, interface } => {
                write!(f, "vrrp_instance {instance} interface {interface} exists")
            }
            Self::UnicastSrcIpOnInterface { instance, interface, address } => {
                write!(f, "vrrp_instance {instance} unicast_src_ip {address} is on {interface}")
            }
        }
    }
}

/// What [`check`] verified and what it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveReport {
    /// Checks that ran and passed.
    pub passed: Vec<LiveCheck>,
    /// Checks skipped because an interface is not in this namespace.
    pub skipped: Vec<LiveCheck>,
    /// The first missing interface, as the error `run` reports.
    missing: Option<Missing>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Missing {
    file: String,
    line: Option<usize>,
    interface: String,
}

impl LiveReport {
    /// Whether every check ran.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }

    /// For `run`: a missing interface is an error there, not a skipped check.
    pub fn require_complete(&self) -> Result<(), ConfigError> {
        match &self.missing {
            None => Ok(()),
            Some(m) => Err(ConfigError::Live {
                file: m.file.clone(),
                line: m.line,
                reason: format!(
                    "interface {} does not exist in this network namespace",
                    m.interface
                ),
            }),
        }
    }
}

/// Checks `config` against `facts`: the data-plane interface exists, every
/// real server is on one of its subnets and is not one of its addresses, each
/// vrrp_instance's interface exists and carries its `unicast_src_ip`. A
/// missing interface skips the checks that need it (listed in the report); a
/// real server off-link or a source address not on its interface is an error.
pub fn check(config: &Config, facts: &InterfaceFacts) -> Result<LiveReport, ConfigError> {
    let origin = &config.origin;
    let mut report = LiveReport { passed: Vec::new(), skipped: Vec::new(), missing: None };
    let interface = config.dataplane_interface();
    let exists = LiveCheck::DataplaneInterfaceExists { interface: interface.to_owned() };
    let on_link = LiveCheck::RealServersOnLink { interface: interface.to_owned() };
    match facts.addresses(interface) {
        None => {
            report.skipped.extend([exists, on_link]);
            report.missing = Some(Missing {
                file: origin.file.clone(),
                line: origin.dataplane_interface,
                interface: interface.to_owned(),
            });
        }
        Some(addrs) => {
            report.passed.push(exists);
            for (i, vs) in config.virtual_servers.iter().enumerate() {
                for (j, rs) in vs.real_servers.iter().enumerate() {
                    let line = origin.real_server_ip.get(i).and_then(|v| v.get(j)).copied();
                    if let Some(reason) = off_link(interface, addrs, "real server", rs.ip) {
                        return Err(ConfigError::Live { file: origin.file.clone(), line, reason });
                    }
                }
                if let Some(sorry) = &vs.sorry_server {
                    let line = origin.sorry_server_ip.get(i).copied().flatten();
                    if let Some(reason) = off_link(interface, addrs, "sorry_server", sorry.ip) {
                        return Err(ConfigError::Live { file: origin.file.clone(), line, reason });
                    }
                }
            }
            report.passed.push(on_link);
        }
    }
    for (i, v) in config.vrrp_instances.iter().enumerate() {
        let check = LiveCheck::VrrpInterfaceExists {
            instance: v.name.clone(),
            interface: v.interface.clone(),
        };
        let src = v.unicast_src_ip.map(|address| LiveCheck::UnicastSrcIpOnInterface {
            instance: v.name.clone(),
            interface: v.interface.clone(),
            address,
        });
        if let Some(addrs) = facts.addresses(&v.interface) {
            report.passed.push(check);
            if let (Some(src_check), Some(address)) = (src, v.unicast_src_ip) {
                if !addrs.iter().any(|a| a.addr == address) {
                    let line = origin.vrrp_unicast_src_ip.get(i).copied().flatten();
                    return Err(ConfigError::Live {
                        file: origin.file.clone(),
                        line,
                        reason: format!(
                            "unicast_src_ip {address} is not an address of {}: it has {}; \
                             adverts leave from one of the interface's own addresses",
                            v.interface,
                            describe(addrs)
                        ),
                    });
                }
                report.passed.push(src_check);
            }
        } else {
            report.skipped.push(check);
            report.skipped.extend(src);
            report.missing.get_or_insert_with(|| Missing {
                file: origin.file.clone(),
                line: origin.vrrp_interface.get(i).copied(),
                interface: v.interface.clone(),
            });
        }
    }
    Ok(report)
}

/// Why `ip` cannot be a DR real server (or sorry server: `what`) behind
/// `interface`, if it cannot.
fn off_link(interface: &str, addrs: &[Ipv4Net], what: &str, ip: Ipv4Addr) -> Option<String> {
    if addrs.iter().any(|a| a.addr == ip) {
        return Some(format!(
            "{what} {ip} is an address of {interface} itself: DR would send its traffic to us"
        ));
    }
    if addrs.iter().any(|a| a.contains(ip)) {
        return None;
    }
    let has = describe(addrs);
    Some(format!(
        "{what} {ip} is not on-link: {interface} has {has}; \
         DR needs real servers in the interface's subnet"
    ))
}

/// `192.168.10.101/24, 10.0.0.1/8`, or `no IPv4 address`.
fn describe(addrs: &[Ipv4Net]) -> String {
    if addrs.is_empty() {
        "no IPv4 address".to_owned()
    } else {
        addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn net(text: &str) -> Ipv4Net {
        let (addr, len) = text.split_once('/').unwrap();
        Ipv4Net { addr: addr.parse().unwrap(), prefix_len: len.parse().unwrap() }
    }

    const LAB: &str = "\
[[virtual_server]]
vip = \"192.168.10.110\"
port = 80
[[virtual_server.real_server]]
ip = \"192.168.10.103\"
[[virtual_server.real_server]]
ip = \"10.0.0.5\"

[dataplane]
interface = \"eth0\"
";

    #[test]
    fn off_link_real_server_is_named_with_the_interface_addresses() {
        let config = parse(LAB, "lab.toml").unwrap();
        let facts = InterfaceFacts::new().with("eth0", [net("192.168.10.101/24")]);
        let err = check(&config, &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lab.toml:7: real server 10.0.0.5 is not on-link: eth0 has 192.168.10.101/24; \
             DR needs real servers in the interface's subnet"
        );
    }

    #[test]
    fn a_second_subnet_makes_the_server_on_link() {
        let config = parse(LAB, "lab.toml").unwrap();
        let facts = InterfaceFacts::new()
            .with("eth0", [net("192.168.10.101/24"), net("10.0.0.1/8")])
            .with("lo", [net("127.0.0.1/8")]);
        let report = check(&config, &facts).unwrap();
        assert!(report.is_complete());
        assert!(report.require_complete().is_ok());
        assert_eq!(
            report.passed,
            vec![
                LiveCheck::DataplaneInterfaceExists { interface: "eth0".into() },
                LiveCheck::RealServersOnLink { interface: "eth0".into() },
            ]
        );
    }

    #[test]
    fn an_interface_without_ipv4_has_no_server_on_link() {
        let config = parse(LAB, "lab.toml").unwrap();
        let err = check(&config, &InterfaceFacts::new().with("eth0", [])).unwrap_err();
        assert_eq!(err.line(), Some(5));
        assert!(err.to_string().contains("eth0 has no IPv4 address;"), "{err}");
    }

    #[test]
    fn our_own_address_is_not_a_real_server() {
        let config = parse(LAB, "lab.toml").unwrap();
        let facts =
            InterfaceFacts::new().with("eth0", [net("192.168.10.103/24"), net("10.0.0.1/8")]);
        let err = check(&config, &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lab.toml:5: real server 192.168.10.103 is an address of eth0 itself: \
             DR would send its traffic to us"
        );
    }

    #[test]
    fn an_off_link_sorry_server_is_named_at_its_line() {
        let text = LAB.replacen(
            "[[virtual_server.real_server]]",
            "sorry_server = { ip = \"172.16.0.9\" }\n[[virtual_server.real_server]]",
            1,
        );
        let config = parse(&text, "lab.toml").unwrap();
        let lab = [net("192.168.10.101/24"), net("10.0.0.1/8")];
        let facts = InterfaceFacts::new().with("eth0", lab);
        let err = check(&config, &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lab.toml:4: sorry_server 172.16.0.9 is not on-link: eth0 has \
             192.168.10.101/24, 10.0.0.1/8; DR needs real servers in the interface's subnet"
        );
        let facts =
            InterfaceFacts::new().with("eth0", lab.into_iter().chain([net("172.16.0.1/24")]));
        assert!(check(&config, &facts).is_ok());
    }

    #[test]
    fn missing_interface_skips_its_checks_and_run_refuses() {
        let text = "\
[[vrrp_instance]]
name = \"VI_1\"
interface = \"eth0\"
virtual_router_id = 51

[[virtual_server]]
vip = \"192.168.10.110\"
port = 80
[[virtual_server.real_server]]
ip = \"10.9.9.9\"
";
        let config = parse(text, "v.toml").unwrap();
        let report = check(&config, &InterfaceFacts::new().with("lo", [])).unwrap();
        assert!(!report.is_complete());
        assert!(report.passed.is_empty());
        assert_eq!(report.skipped.len(), 3);
        assert_eq!(report.skipped[1].to_string(), "real servers are on-link on eth0");
        // The interface came from the vrrp_instance: the error points there.
        assert_eq!(
            report.require_complete().unwrap_err().to_string(),
            "v.toml:3: interface eth0 does not exist in this network namespace"
        );
    }

    #[test]
    fn vrrp_interface_other_than_the_dataplane_one_is_checked() {
        let text = "\
[[vrrp_instance]]
name = \"VI_1\"
interface = \"eth1\"
virtual_router_id = 51

[dataplane]
interface = \"eth0\"
";
        let config = parse(text, "v.toml").unwrap();
        let report = check(&config, &InterfaceFacts::new().with("eth0", [])).unwrap();
        assert_eq!(
            report.skipped,
            vec![LiveCheck::VrrpInterfaceExists {
                instance: "VI_1".into(),
                interface: "eth1".into()
            }]
        );
        assert_eq!(report.require_complete().unwrap_err().line(), Some(3));
        let both = InterfaceFacts::new().with("eth0", []).with("eth1", []);
        assert!(check(&config, &both).unwrap().is_complete());
    }

    #[test]
    fn unicast_src_ip_must_be_on_the_instance_interface() {
        let text = "\
[[vrrp_instance]]
name = \"VI_1\"
interface = \"eth0\"
virtual_router_id = 51
unicast_src_ip = \"192.168.10.101\"
unicast_peer = [\"192.168.10.102\"]
";
        let config = parse(text, "u.toml").unwrap();
        let ours = InterfaceFacts::new().with("eth0", [net("192.168.10.101/24")]);
        let report = check(&config, &ours).unwrap();
        assert!(report.is_complete());
        assert!(report.passed.contains(&LiveCheck::UnicastSrcIpOnInterface {
            instance: "VI_1".into(),
            interface: "eth0".into(),
            address: "192.168.10.101".parse().unwrap(),
        }));
        let theirs = InterfaceFacts::new().with("eth0", [net("192.168.10.102/24")]);
        assert_eq!(
            check(&config, &theirs).unwrap_err().to_string(),
            "u.toml:5: unicast_src_ip 192.168.10.101 is not an address of eth0: it has \
             192.168.10.102/24; adverts leave from one of the interface's own addresses"
        );
        // No interface: the check is skipped with the interface's own.
        let report = check(&config, &InterfaceFacts::new()).unwrap();
        assert_eq!(report.skipped.len(), 4, "{:?}", report.skipped);
    }

    #[test]
    fn prefix_membership() {
        assert!(net("192.168.10.101/24").contains("192.168.10.255".parse().unwrap()));
        assert!(!net("192.168.10.101/24").contains("192.168.11.1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(!net("10.0.0.1/32").contains("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn system_facts_include_loopback() {
        // Every network namespace has lo, even a fresh one where it is down.
        let facts = InterfaceFacts::from_system().unwrap();
        assert!(facts.addresses("lo").is_some());
    }
}
