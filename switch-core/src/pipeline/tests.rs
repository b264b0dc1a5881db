//! Pipeline unit tests: flow-mod semantics and errors, group-mod through the pipeline, expiry,
//! the packet path (instructions, action set, outputs, groups, TTL, meters, packet-out).

use super::*;
use crate::action::{Action, Instruction, OFPCML_NO_BUFFER, OFPG_ALL};
use crate::extract::extract;
use crate::flow::Field;
use crate::group::{Bucket, GroupType};
use crate::packet::HeapFrame;
use crate::port::{
    OFPP_ALL, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_TABLE, Port, PortConfig,
};
use alloc::vec;
use alloc::vec::Vec;

#[derive(Default)]
struct Rec {
    out: Vec<(PortNo, Option<u32>, Vec<u8>)>,
    pins: Vec<(PacketInReason, u8, u64, u16)>,
}

impl OutputSink for Rec {
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: &[u8]) {
        self.out.push((port, queue, frame.to_vec()));
    }
    fn controller(&mut self, p: &PacketIn<'_>) {
        self.pins.push((p.reason, p.table_id, p.cookie, p.max_len));
    }
}

impl Rec {
    fn ports(&self) -> Vec<PortNo> {
        self.out.iter().map(|o| o.0).collect()
    }
}

const MAC_A: u64 = 0x0200_0000_000a;
const MAC_B: u64 = 0x0200_0000_000b;

fn tcp_frame(src_ip: u32, dst_ip: u32, sport: u16, dport: u16, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B.to_be_bytes()[2..]);
    f.extend_from_slice(&MAC_A.to_be_bytes()[2..]);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = ttl;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src_ip.to_be_bytes());
    ip[16..20].copy_from_slice(&dst_ip.to_be_bytes());
    let mut sum = 0u32;
    for i in 0..10 {
        sum += u16::from_be_bytes([ip[2 * i], ip[2 * i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    f.extend_from_slice(&tcp);
    f
}

fn ports(n: u32) -> PortTable {
    let mut t = PortTable::new();
    for p in 1..=n {
        t.add(Port::new(p, "p", [2, 0, 0, 0, 0, p as u8])).unwrap();
    }
    t
}

struct Run {
    rec: Rec,
    outcome: Outcome,
    key: FlowKey,
    wc: FlowKey,
}

fn run(p: &mut Pipeline, pt: &PortTable, in_port: u32, bytes: &[u8]) -> Run {
    let mut env = Env::new(pt, 1000);
    run_env(p, &mut env, in_port, bytes)
}

fn run_env(p: &mut Pipeline, env: &mut Env<'_>, in_port: u32, bytes: &[u8]) -> Run {
    let mut key = FlowKey::ZERO;
    extract(bytes, in_port, &mut key);
    let mut frame = HeapFrame::new(bytes);
    let mut wc = FlowKey::ZERO;
    let mut rec = Rec::default();
    let outcome = p.process(env, &mut key, &mut frame, &mut wc, &mut rec);
    Run {
        rec,
        outcome,
        key,
        wc,
    }
}

fn ip_tcp() -> Match {
    Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6)
}

fn out(p: u32) -> Instructions {
    Instructions::apply(vec![Action::output(p)])
}

fn add(p: &mut Pipeline, table: u8, prio: u16, m: Match, i: Instructions) {
    p.flow_mod(&FlowMod::add(table, prio, m, i), 0).unwrap();
}

#[test]
fn flow_mod_decoding_errors() {
    assert_eq!(
        FlowModCommand::from_u8(5),
        Err(OfpError::FLOW_MOD_FAILED_BAD_COMMAND)
    );
    assert_eq!(FlowModCommand::from_u8(4), Ok(FlowModCommand::DeleteStrict));
    assert_eq!(
        flow_mod_flags(1 << 5),
        Err(OfpError::FLOW_MOD_FAILED_BAD_FLAGS)
    );
    assert_eq!(
        flow_mod_flags(5),
        Ok(FlowModFlags::SEND_FLOW_REM | FlowModFlags::RESET_COUNTS)
    );
}

#[test]
fn flow_mod_errors() {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 4,
        ..Default::default()
    });
    let e = |p: &mut Pipeline, fm: FlowMod| p.flow_mod(&fm, 0).unwrap_err();
    // Table ids.
    assert_eq!(
        e(&mut p, FlowMod::add(4, 1, Match::ANY, Instructions::drop())),
        OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(OFPTT_ALL, 1, Match::ANY, Instructions::drop())
        ),
        OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(OFPTT_ALL, 1, Match::ANY, Instructions::drop())
                .with_command(FlowModCommand::Modify)
        ),
        OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID
    );
    assert_eq!(
        e(&mut p, FlowMod::delete(9, Match::ANY)),
        OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID
    );
    assert_eq!(
        p.set_max_entries(4, 1),
        Err(OfpError::FLOW_MOD_FAILED_BAD_TABLE_ID)
    );
    // Match errors come through unchanged, for add, modify and delete.
    let bad = Match::new().with(Field::TcpDst, 80);
    assert_eq!(
        e(&mut p, FlowMod::add(0, 1, bad, Instructions::drop())),
        OfpError::BAD_MATCH_BAD_PREREQ
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(0, 1, bad, Instructions::drop())
                .with_command(FlowModCommand::ModifyStrict)
        ),
        OfpError::BAD_MATCH_BAD_PREREQ
    );
    assert_eq!(
        e(&mut p, FlowMod::delete(0, bad)),
        OfpError::BAD_MATCH_BAD_PREREQ
    );
    // Instruction and action errors.
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(3, 1, Match::ANY, Instructions::drop().with_goto(3))
        ),
        OfpError::BAD_INSTRUCTION_BAD_TABLE_ID
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(0, 1, Match::ANY, Instructions::drop().with_goto(4))
        ),
        OfpError::BAD_INSTRUCTION_BAD_TABLE_ID
    );
    assert_eq!(
        e(&mut p, FlowMod::add(0, 1, Match::ANY, out(OFPP_TABLE))),
        OfpError::BAD_ACTION_BAD_OUT_PORT
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(
                0,
                1,
                Match::ANY,
                Instructions::apply(vec![Action::Group(5)])
            )
        ),
        OfpError::BAD_ACTION_BAD_OUT_GROUP
    );
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(0, 1, Match::ANY, Instructions::drop().with_meter(0))
        ),
        OfpError::METER_MOD_FAILED_INVALID_METER
    );
    let i = Instructions::from_list(vec![
        Instruction::GotoTable(1),
        Instruction::Experimenter(1),
    ]);
    assert_eq!(i, Err(OfpError::BAD_INSTRUCTION_UNSUP_INST));
    // Table full.
    p.set_max_entries(1, 2).unwrap();
    for port in 1..=2 {
        add(&mut p, 1, 1, Match::new().with(Field::InPort, port), out(3));
    }
    assert_eq!(
        e(
            &mut p,
            FlowMod::add(1, 1, Match::new().with(Field::InPort, 3), out(3))
        ),
        OfpError::FLOW_MOD_FAILED_TABLE_FULL
    );
    // ... but replacing an existing entry still works in a full table.
    assert!(
        p.flow_mod(
            &FlowMod::add(1, 1, Match::new().with(Field::InPort, 2), out(4)),
            0
        )
        .is_ok()
    );
    // Overlap.
    let ov = FlowMod::add(1, 1, Match::new().with(Field::EthType, 0x0800), out(3))
        .with_flags(FlowModFlags::CHECK_OVERLAP);
    assert_eq!(e(&mut p, ov.clone()), OfpError::FLOW_MOD_FAILED_OVERLAP);
    // A different priority does not overlap.
    let mut ov2 = ov;
    ov2.priority = 2;
    p.set_max_entries(1, 10).unwrap();
    assert!(p.flow_mod(&ov2, 0).is_ok());
}

#[test]
fn add_replaces_identical_entries_keeping_counters_unless_reset() {
    let pt = ports(3);
    let mut p = Pipeline::default();
    let m = Match::new().with(Field::InPort, 1);
    add(&mut p, 0, 5, m, out(2));
    let f = tcp_frame(1, 2, 3, 4, 64);
    run(&mut p, &pt, 1, &f);
    run(&mut p, &pt, 1, &f);
    let g = p.generation();
    p.flow_mod(&FlowMod::add(0, 5, m, out(3)).with_cookie(7), 0)
        .unwrap();
    assert_ne!(p.generation(), g);
    assert_eq!(p.table(0).unwrap().len(), 1);
    let (_, e) = p.entries(0).next().unwrap();
    assert_eq!(
        (e.packets.get(), e.bytes.get(), e.cookie),
        (2, 2 * f.len() as u64, 7)
    );
    assert_eq!(run(&mut p, &pt, 1, &f).rec.ports(), vec![3]);
    p.flow_mod(
        &FlowMod::add(0, 5, m, out(2)).with_flags(FlowModFlags::RESET_COUNTS),
        0,
    )
    .unwrap();
    let (_, e) = p.entries(0).next().unwrap();
    assert_eq!(e.packets.get(), 0);
}

#[test]
fn modify_and_modify_strict() {
    let pt = ports(4);
    let mut p = Pipeline::default();
    let m1 = ip_tcp().with(Field::TcpDst, 80);
    let m2 = ip_tcp().with(Field::TcpDst, 22);
    p.flow_mod(&FlowMod::add(0, 10, m1, out(2)).with_cookie(0x11), 0)
        .unwrap();
    p.flow_mod(&FlowMod::add(0, 20, m2, out(2)).with_cookie(0x22), 0)
        .unwrap();
    add(&mut p, 0, 1, Match::ANY, out(4));
    // Non-strict modify of everything TCP with cookie 0x1?: only m1.
    let mut fm = FlowMod::add(0, 0, ip_tcp(), out(3)).with_command(FlowModCommand::Modify);
    fm.cookie = 0x10;
    fm.cookie_mask = 0xf0;
    p.flow_mod(&fm, 0).unwrap();
    let to = |p: &mut Pipeline, dport| run(p, &pt, 1, &tcp_frame(1, 2, 3, dport, 64)).rec.ports();
    assert_eq!(to(&mut p, 80), vec![3]);
    assert_eq!(to(&mut p, 22), vec![2]);
    // Strict modify needs the exact priority.
    let mut fm = FlowMod::add(0, 19, m2, out(1)).with_command(FlowModCommand::ModifyStrict);
    p.flow_mod(&fm, 0).unwrap();
    assert_eq!(to(&mut p, 22), vec![2]);
    fm.priority = 20;
    p.flow_mod(&fm, 0).unwrap();
    assert_eq!(
        to(&mut p, 22),
        Vec::<u32>::new(),
        "output to the input port is dropped"
    );
    // Modify with RESET_COUNTS clears counters; modify never adds.
    let n = p.table(0).unwrap().len();
    let fm = FlowMod::add(0, 7, ip_tcp().with(Field::TcpDst, 9), out(1))
        .with_command(FlowModCommand::Modify);
    p.flow_mod(&fm, 0).unwrap();
    assert_eq!(p.table(0).unwrap().len(), n);
    let fm = FlowMod::add(0, 0, Match::ANY, out(4))
        .with_command(FlowModCommand::Modify)
        .with_flags(FlowModFlags::RESET_COUNTS);
    p.flow_mod(&fm, 0).unwrap();
    assert!(p.entries(0).all(|(_, e)| e.packets.get() == 0));
}

#[test]
fn delete_filters_and_flow_removed() {
    let mut p = Pipeline::default();
    add(&mut p, 1, 1, Match::ANY, Instructions::drop());
    p.flow_mod(
        &FlowMod::add(0, 10, Match::new().with(Field::InPort, 1), out(2))
            .with_cookie(1)
            .with_flags(FlowModFlags::SEND_FLOW_REM),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(0, 10, Match::new().with(Field::InPort, 2), out(3)).with_cookie(2),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(
            0,
            11,
            Match::new().with(Field::InPort, 2),
            Instructions::drop().with_write(vec![Action::output(3)]),
        ),
        0,
    )
    .unwrap();
    // out_port filter: only entries outputting to 3 (apply or write).
    let mut fm = FlowMod::delete(0, Match::ANY);
    fm.out_port = 3;
    fm.cookie = 2;
    fm.cookie_mask = u64::MAX;
    let r = p.flow_mod(&fm, 5000).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].cookie, 2);
    assert_eq!(r[0].reason, RemovedReason::Delete);
    assert!(!r[0].notify);
    // Strict delete needs priority + match.
    let mut fm = FlowMod::delete(0, Match::new().with(Field::InPort, 1))
        .with_command(FlowModCommand::DeleteStrict);
    fm.priority = 9;
    assert!(p.flow_mod(&fm, 0).unwrap().is_empty());
    fm.priority = 10;
    let r = p.flow_mod(&fm, 7000).unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].notify);
    assert_eq!(r[0].duration_ms, 7000);
    assert_eq!(r[0].match_, Match::new().with(Field::InPort, 1));
    // Delete everything everywhere.
    let r = p
        .flow_mod(&FlowMod::delete(OFPTT_ALL, Match::ANY), 0)
        .unwrap();
    assert_eq!(r.len(), 2);
    assert!(p.entries(OFPTT_ALL).next().is_none());
}

#[test]
fn group_mod_through_pipeline_deletes_flows_using_the_group() {
    let mut p = Pipeline::default();
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![Bucket::new(vec![Action::output(2)])],
    };
    p.group_mod(&gm, 0).unwrap();
    assert_eq!(
        p.group_mod(&gm, 0),
        Err(OfpError::GROUP_MOD_FAILED_GROUP_EXISTS)
    );
    let mut gm2 = gm.clone();
    gm2.group_id = 2;
    gm2.buckets = vec![Bucket::new(vec![Action::Group(1)])];
    p.group_mod(&gm2, 0).unwrap();
    p.flow_mod(
        &FlowMod::add(
            0,
            1,
            Match::ANY,
            Instructions::apply(vec![Action::Group(1)]),
        )
        .with_flags(FlowModFlags::SEND_FLOW_REM),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(
            0,
            2,
            Match::new().with(Field::InPort, 1),
            Instructions::drop().with_write(vec![Action::Group(2)]),
        ),
        0,
    )
    .unwrap();
    assert_eq!(
        p.group_stats(1, 0).unwrap().ref_count,
        2,
        "a flow and group 2's bucket"
    );
    // out_group filter on delete.
    let mut fm = FlowMod::delete(0, Match::ANY);
    fm.out_group = 2;
    let mut fm_dry = fm.clone();
    fm_dry.out_group = 3;
    assert!(p.flow_mod(&fm_dry, 0).unwrap().is_empty());
    let del = GroupMod {
        command: GroupModCommand::Delete,
        ..gm.clone()
    };
    assert_eq!(
        p.group_mod(&del, 0),
        Err(OfpError::GROUP_MOD_FAILED_CHAINED_GROUP)
    );
    let del_all = GroupMod {
        command: GroupModCommand::Delete,
        group_id: OFPG_ALL,
        ..gm.clone()
    };
    let r = p.group_mod(&del_all, 3000).unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|f| f.reason == RemovedReason::GroupDelete));
    assert!(p.groups().is_empty());
    assert_eq!(p.table(0).unwrap().len(), 0);
    let modify = GroupMod {
        command: GroupModCommand::Modify,
        ..gm
    };
    assert_eq!(
        p.group_mod(&modify, 0),
        Err(OfpError::GROUP_MOD_FAILED_UNKNOWN_GROUP)
    );
}

#[test]
fn expiry_idle_and_hard() {
    let pt = ports(2);
    let mut p = Pipeline::default();
    p.flow_mod(
        &FlowMod::add(0, 1, Match::new().with(Field::InPort, 1), out(2))
            .with_timeouts(10, 0)
            .with_flags(FlowModFlags::SEND_FLOW_REM),
        0,
    )
    .unwrap();
    let hard = p
        .add_flow_entry(
            &FlowMod::add(0, 1, Match::new().with(Field::InPort, 2), out(1)).with_timeouts(0, 20),
            0,
        )
        .unwrap();
    let f = tcp_frame(1, 2, 3, 4, 64);
    let mut env = Env::new(&pt, 8000);
    run_env(&mut p, &mut env, 1, &f);
    assert!(p.expire(17_999).is_empty());
    // The cache credits a hit to the hard-timeout entry: counters grow, hard timeout stays.
    assert!(p.credit(hard, 3, 300, 19_000));
    let r = p.expire(18_000);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reason, RemovedReason::IdleTimeout);
    assert_eq!((r[0].packet_count, r[0].byte_count), (1, f.len() as u64));
    let r = p.expire(20_000);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reason, RemovedReason::HardTimeout);
    assert_eq!((r[0].packet_count, r[0].byte_count), (3, 300));
    assert!(!p.credit(hard, 1, 1, 0), "stale handle");
    assert!(p.entry(hard).is_none());
}

#[test]
fn instructions_and_action_set() {
    let pt = ports(4);
    let mut p = Pipeline::default();
    // Table 0: write output:2 and metadata, goto 1. Table 1: on metadata, set queue via write,
    // rewrite eth_dst via apply, then the set's output runs.
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 1),
        Instructions::drop()
            .with_write(vec![Action::output(2), Action::SetQueue(7)])
            .with_metadata(0xab, 0xff)
            .with_goto(1),
    );
    add(
        &mut p,
        1,
        1,
        Match::new().with(Field::Metadata, 0xab),
        Instructions::apply(vec![Action::set_field(
            Field::EthDst,
            0x0000_1111_2222_3333,
        )]),
    );
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 64));
    assert_eq!(r.rec.out.len(), 1);
    assert_eq!(r.rec.out[0].0, 2);
    assert_eq!(r.rec.out[0].1, Some(7));
    assert_eq!(&r.rec.out[0].2[..6], &[0x11, 0x11, 0x22, 0x22, 0x33, 0x33]);
    assert_eq!(r.key.get(Field::Metadata), 0xab);
    assert_eq!(r.key.get(Field::EthDst), 0x1111_2222_3333);
    assert_eq!(r.outcome.entries.len(), 2);
    // Clear-Actions in table 1 empties the set: nothing goes out.
    add(
        &mut p,
        1,
        2,
        Match::new().with(Field::Metadata, 0xab),
        Instructions::drop().with_clear(),
    );
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 64));
    assert!(r.rec.out.is_empty());
    // No entry in table 0 for in_port 3: dropped, counted as a lookup without match.
    let r = run(&mut p, &pt, 3, &tcp_frame(1, 2, 3, 4, 64));
    assert!(r.outcome.table_miss_drop);
    let s = p.table_stats();
    assert_eq!((s[0].lookup_count, s[0].matched_count), (3, 2));
    assert_eq!((s[1].lookup_count, s[1].matched_count), (2, 2));
}

#[test]
fn reserved_ports_and_table_miss_controller() {
    let mut pt = ports(4);
    pt.mod_config(4, PortConfig::NO_FLOOD, PortConfig::NO_FLOOD)
        .unwrap();
    let mut p = Pipeline::default();
    add(
        &mut p,
        0,
        10,
        Match::new().with(Field::InPort, 1),
        out(OFPP_FLOOD),
    );
    add(
        &mut p,
        0,
        10,
        Match::new().with(Field::InPort, 2),
        out(OFPP_ALL),
    );
    add(
        &mut p,
        0,
        10,
        Match::new().with(Field::InPort, 3),
        out(OFPP_IN_PORT),
    );
    add(
        &mut p,
        0,
        10,
        Match::new().with(Field::InPort, 4),
        Instructions::apply(vec![
            Action::Output {
                port: OFPP_CONTROLLER,
                max_len: 64,
            },
            Action::output(OFPP_LOCAL),
            Action::output(9),
        ]),
    );
    p.flow_mod(
        &FlowMod::add(0, 0, Match::ANY, out(OFPP_CONTROLLER)).with_cookie(0xc),
        0,
    )
    .unwrap();
    let f = tcp_frame(1, 2, 3, 4, 64);
    assert_eq!(run(&mut p, &pt, 1, &f).rec.ports(), vec![2, 3]);
    assert_eq!(run(&mut p, &pt, 2, &f).rec.ports(), vec![1, 3, 4]);
    assert_eq!(run(&mut p, &pt, 3, &f).rec.ports(), vec![3]);
    let r = run(&mut p, &pt, 4, &f);
    assert_eq!(r.rec.pins, vec![(PacketInReason::Action, 0, 0, 64)]);
    assert!(
        r.rec.out.is_empty(),
        "LOCAL and 9 are not in the port table"
    );
    let r = run(&mut p, &pt, 5, &f);
    assert_eq!(
        r.rec.pins,
        vec![(PacketInReason::NoMatch, 0, 0xc, OFPCML_NO_BUFFER)]
    );
    assert!(r.wc.get(Field::InPort) != 0);
    // A port that cannot forward gets nothing.
    pt.mod_config(2, PortConfig::NO_FWD, PortConfig::NO_FWD)
        .unwrap();
    assert_eq!(run(&mut p, &pt, 1, &f).rec.ports(), vec![3]);
}

#[test]
fn ttl_expiry_drops_or_goes_to_controller() {
    let pt = ports(2);
    let mut p = Pipeline::default();
    add(
        &mut p,
        0,
        1,
        ip_tcp(),
        Instructions::apply(vec![Action::DecNwTtl, Action::output(2)]),
    );
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 64));
    assert_eq!(r.rec.ports(), vec![2]);
    assert_eq!(r.rec.out[0].2[14 + 8], 63);
    // The IPv4 checksum stays valid.
    let ip = &r.rec.out[0].2[14..34];
    let mut sum = 0u32;
    for i in 0..10 {
        sum += u16::from_be_bytes([ip[2 * i], ip[2 * i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 1));
    assert!(r.rec.out.is_empty() && r.rec.pins.is_empty());
    assert!(r.outcome.ttl_expired);
    p.set_invalid_ttl_to_controller(true, 96);
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 1));
    assert_eq!(r.rec.pins, vec![(PacketInReason::InvalidTtl, 0, 0, 96)]);
    // set TTL.
    add(
        &mut p,
        0,
        2,
        ip_tcp(),
        Instructions::apply(vec![Action::SetNwTtl(9), Action::output(2)]),
    );
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 1));
    assert_eq!(r.rec.out[0].2[14 + 8], 9);
}

struct DropMeter(u32);

impl MeterHook for DropMeter {
    fn meter(&mut self, meter_id: u32, _: usize, _: u64) -> bool {
        meter_id != self.0
    }
}

#[test]
fn meter_hook_decides() {
    let pt = ports(2);
    let mut p = Pipeline::default();
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 1),
        out(2).with_meter(5),
    );
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 2),
        out(1).with_meter(6),
    );
    let mut m = DropMeter(5);
    let mut env = Env {
        ports: &pt,
        normal: None,
        meters: Some(&mut m),
        now_ms: 0,
    };
    let f = tcp_frame(1, 2, 3, 4, 64);
    let r = run_env(&mut p, &mut env, 1, &f);
    assert!(r.outcome.metered && r.rec.out.is_empty());
    let r = run_env(&mut p, &mut env, 2, &f);
    assert_eq!(r.rec.ports(), vec![1]);
}

#[test]
fn groups_work_on_copies_and_count() {
    let pt = ports(4);
    let mut p = Pipeline::default();
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![
            Bucket::new(vec![
                Action::set_field(Field::EthDst, 0x22),
                Action::output(2),
            ]),
            Bucket::new(vec![
                Action::set_field(Field::EthDst, 0x33),
                Action::output(3),
            ]),
        ],
    };
    p.group_mod(&gm, 0).unwrap();
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 1),
        Instructions::apply(vec![Action::Group(1), Action::output(4)]),
    );
    let f = tcp_frame(1, 2, 3, 4, 64);
    let r = run(&mut p, &pt, 1, &f);
    assert_eq!(r.rec.ports(), vec![2, 3, 4]);
    assert_eq!(r.rec.out[0].2[5], 0x22);
    assert_eq!(r.rec.out[1].2[5], 0x33);
    assert_eq!(r.rec.out[2].2, f, "the packet after the group is unchanged");
    assert_eq!(r.key.get(Field::EthDst), MAC_B as u128);
    let s = p.group_stats(1, 0).unwrap();
    assert_eq!(s.packet_count, 1);
    assert_eq!(s.buckets, vec![(1, f.len() as u64), (1, f.len() as u64)]);
    // In the action set the group runs last, on the packet itself.
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 2),
        Instructions::drop().with_write(vec![Action::Group(1), Action::output(4)]),
    );
    let r = run(&mut p, &pt, 2, &f);
    assert_eq!(
        r.rec.ports(),
        vec![3],
        "output is ignored when the set has a group; 2 is in_port"
    );
}

#[test]
fn packet_out() {
    let pt = ports(3);
    let mut p = Pipeline::default();
    add(&mut p, 0, 1, Match::new().with(Field::InPort, 1), out(3));
    let f = tcp_frame(1, 2, 3, 4, 64);
    let mut key = FlowKey::ZERO;
    extract(&f, 1, &mut key);
    let mut frame = HeapFrame::new(&f);
    let mut rec = Rec::default();
    let mut env = Env::new(&pt, 0);
    let o = p
        .packet_out(
            &mut env,
            &mut key,
            &mut frame,
            &[Action::output(2), Action::output(OFPP_TABLE)],
            &mut rec,
        )
        .unwrap();
    assert_eq!(rec.ports(), vec![2, 3]);
    assert_eq!(o.outputs, 2);
    assert_eq!(
        p.packet_out(
            &mut env,
            &mut key,
            &mut frame,
            &[Action::output(0)],
            &mut rec
        ),
        Err(OfpError::BAD_ACTION_BAD_OUT_PORT)
    );
}

#[test]
fn vlan_push_pop_and_consulted_bits() {
    let pt = ports(3);
    let mut p = Pipeline::default();
    add(
        &mut p,
        0,
        1,
        Match::new().with(Field::InPort, 1),
        Instructions::apply(vec![
            Action::PushVlan(0x8100),
            Action::set_field(Field::VlanVid, 0x1000 | 42),
            Action::output(2),
        ])
        .with_goto(1),
    );
    add(
        &mut p,
        1,
        1,
        Match::new().with(Field::VlanVid, 0x1000 | 42),
        Instructions::apply(vec![Action::PopVlan, Action::output(3)]),
    );
    let f = tcp_frame(1, 2, 3, 4, 64);
    let r = run(&mut p, &pt, 1, &f);
    assert_eq!(r.rec.ports(), vec![2, 3]);
    let tagged = &r.rec.out[0].2;
    assert_eq!(tagged.len(), f.len() + 4);
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 42]);
    assert_eq!(r.rec.out[1].2, f);
    // wc: in_port from table 0, vlan from table 1 (and push_vlan).
    assert_eq!(r.wc.get(Field::InPort), 0xffff_ffff);
    assert_eq!(r.wc.get(Field::VlanVid), 0x1fff);
    assert_eq!(r.wc.get(Field::Ipv4Src), 0);
}

#[test]
fn work_per_packet_is_bounded() {
    // A chain of all-groups, each with 8 buckets to the next: 8^7 copies without a bound.
    let pt = ports(2);
    let mut p = Pipeline::default();
    p.group_mod(
        &GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: 1,
            buckets: vec![Bucket::new(vec![Action::output(2)])],
        },
        0,
    )
    .unwrap();
    for id in 2..=8u32 {
        p.group_mod(
            &GroupMod {
                command: GroupModCommand::Add,
                group_type: GroupType::All,
                group_id: id,
                buckets: vec![Bucket::new(vec![Action::Group(id - 1)]); 8],
            },
            0,
        )
        .unwrap();
    }
    add(
        &mut p,
        0,
        1,
        Match::ANY,
        Instructions::apply(vec![Action::Group(8)]),
    );
    let r = run(&mut p, &pt, 1, &tcp_frame(1, 2, 3, 4, 64));
    assert!(r.outcome.work_exceeded);
    assert!(r.rec.out.len() < exec::MAX_WORK as usize);
    assert!(!r.rec.out.is_empty());
}

#[test]
fn select_entries_for_flow_stats() {
    let mut p = Pipeline::default();
    add(&mut p, 0, 5, Match::new().with(Field::InPort, 1), out(2));
    add(
        &mut p,
        1,
        5,
        Match::new()
            .with(Field::InPort, 1)
            .with(Field::EthType, 0x0800),
        out(3),
    );
    add(&mut p, 1, 6, Match::new().with(Field::InPort, 2), out(3));
    let f = FlowMod::delete(OFPTT_ALL, Match::new().with(Field::InPort, 1));
    assert_eq!(p.select_entries(&f).count(), 2);
    let mut f = FlowMod::delete(OFPTT_ALL, Match::ANY);
    f.out_port = 3;
    assert_eq!(p.select_entries(&f).count(), 2);
    let mut f = FlowMod::delete(1, Match::new().with(Field::InPort, 2))
        .with_command(FlowModCommand::DeleteStrict);
    f.priority = 6;
    let v: Vec<_> = p.select_entries(&f).collect();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0.table_id, 1);
    assert_eq!(p.entry(v[0].0).map(|e| e.priority), Some(6));
}

#[test]
fn strict_identity_is_semantic() {
    // A field present with an all-zero mask is the same match as the field absent.
    let mut p = Pipeline::default();
    add(&mut p, 0, 7, Match::new().with(Field::InPort, 1), out(2));
    let m = Match::new()
        .with(Field::InPort, 1)
        .with_masked(Field::EthDst, 0, 0);
    let mut fm = FlowMod::delete(0, m).with_command(FlowModCommand::DeleteStrict);
    fm.priority = 7;
    assert_eq!(p.flow_mod(&fm, 0).unwrap().len(), 1);
    // And an add with that spelling replaces instead of duplicating.
    add(&mut p, 0, 7, Match::new().with(Field::InPort, 1), out(2));
    add(&mut p, 0, 7, m, out(3));
    assert_eq!(p.table(0).unwrap().len(), 1);
}
