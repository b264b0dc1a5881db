//! Large multipart replies built a piece at a time: flow statistics, aggregate statistics and
//! table features walk the pipeline with a cursor kept on the connection, a bounded amount of
//! work per management poll (a byte budget, and no more while the connection's send queue is
//! long), so a dump of 100 000 flows never stalls the forwarding loop that shares the core.
//!
//! While a reply is in progress the connection's later requests wait in its framer: they are
//! answered after the reply completes, in order (an echo request too, as in Open vSwitch,
//! whose echo reply queues behind the replies already in its send queue). Asynchronous
//! messages (packet-in, port-status, flow-removed) may go out between two messages of the
//! reply, never inside one.
//!
//! What a flow dump sees: the walk visits each table in order and each flow slot of a table
//! in slot order, once, reading the flow as it is when the walk reaches it (counters and
//! duration of that moment). A flow that exists for the whole dump is reported exactly once;
//! a flow added or removed while the dump runs may or may not be reported (never twice for
//! one slot visit); nothing is read through a stale reference, so changes mid-dump cannot
//! produce garbage.

use alloc::vec::Vec;

use switch_core::flow_match::Match as CoreMatch;
use switch_core::pipeline::Pipeline;
use switch_core::table::{FlowTable, OFPTT_ALL};

use super::handle::stats_selects;
use crate::openflow::OfpError;
use crate::openflow::message::ReplyWriter;
use crate::openflow::multipart::{
    AggregateStats, FlowStats, FlowStatsRequest, MultipartReply, OFPMP_AGGREGATE, OFPMP_FLOW,
    OFPMP_TABLE_FEATURES, TableFeatures,
};

/// Budget charged for visiting one flow slot (whether or not it is reported), so that a walk
/// over many slots that report nothing is bounded too.
const SLOT_COST: usize = 16;

/// A reply in progress on one connection.
#[derive(Debug)]
pub(crate) struct Job {
    writer: ReplyWriter,
    /// The request's first bytes (an error ends the reply with an `OFPT_ERROR` for them).
    pub head: Vec<u8>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Flows {
        req: FlowStatsRequest,
        m: CoreMatch,
        at: Cursor,
    },
    Aggregate {
        req: FlowStatsRequest,
        m: CoreMatch,
        at: Cursor,
        sum: AggregateStats,
    },
    TableFeatures {
        next: usize,
    },
}

/// A position in the pipeline's flows: table index, slot in its classifier.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    table: usize,
    slot: u32,
}

/// How far a step got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The reply is complete (its last message is in the output).
    Done,
    /// Out of budget or send-queue room: call again on a later poll.
    More,
}

/// One past the largest slot number of `t` (slots are dense up to it).
fn slot_bound(t: &FlowTable) -> u32 {
    // The entries iterator walks the classifier's slot vector: its upper size bound is the
    // number of slots, known without walking. Should that ever stop holding, walk once.
    let it = t.entries();
    match it.size_hint().1 {
        Some(n) => n.min(u32::MAX as usize) as u32,
        None => t.entries().last().map_or(0, |(id, _)| id.saturating_add(1)),
    }
}

impl Job {
    pub fn flows(
        version: u8,
        xid: u32,
        head: Vec<u8>,
        req: FlowStatsRequest,
    ) -> Result<Job, OfpError> {
        let m = req.match_.to_core()?;
        Ok(Job {
            writer: ReplyWriter::new(version, xid, OFPMP_FLOW)?,
            head,
            kind: Kind::Flows {
                req,
                m,
                at: Cursor::default(),
            },
        })
    }

    pub fn aggregate(
        version: u8,
        xid: u32,
        head: Vec<u8>,
        req: FlowStatsRequest,
    ) -> Result<Job, OfpError> {
        let m = req.match_.to_core()?;
        Ok(Job {
            writer: ReplyWriter::new(version, xid, OFPMP_AGGREGATE)?,
            head,
            kind: Kind::Aggregate {
                req,
                m,
                at: Cursor::default(),
                sum: AggregateStats::default(),
            },
        })
    }

    pub fn table_features(version: u8, xid: u32, head: Vec<u8>) -> Result<Job, OfpError> {
        Ok(Job {
            writer: ReplyWriter::new(version, xid, OFPMP_TABLE_FEATURES)?,
            head,
            kind: Kind::TableFeatures { next: 0 },
        })
    }

    /// Advances the reply: complete messages go to `out`. Works while `budget` (bytes of
    /// reply, plus [`SLOT_COST`] per flow slot visited) lasts and `room()` holds (the
    /// connection's send queue is short enough); a step that makes progress always makes at
    /// least one entry's worth, so a reply cannot stall on a small budget.
    pub fn step(
        &mut self,
        pipeline: &Pipeline,
        now_ms: u64,
        out: &mut Vec<u8>,
        budget: &mut usize,
        room: impl Fn(&[u8]) -> bool,
    ) -> Result<Progress, OfpError> {
        let tables = pipeline.tables();
        match &mut self.kind {
            Kind::Flows { req, m, at } => {
                let mut bound = None;
                loop {
                    if *budget == 0 || !room(out) {
                        return Ok(Progress::More);
                    }
                    let Some(t) = tables.get(at.table) else {
                        break;
                    };
                    if req.table_id != OFPTT_ALL && t.id != req.table_id {
                        *at = Cursor {
                            table: at.table + 1,
                            slot: 0,
                        };
                        continue;
                    }
                    let b = *bound.get_or_insert_with(|| slot_bound(t));
                    if at.slot >= b {
                        *at = Cursor {
                            table: at.table + 1,
                            slot: 0,
                        };
                        bound = None;
                        continue;
                    }
                    let mut cost = SLOT_COST;
                    if let Some(e) = t.entry(at.slot)
                        && stats_selects(req, m, e)
                    {
                        let fs = FlowStats::from_entry(t.id, e, now_ms);
                        cost += self.writer.entry(out, |v, b| fs.emit(v, b))?;
                    }
                    at.slot += 1;
                    *budget = budget.saturating_sub(cost);
                }
            }
            Kind::Aggregate { req, m, at, sum } => {
                let mut bound = None;
                loop {
                    if *budget == 0 {
                        return Ok(Progress::More);
                    }
                    let Some(t) = tables.get(at.table) else {
                        break;
                    };
                    if req.table_id != OFPTT_ALL && t.id != req.table_id {
                        *at = Cursor {
                            table: at.table + 1,
                            slot: 0,
                        };
                        continue;
                    }
                    let b = *bound.get_or_insert_with(|| slot_bound(t));
                    if at.slot >= b {
                        *at = Cursor {
                            table: at.table + 1,
                            slot: 0,
                        };
                        bound = None;
                        continue;
                    }
                    if let Some(e) = t.entry(at.slot)
                        && stats_selects(req, m, e)
                    {
                        sum.flow_count += 1;
                        sum.packet_count += e.packets.get();
                        sum.byte_count += e.bytes.get();
                    }
                    at.slot += 1;
                    *budget = budget.saturating_sub(SLOT_COST);
                }
                let body = MultipartReply::Aggregate(sum.clone());
                for e in body.emit_entries(self.writer_version())? {
                    self.writer.entry(out, |_, b| {
                        b.extend_from_slice(&e);
                        Ok(())
                    })?;
                }
            }
            Kind::TableFeatures { next } => {
                let n = pipeline.n_tables();
                loop {
                    if *budget == 0 || !room(out) {
                        return Ok(Progress::More);
                    }
                    let Some(t) = tables.get(*next) else {
                        break;
                    };
                    let tf = TableFeatures::ironflow(
                        t.id,
                        n,
                        t.max_entries.min(u32::MAX as usize) as u32,
                    );
                    let cost = self.writer.entry(out, |_, b| {
                        tf.emit(b);
                        Ok(())
                    })?;
                    *next += 1;
                    *budget = budget.saturating_sub(cost);
                }
            }
        }
        Ok(Progress::Done)
    }

    fn writer_version(&self) -> u8 {
        self.writer.version()
    }

    /// Appends the reply's last message (after `step` returned `Done`).
    pub fn finish(self, out: &mut Vec<u8>) {
        self.writer.finish(out);
    }
}
