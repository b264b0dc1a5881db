//! Tap backend: the kernel side of the tap is the peer (needs root).

mod common;

use common::*;
use hosted::tap::TapPort;

#[test]
fn tap_conformance() {
    require_root();
    let name = format!("htap{}", std::process::id() % 100_000);
    let pool = hosted::dma::host_pool(4096).unwrap();
    let mut port = TapPort::open(&name, pool.clone()).expect("tap");
    assert_eq!(port.ifname(), name);
    let _ = std::process::Command::new("sysctl")
        .args(["-qw", &format!("net.ipv6.conf.{name}.disable_ipv6=1")])
        .output();
    let kernel_mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap();
    let ours = drivers::nic::Nic::mac_address(&port);
    let ours = ours
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_ne!(
        ours,
        kernel_mac.trim(),
        "the appliance's MAC differs from the host side's"
    );
    let peer = RawSock::open(&name);
    conformance(&mut port, peer, &pool);
    drop(port);
    // Removed when the tap's last descriptor closes (see `eventually`).
    let sys = format!("/sys/class/net/{name}");
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            !std::path::Path::new(&sys).exists()
        }),
        "the tap we created is still there 5 s after the port was dropped"
    );
}

#[test]
fn tap_fd_polls_readable() {
    require_root();
    let name = format!("htpp{}", std::process::id() % 100_000);
    let pool = hosted::dma::host_pool(256).unwrap();
    let mut port = TapPort::open(&name, pool).expect("tap");
    let _ = std::process::Command::new("sysctl")
        .args(["-qw", &format!("net.ipv6.conf.{name}.disable_ipv6=1")])
        .output();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&port);
    let peer = RawSock::open(&name);
    check_poll(&mut port, fd, &peer);
}

/// The test runner's hosted backend (`qemu/src/hosted.rs`) makes the management tap, starts
/// the runner on it, and moves the tap into another namespace the moment its carrier shows
/// (the runner attached): whatever the port needs the name for must be done by then. Here a
/// thread makes that move as fast as it can; the port must open, know the tap's MAC, and
/// receive what the host side sends from inside the namespace.
#[test]
fn tap_survives_being_moved_away_once_attached() {
    require_root();
    let id = std::process::id() % 100_000;
    let name = format!("htmv{id}");
    let ns = format!("ifhosted-tm{id}");
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .output();
    sh(&["ip", "netns", "add", &ns]);
    sh(&["ip", "tuntap", "add", "dev", &name, "mode", "tap"]);
    sh(&["ip", "link", "set", "dev", &name, "up"]);
    let kernel_mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .unwrap()
        .trim()
        .to_string();
    let mover = {
        let (name, ns) = (name.clone(), ns.clone());
        std::thread::spawn(move || {
            let carrier = format!("/sys/class/net/{name}/carrier");
            let t = std::time::Instant::now();
            while !std::fs::read_to_string(&carrier).is_ok_and(|s| s.trim() == "1") {
                assert!(t.elapsed().as_secs() < 10, "no carrier on {name}");
                std::thread::yield_now();
            }
            sh(&["ip", "link", "set", "dev", &name, "netns", &ns]);
            sh(&["ip", "-n", &ns, "link", "set", "dev", &name, "up"]);
        })
    };
    let pool = hosted::dma::host_pool(256).unwrap();
    let opened = TapPort::open(&name, pool);
    mover.join().unwrap();
    let cleanup = || {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &name])
            .output();
    };
    let mut port = match opened {
        Ok(p) => p,
        Err(e) => {
            cleanup();
            panic!("TapPort::open on a tap that moves away once attached: {e}");
        }
    };
    let mut ours = drivers::nic::Nic::mac_address(&port);
    ours[5] ^= 1;
    let ours = ours
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let peer = RawSock::in_netns(&ns, &name);
    for seq in 0..4 {
        peer.send(&test_frame(64, seq, None));
    }
    let got = rx_test_frames(&mut port, 4, std::time::Duration::from_secs(5));
    drop(port);
    cleanup();
    assert_eq!(
        ours, kernel_mac,
        "the port's MAC is the tap's with the last bit flipped"
    );
    assert_eq!(
        got.len(),
        4,
        "frames sent into the moved tap reach the port"
    );
}
