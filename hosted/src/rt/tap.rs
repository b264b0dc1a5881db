//! The management port on a tap device: the appliance's own smoltcp stack (the same code as in
//! the image) sends and receives Ethernet frames through `/dev/net/tun`. The host end of the
//! tap is the "wire"; give it an address on the management subnet.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;

use drivers::dma::{PacketBatch, PacketPool};
use drivers::nic::{Nic, NicStats};
use switch_core::packet::Frame;

use super::sys;

/// The appliance's MAC on the tap: the same address the QEMU runner gives the management NIC.
pub const TAP_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x01, 0x00];

pub struct TapPort {
    ifname: String,
    label: String,
    fd: OwnedFd,
    pool: Rc<PacketPool>,
    stats: NicStats,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl TapPort {
    /// Attaches to tap `name`, creating it (for the life of the process) if it does not exist.
    pub fn open(name: &str, pool: Rc<PacketPool>) -> io::Result<TapPort> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::other(format!("bad interface name {name:?}")));
        }
        let path = c"/dev/net/tun";
        // SAFETY: a valid path; the result is checked before it is owned.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TapPort {
            ifname: name.to_string(),
            label: format!("tap {name}"),
            fd,
            pool,
            stats: NicStats::default(),
        })
    }
}

impl TapPort {
    /// The socket, for the runner's idle wait (`poll(2)`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Nic for TapPort {
    fn name(&self) -> &str {
        &self.label
    }

    fn mac_address(&self) -> [u8; 6] {
        TAP_MAC
    }

    fn link_up(&mut self) -> bool {
        sys::if_carrier(&self.ifname)
    }

    fn num_rx_queues(&self) -> u16 {
        1
    }

    fn num_tx_queues(&self) -> u16 {
        1
    }

    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        let mut n = 0;
        while !batch.is_full() {
            let Some(mut b) = self.pool.alloc() else {
                self.stats.rx_no_buffer += 1;
                break;
            };
            let room = b.tailroom();
            if !b.set_len(room) {
                break;
            }
            let d = b.data_mut();
            // SAFETY: reads at most `d.len()` bytes into the live buffer.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), d.as_mut_ptr().cast(), d.len()) };
            if r <= 0 {
                break; // EAGAIN: nothing more
            }
            let len = r as usize;
            if len < 14 {
                self.stats.rx_errors += 1;
                continue;
            }
            b.truncate(len);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            let _ = batch.push(b);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        let mut sent = 0;
        for b in batch.drain(..) {
            let d = b.data();
            // SAFETY: writes `d.len()` bytes from the live buffer.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), d.as_ptr().cast(), d.len()) };
            if r == d.len() as isize {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += d.len() as u64;
                sent += 1;
            } else {
                // No reader yet (host side down) or a full queue: management traffic is
                // retransmitted by TCP; count and drop.
                self.stats.tx_errors += 1;
            }
        }
        sent
    }

    fn tx_reclaim(&mut self, _queue: u16) -> usize {
        0
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}
