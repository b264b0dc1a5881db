//! The bridge: data ports (every NIC but the management one, numbered from 1 in PCI order),
//! the switch-core datapath (EMC + megaflows) in front of the OpenFlow pipeline with NORMAL, and
//! the run-to-completion pass that moves bursts from receive queues through the datapath to
//! transmit queues. A packet that leaves by one port is the received buffer itself: no copy.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use alloc::sync::Arc;
use drivers::dma::{PacketBatch, PacketBuf, PacketPool};
use drivers::nic::{Nic, NicStats};
use mgmt::agent::Cores;
use mgmt::agent::{BridgeCtx, MeterTable, OfAgent, PacketInQueue};
use mgmt::config::plan::{NicInfo, Plan};
use mgmt::netif::{MgmtPort, StreamHandler};
use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
use switch_core::mcore::{Hub, Worker};

use crate::multicore::Shared;
use switch_core::normal::NormalSwitch;
use switch_core::packet::Frame;
use switch_core::pipeline::{Env, OutputSink, PacketIn, Pipeline, PipelineConfig};
use switch_core::port::{Port, PortNo, PortTable};

struct MacFmt([u8; 6]);

impl core::fmt::Display for MacFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

use crate::mgmt_dev::NicDevice;

/// Largest frame accepted from a port (Ethernet + two VLAN tags).
pub const MAX_FRAME: usize = 1522;
/// Smallest: an Ethernet header.
pub const MIN_FRAME: usize = 14;

pub struct DataPort {
    /// The NIC's name for configuration: `eth1`, `eth2`, ... in PCI order (see
    /// `mgmt::config::plan`).
    pub name: String,
    /// The OpenFlow port this NIC is bound to, if the configuration uses it.
    pub no: Option<PortNo>,
    pub nic: Box<dyn Nic>,
    /// Frames dropped on receive because they were malformed (counted, never forwarded).
    pub rx_malformed: u64,
    /// Frames for this port dropped because its transmit ring was full or no buffer was free.
    pub tx_dropped: u64,
    /// Frames received while the NIC was not a bridge port (dropped).
    pub rx_unbound: u64,
}

pub struct Bridge {
    /// Every data NIC, bound to a port or not, in PCI order.
    pub ports: Vec<DataPort>,
    /// OpenFlow port number → index into `ports` + 1 (0: no NIC). The transmit path's lookup.
    nic_of_port: Vec<u16>,
    pub port_table: PortTable,
    pub pipeline: Pipeline,
    pub normal: NormalSwitch,
    pub datapath: Datapath,
    pool: Rc<PacketPool>,
    rx: PacketBatch,
    tx: Vec<PacketBatch>,
    pub packet_ins: u64,
    pub iterations: u64,
    /// Multi-core mode ([`Bridge::enable_cores`]): the publication hub of the datapath cores
    /// (the bridge's pipeline and port table are the authoritative state) and what the cores
    /// share with the management core.
    pub hub: Option<Hub>,
    pub cores: Option<Arc<Shared>>,
    /// The statistics request to the cores in flight (the periodic fold).
    stats_ticket: Option<u64>,
    next_fold_ms: u64,
}

/// The cores' counters are folded into the pipeline and ports this often (OpenFlow and OVSDB
/// statistics requests fold on demand too).
const FOLD_MS: u64 = 1000;

/// Receives the datapath's results: moved buffers and copies into per-port transmit batches.
struct TxSink<'a> {
    pool: &'a Rc<PacketPool>,
    nic_of_port: &'a [u16],
    ports: &'a mut [DataPort],
    tx: &'a mut [PacketBatch],
    packet_ins: &'a mut u64,
    /// The OpenFlow agent's packet-in queue (None before management is up).
    to_controller: Option<&'a mut PacketInQueue>,
    /// Frames of this batch the datapath dropped as malformed.
    malformed: &'a mut u64,
}

impl TxSink<'_> {
    fn queue(&mut self, port: PortNo, frame: PacketBuf) {
        let Some(i) = self
            .nic_of_port
            .get(port as usize)
            .and_then(|i| (*i as usize).checked_sub(1))
            .filter(|i| *i < self.ports.len())
        else {
            return; // LOCAL and unknown ports: no such NIC (the buffer goes back to the pool)
        };
        if self.tx[i].is_full() {
            let p = &mut self.ports[i];
            p.nic.tx_burst(0, &mut self.tx[i]);
            p.tx_dropped += self.tx[i].len() as u64;
            self.tx[i].clear();
        }
        let _ = self.tx[i].push(frame);
    }
}

impl DatapathSink<PacketBuf> for TxSink<'_> {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: PacketBuf) {
        self.queue(port, frame);
    }

    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<PacketBuf> {
        let mut buf = self.pool.alloc()?;
        buf.copy_from_slice(bytes).then_some(buf)
    }

    fn controller(&mut self, packet_in: &PacketIn<'_>) {
        *self.packet_ins += 1;
        if let Some(q) = self.to_controller.as_deref_mut() {
            q.push(packet_in);
        }
    }

    fn release(&mut self, _frame: PacketBuf, why: Release) {
        *self.malformed += (why == Release::Malformed) as u64;
    }
}

/// The pipeline's sink for packet-outs (management path): copies into the transmit batches.
impl OutputSink for TxSink<'_> {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: &[u8]) {
        if let Some(buf) = DatapathSink::alloc_copy(self, frame) {
            self.queue(port, buf);
        }
    }

    fn controller(&mut self, packet_in: &PacketIn<'_>) {
        DatapathSink::controller(self, packet_in);
    }
}

impl Bridge {
    /// A bridge over `nics` (named `eth1`.. in order) with no ports yet: the configuration
    /// ([`Bridge::reconfigure`]) decides which NIC is which OpenFlow port.
    pub fn new(pool: Rc<PacketPool>, nics: Vec<Box<dyn Nic>>) -> Self {
        let mut ports = Vec::new();
        for (i, mut nic) in nics.into_iter().enumerate() {
            let mut name = String::new();
            let _ = write!(name, "eth{}", i + 1);
            let up = nic.link_up();
            log::info!(
                "nic {name}: {} mac {} link {}",
                nic.name(),
                MacFmt(nic.mac_address()),
                if up { "up" } else { "down" }
            );
            ports.push(DataPort {
                name,
                no: None,
                nic,
                rx_malformed: 0,
                tx_dropped: 0,
                rx_unbound: 0,
            });
        }
        // No flows yet: the OpenFlow agent installs Open vSwitch's standalone default
        // (priority=0 actions=NORMAL) on its first poll, as the fail mode and controllers say.
        let pipeline = Pipeline::new(PipelineConfig::default());
        let tx = ports.iter().map(|_| PacketBatch::new()).collect();
        Bridge {
            ports,
            nic_of_port: Vec::new(),
            port_table: PortTable::new(),
            pipeline,
            normal: NormalSwitch::default(),
            datapath: Datapath::new(DatapathConfig {
                drop_malformed: true,
                ..DatapathConfig::default()
            }),
            pool,
            rx: PacketBatch::new(),
            tx,
            packet_ins: 0,
            iterations: 0,
            hub: None,
            cores: None,
            stats_ticket: None,
            next_fold_ms: 0,
        }
    }

    /// Multi-core mode: the pipeline and port table become the authoritative state published
    /// to `shared.n_workers()` datapath cores; returns their workers (move each to its core).
    /// Call before any flow or port exists (they are then all published as changes).
    pub fn enable_cores(&mut self, shared: Arc<Shared>) -> Vec<Worker> {
        let (hub, workers) = Hub::new(
            &mut self.pipeline,
            &self.port_table,
            self.normal.clone(),
            DatapathConfig {
                drop_malformed: true,
                ..DatapathConfig::default()
            },
            shared.n_workers(),
        );
        self.hub = Some(hub);
        self.cores = Some(shared);
        workers
    }

    /// Multi-core mode: publishes what changed since the last publication (once per
    /// management pass; barriers publish on their own).
    pub fn publish(&mut self) {
        if let Some(h) = self.hub.as_mut()
            && h.has_pending(&self.pipeline, &self.port_table)
        {
            h.publish(&mut self.pipeline, &self.port_table);
        }
    }

    /// The NICs as the configuration planner sees them.
    pub fn nic_infos(&self) -> Vec<NicInfo> {
        self.ports
            .iter()
            .map(|p| NicInfo {
                name: p.name.clone(),
                mac: p.nic.mac_address(),
            })
            .collect()
    }

    /// Makes the ports what `plan` says: ports that went away are removed from the OpenFlow
    /// port table (their flows stay, as in Open vSwitch; the datapath revalidates on the port
    /// table's generation), new ones are added, VLAN modes and numbers follow. A NIC that is
    /// no longer a port is drained and its frames dropped.
    pub fn reconfigure(&mut self, plan: &Plan) {
        // Remove ports that are gone or changed number / NIC.
        let stale: Vec<PortNo> = self
            .port_table
            .iter()
            .map(|p| p.no())
            .filter(|no| {
                !plan.ports.iter().any(|pp| {
                    pp.ofport == *no && self.ports.get(pp.nic).and_then(|d| d.no) == Some(*no)
                })
            })
            .collect();
        for no in stale {
            if let Some(old) = self.port_table.remove(no) {
                log::info!("port {no}: {} removed", old.name);
            }
            self.normal.mac_table_mut().flush_port(no);
            if let Some(h) = self.hub.as_mut() {
                h.mac_flush_port(no);
            }
        }
        for d in self.ports.iter_mut() {
            d.no = None;
        }
        let max = plan.ports.iter().map(|p| p.ofport).max().unwrap_or(0) as usize;
        self.nic_of_port = alloc::vec![0; max + 1];
        for pp in &plan.ports {
            let Some(d) = self.ports.get_mut(pp.nic) else {
                continue;
            };
            d.no = Some(pp.ofport);
            self.nic_of_port[pp.ofport as usize] = pp.nic as u16 + 1;
            if self.port_table.contains(pp.ofport) {
                if self.port_table.set_vlan_mode(pp.ofport, pp.vlan.clone()) == Ok(true) {
                    log::info!("port {} ({}): {:?}", pp.ofport, pp.name, pp.vlan);
                }
                continue;
            }
            let up = d.nic.link_up();
            let port = Port::new(pp.ofport, &pp.name, d.nic.mac_address())
                .with_link_up(up)
                .with_vlan_mode(pp.vlan.clone());
            match self.port_table.add(port) {
                Ok(()) => log::info!(
                    "port {}: {} ({}) {:?} link {}",
                    pp.ofport,
                    pp.name,
                    d.nic.name(),
                    pp.vlan,
                    if up { "up" } else { "down" }
                ),
                Err(e) => log::warn!("port {}: {} not added: {e:?}", pp.ofport, pp.name),
            }
        }
        if let Some(c) = self.cores.as_ref() {
            c.set_port_map(self.ports.iter().map(|d| d.no));
        }
    }

    /// One pass over every port: receive a burst, switch it, transmit. Returns packets received.
    pub fn poll(
        &mut self,
        now_ms: u64,
        mut meters: Option<&mut MeterTable>,
        mut to_controller: Option<&mut PacketInQueue>,
    ) -> usize {
        self.iterations += 1;
        let mut total = 0;
        for i in 0..self.ports.len() {
            let n = self.ports[i].nic.rx_burst(0, &mut self.rx);
            if n == 0 {
                continue;
            }
            total += n;
            let Some(in_port) = self.ports[i].no else {
                // Not a bridge port: drained so that its frames go nowhere and its buffers
                // return to the pool.
                self.ports[i].rx_unbound += n as u64;
                self.rx.clear();
                continue;
            };
            // Runts and giants are dropped here; frames the parser finds malformed or truncated
            // are dropped by the datapath (it parses each frame once) and counted in `release`.
            let mut malformed = 0;
            self.rx.retain(|buf| {
                let ok = (MIN_FRAME..=MAX_FRAME).contains(&buf.data().len());
                malformed += !ok as u64;
                ok
            });
            let Bridge {
                ports,
                nic_of_port,
                port_table,
                pipeline,
                normal,
                datapath,
                pool,
                rx,
                tx,
                packet_ins,
                ..
            } = self;
            let mut env = Env {
                ports: port_table,
                normal: Some(normal),
                meters: meters.as_deref_mut().map(|m| m as _),
                now_ms,
            };
            let mut sink = TxSink {
                pool,
                nic_of_port,
                ports,
                tx,
                packet_ins,
                to_controller: to_controller.as_deref_mut(),
                malformed: &mut malformed,
            };
            datapath.process_batch(pipeline, &mut env, in_port, rx.drain(..), &mut sink);
            self.ports[i].rx_malformed += malformed;
            self.flush();
        }
        total
    }

    fn flush(&mut self) {
        for (p, b) in self.ports.iter_mut().zip(self.tx.iter_mut()) {
            if !b.is_empty() {
                p.nic.tx_burst(0, b);
                p.tx_dropped += b.len() as u64;
                b.clear();
            }
        }
    }

    /// Runs the management plane once: the management port's sockets and the OpenFlow agent
    /// (flow-mods, packet-outs, async messages). Bounded work; packet-outs are sent at once.
    pub fn poll_management(
        &mut self,
        now_ms: u64,
        mgmt: &mut MgmtPort,
        dev: &mut NicDevice,
        agent: &mut OfAgent,
        ovsdb: Option<&mut dyn StreamHandler>,
    ) {
        let Bridge {
            ports,
            nic_of_port,
            port_table,
            pipeline,
            normal,
            pool,
            tx,
            packet_ins,
            hub,
            ..
        } = self;
        let mut sink = TxSink {
            pool,
            nic_of_port,
            ports,
            tx,
            packet_ins,
            to_controller: None,
            malformed: &mut 0,
        };
        let mut ctx = BridgeCtx {
            pipeline,
            ports: port_table,
            normal,
            sink: &mut sink,
            now_ms,
            cores: hub.as_mut().map(|h| h as &mut dyn Cores),
        };
        mgmt.poll_with_agent(now_ms, dev, agent, &mut ctx, ovsdb);
        // OpenFlow 1.0 semantics while a 1.0 controller listens: table misses go to it.
        self.pipeline
            .set_table_miss_to_controller(agent.wants_packet_in_on_miss());
        self.flush();
    }

    /// Runs `f` with the bridge as the OpenFlow agent sees it (configuration changes that
    /// touch flows: fail mode, controllers, a new bridge). Packet-outs it causes are sent.
    pub fn with_ctx<R>(&mut self, now_ms: u64, f: impl FnOnce(&mut BridgeCtx<'_>) -> R) -> R {
        let Bridge {
            ports,
            nic_of_port,
            port_table,
            pipeline,
            normal,
            pool,
            tx,
            packet_ins,
            hub,
            ..
        } = self;
        let mut sink = TxSink {
            pool,
            nic_of_port,
            ports,
            tx,
            packet_ins,
            to_controller: None,
            malformed: &mut 0,
        };
        let mut ctx = BridgeCtx {
            pipeline,
            ports: port_table,
            normal,
            sink: &mut sink,
            now_ms,
            cores: hub.as_mut().map(|h| h as &mut dyn Cores),
        };
        let r = f(&mut ctx);
        self.flush();
        r
    }

    /// Timers: MAC aging, flow expiry, link changes.
    pub fn housekeeping(&mut self, now_ms: u64) {
        self.normal.mac_table_mut().expire(now_ms);
        // Megaflows idle for 10 s go, as in Open vSwitch's default max-idle.
        self.datapath.sweep(now_ms, 10_000);
        // (Flow expiry is the OpenFlow agent's: it sends the flow-removed messages.)
        for p in self.ports.iter_mut() {
            p.nic.tx_reclaim(0);
            let Some(no) = p.no else {
                continue;
            };
            // The port table's counters (OpenFlow port stats) follow the NIC's (with datapath
            // cores, packets and bytes are the cores' own counts, folded below).
            let n = p.nic.stats();
            if let Some(port) = self.port_table.get_mut(no) {
                let c = &mut port.counters;
                if self.hub.is_none() {
                    c.rx_packets = n.rx_packets;
                    c.rx_bytes = n.rx_bytes;
                    c.tx_packets = n.tx_packets;
                    c.tx_bytes = n.tx_bytes;
                }
                c.rx_dropped = n.rx_no_buffer;
                c.tx_dropped = n.tx_full + p.tx_dropped;
                c.rx_errors = n.rx_errors + p.rx_malformed;
                c.tx_errors = n.tx_errors;
                c.rx_malformed = p.rx_malformed;
            }
            let up = p.nic.link_up();
            if self.port_table.set_link(no, up) == Ok(true) {
                log::info!("port {no}: link {}", if up { "up" } else { "down" });
            }
        }
        self.fold_cores(now_ms);
    }

    /// Multi-core mode, about once a second: asks the cores for their counters and, once all
    /// answered, adds them to the pipeline's and ports' (so idle timeouts, the console and
    /// OVSDB's statistics see the cores' use between OpenFlow statistics requests).
    fn fold_cores(&mut self, now_ms: u64) {
        let Some(h) = self.hub.as_mut() else {
            return;
        };
        match self.stats_ticket {
            Some(t) if h.stats_ready(t) => {
                Cores::fold_stats(h, &mut self.pipeline, &mut self.port_table);
                self.stats_ticket = None;
                self.next_fold_ms = now_ms + FOLD_MS;
            }
            Some(_) => {}
            None if now_ms >= self.next_fold_ms => {
                self.stats_ticket = Some(h.request_stats(&mut self.pipeline, &self.port_table));
            }
            None => {}
        }
    }

    /// One console line of per-port counters and cache statistics.
    pub fn stats_line(&self) -> String {
        let mut s = String::from("stats:");
        for (i, p) in self.ports.iter().enumerate() {
            let n: NicStats = p.nic.stats();
            // `portN` is the NIC `ethN` (stable whatever the configuration numbers it).
            let _ = write!(
                s,
                " port{} rx={} tx={} rx_bytes={} tx_bytes={} drop={} malformed={} err={}",
                i + 1,
                n.rx_packets,
                n.tx_packets,
                n.rx_bytes,
                n.tx_bytes,
                n.rx_no_buffer + n.tx_full + p.tx_dropped,
                p.rx_malformed,
                n.rx_errors + n.tx_errors
            );
            let _ = write!(s, " kicks={}", n.notifications);
            match p.no {
                Some(no) => {
                    let _ = write!(s, " ofport={no} |");
                }
                None => {
                    let _ = write!(s, " unbound={} |", p.rx_unbound);
                }
            }
        }
        let (d, megaflows, masks) = match self.hub.as_ref() {
            Some(h) => {
                let (d, _, megaflows) = h.folded_datapath();
                (*d, megaflows, 0)
            }
            None => (
                self.datapath.stats(),
                self.datapath.n_megaflows(),
                self.datapath.n_masks(),
            ),
        };
        let _ = write!(
            s,
            " dp: packets={} emc_hits={} megaflow_hits={} misses={} revalidations={} megaflows={} masks={} |",
            d.packets, d.emc_hits, d.megaflow_hits, d.misses, d.revalidations, megaflows, masks
        );
        let _ = write!(
            s,
            " macs={} packet_ins={} pool_free={}/{}",
            self.normal.mac_table().len(),
            self.packet_ins,
            self.pool.free_count(),
            self.pool.num_bufs()
        );
        if let Some(c) = self.cores.as_ref() {
            let _ = write!(s, " | {}", c.stats_line());
        }
        s
    }
}
