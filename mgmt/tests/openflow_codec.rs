//! Codec properties: `decode(encode(x)) == x` for generated messages in every version, and
//! malformed input (every truncation, lengths rewritten to lie, random corruption) gives an
//! error or a message, never a panic.

use mgmt::openflow::action::{Action, Instruction};
use mgmt::openflow::error::OfpError;
use mgmt::openflow::group::{Bucket, GroupCommand, GroupMod};
use mgmt::openflow::message::*;
use mgmt::openflow::meter::{MeterBand, MeterCommand, MeterMod};
use mgmt::openflow::multipart::{FlowStats, FlowStatsRequest, MultipartReply, MultipartRequest};
use mgmt::openflow::oxm::{Match, OxmField, is_maskable, is_settable};
use mgmt::openflow::port;
use mgmt::openflow::session::{Session, SessionConfig};
use mgmt::openflow::{Framer, OFP10, OFP13, OFP14, OFP15};
use proptest::prelude::*;
use switch_core::flow::Field;

fn field_value(f: Field) -> impl Strategy<Value = u128> {
    any::<u128>().prop_map(move |v| v & f.max())
}

fn oxm(f: Field, allow_mask: bool) -> BoxedStrategy<OxmField> {
    let masked = allow_mask && is_maskable(f);
    (field_value(f), field_value(f), any::<bool>())
        .prop_map(move |(v, m, use_mask)| {
            if masked && use_mask {
                OxmField::masked(f, v & m, m)
            } else {
                OxmField::exact(f, v)
            }
        })
        .boxed()
}

/// Matches that satisfy the prerequisites: free fields plus one L3/L4 block.
fn match13() -> impl Strategy<Value = Match> {
    let free = proptest::sample::subsequence(
        vec![
            Field::InPort,
            Field::Metadata,
            Field::EthDst,
            Field::EthSrc,
            Field::TunnelId,
        ],
        0..=5,
    );
    let l3 = prop_oneof![
        Just(vec![]),
        Just(vec![Field::Ipv4Src, Field::Ipv4Dst, Field::IpDscp]),
        Just(vec![Field::ArpOp, Field::ArpSpa, Field::ArpTha]),
        Just(vec![Field::Ipv6Src, Field::Ipv6Dst, Field::Ipv6Flabel]),
    ];
    let l4 = prop_oneof![
        Just(None),
        Just(Some((6u8, Field::TcpSrc, Field::TcpDst))),
        Just(Some((17, Field::UdpSrc, Field::UdpDst)))
    ];
    (free, l3, l4, any::<u64>()).prop_flat_map(|(free, l3, l4, seed)| {
        let mut fields: Vec<BoxedStrategy<OxmField>> = free.iter().map(|&f| oxm(f, true)).collect();
        let eth = match l3.first() {
            Some(Field::Ipv4Src) => Some(0x0800),
            Some(Field::ArpOp) => Some(0x0806),
            Some(Field::Ipv6Src) => Some(0x86dd),
            _ => None,
        };
        if let Some(e) = eth {
            fields.push(Just(OxmField::exact(Field::EthType, e)).boxed());
            for f in &l3 {
                fields.push(oxm(*f, true));
            }
            if let (Some((p, s, d)), true) = (l4, e != 0x0806) {
                fields.push(Just(OxmField::exact(Field::IpProto, p as u128)).boxed());
                fields.push(oxm(s, true));
                fields.push(oxm(d, true));
            }
        }
        let _ = seed;
        fields.prop_map(|fields| Match { fields })
    })
}

fn out_port() -> impl Strategy<Value = u32> {
    prop_oneof![
        1..0xff00u32,
        Just(port::OFPP_CONTROLLER),
        Just(port::OFPP_FLOOD),
        Just(port::OFPP_IN_PORT),
        Just(port::OFPP_LOCAL)
    ]
}

fn action13() -> impl Strategy<Value = Action> {
    let settable: Vec<Field> = Field::ALL
        .iter()
        .copied()
        .filter(|&f| is_settable(f))
        .collect();
    prop_oneof![
        (out_port(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        (0..=0xffff_ff00u32).prop_map(Action::Group),
        any::<u32>().prop_map(Action::SetQueue),
        prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
        Just(Action::PopVlan),
        Just(Action::PushMpls(0x8847)),
        any::<u16>().prop_map(Action::PopMpls),
        any::<u8>().prop_map(Action::SetMplsTtl),
        Just(Action::DecMplsTtl),
        Just(Action::CopyTtlOut),
        Just(Action::CopyTtlIn),
        any::<u8>().prop_map(Action::SetNwTtl),
        Just(Action::DecNwTtl),
        proptest::sample::select(settable)
            .prop_flat_map(|f| oxm(f, false))
            .prop_map(Action::SetField),
    ]
}

fn action10() -> impl Strategy<Value = Action> {
    let set =
        |f: Field, max: u128| (0..=max).prop_map(move |v| Action::SetField(OxmField::exact(f, v)));
    prop_oneof![
        (out_port(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        ((1..0xff00u32), any::<u32>())
            .prop_map(|(port, queue_id)| Action::Enqueue { port, queue_id }),
        (0..=0xfffu128).prop_map(|v| Action::SetField(OxmField::exact(Field::VlanVid, v | 0x1000))),
        set(Field::VlanPcp, 7),
        Just(Action::PopVlan),
        set(Field::EthSrc, (1 << 48) - 1),
        set(Field::EthDst, (1 << 48) - 1),
        set(Field::Ipv4Src, u32::MAX as u128),
        set(Field::Ipv4Dst, u32::MAX as u128),
        set(Field::IpDscp, 63),
        set(Field::TcpSrc, 0xffff),
        set(Field::TcpDst, 0xffff),
    ]
}

fn instructions13() -> impl Strategy<Value = Vec<Instruction>> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(proptest::collection::vec(action13(), 0..6)),
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(action13(), 0..4)),
        proptest::option::of((any::<u64>(), any::<u64>())),
        proptest::option::of(0u8..0xfe),
    )
        .prop_map(|(meter, apply, clear, write, md, goto)| {
            let mut v = Vec::new();
            if let Some(m) = meter {
                v.push(Instruction::Meter(m));
            }
            if let Some(a) = apply {
                v.push(Instruction::ApplyActions(a));
            }
            if clear {
                v.push(Instruction::ClearActions);
            }
            if let Some(a) = write {
                v.push(Instruction::WriteActions(a));
            }
            if let Some((metadata, mask)) = md {
                v.push(Instruction::WriteMetadata { metadata, mask });
            }
            if let Some(t) = goto {
                v.push(Instruction::GotoTable(t));
            }
            v
        })
}

fn flow_mod13(version: u8) -> impl Strategy<Value = FlowMod> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            0u8..0xfe,
            0u8..5,
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            0u16..0x20,
            any::<u16>(),
        ),
        match13(),
        instructions13(),
    )
        .prop_map(
            move |(
                (cookie, cookie_mask, table_id, cmd, idle, hard, prio),
                (buffer_id, out_port, out_group, flags, imp),
                match_,
                instructions,
            )| FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command: [
                    FlowModCommand::Add,
                    FlowModCommand::Modify,
                    FlowModCommand::ModifyStrict,
                    FlowModCommand::Delete,
                    FlowModCommand::DeleteStrict,
                ][cmd as usize],
                idle_timeout: idle,
                hard_timeout: hard,
                priority: prio,
                buffer_id,
                out_port,
                out_group,
                flags,
                importance: if version >= OFP14 { imp } else { 0 },
                match_,
                instructions,
            },
        )
}

fn match10() -> impl Strategy<Value = Match> {
    (
        proptest::option::of(1u32..0xff00),
        proptest::option::of(any::<[u8; 6]>()),
        proptest::option::of(prop_oneof![
            Just(0u128),
            (0..=0xfffu128).prop_map(|v| v | 0x1000)
        ]),
        proptest::option::of((any::<u32>(), 0u32..=32, 0u8..64, any::<u16>())),
    )
        .prop_map(|(in_port, mac, vlan, ip)| {
            let mut m = Match::any();
            if let Some(p) = in_port {
                m.fields.push(OxmField::exact(Field::InPort, p as u128));
            }
            if let Some(mac) = mac {
                let v = mac.iter().fold(0u128, |a, &b| a << 8 | b as u128);
                m.fields.push(OxmField::exact(Field::EthSrc, v));
            }
            if let Some(v) = vlan {
                m.fields.push(OxmField::exact(Field::VlanVid, v));
            }
            if let Some((src, plen, dscp, dport)) = ip {
                m.fields.push(OxmField::exact(Field::EthType, 0x0800));
                m.fields.push(OxmField::exact(Field::IpDscp, dscp as u128));
                m.fields.push(OxmField::exact(Field::IpProto, 17));
                match plen {
                    0 => {}
                    32 => m.fields.push(OxmField::exact(Field::Ipv4Src, src as u128)),
                    n => {
                        let mask = u32::MAX << (32 - n);
                        m.fields.push(OxmField::masked(
                            Field::Ipv4Src,
                            (src & mask) as u128,
                            mask as u128,
                        ));
                    }
                }
                m.fields.push(OxmField::exact(Field::UdpDst, dport as u128));
            }
            m
        })
}

fn flow_mod10() -> impl Strategy<Value = FlowMod> {
    (
        any::<u64>(),
        0u8..5,
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        1u32..0xff00,
        0u16..4,
        match10(),
        proptest::collection::vec(action10(), 0..8),
    )
        .prop_map(
            |(cookie, cmd, prio, idle, buffer_id, out_port, flags, match_, actions)| FlowMod {
                cookie,
                table_id: 0xff,
                command: [
                    FlowModCommand::Add,
                    FlowModCommand::Modify,
                    FlowModCommand::ModifyStrict,
                    FlowModCommand::Delete,
                    FlowModCommand::DeleteStrict,
                ][cmd as usize],
                priority: prio,
                idle_timeout: idle,
                buffer_id,
                out_port,
                flags,
                match_,
                instructions: ofp10_instructions(actions),
                ..Default::default()
            },
        )
}

fn roundtrip(version: u8, m: &Message) -> Vec<u8> {
    let bytes = m.encode(version, 77).unwrap();
    let (h, back) = Message::decode(&bytes).unwrap_or_else(|e| panic!("v{version} {m:?}: {e}"));
    assert_eq!(h.length as usize, bytes.len());
    assert_eq!(&back, m);
    bytes
}

/// Decoding every truncation (as is, and with the length field rewritten) never panics, and a
/// short buffer is always an error.
fn abuse(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        assert!(Message::decode(&bytes[..cut]).is_err());
        if cut >= 8 {
            let mut t = bytes[..cut].to_vec();
            t[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
            let _ = Message::decode(&t);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn flow_mod_roundtrip_13_14_15(fm in flow_mod13(OFP13), v in prop_oneof![Just(OFP13), Just(OFP14), Just(OFP15)]) {
        let fm = FlowMod { importance: 0, ..fm };
        // ADD to OFPTT_ALL is refused by the decoder, so the strategy never makes it.
        let b = roundtrip(v, &Message::FlowMod(fm));
        abuse(&b);
    }

    #[test]
    fn flow_mod_roundtrip_14_importance(fm in flow_mod13(OFP14)) {
        roundtrip(OFP14, &Message::FlowMod(fm));
    }

    #[test]
    fn flow_mod_roundtrip_10(fm in flow_mod10()) {
        let b = roundtrip(OFP10, &Message::FlowMod(fm));
        abuse(&b);
    }

    #[test]
    fn packet_out_roundtrip(v in prop_oneof![Just(OFP10), Just(OFP13), Just(OFP14), Just(OFP15)],
                            acts13 in proptest::collection::vec(action13(), 0..5),
                            acts10 in proptest::collection::vec(action10(), 0..5),
                            in_port in prop_oneof![1u32..0xff00, Just(port::OFPP_CONTROLLER), Just(port::OFPP_LOCAL)],
                            data in proptest::collection::vec(any::<u8>(), 1..200)) {
        let po = PacketOut { buffer_id: NO_BUFFER, in_port, actions: if v == OFP10 { acts10 } else { acts13 }, data };
        let b = roundtrip(v, &Message::PacketOut(po));
        abuse(&b);
    }

    #[test]
    fn packet_in_roundtrip(v in prop_oneof![Just(OFP13), Just(OFP14), Just(OFP15)], m in match13(),
                           data in proptest::collection::vec(any::<u8>(), 0..200), reason in 0u8..3, cookie in any::<u64>()) {
        let pi = PacketIn { buffer_id: NO_BUFFER, total_len: data.len() as u16, reason, table_id: 3, cookie, match_: m, data };
        let b = roundtrip(v, &Message::PacketIn(pi));
        abuse(&b);
    }

    #[test]
    fn group_and_meter_roundtrip(v in prop_oneof![Just(OFP13), Just(OFP14)], ty in 0u8..4, id in 0u32..0xffff_ff00,
                                 buckets in proptest::collection::vec((any::<u16>(), any::<u32>(), any::<u32>(), proptest::collection::vec(action13(), 0..4)), 0..4),
                                 rates in proptest::collection::vec((any::<u32>(), any::<u32>(), proptest::option::of(any::<u8>())), 0..4)) {
        let gm = GroupMod {
            command: GroupCommand::Modify,
            group_type: ty,
            group_id: id,
            buckets: buckets.into_iter().map(|(weight, watch_port, watch_group, actions)| Bucket { weight, watch_port, watch_group, actions }).collect(),
        };
        let b = roundtrip(v, &Message::GroupMod(gm));
        abuse(&b);
        let mm = MeterMod {
            command: MeterCommand::Add,
            flags: 2 | 8,
            meter_id: id % 0xffff_0000 + 1,
            bands: rates.into_iter().map(|(rate, burst_size, prec)| match prec {
                Some(prec_level) => MeterBand::DscpRemark { rate, burst_size, prec_level },
                None => MeterBand::Drop { rate, burst_size },
            }).collect(),
        };
        let b = roundtrip(v, &Message::MeterMod(mm));
        abuse(&b);
    }

    #[test]
    fn flow_stats_roundtrip(v in prop_oneof![Just(OFP13), Just(OFP14)], fms in proptest::collection::vec(flow_mod13(OFP14), 0..5)) {
        let stats: Vec<FlowStats> = fms.into_iter().map(|f| FlowStats {
            table_id: f.table_id, duration_sec: 1, duration_nsec: 2, priority: f.priority,
            idle_timeout: f.idle_timeout, hard_timeout: f.hard_timeout, flags: f.flags,
            importance: if v >= OFP14 { f.importance } else { 0 }, cookie: f.cookie,
            packet_count: 5, byte_count: 6, match_: f.match_, instructions: f.instructions,
        }).collect();
        let b = roundtrip(v, &Message::MultipartReply { flags: 0, body: MultipartReply::Flow(stats) });
        abuse(&b);
        let req = FlowStatsRequest { table_id: 1, out_port: 2, out_group: 3, cookie: 4, cookie_mask: 5, match_: Match::any() };
        roundtrip(v, &Message::MultipartRequest { flags: 0, body: MultipartRequest::Flow(req) });
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v in prop_oneof![Just(OFP10), Just(OFP13), Just(OFP14), Just(OFP15)], t in 0u8..35) {
        // A well-formed header in front of random bodies reaches every body decoder.
        let mut msg = vec![v, t, 0, 0, 0, 0, 0, 1];
        msg.extend_from_slice(&bytes);
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        let _ = Message::decode(&msg);
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn session_survives_garbage_after_hello(v in prop_oneof![Just(OFP10), Just(OFP13), Just(OFP14), Just(OFP15)],
                                             bodies in proptest::collection::vec((0u8..35, proptest::collection::vec(any::<u8>(), 0..100)), 1..20)) {
        let mut s = Session::new(SessionConfig::default(), 0);
        s.on_bytes(0, &Message::Hello(Hello { bitmap: Some(1 << v) }).encode(v, 1).unwrap());
        for (t, body) in bodies {
            let mut msg = vec![v, t, 0, 0, 0, 0, 0, 2];
            msg.extend_from_slice(&body);
            let len = msg.len() as u16;
            msg[2..4].copy_from_slice(&len.to_be_bytes());
            let _ = s.on_bytes(0, &msg);
        }
        prop_assert!(s.is_connected());
        // Everything the session wrote is well-formed and decodable.
        let out = s.poll_output();
        let mut f = Framer::default();
        f.push(&out);
        while let Some(m) = f.next_message() {
            let m = m.unwrap();
            prop_assert!(Message::decode(&m).is_ok());
        }
    }
}

#[test]
fn specific_malformed_cases() {
    // A FLOW_MOD whose match length runs past the message.
    let fm = FlowMod {
        table_id: 0,
        match_: Match::any().with(OxmField::exact(Field::InPort, 1)),
        ..Default::default()
    };
    let mut b = Message::FlowMod(fm).encode(OFP13, 1).unwrap();
    b[8 + 40 + 2..8 + 40 + 4].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_MATCH_LEN);
    // Match type 0 (OFPMT_STANDARD) is not OXM.
    b[8 + 40..8 + 40 + 2].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_MATCH_TYPE);
    // A 1.3 add to OFPTT_ALL.
    let fm = FlowMod {
        table_id: 0xff,
        ..Default::default()
    };
    let b = Message::FlowMod(fm).encode(OFP13, 1).unwrap();
    assert_eq!(
        Message::decode(&b).unwrap_err(),
        OfpError::FLOW_MOD_BAD_TABLE_ID
    );
    // Unknown flow-mod command.
    let fm = FlowMod {
        table_id: 0,
        ..Default::default()
    };
    let mut b = Message::FlowMod(fm).encode(OFP13, 1).unwrap();
    b[8 + 17] = 9;
    assert_eq!(
        Message::decode(&b).unwrap_err(),
        OfpError::FLOW_MOD_BAD_COMMAND
    );
    // Instruction with length 4.
    let fm = FlowMod {
        table_id: 0,
        instructions: vec![Instruction::ClearActions],
        ..Default::default()
    };
    let mut b = Message::FlowMod(fm).encode(OFP13, 1).unwrap();
    let n = b.len();
    b[n - 6..n - 4].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::INST_BAD_LEN);
    // Unknown instruction type.
    b[n - 6..n - 4].copy_from_slice(&8u16.to_be_bytes());
    b[n - 8..n - 6].copy_from_slice(&42u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::UNKNOWN_INST);
    // Packet-out whose actions_len runs past the message.
    let po = PacketOut {
        buffer_id: 5,
        in_port: 1,
        actions: vec![],
        data: vec![],
    };
    let mut b = Message::PacketOut(po.clone()).encode(OFP13, 1).unwrap();
    b[16..18].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_LEN);
    // Packet-out from a bad in_port; without buffer and data.
    let b = Message::PacketOut(PacketOut {
        in_port: 0xffff_ff10,
        ..po.clone()
    })
    .encode(OFP13, 1)
    .unwrap();
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_PORT);
    let b = Message::PacketOut(PacketOut {
        buffer_id: NO_BUFFER,
        ..po
    })
    .encode(OFP13, 1)
    .unwrap();
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_PACKET);
    // Group-mod: bad command, bad type, bucket too short.
    let gm = GroupMod {
        command: GroupCommand::Add,
        group_type: 0,
        group_id: 1,
        buckets: vec![Bucket {
            weight: 0,
            watch_port: 0,
            watch_group: 0,
            actions: vec![],
        }],
    };
    let good = Message::GroupMod(gm).encode(OFP13, 1).unwrap();
    let mut b = good.clone();
    b[9] = 7;
    assert_eq!(
        Message::decode(&b).unwrap_err(),
        OfpError::GROUP_BAD_COMMAND
    );
    let mut b = good.clone();
    b[10] = 9;
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_GROUP_TYPE);
    let mut b = good.clone();
    b[16..18].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_BUCKET);
    // Meter-mod: both KBPS and PKTPS; unknown band type.
    let mm = MeterMod {
        command: MeterCommand::Add,
        flags: 1,
        meter_id: 1,
        bands: vec![MeterBand::Drop {
            rate: 1,
            burst_size: 0,
        }],
    };
    let good = Message::MeterMod(mm).encode(OFP13, 1).unwrap();
    let mut b = good.clone();
    b[11] = 3;
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::METER_BAD_FLAGS);
    let mut b = good.clone();
    b[17] = 9;
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::METER_BAD_BAND);
    // 1.0 multipart types beyond QUEUE (but port-desc, OVS's extension); a 1.3 port-desc
    // request with a body.
    let b = [1u8, 16, 0, 12, 0, 0, 0, 1, 0, 12, 0, 0];
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_MULTIPART);
    let b = [
        4u8, 18, 0, 20, 0, 0, 0, 1, 0, 13, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
    ];
    assert_eq!(Message::decode(&b).unwrap_err(), OfpError::BAD_LEN);
    // Unsupported version.
    assert_eq!(
        Message::decode(&[2, 0, 0, 8, 0, 0, 0, 1]).unwrap_err(),
        OfpError::BAD_VERSION
    );
    // 1.0 types that only exist in 1.1+.
    assert_eq!(
        Message::decode(&[1, 24, 0, 8, 0, 0, 0, 1]).unwrap_err(),
        OfpError::BAD_TYPE
    );
}

/// Found by the `of_codec` fuzz target: an OpenFlow 1.0 queue-config reply carrying property
/// type 2 (max-rate, which 1.0 does not have) decoded into a reply the encoder refused. 1.0 skips
/// the property as unknown, so the message re-encodes.
#[test]
fn ofp10_queue_reply_skips_the_max_rate_property() {
    let mut b = vec![1u8, 21, 0, 0, 0, 0, 0, 7];
    b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // port 1, pad
    b.extend_from_slice(&[0, 0, 0, 9, 0, 40, 0, 0]); // queue 9, len 8 + 2 * 16
    for (t, rate) in [(1u16, 100u16), (2, 255)] {
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&16u16.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&rate.to_be_bytes());
        b.extend_from_slice(&[0; 6]);
    }
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    let (h, m) = Message::decode(&b).unwrap();
    let Message::QueueGetConfigReply { port, queues } = &m else {
        panic!("{m:?}");
    };
    assert_eq!(*port, 1);
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].queue_id, 9);
    assert_eq!(queues[0].min_rate, Some(100));
    assert_eq!(queues[0].max_rate, None);
    let again = m.encode(h.version, h.xid).unwrap();
    assert_eq!(Message::decode(&again).unwrap().1, m);
}

/// Writes one seed file per (message, version) for the fuzz corpus when
/// `IRONFLOW_FUZZ_SEEDS=<dir>` is set (`mgmt/fuzz/seeds/of_codec`); otherwise does nothing.
#[test]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("IRONFLOW_FUZZ_SEEDS") else {
        return;
    };
    let tcp = Match::any()
        .with(OxmField::exact(Field::InPort, 3))
        .with(OxmField::exact(Field::EthType, 0x0800))
        .with(OxmField::exact(Field::IpProto, 6))
        .with(OxmField::masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000))
        .with(OxmField::exact(Field::TcpDst, 80));
    let acts = vec![
        Action::SetField(OxmField::exact(Field::VlanVid, 0x1005)),
        Action::PopVlan,
        Action::Output {
            port: 2,
            max_len: 0,
        },
    ];
    let fm = FlowMod {
        table_id: 0,
        match_: tcp.clone(),
        instructions: vec![
            Instruction::ApplyActions(acts.clone()),
            Instruction::GotoTable(1),
        ],
        ..Default::default()
    };
    let fm10 = FlowMod {
        table_id: 0xff,
        instructions: vec![Instruction::ApplyActions(acts.clone())],
        ..fm.clone()
    };
    let msgs = vec![
        Message::Hello(Hello::for_versions(0x72)),
        Message::EchoRequest(vec![1, 2]),
        Message::FeaturesRequest,
        Message::GetConfigRequest,
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }),
        Message::BarrierRequest,
        Message::FlowMod(fm.clone()),
        Message::PacketOut(PacketOut {
            buffer_id: NO_BUFFER,
            in_port: 1,
            actions: acts.clone(),
            data: vec![0; 60],
        }),
        Message::GroupMod(GroupMod {
            command: GroupCommand::Add,
            group_type: 1,
            group_id: 1,
            buckets: vec![Bucket {
                weight: 1,
                watch_port: 0,
                watch_group: 0,
                actions: acts.clone(),
            }],
        }),
        Message::MeterMod(MeterMod {
            command: MeterCommand::Add,
            flags: 1,
            meter_id: 1,
            bands: vec![MeterBand::Drop {
                rate: 1,
                burst_size: 0,
            }],
        }),
        Message::RoleRequest(Role {
            role: 2,
            generation_id: 1,
        }),
        Message::SetAsync(AsyncConfig::default_masks()),
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Flow(FlowStatsRequest {
                match_: tcp.clone(),
                ..Default::default()
            }),
        },
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::PortDesc,
        },
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::TableFeatures(vec![
                mgmt::openflow::multipart::TableFeatures::ironflow(0, 2, 10),
            ]),
        },
        Message::Nicira(NxMessage::FlowModTableId(true)),
    ];
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for v in [OFP10, OFP13, OFP14, OFP15] {
        for m in msgs.iter().chain([&Message::FlowMod(fm10.clone())]) {
            if let Ok(b) = m.encode(v, 1) {
                let mut seed = vec![0x80];
                seed.extend(b);
                std::fs::write(format!("{dir}/seed-{v}-{n}"), seed).unwrap();
                n += 1;
            }
        }
    }
}
