//! ironflow kernel: boot, CPU tables, memory, console, PCI probe and the run-to-completion loop.
//! Thin glue: all switching and management logic lives in the host-tested libraries.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod bootinfo;
mod cpu;
mod exit;
mod logger;
mod memory;
mod serial;
mod time;

use core::sync::atomic::{AtomicU8, Ordering};
use mgmt::cmdline::{BootSettings, OnPanic, TestCrash};
use spin::Once;

static BOOT: Once<bootinfo::BootInfo> = Once::new();
static SETTINGS: Once<BootSettings> = Once::new();
/// `on_panic` as known before the heap exists (0 reboot, 1 exit, 2 halt).
static EARLY_ON_PANIC: AtomicU8 = AtomicU8::new(0);

/// What to do on a fatal error, valid from the first instruction on.
pub fn on_panic() -> exit::OnPanic {
    let p = match SETTINGS.get() {
        Some(s) => s.on_panic,
        None => match EARLY_ON_PANIC.load(Ordering::Relaxed) {
            1 => OnPanic::Exit,
            2 => OnPanic::Halt,
            _ => OnPanic::Reboot,
        },
    };
    match p {
        OnPanic::Exit => exit::OnPanic::Exit,
        OnPanic::Reboot => exit::OnPanic::Reboot,
        OnPanic::Halt => exit::OnPanic::Halt,
    }
}

fn early_on_panic(cmdline: &str) {
    for word in cmdline.split_ascii_whitespace() {
        let v = match word {
            "on_panic=exit" => 1,
            "on_panic=halt" => 2,
            "on_panic=reboot" => 0,
            _ => continue,
        };
        EARLY_ON_PANIC.store(v, Ordering::Relaxed);
    }
}

/// Called by the boot trampoline in 64-bit mode with the loader's magic and information.
#[unsafe(no_mangle)]
pub extern "C" fn kmain_entry(magic: u32, info: u64) -> ! {
    serial::init();
    cpu::init();
    let tsc_source = time::calibrate();

    // SAFETY: magic/info come straight from the loader; nothing has been allocated yet.
    let boot = match unsafe { bootinfo::parse(magic, info) } {
        Ok(b) => BOOT.call_once(|| b),
        Err(e) => panic!("cannot read the boot information: {e}"),
    };
    early_on_panic(boot.cmdline());
    let mem = match memory::init(&boot.memory) {
        Ok(m) => m,
        Err(e) => panic!("memory setup failed: {e}"),
    };
    let (settings, warnings) = BootSettings::parse(boot.cmdline());
    let settings = SETTINGS.call_once(|| settings);
    logger::init(settings.log_level);

    log::info!(
        "ironflow {} booting via {} (tsc {} MHz from {})",
        env!("CARGO_PKG_VERSION"),
        boot.protocol,
        time::tsc_hz() / 1_000_000,
        match tsc_source {
            time::Source::Cpuid => "cpuid",
            time::Source::Pit => "pit",
            time::Source::Guess => "a guess",
        }
    );
    log::info!("cmdline: {}", boot.cmdline());
    for w in &warnings {
        log::warn!("cmdline: {w}");
    }
    for r in &boot.memory {
        log::info!(
            "mem: {:#018x}-{:#018x} {}",
            r.start,
            r.start.saturating_add(r.len),
            r.kind.name()
        );
    }
    log::info!(
        "mem: total usable {} KiB, heap {} KiB",
        mem.usable / 1024,
        mem.heap / 1024
    );

    // SAFETY: the only user of the PCI configuration ports.
    let mut cam = unsafe { drivers::pci::PortIoCam::new() };
    let functions = drivers::pci::scan(&mut cam);
    for f in &functions {
        log::info!("pci {f}");
    }
    log::info!("pci: {} functions", functions.len());

    match settings.test_crash {
        Some(TestCrash::PageFault) => {
            log::info!("test.crash=pagefault: reading an unmapped address");
            // SAFETY: deliberately faults (the address is not mapped); that is the test.
            let v = unsafe { core::ptr::read_volatile(0x0000_4000_dead_0000 as *const u64) };
            log::error!("read an unmapped address without a fault: {v}");
        }
        Some(TestCrash::Panic) => panic!("test.crash=panic requested on the command line"),
        None => {}
    }

    let boot_us = time::now_us();
    console!("ironflow: ready boot_us={boot_us}");
    if settings.exit_after_ready {
        exit::success();
    }
    idle_loop()
}

fn idle_loop() -> ! {
    loop {
        if let Some(b) = serial::poll_key() {
            if b == b's' {
                let (used, free) = memory::heap_usage();
                log::info!("stats: heap used {used} B, free {free} B");
            }
        }
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => serial::write_emergency(format_args!(
            "\nPANIC at {}:{}: {}\n",
            l.file(),
            l.line(),
            info.message()
        )),
        None => serial::write_emergency(format_args!("\nPANIC: {}\n", info.message())),
    }
    exit::fatal(on_panic())
}
