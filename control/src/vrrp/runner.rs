//! One VRRP instance wired to what it must do, still without I/O: adverts
//! and GARPs come out as frames to send, holding the VIPs as take/release
//! effects, with every received packet counted by outcome. The daemon
//! feeds it packets and time and carries the effects out.

use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::tables::Mac;

use super::packet::{receive, Destination, DropReason, FrameBuilder, Local, Rejection};
use super::state::{Action, Instance, State, Transition};
use crate::garp::{self, GarpSchedule};

/// Something the daemon must do for an instance, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this Ethernet frame out of the interface.
    Send(Vec<u8>),
    /// Send this IPv4 packet (header included) to a unicast peer.
    SendIp(Ipv4Addr, Vec<u8>),
    /// Become the VIPs' owner: add them to the interface, steer their services.
    TakeVips,
    /// Stop owning the VIPs: remove them, stop steering their services.
    ReleaseVips,
    /// The state changed: log it, run notify scripts.
    Changed(Transition),
}

/// What an instance counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub garps_sent: u64,
    pub other_vrid: u64,
    pub dropped: [u64; DropReason::COUNT],
}

impl RunnerCounters {
    /// Every counter with its stable name (`adverts_sent`, `drop.ttl` …).
    pub fn named(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("adverts_sent".to_owned(), self.adverts_sent),
            ("adverts_received".to_owned(), self.adverts_received),
            ("garps_sent".to_owned(), self.garps_sent),
            ("other_vrid".to_owned(), self.other_vrid),
        ];
        out.extend(
            DropReason::ALL.iter().map(|r| (format!("drop.{}", r.name()), self.dropped[r.index()])),
        );
        out
    }
}

/// A VRRP instance and its GARP schedule.
#[derive(Debug)]
pub struct Runner {
    name: String,
    instance: Instance,
    local: Local,
    builder: FrameBuilder,
    our_mac: Mac,
    vips: Vec<Ipv4Addr>,
    garp: GarpSchedule,
    counters: RunnerCounters,
}

impl Runner {
    /// Wires `instance` to frames from `our_mac`/`local`'s settings: adverts
    /// go to the multicast group, or to each of `local.unicast_peers`.
    pub fn new(
        name: String,
        instance: Instance,
        local: Local,
        our_mac: Mac,
        garp_config: garp::GarpConfig,
    ) -> Self {
        let builder = FrameBuilder::new(our_mac, instance.config().primary_address);
        let vips = local.virtual_addresses.clone();
        Runner {
            name,
            instance,
            local,
            builder,
            our_mac,
            vips,
            garp: GarpSchedule::new(garp_config),
            counters: RunnerCounters::default(),
        }
    }

    /// The instance's name (keepalived's `VI_1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.instance.state()
    }

    /// The VIPs this instance owns while master.
    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// What it counted.
    pub fn counters(&self) -> &RunnerCounters {
        &self.counters
    }

    /// Takes one received IPv4 packet (header included). Packets for other
    /// VRIDs are counted apart and otherwise ignored.
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        match receive(packet, &self.local) {
            Ok(received) => {
                self.counters.adverts_received += 1;
                self.instance.handle_advert(now, &received.advert, received.ip.src);
            }
            Err(Rejection::OtherVrid(_)) => self.counters.other_vrid += 1,
            Err(Rejection::Drop(reason)) => {
                self.counters.dropped[reason.index()] += 1;
                tracing::debug!(instance = %self.name, reason = reason.name(), "VRRP packet dropped");
            }
        }
    }

    /// Lets timers that ran out by `now` fire (calling early is harmless).
    pub fn on_timeout(&mut self, now: Instant) {
        self.instance.handle_timeout(now);
    }

    /// The data plane can (not) forward, or a tracked interface is down.
    pub fn set_fault(&mut self, now: Instant, fault: bool) {
        self.instance.set_fault(now, fault);
    }

    /// A clean stop: a priority-0 advert if master, then release.
    pub fn shutdown(&mut self, now: Instant) {
        self.instance.shutdown(now);
    }

    /// When [`Self::on_timeout`] / [`Self::effects`] must next run.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.instance.poll_timeout(), self.garp.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Everything to do now, in order: the state machine's actions, then
    /// the GARP rounds that are due.
    pub fn effects(&mut self, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(action) = self.instance.poll_action() {
            match action {
                Action::SendAdvert { priority } => {
                    let advert = self.local.advert(priority);
                    let built: Result<Vec<Effect>, _> = if self.local.unicast_peers.is_empty() {
                        self.builder
                            .frame(&advert, Destination::Multicast)
                            .map(|frame| vec![Effect::Send(frame)])
                    } else {
                        let peers = self.local.unicast_peers.clone();
                        peers
                            .into_iter()
                            .map(|peer| {
                                self.builder.ipv4(&advert, peer).map(|p| Effect::SendIp(peer, p))
                            })
                            .collect()
                    };
                    match built {
                        Ok(sends) => {
                            self.counters.adverts_sent += sends.len() as u64;
                            out.extend(sends);
                        }
                        Err(e) => {
                            tracing::error!(instance = %self.name, error = %e, "cannot build advert")
                        }
                    }
                }
                Action::BecomeMaster => {
                    out.push(Effect::TakeVips);
                    self.garp.on_become_master(now);
                }
                Action::LeaveMaster => {
                    out.push(Effect::ReleaseVips);
                    self.garp.on_leave_master();
                }
                Action::Reannounce => self.garp.on_reannounce(now),
                Action::StateChanged(transition) => out.push(Effect::Changed(transition)),
            }
        }
        for _ in 0..self.garp.poll(now) {
            for vip in &self.vips {
                self.counters.garps_sent += 1;
                out.push(Effect::Send(garp::frame(self.our_mac, *vip).to_vec()));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::vrrp::packet::{Auth, Version};
    use crate::vrrp::state::Config;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 110);
    const LB1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 101);
    const LB1_MAC: Mac = [2, 0, 0, 0x0a, 0, 0x65];

    fn runner(now: Instant) -> Runner {
        let local = Local {
            version: Version::V2,
            vrid: 51,
            auth: Auth::pass(b"1111").unwrap(),
            interval_field: 1,
            virtual_addresses: vec![VIP],
            subnet: None,
            unicast_peers: vec![],
        };
        let instance = Instance::new(Config::new(51, 120, LB1), now).unwrap();
        Runner::new("VI_1".into(), instance, local, LB1_MAC, garp::GarpConfig::default())
    }

    fn drive(r: &mut Runner, until: Instant) -> Vec<(Instant, Effect)> {
        let mut out = Vec::new();
        while let Some(at) = r.deadline().filter(|d| *d <= until) {
            r.on_timeout(at);
            out.extend(r.effects(at).into_iter().map(|e| (at, e)));
        }
        out
    }

    /// Alone on the segment, as keepalived in the fixtures: master after
    /// the master-down interval, advert first, then the VIPs, 5 GARPs at
    /// once and 5 more 5 s later, one advert a second.
    #[test]
    fn alone_it_becomes_master_with_keepalived_timing() {
        let t0 = Instant::now();
        let mut r = runner(t0);
        let effects = drive(&mut r, t0 + Duration::from_secs(12));
        assert_eq!(r.state(), State::Master);
        let take = effects.iter().position(|(_, e)| *e == Effect::TakeVips).unwrap();
        let down = Duration::from_secs(3) + Duration::from_nanos(1_000_000_000 * 136 / 256);
        assert_eq!(effects[take].0, t0 + down);
        assert!(matches!(effects[take - 1].1, Effect::Send(ref f) if f[0] == 0x01), "advert first");
        let garps: Vec<Instant> = effects
            .iter()
            .filter(|(_, e)| matches!(e, Effect::Send(f) if f.len() == garp::FRAME_LEN))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(garps.len(), 10);
        assert!(garps[..5].iter().all(|t| *t == t0 + down));
        assert!(garps[5..].iter().all(|t| *t == t0 + down + Duration::from_secs(5)));
        assert_eq!(r.counters().garps_sent, 10);
        // Adverts once a second from the takeover on: 8 or 9 by t0 + 12 s.
        assert!((8..=9).contains(&r.counters().adverts_sent), "{}", r.counters().adverts_sent);
    }

    #[test]
    fn shutdown_sends_priority_zero_and_releases() {
        let t0 = Instant::now();
        let mut r = runner(t0);
        drive(&mut r, t0 + Duration::from_secs(5));
        let now = t0 + Duration::from_secs(5);
        r.shutdown(now);
        let effects = r.effects(now);
        let advert = effects.iter().find_map(|e| match e {
            Effect::Send(f) if f.len() != garp::FRAME_LEN => Some(f.clone()),
            _ => None,
        });
        // Priority is byte 3 of the VRRP header, after 14 + 20 bytes.
        assert_eq!(advert.unwrap()[14 + 20 + 2], 0);
        assert!(effects.contains(&Effect::ReleaseVips));
    }

    #[test]
    fn bad_packets_are_counted_by_reason() {
        let t0 = Instant::now();
        let mut r = runner(t0);
        let mut other = runner(t0);
        // A valid advert from a peer, then the same with TTL 254.
        other.instance =
            Instance::new(Config::new(51, 110, Ipv4Addr::new(192, 168, 10, 102)), t0).unwrap();
        let advert = other.local.advert(110);
        let mut packet = crate::vrrp::packet::ipv4_packet(
            &advert,
            Ipv4Addr::new(192, 168, 10, 102),
            crate::vrrp::packet::MULTICAST_GROUP,
            1,
        )
        .unwrap();
        r.on_packet(t0, &packet);
        assert_eq!(r.counters().adverts_received, 1);
        packet[8] = 254;
        let mut ip = dataplane::wire::Ipv4Packet::new_unchecked(&mut packet[..]);
        ip.fill_checksum();
        r.on_packet(t0, &packet);
        assert_eq!(r.counters().dropped[DropReason::Ttl.index()], 1);
    }
}
