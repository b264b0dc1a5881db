//! Host memory as the drivers' "DMA" memory: page-aligned anonymous mappings. On the host no
//! device reads these pages (the kernel copies frames to and from sockets), so the "physical"
//! address is simply the virtual one, which is what the drivers' default mapping assumes.

use std::rc::Rc;

use drivers::dma::{DmaAllocator, DmaRegion, PAGE_SIZE, PacketPool, PoolError};

/// Anonymous `mmap`s, zeroed by the kernel, returned with `munmap`.
pub struct HostDma;

impl DmaAllocator for HostDma {
    fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
        let len = pages.checked_mul(PAGE_SIZE)?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
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
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(DmaRegion {
            phys: p as u64,
            virt: p as usize,
            len,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        // SAFETY: the caller guarantees `region` came from `alloc_contiguous` and is unused.
        unsafe { libc::munmap(region.virt as *mut libc::c_void, region.len) };
    }
}

/// The allocator every hosted pool uses.
pub static HOST_DMA: HostDma = HostDma;

/// Registers [`HOST_DMA`] (once) and makes a pool of `bufs` default-sized packet buffers.
pub fn host_pool(bufs: usize) -> Result<Rc<PacketPool>, String> {
    let _ = drivers::dma::set_dma_allocator(&HOST_DMA);
    PacketPool::new(bufs).map_err(|e: PoolError| format!("{e:?}"))
}
