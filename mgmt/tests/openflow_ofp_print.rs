//! Encoder checks against Open vSwitch's own decoder: every message is encoded with our codec
//! for each version, fed to `ovs-ofctl ofp-print <hex>`, and the text OVS prints is checked
//! (no decode error, and the fields we set). The bytes are then decoded by our codec again and
//! must give back the same message. Skipped when `ovs-ofctl` is not installed.

use std::process::Command;

use mgmt::openflow::action::{Action, Instruction};
use mgmt::openflow::error::OfpError;
use mgmt::openflow::group::{Bucket, GroupCommand, GroupDesc, GroupFeatures, GroupMod, GroupStats};
use mgmt::openflow::message::*;
use mgmt::openflow::meter::{
    MeterBand, MeterCommand, MeterConfig, MeterFeatures, MeterMod, MeterStats,
};
use mgmt::openflow::multipart::*;
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::port::{self, PortDesc, PortMod, PortStats};
use mgmt::openflow::{OFP10, OFP13, OFP14, OFP15};
use switch_core::flow::Field;

fn have_ofctl() -> bool {
    Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ofp_print(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("ovs-ofctl")
        .args(["ofp-print", &hex, "3"])
        .output()
        .expect("run ovs-ofctl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Encodes `m` for `version`, checks OVS's rendering contains every `want`, and that our
/// decoder returns `m` (unless `lossy`).
fn check(version: u8, m: &Message, want: &[&str]) {
    let bytes = m
        .encode(version, 0x1234)
        .unwrap_or_else(|e| panic!("encode {m:?} v{version}: {e}"));
    let text = ofp_print(&bytes);
    assert!(
        !text.contains("***") && !text.contains("decode error") && !text.contains("bad "),
        "v{version} {m:?}\n{text}"
    );
    for w in want {
        assert!(text.contains(w), "v{version}: missing {w:?} in\n{text}");
    }
    let (h, back) =
        Message::decode(&bytes).unwrap_or_else(|e| panic!("decode v{version}: {e}\n{text}"));
    assert_eq!((h.version, h.xid), (version, 0x1234));
    assert_eq!(&back, m, "v{version} round trip");
}

macro_rules! need_ofctl {
    () => {
        if !have_ofctl() {
            eprintln!("ovs-ofctl not installed; skipping");
            return;
        }
    };
}

const ALL: [u8; 4] = [OFP10, OFP13, OFP14, OFP15];
const V13UP: [u8; 3] = [OFP13, OFP14, OFP15];

fn port1() -> PortDesc {
    PortDesc {
        port_no: 1,
        hw_addr: [2, 0, 0, 0, 0, 1],
        name: "eth1".into(),
        config: 0,
        state: 4,
        curr: 0x20 | 0x800,
        advertised: 0,
        supported: 0x20 | 0x800,
        peer: 0,
        curr_speed: 1_000_000,
        max_speed: 1_000_000,
    }
}

fn tcp_match() -> Match {
    Match::any()
        .with(OxmField::exact(Field::InPort, 3))
        .with(OxmField::exact(Field::EthType, 0x0800))
        .with(OxmField::exact(Field::IpProto, 6))
        .with(OxmField::masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000))
        .with(OxmField::exact(Field::TcpDst, 80))
}

#[test]
fn symmetric_and_config_messages() {
    need_ofctl!();
    for v in ALL {
        check(
            v,
            &Message::Hello(Hello::for_versions(0x72)),
            &["OFPT_HELLO", "version bitmap: 0x01, 0x04, 0x05, 0x06"],
        );
        check(
            v,
            &Message::EchoRequest(vec![1, 2, 3]),
            &["OFPT_ECHO_REQUEST"],
        );
        check(v, &Message::EchoReply(vec![]), &["OFPT_ECHO_REPLY"]);
        check(v, &Message::FeaturesRequest, &["OFPT_FEATURES_REQUEST"]);
        check(v, &Message::GetConfigRequest, &["OFPT_GET_CONFIG_REQUEST"]);
        let c = SwitchConfig {
            flags: 1,
            miss_send_len: 128,
        };
        check(
            v,
            &Message::GetConfigReply(c),
            &["OFPT_GET_CONFIG_REPLY", "frags=drop miss_send_len=128"],
        );
        check(
            v,
            &Message::SetConfig(c),
            &["OFPT_SET_CONFIG", "frags=drop miss_send_len=128"],
        );
        check(v, &Message::BarrierRequest, &["OFPT_BARRIER_REQUEST"]);
        check(v, &Message::BarrierReply, &["OFPT_BARRIER_REPLY"]);
        if v == OFP10 {
            // OVS knows these two only in OpenFlow 1.0.
            check(
                v,
                &Message::Nicira(NxMessage::SetFlowFormat(2)),
                &["NXT_SET_FLOW_FORMAT", "format=nxm"],
            );
            check(
                v,
                &Message::Nicira(NxMessage::FlowModTableId(true)),
                &["NXT_FLOW_MOD_TABLE_ID", "enable"],
            );
        }
        check(
            v,
            &Message::Nicira(NxMessage::SetPacketInFormat(1)),
            &["NXT_SET_PACKET_IN_FORMAT", "format=nxt_packet_in"],
        );
        check(
            v,
            &Message::Nicira(NxMessage::SetControllerId(7)),
            &["NXT_SET_CONTROLLER_ID", "id=7"],
        );
    }
}

#[test]
fn errors_per_version() {
    need_ofctl!();
    // The echoed request: an echo request of the same version.
    let e = |err: OfpError, v: u8| {
        Message::Error(ErrorMsg::reply_to(err, v, &[v, 2, 0, 8, 0, 0, 0, 1]))
    };
    check(
        OFP13,
        &e(OfpError::DUP_FIELD, OFP13),
        &["OFPT_ERROR", "OFPBMC_DUP_FIELD"],
    );
    check(
        OFP13,
        &e(OfpError::BAD_SET_TYPE, OFP13),
        &["OFPBAC_BAD_SET_TYPE"],
    );
    check(OFP13, &e(OfpError::DUP_INST, OFP13), &["OFPBIC_UNSUP_INST"]);
    check(OFP14, &e(OfpError::DUP_INST, OFP14), &["OFPBIC_DUP_INST"]);
    check(
        OFP13,
        &e(OfpError::IS_SLAVE, OFP13),
        &["OFPBRC_IS_SECONDARY"],
    );
    check(
        OFP13,
        &e(OfpError::METER_BAD_FLAGS, OFP13),
        &["OFPMMFC_BAD_FLAGS"],
    );
    check(
        OFP10,
        &e(OfpError::FLOW_MOD_BAD_COMMAND, OFP10),
        &["OFPFMFC_BAD_COMMAND"],
    );
    check(
        OFP10,
        &e(OfpError::BAD_MULTIPART, OFP10),
        &["OFPBRC_BAD_STAT"],
    );
    check(
        OFP10,
        &e(OfpError::BAD_OUT_PORT, OFP10),
        &["OFPBAC_BAD_OUT_PORT"],
    );
    check(
        OFP10,
        &e(OfpError::HELLO_INCOMPATIBLE, OFP10),
        &["OFPHFC_INCOMPATIBLE"],
    );
    check(
        OFP15,
        &e(OfpError::BAD_PROPERTY_TYPE, OFP15),
        &["OFPBPC_BAD_TYPE"],
    );
}

#[test]
fn features_and_ports() {
    need_ofctl!();
    for v in ALL {
        let f = SwitchFeatures {
            datapath_id: 0xabcd,
            n_buffers: 0,
            n_tables: 4,
            auxiliary_id: 0,
            capabilities: if v == OFP10 { 0x87 } else { 0x4f },
            actions: if v == OFP10 { 0xfff } else { 0 },
            ports: if v == OFP10 {
                vec![PortDesc {
                    curr_speed: 0,
                    max_speed: 0,
                    ..port1()
                }]
            } else {
                vec![]
            },
        };
        let mut want = vec!["OFPT_FEATURES_REPLY", "dpid:000000000000abcd", "n_tables:4"];
        if v == OFP10 {
            want.extend([
                "1(eth1): addr:02:00:00:00:00:01",
                "ARP_MATCH_IP",
                "mod_tp_dst",
            ]);
        } else {
            want.push("GROUP_STATS");
        }
        check(v, &Message::FeaturesReply(f), &want);
        let mut want = vec![
            "OFPT_PORT_STATUS",
            "ADD: 1(eth1): addr:02:00:00:00:00:01",
            "current:    1GB-FD COPPER",
        ];
        if v != OFP10 {
            want.extend(["LIVE", "speed: 1000 Mbps now, 1000 Mbps max"]);
        }
        let desc = if v == OFP10 {
            PortDesc {
                curr_speed: 0,
                max_speed: 0,
                ..port1()
            }
        } else {
            port1()
        };
        check(
            v,
            &Message::PortStatus(PortStatus { reason: 0, desc }),
            &want,
        );
        let pm = PortMod {
            port_no: 1,
            hw_addr: [2, 0, 0, 0, 0, 1],
            config: 1,
            mask: 1,
            advertise: 0x20,
        };
        check(
            v,
            &Message::PortMod(pm),
            &[
                "OFPT_PORT_MOD",
                "port: 1: addr:02:00:00:00:00:01",
                "config: PORT_DOWN",
                "advertise: 1GB-FD",
            ],
        );
    }
}

#[test]
fn packet_in_flow_removed() {
    need_ofctl!();
    let frame: Vec<u8> = (0..60u8).collect();
    for v in ALL {
        let mut m = Match::any().with(OxmField::exact(Field::InPort, 3));
        if v != OFP10 {
            m.fields.push(OxmField::exact(Field::Metadata, 0x55));
        }
        let pi = PacketIn {
            buffer_id: NO_BUFFER,
            total_len: 60,
            reason: 1,
            table_id: if v == OFP10 { 0 } else { 2 },
            cookie: if v == OFP10 { 0 } else { 0x99 },
            match_: m,
            data: frame.clone(),
        };
        let mut want = vec![
            "OFPT_PACKET_IN",
            "total_len=60",
            "in_port=3",
            "(via action)",
            "data_len=60",
        ];
        if v != OFP10 {
            want.extend(["table_id=2", "cookie=0x99", "metadata=0x55"]);
        }
        check(v, &Message::PacketIn(pi), &want);
        let m = if v == OFP10 {
            Match::any()
                .with(OxmField::exact(Field::InPort, 3))
                .with(OxmField::exact(Field::EthType, 0x0800))
                .with(OxmField::exact(Field::IpProto, 6))
                .with(OxmField::masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000))
                .with(OxmField::exact(Field::TcpDst, 80))
        } else {
            tcp_match()
        };
        let fr = FlowRemoved {
            cookie: 0x77,
            priority: 100,
            reason: 0,
            table_id: 0,
            duration_sec: 5,
            duration_nsec: 500_000_000,
            idle_timeout: 10,
            hard_timeout: if v == OFP10 { 0 } else { 30 },
            packet_count: 9,
            byte_count: 900,
            match_: m,
        };
        check(
            v,
            &Message::FlowRemoved(fr),
            &[
                "OFPT_FLOW_REMOVED",
                "priority=100,tcp,in_port=3,nw_src=10.0.0.0/8,tp_dst=80",
                "reason=idle",
                "duration5.500s",
                "idle10",
                "pkts9 bytes900",
            ],
        );
    }
}

fn all_actions() -> Vec<Action> {
    vec![
        Action::SetField(OxmField::exact(Field::VlanVid, 0x1005)),
        Action::SetField(OxmField::exact(Field::VlanPcp, 3)),
        Action::SetField(OxmField::exact(Field::EthSrc, 0x0011_2233_4455)),
        Action::SetField(OxmField::exact(Field::Ipv4Dst, 0xc0a8_0001)),
        Action::SetField(OxmField::exact(Field::IpDscp, 8)),
        Action::SetField(OxmField::exact(Field::TcpSrc, 1234)),
        Action::PopVlan,
        Action::Output {
            port: 2,
            max_len: 0,
        },
        Action::Output {
            port: port::OFPP_CONTROLLER,
            max_len: 128,
        },
    ]
}

#[test]
fn flow_mods() {
    need_ofctl!();
    for v in ALL {
        let mut actions = all_actions();
        if v == OFP10 {
            actions.push(Action::Enqueue {
                port: 1,
                queue_id: 2,
            });
        } else {
            // OVS checks consistency: a VLAN must be pushed before its fields are set.
            actions.insert(0, Action::PushVlan(0x8100));
            actions.extend([
                Action::SetQueue(4),
                Action::Group(9),
                Action::DecNwTtl,
                Action::SetNwTtl(9),
            ]);
        }
        let mut insts = vec![Instruction::ApplyActions(actions)];
        if v != OFP10 {
            insts.extend([
                Instruction::WriteActions(vec![Action::Output {
                    port: 5,
                    max_len: 0,
                }]),
                Instruction::WriteMetadata {
                    metadata: 0x10,
                    mask: 0xff,
                },
                Instruction::GotoTable(3),
            ]);
            if v < OFP15 {
                insts.insert(0, Instruction::Meter(2));
            }
        }
        let fm = FlowMod {
            cookie: 0xabc,
            table_id: if v == OFP10 { 0xff } else { 1 },
            command: FlowModCommand::Add,
            idle_timeout: 10,
            hard_timeout: 20,
            priority: 300,
            flags: 1,
            match_: tcp_match(),
            instructions: insts,
            importance: if v >= OFP14 { 5 } else { 0 },
            ..Default::default()
        };
        let mut want = vec![
            "OFPT_FLOW_MOD",
            "ADD",
            if v == OFP10 {
                "pri:300"
            } else {
                "priority=300,tcp,in_port=3,nw_src=10.0.0.0/8,tp_dst=80"
            },
            "tcp,in_port=3",
            "nw_src=10.0.0.0/8",
            "tp_dst=80",
            "cookie:0xabc",
            "idle:10 hard:20",
            "send_flow_rem",
            "output:2",
            "CONTROLLER:128",
        ];
        if v == OFP10 {
            want.extend([
                "mod_vlan_vid:5",
                "mod_vlan_pcp:3",
                "mod_dl_src:00:11:22:33:44:55",
                "mod_nw_dst:192.168.0.1",
                "mod_nw_tos:32",
                "mod_tp_src:1234",
                "strip_vlan",
            ]);
        } else {
            want.extend([
                "set_field:4101->vlan_vid",
                "set_field:3->vlan_pcp",
                "set_field:00:11:22:33:44:55->eth_src",
                "set_field:192.168.0.1->ip_dst",
                "set_field:8->ip_dscp",
                "set_field:1234->tcp_src",
                "pop_vlan",
            ]);
        }
        if v == OFP10 {
            want.push("enqueue:1:2");
        } else {
            want.extend([
                "table:1",
                "push_vlan:0x8100",
                "set_queue:4",
                "group:9",
                "dec_ttl",
                "mod_nw_ttl:9",
                "write_actions(output:5)",
                "write_metadata:0x10/0xff",
                "goto_table:3",
            ]);
            if v < OFP15 {
                want.push("meter:2");
            }
        }
        if v >= OFP14 {
            want.push("importance:5");
        }
        check(v, &Message::FlowMod(fm), &want);
        if v != OFP10 {
            let v6 = FlowMod {
                table_id: 0,
                match_: Match::any()
                    .with(OxmField::exact(Field::EthType, 0x86dd))
                    .with(OxmField::masked(
                        Field::Ipv6Dst,
                        0x2001_0db8 << 96,
                        !0u128 << 64,
                    )),
                instructions: vec![Instruction::ApplyActions(vec![Action::SetField(
                    OxmField::exact(Field::Ipv6Src, 0x2001_0db8 << 96 | 1),
                )])],
                ..Default::default()
            };
            check(
                v,
                &Message::FlowMod(v6),
                &[
                    "ipv6,ipv6_dst=2001:db8::/64",
                    "set_field:2001:db8::1->ipv6_src",
                ],
            );
        }
        let del = FlowMod {
            command: FlowModCommand::DeleteStrict,
            table_id: if v == OFP10 { 0xff } else { 0 },
            out_port: 7,
            match_: Match::any().with(OxmField::exact(Field::VlanVid, 0)),
            ..Default::default()
        };
        check(
            v,
            &Message::FlowMod(del),
            &[
                "DEL_STRICT",
                if v == OFP10 {
                    "dl_vlan=65535"
                } else {
                    "vlan_tci=0x0000"
                },
                "out_port:7",
            ],
        );
    }
}

#[test]
fn packet_out() {
    need_ofctl!();
    for v in ALL {
        let po = PacketOut {
            buffer_id: NO_BUFFER,
            in_port: port::OFPP_CONTROLLER,
            actions: vec![Action::Output {
                port: port::OFPP_FLOOD,
                max_len: 0,
            }],
            data: vec![0xff; 60],
        };
        check(
            v,
            &Message::PacketOut(po),
            &[
                "OFPT_PACKET_OUT",
                "in_port=CONTROLLER",
                "actions=FLOOD",
                "data_len=60",
            ],
        );
    }
}

#[test]
fn groups_meters_tables_roles_async() {
    need_ofctl!();
    for v in V13UP {
        {
            let gm = GroupMod {
                command: GroupCommand::Add,
                group_type: 1,
                group_id: 5,
                buckets: vec![
                    Bucket {
                        weight: 10,
                        watch_port: port::OFPP_ANY,
                        watch_group: 0xffff_ffff,
                        actions: vec![Action::Output {
                            port: 1,
                            max_len: 0,
                        }],
                    },
                    Bucket {
                        weight: 20,
                        watch_port: port::OFPP_ANY,
                        watch_group: 0xffff_ffff,
                        actions: vec![Action::Output {
                            port: 2,
                            max_len: 0,
                        }],
                    },
                ],
            };
            check(
                v,
                &Message::GroupMod(gm),
                &[
                    "OFPT_GROUP_MOD",
                    if v >= OFP15 {
                        "ADD group_id=5,type=select,bucket=bucket_id:0,weight:10,actions=output:1,bucket=bucket_id:1,weight:20,actions=output:2"
                    } else {
                        "ADD group_id=5,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2"
                    },
                ],
            );
        }
        let mm = MeterMod {
            command: MeterCommand::Add,
            flags: 1 | 4 | 8,
            meter_id: 7,
            bands: vec![MeterBand::Drop {
                rate: 1000,
                burst_size: 100,
            }],
        };
        check(
            v,
            &Message::MeterMod(mm),
            &[
                "OFPT_METER_MOD",
                "ADD meter=7 kbps burst stats bands=",
                "type=drop rate=1000 burst_size=100",
            ],
        );
        check(
            v,
            &Message::TableMod(TableMod {
                table_id: 1,
                config: 0,
            }),
            &["OFPT_TABLE_MOD", "table_id=1"],
        );
        let r = Role {
            role: OFPCR_ROLE_MASTER,
            generation_id: 42,
        };
        check(
            v,
            &Message::RoleRequest(r),
            &["OFPT_ROLE_REQUEST", "role=primary generation_id=42"],
        );
        check(
            v,
            &Message::RoleReply(r),
            &["OFPT_ROLE_REPLY", "role=primary generation_id=42"],
        );
        check(v, &Message::GetAsyncRequest, &["OFPT_GET_ASYNC_REQUEST"]);
        check(
            v,
            &Message::GetAsyncReply(AsyncConfig::default_masks()),
            &[
                "OFPT_GET_ASYNC_REPLY",
                "PACKET_IN:",
                "no_match action invalid_ttl",
            ],
        );
        let mut a = AsyncConfig::default();
        a.masks[AsyncConfig::PORT_STATUS_MASTER] = Some(1);
        if v < OFP14 {
            a = AsyncConfig {
                masks: a.masks.map(|m| Some(m.unwrap_or(0))),
            };
        }
        check(v, &Message::SetAsync(a), &["OFPT_SET_ASYNC"]);
    }
}

fn mp(v: u8, body: MultipartReply, want: &[&str]) {
    check(v, &Message::MultipartReply { flags: 0, body }, want);
}

fn mpq(v: u8, body: MultipartRequest, want: &[&str]) {
    check(v, &Message::MultipartRequest { flags: 0, body }, want);
}

#[test]
fn multipart_requests() {
    need_ofctl!();
    for v in ALL {
        mpq(v, MultipartRequest::Desc, &["OFPST_DESC request"]);
        let fsr = FlowStatsRequest {
            match_: Match::any().with(OxmField::exact(Field::InPort, 1)),
            ..Default::default()
        };
        if v != OFP15 {
            mpq(
                v,
                MultipartRequest::Flow(fsr.clone()),
                &["OFPST_FLOW request", "in_port=1"],
            );
            mpq(
                v,
                MultipartRequest::Aggregate(fsr),
                &["OFPST_AGGREGATE request", "in_port=1"],
            );
        }
        mpq(v, MultipartRequest::Table, &["OFPST_TABLE request"]);
        mpq(
            v,
            MultipartRequest::PortStats {
                port_no: port::OFPP_ANY,
            },
            &["OFPST_PORT request", "port_no=ANY"],
        );
        mpq(
            v,
            MultipartRequest::Queue {
                port_no: 1,
                queue_id: OFPQ_ALL,
            },
            &["OFPST_QUEUE request", "port=1 queue=ALL"],
        );
        if v == OFP10 {
            continue;
        }
        mpq(v, MultipartRequest::PortDesc, &["OFPST_PORT_DESC request"]);
        mpq(
            v,
            MultipartRequest::Group {
                group_id: 0xffff_fffc,
            },
            &["OFPST_GROUP request", "group_id=ALL"],
        );
        {
            mpq(
                v,
                MultipartRequest::GroupDesc {
                    group_id: 0xffff_fffc,
                },
                &["OFPST_GROUP_DESC request"],
            );
        }
        mpq(
            v,
            MultipartRequest::GroupFeatures,
            &["OFPST_GROUP_FEATURES request"],
        );
        mpq(
            v,
            MultipartRequest::Meter {
                meter_id: 0xffff_ffff,
            },
            &["OFPST_METER request", "meter=all"],
        );
        mpq(
            v,
            MultipartRequest::MeterConfig { meter_id: 1 },
            &["meter=1"],
        );
        mpq(
            v,
            MultipartRequest::MeterFeatures,
            &["OFPST_METER_FEATURES request"],
        );
        mpq(
            v,
            MultipartRequest::TableFeatures(vec![]),
            &["OFPST_TABLE_FEATURES request"],
        );
    }
}

#[test]
fn multipart_replies() {
    need_ofctl!();
    for v in ALL {
        let desc = SwitchDesc {
            mfr_desc: "ironflow".into(),
            hw_desc: "hw".into(),
            sw_desc: "0.1".into(),
            serial_num: "42".into(),
            dp_desc: "br0".into(),
        };
        mp(
            v,
            MultipartReply::Desc(desc),
            &[
                "OFPST_DESC reply",
                "Manufacturer: ironflow",
                "Serial Num: 42",
                "DP Description: br0",
            ],
        );
        let m = if v == OFP10 {
            Match::any().with(OxmField::exact(Field::InPort, 1))
        } else {
            tcp_match()
        };
        let fs = FlowStats {
            table_id: 0,
            duration_sec: 1,
            duration_nsec: 0,
            priority: 10,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            importance: 0,
            cookie: 0x5,
            packet_count: 3,
            byte_count: 180,
            match_: m,
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: 2,
                max_len: 0,
            }])],
        };
        if v != OFP15 {
            mp(
                v,
                MultipartReply::Flow(vec![fs.clone(), fs]),
                &[
                    "OFPST_FLOW reply",
                    "cookie=0x5, duration=1s, table=0, n_packets=3, n_bytes=180, priority=10",
                    "actions=output:2",
                ],
            );
            mp(
                v,
                MultipartReply::Aggregate(AggregateStats {
                    packet_count: 3,
                    byte_count: 180,
                    flow_count: 1,
                }),
                &["packet_count=3 byte_count=180 flow_count=1"],
            );
        }
        let ts = TableStats {
            table_id: 0,
            active_count: 2,
            lookup_count: 10,
            matched_count: 4,
            name: if v == OFP10 {
                "classifier".into()
            } else {
                String::new()
            },
            wildcards: if v == OFP10 { 0x3fffff } else { 0 },
            max_entries: if v == OFP10 { 1_000_000 } else { 0 },
        };
        mp(
            v,
            MultipartReply::Table(vec![ts]),
            &["OFPST_TABLE reply", "active=2, lookup=10, matched=4"],
        );
        let ps = PortStats {
            port_no: 1,
            rx_packets: 11,
            tx_packets: 22,
            rx_bytes: 1100,
            tx_bytes: 2200,
            rx_crc_err: 3,
            duration_sec: if v == OFP10 { 0 } else { 9 },
            ..Default::default()
        };
        mp(
            v,
            MultipartReply::PortStats(vec![ps]),
            &[
                "OFPST_PORT reply",
                "port  1: rx pkts=11, bytes=1100",
                "crc=3",
                "tx pkts=22, bytes=2200",
            ],
        );
        let qs = QueueStats {
            port_no: 1,
            queue_id: 2,
            tx_bytes: 100,
            tx_packets: 1,
            tx_errors: 0,
            duration_sec: 0,
            duration_nsec: 0,
        };
        mp(
            v,
            MultipartReply::Queue(vec![qs]),
            &[
                "OFPST_QUEUE reply",
                "port 1 queue 2: bytes=100, pkts=1, errors=0",
            ],
        );
        if v == OFP10 {
            continue;
        }
        mp(
            v,
            MultipartReply::PortDesc(vec![port1()]),
            &["OFPST_PORT_DESC reply", "1(eth1): addr:02:00:00:00:00:01"],
        );
        let gs = GroupStats {
            group_id: 5,
            ref_count: 1,
            packet_count: 7,
            byte_count: 70,
            duration_sec: 1,
            duration_nsec: 0,
            buckets: vec![(3, 30), (4, 40)],
        };
        mp(
            v,
            MultipartReply::Group(vec![gs]),
            &[
                "OFPST_GROUP reply",
                "group_id=5",
                "packet_count=7,byte_count=70",
                "bucket0:packet_count=3,byte_count=30",
            ],
        );
        {
            let gd = GroupDesc {
                group_type: 0,
                group_id: 5,
                buckets: vec![Bucket {
                    weight: 0,
                    watch_port: port::OFPP_ANY,
                    watch_group: 0xffff_ffff,
                    actions: vec![Action::Output {
                        port: 1,
                        max_len: 0,
                    }],
                }],
            };
            mp(
                v,
                MultipartReply::GroupDesc(vec![gd]),
                &[
                    "OFPST_GROUP_DESC reply",
                    if v >= OFP15 {
                        "group_id=5,type=all,bucket=bucket_id:0,actions=output:1"
                    } else {
                        "group_id=5,type=all,bucket=actions=output:1"
                    },
                ],
            );
        }
        let gf = GroupFeatures {
            types: 0xf,
            capabilities: 0x5,
            max_groups: [10, 20, 30, 40],
            actions: [1, 1, 1, 1],
        };
        mp(
            v,
            MultipartReply::GroupFeatures(gf),
            &[
                "OFPST_GROUP_FEATURES reply",
                "Group table:",
                "all group:",
                "max_groups=0xa",
            ],
        );
        let ms = MeterStats {
            meter_id: 7,
            flow_count: 1,
            packet_in_count: 5,
            byte_in_count: 50,
            duration_sec: 2,
            duration_nsec: 0,
            bands: vec![(1, 10)],
        };
        mp(
            v,
            MultipartReply::Meter(vec![ms]),
            &[
                "OFPST_METER reply",
                "meter:7 flow_count:1 packet_in_count:5 byte_in_count:50",
                "0: packet_count:1 byte_count:10",
            ],
        );
        let mc = MeterConfig {
            flags: 1,
            meter_id: 7,
            bands: vec![
                MeterBand::Drop {
                    rate: 1000,
                    burst_size: 0,
                },
                MeterBand::DscpRemark {
                    rate: 2000,
                    burst_size: 0,
                    prec_level: 1,
                },
            ],
        };
        mp(
            v,
            MultipartReply::MeterConfig(vec![mc]),
            &[
                "meter=7 kbps",
                "type=drop rate=1000",
                "type=dscp_remark rate=2000 prec_level=1",
            ],
        );
        let mf = MeterFeatures {
            max_meter: 1024,
            band_types: 6,
            capabilities: 0xf,
            max_bands: 2,
            max_color: 0,
        };
        mp(
            v,
            MultipartReply::MeterFeatures(mf),
            &[
                "OFPST_METER_FEATURES reply",
                "max_meter:1024",
                "band_types: drop dscp_remark",
                "max_bands:2",
            ],
        );
        mp(
            v,
            MultipartReply::TableFeatures(vec![TableFeatures::ironflow(0, 2, 1000)]),
            &[
                "OFPST_TABLE_FEATURES reply",
                "table 0 (\"table0\")",
                "max_entries=1000",
                "goto_table",
                "next tables: 1",
            ],
        );
    }
}

#[test]
fn queue_get_config() {
    need_ofctl!();
    for v in [OFP10, OFP13] {
        check(
            v,
            &Message::QueueGetConfigRequest { port: 1 },
            &["OFPT_QUEUE_GET_CONFIG_REQUEST", "port=1"],
        );
        let queues = vec![
            QueueConfig {
                queue_id: 1,
                min_rate: Some(100),
                max_rate: if v == OFP10 { None } else { Some(500) },
            },
            QueueConfig {
                queue_id: 2,
                min_rate: None,
                max_rate: None,
            },
        ];
        let mut want = vec![
            "OFPT_QUEUE_GET_CONFIG_REPLY",
            "port=1",
            "queue 1:",
            "min_rate:10.0%",
            "queue 2:",
        ];
        if v != OFP10 {
            want.push("max_rate:50.0%");
        }
        check(v, &Message::QueueGetConfigReply { port: 1, queues }, &want);
    }
    assert_eq!(
        Message::QueueGetConfigRequest { port: 1 }.encode(OFP14, 1),
        Err(OfpError::BAD_TYPE)
    );
}

#[test]
fn long_multipart_reply_is_split_with_more_flag() {
    // 2000 flows of ~96 bytes do not fit in one 64 KiB message.
    let fs = FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 0,
        priority: 10,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        importance: 0,
        cookie: 0,
        packet_count: 0,
        byte_count: 0,
        match_: tcp_match(),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 2,
            max_len: 0,
        }])],
    };
    let m = Message::MultipartReply {
        flags: 0,
        body: MultipartReply::Flow(vec![fs; 2000]),
    };
    let bytes = m.encode(OFP13, 9).unwrap();
    let mut f = mgmt::openflow::Framer::default();
    f.push(&bytes);
    let mut n = 0;
    let mut total = 0;
    while let Some(msg) = f.next_message() {
        let msg = msg.unwrap();
        let (h, dm) = Message::decode(&msg).unwrap();
        assert_eq!(h.xid, 9);
        let Message::MultipartReply {
            flags,
            body: MultipartReply::Flow(v),
        } = dm
        else {
            panic!()
        };
        total += v.len();
        n += 1;
        assert_eq!(flags & OFPMPF_MORE != 0, total < 2000);
    }
    assert!(n >= 3);
    assert_eq!(total, 2000);
}
