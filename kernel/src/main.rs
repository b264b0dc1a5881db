//! ironflow kernel: boot, CPU tables, memory, console, PCI probe and the drivers' MMIO/DMA.
//! It owns the hardware only: the main loop (bridge, management, configuration, console
//! commands) is the `appliance` library, which the hosted runner runs too.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod apic;
mod boot;
mod bootinfo;
mod config_disk;
mod cpu;
mod dma;
mod exit;
mod logger;
mod memory;
mod mlx5_port;
mod multicore;
mod percpu;
mod serial;
mod smp;
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
    let _cpus = smp::start_aps(boot);

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

    // The drivers' DMA memory (virtio-blk and virtio-net rings) before any device is probed.
    let _ = drivers::dma::set_dma_allocator(&dma::KERNEL_DMA);
    let disk = config_disk::probe(&functions);
    let mut platform = KernelPlatform;
    let mut switch = match multicore::plan(settings, &functions) {
        Some(workers) => multicore::start(&platform, settings, &functions, workers, disk),
        None => {
            let (pool, ports, mgmt_nic) = bring_up_nics(settings, &functions);
            appliance::Appliance::new(&platform, settings, pool, ports, mgmt_nic, disk)
        }
    };

    let boot_us = time::now_us();
    console!("ironflow: ready boot_us={boot_us}");
    if settings.exit_after_ready {
        console!("{}", switch.bridge.stats_line());
        exit::success();
    }
    switch.run(&mut platform)
}

/// The machine as the appliance's main loop sees it: the TSC, the serial console, the heap.
struct KernelPlatform;

impl appliance::Platform for KernelPlatform {
    fn now_ms(&self) -> u64 {
        time::now_ms()
    }

    fn now_us(&self) -> u64 {
        time::now_us()
    }

    fn entropy(&self) -> u64 {
        time::rdtsc()
    }

    fn console(&self, line: core::fmt::Arguments<'_>) {
        logger::line(line);
    }

    fn poll_key(&mut self) -> Option<u8> {
        serial::poll_key()
    }

    fn memory_line(&self) -> alloc::string::String {
        let (used, free) = memory::heap_usage();
        alloc::format!(
            "heap used {used} B, free {free} B, frames free {} B",
            memory::free_bytes()
        )
    }

    fn exit_allowed(&self) -> bool {
        on_panic() == exit::OnPanic::Exit
    }

    fn exit(&mut self) -> ! {
        exit::success()
    }
}

/// The packet pool, the data NICs in order and the management NIC.
type Nics = (
    alloc::rc::Rc<drivers::dma::PacketPool>,
    alloc::vec::Vec<alloc::boxed::Box<dyn drivers::nic::Nic>>,
    Option<alloc::boxed::Box<dyn drivers::nic::Nic>>,
);

/// The virtio-net functions in PCI order and which of them is the management NIC (the
/// first one, or `mgmt.nic=`).
fn virtio_nics<'a>(
    settings: &BootSettings,
    functions: &'a [drivers::pci::PciFunction],
) -> (
    alloc::vec::Vec<&'a drivers::pci::PciFunction>,
    Option<usize>,
) {
    let nics: alloc::vec::Vec<_> = functions.iter().filter(|f| f.is_virtio_net()).collect();
    let mgmt = match settings.mgmt_nic {
        Some((b, d, f)) => nics
            .iter()
            .position(|n| (n.addr.bus, n.addr.device, n.addr.function) == (b, d, f)),
        None => (!nics.is_empty()).then_some(0),
    };
    if settings.mgmt_nic.is_some() && mgmt.is_none() {
        log::warn!("mgmt.nic: no virtio-net at that address; no management port");
    }
    (nics, mgmt)
}

/// Finds the NICs and brings them up: the management one (the first virtio-net, or
/// `mgmt.nic=`) and every other one as a data port, virtio-net first, then mlx5.
fn bring_up_nics(settings: &BootSettings, functions: &[drivers::pci::PciFunction]) -> Nics {
    use alloc::boxed::Box;
    use drivers::dma::PacketPool;
    use drivers::nic::Nic;
    use drivers::virtio_net::VirtioNetPort;

    let _ = drivers::dma::set_dma_allocator(&dma::KERNEL_DMA);
    let (nics, mgmt) = virtio_nics(settings, functions);
    // Buffers: each port's receive ring (256) and transmit ring (256) full, plus bursts in
    // flight; at most a quarter of the free frames.
    let mlx5_count = functions
        .iter()
        .filter(|f| drivers::mlx5::probe(f).is_some())
        .count();
    let want = (nics.len() + mlx5_count) as u64 * 576 + 256;
    let bufs = want.min(memory::free_bytes() / 4 / 2176).max(256) as usize;
    let pool = match PacketPool::new(bufs) {
        Ok(p) => p,
        Err(e) => panic!("cannot allocate the packet pool ({bufs} buffers): {e:?}"),
    };
    log::info!("pool: {bufs} packet buffers");
    // SAFETY: PCI configuration access is used from this single boot thread only.
    let mut root = drivers::pci::PciRoot::new(unsafe { drivers::pci::PortIoCam::new() });
    let mut ports: alloc::vec::Vec<Box<dyn Nic>> = alloc::vec::Vec::new();
    let mut mgmt_nic: Option<Box<dyn Nic>> = None;
    for (i, f) in nics.iter().enumerate() {
        match VirtioNetPort::from_pci(&mut root, f.addr, pool.clone()) {
            Ok(mut p) => {
                // SAFETY: `cam` only reads this function's configuration space; the port drives it.
                unsafe {
                    let cam = drivers::pci::PortIoCam::new();
                    p.use_direct_notify(&cam, f.addr);
                }
                if Some(i) == mgmt {
                    log::info!("mgmt: {} is the management NIC (not a bridge port)", f.addr);
                    mgmt_nic = Some(Box::new(p));
                } else {
                    ports.push(Box::new(p));
                }
            }
            Err(e) => log::error!("virtio-net {}: cannot bring up: {e:?}", f.addr),
        }
    }
    // ConnectX-4/5/6 (mlx5) NICs are data ports after the virtio-net ones.
    ports.extend(mlx5_port::probe(functions, &pool));
    (pool, ports, mgmt_nic)
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
