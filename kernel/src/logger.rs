//! `log` output on the serial console, each line stamped with the time since the first
//! instruction: `[    0.001234] text`.

use core::fmt::Write;
use log::{Level, LevelFilter, Metadata, Record};

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            Level::Error => "ERROR ",
            Level::Warn => "WARN ",
            Level::Info => "",
            Level::Debug => "debug ",
            Level::Trace => "trace ",
        };
        line(format_args!("{prefix}{}", record.args()));
    }

    fn flush(&self) {}
}

/// Writes one timestamped console line regardless of the log level.
pub fn line(args: core::fmt::Arguments) {
    let us = crate::time::now_us();
    let mut s = crate::serial::SERIAL.lock();
    let _ = writeln!(s, "[{:5}.{:06}] {}", us / 1_000_000, us % 1_000_000, args);
}

pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// A console line printed whatever the log level (ready, reports).
#[macro_export]
macro_rules! console {
    ($($arg:tt)*) => { $crate::logger::line(format_args!($($arg)*)) };
}
