//! The drivers' DMA memory, from the frame allocator (identity-mapped: physical == virtual).

use drivers::dma::{DmaAllocator, DmaRegion, PAGE_SIZE};

pub struct KernelDma;

impl DmaAllocator for KernelDma {
    fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
        let phys = crate::memory::alloc_zeroed_pages(pages as u64)?;
        Some(DmaRegion {
            phys,
            virt: phys as usize,
            len: pages * PAGE_SIZE,
        })
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        crate::memory::free_pages(region.phys, region.pages() as u64);
    }

    fn mmio_phys_to_virt(&self, phys: u64, size: usize) -> usize {
        if let Err(e) = crate::memory::map_mmio(phys, size as u64) {
            log::error!("cannot map device memory {phys:#x}/{size}: {e}");
        }
        phys as usize
    }
}

pub static KERNEL_DMA: KernelDma = KernelDma;
