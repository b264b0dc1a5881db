//! The OpenFlow agent over a multi-core bridge, threads standing in for the datapath cores:
//! the agent changes the authoritative pipeline (which records its changes), the hub publishes
//! them, each worker thread forwards with its own replica and caches.
//!
//! - Flow-mod churn with barriers: a controller rewrites every flow's actions round after
//!   round, each round ended by a barrier; a worker that forwards a packet after the barrier
//!   reply by a rule older than that round is a stale packet. There must be none: the agent
//!   holds the reply until every core switched.
//! - Counters: flow, aggregate, table and port statistics are exact (every packet the cores
//!   forwarded, nothing twice), across entries that an add replaced keeping their counters.
//! - In order: within a flow (one core per flow, as RSS pins it) sequence numbers leave in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mgmt::agent::{AgentConfig, BridgeCtx, FailMode, OfAgent};
use mgmt::netif::ConnKind;
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::{FlowMod, Hello, Message};
use mgmt::openflow::multipart::{FlowStatsRequest, MultipartReply, MultipartRequest};
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::{Action, Instruction, OFP13};
use switch_core::datapath::{DatapathConfig, DatapathSink};
use switch_core::flow::Field;
use switch_core::mcore::{Hub, Worker};
use switch_core::normal::NormalSwitch;
use switch_core::packet::{Frame, HeapFrame};
use switch_core::pipeline::{OutputSink, PacketIn, Pipeline};
use switch_core::port::{Port, PortNo, PortTable};

const PORTS: u32 = 4;
const FLOWS: u32 = 12;

fn in_port(flow: u32) -> PortNo {
    1 + flow % PORTS
}

fn out_port(flow: u32, round: u32) -> PortNo {
    1 + (flow % PORTS + 1 + round % (PORTS - 1)) % PORTS
}

fn frame(flow: u32, seq: u32) -> HeapFrame {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&[2, 0, 0, 1, 0, 0]);
    f.extend_from_slice(&[2, 0, 0, 0, (flow >> 8) as u8, flow as u8]);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&36u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, (flow >> 8) as u8, flow as u8]);
    ip[16..20].copy_from_slice(&[10, 1, 0, 1]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(1000 + flow as u16).to_be_bytes());
    f.extend_from_slice(&2000u16.to_be_bytes());
    f.extend_from_slice(&16u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&flow.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < 60 {
        f.push(0);
    }
    HeapFrame::new(&f)
}

/// Round `round`'s rule for `flow`: stamp the round into the destination MAC, then output.
fn rule(flow: u32, round: u32) -> FlowMod {
    FlowMod {
        priority: 100,
        cookie: flow as u64,
        match_: Match::any()
            .with(OxmField::exact(Field::EthType, 0x0800))
            .with(OxmField::exact(Field::IpProto, 17))
            .with(OxmField::exact(Field::UdpSrc, 1000 + flow as u128)),
        instructions: vec![Instruction::ApplyActions(vec![
            Action::SetField(OxmField::exact(
                Field::EthDst,
                0x0200_0000_0000 | round as u128,
            )),
            Action::Output {
                port: out_port(flow, round),
                max_len: 0,
            },
        ])],
        ..Default::default()
    }
}

struct Nothing;
impl OutputSink for Nothing {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

/// What the worker threads saw.
#[derive(Default)]
struct Shared {
    /// The newest round whose barrier reply the controller has.
    required: AtomicU64,
    stop: AtomicBool,
    /// Traffic ends: each core adds what it sent to `sent` and counts itself in `quiet_cores`,
    /// then only syncs (a core keeps answering barriers and stats requests).
    quiet: AtomicBool,
    quiet_cores: AtomicU64,
    sent: AtomicU64,
    stale: AtomicU64,
    wrong_port: AtomicU64,
    reordered: AtomicU64,
    forwarded: AtomicU64,
    bytes: AtomicU64,
}

struct Sink<'a> {
    shared: &'a Shared,
    last_seq: &'a mut [u32],
}

impl DatapathSink<HeapFrame> for Sink<'_> {
    fn output(&mut self, port: PortNo, _: Option<u32>, f: HeapFrame) {
        let d = f.data();
        let round = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
        let flow = u32::from_be_bytes([d[42], d[43], d[44], d[45]]);
        let seq = u32::from_be_bytes([d[46], d[47], d[48], d[49]]);
        // Read now: a reply the controller got before this output means this core had
        // acknowledged the barrier's epoch before this batch began (it acks at its sync).
        let required = self.shared.required.load(Ordering::Acquire);
        if (round as u64) < required {
            self.shared.stale.fetch_add(1, Ordering::Relaxed);
        }
        if port != out_port(flow, round) {
            self.shared.wrong_port.fetch_add(1, Ordering::Relaxed);
        }
        let last = &mut self.last_seq[flow as usize];
        if seq <= *last && *last != 0 {
            self.shared.reordered.fetch_add(1, Ordering::Relaxed);
        }
        *last = seq;
        self.shared.forwarded.fetch_add(1, Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_add(d.len() as u64, Ordering::Relaxed);
    }
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        Some(HeapFrame::new(bytes))
    }
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

/// One datapath core: sync at every batch boundary, forward its flows (flow % n == id).
fn worker_loop(mut w: Worker, n: u32, shared: Arc<Shared>) -> u64 {
    let mine: Vec<u32> = (0..FLOWS).filter(|f| f % n == w.id() as u32).collect();
    let mut seq = vec![0u32; FLOWS as usize];
    let mut last_seq = vec![0u32; FLOWS as usize];
    let mut sent = 0u64;
    let mut now = 0u64;
    let mut quiet = false;
    loop {
        let required = shared.required.load(Ordering::Acquire);
        let stop = shared.stop.load(Ordering::Acquire);
        now += 1;
        w.sync(now);
        if stop {
            return sent;
        }
        if shared.quiet.load(Ordering::Acquire) {
            if !quiet {
                quiet = true;
                shared.sent.fetch_add(sent, Ordering::AcqRel);
                shared.quiet_cores.fetch_add(1, Ordering::AcqRel);
            }
            thread::yield_now();
            continue;
        }
        if required == 0 {
            // No rules yet: sync only (the first barrier waits for every core).
            thread::yield_now();
            continue;
        }
        for &f in &mine {
            let batch: Vec<HeapFrame> = (0..8)
                .map(|_| {
                    seq[f as usize] += 1;
                    frame(f, seq[f as usize])
                })
                .collect();
            sent += batch.len() as u64;
            let mut sink = Sink {
                shared: &shared,
                last_seq: &mut last_seq,
            };
            w.process_batch(in_port(f), batch, &mut sink, now);
        }
        if now.is_multiple_of(64) {
            w.timers(now, 10_000);
        }
    }
}

struct Rig {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    agent: OfAgent,
    hub: Hub,
    framer: Framer,
}

impl Rig {
    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let mut sink = Nothing;
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut sink,
            now_ms: 1,
            cores: Some(&mut self.hub),
        };
        f(&mut self.agent, &mut ctx)
    }

    fn send(&mut self, id: u32, xid: u32, m: Message) {
        let b = m.encode(OFP13, xid).unwrap();
        self.with(|a, ctx| a.receive(ctx, id, &b));
    }

    /// Polls until a reply with `xid` arrives; returns every message that came meanwhile.
    fn wait_for(&mut self, id: u32, xid: u32) -> Vec<(u32, Message)> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        loop {
            self.with(|a, ctx| a.poll(ctx));
            let b = self.agent.pending(id).to_vec();
            self.agent.consume(id, b.len());
            self.framer.push(&b);
            let mut done = false;
            while let Some(m) = self.framer.next_message() {
                let (h, msg) = Message::decode(&m.unwrap()).unwrap();
                if let Message::Error(e) = &msg {
                    panic!("switch answered an error: {e:?}");
                }
                done |= h.xid == xid;
                got.push((h.xid, msg));
            }
            if done {
                return got;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no reply to xid {xid} in 30 s"
            );
            thread::yield_now();
        }
    }
}

fn run(workers: u32, rounds: u32) {
    let mut ports = PortTable::new();
    for p in 1..=PORTS {
        ports
            .add(Port::new(p, &format!("eth{p}"), [2, 0, 0, 0, 0, p as u8]))
            .unwrap();
    }
    let mut pipeline = Pipeline::default();
    let normal = NormalSwitch::default();
    let (hub, ws) = Hub::new(
        &mut pipeline,
        &ports,
        normal.clone(),
        DatapathConfig::default(),
        workers as usize,
    );
    let mut rig = Rig {
        pipeline,
        ports,
        normal,
        agent: OfAgent::new(
            AgentConfig {
                fail_mode: FailMode::Secure,
                has_controllers: true,
                ..AgentConfig::default()
            },
            0,
        ),
        hub,
        framer: Framer::default(),
    };
    let id = rig
        .with(|a, ctx| a.open(ctx, ConnKind::Active { target: 0 }))
        .unwrap();
    rig.send(
        id,
        1,
        Message::Hello(Hello {
            bitmap: Some(1 << OFP13),
        }),
    );
    let shared = Arc::new(Shared::default());
    let threads: Vec<_> = ws
        .into_iter()
        .map(|w| {
            let s = shared.clone();
            thread::spawn(move || worker_loop(w, workers, s))
        })
        .collect();
    // Round 1 before any traffic, so that every packet matches some rule.
    for f in 0..FLOWS {
        rig.send(id, 100 + f, Message::FlowMod(rule(f, 1)));
    }
    rig.send(id, 2, Message::BarrierRequest);
    rig.wait_for(id, 2);
    shared.required.store(1, Ordering::Release);
    for r in 2..=rounds {
        // Each round replaces every flow's entry (an add over the same match and priority
        // keeps the counters) and ends with a barrier.
        for f in 0..FLOWS {
            rig.send(id, 1000 * r + f, Message::FlowMod(rule(f, r)));
        }
        let xid = 1000 * r + 999;
        rig.send(id, xid, Message::BarrierRequest);
        rig.wait_for(id, xid);
        shared.required.store(r as u64, Ordering::Release);
        // Let the cores forward under this round for a moment.
        let f0 = shared.forwarded.load(Ordering::Relaxed);
        let t = Instant::now();
        while shared.forwarded.load(Ordering::Relaxed) < f0 + 200
            && t.elapsed() < Duration::from_secs(5)
        {
            thread::yield_now();
        }
    }
    shared.quiet.store(true, Ordering::Release);
    while shared.quiet_cores.load(Ordering::Acquire) < workers as u64 {
        thread::yield_now();
    }
    let sent = shared.sent.load(Ordering::Acquire);
    let forwarded = shared.forwarded.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    assert!(forwarded > 0);
    assert_eq!(
        shared.stale.load(Ordering::Relaxed),
        0,
        "packets forwarded by a rule older than the last barrier reply"
    );
    assert_eq!(shared.wrong_port.load(Ordering::Relaxed), 0);
    assert_eq!(shared.reordered.load(Ordering::Relaxed), 0);
    assert_eq!(sent, forwarded, "every packet sent was forwarded once");

    // Counters: the stats requests wait for every core's counts.
    rig.send(
        id,
        7,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Flow(FlowStatsRequest {
                table_id: 0xff,
                ..Default::default()
            }),
        },
    );
    let mut packets = 0;
    let mut nbytes = 0;
    let mut n = 0;
    for (xid, m) in rig.wait_for(id, 7) {
        if let (7, Message::MultipartReply { body, .. }) = (xid, m)
            && let MultipartReply::Flow(v) = body
        {
            for fs in v {
                packets += fs.packet_count;
                nbytes += fs.byte_count;
                n += 1;
            }
        }
    }
    assert_eq!(n, FLOWS, "one entry per flow");
    assert_eq!(packets, forwarded, "flow stats: packets");
    assert_eq!(nbytes, bytes, "flow stats: bytes");
    rig.send(
        id,
        8,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::PortStats {
                port_no: 0xffff_ffff,
            },
        },
    );
    let (mut rx, mut tx) = (0, 0);
    for (xid, m) in rig.wait_for(id, 8) {
        if let (8, Message::MultipartReply { body, .. }) = (xid, m)
            && let MultipartReply::PortStats(v) = body
        {
            for p in v {
                rx += p.rx_packets;
                tx += p.tx_packets;
            }
        }
    }
    assert_eq!(rx, forwarded, "port stats: rx");
    assert_eq!(tx, forwarded, "port stats: tx");
    shared.stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn churn_with_barriers_two_cores() {
    run(2, 60);
}

#[test]
fn churn_with_barriers_four_cores() {
    run(4, 60);
}
