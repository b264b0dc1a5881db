//! Poll-mode virtio-net (virtio 1.x, modern PCI): burst receive and transmit of pool buffers
//! with zero copies, one device notification per burst at most, and no interrupts; one or more
//! receive/transmit queue pairs (`VIRTIO_NET_F_MQ`).
//!
//! # Usage (kernel main loop, identity-mapped memory)
//!
//! ```ignore
//! use drivers::dma::{self, PacketBatch, PacketPool};
//! use drivers::nic::Nic;
//! use drivers::virtio_net::VirtioNetPort;
//!
//! dma::set_dma_allocator(&KERNEL_DMA).ok();          // once, at boot
//! let pool = PacketPool::new(2048)?; // per core: 256 rx + 256 tx per port, plus batches
//! // `root: PciRoot<PortIoCam>`, `f: DeviceFunction` of a virtio-net function (1af4:1041/1000).
//! let mut port0 = VirtioNetPort::from_pci(&mut root, f0, pool.clone())?;
//! let mut port1 = VirtioNetPort::from_pci(&mut root, f1, pool.clone())?;
//! // Optional, recommended under a hypervisor: one MMIO write per kick instead of three.
//! // SAFETY: `cam` reads f0's/f1's configuration space; the ports drive f0/f1.
//! let cam = unsafe { PortIoCam::new() };
//! unsafe { port0.use_direct_notify(&cam, f0) };
//! unsafe { port1.use_direct_notify(&cam, f1) };
//! let mut batch = PacketBatch::new();
//! loop {
//!     if port0.rx_burst(0, &mut batch) > 0 {
//!         // ... switch the packets; here: forward all to port1, unchanged, zero copies.
//!         port1.tx_burst(0, &mut batch);
//!         batch.clear(); // what did not fit in port1's tx ring is dropped (tx_full counts it)
//!     }
//!     // ... same for port1 -> port0, management every N iterations, etc.
//! }
//! ```
//!
//! `VirtioNetPort::new(transport, pool, "00:03.0")` takes any virtio-drivers [`Transport`]
//! instead (e.g. a `PciTransport` the kernel built itself with [`DmaHal`]).
//!
//! # Multiqueue
//!
//! [`VirtioNetOptions::queue_pairs`] asks for N receive/transmit queue pairs (default 1: no
//! multiqueue, nothing else changes). The driver then negotiates `VIRTIO_NET_F_MQ` and
//! `VIRTIO_NET_F_CTRL_VQ`, reads `max_virtqueue_pairs`, sets up `min(N, max)` pairs (queue
//! pair i is virtqueues 2i and 2i+1; the control queue is virtqueue 2 × max) and sends
//! `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET` on the control queue. A device that lacks MQ gets one
//! pair; one that rejects the command is brought up again with one pair (logged). With QEMU,
//! the device steers received frames to queues itself (tap multiqueue: by the host's flow
//! hash), so a flow always arrives on the same queue.
//!
//! Three ways to drive the pairs:
//!
//! - [`VirtioNetPort`]: all pairs behind one [`Nic`] (`num_rx_queues() == N`, queue q = pair q),
//!   buffers from one pool; for a single core.
//! - [`VirtioNetPort::split_queues`]: the port's pairs as [`VirtioNetQueue`]s, each a [`Nic`]
//!   with one queue (queue 0 = its pair). They keep the port's pool and posted buffers, so they
//!   are not `Send` (a [`PacketPool`] is `Rc`-based): for splitting within one core.
//! - [`VirtioNetPort::unstarted`] / [`unstarted_from_pci`](VirtioNetPort::unstarted_from_pci):
//!   the device is brought up with its rings set up but empty, as [`UnstartedQueue`]s, which
//!   are `Send`. Move each to the core that will poll it, then [`UnstartedQueue::start`] it
//!   there with that core's pool (it posts its receive buffers then). Frames that arrive
//!   before a queue is started are dropped by the device, as before any driver is ready.
//!
//! Per-queue state (both rings, their posted buffers, the pool, the notify register, counters)
//! lives in the queue handle and is touched by its core only. The device-wide rest (transport,
//! control queue, MAC, features) sits behind an `Arc` with a spin lock, used only off the
//! packet path: link status, bring-up, teardown, and kicks when direct notify is not enabled
//! (so enable it with [`UnstartedQueue::use_direct_notify`] /
//! [`VirtioNetPort::use_direct_notify`] before running queues on several cores: each queue
//! then kicks its own notify register, no lock). Counters are per queue; a port's are the sum.
//! Dropping any queue handle (or the port) resets the device: the whole port stops.
//!
//! # Design
//!
//! - Features: VERSION_1 (required: the 12-byte header and little-endian rings), MAC, STATUS,
//!   RING_EVENT_IDX, and MQ + CTRL_VQ only when more than one pair is asked for. Nothing else:
//!   no mergeable buffers, no offloads.
//! - Receive: each descriptor covers `[headroom - 12, end)` of a pool buffer, so the device
//!   writes its `virtio_net_hdr` into the buffer's headroom and the frame lands exactly at the
//!   pool's headroom. The ring is refilled in bulk after each burst, one publish, and the device
//!   is notified only when it asked (it ran out of buffers).
//! - Transmit: the driver writes a zeroed 12-byte header in the 12 bytes before the frame (the
//!   pool's [`DRIVER_RESERVE`] guarantees they exist) and posts one descriptor for header and
//!   frame. A buffer received on any port goes out unchanged: no copy.
//! - Interrupts are suppressed on every queue (we poll); completions are read from the used
//!   rings. Everything the device returns is checked; bad ids or lengths are counted in
//!   `rx_errors`/`tx_errors` and skipped.
//!
//! # Why not `virtio_drivers::queue::VirtQueue`
//!
//! Its 0.13.0 code was read, and it is not used for the datapath because:
//! - `should_notify` with EVENT_IDX computes `avail_idx >= avail_event + 1`, which is wrong
//!   when a burst crosses the u16 wrap of the avail index (a sleeping device is then never
//!   kicked: transmit stalls), and has no full fence between publishing `avail.idx` and reading
//!   `avail_event` (store->load reordering: lost kicks);
//! - `pop_used` needs the caller to name the token it expects and panics on a descriptor chain
//!   of unexpected length; a used element with an unknown id cannot be skipped (the queue stops);
//! - with EVENT_IDX it writes `used_event = last_used` on every pop, i.e. asks for an interrupt
//!   per packet, and `set_dev_notify(false)` does nothing then: no way to suppress them;
//! - every `add` fences and stores `avail.idx` (one publish per packet, not per burst), and the
//!   queue size is a const generic that must not exceed the device's maximum.
//!
//! So `virtio_net/ring.rs` is a small split ring of our own (one descriptor per buffer), set
//! up with `Transport::queue_set`, and `virtio_net/ctrl.rs` a smaller one for the control
//! queue; virtio-drivers still provides the PCI transport (capabilities, common config, notify,
//! config space) and [`DmaHal`] serves its other devices.

mod ctrl;
mod pci_notify;
mod ring;

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use bitflags::bitflags;
use log::{info, warn};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::VirtioPciError;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use crate::dma::{DRIVER_RESERVE, DmaAllocator, DmaHal, PacketBatch, PacketPool};
use crate::nic::{Nic, NicStats};
pub use ctrl::CtrlError;
use ctrl::CtrlQueue;
use ring::{SplitRing, Used};

bitflags! {
    /// The feature bits this driver knows about (virtio 1.x 5.1.3 and 6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VirtioNetFeatures: u64 {
        /// The device has a MAC address in its config space.
        const MAC = 1 << 5;
        /// The config space has a link status field.
        const STATUS = 1 << 16;
        /// A control virtqueue (negotiated only with MQ).
        const CTRL_VQ = 1 << 17;
        /// Multiple receive/transmit queue pairs (`max_virtqueue_pairs` in config space).
        const MQ = 1 << 22;
        /// `used_event`/`avail_event` notification suppression.
        const RING_EVENT_IDX = 1 << 29;
        /// virtio 1.x (not legacy): required.
        const VERSION_1 = 1 << 32;
    }
}

/// Length of `virtio_net_hdr` with VERSION_1 (including `num_buffers`).
pub const VIRTIO_NET_HDR_LEN: usize = 12;
/// Smallest frame accepted from the device (an Ethernet header).
const MIN_RX_FRAME: usize = 14;
/// The receive buffer the spec requires without mergeable buffers or GSO: header + 1514.
const MIN_RX_BUF: usize = VIRTIO_NET_HDR_LEN + 1514;
/// Queue size used by [`VirtioNetPort::new`] (capped to what the device allows).
pub const DEFAULT_QUEUE_SIZE: u16 = 256;
/// Most queue pairs the spec allows (`VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX`).
pub const MAX_QUEUE_PAIRS: u16 = 0x8000;

const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const CONFIG_MAX_VIRTQUEUE_PAIRS: usize = 8;
const STATUS_LINK_UP: u16 = 1;
/// Polls of the used ring before a control command counts as unanswered (QEMU answers during
/// the kick under TCG, within microseconds otherwise).
const CTRL_SPINS: u32 = 50_000_000;
/// What this driver negotiates, at most, with one queue pair.
const BASE_FEATURES: VirtioNetFeatures = VirtioNetFeatures::MAC
    .union(VirtioNetFeatures::STATUS)
    .union(VirtioNetFeatures::RING_EVENT_IDX)
    .union(VirtioNetFeatures::VERSION_1);

// The transmit header goes in the reserve in front of every frame.
const _: () = assert!(DRIVER_RESERVE >= VIRTIO_NET_HDR_LEN);

/// How to bring a port up. `Default` is one queue pair of [`DEFAULT_QUEUE_SIZE`] entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioNetOptions {
    /// Entries per queue, capped to the device's maximum and rounded down to a power of two
    /// (at most 4096).
    pub queue_size: u16,
    /// Receive/transmit queue pairs wanted (0 counts as 1). The port gets
    /// `min(queue_pairs, max_virtqueue_pairs)`; 1 if the device lacks MQ.
    pub queue_pairs: u16,
}

impl Default for VirtioNetOptions {
    fn default() -> Self {
        VirtioNetOptions {
            queue_size: DEFAULT_QUEUE_SIZE,
            queue_pairs: 1,
        }
    }
}

/// Why a virtio-net port could not be brought up. The device is left in FAILED (or reset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtioNetError {
    /// The transport is not a network device.
    NotNetworkDevice(DeviceType),
    /// virtio-drivers could not set up the PCI transport (capabilities, BARs).
    Pci(VirtioPciError),
    /// The device does not offer VERSION_1 (legacy-only device); carries its feature bits.
    NotVersion1(u64),
    /// The device did not accept our feature set (FEATURES_OK did not stick).
    FeaturesRejected(u64),
    /// The queue does not exist (maximum size 0) or is already enabled.
    QueueUnavailable(u16),
    /// No DMA memory for a ring (or no allocator registered).
    OutOfDmaMemory,
    /// The pool's buffers cannot hold a header and a full-size frame after their headroom.
    BuffersTooSmall {
        /// Bytes a receive descriptor would have.
        have: usize,
        /// Bytes the device may write (header + 1514).
        need: usize,
    },
    /// A control-queue command failed (only seen inside bring-up, which then falls back to
    /// one queue pair).
    Control(CtrlError),
}

impl fmt::Display for VirtioNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotNetworkDevice(t) => write!(f, "not a network device: {t:?}"),
            Self::Pci(e) => write!(f, "PCI transport: {e}"),
            Self::NotVersion1(feat) => write!(f, "device lacks VERSION_1 (features {feat:#x})"),
            Self::FeaturesRejected(feat) => write!(f, "device rejected features {feat:#x}"),
            Self::QueueUnavailable(q) => write!(f, "queue {q} unavailable"),
            Self::OutOfDmaMemory => f.write_str("out of DMA memory for the rings"),
            Self::BuffersTooSmall { have, need } => {
                write!(f, "receive buffers of {have} bytes, need {need}")
            }
            Self::Control(e) => write!(f, "control queue command failed: {e:?}"),
        }
    }
}

/// Feature names as `MAC | STATUS | RING_EVENT_IDX | VERSION_1`.
struct FeaturesFmt(VirtioNetFeatures);

impl fmt::Display for FeaturesFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bitflags::parser::to_writer(&self.0, f)
    }
}

/// A MAC address as `52:54:00:12:34:56`.
struct MacFmt([u8; 6]);

impl fmt::Display for MacFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

// ---- device-wide state ----

/// What all queue handles of one device share. Not on the packet path: the transport is
/// locked for link status, teardown, direct-notify discovery and (only without direct notify)
/// kicks.
struct Device<T: Transport> {
    transport: spin::Mutex<T>,
    name: heapless::String<32>,
    mac: [u8; 6],
    features: VirtioNetFeatures,
    /// Feature bits the device offered.
    offered: u64,
    /// Queue pairs in use.
    queue_pairs: u16,
    /// `max_virtqueue_pairs` (1 without MQ).
    max_queue_pairs: u16,
    /// Entries per data queue.
    queue_size: u16,
    /// The device's maximum for queue 0.
    device_max_queue_size: u32,
    /// Ring memory and MMIO mapping.
    allocator: &'static dyn DmaAllocator,
    /// Kept for later slow-path commands; freed after the device is reset.
    _ctrl: spin::Mutex<Option<CtrlQueue>>,
    /// Set once the device has been reset by a dropped handle.
    stopped: AtomicBool,
}

impl<T: Transport> Device<T> {
    /// Resets the device, once: before any handle's rings are freed.
    fn stop(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            reset(&mut *self.transport.lock());
        }
    }

    /// See [`Nic::link_up`].
    fn link_up(&self) -> bool {
        let transport = self.transport.lock();
        if transport
            .get_status()
            .contains(DeviceStatus::DEVICE_NEEDS_RESET)
        {
            warn!("{}: device needs reset", self.name);
            return false;
        }
        if !self.features.contains(VirtioNetFeatures::STATUS) {
            return true;
        }
        transport
            .read_config_space::<u16>(CONFIG_STATUS)
            .map(|s| s & STATUS_LINK_UP != 0)
            .unwrap_or(false)
    }

    /// Notify registers of pair `pair`'s two virtqueues, or None.
    ///
    /// # Safety
    ///
    /// As [`VirtioNetPort::use_direct_notify`].
    unsafe fn find_notify<C: ConfigurationAccess>(
        &self,
        cam: &C,
        function: DeviceFunction,
        pair: u16,
    ) -> Option<[NotifyRegister; 2]> {
        // The lookup writes the device's queue_select register: hold the transport's lock so
        // no transport call on another core interleaves.
        let _transport = self.transport.lock();
        // SAFETY: forwarded from our caller.
        unsafe {
            pci_notify::notify_addresses(cam, function, self.allocator, [2 * pair, 2 * pair + 1])
        }
        .map(|[rx, tx]| [NotifyRegister(rx), NotifyRegister(tx)])
    }
}

impl<T: Transport> Drop for Device<T> {
    fn drop(&mut self) {
        // Before the control ring (a field) is freed; normally a queue handle did it already.
        self.stop();
    }
}

/// A queue's notify register in device MMIO.
#[derive(Clone, Copy, Debug)]
struct NotifyRegister(NonNull<u16>);

// SAFETY: a device register address, valid from any CPU (MMIO is not per-CPU); writing it is
// a kick, which the owning queue handle alone does.
unsafe impl Send for NotifyRegister {}

/// One queue pair's driver state (used by one core only), with the device it belongs to.
struct QueueCore<T: Transport> {
    dev: Arc<Device<T>>,
    pair: u16,
    rx: SplitRing,
    tx: SplitRing,
    /// Notify registers of the pair's rx and tx virtqueues when direct notify is on; else
    /// kicks go through `Transport::notify` (under the device lock).
    notify: Option<[NotifyRegister; 2]>,
    stats: NicStats,
}

impl<T: Transport> QueueCore<T> {
    /// Kicks the pair's receive (`tx == false`) or transmit virtqueue.
    #[inline]
    fn kick(&mut self, tx: bool) {
        let queue = 2 * self.pair + u16::from(tx);
        match self.notify {
            // SAFETY: `use_direct_notify`'s caller vouched that these are this device's notify
            // registers (aligned, mapped MMIO); a u16 write of the queue index is a kick.
            Some(registers) => unsafe {
                core::ptr::write_volatile(registers[usize::from(tx)].0.as_ptr(), queue.to_le())
            },
            None => self.dev.transport.lock().notify(queue),
        }
        self.stats.notifications += 1;
    }

    fn reclaim_tx(&mut self) -> usize {
        let mut reclaimed = 0;
        // Bounded: a device claiming more completions than the ring holds is lying.
        for _ in 0..self.tx.size() {
            match self.tx.pop_used() {
                None => break,
                Some(Ok(Used { buf, .. })) => {
                    drop(buf);
                    reclaimed += 1;
                }
                Some(Err(_)) => self.stats.tx_errors += 1,
            }
        }
        reclaimed
    }

    /// # Safety
    ///
    /// As [`VirtioNetPort::use_direct_notify`].
    unsafe fn use_direct_notify<C: ConfigurationAccess>(
        &mut self,
        cam: &C,
        function: DeviceFunction,
    ) -> bool {
        // SAFETY: forwarded from our caller.
        match unsafe { self.dev.find_notify(cam, function, self.pair) } {
            Some(registers) => {
                self.notify = Some(registers);
                true
            }
            None => false,
        }
    }
}

impl<T: Transport> Drop for QueueCore<T> {
    fn drop(&mut self) {
        // Stop the device before this pair's rings and posted buffers are freed (the fields
        // drop after this). Stops the other pairs too: they share the device.
        self.dev.stop();
    }
}

// ---- bring-up ----

/// A device brought up: its shared state and its pairs' empty rings.
struct BroughtUp<T: Transport> {
    dev: Arc<Device<T>>,
    queues: Vec<QueueCore<T>>,
}

/// Initialises the device behind `transport` (virtio 1.x 3.1.1) with up to
/// `options.queue_pairs` pairs; the rings are set up and empty. Falls back to one pair when
/// the device rejects the queue-pair command.
fn bring_up<T: Transport>(
    mut transport: T,
    allocator: &'static dyn DmaAllocator,
    label: &str,
    options: VirtioNetOptions,
) -> Result<BroughtUp<T>, VirtioNetError> {
    let device_type = transport.device_type();
    if device_type != DeviceType::Network {
        return Err(VirtioNetError::NotNetworkDevice(device_type));
    }
    let requested = options.queue_pairs.max(1);
    let attempt = match try_bring_up(
        &mut transport,
        allocator,
        label,
        options.queue_size,
        requested,
    ) {
        Err(VirtioNetError::Control(e)) => {
            warn!("virtio-net {label}: queue-pair command failed ({e:?}); using one queue pair");
            try_bring_up(&mut transport, allocator, label, options.queue_size, 1)
        }
        other => other,
    };
    let Attempt {
        features,
        offered,
        max_pairs,
        rings,
        ctrl,
        mac,
    } = attempt?;

    let mut name = heapless::String::new();
    let _ = write!(name, "virtio-net {label}");
    let queue_pairs = rings.len() as u16;
    if features.contains(VirtioNetFeatures::MQ)
        || offered & VirtioNetFeatures::MQ.bits() != 0
        || requested > 1
    {
        let plural = if queue_pairs == 1 { "" } else { "s" };
        info!(
            "{name}: {queue_pairs} queue pair{plural} (device max {max_pairs}, requested \
             {requested})"
        );
    }
    let queue_size = rings.first().map_or(0, |(rx, _)| rx.size());
    let device_max_queue_size = transport.max_queue_size(0);
    let dev = Arc::new(Device {
        transport: spin::Mutex::new(transport),
        name,
        mac,
        features,
        offered,
        queue_pairs,
        max_queue_pairs: max_pairs,
        queue_size,
        device_max_queue_size,
        allocator,
        _ctrl: spin::Mutex::new(ctrl),
        stopped: AtomicBool::new(false),
    });
    let queues = rings
        .into_iter()
        .enumerate()
        .map(|(pair, (rx, tx))| QueueCore {
            dev: dev.clone(),
            pair: pair as u16,
            rx,
            tx,
            notify: None,
            stats: NicStats::default(),
        })
        .collect();
    Ok(BroughtUp { dev, queues })
}

/// What one bring-up attempt produced.
struct Attempt {
    features: VirtioNetFeatures,
    offered: u64,
    max_pairs: u16,
    rings: Vec<(SplitRing, SplitRing)>,
    ctrl: Option<CtrlQueue>,
    mac: [u8; 6],
}

/// Reset, negotiate, set up `want_pairs` pairs (or fewer), DRIVER_OK, and the queue-pair
/// command when there is more than one pair. On error the device is reset (or FAILED) before
/// any ring is freed.
fn try_bring_up<T: Transport>(
    transport: &mut T,
    allocator: &'static dyn DmaAllocator,
    label: &str,
    queue_size: u16,
    want_pairs: u16,
) -> Result<Attempt, VirtioNetError> {
    // 3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (and check it stuck).
    reset(transport);
    transport.set_status(DeviceStatus::ACKNOWLEDGE);
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = transport.read_device_features();
    let offered_flags = VirtioNetFeatures::from_bits_truncate(offered);
    if !offered_flags.contains(VirtioNetFeatures::VERSION_1) {
        transport.set_status(DeviceStatus::FAILED);
        return Err(VirtioNetError::NotVersion1(offered));
    }
    let mut features = offered_flags & BASE_FEATURES;
    let mq = VirtioNetFeatures::MQ | VirtioNetFeatures::CTRL_VQ;
    if want_pairs > 1 && offered_flags.contains(mq) {
        features |= mq;
    }
    transport.write_driver_features(features.bits());
    let negotiating = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
    transport.set_status(negotiating);
    if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
        transport.set_status(DeviceStatus::FAILED);
        return Err(VirtioNetError::FeaturesRejected(features.bits()));
    }

    // max_virtqueue_pairs exists when MQ was offered; read it even if we did not negotiate
    // MQ, to report it.
    let max_pairs = if offered_flags.contains(VirtioNetFeatures::MQ) {
        transport
            .read_config_space::<u16>(CONFIG_MAX_VIRTQUEUE_PAIRS)
            .ok()
            .filter(|&n| (1..=MAX_QUEUE_PAIRS).contains(&n))
            .unwrap_or_else(|| {
                warn!("virtio-net {label}: bad max_virtqueue_pairs; using one queue pair");
                1
            })
    } else {
        1
    };
    let pairs = if features.contains(VirtioNetFeatures::MQ) {
        want_pairs.min(max_pairs)
    } else {
        1
    };

    let event_idx = features.contains(VirtioNetFeatures::RING_EVENT_IDX);
    let mut rings: Vec<(SplitRing, SplitRing)> = Vec::with_capacity(pairs.into());
    let mut ctrl = None;
    let setup = |transport: &mut T, queue: u16| -> Result<SplitRing, VirtioNetError> {
        let max = transport.max_queue_size(queue);
        if max == 0 || transport.queue_used(queue) {
            return Err(VirtioNetError::QueueUnavailable(queue));
        }
        let size = clamp_queue_size(queue_size, max);
        let ring =
            SplitRing::new(allocator, size, event_idx).ok_or(VirtioNetError::OutOfDmaMemory)?;
        let (desc, driver, device) = ring.addresses();
        transport.queue_set(queue, size.into(), desc, driver, device);
        Ok(ring)
    };
    let result = (|| {
        for pair in 0..pairs {
            let rx = setup(transport, 2 * pair)?;
            // Pushed before tx is set up so a failure below still resets before freeing rx.
            let tx = match setup(transport, 2 * pair + 1) {
                Ok(tx) => tx,
                Err(e) => {
                    reset(transport);
                    drop(rx);
                    return Err(e);
                }
            };
            rings.push((rx, tx));
        }
        if pairs > 1 {
            let index = 2 * max_pairs;
            let max = transport.max_queue_size(index);
            if max < 2 || transport.queue_used(index) {
                return Err(VirtioNetError::QueueUnavailable(index));
            }
            let size = clamp_queue_size(ctrl::CTRL_QUEUE_SIZE, max);
            let mut q =
                CtrlQueue::new(allocator, index, size).ok_or(VirtioNetError::OutOfDmaMemory)?;
            if event_idx {
                q.set_event_idx();
            }
            let (desc, driver, device) = q.addresses();
            transport.queue_set(index, q.size().into(), desc, driver, device);
            ctrl = Some(q);
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Enabled queues point at our rings: reset the device before their memory is freed.
        reset(transport);
        transport.set_status(DeviceStatus::FAILED);
        drop(rings);
        drop(ctrl);
        return Err(e);
    }

    let mac = if features.contains(VirtioNetFeatures::MAC) {
        read_mac(transport)
    } else {
        None
    };
    let mac = mac.unwrap_or_else(|| {
        // Locally administered; only the management NIC cares about its own address.
        warn!("virtio-net {label}: no MAC in config space, using 02:00:00:00:00:01");
        [0x02, 0, 0, 0, 0, 1]
    });

    transport.set_status(negotiating | DeviceStatus::DRIVER_OK);

    if let Some(q) = ctrl.as_mut() {
        // 5.1.6.5.5: after DRIVER_OK, before the device uses more than the first pair.
        let sent = q.command(
            ctrl::CLASS_MQ,
            ctrl::MQ_VQ_PAIRS_SET,
            &pairs.to_le_bytes(),
            |index| transport.notify(index),
            CTRL_SPINS,
        );
        if let Err(e) = sent {
            reset(transport);
            drop(rings);
            drop(ctrl);
            return Err(VirtioNetError::Control(e));
        }
    }
    Ok(Attempt {
        features,
        offered,
        max_pairs,
        rings,
        ctrl,
        mac,
    })
}

/// The receive descriptor offset for `pool`'s buffers, or why they are too small.
fn rx_desc_offset(pool: &PacketPool) -> Result<usize, VirtioNetError> {
    let offset = pool.headroom() - VIRTIO_NET_HDR_LEN;
    let len = pool.buf_size() - offset;
    if len < MIN_RX_BUF {
        return Err(VirtioNetError::BuffersTooSmall {
            have: len,
            need: MIN_RX_BUF,
        });
    }
    Ok(offset)
}

/// Enables memory decoding and bus mastering (and disables INTx: we poll) at `function` and
/// builds virtio-drivers' `PciTransport` with [`DmaHal`]; the label is the function's address.
fn pci_transport<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    function: DeviceFunction,
) -> Result<(PciTransport, heapless::String<16>), VirtioNetError> {
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
    );
    let transport = PciTransport::new::<DmaHal, C>(root, function).map_err(VirtioNetError::Pci)?;
    let mut label = heapless::String::<16>::new();
    let _ = write!(label, "{function}");
    Ok((transport, label))
}

// ---- the port ----

/// One virtio-net device driven in poll mode: its queue pairs behind one [`Nic`] (receive and
/// transmit queue q = pair q; one pair unless [`VirtioNetOptions::queue_pairs`] asked for more).
///
/// Owns its transport, its rings and the buffers posted on them. Not `Send`: it lives on the
/// core that polls it, with that core's [`PacketPool`] (see the module doc for per-core
/// queues). Dropping it resets the device, then returns all posted buffers to their pools.
pub struct VirtioNetPort<T: Transport> {
    dev: Arc<Device<T>>,
    queues: Vec<VirtioNetQueue<T>>,
}

impl VirtioNetPort<PciTransport> {
    /// Brings up the virtio-net device at `function` with one queue pair: enables memory
    /// decoding and bus mastering (and disables INTx: we poll), builds virtio-drivers'
    /// `PciTransport` with [`DmaHal`], then [`new`](Self::new) with the function's address as
    /// the label.
    ///
    /// The BARs must already be assigned (firmware does it on QEMU; check after a scan).
    pub fn from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
        pool: Rc<PacketPool>,
    ) -> Result<Self, VirtioNetError> {
        Self::from_pci_with(root, function, pool, VirtioNetOptions::default())
    }

    /// [`from_pci`](Self::from_pci) with `options` (e.g. several queue pairs).
    pub fn from_pci_with<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
        pool: Rc<PacketPool>,
        options: VirtioNetOptions,
    ) -> Result<Self, VirtioNetError> {
        let (transport, label) = pci_transport(root, function)?;
        Self::with_options(transport, pool, &label, options)
    }

    /// [`unstarted`](Self::unstarted) for the device at `function` (set up as
    /// [`from_pci`](Self::from_pci) does).
    pub fn unstarted_from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
        allocator: &'static dyn DmaAllocator,
        options: VirtioNetOptions,
    ) -> Result<Vec<UnstartedQueue<PciTransport>>, VirtioNetError> {
        let (transport, label) = pci_transport(root, function)?;
        Self::unstarted(transport, allocator, &label, options)
    }
}

impl<T: Transport> VirtioNetPort<T> {
    /// Initialises the device behind `transport` (virtio 1.x 3.1.1) with one queue pair of
    /// [`DEFAULT_QUEUE_SIZE`]-entry queues, posts receive buffers from `pool`, and logs one line
    /// (`virtio-net <label>: mac ..., queue size ..., features ...`). `label` names the port in
    /// logs (the PCI address); [`Nic::name`] is `"virtio-net <label>"`.
    ///
    /// Ring memory comes from `pool.allocator()`. The pool should hold at least the receive
    /// queue size plus what the transmit queue and batches keep; with fewer, the receive ring
    /// is only partly filled (counted in `rx_no_buffer`).
    pub fn new(transport: T, pool: Rc<PacketPool>, label: &str) -> Result<Self, VirtioNetError> {
        Self::with_options(transport, pool, label, VirtioNetOptions::default())
    }

    /// Like [`new`](Self::new) with queues of `queue_size` entries, capped to the device's
    /// maximum and rounded down to a power of two (at most 4096).
    pub fn with_queue_size(
        transport: T,
        pool: Rc<PacketPool>,
        label: &str,
        queue_size: u16,
    ) -> Result<Self, VirtioNetError> {
        let options = VirtioNetOptions {
            queue_size,
            ..VirtioNetOptions::default()
        };
        Self::with_options(transport, pool, label, options)
    }

    /// Like [`new`](Self::new) with `options`: with `queue_pairs > 1`, up to that many pairs
    /// (see the module doc), each receive ring filled from `pool`, and one more log line
    /// (`virtio-net <label>: N queue pairs (device max M, requested R)`), also printed when
    /// the device offers MQ.
    pub fn with_options(
        transport: T,
        pool: Rc<PacketPool>,
        label: &str,
        options: VirtioNetOptions,
    ) -> Result<Self, VirtioNetError> {
        rx_desc_offset(&pool)?;
        let BroughtUp { dev, queues } = bring_up(transport, pool.allocator(), label, options)?;
        let queues = queues
            .into_iter()
            .map(|core| UnstartedQueue(core).start_unchecked(pool.clone()))
            .collect();
        let mut port = VirtioNetPort { dev, queues };
        let link = if port.link_up() { "up" } else { "down" };
        let dev = &port.dev;
        info!(
            "{}: mac {}, queue size {} (device max {}), {} rx buffers posted, features {} \
             (device offers {:#x}), link {}",
            dev.name,
            MacFmt(dev.mac),
            dev.queue_size,
            dev.device_max_queue_size,
            port.rx_posted(),
            FeaturesFmt(dev.features),
            dev.offered,
            link,
        );
        Ok(port)
    }

    /// Brings the device up (as [`with_options`](Self::with_options)) but posts no receive
    /// buffers: returns one [`UnstartedQueue`] per queue pair, in pair order, which are `Send`,
    /// to be [`start`](UnstartedQueue::start)ed on the cores that will poll them. Ring memory
    /// comes from `allocator`. Logs the port's line (without buffer count) like `new`.
    pub fn unstarted(
        transport: T,
        allocator: &'static dyn DmaAllocator,
        label: &str,
        options: VirtioNetOptions,
    ) -> Result<Vec<UnstartedQueue<T>>, VirtioNetError> {
        let BroughtUp { dev, queues } = bring_up(transport, allocator, label, options)?;
        let link = if dev.link_up() { "up" } else { "down" };
        info!(
            "{}: mac {}, queue size {} (device max {}), features {} (device offers {:#x}), \
             link {}, {} queue pairs not started",
            dev.name,
            MacFmt(dev.mac),
            dev.queue_size,
            dev.device_max_queue_size,
            FeaturesFmt(dev.features),
            dev.offered,
            link,
            dev.queue_pairs,
        );
        Ok(queues.into_iter().map(UnstartedQueue).collect())
    }

    /// The port's queue pairs as separate handles (pair order), each a [`Nic`] with one queue.
    /// They keep the port's pool, buffers and direct-notify registers; not `Send` (see
    /// [`unstarted`](Self::unstarted) for handles that can move to other cores).
    pub fn split_queues(self) -> Vec<VirtioNetQueue<T>> {
        self.queues
    }

    /// The negotiated features.
    pub fn features(&self) -> VirtioNetFeatures {
        self.dev.features
    }

    /// Queue pairs in use (= `num_rx_queues()` = `num_tx_queues()`).
    pub fn queue_pairs(&self) -> u16 {
        self.dev.queue_pairs
    }

    /// The device's `max_virtqueue_pairs` (1 if it lacks MQ).
    pub fn max_queue_pairs(&self) -> u16 {
        self.dev.max_queue_pairs
    }

    /// Entries in each queue.
    pub fn queue_size(&self) -> u16 {
        self.dev.queue_size
    }

    /// Receive buffers currently posted to the device, all pairs.
    pub fn rx_posted(&self) -> usize {
        self.queues.iter().map(VirtioNetQueue::rx_posted).sum()
    }

    /// Transmit buffers the device has not returned yet, all pairs.
    pub fn tx_in_flight(&self) -> usize {
        self.queues.iter().map(VirtioNetQueue::tx_in_flight).sum()
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &Rc<PacketPool> {
        self.queues[0].pool()
    }

    /// One queue pair's handle (`None` beyond [`queue_pairs`](Self::queue_pairs)), e.g. for
    /// its own counters.
    pub fn queue(&self, pair: u16) -> Option<&VirtioNetQueue<T>> {
        self.queues.get(usize::from(pair))
    }

    /// Makes every kick a single MMIO write to the queue's notify register, found from the
    /// function's virtio PCI capabilities, instead of `Transport::notify` (virtio-drivers 0.13's
    /// `PciTransport::notify` also writes `queue_select` and reads `queue_notify_off` first:
    /// three VM exits per kick instead of one). Each queue gets its own register. Returns
    /// false, changing nothing, if the capabilities do not describe a usable notify region.
    ///
    /// `cam` is only read (besides this device's own `queue_select` register), so a second
    /// handle on the configuration mechanism works (e.g. another `PortIoCam`).
    ///
    /// # Safety
    ///
    /// `cam` must read the configuration space of `function`, which must be the PCI function
    /// this port's transport drives, with its BARs assigned and mapped as the pool's
    /// [`DmaAllocator::mmio_phys_to_virt`](crate::dma::DmaAllocator::mmio_phys_to_virt) says.
    pub unsafe fn use_direct_notify<C: ConfigurationAccess>(
        &mut self,
        cam: &C,
        function: DeviceFunction,
    ) -> bool {
        let mut found = Vec::with_capacity(self.queues.len());
        for q in &self.queues {
            // SAFETY: forwarded from our caller.
            match unsafe { self.dev.find_notify(cam, function, q.core.pair) } {
                Some(registers) => found.push(registers),
                None => {
                    warn!(
                        "{}: no usable notify capability; kicks go through the transport",
                        self.dev.name
                    );
                    return false;
                }
            }
        }
        info!(
            "{}: direct notify at {:#x} (rx), {:#x} (tx){}",
            self.dev.name,
            found[0][0].0.as_ptr() as usize,
            found[0][1].0.as_ptr() as usize,
            if found.len() > 1 {
                " and per queue for the other pairs"
            } else {
                ""
            }
        );
        for (q, registers) in self.queues.iter_mut().zip(found) {
            q.core.notify = Some(registers);
        }
        true
    }
}

impl<T: Transport> Nic for VirtioNetPort<T> {
    fn name(&self) -> &str {
        &self.dev.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.dev.mac
    }

    /// Down if the device flagged DEVICE_NEEDS_RESET (it stopped working; logged). Otherwise
    /// the config space status when STATUS was negotiated (a failed read says down); without
    /// it, always up.
    fn link_up(&mut self) -> bool {
        self.dev.link_up()
    }

    fn num_rx_queues(&self) -> u16 {
        self.dev.queue_pairs
    }

    fn num_tx_queues(&self) -> u16 {
        self.dev.queue_pairs
    }

    #[inline]
    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        match self.queues.get_mut(usize::from(queue)) {
            Some(q) => q.rx(batch),
            None => 0,
        }
    }

    #[inline]
    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        match self.queues.get_mut(usize::from(queue)) {
            Some(q) => q.tx(batch),
            None => 0,
        }
    }

    fn tx_reclaim(&mut self, queue: u16) -> usize {
        match self.queues.get_mut(usize::from(queue)) {
            Some(q) => q.core.reclaim_tx(),
            None => 0,
        }
    }

    /// The sum of the pairs' counters.
    fn stats(&self) -> NicStats {
        let mut s = NicStats::default();
        for q in &self.queues {
            let t = q.core.stats;
            s.rx_packets += t.rx_packets;
            s.rx_bytes += t.rx_bytes;
            s.tx_packets += t.tx_packets;
            s.tx_bytes += t.tx_bytes;
            s.rx_no_buffer += t.rx_no_buffer;
            s.rx_errors += t.rx_errors;
            s.tx_errors += t.tx_errors;
            s.tx_full += t.tx_full;
            s.notifications += t.notifications;
        }
        s
    }
}

impl<T: Transport> fmt::Debug for VirtioNetPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioNetPort")
            .field("name", &self.dev.name.as_str())
            .field("mac", &format_args!("{}", MacFmt(self.dev.mac)))
            .field("features", &self.dev.features)
            .field("queue_pairs", &self.dev.queue_pairs)
            .field("queue_size", &self.dev.queue_size)
            .field("stats", &self.stats())
            .finish()
    }
}

// ---- per-queue handles ----

/// A queue pair set up on its device with empty rings, not yet polled: `Send` (when the
/// transport is), so it can move to the core that will own it. [`start`](Self::start) it
/// there. Dropping it resets the device (all pairs stop).
pub struct UnstartedQueue<T: Transport>(QueueCore<T>);

// SAFETY: the only non-`Send` parts of a `QueueCore` are its rings' buffer slots (`PacketBuf`s
// hold an `Rc` to their pool), and an unstarted queue's rings hold no buffer: `bring_up`
// creates them empty and nothing pushes onto them before `start` consumes `self`. The notify
// registers are `Send`; the shared `Device<T>` is `Send + Sync` when `T: Send` (its transport
// is behind a lock, the rest is immutable or atomic).
unsafe impl<T: Transport + Send> Send for UnstartedQueue<T> {}

impl<T: Transport> UnstartedQueue<T> {
    /// Its queue pair number (virtqueues 2 × pair and 2 × pair + 1).
    pub fn pair(&self) -> u16 {
        self.0.pair
    }

    /// Queue pairs of the device in use (all its `UnstartedQueue`s).
    pub fn queue_pairs(&self) -> u16 {
        self.0.dev.queue_pairs
    }

    /// The port's name (`virtio-net <label>`).
    pub fn port_name(&self) -> &str {
        &self.0.dev.name
    }

    /// The port's MAC address.
    pub fn mac_address(&self) -> [u8; 6] {
        self.0.dev.mac
    }

    /// A handle on the port's device for another core (the management core's view of a port
    /// whose queues the datapath cores poll): name, MAC and link, no queue.
    pub fn probe(&self) -> PortProbe<T> {
        PortProbe(self.0.dev.clone())
    }

    /// Direct notify for this pair (see [`VirtioNetPort::use_direct_notify`]); call it on
    /// every queue that another core will poll, so kicks take no lock.
    ///
    /// # Safety
    ///
    /// As [`VirtioNetPort::use_direct_notify`], with the allocator given at bring-up.
    pub unsafe fn use_direct_notify<C: ConfigurationAccess>(
        &mut self,
        cam: &C,
        function: DeviceFunction,
    ) -> bool {
        // SAFETY: forwarded from our caller.
        unsafe { self.0.use_direct_notify(cam, function) }
    }

    /// Starts polling on this core: posts receive buffers from `pool` (this core's), notifying
    /// the device. Fails, dropping the queue (which resets the device), if the pool's buffers
    /// are too small.
    pub fn start(self, pool: Rc<PacketPool>) -> Result<VirtioNetQueue<T>, VirtioNetError> {
        rx_desc_offset(&pool)?;
        Ok(self.start_unchecked(pool))
    }

    /// `start` for a pool already checked with `rx_desc_offset`.
    fn start_unchecked(self, pool: Rc<PacketPool>) -> VirtioNetQueue<T> {
        let UnstartedQueue(core) = self;
        let rx_desc_offset = rx_desc_offset(&pool).unwrap_or(0);
        let mut name = heapless::String::new();
        let _ = write!(name, "{} q{}", core.dev.name, core.pair);
        let mut q = VirtioNetQueue {
            core,
            name,
            pool,
            rx_desc_offset,
        };
        q.refill_rx();
        let (posted, size) = (q.rx_posted(), q.queue_size());
        if posted < usize::from(size) {
            // The device drops what arrives on this queue once these are used up; with several
            // pairs, size the pool for all their rings.
            warn!(
                "{}: only {posted} of {size} receive buffers posted: the pool is too small",
                q.name
            );
        }
        q
    }
}

impl<T: Transport> fmt::Debug for UnstartedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnstartedQueue")
            .field("port", &self.0.dev.name.as_str())
            .field("pair", &self.0.pair)
            .finish()
    }
}

/// An unstarted queue pair of a virtio-net PCI function (what the kernel moves to a core).
pub type UnstartedPciQueue = UnstartedQueue<PciTransport>;

/// The device of a port without its queues (see [`UnstartedQueue::probe`]): `Send` and `Sync`
/// when the transport is `Send`; reading the link takes the device's transport lock (the
/// slow path only).
pub struct PortProbe<T: Transport>(Arc<Device<T>>);

impl<T: Transport> PortProbe<T> {
    /// The port's name (`virtio-net <label>`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The port's MAC address.
    pub fn mac_address(&self) -> [u8; 6] {
        self.0.mac
    }

    /// The link as [`Nic::link_up`] reports it.
    pub fn link_up(&self) -> bool {
        self.0.link_up()
    }

    /// Queue pairs in use.
    pub fn queue_pairs(&self) -> u16 {
        self.0.queue_pairs
    }
}

/// One queue pair of a virtio-net device as a [`Nic`] with one receive and one transmit queue
/// (queue 0 = this pair). Owns the pair's rings, their buffers and counters; poll it from one
/// core. [`Nic::name`] is `"virtio-net <label> q<pair>"`; [`Nic::stats`] counts this pair only.
/// Dropping it resets the device (all pairs stop).
pub struct VirtioNetQueue<T: Transport> {
    core: QueueCore<T>,
    name: heapless::String<40>,
    pool: Rc<PacketPool>,
    /// Offset of a receive descriptor in its buffer: the pool's headroom minus the header.
    rx_desc_offset: usize,
}

impl<T: Transport> VirtioNetQueue<T> {
    /// Its queue pair number.
    pub fn pair(&self) -> u16 {
        self.core.pair
    }

    /// Queue pairs of the device in use.
    pub fn queue_pairs(&self) -> u16 {
        self.core.dev.queue_pairs
    }

    /// The negotiated features.
    pub fn features(&self) -> VirtioNetFeatures {
        self.core.dev.features
    }

    /// Entries in each of the pair's queues.
    pub fn queue_size(&self) -> u16 {
        self.core.rx.size()
    }

    /// Receive buffers currently posted to the device.
    pub fn rx_posted(&self) -> usize {
        self.core.rx.in_flight()
    }

    /// Transmit buffers the device has not returned yet.
    pub fn tx_in_flight(&self) -> usize {
        self.core.tx.in_flight()
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &Rc<PacketPool> {
        &self.pool
    }

    /// Direct notify for this pair (see [`VirtioNetPort::use_direct_notify`]).
    ///
    /// # Safety
    ///
    /// As [`VirtioNetPort::use_direct_notify`].
    pub unsafe fn use_direct_notify<C: ConfigurationAccess>(
        &mut self,
        cam: &C,
        function: DeviceFunction,
    ) -> bool {
        // SAFETY: forwarded from our caller.
        unsafe { self.core.use_direct_notify(cam, function) }
    }

    /// Posts fresh buffers on every free receive descriptor, publishes once, and notifies the
    /// device if it is waiting for buffers. Stops (and counts `rx_no_buffer`) when the pool is
    /// empty.
    fn refill_rx(&mut self) {
        let offset = self.rx_desc_offset;
        while self.core.rx.free_descs() > 0 {
            let Some(buf) = self.pool.alloc() else {
                self.core.stats.rx_no_buffer += 1;
                break;
            };
            let addr = buf.buf_phys() + offset as u64;
            let len = (buf.capacity() - offset) as u32;
            // Cannot fail: a descriptor is free.
            let _ = self.core.rx.push(buf, addr, len, true);
        }
        if self.core.rx.publish() {
            self.core.kick(false);
        }
    }

    /// [`Nic::rx_burst`] on this pair.
    #[inline]
    fn rx(&mut self, batch: &mut PacketBatch) -> usize {
        let frame_start = self.rx_desc_offset + VIRTIO_NET_HDR_LEN;
        let core = &mut self.core;
        let mut received = 0;
        // Bounded by the ring size so a device flooding bad elements cannot hold us here.
        let mut budget = core.rx.size();
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let Some(used) = core.rx.pop_used() else {
                break;
            };
            let Ok(Used {
                mut buf,
                written,
                desc_len,
            }) = used
            else {
                core.stats.rx_errors += 1;
                continue;
            };
            let written = written as usize;
            if written > desc_len as usize || written < VIRTIO_NET_HDR_LEN + MIN_RX_FRAME {
                // Dropping `buf` returns it to the pool; the refill below reposts it.
                core.stats.rx_errors += 1;
                continue;
            }
            let frame_len = written - VIRTIO_NET_HDR_LEN;
            if !buf.set_bounds(frame_start, frame_len) {
                core.stats.rx_errors += 1;
                continue;
            }
            core.stats.rx_packets += 1;
            core.stats.rx_bytes += frame_len as u64;
            // Cannot fail: the batch is not full.
            let _ = batch.push(buf);
            received += 1;
        }
        if self.core.rx.free_descs() > 0 {
            self.refill_rx();
        }
        received
    }

    /// [`Nic::tx_burst`] on this pair.
    #[inline]
    fn tx(&mut self, batch: &mut PacketBatch) -> usize {
        let core = &mut self.core;
        core.reclaim_tx();
        if batch.is_empty() {
            return 0;
        }
        // Take the front packets that fit: every valid one needs a descriptor, invalid
        // (empty) ones are dropped without one.
        let mut free = core.tx.free_descs();
        let mut take = 0;
        for buf in batch.iter() {
            if !buf.is_empty() {
                if free == 0 {
                    break;
                }
                free -= 1;
            }
            take += 1;
        }
        let mut sent = 0;
        for mut buf in batch.drain(..take) {
            let len = buf.len();
            if len == 0 {
                core.stats.tx_errors += 1;
                continue;
            }
            // The frame starts at >= DRIVER_RESERVE >= 12: the header fits in front of it.
            let hdr_start = buf.start() - VIRTIO_NET_HDR_LEN;
            buf.raw_mut()[hdr_start..hdr_start + VIRTIO_NET_HDR_LEN].fill(0);
            let addr = buf.buf_phys() + hdr_start as u64;
            let desc_len = (len + VIRTIO_NET_HDR_LEN) as u32;
            // Cannot fail: a descriptor was counted for it above.
            if core.tx.push(buf, addr, desc_len, false).is_ok() {
                sent += 1;
                core.stats.tx_packets += 1;
                core.stats.tx_bytes += len as u64;
            }
        }
        core.stats.tx_full += batch.len() as u64;
        if core.tx.publish() {
            core.kick(true);
        }
        sent
    }
}

impl<T: Transport> Nic for VirtioNetQueue<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.core.dev.mac
    }

    /// The port's link (see [`VirtioNetPort`]'s `link_up`).
    fn link_up(&mut self) -> bool {
        self.core.dev.link_up()
    }

    fn num_rx_queues(&self) -> u16 {
        1
    }

    fn num_tx_queues(&self) -> u16 {
        1
    }

    #[inline]
    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        self.rx(batch)
    }

    #[inline]
    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        self.tx(batch)
    }

    fn tx_reclaim(&mut self, queue: u16) -> usize {
        if queue != 0 {
            return 0;
        }
        self.core.reclaim_tx()
    }

    fn stats(&self) -> NicStats {
        self.core.stats
    }
}

impl<T: Transport> fmt::Debug for VirtioNetQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioNetQueue")
            .field("name", &self.name.as_str())
            .field("pair", &self.core.pair)
            .field("queue_size", &self.core.rx.size())
            .field("stats", &self.core.stats)
            .finish()
    }
}

/// Resets the device (status 0) and waits, boundedly, for the reset to complete (4.1.4.3.2).
fn reset<T: Transport>(transport: &mut T) {
    transport.set_status(DeviceStatus::empty());
    for _ in 0..1_000_000 {
        if transport.get_status().is_empty() {
            return;
        }
        core::hint::spin_loop();
    }
    warn!("virtio-net: device did not complete reset");
}

/// `requested` capped at `max` and at 4096, rounded down to a power of two (split rings).
fn clamp_queue_size(requested: u16, max: u32) -> u16 {
    let cap = max
        .min(ring::MAX_QUEUE_SIZE as u32)
        .min(requested.max(1) as u32);
    // cap >= 1 here (max != 0 is checked by the caller).
    let pow2 = 1u32 << (31 - cap.max(1).leading_zeros());
    pow2 as u16
}

/// The MAC from config space, read consistently (generation unchanged across the six bytes).
fn read_mac<T: Transport>(transport: &T) -> Option<[u8; 6]> {
    transport
        .read_consistent(|| {
            let mut mac = [0u8; 6];
            for (i, byte) in mac.iter_mut().enumerate() {
                *byte = transport.read_config_space::<u8>(CONFIG_MAC + i)?;
            }
            Ok(mac)
        })
        .ok()
}

#[cfg(test)]
mod tests;
