//! The MAC learning table: (VLAN, MAC) → port, with aging, a size limit that evicts the least
//! recently seen entry, move detection and statistics.
//!
//! Entries live in a slab (`Vec<Slot>`) threaded on an intrusive doubly linked list ordered by
//! when the MAC was last seen as a source (most recent at the head). A `hashbrown` map from the
//! packed (VLAN, MAC) key to the slot index gives O(1) lookup. Because "least recently seen" and
//! "oldest" are the same order, the tail is both the eviction victim and the first to age out,
//! so aging pops from the tail and costs O(expired entries). After the table has reached its size
//! limit (or its working set), learning and lookup never allocate.
//!
//! There is no clock here: every call that needs time takes `now_ms` from the caller.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hasher};

use hashbrown::HashMap;

use crate::port::PortNo;

/// Default aging time: 300 s, as Open vSwitch (`mac-aging-time`).
pub const DEFAULT_AGING_MS: u64 = 300_000;
/// Default size limit: 8192 entries, as Open vSwitch (`mac-table-size`).
pub const DEFAULT_MAX_ENTRIES: usize = 8192;

const NIL: u32 = u32::MAX;
/// Key of a free slot; a real key is below 2^60 (12-bit VLAN above a 48-bit MAC).
const FREE_KEY: u64 = u64::MAX;
/// Initial reservation, so a small bridge never reallocates while warming up.
const INITIAL_CAPACITY: usize = 1024;

/// The MAC table's hash: a keyed folded multiply over the packed 64-bit key, two rounds.
///
/// The table is the classic target of hash flooding (the attacker picks source MACs), and a
/// `no_std` image has no per-boot randomness on its own, so the key comes from the caller:
/// [`MacTable::with_hash_seed`] with a boot-time random value. The default key is fixed.
#[derive(Clone, Copy, Debug)]
pub struct MacHashBuilder {
    k0: u64,
    k1: u64,
}

impl MacHashBuilder {
    /// A hasher keyed by `seed` (expanded with splitmix64 so that similar seeds differ).
    pub const fn with_seed(seed: u64) -> MacHashBuilder {
        const fn splitmix(mut z: u64) -> u64 {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let k0 = splitmix(seed);
        MacHashBuilder {
            k0,
            k1: splitmix(k0) | 1,
        }
    }
}

impl Default for MacHashBuilder {
    fn default() -> Self {
        MacHashBuilder::with_seed(0x1f0f_1a5e_ed00_0001)
    }
}

impl BuildHasher for MacHashBuilder {
    type Hasher = MacHasher;
    #[inline]
    fn build_hasher(&self) -> MacHasher {
        MacHasher {
            state: self.k0,
            k1: self.k1,
        }
    }
}

/// The [`Hasher`] of [`MacHashBuilder`]. Built for one `u64` key; other input is folded in
/// eight bytes at a time.
#[derive(Clone, Copy, Debug)]
pub struct MacHasher {
    state: u64,
    k1: u64,
}

#[inline]
const fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for MacHasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        let a = folded_multiply(x ^ self.state, self.k1);
        self.state = folded_multiply(a ^ self.k1.rotate_left(23), 0x5851_f42d_4c95_7f2d);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// A 48-bit MAC address packed into the low bits of a `u64` (first byte most significant), the
/// layout [`crate::flow::FlowKey`] uses for `eth_src`/`eth_dst`.
#[inline]
pub const fn mac_to_u64(mac: [u8; 6]) -> u64 {
    ((mac[0] as u64) << 40)
        | ((mac[1] as u64) << 32)
        | ((mac[2] as u64) << 24)
        | ((mac[3] as u64) << 16)
        | ((mac[4] as u64) << 8)
        | (mac[5] as u64)
}

/// The inverse of [`mac_to_u64`] (bits above 48 are ignored).
#[inline]
pub const fn u64_to_mac(mac: u64) -> [u8; 6] {
    [
        (mac >> 40) as u8,
        (mac >> 32) as u8,
        (mac >> 24) as u8,
        (mac >> 16) as u8,
        (mac >> 8) as u8,
        mac as u8,
    ]
}

/// Whether a packed MAC is group (multicast or broadcast): the I/G bit of the first byte.
#[inline]
pub const fn mac_is_multicast(mac: u64) -> bool {
    mac & (1 << 40) != 0
}

#[inline]
const fn pack(vlan: u16, mac: u64) -> u64 {
    ((vlan as u64 & 0x0fff) << 48) | (mac & 0xffff_ffff_ffff)
}

#[inline]
const fn key_vlan(key: u64) -> u16 {
    (key >> 48) as u16
}

#[inline]
const fn key_mac(key: u64) -> u64 {
    key & 0xffff_ffff_ffff
}

/// One learned address, as shown by [`MacTable::entries`] (`ovs-appctl fdb/show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: [u8; 6],
    pub port: PortNo,
    /// Time since the MAC was last seen as a source.
    pub age_ms: u64,
}

/// Counters of the table's events (`ovs-appctl fdb/stats-show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MacStats {
    /// New entries.
    pub learned: u64,
    /// Entries whose MAC appeared on another port.
    pub moved: u64,
    /// Entries removed to make room at the size limit.
    pub evicted: u64,
    /// Entries removed by aging.
    pub aged: u64,
    /// Entries removed by a flush (explicit, or a port that went down, away or out of the VLAN).
    pub flushed: u64,
}

/// What learning did with one source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// Nothing: group or zero source MAC, a port that may not learn, or a zero-size table.
    NotLearned,
    /// A new entry.
    Learned,
    /// A known entry on the same port; only its age was reset.
    Refreshed,
    /// The MAC was known on port `from` and now points at the new port.
    Moved { from: PortNo },
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: u64,
    port: PortNo,
    seen_ms: u64,
    prev: u32,
    next: u32,
}

/// The MAC learning table. See the module documentation.
#[derive(Clone, Debug)]
pub struct MacTable {
    map: HashMap<u64, u32, MacHashBuilder>,
    slots: Vec<Slot>,
    /// Head of the free-slot list (linked through `Slot::next`).
    free: u32,
    /// Most recently seen entry.
    head: u32,
    /// Least recently seen entry: next to age out or be evicted.
    tail: u32,
    len: usize,
    max_entries: usize,
    aging_ms: u64,
    stats: MacStats,
    generation: u64,
    /// Bumped when an entry is removed, moves or may have aged out (never when one is added).
    removals: u64,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(DEFAULT_MAX_ENTRIES, DEFAULT_AGING_MS)
    }
}

impl MacTable {
    /// A table holding at most `max_entries` (capped at 2^32 - 2) that forgets an address
    /// `aging_ms` after it was last seen (0: immediately, i.e. nothing is ever found).
    pub fn new(max_entries: usize, aging_ms: u64) -> MacTable {
        MacTable::with_hasher(max_entries, aging_ms, MacHashBuilder::default())
    }

    /// As [`new`](Self::new), with the hash keyed by `seed`: pass a boot-time random value so
    /// that nobody can precompute colliding MAC addresses.
    pub fn with_hash_seed(max_entries: usize, aging_ms: u64, seed: u64) -> MacTable {
        MacTable::with_hasher(max_entries, aging_ms, MacHashBuilder::with_seed(seed))
    }

    fn with_hasher(max_entries: usize, aging_ms: u64, hasher: MacHashBuilder) -> MacTable {
        let max_entries = max_entries.min(NIL as usize - 1);
        let reserve = max_entries.min(INITIAL_CAPACITY);
        MacTable {
            map: HashMap::with_capacity_and_hasher(reserve, hasher),
            slots: Vec::with_capacity(reserve),
            free: NIL,
            head: NIL,
            tail: NIL,
            len: 0,
            max_entries,
            aging_ms,
            stats: MacStats::default(),
            generation: 0,
            removals: 0,
        }
    }

    /// Number of entries (expired ones not yet collected included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn aging_ms(&self) -> u64 {
        self.aging_ms
    }

    pub fn stats(&self) -> MacStats {
        self.stats
    }

    /// Bumped whenever a lookup could answer differently: an entry learned, moved, evicted,
    /// aged or flushed, or the aging time changed. Not bumped when an entry is only refreshed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changes whenever an entry is removed (aged, evicted, flushed), moves to another port,
    /// or the aging time changes: not when a new address is learned. While it holds, every
    /// answer found for a known address still holds (lookups of unknown addresses need
    /// [`generation`](Self::generation), which a new address changes too).
    pub fn removal_generation(&self) -> u64 {
        self.removals
    }

    /// Changes that cannot alter a decision already made about a *known* address (a new
    /// address learned) bump only `generation`.
    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// An entry went away, moved, or may have become invisible (aging time): answers about
    /// known addresses may change, so `removals` moves too.
    fn bump_removal(&mut self) {
        self.removals = self.removals.wrapping_add(1);
        self.bump();
    }

    #[inline]
    fn expired(&self, seen_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(seen_ms) >= self.aging_ms
    }

    /// Changes the aging time; entries older than it go at the next [`expire`](Self::expire)
    /// and are not found by lookups from now on.
    pub fn set_aging_ms(&mut self, aging_ms: u64) {
        if aging_ms != self.aging_ms {
            self.aging_ms = aging_ms;
            self.bump_removal();
        }
    }

    /// Changes the size limit, evicting the least recently seen entries if the table is larger.
    pub fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries.min(NIL as usize - 1);
        while self.len > self.max_entries {
            self.evict_tail();
        }
    }

    /// The port `mac` was learned on in `vlan`, unless unknown or expired. Never allocates and
    /// never changes the table (an expired entry is collected later).
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: u64, now_ms: u64) -> Option<PortNo> {
        let &i = self.map.get(&pack(vlan, mac))?;
        let s = &self.slots[i as usize];
        (!self.expired(s.seen_ms, now_ms)).then_some(s.port)
    }

    /// Records that `mac` was seen as a source on `port` in `vlan`. Group (multicast/broadcast)
    /// and all-zero addresses are not learned. At the size limit the least recently seen entry
    /// is evicted.
    pub fn learn(&mut self, vlan: u16, mac: u64, port: PortNo, now_ms: u64) -> LearnOutcome {
        let mac = mac & 0xffff_ffff_ffff;
        if mac == 0 || mac_is_multicast(mac) || self.max_entries == 0 {
            return LearnOutcome::NotLearned;
        }
        // Collect a little aged garbage on the way, so the table stays fresh without a timer.
        if self.tail != NIL && self.expired(self.slots[self.tail as usize].seen_ms, now_ms) {
            self.expire_some(now_ms, 2);
        }

        let key = pack(vlan, mac);
        if let Some(&i) = self.map.get(&key) {
            let s = &mut self.slots[i as usize];
            let old = s.port;
            s.port = port;
            s.seen_ms = now_ms;
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            if old != port {
                self.stats.moved += 1;
                self.bump_removal();
                log::debug!(
                    "mac {:012x} vlan {vlan} moved from port {old} to {port}",
                    mac
                );
                return LearnOutcome::Moved { from: old };
            }
            return LearnOutcome::Refreshed;
        }

        if self.len >= self.max_entries {
            self.evict_tail();
        }
        let slot = Slot {
            key,
            port,
            seen_ms: now_ms,
            prev: NIL,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            self.slots[i as usize] = slot;
            i
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        self.map.insert(key, i);
        self.push_front(i);
        self.len += 1;
        self.stats.learned += 1;
        self.bump();
        LearnOutcome::Learned
    }

    /// When the least recently seen entry expires (`None` for an empty table): the time to run
    /// [`expire`](Self::expire) next.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        (self.tail != NIL).then(|| {
            self.slots[self.tail as usize]
                .seen_ms
                .saturating_add(self.aging_ms)
        })
    }

    /// Removes every expired entry. Returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.expire_some(now_ms, usize::MAX)
    }

    #[cold]
    fn expire_some(&mut self, now_ms: u64, max: usize) -> usize {
        let mut n = 0;
        while n < max && self.tail != NIL {
            let t = self.tail;
            if !self.expired(self.slots[t as usize].seen_ms, now_ms) {
                break;
            }
            self.remove_slot(t);
            self.stats.aged += 1;
            n += 1;
        }
        if n > 0 {
            self.bump_removal();
        }
        n
    }

    /// Removes every entry for which `keep(vlan, mac, port)` is false. Returns how many (counted
    /// as flushed).
    pub fn retain(&mut self, mut keep: impl FnMut(u16, [u8; 6], PortNo) -> bool) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.key != FREE_KEY && !keep(key_vlan(s.key), u64_to_mac(key_mac(s.key)), s.port) {
                self.remove_slot(i as u32);
                n += 1;
            }
        }
        if n > 0 {
            self.stats.flushed += n as u64;
            self.bump_removal();
        }
        n
    }

    /// Removes every entry (`ovs-appctl fdb/flush`). Returns how many.
    pub fn flush_all(&mut self) -> usize {
        let n = self.len;
        self.map.clear();
        self.slots.clear();
        self.free = NIL;
        self.head = NIL;
        self.tail = NIL;
        self.len = 0;
        if n > 0 {
            self.stats.flushed += n as u64;
            self.bump_removal();
        }
        n
    }

    /// Removes the entries learned on `port`. Returns how many.
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        self.retain(|_, _, p| p != port)
    }

    /// Removes the entries of `vlan`. Returns how many.
    pub fn flush_vlan(&mut self, vlan: u16) -> usize {
        self.retain(|v, _, _| v != vlan)
    }

    /// The live (not expired) entries, least recently seen first, as `ovs-appctl fdb/show` lists
    /// them.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = MacEntry> + '_ {
        let mut i = self.tail;
        core::iter::from_fn(move || {
            while i != NIL {
                let s = &self.slots[i as usize];
                i = s.prev;
                if !self.expired(s.seen_ms, now_ms) {
                    return Some(MacEntry {
                        vlan: key_vlan(s.key),
                        mac: u64_to_mac(key_mac(s.key)),
                        port: s.port,
                        age_ms: now_ms.saturating_sub(s.seen_ms),
                    });
                }
            }
            None
        })
    }

    fn evict_tail(&mut self) {
        if self.tail != NIL {
            self.remove_slot(self.tail);
            self.stats.evicted += 1;
            self.bump_removal();
        }
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let head = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = head;
        }
        if head != NIL {
            self.slots[head as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn remove_slot(&mut self, i: u32) {
        self.unlink(i);
        let key = self.slots[i as usize].key;
        self.map.remove(&key);
        let s = &mut self.slots[i as usize];
        s.key = FREE_KEY;
        s.prev = NIL;
        s.next = self.free;
        self.free = i;
        self.len -= 1;
    }

    /// Checks the internal invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut n = 0;
        let mut i = self.head;
        let mut prev = NIL;
        while i != NIL {
            let s = &self.slots[i as usize];
            assert_ne!(s.key, FREE_KEY);
            assert_eq!(s.prev, prev);
            assert_eq!(self.map.get(&s.key), Some(&i));
            prev = i;
            i = s.next;
            n += 1;
        }
        assert_eq!(self.tail, prev);
        assert_eq!(n, self.len);
        assert_eq!(self.map.len(), self.len);
        assert!(self.len <= self.max_entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u64 = 0x0200_0000_000a;
    const B: u64 = 0x0200_0000_000b;
    const C: u64 = 0x0200_0000_000c;
    const D: u64 = 0x0200_0000_000d;

    #[test]
    fn seeded_tables_work_and_hash_differently() {
        let mut t = MacTable::with_hash_seed(64, 1000, 42);
        for i in 0..64u64 {
            assert_eq!(t.learn(1, A + i, 1, 0), LearnOutcome::Learned);
        }
        for i in 0..64u64 {
            assert_eq!(t.lookup(1, A + i, 0), Some(1));
        }
        t.check_invariants();
        let h = |seed: u64, k: u64| MacHashBuilder::with_seed(seed).hash_one(k);
        assert_ne!(h(1, A), h(2, A));
        assert_ne!(h(1, A), h(1, B));
        // The bits hashbrown uses (low bits for the bucket, top 7 for the tag) spread over
        // sequential MACs: 4096 keys fill most of 1024 buckets.
        let mut seen = [false; 1024];
        for i in 0..4096u64 {
            seen[(h(7, pack(10, A + i)) & 1023) as usize] = true;
        }
        assert!(seen.iter().filter(|&&b| b).count() > 950);
        let mut tags = [false; 128];
        for i in 0..4096u64 {
            tags[(h(7, pack(10, A + i)) >> 57) as usize] = true;
        }
        assert!(tags.iter().all(|&b| b));
    }

    #[test]
    fn mac_packing_round_trips() {
        let m = [0x50, 0x54, 0x00, 0x12, 0x34, 0x56];
        assert_eq!(mac_to_u64(m), 0x5054_0012_3456);
        assert_eq!(u64_to_mac(mac_to_u64(m)), m);
        assert!(mac_is_multicast(0xffff_ffff_ffff));
        assert!(mac_is_multicast(0x0100_5e00_0001));
        assert!(!mac_is_multicast(A));
    }

    #[test]
    fn learn_lookup_refresh() {
        let mut t = MacTable::new(16, 1000);
        assert_eq!(t.learn(10, A, 1, 0), LearnOutcome::Learned);
        assert_eq!(t.lookup(10, A, 0), Some(1));
        assert_eq!(t.lookup(20, A, 0), None, "VLANs are separate tables");
        assert_eq!(t.learn(10, A, 1, 500), LearnOutcome::Refreshed);
        assert_eq!(t.lookup(10, A, 1400), Some(1), "refresh reset the age");
        assert_eq!(t.stats().learned, 1);
        t.check_invariants();
    }

    #[test]
    fn group_and_zero_sources_are_not_learned() {
        let mut t = MacTable::default();
        assert_eq!(t.learn(1, 0xffff_ffff_ffff, 1, 0), LearnOutcome::NotLearned);
        assert_eq!(t.learn(1, 0x0100_5e00_0001, 1, 0), LearnOutcome::NotLearned);
        assert_eq!(t.learn(1, 0x3333_0000_0001, 1, 0), LearnOutcome::NotLearned);
        assert_eq!(t.learn(1, 0, 1, 0), LearnOutcome::NotLearned);
        assert!(t.is_empty());
    }

    #[test]
    fn aging_forgets_and_collects() {
        let mut t = MacTable::new(16, 1000);
        assert_eq!(t.next_expiry_ms(), None);
        t.learn(1, A, 1, 0);
        t.learn(1, B, 2, 600);
        assert_eq!(t.next_expiry_ms(), Some(1000));
        assert_eq!(t.lookup(1, A, 999), Some(1));
        assert_eq!(
            t.lookup(1, A, 1000),
            None,
            "expired at exactly the aging time"
        );
        assert_eq!(t.entries(1000).count(), 1);
        let g = t.generation();
        assert_eq!(t.expire(1000), 1);
        assert_ne!(t.generation(), g);
        assert_eq!(t.stats().aged, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_expiry_ms(), Some(1600));
        assert_eq!(t.expire(1599), 0);
        assert_eq!(t.expire(1600), 1);
        assert!(t.is_empty());
        t.check_invariants();
        // A clock that goes backwards never expires anything.
        t.learn(1, A, 1, 5000);
        assert_eq!(t.lookup(1, A, 10), Some(1));
    }

    #[test]
    fn learning_collects_expired_entries_on_the_way() {
        let mut t = MacTable::new(16, 1000);
        t.learn(1, A, 1, 0);
        t.learn(1, B, 1, 0);
        t.learn(1, C, 1, 5000);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().aged, 2);
        t.check_invariants();
    }

    #[test]
    fn eviction_at_the_limit_takes_the_least_recently_seen() {
        let mut t = MacTable::new(3, 1_000_000);
        t.learn(1, A, 1, 0);
        t.learn(1, B, 2, 1);
        t.learn(1, C, 3, 2);
        t.learn(1, A, 1, 3); // A is now the most recent; B the least.
        assert_eq!(t.learn(1, D, 4, 4), LearnOutcome::Learned);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(1, B, 5), None);
        assert_eq!(t.lookup(1, A, 5), Some(1));
        assert_eq!(t.lookup(1, C, 5), Some(3));
        assert_eq!(t.lookup(1, D, 5), Some(4));
        assert_eq!(t.stats().evicted, 1);
        t.check_invariants();
        // Shrinking evicts too, oldest first (C, then A).
        t.set_max_entries(1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(1, D, 5), Some(4));
        assert_eq!(t.stats().evicted, 3);
        t.check_invariants();
        // A zero-size table learns nothing.
        t.set_max_entries(0);
        assert!(t.is_empty());
        assert_eq!(t.learn(1, A, 1, 6), LearnOutcome::NotLearned);
    }

    #[test]
    fn slots_are_reused_without_growth() {
        let mut t = MacTable::new(4, 1_000_000);
        for i in 0..1000u64 {
            t.learn(1, 0x0200_0000_0000 + i, 1, i);
        }
        assert_eq!(t.len(), 4);
        assert!(t.slots.len() <= 4);
        t.check_invariants();
    }

    #[test]
    fn removal_generation_moves_on_removals_and_moves_not_on_additions() {
        let mut t = MacTable::new(2, 1000);
        let r = t.removal_generation();
        let g = t.generation();
        t.learn(10, A, 1, 0);
        t.learn(10, A + 1, 1, 0);
        assert_ne!(
            t.generation(),
            g,
            "an addition changes answers about unknown addresses"
        );
        assert_eq!(t.removal_generation(), r, "not about known ones");
        // Full: the next addition evicts.
        t.learn(10, A + 2, 1, 0);
        assert_ne!(t.removal_generation(), r);
        let r = t.removal_generation();
        t.learn(10, A + 2, 2, 1);
        assert_ne!(t.removal_generation(), r, "a move");
        let r = t.removal_generation();
        t.learn(10, A + 2, 2, 2);
        assert_eq!(t.removal_generation(), r, "a refresh");
        assert_eq!(t.expire(5000), 2);
        assert_ne!(t.removal_generation(), r, "aging");
        let r = t.removal_generation();
        t.set_aging_ms(10);
        assert_ne!(t.removal_generation(), r, "a shorter aging time");
        let r = t.removal_generation();
        t.learn(10, A, 1, 6000);
        assert_eq!(t.flush_all(), 1);
        assert_ne!(t.removal_generation(), r, "a flush");
    }

    #[test]
    fn move_is_detected_and_counted() {
        let mut t = MacTable::default();
        t.learn(10, A, 1, 0);
        let g = t.generation();
        assert_eq!(t.learn(10, A, 2, 1), LearnOutcome::Moved { from: 1 });
        assert_ne!(t.generation(), g);
        assert_eq!(t.lookup(10, A, 1), Some(2));
        assert_eq!(t.stats().moved, 1);
        assert_eq!(t.len(), 1);
        let g = t.generation();
        assert_eq!(t.learn(10, A, 2, 2), LearnOutcome::Refreshed);
        assert_eq!(t.generation(), g, "a refresh does not invalidate decisions");
    }

    #[test]
    fn flushes() {
        let mut t = MacTable::default();
        t.learn(10, A, 1, 0);
        t.learn(10, B, 2, 0);
        t.learn(20, C, 1, 0);
        t.learn(20, D, 3, 0);
        assert_eq!(t.flush_port(1), 2);
        assert_eq!(t.lookup(10, A, 0), None);
        assert_eq!(t.lookup(10, B, 0), Some(2));
        assert_eq!(t.flush_vlan(20), 1);
        assert_eq!(t.len(), 1);
        t.check_invariants();
        assert_eq!(t.flush_all(), 1);
        assert!(t.is_empty());
        assert_eq!(t.stats().flushed, 4);
        t.check_invariants();
        t.learn(10, A, 1, 0);
        assert_eq!(t.lookup(10, A, 0), Some(1));
    }

    #[test]
    fn entries_dump_oldest_first_with_ages() {
        let mut t = MacTable::new(16, 1000);
        t.learn(10, A, 1, 100);
        t.learn(20, B, 2, 300);
        t.learn(10, C, 3, 50); // clock went back: still listed by recency
        let e: Vec<_> = t.entries(400).collect();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            MacEntry {
                vlan: 10,
                mac: u64_to_mac(A),
                port: 1,
                age_ms: 300
            }
        );
        assert_eq!(e[1].port, 2);
        assert_eq!(e[2].age_ms, 350);
        assert_eq!(t.entries(1150).count(), 1);
    }
}
