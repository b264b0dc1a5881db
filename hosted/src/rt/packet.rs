//! A data port on an AF_PACKET socket: every frame of one interface, promiscuous, moved with
//! `recvmmsg`/`sendmmsg` straight into and out of the pool's buffers (one copy each way, by the
//! kernel; no syscall per frame).
//!
//! What the switch must see is the frame as it was on the wire, so:
//! - the socket ignores its own transmissions (`PACKET_IGNORE_OUTGOING`);
//! - an 802.1Q tag the kernel took off into the packet's metadata (veth and most NICs strip it
//!   on receive) is put back from `PACKET_AUXDATA`;
//! - frames longer than a buffer (a peer with TSO/GSO or GRO on: 64 KiB super-frames) are
//!   counted in `rx_errors` and dropped: turn those offloads off on the peer (`ethtool -K DEV
//!   tso off gso off gro off tx off`; the test runner does). Checksum offload on the peer
//!   leaves partial checksums in frames, which the far host then drops, hence `tx off` too.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use drivers::dma::{BATCH_SIZE, PacketBatch, PacketBuf, PacketPool};
use drivers::nic::{Nic, NicStats};
use switch_core::packet::Frame;

use super::sys;

const PACKET_IGNORE_OUTGOING: i32 = 23;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_auxdata` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// Room for one cmsg carrying `AuxData` (CMSG_SPACE), 8-byte aligned.
const CMSG_WORDS: usize = 8;

pub struct PacketPort {
    ifname: String,
    label: String,
    fd: OwnedFd,
    pool: Rc<PacketPool>,
    mac: [u8; 6],
    stats: NicStats,
    cmsg: Box<[[u64; CMSG_WORDS]; BATCH_SIZE]>,
}

impl PacketPort {
    /// Opens interface `name` (which must exist): binds a raw socket to it, promiscuous.
    pub fn open(name: &str, pool: Rc<PacketPool>) -> io::Result<PacketPort> {
        let index = sys::if_index(name)?;
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        let fd = sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )?;
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: an all-zero packet_mreq is valid.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = index as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: `mreq` lives across the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        sys::setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
        sys::setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        // Deep socket buffers absorb bursts between two polls (best effort).
        let _ = sys::setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        let _ = sys::setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
        Ok(PacketPort {
            ifname: name.to_string(),
            label: format!("af_packet {name}"),
            fd,
            pool,
            mac: sys::if_mac(name),
            stats: NicStats::default(),
            cmsg: Box::new([[0u64; CMSG_WORDS]; BATCH_SIZE]),
        })
    }
}

/// Puts an 802.1Q/802.1ad tag back after the MAC addresses (the frame grows by 4 bytes into
/// its headroom).
fn insert_tag(buf: &mut PacketBuf, tpid: u16, tci: u16) -> bool {
    if buf.data().len() < 12 || !buf.prepend(4) {
        return false;
    }
    let d = buf.data_mut();
    d.copy_within(4..16, 0);
    d[12..14].copy_from_slice(&tpid.to_be_bytes());
    d[14..16].copy_from_slice(&tci.to_be_bytes());
    true
}

fn aux_of(msg: &libc::msghdr) -> Option<AuxData> {
    // SAFETY: the kernel filled `msg`'s control buffer; CMSG_* walk it within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET
                && (*c).cmsg_type == libc::PACKET_AUXDATA
                && (*c).cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<AuxData>() as u32) as usize
            {
                return Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<AuxData>(),
                ));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

impl PacketPort {
    /// The socket, for the runner's idle wait (`poll(2)`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Nic for PacketPort {
    fn name(&self) -> &str {
        &self.label
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
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
        let want = batch.free_capacity();
        if want == 0 {
            return 0;
        }
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(want);
        for _ in 0..want {
            match self.pool.alloc() {
                Some(mut b) => {
                    let room = b.tailroom();
                    if !b.set_len(room) {
                        break;
                    }
                    bufs.push(b);
                }
                None => {
                    self.stats.rx_no_buffer += 1;
                    break;
                }
            }
        }
        if bufs.is_empty() {
            return 0;
        }
        let n = bufs.len();
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| {
                let d = b.data_mut();
                libc::iovec {
                    iov_base: d.as_mut_ptr().cast(),
                    iov_len: d.len(),
                }
            })
            .collect();
        // SAFETY: all-zero mmsghdrs are valid; the pointers are set below.
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &mut iov[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = self.cmsg[i].as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = CMSG_WORDS * 8;
        }
        // SAFETY: `msgs` points at `n` iovecs over live buffers and control buffers, all of
        // which outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            return 0; // EAGAIN (nothing) or an error: the buffers go back to the pool
        }
        let mut appended = 0;
        for (i, mut b) in bufs.into_iter().enumerate().take(got as usize) {
            let m = &msgs[i];
            let len = m.msg_len as usize;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > b.data().len() || len < 14 {
                self.stats.rx_errors += 1; // super-frame (peer offloads on) or runt
                continue;
            }
            b.truncate(len);
            if let Some(aux) = aux_of(&m.msg_hdr)
                && aux.tp_status & TP_STATUS_VLAN_VALID != 0
            {
                let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    0x8100
                };
                if !insert_tag(&mut b, tpid, aux.tp_vlan_tci) {
                    self.stats.rx_errors += 1;
                    continue;
                }
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += b.data().len() as u64;
            if batch.push(b).is_err() {
                break;
            }
            appended += 1;
        }
        appended
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 || batch.is_empty() {
            return 0;
        }
        // Frames the device cannot send go first (counted), like a driver does.
        let mut bad = 0;
        batch.retain(|b| {
            let ok = !b.data().is_empty() && b.data().len() <= 1522 + 4;
            bad += !ok as u64;
            ok
        });
        self.stats.tx_errors += bad;
        let n = batch.len();
        if n == 0 {
            return 0;
        }
        let mut iov: Vec<libc::iovec> = batch
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.data().as_ptr() as *mut libc::c_void,
                iov_len: b.data().len(),
            })
            .collect();
        // SAFETY: all-zero mmsghdrs are valid; the iovecs are set below.
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &mut iov[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the iovecs point into the batch's buffers, alive across the call (the kernel
        // copies them before returning).
        let sent = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = if sent < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                0
            } else {
                // The interface is down or gone: these frames cannot be sent.
                self.stats.tx_errors += n as u64;
                batch.clear();
                return 0;
            }
        } else {
            sent as usize
        };
        for b in batch.drain(..sent) {
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += b.data().len() as u64;
        }
        self.stats.tx_full += batch.len() as u64;
        sent
    }

    fn tx_reclaim(&mut self, _queue: u16) -> usize {
        0 // the kernel copied every frame at send time: nothing is held
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}
