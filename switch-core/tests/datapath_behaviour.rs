//! Datapath behaviour beyond equality with the pipeline: zero-copy forwarding, bounded memory
//! and masks (the tuple-space-explosion defence), invalidation, NORMAL learning on cached
//! packets, introspection text.

use switch_core::action::Instructions;
use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
use switch_core::flow::{Field, FlowKey, OFPVID_PRESENT};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::normal::NormalSwitch;
use switch_core::packet::{Frame, HeapFrame};
use switch_core::pipeline::{Action, Env, FlowMod, PacketIn, Pipeline, PipelineConfig};
use switch_core::port::{OFPP_FLOOD, OFPP_NORMAL, Port, PortNo, PortTable};

#[derive(Default)]
struct Sink {
    out: Vec<(PortNo, Vec<u8>)>,
    copies: usize,
    released: Vec<Release>,
    no_buffers: bool,
}

impl DatapathSink<HeapFrame> for Sink {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: HeapFrame) {
        self.out.push((port, frame.to_vec()));
    }
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        if self.no_buffers {
            return None;
        }
        self.copies += 1;
        Some(HeapFrame::new(bytes))
    }
    fn controller(&mut self, _packet_in: &PacketIn<'_>) {}
    fn release(&mut self, _frame: HeapFrame, why: Release) {
        self.released.push(why);
    }
}

fn ports(n: u32) -> PortTable {
    let mut t = PortTable::new();
    for p in 1..=n {
        t.add(Port::new(p, "p", [2, 0, 0, 0, 9, p as u8])).unwrap();
    }
    t
}

fn tcp(src_mac: u64, dst_mac: u64, ip_src: u32, ip_dst: u32, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst_mac.to_be_bytes()[2..]);
    f[6..12].copy_from_slice(&src_mac.to_be_bytes()[2..]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&ip_src.to_be_bytes());
    f[30..34].copy_from_slice(&ip_dst.to_be_bytes());
    f[34..36].copy_from_slice(&1000u16.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f
}

struct Bridge {
    ports: PortTable,
    pipeline: Pipeline,
    normal: NormalSwitch,
    dp: Datapath,
    now: u64,
}

impl Bridge {
    fn new(n_ports: u32, pipeline: Pipeline, config: DatapathConfig) -> Bridge {
        Bridge {
            ports: ports(n_ports),
            pipeline,
            normal: NormalSwitch::default(),
            dp: Datapath::new(config),
            now: 1,
        }
    }

    fn send(&mut self, in_port: PortNo, frames: &[Vec<u8>], sink: &mut Sink) {
        let mut env = Env {
            ports: &self.ports,
            normal: Some(&mut self.normal),
            meters: None,
            now_ms: self.now,
        };
        self.dp.process_batch(
            &mut self.pipeline,
            &mut env,
            in_port,
            frames.iter().map(|f| HeapFrame::new(f)),
            sink,
        );
    }
}

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

const A: u64 = 0x0200_0000_000a;
const B: u64 = 0x0200_0000_000b;

#[test]
fn unicast_is_moved_flood_copies_only_the_extra_ports() {
    let mut br = Bridge::new(3, normal_pipeline(), DatapathConfig::default());
    let mut s = Sink::default();
    // B on port 2.
    br.send(2, &[tcp(B, A, 2, 1, 80)], &mut s);
    // A -> B: a miss (translated: the pipeline hands bytes, so a copy), then hits: moved.
    let f = tcp(A, B, 1, 2, 80);
    br.send(1, &vec![f.clone(); 32], &mut s);
    let s2 = {
        let mut s2 = Sink::default();
        br.send(1, &vec![f.clone(); 32], &mut s2);
        s2
    };
    assert_eq!(s2.out.len(), 32);
    assert!(s2.out.iter().all(|(p, b)| *p == 2 && *b == f));
    assert_eq!(s2.copies, 0, "unicast hits are moved, never copied");
    assert!(s2.released.is_empty());
    // Unknown destination C: flood to ports 2 and 3 = one copy + the packet itself.
    let g = tcp(A, 0x0200_0000_000c, 1, 3, 80);
    br.send(1, std::slice::from_ref(&g), &mut Sink::default());
    let mut s3 = Sink::default();
    br.send(1, std::slice::from_ref(&g), &mut s3);
    assert_eq!(
        s3.out.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(s3.copies, 1);
}

#[test]
fn no_buffer_for_a_copy_is_counted_not_fatal() {
    let mut p = Pipeline::default();
    p.flow_mod(
        &FlowMod::add(
            0,
            1,
            Match::new(),
            Instructions::apply(vec![Action::output(OFPP_FLOOD)]),
        ),
        0,
    )
    .unwrap();
    let mut br = Bridge::new(4, p, DatapathConfig::default());
    let f = tcp(A, B, 1, 2, 80);
    br.send(1, std::slice::from_ref(&f), &mut Sink::default());
    let mut s = Sink {
        no_buffers: true,
        ..Sink::default()
    };
    br.send(1, std::slice::from_ref(&f), &mut s);
    // Ports 2, 3, 4: two copies failed, the packet itself went out of the last port.
    assert_eq!(s.out.len(), 1);
    assert_eq!(s.out[0].0, 4);
    assert_eq!(br.dp.stats().no_buffer, 2);
}

#[test]
fn flow_change_takes_effect_on_the_next_batch() {
    let mut p = Pipeline::default();
    p.flow_mod(
        &FlowMod::add(
            0,
            1,
            Match::new(),
            Instructions::apply(vec![Action::output(2)]),
        ),
        0,
    )
    .unwrap();
    let mut br = Bridge::new(3, p, DatapathConfig::default());
    let f = tcp(A, B, 1, 2, 80);
    for _ in 0..3 {
        br.send(1, &vec![f.clone(); 8], &mut Sink::default());
    }
    let m = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6)
        .with(Field::TcpDst, 80);
    br.pipeline
        .flow_mod(
            &FlowMod::add(0, 10, m, Instructions::apply(vec![Action::output(3)])),
            0,
        )
        .unwrap();
    let mut s = Sink::default();
    br.send(1, &vec![f.clone(); 8], &mut s);
    assert!(s.out.iter().all(|(p, _)| *p == 3), "{:?}", s.out);
    assert!(br.dp.stats().revalidations >= 1);
    // Counters: the catch-all saw 24 packets, the new rule 8.
    let mut counts: Vec<(u16, u64)> = br
        .pipeline
        .entries(0)
        .map(|(_, e)| (e.priority, e.packets.get()))
        .collect();
    counts.sort();
    assert_eq!(counts, vec![(1, 24), (10, 8)]);
}

/// A on port 1 and B on port 2, traffic both ways learned and cached (a few rounds, until the
/// MAC table stops changing).
fn learn_both_ways(br: &mut Bridge) {
    for _ in 0..4 {
        br.send(1, &vec![tcp(A, B, 1, 2, 80); 4], &mut Sink::default());
        br.send(2, &vec![tcp(B, A, 2, 1, 80); 4], &mut Sink::default());
    }
}

#[test]
fn normal_learning_and_moves_happen_on_cached_packets() {
    let mut br = Bridge::new(3, normal_pipeline(), DatapathConfig::default());
    // A on 1, B on 2; traffic both ways, cached.
    learn_both_ways(&mut br);
    // Time passes; only cached traffic from A keeps A alive (aging 300 s).
    for t in 1..=10 {
        br.now = t * 60_000;
        br.send(1, &vec![tcp(A, B, 1, 2, 80); 4], &mut Sink::default());
        br.send(2, &vec![tcp(B, A, 2, 1, 80); 4], &mut Sink::default());
    }
    let fdb = br.normal.fdb_show(br.now);
    assert!(fdb.contains("00:00:0a"), "{fdb}");
    // A moves to port 3: B's traffic to A must follow.
    br.send(3, &[tcp(A, B, 1, 2, 80)], &mut Sink::default());
    let mut s = Sink::default();
    br.send(2, &vec![tcp(B, A, 2, 1, 80); 4], &mut s);
    assert!(s.out.iter().all(|(p, _)| *p == 3), "{:?}", s.out);
}

/// The age `fdb_show` gives `mac` (seconds), if it is in the table.
fn fdb_age(br: &Bridge, mac_tail: &str) -> Option<u64> {
    br.normal
        .fdb_show(br.now)
        .lines()
        .find(|l| l.contains(mac_tail))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[test]
fn cached_traffic_refreshes_its_source_coarsely_and_never_lets_it_age_out() {
    // Aging 300 s: a megaflow hit refreshes its source at most every 300 s / 32 = 9.375 s.
    let mut br = Bridge::new(3, normal_pipeline(), DatapathConfig::default());
    learn_both_ways(&mut br);
    let t0 = br.now;
    // Hits in the next seconds do not touch the entry: its age grows.
    br.now = t0 + 5_000;
    br.send(1, &vec![tcp(A, B, 1, 2, 80); 4], &mut Sink::default());
    assert_eq!(fdb_age(&br, "00:00:0a"), Some(5));
    // A sends every 100 ms for 20 minutes (4x the aging time), B only once a minute: A's
    // entry is never older than the refresh interval, and B's traffic to A never floods.
    let mut max_age = 0;
    for step in 1..=12_000u64 {
        br.now = t0 + 5_000 + step * 100;
        br.send(1, &[tcp(A, B, 1, 2, 80)], &mut Sink::default());
        if step % 600 == 0 {
            let mut s = Sink::default();
            br.send(2, &vec![tcp(B, A, 2, 1, 80); 4], &mut s);
            assert!(
                s.out.iter().all(|(p, _)| *p == 1),
                "at {} ms B's traffic to A went to {:?}",
                br.now,
                s.out.iter().map(|(p, _)| *p).collect::<Vec<_>>()
            );
        }
        max_age = max_age.max(fdb_age(&br, "00:00:0a").expect("A stays learned"));
    }
    assert!(max_age <= 10, "A's entry reached {max_age} s");
    // New hosts appearing do not make cached traffic refresh its source (only removals and
    // moves do): A's age keeps growing while a new host is learned every second.
    // (10 s on: this hit refreshes A, the next 5 s are within the interval.)
    let t1 = br.now + 10_000;
    br.now = t1;
    br.send(1, &[tcp(A, B, 1, 2, 80)], &mut Sink::default());
    assert_eq!(fdb_age(&br, "00:00:0a"), Some(0));
    for k in 1..=5u64 {
        br.now = t1 + k * 1000;
        br.send(
            3,
            &[tcp(0x0200_0000_1000 + k, B, 9, 2, 80)],
            &mut Sink::default(),
        );
        br.send(1, &[tcp(A, B, 1, 2, 80)], &mut Sink::default());
    }
    assert_eq!(
        fdb_age(&br, "00:00:0a"),
        Some(5),
        "A refreshed when new hosts were learned"
    );
    assert!(
        fdb_age(&br, "00:00:10:05").is_some(),
        "the new hosts are learned"
    );
}

#[test]
fn megaflow_limit_evicts_and_still_forwards() {
    let mut p = Pipeline::default();
    // Exact on ip_dst: one megaflow per destination.
    for i in 0..2000u32 {
        let m = Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::Ipv4Dst, (0x0a00_0000 + i) as u128);
        p.flow_mod(
            &FlowMod::add(0, 1, m, Instructions::apply(vec![Action::output(2)])),
            0,
        )
        .unwrap();
    }
    let config = DatapathConfig {
        max_megaflows: 100,
        emc_entries: 64,
        ..DatapathConfig::default()
    };
    let mut br = Bridge::new(2, p, config);
    let mut s = Sink::default();
    for round in 0..3 {
        let frames: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| tcp(A, B, 1, 0x0a00_0000 + (i * 7 + round) % 2000, 80))
            .collect();
        for chunk in frames.chunks(32) {
            br.send(1, chunk, &mut s);
            assert!(br.dp.n_megaflows() <= 100);
        }
    }
    assert_eq!(s.out.len(), 6000, "every packet forwarded");
    assert!(br.dp.show_stats().contains("evicted"));
}

/// Tables where the first set bit of ip_src picks one of 32 masks, of ip_dst one of 32 more:
/// 1024 possible megaflow masks.
fn chain_pipeline() -> Pipeline {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 2,
        ..PipelineConfig::default()
    });
    for (table, field) in [(0u8, Field::Ipv4Src), (1, Field::Ipv4Dst)] {
        let next = if table == 0 {
            Instructions::drop().with_goto(1)
        } else {
            Instructions::apply(vec![Action::output(2)])
        };
        for k in 1..=32u32 {
            let mask = (u32::MAX << (32 - k)) as u128;
            let m = Match::new().with(Field::EthType, 0x0800).with_masked(
                field,
                1u128 << (32 - k),
                mask,
            );
            p.flow_mod(&FlowMod::add(table, 1000 - k as u16, m, next.clone()), 0)
                .unwrap();
        }
        p.flow_mod(&FlowMod::add(table, 0, Match::new(), next), 0)
            .unwrap();
    }
    p
}

fn attack_frames() -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|c| {
            let (a, b) = (c % 32, c / 32);
            tcp(A, B, (1u32 << (31 - a)) | 1, (1u32 << (31 - b)) | 1, 80)
        })
        .collect()
}

#[test]
fn mask_cap_bounds_the_subtables_a_packet_searches() {
    let cap = 16;
    let config = DatapathConfig {
        max_masks_per_port: cap,
        ..DatapathConfig::default()
    };
    let mut br = Bridge::new(2, chain_pipeline(), config);
    let frames = attack_frames();
    let mut s = Sink::default();
    for _ in 0..3 {
        for chunk in frames.chunks(32) {
            br.send(1, chunk, &mut s);
        }
    }
    assert_eq!(s.out.len(), 3 * 1024);
    assert!(s.out.iter().all(|(p, _)| *p == 2));
    let st = br.dp.stats();
    // The union mask (one per overflow that adds bits) stays within a few of the cap.
    assert!(br.dp.n_masks() <= cap + 4, "{}", br.dp.show_stats());
    let avg = st.subtables_searched as f64 / st.megaflow_lookups as f64;
    assert!(avg <= (cap + 4) as f64, "{avg}");
    // Without the cap the same traffic makes a mask per combination.
    let mut br2 = Bridge::new(
        2,
        chain_pipeline(),
        DatapathConfig {
            max_masks_per_port: usize::MAX,
            ..DatapathConfig::default()
        },
    );
    for chunk in frames.chunks(32) {
        br2.send(1, chunk, &mut Sink::default());
    }
    assert!(br2.dp.n_masks() >= 1000, "{}", br2.dp.n_masks());
}

#[test]
fn introspection_text() {
    let mut br = Bridge::new(3, normal_pipeline(), DatapathConfig::default());
    br.send(2, &[tcp(B, A, 2, 1, 80)], &mut Sink::default());
    br.send(1, &vec![tcp(A, B, 1, 2, 80); 5], &mut Sink::default());
    br.now = 2500;
    let dump = br.dp.dump_flows(br.now);
    // The NORMAL megaflow: exact on in_port, MACs and VLAN; 5 packets; output to port 2.
    let line = dump
        .lines()
        .find(|l| l.contains("in_port=1"))
        .unwrap_or_else(|| panic!("{dump}"));
    assert!(line.contains("dl_src=02:00:00:00:00:0a"), "{line}");
    assert!(line.contains("dl_dst=02:00:00:00:00:0b"), "{line}");
    assert!(line.contains("packets:5"), "{line}");
    assert!(line.contains("bytes:320"), "{line}");
    assert!(line.contains("used:2.499s"), "{line}");
    assert!(line.ends_with("actions:2"), "{line}");
    let stats = br.dp.show_stats();
    for want in [
        "packets received: 6",
        "megaflow hits",
        "emc hits",
        "miss with success upcall: 2",
        "avg. subtable lookups per megaflow lookup",
        "masks: 2",
    ] {
        assert!(stats.contains(want), "{want} not in\n{stats}");
    }
    let _ = HeapFrame::new(&[0]).data().len();
}

#[test]
fn a_megaflow_made_stale_by_a_mask_change_is_replaced_not_retranslated_forever() {
    let mut p = Pipeline::default();
    p.flow_mod(
        &FlowMod::add(
            0,
            1,
            Match::new(),
            Instructions::apply(vec![Action::output(2)]),
        ),
        0,
    )
    .unwrap();
    let mut br = Bridge::new(3, p, DatapathConfig::default());
    let f = tcp(A, B, 1, 2, 80);
    br.send(1, &vec![f.clone(); 32], &mut Sink::default());
    // A rule on tcp_dst: the megaflow for this traffic now needs a wider mask.
    let m = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6)
        .with(Field::TcpDst, 80);
    br.pipeline
        .flow_mod(
            &FlowMod::add(0, 10, m, Instructions::apply(vec![Action::output(3)])),
            0,
        )
        .unwrap();
    for _ in 0..5 {
        br.send(1, &vec![f.clone(); 32], &mut Sink::default());
    }
    let s = br.dp.stats();
    assert_eq!(s.revalidations, 1, "{}", br.dp.show_stats());
    assert_eq!(br.dp.n_megaflows(), 1, "{}", br.dp.dump_flows(br.now));
    assert!(!br.dp.dump_flows(br.now).contains("stale"));
}

#[test]
fn print_introspection_example() {
    // `cargo test -p switch-core --test datapath_behaviour print_ -- --nocapture` shows it.
    let mut br = Bridge::new(3, normal_pipeline(), DatapathConfig::default());
    br.send(2, &[tcp(B, A, 2, 1, 80)], &mut Sink::default());
    br.send(1, &vec![tcp(A, B, 1, 2, 80); 32], &mut Sink::default());
    br.send(
        1,
        &[tcp(A, 0xffff_ffff_ffff, 1, 2, 80)],
        &mut Sink::default(),
    );
    br.now = 1500;
    println!("{}", br.dp.dump_flows(br.now));
    println!("{}", br.dp.show_stats());
}

/// The pipeline and a second, cache-less bridge with the same tables: the reference.
struct Reference {
    pipeline: Pipeline,
    normal: NormalSwitch,
}

impl Reference {
    fn send(
        &mut self,
        ports: &PortTable,
        now: u64,
        in_port: PortNo,
        frames: &[Vec<u8>],
    ) -> Vec<PortNo> {
        struct Outs(Vec<PortNo>);
        impl switch_core::pipeline::OutputSink for Outs {
            fn output(&mut self, port: PortNo, _queue: Option<u32>, _frame: &[u8]) {
                self.0.push(port);
            }
            fn controller(&mut self, _packet_in: &PacketIn<'_>) {}
        }
        let mut outs = Outs(Vec::new());
        let mut env = Env {
            ports,
            normal: Some(&mut self.normal),
            meters: None,
            now_ms: now,
        };
        for f in frames {
            let mut key = FlowKey::ZERO;
            switch_core::extract::extract(f, in_port, &mut key);
            let mut wc = FlowKey::ZERO;
            self.pipeline.process(
                &mut env,
                &mut key,
                &mut HeapFrame::new(f),
                &mut wc,
                &mut outs,
            );
        }
        outs.0
    }
}

#[test]
fn a_rewrite_the_packet_cannot_take_does_not_change_the_key_normal_learns_and_looks_up() {
    // set_field:vlan_vid=10 on an untagged packet does nothing (no tag to rewrite), to the bytes
    // and to the key: NORMAL then runs on the untagged packet (VLAN 0). A cache hit must learn
    // and check the MAC table in VLAN 0 too, not in the VLAN the failed rewrite named.
    // (In a group bucket: a flow's set-field would need a VLAN match as its prerequisite.)
    let mut p = Pipeline::default();
    let bucket = vec![
        Action::set_field(Field::VlanVid, (OFPVID_PRESENT | 10) as u128),
        Action::output(OFPP_NORMAL),
    ];
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Indirect,
        group_id: 1,
        buckets: vec![Bucket::new(bucket)],
    };
    p.group_mod(&gm, 0).unwrap();
    let ins = Instructions::apply(vec![Action::Group(1)]);
    p.flow_mod(&FlowMod::add(0, 0, Match::new(), ins), 0)
        .unwrap();
    let mut reference = Reference {
        pipeline: p.clone(),
        normal: NormalSwitch::default(),
    };
    let mut br = Bridge::new(3, p, DatapathConfig::default());
    let steps: [(PortNo, Vec<u8>); 3] = [
        // A → B: B unknown, flooded; the megaflow is installed.
        (1, tcp(A, B, 1, 2, 80)),
        // B → A: B learned on port 2 (in VLAN 0).
        (2, tcp(B, A, 2, 1, 80)),
        // A → B again, from the cache: B is known now, unicast to port 2.
        (1, tcp(A, B, 1, 2, 80)),
    ];
    for (in_port, f) in &steps {
        let mut s = Sink::default();
        br.send(*in_port, core::slice::from_ref(f), &mut s);
        let got: Vec<PortNo> = s.out.iter().map(|(p, _)| *p).collect();
        let want = reference.send(&br.ports, br.now, *in_port, core::slice::from_ref(f));
        assert_eq!(got, want, "in_port {in_port}\n{}", br.dp.dump_flows(br.now));
        assert_eq!(
            br.normal.fdb_show(br.now),
            reference.normal.fdb_show(br.now)
        );
    }
    assert!(br.dp.stats().megaflow_hits + br.dp.stats().emc_hits > 0);
}

#[test]
fn table_statistics_count_cache_hits() {
    // Table 0 sends everything to table 1, which forwards port 80 and has no entry (no
    // table-miss entry either) for port 22: `ovs-ofctl dump-tables` must count every packet's
    // lookups, whether the cache or the pipeline served it.
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 2,
        ..PipelineConfig::default()
    });
    let goto = Instructions::apply(vec![]).with_goto(1);
    p.flow_mod(&FlowMod::add(0, 0, Match::new(), goto), 0)
        .unwrap();
    let web = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6)
        .with(Field::TcpDst, 80);
    let out = Instructions::apply(vec![Action::output(2)]);
    p.flow_mod(&FlowMod::add(1, 10, web, out), 0).unwrap();
    let mut reference = Reference {
        pipeline: p.clone(),
        normal: NormalSwitch::default(),
    };
    let mut br = Bridge::new(2, p, DatapathConfig::default());
    for _ in 0..3 {
        let frames = [
            tcp(A, B, 1, 2, 80),
            tcp(A, B, 1, 2, 80),
            tcp(A, B, 1, 2, 22),
            tcp(A, B, 1, 2, 22),
        ];
        br.send(1, &frames, &mut Sink::default());
        reference.send(&br.ports, br.now, 1, &frames);
    }
    assert!(br.dp.stats().megaflow_hits + br.dp.stats().batch_hits > 0);
    let counts = |p: &Pipeline| {
        p.table_stats()
            .iter()
            .map(|s| (s.table_id, s.lookup_count, s.matched_count))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&reference.pipeline), [(0, 12, 12), (1, 12, 6)]);
    assert_eq!(counts(&br.pipeline), counts(&reference.pipeline));
}

#[test]
fn malformed_frames_are_dropped_and_counted_only_when_configured() {
    let good = tcp(A, B, 0x0a00_0001, 0x0a00_0002, 80);
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43; // IHL 3: shorter than an IPv4 header
    let mut bad_len = good.clone();
    bad_len[16..18].copy_from_slice(&9000u16.to_be_bytes()); // total length past the frame

    // The appliance's setting: malformed frames go back as `Malformed`, never switched.
    let mut dropping = Bridge::new(
        2,
        normal_pipeline(),
        DatapathConfig {
            drop_malformed: true,
            ..DatapathConfig::default()
        },
    );
    let mut sink = Sink::default();
    dropping.send(
        1,
        &[bad_ihl.clone(), good.clone(), bad_len.clone()],
        &mut sink,
    );
    assert_eq!(
        sink.released,
        [Release::Malformed, Release::Copied, Release::Malformed],
        "the good frame floods (copy), the two bad ones are dropped"
    );
    assert_eq!(sink.out.len(), 1);
    assert_eq!(dropping.dp.stats().malformed, 2);

    // The pipeline's own semantics (the default): switched by the fields that are present.
    let mut switching = Bridge::new(2, normal_pipeline(), DatapathConfig::default());
    let mut sink = Sink::default();
    switching.send(1, &[bad_ihl, bad_len], &mut sink);
    assert!(!sink.released.contains(&Release::Malformed));
    assert_eq!(sink.out.len(), 2, "flooded by L2");
    assert_eq!(switching.dp.stats().malformed, 0);
}
