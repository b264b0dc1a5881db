//! PCI enumeration: every bus reachable from the host bridge (PCI-to-PCI bridges followed), each
//! function's identity, class and decoded BARs.
//!
//! Configuration space is reached through virtio-drivers' `ConfigurationAccess` trait so the
//! functions found here can be handed straight to `virtio_drivers::transport::pci::PciTransport`.
//! On x86 the legacy port-I/O mechanism (`PortIoCam`, 0xCF8/0xCFC) works on both `pc` and `q35`.

use alloc::vec::Vec;
use core::fmt;
pub use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};

/// One decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// I/O port range.
    Io { port: u32, size: u32 },
    /// Memory range below 4 GiB (32-bit BAR).
    Mem32 {
        addr: u32,
        size: u32,
        prefetchable: bool,
    },
    /// Memory range anywhere (64-bit BAR; occupies two BAR slots).
    Mem64 {
        addr: u64,
        size: u64,
        prefetchable: bool,
    },
}

impl Bar {
    /// Start address of a memory BAR.
    pub fn mem_addr(&self) -> Option<u64> {
        match *self {
            Bar::Mem32 { addr, .. } => Some(addr as u64),
            Bar::Mem64 { addr, .. } => Some(addr),
            Bar::Io { .. } => None,
        }
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        match *self {
            Bar::Io { size, .. } | Bar::Mem32 { size, .. } => size as u64,
            Bar::Mem64 { size, .. } => size,
        }
    }
}

/// One PCI function found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciFunction {
    pub addr: DeviceFunction,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    /// Header type without the multi-function bit (0 = endpoint, 1 = PCI-to-PCI bridge).
    pub header_type: u8,
    /// BARs by index; a 64-bit BAR sits at its first index and the next one is `None`.
    pub bars: [Option<Bar>; 6],
}

impl PciFunction {
    /// A virtio device (any transitional or modern virtio-pci id).
    pub fn is_virtio(&self) -> bool {
        self.vendor == 0x1af4 && (0x1000..=0x107f).contains(&self.device)
    }
    /// A virtio network device (transitional 0x1000 or modern 0x1041).
    pub fn is_virtio_net(&self) -> bool {
        self.vendor == 0x1af4 && (self.device == 0x1000 || self.device == 0x1041)
    }
    /// A virtio-blk device (transitional or modern).
    pub fn is_virtio_blk(&self) -> bool {
        self.vendor == 0x1af4 && (self.device == 0x1001 || self.device == 0x1042)
    }
    /// An NVIDIA/Mellanox ConnectX-4/5/6 (mlx5) function.
    pub fn is_mlx5(&self) -> bool {
        self.vendor == 0x15b3 && (0x1013..=0x1023).contains(&self.device)
    }
}

impl fmt::Display for PciFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x}",
            self.addr.bus,
            self.addr.device,
            self.addr.function,
            self.vendor,
            self.device,
            self.class,
            self.subclass,
            self.prog_if
        )?;
        if self.header_type == 1 {
            write!(f, " bridge")?;
        }
        for (i, bar) in self.bars.iter().enumerate() {
            match bar {
                Some(Bar::Io { port, size }) => write!(f, " bar{i} io {port:#x}/{size}")?,
                Some(Bar::Mem32 { addr, size, .. }) => write!(f, " bar{i} mem {addr:#x}/{size}")?,
                Some(Bar::Mem64 { addr, size, .. }) => write!(f, " bar{i} mem64 {addr:#x}/{size}")?,
                None => {}
            }
        }
        Ok(())
    }
}

const REG_ID: u8 = 0x00;
const REG_COMMAND: u8 = 0x04;
const REG_CLASS: u8 = 0x08;
const REG_HEADER: u8 = 0x0c;
const REG_BAR0: u8 = 0x10;
const REG_BUS_NUMBERS: u8 = 0x18;
const COMMAND_IO: u32 = 1;
const COMMAND_MEMORY: u32 = 2;
/// Bridges nest at most this deep (a bad bridge that points back up cannot loop us).
const MAX_BRIDGE_DEPTH: usize = 8;

/// Enumerates every function reachable from bus 0 (and further host bridges), following bridges.
/// BARs are sized with decoding briefly disabled and then restored.
pub fn scan<C: ConfigurationAccess>(cam: &mut C) -> Vec<PciFunction> {
    let mut found = Vec::new();
    let mut visited = [false; 256];
    // A multi-function host bridge at 00:00.x means bus x is another root bus.
    let host = DeviceFunction {
        bus: 0,
        device: 0,
        function: 0,
    };
    let roots = if cam.read_word(host, REG_ID) as u16 != 0xffff
        && (cam.read_word(host, REG_HEADER) >> 16) & 0x80 != 0
    {
        8
    } else {
        1
    };
    for root in 0..roots {
        if root != 0 {
            let f = DeviceFunction {
                bus: 0,
                device: 0,
                function: root,
            };
            if cam.read_word(f, REG_ID) as u16 == 0xffff {
                continue;
            }
        }
        scan_bus(cam, root, 0, &mut visited, &mut found);
    }
    found
}

fn scan_bus<C: ConfigurationAccess>(
    cam: &mut C,
    bus: u8,
    depth: usize,
    visited: &mut [bool; 256],
    found: &mut Vec<PciFunction>,
) {
    if depth > MAX_BRIDGE_DEPTH || visited[bus as usize] {
        return;
    }
    visited[bus as usize] = true;
    for device in 0..32u8 {
        let f0 = DeviceFunction {
            bus,
            device,
            function: 0,
        };
        if cam.read_word(f0, REG_ID) as u16 == 0xffff {
            continue;
        }
        let multi = (cam.read_word(f0, REG_HEADER) >> 16) & 0x80 != 0;
        let functions = if multi { 8 } else { 1 };
        for function in 0..functions {
            let addr = DeviceFunction {
                bus,
                device,
                function,
            };
            let id = cam.read_word(addr, REG_ID);
            if id as u16 == 0xffff {
                continue;
            }
            let class = cam.read_word(addr, REG_CLASS);
            let header_type = ((cam.read_word(addr, REG_HEADER) >> 16) & 0x7f) as u8;
            let bar_count = match header_type {
                0 => 6,
                1 => 2,
                _ => 0,
            };
            let bars = read_bars(cam, addr, bar_count);
            found.push(PciFunction {
                addr,
                vendor: id as u16,
                device: (id >> 16) as u16,
                class: (class >> 24) as u8,
                subclass: (class >> 16) as u8,
                prog_if: (class >> 8) as u8,
                header_type,
                bars,
            });
            if header_type == 1 {
                let secondary = (cam.read_word(addr, REG_BUS_NUMBERS) >> 8) as u8;
                if secondary != 0 && secondary > bus {
                    scan_bus(cam, secondary, depth + 1, visited, found);
                }
            }
        }
    }
}

fn read_bars<C: ConfigurationAccess>(
    cam: &mut C,
    f: DeviceFunction,
    count: u8,
) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    let command = cam.read_word(f, REG_COMMAND);
    // Decoding off while the BARs hold all-ones, so no access lands on a bogus address.
    cam.write_word(
        f,
        REG_COMMAND,
        command & !(COMMAND_IO | COMMAND_MEMORY) & 0xffff,
    );
    let mut i = 0u8;
    while i < count {
        let reg = REG_BAR0 + 4 * i;
        let orig = cam.read_word(f, reg);
        cam.write_word(f, reg, 0xffff_ffff);
        let probe = cam.read_word(f, reg);
        cam.write_word(f, reg, orig);
        if orig & 1 == 1 {
            let mask = probe & !0x3;
            let size = (!mask).wrapping_add(1) & 0xffff;
            if mask != 0 && size != 0 {
                bars[i as usize] = Some(Bar::Io {
                    port: orig & !0x3,
                    size,
                });
            }
            i += 1;
            continue;
        }
        let prefetchable = orig & 0x8 != 0;
        let is64 = (orig >> 1) & 0x3 == 2;
        if is64 && i + 1 < count {
            let reg_hi = reg + 4;
            let orig_hi = cam.read_word(f, reg_hi);
            cam.write_word(f, reg_hi, 0xffff_ffff);
            let probe_hi = cam.read_word(f, reg_hi);
            cam.write_word(f, reg_hi, orig_hi);
            let mask = ((probe_hi as u64) << 32) | (probe & !0xf) as u64;
            let size = (!mask).wrapping_add(1);
            if mask != 0 && size != 0 {
                bars[i as usize] = Some(Bar::Mem64 {
                    addr: ((orig_hi as u64) << 32) | (orig & !0xf) as u64,
                    size,
                    prefetchable,
                });
            }
            i += 2;
        } else {
            let mask = probe & !0xf;
            let size = (!mask).wrapping_add(1);
            if mask != 0 && size != 0 {
                bars[i as usize] = Some(Bar::Mem32 {
                    addr: orig & !0xf,
                    size,
                    prefetchable,
                });
            }
            i += 1;
        }
    }
    cam.write_word(f, REG_COMMAND, command & 0xffff);
    bars
}

/// Turns on memory decoding and bus mastering (needed before a driver touches the device).
pub fn enable_device<C: ConfigurationAccess>(cam: &mut C, f: DeviceFunction) {
    let command = cam.read_word(f, REG_COMMAND);
    cam.write_word(
        f,
        REG_COMMAND,
        (command & 0xffff) | COMMAND_MEMORY | COMMAND_IO | 0x4,
    );
}

/// The legacy x86 configuration mechanism #1: ports 0xCF8 (address) and 0xCFC (data).
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub struct PortIoCam {
    _private: (),
}

#[cfg(target_arch = "x86_64")]
impl PortIoCam {
    /// # Safety
    /// The caller must be the only user of ports 0xCF8/0xCFC (the kernel creates one at boot,
    /// before any other CPU runs).
    pub unsafe fn new() -> Self {
        PortIoCam { _private: () }
    }

    fn address(f: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | (f.bus as u32) << 16
            | ((f.device as u32) & 0x1f) << 11
            | ((f.function as u32) & 0x7) << 8
            | (offset as u32 & 0xfc)
    }
}

#[cfg(target_arch = "x86_64")]
impl ConfigurationAccess for PortIoCam {
    fn read_word(&self, f: DeviceFunction, register_offset: u8) -> u32 {
        let value: u32;
        // SAFETY: port I/O to the PCI configuration mechanism; `new` made us its only user.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") Self::address(f, register_offset), options(nomem, nostack, preserves_flags));
            core::arch::asm!("in eax, dx", in("dx") 0xcfcu16, out("eax") value, options(nomem, nostack, preserves_flags));
        }
        value
    }

    fn write_word(&mut self, f: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: as in `read_word`.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") Self::address(f, register_offset), options(nomem, nostack, preserves_flags));
            core::arch::asm!("out dx, eax", in("dx") 0xcfcu16, in("eax") data, options(nomem, nostack, preserves_flags));
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortIoCam { _private: () }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake configuration space: functions with fixed BAR size masks.
    #[derive(Default)]
    struct FakeCam {
        regs: BTreeMap<(u8, u8, u8, u8), u32>,
        /// (bdf, bar register) → size mask the device reports after writing all-ones.
        bar_masks: BTreeMap<(u8, u8, u8, u8), u32>,
    }

    impl FakeCam {
        fn func(&mut self, bdf: (u8, u8, u8), id: u32, class: u32, header: u32) {
            self.regs.insert((bdf.0, bdf.1, bdf.2, REG_ID), id);
            self.regs.insert((bdf.0, bdf.1, bdf.2, REG_CLASS), class);
            self.regs
                .insert((bdf.0, bdf.1, bdf.2, REG_HEADER), header << 16);
        }
        fn bar(&mut self, bdf: (u8, u8, u8), reg: u8, value: u32, mask: u32) {
            self.regs.insert((bdf.0, bdf.1, bdf.2, reg), value);
            self.bar_masks.insert((bdf.0, bdf.1, bdf.2, reg), mask);
        }
    }

    impl ConfigurationAccess for FakeCam {
        fn read_word(&self, f: DeviceFunction, off: u8) -> u32 {
            *self
                .regs
                .get(&(f.bus, f.device, f.function, off))
                .unwrap_or(&if off == REG_ID { 0xffff_ffff } else { 0 })
        }
        fn write_word(&mut self, f: DeviceFunction, off: u8, data: u32) {
            let key = (f.bus, f.device, f.function, off);
            let v = match self.bar_masks.get(&key) {
                Some(mask) if data == 0xffff_ffff => *mask,
                // Unimplemented BARs are hardwired to zero.
                None if (0x10..0x28).contains(&off) => 0,
                _ => data,
            };
            self.regs.insert(key, v);
        }
        unsafe fn unsafe_clone(&self) -> Self {
            unreachable!("not used by scan")
        }
    }

    #[test]
    fn scans_through_bridges_and_sizes_bars() {
        let mut cam = FakeCam::default();
        cam.func((0, 0, 0), 0x29c0_8086, 0x0600_0000, 0); // host bridge
        cam.func((0, 3, 0), 0x1000_1af4, 0x0200_0000, 0); // virtio-net transitional
        cam.bar((0, 3, 0), 0x10, 0xc001, 0xffff_ffe1); // io, 32 ports
        cam.bar((0, 3, 0), 0x14, 0xfebd_1000, 0xffff_f000); // mem32, 4 KiB
        cam.bar((0, 3, 0), 0x20, 0xfe00_000c, 0xffff_c00c); // mem64 prefetchable, 16 KiB
        cam.bar((0, 3, 0), 0x24, 0x0000_0001, 0xffff_ffff);
        cam.func((0, 4, 0), 0x0001_1b36, 0x0604_0000, 1); // PCI bridge to bus 1
        cam.regs.insert((0, 4, 0, REG_BUS_NUMBERS), 0x0001_0100);
        cam.func((1, 0, 0), 0x1041_1af4, 0x0200_0000, 0x80); // modern virtio-net, multi-function
        cam.func((1, 0, 2), 0x1017_15b3, 0x0200_0000, 0); // a ConnectX-5 function
        let found = scan(&mut cam);
        let names: Vec<_> = found.iter().map(|f| std::format!("{f}")).collect();
        assert_eq!(
            names,
            [
                "00:00.0 8086:29c0 class 06.00.00",
                "00:03.0 1af4:1000 class 02.00.00 bar0 io 0xc000/32 bar1 mem 0xfebd1000/4096 bar4 mem64 0x1fe000000/16384",
                "00:04.0 1b36:0001 class 06.04.00 bridge",
                "01:00.0 1af4:1041 class 02.00.00",
                "01:00.2 15b3:1017 class 02.00.00",
            ]
        );
        assert!(found[1].is_virtio_net() && found[3].is_virtio_net() && found[4].is_mlx5());
        // BARs were restored after sizing.
        assert_eq!(cam.regs[&(0, 3, 0, 0x14)], 0xfebd_1000);
    }

    #[test]
    fn bridge_loops_terminate() {
        let mut cam = FakeCam::default();
        cam.func((0, 1, 0), 0x0001_1b36, 0x0604_0000, 1);
        cam.regs.insert((0, 1, 0, REG_BUS_NUMBERS), 0x0000_0000); // secondary bus 0: itself
        cam.func((0, 2, 0), 0x0001_1b36, 0x0604_0000, 1);
        cam.regs.insert((0, 2, 0, REG_BUS_NUMBERS), 0x0000_0200);
        cam.func((2, 0, 0), 0x0001_1b36, 0x0604_0000, 1);
        cam.regs.insert((2, 0, 0, REG_BUS_NUMBERS), 0x0000_0202); // points to itself
        assert_eq!(scan(&mut cam).len(), 3);
    }
}
