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
    // Fields sharing a place in the key (tcp/udp/sctp ports, ARP/IPv4 addresses, ...): show
    // the one the packet's eth_type/ip_proto say it is.
    let shape = Match::new()
        .with(Field::EthType, key.get(Field::EthType))
        .with(Field::IpProto, key.get(Field::IpProto))
        .with(Field::Icmpv6Type, key.get(Field::Icmpv6Type))
        .with(Field::VlanVid, key.get(Field::VlanVid));
    let mut first = true;
    for field in Field::ALL {
        if !shape.prereqs_met(field) {
            continue;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Action, Instructions};
    use crate::normal::NormalSwitch;
    use crate::pipeline::{FlowMod, PipelineConfig};
    use crate::port::{OFPP_NORMAL, Port};
    use alloc::string::ToString;
    use alloc::vec;

    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xb]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
        f
    }

    #[test]
    fn trace_tells_tables_entries_and_outputs_without_side_effects() {
        let mut ports = PortTable::new();
        for p in 1..=3 {
            ports
                .add(Port::new(p, "p", [2, 0, 0, 0, 1, p as u8]))
                .unwrap();
        }
        let mut p = Pipeline::new(PipelineConfig::default());
        let m = Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 17)
            .with(Field::UdpDst, 53);
        p.flow_mod(
            &FlowMod::add(
                0,
                100,
                m,
                Instructions::drop().with_metadata(7, 0xff).with_goto(3),
            )
            .with_cookie(0xabc),
            0,
        )
        .unwrap();
        p.flow_mod(
            &FlowMod::add(
                3,
                5,
                Match::new().with(Field::Metadata, 7),
                Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
            ),
            0,
        )
        .unwrap();
        let normal = NormalSwitch::default();
        let t = trace_packet(&p, &ports, Some(&normal), 0, 1, &frame());
        assert_eq!(t.visits.len(), 2);
        let h0 = t.visits[0].hit.as_ref().unwrap();
        assert_eq!((h0.priority, h0.cookie, h0.match_), (100, 0xabc, m));
        assert_eq!(t.visits[1].table_id, 3);
        assert_eq!(
            t.output_ports(),
            vec![2, 3],
            "NORMAL floods an unknown destination"
        );
        let text = t.to_string();
        assert!(
            text.contains("0. priority 100, dl_type=0x800,nw_proto=17,udp_dst=53, cookie 0xabc"),
            "{text}"
        );
        assert!(text.contains("3. priority 5, metadata=0x7"), "{text}");
        assert!(text.contains("NORMAL: flood in VLAN 0"), "{text}");
        assert!(
            text.contains("Datapath actions: output:2,output:3"),
            "{text}"
        );
        assert!(text.contains("Megaflow: in_port=1,"), "{text}");
        // Nothing counted, nothing learned.
        assert!(p.table_stats().iter().all(|s| s.lookup_count == 0));
        assert!(p.entries(0xff).all(|(_, e)| e.packets.get() == 0));
        assert!(normal.mac_table().is_empty());
        // A miss.
        let t = trace_packet(&p, &ports, None, 0, 1, &[0u8; 20]);
        assert!(t.table_miss_drop);
        assert!(t.to_string().contains("0. no match"));
        assert!(t.to_string().contains("Datapath actions: drop"));
    }
}
