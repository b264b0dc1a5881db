//! End-to-end tests against the real `ovs-ofctl` (Open vSwitch 3.x): each test listens on a
//! Unix socket, runs `ovs-ofctl <command> unix:<socket>`, drives a `Session` with a tiny
//! in-memory switch behind it, and checks what `ovs-ofctl` printed and what it sent.
//! Skipped (with a note) when `ovs-ofctl` is not installed.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mgmt::openflow::group::{GroupFeatures, GroupMod};
use mgmt::openflow::message::{FlowMod, FlowModCommand, Message, Role};
use mgmt::openflow::meter::{MeterConfig, MeterFeatures, MeterMod};
use mgmt::openflow::multipart::{
    AggregateStats, FlowStats, MultipartReply, MultipartRequest, TableFeatures, TableStats,
};
use mgmt::openflow::port::{PortDesc, PortStats};
use mgmt::openflow::session::{Session, SessionConfig, SessionEvent, SwitchInfo};

fn have_ofctl() -> bool {
    Command::new("ovs-ofctl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A switch with just enough state to answer ovs-ofctl.
#[derive(Default)]
struct MiniSwitch {
    flows: Vec<FlowMod>,
    groups: Vec<GroupMod>,
    meters: Vec<MeterMod>,
    /// Every request the session handed over, in order.
    seen: Vec<Message>,
    /// Every message received, as raw bytes (for golden vectors).
    raw: Vec<Vec<u8>>,
}

fn ports() -> Vec<PortDesc> {
    (1..=2)
        .map(|i| PortDesc {
            port_no: i,
            hw_addr: [0x02, 0, 0, 0, 0, i as u8],
            name: format!("eth{i}"),
            curr: 0x20 | 0x800, // 1GB_FD, COPPER
            supported: 0x20 | 0x800,
            curr_speed: 1_000_000,
            max_speed: 1_000_000,
            ..Default::default()
        })
        .collect()
}

impl MiniSwitch {
    fn handle(&mut self, s: &mut Session, xid: u32, m: Message) {
        self.seen.push(m.clone());
        let reply = |s: &mut Session, m: Message| s.send(xid, &m).expect("encode reply");
        match m {
            Message::FlowMod(f) => match f.command {
                FlowModCommand::Add => self.flows.push(f),
                FlowModCommand::Delete | FlowModCommand::DeleteStrict => self.flows.clear(),
                _ => {}
            },
            Message::GroupMod(g) => self.groups.push(g),
            Message::MeterMod(mm) => self.meters.push(mm),
            Message::BarrierRequest => reply(s, Message::BarrierReply),
            Message::QueueGetConfigRequest { port } => reply(
                s,
                Message::QueueGetConfigReply {
                    port,
                    queues: vec![mgmt::openflow::message::QueueConfig {
                        queue_id: 1,
                        min_rate: Some(200),
                        max_rate: None,
                    }],
                },
            ),
            Message::RoleRequest(r) => {
                s.set_role(r.role);
                reply(
                    s,
                    Message::RoleReply(Role {
                        role: s.role(),
                        generation_id: r.generation_id,
                    }),
                )
            }
            Message::MultipartRequest { body, .. } => {
                let body = match body {
                    MultipartRequest::Flow(_) => MultipartReply::Flow(
                        self.flows
                            .iter()
                            .map(|f| FlowStats {
                                table_id: if f.table_id == 0xff { 0 } else { f.table_id },
                                duration_sec: 7,
                                duration_nsec: 0,
                                priority: f.priority,
                                idle_timeout: f.idle_timeout,
                                hard_timeout: f.hard_timeout,
                                flags: 0,
                                importance: 0,
                                cookie: f.cookie,
                                packet_count: 3,
                                byte_count: 180,
                                match_: f.match_.clone(),
                                instructions: f.instructions.clone(),
                            })
                            .collect(),
                    ),
                    MultipartRequest::Aggregate(_) => MultipartReply::Aggregate(AggregateStats {
                        packet_count: 3 * self.flows.len() as u64,
                        byte_count: 180 * self.flows.len() as u64,
                        flow_count: self.flows.len() as u32,
                    }),
                    MultipartRequest::Table => MultipartReply::Table(
                        (0..2)
                            .map(|t| TableStats {
                                table_id: t,
                                active_count: if t == 0 { self.flows.len() as u32 } else { 0 },
                                lookup_count: 10,
                                matched_count: 4,
                                name: format!("table{t}"),
                                wildcards: 0x3fffff,
                                max_entries: 1_000_000,
                            })
                            .collect(),
                    ),
                    MultipartRequest::PortDesc => MultipartReply::PortDesc(ports()),
                    MultipartRequest::PortStats { .. } => MultipartReply::PortStats(
                        ports()
                            .iter()
                            .map(|p| PortStats {
                                port_no: p.port_no,
                                rx_packets: 11,
                                tx_packets: 22,
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    MultipartRequest::Queue { .. } => MultipartReply::Queue(vec![]),
                    MultipartRequest::Group { .. } => MultipartReply::Group(vec![]),
                    MultipartRequest::GroupDesc { .. } => MultipartReply::GroupDesc(
                        self.groups
                            .iter()
                            .map(|g| mgmt::openflow::group::GroupDesc {
                                group_type: g.group_type,
                                group_id: g.group_id,
                                buckets: g.buckets.clone(),
                            })
                            .collect(),
                    ),
                    MultipartRequest::GroupFeatures => {
                        MultipartReply::GroupFeatures(GroupFeatures {
                            types: 0xf,
                            capabilities: 0x5,
                            max_groups: [65536; 4],
                            actions: [0x03ff_ffff; 4],
                        })
                    }
                    MultipartRequest::Meter { .. } => MultipartReply::Meter(vec![]),
                    MultipartRequest::MeterConfig { .. } => MultipartReply::MeterConfig(
                        self.meters
                            .iter()
                            .map(|m| MeterConfig {
                                flags: m.flags,
                                meter_id: m.meter_id,
                                bands: m.bands.clone(),
                            })
                            .collect(),
                    ),
                    MultipartRequest::MeterFeatures => {
                        MultipartReply::MeterFeatures(MeterFeatures {
                            max_meter: 1024,
                            band_types: 1 << 1,
                            capabilities: 0xf,
                            max_bands: 1,
                            max_color: 0,
                        })
                    }
                    MultipartRequest::TableFeatures(_) => MultipartReply::TableFeatures(
                        (0..2)
                            .map(|t| TableFeatures::ironflow(t, 2, 1_000_000))
                            .collect(),
                    ),
                    MultipartRequest::Desc => unreachable!("the session answers desc"),
                };
                reply(s, Message::MultipartReply { flags: 0, body })
            }
            _ => {}
        }
    }
}

static SOCK_N: AtomicU32 = AtomicU32::new(0);

/// Runs `ovs-ofctl args... unix:SOCK [tail...]` against a session; returns (stdout+stderr,
/// switch, session).
fn run_ofctl(args: &[&str], tail: &[&str], sw: &mut MiniSwitch) -> (String, Session) {
    let dir = std::env::temp_dir().join(format!(
        "ironflow-ofctl-{}-{}",
        std::process::id(),
        SOCK_N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sw.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let target = format!("unix:{}", path.display());
    let mut cmd = Command::new("ovs-ofctl");
    cmd.args(args).arg(&target).args(tail);
    cmd.arg("-vvconn:dbg").arg("--timeout=10");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let info = SwitchInfo {
        datapath_id: 0x0000_0000_0000_abcd,
        n_tables: 2,
        ports: ports(),
        ..Default::default()
    };
    let mut conns: Vec<(UnixStream, Session, bool, mgmt::openflow::Framer)> = Vec::new();
    // ovs-ofctl may hold several connections at once (e.g. `show`), so poll them all.
    loop {
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ovs-ofctl {args:?} timed out:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true).unwrap();
                let s = Session::new(
                    SessionConfig {
                        info: info.clone(),
                        ..Default::default()
                    },
                    0,
                );
                conns.push((stream, s, true, mgmt::openflow::Framer::default()));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        let mut busy = false;
        for (stream, s, open, framer) in conns.iter_mut().filter(|c| c.2) {
            busy |= serve_once(stream, s, open, framer, sw, start);
        }
        if conns.iter().all(|c| !c.2) && child.try_wait().unwrap().is_some() {
            break;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let last = conns.pop().map(|c| c.1);
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ovs-ofctl {args:?} failed:\n{text}");
    (text, last.expect("ovs-ofctl never connected"))
}

/// One round on one connection: flush output, read what is there. Returns whether anything moved.
fn serve_once(
    stream: &mut UnixStream,
    s: &mut Session,
    open: &mut bool,
    framer: &mut mgmt::openflow::Framer,
    sw: &mut MiniSwitch,
    start: Instant,
) -> bool {
    let out = s.poll_output();
    if !out.is_empty() {
        stream.set_nonblocking(false).unwrap();
        let ok = stream.write_all(&out).is_ok();
        stream.set_nonblocking(true).unwrap();
        if !ok {
            *open = false;
            return true;
        }
    }
    let mut buf = [0u8; 65536];
    match stream.read(&mut buf) {
        Ok(0) => {
            *open = false;
            true
        }
        Ok(n) => {
            framer.push(&buf[..n]);
            while let Some(Ok(m)) = framer.next_message() {
                sw.raw.push(m);
            }
            let now = start.elapsed().as_millis() as u64;
            for ev in s.on_bytes(now, &buf[..n]) {
                match ev {
                    SessionEvent::Request(r) => sw.handle(s, r.xid, r.message),
                    SessionEvent::Disconnect(d) => panic!("disconnect: {d:?}"),
                    _ => {}
                }
            }
            true
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => !out.is_empty(),
        Err(_) => {
            *open = false;
            true
        }
    }
}

macro_rules! need_ofctl {
    () => {
        if !have_ofctl() {
            eprintln!("ovs-ofctl not installed; skipping");
            return;
        }
    };
}

#[test]
fn show_of13() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    let (out, s) = run_ofctl(&["-O", "OpenFlow13", "show"], &[], &mut sw);
    assert_eq!(s.version(), Some(4));
    assert!(out.contains("OFPT_FEATURES_REPLY (OF1.3)"), "{out}");
    assert!(out.contains("dpid:000000000000abcd"), "{out}");
    assert!(out.contains("n_tables:2"), "{out}");
    assert!(out.contains("1(eth1): addr:02:00:00:00:00:01"), "{out}");
    assert!(out.contains("OFPT_GET_CONFIG_REPLY (OF1.3)"), "{out}");
    assert!(out.contains("miss_send_len=128"), "{out}");
}

#[test]
fn show_of10() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    let (out, s) = run_ofctl(&["-O", "OpenFlow10", "show"], &[], &mut sw);
    assert_eq!(s.version(), Some(1));
    assert!(out.contains("OFPT_FEATURES_REPLY"), "{out}");
    assert!(out.contains("2(eth2): addr:02:00:00:00:00:02"), "{out}");
    assert!(out.contains("1GB-FD COPPER"), "{out}");
    // OVS's OpenFlow 1.0 extension: port descriptions as stats type 13.
    let (out, _) = run_ofctl(&["-O", "OpenFlow10", "dump-ports-desc"], &[], &mut sw);
    assert!(out.contains("OFPST_PORT_DESC reply"), "{out}");
    assert!(out.contains("2(eth2): addr:02:00:00:00:00:02"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow10", "dump-ports"], &[], &mut sw);
    assert!(out.contains("port  1: rx pkts=11"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow10", "queue-get-config"], &["1"], &mut sw);
    assert!(
        out.contains("queue 1:") && out.contains("min_rate:20.0%"),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow10", "dump-tables"], &[], &mut sw);
    assert!(out.contains("OFPST_TABLE reply"), "{out}");
}

#[test]
fn default_versions_negotiate_highest() {
    need_ofctl!();
    // ovs-ofctl's default is OpenFlow 1.0 only, so the session speaks 1.0.
    let mut sw = MiniSwitch::default();
    let (_, s) = run_ofctl(&["show"], &[], &mut sw);
    assert_eq!(s.version(), Some(1));
    let (_, s) = run_ofctl(
        &["-O", "OpenFlow10,OpenFlow13,OpenFlow15", "show"],
        &[],
        &mut sw,
    );
    assert_eq!(s.version(), Some(6));
}

#[test]
fn dump_desc() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-desc"], &[], &mut sw);
    assert!(out.contains("Manufacturer: ironflow"), "{out}");
    assert!(out.contains("Serial Num: None"), "{out}");
}

#[test]
fn add_and_dump_flows_of13() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    let flow = "table=1,priority=100,in_port=1,ip,nw_src=10.0.0.0/8,tcp,tp_dst=80,\
                actions=push_vlan:0x8100,set_field:4196->vlan_vid,dec_ttl,group:5,output:2";
    run_ofctl(&["-O", "OpenFlow13", "add-flow"], &[flow], &mut sw);
    assert_eq!(sw.flows.len(), 1, "{:?}", sw.seen);
    let f = &sw.flows[0];
    assert_eq!((f.table_id, f.priority), (1, 100));
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-flows"], &[], &mut sw);
    assert!(
        out.contains(
            "table=1, n_packets=3, n_bytes=180, priority=100,tcp,in_port=1,nw_src=10.0.0.0/8,\
             tp_dst=80 actions=push_vlan:0x8100,set_field:4196->vlan_vid,dec_ttl,group:5,output:2"
        ),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-aggregate"], &[], &mut sw);
    assert!(
        out.contains("packet_count=3 byte_count=180 flow_count=1"),
        "{out}"
    );
    run_ofctl(&["-O", "OpenFlow13", "del-flows"], &[], &mut sw);
    assert!(sw.flows.is_empty());
}

#[test]
fn add_and_dump_flows_of10() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    let flow = "priority=10,in_port=2,dl_vlan=5,dl_src=00:11:22:33:44:55,udp,nw_dst=192.168.1.0/24,\
                tp_src=53,actions=mod_vlan_vid:7,mod_nw_tos:32,strip_vlan,mod_tp_dst:99,\
                enqueue:1:3,output:1";
    run_ofctl(&["add-flow"], &[flow], &mut sw);
    assert_eq!(sw.flows.len(), 1, "{:?}", sw.seen);
    // dump-flows with OpenFlow 1.0 first asks for the NXM flow format; the refusal makes it
    // fall back to plain OpenFlow 1.0 stats.
    let (out, _) = run_ofctl(&["dump-flows"], &[], &mut sw);
    assert!(out.contains("sent (Success): NXT_SET_FLOW_FORMAT"), "{out}");
    assert!(
        out.contains("received: OFPT_ERROR (xid=0x2): OFPBRC_EPERM"),
        "{out}"
    );
    assert!(out.contains("sent (Success): OFPST_FLOW request"), "{out}");
    assert!(
        out.contains(
            "n_packets=3, n_bytes=180, priority=10,udp,in_port=2,dl_vlan=5,\
             dl_src=00:11:22:33:44:55,nw_dst=192.168.1.0/24,tp_src=53 \
             actions=mod_vlan_vid:7,mod_nw_tos:32,strip_vlan,mod_tp_dst:99,enqueue:1:3,output:1"
        ),
        "{out}"
    );
}

#[test]
fn of10_flow_with_table_uses_nicira_table_id() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    run_ofctl(&["add-flow"], &["table=1,actions=drop"], &mut sw);
    assert_eq!(sw.flows.len(), 1, "{:?}", sw.seen);
    assert_eq!(sw.flows[0].table_id, 1);
}

#[test]
fn groups_meters_tables_ports_of13() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    run_ofctl(
        &["-O", "OpenFlow13", "add-group"],
        &["group_id=5,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2"],
        &mut sw,
    );
    assert_eq!(sw.groups.len(), 1);
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-groups"], &[], &mut sw);
    assert!(
        out.contains("group_id=5,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2"),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-group-features"], &[], &mut sw);
    assert!(out.contains("Group table:"), "{out}");
    run_ofctl(
        &["-O", "OpenFlow13", "add-meter"],
        &["meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100"],
        &mut sw,
    );
    assert_eq!(sw.meters.len(), 1);
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-meters"], &[], &mut sw);
    assert!(out.contains("meter=1 kbps burst bands="), "{out}");
    assert!(out.contains("type=drop rate=1000 burst_size=100"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "meter-features"], &[], &mut sw);
    assert!(out.contains("max_meter:1024"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "queue-get-config"], &["2"], &mut sw);
    assert!(
        out.contains("queue 1:") && out.contains("min_rate:20.0%"),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-tables"], &[], &mut sw);
    assert!(out.contains("OFPST_TABLE reply (OF1.3)"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-table-features"], &[], &mut sw);
    assert!(out.contains("table 0"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-ports"], &[], &mut sw);
    assert!(out.contains("port  1: rx pkts=11"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow13", "dump-ports-desc"], &[], &mut sw);
    assert!(out.contains("2(eth2)"), "{out}");
    run_ofctl(
        &["-O", "OpenFlow13", "mod-port"],
        &["eth1", "down"],
        &mut sw,
    );
    assert!(
        sw.seen
            .iter()
            .any(|m| matches!(m, Message::PortMod(p) if p.port_no == 1 && p.config == 1))
    );
    run_ofctl(
        &["-O", "OpenFlow13", "packet-out"],
        &[
            "1",
            "output:2",
            "ffffffffffff00000000000108004500001c000000004001f97cc0a80001c0a80002",
        ],
        &mut sw,
    );
    assert!(
        sw.seen
            .iter()
            .any(|m| matches!(m, Message::PacketOut(p) if p.in_port == 1))
    );
}

#[test]
fn dump_flows_of14_of15() {
    need_ofctl!();
    let mut sw = MiniSwitch::default();
    run_ofctl(
        &["-O", "OpenFlow14", "add-flow"],
        &["priority=5,arp,arp_tpa=10.0.0.1,actions=NORMAL"],
        &mut sw,
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow14", "dump-flows"], &[], &mut sw);
    assert!(
        out.contains("priority=5,arp,arp_tpa=10.0.0.1 actions=NORMAL"),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow14", "dump-ports-desc"], &[], &mut sw);
    assert!(out.contains("1(eth1): addr:02:00:00:00:00:01"), "{out}");
    let (out, _) = run_ofctl(&["-O", "OpenFlow14", "dump-ports"], &[], &mut sw);
    assert!(out.contains("port  2: rx pkts=11"), "{out}");
    run_ofctl(
        &["-O", "OpenFlow15", "add-flow"],
        &["table=0,priority=6,ipv6,ipv6_dst=2001:db8::/64,actions=output:1"],
        &mut sw,
    );
    let (out, s) = run_ofctl(&["-O", "OpenFlow15", "dump-flows"], &[], &mut sw);
    assert_eq!(s.version(), Some(6));
    assert!(
        out.contains("priority=5,arp,arp_tpa=10.0.0.1 actions=NORMAL"),
        "{out}"
    );
    assert!(
        out.contains(
            "n_packets=3, n_bytes=180, priority=6,ipv6,ipv6_dst=2001:db8::/64 actions=output:1"
        ),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow15", "dump-aggregate"], &[], &mut sw);
    assert!(
        out.contains("packet_count=6 byte_count=360 flow_count=2"),
        "{out}"
    );
    run_ofctl(
        &["-O", "OpenFlow15", "add-group"],
        &["group_id=9,type=ff,bucket=watch_port:1,output:1,bucket=watch_port:2,output:2"],
        &mut sw,
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow15", "dump-groups"], &[], &mut sw);
    assert!(
        out.contains("group_id=9,type=ff,bucket=bucket_id:0,watch_port:1,actions=output:1,bucket=bucket_id:1,watch_port:2,actions=output:2"),
        "{out}"
    );
    let (out, _) = run_ofctl(&["-O", "OpenFlow15", "dump-ports-desc"], &[], &mut sw);
    assert!(out.contains("2(eth2): addr:02:00:00:00:00:02"), "{out}");
}

/// Prints the bytes ovs-ofctl sends for a set of commands (the source of the golden vectors
/// in `openflow_golden.rs`). Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn capture_golden_vectors() {
    need_ofctl!();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["-O", "OpenFlow13", "add-flow"],
            &[
                "table=1,priority=100,in_port=1,ip,nw_src=10.0.0.0/8,tcp,tp_dst=80,actions=push_vlan:0x8100,set_field:4196->vlan_vid,dec_ttl,group:5,output:2",
            ],
        ),
        (
            &["-O", "OpenFlow13", "add-flow"],
            &[
                "priority=5,ipv6,ipv6_dst=2001:db8::/64,actions=write_actions(output:3),write_metadata:0x10/0xff,goto_table:2",
            ],
        ),
        (
            &["-O", "OpenFlow13", "add-group"],
            &["group_id=5,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2"],
        ),
        (&["-O", "OpenFlow13", "del-flows"], &["in_port=3"]),
        (&["-O", "OpenFlow13", "dump-flows"], &["tcp,tp_src=22"]),
        (&["-O", "OpenFlow13", "mod-port"], &["eth1", "no-flood"]),
        (
            &["-O", "OpenFlow14", "add-flow"],
            &["importance=7,priority=1,arp,actions=NORMAL"],
        ),
        (
            &["-O", "OpenFlow15", "packet-out"],
            &["in_port=1,packet=ffffffffffff000000000001080045,actions=output:2"],
        ),
        (
            &["-O", "OpenFlow15", "add-group"],
            &["group_id=9,type=ff,bucket=watch_port:1,output:1"],
        ),
    ];
    for (args, tail) in cases {
        let mut sw = MiniSwitch::default();
        run_ofctl(args, tail, &mut sw);
        println!("# ovs-ofctl {} {}", args.join(" "), tail.join(" "));
        for m in &sw.raw {
            println!(
                "{}",
                m.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
        }
    }
}
