//! More of ovs-ofctl against the booted appliance (passive port, `tcp:127.0.0.1:<forwarded
//! 6653>`), OpenFlow 1.0 and 1.3, with and without `--no-names`, checked against real traffic
//! between the network-namespace hosts h1..h3 (10.0.0.1-3) where a command changes forwarding.
//!
//! - `tables_ports_and_features`: dump-tables, dump-table-features (1.3), dump-ports,
//!   dump-ports-desc in both versions, with and without `--no-names`.
//! - `port_stats_count_traffic`: dump-ports after pings counts them
//!   counts them.
//! - `ten_thousand_flows_mod_and_del`: add-flows of a 10,000-flow file (1.3) -> dump-aggregate
//!   `flow_count` >= 10000; mod-flows (1.0 and 1.3) changes actions; del-flows `--strict` removes
//!   exactly one; del-flows (not strict) removes the rest; a 1.0 file of 10,000 too.
//! - `groups_and_meters`: add-group/dump-groups, a flow to the group copies h1's pings to h3;
//!   add-meter/dump-meters (1.3).
//! - `packet_out_port_mod_and_packet_in`: packet-out of a frame out of port 2 seen by tcpdump in
//!   h2; mod-port 2 down/up: pings through port 2 stop/resume and `monitor` prints the
//!   port-status; `monitor` prints the packet-in of a flow `actions=controller`.
//! - `set_field_and_redirect`: `set_field:46->ip_dscp` (1.3) and `mod_nw_tos:184` (1.0) seen as
//!   `tos 0xb8` by tcpdump in h2; an output rule sends h1's pings for h2 to h3 (tcpdump in h3).
//!
//! Needs root (taps, namespaces): SKIPPED outside CI without it, a failure on CI. One VM at a
//! time (the guest busy-polls a host core).

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// KVM where it runs guest code natively; TCG where `/dev/kvm` is the PVM software hypervisor
/// (`kvm_pvm`), which emulates every instruction of our ring-0 guest (see docs/benchmarks.md).
fn fast_accel() -> Accel {
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        Accel::Tcg
    } else {
        Accel::detect().unwrap_or(Accel::Tcg)
    }
}

const V10: &str = "OpenFlow10";
const V13: &str = "OpenFlow13";

struct Switch {
    vm: Vm,
    target: String,
}

impl Switch {
    /// Boots (standalone, no controller: a `priority=0 actions=NORMAL` flow) with 3 netns hosts
    /// and the management NIC; waits until `ovs-ofctl show` answers. None when not root off CI.
    fn boot(test: &str) -> Option<Switch> {
        if !ironflow_qemu::is_root() {
            if on_ci() {
                panic!("{test}: needs root for network namespaces (CI runs as root)");
            }
            eprintln!("{test}: SKIPPED: needs root for network namespaces");
            return None;
        }
        let vm = pvh(test, "on_panic=exit log=info")
            .accel(fast_accel())
            .memory_mb(256)
            .data_ports(3)
            .port_net(PortNet::netns_unique())
            .mgmt_nic(&[(0, 6653)])
            .spawn()
            .expect("spawn QEMU");
        vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
        let port = vm.mgmt_host_port(6653).expect("forwarded port");
        let sw = Switch {
            vm,
            target: format!("tcp:127.0.0.1:{port}"),
        };
        for n in 1..=3 {
            sw.sh(
                n,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
                 net.ipv6.conf.eth0.disable_ipv6=1",
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, out) = sw.ofctl(V13, &["show"]);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ovs-ofctl show never succeeded: {out}\n{}",
                sw.vm.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Some(sw)
    }

    /// `ovs-ofctl -O <version> [opts] <verb> <target> <rest>` where `args` = `[opts.., verb,
    /// rest..]` and options start with `--`: (success, stdout+stderr).
    fn ofctl(&self, version: &str, args: &[&str]) -> (bool, String) {
        let opts: Vec<&str> = args
            .iter()
            .copied()
            .take_while(|a| a.starts_with("--"))
            .collect();
        let (verb, rest) = args[opts.len()..].split_first().expect("a command");
        match Command::new("ovs-ofctl")
            .args(["-O", version, "--timeout=30"])
            .args(&opts)
            .arg(verb)
            .arg(&self.target)
            .args(rest)
            .output()
        {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run ovs-ofctl: {e}")),
        }
    }

    fn ok(&self, version: &str, args: &[&str]) -> String {
        let (ok, out) = self.ofctl(version, args);
        assert!(
            ok,
            "ovs-ofctl -O {version} {args:?} failed:\n{out}\n{}",
            self.vm.diagnostics()
        );
        out
    }

    fn flow_count(&self, version: &str) -> u64 {
        let out = self.ok(version, &["dump-aggregate"]);
        out.split("flow_count=")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or_else(|| panic!("no flow_count in dump-aggregate:\n{out}"))
    }

    fn ns(&self, n: usize) -> &str {
        self.vm.netns(n).expect("netns host")
    }

    fn sh(&self, n: usize, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns(n), "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "h{n}: `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ping(&self, from: usize, to: usize, count: u32) -> bool {
        Command::new("ip")
            .args(["netns", "exec", self.ns(from)])
            .args(["ping", "-n", "-q", "-c", &count.to_string(), "-W", "1"])
            .args(["-i", "0.2", &format!("10.0.0.{to}")])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Lines tcpdump (`-v`, incoming only) prints in h`n` for `filter` while `during` runs.
    fn capture<T>(&self, n: usize, filter: &str, during: impl FnOnce() -> T) -> (Vec<String>, T) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.ns(n)])
            .args([
                "tcpdump", "-i", "eth0", "-n", "-v", "-l", "-Q", "in", filter,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        wait_stderr(&mut child, "listening on");
        let r = during();
        std::thread::sleep(Duration::from_millis(500));
        interrupt(&child);
        let out = child.wait_with_output().expect("tcpdump exits");
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty()) // tcpdump ends with an empty line on SIGINT
            .map(str::to_string)
            .collect();
        (lines, r)
    }

    /// `ovs-ofctl -O <version> monitor <target> 65535` (asks for packet-ins) in the background.
    fn monitor(&self, version: &str) -> Monitor {
        let path = std::env::temp_dir().join(format!(
            "ironflow-monitor-{}-{}.txt",
            std::process::id(),
            self.target.replace(':', "_")
        ));
        let out = std::fs::File::create(&path).expect("monitor output");
        let err = out.try_clone().expect("monitor output");
        // Its own unixctl socket (the default directory may not exist).
        let ctl = path.with_extension("ctl");
        let child = Command::new("ovs-ofctl")
            .args(["-O", version, "monitor"])
            .arg(format!("--unixctl={}", ctl.display()))
            .args([&self.target, "65535"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("ovs-ofctl monitor");
        let m = Monitor { child, path };
        // Connected once it has printed the reply to its first request.
        let deadline = Instant::now() + Duration::from_secs(20);
        while m.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        m
    }
}

struct Monitor {
    child: Child,
    path: std::path::PathBuf,
}

impl Monitor {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("ctl"));
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// SIGINT to our own child (tcpdump prints what it has and exits).
fn interrupt(child: &Child) {
    // SAFETY: kill(2) of our own, not yet reaped, child.
    unsafe { libc_kill(child.id() as i32, 2) };
}

/// Reads `child`'s stderr until it contains `what` (or 10 s pass).
fn wait_stderr(child: &mut Child, what: &str) {
    use std::io::Read;
    let Some(mut stderr) = child.stderr.take() else {
        return;
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(what) && Instant::now() < deadline {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => seen.extend_from_slice(&buf[..k]),
        }
    }
    // Keep draining so tcpdump never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink);
    });
}

fn no_panic(sw: &Switch) {
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn tables_ports_and_features() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-tables") else {
        return;
    };
    assert!(sw.ping(1, 2, 2), "h1 -> h2 (traffic for the counters)");
    for version in [V10, V13] {
        for names in [None, Some("--no-names"), Some("--names")] {
            let with = |verb: &'static str| -> Vec<&str> {
                names.into_iter().chain(std::iter::once(verb)).collect()
            };
            let tables = sw.ok(version, &with("dump-tables"));
            assert!(
                tables.contains("table 0") && tables.contains("active="),
                "{version} {names:?} dump-tables:\n{tables}"
            );
            let ports = sw.ok(version, &with("dump-ports"));
            assert!(
                ports.matches("rx pkts=").count() >= 3 && ports.matches("tx pkts=").count() >= 3,
                "{version} {names:?} dump-ports: fewer than 3 ports:\n{ports}"
            );
            let desc = sw.ok(version, &with("dump-ports-desc"));
            for p in ["1(eth1)", "2(eth2)", "3(eth3)"] {
                assert!(
                    desc.contains(p),
                    "{version} {names:?} dump-ports-desc: no {p}:\n{desc}"
                );
            }
            assert!(desc.contains("addr:52:54:00:00:00:0"), "{desc}");
            if version == V13 {
                let features = sw.ok(version, &with("dump-table-features"));
                assert!(
                    features.contains("table 0") && features.contains("max_entries="),
                    "{names:?} dump-table-features:\n{}",
                    &features[..features.len().min(4000)]
                );
            }
        }
        // A single port.
        let one = sw.ok(version, &["dump-ports", "2"]);
        assert!(
            one.matches("rx pkts=").count() == 1 && one.contains("port  2"),
            "{version} dump-ports 2:\n{one}"
        );
    }
    no_panic(&sw);
}

#[test]
fn port_stats_count_traffic() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-portstats") else {
        return;
    };
    assert!(sw.ping(1, 2, 2), "h1 -> h2");
    let rx_tx = |port: &str| -> (u64, u64) {
        let out = sw.ok(V13, &["dump-ports", port]);
        let num = |key: &str| -> u64 {
            out.split(key)
                .nth(1)
                .and_then(|s| s.split(',').next()?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
        };
        (num("rx pkts="), num("tx pkts="))
    };
    let (rx1, tx1) = rx_tx("1");
    let (rx2, tx2) = rx_tx("2");
    // At least the two echo requests in on port 1 and out on port 2, the replies the other way.
    assert!(
        rx1 >= 2 && tx1 >= 2 && rx2 >= 2 && tx2 >= 2,
        "port counters after 2 pings: port 1 rx={rx1} tx={tx1}, port 2 rx={rx2} tx={tx2}"
    );
    no_panic(&sw);
}

/// `n` flows `priority=10,ip,nw_src=10.1.X.Y,actions=drop` in a file ovs-ofctl add-flows reads.
fn flow_file(tag: &str, n: u32) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ironflow-flows-{tag}-{}-{n}.txt",
        std::process::id()
    ));
    let mut s = String::with_capacity(n as usize * 48);
    for i in 0..n {
        s += &format!(
            "priority=10,ip,nw_src=10.1.{}.{},actions=drop\n",
            i / 256,
            i % 256
        );
    }
    std::fs::write(&path, s).expect("write flow file");
    path
}

#[test]
fn ten_thousand_flows_mod_and_del() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-10k") else {
        return;
    };
    let base = sw.flow_count(V13);
    assert_eq!(
        base, 1,
        "standalone with no controller: the NORMAL flow only"
    );
    let file = flow_file("13", 10_000);
    let t = Instant::now();
    sw.ok(V13, &["add-flows", file.to_str().unwrap()]);
    eprintln!("add-flows 10k (OF1.3): {:.1?}", t.elapsed());
    let _ = std::fs::remove_file(&file);
    assert_eq!(sw.flow_count(V13), 10_001, "after add-flows of 10,000");
    assert_eq!(sw.flow_count(V10), 10_001, "the same through OpenFlow 1.0");

    // mod-flows (not strict, one flow matches) changes its actions, in both versions.
    sw.ok(V13, &["mod-flows", "ip,nw_src=10.1.0.5,actions=output:3"]);
    sw.ok(V10, &["mod-flows", "ip,nw_src=10.1.0.6,actions=output:2"]);
    for (version, src, want) in [
        (V13, "10.1.0.5", "actions=output:3"),
        (V10, "10.1.0.6", "actions=output:2"),
        (V13, "10.1.0.7", "actions=drop"),
    ] {
        let f = sw.ok(version, &["dump-flows", &format!("ip,nw_src={src}")]);
        assert!(
            f.contains(want) && f.lines().filter(|l| l.contains("priority=10")).count() == 1,
            "{version} mod-flows of nw_src={src}: want {want}:\n{f}"
        );
    }
    // mod-flows --strict changes only the exact flow.
    sw.ok(
        V13,
        &[
            "mod-flows",
            "--strict",
            "priority=10,ip,nw_src=10.1.0.8,actions=output:1",
        ],
    );
    let f = sw.ok(V13, &["dump-flows", "ip,nw_src=10.1.0.8"]);
    assert!(f.contains("actions=output:1"), "mod-flows --strict:\n{f}");

    // del-flows --strict: exactly one goes; a strict delete with another priority: none.
    sw.ok(
        V13,
        &["del-flows", "--strict", "priority=10,ip,nw_src=10.1.0.5"],
    );
    assert_eq!(sw.flow_count(V13), 10_000, "after del-flows --strict");
    sw.ok(
        V10,
        &["del-flows", "--strict", "priority=11,ip,nw_src=10.1.0.6"],
    );
    assert_eq!(sw.flow_count(V13), 10_000, "strict delete, other priority");
    // del-flows (not strict) with a wildcarded match removes all the others but the NORMAL flow.
    sw.ok(V10, &["del-flows", "ip,nw_src=10.1.0.0/16"]);
    assert_eq!(
        sw.flow_count(V13),
        1,
        "after del-flows ip,nw_src=10.1.0.0/16"
    );
    assert!(sw.ping(1, 2, 2), "NORMAL still forwards");

    // The same 10,000 through OpenFlow 1.0.
    let file = flow_file("10", 10_000);
    let t = Instant::now();
    sw.ok(V10, &["add-flows", file.to_str().unwrap()]);
    eprintln!("add-flows 10k (OF1.0): {:.1?}", t.elapsed());
    let _ = std::fs::remove_file(&file);
    assert_eq!(sw.flow_count(V10), 10_001, "after OF1.0 add-flows");
    sw.ok(V13, &["del-flows", "ip"]);
    assert_eq!(sw.flow_count(V13), 1, "after del-flows ip");
    no_panic(&sw);
}

#[test]
fn groups_and_meters() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-groups") else {
        return;
    };
    assert!(sw.ping(1, 2, 2), "h1 -> h2 (ARP learned)");
    sw.ok(
        V13,
        &[
            "add-group",
            "group_id=7,type=all,bucket=output:2,bucket=output:3",
        ],
    );
    let groups = sw.ok(V13, &["dump-groups"]);
    assert!(
        groups.contains("group_id=7,type=all")
            && groups.contains("bucket=actions=output:2")
            && groups.contains("bucket=actions=output:3"),
        "dump-groups:\n{groups}"
    );
    // h1's pings for h2 go to the group: h2 answers, h3 sees a copy.
    sw.ok(
        V13,
        &[
            "add-flow",
            "priority=100,icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2,actions=group:7",
        ],
    );
    let (seen, ok) = sw.capture(3, "icmp and dst host 10.0.0.2", || sw.ping(1, 2, 3));
    assert!(ok, "h1 -> h2 through the all-group");
    assert!(
        seen.iter().filter(|l| l.contains("echo request")).count() >= 3,
        "h3 saw no copies of h1's pings:\n{}",
        seen.join("\n")
    );
    let stats = sw.ok(V13, &["dump-group-stats"]);
    assert!(stats.contains("group_id=7"), "dump-group-stats:\n{stats}");

    sw.ok(V13, &["add-meter", "meter=1,kbps,band=type=drop,rate=1000"]);
    let meters = sw.ok(V13, &["dump-meters"]);
    assert!(
        meters.contains("meter=1")
            && meters.contains("kbps")
            && meters.contains("type=drop rate=1000"),
        "dump-meters:\n{meters}"
    );
    sw.ok(V13, &["del-meter", "meter=1"]);
    let meters = sw.ok(V13, &["dump-meters"]);
    assert!(!meters.contains("meter=1"), "after del-meter:\n{meters}");
    sw.ok(V13, &["del-flows", "icmp"]);
    sw.ok(V13, &["del-groups", "group_id=7"]);
    let groups = sw.ok(V13, &["dump-groups"]);
    assert!(
        !groups.contains("group_id=7"),
        "after del-groups:\n{groups}"
    );
    no_panic(&sw);
}

#[test]
fn packet_out_port_mod_and_packet_in() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-pktio") else {
        return;
    };
    // packet-out: a broadcast frame with an experimental ethertype out of port 2 only.
    let frame = format!(
        "ffffffffffff020000000099{}{}",
        "88b5",
        "69726f6e".repeat(12)
    );
    for version in [V13, V10] {
        let (seen2, seen3) = {
            let mut seen3 = Vec::new();
            let (seen2, ()) = sw.capture(2, "ether src 02:00:00:00:00:99", || {
                let (s3, ()) = sw.capture(3, "ether src 02:00:00:00:00:99", || {
                    sw.ok(version, &["packet-out", "CONTROLLER", "output:2", &frame]);
                });
                seen3 = s3;
            });
            (seen2, seen3)
        };
        assert_eq!(
            seen2.iter().filter(|l| l.contains("0x88b5")).count(),
            1,
            "{version} packet-out: h2 should see the frame once:\n{}",
            seen2.join("\n")
        );
        assert!(
            seen3.is_empty(),
            "{version}: h3 saw it:\n{}",
            seen3.join("\n")
        );
    }

    // mod-port 2 down / up, watched by a monitor.
    let mon = sw.monitor(V13);
    assert!(sw.ping(1, 2, 2), "h1 -> h2 before mod-port");
    sw.ok(V13, &["mod-port", "2", "down"]);
    assert!(
        mon.wait_for("OFPT_PORT_STATUS", Duration::from_secs(10)),
        "monitor saw no port-status after mod-port 2 down:\n{}",
        mon.text()
    );
    let desc = sw.ok(V13, &["dump-ports-desc"]);
    assert!(
        desc.split(" 3(eth3)")
            .next()
            .unwrap_or("")
            .contains("PORT_DOWN"),
        "port 2 is not PORT_DOWN:\n{desc}"
    );
    assert!(!sw.ping(1, 2, 3), "h1 -> h2 through a port that is down");
    sw.ok(V10, &["mod-port", "2", "up"]);
    assert!(sw.ping(1, 2, 3), "h1 -> h2 after mod-port 2 up");
    assert!(
        mon.text().matches("OFPT_PORT_STATUS").count() >= 2,
        "monitor saw fewer than 2 port-status messages:\n{}",
        mon.text()
    );

    // packet-in: h1's pings for h3 go to the controller (the monitor).
    sw.ok(
        V13,
        &[
            "add-flow",
            "priority=100,icmp,nw_src=10.0.0.1,nw_dst=10.0.0.3,actions=controller",
        ],
    );
    assert!(!sw.ping(1, 3, 2), "pings sent to the controller reached h3");
    assert!(
        mon.wait_for("OFPT_PACKET_IN", Duration::from_secs(10)),
        "monitor saw no packet-in:\n{}",
        mon.text()
    );
    let text = mon.text();
    assert!(
        text.contains("nw_src=10.0.0.1,nw_dst=10.0.0.3"),
        "the packet-in is not h1's ping for h3:\n{text}"
    );
    drop(mon);
    // The same with an OpenFlow 1.0 monitor.
    let mon10 = sw.monitor(V10);
    assert!(!sw.ping(1, 3, 2));
    assert!(
        mon10.wait_for("OFPT_PACKET_IN", Duration::from_secs(10)),
        "OF1.0 monitor saw no packet-in:\n{}",
        mon10.text()
    );
    no_panic(&sw);
}

#[test]
fn set_field_and_redirect() {
    let _one = lock();
    let Some(sw) = Switch::boot("ofx-setfield") else {
        return;
    };
    assert!(sw.ping(1, 2, 2), "h1 -> h2 (ARP learned)");
    for (version, action) in [(V13, "set_field:46->ip_dscp"), (V10, "mod_nw_tos:184")] {
        sw.ok(
            version,
            &[
                "add-flow",
                &format!(
                    "priority=100,icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2,actions={action},output:2"
                ),
            ],
        );
        let (seen, ok) = sw.capture(2, "icmp and src host 10.0.0.1", || sw.ping(1, 2, 3));
        assert!(ok, "{version} {action}: h1 -> h2");
        let requests: Vec<_> = seen.iter().filter(|l| l.contains("tos 0x")).collect();
        assert!(
            requests.len() >= 3 && requests.iter().all(|l| l.contains("tos 0xb8")),
            "{version} {action}: h2 should see tos 0xb8 on every request:\n{}",
            seen.join("\n")
        );
        sw.ok(version, &["del-flows", "icmp"]);
    }
    // Without the rewrite: tos 0x0.
    let (seen, ok) = sw.capture(2, "icmp and src host 10.0.0.1", || sw.ping(1, 2, 2));
    assert!(
        ok && seen.iter().any(|l| l.contains("tos 0x0,")),
        "{seen:?}"
    );

    // Redirect: h1's IP traffic for h2 goes out of port 3.
    sw.ok(
        V10,
        &[
            "add-flow",
            "priority=100,ip,in_port=1,nw_dst=10.0.0.2,actions=output:3",
        ],
    );
    let mut h2_seen = Vec::new();
    let (h3_seen, ok) = sw.capture(3, "icmp and dst host 10.0.0.2", || {
        let (s2, ok) = sw.capture(2, "icmp and src host 10.0.0.1", || sw.ping(1, 2, 3));
        h2_seen = s2;
        ok
    });
    assert!(!ok, "h1 -> h2 answered although redirected to h3");
    assert!(
        h3_seen
            .iter()
            .filter(|l| l.contains("echo request"))
            .count()
            >= 3,
        "h3 did not get h1's pings for h2:\n{}",
        h3_seen.join("\n")
    );
    assert!(
        h2_seen.is_empty(),
        "h2 still got h1's pings:\n{}",
        h2_seen.join("\n")
    );
    let flows = sw.ok(V13, &["dump-flows", "ip"]);
    assert!(
        flows.contains("n_packets=3") || flows.contains("n_packets=4"),
        "the redirect flow's counters:\n{flows}"
    );
    sw.ok(
        V13,
        &[
            "del-flows",
            "--strict",
            "priority=100,ip,in_port=1,nw_dst=10.0.0.2",
        ],
    );
    assert!(sw.ping(1, 2, 2), "h1 -> h2 after the redirect is removed");
    no_panic(&sw);
}
