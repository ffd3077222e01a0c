//! A host's neighbour (ARP) entry for an address: read once with `ip neigh`,
//! or watched by a thread inside the namespace that polls the kernel's ARP
//! table every few milliseconds and stamps each change with the wall clock,
//! so it can be set against capture timestamps.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use dataplane::tables::Mac;

use crate::netns;
use crate::wait::wait_until;

/// How often the watcher reads the ARP table: the precision of its times.
pub const WATCH_POLL: Duration = Duration::from_millis(2);
/// The ARP table of the reading thread's own namespace (not the process's).
const THREAD_ARP: &str = "/proc/thread-self/net/arp";
/// ATF_COM: the entry has a link-layer address.
const ATF_COM: u32 = 0x2;

/// One `ip neigh` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its link-layer address, if resolved.
    pub mac: Option<Mac>,
    /// NUD state(s) as `ip` prints them (`REACHABLE`, `STALE`, `FAILED` …).
    pub state: String,
}

/// Parses a MAC written as `ip` and /proc do (`02:00:00:0a:00:65`).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses one line of `ip neigh show` (`IP [dev D] [lladdr MAC] [router] STATE…`).
pub fn parse_ip_neigh_line(line: &str) -> Option<Neighbour> {
    let mut words = line.split_whitespace();
    let ip = words.next()?.parse().ok()?;
    let mut mac = None;
    let mut state = Vec::new();
    while let Some(word) = words.next() {
        match word {
            "dev" => {
                words.next();
            }
            "lladdr" => mac = parse_mac(words.next()?),
            w if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') => state.push(w),
            _ => {}
        }
    }
    Some(Neighbour { ip, mac, state: state.join(" ") })
}

/// The entry for `ip` in the text of /proc/net/arp: `None` without one,
/// `Some(None)` while unresolved (incomplete, failed), `Some(Some(mac))`.
pub fn parse_proc_arp(text: &str, ip: Ipv4Addr) -> Option<Option<Mac>> {
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hw_type, flags, mac, ..] = cols[..] else { continue };
        if addr.parse::<Ipv4Addr>().ok() != Some(ip) {
            continue;
        }
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
        let complete = flags & ATF_COM != 0;
        return Some(if complete { parse_mac(mac) } else { None });
    }
    None
}

/// One change of the watched entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighChange {
    /// When the watcher first saw it (wall clock, since the epoch, like pcap times).
    pub time: Duration,
    /// The new link-layer address (`None`: no entry or unresolved).
    pub mac: Option<Mac>,
}

/// The wall clock as a duration since the epoch.
pub fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A thread in a namespace recording every change of its ARP entry for one address.
#[derive(Debug)]
pub struct NeighWatch {
    ip: Ipv4Addr,
    changes: Arc<Mutex<Vec<NeighChange>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl NeighWatch {
    /// Starts watching `ip` in namespace `netns`; returns once the first reading is in.
    pub fn start(netns: &str, ip: Ipv4Addr) -> Result<Self> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, quit) = (changes.clone(), stop.clone());
        let handle = netns::spawn_in(netns, move || {
            let mut last: Option<Option<Mac>> = None;
            while !quit.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(THREAD_ARP)
                    .with_context(|| format!("read {THREAD_ARP}"))?;
                let mac = parse_proc_arp(&text, ip).flatten();
                if last != Some(mac) {
                    last = Some(mac);
                    let change = NeighChange { time: now(), mac };
                    log.lock().unwrap_or_else(PoisonError::into_inner).push(change);
                }
                std::thread::sleep(WATCH_POLL);
            }
            Ok(())
        });
        let watch = Self { ip, changes, stop, handle: Some(handle) };
        wait_until("the first ARP table reading", Duration::from_secs(10), WATCH_POLL, || {
            watch.check_alive()?;
            Ok(!watch.changes().is_empty())
        })?;
        Ok(watch)
    }

    /// Fails with the thread's error if it has stopped by itself.
    fn check_alive(&self) -> Result<()> {
        match &self.handle {
            Some(h) if h.is_finished() && !self.stop.load(Ordering::Relaxed) => {
                Err(anyhow!("the ARP watcher for {} stopped", self.ip))
            }
            _ => Ok(()),
        }
    }

    /// Every change so far, the first reading included.
    pub fn changes(&self) -> Vec<NeighChange> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The entry's current MAC, if resolved.
    pub fn current(&self) -> Option<Mac> {
        self.changes().last().and_then(|c| c.mac)
    }

    /// The first change at or after `since` to `mac`, if there was one.
    pub fn first_change_to(&self, mac: Mac, since: Duration) -> Option<NeighChange> {
        self.changes().into_iter().find(|c| c.time >= since && c.mac == Some(mac))
    }

    /// Waits until the entry points to `mac` by a change at or after `since`.
    pub fn wait_for_change_to(
        &self,
        mac: Mac,
        since: Duration,
        timeout: Duration,
    ) -> Result<NeighChange> {
        let what =
            format!("the ARP entry for {} to change to {}", self.ip, crate::lab::mac_str(mac));
        let mut found = None;
        let result = wait_until(&what, timeout, Duration::from_millis(10), || {
            self.check_alive()?;
            found = self.first_change_to(mac, since);
            Ok(found.is_some())
        });
        result.with_context(|| format!("changes: {}", self.describe()))?;
        found.ok_or_else(|| anyhow!("{what}: not found"))
    }

    /// Waits until the entry currently is `mac` (whenever it changed to it).
    pub fn wait_for_current(&self, mac: Mac, timeout: Duration) -> Result<()> {
        let what = format!("the ARP entry for {} to be {}", self.ip, crate::lab::mac_str(mac));
        let result = wait_until(&what, timeout, Duration::from_millis(10), || {
            self.check_alive()?;
            Ok(self.current() == Some(mac))
        });
        result.with_context(|| format!("changes: {}", self.describe()))
    }

    /// The changes as text, for messages.
    pub fn describe(&self) -> String {
        let changes = self.changes();
        let Some(first) = changes.first() else { return "none".to_owned() };
        changes
            .iter()
            .map(|c| {
                let mac = c.mac.map_or_else(|| "-".to_owned(), crate::lab::mac_str);
                format!("+{:.3}s {mac}", c.time.saturating_sub(first.time).as_secs_f64())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for NeighWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            if let Err(e) = netns::join(handle) {
                eprintln!("testlab: ARP watcher: {e:#}");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROC_ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.10.110   0x1         0x2         02:00:00:0a:00:65     *        eth0
192.168.10.103   0x1         0x0         00:00:00:00:00:00     *        eth0
";

    #[test]
    fn reads_proc_net_arp() {
        let vip = Ipv4Addr::new(192, 168, 10, 110);
        assert_eq!(parse_proc_arp(PROC_ARP, vip), Some(Some([2, 0, 0, 0x0a, 0, 0x65])));
        assert_eq!(parse_proc_arp(PROC_ARP, Ipv4Addr::new(192, 168, 10, 103)), Some(None));
        assert_eq!(parse_proc_arp(PROC_ARP, Ipv4Addr::new(192, 168, 10, 1)), None);
        assert_eq!(parse_proc_arp("", vip), None);
    }

    #[test]
    fn reads_ip_neigh_lines() {
        let n =
            parse_ip_neigh_line("192.168.10.110 dev eth0 lladdr 02:00:00:0a:00:66 STALE").unwrap();
        assert_eq!(n.mac, Some([2, 0, 0, 0x0a, 0, 0x66]));
        assert_eq!(n.state, "STALE");
        let n = parse_ip_neigh_line("192.168.10.110 lladdr 02:00:00:0a:00:66 router REACHABLE")
            .unwrap();
        assert_eq!(n.state, "REACHABLE");
        let n = parse_ip_neigh_line("192.168.10.110 FAILED").unwrap();
        assert_eq!((n.mac, n.state.as_str()), (None, "FAILED"));
        assert_eq!(parse_ip_neigh_line(""), None);
        assert_eq!(parse_mac("02:00:00:0a:00"), None);
        assert_eq!(parse_mac("02:00:00:0a:00:65:01"), None);
        assert_eq!(parse_mac("2:00:00:0a:00:65"), None);
    }

    proptest! {
        #[test]
        fn macs_round_trip(mac in any::<[u8; 6]>()) {
            prop_assert_eq!(parse_mac(&crate::lab::mac_str(mac)), Some(mac));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = parse_ip_neigh_line(&text);
            let _ = parse_proc_arp(&text, Ipv4Addr::new(192, 168, 10, 110));
            if let Some(mac) = parse_mac(&text) {
                prop_assert_eq!(crate::lab::mac_str(mac), text.to_ascii_lowercase());
            }
        }
    }
}
