//! Shared test plumbing: root check, uniquely named veth pairs with one end in a private
//! network namespace, raw AF_PACKET sockets created inside a namespace, frame builders.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use drivers::dma::PacketBatch;
use drivers::nic::Nic;
use switch_core::packet::Frame;

/// Fails (never skips) when not root: these tests create veths and namespaces.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the hosted backend tests need root (they create veth pairs and network namespaces \
         with `ip`); run them as root, e.g. `sudo -E cargo test -p hosted`"
    );
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `cond` holds within `timeout` (checked every 10 ms).
///
/// For what the kernel undoes when the last reference to a descriptor closes (a tap that is
/// not persistent, an XDP link): a parallel test's `Command` forks, and the child holds a copy
/// of every descriptor until its exec closes the CLOEXEC ones, so a drop here is not always
/// the last close. On a loaded machine that window lasts milliseconds.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// A veth pair: `port` in the root namespace (for the backend under test), `peer` in the
/// namespace `ns`. Removed (both) on drop.
pub struct Veth {
    pub port: String,
    pub peer: String,
    pub ns: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Veth {
    pub fn new() -> Veth {
        require_root();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let v = Veth {
            port: format!("hp{id}a"),
            peer: format!("hp{id}b"),
            ns: format!("ifhosted-{id}"),
        };
        sh(&["ip", "netns", "add", &v.ns]);
        sh(&[
            "ip", "link", "add", &v.port, "type", "veth", "peer", "name", &v.peer, "netns", &v.ns,
        ]);
        sh_quiet(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", v.port),
        ]);
        sh_quiet(&[
            "ip",
            "netns",
            "exec",
            &v.ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", v.peer),
        ]);
        sh(&["ip", "link", "set", &v.port, "up"]);
        sh(&[
            "ip", "netns", "exec", &v.ns, "ip", "link", "set", &v.peer, "up",
        ]);
        sh(&[
            "ip", "netns", "exec", &v.ns, "ip", "link", "set", "lo", "up",
        ]);
        // Offloads off on both ends (see the afpacket module docs); ethtool may be missing.
        sh_quiet(&[
            "ethtool", "-K", &v.port, "gro", "off", "tso", "off", "gso", "off",
        ]);
        sh_quiet(&[
            "ip", "netns", "exec", &v.ns, "ethtool", "-K", &v.peer, "tso", "off", "gso", "off",
            "gro", "off",
        ]);
        // Wait for carrier on both ends.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            let s = std::fs::read_to_string(format!("/sys/class/net/{}/operstate", v.port))
                .unwrap_or_default();
            if s.trim() == "up" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        v
    }

    /// A raw socket on the peer end (inside the namespace), bound to it, non-blocking.
    pub fn peer_socket(&self) -> RawSock {
        RawSock::in_netns(&self.ns, &self.peer)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        sh_quiet(&["ip", "link", "del", &self.port]);
        sh_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

/// A raw AF_PACKET socket bound to one interface (ETH_P_ALL), non-blocking.
pub struct RawSock {
    pub fd: OwnedFd,
}

impl RawSock {
    /// Opens a socket on `ifname` in namespace `ns` (`None`: the current one). The namespace
    /// is entered on a helper thread only; the socket stays in it.
    pub fn in_netns(ns: &str, ifname: &str) -> RawSock {
        let ns = ns.to_string();
        let ifname = ifname.to_string();
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
            // SAFETY: setns on this helper thread only, with a namespace fd we opened.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            RawSock::open(&ifname)
        })
        .join()
        .unwrap()
    }

    pub fn open(ifname: &str) -> RawSock {
        let cname = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: plain libc calls with valid arguments; results checked.
        unsafe {
            let idx = libc::if_nametoindex(cname.as_ptr());
            assert!(idx != 0, "no interface {ifname}");
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            );
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = idx as i32;
            let r = libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let one: i32 = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                23, // PACKET_IGNORE_OUTGOING
                &one as *const i32 as *const libc::c_void,
                4,
            );
            let big: i32 = 16 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &big as *const i32 as *const libc::c_void,
                4,
            );
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                &big as *const i32 as *const libc::c_void,
                4,
            );
            RawSock { fd }
        }
    }

    /// Sends one frame, retrying while the kernel pushes back.
    pub fn send(&self, frame: &[u8]) {
        let t = Instant::now();
        loop {
            // SAFETY: valid buffer for the call.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                )
            };
            if r == frame.len() as isize {
                return;
            }
            let e = std::io::Error::last_os_error();
            assert!(
                matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS)),
                "send: {e}"
            );
            assert!(t.elapsed() < Duration::from_secs(5), "send stuck: {e}");
            std::thread::yield_now();
        }
    }

    /// Receives one frame, or None.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: valid buffer for the call.
        let r = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return None;
        }
        buf.truncate(r as usize);
        Some(buf)
    }

    /// Receives frames of the test ethertype until `n` arrived or `timeout`.
    pub fn recv_test_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < n && t.elapsed() < timeout {
            match self.try_recv() {
                Some(f) if is_test_frame(&f) => got.push(f),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        got
    }
}

/// The local experimental ethertype the test frames carry (so stray IPv6/LLDP noise is
/// ignored).
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// A test frame of `len` bytes: broadcast-ish dst, fixed src, optional 802.1Q tag, the test
/// ethertype, the sequence number, then a pattern.
pub fn test_frame(len: usize, seq: u32, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    let mut i = 0u8;
    while f.len() < len {
        f.push(i);
        i = i.wrapping_add(7);
    }
    f
}

pub fn is_test_frame(f: &[u8]) -> bool {
    let et = |o: usize| f.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    et(12) == Some(TEST_ETHERTYPE) || (et(12) == Some(0x8100) && et(16) == Some(TEST_ETHERTYPE))
}

pub fn seq_of(f: &[u8]) -> u32 {
    let o = if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
        18
    } else {
        14
    };
    u32::from_be_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]])
}

/// Polls `nic` until `n` test frames arrived or `timeout`; other frames are dropped.
pub fn rx_test_frames(nic: &mut dyn Nic, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let t = Instant::now();
    let mut batch = PacketBatch::new();
    while got.len() < n && t.elapsed() < timeout {
        if nic.rx_burst(0, &mut batch) == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
        for b in batch.drain(..) {
            assert!(
                b.headroom() >= 100,
                "pool headroom kept in front of the frame"
            );
            if is_test_frame(b.data()) {
                got.push(b.data().to_vec());
            }
        }
    }
    got
}

impl RawSock {
    /// Turns on PACKET_AUXDATA so `recv_wire` can put stripped VLAN tags back.
    pub fn enable_auxdata(&self) {
        let one: i32 = 1;
        // SAFETY: valid option value for the call.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                8, // PACKET_AUXDATA
                &one as *const i32 as *const libc::c_void,
                4,
            )
        };
        assert_eq!(r, 0);
    }

    /// Receives one frame as it was on the wire (VLAN tag from the aux data re-inserted).
    pub fn try_recv_wire(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut cbuf = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; the pointers set below are valid for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: as above.
        let r = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if r < 0 {
            return None;
        }
        buf.truncate(r as usize);
        // SAFETY: walking the control messages the kernel wrote into `cbuf`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == 8 {
                    let d = libc::CMSG_DATA(c);
                    let status = std::ptr::read_unaligned(d as *const u32);
                    let tci = std::ptr::read_unaligned(d.add(16) as *const u16);
                    let tpid = std::ptr::read_unaligned(d.add(18) as *const u16);
                    if status & 0x10 != 0 && buf.len() >= 12 {
                        let tpid = if status & 0x40 != 0 && tpid != 0 {
                            tpid
                        } else {
                            0x8100
                        };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend_from_slice(&tci.to_be_bytes());
                        buf.splice(12..12, tag);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Some(buf)
    }

    pub fn recv_wire_test_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < n && t.elapsed() < timeout {
            match self.try_recv_wire() {
                Some(f) if is_test_frame(&f) => got.push(f),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_micros(100)),
            }
        }
        got
    }
}

/// The frames every backend must carry byte-identical: minimum size, VLAN-tagged, 1514 bytes,
/// and 1518 bytes tagged.
pub fn sample_frames() -> Vec<Vec<u8>> {
    vec![
        test_frame(60, 1, None),
        test_frame(64, 2, Some(0x2064)),
        test_frame(1514, 3, None),
        test_frame(1518, 4, Some(0x0fff)),
        test_frame(100, 5, Some(0x0000)),
    ]
}

fn batch_of(pool: &std::rc::Rc<drivers::dma::PacketPool>, frames: &[Vec<u8>]) -> PacketBatch {
    let mut b = PacketBatch::new();
    for f in frames {
        let mut buf = pool.alloc().expect("pool buffer");
        assert!(buf.copy_from_slice(f));
        b.push(buf).unwrap();
    }
    b
}

/// Sends `batch` completely (retrying on a full queue), with a deadline.
pub fn tx_all(nic: &mut dyn Nic, batch: &mut PacketBatch) -> usize {
    let t = Instant::now();
    let mut sent = 0;
    while !batch.is_empty() {
        sent += nic.tx_burst(0, batch);
        if !batch.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "tx stuck");
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    sent
}

/// The behaviour every backend must show, with `peer` a raw socket on the other end of the
/// link (auxdata enabled here).
pub fn conformance(nic: &mut dyn Nic, peer: RawSock, pool: &std::rc::Rc<drivers::dma::PacketPool>) {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    peer.enable_auxdata();
    assert_eq!(nic.num_rx_queues(), 1);
    assert!(nic.link_up(), "{} link up", nic.name());
    let before = nic.stats();
    let free_before = pool.free_count();

    // rx: byte-identical, tags on the wire re-inserted.
    let frames = sample_frames();
    for f in &frames {
        peer.send(f);
    }
    let got = rx_test_frames(nic, frames.len(), Duration::from_secs(5));
    assert_eq!(
        got.len(),
        frames.len(),
        "{}: all sample frames received",
        nic.name()
    );
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(
            g.len(),
            f.len(),
            "{}: frame {} length",
            nic.name(),
            seq_of(f)
        );
        assert!(g == f, "{}: frame {} differs", nic.name(), seq_of(f));
    }
    let s = nic.stats();
    assert!(s.rx_packets - before.rx_packets >= frames.len() as u64);
    assert!(s.rx_bytes - before.rx_bytes >= frames.iter().map(|f| f.len() as u64).sum());

    // Out-of-range queue: nothing.
    let mut empty = PacketBatch::new();
    assert_eq!(nic.rx_burst(1, &mut empty), 0);

    // tx: byte-identical at the peer.
    let mut batch = batch_of(pool, &frames);
    let tx_before = nic.stats();
    assert_eq!(tx_all(nic, &mut batch), frames.len());
    let got = peer.recv_wire_test_frames(frames.len(), Duration::from_secs(5));
    assert_eq!(
        got.len(),
        frames.len(),
        "{}: all sample frames sent",
        nic.name()
    );
    for (g, f) in got.iter().zip(&frames) {
        assert!(
            g == f,
            "{}: sent frame {} differs at the peer",
            nic.name(),
            seq_of(f)
        );
    }
    let s = nic.stats();
    assert_eq!(s.tx_packets - tx_before.tx_packets, frames.len() as u64);
    assert_eq!(
        s.tx_bytes - tx_before.tx_bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );

    // Bad frames on tx: counted, dropped, not returned.
    let mut bad = PacketBatch::new();
    let mut short = pool.alloc().unwrap();
    assert!(short.copy_from_slice(&[1, 2, 3]));
    bad.push(short).unwrap();
    let errs = nic.stats().tx_errors;
    assert_eq!(nic.tx_burst(0, &mut bad), 0);
    assert!(bad.is_empty());
    assert_eq!(nic.stats().tx_errors, errs + 1);

    // 10,000 frames peer -> port, paced by a window on what the port has received.
    const N: u32 = 10_000;
    const WINDOW: u64 = 256;
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    let sender = std::thread::spawn(move || {
        for seq in 0..N {
            let t = Instant::now();
            while u64::from(seq) >= r2.load(Ordering::Acquire) + WINDOW {
                assert!(t.elapsed() < Duration::from_secs(10), "receiver stalled");
                std::thread::yield_now();
            }
            peer.send(&test_frame(60 + (seq as usize % 1400), 1000 + seq, None));
        }
        peer
    });
    let rx0 = nic.stats();
    let mut seen = vec![false; N as usize];
    let mut count = 0u64;
    let t = Instant::now();
    let mut batch = PacketBatch::new();
    while count < u64::from(N) && t.elapsed() < Duration::from_secs(30) {
        if nic.rx_burst(0, &mut batch) == 0 {
            std::thread::yield_now();
        }
        for b in batch.drain(..) {
            let d = b.data();
            if is_test_frame(d) {
                let seq = seq_of(d).wrapping_sub(1000) as usize;
                assert!(
                    seq < N as usize && !seen[seq],
                    "unexpected or duplicate frame"
                );
                assert_eq!(d.len(), 60 + seq % 1400);
                seen[seq] = true;
                count += 1;
                received.store(count, Ordering::Release);
            }
        }
    }
    let peer = sender.join().unwrap();
    assert_eq!(
        count,
        u64::from(N),
        "{}: paced burst lost frames",
        nic.name()
    );
    let s = nic.stats();
    assert!(s.rx_packets - rx0.rx_packets >= u64::from(N));
    assert_eq!(
        s.rx_errors,
        before.rx_errors,
        "{}: no rx errors",
        nic.name()
    );

    // 10,000 frames port -> peer, paced by what the peer has received.
    let got = Arc::new(AtomicU64::new(0));
    let g2 = got.clone();
    let receiver = std::thread::spawn(move || {
        let mut seen = vec![false; N as usize];
        let mut n = 0u64;
        let t = Instant::now();
        while n < u64::from(N) && t.elapsed() < Duration::from_secs(30) {
            match peer.try_recv_wire() {
                Some(f) if is_test_frame(&f) => {
                    let seq = seq_of(&f).wrapping_sub(20_000) as usize;
                    if seq < N as usize && !seen[seq] && f.len() == 60 + seq % 1400 {
                        seen[seq] = true;
                        n += 1;
                        g2.store(n, Ordering::Release);
                    }
                }
                Some(_) => {}
                None => std::thread::yield_now(),
            }
        }
        n
    });
    let tx0 = nic.stats();
    let mut seq = 0u32;
    let t = Instant::now();
    while seq < N {
        while u64::from(seq) >= got.load(Ordering::Acquire) + WINDOW {
            assert!(t.elapsed() < Duration::from_secs(30), "peer stalled");
            nic.tx_reclaim(0);
            std::thread::yield_now();
        }
        let k = (N - seq).min(32);
        let frames: Vec<_> = (seq..seq + k)
            .map(|s| test_frame(60 + (s as usize % 1400), 20_000 + s, None))
            .collect();
        let mut b = batch_of(pool, &frames);
        tx_all(nic, &mut b);
        seq += k;
    }
    let n = receiver.join().unwrap();
    assert_eq!(
        n,
        u64::from(N),
        "{}: paced tx burst lost frames",
        nic.name()
    );
    let s = nic.stats();
    assert_eq!(s.tx_packets - tx0.tx_packets, u64::from(N));

    // Every buffer is back once the port reclaimed its transmissions.
    let t = Instant::now();
    loop {
        nic.tx_reclaim(0);
        let lent = free_before.saturating_sub(pool.free_count());
        if lent == 0 || t.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        pool.free_count(),
        free_before,
        "{}: buffers leaked",
        nic.name()
    );
}

/// Gives the peer end an address and a permanent neighbour, then sends one UDP datagram from
/// a kernel socket in the namespace (checksum offload left on: the frame leaves the peer
/// with a partial checksum). Returns the payload.
pub fn send_udp_from_peer(v: &Veth) -> Vec<u8> {
    sh(&[
        "ip",
        "netns",
        "exec",
        &v.ns,
        "ip",
        "addr",
        "replace",
        "10.213.0.2/24",
        "dev",
        &v.peer,
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &v.ns,
        "ip",
        "neigh",
        "replace",
        "10.213.0.1",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        &v.peer,
        "nud",
        "permanent",
    ]);
    let ns = v.ns.clone();
    let payload: Vec<u8> = (0..333u32).map(|i| (i * 13) as u8).collect();
    let p2 = payload.clone();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
        // SAFETY: setns on this helper thread only.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let s = std::net::UdpSocket::bind("10.213.0.2:0").expect("bind");
        s.send_to(&p2, "10.213.0.1:4789").expect("send");
    })
    .join()
    .unwrap();
    payload
}

/// If `frame` is the UDP datagram to port 4789 `send_udp_from_peer` sent (payload checked):
/// whether its UDP checksum verifies.
pub fn udp_checksum_ok(frame: &[u8], payload: &[u8]) -> Option<bool> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = &frame[14 + ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != 4789 {
        return None;
    }
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(&udp[8..ulen], payload, "UDP payload");
    let mut sum: u32 = 0;
    for c in frame[26..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    sum += 17 + ulen as u32;
    for c in udp[..ulen].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    Some(sum == 0xffff)
}

/// Polls `nic` for the UDP datagram `send_udp_from_peer` sent; `Some(checksum valid)`.
pub fn rx_udp(nic: &mut dyn Nic, payload: &[u8]) -> Option<bool> {
    let t = Instant::now();
    let mut batch = PacketBatch::new();
    while t.elapsed() < Duration::from_secs(5) {
        nic.rx_burst(0, &mut batch);
        for b in batch.drain(..) {
            if let Some(ok) = udp_checksum_ok(b.data(), payload) {
                return Some(ok);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// Whether `fd` polls readable within `ms` milliseconds.
pub fn poll_readable(fd: std::os::fd::RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r == 1 && p.revents & libc::POLLIN != 0
}

/// The port's fd polls idle, then readable once a frame waits, then idle again once read.
pub fn check_poll(nic: &mut dyn Nic, fd: std::os::fd::RawFd, peer: &RawSock) {
    let mut batch = PacketBatch::new();
    while nic.rx_burst(0, &mut batch) > 0 {
        batch.clear();
    }
    assert!(
        !poll_readable(fd, 50),
        "{}: idle port polls idle",
        nic.name()
    );
    peer.send(&test_frame(60, 99, None));
    assert!(
        poll_readable(fd, 2000),
        "{}: a waiting frame makes the fd readable",
        nic.name()
    );
    let got = rx_test_frames(nic, 1, Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    assert!(
        !poll_readable(fd, 50),
        "{}: idle again once read",
        nic.name()
    );
}
