//! OpenFlow through the management port of the booted image, with the real clients: ovs-ofctl
//! (OpenFlow 1.0 and 1.3) against `tcp:127.0.0.1:<forwarded 6653>`, flows steering real traffic
//! between the network-namespace hosts, and malformed input that must not hurt anyone.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

struct Switch {
    vm: Vm,
    target: String,
}

/// Boots the appliance with 3 netns hosts and the management NIC (6653 forwarded), waits until
/// the OpenFlow listener answers. None (skipped) when not root outside CI.
fn boot(test: &str, cmdline: &str) -> Option<Switch> {
    if !ironflow_qemu::is_root() {
        if on_ci() {
            panic!("{test}: needs root for network namespaces (CI runs as root)");
        }
        eprintln!("{test}: SKIPPED: needs root for network namespaces");
        return None;
    }
    let vm = pvh(test, cmdline)
        .accel(fast_accel())
        .memory_mb(256)
        .data_ports(3)
        .port_net(PortNet::netns_unique())
        .mgmt_nic(&[(0, 6653)])
        .spawn()
        .expect("spawn QEMU");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
    let port = vm.mgmt_host_port(6653).expect("forwarded port");
    let target = format!("tcp:127.0.0.1:{port}");
    let sw = Switch { vm, target };
    // The management address comes from DHCP: wait until OpenFlow answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = sw.ofctl("OpenFlow13", &["show"]);
        if out.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ovs-ofctl show never succeeded: {}\n{}",
            out.1,
            sw.vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Some(sw)
}

/// KVM where it runs guest code natively; TCG where `/dev/kvm` is the PVM software hypervisor
/// (`kvm_pvm`), which emulates every instruction of a ring-0 guest like ours and is ~1000x
/// slower than TCG for it (see docs/benchmarks.md).
fn fast_accel() -> Accel {
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        Accel::Tcg
    } else {
        Accel::detect().unwrap_or(Accel::Tcg)
    }
}

impl Switch {
    /// Runs `ovs-ofctl -O <version> <args> <target> [extra]`, returns (success, stdout+stderr).
    fn ofctl(&self, version: &str, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ovs-ofctl");
        cmd.arg("-O").arg(version).arg("--timeout=10");
        let (verb, rest) = args.split_first().expect("a command");
        cmd.arg(verb).arg(&self.target).args(rest);
        match cmd.output() {
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

    fn ofctl_ok(&self, version: &str, args: &[&str]) -> String {
        let (ok, out) = self.ofctl(version, args);
        assert!(ok, "ovs-ofctl -O {version} {args:?} failed:\n{out}");
        out
    }

    /// Whether host `from` (1-based) reaches 10.0.0.`to` with `count` pings.
    fn ping(&self, from: usize, to: usize, count: u32) -> bool {
        let ns = self.vm.netns(from).expect("netns host");
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "ping",
                "-c",
                &count.to_string(),
                "-W",
                "1",
                "-i",
                "0.2",
            ])
            .arg(format!("10.0.0.{to}"))
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

#[test]
fn ovs_ofctl_drives_the_switch() {
    let Some(sw) = boot("of-ofctl", "log=info") else {
        return;
    };
    // Standalone with no controller: NORMAL forwards.
    assert!(sw.ping(1, 3, 3), "h1 -> h3 before any flow change");

    let show = sw.ofctl_ok("OpenFlow13", &["show"]);
    assert!(show.contains("OFPT_FEATURES_REPLY"), "{show}");
    for p in ["1(eth1)", "2(eth2)", "3(eth3)"] {
        assert!(show.contains(p), "port {p} missing in show:\n{show}");
    }
    let show10 = sw.ofctl_ok("OpenFlow10", &["show"]);
    assert!(show10.contains("OFPT_FEATURES_REPLY"), "{show10}");
    let desc = sw.ofctl_ok("OpenFlow13", &["dump-desc"]);
    assert!(desc.contains("ironflow"), "{desc}");

    // A drop rule for h3's address stops h1 -> h3 but not h1 -> h2.
    sw.ofctl_ok(
        "OpenFlow13",
        &["add-flow", "priority=100,ip,nw_dst=10.0.0.3,actions=drop"],
    );
    let flows = sw.ofctl_ok("OpenFlow13", &["dump-flows"]);
    assert!(flows.contains("nw_dst=10.0.0.3"), "{flows}");
    assert!(!sw.ping(1, 3, 3), "the drop rule must stop h1 -> h3");
    assert!(sw.ping(1, 2, 3), "h1 -> h2 must still work");
    let flows = sw.ofctl_ok("OpenFlow13", &["dump-flows"]);
    assert!(
        flows.contains("n_packets=") && !flows.contains("n_packets=0, n_bytes=0, priority=100"),
        "the drop rule counted no packets:\n{flows}"
    );

    // Strict delete of that rule restores h1 -> h3.
    sw.ofctl_ok(
        "OpenFlow13",
        &["del-flows", "--strict", "priority=100,ip,nw_dst=10.0.0.3"],
    );
    assert!(sw.ping(1, 3, 3), "h1 -> h3 after the strict delete");

    // The same through OpenFlow 1.0.
    sw.ofctl_ok(
        "OpenFlow10",
        &["add-flow", "priority=200,icmp,nw_src=10.0.0.2,actions=drop"],
    );
    let flows10 = sw.ofctl_ok("OpenFlow10", &["dump-flows"]);
    assert!(flows10.contains("nw_src=10.0.0.2"), "{flows10}");
    assert!(
        !sw.ping(2, 1, 3),
        "OF1.0 drop rule must stop h2 -> h1 pings"
    );
    sw.ofctl_ok("OpenFlow10", &["del-flows", "icmp"]);
    assert!(sw.ping(2, 1, 3), "h2 -> h1 after del-flows icmp");

    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

#[test]
fn malformed_openflow_gets_errors_and_hurts_nobody() {
    let Some(sw) = boot("of-malformed", "log=info") else {
        return;
    };
    let port = sw.vm.mgmt_host_port(6653).expect("forwarded port");
    let hello13 = [4u8, 0, 0, 8, 0, 0, 0, 1];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Unknown message type 0xee after a good hello.
        (
            "unknown type",
            [&hello13[..], &[4, 0xee, 0, 8, 0, 0, 0, 2]].concat(),
        ),
        // Length shorter than the header.
        (
            "short length",
            [&hello13[..], &[4, 2, 0, 4, 0, 0, 0, 3]].concat(),
        ),
        // Flow-mod with a truncated body.
        (
            "truncated flow-mod",
            [&hello13[..], &[4, 14, 0, 12, 0, 0, 0, 4, 1, 2, 3, 4]].concat(),
        ),
        // Random bytes.
        (
            "random",
            (0..512u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (name, bytes) in cases {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(&bytes).expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
            if has_error(&got) {
                break;
            }
        }
        // Some reply came: at least the switch's HELLO; for the structured cases an ERROR (type 1).
        assert!(got.len() >= 8, "{name}: no answer at all");
        if name != "random" {
            assert!(has_error(&got), "{name}: no OFPT_ERROR in {got:02x?}");
        }
    }
    // The switch is unharmed: ovs-ofctl works and traffic flows.
    sw.ofctl_ok("OpenFlow13", &["show"]);
    assert!(sw.ping(1, 2, 3), "forwarding after malformed input");
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

/// Whether a stream of OpenFlow messages holds an OFPT_ERROR (type 1).
fn has_error(stream: &[u8]) -> bool {
    let mut off = 0;
    while off + 8 <= stream.len() {
        if stream[off + 1] == 1 {
            return true;
        }
        let len = u16::from_be_bytes([stream[off + 2], stream[off + 3]]) as usize;
        if len < 8 {
            return false;
        }
        off += len;
    }
    false
}
