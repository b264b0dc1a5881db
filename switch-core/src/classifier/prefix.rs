//! Prefix tracking for the classifier (Open vSwitch's "prefix tries", kept here as hash sets):
//! for each 32-bit address field, the prefixes of every rule whose mask on that field is a CIDR
//! prefix, grouped by length. Before probing a subtable with an `/P` prefix on the field, the
//! lookup asks whether any rule at all has a length-`P` prefix matching the packet; if none
//! does, the subtable is skipped without touching it, and the megaflow needs fewer bits than
//! the subtable's mask:
//!
//! - `P <= 16`: the packet's `P` leading bits (any packet with the same `P` bits has the same
//!   length-`P` prefix, so it is skipped too);
//! - `P > 16` and no rule with a prefix of 16 bits or more shares the packet's 16 leading bits:
//!   only those 16 bits (a packet from 12.0.0.0/16 against an ACL of 10.x.y.z/32 rules leaves
//!   the rest of its address wildcarded, where probing would make each source its own megaflow);
//! - otherwise all `P` bits.
//!
//! A binary trie would tell exactly how many bits decide (OVS unwildcards those), but every
//! distinct length becomes a distinct megaflow mask, each one more subtable for every megaflow
//! lookup to search: measured on `acl_10k_rules_20_masks`, exact lengths took it from 4 masks
//! and 75 ns/packet to 32 masks and 181 ns, byte-rounded lengths to 10 masks and 112 ns, the
//! 16-bit split above keeps 4 masks and 75 ns (docs/benchmarks.md). Hash sets answer the
//! question with one probe per distinct length instead of a walk of up to 32 dependent loads.

use hashbrown::HashMap;

use crate::flow::Field;

/// The fields tracked, in the order of [`Subtable`](super::Subtable)'s `prefix_plen`.
pub(super) const PREFIX_FIELDS: [Field; 2] = [Field::Ipv4Dst, Field::Ipv4Src];

/// The split: prefixes longer than this are first ruled out on their leading `SPLIT` bits.
pub(super) const SPLIT: u8 = 16;

/// One field's prefixes.
#[derive(Clone, Debug, Default)]
pub(super) struct PrefixSet {
    /// Index `P - 1`: (prefix value, masked to `P` bits) -> number of rules.
    by_len: [Option<HashMap<u32, u32>>; 32],
    /// The `SPLIT` leading bits of every rule prefix of at least `SPLIT` bits -> rules.
    wide: HashMap<u32, u32>,
}

/// The prefix length of `mask` if it is a nonzero CIDR prefix (leading ones, then zeros).
pub(super) fn prefix_len(mask: u32) -> Option<u8> {
    let l = mask.leading_ones();
    (l > 0 && mask.count_ones() == l).then_some(l as u8)
}

/// The mask of the `n` leading bits of a 32-bit field.
#[inline]
pub(super) fn leading_mask(n: u8) -> u32 {
    match n {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => u32::MAX << (32 - n as u32),
    }
}

fn add(map: &mut HashMap<u32, u32>, k: u32) {
    *map.entry(k).or_insert(0) += 1;
}

fn sub(map: &mut HashMap<u32, u32>, k: u32) {
    if let Some(n) = map.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            map.remove(&k);
        }
    }
}

impl PrefixSet {
    /// Adds one rule's prefix (`plen` 1..=32 leading bits of `value`).
    pub fn insert(&mut self, value: u32, plen: u8) {
        let Some(slot) = self.by_len.get_mut(plen.clamp(1, 32) as usize - 1) else {
            return;
        };
        add(
            slot.get_or_insert_with(HashMap::new),
            value & leading_mask(plen),
        );
        if plen >= SPLIT {
            add(&mut self.wide, value & leading_mask(SPLIT));
        }
    }

    /// Removes one rule's prefix added by [`PrefixSet::insert`] (one that is not there is
    /// ignored).
    pub fn remove(&mut self, value: u32, plen: u8) {
        let Some(Some(map)) = self.by_len.get_mut(plen.clamp(1, 32) as usize - 1) else {
            return;
        };
        let k = value & leading_mask(plen);
        if !map.contains_key(&k) {
            return;
        }
        sub(map, k);
        if map.is_empty() {
            self.by_len[plen as usize - 1] = None;
        }
        if plen >= SPLIT {
            sub(&mut self.wide, value & leading_mask(SPLIT));
        }
    }

    /// Whether some rule's `plen`-bit prefix matches `value`.
    #[inline]
    pub fn has(&self, value: u32, plen: u8) -> bool {
        match self.by_len.get(plen.clamp(1, 32) as usize - 1) {
            Some(Some(map)) => map.contains_key(&(value & leading_mask(plen))),
            _ => false,
        }
    }

    /// Whether some rule prefix of at least `SPLIT` bits shares `value`'s leading `SPLIT` bits.
    #[inline]
    pub fn wide(&self, value: u32) -> bool {
        self.wide.contains_key(&(value & leading_mask(SPLIT)))
    }
}

/// One lookup's answers for one field, each asked at most once, and the leading bits the
/// skips so far depend on.
#[derive(Clone, Copy, Default)]
pub(super) struct Memo {
    asked: u64,
    yes: u64,
    wide: Option<bool>,
    /// The most leading bits any skip of this lookup depended on (for the wildcards).
    pub bits: u8,
}

impl Memo {
    /// Whether no `/plen` rule can match `value` (the subtable is skipped); if so, the bits
    /// that decide it are folded into `bits`.
    #[inline]
    pub fn skip(&mut self, set: &PrefixSet, value: u32, plen: u8) -> bool {
        let bit = 1u64 << (plen & 63);
        if self.asked & bit == 0 {
            self.asked |= bit;
            if set.has(value, plen) {
                self.yes |= bit;
            }
        }
        if self.yes & bit != 0 {
            return false;
        }
        let bits = if plen <= SPLIT || *self.wide.get_or_insert_with(|| set.wide(value)) {
            plen
        } else {
            SPLIT
        };
        self.bits = self.bits.max(bits);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths_of_masks() {
        assert_eq!(prefix_len(0), None);
        assert_eq!(prefix_len(u32::MAX), Some(32));
        assert_eq!(prefix_len(0xff00_0000), Some(8));
        assert_eq!(prefix_len(0xffff_ff00), Some(24));
        assert_eq!(prefix_len(0x00ff_0000), None);
        assert_eq!(prefix_len(0xff00_ff00), None);
        assert_eq!(leading_mask(0), 0);
        assert_eq!(leading_mask(8), 0xff00_0000);
        assert_eq!(leading_mask(32), u32::MAX);
    }

    #[test]
    fn skips_say_which_bits_decide() {
        let mut s = PrefixSet::default();
        s.insert(0x0a00_0000, 8); // 10/8
        s.insert(0x0a01_0200, 24); // 10.1.2/24
        let skip = |value: u32, plen: u8| {
            let mut m = Memo::default();
            m.skip(&s, value, plen).then_some(m.bits)
        };
        // 10.1.2.3: both match; a /16 or /32 subtable is skipped.
        assert_eq!(skip(0x0a01_0203, 8), None);
        assert_eq!(skip(0x0a01_0203, 24), None);
        // 16 bits or fewer: those bits decide.
        assert_eq!(skip(0x0a01_0203, 12), Some(12));
        // Longer: a /24 shares 10.1, so all 32 bits.
        assert_eq!(skip(0x0a01_0203, 32), Some(32));
        // 12.0.0.1: nothing long shares 12.0, so 16 bits decide for any long prefix.
        assert_eq!(skip(0x0c00_0001, 8), Some(8));
        assert_eq!(skip(0x0c00_0001, 24), Some(16));
        assert_eq!(skip(0x0c00_0001, 32), Some(16));
        // One lookup: the bits are the most any skip needed.
        let mut m = Memo::default();
        assert!(m.skip(&s, 0x0c00_0001, 8) && m.skip(&s, 0x0c00_0001, 32));
        assert!(m.skip(&s, 0x0c00_0001, 12));
        assert_eq!(m.bits, 16);
    }

    #[test]
    fn counts_follow_inserts_and_removals() {
        let mut s = PrefixSet::default();
        s.insert(0x0a01_0200, 24);
        s.insert(0x0a01_02ff, 24);
        s.insert(0x0a01_0000, 16);
        s.remove(0x0a01_0200, 24);
        assert!(s.has(0x0a01_0203, 24));
        s.remove(0x0a01_0200, 24);
        assert!(!s.has(0x0a01_0203, 24));
        assert!(s.has(0x0a01_0203, 16) && s.wide(0x0a01_ffff));
        // Not there: ignored, and the counts are untouched.
        s.remove(0x0b00_0000, 8);
        s.remove(0x0a01_0000, 24);
        assert!(s.wide(0x0a01_0000));
        s.remove(0x0a01_0000, 16);
        assert!(!s.has(0x0a01_0000, 16) && !s.wide(0x0a01_0000));
        assert!(s.by_len.iter().all(Option::is_none) && s.wide.is_empty());
    }
}
