//! Forwarding micro-benchmark of the hosted data-port backends: frames from a generator in one
//! namespace enter port A (a veth end in the root namespace), the benchmark loop moves every
//! received batch to port B with `tx_burst`, and B's peer in a second namespace counts what
//! arrives. AF_PACKET and AF_XDP are measured alternately in the same run (root needed).
//!
//! ```text
//! gen ns: hpg<id>b ──veth── hpg<id>a [port A] ─rx_burst→tx_burst─ [port B] hps<id>a ──veth── hps<id>b :sink ns
//! ```
//!
//! The generator is a thread inside the generator namespace sending 64-byte frames (or
//! `--size`) with `sendmmsg` on a raw socket (`PACKET_QDISC_BYPASS`), as fast as it can: the
//! offered load is whatever one core of this machine produces, and the kernel's veth receive
//! work for port A runs on the generator's core too. The forwarding loop is pinned to the other
//! core.
//!
//! ```sh
//! cargo run --release -p hosted --example port_pps -- [--secs 5] [--rounds 3] [--size 64] [--kind both|packet|xdp]
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drivers::dma::PacketBatch;
use drivers::nic::Nic;
use hosted::PortKind;

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data; CLOCK_THREAD_CPUTIME_ID needs no preconditions.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Topo {
    id: String,
}

impl Topo {
    fn new() -> Topo {
        let id = format!("{}", std::process::id() % 100_000);
        let t = Topo { id };
        for (side, ns) in [("g", t.ns("g")), ("s", t.ns("s"))] {
            let a = t.port(side);
            let b = t.peer(side);
            sh(&["ip", "netns", "add", &ns]);
            sh(&[
                "ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &ns,
            ]);
            sh_quiet(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{a}.disable_ipv6=1"),
            ]);
            sh_quiet(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{b}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", &a, "up"]);
            sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", &b, "up"]);
            sh_quiet(&[
                "ethtool", "-K", &a, "gro", "off", "tso", "off", "gso", "off",
            ]);
            sh_quiet(&[
                "ip", "netns", "exec", &ns, "ethtool", "-K", &b, "tso", "off", "gso", "off",
            ]);
        }
        std::thread::sleep(Duration::from_millis(300));
        t
    }
    fn ns(&self, side: &str) -> String {
        format!("hpps{side}-{}", self.id)
    }
    fn port(&self, side: &str) -> String {
        format!("hp{side}{}a", self.id)
    }
    fn peer(&self, side: &str) -> String {
        format!("hp{side}{}b", self.id)
    }
    fn sink_rx(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("s"),
                "cat",
                &format!("/sys/class/net/{}/statistics/rx_packets", self.peer("s")),
            ])
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for side in ["g", "s"] {
            sh_quiet(&["ip", "link", "del", &self.port(side)]);
            sh_quiet(&["ip", "netns", "del", &self.ns(side)]);
        }
    }
}

/// Starts the generator thread in namespace `ns` on interface `ifname`; returns its counter.
fn generator(
    ns: String,
    ifname: String,
    size: usize,
    run: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let h = std::thread::spawn(move || {
        pin(1);
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
        // SAFETY: all plain libc calls on this thread with valid arguments; results checked.
        let fd = unsafe {
            assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0);
            let fd = OwnedFd::from_raw_fd(fd);
            let one: i32 = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                20, // PACKET_QDISC_BYPASS
                &one as *const i32 as *const libc::c_void,
                4,
            );
            let name = std::ffi::CString::new(ifname).unwrap();
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            assert!(sll.sll_ifindex > 0);
            assert_eq!(
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32
                ),
                0
            );
            fd
        };
        let mut frame = vec![0u8; size.max(60)];
        frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        const N: usize = 64;
        // SAFETY: plain data, filled below.
        let mut iov: [libc::iovec; N] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; N] = unsafe { std::mem::zeroed() };
        for i in 0..N {
            iov[i].iov_base = frame.as_mut_ptr() as *mut libc::c_void;
            iov[i].iov_len = frame.len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        while run.load(Ordering::Relaxed) {
            // SAFETY: `msgs` point at `iov`, which point at `frame`, all alive.
            let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), N as u32, 0) };
            if r > 0 {
                s2.fetch_add(r as u64, Ordering::Relaxed);
            }
        }
    });
    (sent, h)
}

struct Result {
    offered: f64,
    forwarded: f64,
    sink: f64,
    rx_no_buffer: u64,
    tx_full: u64,
    /// Share of a core the forwarding thread got (the machine may be shared).
    cpu_share: f64,
    /// Frames forwarded per second of the forwarding thread's CPU time (user + system,
    /// including the sink's softirq work its transmissions trigger).
    per_cpu_second: f64,
}

fn round(topo: &Topo, kind: PortKind, size: usize, secs: f64) -> Result {
    let pool = hosted::dma::host_pool(8192).expect("pool");
    let (mut a, _) = hosted::open_port(&topo.port("g"), kind, &pool).expect("port A");
    let (mut b, _) = hosted::open_port(&topo.port("s"), kind, &pool).expect("port B");
    eprintln!("  {} -> {}", a.name(), b.name());
    pin(0);
    let run = Arc::new(AtomicBool::new(true));
    let (sent, gen_thread) = generator(topo.ns("g"), topo.peer("g"), size, run.clone());
    let mut batch = PacketBatch::new();
    let forward = |a: &mut Box<dyn Nic>, b: &mut Box<dyn Nic>, batch: &mut PacketBatch| {
        if a.rx_burst(0, batch) > 0 {
            b.tx_burst(0, batch);
            // What B could not take is dropped, as the switch would.
            batch.clear();
        } else {
            b.tx_reclaim(0);
        }
    };
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        forward(&mut a, &mut b, &mut batch);
    }
    let (s0, a0, b0, k0) = (
        sent.load(Ordering::Relaxed),
        a.stats(),
        b.stats(),
        topo.sink_rx(),
    );
    let c0 = thread_cpu();
    let t = Instant::now();
    let dur = Duration::from_secs_f64(secs);
    while t.elapsed() < dur {
        for _ in 0..64 {
            forward(&mut a, &mut b, &mut batch);
        }
    }
    let el = t.elapsed().as_secs_f64();
    let cpu = (thread_cpu() - c0).as_secs_f64();
    let (s1, a1, b1) = (sent.load(Ordering::Relaxed), a.stats(), b.stats());
    run.store(false, Ordering::Relaxed);
    gen_thread.join().unwrap();
    // Let the last frames land, then read the sink.
    std::thread::sleep(Duration::from_millis(100));
    let k1 = topo.sink_rx();
    Result {
        offered: (s1 - s0) as f64 / el,
        forwarded: (b1.tx_packets - b0.tx_packets) as f64 / el,
        sink: (k1.saturating_sub(k0)) as f64 / el,
        rx_no_buffer: a1.rx_no_buffer - a0.rx_no_buffer,
        tx_full: b1.tx_full - b0.tx_full,
        cpu_share: cpu / el,
        per_cpu_second: (b1.tx_packets - b0.tx_packets) as f64 / cpu.max(1e-9),
    }
}

fn main() {
    let mut secs = 5.0;
    let mut rounds = 3;
    let mut size: usize = 64;
    let mut kinds = vec![PortKind::Packet, PortKind::Xdp];
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_default();
        match a.as_str() {
            "--secs" => secs = v.parse().expect("--secs"),
            "--rounds" => rounds = v.parse().expect("--rounds"),
            "--size" => size = v.parse().expect("--size"),
            "--kind" => {
                kinds = match v.as_str() {
                    "packet" => vec![PortKind::Packet],
                    "xdp" => vec![PortKind::Xdp],
                    _ => vec![PortKind::Packet, PortKind::Xdp],
                }
            }
            _ => panic!("unknown argument {a}"),
        }
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "port_pps needs root (veth, netns)"
    );
    // Frames are 4 bytes FCS short of the wire size: 64 on the wire = 60 here.
    let size = size.saturating_sub(4).max(60);
    let topo = Topo::new();
    println!("frame {} bytes (+FCS), {secs} s per round", size);
    println!(
        "backend     offered_pps  forwarded_pps  sink_pps  rx_no_buffer  tx_full  fwd_cpu  fwd_pps_per_cpu_s"
    );
    for r in 0..rounds {
        for &k in &kinds {
            let res = round(&topo, k, size, secs);
            println!(
                "{:<10} {:>12.0} {:>14.0} {:>9.0} {:>13} {:>8} {:>7.0}% {:>18.0}   (round {})",
                format!("{k:?}"),
                res.offered,
                res.forwarded,
                res.sink,
                res.rx_no_buffer,
                res.tx_full,
                res.cpu_share * 100.0,
                res.per_cpu_second,
                r + 1
            );
        }
    }
}
