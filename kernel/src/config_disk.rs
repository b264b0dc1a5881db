//! TEMPORARY STUB by the lead so the kernel builds before the virtio-blk adapter lands;
//! the store engineer replaces this file entirely.
pub struct ConfigDisk;
impl mgmt::store::BlockDevice for ConfigDisk {
    fn block_size(&self) -> usize {
        512
    }
    fn num_blocks(&self) -> u64 {
        0
    }
    fn read(&mut self, _lba: u64, _buf: &mut [u8]) -> Result<(), mgmt::store::BlockError> {
        Err(mgmt::store::BlockError::Device(alloc::string::String::new()))
    }
    fn write(&mut self, _lba: u64, _buf: &[u8]) -> Result<(), mgmt::store::BlockError> {
        Err(mgmt::store::BlockError::Device(alloc::string::String::new()))
    }
    fn flush(&mut self) -> Result<(), mgmt::store::BlockError> {
        Err(mgmt::store::BlockError::Device(alloc::string::String::new()))
    }
}
pub fn probe(_functions: &[drivers::pci::PciFunction]) -> Option<ConfigDisk> {
    None
}
