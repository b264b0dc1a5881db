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

/// An OpenFlow 1.3 message: header with `msg_type`, `xid`, then `body`.
fn of13(msg_type: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let len = (8 + body.len()) as u16;
    let mut m = vec![4, msg_type];
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// An OpenFlow 1.3 FLOW_MOD (add, table 0, priority 100) body with `match_` and `instructions`.
fn flow_mod13(match_: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 16]; // cookie, cookie mask
    b.extend_from_slice(&[0, 0]); // table 0, OFPFC_ADD
    b.extend_from_slice(&[0, 0, 0, 0, 0, 100]); // idle, hard, priority
    b.extend_from_slice(&[0xff; 12]); // buffer_id NO_BUFFER, out_port ANY, out_group ANY
    b.extend_from_slice(&[0, 0, 0, 0]); // flags, pad
    b.extend_from_slice(match_);
    b.extend_from_slice(instructions);
    b
}

/// One connection that has done the HELLO exchange (OpenFlow 1.3).
fn session(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(&of13(0, 1, &[])).expect("hello");
    let mut hello = [0u8; 8];
    s.read_exact(&mut hello).expect("the switch's HELLO");
    assert_eq!(hello[1], 0, "first message is HELLO: {hello:02x?}");
    let len = u16::from_be_bytes([hello[2], hello[3]]) as usize;
    let mut rest = vec![0u8; len.saturating_sub(8)];
    s.read_exact(&mut rest).expect("HELLO body");
    s
}

/// Reads messages until one with `xid` arrives (or the peer closes / times out).
fn reply_to(s: &mut TcpStream, xid: u32) -> Option<Vec<u8>> {
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h).ok()?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(8)];
        s.read_exact(&mut body).ok()?;
        if u32::from_be_bytes([h[4], h[5], h[6], h[7]]) == xid {
            return Some([&h[..], &body[..]].concat());
        }
    }
}

#[test]
fn malformed_openflow_gets_errors_and_hurts_nobody() {
    let Some(sw) = boot("of-malformed", "log=info") else {
        return;
    };
    let port = sw.vm.mgmt_host_port(6653).expect("forwarded port");
    // A well-behaved session open through all of it.
    let mut bystander = session(port);

    let empty_match = [0, 1, 0, 4, 0, 0, 0, 0];
    let unknown_oxm = [0, 1, 0, 12, 0x80, 0x00, 0xfe, 4, 0, 0, 0, 1, 0, 0, 0, 0];
    let tcp_dst_without_ip = [0, 1, 0, 10, 0x80, 0x00, 14 << 1, 2, 0, 80, 0, 0, 0, 0, 0, 0];
    let apply = |actions: &[u8]| {
        let mut i = vec![0, 4];
        i.extend_from_slice(&((8 + actions.len()) as u16).to_be_bytes());
        i.extend_from_slice(&[0; 4]);
        i.extend_from_slice(actions);
        i
    };
    let unknown_action = apply(&[0x77, 0x77, 0, 8, 0, 0, 0, 0]);
    let output_to_port_0 = apply(&[0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let unknown_instruction = [0, 0x55, 0, 8, 0, 0, 0, 0];
    let mut oversize = flow_mod13(&empty_match, &[]);
    oversize.extend(std::iter::repeat_n(0xa5u8, 65_535 - 8 - oversize.len()));
    // (name, message, expected OFPT_ERROR type: 1 BAD_REQUEST, 2 BAD_ACTION, 3 BAD_INSTRUCTION,
    // 4 BAD_MATCH)
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unknown message type", of13(0xee, 10, &[]), 1),
        ("truncated flow-mod", of13(14, 11, &[1, 2, 3, 4]), 1),
        (
            "truncated multipart (flow stats without its body)",
            of13(18, 12, &[0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0]),
            1,
        ),
        (
            "unknown OXM field",
            of13(14, 13, &flow_mod13(&unknown_oxm, &[])),
            4,
        ),
        (
            "tcp_dst without its prerequisites",
            of13(14, 14, &flow_mod13(&tcp_dst_without_ip, &[])),
            4,
        ),
        (
            "unknown action",
            of13(14, 15, &flow_mod13(&empty_match, &unknown_action)),
            2,
        ),
        (
            "output to port 0",
            of13(14, 16, &flow_mod13(&empty_match, &output_to_port_0)),
            2,
        ),
        (
            "unknown instruction",
            of13(14, 17, &flow_mod13(&empty_match, &unknown_instruction)),
            3,
        ),
        (
            "oversize flow-mod of garbage instructions",
            of13(14, 18, &oversize),
            3,
        ),
    ];
    let mut s = session(port);
    for (name, msg, want_type) in &cases {
        let xid = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        s.write_all(msg).expect("send");
        let reply = reply_to(&mut s, xid).unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(reply[1], 1, "{name}: expected OFPT_ERROR, got {reply:02x?}");
        let err_type = u16::from_be_bytes([reply[8], reply[9]]);
        assert_eq!(
            err_type, *want_type,
            "{name}: error type (reply {reply:02x?})"
        );
        // The offending message's first bytes are echoed (at least its header).
        assert!(
            reply.len() >= 12 + 8 && reply[12..20] == msg[..8],
            "{name}: the error does not echo the request: {reply:02x?}"
        );
    }
    // The session that sent all that is still alive: an echo is answered.
    s.write_all(&of13(2, 99, b"ping")).expect("echo");
    let echo = reply_to(&mut s, 99).expect("echo reply after the malformed messages");
    assert_eq!(echo[1], 3, "ECHO_REPLY");

    // Random bytes: an error or a clean disconnect, nothing else.
    let mut r = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    r.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let junk: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    r.write_all(&junk).expect("send junk");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.is_empty() || got[0] <= 6,
        "random bytes: the answer is not OpenFlow: {got:02x?}"
    );

    // The bystander never noticed, ovs-ofctl works, traffic flows.
    bystander
        .write_all(&of13(2, 7, b"still there?"))
        .expect("echo");
    assert!(
        reply_to(&mut bystander, 7).is_some(),
        "the other session was disturbed"
    );
    sw.ofctl_ok("OpenFlow13", &["show"]);
    assert!(sw.ping(1, 2, 3), "forwarding after malformed input");
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

#[test]
fn openflow10_table_miss_goes_to_the_controller() {
    // Secure mode: no default flow, so every packet misses table 0.
    let Some(sw) = boot("of-of10-miss", "log=info fail_mode=secure") else {
        return;
    };
    let flows = sw.ofctl_ok("OpenFlow13", &["dump-flows"]);
    assert!(
        !flows.contains("actions="),
        "secure mode starts with no flows:\n{flows}"
    );
    // An OpenFlow 1.0 monitor asks for packet-ins (miss_send_len 65535) and listens; it gets its
    // own unixctl socket (the default directory may not exist).
    let unixctl = format!(
        "--unixctl={}",
        std::env::temp_dir()
            .join(format!("ironflow-of10-{}.ctl", std::process::id()))
            .display()
    );
    let monitor = Command::new("timeout")
        .args([
            "12",
            // Line-buffered: `timeout` ends ovs-ofctl by a signal, which would lose a full buffer.
            "stdbuf",
            "-oL",
            "ovs-ofctl",
            &unixctl,
            "-O",
            "OpenFlow10",
            "monitor",
            &sw.target,
            "65535",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ovs-ofctl monitor");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !sw.ping(1, 2, 3),
        "nothing forwards in secure mode without flows"
    );
    let out = monitor.wait_with_output().expect("monitor output");
    // ovs-ofctl prints what it receives on stdout or stderr depending on its version and
    // logging setup: read both.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("OFPT_PACKET_IN") && text.contains("no_match"),
        "the 1.0 monitor saw no table-miss packet-in:\n{text}"
    );
    assert!(
        text.contains("in_port=1"),
        "packet-ins name the input port:\n{text}"
    );
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}
