//! AF_PACKET backend against a veth peer in a namespace (needs root).

mod common;

use common::*;
use drivers::nic::Nic;
use hosted::afpacket::AfPacketPort;

#[test]
fn afpacket_conformance() {
    let v = Veth::new();
    let pool = hosted::dma::host_pool(4096).unwrap();
    let mut port = AfPacketPort::open(&v.port, pool.clone()).expect("AF_PACKET port");
    assert!(port.name().contains(&v.port));
    let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", v.port)).unwrap();
    let want: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert_eq!(port.mac_address().to_vec(), want);
    conformance(&mut port, v.peer_socket(), &pool);
    assert_eq!(port.gso_dropped(), 0);
}

#[test]
fn afpacket_missing_interface_is_an_error() {
    require_root();
    let pool = hosted::dma::host_pool(64).unwrap();
    let e = AfPacketPort::open("nonexistent0", pool)
        .err()
        .expect("error");
    assert!(e.to_string().contains("nonexistent0"), "{e}");
}

#[test]
fn afpacket_completes_partial_checksums() {
    let v = Veth::new();
    let pool = hosted::dma::host_pool(256).unwrap();
    let mut port = AfPacketPort::open(&v.port, pool).unwrap();
    let payload = send_udp_from_peer(&v);
    assert_eq!(
        rx_udp(&mut port, &payload),
        Some(true),
        "valid UDP datagram received"
    );
    assert!(
        port.checksums_completed() >= 1,
        "the peer's checksum offload left a partial checksum, completed here"
    );
}

#[test]
fn afpacket_pool_exhaustion_is_counted_and_recovers() {
    let v = Veth::new();
    let pool = hosted::dma::host_pool(8).unwrap();
    let mut port = AfPacketPort::open(&v.port, pool.clone()).unwrap();
    let peer = v.peer_socket();
    let held: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
    for s in 0..4 {
        peer.send(&test_frame(60, s, None));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut batch = drivers::dma::PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut batch), 0);
    assert!(port.stats().rx_no_buffer >= 1);
    drop(held);
    let got = rx_test_frames(&mut port, 4, std::time::Duration::from_secs(2));
    assert_eq!(
        got.len(),
        4,
        "frames kept in the ring while the pool was empty"
    );
}

#[test]
fn afpacket_fd_polls_readable() {
    let v = Veth::new();
    let pool = hosted::dma::host_pool(256).unwrap();
    let (mut port, fd) = hosted::open_port(&v.port, hosted::PortKind::Packet, &pool).unwrap();
    assert!(port.name().starts_with("af_packet"));
    check_poll(port.as_mut(), fd, &v.peer_socket());
}
