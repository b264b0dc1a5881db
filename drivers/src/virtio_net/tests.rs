//! Host tests of the virtio-net driver against a fake device: a `Transport` that records what
//! the driver configures, and a device side that consumes the avail rings and fills the used
//! rings in the same (host heap) memory.

use super::ring::fake_device::{DeviceDesc, DeviceQueue};
use super::*;
use crate::dma::test_support::HostDmaAllocator;
use crate::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM};
use alloc::vec::Vec;
use switch_core::packet::Frame;
use virtio_drivers::transport::InterruptStatus;
use virtio_drivers::{Error as VirtioError, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

const ALL_OFFERED: u64 = (1 << 0) // CSUM
    | (1 << 5) // MAC
    | (1 << 15) // MRG_RXBUF
    | (1 << 16) // STATUS
    | (1 << 17) // CTRL_VQ
    | (1 << 28) // INDIRECT_DESC
    | (1 << 29) // EVENT_IDX
    | (1 << 32); // VERSION_1
/// What QEMU's virtio-net with `mq=on` adds.
const MQ: u64 = 1 << 22;

/// Virtqueues the fake device has (QEMU: 2 × max_virtqueue_pairs + 1).
const FAKE_QUEUES: usize = 2 * 8 + 1;

/// A control command the fake device received.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CtrlCmd {
    class: u8,
    command: u8,
    data: Vec<u8>,
}

struct FakeState {
    device_type: DeviceType,
    status: DeviceStatus,
    device_features: u64,
    driver_features: u64,
    reject_features: bool,
    max_queue_size: u32,
    queues: Vec<Option<DeviceQueue>>,
    notified: Vec<u32>,
    /// mac (6), status (2), max_virtqueue_pairs (2)
    config: [u8; 10],
    resets: u32,
    /// Commands seen on the control queue.
    ctrl_cmds: Vec<CtrlCmd>,
    /// The ack the control queue answers with; `None`: it never answers.
    ctrl_ack: Option<u8>,
    /// Queue pairs the device uses (1 after reset, as the spec says; set by the command).
    active_pairs: u16,
    /// A queue whose maximum size reads 0 (does not exist).
    missing_queue: Option<u16>,
}

/// The fake device (shared with the test, `Send` so queues can move to threads).
#[derive(Clone)]
struct FakeTransport(Arc<std::sync::Mutex<FakeState>>);

impl FakeTransport {
    fn new(features: u64, max_queue_size: u32) -> Self {
        FakeTransport(Arc::new(std::sync::Mutex::new(FakeState {
            device_type: DeviceType::Network,
            status: DeviceStatus::empty(),
            device_features: features,
            driver_features: 0,
            reject_features: false,
            max_queue_size,
            queues: (0..FAKE_QUEUES).map(|_| None).collect(),
            notified: alloc::vec![0; FAKE_QUEUES],
            config: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 1, 0, 1, 0],
            resets: 0,
            ctrl_cmds: Vec::new(),
            ctrl_ack: Some(0),
            active_pairs: 1,
            missing_queue: None,
        })))
    }

    /// A multiqueue device (MQ offered) with `max_pairs` queue pairs.
    fn with_mq(max_pairs: u16) -> Self {
        assert!(2 * (max_pairs as usize) < FAKE_QUEUES);
        let dev = Self::new(ALL_OFFERED | MQ, 256);
        dev.st().config[8..10].copy_from_slice(&max_pairs.to_le_bytes());
        dev
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn with_queue<R>(&self, q: usize, f: impl FnOnce(&mut DeviceQueue) -> R) -> R {
        f(self.st().queues[q].as_mut().expect("queue set up"))
    }

    /// Device receives `frame` from the wire into the next posted rx buffer.
    fn deliver(&self, frame: &[u8]) -> bool {
        self.deliver_on(0, frame)
    }

    /// Device receives `frame` into the next posted buffer of pair `pair`'s receive queue.
    fn deliver_on(&self, pair: usize, frame: &[u8]) -> bool {
        self.with_queue(2 * pair, |q| {
            let Some(d) = q.pop_avail() else {
                return false;
            };
            assert_eq!(d.flags, ring::VIRTQ_DESC_F_WRITE);
            let total = VIRTIO_NET_HDR_LEN + frame.len();
            assert!(total <= d.len as usize);
            // SAFETY: test-only; the descriptor covers `d.len` bytes of a live pool buffer.
            let dst = unsafe { core::slice::from_raw_parts_mut(d.addr as *mut u8, total) };
            // A header with junk the driver must ignore and strip.
            dst[..VIRTIO_NET_HDR_LEN].copy_from_slice(&[0xa5; VIRTIO_NET_HDR_LEN]);
            dst[VIRTIO_NET_HDR_LEN..].copy_from_slice(frame);
            q.push_used(d.id as u32, total as u32);
            true
        })
    }

    /// Descriptors the driver made available on the tx queue (consumed, not yet completed).
    fn take_tx(&self) -> Vec<DeviceDesc> {
        self.take_tx_on(0)
    }

    fn take_tx_on(&self, pair: usize) -> Vec<DeviceDesc> {
        self.with_queue(2 * pair + 1, |q| {
            core::iter::from_fn(|| q.pop_avail()).collect()
        })
    }

    /// Bytes after the header of a tx descriptor; checks the header is zeroed.
    fn tx_frame(d: &DeviceDesc) -> Vec<u8> {
        assert_eq!(d.flags, 0, "tx descriptors are device-readable");
        // SAFETY: test-only; the descriptor covers `d.len` bytes of a live pool buffer.
        let b = unsafe { core::slice::from_raw_parts(d.addr as *const u8, d.len as usize) };
        assert_eq!(&b[..VIRTIO_NET_HDR_LEN], &[0; VIRTIO_NET_HDR_LEN]);
        b[VIRTIO_NET_HDR_LEN..].to_vec()
    }

    fn complete_tx(&self, descs: &[DeviceDesc]) {
        self.complete_tx_on(0, descs)
    }

    fn complete_tx_on(&self, pair: usize, descs: &[DeviceDesc]) {
        self.with_queue(2 * pair + 1, |q| {
            for d in descs {
                q.push_used(d.id as u32, 0);
            }
        })
    }

    fn notified(&self, q: usize) -> u32 {
        self.st().notified[q]
    }

    /// The control queue's index as the device numbers it.
    fn ctrl_index(st: &FakeState) -> usize {
        if st.device_features & MQ != 0 {
            2 * u16::from_le_bytes([st.config[8], st.config[9]]) as usize
        } else {
            2
        }
    }
}

/// The fake device's control queue: reads each chain (readable header + data, then a
/// writable ack byte), records the command and answers.
fn process_ctrl(st: &mut FakeState) {
    let index = FakeTransport::ctrl_index(st);
    let Some(ack) = st.ctrl_ack else {
        return;
    };
    let Some(q) = st.queues[index].as_mut() else {
        return;
    };
    let mut cmds = Vec::new();
    while let Some(head) = q.pop_avail() {
        assert_eq!(head.flags & 1, 1, "command chains two descriptors");
        assert_eq!(head.flags & ring::VIRTQ_DESC_F_WRITE, 0);
        // SAFETY: test-only; reading the driver's descriptor table and command buffer.
        let (next, out) = unsafe {
            let next = core::ptr::read_volatile((q.desc + 16 * head.id as u64 + 14) as *const u16);
            let out = core::slice::from_raw_parts(head.addr as *const u8, head.len as usize);
            (next, out.to_vec())
        };
        let d = q.desc + 16 * next as u64;
        // SAFETY: as above.
        let (addr, len, flags) = unsafe {
            (
                core::ptr::read_volatile(d as *const u64),
                core::ptr::read_volatile((d + 8) as *const u32),
                core::ptr::read_volatile((d + 12) as *const u16),
            )
        };
        assert_eq!(
            (len, flags),
            (1, ring::VIRTQ_DESC_F_WRITE),
            "ack descriptor"
        );
        // SAFETY: the driver's ack byte.
        unsafe { core::ptr::write_volatile(addr as *mut u8, ack) };
        q.push_used(head.id as u32, 1);
        cmds.push(CtrlCmd {
            class: out[0],
            command: out[1],
            data: out[2..].to_vec(),
        });
    }
    for c in &cmds {
        if ack == 0 && c.class == 4 && c.command == 0 {
            st.active_pairs = u16::from_le_bytes([c.data[0], c.data[1]]);
        }
    }
    st.ctrl_cmds.extend(cmds);
}

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        self.st().device_type
    }
    fn read_device_features(&mut self) -> u64 {
        self.st().device_features
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.st().driver_features = driver_features;
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        let st = self.st();
        let queues = if st.device_features & MQ != 0 {
            FakeTransport::ctrl_index(&st) + 1
        } else {
            3
        };
        if (queue as usize) < queues && st.missing_queue != Some(queue) {
            st.max_queue_size
        } else {
            0
        }
    }
    fn notify(&mut self, queue: u16) {
        let mut st = self.st();
        st.notified[queue as usize] += 1;
        if queue as usize == FakeTransport::ctrl_index(&st) {
            process_ctrl(&mut st);
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.st().status
    }
    fn set_status(&mut self, mut status: DeviceStatus) {
        let mut st = self.st();
        if status.is_empty() {
            st.queues.iter_mut().for_each(|q| *q = None);
            st.resets += 1;
            st.active_pairs = 1;
        }
        if st.reject_features {
            status.remove(DeviceStatus::FEATURES_OK);
        }
        st.status = status;
    }
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.st().queues[queue as usize] = Some(DeviceQueue::new(
            size as u16,
            descriptors,
            driver_area,
            device_area,
        ));
    }
    fn queue_unset(&mut self, queue: u16) {
        self.st().queues[queue as usize] = None;
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.st().queues[queue as usize].is_some()
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, VirtioError> {
        let st = self.st();
        let end = offset + core::mem::size_of::<T>();
        let bytes = st
            .config
            .get(offset..end)
            .ok_or(VirtioError::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| VirtioError::ConfigSpaceTooSmall)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _offset: usize,
        _value: T,
    ) -> Result<(), VirtioError> {
        Err(VirtioError::Unsupported)
    }
}

fn pool(n: usize) -> Rc<PacketPool> {
    let a = HostDmaAllocator::leak();
    PacketPool::with_allocator(a, n, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).unwrap()
}

fn port(
    features: u64,
    max_q: u32,
    pool_size: usize,
) -> (VirtioNetPort<FakeTransport>, FakeTransport) {
    let dev = FakeTransport::new(features, max_q);
    let p = VirtioNetPort::new(dev.clone(), pool(pool_size), "00:03.0").unwrap();
    (p, dev)
}

fn frame(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}

#[test]
fn init_negotiates_only_what_it_handles() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let st = dev.st();
    assert_eq!(
        st.driver_features,
        (1 << 5) | (1 << 16) | (1 << 29) | (1 << 32)
    );
    assert_eq!(
        st.status,
        DeviceStatus::ACKNOWLEDGE
            | DeviceStatus::DRIVER
            | DeviceStatus::FEATURES_OK
            | DeviceStatus::DRIVER_OK
    );
    assert_eq!(st.queues[0].as_ref().unwrap().size, 256);
    assert_eq!(st.queues[1].as_ref().unwrap().size, 256);
    drop(st);
    assert_eq!(p.name(), "virtio-net 00:03.0");
    assert_eq!(p.mac_address(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert!(p.link_up());
    assert_eq!(p.rx_posted(), 256, "receive ring filled at init");
    assert_eq!(p.pool().in_use(), 256);
    assert_eq!(p.stats().rx_no_buffer, 0);
    assert_eq!((p.num_rx_queues(), p.num_tx_queues()), (1, 1));
    // Interrupts suppressed on both queues.
    let st = dev.st();
    for q in st.queues.iter().flatten() {
        assert_eq!(q.avail_flags(), 0, "must be 0 with EVENT_IDX");
        assert_eq!(q.used_event(), 0x8000);
    }
    drop(st);
    let (_p, dev) = port(1 << 32, 256, 600);
    for q in dev.st().queues.iter().flatten() {
        assert_eq!(q.avail_flags(), 1, "NO_INTERRUPT without EVENT_IDX");
    }
}

#[test]
fn rx_buffers_put_header_in_headroom() {
    let (_p, dev) = port(ALL_OFFERED, 256, 300);
    let d = dev.with_queue(0, |q| q.pop_avail()).unwrap();
    let pool_base = _p.pool().region().phys;
    // Descriptor starts 12 bytes before the pool's headroom: the frame lands at the headroom.
    assert_eq!((d.addr - pool_base) % 2176, (DEFAULT_HEADROOM - 12) as u64);
    assert_eq!(d.len as usize, 2176 - (DEFAULT_HEADROOM - 12));
}

#[test]
fn queue_size_follows_device_limits() {
    let (p, _) = port(ALL_OFFERED, 128, 300);
    assert_eq!(p.queue_size(), 128);
    let (p, _) = port(ALL_OFFERED, 1000, 600);
    assert_eq!(p.queue_size(), 256);
    let dev = FakeTransport::new(ALL_OFFERED, 1000);
    let p = VirtioNetPort::with_queue_size(dev, pool(8), "x", 300).unwrap();
    assert_eq!(p.queue_size(), 256, "rounded down to a power of two");
    assert_eq!(p.rx_posted(), 8, "partly filled from a small pool");
    assert_eq!(p.stats().rx_no_buffer, 1);
    assert_eq!(clamp_queue_size(256, 1), 1);
    assert_eq!(clamp_queue_size(0, 256), 1);
    assert_eq!(clamp_queue_size(u16::MAX, 32768), 4096);
}

#[test]
fn init_failures_are_errors_not_panics() {
    let dev = FakeTransport::new(ALL_OFFERED & !(1 << 32), 256);
    let e = VirtioNetPort::new(dev.clone(), pool(8), "x").unwrap_err();
    assert!(matches!(e, VirtioNetError::NotVersion1(_)));
    assert_eq!(dev.st().status, DeviceStatus::FAILED);

    let dev = FakeTransport::new(ALL_OFFERED, 256);
    dev.st().reject_features = true;
    let e = VirtioNetPort::new(dev.clone(), pool(8), "x").unwrap_err();
    assert!(matches!(e, VirtioNetError::FeaturesRejected(_)));

    let dev = FakeTransport::new(ALL_OFFERED, 0);
    let e = VirtioNetPort::new(dev.clone(), pool(8), "x").unwrap_err();
    assert_eq!(e, VirtioNetError::QueueUnavailable(0));
    assert_eq!(dev.st().status, DeviceStatus::FAILED);

    let dev = FakeTransport::new(ALL_OFFERED, 256);
    dev.st().device_type = DeviceType::Block;
    let e = VirtioNetPort::new(dev, pool(8), "x").unwrap_err();
    assert_eq!(e, VirtioNetError::NotNetworkDevice(DeviceType::Block));

    let a = HostDmaAllocator::leak();
    let small = PacketPool::with_allocator(a, 8, 128, 1024).unwrap();
    let dev = FakeTransport::new(ALL_OFFERED, 256);
    let e = VirtioNetPort::new(dev, small, "x").unwrap_err();
    assert!(matches!(e, VirtioNetError::BuffersTooSmall { .. }));
}

#[test]
fn no_mac_no_status_features() {
    let (mut p, dev) = port(1 << 32, 256, 300);
    assert_eq!(dev.st().driver_features, 1 << 32);
    assert_eq!(p.mac_address(), [2, 0, 0, 0, 0, 1]);
    dev.st().config[6] = 0;
    assert!(p.link_up(), "no STATUS feature: always up");
}

#[test]
fn link_status_from_config_space() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 300);
    assert!(p.link_up());
    dev.st().config[6] = 0;
    assert!(!p.link_up());
    dev.st().config[6] = 1;
    assert!(p.link_up());
    let s = dev.st().status;
    dev.st().status = s | DeviceStatus::DEVICE_NEEDS_RESET;
    assert!(!p.link_up(), "a device that needs a reset is down");
}

#[test]
fn rx_burst_returns_frames_without_header_and_refills() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let frames: Vec<_> = (0..3).map(|i| frame(i * 10, 60 + i as usize)).collect();
    for f in &frames {
        assert!(dev.deliver(f));
    }
    let mut batch = PacketBatch::new();
    assert_eq!(p.rx_burst(0, &mut batch), 3);
    for (buf, f) in batch.iter().zip(&frames) {
        assert_eq!(buf.data(), &f[..]);
        assert_eq!(buf.headroom(), DEFAULT_HEADROOM - DRIVER_RESERVE);
    }
    let s = p.stats();
    assert_eq!(
        (s.rx_packets, s.rx_bytes, s.rx_errors),
        (3, 60 + 61 + 62, 0)
    );
    assert_eq!(p.rx_posted(), 256, "refilled");
    assert_eq!(p.pool().in_use(), 256 + 3);
    assert_eq!(p.rx_burst(0, &mut batch), 0, "nothing more");
    drop(batch);
    assert_eq!(p.pool().in_use(), 256);
}

#[test]
fn rx_burst_respects_batch_free_capacity() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    for i in 0..40 {
        assert!(dev.deliver(&frame(i, 64)));
    }
    let mut batch = PacketBatch::new();
    let filler = p.pool().alloc().unwrap();
    batch.push(filler).unwrap();
    assert_eq!(p.rx_burst(0, &mut batch), 31);
    assert!(batch.is_full());
    assert_eq!(p.rx_burst(0, &mut batch), 0, "full batch: nothing taken");
    batch.clear();
    assert_eq!(p.rx_burst(0, &mut batch), 9);
    // Arrival order is kept across bursts: frame 31 is the first of the second burst.
    assert_eq!(batch[0].data()[0], 31);
    assert_eq!(p.rx_burst(1, &mut batch), 0, "no queue 1");
}

#[test]
fn rx_bad_used_elements_are_counted_and_skipped() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let descs: Vec<_> = dev.with_queue(0, |q| (0..4).map(|_| q.pop_avail().unwrap()).collect());
    dev.with_queue(0, |q| {
        q.push_used(9999, 100); // id out of range
        q.push_used(descs[0].id as u32, 5); // shorter than header + Ethernet header
        q.push_used(descs[1].id as u32, 100_000); // longer than the buffer
        q.push_used(descs[1].id as u32, 100); // now a duplicate: not in flight
        q.push_used(descs[2].id as u32, 12 + 60); // good
    });
    let mut batch = PacketBatch::new();
    assert_eq!(p.rx_burst(0, &mut batch), 1);
    assert_eq!(batch[0].len(), 60);
    let s = p.stats();
    assert_eq!((s.rx_errors, s.rx_packets), (4, 1));
    // No buffer leaked: 256 posted (refilled) + 1 in the batch + descs[3] still posted.
    assert_eq!(p.rx_posted(), 256);
    assert_eq!(p.pool().in_use(), 257);
}

#[test]
fn rx_refill_counts_empty_pool_and_recovers() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 260);
    for i in 0..10 {
        dev.deliver(&frame(i, 64));
    }
    let mut batch = PacketBatch::new();
    assert_eq!(p.rx_burst(0, &mut batch), 10);
    // The pool had 4 spare buffers: 6 slots stay empty.
    assert_eq!(p.rx_posted(), 250);
    assert_eq!(p.stats().rx_no_buffer, 1);
    assert_eq!(p.pool().free_count(), 0);
    batch.clear();
    let mut empty = PacketBatch::new();
    assert_eq!(p.rx_burst(0, &mut empty), 0);
    assert_eq!(p.rx_posted(), 256, "refilled once buffers came back");
}

#[test]
fn rx_notifies_device_only_when_it_waits_for_buffers() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    // Init posts 256 buffers; the device (avail_event 0) asked to hear about the first one.
    assert_eq!(dev.notified(0), 1);
    for i in 0..8 {
        dev.deliver(&frame(i, 64));
    }
    // Busy device: avail_event far behind; refill must not kick.
    dev.with_queue(0, |q| q.set_avail_event(0));
    let mut batch = PacketBatch::new();
    p.rx_burst(0, &mut batch);
    assert_eq!(dev.notified(0), 1);
    // The device ran dry and now waits at its current avail index: the refill kicks once.
    dev.with_queue(0, |q| {
        let idx = q.avail_idx();
        q.set_avail_event(idx)
    });
    for i in 0..4 {
        dev.deliver(&frame(i, 64));
    }
    batch.clear();
    p.rx_burst(0, &mut batch);
    assert_eq!(dev.notified(0), 2);
    assert_eq!(p.stats().notifications, 2);
}

#[test]
fn tx_burst_sends_with_zeroed_header_and_one_kick() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let pool = p.pool().clone();
    let mut batch = PacketBatch::new();
    let frames: Vec<_> = (0..5).map(|i| frame(i, 60 + i as usize)).collect();
    for f in &frames {
        let mut b = pool.alloc().unwrap();
        assert!(b.copy_from_slice(f));
        // Junk where the header goes: the driver must zero it.
        let s = b.start();
        b.raw_mut()[s - 12..s].fill(0xee);
        batch.push(b).unwrap();
    }
    assert_eq!(p.tx_burst(0, &mut batch), 5);
    assert!(batch.is_empty());
    assert_eq!(dev.notified(1), 1, "one kick for the burst");
    let descs = dev.take_tx();
    let sent: Vec<_> = descs.iter().map(FakeTransport::tx_frame).collect();
    assert_eq!(sent, frames);
    let s = p.stats();
    assert_eq!((s.tx_packets, s.tx_bytes), (5, 60 + 61 + 62 + 63 + 64));
    assert_eq!(p.tx_in_flight(), 5);

    // Device busy (its avail_event behind): the next burst is not kicked.
    dev.with_queue(1, |q| q.set_avail_event(0));
    batch
        .push(
            pool.alloc()
                .map(|mut b| {
                    b.copy_from_slice(&frame(9, 64));
                    b
                })
                .unwrap(),
        )
        .unwrap();
    assert_eq!(p.tx_burst(0, &mut batch), 1);
    assert_eq!(dev.notified(1), 1);

    // Completions come back on the next call.
    let in_use = pool.in_use();
    dev.complete_tx(&descs);
    assert_eq!(p.tx_reclaim(0), 5);
    assert_eq!(pool.in_use(), in_use - 5);
    assert_eq!(p.tx_in_flight(), 1);
}

#[test]
fn tx_full_ring_leaves_rest_in_batch_in_order() {
    let dev = FakeTransport::new(ALL_OFFERED, 16);
    let mut p = VirtioNetPort::new(dev.clone(), pool(100), "x").unwrap();
    let pool = p.pool().clone();
    let mut batch = PacketBatch::new();
    for i in 0..32u8 {
        let mut b = pool.alloc().unwrap();
        b.copy_from_slice(&[i; 64]);
        batch.push(b).unwrap();
    }
    assert_eq!(p.tx_burst(0, &mut batch), 16);
    assert_eq!(batch.len(), 16);
    assert_eq!(
        batch[0].data()[0],
        16,
        "unsent packets keep their order at the front"
    );
    assert_eq!(p.stats().tx_full, 16);
    assert_eq!(p.tx_burst(0, &mut batch), 0, "still full");
    assert_eq!(p.stats().tx_full, 32);
    let descs = dev.take_tx();
    dev.complete_tx(&descs);
    assert_eq!(p.tx_burst(0, &mut batch), 16, "reclaimed, then sent");
    assert!(batch.is_empty());
    let sent: Vec<_> = dev
        .take_tx()
        .iter()
        .map(|d| FakeTransport::tx_frame(d)[0])
        .collect();
    assert_eq!(sent, (16..32).collect::<Vec<u8>>());
}

#[test]
fn tx_drops_empty_frames_and_ignores_other_queues() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let pool = p.pool().clone();
    let mut batch = PacketBatch::new();
    batch.push(pool.alloc().unwrap()).unwrap(); // empty
    let mut b = pool.alloc().unwrap();
    b.copy_from_slice(&frame(1, 64));
    batch.push(b).unwrap();
    assert_eq!(p.tx_burst(1, &mut batch), 0);
    assert_eq!(batch.len(), 2, "queue 1: untouched");
    assert_eq!(p.tx_burst(0, &mut batch), 1);
    assert!(batch.is_empty());
    assert_eq!(p.stats().tx_errors, 1);
    assert_eq!(dev.take_tx().len(), 1);
    assert_eq!(p.tx_burst(0, &mut PacketBatch::new()), 0);
}

#[test]
fn tx_bogus_completions_are_counted() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    dev.with_queue(1, |q| {
        q.push_used(7, 0);
        q.push_used(70_000, 0);
    });
    assert_eq!(p.tx_reclaim(0), 0);
    assert_eq!(p.stats().tx_errors, 2);
}

#[test]
fn forwarding_is_zero_copy_and_vlan_push_uses_headroom() {
    let shared = pool(1200);
    let dev_a = FakeTransport::new(ALL_OFFERED, 256);
    let dev_b = FakeTransport::new(ALL_OFFERED, 256);
    let mut a = VirtioNetPort::new(dev_a.clone(), shared.clone(), "a").unwrap();
    let mut b = VirtioNetPort::new(dev_b.clone(), shared.clone(), "b").unwrap();
    let f = frame(0x40, 100);
    dev_a.deliver(&f);
    dev_a.deliver(&f);
    let mut batch = PacketBatch::new();
    assert_eq!(a.rx_burst(0, &mut batch), 2);
    let phys: Vec<_> = batch.iter().map(|b| b.phys_addr()).collect();
    // Push a 4-byte VLAN tag on the second packet, in place.
    let dst_src: [u8; 12] = batch[1].data()[..12].try_into().unwrap();
    assert!(batch[1].prepend(4));
    let d = batch[1].data_mut();
    d[..12].copy_from_slice(&dst_src);
    d[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(b.tx_burst(0, &mut batch), 2);
    let descs = dev_b.take_tx();
    // The same memory goes out: the header sits right before the frame, in the headroom.
    assert_eq!(descs[0].addr, phys[0] - 12);
    assert_eq!(descs[1].addr, phys[1] - 4 - 12);
    assert_eq!(FakeTransport::tx_frame(&descs[0]), f);
    let tagged = FakeTransport::tx_frame(&descs[1]);
    assert_eq!(tagged.len(), 104);
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(&tagged[16..], &f[12..]);
    // Back to the pool once port b's device is done.
    let before = shared.in_use();
    dev_b.complete_tx(&descs);
    b.tx_reclaim(0);
    assert_eq!(shared.in_use(), before - 2);
}

#[test]
fn sustained_traffic_wraps_indices_without_leaks() {
    let dev = FakeTransport::new(ALL_OFFERED, 64);
    let mut p = VirtioNetPort::new(dev.clone(), pool(200), "x").unwrap();
    let mut batch = PacketBatch::new();
    let mut total = 0u64;
    for round in 0..5000u32 {
        for i in 0..(round % 32) {
            assert!(dev.deliver(&frame(i as u8, 64)));
        }
        let n = p.rx_burst(0, &mut batch);
        assert_eq!(n as u32, round % 32);
        total += n as u64;
        // Echo everything back out.
        assert_eq!(p.tx_burst(0, &mut batch), n);
        let descs = dev.take_tx();
        dev.complete_tx(&descs);
        // The device sleeps every other round: then it must be kicked on the next publish.
        if round % 2 == 0 {
            dev.with_queue(1, |q| {
                let idx = q.avail_idx();
                q.set_avail_event(idx)
            });
        }
    }
    assert!(total > 65536, "indices wrapped: {total}");
    p.tx_reclaim(0);
    let s = p.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (total, total));
    assert_eq!(
        (s.rx_errors, s.tx_errors, s.rx_no_buffer, s.tx_full),
        (0, 0, 0, 0)
    );
    assert_eq!(
        p.pool().in_use(),
        64,
        "only the posted rx ring holds buffers"
    );
    assert!(
        dev.notified(1) >= 2400,
        "sleeping device kicked: {}",
        dev.notified(1)
    );
}

#[test]
fn drop_resets_device_and_returns_buffers() {
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let shared = p.pool().clone();
    let mut batch = PacketBatch::new();
    let mut b = shared.alloc().unwrap();
    b.copy_from_slice(&frame(1, 64));
    batch.push(b).unwrap();
    p.tx_burst(0, &mut batch);
    assert_eq!(shared.in_use(), 257);
    let resets = dev.st().resets;
    drop(p);
    assert_eq!(dev.st().resets, resets + 1);
    assert!(dev.st().status.is_empty());
    assert_eq!(shared.in_use(), 0);
}

#[test]
fn works_through_the_nic_trait_object() {
    let (p, dev) = port(ALL_OFFERED, 256, 600);
    let mut nic: alloc::boxed::Box<dyn Nic> = alloc::boxed::Box::new(p);
    dev.deliver(&frame(3, 64));
    let mut batch = PacketBatch::new();
    assert_eq!(nic.rx_burst(0, &mut batch), 1);
    assert_eq!(nic.tx_burst(0, &mut batch), 1);
    assert_eq!(nic.stats().tx_packets, 1);
}

#[test]
fn tx_queue_failure_resets_device_before_freeing_rx_ring() {
    struct NoTx(FakeTransport);
    let dev = FakeTransport::new(ALL_OFFERED, 256);
    // Queue 1 unavailable: max size 0 for it only.
    impl Transport for NoTx {
        fn device_type(&self) -> DeviceType {
            self.0.device_type()
        }
        fn read_device_features(&mut self) -> u64 {
            self.0.read_device_features()
        }
        fn write_driver_features(&mut self, f: u64) {
            self.0.write_driver_features(f)
        }
        fn max_queue_size(&mut self, queue: u16) -> u32 {
            if queue == 1 { 0 } else { 256 }
        }
        fn notify(&mut self, queue: u16) {
            self.0.notify(queue)
        }
        fn get_status(&self) -> DeviceStatus {
            self.0.get_status()
        }
        fn set_status(&mut self, status: DeviceStatus) {
            self.0.set_status(status)
        }
        fn set_guest_page_size(&mut self, _: u32) {}
        fn requires_legacy_layout(&self) -> bool {
            false
        }
        fn queue_set(&mut self, q: u16, size: u32, d: PhysAddr, dr: PhysAddr, dv: PhysAddr) {
            self.0.queue_set(q, size, d, dr, dv)
        }
        fn queue_unset(&mut self, q: u16) {
            self.0.queue_unset(q)
        }
        fn queue_used(&mut self, q: u16) -> bool {
            self.0.queue_used(q)
        }
        fn ack_interrupt(&mut self) -> InterruptStatus {
            InterruptStatus::empty()
        }
        fn read_config_generation(&self) -> u32 {
            0
        }
        fn read_config_space<T: FromBytes + IntoBytes>(&self, o: usize) -> Result<T, VirtioError> {
            self.0.read_config_space(o)
        }
        fn write_config_space<T: IntoBytes + Immutable>(
            &mut self,
            _: usize,
            _: T,
        ) -> Result<(), VirtioError> {
            Err(VirtioError::Unsupported)
        }
    }
    let p = pool(300);
    let e = VirtioNetPort::new(NoTx(dev.clone()), p.clone(), "x").unwrap_err();
    assert_eq!(e, VirtioNetError::QueueUnavailable(1));
    let st = dev.st();
    assert!(
        st.queues[0].is_none(),
        "device reset: rx queue no longer set"
    );
    assert_eq!(st.status, DeviceStatus::FAILED);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn direct_notify_writes_the_notify_register() {
    use super::pci_notify::tests::{fake_bar, qemu_like};
    let (mut p, dev) = port(ALL_OFFERED, 256, 600);
    let bar = fake_bar();
    let base = bar.as_ptr() as usize;
    let cam = qemu_like(bar, 2);
    let f = DeviceFunction {
        bus: 0,
        device: 3,
        function: 0,
    };
    // SAFETY: the fake configuration space describes the fake BAR, host memory we own.
    assert!(unsafe { p.use_direct_notify(&cam, f) });
    let register = (base + 0x3000 + 2 * 4) as *const u16;
    let kicks = p.stats().notifications;
    let mut batch = PacketBatch::new();
    let mut b = p.pool().alloc().unwrap();
    b.copy_from_slice(&frame(1, 64));
    batch.push(b).unwrap();
    assert_eq!(p.tx_burst(0, &mut batch), 1);
    assert_eq!(dev.notified(1), 0, "not through the transport");
    assert_eq!(p.stats().notifications, kicks + 1);
    // SAFETY: reading the fake BAR.
    assert_eq!(
        unsafe { core::ptr::read_volatile(register) },
        1,
        "queue 1 kicked"
    );

    let mut no_caps = qemu_like(fake_bar(), 0);
    no_caps.words[1] = 0;
    // SAFETY: as above.
    assert!(!unsafe { p.use_direct_notify(&no_caps, f) });
}

#[test]
fn init_logs_one_useful_line() {
    use std::string::{String, ToString};
    use std::sync::Mutex;
    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture;
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Info);
    let dev = FakeTransport::new(ALL_OFFERED, 256);
    let _p = VirtioNetPort::new(dev, pool(600), "00:07.0").unwrap();
    let lines = LINES.lock().unwrap();
    let line = lines
        .iter()
        .find(|l| l.starts_with("virtio-net 00:07.0:"))
        .expect("init line");
    std::println!("{line}");
    assert_eq!(
        line,
        "virtio-net 00:07.0: mac 52:54:00:12:34:56, queue size 256 (device max 256), \
         256 rx buffers posted, features MAC | STATUS | RING_EVENT_IDX | VERSION_1 \
         (device offers 0x130038021), link up"
    );
    drop(lines);
    let options = VirtioNetOptions {
        queue_pairs: 2,
        ..VirtioNetOptions::default()
    };
    let _q = VirtioNetPort::with_options(FakeTransport::with_mq(4), pool(600), "00:08.0", options)
        .unwrap();
    let lines = LINES.lock().unwrap();
    let mine: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("virtio-net 00:08.0:"))
        .collect();
    std::println!("{mine:?}");
    assert_eq!(
        mine[0],
        "virtio-net 00:08.0: 2 queue pairs (device max 4, requested 2)"
    );
    assert!(mine[1].contains(
        "512 rx buffers posted, features MAC | STATUS | CTRL_VQ | MQ | RING_EVENT_IDX | VERSION_1"
    ));
}

/// Not a test: driver-side cost of forwarding (rx_burst on one port, tx_burst on another),
/// device work excluded. `cargo test -p drivers --release -- --ignored --nocapture bench_`.
#[test]
#[ignore]
fn bench_forwarding_driver_cost() {
    use std::time::{Duration, Instant};
    let shared = pool(2048);
    let dev_a = FakeTransport::new(ALL_OFFERED, 256);
    let dev_b = FakeTransport::new(ALL_OFFERED, 256);
    let mut a = VirtioNetPort::new(dev_a.clone(), shared.clone(), "a").unwrap();
    let mut b = VirtioNetPort::new(dev_b.clone(), shared.clone(), "b").unwrap();
    let f = frame(0, 64);
    let mut batch = PacketBatch::new();
    let mut spent = Duration::ZERO;
    let mut packets = 0u64;
    let rounds: u32 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for _ in 0..rounds {
        for _ in 0..32 {
            dev_a.deliver(&f);
        }
        let t = Instant::now();
        let n = a.rx_burst(0, &mut batch);
        b.tx_burst(0, &mut batch);
        spent += t.elapsed();
        packets += n as u64;
        let descs = dev_b.take_tx();
        dev_b.complete_tx(&descs);
    }
    std::println!(
        "{packets} packets, {:.1} ns/packet driver-side (rx + tx, incl. refill and reclaim)",
        spent.as_nanos() as f64 / packets as f64
    );
}

/// A small deterministic generator for the randomized test (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

#[test]
fn randomized_traffic_keeps_order_and_accounts_for_every_buffer() {
    let dev = FakeTransport::new(ALL_OFFERED, 64);
    let shared = pool(400);
    let mut p = VirtioNetPort::new(dev.clone(), shared.clone(), "x").unwrap();
    let mut rng = Lcg(0x1234_5678);
    let mut held = PacketBatch::new(); // the "switch": packets between rx and tx
    let mut next_in = 0u32; // sequence number of the next frame the wire delivers
    let mut next_rx = 0u32; // next sequence number rx_burst must return
    let mut next_out = 0u32; // next sequence number the device must see on tx
    let mut pending_tx: Vec<DeviceDesc> = Vec::new(); // consumed by the device, not completed
    let mut completed = 0u64;
    for _ in 0..30_000 {
        match rng.below(5) {
            0 => {
                for _ in 0..rng.below(40) {
                    let mut f = frame(0, 60);
                    f[..4].copy_from_slice(&next_in.to_le_bytes());
                    if !dev.deliver(&f) {
                        break; // no rx buffer posted: the wire drops it (not counted)
                    }
                    next_in += 1;
                }
            }
            1 => {
                // The switch takes what fits, keeping room for prior packets.
                let before = held.len();
                let n = p.rx_burst(0, &mut held);
                assert_eq!(held.len(), before + n);
                for b in &held[before..] {
                    let seq = u32::from_le_bytes(b.data()[..4].try_into().unwrap());
                    assert_eq!(seq, next_rx, "rx keeps arrival order");
                    next_rx += 1;
                }
            }
            2 => {
                let before = held.len();
                let sent = p.tx_burst(0, &mut held);
                assert_eq!(held.len(), before - sent);
            }
            3 => {
                // The device consumes the tx ring and completes a random subset, out of order.
                for d in dev.take_tx() {
                    let f = FakeTransport::tx_frame(&d);
                    let seq = u32::from_le_bytes(f[..4].try_into().unwrap());
                    assert_eq!(seq, next_out, "tx keeps batch order");
                    next_out += 1;
                    pending_tx.push(d);
                }
                let mut i = 0;
                while i < pending_tx.len() {
                    if rng.below(2) == 0 {
                        let d = pending_tx.swap_remove(i);
                        dev.complete_tx(&[d]);
                        completed += 1;
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {
                p.tx_reclaim(0);
            }
        }
        // Every buffer is somewhere: posted for rx, in flight on tx, or held by the switch.
        assert_eq!(
            shared.in_use(),
            p.rx_posted() + p.tx_in_flight() + held.len(),
        );
    }
    let s = p.stats();
    assert!(
        next_rx > 10_000 && completed > 5_000,
        "{next_rx} {completed}"
    );
    assert_eq!(s.rx_packets, u64::from(next_rx));
    // Drain: the device sends and completes everything; all tx buffers come back.
    for d in dev.take_tx() {
        next_out += 1;
        pending_tx.push(d);
    }
    dev.complete_tx(&pending_tx);
    p.tx_reclaim(0);
    assert_eq!(p.tx_in_flight(), 0);
    assert_eq!(p.stats().tx_packets, u64::from(next_out));
    assert_eq!((s.rx_errors, s.tx_errors), (0, 0));
    drop(held);
    assert_eq!(shared.in_use(), p.rx_posted());
}

// ---- multiqueue ----

fn mq_port(
    max_pairs: u16,
    pairs: u16,
    pool_size: usize,
) -> (VirtioNetPort<FakeTransport>, FakeTransport) {
    let dev = FakeTransport::with_mq(max_pairs);
    let options = VirtioNetOptions {
        queue_pairs: pairs,
        ..VirtioNetOptions::default()
    };
    let p = VirtioNetPort::with_options(dev.clone(), pool(pool_size), "mq", options).unwrap();
    (p, dev)
}

const BASE_BITS: u64 = (1 << 5) | (1 << 16) | (1 << 29) | (1 << 32);

#[test]
fn mq_negotiates_sets_up_pairs_and_sends_vq_pairs_set() {
    let (p, dev) = mq_port(4, 2, 1200);
    let st = dev.st();
    assert_eq!(st.driver_features, BASE_BITS | (1 << 17) | (1 << 22));
    assert!(st.status.contains(DeviceStatus::DRIVER_OK));
    for q in 0..4 {
        assert_eq!(
            st.queues[q].as_ref().map(|q| q.size),
            Some(256),
            "queue {q}"
        );
    }
    for q in 4..8 {
        assert!(st.queues[q].is_none(), "queue {q} beyond the pairs in use");
    }
    // The control queue is virtqueue 2 x max_virtqueue_pairs, not 2 x pairs in use.
    assert_eq!(st.queues[8].as_ref().map(|q| q.size), Some(8));
    assert_eq!(
        st.ctrl_cmds,
        [CtrlCmd {
            class: 4,
            command: 0,
            data: alloc::vec![2, 0]
        }]
    );
    assert_eq!(st.active_pairs, 2);
    assert_eq!(st.notified[8], 1);
    drop(st);
    assert_eq!((p.num_rx_queues(), p.num_tx_queues()), (2, 2));
    assert_eq!((p.queue_pairs(), p.max_queue_pairs()), (2, 4));
    assert!(p.features().contains(VirtioNetFeatures::MQ));
    assert_eq!(p.rx_posted(), 512, "every pair's receive ring filled");
    assert_eq!(p.pool().in_use(), 512);
}

#[test]
fn mq_pairs_capped_to_device_max() {
    let (p, dev) = mq_port(3, 8, 1200);
    assert_eq!(p.queue_pairs(), 3);
    assert_eq!(dev.st().ctrl_cmds[0].data, [3, 0]);
    assert!(dev.st().queues[6].is_some(), "control queue at 2 x 3");
    let (p, dev) = mq_port(1, 4, 600);
    assert_eq!(p.queue_pairs(), 1, "a device with max 1 pair");
    assert!(dev.st().ctrl_cmds.is_empty(), "one pair: no command needed");
}

#[test]
fn one_pair_by_default_even_if_device_offers_mq() {
    let dev = FakeTransport::with_mq(4);
    let p = VirtioNetPort::new(dev.clone(), pool(600), "x").unwrap();
    let st = dev.st();
    assert_eq!(st.driver_features, BASE_BITS, "neither MQ nor CTRL_VQ");
    assert!(st.ctrl_cmds.is_empty());
    assert!(st.queues[2].is_none() && st.queues[8].is_none());
    drop(st);
    assert_eq!(
        (p.queue_pairs(), p.max_queue_pairs(), p.num_rx_queues()),
        (1, 4, 1)
    );
    // queue_pairs 0 counts as 1.
    let options = VirtioNetOptions {
        queue_pairs: 0,
        ..VirtioNetOptions::default()
    };
    let p =
        VirtioNetPort::with_options(FakeTransport::with_mq(4), pool(600), "x", options).unwrap();
    assert_eq!(p.queue_pairs(), 1);
}

#[test]
fn no_mq_offered_gives_one_pair() {
    let dev = FakeTransport::new(ALL_OFFERED, 256);
    let options = VirtioNetOptions {
        queue_pairs: 4,
        ..VirtioNetOptions::default()
    };
    let p = VirtioNetPort::with_options(dev.clone(), pool(600), "x", options).unwrap();
    assert_eq!((p.queue_pairs(), p.max_queue_pairs()), (1, 1));
    assert_eq!(
        dev.st().driver_features,
        BASE_BITS,
        "CTRL_VQ alone is of no use"
    );
    assert!(dev.st().ctrl_cmds.is_empty());
}

#[test]
fn rejected_or_unanswered_pairs_command_falls_back_to_one_pair() {
    for ack in [Some(1), None] {
        let dev = FakeTransport::with_mq(4);
        dev.st().ctrl_ack = ack;
        let options = VirtioNetOptions {
            queue_pairs: 4,
            ..VirtioNetOptions::default()
        };
        let shared = pool(1200);
        let mut p = VirtioNetPort::with_options(dev.clone(), shared.clone(), "x", options).unwrap();
        assert_eq!(p.queue_pairs(), 1, "ack {ack:?}");
        let st = dev.st();
        assert_eq!(st.driver_features, BASE_BITS);
        assert!(st.queues[2].is_none() && st.queues[8].is_none());
        assert!(st.status.contains(DeviceStatus::DRIVER_OK));
        drop(st);
        // The first attempt's rings and buffers are gone; the port works on pair 0.
        assert_eq!(shared.in_use(), 256);
        dev.deliver(&frame(1, 64));
        let mut batch = PacketBatch::new();
        assert_eq!(p.rx_burst(0, &mut batch), 1);
    }
}

#[test]
fn mq_missing_queue_is_an_error_and_resets_first() {
    for (missing, pairs) in [(8u16, 2u16), (3, 4)] {
        let dev = FakeTransport::with_mq(4);
        dev.st().missing_queue = Some(missing);
        let options = VirtioNetOptions {
            queue_pairs: pairs,
            ..VirtioNetOptions::default()
        };
        let shared = pool(1200);
        let e = VirtioNetPort::with_options(dev.clone(), shared.clone(), "x", options).unwrap_err();
        assert_eq!(e, VirtioNetError::QueueUnavailable(missing));
        let st = dev.st();
        assert_eq!(st.status, DeviceStatus::FAILED);
        assert!(
            st.queues.iter().all(Option::is_none),
            "reset before the rings were freed"
        );
        assert_eq!(shared.in_use(), 0);
    }
}

#[test]
fn mq_queues_are_independent() {
    let (mut p, dev) = mq_port(4, 4, 2400);
    for pair in 0..4 {
        for i in 0..=pair {
            assert!(dev.deliver_on(pair, &frame((pair * 16 + i) as u8, 64)));
        }
    }
    let mut batch = PacketBatch::new();
    for pair in 0..4u16 {
        assert_eq!(p.rx_burst(pair, &mut batch), pair as usize + 1);
        for (i, b) in batch.iter().enumerate() {
            assert_eq!(b.data()[0], (pair as usize * 16 + i) as u8, "pair {pair}");
        }
        let kicks = dev.notified(2 * pair as usize + 1);
        assert_eq!(p.tx_burst(pair, &mut batch), pair as usize + 1);
        assert_eq!(
            dev.notified(2 * pair as usize + 1),
            kicks + 1,
            "kick on its tx queue"
        );
        let sent = dev.take_tx_on(pair as usize);
        assert_eq!(sent.len(), pair as usize + 1);
        assert_eq!(FakeTransport::tx_frame(&sent[0])[0], (pair * 16) as u8);
        for other in (0..4).filter(|&o| o != pair as usize) {
            assert!(dev.take_tx_on(other).is_empty());
        }
        dev.complete_tx_on(pair as usize, &sent);
        assert_eq!(p.tx_reclaim(pair), pair as usize + 1);
    }
    assert_eq!(p.rx_burst(4, &mut batch), 0, "no pair 4");
    let s = p.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (10, 10));
    assert_eq!(p.queue(2).unwrap().stats().rx_packets, 3);
    assert!(p.queue(4).is_none());
    assert_eq!(p.pool().in_use(), 4 * 256);
}

#[test]
fn split_queues_are_one_queue_nics_and_dropping_one_stops_the_device() {
    let (p, dev) = mq_port(4, 4, 2400);
    let shared = p.pool().clone();
    let mut queues = p.split_queues();
    assert_eq!(queues.len(), 4);
    for (i, q) in queues.iter_mut().enumerate() {
        assert_eq!(q.name(), std::format!("virtio-net mq q{i}"));
        assert_eq!(
            (q.pair(), q.num_rx_queues(), q.num_tx_queues()),
            (i as u16, 1, 1)
        );
        assert_eq!(q.queue_pairs(), 4);
        assert_eq!(q.mac_address(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert!(q.link_up());
        dev.deliver_on(i, &frame(i as u8, 64));
        let mut batch = PacketBatch::new();
        assert_eq!(q.rx_burst(1, &mut batch), 0, "only queue 0");
        assert_eq!(q.rx_burst(0, &mut batch), 1);
        assert_eq!(batch[0].data()[0], i as u8);
        assert_eq!(q.stats().rx_packets, 1, "its own counters");
    }
    let resets = dev.st().resets;
    drop(queues.remove(3));
    assert_eq!(dev.st().resets, resets + 1, "the device is reset first");
    drop(queues);
    assert_eq!(dev.st().resets, resets + 1, "once");
    assert_eq!(shared.in_use(), 0);
}

#[test]
fn unstarted_queues_are_send_and_run_on_their_own_threads() {
    fn assert_send<X: Send>() {}
    assert_send::<UnstartedQueue<PciTransport>>();
    assert_send::<UnstartedQueue<FakeTransport>>();

    let dev = FakeTransport::with_mq(4);
    let options = VirtioNetOptions {
        queue_pairs: 4,
        queue_size: 64,
    };
    let allocator = HostDmaAllocator::leak();
    let queues = VirtioNetPort::unstarted(dev.clone(), allocator, "mt", options).unwrap();
    assert_eq!(queues.len(), 4);
    assert_eq!(dev.st().active_pairs, 4);
    for q in &queues {
        let r = dev.st().queues[2 * q.pair() as usize]
            .as_ref()
            .unwrap()
            .avail_idx();
        assert_eq!(r, 0, "no buffers posted before start");
        assert_eq!(q.port_name(), "virtio-net mt");
    }
    // Dropping any queue stops the device: every thread finishes its traffic first.
    let done = Arc::new(std::sync::Barrier::new(queues.len()));
    let threads: Vec<_> = queues
        .into_iter()
        .map(|q| {
            let dev = dev.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let pair = q.pair() as usize;
                // This "core's" own pool.
                let pool = PacketPool::with_allocator(
                    HostDmaAllocator::leak(),
                    200,
                    DEFAULT_HEADROOM,
                    DEFAULT_DATA_ROOM,
                )
                .unwrap();
                let mut q = q.start(pool.clone()).unwrap();
                assert_eq!(q.rx_posted(), 64);
                let mut batch = PacketBatch::new();
                let (mut next_in, mut next_out) = (0u32, 0u32);
                for round in 0..2000u32 {
                    for _ in 0..(round % 8) {
                        let mut f = frame(pair as u8, 64);
                        f[..4].copy_from_slice(&next_in.to_le_bytes());
                        f[4] = pair as u8;
                        assert!(dev.deliver_on(pair, &f));
                        next_in += 1;
                    }
                    q.rx_burst(0, &mut batch);
                    q.tx_burst(0, &mut batch);
                    assert!(batch.is_empty());
                    let sent = dev.take_tx_on(pair);
                    for d in &sent {
                        let f = FakeTransport::tx_frame(d);
                        assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()), next_out);
                        assert_eq!(f[4], pair as u8, "frames stay on their pair");
                        next_out += 1;
                    }
                    dev.complete_tx_on(pair, &sent);
                }
                q.tx_reclaim(0);
                assert_eq!(next_out, next_in);
                let s = q.stats();
                assert_eq!(
                    (s.rx_packets, s.tx_packets),
                    (next_in as u64, next_in as u64)
                );
                assert_eq!((s.rx_errors, s.tx_errors, s.rx_no_buffer), (0, 0, 0));
                assert_eq!(pool.in_use(), 64);
                done.wait();
                // Drop on this thread: its pool's buffers come back here.
                drop(q);
                assert_eq!(pool.in_use(), 0);
                s.rx_packets
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 4 * 2000 / 8 * (0..8).sum::<u64>());
    assert!(
        dev.st().status.is_empty(),
        "device reset by the first dropped queue"
    );
}

#[test]
fn direct_notify_per_queue_writes_its_own_queue_index() {
    use super::pci_notify::tests::{fake_bar, qemu_like};
    let (p, dev) = mq_port(2, 2, 1200);
    let bar = fake_bar();
    let base = bar.as_ptr() as usize;
    let cam = qemu_like(bar, 0);
    let f = DeviceFunction {
        bus: 0,
        device: 3,
        function: 0,
    };
    let mut p = p;
    // SAFETY: the fake configuration space describes the fake BAR, host memory we own.
    assert!(unsafe { p.use_direct_notify(&cam, f) });
    let register = (base + 0x3000) as *const u16;
    let mut batch = PacketBatch::new();
    let mut b = p.pool().alloc().unwrap();
    b.copy_from_slice(&frame(1, 64));
    batch.push(b).unwrap();
    assert_eq!(p.tx_burst(1, &mut batch), 1);
    assert_eq!(dev.notified(3), 0, "not through the transport");
    // SAFETY: reading the fake BAR.
    assert_eq!(
        unsafe { core::ptr::read_volatile(register) },
        3,
        "virtqueue 3 kicked"
    );

    // An unstarted queue with direct notify kicks its own register once started.
    let dev = FakeTransport::with_mq(2);
    let options = VirtioNetOptions {
        queue_pairs: 2,
        ..VirtioNetOptions::default()
    };
    let mut qs =
        VirtioNetPort::unstarted(dev.clone(), HostDmaAllocator::leak(), "u", options).unwrap();
    let bar = fake_bar();
    let base = bar.as_ptr() as usize;
    let cam = qemu_like(bar, 1);
    // SAFETY: as above.
    assert!(unsafe { qs[1].use_direct_notify(&cam, f) });
    let q1 = qs.pop().unwrap().start(pool(300)).unwrap();
    // Posting the receive ring kicked virtqueue 2 (pair 1's rx) through the register.
    // SAFETY: reading the fake BAR.
    assert_eq!(
        unsafe { core::ptr::read_volatile((base + 0x3004) as *const u16) },
        2
    );
    assert_eq!(dev.notified(2), 0);
    assert_eq!(q1.stats().notifications, 1);
}
