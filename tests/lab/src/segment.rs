//! What failover tests do to the segment and read back from it: pull a
//! host's cable (its bridge port down), partition the two load balancers
//! (isolated bridge ports), see who holds the VIP, and the router's
//! neighbour entry for it, read once or watched.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use dataplane::tables::Mac;

use crate::lab::{Host, Lab, POLL};
use crate::neigh::{self, NeighWatch, Neighbour};
use crate::wait::wait_until;

impl Lab {
    /// Pulls `host`'s cable: its port `p-<host>` on the bridge goes down, so
    /// nothing it sends reaches the segment and its eth0 loses carrier
    /// (the veth peer is down), as a real unplugged cable. Returns the
    /// wall-clock time (since the epoch) once the port is down.
    pub fn pull_cable(&self, host: Host) -> Result<Duration> {
        self.set_port(host, false)?;
        Ok(neigh::now())
    }

    /// Plugs `host`'s cable back in (its bridge port up; the bridge's
    /// forward_delay is 0, so it forwards at once). Returns the time.
    pub fn plug_cable(&self, host: Host) -> Result<Duration> {
        self.set_port(host, true)?;
        Ok(neigh::now())
    }

    fn set_port(&self, host: Host, up: bool) -> Result<()> {
        let port = host.bridge_port().ok_or_else(|| anyhow!("{host:?} has no bridge port"))?;
        let state = if up { "up" } else { "down" };
        self.exec_in(self.segment_ns(), &["ip", "link", "set", "dev", &port, state]).map(drop)
    }

    /// Sets `host`'s own eth0 administratively up or down (`ip link set eth0
    /// down` inside the host: the host itself takes its link down).
    pub fn set_eth0(&self, host: Host, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ip(host, &["link", "set", "dev", "eth0", state]).map(drop)
    }

    /// Cuts `hosts` off from each other while each still reaches every other
    /// host: their bridge ports become isolated (isolated ports forward only
    /// to non-isolated ones). With lb1 and lb2: a partition between the two
    /// directors, both still on the router's side.
    pub fn isolate(&self, hosts: &[Host]) -> Result<()> {
        self.set_isolated(hosts, true)
    }

    /// Undoes [`isolate`](Self::isolate).
    pub fn heal(&self, hosts: &[Host]) -> Result<()> {
        self.set_isolated(hosts, false)
    }

    fn set_isolated(&self, hosts: &[Host], on: bool) -> Result<()> {
        let state = if on { "on" } else { "off" };
        for host in hosts {
            let port = host.bridge_port().ok_or_else(|| anyhow!("{host:?} has no bridge port"))?;
            self.exec_in(
                self.segment_ns(),
                &["bridge", "link", "set", "dev", &port, "isolated", state],
            )?;
        }
        Ok(())
    }

    /// Whether `host` has `ip` on its eth0 (a VRRP master holds its VIP there).
    pub fn holds(&self, host: Host, ip: Ipv4Addr) -> Result<bool> {
        Ok(self.addresses(host, "eth0")?.contains(&ip))
    }

    /// Whether `host` holds this lab's VIP on eth0.
    pub fn holds_vip(&self, host: Host) -> Result<bool> {
        self.holds(host, self.vip())
    }

    /// Waits until `master` holds the VIP and none of `others` does.
    pub fn wait_for_sole_holder(
        &self,
        master: Host,
        others: &[Host],
        timeout: Duration,
    ) -> Result<()> {
        let what = format!("{} to be the only one holding {}", master.name(), self.vip());
        wait_until(&what, timeout, POLL, || {
            if !self.holds_vip(master)? {
                return Ok(false);
            }
            for other in others {
                if self.holds_vip(*other)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// `host`'s neighbour entry for `ip` on eth0 (`ip neigh show IP dev eth0`).
    pub fn neighbour(&self, host: Host, ip: Ipv4Addr) -> Result<Option<Neighbour>> {
        let out = self.ip(host, &["neigh", "show", &ip.to_string(), "dev", "eth0"])?;
        Ok(out.lines().find_map(neigh::parse_ip_neigh_line).filter(|n| n.ip == ip))
    }

    /// The MAC the router has for the VIP, if resolved.
    pub fn router_vip_mac(&self) -> Result<Option<Mac>> {
        Ok(self.neighbour(Host::Router, self.vip())?.and_then(|n| n.mac))
    }

    /// Makes the router resolve the VIP (a ping from the router, retried
    /// until answered) and returns the MAC it learnt. The router's kernel
    /// ignores a GARP for an address it has no entry for (arp_accept=0), so
    /// failover tests do this first.
    pub fn router_resolves_vip(&self, timeout: Duration) -> Result<Mac> {
        let vip = self.vip().to_string();
        let mut last = String::new();
        let mut mac = None;
        let what = format!("the router to resolve {vip}");
        let result = wait_until(&what, timeout, POLL, || {
            match self.exec(Host::Router, &["ping", "-c", "1", "-W", "1", &vip]) {
                Ok(_) => {
                    mac = self.router_vip_mac()?;
                    Ok(mac.is_some())
                }
                Err(e) => {
                    last = format!("{e:#}");
                    Ok(false)
                }
            }
        });
        result.with_context(|| format!("last ping: {last}"))?;
        mac.ok_or_else(|| anyhow!("{what}: no entry after the ping"))
    }

    /// Starts a watcher of `host`'s ARP entry for `ip`.
    pub fn watch_neighbour(&self, host: Host, ip: Ipv4Addr) -> Result<NeighWatch> {
        NeighWatch::start(self.ns(host), ip)
    }

    /// Starts a watcher of the router's ARP entry for the VIP.
    pub fn watch_router_vip(&self) -> Result<NeighWatch> {
        self.watch_neighbour(Host::Router, self.vip())
    }
}
