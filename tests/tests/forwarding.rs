//! Forwarding acceptance (issue 5): boot the real image with three data ports whose hosts are
//! network namespaces (`h1`..`h3`, `eth0` = 10.0.0.N/24, wired by `ironflow_qemu`) and test the
//! switch from outside with real tools: ping, tcpdump, iperf3 and raw AF_PACKET frames.
//!
//! - `ping_floods_then_learns_and_counters_agree`: h1 pings h2 and h3 (ARP flooded, then unicast
//!   after learning: h3 sees h1's ARP request but none of the h1↔h2 ICMP); tcpdump counts every
//!   echo request and reply; the appliance's per-port counters (`s` on the console) equal the
//!   hosts' interface counters exactly, packet for packet, in both directions.
//! - `iperf3_tcp_h1_to_h2`: 10 s of iperf3 TCP completes; throughput and kicks per packet printed.
//! - `vlans_isolate_access_ports`: `port.1.vlan=10 port.2.vlan=10 port.3.vlan=20`: h1↔h2 works,
//!   h1↔h3 does not, and h3's interface sees not one frame from h1.
//! - `garbage_frames_are_counted_and_dropped`: thousands of malformed frames (truncated IPv4 and
//!   VLAN headers, bad IHL/version/total length, oversized) and random bytes injected on port 1
//!   while h2 pings h3: per category, `malformed=` grows by exactly what QEMU read from the tap;
//!   none is forwarded; ping loses nothing; no panic; the switch still forwards afterwards.
//!
//! Needs root (taps, namespaces): not root and not CI → SKIPPED; on CI (`CI=true`) a failure.
//! The tests take a lock so they boot one VM at a time: the guest busy-polls one host core, and
//! these machines have two.
//!
//! Accelerator: `IRONFLOW_ACCEL` if set, else TCG when `/dev/kvm` is provided by `kvm_pvm` (as on
//! these machines), else what [`Accel::detect`] picks. PVM is a software hypervisor: it runs a
//! guest kernel that is not PVM-aware through its instruction emulator (`info stats vcpu` shows
//! `insn_emulation` growing by ~300k/s while the appliance idles), so the appliance forwards
//! ~100-250 packets/s under "KVM" there and ~25k under TCG (see docs/benchmarks.md, Forwarding).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Tools the tests drive (Debian packages: iputils-ping, tcpdump, iperf3, python3, iproute2).
const TOOLS: &[&str] = &["ping", "tcpdump", "iperf3", "python3", "ip"];

/// True if the test can run; SKIPPED (with why) when not root or no KVM outside CI; a failure on
/// CI.
fn can_run(test: &str) -> bool {
    if !ironflow_qemu::is_root() {
        if on_ci() {
            panic!("{test}: CI (CI=true) runs the forwarding tests as root, but this is not root");
        }
        eprintln!("{test}: SKIPPED: needs root (tap devices, network namespaces)");
        return false;
    }
    for tool in TOOLS {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if on_ci() {
                panic!("{test}: `{tool}` is missing (tests/run installs it)");
            }
            eprintln!("{test}: SKIPPED: `{tool}` is missing (run tests/run)");
            return false;
        }
    }
    true
}

/// `IRONFLOW_ACCEL` if set; else TCG under PVM (`/sys/module/kvm_pvm`), whose "KVM" emulates
/// every instruction of our ring-0 kernel; else [`Accel::detect`].
fn accel() -> Accel {
    if std::env::var_os("IRONFLOW_ACCEL").is_none_or(|v| v.is_empty())
        && std::path::Path::new("/sys/module/kvm_pvm").exists()
    {
        return Accel::Tcg;
    }
    Accel::detect().unwrap_or_else(|e| panic!("{e}"))
}

/// The switch under test with its three hosts.
struct Switch {
    vm: Vm,
}

impl Switch {
    fn boot(test: &str, cmdline: &str) -> Switch {
        let t0 = Instant::now();
        let elf = elf();
        eprintln!("{test}: image ready after {:.1?}", t0.elapsed());
        let vm = Vm::builder()
            .name(test)
            .elf(elf)
            .cmdline(&format!("on_panic=exit log=info {cmdline}"))
            .memory_mb(128)
            .accel(accel())
            .mgmt_nic(&[])
            .data_ports(3)
            .port_net(PortNet::netns_unique())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: QEMU starts: {e}"));
        eprintln!(
            "{test}: QEMU started, ports wired after {:.1?}",
            t0.elapsed()
        );
        match vm.wait_for_ready(BOOT_TIMEOUT) {
            Ok(r) => eprintln!(
                "{test}: ready after {:.1?} (kernel boot {} ms)",
                t0.elapsed(),
                r.boot_us / 1000
            ),
            Err(e) => panic!("{test}: {e}"),
        }
        let sw = Switch { vm };
        // Only the traffic a test makes: no IPv6 (router solicitations, MLD, DAD).
        for n in 1..=3 {
            sw.sh(
                n,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
                 net.ipv6.conf.eth0.disable_ipv6=1",
            );
        }
        sw
    }

    fn ns(&self, n: usize) -> &str {
        self.vm.netns(n).expect("three data ports")
    }

    /// `ip netns exec hN ARGS`.
    fn cmd(&self, n: usize, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(n)]).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a shell command in hN; panics (with the switch's diagnostics) if it fails.
    fn sh(&self, n: usize, script: &str) -> String {
        let out = self
            .cmd(n, &["sh", "-c", script])
            .output()
            .expect("ip netns exec runs");
        if !out.status.success() {
            panic!(
                "h{n}: `{script}` failed ({}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.vm.diagnostics()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// hN's eth0 counters.
    fn host_counters(&self, n: usize) -> HostCounters {
        let out = self.sh(
            n,
            "cd /sys/class/net/eth0/statistics && cat tx_packets rx_packets tx_dropped rx_dropped",
        );
        let v: Vec<u64> = out
            .split_whitespace()
            .map(|s| s.parse().expect("a counter"))
            .collect();
        HostCounters {
            tx: v[0],
            rx: v[1],
            tx_dropped: v[2],
            rx_dropped: v[3],
        }
    }

    fn mac(&self, n: usize) -> String {
        self.sh(n, "cat /sys/class/net/eth0/address")
            .trim()
            .to_string()
    }

    /// `ping -c count` from hN to 10.0.0.M: (transmitted, received).
    fn ping(&self, from: usize, to: usize, count: u32, interval: &str) -> (u32, u32) {
        let out = self
            .cmd(
                from,
                &[
                    "ping",
                    "-n",
                    "-q",
                    "-c",
                    &count.to_string(),
                    "-i",
                    interval,
                    "-W",
                    "1",
                    &format!("10.0.0.{to}"),
                ],
            )
            .output()
            .expect("ping runs");
        parse_ping(&String::from_utf8_lossy(&out.stdout))
    }

    /// Types `s` and returns the stats line that follows.
    fn stats(&self) -> Stats {
        let from = self.vm.serial_lines().len();
        self.vm.send_serial(b"s").expect("serial input");
        let (_, line) = self
            .vm
            // Long enough for a guest still working through a backlog of frames under an
            // emulating hypervisor (IRONFLOW_ACCEL=kvm on kvm_pvm).
            .wait_for_line_from(from, "stats: port1", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no stats line after `s`: {e}"));
        Stats::parse(text(&line)).unwrap_or_else(|| panic!("cannot parse {line:?}"))
    }

    /// Waits until the appliance's and the hosts' counters stop moving (frames in flight in taps
    /// and QEMU's queues have arrived); returns both.
    fn settled(&self) -> (Stats, [HostCounters; 3]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut prev = (self.stats(), self.all_hosts());
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = (self.stats(), self.all_hosts());
            let same = now.1 == prev.1
                && now
                    .0
                    .ports
                    .iter()
                    .zip(&prev.0.ports)
                    .all(|(a, b)| (a.rx, a.tx) == (b.rx, b.tx));
            if same || Instant::now() >= deadline {
                return now;
            }
            prev = now;
        }
    }

    fn all_hosts(&self) -> [HostCounters; 3] {
        [
            self.host_counters(1),
            self.host_counters(2),
            self.host_counters(3),
        ]
    }

    /// Injects `count` frames of `kind` (see [`INJECT_PY`]) from h1; returns how many were sent.
    fn inject(&self, kind: &str, count: usize, seed: usize) -> u64 {
        let out = self
            .cmd(
                1,
                &[
                    "python3",
                    "-c",
                    INJECT_PY,
                    kind,
                    &count.to_string(),
                    &seed.to_string(),
                ],
            )
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "injecting {kind} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.trim().parse().expect("the sender prints its count")
    }

    /// Fails if the serial log shows a panic or a CPU exception, or QEMU has exited.
    fn assert_alive(&mut self) {
        let log = self.vm.serial_log();
        for bad in ["PANIC", "EXCEPTION", "exception", "panicked"] {
            assert!(
                !log.contains(bad),
                "serial log contains {bad:?}\n{}",
                self.vm.diagnostics()
            );
        }
        assert!(
            self.vm.is_running(),
            "QEMU exited\n{}",
            self.vm.diagnostics()
        );
    }

    /// Types `q`: the kernel prints its stats and exits QEMU with success.
    fn quit(mut self) {
        self.vm.send_serial(b"q").expect("serial input");
        let exit = self.vm.wait_exit(EXIT_TIMEOUT);
        assert_eq!(
            exit,
            ExitKind::Success,
            "`q` should exit with success\n{}",
            self.vm.diagnostics()
        );
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HostCounters {
    tx: u64,
    rx: u64,
    tx_dropped: u64,
    rx_dropped: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PortStats {
    rx: u64,
    tx: u64,
    rx_bytes: u64,
    tx_bytes: u64,
    drop: u64,
    malformed: u64,
    err: u64,
    kicks: u64,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    ports: Vec<PortStats>,
    macs: u64,
    line: String,
}

impl Stats {
    /// `stats: port1 rx=.. tx=.. rx_bytes=.. tx_bytes=.. drop=.. malformed=.. err=.. kicks=.. |
    /// port2 ... | dp: packets=.. ... | macs=.. packet_ins=.. pool_free=a/b`
    fn parse(line: &str) -> Option<Stats> {
        let body = line.strip_prefix("stats:")?;
        let mut st = Stats {
            line: line.to_string(),
            ..Stats::default()
        };
        for part in body.split('|') {
            let mut p = PortStats::default();
            let mut is_port = false;
            for word in part.split_whitespace() {
                if let Some(n) = word.strip_prefix("port") {
                    if n.parse::<usize>().ok()? != st.ports.len() + 1 {
                        return None;
                    }
                    is_port = true;
                    continue;
                }
                // Other segments (e.g. `dp: packets=..`) and words are skipped.
                let Some((k, v)) = word.split_once('=') else {
                    continue;
                };
                let num = || v.parse::<u64>().ok();
                match k {
                    "rx" => p.rx = num()?,
                    "tx" => p.tx = num()?,
                    "rx_bytes" => p.rx_bytes = num()?,
                    "tx_bytes" => p.tx_bytes = num()?,
                    "drop" => p.drop = num()?,
                    "malformed" => p.malformed = num()?,
                    "err" => p.err = num()?,
                    "kicks" => p.kicks = num()?,
                    "macs" => st.macs = num()?,
                    _ => {}
                }
            }
            if is_port {
                st.ports.push(p);
            }
        }
        (!st.ports.is_empty()).then_some(st)
    }

    fn port(&self, n: usize) -> PortStats {
        self.ports[n - 1]
    }
}

fn parse_ping(out: &str) -> (u32, u32) {
    let re = Regex::new(r"(\d+) packets transmitted, (\d+) received").unwrap();
    match re.captures(out) {
        Some(c) => (c[1].parse().unwrap(), c[2].parse().unwrap()),
        None => (0, 0),
    }
}

/// A background process in a namespace, killed when dropped.
struct Bg {
    child: Option<Child>,
    what: String,
}

impl Bg {
    fn spawn(mut cmd: Command, what: &str) -> Bg {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Bg {
            child: Some(child),
            what: what.to_string(),
        }
    }

    /// Waits for it to exit (killing it at the timeout) and returns its stdout and stderr.
    fn finish(mut self, timeout: Duration) -> (String, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = child.try_wait() {
            eprintln!("{}: still running after {timeout:?}, killed", self.what);
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("wait");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// tcpdump on hN's eth0 writing a pcap file; `count` stops it and counts the packets matching a
/// filter.
struct Capture {
    child: Option<Child>,
    file: std::path::PathBuf,
    ns: String,
}

impl Capture {
    fn start(sw: &Switch, n: usize) -> Capture {
        let file = std::env::temp_dir().join(format!("ironflow-fwd-{}-h{n}.pcap", sw.ns(n)));
        let mut child = sw
            .cmd(
                n,
                &[
                    "tcpdump",
                    "-i",
                    "eth0",
                    "-n",
                    "-U",
                    "--immediate-mode",
                    "-s",
                    "128",
                    "-w",
                    &file.to_string_lossy(),
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        // Wait for "listening on eth0" so that nothing sent afterwards is missed.
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 || line.contains("listening on") {
                break;
            }
        }
        assert!(
            line.contains("listening on"),
            "tcpdump in h{n} did not start: {line:?}"
        );
        // Keep draining its stderr so it never blocks.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Capture {
            child: Some(child),
            file,
            ns: sw.ns(n).to_string(),
        }
    }

    /// Stops the capture (SIGINT, so the file is complete).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Packets in the capture matching a tcpdump filter expression.
    fn count(&mut self, filter: &str) -> usize {
        self.stop();
        let out = Command::new("tcpdump")
            .args(["-n", "-r", &self.file.to_string_lossy(), filter])
            .stderr(Stdio::null())
            .output()
            .expect("tcpdump -r runs");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = &self.ns;
    }
}

/// Asserts that every port's receive/transmit counters grew by exactly what its host's eth0
/// sent/received between two snapshots.
fn assert_counters_agree(
    a: (&Stats, &[HostCounters; 3]),
    b: (&Stats, &[HostCounters; 3]),
    diag: &str,
) {
    for n in 1..=3 {
        let (s0, s1) = (a.0.port(n), b.0.port(n));
        let (h0, h1) = (a.1[n - 1], b.1[n - 1]);
        assert_eq!(
            s1.rx - s0.rx,
            h1.tx - h0.tx,
            "port{n} rx must equal what h{n} sent (tx_dropped +{})\n{}\n{}\n{diag}",
            h1.tx_dropped - h0.tx_dropped,
            a.0.line,
            b.0.line
        );
        assert_eq!(
            s1.tx - s0.tx,
            h1.rx - h0.rx,
            "port{n} tx must equal what h{n} received (rx_dropped +{})\n{}\n{}\n{diag}",
            h1.rx_dropped - h0.rx_dropped,
            a.0.line,
            b.0.line
        );
    }
}

#[test]
fn ping_floods_then_learns_and_counters_agree() {
    const TEST: &str = "ping_floods_then_learns_and_counters_agree";
    if !can_run(TEST) {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sw = Switch::boot("fwd-ping", "");
    let t = Instant::now();
    let (st0, hosts0) = sw.settled();
    eprintln!("{TEST}: settled in {:.1?}", t.elapsed());
    let h1_mac = sw.mac(1);

    let mut cap = [
        Capture::start(&sw, 1),
        Capture::start(&sw, 2),
        Capture::start(&sw, 3),
    ];
    const N: u32 = 20;
    let (sent, got) = sw.ping(1, 2, N, "0.05");
    assert_eq!(
        (sent, got),
        (N, N),
        "h1 ping h2: every echo answered\n{}",
        sw.vm.diagnostics()
    );
    let after_h2 = sw.stats();
    let (sent, got) = sw.ping(1, 3, N, "0.05");
    assert_eq!(
        (sent, got),
        (N, N),
        "h1 ping h3: every echo answered\n{}",
        sw.vm.diagnostics()
    );
    eprintln!("{TEST}: pings done at {:.1?}", t.elapsed());
    let (st1, hosts1) = sw.settled();
    eprintln!("{TEST}: settled at {:.1?}", t.elapsed());
    let diag = sw.vm.diagnostics();
    println!("{TEST}: before {}\n{TEST}: after  {}", st0.line, st1.line);

    let req_to_h2 = "icmp[icmptype] == icmp-echo and src host 10.0.0.1 and dst host 10.0.0.2";
    let rep_from_h2 =
        "icmp[icmptype] == icmp-echoreply and src host 10.0.0.2 and dst host 10.0.0.1";
    let req_to_h3 = "icmp[icmptype] == icmp-echo and src host 10.0.0.1 and dst host 10.0.0.3";
    let rep_from_h3 =
        "icmp[icmptype] == icmp-echoreply and src host 10.0.0.3 and dst host 10.0.0.1";
    let n = N as usize;
    // Exactly N of each, on both ends.
    assert_eq!(cap[0].count(req_to_h2), n, "h1 sent echo requests to h2");
    assert_eq!(cap[1].count(req_to_h2), n, "h2 received echo requests");
    assert_eq!(cap[1].count(rep_from_h2), n, "h2 answered");
    assert_eq!(cap[0].count(rep_from_h2), n, "h1 received h2's replies");
    assert_eq!(cap[2].count(req_to_h3), n, "h3 received echo requests");
    assert_eq!(cap[0].count(rep_from_h3), n, "h1 received h3's replies");
    // Flooding: h3 saw h1's broadcast ARP request for h2; learning: none of the h1↔h2 unicast
    // ICMP reached h3 (h2's ARP reply taught the switch where h2 is before the first echo).
    assert!(
        cap[2].count(&format!("arp and ether src {h1_mac} and ether broadcast")) >= 1,
        "h3 should see h1's flooded ARP request\n{diag}"
    );
    assert_eq!(
        cap[2].count("icmp and host 10.0.0.2"),
        0,
        "h3 must not see h1↔h2 ICMP once the switch has learned h2's port\n{diag}"
    );
    assert_eq!(
        cap[1].count("icmp and host 10.0.0.3"),
        0,
        "h2 must not see h1↔h3 ICMP\n{diag}"
    );

    // The appliance's counters: port1 received N echo requests to each peer plus ARP; port2 sent
    // at least the N requests; and every port's counters equal its host's, exactly.
    let (p1, p2) = (st1.port(1), after_h2.port(2));
    assert!(
        p1.rx - st0.port(1).rx > 2 * n as u64,
        "port1 rx ≥ 2×{n} echo requests + ARP\n{}\n{diag}",
        st1.line
    );
    assert!(
        p2.tx - st0.port(2).tx > n as u64,
        "port2 tx ≥ {n} echo requests + ARP\n{}\n{diag}",
        after_h2.line
    );
    assert_counters_agree((&st0, &hosts0), (&st1, &hosts1), &diag);
    // During the test (a hosted AF_XDP port may count a frame the kernel offered before its
    // fill ring was posted, at start-up, before any of this test's traffic).
    for (i, (p, p0)) in st1.ports.iter().zip(&st0.ports).enumerate() {
        assert_eq!(
            (p.malformed - p0.malformed, p.err - p0.err, p.drop - p0.drop),
            (0, 0, 0),
            "port{} malformed/err/drop during the test\nbefore: {}\nafter:  {}",
            i + 1,
            st0.line,
            st1.line
        );
    }
    assert_eq!(st1.macs, 3, "three hosts learned\n{}", st1.line);

    let mut sw = sw;
    sw.assert_alive();
    sw.quit();
}

/// Parses iperf3 `-J` output: (bytes received, bits per second received, sender retransmits).
fn parse_iperf3(json: &str) -> Option<(u64, f64, u64)> {
    let recv = Regex::new(
        r#""sum_received":\s*\{[^}]*?"bytes":\s*(\d+)[^}]*?"bits_per_second":\s*([0-9.e+]+)"#,
    )
    .unwrap();
    let retr = Regex::new(r#""sum_sent":\s*\{[^}]*?"retransmits":\s*(\d+)"#).unwrap();
    let c = recv.captures(json)?;
    let r = retr
        .captures(json)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0);
    Some((c[1].parse().ok()?, c[2].parse().ok()?, r))
}

#[test]
fn iperf3_tcp_h1_to_h2() {
    const TEST: &str = "iperf3_tcp_h1_to_h2";
    if !can_run(TEST) {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sw = Switch::boot("fwd-iperf3", "");
    assert_eq!(sw.ping(1, 2, 3, "0.2").1, 3, "h1 reaches h2 before iperf3");
    let server = Bg::spawn(
        sw.cmd(2, &["iperf3", "-s", "-1", "-B", "10.0.0.2"]),
        "iperf3 server in h2",
    );
    // Until it listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sw.sh(2, "ss -ltnH").contains("10.0.0.2:5201") {
        assert!(Instant::now() < deadline, "iperf3 server does not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let st0 = sw.stats();
    let t0 = Instant::now();
    let client = Bg::spawn(
        sw.cmd(
            1,
            &[
                "iperf3",
                "-c",
                "10.0.0.2",
                "-t",
                "10",
                "-J",
                "--connect-timeout",
                "5000",
            ],
        ),
        "iperf3 client in h1",
    );
    let (json, err) = client.finish(Duration::from_secs(60));
    let wall = t0.elapsed();
    let st1 = sw.stats();
    drop(server);
    let diag = sw.vm.diagnostics();
    let (bytes, bps, retr) = parse_iperf3(&json).unwrap_or_else(|| {
        panic!(
            "iperf3 did not complete: {err}\n{}\n{diag}",
            tail(&json, 40)
        )
    });
    let (p1, p2) = (st1.port(1), st1.port(2));
    let (q1, q2) = (st0.port(1), st0.port(2));
    let pkts = (p1.rx - q1.rx) + (p2.rx - q2.rx);
    let kicks: u64 = st1
        .ports
        .iter()
        .zip(&st0.ports)
        .map(|(a, b)| a.kicks - b.kicks)
        .sum();
    println!(
        "{TEST}: iperf3 TCP h1→h2 10 s: {bytes} bytes received, {:.2} Mbit/s, {retr} retransmits \
         (wall {wall:.1?}); switch forwarded {pkts} packets (port1 rx {} data, port2 rx {} acks), \
         {kicks} kicks = {:.3} per packet",
        bps / 1e6,
        p1.rx - q1.rx,
        p2.rx - q2.rx,
        kicks as f64 / pkts.max(1) as f64
    );
    println!("{TEST}: before {}\n{TEST}: after  {}", st0.line, st1.line);
    assert!(bytes > 0, "iperf3 received nothing\n{diag}");
    let mut sw = sw;
    sw.assert_alive();
    sw.quit();
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn vlans_isolate_access_ports() {
    const TEST: &str = "vlans_isolate_access_ports";
    if !can_run(TEST) {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cmdline = "port.1.vlan=10 port.2.vlan=10 port.3.vlan=20";
    let sw = Switch::boot("fwd-vlan", cmdline);
    let h1_mac = sw.mac(1);
    let mut h3 = Capture::start(&sw, 3);
    let mut h2 = Capture::start(&sw, 2);
    assert_eq!(
        sw.ping(1, 2, 5, "0.1"),
        (5, 5),
        "h1↔h2 (both VLAN 10)\n{}",
        sw.vm.diagnostics()
    );
    assert_eq!(
        sw.ping(1, 3, 5, "0.2").1,
        0,
        "h1 (VLAN 10) must not reach h3 (VLAN 20)\n{}",
        sw.vm.diagnostics()
    );
    assert_eq!(
        sw.ping(3, 2, 3, "0.2").1,
        0,
        "h3 (VLAN 20) must not reach h2 (VLAN 10)\n{}",
        sw.vm.diagnostics()
    );
    let st = sw.stats();
    let diag = sw.vm.diagnostics();
    let from_h1 = h3.count(&format!("ether src {h1_mac}"));
    let icmp_from_h1 = h3.count("icmp and src host 10.0.0.1");
    assert_eq!(
        (from_h1, icmp_from_h1),
        (0, 0),
        "h3's interface must see none of h1's frames (ARP or ICMP)\n{}\n{diag}",
        st.line
    );
    assert_eq!(
        h2.count("vlan"),
        0,
        "access ports send untagged frames\n{diag}"
    );
    assert!(
        h2.count("icmp and src host 10.0.0.1") >= 5,
        "h2 saw h1's echo requests\n{diag}"
    );
    // VLAN 20 has one port: nothing was ever sent out of port 3.
    assert!(st.port(3).rx > 0, "h3 did send (ARP)\n{}", st.line);
    assert_eq!(st.port(3).tx, 0, "port3 sent nothing\n{}", st.line);
    println!("{TEST}: {}", st.line);
    let mut sw = sw;
    sw.assert_alive();
    sw.quit();
}

/// Sends frames of one kind on eth0 with a raw AF_PACKET socket, paced so the tap keeps up.
/// argv: kind count seed. Prints how many were sent.
const INJECT_PY: &str = r#"
import socket, sys, random, struct, time
kind, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
src = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
bcast = b"\xff" * 6

def ipv4(ihl=5, version=4, total=None, payload=b"\x00" * 8, hdr_len=None):
    opts = b"\x00" * (max(ihl, 5) * 4 - 20)
    body = opts + payload
    tl = 20 + len(body) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, tl, 1, 0, 64, 17, 0,
                    bytes([10, 0, 0, 1]), bytes([10, 0, 0, 99]))
    return h + body

def frame(i):
    eth = bcast + src
    if kind == "trunc-ipv4":      # Ethernet header + 0..19 bytes of an IPv4 header
        return eth + b"\x08\x00" + ipv4()[: i % 20]
    if kind == "trunc-vlan":      # 802.1Q TPID, then 0..3 bytes of the tag
        return eth + b"\x81\x00" + b"\x00\x0a\x08\x00"[: i % 4]
    if kind == "bad-ihl":         # IHL 0..4
        return eth + b"\x08\x00" + ipv4(ihl=i % 5)
    if kind == "bad-version":     # version 0..3, 5..15 in an IPv4 EtherType
        v = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15][i % 15]
        return eth + b"\x08\x00" + ipv4(version=v)
    if kind == "bad-total-len":   # total length below the header (0..19) or past the frame
        tl = (i % 20) if i % 2 == 0 else 29 + (i % 1400)
        return eth + b"\x08\x00" + ipv4(total=tl)
    if kind == "oversized":       # 1523..2048 bytes: above the 1522 limit, within QEMU's rx buffers
        n = 1523 + (i * 7919) % (2048 - 1523 + 1)
        f = eth + b"\x08\x00" + ipv4(payload=b"\x00" * (n - 14 - 20))
        return f[:n]
    if kind == "giant":           # 2049..9014 bytes: larger than a receive buffer
        n = 2049 + (i * 104729) % (9014 - 2049)
        return (eth + b"\x08\x00" + b"\x00" * n)[:n]
    if kind == "random":          # random bytes, 14..1522, any MACs and EtherType
        n = rnd.randint(14, 1522)
        return bytes(rnd.getrandbits(8) for _ in range(n))
    raise SystemExit("unknown kind " + kind)

sent = 0
for i in range(count):
    f = frame(i)
    try:
        s.send(f)
        sent += 1
    except OSError as e:
        print("send", len(f), e, file=sys.stderr)
    if i % 64 == 63:
        time.sleep(0.004)
print(sent)
"#;

#[test]
fn garbage_frames_are_counted_and_dropped() {
    const TEST: &str = "garbage_frames_are_counted_and_dropped";
    if !can_run(TEST) {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sw = Switch::boot("fwd-garbage", "");
    // A veth whose peer has an XDP program (the hosted runner's AF_XDP port) allows at most
    // about 3.5 KB; the giants that do not fit are then refused by h1's kernel (and counted by
    // the sender as not sent).
    sw.sh(
        1,
        "ip link set eth0 mtu 9000 2>/dev/null || ip link set eth0 mtu 3400",
    );
    assert_eq!(
        sw.ping(2, 3, 2, "0.2").1,
        2,
        "h2 reaches h3 before the garbage"
    );
    let h1_mac = sw.mac(1);
    let mut h2cap = Capture::start(&sw, 2);

    // h2 pings h3 all along.
    let pinger = Bg::spawn(
        sw.cmd(
            2,
            &[
                "ping", "-n", "-q", "-c", "60", "-i", "0.2", "-W", "2", "10.0.0.3",
            ],
        ),
        "ping h2→h3",
    );

    let kinds: &[(&str, usize)] = &[
        ("trunc-ipv4", 600),
        ("trunc-vlan", 400),
        ("bad-ihl", 500),
        ("bad-version", 450),
        ("bad-total-len", 600),
        ("oversized", 600),
    ];
    let mut total_malformed = 0;
    let (mut st, mut hosts) = sw.settled();
    for (seed, &(kind, count)) in kinds.iter().enumerate() {
        let sent = sw.inject(kind, count, seed);
        let (st1, hosts1) = sw.settled();
        // QEMU read from the tap (the tap's tx counter) what it did not drop (tx_dropped).
        let reached = hosts1[0].tx - hosts[0].tx;
        let dropped_by_tap = hosts1[0].tx_dropped - hosts[0].tx_dropped;
        let rx = st1.port(1).rx - st.port(1).rx;
        let malformed = st1.port(1).malformed - st.port(1).malformed;
        let err = st1.port(1).err - st.port(1).err;
        println!(
            "{TEST}: {kind}: sent {sent}, tap delivered {reached} (dropped {dropped_by_tap}), \
             port1 rx +{rx} malformed +{malformed} err +{err}"
        );
        // Hosted runner: Linux's receive path drops an 802.1Q frame whose tag is cut short
        // (skb_vlan_untag) before any packet socket sees it, so nothing reaches the port.
        let reached = if sw.vm.is_hosted() && kind == "trunc-vlan" && rx == 0 {
            println!("{TEST}: {kind}: dropped by the host kernel before the hosted port");
            0
        } else {
            reached
        };
        assert_eq!(
            rx, reached,
            "{kind}: port1 received what the tap delivered\n{}",
            st1.line
        );
        assert!(
            malformed >= reached,
            "{kind}: every malformed frame that reached port1 is counted: malformed +{malformed} \
             < {reached} delivered\n{}\n{}",
            st1.line,
            sw.vm.diagnostics()
        );
        total_malformed += reached;
        st = st1;
        hosts = hosts1;
    }
    // Giants do not fit a receive buffer (no mergeable buffers): QEMU drops them; whatever
    // reaches the switch must be counted as malformed.
    sw.inject("giant", 200, 7);
    let (st1, hosts1) = sw.settled();
    let giant_rx = st1.port(1).rx - st.port(1).rx;
    let giant_malformed = st1.port(1).malformed - st.port(1).malformed;
    println!(
        "{TEST}: giant (2049..9014 bytes): tap delivered {}, port1 rx +{giant_rx} malformed \
         +{giant_malformed}",
        hosts1[0].tx - hosts[0].tx
    );
    assert_eq!(giant_rx, giant_malformed, "giants: {}", st1.line);
    (st, hosts) = (st1, hosts1);

    // No malformed frame was forwarded: h2 saw nothing from h1.
    let leaked = h2cap.count(&format!("ether src {h1_mac}"));
    assert_eq!(
        leaked,
        0,
        "malformed frames from h1 were forwarded to h2\n{}",
        sw.vm.diagnostics()
    );

    // Random bytes (may be valid frames: those are switched, any MAC, any EtherType).
    let random_sent = sw.inject("random", 3000, 99);
    let (st1, hosts1) = sw.settled();
    println!(
        "{TEST}: random: sent {random_sent}, tap delivered {}, port1 rx +{} malformed +{}; {}",
        hosts1[0].tx - hosts[0].tx,
        st1.port(1).rx - st.port(1).rx,
        st1.port(1).malformed - st.port(1).malformed,
        st1.line
    );
    assert_eq!(
        st1.port(1).rx - st.port(1).rx,
        hosts1[0].tx - hosts[0].tx,
        "random: port1 received what the tap delivered\n{}",
        st1.line
    );

    let (ping_out, _) = pinger.finish(Duration::from_secs(60));
    let (sent, got) = parse_ping(&ping_out);
    println!("{TEST}: h2→h3 ping during the garbage: {got}/{sent}");
    assert!(
        sent == 60 && got == sent,
        "h2↔h3 ping must keep working during the garbage: {got}/{sent} answered\n{}",
        sw.vm.diagnostics()
    );
    assert!(
        st1.port(1).malformed >= total_malformed,
        "malformed={} < {total_malformed}",
        st1.port(1).malformed
    );
    let mut sw = sw;
    sw.assert_alive();
    // Still switching, and still answering the console.
    assert_eq!(
        sw.ping(1, 2, 3, "0.2").1,
        3,
        "h1 reaches h2 after the garbage"
    );
    assert_eq!(
        sw.ping(3, 1, 3, "0.2").1,
        3,
        "h3 reaches h1 after the garbage"
    );
    println!("{TEST}: {}", sw.stats().line);
    sw.assert_alive();
    sw.quit();
}
