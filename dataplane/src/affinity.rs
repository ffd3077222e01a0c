//! Persistence templates (IPVS persistent services, keepalived
//! `persistence_timeout`): which real server a client network was last given,
//! in one fixed table of atomics that every worker reads and writes without a lock.
//!
//! # Layout
//!
//! The table is an array of 64-byte buckets of 8 slots; each slot is one
//! `AtomicU64`, so an entry costs [`ENTRY_BYTES`] = 8 bytes and a bucket one
//! cache line. A client key (the masked client address) is first mixed by a
//! seeded bijection of `u32`, `h`. Its low bits pick the first bucket and the
//! rest, the quotient, is what the slot stores; the second bucket is the first
//! XOR a non-zero function of the quotient, and a flag says which of the two
//! the entry lives in. Bucket, flag and quotient give back `h`, and so the
//! exact key: two clients never share an entry (quotienting, as in quotient
//! and cuckoo filters). One slot packs, low bits first:
//!
//! | bits   | field                                                       |
//! |--------|-------------------------------------------------------------|
//! | 0..22  | quotient (`32 − log2(buckets)` ≤ 22 bits)                    |
//! | 22     | entry lives in the client's second bucket                   |
//! | 23..39 | real server id + 1 (0 = empty slot)                          |
//! | 39..64 | expiry, in the workers' seconds, modulo 2^25                 |
//!
//! A template is alive from its creation to its expiry second included. The
//! 25-bit expiry is read as "seconds left" modulo 2^25: up to
//! [`MAX_TIMEOUT_SECS`] (≈ 194 days) left means alive, more means expired. An
//! expired entry left untouched for 194 days would read as alive again, so
//! [`AffinityTable::sweep`] (called by every worker, a few slots per batch)
//! empties expired slots long before that.
//!
//! # Concurrency
//!
//! Every change is one compare-and-swap of a whole slot from the value that
//! was read, so an entry is never seen half written. Slots carry no pointer to
//! other memory, hence relaxed ordering is enough. Two workers scheduling the
//! same new client at the same moment both try to claim a slot; the loser
//! finds the winner's template and follows it ([`Claim::Taken`]). A new
//! entry goes to the emptier of its two buckets, so the table fills evenly:
//! clients find no room only when it is nearly full.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::tables::BackendId;

/// Bytes of memory per template slot.
pub const ENTRY_BYTES: usize = 8;
/// Slots per bucket: one 64-byte cache line.
const WAYS: usize = 8;
/// At least 2^10 buckets, so that a quotient fits its 22 bits.
const MIN_BUCKET_BITS: u32 = 10;
/// At most 2^22 buckets (2^25 slots, 256 MiB).
const MAX_BUCKET_BITS: u32 = 22;
/// The smallest table: 8192 slots, 64 KiB.
pub const MIN_CAPACITY: usize = WAYS << MIN_BUCKET_BITS;
/// The largest table: 2^25 slots, 256 MiB.
pub const MAX_CAPACITY: usize = WAYS << MAX_BUCKET_BITS;

const QUOTIENT_BITS: u32 = 32 - MIN_BUCKET_BITS;
const SECOND_BUCKET: u64 = 1 << QUOTIENT_BITS;
const KEY_MASK: u64 = (SECOND_BUCKET << 1) - 1;
const BACKEND_SHIFT: u32 = QUOTIENT_BITS + 1;
const BACKEND_MASK: u64 = 0xffff;
const EXPIRY_SHIFT: u32 = BACKEND_SHIFT + 16;
const EXPIRY_BITS: u32 = 64 - EXPIRY_SHIFT;
const EXPIRY_MASK: u32 = (1 << EXPIRY_BITS) - 1;

/// The longest template lifetime the table can hold (2^24 − 1 s, ≈ 194
/// days); longer timeouts are cut to it.
pub const MAX_TIMEOUT_SECS: u32 = (1 << (EXPIRY_BITS - 1)) - 1;
/// The highest real server id a template can name (the id is stored + 1 in 16 bits).
pub const MAX_BACKEND_ID: u32 = 0xfffe;

/// Compare-and-swap rounds an insert tries before it gives up.
const CAS_ATTEMPTS: usize = 4;
/// Salt that makes the second-bucket function differ from the first mix.
const SECOND_BUCKET_SALT: u32 = 0x9e37_79b9;

/// One cache line of slots.
#[repr(align(64))]
#[derive(Default)]
struct Bucket([AtomicU64; WAYS]);

/// A fixed-size, lock-free table of persistence templates for one virtual
/// service, shared by all workers (see the module documentation).
pub struct AffinityTable {
    buckets: Box<[Bucket]>,
    bucket_bits: u32,
    seed: u32,
    /// Where the next [`AffinityTable::sweep`] starts, shared by all workers.
    sweep_cursor: AtomicUsize,
}

/// A live template as [`AffinityTable::lookup`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The real server the client's new flows go to.
    pub backend: BackendId,
    /// Seconds until it expires (0: this is its last second).
    pub remaining_secs: u32,
    slot: usize,
    word: u64,
}

/// What [`AffinityTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The template now names the requested server.
    Recorded,
    /// Another live template for the client (written by another worker in
    /// the meantime) names this server; it was left in place.
    Taken(BackendId),
}

/// Why a template could not be recorded; the flow is scheduled without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AffinityError {
    /// Both buckets of the client hold live templates of other clients.
    #[error("persistence table full: both buckets of client key {client:#010x} hold live templates (capacity {capacity})")]
    Full {
        /// The masked client address.
        client: u32,
        /// The table's capacity, to size it better.
        capacity: usize,
    },
    /// The real server id does not fit a slot.
    #[error("real server id {} is above {MAX_BACKEND_ID}: it cannot be kept in a persistence template", .0 .0)]
    BackendIdTooLarge(BackendId),
    /// Other workers kept changing the client's slots.
    #[error("persistence template of client key {client:#010x} kept changing under {CAS_ATTEMPTS} attempts")]
    Contended {
        /// The masked client address.
        client: u32,
    },
}

/// Where a client's template may live.
#[derive(Debug, Clone, Copy)]
struct Home {
    buckets: [usize; 2],
    quotient: u64,
}

impl Home {
    /// The key bits an entry of this client carries in bucket `choice`.
    fn key(&self, choice: usize) -> u64 {
        if choice == 0 {
            self.quotient
        } else {
            self.quotient | SECOND_BUCKET
        }
    }
}

impl AffinityTable {
    /// A table of at least `capacity` slots (rounded up to a power of two
    /// within [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]), allocated once, with a
    /// random hash seed. Memory: [`ENTRY_BYTES`] per slot. Size it to at least
    /// 4/3 of the client networks expected within one timeout (a table 3/4
    /// full still takes every new client in the tests); a client whose two
    /// buckets are full is scheduled without a template, and counted.
    pub fn new(capacity: usize) -> Self {
        // Truncating the 64-bit seed keeps 32 random bits.
        Self::with_seed(capacity, crate::flow::random_seed() as u32)
    }

    /// As [`AffinityTable::new`] with a chosen hash seed (for tests and benchmarks).
    pub fn with_seed(capacity: usize, seed: u32) -> Self {
        let slots = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
        let buckets: Box<[Bucket]> = (0..slots / WAYS).map(|_| Bucket::default()).collect();
        let bucket_bits = buckets.len().trailing_zeros();
        AffinityTable { buckets, bucket_bits, seed, sweep_cursor: AtomicUsize::new(0) }
    }

    /// How many templates the table has room for.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Bytes the slots take.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val::<[Bucket]>(&self.buckets)
    }

    /// The live template of `client` (a masked client address) at `now`.
    pub fn lookup(&self, client: u32, now: u32) -> Option<Template> {
        let home = self.home(client);
        for (choice, bucket) in home.buckets.into_iter().enumerate() {
            let key = home.key(choice);
            for (way, slot) in self.buckets[bucket].0.iter().enumerate() {
                let word = slot.load(Ordering::Relaxed);
                if word & KEY_MASK != key {
                    continue;
                }
                if let (Some(backend), Some(remaining_secs)) =
                    (backend_of(word), remaining(word, now))
                {
                    return Some(Template {
                        backend,
                        remaining_secs,
                        slot: bucket * WAYS + way,
                        word,
                    });
                }
            }
        }
        None
    }

    /// Moves a template's expiry to `now + timeout_secs`, unless its slot
    /// changed since it was read. Returns whether it was written.
    pub fn extend(&self, template: &Template, now: u32, timeout_secs: u32) -> bool {
        let expiry_field = u64::from(EXPIRY_MASK) << EXPIRY_SHIFT;
        let new = (template.word & !expiry_field) | expiry_bits(now, timeout_secs);
        new == template.word
            || self
                .slot(template.slot)
                .compare_exchange(template.word, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Records that `client`'s new flows go to `backend` until `now +
    /// timeout_secs`. An existing live template for the client is
    /// overwritten only if it names `backend` or `replace` (a server the
    /// caller found unable to take new flows); one naming another server was
    /// written by another worker since the caller looked, and is kept
    /// ([`Claim::Taken`]). Otherwise an expired or empty slot is claimed.
    pub fn insert(
        &self,
        client: u32,
        backend: BackendId,
        now: u32,
        timeout_secs: u32,
        replace: Option<BackendId>,
    ) -> Result<Claim, AffinityError> {
        if backend.0 > MAX_BACKEND_ID {
            return Err(AffinityError::BackendIdTooLarge(backend));
        }
        let home = self.home(client);
        let expiry = expiry_bits(now, timeout_secs);
        for _ in 0..CAS_ATTEMPTS {
            // (slot index, word read, key bits for that bucket)
            let mut own_live: Option<(usize, u64, u64)> = None;
            let mut own_dead = None;
            // First free (empty or expired) slot and free count per bucket.
            let mut free = [None; 2];
            let mut free_count = [0usize; 2];
            for (choice, bucket) in home.buckets.into_iter().enumerate() {
                let key = home.key(choice);
                for (way, slot) in self.buckets[bucket].0.iter().enumerate() {
                    let word = slot.load(Ordering::Relaxed);
                    let found = Some((bucket * WAYS + way, word, key));
                    let alive = remaining(word, now).is_some();
                    if word & KEY_MASK == key && backend_of(word).is_some() {
                        if alive {
                            own_live = own_live.or(found);
                        } else {
                            own_dead = own_dead.or(found);
                        }
                    } else if !alive {
                        free[choice] = free[choice].or(found);
                        free_count[choice] += 1;
                    }
                }
            }
            if let Some(current) = own_live.and_then(|(_, word, _)| backend_of(word)) {
                if current != backend && Some(current) != replace {
                    return Ok(Claim::Taken(current));
                }
            }
            // A new entry goes to the emptier bucket ("power of two
            // choices"): buckets then fill evenly and overflow only when
            // the table is nearly full.
            let emptier = usize::from(free_count[1] > free_count[0]);
            let Some((slot, word, key)) = own_live.or(own_dead).or(free[emptier]) else {
                return Err(AffinityError::Full { client, capacity: self.capacity() });
            };
            let new = key | (u64::from(backend.0 + 1) << BACKEND_SHIFT) | expiry;
            if self
                .slot(slot)
                .compare_exchange(word, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Claim::Recorded);
            }
        }
        Err(AffinityError::Contended { client })
    }

    /// Empties the expired slots among the next `max_slots` (a cursor shared
    /// by all callers walks the table round). Returns how many it emptied.
    /// Workers call it once per batch, which keeps stale entries far from
    /// the 194-day point where their expiry would read as alive again.
    pub fn sweep(&self, now: u32, max_slots: usize) -> usize {
        let slots = self.capacity();
        let count = max_slots.min(slots);
        // One shared add per call (per batch), never per packet. The
        // capacity is a power of two, so the wrapping cursor stays aligned.
        let start = self.sweep_cursor.fetch_add(count, Ordering::Relaxed);
        let mut emptied = 0;
        for i in 0..count {
            let slot = self.slot(start.wrapping_add(i) & (slots - 1));
            let word = slot.load(Ordering::Relaxed);
            if word != 0
                && remaining(word, now).is_none()
                && slot.compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                emptied += 1;
            }
        }
        emptied
    }

    /// How many live templates the table holds at `now` (a walk of the whole
    /// table: for status, not for the packet path).
    pub fn len_live(&self, now: u32) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.0.iter())
            .filter(|slot| remaining(slot.load(Ordering::Relaxed), now).is_some())
            .count()
    }

    fn slot(&self, index: usize) -> &AtomicU64 {
        &self.buckets[index / WAYS].0[index % WAYS]
    }

    fn home(&self, client: u32) -> Home {
        let h = mix(client ^ self.seed);
        let mask = (1u32 << self.bucket_bits) - 1;
        let first = h & mask;
        let quotient = h >> self.bucket_bits;
        // Never 0, so the second bucket differs from the first; XOR makes
        // each bucket computable from the other and the quotient.
        let delta = (mix(quotient ^ SECOND_BUCKET_SALT) & mask) | 1;
        Home { buckets: [first as usize, (first ^ delta) as usize], quotient: u64::from(quotient) }
    }
}

impl fmt::Debug for AffinityTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AffinityTable").field("capacity", &self.capacity()).finish_non_exhaustive()
    }
}

/// The real server of a slot, `None` when the slot is empty.
fn backend_of(word: u64) -> Option<BackendId> {
    let stored = (word >> BACKEND_SHIFT) & BACKEND_MASK;
    // Fits: masked to 16 bits.
    (stored != 0).then(|| BackendId(stored as u32 - 1))
}

/// Seconds left to a slot's template, `None` if it is empty or expired.
fn remaining(word: u64, now: u32) -> Option<u32> {
    backend_of(word)?;
    // The shift leaves the 25 expiry bits.
    let expiry = (word >> EXPIRY_SHIFT) as u32;
    let left = expiry.wrapping_sub(now) & EXPIRY_MASK;
    (left <= MAX_TIMEOUT_SECS).then_some(left)
}

/// The expiry field of a template made at `now` to live `timeout_secs`.
fn expiry_bits(now: u32, timeout_secs: u32) -> u64 {
    let expiry = now.wrapping_add(timeout_secs.min(MAX_TIMEOUT_SECS)) & EXPIRY_MASK;
    u64::from(expiry) << EXPIRY_SHIFT
}

/// A bijection of `u32` that spreads neighbouring addresses over the table
/// (Chris Wellons' "lowbias32": xorshifts and odd multipliers, each invertible).
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u32) -> BackendId {
        BackendId(n)
    }

    #[test]
    fn slot_fields_fill_the_word_exactly() {
        assert_eq!(QUOTIENT_BITS + 1 + 16 + EXPIRY_BITS, 64);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
        let table = AffinityTable::with_seed(1, 7);
        assert_eq!(table.capacity(), MIN_CAPACITY);
        assert_eq!(table.memory_bytes(), MIN_CAPACITY * ENTRY_BYTES);
        assert_eq!(AffinityTable::with_seed(MIN_CAPACITY + 1, 7).capacity(), 2 * MIN_CAPACITY);
    }

    #[test]
    fn mix_is_a_bijection_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for x in (0..1u32 << 20).map(|i| i.wrapping_mul(4099)) {
            assert!(seen.insert(mix(x)), "collision at {x:#x}");
        }
    }

    #[test]
    fn a_template_lives_its_timeout_then_expires() {
        let table = AffinityTable::with_seed(0, 1);
        let client = u32::from(std::net::Ipv4Addr::new(192, 168, 20, 10));
        assert_eq!(table.lookup(client, 100), None);
        assert_eq!(table.insert(client, id(3), 100, 60, None), Ok(Claim::Recorded));
        let t = table.lookup(client, 100).unwrap();
        assert_eq!((t.backend, t.remaining_secs), (id(3), 60));
        assert_eq!(table.lookup(client, 160).map(|t| t.remaining_secs), Some(0));
        assert_eq!(table.lookup(client, 161), None);
        assert_eq!(table.len_live(160), 1);
        assert_eq!(table.len_live(161), 0);
    }

    #[test]
    fn extend_moves_the_expiry_unless_the_slot_changed() {
        let table = AffinityTable::with_seed(0, 1);
        table.insert(5, id(1), 0, 10, None).unwrap();
        let t = table.lookup(5, 8).unwrap();
        assert!(table.extend(&t, 8, 10));
        assert_eq!(table.lookup(5, 18).map(|t| t.backend), Some(id(1)));
        // The copy read before is stale now: its CAS must fail.
        assert!(!table.extend(&t, 9, 10));
    }

    #[test]
    fn insert_keeps_another_workers_template_unless_told_to_replace_it() {
        let table = AffinityTable::with_seed(0, 1);
        assert_eq!(table.insert(9, id(1), 0, 100, None), Ok(Claim::Recorded));
        assert_eq!(table.insert(9, id(2), 1, 100, None), Ok(Claim::Taken(id(1))));
        assert_eq!(table.lookup(9, 1).map(|t| t.backend), Some(id(1)));
        assert_eq!(table.insert(9, id(2), 1, 100, Some(id(1))), Ok(Claim::Recorded));
        assert_eq!(table.lookup(9, 1).map(|t| t.backend), Some(id(2)));
        // Re-recording the same server just refreshes it, in the same slot.
        assert_eq!(table.insert(9, id(2), 50, 100, None), Ok(Claim::Recorded));
        assert_eq!(table.lookup(9, 150).map(|t| t.backend), Some(id(2)));
        assert_eq!(table.len_live(50), 1);
    }

    #[test]
    fn an_id_that_does_not_fit_is_refused() {
        let table = AffinityTable::with_seed(0, 1);
        assert_eq!(table.insert(1, id(MAX_BACKEND_ID), 0, 10, None), Ok(Claim::Recorded));
        assert_eq!(
            table.insert(2, id(MAX_BACKEND_ID + 1), 0, 10, None),
            Err(AffinityError::BackendIdTooLarge(id(MAX_BACKEND_ID + 1)))
        );
    }

    #[test]
    fn a_full_neighbourhood_refuses_and_expired_slots_are_reused() {
        let table = AffinityTable::with_seed(0, 3);
        // Fill the table well past its capacity: some inserts must fail,
        // none may lose or confuse a recorded client.
        let mut recorded = HashMap::new();
        let mut full = 0;
        for client in 0..(2 * MIN_CAPACITY as u32) {
            match table.insert(client, id(client % 1000), 0, 100, None) {
                Ok(Claim::Recorded) => {
                    recorded.insert(client, id(client % 1000));
                }
                Err(AffinityError::Full { .. }) => full += 1,
                other => panic!("client {client}: {other:?}"),
            }
        }
        assert!(full > 0);
        assert!(recorded.len() <= MIN_CAPACITY);
        // Two-choice buckets fill the table almost completely first.
        assert!(recorded.len() > MIN_CAPACITY * 9 / 10, "{}", recorded.len());
        for (client, backend) in &recorded {
            assert_eq!(table.lookup(*client, 0).map(|t| t.backend), Some(*backend));
        }
        // Once they expire, new clients take their slots.
        let late = 3 * MIN_CAPACITY as u32;
        assert_eq!(table.insert(late, id(7), 101, 100, None), Ok(Claim::Recorded));
        assert_eq!(table.lookup(late, 101).map(|t| t.backend), Some(id(7)));
    }

    #[test]
    fn three_quarters_full_still_takes_every_client() {
        for seed in 0..20 {
            let table = AffinityTable::with_seed(0, seed);
            for client in 0..(MIN_CAPACITY as u32 * 3 / 4) {
                let client = client.wrapping_mul(0x0101_0101) ^ seed;
                assert_eq!(
                    table.insert(client, id(1), 0, 100, None),
                    Ok(Claim::Recorded),
                    "seed {seed}, client {client:#x}"
                );
            }
        }
    }

    #[test]
    fn sweep_empties_expired_slots_and_walks_the_whole_table() {
        let table = AffinityTable::with_seed(0, 5);
        for client in 0..100 {
            table.insert(client, id(1), 0, if client < 40 { 10 } else { 1000 }, None).unwrap();
        }
        let mut emptied = 0;
        for _ in 0..(MIN_CAPACITY / 64) {
            emptied += table.sweep(11, 64);
        }
        assert_eq!(emptied, 40);
        assert_eq!(table.len_live(11), 60);
        assert_eq!(
            table
                .buckets
                .iter()
                .flat_map(|b| b.0.iter())
                .filter(|s| s.load(Ordering::Relaxed) != 0)
                .count(),
            60
        );
    }

    #[test]
    fn expiry_reads_correctly_across_the_wrap_of_its_field() {
        let table = AffinityTable::with_seed(0, 1);
        let now = (1 << EXPIRY_BITS) - 5;
        table.insert(77, id(2), now, 30, None).unwrap();
        assert_eq!(table.lookup(77, now + 30).map(|t| t.remaining_secs), Some(0));
        assert_eq!(table.lookup(77, now + 31), None);
        // A huge timeout is cut to the longest one the field can tell apart.
        table.insert(78, id(2), 0, u32::MAX, None).unwrap();
        assert_eq!(table.lookup(78, 0).map(|t| t.remaining_secs), Some(MAX_TIMEOUT_SECS));
        assert_eq!(table.lookup(78, MAX_TIMEOUT_SECS + 1), None);
    }

    #[test]
    fn concurrent_workers_agree_on_one_server_per_client() {
        let table = Arc::new(AffinityTable::with_seed(0, 11));
        let clients = 2000u32;
        let threads: Vec<_> = (0..4u32)
            .map(|worker| {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    let mut chosen = Vec::new();
                    for client in 0..clients {
                        // Each "worker" would pick a different server.
                        let mine = id(worker);
                        let got = match table.lookup(client, 0) {
                            Some(t) => t.backend,
                            None => match table.insert(client, mine, 0, 100, None) {
                                Ok(Claim::Recorded) => mine,
                                Ok(Claim::Taken(other)) => other,
                                Err(e) => panic!("{e}"),
                            },
                        };
                        chosen.push(got);
                    }
                    chosen
                })
            })
            .collect();
        let results: Vec<Vec<BackendId>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for client in 0..clients as usize {
            let stored = table.lookup(client as u32, 0).map(|t| t.backend);
            for r in &results {
                assert_eq!(Some(r[client]), stored, "client {client}");
            }
        }
        assert_eq!(table.len_live(0), clients as usize);
    }

    proptest! {
        /// The table behaves as a map from client to (server, expiry) for
        /// any sequence of inserts, as long as it has room.
        #[test]
        fn behaves_as_a_map(
            ops in proptest::collection::vec((any::<u32>(), 0u32..50, 0u32..100, 1u32..100), 1..300),
            seed in any::<u32>(),
        ) {
            let table = AffinityTable::with_seed(0, seed);
            let mut model: HashMap<u32, (BackendId, u32)> = HashMap::new();
            let mut now = 0u32;
            for (client, backend, step, timeout) in ops {
                now += step % 3;
                // Few distinct clients, so that keys repeat.
                let client = client % 64;
                let live = model.get(&client).filter(|(_, exp)| *exp >= now).copied();
                let got = table.lookup(client, now);
                prop_assert_eq!(got.map(|t| t.backend), live.map(|(b, _)| b));
                prop_assert_eq!(got.map(|t| t.remaining_secs), live.map(|(_, e)| e - now));
                let claim = table.insert(client, id(backend), now, timeout, live.map(|(b, _)| b));
                prop_assert_eq!(claim, Ok(Claim::Recorded));
                model.insert(client, (id(backend), now + timeout));
                let live_count = model.values().filter(|(_, e)| *e >= now).count();
                prop_assert_eq!(table.len_live(now), live_count);
            }
        }
    }
}
