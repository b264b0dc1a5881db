//! Property tests of NORMAL: for random bridges (VLAN modes, port flags, link states), random
//! frames and random port changes, NORMAL never panics, never sends a frame back out its input
//! port, only outputs to ports that may carry the frame, with the tag the port's mode asks for,
//! and keeps the MAC table within its limit.

use proptest::prelude::*;
use switch_core::flow::{Field, FlowKey, OFPVID_PRESENT};
use switch_core::normal::{NormalConfig, NormalOutcome, NormalSwitch};
use switch_core::port::{
    OFPP_CONTROLLER, OFPP_LOCAL, Port, PortConfig, PortNo, PortTable, VlanMode, VlanSet,
};

/// A small VLAN pool so that ports and frames actually meet, plus the odd ones.
fn vid() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![0u16, 10, 20, 30]),
        1 => prop::sample::select(vec![1u16, 4094, 4095]),
        1 => any::<u16>(),
    ]
}

fn vlan_set() -> impl Strategy<Value = VlanSet> {
    prop_oneof![
        Just(VlanSet::all()),
        prop::collection::vec(vid(), 0..4).prop_map(|v| VlanSet::from_vids(&v)),
    ]
}

fn vlan_mode() -> impl Strategy<Value = VlanMode> {
    prop_oneof![
        vid().prop_map(VlanMode::Access),
        vlan_set().prop_map(VlanMode::Trunk),
        (vid(), vlan_set()).prop_map(|(n, s)| VlanMode::NativeTagged(n, s)),
        (vid(), vlan_set()).prop_map(|(n, s)| VlanMode::NativeUntagged(n, s)),
        Just(VlanMode::default()),
    ]
}

fn port_config() -> impl Strategy<Value = PortConfig> {
    prop_oneof![
        3 => Just(PortConfig::empty()),
        1 => any::<u32>().prop_map(PortConfig::from_bits_truncate),
    ]
}

#[derive(Clone, Debug)]
struct PortSpec {
    no: PortNo,
    mode: VlanMode,
    config: PortConfig,
    link_up: bool,
    blocked: bool,
}

fn port_no() -> impl Strategy<Value = PortNo> {
    prop_oneof![
        8 => 1u32..8,
        1 => Just(OFPP_LOCAL),
    ]
}

fn port_spec() -> impl Strategy<Value = PortSpec> {
    (
        port_no(),
        vlan_mode(),
        port_config(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(no, mode, config, link_up, blocked)| PortSpec {
            no,
            mode,
            config,
            link_up,
            blocked,
        })
}

fn mac() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (1u64..6).prop_map(|n| 0x0200_0000_0000 + n),
        1 => Just(0xffff_ffff_ffffu64),
        1 => Just(0x0100_5e00_0001u64),
        1 => Just(0x0180_c200_0000u64),
        1 => Just(0u64),
        1 => any::<u64>().prop_map(|m| m & 0xffff_ffff_ffff),
    ]
}

#[derive(Clone, Debug)]
enum Event {
    Frame {
        in_port: PortNo,
        src: u64,
        dst: u64,
        tag: Option<u16>,
        advance_ms: u64,
        /// Garbage in the fields NORMAL does not read.
        noise: [u64; 4],
    },
    Link(PortNo, bool),
    Config(PortNo, PortConfig),
    Mode(PortNo, VlanMode),
    Remove(PortNo),
    Add(PortSpec),
    Expire,
}

fn event() -> impl Strategy<Value = Event> {
    let in_port = prop_oneof![
        10 => port_no(),
        1 => Just(0u32),
        1 => Just(OFPP_CONTROLLER),
        1 => any::<u32>(),
    ];
    prop_oneof![
        20 => (
            in_port,
            mac(),
            mac(),
            prop::option::weighted(0.5, vid()),
            prop_oneof![5 => 0u64..2_000, 1 => 0u64..400_000],
            any::<[u64; 4]>(),
        )
            .prop_map(|(in_port, src, dst, tag, advance_ms, noise)| Event::Frame {
                in_port,
                src,
                dst,
                tag,
                advance_ms,
                noise,
            }),
        1 => (port_no(), any::<bool>()).prop_map(|(p, up)| Event::Link(p, up)),
        1 => (port_no(), port_config()).prop_map(|(p, c)| Event::Config(p, c)),
        1 => (port_no(), vlan_mode()).prop_map(|(p, m)| Event::Mode(p, m)),
        1 => port_no().prop_map(Event::Remove),
        1 => port_spec().prop_map(Event::Add),
        1 => Just(Event::Expire),
    ]
}

fn add(ports: &mut PortTable, s: &PortSpec) {
    let p = Port::new(s.no, "p", [2, 0, 0, 0, 0, s.no as u8])
        .with_vlan_mode(s.mode.clone())
        .with_config(s.config)
        .with_link_up(s.link_up)
        .with_blocked(s.blocked);
    let _ = ports.add(p);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn normal_never_panics_nor_hairpins(
        specs in prop::collection::vec(port_spec(), 0..8),
        events in prop::collection::vec(event(), 1..80),
        max_entries in prop_oneof![0usize..6, Just(8192usize)],
        aging_ms in prop_oneof![Just(300_000u64), 0u64..5_000],
        forward_bpdu in any::<bool>(),
    ) {
        let mut ports = PortTable::new();
        for s in &specs {
            add(&mut ports, s);
        }
        let mut sw = NormalSwitch::new(NormalConfig { aging_ms, max_entries, forward_bpdu });
        let mut now = 0u64;
        let mut out = Vec::new();
        for ev in events {
            match ev {
                Event::Frame { in_port, src, dst, tag, advance_ms, noise } => {
                    now += advance_ms;
                    let mut k = FlowKey::ZERO;
                    // Noise first, then the L2 fields on top of it.
                    k.w[4] = noise[0];
                    k.w[5] = noise[1];
                    k.w[6] = noise[2];
                    k.w[9] = noise[3];
                    k.set(Field::InPort, in_port as u128);
                    k.set(Field::EthSrc, src as u128);
                    k.set(Field::EthDst, dst as u128);
                    k.set(Field::EthType, 0x0800);
                    if let Some(v) = tag {
                        k.set(Field::VlanVid, (OFPVID_PRESENT | (v & 0x0fff)) as u128);
                    }
                    let mut mask = FlowKey::ZERO;
                    let outcome = sw.process(&ports, &k, now, &mut mask, &mut out);
                    prop_assert_eq!(mask.get(Field::InPort), 0xffff_ffff);

                    let mut seen = Vec::new();
                    for &(p, tag_out) in &out {
                        prop_assert_ne!(p, in_port, "output to the input port");
                        prop_assert!(!seen.contains(&p), "port {} twice", p);
                        seen.push(p);
                        let port = ports.get(p);
                        prop_assert!(port.is_some(), "output to unknown port {}", p);
                        let port = port.unwrap();
                        prop_assert!(port.can_forward(), "port {} cannot forward", p);
                        let vlan = match outcome {
                            NormalOutcome::Unicast { vlan, port: up } => {
                                prop_assert_eq!(up, p);
                                vlan
                            }
                            NormalOutcome::Flood { vlan } => {
                                prop_assert!(port.floods());
                                vlan
                            }
                            NormalOutcome::Drop(d) => {
                                return Err(TestCaseError::fail(format!("output despite drop ({d})")));
                            }
                        };
                        prop_assert!(port.vlan_mode().carries(vlan));
                        prop_assert_eq!(tag_out, port.vlan_mode().output_tag(vlan));
                    }
                    if let NormalOutcome::Unicast { .. } = outcome {
                        prop_assert_eq!(out.len(), 1);
                    }
                }
                Event::Link(p, up) => { let _ = ports.set_link(p, up); }
                Event::Config(p, c) => { let _ = ports.mod_config(p, c, PortConfig::all()); }
                Event::Mode(p, m) => { let _ = ports.set_vlan_mode(p, m); }
                Event::Remove(p) => { ports.remove(p); }
                Event::Add(s) => add(&mut ports, &s),
                Event::Expire => {
                    sw.mac_table_mut().expire(now);
                }
            }
            let t = sw.mac_table();
            prop_assert!(t.len() <= max_entries);
            // Every entry a dump shows points at a port that could have sent it.
            sw.sync_ports(&ports);
            for e in sw.mac_table().entries(now) {
                let p = ports.get(e.port);
                prop_assert!(p.is_some());
                prop_assert!(p.unwrap().vlan_mode().carries(e.vlan));
                prop_assert!(e.mac[0] & 1 == 0, "group MAC learned");
            }
        }
    }
}

/// A raw frame: addresses from a small pool, an optional 802.1Q/802.1ad tag (or two), an
/// EtherType, then random bytes; sometimes cut short anywhere.
fn raw_frame() -> impl Strategy<Value = Vec<u8>> {
    let addr = || mac().prop_map(|m| m.to_be_bytes()[2..].to_vec());
    let tag = prop::option::weighted(
        0.5,
        (
            prop::sample::select(vec![0x8100u16, 0x88a8, 0x9100]),
            prop_oneof![vid(), any::<u16>()],
        ),
    );
    (
        addr(),
        addr(),
        prop::collection::vec(tag, 0..3),
        prop::sample::select(vec![0x0800u16, 0x0806, 0x86dd, 0x0042, 0x8100]),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::option::weighted(0.2, 0usize..40),
    )
        .prop_map(|(dst, src, tags, ty, payload, cut)| {
            let mut f = dst;
            f.extend_from_slice(&src);
            for (tpid, tci) in tags.into_iter().flatten() {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            f.extend_from_slice(&ty.to_be_bytes());
            f.extend_from_slice(&payload);
            if let Some(n) = cut {
                f.truncate(n);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The datapath's real path: bytes → `extract` → NORMAL.
    #[test]
    fn random_frames_through_extract_never_hairpin(
        specs in prop::collection::vec(port_spec(), 1..8),
        frames in prop::collection::vec((port_no(), raw_frame(), 0u64..100_000), 1..60),
    ) {
        let mut ports = PortTable::new();
        for s in &specs {
            add(&mut ports, s);
        }
        let mut sw = NormalSwitch::new(NormalConfig { max_entries: 4, ..NormalConfig::default() });
        let (mut now, mut out, mut key) = (0u64, Vec::new(), FlowKey::ZERO);
        for (in_port, frame, dt) in frames {
            now += dt;
            switch_core::extract::extract(&frame, in_port, &mut key);
            let mut mask = FlowKey::ZERO;
            let outcome = sw.process(&ports, &key, now, &mut mask, &mut out);
            for &(p, tag_out) in &out {
                prop_assert_ne!(p, in_port);
                let port = ports.get(p).expect("output to a bridge port");
                let vlan = match outcome {
                    NormalOutcome::Unicast { vlan, .. } | NormalOutcome::Flood { vlan } => vlan,
                    NormalOutcome::Drop(_) => unreachable!("outputs with a drop"),
                };
                prop_assert!(port.can_forward() && port.vlan_mode().carries(vlan));
                prop_assert_eq!(tag_out, port.vlan_mode().output_tag(vlan));
            }
            prop_assert!(sw.mac_table().len() <= 4);
        }
    }
}
