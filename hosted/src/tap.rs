//! [`TapPort`]: a [`Nic`] over a Linux tap device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`,
//! non-blocking), so the appliance's smoltcp management stack runs unchanged with the host on
//! the other side of the tap.
//!
//! The host side is the kernel's tap interface: give it an address (`ip addr add 10.0.2.2/24
//! dev NAME`) and the appliance one on the same subnet (`mgmt.ip=10.0.2.15/24`).
//! [`TapPort::open`] creates the device if it does not exist (a non-persistent tap, removed when
//! the port is dropped) or attaches to an existing one (e.g. made with `ip tuntap add mode
//! tap`), and sets it up.
//!
//! [`Nic::mac_address`] is *not* the tap interface's MAC (that is the host's address on the
//! link): it is that MAC with the lowest bit of the last byte flipped, a different address on
//! the same link for the appliance's stack to answer on.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use drivers::dma::{PacketBatch, PacketPool};
use drivers::nic::{Nic, NicStats};
use switch_core::packet::Frame;

use crate::sys::{self, IfReq};

/// A tap device as a NIC (see the module docs).
pub struct TapPort {
    fd: OwnedFd,
    pool: Rc<PacketPool>,
    ifname: String,
    name: String,
    mac: [u8; 6],
    stats: NicStats,
}

impl TapPort {
    /// Opens (creating if missing) tap device `ifname`, sets it up, and receives into buffers
    /// from `pool`.
    pub fn open(ifname: &str, pool: Rc<PacketPool>) -> io::Result<Self> {
        let mut ifr = IfReq::new(ifname)?;
        // SAFETY: open(2) of a constant NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        let fd = sys::fd_or_err(fd, "open /dev/net/tun")?;
        // An existing (up) tap gets its carrier the moment TUNSETIFF attaches us, and whoever
        // made it may take that as the sign to move it into another network namespace (the
        // test runner's hosted backend does: `qemu/src/hosted.rs`), after which this
        // namespace's lookups by name fail with ENODEV. So everything by name is done before
        // attaching; only a tap that TUNSETIFF creates (nobody else knows it yet) is set up
        // after. (`tun_flags` in sysfs: the existing device is a tun/tap, not something else
        // of that name that TUNSETIFF will refuse.)
        let existing = std::path::Path::new("/sys/class/net")
            .join(ifname)
            .join("tun_flags")
            .exists();
        let before = if existing {
            set_up(ifname).and_then(|()| sys::hwaddr(ifname))
        } else {
            Err(io::Error::from(io::ErrorKind::NotFound))
        };
        ifr.set_short((libc::IFF_TAP | libc::IFF_NO_PI) as i16);
        sys::ifreq_ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF as libc::c_ulong,
            &mut ifr,
            &format!("TUNSETIFF {ifname}"),
        )?;
        let ifname = ifr.name_str();
        let mut mac = match before {
            Ok(mac) => mac,
            Err(_) => {
                set_up(&ifname)?;
                sys::hwaddr(&ifname)?
            }
        };
        mac[5] ^= 1;
        log::info!(
            "{ifname}: tap port, appliance MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5]
        );
        Ok(TapPort {
            fd,
            pool,
            name: format!("tap {ifname}"),
            ifname,
            mac,
            stats: NicStats::default(),
        })
    }

    /// The tap interface's name (as the kernel chose it, for a name pattern like `tap%d`).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

/// Sets `ifname` administratively up (`SIOCSIFFLAGS |= IFF_UP`).
fn set_up(ifname: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); the result is checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let s = sys::fd_or_err(s, "socket(AF_INET)")?;
    let mut ifr = IfReq::new(ifname)?;
    sys::ifreq_ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS")?;
    let flags = ifr.short() | libc::IFF_UP as i16;
    ifr.set_short(flags);
    sys::ifreq_ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr, "SIOCSIFFLAGS")
}

/// The socket (readable when frames wait), for `poll(2)` in an idle loop.
impl AsRawFd for TapPort {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Nic for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&mut self) -> bool {
        sys::link_running(&self.ifname)
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
            let Some(mut buf) = self.pool.alloc() else {
                self.stats.rx_no_buffer += 1;
                break;
            };
            let room = buf.tailroom();
            // Always true: a fresh buffer's frame is empty, so `room` is its whole tailroom.
            let _ = buf.set_len(room);
            let dst = buf.data_mut();
            // SAFETY: `dst` is `room` writable bytes owned by `buf`; read(2) writes at most
            // that many.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    dst.as_mut_ptr() as *mut libc::c_void,
                    dst.len(),
                )
            };
            if r < 0 {
                // EAGAIN: nothing queued. Anything else (the device went away): stop too.
                break;
            }
            let len = r as usize;
            if len < 14 || len >= room {
                // Too short for Ethernet, or filled the buffer (possibly truncated).
                self.stats.rx_errors += 1;
                continue;
            }
            buf.truncate(len);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            let _ = batch.push(buf);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        let mut sent = 0;
        while !batch.is_empty() {
            let data = batch[0].data();
            if data.len() < 14 {
                drop(batch.drain(..1));
                self.stats.tx_errors += 1;
                continue;
            }
            // SAFETY: `data` is a live, readable slice for the duration of the call.
            let r = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    data.as_ptr() as *const libc::c_void,
                    data.len(),
                )
            };
            self.stats.notifications += 1;
            if r < 0 {
                let e = sys::errno();
                if e == libc::EAGAIN || e == libc::ENOBUFS || e == libc::EINTR {
                    self.stats.tx_full += batch.len() as u64;
                    break;
                }
                // EIO (the tap is down), EINVAL, ...: this frame cannot be sent.
                drop(batch.drain(..1));
                self.stats.tx_errors += 1;
                continue;
            }
            let b = batch.drain(..1).next();
            if let Some(b) = b {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += b.len() as u64;
            }
            sent += 1;
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
