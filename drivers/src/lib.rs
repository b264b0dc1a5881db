//! ironflow device drivers: PCI enumeration, the DMA packet buffer pool, the NIC trait,
//! virtio-net (poll mode) and mlx5 (ConnectX-4/5/6, with a software device model). `no_std`, host-testable where the hardware allows.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod pci;

pub mod dma;
pub mod mlx5;
pub mod nic;
pub mod virtio_blk;
pub mod virtio_net;
