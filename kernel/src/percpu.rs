//! Per-CPU data: one slot per CPU in a static table, found through the GS base.
//!
//! Every CPU points its `IA32_GS_BASE` at its own [`PerCpu`] slot (the boot CPU in
//! [`crate::cpu::init`], before anything else runs; each AP in `smp::ap_entry`), so
//! [`this_cpu`] is one `mov rax, gs:[0]` and works from the first instruction of Rust on. Slot 0
//! is the boot CPU; APs get 1, 2, ... in MADT order (see `smp`). Slots are cache-line aligned
//! (128 bytes: the adjacent-line prefetcher pairs lines) so one CPU's mailbox polling does not
//! share a line with another CPU's.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Most CPUs the kernel starts (more are listed but left halted, with a warning).
pub const MAX_CPUS: usize = 256;

/// Slot not used by any CPU.
pub const OFFLINE: u8 = 0;
/// Being started (INIT-SIPI-SIPI sent, not yet in Rust).
pub const STARTING: u8 = 1;
/// Online and parked: waits for work in its mailbox.
pub const PARKED: u8 = 2;
/// Running work handed by [`crate::smp::call_on`]; parks again when it returns.
pub const BUSY: u8 = 3;
/// Handed over for good by [`crate::smp::run_on`] (or the boot CPU, which runs the main loop).
pub const DEDICATED: u8 = 4;
/// Did not come up within the timeout: left alone (if it appears later it halts).
pub const FAILED: u8 = 5;

#[repr(C, align(128))]
pub struct PerCpu {
    /// This slot's index; offset 0, read by [`this_cpu`] through GS.
    index: usize,
    /// Local APIC ID (from the MADT; `u32::MAX` while unused).
    pub apic_id: AtomicU32,
    /// [`OFFLINE`], [`STARTING`], [`PARKED`], [`BUSY`], [`DEDICATED`] or [`FAILED`].
    pub state: AtomicU8,
    /// The mailbox: a function pointer (0 = empty), its argument, and whether it never returns.
    pub(crate) work_fn: AtomicUsize,
    pub(crate) work_arg: AtomicUsize,
    pub(crate) work_forever: AtomicBool,
    /// Work items this CPU has completed (returning ones).
    pub calls_done: AtomicU64,
    /// The kernel stack the CPU runs on, [bottom, top) (fault reports check for overflow).
    pub stack_bottom: AtomicU64,
    pub stack_top: AtomicU64,
    /// Tops of the IST stacks (double fault, NMI) given to its TSS.
    pub ist_df_top: AtomicU64,
    pub ist_nmi_top: AtomicU64,
    /// TSC when the CPU reached Rust (APs), for the bring-up report.
    pub up_tsc: AtomicU64,
    /// The local APIC ID the CPU read from its own APIC (cross-check against the MADT).
    pub seen_apic_id: AtomicU32,
}

impl PerCpu {
    const fn new(index: usize) -> Self {
        PerCpu {
            index,
            apic_id: AtomicU32::new(u32::MAX),
            state: AtomicU8::new(OFFLINE),
            work_fn: AtomicUsize::new(0),
            work_arg: AtomicUsize::new(0),
            work_forever: AtomicBool::new(false),
            calls_done: AtomicU64::new(0),
            stack_bottom: AtomicU64::new(0),
            stack_top: AtomicU64::new(0),
            ist_df_top: AtomicU64::new(0),
            ist_nmi_top: AtomicU64::new(0),
            up_tsc: AtomicU64::new(0),
            seen_apic_id: AtomicU32::new(u32::MAX),
        }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

static PERCPU: [PerCpu; MAX_CPUS] = {
    let mut table = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        table[i].index = i;
        i += 1;
    }
    table
};

/// The slot of CPU `cpu`.
pub fn get(cpu: usize) -> Option<&'static PerCpu> {
    PERCPU.get(cpu)
}

/// All slots (online or not).
#[allow(dead_code)] // API for the per-core datapath (issue 11)
pub fn all() -> &'static [PerCpu] {
    &PERCPU
}

/// Points this CPU's GS base at slot `cpu`. Called once per CPU, before [`this_cpu`] is used.
pub fn install(cpu: usize) {
    let slot = &PERCPU[cpu] as *const PerCpu as u64;
    // SAFETY: IA32_GS_BASE only affects GS-relative accesses, which only `this_cpu` makes.
    unsafe { x86_64::registers::model_specific::Msr::new(0xC000_0101).write(slot) };
}

/// The index of the CPU this runs on (0 = the boot CPU).
#[inline]
pub fn this_cpu() -> usize {
    let index: usize;
    // SAFETY: GS points at this CPU's slot (installed before any Rust code that could ask),
    // whose first field is the index.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) index, options(nostack, readonly, preserves_flags))
    };
    index
}

/// This CPU's slot.
#[inline]
pub fn current() -> &'static PerCpu {
    &PERCPU[this_cpu() % MAX_CPUS]
}
