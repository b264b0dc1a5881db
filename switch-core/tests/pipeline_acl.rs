//! Scenario: an L3/L4 ACL across two tables. Table 0 classifies traffic by ingress port into a
//! zone (write-metadata) and continues to table 1 (goto-table); table 1 holds the zone's ACL:
//! - zone 1 (port 1, "inside") may reach the web server 10.0.1.10 on TCP 80/443 and anything in
//!   10.0.2.0/24 on UDP 53; ICMP goes to the controller; the rest is dropped by the table-miss
//!   entry (counted);
//! - zone 2 (port 2, "outside") may only reach TCP 22 on 10.0.1.10.

mod pipeline_common;

use pipeline_common::*;
use switch_core::action::{Action, Instructions};
use switch_core::error::OfpError;
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::pipeline::{FlowMod, PacketInReason, Pipeline};
use switch_core::port::{OFPP_CONTROLLER, VlanMode};

const WEB: u32 = 0x0a00_010a; // 10.0.1.10
const SERVERS_PORT: u32 = 3;

fn tcp_to(dst: u32, dport: u16) -> Match {
    Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6)
        .with(Field::Ipv4Dst, dst as u128)
        .with(Field::TcpDst, dport as u128)
}

fn add(b: &mut Bridge, table: u8, prio: u16, m: Match, i: Instructions) {
    b.pipeline
        .flow_mod(&FlowMod::add(table, prio, m, i), 0)
        .unwrap();
}

fn bridge() -> Bridge {
    let mut b = Bridge::new(Pipeline::default());
    for p in 1..=3 {
        b.add_port(p, VlanMode::default());
    }
    // Table 0: zone by port.
    for (port, zone) in [(1u32, 1u64), (2, 2)] {
        add(
            &mut b,
            0,
            100,
            Match::new().with(Field::InPort, port as u128),
            Instructions::drop()
                .with_metadata(zone, 0xffff)
                .with_goto(1),
        );
    }
    let allow = || Instructions::apply(vec![Action::output(SERVERS_PORT)]);
    let zone = |z: u64| Match::new().with_masked(Field::Metadata, z as u128, 0xffff);
    // Table 1: zone 1.
    for dport in [80, 443] {
        let mut m = tcp_to(WEB, dport);
        m.set_masked(Field::Metadata, 1, 0xffff);
        add(&mut b, 1, 200, m, allow());
    }
    let dns = zone(1)
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 17)
        .with_masked(Field::Ipv4Dst, 0x0a00_0200, 0xffff_ff00)
        .with(Field::UdpDst, 53);
    add(&mut b, 1, 200, dns, allow());
    let icmp = zone(1).with(Field::EthType, 0x0800).with(Field::IpProto, 1);
    add(
        &mut b,
        1,
        150,
        icmp,
        Instructions::apply(vec![Action::output(OFPP_CONTROLLER)]),
    );
    // Table 1: zone 2.
    let mut ssh = tcp_to(WEB, 22);
    ssh.set_masked(Field::Metadata, 2, 0xffff);
    add(&mut b, 1, 200, ssh, allow());
    // Table-miss of table 1: drop (explicit, so it is counted).
    add(&mut b, 1, 0, Match::ANY, Instructions::drop());
    b
}

/// A packet: (ingress port, frame).
type Packet = (u32, Vec<u8>);

fn from(port: u32, dst: u32, proto: u8, l4: &[u8]) -> Packet {
    let f = eth(
        mac(9),
        mac(port as u8),
        None,
        0x0800,
        &ipv4(0x0a00_0005 + port, dst, proto, 64, l4),
    );
    (port, f)
}

#[test]
fn zones_and_acl() {
    let mut b = bridge();
    let cases: [(Packet, &[u32], &str); 8] = [
        (from(1, WEB, 6, &tcp(4000, 80)), &[3], "inside -> web:80"),
        (from(1, WEB, 6, &tcp(4000, 443)), &[3], "inside -> web:443"),
        (
            from(1, WEB, 6, &tcp(4000, 22)),
            &[],
            "inside -> web:22 denied",
        ),
        (
            from(1, 0x0a00_0235, 17, &udp(5000, 53)),
            &[3],
            "inside -> dns in 10.0.2.0/24",
        ),
        (
            from(1, 0x0a00_0335, 17, &udp(5000, 53)),
            &[],
            "inside -> dns elsewhere denied",
        ),
        (from(2, WEB, 6, &tcp(4000, 22)), &[3], "outside -> web:22"),
        (
            from(2, WEB, 6, &tcp(4000, 80)),
            &[],
            "outside -> web:80 denied",
        ),
        (
            from(3, WEB, 6, &tcp(4000, 80)),
            &[],
            "no zone for port 3: table 0 miss, drop",
        ),
    ];
    for ((port, frame), want, what) in &cases {
        let (out, _, _) = b.send(*port, frame);
        assert_eq!(out.ports(), want.to_vec(), "{what}");
    }
    // ICMP from inside goes to the controller with reason ACTION from table 1.
    let (port, f) = from(1, WEB, 1, &icmp_echo());
    let (out, o, wc) = b.send(port, &f);
    assert_eq!(out.packet_ins, vec![(PacketInReason::Action, 1, 0)]);
    assert_eq!(o.entries.len(), 2);
    // The decision depended on metadata (written by table 0) and on the protocol.
    assert_eq!(wc.get(Field::IpProto), 0xff);

    // Table counters: table 0 looked up 9 packets, matched 8; table 1 matched every packet
    // that reached it (the table-miss entry counts as a match).
    let s = b.pipeline.table_stats();
    assert_eq!((s[0].lookup_count, s[0].matched_count), (9, 8));
    assert_eq!((s[1].lookup_count, s[1].matched_count), (8, 8));
    let miss = b
        .pipeline
        .entries(1)
        .find(|(_, e)| e.is_table_miss())
        .unwrap()
        .1;
    assert_eq!(miss.packets.get(), 3);
}

#[test]
fn the_controller_cannot_install_an_acl_with_broken_prerequisites() {
    let mut b = bridge();
    // tcp_dst without ip_proto=6.
    let m = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::TcpDst, 22);
    assert_eq!(
        b.pipeline
            .flow_mod(&FlowMod::add(1, 5, m, Instructions::drop()), 0),
        Err(OfpError::BAD_MATCH_BAD_PREREQ)
    );
    // Goto backwards.
    assert_eq!(
        b.pipeline.flow_mod(
            &FlowMod::add(1, 5, Match::ANY, Instructions::drop().with_goto(0)),
            0
        ),
        Err(OfpError::BAD_INSTRUCTION_BAD_TABLE_ID)
    );
    // Nothing changed.
    assert_eq!(b.pipeline.table(1).unwrap().len(), 6);
}
