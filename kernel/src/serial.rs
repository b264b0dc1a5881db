//! The 16550 UART on COM1: the console. Polled output, with a bounded wait so a machine
//! without a UART does not hang.

use spin::Mutex;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

pub struct Serial {
    data: Port<u8>,
    line_status: Port<u8>,
    /// Bytes that may still be written before the FIFO must be checked again. Each port access
    /// is a VM exit under a hypervisor, so we poll the line status once per FIFO load, not per byte.
    fifo_room: u8,
    /// The UART stopped draining (no cable, a host that stopped reading): bytes are dropped
    /// until it drains again, so the console can never stall the datapath.
    stalled: bool,
    /// Bytes dropped while stalled.
    pub dropped: u64,
}

/// Line-status polls before the UART counts as stalled (a 16-byte FIFO at 115200 baud drains
/// in ~1.4 ms; this is well past that on any machine).
const DRAIN_POLLS: u32 = 20_000;

const FIFO_SIZE: u8 = 16;

impl Serial {
    const fn new(base: u16) -> Self {
        Serial {
            data: Port::new(base),
            line_status: Port::new(base + 5),
            fifo_room: 0,
            stalled: false,
            dropped: 0,
        }
    }

    fn init(&mut self) {
        let b = COM1;
        // SAFETY: standard 16550 programming on the COM1 ports, which nothing else uses.
        unsafe {
            Port::<u8>::new(b + 1).write(0x00); // no interrupts
            Port::<u8>::new(b + 3).write(0x80); // DLAB
            Port::<u8>::new(b).write(0x01); // 115200 baud
            Port::<u8>::new(b + 1).write(0x00);
            Port::<u8>::new(b + 3).write(0x03); // 8N1
            Port::<u8>::new(b + 2).write(0xc7); // FIFO on, cleared, 14-byte threshold
            Port::<u8>::new(b + 4).write(0x03); // DTR | RTS
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: COM1 ports, owned by this driver.
        unsafe {
            if self.fifo_room == 0 {
                // THRE: the transmit FIFO is empty, so a whole FIFO load fits. While stalled,
                // look once per byte and drop the byte if it is still full.
                let polls = if self.stalled { 1 } else { DRAIN_POLLS };
                let drained = (0..polls).any(|_| self.line_status.read() & 0x20 != 0);
                if !drained {
                    self.stalled = true;
                    self.dropped += 1;
                    return;
                }
                self.stalled = false;
                self.fifo_room = FIFO_SIZE;
            }
            self.data.write(byte);
            self.fifo_room -= 1;
        }
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&mut self) -> Option<u8> {
        // SAFETY: COM1 ports, owned by this driver.
        unsafe { (self.line_status.read() & 1 != 0).then(|| self.data.read()) }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

pub static SERIAL: Mutex<Serial> = Mutex::new(Serial::new(COM1));

pub fn init() {
    SERIAL.lock().init();
}

/// Writes to the console even if the lock is held (by the code that faulted or panicked).
pub fn write_emergency(args: core::fmt::Arguments) {
    use core::fmt::Write;
    if let Some(mut s) = SERIAL.try_lock() {
        let _ = s.write_fmt(args);
    } else {
        let _ = Serial::new(COM1).write_fmt(args);
    }
}

/// A console byte typed by the operator, if any.
pub fn poll_key() -> Option<u8> {
    SERIAL.try_lock().and_then(|mut s| s.read_byte())
}
