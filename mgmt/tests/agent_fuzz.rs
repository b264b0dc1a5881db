//! The agent never panics on wire data: valid requests of every kind, mutated byte by byte,
//! cut short and concatenated, go through a connection in arbitrary chunks.

use mgmt::agent::{AgentConfig, BridgeCtx, FailMode, OfAgent};
use mgmt::netif::ConnKind;
use mgmt::openflow::group::{Bucket, GroupCommand, GroupMod};
use mgmt::openflow::message::*;
use mgmt::openflow::meter::{MeterBand, MeterCommand, MeterMod};
use mgmt::openflow::multipart::{FlowStatsRequest, MultipartRequest};
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::port::PortMod;
use mgmt::openflow::{Action, Instruction, OFP10, OFP13, OFP14, OFP15};
use proptest::prelude::*;
use switch_core::flow::Field;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{OutputSink, PacketIn as CorePacketIn, Pipeline, PipelineConfig};
use switch_core::port::{Port, PortTable};

struct Null;
impl OutputSink for Null {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &CorePacketIn<'_>) {}
}

fn corpus(v: u8) -> Vec<Vec<u8>> {
    let frame: Vec<u8> = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        f
    };
    let fm = FlowMod {
        table_id: if v == OFP10 { 0xff } else { 1 },
        priority: 9,
        flags: OFPFF_SEND_FLOW_REM,
        idle_timeout: 1,
        match_: Match::any()
            .with(OxmField::exact(Field::InPort, 1))
            .with(OxmField::exact(Field::EthType, 0x0800)),
        instructions: vec![Instruction::ApplyActions(vec![
            Action::SetField(OxmField::exact(Field::Ipv4Dst, 0x0a00_0002)),
            Action::Output {
                port: 0xffff_fffd,
                max_len: 64,
            },
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ])],
        ..Default::default()
    };
    let mut msgs = vec![
        Message::Hello(Hello {
            bitmap: Some(1 << v),
        }),
        Message::FeaturesRequest,
        Message::FlowMod(fm.clone()),
        Message::FlowMod(FlowMod {
            command: FlowModCommand::Delete,
            ..fm.clone()
        }),
        Message::PacketOut(PacketOut {
            buffer_id: NO_BUFFER,
            in_port: 1,
            actions: vec![
                Action::Output {
                    port: 0xffff_fff9,
                    max_len: 0,
                },
                Action::Output {
                    port: 0xffff_fffb,
                    max_len: 0,
                },
            ],
            data: frame.clone(),
        }),
        Message::PortMod(PortMod {
            port_no: 2,
            hw_addr: [2, 0, 0, 0, 0, 2],
            config: 1,
            mask: 0x65,
            advertise: 0,
        }),
        Message::BarrierRequest,
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::Flow(FlowStatsRequest::default()),
        },
        Message::MultipartRequest {
            flags: 0,
            body: MultipartRequest::PortStats {
                port_no: 0xffff_ffff,
            },
        },
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        }),
    ];
    if v != OFP10 {
        msgs.extend([
            Message::GroupMod(GroupMod {
                command: GroupCommand::Add,
                group_type: 1,
                group_id: 3,
                buckets: vec![Bucket {
                    weight: 1,
                    watch_port: 0xffff_ffff,
                    watch_group: 0xffff_ffff,
                    actions: vec![Action::Output {
                        port: 3,
                        max_len: 0,
                    }],
                }],
            }),
            Message::MeterMod(MeterMod {
                command: MeterCommand::Add,
                flags: 1,
                meter_id: 4,
                bands: vec![MeterBand::Drop {
                    rate: 1000,
                    burst_size: 0,
                }],
            }),
            Message::RoleRequest(Role {
                role: OFPCR_ROLE_MASTER,
                generation_id: 3,
            }),
            Message::MultipartRequest {
                flags: 0,
                body: MultipartRequest::Meter { meter_id: 4 },
            },
            Message::MultipartRequest {
                flags: 0,
                body: MultipartRequest::TableFeatures(vec![]),
            },
            Message::MultipartRequest {
                flags: 0,
                body: MultipartRequest::Aggregate(FlowStatsRequest::default()),
            },
            Message::TableMod(TableMod {
                table_id: 1,
                config: 3,
            }),
        ]);
    }
    msgs.iter()
        .enumerate()
        .filter_map(|(i, m)| m.encode(v, i as u32 + 1).ok())
        .collect()
}

fn versions() -> impl Strategy<Value = u8> {
    prop_oneof![Just(OFP10), Just(OFP13), Just(OFP14), Just(OFP15)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn mutated_streams_never_panic(
        v in versions(),
        picks in prop::collection::vec((0usize..64, prop::collection::vec((0usize..256, any::<u8>()), 0..4), 0usize..300), 1..24),
        chunk in 1usize..200,
        step in 0u64..400,
    ) {
        let corpus = corpus(v);
        let mut stream = corpus[0].clone(); // HELLO first, mostly
        for (i, muts, cut) in picks {
            let mut m = corpus[i % corpus.len()].clone();
            for (at, b) in muts {
                if !m.is_empty() {
                    let n = m.len();
                    m[at % n] = b;
                }
            }
            if cut < m.len() && cut % 7 == 0 {
                m.truncate(cut);
            }
            stream.extend(m);
        }
        let mut pipeline = Pipeline::new(PipelineConfig { n_tables: 4, ..Default::default() });
        let mut ports = PortTable::new();
        for n in 1..=3u8 {
            ports.add(Port::new(n as u32, "p", [2, 0, 0, 0, 0, n])).unwrap();
        }
        let mut normal = NormalSwitch::default();
        let mut sink = Null;
        let mut agent = OfAgent::new(
            AgentConfig { fail_mode: FailMode::Standalone, has_controllers: true, fail_open_delay_ms: 500, ..AgentConfig::default() },
            0,
        );
        let mut now = 0;
        let a = {
            let mut ctx = BridgeCtx { pipeline: &mut pipeline, ports: &mut ports, normal: &mut normal, sink: &mut sink, now_ms: now, cores: None };
            agent.open(&mut ctx, ConnKind::Active { target: 0 }).unwrap()
        };
        for part in stream.chunks(chunk) {
            now += step;
            let mut ctx = BridgeCtx { pipeline: &mut pipeline, ports: &mut ports, normal: &mut normal, sink: &mut sink, now_ms: now, cores: None };
            agent.receive(&mut ctx, a, part);
            agent.poll(&mut ctx);
            let n = agent.pending(a).len();
            agent.consume(a, n);
        }
    }
}

#[test]
fn the_corpus_itself_is_accepted() {
    for v in [OFP10, OFP13, OFP14, OFP15] {
        let mut pipeline = Pipeline::new(PipelineConfig {
            n_tables: 4,
            ..Default::default()
        });
        let mut ports = PortTable::new();
        for n in 1..=3u8 {
            ports
                .add(Port::new(n as u32, "p", [2, 0, 0, 0, 0, n]))
                .unwrap();
        }
        let mut normal = NormalSwitch::default();
        let mut sink = Null;
        let mut agent = OfAgent::new(AgentConfig::default(), 0);
        let mut ctx = BridgeCtx {
            pipeline: &mut pipeline,
            ports: &mut ports,
            normal: &mut normal,
            sink: &mut sink,
            now_ms: 0,
            cores: None,
        };
        let a = agent
            .open(&mut ctx, ConnKind::Active { target: 0 })
            .unwrap();
        for m in corpus(v) {
            agent.receive(&mut ctx, a, &m);
        }
        let s = agent.stats();
        assert_eq!(s.errors_sent, 0, "version {v}");
        assert!(s.requests >= 6, "version {v}: {s:?}");
        assert!(!agent.wants_close(a));
    }
}
