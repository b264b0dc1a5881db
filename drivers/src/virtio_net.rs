//! Poll-mode virtio-net (virtio 1.x, modern PCI): burst receive and transmit of pool buffers
//! with zero copies, one device notification per burst at most, and no interrupts.
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
//! # Design
//!
//! - Features: VERSION_1 (required: the 12-byte header and little-endian rings), MAC, STATUS,
//!   RING_EVENT_IDX. Nothing else: no mergeable buffers, no offloads, no control queue, one
//!   queue pair (receiveq 0, transmitq 1).
//! - Receive: each descriptor covers `[headroom - 12, end)` of a pool buffer, so the device
//!   writes its `virtio_net_hdr` into the buffer's headroom and the frame lands exactly at the
//!   pool's headroom. The ring is refilled in bulk after each burst, one publish, and the device
//!   is notified only when it asked (it ran out of buffers).
//! - Transmit: the driver writes a zeroed 12-byte header in the 12 bytes before the frame (the
//!   pool's [`DRIVER_RESERVE`] guarantees they exist) and posts one descriptor for header and
//!   frame. A buffer received on any port goes out unchanged: no copy.
//! - Interrupts are suppressed on both queues (we poll); completions are read from the used
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
//! up with `Transport::queue_set`; virtio-drivers still provides the PCI transport (capabilities,
//! common config, notify, config space) and [`DmaHal`] serves its other devices.

mod pci_notify;
mod ring;

use alloc::rc::Rc;
use core::fmt::{self, Write as _};
use core::ptr::NonNull;

use bitflags::bitflags;
use log::{info, warn};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::VirtioPciError;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use crate::dma::{DRIVER_RESERVE, DmaHal, PacketBatch, PacketPool};
use crate::nic::{Nic, NicStats};
use ring::{SplitRing, Used};

bitflags! {
    /// The feature bits this driver knows about (virtio 1.x 5.1.3 and 6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VirtioNetFeatures: u64 {
        /// The device has a MAC address in its config space.
        const MAC = 1 << 5;
        /// The config space has a link status field.
        const STATUS = 1 << 16;
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

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const STATUS_LINK_UP: u16 = 1;

// The transmit header goes in the reserve in front of every frame.
const _: () = assert!(DRIVER_RESERVE >= VIRTIO_NET_HDR_LEN);

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

/// One virtio-net device driven in poll mode: one receive and one transmit queue (queue 0).
///
/// Owns its transport, its two rings and the buffers posted on them. Not `Send`: it lives on
/// the core that polls it, with that core's [`PacketPool`]. Dropping it resets the device, then
/// returns all posted buffers to their pools.
pub struct VirtioNetPort<T: Transport> {
    transport: T,
    name: heapless::String<32>,
    mac: [u8; 6],
    features: VirtioNetFeatures,
    pool: Rc<PacketPool>,
    rx: SplitRing,
    tx: SplitRing,
    /// Offset of a receive descriptor in its buffer: the pool's headroom minus the header.
    rx_desc_offset: usize,
    /// Notify registers of queues 0 and 1 when [`use_direct_notify`](Self::use_direct_notify)
    /// found them; else kicks go through `Transport::notify`.
    direct_notify: Option<[NonNull<u16>; 2]>,
    stats: NicStats,
}

impl VirtioNetPort<PciTransport> {
    /// Brings up the virtio-net device at `function`: enables memory decoding and bus
    /// mastering (and disables INTx: we poll), builds virtio-drivers' `PciTransport` with
    /// [`DmaHal`], then [`new`](Self::new) with the function's address as the label.
    ///
    /// The BARs must already be assigned (firmware does it on QEMU; check after a scan).
    pub fn from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
        pool: Rc<PacketPool>,
    ) -> Result<Self, VirtioNetError> {
        let (_, command) = root.get_status_command(function);
        root.set_command(
            function,
            command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
        );
        let transport =
            PciTransport::new::<DmaHal, C>(root, function).map_err(VirtioNetError::Pci)?;
        let mut label = heapless::String::<16>::new();
        let _ = write!(label, "{function}");
        Self::new(transport, pool, &label)
    }
}

impl<T: Transport> VirtioNetPort<T> {
    /// Initialises the device behind `transport` (virtio 1.x 3.1.1) with
    /// [`DEFAULT_QUEUE_SIZE`]-entry queues, posts receive buffers from `pool`, and logs one line
    /// (`virtio-net <label>: mac ..., queue size ..., features ...`). `label` names the port in
    /// logs (the PCI address); [`Nic::name`] is `"virtio-net <label>"`.
    ///
    /// Ring memory comes from `pool.allocator()`. The pool should hold at least the receive
    /// queue size plus what the transmit queue and batches keep; with fewer, the receive ring
    /// is only partly filled (counted in `rx_no_buffer`).
    pub fn new(transport: T, pool: Rc<PacketPool>, label: &str) -> Result<Self, VirtioNetError> {
        Self::with_queue_size(transport, pool, label, DEFAULT_QUEUE_SIZE)
    }

    /// Like [`new`](Self::new) with queues of `queue_size` entries, capped to the device's
    /// maximum and rounded down to a power of two (at most 4096).
    pub fn with_queue_size(
        mut transport: T,
        pool: Rc<PacketPool>,
        label: &str,
        queue_size: u16,
    ) -> Result<Self, VirtioNetError> {
        let device_type = transport.device_type();
        if device_type != DeviceType::Network {
            return Err(VirtioNetError::NotNetworkDevice(device_type));
        }
        let rx_desc_offset = pool.headroom() - VIRTIO_NET_HDR_LEN;
        let rx_desc_len = pool.buf_size() - rx_desc_offset;
        if rx_desc_len < MIN_RX_BUF {
            return Err(VirtioNetError::BuffersTooSmall {
                have: rx_desc_len,
                need: MIN_RX_BUF,
            });
        }

        // 3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (and check it stuck).
        reset(&mut transport);
        transport.set_status(DeviceStatus::ACKNOWLEDGE);
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let offered = transport.read_device_features();
        let features = VirtioNetFeatures::from_bits_truncate(offered);
        if !features.contains(VirtioNetFeatures::VERSION_1) {
            transport.set_status(DeviceStatus::FAILED);
            return Err(VirtioNetError::NotVersion1(offered));
        }
        transport.write_driver_features(features.bits());
        let negotiating =
            DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
        transport.set_status(negotiating);
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            transport.set_status(DeviceStatus::FAILED);
            return Err(VirtioNetError::FeaturesRejected(features.bits()));
        }

        let event_idx = features.contains(VirtioNetFeatures::RING_EVENT_IDX);
        let setup = |transport: &mut T, queue: u16| -> Result<SplitRing, VirtioNetError> {
            let max = transport.max_queue_size(queue);
            if max == 0 || transport.queue_used(queue) {
                return Err(VirtioNetError::QueueUnavailable(queue));
            }
            let size = clamp_queue_size(queue_size, max);
            let ring = SplitRing::new(pool.allocator(), size, event_idx)
                .ok_or(VirtioNetError::OutOfDmaMemory)?;
            let (desc, driver, device) = ring.addresses();
            transport.queue_set(queue, size.into(), desc, driver, device);
            Ok(ring)
        };
        let rx = match setup(&mut transport, RX_QUEUE) {
            Ok(rx) => rx,
            Err(e) => {
                transport.set_status(DeviceStatus::FAILED);
                return Err(e);
            }
        };
        let tx = match setup(&mut transport, TX_QUEUE) {
            Ok(tx) => tx,
            Err(e) => {
                // The receive queue is enabled at our ring's address: reset the device before
                // the ring's memory is freed.
                reset(&mut transport);
                transport.set_status(DeviceStatus::FAILED);
                drop(rx);
                return Err(e);
            }
        };

        let mac = if features.contains(VirtioNetFeatures::MAC) {
            read_mac(&transport)
        } else {
            None
        };
        let mac = mac.unwrap_or_else(|| {
            // Locally administered; only the management NIC cares about its own address.
            warn!("virtio-net {label}: no MAC in config space, using 02:00:00:00:00:01");
            [0x02, 0, 0, 0, 0, 1]
        });

        transport.set_status(negotiating | DeviceStatus::DRIVER_OK);

        let mut name = heapless::String::new();
        let _ = write!(name, "virtio-net {label}");
        let mut port = VirtioNetPort {
            transport,
            name,
            mac,
            features,
            pool,
            rx,
            tx,
            rx_desc_offset,
            direct_notify: None,
            stats: NicStats::default(),
        };
        port.refill_rx();
        let link = if port.link_up() { "up" } else { "down" };
        let device_max = port.transport.max_queue_size(RX_QUEUE);
        info!(
            "{}: mac {}, queue size {} (device max {}), {} rx buffers posted, features {} \
             (device offers {:#x}), link {}",
            port.name,
            MacFmt(port.mac),
            port.rx.size(),
            device_max,
            port.rx.in_flight(),
            FeaturesFmt(port.features),
            offered,
            link,
        );
        Ok(port)
    }

    /// The negotiated features.
    pub fn features(&self) -> VirtioNetFeatures {
        self.features
    }

    /// Entries in each of the two queues.
    pub fn queue_size(&self) -> u16 {
        self.rx.size()
    }

    /// Receive buffers currently posted to the device.
    pub fn rx_posted(&self) -> usize {
        self.rx.in_flight()
    }

    /// Transmit buffers the device has not returned yet.
    pub fn tx_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// The pool receive buffers come from.
    pub fn pool(&self) -> &Rc<PacketPool> {
        &self.pool
    }

    /// Posts fresh buffers on every free receive descriptor, publishes once, and notifies the
    /// device if it is waiting for buffers. Stops (and counts `rx_no_buffer`) when the pool is
    /// empty.
    fn refill_rx(&mut self) {
        let offset = self.rx_desc_offset;
        while self.rx.free_descs() > 0 {
            let Some(buf) = self.pool.alloc() else {
                self.stats.rx_no_buffer += 1;
                break;
            };
            let addr = buf.buf_phys() + offset as u64;
            let len = (buf.capacity() - offset) as u32;
            // Cannot fail: a descriptor is free.
            let _ = self.rx.push(buf, addr, len, true);
        }
        if self.rx.publish() {
            self.kick(RX_QUEUE);
        }
    }

    /// Kicks (notifies) `queue`.
    #[inline]
    fn kick(&mut self, queue: u16) {
        match self.direct_notify {
            // SAFETY: `use_direct_notify`'s caller vouched that these are this device's notify
            // registers (aligned, mapped MMIO); a u16 write of the queue index is a kick.
            Some(registers) => unsafe {
                core::ptr::write_volatile(registers[usize::from(queue)].as_ptr(), queue.to_le())
            },
            None => self.transport.notify(queue),
        }
        self.stats.notifications += 1;
    }

    /// Makes every kick a single MMIO write to the queue's notify register, found from the
    /// function's virtio PCI capabilities, instead of `Transport::notify` (virtio-drivers 0.13's
    /// `PciTransport::notify` also writes `queue_select` and reads `queue_notify_off` first:
    /// three VM exits per kick instead of one). Returns false, changing nothing, if the
    /// capabilities do not describe a usable notify region.
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
        // SAFETY: forwarded from our caller.
        let found = unsafe {
            pci_notify::notify_addresses(cam, function, self.pool.allocator(), [RX_QUEUE, TX_QUEUE])
        };
        match found {
            Some(registers) => {
                info!(
                    "{}: direct notify at {:#x} (rx), {:#x} (tx)",
                    self.name,
                    registers[0].as_ptr() as usize,
                    registers[1].as_ptr() as usize
                );
                self.direct_notify = Some(registers);
                true
            }
            None => {
                warn!(
                    "{}: no usable notify capability; kicks go through the transport",
                    self.name
                );
                false
            }
        }
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

impl<T: Transport> Nic for VirtioNetPort<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    /// Down if the device flagged DEVICE_NEEDS_RESET (it stopped working; logged). Otherwise
    /// the config space status when STATUS was negotiated (a failed read says down); without
    /// it, always up.
    fn link_up(&mut self) -> bool {
        if self
            .transport
            .get_status()
            .contains(DeviceStatus::DEVICE_NEEDS_RESET)
        {
            warn!("{}: device needs reset", self.name);
            return false;
        }
        if !self.features.contains(VirtioNetFeatures::STATUS) {
            return true;
        }
        self.transport
            .read_config_space::<u16>(CONFIG_STATUS)
            .map(|s| s & STATUS_LINK_UP != 0)
            .unwrap_or(false)
    }

    fn num_rx_queues(&self) -> u16 {
        1
    }

    fn num_tx_queues(&self) -> u16 {
        1
    }

    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        let frame_start = self.rx_desc_offset + VIRTIO_NET_HDR_LEN;
        let mut received = 0;
        // Bounded by the ring size so a device flooding bad elements cannot hold us here.
        let mut budget = self.rx.size();
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let Some(used) = self.rx.pop_used() else {
                break;
            };
            let Ok(Used {
                mut buf,
                written,
                desc_len,
            }) = used
            else {
                self.stats.rx_errors += 1;
                continue;
            };
            let written = written as usize;
            if written > desc_len as usize || written < VIRTIO_NET_HDR_LEN + MIN_RX_FRAME {
                // Dropping `buf` returns it to the pool; the refill below reposts it.
                self.stats.rx_errors += 1;
                continue;
            }
            let frame_len = written - VIRTIO_NET_HDR_LEN;
            if !buf.set_bounds(frame_start, frame_len) {
                self.stats.rx_errors += 1;
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame_len as u64;
            // Cannot fail: the batch is not full.
            let _ = batch.push(buf);
            received += 1;
        }
        if self.rx.free_descs() > 0 {
            self.refill_rx();
        }
        received
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        self.reclaim_tx();
        if batch.is_empty() {
            return 0;
        }
        // Take the front packets that fit: every valid one needs a descriptor, invalid
        // (empty) ones are dropped without one.
        let mut free = self.tx.free_descs();
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
                self.stats.tx_errors += 1;
                continue;
            }
            // The frame starts at >= DRIVER_RESERVE >= 12: the header fits in front of it.
            let hdr_start = buf.start() - VIRTIO_NET_HDR_LEN;
            buf.raw_mut()[hdr_start..hdr_start + VIRTIO_NET_HDR_LEN].fill(0);
            let addr = buf.buf_phys() + hdr_start as u64;
            let desc_len = (len + VIRTIO_NET_HDR_LEN) as u32;
            // Cannot fail: a descriptor was counted for it above.
            if self.tx.push(buf, addr, desc_len, false).is_ok() {
                sent += 1;
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += len as u64;
            }
        }
        self.stats.tx_full += batch.len() as u64;
        if self.tx.publish() {
            self.kick(TX_QUEUE);
        }
        sent
    }

    fn tx_reclaim(&mut self, queue: u16) -> usize {
        if queue != 0 {
            return 0;
        }
        self.reclaim_tx()
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl<T: Transport> Drop for VirtioNetPort<T> {
    fn drop(&mut self) {
        // Stop the device before the rings and posted buffers are freed (fields drop after).
        reset(&mut self.transport);
    }
}

impl<T: Transport> fmt::Debug for VirtioNetPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioNetPort")
            .field("name", &self.name.as_str())
            .field("mac", &format_args!("{}", MacFmt(self.mac)))
            .field("features", &self.features)
            .field("queue_size", &self.rx.size())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests;
