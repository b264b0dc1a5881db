//! Arbitrary bytes into a `Session`, after a valid HELLO of a version chosen by the input.
//!
//! Checks: no panic; everything the session writes frames cleanly and decodes; the session
//! stays connected unless it reported a disconnect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgmt::openflow::message::{Hello, Message};
use mgmt::openflow::session::{Session, SessionConfig, SessionEvent};
use mgmt::openflow::{Framer, OFP10, OFP13, OFP14, OFP15};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let version = [OFP10, OFP13, OFP14, OFP15][(sel & 3) as usize];
    let mut s = Session::new(SessionConfig::default(), 0);
    let mut out = s.poll_output();
    let mut disconnected = false;
    if sel & 4 == 0 {
        let hello = Message::Hello(Hello {
            bitmap: Some(1 << version),
        });
        s.on_bytes(0, &hello.encode(version, 1).unwrap());
    }
    // Chunks of the input as separate reads, with time moving on.
    for (i, chunk) in rest.chunks(((sel >> 3) as usize % 31) + 1).enumerate() {
        let now = i as u64 * 700;
        for ev in s.on_bytes(now, chunk) {
            match ev {
                SessionEvent::Request(r) => {
                    // Answer like a switch would: barrier replies, errors otherwise.
                    if r.message == Message::BarrierRequest {
                        s.send(r.xid, &Message::BarrierReply).unwrap();
                    } else {
                        s.send_error(mgmt::openflow::OfpError::BAD_REQUEST_EPERM, &r.head);
                    }
                }
                SessionEvent::Disconnect(_) => disconnected = true,
                _ => {}
            }
        }
        if s.tick(now).is_some() {
            disconnected = true;
        }
        out.extend(s.poll_output());
    }
    assert!(disconnected || !s.is_closed());
    let mut f = Framer::default();
    f.push(&out);
    while let Some(m) = f.next_message() {
        let m = m.expect("session output frames");
        // HELLO_FAILED goes out in the peer's version, which we may not decode.
        if let Err(e) = Message::decode(&m) {
            assert!(m[1] == 1, "session wrote undecodable {m:?}: {e}");
        }
    }
});
