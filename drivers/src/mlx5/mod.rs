//! NVIDIA/Mellanox ConnectX-4/5/6 ("mlx5") Ethernet driver, poll mode, no interrupts, written to
//! the device interface in `docs/mlx5.md` (shared research notes) and tested against the
//! software device model in [`model`].
//!
//! # Shape
//!
//! - [`Mlx5Hw`] is the only way to the hardware: 32/64-bit MMIO on BAR0 (init segment and UAR
//!   pages), the [`DmaAllocator`] for device-visible memory, and a delay for polling loops. The
//!   kernel implements it over the mapped BAR (`kernel/src/mlx5_port.rs`); [`model::ModelHandle`]
//!   implements it over the software device.
//! - [`cmd`]: the command queue (entry, mailboxes, tokens, delivery status, command status and
//!   syndrome decoding). [`init`]: bring-up from ENABLE_HCA to the port's queues and steering;
//!   page requests at any time. [`queues`]: CQ/SQ/RQ rings. [`port`]: [`Mlx5Port`], the
//!   [`Nic`](crate::nic::Nic). [`health`]: fatal syndromes and dead-device detection.
//! - [`layouts`]: the one field table, shared with the model.
//!
//! One PCI function drives one Ethernet port (ConnectX exposes one function per port); each
//! [`Mlx5Port`] owns its HCA and tears it down (TEARDOWN_HCA, DISABLE_HCA) when dropped.

pub mod cmd;
pub mod health;
pub mod init;
pub mod layouts;
#[cfg(any(test, feature = "mlx5-model"))]
pub mod model;
pub mod port;
pub mod queues;

use core::fmt;
use core::marker::PhantomData;

use crate::dma::{DmaAllocator, DmaRegion, PAGE_SIZE};
use crate::pci::PciFunction;

pub use cmd::{CmdError, DeliveryStatus};
pub use health::HealthError;
pub use port::{Mlx5Config, Mlx5Port};

/// PCI vendor id of NVIDIA/Mellanox.
pub const VENDOR_MELLANOX: u16 = 0x15b3;

/// Physical-function device ids this driver binds to, with their names.
pub const DEVICE_IDS: &[(u16, &str)] = &[
    (0x1013, "ConnectX-4"),
    (0x1015, "ConnectX-4 Lx"),
    (0x1017, "ConnectX-5"),
    (0x1019, "ConnectX-5 Ex"),
    (0x101b, "ConnectX-6"),
    (0x101d, "ConnectX-6 Dx"),
    (0x101f, "ConnectX-6 Lx"),
];

/// The model name of a supported function, `None` for any other device (VFs included).
pub fn probe(function: &PciFunction) -> Option<&'static str> {
    if function.vendor != VENDOR_MELLANOX {
        return None;
    }
    DEVICE_IDS
        .iter()
        .find(|(id, _)| *id == function.device)
        .map(|(_, name)| *name)
}

/// Turns on memory decoding and bus mastering (and INTx off: the driver polls) for an mlx5
/// function before its BAR0 is used.
pub fn enable_pci_function<C: crate::pci::ConfigurationAccess>(
    root: &mut crate::pci::PciRoot<C>,
    function: crate::pci::DeviceFunction,
) {
    use virtio_drivers::transport::pci::bus::Command;
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
    );
}

/// Hardware access for one mlx5 PCI function.
///
/// Register values are host-order numbers: the implementation does the big-endian conversion
/// of the BAR0 words (the init segment and doorbells are big-endian, docs/mlx5.md §7.6.1).
pub trait Mlx5Hw {
    /// Reads the 32-bit register at byte `offset` of BAR0.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at byte `offset` of BAR0.
    fn write32(&mut self, offset: usize, value: u32);
    /// One 64-bit write at byte `offset` of BAR0 (a UAR doorbell); `value`'s most significant
    /// byte goes to the lowest address.
    fn write64(&mut self, offset: usize, value: u64);
    /// Device-visible memory: command queue, mailboxes, pages given to the firmware, rings.
    fn allocator(&self) -> &'static dyn DmaAllocator;
    /// Waits about `us` microseconds (command and initialization polling).
    fn delay_us(&mut self, us: u32);
    /// Size of BAR0 in bytes (UAR pages beyond it are refused).
    fn bar_size(&self) -> usize;
    /// A monotonic clock in microseconds, if the platform has one. With it, the health
    /// counter is sampled at most every [`health::COUNTER_SAMPLE_US`], so a port polled from
    /// a busy loop does not mistake a counter that ticks slowly for a hung firmware; without
    /// it, every health poll samples the counter.
    fn now_us(&mut self) -> Option<u64> {
        None
    }
}

/// Everything that stops an mlx5 port from coming up or keeps it down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mlx5Error {
    /// The firmware speaks a command interface revision other than 5.
    CmdifRevision(u32),
    /// `initializing` did not clear in time.
    InitTimeout,
    /// A command failed (delivery, status, timeout, malformed output).
    Cmd(CmdError),
    /// The device reports a fatal condition or is gone.
    Health(HealthError),
    /// Not enough DMA memory.
    OutOfDmaMemory,
    /// The device lacks something the driver needs (ISSI 1, Ethernet port type, ...).
    Unsupported(&'static str),
    /// The device returned a value the driver cannot use (a UAR outside BAR0, ...).
    BadDeviceValue(&'static str),
}

impl fmt::Display for Mlx5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mlx5Error::CmdifRevision(r) => write!(f, "command interface revision {r}, need 5"),
            Mlx5Error::InitTimeout => f.write_str("firmware stayed in initializing"),
            Mlx5Error::Cmd(e) => write!(f, "{e}"),
            Mlx5Error::Health(e) => write!(f, "{e}"),
            Mlx5Error::OutOfDmaMemory => f.write_str("out of DMA memory"),
            Mlx5Error::Unsupported(what) => write!(f, "device does not support {what}"),
            Mlx5Error::BadDeviceValue(what) => write!(f, "device returned a bad {what}"),
        }
    }
}

impl From<CmdError> for Mlx5Error {
    fn from(e: CmdError) -> Self {
        match e {
            CmdError::Health(h) => Mlx5Error::Health(h),
            CmdError::OutOfDmaMemory => Mlx5Error::OutOfDmaMemory,
            e => Mlx5Error::Cmd(e),
        }
    }
}

impl From<HealthError> for Mlx5Error {
    fn from(e: HealthError) -> Self {
        Mlx5Error::Health(e)
    }
}

/// An owned, zeroed, page-aligned DMA region the driver shares with the device.
///
/// Accesses are volatile (the device writes concurrently) and bounds-checked: an offset from
/// device data that lies outside reads as 0 and writes nothing. Not `Send`/`Sync`.
pub struct DmaMem {
    region: DmaRegion,
    allocator: &'static dyn DmaAllocator,
    _not_sync: PhantomData<*mut u8>,
}

impl DmaMem {
    /// At least `bytes` bytes (whole pages), zeroed.
    pub fn alloc(allocator: &'static dyn DmaAllocator, bytes: usize) -> Option<DmaMem> {
        let pages = bytes.max(1).div_ceil(PAGE_SIZE);
        let region = allocator.alloc_contiguous(pages)?;
        let mem = DmaMem {
            region,
            allocator,
            _not_sync: PhantomData,
        };
        if region.len < pages * PAGE_SIZE
            || region.virt == 0
            || region.virt % PAGE_SIZE != 0
            || region.phys % PAGE_SIZE as u64 != 0
        {
            return None; // dropped: returned to the allocator
        }
        mem.fill(0, region.len, 0);
        Some(mem)
    }

    /// Device (physical) address of byte 0.
    #[inline]
    pub fn phys(&self) -> u64 {
        self.region.phys
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Always false (regions are at least one page).
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    #[inline]
    fn ptr(&self, off: usize, len: usize) -> Option<*mut u8> {
        let end = off.checked_add(len)?;
        (end <= self.region.len).then(|| (self.region.virt + off) as *mut u8)
    }

    /// Copies bytes out (zeros where out of range).
    pub fn read(&self, off: usize, out: &mut [u8]) {
        match self.ptr(off, out.len()) {
            Some(p) => {
                for (i, b) in out.iter_mut().enumerate() {
                    // SAFETY: `p..p+len` lies inside our live region (checked by `ptr`); volatile
                    // because the device may write it at any time.
                    *b = unsafe { core::ptr::read_volatile(p.add(i)) };
                }
            }
            None => out.fill(0),
        }
    }

    /// Copies bytes in (nothing if out of range).
    pub fn write(&self, off: usize, data: &[u8]) {
        if let Some(p) = self.ptr(off, data.len()) {
            for (i, b) in data.iter().enumerate() {
                // SAFETY: as in `read`; the region is ours, the device reads it.
                unsafe { core::ptr::write_volatile(p.add(i), *b) };
            }
        }
    }

    /// Sets `len` bytes from `off` to `byte`.
    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        if let Some(p) = self.ptr(off, len) {
            for i in 0..len {
                // SAFETY: as in `write`.
                unsafe { core::ptr::write_volatile(p.add(i), byte) };
            }
        }
    }

    #[inline]
    pub fn read8(&self, off: usize) -> u8 {
        match self.ptr(off, 1) {
            // SAFETY: as in `read`.
            Some(p) => unsafe { core::ptr::read_volatile(p) },
            None => 0,
        }
    }

    #[inline]
    pub fn write8(&self, off: usize, value: u8) {
        if let Some(p) = self.ptr(off, 1) {
            // SAFETY: as in `write`.
            unsafe { core::ptr::write_volatile(p, value) };
        }
    }

    /// The big-endian dword at `off`.
    #[inline]
    pub fn read_be32(&self, off: usize) -> u32 {
        match self.ptr(off, 4) {
            // SAFETY: as in `read`; `[u8; 4]` has alignment 1.
            Some(p) => u32::from_be_bytes(unsafe { core::ptr::read_volatile(p as *const [u8; 4]) }),
            None => 0,
        }
    }

    /// Writes a big-endian dword at `off`.
    #[inline]
    pub fn write_be32(&self, off: usize, value: u32) {
        if let Some(p) = self.ptr(off, 4) {
            // SAFETY: as in `write`; `[u8; 4]` has alignment 1.
            unsafe { core::ptr::write_volatile(p as *mut [u8; 4], value.to_be_bytes()) };
        }
    }

    /// `N` bytes from `off` in one volatile read (zeros if out of range).
    #[inline]
    pub fn read_array<const N: usize>(&self, off: usize) -> [u8; N] {
        match self.ptr(off, N) {
            // SAFETY: as in `read`; `[u8; N]` has alignment 1.
            Some(p) => unsafe { core::ptr::read_volatile(p as *const [u8; N]) },
            None => [0; N],
        }
    }

    /// `N` bytes at `off` in one volatile write (nothing if out of range).
    #[inline]
    pub fn write_array<const N: usize>(&self, off: usize, bytes: [u8; N]) {
        if let Some(p) = self.ptr(off, N) {
            // SAFETY: as in `write`; `[u8; N]` has alignment 1.
            unsafe { core::ptr::write_volatile(p as *mut [u8; N], bytes) };
        }
    }

    /// Writes a big-endian 64-bit value (two dwords, high first).
    #[inline]
    pub fn write_be64(&self, off: usize, value: u64) {
        if let Some(p) = self.ptr(off, 8) {
            // SAFETY: as in `write`; `[u8; 8]` has alignment 1.
            unsafe { core::ptr::write_volatile(p as *mut [u8; 8], value.to_be_bytes()) };
        }
    }
}

impl Drop for DmaMem {
    fn drop(&mut self) {
        // SAFETY: the region came from this allocator; owners stop the device from using it
        // (queue destroyed, HCA torn down, or device dead) before dropping.
        unsafe { self.allocator.dealloc(self.region) };
    }
}

impl fmt::Debug for DmaMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaMem({:#x}/{})", self.region.phys, self.region.len)
    }
}
