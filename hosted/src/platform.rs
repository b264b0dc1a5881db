//! The host as the appliance's main loop sees it: a monotonic clock, stdout as the console
//! (the same `[secs.micros] text` lines as the image's serial console, so the same tests read
//! both), keys from stdin, and `log` records on the console.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros() -> u64 {
    start().elapsed().as_micros() as u64
}

/// Writes one timestamped console line to stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    let us = micros();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{:5}.{:06}] {}", us / 1_000_000, us % 1_000_000, args);
    let _ = out.flush();
}

struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            log::Level::Error => "ERROR ",
            log::Level::Warn => "WARN ",
            log::Level::Info => "",
            log::Level::Debug => "debug ",
            log::Level::Trace => "trace ",
        };
        line(format_args!("{prefix}{}", record.args()));
    }

    fn flush(&self) {}
}

pub fn init_logger(level: log::LevelFilter) {
    start();
    static LOGGER: ConsoleLogger = ConsoleLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

pub struct HostPlatform {
    keys: Option<Receiver<u8>>,
    exit_allowed: bool,
    /// Wait after this many passes in a row that received nothing (0: never; busy-poll).
    idle_after: u64,
    /// The ports' descriptors: an idle wait ends as soon as one is readable.
    fds: Vec<libc::pollfd>,
}

impl HostPlatform {
    pub fn new(exit_allowed: bool, idle_after: u64, fds: &[std::os::fd::RawFd]) -> Self {
        // Console keys: a thread reads stdin (a pipe or a terminal in line mode) into a channel.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let mut buf = [0u8; 64];
                loop {
                    match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            for b in &buf[..n] {
                                if tx.send(*b).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            })
            .ok();
        HostPlatform {
            keys: Some(rx),
            exit_allowed,
            idle_after,
            fds: fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }
}

impl appliance::Platform for HostPlatform {
    fn now_ms(&self) -> u64 {
        micros() / 1000
    }

    fn now_us(&self) -> u64 {
        micros()
    }

    fn entropy(&self) -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32)
    }

    fn console(&self, args: std::fmt::Arguments<'_>) {
        line(args);
    }

    fn poll_key(&mut self) -> Option<u8> {
        let rx = self.keys.as_ref()?;
        match rx.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.keys = None; // stdin closed: no more commands
                None
            }
        }
    }

    fn memory_line(&self) -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        format!("hosted: resident {rss}")
    }

    fn exit_allowed(&self) -> bool {
        self.exit_allowed
    }

    fn exit(&mut self) -> ! {
        let _ = std::io::stdout().flush();
        std::process::exit(0)
    }

    fn idle(&mut self, idle_passes: u64) {
        // An idle switch waits for the next frame on any port (data or management) instead
        // of spinning, for at most 1 ms so that timers and the console keep running.
        if self.idle_after != 0 && idle_passes >= self.idle_after {
            if self.fds.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
                return;
            }
            // SAFETY: `fds` is a live array of pollfd of the length passed.
            unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, 1) };
        }
    }
}
