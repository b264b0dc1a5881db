//! The OpenFlow agent of one bridge (Open vSwitch's `connmgr` plus the `ofproto` request
//! handlers): it owns the OpenFlow connections (each a `Session` with its role, async filters
//! and send queue), applies every request to the bridge's pipeline, ports and meters, answers
//! it, and sends the asynchronous messages (packet-in, flow-removed, port-status) to the
//! connections that want them. It also implements the fail modes.
//!
//! The agent does not own the bridge: every call that touches it takes a [`BridgeCtx`] of
//! borrows, so the kernel keeps its bridge where it is. It does not own sockets either: it is a
//! [`StreamHandler`] (through [`OfAgent::streams`]) that the management port's TCP glue
//! (`crate::netif`) feeds; the host tests feed it byte vectors directly.
//!
//! Everything is applied synchronously: when a request's bytes have been received, its effect is
//! in the pipeline, so a barrier is answered at once. The agent only changes the pipeline and
//! the port table; a datapath cache in front of the pipeline notices by their generations.
//!
//! On a multi-core bridge ([`BridgeCtx::cores`]) the pipeline the agent changes is the
//! authoritative copy the datapath cores replicate (`switch_core::mcore`): a barrier reply then
//! waits until every core has switched to the state the barrier covers, and a statistics
//! request until every core has reported its counters (folded into the pipeline's and port
//! table's, so the replies are built as on one core). Requests behind a waiting one on the same
//! connection wait too, so replies keep the order of the requests.
//!
//! # Wiring it into the kernel
//!
//! ```ignore
//! // Boot: the agent, then the management port on the management NIC (a `phy::Device`).
//! let mut agent = OfAgent::new(AgentConfig::from_settings(&settings, fail_mode), now_ms);
//! let mut mgmt = MgmtPort::new(NetifConfig::from_settings(&settings, mgmt_mac, tsc), &mut dev, now_ms);
//! // (Bridge::new must not install its own NORMAL flow: the agent's first poll does when the
//! // fail mode and the controllers call for it.)
//!
//! // Forwarding: meters and packet-ins go to the agent.
//! let (meters, packet_ins) = agent.datapath_hooks();
//! let mut env = Env { ports: &port_table, normal: Some(&mut normal), meters: Some(meters), now_ms };
//! // in the sink: fn controller(&mut self, pi: &PacketIn) { self.packet_ins.push(pi) }
//! let outcome = pipeline.process(&mut env, &mut key, &mut frame, &mut wc, &mut sink);
//! if outcome.table_miss_drop && packet_ins.miss_to_controller {
//!     packet_ins.push_miss(&key, frame.data(), 0); // OpenFlow 1.0 controllers only
//! }
//!
//! // Every N iterations (bounded work; flow expiry included, so drop `pipeline.expire`
//! // from housekeeping or pass its result to `agent.flows_removed`):
//! let mut ctx = BridgeCtx { pipeline: &mut pipeline, ports: &mut port_table,
//!                           normal: &mut normal, sink: &mut tx_sink, now_ms, cores: None };
//! mgmt.poll_with_agent(now_ms, &mut dev, &mut agent, &mut ctx, None /* OVSDB later */);
//! // then flush the tx batches the packet-outs filled.
//! ```

mod handle;
mod meters;
mod packet_in;
mod ports;
mod rate_limit;
mod reply;

use alloc::string::String;
use alloc::vec::Vec;

use switch_core::action::{Action as CoreAction, Instructions};
use switch_core::flow_match::Match as CoreMatch;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{FlowMod as CoreFlowMod, FlowModCommand, OutputSink, Pipeline};
use switch_core::port::{OFPP_NORMAL, PortConfig, PortTable};
use switch_core::table::{FlowModFlags, FlowRemoved as CoreFlowRemoved};

use crate::netif::stream::{ConnKind, StreamHandler};
use crate::openflow::PacketIn;
use crate::openflow::header::{Framer, Header};
use crate::openflow::message::{
    FlowRemoved, Message, OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE, PortStatus, ofpt,
};
use crate::openflow::multipart::SwitchDesc;
use crate::openflow::port::PortDesc;
use crate::openflow::session::{Session, SessionConfig, SessionEvent, SwitchInfo};
use crate::openflow::{OFP10, OFP13};

pub use meters::{MAX_BANDS, Meter, MeterReader, MeterTable};
pub use packet_in::PacketInQueue;
pub use ports::{datapath_id_from_ports, port_desc, port_stats};
use rate_limit::{Offer, Pacer};
pub use rate_limit::{RateLimit, TokenBucket};

/// What the bridge does while no controller is connected (`fail_mode` in Open vSwitch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Keep the flows, add nothing: packets the flows do not handle are dropped.
    Secure,
    /// After `fail_open_delay_ms` without a controller, forward like a learning switch (a
    /// priority-0 `actions=NORMAL` flow in table 0) until a controller connects.
    Standalone,
}

/// The cookie of the flow the agent installs in standalone mode while no controller is
/// connected (so that it can find and remove exactly that flow).
pub const FAIL_OPEN_COOKIE: u64 = 0x6972_6f6e_6661_696c; // "ironfail"

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub fail_mode: FailMode,
    /// Whether active controller targets are configured (`controller=tcp:...`). Without them
    /// the bridge is a plain NORMAL switch (in standalone mode) as in Open vSwitch: the
    /// visible `priority=0 actions=NORMAL` flow is installed once, on the first poll.
    pub has_controllers: bool,
    /// Time without any controller connection before standalone mode falls back to NORMAL
    /// (Open vSwitch: three probe intervals).
    pub fail_open_delay_ms: u64,
    /// A fixed datapath id; `None` = from the lowest data-port MAC, as Open vSwitch does.
    pub datapath_id: Option<u64>,
    pub serial_num: String,
    pub dp_desc: String,
    /// Echo keep-alive of every session (see `SessionConfig`).
    pub echo_interval_ms: u64,
    pub echo_timeout_ms: u64,
    /// Most OpenFlow connections at once (further ones are refused).
    pub max_connections: usize,
    /// Packet-ins waiting for delivery; more are dropped (and counted). Command line
    /// `packet_in.queue=N`.
    pub packet_in_queue: usize,
    /// The controller rate limit of every connection that has none of its own (see
    /// [`OfAgent::set_controller_limits`]); `None` = packet-ins are only bounded by the queue.
    /// Command line `controller.rate_limit=` and `controller.burst_limit=`.
    pub rate_limit: Option<RateLimit>,
    /// A connection whose send queue is longer than this gets no packet-ins (they are dropped).
    pub packet_in_backlog: usize,
    /// A connection whose send queue is longer than this is not read from until it drains.
    pub pause_backlog: usize,
    /// A connection whose send queue grows past this with asynchronous messages is closed.
    pub max_backlog: usize,
    pub max_meters: u32,
    /// Whether passive (`ptcp:`) connections get asynchronous messages without asking. Open
    /// vSwitch: no, until they set a non-zero `miss_send_len` with `SET_CONFIG`.
    pub passive_async: bool,
    /// OpenFlow versions offered (bit `v` = wire version `v`, OVSDB `Bridge.protocols`);
    /// 0 = every version the switch speaks.
    pub versions: u32,
    /// Bytes of a large multipart reply (flow and aggregate stats, table features) one
    /// connection produces per management poll (flow slots visited count 16 bytes each).
    pub reply_budget: usize,
    /// A large reply makes progress only while the connection's send queue is shorter than
    /// this (what the transport has not taken yet).
    pub reply_backlog: usize,
}

impl FailMode {
    /// `secure` or `standalone` (the `fail_mode` values of Open vSwitch).
    pub fn from_name(s: &str) -> Option<FailMode> {
        match s {
            "secure" => Some(FailMode::Secure),
            "standalone" => Some(FailMode::Standalone),
            _ => None,
        }
    }
}

impl AgentConfig {
    /// The settings for a bridge booted with `settings` (controllers from the command line)
    /// in `fail_mode`.
    pub fn from_settings(settings: &crate::cmdline::BootSettings, fail_mode: FailMode) -> Self {
        AgentConfig {
            fail_mode,
            has_controllers: !settings.controllers.is_empty(),
            packet_in_queue: settings.packet_in_queue,
            rate_limit: settings.controller_rate_limit(),
            ..AgentConfig::default()
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            fail_mode: FailMode::Standalone,
            has_controllers: false,
            fail_open_delay_ms: 15_000,
            datapath_id: None,
            serial_num: String::from("None"),
            dp_desc: String::from("None"),
            echo_interval_ms: 5_000,
            echo_timeout_ms: 10_000,
            max_connections: 16,
            packet_in_queue: DEFAULT_PACKET_IN_QUEUE,
            rate_limit: None,
            packet_in_backlog: 64 * 1024,
            pause_backlog: 256 * 1024,
            max_backlog: 4 * 1024 * 1024,
            max_meters: 1024,
            passive_async: false,
            versions: 0,
            reply_budget: 32 * 1024,
            reply_backlog: 64 * 1024,
        }
    }
}

/// Packet-ins waiting for delivery by default (`packet_in.queue=`).
pub const DEFAULT_PACKET_IN_QUEUE: usize = 256;

/// The parts of the bridge the agent works on, borrowed for one call.
pub struct BridgeCtx<'a> {
    pub pipeline: &'a mut Pipeline,
    pub ports: &'a mut PortTable,
    pub normal: &'a mut NormalSwitch,
    /// Where packet-out outputs go (the same kind of sink the forwarding loop uses). Its
    /// `controller` method is not called by the agent: packet-ins of a packet-out are queued
    /// by the agent itself.
    pub sink: &'a mut dyn OutputSink,
    pub now_ms: u64,
    /// The datapath cores when they are not the caller's own (a multi-core bridge): barrier
    /// replies wait until every core has switched to the state the barrier covers, and
    /// statistics requests wait for fresh counters from every core. `None`: the pipeline in
    /// `pipeline` is the one that forwards, so everything is answered at once.
    pub cores: Option<&'a mut dyn Cores>,
}

/// The datapath cores of a multi-core bridge, as the agent needs them (implemented over
/// `switch_core::mcore::Hub` by the main loop).
pub trait Cores {
    /// Publishes every change made so far (to `pipeline` and `ports`) and returns the epoch
    /// the cores must pass before a barrier reply may be sent.
    fn barrier(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64;
    /// Whether every core has switched to `epoch` (or later).
    fn passed(&self, epoch: u64) -> bool;
    /// Asks every core for its counters; returns the ticket to wait for.
    fn request_stats(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64;
    /// Whether every core answered `ticket`.
    fn stats_ready(&self, ticket: u64) -> bool;
    /// Adds the cores' counts (as of their answers) to `pipeline`'s and `ports`' counters.
    fn fold_stats(&mut self, pipeline: &mut Pipeline, ports: &mut PortTable);
}

/// A request that waits for the datapath cores (see [`BridgeCtx::cores`]).
#[derive(Debug)]
struct Parked {
    wait: Wait,
    request: crate::openflow::session::Request,
}

#[derive(Clone, Copy, Debug)]
enum Wait {
    /// A barrier: every core past this epoch.
    Epoch(u64),
    /// A statistics request: every core answered this ticket.
    Stats(u64),
}

/// Counters for the console and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub connections_opened: u64,
    pub connections_refused: u64,
    pub requests: u64,
    pub errors_sent: u64,
    /// Packet-ins the datapath (or a packet-out) produced while a connection could want
    /// them. Each one is sent, or counted in one of the drop counters below, per connection
    /// that wants it (with one controller: `generated == sent + dropped_queue_full +
    /// dropped_rate_limited + backlogged + dropped_no_controller + waiting`).
    pub packet_ins_generated: u64,
    pub packet_ins_sent: u64,
    /// Dropped because the packet-in queue (`packet_in.queue=`) was full.
    pub packet_ins_dropped_queue_full: u64,
    /// Dropped by a connection's rate limiter (over the rate with its burst queue full).
    pub packet_ins_dropped_rate_limited: u64,
    /// Held back by a rate limiter's burst queue (Open vSwitch's `n_limited`); each is later
    /// sent (and counted in `sent`) or dropped (and counted).
    pub packet_ins_paced: u64,
    /// Packet-ins not sent to a connection because its send queue was too long.
    pub packet_ins_backlogged: u64,
    /// Thrown away waiting: the connections that wanted them went away.
    pub packet_ins_dropped_no_controller: u64,
    /// Not sent: the ingress port has `no-packet-in` set (`OFPPC_NO_PACKET_IN`).
    pub packet_ins_port_disabled: u64,
    /// Waiting now (in the queue or a rate limiter), not yet sent or dropped.
    pub packet_ins_waiting: u64,
    pub flow_removed_sent: u64,
    pub port_status_sent: u64,
    pub closed_for_backlog: u64,
}

/// What the agent knows about one connection (for OVSDB's `Controller` table status and the
/// console).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: u32,
    pub kind: ConnKind,
    /// The negotiated version, once connected.
    pub version: Option<u8>,
    /// `OFPCR_ROLE_*` (1 equal, 2 master, 3 slave).
    pub role: u32,
    pub is_connected: bool,
    /// Bytes waiting to be sent.
    pub backlog: usize,
}

/// One OpenFlow connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: u32,
    pub kind: ConnKind,
    pub session: Session,
    /// Bytes for the peer: `out[head..]`.
    out: Vec<u8>,
    head: usize,
    /// The agent wants the transport to close this connection.
    pub closing: bool,
    /// Passive connections: asynchronous messages enabled by a `SET_CONFIG` with a non-zero
    /// `miss_send_len`.
    async_enabled: bool,
    /// Splits the received stream into messages for the session.
    framer: Framer,
    /// The controller rate limiter, when this connection has a limit.
    pacer: Option<Pacer>,
    /// A large multipart reply in progress (later requests wait until it completes).
    job: Option<reply::Job>,
    /// A request waiting for the datapath cores (later requests wait behind it).
    parked: Option<Parked>,
    /// Reply bytes this connection may still produce in this poll.
    budget: usize,
}

impl Conn {
    fn backlog(&self) -> usize {
        self.out.len() - self.head
    }

    /// Queues a packet-in unless the send queue is over `limit` (then it is counted).
    fn send_packet_in(&mut self, m: PacketIn, limit: usize, stats: &mut AgentStats) {
        if self.backlog() > limit {
            stats.packet_ins_backlogged += 1;
            return;
        }
        if self.session.send_async(&Message::PacketIn(m)).is_ok() {
            stats.packet_ins_sent += 1;
        } else {
            // Not encodable for this version (cannot happen for a frame that fits): counted
            // with the packet-ins the connection could not take.
            stats.packet_ins_backlogged += 1;
        }
        self.pull();
    }

    /// Moves the session's output into the send queue.
    fn pull(&mut self) {
        if !self.session.has_output() {
            return;
        }
        let o = self.session.poll_output();
        if self.backlog() == 0 {
            self.out = o;
            self.head = 0;
        } else {
            self.out.extend_from_slice(&o);
        }
    }

    fn is_controller(&self) -> bool {
        matches!(self.kind, ConnKind::Active { .. })
    }

    /// Whether asynchronous messages may go to this connection at all.
    fn gets_async(&self, passive_async: bool) -> bool {
        self.session.is_connected()
            && !self.closing
            && (self.is_controller() || passive_async || self.async_enabled)
    }

    /// Notes a `SET_CONFIG` (whose `miss_send_len` opts a passive connection into
    /// asynchronous messages).
    fn watch(&mut self, msg: &[u8]) {
        if let Some(h) = Header::parse_prefix(msg)
            && h.msg_type == ofpt::SET_CONFIG
            && msg.len() >= 12
        {
            self.async_enabled = u16::from_be_bytes([msg[10], msg[11]]) != 0;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum FailOpen {
    /// Not falling back (a controller is connected, secure mode, or not yet time).
    Off,
    /// The fail-open flow is installed; `saved` is the priority-0 catch-all entry it replaced.
    On { saved: Option<SavedFlow> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SavedFlow {
    cookie: u64,
    flags: FlowModFlags,
    idle_timeout: u16,
    hard_timeout: u16,
    instructions: Instructions,
}

/// The OpenFlow side of one bridge.
pub struct OfAgent {
    config: AgentConfig,
    conns: Vec<Conn>,
    next_id: u32,
    meters: MeterTable,
    packet_ins: PacketInQueue,
    /// Port descriptions as last announced (sorted by port number).
    ports_seen: Vec<PortDesc>,
    ports_generation: Option<u64>,
    info: SwitchInfo,
    /// Role election generation id (`None` until a master/slave request set one).
    role_generation: Option<u64>,
    /// When a controller connection was last up (or the agent started).
    last_controller_ms: u64,
    fail_open: FailOpen,
    started: bool,
    next_expiry_ms: u64,
    /// The pipeline generation when the fail-open flow was last checked.
    fail_open_generation: u64,
    stats: AgentStats,
    /// Per-connection rate limits (OVSDB `Controller` rows) that override
    /// `config.rate_limit` for the connections of that kind.
    limits: Vec<(ConnKind, Option<RateLimit>)>,
}

/// Received bytes a connection may hold unprocessed before the transport stops reading.
const MAX_UNPROCESSED: usize = 64 * 1024;

/// How often `poll` looks for expired flows.
const EXPIRY_INTERVAL_MS: u64 = 200;

/// The agent together with a bridge: the [`StreamHandler`] the management port's TCP glue
/// drives.
pub struct AgentStreams<'s, 'b> {
    pub agent: &'s mut OfAgent,
    pub ctx: &'s mut BridgeCtx<'b>,
}

impl OfAgent {
    /// A new agent at time `now_ms` (the fail-open timer starts here).
    pub fn new(config: AgentConfig, now_ms: u64) -> OfAgent {
        let info = SwitchInfo {
            datapath_id: config.datapath_id.unwrap_or(0),
            n_buffers: 0,
            n_tables: 1,
            desc: SwitchDesc {
                mfr_desc: String::from("ironflow project"),
                hw_desc: String::from("ironflow appliance"),
                sw_desc: String::from(env!("CARGO_PKG_VERSION")),
                serial_num: config.serial_num.clone(),
                dp_desc: config.dp_desc.clone(),
            },
            ..SwitchInfo::default()
        };
        OfAgent {
            meters: MeterTable::new(config.max_meters),
            packet_ins: PacketInQueue::new(config.packet_in_queue),
            config,
            conns: Vec::new(),
            next_id: 1,
            ports_seen: Vec::new(),
            ports_generation: None,
            info,
            role_generation: None,
            last_controller_ms: now_ms,
            fail_open: FailOpen::Off,
            started: false,
            next_expiry_ms: 0,
            fail_open_generation: 0,
            stats: AgentStats::default(),
            limits: Vec::new(),
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn stats(&self) -> AgentStats {
        let mut s = self.stats;
        let q = &self.packet_ins;
        s.packet_ins_generated = q.generated;
        s.packet_ins_dropped_queue_full = q.dropped;
        s.packet_ins_dropped_no_controller += q.cleared;
        s.packet_ins_waiting = q.len() as u64
            + self
                .conns
                .iter()
                .filter_map(|c| c.pacer.as_ref())
                .map(|p| p.queued() as u64)
                .sum::<u64>();
        s
    }

    /// Changes the packet-in queue size (`packet_in.queue=`).
    pub fn set_packet_in_queue(&mut self, n: usize) {
        self.config.packet_in_queue = n;
        self.packet_ins.set_capacity(n);
    }

    /// Changes the rate limit of the connections without one of their own
    /// (`controller.rate_limit=`; `None`: no limit).
    pub fn set_rate_limit(&mut self, limit: Option<RateLimit>, now_ms: u64) {
        self.config.rate_limit = limit;
        self.apply_limits(now_ms);
    }

    /// Sets the rate limits of the connections of each kind (from the OVSDB `Controller`
    /// rows: an active target's id, or a passive listener's port); `None` in an entry = no
    /// limit for that kind; kinds not listed get `AgentConfig::rate_limit`. Applies to the
    /// connections open now and later. Packet-ins a removed limit held back are sent now.
    pub fn set_controller_limits(&mut self, limits: &[(ConnKind, Option<RateLimit>)], now_ms: u64) {
        self.limits = limits.to_vec();
        self.apply_limits(now_ms);
    }

    /// [`set_controller_limits`](Self::set_controller_limits) from controller targets as
    /// OVSDB names them (`tcp:IP:PORT` as `port` dials them, `ptcp:PORT[:IP]`) with their
    /// limits (`None`: the row has no `controller_rate_limit`). Call after
    /// `MgmtPort::set_controllers`, so that new targets have their ids.
    pub fn set_controller_limits_by_target(
        &mut self,
        port: &crate::netif::MgmtPort,
        limits: &[(String, Option<RateLimit>)],
        now_ms: u64,
    ) {
        let kinds: Vec<(ConnKind, Option<RateLimit>)> = limits
            .iter()
            .filter_map(|(t, l)| Some((port.conn_kind_of(t)?, *l)))
            .collect();
        self.set_controller_limits(&kinds, now_ms);
    }

    /// The rate limit connections of `kind` get.
    fn limit_for(&self, kind: ConnKind) -> Option<RateLimit> {
        match self.limits.iter().find(|(k, _)| *k == kind) {
            Some((_, l)) => *l,
            None => self.config.rate_limit,
        }
    }

    /// The rate limit in force on connection `id` (`None`: none).
    pub fn connection_rate_limit(&self, id: u32) -> Option<RateLimit> {
        self.conn(id)?.pacer.as_ref().map(|p| p.limit)
    }

    fn apply_limits(&mut self, now_ms: u64) {
        let backlog = self.config.packet_in_backlog;
        for i in 0..self.conns.len() {
            let want = self.limit_for(self.conns[i].kind);
            let c = &mut self.conns[i];
            match (want, c.pacer.as_mut()) {
                (Some(l), Some(p)) if p.limit == l => {}
                (Some(l), Some(p)) => {
                    self.stats.packet_ins_dropped_rate_limited += p.set_limit(l, now_ms) as u64;
                }
                (Some(l), None) => c.pacer = Some(Pacer::new(l, now_ms)),
                (None, Some(_)) => {
                    let held = c.pacer.take().map(|mut p| p.take_all()).unwrap_or_default();
                    for m in held {
                        c.send_packet_in(m, backlog, &mut self.stats);
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// The meter table (the pipeline's `MeterHook`: pass it in `Env::meters`).
    pub fn meters(&mut self) -> &mut MeterTable {
        &mut self.meters
    }

    /// The packet-in queue (fill it from `OutputSink::controller`).
    pub fn packet_ins(&mut self) -> &mut PacketInQueue {
        &mut self.packet_ins
    }

    /// A meter reader for a datapath core: it charges the same token buckets as this agent's
    /// meter table and follows its meter-mods.
    pub fn meter_reader(&self) -> MeterReader {
        self.meters.reader()
    }

    /// Both datapath hooks at once, for one `Pipeline::process` call.
    pub fn datapath_hooks(&mut self) -> (&mut MeterTable, &mut PacketInQueue) {
        (&mut self.meters, &mut self.packet_ins)
    }

    /// The datapath id announced in features replies.
    pub fn datapath_id(&self) -> u64 {
        self.info.datapath_id
    }

    /// Whether the standalone fallback is in force (the fail-open flow is installed).
    pub fn is_fail_open(&self) -> bool {
        matches!(self.fail_open, FailOpen::On { .. })
    }

    /// Whether a controller connection is up (negotiated).
    pub fn controller_connected(&self) -> bool {
        self.conns
            .iter()
            .any(|c| c.is_controller() && c.session.is_connected())
    }

    /// Every connection, in the order they were opened.
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .map(|c| ConnInfo {
                id: c.id,
                kind: c.kind,
                version: c.session.version(),
                role: c.session.role(),
                is_connected: c.session.is_connected() && !c.closing,
                backlog: c.backlog(),
            })
            .collect()
    }

    /// Number of open connections (of any kind).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The negotiated version of connection `id`, once connected.
    pub fn connection_version(&self, id: u32) -> Option<u8> {
        self.conn(id)?.session.version()
    }

    /// The role of connection `id` (`OFPCR_ROLE_*`).
    pub fn connection_role(&self, id: u32) -> Option<u32> {
        Some(self.conn(id)?.session.role())
    }

    /// Whether the kernel should send a table-miss packet-in for packets the pipeline dropped
    /// on a miss (`Outcome::table_miss_drop`): true while an OpenFlow 1.0 connection that gets
    /// asynchronous messages is up, as Open vSwitch does (1.0's table miss goes to the
    /// controller; 1.3+ needs a table-miss flow). Use `PacketInQueue::push_miss`; the
    /// queue's `miss_to_controller` caches this answer for the forwarding loop.
    pub fn wants_packet_in_on_miss(&self) -> bool {
        self.conns
            .iter()
            .any(|c| c.session.version() == Some(OFP10) && c.gets_async(self.config.passive_async))
    }

    /// The agent with a bridge, as a [`StreamHandler`] for the transport.
    pub fn streams<'s, 'b>(&'s mut self, ctx: &'s mut BridgeCtx<'b>) -> AgentStreams<'s, 'b> {
        AgentStreams { agent: self, ctx }
    }

    fn conn(&self, id: u32) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn index(&self, id: u32) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            echo_interval_ms: self.config.echo_interval_ms,
            echo_timeout_ms: self.config.echo_timeout_ms,
            info: self.info.clone(),
            versions: match self.config.versions {
                0 => SessionConfig::default().versions,
                v => v,
            },
            ..SessionConfig::default()
        }
    }

    /// Changes the OpenFlow versions offered (`Bridge.protocols`; 0 = all). Connections that
    /// negotiated a version no longer allowed are closed, as Open vSwitch reconnects them.
    pub fn set_versions(&mut self, versions: u32) {
        if versions == self.config.versions {
            return;
        }
        self.config.versions = versions;
        let allowed = self.session_config().versions;
        for c in self.conns.iter_mut() {
            if let Some(v) = c.session.version()
                && allowed & (1 << v) == 0
            {
                log::info!(
                    "openflow: connection {}: version {v} no longer allowed",
                    c.id
                );
                c.closing = true;
            }
        }
    }

    /// Sets a fixed datapath id (`other_config:datapath-id`), or `None` for the one derived
    /// from the ports' MACs. Takes effect in features replies at the next port check.
    pub fn set_datapath_id(&mut self, dpid: Option<u64>) {
        if self.config.datapath_id != dpid {
            self.config.datapath_id = dpid;
            // Forces the next port check to recompute the id (the port list is unchanged).
            self.ports_generation = self.ports_generation.map(|g| g.wrapping_sub(1));
        }
    }

    /// Opens a connection (its HELLO is queued). `None` if there are too many.
    pub fn open(&mut self, ctx: &mut BridgeCtx<'_>, kind: ConnKind) -> Option<u32> {
        if self.conns.len() >= self.config.max_connections {
            self.stats.connections_refused += 1;
            return None;
        }
        self.refresh_ports(ctx);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut c = Conn {
            id,
            kind,
            session: Session::new(self.session_config(), ctx.now_ms),
            out: Vec::new(),
            head: 0,
            closing: false,
            async_enabled: false,
            framer: Framer::default(),
            pacer: self.limit_for(kind).map(|l| Pacer::new(l, ctx.now_ms)),
            job: None,
            parked: None,
            budget: self.config.reply_budget,
        };
        c.pull();
        self.conns.push(c);
        self.stats.connections_opened += 1;
        log::info!("openflow: connection {id} opened ({kind:?})");
        Some(id)
    }

    /// Bytes received on connection `id`: every complete request is applied and answered.
    ///
    /// Messages are handed to the session one at a time, so that the answers the session gives
    /// by itself (echo, features, errors) and the agent's answers leave in request order.
    pub fn receive(&mut self, ctx: &mut BridgeCtx<'_>, id: u32, data: &[u8]) {
        let Some(i) = self.index(id) else {
            return;
        };
        let c = &mut self.conns[i];
        c.framer.push(data);
        if c.job.is_none() {
            c.budget = self.config.reply_budget;
        }
        self.process(ctx, i);
        self.update_activity(ctx.now_ms);
    }

    /// Applies the received messages of connection `i`, one at a time, while its send queue
    /// is below `pause_backlog`; the rest wait in the framer for the queue to drain (`poll`
    /// resumes them), so a peer that sends requests without reading the answers cannot make
    /// the queue grow by more than one answer.
    fn process(&mut self, ctx: &mut BridgeCtx<'_>, i: usize) {
        self.refresh_ports(ctx);
        let now = ctx.now_ms;
        loop {
            let c = &mut self.conns[i];
            if c.session.is_closed()
                || c.backlog() >= self.config.pause_backlog
                || c.job.is_some()
                || c.parked.is_some()
            {
                break;
            }
            let events = match c.framer.next_message() {
                None => break,
                Some(Ok(msg)) => {
                    c.watch(&msg);
                    c.session.on_bytes(now, &msg)
                }
                // The session sees the same broken header and answers BAD_LEN.
                Some(Err(e)) => c.session.on_bytes(now, &e.header),
            };
            c.pull();
            for ev in events {
                self.on_event(ctx, i, ev);
            }
            self.conns[i].pull();
            // A port-mod's port-status follows its place in the stream.
            self.refresh_ports(ctx);
        }
    }

    /// The bytes waiting for the peer of `id`.
    pub fn pending(&self, id: u32) -> &[u8] {
        match self.conn(id) {
            Some(c) => &c.out[c.head..],
            None => &[],
        }
    }

    /// `n` bytes of `pending(id)` were sent.
    pub fn consume(&mut self, id: u32, n: usize) {
        if let Some(i) = self.index(id) {
            let c = &mut self.conns[i];
            c.head = (c.head + n).min(c.out.len());
            if c.head == c.out.len() {
                c.out.clear();
                c.head = 0;
            } else if c.head > 64 * 1024 && c.head * 2 > c.out.len() {
                c.out.drain(..c.head);
                c.head = 0;
            }
        }
    }

    /// Whether connection `id` is to be closed (once its pending bytes are out).
    pub fn wants_close(&self, id: u32) -> bool {
        self.conn(id).is_none_or(|c| c.closing)
    }

    /// Whether the agent reads more from `id` now (its send queue is short enough).
    pub fn can_receive(&self, id: u32) -> bool {
        self.conn(id).is_some_and(|c| {
            !c.closing
                && c.backlog() < self.config.pause_backlog
                && c.framer.buffered() < MAX_UNPROCESSED
        })
    }

    /// The transport of `id` is gone.
    pub fn close(&mut self, id: u32, now_ms: u64) {
        if let Some(i) = self.index(id) {
            let c = self.conns.remove(i);
            if let Some(p) = &c.pacer {
                self.stats.packet_ins_dropped_no_controller += p.queued() as u64;
            }
            if c.is_controller() && c.session.is_connected() {
                self.last_controller_ms = now_ms;
            }
            log::info!("openflow: connection {id} closed");
        }
        self.update_activity(now_ms);
    }

    /// Timers and asynchronous messages; call every main-loop management round. Sends echo
    /// probes, expires flows (sending flow-removed), announces port changes, delivers queued
    /// packet-ins, and runs the fail mode.
    pub fn poll(&mut self, ctx: &mut BridgeCtx<'_>) {
        let now = ctx.now_ms;
        if !self.started {
            self.started = true;
            self.start(ctx);
        }
        for i in 0..self.conns.len() {
            self.conns[i].budget = self.config.reply_budget;
            self.resume_parked(ctx, i);
            if self.conns[i].job.is_some() {
                self.run_reply(ctx, i);
            }
            if self.conns[i].framer.buffered() > 0 {
                self.process(ctx, i);
            }
            let c = &mut self.conns[i];
            c.pull();
            if let Some(SessionEvent::Disconnect(why)) = c.session.tick(now) {
                // The peer is silent: what it has not read will never be read.
                log::info!("openflow: connection {}: {why:?}", c.id);
                c.closing = true;
                c.job = None;
                c.parked = None;
                c.out.clear();
                c.head = 0;
                let _ = c.session.poll_output();
            }
            c.pull();
        }
        // Timeouts count in seconds: walking every flow five times a second is plenty.
        if now >= self.next_expiry_ms {
            self.next_expiry_ms = now + EXPIRY_INTERVAL_MS;
            let removed = ctx.pipeline.expire(now);
            self.flows_removed(&removed);
        }
        self.refresh_ports(ctx);
        self.deliver_packet_ins(ctx);
        self.update_activity(now);
        self.run_fail_mode(ctx);
    }

    /// Advances connection `i`'s reply in progress within its budget. (The requests waiting
    /// behind it are processed by the caller's loop: `process`, or `poll` after this.)
    pub(crate) fn run_reply(&mut self, ctx: &mut BridgeCtx<'_>, i: usize) {
        let room = self.config.reply_backlog;
        let c = &mut self.conns[i];
        c.pull();
        let head = c.head;
        let Some(job) = c.job.as_mut() else {
            return;
        };
        let r = job.step(
            ctx.pipeline,
            ctx.now_ms,
            &mut c.out,
            &mut c.budget,
            |out: &[u8]| out.len() - head < room,
        );
        match r {
            Ok(reply::Progress::More) => {}
            Ok(reply::Progress::Done) => {
                if let Some(job) = c.job.take() {
                    job.finish(&mut c.out);
                }
            }
            Err(e) => {
                if let Some(job) = c.job.take() {
                    log::debug!("openflow: connection {}: reply failed: {e}", c.id);
                    c.session.send_error(e, &job.head);
                    self.stats.errors_sent += 1;
                    c.pull();
                }
            }
        }
    }

    /// Whether connection `id` has a large reply in progress.
    pub fn reply_in_progress(&self, id: u32) -> bool {
        self.conn(id).is_some_and(|c| c.job.is_some())
    }

    /// Announces flows removed outside the agent (flow-removed to the controllers that asked).
    pub fn flows_removed(&mut self, removed: &[CoreFlowRemoved]) {
        for r in removed.iter().filter(|r| r.notify) {
            let msg = Message::FlowRemoved(FlowRemoved::from_core(r));
            let n = self.broadcast(2, r.reason as u8, &msg);
            self.stats.flow_removed_sent += n as u64;
        }
    }

    /// Sends an asynchronous message of `kind` (0 packet-in, 1 port-status, 2 flow-removed) to
    /// every connection whose role and filters want it. Returns how many got it.
    fn broadcast(&mut self, kind: usize, reason: u8, msg: &Message) -> usize {
        let mut n = 0;
        let passive_async = self.config.passive_async;
        let max = self.config.max_backlog;
        for c in self.conns.iter_mut() {
            if !c.gets_async(passive_async) || !c.session.wants_async(kind, reason) {
                continue;
            }
            // 1.0 has no GROUP_DELETE reason: Open vSwitch reports a delete.
            let version = c.session.version().unwrap_or(OFP10);
            let sent = match msg {
                Message::FlowRemoved(fr) if version < OFP13 && fr.reason > 2 => {
                    let mut fr = fr.clone();
                    fr.reason = 2;
                    c.session.send_async(&Message::FlowRemoved(fr))
                }
                _ => c.session.send_async(msg),
            };
            if let Err(e) = sent {
                log::debug!("openflow: connection {}: cannot encode async: {e}", c.id);
                continue;
            }
            c.pull();
            n += 1;
            if c.backlog() > max {
                log::warn!("openflow: connection {} cannot keep up: closing", c.id);
                c.closing = true;
                self.stats.closed_for_backlog += 1;
            }
        }
        n
    }

    /// Sends the queued packet-ins to the connections that want them, through each one's
    /// rate limiter; first the packet-ins the limiters held back that are due now.
    fn deliver_packet_ins(&mut self, ctx: &mut BridgeCtx<'_>) {
        let passive_async = self.config.passive_async;
        let limit = self.config.packet_in_backlog;
        let now = ctx.now_ms;
        let stats = &mut self.stats;
        for c in self.conns.iter_mut() {
            while let Some(m) = c.pacer.as_mut().and_then(|p| p.next_due(now)) {
                c.send_packet_in(m, limit, stats);
            }
        }
        while let Some(q) = self.packet_ins.pop() {
            let in_port = q.msg.in_port();
            if ctx
                .ports
                .get(in_port)
                .is_some_and(|p| p.config().contains(PortConfig::NO_PACKET_IN))
            {
                stats.packet_ins_port_disabled += 1;
                continue;
            }
            for c in self.conns.iter_mut() {
                if !c.gets_async(passive_async) || !c.session.wants_async(0, q.msg.reason) {
                    continue;
                }
                let mut m = q.msg.clone();
                if q.use_miss_send_len {
                    let max = c.session.switch_config().miss_send_len;
                    if max != 0xffff {
                        m.data.truncate(max as usize);
                    }
                }
                let m = match c.pacer.as_mut() {
                    None => m,
                    Some(p) => match p.offer(m, now) {
                        Offer::Send(m) => m,
                        Offer::Queued => {
                            stats.packet_ins_paced += 1;
                            continue;
                        }
                        Offer::Dropped => {
                            stats.packet_ins_dropped_rate_limited += 1;
                            continue;
                        }
                    },
                };
                c.send_packet_in(m, limit, stats);
            }
        }
    }

    /// Recomputes whether packet-ins are wanted and when a controller was last up.
    fn update_activity(&mut self, now: u64) {
        let passive_async = self.config.passive_async;
        let active = self.conns.iter().any(|c| c.gets_async(passive_async));
        self.packet_ins.active = active;
        self.packet_ins.miss_to_controller = self.wants_packet_in_on_miss();
        if !active {
            self.packet_ins.clear();
        }
        if self.controller_connected() {
            self.last_controller_ms = now;
        }
    }

    /// Announces port changes (add, delete, modify) since the last look, and keeps the
    /// features (datapath id, 1.0 port list) current.
    fn refresh_ports(&mut self, ctx: &mut BridgeCtx<'_>) {
        let n_tables = ctx.pipeline.n_tables();
        if self.info.n_tables != n_tables {
            self.info.n_tables = n_tables;
            for c in self.conns.iter_mut() {
                c.session.info_mut().n_tables = n_tables;
            }
        }
        let generation = ctx.ports.generation();
        if self.ports_generation == Some(generation) {
            return;
        }
        let first = self.ports_generation.is_none();
        self.ports_generation = Some(generation);
        ctx.normal.sync_ports(ctx.ports);
        let now: Vec<PortDesc> = ctx.ports.iter().map(port_desc).collect();
        let mut changes = Vec::new();
        if !first {
            for p in &now {
                match self.ports_seen.iter().find(|o| o.port_no == p.port_no) {
                    None => changes.push((0u8, p.clone())),
                    Some(o) if o != p => changes.push((2, p.clone())),
                    Some(_) => {}
                }
            }
            for o in &self.ports_seen {
                if !now.iter().any(|p| p.port_no == o.port_no) {
                    changes.push((1, o.clone()));
                }
            }
        }
        self.ports_seen = now;
        let dpid = self
            .config
            .datapath_id
            .unwrap_or_else(|| datapath_id_from_ports(ctx.ports));
        self.info.datapath_id = dpid;
        self.info.ports = self.ports_seen.clone();
        for c in self.conns.iter_mut() {
            let info = c.session.info_mut();
            info.datapath_id = dpid;
            info.ports = self.ports_seen.clone();
        }
        for (reason, desc) in changes {
            let msg = Message::PortStatus(PortStatus { reason, desc });
            let n = self.broadcast(1, reason, &msg);
            self.stats.port_status_sent += n as u64;
        }
    }

    /// Tells the agent whether active controllers are configured now (OVSDB
    /// `set-controller` / `del-controller`). As Open vSwitch does when a bridge goes from no
    /// controllers to some or back, the flows, groups and meters are flushed (and a
    /// standalone bridge without controllers gets its NORMAL flow back).
    pub fn set_has_controllers(&mut self, ctx: &mut BridgeCtx<'_>, has: bool) {
        if has == self.config.has_controllers {
            return;
        }
        self.config.has_controllers = has;
        self.flush(ctx);
    }

    /// A new bridge (OVSDB `del-br` then `add-br`, or the running bridge replaced): flows,
    /// groups and meters go, and the bridge starts over as the fail mode and controllers say.
    pub fn reset_bridge(&mut self, ctx: &mut BridgeCtx<'_>) {
        self.flush(ctx);
    }

    /// Changes the fail mode (OVSDB `set-fail-mode`). Leaving standalone ends a fallback in
    /// force; without controllers the flows are flushed, as in Open vSwitch.
    pub fn set_fail_mode(&mut self, ctx: &mut BridgeCtx<'_>, mode: FailMode) {
        if mode == self.config.fail_mode {
            return;
        }
        self.config.fail_mode = mode;
        if mode == FailMode::Secure {
            self.leave_fail_open(ctx);
        }
        if !self.config.has_controllers {
            self.flush(ctx);
        }
    }

    /// Deletes every flow, group and meter (flow-removed sent as for a delete), then installs
    /// what the fail mode wants for a bridge in this state.
    fn flush(&mut self, ctx: &mut BridgeCtx<'_>) {
        let now = ctx.now_ms;
        let mut removed = ctx
            .pipeline
            .flow_mod(
                &CoreFlowMod::delete(switch_core::table::OFPTT_ALL, CoreMatch::ANY),
                now,
            )
            .unwrap_or_default();
        let all_groups = switch_core::group::GroupMod {
            command: switch_core::group::GroupModCommand::Delete,
            group_type: switch_core::group::GroupType::All,
            group_id: switch_core::action::OFPG_ALL,
            buckets: Vec::new(),
        };
        removed.extend(ctx.pipeline.group_mod(&all_groups, now).unwrap_or_default());
        // Cleared in place: the datapath cores' readers stay attached to this table.
        self.meters.clear();
        self.meters.max_meters = self.config.max_meters;
        self.flows_removed(&removed);
        self.fail_open = FailOpen::Off;
        self.last_controller_ms = now;
        self.start(ctx);
    }

    /// First poll: the no-controller standalone bridge gets its visible NORMAL flow, as an
    /// Open vSwitch bridge without controllers does.
    fn start(&mut self, ctx: &mut BridgeCtx<'_>) {
        if self.config.fail_mode == FailMode::Standalone && !self.config.has_controllers {
            let fm = normal_flow(0);
            if let Err(e) = ctx.pipeline.flow_mod(&fm, ctx.now_ms) {
                log::error!("openflow: cannot install the NORMAL flow: {e:?}");
            }
        }
    }

    fn run_fail_mode(&mut self, ctx: &mut BridgeCtx<'_>) {
        if self.config.fail_mode != FailMode::Standalone || !self.config.has_controllers {
            return;
        }
        let now = ctx.now_ms;
        let connected = self.controller_connected();
        match &self.fail_open {
            FailOpen::Off => {
                if !connected
                    && now.saturating_sub(self.last_controller_ms) >= self.config.fail_open_delay_ms
                {
                    log::warn!("openflow: no controller: standalone mode, forwarding with NORMAL");
                    self.fail_open = FailOpen::On { saved: None };
                    self.assert_fail_open(ctx);
                }
            }
            FailOpen::On { .. } => {
                if connected {
                    self.leave_fail_open(ctx);
                } else if ctx.pipeline.generation() != self.fail_open_generation {
                    // In Open vSwitch the fail-open flow is hidden and cannot be deleted; here
                    // it is a flow, so it is put back if a passive client removed it.
                    self.assert_fail_open(ctx);
                }
            }
        }
    }

    /// Makes sure the fail-open flow is in table 0, keeping the priority-0 catch-all entry it
    /// replaces (the controller's table-miss flow) for when a controller is back.
    fn assert_fail_open(&mut self, ctx: &mut BridgeCtx<'_>) {
        let current = ctx
            .pipeline
            .entries(0)
            .find(|(_, e)| e.priority == 0 && e.match_ == CoreMatch::ANY)
            .map(|(_, e)| SavedFlow {
                cookie: e.cookie,
                flags: e.flags,
                idle_timeout: e.idle_timeout,
                hard_timeout: e.hard_timeout,
                instructions: e.instructions.clone(),
            });
        let ours = current
            .as_ref()
            .is_some_and(|c| c.cookie == FAIL_OPEN_COOKIE);
        if !ours {
            if let (Some(c), FailOpen::On { saved }) = (current, &mut self.fail_open) {
                *saved = Some(c);
            }
            let fm = normal_flow(FAIL_OPEN_COOKIE);
            if let Err(e) = ctx.pipeline.flow_mod(&fm, ctx.now_ms) {
                log::error!("openflow: cannot install the fail-open flow: {e:?}");
            }
        }
        self.fail_open_generation = ctx.pipeline.generation();
    }

    fn leave_fail_open(&mut self, ctx: &mut BridgeCtx<'_>) {
        let FailOpen::On { saved } = core::mem::replace(&mut self.fail_open, FailOpen::Off) else {
            return;
        };
        let mut del = CoreFlowMod::delete(0, CoreMatch::ANY)
            .with_command(FlowModCommand::DeleteStrict)
            .with_cookie(FAIL_OPEN_COOKIE);
        del.cookie_mask = u64::MAX;
        del.priority = 0;
        if let Err(e) = ctx.pipeline.flow_mod(&del, ctx.now_ms) {
            log::error!("openflow: cannot remove the fail-open flow: {e:?}");
        }
        // Put back the catch-all entry the fallback replaced, unless the table has a new one.
        let taken = ctx
            .pipeline
            .entries(0)
            .any(|(_, e)| e.priority == 0 && e.match_ == CoreMatch::ANY);
        if let Some(s) = saved.filter(|_| !taken) {
            let restore = CoreFlowMod::add(0, 0, CoreMatch::ANY, s.instructions)
                .with_cookie(s.cookie)
                .with_flags(s.flags)
                .with_timeouts(s.idle_timeout, s.hard_timeout);
            if let Err(e) = ctx.pipeline.flow_mod(&restore, ctx.now_ms) {
                log::warn!("openflow: cannot restore the table-0 catch-all flow: {e:?}");
            }
        }
        log::info!("openflow: controller connected: leaving standalone fallback");
    }

    /// A role request from connection `i`: `Ok(role granted)` or the error.
    fn set_role(&mut self, i: usize, role: u32, generation_id: u64) -> Result<u32, ()> {
        if role == OFPCR_ROLE_MASTER || role == OFPCR_ROLE_SLAVE {
            if let Some(g) = self.role_generation
                && (generation_id.wrapping_sub(g) as i64) < 0
            {
                return Err(());
            }
            self.role_generation = Some(generation_id);
        }
        if role == OFPCR_ROLE_MASTER {
            for (j, c) in self.conns.iter_mut().enumerate() {
                if j != i && c.session.role() == OFPCR_ROLE_MASTER {
                    c.session.set_role(OFPCR_ROLE_SLAVE);
                }
            }
        }
        let c = &mut self.conns[i];
        c.session.set_role(role);
        Ok(c.session.role())
    }
}

/// Open vSwitch's standalone default: `priority=0 actions=NORMAL` in table 0.
pub fn normal_flow(cookie: u64) -> CoreFlowMod {
    CoreFlowMod::add(
        0,
        0,
        CoreMatch::ANY,
        Instructions::apply(alloc::vec![CoreAction::Output {
            port: OFPP_NORMAL,
            max_len: 0,
        }]),
    )
    .with_cookie(cookie)
}

impl StreamHandler for AgentStreams<'_, '_> {
    fn open(&mut self, kind: ConnKind, now_ms: u64) -> Option<u32> {
        self.ctx.now_ms = now_ms;
        self.agent.open(self.ctx, kind)
    }
    fn can_receive(&self, conn: u32) -> bool {
        self.agent.can_receive(conn)
    }
    fn receive(&mut self, conn: u32, data: &[u8], now_ms: u64) {
        self.ctx.now_ms = now_ms;
        self.agent.receive(self.ctx, conn, data)
    }
    fn pending(&self, conn: u32) -> &[u8] {
        self.agent.pending(conn)
    }
    fn consume(&mut self, conn: u32, n: usize) {
        self.agent.consume(conn, n)
    }
    fn wants_close(&self, conn: u32) -> bool {
        self.agent.wants_close(conn)
    }
    fn closed(&mut self, conn: u32, now_ms: u64) {
        self.agent.close(conn, now_ms)
    }
}

/// A multi-core bridge's hub as the agent's [`Cores`]: barriers publish and wait for every
/// core; statistics fold the cores' counts into the authoritative pipeline, and the cores'
/// per-port rx/tx counts into the port table (the counters the NICs' queues do not sum).
impl Cores for switch_core::mcore::Hub {
    fn barrier(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64 {
        self.publish(pipeline, ports)
    }

    fn passed(&self, epoch: u64) -> bool {
        switch_core::mcore::Hub::passed(self, epoch)
    }

    fn request_stats(&mut self, pipeline: &mut Pipeline, ports: &PortTable) -> u64 {
        switch_core::mcore::Hub::request_stats(self, pipeline, ports)
    }

    fn stats_ready(&self, ticket: u64) -> bool {
        switch_core::mcore::Hub::stats_ready(self, ticket)
    }

    fn fold_stats(&mut self, pipeline: &mut Pipeline, ports: &mut PortTable) {
        self.fold_into(pipeline);
        for (no, c) in self.folded_ports() {
            if let Some(p) = ports.get_mut(*no) {
                p.counters.rx_packets = c.rx_packets;
                p.counters.rx_bytes = c.rx_bytes;
                p.counters.tx_packets = c.tx_packets;
                p.counters.tx_bytes = c.tx_bytes;
                p.counters.rx_malformed = c.rx_malformed;
                p.counters.rx_errors = c.rx_errors;
            }
        }
    }
}
