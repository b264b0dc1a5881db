//! What the boot loader tells us: the memory map and the command line, from either protocol
//! (PVH `hvm_start_info` or Multiboot2 tags). Everything is copied into kernel statics before
//! the frame allocator may reuse the loader's memory.

use heapless::Vec;

/// One entry of the firmware memory map.
#[derive(Clone, Copy, Debug)]
pub struct MemRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    Usable,
    Reserved,
    Acpi,
    Nvs,
    Bad,
    Other(u32),
}

impl MemKind {
    fn from_e820(t: u32) -> Self {
        match t {
            1 => MemKind::Usable,
            2 => MemKind::Reserved,
            3 => MemKind::Acpi,
            4 => MemKind::Nvs,
            5 => MemKind::Bad,
            t => MemKind::Other(t),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            MemKind::Usable => "usable",
            MemKind::Reserved => "reserved",
            MemKind::Acpi => "acpi",
            MemKind::Nvs => "nvs",
            MemKind::Bad => "bad",
            MemKind::Other(_) => "other",
        }
    }
}

pub const MAX_REGIONS: usize = 128;
const CMDLINE_MAX: usize = 2048;

pub struct BootInfo {
    pub protocol: &'static str,
    pub memory: Vec<MemRegion, MAX_REGIONS>,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    pub rsdp: Option<u64>,
}

impl BootInfo {
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    fn set_cmdline(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(CMDLINE_MAX);
        for (dst, &b) in self.cmdline.iter_mut().zip(&bytes[..n]) {
            // Keep printable ASCII only: the command line ends up on the console.
            *dst = if (0x20..0x7f).contains(&b) { b } else { b' ' };
        }
        self.cmdline_len = n;
    }
}

/// Reads a NUL-terminated string of at most `max` bytes at physical address `addr`.
///
/// # Safety
/// `addr` must point into identity-mapped memory the loader filled.
unsafe fn c_str(addr: u64, max: usize) -> &'static [u8] {
    let p = addr as *const u8;
    let mut n = 0;
    // SAFETY: per the function contract, bytes up to the terminator are readable.
    while n < max && unsafe { p.add(n).read() } != 0 {
        n += 1;
    }
    // SAFETY: the n bytes were just read.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Parses the boot information left by the loader.
///
/// # Safety
/// `magic`/`info` must be what the trampoline received from the loader, and the loader's
/// structures must be intact (call before any memory is handed out).
pub unsafe fn parse(magic: u32, info: u64) -> Result<BootInfo, &'static str> {
    let mut bi = BootInfo {
        protocol: "",
        memory: Vec::new(),
        cmdline: [0; CMDLINE_MAX],
        cmdline_len: 0,
        rsdp: None,
    };
    match magic {
        crate::boot::PVH_MAGIC => {
            bi.protocol = "pvh";
            // SAFETY: per the contract, `info` points at an hvm_start_info.
            unsafe { parse_pvh(&mut bi, info)? };
        }
        crate::boot::MULTIBOOT2_MAGIC => {
            bi.protocol = "multiboot2";
            // SAFETY: per the contract, `info` points at a Multiboot2 information structure.
            unsafe { parse_multiboot2(&mut bi, info)? };
        }
        _ => return Err("unknown boot protocol (bad magic)"),
    }
    Ok(bi)
}

/// Longest RSDP (ACPI 2.0+: 36 bytes).
const RSDP_MAX: usize = 36;
/// The copy of a Multiboot2 RSDP tag (written once, while parsing, on the boot CPU).
static mut RSDP_COPY: [u8; RSDP_MAX] = [0; RSDP_MAX];

unsafe fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: callers pass addresses inside loader structures; unaligned reads are fine.
    unsafe { (addr as *const T).read_unaligned() }
}

unsafe fn parse_pvh(bi: &mut BootInfo, info: u64) -> Result<(), &'static str> {
    // SAFETY (whole function): `info` is an hvm_start_info; offsets per xen/arch-x86/hvm/start_info.h.
    unsafe {
        if read::<u32>(info) != crate::boot::PVH_MAGIC {
            return Err("hvm_start_info has a bad magic");
        }
        let version: u32 = read(info + 4);
        let cmdline: u64 = read(info + 24);
        let rsdp: u64 = read(info + 32);
        if cmdline != 0 {
            bi.set_cmdline(c_str(cmdline, CMDLINE_MAX));
        }
        if rsdp != 0 {
            bi.rsdp = Some(rsdp);
        }
        if version < 1 {
            return Err("hvm_start_info version 0 has no memory map");
        }
        let map: u64 = read(info + 40);
        let entries: u32 = read(info + 48);
        for i in 0..entries.min(MAX_REGIONS as u32) as u64 {
            let e = map + i * 24;
            let _ = bi.memory.push(MemRegion {
                start: read(e),
                len: read(e + 8),
                kind: MemKind::from_e820(read(e + 16)),
            });
        }
    }
    Ok(())
}

unsafe fn parse_multiboot2(bi: &mut BootInfo, info: u64) -> Result<(), &'static str> {
    // SAFETY (whole function): `info` is a Multiboot2 boot information structure.
    unsafe {
        let total: u32 = read(info);
        if total < 16 {
            return Err("multiboot2 information too short");
        }
        let end = info + total as u64;
        let mut tag = info + 8;
        while tag + 8 <= end {
            let kind: u32 = read(tag);
            let size: u32 = read(tag + 4);
            if kind == 0 || size < 8 {
                break;
            }
            match kind {
                1 => bi.set_cmdline(c_str(tag + 8, (size as usize - 8).min(CMDLINE_MAX))),
                6 => {
                    let entry_size: u32 = read(tag + 8);
                    if entry_size >= 24 {
                        let mut e = tag + 16;
                        while e + 24 <= tag + size as u64 {
                            let _ = bi.memory.push(MemRegion {
                                start: read(e),
                                len: read(e + 8),
                                kind: MemKind::from_e820(read(e + 16)),
                            });
                            e += entry_size as u64;
                        }
                    }
                }
                // The RSDP is inside the loader's information, which the frame allocator may
                // reuse: keep a copy (prefer the ACPI 2.0 one, tag 15).
                14 | 15 if kind == 15 || bi.rsdp.is_none() => {
                    let n = (size as usize - 8).min(RSDP_MAX);
                    let copy = &raw mut RSDP_COPY;
                    core::ptr::copy_nonoverlapping((tag + 8) as *const u8, copy as *mut u8, n);
                    bi.rsdp = Some(copy as u64);
                }
                _ => {}
            }
            tag += (size as u64 + 7) & !7;
        }
    }
    if bi.memory.is_empty() {
        return Err("multiboot2 information has no memory map");
    }
    Ok(())
}
