//! The agent against the real `ovs-ofctl`: a bridge (pipeline, ports, NORMAL) behind the agent,
//! served on a Unix socket, driven by a sequence of `ovs-ofctl` commands whose effects are
//! checked in the pipeline and in what `ovs-ofctl` prints. Skipped without `ovs-ofctl`.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mgmt::agent::{AgentConfig, BridgeCtx, OfAgent};
use mgmt::netif::ConnKind;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{OutputSink, PacketIn as CorePacketIn, Pipeline};
use switch_core::port::{Port, PortConfig, PortTable};
use switch_core::table::OFPTT_ALL;

fn have_ofctl() -> bool {
    Command::new("ovs-ofctl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! need_ofctl {
    () => {
        if !have_ofctl() {
            eprintln!("ovs-ofctl not installed; skipping");
            return;
        }
    };
}

#[derive(Default)]
struct Rec {
    outputs: Vec<(u32, Vec<u8>)>,
}

impl OutputSink for Rec {
    fn output(&mut self, port: u32, _: Option<u32>, frame: &[u8]) {
        self.outputs.push((port, frame.to_vec()));
    }
    fn controller(&mut self, _: &CorePacketIn<'_>) {}
}

struct Bridge {
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    sink: Rec,
    agent: OfAgent,
    start: Instant,
}

static SOCK_N: AtomicU32 = AtomicU32::new(0);

impl Bridge {
    fn new() -> Bridge {
        let mut ports = PortTable::new();
        for n in 1..=3u8 {
            ports
                .add(Port::new(
                    n as u32,
                    &format!("eth{n}"),
                    [0x02, 0, 0, 0, 0x10, n],
                ))
                .unwrap();
        }
        Bridge {
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            sink: Rec::default(),
            agent: OfAgent::new(AgentConfig::default(), 0),
            start: Instant::now(),
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut OfAgent, &mut BridgeCtx<'_>) -> R) -> R {
        let now = self.start.elapsed().as_millis() as u64;
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut self.sink,
            now_ms: now,
            cores: None,
        };
        f(&mut self.agent, &mut ctx)
    }

    /// Runs `ovs-ofctl args... unix:SOCK tail...`; returns (success, stdout+stderr).
    fn ofctl(&mut self, args: &[&str], tail: &[&str]) -> (bool, String) {
        self.ofctl_with(args, tail, &mut |_| {})
    }

    /// `ofctl` with `hook` run on the bridge every serving round (to make things happen while
    /// `ovs-ofctl` watches).
    fn ofctl_with(
        &mut self,
        args: &[&str],
        tail: &[&str],
        hook: &mut dyn FnMut(&mut Bridge),
    ) -> (bool, String) {
        let dir = std::env::temp_dir().join(format!(
            "ironflow-agent-ofctl-{}-{}",
            std::process::id(),
            SOCK_N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("br.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut child = Command::new("ovs-ofctl")
            .args(args)
            .arg(format!("unix:{}", path.display()))
            .args(tail)
            .args((!tail.iter().any(|a| a.starts_with("--timeout"))).then_some("--timeout=10"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let began = Instant::now();
        let mut conns: Vec<(UnixStream, u32)> = Vec::new();
        loop {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "ovs-ofctl {args:?} hangs"
            );
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).unwrap();
                    let id = self
                        .with(|a, ctx| a.open(ctx, ConnKind::Passive { local_port: 6653 }))
                        .unwrap();
                    conns.push((s, id));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            hook(self);
            self.with(|a, ctx| a.poll(ctx));
            let mut busy = false;
            let mut i = 0;
            while i < conns.len() {
                let (stream, id) = &mut conns[i];
                let id = *id;
                let out = self.agent.pending(id).to_vec();
                let mut gone = false;
                if !out.is_empty() {
                    busy = true;
                    stream.set_nonblocking(false).unwrap();
                    gone |= stream.write_all(&out).is_err();
                    stream.set_nonblocking(true).unwrap();
                    self.agent.consume(id, out.len());
                }
                let mut buf = [0u8; 65536];
                match stream.read(&mut buf) {
                    Ok(0) => gone = true,
                    Ok(n) => {
                        busy = true;
                        self.with(|a, ctx| a.receive(ctx, id, &buf[..n]));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => gone = true,
                }
                if gone || (self.agent.wants_close(id) && self.agent.pending(id).is_empty()) {
                    self.with(|a, ctx| a.close(id, ctx.now_ms));
                    conns.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            if conns.is_empty() && child.try_wait().unwrap().is_some() {
                break;
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let out = child.wait_with_output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&mut self, args: &[&str], tail: &[&str]) -> String {
        let (ok, text) = self.ofctl(args, tail);
        assert!(ok, "ovs-ofctl {args:?} {tail:?} failed:\n{text}");
        text
    }

    fn flow_count(&self) -> usize {
        self.pipeline.entries(OFPTT_ALL).count()
    }
}

const OF13: &[&str] = &["-O", "OpenFlow13"];

fn of13(cmd: &str) -> Vec<&str> {
    let mut v = OF13.to_vec();
    v.push(cmd);
    v
}

#[test]
fn ovs_ofctl_manages_the_bridge() {
    need_ofctl!();
    let mut br = Bridge::new();
    // Standalone without controllers: the NORMAL flow, visible as in OVS.
    br.with(|a, ctx| a.poll(ctx));
    let out = br.ok(&["dump-flows"], &[]);
    assert!(out.contains("priority=0 actions=NORMAL"), "{out}");

    let out = br.ok(&["show"], &[]);
    assert!(out.contains("dpid:0000020000001001"), "{out}");
    assert!(out.contains("n_tables:254"), "{out}");
    assert!(out.contains("2(eth2): addr:02:00:00:00:10:02"), "{out}");

    let out = br.ok(&["dump-desc"], &[]);
    assert!(out.contains("Manufacturer: ironflow project"), "{out}");
    assert!(out.contains("Hardware: ironflow appliance"), "{out}");

    // OpenFlow 1.0 add, dump, delete.
    br.ok(&["del-flows"], &[]);
    assert_eq!(br.flow_count(), 0);
    br.ok(&["add-flow"], &["in_port=1,actions=output:2"]);
    br.ok(
        &["add-flow"],
        &["priority=200,dl_type=0x0800,nw_src=10.0.0.0/8,actions=drop"],
    );
    assert_eq!(br.flow_count(), 2);
    let out = br.ok(&["dump-flows"], &[]);
    assert!(out.contains("in_port=1 actions=output:2"), "{out}");
    assert!(
        out.contains("priority=200,ip,nw_src=10.0.0.0/8 actions=drop"),
        "{out}"
    );

    // OpenFlow 1.3: tables, cookies, goto.
    br.ok(
        &of13("add-flow"),
        &["table=0,priority=300,cookie=0x42,in_port=3,actions=goto_table:1"],
    );
    br.ok(&of13("add-flow"), &["table=1,actions=output:1"]);
    let out = br.ok(&of13("dump-flows"), &[]);
    assert!(out.contains("cookie=0x42"), "{out}");
    assert!(out.contains("table=1"), "{out}");
    let out = br.ok(&of13("dump-aggregate"), &[]);
    assert!(out.contains("flow_count=4"), "{out}");
    br.ok(&of13("del-flows"), &["cookie=0x42/-1"]);
    assert_eq!(br.flow_count(), 3);

    // A refused flow: ovs-ofctl reports the OpenFlow error.
    let (ok, out) = br.ofctl(&of13("add-flow"), &["actions=group:99"]);
    assert!(!ok);
    assert!(out.contains("OFPBAC_BAD_OUT_GROUP"), "{out}");

    // Groups.
    br.ok(
        &of13("add-group"),
        &["group_id=7,type=all,bucket=output:1,bucket=output:2"],
    );
    let out = br.ok(&of13("dump-groups"), &[]);
    assert!(
        out.contains("group_id=7,type=all,bucket=actions=output:1,bucket=actions=output:2"),
        "{out}"
    );
    br.ok(&of13("add-flow"), &["in_port=2,actions=group:7"]);
    let out = br.ok(&of13("dump-group-stats"), &[]);
    assert!(
        out.contains("group_id=7,") && out.contains("ref_count=1"),
        "{out}"
    );

    // Meters.
    br.ok(
        &of13("add-meter"),
        &["meter=1,pktps,band=type=drop,rate=100"],
    );
    let out = br.ok(&of13("dump-meters"), &[]);
    assert!(out.contains("meter=1 pktps bands="), "{out}");
    assert!(out.contains("type=drop rate=100"), "{out}");
    let out = br.ok(&of13("meter-features"), &[]);
    assert!(out.contains("drop"), "{out}");
    br.ok(&of13("add-flow"), &["in_port=3,actions=meter:1,output:1"]);
    let out = br.ok(&of13("meter-stats"), &[]);
    assert!(out.contains("meter:1 flow_count:1"), "{out}");

    // Ports.
    let out = br.ok(&of13("dump-ports"), &[]);
    assert!(out.contains("port  2:"), "{out}");
    let out = br.ok(&of13("dump-tables"), &[]);
    assert!(out.contains("table 0"), "{out}");
    br.ok(&["mod-port"], &["eth2", "down"]);
    assert!(
        br.ports
            .get(2)
            .unwrap()
            .config()
            .contains(PortConfig::PORT_DOWN)
    );
    br.ok(&of13("mod-port"), &["eth2", "up"]);
    assert!(
        !br.ports
            .get(2)
            .unwrap()
            .config()
            .contains(PortConfig::PORT_DOWN)
    );

    // Packet-out: the frame reaches the sink.
    let pkt = "ffffffffffff020000000001".to_string() + "88b5" + &"ab".repeat(46);
    br.ok(&["packet-out"], &["1", "output:3", &pkt]);
    assert_eq!(br.sink.outputs.len(), 1);
    assert_eq!(br.sink.outputs[0].0, 3);
    assert_eq!(br.sink.outputs[0].1.len(), 60);
    br.ok(
        &of13("packet-out"),
        &[&format!("in_port=controller,packet={pkt},actions=output:2")],
    );
    assert_eq!(br.sink.outputs.last().unwrap().0, 2);

    // Table features (big multipart reply).
    let out = br.ok(&of13("dump-table-features"), &[]);
    assert!(out.contains("table 0"), "{out}");

    // OpenFlow 1.4 and 1.5 too.
    for v in ["OpenFlow14", "OpenFlow15"] {
        br.ok(
            &["-O", v, "add-flow"],
            &["table=2,priority=9,tcp,tp_dst=80,actions=output:3"],
        );
        let out = br.ok(&["-O", v, "dump-flows"], &["table=2"]);
        assert!(
            out.contains("priority=9,tcp,tp_dst=80 actions=output:3"),
            "{v}: {out}"
        );
        let out = br.ok(&["-O", v, "dump-ports-desc"], &[]);
        assert!(out.contains("3(eth3)"), "{v}: {out}");
        br.ok(&["-O", v, "del-flows"], &["table=2"]);
    }
    br.ok(
        &["-O", "OpenFlow15", "add-group"],
        &["group_id=8,type=select,bucket=weight:5,actions=output:1"],
    );
    let out = br.ok(&["-O", "OpenFlow15", "dump-groups"], &[]);
    assert!(out.contains("group_id=8,type=select"), "{out}");
    assert!(out.contains("weight:5"), "{out}");

    // Everything goes.
    br.ok(&of13("del-flows"), &[]);
    assert_eq!(br.flow_count(), 0);
}

#[test]
fn ovs_ofctl_monitor_sees_packet_ins_and_port_status() {
    need_ofctl!();
    use switch_core::extract::extract;
    use switch_core::flow::FlowKey;
    use switch_core::packet::HeapFrame;
    use switch_core::pipeline::Env;
    for version in ["OpenFlow10", "OpenFlow13"] {
        let mut br = Bridge::new();
        br.with(|a, ctx| a.poll(ctx));
        // Everything to the controller.
        br.ok(&["del-flows"], &[]);
        br.ok(&["add-flow"], &["actions=controller"]);
        let mut fired = None;
        let ctl = std::env::temp_dir().join(format!(
            "ironflow-agent-monitor-{}-{version}.ctl",
            std::process::id()
        ));
        let unixctl = format!("--unixctl={}", ctl.display());
        let (_, out) = br.ofctl_with(
            &["-O", version, "monitor"],
            &["65534", "--timeout=2", &unixctl],
            &mut |br| {
                if fired.is_none() && br.agent.packet_ins().is_active() {
                    fired = Some(Instant::now());
                }
                if fired.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
                    fired = Some(Instant::now() + Duration::from_secs(3600));
                    let mut frame = vec![0xff; 6];
                    frame.extend_from_slice(&[2, 0, 0, 0, 9, 9, 0x88, 0xb5]);
                    frame.resize(64, 0x5a);
                    let mut key = FlowKey::ZERO;
                    let mut wc = FlowKey::ZERO;
                    extract(&frame, 2, &mut key);
                    let mut f = HeapFrame::new(&frame);
                    struct S<'a>(&'a mut mgmt::agent::PacketInQueue);
                    impl OutputSink for S<'_> {
                        fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
                        fn controller(&mut self, pi: &CorePacketIn<'_>) {
                            self.0.push(pi);
                        }
                    }
                    let (meters, pins) = br.agent.datapath_hooks();
                    let mut env = Env {
                        ports: &br.ports,
                        normal: Some(&mut br.normal),
                        meters: Some(meters),
                        now_ms: 0,
                    };
                    br.pipeline
                        .process(&mut env, &mut key, &mut f, &mut wc, &mut S(pins));
                    br.ports.set_link(3, false).unwrap();
                }
            },
        );
        assert!(out.contains("OFPT_PACKET_IN"), "{version}: {out}");
        assert!(out.contains("in_port=2"), "{version}: {out}");
        assert!(out.contains("OFPT_PORT_STATUS"), "{version}: {out}");
        assert!(out.contains("LINK_DOWN"), "{version}: {out}");
    }
}
