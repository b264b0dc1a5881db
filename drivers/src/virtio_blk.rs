//! Poll-mode virtio-blk for the configuration disk: synchronous block reads, writes and
//! flushes through virtio-drivers' `VirtIOBlk` (one request in flight; the disk is on the
//! slow path: one append per acknowledged OVSDB transaction). FLUSH is negotiated when the
//! device offers it (QEMU does), so `flush` returning Ok means the data reached the host.

use core::fmt;

use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};

use crate::dma::DmaHal;

/// Largest single request (bytes); bigger transfers are split.
const MAX_REQUEST: usize = 64 * 1024;

/// What went wrong.
#[derive(Debug)]
pub enum VirtioBlkError {
    Pci(virtio_drivers::transport::pci::VirtioPciError),
    Device(virtio_drivers::Error),
    /// A buffer that is not whole sectors, or blocks beyond the end.
    Range,
}

impl fmt::Display for VirtioBlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtioBlkError::Pci(e) => write!(f, "PCI transport: {e:?}"),
            VirtioBlkError::Device(e) => write!(f, "device: {e:?}"),
            VirtioBlkError::Range => f.write_str("transfer outside the disk or not whole sectors"),
        }
    }
}

/// A virtio-blk disk.
pub struct VirtioBlk {
    dev: VirtIOBlk<DmaHal, PciTransport>,
    capacity: u64,
    readonly: bool,
}

impl VirtioBlk {
    /// Sector size in bytes.
    pub const SECTOR: usize = SECTOR_SIZE;

    /// Brings up the virtio-blk device at `function` (memory decoding and bus mastering on,
    /// INTx off: we poll).
    pub fn from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
    ) -> Result<VirtioBlk, VirtioBlkError> {
        let (_, command) = root.get_status_command(function);
        root.set_command(
            function,
            command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
        );
        let transport =
            PciTransport::new::<DmaHal, C>(root, function).map_err(VirtioBlkError::Pci)?;
        let dev = VirtIOBlk::<DmaHal, _>::new(transport).map_err(VirtioBlkError::Device)?;
        Ok(VirtioBlk {
            capacity: dev.capacity(),
            readonly: dev.readonly(),
            dev,
        })
    }

    /// Size in sectors.
    pub fn capacity_blocks(&self) -> u64 {
        self.capacity
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    fn check(&self, lba: u64, len: usize) -> Result<(), VirtioBlkError> {
        let blocks = (len / SECTOR_SIZE) as u64;
        if !len.is_multiple_of(SECTOR_SIZE)
            || lba.checked_add(blocks).is_none_or(|e| e > self.capacity)
        {
            return Err(VirtioBlkError::Range);
        }
        Ok(())
    }

    pub fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), VirtioBlkError> {
        self.check(lba, buf.len())?;
        for (i, chunk) in buf.chunks_mut(MAX_REQUEST).enumerate() {
            let at = lba + (i * MAX_REQUEST / SECTOR_SIZE) as u64;
            self.dev
                .read_blocks(at as usize, chunk)
                .map_err(VirtioBlkError::Device)?;
        }
        Ok(())
    }

    pub fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), VirtioBlkError> {
        self.check(lba, buf.len())?;
        for (i, chunk) in buf.chunks(MAX_REQUEST).enumerate() {
            let at = lba + (i * MAX_REQUEST / SECTOR_SIZE) as u64;
            self.dev
                .write_blocks(at as usize, chunk)
                .map_err(VirtioBlkError::Device)?;
        }
        Ok(())
    }

    /// Makes every completed write durable (VIRTIO_BLK_T_FLUSH).
    pub fn flush(&mut self) -> Result<(), VirtioBlkError> {
        self.dev.flush().map_err(VirtioBlkError::Device)
    }
}
