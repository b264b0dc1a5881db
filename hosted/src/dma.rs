//! Host memory as the drivers' "DMA" memory.
//!
//! [`HostDma`] implements [`DmaAllocator`] with page-aligned private anonymous `mmap`s (zeroed
//! by the kernel, returned with `munmap`). On the host no device reads these pages directly: the
//! kernel copies frames to and from sockets, or (AF_XDP) pins the pages as a UMEM and addresses
//! them by offset. The "physical" address of a region is therefore simply its virtual address
//! (`phys == virt`), which is also what the drivers' default [`DmaAllocator::virt_to_phys`]
//! assumes.
//!
//! [`host_pool`] builds the pool the hosted runner's ports share. Its layout is chosen so that
//! the pool's one region can be registered, as it is, as an AF_XDP UMEM: every buffer is one
//! 2048-byte UMEM chunk (a power of two, so the kernel's aligned chunk mode applies) and a
//! fresh frame starts [`XDP_HEADROOM`] bytes into it, exactly where the kernel writes a received
//! frame (`XDP_PACKET_HEADROOM`). A buffer received on one AF_XDP port can then be transmitted
//! on another AF_XDP port (or handed to AF_PACKET / tap) without a copy in user space.

use std::rc::Rc;

use drivers::dma::{DmaAllocator, DmaRegion, PAGE_SIZE, PacketPool, PoolError};

/// Anonymous `mmap`s, zeroed by the kernel, returned with `munmap`; `phys == virt`.
pub struct HostDma;

impl DmaAllocator for HostDma {
    fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
        let len = pages.checked_mul(PAGE_SIZE)?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing; no
        // existing memory is touched. The result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p.is_null() {
            return None;
        }
        Some(DmaRegion {
            phys: p as u64,
            virt: p as usize,
            len,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: the caller guarantees `region` came from `alloc_contiguous` (one whole
        // mapping of `region.len` bytes at `region.virt`) and that nothing uses it any more.
        unsafe { libc::munmap(region.virt as *mut libc::c_void, region.len) };
    }
}

/// The allocator every hosted pool uses (registered by [`host_pool`]).
pub static HOST_DMA: HostDma = HostDma;

/// Where the kernel writes a received frame in an AF_XDP UMEM chunk (`XDP_PACKET_HEADROOM`),
/// and so the headroom of [`host_pool`]'s buffers: 240 bytes for `Frame::prepend` after the
/// drivers' 16-byte reserve.
pub const XDP_HEADROOM: usize = 256;
/// The stride of [`host_pool`]'s buffers: one AF_XDP chunk.
pub const HOST_BUF_SIZE: usize = 2048;
/// Frame room after the headroom in [`host_pool`]'s buffers (1792 bytes: an MTU-1500 frame with
/// two VLAN tags fits with room to spare; jumbo frames do not).
pub const HOST_DATA_ROOM: usize = HOST_BUF_SIZE - XDP_HEADROOM;

/// Registers [`HOST_DMA`] as the drivers' allocator (once; a second registration keeps the
/// first) and makes a pool of `bufs` buffers laid out as AF_XDP chunks (see the module docs).
pub fn host_pool(bufs: usize) -> Result<Rc<PacketPool>, PoolError> {
    let _ = drivers::dma::set_dma_allocator(&HOST_DMA);
    PacketPool::with_allocator(&HOST_DMA, bufs, XDP_HEADROOM, HOST_DATA_ROOM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch_core::packet::Frame;

    #[test]
    fn pool_layout_is_an_xdp_umem() {
        let pool = host_pool(64).unwrap();
        assert_eq!(pool.buf_size(), HOST_BUF_SIZE);
        assert_eq!(pool.headroom(), XDP_HEADROOM);
        let r = pool.region();
        assert_eq!(r.virt % PAGE_SIZE, 0);
        assert_eq!(r.phys, r.virt as u64);
        assert!(r.len >= 64 * HOST_BUF_SIZE);
        let mut b = pool.alloc().unwrap();
        assert_eq!(b.phys_addr(), r.phys + XDP_HEADROOM as u64);
        assert!(b.copy_from_slice(&[0xab; 1518]));
        assert_eq!(b.data().len(), 1518);
        assert!(b.prepend(4));
    }

    #[test]
    fn zero_pages_refused() {
        assert!(HOST_DMA.alloc_contiguous(0).is_none());
        let r = HOST_DMA.alloc_contiguous(3).unwrap();
        // SAFETY: fresh mapping of 3 pages.
        let s = unsafe { std::slice::from_raw_parts(r.virt as *const u8, r.len) };
        assert!(s.iter().all(|&b| b == 0));
        // SAFETY: from alloc_contiguous above, unused.
        unsafe { HOST_DMA.dealloc(r) };
    }
}
