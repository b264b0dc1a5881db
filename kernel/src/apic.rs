//! The local APIC, in the mode the firmware left it: xAPIC (registers in a 4 KiB MMIO page at
//! `IA32_APIC_BASE`, 0xFEE00000 by default, mapped uncached by [`init`]) or x2APIC (MSRs
//! 0x800+, when the firmware enabled it, as it must with APIC IDs above 254).
//!
//! Used to start the APs (INIT, STARTUP) and to wake a parked AP (a fixed IPI on
//! [`WAKE_VECTOR`]). Nothing else: the kernel is poll-mode, the boot CPU never enables
//! interrupts, and the LVT entries stay masked.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

/// Wakes a parked AP out of `hlt` (the only interrupt an AP ever takes).
pub const WAKE_VECTOR: u8 = 0xf0;
/// Spurious-interrupt vector programmed into the SVR (its handler only returns).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_X2APIC: u64 = 1 << 10;

const REG_ID: u32 = 0x20;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;

const ICR_INIT: u32 = 0x500;
const ICR_STARTUP: u32 = 0x600;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_LEVEL_TRIGGER: u32 = 1 << 15;
const ICR_PENDING: u32 = 1 << 12;

/// xAPIC MMIO base (identity-mapped), 0 until [`init`].
static BASE: AtomicU64 = AtomicU64::new(0);
static X2APIC: AtomicBool = AtomicBool::new(false);

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only architectural APIC MSRs are read, in the mode they exist in.
    unsafe { Msr::new(msr).read() }
}

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: only architectural APIC MSRs are written, with architectural values.
    unsafe { Msr::new(msr).write(v) }
}

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        return rdmsr(0x800 + (reg >> 4)) as u32;
    }
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `init` mapped the xAPIC page uncached; `reg` is a register offset in it.
    unsafe { ((base + reg as u64) as *const u32).read_volatile() }
}

fn write(reg: u32, v: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        wrmsr(0x800 + (reg >> 4), v as u64);
        return;
    }
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `read`.
    unsafe { ((base + reg as u64) as *mut u32).write_volatile(v) }
}

/// Whether the APIC is driven through MSRs.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Sets up the boot CPU's local APIC: global enable if the firmware left it off, the xAPIC page
/// mapped uncached, software enable (SVR). `madt_addr` is the MADT's idea of the xAPIC base (it
/// must agree with `IA32_APIC_BASE`, the one that counts).
pub fn init(madt_addr: u64) -> Result<(), &'static str> {
    if core::arch::x86_64::__cpuid(1).edx & (1 << 9) == 0 {
        return Err("the CPU has no local APIC (CPUID.1:EDX.APIC = 0)");
    }
    let mut msr = rdmsr(IA32_APIC_BASE);
    if msr & BASE_ENABLE == 0 {
        msr |= BASE_ENABLE;
        wrmsr(IA32_APIC_BASE, msr);
    }
    let x2 = msr & BASE_X2APIC != 0;
    X2APIC.store(x2, Ordering::Relaxed);
    if !x2 {
        let base = msr & 0x000f_ffff_ffff_f000;
        if base != madt_addr {
            log::warn!(
                "apic: MADT says the local APIC is at {madt_addr:#x}, IA32_APIC_BASE says {base:#x} (using the MSR)"
            );
        }
        crate::memory::map_uncached(base, 4096)?;
        BASE.store(base, Ordering::Relaxed);
    }
    enable_local();
    Ok(())
}

/// On an AP: the same mode as the boot CPU, software-enabled (so it can take the wake IPI).
pub fn init_ap() {
    let mut msr = rdmsr(IA32_APIC_BASE);
    if msr & BASE_ENABLE == 0 {
        msr |= BASE_ENABLE;
        wrmsr(IA32_APIC_BASE, msr);
    }
    if X2APIC.load(Ordering::Relaxed) && msr & BASE_X2APIC == 0 {
        wrmsr(IA32_APIC_BASE, msr | BASE_X2APIC);
    }
    enable_local();
}

fn enable_local() {
    let svr = read(REG_SVR);
    write(REG_SVR, (svr & !0xff) | 0x100 | SPURIOUS_VECTOR as u32);
}

/// This CPU's local APIC ID.
pub fn id() -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        read(REG_ID)
    } else {
        read(REG_ID) >> 24
    }
}

/// This CPU's APIC ID as CPUID reports it (leaf 0xB's x2APIC ID, else leaf 1's initial APIC
/// ID), without touching the APIC.
pub fn cpuid_id() -> u32 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax >= 0xb {
        let r = __cpuid_count(0xb, 0);
        if r.ebx != 0 {
            return r.edx;
        }
    }
    __cpuid(1).ebx >> 24
}

/// Ends the interrupt being handled (the wake IPI).
pub extern "C" fn eoi() {
    write(REG_EOI, 0);
}

/// Sends an IPI: `low` is the ICR's low word (vector, delivery mode, level, trigger).
fn send(apic_id: u32, low: u32) -> Result<(), &'static str> {
    if X2APIC.load(Ordering::Relaxed) {
        wrmsr(0x830, ((apic_id as u64) << 32) | low as u64);
        return Ok(());
    }
    if apic_id > 0xfe {
        return Err("APIC ID above 254 needs x2APIC mode");
    }
    wait_idle()?;
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, low);
    wait_idle()
}

/// Waits for the previous IPI to be delivered (xAPIC delivery status).
fn wait_idle() -> Result<(), &'static str> {
    let start = crate::time::now_us();
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        if crate::time::now_us() - start > 10_000 {
            return Err("the local APIC did not deliver an IPI within 10 ms");
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// INIT IPI (level assert): the AP resets and waits for a STARTUP IPI.
pub fn send_init(apic_id: u32) -> Result<(), &'static str> {
    send(apic_id, ICR_INIT | ICR_LEVEL_ASSERT | ICR_LEVEL_TRIGGER)
}

/// INIT level de-assert, sent after the INIT delay as the MP specification's sequence has it
/// (only old CPUs need it; x2APIC mode does not have it).
pub fn send_init_deassert(apic_id: u32) -> Result<(), &'static str> {
    if X2APIC.load(Ordering::Relaxed) {
        return Ok(());
    }
    send(apic_id, ICR_INIT | ICR_LEVEL_TRIGGER)
}

/// STARTUP IPI: the AP starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) -> Result<(), &'static str> {
    send(apic_id, ICR_STARTUP | ICR_LEVEL_ASSERT | page as u32)
}

/// A fixed interrupt on `vector`, edge-triggered.
pub fn send_fixed(apic_id: u32, vector: u8) -> Result<(), &'static str> {
    send(apic_id, ICR_LEVEL_ASSERT | vector as u32)
}
