//! The exact-match cache: full flow key → megaflow, in front of the megaflow classifier.
//!
//! A fixed array of entries, two ways per hash (the pair `i`, `i ^ 1`, so both ways share
//! neighbouring memory). An entry names its megaflow by slot and serial, so an entry whose
//! megaflow was removed or replaced is simply a miss; the EMC never needs flushing.
//!
//! Insertion is probabilistic (Open vSwitch's `emc-insert-inv-prob`): with many more flows than
//! entries, inserting on every megaflow hit would evict entries faster than they pay off
//! (thrashing), while flows that carry most of the traffic still get in after a few packets.

use alloc::vec::Vec;

use crate::flow::FlowKey;

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: FlowKey,
    hash: u32,
    megaflow: u32,
    serial: u32,
}

const VACANT: Entry = Entry {
    key: FlowKey::ZERO,
    hash: 0,
    megaflow: EMPTY,
    serial: 0,
};

/// The exact-match cache.
#[derive(Clone, Debug)]
pub(crate) struct Emc {
    entries: Vec<Entry>,
    mask: usize,
}

impl Emc {
    /// A cache of `n` entries (rounded up to a power of two; 0 disables it).
    pub fn new(n: usize) -> Emc {
        let n = if n == 0 {
            0
        } else {
            n.next_power_of_two().max(2)
        };
        Emc {
            entries: alloc::vec![VACANT; n],
            mask: n.wrapping_sub(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The megaflow (slot, serial) cached for `key`.
    #[inline]
    pub fn lookup(&self, hash: u64, key: &FlowKey) -> Option<(u32, u32)> {
        if self.entries.is_empty() {
            return None;
        }
        let i = (hash as usize) & self.mask;
        let h = (hash >> 32) as u32;
        for e in [&self.entries[i], &self.entries[i ^ 1]] {
            if e.hash == h && e.megaflow != EMPTY && same_key(&e.key, key) {
                return Some((e.megaflow, e.serial));
            }
        }
        None
    }

    /// Caches `key` → megaflow. `alive(slot, serial)` tells whether an entry's megaflow still
    /// exists (dead entries are replaced first).
    pub fn insert(
        &mut self,
        hash: u64,
        key: &FlowKey,
        megaflow: u32,
        serial: u32,
        alive: impl Fn(u32, u32) -> bool,
    ) {
        if self.entries.is_empty() {
            return;
        }
        let i = (hash as usize) & self.mask;
        let h = (hash >> 32) as u32;
        let new = Entry {
            key: *key,
            hash: h,
            megaflow,
            serial,
        };
        let mut victim = None;
        for j in [i, i ^ 1] {
            let e = &self.entries[j];
            if e.megaflow == EMPTY || (e.hash == h && same_key(&e.key, key)) {
                self.entries[j] = new;
                return;
            }
            if victim.is_none() && !alive(e.megaflow, e.serial) {
                victim = Some(j);
            }
        }
        // Both ways live: replace one chosen by the hash (no bookkeeping on hits).
        let j = victim.unwrap_or(if (hash >> 63) != 0 { i } else { i ^ 1 });
        self.entries[j] = new;
    }

    /// Number of occupied entries whose megaflow is alive (for statistics; O(capacity)).
    pub fn occupancy(&self, alive: impl Fn(u32, u32) -> bool) -> usize {
        self.entries
            .iter()
            .filter(|e| e.megaflow != EMPTY && alive(e.megaflow, e.serial))
            .count()
    }

    pub fn clear(&mut self) {
        self.entries.fill(VACANT);
    }
}

/// Whole-key comparison without a `memcmp` call (a branch-free word loop the compiler
/// vectorizes).
#[inline]
pub(crate) fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    let mut d = 0;
    for i in 0..a.w.len() {
        d |= a.w[i] ^ b.w[i];
    }
    d == 0
}

/// Hash of a whole key for the EMC: four independent multiply lanes (so the CPU overlaps
/// them), folded. Keyed by `seed`.
#[inline]
pub(crate) fn key_hash(key: &FlowKey, seed: u64) -> u64 {
    const K: u64 = 0x9fb2_1c65_1e98_df25;
    let mut a = [
        seed ^ 0x243f_6a88_85a3_08d3,
        seed ^ 0x1319_8a2e_0370_7344,
        seed ^ 0xa409_3822_299f_31d0,
        seed ^ 0x082e_fa98_ec4e_6c89,
    ];
    for c in key.w.as_chunks::<4>().0 {
        for l in 0..4 {
            a[l] = (a[l] ^ c[l]).wrapping_mul(K).rotate_left(23);
        }
    }
    finish(a[0] ^ a[1].rotate_left(16) ^ a[2].rotate_left(32) ^ a[3].rotate_left(48))
}

/// Hash of the words of `key` under a mask, given as `(word, mask)` pairs. Keyed by `seed`.
#[inline]
pub(crate) fn masked_hash(key: &FlowKey, words: &[(u8, u64)], seed: u64) -> u64 {
    words_hash(words.iter().map(|&(i, m)| key.w[i as usize & 15] & m), seed)
}

/// [`masked_hash`] of the masked words themselves (a subtable's packed row).
#[inline]
pub(crate) fn words_hash(words: impl Iterator<Item = u64>, seed: u64) -> u64 {
    const K: u64 = 0x9fb2_1c65_1e98_df25;
    let mut h = seed ^ 0x5851_f42d_4c95_7f2d;
    for w in words {
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    finish(h)
}

#[inline]
fn finish(mut x: u64) -> u64 {
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;

    #[test]
    fn two_ways_and_dead_entries_first() {
        let mut emc = Emc::new(4);
        let mut k1 = FlowKey::ZERO;
        k1.set(Field::InPort, 1);
        let mut k2 = k1;
        k2.set(Field::InPort, 2);
        let mut k3 = k1;
        k3.set(Field::InPort, 3);
        // Same bucket on purpose.
        let h = 0x1234_5678_0000_0000u64;
        emc.insert(h, &k1, 1, 1, |_, _| true);
        emc.insert(h, &k2, 2, 1, |_, _| true);
        assert_eq!(emc.lookup(h, &k1), Some((1, 1)));
        assert_eq!(emc.lookup(h, &k2), Some((2, 1)));
        // k3 replaces the dead one.
        emc.insert(h, &k3, 3, 1, |m, _| m != 1);
        assert_eq!(emc.lookup(h, &k1), None);
        assert_eq!(emc.lookup(h, &k2), Some((2, 1)));
        assert_eq!(emc.lookup(h, &k3), Some((3, 1)));
        assert_eq!(Emc::new(0).lookup(h, &k1), None);
    }
}
