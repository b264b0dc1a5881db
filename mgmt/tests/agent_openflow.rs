//! The OpenFlow agent driven with byte vectors: every request is applied to a real pipeline
//! and port table, answers and asynchronous messages are decoded back.

use mgmt::agent::{
    AgentConfig, BridgeCtx, FAIL_OPEN_COOKIE, FailMode, OfAgent, datapath_id_from_ports,
};
use mgmt::netif::ConnKind;
use mgmt::openflow::error::OfpError;
use mgmt::openflow::group::{Bucket, GroupCommand, GroupMod, OFPG_ALL};
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::*;
use mgmt::openflow::meter::{MeterBand, MeterCommand, MeterMod, OFPM_ALL, OFPMF_KBPS, OFPMF_PKTPS};
use mgmt::openflow::multipart::{FlowStatsRequest, MultipartReply, MultipartRequest};
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::port::PortMod;
use mgmt::openflow::{Action, Instruction, OFP10, OFP13, OFP14};
use switch_core::action::{Action as CoreAction, Instructions};
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::flow_match::Match as CoreMatch;
use switch_core::normal::NormalSwitch;
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{
    Env, FlowMod as CoreFlowMod, MeterHook, OutputSink, PacketIn as CorePacketIn, Pipeline,
};
use switch_core::port::{OFPP_CONTROLLER, OFPP_NORMAL, Port, PortConfig, PortTable};
use switch_core::table::OFPTT_ALL;

#[derive(Default)]
struct Rec {
    outputs: Vec<(u32, Vec<u8>)>,
}

impl OutputSink for Rec {
    fn output(&mut self, port: u32, _queue: Option<u32>, frame: &[u8]) {
        self.outputs.push((port, frame.to_vec()));
    }
    fn controller(&mut self, _: &CorePacketIn<'_>) {
        panic!("the agent queues packet-out packet-ins itself");
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// An Ethernet frame on an experimental ethertype from `src` to `dst`.
fn frame(src: u8, dst: u8, len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(dst));
    f.extend_from_slice(&mac(src));
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(len.max(14), 0xab);
    f
}

struct Rig {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    sink: Rec,
    agent: OfAgent,
    now: u64,
}

impl Rig {
    fn new(config: AgentConfig) -> Rig {
        let mut ports = PortTable::new();
        for n in [3u8, 1, 2] {
            ports
                .add(Port::new(n as u32, &format!("eth{n}"), mac(0x10 + n)))
                .unwrap();
        }
        Rig {
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            sink: Rec::default(),
            agent: OfAgent::new(config, 0),
            now: 0,
        }
    }

    fn plain() -> Rig {
        Rig::new(AgentConfig {
            fail_mode: FailMode::Secure,
            has_controllers: true,
            ..AgentConfig::default()
        })
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut self.sink,
            now_ms: self.now,
            cores: None,
        };
        f(&mut self.agent, &mut ctx)
    }

    fn open(&mut self, kind: ConnKind) -> u32 {
        self.with(|a, ctx| a.open(ctx, kind))
            .expect("room for a connection")
    }

    fn send(&mut self, id: u32, bytes: &[u8]) {
        self.with(|a, ctx| a.receive(ctx, id, bytes));
    }

    fn msg(&mut self, id: u32, version: u8, xid: u32, m: Message) {
        let b = m.encode(version, xid).unwrap();
        self.send(id, &b);
    }

    fn poll(&mut self) {
        self.with(|a, ctx| a.poll(ctx));
    }

    /// Everything the agent has for `id`, decoded (a large reply is built across polls: the
    /// polls it takes are run).
    fn out(&mut self, id: u32) -> Vec<(u8, u32, Message)> {
        let mut bytes = self.agent.pending(id).to_vec();
        self.agent.consume(id, bytes.len());
        while self.agent.reply_in_progress(id) {
            self.poll();
            let more = self.agent.pending(id).to_vec();
            self.agent.consume(id, more.len());
            bytes.extend_from_slice(&more);
        }
        decode_all(&bytes)
    }

    /// A connection that negotiated `version` (its HELLO consumed).
    fn connect(&mut self, kind: ConnKind, version: u8) -> u32 {
        let id = self.open(kind);
        let hello = self.out(id);
        assert!(
            matches!(hello[..], [(_, _, Message::Hello(_))]),
            "{hello:?}"
        );
        self.msg(
            id,
            version,
            1,
            Message::Hello(Hello {
                bitmap: Some(1 << version),
            }),
        );
        assert_eq!(self.agent.connection_version(id), Some(version));
        assert!(self.out(id).is_empty());
        id
    }

    fn controller(&mut self, version: u8) -> u32 {
        self.connect(ConnKind::Active { target: 0 }, version)
    }

    /// Sends `m` and returns the answers.
    fn ask(&mut self, id: u32, version: u8, xid: u32, m: Message) -> Vec<(u8, u32, Message)> {
        self.msg(id, version, xid, m);
        self.out(id)
    }

    fn flows(&self) -> Vec<(u8, u16, u64)> {
        self.pipeline
            .entries(OFPTT_ALL)
            .map(|(id, e)| (id.table_id, e.priority, e.cookie))
            .collect()
    }

    /// Runs a frame through the pipeline as the kernel does, packet-ins into the agent.
    fn forward(&mut self, in_port: u32, bytes: &[u8]) {
        struct KernelSink<'a> {
            rec: &'a mut Rec,
            agent: &'a mut mgmt::agent::PacketInQueue,
        }
        impl OutputSink for KernelSink<'_> {
            fn output(&mut self, port: u32, q: Option<u32>, frame: &[u8]) {
                self.rec.output(port, q, frame);
            }
            fn controller(&mut self, pi: &CorePacketIn<'_>) {
                self.agent.push(pi);
            }
        }
        let mut key = FlowKey::ZERO;
        let mut wc = FlowKey::ZERO;
        extract(bytes, in_port, &mut key);
        let mut f = HeapFrame::new(bytes);
        let (meters, packet_ins) = self.agent.datapath_hooks();
        let mut env = Env {
            ports: &self.ports,
            normal: Some(&mut self.normal),
            meters: Some(meters),
            now_ms: self.now,
        };
        let mut sink = KernelSink {
            rec: &mut self.sink,
            agent: packet_ins,
        };
        self.pipeline
            .process(&mut env, &mut key, &mut f, &mut wc, &mut sink);
    }
}

fn decode_all(bytes: &[u8]) -> Vec<(u8, u32, Message)> {
    let mut f = Framer::default();
    f.push(bytes);
    let mut v = Vec::new();
    while let Some(m) = f.next_message() {
        let m = m.expect("agent output frames cleanly");
        let (h, msg) = Message::decode(&m).unwrap_or_else(|e| panic!("undecodable {m:?}: {e}"));
        v.push((h.version, h.xid, msg));
    }
    v
}

fn errors(out: &[(u8, u32, Message)]) -> Vec<(u32, OfpError, Vec<u8>)> {
    out.iter()
        .filter_map(|(v, x, m)| match m {
            Message::Error(e) => Some((*x, e.error(*v), e.data.clone())),
            _ => None,
        })
        .collect()
}

fn output_flow(in_port: u32, out_port: u32) -> FlowMod {
    FlowMod {
        table_id: 0,
        priority: 100,
        cookie: 0xc0c0,
        match_: Match::any().with(OxmField::exact(Field::InPort, in_port as u128)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: out_port,
            max_len: 0,
        }])],
        ..Default::default()
    }
}

fn flow_stats_all() -> Message {
    Message::MultipartRequest {
        flags: 0,
        body: MultipartRequest::Flow(FlowStatsRequest::default()),
    }
}

#[test]
fn features_flow_mod_stats_and_barrier() {
    for v in [OFP10, OFP13, OFP14] {
        let mut r = Rig::plain();
        let id = r.controller(v);
        let out = r.ask(id, v, 2, Message::FeaturesRequest);
        let [(_, 2, Message::FeaturesReply(f))] = &out[..] else {
            panic!("{out:?}")
        };
        // The lowest data-port MAC (port 1's 02:00:00:00:00:11).
        assert_eq!(f.datapath_id, 0x0200_0000_0011);
        assert_eq!(f.datapath_id, datapath_id_from_ports(&r.ports));
        assert_eq!(f.n_tables, 254);
        assert_eq!(f.n_buffers, 0);
        if v == OFP10 {
            assert_eq!(f.ports.len(), 3);
            assert_eq!(f.ports[0].name, "eth1");
        }

        let mut fm = output_flow(1, 2);
        if v == OFP10 {
            fm.table_id = OFPTT_ALL;
        }
        assert!(r.ask(id, v, 3, Message::FlowMod(fm)).is_empty());
        assert_eq!(r.flows(), vec![(0, 100, 0xc0c0)]);

        let out = r.ask(id, v, 4, flow_stats_all());
        let [
            (
                _,
                4,
                Message::MultipartReply {
                    body: MultipartReply::Flow(fl),
                    ..
                },
            ),
        ] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(fl.len(), 1);
        assert_eq!((fl[0].priority, fl[0].cookie), (100, 0xc0c0));
        assert_eq!(fl[0].match_.exact(Field::InPort), Some(1));

        let out = r.ask(id, v, 5, Message::BarrierRequest);
        assert_eq!(out, vec![(v, 5, Message::BarrierReply)]);

        // Description from the agent's settings.
        let out = r.ask(
            id,
            v,
            6,
            Message::MultipartRequest {
                flags: 0,
                body: MultipartRequest::Desc,
            },
        );
        let [
            (
                _,
                6,
                Message::MultipartReply {
                    body: MultipartReply::Desc(d),
                    ..
                },
            ),
        ] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(d.mfr_desc, "ironflow project");
        assert_eq!(d.hw_desc, "ironflow appliance");

        // Delete everything.
        let del = FlowMod {
            command: FlowModCommand::Delete,
            table_id: OFPTT_ALL,
            ..Default::default()
        };
        assert!(r.ask(id, v, 7, Message::FlowMod(del)).is_empty());
        assert!(r.flows().is_empty());
    }
}

#[test]
fn pipeline_errors_are_answered_with_the_request_bytes() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    // Output to a group that does not exist: refused by the pipeline.
    let mut fm = output_flow(1, 2);
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::Group(99)])];
    let bytes = Message::FlowMod(fm).encode(v, 77).unwrap();
    r.send(id, &bytes);
    let out = r.out(id);
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{out:?}");
    assert_eq!(errs[0].0, 77);
    assert_eq!(errs[0].1, OfpError::BAD_OUT_GROUP);
    assert_eq!(errs[0].2, bytes[..64].to_vec());
    assert!(r.flows().is_empty());

    // A match without its prerequisite (tcp_dst without ip/tcp).
    let mut fm = output_flow(1, 2);
    fm.match_ = Match::any().with(OxmField::exact(Field::TcpDst, 80));
    let bytes = Message::FlowMod(fm).encode(v, 78).unwrap();
    r.send(id, &bytes);
    let errs = errors(&r.out(id));
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].0, errs[0].1), (78, OfpError::BAD_PREREQ));
    assert_eq!(errs[0].2, bytes[..64].to_vec());

    // Goto a table that is not later.
    let mut fm = output_flow(1, 2);
    fm.table_id = 3;
    fm.instructions = vec![Instruction::GotoTable(2)];
    let errs = errors(&r.ask(id, v, 79, Message::FlowMod(fm)));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].1.type_, 3); // BAD_INSTRUCTION

    // A buffer id: the flow goes in, the buffer is unknown.
    let mut fm = output_flow(1, 2);
    fm.buffer_id = 5;
    let errs = errors(&r.ask(id, v, 80, Message::FlowMod(fm)));
    assert_eq!(errs[0].1, OfpError::BUFFER_UNKNOWN);
    assert_eq!(r.flows().len(), 1);

    // 1.3: an add to OFPTT_ALL.
    let mut fm = output_flow(1, 2);
    fm.table_id = OFPTT_ALL;
    let errs = errors(&r.ask(id, v, 81, Message::FlowMod(fm)));
    assert_eq!(errs[0].1, OfpError::FLOW_MOD_BAD_TABLE_ID);

    // The connection survives all of it.
    assert_eq!(
        r.ask(id, v, 82, Message::BarrierRequest),
        vec![(v, 82, Message::BarrierReply)]
    );
}

#[test]
fn modify_and_strict_delete_and_ofp10_modify_adds() {
    let mut r = Rig::plain();
    let id = r.controller(OFP10);
    // 1.0: modify of nothing adds.
    let mut fm = output_flow(1, 2);
    fm.table_id = OFPTT_ALL;
    fm.command = FlowModCommand::Modify;
    assert!(r.ask(id, OFP10, 2, Message::FlowMod(fm.clone())).is_empty());
    assert_eq!(r.flows().len(), 1);
    // Modify changes the actions.
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::Output {
        port: 3,
        max_len: 0,
    }])];
    assert!(r.ask(id, OFP10, 3, Message::FlowMod(fm.clone())).is_empty());
    let (_, e) = r.pipeline.entries(0).next().unwrap();
    assert!(e.instructions.outputs_to(3));
    // Strict delete with another priority leaves it; with its priority removes it.
    fm.command = FlowModCommand::DeleteStrict;
    fm.priority = 7;
    assert!(r.ask(id, OFP10, 4, Message::FlowMod(fm.clone())).is_empty());
    assert_eq!(r.flows().len(), 1);
    fm.priority = 100;
    assert!(r.ask(id, OFP10, 5, Message::FlowMod(fm)).is_empty());
    assert!(r.flows().is_empty());
}

#[test]
fn packet_out_runs_through_the_pipeline() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    let data = frame(1, 2, 60);
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![Action::Output {
            port: 2,
            max_len: 0,
        }],
        data: data.clone(),
    };
    assert!(r.ask(id, v, 2, Message::PacketOut(po)).is_empty());
    assert_eq!(r.sink.outputs, vec![(2, data.clone())]);

    // Output to TABLE: the flows decide.
    r.sink.outputs.clear();
    r.ask(id, v, 3, Message::FlowMod(output_flow(1, 3)));
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: 1,
        actions: vec![Action::Output {
            port: 0xffff_fff9,
            max_len: 0,
        }],
        data: data.clone(),
    };
    assert!(r.ask(id, v, 4, Message::PacketOut(po)).is_empty());
    assert_eq!(r.sink.outputs, vec![(3, data.clone())]);

    // Output to CONTROLLER comes back as a packet-in.
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: 1,
        actions: vec![Action::Output {
            port: OFPP_CONTROLLER,
            max_len: 20,
        }],
        data: data.clone(),
    };
    assert!(r.ask(id, v, 5, Message::PacketOut(po)).is_empty());
    r.poll();
    let out = r.out(id);
    let [(_, _, Message::PacketIn(pi))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(pi.data, data[..20].to_vec());
    assert_eq!(pi.total_len, 60);
    assert_eq!(pi.in_port(), 1);
    assert_eq!(pi.buffer_id, NO_BUFFER);

    // A buffer id is refused; so is a bad in_port.
    let po = PacketOut {
        buffer_id: 1,
        in_port: 1,
        actions: vec![],
        data: vec![],
    };
    let errs = errors(&r.ask(id, v, 6, Message::PacketOut(po)));
    assert_eq!(errs[0].1, OfpError::BUFFER_UNKNOWN);
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: 0xffff_fff0,
        actions: vec![],
        data: data.clone(),
    };
    let errs = errors(&r.ask(id, v, 7, Message::PacketOut(po)));
    assert_eq!(errs[0].1, OfpError::BAD_PORT);
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: 1,
        actions: vec![Action::Output {
            port: 2,
            max_len: 0,
        }],
        data: vec![1, 2, 3],
    };
    let errs = errors(&r.ask(id, v, 8, Message::PacketOut(po)));
    assert_eq!(errs[0].1, OfpError::BAD_PACKET);
}

#[test]
fn packet_ins_from_the_datapath() {
    for v in [OFP10, OFP13] {
        let mut r = Rig::plain();
        let id = r.controller(v);
        let mut fm = output_flow(1, OFPP_CONTROLLER);
        if v == OFP10 {
            fm.table_id = OFPTT_ALL;
        }
        if let Instruction::ApplyActions(a) = &mut fm.instructions[0] {
            a[0] = Action::Output {
                port: OFPP_CONTROLLER,
                max_len: 32,
            };
        }
        r.ask(id, v, 2, Message::FlowMod(fm));
        let data = frame(1, 2, 100);
        r.forward(1, &data);
        r.poll();
        let out = r.out(id);
        let [(_, _, Message::PacketIn(pi))] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(pi.reason, 1); // OFPR_ACTION
        assert_eq!(pi.data, data[..32].to_vec());
        assert_eq!(pi.total_len, 100);
        assert_eq!(pi.in_port(), 1);
        if v == OFP13 {
            assert_eq!(pi.cookie, 0xc0c0);
            assert_eq!(pi.table_id, 0);
        }
        // NO_PACKET_IN on the port silences it.
        r.ports
            .mod_config(1, PortConfig::NO_PACKET_IN, PortConfig::NO_PACKET_IN)
            .unwrap();
        r.poll();
        r.out(id); // the port-status
        r.forward(1, &data);
        r.poll();
        assert!(r.out(id).is_empty());
    }
}

#[test]
fn ofp10_table_miss_uses_miss_send_len() {
    let mut r = Rig::plain();
    let id = r.controller(OFP10);
    assert!(r.agent.wants_packet_in_on_miss());
    r.msg(
        id,
        OFP10,
        2,
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 50,
        }),
    );
    let data = frame(1, 2, 120);
    let mut key = FlowKey::ZERO;
    extract(&data, 1, &mut key);
    r.agent.packet_ins().push_miss(&key, &data, 0);
    r.poll();
    let out = r.out(id);
    let [(_, _, Message::PacketIn(pi))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(pi.reason, 0);
    assert_eq!(pi.data.len(), 50);

    let mut r = Rig::plain();
    r.controller(OFP13);
    assert!(!r.agent.wants_packet_in_on_miss());
}

#[test]
fn roles_slave_refuses_and_master_election() {
    let v = OFP13;
    let mut r = Rig::plain();
    let a = r.controller(v);
    let b = r.controller(v);
    // A becomes slave: it may read but not write.
    let out = r.ask(
        a,
        v,
        2,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_SLAVE,
            generation_id: 10,
        }),
    );
    assert_eq!(
        out,
        vec![(
            v,
            2,
            Message::RoleReply(Role {
                role: OFPCR_ROLE_SLAVE,
                generation_id: 10
            })
        )]
    );
    let errs = errors(&r.ask(a, v, 3, Message::FlowMod(output_flow(1, 2))));
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].0, errs[0].1), (3, OfpError::IS_SLAVE));
    assert!(r.flows().is_empty());
    let out = r.ask(a, v, 4, flow_stats_all());
    assert!(matches!(out[..], [(_, 4, Message::MultipartReply { .. })]));
    let po = PacketOut {
        buffer_id: NO_BUFFER,
        in_port: 1,
        actions: vec![],
        data: frame(1, 2, 60),
    };
    assert_eq!(
        errors(&r.ask(a, v, 5, Message::PacketOut(po)))[0].1,
        OfpError::IS_SLAVE
    );

    // B becomes master with a newer generation; then A claims master: B is demoted.
    let out = r.ask(
        b,
        v,
        6,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_MASTER,
            generation_id: 11,
        }),
    );
    assert!(matches!(
        out[..],
        [(
            _,
            6,
            Message::RoleReply(Role {
                role: OFPCR_ROLE_MASTER,
                ..
            })
        )]
    ));
    // A stale generation is refused.
    let errs = errors(&r.ask(
        a,
        v,
        7,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_MASTER,
            generation_id: 9,
        }),
    ));
    assert_eq!(errs[0].1, OfpError::ROLE_STALE);
    assert_eq!(r.agent.connection_role(a), Some(OFPCR_ROLE_SLAVE));
    r.ask(
        a,
        v,
        8,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_MASTER,
            generation_id: 12,
        }),
    );
    assert_eq!(r.agent.connection_role(a), Some(OFPCR_ROLE_MASTER));
    assert_eq!(r.agent.connection_role(b), Some(OFPCR_ROLE_SLAVE));
    let info = r.agent.connections();
    assert_eq!(info.len(), 2);
    assert_eq!(
        (info[0].id, info[0].role, info[0].version),
        (a, OFPCR_ROLE_MASTER, Some(v))
    );
    assert!(info[0].is_connected && info[1].is_connected);
    assert_eq!(info[1].kind, ConnKind::Active { target: 0 });
    assert!(
        r.ask(a, v, 9, Message::FlowMod(output_flow(1, 2)))
            .is_empty()
    );
    assert_eq!(r.flows().len(), 1);
    assert_eq!(
        errors(&r.ask(b, v, 10, Message::FlowMod(output_flow(2, 1))))[0].1,
        OfpError::IS_SLAVE
    );
    // NOCHANGE reports the role; a bad role is refused.
    let out = r.ask(
        b,
        v,
        11,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_NOCHANGE,
            generation_id: 0,
        }),
    );
    assert!(matches!(
        out[..],
        [(
            _,
            11,
            Message::RoleReply(Role {
                role: OFPCR_ROLE_SLAVE,
                generation_id: 12
            })
        )]
    ));
}

#[test]
fn async_filters_by_role_and_set_async() {
    let v = OFP13;
    let mut r = Rig::plain();
    let a = r.controller(v);
    let b = r.controller(v);
    let c = r.controller(v);
    // C is a slave: by default no packet-ins, but port-status.
    r.ask(
        c,
        v,
        2,
        Message::RoleRequest(Role {
            role: OFPCR_ROLE_SLAVE,
            generation_id: 1,
        }),
    );
    // B turns packet-ins off.
    // (1.3's SET_ASYNC carries every mask.)
    let mut cfg = AsyncConfig::default_masks();
    cfg.masks[AsyncConfig::PACKET_IN_MASTER] = Some(0);
    r.msg(b, v, 3, Message::SetAsync(cfg));
    let mut fm = output_flow(1, OFPP_CONTROLLER);
    fm.flags = OFPFF_SEND_FLOW_REM;
    r.ask(a, v, 4, Message::FlowMod(fm.clone()));
    r.forward(1, &frame(1, 2, 64));
    r.poll();
    let pis = |out: &[(u8, u32, Message)]| {
        out.iter()
            .filter(|(_, _, m)| matches!(m, Message::PacketIn(_)))
            .count()
    };
    assert_eq!(pis(&r.out(a)), 1);
    assert_eq!(pis(&r.out(b)), 0);
    assert_eq!(pis(&r.out(c)), 0);

    // Port-status goes to all three by default.
    r.ports.set_link(2, false).unwrap();
    r.poll();
    for id in [a, b, c] {
        let out = r.out(id);
        let [(_, _, Message::PortStatus(ps))] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((ps.reason, ps.desc.port_no), (2, 2));
        assert_eq!(ps.desc.state & 1, 1); // LINK_DOWN
    }

    // Flow-removed: masters only by default.
    fm.command = FlowModCommand::Delete;
    let out = r.ask(a, v, 5, Message::FlowMod(fm));
    assert!(
        matches!(
            out[..],
            [(
                _,
                _,
                Message::FlowRemoved(FlowRemoved {
                    reason: 2,
                    cookie: 0xc0c0,
                    ..
                })
            )]
        ),
        "{out:?}"
    );
    assert!(matches!(r.out(b)[..], [(_, _, Message::FlowRemoved(_))]));
    assert!(r.out(c).is_empty());

    // GET_ASYNC reports B's change.
    let out = r.ask(b, v, 6, Message::GetAsyncRequest);
    let [(_, 6, Message::GetAsyncReply(g))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(g.masks[AsyncConfig::PACKET_IN_MASTER], Some(0));
}

#[test]
fn flow_expiry_sends_flow_removed() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    let mut fm = output_flow(1, 2);
    fm.flags = OFPFF_SEND_FLOW_REM;
    fm.hard_timeout = 2;
    r.ask(id, v, 2, Message::FlowMod(fm));
    let mut quiet = output_flow(2, 1);
    quiet.hard_timeout = 2;
    r.ask(id, v, 3, Message::FlowMod(quiet));
    r.now = 1_000;
    r.poll();
    assert!(r.out(id).is_empty());
    r.now = 2_000;
    r.poll();
    let out = r.out(id);
    assert!(
        matches!(
            out[..],
            [(
                _,
                _,
                Message::FlowRemoved(FlowRemoved {
                    reason: 1,
                    hard_timeout: 2,
                    ..
                })
            )]
        ),
        "{out:?}"
    );
    assert!(r.flows().is_empty());
}

#[test]
fn port_mod_changes_config_and_announces_it() {
    for v in [OFP10, OFP13] {
        let mut r = Rig::plain();
        let id = r.controller(v);
        let pm = PortMod {
            port_no: 2,
            hw_addr: mac(0x12),
            config: PortConfig::PORT_DOWN.bits(),
            mask: PortConfig::PORT_DOWN.bits(),
            advertise: 0,
        };
        // Applied, and announced at once.
        let out = r.ask(id, v, 2, Message::PortMod(pm.clone()));
        assert!(
            r.ports
                .get(2)
                .unwrap()
                .config()
                .contains(PortConfig::PORT_DOWN)
        );
        assert_eq!(out.len(), 1);
        assert!(
            out.iter().any(|(_, _, m)| matches!(m, Message::PortStatus(ps) if ps.reason == 2 && ps.desc.port_no == 2 && ps.desc.config & 1 == 1)),
            "{out:?}"
        );
        // Wrong hardware address, unknown port.
        let errs = errors(&r.ask(
            id,
            v,
            3,
            Message::PortMod(PortMod {
                hw_addr: mac(0x99),
                ..pm.clone()
            }),
        ));
        assert_eq!(errs[0].1, OfpError::PORT_MOD_BAD_HW_ADDR);
        let errs = errors(&r.ask(
            id,
            v,
            4,
            Message::PortMod(PortMod {
                port_no: 9,
                ..pm.clone()
            }),
        ));
        assert_eq!(errs[0].1, OfpError::PORT_MOD_BAD_PORT);
    }
}

#[test]
fn ports_added_and_removed_are_announced() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    r.ports.add(Port::new(7, "eth7", mac(0x17))).unwrap();
    r.ports.remove(3);
    r.poll();
    let out = r.out(id);
    let reasons: Vec<(u8, u32)> = out
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::PortStatus(ps) => Some((ps.reason, ps.desc.port_no)),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![(0, 7), (1, 3)]);
}

#[test]
fn multiparts() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    r.ask(id, v, 2, Message::FlowMod(output_flow(1, 2)));
    r.ask(id, v, 3, Message::FlowMod(output_flow(2, 1)));
    let mp = |body| Message::MultipartRequest { flags: 0, body };

    let out = r.ask(
        id,
        v,
        4,
        mp(MultipartRequest::Aggregate(FlowStatsRequest::default())),
    );
    assert!(
        matches!(&out[..], [(_, 4, Message::MultipartReply { body: MultipartReply::Aggregate(a), .. })] if a.flow_count == 2)
    );
    // Filtered by out_port.
    let req = FlowStatsRequest {
        out_port: 2,
        ..Default::default()
    };
    let out = r.ask(id, v, 5, mp(MultipartRequest::Flow(req)));
    assert!(
        matches!(&out[..], [(_, 5, Message::MultipartReply { body: MultipartReply::Flow(f), .. })] if f.len() == 1 && f[0].match_.exact(Field::InPort) == Some(1))
    );

    let out = r.ask(id, v, 6, mp(MultipartRequest::Table));
    assert!(
        matches!(&out[..], [(_, 6, Message::MultipartReply { body: MultipartReply::Table(t), .. })] if t.len() == 254 && t[0].active_count == 2)
    );

    let out = r.ask(id, v, 7, mp(MultipartRequest::PortDesc));
    assert!(
        matches!(&out[..], [(_, 7, Message::MultipartReply { body: MultipartReply::PortDesc(p), .. })] if p.iter().map(|p| p.port_no).collect::<Vec<_>>() == vec![1, 2, 3])
    );

    let out = r.ask(id, v, 8, mp(MultipartRequest::PortStats { port_no: 2 }));
    assert!(
        matches!(&out[..], [(_, 8, Message::MultipartReply { body: MultipartReply::PortStats(p), .. })] if p.len() == 1 && p[0].port_no == 2)
    );

    let out = r.ask(id, v, 9, mp(MultipartRequest::TableFeatures(vec![])));
    let tf: Vec<_> = out
        .iter()
        .flat_map(|(_, _, m)| match m {
            Message::MultipartReply {
                body: MultipartReply::TableFeatures(t),
                ..
            } => t.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(tf.len(), 254);

    let out = r.ask(
        id,
        v,
        10,
        mp(MultipartRequest::Queue {
            port_no: 0xffff_ffff,
            queue_id: 0xffff_ffff,
        }),
    );
    assert!(
        matches!(&out[..], [(_, 10, Message::MultipartReply { body: MultipartReply::Queue(q), .. })] if q.is_empty())
    );

    // Queue configuration: none, for a port that exists.
    let out = r.ask(id, v, 11, Message::QueueGetConfigRequest { port: 2 });
    assert_eq!(
        out,
        vec![(
            v,
            11,
            Message::QueueGetConfigReply {
                port: 2,
                queues: vec![]
            }
        )]
    );
    let errs = errors(&r.ask(id, v, 12, Message::QueueGetConfigRequest { port: 9 }));
    assert_eq!(errs[0].1, OfpError::QUEUE_OP_BAD_PORT);

    // OpenFlow 1.0 table stats carry name and wildcards.
    let mut r = Rig::plain();
    let id = r.controller(OFP10);
    let out = r.ask(id, OFP10, 2, mp(MultipartRequest::Table));
    assert!(
        matches!(&out[..], [(_, 2, Message::MultipartReply { body: MultipartReply::Table(t), .. })] if t[0].name == "table0" && t[0].wildcards != 0)
    );
}

#[test]
fn groups() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    let gm = GroupMod {
        command: GroupCommand::Add,
        group_type: 0,
        group_id: 5,
        buckets: vec![Bucket {
            weight: 0,
            watch_port: 0xffff_ffff,
            watch_group: 0xffff_ffff,
            actions: vec![Action::Output {
                port: 2,
                max_len: 0,
            }],
        }],
    };
    assert!(r.ask(id, v, 2, Message::GroupMod(gm.clone())).is_empty());
    let errs = errors(&r.ask(id, v, 3, Message::GroupMod(gm.clone())));
    assert_eq!(errs[0].1, OfpError::GROUP_EXISTS);
    let mut fm = output_flow(1, 2);
    fm.flags = OFPFF_SEND_FLOW_REM;
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::Group(5)])];
    assert!(r.ask(id, v, 4, Message::FlowMod(fm)).is_empty());
    let mp = |body| Message::MultipartRequest { flags: 0, body };
    let out = r.ask(
        id,
        v,
        5,
        mp(MultipartRequest::GroupDesc { group_id: OFPG_ALL }),
    );
    assert!(
        matches!(&out[..], [(_, 5, Message::MultipartReply { body: MultipartReply::GroupDesc(g), .. })] if g.len() == 1 && g[0].group_id == 5 && g[0].buckets.len() == 1)
    );
    let out = r.ask(id, v, 6, mp(MultipartRequest::Group { group_id: OFPG_ALL }));
    assert!(
        matches!(&out[..], [(_, 6, Message::MultipartReply { body: MultipartReply::Group(g), .. })] if g.len() == 1 && g[0].ref_count == 1)
    );
    let out = r.ask(id, v, 7, mp(MultipartRequest::GroupFeatures));
    assert!(
        matches!(&out[..], [(_, 7, Message::MultipartReply { body: MultipartReply::GroupFeatures(f), .. })] if f.types == 0xf)
    );
    // Deleting the group deletes its flow (flow-removed, reason GROUP_DELETE).
    let del = GroupMod {
        command: GroupCommand::Delete,
        buckets: vec![],
        ..gm
    };
    let out = r.ask(id, v, 8, Message::GroupMod(del));
    assert!(
        matches!(
            out[..],
            [(_, _, Message::FlowRemoved(FlowRemoved { reason: 3, .. }))]
        ),
        "{out:?}"
    );
    assert!(r.flows().is_empty());
}

#[test]
fn meters() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    // A flow cannot use a meter that does not exist.
    let mut fm = output_flow(1, 2);
    fm.instructions.insert(0, Instruction::Meter(9));
    let errs = errors(&r.ask(id, v, 2, Message::FlowMod(fm.clone())));
    assert_eq!(errs[0].1, OfpError::UNKNOWN_METER);
    // A pktps meter: 10 packets per second, burst of 2.
    let mm = MeterMod {
        command: MeterCommand::Add,
        flags: OFPMF_PKTPS | 4,
        meter_id: 9,
        bands: vec![MeterBand::Drop {
            rate: 10,
            burst_size: 2,
        }],
    };
    assert!(r.ask(id, v, 3, Message::MeterMod(mm.clone())).is_empty());
    assert_eq!(
        errors(&r.ask(id, v, 4, Message::MeterMod(mm.clone())))[0].1,
        OfpError::METER_EXISTS
    );
    // DSCP remark bands are not supported.
    let remark = MeterMod {
        meter_id: 10,
        flags: OFPMF_KBPS,
        bands: vec![MeterBand::DscpRemark {
            rate: 100,
            burst_size: 0,
            prec_level: 1,
        }],
        ..mm.clone()
    };
    assert_eq!(
        errors(&r.ask(id, v, 5, Message::MeterMod(remark)))[0].1,
        OfpError::METER_BAD_BAND
    );
    assert!(r.ask(id, v, 6, Message::FlowMod(fm)).is_empty());
    // Three packets at once: the burst of two passes, the third is dropped.
    for _ in 0..3 {
        r.forward(1, &frame(1, 2, 60));
    }
    assert_eq!(r.sink.outputs.len(), 2);
    // 100 ms later one more token.
    r.now += 100;
    r.forward(1, &frame(1, 2, 60));
    assert_eq!(r.sink.outputs.len(), 3);

    let mp = |body| Message::MultipartRequest { flags: 0, body };
    let out = r.ask(id, v, 7, mp(MultipartRequest::Meter { meter_id: OFPM_ALL }));
    let [
        (
            _,
            7,
            Message::MultipartReply {
                body: MultipartReply::Meter(m),
                ..
            },
        ),
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        (m[0].meter_id, m[0].flow_count, m[0].packet_in_count),
        (9, 1, 4)
    );
    assert_eq!(m[0].bands, vec![(1, 60)]);
    let out = r.ask(id, v, 8, mp(MultipartRequest::MeterConfig { meter_id: 9 }));
    assert!(
        matches!(&out[..], [(_, 8, Message::MultipartReply { body: MultipartReply::MeterConfig(c), .. })] if c[0].bands == mm.bands)
    );
    let out = r.ask(id, v, 9, mp(MultipartRequest::MeterFeatures));
    assert!(
        matches!(&out[..], [(_, 9, Message::MultipartReply { body: MultipartReply::MeterFeatures(f), .. })] if f.band_types == 2)
    );
    assert_eq!(
        errors(&r.ask(
            id,
            v,
            10,
            mp(MultipartRequest::MeterConfig { meter_id: 77 })
        ))[0]
            .1,
        OfpError::UNKNOWN_METER
    );
    // Deleting the meter removes its flow.
    let del = MeterMod {
        command: MeterCommand::Delete,
        bands: vec![],
        ..mm
    };
    assert!(r.ask(id, v, 11, Message::MeterMod(del)).is_empty());
    assert!(r.flows().is_empty());
    assert!(r.agent.meters().is_empty());
}

#[test]
fn kbps_meter_token_bucket() {
    let mut r = Rig::plain();
    let id = r.controller(OFP13);
    // 80 kbps = 10 bytes per ms, burst 8 kbit = 1000 bytes.
    let mm = MeterMod {
        command: MeterCommand::Add,
        flags: OFPMF_KBPS | 4,
        meter_id: 1,
        bands: vec![MeterBand::Drop {
            rate: 80,
            burst_size: 8,
        }],
    };
    r.ask(id, OFP13, 2, Message::MeterMod(mm));
    let m = r.agent.meters();
    assert!(m.meter(1, 500, 0));
    assert!(m.meter(1, 500, 0));
    assert!(!m.meter(1, 500, 0));
    assert!(m.meter(1, 500, 50)); // 50 ms refill 500 bytes
    assert!(m.meter(7, 1500, 50)); // no such meter: pass
}

#[test]
fn standalone_without_controllers_is_a_normal_switch() {
    let mut r = Rig::new(AgentConfig::default());
    r.poll();
    let flows: Vec<_> = r
        .pipeline
        .entries(0)
        .map(|(_, e)| (e.priority, e.cookie, e.instructions.clone()))
        .collect();
    assert_eq!(
        flows,
        vec![(
            0,
            0,
            Instructions::apply(vec![CoreAction::Output {
                port: OFPP_NORMAL,
                max_len: 0
            }])
        )]
    );
    // A passive connection (ovs-ofctl) changes nothing about it, and may delete it.
    let id = r.connect(ConnKind::Passive { local_port: 6653 }, OFP10);
    r.now = 60_000;
    r.poll();
    assert_eq!(r.flows(), vec![(0, 0, 0)]);
    r.forward(1, &frame(1, 2, 60));
    assert_eq!(r.sink.outputs.len(), 2, "NORMAL floods to ports 2 and 3");
    let del = FlowMod {
        command: FlowModCommand::Delete,
        table_id: OFPTT_ALL,
        ..Default::default()
    };
    r.ask(id, OFP10, 2, Message::FlowMod(del));
    r.poll();
    assert!(r.flows().is_empty());
    assert!(!r.agent.is_fail_open());
}

#[test]
fn standalone_with_controllers_falls_back_and_recovers() {
    let mut r = Rig::new(AgentConfig {
        fail_mode: FailMode::Standalone,
        has_controllers: true,
        fail_open_delay_ms: 3_000,
        ..AgentConfig::default()
    });
    // The controller's own table-miss flow (priority 0, catch-all).
    let miss = CoreFlowMod::add(
        0,
        0,
        CoreMatch::ANY,
        Instructions::apply(vec![CoreAction::Output {
            port: OFPP_CONTROLLER,
            max_len: 128,
        }]),
    )
    .with_cookie(0x77);
    r.pipeline.flow_mod(&miss, 0).unwrap();
    r.poll();
    assert_eq!(r.flows(), vec![(0, 0, 0x77)]);
    r.now = 2_999;
    r.poll();
    assert!(!r.agent.is_fail_open());
    r.now = 3_000;
    r.poll();
    assert!(r.agent.is_fail_open());
    assert_eq!(r.flows(), vec![(0, 0, FAIL_OPEN_COOKIE)]);
    r.forward(1, &frame(1, 2, 60));
    assert_eq!(r.sink.outputs.len(), 2);

    // A passive connection is not a controller; deleting the fallback flow does not stick.
    let p = r.connect(ConnKind::Passive { local_port: 6653 }, OFP13);
    r.poll();
    assert!(r.agent.is_fail_open());
    let del = FlowMod {
        command: FlowModCommand::Delete,
        table_id: OFPTT_ALL,
        ..Default::default()
    };
    r.ask(p, OFP13, 2, Message::FlowMod(del));
    assert!(r.flows().is_empty());
    r.poll();
    assert_eq!(r.flows(), vec![(0, 0, FAIL_OPEN_COOKIE)]);

    // A controller connects: the fallback goes, the table-miss flow comes back.
    let c = r.controller(OFP13);
    r.poll();
    assert!(!r.agent.is_fail_open());
    assert_eq!(r.flows(), vec![(0, 0, 0x77)]);

    // It goes away: after the delay, fallback again.
    r.now = 5_000;
    r.with(|a, _| a.close(c, 5_000));
    r.now = 7_999;
    r.poll();
    assert!(!r.agent.is_fail_open());
    r.now = 8_000;
    r.poll();
    assert!(r.agent.is_fail_open());
}

#[test]
fn secure_mode_keeps_flows_and_adds_nothing() {
    let mut r = Rig::new(AgentConfig {
        fail_mode: FailMode::Secure,
        has_controllers: true,
        fail_open_delay_ms: 1_000,
        ..AgentConfig::default()
    });
    let c = r.controller(OFP13);
    r.ask(c, OFP13, 2, Message::FlowMod(output_flow(1, 2)));
    r.with(|a, _| a.close(c, 0));
    for t in [0, 1_000, 100_000] {
        r.now = t;
        r.poll();
    }
    assert!(!r.agent.is_fail_open());
    assert_eq!(r.flows(), vec![(0, 100, 0xc0c0)]);
    r.forward(2, &frame(2, 1, 60));
    assert!(r.sink.outputs.is_empty(), "nothing new is forwarded");
    r.forward(1, &frame(1, 2, 60));
    assert_eq!(r.sink.outputs.len(), 1, "existing flows keep working");
}

#[test]
fn passive_connections_get_async_only_when_asking() {
    let v = OFP13;
    let mut r = Rig::plain();
    let p = r.connect(ConnKind::Passive { local_port: 6653 }, v);
    r.ask(p, v, 2, Message::FlowMod(output_flow(1, OFPP_CONTROLLER)));
    r.forward(1, &frame(1, 2, 60));
    r.poll();
    assert!(r.out(p).is_empty());
    r.msg(
        p,
        v,
        3,
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        }),
    );
    r.forward(1, &frame(1, 2, 60));
    r.poll();
    assert!(matches!(r.out(p)[..], [(_, _, Message::PacketIn(_))]));
}

#[test]
fn slow_readers_lose_packet_ins_then_get_closed() {
    let v = OFP13;
    let mut r = Rig::new(AgentConfig {
        fail_mode: FailMode::Secure,
        has_controllers: true,
        packet_in_backlog: 1_000,
        pause_backlog: 2_000,
        max_backlog: 4_000,
        ..AgentConfig::default()
    });
    let id = r.controller(v);
    r.ask(id, v, 2, Message::FlowMod(output_flow(1, OFPP_CONTROLLER)));
    for _ in 0..40 {
        r.forward(1, &frame(1, 2, 100));
        r.poll();
    }
    // Never read: packet-ins stop at the backlog limit.
    let backlog = r.agent.pending(id).len();
    assert!(backlog > 1_000 && backlog < 1_300, "{backlog}");
    assert!(r.agent.stats().packet_ins_backlogged > 0);
    assert!(r.agent.can_receive(id));
    // Replies still go (the peer's own requests), but reading pauses above pause_backlog.
    for x in 0..20 {
        r.msg(id, v, 100 + x, flow_stats_all());
    }
    assert!(!r.agent.can_receive(id));
    assert!(!r.agent.wants_close(id));
    // Asynchronous messages past max_backlog close it.
    for n in 0..40 {
        r.ports.set_link(2, n % 2 == 0).unwrap();
        r.poll();
    }
    assert!(r.agent.wants_close(id));
    assert_eq!(r.agent.stats().closed_for_backlog, 1);
}

#[test]
fn too_many_connections_are_refused_and_bad_streams_close() {
    let mut r = Rig::new(AgentConfig {
        max_connections: 2,
        ..AgentConfig::default()
    });
    let a = r.open(ConnKind::Passive { local_port: 6653 });
    r.open(ConnKind::Passive { local_port: 6653 });
    assert!(
        r.with(|ag, ctx| ag.open(ctx, ConnKind::Passive { local_port: 6653 }))
            .is_none()
    );
    // Garbage instead of HELLO: an error and the connection wants closing.
    r.out(a);
    r.send(a, &[0x04, 5, 0, 8, 0, 0, 0, 1]);
    assert!(r.agent.wants_close(a));
    let out = r.out(a);
    assert!(matches!(out[..], [(_, _, Message::Error(_))]));
    r.with(|ag, _| ag.close(a, 0));
    assert_eq!(r.agent.connection_count(), 1);
}

#[test]
fn echo_keepalive_closes_silent_peers() {
    let mut r = Rig::new(AgentConfig {
        echo_interval_ms: 1_000,
        echo_timeout_ms: 1_000,
        ..AgentConfig::default()
    });
    let id = r.controller(OFP13);
    r.now = 1_000;
    r.poll();
    assert!(matches!(r.out(id)[..], [(_, _, Message::EchoRequest(_))]));
    r.now = 2_000;
    r.poll();
    assert!(r.agent.wants_close(id));
}

#[test]
fn table_mod_checks_the_table() {
    let v = OFP13;
    let mut r = Rig::plain();
    let id = r.controller(v);
    assert!(
        r.ask(
            id,
            v,
            2,
            Message::TableMod(TableMod {
                table_id: 3,
                config: 0
            })
        )
        .is_empty()
    );
    let mut small = Rig::plain();
    small.pipeline = Pipeline::new(switch_core::pipeline::PipelineConfig {
        n_tables: 4,
        ..Default::default()
    });
    let id = small.controller(v);
    let errs = errors(&small.ask(
        id,
        v,
        2,
        Message::TableMod(TableMod {
            table_id: 9,
            config: 0,
        }),
    ));
    assert_eq!(errs[0].1, OfpError::TABLE_MOD_BAD_TABLE);
}

#[test]
fn byte_at_a_time_and_many_messages_in_one_segment() {
    let v = OFP14;
    let mut r = Rig::plain();
    let id = r.open(ConnKind::Active { target: 0 });
    r.out(id);
    let mut stream = Message::Hello(Hello {
        bitmap: Some(1 << v),
    })
    .encode(v, 1)
    .unwrap();
    stream.extend(Message::FlowMod(output_flow(1, 2)).encode(v, 2).unwrap());
    stream.extend(Message::BarrierRequest.encode(v, 3).unwrap());
    for b in &stream {
        r.send(id, std::slice::from_ref(b));
    }
    assert_eq!(r.out(id), vec![(v, 3, Message::BarrierReply)]);
    assert_eq!(r.flows().len(), 1);
}

#[test]
fn controllers_and_fail_mode_changes_flush_like_ovs() {
    let mut r = Rig::new(AgentConfig::default());
    r.poll();
    assert_eq!(r.flows(), vec![(0, 0, 0)]);
    let id = r.connect(ConnKind::Passive { local_port: 6653 }, OFP13);
    r.ask(id, OFP13, 2, Message::FlowMod(output_flow(1, 2)));
    assert_eq!(r.flows().len(), 2);
    // set-controller: everything goes, no NORMAL flow (a controller is expected).
    r.with(|a, ctx| a.set_has_controllers(ctx, true));
    assert!(r.flows().is_empty());
    r.ask(id, OFP13, 3, Message::FlowMod(output_flow(1, 2)));
    // set-fail-mode secure while controllers are configured: flows stay.
    r.with(|a, ctx| a.set_fail_mode(ctx, FailMode::Secure));
    assert_eq!(r.flows().len(), 1);
    // del-controller in secure mode: flushed, nothing installed.
    r.with(|a, ctx| a.set_has_controllers(ctx, false));
    assert!(r.flows().is_empty());
    // set-fail-mode standalone without controllers: the NORMAL flow.
    r.with(|a, ctx| a.set_fail_mode(ctx, FailMode::Standalone));
    assert_eq!(r.flows(), vec![(0, 0, 0)]);
    assert_eq!(FailMode::from_name("secure"), Some(FailMode::Secure));
    assert_eq!(FailMode::from_name("open"), None);
}
