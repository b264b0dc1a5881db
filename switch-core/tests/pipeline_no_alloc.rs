//! The packet path does not allocate once warm: two tables, an all-group (packet copies), a
//! select group, NORMAL with VLAN tag changes, set-field and push-VLAN, 1000 packets, zero
//! allocations (counted by a global allocator wrapper, for this thread only).

mod pipeline_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pipeline_common::*;
use switch_core::action::{Action, Instructions};
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{Env, FlowMod, OutputSink, PacketIn, Pipeline};
use switch_core::port::{OFPP_NORMAL, VlanMode, VlanSet};

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.with(|o| o.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.with(|o| o.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A sink that only counts (a real one queues into preallocated tx batches).
struct Tally(usize);

impl OutputSink for Tally {
    fn output(&mut self, _: u32, _: Option<u32>, frame: &[u8]) {
        self.0 += frame.len();
    }
    fn controller(&mut self, _: &PacketIn<'_>) {}
}

#[test]
fn warm_packet_path_does_not_allocate() {
    let mut b = Bridge::new(Pipeline::default());
    b.add_port(1, VlanMode::Access(10));
    b.add_port(2, VlanMode::Access(10));
    b.add_port(3, VlanMode::Trunk(VlanSet::from_vids(&[10])));
    b.add_port(4, VlanMode::default());
    let p = &mut b.pipeline;
    p.group_mod(
        &GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: 1,
            buckets: vec![
                Bucket::new(vec![
                    Action::set_field(Field::EthDst, 0x42),
                    Action::output(4),
                ]),
                Bucket::new(vec![Action::PushVlan(0x8100), Action::output(4)]),
            ],
        },
        0,
    )
    .unwrap();
    p.group_mod(
        &GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::Select,
            group_id: 2,
            buckets: vec![
                Bucket::weighted(1, vec![Action::output(3)]),
                Bucket::weighted(1, vec![Action::output(4)]),
            ],
        },
        0,
    )
    .unwrap();
    let tcp_m = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::IpProto, 6);
    p.flow_mod(
        &FlowMod::add(
            0,
            10,
            tcp_m,
            Instructions::apply(vec![Action::Group(1)])
                .with_metadata(1, 1)
                .with_goto(1),
        ),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(
            0,
            0,
            Match::ANY,
            Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
        ),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(
            1,
            5,
            Match::new().with(Field::Metadata, 1),
            Instructions::drop().with_write(vec![Action::Group(2)]),
        ),
        0,
    )
    .unwrap();

    let frames: Vec<(u32, Vec<u8>)> = vec![
        (
            1,
            tcp_frame(mac(1), mac(2), ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1000, 80),
        ),
        (
            1,
            tcp_frame(mac(1), mac(2), ip(10, 0, 0, 1), ip(10, 0, 0, 3), 1001, 80),
        ),
        (2, eth([0xff; 6], mac(2), None, 0x0806, &[0u8; 28])),
        (1, eth(mac(2), mac(1), None, 0x0806, &[0u8; 28])),
        (3, eth(mac(1), mac(3), Some(10), 0x0806, &[0u8; 28])),
    ];
    let mut frames_buf: Vec<HeapFrame> = frames.iter().map(|(_, f)| HeapFrame::new(f)).collect();
    let mut tally = Tally(0);
    let mut run = |b: &mut Bridge, frames_buf: &mut Vec<HeapFrame>| {
        for (i, (in_port, bytes)) in frames.iter().enumerate() {
            let mut key = FlowKey::ZERO;
            extract(bytes, *in_port, &mut key);
            // Reset the reusable frame to the received bytes (no allocation: same length).
            frames_buf[i].data_mut_reset(bytes);
            let mut wc = FlowKey::ZERO;
            let mut env = Env {
                ports: &b.ports,
                normal: Some(&mut b.normal),
                meters: None,
                now_ms: 1,
            };
            b.pipeline
                .process(&mut env, &mut key, &mut frames_buf[i], &mut wc, &mut tally);
        }
    };
    for _ in 0..3 {
        run(&mut b, &mut frames_buf);
    }
    ON.with(|o| o.set(true));
    for _ in 0..200 {
        run(&mut b, &mut frames_buf);
    }
    ON.with(|o| o.set(false));
    assert!(tally.0 > 0);
    assert_eq!(
        COUNT.with(|c| c.get()),
        0,
        "allocations on the warm packet path"
    );
}

trait Reset {
    fn data_mut_reset(&mut self, bytes: &[u8]);
}

impl Reset for HeapFrame {
    fn data_mut_reset(&mut self, bytes: &[u8]) {
        use switch_core::packet::Frame;
        // Undo any push/pop of a previous run, then copy the original bytes back.
        let len = self.data().len();
        if len > bytes.len() {
            self.trim_front(len - bytes.len());
        } else if len < bytes.len() {
            self.prepend(bytes.len() - len);
        }
        self.data_mut().copy_from_slice(bytes);
    }
}
