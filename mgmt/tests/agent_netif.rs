//! The management port end to end: the switch's `MgmtPort` + `OfAgent` on one smoltcp
//! interface, test clients and controllers on another, joined by an in-memory Ethernet wire.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use mgmt::agent::{AgentConfig, BridgeCtx, FailMode, OfAgent};
use mgmt::cmdline::Ipv4Cidr as Cidr;
use mgmt::netif::{ConnKind, MgmtPort, NetifConfig, StreamHandler, Target};
use mgmt::openflow::header::Framer;
use mgmt::openflow::message::*;
use mgmt::openflow::oxm::{Match, OxmField};
use mgmt::openflow::{Action, Instruction, OFP13};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use switch_core::flow::Field;
use switch_core::normal::NormalSwitch;
use switch_core::pipeline::{OutputSink, PacketIn as CorePacketIn, Pipeline};
use switch_core::port::{Port, PortTable};

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of an in-memory Ethernet cable.
struct End {
    rx: Queue,
    tx: Queue,
    /// Frames sent while the cable is cut are lost.
    up: Rc<Cell<bool>>,
}

fn cable() -> (End, End) {
    let a: Queue = Rc::default();
    let b: Queue = Rc::default();
    let up = Rc::new(Cell::new(true));
    (
        End {
            rx: a.clone(),
            tx: b.clone(),
            up: up.clone(),
        },
        End { rx: b, tx: a, up },
    )
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a Queue, bool);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        if self.1 {
            self.0.borrow_mut().push_back(buf);
        }
        r
    }
}

impl Device for End {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;
    fn receive(&mut self, _: Instant) -> Option<(RxTok, TxTok<'_>)> {
        let f = self.rx.borrow_mut().pop_front()?;
        Some((RxTok(f), TxTok(&self.tx, self.up.get())))
    }
    fn transmit(&mut self, _: Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&self.tx, self.up.get()))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

#[derive(Default)]
struct Sink;
impl OutputSink for Sink {
    fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
    fn controller(&mut self, _: &CorePacketIn<'_>) {}
}

const SWITCH_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const SWITCH_IP: [u8; 4] = [10, 0, 0, 1];
const PEER_IP: [u8; 4] = [10, 0, 0, 2];

/// The switch side: bridge, agent, management port.
struct Switch {
    dev: End,
    port: MgmtPort,
    agent: OfAgent,
    pipeline: Pipeline,
    ports: PortTable,
    normal: NormalSwitch,
    sink: Sink,
    ovsdb: Echo,
}

impl Switch {
    fn new(dev: End, controllers: Vec<String>, now: u64) -> Switch {
        let mut dev = dev;
        let port = MgmtPort::new(
            NetifConfig {
                mac: SWITCH_MAC,
                ip: Some(Cidr {
                    addr: SWITCH_IP,
                    prefix: 24,
                }),
                controllers: controllers.clone(),
                random_seed: 7,
                ..NetifConfig::default()
            },
            &mut dev,
            now,
        );
        let mut ports = PortTable::new();
        ports.add(Port::new(1, "eth1", [2, 0, 0, 0, 1, 1])).unwrap();
        let agent = OfAgent::new(
            AgentConfig {
                fail_mode: FailMode::Secure,
                has_controllers: !controllers.is_empty(),
                ..AgentConfig::default()
            },
            now,
        );
        Switch {
            dev,
            port,
            agent,
            pipeline: Pipeline::default(),
            ports,
            normal: NormalSwitch::default(),
            sink: Sink,
            ovsdb: Echo::default(),
        }
    }

    /// What the kernel's main loop does every N iterations.
    fn poll(&mut self, now: u64) {
        let mut ctx = BridgeCtx {
            pipeline: &mut self.pipeline,
            ports: &mut self.ports,
            normal: &mut self.normal,
            sink: &mut self.sink,
            now_ms: now,
            cores: None,
        };
        self.port.poll_with_agent(
            now,
            &mut self.dev,
            &mut self.agent,
            &mut ctx,
            Some(&mut self.ovsdb),
        );
    }
}

impl Switch {
    /// Runs a frame through the pipeline as the kernel's forwarding loop does.
    fn forward(&mut self, in_port: u32, bytes: &[u8], now: u64) {
        use switch_core::extract::extract;
        use switch_core::flow::FlowKey;
        use switch_core::packet::HeapFrame;
        use switch_core::pipeline::Env;
        struct KernelSink<'a>(&'a mut mgmt::agent::PacketInQueue);
        impl OutputSink for KernelSink<'_> {
            fn output(&mut self, _: u32, _: Option<u32>, _: &[u8]) {}
            fn controller(&mut self, pi: &CorePacketIn<'_>) {
                self.0.push(pi);
            }
        }
        let mut key = FlowKey::ZERO;
        let mut wc = FlowKey::ZERO;
        extract(bytes, in_port, &mut key);
        let mut f = HeapFrame::new(bytes);
        let (meters, packet_ins) = self.agent.datapath_hooks();
        let mut env = Env {
            ports: &self.ports,
            normal: Some(&mut self.normal),
            meters: Some(meters),
            now_ms: now,
        };
        self.pipeline.process(
            &mut env,
            &mut key,
            &mut f,
            &mut wc,
            &mut KernelSink(packet_ins),
        );
    }
}

/// An OVSDB stand-in: echoes what it receives.
#[derive(Default)]
struct Echo {
    next: u32,
    bufs: Vec<(u32, Vec<u8>)>,
    closed: Vec<u32>,
}

impl StreamHandler for Echo {
    fn open(&mut self, _: ConnKind, _: u64) -> Option<u32> {
        self.next += 1;
        self.bufs.push((self.next, Vec::new()));
        Some(self.next)
    }
    fn can_receive(&self, _: u32) -> bool {
        true
    }
    fn receive(&mut self, conn: u32, data: &[u8], _: u64) {
        if let Some((_, b)) = self.bufs.iter_mut().find(|(c, _)| *c == conn) {
            b.extend_from_slice(data);
        }
    }
    fn pending(&self, conn: u32) -> &[u8] {
        self.bufs
            .iter()
            .find(|(c, _)| *c == conn)
            .map_or(&[], |(_, b)| &b[..])
    }
    fn consume(&mut self, conn: u32, n: usize) {
        if let Some((_, b)) = self.bufs.iter_mut().find(|(c, _)| *c == conn) {
            b.drain(..n);
        }
    }
    fn wants_close(&self, _: u32) -> bool {
        false
    }
    fn closed(&mut self, conn: u32, _: u64) {
        self.closed.push(conn);
    }
}

/// The other side: a plain smoltcp host with TCP sockets.
struct Peer {
    dev: End,
    iface: Interface,
    sockets: SocketSet<'static>,
}

impl Peer {
    fn new(mut dev: End, now: u64) -> Peer {
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(PEER_MAC))),
            &mut dev,
            Instant::from_millis(now as i64),
        );
        let [a, b, c, d] = PEER_IP;
        iface.update_ip_addrs(|ips| {
            ips.push(IpCidr::new(IpAddress::v4(a, b, c, d), 24))
                .unwrap();
        });
        Peer {
            dev,
            iface,
            sockets: SocketSet::new(vec![]),
        }
    }

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 65536]),
        )
    }

    fn connect(&mut self, port: u16, local: u16) -> SocketHandle {
        let mut s = Peer::socket();
        let [a, b, c, d] = SWITCH_IP;
        s.connect(
            self.iface.context(),
            (IpAddress::v4(a, b, c, d), port),
            local,
        )
        .unwrap();
        self.sockets.add(s)
    }

    fn listen(&mut self, port: u16) -> SocketHandle {
        let mut s = Peer::socket();
        s.listen(port).unwrap();
        self.sockets.add(s)
    }

    fn poll(&mut self, now: u64) {
        self.iface.poll(
            Instant::from_millis(now as i64),
            &mut self.dev,
            &mut self.sockets,
        );
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    fn send(&mut self, h: SocketHandle, bytes: &[u8]) {
        let n = self.tcp(h).send_slice(bytes).unwrap();
        assert_eq!(n, bytes.len());
    }

    fn recv_all(&mut self, h: SocketHandle) -> Vec<u8> {
        let s = self.tcp(h);
        let mut v = Vec::new();
        while s.can_recv() {
            s.recv(|d| {
                v.extend_from_slice(d);
                (d.len(), ())
            })
            .unwrap();
        }
        v
    }
}

struct World {
    sw: Switch,
    peer: Peer,
    now: u64,
}

impl World {
    fn new(controllers: Vec<String>) -> World {
        let (a, b) = cable();
        World {
            sw: Switch::new(a, controllers, 0),
            peer: Peer::new(b, 0),
            now: 0,
        }
    }

    fn step(&mut self, ms: u64) {
        self.now += ms;
        self.sw.poll(self.now);
        self.peer.poll(self.now);
    }

    fn run_until(&mut self, max_ms: u64, mut f: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now + max_ms;
        while self.now < end {
            self.step(1);
            if f(self) {
                return true;
            }
        }
        false
    }
}

fn decode(bytes: &[u8], framer: &mut Framer) -> Vec<(u32, Message)> {
    framer.push(bytes);
    let mut v = Vec::new();
    while let Some(m) = framer.next_message() {
        let (h, msg) = Message::decode(&m.unwrap()).unwrap();
        v.push((h.xid, msg));
    }
    v
}

fn hello13() -> Vec<u8> {
    Message::Hello(Hello {
        bitmap: Some(1 << OFP13),
    })
    .encode(OFP13, 1)
    .unwrap()
}

fn flow(in_port: u32, cookie: u64) -> Vec<u8> {
    Message::FlowMod(FlowMod {
        priority: 10,
        cookie,
        match_: Match::any().with(OxmField::exact(Field::InPort, in_port as u128)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 1,
            max_len: 0,
        }])],
        ..Default::default()
    })
    .encode(OFP13, 2)
    .unwrap()
}

#[test]
fn target_parsing() {
    assert_eq!(
        Target::parse("tcp:10.1.2.3:6633"),
        Some(Target {
            addr: [10, 1, 2, 3],
            port: 6633
        })
    );
    assert_eq!(
        Target::parse("tcp:10.1.2.3"),
        Some(Target {
            addr: [10, 1, 2, 3],
            port: 6653
        })
    );
    for bad in [
        "ssl:1.2.3.4:6653",
        "tcp:1.2.3:1",
        "tcp:1.2.3.4:0",
        "tcp:0.0.0.0:1",
        "tcp:x",
    ] {
        assert_eq!(Target::parse(bad), None, "{bad}");
    }
}

#[test]
fn several_clients_on_the_openflow_listener() {
    let mut w = World::new(vec![]);
    let clients: Vec<SocketHandle> = (0..4).map(|i| w.peer.connect(6653, 40000 + i)).collect();
    assert!(w.run_until(2_000, |w| {
        clients
            .iter()
            .all(|h| w.peer.tcp(*h).state() == tcp::State::Established)
    }));
    let mut framers: Vec<Framer> = clients.iter().map(|_| Framer::default()).collect();
    let mut got: Vec<Vec<(u32, Message)>> = clients.iter().map(|_| Vec::new()).collect();
    for (i, h) in clients.iter().enumerate() {
        let mut b = hello13();
        b.extend(Message::FeaturesRequest.encode(OFP13, 10).unwrap());
        b.extend(flow(i as u32 + 1, 100 + i as u64));
        b.extend(Message::BarrierRequest.encode(OFP13, 11).unwrap());
        w.peer.send(*h, &b);
    }
    let done = w.run_until(2_000, |w| {
        for (i, h) in clients.iter().enumerate() {
            let bytes = w.peer.recv_all(*h);
            got[i].extend(decode(&bytes, &mut framers[i]));
        }
        got.iter()
            .all(|g| g.iter().any(|(_, m)| *m == Message::BarrierReply))
    });
    assert!(done, "{got:?}");
    for g in &got {
        assert!(matches!(g[0], (_, Message::Hello(_))));
        assert!(
            matches!(&g[1], (10, Message::FeaturesReply(f)) if f.datapath_id == 0x0200_0000_0101)
        );
        assert_eq!(g[2], (11, Message::BarrierReply));
    }
    assert_eq!(w.sw.pipeline.entries(0).count(), 4);
    assert_eq!(w.sw.agent.connection_count(), 4);
    assert_eq!(w.sw.port.stats().accepted, 4);

    // Two leave; the others stay.
    w.peer.tcp(clients[0]).close();
    w.peer.tcp(clients[1]).abort();
    assert!(w.run_until(3_000, |w| w.sw.agent.connection_count() == 2));
    let mut b = Message::BarrierRequest.encode(OFP13, 12).unwrap();
    b.extend(Message::EchoRequest(vec![1]).encode(OFP13, 13).unwrap());
    w.peer.send(clients[2], &b);
    let mut out = Vec::new();
    assert!(w.run_until(1_000, |w| {
        let bytes = w.peer.recv_all(clients[2]);
        out.extend(decode(&bytes, &mut framers[2]));
        out.len() == 2
    }));
    assert_eq!(out[0], (12, Message::BarrierReply));
    assert_eq!(out[1], (13, Message::EchoReply(vec![1])));
}

#[test]
fn listener_limit_and_replacement() {
    let mut w = World::new(vec![]);
    // Nine clients at once: eight are served, the ninth is refused.
    let clients: Vec<SocketHandle> = (0..9).map(|i| w.peer.connect(6653, 41000 + i)).collect();
    w.run_until(3_000, |_| false);
    let established = clients
        .iter()
        .filter(|h| w.peer.tcp(**h).state() == tcp::State::Established)
        .count();
    assert_eq!(established, 8);
    assert_eq!(w.sw.agent.connection_count(), 8);
    // One leaves: a new client gets in.
    w.peer.tcp(clients[0]).abort();
    w.run_until(1_000, |w| w.sw.agent.connection_count() == 7);
    let late = w.peer.connect(6653, 42000);
    assert!(w.run_until(3_000, |w| w.peer.tcp(late).state()
        == tcp::State::Established));
    w.run_until(100, |_| false);
    assert_eq!(w.sw.agent.connection_count(), 8);
}

#[test]
fn ovsdb_port_goes_to_its_handler() {
    let mut w = World::new(vec![]);
    let h = w.peer.connect(6640, 43000);
    assert!(w.run_until(2_000, |w| w.peer.tcp(h).state() == tcp::State::Established));
    w.peer.send(h, b"{\"method\":\"echo\"}");
    let mut got = Vec::new();
    assert!(w.run_until(2_000, |w| {
        got.extend(w.peer.recv_all(h));
        got.len() == 17
    }));
    assert_eq!(got, b"{\"method\":\"echo\"}");
    assert_eq!(w.sw.agent.connection_count(), 0);
    w.peer.tcp(h).close();
    assert!(w.run_until(3_000, |w| !w.sw.ovsdb.closed.is_empty()));
}

#[test]
fn answers_ping() {
    let mut w = World::new(vec![]);
    // Let the switch learn the peer's MAC (ARP from a TCP connect).
    let h = w.peer.connect(6653, 44000);
    assert!(w.run_until(2_000, |w| w.peer.tcp(h).state() == tcp::State::Established));
    w.step(1);
    w.peer.dev.rx.borrow_mut().clear();
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 1,
        data: b"ironflow",
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::from(PEER_IP),
        dst_addr: Ipv4Address::from(SWITCH_IP),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress(SWITCH_MAC),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]), &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[34..]), &caps);
    w.sw.dev.rx.borrow_mut().push_back(buf);
    w.now += 1;
    w.sw.poll(w.now);
    let frames: Vec<Vec<u8>> = w.peer.dev.rx.borrow_mut().drain(..).collect();
    let reply = frames.iter().find_map(|f| {
        let eth = EthernetFrame::new_checked(&f[..]).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Icmp {
            return None;
        }
        let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
        let r = Icmpv4Repr::parse(&icmp, &caps).ok()?;
        match r {
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => Some((ident, seq_no, data.to_vec())),
            _ => None,
        }
    });
    assert_eq!(reply, Some((0x1234, 1, b"ironflow".to_vec())));
}

#[test]
fn active_controller_connects_reconnects_and_backs_off() {
    let target = format!(
        "tcp:{}.{}.{}.{}:6653",
        PEER_IP[0], PEER_IP[1], PEER_IP[2], PEER_IP[3]
    );
    let mut w = World::new(vec![target]);
    let mut l = w.peer.listen(6653);
    assert!(w.run_until(2_000, |w| w.peer.tcp(l).state() == tcp::State::Established));
    let mut fr = Framer::default();
    w.peer.send(l, &hello13());
    w.peer
        .send(l, &Message::FeaturesRequest.encode(OFP13, 5).unwrap());
    let mut got = Vec::new();
    assert!(w.run_until(1_000, |w| {
        let b = w.peer.recv_all(l);
        got.extend(decode(&b, &mut fr));
        got.len() >= 2
    }));
    assert!(matches!(got[1], (5, Message::FeaturesReply(_))));
    assert!(w.sw.agent.controller_connected());
    assert!(w.sw.port.controller_connected(0));

    // The controller goes away (reset): the agent hears of it, the switch reconnects after
    // the shortest back-off (1 s).
    w.peer.tcp(l).abort();
    w.step(1); // the reset goes out
    w.peer.sockets.remove(l);
    assert!(w.run_until(500, |w| !w.sw.agent.controller_connected()));
    let gone_at = w.now;
    l = w.peer.listen(6653);
    assert!(w.run_until(3_000, |w| w.peer.tcp(l).state() == tcp::State::Established));
    let waited = w.now - gone_at;
    assert!(
        (900..=1_200).contains(&waited),
        "reconnected after {waited} ms"
    );
    w.peer.send(l, &hello13());
    assert!(w.run_until(500, |w| w.sw.agent.controller_connected()));

    // Nobody listens any more: attempts back off 1, 2, 4, 8, 8 s.
    w.peer.tcp(l).abort();
    w.step(1);
    w.peer.sockets.remove(l);
    let attempts0 = w.sw.port.stats().connect_attempts;
    let mut times = Vec::new();
    let mut last = attempts0;
    w.run_until(30_000, |w| {
        let a = w.sw.port.stats().connect_attempts;
        if a != last {
            last = a;
            times.push(w.now);
        }
        false
    });
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|p| (p[1] - p[0] + 50) / 1000)
        .collect();
    assert!(gaps.len() >= 4, "{times:?}");
    assert_eq!(&gaps[..4], &[1, 2, 4, 8], "{times:?}");
    assert!(gaps[4..].iter().all(|g| *g == 8), "{gaps:?}");
}

#[test]
fn controller_behind_a_cut_cable_times_out_by_echo() {
    let target = format!(
        "tcp:{}.{}.{}.{}:6653",
        PEER_IP[0], PEER_IP[1], PEER_IP[2], PEER_IP[3]
    );
    let mut w = World::new(vec![target]);
    let l = w.peer.listen(6653);
    assert!(w.run_until(2_000, |w| w.peer.tcp(l).state() == tcp::State::Established));
    w.peer.send(l, &hello13());
    assert!(w.run_until(500, |w| w.sw.agent.controller_connected()));
    // Silence: the cable is cut, echo probes go unanswered (5 s idle + 10 s timeout).
    w.sw.dev.up.set(false);
    assert!(w.run_until(20_000, |w| !w.sw.agent.controller_connected()));
    assert!(w.now >= 15_000);
}

/// Parses a DHCP client message out of an Ethernet frame: (message type, xid, requested ip).
fn dhcp_request(f: &[u8]) -> Option<(DhcpMessageType, u32)> {
    let eth = EthernetFrame::new_checked(f).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let d = DhcpPacket::new_checked(udp.payload()).ok()?;
    let r = DhcpRepr::parse(&d).ok()?;
    Some((r.message_type, r.transaction_id))
}

/// A DHCP server's answer (OFFER or ACK) for the switch.
fn dhcp_answer(kind: DhcpMessageType, xid: u32) -> Vec<u8> {
    let server = Ipv4Address::from(PEER_IP);
    let repr = DhcpRepr {
        message_type: kind,
        transaction_id: xid,
        secs: 0,
        client_hardware_address: EthernetAddress(SWITCH_MAC),
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: Ipv4Address::new(10, 0, 0, 42),
        server_ip: server,
        router: Some(server),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(server),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(3600),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let udp = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let dlen = repr.buffer_len();
    let ip = Ipv4Repr {
        src_addr: server,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: 8 + dlen,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; 14 + 20 + 8 + dlen];
    let caps = ChecksumCapabilities::default();
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]), &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut buf[34..]),
        &IpAddress::Ipv4(server),
        &IpAddress::Ipv4(Ipv4Address::BROADCAST),
        dlen,
        |p| {
            repr.emit(&mut DhcpPacket::new_unchecked(p)).unwrap();
        },
        &caps,
    );
    buf
}

#[test]
fn dhcp_when_no_address_is_given() {
    let (a, b) = cable();
    let mut dev = a;
    let mut port = MgmtPort::new(
        NetifConfig {
            mac: SWITCH_MAC,
            ip: None,
            random_seed: 3,
            ..NetifConfig::default()
        },
        &mut dev,
        0,
    );
    let mut sw = Switch::new(cable().0, vec![], 0);
    assert_eq!(port.ipv4_addr(), None);
    let mut now = 0;
    let mut configured = false;
    for _ in 0..200 {
        now += 10;
        let mut ctx = BridgeCtx {
            pipeline: &mut sw.pipeline,
            ports: &mut sw.ports,
            normal: &mut sw.normal,
            sink: &mut sw.sink,
            now_ms: now,
            cores: None,
        };
        let mut streams = sw.agent.streams(&mut ctx);
        port.poll(now, &mut dev, &mut streams, None);
        let frames: Vec<Vec<u8>> = b.rx.borrow_mut().drain(..).collect();
        for f in frames {
            match dhcp_request(&f) {
                Some((DhcpMessageType::Discover, xid)) => {
                    b.tx.borrow_mut()
                        .push_back(dhcp_answer(DhcpMessageType::Offer, xid))
                }
                Some((DhcpMessageType::Request, xid)) => {
                    b.tx.borrow_mut()
                        .push_back(dhcp_answer(DhcpMessageType::Ack, xid))
                }
                _ => {}
            }
        }
        if port.ipv4_addr() == Some([10, 0, 0, 42]) {
            configured = true;
            break;
        }
    }
    assert!(configured, "no DHCP lease");
}

#[test]
fn large_replies_cross_in_pieces() {
    use switch_core::action::Instructions;
    use switch_core::flow_match::Match as CoreMatch;
    use switch_core::pipeline::FlowMod as CoreFlowMod;
    let mut w = World::new(vec![]);
    for i in 0..3000u32 {
        let mut m = CoreMatch::new();
        m.set(Field::InPort, 1);
        m.set(Field::EthType, 0x0800);
        m.set(Field::Ipv4Src, 0x0a00_0000 + i as u128);
        let fm = CoreFlowMod::add(0, 5, m, Instructions::drop());
        w.sw.pipeline.flow_mod(&fm, 0).unwrap();
    }
    let h = w.peer.connect(6653, 45000);
    assert!(w.run_until(2_000, |w| w.peer.tcp(h).state() == tcp::State::Established));
    let mut b = hello13();
    b.extend(
        Message::MultipartRequest {
            flags: 0,
            body: mgmt::openflow::multipart::MultipartRequest::Flow(Default::default()),
        }
        .encode(OFP13, 9)
        .unwrap(),
    );
    b.extend(Message::BarrierRequest.encode(OFP13, 10).unwrap());
    w.peer.send(h, &b);
    let mut fr = Framer::default();
    let mut flows = 0;
    let mut barrier = false;
    assert!(w.run_until(10_000, |w| {
        let bytes = w.peer.recv_all(h);
        for (xid, m) in decode(&bytes, &mut fr) {
            match m {
                Message::MultipartReply {
                    body: mgmt::openflow::multipart::MultipartReply::Flow(f),
                    ..
                } => {
                    assert_eq!(xid, 9);
                    flows += f.len();
                }
                Message::BarrierReply => barrier = true,
                _ => {}
            }
        }
        barrier
    }));
    assert_eq!(flows, 3000);
    assert!(w.sw.port.stats().bytes_out > 200_000);
}

#[test]
fn a_client_that_never_reads_is_paused_then_dropped() {
    use switch_core::action::Instructions;
    use switch_core::flow_match::Match as CoreMatch;
    use switch_core::pipeline::FlowMod as CoreFlowMod;
    let mut w = World::new(vec![]);
    for i in 0..500u32 {
        let mut m = CoreMatch::new();
        m.set(Field::InPort, 1);
        m.set(Field::EthType, 0x0800);
        m.set(Field::Ipv4Src, 0x0a00_0000 + i as u128);
        w.sw.pipeline
            .flow_mod(&CoreFlowMod::add(0, 5, m, Instructions::drop()), 0)
            .unwrap();
    }
    // A client with a small receive window that asks for dump after dump and reads nothing.
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 1 << 20]),
    );
    let [a, b, c, d] = SWITCH_IP;
    s.connect(
        w.peer.iface.context(),
        (IpAddress::v4(a, b, c, d), 6653),
        46000,
    )
    .unwrap();
    let h = w.peer.sockets.add(s);
    assert!(w.run_until(2_000, |w| w.peer.tcp(h).state() == tcp::State::Established));
    let mut b = hello13();
    for x in 0..200 {
        b.extend(
            Message::MultipartRequest {
                flags: 0,
                body: mgmt::openflow::multipart::MultipartRequest::Flow(Default::default()),
            }
            .encode(OFP13, 100 + x)
            .unwrap(),
        );
    }
    w.peer.send(h, &b);
    let mut max_pending = 0;
    let closed = w.run_until(30_000, |w| {
        if w.sw.agent.connection_count() == 1 {
            let id = w.sw.port.stats().accepted as u32; // the only connection
            max_pending = max_pending.max(w.sw.agent.pending(id).len());
        }
        w.sw.agent.connection_count() == 0
    });
    // One dump is ~60 kB: reading stops once the queue passes 256 kB, so it stays near that.
    assert!(max_pending < 256 * 1024 + 100 * 1024, "{max_pending}");
    assert!(max_pending > 0);
    // The echo probe goes unanswered (it sits behind the replies): the switch gives up.
    assert!(closed, "still connected after 30 s");
}

#[test]
fn controllers_can_be_changed_at_run_time() {
    let target = format!(
        "tcp:{}.{}.{}.{}:6653",
        PEER_IP[0], PEER_IP[1], PEER_IP[2], PEER_IP[3]
    );
    let mut w = World::new(vec![]);
    let l = w.peer.listen(6653);
    w.run_until(2_000, |_| false);
    assert_eq!(w.peer.tcp(l).state(), tcp::State::Listen);
    let n =
        w.sw.port
            .set_controllers(&[target.clone(), "bogus".into()], w.now);
    assert_eq!(n, 1);
    assert!(w.run_until(2_000, |w| w.peer.tcp(l).state() == tcp::State::Established));
    w.peer.send(l, &hello13());
    assert!(w.run_until(500, |w| w.sw.agent.controller_connected()));
    let targets = w.sw.port.controller_targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(
        w.sw.agent.connections()[0].kind,
        ConnKind::Active {
            target: targets[0].0
        }
    );
    // Setting the same target again keeps the connection.
    w.sw.port
        .set_controllers(std::slice::from_ref(&target), w.now);
    w.run_until(200, |_| false);
    assert!(w.sw.agent.controller_connected());
    assert!(w.sw.port.controller_connected(0));
    // Removing it resets the connection.
    w.sw.port.set_controllers(&[], w.now);
    assert!(w.run_until(1_000, |w| !w.sw.agent.controller_connected()));
    assert_eq!(w.sw.agent.connection_count(), 0);
}

#[test]
fn packet_ins_reach_an_active_controller() {
    let target = format!(
        "tcp:{}.{}.{}.{}:6653",
        PEER_IP[0], PEER_IP[1], PEER_IP[2], PEER_IP[3]
    );
    let mut w = World::new(vec![target]);
    let l = w.peer.listen(6653);
    assert!(w.run_until(2_000, |w| w.peer.tcp(l).state() == tcp::State::Established));
    let mut b = hello13();
    b.extend(
        Message::FlowMod(FlowMod {
            priority: 0,
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: 0xffff_fffd,
                max_len: 0xffff,
            }])],
            ..Default::default()
        })
        .encode(OFP13, 2)
        .unwrap(),
    );
    b.extend(Message::BarrierRequest.encode(OFP13, 3).unwrap());
    w.peer.send(l, &b);
    let mut fr = Framer::default();
    let mut got = Vec::new();
    assert!(w.run_until(1_000, |w| {
        got.extend(decode(&w.peer.recv_all(l), &mut fr));
        got.iter().any(|(_, m)| *m == Message::BarrierReply)
    }));
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 9, 9, 0x88, 0xb5]);
    frame.resize(300, 0x5a);
    w.sw.forward(1, &frame, w.now);
    got.clear();
    assert!(w.run_until(1_000, |w| {
        got.extend(decode(&w.peer.recv_all(l), &mut fr));
        !got.is_empty()
    }));
    let (_, Message::PacketIn(pi)) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(pi.data, frame);
    assert_eq!(pi.reason, 0); // the table-miss flow: NO_MATCH
    assert_eq!(pi.in_port(), 1);
}
