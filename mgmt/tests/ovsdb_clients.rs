//! The OVSDB server and the configuration service on the host, driven by the real clients
//! (ovs-vsctl, ovsdb-client from Debian's openvswitch-common) over TCP on 127.0.0.1. A thread
//! plays the switch: it serves the connections and applies each configuration (ofport numbers,
//! cur_cfg) as the appliance's main loop does, with three NICs eth1..eth3.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mgmt::cmdline::BootSettings;
use mgmt::config::ovsdb::InterfaceRuntime;
use mgmt::config::plan::{NicInfo, Plan};
use mgmt::config::service::ConfigService;
use mgmt::netif::{ConnKind, StreamHandler};
use mgmt::ovsdb::{Database, NoJournal, OvsdbServer, Schema, VSWITCH_SCHEMA};

struct Harness {
    addr: String,
    stop: Arc<AtomicBool>,
    plans: Arc<Mutex<Vec<Plan>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn nics() -> Vec<NicInfo> {
    (1..=3)
        .map(|i| NicInfo {
            name: format!("eth{i}"),
            mac: [0x52, 0x54, 0, 0, 0, i as u8],
        })
        .collect()
}

fn tools() -> bool {
    let ok = ["ovs-vsctl", "ovsdb-client"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "ovs-vsctl/ovsdb-client missing on CI (tests/deps.sh installs openvswitch-common)"
        );
        eprintln!("SKIPPED: ovs-vsctl/ovsdb-client not installed");
    }
    ok
}

fn start() -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = format!("tcp:{}", listener.local_addr().expect("addr"));
    let stop = Arc::new(AtomicBool::new(false));
    let plans = Arc::new(Mutex::new(Vec::new()));
    let (stop2, plans2) = (stop.clone(), plans.clone());
    let thread = std::thread::spawn(move || {
        let schema = Schema::from_json(VSWITCH_SCHEMA).expect("schema");
        let mut svc = ConfigService::new(
            OvsdbServer::new(Database::new(schema, 42)),
            Box::new(NoJournal),
        );
        let t0 = Instant::now();
        let now = || t0.elapsed().as_millis() as u64;
        svc.bootstrap(&BootSettings::default(), &nics(), now())
            .expect("bootstrap");
        let mut conns: Vec<(TcpStream, u32)> = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !stop2.load(Ordering::Relaxed) {
            while let Ok((s, _)) = listener.accept() {
                s.set_nonblocking(true).expect("nonblocking");
                let id = svc
                    .streams()
                    .open(ConnKind::Passive { local_port: 6640 }, now())
                    .expect("open");
                conns.push((s, id));
            }
            let mut gone = Vec::new();
            for (i, (s, id)) in conns.iter_mut().enumerate() {
                let mut h = svc.streams();
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            gone.push(i);
                            break;
                        }
                        Ok(n) => h.receive(*id, &buf[..n], now()),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            gone.push(i);
                            break;
                        }
                    }
                }
                let p = h.pending(*id).to_vec();
                if !p.is_empty() {
                    let _ = s.set_nonblocking(false);
                    let ok = s.write_all(&p).is_ok();
                    let _ = s.set_nonblocking(true);
                    h.consume(*id, p.len());
                    if !ok {
                        gone.push(i);
                    }
                }
                if h.wants_close(*id) && h.pending(*id).is_empty() && !gone.contains(&i) {
                    gone.push(i);
                }
            }
            for i in gone.into_iter().rev() {
                let (_, id) = conns.remove(i);
                svc.streams().closed(id, now());
            }
            svc.poll(now());
            if let Some(p) = svc.poll_config(&nics()) {
                plans2.lock().expect("lock").push(p);
            }
            let runtime = |st: &mgmt::config::plan::InterfaceStatus| {
                st.nic.map(|n| InterfaceRuntime {
                    link_up: true,
                    admin_up: true,
                    mac: nics()[n].mac,
                    statistics: vec![("rx_packets", 1), ("tx_packets", 2)],
                })
            };
            let _ = svc.write_status(
                &runtime,
                true,
                Some(0x5254_0000_0001),
                &[],
                !conns.is_empty(),
                true,
                now(),
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Harness {
        addr,
        stop,
        plans,
        thread: Some(thread),
    }
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
            .trim()
            .to_string(),
        ),
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

impl Harness {
    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.addr);
        let mut full = vec![db.as_str(), "--timeout=10"];
        full.extend_from_slice(args);
        let (ok, out) = run("ovs-vsctl", &full);
        assert!(ok, "ovs-vsctl {args:?}: {out}");
        out
    }

    fn vsctl_err(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.addr);
        let mut full = vec![db.as_str(), "--timeout=10"];
        full.extend_from_slice(args);
        let (ok, out) = run("ovs-vsctl", &full);
        assert!(!ok, "ovs-vsctl {args:?} should fail: {out}");
        out
    }

    fn client(&self, args: &[&str]) -> (bool, String) {
        let (verb, rest) = args.split_first().expect("verb");
        let mut full = vec!["--timeout=10", verb, self.addr.as_str()];
        full.extend_from_slice(rest);
        run("ovsdb-client", &full)
    }

    fn last_plan(&self) -> Plan {
        self.plans
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn ovs_vsctl_commands() {
    if !tools() {
        return;
    }
    let h = start();
    let show = h.vsctl(&["show"]);
    assert!(
        show.contains("Bridge br0") && show.contains("Port eth3"),
        "{show}"
    );
    assert!(show.contains("ovs_version: \"ironflow"), "{show}");
    assert_eq!(h.vsctl(&["list-br"]), "br0");
    assert_eq!(h.vsctl(&["list-ports", "br0"]), "eth1\neth2\neth3");
    assert_eq!(h.vsctl(&["get", "interface", "eth2", "ofport"]), "2");
    // Waiting commands (cur_cfg) and --no-wait.
    h.vsctl(&["set", "port", "eth2", "tag=10"]);
    let p = h.last_plan();
    let eth2 = p.ports.iter().find(|p| p.name == "eth2").expect("eth2");
    assert_eq!(eth2.vlan, switch_core::port::VlanMode::Access(10));
    h.vsctl(&["--no-wait", "set", "port", "eth3", "trunks=20,30"]);
    assert_eq!(h.vsctl(&["get", "port", "eth3", "trunks"]), "[20, 30]");
    h.vsctl(&["clear", "port", "eth3", "trunks"]);
    assert_eq!(h.vsctl(&["get", "port", "eth3", "trunks"]), "[]");
    h.vsctl(&["del-port", "br0", "eth3"]);
    assert_eq!(h.vsctl(&["list-ports", "br0"]), "eth1\neth2");
    h.vsctl(&[
        "add-port",
        "br0",
        "eth3",
        "tag=5",
        "--",
        "set",
        "interface",
        "eth3",
        "ofport_request=9",
    ]);
    assert_eq!(h.vsctl(&["get", "interface", "eth3", "ofport"]), "9");
    assert_eq!(h.vsctl(&["get", "port", "eth3", "tag"]), "5");
    h.vsctl(&["add-port", "br0", "eth7"]);
    assert_eq!(h.vsctl(&["get", "interface", "eth7", "ofport"]), "-1");
    let e = h.vsctl(&["get", "interface", "eth7", "error"]);
    assert!(e.contains("No such device"), "{e}");
    h.vsctl(&["del-port", "eth7"]);
    // Fail mode, protocols, controllers, create chains, find.
    h.vsctl(&["set-fail-mode", "br0", "secure"]);
    assert_eq!(h.vsctl(&["get-fail-mode", "br0"]), "secure");
    h.vsctl(&["set", "bridge", "br0", "protocols=OpenFlow10,OpenFlow13"]);
    assert_eq!(
        h.last_plan().bridge.expect("bridge").versions,
        (1 << 1) | (1 << 4)
    );
    h.vsctl(&["set-controller", "br0", "tcp:10.0.0.9:6653", "ptcp:6653"]);
    assert_eq!(
        h.vsctl(&["get-controller", "br0"]),
        "ptcp:6653\ntcp:10.0.0.9:6653"
    );
    h.vsctl(&[
        "--",
        "--id=@c",
        "create",
        "controller",
        "target=\"tcp:10.0.0.8:6653\"",
        "--",
        "set",
        "bridge",
        "br0",
        "controller=@c",
    ]);
    assert_eq!(h.vsctl(&["get-controller", "br0"]), "tcp:10.0.0.8:6653");
    assert_eq!(
        h.last_plan().bridge.expect("bridge").active_controllers(),
        vec!["tcp:10.0.0.8:6653".to_string()]
    );
    h.vsctl(&["del-controller", "br0"]);
    // The replaced Controller rows are garbage-collected.
    let (ok, dump) = h.client(&["dump", "Open_vSwitch", "Controller"]);
    assert!(ok && !dump.contains("10.0.0.8"), "{dump}");
    assert_eq!(
        h.vsctl(&["--bare", "--columns=name", "find", "interface", "ofport=9"]),
        "eth3"
    );
    let list = h.vsctl(&["list", "bridge", "br0"]);
    assert!(
        list.contains("datapath_id") && list.contains("fail_mode           : secure"),
        "{list}"
    );
    h.vsctl(&[
        "set",
        "bridge",
        "br0",
        "other_config:datapath-id=0000000000000042",
    ]);
    assert_eq!(
        h.last_plan().bridge.expect("bridge").datapath_id,
        Some(0x42)
    );
    // Errors: a second bridge with the same port, a bad column, a bad value.
    let e = h.vsctl_err(&["add-port", "br0", "eth1"]);
    assert!(e.contains("already exists"), "{e}");
    let e = h.vsctl_err(&["set", "port", "eth1", "tag=5000"]);
    assert!(e.contains("5000") || e.contains("constraint"), "{e}");
    h.vsctl(&["del-br", "br0"]);
    assert_eq!(h.vsctl(&["list-br"]), "");
    let (ok, dump) = h.client(&["dump", "Open_vSwitch", "Interface", "name"]);
    assert!(
        ok && !dump.contains("eth1"),
        "interfaces collected with their bridge: {dump}"
    );
    h.vsctl(&["add-br", "br1", "--", "add-port", "br1", "eth1"]);
    let p = h.last_plan();
    assert_eq!(p.bridge.map(|b| b.name), Some("br1".into()));
    assert_eq!(p.ports.len(), 1);
}

#[test]
fn ovsdb_client_and_monitors() {
    if !tools() {
        return;
    }
    let h = start();
    let (ok, dbs) = h.client(&["list-dbs"]);
    assert!(ok && dbs == "Open_vSwitch", "{dbs}");
    let (ok, schema) = h.client(&["get-schema", "Open_vSwitch"]);
    assert!(ok && schema.contains("\"Bridge\""), "{schema}");
    let (ok, v) = h.client(&["get-schema-version", "Open_vSwitch"]);
    assert!(ok && v == mgmt::ovsdb::vswitch_schema_version(), "{v}");
    let (ok, dump) = h.client(&["dump", "Open_vSwitch"]);
    assert!(ok && dump.contains("br0"), "{dump}");
    let mut mon = Command::new("ovsdb-client")
        .args([
            "monitor",
            &h.addr,
            "Open_vSwitch",
            "Interface",
            "name,ofport,link_state",
            "--format=csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("monitor");
    std::thread::sleep(Duration::from_millis(800));
    let (ok, out) = h.client(&[
        "transact",
        r#"["Open_vSwitch",{"op":"insert","table":"Interface","row":{"name":"eth9"},"uuid-name":"i"},{"op":"insert","table":"Port","row":{"name":"eth9","interfaces":["named-uuid","i"]},"uuid-name":"p"},{"op":"mutate","table":"Bridge","where":[["name","==","br0"]],"mutations":[["ports","insert",["set",[["named-uuid","p"]]]]]}]"#,
    ]);
    assert!(ok && !out.contains("error"), "{out}");
    std::thread::sleep(Duration::from_millis(800));
    let _ = mon.kill();
    let mut text = String::new();
    mon.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .ok();
    let _ = mon.wait();
    assert!(text.contains("eth9"), "monitor saw the insert: {text}");
    assert!(
        text.contains("-1"),
        "monitor saw the switch write ofport -1 (no such NIC): {text}"
    );
    assert!(
        text.contains("eth1") && text.contains("up"),
        "initial rows with link_state: {text}"
    );
}

#[test]
fn bad_input_gets_errors_and_changes_nothing() {
    if !tools() {
        return;
    }
    let h = start();
    let before = h.client(&["dump", "Open_vSwitch"]).1;
    let bad = [
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Nope","row":{}}]"#,
            "unknown table",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":5}}]"#,
            "syntax error",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":"x","fail_mode":"sometimes"}}]"#,
            "constraint violation",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Port","row":{"name":"p","interfaces":["uuid","6e1a7c5e-0000-4000-8000-000000000000"]}},{"op":"mutate","table":"Bridge","where":[],"mutations":[["ports","insert",["named-uuid","x"]]]}]"#,
            "error",
        ),
        (
            r#"["Open_vSwitch",{"op":"update","table":"Port","where":[],"row":{"tag":5000}}]"#,
            "constraint violation",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":"br0"},"uuid-name":"b"},{"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["bridges","insert",["named-uuid","b"]]]}]"#,
            "identical values for the index",
        ),
        (
            r#"["Open_vSwitch",{"op":"delete","table":"Interface","where":[["name","==","eth1"]]}]"#,
            "referential integrity violation",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"Open_vSwitch","row":{}}]"#,
            "constraint violation",
        ),
        (
            r#"["Open_vSwitch",{"op":"insert","table":"QoS","row":{"type":"x"}},{"op":"abort"}]"#,
            "aborted",
        ),
        (
            r#"["Open_vSwitch",{"op":"frob","table":"QoS"}]"#,
            "syntax error",
        ),
        (
            r#"["Open_vSwitch",{"op":"wait","table":"Bridge","where":[],"columns":["name"],"until":"==","rows":[],"timeout":0}]"#,
            "timed out",
        ),
        (
            r#"["Open_vSwitch",{"op":"assert","lock":"nobody"}]"#,
            "not owner",
        ),
    ];
    for (t, want) in bad {
        let (_, out) = h.client(&["transact", t]);
        assert!(out.contains(want), "{t}: wanted {want}: {out}");
    }
    // Raw JSON-RPC: unknown method and malformed JSON; another session survives.
    let addr = h.addr.trim_start_matches("tcp:").to_string();
    let mut a = TcpStream::connect(&addr).expect("connect");
    a.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut b = TcpStream::connect(&addr).expect("connect");
    b.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = vec![0u8; 4096];
    a.write_all(br#"{"method":"frob","params":[],"id":7}"#)
        .expect("write");
    let n = a.read(&mut buf).unwrap_or(0);
    let r = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        r.contains("unknown method") && r.contains("\"id\":7"),
        "{r}"
    );
    // Split across writes, byte by byte.
    for byte in br#"{"method":"echo","params":[1,"}"],"id":8}"# {
        a.write_all(&[*byte]).expect("write");
    }
    let n = a.read(&mut buf).unwrap_or(0);
    let r = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(r.contains(r#""result":[1,"}"]"#), "{r}");
    a.write_all(b"{\"method\":]]").expect("write");
    let n = a.read(&mut buf).unwrap_or(0);
    let r = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(r.contains("syntax error"), "{r}");
    b.write_all(br#"{"method":"list_dbs","params":[],"id":1}"#)
        .expect("write");
    let n = b.read(&mut buf).unwrap_or(0);
    assert!(String::from_utf8_lossy(&buf[..n]).contains("Open_vSwitch"));
    let after = h.client(&["dump", "Open_vSwitch"]).1;
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("statistics") && !l.contains("_version"))
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&before).len(),
        strip(&after).len(),
        "nothing changed:\n{before}\n---\n{after}"
    );
}

#[test]
fn locks_and_blocking_waits() {
    if !tools() {
        return;
    }
    let h = start();
    let addr = h.addr.trim_start_matches("tcp:").to_string();
    let conn = || {
        let s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s
    };
    let read = |s: &mut TcpStream| {
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let (mut a, mut b) = (conn(), conn());
    a.write_all(br#"{"method":"lock","params":["L"],"id":1}"#)
        .unwrap();
    assert!(read(&mut a).contains(r#""locked":true"#));
    b.write_all(br#"{"method":"lock","params":["L"],"id":1}"#)
        .unwrap();
    assert!(read(&mut b).contains(r#""locked":false"#));
    b.write_all(br#"{"method":"steal","params":["L"],"id":2}"#)
        .unwrap();
    assert!(read(&mut b).contains(r#""locked":true"#));
    assert!(read(&mut a).contains("stolen"));
    b.write_all(
        br#"{"method":"transact","params":["Open_vSwitch",{"op":"assert","lock":"L"}],"id":3}"#,
    )
    .unwrap();
    assert!(!read(&mut b).contains("not owner"));
    b.write_all(br#"{"method":"unlock","params":["L"],"id":4}"#)
        .unwrap();
    let _ = read(&mut b);
    assert!(read(&mut a).contains("locked"), "a gets the lock back");
    // A blocking wait completes when another session makes it true.
    a.write_all(br#"{"method":"transact","params":["Open_vSwitch",{"op":"wait","table":"QoS","where":[["type","==","w"]],"columns":["type"],"until":"!=","rows":[],"timeout":5000}],"id":9}"#).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    b.write_all(br#"{"method":"transact","params":["Open_vSwitch",{"op":"insert","table":"QoS","row":{"type":"w"}}],"id":5}"#).unwrap();
    let _ = read(&mut b);
    let r = read(&mut a);
    assert!(r.contains(r#""id":9"#) && !r.contains("timed out"), "{r}");
    // And one that never does times out.
    a.write_all(br#"{"method":"transact","params":["Open_vSwitch",{"op":"wait","table":"QoS","where":[],"columns":["type"],"until":"==","rows":[],"timeout":300}],"id":10}"#).unwrap();
    let r = read(&mut a);
    assert!(r.contains("timed out"), "{r}");
    // cancel
    a.write_all(br#"{"method":"transact","params":["Open_vSwitch",{"op":"wait","table":"QoS","where":[],"columns":["type"],"until":"==","rows":[],"timeout":60000}],"id":11}"#).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    a.write_all(br#"{"method":"cancel","params":[11],"id":null}"#)
        .unwrap();
    let r = read(&mut a);
    assert!(r.contains("canceled"), "{r}");
}
