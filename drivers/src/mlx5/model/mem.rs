//! The model's "physical memory": a [`DmaAllocator`] whose regions it remembers, with
//! physical addresses that differ from virtual ones (virt + [`PHYS_OFFSET`]) so a driver that
//! hands the device a virtual address is caught. Device-side reads and writes are checked
//! against the live regions: a bad address from the driver is counted, never a crash.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::dma::{DmaAllocator, DmaRegion, PAGE_SIZE};

/// Physical = virtual + this (bit 52: above any x86-64 user or kernel virtual address use).
pub const PHYS_OFFSET: u64 = 1 << 52;

/// Host memory the model can reach by physical address.
pub struct ModelDma {
    /// Live regions by physical start address.
    regions: spin::Mutex<BTreeMap<u64, DmaRegion>>,
    /// Device accesses outside every live region.
    pub bad_accesses: AtomicU64,
    /// Allocations refused on purpose after this many pages (u64::MAX: no limit).
    pub page_limit: AtomicU64,
    pages_live: AtomicU64,
}

impl ModelDma {
    /// A fresh allocator that lives for the rest of the process (the trait wants `'static`).
    pub fn leak() -> &'static ModelDma {
        Box::leak(Box::new(ModelDma {
            regions: spin::Mutex::new(BTreeMap::new()),
            bad_accesses: AtomicU64::new(0),
            page_limit: AtomicU64::new(u64::MAX),
            pages_live: AtomicU64::new(0),
        }))
    }

    /// Pages currently allocated.
    pub fn pages_live(&self) -> u64 {
        self.pages_live.load(Ordering::Relaxed)
    }

    fn find(&self, pa: u64, len: usize) -> Option<usize> {
        let regions = self.regions.lock();
        let end = pa.checked_add(len as u64)?;
        let (_, r) = regions.range(..=pa).next_back()?;
        (end <= r.phys + r.len as u64).then(|| r.virt + (pa - r.phys) as usize)
    }

    /// Device read of `out.len()` bytes at physical `pa`; false (and zeros) if out of range.
    pub fn read(&self, pa: u64, out: &mut [u8]) -> bool {
        match self.find(pa, out.len()) {
            Some(virt) => {
                // SAFETY: `[virt, virt + len)` lies in a live region allocated by us (checked
                // under the lock); the driver shares it with the "device" on purpose.
                unsafe { core::ptr::copy(virt as *const u8, out.as_mut_ptr(), out.len()) };
                true
            }
            None => {
                self.bad_accesses.fetch_add(1, Ordering::Relaxed);
                out.fill(0);
                false
            }
        }
    }

    /// Device write at physical `pa`; false if out of range (nothing written).
    pub fn write(&self, pa: u64, data: &[u8]) -> bool {
        match self.find(pa, data.len()) {
            Some(virt) => {
                // SAFETY: as in `read`.
                unsafe { core::ptr::copy(data.as_ptr(), virt as *mut u8, data.len()) };
                true
            }
            None => {
                self.bad_accesses.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn read_be32(&self, pa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(pa, &mut b);
        u32::from_be_bytes(b)
    }

    pub fn write_be32(&self, pa: u64, v: u32) -> bool {
        self.write(pa, &v.to_be_bytes())
    }

    /// Whether `[pa, pa + len)` is live memory.
    pub fn valid(&self, pa: u64, len: usize) -> bool {
        self.find(pa, len).is_some()
    }
}

impl DmaAllocator for ModelDma {
    fn alloc_contiguous(&self, pages: usize) -> Option<DmaRegion> {
        if pages == 0 {
            return None;
        }
        let live = self.pages_live.load(Ordering::Relaxed);
        if live.saturating_add(pages as u64) > self.page_limit.load(Ordering::Relaxed) {
            return None;
        }
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).ok()?;
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return None;
        }
        let region = DmaRegion {
            phys: ptr as u64 + PHYS_OFFSET,
            virt: ptr as usize,
            len: pages * PAGE_SIZE,
        };
        self.regions.lock().insert(region.phys, region);
        self.pages_live.fetch_add(pages as u64, Ordering::Relaxed);
        Some(region)
    }

    unsafe fn dealloc(&self, region: DmaRegion) {
        let mut regions = self.regions.lock();
        if regions.get(&region.phys) == Some(&region) {
            regions.remove(&region.phys);
            drop(regions);
            self.pages_live
                .fetch_sub(region.pages() as u64, Ordering::Relaxed);
            if let Ok(layout) = Layout::from_size_align(region.len, PAGE_SIZE) {
                // SAFETY: allocated in `alloc_contiguous` with this layout, removed from the
                // registry above so it is freed once.
                unsafe { dealloc(region.virt as *mut u8, layout) };
            }
        }
    }

    fn virt_to_phys(&self, virt: usize) -> u64 {
        virt as u64 + PHYS_OFFSET
    }
}
