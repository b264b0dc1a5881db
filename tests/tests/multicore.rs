//! The multi-core datapath in the real image (issue 11): `-smp 2` with `datapath.cores=1` and
//! `-smp 4` with `datapath.cores=3`, under TCG (`thread=multi`: one host thread per vCPU). The
//! boot CPU runs the management plane; each datapath core polls its own queue pair of both data
//! ports (virtio-net `mq=on` on `multi_queue` taps, `queues=N`), whose hosts h1 and h2 are
//! network namespaces. Checked from outside with real tools:
//!
//! - the console says each worker polls its queues on its own CPU;
//! - 16 UDP flows (distinct source ports, so the tap spreads them over the queues by flow
//!   hash) of sequence-numbered datagrams from h1 to h2: none lost, none reordered within its
//!   flow; with 3 cores, more than one core received some (the per-core counters say which);
//! - counters exact: the flow's `n_packets` (`ovs-ofctl dump-flows`) and port 1's rx
//!   (`ovs-ofctl dump-ports`) equal what h1 sent, summed over the cores;
//! - flow-mod churn with barriers: rounds of `ovs-ofctl mod-flows` (which waits for its
//!   barrier reply) between drop and output:2, each followed at once by a burst of datagrams:
//!   after a change to drop not one datagram arrives (0 stale packets), after a change back
//!   every one does;
//! - a meter (1 packet/s, burst 30) on the flow limits the bridge as a whole: of 160 datagrams
//!   spread over the cores, 30 (+1 per second) pass, not 30 per core; `meter-stats` counts all
//!   160 and the band's drops exactly.
//!
//! Needs root (taps, namespaces); on CI a failure otherwise. IRONFLOW_BACKEND=hosted: SKIPPED
//! (SMP is the kernel's).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Flows and datagrams per flow of the ordering test.
const FLOWS: usize = 16;
const PER_FLOW: usize = 150;
/// Churn rounds, datagrams per burst.
const ROUNDS: usize = 4;
const BURST: usize = 40;
/// The meter phase: the meter's burst (packets), datagrams per flow offered.
const METER_BURST: usize = 30;
const METER_PER_FLOW: usize = 10;

struct Switch {
    vm: Vm,
    target: String,
}

impl Switch {
    fn boot(test: &str, cpus: u32, cores: u16) -> Option<Switch> {
        if ironflow_qemu::backend_is_hosted() {
            eprintln!(
                "{test}: SKIPPED: IRONFLOW_BACKEND=hosted (the multi-core datapath is the kernel's)"
            );
            return None;
        }
        if !ironflow_qemu::is_root() {
            assert!(!on_ci(), "{test}: needs root (taps, namespaces) on CI");
            eprintln!("{test}: SKIPPED: needs root (taps, network namespaces)");
            return None;
        }
        let vm = pvh(
            test,
            &format!("on_panic=exit log=info stats=0 datapath.cores={cores}"),
        )
        .accel(Accel::Tcg)
        .smp(cpus)
        .memory_mb(256)
        .data_ports(2)
        .data_port_queues(cores)
        .port_net(PortNet::netns_unique())
        .mgmt_nic(&[(0, 6653)])
        .spawn()
        .unwrap_or_else(|e| panic!("{test}: QEMU starts: {e}"));
        vm.wait_for_ready(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        let port = vm.mgmt_host_port(6653).expect("forwarded port");
        let sw = Switch {
            vm,
            target: format!("tcp:127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !sw.ofctl(&["show"]).0 {
            assert!(
                Instant::now() < deadline,
                "{test}: OpenFlow never answered\n{}",
                sw.vm.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        for n in 1..=2 {
            sw.sh(
                n,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
                 net.ipv6.conf.eth0.disable_ipv6=1",
            );
        }
        // No ARP during the test: each host knows the other's MAC.
        let (m1, m2) = (sw.mac(1), sw.mac(2));
        sw.sh(
            1,
            &format!("ip neigh replace 10.0.0.2 lladdr {m2} dev eth0 nud permanent"),
        );
        sw.sh(
            2,
            &format!("ip neigh replace 10.0.0.1 lladdr {m1} dev eth0 nud permanent"),
        );
        Some(sw)
    }

    fn ofctl(&self, args: &[&str]) -> (bool, String) {
        let (cmd, rest) = args.split_first().expect("a command");
        let out = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "--timeout=60", cmd, &self.target])
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .expect("ovs-ofctl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ofctl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.ofctl(args);
        assert!(ok, "ovs-ofctl {args:?}: {out}\n{}", self.vm.diagnostics());
        out
    }

    fn ns(&self, n: usize) -> &str {
        self.vm.netns(n).expect("two data ports")
    }

    fn sh(&self, n: usize, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns(n), "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec runs");
        assert!(
            out.status.success(),
            "h{n}: `{script}` failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.vm.diagnostics()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn mac(&self, n: usize) -> String {
        self.sh(n, "cat /sys/class/net/eth0/address")
            .trim()
            .to_string()
    }

    /// Sends `per_flow` datagrams on each of `flows` flows (source ports 20000..) from h1 to
    /// h2:9000, payload `tag flow seq`, paced; h2 receives until 3 s pass without one and
    /// returns, per flow, the sequence numbers in arrival order.
    fn udp_flows(&self, tag: &str, flows: usize, per_flow: usize) -> Vec<Vec<usize>> {
        let recv = format!(
            r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("10.0.0.2", 9000))
open("/tmp/{tag}.ready", "w").close()
s.settimeout(3.0)
got = {{}}
try:
    while True:
        d = s.recv(2048).decode().split()
        if d[0] == "{tag}":
            got.setdefault(int(d[1]), []).append(int(d[2]))
except socket.timeout:
    pass
for f in range({flows}):
    print(f, *got.get(f, []))
"#
        );
        let send = format!(
            r#"
import socket, time
socks = []
for f in range({flows}):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.0.0.1", 20000 + f))
    socks.append(s)
for seq in range({per_flow}):
    for f, s in enumerate(socks):
        s.sendto(("{tag} %d %d " % (f, seq)).encode().ljust(64, b"x"), ("10.0.0.2", 9000))
    time.sleep(0.004)
"#
        );
        let _ = std::fs::remove_file(format!("/tmp/{tag}.ready"));
        let receiver = Command::new("ip")
            .args(["netns", "exec", self.ns(2), "python3", "-c", &recv])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("receiver starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&format!("/tmp/{tag}.ready")).exists() {
            assert!(Instant::now() < deadline, "the receiver never bound");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns(1), "python3", "-c", &send])
            .stdin(Stdio::null())
            .output()
            .expect("sender runs");
        assert!(
            out.status.success(),
            "sender: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = receiver.wait_with_output().expect("receiver ends");
        assert!(
            out.status.success(),
            "receiver: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().expect("a number"))
                    .collect()
            })
            .collect()
    }

    /// The per-core receive counts of the stats line (`cores: worker0 rx=N ...`).
    fn core_rx(&self) -> Vec<u64> {
        let from = self.vm.serial_lines().len();
        self.vm.send_serial(b"s").expect("serial input");
        let (_, line) = self
            .vm
            .wait_for_line_from(from, "stats: port1", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no stats line after `s`: {e}"));
        let cores = text(&line)
            .split_once("cores:")
            .unwrap_or_else(|| panic!("no cores segment: {line}"))
            .1;
        cores
            .split('|')
            .filter_map(|seg| {
                let mut w = seg.split_whitespace();
                w.next()?.strip_prefix("worker")?;
                w.find_map(|kv| kv.strip_prefix("rx=")?.parse().ok())
            })
            .collect()
    }

    /// Port 1's rx packets (`ovs-ofctl dump-ports`).
    fn port1_rx(&self) -> u64 {
        let ports = self.ofctl_ok(&["dump-ports", "1"]);
        ports
            .split("rx pkts=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no rx pkts in {ports}"))
    }

    fn n_packets(&self, match_: &str) -> u64 {
        let out = self.ofctl_ok(&["dump-flows", match_]);
        out.lines()
            .filter(|l| l.contains("n_packets="))
            .map(|l| {
                l.split("n_packets=")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    }
}

fn multicore(test: &str, cpus: u32, cores: u16) {
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(sw) = Switch::boot(test, cpus, cores) else {
        return;
    };
    let diag = || sw.vm.diagnostics();
    // Each worker runs on its own CPU over both ports' queues.
    for w in 0..cores {
        let cpu = w + 1;
        let pat = format!("datapath: worker {w} polling 2 queues on cpu {cpu}");
        sw.vm
            .wait_for_line(pat.as_str(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{test}: {e}\n{}", diag()));
    }

    sw.ofctl_ok(&["del-flows"]);
    sw.ofctl_ok(&["add-flow", "priority=100,in_port=1,actions=output:2"]);
    sw.ofctl_ok(&["add-flow", "priority=100,in_port=2,actions=output:1"]);
    let before_rx = sw.core_rx();
    // Port counters count since boot (the hosts' IPv6 start-up traffic): compare growth.
    let rx0 = sw.port1_rx();

    // Ordering and loss, per flow.
    let got = sw.udp_flows("ord", FLOWS, PER_FLOW);
    for (f, seqs) in got.iter().enumerate() {
        let want: Vec<usize> = (0..PER_FLOW).collect();
        assert_eq!(
            seqs,
            &want,
            "{test}: flow {f}: lost or reordered datagrams\n{}",
            diag()
        );
    }
    let sent = (FLOWS * PER_FLOW) as u64;
    // Counters exact, summed over the cores (the statistics requests wait for every core).
    let n = sw.n_packets("in_port=1");
    assert_eq!(n, sent, "{test}: flow in_port=1 n_packets\n{}", diag());
    let rx = sw.port1_rx() - rx0;
    assert_eq!(rx, sent, "{test}: port 1 rx over the test\n{}", diag());
    // Spread over the cores (the tap picks a queue by flow hash).
    std::thread::sleep(Duration::from_millis(1500)); // the cores publish counters each second
    let after_rx = sw.core_rx();
    let per_core: Vec<u64> = after_rx
        .iter()
        .zip(before_rx.iter().chain(std::iter::repeat(&0)))
        .map(|(a, b)| a - b)
        .collect();
    eprintln!("{test}: datagrams per core {per_core:?}");
    assert_eq!(per_core.len(), usize::from(cores), "{test}: {after_rx:?}");
    // Every datagram was received by some core (a host's stray frame may add one or two: the
    // exact counts are the flow's and the port's above).
    assert!(per_core.iter().sum::<u64>() >= sent, "{test}: {per_core:?}");
    if cores > 1 {
        assert!(
            per_core.iter().filter(|n| **n > 0).count() > 1,
            "{test}: all flows on one core: {per_core:?}\n{}",
            diag()
        );
    }

    // Churn with barriers: no datagram forwarded by a flow older than the barrier reply.
    for r in 0..ROUNDS {
        sw.ofctl_ok(&["mod-flows", "priority=100,in_port=1,actions=drop"]);
        let got = sw.udp_flows(&format!("drop{r}"), 4, BURST / 4);
        let stale: usize = got.iter().map(Vec::len).sum();
        assert_eq!(
            stale,
            0,
            "{test}: round {r}: {stale} stale datagrams after the barrier\n{}",
            diag()
        );
        sw.ofctl_ok(&["mod-flows", "priority=100,in_port=1,actions=output:2"]);
        let got = sw.udp_flows(&format!("fwd{r}"), 4, BURST / 4);
        let arrived: usize = got.iter().map(Vec::len).sum();
        assert_eq!(arrived, BURST, "{test}: round {r}: {got:?}\n{}", diag());
    }
    let total = sent + (ROUNDS * 2 * BURST) as u64;
    let n = sw.n_packets("in_port=1");
    assert_eq!(
        n,
        total,
        "{test}: flow counters after churn (mod-flows keeps them)\n{}",
        diag()
    );

    // A meter limits the bridge as a whole, whichever core a flow lands on: 1 packet/s with a
    // burst of METER_BURST lets that many through (plus one per second of the run), not that
    // many per core (or all of them, as when the datapath cores did not meter at all).
    sw.ofctl_ok(&[
        "add-meter",
        &format!("meter=1,pktps,burst,stats,band=type=drop,rate=1,burst_size={METER_BURST}"),
    ]);
    sw.ofctl_ok(&[
        "mod-flows",
        "priority=100,in_port=1,actions=meter:1,output:2",
    ]);
    let before_rx = sw.core_rx();
    let started = Instant::now();
    let got = sw.udp_flows("meter", FLOWS, METER_PER_FLOW);
    let secs = started.elapsed().as_secs() + 1;
    let arrived: usize = got.iter().map(Vec::len).sum();
    let offered = FLOWS * METER_PER_FLOW;
    eprintln!("{test}: meter: {arrived} of {offered} datagrams passed in ~{secs} s");
    assert!(
        arrived >= METER_BURST && arrived <= METER_BURST + secs as usize,
        "{test}: meter 1 (burst {METER_BURST}, 1/s) passed {arrived} of {offered} in ~{secs} s\n{}",
        diag()
    );
    let stats = sw.ofctl_ok(&["meter-stats", "meter=1"]);
    let field = |name: &str| -> u64 {
        stats
            .split(name)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{test}: no {name} in meter-stats:\n{stats}"))
    };
    // Every datagram was charged (exact, over all cores); the band dropped the rest.
    assert_eq!(field("packet_in_count:"), offered as u64, "{stats}");
    assert_eq!(
        field("0: packet_count:"),
        (offered - arrived) as u64,
        "{stats}"
    );
    if cores > 1 {
        std::thread::sleep(Duration::from_millis(1500));
        let per_core: Vec<u64> = sw
            .core_rx()
            .iter()
            .zip(before_rx.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a - b)
            .collect();
        eprintln!("{test}: metered datagrams per core {per_core:?}");
        assert!(
            per_core.iter().filter(|n| **n > 0).count() > 1,
            "{test}: the metered flows all landed on one core: {per_core:?}"
        );
    }
}

#[test]
fn smp2_one_datapath_core() {
    multicore("mc_smp2", 2, 1);
}

#[test]
fn smp4_three_datapath_cores() {
    multicore("mc_smp4", 4, 3);
}
