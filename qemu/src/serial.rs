//! Captures QEMU's serial console (its stdout) line by line, with the arrival time of each line, into
//! memory and a log file; and QEMU's stderr for diagnostics. Waiters block on a condition variable.

use std::fs::File;
use std::io::{Read, Write};
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::Pattern;

#[derive(Default)]
struct State {
    lines: Vec<(Instant, String)>,
    partial: Vec<u8>,
    stderr: String,
    stdout_eof: bool,
    stderr_eof: bool,
}

pub(crate) struct SerialCapture {
    state: Mutex<State>,
    changed: Condvar,
}

impl SerialCapture {
    pub(crate) fn start(child: &mut Child, log: Option<File>, echo: bool) -> Arc<SerialCapture> {
        let cap = Arc::new(SerialCapture {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let mut log = log;
        if let Some(mut out) = child.stdout.take() {
            let cap = Arc::clone(&cap);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = match out.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if let Some(f) = log.as_mut() {
                        let _ = f.write_all(&buf[..n]);
                        let _ = f.flush();
                    }
                    if echo {
                        let mut so = std::io::stdout().lock();
                        let _ = so.write_all(&buf[..n]);
                        let _ = so.flush();
                    }
                    cap.push_bytes(&buf[..n]);
                }
                let mut st = cap.state.lock().unwrap_or_else(|e| e.into_inner());
                if !st.partial.is_empty() {
                    let line = take_line(&mut st.partial);
                    st.lines.push((Instant::now(), line));
                }
                st.stdout_eof = true;
                cap.changed.notify_all();
            });
        } else {
            cap.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .stdout_eof = true;
        }
        if let Some(mut err) = child.stderr.take() {
            let cap = Arc::clone(&cap);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = match err.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut st = cap.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                cap.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .stderr_eof = true;
                cap.changed.notify_all();
            });
        } else {
            cap.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .stderr_eof = true;
        }
        cap
    }

    fn push_bytes(&self, bytes: &[u8]) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = false;
        for &b in bytes {
            if b == b'\n' {
                let line = take_line(&mut st.partial);
                st.lines.push((now, line));
                added = true;
            } else {
                st.partial.push(b);
            }
        }
        if added {
            self.changed.notify_all();
        }
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.lines.iter().map(|(_, l)| l.clone()).collect()
    }

    pub(crate) fn text(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        for (_, l) in &st.lines {
            s += l;
            s.push('\n');
        }
        s += &String::from_utf8_lossy(&st.partial);
        s
    }

    pub(crate) fn stderr(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stderr
            .clone()
    }

    /// The first line with index ≥ `from` that matches: (index, line, arrival time). Errors say why
    /// waiting stopped: the timeout, or QEMU closed the console (exited).
    pub(crate) fn wait_for(
        &self,
        from: usize,
        pattern: &Pattern,
        timeout: Duration,
    ) -> std::result::Result<(usize, String, Instant), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = from;
        loop {
            while next < st.lines.len() {
                let (at, line) = &st.lines[next];
                if pattern.matches(line) {
                    return Ok((next, line.clone(), *at));
                }
                next += 1;
            }
            if st.stdout_eof {
                return Err("QEMU exited (serial console closed)".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("timeout after {:.1} s", timeout.as_secs_f64()));
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until both pipes are closed (QEMU exited and everything is read).
    pub(crate) fn wait_eof(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !(st.stdout_eof && st.stderr_eof) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn take_line(partial: &mut Vec<u8>) -> String {
    let mut bytes = std::mem::take(partial);
    while bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
