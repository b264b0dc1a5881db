//! Executing the pipeline on one packet ("translation" in Open vSwitch terms): table walk,
//! instructions, actions, groups, NORMAL, the action set.

use alloc::format;
use alloc::vec::Vec;
use core::mem;

use super::rewrite::{self, Ttl};
use super::{Env, OutputSink, PacketIn, PacketInReason, PipelineConfig, XlateEvent};
use crate::action::{Action, ActionSet};
use crate::flow::{Field, FlowKey, OFPVID_PRESENT};
use crate::flow_match::eth_type;
use crate::group::{GroupTable, GroupType, MAX_GROUP_CHAIN};
use crate::packet::Frame;
use crate::port::{
    OFPP_ALL, OFPP_ANY, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_NORMAL, OFPP_TABLE, PortNo,
    VlanOut,
};
use crate::table::{EntryId, FlowTable};
use crate::trace::Trace;

/// Deepest nesting of group buckets / packet-out resubmission a packet may go through.
const MAX_DEPTH: usize = MAX_GROUP_CHAIN + 4;
/// Bytes of headroom of scratch frames (room for pushed tags).
const SCRATCH_HEADROOM: usize = 64;
/// Most actions and group buckets one packet may execute: wide chains of all-groups could
/// otherwise multiply into millions of copies (Open vSwitch has similar translation limits).
pub const MAX_WORK: u32 = 65536;
/// How many matched entries an [`Outcome`] remembers.
pub const OUTCOME_ENTRIES: usize = 32;

/// What happened to one packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The entries the packet matched, in order (the first [`OUTCOME_ENTRIES`]); a cache
    /// credits its hits to these.
    pub entries: heapless::Vec<EntryId, OUTCOME_ENTRIES>,
    /// Frames handed to the sink's `output`.
    pub outputs: u32,
    /// Packet-ins handed to the sink.
    pub packet_ins: u32,
    /// The packet hit a table with no matching entry (and no table-miss entry).
    pub table_miss_drop: bool,
    /// That table (with `table_miss_drop`): with `entries`, the tables the packet was looked up
    /// in, so that a cache can credit table statistics too.
    pub missed_table: Option<u8>,
    /// A meter dropped the packet.
    pub metered: bool,
    /// The IP TTL ran out.
    pub ttl_expired: bool,
    /// The packet hit [`MAX_WORK`]; what remained was not executed.
    pub work_exceeded: bool,
}

/// A reusable frame buffer for copies (group buckets, NORMAL's VLAN edits).
#[derive(Clone, Debug, Default)]
pub(crate) struct ScratchFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ScratchFrame {
    fn load(&mut self, bytes: &[u8]) {
        let need = SCRATCH_HEADROOM + bytes.len();
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.start = SCRATCH_HEADROOM;
        self.end = need;
        self.buf[SCRATCH_HEADROOM..need].copy_from_slice(bytes);
    }
}

impl Frame for ScratchFrame {
    fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or(&mut [])
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.end = self.end.min(self.start + len);
    }
}

/// Buffers reused across packets so that the packet path does not allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    frames: Vec<ScratchFrame>,
    normal_out: Vec<(PortNo, VlanOut)>,
}

impl Scratch {
    fn take(&mut self, depth: usize) -> ScratchFrame {
        if self.frames.len() <= depth {
            self.frames.resize_with(depth + 1, ScratchFrame::default);
        }
        mem::take(&mut self.frames[depth])
    }

    fn put(&mut self, depth: usize, f: ScratchFrame) {
        if let Some(slot) = self.frames.get_mut(depth) {
            *slot = f;
        }
    }
}

/// One packet's trip.
pub(crate) struct Xlate<'b, 'a> {
    tables: &'b [FlowTable],
    groups: &'b GroupTable,
    cfg: &'b PipelineConfig,
    env: &'b mut Env<'a>,
    sink: &'b mut dyn OutputSink,
    wc: &'b mut FlowKey,
    scratch: &'b mut Scratch,
    /// Update counters (false for traces).
    count: bool,
    pub(crate) trace: Option<&'b mut Trace>,
    pub(crate) outcome: Outcome,
    pub(crate) packet_out: bool,
    in_port: PortNo,
    queue: Option<u32>,
    /// Actions and buckets executed so far (see [`MAX_WORK`]).
    work: u32,
    /// The entry being executed, for packet-ins.
    table_id: u8,
    cookie: u64,
    table_miss: bool,
}

impl<'b, 'a> Xlate<'b, 'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tables: &'b [FlowTable],
        groups: &'b GroupTable,
        cfg: &'b PipelineConfig,
        env: &'b mut Env<'a>,
        sink: &'b mut dyn OutputSink,
        wc: &'b mut FlowKey,
        scratch: &'b mut Scratch,
        key: &FlowKey,
        count: bool,
    ) -> Self {
        // Output to the input port is never allowed except through IN_PORT: every decision
        // depends on in_port.
        wc.set_exact(Field::InPort);
        Xlate {
            tables,
            groups,
            cfg,
            env,
            sink,
            wc,
            scratch,
            count,
            trace: None,
            outcome: Outcome::default(),
            packet_out: false,
            in_port: key.in_port(),
            queue: None,
            work: 0,
            table_id: 0,
            cookie: 0,
            table_miss: false,
        }
    }

    fn note(&mut self, depth: usize, f: impl FnOnce() -> alloc::string::String) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.line(depth, f());
        }
    }

    /// Walks the tables from `start`, then executes the action set.
    pub(crate) fn run_tables(
        &mut self,
        start: u8,
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        depth: usize,
    ) {
        let tables = self.tables;
        let mut set = ActionSet::new();
        let mut t = start as usize;
        let len = frame.data().len();
        while let Some(table) = tables.get(t) {
            let rule = table.lookup(key, self.wc, self.count);
            if let Some(tr) = self.trace.as_deref_mut() {
                tr.visit(t as u8, depth, rule.and_then(|r| table.entry(r)));
            }
            let Some(e) = rule.and_then(|r| table.entry(r)) else {
                self.outcome.table_miss_drop = true;
                self.outcome.missed_table = Some(t as u8);
                if self.cfg.table_miss_to_controller {
                    self.note(depth, || format!("table {t}: no match, to the controller"));
                    self.table_id = t as u8;
                    self.cookie = u64::MAX;
                    self.packet_in(PacketInReason::NoMatch, self.cfg.miss_send_len, key, frame);
                } else {
                    self.note(depth, || format!("table {t}: no match, drop"));
                }
                return;
            };
            if self.count {
                e.credit(1, len as u64, self.env.now_ms);
            }
            if let Some(id) = rule.and_then(|r| table.entry_id(r)) {
                let _ = self.outcome.entries.push(id);
            }
            self.table_id = t as u8;
            self.cookie = e.cookie;
            self.table_miss = e.is_table_miss();
            let ins = &e.instructions;
            if let Some(m) = ins.meter {
                self.sink.event(XlateEvent::Meter(m));
                let now = self.env.now_ms;
                let pass = match self.env.meters.as_deref_mut() {
                    Some(h) if self.count => h.meter(m, len, now),
                    _ => true,
                };
                let counted = self.count;
                self.note(depth, || match (counted, pass) {
                    (false, _) => format!("meter:{m} (not evaluated in a trace)"),
                    (true, true) => format!("meter:{m} -> pass"),
                    (true, false) => format!("meter:{m} -> drop"),
                });
                if !pass {
                    self.outcome.metered = true;
                    return;
                }
            }
            if !ins.apply.is_empty() && !self.apply_list(&ins.apply, key, frame, depth) {
                return;
            }
            if ins.clear {
                set.clear();
                self.note(depth, || "clear_actions".into());
            }
            if !ins.write.is_empty() {
                set.write(&ins.write);
                self.note(depth, || {
                    format!("write_actions -> action set now {:?}", set.to_vec())
                });
            }
            if let Some((v, m)) = ins.write_metadata {
                let md = key.get(Field::Metadata) as u64;
                key.set(Field::Metadata, ((md & !m) | (v & m)) as u128);
                self.note(depth, || format!("write_metadata:{v:#x}/{m:#x}"));
            }
            match ins.goto {
                Some(n) if n as usize > t => {
                    self.note(depth, || format!("goto_table:{n}"));
                    t = n as usize;
                }
                _ => break,
            }
        }
        if !set.is_empty() {
            self.note(depth, || "executing action set".into());
        }
        set.for_each(|a| self.apply(&a, key, frame, depth, true));
    }

    /// Executes an action list in order; false if the packet must go no further.
    pub(crate) fn apply_list(
        &mut self,
        actions: &[Action],
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        depth: usize,
    ) -> bool {
        for a in actions {
            if !self.apply(a, key, frame, depth, false) {
                return false;
            }
        }
        true
    }

    /// Executes one action. `last` is set for the action set's final group, which may then
    /// work on the packet itself instead of a copy.
    fn apply(
        &mut self,
        a: &Action,
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        depth: usize,
        last: bool,
    ) -> bool {
        if !self.charge() {
            return false;
        }
        self.note(depth, || format!("{a}"));
        match *a {
            Action::Output { port, max_len } => self.output(port, max_len, key, frame, depth),
            Action::Group(g) => self.group(g, key, frame, depth, last),
            Action::SetField { field, value } => {
                // Whether the packet has the header to rewrite depends on its structure: the
                // megaflow must pin that structure down.
                self.wc.set_exact(Field::EthType);
                match field {
                    Field::VlanVid | Field::VlanPcp => self.wc.set_exact(Field::VlanVid),
                    Field::EthDst | Field::EthSrc | Field::EthType | Field::TunnelId => {}
                    _ => self.wc.set_exact(Field::IpProto),
                }
                self.set_field(field, value, key, frame);
            }
            Action::PushVlan(tpid) => {
                self.wc.set_exact(Field::VlanVid);
                self.push_vlan(tpid, key, frame);
            }
            Action::PopVlan => {
                self.wc.set_exact(Field::VlanVid);
                self.pop_vlan(key, frame);
            }
            Action::SetQueue(q) => self.queue = Some(q),
            Action::DecNwTtl => {
                self.sink.event(XlateEvent::DecTtl);
                self.wc.set_exact(Field::EthType);
                if is_ip(key) && rewrite::dec_ttl(frame) == Ttl::Expired {
                    self.outcome.ttl_expired = true;
                    if self.cfg.invalid_ttl_to_controller {
                        self.packet_in(
                            PacketInReason::InvalidTtl,
                            self.cfg.miss_send_len,
                            key,
                            frame,
                        );
                    } else {
                        self.note(depth, || "TTL expired: drop".into());
                    }
                    return false;
                }
            }
            Action::SetNwTtl(t) => {
                self.sink.event(XlateEvent::SetTtl(t));
                self.wc.set_exact(Field::EthType);
                if is_ip(key) {
                    rewrite::set_ttl(frame, t);
                }
            }
        }
        true
    }

    // The rewrites that change the key. Each changes the key only if it changed the packet
    // (OpenFlow: a set-field on a packet without the header does nothing, to the bytes and to
    // what later tables see), and reports what it did, outcome included, to the sink: a
    // datapath that replays the translation must follow the key exactly as it went here.

    /// Set-field on the packet and, if the packet had the header, on the key.
    fn set_field(&mut self, field: Field, value: u128, key: &mut FlowKey, frame: &mut dyn Frame) {
        let applied = rewrite::set_field(frame, field, value);
        if applied {
            key.set(field, value);
        }
        self.sink.event(XlateEvent::SetField {
            field,
            value,
            applied,
        });
    }

    /// Push-VLAN on the packet and, if it was pushed, `OFPVID_PRESENT` in the key.
    fn push_vlan(&mut self, tpid: u16, key: &mut FlowKey, frame: &mut dyn Frame) {
        let applied = rewrite::push_vlan(frame, tpid);
        if applied {
            let vid = key.get(Field::VlanVid) as u16 | OFPVID_PRESENT;
            key.set(Field::VlanVid, vid as u128);
        }
        self.sink.event(XlateEvent::PushVlan { tpid, applied });
    }

    /// Pop-VLAN on the packet and, if it had a tag, on the key.
    fn pop_vlan(&mut self, key: &mut FlowKey, frame: &mut dyn Frame) {
        let applied = rewrite::pop_vlan(frame);
        if applied {
            // An inner tag, if any, is not in the key (it holds one tag): the packet counts as
            // untagged from here on.
            key.set(Field::VlanVid, 0);
            key.set(Field::VlanPcp, 0);
        }
        self.sink.event(XlateEvent::PopVlan { applied });
    }

    /// Counts one unit of work; false once the packet has used up [`MAX_WORK`].
    fn charge(&mut self) -> bool {
        if self.work >= MAX_WORK {
            if !self.outcome.work_exceeded {
                self.outcome.work_exceeded = true;
                self.note(0, || {
                    "too much work for one packet: the rest is dropped".into()
                });
            }
            return false;
        }
        self.work += 1;
        true
    }

    fn emit(&mut self, port: PortNo, frame: &dyn Frame) {
        self.outcome.outputs += 1;
        if let Some(t) = self.trace.as_deref_mut() {
            t.output(port, self.queue, frame.data().len());
        }
        self.sink.output(port, self.queue, frame.data());
    }

    fn packet_in(
        &mut self,
        reason: PacketInReason,
        max_len: u16,
        key: &FlowKey,
        frame: &dyn Frame,
    ) {
        self.outcome.packet_ins += 1;
        let pi = PacketIn {
            reason,
            table_id: self.table_id,
            cookie: self.cookie,
            max_len,
            key,
            frame: frame.data(),
        };
        if let Some(t) = self.trace.as_deref_mut() {
            t.packet_in(&pi);
        }
        self.sink.controller(&pi);
    }

    fn output(
        &mut self,
        port: PortNo,
        max_len: u16,
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        depth: usize,
    ) {
        let ports = self.env.ports;
        match port {
            OFPP_IN_PORT => {
                if ports.get(self.in_port).is_some_and(|p| p.can_forward()) {
                    self.emit(self.in_port, frame);
                }
            }
            OFPP_TABLE => {
                if self.packet_out && depth < MAX_DEPTH {
                    self.with_copy(key, frame, depth, |x, k, f| {
                        x.run_tables(0, k, f, depth + 1)
                    });
                }
            }
            OFPP_NORMAL => self.normal(key, frame, depth),
            OFPP_FLOOD | OFPP_ALL => {
                for p in ports.iter() {
                    let ok = if port == OFPP_FLOOD {
                        p.floods()
                    } else {
                        p.can_forward()
                    };
                    if ok && p.no() != self.in_port {
                        self.emit(p.no(), frame);
                    }
                }
            }
            OFPP_CONTROLLER => {
                let reason = if self.table_miss {
                    PacketInReason::NoMatch
                } else {
                    PacketInReason::Action
                };
                self.packet_in(reason, max_len, key, frame);
            }
            OFPP_ANY | 0 => {}
            p => {
                if p == self.in_port {
                    self.note(depth, || format!("output:{p} is the input port: skipped"));
                } else if ports.get(p).is_some_and(|pt| pt.can_forward()) {
                    self.emit(p, frame);
                } else {
                    self.note(depth, || {
                        format!("port {p} missing or cannot forward: skipped")
                    });
                }
            }
        }
    }

    /// Runs `f` on a copy of the packet (key and bytes), leaving the original as it was.
    fn with_copy(
        &mut self,
        key: &FlowKey,
        frame: &dyn Frame,
        depth: usize,
        f: impl FnOnce(&mut Self, &mut FlowKey, &mut dyn Frame),
    ) {
        let mut copy = self.scratch.take(depth);
        copy.load(frame.data());
        let mut k = *key;
        let queue = self.queue;
        self.sink.event(XlateEvent::CopyBegin);
        f(self, &mut k, &mut copy);
        self.sink.event(XlateEvent::CopyEnd);
        self.queue = queue;
        self.scratch.put(depth, copy);
    }

    fn group(
        &mut self,
        gid: u32,
        key: &mut FlowKey,
        frame: &mut dyn Frame,
        depth: usize,
        in_place: bool,
    ) {
        let groups = self.groups;
        let Some(g) = groups.get(gid) else {
            self.note(depth, || format!("group {gid} does not exist: drop"));
            return;
        };
        if depth >= MAX_DEPTH {
            return;
        }
        let len = frame.data().len();
        if self.count {
            g.count(len);
        }
        self.sink.event(XlateEvent::Group(gid));
        let run = |x: &mut Self, i: usize, last: bool, key: &mut FlowKey, frame: &mut dyn Frame| {
            if !x.charge() {
                return;
            }
            if x.count {
                g.count_bucket(i, len);
            }
            x.sink.event(XlateEvent::Bucket {
                group: gid,
                bucket: i as u32,
            });
            x.note(depth, || {
                format!("group {gid} ({}) bucket {i}", g.group_type.name())
            });
            let actions = &g.buckets[i].actions;
            if in_place && last {
                x.apply_list(actions, key, frame, depth + 1);
            } else {
                x.with_copy(key, frame, depth, |x, k, f| {
                    x.apply_list(actions, k, f, depth + 1);
                });
            }
        };
        if g.group_type == GroupType::All {
            let n = g.buckets.len();
            for i in 0..n {
                run(self, i, i + 1 == n, key, frame);
            }
        } else if let Some(i) = groups.select_bucket(g, key, self.wc, self.env.ports) {
            run(self, i, true, key, frame);
        } else {
            self.note(depth, || format!("group {gid}: no live bucket, drop"));
        }
    }

    fn normal(&mut self, key: &mut FlowKey, frame: &mut dyn Frame, depth: usize) {
        let ports = self.env.ports;
        let now = self.env.now_ms;
        self.sink.event(XlateEvent::Normal);
        let Some(ns) = self.env.normal.as_deref_mut() else {
            self.note(depth, || {
                "NORMAL: no learning switch on this bridge, drop".into()
            });
            return;
        };
        let mut out = mem::take(&mut self.scratch.normal_out);
        let outcome = ns.process(ports, key, now, self.wc, &mut out);
        self.note(depth, || format!("NORMAL: {outcome}"));
        let tag = key.vlan().filter(|v| *v != 0);
        for &(port, want) in &out {
            let change = match (tag, want) {
                (None, VlanOut::Untagged) => None,
                (Some(t), VlanOut::Tagged(v)) if t == v => None,
                _ => Some(want),
            };
            match change {
                None => self.emit(port, frame),
                Some(want) => self.with_copy(key, frame, depth, |x, k, f| {
                    if key.vlan().is_some() {
                        x.pop_vlan(k, f);
                    }
                    if let VlanOut::Tagged(v) = want {
                        x.push_vlan(eth_type::VLAN, k, f);
                        x.set_field(Field::VlanVid, (v | OFPVID_PRESENT) as u128, k, f);
                    }
                    x.emit(port, f);
                }),
            }
        }
        self.scratch.normal_out = out;
    }
}

fn is_ip(key: &FlowKey) -> bool {
    matches!(key.eth_type(), eth_type::IPV4 | eth_type::IPV6)
}
