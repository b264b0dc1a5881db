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
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{name}")).exists(),
        "the tap we created is gone with the port"
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
