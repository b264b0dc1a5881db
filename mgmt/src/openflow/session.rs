//! One OpenFlow connection's state machine, independent of the transport.
//!
//! Feed received bytes to `Session::on_bytes`, call `Session::tick` with the time now and then,
//! and write out what `Session::poll_output` returns. The session answers by itself: HELLO
//! (version negotiation), ECHO, FEATURES, GET_CONFIG/SET_CONFIG, the description multipart,
//! GET_ASYNC/SET_ASYNC, the Nicira negotiation messages `ovs-ofctl` sends, and every malformed,
//! unsupported or not-permitted message (with an `OFPT_ERROR` echoing its first 64 bytes).
//! Everything else reaches the caller as `SessionEvent::Request`, in arrival order; the caller
//! answers with `Session::send` (barrier replies too, so that they follow earlier answers).

use alloc::string::String;
use alloc::vec::Vec;

use super::error::OfpError;
use super::header::{FrameError, Framer, HEADER_LEN, Header, MAX_MESSAGE_LEN};
use super::message::{
    AsyncConfig, ErrorMsg, Hello, Message, NxMessage, OFPCR_ROLE_NOCHANGE, OFPCR_ROLE_SLAVE,
    SwitchConfig, SwitchFeatures, negotiate,
};
use super::multipart::{MultipartReply, MultipartRequest, OFPTT_ALL, SwitchDesc};
use super::port::PortDesc;
use super::{OFP10, SUPPORTED_VERSIONS};

/// `OFPC_*` capability bits (1.3 numbering).
pub mod capabilities {
    pub const FLOW_STATS: u32 = 1;
    pub const TABLE_STATS: u32 = 2;
    pub const PORT_STATS: u32 = 4;
    pub const GROUP_STATS: u32 = 8;
    pub const IP_REASM: u32 = 0x20;
    pub const QUEUE_STATS: u32 = 0x40;
    pub const PORT_BLOCKED: u32 = 0x100;
}

/// What the switch says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchInfo {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    /// `OFPC_*` bits in 1.3 numbering (translated for 1.0).
    pub capabilities: u32,
    pub desc: SwitchDesc,
    /// Ports listed in the OpenFlow 1.0 features reply.
    pub ports: Vec<PortDesc>,
}

impl Default for SwitchInfo {
    fn default() -> Self {
        use capabilities::*;
        SwitchInfo {
            datapath_id: 0,
            n_buffers: 0,
            n_tables: 1,
            capabilities: FLOW_STATS | TABLE_STATS | PORT_STATS | GROUP_STATS | QUEUE_STATS,
            desc: SwitchDesc {
                mfr_desc: String::from("ironflow"),
                hw_desc: String::from("ironflow"),
                sw_desc: String::from(env!("CARGO_PKG_VERSION")),
                serial_num: String::from("None"),
                dp_desc: String::from("None"),
            },
            ports: Vec::new(),
        }
    }
}

/// Session settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Versions offered (bit `v` = wire version `v`); must be a subset of `SUPPORTED_VERSIONS`.
    pub versions: u32,
    /// Idle time after which an echo request probes the peer (0 = never).
    pub echo_interval_ms: u64,
    /// Time without any message after a probe (or without HELLO) before giving up.
    pub echo_timeout_ms: u64,
    /// Largest message accepted (at most 65535).
    pub max_message_len: usize,
    pub info: SwitchInfo,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            versions: SUPPORTED_VERSIONS,
            echo_interval_ms: 5_000,
            echo_timeout_ms: 10_000,
            max_message_len: MAX_MESSAGE_LEN,
            info: SwitchInfo::default(),
        }
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// No common version (HELLO_FAILED sent).
    NoCommonVersion,
    /// The first message was not HELLO.
    NoHello,
    /// A length field made the stream unparseable (BAD_LEN sent).
    BadFraming,
    /// The peer stayed silent through an echo probe.
    EchoTimeout,
}

/// A request for the caller, with what it needs to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub xid: u32,
    pub message: Message,
    /// The message's first 64 bytes, for `Session::send_error`.
    pub head: Vec<u8>,
}

/// What happened on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Version negotiated; requests may follow.
    Connected { version: u8 },
    /// A request for the switch (flow/group/meter/port/table mods, packet-out, multipart other
    /// than the description, barrier, role request).
    Request(Request),
    /// The peer sent `OFPT_ERROR`.
    PeerError { xid: u32, error: ErrorMsg },
    /// The session is over; flush `poll_output` and close the transport.
    Disconnect(DisconnectReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    HelloWait,
    Connected(u8),
    Closed,
}

/// One OpenFlow connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    framer: Framer,
    out: Vec<u8>,
    next_xid: u32,
    last_rx_ms: u64,
    probe_sent_ms: Option<u64>,
    switch_config: SwitchConfig,
    async_config: AsyncConfig,
    role: u32,
    ofp10_table_id: bool,
    /// The negotiated version, kept after the session closes so that answers to requests
    /// received before the close can still be queued.
    negotiated: Option<u8>,
}

impl Session {
    /// A new session at time `now_ms`; the HELLO is already queued for output.
    pub fn new(config: SessionConfig, now_ms: u64) -> Session {
        let versions = config.versions & SUPPORTED_VERSIONS;
        let versions = if versions == 0 {
            SUPPORTED_VERSIONS
        } else {
            versions
        };
        let mut s = Session {
            framer: Framer::new(config.max_message_len),
            config: SessionConfig { versions, ..config },
            state: State::HelloWait,
            out: Vec::new(),
            next_xid: 1,
            last_rx_ms: now_ms,
            probe_sent_ms: None,
            switch_config: SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            },
            async_config: AsyncConfig::default_masks(),
            role: super::message::OFPCR_ROLE_EQUAL,
            ofp10_table_id: false,
            negotiated: None,
        };
        let max = 31 - versions.leading_zeros() as u8;
        let xid = s.alloc_xid();
        let _ = Message::Hello(Hello::for_versions(versions)).encode_into(max, xid, &mut s.out);
        s
    }

    /// The negotiated version, once connected.
    pub fn version(&self) -> Option<u8> {
        match self.state {
            State::Connected(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
    /// The switch configuration the controller set (`miss_send_len`, fragment handling).
    pub fn switch_config(&self) -> SwitchConfig {
        self.switch_config
    }
    /// The asynchronous-message filters in force.
    pub fn async_config(&self) -> AsyncConfig {
        self.async_config
    }
    /// The controller role (`OFPCR_ROLE_*`), as last set with `set_role`.
    pub fn role(&self) -> u32 {
        self.role
    }
    /// Records the role the caller granted in answer to a role request.
    pub fn set_role(&mut self, role: u32) {
        if role != OFPCR_ROLE_NOCHANGE {
            self.role = role;
        }
    }
    pub fn info_mut(&mut self) -> &mut SwitchInfo {
        &mut self.config.info
    }

    /// Whether an asynchronous message should go to this controller: `kind` 0 = packet-in,
    /// 1 = port-status, 2 = flow-removed; `reason` is the message's reason code.
    pub fn wants_async(&self, kind: usize, reason: u8) -> bool {
        if kind > 2 || !self.is_connected() || reason >= 32 {
            return false;
        }
        let master = self.role != OFPCR_ROLE_SLAVE;
        let i = 2 * kind + master as usize;
        self.async_config.masks[i].unwrap_or(0) & (1 << reason) != 0
    }

    /// Takes the bytes queued for the peer.
    pub fn poll_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// A fresh transaction id for a switch-initiated message.
    pub fn alloc_xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    /// Queues `msg` with `xid` in the negotiated version (`BAD_VERSION` before negotiation).
    /// Works after a disconnect too, for answers to requests that arrived before it.
    pub fn send(&mut self, xid: u32, msg: &Message) -> Result<(), OfpError> {
        let v = self.negotiated.ok_or(OfpError::BAD_VERSION)?;
        msg.encode_into(v, xid, &mut self.out)
    }

    /// Queues an asynchronous message (packet-in, port-status, flow-removed) with a fresh xid.
    pub fn send_async(&mut self, msg: &Message) -> Result<(), OfpError> {
        let xid = self.alloc_xid();
        self.send(xid, msg)
    }

    /// Queues `OFPT_ERROR` for the request whose first bytes are `head`.
    pub fn send_error(&mut self, err: OfpError, head: &[u8]) {
        let version = self.negotiated.unwrap_or(OFP10);
        let xid = Header::parse_prefix(head).map_or(0, |h| h.xid);
        self.queue_error(version, xid, err, head);
    }

    fn queue_error(&mut self, version: u8, xid: u32, err: OfpError, head: &[u8]) {
        let msg = Message::Error(ErrorMsg::reply_to(err, version, head));
        let _ = msg.encode_into(version, xid, &mut self.out);
    }

    /// Advances timers: sends an echo probe when idle, gives up when the probe goes unanswered.
    pub fn tick(&mut self, now_ms: u64) -> Option<SessionEvent> {
        let interval = self.config.echo_interval_ms;
        let timeout = self.config.echo_timeout_ms;
        match self.state {
            State::Closed => None,
            State::HelloWait => {
                if timeout > 0 && now_ms.saturating_sub(self.last_rx_ms) >= interval + timeout {
                    self.state = State::Closed;
                    return Some(SessionEvent::Disconnect(DisconnectReason::EchoTimeout));
                }
                None
            }
            State::Connected(_) => {
                if let Some(sent) = self.probe_sent_ms {
                    if timeout > 0 && now_ms.saturating_sub(sent) >= timeout {
                        self.state = State::Closed;
                        return Some(SessionEvent::Disconnect(DisconnectReason::EchoTimeout));
                    }
                } else if interval > 0 && now_ms.saturating_sub(self.last_rx_ms) >= interval {
                    let xid = self.alloc_xid();
                    let _ = self.send(xid, &Message::EchoRequest(Vec::new()));
                    self.probe_sent_ms = Some(now_ms);
                }
                None
            }
        }
    }

    /// Consumes received bytes; returns what the caller must act on.
    pub fn on_bytes(&mut self, now_ms: u64, data: &[u8]) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        if self.state == State::Closed {
            return events;
        }
        self.framer.push(data);
        while self.state != State::Closed {
            match self.framer.next_message() {
                None => break,
                Some(Err(e)) => {
                    self.on_frame_error(e);
                    events.push(SessionEvent::Disconnect(DisconnectReason::BadFraming));
                }
                Some(Ok(msg)) => {
                    self.last_rx_ms = now_ms;
                    self.probe_sent_ms = None;
                    self.on_message(&msg, &mut events);
                }
            }
        }
        events
    }

    fn on_frame_error(&mut self, e: FrameError) {
        let version = self.version().unwrap_or(OFP10);
        self.queue_error(version, e.xid(), OfpError::BAD_LEN, &e.header);
        self.state = State::Closed;
    }

    fn hello_failed(&mut self, peer_version: u8, xid: u32, text: &str) {
        // The error is written in the peer's version so that it can read it; the ERROR layout
        // is the same in every version.
        let mut b = Vec::with_capacity(HEADER_LEN + 4 + text.len());
        b.extend_from_slice(&[peer_version, 1, 0, 0]);
        b.extend_from_slice(&xid.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // HELLO_FAILED / INCOMPATIBLE
        b.extend_from_slice(text.as_bytes());
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&b);
        self.state = State::Closed;
    }

    fn on_message(&mut self, msg: &[u8], events: &mut Vec<SessionEvent>) {
        let Ok(header) = Header::parse(msg) else {
            return; // the framer only returns whole messages with sane lengths
        };
        let head = &msg[..msg.len().min(64)];
        let version = match self.state {
            State::Closed => return,
            State::HelloWait => {
                if header.msg_type != 0 {
                    self.hello_failed(header.version, header.xid, "expected HELLO");
                    events.push(SessionEvent::Disconnect(DisconnectReason::NoHello));
                    return;
                }
                let hello = match Message::decode(msg) {
                    Ok((_, Message::Hello(h))) => h,
                    // A HELLO of a version we cannot parse still tells us its version.
                    _ => Hello::default(),
                };
                match negotiate(self.config.versions, header.version, &hello) {
                    Some(v) => {
                        self.state = State::Connected(v);
                        self.negotiated = Some(v);
                        events.push(SessionEvent::Connected { version: v });
                    }
                    None => {
                        self.hello_failed(
                            header.version,
                            header.xid,
                            "no common OpenFlow version (ironflow: 1.0, 1.3, 1.4, 1.5)",
                        );
                        events.push(SessionEvent::Disconnect(DisconnectReason::NoCommonVersion));
                    }
                }
                return;
            }
            State::Connected(v) => v,
        };
        // An ERROR is never answered with an ERROR (no loops between two confused peers).
        let is_error = header.msg_type == 1;
        if header.version != version {
            if !is_error {
                self.queue_error(version, header.xid, OfpError::BAD_VERSION, head);
            }
            return;
        }
        let message = match Message::decode(msg) {
            Ok((_, m)) => m,
            Err(e) => {
                if !is_error {
                    self.queue_error(version, header.xid, e, head);
                }
                return;
            }
        };
        let xid = header.xid;
        let reply = |s: &mut Session, m: Message| {
            let _ = s.send(xid, &m);
        };
        match message {
            Message::Hello(_) => {}
            Message::EchoRequest(d) => reply(self, Message::EchoReply(d)),
            Message::EchoReply(_) => {}
            Message::Error(error) => events.push(SessionEvent::PeerError { xid, error }),
            Message::FeaturesRequest => {
                let f = self.features(version);
                reply(self, Message::FeaturesReply(f));
            }
            Message::GetConfigRequest => reply(self, Message::GetConfigReply(self.switch_config)),
            Message::SetConfig(c) => {
                if c.flags & !3 != 0 {
                    self.queue_error(version, xid, OfpError::SWITCH_CONFIG_BAD_FLAGS, head);
                } else {
                    self.switch_config = c;
                }
            }
            Message::MultipartRequest {
                body: MultipartRequest::Desc,
                ..
            } => {
                let body = MultipartReply::Desc(self.config.info.desc.clone());
                reply(self, Message::MultipartReply { flags: 0, body });
            }
            Message::GetAsyncRequest => reply(self, Message::GetAsyncReply(self.async_config)),
            Message::SetAsync(a) => {
                for (dst, src) in self.async_config.masks.iter_mut().zip(a.masks) {
                    if src.is_some() {
                        *dst = src;
                    }
                }
            }
            Message::Nicira(nx) => match nx {
                NxMessage::SetFlowFormat(0) | NxMessage::SetPacketInFormat(0) => {}
                NxMessage::SetControllerId(_) => {}
                NxMessage::FlowModTableId(on) => self.ofp10_table_id = on,
                // NXM flow and packet-in formats are not implemented: refuse, and ovs-ofctl
                // falls back to plain OpenFlow.
                _ => self.queue_error(version, xid, OfpError::BAD_REQUEST_EPERM, head),
            },
            // Messages only a switch sends.
            Message::FeaturesReply(_)
            | Message::GetConfigReply(_)
            | Message::PacketIn(_)
            | Message::FlowRemoved(_)
            | Message::PortStatus(_)
            | Message::MultipartReply { .. }
            | Message::BarrierReply
            | Message::RoleReply(_)
            | Message::GetAsyncReply(_)
            | Message::QueueGetConfigReply { .. } => {
                self.queue_error(version, xid, OfpError::BAD_TYPE, head)
            }
            m => {
                if let Some(e) = self.refuse(version, &m) {
                    self.queue_error(version, xid, e, head);
                    return;
                }
                events.push(SessionEvent::Request(Request {
                    xid,
                    message: m,
                    head: head.to_vec(),
                }));
            }
        }
    }

    /// Checks the session-level rules: a slave may not change state, and a 1.0 flow-mod
    /// carries a table id only after `NXT_FLOW_MOD_TABLE_ID`.
    fn refuse(&self, version: u8, m: &Message) -> Option<OfpError> {
        let modifies = matches!(
            m,
            Message::FlowMod(_)
                | Message::GroupMod(_)
                | Message::PortMod(_)
                | Message::TableMod(_)
                | Message::MeterMod(_)
                | Message::PacketOut(_)
        );
        if modifies && self.role == OFPCR_ROLE_SLAVE {
            return Some(OfpError::IS_SLAVE);
        }
        if let Message::FlowMod(f) = m
            && version == OFP10
            && f.table_id != OFPTT_ALL
            && !self.ofp10_table_id
        {
            return Some(OfpError::FLOW_MOD_BAD_COMMAND);
        }
        None
    }

    fn features(&self, version: u8) -> SwitchFeatures {
        let info = &self.config.info;
        let mut f = SwitchFeatures {
            datapath_id: info.datapath_id,
            n_buffers: info.n_buffers,
            n_tables: info.n_tables,
            auxiliary_id: 0,
            capabilities: info.capabilities,
            actions: 0,
            ports: Vec::new(),
        };
        if version == OFP10 {
            // 1.0: bit 3 is STP and 0x100 does not exist; ARP_MATCH_IP (0x80) holds.
            f.capabilities = (info.capabilities & 0x67) | 0x80;
            f.actions = 0xfff;
            f.ports = info.ports.clone();
        }
        f
    }
}

impl Header {
    /// The header at the start of `b`, without checking the length against `b`.
    pub fn parse_prefix(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(Header {
            version: b[0],
            msg_type: b[1],
            length: u16::from_be_bytes([b[2], b[3]]),
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}
