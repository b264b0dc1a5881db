//! Packet formats: zero-copy views over header bytes, in the style of smoltcp's `wire` module.
//!
//! Every header has a view `XxxPacket<T: AsRef<[u8]>>` (or `EthernetFrame`) that can only be
//! built through `new_checked()`, which does the one length check; after it, accessors never
//! panic (they are additionally written with `get()` so that they cannot panic at all). Setters
//! exist for `T: AsRef<[u8]> + AsMut<[u8]>`. Where building packets is useful (tests, packet-out,
//! the slow path) a `Repr` has `parse()` and `emit()`; `emit()` writes the header only, the
//! caller writes the payload and then fills checksums.
//!
//! Untrusted bytes always go through `new_checked()`. Headers whose payload length field may
//! point beyond a truncated buffer (IPv4, IPv6, UDP) also offer `new_checked_header()`, which
//! only requires the header itself and bounds the payload by the bytes present.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EthernetAddress, EthernetFrame, EthernetRepr, ether_type};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr, NdOption, NdOptionIter, NdPacket};
pub use ipv4::{Ipv4Address, Ipv4Packet, Ipv4Repr};
pub use ipv6::{ExtHeaderWalk, Ipv6Address, Ipv6Packet, Ipv6Repr, ip_proto};
pub use sctp::SctpPacket;
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vlan::{VlanRepr, VlanTag};

/// Why a view or a `Repr` could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// A field has a value the format does not allow (bad version, length field too small...).
    Malformed,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::Malformed => f.write_str("malformed packet"),
        }
    }
}

/// Result of parsing wire data.
pub type Result<T> = core::result::Result<T, Error>;

// Byte accessors that never panic: out-of-range reads give zero, out-of-range writes do
// nothing. Views check their length once in `new_checked()`, so in practice these always hit;
// the `get()` keeps the "never panics" promise unconditional and costs a predictable branch.

#[inline(always)]
pub(crate) fn get_u8(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn get_u16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes(get_array(d, i))
}

#[inline(always)]
pub(crate) fn get_u32(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(get_array(d, i))
}

#[inline(always)]
pub(crate) fn get_array<const N: usize>(d: &[u8], i: usize) -> [u8; N] {
    match d.get(i..i.wrapping_add(N)) {
        Some(s) => {
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            a
        }
        None => [0u8; N],
    }
}

#[inline(always)]
pub(crate) fn get_slice(d: &[u8], start: usize, end: usize) -> &[u8] {
    d.get(start..end.min(d.len())).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn get_slice_mut(d: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(d.len());
    d.get_mut(start..end).unwrap_or(&mut [])
}

#[inline(always)]
pub(crate) fn set_u8(d: &mut [u8], i: usize, v: u8) {
    if let Some(b) = d.get_mut(i) {
        *b = v;
    }
}

#[inline(always)]
pub(crate) fn set_u16(d: &mut [u8], i: usize, v: u16) {
    set_bytes(d, i, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_u32(d: &mut [u8], i: usize, v: u32) {
    set_bytes(d, i, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_bytes(d: &mut [u8], i: usize, v: &[u8]) {
    if let Some(s) = d.get_mut(i..i.wrapping_add(v.len())) {
        s.copy_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Every view and every accessor on `d`.
    fn touch_all(d: &[u8]) {
        if let Ok(p) = EthernetFrame::new_checked(d) {
            let _ = (EthernetRepr::parse(&p), p.payload().len());
        }
        if let Ok(p) = VlanTag::new_checked(d) {
            let _ = (VlanRepr::parse(&p), p.payload().len(), p.dei());
        }
        if let Ok(p) = ArpPacket::new_checked(d) {
            let _ = (ArpRepr::parse(&p), p.sha(), p.tpa());
            let _ = (p.source_hardware_addr(), p.source_protocol_addr());
            let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        }
        if let Ok(p) = Ipv4Packet::new_checked_header(d) {
            let _ = (
                p.options(),
                p.payload(),
                p.verify_checksum(),
                p.frag_offset(),
                p.ident(),
            );
        }
        if let Ok(p) = Ipv4Packet::new_checked(d) {
            let _ = Ipv4Repr::parse(&p);
        }
        if let Ok(p) = Ipv6Packet::new_checked_header(d) {
            let _ = (p.payload(), p.ext_headers(), Ipv6Repr::parse(&p));
        }
        if let Ok(p) = TcpPacket::new_checked(d) {
            let _ = (
                TcpRepr::parse(&p),
                p.options(),
                p.payload(),
                p.verify_checksum(0),
            );
        }
        if let Ok(p) = UdpPacket::new_checked_header(d) {
            let _ = (p.payload(), p.verify_checksum(0), UdpRepr::parse(&p));
        }
        if let Ok(p) = SctpPacket::new_checked(d) {
            let _ = (p.verify_checksum(), p.payload());
        }
        if let Ok(p) = Icmpv4Packet::new_checked(d) {
            let _ = (Icmpv4Repr::parse(&p), p.payload(), p.rest_of_header());
        }
        if let Ok(p) = Icmpv6Packet::new_checked(d) {
            let _ = (Icmpv6Repr::parse(&p, 0), p.body());
        }
        if let Ok(p) = NdPacket::new_checked(d) {
            let _ = (p.ll_addr(), p.option_iter().count(), p.target_addr());
        }
    }

    proptest! {
        #[test]
        fn views_never_panic(d in proptest::collection::vec(any::<u8>(), 0..128)) {
            for i in 0..d.len().min(16) {
                touch_all(&d[i..]);
            }
            let w = ExtHeaderWalk::walk(d.first().copied().unwrap_or(0), &d);
            prop_assert!(w.offset <= d.len());
        }

        /// Setters on random buffers never panic and never change the length.
        #[test]
        fn setters_never_panic(mut d in proptest::collection::vec(any::<u8>(), 0..80), v in any::<u32>()) {
            let n = d.len();
            if let Ok(mut p) = Ipv4Packet::new_checked_header(&mut d[..]) {
                p.set_ttl(v as u8);
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                p.payload_mut().fill(0);
            }
            if let Ok(mut p) = UdpPacket::new_checked_header(&mut d[..]) {
                p.set_len(v as u16);
                p.payload_mut().fill(1);
                p.fill_checksum(v as u16);
            }
            if let Ok(mut p) = Ipv6Packet::new_checked_header(&mut d[..]) {
                p.set_flow_label(v);
                p.payload_mut().fill(2);
            }
            prop_assert_eq!(d.len(), n);
        }

        /// RFC 1624 incremental update agrees with a full recompute for any data and any
        /// change of any aligned run of bytes.
        #[test]
        fn incremental_checksum_matches_full(
            mut d in proptest::collection::vec(any::<u8>(), 4..64),
            at in 0usize..32,
            new in proptest::collection::vec(any::<u8>(), 1..17),
        ) {
            // Checksum at 0..2, data after it; patch an even-aligned, even-length run.
            d[0] = 0;
            d[1] = 0;
            let c = checksum::checksum(&d);
            d[..2].copy_from_slice(&c.to_be_bytes());
            let at = (2 + at) & !1;
            let len = new.len() & !1;
            prop_assume!(len > 0 && at + len <= d.len());
            let old: Vec<u8> = d[at..at + len].to_vec();
            d[at..at + len].copy_from_slice(&new[..len]);
            let inc = checksum::update(c, &old, &new[..len]);
            d[..2].copy_from_slice(&inc.to_be_bytes());
            prop_assert!(checksum::verify(0, &d));
            d[..2].fill(0);
            let full = checksum::checksum(&d);
            // One's complement has two zeros; both verify.
            prop_assert!(inc == full || (inc ^ full == 0xffff && (inc == 0 || full == 0)));
        }

        #[test]
        fn ipv4_repr_round_trip(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), proto in any::<u8>(),
            len in 0usize..1400, ttl in any::<u8>(), tos in any::<u8>(), ident in any::<u16>(),
            df in any::<bool>(), mf in any::<bool>(), off in 0u16..8192,
        ) {
            let r = Ipv4Repr {
                src_addr: src, dst_addr: dst, next_header: proto, payload_len: len, ttl, tos,
                ident, dont_frag: df, more_frags: mf, frag_offset: off << 3,
            };
            let mut b = alloc::vec![0u8; 20 + len];
            r.emit_into(&mut b).unwrap();
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
        }

        #[test]
        fn tcp_udp_repr_round_trip(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(),
                                   ack in any::<u32>(), flags in 0u16..0x200, win in any::<u16>()) {
            let t = TcpRepr { src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack, flags, window_len: win };
            let mut b = [0u8; 20];
            t.emit_into(&mut b).unwrap();
            prop_assert_eq!(TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap()), Ok(t));
            let u = UdpRepr { src_port: sp, dst_port: dp };
            let mut b = [0u8; 8];
            u.emit_into(&mut b, 0).unwrap();
            prop_assert_eq!(UdpRepr::parse(&UdpPacket::new_checked(&b[..]).unwrap()), Ok(u));
        }
    }
}
