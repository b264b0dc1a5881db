//! mlx5 (ConnectX-4/5/6) ports on hardware: the kernel's [`Mlx5Hw`] over BAR0 (mapped
//! uncached through the memory module, identity-mapped like every MMIO range here) and the
//! kernel's DMA allocator, and [`probe`], which brings up every supported function as a
//! bridge port.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;

use drivers::dma::{DmaAllocator, PacketPool};
use drivers::mlx5::{self, Mlx5Config, Mlx5Hw, Mlx5Port};
use drivers::nic::Nic;
use drivers::pci::{Bar, PciFunction, PciRoot, PortIoCam};

/// BAR0 of one mlx5 function, mapped at `base` (identity) for `size` bytes.
pub struct KernelMlx5Hw {
    base: usize,
    size: usize,
}

impl KernelMlx5Hw {
    /// Maps BAR0 of `function`. `None` if BAR0 is not an assigned memory BAR or mapping fails.
    fn map(function: &PciFunction) -> Option<KernelMlx5Hw> {
        let (addr, size) = match function.bars[0]? {
            Bar::Mem64 { addr, size, .. } => (addr, size),
            Bar::Mem32 { addr, size, .. } => (u64::from(addr), u64::from(size)),
            Bar::Io { .. } => return None,
        };
        if addr == 0 || size < 0x2000 {
            return None;
        }
        if let Err(e) = crate::memory::map_mmio(addr, size) {
            log::error!(
                "mlx5 {}: cannot map BAR0 {addr:#x}/{size:#x}: {e}",
                function.addr
            );
            return None;
        }
        Some(KernelMlx5Hw {
            base: addr as usize,
            size: size as usize,
        })
    }

    #[inline]
    fn reg(&self, offset: usize, width: usize) -> Option<usize> {
        (offset.is_multiple_of(width) && offset.checked_add(width)? <= self.size)
            .then_some(self.base + offset)
    }
}

impl Mlx5Hw for KernelMlx5Hw {
    #[inline]
    fn read32(&mut self, offset: usize) -> u32 {
        match self.reg(offset, 4) {
            // SAFETY: `p` is an aligned register inside BAR0, mapped uncached by `map`; the
            // device's registers are big-endian.
            Some(p) => u32::from_be(unsafe { core::ptr::read_volatile(p as *const u32) }),
            None => u32::MAX,
        }
    }

    #[inline]
    fn write32(&mut self, offset: usize, value: u32) {
        if let Some(p) = self.reg(offset, 4) {
            // SAFETY: as in `read32`.
            unsafe { core::ptr::write_volatile(p as *mut u32, value.to_be()) };
        }
    }

    #[inline]
    fn write64(&mut self, offset: usize, value: u64) {
        if let Some(p) = self.reg(offset, 8) {
            // SAFETY: as in `read32`; one 64-bit store, most significant byte at the lowest
            // address (the doorbell is the control segment's first 8 bytes as they are).
            unsafe { core::ptr::write_volatile(p as *mut u64, value.to_be()) };
        }
    }

    fn allocator(&self) -> &'static dyn DmaAllocator {
        &crate::dma::KERNEL_DMA
    }

    fn delay_us(&mut self, us: u32) {
        crate::time::delay_us(u64::from(us));
    }

    fn bar_size(&self) -> usize {
        self.size
    }

    fn now_us(&mut self) -> Option<u64> {
        Some(crate::time::now_us())
    }
}

/// Brings up every ConnectX-4/5/6 function in `functions` (memory decoding and bus mastering
/// on, INTx off: the driver polls) and returns them as bridge ports. Failures are logged and
/// skipped: the rest of the switch runs without that port.
pub fn probe(functions: &[PciFunction], pool: &Rc<PacketPool>) -> Vec<Box<dyn Nic>> {
    let mut ports: Vec<Box<dyn Nic>> = Vec::new();
    // SAFETY: PCI configuration access is used from this single boot thread only.
    let mut root = PciRoot::new(unsafe { PortIoCam::new() });
    for f in functions {
        let Some(model) = mlx5::probe(f) else {
            continue;
        };
        mlx5::enable_pci_function(&mut root, f.addr);
        let Some(hw) = KernelMlx5Hw::map(f) else {
            log::error!("mlx5 {}: {model}: BAR0 unusable", f.addr);
            continue;
        };
        let label = format!("{}", f.addr);
        match Mlx5Port::new(hw, pool.clone(), &label, Mlx5Config::default()) {
            Ok(port) => {
                log::info!("mlx5 {}: {model} is a bridge port", f.addr);
                ports.push(Box::new(port));
            }
            Err(e) => log::error!("mlx5 {}: {model}: cannot bring up: {e}", f.addr),
        }
    }
    ports
}
