//! Physical memory: a frame allocator over the firmware memory map, the kernel heap carved from
//! it, and identity mappings for RAM above 4 GiB and device memory (BARs) wherever it sits.

use crate::bootinfo::{MemKind, MemRegion};
use linked_list_allocator::LockedHeap;
use spin::Mutex;

pub const PAGE: u64 = 4096;
const HUGE: u64 = 2 * 1024 * 1024;
const FOUR_GIB: u64 = 4 << 30;
/// The heap gets this share of usable memory; the rest stays for DMA buffers and page tables.
const HEAP_SHARE_PERCENT: u64 = 50;
const HEAP_MIN: u64 = 1 << 20;
const HEAP_MAX: u64 = 2 << 30;

/// The kernel heap: size classes in front of a first-fit heap.
///
/// A first-fit list allocator alone degrades as the heap fragments: every allocation walks the
/// holes, and thousands of small allocations (an OpenFlow multipart reply, a table dump) made
/// it take seconds. Allocations up to [`MAX_CLASS`] bytes come from per-class free lists (O(1)
/// alloc and free, no fragmentation across classes), refilled a chunk at a time from the list
/// heap, which keeps the large and rare allocations.
#[global_allocator]
static ALLOCATOR: ClassAllocator = ClassAllocator {
    heap: LockedHeap::empty(),
    classes: Mutex::new([0; N_CLASSES]),
};

static HEAP_ALIAS: &LockedHeap = &ALLOCATOR.heap;

const MIN_CLASS_SHIFT: u32 = 4; // 16 bytes
const N_CLASSES: usize = 9; // 16 .. 4096
const MAX_CLASS: usize = 1 << (MIN_CLASS_SHIFT as usize + N_CLASSES - 1);
const CHUNK: usize = 64 * 1024;

struct ClassAllocator {
    heap: LockedHeap,
    /// Head of each class's free list (0 = empty); a free block holds the next pointer.
    classes: Mutex<[usize; N_CLASSES]>,
}

fn class_of(layout: core::alloc::Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS_SHIFT);
    if size > MAX_CLASS {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_CLASS_SHIFT) as usize)
}

// SAFETY: blocks of a class are `1 << (class + MIN_CLASS_SHIFT)` bytes, aligned to their size
// (chunks are CHUNK-aligned and split evenly), so they satisfy any layout mapped to the class;
// the free lists are only touched under their lock.
unsafe impl core::alloc::GlobalAlloc for ClassAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: forwarded unchanged.
            return unsafe { self.heap.alloc(layout) };
        };
        let size = 1usize << (class as u32 + MIN_CLASS_SHIFT);
        let mut lists = self.classes.lock();
        if lists[class] == 0 {
            let chunk = core::alloc::Layout::from_size_align(CHUNK, CHUNK).expect("valid layout");
            // SAFETY: a plain allocation from the list heap.
            let base = unsafe { self.heap.alloc(chunk) } as usize;
            if base == 0 {
                return core::ptr::null_mut();
            }
            // Thread the chunk's blocks into the free list.
            let mut next = 0;
            for i in (0..CHUNK / size).rev() {
                let block = base + i * size;
                // SAFETY: inside the chunk just allocated.
                unsafe { (block as *mut usize).write(next) };
                next = block;
            }
            lists[class] = next;
        }
        let block = lists[class];
        // SAFETY: a free block holds the next free block's address.
        lists[class] = unsafe { (block as *const usize).read() };
        block as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        match class_of(layout) {
            Some(class) => {
                let mut lists = self.classes.lock();
                // SAFETY: the block is ours again; it stores the list link.
                unsafe { (ptr as *mut usize).write(lists[class]) };
                lists[class] = ptr as usize;
            }
            // SAFETY: allocated by the list heap with this layout.
            None => unsafe { self.heap.dealloc(ptr, layout) },
        }
    }
}

/// Hands out physical frames: bump allocation inside free ranges (sorted by address, so low
/// memory goes first), plus a free list of returned single frames.
pub struct FrameAllocator {
    ranges: heapless::Vec<(u64, u64), 64>,
    free_list: u64,
    pub total: u64,
    pub used: u64,
}

impl FrameAllocator {
    fn new(map: &[MemRegion], reserved: &[(u64, u64)]) -> Self {
        let mut fa = FrameAllocator {
            ranges: heapless::Vec::new(),
            free_list: 0,
            total: 0,
            used: 0,
        };
        for r in map.iter().filter(|r| r.kind == MemKind::Usable) {
            let start = r.start.div_ceil(PAGE) * PAGE;
            let end = r.start.saturating_add(r.len) / PAGE * PAGE;
            fa.add_range(start, end, reserved);
        }
        fa.ranges.sort_unstable();
        fa
    }

    /// Adds [start, end) minus every reserved range.
    fn add_range(&mut self, start: u64, end: u64, reserved: &[(u64, u64)]) {
        if start >= end {
            return;
        }
        for &(rs, re) in reserved {
            if rs < end && re > start {
                self.add_range(start, rs.min(end), reserved);
                self.add_range(re.max(start), end, reserved);
                return;
            }
        }
        if self.ranges.push((start, end)).is_ok() {
            self.total += end - start;
        }
    }

    /// `pages` contiguous frames aligned to `align` bytes (a power of two ≥ 4096).
    pub fn alloc(&mut self, pages: u64, align: u64) -> Option<u64> {
        if pages == 1 && align <= PAGE && self.free_list != 0 {
            let frame = self.free_list;
            // SAFETY: frames on the free list are identity-mapped and hold the next pointer.
            self.free_list = unsafe { (frame as *const u64).read() };
            self.used += PAGE;
            return Some(frame);
        }
        let size = pages.checked_mul(PAGE)?;
        for r in self.ranges.iter_mut() {
            let start = r.0.checked_add(align - 1)? & !(align - 1);
            if start.checked_add(size)? <= r.1 {
                r.0 = start + size;
                self.used += size;
                return Some(start);
            }
        }
        None
    }

    /// Returns frames to the allocator.
    pub fn free(&mut self, addr: u64, pages: u64) {
        for i in 0..pages {
            let frame = addr + i * PAGE;
            // SAFETY: the caller owned the frame; it is identity-mapped and now unused.
            unsafe { (frame as *mut u64).write(self.free_list) };
            self.free_list = frame;
        }
        self.used = self.used.saturating_sub(pages * PAGE);
    }

    fn largest_range(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).max().unwrap_or(0)
    }
}

pub static FRAMES: Mutex<Option<FrameAllocator>> = Mutex::new(None);

/// Allocates zeroed, contiguous, identity-mapped memory (page tables, DMA rings, packet pools).
pub fn alloc_zeroed_pages(pages: u64) -> Option<u64> {
    let addr = FRAMES.lock().as_mut()?.alloc(pages, PAGE)?;
    // SAFETY: freshly allocated, identity-mapped frames owned by the caller now.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (pages * PAGE) as usize) };
    Some(addr)
}

/// Allocates contiguous, identity-mapped memory without clearing it (stacks).
pub fn alloc_pages(pages: u64) -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc(pages, PAGE)
}

pub fn free_pages(addr: u64, pages: u64) {
    if let Some(fa) = FRAMES.lock().as_mut() {
        fa.free(addr, pages);
    }
}

pub struct MemorySummary {
    pub usable: u64,
    pub heap: u64,
}

/// Sets up the frame allocator and the heap from the memory map.
pub fn init(map: &[MemRegion]) -> Result<MemorySummary, &'static str> {
    let (kstart, kend) = crate::boot::kernel_range();
    // Keep the first MiB (real-mode structures, EBDA, loader data, and the AP trampoline page
    // smp.rs copies to a usable page there) and the kernel image.
    let reserved = [(0, 0x10_0000), (kstart, kend)];
    let mut fa = FrameAllocator::new(map, &reserved);
    let usable = fa.total;
    if usable == 0 {
        return Err("no usable memory in the memory map");
    }
    // RAM above 4 GiB is not covered by the boot page tables: map it (tables come from low RAM).
    let high: heapless::Vec<(u64, u64), 64> = fa
        .ranges
        .iter()
        .copied()
        .filter(|r| r.1 > FOUR_GIB)
        .collect();
    for (start, end) in high {
        map_identity(&mut fa, start.max(FOUR_GIB), end, false)?;
    }
    let heap = (usable * HEAP_SHARE_PERCENT / 100)
        .clamp(HEAP_MIN, HEAP_MAX)
        .min(fa.largest_range() / PAGE * PAGE * 3 / 4);
    let heap_start = fa
        .alloc(heap / PAGE, HUGE)
        .or_else(|| fa.alloc(heap / PAGE, PAGE))
        .ok_or("no room for the heap")?;
    // SAFETY: the range was just taken from the frame allocator and is identity-mapped.
    unsafe { HEAP_ALIAS.lock().init(heap_start as *mut u8, heap as usize) };
    *FRAMES.lock() = Some(fa);
    Ok(MemorySummary { usable, heap })
}

/// Bytes the frame allocator can still hand out.
pub fn free_bytes() -> u64 {
    FRAMES
        .lock()
        .as_ref()
        .map(|fa| fa.ranges.iter().map(|r| r.1 - r.0).sum())
        .unwrap_or(0)
}

/// Bytes of heap in use and free.
pub fn heap_usage() -> (usize, usize) {
    let h = HEAP_ALIAS.lock();
    (h.used(), h.free())
}

const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const HUGE_PAGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Identity-maps [start, end) with 2 MiB pages; `uncached` for device memory.
fn map_identity(
    fa: &mut FrameAllocator,
    start: u64,
    end: u64,
    uncached: bool,
) -> Result<(), &'static str> {
    let (cr3, _) = x86_64::registers::control::Cr3::read_raw();
    let pml4 = cr3.start_address().as_u64();
    let flags = PRESENT | WRITABLE | HUGE_PAGE | if uncached { PCD | PWT } else { 0 };
    let mut addr = start & !(HUGE - 1);
    while addr < end {
        if addr >= 1 << 46 {
            return Err("address beyond the identity map's reach");
        }
        let pdpt = next_table(fa, pml4, (addr >> 39) & 511)?;
        let pd = next_table(fa, pdpt, (addr >> 30) & 511)?;
        let pde = (pd + ((addr >> 21) & 511) * 8) as *mut u64;
        // SAFETY: `pd` is a page table reachable from CR3, identity-mapped.
        unsafe {
            if pde.read() & PRESENT == 0 {
                pde.write(addr | flags);
            }
        }
        addr += HUGE;
    }
    // SAFETY: reloading CR3 flushes stale TLB entries; the tables stay valid.
    unsafe { x86_64::registers::control::Cr3::write_raw(cr3, 0) };
    Ok(())
}

/// The table an entry points to, created (zeroed) if absent.
fn next_table(fa: &mut FrameAllocator, table: u64, index: u64) -> Result<u64, &'static str> {
    let entry = (table + index * 8) as *mut u64;
    // SAFETY: `table` is a page table reachable from CR3, identity-mapped below 4 GiB.
    unsafe {
        let e = entry.read();
        if e & PRESENT != 0 {
            if e & HUGE_PAGE != 0 {
                return Err("range already covered by a 1 GiB page");
            }
            return Ok(e & ADDR_MASK);
        }
        let frame = fa.alloc(1, PAGE).ok_or("out of memory for page tables")?;
        if frame >= FOUR_GIB {
            return Err("page table frame above 4 GiB");
        }
        core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize);
        entry.write(frame | PRESENT | WRITABLE);
        Ok(frame)
    }
}

/// Makes device memory (a BAR) at [phys, phys + len) accessible, uncached. Memory below 4 GiB is
/// already mapped (the firmware's MTRRs make the PCI hole uncached).
pub fn map_mmio(phys: u64, len: u64) -> Result<(), &'static str> {
    let end = phys.checked_add(len).ok_or("BAR range overflows")?;
    if end <= FOUR_GIB {
        return Ok(());
    }
    let mut guard = FRAMES.lock();
    let fa = guard.as_mut().ok_or("memory not initialised")?;
    map_identity(fa, phys.max(FOUR_GIB), end, true)
}

/// Makes [phys, phys + len) uncached device memory for registers the firmware's MTRRs may not
/// cover (the local APIC page): below 4 GiB, PCD|PWT on the boot map's 2 MiB pages that hold
/// it (they hold nothing else there: the LAPIC's 0xFEE00000–0xFEFFFFFF); above, an uncached
/// mapping. Call before the APs start (they share these tables).
pub fn map_uncached(phys: u64, len: u64) -> Result<(), &'static str> {
    let end = phys.checked_add(len).ok_or("range overflows")?;
    if end > FOUR_GIB {
        map_mmio(phys.max(FOUR_GIB), end - phys.max(FOUR_GIB))?;
    }
    let (cr3, _) = x86_64::registers::control::Cr3::read_raw();
    let pml4 = cr3.start_address().as_u64();
    let mut addr = phys & !(HUGE - 1);
    while addr < end.min(FOUR_GIB) {
        // SAFETY: the boot page tables, reachable from CR3 and identity-mapped below 4 GiB.
        unsafe {
            let pml4e = ((pml4 + ((addr >> 39) & 511) * 8) as *const u64).read();
            if pml4e & PRESENT == 0 {
                return Err("address not in the boot map");
            }
            let pdpte = ((pml4e & ADDR_MASK) + ((addr >> 30) & 511) * 8) as *const u64;
            let pdpte = pdpte.read();
            if pdpte & PRESENT == 0 || pdpte & HUGE_PAGE != 0 {
                return Err("address not mapped by 2 MiB pages");
            }
            let pde = ((pdpte & ADDR_MASK) + ((addr >> 21) & 511) * 8) as *mut u64;
            let v = pde.read();
            if v & PRESENT == 0 || v & HUGE_PAGE == 0 {
                return Err("address not mapped by a 2 MiB page");
            }
            pde.write(v | PCD | PWT);
        }
        addr += HUGE;
    }
    // SAFETY: reloading CR3 flushes the stale TLB entries; the tables stay valid.
    unsafe { x86_64::registers::control::Cr3::write_raw(cr3, 0) };
    Ok(())
}
