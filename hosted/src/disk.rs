//! The hosted runner's configuration disk: a file as `mgmt::store`'s block device. `flush` is
//! `fdatasync`, so an acknowledged OVSDB transaction is on stable storage as in the image.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use mgmt::store::{BlockDevice, BlockError};

const BLOCK: usize = 512;

pub struct FileDisk {
    file: File,
    blocks: u64,
}

impl FileDisk {
    /// Opens `path`, creating a sparse file of `size_mb` MiB if it does not exist (like the
    /// QEMU runner's config disk). An existing file keeps its size.
    pub fn open(path: &Path, size_mb: u64) -> std::io::Result<FileDisk> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() == 0 {
            file.set_len(size_mb << 20)?;
        }
        let blocks = file.metadata()?.len() / BLOCK as u64;
        Ok(FileDisk { file, blocks })
    }

    fn check(&self, lba: u64, len: usize) -> Result<u64, BlockError> {
        if !len.is_multiple_of(BLOCK) {
            return Err(BlockError::BadLength(len));
        }
        let n = (len / BLOCK) as u64;
        match lba.checked_add(n) {
            Some(end) if end <= self.blocks => Ok(lba * BLOCK as u64),
            _ => Err(BlockError::OutOfRange { lba, blocks: n }),
        }
    }
}

impl BlockDevice for FileDisk {
    fn block_size(&self) -> usize {
        BLOCK
    }

    fn num_blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let off = self.check(lba, buf.len())?;
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| BlockError::Device(e.to_string()))
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let off = self.check(lba, buf.len())?;
        self.file
            .write_all_at(buf, off)
            .map_err(|e| BlockError::Device(e.to_string()))
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.file
            .sync_data()
            .map_err(|e| BlockError::Device(e.to_string()))
    }
}
