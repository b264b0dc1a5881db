//! Monotonic time from the TSC, calibrated at boot (CPUID leaf 0x15 when it gives the crystal
//! frequency, else a 5 ms gate of PIT channel 2).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

static TSC_HZ: AtomicU64 = AtomicU64::new(2_000_000_000);

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since the first instruction.
pub fn now_ns() -> u64 {
    let ticks = rdtsc().saturating_sub(crate::boot::boot_tsc());
    (ticks as u128 * 1_000_000_000 / tsc_hz() as u128) as u64
}

pub fn now_us() -> u64 {
    now_ns() / 1000
}

pub fn now_ms() -> u64 {
    now_ns() / 1_000_000
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let end = rdtsc() + us * tsc_hz() / 1_000_000;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// How the TSC frequency was found.
pub enum Source {
    Cpuid,
    Pit,
    Guess,
}

pub fn calibrate() -> Source {
    if let Some(hz) = cpuid_tsc_hz() {
        TSC_HZ.store(hz, Ordering::Relaxed);
        return Source::Cpuid;
    }
    if let Some(hz) = pit_tsc_hz() {
        TSC_HZ.store(hz, Ordering::Relaxed);
        return Source::Pit;
    }
    Source::Guess
}

fn cpuid_tsc_hz() -> Option<u64> {
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 0x15 {
        return None;
    }
    let r = core::arch::x86_64::__cpuid(0x15);
    (r.eax != 0 && r.ebx != 0 && r.ecx != 0).then(|| r.ecx as u64 * r.ebx as u64 / r.eax as u64)
}

fn pit_tsc_hz() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const GATE_MS: u64 = 5;
    let count = (PIT_HZ * GATE_MS / 1000) as u16;
    let mut ctl = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: PIT channel 2 and the NMI status/control port; used only here, at boot.
    unsafe {
        let v = ctl.read();
        ctl.write((v & !0x02) | 0x01); // speaker off, gate on
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        let v = ctl.read();
        ctl.write(v & !0x01); // restart the count with a rising gate edge
        ctl.write(v | 0x01);
        let t0 = rdtsc();
        // Bail out after ~1 s of a 10 GHz TSC: no PIT on this machine.
        while ctl.read() & 0x20 == 0 {
            if rdtsc() - t0 > 10_000_000_000 {
                return None;
            }
        }
        let t1 = rdtsc();
        let hz = (t1 - t0) * 1000 / GATE_MS;
        (hz > 10_000_000).then_some(hz)
    }
}
