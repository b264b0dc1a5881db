//! The OpenFlow 1.3 pipeline of one bridge: up to 254 flow tables and a group table, flow-mod
//! and group-mod with OpenFlow semantics, timeouts, and the packet path (instructions, the
//! action set, outputs through an [`OutputSink`]).
//!
//! ## Packet path and the megaflow cache
//!
//! [`Pipeline::process`] walks the tables for one packet whose [`FlowKey`] the caller has
//! extracted. Every packet field a decision looked at is ORed into the caller's `wc` ("consulted
//! mask", OVS's `flow_wildcards`): classifier lookups (the masks of all subtables searched),
//! `in_port` (always: output to the input port is special), `eth_type` when TTL actions check
//! for IP, `vlan_vid` for push-VLAN and NORMAL's tag edits, NORMAL's own fields, the select-group
//! hash fields. So `(key & wc, wc, actions)` is a correct megaflow as long as nothing outside
//! the key changes: the pipeline's [`generation`](Pipeline::generation), the port table's and
//! NORMAL's generations (port liveness drives fast-failover, FLOOD and output), and two things a
//! key cannot hold: the IP TTL (`dec_ttl` must be executed per packet, reaching 0 is a
//! per-packet decision) and meters (a per-packet decision by the hook).
//!
//! No allocation happens per packet once scratch buffers have grown to the largest frame and
//! the deepest group chain (copies for group buckets and NORMAL's VLAN edits reuse them).
//!
//! ## Counting
//!
//! The pipeline counts per-table lookups/matches, per-entry and per-group/bucket packets and
//! bytes. Port tx counters are the caller's: the sink sees every output and can count it
//! (`PortCounters::record_tx`) when the frame is actually queued.

//! ## Not (yet) supported
//!
//! - Actions outside [`Action`]: copy-TTL in/out, MPLS and PBB push/pop, set-MPLS-TTL,
//!   experimenter actions. A decoder answers those with `OfpError::BAD_ACTION_BAD_TYPE`.
//! - The key holds one VLAN tag: after pop-VLAN of a double-tagged frame the key says
//!   "untagged" although the bytes still carry the inner tag.
//! - Meters are a hook ([`MeterHook`]); meter-mod and bands come later.
//! - Table-mod / table-features: every table has the OF1.3 default miss behaviour (drop).

mod exec;
mod rewrite;

use alloc::vec::Vec;

use crate::action::{ActionContext, Instructions, OFPG_ANY, validate_actions};
use crate::error::OfpError;
use crate::flow::FlowKey;
use crate::flow_match::Match;
use crate::group::{GroupMod, GroupModCommand, GroupStats, GroupTable};
use crate::mcore::Op;
use crate::normal::NormalSwitch;
use crate::packet::Frame;
use crate::port::{OFPP_ANY, PortNo, PortTable};
use crate::table::{
    EntryId, FlowEntry, FlowModFlags, FlowRemoved, FlowTable, MAX_TABLES, OFPTT_ALL, RemovedReason,
    TableStats,
};

pub use crate::action::Action;
pub use exec::{MAX_WORK, OUTCOME_ENTRIES, Outcome};
pub(crate) use exec::{Scratch, Xlate};
pub use rewrite::Ttl;

/// `ofp_packet_in_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketInReason {
    NoMatch = 0,
    Action = 1,
    InvalidTtl = 2,
}

/// A packet for the controller.
#[derive(Clone, Copy, Debug)]
pub struct PacketIn<'a> {
    pub reason: PacketInReason,
    pub table_id: u8,
    pub cookie: u64,
    /// Bytes of the frame the controller asked for (`OFPCML_NO_BUFFER`: all).
    pub max_len: u16,
    /// The packet's key as the pipeline sees it at this point (in_port, metadata, tunnel id
    /// for the packet-in's match; rewritten fields included).
    pub key: &'a FlowKey,
    /// The whole frame; the sink truncates to `max_len` if it buffers.
    pub frame: &'a [u8],
}

/// Where the pipeline's outputs go. The caller decides about copies and queues; port tx
/// counting is the caller's too.
pub trait OutputSink {
    /// Send `frame` out of `port` (a port number or `OFPP_LOCAL`), on `queue` if set.
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: &[u8]);
    /// Send a packet-in to the controller.
    fn controller(&mut self, packet_in: &PacketIn<'_>);
    /// What the translation did besides outputs and packet-ins, in execution order, so that a
    /// datapath cache can record and replay it (`crate::datapath`). A rewrite is reported once
    /// it was attempted, with its outcome: whether it changed the packet and the key. Ignored by
    /// default.
    #[inline]
    fn event(&mut self, _event: XlateEvent) {}
}

/// One step of a packet's translation, reported to [`OutputSink::event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlateEvent {
    /// Set-field on the packet. `applied`: the packet had the header, and the key took the value
    /// too; else neither the bytes nor the key changed (OpenFlow: a set-field on a packet without
    /// the header does nothing).
    SetField {
        field: crate::flow::Field,
        value: u128,
        applied: bool,
    },
    /// Push-VLAN with this TPID. `applied`: the tag was pushed and the key got
    /// `OFPVID_PRESENT`; else nothing changed.
    PushVlan {
        tpid: u16,
        applied: bool,
    },
    /// Pop-VLAN. `applied`: the packet had a tag, and the key says untagged now; else nothing
    /// changed.
    PopVlan {
        applied: bool,
    },
    /// Decrement the IP TTL (only if the key is IP at this point).
    DecTtl,
    /// Set the IP TTL (only if the key is IP at this point).
    SetTtl(u8),
    /// The following events, up to the matching `CopyEnd`, act on a copy of the packet.
    CopyBegin,
    CopyEnd,
    /// Group `0` counted the packet.
    Group(u32),
    /// Bucket `bucket` of group `group` counted the packet.
    Bucket {
        group: u32,
        bucket: u32,
    },
    /// The NORMAL action ran on the key as it is at this point.
    Normal,
    /// A meter was consulted (a per-packet decision).
    Meter(u32),
}

/// The meter instruction's hook: real meters come later. Returns whether the packet passes.
pub trait MeterHook {
    fn meter(&mut self, meter_id: u32, packet_len: usize, now_ms: u64) -> bool;
}

/// What a packet's trip through the pipeline needs from the rest of the bridge.
pub struct Env<'a> {
    pub ports: &'a PortTable,
    /// The NORMAL learning switch; without one, output to NORMAL drops.
    pub normal: Option<&'a mut NormalSwitch>,
    /// The meter hook; without one, meters pass everything.
    pub meters: Option<&'a mut dyn MeterHook>,
    pub now_ms: u64,
}

impl<'a> Env<'a> {
    /// An environment with ports only.
    pub fn new(ports: &'a PortTable, now_ms: u64) -> Self {
        Env {
            ports,
            normal: None,
            meters: None,
            now_ms,
        }
    }
}

/// Switch-wide pipeline settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Number of flow tables (1..=254).
    pub n_tables: u8,
    /// `max_len` of packet-ins the pipeline sends on its own (invalid TTL).
    pub miss_send_len: u16,
    /// `OFPC_INVALID_TTL_TO_CONTROLLER`: a TTL reaching 0 sends a packet-in instead of dropping.
    pub invalid_ttl_to_controller: bool,
    /// OpenFlow 1.0's table miss: a packet no entry matches goes to the controller (reason
    /// NO_MATCH, `miss_send_len` bytes) instead of being dropped. Open vSwitch does this while an
    /// OpenFlow 1.0 controller listens; 1.3 controllers install a table-miss entry instead.
    pub table_miss_to_controller: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            n_tables: MAX_TABLES as u8,
            miss_send_len: 128,
            invalid_ttl_to_controller: false,
            table_miss_to_controller: false,
        }
    }
}

/// `ofp_flow_mod_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

impl FlowModCommand {
    /// Decodes the wire value (`BAD_COMMAND` for others).
    pub fn from_u8(v: u8) -> Result<Self, OfpError> {
        match v {
            0 => Ok(FlowModCommand::Add),
            1 => Ok(FlowModCommand::Modify),
            2 => Ok(FlowModCommand::ModifyStrict),
            3 => Ok(FlowModCommand::Delete),
            4 => Ok(FlowModCommand::DeleteStrict),
            _ => Err(OfpError::FLOW_MOD_FAILED_BAD_COMMAND),
        }
    }
}

/// Decodes `ofp_flow_mod.flags` (`BAD_FLAGS` for undefined bits).
pub fn flow_mod_flags(bits: u16) -> Result<FlowModFlags, OfpError> {
    FlowModFlags::from_bits(bits).ok_or(OfpError::FLOW_MOD_FAILED_BAD_FLAGS)
}

/// A flow-mod (`ofp_flow_mod` without buffer id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub command: FlowModCommand,
    pub table_id: u8,
    pub cookie: u64,
    /// For modify/delete: only entries whose cookie agrees on these bits.
    pub cookie_mask: u64,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: FlowModFlags,
    /// For delete: only entries that output to this port (`OFPP_ANY`: no filter).
    pub out_port: PortNo,
    /// For delete: only entries that use this group (`OFPG_ANY`: no filter).
    pub out_group: u32,
    pub match_: Match,
    pub instructions: Instructions,
}

impl FlowMod {
    /// An add with no cookie, flags or timeouts.
    pub fn add(table_id: u8, priority: u16, match_: Match, instructions: Instructions) -> Self {
        FlowMod {
            command: FlowModCommand::Add,
            table_id,
            cookie: 0,
            cookie_mask: 0,
            priority,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: FlowModFlags::empty(),
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            match_,
            instructions,
        }
    }

    /// A non-strict delete of everything `match_` covers in `table_id` (`OFPTT_ALL`: all).
    pub fn delete(table_id: u8, match_: Match) -> Self {
        FlowMod {
            command: FlowModCommand::Delete,
            ..FlowMod::add(table_id, 0, match_, Instructions::drop())
        }
    }

    /// Builder: command.
    pub fn with_command(mut self, command: FlowModCommand) -> Self {
        self.command = command;
        self
    }

    /// Builder: cookie.
    pub fn with_cookie(mut self, cookie: u64) -> Self {
        self.cookie = cookie;
        self
    }

    /// Builder: flags.
    pub fn with_flags(mut self, flags: FlowModFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Builder: idle and hard timeouts in seconds.
    pub fn with_timeouts(mut self, idle: u16, hard: u16) -> Self {
        self.idle_timeout = idle;
        self.hard_timeout = hard;
        self
    }
}

/// The OpenFlow pipeline of one bridge.
#[derive(Clone, Debug)]
pub struct Pipeline {
    tables: Vec<FlowTable>,
    groups: GroupTable,
    config: PipelineConfig,
    generation: u64,
    next_serial: u64,
    scratch: Scratch,
    /// What changed, for the multi-core publisher (`crate::mcore`), while recording is on.
    recorder: Option<Recorded>,
}

/// The changes a recording pipeline made since the last [`Pipeline::take_recorded`]: each
/// successful mutation as the [`Op`] that replays it on a replica, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub ops: Vec<Op>,
    /// `(new serial, old serial)` of entries an add replaced keeping the counters: a replica
    /// carries its own counts over the same way, so whoever sums the cores' counts into this
    /// pipeline treats the new entry's core counts as continuing the old one's.
    pub carried: Vec<(u64, u64)>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new(PipelineConfig::default())
    }
}

impl Pipeline {
    /// An empty pipeline (every table empty: every packet is dropped).
    pub fn new(config: PipelineConfig) -> Self {
        let n = (config.n_tables as usize).clamp(1, MAX_TABLES);
        Pipeline {
            tables: (0..n).map(|i| FlowTable::new(i as u8)).collect(),
            groups: GroupTable::new(),
            config: PipelineConfig {
                n_tables: n as u8,
                ..config
            },
            generation: 0,
            next_serial: 1,
            scratch: Scratch::default(),
            recorder: None,
        }
    }

    /// Starts (or stops) recording every successful change as an [`Op`] (see [`Recorded`]).
    /// Stopping drops what was recorded and not taken.
    pub fn set_recording(&mut self, on: bool) {
        match (on, self.recorder.is_some()) {
            (true, false) => self.recorder = Some(Recorded::default()),
            (false, true) => self.recorder = None,
            _ => {}
        }
    }

    /// Whether changes are recorded.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// The changes recorded since the last call (empty when not recording).
    pub fn take_recorded(&mut self) -> Recorded {
        match self.recorder.as_mut() {
            Some(r) => core::mem::take(r),
            None => Recorded::default(),
        }
    }

    /// Whether changes wait in the recorder.
    pub fn has_recorded(&self) -> bool {
        self.recorder.as_ref().is_some_and(|r| !r.ops.is_empty())
    }

    #[inline]
    fn record(&mut self, op: impl FnOnce() -> Op) {
        if let Some(r) = self.recorder.as_mut() {
            r.ops.push(op());
        }
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Changes the settings that do not change the table count.
    pub fn set_invalid_ttl_to_controller(&mut self, on: bool, miss_send_len: u16) {
        self.config.invalid_ttl_to_controller = on;
        self.config.miss_send_len = miss_send_len;
        self.bump();
        self.record(|| Op::InvalidTtlToController(on, miss_send_len));
    }

    /// Sets [`PipelineConfig::table_miss_to_controller`] (a change invalidates cached decisions).
    pub fn set_table_miss_to_controller(&mut self, on: bool) {
        if self.config.table_miss_to_controller != on {
            self.config.table_miss_to_controller = on;
            self.bump();
            self.record(|| Op::TableMissToController(on));
        }
    }

    /// Changes on every change of flows, groups or settings (for cache invalidation).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    pub fn n_tables(&self) -> u8 {
        self.config.n_tables
    }

    pub fn table(&self, id: u8) -> Option<&FlowTable> {
        self.tables.get(id as usize)
    }

    pub fn tables(&self) -> &[FlowTable] {
        &self.tables
    }

    pub fn groups(&self) -> &GroupTable {
        &self.groups
    }

    /// Sets how many entries table `id` accepts (`BAD_TABLE_ID` if there is no such table).
    pub fn set_max_entries(&mut self, id: u8, max: usize) -> Result<(), OfpError> {
        let t = self
            .tables
            .get_mut(id as usize)
            .ok_or(OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID)?;
        t.max_entries = max;
        self.record(|| Op::MaxEntries(id, max));
        Ok(())
    }

    /// Sets how many groups and buckets per group the group table accepts.
    pub fn set_group_limits(&mut self, max_groups: usize, max_buckets: usize) {
        self.groups.max_groups = max_groups;
        self.groups.max_buckets = max_buckets;
        self.record(|| Op::GroupLimits(max_groups, max_buckets));
    }

    /// An entry by handle (`None` once it is gone).
    pub fn entry(&self, id: EntryId) -> Option<&FlowEntry> {
        self.tables
            .get(id.table_id as usize)?
            .entry(id.rule)
            .filter(|e| e.serial == id.serial)
    }

    /// Adds to an entry's counters from outside (the datapath cache attributing its hits) and
    /// refreshes its idle timer; its table counts `packets` lookups that matched, as
    /// [`process`](Self::process) counts a packet that matches the entry. Returns false if the
    /// entry is gone.
    pub fn credit(&self, id: EntryId, packets: u64, bytes: u64, now_ms: u64) -> bool {
        match self.entry(id) {
            Some(e) => {
                e.credit(packets, bytes, now_ms);
                if let Some(t) = self.tables.get(id.table_id as usize) {
                    t.count_lookups(packets, packets);
                }
                true
            }
            None => false,
        }
    }

    /// Counts `packets` lookups without a match in table `table_id`, from outside (the datapath
    /// cache attributing hits whose translation missed there: [`Outcome::missed_table`]).
    pub fn credit_table_miss(&self, table_id: u8, packets: u64) {
        if let Some(t) = self.tables.get(table_id as usize) {
            t.count_lookups(packets, 0);
        }
    }

    /// Every entry of table `table_id` (`OFPTT_ALL`: of all tables) with its handle.
    pub fn entries(&self, table_id: u8) -> impl Iterator<Item = (EntryId, &FlowEntry)> {
        self.tables
            .iter()
            .filter(move |t| table_id == OFPTT_ALL || t.id == table_id)
            .flat_map(|t| {
                t.entries().map(move |(rule, e)| {
                    (
                        EntryId {
                            table_id: t.id,
                            rule,
                            serial: e.serial,
                        },
                        e,
                    )
                })
            })
    }

    /// The entries a flow-stats (or aggregate-stats) request selects, using a [`FlowMod`] as
    /// the filter: `table_id` (`OFPTT_ALL`: all), `match_` (non-strict: entries at least as
    /// specific; strict when `command` is a `*Strict` one: same match and priority), cookie and
    /// mask, `out_port` and `out_group`.
    pub fn select_entries<'a>(
        &'a self,
        filter: &'a FlowMod,
    ) -> impl Iterator<Item = (EntryId, &'a FlowEntry)> + 'a {
        let strict = matches!(
            filter.command,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict
        );
        self.entries(filter.table_id)
            .filter(move |(_, e)| Self::selected(filter, e, strict, true))
    }

    /// Per-table statistics.
    pub fn table_stats(&self) -> Vec<TableStats> {
        self.tables.iter().map(|t| t.stats()).collect()
    }

    /// Statistics of group `id`; `ref_count` counts the flows and the buckets of other groups
    /// that forward to it.
    pub fn group_stats(&self, id: u32, now_ms: u64) -> Option<GroupStats> {
        let g = self.groups.get(id)?;
        // Flows and other groups' buckets that forward to it.
        let flows = self
            .entries(OFPTT_ALL)
            .filter(|(_, e)| e.instructions.uses_group(id))
            .count();
        let buckets = self
            .groups
            .iter()
            .flat_map(|o| o.buckets.iter())
            .filter(|b| b.actions.contains(&Action::Group(id)))
            .count();
        Some(self.groups.stats(g, (flows + buckets) as u32, now_ms))
    }

    fn validate_flow(&self, fm: &FlowMod) -> Result<(), OfpError> {
        fm.match_.validate()?;
        let groups = &self.groups;
        let ctx = ActionContext {
            group_exists: &|g| groups.contains(g),
            packet_out: false,
            check_prereqs: true,
        };
        fm.instructions
            .validate(fm.table_id, self.config.n_tables, &fm.match_, &ctx)
    }

    /// Applies a flow-mod. Returns the flow-removed events of deleted entries (every one; those
    /// with `notify` set asked for the controller to hear about it).
    pub fn flow_mod(&mut self, fm: &FlowMod, now_ms: u64) -> Result<Vec<FlowRemoved>, OfpError> {
        let r = self.flow_mod_inner(fm, now_ms);
        if r.is_ok() {
            self.record(|| Op::FlowMod(alloc::boxed::Box::new(fm.clone()), now_ms));
        }
        r
    }

    fn flow_mod_inner(&mut self, fm: &FlowMod, now_ms: u64) -> Result<Vec<FlowRemoved>, OfpError> {
        match fm.command {
            FlowModCommand::Add => self.add_flow(fm, now_ms).map(|_| Vec::new()),
            FlowModCommand::Modify => self.modify_flows(fm, false).map(|_| Vec::new()),
            FlowModCommand::ModifyStrict => self.modify_flows(fm, true).map(|_| Vec::new()),
            FlowModCommand::Delete => self.delete_flows(fm, false, now_ms),
            FlowModCommand::DeleteStrict => self.delete_flows(fm, true, now_ms),
        }
    }

    fn add_flow(&mut self, fm: &FlowMod, now_ms: u64) -> Result<EntryId, OfpError> {
        if fm.table_id >= self.config.n_tables {
            return Err(OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID);
        }
        self.validate_flow(fm)?;
        let serial = self.next_serial;
        let t = &mut self.tables[fm.table_id as usize];
        if fm.flags.contains(FlowModFlags::CHECK_OVERLAP) {
            let overlap = t
                .entries()
                .any(|(_, e)| e.priority == fm.priority && e.match_.overlaps(&fm.match_));
            if overlap {
                return Err(OfpError::FLOW_MOD_FAILED_OVERLAP);
            }
        }
        let old = t.find_strict(&fm.match_, fm.priority);
        if old.is_none() && t.len() >= t.max_entries {
            return Err(OfpError::FLOW_MOD_FAILED_TABLE_FULL);
        }
        let (packets, bytes, carried) = match old.and_then(|r| t.remove(r)) {
            Some(e) if !fm.flags.contains(FlowModFlags::RESET_COUNTS) => {
                (e.packets.get(), e.bytes.get(), Some(e.serial))
            }
            _ => (0, 0, None),
        };
        let entry = FlowEntry {
            match_: fm.match_.normalized(),
            priority: fm.priority,
            cookie: fm.cookie,
            flags: fm.flags,
            instructions: fm.instructions.clone(),
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            created_ms: now_ms,
            last_used_ms: now_ms.into(),
            packets: packets.into(),
            bytes: bytes.into(),
            serial,
        };
        let rule = t.insert(entry);
        self.next_serial += 1;
        self.bump();
        if let (Some(r), Some(old)) = (self.recorder.as_mut(), carried) {
            r.carried.push((serial, old));
        }
        Ok(EntryId {
            table_id: fm.table_id,
            rule,
            serial,
        })
    }

    /// Adds a flow and returns its handle (a convenience over [`Pipeline::flow_mod`]).
    pub fn add_flow_entry(&mut self, fm: &FlowMod, now_ms: u64) -> Result<EntryId, OfpError> {
        let id = self.add_flow(fm, now_ms)?;
        self.record(|| {
            let mut fm = fm.clone();
            fm.command = FlowModCommand::Add;
            Op::FlowMod(alloc::boxed::Box::new(fm), now_ms)
        });
        Ok(id)
    }

    fn selected(fm: &FlowMod, e: &FlowEntry, strict: bool, filter_outputs: bool) -> bool {
        let m = if strict {
            e.priority == fm.priority
                && e.match_.value == fm.match_.value
                && e.match_.mask == fm.match_.mask
        } else {
            e.match_.is_covered_by(&fm.match_)
        };
        m && (e.cookie & fm.cookie_mask) == (fm.cookie & fm.cookie_mask)
            && (!filter_outputs
                || fm.out_port == OFPP_ANY
                || e.instructions.outputs_to(fm.out_port))
            && (!filter_outputs
                || fm.out_group == OFPG_ANY
                || e.instructions.uses_group(fm.out_group))
    }

    fn modify_flows(&mut self, fm: &FlowMod, strict: bool) -> Result<(), OfpError> {
        if fm.table_id >= self.config.n_tables {
            return Err(OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID);
        }
        self.validate_flow(fm)?;
        let t = &mut self.tables[fm.table_id as usize];
        let rules: Vec<_> = if strict {
            t.find_strict(&fm.match_, fm.priority)
                .into_iter()
                .filter(|r| {
                    t.entry(*r)
                        .is_some_and(|e| Self::selected(fm, e, true, false))
                })
                .collect()
        } else {
            t.entries()
                .filter(|(_, e)| Self::selected(fm, e, false, false))
                .map(|(r, _)| r)
                .collect()
        };
        if rules.is_empty() {
            return Ok(());
        }
        for r in rules {
            if let Some(e) = t.entry_mut(r) {
                e.instructions = fm.instructions.clone();
                if fm.flags.contains(FlowModFlags::RESET_COUNTS) {
                    e.packets.set(0);
                    e.bytes.set(0);
                }
            }
        }
        t.bump();
        self.bump();
        Ok(())
    }

    fn delete_flows(
        &mut self,
        fm: &FlowMod,
        strict: bool,
        now_ms: u64,
    ) -> Result<Vec<FlowRemoved>, OfpError> {
        if fm.table_id != OFPTT_ALL && fm.table_id >= self.config.n_tables {
            return Err(OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID);
        }
        fm.match_.validate()?;
        let mut removed = Vec::new();
        for t in self.tables.iter_mut() {
            if fm.table_id != OFPTT_ALL && t.id != fm.table_id {
                continue;
            }
            let rules: Vec<_> = t
                .entries()
                .filter(|(_, e)| Self::selected(fm, e, strict, true))
                .map(|(r, _)| r)
                .collect();
            for r in rules {
                if let Some(e) = t.remove(r) {
                    removed.push(FlowRemoved::of(t.id, &e, RemovedReason::Delete, now_ms));
                }
            }
        }
        if !removed.is_empty() {
            self.bump();
        }
        Ok(removed)
    }

    /// Removes one entry by handle (`None` if it is gone), as an expiry or a delete would, and
    /// returns its flow-removed event. For a caller that decides expiry itself (the multi-core
    /// publisher, which knows every core's `last_used`).
    pub fn remove_entry(
        &mut self,
        id: EntryId,
        reason: RemovedReason,
        now_ms: u64,
    ) -> Option<FlowRemoved> {
        self.entry(id)?;
        let t = self.tables.get_mut(id.table_id as usize)?;
        let e = t.remove(id.rule)?;
        self.bump();
        self.record(|| Op::RemoveEntry(id, reason, now_ms));
        Some(FlowRemoved::of(id.table_id, &e, reason, now_ms))
    }

    /// Sets every counter (entries, tables, groups, buckets) to zero without changing any
    /// decision: a per-core replica of the pipeline starts so, and counts its core's packets
    /// only (`crate::mcore`).
    pub fn zero_counters(&mut self) {
        for t in self.tables.iter_mut() {
            t.zero_counters();
        }
        self.groups.zero_counters();
    }

    /// Applies a group-mod. Deleting a group also deletes the flows that use it (as Open
    /// vSwitch does); their flow-removed events are returned (reason `GroupDelete`).
    pub fn group_mod(&mut self, gm: &GroupMod, now_ms: u64) -> Result<Vec<FlowRemoved>, OfpError> {
        let removed = match gm.command {
            GroupModCommand::Add => {
                self.groups.add(gm, now_ms)?;
                Vec::new()
            }
            GroupModCommand::Modify => {
                self.groups.modify(gm, now_ms)?;
                Vec::new()
            }
            GroupModCommand::Delete => {
                let ids = self.groups.delete(gm.group_id)?;
                let mut removed = Vec::new();
                if !ids.is_empty() {
                    for t in self.tables.iter_mut() {
                        let rules: Vec<_> = t
                            .entries()
                            .filter(|(_, e)| ids.iter().any(|g| e.instructions.uses_group(*g)))
                            .map(|(r, _)| r)
                            .collect();
                        for r in rules {
                            if let Some(e) = t.remove(r) {
                                removed.push(FlowRemoved::of(
                                    t.id,
                                    &e,
                                    RemovedReason::GroupDelete,
                                    now_ms,
                                ));
                            }
                        }
                    }
                }
                removed
            }
        };
        self.bump();
        self.record(|| Op::GroupMod(gm.clone(), now_ms));
        Ok(removed)
    }

    /// Removes the entries whose idle or hard timeout has passed at `now_ms`, returning one
    /// flow-removed event per entry (with its final counters).
    pub fn expire(&mut self, now_ms: u64) -> Vec<FlowRemoved> {
        let mut removed = Vec::new();
        for t in self.tables.iter_mut().filter(|t| t.timed_entries() > 0) {
            let expired: Vec<_> = t
                .entries()
                .filter_map(|(r, e)| e.expired(now_ms).map(|why| (r, why)))
                .collect();
            for (r, why) in expired {
                if let Some(e) = t.remove(r) {
                    if let Some(rec) = self.recorder.as_mut() {
                        let id = EntryId {
                            table_id: t.id,
                            rule: r,
                            serial: e.serial,
                        };
                        rec.ops.push(Op::RemoveEntry(id, why, now_ms));
                    }
                    removed.push(FlowRemoved::of(t.id, &e, why, now_ms));
                }
            }
        }
        if !removed.is_empty() {
            self.bump();
        }
        removed
    }

    /// Runs one packet through the tables from table 0. `key` is the packet's extracted key
    /// (it is rewritten as set-field and write-metadata change the packet); `frame` its bytes
    /// (rewritten in place); `wc` accumulates the consulted bits (see the module docs).
    pub fn process<F: Frame>(
        &mut self,
        env: &mut Env<'_>,
        key: &mut FlowKey,
        frame: &mut F,
        wc: &mut FlowKey,
        sink: &mut dyn OutputSink,
    ) -> Outcome {
        let Pipeline {
            tables,
            groups,
            config,
            scratch,
            ..
        } = self;
        let mut x = Xlate::new(tables, groups, config, env, sink, wc, scratch, key, true);
        x.run_tables(0, key, frame, 0);
        x.outcome
    }

    /// Executes a packet-out: `actions` (validated first; output to `TABLE` runs the tables)
    /// on `frame` whose key is `key` (its `in_port` is the packet-out's in_port).
    pub fn packet_out<F: Frame>(
        &mut self,
        env: &mut Env<'_>,
        key: &mut FlowKey,
        frame: &mut F,
        actions: &[Action],
        sink: &mut dyn OutputSink,
    ) -> Result<Outcome, OfpError> {
        let groups = &self.groups;
        let ctx = ActionContext {
            group_exists: &|g| groups.contains(g),
            packet_out: true,
            check_prereqs: false,
        };
        validate_actions(actions, &Match::ANY, &ctx)?;
        let Pipeline {
            tables,
            groups,
            config,
            scratch,
            ..
        } = self;
        let mut wc = FlowKey::ZERO;
        let mut x = Xlate::new(
            tables, groups, config, env, sink, &mut wc, scratch, key, true,
        );
        x.packet_out = true;
        x.apply_list(actions, key, frame, 0);
        Ok(x.outcome)
    }

    /// Runs a packet without changing anything (counters, MAC tables), recording every step.
    pub(crate) fn run_traced(
        &self,
        env: &mut Env<'_>,
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        wc: &mut FlowKey,
        sink: &mut dyn OutputSink,
        trace: &mut crate::trace::Trace,
    ) -> Outcome {
        let mut scratch = Scratch::default();
        let mut x = Xlate::new(
            &self.tables,
            &self.groups,
            &self.config,
            env,
            sink,
            wc,
            &mut scratch,
            key,
            false,
        );
        x.trace = Some(trace);
        x.run_tables(0, key, frame, 0);
        x.outcome
    }
}

#[cfg(test)]
mod tests;
