//! The datapath cache: batches of packets from one port go through an exact-match cache (EMC),
//! then a megaflow classifier (tuple space search over ranked subtables), and only on a miss
//! through the OpenFlow [`Pipeline`] ("upcall", here a function call), whose translation is
//! recorded and installed as a megaflow for the packets that follow.
//!
//! ## Using it (the kernel's main loop)
//!
//! The caller owns the packet buffers. A [`DatapathSink`] receives what comes out: a packet that
//! leaves by exactly one port is **moved** into [`DatapathSink::output`] (no copy); every other
//! output (floods, several outputs, group buckets) is a copy made by
//! [`DatapathSink::alloc_copy`], only when needed. A packet that was not moved out comes back
//! through [`DatapathSink::release`] (dropped, or only sent as copies). Nothing allocates per
//! packet once the caches are warm, and nothing locks: the datapath is one core's.
//!
//! ```
//! use switch_core::datapath::{Datapath, DatapathConfig, DatapathSink, Release};
//! use switch_core::normal::NormalSwitch;
//! use switch_core::packet::{Frame, HeapFrame};
//! use switch_core::pipeline::{Env, PacketIn, Pipeline};
//! use switch_core::port::{Port, PortNo, PortTable};
//!
//! // The kernel's sink: per-port tx batches of DMA buffers (here: heap frames).
//! struct TxBatches {
//!     out: Vec<(PortNo, HeapFrame)>,
//! }
//! impl DatapathSink<HeapFrame> for TxBatches {
//!     fn output(&mut self, port: PortNo, _queue: Option<u32>, frame: HeapFrame) {
//!         self.out.push((port, frame)); // kernel: tx_batch[port].push(frame), flush when full
//!     }
//!     fn alloc_copy(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
//!         Some(HeapFrame::new(bytes)) // kernel: pool.alloc()?, copy bytes behind the headroom
//!     }
//!     fn controller(&mut self, _packet_in: &PacketIn<'_>) {}
//!     fn release(&mut self, _frame: HeapFrame, _why: Release) {} // kernel: buffer to the pool
//! }
//!
//! let mut ports = PortTable::new();
//! ports.add(Port::new(1, "p1", [2, 0, 0, 0, 0, 1])).unwrap();
//! ports.add(Port::new(2, "p2", [2, 0, 0, 0, 0, 2])).unwrap();
//! let mut pipeline = Pipeline::default();
//! // table 0: priority=0 actions=NORMAL
//! use switch_core::pipeline::{Action, FlowMod};
//! use switch_core::action::Instructions;
//! use switch_core::flow_match::Match;
//! use switch_core::port::OFPP_NORMAL;
//! let normal = Instructions::apply(vec![Action::Output { port: OFPP_NORMAL, max_len: 0 }]);
//! pipeline.flow_mod(&FlowMod::add(0, 0, Match::new(), normal), 0).unwrap();
//! let mut learning = NormalSwitch::default();
//! let mut dp = Datapath::new(DatapathConfig::default());
//! let mut sink = TxBatches { out: Vec::new() };
//!
//! // Main loop: for each port, rx_burst(32) then one call.
//! let frame = [0xffu8; 6].iter().chain(&[2, 0, 0, 0, 0, 0xa, 0x08, 0x06]).copied()
//!     .chain([0u8; 50]).collect::<Vec<u8>>();
//! let rx: Vec<HeapFrame> = (0..32).map(|_| HeapFrame::new(&frame)).collect();
//! let mut env = Env { ports: &ports, normal: Some(&mut learning), meters: None, now_ms: 0 };
//! dp.process_batch(&mut pipeline, &mut env, 1, rx, &mut sink);
//! assert_eq!(sink.out.len(), 32); // flooded to port 2 (moved, not copied)
//! assert!(sink.out.iter().all(|(p, _)| *p == 2));
//! println!("{}", dp.show_stats());
//! ```
//!
//! [`OutputBatches`] is the per-port tx batching such a sink needs: `output` pushes into it (a
//! full batch is flushed through the driver's `tx_burst` right away), and the main loop calls
//! [`OutputBatches::flush_all`] after each `process_batch`.
//!
//! Between batches (never during one) the management plane may change flows, groups and ports:
//! the datapath notices the generations at the start of the next batch. Port tx counters are the
//! sink's (it sees every frame it queues).
//!
//! ## Correctness
//!
//! A megaflow is `(key & mask, mask, ops)` where `mask` holds every bit the translation consulted
//! (the pipeline's `wc`), so every packet that agrees on those bits gets the same decisions. The
//! ops are the translation's own steps, recorded through [`OutputSink::event`] and replayed with
//! the same rewrite functions; the key is carried along exactly as the pipeline carries it (a
//! rewrite changes it only if it changed the packet: events report whether it did), so NORMAL's
//! learning and TTL checks on hits see the key the translation saw. What a key cannot hold is
//! handled explicitly:
//!
//! - **Flow, group, port changes:** every megaflow carries the cache epoch it was made in; the
//!   epoch advances when [`Pipeline::generation`] or [`PortTable::generation`] change. A hit on a
//!   megaflow of an older epoch is *revalidated*: the packet is translated again and the megaflow
//!   is updated in place (counters kept) or replaced. Nothing is flushed, nothing stale is used.
//! - **NORMAL:** hits learn as the pipeline would ([`NormalSwitch::learn_from`] with the key
//!   NORMAL saw), and the MAC-table answer NORMAL's decision used (`(vlan, dst) → port`) is checked,
//!   so learning, moves, aging and flushes never leave a stale forwarding decision and MAC-table
//!   churn invalidates only the megaflows whose destination changed. Both are coalesced: a
//!   megaflow learns at most once per millisecond while the MAC table's generation is unchanged
//!   (learning again would set the same `seen` time; the one difference from the pipeline alone is
//!   the LRU order among entries seen within the same millisecond, which only matters for which
//!   of them a full table evicts first), and re-checks its lookup only when the MAC table changed
//!   or an entry may have aged ([`MacTable::next_expiry_ms`]).
//! - **TTL:** a packet whose TTL could expire within the megaflow's `dec_ttl`s is translated.
//! - **Packet-ins and meters** are per-packet decisions: such megaflows are marked slow path and
//!   every packet is translated (the megaflow still spares the classifier search).
//! - **Counters:** hits are credited to the OpenFlow entries the translation matched
//!   ([`Pipeline::credit`], which counts a matched lookup in the entry's table too) and to the
//!   table it found no entry in, if any ([`Pipeline::credit_table_miss`]), at the end of each
//!   batch, and to groups and buckets as they are replayed, so entry, group, bucket and table
//!   (`ofp_table_stats` lookup/matched) counters equal what the pipeline alone would count.
//!
//! ## Lookup
//!
//! Per packet: the key is extracted; if it equals the previous packet's key in the batch, that
//! megaflow is used again (flows come in bursts); else the EMC (full key, two ways), used on a port
//! only while its megaflow lookups search at least [`DatapathConfig::emc_min_search`] subtables on
//! average (when the first subtable hits, the megaflow lookup is the cheaper of the two); else the
//! port's megaflow classifier, subtables in rank order (most hits first, re-ranked every
//! [`DatapathConfig::resort_every`] lookups); else the pipeline. A megaflow hit is inserted in the
//! EMC with probability 1/[`DatapathConfig::emc_insert_inv_prob`].
//!
//! ## Bounds
//!
//! EMC entries, megaflows and masks per port are capped ([`DatapathConfig`]). Megaflows over the
//! limit evict the least recently used; masks over the per-port cap widen (see `megaflow`): a
//! packet searches at most `max_masks_per_port` subtables plus one per distinct set of fields
//! the tables consult (the cap's overflow masks are unions widened to whole fields).
//!
//! [`NormalSwitch::learn_from`]: crate::normal::NormalSwitch::learn_from
//! [`MacTable::next_expiry_ms`]: crate::normal::MacTable::next_expiry_ms
//! [`OutputSink::event`]: crate::pipeline::OutputSink::event
//! [`PortTable::generation`]: crate::port::PortTable::generation

mod actions;
mod batches;
mod emc;
mod megaflow;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

pub use actions::DpOp;
pub use batches::OutputBatches;

use actions::{Compiled, Recorded, Recorder, ReplayScratch, compile, replay, ttl_safe};
use emc::{Emc, key_hash, masked_hash, same_key};
use megaflow::{Candidate, Limits, MegaflowTable, NormalDep};

use crate::extract::{PacketInfo, extract};
use crate::flow::{Field, FlowKey, internal};
use crate::flow_match::{field_name, write_value};
use crate::normal::{mac_is_multicast, mac_is_reserved};
use crate::packet::Frame;
use crate::pipeline::{Env, PacketIn, Pipeline};
use crate::port::PortNo;
use crate::prefetch::prefetch;
use crate::table::EntryId;

/// Most packets [`Datapath::process_batch`] handles at once (longer inputs go in chunks).
pub const BATCH_SIZE: usize = 32;

/// [`process_chunk`](Datapath::process_chunk)'s "not looked up ahead" and "looked up ahead:
/// not in the first subtable".
const NOT_AHEAD: u32 = u32::MAX;
const ABSENT: u32 = u32::MAX - 1;

/// Places of the per-batch credit accumulator (entries hashed to a taken place are credited
/// directly).
const CREDIT_ACC: usize = 64;

/// Why a frame comes back to the caller through [`DatapathSink::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Release {
    /// Nothing was sent: the pipeline dropped the packet.
    Dropped,
    /// Only copies were sent (floods, several outputs, group buckets, packet-ins).
    Copied,
    /// Not switched: the frame is malformed or truncated and the datapath drops such frames
    /// ([`DatapathConfig::drop_malformed`]).
    Malformed,
}

/// Where the datapath's results go. Implemented by the kernel over its DMA buffers.
pub trait DatapathSink<F> {
    /// Queue `frame` on `port` (`queue`: the OpenFlow set-queue, if any). The frame is the
    /// sink's now: a packet that leaves by one port arrives here without a copy.
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: F);
    /// A new frame holding a copy of `bytes` (with headroom for pushing VLAN tags), or `None`
    /// when no buffer is free (that copy is then not sent, and counted in
    /// [`DatapathStats::no_buffer`]).
    fn alloc_copy(&mut self, bytes: &[u8]) -> Option<F>;
    /// A packet for the controller (the frame bytes are borrowed: copy what you keep).
    fn controller(&mut self, packet_in: &PacketIn<'_>);
    /// A frame the datapath is done with that was not moved to [`output`](Self::output).
    /// Dropping it (returning the buffer to its pool) is the default.
    fn release(&mut self, frame: F, why: Release) {
        let _ = (frame, why);
    }
}

/// Settings of the datapath cache (OVS: `other_config:emc-insert-inv-prob`, `flow-limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Serve packets from the caches; `false` runs every packet through the pipeline (the
    /// baseline of the benchmarks, and a debugging aid).
    pub cache: bool,
    /// Entries of the exact-match cache (rounded up to a power of two; 0 disables it).
    pub emc_entries: usize,
    /// A megaflow hit is inserted in the EMC with probability 1/N (0: never, 1: always).
    pub emc_insert_inv_prob: u32,
    /// The EMC is used on an input port only while its megaflow lookups search on average at
    /// least this many subtables (0: always): when the first subtable usually hits, a megaflow
    /// lookup (a hash over the mask's few words, one probe) costs less than the EMC's whole-key
    /// hash and compare, and the EMC's memory only adds cache misses.
    pub emc_min_search: u32,
    /// Most megaflows; over it the least recently used is evicted.
    pub max_megaflows: usize,
    /// Most masks (subtables) per input port; over it new megaflows get a wider mask.
    pub max_masks_per_port: usize,
    /// Subtables are re-ranked by hits every this many lookups (per port).
    pub resort_every: u64,
    /// Key of the cache hashes (a boot-time random value resists hash flooding).
    pub hash_seed: u64,
    /// Drop (and count) frames the parser marks malformed or truncated instead of switching them
    /// on the fields that are present. The appliance sets it; the pipeline's own semantics (and
    /// the differential test) keep such frames, switched by L2.
    pub drop_malformed: bool,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            cache: true,
            emc_entries: 8192,
            emc_insert_inv_prob: 100,
            emc_min_search: 2,
            max_megaflows: 200_000,
            max_masks_per_port: 32,
            resort_every: 8192,
            hash_seed: 0x6a09_e667_f3bc_c908,
            drop_malformed: false,
        }
    }
}

impl DatapathConfig {
    /// No caching at all: every packet is translated.
    pub fn pipeline_only() -> Self {
        DatapathConfig {
            cache: false,
            ..DatapathConfig::default()
        }
    }
}

/// Datapath counters (`ovs-appctl dpif-netdev/pmd-stats-show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathStats {
    /// Packets received.
    pub packets: u64,
    /// Dropped as malformed or truncated ([`DatapathConfig::drop_malformed`]).
    pub malformed: u64,
    /// Served by the megaflow of the previous packet in the batch (same key).
    pub batch_hits: u64,
    /// Served by the exact-match cache.
    pub emc_hits: u64,
    /// Served by the megaflow classifier.
    pub megaflow_hits: u64,
    /// Classifier lookups and the subtables they searched (hits and misses).
    pub megaflow_lookups: u64,
    pub subtables_searched: u64,
    /// Translated because no megaflow matched (upcalls).
    pub misses: u64,
    /// Translated because the megaflow was stale (after a flow, group, port or MAC change).
    pub revalidations: u64,
    /// Translated because the megaflow or the packet needs it (packet-ins, meters, low TTL).
    pub slow_path: u64,
    /// Megaflows installed (including in-place updates).
    pub installs: u64,
    /// Copies that could not be made for lack of a buffer.
    pub no_buffer: u64,
    /// Packets handed to the sink.
    pub outputs: u64,
}

/// The datapath of one bridge on one core.
pub struct Datapath {
    config: DatapathConfig,
    emc: Emc,
    flows: MegaflowTable,
    stats: DatapathStats,
    epoch: u64,
    gens: Option<(u64, u64)>,
    rng: u64,
    events: Vec<Recorded>,
    replay: ReplayScratch,
    touched: Vec<u32>,
    /// Per-entry sums of a batch's credits.
    credit_acc: [Option<(EntryId, u64, u64)>; CREDIT_ACC],
    /// The places of `credit_acc` in use.
    credit_used: Vec<u8>,
    /// The previous packet's key and megaflow (slot, serial), within a batch.
    last: Option<(FlowKey, u32, u32)>,
    /// The index in the current chunk of the packet whose key `last` holds, if it is known.
    last_idx: usize,
    /// The keys and parse results of the chunk being processed ([`BATCH_SIZE`] each).
    keys: Vec<FlowKey>,
    infos: Vec<PacketInfo>,
}

/// How a packet is to be handled after the cache lookups.
enum Path {
    /// Replay this megaflow.
    Hit(u32),
    /// Translate; install the result if asked. `stale`: the megaflow the packet found, which
    /// is out of date (removed if the new one lands elsewhere).
    Translate { install: bool, stale: Option<u32> },
}

impl Datapath {
    pub fn new(config: DatapathConfig) -> Self {
        let emc = Emc::new(if config.cache { config.emc_entries } else { 0 });
        Datapath {
            config,
            emc,
            flows: MegaflowTable::new(Limits {
                max_megaflows: config.max_megaflows,
                max_masks_per_port: config.max_masks_per_port.max(1),
                resort_every: config.resort_every.max(1),
                seed: config.hash_seed,
            }),
            stats: DatapathStats::default(),
            epoch: 1,
            gens: None,
            rng: config.hash_seed | 1,
            events: Vec::new(),
            replay: ReplayScratch::default(),
            touched: Vec::with_capacity(BATCH_SIZE),
            credit_acc: [None; CREDIT_ACC],
            credit_used: Vec::with_capacity(CREDIT_ACC),
            last: None,
            last_idx: usize::MAX,
            keys: alloc::vec![FlowKey::ZERO; BATCH_SIZE],
            infos: alloc::vec![PacketInfo::default(); BATCH_SIZE],
        }
    }

    pub fn config(&self) -> &DatapathConfig {
        &self.config
    }

    pub fn stats(&self) -> DatapathStats {
        self.stats
    }

    /// Number of megaflows.
    pub fn n_megaflows(&self) -> usize {
        self.flows.len
    }

    /// Number of masks (subtables) over all input ports.
    pub fn n_masks(&self) -> usize {
        self.flows.n_masks()
    }

    /// Empties both caches (e.g. `ovs-appctl dpctl/del-flows`). Never needed for correctness.
    pub fn flush(&mut self) {
        self.flows.clear();
        self.emc.clear();
    }

    /// Advances the epoch if the pipeline or the ports changed since the last batch.
    fn sync(&mut self, pipeline: &Pipeline, env: &Env<'_>) {
        let gens = (pipeline.generation(), env.ports.generation());
        if self.gens != Some(gens) {
            self.gens = Some(gens);
            self.epoch += 1;
        }
    }

    /// Processes the packets of `packets` received on `in_port`, in batches of [`BATCH_SIZE`].
    ///
    /// A batch goes packet by packet while the port's recent batches needed few classifier
    /// lookups (flows in bursts: the previous packet's megaflow serves most packets), and in
    /// stages ([`process_staged`](Self::process_staged)) while they needed many (many flows:
    /// each lookup a few cache misses, which the stages overlap).
    pub fn process_batch<F: Frame, S: DatapathSink<F>>(
        &mut self,
        pipeline: &mut Pipeline,
        env: &mut Env<'_>,
        in_port: PortNo,
        packets: impl IntoIterator<Item = F>,
        sink: &mut S,
    ) {
        self.sync(pipeline, env);
        self.last = None;
        let mut port = self.flows.port_index(in_port);
        let mut packets = packets.into_iter();
        loop {
            let hits = self.stats.megaflow_hits;
            let staged = self.config.cache
                && port.is_some_and(|p| self.flows.ports[p].staged && !self.use_emc(p));
            let n = if staged {
                let mut frames: [Option<F>; BATCH_SIZE] = [const { None }; BATCH_SIZE];
                let mut n = 0;
                for (slot, frame) in frames.iter_mut().zip(packets.by_ref()) {
                    *slot = Some(frame);
                    n += 1;
                }
                self.process_staged(pipeline, env, in_port, &mut port, &mut frames[..n], sink);
                n
            } else {
                let mut n = 0;
                let mut key = FlowKey::ZERO;
                for frame in packets.by_ref().take(BATCH_SIZE) {
                    let info = extract(frame.data(), in_port, &mut key);
                    self.packet(
                        pipeline,
                        env,
                        in_port,
                        &mut port,
                        frame,
                        &key,
                        info,
                        NOT_AHEAD,
                        (0, None),
                        sink,
                    );
                    n += 1;
                }
                n
            };
            if n == 0 {
                break;
            }
            self.flush_credits(pipeline, env.now_ms);
            if let Some(p) = port {
                // Stages pay off from a few classifier hits per batch on (misses are translated:
                // looking them up ahead only adds work).
                self.flows.ports[p].staged =
                    self.stats.megaflow_hits - hits >= (BATCH_SIZE / 8) as u64;
            }
            if n < BATCH_SIZE {
                break;
            }
        }
    }

    /// One batch of at most [`BATCH_SIZE`] packets, in stages so that the memory each packet's
    /// lookup needs is requested for the whole batch before any of it is used: the keys; the
    /// first-ranked subtable's hash of each and a prefetch of its bucket; a prefetch of each
    /// candidate row; the subtable's answer and a prefetch of the megaflow found; then each
    /// packet in order through [`classify`](Self::classify) (which takes the answer looked up
    /// ahead as long as no megaflow was added or removed since) and its execution.
    #[allow(clippy::too_many_arguments)]
    fn process_staged<F: Frame, S: DatapathSink<F>>(
        &mut self,
        pipeline: &mut Pipeline,
        env: &mut Env<'_>,
        in_port: PortNo,
        port: &mut Option<usize>,
        frames: &mut [Option<F>],
        sink: &mut S,
    ) {
        // Taken out of `self` for the chunk (no allocation: an empty Vec is put back meanwhile).
        let mut keys = core::mem::take(&mut self.keys);
        let mut infos = core::mem::take(&mut self.infos);
        // Whether a key equals the previous packet's.
        let mut repeat = [false; BATCH_SIZE];
        for (i, frame) in frames.iter().enumerate() {
            if let Some(frame) = frame {
                infos[i] = extract(frame.data(), in_port, &mut keys[i]);
                repeat[i] = i > 0 && same_key(&keys[i], &keys[i - 1]);
            }
        }
        let n = frames.len();
        // The first-ranked subtable's answer per packet: a slot, ABSENT, or NOT_AHEAD.
        let mut ahead = [NOT_AHEAD; BATCH_SIZE];
        let version = self.flows.version;
        if let Some(p) = *port
            && let Some(&first) = self.flows.ports[p].order.first()
        {
            let st = &self.flows.subtables[first as usize];
            let seed = self.config.hash_seed;
            let mut hashes = [0u64; BATCH_SIZE];
            for i in 0..n {
                // A repeat takes the previous packet's megaflow.
                if !repeat[i] {
                    hashes[i] = masked_hash(&keys[i], &st.words, seed);
                    if let Some(b) = st.bucket_of(hashes[i]) {
                        prefetch(b);
                    }
                }
            }
            // The home bucket's answer: the one candidate row, none, or unsure (then `find`).
            let mut cand = [Candidate::Unsure; BATCH_SIZE];
            for i in 0..n {
                if !repeat[i] {
                    cand[i] = st.candidate(hashes[i]);
                    if let Candidate::Row(row) = cand[i] {
                        prefetch(st.row_line(row));
                    }
                }
            }
            for i in 0..n {
                if !repeat[i] {
                    let found = match cand[i] {
                        Candidate::Row(row) => st.row_matches(row, &keys[i]),
                        Candidate::Absent => None,
                        Candidate::Unsure => st.find(hashes[i], &keys[i]),
                    };
                    ahead[i] = match found {
                        Some(slot) => {
                            self.flows.prefetch(slot);
                            slot
                        }
                        None => ABSENT,
                    };
                }
            }
        }
        self.last_idx = usize::MAX;
        for (i, frame) in frames.iter_mut().enumerate() {
            let Some(frame) = frame.take() else {
                continue;
            };
            let ahead = if self.flows.version == version {
                ahead[i]
            } else {
                NOT_AHEAD
            };
            self.packet(
                pipeline,
                env,
                in_port,
                port,
                frame,
                &keys[i],
                infos[i],
                ahead,
                (i, Some(repeat[i])),
                sink,
            );
        }
        self.keys = keys;
        self.infos = infos;
    }

    /// One packet with its key: classify, then replay or translate. `ahead`: the first-ranked
    /// subtable's answer if looked up ahead (a slot, `ABSENT` or `NOT_AHEAD`); `repeat`: the
    /// packet's index in the chunk and whether its key equals the previous packet's, if known.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn packet<F: Frame, S: DatapathSink<F>>(
        &mut self,
        pipeline: &mut Pipeline,
        env: &mut Env<'_>,
        in_port: PortNo,
        port: &mut Option<usize>,
        frame: F,
        key: &FlowKey,
        info: PacketInfo,
        ahead: u32,
        repeat: (usize, Option<bool>),
        sink: &mut S,
    ) {
        let len = frame.data().len();
        self.stats.packets += 1;
        if self.config.drop_malformed && (info.malformed() || info.truncated()) {
            self.stats.malformed += 1;
            sink.release(frame, Release::Malformed);
            return;
        }
        let path = self.classify(*port, key, frame.data(), info.l3, ahead, repeat);
        match path {
            Path::Hit(slot) => self.execute(slot, pipeline, env, frame, key, len, sink),
            Path::Translate { install, stale } => {
                self.translate(pipeline, env, frame, key, len, install, sink);
                if let Some(old) = stale {
                    self.drop_if_superseded(old);
                }
                if port.is_none() {
                    *port = self.flows.port_index(in_port);
                }
            }
        }
    }

    /// Whether packets from the port with classifier `p` try the EMC.
    #[inline]
    fn use_emc(&self, p: usize) -> bool {
        self.flows.ports[p].avg_searched_x16 >= 16 * self.config.emc_min_search
    }

    /// EMC, then megaflow classifier; decides how the packet goes on.
    #[inline(always)]
    fn classify(
        &mut self,
        port: Option<usize>,
        key: &FlowKey,
        frame: &[u8],
        l3: Option<u16>,
        ahead: u32,
        (idx, repeat_key): (usize, Option<bool>),
    ) -> Path {
        if !self.config.cache {
            self.stats.misses += 1;
            return Path::Translate {
                install: false,
                stale: None,
            };
        }
        let use_emc = port.is_some_and(|p| self.use_emc(p));
        let hash = if use_emc {
            key_hash(key, self.config.hash_seed)
        } else {
            0
        };
        let mut slot = None;
        let mut repeat = false;
        // Packets of one flow come in bursts: the previous packet's megaflow first.
        // `last` is packet `idx - 1`'s: then `repeat_key` says whether the keys are equal.
        let known = repeat_key.filter(|_| self.last_idx.wrapping_add(1) == idx);
        if let Some((k, s, serial)) = &self.last
            && known.unwrap_or_else(|| same_key(k, key))
            && self.flows.alive(*s, *serial)
        {
            self.stats.batch_hits += 1;
            slot = Some(*s);
            repeat = true;
            self.last_idx = idx;
        }
        if slot.is_none()
            && use_emc
            && let Some((s, serial)) = self.emc.lookup(hash, key)
            && self.flows.alive(s, serial)
        {
            self.stats.emc_hits += 1;
            slot = Some(s);
        }
        if slot.is_none()
            && let Some(p) = port
        {
            self.stats.megaflow_lookups += 1;
            let first = match ahead {
                NOT_AHEAD => None,
                ABSENT => Some(None),
                slot => Some(Some(slot)),
            };
            let found = self.flows.lookup(p, key, first);
            match found {
                Some(f) => {
                    self.stats.subtables_searched += f.searched as u64;
                    self.stats.megaflow_hits += 1;
                    slot = Some(f.slot);
                    if use_emc && self.should_insert_emc() {
                        let serial = self.flows.flows[f.slot as usize].serial;
                        let flows = &self.flows;
                        self.emc
                            .insert(hash, key, f.slot, serial, |m, s| flows.alive(m, s));
                    }
                }
                None => {
                    self.stats.subtables_searched += self.flows.ports[p].order.len() as u64;
                }
            }
        }
        let Some(slot) = slot else {
            self.stats.misses += 1;
            return Path::Translate {
                install: true,
                stale: None,
            };
        };
        let m = &self.flows.flows[slot as usize];
        if !repeat {
            self.last = Some((*key, slot, m.serial));
            self.last_idx = idx;
        }
        if m.epoch != self.epoch {
            self.stats.revalidations += 1;
            return Path::Translate {
                install: true,
                stale: Some(slot),
            };
        }
        if m.slow || (m.n_dec_ttl > 0 && !ttl_safe(frame, key, l3, m.n_dec_ttl)) {
            self.stats.slow_path += 1;
            let m = &mut self.flows.flows[slot as usize];
            m.referenced = true;
            return Path::Translate {
                install: false,
                stale: None,
            };
        }
        Path::Hit(slot)
    }

    #[inline]
    fn should_insert_emc(&mut self) -> bool {
        match self.config.emc_insert_inv_prob {
            0 => false,
            1 => true,
            n => {
                // xorshift64
                let mut x = self.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.rng = x;
                x.is_multiple_of(n as u64)
            }
        }
    }

    /// Serves a packet from megaflow `slot`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn execute<F: Frame, S: DatapathSink<F>>(
        &mut self,
        slot: u32,
        pipeline: &mut Pipeline,
        env: &mut Env<'_>,
        frame: F,
        key: &FlowKey,
        len: usize,
        sink: &mut S,
    ) {
        let now = env.now_ms;
        let deps = self.flows.flows[slot as usize].normal_mut();
        // NORMAL: learn as the pipeline would, and check that the MAC table still gives the
        // answer the megaflow was made with.
        if !deps.is_empty() && !normal_fresh(deps, env, now) {
            self.stats.revalidations += 1;
            self.translate(pipeline, env, frame, key, len, true, sink);
            self.drop_if_superseded(slot);
            return;
        }
        let m = &mut self.flows.flows[slot as usize];
        m.referenced = true;
        m.used_ms = now;
        if m.pending_packets == 0 {
            self.touched.push(slot);
        }
        m.pending_packets += 1;
        m.pending_bytes += len as u32;
        if let Some((port, queue)) = m.single_output {
            sink.output(port, queue, frame);
            self.stats.outputs += 1;
            return;
        }
        let r = replay(
            &m.ops,
            frame,
            key,
            pipeline.groups(),
            &mut self.replay,
            sink,
        );
        self.stats.outputs += r.outputs as u64;
        self.stats.no_buffer += r.no_buffer as u64;
    }

    /// Removes the out-of-date megaflow in `slot` unless the translation just replaced it in
    /// place (same mask and key) or it has uncredited hits: left alone, an old megaflow in a
    /// higher-ranked subtable would keep catching (and re-translating) its packets.
    fn drop_if_superseded(&mut self, slot: u32) {
        let m = &self.flows.flows[slot as usize];
        if m.live && m.epoch != self.epoch && m.pending_packets == 0 {
            self.flows.remove(slot);
        }
    }

    /// Credits the OpenFlow entries (and their tables' lookup/matched counts) with the hits of
    /// this batch.
    ///
    /// Megaflows often share entries (a table-miss or NORMAL entry, an ACL rule): the credits are
    /// summed per entry first, so a shared entry is usually looked up once per batch.
    fn flush_credits(&mut self, pipeline: &Pipeline, now_ms: u64) {
        // Direct-mapped by entry: a shared entry sums in one place; an entry whose place is
        // taken by another is credited at once (same totals, one more `credit` call).
        let acc = &mut self.credit_acc;
        let used = &mut self.credit_used;
        for &slot in &self.touched {
            let m = &mut self.flows.flows[slot as usize];
            let (p, b) = (m.pending_packets as u64, m.pending_bytes as u64);
            m.pending_packets = 0;
            m.pending_bytes = 0;
            m.packets += p;
            m.bytes += b;
            if let Some(t) = m.missed_table {
                pipeline.credit_table_miss(t, p);
            }
            for &e in m.all_entries() {
                let h =
                    (e.rule as usize ^ (e.serial as usize).wrapping_mul(31) ^ e.table_id as usize)
                        % CREDIT_ACC;
                match &mut acc[h] {
                    Some((id, ap, ab)) if *id == e => {
                        *ap += p;
                        *ab += b;
                    }
                    Some(_) => {
                        pipeline.credit(e, p, b, now_ms);
                    }
                    vacant => {
                        *vacant = Some((e, p, b));
                        used.push(h as u8);
                    }
                }
            }
        }
        for &h in used.iter() {
            if let Some((e, p, b)) = acc[h as usize].take() {
                pipeline.credit(e, p, b, now_ms);
            }
        }
        used.clear();
        self.touched.clear();
    }

    /// Runs a packet through the pipeline (recording), and installs the result if asked.
    #[allow(clippy::too_many_arguments)]
    fn translate<F: Frame, S: DatapathSink<F>>(
        &mut self,
        pipeline: &mut Pipeline,
        env: &mut Env<'_>,
        mut frame: F,
        key: &FlowKey,
        len: usize,
        install: bool,
        sink: &mut S,
    ) {
        let mut k = *key;
        let mut wc = FlowKey::ZERO;
        self.events.clear();
        let mut rec = Recorder {
            sink: &mut *sink,
            events: &mut self.events,
            slow: false,
            no_buffer: 0,
            _frame: core::marker::PhantomData,
        };
        let outcome = pipeline.process(env, &mut k, &mut frame, &mut wc, &mut rec);
        let (slow, no_buffer) = (rec.slow, rec.no_buffer);
        self.stats.no_buffer += no_buffer;
        self.stats.outputs += outcome.outputs as u64;
        let why = if outcome.outputs > 0 || outcome.packet_ins > 0 {
            Release::Copied
        } else {
            Release::Dropped
        };
        sink.release(frame, why);
        if !install || !self.config.cache || outcome.ttl_expired {
            return;
        }
        let Compiled {
            ops,
            normal_keys,
            slow: slow_ops,
            n_dec_ttl,
        } = compile(&self.events, key);
        let mut slow = slow || slow_ops || outcome.metered || outcome.packet_ins > 0;
        if outcome.entries.is_full() {
            slow = true;
        }
        let now = env.now_ms;
        if normal_keys.len() > megaflow::MAX_NORMAL_STEPS {
            slow = true;
        }
        let normal: heapless::Vec<NormalDep, { megaflow::MAX_NORMAL_STEPS }> = normal_keys
            .iter()
            .take(megaflow::MAX_NORMAL_STEPS)
            .map(|nk| {
                let dst = nk.get(Field::EthDst) as u64;
                let Some(ns) = env.normal.as_deref() else {
                    return NormalDep {
                        in_port: nk.in_port(),
                        vlan_vid: nk.get(Field::VlanVid) as u16,
                        eth_src: nk.get(Field::EthSrc) as u64,
                        eth_dst: dst,
                        had_switch: false,
                        lookup: None,
                        learned_ms: now,
                        learned_gen: 0,
                        checked_gen: 0,
                    };
                };
                // Reserved multicast depends on `forward_bpdu`, which has no generation.
                if mac_is_reserved(dst) {
                    slow = true;
                }
                let vlan = env
                    .ports
                    .get(nk.in_port())
                    .and_then(|p| p.vlan_mode().input_vlan(nk.vlan()));
                let lookup = match vlan {
                    Some(v) if !mac_is_multicast(dst) => {
                        Some((v, ns.mac_table().lookup(v, dst, now)))
                    }
                    _ => None,
                };
                NormalDep {
                    in_port: nk.in_port(),
                    vlan_vid: nk.get(Field::VlanVid) as u16,
                    eth_src: nk.get(Field::EthSrc) as u64,
                    eth_dst: dst,
                    had_switch: true,
                    lookup,
                    learned_ms: now,
                    learned_gen: ns.removal_generation(),
                    checked_gen: lookup.map_or(0, |(_, port)| dep_check_generation(ns, port)),
                }
            })
            .collect();
        let (slot, serial) = self.flows.install(
            key,
            &wc,
            ops.into_boxed_slice(),
            outcome.entries.as_slice(),
            outcome.missed_table,
            normal,
            slow,
            n_dec_ttl,
            self.epoch,
            now,
        );
        self.stats.installs += 1;
        // The translated packet counts for the megaflow (the pipeline credited its entries).
        let m = &mut self.flows.flows[slot as usize];
        m.packets += 1;
        m.bytes += len as u64;
        if self.should_insert_emc() {
            let hash = key_hash(key, self.config.hash_seed);
            let flows = &self.flows;
            self.emc
                .insert(hash, key, slot, serial, |m, s| flows.alive(m, s));
        }
    }

    /// Removes megaflows that are stale (made before the last flow, group or port change) or
    /// idle for `max_idle_ms` (OVS: `max-idle`, 10 s). For a timer; never needed for correctness,
    /// it returns memory and masks early. Returns how many were removed.
    pub fn sweep(&mut self, now_ms: u64, max_idle_ms: u64) -> usize {
        let mut n = 0;
        for slot in 0..self.flows.flows.len() {
            let m = &self.flows.flows[slot];
            if m.live
                && m.pending_packets == 0
                && (m.epoch != self.epoch || now_ms.saturating_sub(m.used_ms) >= max_idle_ms)
            {
                self.flows.remove(slot as u32);
                n += 1;
            }
        }
        n
    }

    /// The megaflows as `ovs-appctl dpctl/dump-flows` prints them: one line per megaflow,
    /// `in_port(N),field=value/mask,... packets:P, bytes:B, used:Ts, actions:...`.
    pub fn dump_flows(&self, now_ms: u64) -> String {
        let mut s = String::new();
        for m in self.flows.flows.iter().filter(|m| m.live) {
            let st = &self.flows.subtables[m.subtable as usize];
            let (key, mask) = (st.key_of(m.row), &st.mask);
            let used = now_ms.saturating_sub(m.used_ms);
            let _ = writeln!(
                s,
                "{}, packets:{}, bytes:{}, used:{}.{:03}s, age:{}s{}, actions:{}",
                MatchDisplay { key: &key, mask },
                m.packets + m.pending_packets as u64,
                m.bytes + m.pending_bytes as u64,
                used / 1000,
                used % 1000,
                now_ms.saturating_sub(m.created_ms) / 1000,
                if m.epoch != self.epoch {
                    ", stale"
                } else if m.slow {
                    ", slow_path"
                } else {
                    ""
                },
                actions::OpsDisplay(&m.ops)
            );
        }
        s
    }

    /// Cache statistics as `ovs-appctl dpif-netdev/pmd-stats-show` prints them.
    pub fn show_stats(&self) -> String {
        let st = &self.stats;
        let mut s = String::new();
        let pct = |n: u64| {
            if st.packets == 0 {
                0.0
            } else {
                n as f64 * 100.0 / st.packets as f64
            }
        };
        let translated = st.misses + st.revalidations + st.slow_path;
        let avg = if st.megaflow_lookups == 0 {
            0.0
        } else {
            st.subtables_searched as f64 / st.megaflow_lookups as f64
        };
        let flows = &self.flows;
        let _ = writeln!(s, "  packets received: {}", st.packets);
        let _ = writeln!(
            s,
            "  same-flow-as-previous hits: {} ({:.1} %)",
            st.batch_hits,
            pct(st.batch_hits)
        );
        let _ = writeln!(s, "  emc hits: {} ({:.1} %)", st.emc_hits, pct(st.emc_hits));
        let _ = writeln!(
            s,
            "  megaflow hits: {} ({:.1} %)",
            st.megaflow_hits,
            pct(st.megaflow_hits)
        );
        let _ = writeln!(s, "  avg. subtable lookups per megaflow lookup: {avg:.2}");
        let _ = writeln!(
            s,
            "  miss with success upcall: {} ({:.1} %)",
            st.misses,
            pct(st.misses)
        );
        let _ = writeln!(
            s,
            "  translated: {} (revalidations {}, slow path {})",
            translated, st.revalidations, st.slow_path
        );
        let _ = writeln!(
            s,
            "  megaflows: {} (limit {}, installed {}, evicted {})",
            flows.len, flows.limits.max_megaflows, st.installs, flows.evicted
        );
        let _ = writeln!(
            s,
            "  masks: {} (limit {} per port, {} megaflows widened)",
            flows.n_masks(),
            flows.limits.max_masks_per_port,
            flows.widened
        );
        let _ = writeln!(
            s,
            "  emc entries: {} of {}",
            self.emc.occupancy(|m, ser| flows.alive(m, ser)),
            self.emc.capacity()
        );
        let _ = writeln!(
            s,
            "  outputs: {}, no buffer for copies: {}",
            st.outputs, st.no_buffer
        );
        s
    }
}

/// The generation a NORMAL step's lookup answer depends on: a known destination's port can
/// only change by a removal or move; an unknown (flooded) one also when it is learned.
#[inline]
fn dep_check_generation(ns: &crate::normal::NormalSwitch, port: Option<PortNo>) -> u64 {
    if port.is_some() {
        ns.removal_generation()
    } else {
        ns.generation()
    }
}

/// How often a megaflow hit refreshes its source MAC's entry: 1/32 of the aging time, at least
/// every millisecond and at most every 10 s.
#[inline]
fn learn_refresh_ms(aging_ms: u64) -> u64 {
    (aging_ms / 32).clamp(1, 10_000)
}

/// Learns from each NORMAL step of a megaflow and checks the MAC-table answers it used.
///
/// Both are coalesced. A step re-learns (refreshes its source's `seen` time) at most once per
/// [`learn_refresh_ms`] while the MAC table has not changed: at a million flows a refresh per
/// packet is a MAC-table lookup plus an LRU relink, four or five cache misses, which made a hit
/// 4x dearer once the clock ran (`l2_1m_flows_live_clock`, docs/benchmarks.md). The entry's age
/// is then up to that interval (1/32 of the aging time, at most 10 s) behind; an entry of a host
/// that keeps sending can only age out after 31/32 of the aging time without a refresh, and its
/// next packet learns it again (expiry moves the removal generation, which also makes a step
/// re-learn at once; a newly learned address does not). The lookup is repeated only when an
/// answer it depends on may have changed ([`dep_check_generation`]) or some entry may have aged.
#[inline(always)]
fn normal_fresh(deps: &mut [NormalDep], env: &mut Env<'_>, now: u64) -> bool {
    let ports = env.ports;
    let Some(ns) = env.normal.as_deref_mut() else {
        return deps.iter().all(|d| !d.had_switch);
    };
    for dep in deps {
        if !dep.had_switch {
            return false;
        }
        // Re-learn when the entry may have gone (removal generation), not when some other
        // address was added: on a network where new addresses keep appearing, every hit would
        // otherwise pay the refresh.
        if now.wrapping_sub(dep.learned_ms) >= learn_refresh_ms(ns.mac_table().aging_ms())
            || dep.learned_gen != ns.removal_generation()
        {
            ns.learn_from(ports, &dep.key(), now);
            dep.learned_ms = now;
            dep.learned_gen = ns.removal_generation();
        }
        if let Some((vlan, port)) = dep.lookup {
            let dst = dep.eth_dst;
            let mgen = dep_check_generation(ns, port);
            let may_have_aged = ns.mac_table().next_expiry_ms().is_some_and(|t| t <= now);
            if dep.checked_gen != mgen || may_have_aged {
                if ns.mac_table().lookup(vlan, dst, now) != port {
                    return false;
                }
                dep.checked_gen = mgen;
            }
        }
    }
    true
}

/// A megaflow's match as text: `field=value/mask` for each field with mask bits.
struct MatchDisplay<'a> {
    key: &'a FlowKey,
    mask: &'a FlowKey,
}

impl fmt::Display for MatchDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut seen: heapless::Vec<crate::flow::FieldInfo, 40> = heapless::Vec::new();
        for field in Field::ALL {
            let info = field.info();
            if seen.contains(&info) {
                continue;
            }
            let _ = seen.push(info);
            let m = self.mask.get(field);
            if m == 0 {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}=", field_name(field))?;
            write_value(f, field, self.key.get(field))?;
            if m != field.max() {
                f.write_str("/")?;
                write_value(f, field, m)?;
            }
        }
        let fm = self.mask.w[internal::FRAG_WORD] & internal::FRAG_MASK;
        if fm != 0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(
                f,
                "frag={:#x}/{fm:#x}",
                self.key.w[internal::FRAG_WORD] & internal::FRAG_MASK
            )?;
        }
        if first {
            f.write_str("any")?;
        }
        Ok(())
    }
}
