//! Random flow-mods, group-mods, port changes, packets, packet-outs, traces and timer ticks
//! through one bridge's OpenFlow pipeline: nothing may panic. The body is shared with the
//! stable-Rust property test `tests/pipeline_random.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/pipeline_fuzz_body/mod.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
