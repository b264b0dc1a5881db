//! NORMAL as an operator sees it: a bridge with three hosts and a trunk uplink.
//!
//! ```text
//!   h1 ── port 1 (access VLAN 10)  ┐
//!   h2 ── port 2 (access VLAN 10)  ├── br0 ── port 4 (trunk 10,20) ── uplink switch
//!   h3 ── port 3 (access VLAN 20)  ┘
//! ```
//!
//! h1 and h2 share VLAN 10 and reach each other; h3 is alone in VLAN 20 and reachable only
//! through the uplink, tagged 20. h1 can never reach h3.

use switch_core::flow::{Field, FlowKey, OFPVID_PRESENT};
use switch_core::normal::{NormalConfig, NormalDrop, NormalOutcome, NormalSwitch, mac_to_u64};
use switch_core::port::{Port, PortNo, PortTable, VlanMode, VlanOut, VlanSet};

const H1: [u8; 6] = [0x50, 0x54, 0x00, 0x00, 0x00, 0x01];
const H2: [u8; 6] = [0x50, 0x54, 0x00, 0x00, 0x00, 0x02];
const H3: [u8; 6] = [0x50, 0x54, 0x00, 0x00, 0x00, 0x03];
/// A router on the far side of the uplink, present in both VLANs.
const GW: [u8; 6] = [0x50, 0x54, 0x00, 0x00, 0x00, 0xfe];
const BROADCAST: [u8; 6] = [0xff; 6];

const H1_IP: [u8; 4] = [10, 0, 10, 1];
const H2_IP: [u8; 4] = [10, 0, 10, 2];
const H3_IP: [u8; 4] = [10, 0, 20, 3];
const GW20_IP: [u8; 4] = [10, 0, 20, 254];

const UPLINK: PortNo = 4;

/// The bridge under test and a clock.
struct Bridge {
    ports: PortTable,
    normal: NormalSwitch,
    now_ms: u64,
}

/// Where one frame went.
struct Delivery {
    outcome: NormalOutcome,
    out: Vec<(PortNo, VlanOut)>,
}

impl Delivery {
    fn ports(&self) -> Vec<PortNo> {
        self.out.iter().map(|(p, _)| *p).collect()
    }
}

impl Bridge {
    fn new() -> Bridge {
        let mut ports = PortTable::new();
        let mac = |n: u8| [0x02, 0, 0, 0, 0, n];
        ports
            .add(Port::new(1, "h1", mac(1)).with_vlan_mode(VlanMode::Access(10)))
            .unwrap();
        ports
            .add(Port::new(2, "h2", mac(2)).with_vlan_mode(VlanMode::Access(10)))
            .unwrap();
        ports
            .add(Port::new(3, "h3", mac(3)).with_vlan_mode(VlanMode::Access(20)))
            .unwrap();
        ports
            .add(
                Port::new(UPLINK, "uplink", mac(4))
                    .with_vlan_mode(VlanMode::Trunk(VlanSet::from_vids(&[10, 20]))),
            )
            .unwrap();
        Bridge {
            ports,
            normal: NormalSwitch::new(NormalConfig::default()),
            now_ms: 1_000,
        }
    }

    /// A frame arrives on `in_port`; NORMAL decides.
    fn receive(&mut self, in_port: PortNo, key: FlowKey) -> Delivery {
        let mut key = key;
        key.set(Field::InPort, in_port as u128);
        let mut out = Vec::new();
        let mut consulted = FlowKey::ZERO;
        let outcome = self
            .normal
            .process(&self.ports, &key, self.now_ms, &mut consulted, &mut out);
        assert!(
            out.iter().all(|(p, _)| *p != in_port),
            "a frame went back out its input port"
        );
        Delivery { outcome, out }
    }

    fn wait_s(&mut self, s: u64) {
        self.now_ms += s * 1000;
    }
}

fn ethernet(src: [u8; 6], dst: [u8; 6], eth_type: u16, vlan: Option<u16>) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set(Field::EthSrc, mac_to_u64(src) as u128);
    k.set(Field::EthDst, mac_to_u64(dst) as u128);
    k.set(Field::EthType, eth_type as u128);
    if let Some(vid) = vlan {
        k.set(Field::VlanVid, (OFPVID_PRESENT | vid) as u128);
    }
    k
}

fn arp(
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    dst: [u8; 6],
    tpa: [u8; 4],
    vlan: Option<u16>,
) -> FlowKey {
    let mut k = ethernet(sha, dst, 0x0806, vlan);
    k.set(Field::ArpOp, op as u128);
    k.set(Field::ArpSha, mac_to_u64(sha) as u128);
    k.set(Field::ArpSpa, u32::from_be_bytes(spa) as u128);
    k.set(Field::ArpTpa, u32::from_be_bytes(tpa) as u128);
    if op == 2 {
        k.set(Field::ArpTha, mac_to_u64(dst) as u128);
    }
    k
}

fn arp_request(from: [u8; 6], from_ip: [u8; 4], who_has: [u8; 4]) -> FlowKey {
    arp(1, from, from_ip, BROADCAST, who_has, None)
}

fn arp_reply(from: [u8; 6], from_ip: [u8; 4], to: [u8; 6], to_ip: [u8; 4]) -> FlowKey {
    arp(2, from, from_ip, to, to_ip, None)
}

fn ipv4(src: [u8; 6], dst: [u8; 6]) -> FlowKey {
    ethernet(src, dst, 0x0800, None)
}

fn tagged(mut k: FlowKey, vid: u16) -> FlowKey {
    k.set(Field::VlanVid, (OFPVID_PRESENT | vid) as u128);
    k
}

#[test]
fn h1_pings_h2_arp_floods_then_unicast() {
    let mut br = Bridge::new();

    // h1 asks "who has 10.0.10.2?": flooded to everything in VLAN 10 — h2 untagged, the
    // uplink tagged 10 — and never to h3 in VLAN 20.
    let d = br.receive(1, arp_request(H1, H1_IP, H2_IP));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(
        d.out,
        [(2, VlanOut::Untagged), (UPLINK, VlanOut::Tagged(10))]
    );

    // h2 answers h1 directly: the bridge learned h1 on port 1.
    let d = br.receive(2, arp_reply(H2, H2_IP, H1, H1_IP));
    assert_eq!(d.outcome, NormalOutcome::Unicast { vlan: 10, port: 1 });
    assert_eq!(d.out, [(1, VlanOut::Untagged)]);

    // The echo request and reply go straight between the two ports.
    br.wait_s(1);
    let d = br.receive(1, ipv4(H1, H2));
    assert_eq!(d.out, [(2, VlanOut::Untagged)]);
    let d = br.receive(2, ipv4(H2, H1));
    assert_eq!(d.out, [(1, VlanOut::Untagged)]);

    // The bridge's table, as `ovs-appctl fdb/show br0` would print it.
    let fdb = br.normal.fdb_show(br.now_ms);
    assert_eq!(
        fdb,
        " port  VLAN  MAC                Age\n    \
         1    10  50:54:00:00:00:01    0\n    \
         2    10  50:54:00:00:00:02    0\n"
    );
    let stats = br.normal.mac_table().stats();
    assert_eq!(stats.learned, 2);
    assert_eq!(stats.moved, 0);
}

#[test]
fn h1_cannot_reach_h3() {
    let mut br = Bridge::new();

    // h3 announces itself (gratuitous ARP): VLAN 20 only.
    let d = br.receive(3, arp_request(H3, H3_IP, H3_IP));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 20 });
    assert_eq!(d.out, [(UPLINK, VlanOut::Tagged(20))]);

    // h1 ARPs for h3's address: VLAN 10 flood, port 3 is not in it.
    let d = br.receive(1, arp_request(H1, H1_IP, H3_IP));
    assert!(!d.ports().contains(&3));

    // Even with h3's MAC (learned, but in VLAN 20), h1's frame stays in VLAN 10: it is unknown
    // there, so it floods VLAN 10 — still not to port 3.
    let d = br.receive(1, ipv4(H1, H3));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 10 });
    assert!(!d.ports().contains(&3));

    // h3 cannot reach h1 either.
    let d = br.receive(3, ipv4(H3, H1));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 20 });
    assert!(!d.ports().contains(&1));

    // Tagging from an access port does not help: the frame is dropped.
    let d = br.receive(1, tagged(ipv4(H1, H3), 20));
    assert_eq!(d.outcome, NormalOutcome::Drop(NormalDrop::VlanNotAllowed));
    assert!(d.out.is_empty());
}

#[test]
fn h3_reaches_its_gateway_over_the_trunk() {
    let mut br = Bridge::new();

    // h3 ARPs for its gateway: out the uplink tagged 20.
    let d = br.receive(3, arp_request(H3, H3_IP, GW20_IP));
    assert_eq!(d.out, [(UPLINK, VlanOut::Tagged(20))]);

    // The gateway answers tagged 20 from the uplink; h3 gets it untagged.
    let reply = tagged(arp_reply(GW, GW20_IP, H3, H3_IP), 20);
    let d = br.receive(UPLINK, reply);
    assert_eq!(d.outcome, NormalOutcome::Unicast { vlan: 20, port: 3 });
    assert_eq!(d.out, [(3, VlanOut::Untagged)]);

    // h3 → gateway is now unicast, tagged onto the trunk.
    let d = br.receive(3, ipv4(H3, GW));
    assert_eq!(d.out, [(UPLINK, VlanOut::Tagged(20))]);

    // The gateway is learned per VLAN: in VLAN 10 it is still unknown.
    let d = br.receive(1, ipv4(H1, GW));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 10 });

    // Untagged frames from the uplink are not accepted on a pure trunk.
    let d = br.receive(UPLINK, ipv4(GW, H3));
    assert_eq!(d.outcome, NormalOutcome::Drop(NormalDrop::VlanNotAllowed));
    // Nor VLANs the trunk does not carry.
    let d = br.receive(UPLINK, tagged(ipv4(GW, H3), 30));
    assert_eq!(d.outcome, NormalOutcome::Drop(NormalDrop::VlanNotAllowed));
}

#[test]
fn unplugging_h2_forgets_it_and_moving_it_is_followed() {
    let mut br = Bridge::new();
    br.receive(1, arp_request(H1, H1_IP, H2_IP));
    br.receive(2, arp_reply(H2, H2_IP, H1, H1_IP));
    assert_eq!(br.receive(1, ipv4(H1, H2)).out, [(2, VlanOut::Untagged)]);

    // h2's cable is pulled: its entry goes, frames to it flood what is left of VLAN 10.
    br.ports.set_link(2, false).unwrap();
    br.normal.sync_ports(&br.ports);
    assert_eq!(
        br.normal.mac_table().lookup(10, mac_to_u64(H2), br.now_ms),
        None
    );
    let d = br.receive(1, ipv4(H1, H2));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 10 });
    assert_eq!(d.out, [(UPLINK, VlanOut::Tagged(10))]);

    // h2 reappears behind the uplink (a VM migrated): learned there, traffic follows it.
    br.receive(UPLINK, tagged(arp_request(H2, H2_IP, H1_IP), 10));
    assert_eq!(
        br.receive(1, ipv4(H1, H2)).out,
        [(UPLINK, VlanOut::Tagged(10))]
    );

    // Then it is plugged back into port 2 and talks: a move, counted.
    br.ports.set_link(2, true).unwrap();
    br.receive(2, ipv4(H2, H1));
    assert_eq!(br.receive(1, ipv4(H1, H2)).out, [(2, VlanOut::Untagged)]);
    assert_eq!(br.normal.mac_table().stats().moved, 1);
}

#[test]
fn silent_hosts_age_out_after_five_minutes() {
    let mut br = Bridge::new();
    br.receive(1, arp_request(H1, H1_IP, H2_IP));
    br.receive(2, arp_reply(H2, H2_IP, H1, H1_IP));

    // h1 keeps talking, h2 goes quiet.
    for _ in 0..10 {
        br.wait_s(30);
        br.receive(1, ipv4(H1, [0x50, 0x54, 0, 0, 0, 0x99]));
    }
    assert_eq!(
        br.normal.mac_table().lookup(10, mac_to_u64(H2), br.now_ms),
        None
    );
    assert_eq!(
        br.normal.mac_table().lookup(10, mac_to_u64(H1), br.now_ms),
        Some(1)
    );
    let d = br.receive(1, ipv4(H1, H2));
    assert_eq!(d.outcome, NormalOutcome::Flood { vlan: 10 });
    br.normal.mac_table_mut().expire(br.now_ms);
    assert_eq!(br.normal.mac_table().stats().aged, 1);
    assert_eq!(br.normal.mac_table().len(), 1);
}

#[test]
fn operator_flushes_the_table() {
    let mut br = Bridge::new();
    br.receive(1, arp_request(H1, H1_IP, H2_IP));
    br.receive(2, arp_reply(H2, H2_IP, H1, H1_IP));
    br.receive(3, arp_request(H3, H3_IP, GW20_IP));
    assert_eq!(br.normal.mac_table().len(), 3);
    assert_eq!(br.normal.mac_table_mut().flush_vlan(20), 1);
    assert_eq!(br.normal.mac_table_mut().flush_port(2), 1);
    assert_eq!(br.normal.mac_table_mut().flush_all(), 1);
    assert_eq!(
        br.normal.fdb_show(br.now_ms),
        " port  VLAN  MAC                Age\n"
    );
}
