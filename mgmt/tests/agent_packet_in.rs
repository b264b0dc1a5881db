//! Packet-ins under load: the bounded queue (`packet_in.queue=`), Open vSwitch's controller
//! rate limiter (`controller_rate_limit` / `controller_burst_limit`), and the counters that
//! account for every packet-in the datapath produced.

use mgmt::agent::{AgentConfig, AgentStats, BridgeCtx, FailMode, OfAgent, RateLimit};
use mgmt::cmdline::BootSettings;
use mgmt::config::plan::NicInfo;
use mgmt::config::service::ConfigService;
use mgmt::netif::ConnKind;
use mgmt::openflow::OFP13;
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::{Hello, Message};
use mgmt::ovsdb::{Database, NoJournal, OvsdbServer, Schema, VSWITCH_SCHEMA};
use switch_core::action::OFPCML_NO_BUFFER;
use switch_core::flow::FlowKey;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{OutputSink, PacketIn as CorePacketIn, PacketInReason, Pipeline};
use switch_core::port::{Port, PortTable};

struct Nothing;
impl OutputSink for Nothing {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &CorePacketIn<'_>) {}
}

struct Rig {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    agent: OfAgent,
    now: u64,
    framers: Vec<(u32, Framer)>,
}

impl Rig {
    fn new(config: AgentConfig) -> Rig {
        let mut ports = PortTable::new();
        ports.add(Port::new(1, "eth1", [2, 0, 0, 0, 0, 1])).unwrap();
        Rig {
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            agent: OfAgent::new(
                AgentConfig {
                    fail_mode: FailMode::Secure,
                    has_controllers: true,
                    ..config
                },
                0,
            ),
            now: 0,
            framers: Vec::new(),
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let mut sink = Nothing;
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut sink,
            now_ms: self.now,
            cores: None,
        };
        f(&mut self.agent, &mut ctx)
    }

    fn connect(&mut self, kind: ConnKind) -> u32 {
        let id = self.with(|a, ctx| a.open(ctx, kind)).unwrap();
        let hello = Message::Hello(Hello {
            bitmap: Some(1 << OFP13),
        })
        .encode(OFP13, 1)
        .unwrap();
        // Passive connections want packet-ins after a SET_CONFIG with a miss_send_len.
        let set_config = [4u8, 9, 0, 12, 0, 0, 0, 2, 0, 0, 0xff, 0xff];
        self.with(|a, ctx| {
            a.receive(ctx, id, &hello);
            a.receive(ctx, id, &set_config);
        });
        self.framers.push((id, Framer::default()));
        self.drain(id);
        id
    }

    fn poll(&mut self) {
        self.with(|a, ctx| a.poll(ctx));
    }

    /// The packet-ins waiting for `id` (its send queue emptied).
    fn drain(&mut self, id: u32) -> usize {
        let bytes = self.agent.pending(id).to_vec();
        self.agent.consume(id, bytes.len());
        let f = &mut self.framers.iter_mut().find(|(i, _)| *i == id).unwrap().1;
        f.push(&bytes);
        let mut n = 0;
        while let Some(Ok(m)) = f.next_message() {
            if let Ok((_, Message::PacketIn(_))) = Message::decode(&m) {
                n += 1;
            }
        }
        n
    }

    /// `n` packet-ins from the datapath, as the forwarding loop's sink queues them.
    fn generate(&mut self, n: usize) {
        let mut key = FlowKey::ZERO;
        key.set(switch_core::flow::Field::InPort, 1);
        let frame = [0xabu8; 64];
        for _ in 0..n {
            self.agent.packet_ins().push(&CorePacketIn {
                reason: PacketInReason::Action,
                table_id: 0,
                cookie: 0,
                max_len: OFPCML_NO_BUFFER,
                key: &key,
                frame: &frame,
            });
        }
    }
}

fn accounted(s: &AgentStats) -> u64 {
    s.packet_ins_sent
        + s.packet_ins_dropped_queue_full
        + s.packet_ins_dropped_rate_limited
        + s.packet_ins_backlogged
        + s.packet_ins_dropped_no_controller
        + s.packet_ins_port_disabled
        + s.packet_ins_waiting
}

/// Floods one controller for `ms` milliseconds with `per_ms` packet-ins per millisecond (one
/// management poll per millisecond), then lets it drain; returns the packet-ins it received.
fn flood(r: &mut Rig, id: u32, ms: u64, per_ms: usize) -> u64 {
    let mut received = 0;
    for _ in 0..ms {
        r.now += 1;
        r.generate(per_ms);
        r.poll();
        received += r.drain(id) as u64;
        let s = r.agent.stats();
        assert_eq!(accounted(&s), s.packet_ins_generated, "{s:?}");
    }
    for _ in 0..10_000 {
        if r.agent.stats().packet_ins_waiting == 0 {
            break;
        }
        r.now += 1;
        r.poll();
        received += r.drain(id) as u64;
    }
    received
}

#[test]
fn without_a_rate_limit_only_the_queue_bounds_packet_ins() {
    let mut r = Rig::new(AgentConfig {
        packet_in_queue: 100,
        ..AgentConfig::default()
    });
    let id = r.connect(ConnKind::Active { target: 0 });
    assert_eq!(r.agent.connection_rate_limit(id), None);
    let received = flood(&mut r, id, 500, 150);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_generated, 500 * 150);
    assert_eq!(s.packet_ins_sent, received);
    // 100 fit per poll, 50 a poll are dropped at the queue.
    assert_eq!(s.packet_ins_sent, 500 * 100);
    assert_eq!(s.packet_ins_dropped_queue_full, 500 * 50);
    assert_eq!(s.packet_ins_dropped_rate_limited, 0);
    assert_eq!(
        s.packet_ins_sent + s.packet_ins_dropped_queue_full + s.packet_ins_dropped_rate_limited,
        s.packet_ins_generated
    );
}

#[test]
fn a_rate_limit_paces_queues_up_to_the_burst_then_drops() {
    let limit = RateLimit::new(1000, Some(100));
    let mut r = Rig::new(AgentConfig {
        rate_limit: Some(limit),
        packet_in_queue: 256,
        ..AgentConfig::default()
    });
    let id = r.connect(ConnKind::Active { target: 0 });
    assert_eq!(r.agent.connection_rate_limit(id), Some(limit));
    // 2 s at 20 packet-ins per ms: 40 000 generated, 20× the rate.
    let received = flood(&mut r, id, 2000, 20);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_generated, 40_000);
    assert_eq!(s.packet_ins_sent, received);
    assert_eq!(s.packet_ins_dropped_queue_full, 0);
    assert_eq!(s.packet_ins_backlogged, 0);
    assert_eq!(s.packet_ins_waiting, 0);
    assert_eq!(
        s.packet_ins_sent + s.packet_ins_dropped_queue_full + s.packet_ins_dropped_rate_limited,
        s.packet_ins_generated,
        "{s:?}"
    );
    // The bucket's burst at the start, then one per millisecond for 2 s, then what was
    // queued (at most the burst) drains at the rate.
    assert!(s.packet_ins_sent >= 2000, "{s:?}");
    assert!(s.packet_ins_sent <= 100 + 2000 + 100, "{s:?}");
    assert!(s.packet_ins_paced > 0 && s.packet_ins_paced <= s.packet_ins_sent);
}

#[test]
fn a_flood_over_the_queue_and_the_rate_counts_both_drops() {
    let mut r = Rig::new(AgentConfig {
        rate_limit: Some(RateLimit::new(100, None)),
        packet_in_queue: 64,
        ..AgentConfig::default()
    });
    let id = r.connect(ConnKind::Active { target: 0 });
    let received = flood(&mut r, id, 1000, 100);
    let s = r.agent.stats();
    assert!(s.packet_ins_dropped_queue_full > 0, "{s:?}");
    assert!(s.packet_ins_dropped_rate_limited > 0, "{s:?}");
    assert_eq!(s.packet_ins_sent, received);
    assert_eq!(
        s.packet_ins_sent + s.packet_ins_dropped_queue_full + s.packet_ins_dropped_rate_limited,
        s.packet_ins_generated,
        "{s:?}"
    );
    // 1 s at 100/s, plus the burst of 25 at the start and the 25 queued at the end.
    assert!((100..=150).contains(&s.packet_ins_sent), "{s:?}");
    // The counters are in the console's stats line.
    let line = format!("{s:?}");
    assert!(line.contains("packet_ins_dropped_rate_limited"), "{line}");
    assert!(line.contains("packet_ins_dropped_queue_full"), "{line}");
}

#[test]
fn limits_per_connection_kind_override_the_default() {
    let default = RateLimit::new(500, None);
    let mut r = Rig::new(AgentConfig {
        rate_limit: Some(default),
        ..AgentConfig::default()
    });
    let active = r.connect(ConnKind::Active { target: 0 });
    let passive = r.connect(ConnKind::Passive { local_port: 6653 });
    assert_eq!(r.agent.connection_rate_limit(active), Some(default));
    assert_eq!(r.agent.connection_rate_limit(passive), Some(default));
    // The Controller row of the active target: its own limit; of ptcp:6653: none.
    let own = RateLimit::new(200, Some(30));
    r.agent.set_controller_limits(
        &[
            (ConnKind::Active { target: 0 }, Some(own)),
            (ConnKind::Passive { local_port: 6653 }, None),
        ],
        r.now,
    );
    assert_eq!(r.agent.connection_rate_limit(active), Some(own));
    assert_eq!(r.agent.connection_rate_limit(passive), None);
    // A burst: the active connection gets its 30 at once and queues 30 more; the passive
    // one gets every packet-in.
    r.generate(100);
    r.poll();
    assert_eq!(r.drain(active), 30);
    assert_eq!(r.drain(passive), 100);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_waiting, 30);
    assert_eq!(s.packet_ins_dropped_rate_limited, 40);
    // Removing the limit sends what it held back at once.
    r.agent.set_controller_limits(&[], r.now);
    r.agent.set_rate_limit(None, r.now);
    assert_eq!(r.drain(active), 30);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_waiting, 0);
    assert_eq!(s.packet_ins_sent, 30 + 100 + 30);
    // A connection that closes with packet-ins held back counts them.
    r.agent
        .set_rate_limit(Some(RateLimit::new(100, None)), r.now);
    r.generate(60);
    r.poll();
    assert_eq!(r.drain(active), 25);
    assert_eq!(r.drain(passive), 25); // now under the default limit too
    r.agent.close(active, r.now);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_dropped_no_controller, 25);
    assert_eq!(s.packet_ins_waiting, 25); // the passive connection's
}

#[test]
fn queue_size_changes_at_run_time() {
    let mut r = Rig::new(AgentConfig::default());
    let id = r.connect(ConnKind::Active { target: 0 });
    r.generate(300);
    let s = r.agent.stats();
    assert_eq!(s.packet_ins_dropped_queue_full, 300 - 256);
    r.agent.set_packet_in_queue(10);
    assert_eq!(r.agent.stats().packet_ins_dropped_queue_full, 300 - 10);
    r.poll();
    assert_eq!(r.drain(id), 10);
    assert_eq!(r.agent.packet_ins().capacity(), 10);
    let s = r.agent.stats();
    assert_eq!(accounted(&s), s.packet_ins_generated);
}

#[test]
fn command_line_and_ovsdb_controller_rate_limits_reach_the_config() {
    let (settings, w) = BootSettings::parse(
        "controller=tcp:10.0.2.2:6653 controller.rate_limit=1000 controller.burst_limit=50 \
         packet_in.queue=512",
    );
    assert!(w.is_empty(), "{w:?}");
    let cfg = AgentConfig::from_settings(&settings, FailMode::Secure);
    assert_eq!(cfg.packet_in_queue, 512);
    assert_eq!(cfg.rate_limit, Some(RateLimit::new(1000, Some(50))));

    let schema = Schema::from_json(VSWITCH_SCHEMA).unwrap();
    let mut svc = ConfigService::new(
        OvsdbServer::new(Database::new(schema, 42)),
        Box::new(NoJournal),
    );
    let nics = [NicInfo {
        name: "eth1".into(),
        mac: [2, 0, 0, 0, 0, 1],
    }];
    svc.bootstrap(&settings, &nics, 0).unwrap();
    let plan = svc.poll_config(&nics).unwrap();
    let b = plan.bridge.unwrap();
    assert_eq!(
        b.controller_limits,
        vec![(
            "tcp:10.0.2.2:6653".to_string(),
            Some(RateLimit {
                rate: 1000,
                burst: 50
            })
        )]
    );
    // ovs-vsctl set controller br0 controller_rate_limit=200 (no burst: rate/4 = 50).
    let uuid = {
        let t = svc.db().table("Controller").unwrap();
        let (u, _) = t.rows().next().unwrap();
        u.to_string()
    };
    let ops = serde_json::json!([
        "Open_vSwitch",
        {"op": "update", "table": "Controller", "where": [["_uuid", "==", ["uuid", uuid]]],
         "row": {"controller_rate_limit": 200, "controller_burst_limit": ["set", []]}}
    ]);
    svc.server
        .transact_internal(ops, 1, &mut NoJournal)
        .expect("transact");
    let plan = svc.poll_config(&nics).expect("a new plan for a new limit");
    assert_eq!(
        plan.bridge.unwrap().controller_limits,
        vec![(
            "tcp:10.0.2.2:6653".to_string(),
            Some(RateLimit {
                rate: 200,
                burst: 50
            })
        )]
    );
    // Without the column: no limit.
    let ops = serde_json::json!([
        "Open_vSwitch",
        {"op": "update", "table": "Controller", "where": [],
         "row": {"controller_rate_limit": ["set", []]}}
    ]);
    svc.server
        .transact_internal(ops, 2, &mut NoJournal)
        .expect("transact");
    let plan = svc.poll_config(&nics).unwrap();
    assert_eq!(
        plan.bridge.unwrap().controller_limits,
        vec![("tcp:10.0.2.2:6653".to_string(), None)]
    );
}
