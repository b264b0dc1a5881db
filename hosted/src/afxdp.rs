//! [`AfXdpPort`]: a [`Nic`] over an AF_XDP socket, with no libbpf: the UMEM, the four rings and
//! the XDP program that feeds the socket are set up with plain system calls.
//!
//! # Memory: the packet pool is the UMEM
//!
//! Each port registers the whole region of the [`PacketPool`] it is given as its UMEM
//! (`XDP_UMEM_REG`; several sockets may pin the same pages): one pool buffer is one UMEM chunk,
//! so what the kernel writes into a chunk *is* a [`PacketBuf`], and a buffer from the same pool
//! (received on any AF_XDP port sharing it) is transmitted by handing its address to the tx
//! ring, without a copy in user space. Buffers from another pool are copied into one of ours.
//! The pool needs [`crate::dma::host_pool`]'s layout: a power-of-two stride of 2048 or 4096
//! bytes (the kernel's aligned chunk mode) and a headroom of at least `XDP_PACKET_HEADROOM`
//! (256), where the kernel puts a received frame; anything else is refused at `open`.
//!
//! While a buffer sits in the fill, rx, tx or completion ring the port keeps its `PacketBuf` in
//! a table indexed by buffer number, so descriptors from the kernel are checked against it: an
//! address outside the UMEM, of a buffer the port did not post, or a length beyond the chunk is
//! counted in `rx_errors` / `tx_errors` and skipped, never trusted.
//!
//! # Setup, in order (each failure names its step and errno)
//!
//! 1. `socket(AF_XDP)`, `XDP_UMEM_REG`, ring sizes, `XDP_MMAP_OFFSETS`, `mmap` of the fill,
//!    completion, rx and tx rings;
//! 2. `bind` to queue 0 of the interface with `XDP_ZEROCOPY`; if the driver cannot (veth,
//!    and any driver without AF_XDP zero-copy support: `EOPNOTSUPP`), the socket is rebuilt and
//!    bound with `XDP_COPY`. Both with `XDP_USE_NEED_WAKEUP`;
//! 3. `bpf(BPF_MAP_CREATE)` of an `XSKMAP`, empty for now;
//! 4. `bpf(BPF_PROG_LOAD)` of a hand-assembled XDP program,
//!    `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`: frames of queue 0 go to
//!    the socket, frames of other queues (none on a single-queue veth) to the kernel's stack;
//! 5. `bpf(BPF_LINK_CREATE)` attaching it to the interface in native (driver) mode, or in
//!    generic (SKB) mode if the driver has no native XDP. Dropping the port closes the link,
//!    which detaches the program; the interface is left as it was;
//! 6. the fill ring gets its buffers, and only then `BPF_MAP_UPDATE_ELEM` puts the socket in
//!    entry 0: a frame redirected to a socket whose fill ring is empty is dropped (and counted
//!    as the port's drop), while until the entry exists frames pass to the kernel as before.
//!
//! Limits: queue 0 only (use single-queue interfaces, `ethtool -L IF combined 1`); an
//! interface that already has an XDP program attached is refused (`EBUSY`); frames longer than
//! a chunk's room (1792 bytes with `host_pool`) are dropped by the kernel (no multi-buffer).
//! On veth, attaching a native XDP program makes the kernel turn off the peer's GSO/TSO for
//! this link, so a TCP sender in the peer namespace sends MTU-sized frames with no offload
//! settings needed for receive. The peer's tx checksum offload still leaves partial checksums
//! in frames that stay on the host (`ethtool -K <peer> tx off` on hosts that exchange TCP/UDP
//! through the switch; AF_XDP gives no checksum metadata to complete them).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use drivers::dma::{DRIVER_RESERVE, PacketBatch, PacketBuf, PacketPool};
use drivers::nic::{Nic, NicStats};
use switch_core::packet::Frame;

use crate::sys::{self, Mapping};

/// `XDP_PACKET_HEADROOM`: where the kernel writes a received frame in a chunk.
const XDP_PACKET_HEADROOM: usize = 256;
/// Ring sizes (entries, powers of two).
const FILL_RING: u32 = 2048;
const COMP_RING: u32 = 2048;
const RX_RING: u32 = 2048;
const TX_RING: u32 = 2048;
/// Most buffers posted to the fill ring (also capped at a quarter of the pool).
const FILL_TARGET: usize = 1024;

/// The kernel's AF_XDP mode for this socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// The driver DMAs straight into the UMEM (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM (`XDP_COPY`; veth).
    Copy,
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttach {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic path after the SKB is built (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// `bpf(2)` commands, types and flags used here (linux/bpf.h, linux/if_link.h).
mod bpf {
    pub const MAP_CREATE: libc::c_long = 0;
    pub const MAP_UPDATE_ELEM: libc::c_long = 2;
    pub const PROG_LOAD: libc::c_long = 5;
    pub const LINK_CREATE: libc::c_long = 28;
    pub const MAP_TYPE_XSKMAP: u32 = 17;
    pub const PROG_TYPE_XDP: u32 = 6;
    pub const ATTACH_XDP: u32 = 37;
    pub const FUNC_REDIRECT_MAP: i32 = 51;
    pub const PSEUDO_MAP_FD: u8 = 1;
    pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    pub const XDP_PASS: i32 = 2;
    /// Bytes of `union bpf_attr` passed (the kernel zero-fills the rest).
    pub const ATTR_SIZE: usize = 128;
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `r2 = ctx->rx_queue_index; r1 = &xsks; r3 = XDP_PASS; return bpf_redirect_map(r1, r2, r3)`.
fn redirect_program(map_fd: RawFd) -> [BpfInsn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W: r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index))
        insn(0x61, 2, 1, 16, 0),
        // BPF_LD | BPF_DW | BPF_IMM (two slots): r1 = map (pseudo map fd)
        insn(0x18, 1, bpf::PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K: r3 = XDP_PASS (the action when the entry is empty)
        insn(0xb7, 3, 0, 0, bpf::XDP_PASS),
        // BPF_JMP | BPF_CALL
        insn(0x85, 0, 0, 0, bpf::FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT
        insn(0x95, 0, 0, 0, 0),
    ]
}

/// A zeroed `union bpf_attr` with little helpers to fill fields at their offsets.
struct Attr([u8; bpf::ATTR_SIZE]);

impl Attr {
    fn new() -> Self {
        Attr([0; bpf::ATTR_SIZE])
    }
    fn u32(mut self, off: usize, v: u32) -> Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(mut self, off: usize, v: u64) -> Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(mut self, off: usize, name: &str) -> Self {
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + n].copy_from_slice(&b[..n]);
        self
    }
}

/// `bpf(cmd, attr, size)`; returns the non-negative result or the errno.
fn bpf_call(cmd: libc::c_long, attr: &mut Attr) -> Result<libc::c_long, i32> {
    // SAFETY: `attr` is `ATTR_SIZE` readable and writable bytes; every pointer stored in it
    // (instructions, license, log buffer, key, value) is owned by the caller and alive during
    // the call, with the lengths given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            bpf::ATTR_SIZE as libc::c_uint,
        )
    };
    if r < 0 { Err(sys::errno()) } else { Ok(r) }
}

fn step_err(step: &str, errno: i32) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(errno).kind(),
        format!("{step}: {}", io::Error::from_raw_os_error(errno)),
    )
}

fn bpf_fd(r: libc::c_long, step: &str) -> io::Result<OwnedFd> {
    sys::fd_or_err(r as libc::c_int, step)
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

/// `struct xdp_umem_reg`.
#[repr(C)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

/// `struct xdp_statistics`, as the kernel counts it for the socket.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped for any reason other than the rx ring being full (fill ring empty,
    /// frame longer than a chunk).
    pub rx_dropped: u64,
    /// Invalid descriptors we put in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors we put in the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty.
    pub tx_ring_empty_descs: u64,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
const XDP_COPY: u16 = 1 << 1;
const XDP_ZEROCOPY: u16 = 1 << 2;
const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
const XDP_RING_NEED_WAKEUP: u32 = 1;
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// One mapped single-producer single-consumer ring shared with the kernel.
struct Ring {
    /// Keeps the ring mapped (the pointers below point into it).
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    size: u32,
    /// Our view of the index we advance, and the last seen value of the kernel's.
    local: u32,
    remote: u32,
}

impl Ring {
    fn map(
        fd: RawFd,
        off: &RingOffset,
        entries: u32,
        desc_size: usize,
        pgoff: libc::off_t,
        what: &str,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + entries as usize * desc_size;
        let map = Mapping::new(fd, len, pgoff, what)?;
        let at = |o: u64| map.ptr.wrapping_add(o as usize);
        for o in [off.producer, off.consumer, off.flags] {
            if o as usize + 4 > len || !o.is_multiple_of(4) {
                return Err(io::Error::other(format!(
                    "{what}: bad ring offsets {off:?}"
                )));
            }
        }
        if !off.desc.is_multiple_of(8) {
            return Err(io::Error::other(format!(
                "{what}: bad ring offsets {off:?}"
            )));
        }
        Ok(Ring {
            producer: at(off.producer) as *const AtomicU32,
            consumer: at(off.consumer) as *const AtomicU32,
            flags: at(off.flags) as *const AtomicU32,
            desc: at(off.desc),
            mask: entries - 1,
            size: entries,
            local: 0,
            remote: 0,
            _map: map,
        })
    }

    #[inline]
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: checked in `map` to lie 4-aligned inside the mapping, which lives as long as
        // `self`; shared with the kernel, so accessed atomically only.
        unsafe { &*self.producer }
    }
    #[inline]
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as in `prod`.
        unsafe { &*self.consumer }
    }
    #[inline]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `prod`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    // ---- user-produced rings (fill, tx): `local` = producer, `remote` = consumer ----

    /// Free entries we can produce.
    #[inline]
    fn free(&mut self) -> u32 {
        let used = self.local.wrapping_sub(self.remote);
        if used >= self.size || self.size - used < 32 {
            self.remote = self.cons().load(Ordering::Acquire);
        }
        self.size - self.local.wrapping_sub(self.remote).min(self.size)
    }

    /// Entries produced but not yet consumed by the kernel.
    #[inline]
    fn outstanding(&mut self) -> u32 {
        self.remote = self.cons().load(Ordering::Acquire);
        self.local.wrapping_sub(self.remote).min(self.size)
    }

    #[inline]
    fn slot(&self, idx: u32, desc_size: usize) -> *mut u8 {
        // In bounds: `(idx & mask) < entries`, and the mapping holds `entries` descriptors.
        self.desc
            .wrapping_add((idx & self.mask) as usize * desc_size)
    }

    #[inline]
    fn publish(&mut self) {
        self.prod().store(self.local, Ordering::Release);
    }

    // ---- kernel-produced rings (rx, completion): `local` = consumer, `remote` = producer ----

    #[inline]
    fn available(&mut self) -> u32 {
        if self.remote == self.local {
            self.remote = self.prod().load(Ordering::Acquire);
        }
        // A kernel index more than a ring ahead would be a bug; never read beyond one ring.
        self.remote.wrapping_sub(self.local).min(self.size)
    }

    #[inline]
    fn release(&mut self) {
        self.cons().store(self.local, Ordering::Release);
    }
}

/// The socket with its rings; rebuilt from scratch when a bind mode is refused.
struct Xsk {
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    fd: OwnedFd,
}

fn open_xsk(pool: &PacketPool, ifindex: u32, bind_flags: u16) -> io::Result<Xsk> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    let fd = sys::fd_or_err(fd, "socket(AF_XDP)")?;
    let raw = fd.as_raw_fd();
    let region = pool.region();
    let reg = UmemReg {
        addr: region.virt as u64,
        len: region.len as u64,
        chunk_size: pool.buf_size() as u32,
        headroom: (pool.headroom() - XDP_PACKET_HEADROOM) as u32,
        flags: 0,
        tx_metadata_len: 0,
    };
    sys::setsockopt(raw, SOL_XDP, XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
    sys::setsockopt(
        raw,
        SOL_XDP,
        XDP_UMEM_FILL_RING,
        &FILL_RING,
        "XDP_UMEM_FILL_RING",
    )?;
    sys::setsockopt(
        raw,
        SOL_XDP,
        XDP_UMEM_COMPLETION_RING,
        &COMP_RING,
        "XDP_UMEM_COMPLETION_RING",
    )?;
    sys::setsockopt(raw, SOL_XDP, XDP_RX_RING, &RX_RING, "XDP_RX_RING")?;
    sys::setsockopt(raw, SOL_XDP, XDP_TX_RING, &TX_RING, "XDP_TX_RING")?;
    let mut off = MmapOffsets::default();
    // SAFETY: `MmapOffsets` is plain u64s, valid for any bytes.
    let got =
        unsafe { sys::getsockopt(raw, SOL_XDP, XDP_MMAP_OFFSETS, &mut off, "XDP_MMAP_OFFSETS")? };
    if got != std::mem::size_of::<MmapOffsets>() {
        return Err(io::Error::other(format!(
            "XDP_MMAP_OFFSETS: {got} bytes (kernel without ring flags?)"
        )));
    }
    let fill = Ring::map(
        raw,
        &off.fr,
        FILL_RING,
        8,
        XDP_UMEM_PGOFF_FILL_RING,
        "mmap(fill ring)",
    )?;
    let comp = Ring::map(
        raw,
        &off.cr,
        COMP_RING,
        8,
        XDP_UMEM_PGOFF_COMPLETION_RING,
        "mmap(completion ring)",
    )?;
    let rx = Ring::map(
        raw,
        &off.rx,
        RX_RING,
        16,
        XDP_PGOFF_RX_RING,
        "mmap(rx ring)",
    )?;
    let tx = Ring::map(
        raw,
        &off.tx,
        TX_RING,
        16,
        XDP_PGOFF_TX_RING,
        "mmap(tx ring)",
    )?;
    let sxdp = SockaddrXdp {
        family: libc::AF_XDP as u16,
        flags: bind_flags | XDP_USE_NEED_WAKEUP,
        ifindex,
        queue_id: 0,
        shared_umem_fd: 0,
    };
    // SAFETY: `sxdp` is a valid sockaddr_xdp of the size passed.
    let r = unsafe {
        libc::bind(
            raw,
            &sxdp as *const SockaddrXdp as *const libc::sockaddr,
            std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    let mode = if bind_flags & XDP_ZEROCOPY != 0 {
        "XDP_ZEROCOPY"
    } else {
        "XDP_COPY"
    };
    sys::check(r, &format!("bind(AF_XDP, queue 0, {mode})"))?;
    // The kernel's indices start at 0, but read them anyway.
    let mut x = Xsk {
        fill,
        comp,
        rx,
        tx,
        fd,
    };
    for r in [&mut x.fill, &mut x.tx] {
        r.local = r.prod().load(Ordering::Acquire);
        r.remote = r.cons().load(Ordering::Acquire);
    }
    for r in [&mut x.rx, &mut x.comp] {
        r.local = r.cons().load(Ordering::Acquire);
        r.remote = r.prod().load(Ordering::Acquire);
    }
    Ok(x)
}

/// An AF_XDP port (see the module docs).
pub struct AfXdpPort {
    // Field order is drop order: the link first (detaches the program), then the socket,
    // then the program and map, and only then the buffers the kernel could still write.
    link: OwnedFd,
    xsk: Xsk,
    _prog: OwnedFd,
    map: OwnedFd,
    /// Buffers lent to the kernel (fill/rx or tx/completion ring), by buffer index.
    lent: Vec<Option<PacketBuf>>,
    pool: Rc<PacketPool>,
    region_phys: u64,
    stride: usize,
    fill_target: usize,
    posted: usize,
    mode: XdpMode,
    attach: XdpAttach,
    zc_refused: Option<String>,
    ifname: String,
    name: String,
    mac: [u8; 6],
    max_tx: usize,
    stats: NicStats,
}

impl AfXdpPort {
    /// Opens queue 0 of `ifname` as an AF_XDP port over `pool` (which must have
    /// [`crate::dma::host_pool`]'s layout): zero-copy if the driver supports it, else copy
    /// mode; the XDP program attached natively, else generically.
    pub fn open(ifname: &str, pool: Rc<PacketPool>) -> io::Result<Self> {
        let stride = pool.buf_size();
        if !stride.is_power_of_two()
            || !(2048..=4096).contains(&stride)
            || pool.headroom() < XDP_PACKET_HEADROOM
            || !pool.region().virt.is_multiple_of(drivers::dma::PAGE_SIZE)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet pool layout (stride {stride}, headroom {}) cannot be an AF_XDP UMEM: \
                     use hosted::dma::host_pool",
                    pool.headroom()
                ),
            ));
        }
        let ifindex = sys::ifindex(ifname)?;
        let mac = sys::hwaddr(ifname)?;
        let mtu = sys::mtu(ifname)? as usize;

        let (xsk, mode, zc_refused) = match open_xsk(&pool, ifindex, XDP_ZEROCOPY) {
            Ok(x) => (x, XdpMode::ZeroCopy, None),
            Err(zc) => {
                let x = open_xsk(&pool, ifindex, XDP_COPY)
                    .map_err(|e| io::Error::new(e.kind(), format!("{e} (zero-copy: {zc})")))?;
                (x, XdpMode::Copy, Some(zc.to_string()))
            }
        };

        let mut a = Attr::new()
            .u32(0, bpf::MAP_TYPE_XSKMAP)
            .u32(4, 4)
            .u32(8, 4)
            .u32(12, 64)
            .name(28, "ironflow_xsks");
        let map = bpf_fd(
            bpf_call(bpf::MAP_CREATE, &mut a).map_err(|e| step_err("BPF_MAP_CREATE(XSKMAP)", e))?,
            "BPF_MAP_CREATE",
        )?;
        // The socket goes into the map only once its fill ring has buffers (below): the
        // program redirects to it as soon as it is there, and a frame redirected to a socket
        // with an empty fill ring is dropped (XDP_STATISTICS rx_dropped, counted as this
        // port's drops). Until then the program passes frames to the kernel, as before the
        // port opened.
        let prog = load_program(map.as_raw_fd())?;
        let (link, attach) =
            match attach_program(prog.as_raw_fd(), ifindex, bpf::XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, XdpAttach::Native),
                Err(native) if mode == XdpMode::Copy => {
                    log::debug!("{ifname}: native XDP refused ({native}); trying generic");
                    let l = attach_program(prog.as_raw_fd(), ifindex, bpf::XDP_FLAGS_SKB_MODE)
                        .map_err(|e| {
                            io::Error::new(e.kind(), format!("{e} (native mode: {native})"))
                        })?;
                    (l, XdpAttach::Generic)
                }
                Err(e) => return Err(e),
            };

        let num_bufs = pool.num_bufs();
        let mut lent = Vec::with_capacity(num_bufs);
        lent.resize_with(num_bufs, || None);
        let fill_target = FILL_TARGET.min(num_bufs / 4).max(1);
        let mode_s = match mode {
            XdpMode::ZeroCopy => "zero-copy",
            XdpMode::Copy => "copy",
        };
        let attach_s = match attach {
            XdpAttach::Native => "native",
            XdpAttach::Generic => "generic",
        };
        log::info!(
            "{ifname}: AF_XDP port, queue 0, {mode_s} mode, XDP program attached {attach_s}, \
             mtu {mtu}, {fill_target} rx buffers{}",
            zc_refused
                .as_deref()
                .map(|e| format!(" (zero-copy refused: {e})"))
                .unwrap_or_default()
        );
        let mut port = AfXdpPort {
            link,
            xsk,
            _prog: prog,
            map,
            lent,
            region_phys: pool.region().phys,
            stride,
            pool,
            fill_target,
            posted: 0,
            mode,
            attach,
            zc_refused,
            name: format!("af_xdp {ifname} ({mode_s}, {attach_s})"),
            ifname: ifname.to_string(),
            mac,
            max_tx: (mtu + 18).min(stride - DRIVER_RESERVE),
            stats: NicStats::default(),
        };
        port.refill();
        let key: u32 = 0;
        let value: u32 = port.xsk.fd.as_raw_fd() as u32;
        let mut a = Attr::new()
            .u32(0, port.map.as_raw_fd() as u32)
            .u64(8, &key as *const u32 as u64)
            .u64(16, &value as *const u32 as u64)
            .u64(24, 0);
        bpf_call(bpf::MAP_UPDATE_ELEM, &mut a)
            .map_err(|e| step_err("BPF_MAP_UPDATE_ELEM(xsks[0] = socket)", e))?;
        Ok(port)
    }

    /// The AF_XDP mode the kernel granted.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Why the kernel refused `XDP_ZEROCOPY` (the step and errno), in copy mode.
    pub fn zero_copy_refusal(&self) -> Option<&str> {
        self.zc_refused.as_deref()
    }

    /// How the XDP program is attached.
    pub fn attach(&self) -> XdpAttach {
        self.attach
    }

    /// The interface this port is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The kernel's counters for the socket (`XDP_STATISTICS`).
    pub fn xdp_statistics(&self) -> XdpStatistics {
        let mut st = XdpStatistics::default();
        // SAFETY: `XdpStatistics` is plain u64s, valid for any bytes.
        let _ = unsafe {
            sys::getsockopt(
                self.xsk.fd.as_raw_fd(),
                SOL_XDP,
                XDP_STATISTICS,
                &mut st,
                "XDP_STATISTICS",
            )
        };
        st
    }

    /// UMEM offset of a buffer's first byte.
    #[inline]
    fn chunk_addr(&self, buf: &PacketBuf) -> u64 {
        buf.index() as u64 * self.stride as u64
    }

    /// Posts fresh buffers to the fill ring up to the target.
    fn refill(&mut self) {
        let want = self.fill_target.saturating_sub(self.posted);
        if want == 0 {
            return;
        }
        let n = (self.xsk.fill.free() as usize).min(want);
        let mut done = 0;
        while done < n {
            let Some(buf) = self.pool.alloc() else {
                self.stats.rx_no_buffer += 1;
                break;
            };
            let idx = buf.index();
            let addr = self.chunk_addr(&buf);
            let slot = self
                .xsk
                .fill
                .slot(self.xsk.fill.local.wrapping_add(done as u32), 8);
            // SAFETY: `slot` is an 8-byte aligned fill-ring entry inside the mapping that the
            // kernel does not read until `publish` (it is beyond the producer index).
            unsafe { (slot as *mut u64).write(addr) };
            self.lent[idx] = Some(buf);
            done += 1;
        }
        if done > 0 {
            self.xsk.fill.local = self.xsk.fill.local.wrapping_add(done as u32);
            self.xsk.fill.publish();
            self.posted += done;
        }
    }

    /// Returns the buffers of finished transmissions to the pool.
    fn reclaim(&mut self) -> usize {
        let n = self.xsk.comp.available();
        for k in 0..n {
            let slot = self.xsk.comp.slot(self.xsk.comp.local.wrapping_add(k), 8);
            // SAFETY: an 8-byte aligned completion-ring entry below the kernel's producer
            // index (acquire-loaded in `available`), so the kernel finished writing it.
            let addr = unsafe { (slot as *const u64).read() };
            match self.take_lent(addr) {
                Some(buf) => drop(buf),
                None => self.stats.tx_errors += 1,
            }
        }
        if n > 0 {
            self.xsk.comp.local = self.xsk.comp.local.wrapping_add(n);
            self.xsk.comp.release();
        }
        n as usize
    }

    /// Takes the lent buffer a UMEM address points into, if any.
    #[inline]
    fn take_lent(&mut self, addr: u64) -> Option<PacketBuf> {
        let idx = usize::try_from(addr / self.stride as u64).ok()?;
        self.lent.get_mut(idx)?.take()
    }

    /// Kicks the kernel to transmit what is in the tx ring (copy mode transmits in the system
    /// call; zero-copy drivers only when they asked for a wakeup).
    fn kick_tx(&mut self) {
        if self.mode == XdpMode::Copy || self.xsk.tx.needs_wakeup() {
            // SAFETY: sendto(2) with no data and no address: the AF_XDP "transmit now" call.
            unsafe {
                libc::sendto(
                    self.xsk.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            self.stats.notifications += 1;
        }
    }
}

fn load_program(map_fd: RawFd) -> io::Result<OwnedFd> {
    let prog = redirect_program(map_fd);
    let license = c"Apache-2.0";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::new()
            .u32(0, bpf::PROG_TYPE_XDP)
            .u32(4, prog.len() as u32)
            .u64(8, prog.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .name(48, "ironflow_xsk")
            .u32(68, bpf::ATTACH_XDP);
        if let Some(buf) = log {
            a = a
                .u32(24, 1)
                .u32(28, buf.len() as u32)
                .u64(32, buf.as_mut_ptr() as u64);
            bpf_call(bpf::PROG_LOAD, &mut a)
        } else {
            bpf_call(bpf::PROG_LOAD, &mut a)
        }
    };
    match attempt(None) {
        Ok(fd) => bpf_fd(fd, "BPF_PROG_LOAD"),
        Err(errno) => {
            let mut log = vec![0u8; 16 * 1024];
            let _ = attempt(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end])
                .trim()
                .replace('\n', "; ");
            Err(io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                format!(
                    "BPF_PROG_LOAD(XDP): {} (verifier: {text})",
                    io::Error::from_raw_os_error(errno)
                ),
            ))
        }
    }
}

fn attach_program(prog_fd: RawFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new()
        .u32(0, prog_fd as u32)
        .u32(4, ifindex)
        .u32(8, bpf::ATTACH_XDP)
        .u32(12, flags);
    let what = if flags == bpf::XDP_FLAGS_DRV_MODE {
        "BPF_LINK_CREATE(XDP, native)"
    } else {
        "BPF_LINK_CREATE(XDP, generic)"
    };
    let r = bpf_call(bpf::LINK_CREATE, &mut a).map_err(|e| step_err(what, e))?;
    bpf_fd(r, what)
}

/// The socket (readable when frames wait), for `poll(2)` in an idle loop.
impl AsRawFd for AfXdpPort {
    fn as_raw_fd(&self) -> RawFd {
        self.xsk.fd.as_raw_fd()
    }
}

impl Nic for AfXdpPort {
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
        if queue != 0 || batch.is_full() {
            return 0;
        }
        let avail = self.xsk.rx.available().min(batch.free_capacity() as u32);
        let mut n = 0;
        for k in 0..avail {
            let slot = self.xsk.rx.slot(self.xsk.rx.local.wrapping_add(k), 16);
            // SAFETY: a 16-byte aligned rx-ring descriptor below the kernel's producer index
            // (acquire-loaded in `available`): the kernel finished writing it.
            let (addr, len, options) = unsafe {
                (
                    (slot as *const u64).read(),
                    (slot.add(8) as *const u32).read() as usize,
                    (slot.add(12) as *const u32).read(),
                )
            };
            let off = (addr % self.stride as u64) as usize;
            let Some(mut buf) = self.take_lent(addr) else {
                self.stats.rx_errors += 1;
                continue;
            };
            self.posted -= 1;
            let headroom = self.pool.headroom();
            let ok = options == 0
                && len >= 14
                && off >= DRIVER_RESERVE
                && off + len <= self.stride
                && if off >= headroom {
                    buf.set_len(off - headroom + len) && buf.trim_front(off - headroom)
                } else {
                    buf.prepend(headroom - off) && buf.set_len(len)
                };
            if !ok {
                self.stats.rx_errors += 1;
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            // Cannot fail: at most `free_capacity` descriptors are read.
            let _ = batch.push(buf);
            n += 1;
        }
        if avail > 0 {
            self.xsk.rx.local = self.xsk.rx.local.wrapping_add(avail);
            self.xsk.rx.release();
        }
        self.refill();
        if self.xsk.fill.needs_wakeup() {
            // SAFETY: recvfrom(2) with no buffer: the AF_XDP "fill ring has buffers" wakeup.
            unsafe {
                libc::recvfrom(
                    self.xsk.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            self.stats.notifications += 1;
        }
        n
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 {
            return 0;
        }
        self.reclaim();
        if batch.is_empty() {
            if self.xsk.tx.outstanding() > 0 {
                self.kick_tx();
            }
            return 0;
        }
        let free = self.xsk.tx.free() as usize;
        let mut queued = 0u32;
        let mut sent = 0;
        while !batch.is_empty() && (queued as usize) < free {
            let len = batch[0].len();
            if len < 14 || len > self.max_tx {
                drop(batch.drain(..1));
                self.stats.tx_errors += 1;
                continue;
            }
            let Some(front) = batch.drain(..1).next() else {
                break;
            };
            let buf = if Rc::ptr_eq(front.pool(), &self.pool) {
                front
            } else {
                // A foreign buffer: copy it into one of ours (the kernel sees only our UMEM).
                let copy = self
                    .pool
                    .alloc()
                    .and_then(|mut own| own.copy_from_slice(front.data()).then_some(own));
                match copy {
                    Some(own) => own,
                    None => {
                        // Pool exhausted: put it back at the front and stop.
                        let mut rest = PacketBatch::new();
                        let _ = rest.push(front);
                        for b in batch.drain(..) {
                            let _ = rest.push(b);
                        }
                        *batch = rest;
                        break;
                    }
                }
            };
            let addr = buf.phys_addr() - self.region_phys;
            let idx = buf.index();
            let slot = self.xsk.tx.slot(self.xsk.tx.local.wrapping_add(queued), 16);
            // SAFETY: a 16-byte aligned tx-ring descriptor beyond the producer index, so the
            // kernel does not read it until `publish`.
            unsafe {
                (slot as *mut u64).write(addr);
                (slot.add(8) as *mut u32).write(buf.len() as u32);
                (slot.add(12) as *mut u32).write(0);
            }
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += buf.len() as u64;
            self.lent[idx] = Some(buf);
            queued += 1;
            sent += 1;
        }
        if queued > 0 {
            self.xsk.tx.local = self.xsk.tx.local.wrapping_add(queued);
            self.xsk.tx.publish();
        }
        self.stats.tx_full += batch.len() as u64;
        self.kick_tx();
        sent
    }

    fn tx_reclaim(&mut self, queue: u16) -> usize {
        if queue != 0 {
            return 0;
        }
        if self.xsk.tx.outstanding() > 0 {
            self.kick_tx();
        }
        self.reclaim()
    }

    fn stats(&self) -> NicStats {
        let x = self.xdp_statistics();
        let mut s = self.stats;
        s.rx_no_buffer += x.rx_dropped + x.rx_ring_full;
        s.rx_errors += x.rx_invalid_descs;
        s.tx_errors += x.tx_invalid_descs;
        s
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        // Fields drop in declaration order (link, socket, program, map, then the lent
        // buffers); nothing else to undo. Logged so a test log shows the detach.
        log::debug!("{}: AF_XDP port closed, XDP program detached", self.ifname);
        let _ = &self.link;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = redirect_program(7);
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        assert_eq!((p[0].code, p[0].regs, p[0].off), (0x61, 0x12, 16));
        assert_eq!((p[1].code, p[1].regs, p[1].imm), (0x18, 0x11, 7));
        assert_eq!((p[3].code, p[3].regs, p[3].imm), (0xb7, 0x03, 2));
        assert_eq!((p[4].code, p[4].imm), (0x85, 51));
        assert_eq!(p[5].code, 0x95);
        assert_eq!(std::mem::size_of::<UmemReg>(), 32);
        assert_eq!(std::mem::size_of::<MmapOffsets>(), 128);
        assert_eq!(std::mem::size_of::<SockaddrXdp>(), 16);
    }
}
