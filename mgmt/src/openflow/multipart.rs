//! Multipart (1.3+) / statistics (1.0) request and reply bodies.

use alloc::string::String;
use alloc::vec::Vec;

use super::action::parse_instructions;
use super::action::{Instruction, emit_actions, emit_instructions, ofp10_actions, parse_actions};
use super::bytes::{Put, Reader, fixed_str};
use super::error::OfpError;
use super::group::{GroupDesc, GroupFeatures, GroupStats, OFPG_ANY};
use super::meter::{MeterConfig, MeterFeatures, MeterStats};
use super::oxm::Match;
use super::port::{self, PortDesc, PortStats};
use super::{OFP10, OFP14};

pub const OFPMP_DESC: u16 = 0;
pub const OFPMP_FLOW: u16 = 1;
pub const OFPMP_AGGREGATE: u16 = 2;
pub const OFPMP_TABLE: u16 = 3;
pub const OFPMP_PORT_STATS: u16 = 4;
pub const OFPMP_QUEUE: u16 = 5;
pub const OFPMP_GROUP: u16 = 6;
pub const OFPMP_GROUP_DESC: u16 = 7;
pub const OFPMP_GROUP_FEATURES: u16 = 8;
pub const OFPMP_METER: u16 = 9;
pub const OFPMP_METER_CONFIG: u16 = 10;
pub const OFPMP_METER_FEATURES: u16 = 11;
pub const OFPMP_TABLE_FEATURES: u16 = 12;
pub const OFPMP_PORT_DESC: u16 = 13;
pub const OFPMP_EXPERIMENTER: u16 = 0xffff;

/// `OFPMPF_REQ_MORE` / `OFPMPF_REPLY_MORE`.
pub const OFPMPF_MORE: u16 = 1;

/// `OFPTT_ALL`.
pub const OFPTT_ALL: u8 = 0xff;
pub const OFPQ_ALL: u32 = 0xffff_ffff;

/// Body of a flow or aggregate statistics request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
}

impl Default for FlowStatsRequest {
    fn default() -> Self {
        FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: port::OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::any(),
        }
    }
}

impl FlowStatsRequest {
    fn parse(version: u8, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        if version == OFP10 {
            let match_ = Match::parse_ofp10(r)?;
            let table_id = r.u8().ok_or(e)?;
            r.skip(1).ok_or(e)?;
            let out_port = port::from_ofp10(r.u16().ok_or(e)?);
            return Ok(FlowStatsRequest {
                table_id,
                out_port,
                match_,
                ..Default::default()
            });
        }
        let table_id = r.u8().ok_or(e)?;
        r.skip(3).ok_or(e)?;
        let out_port = r.u32().ok_or(e)?;
        let out_group = r.u32().ok_or(e)?;
        r.skip(4).ok_or(e)?;
        let cookie = r.u64().ok_or(e)?;
        let cookie_mask = r.u64().ok_or(e)?;
        let match_ = Match::parse_ofp13(r)?;
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie,
            cookie_mask,
            match_,
        })
    }
    fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        if version == OFP10 {
            self.match_.emit_ofp10(out)?;
            out.put_u8(self.table_id);
            out.put_u8(0);
            out.put_u16(port::to_ofp10(self.out_port).ok_or(OfpError::BAD_PORT)?);
            return Ok(());
        }
        out.put_u8(self.table_id);
        out.put_zeros(3);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_u32(0);
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        self.match_.emit_ofp13(out);
        Ok(())
    }
}

/// A multipart request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartRequest {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    PortStats {
        port_no: u32,
    },
    Queue {
        port_no: u32,
        queue_id: u32,
    },
    Group {
        group_id: u32,
    },
    /// 1.5 can ask for one group; earlier versions always mean `OFPG_ALL`.
    GroupDesc {
        group_id: u32,
    },
    GroupFeatures,
    Meter {
        meter_id: u32,
    },
    MeterConfig {
        meter_id: u32,
    },
    MeterFeatures,
    /// Empty = query; non-empty = a request to change the tables (which ironflow refuses).
    TableFeatures(Vec<TableFeatures>),
    PortDesc,
}

impl MultipartRequest {
    pub fn mp_type(&self) -> u16 {
        match self {
            MultipartRequest::Desc => OFPMP_DESC,
            MultipartRequest::Flow(_) => OFPMP_FLOW,
            MultipartRequest::Aggregate(_) => OFPMP_AGGREGATE,
            MultipartRequest::Table => OFPMP_TABLE,
            MultipartRequest::PortStats { .. } => OFPMP_PORT_STATS,
            MultipartRequest::Queue { .. } => OFPMP_QUEUE,
            MultipartRequest::Group { .. } => OFPMP_GROUP,
            MultipartRequest::GroupDesc { .. } => OFPMP_GROUP_DESC,
            MultipartRequest::GroupFeatures => OFPMP_GROUP_FEATURES,
            MultipartRequest::Meter { .. } => OFPMP_METER,
            MultipartRequest::MeterConfig { .. } => OFPMP_METER_CONFIG,
            MultipartRequest::MeterFeatures => OFPMP_METER_FEATURES,
            MultipartRequest::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            MultipartRequest::PortDesc => OFPMP_PORT_DESC,
        }
    }

    /// Parses the body after the multipart header. Unknown or version-foreign types are
    /// `BAD_MULTIPART` (1.0: `BAD_STAT`); experimenter types are `BAD_EXPERIMENTER`.
    pub fn parse(version: u8, mp_type: u16, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        if !type_exists(version, mp_type) {
            return Err(if mp_type == OFPMP_EXPERIMENTER {
                OfpError::BAD_EXPERIMENTER
            } else {
                OfpError::BAD_MULTIPART
            });
        }
        let req = match mp_type {
            OFPMP_DESC => MultipartRequest::Desc,
            OFPMP_FLOW => MultipartRequest::Flow(FlowStatsRequest::parse(version, r)?),
            OFPMP_AGGREGATE => MultipartRequest::Aggregate(FlowStatsRequest::parse(version, r)?),
            OFPMP_TABLE => MultipartRequest::Table,
            OFPMP_PORT_STATS => {
                let port_no = if version == OFP10 {
                    let p = port::from_ofp10(r.u16().ok_or(e)?);
                    r.skip(6).ok_or(e)?;
                    p
                } else {
                    let p = r.u32().ok_or(e)?;
                    r.skip(4).ok_or(e)?;
                    p
                };
                MultipartRequest::PortStats { port_no }
            }
            OFPMP_QUEUE => {
                let port_no = if version == OFP10 {
                    let p = port::from_ofp10(r.u16().ok_or(e)?);
                    r.skip(2).ok_or(e)?;
                    p
                } else {
                    r.u32().ok_or(e)?
                };
                MultipartRequest::Queue {
                    port_no,
                    queue_id: r.u32().ok_or(e)?,
                }
            }
            OFPMP_GROUP | OFPMP_METER | OFPMP_METER_CONFIG => {
                let id = r.u32().ok_or(e)?;
                r.skip(4).ok_or(e)?;
                match mp_type {
                    OFPMP_GROUP => MultipartRequest::Group { group_id: id },
                    OFPMP_METER => MultipartRequest::Meter { meter_id: id },
                    _ => MultipartRequest::MeterConfig { meter_id: id },
                }
            }
            OFPMP_GROUP_DESC => {
                let mut group_id = super::group::OFPG_ALL;
                if version >= super::OFP15 {
                    group_id = r.u32().ok_or(e)?;
                    r.skip(4).ok_or(e)?;
                }
                MultipartRequest::GroupDesc { group_id }
            }
            OFPMP_GROUP_FEATURES => MultipartRequest::GroupFeatures,
            OFPMP_METER_FEATURES => MultipartRequest::MeterFeatures,
            OFPMP_TABLE_FEATURES => {
                let mut v = Vec::new();
                while !r.is_empty() {
                    v.push(TableFeatures::parse(r)?);
                }
                MultipartRequest::TableFeatures(v)
            }
            _ => {
                // 1.5 added a port_no (and padding) to the port-description request.
                if version >= super::OFP15 {
                    r.skip(8).ok_or(e)?;
                }
                MultipartRequest::PortDesc
            }
        };
        if !r.is_empty() && !matches!(req, MultipartRequest::TableFeatures(_)) {
            return Err(e);
        }
        Ok(req)
    }

    pub fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        match self {
            MultipartRequest::Flow(f) | MultipartRequest::Aggregate(f) => f.emit(version, out)?,
            MultipartRequest::PortStats { port_no } => {
                if version == OFP10 {
                    out.put_u16(port::to_ofp10(*port_no).ok_or(OfpError::BAD_PORT)?);
                    out.put_zeros(6);
                } else {
                    out.put_u32(*port_no);
                    out.put_u32(0);
                }
            }
            MultipartRequest::Queue { port_no, queue_id } => {
                if version == OFP10 {
                    out.put_u16(port::to_ofp10(*port_no).ok_or(OfpError::BAD_PORT)?);
                    out.put_u16(0);
                } else {
                    out.put_u32(*port_no);
                }
                out.put_u32(*queue_id);
            }
            MultipartRequest::Group { group_id: id }
            | MultipartRequest::Meter { meter_id: id }
            | MultipartRequest::MeterConfig { meter_id: id } => {
                out.put_u32(*id);
                out.put_u32(0);
            }
            MultipartRequest::TableFeatures(v) => v.iter().for_each(|t| t.emit(out)),
            MultipartRequest::GroupDesc { group_id } if version >= super::OFP15 => {
                out.put_u32(*group_id);
                out.put_u32(0);
            }
            MultipartRequest::PortDesc if version >= super::OFP15 => {
                out.put_u32(port::OFPP_ANY);
                out.put_u32(0);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether multipart/stats type `t` exists in `version`. OpenFlow 1.0 gets port descriptions
/// (type 13) too, as Open vSwitch extends it.
pub fn type_exists(version: u8, t: u16) -> bool {
    if version == OFP10 {
        t <= OFPMP_QUEUE || t == OFPMP_PORT_DESC
    } else {
        t <= OFPMP_PORT_DESC
    }
}

/// Switch description (`ofp_desc`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchDesc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

impl SwitchDesc {
    fn parse(r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        Ok(SwitchDesc {
            mfr_desc: fixed_str(r.bytes(256).ok_or(e)?),
            hw_desc: fixed_str(r.bytes(256).ok_or(e)?),
            sw_desc: fixed_str(r.bytes(256).ok_or(e)?),
            serial_num: fixed_str(r.bytes(32).ok_or(e)?),
            dp_desc: fixed_str(r.bytes(256).ok_or(e)?),
        })
    }
    fn emit(&self, out: &mut Vec<u8>) {
        out.put_str_fixed(&self.mfr_desc, 256);
        out.put_str_fixed(&self.hw_desc, 256);
        out.put_str_fixed(&self.sw_desc, 256);
        out.put_str_fixed(&self.serial_num, 32);
        out.put_str_fixed(&self.dp_desc, 256);
    }
}

/// OpenFlow 1.5 `ofp_stats`: OXS TLVs (class `OFPXSC_OPENFLOW_BASIC`) for the statistics that
/// 1.5 moved out of fixed fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OxsStats {
    pub duration: Option<(u32, u32)>,
    pub idle_time: Option<(u32, u32)>,
    pub flow_count: Option<u32>,
    pub packet_count: Option<u64>,
    pub byte_count: Option<u64>,
}

const OXS_CLASS_BASIC: u32 = 0x8002;

impl OxsStats {
    pub fn parse(r: &mut Reader<'_>) -> Result<OxsStats, OfpError> {
        let e = OfpError::BAD_LEN;
        r.skip(2).ok_or(e)?;
        let len = r.u16().ok_or(e)? as usize;
        if len < 4 {
            return Err(e);
        }
        let mut b = r.sub(len - 4).ok_or(e)?;
        r.skip((8 - len % 8) % 8).ok_or(e)?;
        let mut st = OxsStats::default();
        while !b.is_empty() {
            let h = b.u32().ok_or(e)?;
            let flen = (h & 0xff) as usize;
            let mut v = b.sub(flen).ok_or(e)?;
            if h >> 16 != OXS_CLASS_BASIC {
                continue;
            }
            let pair = |v: &mut Reader<'_>| Some((v.u32()?, v.u32()?));
            match ((h >> 9) & 0x7f, flen) {
                (0, 8) => st.duration = pair(&mut v),
                (1, 8) => st.idle_time = pair(&mut v),
                (3, 4) => st.flow_count = v.u32(),
                (4, 8) => st.packet_count = v.u64(),
                (5, 8) => st.byte_count = v.u64(),
                (0 | 1 | 3 | 4 | 5, _) => return Err(e),
                _ => {}
            }
        }
        Ok(st)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(0);
        let hdr = |out: &mut Vec<u8>, field: u32, len: u32| {
            out.put_u32((OXS_CLASS_BASIC << 16) | (field << 9) | len)
        };
        if let Some((s, n)) = self.duration {
            hdr(out, 0, 8);
            out.put_u32(s);
            out.put_u32(n);
        }
        if let Some((s, n)) = self.idle_time {
            hdr(out, 1, 8);
            out.put_u32(s);
            out.put_u32(n);
        }
        if let Some(c) = self.flow_count {
            hdr(out, 3, 4);
            out.put_u32(c);
        }
        if let Some(c) = self.packet_count {
            hdr(out, 4, 8);
            out.put_u64(c);
        }
        if let Some(c) = self.byte_count {
            hdr(out, 5, 8);
            out.put_u64(c);
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start + 2, len);
        out.pad8_from(start);
    }
}

/// One flow of a flow-statistics reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// 1.3+ (`OFPFF_*`).
    pub flags: u16,
    /// 1.4+.
    pub importance: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    /// For 1.0 this must be a lone `ApplyActions`.
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    fn parse(version: u8, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        if version >= super::OFP15 {
            return FlowStats::parse15(r);
        }
        let len = r.peek_u16(0).ok_or(e)? as usize;
        let min = if version == OFP10 { 88 } else { 56 };
        if len < min {
            return Err(e);
        }
        let mut f = r.sub(len).ok_or(e)?;
        f.skip(2).ok_or(e)?;
        let table_id = f.u8().ok_or(e)?;
        f.skip(1).ok_or(e)?;
        let ofp10_match = if version == OFP10 {
            Some(Match::parse_ofp10(&mut f)?)
        } else {
            None
        };
        let duration_sec = f.u32().ok_or(e)?;
        let duration_nsec = f.u32().ok_or(e)?;
        let priority = f.u16().ok_or(e)?;
        let idle_timeout = f.u16().ok_or(e)?;
        let hard_timeout = f.u16().ok_or(e)?;
        let (mut flags, mut importance) = (0, 0);
        if version == OFP10 {
            f.skip(6).ok_or(e)?;
        } else {
            flags = f.u16().ok_or(e)?;
            if version >= OFP14 {
                importance = f.u16().ok_or(e)?;
                f.skip(2).ok_or(e)?;
            } else {
                f.skip(4).ok_or(e)?;
            }
        }
        let cookie = f.u64().ok_or(e)?;
        let packet_count = f.u64().ok_or(e)?;
        let byte_count = f.u64().ok_or(e)?;
        let (match_, instructions) = match ofp10_match {
            Some(m) => {
                let acts = parse_actions(version, f.rest())?;
                (m, super::message::ofp10_instructions(acts))
            }
            None => {
                let m = Match::parse_ofp13(&mut f)?;
                (m, parse_instructions(version, f.rest())?)
            }
        };
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            importance,
            cookie,
            packet_count,
            byte_count,
            match_,
            instructions,
        })
    }

    /// OpenFlow 1.5 `ofp_flow_desc`: statistics as OXS after the match.
    fn parse15(r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 40 {
            return Err(e);
        }
        let mut f = r.sub(len).ok_or(e)?;
        f.skip(4).ok_or(e)?;
        let table_id = f.u8().ok_or(e)?;
        f.skip(1).ok_or(e)?;
        let priority = f.u16().ok_or(e)?;
        let idle_timeout = f.u16().ok_or(e)?;
        let hard_timeout = f.u16().ok_or(e)?;
        let flags = f.u16().ok_or(e)?;
        let importance = f.u16().ok_or(e)?;
        let cookie = f.u64().ok_or(e)?;
        let match_ = Match::parse_ofp13(&mut f)?;
        let st = OxsStats::parse(&mut f)?;
        let (duration_sec, duration_nsec) = st.duration.unwrap_or((0, 0));
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            importance,
            cookie,
            packet_count: st.packet_count.unwrap_or(0),
            byte_count: st.byte_count.unwrap_or(0),
            match_,
            instructions: parse_instructions(super::OFP15, f.rest())?,
        })
    }

    /// Appends the entry (`ofp_flow_stats`) for `version`.
    pub fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        let start = out.len();
        if version >= super::OFP15 {
            out.put_u32(0);
            out.put_u8(self.table_id);
            out.put_u8(0);
            out.put_u16(self.priority);
            out.put_u16(self.idle_timeout);
            out.put_u16(self.hard_timeout);
            out.put_u16(self.flags);
            out.put_u16(self.importance);
            out.put_u64(self.cookie);
            self.match_.emit_ofp13(out);
            OxsStats {
                duration: Some((self.duration_sec, self.duration_nsec)),
                packet_count: Some(self.packet_count),
                byte_count: Some(self.byte_count),
                ..Default::default()
            }
            .emit(out);
            emit_instructions(version, &self.instructions, out);
            let len = (out.len() - start) as u16;
            out.set_u16(start, len);
            return Ok(());
        }
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_u8(0);
        if version == OFP10 {
            self.match_.emit_ofp10(out)?;
        }
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        if version == OFP10 {
            out.put_zeros(6);
        } else {
            out.put_u16(self.flags);
            if version >= OFP14 {
                out.put_u16(self.importance);
                out.put_u16(0);
            } else {
                out.put_u32(0);
            }
        }
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        if version == OFP10 {
            emit_actions(version, ofp10_actions(&self.instructions)?, out)?;
        } else {
            self.match_.emit_ofp13(out);
            emit_instructions(version, &self.instructions, out);
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start, len);
        Ok(())
    }
}

/// Aggregate statistics reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

/// One table of a table-statistics reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
    /// 1.0 only.
    pub name: String,
    /// 1.0 only (`OFPFW10_*` the table supports).
    pub wildcards: u32,
    /// 1.0 only.
    pub max_entries: u32,
}

impl TableStats {
    fn parse(version: u8, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut t = TableStats {
            table_id: r.u8().ok_or(e)?,
            ..Default::default()
        };
        r.skip(3).ok_or(e)?;
        if version == OFP10 {
            t.name = fixed_str(r.bytes(32).ok_or(e)?);
            t.wildcards = r.u32().ok_or(e)?;
            t.max_entries = r.u32().ok_or(e)?;
        }
        t.active_count = r.u32().ok_or(e)?;
        t.lookup_count = r.u64().ok_or(e)?;
        t.matched_count = r.u64().ok_or(e)?;
        Ok(t)
    }
    fn emit(&self, version: u8, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        out.put_zeros(3);
        if version == OFP10 {
            out.put_str_fixed(&self.name, 32);
            out.put_u32(self.wildcards);
            out.put_u32(self.max_entries);
        }
        out.put_u32(self.active_count);
        out.put_u64(self.lookup_count);
        out.put_u64(self.matched_count);
    }
}

/// One queue of a queue-statistics reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub port_no: u32,
    pub queue_id: u32,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    /// 1.3+.
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl QueueStats {
    fn parse(version: u8, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut q = QueueStats::default();
        let mut props_len = 0;
        if version == OFP10 {
            q.port_no = port::from_ofp10(r.u16().ok_or(e)?);
            r.skip(2).ok_or(e)?;
        } else {
            if version >= OFP14 {
                let len = r.u16().ok_or(e)? as usize;
                if len < 48 {
                    return Err(e);
                }
                props_len = len - 48;
                r.skip(6).ok_or(e)?;
            }
            q.port_no = r.u32().ok_or(e)?;
        }
        q.queue_id = r.u32().ok_or(e)?;
        q.tx_bytes = r.u64().ok_or(e)?;
        q.tx_packets = r.u64().ok_or(e)?;
        q.tx_errors = r.u64().ok_or(e)?;
        if version != OFP10 {
            q.duration_sec = r.u32().ok_or(e)?;
            q.duration_nsec = r.u32().ok_or(e)?;
        }
        r.skip(props_len).ok_or(e)?;
        Ok(q)
    }
    fn emit(&self, version: u8, out: &mut Vec<u8>) {
        if version == OFP10 {
            out.put_u16(port::to_ofp10(self.port_no).unwrap_or(0xffff));
            out.put_u16(0);
        } else {
            if version >= OFP14 {
                out.put_u16(48);
                out.put_zeros(6);
            }
            out.put_u32(self.port_no);
        }
        out.put_u32(self.queue_id);
        out.put_u64(self.tx_bytes);
        out.put_u64(self.tx_packets);
        out.put_u64(self.tx_errors);
        if version != OFP10 {
            out.put_u32(self.duration_sec);
            out.put_u32(self.duration_nsec);
        }
    }
}

/// A table-features property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableFeatureProp {
    /// `OFPTFPT_INSTRUCTIONS` (0) or `_MISS` (1): instruction types.
    Instructions { miss: bool, types: Vec<u16> },
    /// `OFPTFPT_NEXT_TABLES` (2) or `_MISS` (3).
    NextTables { miss: bool, tables: Vec<u8> },
    /// Action types: `WRITE_ACTIONS` (4/5) or `APPLY_ACTIONS` (6/7).
    Actions { prop_type: u16, types: Vec<u16> },
    /// OXM headers: `MATCH` (8), `WILDCARDS` (10), `WRITE_SETFIELD` (12/13), `APPLY_SETFIELD` (14/15).
    Oxm { prop_type: u16, headers: Vec<u32> },
    /// Anything else (experimenter properties), kept as bytes after the 4-byte header.
    Other { prop_type: u16, data: Vec<u8> },
}

/// One table's features (`ofp_table_features`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFeatures {
    pub table_id: u8,
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
    pub properties: Vec<TableFeatureProp>,
}

impl TableFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::TABLE_FEATURES_BAD_LEN;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 64 {
            return Err(e);
        }
        let mut t = r.sub(len).ok_or(e)?;
        t.skip(2).ok_or(e)?;
        let table_id = t.u8().ok_or(e)?;
        t.skip(5).ok_or(e)?;
        let name = fixed_str(t.bytes(32).ok_or(e)?);
        let metadata_match = t.u64().ok_or(e)?;
        let metadata_write = t.u64().ok_or(e)?;
        let config = t.u32().ok_or(e)?;
        let max_entries = t.u32().ok_or(e)?;
        let mut properties = Vec::new();
        while !t.is_empty() {
            let ptype = t.u16().ok_or(e)?;
            let plen = t.u16().ok_or(e)? as usize;
            if plen < 4 {
                return Err(e);
            }
            let mut p = t.sub(plen - 4).ok_or(e)?;
            t.skip((8 - plen % 8) % 8).ok_or(e)?;
            let prop = match ptype {
                0 | 1 => {
                    let mut types = Vec::new();
                    while !p.is_empty() {
                        types.push(p.u16().ok_or(e)?);
                        let l = p.u16().ok_or(e)? as usize;
                        p.skip(l.saturating_sub(4)).ok_or(e)?;
                    }
                    TableFeatureProp::Instructions {
                        miss: ptype == 1,
                        types,
                    }
                }
                2 | 3 => TableFeatureProp::NextTables {
                    miss: ptype == 3,
                    tables: p.rest().to_vec(),
                },
                4..=7 => {
                    let mut types = Vec::new();
                    while !p.is_empty() {
                        types.push(p.u16().ok_or(e)?);
                        let l = p.u16().ok_or(e)? as usize;
                        p.skip(l.saturating_sub(4)).ok_or(e)?;
                    }
                    TableFeatureProp::Actions {
                        prop_type: ptype,
                        types,
                    }
                }
                8 | 10 | 12..=15 => {
                    let mut headers = Vec::new();
                    while !p.is_empty() {
                        headers.push(p.u32().ok_or(e)?);
                    }
                    TableFeatureProp::Oxm {
                        prop_type: ptype,
                        headers,
                    }
                }
                0xfffe | 0xffff => TableFeatureProp::Other {
                    prop_type: ptype,
                    data: p.rest().to_vec(),
                },
                _ => return Err(OfpError::TABLE_FEATURES_BAD_TYPE),
            };
            properties.push(prop);
        }
        Ok(TableFeatures {
            table_id,
            name,
            metadata_match,
            metadata_write,
            config,
            max_entries,
            properties,
        })
    }

    /// Appends the entry (`ofp_table_features`).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_zeros(5);
        out.put_str_fixed(&self.name, 32);
        out.put_u64(self.metadata_match);
        out.put_u64(self.metadata_write);
        out.put_u32(self.config);
        out.put_u32(self.max_entries);
        for p in &self.properties {
            let ps = out.len();
            out.put_u32(0);
            let ptype = match p {
                TableFeatureProp::Instructions { miss, types } => {
                    for t in types {
                        out.put_u16(*t);
                        out.put_u16(4);
                    }
                    *miss as u16
                }
                TableFeatureProp::NextTables { miss, tables } => {
                    out.extend_from_slice(tables);
                    2 + *miss as u16
                }
                TableFeatureProp::Actions { prop_type, types } => {
                    for t in types {
                        out.put_u16(*t);
                        out.put_u16(4);
                    }
                    *prop_type
                }
                TableFeatureProp::Oxm { prop_type, headers } => {
                    headers.iter().for_each(|h| out.put_u32(*h));
                    *prop_type
                }
                TableFeatureProp::Other { prop_type, data } => {
                    out.extend_from_slice(data);
                    *prop_type
                }
            };
            let plen = (out.len() - ps) as u16;
            out.set_u16(ps, ptype);
            out.set_u16(ps + 2, plen);
            out.pad8_from(ps);
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start, len);
    }

    /// What ironflow's tables support: every instruction, the actions of `Action`, every
    /// `Field` for match/wildcards/set-field, and goto to any later table.
    pub fn ironflow(table_id: u8, n_tables: u8, max_entries: u32) -> TableFeatures {
        use super::oxm::{is_maskable, is_settable, oxm_header};
        use switch_core::flow::Field;
        let insts: Vec<u16> = if table_id + 1 < n_tables {
            alloc::vec![1, 2, 3, 4, 5, 6]
        } else {
            alloc::vec![2, 3, 4, 5, 6]
        };
        let next: Vec<u8> = (table_id.saturating_add(1)..n_tables).collect();
        let actions: Vec<u16> = alloc::vec![0, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25];
        let matchable: Vec<u32> = Field::ALL
            .iter()
            .map(|&f| oxm_header(f, is_maskable(f)))
            .collect();
        let wild: Vec<u32> = Field::ALL.iter().map(|&f| oxm_header(f, false)).collect();
        let settable: Vec<u32> = Field::ALL
            .iter()
            .filter(|&&f| is_settable(f))
            .map(|&f| oxm_header(f, false))
            .collect();
        let mut properties = Vec::new();
        for miss in [false, true] {
            let m = miss as u16;
            properties.push(TableFeatureProp::Instructions {
                miss,
                types: insts.clone(),
            });
            properties.push(TableFeatureProp::NextTables {
                miss,
                tables: next.clone(),
            });
            properties.push(TableFeatureProp::Actions {
                prop_type: 4 + m,
                types: actions.clone(),
            });
            properties.push(TableFeatureProp::Actions {
                prop_type: 6 + m,
                types: actions.clone(),
            });
            properties.push(TableFeatureProp::Oxm {
                prop_type: 12 + m,
                headers: settable.clone(),
            });
            properties.push(TableFeatureProp::Oxm {
                prop_type: 14 + m,
                headers: settable.clone(),
            });
        }
        properties.push(TableFeatureProp::Oxm {
            prop_type: 8,
            headers: matchable,
        });
        properties.push(TableFeatureProp::Oxm {
            prop_type: 10,
            headers: wild,
        });
        TableFeatures {
            table_id,
            name: alloc::format!("table{table_id}"),
            metadata_match: u64::MAX,
            metadata_write: u64::MAX,
            config: 0,
            max_entries,
            properties,
        }
    }
}

/// A multipart reply body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartReply {
    Desc(SwitchDesc),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    Queue(Vec<QueueStats>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    GroupFeatures(GroupFeatures),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<MeterConfig>),
    MeterFeatures(MeterFeatures),
    TableFeatures(Vec<TableFeatures>),
    PortDesc(Vec<PortDesc>),
}

impl MultipartReply {
    pub fn mp_type(&self) -> u16 {
        match self {
            MultipartReply::Desc(_) => OFPMP_DESC,
            MultipartReply::Flow(_) => OFPMP_FLOW,
            MultipartReply::Aggregate(_) => OFPMP_AGGREGATE,
            MultipartReply::Table(_) => OFPMP_TABLE,
            MultipartReply::PortStats(_) => OFPMP_PORT_STATS,
            MultipartReply::Queue(_) => OFPMP_QUEUE,
            MultipartReply::Group(_) => OFPMP_GROUP,
            MultipartReply::GroupDesc(_) => OFPMP_GROUP_DESC,
            MultipartReply::GroupFeatures(_) => OFPMP_GROUP_FEATURES,
            MultipartReply::Meter(_) => OFPMP_METER,
            MultipartReply::MeterConfig(_) => OFPMP_METER_CONFIG,
            MultipartReply::MeterFeatures(_) => OFPMP_METER_FEATURES,
            MultipartReply::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            MultipartReply::PortDesc(_) => OFPMP_PORT_DESC,
        }
    }

    pub fn parse(version: u8, mp_type: u16, r: &mut Reader<'_>) -> Result<Self, OfpError> {
        let e = OfpError::BAD_LEN;
        if !type_exists(version, mp_type) {
            return Err(OfpError::BAD_MULTIPART);
        }
        fn list<T>(
            r: &mut Reader<'_>,
            mut f: impl FnMut(&mut Reader<'_>) -> Result<T, OfpError>,
        ) -> Result<Vec<T>, OfpError> {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(f(r)?);
            }
            Ok(v)
        }
        let rep = match mp_type {
            OFPMP_DESC => MultipartReply::Desc(SwitchDesc::parse(r)?),
            OFPMP_FLOW => MultipartReply::Flow(list(r, |r| FlowStats::parse(version, r))?),
            OFPMP_AGGREGATE if version >= super::OFP15 => {
                let st = OxsStats::parse(r)?;
                MultipartReply::Aggregate(AggregateStats {
                    packet_count: st.packet_count.unwrap_or(0),
                    byte_count: st.byte_count.unwrap_or(0),
                    flow_count: st.flow_count.unwrap_or(0),
                })
            }
            OFPMP_AGGREGATE => {
                let a = AggregateStats {
                    packet_count: r.u64().ok_or(e)?,
                    byte_count: r.u64().ok_or(e)?,
                    flow_count: r.u32().ok_or(e)?,
                };
                r.skip(4).ok_or(e)?;
                MultipartReply::Aggregate(a)
            }
            OFPMP_TABLE => MultipartReply::Table(list(r, |r| TableStats::parse(version, r))?),
            OFPMP_PORT_STATS => {
                MultipartReply::PortStats(list(r, |r| PortStats::parse(version, r))?)
            }
            OFPMP_QUEUE => MultipartReply::Queue(list(r, |r| QueueStats::parse(version, r))?),
            OFPMP_GROUP => MultipartReply::Group(list(r, GroupStats::parse)?),
            OFPMP_GROUP_DESC => {
                MultipartReply::GroupDesc(list(r, |r| GroupDesc::parse(version, r))?)
            }
            OFPMP_GROUP_FEATURES => MultipartReply::GroupFeatures(GroupFeatures::parse(r)?),
            OFPMP_METER => MultipartReply::Meter(list(r, MeterStats::parse)?),
            OFPMP_METER_CONFIG => MultipartReply::MeterConfig(list(r, MeterConfig::parse)?),
            OFPMP_METER_FEATURES => {
                MultipartReply::MeterFeatures(MeterFeatures::parse(version, r)?)
            }
            OFPMP_TABLE_FEATURES => MultipartReply::TableFeatures(list(r, TableFeatures::parse)?),
            _ => MultipartReply::PortDesc(list(r, |r| PortDesc::parse(version, r))?),
        };
        if !r.is_empty() {
            return Err(e);
        }
        Ok(rep)
    }

    /// Encodes the body as a list of entries (each entry's bytes), so that long replies can be
    /// split across messages at entry boundaries.
    pub fn emit_entries(&self, version: u8) -> Result<Vec<Vec<u8>>, OfpError> {
        fn each<T>(
            v: &[T],
            mut f: impl FnMut(&T, &mut Vec<u8>) -> Result<(), OfpError>,
        ) -> Result<Vec<Vec<u8>>, OfpError> {
            v.iter()
                .map(|x| {
                    let mut b = Vec::new();
                    f(x, &mut b).map(|_| b)
                })
                .collect()
        }
        let one = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = Vec::new();
            f(&mut b);
            Ok(alloc::vec![b])
        };
        match self {
            MultipartReply::Desc(d) => one(&|b| d.emit(b)),
            MultipartReply::Flow(v) => each(v, |f, b| f.emit(version, b)),
            MultipartReply::Aggregate(a) if version >= super::OFP15 => one(&|b| {
                OxsStats {
                    flow_count: Some(a.flow_count),
                    packet_count: Some(a.packet_count),
                    byte_count: Some(a.byte_count),
                    ..Default::default()
                }
                .emit(b)
            }),
            MultipartReply::Aggregate(a) => one(&|b| {
                b.put_u64(a.packet_count);
                b.put_u64(a.byte_count);
                b.put_u32(a.flow_count);
                b.put_u32(0);
            }),
            MultipartReply::Table(v) => each(v, |t, b| {
                t.emit(version, b);
                Ok(())
            }),
            MultipartReply::PortStats(v) => each(v, |p, b| {
                p.emit(version, b);
                Ok(())
            }),
            MultipartReply::Queue(v) => each(v, |q, b| {
                q.emit(version, b);
                Ok(())
            }),
            MultipartReply::Group(v) => each(v, |g, b| {
                g.emit(b);
                Ok(())
            }),
            MultipartReply::GroupDesc(v) => each(v, |g, b| g.emit(version, b)),
            MultipartReply::GroupFeatures(g) => one(&|b| g.emit(b)),
            MultipartReply::Meter(v) => each(v, |m, b| {
                m.emit(b);
                Ok(())
            }),
            MultipartReply::MeterConfig(v) => each(v, |m, b| {
                m.emit(b);
                Ok(())
            }),
            MultipartReply::MeterFeatures(m) => one(&|b| m.emit(version, b)),
            MultipartReply::TableFeatures(v) => each(v, |t, b| {
                t.emit(b);
                Ok(())
            }),
            MultipartReply::PortDesc(v) => each(v, |p, b| {
                p.emit(version, b);
                Ok(())
            }),
        }
    }
}
