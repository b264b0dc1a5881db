//! SMP bring-up and the handing of work to the application processors (APs).
//!
//! # Bring-up ([`start_aps`], once, on the boot CPU after memory init)
//!
//! 1. ACPI: RSDP → RSDT/XSDT → MADT ([`crate::acpi`]); every enabled local APIC is a CPU.
//!    Online-capable but disabled ones (hot-plug slots) are listed, not started. Without a valid
//!    MADT the kernel says why and runs on the boot CPU alone.
//! 2. The boot CPU's local APIC ([`crate::apic`]: xAPIC page mapped uncached, or x2APIC).
//! 3. The trampoline (`ap_trampoline.S`) is copied to a usable page below 1 MiB (memory.rs
//!    keeps the whole first MiB from the frame allocator, so nothing else lives there); each
//!    AP gets a 256 KiB kernel stack and 16 KiB IST stacks (double fault, NMI) from the frame
//!    allocator.
//! 4. INIT to every AP, 10 ms, STARTUP, 200 µs, a second STARTUP to those not yet arrived (the
//!    Intel MP specification's sequence), all APs at once so the bring-up costs the 10 ms INIT
//!    delay plus ~1 ms per boot however many CPUs there are (~16 ms in all under TCG). An AP runs real → protected → long mode on the boot CPU's page
//!    tables (CR3), then `ap_entry` in Rust: GS base → its [`crate::percpu`] slot, its own
//!    GDT + TSS (IST stacks), the shared IDT, its local APIC software-enabled; then it parks.
//! 5. Each AP that does not check in within 100 ms is reported (`WARN smp: cpu N (apic A) did
//!    not come up ...`) and left alone (should it appear later, it halts); the boot goes on.
//!    Console: `smp: cpu N (apic A) up in T us`, then `smp: N cpus online ... in T us`, then a
//!    cross-CPU check (each AP runs a function through its mailbox, checks `this_cpu()` and its
//!    own APIC ID against the MADT and bumps a shared counter): `smp: cross-cpu check ok: ...`.
//!
//! # Handing work to a CPU
//!
//! CPUs are numbered 0 (the boot CPU, which runs the main loop) to [`max_cpu`], in MADT order;
//! a CPU that failed to start keeps its number but is not online, so iterate with [`online`].
//!
//! - [`cpu_count`]: CPUs online (boot CPU included); [`this_cpu`]: the caller's number (GS
//!   relative, ~1 ns; works on every CPU from its first Rust instruction); [`online`]: the
//!   numbers of the online CPUs; [`apic_id`]: a CPU's local APIC ID.
//! - [`run_on`]`(cpu, f: fn(cpu, arg) -> !, arg)`: hands a parked CPU over for good (a per-core
//!   datapath loop). [`call_on`]`(cpu, f: fn(cpu, arg), arg)`: runs `f` there and parks the CPU
//!   again afterwards; [`wait_idle`] waits for it. Both fail with [`SmpError`] if the CPU is
//!   not parked (offline, busy, dedicated, or the caller itself).
//! - The mailbox is per CPU (function pointer, argument, "never returns" flag) in its percpu
//!   slot: the poster claims it with a compare-exchange PARKED → BUSY/DEDICATED, writes the
//!   argument, publishes the function pointer with Release, and sends the wake IPI. `f` runs
//!   with interrupts disabled.
//!
//! # Parked APs and interrupts
//!
//! The kernel is poll-mode and keeps interrupts disabled. A parked AP checks its mailbox, then
//! sleeps with `sti; hlt; cli` (the STI shadow makes the check-then-sleep race-free: a wake IPI
//! sent after the check is taken by the `hlt`), so idle APs cost no host CPU under a hypervisor
//! or TCG — spinning ones would steal the boot CPU's host thread on a small host. The only
//! interrupt an AP expects is [`crate::apic::WAKE_VECTOR`] (LVTs masked, no I/O APIC routes;
//! any other external vector is acknowledged and ignored the same way); work runs with
//! interrupts off, and a datapath given by [`run_on`] polls as it likes.

use crate::percpu::{self, BUSY, DEDICATED, FAILED, MAX_CPUS, OFFLINE, PARKED, STARTING};
use crate::{acpi, apic, bootinfo, memory, time};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

core::arch::global_asm!(include_str!("ap_trampoline.S"), options(att_syntax));

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_params: u8;
    static ap_trampoline_end: u8;
}

/// The trampoline's parameters, at `ap_trampoline_params` (layout shared with the assembly).
#[repr(C)]
struct ApParams {
    cr3: u64,
    entry: u64,
    /// Physical address of `count` stack tops, one per ticket.
    stacks: u64,
    count: u32,
    /// Next ticket (each AP takes one in long mode).
    ticket: u32,
    /// APs that reached the trampoline (real mode) and long mode: diagnostics for timeouts.
    arrived: u32,
    long: u32,
}

/// Kernel stack of each AP.
const AP_STACK_PAGES: u64 = 64; // 256 KiB
/// Each IST stack (double fault, NMI) of an AP.
const IST_PAGES: u64 = 4; // 16 KiB
/// How long an AP may take from its STARTUP IPI to Rust.
const AP_TIMEOUT_US: u64 = 100_000;
/// The MP specification's delays: after INIT, and between the two STARTUP IPIs.
const INIT_DELAY_US: u64 = 10_000;
const SIPI_DELAY_US: u64 = 200;

/// CPUs online (the boot CPU counts from `start_aps` on; 1 before).
static ONLINE: AtomicUsize = AtomicUsize::new(1);
/// Highest CPU number assigned.
static MAX_CPU: AtomicUsize = AtomicUsize::new(0);
/// Stack tops per trampoline ticket.
static TICKET_STACKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Stack bottoms per ticket (for the fault reports' overflow check).
static TICKET_STACK_BOTTOMS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Why work could not be handed to a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// No such CPU, or it is not online.
    Offline,
    /// It is running work already (or was handed over with `run_on`).
    Busy,
    /// The caller asked for itself.
    ThisCpu,
    /// The wake IPI could not be sent.
    Ipi(&'static str),
}

/// The number of CPUs online, the boot CPU included.
#[allow(dead_code)] // API for the per-core datapath (issue 11)
pub fn cpu_count() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// The number of the CPU this runs on (0 = the boot CPU).
pub fn this_cpu() -> usize {
    percpu::this_cpu()
}

/// The highest CPU number assigned (online or not).
pub fn max_cpu() -> usize {
    MAX_CPU.load(Ordering::Acquire)
}

/// Whether `cpu` is online (parked, busy or dedicated).
pub fn is_online(cpu: usize) -> bool {
    percpu::get(cpu).is_some_and(|p| matches!(p.state(), PARKED | BUSY | DEDICATED))
}

/// The numbers of the online CPUs, ascending (0 first).
pub fn online() -> impl Iterator<Item = usize> {
    (0..=max_cpu()).filter(|&c| is_online(c))
}

/// The local APIC ID of `cpu`.
pub fn apic_id(cpu: usize) -> Option<u32> {
    percpu::get(cpu)
        .map(|p| p.apic_id.load(Ordering::Acquire))
        .filter(|&id| id != u32::MAX)
}

/// Whether `cpu` is parked, waiting for work.
#[allow(dead_code)] // API for the per-core datapath (issue 11)
pub fn is_idle(cpu: usize) -> bool {
    percpu::get(cpu).is_some_and(|p| p.state() == PARKED)
}

/// Hands parked CPU `cpu` over for good: it runs `f(cpu, arg)` (a per-core loop).
pub fn run_on(cpu: usize, f: fn(usize, usize) -> !, arg: usize) -> Result<(), SmpError> {
    post(cpu, f as usize, arg, true)
}

/// Runs `f(cpu, arg)` on parked CPU `cpu`, which parks again when `f` returns ([`wait_idle`]).
pub fn call_on(cpu: usize, f: fn(usize, usize), arg: usize) -> Result<(), SmpError> {
    post(cpu, f as usize, arg, false)
}

/// Waits until `cpu` is parked again (its `call_on` work returned); false after `timeout_us`.
pub fn wait_idle(cpu: usize, timeout_us: u64) -> bool {
    let start = time::now_us();
    loop {
        match percpu::get(cpu).map(|p| p.state()) {
            Some(PARKED) => return true,
            Some(BUSY) if time::now_us() - start < timeout_us => core::hint::spin_loop(),
            _ => return false,
        }
    }
}

fn post(cpu: usize, f: usize, arg: usize, forever: bool) -> Result<(), SmpError> {
    if cpu == this_cpu() {
        return Err(SmpError::ThisCpu);
    }
    let p = percpu::get(cpu).ok_or(SmpError::Offline)?;
    let next = if forever { DEDICATED } else { BUSY };
    p.state
        .compare_exchange(PARKED, next, Ordering::Acquire, Ordering::Acquire)
        .map_err(|s| match s {
            BUSY | DEDICATED => SmpError::Busy,
            _ => SmpError::Offline,
        })?;
    p.work_arg.store(arg, Ordering::Relaxed);
    p.work_forever.store(forever, Ordering::Relaxed);
    p.work_fn.store(f, Ordering::Release);
    apic::send_fixed(p.apic_id.load(Ordering::Relaxed), apic::WAKE_VECTOR).map_err(SmpError::Ipi)
}

/// The parked AP's loop: run what the mailbox holds, else sleep until the wake IPI.
fn park(cpu: usize) -> ! {
    let p = percpu::current();
    loop {
        let f = p.work_fn.load(Ordering::Acquire);
        if f != 0 {
            let arg = p.work_arg.load(Ordering::Relaxed);
            if p.work_forever.load(Ordering::Relaxed) {
                // SAFETY: `run_on` stored a `fn(usize, usize) -> !`.
                let f: fn(usize, usize) -> ! = unsafe { core::mem::transmute(f) };
                f(cpu, arg);
            }
            // SAFETY: `call_on` stored a `fn(usize, usize)`.
            let f: fn(usize, usize) = unsafe { core::mem::transmute(f) };
            f(cpu, arg);
            p.work_fn.store(0, Ordering::Relaxed);
            p.calls_done.fetch_add(1, Ordering::Relaxed);
            p.state.store(PARKED, Ordering::Release);
            continue;
        }
        // SAFETY: interrupts open only across `hlt`; the IDT handles the wake vector (and the
        // spurious one). The asm is a compiler barrier, so the mailbox is read again.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
    }
}

/// Where an AP arrives from the trampoline, on the stack of its ticket.
extern "C" fn ap_entry(ticket: u32) -> ! {
    // Which CPU am I? The MADT's APIC ID, as the AP's own APIC reports it (the APIC is in the
    // boot CPU's mode already: INIT keeps IA32_APIC_BASE).
    apic::init_ap();
    let me = apic::id();
    let slot = (1..=max_cpu()).find(|&c| apic_id(c) == Some(me));
    let Some(cpu) = slot else { halt_forever() };
    let p = percpu::get(cpu).expect("slot exists");
    percpu::install(cpu);
    let t = ticket as usize;
    p.stack_top
        .store(TICKET_STACKS[t].load(Ordering::Relaxed), Ordering::Relaxed);
    p.stack_bottom.store(
        TICKET_STACK_BOTTOMS[t].load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    crate::cpu::init_ap(
        p.ist_df_top.load(Ordering::Relaxed),
        p.ist_nmi_top.load(Ordering::Relaxed),
    );
    p.seen_apic_id.store(me, Ordering::Relaxed);
    p.up_tsc.store(time::rdtsc(), Ordering::Relaxed);
    // Online unless the boot CPU gave up on us already.
    if p.state
        .compare_exchange(STARTING, PARKED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        halt_forever();
    }
    park(cpu)
}

fn halt_forever() -> ! {
    loop {
        // SAFETY: stops this CPU for good (interrupts off).
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// A free page below 1 MiB for the trampoline: usable in the memory map, 0x8000 preferred.
fn trampoline_page(map: &[bootinfo::MemRegion]) -> Option<u64> {
    let usable = |p: u64| {
        map.iter().any(|r| {
            r.kind == bootinfo::MemKind::Usable
                && r.start <= p
                && r.start.saturating_add(r.len) >= p + 0x1000
        })
    };
    (0x8000..0x9f000)
        .step_by(0x1000)
        .chain((0x1000..0x8000).step_by(0x1000))
        .find(|&p| usable(p))
}

/// Starts every AP the MADT lists; returns the number of CPUs online (1 = the boot CPU only).
/// Never panics: any problem is a console warning and fewer CPUs.
pub fn start_aps(boot: &bootinfo::BootInfo) -> usize {
    let t0 = time::now_us();
    let bsp = percpu::get(0).expect("slot 0");
    bsp.state.store(DEDICATED, Ordering::Release);
    bsp.apic_id.store(apic::cpuid_id(), Ordering::Release);
    let madt = match acpi::find_rsdp(boot.rsdp).and_then(|r| acpi::madt(&r)) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("smp: {e}: running on the boot CPU only");
            log::info!("smp: 1 cpus online");
            return 1;
        }
    };
    log::info!("acpi: {}", madt.source);
    let mut ioapics = String::new();
    for io in &madt.ioapics {
        let _ = write!(
            ioapics,
            " ioapic {} at {:#x} gsi {}",
            io.id, io.addr, io.gsi_base
        );
    }
    let enabled: Vec<&acpi::LocalApic> = madt.cpus.iter().filter(|c| c.enabled).collect();
    let mut ids = String::new();
    for c in &enabled {
        let _ = write!(ids, " {}", c.apic_id);
    }
    log::info!(
        "acpi: madt: local apic at {:#x}, {} cpus (apic ids{}), {} hot-pluggable,{}{}",
        madt.lapic_addr,
        enabled.len(),
        ids,
        madt.cpus.len() - enabled.len(),
        if ioapics.is_empty() {
            " no ioapic"
        } else {
            &ioapics
        },
        if madt.pcat_compat { ", 8259 pics" } else { "" }
    );
    if enabled.len() <= 1 {
        // One CPU: leave the local APIC as the firmware left it (the boot is as without SMP).
        log::info!("smp: 1 cpus online");
        return 1;
    }
    if let Err(e) = apic::init(madt.lapic_addr) {
        log::warn!("smp: local apic: {e}: running on the boot CPU only");
        log::info!("smp: 1 cpus online");
        return 1;
    }
    let bsp_id = apic::id();
    bsp.apic_id.store(bsp_id, Ordering::Release);
    bsp.seen_apic_id.store(bsp_id, Ordering::Relaxed);
    if !enabled.iter().any(|c| c.apic_id == bsp_id) {
        log::warn!("smp: the boot CPU's apic id {bsp_id} is not in the MADT");
    }

    // Number the APs in MADT order.
    let mut aps: Vec<(usize, u32)> = Vec::new();
    for c in enabled.iter().filter(|c| c.apic_id != bsp_id) {
        let cpu = aps.len() + 1;
        if cpu >= MAX_CPUS {
            log::warn!(
                "smp: more than {MAX_CPUS} cpus: apic {} and later not started",
                c.apic_id
            );
            break;
        }
        if c.apic_id > 0xfe && !apic::is_x2apic() {
            log::warn!(
                "smp: apic {} needs x2APIC mode (the firmware left xAPIC): not started",
                c.apic_id
            );
            continue;
        }
        aps.push((cpu, c.apic_id));
    }
    if aps.is_empty() {
        log::info!("smp: 1 cpus online");
        return 1;
    }
    let Some(page) = trampoline_page(&boot.memory) else {
        log::warn!(
            "smp: no usable page below 1 MiB for the AP trampoline: running on the boot CPU only"
        );
        log::info!("smp: 1 cpus online");
        return 1;
    };

    // Stacks: a kernel stack per ticket, IST stacks per CPU.
    let mut ready: Vec<(usize, u32)> = Vec::new();
    for (ticket, &(cpu, id)) in aps.iter().enumerate() {
        // Not cleared: stacks need no zeroes, and clearing ~300 KiB per AP shows in boot time.
        let stack = memory::alloc_pages(AP_STACK_PAGES);
        let ist = memory::alloc_pages(2 * IST_PAGES);
        let (Some(stack), Some(ist)) = (stack, ist) else {
            log::warn!(
                "smp: out of memory for the stacks of cpu {cpu} (apic {id}) and later ones: not started"
            );
            break;
        };
        let t = ready.len();
        debug_assert_eq!(t, ticket);
        TICKET_STACK_BOTTOMS[t].store(stack, Ordering::Relaxed);
        TICKET_STACKS[t].store(stack + AP_STACK_PAGES * memory::PAGE, Ordering::Relaxed);
        let p = percpu::get(cpu).expect("cpu < MAX_CPUS");
        p.ist_df_top
            .store(ist + IST_PAGES * memory::PAGE, Ordering::Relaxed);
        p.ist_nmi_top
            .store(ist + 2 * IST_PAGES * memory::PAGE, Ordering::Relaxed);
        p.apic_id.store(id, Ordering::Relaxed);
        p.state.store(STARTING, Ordering::Release);
        ready.push((cpu, id));
    }
    MAX_CPU.store(ready.last().map_or(0, |r| r.0), Ordering::Release);

    // The trampoline and its parameters.
    let start = core::ptr::addr_of!(ap_trampoline_start) as u64;
    let end = core::ptr::addr_of!(ap_trampoline_end) as u64;
    let params_off = core::ptr::addr_of!(ap_trampoline_params) as u64 - start;
    let (cr3, _) = x86_64::registers::control::Cr3::read_raw();
    let cr3 = cr3.start_address().as_u64();
    if end - start > memory::PAGE || params_off != 8 || cr3 >= 1 << 32 {
        log::warn!(
            "smp: trampoline layout unexpected (size {}, params at {params_off}, cr3 {cr3:#x}): running on the boot CPU only",
            end - start
        );
        for &(cpu, _) in &ready {
            percpu::get(cpu)
                .expect("slot")
                .state
                .store(OFFLINE, Ordering::Release);
        }
        log::info!("smp: 1 cpus online");
        return 1;
    }
    let params = ApParams {
        cr3,
        entry: ap_entry as *const () as u64,
        stacks: TICKET_STACKS.as_ptr() as u64,
        count: ready.len() as u32,
        ticket: 0,
        arrived: 0,
        long: 0,
    };
    // SAFETY: `page` is usable RAM below 1 MiB that the frame allocator never hands out
    // (memory.rs reserves the first MiB) and nothing else uses after boot-info parsing; the
    // trampoline fits in it (checked above).
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, page as *mut u8, (end - start) as usize);
        ((page + params_off) as *mut ApParams).write_volatile(params);
    }
    let counters = (page + params_off + 28) as *const AtomicU32;
    // SAFETY: `ticket`, `arrived` and `long` are u32 fields the APs update atomically.
    let (tickets, arrived, long) = unsafe { (&*counters, &*counters.add(1), &*counters.add(2)) };

    // INIT, 10 ms, STARTUP, 200 µs, STARTUP: every AP at once.
    let send_all = |what: &str, f: &dyn Fn(u32) -> Result<(), &'static str>| {
        for &(cpu, id) in &ready {
            let p = percpu::get(cpu).expect("slot");
            if p.state() == STARTING
                && let Err(e) = f(id)
            {
                log::warn!("smp: cpu {cpu} (apic {id}): {what}: {e}");
            }
        }
    };
    let t_init = time::now_us();
    send_all("INIT", &apic::send_init);
    time::delay_us(INIT_DELAY_US);
    send_all("INIT de-assert", &apic::send_init_deassert);
    let vector = (page >> 12) as u8;
    let sipi_tsc = time::rdtsc();
    send_all("STARTUP", &|id| apic::send_startup(id, vector));
    time::delay_us(SIPI_DELAY_US);
    // A second STARTUP for the APs not yet in the trampoline (one already running ignores it).
    if (arrived.load(Ordering::Acquire) as usize) < ready.len() {
        send_all("STARTUP", &|id| apic::send_startup(id, vector));
    }
    let deadline = time::now_us() + AP_TIMEOUT_US;
    let pending = || {
        ready
            .iter()
            .filter(|&&(c, _)| percpu::get(c).expect("slot").state() == STARTING)
            .count()
    };
    while pending() > 0 && time::now_us() < deadline {
        core::hint::spin_loop();
    }

    let hz = time::tsc_hz().max(1);
    let mut up = 1;
    for &(cpu, id) in &ready {
        let p = percpu::get(cpu).expect("slot");
        if p.state
            .compare_exchange(STARTING, FAILED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            log::warn!(
                "smp: cpu {cpu} (apic {id}) did not come up within {} ms ({} of {} APs reached the trampoline, {} long mode, {} took a stack): continuing without it",
                AP_TIMEOUT_US / 1000,
                arrived.load(Ordering::Acquire),
                ready.len(),
                long.load(Ordering::Acquire),
                tickets.load(Ordering::Acquire).min(ready.len() as u32)
            );
            continue;
        }
        up += 1;
        let took = p.up_tsc.load(Ordering::Relaxed).saturating_sub(sipi_tsc) * 1_000_000 / hz;
        log::info!("smp: cpu {cpu} (apic {id}) up in {took} us");
    }
    ONLINE.store(up, Ordering::Release);
    let t1 = time::now_us();
    log::info!(
        "smp: {up} cpus online ({} listed) in {} us (INIT-SIPI-SIPI and wait {} us)",
        ready.len() + 1,
        t1 - t0,
        t1 - t_init
    );
    cross_cpu_check();
    up
}

/// Shared by `probe` on every AP: how many ran it, and which CPUs (bit per CPU < 64).
static PROBE_COUNT: AtomicUsize = AtomicUsize::new(0);
static PROBE_MASK: AtomicU64 = AtomicU64::new(0);
static PROBE_BAD: AtomicUsize = AtomicUsize::new(0);

/// Runs on an AP through its mailbox: the AP's `this_cpu()` and APIC ID must be the MADT's.
fn probe(cpu: usize, token: usize) {
    let ok = this_cpu() == cpu && apic_id(cpu) == Some(apic::id()) && token == cpu ^ 0x5a5a;
    if !ok {
        PROBE_BAD.fetch_add(1, Ordering::Relaxed);
    }
    if cpu < 64 {
        PROBE_MASK.fetch_or(1 << cpu, Ordering::Relaxed);
    }
    PROBE_COUNT.fetch_add(1, Ordering::AcqRel);
}

/// Hands `probe` to every online AP and reports: the proof that the mailboxes, the wake IPI,
/// the per-CPU GS base and the APs' own view of their APIC IDs work.
fn cross_cpu_check() {
    let t0 = time::now_us();
    let mut asked = 0;
    let mut ids = String::new();
    for cpu in online().filter(|&c| c != 0) {
        match call_on(cpu, probe, cpu ^ 0x5a5a) {
            Ok(()) => asked += 1,
            Err(e) => log::warn!("smp: cpu {cpu}: cannot hand it work: {e:?}"),
        }
    }
    for cpu in online().filter(|&c| c != 0) {
        if !wait_idle(cpu, AP_TIMEOUT_US) {
            log::warn!(
                "smp: cpu {cpu} did not finish its work within {} ms",
                AP_TIMEOUT_US / 1000
            );
        }
        let seen = percpu::get(cpu).map_or(u32::MAX, |p| p.seen_apic_id.load(Ordering::Relaxed));
        let _ = write!(ids, "{}{seen}", if ids.is_empty() { "" } else { "," });
    }
    let count = PROBE_COUNT.load(Ordering::Acquire);
    let bad = PROBE_BAD.load(Ordering::Acquire);
    let verdict = if count == asked && bad == 0 {
        "ok"
    } else {
        "FAILED"
    };
    let msg = alloc::format!(
        "smp: cross-cpu check {verdict}: {count} of {asked} APs ran work (mask {:#x}, {bad} mismatches), ap apic ids [{ids}], in {} us",
        PROBE_MASK.load(Ordering::Acquire),
        time::now_us() - t0
    );
    if verdict == "ok" {
        log::info!("{msg}");
    } else {
        log::warn!("{msg}");
    }
}
