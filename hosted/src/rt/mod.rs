//! The runner's own port backends (AF_PACKET data ports, a tap management port, host memory),
//! used until the `hosted` library's backends (AF_XDP with AF_PACKET fallback) take over.

pub mod dma;
pub mod packet;
pub mod sys;
pub mod tap;

use std::os::fd::RawFd;
use std::rc::Rc;

use drivers::dma::PacketPool;
use drivers::nic::Nic;

/// Which kind of socket drives a data port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// AF_XDP where it works, else AF_PACKET.
    Auto,
    /// AF_XDP only (an error where it cannot be used).
    Xdp,
    /// AF_PACKET.
    Packet,
}

/// Opens data port `name` as `kind` says; returns it and its descriptor (for idle waits).
pub fn open_port(
    name: &str,
    kind: PortKind,
    pool: &Rc<PacketPool>,
) -> Result<(Box<dyn Nic>, RawFd), String> {
    match kind {
        PortKind::Xdp => Err(String::from(
            "AF_XDP ports are not available in this build; use --port-kind packet (or auto)",
        )),
        PortKind::Auto | PortKind::Packet => {
            let p = packet::PacketPort::open(name, pool.clone())
                .map_err(|e| format!("AF_PACKET: {e}"))?;
            log::info!("port {name}: AF_PACKET (recvmmsg/sendmmsg)");
            let fd = p.raw_fd();
            Ok((Box::new(p), fd))
        }
    }
}
