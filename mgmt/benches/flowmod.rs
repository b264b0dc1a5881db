//! Flow-mod ingest through the OpenFlow agent, as `ovs-ofctl -O OpenFlow13 add-flows` sends a
//! file of 100 000 flows (`priority=10,ip,nw_src=10.X.Y.Z,actions=drop`, the flows of
//! `tests/bench/openflow.sh`): many FLOW_MODs per TCP read, then a barrier. Throughput is in
//! flow-mods per second (criterion's elements/s).
//!
//! - `agent_add_flows`: the whole agent path (framing, session, decode, conversion, meter
//!   check, pipeline insert, barrier reply), fed in 64 KiB reads into a fresh bridge.
//! - `decode`: framing and `Message::decode` only; `decode_to_core`: plus the conversion to
//!   switch-core's flow-mod; `pipeline_insert`: switch-core's `Pipeline::flow_mod` of the
//!   converted flow-mods only (the classifier's share).
//!
//! `cargo bench -p mgmt --bench flowmod`; `FLOWMOD_N=10000` for a smaller file.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use mgmt::agent::{AgentConfig, BridgeCtx, FailMode, OfAgent};
use mgmt::netif::ConnKind;
use mgmt::openflow::OFP13;
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::{FlowMod, Hello, Message};
use mgmt::openflow::oxm::{Match, OxmField};
use switch_core::flow::Field;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{FlowMod as CoreFlowMod, OutputSink, PacketIn, Pipeline};
use switch_core::port::{Port, PortTable};

struct Nothing;
impl OutputSink for Nothing {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

fn n_flows() -> usize {
    std::env::var("FLOWMOD_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The flow-mods of the add-flows file, encoded back to back (xid = line number).
fn flow_mods(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let src = 0x0a00_0000u32 | (i as u32 & 0x00ff_ffff);
        let fm = FlowMod {
            priority: 10,
            match_: Match::any()
                .with(OxmField::exact(Field::EthType, 0x0800))
                .with(OxmField::exact(Field::Ipv4Src, src as u128)),
            instructions: Vec::new(),
            ..Default::default()
        };
        Message::FlowMod(fm)
            .encode_into(OFP13, i as u32 + 2, &mut out)
            .unwrap();
    }
    out
}

struct Bridge {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    agent: OfAgent,
    id: u32,
}

impl Bridge {
    fn new() -> Bridge {
        let mut ports = PortTable::new();
        for n in 1..=3u32 {
            ports
                .add(Port::new(n, &format!("eth{n}"), [2, 0, 0, 0, 0, n as u8]))
                .unwrap();
        }
        let mut b = Bridge {
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            agent: OfAgent::new(
                AgentConfig {
                    fail_mode: FailMode::Secure,
                    has_controllers: true,
                    ..AgentConfig::default()
                },
                0,
            ),
            id: 0,
        };
        b.id = b
            .with(|a, ctx| a.open(ctx, ConnKind::Passive { local_port: 6653 }))
            .unwrap();
        let hello = Message::Hello(Hello {
            bitmap: Some(1 << OFP13),
        })
        .encode(OFP13, 1)
        .unwrap();
        b.receive(&hello);
        b.drain();
        b
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let mut sink = Nothing;
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut sink,
            now_ms: 1,
            cores: None,
        };
        f(&mut self.agent, &mut ctx)
    }

    fn receive(&mut self, data: &[u8]) {
        let id = self.id;
        self.with(|a, ctx| a.receive(ctx, id, data));
    }

    fn drain(&mut self) -> usize {
        let n = self.agent.pending(self.id).len();
        self.agent.consume(self.id, n);
        n
    }

    /// Feeds `stream` in `read`-byte reads as the transport does (polling between reads);
    /// returns the bytes the agent answered (the barrier reply: 8).
    fn ingest(&mut self, stream: &[u8], read: usize) -> usize {
        let mut answered = 0;
        for chunk in stream.chunks(read) {
            self.receive(chunk);
            answered += self.drain();
            if !self.agent.can_receive(self.id) {
                self.with(|a, ctx| a.poll(ctx));
                answered += self.drain();
            }
        }
        self.with(|a, ctx| a.poll(ctx));
        answered + self.drain()
    }
}

fn bench(c: &mut Criterion) {
    let n = n_flows();
    let mods = flow_mods(n);
    let mut stream = mods.clone();
    stream.extend(Message::BarrierRequest.encode(OFP13, 0xbabe).unwrap());
    let messages: Vec<Vec<u8>> = {
        let mut f = Framer::default();
        f.push(&mods);
        std::iter::from_fn(|| f.next_message().map(|m| m.unwrap().to_vec())).collect()
    };
    assert_eq!(messages.len(), n);
    let core: Vec<CoreFlowMod> = messages
        .iter()
        .map(|m| match Message::decode(m).unwrap().1 {
            Message::FlowMod(fm) => fm.to_core().unwrap(),
            _ => unreachable!(),
        })
        .collect();

    // Sanity: every flow is in and the barrier alone is answered.
    let mut b = Bridge::new();
    assert_eq!(b.ingest(&stream, 64 * 1024), 8);
    assert_eq!(b.pipeline.entries(0xff).count(), n);

    let mut g = c.benchmark_group("flowmod_ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("agent_add_flows", |bch| {
        bch.iter_batched(
            Bridge::new,
            |mut b| {
                assert_eq!(b.ingest(&stream, 64 * 1024), 8);
                b
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("decode", |bch| {
        bch.iter(|| {
            let mut f = Framer::default();
            f.push(&mods);
            let mut k = 0;
            while let Some(Ok(m)) = f.next_message() {
                if let Ok((_, Message::FlowMod(_))) = Message::decode(&m) {
                    k += 1;
                }
            }
            assert_eq!(k, n);
        })
    });
    g.bench_function("decode_to_core", |bch| {
        bch.iter(|| {
            let mut k = 0;
            for m in &messages {
                if let Ok((_, Message::FlowMod(fm))) = Message::decode(m) {
                    k += fm.to_core().is_ok() as usize;
                }
            }
            assert_eq!(k, n);
        })
    });
    g.bench_function("pipeline_insert", |bch| {
        bch.iter_batched(
            Pipeline::default,
            |mut p| {
                for fm in &core {
                    p.flow_mod(fm, 1).unwrap();
                }
                p
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
