//! A block device in memory: every write is durable at once (for tests, fuzzing and the host).

use alloc::vec::Vec;

use super::{BlockDevice, BlockError};

/// A RAM disk of `blocks` blocks of `block_size` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamDisk {
    block_size: usize,
    data: Vec<u8>,
}

impl RamDisk {
    /// A zeroed disk.
    pub fn new(block_size: usize, blocks: u64) -> RamDisk {
        RamDisk {
            block_size,
            data: alloc::vec![0; block_size * blocks as usize],
        }
    }

    /// A disk holding `bytes` (zero-padded to whole blocks).
    pub fn from_bytes(block_size: usize, bytes: &[u8]) -> RamDisk {
        let mut data = bytes.to_vec();
        data.resize(bytes.len().div_ceil(block_size) * block_size, 0);
        RamDisk { block_size, data }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn range(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        if !len.is_multiple_of(self.block_size) {
            return Err(BlockError::BadLength(len));
        }
        let blocks = (len / self.block_size) as u64;
        let out = BlockError::OutOfRange { lba, blocks };
        let end = lba.checked_add(blocks).ok_or(out.clone())?;
        if end > self.num_blocks() {
            return Err(out);
        }
        let start = lba as usize * self.block_size;
        Ok(start..start + len)
    }
}

impl BlockDevice for RamDisk {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn num_blocks(&self) -> u64 {
        (self.data.len() / self.block_size) as u64
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}
