//! OVSDB through the management port of the booted image, with the real clients: ovs-vsctl and
//! ovsdb-client against `tcp:127.0.0.1:<forwarded 6640>`. Each configuration change is checked
//! where a user would see it: in the data path (pings between the network-namespace hosts), in
//! `ovs-ofctl show`, and in the status columns the switch writes back. Also: malformed input,
//! configuration that survives a reboot, and power cuts (SIGKILL) during acknowledged
//! transactions.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Switch {
    vm: Vm,
    db: String,
    of: String,
}

fn need_root(test: &str) -> bool {
    if ironflow_qemu::is_root() {
        return true;
    }
    if on_ci() {
        panic!("{test}: needs root for network namespaces (CI runs as root)");
    }
    eprintln!("{test}: SKIPPED: needs root for network namespaces");
    false
}

fn tools_or_fail() {
    for t in ["ovs-vsctl", "ovsdb-client", "ovs-ofctl"] {
        let ok = Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{t} is missing: install openvswitch-common (tests/deps.sh does)"
        );
    }
}

/// A fresh temporary config disk path (the runner creates the file).
fn temp_disk(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("ironflow-ovsdb-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(format!("{test}-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p // the runner creates it
}

fn boot_with_disk(test: &str, cmdline: &str, disk: &Path) -> Switch {
    tools_or_fail();
    let vm = pvh(test, cmdline)
        .accel(Accel::Tcg)
        .memory_mb(256)
        .data_ports(3)
        .port_net(PortNet::netns_unique())
        .mgmt_nic(&[(0, 6653), (0, 6640)])
        .config_disk(disk)
        .spawn()
        .expect("spawn QEMU");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
    let db = format!("tcp:127.0.0.1:{}", vm.mgmt_host_port(6640).expect("6640"));
    let of = format!("tcp:127.0.0.1:{}", vm.mgmt_host_port(6653).expect("6653"));
    let sw = Switch { vm, db, of };
    // The management address comes from DHCP: wait until OVSDB answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = sw.vsctl_raw(&["--no-wait", "--timeout=5", "show"]);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ovs-vsctl show never succeeded: {out}\n{}",
            sw.vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    sw
}

fn output(mut cmd: Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run {cmd:?}: {e}")),
    }
}

impl Switch {
    fn vsctl_raw(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--db={}", self.db)).args(args);
        output(cmd)
    }

    /// `ovs-vsctl --timeout=30 ARGS` (waits for cur_cfg unless ARGS say --no-wait), must succeed.
    fn vsctl(&self, args: &[&str]) -> String {
        let mut full = vec!["--timeout=30"];
        full.extend_from_slice(args);
        let (ok, out) = self.vsctl_raw(&full);
        assert!(
            ok,
            "ovs-vsctl {args:?} failed:\n{out}\n{}",
            self.vm.diagnostics()
        );
        out.trim().to_string()
    }

    fn ofctl(&self, version: &str, verb: &str) -> (bool, String) {
        let mut cmd = Command::new("ovs-ofctl");
        cmd.args(["-O", version, "--timeout=10", verb, &self.of]);
        output(cmd)
    }

    fn client(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ovsdb-client");
        let (verb, rest) = args.split_first().expect("verb");
        cmd.arg("--timeout=20").arg(verb).arg(&self.db).args(rest);
        output(cmd)
    }

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

    /// Pings until they succeed (learning, ARP) or `secs` pass.
    fn reaches(&self, from: usize, to: usize, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.ping(from, to, 2) {
                return true;
            }
        }
        false
    }

    /// Waits until `ovs-vsctl get ...` prints `want`.
    fn wait_get(&self, args: &[&str], want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut full = vec!["--no-wait", "get"];
        full.extend_from_slice(args);
        loop {
            let got = self.vsctl(&full);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn ovs_vsctl_configures_the_switch() {
    const T: &str = "ovsdb-vsctl";
    if !need_root(T) {
        return;
    }
    let disk = temp_disk(T);
    let sw = boot_with_disk(T, "log=info", &disk);

    // First boot: the root row and the bootstrap bridge with every data NIC.
    let show = sw.vsctl(&["show"]);
    for p in [
        "Bridge br0",
        "Port eth1",
        "Port eth2",
        "Port eth3",
        "ovs_version",
    ] {
        assert!(show.contains(p), "{p} missing from show:\n{show}");
    }
    assert_eq!(sw.vsctl(&["list-br"]), "br0");
    assert_eq!(sw.vsctl(&["list-ports", "br0"]), "eth1\neth2\neth3");
    assert_eq!(sw.wait_get(&["interface", "eth2", "ofport"], "2", 10), "2");
    assert_eq!(
        sw.wait_get(&["interface", "eth1", "link_state"], "up", 10),
        "up"
    );
    assert!(sw.reaches(1, 2, 20), "h1 -> h2 in the bootstrap bridge");

    // A VLAN tag set by ovs-vsctl isolates real hosts; waiting (no --no-wait) means applied.
    sw.vsctl(&["set", "port", "eth2", "tag=10"]);
    assert!(!sw.ping(1, 2, 3), "eth2 in VLAN 10 is isolated from eth1");
    sw.vsctl(&["set", "port", "eth1", "tag=10"]);
    assert!(sw.reaches(1, 2, 15), "eth1 and eth2 both in VLAN 10");
    assert!(
        !sw.ping(1, 3, 3),
        "eth3 (untagged) is isolated from VLAN 10"
    );
    assert_eq!(sw.vsctl(&["get", "port", "eth1", "tag"]), "10");
    sw.vsctl(&["clear", "port", "eth1", "tag"]);
    sw.vsctl(&["--no-wait", "remove", "port", "eth2", "tag", "10"]);
    sw.vsctl(&["set", "bridge", "br0", "other_config:x=y"]); // waits: both applied
    assert!(sw.reaches(1, 3, 15), "tags cleared: h1 -> h3");

    // Trunks: a trunk port of VLAN 20 only takes no untagged traffic.
    sw.vsctl(&["set", "port", "eth3", "trunks=20"]);
    assert!(
        !sw.ping(1, 3, 3),
        "eth3 trunks=20 carries no untagged frames"
    );
    sw.vsctl(&["clear", "port", "eth3", "trunks"]);
    assert!(sw.reaches(1, 3, 15), "trunks cleared");

    // del-port / add-port with ofport_request, seen by ovs-ofctl.
    sw.vsctl(&["del-port", "br0", "eth3"]);
    let (ok, show) = sw.ofctl("OpenFlow13", "show");
    assert!(
        ok && show.contains("1(eth1)") && !show.contains("(eth3)"),
        "{show}"
    );
    assert!(!sw.ping(1, 3, 3), "eth3 is no longer a port");
    sw.vsctl(&[
        "add-port",
        "br0",
        "eth3",
        "--",
        "set",
        "interface",
        "eth3",
        "ofport_request=7",
    ]);
    let (ok, show) = sw.ofctl("OpenFlow13", "show");
    assert!(ok && show.contains("7(eth3)"), "{show}");
    assert_eq!(sw.vsctl(&["get", "interface", "eth3", "ofport"]), "7");
    assert!(sw.reaches(1, 3, 15), "eth3 is back as port 7");

    // add-port with tag= on the command line.
    sw.vsctl(&["del-port", "eth2"]);
    sw.vsctl(&["add-port", "br0", "eth2", "tag=30"]);
    assert_eq!(sw.vsctl(&["get", "port", "eth2", "tag"]), "30");
    assert!(!sw.ping(1, 2, 3), "eth2 added in VLAN 30");

    // A NIC that does not exist: Interface.error as Open vSwitch words it, ofport -1.
    sw.vsctl(&["add-port", "br0", "eth9"]);
    assert_eq!(sw.vsctl(&["get", "interface", "eth9", "ofport"]), "-1");
    let err = sw.vsctl(&["get", "interface", "eth9", "error"]);
    assert!(err.contains("No such device"), "{err}");
    sw.vsctl(&["del-port", "eth9"]);

    // Fail mode, protocols, controllers.
    sw.vsctl(&["set-fail-mode", "br0", "secure"]);
    assert_eq!(sw.vsctl(&["get-fail-mode", "br0"]), "secure");
    sw.vsctl(&["set", "bridge", "br0", "protocols=OpenFlow13"]);
    let (ok10, out10) = sw.ofctl("OpenFlow10", "show");
    assert!(
        !ok10,
        "OpenFlow10 refused with protocols=OpenFlow13:\n{out10}"
    );
    let (ok13, out13) = sw.ofctl("OpenFlow13", "show");
    assert!(ok13, "{out13}");
    sw.vsctl(&["clear", "bridge", "br0", "protocols"]);
    assert!(sw.ofctl("OpenFlow10", "show").0, "all versions again");
    sw.vsctl(&["del-fail-mode", "br0"]);

    sw.vsctl(&["set-controller", "br0", "tcp:10.0.2.2:1"]);
    assert_eq!(sw.vsctl(&["get-controller", "br0"]), "tcp:10.0.2.2:1");
    assert_eq!(
        sw.wait_get(&["controller", "br0", "is_connected"], "false", 10),
        "false"
    );
    let list = sw.vsctl(&["list", "controller"]);
    assert!(list.contains("tcp:10.0.2.2:1"), "{list}");
    sw.vsctl(&["del-controller", "br0"]);

    // `-- --id=@x create` chains and find.
    sw.vsctl(&[
        "--",
        "--id=@c",
        "create",
        "controller",
        "target=\"tcp:10.0.2.2:2\"",
        "--",
        "set",
        "bridge",
        "br0",
        "controller=@c",
    ]);
    assert_eq!(sw.vsctl(&["get-controller", "br0"]), "tcp:10.0.2.2:2");
    sw.vsctl(&["--no-wait", "clear", "bridge", "br0", "controller"]);
    let found = sw.vsctl(&["--bare", "--columns=name", "find", "interface", "ofport=7"]);
    assert_eq!(found, "eth3");

    // del-br stops forwarding; add-br + add-port bring it back.
    sw.vsctl(&["del-br", "br0"]);
    assert_eq!(sw.vsctl(&["list-br"]), "");
    assert!(!sw.ping(1, 3, 3), "no bridge: nothing forwards");
    sw.vsctl(&[
        "add-br", "br0", "--", "add-port", "br0", "eth1", "--", "add-port", "br0", "eth3",
    ]);
    assert!(sw.reaches(1, 3, 20), "new bridge forwards");
    let (ok, show) = sw.ofctl("OpenFlow13", "show");
    assert!(
        ok && show.contains("(eth1)") && show.contains("(eth3)"),
        "{show}"
    );
    let _ = std::fs::remove_file(disk);
}

#[test]
fn ovsdb_client_sees_the_switch_and_bad_input_changes_nothing() {
    const T: &str = "ovsdb-client";
    if !need_root(T) {
        return;
    }
    let disk = temp_disk(T);
    let sw = boot_with_disk(T, "log=info stats=0", &disk);

    let (ok, dbs) = sw.client(&["list-dbs"]);
    assert!(
        ok && dbs.lines().any(|l| l.trim() == "Open_vSwitch"),
        "{dbs}"
    );
    let (ok, schema) = sw.client(&["get-schema", "Open_vSwitch"]);
    assert!(ok && schema.contains("\"Interface\""), "{schema}");
    let (ok, dump) = sw.client(&["dump", "Open_vSwitch", "Bridge"]);
    assert!(ok && dump.contains("br0"), "{dump}");

    // A monitor sees the switch write status columns (ofport of a new port).
    let mut mon = Command::new("ovsdb-client")
        .args([
            "monitor",
            &sw.db,
            "Open_vSwitch",
            "Interface",
            "name,ofport",
            "--format=csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ovsdb-client monitor");
    std::thread::sleep(Duration::from_secs(2));
    sw.vsctl(&["del-port", "eth3"]);
    sw.vsctl(&[
        "add-port",
        "br0",
        "eth3",
        "--",
        "set",
        "interface",
        "eth3",
        "ofport_request=9",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let _ = mon.kill();
    let mut text = String::new();
    mon.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .ok();
    let _ = mon.wait();
    assert!(text.contains("eth3"), "monitor saw the insert:\n{text}");
    assert!(
        text.contains(",9"),
        "monitor saw ofport 9 written by the switch:\n{text}"
    );

    let before = sw.client(&["dump", "Open_vSwitch"]).1;

    // Schema violations, constraint violations, references to missing rows.
    let bad = [
        r#"["Open_vSwitch",{"op":"insert","table":"Nope","row":{}}]"#,
        r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":5}}]"#,
        r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"fail_mode":"sometimes","name":"x"}}]"#,
        r#"["Open_vSwitch",{"op":"insert","table":"Port","row":{"name":"p","interfaces":["uuid","6e1a7c5e-0000-4000-8000-000000000000"]}}]"#,
        r#"["Open_vSwitch",{"op":"update","table":"Port","where":[],"row":{"tag":5000}}]"#,
        r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":"br0"},"uuid-name":"b"},{"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["bridges","insert",["named-uuid","b"]]]}]"#,
    ];
    for t in bad {
        let (ok, out) = sw.client(&["transact", t]);
        assert!(
            !ok || out.contains("\"error\""),
            "{t} must fail with an RFC 7047 error:\n{out}"
        );
    }
    // Malformed JSON and unknown methods on a raw connection: an error reply, others survive.
    let addr = sw.db.trim_start_matches("tcp:").to_string();
    let mut raw = TcpStream::connect(&addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10))).ok();
    raw.write_all(br#"{"method":"frobnicate","params":[],"id":1}"#)
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = raw.read(&mut buf).unwrap_or(0);
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        reply.contains("\"error\"") && reply.contains("\"id\":1"),
        "{reply}"
    );
    raw.write_all(br#"{"method":"echo","params":["x"],"id":2}"#)
        .expect("write");
    let n = raw.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("\"x\""),
        "session survives"
    );
    raw.write_all(b"{\"method\": [}}}} not json")
        .expect("write");
    let _ = raw.read(&mut buf);

    let after = sw.client(&["dump", "Open_vSwitch"]).1;
    let strip = |s: &str| -> String {
        // statistics change by themselves; compare the configuration tables only.
        s.lines()
            .filter(|l| !l.contains("statistics") && !l.contains("rx_") && !l.contains("tx_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (b, a) = (strip(&before), strip(&after));
    assert!(
        a.contains("br0") && !a.contains("\"bad\"") && a.lines().count() == b.lines().count(),
        "bad transactions changed nothing"
    );
    assert!(sw.reaches(1, 2, 15), "forwarding carries on");
    let _ = std::fs::remove_file(disk);
}

#[test]
fn configuration_survives_reboot_and_power_cuts() {
    const T: &str = "ovsdb-persist";
    if !need_root(T) {
        return;
    }
    let disk = temp_disk(T);
    {
        let mut sw = boot_with_disk(T, "log=info stats=0", &disk);
        sw.vsctl(&["set", "port", "eth2", "tag=10"]);
        sw.vsctl(&["del-port", "eth3"]);
        sw.vsctl(&["set-fail-mode", "br0", "standalone"]);
        sw.vm.kill();
    }
    {
        let mut sw = boot_with_disk(T, "log=info stats=0", &disk);
        assert_eq!(sw.vsctl(&["get", "port", "eth2", "tag"]), "10");
        assert_eq!(sw.vsctl(&["list-ports", "br0"]), "eth1\neth2");
        assert!(
            !sw.ping(1, 2, 3),
            "the VLAN tag took effect after the reboot"
        );
        sw.vm.kill();
    }
    // Power cuts: SIGKILL at random points during a stream of acknowledged transactions.
    let rounds: usize = std::env::var("IRONFLOW_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut acked: Vec<String> = Vec::new();
    let mut seed = std::process::id() as u64;
    for round in 0..rounds {
        let mut sw = boot_with_disk(T, "log=info stats=0", &disk);
        // Everything acknowledged before is there.
        let (ok, dump) = sw.client(&["dump", "Open_vSwitch", "QoS", "external_ids"]);
        assert!(ok, "{dump}");
        for t in &acked {
            assert!(
                dump.contains(t),
                "round {round}: acknowledged {t} lost:\n{dump}"
            );
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cut_after = Duration::from_millis(200 + (seed >> 33) % 1500);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < cut_after {
            // QoS is a root table: its rows stay without references.
            let target = format!("cut{round}x{n}z");
            let op = format!(
                r#"["Open_vSwitch",{{"op":"insert","table":"QoS","row":{{"type":"linux-htb","external_ids":["map",[["t","{target}"]]]}}}}]"#
            );
            let (ok, out) = sw.client(&["transact", &op]);
            if ok && out.contains("uuid") {
                acked.push(target);
            }
            n += 1;
        }
        sw.vm.kill();
    }
    let sw = boot_with_disk(T, "log=info stats=0", &disk);
    let (ok, dump) = sw.client(&["dump", "Open_vSwitch", "QoS", "external_ids"]);
    assert!(ok, "{dump}");
    for t in &acked {
        assert!(
            dump.contains(t),
            "after the last cut: acknowledged {t} lost"
        );
    }
    eprintln!(
        "{T}: {rounds} power cuts, {} acknowledged transactions all kept",
        acked.len()
    );
    let _ = std::fs::remove_file(disk);
}

#[test]
fn a_foreign_disk_is_left_alone_until_the_operator_says_so() {
    const T: &str = "ovsdb-foreign";
    if !need_root(T) {
        return;
    }
    let disk = temp_disk(T);
    // Not an ironflow configuration: pseudo-random bytes (as a disk with other data has).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..(4 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&disk, &bytes).expect("write the foreign disk");
    {
        let mut sw = boot_with_disk(T, "log=info stats=0", &disk);
        let lines = sw.vm.serial_lines().join("\n");
        assert!(
            lines.contains("not an ironflow configuration") && lines.contains("config.format=1"),
            "a clear console error:\n{lines}"
        );
        // The switch runs with the first-boot configuration in memory.
        assert_eq!(sw.vsctl(&["list-br"]), "br0");
        sw.vsctl(&["set", "port", "eth1", "tag=3"]);
        sw.vm.kill();
    }
    assert!(
        std::fs::read(&disk).expect("read") == bytes,
        "the foreign disk is untouched"
    );
    {
        let mut sw = boot_with_disk(T, "log=info stats=0 config.format=1", &disk);
        let lines = sw.vm.serial_lines().join("\n");
        assert!(lines.contains("formatting it"), "{lines}");
        sw.vsctl(&["set", "port", "eth1", "tag=4"]);
        sw.vm.kill();
    }
    let sw = boot_with_disk(T, "log=info stats=0", &disk);
    assert_eq!(
        sw.vsctl(&["get", "port", "eth1", "tag"]),
        "4",
        "formatted disk keeps config"
    );
    let _ = std::fs::remove_file(disk);
}
