//! Every OpenFlow error the pipeline can answer a controller with, each triggered through the
//! public API as a controller's message would be (flow-mod, group-mod, packet-out and their
//! decoding helpers), and a check that a failed request changes nothing.

use std::collections::BTreeSet;

use switch_core::action::{Action, Instruction, Instructions};
use switch_core::error::OfpError;
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::flow_match::{Match, OFPXMC_OPENFLOW_BASIC};
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType, MAX_GROUP_CHAIN};
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{
    Env, FlowMod, FlowModCommand, OutputSink, PacketIn, Pipeline, PipelineConfig, flow_mod_flags,
};
use switch_core::port::{OFPP_ANY, PortTable};
use switch_core::table::FlowModFlags;

/// A controller request run against a pipeline.
type Request = Box<dyn Fn(&mut Pipeline) -> Result<(), OfpError>>;

struct Nowhere;
impl OutputSink for Nowhere {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

fn pipeline() -> Pipeline {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 4,
        ..Default::default()
    });
    p.set_max_entries(3, 1).unwrap();
    p.flow_mod(&FlowMod::add(3, 1, Match::ANY, Instructions::drop()), 0)
        .unwrap();
    p.flow_mod(
        &FlowMod::add(
            2,
            5,
            Match::new().with(Field::InPort, 1),
            Instructions::drop(),
        ),
        0,
    )
    .unwrap();
    p.set_group_limits(4, 2);
    let g = |id, buckets| GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: id,
        buckets,
    };
    p.group_mod(&g(1, vec![Bucket::new(vec![Action::output(1)])]), 0)
        .unwrap();
    p.group_mod(&g(2, vec![Bucket::new(vec![Action::Group(1)])]), 0)
        .unwrap();
    p
}

fn fm(m: Match, i: Instructions) -> FlowMod {
    FlowMod::add(0, 10, m, i)
}

fn apply(a: Vec<Action>) -> Instructions {
    Instructions::apply(a)
}

fn gm(command: GroupModCommand, group_type: GroupType, id: u32, buckets: Vec<Bucket>) -> GroupMod {
    GroupMod {
        command,
        group_type,
        group_id: id,
        buckets,
    }
}

fn ip() -> Match {
    Match::new().with(Field::EthType, 0x0800)
}

#[test]
fn every_error_the_pipeline_answers_with() {
    use GroupModCommand::{Add, Delete, Modify};
    use GroupType::{All, FastFailover, Indirect, Select};
    let out1 = || vec![Action::output(1)];
    let mut cases: Vec<(&str, Request, OfpError)> = vec![];
    macro_rules! case {
        ($what:expr, $err:ident, $f:expr) => {
            cases.push(($what, Box::new($f), OfpError::$err));
        };
    }
    let flow = |f: FlowMod| move |p: &mut Pipeline| p.flow_mod(&f, 0).map(drop);
    let group = |g: GroupMod| move |p: &mut Pipeline| p.group_mod(&g, 0).map(drop);
    let mut oxm = Match::new();
    oxm.set_oxm(OFPXMC_OPENFLOW_BASIC, 36, 1, None);

    // Matches.
    case!(
        "tcp_dst without ip_proto",
        BAD_MATCH_BAD_PREREQ,
        flow(fm(ip().with(Field::TcpDst, 22), Instructions::drop()))
    );
    case!(
        "OXM field ironflow does not know",
        BAD_MATCH_BAD_FIELD,
        flow(fm(oxm, Instructions::drop()))
    );
    case!(
        "dscp 64",
        BAD_MATCH_BAD_VALUE,
        flow(fm(ip().with(Field::IpDscp, 64), Instructions::drop()))
    );
    case!(
        "mask on eth_type",
        BAD_MATCH_BAD_MASK,
        flow(fm(
            Match::new().with_masked(Field::EthType, 0x800, 0xf00),
            Instructions::drop()
        ))
    );
    case!(
        "value bits outside mask",
        BAD_MATCH_BAD_WILDCARDS,
        flow(fm(
            Match::new().with_masked(Field::EthSrc, 3, 1),
            Instructions::drop()
        ))
    );
    case!(
        "field twice",
        BAD_MATCH_DUP_FIELD,
        flow(fm(
            Match::new().with(Field::InPort, 1).with(Field::InPort, 2),
            Instructions::drop()
        ))
    );
    // Instructions.
    case!(
        "goto backwards",
        BAD_INSTRUCTION_BAD_TABLE_ID,
        flow(FlowMod::add(
            2,
            1,
            Match::ANY,
            Instructions::drop().with_goto(1)
        ))
    );
    case!("same instruction twice", BAD_INSTRUCTION_DUP_INST, |_| {
        Instructions::from_list(vec![Instruction::GotoTable(1), Instruction::GotoTable(2)])
            .map(drop)
    });
    case!(
        "experimenter instruction",
        BAD_INSTRUCTION_UNSUP_INST,
        |_| Instructions::from_list(vec![Instruction::Experimenter(0x2320)]).map(drop)
    );
    case!(
        "undefined instruction",
        BAD_INSTRUCTION_UNKNOWN_INST,
        |_| Instructions::from_list(vec![Instruction::Unknown(99)]).map(drop)
    );
    case!(
        "meter 0",
        METER_MOD_FAILED_INVALID_METER,
        flow(fm(Match::ANY, Instructions::drop().with_meter(0)))
    );
    // Actions.
    case!(
        "output to port 0",
        BAD_ACTION_BAD_OUT_PORT,
        flow(fm(Match::ANY, apply(vec![Action::output(0)])))
    );
    case!(
        "group that does not exist",
        BAD_ACTION_BAD_OUT_GROUP,
        flow(fm(Match::ANY, apply(vec![Action::Group(9)])))
    );
    case!(
        "push_vlan with ethertype 0x0800",
        BAD_ACTION_BAD_ARGUMENT,
        flow(fm(Match::ANY, apply(vec![Action::PushVlan(0x0800)])))
    );
    case!(
        "set_field on in_port",
        BAD_ACTION_BAD_SET_TYPE,
        flow(fm(
            Match::ANY,
            apply(vec![Action::set_field(Field::InPort, 2)])
        ))
    );
    case!(
        "set_field value too wide",
        BAD_ACTION_BAD_SET_ARGUMENT,
        flow(fm(ip(), apply(vec![Action::set_field(Field::IpDscp, 99)])))
    );
    case!(
        "set nw_dst on a non-IP match",
        BAD_ACTION_MATCH_INCONSISTENT,
        flow(fm(
            Match::ANY,
            apply(vec![Action::set_field(Field::Ipv4Dst, 1)])
        ))
    );
    case!(
        "300 actions",
        BAD_ACTION_TOO_MANY,
        flow(fm(Match::ANY, apply(vec![Action::SetQueue(1); 300])))
    );
    case!(
        "packet-out to ANY",
        BAD_ACTION_BAD_OUT_PORT,
        |p: &mut Pipeline| {
            let ports = PortTable::new();
            let mut env = Env::new(&ports, 0);
            let mut key = FlowKey::ZERO;
            extract(&[0u8; 60], 1, &mut key);
            p.packet_out(
                &mut env,
                &mut key,
                &mut HeapFrame::new(&[0u8; 60]),
                &[Action::output(OFPP_ANY)],
                &mut Nowhere,
            )
            .map(drop)
        }
    );
    // Flow-mods.
    case!("command 9", FLOW_MOD_FAILED_BAD_COMMAND, |_| {
        FlowModCommand::from_u8(9).map(drop)
    });
    case!("flag bit 7", FLOW_MOD_FAILED_BAD_FLAGS, |_| flow_mod_flags(
        0x80
    )
    .map(drop));
    case!(
        "table 4 of 4",
        FLOW_MOD_FAILED_BAD_TABLE_ID,
        flow(FlowMod::add(4, 1, Match::ANY, Instructions::drop()))
    );
    case!(
        "table 3 is full",
        FLOW_MOD_FAILED_TABLE_FULL,
        flow(FlowMod::add(3, 2, Match::ANY, Instructions::drop()))
    );
    case!(
        "overlap",
        FLOW_MOD_FAILED_OVERLAP,
        flow(
            FlowMod::add(2, 5, Match::ANY, Instructions::drop())
                .with_flags(FlowModFlags::CHECK_OVERLAP)
        )
    );
    // Group-mods.
    case!(
        "group 1 again",
        GROUP_MOD_FAILED_GROUP_EXISTS,
        group(gm(Add, All, 1, vec![]))
    );
    case!(
        "group id ANY",
        GROUP_MOD_FAILED_INVALID_GROUP,
        group(gm(Add, All, 0xffff_ffff, vec![]))
    );
    case!(
        "weight in an all-group",
        GROUP_MOD_FAILED_WEIGHT_UNSUPPORTED,
        group(gm(Add, All, 5, vec![Bucket::weighted(2, out1())]))
    );
    case!(
        "fifth group",
        GROUP_MOD_FAILED_OUT_OF_GROUPS,
        |p: &mut Pipeline| {
            for id in 10..12 {
                p.group_mod(&gm(Add, All, id, vec![]), 0)?;
            }
            p.group_mod(&gm(Add, All, 12, vec![]), 0).map(drop)
        }
    );
    case!(
        "three buckets, limit two",
        GROUP_MOD_FAILED_OUT_OF_BUCKETS,
        group(gm(Add, All, 5, vec![Bucket::new(out1()); 3]))
    );
    case!(
        "chain deeper than the limit",
        GROUP_MOD_FAILED_CHAINING_UNSUPPORTED,
        |p: &mut Pipeline| {
            p.set_group_limits(100, 2);
            for id in 3..=MAX_GROUP_CHAIN as u32 {
                p.group_mod(
                    &gm(Add, All, id, vec![Bucket::new(vec![Action::Group(id - 1)])]),
                    0,
                )?;
            }
            let id = MAX_GROUP_CHAIN as u32 + 1;
            p.group_mod(
                &gm(Add, All, id, vec![Bucket::new(vec![Action::Group(id - 1)])]),
                0,
            )
            .map(drop)
        }
    );
    case!(
        "watch port in an all-group",
        GROUP_MOD_FAILED_WATCH_UNSUPPORTED,
        group(gm(Add, All, 5, vec![Bucket::watching(1, out1())]))
    );
    case!(
        "group 1 sending to group 2 which sends to 1",
        GROUP_MOD_FAILED_LOOP,
        group(gm(
            Modify,
            All,
            1,
            vec![Bucket::new(vec![Action::Group(2)])]
        ))
    );
    case!(
        "modify group 7",
        GROUP_MOD_FAILED_UNKNOWN_GROUP,
        group(gm(Modify, Select, 7, vec![]))
    );
    case!(
        "delete group 1 while 2 chains to it",
        GROUP_MOD_FAILED_CHAINED_GROUP,
        group(gm(Delete, All, 1, vec![]))
    );
    case!("group type 7", GROUP_MOD_FAILED_BAD_TYPE, |_| {
        GroupType::from_u8(7).map(drop)
    });
    case!("group command 3", GROUP_MOD_FAILED_BAD_COMMAND, |_| {
        GroupModCommand::from_u16(3).map(drop)
    });
    case!(
        "indirect with two buckets",
        GROUP_MOD_FAILED_BAD_BUCKET,
        group(gm(Add, Indirect, 5, vec![Bucket::new(out1()); 2]))
    );
    case!(
        "fast-failover bucket watching nothing",
        GROUP_MOD_FAILED_BAD_WATCH,
        group(gm(Add, FastFailover, 5, vec![Bucket::new(out1())]))
    );

    let mut seen = BTreeSet::new();
    for (what, f, want) in &cases {
        let mut p = pipeline();
        let generation = p.generation();
        let flows: usize = p
            .table_stats()
            .iter()
            .map(|s| s.active_count as usize)
            .sum();
        let groups = p.groups().len();
        let got = f(&mut p);
        assert_eq!(got, Err(*want), "{what}");
        seen.insert((want.type_, want.code));
        if !matches!(*what, "fifth group" | "chain deeper than the limit") {
            assert_eq!(
                p.generation(),
                generation,
                "{what}: a refused request changes nothing"
            );
            let flows_now: usize = p
                .table_stats()
                .iter()
                .map(|s| s.active_count as usize)
                .sum();
            assert_eq!((flows_now, p.groups().len()), (flows, groups), "{what}");
        }
    }
    // 37 distinct errors; the packet-out case repeats BAD_OUT_PORT.
    assert_eq!(seen.len(), 37);
}
