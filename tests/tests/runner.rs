//! Tests of the QEMU runner's wiring as the kernel sees it: the management NIC comes first in PCI
//! order, data ports follow with their MACs; netns data ports (root) get their namespaces and are
//! removed again; free host ports for the management forwards.

mod common;

use common::*;
use std::process::Command;

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mgmt_nic_is_the_first_virtio_net_then_the_data_ports() {
    let mut vm = pvh("runner-pci-order", "exit_after_ready=1 on_panic=exit")
        .memory_mb(64)
        .mgmt_nic(&[(0, 6653), (0, 6640)])
        .data_ports(3)
        .spawn()
        .expect("QEMU starts");
    check_boot(&mut vm, None, None);
    let diag = vm.diagnostics();
    let virtio_net: Vec<String> = pci_functions(&vm)
        .into_iter()
        .filter(|f| f.vendor == 0x1af4 && (f.device == 0x1000 || f.device == 0x1041))
        .map(|f| f.address)
        .collect();
    assert_eq!(
        virtio_net,
        ["00:03.0", "00:04.0", "00:05.0", "00:06.0"],
        "management NIC first, then ports 1-3\n{diag}"
    );
    let h1 = vm.mgmt_host_port(6653).expect("forward for 6653");
    let h2 = vm.mgmt_host_port(6640).expect("forward for 6640");
    assert!(h1 != 0 && h2 != 0 && h1 != h2, "{h1} {h2}");
    assert!(vm.dgram_port(3).is_some() && vm.dgram_port(4).is_none());
    assert!(
        vm.command_line()
            .contains("virtio-net-pci,netdev=port2,mac=52:54:00:00:00:02,addr=0x5"),
        "{diag}"
    );
}

#[test]
fn netns_ports_are_wired_and_removed() {
    if !ironflow_qemu::is_root() {
        if on_ci() {
            panic!(
                "netns_ports_are_wired_and_removed: CI runs tests as root, but this is not root"
            );
        }
        eprintln!("netns_ports_are_wired_and_removed: SKIPPED: needs root (taps, namespaces)");
        return;
    }
    let vm = pvh("runner-netns", "on_panic=exit")
        .memory_mb(64)
        .data_ports(2)
        .port_net(PortNet::netns_unique())
        .spawn()
        .expect("QEMU starts and the taps are wired");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("ready");
    let namespaces: Vec<String> = (1..=2)
        .map(|n| vm.netns(n).expect("namespace").to_string())
        .collect();
    for (i, ns) in namespaces.iter().enumerate() {
        let addr = ip_output(&["-n", ns, "-br", "addr", "show", "eth0"]);
        assert!(
            addr.contains(&format!("10.0.0.{}/24", i + 1)),
            "{ns}: eth0 has {addr:?}\n{}",
            vm.diagnostics()
        );
        let link = ip_output(&["-n", ns, "link", "show", "eth0"]);
        assert!(
            link.contains("LOWER_UP"),
            "{ns}: eth0 should have carrier (QEMU attached): {link}"
        );
    }
    drop(vm);
    let left = ip_output(&["netns", "list"]);
    for ns in &namespaces {
        assert!(
            !left.split_whitespace().any(|w| w == ns),
            "namespace {ns} left behind: {left}"
        );
    }
}

#[test]
fn dgram_ports_accept_frames_without_root() {
    // The kernel does not forward yet at this stage; this checks that frames can be sent into a
    // running guest's port and that receiving with a timeout works.
    let vm = pvh("runner-dgram", "on_panic=exit")
        .memory_mb(64)
        .data_ports(2)
        .spawn()
        .expect("QEMU starts");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("ready");
    let p1 = vm.dgram_port(1).expect("port 1");
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[0x52, 0x54, 0x00, 0x00, 0x00, 0xaa, 0x88, 0xb5]);
    frame.resize(64, 0);
    p1.send(&frame).expect("send");
    let _ = vm
        .dgram_port(2)
        .expect("port 2")
        .recv(std::time::Duration::from_millis(200))
        .expect("recv");
    assert!(vm.serial_log().contains("ironflow: ready"));
}
