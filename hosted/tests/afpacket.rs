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
