//! Everything the mlx5 driver reads from the device, made of arbitrary bytes: CQEs and EQEs
//! through their parsers at any consumer index and ring size, and the output of one bring-up
//! command (chosen by the first byte) replaced by the input while the software model answers
//! the rest. Nothing may panic; bring-up either succeeds or returns an error, and the port
//! (if it came up) still survives a few bursts and its drop (TEARDOWN_HCA).
#![no_main]

use std::cell::Cell;
use std::rc::Rc;

use drivers::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM, PacketBatch, PacketPool};
use drivers::mlx5::model::{ModelConfig, ModelHandle};
use drivers::mlx5::queues::{parse_cqe, parse_eqe};
use drivers::mlx5::{Mlx5Config, Mlx5Port};
use drivers::nic::Nic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // Ring entries: every 64-byte chunk at a consumer index and log size from the control byte.
    for (i, chunk) in rest.chunks(64).enumerate() {
        let ci = (u32::from(control) << 16) | i as u32;
        let log_size = control & 31;
        let _ = parse_cqe(chunk, ci, log_size);
        let _ = parse_eqe(chunk, ci, log_size);
    }

    // One command's output from the fuzzer, the rest from the model.
    let model = ModelHandle::new(ModelConfig {
        init_pages: 4,
        ..ModelConfig::default()
    });
    let target = u32::from(control);
    let seen = Rc::new(Cell::new(0u32));
    let payload = rest.to_vec();
    let counter = seen.clone();
    model.with(|m| {
        m.responder = Some(Box::new(move |_opcode, _op_mod, _input, out_len| {
            let n = counter.get();
            counter.set(n + 1);
            (n == target).then(|| {
                let mut out = payload.clone();
                out.resize(out_len, 0);
                out
            })
        }))
    });
    let Ok(pool) = PacketPool::with_allocator(model.dma(), 64, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM)
    else {
        return;
    };
    let config = Mlx5Config {
        log_rq_size: 4,
        log_sq_size: 4,
        ..Mlx5Config::default()
    };
    if let Ok(mut port) = Mlx5Port::new(model.clone(), pool.clone(), "fuzz", config) {
        let _ = port.link_up();
        model.inject(&[0xffu8; 64]);
        let mut batch = PacketBatch::new();
        let _ = port.rx_burst(0, &mut batch);
        let _ = port.tx_burst(0, &mut batch);
        let _ = port.tx_reclaim(0);
    }
});
