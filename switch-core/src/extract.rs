//! Flow-key extraction: from a frame's bytes to the [`FlowKey`] the caches and the OpenFlow
//! pipeline match on, plus where the L3/L4 headers start ([`PacketInfo`]).
//!
//! This is the datapath's per-packet hot path: no allocation, no loops except the bounded
//! IPv6 extension-header walk and the ND option walk, every read bounds-checked. Truncated and
//! malformed packets are well defined: whatever is fully present is extracted (the L2 fields
//! always, as far as they are there), the rest stays zero, and [`PacketInfo::flags`] says
//! what went wrong so the caller can count it. It never panics.
//!
//! Semantics follow Open vSwitch's `miniflow_extract()` where OpenFlow leaves room:
//! - up to two VLAN tags (TPID 0x8100, 0x88a8, 0x9100); `vlan_vid`/`vlan_pcp` come from the
//!   outer tag, `eth_type` is the type after the tags;
//! - an 802.3 frame gets `eth_type` 0x05ff unless it has an LLC/SNAP header with OUI 0, in
//!   which case the SNAP type is used and L3 follows the SNAP header;
//! - for IPv6, `ip_proto` is the upper-layer protocol after the extension headers (50 for ESP,
//!   59 for "no next header", 44 for a non-first fragment), 0 when the chain is cut short;
//! - `ipv6_exthdr` has the OpenFlow `OFPIEH_*` bits of the headers seen, up to where the chain
//!   ends or is cut short;
//! - a non-first fragment (IPv4 or IPv6) has no L4 fields and `PacketInfo::l4 == None`;
//! - unlike Open vSwitch, an IP packet whose length field runs past the end of the frame (a
//!   truncated capture, a packet-in cut to `max_len`) keeps the fields that are present, with
//!   `TRUNCATED` set; the L4 parsers see the IP payload up to the length field or the frame's
//!   end, whichever comes first (Ethernet padding after a short IP packet is ignored);
//! - ARP fields are filled only for Ethernet/IPv4 ARP;
//! - ND target/SLL/TLL only for NS/NA with code 0; a malformed option list zeroes all three.

use crate::flow::{Field, FlowKey, OFPVID_PRESENT, internal};
use crate::wire::icmpv6::{self, NdPacket};
use crate::wire::ipv6::ExtHeaderWalk;
use crate::wire::{
    ArpPacket, Error, Ipv4Packet, Ipv6Packet, TcpPacket, ether_type, get_array, get_u8, get_u16,
    ip_proto,
};

bitflags::bitflags! {
    /// What extraction noticed about a packet.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ParseFlags: u8 {
        /// A header (or the length an IP header promises) runs past the end of the frame.
        const TRUNCATED = 1 << 0;
        /// A header has values its format forbids (IP version/length fields, ND options,
        /// TCP data offset, more than 16 IPv6 extension headers).
        const MALFORMED = 1 << 1;
        /// The frame has at least one VLAN tag.
        const VLAN = 1 << 2;
        /// The frame has two VLAN tags (802.1ad / QinQ).
        const DOUBLE_VLAN = 1 << 3;
        /// The frame is an 802.3 frame (length instead of EtherType).
        const LLC = 1 << 4;
    }
}

/// Where the headers of an extracted packet are, and what was wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PacketInfo {
    /// Offset of the L3 header: just after the EtherType (after the VLAN tags, after an
    /// LLC/SNAP header). `None` only when the frame ends before its EtherType (or the 8 bytes
    /// of an 802.3 frame's LLC/SNAP header) is complete.
    pub l3: Option<u16>,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers). `Some` when the
    /// IP header is valid and the packet is not a non-first fragment, even if the L4 header
    /// itself is cut short (then `TRUNCATED` is set and the L4 fields are zero).
    pub l4: Option<u16>,
    pub flags: ParseFlags,
}

impl PacketInfo {
    #[inline]
    pub fn truncated(&self) -> bool {
        self.flags.contains(ParseFlags::TRUNCATED)
    }
    #[inline]
    pub fn malformed(&self) -> bool {
        self.flags.contains(ParseFlags::MALFORMED)
    }
}

const SNAP_HEADER: [u8; 6] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00];

/// Fills `key` from `frame` received on `in_port`. Every field of `key` is overwritten:
/// `in_port` is set, `metadata`, `in_phy_port` and `tunnel_id` are zero (the caller sets them
/// when it has them), the packet fields are as described in the module documentation.
pub fn extract(frame: &[u8], in_port: u32, key: &mut FlowKey) -> PacketInfo {
    *key = FlowKey::ZERO;
    key.set(Field::InPort, u128::from(in_port));
    let mut info = PacketInfo::default();
    let len = frame.len();

    // L2. Addresses are filled as far as they are present, even in a runt.
    if len >= 6 {
        key.set(Field::EthDst, mac(get_array(frame, 0)));
    }
    if len >= 12 {
        key.set(Field::EthSrc, mac(get_array(frame, 6)));
    }
    if len < 14 {
        info.flags |= ParseFlags::TRUNCATED;
        return info;
    }
    // `off` is the offset of the current EtherType/TPID field.
    let mut off = 12;
    let mut ty = get_u16(frame, off);
    if ether_type::is_vlan(ty) {
        info.flags |= ParseFlags::VLAN;
        if len < off + 4 {
            info.flags |= ParseFlags::TRUNCATED;
            return info;
        }
        let tci = get_u16(frame, off + 2);
        key.set(Field::VlanVid, u128::from(OFPVID_PRESENT | (tci & 0x0fff)));
        key.set(Field::VlanPcp, u128::from(tci >> 13));
        off += 4;
        ty = get_u16(frame, off);
        if ether_type::is_vlan(ty) {
            info.flags |= ParseFlags::DOUBLE_VLAN;
            off += 4;
            ty = get_u16(frame, off);
        }
        if len < off + 2 {
            info.flags |= ParseFlags::TRUNCATED;
            return info;
        }
    }
    let mut l3 = off + 2;
    if ty < ether_type::MIN {
        info.flags |= ParseFlags::LLC;
        if len < l3 + 8 {
            // Too short to tell LLC from SNAP: the type is unknown, not "no type".
            info.flags |= ParseFlags::TRUNCATED;
            return info;
        }
        if get_array::<6>(frame, l3) == SNAP_HEADER {
            ty = get_u16(frame, l3 + 6);
            l3 += 8;
        } else {
            ty = ether_type::NONE;
        }
    }
    key.set(Field::EthType, u128::from(ty));
    info.l3 = u16::try_from(l3).ok();
    let l3_bytes = frame.get(l3..).unwrap_or(&[]);

    match ty {
        ether_type::IPV4 => extract_ipv4(l3_bytes, l3, key, &mut info),
        ether_type::IPV6 => extract_ipv6(l3_bytes, l3, key, &mut info),
        ether_type::ARP => extract_arp(l3_bytes, key, &mut info),
        _ => {}
    }
    info
}

#[inline(always)]
fn mac(a: [u8; 6]) -> u128 {
    u128::from(u64::from_be_bytes([
        0, 0, a[0], a[1], a[2], a[3], a[4], a[5],
    ]))
}

#[inline(always)]
fn flag_error(info: &mut PacketInfo, e: Error) {
    info.flags |= match e {
        Error::Truncated => ParseFlags::TRUNCATED,
        Error::Malformed => ParseFlags::MALFORMED,
    };
}

#[inline(always)]
fn set_frag(key: &mut FlowKey, bits: u64) {
    key.w[internal::FRAG_WORD] |= bits & internal::FRAG_MASK;
}

#[inline]
fn extract_ipv4(d: &[u8], l3: usize, key: &mut FlowKey, info: &mut PacketInfo) {
    let ip = match Ipv4Packet::new_checked_header(d) {
        Ok(ip) => ip,
        Err(e) => return flag_error(info, e),
    };
    let proto = ip.next_header();
    key.set(Field::IpDscp, u128::from(ip.dscp()));
    key.set(Field::IpEcn, u128::from(ip.ecn()));
    key.set(Field::IpProto, u128::from(proto));
    key.set(
        Field::Ipv4Src,
        u128::from(u32::from_be_bytes(ip.src_addr())),
    );
    key.set(
        Field::Ipv4Dst,
        u128::from(u32::from_be_bytes(ip.dst_addr())),
    );
    if usize::from(ip.total_len()) > d.len() {
        info.flags |= ParseFlags::TRUNCATED;
    }
    if ip.is_fragment() {
        if ip.frag_offset() != 0 {
            set_frag(key, internal::FRAG_ANY | internal::FRAG_LATER);
            return;
        }
        set_frag(key, internal::FRAG_ANY);
    }
    let l4 = l3 + ip.header_len();
    info.l4 = u16::try_from(l4).ok();
    let payload = ip.payload();
    match proto {
        ip_proto::ICMP => {
            if payload.len() >= crate::wire::icmpv4::HEADER_LEN {
                key.set(Field::Icmpv4Type, u128::from(get_u8(payload, 0)));
                key.set(Field::Icmpv4Code, u128::from(get_u8(payload, 1)));
            } else {
                info.flags |= ParseFlags::TRUNCATED;
            }
        }
        _ => extract_ports(proto, payload, key, info),
    }
}

#[inline]
fn extract_ipv6(d: &[u8], l3: usize, key: &mut FlowKey, info: &mut PacketInfo) {
    let ip = match Ipv6Packet::new_checked_header(d) {
        Ok(ip) => ip,
        Err(e) => return flag_error(info, e),
    };
    key.set(Field::IpDscp, u128::from(ip.dscp()));
    key.set(Field::IpEcn, u128::from(ip.ecn()));
    key.set(Field::Ipv6Src, u128::from_be_bytes(ip.src_addr()));
    key.set(Field::Ipv6Dst, u128::from_be_bytes(ip.dst_addr()));
    key.set(Field::Ipv6Flabel, u128::from(ip.flow_label()));
    if crate::wire::ipv6::HEADER_LEN + usize::from(ip.payload_len()) > d.len() {
        info.flags |= ParseFlags::TRUNCATED;
    }
    let payload = ip.payload();
    let nh = ip.next_header();
    // Fast path: no extension headers.
    let walk = if matches!(
        nh,
        ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6 | ip_proto::SCTP
    ) {
        ExtHeaderWalk {
            proto: nh,
            ..ExtHeaderWalk::default()
        }
    } else {
        ExtHeaderWalk::walk(nh, payload)
    };
    key.set(Field::Ipv6Exthdr, u128::from(walk.exthdr));
    if walk.fragment {
        set_frag(key, internal::FRAG_ANY);
    }
    if walk.truncated {
        info.flags |= ParseFlags::TRUNCATED;
    }
    if walk.malformed {
        info.flags |= ParseFlags::MALFORMED;
    }
    if walk.later_fragment {
        set_frag(key, internal::FRAG_LATER);
        key.set(Field::IpProto, u128::from(ip_proto::FRAGMENT));
        return;
    }
    if !walk.complete() {
        return;
    }
    let proto = walk.proto;
    key.set(Field::IpProto, u128::from(proto));
    let l4 = l3 + crate::wire::ipv6::HEADER_LEN + walk.offset;
    info.l4 = u16::try_from(l4).ok();
    let l4_bytes = payload.get(walk.offset..).unwrap_or(&[]);
    match proto {
        ip_proto::ICMPV6 => extract_icmpv6(l4_bytes, key, info),
        _ => extract_ports(proto, l4_bytes, key, info),
    }
}

/// TCP/UDP/SCTP ports (one shared slot in the key); other protocols have nothing to extract.
#[inline(always)]
fn extract_ports(proto: u8, d: &[u8], key: &mut FlowKey, info: &mut PacketInfo) {
    let need = match proto {
        ip_proto::TCP => crate::wire::tcp::MIN_HEADER_LEN,
        ip_proto::UDP => crate::wire::udp::HEADER_LEN,
        ip_proto::SCTP => crate::wire::sctp::HEADER_LEN,
        _ => return,
    };
    if d.len() < need {
        info.flags |= ParseFlags::TRUNCATED;
        return;
    }
    key.set(Field::TcpSrc, u128::from(get_u16(d, 0)));
    key.set(Field::TcpDst, u128::from(get_u16(d, 2)));
    if proto == ip_proto::TCP {
        // Options cut short or a data offset below 5: the ports are still good.
        if let Err(e) = TcpPacket::new_checked(d) {
            flag_error(info, e);
        }
    }
}

#[inline]
fn extract_icmpv6(d: &[u8], key: &mut FlowKey, info: &mut PacketInfo) {
    if d.len() < icmpv6::HEADER_LEN {
        info.flags |= ParseFlags::TRUNCATED;
        return;
    }
    let (ty, code) = (get_u8(d, 0), get_u8(d, 1));
    key.set(Field::Icmpv6Type, u128::from(ty));
    key.set(Field::Icmpv6Code, u128::from(code));
    if !matches!(ty, icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT) || code != 0 {
        return;
    }
    let nd = match NdPacket::new_checked(d) {
        Ok(nd) => nd,
        Err(e) => return flag_error(info, e),
    };
    match nd.ll_addr() {
        Ok(ll) => {
            key.set(Field::Ipv6NdTarget, u128::from_be_bytes(nd.target_addr()));
            if let Some((_, a)) = ll {
                let f = if ty == icmpv6::NEIGHBOR_SOLICIT {
                    Field::Ipv6NdSll
                } else {
                    Field::Ipv6NdTll
                };
                key.set(f, mac(a));
            }
        }
        Err(e) => flag_error(info, e),
    }
}

#[inline]
fn extract_arp(d: &[u8], key: &mut FlowKey, info: &mut PacketInfo) {
    if d.len() < crate::wire::arp::FIXED_LEN {
        info.flags |= ParseFlags::TRUNCATED;
        return;
    }
    // Other hardware/protocol kinds are not malformed, just not matchable.
    if get_array::<6>(d, 0) != [0, 1, 0x08, 0x00, 6, 4] {
        return;
    }
    let arp = match ArpPacket::new_checked(d) {
        Ok(arp) => arp,
        Err(e) => return flag_error(info, e),
    };
    key.set(Field::ArpOp, u128::from(arp.operation()));
    key.set(Field::ArpSpa, u128::from(u32::from_be_bytes(arp.spa())));
    key.set(Field::ArpTpa, u128::from(u32::from_be_bytes(arp.tpa())));
    key.set(Field::ArpSha, mac(arp.sha()));
    key.set(Field::ArpTha, mac(arp.tha()));
}

/// Hand-built packets for the tests of this module and of `packet` (rewrites), and full
/// checksum recomputation to check incremental updates against.
#[cfg(test)]
pub(crate) mod testpkt {
    use super::*;
    use crate::wire::ipv6::exthdr;
    use crate::wire::{
        ArpRepr, EthernetAddress, Icmpv6Repr, Ipv4Address, Ipv4Repr, Ipv6Address, Ipv6Repr,
        TcpRepr, UdpRepr, tcp,
    };
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    pub const DST: EthernetAddress = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01];
    pub const SRC: EthernetAddress = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    pub const IP4_SRC: Ipv4Address = [192, 0, 2, 1];
    pub const IP4_DST: Ipv4Address = [198, 51, 100, 7];
    pub const IP6_SRC: Ipv6Address = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pub const IP6_DST: Ipv6Address = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 2,
    ];
    pub const ND_TARGET: Ipv6Address = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    pub const LL: EthernetAddress = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

    /// An Ethernet frame with the given tags `(tpid, tci)`, outer first.
    pub fn eth(vlans: &[(u16, u16)], ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        for (tpid, tci) in vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// IPv4 with options `opts`, fragment `(more, offset)`, TOS 0xb9 (DSCP 46, ECN 1), TTL 64.
    pub fn ipv4_full(proto: u8, opts: &[u8], frag: (bool, u16), l4: &[u8]) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut p = vec![0u8; hl];
        Ipv4Repr {
            src_addr: IP4_SRC,
            dst_addr: IP4_DST,
            next_header: proto,
            payload_len: l4.len() + opts.len(),
            ttl: 64,
            tos: 0xb9,
            ident: 0x1234,
            dont_frag: false,
            more_frags: frag.0,
            frag_offset: frag.1,
        }
        .emit_into(&mut p)
        .unwrap();
        p[0] = 0x40 | (hl / 4) as u8;
        p[20..].copy_from_slice(opts);
        p.extend_from_slice(l4);
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        ip.fill_checksum();
        p
    }

    pub fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        ipv4_full(proto, &[], (false, 0), l4)
    }

    /// IPv6 with extension headers `ext` (already chained: `first` is the first next-header),
    /// traffic class 0xb9, flow label 0x12345, hop limit 64.
    pub fn ipv6_full(first: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        Ipv6Repr {
            src_addr: IP6_SRC,
            dst_addr: IP6_DST,
            next_header: first,
            payload_len: ext.len() + l4.len(),
            hop_limit: 64,
            traffic_class: 0xb9,
            flow_label: 0x12345,
        }
        .emit_into(&mut p)
        .unwrap();
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    pub fn ipv6(proto: u8, l4: &[u8]) -> Vec<u8> {
        ipv6_full(proto, &[], l4)
    }

    pub fn tcp(sp: u16, dp: u16) -> Vec<u8> {
        let mut t = vec![0u8; 28];
        TcpRepr {
            src_port: sp,
            dst_port: dp,
            seq_number: 0xdead_beef,
            ack_number: 7,
            flags: tcp::flags::ACK | tcp::flags::PSH,
            window_len: 512,
        }
        .emit_into(&mut t)
        .unwrap();
        t[20..].copy_from_slice(b"payload!");
        t
    }

    pub fn udp(sp: u16, dp: u16) -> Vec<u8> {
        let mut u = vec![0u8; 13];
        UdpRepr {
            src_port: sp,
            dst_port: dp,
        }
        .emit_into(&mut u, 5)
        .unwrap();
        u[8..].copy_from_slice(b"hello");
        u
    }

    pub fn sctp(sp: u16, dp: u16) -> Vec<u8> {
        let mut s = vec![0u8; 28];
        s[..4].copy_from_slice(&[(sp >> 8) as u8, sp as u8, (dp >> 8) as u8, dp as u8]);
        s[4..8].copy_from_slice(&[1, 2, 3, 4]);
        // A DATA chunk header and 4 bytes.
        s[12..28].copy_from_slice(&[0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0xab, 0xcd, 0xef, 0x01]);
        s
    }

    pub fn icmp4(ty: u8, code: u8) -> Vec<u8> {
        let mut b = vec![ty, code, 0, 0, 0x12, 0x34, 0, 1];
        b.extend_from_slice(b"ping");
        b
    }

    pub fn icmp6_echo() -> Vec<u8> {
        let mut b = vec![0u8; 8];
        Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
        }
        .emit_into(&mut b, 0)
        .unwrap();
        b
    }

    pub fn ns(sll: Option<EthernetAddress>) -> Vec<u8> {
        let r = Icmpv6Repr::NeighborSolicit {
            target: ND_TARGET,
            source_ll: sll,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit_into(&mut b, 0).unwrap();
        b
    }

    pub fn na(tll: Option<EthernetAddress>) -> Vec<u8> {
        let r = Icmpv6Repr::NeighborAdvert {
            flags: 0x60,
            target: ND_TARGET,
            target_ll: tll,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit_into(&mut b, 0).unwrap();
        b
    }

    pub fn arp() -> Vec<u8> {
        let mut b = vec![0u8; 28];
        ArpRepr {
            operation: 2,
            sha: LL,
            spa: IP4_SRC,
            tha: SRC,
            tpa: IP4_DST,
        }
        .emit(&mut crate::wire::ArpPacket::new_checked(&mut b[..]).unwrap());
        b
    }

    /// Hop-by-hop (8) -> routing (8) -> destination options (8) -> `last`.
    pub fn ext_chain(last: u8) -> Vec<u8> {
        let mut e = vec![0u8; 24];
        e[0] = ip_proto::ROUTING;
        e[8] = ip_proto::DSTOPTS;
        e[16] = last;
        e
    }

    /// A set of well-formed frames covering every kind extraction handles, with correct
    /// checksums everywhere.
    pub fn samples() -> Vec<(String, Vec<u8>)> {
        let v = |s: &str| String::from(s);
        let mut out = vec![
            (v("tcp4"), eth(&[], 0x0800, &ipv4(6, &tcp(40000, 443)))),
            (v("udp4"), eth(&[], 0x0800, &ipv4(17, &udp(5353, 53)))),
            (v("sctp4"), eth(&[], 0x0800, &ipv4(132, &sctp(5000, 80)))),
            (v("icmp4"), eth(&[], 0x0800, &ipv4(1, &icmp4(8, 0)))),
            (
                v("ipv4-opts-tcp"),
                eth(
                    &[],
                    0x0800,
                    &ipv4_full(6, &[1, 1, 1, 0], (false, 0), &tcp(1, 2)),
                ),
            ),
            (
                v("ipv4-frag-first-udp"),
                eth(&[], 0x0800, &ipv4_full(17, &[], (true, 0), &udp(7, 8))),
            ),
            (
                v("ipv4-frag-later"),
                eth(&[], 0x0800, &ipv4_full(17, &[], (false, 1480), &udp(7, 8))),
            ),
            (v("arp"), eth(&[], 0x0806, &arp())),
            (
                v("vlan-tcp4"),
                eth(&[(0x8100, 0xa00a)], 0x0800, &ipv4(6, &tcp(10, 20))),
            ),
            (
                v("qinq-udp6"),
                eth(
                    &[(0x88a8, 0x2064), (0x8100, 0x00c8)],
                    0x86dd,
                    &ipv6(17, &udp(546, 547)),
                ),
            ),
            (
                v("qinq9100-arp"),
                eth(&[(0x9100, 0x0005), (0x8100, 0x0006)], 0x0806, &arp()),
            ),
            (v("tcp6"), eth(&[], 0x86dd, &ipv6(6, &tcp(22, 55555)))),
            (v("udp6"), eth(&[], 0x86dd, &ipv6(17, &udp(1000, 2000)))),
            (v("sctp6"), eth(&[], 0x86dd, &ipv6(132, &sctp(9, 10)))),
            (v("icmp6-echo"), eth(&[], 0x86dd, &ipv6(58, &icmp6_echo()))),
            (v("ns"), eth(&[], 0x86dd, &ipv6(58, &ns(Some(LL))))),
            (v("ns-no-sll"), eth(&[], 0x86dd, &ipv6(58, &ns(None)))),
            (
                v("na"),
                eth(&[(0x8100, 0x0003)], 0x86dd, &ipv6(58, &na(Some(LL)))),
            ),
            (
                v("ext-tcp6"),
                eth(&[], 0x86dd, &ipv6_full(0, &ext_chain(6), &tcp(80, 81))),
            ),
            (
                v("ext-icmp6"),
                eth(&[], 0x86dd, &ipv6_full(0, &ext_chain(58), &ns(Some(LL)))),
            ),
            (v("snap-ipv4"), {
                let mut llc = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
                llc.extend_from_slice(&ipv4(17, &udp(1, 2)));
                eth(&[], llc.len() as u16, &llc)
            }),
            (
                v("llc-stp"),
                eth(&[], 38, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]),
            ),
            (v("other-ethertype"), eth(&[], 0x88cc, &[1, 2, 3, 4])),
        ];
        // IPv6 first fragment with UDP; later fragment.
        let mut frag = vec![ip_proto::UDP, 0, 0, 1, 0, 0, 0, 9];
        out.push((
            v("ipv6-frag-first"),
            eth(
                &[],
                0x86dd,
                &ipv6_full(ip_proto::FRAGMENT, &frag, &udp(3, 4)),
            ),
        ));
        frag[2..4].copy_from_slice(&0x00a8u16.to_be_bytes());
        out.push((
            v("ipv6-frag-later"),
            eth(&[], 0x86dd, &ipv6_full(ip_proto::FRAGMENT, &frag, &[9; 16])),
        ));
        for (_, f) in &mut out {
            fill_checksums(f);
        }
        let _ = exthdr::HOP;
        out
    }

    pub use crate::packet::{fill_checksums, verify_checksums as checksums_ok};

    #[test]
    fn samples_have_valid_checksums() {
        for (name, f) in samples() {
            assert!(checksums_ok(&f), "{name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testpkt::*;
    use super::*;
    use crate::wire::ipv6::exthdr;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn ex(f: &[u8]) -> (FlowKey, PacketInfo) {
        let mut k = FlowKey::ZERO;
        // A dirty key must be fully overwritten.
        k.w = [u64::MAX; crate::flow::KEY_WORDS];
        let i = extract(f, 7, &mut k);
        (k, i)
    }

    fn mac_u(a: [u8; 6]) -> u128 {
        mac(a)
    }

    fn sample(name: &str) -> Vec<u8> {
        samples().into_iter().find(|(n, _)| n == name).unwrap().1
    }

    fn frag_bits(k: &FlowKey) -> u64 {
        k.w[internal::FRAG_WORD] & internal::FRAG_MASK
    }

    #[test]
    fn tcp4() {
        let (k, i) = ex(&sample("tcp4"));
        assert_eq!(
            i,
            PacketInfo {
                l3: Some(14),
                l4: Some(34),
                flags: ParseFlags::empty()
            }
        );
        let mut e = FlowKey::ZERO;
        e.set(Field::InPort, 7);
        e.set(Field::EthDst, mac_u(DST));
        e.set(Field::EthSrc, mac_u(SRC));
        e.set(Field::EthType, 0x0800);
        e.set(Field::IpDscp, 46);
        e.set(Field::IpEcn, 1);
        e.set(Field::IpProto, 6);
        e.set(Field::Ipv4Src, 0xc000_0201);
        e.set(Field::Ipv4Dst, 0xc633_6407);
        e.set(Field::TcpSrc, 40000);
        e.set(Field::TcpDst, 443);
        assert_eq!(k, e);
    }

    #[test]
    fn udp_sctp_icmp4() {
        let (k, _) = ex(&sample("udp4"));
        assert_eq!(
            (k.ip_proto(), k.get(Field::UdpSrc), k.get(Field::UdpDst)),
            (17, 5353, 53)
        );
        let (k, _) = ex(&sample("sctp4"));
        assert_eq!(
            (k.ip_proto(), k.get(Field::SctpSrc), k.get(Field::SctpDst)),
            (132, 5000, 80)
        );
        let (k, i) = ex(&sample("icmp4"));
        assert_eq!((k.get(Field::Icmpv4Type), k.get(Field::Icmpv4Code)), (8, 0));
        assert_eq!(i.l4, Some(34));
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let (k, i) = ex(&sample("ipv4-opts-tcp"));
        assert_eq!(i.l4, Some(38));
        assert_eq!((k.get(Field::TcpSrc), k.get(Field::TcpDst)), (1, 2));
        let (k, i) = ex(&sample("ipv4-frag-first-udp"));
        assert_eq!(frag_bits(&k), internal::FRAG_ANY);
        assert_eq!((k.get(Field::UdpSrc), i.l4), (7, Some(34)));
        let (k, i) = ex(&sample("ipv4-frag-later"));
        assert_eq!(frag_bits(&k), internal::FRAG_ANY | internal::FRAG_LATER);
        assert_eq!((k.ip_proto(), k.get(Field::UdpSrc), i.l4), (17, 0, None));
        assert_eq!(k.get(Field::Ipv4Src), 0xc000_0201);
    }

    #[test]
    fn arp() {
        let (k, i) = ex(&sample("arp"));
        assert_eq!((i.l3, i.l4, i.flags), (Some(14), None, ParseFlags::empty()));
        assert_eq!(k.eth_type(), 0x0806);
        assert_eq!(k.get(Field::ArpOp), 2);
        assert_eq!(k.get(Field::ArpSpa), 0xc000_0201);
        assert_eq!(k.get(Field::ArpTpa), 0xc633_6407);
        assert_eq!(k.get(Field::ArpSha), mac_u(LL));
        assert_eq!(k.get(Field::ArpTha), mac_u(SRC));
        // An ARP for another protocol: no ARP fields, not an error.
        let mut f = sample("arp");
        f[14 + 3] = 0x01;
        let (k, i) = ex(&f);
        assert_eq!((k.get(Field::ArpOp), i.flags), (0, ParseFlags::empty()));
    }

    #[test]
    fn vlans() {
        let (k, i) = ex(&sample("vlan-tcp4"));
        assert_eq!(k.vlan(), Some(0x00a));
        assert_eq!(k.get(Field::VlanVid), u128::from(OFPVID_PRESENT | 0x00a));
        assert_eq!(k.get(Field::VlanPcp), 5);
        assert_eq!((k.eth_type(), i.l3, i.l4), (0x0800, Some(18), Some(38)));
        assert_eq!(i.flags, ParseFlags::VLAN);
        let (k, i) = ex(&sample("qinq-udp6"));
        assert_eq!((k.vlan(), k.get(Field::VlanPcp)), (Some(0x064), 1));
        assert_eq!((k.eth_type(), i.l3, i.l4), (0x86dd, Some(22), Some(62)));
        assert_eq!(i.flags, ParseFlags::VLAN | ParseFlags::DOUBLE_VLAN);
        assert_eq!(k.get(Field::UdpDst), 547);
        let (k, _) = ex(&sample("qinq9100-arp"));
        assert_eq!((k.vlan(), k.get(Field::ArpOp)), (Some(5), 2));
        let (k, _) = ex(&sample("udp4"));
        assert_eq!((k.vlan(), k.get(Field::VlanVid)), (None, 0));
        // A priority-tagged frame: VID 0 but present.
        let (k, _) = ex(&eth(&[(0x8100, 0xe000)], 0x0800, &ipv4(17, &udp(1, 2))));
        assert_eq!((k.vlan(), k.get(Field::VlanPcp)), (Some(0), 7));
    }

    #[test]
    fn ipv6_basic() {
        let (k, i) = ex(&sample("tcp6"));
        assert_eq!(
            (i.l3, i.l4, i.flags),
            (Some(14), Some(54), ParseFlags::empty())
        );
        assert_eq!(k.get(Field::Ipv6Src), u128::from_be_bytes(IP6_SRC));
        assert_eq!(k.get(Field::Ipv6Dst), u128::from_be_bytes(IP6_DST));
        assert_eq!(k.get(Field::Ipv6Flabel), 0x12345);
        assert_eq!((k.get(Field::IpDscp), k.get(Field::IpEcn)), (46, 1));
        assert_eq!(
            (k.ip_proto(), k.get(Field::TcpSrc), k.get(Field::TcpDst)),
            (6, 22, 55555)
        );
        assert_eq!(k.get(Field::Ipv6Exthdr), 0);
        let (k, _) = ex(&sample("sctp6"));
        assert_eq!((k.ip_proto(), k.get(Field::SctpSrc)), (132, 9));
        let (k, _) = ex(&sample("icmp6-echo"));
        assert_eq!(
            (k.get(Field::Icmpv6Type), k.get(Field::Icmpv6Code)),
            (128, 0)
        );
        assert_eq!(k.get(Field::Ipv6NdTarget), 0);
    }

    #[test]
    fn ipv6_ext_headers() {
        let (k, i) = ex(&sample("ext-tcp6"));
        assert_eq!(i.l4, Some(14 + 40 + 24));
        assert_eq!((k.ip_proto(), k.get(Field::TcpDst)), (6, 81));
        assert_eq!(
            k.get(Field::Ipv6Exthdr),
            u128::from(exthdr::HOP | exthdr::ROUTER | exthdr::DEST)
        );
        // Destination options before hop-by-hop: unexpected sequencing.
        let mut e = ext_chain(6);
        e[0] = ip_proto::HOPOPT;
        let (k, _) = ex(&eth(
            &[],
            0x86dd,
            &ipv6_full(ip_proto::DSTOPTS, &e, &tcp(80, 81)),
        ));
        assert_eq!(k.ip_proto(), 6);
        assert_eq!(
            k.get(Field::Ipv6Exthdr),
            u128::from(exthdr::HOP | exthdr::DEST | exthdr::UNSEQ | exthdr::UNREP)
        );
        let (k, i) = ex(&sample("ext-icmp6"));
        assert_eq!(
            (k.get(Field::Icmpv6Type), i.flags),
            (135, ParseFlags::empty())
        );
        assert_eq!(k.get(Field::Ipv6NdSll), mac_u(LL));
        // ESP and no-next-header stop the walk.
        let (k, i) = ex(&eth(&[], 0x86dd, &ipv6(ip_proto::ESP, &[0; 16])));
        assert_eq!(
            (k.ip_proto(), k.get(Field::Ipv6Exthdr)),
            (50, u128::from(exthdr::ESP))
        );
        assert_eq!(i.l4, Some(54));
        let (k, _) = ex(&eth(&[], 0x86dd, &ipv6_full(0, &ext_chain(59), &[])));
        assert_eq!(k.ip_proto(), 59);
        assert_ne!(k.get(Field::Ipv6Exthdr) & u128::from(exthdr::NONEXT), 0);
    }

    #[test]
    fn ipv6_fragments() {
        let (k, i) = ex(&sample("ipv6-frag-first"));
        assert_eq!(frag_bits(&k), internal::FRAG_ANY);
        assert_eq!(
            (k.ip_proto(), k.get(Field::UdpSrc), i.l4),
            (17, 3, Some(62))
        );
        assert_eq!(k.get(Field::Ipv6Exthdr), u128::from(exthdr::FRAG));
        let (k, i) = ex(&sample("ipv6-frag-later"));
        assert_eq!(frag_bits(&k), internal::FRAG_ANY | internal::FRAG_LATER);
        assert_eq!((k.ip_proto(), k.get(Field::UdpSrc), i.l4), (44, 0, None));
    }

    #[test]
    fn neighbor_discovery() {
        let (k, i) = ex(&sample("ns"));
        assert_eq!(i.flags, ParseFlags::empty());
        assert_eq!(
            (k.get(Field::Icmpv6Type), k.get(Field::Icmpv6Code)),
            (135, 0)
        );
        assert_eq!(k.get(Field::Ipv6NdTarget), u128::from_be_bytes(ND_TARGET));
        assert_eq!(
            (k.get(Field::Ipv6NdSll), k.get(Field::Ipv6NdTll)),
            (mac_u(LL), 0)
        );
        let (k, _) = ex(&sample("ns-no-sll"));
        assert_eq!(k.get(Field::Ipv6NdTarget), u128::from_be_bytes(ND_TARGET));
        assert_eq!(k.get(Field::Ipv6NdSll), 0);
        let (k, _) = ex(&sample("na"));
        assert_eq!(
            (k.get(Field::Ipv6NdSll), k.get(Field::Ipv6NdTll)),
            (0, mac_u(LL))
        );
        // Malformed option (zero length): ND fields zero, flagged, type/code still there.
        let mut f = sample("ns");
        let n = f.len();
        f[n - 7] = 0;
        let (k, i) = ex(&f);
        assert!(i.malformed());
        assert_eq!(
            (
                k.get(Field::Icmpv6Type),
                k.get(Field::Ipv6NdTarget),
                k.get(Field::Ipv6NdSll)
            ),
            (135, 0, 0)
        );
    }

    #[test]
    fn llc_and_others() {
        let (k, i) = ex(&sample("snap-ipv4"));
        assert_eq!((k.eth_type(), i.l3, i.l4), (0x0800, Some(22), Some(42)));
        assert_eq!(k.get(Field::UdpDst), 2);
        assert!(i.flags.contains(ParseFlags::LLC));
        let (k, i) = ex(&sample("llc-stp"));
        assert_eq!((k.eth_type(), i.l3, i.l4), (0x05ff, Some(14), None));
        let (k, i) = ex(&sample("other-ethertype"));
        assert_eq!(
            (k.eth_type(), i.l3, i.l4, i.flags),
            (0x88cc, Some(14), None, ParseFlags::empty())
        );
    }

    #[test]
    fn malformed_ip_headers() {
        let mut f = sample("tcp4");
        f[14] = 0x44; // IHL 4
        let (k, i) = ex(&f);
        assert!(i.malformed() && i.l4.is_none());
        assert_eq!(
            (k.eth_type(), k.ip_proto(), k.get(Field::Ipv4Src)),
            (0x0800, 0, 0)
        );
        let mut f = sample("tcp4");
        f[14] = 0x65; // version 6 in an IPv4 EtherType
        assert!(ex(&f).1.malformed());
        let mut f = sample("tcp6");
        f[14] = 0x45;
        let (k, i) = ex(&f);
        assert!(i.malformed());
        assert_eq!(k.get(Field::Ipv6Src), 0);
        // TCP data offset below 5: ports kept, flagged.
        let mut f = sample("tcp4");
        f[34 + 12] = 0x40;
        let (k, i) = ex(&f);
        assert!(i.malformed());
        assert_eq!(k.get(Field::TcpDst), 443);
        // IPv4 total length larger than the frame: L3 and L4 fields kept, flagged truncated.
        let mut f = sample("udp4");
        f[16..18].copy_from_slice(&1000u16.to_be_bytes());
        let (k, i) = ex(&f);
        assert!(i.truncated());
        assert_eq!(k.get(Field::UdpDst), 53);
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        // A 60-byte minimum frame: the UDP datagram is shorter, the rest is padding.
        let mut f = sample("udp4");
        f.resize(60, 0xee);
        let (k, i) = ex(&f);
        assert_eq!(i.flags, ParseFlags::empty());
        assert_eq!(k.get(Field::UdpSrc), 5353);
    }

    /// Fields extraction from a truncated copy of `full` may report: each field either equals
    /// the full packet's value or is zero; L2 fields present in the prefix are always there.
    fn check_prefix(name: &str, full: &[u8]) {
        let (kf, _) = ex(full);
        for n in 0..=full.len() {
            let (k, i) = ex(&full[..n]);
            assert_eq!(k.in_port(), 7);
            if n < full.len() && n < 14 {
                assert!(i.truncated(), "{name} at {n}");
            }
            if n >= 6 {
                assert_eq!(k.get(Field::EthDst), kf.get(Field::EthDst), "{name} at {n}");
            }
            if n >= 12 {
                assert_eq!(k.get(Field::EthSrc), kf.get(Field::EthSrc), "{name} at {n}");
            }
            if n >= 16 && kf.vlan().is_some() {
                assert_eq!(
                    k.get(Field::VlanVid),
                    kf.get(Field::VlanVid),
                    "{name} at {n}"
                );
            }
            if let Some(l3) = i.l3 {
                assert!(usize::from(l3) <= n, "{name} at {n}");
                assert_eq!(k.eth_type(), kf.eth_type(), "{name} at {n}");
            }
            if let Some(l4) = i.l4 {
                assert!(usize::from(l4) <= n, "{name} at {n}");
            }
            // ipv6_exthdr holds the headers seen before the cut: a subset of the full set.
            let (x, xf) = (k.get(Field::Ipv6Exthdr), kf.get(Field::Ipv6Exthdr));
            assert_eq!(x & !xf, 0, "{name} at {n}");
            for f in Field::ALL {
                if f == Field::Ipv6Exthdr {
                    continue;
                }
                let v = k.get(f);
                // Fields either match the full packet or are absent (zero). ip_proto may be
                // 0 (chain cut short); the fragment bits are checked below.
                assert!(
                    v == 0 || v == kf.get(f),
                    "{name} at {n}: {f:?} = {v:#x}, full {:#x}",
                    kf.get(f)
                );
            }
            assert_eq!(frag_bits(&k) & !frag_bits(&kf), 0, "{name} at {n}");
            if n == full.len() {
                assert_eq!(k, kf);
            }
        }
    }

    #[test]
    fn truncation_at_every_offset() {
        for (name, f) in samples() {
            check_prefix(&name, &f);
        }
    }

    /// Writes the samples as seeds for the `parse_packet` fuzz target (control byte 0 first).
    #[test]
    #[ignore = "writes files; run by hand to refresh fuzz/seeds"]
    fn write_fuzz_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse_packet");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, f) in samples() {
            let mut d = alloc::vec![0u8];
            d.extend_from_slice(&f);
            std::fs::write(dir.join(name), d).unwrap();
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (k, i) = ex(&bytes);
            prop_assert_eq!(k.in_port(), 7);
            if let Some(l4) = i.l4 {
                prop_assert!(usize::from(l4) <= bytes.len());
            }
        }

        /// Random bytes behind a plausible header stack reach the deeper parsers.
        #[test]
        fn random_tails_never_panic(
            which in 0usize..25,
            cut in 0usize..120,
            tail in proptest::collection::vec(any::<u8>(), 0..120),
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..4),
        ) {
            let all = samples();
            let mut f = all[which % all.len()].1.clone();
            let cut = cut.min(f.len());
            f.truncate(f.len() - cut);
            f.extend_from_slice(&tail);
            for (at, x) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b ^= x;
                }
            }
            let (k, _) = ex(&f);
            prop_assert_eq!(k.in_port(), 7);
        }
    }
}
