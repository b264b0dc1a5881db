//! Large multipart replies (flow dumps of 100 000 flows, aggregate stats, table features)
//! are built a piece at a time across management polls: every flow exactly once, the same
//! bytes as a reply built whole, bounded work per poll, order kept with later requests, and a
//! flow table that changes mid-dump.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mgmt::agent::{AgentConfig, BridgeCtx, FailMode, OfAgent};
use mgmt::netif::ConnKind;
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::{FlowMod, FlowModCommand, Hello, Message};
use mgmt::openflow::multipart::{
    FlowStats, FlowStatsRequest, MultipartReply, MultipartRequest, OFPMPF_MORE, TableFeatures,
};
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::{Action, Instruction, OFP10, OFP13};
use switch_core::flow::Field;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{OutputSink, PacketIn as CorePacketIn, Pipeline};
use switch_core::port::{Port, PortTable};
use switch_core::table::OFPTT_ALL;

struct Nothing;
impl OutputSink for Nothing {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &CorePacketIn<'_>) {}
}

struct Rig {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    agent: OfAgent,
    now: u64,
}

impl Rig {
    fn new() -> Rig {
        let mut ports = PortTable::new();
        ports.add(Port::new(1, "eth1", [2, 0, 0, 0, 0, 1])).unwrap();
        Rig {
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            agent: OfAgent::new(
                AgentConfig {
                    fail_mode: FailMode::Secure,
                    has_controllers: true,
                    ..AgentConfig::default()
                },
                0,
            ),
            now: 0,
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let mut sink = Nothing;
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut sink,
            now_ms: self.now,
            cores: None,
        };
        f(&mut self.agent, &mut ctx)
    }

    fn connect(&mut self, version: u8) -> u32 {
        let id = self
            .with(|a, ctx| a.open(ctx, ConnKind::Active { target: 0 }))
            .unwrap();
        self.send(
            id,
            version,
            1,
            Message::Hello(Hello {
                bitmap: Some(1 << version),
            }),
        );
        self.take(id);
        id
    }

    fn send(&mut self, id: u32, version: u8, xid: u32, m: Message) {
        let b = m.encode(version, xid).unwrap();
        self.send_bytes(id, &b);
    }

    fn send_bytes(&mut self, id: u32, b: &[u8]) {
        self.with(|a, ctx| a.receive(ctx, id, b));
    }

    fn poll(&mut self) {
        self.with(|a, ctx| a.poll(ctx));
    }

    /// What the agent has for `id` now (the transport took it all).
    fn take(&mut self, id: u32) -> Vec<u8> {
        let b = self.agent.pending(id).to_vec();
        self.agent.consume(id, b.len());
        b
    }

    /// `n` flows in table `table` (`in_port=base+i`, cookie `base+i`), straight into the
    /// pipeline.
    fn add_flows(&mut self, table: u8, base: u32, n: u32) {
        for i in 0..n {
            let fm = flow(table, base + i);
            self.pipeline
                .flow_mod(&fm.to_core().unwrap(), self.now)
                .unwrap();
        }
    }

    /// Polls until the reply in progress on `id` is complete; returns the bytes, the most any
    /// poll added to the send queue, and the longest poll.
    fn finish(&mut self, id: u32, mut bytes: Vec<u8>) -> (Vec<u8>, usize, Duration, usize) {
        let mut max_bytes = bytes.len();
        let mut max_time = Duration::ZERO;
        let mut polls = 0;
        while self.agent.reply_in_progress(id) {
            let t = Instant::now();
            self.poll();
            max_time = max_time.max(t.elapsed());
            let b = self.take(id);
            max_bytes = max_bytes.max(b.len());
            bytes.extend_from_slice(&b);
            polls += 1;
            assert!(polls < 1_000_000, "the reply never completes");
        }
        (bytes, max_bytes, max_time, polls)
    }
}

fn flow(table: u8, n: u32) -> FlowMod {
    FlowMod {
        table_id: table,
        priority: 100,
        cookie: n as u64,
        match_: Match::any().with(OxmField::exact(Field::InPort, n as u128)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 1,
            max_len: 0,
        }])],
        ..Default::default()
    }
}

fn decode_all(bytes: &[u8]) -> Vec<(u32, u16, Message)> {
    let mut f = Framer::default();
    f.push(bytes);
    let mut v = Vec::new();
    while let Some(m) = f.next_message() {
        let m = m.expect("whole messages");
        let (h, msg) = Message::decode(&m).unwrap_or_else(|e| panic!("undecodable: {e}"));
        let flags = match &msg {
            Message::MultipartReply { flags, .. } => *flags,
            _ => 0,
        };
        v.push((h.xid, flags, msg));
    }
    v
}

fn dump(table_id: u8) -> Message {
    Message::MultipartRequest {
        flags: 0,
        body: MultipartRequest::Flow(FlowStatsRequest {
            table_id,
            ..Default::default()
        }),
    }
}

/// The flows of the reply with `xid`, checking its framing: every part but the last has
/// `REPLY_MORE`, and nothing of it follows the last.
fn flows_of(out: &[(u32, u16, Message)], xid: u32) -> Vec<FlowStats> {
    let parts: Vec<_> = out.iter().filter(|(x, _, _)| *x == xid).collect();
    assert!(!parts.is_empty());
    let mut flows = Vec::new();
    for (i, (_, flags, m)) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        assert_eq!(
            flags & OFPMPF_MORE == 0,
            last,
            "part {i} of {}",
            parts.len()
        );
        match m {
            Message::MultipartReply {
                body: MultipartReply::Flow(f),
                ..
            } => flows.extend(f.iter().cloned()),
            m => panic!("{m:?}"),
        }
    }
    flows
}

#[test]
fn a_dump_of_100k_flows_comes_in_bounded_pieces_each_flow_once() {
    const N: u32 = 100_000;
    let mut r = Rig::new();
    r.add_flows(0, 1, N / 2);
    r.add_flows(3, 1 + N / 2, N / 2);
    let id = r.connect(OFP13);
    // The dump, then a barrier and an echo in the same read.
    let mut req = dump(OFPTT_ALL).encode(OFP13, 7).unwrap();
    req.extend(Message::BarrierRequest.encode(OFP13, 8).unwrap());
    req.extend(
        Message::EchoRequest(b"hi".to_vec())
            .encode(OFP13, 9)
            .unwrap(),
    );
    let t = Instant::now();
    r.send_bytes(id, &req);
    let first = t.elapsed();
    assert!(r.agent.reply_in_progress(id));
    let b = r.take(id);
    let (bytes, max_bytes, max_poll, polls) = r.finish(id, b);
    let total = t.elapsed();
    let out = decode_all(&bytes);
    let flows = flows_of(&out, 7);
    let mut seen = HashMap::new();
    for f in &flows {
        *seen.entry(f.cookie).or_insert(0) += 1;
        assert_eq!(f.table_id, if f.cookie <= (N / 2) as u64 { 0 } else { 3 });
    }
    assert_eq!(flows.len(), N as usize);
    assert_eq!(seen.len(), N as usize);
    assert!(seen.values().all(|n| *n == 1));
    assert!((1..=N as u64).all(|c| seen.contains_key(&c)));
    // Order: the barrier reply and the echo reply follow the dump's last part.
    let tail: Vec<_> = out.iter().filter(|(x, _, _)| *x != 7).collect();
    assert!(
        matches!(tail[..], [(8, _, Message::BarrierReply), (9, _, Message::EchoReply(d))] if d == b"hi")
    );
    let last_part = out.iter().rposition(|(x, _, _)| *x == 7).unwrap();
    assert_eq!(last_part, out.len() - 3);
    // Bounded work per poll: the ~10 MB reply took hundreds of polls, none of which added
    // more than one full message plus the budget to the send queue.
    let budget = r.agent.config().reply_budget;
    println!(
        "{} bytes in {polls} polls: most in one poll {max_bytes} B, longest poll {max_poll:?} \
         (first receive {first:?}), whole dump {total:?}",
        bytes.len()
    );
    assert!(bytes.len() > 8_000_000);
    assert!(polls >= bytes.len() / (budget + 65536));
    assert!(max_bytes <= 65535 + budget, "{max_bytes}");
    assert!(first <= total / 8, "{first:?} of {total:?}");
    assert!(max_poll <= total / 8, "{max_poll:?} of {total:?}");
}

#[test]
fn pieces_are_the_bytes_of_the_reply_built_whole() {
    for v in [OFP10, OFP13] {
        let mut r = Rig::new();
        r.add_flows(0, 1, 3000);
        let id = r.connect(v);
        r.send(id, v, 5, dump(if v == OFP10 { OFPTT_ALL } else { 0 }));
        let b = r.take(id);
        let (bytes, _, _, polls) = r.finish(id, b);
        assert!(polls > 1);
        let flows: Vec<FlowStats> = r
            .pipeline
            .entries(OFPTT_ALL)
            .map(|(id, e)| FlowStats::from_entry(id.table_id, e, r.now))
            .collect();
        let whole = Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Flow(flows),
        }
        .encode(v, 5)
        .unwrap();
        assert!(whole.len() > 3 * 65535 / 2);
        assert_eq!(bytes, whole, "version {v}");
    }
    // Table features of all 254 tables (~380 KB).
    let mut r = Rig::new();
    let id = r.connect(OFP13);
    let req = Message::MultipartRequest {
        flags: 0,
        body: MultipartRequest::TableFeatures(vec![]),
    };
    r.send(id, OFP13, 6, req);
    let b = r.take(id);
    assert!(b.len() < 65536 + r.agent.config().reply_budget);
    let (bytes, max_bytes, _, polls) = r.finish(id, b);
    let n = r.pipeline.n_tables();
    let whole = Message::MultipartReply {
        flags: 0,
        body: MultipartReply::TableFeatures(
            r.pipeline
                .tables()
                .iter()
                .map(|t| TableFeatures::ironflow(t.id, n, t.max_entries as u32))
                .collect(),
        ),
    }
    .encode(OFP13, 6)
    .unwrap();
    assert_eq!(bytes, whole);
    assert!(polls >= 5, "{polls}");
    assert!(max_bytes <= 65535 + r.agent.config().reply_budget);
}

#[test]
fn aggregate_of_100k_flows_across_polls() {
    let mut r = Rig::new();
    r.add_flows(0, 1, 100_000);
    let id = r.connect(OFP13);
    let req = Message::MultipartRequest {
        flags: 0,
        body: MultipartRequest::Aggregate(FlowStatsRequest::default()),
    };
    r.send(id, OFP13, 3, req);
    assert!(r.agent.reply_in_progress(id));
    let b = r.take(id);
    assert!(b.is_empty());
    let (bytes, _, _, polls) = r.finish(id, b);
    assert!(polls > 10);
    let out = decode_all(&bytes);
    assert!(
        matches!(&out[..], [(3, 0, Message::MultipartReply { body: MultipartReply::Aggregate(a), .. })] if a.flow_count == 100_000),
        "{out:?}"
    );
}

#[test]
fn a_flow_table_changed_mid_dump() {
    const N: u32 = 20_000;
    let mut r = Rig::new();
    r.add_flows(0, 1, N);
    let id = r.connect(OFP13);
    r.send(id, OFP13, 4, dump(OFPTT_ALL));
    let mut bytes = r.take(id);
    for _ in 0..3 {
        r.poll();
        bytes.extend(r.take(id));
    }
    assert!(r.agent.reply_in_progress(id));
    // Another connection deletes every flow with an even cookie, adds new ones (into the
    // freed slots and beyond) and modifies the odd ones' actions.
    let other = r.connect(OFP13);
    let del = FlowMod {
        command: FlowModCommand::Delete,
        table_id: OFPTT_ALL,
        cookie: 0,
        cookie_mask: 1,
        ..Default::default()
    };
    r.send(other, OFP13, 2, Message::FlowMod(del));
    for i in 0..15_000 {
        r.send(other, OFP13, 3, Message::FlowMod(flow(0, 1_000_000 + i)));
    }
    let modify = FlowMod {
        command: FlowModCommand::Modify,
        table_id: 0,
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 2,
            max_len: 0,
        }])],
        ..Default::default()
    };
    r.send(other, OFP13, 4, Message::FlowMod(modify));
    let errs = decode_all(&r.take(other));
    assert!(
        errs.iter().all(|(_, _, m)| !matches!(m, Message::Error(_))),
        "{errs:?}"
    );
    let (rest, _, _, _) = r.finish(id, Vec::new());
    bytes.extend(rest);
    let flows = flows_of(&decode_all(&bytes), 4);
    let mut seen = HashMap::new();
    for f in &flows {
        *seen.entry(f.cookie).or_insert(0) += 1;
    }
    // Nothing twice, every flow that lived through the dump once, nothing invented.
    assert!(seen.values().all(|n| *n == 1), "duplicates");
    for c in (1..=N as u64).filter(|c| c % 2 == 1) {
        assert_eq!(seen.get(&c), Some(&1), "flow {c}");
    }
    assert!(
        seen.keys()
            .all(|c| { (1..=N as u64).contains(c) || (1_000_000..1_015_000).contains(c) })
    );
    assert!(flows.len() < N as usize + 15_000);
}

#[test]
fn echo_is_answered_in_the_read_it_arrives_in() {
    let mut r = Rig::new();
    r.add_flows(0, 1, 10);
    let id = r.connect(OFP13);
    for xid in 1..100 {
        r.send(id, OFP13, xid, Message::EchoRequest(vec![xid as u8]));
        let out = decode_all(&r.take(id));
        assert!(
            matches!(&out[..], [(x, _, Message::EchoReply(d))] if *x == xid && d == &[xid as u8]),
            "{out:?}"
        );
    }
    // A small dump is answered at once too, and an echo right behind it as well.
    let mut req = dump(OFPTT_ALL).encode(OFP13, 200).unwrap();
    req.extend(Message::EchoRequest(vec![]).encode(OFP13, 201).unwrap());
    r.send_bytes(id, &req);
    assert!(!r.agent.reply_in_progress(id));
    let out = decode_all(&r.take(id));
    assert_eq!(flows_of(&out, 200).len(), 10);
    assert!(matches!(out.last(), Some((201, _, Message::EchoReply(_)))));
}

#[test]
fn a_connection_that_closes_mid_dump_leaves_nothing_behind() {
    let mut r = Rig::new();
    r.add_flows(0, 1, 20_000);
    let id = r.connect(OFP13);
    r.send(id, OFP13, 4, dump(OFPTT_ALL));
    r.poll();
    assert!(r.agent.reply_in_progress(id));
    r.agent.close(id, r.now);
    assert!(!r.agent.reply_in_progress(id));
    r.poll();
    // A new connection dumps normally.
    let id = r.connect(OFP13);
    r.send(id, OFP13, 5, dump(OFPTT_ALL));
    let b = r.take(id);
    let (bytes, _, _, _) = r.finish(id, b);
    assert_eq!(flows_of(&decode_all(&bytes), 5).len(), 20_000);
}
