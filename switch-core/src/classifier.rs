//! The OpenFlow table classifier: tuple space search with priority pruning.
//!
//! Rules are grouped by their mask into subtables; each subtable is one hash table keyed by the
//! masked key, so a lookup costs one hash probe per distinct mask, never a scan of the rules.
//! Subtables are kept sorted by the highest priority they hold; a lookup stops as soon as the
//! best match found so far is at least as high as the next subtable's maximum (Open vSwitch's
//! `classifier_lookup` does the same).
//!
//! Every lookup ORs the bits it looked at into a caller's "consulted bits" accumulator (`wc`),
//! so that any packet agreeing with the looked-up key on those bits gets the same answer: that
//! is what makes a megaflow built from the accumulator correct. Subtables skipped by priority
//! pruning cannot change the answer and add nothing. A searched subtable adds its whole mask
//! on a hit; on a miss, staged lookup (as Open vSwitch does) often adds less: each subtable
//! also indexes its rules by the metadata, L2 and L3 parts of its mask, and a miss in an early
//! stage proves the miss from that stage's bits alone. Fewer consulted bits mean broader
//! megaflows, which is what keeps the datapath's mask count down.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hashbrown::HashTable;

use crate::flow::{Field, FlowKey, KEY_WORDS};

mod prefix;
use prefix::{Memo, PREFIX_FIELDS, PrefixSet, leading_mask, prefix_len};

/// The nonzero words of a mask: a lookup hashes and compares only these (a subtable's mask
/// typically covers 2-4 of the key's 16 words), never the whole key.
#[derive(Clone, Debug)]
struct MaskWords {
    mask: FlowKey,
    idx: [u8; KEY_WORDS],
    n: u8,
}

impl MaskWords {
    fn new(mask: FlowKey) -> Self {
        let mut idx = [0u8; KEY_WORDS];
        let mut n = 0;
        for (i, w) in mask.w.iter().enumerate() {
            if *w != 0 {
                idx[n] = i as u8;
                n += 1;
            }
        }
        MaskWords {
            mask,
            idx,
            n: n as u8,
        }
    }

    #[inline]
    fn words(&self) -> &[u8] {
        &self.idx[..(self.n as usize).min(KEY_WORDS)]
    }

    /// Hash of `key & mask` over the mask's words (for a stored, already masked value the
    /// same as hashing it).
    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for &i in self.words() {
            let i = i as usize % KEY_WORDS;
            h = (h ^ (key.w[i] & self.mask.w[i])).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 32;
        }
        h
    }

    /// Whether `key & mask` equals the stored (masked) `value`.
    #[inline]
    fn eq(&self, value: &FlowKey, key: &FlowKey) -> bool {
        self.words().iter().all(|&i| {
            let i = i as usize % KEY_WORDS;
            value.w[i] == key.w[i] & self.mask.w[i]
        })
    }

    /// ORs the mask into `wc`.
    #[inline]
    fn consult(&self, wc: &mut FlowKey) {
        for &i in self.words() {
            let i = i as usize % KEY_WORDS;
            wc.w[i] |= self.mask.w[i];
        }
    }
}

/// The fields of the lookup stages before the last (cumulative: each stage adds its fields to
/// the previous ones; the last stage is the whole mask).
const STAGES: [&[Field]; 3] = [
    &[
        Field::Metadata,
        Field::InPort,
        Field::InPhyPort,
        Field::TunnelId,
    ],
    &[
        Field::EthDst,
        Field::EthSrc,
        Field::EthType,
        Field::VlanVid,
        Field::VlanPcp,
    ],
    &[
        Field::IpDscp,
        Field::IpEcn,
        Field::IpProto,
        Field::Ipv4Src,
        Field::Ipv4Dst,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Flabel,
        Field::Ipv6Exthdr,
    ],
];

/// One early stage of a subtable: part of its mask, and how many rules have each value under
/// that part.
#[derive(Clone, Debug)]
struct Stage {
    mask: MaskWords,
    /// (masked value, number of rules).
    values: HashTable<(FlowKey, u32)>,
}

impl Stage {
    fn add(&mut self, value: &FlowKey) {
        let v = value.masked(&self.mask.mask);
        let m = &self.mask;
        let h = m.hash(&v);
        match self.values.find_mut(h, |e| m.eq(&e.0, &v)) {
            Some(e) => e.1 += 1,
            None => {
                self.values.insert_unique(h, (v, 1), |e| m.hash(&e.0));
            }
        }
    }

    fn sub(&mut self, value: &FlowKey) {
        let m = &self.mask;
        let h = m.hash(value);
        if let Ok(mut e) = self.values.find_entry(h, |e| m.eq(&e.0, value)) {
            e.get_mut().1 -= 1;
            if e.get().1 == 0 {
                e.remove();
            }
        }
    }

    #[inline]
    fn contains(&self, key: &FlowKey) -> bool {
        let m = &self.mask;
        self.values.find(m.hash(key), |e| m.eq(&e.0, key)).is_some()
    }
}

/// A rule's slot in its classifier. Slots are reused after removal.
pub type RuleId = u32;

/// One rule: a masked value, a priority and the caller's data.
#[derive(Clone, Debug)]
pub struct Rule<T> {
    pub value: FlowKey,
    pub mask: FlowKey,
    pub priority: u16,
    pub data: T,
}

#[derive(Clone, Debug)]
struct Subtable {
    /// The subtable's mask and its nonzero words.
    words: MaskWords,
    /// (masked key, rules with that masked value, highest priority first).
    buckets: HashTable<(FlowKey, Vec<(u16, RuleId)>)>,
    /// Priority -> number of rules (the last key is the subtable's max priority).
    priorities: BTreeMap<u16, usize>,
    max_priority: u16,
    /// Early stages with bits of their own (none for masks within one stage).
    stages: heapless::Vec<Stage, 3>,
    /// The mask's CIDR prefix length on each [`PREFIX_FIELDS`] field (0: not tracked, the field
    /// is wildcarded or its mask is not a prefix).
    prefix_plen: [u8; PREFIX_FIELDS.len()],
}

impl Subtable {
    fn new(mask: FlowKey) -> Self {
        let mut stages = heapless::Vec::new();
        let mut cumulative = FlowKey::ZERO;
        let mut prev = FlowKey::ZERO;
        for fields in STAGES {
            for f in fields {
                cumulative.set_exact(*f);
            }
            let part = mask.masked(&cumulative);
            if part != prev && part != mask {
                let _ = stages.push(Stage {
                    mask: MaskWords::new(part),
                    values: HashTable::new(),
                });
                prev = part;
            }
        }
        let prefix_plen = PREFIX_FIELDS.map(|f| prefix_len(mask.get(f) as u32).unwrap_or(0));
        Subtable {
            prefix_plen,
            words: MaskWords::new(mask),
            buckets: HashTable::new(),
            priorities: BTreeMap::new(),
            max_priority: 0,
            stages,
        }
    }
}

/// A priority classifier over [`FlowKey`]s.
#[derive(Clone, Debug)]
pub struct Classifier<T> {
    rules: Vec<Option<Rule<T>>>,
    free: Vec<RuleId>,
    /// Sorted by `max_priority`, highest first.
    subtables: Vec<Subtable>,
    /// One prefix set per [`PREFIX_FIELDS`] field, over the rules of every subtable tracking it.
    prefixes: [PrefixSet; PREFIX_FIELDS.len()],
    len: usize,
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Classifier<T> {
    pub fn new() -> Self {
        Classifier {
            rules: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            prefixes: Default::default(),
            len: 0,
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn resort(&mut self) {
        self.subtables
            .sort_by_key(|s| core::cmp::Reverse(s.max_priority));
    }

    /// Adds a rule (the value is masked here). Identical rules are allowed; the caller decides
    /// about replacing (see [`Classifier::find_exact`]).
    pub fn insert(&mut self, value: FlowKey, mask: FlowKey, priority: u16, data: T) -> RuleId {
        let value = value.masked(&mask);
        let rule = Rule {
            value,
            mask,
            priority,
            data,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.rules[id as usize] = Some(rule);
                id
            }
            None => {
                self.rules.push(Some(rule));
                (self.rules.len() - 1) as RuleId
            }
        };
        let idx = match self.subtables.iter().position(|s| s.words.mask == mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable::new(mask));
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[idx];
        for (j, &plen) in st.prefix_plen.iter().enumerate() {
            if plen > 0 {
                self.prefixes[j].insert(value.get(PREFIX_FIELDS[j]) as u32, plen);
            }
        }
        for stage in st.stages.iter_mut() {
            stage.add(&value);
        }
        let m = &st.words;
        let h = m.hash(&value);
        let bucket = match st.buckets.find_mut(h, |e| m.eq(&e.0, &value)) {
            Some(e) => &mut e.1,
            None => {
                &mut st
                    .buckets
                    .insert_unique(h, (value, Vec::new()), |e| m.hash(&e.0))
                    .into_mut()
                    .1
            }
        };
        // Highest priority first; among equals, older first.
        let pos = bucket.partition_point(|(p, _)| *p >= priority);
        bucket.insert(pos, (priority, id));
        *st.priorities.entry(priority).or_insert(0) += 1;
        if priority > st.max_priority || st.priorities.len() == 1 {
            st.max_priority = priority;
            self.resort();
        }
        self.len += 1;
        id
    }

    /// Removes a rule, returning it.
    pub fn remove(&mut self, id: RuleId) -> Option<Rule<T>> {
        let rule = self.rules.get_mut(id as usize)?.take()?;
        self.free.push(id);
        self.len -= 1;
        let Some(idx) = self
            .subtables
            .iter()
            .position(|s| s.words.mask == rule.mask)
        else {
            return Some(rule);
        };
        let st = &mut self.subtables[idx];
        for (j, &plen) in st.prefix_plen.iter().enumerate() {
            if plen > 0 {
                self.prefixes[j].remove(rule.value.get(PREFIX_FIELDS[j]) as u32, plen);
            }
        }
        for stage in st.stages.iter_mut() {
            stage.sub(&rule.value);
        }
        let m = &st.words;
        if let Ok(mut e) = st
            .buckets
            .find_entry(m.hash(&rule.value), |e| m.eq(&e.0, &rule.value))
        {
            e.get_mut().1.retain(|(_, r)| *r != id);
            if e.get().1.is_empty() {
                e.remove();
            }
        }
        if let Some(n) = st.priorities.get_mut(&rule.priority) {
            *n -= 1;
            if *n == 0 {
                st.priorities.remove(&rule.priority);
            }
        }
        if st.priorities.is_empty() {
            self.subtables.remove(idx);
        } else {
            let max = st.priorities.keys().next_back().copied().unwrap_or(0);
            if max != st.max_priority {
                st.max_priority = max;
                self.resort();
            }
        }
        Some(rule)
    }

    pub fn get(&self, id: RuleId) -> Option<&Rule<T>> {
        self.rules.get(id as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, id: RuleId) -> Option<&mut Rule<T>> {
        self.rules.get_mut(id as usize)?.as_mut()
    }

    /// Every rule, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, &Rule<T>)> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i as RuleId, r)))
    }

    /// Every rule, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (RuleId, &mut Rule<T>)> {
        self.rules
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| r.as_mut().map(|r| (i as RuleId, r)))
    }

    /// The rule with exactly this match and priority (the "strict" identity), if any.
    pub fn find_exact(&self, value: &FlowKey, mask: &FlowKey, priority: u16) -> Option<RuleId> {
        let st = self.subtables.iter().find(|s| s.words.mask == *mask)?;
        let m = &st.words;
        let (_, bucket) = st.buckets.find(m.hash(value), |e| m.eq(&e.0, value))?;
        bucket
            .iter()
            .find(|(p, _)| *p == priority)
            .map(|(_, id)| *id)
    }

    /// The highest-priority rule matching `key`, ORing the consulted bits into `wc`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<RuleId> {
        self.lookup_counted(key, wc).0
    }

    /// [`Classifier::lookup`] that also tells how many subtables it searched.
    pub fn lookup_counted(&self, key: &FlowKey, wc: &mut FlowKey) -> (Option<RuleId>, usize) {
        let mut best: Option<(u16, RuleId)> = None;
        let mut searched = 0;
        // Each prefix question is asked at most once per lookup, when a subtable first needs it.
        let mut memo = [Memo::default(); PREFIX_FIELDS.len()];
        'subtables: for st in &self.subtables {
            if let Some((bp, _)) = best
                && bp >= st.max_priority
            {
                break;
            }
            searched += 1;
            // Prefix tracking: no rule anywhere has a matching prefix of this subtable's
            // length, so nothing here matches (the wildcards get the bits that decide it).
            for (j, &plen) in st.prefix_plen.iter().enumerate() {
                if plen == 0 {
                    continue;
                }
                let value = key.get(PREFIX_FIELDS[j]) as u32;
                if memo[j].skip(&self.prefixes[j], value, plen) {
                    continue 'subtables;
                }
            }
            // Staged lookup: a miss in an early stage is decided by that stage's bits.
            // Each probe hashes and compares only the stage's (subtable's) mask words.
            if let Some(stage) = st.stages.iter().find(|stage| !stage.contains(key)) {
                stage.mask.consult(wc);
                continue;
            }
            let m = &st.words;
            m.consult(wc);
            if let Some(&(p, id)) = st
                .buckets
                .find(m.hash(key), |e| m.eq(&e.0, key))
                .and_then(|(_, b)| b.first())
                && best.is_none_or(|(bp, _)| p > bp)
            {
                best = Some((p, id));
            }
        }
        for (m, f) in memo.iter().zip(PREFIX_FIELDS) {
            if m.bits > 0 {
                wc.set(f, wc.get(f) | leading_mask(m.bits) as u128);
            }
        }
        (best.map(|(_, id)| id), searched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn key(in_port: u32, eth_type: u16, dst: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set(Field::InPort, in_port as u128);
        k.set(Field::EthType, eth_type as u128);
        k.set(Field::Ipv4Dst, dst as u128);
        k
    }

    #[test]
    fn priority_wins_and_wc_collects_masks() {
        let mut c = Classifier::new();
        let mut m_port = FlowKey::ZERO;
        m_port.set_exact(Field::InPort);
        let mut m_dst = FlowKey::ZERO;
        m_dst.set(Field::Ipv4Dst, 0xffff_ff00);
        let a = c.insert(key(1, 0, 0), m_port, 10, "port1");
        let b = c.insert(key(0, 0, 0x0a00_0100), m_dst, 20, "net");
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&key(1, 0x800, 0x0a00_0105), &mut wc), Some(b));
        // The /24 subtable has the higher max priority: searched first, and it matched at 20,
        // which no other subtable can beat: pruning stops there.
        assert_eq!(wc, m_dst);
        // 11.0.1.5: no prefix of 16 bits or more starts with 11.0, so the /24 subtable is ruled
        // out on those 16 bits: they go into the wildcards, not the whole /24.
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&key(1, 0x800, 0x0b00_0105), &mut wc), Some(a));
        let mut m_dst16 = FlowKey::ZERO;
        m_dst16.set(Field::Ipv4Dst, 0xffff_0000);
        assert_eq!(wc, m_dst16.or(&m_port));
        assert_eq!(c.lookup(&key(2, 0, 0), &mut FlowKey::default()), None);
        assert_eq!(c.find_exact(&key(1, 9, 9), &m_port, 10), Some(a));
        assert_eq!(c.find_exact(&key(1, 9, 9), &m_port, 11), None);
        assert_eq!(c.remove(b).map(|r| r.data), Some("net"));
        assert_eq!(c.n_subtables(), 1);
        assert_eq!(
            c.lookup(&key(1, 0x800, 0x0a00_0105), &mut FlowKey::default()),
            Some(a)
        );
        assert!(c.remove(b).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn staged_lookup_consults_only_the_stages_it_needed() {
        let mut c = Classifier::new();
        let mut mask = FlowKey::ZERO;
        for f in [Field::InPort, Field::EthType, Field::Ipv4Dst, Field::TcpDst] {
            mask.set_exact(f);
        }
        let mut v = key(1, 0x800, 0x0a00_0001);
        v.set(Field::TcpDst, 80);
        let r = c.insert(v, mask, 5, ());
        let stage = |fields: &[Field]| {
            let mut m = FlowKey::ZERO;
            for f in fields {
                m.set_exact(*f);
            }
            m
        };
        // Wrong port: the metadata stage decides.
        let mut k = v;
        k.set(Field::InPort, 2);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&k, &mut wc), None);
        assert_eq!(wc, stage(&[Field::InPort]));
        // Right port, ARP: the L2 stage decides.
        let mut k = v;
        k.set(Field::EthType, 0x806);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&k, &mut wc), None);
        assert_eq!(wc, stage(&[Field::InPort, Field::EthType]));
        // Wrong destination: prefix tracking decides before any stage, on 16 bits (no rule's
        // prefix starts with 0.0).
        let mut k = v;
        k.set(Field::Ipv4Dst, 9);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&k, &mut wc), None);
        let mut dst16 = FlowKey::ZERO;
        dst16.set(Field::Ipv4Dst, 0xffff_0000);
        assert_eq!(wc, dst16);
        // Wrong port number and a hit: the whole mask.
        let mut k = v;
        k.set(Field::TcpDst, 81);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&k, &mut wc), None);
        assert_eq!(wc, mask);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&v, &mut wc), Some(r));
        assert_eq!(wc, mask);
        // Stage indexes follow removals.
        c.remove(r);
        c.insert(key(3, 0x800, 0x0a00_0001), mask, 5, ());
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&v, &mut wc), None);
        assert_eq!(wc, stage(&[Field::InPort]));
    }

    #[test]
    fn max_priority_follows_removals() {
        let mut c = Classifier::new();
        let mut m = FlowKey::ZERO;
        m.set_exact(Field::InPort);
        let hi = c.insert(key(1, 0, 0), m, 100, ());
        let _lo = c.insert(key(2, 0, 0), m, 5, ());
        let any = c.insert(FlowKey::ZERO, FlowKey::ZERO, 50, ());
        assert_eq!(c.lookup(&key(2, 0, 0), &mut FlowKey::default()), Some(any));
        c.remove(hi);
        // Now the exact subtable's max is 5: the catch-all (50) is searched first and wins,
        // and the exact subtable is pruned.
        let (r, n) = c.lookup_counted(&key(2, 0, 0), &mut FlowKey::default());
        assert_eq!((r, n), (Some(any), 1));
    }

    #[test]
    fn searched_subtables_bounded_by_distinct_masks() {
        let mut c = Classifier::new();
        // 3 distinct masks, 3000 rules.
        let mut masks = vec![FlowKey::ZERO; 3];
        masks[0].set_exact(Field::InPort);
        masks[1].set_exact(Field::Ipv4Dst);
        masks[2].set_exact(Field::InPort);
        masks[2].set_exact(Field::EthType);
        for i in 0..1000u32 {
            for (j, m) in masks.iter().enumerate() {
                c.insert(key(i + 1, 0x800, i), *m, (i % 7) as u16 + j as u16, i);
            }
        }
        assert_eq!(c.len(), 3000);
        assert_eq!(c.n_subtables(), 3);
        for i in 0..2000u32 {
            let (_, n) = c.lookup_counted(&key(i, 0x800, i / 2), &mut FlowKey::default());
            assert!(n <= 3);
        }
    }

    #[derive(Clone, Debug)]
    struct TestRule {
        value: FlowKey,
        mask: FlowKey,
        priority: u16,
    }

    // Small field values and a handful of masks so that random keys actually hit rules.
    fn arb_mask() -> impl Strategy<Value = FlowKey> {
        (0u8..16).prop_map(|bits| {
            let mut m = FlowKey::ZERO;
            if bits & 1 != 0 {
                m.set_exact(Field::InPort);
            }
            if bits & 2 != 0 {
                m.set(Field::EthType, 0xffff);
            }
            if bits & 4 != 0 {
                m.set(Field::Ipv4Dst, 0xffff_ff00);
            }
            if bits & 8 != 0 {
                m.set(Field::TcpDst, 0x3);
            }
            m
        })
    }

    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (1u32..4, 0u16..2, 0u32..4, 0u16..8).prop_map(|(p, t, d, l4)| {
            let mut k = key(
                p,
                if t == 0 { 0x800 } else { 0x806 },
                0x0a00_0000 | (d << 8) | d,
            );
            k.set(Field::TcpDst, l4 as u128);
            k
        })
    }

    fn arb_rule() -> impl Strategy<Value = TestRule> {
        (arb_mask(), arb_key(), 0u16..20).prop_map(|(mask, k, priority)| TestRule {
            value: k.masked(&mask),
            mask,
            priority,
        })
    }

    fn best(live: &[(RuleId, TestRule)], k: &FlowKey) -> Option<u16> {
        live.iter()
            .filter(|(_, r)| k.eq_masked(&r.value, &r.mask))
            .map(|(_, r)| r.priority)
            .max()
    }

    /// The classifier with `rules` inserted and then the `removals` removed, and the rules left
    /// (for the linear scan).
    fn build(
        rules: &[TestRule],
        removals: &[prop::sample::Index],
    ) -> (Classifier<TestRule>, Vec<(RuleId, TestRule)>) {
        let mut c = Classifier::new();
        let mut live: Vec<(RuleId, TestRule)> = Vec::new();
        for r in rules {
            let id = c.insert(r.value, r.mask, r.priority, r.clone());
            live.push((id, r.clone()));
        }
        for ix in removals {
            if live.is_empty() {
                break;
            }
            let (id, _) = live.remove(ix.index(live.len()));
            assert!(c.remove(id).is_some());
        }
        (c, live)
    }

    proptest! {
        #[test]
        fn same_best_priority_as_linear_scan(
            rules in proptest::collection::vec(arb_rule(), 0..60),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            keys in proptest::collection::vec(arb_key(), 1..40),
        ) {
            let (c, live) = build(&rules, &removals);
            let distinct: Vec<FlowKey> = live.iter().fold(Vec::new(), |mut v, (_, r)| {
                if !v.contains(&r.mask) { v.push(r.mask); }
                v
            });
            prop_assert_eq!(c.n_subtables(), distinct.len());
            for k in &keys {
                let naive = best(&live, k);
                let mut wc = FlowKey::ZERO;
                let (got, searched) = c.lookup_counted(k, &mut wc);
                prop_assert!(searched <= distinct.len());
                let got_rule = got.map(|id| c.get(id).unwrap());
                prop_assert_eq!(got_rule.map(|r| r.priority), naive);
                if let Some(r) = got_rule {
                    prop_assert!(k.eq_masked(&r.value, &r.mask));
                }
                // Megaflow property: every key agreeing on the consulted bits gets the same
                // best priority from the naive scan.
                for other in &keys {
                    if other.eq_masked(k, &wc) {
                        prop_assert_eq!(best(&live, other), naive);
                    }
                }
            }
        }
    }

    // Address prefixes for prefix tracking: lengths 0-32 (and now and then a mask that is not a
    // prefix), values near a few bases so that prefixes share paths and keys hit some of them.
    fn arb_addr() -> impl Strategy<Value = u32> {
        (0usize..4, any::<u32>(), 0u8..33).prop_map(|(b, r, keep)| {
            let base = [0x0a00_0000u32, 0x0a01_0200, 0x0c00_0000, 0xc0a8_0101][b];
            // Agree with the base on `keep` leading bits, random below.
            let m = if keep == 0 {
                0
            } else {
                u32::MAX << (32 - keep as u32)
            };
            (base & m) | (r & !m)
        })
    }

    fn arb_prefix_mask() -> impl Strategy<Value = u32> {
        prop_oneof![
            8 => (0u8..33).prop_map(|l| if l == 0 { 0 } else { u32::MAX << (32 - l as u32) }),
            1 => any::<u32>(),
        ]
    }

    fn addr_key(src: u32, dst: u32, port: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set(Field::EthType, 0x800);
        k.set(Field::Ipv4Src, src as u128);
        k.set(Field::Ipv4Dst, dst as u128);
        k.set(Field::TcpDst, port as u128);
        k
    }

    fn arb_prefix_rule() -> impl Strategy<Value = TestRule> {
        (
            arb_addr(),
            arb_addr(),
            arb_prefix_mask(),
            arb_prefix_mask(),
            any::<bool>(),
            0u16..30,
        )
            .prop_map(|(src, dst, sm, dm, port, priority)| {
                let mut mask = FlowKey::ZERO;
                mask.set(Field::EthType, 0xffff);
                mask.set(Field::Ipv4Src, sm as u128);
                mask.set(Field::Ipv4Dst, dm as u128);
                if port {
                    mask.set(Field::TcpDst, 0xffff);
                }
                TestRule {
                    value: addr_key(src, dst, 80).masked(&mask),
                    mask,
                    priority,
                }
            })
    }

    proptest! {
        // Prefix tracking skips subtables and narrow the wildcards: the answer must still be the
        // linear scan's, and every key that agrees on the consulted bits (whatever its other
        // bits) must get the same answer, through inserts and removals.
        #[test]
        fn prefix_tracking_keeps_answers_and_megaflows_exact(
            rules in proptest::collection::vec(arb_prefix_rule(), 0..80),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            keys in proptest::collection::vec((arb_addr(), arb_addr(), 79u16..82), 1..30),
            noise in proptest::collection::vec((any::<u32>(), any::<u32>(), 79u16..82), 8),
        ) {
            let (c, live) = build(&rules, &removals);
            for &(s, d, p) in &keys {
                let k = addr_key(s, d, p);
                let mut wc = FlowKey::ZERO;
                let got = c.lookup(&k, &mut wc).map(|id| c.get(id).unwrap().priority);
                prop_assert_eq!(got, best(&live, &k));
                for &(ns, nd, np) in &noise {
                    // k's consulted bits, the noise's everywhere else.
                    let n = addr_key(ns, nd, np);
                    let mut other = FlowKey::ZERO;
                    for i in 0..KEY_WORDS {
                        other.w[i] = (k.w[i] & wc.w[i]) | (n.w[i] & !wc.w[i]);
                    }
                    prop_assert_eq!(best(&live, &other), got, "wc {:?}", wc);
                }
            }
        }
    }
}
