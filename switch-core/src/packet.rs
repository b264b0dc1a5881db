//! Packet buffers as the switch sees them: the `Frame` trait that both the DMA buffers of the
//! drivers and heap frames (tests, packet-out) implement, and in-place rewrite operations.

use alloc::vec::Vec;

/// A mutable Ethernet frame with room to grow at the front (for pushing VLAN tags).
///
/// Implemented by the drivers' DMA packet buffers and by [`HeapFrame`].
pub trait Frame {
    /// The frame's bytes, starting at the Ethernet destination address.
    fn data(&self) -> &[u8];
    /// The frame's bytes, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front (the new bytes are unspecified).
    /// Returns false, changing nothing, when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false, changing nothing, if the frame is shorter.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Shortens the frame to `len` bytes (no-op if already shorter).
    fn truncate(&mut self, len: usize);
}

/// Default headroom of a [`HeapFrame`]: room for two VLAN tags and some encapsulation.
pub const HEAP_FRAME_HEADROOM: usize = 64;

/// A frame on the heap with headroom, for tests, packet-out and the slow path.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapFrame {
    buf: Vec<u8>,
    start: usize,
}

impl HeapFrame {
    /// A frame holding a copy of `bytes`, with [`HEAP_FRAME_HEADROOM`] bytes of headroom.
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(HEAP_FRAME_HEADROOM + bytes.len());
        buf.resize(HEAP_FRAME_HEADROOM, 0);
        buf.extend_from_slice(bytes);
        HeapFrame {
            buf,
            start: HEAP_FRAME_HEADROOM,
        }
    }

    /// The frame's bytes as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl core::fmt::Debug for HeapFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HeapFrame({} bytes)", self.data().len())
    }
}

impl Frame for HeapFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        let end = self.start.saturating_add(len);
        if end < self.buf.len() {
            self.buf.truncate(end);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In-place rewrites: OpenFlow set-field, push/pop VLAN, TTL. Checksums (IPv4 header, TCP, UDP
// with a non-zero checksum, ICMPv4, ICMPv6, and TCP/UDP over IPv6) are kept right by RFC 1624
// incremental update, so a checksum that was wrong stays wrong by the same amount (as in OVS);
// SCTP's CRC32c is adjusted the same way by recomputing old and new over the whole packet.
// Every rewrite parses the frame first (`extract`), so offsets are never stale.

use crate::extract::{PacketInfo, extract};
use crate::flow::internal::{FRAG_ANY, FRAG_WORD};
use crate::flow::{Field, FlowKey};
use crate::wire::checksum;
use crate::wire::icmpv6::{self, NdPacket};
use crate::wire::{
    ArpPacket, Ipv4Packet, Ipv6Packet, ether_type, get_array, get_u8, get_u16, ip_proto, set_bytes,
};

/// Why a rewrite was not applied. The frame is unchanged whenever one is returned; callers
/// (the action executor) count it and go on, as OpenFlow says a set-field on a packet without
/// the header does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RewriteError {
    /// The packet does not carry the header or field (ipv4_src on ARP, pop_vlan untagged,
    /// nd_sll on a solicitation without the option, L4 fields on a non-first fragment).
    NotPresent,
    /// The header is there but the frame ends inside it.
    Truncated,
    /// The header is there but malformed (bad IP header, bad ND options).
    Malformed,
    /// The field cannot be written (ip_proto, in_phy_port, ipv6_exthdr).
    NotSettable,
    /// The value is wider than the field, an EtherType below 0x0600, or a TPID that is not
    /// 0x8100 / 0x88a8 / 0x9100.
    BadValue,
    /// No headroom left in front of the frame to push a tag.
    NoHeadroom,
}

impl core::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RewriteError::NotPresent => "header not present",
            RewriteError::Truncated => "header truncated",
            RewriteError::Malformed => "header malformed",
            RewriteError::NotSettable => "field not settable",
            RewriteError::BadValue => "value out of range",
            RewriteError::NoHeadroom => "no headroom",
        })
    }
}

/// What [`dec_ip_ttl`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlOutcome {
    /// The TTL / hop limit was decremented to this value (at least 1).
    Decremented(u8),
    /// The TTL / hop limit was 0 or 1, so decrementing reaches 0: the packet is left unchanged
    /// (as Open vSwitch does) and must not be forwarded; the pipeline sends it to the
    /// controllers with reason `OFPR_INVALID_TTL` and stops.
    Expired,
}

/// How a 16-bit checksum reacts to a change of the bytes it covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sum {
    /// An ordinary internet checksum at this offset.
    Inet(usize),
    /// A UDP checksum at this offset: zero means "none" and stays zero.
    Udp(usize),
}

/// Largest field patched at once (an IPv6 address) plus alignment.
const MAX_PATCH: usize = 18;

/// Writes `new` at `at` in `buf` and updates each checksum in `sums` incrementally. The
/// checksummed areas start at even offsets of `buf` (L3 and L4 always do: Ethernet, VLAN and
/// SNAP headers have even lengths, IP headers multiples of 4), so 16-bit words are taken
/// relative to the start of `buf`. Checksum fields beyond the end of a truncated frame are
/// skipped: that checksum cannot be verified anyway.
fn patch(buf: &mut [u8], at: usize, new: &[u8], sums: &[Sum]) -> Result<(), RewriteError> {
    let lo = at & !1;
    let hi = (at + new.len() + 1) & !1;
    let n = hi - lo;
    if n > MAX_PATCH + 2 || hi > buf.len() {
        return Err(RewriteError::Truncated);
    }
    let mut old = [0u8; MAX_PATCH + 2];
    old[..n].copy_from_slice(&buf[lo..hi]);
    buf[at..at + new.len()].copy_from_slice(new);
    let mut cur = [0u8; MAX_PATCH + 2];
    cur[..n].copy_from_slice(&buf[lo..hi]);
    let (old, cur) = (&old[..n], &cur[..n]);
    if old == cur {
        return Ok(());
    }
    for s in sums {
        let (off, udp) = match *s {
            Sum::Inet(o) => (o, false),
            Sum::Udp(o) => (o, true),
        };
        let Some(field) = buf.get_mut(off..off + 2) else {
            continue;
        };
        let hc = u16::from_be_bytes([field[0], field[1]]);
        let c = if udp {
            checksum::update_udp(hc, old, cur)
        } else {
            checksum::update(hc, old, cur)
        };
        field.copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// A parsed frame: its key, where its headers are, and where the IP packet ends.
struct Parsed {
    key: FlowKey,
    info: PacketInfo,
    /// End of the IP packet (by its length field) or of the buffer, whichever comes first;
    /// bytes after it are Ethernet padding that no checksum covers.
    ip_end: usize,
}

impl Parsed {
    #[inline]
    fn new(buf: &[u8]) -> Parsed {
        let mut key = FlowKey::ZERO;
        let info = extract(buf, 0, &mut key);
        let l3 = info.l3.map_or(0, usize::from);
        let ip_end = match key.eth_type() {
            ether_type::IPV4 => l3 + usize::from(get_u16(buf, l3 + 2)),
            ether_type::IPV6 => {
                l3 + crate::wire::ipv6::HEADER_LEN + usize::from(get_u16(buf, l3 + 4))
            }
            _ => buf.len(),
        };
        Parsed {
            key,
            info,
            ip_end: ip_end.min(buf.len()),
        }
    }

    /// Whether the whole IP packet is in the buffer (its length field is not beyond the end).
    fn ip_complete(&self, buf: &[u8]) -> bool {
        let l3 = self.info.l3.map_or(0, usize::from);
        let end = match self.key.eth_type() {
            ether_type::IPV4 => l3 + usize::from(get_u16(buf, l3 + 2)),
            _ => l3 + crate::wire::ipv6::HEADER_LEN + usize::from(get_u16(buf, l3 + 4)),
        };
        end <= buf.len()
    }

    fn l3(&self) -> Result<usize, RewriteError> {
        self.info.l3.map(usize::from).ok_or(RewriteError::Truncated)
    }

    /// Offset of a valid IPv4 header.
    fn ipv4(&self, buf: &[u8]) -> Result<usize, RewriteError> {
        if self.key.eth_type() != ether_type::IPV4 {
            return Err(RewriteError::NotPresent);
        }
        let l3 = self.l3()?;
        match Ipv4Packet::new_checked_header(buf.get(l3..).unwrap_or(&[])) {
            Ok(_) => Ok(l3),
            Err(crate::wire::Error::Truncated) => Err(RewriteError::Truncated),
            Err(crate::wire::Error::Malformed) => Err(RewriteError::Malformed),
        }
    }

    /// Offset of a valid IPv6 header.
    fn ipv6(&self, buf: &[u8]) -> Result<usize, RewriteError> {
        if self.key.eth_type() != ether_type::IPV6 {
            return Err(RewriteError::NotPresent);
        }
        let l3 = self.l3()?;
        match Ipv6Packet::new_checked_header(buf.get(l3..).unwrap_or(&[])) {
            Ok(_) => Ok(l3),
            Err(crate::wire::Error::Truncated) => Err(RewriteError::Truncated),
            Err(crate::wire::Error::Malformed) => Err(RewriteError::Malformed),
        }
    }

    /// Segments left of an IPv6 packet's first routing header (0 if none, or not IPv6).
    fn routing_segments_left(&self, buf: &[u8]) -> u8 {
        if self.key.get(Field::Ipv6Exthdr) & u128::from(crate::wire::ipv6::exthdr::ROUTER) == 0 {
            return 0;
        }
        let l3 = self.info.l3.map_or(0, usize::from);
        match Ipv6Packet::new_checked_header(buf.get(l3..).unwrap_or(&[])) {
            Ok(ip) => ip.ext_headers().routing_segments_left,
            Err(_) => 0,
        }
    }

    fn is_ip(&self) -> bool {
        matches!(self.key.eth_type(), ether_type::IPV4 | ether_type::IPV6)
    }

    /// The L4 checksum that covers the IP pseudo-header, if the packet has one.
    fn pseudo_sum(&self) -> Option<Sum> {
        let l4 = usize::from(self.info.l4?);
        let v6 = self.key.eth_type() == ether_type::IPV6;
        let s = match self.key.ip_proto() {
            ip_proto::TCP => Sum::Inet(l4 + crate::wire::tcp::CHECKSUM_OFFSET),
            ip_proto::UDP => Sum::Udp(l4 + crate::wire::udp::CHECKSUM_OFFSET),
            ip_proto::ICMPV6 if v6 => Sum::Inet(l4 + icmpv6::CHECKSUM_OFFSET),
            _ => return None,
        };
        // A checksum field in the Ethernet padding after a short IP packet is not one.
        let (Sum::Inet(o) | Sum::Udp(o)) = s;
        (o + 2 <= self.ip_end).then_some(s)
    }

    /// Offset of the L4 header of protocol `proto` (over IPv4 or IPv6), whole `need` bytes.
    fn l4(&self, proto: u8, need: usize) -> Result<usize, RewriteError> {
        if !self.is_ip() || self.key.ip_proto() != proto {
            return Err(RewriteError::NotPresent);
        }
        let l4 = usize::from(self.info.l4.ok_or(RewriteError::NotPresent)?);
        if self.ip_end < l4 + need {
            return Err(RewriteError::Truncated);
        }
        Ok(l4)
    }

    /// Offset of an ICMPv4 (over IPv4) or ICMPv6 (over IPv6) header and its checksum.
    fn icmp(&self, v6: bool) -> Result<usize, RewriteError> {
        let want = if v6 {
            ether_type::IPV6
        } else {
            ether_type::IPV4
        };
        if self.key.eth_type() != want {
            return Err(RewriteError::NotPresent);
        }
        if v6 {
            self.l4(ip_proto::ICMPV6, icmpv6::HEADER_LEN)
        } else {
            self.l4(ip_proto::ICMP, crate::wire::icmpv4::HEADER_LEN)
        }
    }

    /// Offset of an NS/NA message.
    fn nd(&self, buf: &[u8]) -> Result<usize, RewriteError> {
        let l4 = self.icmp(true)?;
        match NdPacket::new_checked(buf.get(l4..self.ip_end).unwrap_or(&[])) {
            Ok(_) => Ok(l4),
            Err(crate::wire::Error::Truncated) => Err(RewriteError::Truncated),
            Err(crate::wire::Error::Malformed) => Err(RewriteError::NotPresent),
        }
    }

    /// Offset of an Ethernet/IPv4 ARP packet.
    fn arp(&self, buf: &[u8]) -> Result<usize, RewriteError> {
        if self.key.eth_type() != ether_type::ARP {
            return Err(RewriteError::NotPresent);
        }
        let l3 = self.l3()?;
        match ArpPacket::new_checked(buf.get(l3..).unwrap_or(&[])) {
            Ok(a) if a.is_ethernet_ipv4() => Ok(l3),
            Ok(_) => Err(RewriteError::NotPresent),
            Err(_) => Err(RewriteError::Truncated),
        }
    }
}

/// Offset of the outer VLAN tag's TCI, if the frame has one.
fn outer_tci(buf: &[u8]) -> Result<usize, RewriteError> {
    if buf.len() < 14 || !ether_type::is_vlan(get_u16(buf, 12)) {
        return Err(RewriteError::NotPresent);
    }
    if buf.len() < 16 {
        return Err(RewriteError::Truncated);
    }
    Ok(14)
}

/// Sets `field` to `value` in the frame (OpenFlow set-field), keeping checksums right.
/// Pipeline metadata (`in_port`, `metadata`, `tunnel_id`) lives in the key only: `Ok(())`
/// without touching the bytes. VLAN fields act on the outer tag; `vlan_vid` takes the 12-bit
/// VID with or without `OFPVID_PRESENT`.
pub fn set_field<F: Frame + ?Sized>(
    frame: &mut F,
    field: Field,
    value: u128,
) -> Result<(), RewriteError> {
    set_field_bytes(frame.data_mut(), field, value)
}

/// [`set_field`] on a frame's bytes.
pub fn set_field_bytes(buf: &mut [u8], field: Field, value: u128) -> Result<(), RewriteError> {
    if value > field.max() {
        return Err(RewriteError::BadValue);
    }
    match field {
        Field::InPort | Field::Metadata | Field::TunnelId => return Ok(()),
        Field::InPhyPort | Field::IpProto | Field::Ipv6Exthdr => {
            return Err(RewriteError::NotSettable);
        }
        Field::EthDst => return patch(buf, 0, &mac_bytes(value), &[]),
        Field::EthSrc => return patch(buf, 6, &mac_bytes(value), &[]),
        Field::VlanVid | Field::VlanPcp => {
            let at = outer_tci(buf)?;
            let tci = get_u16(buf, at);
            let tci = if field == Field::VlanVid {
                (tci & !0x0fff) | (value as u16 & 0x0fff)
            } else {
                (tci & 0x1fff) | ((value as u16) << 13)
            };
            return patch(buf, at, &tci.to_be_bytes(), &[]);
        }
        _ => {}
    }

    let p = Parsed::new(buf);
    match field {
        Field::EthType => {
            if value < u128::from(ether_type::MIN) {
                return Err(RewriteError::BadValue);
            }
            if p.key.eth_type() == ether_type::NONE {
                return Err(RewriteError::NotPresent);
            }
            let l3 = p.l3()?;
            patch(buf, l3 - 2, &(value as u16).to_be_bytes(), &[])
        }
        Field::IpDscp | Field::IpEcn => {
            let (shift, mask) = if field == Field::IpDscp {
                (2, 0xfc)
            } else {
                (0, 0x03)
            };
            let bits = ((value as u8) << shift) & mask;
            if let Ok(l3) = p.ipv4(buf) {
                let tos = (get_u8(buf, l3 + 1) & !mask) | bits;
                patch(
                    buf,
                    l3 + 1,
                    &[tos],
                    &[Sum::Inet(l3 + crate::wire::ipv4::CHECKSUM_OFFSET)],
                )
            } else {
                let l3 = p.ipv6(buf)?;
                // The traffic class straddles bytes 0 and 1; it is in no checksum.
                let w = get_u16(buf, l3);
                let tc = ((w >> 4) as u8 & !mask) | bits;
                let w = (w & 0xf00f) | (u16::from(tc) << 4);
                patch(buf, l3, &w.to_be_bytes(), &[])
            }
        }
        Field::Ipv4Src | Field::Ipv4Dst => {
            let l3 = p.ipv4(buf)?;
            let at = l3
                + if field == Field::Ipv4Src {
                    crate::wire::ipv4::SRC_OFFSET
                } else {
                    crate::wire::ipv4::DST_OFFSET
                };
            let ip_sum = Sum::Inet(l3 + crate::wire::ipv4::CHECKSUM_OFFSET);
            let new = (value as u32).to_be_bytes();
            match p.pseudo_sum() {
                Some(l4_sum) => patch(buf, at, &new, &[ip_sum, l4_sum]),
                None => patch(buf, at, &new, &[ip_sum]),
            }
        }
        Field::Ipv6Src | Field::Ipv6Dst => {
            let l3 = p.ipv6(buf)?;
            let at = l3
                + if field == Field::Ipv6Src {
                    crate::wire::ipv6::SRC_OFFSET
                } else {
                    crate::wire::ipv6::DST_OFFSET
                };
            let new = value.to_be_bytes();
            // With segments left in a routing header, the upper-layer checksum covers the final
            // destination, not this one (RFC 8200 8.1); Open vSwitch leaves it alone too.
            let final_dst_elsewhere = field == Field::Ipv6Dst && p.routing_segments_left(buf) != 0;
            match p.pseudo_sum() {
                Some(l4_sum) if !final_dst_elsewhere => patch(buf, at, &new, &[l4_sum]),
                _ => patch(buf, at, &new, &[]),
            }
        }
        Field::Ipv6Flabel => {
            let l3 = p.ipv6(buf)?;
            let w = (crate::wire::get_u32(buf, l3) & !0x000f_ffff) | (value as u32);
            patch(buf, l3, &w.to_be_bytes(), &[])
        }
        Field::TcpSrc | Field::TcpDst => {
            let l4 = p.l4(ip_proto::TCP, crate::wire::tcp::MIN_HEADER_LEN)?;
            let at = l4 + if field == Field::TcpSrc { 0 } else { 2 };
            let sum = Sum::Inet(l4 + crate::wire::tcp::CHECKSUM_OFFSET);
            patch(buf, at, &(value as u16).to_be_bytes(), &[sum])
        }
        Field::UdpSrc | Field::UdpDst => {
            let l4 = p.l4(ip_proto::UDP, crate::wire::udp::HEADER_LEN)?;
            let at = l4 + if field == Field::UdpSrc { 0 } else { 2 };
            let sum = Sum::Udp(l4 + crate::wire::udp::CHECKSUM_OFFSET);
            patch(buf, at, &(value as u16).to_be_bytes(), &[sum])
        }
        Field::SctpSrc | Field::SctpDst => {
            let l4 = p.l4(ip_proto::SCTP, crate::wire::sctp::HEADER_LEN)?;
            let at = l4 + if field == Field::SctpSrc { 0 } else { 2 };
            set_sctp_port(buf, &p, l4, at, value as u16)
        }
        Field::Icmpv4Type | Field::Icmpv4Code | Field::Icmpv6Type | Field::Icmpv6Code => {
            let v6 = matches!(field, Field::Icmpv6Type | Field::Icmpv6Code);
            let l4 = p.icmp(v6)?;
            let at = l4 + usize::from(matches!(field, Field::Icmpv4Code | Field::Icmpv6Code));
            patch(buf, at, &[value as u8], &[Sum::Inet(l4 + 2)])
        }
        Field::Ipv6NdTarget => {
            let l4 = p.nd(buf)?;
            let at = l4 + icmpv6::ND_TARGET_OFFSET;
            patch(buf, at, &value.to_be_bytes(), &[Sum::Inet(l4 + 2)])
        }
        Field::Ipv6NdSll | Field::Ipv6NdTll => {
            let l4 = p.nd(buf)?;
            let want = if field == Field::Ipv6NdSll {
                icmpv6::NEIGHBOR_SOLICIT
            } else {
                icmpv6::NEIGHBOR_ADVERT
            };
            if get_u8(buf, l4) != want {
                return Err(RewriteError::NotPresent);
            }
            let nd = NdPacket::new_checked(buf.get(l4..p.ip_end).unwrap_or(&[]))
                .map_err(|_| RewriteError::Malformed)?;
            let (off, _) = nd
                .ll_addr()
                .map_err(|_| RewriteError::Malformed)?
                .ok_or(RewriteError::NotPresent)?;
            patch(buf, l4 + off, &mac_bytes(value), &[Sum::Inet(l4 + 2)])
        }
        Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
            let l3 = p.arp(buf)?;
            match field {
                Field::ArpOp => patch(buf, l3 + 6, &(value as u16).to_be_bytes(), &[]),
                Field::ArpSha => patch(buf, l3 + 8, &mac_bytes(value), &[]),
                Field::ArpSpa => patch(buf, l3 + 14, &(value as u32).to_be_bytes(), &[]),
                Field::ArpTha => patch(buf, l3 + 18, &mac_bytes(value), &[]),
                _ => patch(buf, l3 + 24, &(value as u32).to_be_bytes(), &[]),
            }
        }
        // Handled before parsing.
        Field::InPort
        | Field::InPhyPort
        | Field::Metadata
        | Field::TunnelId
        | Field::IpProto
        | Field::Ipv6Exthdr
        | Field::EthDst
        | Field::EthSrc
        | Field::VlanVid
        | Field::VlanPcp => Ok(()),
    }
}

fn mac_bytes(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// Rewrites an SCTP port and adjusts the CRC32c the way Open vSwitch does: the stored value
/// is XORed with (correct CRC before) ^ (correct CRC after), which keeps a right CRC right and
/// a wrong one wrong. Needs the whole SCTP packet; on a truncated one the CRC is left alone.
fn set_sctp_port(
    buf: &mut [u8],
    p: &Parsed,
    l4: usize,
    at: usize,
    port: u16,
) -> Result<(), RewriteError> {
    let end = sctp_end(buf, p, l4);
    let csum_at = l4 + crate::wire::sctp::CHECKSUM_OFFSET;
    let crc_of = |b: &[u8]| match end {
        Some(e) => crate::wire::SctpPacket::new_checked(b.get(l4..e).unwrap_or(&[]))
            .map(|s| s.compute_checksum())
            .ok(),
        None => None,
    };
    let before = crc_of(buf);
    patch(buf, at, &port.to_be_bytes(), &[])?;
    if let (Some(before), Some(after)) = (before, crc_of(buf)) {
        let stored = u32::from_le_bytes(get_array(buf, csum_at));
        set_bytes(buf, csum_at, &(stored ^ before ^ after).to_le_bytes());
    }
    Ok(())
}

/// End of the SCTP packet if all of it is in `buf`.
fn sctp_end(buf: &[u8], p: &Parsed, l4: usize) -> Option<usize> {
    (p.ip_complete(buf) && p.ip_end >= l4).then_some(p.ip_end)
}

/// Pushes a new outer VLAN tag with `tpid` (0x8100, 0x88a8 or 0x9100). As OpenFlow says, the
/// new tag copies PCP and VID from the current outer tag if there is one, else they are 0.
pub fn push_vlan<F: Frame + ?Sized>(frame: &mut F, tpid: u16) -> Result<(), RewriteError> {
    if !ether_type::is_vlan(tpid) {
        return Err(RewriteError::BadValue);
    }
    let d = frame.data();
    if d.len() < 14 {
        return Err(RewriteError::Truncated);
    }
    let tci = if ether_type::is_vlan(get_u16(d, 12)) && d.len() >= 16 {
        get_u16(d, 14) & !0x1000
    } else {
        0
    };
    if !frame.prepend(4) {
        return Err(RewriteError::NoHeadroom);
    }
    let Some(h) = frame.data_mut().get_mut(..16) else {
        // prepend() grew a frame of at least 14 bytes by 4.
        return Err(RewriteError::Truncated);
    };
    h.copy_within(4..16, 0);
    h[12..14].copy_from_slice(&tpid.to_be_bytes());
    h[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(())
}

/// Removes the outer VLAN tag.
pub fn pop_vlan<F: Frame + ?Sized>(frame: &mut F) -> Result<(), RewriteError> {
    let d = frame.data();
    outer_tci(d)?;
    if d.len() < 18 {
        return Err(RewriteError::Truncated);
    }
    if let Some(h) = frame.data_mut().get_mut(..16) {
        h.copy_within(0..12, 4);
    }
    if !frame.trim_front(4) {
        return Err(RewriteError::Truncated);
    }
    Ok(())
}

/// OpenFlow `dec_nw_ttl`: decrements the IPv4 TTL (keeping the header checksum right) or the
/// IPv6 hop limit. A TTL of 0 or 1 is reported as [`TtlOutcome::Expired`] and left unchanged.
pub fn dec_ip_ttl<F: Frame + ?Sized>(frame: &mut F) -> Result<TtlOutcome, RewriteError> {
    dec_ip_ttl_bytes(frame.data_mut())
}

/// [`dec_ip_ttl`] on a frame's bytes.
pub fn dec_ip_ttl_bytes(buf: &mut [u8]) -> Result<TtlOutcome, RewriteError> {
    let (at, sums) = ttl_place(buf)?;
    let ttl = get_u8(buf, at);
    if ttl <= 1 {
        return Ok(TtlOutcome::Expired);
    }
    patch(buf, at, &[ttl - 1], sums.as_slice())?;
    Ok(TtlOutcome::Decremented(ttl - 1))
}

/// OpenFlow `set_nw_ttl`: sets the IPv4 TTL or the IPv6 hop limit.
pub fn set_ip_ttl<F: Frame + ?Sized>(frame: &mut F, ttl: u8) -> Result<(), RewriteError> {
    set_ip_ttl_bytes(frame.data_mut(), ttl)
}

/// [`set_ip_ttl`] on a frame's bytes.
pub fn set_ip_ttl_bytes(buf: &mut [u8], ttl: u8) -> Result<(), RewriteError> {
    let (at, sums) = ttl_place(buf)?;
    patch(buf, at, &[ttl], sums.as_slice())
}

/// Zero or one checksum to update, without a heap.
struct Sums(Option<Sum>);

impl Sums {
    fn as_slice(&self) -> &[Sum] {
        self.0.as_slice()
    }
}

fn ttl_place(buf: &[u8]) -> Result<(usize, Sums), RewriteError> {
    let p = Parsed::new(buf);
    match p.key.eth_type() {
        ether_type::IPV4 => {
            let l3 = p.ipv4(buf)?;
            Ok((
                l3 + crate::wire::ipv4::TTL_OFFSET,
                Sums(Some(Sum::Inet(l3 + crate::wire::ipv4::CHECKSUM_OFFSET))),
            ))
        }
        ether_type::IPV6 => {
            let l3 = p.ipv6(buf)?;
            Ok((l3 + crate::wire::ipv6::HOP_LIMIT_OFFSET, Sums(None)))
        }
        _ => Err(RewriteError::NotPresent),
    }
}

/// The bytes an L4 checksum covers in a complete, unfragmented IP packet.
struct L4Span {
    l4: usize,
    end: usize,
    /// Pseudo-header sum (zero for ICMPv4 and SCTP, which have none).
    pseudo: u16,
    /// Offset of the 16-bit checksum inside the L4 header; `None` for SCTP (CRC32c).
    csum: Option<usize>,
    udp: bool,
}

fn l4_span(buf: &[u8], p: &Parsed) -> Option<L4Span> {
    let l4 = usize::from(p.info.l4?);
    if !p.is_ip() || !p.ip_complete(buf) || p.key.w[FRAG_WORD] & FRAG_ANY != 0 || l4 > p.ip_end {
        return None;
    }
    // The pseudo-header would need the final destination from the routing header.
    if p.routing_segments_left(buf) != 0 {
        return None;
    }
    let l3 = usize::from(p.info.l3?);
    let proto = p.key.ip_proto();
    let v6 = p.key.eth_type() == ether_type::IPV6;
    let len = (p.ip_end - l4) as u32;
    let pseudo = if v6 {
        checksum::pseudo_header_v6(
            &get_array(buf, l3 + crate::wire::ipv6::SRC_OFFSET),
            &get_array(buf, l3 + crate::wire::ipv6::DST_OFFSET),
            proto,
            len,
        )
    } else {
        checksum::pseudo_header_v4(
            &get_array(buf, l3 + crate::wire::ipv4::SRC_OFFSET),
            &get_array(buf, l3 + crate::wire::ipv4::DST_OFFSET),
            proto,
            len,
        )
    };
    let (pseudo, csum) = match proto {
        ip_proto::TCP => (pseudo, Some(crate::wire::tcp::CHECKSUM_OFFSET)),
        ip_proto::UDP => (pseudo, Some(crate::wire::udp::CHECKSUM_OFFSET)),
        ip_proto::ICMPV6 if v6 => (pseudo, Some(icmpv6::CHECKSUM_OFFSET)),
        ip_proto::ICMP if !v6 => (0, Some(crate::wire::icmpv4::CHECKSUM_OFFSET)),
        ip_proto::SCTP => (0, None),
        _ => return None,
    };
    Some(L4Span {
        l4,
        end: p.ip_end,
        pseudo,
        csum,
        udp: proto == ip_proto::UDP,
    })
}

/// Whether every checksum of `buf` verifies: the IPv4 header checksum and, for a complete and
/// unfragmented IP packet, the TCP / UDP / ICMPv4 / ICMPv6 checksum or SCTP CRC32c (a zero UDP
/// checksum means "none" and counts as valid). Parts that cannot be checked (truncated,
/// fragments, other protocols, IPv6 with segments left in a routing header) count as valid.
pub fn verify_checksums(buf: &[u8]) -> bool {
    let p = Parsed::new(buf);
    if let Ok(l3) = p.ipv4(buf)
        && let Ok(ip) = Ipv4Packet::new_checked_header(buf.get(l3..).unwrap_or(&[]))
        && !ip.verify_checksum()
    {
        return false;
    }
    let Some(s) = l4_span(buf, &p) else {
        return true;
    };
    let seg = buf.get(s.l4..s.end).unwrap_or(&[]);
    let Some(co) = s.csum else {
        // An SCTP packet shorter than its common header has no CRC to check.
        return match crate::wire::SctpPacket::new_checked(seg) {
            Ok(sctp) => sctp.verify_checksum(),
            Err(_) => true,
        };
    };
    if seg.len() < co + 2 || (s.udp && get_u16(seg, co) == 0) {
        return true;
    }
    checksum::verify(s.pseudo, seg)
}

/// Recomputes every checksum of `buf` from scratch (the same set [`verify_checksums`] checks;
/// a zero UDP checksum stays zero). For packets built by the slow path and for tests.
pub fn fill_checksums(buf: &mut [u8]) {
    let p = Parsed::new(buf);
    if let Ok(l3) = p.ipv4(buf)
        && let Ok(mut ip) = Ipv4Packet::new_checked_header(buf.get_mut(l3..).unwrap_or(&mut []))
    {
        ip.fill_checksum();
    }
    let Some(s) = l4_span(buf, &p) else {
        return;
    };
    let seg = buf.get_mut(s.l4..s.end).unwrap_or(&mut []);
    let Some(co) = s.csum else {
        if let Ok(mut sctp) = crate::wire::SctpPacket::new_checked(seg) {
            sctp.fill_checksum();
        }
        return;
    };
    if seg.len() < co + 2 || (s.udp && get_u16(seg, co) == 0) {
        return;
    }
    set_bytes(seg, co, &[0, 0]);
    let mut c = !checksum::combine(&[s.pseudo, checksum::data(seg)]);
    if s.udp && c == 0 {
        c = 0xffff;
    }
    set_bytes(seg, co, &c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::testpkt::*;
    use crate::flow::OFPVID_PRESENT;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn key_of(b: &[u8]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        extract(b, 0, &mut k);
        k
    }

    fn sample(name: &str) -> Vec<u8> {
        samples().into_iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Full recompute of every checksum gives the same bytes as the incremental updates.
    fn assert_checksums(f: &[u8], what: &str) {
        assert!(checksums_ok(f), "{what}: checksum broken");
        let mut full = f.to_vec();
        fill_checksums(&mut full);
        assert_eq!(full, f, "{what}: differs from full recompute");
    }

    /// A value for `field` different from `old` (and valid for it).
    fn other_value(field: Field, old: u128) -> u128 {
        let v = match field {
            Field::VlanVid => u128::from(OFPVID_PRESENT) | ((old + 0x123) & 0xfff),
            _ => (old ^ 0x5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a) & field.max(),
        };
        if v == old { (old + 1) & field.max() } else { v }
    }

    /// Settable fields that the packet shape decides about (metadata and not-settable fields
    /// are tested separately).
    const PACKET_FIELDS: [Field; 30] = [
        Field::EthDst,
        Field::EthSrc,
        Field::EthType,
        Field::VlanVid,
        Field::VlanPcp,
        Field::IpDscp,
        Field::IpEcn,
        Field::Ipv4Src,
        Field::Ipv4Dst,
        Field::TcpSrc,
        Field::TcpDst,
        Field::UdpSrc,
        Field::UdpDst,
        Field::SctpSrc,
        Field::SctpDst,
        Field::Icmpv4Type,
        Field::Icmpv4Code,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Flabel,
        Field::Icmpv6Type,
        Field::Icmpv6Code,
        Field::Ipv6NdTarget,
        Field::Ipv6NdSll,
        Field::Ipv6NdTll,
    ];

    /// Which fields each sample must accept (every other must be refused, frame unchanged).
    fn expected_ok(name: &str, key: &FlowKey) -> Vec<Field> {
        use Field::*;
        let mut v = alloc::vec![EthDst, EthSrc];
        if key.eth_type() != 0x05ff {
            v.push(EthType);
        }
        if key.vlan().is_some() {
            v.extend([VlanVid, VlanPcp]);
        }
        let later = name.ends_with("frag-later");
        match key.eth_type() {
            0x0800 => v.extend([IpDscp, IpEcn, Ipv4Src, Ipv4Dst]),
            0x86dd => v.extend([IpDscp, IpEcn, Ipv6Src, Ipv6Dst, Ipv6Flabel]),
            0x0806 => v.extend([ArpOp, ArpSpa, ArpTpa, ArpSha, ArpTha]),
            _ => {}
        }
        if !later {
            match (key.eth_type(), key.ip_proto()) {
                (0x0800 | 0x86dd, 6) => v.extend([TcpSrc, TcpDst]),
                (0x0800 | 0x86dd, 17) => v.extend([UdpSrc, UdpDst]),
                (0x0800 | 0x86dd, 132) => v.extend([SctpSrc, SctpDst]),
                (0x0800, 1) => v.extend([Icmpv4Type, Icmpv4Code]),
                (0x86dd, 58) => v.extend([Icmpv6Type, Icmpv6Code]),
                _ => {}
            }
        }
        if key.get(Ipv6NdTarget) != 0 {
            v.push(Ipv6NdTarget);
            if key.get(Ipv6NdSll) != 0 {
                v.push(Ipv6NdSll);
            }
            if key.get(Ipv6NdTll) != 0 {
                v.push(Ipv6NdTll);
            }
        }
        v
    }

    #[test]
    fn every_field_on_every_sample() {
        for (name, orig) in samples() {
            let k0 = key_of(&orig);
            let ok = expected_ok(&name, &k0);
            for field in PACKET_FIELDS {
                let value = other_value(field, k0.get(field));
                let mut f = HeapFrame::new(&orig);
                let r = set_field(&mut f, field, value);
                let what = alloc::format!("{name} {field:?}={value:#x}");
                if !ok.contains(&field) {
                    assert!(r.is_err(), "{what}: accepted");
                    assert_eq!(f.data(), &orig[..], "{what}: changed on error");
                    continue;
                }
                assert_eq!(r, Ok(()), "{what}");
                assert_checksums(f.data(), &what);
                if field == Field::EthType {
                    // The frame is now another kind of packet; only the type is checked.
                    assert_eq!(key_of(f.data()).eth_type() as u128, value, "{what}");
                    continue;
                }
                let mut expect = k0;
                expect.set(field, value);
                if matches!(field, Field::Icmpv6Type | Field::Icmpv6Code) {
                    // No longer NS/NA code 0: no ND fields.
                    for nd in [Field::Ipv6NdTarget, Field::Ipv6NdSll, Field::Ipv6NdTll] {
                        expect.set(nd, 0);
                    }
                }
                assert_eq!(key_of(f.data()), expect, "{what}");
            }
        }
    }

    #[test]
    fn known_rewrite_bytes() {
        // ipv4_dst on TCP: bytes land where they should, header and TCP checksums verify.
        let mut f = HeapFrame::new(&sample("tcp4"));
        set_field(&mut f, Field::Ipv4Dst, 0x0a00_0001).unwrap();
        assert_eq!(&f.data()[30..34], &[10, 0, 0, 1]);
        assert_checksums(f.data(), "tcp4 ipv4_dst");
        // DSCP keeps ECN, ECN keeps DSCP.
        set_field(&mut f, Field::IpDscp, 10).unwrap();
        assert_eq!(f.data()[15], (10 << 2) | 1);
        set_field(&mut f, Field::IpEcn, 2).unwrap();
        assert_eq!(f.data()[15], (10 << 2) | 2);
        assert_checksums(f.data(), "tcp4 tos");
        // IPv6 traffic class and flow label share the first word.
        let mut f = HeapFrame::new(&sample("udp6"));
        set_field(&mut f, Field::IpDscp, 0).unwrap();
        set_field(&mut f, Field::Ipv6Flabel, 0xfffff).unwrap();
        assert_eq!(&f.data()[14..18], &[0x60, 0x1f, 0xff, 0xff]);
        // vlan_vid with and without OFPVID_PRESENT; pcp keeps the VID.
        let mut f = HeapFrame::new(&sample("vlan-tcp4"));
        set_field(&mut f, Field::VlanVid, 0x1000 | 300).unwrap();
        assert_eq!(key_of(f.data()).vlan(), Some(300));
        set_field(&mut f, Field::VlanVid, 301).unwrap();
        set_field(&mut f, Field::VlanPcp, 2).unwrap();
        let k = key_of(f.data());
        assert_eq!((k.vlan(), k.get(Field::VlanPcp)), (Some(301), 2));
    }

    #[test]
    fn refusals() {
        let mut f = HeapFrame::new(&sample("arp"));
        assert_eq!(
            set_field(&mut f, Field::Ipv4Src, 1),
            Err(RewriteError::NotPresent)
        );
        assert_eq!(
            set_field(&mut f, Field::IpProto, 1),
            Err(RewriteError::NotSettable)
        );
        assert_eq!(
            set_field(&mut f, Field::Ipv6Exthdr, 1),
            Err(RewriteError::NotSettable)
        );
        assert_eq!(
            set_field(&mut f, Field::InPhyPort, 1),
            Err(RewriteError::NotSettable)
        );
        assert_eq!(
            set_field(&mut f, Field::VlanPcp, 8),
            Err(RewriteError::BadValue)
        );
        assert_eq!(
            set_field(&mut f, Field::EthType, 0x5ff),
            Err(RewriteError::BadValue)
        );
        assert_eq!(
            set_field(&mut f, Field::Ipv4Dst, 1 << 32),
            Err(RewriteError::BadValue)
        );
        for m in [Field::InPort, Field::Metadata, Field::TunnelId] {
            assert_eq!(set_field(&mut f, m, 5), Ok(()));
        }
        assert_eq!(f.data(), &sample("arp")[..]);
        // A zero UDP checksum stays zero.
        let mut b = sample("udp4");
        b[40..42].fill(0);
        let mut f = HeapFrame::new(&b);
        set_field(&mut f, Field::Ipv4Src, 0x0102_0304).unwrap();
        set_field(&mut f, Field::UdpDst, 99).unwrap();
        assert_eq!(&f.data()[40..42], &[0, 0]);
        assert_checksums(f.data(), "udp4 zero csum");
        // Truncated L4: ports refused, IP address still rewritten.
        let b = sample("tcp4");
        let mut f = HeapFrame::new(&b[..44]);
        assert_eq!(
            set_field(&mut f, Field::TcpSrc, 1),
            Err(RewriteError::Truncated)
        );
        assert_eq!(set_field(&mut f, Field::Ipv4Src, 1), Ok(()));
        // Rewrites never panic on any prefix of any sample.
        for (_, full) in samples() {
            for n in 0..full.len() {
                for field in PACKET_FIELDS {
                    let mut f = HeapFrame::new(&full[..n]);
                    let _ = set_field(&mut f, field, 1);
                }
                let mut f = HeapFrame::new(&full[..n]);
                let _ = dec_ip_ttl(&mut f);
                let _ = push_vlan(&mut f, 0x8100);
                let _ = pop_vlan(&mut f);
                let _ = pop_vlan(&mut f);
            }
        }
    }

    #[test]
    fn padding_after_a_short_ip_packet_is_not_touched() {
        // The IPv4 total length covers 8 bytes of "TCP"; the rest of the frame is padding
        // that happens to look like the rest of a TCP header.
        let mut b = sample("tcp4");
        b[16..18].copy_from_slice(&28u16.to_be_bytes());
        fill_checksums(&mut b);
        let mut f = HeapFrame::new(&b);
        assert_eq!(set_field(&mut f, Field::Ipv4Src, 0x0a0a_0a0a), Ok(()));
        assert_eq!(&f.data()[42..], &b[42..]);
        assert!(verify_checksums(f.data()));
        assert_eq!(
            set_field(&mut f, Field::TcpSrc, 9),
            Err(RewriteError::Truncated)
        );
    }

    /// Found by the fuzzer: an IPv6 packet announcing SCTP with a zero payload length has no
    /// CRC to check, so `verify_checksums` must call it valid (`fill_checksums` can't fix it).
    #[test]
    fn empty_sctp_has_no_crc_to_check() {
        let mut b = sample("sctp6");
        b[18..20].fill(0);
        assert!(verify_checksums(&b));
        let mut c = b.clone();
        fill_checksums(&mut c);
        assert_eq!(b, c);
    }

    #[test]
    fn ipv6_dst_behind_a_routing_header_keeps_the_l4_checksum() {
        // Routing header with 1 segment left: the TCP checksum covers the final destination.
        let mut rh = alloc::vec![0u8; 8];
        rh[0] = 6;
        rh[3] = 1;
        let mut b = eth(&[], 0x86dd, &ipv6_full(43, &rh, &tcp(1, 2)));
        let tcp_csum_at = 14 + 40 + 8 + 16;
        b[tcp_csum_at] = 0x12;
        b[tcp_csum_at + 1] = 0x34;
        let mut f = HeapFrame::new(&b);
        set_field(&mut f, Field::Ipv6Dst, 1).unwrap();
        assert_eq!(&f.data()[tcp_csum_at..tcp_csum_at + 2], &[0x12, 0x34]);
        assert_eq!(key_of(f.data()).get(Field::Ipv6Dst), 1);
        // The source is in the pseudo-header either way.
        set_field(&mut f, Field::Ipv6Src, 1).unwrap();
        assert_ne!(&f.data()[tcp_csum_at..tcp_csum_at + 2], &[0x12, 0x34]);
    }

    #[test]
    fn sctp_crc_follows_ports() {
        for name in ["sctp4", "sctp6"] {
            let mut f = HeapFrame::new(&sample(name));
            set_field(&mut f, Field::SctpDst, 4242).unwrap();
            assert_checksums(f.data(), name);
            // A wrong CRC stays wrong.
            let mut b = sample(name);
            let n = b.len();
            b[n - 20] ^= 1; // inside the CRC field (l4 + 8 = len - 28 + 8)
            let mut f = HeapFrame::new(&b);
            set_field(&mut f, Field::SctpSrc, 1).unwrap();
            assert!(!checksums_ok(f.data()));
        }
    }

    #[test]
    fn push_and_pop_vlan() {
        let orig = sample("tcp4");
        let mut f = HeapFrame::new(&orig);
        assert_eq!(pop_vlan(&mut f), Err(RewriteError::NotPresent));
        push_vlan(&mut f, 0x8100).unwrap();
        assert_eq!(f.data().len(), orig.len() + 4);
        assert_eq!(&f.data()[12..16], &[0x81, 0x00, 0, 0]);
        let k = key_of(f.data());
        assert_eq!(
            (k.vlan(), k.eth_type(), k.get(Field::TcpDst)),
            (Some(0), 0x0800, 443)
        );
        set_field(&mut f, Field::VlanVid, 10).unwrap();
        set_field(&mut f, Field::VlanPcp, 3).unwrap();
        // A service tag on top copies PCP and VID.
        push_vlan(&mut f, 0x88a8).unwrap();
        assert_eq!(
            &f.data()[12..20],
            &[0x88, 0xa8, 0x60, 0x0a, 0x81, 0x00, 0x60, 0x0a]
        );
        assert_eq!(&f.data()[..12], &orig[..12]);
        pop_vlan(&mut f).unwrap();
        pop_vlan(&mut f).unwrap();
        assert_eq!(f.data(), &orig[..]);
        assert_eq!(push_vlan(&mut f, 0x0800), Err(RewriteError::BadValue));
        // Headroom runs out after 64 / 4 pushes; the frame is unchanged then.
        for _ in 0..16 {
            push_vlan(&mut f, 0x8100).unwrap();
        }
        let before = f.to_vec();
        assert_eq!(push_vlan(&mut f, 0x8100), Err(RewriteError::NoHeadroom));
        assert_eq!(f.to_vec(), before);
        let mut tiny = HeapFrame::new(&orig[..13]);
        assert_eq!(push_vlan(&mut tiny, 0x8100), Err(RewriteError::Truncated));
    }

    #[test]
    fn ttl() {
        let mut f = HeapFrame::new(&sample("udp4"));
        assert_eq!(dec_ip_ttl(&mut f), Ok(TtlOutcome::Decremented(63)));
        assert_eq!(f.data()[22], 63);
        assert_checksums(f.data(), "dec ttl");
        set_ip_ttl(&mut f, 1).unwrap();
        assert_checksums(f.data(), "set ttl");
        let before = f.to_vec();
        assert_eq!(dec_ip_ttl(&mut f), Ok(TtlOutcome::Expired));
        assert_eq!(f.to_vec(), before);
        set_ip_ttl(&mut f, 0).unwrap();
        assert_eq!(dec_ip_ttl(&mut f), Ok(TtlOutcome::Expired));
        let mut f = HeapFrame::new(&sample("qinq-udp6"));
        assert_eq!(dec_ip_ttl(&mut f), Ok(TtlOutcome::Decremented(63)));
        assert_eq!(f.data()[22 + 7], 63);
        let mut f = HeapFrame::new(&sample("arp"));
        assert_eq!(dec_ip_ttl(&mut f), Err(RewriteError::NotPresent));
        assert_eq!(set_ip_ttl(&mut f, 3), Err(RewriteError::NotPresent));
    }

    proptest! {
        /// Any rewrite with any value on any sample keeps every checksum equal to a full
        /// recompute, and a refused rewrite leaves the frame alone.
        #[test]
        fn rewrites_keep_checksums(
            which in 0usize..25,
            ops in proptest::collection::vec((0usize..34, any::<u128>()), 1..6),
        ) {
            let all = samples();
            let orig = all[which % all.len()].1.clone();
            let mut f = HeapFrame::new(&orig);
            for (op, value) in ops {
                let before = f.to_vec();
                let r = match op {
                    30 => dec_ip_ttl(&mut f).map(|_| ()),
                    31 => set_ip_ttl(&mut f, value as u8),
                    32 => push_vlan(&mut f, [0x8100, 0x88a8, 0x9100][value as usize % 3]),
                    33 => pop_vlan(&mut f),
                    i => {
                        let field = PACKET_FIELDS[i];
                        // EthType would turn the frame into another kind of packet.
                        if field == Field::EthType {
                            continue;
                        }
                        set_field(&mut f, field, value & field.max())
                    }
                };
                if r.is_err() {
                    prop_assert_eq!(f.to_vec(), before);
                }
                prop_assert!(checksums_ok(f.data()));
                let mut full = f.to_vec();
                fill_checksums(&mut full);
                prop_assert_eq!(full, f.to_vec());
            }
        }

        /// Rewrites on random bytes never panic.
        #[test]
        fn rewrites_on_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            field in 0usize..30,
            value in any::<u128>(),
        ) {
            let mut f = HeapFrame::new(&bytes);
            let _ = set_field(&mut f, PACKET_FIELDS[field], value);
            let _ = set_field(&mut f, PACKET_FIELDS[field], value & PACKET_FIELDS[field].max());
            let _ = dec_ip_ttl(&mut f);
            let _ = push_vlan(&mut f, 0x8100);
            let _ = pop_vlan(&mut f);
        }
    }
}
