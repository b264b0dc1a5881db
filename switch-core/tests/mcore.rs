//! The multi-core datapath with threads standing in for cores: traffic from several hosts,
//! each flow pinned to one worker (as RSS would), flow-mod churn with barriers.
//!
//! The staleness check: every round `r` of the churn rewrites each flow's entry to set
//! `eth_dst = 02:00:RR:RR:RR:RR` (the round number) and output to a port that depends on `r`.
//! The writer publishes the round, waits for [`Publisher::passed`] (the barrier reply), and only
//! then stores `r` in `completed`. A worker reads `completed` *before* it syncs and processes a
//! batch; every packet of that batch must come out with a round `>= completed` and on the port of
//! that round. A packet with an older round was forwarded by stale state after a barrier.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;

use switch_core::action::Instructions;
use switch_core::datapath::{DatapathConfig, DatapathSink, DatapathStats, Release};
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::mcore::{Publisher, Stats, Worker};
use switch_core::normal::NormalSwitch;
use switch_core::packet::{Frame, HeapFrame};
use switch_core::pipeline::{Action, FlowMod, FlowModCommand, PacketIn, Pipeline};
use switch_core::port::{Port, PortNo, PortTable};
use switch_core::table::{FlowModFlags, RemovedReason};

const PORTS: u32 = 4;

fn in_port(flow: u32) -> PortNo {
    1 + flow % PORTS
}

/// The output port of `flow` in round `round` (never its input port).
fn out_port(flow: u32, round: u32) -> PortNo {
    1 + (flow % PORTS + 1 + round % (PORTS - 1)) % PORTS
}

fn flow_match(flow: u32) -> Match {
    Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 17)
        .with(Field::UdpSrc, 1000 + flow as u128)
}

fn rule(flow: u32, round: u32) -> FlowMod {
    let actions = vec![
        Action::SetField {
            field: Field::EthDst,
            value: 0x0200_0000_0000 | round as u128,
        },
        Action::Output {
            port: out_port(flow, round),
            max_len: 0,
        },
    ];
    FlowMod::add(0, 100, flow_match(flow), Instructions::apply(actions))
}

/// A UDP frame of `flow` (its own source host) carrying `(flow, seq)`.
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

/// What comes out: `(port, flow, seq, round)`.
fn decode(port: PortNo, f: &HeapFrame) -> (PortNo, u32, u32, u32) {
    let d = f.data();
    let round = u32::from_be_bytes(d[2..6].try_into().unwrap());
    let flow = u32::from_be_bytes(d[42..46].try_into().unwrap());
    let seq = u32::from_be_bytes(d[46..50].try_into().unwrap());
    (port, flow, seq, round)
}

#[derive(Default)]
struct Sink {
    out: Vec<(PortNo, HeapFrame)>,
    /// Dropped or malformed (not sent at all).
    released: u64,
}

impl DatapathSink<HeapFrame> for Sink {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: HeapFrame) {
        self.out.push((port, frame));
    }
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        Some(HeapFrame::new(bytes))
    }
    fn controller(&mut self, _packet_in: &PacketIn<'_>) {}
    fn release(&mut self, _frame: HeapFrame, why: Release) {
        // `Copied`: the translated packet's outputs were copies (not a loss).
        if why != Release::Copied {
            self.released += 1;
        }
    }
}

fn ports() -> PortTable {
    let mut t = PortTable::new();
    for p in 1..=PORTS {
        t.add(Port::new(p, &format!("p{p}"), [2, 0, 0, 0, 0xff, p as u8]))
            .unwrap();
    }
    t
}

/// A pipeline with a rule per flow (round 0) and `filler` unrelated entries.
fn pipeline(flows: u32, filler: u32) -> Pipeline {
    let mut p = Pipeline::default();
    for f in 0..flows {
        p.flow_mod(&rule(f, 0), 0).unwrap();
    }
    for i in 0..filler {
        let m = Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 6)
            .with(Field::TcpDst, i as u128);
        let fm = FlowMod::add(0, 50, m, Instructions::drop());
        p.flow_mod(&fm, 0).unwrap();
    }
    p
}

/// What a worker thread saw.
#[derive(Default, Debug)]
struct Report {
    sent: HashMap<u32, u32>,
    sent_bytes: HashMap<u32, u64>,
    out_per_port: HashMap<PortNo, u64>,
    in_per_port: HashMap<PortNo, u64>,
    stale: u64,
    wrong_port: u64,
    lost_or_reordered: u64,
    released: u64,
    batches: u64,
    stats: DatapathStats,
}

struct Control {
    completed: AtomicU64,
    stop: AtomicBool,
    stopped: AtomicUsize,
    exit: AtomicBool,
}

/// A worker core: sends bursts of its flows (grouped by input port), checks what comes out.
fn run_worker(mut w: Worker, flows: Vec<u32>, ctl: Arc<Control>) -> Report {
    let mut r = Report::default();
    let mut by_port: Vec<Vec<u32>> = vec![Vec::new(); PORTS as usize];
    for &f in &flows {
        by_port[(in_port(f) - 1) as usize].push(f);
    }
    by_port.retain(|v| !v.is_empty());
    let mut next_seq: HashMap<u32, u32> = flows.iter().map(|f| (*f, 0)).collect();
    let mut last_seen: HashMap<u32, u32> = HashMap::new();
    let mut sink = Sink::default();
    let mut i = 0usize;
    let mut stopped = false;
    loop {
        // Read the completed barrier before switching: the batch must not be older than it.
        let completed = ctl.completed.load(Ordering::Acquire) as u32;
        w.sync(0);
        if ctl.exit.load(Ordering::Acquire) {
            break;
        }
        if stopped || ctl.stop.load(Ordering::Acquire) {
            if !stopped {
                stopped = true;
                ctl.stopped.fetch_add(1, Ordering::AcqRel);
            }
            thread::yield_now();
            continue;
        }
        if by_port.is_empty() {
            thread::yield_now();
            continue;
        }
        let group = &by_port[i % by_port.len()];
        i += 1;
        // Up to 32 packets: bursts of 4 per flow, flows rotating.
        let mut batch = Vec::with_capacity(32);
        let start = i % group.len();
        for k in 0..group.len().min(8) {
            let f = group[(start + k) % group.len()];
            for _ in 0..4 {
                let s = next_seq.get_mut(&f).unwrap();
                let fr = frame(f, *s);
                *r.sent_bytes.entry(f).or_default() += fr.data().len() as u64;
                batch.push(fr);
                *s += 1;
            }
        }
        let port = in_port(group[0]);
        *r.in_per_port.entry(port).or_default() += batch.len() as u64;
        w.process_batch(port, batch, &mut sink, 0);
        r.batches += 1;
        for (p, fr) in sink.out.drain(..) {
            let (p, f, seq, round) = decode(p, &fr);
            *r.out_per_port.entry(p).or_default() += 1;
            let expect = last_seen.get(&f).map_or(0, |s| s + 1);
            if seq != expect {
                r.lost_or_reordered += 1;
            }
            last_seen.insert(f, seq);
            if round < completed {
                r.stale += 1;
            }
            if p != out_port(f, round) {
                r.wrong_port += 1;
            }
        }
    }
    r.released = sink.released;
    for (f, s) in next_seq {
        r.sent.insert(f, s);
        if last_seen.get(&f).map_or(0, |x| x + 1) != s {
            r.lost_or_reordered += 1;
        }
    }
    r.stats = w.datapath().stats();
    r
}

fn wait_passed(p: &Publisher, e: u64) {
    while !p.passed(e) {
        thread::yield_now();
    }
}

fn collect_stats(p: &mut Publisher) -> Stats {
    let t = p.request_stats();
    while !p.stats_ready(t) {
        thread::yield_now();
    }
    p.stats()
}

/// Churn: `rounds` rounds of (modify every flow; every 4th round also delete + re-add a quarter
/// of them; add/remove filler entries), each followed by a barrier; workers forward meanwhile.
fn churn(threads: usize, flows: u32, rounds: u32) {
    let filler = 2000;
    let (mut publisher, workers) = Publisher::new(
        pipeline(flows, filler),
        ports(),
        NormalSwitch::default(),
        DatapathConfig::default(),
        threads,
    );
    let ctl = Arc::new(Control {
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        stopped: AtomicUsize::new(0),
        exit: AtomicBool::new(false),
    });
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let mine: Vec<u32> = (0..flows)
                .filter(|f| *f as usize % threads == w.id())
                .collect();
            let ctl = ctl.clone();
            thread::spawn(move || run_worker(w, mine, ctl))
        })
        .collect();
    let mut removed = Vec::new();
    let mut barriers_waited = 0u64;
    for round in 1..=rounds {
        let now = round as u64;
        for f in 0..flows {
            if round % 4 == 0 && f % 4 == (round / 4) % 4 {
                let del = FlowMod::add(0, 100, flow_match(f), Instructions::drop())
                    .with_command(FlowModCommand::DeleteStrict);
                publisher.flow_mod(&del, now).unwrap();
                publisher.flow_mod(&rule(f, round), now).unwrap();
            } else {
                let m = rule(f, round).with_command(FlowModCommand::ModifyStrict);
                publisher.flow_mod(&m, now).unwrap();
            }
        }
        // Filler churn: the table keeps changing under the flows.
        let m = Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 6)
            .with(Field::TcpDst, (round % filler) as u128);
        let del = FlowMod::delete(0, m);
        publisher.flow_mod(&del, now).unwrap();
        publisher
            .flow_mod(&FlowMod::add(0, 50, m, Instructions::drop()), now)
            .unwrap();
        let e = publisher.barrier();
        wait_passed(&publisher, e);
        barriers_waited += 1;
        ctl.completed.store(round as u64, Ordering::Release);
        removed.extend(publisher.take_flow_removed());
        if round % 16 == 0 {
            // Stats while traffic runs (exercises the mailboxes).
            let _ = collect_stats(&mut publisher);
        }
    }
    ctl.stop.store(true, Ordering::Release);
    while ctl.stopped.load(Ordering::Acquire) < threads {
        thread::yield_now();
    }
    let e = publisher.barrier();
    wait_passed(&publisher, e);
    let stats = collect_stats(&mut publisher);
    removed.extend(publisher.take_flow_removed());
    ctl.exit.store(true, Ordering::Release);
    let reports: Vec<Report> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    // No stale packet after any barrier, nothing lost, reordered or misdirected.
    let stale: u64 = reports.iter().map(|r| r.stale).sum();
    let wrong: u64 = reports.iter().map(|r| r.wrong_port).sum();
    let lost: u64 = reports.iter().map(|r| r.lost_or_reordered).sum();
    let released: u64 = reports.iter().map(|r| r.released).sum();
    let sent: u64 = reports
        .iter()
        .flat_map(|r| r.sent.values())
        .map(|s| *s as u64)
        .sum();
    let batches: u64 = reports.iter().map(|r| r.batches).sum();
    eprintln!(
        "threads {threads}: {rounds} rounds ({barriers_waited} barriers), {sent} packets in \
         {batches} batches, stale {stale}, wrong port {wrong}, lost/reordered {lost}"
    );
    assert_eq!(stale, 0, "packets forwarded by stale state after a barrier");
    assert_eq!(wrong, 0);
    assert_eq!(lost, 0);
    assert_eq!(released, 0);
    assert!(sent > 0);

    // Counters: per core, summed, exact.
    let core_sum: u64 = reports.iter().map(|r| r.stats.packets).sum();
    assert_eq!(core_sum, sent);
    assert_eq!(stats.datapath.packets, sent);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(stats.per_core[i], r.stats, "core {i}'s snapshot");
    }
    let served = stats.datapath.batch_hits + stats.datapath.emc_hits + stats.datapath.megaflow_hits;
    assert!(
        served > 0,
        "the caches served packets: {:?}",
        stats.datapath
    );
    for p in 1..=PORTS {
        let rx: u64 = reports
            .iter()
            .map(|r| r.in_per_port.get(&p).copied().unwrap_or(0))
            .sum();
        let tx: u64 = reports
            .iter()
            .map(|r| r.out_per_port.get(&p).copied().unwrap_or(0))
            .sum();
        let c = stats.ports.get(&p).copied().unwrap_or_default();
        assert_eq!((c.rx_packets, c.tx_packets), (rx, tx), "port {p}");
    }
    // Table 0: every packet one lookup, matched.
    assert_eq!(stats.tables[0].lookup_count, sent);
    assert_eq!(stats.tables[0].matched_count, sent);
    // Flow stats: live entry + removed entries of the flow == packets and bytes sent.
    let mut per_flow: HashMap<u32, (u64, u64)> = HashMap::new();
    for r in &removed {
        if r.priority == 100 {
            let f = (r.match_.value.get(Field::UdpSrc) - 1000) as u32;
            let a = per_flow.entry(f).or_default();
            a.0 += r.packet_count;
            a.1 += r.byte_count;
        }
    }
    for f in 0..flows {
        let (id, _) = publisher
            .pipeline()
            .entries(0)
            .find(|(_, e)| e.priority == 100 && e.match_ == flow_match(f).normalized())
            .unwrap();
        let c = stats.entry(id);
        let (rp, rb) = per_flow.get(&f).copied().unwrap_or_default();
        let sent_f: u64 = reports
            .iter()
            .map(|r| *r.sent.get(&f).unwrap_or(&0) as u64)
            .sum();
        let bytes_f: u64 = reports
            .iter()
            .map(|r| *r.sent_bytes.get(&f).unwrap_or(&0))
            .sum();
        assert_eq!(c.packets + rp, sent_f, "flow {f} packets");
        assert_eq!(c.bytes + rb, bytes_f, "flow {f} bytes");
    }
}

#[test]
fn churn_2_threads() {
    churn(2, 48, 400);
}

#[test]
fn churn_4_threads() {
    churn(4, 64, 400);
}

#[test]
fn churn_8_threads() {
    churn(8, 64, 400);
}

/// Long run for the record: `MCORE_ROUNDS=20000 cargo test --release -p switch-core --test mcore
/// churn_long -- --ignored --nocapture`.
#[test]
#[ignore]
fn churn_long() {
    let rounds = std::env::var("MCORE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    for threads in [2, 4, 8] {
        churn(threads, 64, rounds);
    }
}

/// The check catches staleness: a worker that has not synced since a publish still forwards by
/// the old state (its caches are warm), and does not once it has.
#[test]
fn unsynced_worker_is_stale_and_sync_fixes_it() {
    let (mut publisher, mut workers) = Publisher::new(
        pipeline(4, 0),
        ports(),
        NormalSwitch::default(),
        DatapathConfig::default(),
        2,
    );
    let mut sink = Sink::default();
    let w = &mut workers[0];
    w.sync(0);
    for seq in 0..8 {
        w.process_batch(in_port(1), [frame(1, seq)], &mut sink, 0);
    }
    assert!(sink.out.iter().all(|(p, f)| decode(*p, f).3 == 0));
    sink.out.clear();
    publisher
        .flow_mod(&rule(1, 7).with_command(FlowModCommand::ModifyStrict), 1)
        .unwrap();
    let e = publisher.barrier();
    assert!(!publisher.passed(e));
    // Not synced: old state (what the barrier must wait for).
    w.process_batch(in_port(1), [frame(1, 8)], &mut sink, 0);
    assert_eq!(decode(sink.out[0].0, &sink.out[0].1).3, 0);
    sink.out.clear();
    assert!(w.sync(0));
    assert_eq!(w.epoch(), e);
    assert!(!publisher.passed(e), "worker 1 has not switched");
    w.process_batch(in_port(1), [frame(1, 9)], &mut sink, 0);
    let (p, _, _, round) = decode(sink.out[0].0, &sink.out[0].1);
    assert_eq!((p, round), (out_port(1, 7), 7));
    assert!(workers[1].sync(0));
    assert!(publisher.passed(e));
    // Nothing pending: a barrier is the current epoch, passed already.
    assert_eq!(publisher.barrier(), e);
    assert!(publisher.passed(e));
}

/// Idle timeouts use the latest use on any core; flow-removed counts sum every core's.
#[test]
fn expiry_uses_every_core_and_flow_removed_sums() {
    let mut p = Pipeline::default();
    let fm = rule(1, 0)
        .with_timeouts(1, 0)
        .with_flags(FlowModFlags::SEND_FLOW_REM);
    p.flow_mod(&fm, 0).unwrap();
    let (mut publisher, mut workers) = Publisher::new(
        p,
        ports(),
        NormalSwitch::default(),
        DatapathConfig::default(),
        2,
    );
    let mut sink = Sink::default();
    for w in workers.iter_mut() {
        w.sync(0);
    }
    // Core 0 at 100 ms (3 packets), core 1 at 1500 ms (2 packets).
    for seq in 0..3 {
        workers[0].process_batch(in_port(1), [frame(1, seq)], &mut sink, 100);
    }
    for seq in 3..5 {
        workers[1].process_batch(in_port(1), [frame(1, seq)], &mut sink, 1500);
    }
    assert_eq!(sink.out.len(), 5);
    let stats = |publisher: &mut Publisher, workers: &mut [Worker]| {
        let t = publisher.request_stats();
        for w in workers.iter_mut() {
            w.sync(0);
        }
        assert!(publisher.stats_ready(t));
        publisher.stats()
    };
    let s = stats(&mut publisher, &mut workers);
    let (id, _) = publisher.pipeline().entries(0).next().unwrap();
    assert_eq!(s.entry(id).packets, 5);
    assert_eq!(s.entry(id).bytes, 5 * 60);
    assert_eq!(s.entry(id).last_used_ms, 1500);
    // Idle for 1 s on core 0 but not on core 1: stays.
    assert_eq!(publisher.expire(&s, 2000), 0);
    assert_eq!(publisher.expire(&s, 2600), 1);
    assert!(publisher.pipeline().entries(0).next().is_none());
    // The event waits for every core to pass the removal.
    let e = publisher.publish();
    assert!(publisher.take_flow_removed().is_empty());
    workers[0].sync(0);
    assert!(publisher.take_flow_removed().is_empty());
    workers[1].sync(0);
    assert!(publisher.passed(e));
    let fr = publisher.take_flow_removed();
    assert_eq!(fr.len(), 1);
    assert_eq!(fr[0].reason, RemovedReason::IdleTimeout);
    assert_eq!((fr[0].packet_count, fr[0].byte_count), (5, 300));
    assert!(fr[0].notify);
    // The replicas removed it too: packets are now dropped (table miss).
    workers[1].process_batch(in_port(1), [frame(1, 5)], &mut sink, 2600);
    assert_eq!(sink.out.len(), 5);
    assert_eq!(sink.released, 1);
}

/// Port changes are published with the epoch; a failed flow-mod is answered by the publisher
/// and never reaches the workers.
#[test]
fn ports_and_errors() {
    let (mut publisher, mut workers) = Publisher::new(
        pipeline(4, 0),
        ports(),
        NormalSwitch::default(),
        DatapathConfig::default(),
        1,
    );
    let bad = FlowMod::add(
        0,
        1,
        Match::new().with(Field::UdpSrc, 1),
        Instructions::drop(),
    );
    assert!(publisher.flow_mod(&bad, 0).is_err());
    assert!(!publisher.has_pending());
    let g = publisher.ports().generation();
    publisher
        .ports_mut()
        .set_link(out_port(1, 0), false)
        .unwrap();
    assert_ne!(publisher.ports().generation(), g);
    let e = publisher.publish();
    let w = &mut workers[0];
    w.sync(0);
    assert_eq!(w.epoch(), e);
    assert!(!w.ports().get(out_port(1, 0)).unwrap().is_live());
    let mut sink = Sink::default();
    w.process_batch(in_port(1), [frame(1, 0)], &mut sink, 0);
    // Output to a port whose link is down: not sent.
    assert!(sink.out.is_empty());
}
