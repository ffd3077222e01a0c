//! The per-worker flow table: which real server each client flow was given,
//! kept while the flow is alive (IPVS's idle timeouts) so that later packets
//! follow the first. Bounded and allocated up front; time is passed in.
//!
//! Layout: open addressing with linear probing over `2 × capacity` slots, so
//! the load never exceeds ½. A slot's home is a keyed SipHash-1-3 of the
//! 5-tuple mapped onto the slots by multiply-shift (no power-of-two rounding,
//! which would cost up to twice the memory), so a client cannot aim its flows
//! at one probe chain. Deletion is by backward shift (no tombstones): probe
//! chains stay as short as the live flows make them, however many come and go.
//! Expired entries are reclaimed lazily — by the lookup that meets its own
//! expired key, by inserts along their probe chain, and by [`FlowTable::expire`],
//! an incremental sweep a worker runs for a bounded number of slots per batch.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;
use std::net::Ipv4Addr;

use crate::tables::{BackendId, L4Proto};

/// How many slots a full-table insert sweeps for expired entries before it
/// gives up: enough to find one when many have expired, small enough that a
/// flood of new flows against a table of live ones stays cheap.
const FULL_TABLE_SWEEP: usize = 64;

/// A flow as the client sends it: client → VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The client's address.
    pub src: Ipv4Addr,
    /// The VIP.
    pub dst: Ipv4Addr,
    /// The client's port.
    pub src_port: u16,
    /// The service port.
    pub dst_port: u16,
    /// TCP or UDP.
    pub proto: L4Proto,
}

/// Where a flow is in its life; it decides the idle timeout.
///
/// A DR balancer sees only the client's half of a TCP connection, so as in
/// IPVS's input-only state table SYN, ACK and data keep a flow active, and a
/// FIN or RST moves it to closing, whose timeout is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FlowState {
    /// A TCP flow with no FIN or RST seen yet.
    TcpActive,
    /// A TCP flow after the client sent FIN or RST.
    TcpClosing,
    /// A UDP flow.
    Udp,
}

impl FlowState {
    /// The state a TCP segment leaves a flow in: FIN or RST close it,
    /// anything else leaves it as it was (a closing flow stays closing).
    pub fn after_tcp_segment(self, fin_or_rst: bool) -> Self {
        if fin_or_rst {
            Self::TcpClosing
        } else {
            self
        }
    }

    /// Whether a SYN on a flow in this state opens a new connection (the
    /// client reuses the port of one that is closing): the caller schedules
    /// it afresh and inserts its choice over the old entry.
    pub fn reopens_on_syn(self) -> bool {
        self == Self::TcpClosing
    }
}

/// Idle timeouts in seconds, per state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// An active TCP flow (`ipvsadm --set` tcp).
    pub tcp: u32,
    /// A TCP flow after FIN or RST (tcpfin).
    pub tcp_fin: u32,
    /// A UDP flow (udp).
    pub udp: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults: 900 s, 120 s, 300 s.
    fn default() -> Self {
        Self { tcp: 900, tcp_fin: 120, udp: 300 }
    }
}

impl Timeouts {
    /// The idle timeout of a flow in `state`.
    pub fn for_state(&self, state: FlowState) -> u32 {
        match state {
            FlowState::TcpActive => self.tcp,
            FlowState::TcpClosing => self.tcp_fin,
            FlowState::Udp => self.udp,
        }
    }
}

/// What the table keeps for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The real server the flow was given.
    pub backend: BackendId,
    /// Decides the idle timeout; the caller moves it on (see [`FlowState`]).
    pub state: FlowState,
    /// When the flow was last seen, in the caller's seconds.
    pub last_seen: u32,
}

impl Flow {
    /// Whether the flow has been idle longer than its state's timeout (idle
    /// for exactly the timeout is still alive; a `now` before `last_seen`
    /// counts as no idle time).
    pub fn is_expired(&self, now: u32, timeouts: &Timeouts) -> bool {
        now.saturating_sub(self.last_seen) > timeouts.for_state(self.state)
    }
}

/// A new flow was refused: every entry holds a live flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow table full: all {capacity} entries hold live flows, new flow refused")]
pub struct FlowTableFull {
    /// The table's capacity.
    pub capacity: usize,
}

/// A random hash seed for [`FlowTable::new`], from the process's randomly
/// keyed std hasher (so one per worker differs).
pub fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// One occupied slot; `Option<Entry>` costs nothing more (the enums leave
/// niches), 28 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: FlowKey,
    flow: Flow,
}

/// How keys are hashed onto slots.
#[derive(Debug, Clone, Copy)]
enum KeyHash {
    /// SipHash-1-3 with a 128-bit key derived from the caller's seed.
    Keyed { k0: u64, k1: u64 },
    /// Tests only: four homes, one of them the last slot, so that probe
    /// chains collide and wrap round the end of the table.
    #[cfg(test)]
    Clustered,
}

/// A bounded flow table owned by one worker (no locks).
pub struct FlowTable {
    /// `2 × capacity` slots, never reallocated.
    slots: Box<[Option<Entry>]>,
    len: usize,
    capacity: usize,
    timeouts: Timeouts,
    hash: KeyHash,
    /// Where the next [`Self::expire`] resumes.
    cursor: usize,
}

impl fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("slots", &self.slots.len())
            .field("timeouts", &self.timeouts)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl FlowTable {
    /// A table for at most `capacity` live flows, all memory allocated now.
    /// `hash_seed` keys the slot hash: pick it at random (see [`random_seed`])
    /// so that clients cannot predict which flows collide.
    ///
    /// # Panics
    ///
    /// If `2 × capacity` slots cannot be allocated, as [`Vec::with_capacity`].
    pub fn new(capacity: usize, timeouts: Timeouts, hash_seed: u64) -> Self {
        let hash = KeyHash::Keyed { k0: hash_seed, k1: splitmix64(hash_seed) };
        Self::with_hash(capacity, timeouts, hash)
    }

    fn with_hash(capacity: usize, timeouts: Timeouts, hash: KeyHash) -> Self {
        // At least one slot more than `capacity`, so that every probe meets an
        // empty slot and ends.
        let slots = capacity.max(1).saturating_mul(2);
        Self {
            slots: vec![None; slots].into_boxed_slice(),
            len: 0,
            capacity,
            timeouts,
            hash,
            cursor: 0,
        }
    }

    /// The most live flows the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of slot memory, all allocated by [`Self::new`].
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * size_of::<Option<Entry>>()
    }

    /// The idle timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// New idle timeouts (a reload), applied to existing flows too.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// The flow of `key` if it is alive, with `last_seen` refreshed to `now`.
    /// An expired entry counts as absent and is removed.
    pub fn lookup(&mut self, key: &FlowKey, now: u32) -> Option<&mut Flow> {
        let i = self.find(key)?;
        if self.expired_at(i, now) {
            self.remove_at(i);
            return None;
        }
        let flow = &mut self.slots[i].as_mut()?.flow;
        flow.last_seen = now;
        Some(flow)
    }

    /// The flow of `key` if it is alive, without refreshing or removing it.
    pub fn get(&self, key: &FlowKey, now: u32) -> Option<&Flow> {
        let flow = &self.slots[self.find(key)?].as_ref()?.flow;
        (!flow.is_expired(now, &self.timeouts)).then_some(flow)
    }

    /// Records that `key` goes to `backend`, seen `now`; an entry for the
    /// same key (alive or not) is overwritten. A new key needs a free entry:
    /// expired entries on its probe chain are reclaimed first and, if the
    /// table is still full, 64 slots of the sweep ([`Self::expire`]).
    /// Live flows are never evicted; then the new flow is refused.
    pub fn insert(
        &mut self,
        key: FlowKey,
        backend: BackendId,
        state: FlowState,
        now: u32,
    ) -> Result<(), FlowTableFull> {
        let flow = Flow { backend, state, last_seen: now };
        let mut swept = false;
        loop {
            let mut i = self.home(&key);
            while let Some(entry) = &self.slots[i] {
                if entry.key == key {
                    self.slots[i] = Some(Entry { key, flow });
                    return Ok(());
                }
                if entry.flow.is_expired(now, &self.timeouts) {
                    // The backward shift may move a later entry of this
                    // chain (even `key`) into `i`: look at `i` again.
                    self.remove_at(i);
                } else {
                    i = self.step(i);
                }
            }
            if self.len < self.capacity {
                self.slots[i] = Some(Entry { key, flow });
                self.len += 1;
                return Ok(());
            }
            if swept || self.expire(now, FULL_TABLE_SWEEP) == 0 {
                return Err(FlowTableFull { capacity: self.capacity });
            }
            // The sweep may have shifted this key's chain: probe again.
            swept = true;
        }
    }

    /// Removes the entry of `key` and returns it as stored, expired or not.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow> {
        let i = self.find(key)?;
        self.remove_at(i)
    }

    /// Reclaims expired entries, looking at no more than `max_slots` slots
    /// (a slot emptied by a removal is looked at again and counts again) and
    /// at most one turn round the table; the next call resumes where this
    /// one stopped. Returns how many entries were reclaimed. Entries that
    /// other operations shift behind the sweep wait for its next turn.
    pub fn expire(&mut self, now: u32, max_slots: usize) -> usize {
        let mut reclaimed = 0;
        let mut looked = 0;
        let mut advanced = 0;
        while looked < max_slots && advanced < self.slots.len() {
            looked += 1;
            let i = self.cursor;
            if self.expired_at(i, now) {
                self.remove_at(i);
                reclaimed += 1;
            } else {
                self.cursor = self.step(i);
                advanced += 1;
            }
        }
        reclaimed
    }

    /// Forgets every flow; the memory stays allocated.
    pub fn clear(&mut self) {
        self.slots.fill(None);
        self.len = 0;
        self.cursor = 0;
    }

    /// The flows alive at `now`, in slot order.
    pub fn iter(&self, now: u32) -> impl Iterator<Item = (&FlowKey, &Flow)> + '_ {
        self.slots
            .iter()
            .flatten()
            .filter(move |e| !e.flow.is_expired(now, &self.timeouts))
            .map(|e| (&e.key, &e.flow))
    }

    /// Whether slot `i` holds an expired entry.
    fn expired_at(&self, i: usize, now: u32) -> bool {
        matches!(&self.slots[i], Some(e) if e.flow.is_expired(now, &self.timeouts))
    }

    /// The slot that holds `key`.
    fn find(&self, key: &FlowKey) -> Option<usize> {
        let mut i = self.home(key);
        // Ends: `len <= capacity < slots`, so an empty slot always follows.
        loop {
            if self.slots[i].as_ref()?.key == *key {
                return Some(i);
            }
            i = self.step(i);
        }
    }

    /// Empties slot `i` and shifts back the entries after it that may take
    /// its place (Knuth's algorithm R), so no probe chain is broken.
    fn remove_at(&mut self, mut hole: usize) -> Option<Flow> {
        let removed = self.slots[hole].take()?;
        self.len -= 1;
        let mut j = hole;
        loop {
            j = self.step(j);
            let Some(entry) = &self.slots[j] else { break };
            // The entry may move into the hole only if the hole lies on its
            // probe path, from its home up to where it sits.
            let home = self.home(&entry.key);
            if self.distance(home, j) >= self.distance(hole, j) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        Some(removed.flow)
    }

    /// The next slot of a probe, wrapping round.
    fn step(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// How many probe steps lead from slot `from` to slot `to`.
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.slots.len() - from
        }
    }

    /// The slot where the probe for `key` starts: the hash mapped onto
    /// `0..slots` by its high bits (multiply-shift).
    fn home(&self, key: &FlowKey) -> usize {
        let n = self.slots.len() as u128;
        // `hash * n >> 64 < n`, which fits in usize.
        ((u128::from(self.hash(key)) * n) >> 64) as usize
    }

    fn hash(&self, key: &FlowKey) -> u64 {
        match self.hash {
            KeyHash::Keyed { k0, k1 } => {
                let addrs = (u64::from(key.src.to_bits()) << 32) | u64::from(key.dst.to_bits());
                let rest = (u64::from(key.src_port) << 32)
                    | (u64::from(key.dst_port) << 16)
                    | u64::from(key.proto as u8);
                siphash::<1, 3>(k0, k1, addrs, rest)
            }
            #[cfg(test)]
            KeyHash::Clustered => u64::MAX - u64::from(key.src_port % 4) * (u64::MAX / 4),
        }
    }
}

/// SipHash-c-d (Aumasson & Bernstein) of the 16-byte message `m0 ‖ m1`
/// (little-endian words), the same as hashing those bytes with a streaming
/// SipHash; fixed length, so it is a handful of rounds and no buffering.
fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, m0: u64, m1: u64) -> u64 {
    // "somepseudorandomlygeneratedbytes"
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    // The last block carries the message length (16) in its top byte.
    for m in [m0, m1, 16 << 56] {
        v[3] ^= m;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// Spreads a 64-bit seed into a second, independent-looking key word.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    fn key(client: u8, src_port: u16, proto: L4Proto) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::new(10, 0, 0, client),
            dst: Ipv4Addr::new(192, 168, 10, 110),
            src_port,
            dst_port: 80,
            proto,
        }
    }

    fn tcp(n: u32) -> FlowKey {
        key((n >> 16) as u8, n as u16, L4Proto::Tcp)
    }

    fn table(capacity: usize) -> FlowTable {
        FlowTable::new(capacity, Timeouts::default(), 0x5eed)
    }

    #[test]
    fn each_state_expires_after_its_own_timeout() {
        let mut t = table(16);
        let active = tcp(1);
        let closing = tcp(2);
        let udp = key(3, 53, L4Proto::Udp);
        t.insert(active, BackendId(1), FlowState::TcpActive, 0).unwrap();
        t.insert(closing, BackendId(2), FlowState::TcpActive, 0).unwrap();
        t.insert(udp, BackendId(3), FlowState::Udp, 0).unwrap();
        // A FIN on `closing` at t=10: from then on its timeout is tcp_fin.
        let flow = t.lookup(&closing, 10).unwrap();
        flow.state = flow.state.after_tcp_segment(true);
        assert!(flow.state.reopens_on_syn());

        // Idle for exactly the timeout is still alive, one more second is not.
        assert!(t.get(&closing, 130).is_some());
        assert!(t.get(&closing, 131).is_none());
        assert!(t.get(&udp, 300).is_some());
        assert!(t.get(&udp, 301).is_none());
        assert!(t.get(&active, 900).is_some());
        assert!(t.get(&active, 901).is_none());
        // `get` removes nothing; `lookup` of an expired flow does.
        assert_eq!(t.len(), 3);
        assert!(t.lookup(&udp, 301).is_none());
        assert_eq!(t.len(), 2);
        assert!(t.lookup(&udp, 301).is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn custom_timeouts_and_reload() {
        let timeouts = Timeouts { tcp: 5, tcp_fin: 2, udp: 3 };
        let mut t = FlowTable::new(4, timeouts, 1);
        t.insert(tcp(1), BackendId(0), FlowState::TcpActive, 100).unwrap();
        t.insert(tcp(2), BackendId(0), FlowState::TcpClosing, 100).unwrap();
        t.insert(key(1, 1, L4Proto::Udp), BackendId(0), FlowState::Udp, 100).unwrap();
        let alive = |t: &FlowTable, now| t.iter(now).count();
        assert_eq!([102, 103, 105, 106].map(|now| alive(&t, now)), [3, 2, 1, 0]);
        t.set_timeouts(Timeouts { tcp: 50, ..timeouts });
        assert_eq!(t.timeouts().tcp, 50);
        assert!(t.get(&tcp(1), 150).is_some());
    }

    #[test]
    fn a_hit_refreshes_last_seen() {
        let mut t = table(4);
        let k = key(1, 5353, L4Proto::Udp);
        t.insert(k, BackendId(7), FlowState::Udp, 0).unwrap();
        assert_eq!(t.lookup(&k, 200).map(|f| (f.backend, f.last_seen)), Some((BackendId(7), 200)));
        assert!(t.get(&k, 500).is_some());
        assert_eq!(t.get(&k, 500).map(|f| f.last_seen), Some(200));
        assert!(t.lookup(&k, 501).is_none());
    }

    #[test]
    fn a_syn_on_a_closing_flow_is_scheduled_afresh() {
        let mut t = table(4);
        let k = tcp(9);
        t.insert(k, BackendId(1), FlowState::TcpActive, 0).unwrap();
        let flow = t.lookup(&k, 1).unwrap();
        // Data keeps it active; FIN closes it; data after FIN keeps it closing.
        assert_eq!(flow.state.after_tcp_segment(false), FlowState::TcpActive);
        assert!(!flow.state.reopens_on_syn());
        flow.state = flow.state.after_tcp_segment(true).after_tcp_segment(false);
        assert_eq!(flow.state, FlowState::TcpClosing);
        // The caller sees the SYN, picks again and inserts over the old entry.
        assert!(t.get(&k, 2).unwrap().state.reopens_on_syn());
        t.insert(k, BackendId(2), FlowState::TcpActive, 2).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.get(&k, 800).map(|f| (f.backend, f.state)),
            Some((BackendId(2), FlowState::TcpActive))
        );
    }

    #[test]
    fn the_sweep_reclaims_everything_in_bounded_steps() {
        let n = 1000u32;
        let mut t = table(n as usize);
        for i in 0..n {
            let state =
                [FlowState::TcpActive, FlowState::TcpClosing, FlowState::Udp][i as usize % 3];
            t.insert(tcp(i), BackendId(i), state, 0).unwrap();
        }
        assert_eq!(t.len(), n as usize);
        // At t=200 only the closing flows (every third, from i=1) are expired.
        let closing = (0..n).filter(|i| i % 3 == 1).count();
        let mut reclaimed = 0;
        let mut calls = 0;
        while calls < 1000 {
            let got = t.expire(200, 37);
            assert!(got <= 37);
            reclaimed += got;
            calls += 1;
            if reclaimed == closing {
                break;
            }
        }
        assert_eq!(reclaimed, closing);
        assert_eq!(t.len(), n as usize - closing);
        // Looking at 37 slots a call, each reclaim costing a look: bounded.
        assert!(calls <= (2 * n as usize + closing).div_ceil(37));
        assert_eq!(t.expire(200, usize::MAX), 0);

        // Much later everything goes, and the count adds up.
        let mut total = 0;
        for _ in 0..10_000 {
            total += t.expire(10_000, 50);
            if t.is_empty() {
                break;
            }
        }
        assert_eq!(total, n as usize - closing);
        assert!(t.is_empty());
        assert_eq!(t.iter(10_000).count(), 0);
    }

    #[test]
    fn a_full_table_refuses_new_flows_and_keeps_its_live_ones() {
        for capacity in [1, 8, 1000] {
            let mut t = table(capacity);
            for i in 0..capacity as u32 {
                t.insert(tcp(i), BackendId(i), FlowState::Udp, 0).unwrap();
            }
            let extra = tcp(capacity as u32);
            assert_eq!(
                t.insert(extra, BackendId(0), FlowState::Udp, 10),
                Err(FlowTableFull { capacity })
            );
            assert_eq!(t.len(), capacity);
            assert!(t.get(&extra, 10).is_none());
            for i in 0..capacity as u32 {
                assert_eq!(t.lookup(&tcp(i), 10).map(|f| f.backend), Some(BackendId(i)));
            }
            // A known key still updates in place.
            t.insert(tcp(0), BackendId(99), FlowState::Udp, 10).unwrap();
            assert_eq!(t.get(&tcp(0), 10).map(|f| f.backend), Some(BackendId(99)));
            // Once they have expired (udp: 300 s after t=10), a new flow gets in.
            assert!(t.insert(extra, BackendId(0), FlowState::Udp, 311).is_ok());
            assert!(t.len() <= capacity);
            assert!(t.get(&extra, 311).is_some());
        }
        let mut none = table(0);
        assert_eq!(
            none.insert(tcp(1), BackendId(0), FlowState::Udp, 0),
            Err(FlowTableFull { capacity: 0 })
        );
        assert!(none.lookup(&tcp(1), 0).is_none());
    }

    #[test]
    fn remove_and_lookup_agree_inside_colliding_chains() {
        let mut t = FlowTable::with_hash(16, Timeouts::default(), KeyHash::Clustered);
        // Ports 0, 4, 8 … share the last slot as home and wrap round; ports
        // 1, 5 … start three quarters in, so the chains run into each other.
        let keys: Vec<FlowKey> = (0..16).map(|p| key(1, p, L4Proto::Tcp)).collect();
        for (i, k) in keys.iter().enumerate() {
            t.insert(*k, BackendId(i as u32), FlowState::TcpActive, 0).unwrap();
        }
        for (i, k) in keys.iter().enumerate().step_by(3) {
            assert_eq!(t.remove(k).map(|f| f.backend), Some(BackendId(i as u32)));
            assert_eq!(t.remove(k), None);
            assert!(t.lookup(k, 1).is_none());
        }
        for (i, k) in keys.iter().enumerate() {
            let expected = (i % 3 != 0).then_some(BackendId(i as u32));
            assert_eq!(t.lookup(k, 1).map(|f| f.backend), expected, "key {i}");
        }
        assert_eq!(t.len(), keys.iter().enumerate().filter(|(i, _)| i % 3 != 0).count());
        t.clear();
        assert!(t.is_empty());
        assert!(keys.iter().all(|k| t.get(k, 1).is_none()));
    }

    #[test]
    fn slot_memory_stays_within_64_bytes_a_flow() {
        assert_eq!(size_of::<Option<Entry>>(), size_of::<Entry>());
        for capacity in [1, 7, 1000, 1 << 16, 100_000] {
            let t = table(capacity);
            assert!(t.memory_bytes() <= 64 * capacity, "{} for {capacity}", t.memory_bytes());
        }
    }

    #[test]
    fn the_seed_keys_the_hash() {
        let a = FlowTable::new(1 << 16, Timeouts::default(), 1);
        let b = FlowTable::new(1 << 16, Timeouts::default(), 2);
        let keys: Vec<FlowKey> = (0..64).map(tcp).collect();
        let homes = |t: &FlowTable| keys.iter().map(|k| t.home(k)).collect::<Vec<_>>();
        assert_ne!(homes(&a), homes(&b));
        assert_ne!(random_seed(), random_seed());
    }

    proptest! {
        /// Our fixed-length SipHash equals the streaming one in std
        /// (`SipHasher` is SipHash-2-4, deprecated but still the reference).
        #[test]
        fn siphash_matches_std(k0: u64, k1: u64, m0: u64, m1: u64) {
            #[allow(deprecated)]
            let mut std_hasher = std::hash::SipHasher::new_with_keys(k0, k1);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&m0.to_le_bytes());
            bytes[8..].copy_from_slice(&m1.to_le_bytes());
            std_hasher.write(&bytes);
            prop_assert_eq!(siphash::<2, 4>(k0, k1, m0, m1), std_hasher.finish());
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, u32, FlowState),
        Lookup(usize),
        /// A lookup that then sees a FIN.
        Close(usize),
        Get(usize),
        Remove(usize),
        Advance(u32),
        Expire(usize),
        ExpireAll,
    }

    fn op(keys: usize) -> impl Strategy<Value = Op> {
        let state = prop_oneof![
            Just(FlowState::TcpActive),
            Just(FlowState::TcpClosing),
            Just(FlowState::Udp)
        ];
        prop_oneof![
            4 => (0..keys, 0..8u32, state).prop_map(|(k, b, s)| Op::Insert(k, b, s)),
            3 => (0..keys).prop_map(Op::Lookup),
            1 => (0..keys).prop_map(Op::Close),
            1 => (0..keys).prop_map(Op::Get),
            2 => (0..keys).prop_map(Op::Remove),
            2 => (0..12u32).prop_map(Op::Advance),
            1 => (0..10usize).prop_map(Op::Expire),
            1 => Just(Op::ExpireAll),
        ]
    }

    fn flow_key() -> impl Strategy<Value = FlowKey> {
        // Few distinct values, so keys repeat and (clustered) homes collide.
        (1..4u8, 0..8u16, 0..2u8, any::<bool>()).prop_map(|(client, port, vip, udp)| FlowKey {
            src: Ipv4Addr::new(10, 0, 0, client),
            dst: Ipv4Addr::new(192, 168, 10, 110 + vip),
            src_port: port,
            dst_port: 80,
            proto: if udp { L4Proto::Udp } else { L4Proto::Tcp },
        })
    }

    fn scenario() -> impl Strategy<Value = (Vec<FlowKey>, usize, bool, Timeouts, Vec<Op>)> {
        prop::collection::vec(flow_key(), 1..24).prop_flat_map(|keys| {
            let n = keys.len();
            (
                Just(keys),
                1..12usize,
                any::<bool>(),
                (1..20u32, 1..10u32, 1..15u32).prop_map(|(tcp, tcp_fin, udp)| Timeouts {
                    tcp,
                    tcp_fin,
                    udp,
                }),
                prop::collection::vec(op(n), 1..200),
            )
        })
    }

    proptest! {
        /// The table against a `HashMap` that keeps every entry until the
        /// table must have dropped it: lookups agree exactly, and the table
        /// holds every live flow and nothing the model does not.
        #[test]
        fn behaves_like_a_hash_map_with_idle_timeouts(
            (keys, capacity, clustered, timeouts, ops) in scenario()
        ) {
            let hash = if clustered { KeyHash::Clustered } else { KeyHash::Keyed { k0: 3, k1: 4 } };
            let mut table = FlowTable::with_hash(capacity, timeouts, hash);
            let mut model: HashMap<FlowKey, Flow> = HashMap::new();
            let mut now = 0u32;
            for op in ops {
                match op {
                    Op::Insert(k, backend, state) => {
                        let key = keys[k];
                        let others_alive = model
                            .iter()
                            .filter(|(other, f)| **other != key && !f.is_expired(now, &timeouts))
                            .count();
                        let got = table.insert(key, BackendId(backend), state, now);
                        // Small tables: the full-table sweep covers every slot.
                        prop_assert_eq!(got.is_ok(), others_alive < capacity);
                        if got.is_ok() {
                            let flow = Flow { backend: BackendId(backend), state, last_seen: now };
                            model.insert(key, flow);
                        }
                    }
                    Op::Lookup(k) | Op::Close(k) => {
                        let key = keys[k];
                        let expected = match model.get_mut(&key) {
                            Some(f) if !f.is_expired(now, &timeouts) => {
                                f.last_seen = now;
                                if matches!(op, Op::Close(_)) {
                                    f.state = f.state.after_tcp_segment(true);
                                }
                                Some(*f)
                            }
                            Some(_) => {
                                model.remove(&key);
                                None
                            }
                            None => None,
                        };
                        let got = table.lookup(&key, now).map(|f| {
                            if matches!(op, Op::Close(_)) {
                                f.state = f.state.after_tcp_segment(true);
                            }
                            *f
                        });
                        prop_assert_eq!(got, expected);
                    }
                    Op::Get(k) => {
                        let key = keys[k];
                        let expected = model.get(&key).filter(|f| !f.is_expired(now, &timeouts));
                        prop_assert_eq!(table.get(&key, now), expected);
                    }
                    Op::Remove(k) => {
                        let key = keys[k];
                        let got = table.remove(&key);
                        match model.remove(&key) {
                            Some(f) if !f.is_expired(now, &timeouts) => {
                                prop_assert_eq!(got, Some(f));
                            }
                            // Possibly reclaimed by a sweep already.
                            Some(f) => prop_assert!(got.is_none() || got == Some(f)),
                            None => prop_assert_eq!(got, None),
                        }
                    }
                    Op::Advance(dt) => now += dt,
                    Op::Expire(max_slots) => {
                        let expired =
                            model.values().filter(|f| f.is_expired(now, &timeouts)).count();
                        let got = table.expire(now, max_slots);
                        prop_assert!(got <= max_slots.min(expired));
                    }
                    Op::ExpireAll => {
                        table.expire(now, usize::MAX);
                        model.retain(|_, f| !f.is_expired(now, &timeouts));
                        prop_assert_eq!(table.len(), model.len());
                    }
                }
                let alive: BTreeSet<(FlowKey, Flow)> = model
                    .iter()
                    .filter(|(_, f)| !f.is_expired(now, &timeouts))
                    .map(|(k, f)| (*k, *f))
                    .collect();
                let listed: BTreeSet<(FlowKey, Flow)> =
                    table.iter(now).map(|(k, f)| (*k, *f)).collect();
                prop_assert_eq!(&listed, &alive);
                prop_assert!(alive.len() <= table.len() && table.len() <= model.len());
                prop_assert!(table.len() <= capacity);
            }
        }
    }
}
