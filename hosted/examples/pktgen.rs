//! A small traffic generator for the benchmarks (`tests/bench/hosted.sh`): Ethernet/IPv4/UDP
//! frames of a given wire size (default 64 bytes: 60 + FCS, 18 bytes of UDP payload) sent from
//! one interface for a given time with `sendmmsg` on a raw AF_PACKET socket that bypasses the
//! qdisc (`PACKET_QDISC_BYPASS`), as fast as one core can, or at most `--pps` frames per second.
//! Runs in the calling process's network namespace (`ip netns exec NS ...`); root needed.
//!
//! ```sh
//! cargo build --release -p hosted --example pktgen
//! ip netns exec h1 target/release/examples/pktgen --dev eth0 --dst 02:00:00:00:00:02 --secs 10
//! ```
//!
//! Options: `--dev IF` (required), `--dst MAC` (required), `--src MAC` (default: the
//! interface's), `--src-ip A.B.C.D` / `--dst-ip` (default 10.0.0.1 → 10.0.0.2), `--secs S`
//! (default 10), `--size BYTES` (wire size with FCS, 64..=1518), `--pps N` (0 = unlimited),
//! `--flows N` (distinct UDP source ports, round robin; default 1), `--batch N` (frames per
//! `sendmmsg`, default 64), `--cpu N` (pin to that CPU).
//!
//! Prints one line: `sent=N errors=E secs=T pps=P` (frames the socket accepted; a veth whose
//! peer's backlog is full drops some of those and counts them in its `tx_dropped`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

struct Opts {
    dev: String,
    dst: [u8; 6],
    src: Option<[u8; 6]>,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    secs: f64,
    size: usize,
    pps: u64,
    flows: usize,
    batch: usize,
    cpu: Option<usize>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(mac)
}

fn parse_ip(s: &str) -> Result<[u8; 4], String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| format!("bad IPv4 address {s:?}"))
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        dev: String::new(),
        dst: [0; 6],
        src: None,
        src_ip: [10, 0, 0, 1],
        dst_ip: [10, 0, 0, 2],
        secs: 10.0,
        size: 64,
        pps: 0,
        flows: 1,
        batch: 64,
        cpu: None,
    };
    let mut have_dst = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: bad number {v:?}"))
        };
        match a.as_str() {
            "--dev" => o.dev = v,
            "--dst" => {
                o.dst = parse_mac(&v)?;
                have_dst = true;
            }
            "--src" => o.src = Some(parse_mac(&v)?),
            "--src-ip" => o.src_ip = parse_ip(&v)?,
            "--dst-ip" => o.dst_ip = parse_ip(&v)?,
            "--secs" => o.secs = v.parse().map_err(|_| format!("--secs: bad number {v:?}"))?,
            "--size" => o.size = num(&v)? as usize,
            "--pps" => o.pps = num(&v)?,
            "--flows" => o.flows = (num(&v)? as usize).clamp(1, 4096),
            "--batch" => o.batch = (num(&v)? as usize).clamp(1, 1024),
            "--cpu" => o.cpu = Some(num(&v)? as usize),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.dev.is_empty() || !have_dst {
        return Err("--dev and --dst are required".into());
    }
    if !(64..=1518).contains(&o.size) {
        return Err(format!("--size {}: expected 64..=1518", o.size));
    }
    Ok(o)
}

fn checksum(words: &[u8]) -> u16 {
    let mut sum: u32 = words
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One frame without FCS: Ethernet, IPv4 (DF, TTL 64), UDP (checksum 0) to port 9.
fn frame(o: &Opts, src: [u8; 6], sport: u16) -> Vec<u8> {
    let len = o.size - 4;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&o.dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&o.src_ip);
    ip[16..20].copy_from_slice(&o.dst_ip);
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    let payload = b"ironflow-bench-64b";
    let n = payload.len().min(len - 42);
    f[42..42 + n].copy_from_slice(&payload[..n]);
    f
}

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn open(dev: &str) -> Result<OwnedFd, String> {
    let name = std::ffi::CString::new(dev).map_err(|_| "bad interface name".to_string())?;
    // SAFETY: plain libc calls with valid arguments; every result is checked.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(format!(
                "socket(AF_PACKET): {}",
                std::io::Error::last_os_error()
            ));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let one: i32 = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            20, // PACKET_QDISC_BYPASS
            &one as *const i32 as *const libc::c_void,
            4,
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
        if sll.sll_ifindex <= 0 {
            return Err(format!("no interface {dev}"));
        }
        if libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            return Err(format!("bind {dev}: {}", std::io::Error::last_os_error()));
        }
        Ok(fd)
    }
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pktgen: {e}");
            std::process::exit(2);
        }
    };
    if let Some(c) = o.cpu {
        pin(c);
    }
    let src = match o.src {
        Some(m) => m,
        None => {
            let path = format!("/sys/class/net/{}/address", o.dev);
            match std::fs::read_to_string(&path)
                .map_err(|e| format!("{path}: {e}"))
                .and_then(|s| parse_mac(&s))
            {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("pktgen: {e}");
                    std::process::exit(1);
                }
            }
        }
    };
    let fd = match open(&o.dev) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("pktgen: {e}");
            std::process::exit(1);
        }
    };
    let mut frames: Vec<Vec<u8>> = (0..o.flows)
        .map(|i| frame(&o, src, 40000u16.wrapping_add(i as u16)))
        .collect();
    let n = o.batch;
    // SAFETY: plain data, filled in before each call.
    let mut iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; n];
    // SAFETY: as above.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
    let (mut sent, mut errors, mut next) = (0u64, 0u64, 0usize);
    let start = Instant::now();
    let dur = Duration::from_secs_f64(o.secs);
    loop {
        let el = start.elapsed();
        if el >= dur {
            break;
        }
        if o.pps > 0 {
            let due = (el.as_secs_f64() * o.pps as f64) as u64;
            if sent >= due {
                let ahead = (sent - due + 1) as f64 / o.pps as f64;
                std::thread::sleep(Duration::from_secs_f64(ahead.min(0.001)));
                continue;
            }
        }
        for i in 0..n {
            let f = &mut frames[(next + i) % o.flows];
            iov[i].iov_base = f.as_mut_ptr() as *mut libc::c_void;
            iov[i].iov_len = f.len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` point at `iov`, which point at `frames`, all alive for the call.
        let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if r > 0 {
            sent += r as u64;
            next = (next + r as usize) % o.flows;
        } else {
            errors += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent={sent} errors={errors} secs={secs:.3} pps={:.0}",
        sent as f64 / secs
    );
}
