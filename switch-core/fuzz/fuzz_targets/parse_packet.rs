//! Arbitrary bytes through every packet parser and rewrite of `switch-core`:
//! `extract`, every `wire` view and `Repr` at every plausible offset, and every rewrite.
//! Besides "no panic", it checks invariants: offsets stay inside the frame, and a rewrite of
//! a frame whose checksums verify leaves them verifying.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch_core::extract::extract;
use switch_core::flow::{Field, FlowKey};
use switch_core::packet::{
    self, Frame, HeapFrame, dec_ip_ttl, pop_vlan, push_vlan, set_field, set_ip_ttl,
    verify_checksums,
};
use switch_core::wire::*;

fn views(d: &[u8]) {
    if let Ok(p) = EthernetFrame::new_checked(d) {
        let _ = EthernetRepr::parse(&p);
        let _ = (p.dst(), p.src(), p.ethertype(), p.payload().len());
    }
    if let Ok(p) = VlanTag::new_checked(d) {
        let _ = VlanRepr::parse(&p);
        let _ = (p.tci(), p.payload().len());
    }
    if let Ok(p) = ArpPacket::new_checked(d) {
        let _ = ArpRepr::parse(&p);
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    }
    if let Ok(p) = Ipv4Packet::new_checked_header(d) {
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
            p.frag_offset(),
        );
        assert!(p.payload().len() + p.header_len() <= d.len());
    }
    if let Ok(p) = Ipv4Packet::new_checked(d) {
        let _ = Ipv4Repr::parse(&p);
    }
    if let Ok(p) = Ipv6Packet::new_checked_header(d) {
        let w = p.ext_headers();
        assert!(w.offset <= p.payload().len());
        let _ = Ipv6Repr::parse(&p);
    }
    let w = ExtHeaderWalk::walk(d.first().copied().unwrap_or(0), d.get(1..).unwrap_or(&[]));
    assert!(w.offset <= d.len());
    if let Ok(p) = TcpPacket::new_checked(d) {
        let _ = TcpRepr::parse(&p);
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(0),
            p.flags(),
        );
    }
    if let Ok(p) = UdpPacket::new_checked_header(d) {
        let _ = (p.payload().len(), p.verify_checksum(0));
    }
    if let Ok(p) = UdpPacket::new_checked(d) {
        let _ = UdpRepr::parse(&p);
    }
    if let Ok(p) = SctpPacket::new_checked(d) {
        let _ = (p.verify_checksum(), p.payload().len());
    }
    if let Ok(p) = Icmpv4Packet::new_checked(d) {
        let _ = Icmpv4Repr::parse(&p);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(d) {
        let _ = Icmpv6Repr::parse(&p, 0);
        let _ = p.is_nd();
    }
    if let Ok(p) = NdPacket::new_checked(d) {
        let _ = p.ll_addr();
        let _ = p.option_iter().count();
    }
    let _ = checksum::data(d);
    let _ = checksum::crc32c(d);
}

fuzz_target!(|data: &[u8]| {
    // The first byte steers the rewrites; the rest is the frame.
    let (ctl, frame) = match data.split_first() {
        Some((c, f)) => (*c, f),
        None => (0, data),
    };

    let mut key = FlowKey::ZERO;
    let info = extract(frame, 3, &mut key);
    assert_eq!(key.in_port(), 3);
    if let Some(l3) = info.l3 {
        assert!(usize::from(l3) <= frame.len());
    }
    if let Some(l4) = info.l4 {
        assert!(usize::from(l4) <= frame.len());
        assert!(info.l3.is_some_and(|l3| l3 < l4));
    }

    // Every view at offset 0 and at the header offsets extraction found.
    views(frame);
    for off in [info.l3, info.l4].into_iter().flatten() {
        views(frame.get(usize::from(off)..).unwrap_or(&[]));
    }

    // Rewrites: each field with a value taken from the frame, then the structural actions.
    let ok_before = verify_checksums(frame);
    let seed = u128::from_le_bytes({
        let mut a = [0u8; 16];
        for (i, b) in frame.iter().rev().take(16).enumerate() {
            a[i] = *b;
        }
        a
    });
    let mut f = HeapFrame::new(frame);
    for (i, field) in Field::ALL.into_iter().enumerate() {
        if field == Field::EthType && ctl & 1 == 0 {
            continue;
        }
        let value = seed.rotate_left(i as u32 * 7) & field.max();
        let before = f.to_vec();
        let r = set_field(&mut f, field, value);
        if r.is_err() {
            assert_eq!(
                f.data(),
                &before[..],
                "{field:?} failed but changed the frame"
            );
        } else if ok_before && field != Field::EthType && verify_checksums(&before) {
            assert!(verify_checksums(f.data()), "{field:?} broke a checksum");
        }
        let _ = extract(f.data(), 3, &mut key);
    }
    let before_ok = verify_checksums(f.data());
    let before_type = {
        let mut k = FlowKey::ZERO;
        extract(f.data(), 0, &mut k);
        k.eth_type()
    };
    let _ = dec_ip_ttl(&mut f);
    let _ = set_ip_ttl(&mut f, ctl);
    let tpid = [0x8100, 0x88a8, 0x9100, 0x0800][usize::from(ctl >> 6)];
    let pushed = push_vlan(&mut f, tpid).is_ok();
    if pushed {
        assert!(pop_vlan(&mut f).is_ok());
    }
    let _ = pop_vlan(&mut f);
    // Popping a tag of a frame with more than two can expose an IP header extraction did not
    // look at before (it stops after two tags): only compare frames of the same kind.
    let after_type = {
        let mut k = FlowKey::ZERO;
        extract(f.data(), 0, &mut k);
        k.eth_type()
    };
    if before_ok && before_type == after_type {
        assert!(
            verify_checksums(f.data()),
            "ttl/vlan actions broke a checksum"
        );
    }
    let mut copy = f.to_vec();
    packet::fill_checksums(&mut copy);
    assert!(verify_checksums(&copy));
});
