//! Arbitrary bytes through the OpenFlow framer and decoder.
//!
//! Checks: no panic; every framed message is 8..=65535 bytes with a matching length field; a
//! message that decodes re-encodes in its version, the re-encoding decodes, and one more round
//! changes nothing (encode∘decode is idempotent after one normalisation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgmt::openflow::{Framer, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    // Feed the stream in two pieces, cut where the first byte says.
    let cut = (split as usize * rest.len()) / 256;
    let mut framer = Framer::default();
    framer.push(&rest[..cut]);
    let mut msgs = Vec::new();
    while let Some(m) = framer.next_message() {
        match m {
            Ok(m) => msgs.push(m),
            Err(_) => break,
        }
    }
    framer.push(&rest[cut..]);
    while let Some(m) = framer.next_message() {
        match m {
            Ok(m) => msgs.push(m),
            Err(_) => break,
        }
    }
    for m in msgs {
        assert!(m.len() >= 8);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        let Ok((h, decoded)) = Message::decode(&m) else {
            continue;
        };
        let once = decoded
            .encode(h.version, h.xid)
            .unwrap_or_else(|e| panic!("re-encode {decoded:?}: {e}"));
        let (_, again) =
            Message::decode(&once).unwrap_or_else(|e| panic!("decode re-encoded {decoded:?}: {e}"));
        let twice = again.encode(h.version, h.xid).expect("second encode");
        assert_eq!(once, twice, "not idempotent: {decoded:?}");
    }
    // The decoder also sees the raw input as one message.
    let _ = Message::decode(rest);
});
