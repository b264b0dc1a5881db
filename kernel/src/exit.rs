//! Leaving: QEMU's isa-debug-exit device for tests, reset for hardware.

use x86_64::instructions::port::Port;

/// What to do on a panic or fatal exception (`on_panic=` on the command line).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnPanic {
    Exit,
    Reboot,
    Halt,
}

/// Value written to isa-debug-exit for success: QEMU exits with status (0x10 << 1) | 1 = 33.
const EXIT_SUCCESS: u32 = 0x10;
/// Failure: QEMU exits with status 35.
const EXIT_FAILURE: u32 = 0x11;

fn debug_exit(code: u32) {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit when present; elsewhere the write is ignored.
    unsafe { Port::<u32>::new(0xf4).write(code) };
}

pub fn success() -> ! {
    debug_exit(EXIT_SUCCESS);
    halt()
}

pub fn failure() -> ! {
    debug_exit(EXIT_FAILURE);
    halt()
}

pub fn halt() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Resets the machine: PCI reset control, then the keyboard controller, then a triple fault.
pub fn reboot() -> ! {
    // SAFETY: standard reset mechanisms; we are going down anyway.
    unsafe {
        Port::<u8>::new(0xcf9).write(0x02);
        Port::<u8>::new(0xcf9).write(0x06);
        crate::time::delay_us(50_000);
        Port::<u8>::new(0x64).write(0xfe);
        crate::time::delay_us(50_000);
        let null = x86_64::structures::DescriptorTablePointer {
            limit: 0,
            base: x86_64::VirtAddr::new(0),
        };
        x86_64::instructions::tables::lidt(&null);
        core::arch::asm!("int3");
    }
    halt()
}

/// The fatal path shared by panics and exceptions.
pub fn fatal(mode: OnPanic) -> ! {
    match mode {
        OnPanic::Exit => failure(),
        OnPanic::Reboot => {
            crate::console!("rebooting in 5 s");
            crate::time::delay_us(5_000_000);
            reboot()
        }
        OnPanic::Halt => halt(),
    }
}
