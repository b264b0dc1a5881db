//! Compiled datapath actions: what a translation did to a packet, recorded through
//! [`OutputSink::event`](crate::pipeline::OutputSink::event) while the pipeline ran, turned into a
//! flat list of [`DpOp`]s that [`replay`] executes on later packets of the same megaflow.
//!
//! The list is the translation's own steps in order (rewrites, outputs, copies for group buckets
//! and NORMAL's VLAN edits, group and bucket counts), so a replay calls the same `packet` rewrite
//! functions in the same order as the pipeline did and produces the same bytes. The last use of
//! the packet itself is an [`DpOp::OutputMove`]: the frame is handed over, not copied.

use alloc::vec::Vec;
use core::fmt;

use super::{DatapathSink, Release};
use crate::action::write_port;
use crate::flow::{Field, FlowKey, OFPVID_PRESENT};
use crate::flow_match::{eth_type, field_name, write_value};
use crate::group::GroupTable;
use crate::packet::{self, Frame};
use crate::pipeline::{OutputSink, PacketIn, XlateEvent};
use crate::port::PortNo;

/// One compiled datapath action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpOp {
    SetField {
        field: Field,
        value: u128,
    },
    PushVlan(u16),
    PopVlan,
    /// Decrement the IP TTL if the packet is IP at this point.
    DecTtl,
    /// Set the IP TTL if the packet is IP at this point.
    SetTtl(u8),
    /// Send a copy of the current frame.
    Output {
        port: PortNo,
        queue: Option<u32>,
    },
    /// Send the packet itself (its last use).
    OutputMove {
        port: PortNo,
        queue: Option<u32>,
    },
    /// The ops up to the matching `CopyEnd` act on a copy.
    CopyBegin,
    CopyEnd,
    /// Count the packet in group `0`.
    Group(u32),
    /// Count the packet in a bucket of a group.
    Bucket {
        group: u32,
        bucket: u32,
    },
}

impl DpOp {
    /// Whether the op reads or changes the current frame (so the packet is still needed).
    fn uses_frame(&self) -> bool {
        !matches!(
            self,
            DpOp::Group(_) | DpOp::Bucket { .. } | DpOp::CopyEnd | DpOp::OutputMove { .. }
        )
    }
}

/// Writes ops the way `ovs-appctl dpctl/dump-flows` writes datapath actions.
pub(crate) struct OpsDisplay<'a>(pub &'a [DpOp]);

impl fmt::Display for OpsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("drop");
        }
        for (i, op) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match *op {
                DpOp::SetField { field, value } => {
                    write!(f, "set({}=", field_name(field))?;
                    write_value(f, field, value)?;
                    f.write_str(")")?;
                }
                DpOp::PushVlan(t) => write!(f, "push_vlan(tpid={t:#06x})")?,
                DpOp::PopVlan => f.write_str("pop_vlan")?,
                DpOp::DecTtl => f.write_str("dec_ttl")?,
                DpOp::SetTtl(t) => write!(f, "set(ttl={t})")?,
                DpOp::Output { port, queue } | DpOp::OutputMove { port, queue } => {
                    if let Some(q) = queue {
                        write!(f, "set(queue={q}),")?;
                    }
                    write_port(f, port)?;
                }
                DpOp::CopyBegin => f.write_str("clone(")?,
                DpOp::CopyEnd => f.write_str(")")?,
                DpOp::Group(g) => write!(f, "count(group={g})")?,
                DpOp::Bucket { group, bucket } => {
                    write!(f, "count(group={group},bucket={bucket})")?
                }
            }
        }
        Ok(())
    }
}

/// What the translation did, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Event(XlateEvent),
    Output { port: PortNo, queue: Option<u32> },
}

/// The [`OutputSink`] a translation runs with: records every step, and sends the outputs on
/// (as copies: the pipeline hands out bytes) to the datapath's sink.
pub(crate) struct Recorder<'a, F, S: DatapathSink<F>> {
    pub sink: &'a mut S,
    pub events: &'a mut Vec<Recorded>,
    /// Something happened that cannot be replayed (a packet-in).
    pub slow: bool,
    pub no_buffer: u64,
    pub _frame: core::marker::PhantomData<fn(F)>,
}

impl<F: Frame, S: DatapathSink<F>> OutputSink for Recorder<'_, F, S> {
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: &[u8]) {
        self.events.push(Recorded::Output { port, queue });
        match self.sink.alloc_copy(frame) {
            Some(f) => self.sink.output(port, queue, f),
            None => self.no_buffer += 1,
        }
    }

    fn controller(&mut self, packet_in: &PacketIn<'_>) {
        self.slow = true;
        self.sink.controller(packet_in);
    }

    fn event(&mut self, event: XlateEvent) {
        self.events.push(Recorded::Event(event));
    }
}

/// The key changes that the pipeline makes along with each rewrite (so that a replay sees the
/// key the pipeline saw: `dec_ttl` asks whether the packet is IP, NORMAL learns from it). Only
/// for a rewrite that changed the packet: as in the pipeline, one that did not (a set-field of a
/// header the packet lacks, pop-VLAN of an untagged packet) leaves the key alone.
#[inline]
pub(crate) fn update_key(key: &mut FlowKey, op: &DpOp) {
    match *op {
        DpOp::SetField { field, value } => key.set(field, value),
        DpOp::PushVlan(_) => {
            let vid = key.get(Field::VlanVid) as u16 | OFPVID_PRESENT;
            key.set(Field::VlanVid, vid as u128);
        }
        DpOp::PopVlan => {
            key.set(Field::VlanVid, 0);
            key.set(Field::VlanPcp, 0);
        }
        _ => {}
    }
}

/// A translation compiled for replay.
pub(crate) struct Compiled {
    pub ops: Vec<DpOp>,
    /// The key as it is at each NORMAL step (for learning on cache hits).
    pub normal_keys: Vec<FlowKey>,
    /// Something in it cannot be replayed: every packet must be translated.
    pub slow: bool,
    /// Number of `DecTtl` ops (a packet whose TTL is not above this takes the slow path).
    pub n_dec_ttl: u8,
}

/// Turns recorded events into ops. `key` is the packet's key before translation.
pub(crate) fn compile(events: &[Recorded], key: &FlowKey) -> Compiled {
    let mut ops = Vec::with_capacity(events.len());
    let mut normal_keys = Vec::new();
    let mut slow = false;
    let mut keys: heapless::Vec<FlowKey, 16> = heapless::Vec::new();
    let mut cur = *key;
    let mut n_dec: u32 = 0;
    let mut min_set_ttl = u8::MAX;
    for ev in events {
        // Whether the step changed the key in the translation (only rewrites do, if applied).
        let mut applied = false;
        let op = match *ev {
            Recorded::Output { port, queue } => DpOp::Output { port, queue },
            Recorded::Event(e) => match e {
                XlateEvent::SetField {
                    field,
                    value,
                    applied: a,
                } => {
                    applied = a;
                    DpOp::SetField { field, value }
                }
                XlateEvent::PushVlan { tpid, applied: a } => {
                    applied = a;
                    DpOp::PushVlan(tpid)
                }
                XlateEvent::PopVlan { applied: a } => {
                    applied = a;
                    DpOp::PopVlan
                }
                XlateEvent::DecTtl => {
                    n_dec += 1;
                    DpOp::DecTtl
                }
                XlateEvent::SetTtl(t) => {
                    min_set_ttl = min_set_ttl.min(t);
                    DpOp::SetTtl(t)
                }
                XlateEvent::CopyBegin => {
                    if keys.push(cur).is_err() {
                        slow = true;
                    }
                    DpOp::CopyBegin
                }
                XlateEvent::CopyEnd => {
                    cur = keys.pop().unwrap_or(cur);
                    DpOp::CopyEnd
                }
                XlateEvent::Group(g) => DpOp::Group(g),
                XlateEvent::Bucket { group, bucket } => DpOp::Bucket { group, bucket },
                XlateEvent::Normal => {
                    normal_keys.push(cur);
                    continue;
                }
                XlateEvent::Meter(_) => {
                    slow = true;
                    continue;
                }
            },
        };
        // The key as the translation had it (what NORMAL saw at each step).
        if applied {
            update_key(&mut cur, &op);
        }
        ops.push(op);
    }
    // The last op at depth 0 that needs the frame: if it is an output, it takes the frame.
    let mut depth = 0usize;
    let mut last = None;
    for (i, op) in ops.iter().enumerate() {
        match op {
            DpOp::CopyBegin => {
                if depth == 0 {
                    last = Some(i);
                }
                depth += 1;
            }
            DpOp::CopyEnd => depth = depth.saturating_sub(1),
            op if depth == 0 && op.uses_frame() => last = Some(i),
            _ => {}
        }
    }
    if let Some(i) = last
        && let DpOp::Output { port, queue } = ops[i]
    {
        ops[i] = DpOp::OutputMove { port, queue };
    }
    if n_dec > 0 && u32::from(min_set_ttl) <= n_dec + 1 {
        slow = true;
    }
    Compiled {
        ops,
        normal_keys,
        slow: slow || n_dec > 64,
        n_dec_ttl: n_dec.min(255) as u8,
    }
}

/// Whether a packet's TTL is high enough that `n_dec` decrements cannot expire it (else the
/// packet takes the slow path, where the pipeline decides what an expiry does).
pub(crate) fn ttl_safe(frame: &[u8], key: &FlowKey, l3: Option<u16>, n_dec: u8) -> bool {
    let Some(l3) = l3 else { return false };
    let at = match key.eth_type() {
        eth_type::IPV4 => l3 as usize + 8,
        eth_type::IPV6 => l3 as usize + 7,
        _ => return false,
    };
    frame.get(at).is_some_and(|&t| t > n_dec.saturating_add(1))
}

/// A reusable frame for copies made during a replay (group buckets, NORMAL's VLAN edits).
#[derive(Clone, Debug, Default)]
pub(crate) struct CopyFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const COPY_HEADROOM: usize = 64;

impl CopyFrame {
    fn load(&mut self, bytes: &[u8]) {
        let need = COPY_HEADROOM + bytes.len();
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        self.start = COPY_HEADROOM;
        self.end = need;
        self.buf[COPY_HEADROOM..need].copy_from_slice(bytes);
    }
}

impl Frame for CopyFrame {
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

/// Scratch state of replays, reused so that a replay never allocates once warm.
#[derive(Debug, Default)]
pub(crate) struct ReplayScratch {
    copies: Vec<CopyFrame>,
    keys: Vec<FlowKey>,
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Replayed {
    pub outputs: u32,
    pub no_buffer: u32,
}

/// Applies a rewrite op to `frame` and its `key`. Failures are not errors (OpenFlow: a rewrite
/// of a missing header does nothing), exactly as in the pipeline: the key changes only with
/// the packet.
#[inline]
fn apply_rewrite(frame: &mut dyn Frame, key: &mut FlowKey, op: &DpOp) {
    let is_ip = matches!(key.eth_type(), eth_type::IPV4 | eth_type::IPV6);
    let applied = match *op {
        DpOp::SetField { field, value } => packet::set_field(frame, field, value),
        DpOp::PushVlan(t) => packet::push_vlan(frame, t),
        DpOp::PopVlan => packet::pop_vlan(frame),
        DpOp::DecTtl if is_ip => packet::dec_ip_ttl(frame).map(|_| ()),
        DpOp::SetTtl(t) if is_ip => packet::set_ip_ttl(frame, t),
        _ => Ok(()),
    }
    .is_ok();
    if applied {
        update_key(key, op);
    }
}

#[inline]
fn count_group(groups: &GroupTable, op: &DpOp, len: usize) {
    match *op {
        DpOp::Group(g) => {
            if let Some(g) = groups.get(g) {
                g.count(len);
            }
        }
        DpOp::Bucket { group, bucket } => {
            if let Some(g) = groups.get(group) {
                g.count_bucket(bucket as usize, len);
            }
        }
        _ => {}
    }
}

/// Executes `ops` on `frame` (whose key is `key`), sending outputs to `sink`.
pub(crate) fn replay<F: Frame, S: DatapathSink<F>>(
    ops: &[DpOp],
    frame: F,
    key: &FlowKey,
    groups: &GroupTable,
    scratch: &mut ReplayScratch,
    sink: &mut S,
) -> Replayed {
    let mut r = Replayed::default();
    // The common case: forward unchanged out of one port.
    if let [DpOp::OutputMove { port, queue }] = ops {
        sink.output(*port, *queue, frame);
        r.outputs = 1;
        return r;
    }
    let mut main = Some(frame);
    let mut main_len = main.as_ref().map_or(0, |f| f.data().len());
    let mut main_key = *key;
    let mut depth = 0usize;
    for op in ops {
        match *op {
            DpOp::CopyBegin => {
                let (copies, keys) = (&mut scratch.copies, &mut scratch.keys);
                if copies.len() <= depth {
                    copies.resize_with(depth + 1, CopyFrame::default);
                    keys.resize(depth + 1, FlowKey::ZERO);
                }
                // Split borrows: the source is depth-1 (or the packet), the target `depth`.
                let (lo, hi) = copies.split_at_mut(depth);
                let src: &[u8] = if depth == 0 {
                    main.as_ref().map_or(&[], |f| f.data())
                } else {
                    lo[depth - 1].data()
                };
                hi[0].load(src);
                keys[depth] = if depth == 0 {
                    main_key
                } else {
                    keys[depth - 1]
                };
                depth += 1;
            }
            DpOp::CopyEnd => depth = depth.saturating_sub(1),
            DpOp::OutputMove { port, queue } if depth == 0 => {
                if let Some(f) = main.take() {
                    sink.output(port, queue, f);
                    r.outputs += 1;
                }
            }
            DpOp::Output { port, queue } | DpOp::OutputMove { port, queue } => {
                let bytes: &[u8] = if depth == 0 {
                    main.as_ref().map_or(&[], |f| f.data())
                } else {
                    scratch.copies[depth - 1].data()
                };
                r.outputs += 1;
                match sink.alloc_copy(bytes) {
                    Some(f) => sink.output(port, queue, f),
                    None => r.no_buffer += 1,
                }
            }
            DpOp::Group(_) | DpOp::Bucket { .. } => {
                let len = if depth == 0 {
                    main_len
                } else {
                    scratch.copies[depth - 1].data().len()
                };
                count_group(groups, op, len);
            }
            _ => {
                if depth == 0 {
                    if let Some(f) = main.as_mut() {
                        apply_rewrite(f, &mut main_key, op);
                        main_len = f.data().len();
                    }
                } else {
                    let k = &mut scratch.keys[depth - 1];
                    apply_rewrite(&mut scratch.copies[depth - 1], k, op);
                }
            }
        }
    }
    if let Some(f) = main {
        let why = if r.outputs > 0 {
            Release::Copied
        } else {
            Release::Dropped
        };
        sink.release(f, why);
    }
    r
}
