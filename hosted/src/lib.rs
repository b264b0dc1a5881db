//! Host (Linux) platform pieces for the hosted runner: NIC backends and host memory.
//!
//! - [`dma`]: host memory as the drivers' DMA memory, and [`dma::host_pool`], the packet pool
//!   whose region doubles as an AF_XDP UMEM;
//! - [`afxdp::AfXdpPort`]: a data port over an AF_XDP socket (zero-copy where the driver
//!   allows, copy mode otherwise) with its own hand-assembled XDP program;
//! - [`afpacket::AfPacketPort`]: a data port over an AF_PACKET socket (the fallback);
//! - [`tap::TapPort`]: the management port over a tap device;
//! - [`open_port`]: a data port of the requested [`PortKind`], AF_XDP first for `Auto`.

pub mod afpacket;
pub mod afxdp;
pub mod dma;
mod sys;
pub mod tap;

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use drivers::dma::PacketPool;
use drivers::nic::Nic;

/// Which socket type drives a data port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PortKind {
    /// AF_XDP if it can be set up on the interface, else AF_PACKET (logged).
    #[default]
    Auto,
    /// AF_XDP only (an error if it cannot be set up).
    Xdp,
    /// AF_PACKET only.
    Packet,
}

/// Opens data port `ifname` as `kind`, receiving into buffers from `pool` (use
/// [`dma::host_pool`]: AF_XDP needs its layout). Returns the port and its file descriptor
/// (readable, `poll(2)` `POLLIN`, when frames wait: for idle waits). Logs which backend (and
/// AF_XDP mode) it got, and for `Auto` why AF_XDP was not used.
pub fn open_port(
    ifname: &str,
    kind: PortKind,
    pool: &Rc<PacketPool>,
) -> Result<(Box<dyn Nic>, RawFd), String> {
    fn packet(ifname: &str, pool: &Rc<PacketPool>) -> std::io::Result<(Box<dyn Nic>, RawFd)> {
        let p = afpacket::AfPacketPort::open(ifname, pool.clone())?;
        let fd = p.as_raw_fd();
        Ok((Box::new(p), fd))
    }
    fn xdp(ifname: &str, pool: &Rc<PacketPool>) -> std::io::Result<(Box<dyn Nic>, RawFd)> {
        let p = afxdp::AfXdpPort::open(ifname, pool.clone())?;
        let fd = p.as_raw_fd();
        Ok((Box::new(p), fd))
    }
    match kind {
        PortKind::Packet => packet(ifname, pool).map_err(|e| format!("AF_PACKET: {e}")),
        PortKind::Xdp => xdp(ifname, pool).map_err(|e| format!("AF_XDP: {e}")),
        PortKind::Auto => match xdp(ifname, pool) {
            Ok(p) => Ok(p),
            Err(e) => {
                log::warn!("{ifname}: AF_XDP unavailable ({e}); falling back to AF_PACKET");
                packet(ifname, pool).map_err(|e2| format!("AF_XDP: {e}; AF_PACKET: {e2}"))
            }
        },
    }
}
