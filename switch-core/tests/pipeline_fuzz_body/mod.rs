//! The body of the `pipeline` fuzz target, shared with a stable-Rust property test
//! (`tests/pipeline_random.rs`): bytes drive a random sequence of flow-mods, group-mods, port
//! changes, packets, packet-outs, traces and expiry through one bridge. Controller data is
//! validated (errors are fine), packets are whatever the bytes say; nothing may panic, and a few
//! invariants are checked on the way.
#![allow(dead_code)]

use switch_core::action::{Action, Instructions, OFPG_ALL};
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::normal::NormalSwitch;
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{
    Env, FlowMod, FlowModCommand, MeterHook, OutputSink, PacketIn, Pipeline, PipelineConfig,
    flow_mod_flags,
};
use switch_core::port::{
    OFPP_ALL, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_NORMAL, OFPP_TABLE, Port,
    PortConfig, PortTable, VlanMode, VlanSet,
};
use switch_core::trace::trace_key;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u128(&mut self, width: u8) -> u128 {
        let mut v = 0u128;
        for _ in 0..width.div_ceil(8) {
            v = (v << 8) | self.u8() as u128;
        }
        v
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const PORTS: [u32; 8] = [
    1,
    2,
    3,
    OFPP_IN_PORT,
    OFPP_NORMAL,
    OFPP_FLOOD,
    OFPP_CONTROLLER,
    OFPP_ALL,
];

fn field(b: &mut Bytes) -> Field {
    Field::ALL[b.u8() as usize % Field::ALL.len()]
}

/// Small values most of the time so that matches and packets meet.
fn value(b: &mut Bytes, f: Field) -> u128 {
    match b.u8() % 4 {
        0 => b.u8() as u128 % 4,
        1 => match f {
            Field::EthType => [0x0800, 0x86dd, 0x0806][b.u8() as usize % 3],
            Field::IpProto => [6, 17, 1, 58, 132][b.u8() as usize % 5],
            Field::VlanVid => 0x1000 | (b.u8() as u128 % 4),
            _ => b.u8() as u128,
        },
        _ => b.u128(f.info().bits),
    }
}

fn action(b: &mut Bytes) -> Action {
    match b.u8() % 10 {
        0 | 1 => Action::Output {
            port: if b.u8().is_multiple_of(8) {
                b.u32()
            } else {
                PORTS[b.u8() as usize % PORTS.len()]
            },
            max_len: b.u16(),
        },
        2 => Action::Group(b.u8() as u32 % 4),
        3 | 4 => {
            let f = field(b);
            Action::SetField {
                field: f,
                value: value(b, f),
            }
        }
        5 => Action::PushVlan(if b.u8().is_multiple_of(4) {
            b.u16()
        } else {
            0x8100
        }),
        6 => Action::PopVlan,
        7 => Action::SetQueue(b.u8() as u32),
        8 => Action::DecNwTtl,
        _ => Action::SetNwTtl(b.u8()),
    }
}

fn actions(b: &mut Bytes) -> Vec<Action> {
    (0..b.u8() % 5).map(|_| action(b)).collect()
}

fn a_match(b: &mut Bytes) -> Match {
    let mut m = Match::new();
    for _ in 0..b.u8() % 5 {
        let f = field(b);
        let v = value(b, f);
        if b.u8().is_multiple_of(3) {
            let mask = value(b, f);
            m.set_masked(f, v & mask, mask);
        } else {
            m.set(f, v);
        }
    }
    m
}

fn instructions(b: &mut Bytes) -> Instructions {
    let mut i = Instructions::drop();
    let which = b.u8();
    if which & 1 != 0 {
        i.apply = actions(b);
    }
    if which & 2 != 0 {
        i.write = actions(b);
    }
    if which & 4 != 0 {
        i.clear = true;
    }
    if which & 8 != 0 {
        i.write_metadata = Some((b.u8() as u64, b.u8() as u64));
    }
    if which & 16 != 0 {
        i.goto = Some(b.u8() % 5);
    }
    if which & 32 != 0 {
        i.meter = Some(b.u8() as u32);
    }
    i
}

struct Sink(usize);

impl OutputSink for Sink {
    fn output(&mut self, _: u32, _: Option<u32>, frame: &[u8]) {
        self.0 += frame.len();
    }
    fn controller(&mut self, p: &PacketIn<'_>) {
        self.0 += p.frame.len();
    }
}

struct Meters(u8);

impl MeterHook for Meters {
    fn meter(&mut self, id: u32, _: usize, _: u64) -> bool {
        (id as u8) & self.0 == 0
    }
}

pub fn run(data: &[u8]) {
    let mut b = Bytes(data);
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 4,
        miss_send_len: 128,
        invalid_ttl_to_controller: b.u8() & 1 != 0,
        table_miss_to_controller: b.u8() & 1 != 0,
    });
    let _ = p.set_max_entries(0, 1 + b.u8() as usize);
    p.set_group_limits(3, 4);
    let mut ports = PortTable::new();
    for no in 1..=3u32 {
        let mode = match b.u8() % 3 {
            0 => VlanMode::default(),
            1 => VlanMode::Access(1 + no as u16 % 2),
            _ => VlanMode::Trunk(VlanSet::from_vids(&[0, 1, 2])),
        };
        let _ = ports.add(Port::new(no, "p", [2, 0, 0, 0, 0, no as u8]).with_vlan_mode(mode));
    }
    let _ = ports.add(Port::new(OFPP_LOCAL, "br0", [2, 0, 0, 0, 0, 0xff]));
    let mut normal = NormalSwitch::default();
    let mut now = 0u64;
    let mut meters = Meters(b.u8());
    while !b.is_empty() {
        match b.u8() % 8 {
            0 | 1 => {
                let command = FlowModCommand::from_u8(b.u8() % 6).unwrap_or(FlowModCommand::Add);
                let mut fm = FlowMod::add(
                    b.u8() % 5,
                    b.u8() as u16 % 4,
                    a_match(&mut b),
                    instructions(&mut b),
                )
                .with_command(command)
                .with_cookie(b.u8() as u64)
                .with_timeouts(b.u8() as u16 % 3, b.u8() as u16 % 3);
                fm.flags = flow_mod_flags(b.u8() as u16 & 0x1f).unwrap_or_default();
                fm.cookie_mask = b.u8() as u64;
                if b.u8().is_multiple_of(4) {
                    fm.out_port = PORTS[b.u8() as usize % PORTS.len()];
                }
                if command == FlowModCommand::Delete && b.u8().is_multiple_of(4) {
                    fm.table_id = 0xff;
                }
                let generation = p.generation();
                match p.flow_mod(&fm, now) {
                    Ok(_) => {}
                    Err(_) => assert_eq!(
                        generation,
                        p.generation(),
                        "a failed flow-mod changes nothing"
                    ),
                }
            }
            2 => {
                let command = match b.u8() % 3 {
                    0 => GroupModCommand::Add,
                    1 => GroupModCommand::Modify,
                    _ => GroupModCommand::Delete,
                };
                let group_type = GroupType::from_u8(b.u8() % 4).unwrap_or(GroupType::All);
                let group_id = if b.u8().is_multiple_of(8) {
                    OFPG_ALL
                } else {
                    b.u8() as u32 % 4
                };
                let buckets = (0..b.u8() % 4)
                    .map(|_| Bucket {
                        weight: if b.u8().is_multiple_of(2) {
                            0
                        } else {
                            b.u8() as u16 % 5
                        },
                        watch_port: [0xffff_ffff, 1, 2, 3, 0][b.u8() as usize % 5],
                        watch_group: [0xffff_ffff, 0, 1, 2][b.u8() as usize % 4],
                        actions: actions(&mut b),
                    })
                    .collect();
                let gm = GroupMod {
                    command,
                    group_type,
                    group_id,
                    buckets,
                };
                let _ = p.group_mod(&gm, now);
            }
            3 => {
                let no = 1 + b.u8() as u32 % 3;
                let _ = ports.set_link(no, b.u8() & 1 == 0);
                let bits = PortConfig::from_bits_truncate(b.u32());
                let _ = ports.mod_config(no, bits, PortConfig::all());
            }
            4..=6 => {
                let in_port = [1, 2, 3, OFPP_LOCAL, 7][b.u8() as usize % 5];
                let len = b.u8() as usize;
                let frame = b.take(len).to_vec();
                let mut key = FlowKey::ZERO;
                extract(&frame, in_port, &mut key);
                let original = key;
                if b.u8().is_multiple_of(4) {
                    // A trace first: it must not change anything the real run then sees.
                    let stats = p.table_stats();
                    let _ = trace_key(&p, &ports, Some(&normal), now, key, &frame).to_string();
                    assert_eq!(stats, p.table_stats(), "trace changed counters");
                }
                let mut f = HeapFrame::new(&frame);
                let mut wc = FlowKey::ZERO;
                let mut sink = Sink(0);
                let mut env = Env {
                    ports: &ports,
                    normal: Some(&mut normal),
                    meters: Some(&mut meters),
                    now_ms: now,
                };
                if b.u8().is_multiple_of(6) {
                    let acts = actions(&mut b);
                    let _ = p.packet_out(&mut env, &mut key, &mut f, &acts, &mut sink);
                } else {
                    p.process(&mut env, &mut key, &mut f, &mut wc, &mut sink);
                    assert_ne!(wc.get(Field::InPort), 0, "in_port is always consulted");
                    let _ = original;
                }
                let _ = OFPP_TABLE;
            }
            _ => {
                now += b.u16() as u64 * 10;
                for r in p.expire(now) {
                    assert!(r.duration_ms <= now);
                }
            }
        }
    }
}
