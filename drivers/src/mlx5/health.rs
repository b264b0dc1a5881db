//! Health monitoring (docs/mlx5.md §6, pitfall 16): the health buffer's syndrome, the NIC
//! interface state, the health counter that must keep moving, and all-ones reads of a device
//! that fell off the bus. Any of these is fatal: the port stops posting commands and goes down.

use core::fmt;

use super::Mlx5Hw;
use super::layouts::init_seg;

/// A fatal device condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthError {
    /// Registers read as all ones: the function is gone (surprise removal, PCI error, reset).
    DeviceGone,
    /// The firmware posted a fatal syndrome in the health buffer.
    FatalSyndrome {
        /// Health syndrome (0x23d); see [`syndrome_name`].
        synd: u8,
        /// Extended syndrome (0x23e).
        ext_synd: u16,
        /// The firmware asks for a reset (rfr bit).
        reset_requested: bool,
    },
    /// The NIC interface reads as disabled (1) or in software reset (7).
    InterfaceDown(u8),
    /// The health counter stopped increasing: the firmware is hung.
    CounterStalled,
}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HealthError::DeviceGone => f.write_str("device gone (registers read all ones)"),
            HealthError::FatalSyndrome {
                synd,
                ext_synd,
                reset_requested,
            } => write!(
                f,
                "fatal health syndrome {synd:#x} ({}), ext {ext_synd:#x}{}",
                syndrome_name(synd),
                if reset_requested {
                    ", reset requested"
                } else {
                    ""
                }
            ),
            HealthError::InterfaceDown(state) => write!(f, "NIC interface state {state}"),
            HealthError::CounterStalled => f.write_str("firmware health counter stalled"),
        }
    }
}

/// The meaning of a health syndrome (mlx5_ifc.h's list).
pub fn syndrome_name(synd: u8) -> &'static str {
    match synd {
        0x1 => "FW internal error",
        0x7 => "dead IRISC",
        0x8 => "HW fatal error",
        0x9 => "FW CRC error",
        0xa => "ICM fetch PCI error",
        0xb => "ICM page error",
        0xc => "async EQ overrun",
        0xd => "EQ in error",
        0xe => "invalid EQ referenced",
        0xf => "FFSER error",
        0x10 => "high temperature",
        0x12 => "ICM PCI poisoned",
        0x13 => "trust lockdown",
        _ => "unknown",
    }
}

/// Polls without state: all-ones, syndrome, interface state. Cheap enough for command loops.
pub fn check<H: Mlx5Hw>(hw: &mut H) -> Result<(), HealthError> {
    let fw_ver = hw.read32(init_seg::HEALTH_FW_VER);
    let addr_l = hw.read32(init_seg::CMDQ_ADDR_L_SZ);
    if fw_ver == u32::MAX && addr_l == u32::MAX {
        return Err(HealthError::DeviceGone);
    }
    let synd_word = hw.read32(init_seg::HEALTH_SYND);
    let synd = (synd_word >> 16) as u8;
    if synd != 0 {
        let rfr = hw.read32(init_seg::HEALTH_RFR_SEVERITY) >> 31 != 0;
        return Err(HealthError::FatalSyndrome {
            synd,
            ext_synd: synd_word as u16,
            reset_requested: rfr,
        });
    }
    let state = ((addr_l >> 8) & 7) as u8;
    if state == 1 || state == 7 {
        return Err(HealthError::InterfaceDown(state));
    }
    Ok(())
}

/// Stateful monitor: [`check`] plus the health counter, which must change between polls
/// (three polls without change, as Linux, are fatal). Poll it from the slow path, far apart
/// enough that the firmware ticks in between (Linux polls every 2 s).
#[derive(Debug, Default)]
pub struct HealthMonitor {
    last_counter: Option<u32>,
    stalls: u8,
    failed: Option<HealthError>,
    /// When the counter was last sampled ([`Mlx5Hw::now_us`] time).
    last_sample_us: Option<u64>,
}

/// Samples without counter change before [`HealthError::CounterStalled`].
pub const MAX_STALLS: u8 = 3;

/// Least time between two samples of the health counter when the platform has a clock
/// (Linux polls health every 2 s): three unchanged samples are then at least 6 s of silence.
pub const COUNTER_SAMPLE_US: u64 = 2_000_000;

impl HealthMonitor {
    pub fn poll<H: Mlx5Hw>(&mut self, hw: &mut H) -> Result<(), HealthError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = check(hw).and_then(|()| {
            let now = hw.now_us();
            if let (Some(now), Some(last)) = (now, self.last_sample_us)
                && now.saturating_sub(last) < COUNTER_SAMPLE_US
            {
                return Ok(()); // too soon to expect the firmware to have ticked
            }
            self.last_sample_us = now;
            let counter = hw.read32(init_seg::HEALTH_COUNTER) & 0x00ff_ffff;
            if self.last_counter == Some(counter) {
                self.stalls += 1;
                if self.stalls >= MAX_STALLS {
                    return Err(HealthError::CounterStalled);
                }
            } else {
                self.stalls = 0;
            }
            self.last_counter = Some(counter);
            Ok(())
        });
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    /// The first fatal condition seen, if any.
    pub fn failure(&self) -> Option<HealthError> {
        self.failed
    }

    /// Records a fatal condition found elsewhere (a command that saw it).
    pub fn set_failed(&mut self, e: HealthError) {
        self.failed.get_or_insert(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::DmaAllocator;
    use crate::mlx5::model::{ModelConfig, ModelHandle};

    /// The model with a clock the test sets.
    struct Clocked(ModelHandle, u64);

    impl Mlx5Hw for Clocked {
        fn read32(&mut self, offset: usize) -> u32 {
            self.0.read32(offset)
        }
        fn write32(&mut self, offset: usize, value: u32) {
            self.0.write32(offset, value)
        }
        fn write64(&mut self, offset: usize, value: u64) {
            self.0.write64(offset, value)
        }
        fn allocator(&self) -> &'static dyn DmaAllocator {
            self.0.allocator()
        }
        fn delay_us(&mut self, us: u32) {
            self.0.delay_us(us)
        }
        fn bar_size(&self) -> usize {
            self.0.bar_size()
        }
        fn now_us(&mut self) -> Option<u64> {
            Some(self.1)
        }
    }

    #[test]
    fn frozen_counter_is_fatal_only_after_enough_time() {
        let model = ModelHandle::new(ModelConfig::default());
        model.with(|m| m.faults.counter_frozen = true);
        let mut hw = Clocked(model, 0);
        let mut monitor = HealthMonitor::default();
        // A busy loop polling every microsecond for a second: never a stall.
        for t in 0..1_000_000u64 {
            hw.1 = t;
            if t % 1000 == 0 {
                assert_eq!(monitor.poll(&mut hw), Ok(()), "at {t} us");
            }
        }
        // Samples 2 s apart: the first sets the reference, three more unchanged ones are fatal.
        for k in 1..=3u64 {
            hw.1 = k * COUNTER_SAMPLE_US;
            let r = monitor.poll(&mut hw);
            if k < 3 {
                assert_eq!(r, Ok(()));
            } else {
                assert_eq!(r, Err(HealthError::CounterStalled));
            }
        }
        hw.1 += COUNTER_SAMPLE_US;
        assert_eq!(monitor.failure(), Some(HealthError::CounterStalled));
    }
}
