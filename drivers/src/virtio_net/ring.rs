//! A split virtqueue (virtio 1.x, 2.7) that carries [`PacketBuf`]s: one descriptor per buffer,
//! no chains, no indirect tables. The ring owns each posted buffer until the device returns its
//! descriptor id in the used ring.
//!
//! Driver-side state (free descriptor ids, the buffer and length behind each id, our avail and
//! used indices) is kept in ordinary memory; only the three ring areas live in DMA memory, and
//! everything read back from them is validated: a used element with an id the driver does not
//! have in flight is reported as [`UsedError`], never trusted and never a panic.
//!
//! Notifications follow the spec's EVENT_IDX rules: one publish per burst, then
//! `vring_need_event` on the device's `avail_event` after a full fence. Used-buffer
//! notifications (interrupts) are suppressed: we poll.

use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicU16, Ordering, fence};

use crate::dma::{DmaAllocator, DmaRegion, PAGE_SIZE, PacketBuf};

/// Descriptor flag: the buffer continues in `next` (never set: we do not chain).
#[allow(dead_code)]
const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer (receive) instead of reading it (transmit).
pub(crate) const VIRTQ_DESC_F_WRITE: u16 = 2;
/// avail.flags: do not interrupt when consuming buffers (without EVENT_IDX).
const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// used.flags: do not notify when adding buffers (without EVENT_IDX).
const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Largest queue this driver sets up (the spec allows 32768; nothing gains from more here).
pub(crate) const MAX_QUEUE_SIZE: u16 = 4096;

const DESC_SIZE: usize = 16;
const USED_ELEM_SIZE: usize = 8;

/// Byte offsets of the three areas within the ring's DMA region, for `size` entries.
/// Each area starts on a 64-byte boundary (spec minimum: 16, 2 and 4), so the driver-written
/// avail ring and the device-written used ring never share a cache line.
pub(crate) fn ring_layout(size: u16) -> (usize, usize, usize) {
    let n = size as usize;
    let avail = (DESC_SIZE * n).next_multiple_of(64);
    // flags, idx, ring[n], used_event
    let used = (avail + 4 + 2 * n + 2).next_multiple_of(64);
    // flags, idx, ring[n], avail_event
    let total = used + 4 + USED_ELEM_SIZE * n + 2;
    (avail, used, total)
}

/// `vring_need_event` (virtio 1.x 2.7.10): has `new` just passed `event`, coming from `old`?
/// Wrap-safe in u16 arithmetic.
#[inline]
pub(crate) fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// What the device returned in a used element that the driver could not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UsedError {
    /// The id is beyond the descriptor table.
    IdOutOfRange(u32),
    /// The id is in range but no buffer of ours is in flight on it (a duplicate or made up).
    IdNotInFlight(u32),
}

/// A buffer the device has finished with.
pub(crate) struct Used {
    pub buf: PacketBuf,
    /// Bytes the device reports having written (receive), as read from the used ring.
    pub written: u32,
    /// Length of the descriptor we posted, to check `written` against.
    pub desc_len: u32,
}

#[derive(Default)]
struct Slot {
    buf: Option<PacketBuf>,
    len: u32,
}

/// One split virtqueue whose descriptors each carry one [`PacketBuf`].
pub(crate) struct SplitRing {
    allocator: &'static dyn DmaAllocator,
    mem: DmaRegion,
    size: u16,
    event_idx: bool,
    avail_off: usize,
    used_off: usize,

    /// Next avail index to write (our trusted copy of avail.idx plus unpublished entries).
    avail_idx: u16,
    /// avail.idx as last published to the device.
    published_idx: u16,
    /// Next used element to read.
    last_used: u16,
    /// used.idx as last read from the device.
    used_idx_seen: u16,
    /// `last_used` when `used_event` was last moved ahead (EVENT_IDX interrupt suppression).
    used_event_base: u16,

    free: Vec<u16>,
    /// By descriptor id: the buffer the device holds and the descriptor's length.
    slots: Vec<Slot>,
}

impl SplitRing {
    /// Allocates and zeroes a ring of `size` entries (a power of two, at most
    /// [`MAX_QUEUE_SIZE`]) from `allocator`. `None` if out of DMA memory or `size` is invalid.
    pub(crate) fn new(
        allocator: &'static dyn DmaAllocator,
        size: u16,
        event_idx: bool,
    ) -> Option<Self> {
        if !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return None;
        }
        let (avail_off, used_off, total) = ring_layout(size);
        let mem = allocator.alloc_contiguous(total.div_ceil(PAGE_SIZE))?;
        if mem.len < total || mem.virt % PAGE_SIZE != 0 {
            // SAFETY: fresh from this allocator, never shown to a device.
            unsafe { allocator.dealloc(mem) };
            return None;
        }
        // SAFETY: `mem` is `mem.len` bytes of memory we own; the allocator promises zeroes but
        // the ring's correctness depends on it (idx, flags, events all start at 0).
        unsafe { ptr::write_bytes(mem.virt as *mut u8, 0, mem.len) };
        let n = size as usize;
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, Slot::default);
        let mut ring = SplitRing {
            allocator,
            mem,
            size,
            event_idx,
            avail_off,
            used_off,
            avail_idx: 0,
            published_idx: 0,
            last_used: 0,
            used_idx_seen: 0,
            used_event_base: 0,
            // Pop order 0, 1, 2, ...: the device sees descriptors in table order at first.
            free: (0..size).rev().collect(),
            slots,
        };
        ring.suppress_used_notifications();
        Some(ring)
    }

    /// Number of entries (descriptors) in the ring.
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// Physical addresses of the descriptor table, driver area and device area, for
    /// `Transport::queue_set`.
    pub(crate) fn addresses(&self) -> (u64, u64, u64) {
        (
            self.mem.phys,
            self.mem.phys + self.avail_off as u64,
            self.mem.phys + self.used_off as u64,
        )
    }

    /// Descriptors not holding a buffer.
    #[inline]
    pub(crate) fn free_descs(&self) -> usize {
        self.free.len()
    }

    /// Buffers owned by the ring (posted, not yet returned).
    #[inline]
    pub(crate) fn in_flight(&self) -> usize {
        self.size as usize - self.free.len()
    }

    /// Places `buf` on the ring as one descriptor `[addr, addr + len)`, device-writable if
    /// `device_writes`. Not visible to the device until [`publish`](Self::publish).
    /// Gives the buffer back if no descriptor is free.
    #[inline]
    pub(crate) fn push(
        &mut self,
        buf: PacketBuf,
        addr: u64,
        len: u32,
        device_writes: bool,
    ) -> Result<(), PacketBuf> {
        let Some(id) = self.free.pop() else {
            return Err(buf);
        };
        let flags = if device_writes { VIRTQ_DESC_F_WRITE } else { 0 };
        self.write_desc(id, addr, len, flags);
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.buf.is_none(), "free descriptor {id} holds a buffer");
        slot.buf = Some(buf);
        slot.len = len;
        let avail_slot = self.avail_idx & (self.size - 1);
        self.write_avail_entry(avail_slot, id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Ok(())
    }

    /// Makes every pushed descriptor visible to the device (one index store for the batch).
    /// Returns whether the device asked to be notified of these buffers; the caller then
    /// notifies it. Returns false when nothing was pushed since the last publish.
    pub(crate) fn publish(&mut self) -> bool {
        let old = self.published_idx;
        let new = self.avail_idx;
        if old == new {
            return false;
        }
        // Descriptors and ring entries before the index (2.7.13: write barrier).
        fence(Ordering::Release);
        self.avail_idx_atomic().store(new, Ordering::Release);
        self.published_idx = new;
        // The index store must be visible before we read the device's suppression state,
        // else we race with a device going to sleep (2.7.13: full barrier; store->load).
        fence(Ordering::SeqCst);
        if self.event_idx {
            need_event(self.read_avail_event(), new, old)
        } else {
            self.read_used_flags() & VIRTQ_USED_F_NO_NOTIFY == 0
        }
    }

    /// Takes the next used element, if the device has returned one.
    ///
    /// `Some(Err(_))` means an element was consumed but named no buffer of ours: the caller
    /// counts it and goes on. The index advances either way, so a bad element is skipped.
    #[inline]
    pub(crate) fn pop_used(&mut self) -> Option<Result<Used, UsedError>> {
        if self.last_used == self.used_idx_seen {
            self.used_idx_seen = self.used_idx_atomic().load(Ordering::Acquire);
            if self.last_used == self.used_idx_seen {
                return None;
            }
        }
        let slot = self.last_used & (self.size - 1);
        let (id, written) = self.read_used_elem(slot);
        self.last_used = self.last_used.wrapping_add(1);
        self.maybe_move_used_event();
        if id >= self.size as u32 {
            return Some(Err(UsedError::IdOutOfRange(id)));
        }
        let slot = &mut self.slots[id as usize];
        let desc_len = slot.len;
        let Some(buf) = slot.buf.take() else {
            return Some(Err(UsedError::IdNotInFlight(id)));
        };
        self.free.push(id as u16);
        Some(Ok(Used {
            buf,
            written,
            desc_len,
        }))
    }

    /// Used elements the device has published that we have not read (as of the last read of
    /// used.idx, refreshed here). More than `size` means the device is misbehaving.
    #[cfg(test)]
    pub(crate) fn used_pending(&mut self) -> u16 {
        self.used_idx_seen = self.used_idx_atomic().load(Ordering::Acquire);
        self.used_idx_seen.wrapping_sub(self.last_used)
    }

    /// Asks the device not to send used-buffer notifications (interrupts).
    ///
    /// Without EVENT_IDX: the NO_INTERRUPT flag. With EVENT_IDX (where the flag must stay 0)
    /// `used_event` is kept half the index space ahead of what the device can reach (it can be
    /// at most `size` ahead of `last_used`), moved forward as we consume.
    fn suppress_used_notifications(&mut self) {
        if self.event_idx {
            // 2.7.7.1: with EVENT_IDX the driver must leave avail.flags at 0.
            self.used_event_base = self.last_used;
            self.write_used_event(self.last_used.wrapping_add(0x8000));
        } else {
            self.write_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
        }
    }

    #[inline]
    fn maybe_move_used_event(&mut self) {
        // Move it every 8192 completions: the device stays at most size (<= 4096) ahead of
        // last_used, so it never reaches base + 0x8000 in between.
        if self.event_idx && self.last_used.wrapping_sub(self.used_event_base) >= 0x2000 {
            self.suppress_used_notifications();
        }
    }

    // ---- raw ring memory ----
    //
    // All ring accesses go through these helpers. The region is `mem.len` bytes we own for the
    // ring's lifetime, the offsets come from `ring_layout` (bounds follow from `size`), and
    // every field is naturally aligned (areas are 64-byte aligned, fields at even offsets).
    // Device-shared fields are accessed volatile (or atomically for the indices): the device
    // writes them concurrently.

    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.mem.len);
        (self.mem.virt + offset) as *mut u8
    }

    #[inline]
    fn write_desc(&mut self, id: u16, addr: u64, len: u32, flags: u16) {
        let p = self.at(id as usize * DESC_SIZE);
        // SAFETY: descriptor `id < size` lies in the table; fields at offsets 0/8/12/14 are
        // aligned. The device only reads descriptors it was given, and this one is not given.
        unsafe {
            ptr::write_volatile(p.cast::<u64>(), addr.to_le());
            ptr::write_volatile(p.add(8).cast::<u32>(), len.to_le());
            ptr::write_volatile(p.add(12).cast::<u16>(), flags.to_le());
            ptr::write_volatile(p.add(14).cast::<u16>(), 0);
        }
    }

    #[inline]
    fn write_avail_entry(&mut self, slot: u16, id: u16) {
        let p = self.at(self.avail_off + 4 + 2 * slot as usize);
        // SAFETY: `slot < size`, inside the avail ring; the device reads this slot only after
        // a later publish.
        unsafe { ptr::write_volatile(p.cast::<u16>(), id.to_le()) };
    }

    fn write_avail_flags(&mut self, flags: u16) {
        // SAFETY: avail.flags at the start of the driver area.
        unsafe { ptr::write_volatile(self.at(self.avail_off).cast::<u16>(), flags.to_le()) };
    }

    fn write_used_event(&mut self, value: u16) {
        let p = self.at(self.avail_off + 4 + 2 * self.size as usize);
        // SAFETY: used_event follows the avail ring's `size` entries.
        unsafe { ptr::write_volatile(p.cast::<u16>(), value.to_le()) };
    }

    #[inline]
    fn avail_idx_atomic(&self) -> &AtomicU16 {
        // SAFETY: avail.idx is a 2-aligned u16 in memory we own for `self`'s lifetime; it is
        // only accessed atomically by us (the device reads it).
        unsafe { AtomicU16::from_ptr(self.at(self.avail_off + 2).cast::<u16>()) }
    }

    #[inline]
    fn used_idx_atomic(&self) -> &AtomicU16 {
        // SAFETY: used.idx is a 2-aligned u16 in memory we own; the device writes it.
        unsafe { AtomicU16::from_ptr(self.at(self.used_off + 2).cast::<u16>()) }
    }

    #[inline]
    fn read_used_elem(&self, slot: u16) -> (u32, u32) {
        let p = self.at(self.used_off + 4 + USED_ELEM_SIZE * slot as usize);
        // SAFETY: `slot < size`, inside the used ring; the Acquire load of used.idx that made
        // this element visible happened before.
        unsafe {
            (
                u32::from_le(ptr::read_volatile(p.cast::<u32>())),
                u32::from_le(ptr::read_volatile(p.add(4).cast::<u32>())),
            )
        }
    }

    fn read_used_flags(&self) -> u16 {
        // SAFETY: used.flags at the start of the device area.
        unsafe { u16::from_le(ptr::read_volatile(self.at(self.used_off).cast::<u16>())) }
    }

    fn read_avail_event(&self) -> u16 {
        let p = self.at(self.used_off + 4 + USED_ELEM_SIZE * self.size as usize);
        // SAFETY: avail_event follows the used ring's `size` elements.
        unsafe { u16::from_le(ptr::read_volatile(p.cast::<u16>())) }
    }
}

impl Drop for SplitRing {
    fn drop(&mut self) {
        // The owner resets the device first (VirtioNetPort::drop), so it no longer touches the
        // ring or the buffers. Buffers go back to their pools with `slots`.
        self.slots.clear();
        // SAFETY: allocated in `new` from this allocator, freed once, device reset.
        unsafe { self.allocator.dealloc(self.mem) };
    }
}

/// The device's side of a [`SplitRing`], for tests: consumes the avail ring and produces used
/// elements through the same memory, as a virtio device would.
#[cfg(test)]
pub(crate) mod fake_device {
    use super::*;

    /// A descriptor as the device reads it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeviceDesc {
        pub id: u16,
        pub addr: u64,
        pub len: u32,
        pub flags: u16,
    }

    /// Device-side view of one queue at the addresses the driver gave `queue_set` (host tests
    /// map physical == virtual).
    #[derive(Clone, Debug, Default)]
    pub struct DeviceQueue {
        pub size: u16,
        pub desc: u64,
        pub driver: u64,
        pub device: u64,
        pub last_avail: u16,
        pub used_idx: u16,
    }

    impl DeviceQueue {
        pub fn new(size: u16, desc: u64, driver: u64, device: u64) -> Self {
            DeviceQueue {
                size,
                desc,
                driver,
                device,
                last_avail: 0,
                used_idx: 0,
            }
        }

        fn read_u16(addr: u64) -> u16 {
            // SAFETY: test-only; addresses from the live ring under test.
            unsafe { ptr::read_volatile(addr as *const u16) }
        }

        fn write_u16(addr: u64, v: u16) {
            // SAFETY: as above.
            unsafe { ptr::write_volatile(addr as *mut u16, v) }
        }

        /// avail.idx as published by the driver.
        pub fn avail_idx(&self) -> u16 {
            // SAFETY: as above; an aligned u16.
            unsafe { AtomicU16::from_ptr((self.driver + 2) as *mut u16) }.load(Ordering::Acquire)
        }

        pub fn avail_flags(&self) -> u16 {
            Self::read_u16(self.driver)
        }

        pub fn used_event(&self) -> u16 {
            Self::read_u16(self.driver + 4 + 2 * self.size as u64)
        }

        /// Sets avail_event (the avail index at which the device wants a notification).
        pub fn set_avail_event(&self, v: u16) {
            Self::write_u16(self.device + 4 + 8 * self.size as u64, v)
        }

        pub fn set_used_flags(&self, v: u16) {
            Self::write_u16(self.device, v)
        }

        /// Takes the next available descriptor, if any.
        pub fn pop_avail(&mut self) -> Option<DeviceDesc> {
            if self.last_avail == self.avail_idx() {
                return None;
            }
            let slot = self.last_avail & (self.size - 1);
            self.last_avail = self.last_avail.wrapping_add(1);
            let id = Self::read_u16(self.driver + 4 + 2 * slot as u64);
            let d = self.desc + 16 * id as u64;
            // SAFETY: test-only; id comes from the driver's ring.
            let (addr, len) = unsafe {
                (
                    ptr::read_volatile(d as *const u64),
                    ptr::read_volatile((d + 8) as *const u32),
                )
            };
            Some(DeviceDesc {
                id,
                addr,
                len,
                flags: Self::read_u16(d + 12),
            })
        }

        /// Publishes a used element (any id, to test the driver's checks).
        pub fn push_used(&mut self, id: u32, len: u32) {
            let e = self.device + 4 + 8 * (self.used_idx & (self.size - 1)) as u64;
            // SAFETY: test-only; inside the used ring.
            unsafe {
                ptr::write_volatile(e as *mut u32, id);
                ptr::write_volatile((e + 4) as *mut u32, len);
            }
            self.used_idx = self.used_idx.wrapping_add(1);
            // SAFETY: as above; an aligned u16.
            unsafe { AtomicU16::from_ptr((self.device + 2) as *mut u16) }
                .store(self.used_idx, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake_device::DeviceQueue;
    use super::*;
    use crate::dma::test_support::HostDmaAllocator;
    use crate::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM, PacketPool};
    use core::sync::atomic::Ordering as O;

    fn setup(size: u16, event_idx: bool) -> (SplitRing, DeviceQueue, alloc::rc::Rc<PacketPool>) {
        let a = HostDmaAllocator::leak();
        let ring = SplitRing::new(a, size, event_idx).unwrap();
        let (d, dr, dv) = ring.addresses();
        let pool = PacketPool::with_allocator(a, 64, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).unwrap();
        (ring, DeviceQueue::new(size, d, dr, dv), pool)
    }

    #[test]
    fn need_event_matches_spec_including_wrap() {
        // Device asked to be notified when avail passes 10.
        assert!(need_event(10, 11, 10));
        assert!(need_event(10, 15, 5));
        assert!(!need_event(10, 10, 5));
        assert!(!need_event(20, 15, 5));
        // Across the u16 wrap: event 65530, we went 65528 -> 4.
        assert!(need_event(65530, 4, 65528));
        assert!(!need_event(65530, 65529, 65528));
        // virtio-drivers 0.13's `avail_idx >= avail_event + 1` says no here and stalls.
        assert!(need_event(65535, 2, 65534));
    }

    #[test]
    fn layout_is_aligned_and_fits() {
        for size in [1u16, 2, 64, 256, 1024, 4096] {
            let (a, u, t) = ring_layout(size);
            assert_eq!(a % 64, 0);
            assert_eq!(u % 64, 0);
            assert!(a >= 16 * size as usize);
            assert!(u >= a + 6 + 2 * size as usize);
            assert_eq!(t, u + 6 + 8 * size as usize);
        }
        let a = HostDmaAllocator::leak();
        assert!(SplitRing::new(a, 100, false).is_none());
        assert!(SplitRing::new(a, 8192, false).is_none());
        assert_eq!(a.allocs.load(O::Relaxed), 0);
    }

    #[test]
    fn push_publish_device_sees_descriptors_in_order() {
        let (mut ring, mut dev, pool) = setup(8, false);
        for i in 0..3u32 {
            let b = pool.alloc().unwrap();
            let addr = b.phys_addr();
            ring.push(b, addr, 100 + i, i == 1).unwrap();
        }
        assert_eq!(dev.pop_avail(), None, "not visible before publish");
        assert!(ring.publish(), "no NO_NOTIFY flag: notify");
        let seen: Vec<_> = core::iter::from_fn(|| dev.pop_avail()).collect();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].id, 0);
        assert_eq!(seen[1].len, 101);
        assert_eq!(seen[1].flags, VIRTQ_DESC_F_WRITE);
        assert_eq!(seen[2].flags, 0);
        assert_eq!(seen[0].addr, pool.region().phys + DEFAULT_HEADROOM as u64);
        assert!(!ring.publish(), "nothing new: no notify");
        assert_eq!(ring.in_flight(), 3);
        assert_eq!(pool.in_use(), 3);
    }

    #[test]
    fn used_returns_buffers_in_device_order() {
        let (mut ring, mut dev, pool) = setup(8, false);
        for _ in 0..4 {
            let b = pool.alloc().unwrap();
            let addr = b.phys_addr();
            ring.push(b, addr, 2000, true).unwrap();
        }
        ring.publish();
        let descs: Vec<_> = core::iter::from_fn(|| dev.pop_avail()).collect();
        // Out of order completion.
        dev.push_used(descs[2].id as u32, 60);
        dev.push_used(descs[0].id as u32, 70);
        let a = ring.pop_used().unwrap().unwrap();
        assert_eq!((a.buf.index(), a.written, a.desc_len), (2, 60, 2000));
        let b = ring.pop_used().unwrap().unwrap();
        assert_eq!((b.buf.index(), b.written), (0, 70));
        assert!(ring.pop_used().is_none());
        assert_eq!(ring.free_descs(), 6);
        drop((a, b));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn bad_used_ids_are_skipped_not_trusted() {
        let (mut ring, mut dev, pool) = setup(4, false);
        let b = pool.alloc().unwrap();
        let addr = b.phys_addr();
        ring.push(b, addr, 64, false).unwrap();
        ring.publish();
        let d = dev.pop_avail().unwrap();
        dev.push_used(77, 0); // beyond the table
        dev.push_used(3, 0); // in range, never posted
        dev.push_used(d.id as u32, 0);
        dev.push_used(d.id as u32, 0); // duplicate
        assert_eq!(ring.used_pending(), 4);
        assert_eq!(
            ring.pop_used().unwrap().err(),
            Some(UsedError::IdOutOfRange(77))
        );
        assert_eq!(
            ring.pop_used().unwrap().err(),
            Some(UsedError::IdNotInFlight(3))
        );
        assert!(ring.pop_used().unwrap().is_ok());
        assert_eq!(
            ring.pop_used().unwrap().err(),
            Some(UsedError::IdNotInFlight(d.id as u32))
        );
        assert!(ring.pop_used().is_none());
        assert_eq!(ring.free_descs(), 4);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn full_ring_gives_buffer_back() {
        let (mut ring, _dev, pool) = setup(2, false);
        for _ in 0..2 {
            let b = pool.alloc().unwrap();
            ring.push(b, 0x1000, 1, false).unwrap();
        }
        let b = pool.alloc().unwrap();
        let back = ring.push(b, 0x1000, 1, false).unwrap_err();
        assert_eq!(back.index(), 2);
    }

    #[test]
    fn no_notify_flag_respected_without_event_idx() {
        let (mut ring, dev, pool) = setup(8, false);
        dev.set_used_flags(VIRTQ_USED_F_NO_NOTIFY);
        let b = pool.alloc().unwrap();
        ring.push(b, 0x1000, 1, false).unwrap();
        assert!(!ring.publish());
        dev.set_used_flags(0);
        let b = pool.alloc().unwrap();
        ring.push(b, 0x1000, 1, false).unwrap();
        assert!(ring.publish());
        assert_eq!(dev.avail_flags(), VIRTQ_AVAIL_F_NO_INTERRUPT);
    }

    #[test]
    fn event_idx_notifies_only_when_crossing_avail_event_across_wrap() {
        let (mut ring, mut dev, pool) = setup(16, true);
        let mut notified = 0;
        let mut published = 0u32;
        // Run the indices around the u16 space several times: the device always asks to be
        // woken at its next avail index (as a sleeping device does) every 3rd burst, otherwise
        // it is "busy" (avail_event behind) and must not be kicked.
        for burst in 0..50_000u32 {
            let n = 1 + burst % 5;
            for _ in 0..n {
                let b = pool.alloc().unwrap();
                ring.push(b, 0x1000, 1, false).unwrap();
            }
            let sleeping = burst % 3 == 0;
            if sleeping {
                dev.set_avail_event(ring.published_idx);
            }
            let kick = ring.publish();
            published += n;
            assert_eq!(kick, sleeping, "burst {burst}");
            notified += kick as u32;
            // Device consumes everything and returns it.
            while let Some(d) = dev.pop_avail() {
                dev.push_used(d.id as u32, 0);
            }
            if !sleeping {
                // Busy device: its avail_event lags far behind (it will re-check the ring).
                dev.set_avail_event(ring.published_idx.wrapping_sub(100));
            }
            while let Some(u) = ring.pop_used() {
                drop(u.unwrap());
            }
        }
        assert!(published > 65536 * 2, "wrapped the index space");
        assert_eq!(notified, 50_000u32.div_ceil(3));
        assert_eq!(pool.in_use(), 0);
        // used_event stays far ahead of what the device can reach: no interrupts requested.
        let ahead = dev.used_event().wrapping_sub(ring.last_used);
        assert!(ahead > 0x4000, "used_event only {ahead} ahead");
    }

    #[test]
    fn drop_returns_buffers_and_memory() {
        let a = HostDmaAllocator::leak();
        let pool = PacketPool::with_allocator(a, 8, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).unwrap();
        let mut ring = SplitRing::new(a, 8, true).unwrap();
        for _ in 0..5 {
            let b = pool.alloc().unwrap();
            ring.push(b, 0x1000, 1, true).unwrap();
        }
        assert_eq!(pool.in_use(), 5);
        drop(ring);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(a.allocs.load(O::Relaxed), 2);
        assert_eq!(a.deallocs.load(O::Relaxed), 1);
    }
}
