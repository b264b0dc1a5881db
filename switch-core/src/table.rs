//! One OpenFlow flow table: its entries (priority, match, cookie, flags, instructions, timeouts,
//! counters) in a [`Classifier`], its lookup/matched counters, its size limit and a generation
//! counter that changes on every modification.
//!
//! Counters are `Cell`s so that the packet path (and the datapath cache attributing its hits)
//! can count through a shared reference while lookups borrow the table.

use core::cell::Cell;

use bitflags::bitflags;

use crate::action::Instructions;
use crate::classifier::{Classifier, RuleId};
use crate::flow::FlowKey;
use crate::flow_match::Match;

/// Number of flow tables an OpenFlow 1.3 switch may have at most (0..=253).
pub const MAX_TABLES: usize = 254;
/// `OFPTT_ALL`: every table (delete and stats requests).
pub const OFPTT_ALL: u8 = 0xff;
/// Default per-table entry limit.
pub const DEFAULT_MAX_ENTRIES: usize = 1 << 20;

bitflags! {
    /// `ofp_flow_mod_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct FlowModFlags: u16 {
        const SEND_FLOW_REM = 1 << 0;
        const CHECK_OVERLAP = 1 << 1;
        const RESET_COUNTS = 1 << 2;
        const NO_PKT_COUNTS = 1 << 3;
        const NO_BYT_COUNTS = 1 << 4;
    }
}

/// One flow entry.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    pub match_: Match,
    pub priority: u16,
    pub cookie: u64,
    pub flags: FlowModFlags,
    pub instructions: Instructions,
    /// Seconds; 0 = none.
    pub idle_timeout: u16,
    /// Seconds; 0 = none.
    pub hard_timeout: u16,
    /// When the entry was added (replacing an entry restarts it; modify does not).
    pub created_ms: u64,
    /// Last time a packet matched (or a cache hit was credited).
    pub last_used_ms: Cell<u64>,
    pub packets: Cell<u64>,
    pub bytes: Cell<u64>,
    /// Unique over the pipeline's life: tells a stale [`EntryId`] from a reused slot.
    pub serial: u64,
}

impl FlowEntry {
    /// Whether this is a table-miss entry (priority 0, matches everything).
    pub fn is_table_miss(&self) -> bool {
        self.priority == 0 && self.match_.is_empty()
    }

    /// Adds to the counters (unless the entry asked not to count) and refreshes the idle timer.
    #[inline]
    pub fn credit(&self, packets: u64, bytes: u64, now_ms: u64) {
        if !self.flags.contains(FlowModFlags::NO_PKT_COUNTS) {
            self.packets.set(self.packets.get().wrapping_add(packets));
        }
        if !self.flags.contains(FlowModFlags::NO_BYT_COUNTS) {
            self.bytes.set(self.bytes.get().wrapping_add(bytes));
        }
        if now_ms > self.last_used_ms.get() {
            self.last_used_ms.set(now_ms);
        }
    }

    /// Why the entry has expired at `now_ms`, if it has (hard timeout first).
    pub fn expired(&self, now_ms: u64) -> Option<RemovedReason> {
        let hard = self.hard_timeout as u64 * 1000;
        let idle = self.idle_timeout as u64 * 1000;
        if hard != 0 && now_ms.saturating_sub(self.created_ms) >= hard {
            Some(RemovedReason::HardTimeout)
        } else if idle != 0 && now_ms.saturating_sub(self.last_used_ms.get()) >= idle {
            Some(RemovedReason::IdleTimeout)
        } else {
            None
        }
    }
}

/// `ofp_flow_removed_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RemovedReason {
    IdleTimeout = 0,
    HardTimeout = 1,
    Delete = 2,
    GroupDelete = 3,
}

/// A flow-removed event (`ofp_flow_removed`), produced for every removed entry; `notify` tells
/// whether the entry asked for it to reach the controller (`SEND_FLOW_REM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRemoved {
    pub table_id: u8,
    pub cookie: u64,
    pub priority: u16,
    pub reason: RemovedReason,
    pub duration_ms: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    pub notify: bool,
    /// The removed entry's [`FlowEntry::serial`] (unique over the pipeline's life; the
    /// multi-core datapath sums the per-core counters of the entry by it).
    pub serial: u64,
}

impl FlowRemoved {
    pub(crate) fn of(table_id: u8, e: &FlowEntry, reason: RemovedReason, now_ms: u64) -> Self {
        FlowRemoved {
            table_id,
            cookie: e.cookie,
            priority: e.priority,
            reason,
            duration_ms: now_ms.saturating_sub(e.created_ms),
            idle_timeout: e.idle_timeout,
            hard_timeout: e.hard_timeout,
            packet_count: e.packets.get(),
            byte_count: e.bytes.get(),
            match_: e.match_,
            notify: e.flags.contains(FlowModFlags::SEND_FLOW_REM),
            serial: e.serial,
        }
    }
}

/// A handle on one flow entry that stays safe after the entry is gone (it then resolves to
/// nothing instead of to whatever reused the slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub table_id: u8,
    pub rule: RuleId,
    pub serial: u64,
}

/// Table statistics (`ofp_table_stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

/// One flow table.
#[derive(Clone, Debug)]
pub struct FlowTable {
    pub id: u8,
    pub(crate) cls: Classifier<FlowEntry>,
    /// Most entries this table accepts (adds beyond it fail with `TABLE_FULL`).
    pub max_entries: usize,
    lookups: Cell<u64>,
    matched: Cell<u64>,
    generation: u64,
    /// Entries with an idle or hard timeout (expiry skips tables without any).
    timed: usize,
}

impl FlowTable {
    pub fn new(id: u8) -> Self {
        FlowTable {
            id,
            cls: Classifier::new(),
            max_entries: DEFAULT_MAX_ENTRIES,
            lookups: Cell::new(0),
            matched: Cell::new(0),
            generation: 0,
            timed: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.cls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }

    /// Changes on every modification of the table's entries.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The classifier (read-only), e.g. to count subtables.
    pub fn classifier(&self) -> &Classifier<FlowEntry> {
        &self.cls
    }

    /// The best entry for `key`, ORing consulted bits into `wc`. Counts lookups and matches
    /// when `count` is set.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowKey, count: bool) -> Option<RuleId> {
        let r = self.cls.lookup(key, wc);
        if count {
            self.lookups.set(self.lookups.get() + 1);
            if r.is_some() {
                self.matched.set(self.matched.get() + 1);
            }
        }
        r
    }

    /// Counts `lookups` lookups, `matched` of which found an entry, done elsewhere (a datapath
    /// cache serving packets whose translation looked this table up).
    pub(crate) fn count_lookups(&self, lookups: u64, matched: u64) {
        self.lookups.set(self.lookups.get().wrapping_add(lookups));
        self.matched.set(self.matched.get().wrapping_add(matched));
    }

    /// Entry by slot.
    pub fn entry(&self, rule: RuleId) -> Option<&FlowEntry> {
        self.cls.get(rule).map(|r| &r.data)
    }

    /// Every entry with its slot.
    pub fn entries(&self) -> impl Iterator<Item = (RuleId, &FlowEntry)> {
        self.cls.iter().map(|(id, r)| (id, &r.data))
    }

    /// The entry with exactly this match and priority.
    pub fn find_strict(&self, m: &Match, priority: u16) -> Option<RuleId> {
        self.cls.find_exact(&m.value, &m.mask, priority)
    }

    /// Handle on an entry.
    pub fn entry_id(&self, rule: RuleId) -> Option<EntryId> {
        self.entry(rule).map(|e| EntryId {
            table_id: self.id,
            rule,
            serial: e.serial,
        })
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            table_id: self.id,
            active_count: self.len() as u32,
            lookup_count: self.lookups.get(),
            matched_count: self.matched.get(),
        }
    }

    /// Number of entries with a timeout.
    pub fn timed_entries(&self) -> usize {
        self.timed
    }

    pub(crate) fn insert(&mut self, e: FlowEntry) -> RuleId {
        self.bump();
        if e.idle_timeout != 0 || e.hard_timeout != 0 {
            self.timed += 1;
        }
        let (v, m, p) = (e.match_.value, e.match_.mask, e.priority);
        self.cls.insert(v, m, p, e)
    }

    pub(crate) fn remove(&mut self, rule: RuleId) -> Option<FlowEntry> {
        let r = self.cls.remove(rule)?;
        self.bump();
        if r.data.idle_timeout != 0 || r.data.hard_timeout != 0 {
            self.timed = self.timed.saturating_sub(1);
        }
        Some(r.data)
    }

    pub(crate) fn entry_mut(&mut self, rule: RuleId) -> Option<&mut FlowEntry> {
        self.cls.get_mut(rule).map(|r| &mut r.data)
    }

    /// Sets the table's and its entries' counters to zero (a replica of the pipeline that is
    /// to count only its own core's packets). Changes no decision: the generation stays.
    pub(crate) fn zero_counters(&mut self) {
        self.lookups.set(0);
        self.matched.set(0);
        for (_, r) in self.cls.iter_mut() {
            r.data.packets.set(0);
            r.data.bytes.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;

    fn entry(m: Match, priority: u16) -> FlowEntry {
        FlowEntry {
            match_: m,
            priority,
            cookie: 0,
            flags: FlowModFlags::empty(),
            instructions: Instructions::drop(),
            idle_timeout: 0,
            hard_timeout: 0,
            created_ms: 0,
            last_used_ms: Cell::new(0),
            packets: Cell::new(0),
            bytes: Cell::new(0),
            serial: 1,
        }
    }

    #[test]
    fn lookup_counts_and_generation() {
        let mut t = FlowTable::new(3);
        let g0 = t.generation();
        let r = t.insert(entry(Match::new().with(Field::InPort, 1), 5));
        assert_ne!(t.generation(), g0);
        let mut k = FlowKey::ZERO;
        k.set(Field::InPort, 1);
        let mut wc = FlowKey::ZERO;
        assert_eq!(t.lookup(&k, &mut wc, true), Some(r));
        k.set(Field::InPort, 2);
        assert_eq!(t.lookup(&k, &mut wc, true), None);
        assert_eq!(t.lookup(&k, &mut wc, false), None);
        let s = t.stats();
        assert_eq!(
            (s.table_id, s.active_count, s.lookup_count, s.matched_count),
            (3, 1, 2, 1)
        );
        let id = t.entry_id(r).unwrap();
        assert_eq!(id.table_id, 3);
        assert_eq!(
            t.find_strict(&Match::new().with(Field::InPort, 1), 5),
            Some(r)
        );
        let g1 = t.generation();
        assert!(t.remove(r).is_some());
        assert_ne!(t.generation(), g1);
        assert!(t.remove(r).is_none());
    }

    #[test]
    fn timeouts_and_credit() {
        let mut e = entry(Match::ANY, 0);
        assert!(e.is_table_miss());
        e.idle_timeout = 10;
        e.hard_timeout = 30;
        e.created_ms = 1000;
        e.last_used_ms.set(1000);
        assert_eq!(e.expired(10_999), None);
        assert_eq!(e.expired(11_000), Some(RemovedReason::IdleTimeout));
        e.credit(2, 120, 9000);
        assert_eq!((e.packets.get(), e.bytes.get()), (2, 120));
        assert_eq!(e.expired(18_999), None);
        assert_eq!(e.expired(31_000), Some(RemovedReason::HardTimeout));
        e.flags = FlowModFlags::NO_PKT_COUNTS | FlowModFlags::NO_BYT_COUNTS;
        e.credit(1, 1, 0);
        assert_eq!((e.packets.get(), e.bytes.get()), (2, 120));
    }
}
