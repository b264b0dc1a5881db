//! The management port: a smoltcp `Interface` over any `phy::Device` (the kernel's management
//! NIC, an in-memory pipe in the tests), with a static address or DHCP, answering ping, and the
//! TCP connections of the management services: the OpenFlow listener (`ptcp:6653`), the OVSDB
//! listener (`ptcp:6640`, handed to a [`StreamHandler`] hook), and the active connections to the
//! controllers (`tcp:IP:PORT`) with Open vSwitch's reconnect back-off (1 s doubling to 8 s).
//!
//! [`MgmtPort::poll`] does a bounded amount of work per call (a few ingress packets, a few
//! egress passes, a read budget per connection), so the forwarding loop that calls it every N
//! iterations is never starved. Bytes move between each TCP socket and its service's
//! [`StreamHandler`]; the handler keeps the send queue (and bounds it), the socket's transmit
//! buffer takes what fits.

pub mod stream;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::cmdline::Ipv4Cidr as CmdlineCidr;
pub use stream::{ConnKind, StreamHandler};

/// The OpenFlow port (IANA).
pub const OPENFLOW_PORT: u16 = 6653;
/// The OVSDB port (IANA).
pub const OVSDB_PORT: u16 = 6640;

/// A controller target (`tcp:IP[:PORT]`, port 6653 by default as in Open vSwitch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: [u8; 4],
    pub port: u16,
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        let rest = s.strip_prefix("tcp:")?;
        let (ip, port) = match rest.split_once(':') {
            Some((ip, port)) => (ip, port.parse().ok().filter(|p| *p != 0)?),
            None => (rest, OPENFLOW_PORT),
        };
        let mut addr = [0u8; 4];
        let mut parts = ip.split('.');
        for o in addr.iter_mut() {
            *o = parts.next()?.parse().ok()?;
        }
        if parts.next().is_some() || addr == [0; 4] {
            return None;
        }
        Some(Target { addr, port })
    }
}

/// Management port settings.
#[derive(Clone, Debug)]
pub struct NetifConfig {
    pub mac: [u8; 6],
    /// Static address; `None` = DHCP.
    pub ip: Option<CmdlineCidr>,
    pub gateway: Option<[u8; 4]>,
    /// Active controller targets (`tcp:IP:PORT`); unparseable ones are logged and skipped.
    pub controllers: Vec<String>,
    /// OpenFlow listening port (`None`: no passive OpenFlow).
    pub openflow_port: Option<u16>,
    /// OVSDB listening port (`None`: none).
    pub ovsdb_port: Option<u16>,
    /// Concurrent connections accepted per listening port.
    pub max_passive: usize,
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// Ingress packets handled per poll.
    pub ingress_budget: usize,
    /// Egress passes per poll (each sends at most one segment per socket).
    pub egress_budget: usize,
    /// Bytes read per connection per poll.
    pub read_budget: usize,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// An active connection attempt that does not complete in this time is dropped.
    pub connect_timeout_ms: u64,
    /// A connection that does not finish closing in this time is aborted.
    pub close_timeout_ms: u64,
    /// Seed for TCP initial sequence numbers and DHCP transaction ids (vary it per boot).
    pub random_seed: u64,
}

impl Default for NetifConfig {
    fn default() -> Self {
        NetifConfig {
            mac: [0x02, 0, 0, 0, 0, 1],
            ip: None,
            gateway: None,
            controllers: Vec::new(),
            openflow_port: Some(OPENFLOW_PORT),
            ovsdb_port: Some(OVSDB_PORT),
            max_passive: 8,
            rx_buffer: 16 * 1024,
            tx_buffer: 32 * 1024,
            ingress_budget: 32,
            egress_budget: 16,
            read_budget: 16 * 1024,
            backoff_min_ms: 1_000,
            backoff_max_ms: 8_000,
            connect_timeout_ms: 5_000,
            close_timeout_ms: 10_000,
            random_seed: 0,
        }
    }
}

impl NetifConfig {
    /// The management port of a machine booted with `settings`: its address (DHCP without
    /// one), gateway and controllers; `mac` is the management NIC's, `seed` should differ per
    /// boot (a timestamp counter) so TCP sequence numbers do.
    pub fn from_settings(
        settings: &crate::cmdline::BootSettings,
        mac: [u8; 6],
        seed: u64,
    ) -> NetifConfig {
        NetifConfig {
            mac,
            ip: settings.mgmt_ip,
            gateway: settings.mgmt_gw,
            controllers: settings.controllers.clone(),
            random_seed: seed,
            ..NetifConfig::default()
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifStats {
    pub accepted: u64,
    /// Connections the service refused (too many).
    pub refused: u64,
    pub connect_attempts: u64,
    pub connect_failures: u64,
    pub closed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    OpenFlow,
    Ovsdb,
}

#[derive(Debug)]
struct TcpConn {
    handle: SocketHandle,
    service: Service,
    kind: ConnKind,
    /// The service's handle once the connection is established and accepted.
    token: Option<u32>,
    established_ms: Option<u64>,
    /// When the service asked for the close (it waits for the pending bytes to go out).
    close_wanted_since: Option<u64>,
    closing_since: Option<u64>,
    started_ms: u64,
}

#[derive(Debug)]
struct Listener {
    port: u16,
    service: Service,
    /// The socket currently listening.
    handle: Option<SocketHandle>,
}

#[derive(Debug)]
struct ActiveTarget {
    /// Stable id (`ConnKind::Active::target`), kept across `set_controllers`.
    id: usize,
    target: Target,
    /// A connection (attempt) exists.
    busy: bool,
    next_attempt_ms: u64,
    backoff_ms: u64,
}

/// The management port.
pub struct MgmtPort {
    iface: Interface,
    sockets: SocketSet<'static>,
    config: NetifConfig,
    listeners: Vec<Listener>,
    conns: Vec<TcpConn>,
    actives: Vec<ActiveTarget>,
    next_target_id: usize,
    dhcp: Option<SocketHandle>,
    next_local_port: u16,
    stats: NetifStats,
}

fn ts(now_ms: u64) -> Instant {
    Instant::from_millis(now_ms.min(i64::MAX as u64) as i64)
}

impl MgmtPort {
    /// Brings the interface up on `device` at time `now_ms`.
    pub fn new<D: Device + ?Sized>(config: NetifConfig, device: &mut D, now_ms: u64) -> MgmtPort {
        let mut ic = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        ic.random_seed = config.random_seed;
        let mut iface = Interface::new(ic, device, ts(now_ms));
        let mut sockets = SocketSet::new(vec![]);
        let mut dhcp = None;
        match config.ip {
            Some(c) => {
                let [a, b, cc, d] = c.addr;
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, cc, d), c.prefix.min(32)));
                });
                if let Some([a, b, c, d]) = config.gateway {
                    let _ = iface
                        .routes_mut()
                        .add_default_ipv4_route(Ipv4Address::new(a, b, c, d));
                }
            }
            None => {
                dhcp = Some(sockets.add(dhcpv4::Socket::new()));
            }
        }
        let mut listeners = Vec::new();
        if let Some(port) = config.openflow_port {
            listeners.push(Listener {
                port,
                service: Service::OpenFlow,
                handle: None,
            });
        }
        if let Some(port) = config.ovsdb_port {
            listeners.push(Listener {
                port,
                service: Service::Ovsdb,
                handle: None,
            });
        }
        let next_local_port = 49152 + (config.random_seed % 16384) as u16;
        let mut port = MgmtPort {
            iface,
            sockets,
            config,
            listeners,
            conns: Vec::new(),
            actives: Vec::new(),
            next_target_id: 0,
            dhcp,
            next_local_port,
            stats: NetifStats::default(),
        };
        let controllers = port.config.controllers.clone();
        port.set_controllers(&controllers, now_ms);
        port.ensure_listeners(now_ms);
        port
    }

    /// Sets the controller targets (`tcp:IP[:PORT]`; others are logged and skipped). Targets
    /// that stay keep their connection and back-off; the connections of removed ones are
    /// reset. Returns how many targets are in use.
    pub fn set_controllers(&mut self, targets: &[String], now_ms: u64) -> usize {
        let mut wanted = Vec::new();
        for s in targets {
            match Target::parse(s) {
                Some(t) if !wanted.contains(&t) => wanted.push(t),
                Some(_) => {}
                None => log::warn!("controller {s}: not tcp:IP[:PORT], ignored"),
            }
        }
        let mut kept = Vec::new();
        for a in core::mem::take(&mut self.actives) {
            if wanted.contains(&a.target) {
                kept.push(a);
            } else {
                for c in self
                    .conns
                    .iter()
                    .filter(|c| c.kind == ConnKind::Active { target: a.id })
                {
                    self.sockets.get_mut::<tcp::Socket>(c.handle).abort();
                }
            }
        }
        for t in wanted {
            if !kept.iter().any(|a| a.target == t) {
                kept.push(ActiveTarget {
                    id: self.next_target_id,
                    target: t,
                    busy: false,
                    next_attempt_ms: now_ms,
                    backoff_ms: self.config.backoff_min_ms,
                });
                self.next_target_id += 1;
            }
        }
        self.config.controllers = targets.to_vec();
        self.actives = kept;
        self.actives.len()
    }

    pub fn stats(&self) -> NetifStats {
        self.stats
    }

    /// The interface's IPv4 address, once it has one.
    pub fn ipv4_addr(&self) -> Option<[u8; 4]> {
        self.iface.ipv4_addr().map(|a| a.octets())
    }

    /// Open TCP connections handed to a service (both kinds, both services).
    pub fn connection_count(&self) -> usize {
        self.conns.iter().filter(|c| c.token.is_some()).count()
    }

    /// The controller targets in use with their ids (`ConnKind::Active::target`, as the
    /// agent's `connections` reports them).
    pub fn controller_targets(&self) -> Vec<(usize, Target)> {
        self.actives.iter().map(|a| (a.id, a.target)).collect()
    }

    /// The kind of the connections a controller target as OVSDB names it makes: a `tcp:`
    /// target in use (its id), or `ptcp:PORT[:IP]` (the connections accepted on PORT).
    pub fn conn_kind_of(&self, target: &str) -> Option<ConnKind> {
        if let Some(rest) = target.strip_prefix("ptcp:") {
            let port = rest.split(':').next()?.parse().ok()?;
            return Some(ConnKind::Passive { local_port: port });
        }
        let t = Target::parse(target)?;
        let a = self.actives.iter().find(|a| a.target == t)?;
        Some(ConnKind::Active { target: a.id })
    }

    /// Whether controller target `i` (in the order given) has an established connection.
    pub fn controller_connected(&self, i: usize) -> bool {
        let Some(id) = self.actives.get(i).map(|a| a.id) else {
            return false;
        };
        self.conns.iter().any(|c| {
            c.kind == ConnKind::Active { target: id }
                && c.token.is_some()
                && c.closing_since.is_none()
        })
    }

    /// One bounded round of management-port work at time `now_ms`: up to `ingress_budget`
    /// received frames, DHCP, connection setup and teardown, moving bytes between sockets and
    /// the services, and up to `egress_budget` transmit passes. `ovsdb` receives the
    /// connections of the OVSDB port (without it they are closed at once).
    pub fn poll<D: Device + ?Sized>(
        &mut self,
        now_ms: u64,
        device: &mut D,
        openflow: &mut dyn StreamHandler,
        mut ovsdb: Option<&mut dyn StreamHandler>,
    ) {
        let t = ts(now_ms);
        self.iface.poll_maintenance(t);
        for _ in 0..self.config.ingress_budget {
            match self.iface.poll_ingress_single(t, device, &mut self.sockets) {
                smoltcp::iface::PollIngressSingleResult::None => break,
                smoltcp::iface::PollIngressSingleResult::PacketProcessed => {}
                smoltcp::iface::PollIngressSingleResult::SocketStateChanged => {
                    // A listener that took a SYN is replaced at once, so that a second
                    // client in the same burst finds one too.
                    self.ensure_listeners(now_ms);
                }
            }
        }
        self.run_dhcp();
        self.start_connections(now_ms);
        self.service(now_ms, openflow, &mut ovsdb, true);
        self.ensure_listeners(now_ms);
        for _ in 0..self.config.egress_budget {
            if self.iface.poll_egress(t, device, &mut self.sockets)
                == smoltcp::iface::PollResult::None
            {
                break;
            }
            // Refill the transmit buffers that just drained (no reading: that budget is spent).
            self.service(now_ms, openflow, &mut ovsdb, false);
        }
    }

    /// The management round for an OpenFlow agent and its bridge: the agent's timers and
    /// asynchronous messages, then [`MgmtPort::poll`] with the agent as the OpenFlow service.
    pub fn poll_with_agent<D: Device + ?Sized>(
        &mut self,
        now_ms: u64,
        device: &mut D,
        agent: &mut crate::agent::OfAgent,
        ctx: &mut crate::agent::BridgeCtx<'_>,
        ovsdb: Option<&mut dyn StreamHandler>,
    ) {
        ctx.now_ms = now_ms;
        agent.poll(ctx);
        let mut streams = agent.streams(ctx);
        self.poll(now_ms, device, &mut streams, ovsdb);
    }

    fn new_socket(&self) -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0u8; self.config.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0u8; self.config.tx_buffer]);
        let mut s = tcp::Socket::new(rx, tx);
        // OpenFlow messages are small and latency matters (barriers, echo).
        s.set_nagle_enabled(false);
        // No delayed ACKs: smoltcp's default (10 ms) also delays the window updates that let a
        // bulk sender (`ovs-ofctl add-flows`) go on once the agent has read (measured on the
        // hosted runner: 100k flows in 6.7 s with the delay, 4.3 s without).
        s.set_ack_delay(None);
        s
    }

    /// Keeps one socket listening on each port while it has room for another connection.
    fn ensure_listeners(&mut self, now_ms: u64) {
        for li in 0..self.listeners.len() {
            let port = self.listeners[li].port;
            let service = self.listeners[li].service;
            if let Some(h) = self.listeners[li].handle {
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if s.is_listening() {
                    continue;
                }
                // It took a connection: it becomes one.
                self.listeners[li].handle = None;
                self.conns.push(TcpConn {
                    handle: h,
                    service,
                    kind: ConnKind::Passive { local_port: port },
                    token: None,
                    established_ms: None,
                    close_wanted_since: None,
                    closing_since: None,
                    started_ms: now_ms,
                });
            }
            let open = self
                .conns
                .iter()
                .filter(|c| c.kind == ConnKind::Passive { local_port: port })
                .count();
            if open >= self.config.max_passive {
                continue;
            }
            let mut s = self.new_socket();
            if s.listen(port).is_ok() {
                self.listeners[li].handle = Some(self.sockets.add(s));
            }
        }
    }

    fn run_dhcp(&mut self) {
        let Some(h) = self.dhcp else {
            return;
        };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some((address, router)) => {
                log::info!("mgmt: DHCP address {address}");
                self.set_ipv4(Some(address));
                self.iface.routes_mut().remove_default_ipv4_route();
                if let Some(r) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                }
            }
            None => {
                log::warn!("mgmt: DHCP lease lost");
                self.set_ipv4(None);
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
    }

    fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(c) = cidr {
                let _ = addrs.push(IpCidr::Ipv4(c));
            }
        });
    }

    /// Starts the controller connections that are due.
    fn start_connections(&mut self, now_ms: u64) {
        if self.iface.ipv4_addr().is_none() {
            return;
        }
        for i in 0..self.actives.len() {
            let a = &self.actives[i];
            if a.busy || now_ms < a.next_attempt_ms {
                continue;
            }
            let id = a.id;
            let [w, x, y, z] = a.target.addr;
            let remote = (IpAddress::v4(w, x, y, z), a.target.port);
            let local = self.next_local_port;
            self.next_local_port = if local == u16::MAX { 49152 } else { local + 1 };
            let mut s = self.new_socket();
            s.set_timeout(Some(Duration::from_millis(self.config.connect_timeout_ms)));
            self.stats.connect_attempts += 1;
            match s.connect(self.iface.context(), remote, local) {
                Ok(()) => {
                    let handle = self.sockets.add(s);
                    self.conns.push(TcpConn {
                        handle,
                        service: Service::OpenFlow,
                        kind: ConnKind::Active { target: id },
                        token: None,
                        established_ms: None,
                        close_wanted_since: None,
                        closing_since: None,
                        started_ms: now_ms,
                    });
                    self.actives[i].busy = true;
                }
                Err(e) => {
                    log::debug!("mgmt: connect to controller {i}: {e:?}");
                    self.connect_failed(id, now_ms);
                }
            }
        }
    }

    /// Schedules the next attempt after a failed one, doubling the back-off.
    fn connect_failed(&mut self, id: usize, now_ms: u64) {
        self.stats.connect_failures += 1;
        let Some(a) = self.actives.iter_mut().find(|a| a.id == id) else {
            return; // the target was removed
        };
        a.busy = false;
        a.next_attempt_ms = now_ms + a.backoff_ms;
        a.backoff_ms = (a.backoff_ms * 2).min(self.config.backoff_max_ms);
    }

    /// Moves bytes and runs each connection's life cycle.
    fn service(
        &mut self,
        now_ms: u64,
        openflow: &mut dyn StreamHandler,
        ovsdb: &mut Option<&mut dyn StreamHandler>,
        read: bool,
    ) {
        let mut i = 0;
        while i < self.conns.len() {
            let keep = match (self.conns[i].service, ovsdb.as_mut()) {
                (Service::OpenFlow, _) => self.service_one(i, now_ms, Some(&mut *openflow), read),
                (Service::Ovsdb, Some(h)) => self.service_one(i, now_ms, Some(&mut **h), read),
                (Service::Ovsdb, None) => self.service_one(i, now_ms, None, read),
            };
            if keep {
                i += 1;
            } else {
                let c = self.conns.swap_remove(i);
                self.sockets.remove(c.handle);
                self.stats.closed += 1;
                if let ConnKind::Active { target } = c.kind {
                    match c.established_ms {
                        // It was up: start over from the shortest back-off.
                        Some(_) => {
                            let min = self.config.backoff_min_ms;
                            if let Some(a) = self.actives.iter_mut().find(|a| a.id == target) {
                                a.busy = false;
                                a.backoff_ms = min;
                                a.next_attempt_ms = now_ms + min;
                            }
                        }
                        None => self.connect_failed(target, now_ms),
                    }
                }
            }
        }
    }

    /// One connection's round; false when it is gone and must be removed.
    fn service_one(
        &mut self,
        i: usize,
        now_ms: u64,
        handler: Option<&mut dyn StreamHandler>,
        read: bool,
    ) -> bool {
        let c = &mut self.conns[i];
        let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
        let Some(h) = handler else {
            s.abort();
            return s.is_open();
        };
        let Some(tok) = c.token else {
            match s.state() {
                tcp::State::Established => {
                    s.set_timeout(None);
                    c.established_ms = Some(now_ms);
                    match h.open(c.kind, now_ms) {
                        Some(t) => {
                            c.token = Some(t);
                            if matches!(c.kind, ConnKind::Passive { .. }) {
                                self.stats.accepted += 1;
                            }
                        }
                        None => {
                            self.stats.refused += 1;
                            s.abort();
                            return true;
                        }
                    }
                }
                tcp::State::Closed | tcp::State::TimeWait => return false,
                _ => {
                    if now_ms.saturating_sub(c.started_ms) > self.config.connect_timeout_ms {
                        s.abort();
                    }
                    return true;
                }
            }
            return true;
        };
        if !s.is_open() {
            h.closed(tok, now_ms);
            return false;
        }
        // Read what the service takes.
        let mut budget = if read { self.config.read_budget } else { 0 };
        while budget > 0 && s.can_recv() && h.can_receive(tok) {
            let r = s.recv(|data| {
                let n = data.len().min(budget);
                h.receive(tok, &data[..n], now_ms);
                (n, n)
            });
            match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    budget -= n;
                    self.stats.bytes_in += n as u64;
                }
            }
        }
        // Write what fits.
        if s.can_send() {
            let n = s.send_slice(h.pending(tok)).unwrap_or(0);
            if n > 0 {
                h.consume(tok, n);
                self.stats.bytes_out += n as u64;
            }
        }
        let flushed = h.pending(tok).is_empty();
        if c.closing_since.is_none() {
            let peer_done = !s.may_recv() && s.state() == tcp::State::CloseWait;
            let wants_close = h.wants_close(tok);
            if wants_close && c.close_wanted_since.is_none() {
                c.close_wanted_since = Some(now_ms);
            }
            if (wants_close && flushed) || peer_done {
                s.close();
                c.closing_since = Some(now_ms);
            } else if c
                .close_wanted_since
                .is_some_and(|t| now_ms.saturating_sub(t) > self.config.close_timeout_ms)
            {
                // The peer does not read what is left: give up on it.
                s.abort();
            }
        } else if c
            .closing_since
            .is_some_and(|t| now_ms.saturating_sub(t) > self.config.close_timeout_ms)
        {
            s.abort();
        }
        if !s.is_open() {
            h.closed(tok, now_ms);
            return false;
        }
        true
    }
}
