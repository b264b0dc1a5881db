//! The multi-core appliance: the management core (the boot CPU) runs the management plane,
//! the configuration and the authoritative pipeline; N datapath cores each run a
//! [`WorkerLoop`] over their own receive/transmit queue pair of every data port
//! (virtio-net multiqueue: pair i is core i's), with their own packet pool, caches and
//! counters ([`switch_core::mcore`]). Nothing on the packet path is shared: a worker's loop
//! touches its queues, its pool, its replica and, at batch boundaries, one atomic (the newest
//! epoch) and the NIC → port map's generation.
//!
//! What crosses cores, and how:
//! - **Flow-table and port changes:** the bridge's [`mcore::Hub`] publishes them by epochs
//!   after every management pass; an OpenFlow barrier is answered once every core switched
//!   ([`mgmt::agent::Cores`]); statistics requests wait for every core's counters and fold
//!   them (also done every second, so idle timeouts and OVSDB statistics see the cores' use).
//! - **Which NIC is which OpenFlow port:** [`Shared::set_port_map`] (management core, after a
//!   reconfiguration) stores it in atomics with a generation; a worker re-reads it when the
//!   generation moved.
//! - **Packet-ins:** each worker copies them into its single-producer queue to the management
//!   core ([`PacketInMsg`], 1,023 deep), which drains them into the OpenFlow agent's packet-in
//!   queue (with its limits and counters) every pass; a full queue counts
//!   `packet_in_dropped` for that core, shown in the stats line.
//! - **Packet-outs (and every other frame the management core sends on a data port):** the
//!   management core's bridge sees each data port as a [`RemoteNic`] whose transmit copies
//!   the frame into a queue to worker 0, which sends it on its own queue pair; a full queue
//!   counts as the port's `tx_full`.
//! - **NIC counters and link:** each worker publishes its queues' [`NicStats`] every second
//!   (one lock per NIC per second, never per packet); worker 0 also reads the links. The
//!   management core's view of a port sums the cores' counters.
//!
//! - **Meters:** each worker charges the OpenFlow agent's meters through its own
//!   [`MeterReader`]: the token buckets are shared atomics, so a meter limits the bridge's
//!   traffic as a whole, whichever core it arrives on, and its counters are exact. The reader
//!   follows meter-mods at the batch boundary right after the epoch sync (so after a barrier
//!   reply every core meters with the new configuration); no lock is taken per packet.
//!
//! Not per core yet (documented limit): NORMAL's MAC table (each core learns from its own
//! packets; with flows pinned to queues by the NIC's hash, a host's traffic stays on one core,
//! but a reply on another core floods until that core learned the host).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use drivers::dma::{PacketBatch, PacketBuf, PacketPool};
use drivers::nic::{Nic, NicStats};
use heapless::spsc;
use mgmt::agent::MeterReader;
use switch_core::datapath::{DatapathSink, Release};
use switch_core::flow::FlowKey;
use switch_core::mcore::Worker;
use switch_core::packet::Frame as _;
use switch_core::pipeline::{MeterHook, PacketIn, PacketInReason};
use switch_core::port::PortNo;

use crate::bridge::{MAX_FRAME, MIN_FRAME};

/// Depth of each cross-core queue (one slot stays empty).
pub const QUEUE_DEPTH: usize = 1024;
/// A worker publishes its counters and runs its timers this often.
const WORKER_TICK_MS: u64 = 1000;
/// Megaflows idle this long are swept (Open vSwitch's default `max-idle`).
const MAX_IDLE_MS: u64 = 10_000;

/// A packet-in made on a datapath core, on its way to the management core.
pub struct PacketInMsg {
    pub reason: PacketInReason,
    pub table_id: u8,
    pub cookie: u64,
    pub max_len: u16,
    pub key: FlowKey,
    pub frame: Vec<u8>,
}

impl PacketInMsg {
    fn from_packet_in(pi: &PacketIn<'_>) -> Box<PacketInMsg> {
        // The whole frame: the agent's queue truncates to what the controller asked for.
        Box::new(PacketInMsg {
            reason: pi.reason,
            table_id: pi.table_id,
            cookie: pi.cookie,
            max_len: pi.max_len,
            key: *pi.key,
            frame: pi.frame.to_vec(),
        })
    }

    /// The packet-in as the pipeline made it.
    pub fn as_packet_in(&self) -> PacketIn<'_> {
        PacketIn {
            reason: self.reason,
            table_id: self.table_id,
            cookie: self.cookie,
            max_len: self.max_len,
            key: &self.key,
            frame: &self.frame,
        }
    }
}

/// A frame the management core sends on data NIC `nic` (an index into the bridge's NICs).
pub struct FrameMsg {
    pub nic: u16,
    pub frame: Vec<u8>,
}

type Queue<T> = spsc::Queue<Box<T>, QUEUE_DEPTH>;
pub type PacketInProducer = spsc::Producer<'static, Box<PacketInMsg>>;
pub type PacketInConsumer = spsc::Consumer<'static, Box<PacketInMsg>>;
pub type FrameProducer = spsc::Producer<'static, Box<FrameMsg>>;
pub type FrameConsumer = spsc::Consumer<'static, Box<FrameMsg>>;

/// One queue, made once at start-up and never freed (its two ends live on two cores).
fn leaked_queue<T>() -> (
    spsc::Producer<'static, Box<T>>,
    spsc::Consumer<'static, Box<T>>,
) {
    let q: &'static mut Queue<T> = Box::leak(Box::new(Queue::new()));
    q.split()
}

/// Per (core, NIC) counters as last published.
struct CoreNic {
    stats: spin::Mutex<NicStats>,
}

/// What the cores share besides the mcore hub: the NIC → port map, counters, links.
pub struct Shared {
    n_nics: usize,
    n_workers: usize,
    /// NIC index → OpenFlow port number + 1 (0: not a bridge port).
    port_of_nic: Vec<AtomicU32>,
    map_gen: AtomicU64,
    /// `[worker][nic]`.
    nic_stats: Vec<CoreNic>,
    /// Per worker: packet-ins its queue to the management core could not take.
    packet_in_dropped: Vec<AtomicU64>,
    /// Per worker: frames its NICs received while not bridge ports, or malformed.
    rx_unbound: Vec<AtomicU64>,
    rx_malformed: Vec<AtomicU64>,
    /// Link per NIC, as worker 0 last read it.
    link: Vec<AtomicBool>,
    /// Frames the management core could not queue for worker 0.
    frames_dropped: AtomicU64,
}

impl Shared {
    pub fn new(n_nics: usize, n_workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            n_nics,
            n_workers,
            port_of_nic: (0..n_nics).map(|_| AtomicU32::new(0)).collect(),
            map_gen: AtomicU64::new(0),
            nic_stats: (0..n_nics * n_workers)
                .map(|_| CoreNic {
                    stats: spin::Mutex::new(NicStats::default()),
                })
                .collect(),
            packet_in_dropped: (0..n_workers).map(|_| AtomicU64::new(0)).collect(),
            rx_unbound: (0..n_workers).map(|_| AtomicU64::new(0)).collect(),
            rx_malformed: (0..n_workers).map(|_| AtomicU64::new(0)).collect(),
            link: (0..n_nics).map(|_| AtomicBool::new(true)).collect(),
            frames_dropped: AtomicU64::new(0),
        })
    }

    pub fn n_workers(&self) -> usize {
        self.n_workers
    }

    /// NIC `nic`'s link as last read (set at start-up from the device, then by worker 0).
    pub fn set_link(&self, nic: usize, up: bool) {
        if let Some(l) = self.link.get(nic) {
            l.store(up, Ordering::Relaxed);
        }
    }

    /// The management core's map after a reconfiguration: `ports[i]` is NIC i's port.
    pub fn set_port_map(&self, ports: impl Iterator<Item = Option<PortNo>>) {
        let mut changed = false;
        for (slot, no) in self.port_of_nic.iter().zip(ports) {
            let v = no.map_or(0, |n| n.wrapping_add(1));
            changed |= slot.swap(v, Ordering::Relaxed) != v;
        }
        if changed {
            self.map_gen.fetch_add(1, Ordering::Release);
        }
    }

    /// NIC `nic`'s counters summed over the cores.
    pub fn nic_stats(&self, nic: usize) -> NicStats {
        let mut s = NicStats::default();
        for w in 0..self.n_workers {
            let c = *self.nic_stats[w * self.n_nics + nic].stats.lock();
            s.rx_packets += c.rx_packets;
            s.rx_bytes += c.rx_bytes;
            s.tx_packets += c.tx_packets;
            s.tx_bytes += c.tx_bytes;
            s.rx_no_buffer += c.rx_no_buffer;
            s.rx_errors += c.rx_errors;
            s.tx_errors += c.tx_errors;
            s.tx_full += c.tx_full;
            s.notifications += c.notifications;
        }
        s
    }

    /// One line: per worker frames received (as of its last publication, at most a second
    /// old), packet-in drops, unbound and malformed frames.
    pub fn stats_line(&self) -> String {
        use core::fmt::Write as _;
        let mut s = String::from("cores:");
        for w in 0..self.n_workers {
            let rx: u64 = (0..self.n_nics)
                .map(|i| self.nic_stats[w * self.n_nics + i].stats.lock().rx_packets)
                .sum();
            let _ = write!(
                s,
                " worker{w} rx={rx} packet_in_dropped={} unbound={} malformed={} |",
                self.packet_in_dropped[w].load(Ordering::Relaxed),
                self.rx_unbound[w].load(Ordering::Relaxed),
                self.rx_malformed[w].load(Ordering::Relaxed),
            );
        }
        let _ = write!(
            s,
            " frames_to_worker0_dropped={}",
            self.frames_dropped.load(Ordering::Relaxed)
        );
        s
    }
}

/// The management core's view of a data port whose queues the datapath cores poll: it
/// receives nothing; what it transmits goes to worker 0 (copied); its counters and link are
/// the cores'.
pub struct RemoteNic {
    index: u16,
    name: String,
    mac: [u8; 6],
    shared: Arc<Shared>,
    to_worker0: Rc<RefCell<FrameProducer>>,
    tx_full: u64,
}

impl RemoteNic {
    pub fn new(
        index: u16,
        name: String,
        mac: [u8; 6],
        shared: Arc<Shared>,
        to_worker0: Rc<RefCell<FrameProducer>>,
    ) -> RemoteNic {
        RemoteNic {
            index,
            name,
            mac,
            shared,
            to_worker0,
            tx_full: 0,
        }
    }
}

impl Nic for RemoteNic {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&mut self) -> bool {
        self.shared.link[usize::from(self.index)].load(Ordering::Relaxed)
    }

    fn num_rx_queues(&self) -> u16 {
        0
    }

    fn num_tx_queues(&self) -> u16 {
        1
    }

    fn rx_burst(&mut self, _queue: u16, _batch: &mut PacketBatch) -> usize {
        0
    }

    fn tx_burst(&mut self, _queue: u16, batch: &mut PacketBatch) -> usize {
        let mut q = self.to_worker0.borrow_mut();
        let mut sent = 0;
        for buf in batch.drain(..) {
            let msg = Box::new(FrameMsg {
                nic: self.index,
                frame: buf.data().to_vec(),
            });
            if q.enqueue(msg).is_ok() {
                sent += 1;
            } else {
                self.tx_full += 1;
                self.shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    }

    fn tx_reclaim(&mut self, _queue: u16) -> usize {
        0
    }

    fn stats(&self) -> NicStats {
        let mut s = self.shared.nic_stats(usize::from(self.index));
        s.tx_full += self.tx_full;
        s
    }
}

/// A NIC slot of a core that has no queue on it (the device offered fewer pairs than cores).
pub struct NoQueue;

impl Nic for NoQueue {
    fn name(&self) -> &str {
        "no queue"
    }
    fn mac_address(&self) -> [u8; 6] {
        [0; 6]
    }
    fn link_up(&mut self) -> bool {
        false
    }
    fn num_rx_queues(&self) -> u16 {
        0
    }
    fn num_tx_queues(&self) -> u16 {
        0
    }
    fn rx_burst(&mut self, _queue: u16, _batch: &mut PacketBatch) -> usize {
        0
    }
    fn tx_burst(&mut self, _queue: u16, batch: &mut PacketBatch) -> usize {
        batch.clear();
        0
    }
    fn tx_reclaim(&mut self, _queue: u16) -> usize {
        0
    }
    fn stats(&self) -> NicStats {
        NicStats::default()
    }
}

/// The cross-core queues of one worker, made on the management core before the workers start.
pub struct WorkerLinks {
    pub packet_ins: PacketInProducer,
    /// Worker 0 only: frames from the management core.
    pub frames: Option<FrameConsumer>,
}

/// The management core's ends: one packet-in consumer per worker, the frame producer.
pub struct MgmtLinks {
    pub packet_ins: Vec<PacketInConsumer>,
    pub frames: Rc<RefCell<FrameProducer>>,
}

/// Makes the queues between the management core and `n` workers.
pub fn links(n: usize) -> (MgmtLinks, Vec<WorkerLinks>) {
    let (fp, fc) = leaked_queue::<FrameMsg>();
    let mut fc = Some(fc);
    let mut consumers = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..n {
        let (p, c) = leaked_queue::<PacketInMsg>();
        consumers.push(c);
        workers.push(WorkerLinks {
            packet_ins: p,
            frames: fc.take(),
        });
    }
    (
        MgmtLinks {
            packet_ins: consumers,
            frames: Rc::new(RefCell::new(fp)),
        },
        workers,
    )
}

/// Everything a datapath core needs, built on the management core and moved to the worker's
/// CPU (`Send`): the mcore worker, the cross-core queues and the shared state. The NICs and
/// the pool are made on the worker's CPU ([`WorkerLoop::new`]).
pub struct WorkerStart {
    pub worker: Worker,
    pub links: WorkerLinks,
    pub shared: Arc<Shared>,
    /// The OpenFlow agent's meters (none without a management port: nothing can add one).
    pub meters: Option<MeterReader>,
}

/// One datapath core's run-to-completion loop.
pub struct WorkerLoop {
    worker: Worker,
    links: WorkerLinks,
    shared: Arc<Shared>,
    meters: Option<MeterReader>,
    pool: Rc<PacketPool>,
    /// This core's queue of every data NIC, in the bridge's NIC order.
    nics: Vec<Box<dyn Nic>>,
    /// NIC index → port (+1, 0 = unbound), this core's copy of the map.
    port_of_nic: Vec<u32>,
    map_gen: u64,
    rx: PacketBatch,
    tx: Vec<PacketBatch>,
    tx_dropped: Vec<u64>,
    next_tick: u64,
    pub iterations: u64,
}

/// The worker's sink: outputs into its transmit batches, packet-ins into its queue.
struct WorkerSink<'a> {
    pool: &'a Rc<PacketPool>,
    port_of_nic: &'a [u32],
    nics: &'a mut [Box<dyn Nic>],
    tx: &'a mut [PacketBatch],
    tx_dropped: &'a mut [u64],
    packet_ins: &'a mut PacketInProducer,
    packet_in_dropped: &'a AtomicU64,
}

impl DatapathSink<PacketBuf> for WorkerSink<'_> {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: PacketBuf) {
        let want = port.wrapping_add(1);
        let Some(i) = self.port_of_nic.iter().position(|p| *p == want) else {
            return; // LOCAL or no NIC: the buffer goes back to the pool
        };
        if self.tx[i].is_full() {
            self.nics[i].tx_burst(0, &mut self.tx[i]);
            self.tx_dropped[i] += self.tx[i].len() as u64;
            self.tx[i].clear();
        }
        let _ = self.tx[i].push(frame);
    }

    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<PacketBuf> {
        let mut buf = self.pool.alloc()?;
        buf.copy_from_slice(bytes).then_some(buf)
    }

    fn controller(&mut self, packet_in: &PacketIn<'_>) {
        if self
            .packet_ins
            .enqueue(PacketInMsg::from_packet_in(packet_in))
            .is_err()
        {
            self.packet_in_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(&mut self, _frame: PacketBuf, _why: Release) {}
}

impl WorkerLoop {
    /// On the worker's CPU: `nics` are this core's queues (started with `pool`, this core's).
    pub fn new(start: WorkerStart, pool: Rc<PacketPool>, nics: Vec<Box<dyn Nic>>) -> Self {
        let WorkerStart {
            worker,
            links,
            shared,
            meters,
        } = start;
        let n = nics.len();
        WorkerLoop {
            worker,
            links,
            shared,
            meters,
            pool,
            nics,
            port_of_nic: alloc::vec![0; n],
            map_gen: u64::MAX,
            rx: PacketBatch::new(),
            tx: (0..n).map(|_| PacketBatch::new()).collect(),
            tx_dropped: alloc::vec![0; n],
            next_tick: 0,
            iterations: 0,
        }
    }

    pub fn id(&self) -> usize {
        self.worker.id()
    }

    /// Runs forever with `now_ms` as the clock.
    pub fn run(&mut self, now_ms: impl Fn() -> u64) -> ! {
        loop {
            self.pass(now_ms());
        }
    }

    /// One pass: sync (batch boundary), frames from the management core, every queue once,
    /// and the timers once a second. Returns the packets received.
    pub fn pass(&mut self, now: u64) -> usize {
        self.iterations += 1;
        self.worker.sync(now);
        // After the sync: a meter-mod made before the newest barrier is seen here.
        if let Some(m) = &mut self.meters {
            m.refresh();
        }
        let map_gen = self.shared.map_gen.load(Ordering::Acquire);
        if map_gen != self.map_gen {
            for (mine, theirs) in self.port_of_nic.iter_mut().zip(&self.shared.port_of_nic) {
                *mine = theirs.load(Ordering::Relaxed);
            }
            self.map_gen = map_gen;
        }
        self.frames_from_mgmt();
        let id = self.worker.id();
        let mut total = 0;
        for i in 0..self.nics.len() {
            let n = self.nics[i].rx_burst(0, &mut self.rx);
            if n == 0 {
                continue;
            }
            total += n;
            let Some(in_port) = self.port_of_nic[i].checked_sub(1) else {
                self.shared.rx_unbound[id].fetch_add(n as u64, Ordering::Relaxed);
                self.rx.clear();
                continue;
            };
            let mut runts = 0u64;
            self.rx.retain(|buf| {
                let ok = (MIN_FRAME..=MAX_FRAME).contains(&buf.data().len());
                runts += !ok as u64;
                ok
            });
            if runts != 0 {
                self.shared.rx_malformed[id].fetch_add(runts, Ordering::Relaxed);
            }
            let WorkerLoop {
                worker,
                links,
                shared,
                meters,
                pool,
                nics,
                port_of_nic,
                rx,
                tx,
                tx_dropped,
                ..
            } = self;
            let mut sink = WorkerSink {
                pool,
                port_of_nic,
                nics,
                tx,
                tx_dropped,
                packet_ins: &mut links.packet_ins,
                packet_in_dropped: &shared.packet_in_dropped[id],
            };
            let meters = meters.as_mut().map(|m| m as &mut dyn MeterHook);
            worker.process_batch_metered(in_port, rx.drain(..), &mut sink, meters, now);
            self.flush();
        }
        if now >= self.next_tick {
            self.tick(now);
            self.next_tick = now + WORKER_TICK_MS;
        }
        total
    }

    fn flush(&mut self) {
        for ((nic, b), d) in self
            .nics
            .iter_mut()
            .zip(self.tx.iter_mut())
            .zip(self.tx_dropped.iter_mut())
        {
            if !b.is_empty() {
                nic.tx_burst(0, b);
                *d += b.len() as u64;
                b.clear();
            }
        }
    }

    /// Worker 0: sends what the management core queued (packet-outs, NORMAL floods of them).
    fn frames_from_mgmt(&mut self) {
        let Some(q) = self.links.frames.as_mut() else {
            return;
        };
        let mut any = false;
        while let Some(msg) = q.dequeue() {
            let i = usize::from(msg.nic);
            let Some(b) = self.tx.get_mut(i) else {
                continue;
            };
            let Some(mut buf) = self.pool.alloc() else {
                self.tx_dropped[i] += 1;
                continue;
            };
            if !buf.copy_from_slice(&msg.frame) {
                continue;
            }
            if b.is_full() {
                self.nics[i].tx_burst(0, b);
                self.tx_dropped[i] += b.len() as u64;
                b.clear();
            }
            let _ = b.push(buf);
            any = true;
        }
        if any {
            self.flush();
        }
    }

    /// Once a second: timers, transmit reclaim, counters and links published.
    fn tick(&mut self, now: u64) {
        self.worker.timers(now, MAX_IDLE_MS);
        let id = self.worker.id();
        let n = self.shared.n_nics;
        for (i, nic) in self.nics.iter_mut().enumerate() {
            nic.tx_reclaim(0);
            let mut s = nic.stats();
            s.tx_full += self.tx_dropped[i];
            if let Some(slot) = self.shared.nic_stats.get(id * n + i) {
                *slot.stats.lock() = s;
            }
            if id == 0 {
                let up = nic.link_up();
                self.shared.link[i].store(up, Ordering::Relaxed);
            }
        }
    }
}
