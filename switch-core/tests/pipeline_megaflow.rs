//! The consulted-bits contract the megaflow cache relies on: after a packet runs through the
//! pipeline with mask `wc`, every packet that agrees with it on `wc` must get the same
//! treatment (same outputs in the same order, same packet-ins). Random multi-table pipelines
//! with masks, goto/metadata, set-field, VLAN push/pop, select and fast-failover groups.

mod pipeline_common;

use pipeline_common::*;
use proptest::prelude::*;
use switch_core::action::{Action, Instructions};
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{Env, FlowMod, Pipeline};
use switch_core::port::{OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, Port, PortTable};

#[derive(Clone, Debug)]
struct Pkt {
    in_port: u32,
    vlan: Option<u16>,
    kind: u8,
    src: u8,
    dst: u8,
    l4: u16,
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        1u32..=3,
        prop::option::of(1u16..3),
        0u8..3,
        1u8..3,
        1u8..3,
        0u16..2,
    )
        .prop_map(|(in_port, vlan, kind, src, dst, l4)| Pkt {
            in_port,
            vlan,
            kind,
            src,
            dst,
            l4,
        })
}

fn bytes(p: &Pkt) -> Vec<u8> {
    let (s, d) = (ip(10, 0, 0, p.src), ip(10, 0, 1, p.dst));
    match p.kind {
        0 => eth(
            mac(p.dst),
            mac(p.src),
            p.vlan,
            0x0800,
            &ipv4(s, d, 6, 64, &tcp(1000 + p.l4, 80 + p.l4)),
        ),
        1 => eth(
            mac(p.dst),
            mac(p.src),
            p.vlan,
            0x0800,
            &ipv4(s, d, 17, 64, &udp(53, 53 + p.l4)),
        ),
        _ => eth([0xff; 6], mac(p.src), p.vlan, 0x0806, &[0u8; 28]),
    }
}

#[derive(Clone, Debug)]
struct RuleSpec {
    table: u8,
    priority: u16,
    fields: u8,
    vals: [u8; 6],
    action: u8,
    arg: u8,
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        0u8..3,
        0u16..4,
        any::<u8>(),
        any::<[u8; 6]>(),
        0u8..9,
        any::<u8>(),
    )
        .prop_map(|(table, priority, fields, vals, action, arg)| RuleSpec {
            table,
            priority,
            fields,
            vals,
            action,
            arg,
        })
}

fn build(r: &RuleSpec) -> FlowMod {
    let v = r.vals;
    let mut m = Match::new();
    if r.fields & 1 != 0 {
        m.set(Field::InPort, 1 + v[0] as u128 % 4);
    }
    let l3 = r.fields & 6;
    if l3 != 0 {
        m.set(Field::EthType, 0x0800);
        if r.fields & 2 != 0 {
            m.set_masked(
                Field::Ipv4Dst,
                ip(10, 0, 1, v[1] % 4) as u128,
                [0xffff_ff00u128, 0xffff_ffff][v[1] as usize % 2],
            );
        }
        if r.fields & 4 != 0 {
            let proto = [6u128, 17][v[2] as usize % 2];
            m.set(Field::IpProto, proto);
            if r.fields & 8 != 0 {
                let f = if proto == 6 {
                    Field::TcpDst
                } else {
                    Field::UdpDst
                };
                m.set_masked(
                    f,
                    80 + v[3] as u128 % 3,
                    [0xffffu128, 0xfffe][v[3] as usize / 3 % 2],
                );
            }
        }
    }
    if r.fields & 16 != 0 {
        match v[4] % 3 {
            0 => m.set(Field::VlanVid, 0),
            1 => m.set_masked(Field::VlanVid, 0x1000, 0x1000),
            _ => m.set(Field::VlanVid, 0x1000 | (1 + v[4] as u128 % 2)),
        };
    }
    if r.fields & 32 != 0 && r.table > 0 {
        m.set_masked(Field::Metadata, v[5] as u128 % 4, 0x3);
    }
    if r.fields & 64 != 0 {
        m.set(Field::EthSrc, mac_u128(mac(1 + v[5] % 3)));
    }
    let a = r.arg;
    let port = 1 + a as u32 % 4;
    let mut i = match r.action {
        0 => Instructions::apply(vec![Action::output(port)]),
        1 => Instructions::apply(vec![
            Action::set_field(Field::EthDst, mac_u128(mac(a))),
            Action::output(port),
        ]),
        2 => Instructions::apply(vec![Action::PushVlan(0x8100), Action::output(port)]),
        3 => Instructions::apply(vec![Action::Group(1 + a as u32 % 2)]),
        4 => Instructions::drop().with_write(vec![Action::output(
            [port, OFPP_IN_PORT, OFPP_FLOOD][a as usize % 3],
        )]),
        5 => Instructions::apply(vec![Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 64,
        }]),
        6 => Instructions::apply(vec![
            Action::set_field(Field::Ipv4Dst, ip(10, 0, 1, a % 4) as u128),
            Action::output(port),
        ]),
        7 => Instructions::apply(vec![Action::DecNwTtl, Action::output(port)]),
        _ => Instructions::drop(),
    };
    if r.table < 2 && !a.is_multiple_of(3) {
        i.goto = Some(r.table + 1 + a % 2 * (1 - r.table.min(1)));
        i.write_metadata = Some((a as u64 % 4, 0x3));
    }
    FlowMod::add(r.table, r.priority, m, i)
}

fn ports() -> PortTable {
    let mut t = PortTable::new();
    for p in 1..=4u32 {
        t.add(Port::new(p, "p", mac(0xf0 + p as u8))).unwrap();
    }
    t.set_link(4, false).unwrap();
    t
}

fn groups(p: &mut Pipeline) {
    let sel = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Select,
        group_id: 1,
        buckets: (1..=3)
            .map(|i| Bucket::weighted(i as u16, vec![Action::output(i)]))
            .collect(),
    };
    let ff = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::FastFailover,
        group_id: 2,
        buckets: vec![
            Bucket::watching(4, vec![Action::output(4)]),
            Bucket::watching(3, vec![Action::PopVlan, Action::output(3)]),
        ],
    };
    p.group_mod(&sel, 0).unwrap();
    // Pop-VLAN without a VLAN match is fine in a bucket (not checked against a match).
    p.group_mod(&ff, 0).unwrap();
}

fn run(p: &mut Pipeline, pt: &PortTable, pk: &Pkt) -> (FlowKey, FlowKey, Vec<u32>, usize) {
    let b = bytes(pk);
    let mut key = FlowKey::ZERO;
    extract(&b, pk.in_port, &mut key);
    let original = key;
    let mut f = HeapFrame::new(&b);
    let mut wc = FlowKey::ZERO;
    let mut rec = Recorder::default();
    let mut env = Env::new(pt, 0);
    p.process(&mut env, &mut key, &mut f, &mut wc, &mut rec);
    (original, wc, rec.ports(), rec.packet_ins.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn packets_agreeing_on_consulted_bits_get_the_same_treatment(
        rules in proptest::collection::vec(rule(), 1..25),
        pkts in proptest::collection::vec(pkt(), 2..60),
    ) {
        let mut p = Pipeline::default();
        groups(&mut p);
        // Table-miss entries keep packets moving so that most of them produce outputs.
        let miss = [
            Instructions::drop().with_write(vec![Action::output(1)]).with_goto(1),
            Instructions::apply(vec![Action::output(2)]).with_goto(2),
            Instructions::apply(vec![Action::output(OFPP_FLOOD)]),
        ];
        for (t, i) in miss.into_iter().enumerate() {
            p.flow_mod(&FlowMod::add(t as u8, 0, Match::ANY, i), 0).unwrap();
        }
        let mut installed = 0;
        for r in &rules {
            if p.flow_mod(&build(r), 0).is_ok() {
                installed += 1;
            }
        }
        prop_assume!(installed > 0);
        let pt = ports();
        let results: Vec<_> = pkts.iter().map(|pk| run(&mut p, &pt, pk)).collect();
        for (k1, wc1, out1, pins1) in &results {
            for (k2, _, out2, pins2) in &results {
                if k2.eq_masked(k1, wc1) {
                    prop_assert_eq!(out1, out2, "keys agree on the megaflow mask {:?}", wc1);
                    prop_assert_eq!(pins1, pins2);
                }
            }
        }
    }
}
