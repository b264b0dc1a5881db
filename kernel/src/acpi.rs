//! ACPI, as far as SMP needs it: the RSDP (from the boot loader — PVH `rsdp_paddr`, the
//! Multiboot2 ACPI tags, which also cover UEFI — else the legacy BIOS areas: the first KiB of
//! the EBDA and 0xE0000–0xFFFFF), the RSDT/XSDT, and the MADT's local APICs and I/O APICs.
//!
//! Every table's checksum and length are checked before it is used; a bad or missing table is
//! an [`AcpiError`] with the reason, never a panic (the caller then runs on one CPU).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What went wrong, for the console.
pub type AcpiError = String;

/// Tables longer than this are taken as corrupt (a MADT for thousands of CPUs is ~100 KiB).
const MAX_TABLE_LEN: u32 = 4 << 20;
const FOUR_GIB: u64 = 4 << 30;

/// A local APIC of the MADT (types 0 and 9).
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // uid and online_capable: for CPU hot-plug, later
pub struct LocalApic {
    pub apic_id: u32,
    /// ACPI processor UID.
    pub uid: u32,
    /// Present and usable now.
    pub enabled: bool,
    /// Not enabled, but may be brought online at run time (hot-plug).
    pub online_capable: bool,
}

/// An I/O APIC of the MADT (type 1).
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    pub id: u8,
    pub addr: u32,
    pub gsi_base: u32,
}

/// The parts of the MADT the kernel uses.
#[derive(Clone, Debug)]
pub struct Madt {
    /// Physical address of the xAPIC registers (type 5 override applied).
    pub lapic_addr: u64,
    /// The machine also has dual 8259 PICs (flag PCAT_COMPAT).
    pub pcat_compat: bool,
    /// Local APICs that are enabled or online-capable, in table order, each APIC ID once.
    pub cpus: Vec<LocalApic>,
    pub ioapics: Vec<IoApic>,
    /// Where the tables came from, for the console: "rsdp 0x… rev 2 (OEM …), xsdt 0x…".
    pub source: String,
}

/// Physical memory as bytes (identity-mapped below 4 GiB; mapped on demand above).
fn phys(addr: u64, len: usize) -> Result<&'static [u8], AcpiError> {
    let end = addr
        .checked_add(len as u64)
        .ok_or_else(|| format!("table at {addr:#x} wraps around"))?;
    if addr == 0 {
        return Err("null table address".into());
    }
    if end > FOUR_GIB {
        crate::memory::map_mmio(addr, len as u64)
            .map_err(|e| format!("cannot map {addr:#x}+{len:#x}: {e}"))?;
    }
    // SAFETY: the range is identity-mapped (below 4 GiB by the boot tables, above just now)
    // and firmware tables are only read.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u32_at(b, off) as u64 | (u32_at(b, off + 4) as u64) << 32
}

fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// A validated RSDP.
#[derive(Clone, Copy, Debug)]
pub struct Rsdp {
    pub addr: u64,
    pub revision: u8,
    pub oem: [u8; 6],
    pub rsdt: u32,
    /// 0 when revision < 2 or the extended checksum fails.
    pub xsdt: u64,
}

fn parse_rsdp(addr: u64) -> Result<Rsdp, AcpiError> {
    let b = phys(addr, 20)?;
    if &b[..8] != b"RSD PTR " {
        return Err(format!("no RSDP signature at {addr:#x}"));
    }
    if !checksum_ok(b) {
        return Err(format!("RSDP at {addr:#x} has a bad checksum"));
    }
    let mut r = Rsdp {
        addr,
        revision: b[15],
        oem: [b[9], b[10], b[11], b[12], b[13], b[14]],
        rsdt: u32_at(b, 16),
        xsdt: 0,
    };
    if r.revision >= 2 {
        let ext = phys(addr, 36)?;
        let len = u32_at(ext, 20);
        if !(36..=4096).contains(&len) {
            log::warn!("acpi: RSDP at {addr:#x} has a bad length {len}: using the RSDT");
        } else if !checksum_ok(phys(addr, len as usize)?) {
            log::warn!("acpi: RSDP at {addr:#x} has a bad extended checksum: using the RSDT");
        } else {
            r.xsdt = u64_at(ext, 24);
        }
    }
    Ok(r)
}

/// Scans `[start, end)` on 16-byte boundaries for a valid RSDP.
fn scan(start: u64, end: u64) -> Option<Rsdp> {
    (start..end)
        .step_by(16)
        .filter(|&a| a + 20 <= end)
        .find_map(|a| parse_rsdp(a).ok())
}

/// Finds the RSDP: the loader's pointer if it holds a valid one, else the BIOS areas.
pub fn find_rsdp(hint: Option<u64>) -> Result<Rsdp, AcpiError> {
    if let Some(addr) = hint {
        match parse_rsdp(addr) {
            Ok(r) => return Ok(r),
            Err(e) => log::warn!("acpi: the boot loader's RSDP: {e}; scanning the BIOS areas"),
        }
    }
    // SAFETY: the BDA word at 0x40E (EBDA segment) is identity-mapped low memory.
    let ebda = (unsafe { (0x40e as *const u16).read_unaligned() } as u64) << 4;
    if (0x8_0000..0xa_0000).contains(&ebda)
        && let Some(r) = scan(ebda, ebda + 1024)
    {
        return Ok(r);
    }
    scan(0xe_0000, 0x10_0000)
        .ok_or_else(|| "no ACPI RSDP (no loader tag, none in the BIOS areas)".into())
}

/// A system description table, checked: signature, sane length, checksum.
fn table(addr: u64, want: &[u8; 4]) -> Result<&'static [u8], AcpiError> {
    let head = phys(addr, 36)?;
    let sig = printable(&head[..4]);
    if &head[..4] != want {
        return Err(format!(
            "table at {addr:#x} is {sig:?}, expected {:?}",
            printable(want)
        ));
    }
    let len = u32_at(head, 4);
    if !(36..=MAX_TABLE_LEN).contains(&len) {
        return Err(format!("{sig} at {addr:#x} has a bad length {len}"));
    }
    let t = phys(addr, len as usize)?;
    if !checksum_ok(t) {
        return Err(format!("{sig} at {addr:#x} has a bad checksum"));
    }
    Ok(t)
}

/// The entries of the XSDT (8-byte) or RSDT (4-byte).
fn root_entries(r: &Rsdp) -> Result<(Vec<u64>, String), AcpiError> {
    if r.xsdt != 0 {
        match table(r.xsdt, b"XSDT") {
            Ok(t) => {
                let e = t[36..]
                    .as_chunks::<8>()
                    .0
                    .iter()
                    .map(|c| u64::from_le_bytes(*c))
                    .collect();
                return Ok((e, format!("xsdt {:#x}", r.xsdt)));
            }
            Err(e) => log::warn!("acpi: {e}: trying the RSDT"),
        }
    }
    let t = table(r.rsdt as u64, b"RSDT")?;
    let e = t[36..]
        .as_chunks::<4>()
        .0
        .iter()
        .map(|c| u32::from_le_bytes(*c) as u64)
        .collect();
    Ok((e, format!("rsdt {:#x}", r.rsdt)))
}

/// Finds and parses the MADT ("APIC").
pub fn madt(rsdp: &Rsdp) -> Result<Madt, AcpiError> {
    let (entries, root) = root_entries(rsdp)?;
    let mut bad = None;
    let mut found = None;
    for &addr in &entries {
        let Ok(head) = phys(addr, 4) else { continue };
        if head == b"APIC" {
            match table(addr, b"APIC") {
                Ok(t) => {
                    found = Some((addr, t));
                    break;
                }
                Err(e) => bad = Some(e),
            }
        }
    }
    let (addr, t) = match (found, bad) {
        (Some(f), _) => f,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(format!("no MADT in the {root}")),
    };
    if t.len() < 44 {
        return Err(format!(
            "MADT at {addr:#x} is too short ({} bytes)",
            t.len()
        ));
    }
    let mut m = Madt {
        lapic_addr: u32_at(t, 36) as u64,
        pcat_compat: u32_at(t, 40) & 1 != 0,
        cpus: Vec::new(),
        ioapics: Vec::new(),
        source: format!(
            "rsdp {:#x} rev {} (OEM {:?}), {root}, madt {addr:#x}",
            rsdp.addr,
            rsdp.revision,
            printable(&rsdp.oem).trim_end()
        ),
    };
    let mut off = 44;
    while off + 2 <= t.len() {
        let (kind, len) = (t[off], t[off + 1] as usize);
        if len < 2 || off + len > t.len() {
            log::warn!(
                "acpi: MADT entry at offset {off} has a bad length {len}: ignoring the rest"
            );
            break;
        }
        let e = &t[off..off + len];
        let cpu = match (kind, len) {
            (0, 8..) => Some((e[3] as u32, e[2] as u32, u32_at(e, 4))),
            (9, 16..) => Some((u32_at(e, 4), u32_at(e, 12), u32_at(e, 8))),
            (1, 12..) => {
                m.ioapics.push(IoApic {
                    id: e[2],
                    addr: u32_at(e, 4),
                    gsi_base: u32_at(e, 8),
                });
                None
            }
            (5, 12..) => {
                m.lapic_addr = u64_at(e, 4);
                None
            }
            _ => None,
        };
        if let Some((apic_id, uid, flags)) = cpu {
            let enabled = flags & 1 != 0;
            let online_capable = flags & 2 != 0;
            if (enabled || online_capable)
                && apic_id != u32::MAX
                && !m.cpus.iter().any(|c| c.apic_id == apic_id)
            {
                m.cpus.push(LocalApic {
                    apic_id,
                    uid,
                    enabled,
                    online_capable,
                });
            }
        }
        off += len;
    }
    Ok(m)
}
