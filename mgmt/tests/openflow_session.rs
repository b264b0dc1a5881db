//! Session state machine driven with byte vectors: negotiation, keep-alive, internal answers,
//! error answers (with the first 64 bytes echoed), and survival after bad input.

use mgmt::openflow::error::OfpError;
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::*;
use mgmt::openflow::multipart::{MultipartReply, MultipartRequest};
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::session::{DisconnectReason, Session, SessionConfig, SessionEvent, SwitchInfo};
use mgmt::openflow::{OFP10, OFP13, OFP14, OFP15};
use switch_core::flow::Field;

fn msgs(bytes: &[u8]) -> Vec<(u8, u32, Message)> {
    let mut f = Framer::default();
    f.push(bytes);
    let mut v = Vec::new();
    while let Some(m) = f.next_message() {
        let m = m.expect("session output frames cleanly");
        let (h, msg) =
            Message::decode(&m).unwrap_or_else(|e| panic!("session sent undecodable {m:?}: {e}"));
        v.push((h.version, h.xid, msg));
    }
    v
}

fn enc(v: u8, xid: u32, m: Message) -> Vec<u8> {
    m.encode(v, xid).unwrap()
}

fn info() -> SwitchInfo {
    SwitchInfo {
        datapath_id: 0x42,
        n_tables: 4,
        ..Default::default()
    }
}

/// A session connected at `version` (peer HELLO with a bitmap of just that version).
fn connected(version: u8) -> Session {
    let mut s = Session::new(
        SessionConfig {
            info: info(),
            ..Default::default()
        },
        0,
    );
    let hello = msgs(&s.poll_output());
    assert_eq!(hello.len(), 1);
    assert!(matches!(
        hello[0],
        (OFP15, _, Message::Hello(Hello { bitmap: Some(0x72) }))
    ));
    let ev = s.on_bytes(
        0,
        &enc(
            version,
            1,
            Message::Hello(Hello {
                bitmap: Some(1 << version),
            }),
        ),
    );
    assert_eq!(ev, vec![SessionEvent::Connected { version }]);
    s
}

fn errors(out: &[u8]) -> Vec<(u32, OfpError, Vec<u8>, u8)> {
    msgs(out)
        .into_iter()
        .filter_map(|(v, x, m)| match m {
            Message::Error(e) => Some((x, e.error(v), e.data, v)),
            _ => None,
        })
        .collect()
}

#[test]
fn negotiation() {
    // Bitmap: highest common.
    for (peer, want) in [
        (0b10, OFP10),
        (0b1_0010, OFP13),
        (0b111_0010, OFP15),
        (0b11_0000, OFP14),
    ] {
        let mut s = Session::new(SessionConfig::default(), 0);
        s.poll_output();
        let ev = s.on_bytes(
            0,
            &enc(OFP15, 1, Message::Hello(Hello { bitmap: Some(peer) })),
        );
        assert_eq!(
            ev,
            vec![SessionEvent::Connected { version: want }],
            "peer {peer:#x}"
        );
    }
    // No bitmap: min(ours, theirs), if we support it.
    for (peer, want) in [
        (OFP10, Some(OFP10)),
        (OFP13, Some(OFP13)),
        (0x07, Some(OFP15)),
        (0x02, None),
        (0x03, None),
    ] {
        let mut s = Session::new(SessionConfig::default(), 0);
        s.poll_output();
        let ev = s.on_bytes(0, &[peer, 0, 0, 8, 0, 0, 0, 9]);
        match want {
            Some(v) => assert_eq!(ev, vec![SessionEvent::Connected { version: v }]),
            None => {
                assert_eq!(
                    ev,
                    vec![SessionEvent::Disconnect(DisconnectReason::NoCommonVersion)]
                );
                let out = s.poll_output();
                // HELLO_FAILED/INCOMPATIBLE in the peer's version with the peer's xid.
                assert_eq!(&out[..2], &[peer, 1]);
                assert_eq!(&out[4..12], &[0, 0, 0, 9, 0, 0, 0, 0]);
                assert!(s.is_closed());
            }
        }
    }
    // Only-1.0 config against a 1.3-only peer.
    let mut s = Session::new(
        SessionConfig {
            versions: 1 << OFP10,
            ..Default::default()
        },
        0,
    );
    let hello = msgs(&s.poll_output());
    assert!(matches!(
        hello[0],
        (OFP10, _, Message::Hello(Hello { bitmap: None }))
    ));
    let ev = s.on_bytes(
        0,
        &enc(
            OFP13,
            1,
            Message::Hello(Hello {
                bitmap: Some(1 << OFP13),
            }),
        ),
    );
    assert_eq!(
        ev,
        vec![SessionEvent::Disconnect(DisconnectReason::NoCommonVersion)]
    );
    // Something other than HELLO first.
    let mut s = Session::new(SessionConfig::default(), 0);
    s.poll_output();
    let ev = s.on_bytes(0, &enc(OFP13, 1, Message::FeaturesRequest));
    assert_eq!(
        ev,
        vec![SessionEvent::Disconnect(DisconnectReason::NoHello)]
    );
}

#[test]
fn internal_answers() {
    for v in [OFP10, OFP13, OFP14, OFP15] {
        let mut s = connected(v);
        let mut input = Vec::new();
        input.extend(enc(v, 10, Message::EchoRequest(vec![1, 2, 3])));
        input.extend(enc(v, 11, Message::FeaturesRequest));
        input.extend(enc(
            v,
            12,
            Message::SetConfig(SwitchConfig {
                flags: 1,
                miss_send_len: 200,
            }),
        ));
        input.extend(enc(v, 13, Message::GetConfigRequest));
        input.extend(enc(
            v,
            14,
            Message::MultipartRequest {
                flags: 0,
                body: MultipartRequest::Desc,
            },
        ));
        assert_eq!(s.on_bytes(1, &input), vec![]);
        let out = msgs(&s.poll_output());
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], (v, 10, Message::EchoReply(vec![1, 2, 3])));
        let (_, 11, Message::FeaturesReply(f)) = &out[1] else {
            panic!("{:?}", out[1])
        };
        assert_eq!((f.datapath_id, f.n_tables), (0x42, 4));
        assert_eq!(
            out[2],
            (
                v,
                13,
                Message::GetConfigReply(SwitchConfig {
                    flags: 1,
                    miss_send_len: 200
                })
            )
        );
        let (
            _,
            14,
            Message::MultipartReply {
                body: MultipartReply::Desc(d),
                ..
            },
        ) = &out[3]
        else {
            panic!()
        };
        assert_eq!(d.mfr_desc, "ironflow");
        assert_eq!(s.switch_config().miss_send_len, 200);
    }
}

#[test]
fn requests_reach_caller_in_order() {
    let mut s = connected(OFP13);
    let fm = FlowMod {
        table_id: 0,
        match_: Match::any().with(OxmField::exact(Field::InPort, 1)),
        ..Default::default()
    };
    let mut input = enc(OFP13, 20, Message::FlowMod(fm.clone()));
    input.extend(enc(OFP13, 21, Message::BarrierRequest));
    let ev = s.on_bytes(0, &input);
    assert_eq!(ev.len(), 2);
    let SessionEvent::Request(r) = &ev[0] else {
        panic!()
    };
    assert_eq!((r.xid, &r.message), (20, &Message::FlowMod(fm)));
    assert_eq!(r.head.len(), 64);
    let SessionEvent::Request(b) = &ev[1] else {
        panic!()
    };
    assert_eq!((b.xid, &b.message), (21, &Message::BarrierRequest));
    // The caller answers; an error for the flow-mod echoes its head.
    s.send_error(OfpError::TABLE_FULL, &r.head);
    s.send(21, &Message::BarrierReply).unwrap();
    let out = msgs(&s.poll_output());
    let (v, 20, Message::Error(e)) = &out[0] else {
        panic!()
    };
    assert_eq!(
        (e.error(*v), e.data.as_slice()),
        (OfpError::TABLE_FULL, &r.head[..])
    );
    assert_eq!(out[1], (OFP13, 21, Message::BarrierReply));
}

#[test]
fn bad_messages_get_errors_and_the_session_survives() {
    let mut s = connected(OFP13);
    let long_echo = enc(OFP13, 5, Message::EchoRequest(vec![7; 100]));
    let cases: Vec<(Vec<u8>, OfpError)> = vec![
        // Unknown type 99.
        (vec![4, 99, 0, 8, 0, 0, 0, 1], OfpError::BAD_TYPE),
        // Wrong version after negotiation.
        (vec![1, 2, 0, 8, 0, 0, 0, 2], OfpError::BAD_VERSION),
        // Features request with a body.
        (vec![4, 5, 0, 9, 0, 0, 0, 3, 0], OfpError::BAD_LEN),
        // Unknown multipart type 77.
        (
            vec![4, 18, 0, 16, 0, 0, 0, 4, 0, 77, 0, 0, 0, 0, 0, 0],
            OfpError::BAD_MULTIPART,
        ),
        // Experimenter that is not Nicira.
        (
            vec![4, 4, 0, 16, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 1],
            OfpError::BAD_EXPERIMENTER,
        ),
        // Nicira subtype 99.
        (
            vec![4, 4, 0, 16, 0, 0, 0, 6, 0, 0, 0x23, 0x20, 0, 0, 0, 99],
            OfpError::BAD_EXP_TYPE,
        ),
        // Packets-ins come from switches.
        (
            enc(
                OFP13,
                7,
                Message::PacketIn(PacketIn {
                    buffer_id: NO_BUFFER,
                    total_len: 0,
                    reason: 0,
                    table_id: 0,
                    cookie: 0,
                    match_: Match::any(),
                    data: vec![],
                }),
            ),
            OfpError::BAD_TYPE,
        ),
        // Role 9.
        (
            vec![
                4, 24, 0, 24, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            OfpError::BAD_ROLE,
        ),
    ];
    for (bytes, want) in &cases {
        assert_eq!(s.on_bytes(0, bytes), vec![], "{bytes:?}");
        let errs = errors(&s.poll_output());
        assert_eq!(errs.len(), 1, "{bytes:?}");
        let (xid, err, data, v) = &errs[0];
        assert_eq!(
            (*xid, *err, *v),
            (
                u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
                *want,
                OFP13
            )
        );
        assert_eq!(data.as_slice(), &bytes[..bytes.len().min(64)]);
    }
    // Still alive.
    s.on_bytes(0, &long_echo);
    assert_eq!(
        msgs(&s.poll_output())[0].2,
        Message::EchoReply(vec![7; 100])
    );
}

#[test]
fn bad_length_disconnects() {
    let mut s = connected(OFP13);
    let ev = s.on_bytes(0, &[4, 2, 0, 4, 0, 0, 0, 3]);
    assert_eq!(
        ev,
        vec![SessionEvent::Disconnect(DisconnectReason::BadFraming)]
    );
    let errs = errors(&s.poll_output());
    assert_eq!(errs[0].1, OfpError::BAD_LEN);
    assert!(s.is_closed());
    assert_eq!(
        s.on_bytes(0, &enc(OFP13, 1, Message::EchoRequest(vec![]))),
        vec![]
    );
}

#[test]
fn keep_alive() {
    let mut s = Session::new(
        SessionConfig {
            echo_interval_ms: 1000,
            echo_timeout_ms: 500,
            ..Default::default()
        },
        0,
    );
    s.poll_output();
    s.on_bytes(100, &enc(OFP13, 1, Message::Hello(Hello::default())));
    assert_eq!(s.tick(1000), None);
    assert!(!s.has_output());
    assert_eq!(s.tick(1100), None);
    let out = msgs(&s.poll_output());
    let (_, probe_xid, Message::EchoRequest(_)) = out[0] else {
        panic!("{out:?}")
    };
    // Any message answers the probe.
    s.on_bytes(1200, &enc(OFP13, probe_xid, Message::EchoReply(vec![])));
    assert_eq!(s.tick(1700), None);
    assert_eq!(s.tick(2200), None); // next probe
    assert!(matches!(
        msgs(&s.poll_output())[0].2,
        Message::EchoRequest(_)
    ));
    assert_eq!(s.tick(2699), None);
    assert_eq!(
        s.tick(2700),
        Some(SessionEvent::Disconnect(DisconnectReason::EchoTimeout))
    );
    assert!(s.is_closed());
    // No HELLO at all.
    let mut s = Session::new(
        SessionConfig {
            echo_interval_ms: 1000,
            echo_timeout_ms: 500,
            ..Default::default()
        },
        0,
    );
    assert_eq!(s.tick(1499), None);
    assert_eq!(
        s.tick(1500),
        Some(SessionEvent::Disconnect(DisconnectReason::EchoTimeout))
    );
}

#[test]
fn roles_async_and_nicira() {
    let mut s = connected(OFP13);
    // Defaults: master gets no-match packet-ins, slave none.
    assert!(s.wants_async(0, 0));
    s.set_role(OFPCR_ROLE_SLAVE);
    assert!(!s.wants_async(0, 0));
    assert!(s.wants_async(1, 0)); // port status to slaves too
    let fm = FlowMod {
        table_id: 0,
        ..Default::default()
    };
    assert_eq!(s.on_bytes(0, &enc(OFP13, 3, Message::FlowMod(fm))), vec![]);
    assert_eq!(errors(&s.poll_output())[0].1, OfpError::IS_SLAVE);
    s.set_role(OFPCR_ROLE_MASTER);
    let mut a = AsyncConfig::default();
    a.masks[AsyncConfig::PACKET_IN_MASTER] = Some(0);
    a.masks[AsyncConfig::PACKET_IN_SLAVE] = Some(0);
    a.masks[AsyncConfig::PORT_STATUS_MASTER] = Some(0);
    a.masks[AsyncConfig::PORT_STATUS_SLAVE] = Some(0);
    a.masks[AsyncConfig::FLOW_REMOVED_MASTER] = Some(1);
    a.masks[AsyncConfig::FLOW_REMOVED_SLAVE] = Some(0);
    s.on_bytes(0, &enc(OFP13, 4, Message::SetAsync(a)));
    s.on_bytes(0, &enc(OFP13, 5, Message::GetAsyncRequest));
    assert_eq!(
        msgs(&s.poll_output()),
        vec![(OFP13, 5, Message::GetAsyncReply(a))]
    );
    assert!(!s.wants_async(0, 0));
    assert!(s.wants_async(2, 0));

    // OpenFlow 1.0 with ovs-ofctl's Nicira negotiation.
    let mut s = connected(OFP10);
    let nx = |x, m| enc(OFP10, x, Message::Nicira(m));
    s.on_bytes(0, &nx(1, NxMessage::SetFlowFormat(2)));
    assert_eq!(errors(&s.poll_output())[0].1, OfpError::BAD_REQUEST_EPERM);
    s.on_bytes(0, &nx(2, NxMessage::SetFlowFormat(0)));
    s.on_bytes(0, &nx(3, NxMessage::SetPacketInFormat(0)));
    assert!(!s.has_output());
    // A table id in a 1.0 flow-mod needs NXT_FLOW_MOD_TABLE_ID first.
    let fm = FlowMod {
        table_id: 2,
        ..Default::default()
    };
    s.on_bytes(0, &enc(OFP10, 4, Message::FlowMod(fm.clone())));
    assert_eq!(
        errors(&s.poll_output())[0].1,
        OfpError::FLOW_MOD_BAD_COMMAND
    );
    s.on_bytes(0, &nx(5, NxMessage::FlowModTableId(true)));
    let ev = s.on_bytes(0, &enc(OFP10, 6, Message::FlowMod(fm.clone())));
    assert!(matches!(&ev[0], SessionEvent::Request(r) if r.message == Message::FlowMod(fm)));
}

#[test]
fn byte_at_a_time() {
    let mut s = Session::new(SessionConfig::default(), 0);
    s.poll_output();
    let mut input = enc(
        OFP13,
        1,
        Message::Hello(Hello {
            bitmap: Some(1 << OFP13),
        }),
    );
    for x in 0..50 {
        input.extend(enc(
            OFP13,
            100 + x,
            Message::EchoRequest(vec![x as u8; x as usize]),
        ));
    }
    let mut events = Vec::new();
    for b in &input {
        events.extend(s.on_bytes(0, std::slice::from_ref(b)));
    }
    assert_eq!(events, vec![SessionEvent::Connected { version: OFP13 }]);
    let out = msgs(&s.poll_output());
    assert_eq!(out.len(), 50);
    for (x, m) in out.iter().enumerate() {
        assert_eq!(
            m,
            &(OFP13, 100 + x as u32, Message::EchoReply(vec![x as u8; x]))
        );
    }
}

/// Fuzz find (of_session): a request and a bad length in one read. The request is still
/// delivered, and its answer can still be queued after the disconnect.
#[test]
fn answer_after_disconnect_in_same_read() {
    let mut s = connected(OFP13);
    let mut input = enc(OFP13, 30, Message::BarrierRequest);
    input.extend_from_slice(&[4, 2, 0, 3, 0, 0, 0, 31]);
    let ev = s.on_bytes(0, &input);
    assert_eq!(ev.len(), 2);
    assert!(matches!(&ev[0], SessionEvent::Request(r) if r.xid == 30));
    assert_eq!(
        ev[1],
        SessionEvent::Disconnect(DisconnectReason::BadFraming)
    );
    s.send(30, &Message::BarrierReply).unwrap();
    let out = msgs(&s.poll_output());
    assert!(matches!(out[0].2, Message::Error(_)));
    assert_eq!(out[1], (OFP13, 30, Message::BarrierReply));
}

#[test]
fn errors_are_never_answered_with_errors() {
    let mut s = connected(OFP13);
    // A short ERROR, and an ERROR of another version.
    s.on_bytes(0, &[4, 1, 0, 10, 0, 0, 0, 1, 0, 1]);
    s.on_bytes(0, &[1, 1, 0, 12, 0, 0, 0, 2, 0, 1, 0, 1]);
    assert!(!s.has_output());
    // A well-formed one reaches the caller.
    let ev = s.on_bytes(0, &[4, 1, 0, 12, 0, 0, 0, 3, 0, 1, 0, 6]);
    assert!(
        matches!(&ev[0], SessionEvent::PeerError { xid: 3, error } if error.error(OFP13) == OfpError::BAD_LEN)
    );
}
