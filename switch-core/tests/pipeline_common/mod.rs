//! Helpers shared by the pipeline scenario tests: frame builders, a recording sink, a small
//! "bridge" that owns a pipeline, ports and a NORMAL switch and runs frames through them.
#![allow(dead_code)]

use switch_core::extract::extract;
use switch_core::flow::FlowKey;
use switch_core::normal::NormalSwitch;
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{Env, Outcome, OutputSink, PacketIn, PacketInReason, Pipeline};
use switch_core::port::{Port, PortNo, PortTable, VlanMode};

pub fn mac(last: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, last]
}

pub fn mac_u128(m: [u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, b| (a << 8) | *b as u128)
}

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

fn inet_sum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet frame (optionally 802.1Q-tagged) around `payload` of `ethertype`.
pub fn eth(
    dst: [u8; 6],
    src: [u8; 6],
    vlan: Option<u16>,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// An IPv4 packet with `proto` and an L4 payload.
pub fn ipv4(src: u32, dst: u32, proto: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = inet_sum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let mut p = h.to_vec();
    p.extend_from_slice(l4);
    p
}

/// A TCP header (no options, SYN) without payload; checksum left 0.
pub fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x02;
    t.to_vec()
}

/// A UDP header with 4 payload bytes; checksum 0 (none).
pub fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = [0u8; 12];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    u.to_vec()
}

/// An ICMP echo request.
pub fn icmp_echo() -> Vec<u8> {
    let mut i = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
    let c = inet_sum(&i);
    i[2..4].copy_from_slice(&c.to_be_bytes());
    i
}

/// A TCP/IPv4 frame.
pub fn tcp_frame(
    src: [u8; 6],
    dst: [u8; 6],
    sip: u32,
    dip: u32,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    eth(
        dst,
        src,
        None,
        0x0800,
        &ipv4(sip, dip, 6, 64, &tcp(sport, dport)),
    )
}

/// What the pipeline sent where.
#[derive(Default, Debug)]
pub struct Recorder {
    pub outputs: Vec<(PortNo, Vec<u8>)>,
    pub packet_ins: Vec<(PacketInReason, u8, u64)>,
}

impl OutputSink for Recorder {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: &[u8]) {
        self.outputs.push((port, frame.to_vec()));
    }
    fn controller(&mut self, p: &PacketIn<'_>) {
        self.packet_ins.push((p.reason, p.table_id, p.cookie));
    }
}

impl Recorder {
    pub fn ports(&self) -> Vec<PortNo> {
        self.outputs.iter().map(|o| o.0).collect()
    }
}

/// A bridge: pipeline + ports + NORMAL, with a clock.
pub struct Bridge {
    pub pipeline: Pipeline,
    pub ports: PortTable,
    pub normal: NormalSwitch,
    pub now_ms: u64,
}

impl Bridge {
    pub fn new(pipeline: Pipeline) -> Self {
        Bridge {
            pipeline,
            ports: PortTable::new(),
            normal: NormalSwitch::default(),
            now_ms: 0,
        }
    }

    pub fn add_port(&mut self, no: PortNo, vlan_mode: VlanMode) {
        self.ports
            .add(Port::new(no, &format!("p{no}"), mac(0xf0 + no as u8)).with_vlan_mode(vlan_mode))
            .unwrap();
    }

    /// Runs one frame received on `in_port`; returns what went out and the consulted mask.
    pub fn send(&mut self, in_port: PortNo, frame: &[u8]) -> (Recorder, Outcome, FlowKey) {
        let mut key = FlowKey::ZERO;
        extract(frame, in_port, &mut key);
        let mut f = HeapFrame::new(frame);
        let mut wc = FlowKey::ZERO;
        let mut rec = Recorder::default();
        let mut env = Env {
            ports: &self.ports,
            normal: Some(&mut self.normal),
            meters: None,
            now_ms: self.now_ms,
        };
        let o = self
            .pipeline
            .process(&mut env, &mut key, &mut f, &mut wc, &mut rec);
        (rec, o, wc)
    }
}
