//! The configuration disk: the first virtio-blk device, as `mgmt::store`'s block device.

use alloc::string::ToString;

use drivers::pci::{PciFunction, PciRoot, PortIoCam};
use drivers::virtio_blk::VirtioBlk;
use mgmt::store::{BlockDevice, BlockError};

pub struct ConfigDisk {
    blk: VirtioBlk,
}

/// Brings up the first virtio-blk function; `None` (logged) if there is none or it fails.
pub fn probe(functions: &[PciFunction]) -> Option<ConfigDisk> {
    let f = functions.iter().find(|f| f.is_virtio_blk())?;
    // SAFETY: PCI configuration access is used from this single boot thread only.
    let mut root = PciRoot::new(unsafe { PortIoCam::new() });
    match VirtioBlk::from_pci(&mut root, f.addr) {
        Ok(blk) => {
            log::info!(
                "config disk: virtio-blk {} with {} sectors ({} KiB){}",
                f.addr,
                blk.capacity_blocks(),
                blk.capacity_blocks() / 2,
                if blk.readonly() { ", read-only" } else { "" }
            );
            Some(ConfigDisk { blk })
        }
        Err(e) => {
            log::error!("config disk: virtio-blk {}: cannot bring up: {e}", f.addr);
            None
        }
    }
}

fn dev_err(e: drivers::virtio_blk::VirtioBlkError) -> BlockError {
    BlockError::Device(e.to_string())
}

impl BlockDevice for ConfigDisk {
    fn block_size(&self) -> usize {
        VirtioBlk::SECTOR
    }

    fn num_blocks(&self) -> u64 {
        self.blk.capacity_blocks()
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.blk.read_blocks(lba, buf).map_err(dev_err)
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.blk.write_blocks(lba, buf).map_err(dev_err)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.blk.flush().map_err(dev_err)
    }
}
