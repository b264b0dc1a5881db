//! Data-port wiring.
//!
//! - `Dgram` (no root needed): each port is `-netdev dgram` between a QEMU UDP socket and one this
//!   library binds on 127.0.0.1; one Ethernet frame per datagram, so a test sends and captures raw
//!   frames through [`DgramPort`].
//! - `Netns` (root): each port N is a tap device that QEMU opens in the root namespace; once QEMU has
//!   attached to it (the tap's carrier goes up) the tap is moved into network namespace `<prefix>hN`
//!   and renamed `eth0` there, with `10.0.0.N/24`. A tap keeps working after the move (QEMU's file
//!   descriptor stays attached), so the host in the namespace talks straight to the guest's port, with
//!   no bridge or veth in between.
//!
//! Multiqueue (`VmBuilder::data_port_queues(N)`, N > 1): each data port's device gets
//! `mq=on,vectors=2N+2` (N receive/transmit pairs + the control queue + config, one MSI-X vector
//! each, as QEMU's own default for N pairs) and its netdev `queues=N`. Only the tap backend
//! (and vhost-user) has several queues: QEMU's `dgram`/`socket` netdevs carry one, so Dgram
//! wiring refuses N > 1. The tap is created `multi_queue` (QEMU opens it N times with
//! IFF_MULTI_QUEUE); the host kernel's tun driver then spreads the frames the host sends into
//! the port over the N queues by flow hash (its automatic steering), so each flow stays on one
//! guest receive queue.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How data ports are wired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortNet {
    /// UDP socket pairs on 127.0.0.1 (see [`DgramPort`]).
    Dgram,
    /// Taps moved into network namespaces `<prefix>h1..`, whose `eth0` has `10.0.0.N/24`. Needs root.
    /// The prefix keeps parallel VMs apart; the demo uses an empty prefix (`h1`, `h2`, `h3`).
    Netns { prefix: String },
}

impl PortNet {
    /// Netns wiring with a prefix unique to this process and call (e.g. `i3f2a`), so parallel tests
    /// do not collide. Interface names stay within Linux's 15 characters.
    pub fn netns_unique() -> PortNet {
        let n = (std::process::id() as u64) * 64 + crate::unique() % 64;
        PortNet::Netns {
            prefix: format!("i{}", base36(n % 36u64.pow(5))),
        }
    }
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// The host side of a dgram data port: send a frame into the guest's port, receive what it sends out.
#[derive(Debug)]
pub struct DgramPort {
    socket: UdpSocket,
    qemu_addr: SocketAddr,
}

impl DgramPort {
    /// Sends one Ethernet frame (without FCS) into the guest's port.
    pub fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        self.socket.send(frame).map(|_| ())
    }

    /// Receives one frame the guest sent out of this port, or None after `timeout`.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 65536];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The socket itself (e.g. to clone it for a receiver thread).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// QEMU's end of the pair.
    pub fn qemu_addr(&self) -> SocketAddr {
        self.qemu_addr
    }
}

#[derive(Debug)]
pub(crate) struct NetnsPort {
    pub(crate) netns: String,
    pub(crate) tap: String,
    pub(crate) addr: String,
}

pub(crate) struct PortSetup {
    pub(crate) args: Vec<String>,
    pub(crate) dgram: Vec<DgramPort>,
    pub(crate) netns: Vec<NetnsPort>,
}

pub(crate) fn free_tcp_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot find a free TCP port: {e}")))
}

fn free_udp_port() -> Result<u16> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot find a free UDP port: {e}")))
}

/// MAC of data port `n` (1-based): `52:54:00:00:00:NN`.
pub fn data_port_mac(n: usize) -> String {
    format!("52:54:00:00:00:{:02x}", n & 0xff)
}

/// The `-device` argument of data port `n` (1-based) at PCI slot `slot`, with `queues` queue
/// pairs (multiqueue when more than 1).
pub(crate) fn data_port_device(id: &str, n: usize, slot: usize, queues: u16) -> String {
    let mut device = format!(
        "virtio-net-pci,netdev={id},mac={},addr={slot:#x}",
        data_port_mac(n)
    );
    if queues > 1 {
        device += &format!(",mq=on,vectors={}", 2 * u32::from(queues) + 2);
    }
    device
}

/// Builds the QEMU arguments for `count` data ports at PCI slots after `first_slot`, each with
/// `queues` queue pairs, creating the sockets (dgram) or the taps and namespaces (netns).
pub(crate) fn setup_ports(
    count: usize,
    net: &PortNet,
    first_slot: u8,
    queues: u16,
) -> Result<PortSetup> {
    let mut setup = PortSetup {
        args: Vec::new(),
        dgram: Vec::new(),
        netns: Vec::new(),
    };
    if count > 0x1d - first_slot as usize {
        return Err(Error::new(format!("too many data ports: {count}")));
    }
    let queues = queues.max(1);
    if queues > 1 && count > 0 && *net == PortNet::Dgram {
        return Err(Error::new(format!(
            "{queues} queues per data port need tap wiring (PortNet::Netns, as root): \
             QEMU's dgram netdev has a single queue"
        )));
    }
    for n in 1..=count {
        let id = format!("port{n}");
        let netdev = match net {
            PortNet::Dgram => {
                let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(|e| Error::new(format!("cannot bind a UDP socket: {e}")))?;
                let mine = socket
                    .local_addr()
                    .map_err(|e| Error::new(e.to_string()))?
                    .port();
                let theirs = free_udp_port()?;
                let qemu_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, theirs));
                socket
                    .connect(qemu_addr)
                    .map_err(|e| Error::new(format!("cannot connect a UDP socket: {e}")))?;
                setup.dgram.push(DgramPort { socket, qemu_addr });
                format!(
                    "dgram,id={id},local.type=inet,local.host=127.0.0.1,local.port={theirs},\
                     remote.type=inet,remote.host=127.0.0.1,remote.port={mine}"
                )
            }
            PortNet::Netns { prefix } => {
                if !crate::is_root() {
                    teardown_netns(&setup.netns);
                    return Err(Error::new(
                        "netns data ports need root (tap devices, network namespaces); \
                         use PortNet::Dgram otherwise",
                    ));
                }
                let port = NetnsPort {
                    netns: format!("{prefix}h{n}"),
                    tap: format!("{prefix}if{n}"),
                    addr: format!("10.0.0.{n}/24"),
                };
                // Leftovers of a run that was killed before it could clean up.
                teardown_netns(std::slice::from_ref(&port));
                let mut tuntap = vec!["tuntap", "add", "dev", &port.tap, "mode", "tap"];
                if queues > 1 {
                    tuntap.push("multi_queue");
                }
                let r = ip(&["netns", "add", &port.netns])
                    .and_then(|_| ip(&tuntap))
                    .and_then(|_| ip(&["link", "set", &port.tap, "up"]));
                setup.netns.push(port);
                if let Err(e) = r {
                    teardown_netns(&setup.netns);
                    return Err(e);
                }
                let tap = &setup.netns[n - 1].tap;
                let mut netdev = format!("tap,id={id},ifname={tap},script=no,downscript=no");
                if queues > 1 {
                    netdev += &format!(",queues={queues}");
                }
                netdev
            }
        };
        setup.args.push("-netdev".into());
        setup.args.push(netdev);
        setup.args.push("-device".into());
        setup
            .args
            .push(data_port_device(&id, n, first_slot as usize + n, queues));
    }
    Ok(setup)
}

/// Runs `ip ARGS`; an error carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(format!("cannot run ip (package iproute2): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// After QEMU started: waits until it has attached to each tap, then moves the taps into their
/// namespaces as `eth0` with their addresses.
pub(crate) fn wire_netns(ports: &[NetnsPort], child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in ports {
        let carrier = format!("/sys/class/net/{}/carrier", p.tap);
        loop {
            if std::fs::read_to_string(&carrier).is_ok_and(|s| s.trim() == "1") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::new(format!(
                    "QEMU exited ({status}) before attaching to tap {}",
                    p.tap
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "QEMU did not attach to tap {} within 20 s",
                    p.tap
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        ip(&["link", "set", &p.tap, "netns", &p.netns])?;
        ip(&["-n", &p.netns, "link", "set", &p.tap, "name", "eth0"])?;
        ip(&["-n", &p.netns, "addr", "add", &p.addr, "dev", "eth0"])?;
        ip(&["-n", &p.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &p.netns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Deletes the taps (wherever they are) and the namespaces; ignores what is already gone.
pub(crate) fn teardown_netns(ports: &[NetnsPort]) {
    for p in ports {
        let _ = ip(&["link", "del", &p.tap]);
        if std::path::Path::new("/run/netns").join(&p.netns).exists() {
            let _ = ip(&["-n", &p.netns, "link", "del", "eth0"]);
            let _ = ip(&["netns", "del", &p.netns]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_prefix_fits_interface_names() {
        let PortNet::Netns { prefix } = PortNet::netns_unique() else {
            panic!()
        };
        assert!(format!("{prefix}if29").len() <= 15, "{prefix}");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(data_port_mac(3), "52:54:00:00:00:03");
    }

    #[test]
    fn multiqueue_device_and_netdev_arguments() {
        assert_eq!(
            data_port_device("port1", 1, 4, 1),
            "virtio-net-pci,netdev=port1,mac=52:54:00:00:00:01,addr=0x4"
        );
        assert_eq!(
            data_port_device("port2", 2, 5, 4),
            "virtio-net-pci,netdev=port2,mac=52:54:00:00:00:02,addr=0x5,mq=on,vectors=10"
        );
        let e = setup_ports(1, &PortNet::Dgram, 3, 2).err().unwrap();
        assert!(e.to_string().contains("tap wiring"), "{e}");
        let one = setup_ports(1, &PortNet::Dgram, 3, 1).unwrap();
        assert_eq!(one.args[3], data_port_device("port1", 1, 4, 1));
        assert!(!one.args[1].contains("queues="));
    }
}
