//! The request handlers: what each OpenFlow request does to the bridge, and its answer.

use alloc::vec::Vec;

use switch_core::extract::extract;
use switch_core::flow::FlowKey;
use switch_core::flow_match::Match as CoreMatch;
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{
    Env, FlowMod as CoreFlowMod, FlowModCommand as CoreCommand, OutputSink,
    PacketIn as CorePacketIn,
};
use switch_core::port::{OFPP_CONTROLLER, OFPP_LOCAL, OFPP_MAX, PortConfig, PortNo};
use switch_core::table::{FlowEntry, OFPTT_ALL};

use super::packet_in::PacketInQueue;
use super::ports::{port_desc, port_stats};
use super::reply::Job;
use super::{BridgeCtx, OfAgent, Parked, Wait};
use crate::openflow::OFP10;
use crate::openflow::OfpError;
use crate::openflow::convert::actions_to_core;
use crate::openflow::group::{Bucket, GroupDesc, GroupFeatures, GroupStats, OFPG_ALL};
use crate::openflow::message::{
    FlowMod, FlowModCommand, Message, NO_BUFFER, OFPCR_ROLE_SLAVE, PacketOut, Role, TableMod,
};
use crate::openflow::meter::{MeterMod, OFPM_ALL};
use crate::openflow::multipart::{
    AggregateStats, FlowStats, FlowStatsRequest, MultipartReply, MultipartRequest, TableFeatures,
    TableStats,
};
use crate::openflow::port::{OFPP_ANY, PortMod};
use crate::openflow::session::{Request, SessionEvent};

/// `OFPAT_*` (1.3 numbering) the pipeline executes, as a bitmap.
const SUPPORTED_ACTIONS: u32 =
    1 | (1 << 17) | (1 << 18) | (1 << 21) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);

/// Packet-out outputs go to the kernel's sink; its packet-ins to the agent's queue.
struct PacketOutSink<'a> {
    inner: &'a mut dyn OutputSink,
    queue: &'a mut PacketInQueue,
}

impl OutputSink for PacketOutSink<'_> {
    fn output(&mut self, port: PortNo, queue: Option<u32>, frame: &[u8]) {
        self.inner.output(port, queue, frame);
    }
    fn controller(&mut self, packet_in: &CorePacketIn<'_>) {
        self.queue.push(packet_in);
    }
}

/// Whether a flow entry is selected by a flow-stats request.
pub(super) fn stats_selects(req: &FlowStatsRequest, m: &CoreMatch, e: &FlowEntry) -> bool {
    e.match_.is_covered_by(m)
        && (e.cookie & req.cookie_mask) == (req.cookie & req.cookie_mask)
        && (req.out_port == OFPP_ANY || e.instructions.outputs_to(req.out_port))
        && (req.out_group == crate::openflow::group::OFPG_ANY
            || e.instructions.uses_group(req.out_group))
}

/// Whether request `r` must wait for the datapath cores, and for what: a barrier for every
/// core to switch to the state so far, a statistics request for fresh counters from every core.
fn park_for(ctx: &mut BridgeCtx<'_>, r: &Request) -> Option<Wait> {
    let cores = ctx.cores.as_deref_mut()?;
    match &r.message {
        Message::BarrierRequest => Some(Wait::Epoch(cores.barrier(ctx.pipeline, ctx.ports))),
        Message::MultipartRequest {
            body:
                MultipartRequest::Flow(_)
                | MultipartRequest::Aggregate(_)
                | MultipartRequest::Table
                | MultipartRequest::PortStats { .. }
                | MultipartRequest::Queue { .. }
                | MultipartRequest::Group { .. },
            ..
        } => Some(Wait::Stats(cores.request_stats(ctx.pipeline, ctx.ports))),
        _ => None,
    }
}

impl OfAgent {
    /// Answers connection `i`'s parked request once the cores are ready for it (then the
    /// requests behind it go on).
    pub(super) fn resume_parked(&mut self, ctx: &mut BridgeCtx<'_>, i: usize) {
        let Some(p) = self.conns[i].parked.as_ref() else {
            return;
        };
        let ready = match (ctx.cores.as_deref(), p.wait) {
            (None, _) => true,
            (Some(c), Wait::Epoch(e)) => c.passed(e),
            (Some(c), Wait::Stats(t)) => c.stats_ready(t),
        };
        if !ready {
            return;
        }
        let Some(p) = self.conns[i].parked.take() else {
            return;
        };
        if let (Wait::Stats(_), Some(c)) = (p.wait, ctx.cores.as_deref_mut()) {
            c.fold_stats(ctx.pipeline, ctx.ports);
        }
        self.on_request(ctx, i, p.request);
        if self.conns[i].framer.buffered() > 0 && self.conns[i].job.is_none() {
            self.process(ctx, i);
        }
    }

    pub(super) fn on_event(&mut self, ctx: &mut BridgeCtx<'_>, i: usize, ev: SessionEvent) {
        match ev {
            SessionEvent::Connected { version } => {
                log::info!(
                    "openflow: connection {} speaks version 0x{version:02x}",
                    self.conns[i].id
                );
            }
            SessionEvent::Request(r) => {
                self.stats.requests += 1;
                if let Some(wait) = park_for(ctx, &r) {
                    self.conns[i].parked = Some(Parked { wait, request: r });
                    return;
                }
                self.on_request(ctx, i, r);
            }
            SessionEvent::PeerError { xid, error } => {
                log::debug!(
                    "openflow: connection {}: peer error type {} code {} (xid {xid})",
                    self.conns[i].id,
                    error.type_,
                    error.code
                );
            }
            SessionEvent::Disconnect(why) => {
                log::info!("openflow: connection {}: {why:?}", self.conns[i].id);
                self.conns[i].closing = true;
            }
        }
    }

    fn on_request(&mut self, ctx: &mut BridgeCtx<'_>, i: usize, r: Request) {
        let Request { xid, message, head } = r;
        let result = match message {
            // The replies that grow with the tables: built a piece at a time (`reply`).
            Message::MultipartRequest {
                body:
                    body @ (MultipartRequest::Flow(_)
                    | MultipartRequest::Aggregate(_)
                    | MultipartRequest::TableFeatures(_)),
                ..
            } => {
                let version = self.conns[i].session.version().unwrap_or(OFP10);
                let job = match body {
                    MultipartRequest::Flow(req) => Job::flows(version, xid, head.clone(), req),
                    MultipartRequest::Aggregate(req) => {
                        Job::aggregate(version, xid, head.clone(), req)
                    }
                    MultipartRequest::TableFeatures(v) if v.is_empty() => {
                        Job::table_features(version, xid, head.clone())
                    }
                    _ => Err(OfpError::TABLE_FEATURES_EPERM),
                };
                match job {
                    Ok(job) => {
                        self.conns[i].pull();
                        self.conns[i].job = Some(job);
                        self.run_reply(ctx, i);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            Message::FlowMod(fm) => self.flow_mod(ctx, i, &fm).map(|_| None),
            Message::GroupMod(gm) => gm
                .to_core()
                .and_then(|g| Ok(ctx.pipeline.group_mod(&g, ctx.now_ms)?))
                .map(|removed| {
                    self.flows_removed(&removed);
                    None
                }),
            Message::MeterMod(mm) => self.meter_mod(ctx, &mm).map(|_| None),
            Message::PortMod(pm) => self.port_mod(ctx, i, &pm).map(|_| None),
            Message::TableMod(tm) => table_mod(ctx, &tm).map(|_| None),
            Message::PacketOut(po) => self.packet_out(ctx, &po).map(|_| None),
            Message::MultipartRequest { body, .. } => self
                .multipart(ctx, i, body)
                .map(|body| Some(Message::MultipartReply { flags: 0, body })),
            Message::BarrierRequest => Ok(Some(Message::BarrierReply)),
            Message::RoleRequest(role) => self.role_request(i, role).map(Some),
            Message::QueueGetConfigRequest { port } => {
                if port != OFPP_ANY && !ctx.ports.contains(port) {
                    Err(OfpError::QUEUE_OP_BAD_PORT)
                } else {
                    // No queues are configured.
                    Ok(Some(Message::QueueGetConfigReply {
                        port,
                        queues: Vec::new(),
                    }))
                }
            }
            _ => Err(OfpError::BAD_TYPE),
        };
        let c = &mut self.conns[i];
        match result {
            Ok(Some(m)) => {
                if let Err(e) = c.session.send(xid, &m) {
                    c.session.send_error(e, &head);
                    self.stats.errors_sent += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::debug!("openflow: connection {}: request refused: {e}", c.id);
                c.session.send_error(e, &head);
                self.stats.errors_sent += 1;
            }
        }
        c.pull();
    }

    fn flow_mod(
        &mut self,
        ctx: &mut BridgeCtx<'_>,
        i: usize,
        fm: &FlowMod,
    ) -> Result<(), OfpError> {
        let version = self.conns[i].session.version().unwrap_or(OFP10);
        let adds = matches!(
            fm.command,
            FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
        );
        if version != OFP10 && adds && fm.table_id == OFPTT_ALL {
            return Err(OfpError::FLOW_MOD_BAD_TABLE_ID);
        }
        let mut core = fm.to_core()?;
        if let Some(m) = core.instructions.meter
            && !self.meters.is_usable(m)
        {
            return Err(OfpError::UNKNOWN_METER);
        }
        // OpenFlow 1.0: a modify that selects nothing adds the flow.
        if version == OFP10
            && matches!(
                core.command,
                CoreCommand::Modify | CoreCommand::ModifyStrict
            )
        {
            let strict = core.command == CoreCommand::ModifyStrict;
            let any = ctx.pipeline.entries(core.table_id).any(|(_, e)| {
                let m = if strict {
                    e.priority == core.priority && e.match_ == core.match_
                } else {
                    e.match_.is_covered_by(&core.match_)
                };
                m && (e.cookie & core.cookie_mask) == (core.cookie & core.cookie_mask)
            });
            if !any {
                core.command = CoreCommand::Add;
            }
        }
        let removed = ctx.pipeline.flow_mod(&core, ctx.now_ms)?;
        self.flows_removed(&removed);
        if fm.buffer_id != NO_BUFFER {
            // No packet is ever buffered (n_buffers = 0); the flow is in, the buffer is not.
            return Err(OfpError::BUFFER_UNKNOWN);
        }
        Ok(())
    }

    fn meter_mod(&mut self, ctx: &mut BridgeCtx<'_>, mm: &MeterMod) -> Result<(), OfpError> {
        let deleted = self.meters.apply(mm, ctx.now_ms)?;
        if deleted.is_empty() {
            return Ok(());
        }
        // The flows that use a deleted meter go with it.
        let victims: Vec<(u8, u16, CoreMatch)> = ctx
            .pipeline
            .entries(OFPTT_ALL)
            .filter(|(_, e)| e.instructions.meter.is_some_and(|m| deleted.contains(&m)))
            .map(|(id, e)| (id.table_id, e.priority, e.match_))
            .collect();
        let mut removed = Vec::new();
        for (table, priority, m) in victims {
            let mut del = CoreFlowMod::delete(table, m).with_command(CoreCommand::DeleteStrict);
            del.priority = priority;
            if let Ok(r) = ctx.pipeline.flow_mod(&del, ctx.now_ms) {
                removed.extend(r);
            }
        }
        self.flows_removed(&removed);
        Ok(())
    }

    fn port_mod(
        &mut self,
        ctx: &mut BridgeCtx<'_>,
        i: usize,
        pm: &PortMod,
    ) -> Result<(), OfpError> {
        let version = self.conns[i].session.version().unwrap_or(OFP10);
        let p = ctx
            .ports
            .get(pm.port_no)
            .ok_or(OfpError::PORT_MOD_BAD_PORT)?;
        if p.hw_addr != pm.hw_addr {
            return Err(OfpError::PORT_MOD_BAD_HW_ADDR);
        }
        // 1.0 also has NO_STP, NO_RECV_STP and NO_FLOOD (which Open vSwitch keeps).
        let allowed = if version == OFP10 {
            PortConfig::all()
        } else {
            PortConfig::OF13_MASK
        };
        let config = PortConfig::from_bits_truncate(pm.config) & allowed;
        let mask = PortConfig::from_bits_truncate(pm.mask) & allowed;
        ctx.ports
            .mod_config(pm.port_no, config, mask)
            .map_err(|_| OfpError::PORT_MOD_BAD_PORT)?;
        Ok(())
    }

    fn packet_out(&mut self, ctx: &mut BridgeCtx<'_>, po: &PacketOut) -> Result<(), OfpError> {
        if po.buffer_id != NO_BUFFER {
            return Err(OfpError::BUFFER_UNKNOWN);
        }
        let in_port = po.in_port;
        let in_port_ok = (1..=OFPP_MAX).contains(&in_port)
            || in_port == OFPP_LOCAL
            || in_port == OFPP_CONTROLLER
            || in_port == OFPP_ANY;
        if !in_port_ok {
            return Err(OfpError::BAD_PORT);
        }
        // Not even an Ethernet header: nothing a port could send.
        if po.data.len() < 14 {
            return Err(OfpError::BAD_PACKET);
        }
        let actions = actions_to_core(&po.actions)?;
        let mut key = FlowKey::ZERO;
        extract(&po.data, in_port, &mut key);
        let mut frame = HeapFrame::new(&po.data);
        let mut env = Env {
            ports: ctx.ports,
            normal: Some(&mut *ctx.normal),
            meters: Some(&mut self.meters),
            now_ms: ctx.now_ms,
        };
        let mut sink = PacketOutSink {
            inner: &mut *ctx.sink,
            queue: &mut self.packet_ins,
        };
        ctx.pipeline
            .packet_out(&mut env, &mut key, &mut frame, &actions, &mut sink)?;
        Ok(())
    }

    fn role_request(&mut self, i: usize, r: Role) -> Result<Message, OfpError> {
        if r.role > OFPCR_ROLE_SLAVE {
            return Err(OfpError::BAD_ROLE);
        }
        let role = self
            .set_role(i, r.role, r.generation_id)
            .map_err(|_| OfpError::ROLE_STALE)?;
        Ok(Message::RoleReply(Role {
            role,
            generation_id: self.role_generation.unwrap_or(u64::MAX),
        }))
    }

    fn multipart(
        &mut self,
        ctx: &mut BridgeCtx<'_>,
        i: usize,
        body: MultipartRequest,
    ) -> Result<MultipartReply, OfpError> {
        let version = self.conns[i].session.version().unwrap_or(OFP10);
        let now = ctx.now_ms;
        let pipeline = &*ctx.pipeline;
        Ok(match body {
            MultipartRequest::Flow(req) => {
                let m = req.match_.to_core()?;
                let flows = pipeline
                    .entries(req.table_id)
                    .filter(|(_, e)| stats_selects(&req, &m, e))
                    .map(|(id, e)| FlowStats::from_entry(id.table_id, e, now))
                    .collect();
                MultipartReply::Flow(flows)
            }
            MultipartRequest::Aggregate(req) => {
                let m = req.match_.to_core()?;
                let mut a = AggregateStats::default();
                for (_, e) in pipeline
                    .entries(req.table_id)
                    .filter(|(_, e)| stats_selects(&req, &m, e))
                {
                    a.flow_count += 1;
                    a.packet_count += e.packets.get();
                    a.byte_count += e.bytes.get();
                }
                MultipartReply::Aggregate(a)
            }
            MultipartRequest::Table => {
                let tables = pipeline
                    .table_stats()
                    .iter()
                    .map(|t| {
                        let mut s = TableStats::from_core(t);
                        if version == OFP10 {
                            s.name = alloc::format!("table{}", t.table_id);
                            s.wildcards = 0x003f_ffff;
                            s.max_entries = pipeline
                                .table(t.table_id)
                                .map_or(0, |t| t.max_entries.min(u32::MAX as usize) as u32);
                        }
                        s
                    })
                    .collect();
                MultipartReply::Table(tables)
            }
            MultipartRequest::TableFeatures(v) => {
                if !v.is_empty() {
                    return Err(OfpError::TABLE_FEATURES_EPERM);
                }
                let n = pipeline.n_tables();
                MultipartReply::TableFeatures(
                    pipeline
                        .tables()
                        .iter()
                        .map(|t| {
                            TableFeatures::ironflow(
                                t.id,
                                n,
                                t.max_entries.min(u32::MAX as usize) as u32,
                            )
                        })
                        .collect(),
                )
            }
            MultipartRequest::PortStats { port_no } => MultipartReply::PortStats(
                ctx.ports
                    .iter()
                    .filter(|p| port_no == OFPP_ANY || p.no() == port_no)
                    .map(|p| port_stats(p, now))
                    .collect(),
            ),
            MultipartRequest::PortDesc => {
                MultipartReply::PortDesc(ctx.ports.iter().map(port_desc).collect())
            }
            MultipartRequest::Queue { port_no, .. } => {
                if port_no != OFPP_ANY && !ctx.ports.contains(port_no) {
                    return Err(OfpError::QUEUE_OP_BAD_PORT);
                }
                // No queues are configured.
                MultipartReply::Queue(Vec::new())
            }
            MultipartRequest::Group { group_id } => MultipartReply::Group(
                pipeline
                    .groups()
                    .iter()
                    .filter(|g| group_id == OFPG_ALL || g.id == group_id)
                    .filter_map(|g| pipeline.group_stats(g.id, now))
                    .map(|s| GroupStats {
                        group_id: s.group_id,
                        ref_count: s.ref_count,
                        packet_count: s.packet_count,
                        byte_count: s.byte_count,
                        duration_sec: (s.duration_ms / 1000) as u32,
                        duration_nsec: ((s.duration_ms % 1000) * 1_000_000) as u32,
                        buckets: s.buckets,
                    })
                    .collect(),
            ),
            // OpenFlow 1.5 may name one group; earlier versions ask for all.
            MultipartRequest::GroupDesc { group_id } => MultipartReply::GroupDesc(
                pipeline
                    .groups()
                    .iter()
                    .filter(|g| group_id == OFPG_ALL || g.id == group_id)
                    .map(|g| GroupDesc {
                        group_type: g.group_type as u8,
                        group_id: g.id,
                        buckets: g.buckets.iter().map(Bucket::from_core).collect(),
                    })
                    .collect(),
            ),
            MultipartRequest::GroupFeatures => {
                let max = pipeline.groups().max_groups.min(u32::MAX as usize) as u32;
                MultipartReply::GroupFeatures(GroupFeatures {
                    types: 0xf,
                    // SELECT_WEIGHT | SELECT_LIVENESS | CHAINING
                    capabilities: 1 | 2 | 4,
                    max_groups: [max; 4],
                    actions: [SUPPORTED_ACTIONS; 4],
                })
            }
            MultipartRequest::Meter { meter_id } => {
                self.check_meter(meter_id)?;
                MultipartReply::Meter(
                    self.meters
                        .iter()
                        .filter(|(id, _)| meter_id == OFPM_ALL || *id == meter_id)
                        .map(|(id, m)| {
                            let flows = pipeline
                                .entries(OFPTT_ALL)
                                .filter(|(_, e)| e.instructions.meter == Some(id))
                                .count() as u32;
                            m.stats(id, flows, now)
                        })
                        .collect(),
                )
            }
            MultipartRequest::MeterConfig { meter_id } => {
                self.check_meter(meter_id)?;
                MultipartReply::MeterConfig(
                    self.meters
                        .iter()
                        .filter(|(id, _)| meter_id == OFPM_ALL || *id == meter_id)
                        .map(|(id, m)| m.config(id))
                        .collect(),
                )
            }
            MultipartRequest::MeterFeatures => {
                MultipartReply::MeterFeatures(self.meters.features())
            }
            // Answered by the session itself.
            MultipartRequest::Desc => return Err(OfpError::BAD_MULTIPART),
        })
    }

    fn check_meter(&self, meter_id: u32) -> Result<(), OfpError> {
        if meter_id == OFPM_ALL || self.meters.get(meter_id).is_some() {
            Ok(())
        } else {
            Err(OfpError::UNKNOWN_METER)
        }
    }
}

fn table_mod(ctx: &mut BridgeCtx<'_>, tm: &TableMod) -> Result<(), OfpError> {
    // The table configuration bits (1.1's miss behaviour, 1.4's eviction and vacancy events)
    // have no effect here; a valid table is all that is checked, as a 1.3 switch does.
    if tm.table_id != OFPTT_ALL && tm.table_id >= ctx.pipeline.n_tables() {
        return Err(OfpError::TABLE_MOD_BAD_TABLE);
    }
    Ok(())
}
