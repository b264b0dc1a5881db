//! Scenarios with groups: a select group load-balancing flows over three uplinks by weight,
//! and a fast-failover group moving traffic to a backup port when the primary goes down.

mod pipeline_common;

use std::collections::HashMap;

use pipeline_common::*;
use switch_core::action::{Action, Instructions};
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::pipeline::{FlowMod, Pipeline};
use switch_core::port::VlanMode;

fn bridge(n_ports: u32) -> Bridge {
    let mut b = Bridge::new(Pipeline::default());
    for p in 1..=n_ports {
        b.add_port(p, VlanMode::default());
    }
    b
}

fn group(b: &mut Bridge, ty: GroupType, id: u32, buckets: Vec<Bucket>) {
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: ty,
        group_id: id,
        buckets,
    };
    b.pipeline.group_mod(&gm, 0).unwrap();
}

fn to_group(b: &mut Bridge, in_port: u32, g: u32) {
    b.pipeline
        .flow_mod(
            &FlowMod::add(
                0,
                10,
                Match::new().with(Field::InPort, in_port as u128),
                Instructions::apply(vec![Action::Group(g)]),
            ),
            0,
        )
        .unwrap();
}

fn flow(i: u32) -> Vec<u8> {
    tcp_frame(
        mac(1),
        mac(2),
        0x0a00_0000 + i,
        0x0a01_0001,
        1024 + (i % 20000) as u16,
        80,
    )
}

#[test]
fn select_group_spreads_flows_by_weight() {
    let mut b = bridge(4);
    // Uplinks 2, 3, 4 with weights 1 : 2 : 1; bucket 4 watches its port.
    let mut b4 = Bucket::weighted(1, vec![Action::output(4)]);
    b4.watch_port = 4;
    group(
        &mut b,
        GroupType::Select,
        7,
        vec![
            Bucket::weighted(1, vec![Action::output(2)]),
            Bucket::weighted(2, vec![Action::output(3)]),
            b4,
        ],
    );
    to_group(&mut b, 1, 7);

    let mut per_port: HashMap<u32, usize> = HashMap::new();
    let mut chosen = Vec::new();
    for i in 0..1000 {
        let (out, _, wc) = b.send(1, &flow(i));
        assert_eq!(out.outputs.len(), 1, "exactly one bucket per packet");
        *per_port.entry(out.ports()[0]).or_default() += 1;
        chosen.push(out.ports()[0]);
        // The hash read the 5-tuple: it is in the megaflow mask.
        assert_eq!(wc.get(Field::Ipv4Src), 0xffff_ffff);
        assert_eq!(wc.get(Field::TcpSrc), 0xffff);
    }
    // Expected 250 / 500 / 250; allow +-20%.
    assert!((200..=300).contains(&per_port[&2]), "{per_port:?}");
    assert!((400..=600).contains(&per_port[&3]), "{per_port:?}");
    assert!((200..=300).contains(&per_port[&4]), "{per_port:?}");
    // The same flow always takes the same uplink.
    for i in (0..1000).step_by(97) {
        assert_eq!(b.send(1, &flow(i)).0.ports(), vec![chosen[i as usize]]);
    }
    // Group and bucket counters.
    let s = b.pipeline.group_stats(7, 0).unwrap();
    assert_eq!(s.ref_count, 1);
    assert_eq!(s.packet_count, 1000 + 11);
    assert_eq!(s.buckets.iter().map(|c| c.0).sum::<u64>(), 1011);

    // Uplink 4 goes down: its flows move, nobody else's do.
    b.ports.set_link(4, false).unwrap();
    let mut moved_others = 0;
    let mut per_port: HashMap<u32, usize> = HashMap::new();
    for i in 0..1000 {
        let p = b.send(1, &flow(i)).0.ports()[0];
        assert_ne!(p, 4);
        *per_port.entry(p).or_default() += 1;
        if chosen[i as usize] != 4 && p != chosen[i as usize] {
            moved_others += 1;
        }
    }
    // 1 : 2 over the two live uplinks.
    assert!((250..=420).contains(&per_port[&2]), "{per_port:?}");
    // Hash-threshold reshuffles some flows when the total weight changes; most stay.
    assert!(moved_others < 500, "{moved_others}");
}

#[test]
fn fast_failover_moves_to_the_backup_when_the_primary_goes_down() {
    let mut b = bridge(3);
    group(
        &mut b,
        GroupType::FastFailover,
        1,
        vec![
            Bucket::watching(2, vec![Action::output(2)]),
            Bucket::watching(3, vec![Action::output(3)]),
        ],
    );
    to_group(&mut b, 1, 1);
    let f = flow(1);
    assert_eq!(b.send(1, &f).0.ports(), vec![2]);
    b.ports.set_link(2, false).unwrap();
    assert_eq!(b.send(1, &f).0.ports(), vec![3]);
    // Admin down counts as down too.
    b.ports.set_link(2, true).unwrap();
    b.ports
        .mod_config(
            2,
            switch_core::port::PortConfig::PORT_DOWN,
            switch_core::port::PortConfig::PORT_DOWN,
        )
        .unwrap();
    assert_eq!(b.send(1, &f).0.ports(), vec![3]);
    b.ports
        .mod_config(
            2,
            switch_core::port::PortConfig::empty(),
            switch_core::port::PortConfig::PORT_DOWN,
        )
        .unwrap();
    assert_eq!(b.send(1, &f).0.ports(), vec![2], "back to the primary");
    // Both down: dropped.
    b.ports.set_link(2, false).unwrap();
    b.ports.set_link(3, false).unwrap();
    assert!(b.send(1, &f).0.outputs.is_empty());
    let s = b.pipeline.group_stats(1, 0).unwrap();
    assert_eq!(
        s.buckets,
        vec![(2, 2 * f.len() as u64), (2, 2 * f.len() as u64)]
    );
}
