//! Differential test: the datapath (EMC + megaflows over the pipeline) against the pipeline
//! alone. Random tables (several tables, overlapping priorities, masks, goto-table, write-actions,
//! metadata, groups of every type, NORMAL with VLAN ports, packet-ins, TTL), random packet
//! streams in batches from random ports, random flow/group/port/MAC-table changes and clock steps
//! between batches. For every batch the outputs (port, queue, bytes after rewrites, in order), the
//! packet-ins, and afterwards every entry, group, bucket and table (lookup/matched) counter and
//! the MAC tables must be equal (`DP_DEBUG=1` lists a failing batch's packets in brief).

use proptest::prelude::*;
use switch_core::action::Instructions;
use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey, OFPVID_PRESENT};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::normal::{NormalConfig, NormalSwitch};
use switch_core::packet::{Frame, HeapFrame};
use switch_core::pipeline::{
    Action, Env, FlowMod, FlowModCommand, MeterHook, OutputSink, PacketIn, Pipeline, PipelineConfig,
};
use switch_core::port::{
    OFPP_ALL, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_NORMAL, Port, PortNo, PortTable,
    VlanMode, VlanSet,
};
use switch_core::table::OFPTT_ALL;

/// What came out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Port(PortNo, Option<u32>, Vec<u8>),
    Controller(u8, u8, u64, u16, FlowKey, Vec<u8>),
}

#[derive(Default)]
struct Rec {
    out: Vec<Out>,
}

impl OutputSink for Rec {
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: &[u8]) {
        self.out.push(Out::Port(port, queue, frame.to_vec()));
    }
    fn controller(&mut self, pi: &PacketIn<'_>) {
        self.out.push(Out::Controller(
            pi.reason as u8,
            pi.table_id,
            pi.cookie,
            pi.max_len,
            *pi.key,
            pi.frame.to_vec(),
        ));
    }
}

impl DatapathSink<HeapFrame> for Rec {
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: HeapFrame) {
        self.out.push(Out::Port(port, queue, frame.to_vec()));
    }
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        Some(HeapFrame::new(bytes))
    }
    fn controller(&mut self, pi: &PacketIn<'_>) {
        OutputSink::controller(self, pi);
    }
    fn release(&mut self, _frame: HeapFrame, _why: Release) {}
}

/// A meter that drops every third packet it sees (per meter id): deterministic, and it sees the
/// same sequence on both sides only if the datapath consults it exactly as the pipeline does.
#[derive(Default)]
struct EveryThird {
    seen: [u64; 4],
}

impl MeterHook for EveryThird {
    fn meter(&mut self, meter_id: u32, _len: usize, _now_ms: u64) -> bool {
        let c = &mut self.seen[meter_id as usize % 4];
        *c += 1;
        !(*c).is_multiple_of(3)
    }
}

/// A small deterministic RNG (the proptest input is the seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const PORTS: [PortNo; 4] = [1, 2, 3, 4];
const MACS: [u64; 5] = [
    0x0200_0000_0001,
    0x0200_0000_0002,
    0x0200_0000_0003,
    0x0200_0000_0004,
    0xffff_ffff_ffff,
];
const IPS: [u32; 4] = [0x0a00_0001, 0x0a00_0102, 0x0a01_0001, 0xc0a8_0001];

fn inet_sum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn random_frame(r: &mut Rng) -> Vec<u8> {
    let mut f = Vec::new();
    let dst = r.pick(&MACS);
    let src = r.pick(&MACS[..4]);
    f.extend_from_slice(&dst.to_be_bytes()[2..]);
    f.extend_from_slice(&src.to_be_bytes()[2..]);
    match r.below(4) {
        0 => f.extend_from_slice(&[0x81, 0x00, 0x00, 10]),
        1 => f.extend_from_slice(&[0x81, 0x00, 0x20, 20]),
        _ => {}
    }
    if r.chance(15) {
        // ARP
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&src.to_be_bytes()[2..]);
        f.extend_from_slice(&r.pick(&IPS).to_be_bytes());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&r.pick(&IPS).to_be_bytes());
    } else {
        f.extend_from_slice(&[0x08, 0x00]);
        let proto = r.pick(&[6u8, 17, 1]);
        let l4: Vec<u8> = match proto {
            6 => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&r.pick(&[1000u16, 2000]).to_be_bytes());
                t[2..4].copy_from_slice(&r.pick(&[22u16, 80, 443]).to_be_bytes());
                t[12] = 0x50;
                t
            }
            17 => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&r.pick(&[53u16, 5353]).to_be_bytes());
                u[2..4].copy_from_slice(&r.pick(&[53u16, 123]).to_be_bytes());
                u[4..6].copy_from_slice(&8u16.to_be_bytes());
                u
            }
            _ => vec![8, 0, 0, 0, 0, 1, 0, 1],
        };
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h[8] = r.pick(&[1u8, 2, 3, 64]);
        h[9] = proto;
        h[12..16].copy_from_slice(&r.pick(&IPS).to_be_bytes());
        h[16..20].copy_from_slice(&r.pick(&IPS).to_be_bytes());
        let c = inet_sum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&l4);
    }
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn random_match(r: &mut Rng) -> Match {
    let mut m = Match::new();
    if r.chance(40) {
        m = m.with(Field::InPort, r.pick(&PORTS) as u128);
    }
    if r.chance(20) {
        m = m.with(Field::EthSrc, r.pick(&MACS) as u128);
    }
    if r.chance(20) {
        m = m.with_masked(Field::EthDst, r.pick(&MACS) as u128, 0x0100_0000_0000);
    }
    if r.chance(15) {
        m = m.with(
            Field::VlanVid,
            r.pick(&[
                0u128,
                (OFPVID_PRESENT | 10) as u128,
                (OFPVID_PRESENT | 20) as u128,
            ]),
        );
    }
    if r.chance(15) {
        m = m.with_masked(Field::Metadata, r.below(4) as u128, 3);
    }
    if r.chance(60) {
        m = m.with(Field::EthType, 0x0800);
        if r.chance(50) {
            let len = r.pick(&[8u32, 16, 24, 32]);
            let mask = (u32::MAX << (32 - len)) as u128;
            m = m.with_masked(Field::Ipv4Dst, r.pick(&IPS) as u128 & mask, mask);
        }
        if r.chance(30) {
            let len = r.pick(&[8u32, 16, 32]);
            let mask = (u32::MAX << (32 - len)) as u128;
            m = m.with_masked(Field::Ipv4Src, r.pick(&IPS) as u128 & mask, mask);
        }
        if r.chance(40) {
            let proto = r.pick(&[6u8, 17]);
            m = m.with(Field::IpProto, proto as u128);
            if r.chance(60) {
                let f = if proto == 6 {
                    Field::TcpDst
                } else {
                    Field::UdpDst
                };
                m = m.with(f, r.pick(&[22u128, 53, 80, 123, 443]));
            }
        }
    } else if r.chance(10) {
        m = m.with(Field::EthType, 0x0806);
    }
    m
}

fn random_action(r: &mut Rng, groups: bool) -> Action {
    match r.below(if groups { 14 } else { 13 }) {
        0..=3 => Action::output(r.pick(&PORTS)),
        4 => Action::output(r.pick(&[OFPP_FLOOD, OFPP_ALL, OFPP_IN_PORT])),
        5 => Action::output(OFPP_NORMAL),
        6 => Action::Output {
            port: OFPP_CONTROLLER,
            max_len: r.pick(&[64u16, 0xffff]),
        },
        7 => Action::set_field(Field::EthDst, r.pick(&MACS[..4]) as u128),
        8 => Action::set_field(
            Field::VlanVid,
            (OFPVID_PRESENT | r.pick(&[10u16, 30])) as u128,
        ),
        9 => {
            if r.chance(50) {
                Action::PushVlan(0x8100)
            } else {
                Action::PopVlan
            }
        }
        10 => {
            if r.chance(70) {
                Action::DecNwTtl
            } else {
                Action::SetNwTtl(r.pick(&[1u8, 5, 100]))
            }
        }
        11 => Action::set_field(Field::Ipv4Dst, r.pick(&IPS) as u128),
        12 => Action::SetQueue(r.below(3) as u32),
        _ => Action::Group(1 + r.below(3) as u32),
    }
}

fn random_actions(r: &mut Rng, groups: bool) -> Vec<Action> {
    (0..r.below(4)).map(|_| random_action(r, groups)).collect()
}

fn random_flow(r: &mut Rng, n_tables: u8) -> FlowMod {
    let table = r.below(n_tables as u64) as u8;
    let mut ins = Instructions::apply(random_actions(r, true));
    if r.chance(30) {
        ins = ins.with_write(random_actions(r, true));
    }
    if r.chance(20) {
        ins = ins.with_metadata(r.below(4), 3);
    }
    if r.chance(8) {
        ins = ins.with_meter(1 + r.below(2) as u32);
    }
    if table + 1 < n_tables && r.chance(50) {
        ins = ins.with_goto(table + 1 + r.below((n_tables - table - 1) as u64) as u8);
    }
    let mut fm = FlowMod::add(table, r.pick(&[0u16, 10, 10, 20, 30]), random_match(r), ins);
    fm.cookie = r.below(1000);
    fm
}

fn random_group(r: &mut Rng) -> GroupMod {
    let group_type = r.pick(&[
        GroupType::All,
        GroupType::Select,
        GroupType::Indirect,
        GroupType::FastFailover,
    ]);
    let n = match group_type {
        GroupType::Indirect => 1,
        _ => 1 + r.below(3) as usize,
    };
    let buckets = (0..n)
        .map(|_| {
            let actions = random_actions(r, false);
            match group_type {
                GroupType::Select => Bucket::weighted(1 + r.below(3) as u16, actions),
                GroupType::FastFailover => Bucket::watching(r.pick(&PORTS), actions),
                _ => Bucket::new(actions),
            }
        })
        .collect();
    GroupMod {
        command: GroupModCommand::Add,
        group_type,
        group_id: 1 + r.below(3) as u32,
        buckets,
    }
}

/// One bridge: pipeline, learning switch, and for the datapath side the cache.
struct Side {
    pipeline: Pipeline,
    normal: NormalSwitch,
}

fn counters(p: &Pipeline, now: u64) -> Vec<(u64, u64, u64, u16)> {
    let mut v: Vec<_> = p
        .entries(OFPTT_ALL)
        .map(|(_, e)| (e.packets.get(), e.bytes.get(), e.cookie, e.priority))
        .collect();
    for t in p.table_stats() {
        v.push((t.lookup_count, t.matched_count, t.table_id as u64, 0xfffd));
    }
    for g in p.groups().iter() {
        let s = p.group_stats(g.id, now).unwrap();
        v.push((s.packet_count, s.byte_count, g.id as u64, 0xffff));
        for (bp, bb) in s.buckets {
            v.push((bp, bb, g.id as u64, 0xfffe));
        }
    }
    v
}

/// The MAC table's entries as `fdb/show` lines, sorted.
fn fdb(n: &NormalSwitch, now: u64) -> Vec<String> {
    let mut v: Vec<String> = n.fdb_show(now).lines().map(String::from).collect();
    v.sort();
    v
}

/// A frame in a few words (for the `DP_DEBUG=1` listing of a failing batch).
fn brief(f: &[u8]) -> String {
    let mut s = format!("dst {:02x} src {:02x}", f[5], f[11]);
    let mut o = 12;
    if f[12] == 0x81 {
        s += &format!(" vlan {}", u16::from_be_bytes([f[14], f[15]]) & 0xfff);
        o = 16;
    }
    let et = u16::from_be_bytes([f[o], f[o + 1]]);
    if et == 0x800 {
        let ip = &f[o + 2..];
        s += &format!(
            " ip ttl {} proto {} {:?}->{:?}",
            ip[8],
            ip[9],
            &ip[12..16],
            &ip[16..20]
        );
    } else {
        s += &format!(" et {et:#x}");
    }
    s
}

/// An output in a few words.
fn brief_out(o: &Out) -> String {
    match o {
        Out::Port(p, q, f) => format!("port {p} q {q:?} {}", brief(f)),
        Out::Controller(r, t, c, _, _, f) => {
            format!("CTRL reason {r} table {t} cookie {c} {}", brief(f))
        }
    }
}

fn run_case(seed: u64, config: DatapathConfig, batches: usize) -> Result<(), TestCaseError> {
    let mut r = Rng(seed);
    let mut ports = PortTable::new();
    for &p in &PORTS {
        let mode = match p {
            3 => VlanMode::Access(10),
            4 => VlanMode::Trunk(VlanSet::from_vids(&[10, 20])),
            _ => VlanMode::default(),
        };
        ports
            .add(Port::new(p, "p", [2, 0, 0, 0, 9, p as u8]).with_vlan_mode(mode))
            .unwrap();
    }
    let n_tables = 1 + r.below(3) as u8;
    let pc = PipelineConfig {
        n_tables,
        miss_send_len: 128,
        invalid_ttl_to_controller: r.chance(50),
        table_miss_to_controller: r.chance(30),
    };
    let normal_cfg = NormalConfig {
        aging_ms: 4000,
        max_entries: 1000,
        forward_bpdu: false,
    };
    let mut a = Side {
        pipeline: Pipeline::new(pc),
        normal: NormalSwitch::new(normal_cfg),
    };
    let mut b = Side {
        pipeline: Pipeline::new(pc),
        normal: NormalSwitch::new(normal_cfg),
    };
    let mut dp = Datapath::new(config);
    let (mut meters_a, mut meters_b) = (EveryThird::default(), EveryThird::default());
    let mut now = 1000u64;

    let apply_change = |r: &mut Rng,
                        a: &mut Side,
                        b: &mut Side,
                        ports: &mut PortTable,
                        now: u64| {
        match r.below(10) {
            0..=4 => {
                let fm = random_flow(r, n_tables);
                let ra = a.pipeline.flow_mod(&fm, now).map(|v| v.len());
                let rb = b.pipeline.flow_mod(&fm, now).map(|v| v.len());
                assert_eq!(ra, rb);
            }
            5 => {
                let mut fm = FlowMod::delete(OFPTT_ALL, random_match(r));
                if r.chance(50) {
                    fm = fm.with_command(FlowModCommand::Delete);
                }
                let ra = a.pipeline.flow_mod(&fm, now).map(|v| v.len());
                let rb = b.pipeline.flow_mod(&fm, now).map(|v| v.len());
                assert_eq!(ra, rb);
            }
            6 => {
                let mut fm = random_flow(r, n_tables);
                fm.command = FlowModCommand::Modify;
                let ra = a.pipeline.flow_mod(&fm, now).map(|v| v.len());
                let rb = b.pipeline.flow_mod(&fm, now).map(|v| v.len());
                assert_eq!(ra, rb);
            }
            7 => {
                let mut gm = random_group(r);
                if a.pipeline.groups().contains(gm.group_id) {
                    gm.command = if r.chance(70) {
                        GroupModCommand::Modify
                    } else {
                        GroupModCommand::Delete
                    };
                }
                let ra = a.pipeline.group_mod(&gm, now).map(|v| v.len());
                let rb = b.pipeline.group_mod(&gm, now).map(|v| v.len());
                assert_eq!(ra, rb);
            }
            8 => {
                let p = r.pick(&PORTS);
                let up = r.chance(60);
                let _ = ports.set_link(p, up);
            }
            _ => {
                if r.chance(50) {
                    a.normal.mac_table_mut().flush_all();
                    b.normal.mac_table_mut().flush_all();
                } else {
                    a.normal.mac_table_mut().expire(now);
                    b.normal.mac_table_mut().expire(now);
                }
            }
        }
    };

    // Initial tables.
    for _ in 0..r.below(12) + 2 {
        let gm = random_group(&mut r);
        let _ = a.pipeline.group_mod(&gm, now);
        let _ = b.pipeline.group_mod(&gm, now);
    }
    for _ in 0..r.below(25) + 3 {
        let fm = random_flow(&mut r, n_tables);
        let _ = a.pipeline.flow_mod(&fm, now);
        let _ = b.pipeline.flow_mod(&fm, now);
    }
    if r.chance(50) {
        let fm = FlowMod::add(
            0,
            0,
            Match::new(),
            Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
        );
        let _ = a.pipeline.flow_mod(&fm, now);
        let _ = b.pipeline.flow_mod(&fm, now);
    }

    // A pool of frames so that flows repeat (the caches get hits).
    let pool: Vec<(PortNo, Vec<u8>)> = (0..r.below(24) + 4)
        .map(|_| (r.pick(&PORTS), random_frame(&mut r)))
        .collect();

    for batch in 0..batches {
        if batch > 0 && r.chance(30) {
            for _ in 0..1 + r.below(2) {
                apply_change(&mut r, &mut a, &mut b, &mut ports, now);
            }
        }
        now += r.pick(&[0u64, 1, 10, 500, 2500]);
        let in_port = r.pick(&PORTS);
        let n = 1 + r.below(40) as usize;
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                if r.chance(90) {
                    let (_, f) = &pool[r.below(pool.len() as u64) as usize];
                    f.clone()
                } else {
                    random_frame(&mut r)
                }
            })
            .collect();

        // The pipeline alone.
        let mut ra = Rec::default();
        {
            let mut env = Env {
                ports: &ports,
                normal: Some(&mut a.normal),
                meters: Some(&mut meters_a),
                now_ms: now,
            };
            for f in &frames {
                let mut key = FlowKey::ZERO;
                extract(f, in_port, &mut key);
                let mut frame = HeapFrame::new(f);
                let mut wc = FlowKey::ZERO;
                a.pipeline
                    .process(&mut env, &mut key, &mut frame, &mut wc, &mut ra);
            }
        }
        // The datapath.
        let mut rb = Rec::default();
        {
            let mut env = Env {
                ports: &ports,
                normal: Some(&mut b.normal),
                meters: Some(&mut meters_b),
                now_ms: now,
            };
            dp.process_batch(
                &mut b.pipeline,
                &mut env,
                in_port,
                frames.iter().map(|f| HeapFrame::new(f)),
                &mut rb,
            );
        }
        if ra.out != rb.out && std::env::var("DP_DEBUG").is_ok() {
            eprintln!("batch {batch} in_port {in_port} now {now} frames:");
            for f in &frames {
                eprintln!("  in {}", brief(f));
            }
            eprintln!("pipeline:");
            for o in &ra.out {
                eprintln!("  {}", brief_out(o));
            }
            eprintln!("datapath:");
            for o in &rb.out {
                eprintln!("  {}", brief_out(o));
            }
        }
        prop_assert_eq!(
            &ra.out,
            &rb.out,
            "batch {} in_port {} outputs differ\n{}\n{}",
            batch,
            in_port,
            dp.dump_flows(now),
            dp.show_stats()
        );
        prop_assert_eq!(
            counters(&a.pipeline, now),
            counters(&b.pipeline, now),
            "batch {} counters differ",
            batch
        );
        // The MAC tables (cache hits learn as the pipeline would; the LRU order among entries
        // seen in the same millisecond may differ, so the entries are compared sorted).
        prop_assert_eq!(
            fdb(&a.normal, now),
            fdb(&b.normal, now),
            "batch {} MAC tables differ",
            batch
        );
    }
    let s = dp.stats();
    if std::env::var("DP_STATS").is_ok() {
        eprintln!("{:?} masks {} flows {}", s, dp.n_masks(), dp.n_megaflows());
    }
    prop_assert!(s.packets >= s.emc_hits + s.megaflow_hits);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn datapath_equals_pipeline(seed in any::<u64>()) {
        run_case(seed, DatapathConfig::default(), 40)?;
    }

    #[test]
    fn datapath_equals_pipeline_small_caches(seed in any::<u64>()) {
        // Tiny limits: EMC always inserted, a handful of megaflows and masks, constant eviction
        // and mask widening.
        let config = DatapathConfig {
            emc_entries: 8,
            emc_insert_inv_prob: 1,
            max_megaflows: 4,
            max_masks_per_port: 2,
            resort_every: 16,
            ..DatapathConfig::default()
        };
        run_case(seed, config, 40)?;
    }
}

#[test]
fn frame_trait_is_used_by_reference() {
    // HeapFrame round trip, so the helpers above stay honest.
    let f = HeapFrame::new(&[1, 2, 3]);
    assert_eq!(f.data(), &[1, 2, 3]);
}
