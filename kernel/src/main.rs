//! ironflow kernel: boot, CPU tables, memory, console, PCI probe and the run-to-completion loop.
//! Thin glue: all switching and management logic lives in the host-tested libraries.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod bootinfo;
mod bridge;
mod config;
mod config_disk;
mod cpu;
mod dma;
mod exit;
mod logger;
mod memory;
mod mgmt_port;
mod mlx5_port;
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

    let (mut bridge, mgmt_dev) = bring_up_bridge(settings, &functions);
    let mut management = mgmt_dev.map(|dev| Management::new(settings, dev));
    let mut config = config::Config::boot(settings, &functions, &bridge);
    // The configuration in force before the first packet: ports, VLANs, controllers.
    config.poll(&mut bridge, management.as_mut(), time::now_ms());

    let boot_us = time::now_us();
    console!("ironflow: ready boot_us={boot_us}");
    if settings.exit_after_ready {
        console!("{}", bridge.stats_line());
        exit::success();
    }
    main_loop(&mut bridge, management.as_mut(), &mut config, settings)
}

/// The management plane: the management NIC's IP stack and the OpenFlow agent.
pub struct Management {
    dev: mgmt_port::NicDevice,
    pub port: mgmt::netif::MgmtPort,
    pub agent: mgmt::agent::OfAgent,
    announced: Option<[u8; 4]>,
}

impl Management {
    fn new(settings: &BootSettings, mut dev: mgmt_port::NicDevice) -> Self {
        use mgmt::agent::{AgentConfig, OfAgent};
        use mgmt::netif::{MgmtPort, NetifConfig};
        let now = time::now_ms();
        let agent = OfAgent::new(
            AgentConfig::from_settings(settings, settings.fail_mode),
            now,
        );
        let mut config = NetifConfig::from_settings(settings, dev.mac(), time::rdtsc());
        // Bound the OpenFlow work of one management poll (a flow-mod costs tens of µs): 4 KiB
        // per connection per poll keeps forwarding's pauses short during a bulk add-flows.
        config.read_budget = 4096;
        let port = MgmtPort::new(config, &mut dev, now);
        log::info!(
            "mgmt: OpenFlow on tcp:6653 (fail_mode {:?}), {}",
            settings.fail_mode,
            match settings.mgmt_ip {
                Some(c) => alloc::format!(
                    "address {}.{}.{}.{}/{}",
                    c.addr[0],
                    c.addr[1],
                    c.addr[2],
                    c.addr[3],
                    c.prefix
                ),
                None => "address by DHCP".into(),
            }
        );
        Management {
            dev,
            port,
            agent,
            announced: None,
        }
    }

    fn stats_line(&self) -> alloc::string::String {
        let n = self.dev.stats();
        let p = self.port.stats();
        let a = self.agent.stats();
        alloc::format!(
            "mgmt: rx={} tx={} tx_full={} tx_dropped={} err={} kicks={} | tcp accepted={} closed={} bytes_in={} bytes_out={} | openflow connections={} {:?}",
            n.rx_packets,
            n.tx_packets,
            n.tx_full,
            self.dev.tx_dropped,
            n.rx_errors + n.tx_errors,
            n.notifications,
            p.accepted,
            p.closed,
            p.bytes_in,
            p.bytes_out,
            self.agent.connection_count(),
            a
        )
    }

    fn poll(&mut self, bridge: &mut bridge::Bridge, config: &mut config::Config, now: u64) {
        let t0 = time::now_us();
        let mut ovsdb = config.service.streams();
        bridge.poll_management(
            now,
            &mut self.port,
            &mut self.dev,
            &mut self.agent,
            Some(&mut ovsdb),
        );
        let took = time::now_us() - t0;
        if took > 20_000 {
            log::warn!(
                "mgmt: one management poll took {} ms (forwarding waited)",
                took / 1000
            );
        }
        let addr = self.port.ipv4_addr();
        if addr != self.announced {
            if let Some(a) = addr {
                log::info!("mgmt: address {}.{}.{}.{}", a[0], a[1], a[2], a[3]);
            }
            self.announced = addr;
        }
    }
}

/// Finds the NICs, picks the management one, and makes every other one a bridge port.
fn bring_up_bridge(
    settings: &BootSettings,
    functions: &[drivers::pci::PciFunction],
) -> (bridge::Bridge, Option<mgmt_port::NicDevice>) {
    use alloc::boxed::Box;
    use drivers::dma::PacketPool;
    use drivers::nic::Nic;
    use drivers::virtio_net::VirtioNetPort;

    let _ = drivers::dma::set_dma_allocator(&dma::KERNEL_DMA);
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
    let mut mgmt_dev = None;
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
                    mgmt_dev = Some(mgmt_port::NicDevice::new(Box::new(p), pool.clone()));
                } else {
                    ports.push(Box::new(p));
                }
            }
            Err(e) => log::error!("virtio-net {}: cannot bring up: {e:?}", f.addr),
        }
    }
    // ConnectX-4/5/6 (mlx5) NICs are data ports after the virtio-net ones.
    ports.extend(mlx5_port::probe(functions, &pool));
    (bridge::Bridge::new(pool, ports), mgmt_dev)
}

fn main_loop(
    bridge: &mut bridge::Bridge,
    mut management: Option<&mut Management>,
    config: &mut config::Config,
    settings: &BootSettings,
) -> ! {
    const HOUSEKEEPING_MS: u64 = 100;
    let stats_ms = settings.stats_interval_s as u64 * 1000;
    let mut next_housekeeping = 0;
    if let Some(m) = management.as_deref_mut() {
        m.poll(bridge, config, time::now_ms()); // installs the standalone default flow at once
    }
    let mut next_stats = time::now_ms() + stats_ms;
    let mut now = time::now_ms();
    loop {
        match management.as_deref_mut() {
            Some(m) => {
                let (meters, packet_ins) = m.agent.datapath_hooks();
                bridge.poll(now, Some(meters), Some(packet_ins));
            }
            None => {
                bridge.poll(now, None, None);
            }
        }
        // Management, timers and the console every 64 passes: the datapath is never starved.
        if !bridge.iterations.is_multiple_of(64) {
            continue;
        }
        now = time::now_ms();
        if let Some(m) = management.as_deref_mut() {
            m.poll(bridge, config, now);
        }
        // OVSDB commits take effect here, between two forwarding passes.
        config.poll(bridge, management.as_deref_mut(), now);
        if now >= next_housekeeping {
            bridge.housekeeping(now);
            config.housekeeping();
            next_housekeeping = now + HOUSEKEEPING_MS;
        }
        if stats_ms != 0 && now >= next_stats {
            console!("{}", bridge.stats_line());
            if let Some(m) = management.as_deref() {
                console!("{}", m.stats_line());
            }
            console!("{}", config.stats_line());
            next_stats = now + stats_ms;
        }
        match serial::poll_key() {
            Some(b's') => console!("{}", bridge.stats_line()),
            Some(b'm') => console!("fdb:\n{}", bridge.normal.fdb_show(now)),
            Some(b'd') => console!("dpctl/dump-flows:\n{}", bridge.datapath.dump_flows(now)),
            Some(b'p') => console!("pmd-stats-show:\n{}", bridge.datapath.show_stats()),
            Some(b'h') => {
                let (used, free) = memory::heap_usage();
                console!(
                    "memory: heap used {used} B, free {free} B, frames free {} B",
                    memory::free_bytes()
                );
            }
            Some(b'q') => {
                console!("{}", bridge.stats_line());
                // A stray key on an appliance's console must not stop the switch: `q` leaves
                // only in test mode.
                if on_panic() == exit::OnPanic::Exit {
                    console!("ironflow: exit on request");
                    exit::success();
                }
                console!("q: exits only with on_panic=exit (test mode); the switch keeps running");
            }
            _ => {}
        }
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
