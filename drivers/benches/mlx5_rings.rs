//! Per-packet cost of the mlx5 driver's data path on the device model's rings: descriptors
//! written (send WQEs, receive WQEs reposted) and completions reaped per second.
//!
//! Only the driver's side is timed. The model's engines run between timed sections: received
//! frames are injected before `rx_burst` is timed, and send doorbells are queued
//! (`Model::defer_tx`) and processed after `tx_burst` returns, before `tx_reclaim` is timed.
//!
//! Run: `CARGO_TARGET_DIR=/work/tgt-mlx5 cargo bench -p drivers --bench mlx5_rings`

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drivers::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM, PacketBatch, PacketPool};
use drivers::mlx5::model::{ModelConfig, ModelHandle};
use drivers::mlx5::{Mlx5Config, Mlx5Port};
use drivers::nic::Nic;

const BURST: usize = 32;

fn setup() -> (ModelHandle, Rc<PacketPool>, Mlx5Port<ModelHandle>) {
    let model = ModelHandle::new(ModelConfig::default());
    let pool = PacketPool::with_allocator(model.dma(), 2048, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM)
        .expect("pool");
    let config = Mlx5Config {
        // Health and events are slow-path work; keep them out of the per-packet numbers
        // except at the default rate.
        ..Mlx5Config::default()
    };
    let port = Mlx5Port::new(model.clone(), pool.clone(), "bench", config).expect("bring-up");
    (model, pool, port)
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x5au8; len];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn tx(c: &mut Criterion, len: usize) {
    let (model, pool, mut port) = setup();
    model.with(|m| m.defer_tx = true);
    let f = frame(len);
    let mut group = c.benchmark_group(format!("mlx5_tx_{len}B"));
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("tx_burst_32 (WQEs written + 1 doorbell)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut batch = PacketBatch::new();
                for _ in 0..BURST {
                    let mut buf = pool.alloc().expect("buffer");
                    buf.copy_from_slice(&f);
                    let _ = batch.push(buf);
                }
                let t = Instant::now();
                let sent = port.tx_burst(0, &mut batch);
                total += t.elapsed();
                assert_eq!(sent, BURST);
                model.with(|m| {
                    m.run_deferred_tx();
                    m.wire_tx.clear();
                });
                port.tx_reclaim(0);
            }
            total
        })
    });
    group.bench_function("tx_reclaim_32 (completion reaped, buffers freed)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut batch = PacketBatch::new();
                for _ in 0..BURST {
                    let mut buf = pool.alloc().expect("buffer");
                    buf.copy_from_slice(&f);
                    let _ = batch.push(buf);
                }
                port.tx_burst(0, &mut batch);
                model.with(|m| {
                    m.run_deferred_tx();
                    m.wire_tx.clear();
                });
                let t = Instant::now();
                let reaped = port.tx_reclaim(0);
                total += t.elapsed();
                assert_eq!(reaped, BURST);
            }
            total
        })
    });
    group.finish();
}

fn rx(c: &mut Criterion, len: usize) {
    let (model, _pool, mut port) = setup();
    let f = frame(len);
    let mut group = c.benchmark_group(format!("mlx5_rx_{len}B"));
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("rx_burst_32 (CQEs reaped + RX WQEs reposted)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..BURST {
                    assert!(model.inject(&f));
                }
                let mut batch = PacketBatch::new();
                let t = Instant::now();
                let n = port.rx_burst(0, &mut batch);
                drop(black_box(batch));
                total += t.elapsed();
                assert_eq!(n, BURST);
            }
            total
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    tx(c, 64);
    tx(c, 1514);
    rx(c, 64);
    rx(c, 1514);
}

criterion_group! {
    name = mlx5;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(mlx5);
