//! The datapath's hit path does not allocate: once the caches are warm, batches of NORMAL
//! unicast and flood, and of an ACL flow with set-field, push-VLAN and an all-group (copies),
//! make zero allocations (counted by a global allocator wrapper, for this thread only). Frames
//! come from a preallocated pool, as the kernel's DMA buffers do.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use switch_core::action::Instructions;
use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
use switch_core::flow::{Field, OFPVID_PRESENT};
use switch_core::flow_match::Match;
use switch_core::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use switch_core::normal::NormalSwitch;
use switch_core::packet::Frame;
use switch_core::pipeline::{Action, Env, FlowMod, PacketIn, Pipeline};
use switch_core::port::{OFPP_NORMAL, Port, PortNo, PortTable};

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

const HEADROOM: usize = 64;

struct Buf {
    data: [u8; 256],
    start: usize,
    end: usize,
}

struct PoolFrame(Box<Buf>);

impl Frame for PoolFrame {
    fn data(&self) -> &[u8] {
        &self.0.data[self.0.start..self.0.end]
    }
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

#[allow(clippy::vec_box)] // boxes: frames are pointer-sized handles, as DMA buffers
struct Pool {
    free: Vec<Box<Buf>>,
    sent: u64,
}

impl Pool {
    fn frame(&mut self, bytes: &[u8]) -> Option<PoolFrame> {
        let mut b = self.free.pop()?;
        b.start = HEADROOM;
        b.end = HEADROOM + bytes.len();
        b.data[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        Some(PoolFrame(b))
    }
}

impl DatapathSink<PoolFrame> for Pool {
    fn output(&mut self, _port: PortNo, _queue: Option<u32>, frame: PoolFrame) {
        self.sent += 1;
        self.free.push(frame.0);
    }
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<PoolFrame> {
        self.frame(bytes)
    }
    fn controller(&mut self, _packet_in: &PacketIn<'_>) {}
    fn release(&mut self, frame: PoolFrame, _why: Release) {
        self.free.push(frame.0);
    }
}

fn frame(src: u64, dst: u64, ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst.to_be_bytes()[2..]);
    f[6..12].copy_from_slice(&src.to_be_bytes()[2..]);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    if ethertype == 0x0800 {
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[46] = 0x50;
    }
    f
}

#[test]
fn warm_hit_path_does_not_allocate() {
    let mut ports = PortTable::new();
    for p in 1..=4 {
        ports
            .add(Port::new(p, "p", [2, 0, 0, 0, 7, p as u8]))
            .unwrap();
    }
    let mut pipeline = Pipeline::default();
    pipeline
        .group_mod(
            &GroupMod {
                command: GroupModCommand::Add,
                group_type: GroupType::All,
                group_id: 1,
                buckets: vec![
                    Bucket::new(vec![Action::output(3)]),
                    Bucket::new(vec![
                        Action::set_field(Field::VlanVid, (OFPVID_PRESENT | 7) as u128),
                        Action::output(4),
                    ]),
                ],
            },
            0,
        )
        .unwrap();
    // IPv4: rewrite, tag, then the group (two copies); everything else: NORMAL.
    let ip = Match::new().with(Field::EthType, 0x0800);
    pipeline
        .flow_mod(
            &FlowMod::add(
                0,
                10,
                ip,
                Instructions::apply(vec![
                    Action::set_field(Field::EthDst, 0x0200_0000_0099),
                    Action::PushVlan(0x8100),
                    Action::output(2),
                    Action::Group(1),
                ]),
            ),
            0,
        )
        .unwrap();
    pipeline
        .flow_mod(
            &FlowMod::add(
                0,
                0,
                Match::new(),
                Instructions::apply(vec![Action::output(OFPP_NORMAL)]),
            ),
            0,
        )
        .unwrap();
    let mut normal = NormalSwitch::default();
    let mut dp = Datapath::new(DatapathConfig {
        emc_insert_inv_prob: 1,
        ..DatapathConfig::default()
    });
    let mut pool = Pool {
        free: (0..256)
            .map(|_| {
                Box::new(Buf {
                    data: [0; 256],
                    start: HEADROOM,
                    end: HEADROOM,
                })
            })
            .collect(),
        sent: 0,
    };
    let traffic = [
        (1, frame(0x0200_0000_0001, 0x0200_0000_0002, 0x0806)), // ARP A->B (flood, then unicast)
        (2, frame(0x0200_0000_0002, 0x0200_0000_0001, 0x0806)), // ARP B->A (unicast)
        (1, frame(0x0200_0000_0001, 0x0200_0000_0002, 0x0800)), // IPv4: rewrites + group
        (1, frame(0x0200_0000_0001, 0xffff_ffff_ffff, 0x0806)), // broadcast: flood copies
    ];
    let mut run = |rounds: usize, pool: &mut Pool, dp: &mut Datapath| {
        for r in 0..rounds {
            for (port, f) in &traffic {
                let mut batch: [Option<PoolFrame>; 32] = std::array::from_fn(|_| None);
                for slot in batch.iter_mut() {
                    *slot = pool.frame(f);
                }
                let mut env = Env {
                    ports: &ports,
                    normal: Some(&mut normal),
                    meters: None,
                    now_ms: 1 + r as u64,
                };
                dp.process_batch(
                    &mut pipeline,
                    &mut env,
                    *port,
                    batch.iter_mut().filter_map(Option::take),
                    pool,
                );
            }
        }
    };
    // Warm-up (translations, installs): this allocates, which shows the counter works.
    ON.with(|o| o.set(true));
    run(20, &mut pool, &mut dp);
    ON.with(|o| o.set(false));
    assert!(COUNT.with(|c| c.get()) > 0);
    COUNT.with(|c| c.set(0));
    let translated = dp.stats().misses + dp.stats().revalidations + dp.stats().slow_path;
    let before = pool.sent;
    ON.with(|o| o.set(true));
    run(200, &mut pool, &mut dp);
    ON.with(|o| o.set(false));
    let allocations = COUNT.with(|c| c.get());
    assert!(pool.sent - before >= 200 * 4 * 32, "{}", pool.sent - before);
    assert_eq!(allocations, 0, "{}", dp.show_stats());
    let s = dp.stats();
    assert_eq!(
        s.misses + s.revalidations + s.slow_path,
        translated,
        "all hits once warm"
    );
}
