//! OpenFlow messages: one version-independent `Message` enum, decoded from and encoded to the
//! wire layout of OpenFlow 1.0, 1.3, 1.4 or 1.5.
//!
//! `Message::decode` takes one whole message (as the `Framer` returns it) and either yields the
//! header and the message or the `OfpError` to answer with. `Message::encode` writes a message
//! for a version; a multipart reply longer than 64 KiB is split into several messages with the
//! MORE flag, so the output may hold more than one message.

use alloc::vec::Vec;

use super::action::{
    Action, Instruction, NX_VENDOR_ID, emit_actions, emit_instructions, ofp10_actions,
    parse_actions, parse_instructions,
};
use super::bytes::{Put, Reader};
use super::error::OfpError;
use super::group::{GroupMod, OFPG_ANY};
use super::header::{HEADER_LEN, Header, MAX_MESSAGE_LEN, OfpHeader};
use super::meter::MeterMod;
use super::multipart::{MultipartReply, MultipartRequest, OFPMPF_MORE, OFPTT_ALL};
use super::oxm::Match;
use super::port::{self, PortDesc, PortMod};
use super::{OFP10, OFP13, OFP14, OFP15, is_supported_version};
use switch_core::flow::Field;

/// Message type numbers of OpenFlow 1.1+ (`enum ofp_type`).
pub mod ofpt {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    /// 1.1-1.3 only (1.4 replaced it with the queue-description multipart).
    pub const QUEUE_GET_CONFIG_REQUEST: u8 = 22;
    pub const QUEUE_GET_CONFIG_REPLY: u8 = 23;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

/// Message type numbers of OpenFlow 1.0 where they differ from 1.1+.
pub mod ofpt10 {
    pub const PORT_MOD: u8 = 15;
    pub const STATS_REQUEST: u8 = 16;
    pub const STATS_REPLY: u8 = 17;
    pub const BARRIER_REQUEST: u8 = 18;
    pub const BARRIER_REPLY: u8 = 19;
    pub const QUEUE_GET_CONFIG_REQUEST: u8 = 20;
    pub const QUEUE_GET_CONFIG_REPLY: u8 = 21;
}

/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// HELLO: the version bitmap element, if the peer sent one (bit `v` set = version `v`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub bitmap: Option<u32>,
}

impl Hello {
    /// The HELLO to send when supporting `bitmap`: like Open vSwitch, the bitmap element is
    /// included unless the versions are exactly 1.0..=max.
    pub fn for_versions(bitmap: u32) -> Hello {
        let contiguous = ((bitmap >> 1).wrapping_add(1)).is_power_of_two();
        Hello {
            bitmap: if contiguous { None } else { Some(bitmap) },
        }
    }
}

/// Picks the version to speak: the highest in both bitmaps if the peer sent one, else the lower
/// of the two header versions, which must then be one we support.
pub fn negotiate(ours: u32, peer_version: u8, peer: &Hello) -> Option<u8> {
    match peer.bitmap {
        Some(theirs) => {
            let common = ours & theirs;
            (common != 0).then(|| 31 - common.leading_zeros() as u8)
        }
        None => {
            let our_max = 31 - ours.leading_zeros() as u8;
            let v = peer_version.min(our_max);
            (v < 32 && ours & (1 << v) != 0).then_some(v)
        }
    }
}

/// An `OFPT_ERROR` as on the wire (type/code in the sending version's numbering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    pub type_: u16,
    pub code: u16,
    pub data: Vec<u8>,
}

impl ErrorMsg {
    /// The error to answer `offending` with in `version`: echoes at most 64 bytes of it.
    pub fn reply_to(err: OfpError, version: u8, offending: &[u8]) -> ErrorMsg {
        let (type_, code) = err.to_wire(version);
        ErrorMsg {
            type_,
            code,
            data: offending[..offending.len().min(64)].to_vec(),
        }
    }
    /// The error in 1.3 numbering.
    pub fn error(&self, version: u8) -> OfpError {
        OfpError::from_wire(version, self.type_, self.code)
    }
}

/// `FEATURES_REPLY`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    /// 1.3+.
    pub auxiliary_id: u8,
    /// `OFPC_*` bits as the negotiated version defines them.
    pub capabilities: u32,
    /// 1.0 only: bitmap of supported `1 << OFPAT10_*`.
    pub actions: u32,
    /// 1.0 only (1.3+ use the port-description multipart).
    pub ports: Vec<PortDesc>,
}

/// `GET_CONFIG_REPLY` / `SET_CONFIG`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*`.
    pub flags: u16,
    pub miss_send_len: u16,
}

/// `PACKET_IN`. For 1.0, `match_` carries only `in_port` and `table_id`/`cookie` are not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    /// `OFPR_*`: NO_MATCH 0, ACTION 1, INVALID_TTL 2 (1.4+: ACTION_SET 3, GROUP 4, PACKET_OUT 5).
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub match_: Match,
    pub data: Vec<u8>,
}

impl PacketIn {
    /// The packet's ingress port from the match (`OFPP_ANY` if absent).
    pub fn in_port(&self) -> u32 {
        self.match_
            .exact(Field::InPort)
            .map_or(port::OFPP_ANY, |v| v as u32)
    }
}

/// `FLOW_REMOVED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    /// `OFPRR_*`: IDLE_TIMEOUT 0, HARD_TIMEOUT 1, DELETE 2, GROUP_DELETE 3.
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    /// 1.3+.
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
}

/// `PORT_STATUS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// `OFPPR_*`: ADD 0, DELETE 1, MODIFY 2.
    pub reason: u8,
    pub desc: PortDesc,
}

/// `PACKET_OUT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

impl FlowModCommand {
    fn from_wire(c: u8) -> Result<Self, OfpError> {
        Ok(match c {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return Err(OfpError::FLOW_MOD_BAD_COMMAND),
        })
    }
    fn to_wire(self) -> u8 {
        self as u8
    }
}

pub const OFPFF_SEND_FLOW_REM: u16 = 1;
pub const OFPFF_CHECK_OVERLAP: u16 = 2;
pub const OFPFF_RESET_COUNTS: u16 = 4;
pub const OFPFF_NO_PKT_COUNTS: u16 = 8;
pub const OFPFF_NO_BYT_COUNTS: u16 = 16;

/// `FLOW_MOD`. From OpenFlow 1.0 the actions arrive as one `ApplyActions` instruction, and
/// `table_id` is `OFPTT_ALL` unless the Nicira flow-mod-table-id extension put one in the
/// command's high byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    /// 1.4+.
    pub importance: u16,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl Default for FlowMod {
    fn default() -> Self {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0x8000,
            buffer_id: NO_BUFFER,
            out_port: port::OFPP_ANY,
            out_group: OFPG_ANY,
            flags: 0,
            importance: 0,
            match_: Match::any(),
            instructions: Vec::new(),
        }
    }
}

/// `TABLE_MOD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableMod {
    pub table_id: u8,
    pub config: u32,
}

/// `ROLE_REQUEST` / `ROLE_REPLY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// `OFPCR_ROLE_*`: NOCHANGE 0, EQUAL 1, MASTER 2, SLAVE 3.
    pub role: u32,
    pub generation_id: u64,
}

pub const OFPCR_ROLE_NOCHANGE: u32 = 0;
pub const OFPCR_ROLE_EQUAL: u32 = 1;
pub const OFPCR_ROLE_MASTER: u32 = 2;
pub const OFPCR_ROLE_SLAVE: u32 = 3;

/// Asynchronous-message filters, indexed like OpenFlow 1.4's `OFPACPT_*` property types:
/// 0/1 packet-in slave/master, 2/3 port-status slave/master, 4/5 flow-removed slave/master.
/// `None` = not present in this message (1.4+ `SET_ASYNC` may carry a subset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncConfig {
    pub masks: [Option<u32>; 6],
}

impl AsyncConfig {
    pub const PACKET_IN_SLAVE: usize = 0;
    pub const PACKET_IN_MASTER: usize = 1;
    pub const PORT_STATUS_SLAVE: usize = 2;
    pub const PORT_STATUS_MASTER: usize = 3;
    pub const FLOW_REMOVED_SLAVE: usize = 4;
    pub const FLOW_REMOVED_MASTER: usize = 5;

    /// The OpenFlow 1.3 defaults (as Open vSwitch applies them).
    pub fn default_masks() -> AsyncConfig {
        AsyncConfig {
            masks: [Some(0), Some(0x7), Some(0x7), Some(0x7), Some(0), Some(0xf)],
        }
    }
}

/// One queue of a `QUEUE_GET_CONFIG_REPLY`. Rates are in 1/10 of a percent of the port's
/// speed; `None` = property absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub queue_id: u32,
    pub min_rate: Option<u16>,
    /// 1.2+ only.
    pub max_rate: Option<u16>,
}

/// Nicira extension messages that `ovs-ofctl` sends to negotiate how it talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NxMessage {
    /// `NXT_SET_FLOW_FORMAT`: 0 = OpenFlow 1.0, 2 = NXM.
    SetFlowFormat(u32),
    /// `NXT_FLOW_MOD_TABLE_ID`: table id in the 1.0 flow-mod command's high byte.
    FlowModTableId(bool),
    /// `NXT_SET_PACKET_IN_FORMAT`: 0 = standard, 1 = NXT_PACKET_IN, 2 = NXT_PACKET_IN2.
    SetPacketInFormat(u32),
    /// `NXT_SET_CONTROLLER_ID`.
    SetControllerId(u16),
}

pub const NXT_SET_FLOW_FORMAT: u32 = 12;
pub const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
pub const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
pub const NXT_SET_CONTROLLER_ID: u32 = 20;

/// One OpenFlow message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    Nicira(NxMessage),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    PortMod(PortMod),
    TableMod(TableMod),
    MultipartRequest {
        flags: u16,
        body: MultipartRequest,
    },
    MultipartReply {
        flags: u16,
        body: MultipartReply,
    },
    BarrierRequest,
    BarrierReply,
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    MeterMod(MeterMod),
    /// OpenFlow 1.0-1.3: the queues of `port` (`OFPP_ANY` = all ports).
    QueueGetConfigRequest {
        port: u32,
    },
    QueueGetConfigReply {
        port: u32,
        queues: Vec<QueueConfig>,
    },
}

fn need(ok: bool) -> Result<(), OfpError> {
    if ok { Ok(()) } else { Err(OfpError::BAD_TYPE) }
}

impl Message {
    /// Decodes one whole message. Errors are what the switch should answer with.
    pub fn decode(msg: &[u8]) -> Result<(Header, Message), OfpError> {
        let h = OfpHeader::new_checked(msg)?;
        let header = Header::parse(msg)?;
        let version = header.version;
        if !is_supported_version(version) {
            return Err(OfpError::BAD_VERSION);
        }
        let mut r = Reader::new(h.body());
        let m = decode_body(version, header.msg_type, &mut r)?;
        Ok((header, m))
    }

    /// Encodes the message for `version` with transaction id `xid`.
    pub fn encode(&self, version: u8, xid: u32) -> Result<Vec<u8>, OfpError> {
        let mut out = Vec::new();
        self.encode_into(version, xid, &mut out)?;
        Ok(out)
    }

    /// Appends the encoded message (or messages, for a split multipart reply) to `out`.
    /// On error nothing is appended.
    pub fn encode_into(&self, version: u8, xid: u32, out: &mut Vec<u8>) -> Result<(), OfpError> {
        if !is_supported_version(version) {
            return Err(OfpError::BAD_VERSION);
        }
        if let Message::MultipartReply { flags, body } = self {
            return encode_multipart_reply(version, xid, *flags, body, out);
        }
        let start = out.len();
        out.put_zeros(HEADER_LEN);
        let r = encode_body(self, version, out);
        let t = match r {
            Ok(t) => t,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let len = out.len() - start;
        if len > MAX_MESSAGE_LEN {
            out.truncate(start);
            return Err(OfpError::BAD_LEN);
        }
        Header {
            version,
            msg_type: t,
            length: len as u16,
            xid,
        }
        .emit(&mut out[start..start + HEADER_LEN]);
        Ok(())
    }
}

fn decode_body(version: u8, t: u8, r: &mut Reader<'_>) -> Result<Message, OfpError> {
    let e = OfpError::BAD_LEN;
    let v10 = version == OFP10;
    let done = |r: &Reader<'_>, m: Message| if r.is_empty() { Ok(m) } else { Err(e) };
    // Types whose number differs in 1.0.
    if v10 {
        match t {
            ofpt10::PORT_MOD => return Ok(Message::PortMod(PortMod::parse(version, r)?)),
            ofpt10::STATS_REQUEST => return decode_multipart_request(version, r),
            ofpt10::STATS_REPLY => return decode_multipart_reply(version, r),
            ofpt10::BARRIER_REQUEST => return done(r, Message::BarrierRequest),
            ofpt10::BARRIER_REPLY => return done(r, Message::BarrierReply),
            ofpt10::QUEUE_GET_CONFIG_REQUEST => {
                let port = port::from_ofp10(r.u16().ok_or(e)?);
                r.skip(2).ok_or(e)?;
                return done(r, Message::QueueGetConfigRequest { port });
            }
            ofpt10::QUEUE_GET_CONFIG_REPLY => return decode_queue_reply(version, r),
            ofpt::HELLO..=ofpt::FLOW_MOD => {}
            _ => return Err(OfpError::BAD_TYPE),
        }
    }
    Ok(match t {
        ofpt::HELLO => Message::Hello(decode_hello(r)),
        ofpt::ERROR => {
            let type_ = r.u16().ok_or(e)?;
            let code = r.u16().ok_or(e)?;
            Message::Error(ErrorMsg {
                type_,
                code,
                data: r.rest().to_vec(),
            })
        }
        ofpt::ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
        ofpt::ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
        ofpt::EXPERIMENTER => decode_experimenter(r)?,
        ofpt::FEATURES_REQUEST => done(r, Message::FeaturesRequest)?,
        ofpt::FEATURES_REPLY => {
            let mut f = SwitchFeatures {
                datapath_id: r.u64().ok_or(e)?,
                n_buffers: r.u32().ok_or(e)?,
                n_tables: r.u8().ok_or(e)?,
                ..Default::default()
            };
            if v10 {
                r.skip(3).ok_or(e)?;
                f.capabilities = r.u32().ok_or(e)?;
                f.actions = r.u32().ok_or(e)?;
                while !r.is_empty() {
                    f.ports.push(PortDesc::parse(version, r)?);
                }
            } else {
                f.auxiliary_id = r.u8().ok_or(e)?;
                r.skip(2).ok_or(e)?;
                f.capabilities = r.u32().ok_or(e)?;
                r.skip(4).ok_or(e)?;
            }
            done(r, Message::FeaturesReply(f))?
        }
        ofpt::GET_CONFIG_REQUEST => done(r, Message::GetConfigRequest)?,
        ofpt::GET_CONFIG_REPLY | ofpt::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16().ok_or(e)?,
                miss_send_len: r.u16().ok_or(e)?,
            };
            let m = if t == ofpt::SET_CONFIG {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            };
            done(r, m)?
        }
        ofpt::PACKET_IN => Message::PacketIn(decode_packet_in(version, r)?),
        ofpt::FLOW_REMOVED => Message::FlowRemoved(decode_flow_removed(version, r)?),
        ofpt::PORT_STATUS => {
            let reason = r.u8().ok_or(e)?;
            r.skip(7).ok_or(e)?;
            let desc = PortDesc::parse(version, r)?;
            done(r, Message::PortStatus(PortStatus { reason, desc }))?
        }
        ofpt::PACKET_OUT => Message::PacketOut(decode_packet_out(version, r)?),
        ofpt::FLOW_MOD => Message::FlowMod(decode_flow_mod(version, r)?),
        ofpt::GROUP_MOD => Message::GroupMod(GroupMod::parse(version, r)?),
        ofpt::PORT_MOD => {
            let pm = PortMod::parse(version, r)?;
            done(r, Message::PortMod(pm))?
        }
        ofpt::TABLE_MOD => {
            let table_id = r.u8().ok_or(e)?;
            r.skip(3).ok_or(e)?;
            let config = r.u32().ok_or(e)?;
            // 1.4+ properties (eviction, vacancy) are accepted and ignored.
            Message::TableMod(TableMod { table_id, config })
        }
        ofpt::MULTIPART_REQUEST => decode_multipart_request(version, r)?,
        ofpt::MULTIPART_REPLY => decode_multipart_reply(version, r)?,
        ofpt::BARRIER_REQUEST => done(r, Message::BarrierRequest)?,
        ofpt::BARRIER_REPLY => done(r, Message::BarrierReply)?,
        ofpt::ROLE_REQUEST | ofpt::ROLE_REPLY => {
            let role = r.u32().ok_or(e)?;
            r.skip(4).ok_or(e)?;
            let generation_id = r.u64().ok_or(e)?;
            if role > OFPCR_ROLE_SLAVE {
                return Err(OfpError::BAD_ROLE);
            }
            let role = Role {
                role,
                generation_id,
            };
            let m = if t == ofpt::ROLE_REQUEST {
                Message::RoleRequest(role)
            } else {
                Message::RoleReply(role)
            };
            done(r, m)?
        }
        ofpt::GET_ASYNC_REQUEST => done(r, Message::GetAsyncRequest)?,
        ofpt::GET_ASYNC_REPLY | ofpt::SET_ASYNC => {
            let a = decode_async(version, r)?;
            if t == ofpt::SET_ASYNC {
                Message::SetAsync(a)
            } else {
                Message::GetAsyncReply(a)
            }
        }
        ofpt::METER_MOD => Message::MeterMod(MeterMod::parse(r)?),
        ofpt::QUEUE_GET_CONFIG_REQUEST if version < OFP14 => {
            let port = r.u32().ok_or(e)?;
            r.skip(4).ok_or(e)?;
            done(r, Message::QueueGetConfigRequest { port })?
        }
        ofpt::QUEUE_GET_CONFIG_REPLY if version < OFP14 => decode_queue_reply(version, r)?,
        _ => return Err(OfpError::BAD_TYPE),
    })
}

fn decode_queue_reply(version: u8, r: &mut Reader<'_>) -> Result<Message, OfpError> {
    let e = OfpError::BAD_LEN;
    let v10 = version == OFP10;
    let port = if v10 {
        let p = port::from_ofp10(r.u16().ok_or(e)?);
        r.skip(6).ok_or(e)?;
        p
    } else {
        let p = r.u32().ok_or(e)?;
        r.skip(4).ok_or(e)?;
        p
    };
    let mut queues = Vec::new();
    while !r.is_empty() {
        let queue_id = r.u32().ok_or(e)?;
        let hdr = if v10 { 8 } else { 16 };
        if !v10 {
            r.skip(4).ok_or(e)?; // port
        }
        let len = r.u16().ok_or(e)? as usize;
        r.skip(if v10 { 2 } else { 6 }).ok_or(e)?;
        if len < hdr {
            return Err(e);
        }
        let mut props = r.sub(len - hdr).ok_or(e)?;
        let mut q = QueueConfig {
            queue_id,
            ..Default::default()
        };
        while !props.is_empty() {
            let ptype = props.u16().ok_or(e)?;
            let plen = props.u16().ok_or(e)? as usize;
            if plen < 8 {
                return Err(e);
            }
            let mut p = props.sub(plen - 4).ok_or(e)?;
            p.skip(4).ok_or(e)?;
            match ptype {
                1 => q.min_rate = Some(p.u16().ok_or(e)?),
                // OFPQT_MAX_RATE is OpenFlow 1.2+; in 1.0 type 2 is unknown and skipped.
                2 if !v10 => q.max_rate = Some(p.u16().ok_or(e)?),
                _ => {}
            }
        }
        queues.push(q);
    }
    Ok(Message::QueueGetConfigReply { port, queues })
}

fn decode_hello(r: &mut Reader<'_>) -> Hello {
    // A malformed element list is ignored (the header version still counts), as OVS does.
    let mut hello = Hello::default();
    while r.remaining() >= 4 {
        let (Some(et), Some(len)) = (r.u16(), r.u16()) else {
            break;
        };
        let len = len as usize;
        if len < 4 {
            break;
        }
        let Some(mut body) = r.sub(len - 4) else {
            break;
        };
        let _ = r.skip(((8 - len % 8) % 8).min(r.remaining()));
        if et == 1 {
            hello.bitmap = Some(body.u32().unwrap_or(0));
        }
    }
    hello
}

fn decode_experimenter(r: &mut Reader<'_>) -> Result<Message, OfpError> {
    let e = OfpError::BAD_LEN;
    let vendor = r.u32().ok_or(e)?;
    if vendor != NX_VENDOR_ID {
        return Err(OfpError::BAD_EXPERIMENTER);
    }
    let subtype = r.u32().ok_or(e)?;
    let nx = match subtype {
        NXT_SET_FLOW_FORMAT => NxMessage::SetFlowFormat(r.u32().ok_or(e)?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = r.u8().ok_or(e)?;
            r.skip(7).ok_or(e)?;
            NxMessage::FlowModTableId(set != 0)
        }
        NXT_SET_PACKET_IN_FORMAT => NxMessage::SetPacketInFormat(r.u32().ok_or(e)?),
        NXT_SET_CONTROLLER_ID => {
            r.skip(6).ok_or(e)?;
            NxMessage::SetControllerId(r.u16().ok_or(e)?)
        }
        _ => return Err(OfpError::BAD_EXP_TYPE),
    };
    if !r.is_empty() {
        return Err(e);
    }
    Ok(Message::Nicira(nx))
}

fn decode_packet_in(version: u8, r: &mut Reader<'_>) -> Result<PacketIn, OfpError> {
    let e = OfpError::BAD_LEN;
    let buffer_id = r.u32().ok_or(e)?;
    let total_len = r.u16().ok_or(e)?;
    if version == OFP10 {
        let in_port = port::from_ofp10(r.u16().ok_or(e)?);
        let reason = r.u8().ok_or(e)?;
        r.skip(1).ok_or(e)?;
        return Ok(PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id: 0,
            cookie: 0,
            match_: Match::any().with(super::oxm::OxmField::exact(Field::InPort, in_port as u128)),
            data: r.rest().to_vec(),
        });
    }
    let reason = r.u8().ok_or(e)?;
    let table_id = r.u8().ok_or(e)?;
    let cookie = r.u64().ok_or(e)?;
    let match_ = Match::parse_ofp13(r)?;
    r.skip(2).ok_or(e)?;
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        match_,
        data: r.rest().to_vec(),
    })
}

fn decode_flow_removed(version: u8, r: &mut Reader<'_>) -> Result<FlowRemoved, OfpError> {
    let e = OfpError::BAD_LEN;
    if version == OFP10 {
        let match_ = Match::parse_ofp10(r)?;
        let cookie = r.u64().ok_or(e)?;
        let priority = r.u16().ok_or(e)?;
        let reason = r.u8().ok_or(e)?;
        r.skip(1).ok_or(e)?;
        let duration_sec = r.u32().ok_or(e)?;
        let duration_nsec = r.u32().ok_or(e)?;
        let idle_timeout = r.u16().ok_or(e)?;
        r.skip(2).ok_or(e)?;
        let fr = FlowRemoved {
            cookie,
            priority,
            reason,
            table_id: 0,
            duration_sec,
            duration_nsec,
            idle_timeout,
            hard_timeout: 0,
            packet_count: r.u64().ok_or(e)?,
            byte_count: r.u64().ok_or(e)?,
            match_,
        };
        return if r.is_empty() { Ok(fr) } else { Err(e) };
    }
    if version >= OFP15 {
        let table_id = r.u8().ok_or(e)?;
        let reason = r.u8().ok_or(e)?;
        let priority = r.u16().ok_or(e)?;
        let idle_timeout = r.u16().ok_or(e)?;
        let hard_timeout = r.u16().ok_or(e)?;
        let cookie = r.u64().ok_or(e)?;
        let match_ = Match::parse_ofp13(r)?;
        let st = super::multipart::OxsStats::parse(r)?;
        let (duration_sec, duration_nsec) = st.duration.unwrap_or((0, 0));
        return Ok(FlowRemoved {
            cookie,
            priority,
            reason,
            table_id,
            duration_sec,
            duration_nsec,
            idle_timeout,
            hard_timeout,
            packet_count: st.packet_count.unwrap_or(0),
            byte_count: st.byte_count.unwrap_or(0),
            match_,
        });
    }
    let cookie = r.u64().ok_or(e)?;
    let priority = r.u16().ok_or(e)?;
    let reason = r.u8().ok_or(e)?;
    let table_id = r.u8().ok_or(e)?;
    let duration_sec = r.u32().ok_or(e)?;
    let duration_nsec = r.u32().ok_or(e)?;
    let idle_timeout = r.u16().ok_or(e)?;
    let hard_timeout = r.u16().ok_or(e)?;
    let packet_count = r.u64().ok_or(e)?;
    let byte_count = r.u64().ok_or(e)?;
    let match_ = Match::parse_ofp13(r)?;
    Ok(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout,
        packet_count,
        byte_count,
        match_,
    })
}

fn check_packet_out_in_port(p: u32) -> Result<u32, OfpError> {
    if p < port::OFPP_MAX
        || p == port::OFPP_LOCAL
        || p == port::OFPP_CONTROLLER
        || p == port::OFPP_ANY
    {
        Ok(p)
    } else {
        Err(OfpError::BAD_PORT)
    }
}

fn decode_packet_out(version: u8, r: &mut Reader<'_>) -> Result<PacketOut, OfpError> {
    let e = OfpError::BAD_LEN;
    let buffer_id = r.u32().ok_or(e)?;
    let (in_port, actions_len) = if version == OFP10 {
        (port::from_ofp10(r.u16().ok_or(e)?), r.u16().ok_or(e)?)
    } else if version >= OFP15 {
        let al = r.u16().ok_or(e)?;
        r.skip(2).ok_or(e)?;
        let m = Match::parse_ofp13(r)?;
        let p = m.exact(Field::InPort).map_or(port::OFPP_ANY, |v| v as u32);
        (p, al)
    } else {
        let p = r.u32().ok_or(e)?;
        let al = r.u16().ok_or(e)?;
        r.skip(6).ok_or(e)?;
        (p, al)
    };
    let in_port = check_packet_out_in_port(in_port)?;
    let acts = r.bytes(actions_len as usize).ok_or(e)?;
    let actions = parse_actions(version, acts)?;
    let data = r.rest().to_vec();
    if buffer_id == NO_BUFFER && data.is_empty() {
        return Err(OfpError::BAD_PACKET);
    }
    Ok(PacketOut {
        buffer_id,
        in_port,
        actions,
        data,
    })
}

fn decode_flow_mod(version: u8, r: &mut Reader<'_>) -> Result<FlowMod, OfpError> {
    let e = OfpError::BAD_LEN;
    if version == OFP10 {
        let match_ = Match::parse_ofp10(r)?;
        let cookie = r.u64().ok_or(e)?;
        let cmd = r.u16().ok_or(e)?;
        let command = FlowModCommand::from_wire(cmd as u8)?;
        let table_id = match (cmd >> 8) as u8 {
            0 => OFPTT_ALL,
            t => t,
        };
        let idle_timeout = r.u16().ok_or(e)?;
        let hard_timeout = r.u16().ok_or(e)?;
        let priority = r.u16().ok_or(e)?;
        let buffer_id = r.u32().ok_or(e)?;
        let out_port = port::from_ofp10(r.u16().ok_or(e)?);
        let flags = r.u16().ok_or(e)?;
        if flags & 4 != 0 {
            // OFPFF_EMERG: emergency flows are not supported (1.0 "unsupported").
            return Err(OfpError::FLOW_MOD_UNKNOWN);
        }
        if flags & !3 != 0 {
            return Err(OfpError::BAD_FLAGS);
        }
        let actions = parse_actions(version, r.rest())?;
        return Ok(FlowMod {
            cookie,
            cookie_mask: 0,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group: OFPG_ANY,
            flags,
            importance: 0,
            match_,
            instructions: ofp10_instructions(actions),
        });
    }
    let cookie = r.u64().ok_or(e)?;
    let cookie_mask = r.u64().ok_or(e)?;
    let table_id = r.u8().ok_or(e)?;
    let command = FlowModCommand::from_wire(r.u8().ok_or(e)?)?;
    let idle_timeout = r.u16().ok_or(e)?;
    let hard_timeout = r.u16().ok_or(e)?;
    let priority = r.u16().ok_or(e)?;
    let buffer_id = r.u32().ok_or(e)?;
    let out_port = r.u32().ok_or(e)?;
    let out_group = r.u32().ok_or(e)?;
    let flags = r.u16().ok_or(e)?;
    let importance = r.u16().ok_or(e)?;
    let importance = if version >= OFP14 { importance } else { 0 };
    let valid_flags = if version >= OFP14 { 0x3f } else { 0x1f };
    if flags & !valid_flags != 0 {
        return Err(OfpError::BAD_FLAGS);
    }
    if table_id == OFPTT_ALL && matches!(command, FlowModCommand::Add) {
        return Err(OfpError::FLOW_MOD_BAD_TABLE_ID);
    }
    let match_ = Match::parse_ofp13(r)?;
    let instructions = parse_instructions(version, r.rest())?;
    Ok(FlowMod {
        cookie,
        cookie_mask,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group,
        flags,
        importance,
        match_,
        instructions,
    })
}

/// 1.0's action list as instructions: none for an empty list (drop).
pub fn ofp10_instructions(actions: Vec<Action>) -> Vec<Instruction> {
    if actions.is_empty() {
        Vec::new()
    } else {
        alloc::vec![Instruction::ApplyActions(actions)]
    }
}

fn decode_async(version: u8, r: &mut Reader<'_>) -> Result<AsyncConfig, OfpError> {
    let e = OfpError::BAD_LEN;
    let mut a = AsyncConfig::default();
    if version < OFP14 {
        // packet_in_mask[2], port_status_mask[2], flow_removed_mask[2]; [0] = master/equal.
        for pair in 0..3 {
            a.masks[2 * pair + 1] = Some(r.u32().ok_or(e)?);
            a.masks[2 * pair] = Some(r.u32().ok_or(e)?);
        }
        return if r.is_empty() { Ok(a) } else { Err(e) };
    }
    while !r.is_empty() {
        let ptype = r.u16().ok_or(e)?;
        let plen = r.u16().ok_or(e)? as usize;
        if plen < 4 {
            return Err(OfpError::BAD_PROPERTY_LEN);
        }
        let mut body = r.sub(plen - 4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
        r.skip((8 - plen % 8) % 8).ok_or(e)?;
        match ptype {
            0..=5 => {
                if plen != 8 {
                    return Err(OfpError::BAD_PROPERTY_LEN);
                }
                a.masks[ptype as usize] = Some(body.u32().ok_or(e)?);
            }
            // Role-status, table-status, request-forward, 1.5 additions: accepted, not kept.
            6..=15 => {}
            0xfffe | 0xffff => return Err(OfpError::BAD_PROPERTY_TYPE),
            _ => return Err(OfpError::BAD_PROPERTY_TYPE),
        }
    }
    Ok(a)
}

fn decode_multipart_request(version: u8, r: &mut Reader<'_>) -> Result<Message, OfpError> {
    let e = OfpError::BAD_LEN;
    let mp_type = r.u16().ok_or(e)?;
    let flags = r.u16().ok_or(e)?;
    if version != OFP10 {
        r.skip(4).ok_or(e)?;
    }
    let body = MultipartRequest::parse(version, mp_type, r)?;
    Ok(Message::MultipartRequest { flags, body })
}

fn decode_multipart_reply(version: u8, r: &mut Reader<'_>) -> Result<Message, OfpError> {
    let e = OfpError::BAD_LEN;
    let mp_type = r.u16().ok_or(e)?;
    let flags = r.u16().ok_or(e)?;
    if version != OFP10 {
        r.skip(4).ok_or(e)?;
    }
    let body = MultipartReply::parse(version, mp_type, r)?;
    Ok(Message::MultipartReply { flags, body })
}

/// Writes the body of `m` after the (reserved) header and returns the message type.
fn encode_body(m: &Message, version: u8, out: &mut Vec<u8>) -> Result<u8, OfpError> {
    let v10 = version == OFP10;
    let v13 = version >= OFP13;
    Ok(match m {
        Message::Hello(h) => {
            if let Some(bm) = h.bitmap {
                out.put_u16(1);
                out.put_u16(8);
                out.put_u32(bm);
            }
            ofpt::HELLO
        }
        Message::Error(err) => {
            out.put_u16(err.type_);
            out.put_u16(err.code);
            out.extend_from_slice(&err.data);
            ofpt::ERROR
        }
        Message::EchoRequest(d) => {
            out.extend_from_slice(d);
            ofpt::ECHO_REQUEST
        }
        Message::EchoReply(d) => {
            out.extend_from_slice(d);
            ofpt::ECHO_REPLY
        }
        Message::Nicira(nx) => {
            out.put_u32(NX_VENDOR_ID);
            match *nx {
                NxMessage::SetFlowFormat(f) => {
                    out.put_u32(NXT_SET_FLOW_FORMAT);
                    out.put_u32(f);
                }
                NxMessage::FlowModTableId(set) => {
                    out.put_u32(NXT_FLOW_MOD_TABLE_ID);
                    out.put_u8(set as u8);
                    out.put_zeros(7);
                }
                NxMessage::SetPacketInFormat(f) => {
                    out.put_u32(NXT_SET_PACKET_IN_FORMAT);
                    out.put_u32(f);
                }
                NxMessage::SetControllerId(id) => {
                    out.put_u32(NXT_SET_CONTROLLER_ID);
                    out.put_zeros(6);
                    out.put_u16(id);
                }
            }
            ofpt::EXPERIMENTER
        }
        Message::FeaturesRequest => ofpt::FEATURES_REQUEST,
        Message::FeaturesReply(f) => {
            out.put_u64(f.datapath_id);
            out.put_u32(f.n_buffers);
            out.put_u8(f.n_tables);
            if v10 {
                out.put_zeros(3);
                out.put_u32(f.capabilities);
                out.put_u32(f.actions);
                for p in &f.ports {
                    p.emit(version, out);
                }
            } else {
                out.put_u8(f.auxiliary_id);
                out.put_u16(0);
                out.put_u32(f.capabilities);
                out.put_u32(0);
            }
            ofpt::FEATURES_REPLY
        }
        Message::GetConfigRequest => ofpt::GET_CONFIG_REQUEST,
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            out.put_u16(c.flags);
            out.put_u16(c.miss_send_len);
            if matches!(m, Message::SetConfig(_)) {
                ofpt::SET_CONFIG
            } else {
                ofpt::GET_CONFIG_REPLY
            }
        }
        Message::PacketIn(p) => {
            out.put_u32(p.buffer_id);
            out.put_u16(p.total_len);
            if v10 {
                out.put_u16(port::to_ofp10(p.in_port()).ok_or(OfpError::BAD_PORT)?);
                out.put_u8(p.reason);
                out.put_u8(0);
            } else {
                out.put_u8(p.reason);
                out.put_u8(p.table_id);
                out.put_u64(p.cookie);
                p.match_.emit_ofp13(out);
                out.put_u16(0);
            }
            out.extend_from_slice(&p.data);
            ofpt::PACKET_IN
        }
        Message::FlowRemoved(f) => {
            if v10 {
                f.match_.emit_ofp10(out)?;
                out.put_u64(f.cookie);
                out.put_u16(f.priority);
                out.put_u8(f.reason);
                out.put_u8(0);
                out.put_u32(f.duration_sec);
                out.put_u32(f.duration_nsec);
                out.put_u16(f.idle_timeout);
                out.put_u16(0);
            } else if version >= OFP15 {
                out.put_u8(f.table_id);
                out.put_u8(f.reason);
                out.put_u16(f.priority);
                out.put_u16(f.idle_timeout);
                out.put_u16(f.hard_timeout);
                out.put_u64(f.cookie);
                f.match_.emit_ofp13(out);
                super::multipart::OxsStats {
                    duration: Some((f.duration_sec, f.duration_nsec)),
                    packet_count: Some(f.packet_count),
                    byte_count: Some(f.byte_count),
                    ..Default::default()
                }
                .emit(out);
                return Ok(ofpt::FLOW_REMOVED);
            } else {
                out.put_u64(f.cookie);
                out.put_u16(f.priority);
                out.put_u8(f.reason);
                out.put_u8(f.table_id);
                out.put_u32(f.duration_sec);
                out.put_u32(f.duration_nsec);
                out.put_u16(f.idle_timeout);
                out.put_u16(f.hard_timeout);
            }
            out.put_u64(f.packet_count);
            out.put_u64(f.byte_count);
            if !v10 {
                f.match_.emit_ofp13(out);
            }
            ofpt::FLOW_REMOVED
        }
        Message::PortStatus(p) => {
            out.put_u8(p.reason);
            out.put_zeros(7);
            p.desc.emit(version, out);
            ofpt::PORT_STATUS
        }
        Message::PacketOut(p) => {
            out.put_u32(p.buffer_id);
            let mut acts = Vec::new();
            emit_actions(version, &p.actions, &mut acts)?;
            if v10 {
                out.put_u16(port::to_ofp10(p.in_port).ok_or(OfpError::BAD_PORT)?);
                out.put_u16(acts.len() as u16);
            } else if version >= OFP15 {
                out.put_u16(acts.len() as u16);
                out.put_u16(0);
                let m = Match::any().with(super::oxm::OxmField::exact(
                    Field::InPort,
                    p.in_port as u128,
                ));
                m.emit_ofp13(out);
            } else {
                out.put_u32(p.in_port);
                out.put_u16(acts.len() as u16);
                out.put_zeros(6);
            }
            out.extend_from_slice(&acts);
            out.extend_from_slice(&p.data);
            ofpt::PACKET_OUT
        }
        Message::FlowMod(f) => {
            if v10 {
                let actions = ofp10_actions(&f.instructions)?;
                f.match_.emit_ofp10(out)?;
                out.put_u64(f.cookie);
                let table = if f.table_id == OFPTT_ALL {
                    0
                } else {
                    f.table_id
                };
                out.put_u16(((table as u16) << 8) | f.command.to_wire() as u16);
                out.put_u16(f.idle_timeout);
                out.put_u16(f.hard_timeout);
                out.put_u16(f.priority);
                out.put_u32(f.buffer_id);
                out.put_u16(port::to_ofp10(f.out_port).ok_or(OfpError::BAD_PORT)?);
                out.put_u16(f.flags);
                emit_actions(version, actions, out)?;
            } else {
                out.put_u64(f.cookie);
                out.put_u64(f.cookie_mask);
                out.put_u8(f.table_id);
                out.put_u8(f.command.to_wire());
                out.put_u16(f.idle_timeout);
                out.put_u16(f.hard_timeout);
                out.put_u16(f.priority);
                out.put_u32(f.buffer_id);
                out.put_u32(f.out_port);
                out.put_u32(f.out_group);
                out.put_u16(f.flags);
                out.put_u16(if version >= OFP14 { f.importance } else { 0 });
                f.match_.emit_ofp13(out);
                emit_instructions(version, &f.instructions, out);
            }
            ofpt::FLOW_MOD
        }
        Message::GroupMod(g) => {
            need(!v10)?;
            g.emit(version, out)?;
            ofpt::GROUP_MOD
        }
        Message::PortMod(p) => {
            p.emit(version, out);
            if v10 {
                ofpt10::PORT_MOD
            } else {
                ofpt::PORT_MOD
            }
        }
        Message::TableMod(t) => {
            need(!v10)?;
            out.put_u8(t.table_id);
            out.put_zeros(3);
            out.put_u32(t.config);
            ofpt::TABLE_MOD
        }
        Message::MultipartRequest { flags, body } => {
            out.put_u16(body.mp_type());
            out.put_u16(*flags);
            if !v10 {
                out.put_u32(0);
            }
            if !super::multipart::type_exists(version, body.mp_type()) {
                return Err(OfpError::BAD_MULTIPART);
            }
            body.emit(version, out)?;
            if v10 {
                ofpt10::STATS_REQUEST
            } else {
                ofpt::MULTIPART_REQUEST
            }
        }
        Message::MultipartReply { .. } => return Err(OfpError::BAD_TYPE),
        Message::BarrierRequest => {
            if v10 {
                ofpt10::BARRIER_REQUEST
            } else {
                ofpt::BARRIER_REQUEST
            }
        }
        Message::BarrierReply => {
            if v10 {
                ofpt10::BARRIER_REPLY
            } else {
                ofpt::BARRIER_REPLY
            }
        }
        Message::RoleRequest(role) | Message::RoleReply(role) => {
            need(!v10)?;
            out.put_u32(role.role);
            out.put_u32(0);
            out.put_u64(role.generation_id);
            if matches!(m, Message::RoleRequest(_)) {
                ofpt::ROLE_REQUEST
            } else {
                ofpt::ROLE_REPLY
            }
        }
        Message::GetAsyncRequest => {
            need(v13)?;
            ofpt::GET_ASYNC_REQUEST
        }
        Message::GetAsyncReply(a) | Message::SetAsync(a) => {
            need(v13)?;
            if version < OFP14 {
                for pair in 0..3 {
                    out.put_u32(a.masks[2 * pair + 1].unwrap_or(0));
                    out.put_u32(a.masks[2 * pair].unwrap_or(0));
                }
            } else {
                for (i, mask) in a.masks.iter().enumerate() {
                    if let Some(mask) = mask {
                        out.put_u16(i as u16);
                        out.put_u16(8);
                        out.put_u32(*mask);
                    }
                }
            }
            if matches!(m, Message::SetAsync(_)) {
                ofpt::SET_ASYNC
            } else {
                ofpt::GET_ASYNC_REPLY
            }
        }
        Message::MeterMod(mm) => {
            need(v13)?;
            mm.emit(out);
            ofpt::METER_MOD
        }
        Message::QueueGetConfigRequest { port: p } => {
            need(version < OFP14)?;
            if v10 {
                out.put_u16(port::to_ofp10(*p).ok_or(OfpError::BAD_PORT)?);
                out.put_u16(0);
                ofpt10::QUEUE_GET_CONFIG_REQUEST
            } else {
                out.put_u32(*p);
                out.put_u32(0);
                ofpt::QUEUE_GET_CONFIG_REQUEST
            }
        }
        Message::QueueGetConfigReply { port: p, queues } => {
            need(version < OFP14)?;
            if v10 {
                out.put_u16(port::to_ofp10(*p).ok_or(OfpError::BAD_PORT)?);
                out.put_zeros(6);
            } else {
                out.put_u32(*p);
                out.put_u32(0);
            }
            for q in queues {
                let start = out.len();
                out.put_u32(q.queue_id);
                if !v10 {
                    out.put_u32(*p);
                }
                let len_at = out.len();
                out.put_u16(0);
                out.put_zeros(if v10 { 2 } else { 6 });
                let mut prop = |t: u16, rate: Option<u16>| {
                    if let Some(rate) = rate {
                        out.put_u16(t);
                        out.put_u16(16);
                        out.put_u32(0);
                        out.put_u16(rate);
                        out.put_zeros(6);
                    }
                };
                prop(1, q.min_rate);
                if !v10 {
                    prop(2, q.max_rate);
                } else if q.max_rate.is_some() {
                    return Err(OfpError::QUEUE_OP_EPERM);
                }
                let len = (out.len() - start) as u16;
                out.set_u16(len_at, len);
            }
            if v10 {
                ofpt10::QUEUE_GET_CONFIG_REPLY
            } else {
                ofpt::QUEUE_GET_CONFIG_REPLY
            }
        }
    })
}

/// Multipart replies are split at entry boundaries into messages of at most 64 KiB; every
/// message but the last carries `OFPMPF_REPLY_MORE`.
fn encode_multipart_reply(
    version: u8,
    xid: u32,
    flags: u16,
    body: &MultipartReply,
    out: &mut Vec<u8>,
) -> Result<(), OfpError> {
    let t = body.mp_type();
    let mut w = ReplyWriter::with_flags(version, xid, t, flags)?;
    let entries = body.emit_entries(version)?;
    if entries
        .iter()
        .any(|e| w.hdr_len() + e.len() > MAX_MESSAGE_LEN)
    {
        return Err(OfpError::MULTIPART_BUFFER_OVERFLOW);
    }
    for e in &entries {
        w.entry(out, |_, b| {
            b.extend_from_slice(e);
            Ok(())
        })?;
    }
    w.finish(out);
    Ok(())
}

/// A multipart reply written entry by entry, for replies too large to build at once (a flow
/// dump of 100 000 flows): it produces the same messages as encoding the whole body with
/// [`Message::encode_into`] — split at entry boundaries into messages of at most 64 KiB,
/// `OFPMPF_REPLY_MORE` on all but the last — and appends each message to the output only
/// once it is complete, so the output always holds whole messages.
#[derive(Debug)]
pub struct ReplyWriter {
    version: u8,
    xid: u32,
    mp_type: u16,
    flags: u16,
    /// The message being filled (empty: none started).
    cur: Vec<u8>,
}

impl ReplyWriter {
    /// A reply of multipart type `mp_type` for `version` with transaction id `xid`.
    pub fn new(version: u8, xid: u32, mp_type: u16) -> Result<ReplyWriter, OfpError> {
        Self::with_flags(version, xid, mp_type, 0)
    }

    fn with_flags(
        version: u8,
        xid: u32,
        mp_type: u16,
        flags: u16,
    ) -> Result<ReplyWriter, OfpError> {
        if !is_supported_version(version) {
            return Err(OfpError::BAD_VERSION);
        }
        if !super::multipart::type_exists(version, mp_type) {
            return Err(OfpError::BAD_MULTIPART);
        }
        Ok(ReplyWriter {
            version,
            xid,
            mp_type,
            flags: flags & !OFPMPF_MORE,
            cur: Vec::new(),
        })
    }

    /// The version the reply is written in.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The message and multipart header length.
    pub fn hdr_len(&self) -> usize {
        HEADER_LEN + if self.version == OFP10 { 4 } else { 8 }
    }

    /// Bytes of the message being filled (not yet in the output).
    pub fn buffered(&self) -> usize {
        self.cur.len()
    }

    fn start(&mut self) {
        self.cur.put_zeros(HEADER_LEN);
        self.cur.put_u16(self.mp_type);
        self.cur.put_u16(self.flags);
        if self.version != OFP10 {
            self.cur.put_u32(0);
        }
    }

    /// Completes the message being filled and appends it to `out`.
    fn flush(&mut self, out: &mut Vec<u8>, more: bool) {
        if self.cur.is_empty() {
            self.start();
        }
        if more {
            self.cur.set_u16(HEADER_LEN + 2, self.flags | OFPMPF_MORE);
        }
        let msg_type = if self.version == OFP10 {
            ofpt10::STATS_REPLY
        } else {
            ofpt::MULTIPART_REPLY
        };
        Header {
            version: self.version,
            msg_type,
            length: self.cur.len() as u16,
            xid: self.xid,
        }
        .emit(&mut self.cur[..HEADER_LEN]);
        out.extend_from_slice(&self.cur);
        self.cur.clear();
    }

    /// Adds one entry, which `f` appends to the buffer it is given (with the version). A full
    /// message goes to `out` first (with `REPLY_MORE`). Returns the entry's length; an entry
    /// that cannot fit any message is `MULTIPART_BUFFER_OVERFLOW` (and nothing is added).
    pub fn entry(
        &mut self,
        out: &mut Vec<u8>,
        f: impl FnOnce(u8, &mut Vec<u8>) -> Result<(), OfpError>,
    ) -> Result<usize, OfpError> {
        if self.cur.is_empty() {
            self.start();
        }
        let at = self.cur.len();
        if let Err(e) = f(self.version, &mut self.cur) {
            self.cur.truncate(at);
            return Err(e);
        }
        let n = self.cur.len() - at;
        if self.cur.len() <= MAX_MESSAGE_LEN {
            return Ok(n);
        }
        if self.hdr_len() + n > MAX_MESSAGE_LEN {
            self.cur.truncate(at);
            return Err(OfpError::MULTIPART_BUFFER_OVERFLOW);
        }
        // It does not fit: the message so far goes with REPLY_MORE, the entry starts the next.
        let tail = self.cur.split_off(at);
        self.flush(out, true);
        self.start();
        self.cur.extend_from_slice(&tail);
        Ok(n)
    }

    /// Completes the reply: the last message (without `REPLY_MORE`; an empty one if no entry
    /// was added) goes to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush(out, false);
    }
}
