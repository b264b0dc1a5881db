//! Shared set-up for the mlx5 tests: a model, a packet pool in the model's DMA memory, a port.
#![allow(dead_code)]

use std::rc::Rc;

use drivers::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM, PacketBatch, PacketPool};
use drivers::mlx5::model::{ModelConfig, ModelHandle};
use drivers::mlx5::{Mlx5Config, Mlx5Port};
use switch_core::packet::Frame;

pub fn model() -> ModelHandle {
    ModelHandle::new(ModelConfig::default())
}

pub fn pool(h: &ModelHandle, bufs: usize) -> Rc<PacketPool> {
    PacketPool::with_allocator(h.dma(), bufs, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).expect("pool")
}

/// Small rings so tests wrap them quickly; services every 4 bursts.
pub fn config() -> Mlx5Config {
    Mlx5Config {
        log_rq_size: 4,
        log_sq_size: 4,
        service_interval: 4,
        ..Mlx5Config::default()
    }
}

pub fn port(h: &ModelHandle, pool: &Rc<PacketPool>) -> Mlx5Port<ModelHandle> {
    Mlx5Port::new(h.clone(), pool.clone(), "00:05.0", config()).expect("bring-up")
}

/// An Ethernet frame of `len` bytes whose payload encodes `seq`.
pub fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    for (i, b) in f.iter_mut().enumerate().skip(14) {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}

/// A VLAN-tagged frame (802.1Q, VID `vid`, PCP 5).
pub fn vlan_frame(seq: u32, vid: u16, len: usize) -> Vec<u8> {
    let mut f = frame(seq, len);
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    let tci = (5u16 << 13) | vid;
    f[14..16].copy_from_slice(&tci.to_be_bytes());
    f[16..18].copy_from_slice(&[0x08, 0x00]);
    f
}

/// A batch of buffers from `pool` holding `frames`.
pub fn batch_of(pool: &Rc<PacketPool>, frames: &[Vec<u8>]) -> PacketBatch {
    let mut b = PacketBatch::new();
    for f in frames {
        let mut buf = pool.alloc().expect("pool buffer");
        assert!(buf.copy_from_slice(f));
        b.push(buf).expect("batch room");
    }
    b
}

pub fn bytes(batch: &PacketBatch) -> Vec<Vec<u8>> {
    batch.iter().map(|b| b.data().to_vec()).collect()
}
