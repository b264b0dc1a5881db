//! Arbitrary input into the OVSDB server with the Open_vSwitch schema and a bootstrapped
//! database (root row, a bridge, ports, interfaces).
//!
//! First byte even: the rest is a raw JSON-RPC byte stream, fed in chunks of a size the
//! input picks (any split must behave like one read). Odd: the rest is spliced into one
//! `transact` request as its operations, which reaches the engine's operations, where
//! clauses, mutations and commit-time checks with well-formed framing.
//!
//! Checks: no panic; every reply parses as JSON; a transaction whose reply reports an error
//! changes nothing (the generation does not move).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgmt::ovsdb::{Database, NoJournal, OvsdbServer, Schema, VSWITCH_SCHEMA};
use serde_json::Value;

fn server() -> OvsdbServer {
    let schema = Schema::from_json(VSWITCH_SCHEMA).expect("schema");
    let mut s = OvsdbServer::new(Database::new(schema, 7));
    let boot = serde_json::json!(["Open_vSwitch",
        {"op":"insert","table":"Interface","uuid-name":"i1","row":{"name":"eth1"}},
        {"op":"insert","table":"Port","uuid-name":"p1","row":{"name":"eth1","interfaces":["named-uuid","i1"],"tag":10}},
        {"op":"insert","table":"Bridge","uuid-name":"b","row":{"name":"br0","ports":["named-uuid","p1"]}},
        {"op":"insert","table":"Open_vSwitch","row":{"bridges":["named-uuid","b"]}}]);
    s.transact_internal(boot, 0, &mut NoJournal).expect("bootstrap");
    s
}

fn replies(bytes: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .map(|v| v.expect("the server writes valid JSON"))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut s = server();
    let conn = s.open(0);
    if sel & 1 == 0 {
        let step = (sel as usize >> 1) % 61 + 1;
        for (i, chunk) in rest.chunks(step).enumerate() {
            s.receive(conn, chunk, i as u64 * 10, &mut NoJournal);
            s.poll(i as u64 * 10, &mut NoJournal);
        }
        let out = s.pending(conn).to_vec();
        replies(&out);
    } else {
        let Ok(text) = core::str::from_utf8(rest) else {
            return;
        };
        let before = s.db().generation();
        let req = format!("{{\"method\":\"transact\",\"params\":[\"Open_vSwitch\",{text}],\"id\":1}}");
        s.receive(conn, req.as_bytes(), 0, &mut NoJournal);
        let out = s.pending(conn).to_vec();
        for r in replies(&out) {
            let failed = !r["error"].is_null()
                || r["result"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.get("error").is_some()));
            if failed && r["id"] == 1 {
                assert_eq!(s.db().generation(), before, "a failed transaction changed the database: {r}");
            }
        }
    }
});
