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

use hashbrown::HashTable;

use super::actions::DpOp;
use super::emc::masked_hash;
use crate::flow::{Field, FlowKey, KEY_WORDS};
use crate::port::PortNo;
use crate::table::EntryId;

/// What a cache hit on a NORMAL megaflow must check and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NormalDep {
    /// The fields of the key NORMAL saw that learning reads: in_port, eth_src, eth_dst,
    /// vlan_vid (learn from them on hits).
    pub in_port: PortNo,
    pub vlan_vid: u16,
    pub eth_src: u64,
    pub eth_dst: u64,
    /// Whether the bridge had a learning switch when the megaflow was made.
    pub had_switch: bool,
    /// `(vlan, dst)` looked up by NORMAL, and what the MAC table answered; `None` when NORMAL
    /// did not look up (multicast destination or packet not admitted).
    pub lookup: Option<(u16, u64, Option<PortNo>)>,
    /// When the hits last learned, and the MAC-table generation right after: learning again in
    /// the same millisecond with nothing changed would only refresh `seen` to the same value.
    pub learned_ms: u64,
    pub learned_gen: u64,
    /// MAC-table generation at which `lookup` was last confirmed: while it holds and no entry
    /// can have aged, the answer holds too.
    pub checked_gen: u64,
}

impl NormalDep {
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

/// One megaflow. Fields a hit reads come first, together (`repr(C)` keeps the order).
#[derive(Clone, Debug)]
#[repr(C)]
pub(crate) struct Megaflow {
    /// Cache epoch at which it was made (stale when the pipeline or ports changed since).
    pub epoch: u64,
    pub serial: u32,
    pub live: bool,
    /// Every packet must be translated (packet-ins, meters).
    pub slow: bool,
    /// Number of TTL decrements (packets with a TTL not above it take the slow path).
    pub n_dec_ttl: u8,
    /// CLOCK reference bit.
    pub referenced: bool,
    /// Not yet credited to the OpenFlow entries (flushed at the end of each batch).
    pub pending_packets: u32,
    pub subtable: u32,
    pub pending_bytes: u64,
    pub used_ms: u64,
    /// The whole treatment is "send the packet out of this port" (`ops` not needed).
    pub single_output: Option<(PortNo, Option<u32>)>,
    /// The masked key.
    pub key: FlowKey,
    pub normal: heapless::Vec<NormalDep, MAX_NORMAL_STEPS>,
    pub entries: heapless::Vec<EntryId, INLINE_ENTRIES>,
    /// The table the translation found no entry in, if any (credited a lookup on hits).
    pub missed_table: Option<u8>,
    pub hash: u64,
    pub in_port: PortNo,
    pub ops: Box<[DpOp]>,
    pub entries_more: Box<[EntryId]>,
    pub packets: u64,
    pub bytes: u64,
    pub created_ms: u64,
}

impl Megaflow {
    /// Every OpenFlow entry to credit.
    pub fn all_entries(&self) -> impl Iterator<Item = &EntryId> {
        self.entries.iter().chain(self.entries_more.iter())
    }
}

/// One mask's hash table.
#[derive(Clone, Debug)]
pub(crate) struct Subtable {
    pub mask: FlowKey,
    /// Non-zero words of the mask: `(index, mask word)`.
    pub words: heapless::Vec<(u8, u64), KEY_WORDS>,
    pub table: HashTable<u32>,
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
        Subtable {
            mask,
            words,
            table: HashTable::new(),
            hits: 0,
            live: true,
        }
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
                });
                self.ports.len() - 1
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
    #[inline]
    pub fn lookup(&mut self, port: usize, key: &FlowKey) -> Option<Found> {
        let seed = self.limits.seed;
        let pc = &mut self.ports[port];
        pc.lookups += 1;
        let mut searched = 0;
        let mut found = None;
        for &id in &pc.order {
            let st = &mut self.subtables[id as usize];
            searched += 1;
            let h = masked_hash(key, &st.words, seed);
            let flows = &self.flows;
            if let Some(&slot) = st
                .table
                .find(h, |&s| st_matches(&st.words, key, &flows[s as usize].key))
            {
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
        let (masked, hash) = {
            let st = &self.subtables[st_id as usize];
            (key.masked(&st.mask), masked_hash(key, &st.words, seed))
        };
        let split = all_entries.len().min(INLINE_ENTRIES);
        let entries = heapless::Vec::from_slice(&all_entries[..split]).unwrap_or_default();
        let entries_more: Box<[EntryId]> = Box::from(&all_entries[split..]);
        let single_output = match *ops {
            [DpOp::OutputMove { port, queue }] => Some((port, queue)),
            _ => None,
        };
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        // Replace in place.
        let existing = {
            let st = &self.subtables[st_id as usize];
            let flows = &self.flows;
            st.table
                .find(hash, |&s| flows[s as usize].key == masked)
                .copied()
        };
        if let Some(slot) = existing {
            let m = &mut self.flows[slot as usize];
            m.ops = ops;
            m.entries = entries;
            m.entries_more = entries_more;
            m.missed_table = missed_table;
            m.single_output = single_output;
            m.normal = normal;
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
        let mf = Megaflow {
            key: masked,
            hash,
            subtable: st_id,
            in_port,
            ops,
            entries,
            entries_more,
            missed_table,
            single_output,
            normal,
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
        let flows = &self.flows;
        self.subtables[st_id as usize]
            .table
            .insert_unique(hash, slot, |&s| flows[s as usize].hash);
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
        m.ops = Box::new([]);
        m.entries.clear();
        m.entries_more = Box::new([]);
        m.normal.clear();
        let (hash, st_id, in_port) = (m.hash, m.subtable, m.in_port);
        self.len -= 1;
        self.free.push(slot);
        let st = &mut self.subtables[st_id as usize];
        if let Ok(e) = st.table.find_entry(hash, |&s| s == slot) {
            e.remove();
        }
        if st.table.is_empty() {
            st.live = false;
            st.table = HashTable::new();
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
        self.len = 0;
        self.hand = 0;
    }

    /// Number of subtables (masks) over all ports.
    pub fn n_masks(&self) -> usize {
        self.ports.iter().map(|p| p.order.len()).sum()
    }
}

#[inline]
fn st_matches(words: &[(u8, u64)], key: &FlowKey, mf: &FlowKey) -> bool {
    let mut diff = 0;
    for &(i, m) in words {
        let i = i as usize & 15;
        diff |= (key.w[i] & m) ^ mf.w[i];
    }
    diff == 0
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
