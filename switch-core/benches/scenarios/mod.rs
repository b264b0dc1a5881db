//! Datapath benchmark scenarios shared by the criterion bench (`datapath.rs`) and the
//! instruction-count runner (`datapath_callgrind.rs`).
//!
//! Frames are pointer-sized handles on pooled buffers (as the kernel's DMA `PacketBuf`), so a
//! move costs what it costs in the kernel; "rx" copies a 64-byte template into a free buffer
//! and patches the per-flow fields, "tx" returns the buffer to the pool at once.
#![allow(dead_code, clippy::vec_box)] // Boxes: frames are pointer-sized handles, as DMA buffers.

use switch_core::action::Instructions;
use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::normal::{NormalConfig, NormalSwitch};
use switch_core::packet::Frame;
use switch_core::pipeline::{Action, Env, FlowMod, PacketIn, Pipeline, PipelineConfig};
use switch_core::port::{OFPP_NORMAL, Port, PortNo, PortTable};

pub const BATCH: usize = 32;
pub const FRAME_LEN: usize = 64;
const HEADROOM: usize = 64;

/// A packet buffer (2 KiB like a DMA buffer would be is not needed for 64-byte frames).
pub struct Buf {
    data: [u8; 256],
    start: usize,
    end: usize,
}

/// A handle on a pooled buffer.
pub struct BenchFrame(Box<Buf>);

impl Frame for BenchFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.0.data[self.0.start..self.0.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let b = &mut *self.0;
        &mut b.data[b.start..b.end]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.0.start {
            return false;
        }
        self.0.start -= n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.0.end - self.0.start {
            return false;
        }
        self.0.start += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.0.end = self.0.end.min(self.0.start + len);
    }
}

/// Buffer pool + counting sink.
pub struct Sink {
    pool: Vec<Box<Buf>>,
    pub tx: u64,
    pub dropped: u64,
    pub copies: u64,
    pub packet_ins: u64,
}

impl Sink {
    pub fn new() -> Sink {
        Sink {
            pool: (0..4 * BATCH + 64)
                .map(|_| {
                    Box::new(Buf {
                        data: [0; 256],
                        start: HEADROOM,
                        end: HEADROOM,
                    })
                })
                .collect(),
            tx: 0,
            dropped: 0,
            copies: 0,
            packet_ins: 0,
        }
    }

    #[inline]
    fn alloc(&mut self, bytes: &[u8]) -> Option<BenchFrame> {
        let mut b = self.pool.pop()?;
        b.start = HEADROOM;
        b.end = HEADROOM + bytes.len();
        b.data[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        Some(BenchFrame(b))
    }
}

impl DatapathSink<BenchFrame> for Sink {
    #[inline]
    fn output(&mut self, _port: PortNo, _queue: Option<u32>, frame: BenchFrame) {
        self.tx += 1;
        self.pool.push(frame.0);
    }
    #[inline]
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<BenchFrame> {
        self.copies += 1;
        self.alloc(bytes)
    }
    fn controller(&mut self, _packet_in: &PacketIn<'_>) {
        self.packet_ins += 1;
    }
    #[inline]
    fn release(&mut self, frame: BenchFrame, _why: Release) {
        self.dropped += 1;
        self.pool.push(frame.0);
    }
}

/// How to make the i-th packet of a scenario.
pub trait Traffic {
    /// Input port and bytes of packet `i` (written into `buf`, `FRAME_LEN` bytes).
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo;
}

impl Buf {
    /// The frame area as a fixed-size array for [`Traffic::packet`].
    fn frame(&mut self) -> &mut [u8; FRAME_LEN] {
        self.start = HEADROOM;
        self.end = HEADROOM + FRAME_LEN;
        (&mut self.data[HEADROOM..HEADROOM + FRAME_LEN])
            .try_into()
            .expect("FRAME_LEN bytes")
    }
}

/// One scenario: the bridge state, the datapath, the traffic.
pub struct Scenario {
    pub name: &'static str,
    pub ports: PortTable,
    pub pipeline: Pipeline,
    pub normal: NormalSwitch,
    pub dp: Datapath,
    pub traffic: Box<dyn Traffic + Send>,
    pub sink: Sink,
    pub next: u64,
    rx: Vec<BenchFrame>,
    now_ms: u64,
    /// The clock advances 1 ms every this many batches (0: it stands still).
    batches_per_ms: u64,
    batches: u64,
    /// Every this many batches, one frame from a new source MAC (0: never).
    new_host_every: u64,
}

impl Scenario {
    /// Runs `batches` batches of [`BATCH`] packets (all packets of a batch from one port: the
    /// port of the batch's first packet).
    #[inline(never)]
    pub fn run(&mut self, batches: u64) {
        for _ in 0..batches {
            let mut port = 0;
            for j in 0..BATCH {
                // "rx": a free buffer, written by the traffic generator.
                let Some(mut b) = self.sink.pool.pop() else {
                    break;
                };
                let p = self.traffic.packet(self.next, b.frame());
                self.next += 1;
                if j == 0 {
                    port = p;
                }
                self.rx.push(BenchFrame(b));
            }
            self.process(port);
            self.batches += 1;
            if self.batches_per_ms > 0 && self.batches.is_multiple_of(self.batches_per_ms) {
                self.now_ms += 1;
            }
            if self.new_host_every > 0
                && self.batches.is_multiple_of(self.new_host_every)
                && let Some(mut b) = self.sink.pool.pop()
            {
                // A host never seen before, on port 2, to one of the learned hosts.
                let h = 0x0200_0300_0000 + self.batches / self.new_host_every;
                write_tcp(
                    b.frame(),
                    0x0200_0200_0000,
                    h,
                    0x0c00_0001,
                    0x0a00_0001,
                    7,
                    80,
                );
                self.rx.push(BenchFrame(b));
                self.process(2);
            }
        }
    }

    /// The frames in `rx` through the datapath as one batch from `port`.
    #[inline(always)]
    fn process(&mut self, port: PortNo) {
        let mut env = Env {
            ports: &self.ports,
            normal: Some(&mut self.normal),
            meters: None,
            now_ms: self.now_ms,
        };
        self.dp.process_batch(
            &mut self.pipeline,
            &mut env,
            port,
            self.rx.drain(..),
            &mut self.sink,
        );
    }

    /// As [`run`](Self::run), through a multi-core worker (its replica, NORMAL and caches)
    /// instead of this scenario's own datapath: the traffic and the sink are the scenario's.
    /// The worker syncs at every batch boundary, as a worker core's loop does.
    #[inline(never)]
    pub fn run_worker(&mut self, w: &mut switch_core::mcore::Worker, batches: u64) {
        for _ in 0..batches {
            let mut port = 0;
            for j in 0..BATCH {
                let Some(mut b) = self.sink.pool.pop() else {
                    break;
                };
                let p = self.traffic.packet(self.next, b.frame());
                self.next += 1;
                if j == 0 {
                    port = p;
                }
                self.rx.push(BenchFrame(b));
            }
            w.sync(self.now_ms);
            w.process_batch(port, self.rx.drain(..), &mut self.sink, self.now_ms);
        }
    }
}

fn ports(n: u32) -> PortTable {
    let mut t = PortTable::new();
    for p in 1..=n {
        t.add(Port::new(p, "p", [2, 0, 0, 0, 0xee, p as u8]))
            .unwrap();
    }
    t
}

/// Ethernet + IPv4 + TCP, 64 bytes.
pub fn write_tcp(
    buf: &mut [u8; FRAME_LEN],
    dst: u64,
    src: u64,
    ip_src: u32,
    ip_dst: u32,
    sp: u16,
    dp: u16,
) {
    *buf = [0; FRAME_LEN];
    buf[0..6].copy_from_slice(&dst.to_be_bytes()[2..]);
    buf[6..12].copy_from_slice(&src.to_be_bytes()[2..]);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut buf[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&ip_src.to_be_bytes());
    ip[16..20].copy_from_slice(&ip_dst.to_be_bytes());
    let tcp = &mut buf[34..54];
    tcp[0..2].copy_from_slice(&sp.to_be_bytes());
    tcp[2..4].copy_from_slice(&dp.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
}

const MAC_A: u64 = 0x0200_0000_0a01;
const MAC_B: u64 = 0x0200_0000_0b01;

fn normal_pipeline() -> Pipeline {
    let mut p = Pipeline::default();
    p.flow_mod(
        &FlowMod::add(
            0,
            0,
            Match::new(),
            Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
        ),
        0,
    )
    .unwrap();
    p
}

fn build(
    name: &'static str,
    n_ports: u32,
    pipeline: Pipeline,
    normal: NormalSwitch,
    config: DatapathConfig,
    traffic: Box<dyn Traffic + Send>,
) -> Scenario {
    Scenario {
        name,
        ports: ports(n_ports),
        pipeline,
        normal,
        dp: Datapath::new(config),
        traffic,
        sink: Sink::new(),
        next: 0,
        rx: Vec::with_capacity(BATCH),
        now_ms: 1,
        batches_per_ms: 0,
        batches: 0,
        new_host_every: 0,
    }
}

/// NORMAL, 2 ports, one flow A (port 1) → B (port 2).
struct OneFlow([u8; FRAME_LEN]);
impl Traffic for OneFlow {
    fn packet(&mut self, _i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        *buf = self.0;
        1
    }
}

/// Teaches the switch where B lives (one packet B → A from port 2).
fn learn_b(s: &mut Scenario) {
    struct FromB;
    impl Traffic for FromB {
        fn packet(&mut self, _i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
            write_tcp(buf, MAC_A, MAC_B, 0x0a00_0002, 0x0a00_0001, 80, 1000);
            2
        }
    }
    let t = std::mem::replace(&mut s.traffic, Box::new(FromB));
    s.run(1);
    s.traffic = t;
}

pub fn l2_one_flow(config: DatapathConfig) -> Scenario {
    let mut s = build(
        "l2_one_flow",
        2,
        normal_pipeline(),
        NormalSwitch::default(),
        config,
        Box::new(OneFlow({
            let mut f = [0; FRAME_LEN];
            write_tcp(&mut f, MAC_B, MAC_A, 0x0a00_0001, 0x0a00_0002, 1000, 80);
            f
        })),
    );
    learn_b(&mut s);
    s.run(200);
    s
}

/// NORMAL, 2 ports, `n` flows: distinct source MAC and source IP each, from port 1, to 1000
/// hosts learned on port 2.
struct ManyL2 {
    n: u64,
}
impl Traffic for ManyL2 {
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        // A permutation of the flows (1,000,003 is prime) so consecutive packets are unrelated
        // and every flow comes once per round of `n` packets.
        let f = ((i % self.n) * 1_000_003) % self.n;
        let src = 0x0200_0100_0000 + f;
        let dst = 0x0200_0200_0000 + (f % 1000);
        write_tcp(buf, dst, src, 0x0b00_0000 + f as u32, 0x0a00_0001, 1000, 80);
        1
    }
}

pub fn l2_many_flows(n: u64, config: DatapathConfig) -> Scenario {
    let normal = NormalSwitch::new(NormalConfig {
        max_entries: (2 * n as usize).max(8192),
        ..NormalConfig::default()
    });
    let mut s = build(
        "l2_1m_flows",
        2,
        normal_pipeline(),
        normal,
        config,
        Box::new(ManyL2 { n }),
    );
    // Learn the 1000 destination hosts on port 2.
    struct Hosts;
    impl Traffic for Hosts {
        fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
            let h = 0x0200_0200_0000 + (i % 1000);
            write_tcp(buf, 0x0200_0100_0000, h, 0x0a00_0001, 0x0b00_0000, 80, 1000);
            2
        }
    }
    let t = std::mem::replace(&mut s.traffic, Box::new(Hosts));
    s.run(1000 / BATCH as u64 + 1);
    s.traffic = t;
    s.next = 0;
    // Every flow twice: learn + install, then install again after the learning settled.
    s.run(2 * n / BATCH as u64 + 2);
    s
}

/// `l2_1m_flows` with a clock that runs: 1 ms per 312 batches (~10,000 packets, i.e. a
/// 10 Mpps port), so a flow (hit once per 1 M packets, ~100 ms) is always hit in a new
/// millisecond, as on a live switch.
pub fn l2_many_flows_live_clock(n: u64, config: DatapathConfig) -> Scenario {
    let mut s = l2_many_flows(n, config);
    s.batches_per_ms = 312;
    s
}

/// `l2_1m_flows_live_clock` on a network where new hosts keep appearing: every millisecond one
/// packet from a never-seen source MAC (1,000 new addresses per second) is learned.
pub fn l2_many_flows_new_hosts(n: u64, config: DatapathConfig) -> Scenario {
    let mut s = l2_many_flows_live_clock(n, config);
    s.new_host_every = s.batches_per_ms;
    s
}

/// A tiny deterministic RNG.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Two-table ACL: table 0 holds `n_rules` L3/L4 rules over `n_masks` masks (allow → goto 1,
/// deny → drop, default allow); table 1 routes 256 /24s to ports 2..4 (default port 2).
/// Returns the pipeline and sample packets `(ip_src, ip_dst, dport)` that hit rules.
fn acl_pipeline(n_rules: usize, n_masks: usize, rng: &mut Rng) -> (Pipeline, Vec<(u32, u32, u16)>) {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 2,
        ..PipelineConfig::default()
    });
    // Candidate masks: ip_src prefix × ip_dst prefix × tcp_dst exact or not.
    let mut masks = Vec::new();
    for &s in &[0u32, 8, 16, 24, 32] {
        for &d in &[0u32, 16, 24, 32] {
            for &port in &[false, true] {
                if s == 0 && d == 0 && !port {
                    continue;
                }
                masks.push((s, d, port));
            }
        }
    }
    // Spread the choice over the candidates (7 is coprime with their number, 39).
    let masks: Vec<_> = (0..n_masks.min(masks.len()))
        .map(|i| masks[(i * 7) % masks.len()])
        .collect();
    let pm = |len: u32| if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let mut samples = Vec::new();
    for i in 0..n_rules {
        let (sl, dl, port) = masks[i % masks.len()];
        let src = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
        let dst = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
        let dport = [22u16, 80, 443, 8080, 53][(rng.next() % 5) as usize];
        let mut m = Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 6);
        if sl > 0 {
            m = m.with_masked(Field::Ipv4Src, (src & pm(sl)) as u128, pm(sl) as u128);
        }
        if dl > 0 {
            m = m.with_masked(Field::Ipv4Dst, (dst & pm(dl)) as u128, pm(dl) as u128);
        }
        if port {
            m = m.with(Field::TcpDst, dport as u128);
        }
        let allow = !rng.next().is_multiple_of(5);
        let ins = if allow {
            Instructions::drop().with_goto(1)
        } else {
            Instructions::drop()
        };
        let prio = 1 + (rng.next() % 1000) as u16;
        if p.flow_mod(&FlowMod::add(0, prio, m, ins), 0).is_ok() {
            samples.push((src, dst, dport));
        }
    }
    p.flow_mod(
        &FlowMod::add(0, 0, Match::new(), Instructions::drop().with_goto(1)),
        0,
    )
    .unwrap();
    for i in 0..256u32 {
        let m = Match::new().with(Field::EthType, 0x0800).with_masked(
            Field::Ipv4Dst,
            (0x0a00_0000 | (i << 8)) as u128,
            0xffff_ff00,
        );
        let out = 2 + (i % 3);
        p.flow_mod(
            &FlowMod::add(1, 10, m, Instructions::apply(vec![Action::output(out)])),
            0,
        )
        .unwrap();
    }
    p.flow_mod(
        &FlowMod::add(
            1,
            0,
            Match::new(),
            Instructions::apply(vec![Action::output(2)]),
        ),
        0,
    )
    .unwrap();
    (p, samples)
}

/// `n_flows` flows, 80 % aimed at rules (the rule's addresses, random low bits where the mask
/// leaves them), 20 % random; from port 1.
struct AclTraffic {
    flows: Vec<(u32, u32, u16, u16)>,
}
impl Traffic for AclTraffic {
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        let n = self.flows.len() as u64;
        let (s, d, sp, dp) = self.flows[((i.wrapping_mul(0x9e37_79b9)) % n) as usize];
        write_tcp(buf, MAC_B, MAC_A, s, d, sp, dp);
        1
    }
}

fn acl_traffic(samples: &[(u32, u32, u16)], n_flows: usize, rng: &mut Rng) -> AclTraffic {
    let flows = (0..n_flows)
        .map(|_| {
            let sp = 1024 + (rng.next() % 4096) as u16;
            if rng.next().is_multiple_of(5) || samples.is_empty() {
                let r = rng.next();
                (
                    0x0a00_0000 | (r as u32 & 0xffffff),
                    0x0a00_0000 | ((r >> 32) as u32 & 0xffffff),
                    sp,
                    80,
                )
            } else {
                let (s, d, p) = samples[(rng.next() % samples.len() as u64) as usize];
                (s, d, sp, p)
            }
        })
        .collect();
    AclTraffic { flows }
}

pub fn acl(
    name: &'static str,
    n_rules: usize,
    n_masks: usize,
    n_flows: usize,
    config: DatapathConfig,
) -> Scenario {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (p, samples) = acl_pipeline(n_rules, n_masks, &mut rng);
    let traffic = acl_traffic(&samples, n_flows, &mut rng);
    let mut s = build(
        name,
        4,
        p,
        NormalSwitch::default(),
        config,
        Box::new(traffic),
    );
    s.run(3 * n_flows as u64 / BATCH as u64 + 10);
    s
}

/// Tables built so that packets can be made to consult any of 32 × 32 × 16 masks: table 0 has a
/// chain of rules ip_src/k (k = 1..32, value: a single 1 bit at position k, priority falling
/// with k), so a packet whose first set bit of ip_src is at k stops there and consults ip_src/k;
/// table 1 the same on ip_dst, table 2 on tcp_dst, then output.
fn chain_pipeline() -> Pipeline {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 3,
        ..PipelineConfig::default()
    });
    let chain = |p: &mut Pipeline, table: u8, field: Field, bits: u32, next: Instructions| {
        for k in 1..=bits {
            let mask = ((1u64 << bits) - 1) as u128 & !(((1u64 << (bits - k)) - 1) as u128);
            let value = 1u128 << (bits - k);
            let mut m = Match::new().with(Field::EthType, 0x0800);
            if field == Field::TcpDst {
                m = m.with(Field::IpProto, 6);
            }
            m = m.with_masked(field, value, mask);
            p.flow_mod(&FlowMod::add(table, 1000 - k as u16, m, next.clone()), 0)
                .unwrap();
        }
        p.flow_mod(&FlowMod::add(table, 0, Match::new(), next), 0)
            .unwrap();
    };
    chain(
        &mut p,
        0,
        Field::Ipv4Src,
        32,
        Instructions::drop().with_goto(1),
    );
    chain(
        &mut p,
        1,
        Field::Ipv4Dst,
        32,
        Instructions::drop().with_goto(2),
    );
    chain(
        &mut p,
        2,
        Field::TcpDst,
        16,
        Instructions::apply(vec![Action::output(2)]),
    );
    p
}

/// Attack traffic: packet i uses mask combination i mod `n_combos` (first set bits of ip_src,
/// ip_dst, tcp_dst), with fixed bits below them: one megaflow per mask, sent round robin (the
/// tuple-space-explosion attack of Csikor et al.).
struct Attack {
    n_combos: u64,
}
impl Traffic for Attack {
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        let c = (i.wrapping_mul(0x9e37_79b9)) % self.n_combos;
        let (a, b, d) = (
            (c % 32) as u32,
            ((c / 32) % 32) as u32,
            ((c / 1024) % 16) as u32,
        );
        let src = (1u32 << (31 - a)) | 0x0000_0001;
        let dst = (1u32 << (31 - b)) | 0x0000_0001;
        let dp = (1u16 << (15 - d)) | 1;
        write_tcp(buf, MAC_B, MAC_A, src, dst, 1000, dp);
        1
    }
}

/// The attack's rule set and traffic making `n_combos` masks (≥ 1000).
pub fn many_masks_attack(n_combos: u64, config: DatapathConfig) -> Scenario {
    let mut s = build(
        "many_masks_attack",
        2,
        chain_pipeline(),
        NormalSwitch::default(),
        config,
        Box::new(Attack { n_combos }),
    );
    s.run(3 * n_combos / BATCH as u64 + 10);
    s
}

/// Normal traffic through the attack's rule set: one mask combination, many flows (source
/// ports), for the "normal rate" of the same tables.
struct AttackNormal;
impl Traffic for AttackNormal {
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        let sp = 1024 + (i.wrapping_mul(0x9e37_79b9) % 50_000) as u16;
        write_tcp(buf, MAC_B, MAC_A, 0x0a00_0001, 0x0a00_0002, sp, 80);
        1
    }
}

pub fn attack_tables_normal_traffic(config: DatapathConfig) -> Scenario {
    let mut s = build(
        "attack_tables_normal_traffic",
        2,
        chain_pipeline(),
        NormalSwitch::default(),
        config,
        Box::new(AttackNormal),
    );
    s.run(100);
    s
}

/// Every packet a new flow: ip_src and ip_dst count up through the ACL whose table 0 has /32
/// destination rules, so each packet needs a translation and installs a megaflow (evicting old ones).
struct NewFlows;
impl Traffic for NewFlows {
    fn packet(&mut self, i: u64, buf: &mut [u8; FRAME_LEN]) -> PortNo {
        let i = i as u32;
        write_tcp(
            buf,
            MAC_B,
            MAC_A,
            0x0c00_0000 | (i & 0xff_ffff),
            0x0a00_0000 | (i & 0xff_ffff),
            1000,
            80,
        );
        1
    }
}

pub fn miss_rate(config: DatapathConfig) -> Scenario {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (p, _) = acl_pipeline(10_000, 20, &mut rng);
    let mut s = build(
        "miss_rate",
        4,
        p,
        NormalSwitch::default(),
        config,
        Box::new(NewFlows),
    );
    s.run(100);
    s
}

/// `miss_rate` in the steady state of a switch that admits new flows for good: the megaflow
/// table is full at the default limit (200k), so every install also evicts one (no table
/// growth, no fresh memory from the host's kernel in the measured part).
pub fn miss_rate_full(config: DatapathConfig) -> Scenario {
    let limit = DatapathConfig::default().max_megaflows;
    let mut s = miss_rate(DatapathConfig {
        max_megaflows: limit,
        ..config
    });
    s.run((limit / BATCH) as u64 + 100);
    s
}

/// Every scenario by name (for the callgrind runner), built with `config`.
pub fn by_name(name: &str, config: DatapathConfig, l2_flows: u64) -> Option<Scenario> {
    Some(match name {
        "l2_one_flow" => l2_one_flow(config),
        "l2_1m_flows" => l2_many_flows(l2_flows, config),
        "l2_1m_flows_live_clock" => l2_many_flows_live_clock(l2_flows, config),
        "l2_1m_flows_new_hosts" => l2_many_flows_new_hosts(l2_flows, config),
        "acl_10k_rules_20_masks" => acl("acl_10k_rules_20_masks", 10_000, 20, 10_000, config),
        "acl_100k_rules" => acl("acl_100k_rules", 100_000, 20, 10_000, config),
        "many_masks_attack" => many_masks_attack(2048, config),
        "attack_tables_normal_traffic" => attack_tables_normal_traffic(config),
        "miss_rate" => miss_rate(config),
        "miss_rate_full" => miss_rate_full(config),
        _ => return None,
    })
}

/// The large-flow-table datapath settings (the default flow limit is 200k).
pub fn big(config: DatapathConfig) -> DatapathConfig {
    DatapathConfig {
        max_megaflows: 2_000_000,
        ..config
    }
}
