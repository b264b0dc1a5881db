//! [`AfPacketPort`]: a [`Nic`] over an AF_PACKET `SOCK_RAW` socket bound to one interface.
//!
//! # Design (measured choices are noted in the hosted crate's README section of the report)
//!
//! - Receive: a `TPACKET_V2` `PACKET_RX_RING` mapped into the process. Polling it costs no
//!   system call: `rx_burst` reads each frame slot's status word, copies ready frames into pool
//!   buffers and hands the slot back. `TPACKET_V2` rather than `V3`: V3 hands frames over a
//!   block at a time, and a block is only retired when full or when its timer (milliseconds)
//!   fires, which adds up to that timer's latency to every frame at low rates (pings, TCP
//!   handshakes, controller traffic). V2 hands over every frame as soon as it is written.
//! - Transmit: `sendmmsg(MSG_DONTWAIT)` straight from the pool buffers (one system call per
//!   burst, one kernel copy, no ring slot to reclaim): the buffers are dropped as soon as the
//!   call returns. `ENOBUFS`/`EAGAIN` (the device queue, or a veth peer's backlog, is full)
//!   leaves the rest of the batch in place and counts [`NicStats::tx_full`].
//! - Promiscuous through `PACKET_ADD_MEMBERSHIP`/`PACKET_MR_PROMISC` (undone by the kernel
//!   when the socket closes), non-blocking, `PACKET_IGNORE_OUTGOING` so the port never
//!   receives its own transmissions.
//! - VLAN: the kernel strips an 802.1Q/802.1ad tag on receive into `tp_vlan_tci`/`tp_vlan_tpid`
//!   (always, on veth too); `rx_burst` puts it back after the source MAC so the switch sees the
//!   frame as it was on the wire.
//! - Offloads: the socket uses `PACKET_VNET_HDR`, so each frame comes with the kernel's
//!   `virtio_net_hdr`. A frame whose checksum was left to "hardware" (`NEEDS_CSUM`, a TCP or UDP
//!   sender on a veth peer with `tx` checksum offload on, the default) gets its checksum
//!   completed here, so it can be forwarded to a socket or host that verifies it. A GSO frame
//!   (the peer's TSO/GSO, or GRO on this interface: one "frame" of up to 64 KiB) cannot be
//!   forwarded as one frame and is not segmented here: it is dropped and counted in
//!   [`NicStats::rx_errors`] (and [`AfPacketPort::gso_dropped`]), with one warning in the log.
//!   So on veth hosts turn segmentation offloads off on the peer and GRO off on the port:
//!
//!   ```sh
//!   ethtool -K <peer-in-netns> tso off gso off gro off     # what sends into the port
//!   ethtool -K <port> gro off tso off gso off
//!   ```
//!
//!   (`tx off` as well is harmless and saves the checksum completion here.)
//! - Frames longer than a ring slot (jumbo frames above ~1950 bytes, GSO) are truncated by the
//!   kernel; they are counted in `rx_errors` and dropped.
//! - Kernel-side drops (the ring was full: the main loop did not poll fast enough) are read with
//!   `PACKET_STATISTICS` and added to [`NicStats::rx_no_buffer`], the counter the drivers use for
//!   "the device had nowhere to put a frame".

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use drivers::dma::{BATCH_SIZE, PacketBatch, PacketPool};
use drivers::nic::{Nic, NicStats};
use switch_core::packet::Frame;

use crate::sys::{self, Mapping};

const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_PROMISC: u16 = 1;
const TPACKET_V2: libc::c_int = 1;
const ETH_P_ALL: u16 = 0x0003;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 1 << 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

const PACKET_OUTGOING: u8 = 4;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where `struct sockaddr_ll` follows.
const TPACKET2_HDRLEN: usize = 32;

/// `struct virtio_net_hdr` (10 bytes) in front of each frame with `PACKET_VNET_HDR`.
const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;

/// Bytes of one ring slot: header, address, vnet header and a 1522-byte frame fit with room.
const FRAME_SIZE: usize = 2048;
/// Ring blocks (a multiple of the page size holding whole slots).
const BLOCK_SIZE: usize = 1 << 16;
/// Default slots in the receive ring (4 MiB of kernel memory per port).
pub const DEFAULT_RX_RING_FRAMES: usize = 2048;

#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

#[repr(C)]
struct PacketMreq {
    ifindex: i32,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    packets: u32,
    drops: u32,
}

/// An AF_PACKET port (see the module docs).
pub struct AfPacketPort {
    fd: OwnedFd,
    ring: Mapping,
    frames: usize,
    next: usize,
    pool: Rc<PacketPool>,
    ifname: String,
    name: String,
    mac: [u8; 6],
    /// Longest frame `tx_burst` accepts (MTU + Ethernet header + one VLAN tag).
    max_tx: usize,
    stats: NicStats,
    kernel_drops: Cell<u64>,
    gso_dropped: u64,
    gso_warned: bool,
    csum_completed: u64,
}

impl AfPacketPort {
    /// Opens `ifname` (which must exist) with [`DEFAULT_RX_RING_FRAMES`] receive slots;
    /// received frames go into buffers from `pool`.
    pub fn open(ifname: &str, pool: Rc<PacketPool>) -> io::Result<Self> {
        Self::open_with(ifname, pool, DEFAULT_RX_RING_FRAMES)
    }

    /// As [`open`](Self::open) with `rx_frames` receive ring slots (rounded up to whole ring
    /// blocks of 32 slots).
    pub fn open_with(ifname: &str, pool: Rc<PacketPool>, rx_frames: usize) -> io::Result<Self> {
        let ifindex = sys::ifindex(ifname)?;
        let mac = sys::hwaddr(ifname)?;
        let mtu = sys::mtu(ifname)? as usize;
        // SAFETY: plain socket(2); protocol 0 receives nothing until `bind` below names
        // ETH_P_ALL, so no frame of another interface is queued meanwhile.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        let fd = sys::fd_or_err(fd, "socket(AF_PACKET, SOCK_RAW)")?;
        let raw = fd.as_raw_fd();
        sys::setsockopt(
            raw,
            SOL_PACKET,
            PACKET_VERSION,
            &TPACKET_V2,
            "PACKET_VERSION",
        )?;
        sys::setsockopt(raw, SOL_PACKET, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        sys::setsockopt(
            raw,
            SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &1i32,
            "PACKET_IGNORE_OUTGOING",
        )?;
        let per_block = BLOCK_SIZE / FRAME_SIZE;
        let blocks = rx_frames.max(1).div_ceil(per_block);
        let req = TpacketReq {
            block_size: BLOCK_SIZE as u32,
            block_nr: blocks as u32,
            frame_size: FRAME_SIZE as u32,
            frame_nr: (blocks * per_block) as u32,
        };
        sys::setsockopt(raw, SOL_PACKET, PACKET_RX_RING, &req, "PACKET_RX_RING")?;
        let ring = Mapping::new(raw, blocks * BLOCK_SIZE, 0, "mmap(PACKET_RX_RING)")?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                raw,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        sys::check(r, &format!("bind(AF_PACKET, {ifname})"))?;
        let mreq = PacketMreq {
            ifindex: ifindex as i32,
            kind: PACKET_MR_PROMISC,
            alen: 0,
            address: [0; 8],
        };
        sys::setsockopt(
            raw,
            SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_ADD_MEMBERSHIP(PROMISC)",
        )?;
        log::info!(
            "{ifname}: AF_PACKET port (TPACKET_V2 rx ring of {} slots, sendmmsg tx, mtu {mtu})",
            blocks * per_block
        );
        Ok(AfPacketPort {
            fd,
            ring,
            frames: blocks * per_block,
            next: 0,
            pool,
            ifname: ifname.to_string(),
            name: format!("af_packet {ifname}"),
            mac,
            max_tx: mtu + 14 + 4,
            stats: NicStats::default(),
            kernel_drops: Cell::new(0),
            gso_dropped: 0,
            gso_warned: false,
            csum_completed: 0,
        })
    }

    /// The interface this port is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// GSO frames dropped (see the module docs: turn the peer's offloads off).
    pub fn gso_dropped(&self) -> u64 {
        self.gso_dropped
    }

    /// Frames whose partial checksum was completed in software.
    pub fn checksums_completed(&self) -> u64 {
        self.csum_completed
    }

    /// Frames the kernel dropped because the receive ring was full (also in `rx_no_buffer`).
    pub fn kernel_drops(&self) -> u64 {
        self.read_kernel_stats();
        self.kernel_drops.get()
    }

    /// `PACKET_STATISTICS` resets on every read: fold its drops into our counter.
    fn read_kernel_stats(&self) {
        let mut st = TpacketStats::default();
        // SAFETY: `TpacketStats` is two u32s, valid for any bytes.
        let ok = unsafe {
            sys::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                &mut st,
                "PACKET_STATISTICS",
            )
        };
        if ok.is_ok() {
            self.kernel_drops
                .set(self.kernel_drops.get() + u64::from(st.drops));
        }
    }

    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY (of the arithmetic, used by callers): `i < frames`, and slot `i` lies at
        // `i * FRAME_SIZE` inside the ring mapping (whole slots per block, blocks contiguous).
        debug_assert!(i < self.frames);
        self.ring.ptr.wrapping_add(i * FRAME_SIZE)
    }

    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the slot header's first word is a 4-byte aligned u32 (slots are 2048-byte
        // aligned in a page-aligned mapping) that lives as long as `self.ring`; the kernel
        // writes it concurrently, hence atomic access only.
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    /// Reads the slot header's fields (after the status word was seen as TP_STATUS_USER).
    fn header(&self, i: usize) -> SlotHeader {
        let p = self.slot(i);
        let rd16 = |off: usize| {
            // SAFETY: `off + 2 <= 48 < FRAME_SIZE`, inside the slot; plain bytes the kernel
            // finished writing before it published TP_STATUS_USER (acquire-loaded by caller).
            unsafe { std::ptr::read_unaligned(p.add(off) as *const u16) }
        };
        let rd32 = |off: usize| {
            // SAFETY: as above.
            unsafe { std::ptr::read_unaligned(p.add(off) as *const u32) }
        };
        SlotHeader {
            len: rd32(4) as usize,
            snaplen: rd32(8) as usize,
            mac: rd16(12) as usize,
            vlan_tci: rd16(24),
            vlan_tpid: rd16(26),
            // SAFETY: as above; sll_pkttype is byte 10 of the sockaddr_ll after the header.
            pkttype: unsafe { *p.add(TPACKET2_HDRLEN + 10) },
        }
    }

    /// Copies slot `i`'s frame into a pool buffer. `None` (and the reason counted) if the slot
    /// holds nothing forwardable; `Err(())` if the pool is empty (slot kept for later).
    fn take_slot(&mut self, i: usize, status: u32) -> Result<Option<drivers::dma::PacketBuf>, ()> {
        let h = self.header(i);
        if h.pkttype == PACKET_OUTGOING {
            return Ok(None);
        }
        let vnet_off = h.mac.wrapping_sub(VNET_HDR_LEN);
        if status & TP_STATUS_COPY != 0
            || h.snaplen != h.len
            || h.snaplen < 14
            || h.mac < TPACKET2_HDRLEN + VNET_HDR_LEN
            || h.mac + h.snaplen > FRAME_SIZE
        {
            self.stats.rx_errors += 1;
            return Ok(None);
        }
        let base = self.slot(i);
        let mut vnet = [0u8; VNET_HDR_LEN];
        // SAFETY: `vnet_off + 10 == mac <= FRAME_SIZE`, inside the slot, written by the kernel
        // before TP_STATUS_USER was published.
        unsafe { std::ptr::copy_nonoverlapping(base.add(vnet_off), vnet.as_mut_ptr(), 10) };
        if vnet[1] != VIRTIO_NET_HDR_GSO_NONE {
            self.stats.rx_errors += 1;
            self.gso_dropped += 1;
            if !self.gso_warned {
                self.gso_warned = true;
                log::warn!(
                    "{}: dropping GSO frames ({} bytes): turn segmentation offloads off \
                     (ethtool -K <peer> tso off gso off; ethtool -K {} gro off)",
                    self.ifname,
                    h.len,
                    self.ifname
                );
            }
            return Ok(None);
        }
        let tagged = status & TP_STATUS_VLAN_VALID != 0;
        let total = h.snaplen + if tagged { 4 } else { 0 };
        let Some(mut buf) = self.pool.alloc() else {
            return Err(());
        };
        if !buf.set_len(total) {
            self.stats.rx_errors += 1;
            return Ok(None);
        }
        let dst = buf.data_mut();
        // SAFETY: `[mac, mac + snaplen)` lies inside the slot (checked above); `dst` holds
        // `total >= snaplen` bytes and does not overlap the ring.
        let src = unsafe { std::slice::from_raw_parts(base.add(h.mac), h.snaplen) };
        if tagged {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 && h.vlan_tpid != 0 {
                h.vlan_tpid
            } else {
                0x8100
            };
            dst[..12].copy_from_slice(&src[..12]);
            dst[12..14].copy_from_slice(&tpid.to_be_bytes());
            dst[14..16].copy_from_slice(&h.vlan_tci.to_be_bytes());
            dst[16..].copy_from_slice(&src[12..]);
        } else {
            dst.copy_from_slice(src);
        }
        if vnet[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
            let start =
                u16::from_le_bytes([vnet[6], vnet[7]]) as usize + if tagged { 4 } else { 0 };
            let offset = u16::from_le_bytes([vnet[8], vnet[9]]) as usize;
            if complete_checksum(dst, start, offset) {
                self.csum_completed += 1;
            } else {
                self.stats.rx_errors += 1;
                return Ok(None);
            }
        }
        Ok(Some(buf))
    }
}

struct SlotHeader {
    len: usize,
    snaplen: usize,
    mac: usize,
    vlan_tci: u16,
    vlan_tpid: u16,
    pkttype: u8,
}

/// Completes a partial (`CHECKSUM_PARTIAL`) checksum: the field at `start + offset` holds the
/// pseudo-header sum; the Internet checksum of `[start, len)` goes there. False if the
/// offsets do not fit the frame.
pub(crate) fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start.saturating_add(offset);
    if start >= frame.len() || field.saturating_add(2) > frame.len() {
        return false;
    }
    let mut sum: u64 = 0;
    let (pairs, rest) = frame[start..].as_chunks::<2>();
    for c in pairs {
        sum += u64::from(u16::from_be_bytes(*c));
    }
    if let [last] = rest {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut csum = !(sum as u16);
    // UDP (checksum field at offset 6) sends a computed zero as all ones.
    if csum == 0 && offset == 6 {
        csum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

/// The socket (readable when frames wait), for `poll(2)` in an idle loop.
impl AsRawFd for AfPacketPort {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Nic for AfPacketPort {
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
        // Bounded: at most one pass over the ring per call, whatever the kernel does.
        let mut budget = self.frames;
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let i = self.next;
            let status = self.status(i).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                break;
            }
            match self.take_slot(i, status) {
                Err(()) => {
                    self.stats.rx_no_buffer += 1;
                    break;
                }
                Ok(got) => {
                    self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
                    self.next = if i + 1 == self.frames { 0 } else { i + 1 };
                    if let Some(buf) = got {
                        self.stats.rx_packets += 1;
                        self.stats.rx_bytes += buf.len() as u64;
                        // Cannot fail: the loop checks `is_full` first.
                        let _ = batch.push(buf);
                        n += 1;
                    }
                }
            }
        }
        n
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        let mut sent = 0;
        static VNET_NONE: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
        while !batch.is_empty() {
            // Drop the frames the device cannot take from the front, so the burst we hand to
            // the kernel is all sendable.
            let bad = batch[0].is_empty() || batch[0].len() < 14 || batch[0].len() > self.max_tx;
            if bad {
                drop(batch.drain(..1));
                self.stats.tx_errors += 1;
                continue;
            }
            let mut count = 0;
            while count < batch.len() && count < BATCH_SIZE {
                let l = batch[count].len();
                if l < 14 || l > self.max_tx {
                    break;
                }
                count += 1;
            }
            // SAFETY: iovec/mmsghdr are plain old data; all-zero is valid (null pointers,
            // zero lengths), and every entry used is filled in below.
            let mut iov: [libc::iovec; 2 * BATCH_SIZE] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
            for k in 0..count {
                let data = batch[k].data();
                iov[2 * k] = libc::iovec {
                    iov_base: VNET_NONE.as_ptr() as *mut libc::c_void,
                    iov_len: VNET_HDR_LEN,
                };
                iov[2 * k + 1] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                msgs[k].msg_hdr.msg_iov = &mut iov[2 * k];
                msgs[k].msg_hdr.msg_iovlen = 2;
            }
            // SAFETY: `msgs[..count]` point at `iov` entries which point at the frames in
            // `batch` and the static zero header, all alive and unmodified during the call; the
            // kernel only reads them (and writes `msg_len`). The socket is bound, so no address.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            self.stats.notifications += 1;
            if r > 0 {
                let r = (r as usize).min(count);
                for b in batch.drain(..r) {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += b.len() as u64;
                }
                sent += r;
                continue;
            }
            match sys::errno() {
                libc::EAGAIN | libc::ENOBUFS | libc::EINTR => {
                    self.stats.tx_full += batch.len() as u64;
                    break;
                }
                _ => {
                    // The front frame is the one that failed (EMSGSIZE, ENETDOWN, ...).
                    drop(batch.drain(..1));
                    self.stats.tx_errors += 1;
                }
            }
        }
        sent
    }

    fn tx_reclaim(&mut self, _queue: u16) -> usize {
        // sendmmsg copies: nothing is ever held after tx_burst returns.
        0
    }

    fn stats(&self) -> NicStats {
        self.read_kernel_stats();
        let mut s = self.stats;
        s.rx_no_buffer += self.kernel_drops.get();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_completion_matches_full_computation() {
        // An IPv4/UDP frame with a known-good checksum; zero it, put the pseudo-header sum in,
        // complete, compare.
        let mut f = vec![0u8; 14 + 20 + 8 + 5];
        f[12] = 0x08;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let udp_len = 13u16;
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&2000u16.to_be_bytes());
        f[38..40].copy_from_slice(&udp_len.to_be_bytes());
        f[42..].copy_from_slice(b"hello");
        // Pseudo header: src, dst, proto, length.
        let mut ps: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + u32::from(udp_len);
        ps = (ps & 0xffff) + (ps >> 16);
        f[40..42].copy_from_slice(&(ps as u16).to_be_bytes());
        assert!(complete_checksum(&mut f, 34, 6));
        // Verify: the sum over pseudo header + UDP segment is 0xffff.
        let mut s: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + u32::from(udp_len);
        for c in f[34..].chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(s, 0xffff);
        assert!(!complete_checksum(&mut f, 60, 0));
        assert!(!complete_checksum(&mut f, 46, 6));
    }
}
