//! DMA memory for the drivers: the [`DmaAllocator`] the kernel provides, virtio-drivers' [`Hal`]
//! on top of it ([`DmaHal`]), and the packet buffer pool ([`PacketPool`], [`PacketBuf`],
//! [`PacketBatch`]) that the datapath moves between NIC queues without copying.
//!
//! # Model (ixy.rs' mempool)
//!
//! A [`PacketPool`] is one physically contiguous DMA region cut into fixed-size buffers, plus a
//! stack of free buffer indices. [`PacketPool::alloc`] pops an index and returns a [`PacketBuf`]
//! handle; dropping the handle pushes the index back. Nothing is allocated per packet.
//!
//! A pool belongs to one core: it is reached through `Rc` and keeps its free stack in an
//! `UnsafeCell`, so it is neither `Send` nor `Sync` and the packet path takes no lock and no
//! atomic. Build a pool (and the ports that use it) on the core that polls them.
//!
//! # Buffer layout
//!
//! ```text
//! 0            DRIVER_RESERVE              headroom                       stride
//! | NIC header |   room for prepend()   |  frame data (len)  |  tailroom  |
//! ```
//!
//! The first [`DRIVER_RESERVE`] bytes are never part of a frame: a NIC driver may write its
//! per-packet header there (virtio-net puts its 12-byte `virtio_net_hdr` right before the frame),
//! so a received buffer can be transmitted on another port unchanged. [`Frame::prepend`] can grow
//! the frame into the rest of the headroom (VLAN push without copying).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use switch_core::packet::Frame;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The page size DMA regions are counted in.
pub const PAGE_SIZE: usize = 4096;

/// A physically contiguous DMA region: where the device sees it (`phys`) and where the CPU does
/// (`virt`). With the kernel's identity mapping `phys == virt as u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRegion {
    /// Physical (bus) address of the first byte.
    pub phys: u64,
    /// Virtual address of the first byte.
    pub virt: usize,
    /// Length in bytes (a multiple of [`PAGE_SIZE`] for regions from [`DmaAllocator`]).
    pub len: usize,
}

impl DmaRegion {
    /// Number of pages the region spans.
    pub fn pages(&self) -> usize {
        self.len.div_ceil(PAGE_SIZE)
    }

    /// The physical address of the byte at virtual address `virt`, if it lies in the region.
    pub fn virt_to_phys(&self, virt: usize) -> Option<u64> {
        let offset = virt.checked_sub(self.virt)?;
        (offset < self.len).then_some(self.phys + offset as u64)
    }
}

/// Physically contiguous, device-visible memory, provided by the kernel.
///
/// Implementations must be usable from any core (`Sync`); they are called at setup time only,
/// never on the packet path. With the kernel's identity map, page-aligned zeroed memory from
/// the kernel heap qualifies (the heap is one contiguous range):
///
/// ```ignore
/// struct KernelDma;
/// impl drivers::dma::DmaAllocator for KernelDma {
///     fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
///         let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).ok()?;
///         let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
///         let len = layout.size();
///         (!ptr.is_null()).then(|| DmaRegion { phys: ptr as u64, virt: ptr as usize, len })
///     }
///     unsafe fn dealloc(&self, region: DmaRegion) {
///         let layout = Layout::from_size_align(region.len, PAGE_SIZE).unwrap();
///         unsafe { alloc::alloc::dealloc(region.virt as *mut u8, layout) }
///     }
/// }
/// static KERNEL_DMA: KernelDma = KernelDma;
/// drivers::dma::set_dma_allocator(&KERNEL_DMA).ok();
/// ```
///
/// Sizes: a [`PacketPool`] of N default buffers is N × 2176 bytes in one region (2048 buffers:
/// 4.25 MiB); a 256-entry virtio ring is 3 pages.
pub trait DmaAllocator: Sync {
    /// Allocates `pages` physically contiguous pages of [`PAGE_SIZE`] bytes.
    ///
    /// The region must be zeroed, page-aligned (virtually and physically), and must not alias
    /// any other live allocation. Returns `None` when the memory is not available; callers
    /// report that as an error, never panic.
    fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion>;

    /// Returns a region to the allocator.
    ///
    /// # Safety
    ///
    /// `region` must be a value returned by [`alloc_contiguous`](Self::alloc_contiguous) on the
    /// same allocator, not yet deallocated, and no device may access it any more (reset the
    /// device or disable its queues first).
    unsafe fn dealloc(&self, region: DmaRegion);

    /// The physical address the device must use for the CPU's virtual address `virt` (any
    /// memory the drivers hand to a device: DMA regions, and buffers virtio-drivers shares).
    ///
    /// The default is the identity mapping the kernel uses.
    fn virt_to_phys(&self, virt: usize) -> u64 {
        virt as u64
    }

    /// The virtual address at which the CPU reaches the MMIO range `[phys, phys + size)` of a
    /// device BAR. The default is the identity mapping.
    fn mmio_phys_to_virt(&self, phys: u64, size: usize) -> usize {
        let _ = size;
        phys as usize
    }
}

static DMA_ALLOCATOR: spin::Once<&'static dyn DmaAllocator> = spin::Once::new();

/// Returned by [`set_dma_allocator`] when an allocator was registered before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaAllocatorAlreadySet;

/// Registers the allocator behind [`DmaHal`] and [`PacketPool::new`]. Call once, at boot,
/// before constructing any driver.
///
/// Returns `Err` (and keeps the first one) if an allocator is already registered.
pub fn set_dma_allocator(
    allocator: &'static dyn DmaAllocator,
) -> Result<(), DmaAllocatorAlreadySet> {
    let mut installed = false;
    DMA_ALLOCATOR.call_once(|| {
        installed = true;
        allocator
    });
    if installed {
        Ok(())
    } else {
        Err(DmaAllocatorAlreadySet)
    }
}

/// The registered allocator, if [`set_dma_allocator`] has been called.
pub fn dma_allocator() -> Option<&'static dyn DmaAllocator> {
    DMA_ALLOCATOR.get().copied()
}

/// virtio-drivers' [`Hal`] over the registered [`DmaAllocator`]: use
/// `PciTransport::new::<DmaHal, _>` and any virtio-drivers device (virtio-blk, the management
/// NIC) with it.
///
/// Without a registered allocator `dma_alloc` fails (virtio-drivers reports `DmaError`) and
/// addresses are translated with the identity mapping.
pub struct DmaHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned memory from the allocator
// (checked and zeroed here too), or (0, dangling) which virtio-drivers treats as failure;
// `mmio_phys_to_virt` and `share` translate through the allocator's mapping.
unsafe impl Hal for DmaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let failed = (0, NonNull::dangling());
        let Some(allocator) = dma_allocator() else {
            return failed;
        };
        let Some(region) = allocator.alloc_contiguous(pages) else {
            return failed;
        };
        let Some(virt) = NonNull::new(region.virt as *mut u8) else {
            return failed;
        };
        if region.virt % PAGE_SIZE != 0 || region.len < pages * PAGE_SIZE || region.phys == 0 {
            // SAFETY: the region came from this allocator and nothing has used it.
            unsafe { allocator.dealloc(region) };
            return failed;
        }
        // SAFETY: the allocator hands out `region.len` writable bytes at `virt`, owned by us.
        unsafe { core::ptr::write_bytes(virt.as_ptr(), 0, pages * PAGE_SIZE) };
        (region.phys, virt)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Some(allocator) = dma_allocator() else {
            return -1;
        };
        let region = DmaRegion {
            phys: paddr,
            virt: vaddr.as_ptr() as usize,
            len: pages * PAGE_SIZE,
        };
        // SAFETY: virtio-drivers passes back exactly what `dma_alloc` returned, once, after the
        // device stopped using it (Hal::dma_dealloc's contract).
        unsafe { allocator.dealloc(region) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let virt = match dma_allocator() {
            Some(allocator) => allocator.mmio_phys_to_virt(paddr, size),
            None => paddr as usize,
        };
        // A BAR at address 0 is an unassigned BAR: a kernel bug, caught at probe time.
        NonNull::new(virt as *mut u8).expect("virtio MMIO BAR mapped at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let virt = buffer.as_ptr() as *mut u8 as usize;
        match dma_allocator() {
            Some(allocator) => allocator.virt_to_phys(virt),
            None => virt as u64,
        }
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Nothing to do: buffers are shared in place (no bounce buffers, no IOMMU).
    }
}

/// Bytes at the start of every packet buffer reserved for the NIC's per-packet header; never
/// part of a frame (see the module docs).
pub const DRIVER_RESERVE: usize = 16;
/// Default offset of a frame in a fresh buffer: `DRIVER_RESERVE` plus 112 bytes for
/// [`Frame::prepend`] (VLAN tags, encapsulation headers).
pub const DEFAULT_HEADROOM: usize = 128;
/// Default room for frame data after the headroom: a 1518-byte VLAN-tagged frame fits, and
/// virtio-net's minimum receive buffer (1526 bytes with its header) does too.
pub const DEFAULT_DATA_ROOM: usize = 2048;
/// Buffers are laid out on this stride boundary (a cache line).
const BUF_ALIGN: usize = 64;

/// Why a [`PacketPool`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// [`set_dma_allocator`] was not called (only [`PacketPool::new`] needs it).
    NoAllocator,
    /// The allocator had no region of the requested size.
    OutOfMemory,
    /// Zero buffers, headroom below [`DRIVER_RESERVE`], no data room, or a buffer stride above
    /// 65535 bytes.
    InvalidLayout,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            PoolError::NoAllocator => "no DMA allocator registered",
            PoolError::OutOfMemory => "out of DMA memory",
            PoolError::InvalidLayout => "invalid packet pool layout",
        };
        f.write_str(what)
    }
}

/// A fixed number of fixed-size packet buffers in one DMA region (see the module docs).
///
/// Not `Send`/`Sync`: one pool per core, shared by that core's ports through `Rc`.
pub struct PacketPool {
    allocator: &'static dyn DmaAllocator,
    region: DmaRegion,
    stride: usize,
    headroom: u16,
    num_bufs: u32,
    /// Indices of free buffers. Touched only by `alloc` and `release`, which never call out
    /// while holding a reference into it.
    free: UnsafeCell<Vec<u32>>,
    alloc_failures: Cell<u64>,
}

impl PacketPool {
    /// A pool of `num_bufs` buffers with [`DEFAULT_HEADROOM`] and [`DEFAULT_DATA_ROOM`], from
    /// the allocator registered with [`set_dma_allocator`].
    pub fn new(num_bufs: usize) -> Result<Rc<Self>, PoolError> {
        let allocator = dma_allocator().ok_or(PoolError::NoAllocator)?;
        Self::with_allocator(allocator, num_bufs, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM)
    }

    /// A pool of `num_bufs` buffers, each with `headroom` bytes (at least [`DRIVER_RESERVE`])
    /// before a fresh frame and `data_room` bytes after, from `allocator`.
    ///
    /// Buffers are placed on a 64-byte stride of `headroom + data_room` rounded up.
    pub fn with_allocator(
        allocator: &'static dyn DmaAllocator,
        num_bufs: usize,
        headroom: usize,
        data_room: usize,
    ) -> Result<Rc<Self>, PoolError> {
        let stride = (headroom + data_room).next_multiple_of(BUF_ALIGN);
        if num_bufs == 0
            || num_bufs > u32::MAX as usize
            || headroom < DRIVER_RESERVE
            || data_room == 0
            || stride > u16::MAX as usize
        {
            return Err(PoolError::InvalidLayout);
        }
        let bytes = num_bufs
            .checked_mul(stride)
            .ok_or(PoolError::InvalidLayout)?;
        let pages = bytes.div_ceil(PAGE_SIZE);
        let region = allocator
            .alloc_contiguous(pages)
            .ok_or(PoolError::OutOfMemory)?;
        if region.len < bytes || region.virt == 0 {
            // SAFETY: the region came from this allocator and nothing has used it.
            unsafe { allocator.dealloc(region) };
            return Err(PoolError::OutOfMemory);
        }
        // Lowest index on top, so a fresh pool hands out buffers in address order.
        let free = (0..num_bufs as u32).rev().collect();
        Ok(Rc::new(PacketPool {
            allocator,
            region,
            stride,
            headroom: headroom as u16,
            num_bufs: num_bufs as u32,
            free: UnsafeCell::new(free),
            alloc_failures: Cell::new(0),
        }))
    }

    /// Takes a free buffer: an empty frame (`len() == 0`) at the pool's headroom.
    ///
    /// Returns `None` when every buffer is in use, and counts that in
    /// [`alloc_failures`](Self::alloc_failures).
    #[inline]
    pub fn alloc(self: &Rc<Self>) -> Option<PacketBuf> {
        // SAFETY: single-threaded (`!Sync`), and no other reference into `free` is live: the
        // only other user, `release`, is not reentered from here.
        let index = unsafe { (*self.free.get()).pop() };
        match index {
            Some(index) => Some(PacketBuf {
                pool: Rc::clone(self),
                index,
                start: self.headroom,
                len: 0,
            }),
            None => {
                self.alloc_failures.set(self.alloc_failures.get() + 1);
                None
            }
        }
    }

    #[inline]
    fn release(&self, index: u32) {
        // SAFETY: as in `alloc`. The stack has capacity `num_bufs` and each index is pushed
        // back at most once (a `PacketBuf` is unique), so this never reallocates.
        unsafe { (*self.free.get()).push(index) };
    }

    /// Number of buffers in the pool.
    pub fn num_bufs(&self) -> usize {
        self.num_bufs as usize
    }

    /// Number of buffers currently free.
    pub fn free_count(&self) -> usize {
        // SAFETY: as in `alloc`; a length read.
        unsafe { (*self.free.get()).len() }
    }

    /// Number of buffers currently handed out (in batches, NIC rings, or held elsewhere).
    pub fn in_use(&self) -> usize {
        self.num_bufs() - self.free_count()
    }

    /// How many times [`alloc`](Self::alloc) found the pool empty.
    pub fn alloc_failures(&self) -> u64 {
        self.alloc_failures.get()
    }

    /// Offset of a fresh frame in its buffer.
    pub fn headroom(&self) -> usize {
        self.headroom as usize
    }

    /// Size of one buffer, headroom included.
    pub fn buf_size(&self) -> usize {
        self.stride
    }

    /// The DMA region holding all buffers.
    pub fn region(&self) -> DmaRegion {
        self.region
    }

    /// The allocator the pool's region came from (drivers allocate their rings from it too).
    pub fn allocator(&self) -> &'static dyn DmaAllocator {
        self.allocator
    }

    #[inline]
    fn buf_offset(&self, index: u32) -> usize {
        index as usize * self.stride
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        // SAFETY: every `PacketBuf` holds an `Rc` to the pool, so none is left; drivers reset
        // their device before dropping the buffers it could still write (see `PacketBuf`).
        unsafe { self.allocator.dealloc(self.region) };
    }
}

impl fmt::Debug for PacketPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketPool")
            .field("num_bufs", &self.num_bufs)
            .field("free", &self.free_count())
            .field("buf_size", &self.stride)
            .field("headroom", &self.headroom)
            .field("phys", &format_args!("{:#x}", self.region.phys))
            .finish()
    }
}

/// One packet buffer from a [`PacketPool`]; returns to the pool when dropped.
///
/// The frame is `len()` bytes at some offset inside the buffer ([`Frame`] gives the bytes and
/// moves the start). A driver that hands a buffer's address to a device keeps the `PacketBuf`
/// until the device is done with it, and resets the device before dropping buffers it may
/// still write.
pub struct PacketBuf {
    pool: Rc<PacketPool>,
    index: u32,
    start: u16,
    len: u16,
}

impl PacketBuf {
    /// Length of the frame in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame is empty (a fresh buffer is).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes available to [`Frame::prepend`].
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start as usize - DRIVER_RESERVE
    }

    /// Bytes available after the frame (how far [`set_len`](Self::set_len) can grow it).
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.pool.stride - self.start as usize - self.len as usize
    }

    /// Physical (device) address of the frame's first byte.
    #[inline]
    pub fn phys_addr(&self) -> u64 {
        self.buf_phys() + self.start as u64
    }

    /// Sets the frame's length, keeping its start. Bytes gained at the end are whatever the
    /// buffer held (zero in a fresh pool, else old packet data). Returns false, changing
    /// nothing, if `len` exceeds `len() + tailroom()`.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.len() + self.tailroom() {
            return false;
        }
        self.len = len as u16;
        true
    }

    /// Replaces the frame with a copy of `bytes`, at the pool's default headroom. Returns
    /// false, changing nothing, if `bytes` does not fit.
    pub fn copy_from_slice(&mut self, bytes: &[u8]) -> bool {
        let start = self.pool.headroom;
        if bytes.len() > self.pool.stride - start as usize {
            return false;
        }
        self.start = start;
        self.len = bytes.len() as u16;
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// Empties the frame and moves its start back to the pool's default headroom.
    pub fn reset(&mut self) {
        self.start = self.pool.headroom;
        self.len = 0;
    }

    /// The pool this buffer returns to.
    pub fn pool(&self) -> &Rc<PacketPool> {
        &self.pool
    }

    /// Index of the buffer in its pool (for debugging and tracing).
    pub fn index(&self) -> usize {
        self.index as usize
    }

    // ---- for drivers in this crate ----

    /// Offset of the frame's first byte in the buffer.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start as usize
    }

    /// Size of the whole buffer (the pool's stride).
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.pool.stride
    }

    /// Physical address of the buffer's first byte (offset 0).
    #[inline]
    pub(crate) fn buf_phys(&self) -> u64 {
        self.pool.region.phys + self.pool.buf_offset(self.index) as u64
    }

    /// Sets the frame to `len` bytes at offset `start` of the buffer.
    ///
    /// Returns false, changing nothing, if `start < DRIVER_RESERVE` or the frame would not fit.
    #[inline]
    pub(crate) fn set_bounds(&mut self, start: usize, len: usize) -> bool {
        if start < DRIVER_RESERVE || start.saturating_add(len) > self.pool.stride {
            return false;
        }
        self.start = start as u16;
        self.len = len as u16;
        true
    }

    /// The whole buffer, reserve and headroom included.
    #[inline]
    pub(crate) fn raw_mut(&mut self) -> &mut [u8] {
        let base = self.pool.region.virt + self.pool.buf_offset(self.index);
        // SAFETY: the buffer `[base, base + stride)` lies inside the pool's region, which lives
        // as long as the `Rc` we hold, is initialised (zeroed at allocation), and belongs to
        // this handle alone: indices are unique among live handles.
        unsafe { core::slice::from_raw_parts_mut(base as *mut u8, self.pool.stride) }
    }

    #[inline]
    fn raw(&self) -> &[u8] {
        let base = self.pool.region.virt + self.pool.buf_offset(self.index);
        // SAFETY: as in `raw_mut`.
        unsafe { core::slice::from_raw_parts(base as *const u8, self.pool.stride) }
    }
}

impl Drop for PacketBuf {
    #[inline]
    fn drop(&mut self) {
        self.pool.release(self.index);
    }
}

impl Frame for PacketBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let (start, len) = (self.start as usize, self.len as usize);
        &self.raw()[start..start + len]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (start, len) = (self.start as usize, self.len as usize);
        &mut self.raw_mut()[start..start + len]
    }

    /// Grows the frame into the headroom; never into the first [`DRIVER_RESERVE`] bytes.
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.headroom() {
            return false;
        }
        self.start -= n as u16;
        self.len += n as u16;
        true
    }

    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n as u16;
        self.len -= n as u16;
        true
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.len = len as u16;
        }
    }
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PacketBuf(#{}, {} bytes at +{})",
            self.index, self.len, self.start
        )
    }
}

/// Packets per burst: the capacity of a [`PacketBatch`].
pub const BATCH_SIZE: usize = 32;

/// Up to [`BATCH_SIZE`] packets moving between a NIC queue and the switch, by value (no
/// allocation). Dereferences to `[PacketBuf]` for iteration and indexing; dropping the batch (or
/// a packet taken out of it) returns the buffers to their pools.
#[derive(Default)]
pub struct PacketBatch {
    bufs: heapless::Vec<PacketBuf, BATCH_SIZE>,
}

impl PacketBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        PacketBatch {
            bufs: heapless::Vec::new(),
        }
    }

    /// Maximum number of packets ([`BATCH_SIZE`]).
    pub const fn capacity(&self) -> usize {
        BATCH_SIZE
    }

    /// How many more packets fit.
    #[inline]
    pub fn free_capacity(&self) -> usize {
        BATCH_SIZE - self.bufs.len()
    }

    /// Whether no more packets fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.is_full()
    }

    /// Appends a packet; gives it back if the batch is full.
    #[inline]
    pub fn push(&mut self, buf: PacketBuf) -> Result<(), PacketBuf> {
        self.bufs.push(buf)
    }

    /// Removes and returns the last packet.
    #[inline]
    pub fn pop(&mut self) -> Option<PacketBuf> {
        self.bufs.pop()
    }

    /// Removes the packet at `index`, replacing it with the last one (O(1)).
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    pub fn swap_remove(&mut self, index: usize) -> PacketBuf {
        self.bufs.swap_remove(index)
    }

    /// Keeps the packets for which `keep` returns true (in order); drops the others.
    pub fn retain(&mut self, keep: impl FnMut(&mut PacketBuf) -> bool) {
        self.bufs.retain_mut(keep)
    }

    /// Removes the packets in `range` (shifting the rest to the front) and yields them.
    pub fn drain<R: core::ops::RangeBounds<usize>>(
        &mut self,
        range: R,
    ) -> impl Iterator<Item = PacketBuf> + '_ {
        self.bufs.drain(range)
    }

    /// Drops every packet (returning the buffers to their pools).
    pub fn clear(&mut self) {
        self.bufs.clear()
    }
}

impl Deref for PacketBatch {
    type Target = [PacketBuf];
    #[inline]
    fn deref(&self) -> &[PacketBuf] {
        &self.bufs
    }
}

impl DerefMut for PacketBatch {
    #[inline]
    fn deref_mut(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs
    }
}

impl IntoIterator for PacketBatch {
    type Item = PacketBuf;
    type IntoIter = <heapless::Vec<PacketBuf, BATCH_SIZE> as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        self.bufs.into_iter()
    }
}

impl<'a> IntoIterator for &'a PacketBatch {
    type Item = &'a PacketBuf;
    type IntoIter = core::slice::Iter<'a, PacketBuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.bufs.iter()
    }
}

impl<'a> IntoIterator for &'a mut PacketBatch {
    type Item = &'a mut PacketBuf;
    type IntoIter = core::slice::IterMut<'a, PacketBuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.bufs.iter_mut()
    }
}

impl fmt::Debug for PacketBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.bufs.iter()).finish()
    }
}

/// Host-side stand-ins for the kernel's memory, shared by this crate's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use std::boxed::Box;

    /// A [`DmaAllocator`] on the host heap: page-aligned zeroed allocations, identity "physical"
    /// addresses, with counters to check that regions are returned.
    #[derive(Default)]
    pub struct HostDmaAllocator {
        pub allocs: AtomicUsize,
        pub deallocs: AtomicUsize,
        /// Refuse allocations of more than this many pages (0: no limit).
        pub max_pages: usize,
    }

    impl HostDmaAllocator {
        /// A fresh allocator with its own counters, living for the rest of the test run.
        pub fn leak() -> &'static HostDmaAllocator {
            Box::leak(Box::default())
        }
    }

    impl DmaAllocator for HostDmaAllocator {
        fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
            if pages == 0 || (self.max_pages != 0 && pages > self.max_pages) {
                return None;
            }
            let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).ok()?;
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            if ptr.is_null() {
                return None;
            }
            self.allocs.fetch_add(1, Ordering::Relaxed);
            Some(DmaRegion {
                phys: ptr as u64,
                virt: ptr as usize,
                len: pages * PAGE_SIZE,
            })
        }

        unsafe fn dealloc(&self, region: DmaRegion) {
            self.deallocs.fetch_add(1, Ordering::Relaxed);
            let layout = Layout::from_size_align(region.len, PAGE_SIZE).unwrap();
            // SAFETY: allocated in `alloc_contiguous` with this layout (the caller's contract).
            unsafe { dealloc(region.virt as *mut u8, layout) };
        }
    }

    /// Registers a host allocator as the global one (once per test process) and returns the
    /// registered allocator.
    pub fn global_host_allocator() -> &'static dyn DmaAllocator {
        static HOST: HostDmaAllocator = HostDmaAllocator {
            allocs: AtomicUsize::new(0),
            deallocs: AtomicUsize::new(0),
            max_pages: 0,
        };
        let _ = set_dma_allocator(&HOST);
        dma_allocator().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use core::sync::atomic::Ordering;
    use std::boxed::Box;

    fn pool(n: usize) -> (Rc<PacketPool>, &'static HostDmaAllocator) {
        let a = HostDmaAllocator::leak();
        let p = PacketPool::with_allocator(a, n, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).unwrap();
        (p, a)
    }

    #[test]
    fn layout_and_addresses() {
        let (p, _) = pool(8);
        assert_eq!(p.buf_size(), 2176);
        assert_eq!(p.headroom(), 128);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(a.len(), 0);
        assert_eq!(a.headroom(), 128 - DRIVER_RESERVE);
        assert_eq!(a.tailroom(), 2048);
        assert_eq!(a.phys_addr(), p.region().phys + 128);
        assert_eq!(b.phys_addr(), p.region().phys + 2176 + 128);
        assert_eq!(b.phys_addr() % 64, 0);
    }

    #[test]
    fn exhaustion_returns_none_and_counts() {
        let (p, _) = pool(3);
        let bufs: Vec<_> = (0..3).map(|_| p.alloc().unwrap()).collect();
        assert_eq!(p.free_count(), 0);
        assert_eq!(p.in_use(), 3);
        assert!(p.alloc().is_none());
        assert!(p.alloc().is_none());
        assert_eq!(p.alloc_failures(), 2);
        drop(bufs);
        assert_eq!(p.free_count(), 3);
        assert!(p.alloc().is_some());
    }

    #[test]
    fn drop_returns_buffer_and_reuses_it_first() {
        let (p, _) = pool(4);
        let a = p.alloc().unwrap();
        let idx = a.index();
        assert_eq!(p.free_count(), 3);
        drop(a);
        assert_eq!(p.free_count(), 4);
        // LIFO: the buffer just freed (cache-warm) comes back first.
        assert_eq!(p.alloc().unwrap().index(), idx);
    }

    #[test]
    fn pool_region_freed_after_last_buffer() {
        let (p, a) = pool(4);
        let buf = p.alloc().unwrap();
        drop(p);
        assert_eq!(
            a.deallocs.load(Ordering::Relaxed),
            0,
            "buffer still holds the pool"
        );
        drop(buf);
        assert_eq!(a.allocs.load(Ordering::Relaxed), 1);
        assert_eq!(a.deallocs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn invalid_layouts_and_oom() {
        let a = HostDmaAllocator::leak();
        let bad = |n, h, d| PacketPool::with_allocator(a, n, h, d).unwrap_err();
        assert_eq!(bad(0, 128, 2048), PoolError::InvalidLayout);
        assert_eq!(bad(4, DRIVER_RESERVE - 1, 2048), PoolError::InvalidLayout);
        assert_eq!(bad(4, 128, 0), PoolError::InvalidLayout);
        assert_eq!(bad(4, 128, 70000), PoolError::InvalidLayout);
        let small: &'static HostDmaAllocator = Box::leak(Box::new(HostDmaAllocator {
            max_pages: 2,
            ..Default::default()
        }));
        let err = PacketPool::with_allocator(small, 64, 128, 2048).unwrap_err();
        assert_eq!(err, PoolError::OutOfMemory);
    }

    #[test]
    fn frame_prepend_trim_truncate() {
        let (p, _) = pool(2);
        let mut b = p.alloc().unwrap();
        assert!(b.copy_from_slice(&[1, 2, 3, 4, 5, 6]));
        assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
        let phys = b.phys_addr();

        // VLAN push: 4 bytes in front, no copy of the payload.
        assert!(b.prepend(4));
        assert_eq!(b.len(), 10);
        assert_eq!(b.phys_addr(), phys - 4);
        b.data_mut()[..4].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(b.data(), &[9, 9, 9, 9, 1, 2, 3, 4, 5, 6]);

        // The driver reserve is never handed out.
        let room = b.headroom();
        assert_eq!(room, 128 - 4 - DRIVER_RESERVE);
        assert!(!b.prepend(room + 1));
        assert_eq!(b.len(), 10, "failed prepend changes nothing");
        assert!(b.prepend(room));
        assert_eq!(b.headroom(), 0);
        assert!(b.trim_front(room));

        assert!(b.trim_front(4));
        assert_eq!(b.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(!b.trim_front(7));
        assert_eq!(b.len(), 6, "failed trim changes nothing");

        b.truncate(10);
        assert_eq!(b.len(), 6, "truncate never grows");
        b.truncate(2);
        assert_eq!(b.data(), &[1, 2]);
        assert!(b.trim_front(2));
        assert!(b.is_empty());
    }

    #[test]
    fn set_len_and_copy_bounds() {
        let (p, _) = pool(1);
        let mut b = p.alloc().unwrap();
        assert!(b.set_len(2048));
        assert_eq!(b.tailroom(), 0);
        assert!(!b.set_len(2049));
        assert_eq!(b.len(), 2048);
        assert!(!b.copy_from_slice(&[0; 2049]));
        assert!(b.copy_from_slice(&[7; 2048]));
        b.reset();
        assert!(b.is_empty());
        assert_eq!(b.headroom(), 128 - DRIVER_RESERVE);
        assert!(!b.set_bounds(DRIVER_RESERVE - 1, 0));
        assert!(!b.set_bounds(128, 2049));
        assert!(b.set_bounds(100, 12));
        assert_eq!((b.start(), b.len()), (100, 12));
    }

    #[test]
    fn batch_capacity_and_drop() {
        let (p, _) = pool(40);
        let mut batch = PacketBatch::new();
        for _ in 0..BATCH_SIZE {
            batch.push(p.alloc().unwrap()).unwrap();
        }
        assert!(batch.is_full());
        assert_eq!(batch.free_capacity(), 0);
        let extra = p.alloc().unwrap();
        let back = batch.push(extra).unwrap_err();
        drop(back);
        assert_eq!(p.in_use(), BATCH_SIZE);

        // drain from the front keeps the rest in order.
        let first: Vec<_> = batch.drain(..2).map(|b| b.index()).collect();
        assert_eq!(first, [0, 1]);
        assert_eq!(batch[0].index(), 2);
        assert_eq!(p.in_use(), BATCH_SIZE - 2);

        batch.retain(|b| b.index() % 2 == 0);
        assert!(batch.iter().all(|b| b.index() % 2 == 0));
        assert_eq!(batch.len(), 15);
        drop(batch);
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn two_pools_independent() {
        let (p1, _) = pool(2);
        let (p2, _) = pool(2);
        let mut batch = PacketBatch::new();
        batch.push(p1.alloc().unwrap()).unwrap();
        batch.push(p2.alloc().unwrap()).unwrap();
        assert_eq!((p1.in_use(), p2.in_use()), (1, 1));
        batch.clear();
        assert_eq!((p1.in_use(), p2.in_use()), (0, 0));
    }

    #[test]
    fn global_allocator_and_hal() {
        let a = global_host_allocator();
        assert!(set_dma_allocator(a).is_err(), "second registration refused");
        let p = PacketPool::new(4).unwrap();
        assert_eq!(p.num_bufs(), 4);

        let (phys, virt) = DmaHal::dma_alloc(2, BufferDirection::Both);
        assert_ne!(phys, 0);
        assert_eq!(virt.as_ptr() as usize % PAGE_SIZE, 0);
        // SAFETY: freshly allocated, two pages.
        let bytes = unsafe { core::slice::from_raw_parts(virt.as_ptr(), 2 * PAGE_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0));
        let buf = NonNull::slice_from_raw_parts(virt, 16);
        // SAFETY: valid buffer, identity mapping.
        assert_eq!(
            unsafe { DmaHal::share(buf, BufferDirection::DriverToDevice) },
            phys
        );
        // SAFETY: values from dma_alloc above.
        assert_eq!(unsafe { DmaHal::dma_dealloc(phys, virt, 2) }, 0);
    }

    #[test]
    fn region_virt_to_phys() {
        let r = DmaRegion {
            phys: 0x10_0000,
            virt: 0xffff_8000_0000_0000,
            len: 8192,
        };
        assert_eq!(r.pages(), 2);
        assert_eq!(r.virt_to_phys(0xffff_8000_0000_0010), Some(0x10_0010));
        assert_eq!(r.virt_to_phys(0xffff_8000_0000_2000), None);
        assert_eq!(r.virt_to_phys(0x1000), None);
    }
}
