//! IPv6 (RFC 8200): the fixed header and a bounded walk over extension headers that reports
//! the upper-layer protocol, fragment state and OpenFlow 1.3's `ipv6_exthdr` bits.

use super::{
    Error, Result, get_array, get_slice, get_slice_mut, get_u8, get_u16, get_u32, set_bytes,
    set_u8, set_u16, set_u32,
};

/// An IPv6 address in network byte order.
pub type Ipv6Address = [u8; 16];

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Offsets inside the fixed header.
pub const SRC_OFFSET: usize = 8;
pub const DST_OFFSET: usize = 24;
pub const HOP_LIMIT_OFFSET: usize = 7;

/// IP protocol numbers (shared by IPv4's protocol field and IPv6's next header).
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONXT: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const SCTP: u8 = 132;
}

/// OpenFlow 1.3 `ofp_ipv6exthdr_flags` (the `ipv6_exthdr` match field).
pub mod exthdr {
    /// "No next header" encountered.
    pub const NONEXT: u16 = 1 << 0;
    /// Encrypted Security Payload header present.
    pub const ESP: u16 = 1 << 1;
    /// Authentication header present.
    pub const AUTH: u16 = 1 << 2;
    /// One or two destination options headers present.
    pub const DEST: u16 = 1 << 3;
    /// Fragment header present.
    pub const FRAG: u16 = 1 << 4;
    /// Routing header present.
    pub const ROUTER: u16 = 1 << 5;
    /// Hop-by-hop options header present.
    pub const HOP: u16 = 1 << 6;
    /// Unexpected repeats encountered.
    pub const UNREP: u16 = 1 << 7;
    /// Unexpected sequencing encountered.
    pub const UNSEQ: u16 = 1 << 8;
}

/// Most extension headers the walk visits before giving up (a chain this long is an attack or
/// garbage; RFC 8200's recommended order has at most 7).
pub const MAX_EXT_HEADERS: usize = 16;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Requires version 6, the fixed header and `payload_len` bytes of payload.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_checked_header(buffer)?;
        if HEADER_LEN + usize::from(p.payload_len()) > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Requires version 6 and the fixed header; the payload may be cut short.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Ipv6Packet { buffer };
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 0) >> 4
    }
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), 0) >> 4) as u8
    }
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 3
    }
    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 4)
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 6)
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        get_u8(self.buffer.as_ref(), HOP_LIMIT_OFFSET)
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv6Address {
        get_array(self.buffer.as_ref(), SRC_OFFSET)
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Address {
        get_array(self.buffer.as_ref(), DST_OFFSET)
    }
    /// End of the packet inside the buffer: `40 + payload_len`, or the buffer's end if shorter.
    #[inline]
    pub fn packet_end(&self) -> usize {
        (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len())
    }
    /// The payload (extension headers included), as much as the buffer holds.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        get_slice(self.buffer.as_ref(), HEADER_LEN, self.packet_end())
    }
    /// Walks the extension headers of the payload.
    pub fn ext_headers(&self) -> ExtHeaderWalk {
        ExtHeaderWalk::walk(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label (the whole first word).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), 0, w);
    }
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (get_u32(self.buffer.as_ref(), 0) & !0x0ff0_0000) | (u32::from(tc) << 20);
        set_u32(self.buffer.as_mut(), 0, w);
    }
    pub fn set_flow_label(&mut self, fl: u32) {
        let w = (get_u32(self.buffer.as_ref(), 0) & !0x000f_ffff) | (fl & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), 0, w);
    }
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 4, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 6, v);
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), HOP_LIMIT_OFFSET, v);
    }
    pub fn set_src_addr(&mut self, a: Ipv6Address) {
        set_bytes(self.buffer.as_mut(), SRC_OFFSET, &a);
    }
    pub fn set_dst_addr(&mut self, a: Ipv6Address) {
        set_bytes(self.buffer.as_mut(), DST_OFFSET, &a);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.packet_end();
        get_slice_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

/// The fields of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Address,
    pub dst_addr: Ipv6Address,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len.min(0xffff) as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }

    /// Writes the fixed header into the first 40 bytes of `buf`.
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<()> {
        let hdr = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        self.emit(&mut Ipv6Packet { buffer: hdr });
        Ok(())
    }
}

/// The result of walking an IPv6 extension header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtHeaderWalk {
    /// The next-header value where the walk stopped: the upper-layer protocol when the walk
    /// completed, `ESP` / `NONXT` for those, `FRAGMENT` for a non-first fragment (as Open
    /// vSwitch reports it), or the header that was cut short when `truncated`/`malformed`.
    pub proto: u8,
    /// Offset of the header at which the walk stopped, from the start of the IPv6 payload.
    pub offset: usize,
    /// OpenFlow `OFPIEH_*` bits ([`exthdr`]).
    pub exthdr: u16,
    /// A fragment header with MF set or a non-zero offset was found.
    pub fragment: bool,
    /// ... and its offset is non-zero: no upper-layer header follows.
    pub later_fragment: bool,
    /// An extension header did not fit in the payload.
    pub truncated: bool,
    /// More than [`MAX_EXT_HEADERS`] extension headers.
    pub malformed: bool,
    /// "Segments left" of the first routing header (0 if none). When non-zero, the
    /// destination in the IPv6 header is not the final one, and upper-layer checksums use the
    /// final destination from the routing header (RFC 8200 8.1).
    pub routing_segments_left: u8,
}

impl ExtHeaderWalk {
    /// Whether the walk reached the upper-layer header (`proto` and `offset` describe it).
    #[inline]
    pub fn complete(&self) -> bool {
        !(self.truncated || self.malformed || self.later_fragment)
    }

    /// Walks the extension headers starting with next-header `first` at the start of `payload`.
    /// Visits at most [`MAX_EXT_HEADERS`] headers; never reads outside `payload`.
    pub fn walk(first: u8, payload: &[u8]) -> ExtHeaderWalk {
        // Order rank (RFC 8200 4.1): hop-by-hop, destination options (before routing), routing,
        // fragment, AH, ESP, destination options (final). A lower rank after a higher one, or
        // hop-by-hop anywhere but first, is "unexpected sequencing".
        const R_HOP: u8 = 1;
        const R_DEST1: u8 = 2;
        const R_ROUTING: u8 = 3;
        const R_FRAG: u8 = 4;
        const R_AH: u8 = 5;
        const R_DEST2: u8 = 7;

        let mut w = ExtHeaderWalk {
            proto: first,
            ..ExtHeaderWalk::default()
        };
        let mut last_rank = 0u8;
        let mut seen_ranks = 0u16;
        let mut routing_seen = false;
        let mut nh = first;
        let mut off = 0usize;
        for i in 0..=MAX_EXT_HEADERS {
            w.proto = nh;
            w.offset = off;
            let (flag, rank) = match nh {
                ip_proto::HOPOPT => (exthdr::HOP, R_HOP),
                ip_proto::DSTOPTS => {
                    let before_routing = last_rank < R_ROUTING;
                    (exthdr::DEST, if before_routing { R_DEST1 } else { R_DEST2 })
                }
                ip_proto::ROUTING => (exthdr::ROUTER, R_ROUTING),
                ip_proto::FRAGMENT => (exthdr::FRAG, R_FRAG),
                ip_proto::AH => (exthdr::AUTH, R_AH),
                ip_proto::ESP => {
                    // Encrypted: nothing after it can be read.
                    w.exthdr |= exthdr::ESP;
                    return w;
                }
                ip_proto::NONXT => {
                    w.exthdr |= exthdr::NONEXT;
                    return w;
                }
                _ => return w,
            };
            if i == MAX_EXT_HEADERS {
                w.malformed = true;
                return w;
            }
            if seen_ranks & (1 << rank) != 0 {
                w.exthdr |= exthdr::UNREP;
            }
            if rank < last_rank || (rank == R_HOP && i != 0) {
                w.exthdr |= exthdr::UNSEQ;
            }
            seen_ranks |= 1 << rank;
            last_rank = last_rank.max(rank);
            w.exthdr |= flag;

            let rest = payload.get(off..).unwrap_or(&[]);
            let len = match nh {
                ip_proto::FRAGMENT => 8,
                ip_proto::AH => (usize::from(get_u8(rest, 1)) + 2) * 4,
                _ => (usize::from(get_u8(rest, 1)) + 1) * 8,
            };
            if rest.len() < len.max(2) {
                w.truncated = true;
                return w;
            }
            let next = get_u8(rest, 0);
            if nh == ip_proto::ROUTING && !routing_seen {
                routing_seen = true;
                w.routing_segments_left = get_u8(rest, 3);
            }
            if nh == ip_proto::FRAGMENT {
                let offlg = get_u16(rest, 2);
                if offlg & 0xfff9 != 0 {
                    w.fragment = true;
                }
                if offlg & 0xfff8 != 0 {
                    // A later fragment carries no upper-layer header.
                    w.later_fragment = true;
                    w.offset = off + len;
                    return w;
                }
            }
            nh = next;
            off += len;
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload_len: u16) -> [u8; 40] {
        let mut h = [0u8; 40];
        Ipv6Repr {
            src_addr: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst_addr: [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            next_header: next,
            payload_len: usize::from(payload_len),
            hop_limit: 255,
            traffic_class: 0xb9,
            flow_label: 0xabcde,
        }
        .emit_into(&mut h)
        .unwrap();
        h
    }

    #[test]
    fn fixed_header() {
        let h = header(58, 0);
        assert_eq!(&h[..8], &[0x6b, 0x9a, 0xbc, 0xde, 0, 0, 58, 255]);
        let p = Ipv6Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb9);
        assert_eq!((p.dscp(), p.ecn()), (0xb9 >> 2, 1));
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.next_header(), 58);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(Ipv6Repr::parse(&p).unwrap().flow_label, 0xabcde);
        let mut m = h;
        let mut p = Ipv6Packet::new_checked(&mut m[..]).unwrap();
        p.set_traffic_class(0x04);
        p.set_flow_label(0x12345);
        assert_eq!(&m[..4], &[0x60, 0x41, 0x23, 0x45]);
        let mut v4 = h;
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]), Err(Error::Malformed));
        assert_eq!(Ipv6Packet::new_checked(&h[..39]), Err(Error::Truncated));
        let h = header(58, 8);
        assert_eq!(Ipv6Packet::new_checked(&h[..]), Err(Error::Truncated));
        assert!(
            Ipv6Packet::new_checked_header(&h[..])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn walk_in_order_chain() {
        // hop-by-hop (8) -> dest opts (16) -> routing (8) -> fragment (first, MF) -> AH (12)
        // -> dest opts (8) -> TCP
        let mut p = [0u8; 8 + 16 + 8 + 8 + 12 + 8];
        p[0] = ip_proto::DSTOPTS;
        p[8] = ip_proto::ROUTING;
        p[9] = 1;
        p[24] = ip_proto::FRAGMENT;
        p[32] = ip_proto::AH;
        p[34..36].copy_from_slice(&0x0001u16.to_be_bytes()); // offset 0, MF
        p[40] = ip_proto::DSTOPTS;
        p[41] = 1; // (1 + 2) * 4 = 12
        p[52] = ip_proto::TCP;
        let w = ExtHeaderWalk::walk(ip_proto::HOPOPT, &p);
        assert!(w.complete(), "{w:?}");
        assert_eq!(w.proto, ip_proto::TCP);
        assert_eq!(w.offset, p.len());
        assert!(w.fragment && !w.later_fragment);
        assert_eq!(
            w.exthdr,
            exthdr::HOP | exthdr::DEST | exthdr::ROUTER | exthdr::FRAG | exthdr::AUTH
        );
    }

    #[test]
    fn walk_flags_repeats_sequencing_and_stops() {
        // routing, then hop-by-hop (must be first), then routing again, then no next header.
        let mut p = [0u8; 24];
        p[0] = ip_proto::HOPOPT;
        p[8] = ip_proto::ROUTING;
        p[16] = ip_proto::NONXT;
        let w = ExtHeaderWalk::walk(ip_proto::ROUTING, &p);
        assert_eq!(w.proto, ip_proto::NONXT);
        assert_eq!(
            w.exthdr,
            exthdr::ROUTER | exthdr::HOP | exthdr::UNSEQ | exthdr::UNREP | exthdr::NONEXT
        );
        // ESP stops the walk.
        let w = ExtHeaderWalk::walk(ip_proto::ESP, &[0; 4]);
        assert_eq!(
            (w.proto, w.exthdr, w.offset),
            (ip_proto::ESP, exthdr::ESP, 0)
        );
        // A later fragment.
        let mut f = [0u8; 16];
        f[0] = ip_proto::UDP;
        f[2..4].copy_from_slice(&0x0b90u16.to_be_bytes());
        let w = ExtHeaderWalk::walk(ip_proto::FRAGMENT, &f);
        assert!(w.fragment && w.later_fragment && !w.complete());
        assert_eq!((w.proto, w.offset), (ip_proto::FRAGMENT, 8));
        // Truncated.
        let w = ExtHeaderWalk::walk(ip_proto::DSTOPTS, &[6, 1, 0, 0, 0, 0, 0, 0]);
        assert!(w.truncated && !w.complete());
        // Too many headers.
        let chain = [ip_proto::DSTOPTS, 0, 0, 0, 0, 0, 0, 0].repeat(40);
        let w = ExtHeaderWalk::walk(ip_proto::DSTOPTS, &chain);
        assert!(w.malformed && w.exthdr & exthdr::UNREP != 0);
        // Segments left of the (first) routing header.
        let mut r = [0u8; 16];
        r[0] = ip_proto::ROUTING;
        r[3] = 2;
        r[8] = ip_proto::TCP;
        r[11] = 5;
        let w = ExtHeaderWalk::walk(ip_proto::ROUTING, &r);
        assert_eq!((w.routing_segments_left, w.proto), (2, ip_proto::TCP));
        // No extension headers at all.
        let w = ExtHeaderWalk::walk(ip_proto::UDP, &[]);
        assert!(w.complete());
        assert_eq!((w.proto, w.offset, w.exthdr), (ip_proto::UDP, 0, 0));
    }
}
