//! The megaflow cache: megaflows (a masked key, the compiled actions, the OpenFlow entries to
//! credit, counters) in a slab, found by tuple space search.
//!
//! There is one classifier per input port (as in Open vSwitch's userspace datapath: every
//! megaflow matches `in_port` exactly), each a list of subtables, one per distinct mask, each a
//! hash table of masked keys. A lookup probes the port's subtables in rank order (most hits
//! first, re-sorted periodically) and stops at the first hit: megaflows that are current never
//! overlap with different actions, so the first hit is the answer.
//!
//! Bounds: the number of megaflows is capped (the least recently used one is evicted, CLOCK
//! approximation: a hit sets a bit, the eviction hand clears bits until it finds a clear one),
//! and so is the number of subtables (masks) per port. A translation whose mask would create one
//! more subtable than the cap is installed under a *wider* mask instead (one that matches more
//! bits, which is always correct): the most general existing mask that covers it, else the union
//! of all the port's masks and its own widened to whole fields (which then covers every
//! overflow that follows unless it touches a field no mask touched before). So a packet searches
//! at most `max_masks_per_port` subtables plus one per distinct set of fields the tables
//! consult (a handful), whatever traffic an attacker sends (the tuple-space-explosion defence).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::actions::DpOp;
use super::emc::{masked_hash, words_hash};
use crate::flow::{Field, FlowKey, KEY_WORDS};
use crate::port::PortNo;
use crate::prefetch::prefetch;
use crate::table::EntryId;

/// What a cache hit on a NORMAL megaflow must check and do (one cache line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NormalDep {
    /// The fields of the key NORMAL saw that learning reads: in_port, eth_src, eth_dst,
    /// vlan_vid (learn from them on hits).
    pub eth_src: u64,
    pub eth_dst: u64,
    /// When the hits last learned, and the MAC table's removal generation right after: until
    /// the refresh interval passed or an entry went or moved, learning again would only move
    /// `seen` a little.
    pub learned_ms: u64,
    pub learned_gen: u64,
    /// The generation at which `lookup` was last confirmed (the removal generation for a known
    /// destination, the full one for an unknown): while it holds and no entry can have aged,
    /// the answer holds too.
    pub checked_gen: u64,
    pub in_port: PortNo,
    /// `(vlan, eth_dst)` looked up by NORMAL: the VLAN, and what the MAC table answered;
    /// `None` when NORMAL did not look up (multicast destination or packet not admitted).
    pub lookup: Option<(u16, Option<PortNo>)>,
    pub vlan_vid: u16,
    /// Whether the bridge had a learning switch when the megaflow was made.
    pub had_switch: bool,
}

const _: () = assert!(core::mem::size_of::<NormalDep>() <= 64);

impl NormalDep {
    const NONE: NormalDep = NormalDep {
        eth_src: 0,
        eth_dst: 0,
        learned_ms: 0,
        learned_gen: 0,
        checked_gen: 0,
        in_port: 0,
        lookup: None,
        vlan_vid: 0,
        had_switch: false,
    };

    /// A key with the fields learning reads.
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set(Field::InPort, self.in_port as u128);
        k.set(Field::VlanVid, self.vlan_vid as u128);
        k.set(Field::EthSrc, self.eth_src as u128);
        k.set(Field::EthDst, self.eth_dst as u128);
        k
    }
}

/// Most NORMAL steps a replayable megaflow has (more: slow path).
pub(crate) const MAX_NORMAL_STEPS: usize = 2;
/// OpenFlow entries kept inline in a megaflow (more go to a boxed tail).
pub(crate) const INLINE_ENTRIES: usize = 4;

const NO_ENTRY: EntryId = EntryId {
    table_id: 0,
    rule: 0,
    serial: 0,
};

/// One megaflow, laid out by cache line (`repr(C)`, aligned): line 0 is what every hit reads
/// and writes, line 1 the OpenFlow entries a hit credits, lines 2-3 the NORMAL steps (a
/// NORMAL hit reads the first); the rest is only for installs, removals and dumps. A hit on a
/// megaflow with one NORMAL step touches three lines, one without NORMAL two (the batch stage
/// prefetches them, [`MegaflowTable::prefetch`]).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(crate) struct Megaflow {
    // Line 0.
    /// Cache epoch at which it was made (stale when the pipeline or ports changed since).
    pub epoch: u64,
    pub used_ms: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Not yet credited to the OpenFlow entries (flushed at the end of each batch).
    pub pending_bytes: u32,
    pub pending_packets: u32,
    pub serial: u32,
    /// The whole treatment is "send the packet out of this port" (`ops` not needed).
    pub single_output: Option<(PortNo, Option<u32>)>,
    pub live: bool,
    /// Every packet must be translated (packet-ins, meters).
    pub slow: bool,
    /// Number of TTL decrements (packets with a TTL not above it take the slow path).
    pub n_dec_ttl: u8,
    /// CLOCK reference bit.
    pub referenced: bool,
    /// The table the translation found no entry in, if any (credited a lookup on hits).
    pub missed_table: Option<u8>,
    n_entries: u8,
    n_normal: u8,
    // Line 1.
    entries: [EntryId; INLINE_ENTRIES],
    // Lines 2-3.
    normal: [NormalDep; MAX_NORMAL_STEPS],
    // Cold.
    pub entries_more: Box<[EntryId]>,
    pub ops: Box<[DpOp]>,
    pub hash: u64,
    pub created_ms: u64,
    pub subtable: u32,
    /// Its row in the subtable (which holds the masked key).
    pub row: u32,
    pub in_port: PortNo,
}

const _: () = assert!(core::mem::offset_of!(Megaflow, entries) == 64);
const _: () = assert!(core::mem::offset_of!(Megaflow, normal) == 128);

impl Megaflow {
    /// Every OpenFlow entry to credit.
    pub fn all_entries(&self) -> impl Iterator<Item = &EntryId> {
        self.entries[..self.n_entries as usize]
            .iter()
            .chain(self.entries_more.iter())
    }

    /// The NORMAL steps.
    #[inline]
    pub fn normal_mut(&mut self) -> &mut [NormalDep] {
        &mut self.normal[..self.n_normal as usize]
    }

    fn set_entries(&mut self, all: &[EntryId]) {
        let split = all.len().min(INLINE_ENTRIES);
        self.entries = [NO_ENTRY; INLINE_ENTRIES];
        self.entries[..split].copy_from_slice(&all[..split]);
        self.n_entries = split as u8;
        self.entries_more = Box::from(&all[split..]);
    }

    fn set_normal(&mut self, normal: &[NormalDep]) {
        let n = normal.len().min(MAX_NORMAL_STEPS);
        self.normal = [NormalDep::NONE; MAX_NORMAL_STEPS];
        self.normal[..n].copy_from_slice(&normal[..n]);
        self.n_normal = n as u8;
    }
}

/// Ways per hash bucket: a bucket is one cache line of 8 signatures and 8 row numbers.
const WAYS: usize = 8;
/// A way that never held an entry: a probe that meets one stops.
const EMPTY: u32 = u32::MAX;
/// A way whose entry was removed from a bucket that had no empty way (probes go on past it).
const TOMB: u32 = u32::MAX - 1;
/// The first word of a free row.
const FREE_ROW: u64 = u64::MAX;

/// One cache line of a subtable's hash index: `sig[j]` is the low 32 bits of the hash of the
/// entry in row `row[j]`. The high bits choose the bucket (linear probing over buckets).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Bucket {
    sig: [u32; WAYS],
    row: [u32; WAYS],
}

impl Bucket {
    /// Bit `j` set where way `j`'s signature is `sig` (branch-free: the compiler vectorizes it).
    #[inline]
    fn sig_matches(&self, sig: u32) -> u32 {
        let mut m = 0;
        for j in 0..WAYS {
            m |= ((self.sig[j] == sig) as u32) << j;
        }
        m
    }

    /// Whether some way never held an entry (a probe stops here).
    #[inline]
    fn has_empty(&self) -> bool {
        let mut e = false;
        for j in 0..WAYS {
            e |= self.row[j] == EMPTY;
        }
        e
    }
}

const VACANT_BUCKET: Bucket = Bucket {
    sig: [0; WAYS],
    row: [EMPTY; WAYS],
};

/// What a subtable's home bucket says about a key ([`Subtable::candidate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// Only this row can hold it: it is there iff the row's words match.
    Row(u32),
    /// Not in the subtable.
    Absent,
    /// Several candidates or an overflowing bucket: ask [`Subtable::find`].
    Unsure,
}

/// One cache line of packed rows.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Line(pub [u64; 8]);

/// One mask's hash table: a bucket index (`hash → row`) over a dense array of rows, each row
/// the megaflow's slot followed by only the key words the mask has (`key & mask`, word by
/// word), packed per subtable. A hit reads one bucket line and one row line (rows of up to 7
/// mask words never straddle a line: the row stride is a power of two), both addressable from
/// the hash alone, so a batch can issue them a stage ahead ([`Subtable::bucket_of`],
/// [`Subtable::row_line`]).
#[derive(Clone, Debug)]
pub(crate) struct Subtable {
    pub mask: FlowKey,
    /// Non-zero words of the mask: `(index, mask word)`.
    pub words: heapless::Vec<(u8, u64), KEY_WORDS>,
    /// Words per row: 1 (slot) + `words.len()`, rounded up to a power of two (then to lines).
    stride: usize,
    buckets: Vec<Bucket>,
    rows: Vec<Line>,
    free_rows: Vec<u32>,
    /// Rows ever allocated (live or free).
    n_rows: usize,
    /// Live entries.
    len: usize,
    /// Ways in use: live entries plus tombstones.
    used: usize,
    /// Hits since the last re-sort (decayed then).
    pub hits: u64,
    pub live: bool,
}

impl Subtable {
    fn new(mask: FlowKey) -> Subtable {
        let mut words = heapless::Vec::new();
        for (i, &m) in mask.w.iter().enumerate() {
            if m != 0 {
                let _ = words.push((i as u8, m));
            }
        }
        let stride = (1 + words.len()).next_power_of_two();
        let stride = if stride > 8 {
            stride.div_ceil(8) * 8
        } else {
            stride
        };
        Subtable {
            mask,
            words,
            stride,
            buckets: Vec::new(),
            rows: Vec::new(),
            free_rows: Vec::new(),
            n_rows: 0,
            len: 0,
            used: 0,
            hits: 0,
            live: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn word(&self, i: usize) -> u64 {
        self.rows[i >> 3].0[i & 7]
    }

    #[inline]
    fn set_word(&mut self, i: usize, v: u64) {
        self.rows[i >> 3].0[i & 7] = v;
    }

    /// The bucket a probe for `hash` starts at (for a prefetch), if the table has any.
    #[inline]
    pub fn bucket_of(&self, hash: u64) -> Option<&Bucket> {
        if self.buckets.is_empty() {
            return None;
        }
        let b = (hash >> 32) as usize & (self.buckets.len() - 1);
        Some(&self.buckets[b])
    }

    /// The line holding the start of `row` (for a prefetch).
    #[inline]
    pub fn row_line(&self, row: u32) -> &Line {
        &self.rows[(row as usize * self.stride) >> 3]
    }

    /// What `hash`'s home bucket says (a batch stage prefetches the candidate's row).
    #[inline]
    pub fn candidate(&self, hash: u64) -> Candidate {
        let Some(b) = self.bucket_of(hash) else {
            return Candidate::Absent;
        };
        let hits = b.sig_matches(hash as u32);
        let empty = b.has_empty();
        if hits == 0 && empty {
            return Candidate::Absent;
        }
        let r = b.row[hits.trailing_zeros() as usize & (WAYS - 1)];
        if hits.is_power_of_two() && empty && r < TOMB {
            // The only way that can hold the key (a probe stops at this bucket).
            Candidate::Row(r)
        } else {
            Candidate::Unsure
        }
    }

    /// The slot of `row` if its key words equal `key & mask`.
    #[inline]
    pub fn row_matches(&self, row: u32, key: &FlowKey) -> Option<u32> {
        let base = row as usize * self.stride;
        let mut diff = 0;
        let first = if self.stride <= 8 {
            // The whole row is in one line.
            let line = &self.rows[base >> 3].0;
            let off = base & 7;
            for (k, &(i, m)) in self.words.iter().enumerate() {
                diff |= (key.w[i as usize & 15] & m) ^ line[(off + 1 + k) & 7];
            }
            line[off]
        } else {
            for (k, &(i, m)) in self.words.iter().enumerate() {
                diff |= (key.w[i as usize & 15] & m) ^ self.word(base + 1 + k);
            }
            self.word(base)
        };
        (diff == 0 && first != FREE_ROW).then_some(first as u32)
    }

    /// The slot of the megaflow whose masked key equals `key & mask` (`hash`: its
    /// [`masked_hash`]).
    #[inline]
    pub fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let nb = self.buckets.len();
        if nb == 0 {
            return None;
        }
        let sig = hash as u32;
        let mut b = (hash >> 32) as usize & (nb - 1);
        for _ in 0..nb {
            let bucket = &self.buckets[b];
            let mut hits = bucket.sig_matches(sig);
            while hits != 0 {
                let j = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                let r = bucket.row[j];
                if r < TOMB
                    && let Some(slot) = self.row_matches(r, key)
                {
                    return Some(slot);
                }
            }
            if bucket.has_empty() {
                return None;
            }
            b = (b + 1) & (nb - 1);
        }
        None
    }

    /// Adds the entry `key & mask` → `slot` (not present yet). Returns its row.
    fn insert(&mut self, hash: u64, key: &FlowKey, slot: u32, seed: u64) -> u32 {
        let ways = self.buckets.len() * WAYS;
        if (self.used + 1) * 4 > ways * 3 {
            // Over 3/4 full (tombstones count): double, or only clean up if tombstones are
            // most of it.
            let n = if (self.len + 1) * 8 > ways * 3 {
                (self.buckets.len() * 2).max(1)
            } else {
                self.buckets.len()
            };
            self.rehash(n, seed);
        }
        let row = match self.free_rows.pop() {
            Some(r) => r,
            None => {
                let r = self.n_rows;
                self.n_rows += 1;
                while self.rows.len() * 8 < self.n_rows * self.stride {
                    self.rows.push(Line([FREE_ROW; 8]));
                }
                r as u32
            }
        };
        let base = row as usize * self.stride;
        self.set_word(base, slot as u64);
        for k in 0..self.words.len() {
            let (i, m) = self.words[k];
            self.set_word(base + 1 + k, key.w[i as usize & 15] & m);
        }
        self.place(hash, row);
        self.len += 1;
        row
    }

    /// Puts `row` into the first free or dead way of `hash`'s probe sequence.
    fn place(&mut self, hash: u64, row: u32) {
        let nb = self.buckets.len();
        let sig = hash as u32;
        let mut b = (hash >> 32) as usize & (nb - 1);
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(j) = (0..WAYS).find(|&j| bucket.row[j] >= TOMB) {
                if bucket.row[j] == EMPTY {
                    self.used += 1;
                }
                bucket.row[j] = row;
                bucket.sig[j] = sig;
                return;
            }
            b = (b + 1) & (nb - 1);
        }
    }

    /// Removes the entry in `row` (`hash`: its hash).
    fn remove(&mut self, hash: u64, row: u32) {
        let nb = self.buckets.len();
        if nb == 0 {
            return;
        }
        let mut b = (hash >> 32) as usize & (nb - 1);
        for _ in 0..nb {
            let bucket = &mut self.buckets[b];
            if let Some(j) = (0..WAYS).find(|&j| bucket.row[j] == row) {
                // A bucket with an empty way never sent a probe on: its ways can be emptied.
                if bucket.row.contains(&EMPTY) {
                    bucket.row[j] = EMPTY;
                    self.used -= 1;
                } else {
                    bucket.row[j] = TOMB;
                }
                let base = row as usize * self.stride;
                self.set_word(base, FREE_ROW);
                self.free_rows.push(row);
                self.len -= 1;
                return;
            }
            if bucket.row.contains(&EMPTY) {
                return;
            }
            b = (b + 1) & (nb - 1);
        }
    }

    /// Rebuilds the bucket index with `n` buckets (a power of two), dropping tombstones.
    fn rehash(&mut self, n: usize, seed: u64) {
        self.buckets = alloc::vec![VACANT_BUCKET; n];
        self.used = 0;
        for row in 0..self.n_rows {
            let base = row * self.stride;
            if self.word(base) == FREE_ROW {
                continue;
            }
            let h = words_hash((0..self.words.len()).map(|k| self.word(base + 1 + k)), seed);
            self.place(h, row as u32);
        }
    }

    /// The masked key of `row`.
    pub fn key_of(&self, row: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        let base = row as usize * self.stride;
        for (n, &(i, _)) in self.words.iter().enumerate() {
            k.w[i as usize & 15] = self.word(base + 1 + n);
        }
        k
    }
}

/// The classifier of one input port: subtable ids in rank order.
#[derive(Clone, Debug)]
pub(crate) struct PortClassifier {
    pub port: PortNo,
    pub order: Vec<u32>,
    pub lookups: u64,
    /// Lookups left until the next re-ranking.
    pub until_resort: u64,
    /// Moving average of the subtables a lookup searches, times 16.
    pub avg_searched_x16: u32,
    /// Whether the next batch from this port is processed in stages (set after each batch).
    pub staged: bool,
}

/// Settings of the megaflow table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_megaflows: usize,
    pub max_masks_per_port: usize,
    pub resort_every: u64,
    pub seed: u64,
}

/// The result of a lookup.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub slot: u32,
    pub searched: u32,
}

/// All megaflows.
#[derive(Clone, Debug)]
pub(crate) struct MegaflowTable {
    pub flows: Vec<Megaflow>,
    free: Vec<u32>,
    pub subtables: Vec<Subtable>,
    free_subtables: Vec<u32>,
    pub ports: Vec<PortClassifier>,
    pub len: usize,
    hand: usize,
    next_serial: u32,
    pub limits: Limits,
    /// Megaflows installed under a wider mask because of the mask cap.
    pub widened: u64,
    pub evicted: u64,
    /// Advances whenever a lookup could give another answer than before (a megaflow added or
    /// removed, subtables re-ranked): answers looked up ahead are valid while it is unchanged.
    pub version: u64,
}

impl MegaflowTable {
    pub fn new(limits: Limits) -> MegaflowTable {
        MegaflowTable {
            flows: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            free_subtables: Vec::new(),
            ports: Vec::new(),
            len: 0,
            hand: 0,
            next_serial: 1,
            limits,
            widened: 0,
            evicted: 0,
            version: 0,
        }
    }

    /// Index of the classifier of `port`, if it has one.
    #[inline]
    pub fn port_index(&self, port: PortNo) -> Option<usize> {
        self.ports.iter().position(|p| p.port == port)
    }

    fn port_index_or_add(&mut self, port: PortNo) -> usize {
        match self.port_index(port) {
            Some(i) => i,
            None => {
                self.ports.push(PortClassifier {
                    port,
                    order: Vec::new(),
                    lookups: 0,
                    until_resort: self.limits.resort_every,
                    avg_searched_x16: 16,
                    staged: false,
                });
                self.ports.len() - 1
            }
        }
    }

    /// Prefetches the parts of megaflow `slot` that a hit reads (batch stage).
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        if let Some(m) = self.flows.get(slot as usize) {
            prefetch(&m.epoch);
            prefetch(&m.entries);
            if m.n_normal > 0 {
                prefetch(&m.normal);
            }
        }
    }

    /// Whether slot `slot` holds the megaflow with `serial`.
    #[inline]
    pub fn alive(&self, slot: u32, serial: u32) -> bool {
        self.flows
            .get(slot as usize)
            .is_some_and(|m| m.live && m.serial == serial)
    }

    /// Tuple space search in the classifier `port` (an index from [`port_index`]).
    /// `first`: the answer of the port's first-ranked subtable if already known (a batch's
    /// prefetching stage looked it up while [`version`](Self::version) was what it is now).
    #[inline(always)]
    pub fn lookup(
        &mut self,
        port: usize,
        key: &FlowKey,
        first: Option<Option<u32>>,
    ) -> Option<Found> {
        let seed = self.limits.seed;
        let pc = &mut self.ports[port];
        pc.lookups += 1;
        let mut searched = 0;
        let mut found = None;
        for (n, &id) in pc.order.iter().enumerate() {
            let st = &mut self.subtables[id as usize];
            searched += 1;
            let r = match first {
                Some(r) if n == 0 => r,
                _ => st.find(masked_hash(key, &st.words, seed), key),
            };
            if let Some(slot) = r {
                st.hits += 1;
                found = Some(slot);
                break;
            }
        }
        let n = if found.is_some() {
            searched
        } else {
            pc.order.len() as u32
        };
        pc.avg_searched_x16 = pc.avg_searched_x16 - pc.avg_searched_x16 / 16 + n;
        pc.until_resort -= 1;
        if pc.until_resort == 0 {
            pc.until_resort = self.limits.resort_every;
            self.resort(port);
        }
        found.map(|slot| Found { slot, searched })
    }

    /// Ranks the subtables of a port by hits since the last sort, and halves the counts.
    fn resort(&mut self, port: usize) {
        self.version += 1;
        let subtables = &mut self.subtables;
        let order = &mut self.ports[port].order;
        order.sort_by(|a, b| {
            subtables[*b as usize]
                .hits
                .cmp(&subtables[*a as usize].hits)
        });
        for &id in order.iter() {
            subtables[id as usize].hits /= 2;
        }
    }

    /// The subtable a megaflow with consulted bits `wc` goes to on `port`: the one with
    /// exactly that mask, a new one, or (at the cap) a wider one.
    fn subtable_for(&mut self, port: usize, wc: &FlowKey) -> u32 {
        let order = &self.ports[port].order;
        if let Some(&id) = order
            .iter()
            .find(|&&id| self.subtables[id as usize].mask == *wc)
        {
            return id;
        }
        let mask = if order.len() < self.limits.max_masks_per_port {
            *wc
        } else {
            self.widened += 1;
            // The most general existing mask that covers `wc`, else the exact mask.
            let covering = order
                .iter()
                .copied()
                .filter(|&id| covers(&self.subtables[id as usize].mask, wc))
                .min_by_key(|&id| {
                    let m = &self.subtables[id as usize].mask;
                    m.w.iter().map(|w| w.count_ones()).sum::<u32>()
                });
            if let Some(id) = covering {
                return id;
            }
            // None: every field that the port's masks or `wc` touch, whole. It covers (and so
            // takes) every later overflow that touches no other field.
            let union = order
                .iter()
                .fold(*wc, |u, &id| u.or(&self.subtables[id as usize].mask));
            whole_fields(&union)
        };
        let st = Subtable::new(mask);
        let id = match self.free_subtables.pop() {
            Some(id) => {
                self.subtables[id as usize] = st;
                id
            }
            None => {
                self.subtables.push(st);
                (self.subtables.len() - 1) as u32
            }
        };
        // New subtables start at the end: they have no hits yet.
        self.ports[port].order.push(id);
        id
    }

    /// Installs a megaflow for a packet with `key` (its in_port's classifier) whose translation
    /// consulted `wc`. If a megaflow with the same masked key exists it is replaced, keeping its
    /// counters. Returns the slot and serial.
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &mut self,
        key: &FlowKey,
        wc: &FlowKey,
        ops: Box<[DpOp]>,
        all_entries: &[EntryId],
        missed_table: Option<u8>,
        normal: heapless::Vec<NormalDep, MAX_NORMAL_STEPS>,
        slow: bool,
        n_dec_ttl: u8,
        epoch: u64,
        now_ms: u64,
    ) -> (u32, u32) {
        let in_port = key.in_port();
        let port = self.port_index_or_add(in_port);
        let st_id = self.subtable_for(port, wc);
        let seed = self.limits.seed;
        let hash = masked_hash(key, &self.subtables[st_id as usize].words, seed);
        let single_output = match *ops {
            [DpOp::OutputMove { port, queue }] => Some((port, queue)),
            _ => None,
        };
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        // Replace in place.
        let existing = self.subtables[st_id as usize].find(hash, key);
        if let Some(slot) = existing {
            let m = &mut self.flows[slot as usize];
            m.ops = ops;
            m.set_entries(all_entries);
            m.missed_table = missed_table;
            m.single_output = single_output;
            m.set_normal(&normal);
            m.epoch = epoch;
            m.slow = slow;
            m.n_dec_ttl = n_dec_ttl;
            m.used_ms = now_ms;
            m.serial = serial;
            m.referenced = true;
            return (slot, serial);
        }
        if self.len >= self.limits.max_megaflows.max(1) {
            self.evict_one();
        }
        let mut mf = Megaflow {
            hash,
            row: 0,
            subtable: st_id,
            in_port,
            ops,
            entries: [NO_ENTRY; INLINE_ENTRIES],
            n_entries: 0,
            entries_more: Box::new([]),
            missed_table,
            single_output,
            normal: [NormalDep::NONE; MAX_NORMAL_STEPS],
            n_normal: 0,
            epoch,
            slow,
            n_dec_ttl,
            packets: 0,
            bytes: 0,
            created_ms: now_ms,
            used_ms: now_ms,
            pending_packets: 0,
            pending_bytes: 0,
            serial,
            live: true,
            referenced: true,
        };
        mf.set_entries(all_entries);
        mf.set_normal(&normal);
        let slot = match self.free.pop() {
            Some(s) => {
                self.flows[s as usize] = mf;
                s
            }
            None => {
                self.flows.push(mf);
                (self.flows.len() - 1) as u32
            }
        };
        self.len += 1;
        self.version += 1;
        let row = self.subtables[st_id as usize].insert(hash, key, slot, seed);
        self.flows[slot as usize].row = row;
        (slot, serial)
    }

    /// Removes the megaflow in `slot` (and its subtable if it was the last one there).
    pub fn remove(&mut self, slot: u32) {
        let Some(m) = self.flows.get_mut(slot as usize) else {
            return;
        };
        if !m.live {
            return;
        }
        m.live = false;
        self.version += 1;
        m.ops = Box::new([]);
        m.n_entries = 0;
        m.entries_more = Box::new([]);
        m.n_normal = 0;
        let (hash, st_id, in_port, row) = (m.hash, m.subtable, m.in_port, m.row);
        self.len -= 1;
        self.free.push(slot);
        let st = &mut self.subtables[st_id as usize];
        st.remove(hash, row);
        if st.is_empty() {
            st.live = false;
            *st = Subtable::new(FlowKey::ZERO);
            st.live = false;
            self.free_subtables.push(st_id);
            if let Some(p) = self.port_index(in_port) {
                self.ports[p].order.retain(|&id| id != st_id);
            }
        }
    }

    /// Evicts the least recently used megaflow (CLOCK).
    fn evict_one(&mut self) {
        let n = self.flows.len();
        if n == 0 {
            return;
        }
        for _ in 0..2 * n + 1 {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let m = &mut self.flows[i];
            if !m.live || m.pending_packets > 0 {
                continue;
            }
            if m.referenced {
                m.referenced = false;
                continue;
            }
            self.remove(i as u32);
            self.evicted += 1;
            return;
        }
    }

    /// Removes every megaflow.
    pub fn clear(&mut self) {
        self.flows.clear();
        self.free.clear();
        self.subtables.clear();
        self.free_subtables.clear();
        self.ports.clear();
        self.version += 1;
        self.len = 0;
        self.hand = 0;
    }

    /// Number of subtables (masks) over all ports.
    pub fn n_masks(&self) -> usize {
        self.ports.iter().map(|p| p.order.len()).sum()
    }
}

/// `mask` widened to whole fields: every field with a bit in `mask` gets all its bits.
fn whole_fields(mask: &FlowKey) -> FlowKey {
    let mut out = FlowKey::ZERO;
    let mut fields = FlowKey::ZERO;
    for f in Field::ALL {
        fields.set_exact(f);
        if mask.get(f) != 0 {
            out.set_exact(f);
        }
    }
    // Bits that belong to no OXM field (the fragment flags) stay as they are.
    for i in 0..KEY_WORDS {
        out.w[i] |= mask.w[i] & !fields.w[i];
    }
    out
}

/// Whether `wide` has every bit of `narrow`.
fn covers(wide: &FlowKey, narrow: &FlowKey) -> bool {
    wide.w.iter().zip(narrow.w.iter()).all(|(w, n)| n & !w == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The bucket index against a map, through growth, removals (tombstones in full buckets,
    /// emptied ways elsewhere) and row reuse; at 3/4 load some buckets overflow into the next.
    #[test]
    fn subtable_index_matches_a_map() {
        let mut mask = FlowKey::ZERO;
        mask.w[1] = u64::MAX;
        mask.w[5] = 0xffff;
        let mut st = Subtable::new(mask);
        let seed = 7;
        let mut model: HashMap<(u64, u64), u32> = HashMap::new();
        let mut rows: HashMap<u32, (u64, u32)> = HashMap::new();
        let mut x = 0x1234_5678u64;
        let mut key = FlowKey::ZERO;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key.w[1] = x % 3000;
            key.w[5] = 0x1_0000 | ((x >> 40) % 3); // high bits masked off
            let k = (key.w[1], key.w[5] & 0xffff);
            let hash = if step % 2 == 0 {
                masked_hash(&key, &st.words, seed)
            } else {
                words_hash([k.0, k.1].into_iter(), seed)
            };
            assert_eq!(hash, masked_hash(&key, &st.words, seed));
            let found = st.find(hash, &key);
            assert_eq!(found, model.get(&k).copied(), "step {step}");
            match found {
                Some(slot) if x.is_multiple_of(3) => {
                    let (h, row) = rows.remove(&slot).unwrap();
                    st.remove(h, row);
                    model.remove(&k);
                }
                None => {
                    let row = st.insert(hash, &key, step, seed);
                    assert_eq!(st.key_of(row), key.masked(&mask));
                    model.insert(k, step);
                    rows.insert(step, (hash, row));
                }
                _ => {}
            }
            assert_eq!(st.len, model.len());
        }
        for (&slot, &(h, row)) in &rows {
            let k = st.key_of(row);
            assert_eq!(st.find(h, &k), Some(slot));
            match st.candidate(h) {
                Candidate::Row(r) => assert_eq!(r, row),
                Candidate::Absent => panic!("present but absent"),
                Candidate::Unsure => {}
            }
        }
    }
}
