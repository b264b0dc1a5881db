//! The multi-core datapath: one management core owns the authoritative pipeline state and
//! publishes it, by epochs, to N worker cores, each running its own [`Datapath`] (EMC +
//! megaflow cache) run-to-completion with no shared lock on the packet path.
//!
//! ## The scheme: per-core replicas fed by an epoch-numbered op log
//!
//! The [`Publisher`] (management core) owns the authoritative [`Pipeline`] and [`PortTable`].
//! Every successful change (flow-mod, group-mod, entry removal, settings, MAC flush) is applied
//! to it first (so errors are answered there) and appended to a batch of [`Op`]s; ports are
//! published as an `Arc<PortTable>` snapshot (small). [`Publisher::publish`] closes the batch
//! as epoch `E`: an immutable node `{E, ops, ports}` appended to a singly linked list of
//! `Arc`s, and the newest epoch number is stored in one atomic.
//!
//! Each [`Worker`] (datapath core) owns a **replica** of the pipeline (a clone made once, at
//! start, with its counters zeroed), its own NORMAL learning switch, its own [`Datapath`] and
//! its own counters. [`Worker::sync`], called at a batch boundary (never inside a batch), loads
//! the newest epoch number (one relaxed-contention atomic load per call, no lock); when it moved,
//! the worker follows the list from the node it holds, replays each node's ops on its replica
//! (the ops are deterministic: same state, same ops, same entry handles and serials as on the
//! writer), takes the node's port table, then stores its acknowledged epoch in its own
//! cache-line slot. The replica's generation changed, so the worker's megaflows and EMC entries
//! of the old state are revalidated before they serve another packet (the single-core
//! invalidation of [`crate::datapath`]): **after `sync` returns with epoch `E`, no packet on
//! that core is forwarded by state older than `E`**.
//!
//! [`Publisher::passed`]`(E)` tells whether every core has acknowledged `E` or later: an
//! OpenFlow barrier reply is sent only then ([`Publisher::barrier`]). Old nodes are freed by
//! `Arc` when the slowest core has moved past them (RCU by reference counting); the replicas
//! never share mutable state with anyone, so no `unsafe` is needed (`deny(unsafe_code)` holds).
//!
//! ### Why replicas and not one shared snapshot
//!
//! Measured (`cargo bench -p switch-core --bench mcore -- flowmod`, see docs/benchmarks.md,
//! section "Multi-core datapath"): with 100k flows in table 0, a deep clone of the pipeline
//! (what an immutable snapshot per management poll costs without structural sharing) takes
//! 60-105 ms on the 2-vCPU development host, while replaying one flow-mod on a replica costs
//! about 0.9 µs (and applying + logging it on the publisher 1.1 µs).
//! A snapshot per flow-mod/barrier pair (a controller pushing flows one by one with barriers)
//! would therefore cost a 100k-flow clone per flow; per-table copy-on-write has the same cost
//! when the flows are in one table. Structural sharing (persistent maps in the classifier) and a
//! shared read-only left-right copy both need the pipeline to be `Sync`, but its counters are
//! `Cell`s that the packet path bumps through `&` (flow entries, tables, groups are public API
//! used by `mgmt`); making them shared atomics would also put contended read-modify-writes on
//! the packet path. Replicas keep the single-core code path byte for byte (the differential
//! tests cover it), make every counter per core for free, and cost per flow-mod one replay per
//! core, in parallel on the cores, plus memory: one pipeline per core (N+1 copies of the flow
//! tables).
//!
//! What it costs: a worker that picks up a burst of 100k flow-mods replays them before its next
//! batch (92 ms measured for 100k modify-strict: forwarding paused that long on each core, in
//! parallel). A left-right pair per
//! core would move that replay to the management core at twice the memory; left for later.
//!
//! ## Counters
//!
//! Every packet is counted by exactly one core, in that core's replica (flow entries, tables,
//! groups, buckets), datapath statistics and port counters (rx by input port, tx by output
//! port, counted by the worker around the caller's sink). The writer asks for them with
//! [`Publisher::request_stats`]; each worker answers at its next [`Worker::sync`] with a
//! [`CoreStats`] snapshot (taken at a batch boundary, so the megaflow hits of the batch are
//! credited) put in its mailbox; [`Publisher::stats`] sums the latest snapshots with the writer's
//! own counters (packet-outs through the tables) into [`Stats`]. Flow entries are matched by
//! their serial, unique over the pipeline's life, so a counter is never credited to another
//! entry. Entries removed by a flow-mod or expiry keep their per-core counts: each core reports
//! the removed entry's final counts when it replays the removal, and
//! [`Publisher::take_flow_removed`] hands out the flow-removed events, with the counts summed,
//! once every core passed the epoch that removed them.
//!
//! Idle timeouts depend on every core's last use: the writer decides expiry
//! ([`Publisher::expire`], from a [`Stats`]) and publishes removals; replicas never expire on
//! their own (their entry sets would diverge).
//!
//! ## Using it (a main loop with one management core and N worker cores)
//!
//! ```text
//! let (mut publisher, workers) = Publisher::new(pipeline, ports, NormalSwitch::default(),
//!                                               DatapathConfig::default(), n);
//! // worker core i (moves workers[i] to its core):
//! loop {
//!     worker.sync(now_ms);                       // batch boundary: newest epoch, stats requests
//!     for each rx queue q of this core {
//!         let rx = nic.rx_burst(q, 32);
//!         worker.process_batch(in_port, rx, &mut tx_sink, now_ms);
//!         tx_sink.flush_all();
//!     }
//!     every second: worker.timers(now_ms);       // MAC aging, megaflow sweep
//! }
//! // management core, each poll:
//! publisher.flow_mod(&fm, now_ms)?;              // answer errors right away
//! ...                                            // more flow-mods / group-mods / port changes
//! let e = publisher.publish();                   // once per poll (batch of changes)
//! // OFPT_BARRIER_REQUEST: e = publisher.barrier(); reply on a later poll once
//! //   publisher.passed(e) (never block the management loop on it).
//! for fr in publisher.take_flow_removed() { ... } // exact counts, after every core switched
//! // stats: t = publisher.request_stats(); once publisher.stats_ready(t): publisher.stats()
//! ```
//!
//! A worker must call [`Worker::sync`] even when it receives nothing (poll mode does): a core
//! that stops syncing holds every barrier and keeps old epochs alive.
//!
//! ## Not (yet) shared between cores
//!
//! - NORMAL's MAC table is per core (each replica learns from its own packets): with flows
//!   pinned by RSS, a reply that lands on another core than the request floods until that core
//!   has seen the host. A shared MAC table is left for later.
//! - Meters are the caller's: [`Worker::process_batch_metered`] takes a per-core hook. The
//!   appliance's hook (`mgmt::agent::MeterReader`) charges token buckets shared by all cores, so
//!   a band's rate holds for the bridge, not per core.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;
use spin::Mutex;

use crate::datapath::{Datapath, DatapathConfig, DatapathSink, DatapathStats, Release};
use crate::error::OfpError;
use crate::flow::FlowKey;
use crate::group::GroupMod;
use crate::normal::{NormalConfig, NormalSwitch};
use crate::packet::Frame;
use crate::pipeline::Outcome;
use crate::pipeline::{Action, Env, FlowMod, MeterHook, OutputSink, PacketIn, Pipeline};
use crate::port::{PortCounters, PortNo, PortTable};
use crate::table::{EntryId, FlowRemoved, OFPTT_ALL, RemovedReason, TableStats};

/// One change, as the publisher applied it, replayed by every worker on its replica.
#[derive(Clone, Debug)]
pub enum Op {
    /// [`Pipeline::flow_mod`] at `now_ms`.
    FlowMod(Box<FlowMod>, u64),
    /// [`Pipeline::group_mod`] at `now_ms`.
    GroupMod(GroupMod, u64),
    /// [`Pipeline::remove_entry`] (expiry decided by the publisher).
    RemoveEntry(EntryId, RemovedReason, u64),
    /// [`Pipeline::set_table_miss_to_controller`].
    TableMissToController(bool),
    /// [`Pipeline::set_invalid_ttl_to_controller`].
    InvalidTtlToController(bool, u16),
    /// [`Pipeline::set_max_entries`].
    MaxEntries(u8, usize),
    /// [`Pipeline::set_group_limits`].
    GroupLimits(usize, usize),
    /// [`NormalSwitch::set_config`] on every core's learning switch.
    NormalConfig(NormalConfig),
    /// Flush the MAC entries of a port (every core's table).
    MacFlushPort(PortNo),
    /// Flush every MAC entry (every core's table).
    MacFlushAll,
}

/// One published epoch: the ops since the previous one and, if they changed, the ports.
struct Node {
    epoch: u64,
    ops: Vec<Op>,
    ports: Option<Arc<PortTable>>,
    /// The next epoch, once published (locked only by a worker that saw the epoch move, and by
    /// the publisher appending: never per packet).
    next: Mutex<Option<Arc<Node>>>,
}

impl Drop for Node {
    /// Iteratively, so that a long list that nobody holds any more is not freed recursively.
    fn drop(&mut self) {
        let mut next = self.next.get_mut().take();
        while let Some(n) = next {
            match Arc::try_unwrap(n) {
                Ok(mut node) => next = node.next.get_mut().take(),
                Err(_) => break,
            }
        }
    }
}

/// A removed entry's counts on one core.
#[derive(Clone, Copy, Debug)]
struct RemovedCounts {
    serial: u64,
    packets: u64,
    bytes: u64,
}

/// One worker's slot, on a cache line of its own.
#[repr(align(64))]
struct CoreSlot {
    /// The newest epoch the core has switched to.
    acked: AtomicU64,
    /// The newest stats ticket the core has answered.
    stats_done: AtomicU64,
    stats: Mutex<Option<Arc<CoreStats>>>,
    removed: Mutex<Vec<RemovedCounts>>,
}

struct Shared {
    /// The newest published epoch.
    latest: AtomicU64,
    /// The newest stats request.
    stats_ticket: AtomicU64,
    cores: Box<[CoreSlot]>,
}

/// A flow entry's counters (on one core, or summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryCounts {
    pub packets: u64,
    pub bytes: u64,
    /// Last time a packet matched (the latest over the cores when summed).
    pub last_used_ms: u64,
}

/// A group's counters (on one core, or summed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Tells a re-created group (same id) from the one counted.
    pub created_ms: u64,
    pub packets: u64,
    pub bytes: u64,
    /// `(packets, bytes)` per bucket.
    pub buckets: Vec<(u64, u64)>,
}

/// One core's counters, taken by the core at a batch boundary on request.
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    pub core: usize,
    /// The epoch the core had switched to when it took the snapshot.
    pub epoch: u64,
    /// The request it answers ([`Publisher::request_stats`]).
    pub ticket: u64,
    /// Flow entries by serial (entries this core never counted are left out).
    pub entries: HashMap<u64, EntryCounts>,
    /// Lookup and matched counts per table (`active_count` is the writer's).
    pub tables: Vec<TableStats>,
    pub groups: BTreeMap<u32, GroupCounts>,
    pub datapath: DatapathStats,
    pub megaflows: usize,
    pub masks: usize,
    /// rx by input port, tx by output port.
    pub ports: BTreeMap<PortNo, PortCounters>,
}

/// Counters summed over the cores and the writer ([`Publisher::stats`]).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Live flow entries by serial.
    pub entries: HashMap<u64, EntryCounts>,
    pub tables: Vec<TableStats>,
    pub groups: BTreeMap<u32, GroupCounts>,
    /// The cores' datapath statistics, summed.
    pub datapath: DatapathStats,
    /// Per core, in core order (default for a core that has not answered yet).
    pub per_core: Vec<DatapathStats>,
    pub megaflows: usize,
    pub ports: BTreeMap<PortNo, PortCounters>,
    /// The oldest ticket among the snapshots summed (0: some core never answered).
    pub ticket: u64,
}

impl Stats {
    /// The summed counters of a live entry (zero if unknown).
    pub fn entry(&self, id: EntryId) -> EntryCounts {
        self.entries.get(&id.serial).copied().unwrap_or_default()
    }
}

/// Adds `b` into `a`, field by field.
pub fn add_datapath_stats(a: &mut DatapathStats, b: &DatapathStats) {
    a.packets += b.packets;
    a.malformed += b.malformed;
    a.batch_hits += b.batch_hits;
    a.emc_hits += b.emc_hits;
    a.megaflow_hits += b.megaflow_hits;
    a.megaflow_lookups += b.megaflow_lookups;
    a.subtables_searched += b.subtables_searched;
    a.misses += b.misses;
    a.revalidations += b.revalidations;
    a.slow_path += b.slow_path;
    a.installs += b.installs;
    a.no_buffer += b.no_buffer;
    a.outputs += b.outputs;
}

fn add_port_counters(a: &mut PortCounters, b: &PortCounters) {
    a.rx_packets += b.rx_packets;
    a.tx_packets += b.tx_packets;
    a.rx_bytes += b.rx_bytes;
    a.tx_bytes += b.tx_bytes;
    a.rx_dropped += b.rx_dropped;
    a.tx_dropped += b.tx_dropped;
    a.rx_errors += b.rx_errors;
    a.tx_errors += b.tx_errors;
    a.rx_malformed += b.rx_malformed;
}

/// The management core's side: the authoritative state and the publication of its changes.
///
/// A thin owner of the authoritative [`Pipeline`] and [`PortTable`] next to a [`Hub`] (the
/// publication itself). A main loop that keeps its pipeline and port table elsewhere (the
/// appliance's bridge, which lends them to the OpenFlow agent) uses a [`Hub`] directly.
pub struct Publisher {
    pipeline: Pipeline,
    ports: PortTable,
    hub: Hub,
}

/// The publication machinery without the state it publishes: the epoch list, the cores'
/// slots, stats requests, flow-removed bookkeeping and the fold of the cores' counters.
///
/// Changes reach it from a pipeline that records ([`Pipeline::set_recording`], turned on by
/// [`Hub::new`]): every successful flow-mod, group-mod, removal, expiry or setting is logged
/// by the pipeline itself, so code that holds `&mut Pipeline` (the OpenFlow agent) needs no
/// change. [`Hub::publish`] takes the recorded ops, and the port table when its generation
/// moved.
pub struct Hub {
    /// Ops that are not the pipeline's (NORMAL settings, MAC flushes).
    ops: Vec<Op>,
    ports_dirty: bool,
    ports_gen: u64,
    tail: Arc<Node>,
    epoch: u64,
    shared: Arc<Shared>,
    ticket: u64,
    /// Removed entries waiting for every core to pass their epoch.
    pending_removed: Vec<(u64, FlowRemoved)>,
    /// Per-core counts of removed entries, reported so far, by serial.
    removed_acc: HashMap<u64, (u64, u64)>,
    fold: Fold,
}

/// A group's counts as folded: packets, bytes, `(packets, bytes)` per bucket.
type GroupFold = (u64, u64, Vec<(u64, u64)>);

/// What [`Hub::fold_into`] already added to the authoritative pipeline, per counted object
/// (the cores' totals at the last fold).
#[derive(Default)]
struct Fold {
    entries: HashMap<u64, (u64, u64)>,
    tables: Vec<(u64, u64)>,
    groups: BTreeMap<(u32, u64), GroupFold>,
    /// The cores' datapath counters and port counters summed at the last fold.
    datapath: DatapathStats,
    per_core: Vec<DatapathStats>,
    ports: BTreeMap<PortNo, PortCounters>,
    megaflows: usize,
}

/// A datapath core's side: its replica, caches and counters.
pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    cur: Arc<Node>,
    epoch: u64,
    served: u64,
    pipeline: Pipeline,
    ports: Arc<PortTable>,
    normal: NormalSwitch,
    datapath: Datapath,
    rx: PortMap,
    tx: PortMap,
    malformed: PortMap,
}

impl Publisher {
    /// A publisher over `pipeline` and `ports` (the authoritative state from now on) and `n`
    /// workers (at least one), each with a replica of the pipeline (counters zeroed), a clone of
    /// `normal` and a datapath with `config`. Move each worker to its core.
    pub fn new(
        mut pipeline: Pipeline,
        ports: PortTable,
        normal: NormalSwitch,
        config: DatapathConfig,
        n: usize,
    ) -> (Publisher, Vec<Worker>) {
        let (hub, workers) = Hub::new(&mut pipeline, &ports, normal, config, n);
        (
            Publisher {
                pipeline,
                ports,
                hub,
            },
            workers,
        )
    }

    /// The authoritative pipeline (flow and group dumps, validation). Its counters hold only
    /// what the management core itself ran (packet-outs): use [`stats`](Self::stats).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The authoritative port table.
    pub fn ports(&self) -> &PortTable {
        &self.ports
    }

    /// The port table, to change; the whole table is published with the next epoch.
    pub fn ports_mut(&mut self) -> &mut PortTable {
        self.hub.ports_dirty = true;
        &mut self.ports
    }

    /// The parts, borrowed at once: the authoritative pipeline (recording its changes) and
    /// port table, and the hub that publishes them.
    pub fn parts(&mut self) -> (&mut Pipeline, &mut PortTable, &mut Hub) {
        (&mut self.pipeline, &mut self.ports, &mut self.hub)
    }

    /// Number of worker cores.
    pub fn n_workers(&self) -> usize {
        self.hub.n_workers()
    }

    /// The newest published epoch.
    pub fn epoch(&self) -> u64 {
        self.hub.epoch
    }

    /// Whether changes wait for [`publish`](Self::publish).
    pub fn has_pending(&self) -> bool {
        self.hub.has_pending(&self.pipeline, &self.ports)
    }

    /// Applies a flow-mod to the authoritative pipeline and, if it succeeded, logs it for the
    /// workers. The flow-removed events of deleted entries come later, with every core's
    /// counts, from [`take_flow_removed`](Self::take_flow_removed).
    pub fn flow_mod(&mut self, fm: &FlowMod, now_ms: u64) -> Result<(), OfpError> {
        let removed = self.pipeline.flow_mod(fm, now_ms)?;
        self.hub.hold_removed(removed);
        Ok(())
    }

    /// Applies a group-mod (as [`flow_mod`](Self::flow_mod)).
    pub fn group_mod(&mut self, gm: &GroupMod, now_ms: u64) -> Result<(), OfpError> {
        let removed = self.pipeline.group_mod(gm, now_ms)?;
        self.hub.hold_removed(removed);
        Ok(())
    }

    /// Removes one entry (expiry, eviction). Returns false if it is gone.
    pub fn remove_entry(&mut self, id: EntryId, reason: RemovedReason, now_ms: u64) -> bool {
        match self.pipeline.remove_entry(id, reason, now_ms) {
            Some(r) => {
                self.hub.hold_removed(alloc::vec![r]);
                true
            }
            None => false,
        }
    }

    /// Removes the entries whose hard timeout, or idle timeout by the latest use on any core
    /// (from `stats`, which should be recent: request it a poll before), has passed at `now_ms`.
    /// Returns how many were removed; their events come from
    /// [`take_flow_removed`](Self::take_flow_removed).
    pub fn expire(&mut self, stats: &Stats, now_ms: u64) -> usize {
        let mut expired = Vec::new();
        for t in self
            .pipeline
            .tables()
            .iter()
            .filter(|t| t.timed_entries() > 0)
        {
            for (rule, e) in t.entries() {
                let hard = e.hard_timeout as u64 * 1000;
                let idle = e.idle_timeout as u64 * 1000;
                let used = e
                    .last_used_ms
                    .get()
                    .max(stats.entries.get(&e.serial).map_or(0, |c| c.last_used_ms));
                let why = if hard != 0 && now_ms.saturating_sub(e.created_ms) >= hard {
                    RemovedReason::HardTimeout
                } else if idle != 0 && now_ms.saturating_sub(used) >= idle {
                    RemovedReason::IdleTimeout
                } else {
                    continue;
                };
                let id = EntryId {
                    table_id: t.id,
                    rule,
                    serial: e.serial,
                };
                expired.push((id, why));
            }
        }
        let n = expired.len();
        for (id, why) in expired {
            self.remove_entry(id, why, now_ms);
        }
        n
    }

    /// [`Pipeline::set_table_miss_to_controller`], published.
    pub fn set_table_miss_to_controller(&mut self, on: bool) {
        self.pipeline.set_table_miss_to_controller(on);
    }

    /// [`Pipeline::set_invalid_ttl_to_controller`], published.
    pub fn set_invalid_ttl_to_controller(&mut self, on: bool, miss_send_len: u16) {
        self.pipeline
            .set_invalid_ttl_to_controller(on, miss_send_len);
    }

    /// [`Pipeline::set_max_entries`], published.
    pub fn set_max_entries(&mut self, id: u8, max: usize) -> Result<(), OfpError> {
        self.pipeline.set_max_entries(id, max)
    }

    /// [`Pipeline::set_group_limits`], published.
    pub fn set_group_limits(&mut self, max_groups: usize, max_buckets: usize) {
        self.pipeline.set_group_limits(max_groups, max_buckets);
    }

    /// NORMAL's settings on every core.
    pub fn set_normal_config(&mut self, config: NormalConfig) {
        self.hub.set_normal_config(config);
    }

    /// Flushes a port's MAC entries on every core.
    pub fn mac_flush_port(&mut self, port: PortNo) {
        self.hub.mac_flush_port(port);
    }

    /// Flushes every MAC entry on every core.
    pub fn mac_flush_all(&mut self) {
        self.hub.mac_flush_all();
    }

    /// A packet-out on the management core, through the authoritative pipeline (its counts
    /// are summed into [`stats`](Self::stats) with the cores').
    pub fn packet_out<F: Frame>(
        &mut self,
        normal: Option<&mut NormalSwitch>,
        key: &mut FlowKey,
        frame: &mut F,
        actions: &[Action],
        sink: &mut dyn OutputSink,
        now_ms: u64,
    ) -> Result<Outcome, OfpError> {
        let mut env = Env {
            ports: &self.ports,
            normal,
            meters: None,
            now_ms,
        };
        self.pipeline
            .packet_out(&mut env, key, frame, actions, sink)
    }

    /// Publishes the changes since the last publish as a new epoch and returns it (the current
    /// epoch if there were none: every core that passed it has every change). Call once per
    /// management poll, after its flow-mods.
    pub fn publish(&mut self) -> u64 {
        self.hub.publish(&mut self.pipeline, &self.ports)
    }

    /// For an OpenFlow barrier request: publishes what is pending and returns the epoch to wait
    /// for; send the barrier reply once [`passed`](Self::passed) says every core has it.
    pub fn barrier(&mut self) -> u64 {
        self.publish()
    }

    /// The oldest epoch any core has switched to.
    pub fn min_acked(&self) -> u64 {
        self.hub.min_acked()
    }

    /// Whether every core has switched to `epoch` or a later one.
    pub fn passed(&self, epoch: u64) -> bool {
        self.hub.passed(epoch)
    }

    /// Spins until every core has passed `epoch` (for a hosted main loop or tests; a
    /// management loop polls [`passed`](Self::passed) instead). Never call it from a worker's
    /// thread: the worker would wait for itself.
    pub fn wait(&self, epoch: u64) {
        self.hub.wait(epoch)
    }

    /// Flow-removed events of entries removed in epochs every core has passed, with the
    /// counts of every core (and of the management core) summed, in removal order.
    pub fn take_flow_removed(&mut self) -> Vec<FlowRemoved> {
        self.hub.take_flow_removed()
    }

    /// Asks every core for a [`CoreStats`] snapshot (publishing pending changes first) and
    /// returns the ticket; the answers are there once [`stats_ready`](Self::stats_ready).
    pub fn request_stats(&mut self) -> u64 {
        self.hub.request_stats(&mut self.pipeline, &self.ports)
    }

    /// Whether every core has answered `ticket` (or a later request).
    pub fn stats_ready(&self, ticket: u64) -> bool {
        self.hub.stats_ready(ticket)
    }

    /// The latest snapshot of core `i`, if it answered any request.
    pub fn core_stats(&self, i: usize) -> Option<Arc<CoreStats>> {
        self.hub.core_stats(i)
    }

    /// The counters summed over the cores' latest snapshots and the management core's own.
    pub fn stats(&self) -> Stats {
        self.hub.stats(&self.pipeline)
    }
}

impl Hub {
    /// A hub publishing the changes of `pipeline` (its recording is turned on) and `ports` to
    /// `n` workers (at least one), each with a replica of the pipeline (counters zeroed), a
    /// clone of `normal` and a datapath with `config`. Move each worker to its core.
    pub fn new(
        pipeline: &mut Pipeline,
        ports: &PortTable,
        normal: NormalSwitch,
        config: DatapathConfig,
        n: usize,
    ) -> (Hub, Vec<Worker>) {
        let n = n.max(1);
        pipeline.set_recording(false);
        let shared = Arc::new(Shared {
            latest: AtomicU64::new(0),
            stats_ticket: AtomicU64::new(0),
            cores: (0..n)
                .map(|_| CoreSlot {
                    acked: AtomicU64::new(0),
                    stats_done: AtomicU64::new(0),
                    stats: Mutex::new(None),
                    removed: Mutex::new(Vec::new()),
                })
                .collect(),
        });
        let port_arc = Arc::new(ports.clone());
        let tail = Arc::new(Node {
            epoch: 0,
            ops: Vec::new(),
            ports: Some(port_arc.clone()),
            next: Mutex::new(None),
        });
        let workers = (0..n)
            .map(|id| {
                let mut replica = pipeline.clone();
                replica.zero_counters();
                Worker {
                    id,
                    shared: shared.clone(),
                    cur: tail.clone(),
                    epoch: 0,
                    served: 0,
                    pipeline: replica,
                    ports: port_arc.clone(),
                    normal: normal.clone(),
                    datapath: Datapath::new(config),
                    rx: PortMap::default(),
                    tx: PortMap::default(),
                    malformed: PortMap::default(),
                }
            })
            .collect();
        pipeline.set_recording(true);
        let hub = Hub {
            ops: Vec::new(),
            ports_dirty: false,
            ports_gen: ports.generation(),
            tail,
            epoch: 0,
            shared,
            ticket: 0,
            pending_removed: Vec::new(),
            removed_acc: HashMap::new(),
            fold: Fold::default(),
        };
        (hub, workers)
    }

    /// Number of worker cores.
    pub fn n_workers(&self) -> usize {
        self.shared.cores.len()
    }

    /// The newest published epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether changes of `pipeline`, `ports` or the hub's own wait for a publish.
    pub fn has_pending(&self, pipeline: &Pipeline, ports: &PortTable) -> bool {
        !self.ops.is_empty()
            || self.ports_dirty
            || ports.generation() != self.ports_gen
            || pipeline.has_recorded()
    }

    /// Marks the port table as changed in a way its generation does not show (counters
    /// the workers do not need never call for it).
    pub fn ports_changed(&mut self) {
        self.ports_dirty = true;
    }

    fn next_epoch(&self) -> u64 {
        self.epoch + 1
    }

    /// Holds flow-removed events until every core passed the epoch that removes them (see
    /// [`take_flow_removed`](Self::take_flow_removed)).
    pub fn hold_removed(&mut self, removed: Vec<FlowRemoved>) {
        let e = self.next_epoch();
        self.pending_removed
            .extend(removed.into_iter().map(|r| (e, r)));
    }

    /// NORMAL's settings on every core.
    pub fn set_normal_config(&mut self, config: NormalConfig) {
        self.ops.push(Op::NormalConfig(config));
    }

    /// Flushes a port's MAC entries on every core.
    pub fn mac_flush_port(&mut self, port: PortNo) {
        self.ops.push(Op::MacFlushPort(port));
    }

    /// Flushes every MAC entry on every core.
    pub fn mac_flush_all(&mut self) {
        self.ops.push(Op::MacFlushAll);
    }

    /// Publishes what `pipeline` recorded, the hub's own ops and, if it changed, `ports` as a
    /// new epoch and returns it (the current epoch if nothing changed).
    pub fn publish(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64 {
        if !self.has_pending(pipeline, ports) {
            return self.epoch;
        }
        let rec = pipeline.take_recorded();
        for (new, old) in rec.carried {
            if let Some(c) = self.fold.entries.remove(&old) {
                self.fold.entries.insert(new, c);
            }
        }
        let mut ops = rec.ops;
        ops.append(&mut self.ops);
        let ports = if self.ports_dirty || ports.generation() != self.ports_gen {
            Some(Arc::new(ports.clone()))
        } else {
            None
        };
        self.ports_dirty = false;
        self.ports_gen = ports.as_ref().map_or(self.ports_gen, |p| p.generation());
        self.epoch += 1;
        let node = Arc::new(Node {
            epoch: self.epoch,
            ops,
            ports,
            next: Mutex::new(None),
        });
        *self.tail.next.lock() = Some(node.clone());
        self.tail = node;
        self.shared.latest.store(self.epoch, Ordering::Release);
        self.epoch
    }

    /// The oldest epoch any core has switched to.
    pub fn min_acked(&self) -> u64 {
        self.shared
            .cores
            .iter()
            .map(|c| c.acked.load(Ordering::Acquire))
            .min()
            .unwrap_or(self.epoch)
    }

    /// Whether every core has switched to `epoch` or a later one.
    pub fn passed(&self, epoch: u64) -> bool {
        self.min_acked() >= epoch
    }

    /// Spins until every core has passed `epoch` (never from a worker's thread).
    pub fn wait(&self, epoch: u64) {
        while !self.passed(epoch) {
            core::hint::spin_loop();
        }
    }

    /// Flow-removed events of entries removed in epochs every core has passed, with the
    /// counts of every core (and of the management core) summed, in removal order.
    pub fn take_flow_removed(&mut self) -> Vec<FlowRemoved> {
        for c in self.shared.cores.iter() {
            for r in c.removed.lock().drain(..) {
                let a = self.removed_acc.entry(r.serial).or_insert((0, 0));
                a.0 += r.packets;
                a.1 += r.bytes;
            }
        }
        let done = self.min_acked();
        let mut out = Vec::new();
        let acc = &mut self.removed_acc;
        self.pending_removed.retain_mut(|(e, r)| {
            if *e > done {
                return true;
            }
            if let Some((p, b)) = acc.remove(&r.serial) {
                r.packet_count += p;
                r.byte_count += b;
            }
            out.push(r.clone());
            false
        });
        out
    }

    /// Asks every core for a [`CoreStats`] snapshot (publishing pending changes first) and
    /// returns the ticket; the answers are there once [`stats_ready`](Self::stats_ready).
    pub fn request_stats(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64 {
        self.publish(pipeline, ports);
        self.ticket += 1;
        self.shared
            .stats_ticket
            .store(self.ticket, Ordering::Release);
        self.ticket
    }

    /// Whether every core has answered `ticket` (or a later request).
    pub fn stats_ready(&self, ticket: u64) -> bool {
        self.shared
            .cores
            .iter()
            .all(|c| c.stats_done.load(Ordering::Acquire) >= ticket)
    }

    /// The latest snapshot of core `i`, if it answered any request.
    pub fn core_stats(&self, i: usize) -> Option<Arc<CoreStats>> {
        self.shared.cores.get(i)?.stats.lock().clone()
    }

    /// Adds what the cores counted since the last fold (their latest snapshots) to the
    /// counters of `pipeline` itself: flow entries (packets, bytes, last use), tables (lookups,
    /// matches), groups and buckets. Afterwards `pipeline` reads as a single-core pipeline
    /// would (its own packet-outs plus every core's packets, exact as of the snapshots), so
    /// code that reads its counters (flow stats, idle timeouts) needs no change.
    ///
    /// Use either this or [`stats`](Self::stats) on one pipeline, not both: `stats` adds the
    /// cores' counts to the pipeline's, which after a fold already hold them.
    pub fn fold_into(&mut self, pipeline: &Pipeline) {
        let snaps: Vec<Arc<CoreStats>> = (0..self.n_workers())
            .filter_map(|i| self.core_stats(i))
            .collect();
        // Entries: the cores' totals by serial.
        let mut totals: HashMap<u64, EntryCounts> = HashMap::new();
        for c in &snaps {
            for (serial, ec) in &c.entries {
                let a = totals.entry(*serial).or_default();
                a.packets += ec.packets;
                a.bytes += ec.bytes;
                a.last_used_ms = a.last_used_ms.max(ec.last_used_ms);
            }
        }
        let mut live = HashMap::with_capacity(totals.len());
        for (_, e) in pipeline.entries(OFPTT_ALL) {
            let Some(t) = totals.get(&e.serial) else {
                continue;
            };
            let (p0, b0) = self.fold.entries.get(&e.serial).copied().unwrap_or((0, 0));
            e.packets
                .set(e.packets.get().wrapping_add(t.packets.saturating_sub(p0)));
            e.bytes
                .set(e.bytes.get().wrapping_add(t.bytes.saturating_sub(b0)));
            if t.last_used_ms > e.last_used_ms.get() {
                e.last_used_ms.set(t.last_used_ms);
            }
            live.insert(e.serial, (t.packets.max(p0), t.bytes.max(b0)));
        }
        self.fold.entries = live;
        // Tables.
        let n = pipeline.tables().len();
        let mut tt = alloc::vec![(0u64, 0u64); n];
        for c in &snaps {
            for (a, t) in tt.iter_mut().zip(&c.tables) {
                a.0 += t.lookup_count;
                a.1 += t.matched_count;
            }
        }
        self.fold.tables.resize(n, (0, 0));
        for ((t, now), before) in pipeline.tables().iter().zip(&tt).zip(&self.fold.tables) {
            t.count_lookups(
                now.0.saturating_sub(before.0),
                now.1.saturating_sub(before.1),
            );
        }
        self.fold.tables = tt;
        // Groups, by (id, created_ms) so that a re-created group starts afresh.
        let mut gt: BTreeMap<(u32, u64), GroupFold> = BTreeMap::new();
        for c in &snaps {
            for (id, gc) in &c.groups {
                let a = gt
                    .entry((*id, gc.created_ms))
                    .or_insert_with(|| (0, 0, alloc::vec![(0, 0); gc.buckets.len()]));
                a.0 += gc.packets;
                a.1 += gc.bytes;
                for (x, y) in a.2.iter_mut().zip(&gc.buckets) {
                    x.0 += y.0;
                    x.1 += y.1;
                }
            }
        }
        let mut gkeep = BTreeMap::new();
        for g in pipeline.groups().iter() {
            let k = (g.id, g.created_ms);
            let Some(now) = gt.remove(&k) else {
                continue;
            };
            let before = self.fold.groups.remove(&k);
            let (p0, b0) = before.as_ref().map_or((0, 0), |b| (b.0, b.1));
            g.packets
                .set(g.packets.get().wrapping_add(now.0.saturating_sub(p0)));
            g.bytes
                .set(g.bytes.get().wrapping_add(now.1.saturating_sub(b0)));
            for (i, (c, y)) in g.bucket_counters.iter().zip(&now.2).enumerate() {
                let x = before
                    .as_ref()
                    .and_then(|b| b.2.get(i))
                    .copied()
                    .unwrap_or((0, 0));
                c.packets
                    .set(c.packets.get().wrapping_add(y.0.saturating_sub(x.0)));
                c.bytes
                    .set(c.bytes.get().wrapping_add(y.1.saturating_sub(x.1)));
            }
            gkeep.insert(k, now);
        }
        self.fold.groups = gkeep;
        // Datapath and port counters: summed, kept for the caller.
        let mut dp = DatapathStats::default();
        let mut per_core = Vec::new();
        let mut ports: BTreeMap<PortNo, PortCounters> = BTreeMap::new();
        let mut megaflows = 0;
        for c in &snaps {
            add_datapath_stats(&mut dp, &c.datapath);
            per_core.push(c.datapath);
            megaflows += c.megaflows;
            for (p, pc) in &c.ports {
                add_port_counters(ports.entry(*p).or_default(), pc);
            }
        }
        self.fold.datapath = dp;
        self.fold.per_core = per_core;
        self.fold.ports = ports;
        self.fold.megaflows = megaflows;
    }

    /// The cores' datapath counters summed at the last [`fold_into`](Self::fold_into), and
    /// per core.
    pub fn folded_datapath(&self) -> (&DatapathStats, &[DatapathStats], usize) {
        (
            &self.fold.datapath,
            &self.fold.per_core,
            self.fold.megaflows,
        )
    }

    /// The cores' port counters (rx by input port, tx by output port, malformed) summed at the
    /// last [`fold_into`](Self::fold_into).
    pub fn folded_ports(&self) -> &BTreeMap<PortNo, PortCounters> {
        &self.fold.ports
    }

    /// The counters summed over the cores' latest snapshots and `pipeline`'s own (the
    /// authoritative pipeline that never folded, see [`fold_into`](Self::fold_into)).
    pub fn stats(&self, pipeline: &Pipeline) -> Stats {
        let mut s = Stats {
            ticket: u64::MAX,
            ..Stats::default()
        };
        for (_, e) in pipeline.entries(OFPTT_ALL) {
            s.entries.insert(
                e.serial,
                EntryCounts {
                    packets: e.packets.get(),
                    bytes: e.bytes.get(),
                    last_used_ms: e.last_used_ms.get(),
                },
            );
        }
        s.tables = pipeline.table_stats();
        for g in pipeline.groups().iter() {
            s.groups.insert(
                g.id,
                GroupCounts {
                    created_ms: g.created_ms,
                    packets: g.packets.get(),
                    bytes: g.bytes.get(),
                    buckets: g
                        .bucket_counters
                        .iter()
                        .map(|c| (c.packets.get(), c.bytes.get()))
                        .collect(),
                },
            );
        }
        for i in 0..self.n_workers() {
            let Some(c) = self.core_stats(i) else {
                s.ticket = 0;
                s.per_core.push(DatapathStats::default());
                continue;
            };
            s.ticket = s.ticket.min(c.ticket);
            for (serial, ec) in &c.entries {
                if let Some(a) = s.entries.get_mut(serial) {
                    a.packets += ec.packets;
                    a.bytes += ec.bytes;
                    a.last_used_ms = a.last_used_ms.max(ec.last_used_ms);
                }
            }
            for (a, t) in s.tables.iter_mut().zip(&c.tables) {
                a.lookup_count += t.lookup_count;
                a.matched_count += t.matched_count;
            }
            for (id, gc) in &c.groups {
                if let Some(a) = s.groups.get_mut(id)
                    && a.created_ms == gc.created_ms
                    && a.buckets.len() == gc.buckets.len()
                {
                    a.packets += gc.packets;
                    a.bytes += gc.bytes;
                    for (x, y) in a.buckets.iter_mut().zip(&gc.buckets) {
                        x.0 += y.0;
                        x.1 += y.1;
                    }
                }
            }
            add_datapath_stats(&mut s.datapath, &c.datapath);
            s.per_core.push(c.datapath);
            s.megaflows += c.megaflows;
            for (p, pc) in &c.ports {
                add_port_counters(s.ports.entry(*p).or_default(), pc);
            }
        }
        if s.ticket == u64::MAX {
            s.ticket = 0;
        }
        s
    }
}

impl Worker {
    /// This worker's index (its slot, `0..n`).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The epoch this core has switched to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// This core's replica of the pipeline (its counters are this core's).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The port table of this core's epoch.
    pub fn ports(&self) -> &PortTable {
        &self.ports
    }

    pub fn datapath(&self) -> &Datapath {
        &self.datapath
    }

    /// This core's NORMAL learning switch.
    pub fn normal(&self) -> &NormalSwitch {
        &self.normal
    }

    /// At a batch boundary: switches to the newest published epoch (replaying its ops on the
    /// replica) and acknowledges it, then answers a pending stats request. Returns whether the
    /// epoch changed. Costs one atomic load when nothing changed.
    pub fn sync(&mut self, now_ms: u64) -> bool {
        let _ = now_ms;
        let slot = &self.shared.cores[self.id];
        let latest = self.shared.latest.load(Ordering::Acquire);
        let mut switched = false;
        if latest != self.epoch {
            let mut removed = Vec::new();
            loop {
                let next = self.cur.next.lock().clone();
                let Some(next) = next else { break };
                apply(
                    &mut self.pipeline,
                    &mut self.normal,
                    &mut self.ports,
                    &next,
                    &mut removed,
                );
                self.epoch = next.epoch;
                self.cur = next;
            }
            if !removed.is_empty() {
                slot.removed.lock().extend(removed);
            }
            slot.acked.store(self.epoch, Ordering::Release);
            switched = true;
        }
        let ticket = self.shared.stats_ticket.load(Ordering::Acquire);
        if ticket != self.served {
            let s = Arc::new(self.snapshot(ticket));
            *slot.stats.lock() = Some(s);
            slot.stats_done.store(ticket, Ordering::Release);
            self.served = ticket;
        }
        switched
    }

    /// This core's counters now.
    pub fn snapshot(&self, ticket: u64) -> CoreStats {
        let mut entries = HashMap::new();
        for (_, e) in self.pipeline.entries(OFPTT_ALL) {
            let (p, b, u) = (e.packets.get(), e.bytes.get(), e.last_used_ms.get());
            if p != 0 || b != 0 || u > e.created_ms {
                entries.insert(
                    e.serial,
                    EntryCounts {
                        packets: p,
                        bytes: b,
                        last_used_ms: u,
                    },
                );
            }
        }
        let groups = self
            .pipeline
            .groups()
            .iter()
            .map(|g| {
                let gc = GroupCounts {
                    created_ms: g.created_ms,
                    packets: g.packets.get(),
                    bytes: g.bytes.get(),
                    buckets: g
                        .bucket_counters
                        .iter()
                        .map(|c| (c.packets.get(), c.bytes.get()))
                        .collect(),
                };
                (g.id, gc)
            })
            .collect();
        let mut ports: BTreeMap<PortNo, PortCounters> = BTreeMap::new();
        self.rx.for_each(|p, n, b| {
            let c = ports.entry(p).or_default();
            c.rx_packets += n;
            c.rx_bytes += b;
        });
        self.tx.for_each(|p, n, b| {
            let c = ports.entry(p).or_default();
            c.tx_packets += n;
            c.tx_bytes += b;
        });
        self.malformed.for_each(|p, n, _| {
            let c = ports.entry(p).or_default();
            c.rx_malformed += n;
            c.rx_errors += n;
        });
        CoreStats {
            core: self.id,
            epoch: self.epoch,
            ticket,
            entries,
            tables: self.pipeline.table_stats(),
            groups,
            datapath: self.datapath.stats(),
            megaflows: self.datapath.n_megaflows(),
            masks: self.datapath.n_masks(),
            ports,
        }
    }

    /// Processes a batch received on `in_port` (see [`Datapath::process_batch`]) with this
    /// core's replica, learning switch and caches; counts rx on `in_port` and tx on every
    /// output port. Call [`sync`](Self::sync) between batches, never inside one.
    pub fn process_batch<F: Frame, S: DatapathSink<F>>(
        &mut self,
        in_port: PortNo,
        packets: impl IntoIterator<Item = F>,
        sink: &mut S,
        now_ms: u64,
    ) {
        self.process_batch_metered(in_port, packets, sink, None, now_ms);
    }

    /// [`process_batch`](Self::process_batch) with this core's meter hook.
    pub fn process_batch_metered<'m, F: Frame, S: DatapathSink<F>>(
        &'m mut self,
        in_port: PortNo,
        packets: impl IntoIterator<Item = F>,
        sink: &mut S,
        meters: Option<&'m mut dyn MeterHook>,
        now_ms: u64,
    ) {
        let Worker {
            pipeline,
            ports,
            normal,
            datapath,
            rx,
            tx,
            malformed,
            ..
        } = self;
        let mut env = Env {
            ports,
            normal: Some(normal),
            meters,
            now_ms,
        };
        let (mut n, mut bytes) = (0u64, 0u64);
        let packets = packets.into_iter().inspect(|f| {
            n += 1;
            bytes += f.data().len() as u64;
        });
        let mut counting = Counting {
            inner: sink,
            tx,
            malformed: 0,
        };
        datapath.process_batch(pipeline, &mut env, in_port, packets, &mut counting);
        let m = counting.malformed;
        rx.add(in_port, n, bytes);
        if m != 0 {
            malformed.add(in_port, m, 0);
        }
    }

    /// Timers of this core: MAC aging and the megaflow sweep (`max_idle_ms`: OVS's
    /// `max-idle`, 10 s). Call about every second.
    pub fn timers(&mut self, now_ms: u64, max_idle_ms: u64) {
        self.normal.mac_table_mut().expire(now_ms);
        self.datapath.sweep(now_ms, max_idle_ms);
    }
}

/// Replays one epoch on a replica.
fn apply(
    pipeline: &mut Pipeline,
    normal: &mut NormalSwitch,
    ports: &mut Arc<PortTable>,
    node: &Node,
    removed: &mut Vec<RemovedCounts>,
) {
    let mut keep = |r: Vec<FlowRemoved>| {
        removed.extend(r.iter().map(|r| RemovedCounts {
            serial: r.serial,
            packets: r.packet_count,
            bytes: r.byte_count,
        }))
    };
    for op in &node.ops {
        match op {
            Op::FlowMod(fm, now) => {
                let r = pipeline.flow_mod(fm, *now);
                debug_assert!(r.is_ok(), "replayed flow-mod failed: {r:?}");
                if let Ok(r) = r {
                    keep(r);
                }
            }
            Op::GroupMod(gm, now) => {
                let r = pipeline.group_mod(gm, *now);
                debug_assert!(r.is_ok(), "replayed group-mod failed: {r:?}");
                if let Ok(r) = r {
                    keep(r);
                }
            }
            Op::RemoveEntry(id, why, now) => {
                if let Some(r) = pipeline.remove_entry(*id, *why, *now) {
                    keep(alloc::vec![r]);
                }
            }
            Op::TableMissToController(on) => pipeline.set_table_miss_to_controller(*on),
            Op::InvalidTtlToController(on, len) => {
                pipeline.set_invalid_ttl_to_controller(*on, *len)
            }
            Op::MaxEntries(id, max) => {
                let _ = pipeline.set_max_entries(*id, *max);
            }
            Op::GroupLimits(g, b) => pipeline.set_group_limits(*g, *b),
            Op::NormalConfig(c) => normal.set_config(*c),
            Op::MacFlushPort(p) => {
                normal.mac_table_mut().flush_port(*p);
            }
            Op::MacFlushAll => {
                normal.mac_table_mut().flush_all();
            }
        }
    }
    if let Some(p) = &node.ports {
        *ports = p.clone();
    }
}

/// Packets and bytes per port: direct for small port numbers, a map for the rest.
#[derive(Default)]
struct PortMap {
    direct: Vec<(u64, u64)>,
    other: BTreeMap<PortNo, (u64, u64)>,
}

const DIRECT_PORTS: usize = 1024;

impl PortMap {
    #[inline]
    fn add(&mut self, port: PortNo, n: u64, bytes: u64) {
        let c = if (port as usize) < DIRECT_PORTS {
            let i = port as usize;
            if i >= self.direct.len() {
                self.direct.resize(i + 1, (0, 0));
            }
            &mut self.direct[i]
        } else {
            self.other.entry(port).or_default()
        };
        c.0 += n;
        c.1 += bytes;
    }

    fn for_each(&self, mut f: impl FnMut(PortNo, u64, u64)) {
        for (i, c) in self.direct.iter().enumerate() {
            if c.0 != 0 {
                f(i as PortNo, c.0, c.1);
            }
        }
        for (p, c) in &self.other {
            f(*p, c.0, c.1);
        }
    }
}

/// The caller's sink with tx counting per port.
struct Counting<'a, S> {
    inner: &'a mut S,
    tx: &'a mut PortMap,
    malformed: u64,
}

impl<F: Frame, S: DatapathSink<F>> DatapathSink<F> for Counting<'_, S> {
    #[inline]
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: F) {
        self.tx.add(port, 1, frame.data().len() as u64);
        self.inner.output(port, queue, frame);
    }
    #[inline]
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<F> {
        self.inner.alloc_copy(bytes)
    }
    fn controller(&mut self, packet_in: &PacketIn<'_>) {
        self.inner.controller(packet_in);
    }
    #[inline]
    fn release(&mut self, frame: F, why: Release) {
        if why == Release::Malformed {
            self.malformed += 1;
        }
        self.inner.release(frame, why);
    }
}

/// Workers move to their cores; the publisher may live on another thread than it was made.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<Worker>();
    send::<Publisher>();
    sync::<Shared>();
};
