//! Direct queue notification for virtio-pci: the MMIO address of each queue's notify register,
//! found once from the PCI capabilities, so a kick is one MMIO write.
//!
//! virtio-drivers 0.13's `PciTransport::notify` writes `queue_select`, reads
//! `queue_notify_off`, then writes the notify register: three MMIO accesses, i.e. three VM exits
//! under a hypervisor (the first two handled in QEMU's user space; the last one is an
//! ioeventfd), for every kick. This module computes the address the third access goes to.

use core::ptr::{self, NonNull};

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

use crate::dma::DmaAllocator;

const PCI_STATUS_CAP_LIST: u32 = 1 << 4;
const PCI_CAP_PTR: u8 = 0x34;
const PCI_BAR0: u8 = 0x10;
const PCI_CAP_ID_VNDR: u32 = 0x09;
const VIRTIO_PCI_CAP_COMMON_CFG: u32 = 1;
const VIRTIO_PCI_CAP_NOTIFY_CFG: u32 = 2;
/// `virtio_pci_common_cfg.queue_select` and `.queue_notify_off` (virtio 1.x 4.1.4.3).
const COMMON_QUEUE_SELECT: usize = 0x16;
const COMMON_QUEUE_NOTIFY_OFF: usize = 0x1e;
const COMMON_CFG_MIN_LEN: u32 = 0x38;

/// A virtio structure in a BAR (`virtio_pci_cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CapRegion {
    bar: u8,
    offset: u32,
    length: u32,
}

/// The notify registers of queues `queues`, as virtual addresses; `None` if the capabilities
/// do not describe a usable notify region (the caller keeps using `Transport::notify`).
///
/// # Safety
///
/// `cam` must read the configuration space of the virtio-pci function `function`, whose BARs
/// are assigned and mapped as `allocator.mmio_phys_to_virt` says, and the caller must own the
/// device (this writes its `queue_select` register; virtio-drivers' transport rewrites it before
/// every use, so sharing the device with it is fine).
pub(crate) unsafe fn notify_addresses<C: ConfigurationAccess, const N: usize>(
    cam: &C,
    function: DeviceFunction,
    allocator: &dyn DmaAllocator,
    queues: [u16; N],
) -> Option<[NonNull<u16>; N]> {
    let status = cam.read_word(function, 0x04) >> 16;
    if status & PCI_STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut common = None;
    let mut notify = None;
    let mut next = (cam.read_word(function, PCI_CAP_PTR) & 0xfc) as u8;
    // At most 48 capabilities fit in the 192 bytes after the header: bounds a looping list.
    for _ in 0..48 {
        if next < 0x40 {
            break;
        }
        let at = next;
        let header = cam.read_word(function, at);
        next = ((header >> 8) & 0xfc) as u8;
        let cap_len = (header >> 16) & 0xff;
        let cfg_type = header >> 24;
        if header & 0xff != PCI_CAP_ID_VNDR || cap_len < 16 {
            continue;
        }
        let region = CapRegion {
            bar: cam.read_word(function, at + 4) as u8,
            offset: cam.read_word(function, at + 8),
            length: cam.read_word(function, at + 12),
        };
        match cfg_type {
            VIRTIO_PCI_CAP_COMMON_CFG if common.is_none() => common = Some(region),
            VIRTIO_PCI_CAP_NOTIFY_CFG if notify.is_none() && cap_len >= 20 => {
                notify = Some((region, cam.read_word(function, at + 16)));
            }
            _ => {}
        }
    }
    let common = common?;
    let (notify, multiplier) = notify?;
    if common.length < COMMON_CFG_MIN_LEN || multiplier % 2 != 0 {
        return None;
    }
    let common_phys = bar_address(cam, function, common.bar)?.checked_add(common.offset.into())?;
    let common_virt = allocator.mmio_phys_to_virt(common_phys, common.length as usize);
    let notify_phys = bar_address(cam, function, notify.bar)?.checked_add(notify.offset.into())?;
    if common_virt == 0 || common_virt % 4 != 0 {
        return None;
    }

    let mut out = [NonNull::dangling(); N];
    for (slot, queue) in out.iter_mut().zip(queues) {
        // SAFETY: the common configuration structure is `common.length >= 0x38` bytes of
        // device MMIO at `common_virt` (caller's contract); both registers are aligned u16s.
        let notify_off = unsafe {
            ptr::write_volatile(
                (common_virt + COMMON_QUEUE_SELECT) as *mut u16,
                queue.to_le(),
            );
            u16::from_le(ptr::read_volatile(
                (common_virt + COMMON_QUEUE_NOTIFY_OFF) as *const u16,
            ))
        };
        let offset = u64::from(notify_off) * u64::from(multiplier);
        if offset + 2 > u64::from(notify.length) {
            return None;
        }
        let virt = allocator.mmio_phys_to_virt(notify_phys + offset, 2);
        if virt % 2 != 0 {
            return None;
        }
        *slot = NonNull::new(virt as *mut u16)?;
    }
    Some(out)
}

/// The address a memory BAR decodes, read live from configuration space.
fn bar_address<C: ConfigurationAccess>(cam: &C, function: DeviceFunction, bar: u8) -> Option<u64> {
    if bar > 5 {
        return None;
    }
    let low = cam.read_word(function, PCI_BAR0 + 4 * bar);
    if low & 1 != 0 {
        return None; // I/O BAR
    }
    let address = match (low >> 1) & 3 {
        0 => u64::from(low & !0xf),
        2 if bar < 5 => {
            let high = cam.read_word(function, PCI_BAR0 + 4 * (bar + 1));
            u64::from(low & !0xf) | (u64::from(high) << 32)
        }
        _ => return None,
    };
    (address != 0).then_some(address)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dma::DmaAllocator;
    use crate::dma::test_support::HostDmaAllocator;

    /// Configuration space of one function, with virtio capabilities pointing into a host
    /// buffer that stands in for BAR 4 (64-bit).
    pub struct FakeCam {
        pub words: [u32; 64],
    }

    impl ConfigurationAccess for FakeCam {
        fn read_word(&self, _f: DeviceFunction, offset: u8) -> u32 {
            self.words[offset as usize / 4]
        }
        fn write_word(&mut self, _f: DeviceFunction, offset: u8, data: u32) {
            self.words[offset as usize / 4] = data;
        }
        unsafe fn unsafe_clone(&self) -> Self {
            FakeCam { words: self.words }
        }
    }

    /// A QEMU-like layout: common cfg at BAR4+0, notify at BAR4+0x3000, multiplier 4, and
    /// `queue_notify_off` preset in the fake common cfg.
    pub fn qemu_like(bar: &mut [u32], notify_off: u16) -> FakeCam {
        let base = bar.as_mut_ptr() as u64;
        // queue_notify_off at 0x1e (upper half of word 7).
        bar[7] = u32::from(notify_off) << 16;
        let mut w = [0u32; 64];
        w[1] = (PCI_STATUS_CAP_LIST) << 16; // status: capability list
        w[0x34 / 4] = 0x40;
        w[0x10 / 4 + 4] = (base as u32 & !0xf) | 0b100; // BAR4: 64-bit memory
        w[0x10 / 4 + 5] = (base >> 32) as u32;
        // 0x40: an MSI-X capability (not vendor) to skip, next 0x50.
        w[0x40 / 4] = 0x11 | (0x50 << 8);
        // 0x50: common cfg: vndr, next 0x60, len 16, type 1; bar 4, offset 0, length 0x1000.
        w[0x50 / 4] = 0x09 | (0x60 << 8) | (16 << 16) | (1 << 24);
        w[0x54 / 4] = 4;
        w[0x58 / 4] = 0;
        w[0x5c / 4] = 0x1000;
        // 0x60: notify: len 20, type 2; bar 4, offset 0x3000, length 0x1000, multiplier 4.
        w[0x60 / 4] = 0x09 | (20 << 16) | (2 << 24);
        w[0x64 / 4] = 4;
        w[0x68 / 4] = 0x3000;
        w[0x6c / 4] = 0x1000;
        w[0x70 / 4] = 4;
        FakeCam { words: w }
    }

    /// A page-aligned stand-in for a BAR (BAR addresses have their low 4 bits masked off).
    pub fn fake_bar() -> &'static mut [u32] {
        let region = HostDmaAllocator::leak().alloc_contiguous(4).unwrap();
        // SAFETY: 16 KiB of zeroed memory owned by us for the rest of the test run.
        unsafe { core::slice::from_raw_parts_mut(region.virt as *mut u32, 0x4000 / 4) }
    }

    const F: DeviceFunction = DeviceFunction {
        bus: 0,
        device: 3,
        function: 0,
    };

    #[test]
    fn finds_notify_registers_like_virtio_drivers() {
        let bar = fake_bar();
        let base = bar.as_ptr() as usize;
        let cam = qemu_like(bar, 5);
        let a = HostDmaAllocator::leak();
        // SAFETY: the fake BAR is host memory we own.
        let [rx, tx] = unsafe { notify_addresses(&cam, F, a, [0, 1]) }.unwrap();
        assert_eq!(rx.as_ptr() as usize, base + 0x3000 + 5 * 4);
        assert_eq!(
            tx, rx,
            "the fake common cfg returns the same notify_off for both"
        );
        // queue_select was written (last: queue 1).
        // SAFETY: reading our own buffer.
        let sel = unsafe { ptr::read_volatile((base + COMMON_QUEUE_SELECT) as *const u16) };
        assert_eq!(sel, 1);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        let a = HostDmaAllocator::leak();
        let check = |edit: &dyn Fn(&mut FakeCam), notify_off: u16| {
            let bar = fake_bar();
            let mut cam = qemu_like(bar, notify_off);
            edit(&mut cam);
            // SAFETY: the fake BAR is host memory we own.
            unsafe { notify_addresses(&cam, F, a, [0, 1]) }.is_none()
        };
        assert!(!check(&|_| {}, 0));
        assert!(check(&|c| c.words[1] = 0, 0), "no capability list");
        assert!(check(&|c| c.words[0x60 / 4] = 0x11, 0), "no notify cap");
        assert!(check(&|c| c.words[0x50 / 4] &= !0xff, 0), "no common cap");
        assert!(check(&|c| c.words[0x70 / 4] = 3, 0), "odd multiplier");
        assert!(check(&|_| {}, 0x400), "notify_off beyond the region");
        assert!(
            check(&|c| c.words[0x64 / 4] = 7, 0),
            "BAR index out of range"
        );
        assert!(check(&|c| c.words[0x10 / 4 + 4] |= 1, 0), "I/O BAR");
        assert!(
            check(
                &|c| {
                    c.words[0x10 / 4 + 4] = 0b100;
                    c.words[0x10 / 4 + 5] = 0;
                },
                0
            ),
            "unassigned BAR"
        );
        // A capability list that loops terminates.
        assert!(check(
            &|c| {
                c.words[0x40 / 4] = 0x11 | (0x40 << 8);
            },
            0
        ));
    }
}
