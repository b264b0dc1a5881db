//! `ofproto/trace` for ironflow: run a packet through the pipeline without side effects and
//! tell what happened: the tables visited, the entry matched in each (priority, match, cookie,
//! instructions), each action executed, the outputs and packet-ins, and the megaflow mask the
//! decision depended on.
//!
//! Tracing changes no counter (tables, entries, groups) and no MAC table: the pipeline runs in
//! its non-counting mode, NORMAL runs on a copy of the learning switch, meters are not called.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::action::{Instructions, write_port};
use crate::extract::extract;
use crate::flow::{Field, FlowKey};
use crate::flow_match::{Match, field_name, write_value};
use crate::normal::NormalSwitch;
use crate::packet::HeapFrame;
use crate::pipeline::{Env, OutputSink, PacketIn, PacketInReason, Pipeline};
use crate::port::{PortNo, PortTable};
use crate::table::FlowEntry;

/// The entry a table lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHit {
    pub priority: u16,
    pub match_: Match,
    pub cookie: u64,
    pub instructions: Instructions,
}

/// One table lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableVisit {
    pub table_id: u8,
    /// Nesting (0 for the packet itself, more inside group buckets / packet-out resubmits).
    pub depth: usize,
    pub hit: Option<TraceHit>,
}

/// Where a copy of the packet went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TracedOutput {
    Port {
        port: PortNo,
        queue: Option<u32>,
        len: usize,
    },
    Controller {
        reason: PacketInReason,
        table_id: u8,
        cookie: u64,
        max_len: u16,
        len: usize,
    },
}

/// The result of a trace. `Display` renders it as text.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The packet's key as extracted.
    pub key: FlowKey,
    pub visits: Vec<TableVisit>,
    pub outputs: Vec<TracedOutput>,
    /// Every step, indented by nesting.
    pub lines: Vec<String>,
    /// The bits of the key the decision depended on (the megaflow mask).
    pub wc: FlowKey,
    /// The packet reached a table with no matching entry.
    pub table_miss_drop: bool,
}

impl Trace {
    pub(crate) fn line(&mut self, depth: usize, s: String) {
        let mut l = String::new();
        for _ in 0..depth + 1 {
            l.push_str("    ");
        }
        l.push_str(&s);
        self.lines.push(l);
    }

    pub(crate) fn visit(&mut self, table_id: u8, depth: usize, e: Option<&FlowEntry>) {
        let hit = e.map(|e| TraceHit {
            priority: e.priority,
            match_: e.match_,
            cookie: e.cookie,
            instructions: e.instructions.clone(),
        });
        let mut l = String::new();
        for _ in 0..depth {
            l.push_str("    ");
        }
        let _ = match &hit {
            Some(h) => write!(
                l,
                "{table_id}. priority {}, {}, cookie {:#x}: {}",
                h.priority, h.match_, h.cookie, h.instructions
            ),
            None => write!(l, "{table_id}. no match"),
        };
        self.lines.push(l);
        self.visits.push(TableVisit {
            table_id,
            depth,
            hit,
        });
    }

    pub(crate) fn output(&mut self, port: PortNo, queue: Option<u32>, len: usize) {
        self.outputs.push(TracedOutput::Port { port, queue, len });
    }

    pub(crate) fn packet_in(&mut self, pi: &PacketIn<'_>) {
        self.outputs.push(TracedOutput::Controller {
            reason: pi.reason,
            table_id: pi.table_id,
            cookie: pi.cookie,
            max_len: pi.max_len,
            len: pi.frame.len(),
        });
    }

    /// The ports the packet was sent to, in order.
    pub fn output_ports(&self) -> Vec<PortNo> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                TracedOutput::Port { port, .. } => Some(*port),
                _ => None,
            })
            .collect()
    }
}

struct Discard;

impl OutputSink for Discard {
    fn output(&mut self, _: PortNo, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

/// Traces `frame` received on `in_port` (the key is extracted from the bytes).
pub fn trace_packet(
    pipeline: &Pipeline,
    ports: &PortTable,
    normal: Option<&NormalSwitch>,
    now_ms: u64,
    in_port: PortNo,
    frame: &[u8],
) -> Trace {
    let mut key = FlowKey::ZERO;
    extract(frame, in_port, &mut key);
    trace_key(pipeline, ports, normal, now_ms, key, frame)
}

/// Traces a packet whose key is given (e.g. with metadata or tunnel id already set).
pub fn trace_key(
    pipeline: &Pipeline,
    ports: &PortTable,
    normal: Option<&NormalSwitch>,
    now_ms: u64,
    key: FlowKey,
    frame: &[u8],
) -> Trace {
    let mut trace = Trace {
        key,
        ..Trace::default()
    };
    // NORMAL learns as it decides: give it a copy so the real MAC table stays as it is.
    let mut normal_copy = normal.cloned();
    let mut env = Env {
        ports,
        normal: normal_copy.as_mut(),
        meters: None,
        now_ms,
    };
    let mut k = key;
    let mut f = HeapFrame::new(frame);
    let mut wc = FlowKey::ZERO;
    let outcome = pipeline.run_traced(&mut env, &mut k, &mut f, &mut wc, &mut Discard, &mut trace);
    trace.wc = wc;
    trace.table_miss_drop = outcome.table_miss_drop;
    trace
}

fn write_flow(f: &mut fmt::Formatter<'_>, key: &FlowKey, mask: Option<&FlowKey>) -> fmt::Result {
    let mut first = true;
    for field in Field::ALL {
        let m = mask.map_or(field.max(), |m| m.get(field));
        let v = key.get(field) & m;
        if m == 0 || (mask.is_none() && v == 0 && field != Field::InPort) {
            continue;
        }
        if !first {
            f.write_char(',')?;
        }
        first = false;
        write!(f, "{}=", field_name(field))?;
        write_value(f, field, v)?;
        if m != field.max() {
            f.write_char('/')?;
            write_value(f, field, m)?;
        }
    }
    Ok(())
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flow: ")?;
        write_flow(f, &self.key, None)?;
        f.write_str("\n\n")?;
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        f.write_str("\nMegaflow: ")?;
        write_flow(f, &self.key, Some(&self.wc))?;
        f.write_str("\nDatapath actions: ")?;
        if self.outputs.is_empty() {
            f.write_str("drop")?;
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            match o {
                TracedOutput::Port { port, queue, .. } => {
                    if let Some(q) = queue {
                        write!(f, "set_queue({q}),")?;
                    }
                    f.write_str("output:")?;
                    write_port(f, *port)?;
                }
                TracedOutput::Controller {
                    reason, max_len, ..
                } => write!(f, "controller(reason={reason:?},max_len={max_len})")?,
            }
        }
        f.write_char('\n')
    }
}
