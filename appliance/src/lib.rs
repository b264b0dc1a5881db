//! The appliance's main loop as a library: the bridge (data ports through the switch-core
//! datapath), the management plane (smoltcp, OpenFlow, OVSDB), the configuration service, the
//! timers and the console commands. It owns no hardware: the NICs come in as
//! [`drivers::nic::Nic`] trait objects, the configuration disk as a
//! [`mgmt::store::BlockDevice`], and time, the console and exit through [`Platform`].
//!
//! Two platforms run it: the kernel image (`kernel/`: virtio-net / mlx5, virtio-blk, the TSC,
//! the serial console) and the hosted runner (`hosted/`: AF_XDP / AF_PACKET sockets, a tap
//! device, a file, the host clock, stdin/stdout). One behaviour, two platforms.
//!
//! The loop is run-to-completion: every pass polls each data port once (receive a burst,
//! switch it, transmit); every 64 passes it runs the management plane with bounded work, the
//! configuration service (OVSDB commits take effect between two forwarding passes), the
//! timers and the console, so forwarding is never starved.
#![no_std]

extern crate alloc;

pub mod bridge;
pub mod config;
pub mod management;
pub mod mgmt_dev;
pub mod multicore;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use drivers::dma::PacketPool;
use drivers::nic::Nic;
use mgmt::cmdline::BootSettings;
use mgmt::store::BlockDevice;

pub use bridge::Bridge;
pub use config::Config;
pub use management::Management;

/// What the main loop needs from the machine it runs on.
pub trait Platform {
    /// Monotonic milliseconds since boot (or since the runner started).
    fn now_ms(&self) -> u64;
    /// Monotonic microseconds, same origin.
    fn now_us(&self) -> u64;
    /// A value to seed the TCP/IP stack's sequence numbers and the database's UUIDs.
    fn entropy(&self) -> u64;
    /// Writes one console line whatever the log level (the ready line, reports).
    fn console(&self, line: fmt::Arguments<'_>);
    /// A key typed on the console, if any (never blocks).
    fn poll_key(&mut self) -> Option<u8>;
    /// One line about memory use, for the `h` console command.
    fn memory_line(&self) -> String;
    /// Whether the `q` console command may stop the switch (test mode only: a stray key on
    /// an appliance's console must not stop it).
    fn exit_allowed(&self) -> bool;
    /// Stops the switch with success (after `q` in test mode, or `exit_after_ready`).
    fn exit(&mut self) -> !;
    /// Called after a pass that received nothing. A poll-mode core does nothing here; a hosted
    /// runner may yield after many idle passes.
    fn idle(&mut self, _idle_passes: u64) {}
}

/// How often the timers run (MAC aging, megaflow sweep, link state, journal compaction).
const HOUSEKEEPING_MS: u64 = 100;
/// Management, timers and the console run once every this many forwarding passes while
/// packets flow (every pass while the ports are idle and management is busy).
const MGMT_EVERY: u64 = 64;

/// The whole switch: bridge, management plane and configuration.
pub struct Appliance {
    pub bridge: Bridge,
    pub management: Option<Management>,
    pub config: Config,
    stats_ms: u64,
    next_housekeeping: u64,
    next_stats: u64,
    now: u64,
    idle_passes: u64,
    /// The management plane moved bytes in its last pass (a transfer is in progress): the
    /// loop must not idle-wait, or a bulk `add-flows` would crawl at one read per wait.
    mgmt_busy: bool,
    mgmt_bytes: u64,
    /// Multi-core mode: the management core's ends of the queues to the datapath cores.
    links: Option<multicore::MgmtLinks>,
}

impl Appliance {
    /// Builds the switch over `ports` (data NICs, named `eth1`.. in order) and the optional
    /// management NIC, loads the configuration from `disk` (see [`Config::boot`]) and applies
    /// it: ports, VLANs and controllers are in force before the first packet.
    pub fn new<P: Platform, D: BlockDevice + 'static>(
        platform: &P,
        settings: &BootSettings,
        pool: Rc<PacketPool>,
        ports: Vec<Box<dyn Nic>>,
        mgmt_nic: Option<Box<dyn Nic>>,
        disk: Option<D>,
    ) -> Appliance {
        Self::build(platform, settings, pool, ports, mgmt_nic, disk, None).0
    }

    /// The management core of the multi-core appliance ([`multicore`]): `ports` are the data
    /// ports as [`multicore::RemoteNic`]s over `shared`; `links` come from
    /// [`multicore::links`]. Returns the switch and one [`multicore::WorkerStart`] per
    /// datapath core (start each on its CPU with a [`multicore::WorkerLoop`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new_multicore<P: Platform, D: BlockDevice + 'static>(
        platform: &P,
        settings: &BootSettings,
        pool: Rc<PacketPool>,
        ports: Vec<Box<dyn Nic>>,
        mgmt_nic: Option<Box<dyn Nic>>,
        disk: Option<D>,
        shared: alloc::sync::Arc<multicore::Shared>,
        links: (multicore::MgmtLinks, Vec<multicore::WorkerLinks>),
    ) -> (Appliance, Vec<multicore::WorkerStart>) {
        Self::build(
            platform,
            settings,
            pool,
            ports,
            mgmt_nic,
            disk,
            Some((shared, links)),
        )
    }

    #[allow(clippy::type_complexity)]
    fn build<P: Platform, D: BlockDevice + 'static>(
        platform: &P,
        settings: &BootSettings,
        pool: Rc<PacketPool>,
        ports: Vec<Box<dyn Nic>>,
        mgmt_nic: Option<Box<dyn Nic>>,
        disk: Option<D>,
        cores: Option<(
            alloc::sync::Arc<multicore::Shared>,
            (multicore::MgmtLinks, Vec<multicore::WorkerLinks>),
        )>,
    ) -> (Appliance, Vec<multicore::WorkerStart>) {
        let mut bridge = Bridge::new(pool.clone(), ports);
        let mut starts = Vec::new();
        let mut mgmt_links = None;
        if let Some((shared, (m, w))) = cores {
            // Before any flow or port: everything from here on is published to the cores.
            let workers = bridge.enable_cores(shared.clone());
            for (worker, links) in workers.into_iter().zip(w) {
                starts.push(multicore::WorkerStart {
                    worker,
                    links,
                    shared: shared.clone(),
                    meters: None,
                });
            }
            mgmt_links = Some(m);
        }
        let mut management = mgmt_nic.map(|nic| {
            Management::new(
                settings,
                nic,
                pool.clone(),
                platform.now_ms(),
                platform.entropy(),
            )
        });
        let mut config = Config::boot(
            settings,
            disk,
            &bridge,
            platform.now_ms(),
            platform.entropy(),
        );
        config.poll(&mut bridge, management.as_mut(), platform.now_ms());
        if management.is_none() && settings.fail_mode == mgmt::agent::FailMode::Standalone {
            // No management port, so no OpenFlow agent to install the standalone default:
            // a switch without a management NIC still switches (NORMAL), as OVS without
            // controllers does.
            let fm = mgmt::agent::normal_flow(0);
            if let Err(e) = bridge.pipeline.flow_mod(&fm, platform.now_ms()) {
                log::error!("cannot install the NORMAL flow: {e:?}");
            }
            log::info!("no management port: standalone bridge with the NORMAL flow");
        }
        bridge.publish();
        // The datapath cores charge the agent's meters.
        if let Some(m) = management.as_ref() {
            for start in &mut starts {
                start.meters = Some(m.agent.meter_reader());
            }
        }
        let appliance = Appliance {
            bridge,
            management,
            config,
            stats_ms: settings.stats_interval_s as u64 * 1000,
            next_housekeeping: 0,
            next_stats: 0,
            now: platform.now_ms(),
            idle_passes: 0,
            mgmt_busy: false,
            mgmt_bytes: 0,
            links: mgmt_links,
        };
        (appliance, starts)
    }

    /// The management plane's first pass (it installs the standalone default flow at once);
    /// call it once before [`Appliance::pass`].
    pub fn start<P: Platform>(&mut self, platform: &P) {
        let now = platform.now_ms();
        if let Some(m) = self.management.as_mut() {
            m.poll(platform, &mut self.bridge, &mut self.config, now);
        }
        self.now = now;
        self.next_stats = now + self.stats_ms;
    }

    /// Runs the loop forever.
    pub fn run<P: Platform>(&mut self, platform: &mut P) -> ! {
        self.start(platform);
        loop {
            self.pass(platform);
        }
    }

    /// One forwarding pass over every port, and every [`MGMT_EVERY`] passes the management
    /// plane, the configuration, the timers and the console. Returns the packets received.
    pub fn pass<P: Platform>(&mut self, platform: &mut P) -> usize {
        if self.links.is_some() {
            return self.mgmt_core_pass(platform);
        }
        let now = self.now;
        let received = match self.management.as_mut() {
            Some(m) => {
                let (meters, packet_ins) = m.agent.datapath_hooks();
                self.bridge.poll(now, Some(meters), Some(packet_ins))
            }
            None => self.bridge.poll(now, None, None),
        };
        if received == 0 && !self.mgmt_busy {
            self.idle_passes += 1;
            platform.idle(self.idle_passes);
        } else {
            self.idle_passes = 0;
        }
        // With traffic, management gets one pass in MGMT_EVERY; with the data ports idle and a
        // management transfer in progress (a bulk add-flows, a big dump), every pass.
        if self.bridge.iterations.is_multiple_of(MGMT_EVERY) || (received == 0 && self.mgmt_busy) {
            self.slow_path(platform);
        }
        received
    }

    /// Multi-core mode: the management core forwards nothing itself; each pass takes the
    /// cores' packet-ins into the OpenFlow agent's queue and runs the whole slow path.
    /// Returns the packet-ins taken.
    fn mgmt_core_pass<P: Platform>(&mut self, platform: &mut P) -> usize {
        self.bridge.iterations += 1;
        let mut taken = 0;
        if let Some(links) = self.links.as_mut() {
            for q in links.packet_ins.iter_mut() {
                while let Some(msg) = q.dequeue() {
                    taken += 1;
                    self.bridge.packet_ins += 1;
                    if let Some(m) = self.management.as_mut() {
                        let (_, queue) = m.agent.datapath_hooks();
                        queue.push(&msg.as_packet_in());
                    }
                }
            }
        }
        self.slow_path(platform);
        taken
    }

    fn slow_path<P: Platform>(&mut self, platform: &mut P) {
        let now = platform.now_ms();
        self.now = now;
        if let Some(m) = self.management.as_mut() {
            m.poll(platform, &mut self.bridge, &mut self.config, now);
            let st = m.port.stats();
            let bytes = st.bytes_in + st.bytes_out;
            self.mgmt_busy = bytes != self.mgmt_bytes;
            self.mgmt_bytes = bytes;
        }
        // OVSDB commits take effect here, between two forwarding passes.
        self.config
            .poll(&mut self.bridge, self.management.as_mut(), now);
        // Multi-core mode: the cores switch to what changed in this pass.
        self.bridge.publish();
        if now >= self.next_housekeeping {
            self.bridge.housekeeping(now);
            self.config.housekeeping();
            self.next_housekeeping = now + HOUSEKEEPING_MS;
        }
        if self.stats_ms != 0 && now >= self.next_stats {
            self.print_stats(platform);
            self.next_stats = now + self.stats_ms;
        }
        if let Some(key) = platform.poll_key() {
            self.console_command(platform, key, now);
        }
    }

    /// The periodic report: ports and caches, management, configuration.
    pub fn print_stats<P: Platform>(&self, platform: &P) {
        platform.console(format_args!("{}", self.bridge.stats_line()));
        if let Some(m) = self.management.as_ref() {
            platform.console(format_args!("{}", m.stats_line()));
        }
        platform.console(format_args!("{}", self.config.stats_line()));
    }

    /// One-key console commands: `s` stats, `m` MAC table, `d` megaflows, `p` cache stats,
    /// `h` memory, `q` quit (test mode only).
    pub fn console_command<P: Platform>(&mut self, platform: &mut P, key: u8, now: u64) {
        let b = &self.bridge;
        match key {
            b's' => platform.console(format_args!("{}", b.stats_line())),
            b'm' => platform.console(format_args!("fdb:\n{}", b.normal.fdb_show(now))),
            b'd' => platform.console(format_args!(
                "dpctl/dump-flows:\n{}",
                b.datapath.dump_flows(now)
            )),
            b'p' => platform.console(format_args!("pmd-stats-show:\n{}", b.datapath.show_stats())),
            b'h' => platform.console(format_args!("memory: {}", platform.memory_line())),
            b'q' => {
                platform.console(format_args!("{}", b.stats_line()));
                if platform.exit_allowed() {
                    platform.console(format_args!("ironflow: exit on request"));
                    platform.exit();
                }
                platform.console(format_args!(
                    "q: exits only with on_panic=exit (test mode); the switch keeps running"
                ));
            }
            _ => {}
        }
    }
}
