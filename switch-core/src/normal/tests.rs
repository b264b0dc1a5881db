//! Unit tests of NORMAL: VLAN modes, port flags, learning, aging, eviction, moves, flushes.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::flow::OFPVID_PRESENT;
use crate::port::{PortConfig, VlanMode, VlanSet};

const H1: u64 = 0x0200_0000_0001;
const H2: u64 = 0x0200_0000_0002;
const H3: u64 = 0x0200_0000_0003;
const BCAST: u64 = 0xffff_ffff_ffff;
const MCAST: u64 = 0x0100_5e00_0001;
const STP: u64 = 0x0180_c200_0000;

use VlanOut::{Tagged, Untagged};

fn key(in_port: PortNo, src: u64, dst: u64, tag: Option<u16>) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(Field::InPort, in_port as u128);
    k.set(Field::EthSrc, src as u128);
    k.set(Field::EthDst, dst as u128);
    k.set(Field::EthType, 0x0800);
    if let Some(v) = tag {
        k.set(Field::VlanVid, (OFPVID_PRESENT | v) as u128);
    }
    k
}

fn port(no: PortNo, mode: VlanMode) -> Port {
    Port::new(no, "p", [0, 0, 0, 0, 0, no as u8]).with_vlan_mode(mode)
}

fn trunk(vids: &[u16]) -> VlanMode {
    VlanMode::Trunk(VlanSet::from_vids(vids))
}

/// Ports 1, 2: access 10; 3: access 20; 4: trunk 10,20; 5: native-untagged 10 + trunk 20;
/// 6: native-tagged 20 + trunk 10.
fn bridge() -> PortTable {
    let mut t = PortTable::new();
    t.add(port(1, VlanMode::Access(10))).unwrap();
    t.add(port(2, VlanMode::Access(10))).unwrap();
    t.add(port(3, VlanMode::Access(20))).unwrap();
    t.add(port(4, trunk(&[10, 20]))).unwrap();
    t.add(port(
        5,
        VlanMode::NativeUntagged(10, VlanSet::from_vids(&[20])),
    ))
    .unwrap();
    t.add(port(
        6,
        VlanMode::NativeTagged(20, VlanSet::from_vids(&[10])),
    ))
    .unwrap();
    t
}

struct Run {
    outcome: NormalOutcome,
    out: Vec<(PortNo, VlanOut)>,
}

fn run(sw: &mut NormalSwitch, ports: &PortTable, k: FlowKey, now: u64) -> Run {
    let mut out = Vec::new();
    let mut mask = FlowKey::ZERO;
    let outcome = sw.process(ports, &k, now, &mut mask, &mut out);
    assert!(
        out.iter().all(|(p, _)| *p != k.in_port()),
        "output to in_port"
    );
    Run { outcome, out }
}

#[test]
fn access_port_floods_its_vlan_with_the_right_tags() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(
        r.out,
        [
            (2, Untagged),
            (4, Tagged(10)),
            (5, Untagged),
            (6, Tagged(10))
        ]
    );
}

#[test]
fn access_port_takes_priority_tags_and_drops_vlan_tags() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, BCAST, Some(0)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    for tag in [10, 20, 4095] {
        let r = run(&mut sw, &ports, key(1, H1, BCAST, Some(tag)), 0);
        assert_eq!(
            r.outcome,
            NormalOutcome::Drop(NormalDrop::VlanNotAllowed),
            "{tag}"
        );
        assert!(r.out.is_empty());
    }
}

#[test]
fn trunk_port_admits_allowed_tags_only() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(4, H1, BCAST, Some(20)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 20 });
    assert_eq!(r.out, [(3, Untagged), (5, Tagged(20)), (6, Tagged(20))]);
    for tag in [None, Some(0), Some(30)] {
        let r = run(&mut sw, &ports, key(4, H1, BCAST, tag), 0);
        assert_eq!(
            r.outcome,
            NormalOutcome::Drop(NormalDrop::VlanNotAllowed),
            "{tag:?}"
        );
    }
    // Nothing was learned from the dropped frames.
    assert_eq!(sw.mac_table().lookup(10, H1, 0), None);
    assert_eq!(sw.mac_table().lookup(0, H1, 0), None);
}

#[test]
fn trunk_with_vlan_zero_admits_untagged() {
    let mut ports = PortTable::new();
    ports.add(port(1, trunk(&[0, 10]))).unwrap();
    ports.add(port(2, VlanMode::default())).unwrap();
    ports.add(port(3, VlanMode::Access(10))).unwrap();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 0 });
    assert_eq!(r.out, [(2, Untagged)]);
}

#[test]
fn native_untagged_port() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    // Untagged → native VLAN 10.
    let r = run(&mut sw, &ports, key(5, H1, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(
        r.out,
        [
            (1, Untagged),
            (2, Untagged),
            (4, Tagged(10)),
            (6, Tagged(10))
        ]
    );
    // Tagged with the native VID is accepted too; a trunked VLAN keeps its tag.
    let r = run(&mut sw, &ports, key(5, H2, BCAST, Some(10)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    let r = run(&mut sw, &ports, key(5, H2, BCAST, Some(20)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 20 });
    assert_eq!(r.out, [(3, Untagged), (4, Tagged(20)), (6, Tagged(20))]);
    let r = run(&mut sw, &ports, key(5, H2, BCAST, Some(30)), 0);
    assert_eq!(r.outcome, NormalOutcome::Drop(NormalDrop::VlanNotAllowed));
}

#[test]
fn native_tagged_port() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    // Untagged → native VLAN 20, which port 6 itself would send tagged.
    let r = run(&mut sw, &ports, key(6, H1, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 20 });
    assert_eq!(r.out, [(3, Untagged), (4, Tagged(20)), (5, Tagged(20))]);
    // Into port 6: the native VLAN leaves tagged.
    let r = run(&mut sw, &ports, key(3, H2, BCAST, None), 0);
    assert!(r.out.contains(&(6, Tagged(20))));
    let r = run(&mut sw, &ports, key(6, H3, BCAST, Some(10)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
}

#[test]
fn default_mode_is_an_ordinary_switch() {
    let mut ports = PortTable::new();
    for no in 1..=3 {
        ports.add(Port::new(no, "p", [0; 6])).unwrap();
    }
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    assert_eq!(r.out, [(2, Untagged), (3, Untagged)]);
    let r = run(&mut sw, &ports, key(2, H2, BCAST, Some(100)), 0);
    assert_eq!(r.out, [(1, Tagged(100)), (3, Tagged(100))]);
    let r = run(&mut sw, &ports, key(2, H2, H1, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Unicast { vlan: 0, port: 1 });
    // H1 was learned in VLAN 0 only.
    let r = run(&mut sw, &ports, key(2, H2, H1, Some(100)), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 100 });
}

#[test]
fn unicast_after_learning_and_across_trunk() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    // H2 behind the trunk answers H1: untagged to the access port.
    let r = run(&mut sw, &ports, key(4, H2, H1, Some(10)), 1);
    assert_eq!(r.outcome, NormalOutcome::Unicast { vlan: 10, port: 1 });
    assert_eq!(r.out, [(1, Untagged)]);
    // And back: tagged onto the trunk.
    let r = run(&mut sw, &ports, key(1, H1, H2, None), 2);
    assert_eq!(r.out, [(4, Tagged(10))]);
}

#[test]
fn unknown_unicast_and_multicast_flood() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, H2, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(r.out.len(), 4);
    let r = run(&mut sw, &ports, key(1, H1, MCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(r.out.len(), 4);
}

#[test]
fn destination_on_the_input_port_is_dropped() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    run(&mut sw, &ports, key(4, H2, BCAST, Some(10)), 0);
    let r = run(&mut sw, &ports, key(4, H1, H2, Some(10)), 1);
    assert_eq!(r.outcome, NormalOutcome::Drop(NormalDrop::LearnedOnInPort));
    assert!(r.out.is_empty());
}

#[test]
fn group_sources_are_not_learned() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    run(&mut sw, &ports, key(1, BCAST, H2, None), 0);
    run(&mut sw, &ports, key(1, MCAST, H2, None), 0);
    run(&mut sw, &ports, key(1, 0, H2, None), 0);
    assert!(sw.mac_table().is_empty());
}

#[test]
fn reserved_multicast_is_dropped_unless_forward_bpdu() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, STP, None), 0);
    assert_eq!(
        r.outcome,
        NormalOutcome::Drop(NormalDrop::ReservedMulticast)
    );
    assert!(sw.mac_table().is_empty(), "not learned either");
    let g = sw.generation();
    sw.set_config(NormalConfig {
        forward_bpdu: true,
        ..sw.config()
    });
    assert_ne!(sw.generation(), g);
    let r = run(&mut sw, &ports, key(1, H1, STP + 0xe, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    // 01:80:c2:00:00:10 is not reserved.
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(1, H1, STP + 0x10, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
}

#[test]
fn unknown_in_port_is_dropped() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(99, H1, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Drop(NormalDrop::UnknownInPort));
    let r = run(
        &mut sw,
        &ports,
        key(crate::port::OFPP_CONTROLLER, H1, BCAST, None),
        0,
    );
    assert_eq!(r.outcome, NormalOutcome::Drop(NormalDrop::UnknownInPort));
    assert!(sw.mac_table().is_empty());
}

/// Every combination of the flags on an input port and on an output port.
#[test]
fn port_flag_combinations() {
    let flags = [
        PortConfig::empty(),
        PortConfig::PORT_DOWN,
        PortConfig::NO_RECV,
        PortConfig::NO_FWD,
        PortConfig::NO_FLOOD,
        PortConfig::NO_PACKET_IN,
    ];
    for in_cfg in flags {
        for in_link in [true, false] {
            for in_blocked in [false, true] {
                for out_cfg in flags {
                    for out_link in [true, false] {
                        for out_blocked in [false, true] {
                            let mut ports = PortTable::new();
                            ports
                                .add(
                                    port(1, VlanMode::Access(10))
                                        .with_config(in_cfg)
                                        .with_link_up(in_link)
                                        .with_blocked(in_blocked),
                                )
                                .unwrap();
                            ports
                                .add(
                                    port(2, VlanMode::Access(10))
                                        .with_config(out_cfg)
                                        .with_link_up(out_link)
                                        .with_blocked(out_blocked),
                                )
                                .unwrap();
                            ports.add(port(3, VlanMode::Access(10))).unwrap();
                            let ctx = (in_cfg, in_link, in_blocked, out_cfg, out_link, out_blocked);

                            let receives = in_link
                                && !in_blocked
                                && !in_cfg.intersects(PortConfig::PORT_DOWN | PortConfig::NO_RECV);
                            let forwards = out_link
                                && !out_blocked
                                && !out_cfg.intersects(PortConfig::PORT_DOWN | PortConfig::NO_FWD);
                            let floods = forwards && !out_cfg.contains(PortConfig::NO_FLOOD);
                            let out_live = out_link && !out_cfg.contains(PortConfig::PORT_DOWN);

                            // Flood from 1.
                            let mut sw = NormalSwitch::default();
                            let r = run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
                            if !receives {
                                assert_eq!(
                                    r.outcome,
                                    NormalOutcome::Drop(NormalDrop::InPortCannotReceive),
                                    "{ctx:?}"
                                );
                                assert!(sw.mac_table().is_empty(), "{ctx:?}");
                                continue;
                            }
                            let mut want = vec![];
                            if floods {
                                want.push((2, Untagged));
                            }
                            want.push((3, Untagged));
                            assert_eq!(r.out, want, "{ctx:?}");
                            assert_eq!(sw.mac_table().lookup(10, H1, 0), Some(1), "{ctx:?}");

                            // Unicast to H2 known on port 2 (learned before port 2 changed).
                            let mut sw = NormalSwitch::default();
                            let mut up = bridge_of_two();
                            run(&mut sw, &up, key(2, H2, BCAST, None), 0);
                            // Apply the output port's flags now.
                            up.mod_config(2, out_cfg, PortConfig::all()).unwrap();
                            up.set_link(2, out_link).unwrap();
                            up.set_blocked(2, out_blocked).unwrap();
                            up.mod_config(1, in_cfg, PortConfig::all()).unwrap();
                            up.set_link(1, in_link).unwrap();
                            up.set_blocked(1, in_blocked).unwrap();
                            let r = run(&mut sw, &up, key(1, H1, H2, None), 1);
                            if !out_live || out_blocked {
                                // Down or blocked ports lose their entries: unknown → flood.
                                assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 }, "{ctx:?}");
                                assert_eq!(r.out, [(3, Untagged)], "{ctx:?}");
                            } else if !forwards {
                                assert_eq!(
                                    r.outcome,
                                    NormalOutcome::Drop(NormalDrop::OutPortCannotForward),
                                    "{ctx:?}"
                                );
                            } else {
                                // NO_FLOOD does not stop unicast.
                                assert_eq!(r.out, [(2, Untagged)], "{ctx:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}

fn bridge_of_two() -> PortTable {
    let mut t = PortTable::new();
    for no in 1..=3 {
        t.add(port(no, VlanMode::Access(10))).unwrap();
    }
    t
}

#[test]
fn consulted_mask_has_exactly_the_l2_fields() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let mut out = Vec::new();
    let mut mask = FlowKey::ZERO;
    sw.process(&ports, &key(1, H1, BCAST, None), 0, &mut mask, &mut out);
    let mut want = FlowKey::ZERO;
    for f in [Field::InPort, Field::EthSrc, Field::EthDst, Field::VlanVid] {
        want.set_exact(f);
    }
    assert_eq!(mask, want);
    // ORed, not overwritten.
    let mut mask = FlowKey::ZERO;
    mask.set_exact(Field::IpProto);
    sw.process(&ports, &key(99, H1, BCAST, None), 0, &mut mask, &mut out);
    assert_eq!(mask.get(Field::IpProto), 0xff);
    assert_eq!(mask.get(Field::InPort), 0xffff_ffff);
}

#[test]
fn output_vector_is_reused_without_allocating() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let mut out = Vec::new();
    let mut mask = FlowKey::ZERO;
    sw.process(&ports, &key(1, H1, BCAST, None), 0, &mut mask, &mut out);
    let (cap, ptr) = (out.capacity(), out.as_ptr());
    for i in 0..100 {
        sw.process(
            &ports,
            &key(1 + i % 5, H1 + i as u64, BCAST, None),
            i as u64,
            &mut mask,
            &mut out,
        );
    }
    assert_eq!((out.capacity(), out.as_ptr()), (cap, ptr));
}

#[test]
fn aging_turns_unicast_back_into_flooding() {
    let ports = bridge();
    let mut sw = NormalSwitch::new(NormalConfig {
        aging_ms: 10_000,
        ..NormalConfig::default()
    });
    run(&mut sw, &ports, key(2, H2, BCAST, None), 0);
    let r = run(&mut sw, &ports, key(1, H1, H2, None), 9_999);
    assert_eq!(r.outcome, NormalOutcome::Unicast { vlan: 10, port: 2 });
    let r = run(&mut sw, &ports, key(1, H1, H2, None), 10_000);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    // The learning on the way already collected H2; the timer collects H1 later.
    assert_eq!(sw.mac_table().stats().aged, 1);
    assert_eq!(sw.mac_table_mut().expire(19_999), 0);
    assert_eq!(sw.mac_table_mut().expire(20_000), 1);
    assert_eq!(sw.mac_table().stats().aged, 2);
    assert!(sw.mac_table().is_empty());
    // Default aging is 300 s.
    assert_eq!(NormalSwitch::default().config().aging_ms, 300_000);
}

#[test]
fn eviction_at_the_limit_is_lru() {
    let ports = bridge();
    let mut sw = NormalSwitch::new(NormalConfig {
        max_entries: 2,
        ..NormalConfig::default()
    });
    run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    run(&mut sw, &ports, key(2, H2, BCAST, None), 1);
    run(&mut sw, &ports, key(1, H1, BCAST, None), 2); // H1 most recent
    run(&mut sw, &ports, key(4, H3, BCAST, Some(10)), 3); // evicts H2
    let t = sw.mac_table();
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(10, H2, 3), None);
    assert_eq!(t.lookup(10, H1, 3), Some(1));
    assert_eq!(t.stats().evicted, 1);
    assert_eq!(NormalSwitch::default().config().max_entries, 8192);
}

#[test]
fn station_move_is_followed_and_counted() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    let g = sw.generation();
    run(&mut sw, &ports, key(2, H1, BCAST, None), 1);
    assert_ne!(sw.generation(), g);
    assert_eq!(sw.mac_table().stats().moved, 1);
    let r = run(&mut sw, &ports, key(4, H3, H1, Some(10)), 2);
    assert_eq!(r.outcome, NormalOutcome::Unicast { vlan: 10, port: 2 });
}

#[test]
fn port_down_and_removal_flush_their_entries() {
    let mut ports = bridge();
    let mut sw = NormalSwitch::default();
    run(&mut sw, &ports, key(1, H1, BCAST, None), 0);
    run(&mut sw, &ports, key(2, H2, BCAST, None), 0);
    run(&mut sw, &ports, key(4, H3, BCAST, Some(20)), 0);
    assert_eq!(sw.mac_table().len(), 3);

    // Link down on port 1: flushed at the next sync (explicit or by the next packet).
    ports.set_link(1, false).unwrap();
    assert_eq!(sw.sync_ports(&ports), 1);
    assert_eq!(sw.mac_table().lookup(10, H1, 0), None);
    assert_eq!(sw.sync_ports(&ports), 0);

    // Admin down on port 2: the next packet notices.
    ports
        .mod_config(2, PortConfig::PORT_DOWN, PortConfig::PORT_DOWN)
        .unwrap();
    let r = run(&mut sw, &ports, key(5, H3, H2, None), 1);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(r.out, [(4, Tagged(10)), (6, Tagged(10))]);
    assert_eq!(sw.mac_table().lookup(10, H2, 1), None);

    // Removal of port 4.
    assert!(sw.mac_table().lookup(20, H3, 1).is_some());
    ports.remove(4).unwrap();
    sw.sync_ports(&ports);
    assert_eq!(sw.mac_table().lookup(20, H3, 1), None);

    // VLAN mode change: port 5's entries for VLAN 10 go, VLAN 20 stays.
    assert_eq!(sw.mac_table().lookup(10, H3, 1), Some(5));
    run(&mut sw, &ports, key(5, H3, BCAST, Some(20)), 2);
    ports.set_vlan_mode(5, VlanMode::Access(20)).unwrap();
    sw.sync_ports(&ports);
    assert_eq!(sw.mac_table().lookup(10, H3, 2), None);
    assert_eq!(sw.mac_table().lookup(20, H3, 2), Some(5));
    assert_eq!(sw.mac_table().stats().flushed, 4);
    sw.mac_table().check_invariants();
}

#[test]
fn learn_from_keeps_the_table_current_without_forwarding() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    assert_eq!(
        sw.learn_from(&ports, &key(1, H1, H2, None), 0),
        LearnOutcome::Learned
    );
    assert_eq!(
        sw.learn_from(&ports, &key(1, H1, H2, None), 1),
        LearnOutcome::Refreshed
    );
    assert_eq!(
        sw.learn_from(&ports, &key(2, H1, H2, None), 2),
        LearnOutcome::Moved { from: 1 }
    );
    assert_eq!(
        sw.learn_from(&ports, &key(1, H2, H1, Some(10)), 3),
        LearnOutcome::NotLearned
    );
    assert_eq!(
        sw.learn_from(&ports, &key(1, H2, STP, None), 3),
        LearnOutcome::NotLearned
    );
}

#[test]
fn fdb_show_looks_like_ovs() {
    let mut ports = bridge();
    ports
        .add(port(crate::port::OFPP_LOCAL, VlanMode::Access(10)))
        .unwrap();
    let mut sw = NormalSwitch::default();
    run(
        &mut sw,
        &ports,
        key(1, 0x5054_0000_0001, BCAST, None),
        1_000,
    );
    run(
        &mut sw,
        &ports,
        key(crate::port::OFPP_LOCAL, 0x5054_0000_00ff, BCAST, None),
        3_000,
    );
    assert_eq!(
        sw.fdb_show(5_500),
        " port  VLAN  MAC                Age\n\
         \x20   1    10  50:54:00:00:00:01    4\n\
         LOCAL    10  50:54:00:00:00:ff    2\n"
    );
}

#[test]
fn flood_excludes_ports_outside_the_vlan() {
    let ports = bridge();
    let mut sw = NormalSwitch::default();
    let r = run(&mut sw, &ports, key(3, H3, BCAST, None), 0);
    assert_eq!(r.outcome, NormalOutcome::Flood { vlan: 20 });
    assert_eq!(r.out, [(4, Tagged(20)), (5, Tagged(20)), (6, Tagged(20))]);
}
