//! Scenario: a VLAN-aware learning switch built from one OpenFlow rule (`actions=NORMAL`), as
//! `ovs-ofctl add-flow br0 actions=NORMAL` on a bridge with access and trunk ports, plus an
//! operator's higher-priority rule that blocks one host.

mod pipeline_common;

use pipeline_common::*;
use switch_core::action::{Action, Instructions};
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::pipeline::{FlowMod, Pipeline};
use switch_core::port::{OFPP_NORMAL, VlanMode, VlanSet};

/// Ports 1, 2: access VLAN 10. Port 3: access VLAN 20. Port 4: trunk carrying 10 and 20.
fn bridge() -> Bridge {
    let mut b = Bridge::new(Pipeline::default());
    b.add_port(1, VlanMode::Access(10));
    b.add_port(2, VlanMode::Access(10));
    b.add_port(3, VlanMode::Access(20));
    b.add_port(4, VlanMode::Trunk(VlanSet::from_vids(&[10, 20])));
    b.pipeline
        .flow_mod(
            &FlowMod::add(
                0,
                0,
                Match::ANY,
                Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
            ),
            0,
        )
        .unwrap();
    b
}

fn vid_of(frame: &[u8]) -> Option<u16> {
    (frame[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([frame[14], frame[15]]) & 0xfff)
}

#[test]
fn learns_floods_within_the_vlan_and_tags_on_trunks() {
    let mut b = bridge();
    let (h1, h2, h4) = (mac(1), mac(2), mac(4));
    let bcast = [0xff; 6];

    // h1 (port 1, VLAN 10) broadcasts: ports 2 and 4 get it, port 3 (VLAN 20) does not; the
    // trunk copy carries tag 10, the access copy none.
    let arp = eth(bcast, h1, None, 0x0806, &[0u8; 28]);
    let (out, _, wc) = b.send(1, &arp);
    assert_eq!(out.ports(), vec![2, 4]);
    assert_eq!(vid_of(&out.outputs[0].1), None);
    assert_eq!(vid_of(&out.outputs[1].1), Some(10));
    assert_eq!(out.outputs[1].1.len(), arp.len() + 4);
    // NORMAL consulted in_port, MACs and VLAN: the megaflow mask says so.
    for f in [Field::InPort, Field::EthSrc, Field::EthDst, Field::VlanVid] {
        assert_eq!(wc.get(f), f.max(), "{f:?}");
    }

    // h4 answers over the trunk, tagged 10: h1 was learned on port 1, so only port 1 gets it,
    // untagged.
    let reply = eth(
        h1,
        h4,
        Some(10),
        0x0800,
        &ipv4(ip(10, 0, 0, 4), ip(10, 0, 0, 1), 17, 64, &udp(1, 2)),
    );
    let (out, _, _) = b.send(4, &reply);
    assert_eq!(out.ports(), vec![1]);
    assert_eq!(vid_of(&out.outputs[0].1), None);
    assert_eq!(out.outputs[0].1.len(), reply.len() - 4);

    // Now h1 -> h4 is unicast to the trunk, tagged.
    let (out, _, _) = b.send(
        1,
        &eth(
            h4,
            h1,
            None,
            0x0800,
            &ipv4(ip(10, 0, 0, 1), ip(10, 0, 0, 4), 17, 64, &udp(2, 1)),
        ),
    );
    assert_eq!(out.ports(), vec![4]);
    assert_eq!(vid_of(&out.outputs[0].1), Some(10));

    // The same MAC in VLAN 20 is a different host: h4 unknown there, flood VLAN 20 only.
    let (out, _, _) = b.send(
        3,
        &eth(
            h4,
            h2,
            None,
            0x0800,
            &ipv4(ip(10, 0, 0, 2), ip(10, 0, 0, 4), 17, 64, &udp(2, 1)),
        ),
    );
    assert_eq!(out.ports(), vec![4]);
    assert_eq!(vid_of(&out.outputs[0].1), Some(20));

    // A frame tagged with a VLAN the access port does not carry is dropped.
    let (out, _, _) = b.send(1, &eth(bcast, h1, Some(20), 0x0806, &[0u8; 28]));
    assert!(out.outputs.is_empty());

    // The learned table as the operator sees it.
    assert_eq!(
        b.normal
            .mac_table()
            .lookup(10, mac_u128(h1) as u64, b.now_ms),
        Some(1)
    );
    assert_eq!(
        b.normal
            .mac_table()
            .lookup(10, mac_u128(h4) as u64, b.now_ms),
        Some(4)
    );
}

#[test]
fn an_operator_rule_above_normal_blocks_a_host() {
    let mut b = bridge();
    let bad = mac(0x66);
    b.pipeline
        .flow_mod(
            &FlowMod::add(
                0,
                100,
                Match::new().with(Field::EthSrc, mac_u128(bad)),
                Instructions::drop(),
            ),
            0,
        )
        .unwrap();
    let (out, o, _) = b.send(1, &eth([0xff; 6], bad, None, 0x0806, &[0u8; 28]));
    assert!(out.outputs.is_empty());
    assert_eq!(o.entries.len(), 1);
    // Blocked before NORMAL: not learned either.
    assert_eq!(
        b.normal.mac_table().lookup(10, mac_u128(bad) as u64, 0),
        None
    );
    let (out, _, _) = b.send(1, &eth([0xff; 6], mac(1), None, 0x0806, &[0u8; 28]));
    assert_eq!(out.ports(), vec![2, 4]);
    // Counters: the drop rule saw one packet, the NORMAL rule one.
    let counts: Vec<(u16, u64)> = b
        .pipeline
        .entries(0)
        .map(|(_, e)| (e.priority, e.packets.get()))
        .collect();
    assert!(
        counts.contains(&(100, 1)) && counts.contains(&(0, 1)),
        "{counts:?}"
    );
}
