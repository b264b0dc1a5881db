//! IPv4 (RFC 791): header with options, fragments, header checksum.

use super::checksum;
use super::{
    Error, Result, get_array, get_slice, get_slice_mut, get_u8, get_u16, set_bytes, set_u8, set_u16,
};

/// An IPv4 address in network byte order.
pub type Ipv4Address = [u8; 4];

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Offset of the header checksum inside the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;
/// Offset of the TTL inside the header (it shares a 16-bit word with the protocol).
pub const TTL_OFFSET: usize = field::TTL;
/// Offsets of the source and destination addresses.
pub const SRC_OFFSET: usize = field::SRC;
pub const DST_OFFSET: usize = field::DST;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Requires version 4, a whole header (with options), `total_len >= header_len`, and the
    /// whole packet (`total_len` bytes) in the buffer. Bytes beyond `total_len` (Ethernet
    /// padding) are allowed and ignored by `payload()`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_checked_header(buffer)?;
        if usize::from(p.total_len()) > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Like `new_checked()` but only the header must be present: the payload may be cut short
    /// (a truncated capture, a packet-in with `max_len`); `payload()` returns what is there.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let d = buffer.as_ref();
        if d.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Ipv4Packet { buffer };
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = p.header_len();
        if hl < MIN_HEADER_LEN || usize::from(p.total_len()) < hl {
            return Err(Error::Malformed);
        }
        if p.buffer.as_ref().len() < hl {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }
    /// The whole TOS / traffic class byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TOS)
    }
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 3
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Whether this is a fragment (more fragments follow, or it is not the first).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TTL)
    }
    /// The protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::PROTOCOL)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv4Address {
        get_array(self.buffer.as_ref(), field::SRC)
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Address {
        get_array(self.buffer.as_ref(), field::DST)
    }
    /// The options (possibly empty).
    pub fn options(&self) -> &[u8] {
        get_slice(self.buffer.as_ref(), MIN_HEADER_LEN, self.header_len())
    }
    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        get_slice(self.buffer.as_ref(), 0, self.header_len())
    }
    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, self.header())
    }
    /// End of the packet inside the buffer: `total_len`, or the buffer's end if shorter.
    #[inline]
    pub fn packet_end(&self) -> usize {
        usize::from(self.total_len()).min(self.buffer.as_ref().len())
    }
    /// The payload, up to `total_len` or as much as the buffer holds.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        get_slice(self.buffer.as_ref(), self.header_len(), self.packet_end())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        set_u8(self.buffer.as_mut(), field::VER_IHL, 0x40 | ihl);
    }
    pub fn set_tos(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TOS, v);
    }
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Sets DF, MF and the fragment offset (in bytes, a multiple of 8) at once.
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = if dont_frag { 0x4000 } else { 0 }
            | if more_frags { 0x2000 } else { 0 }
            | ((offset >> 3) & 0x1fff);
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    pub fn set_ttl(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_src_addr(&mut self, a: Ipv4Address) {
        set_bytes(self.buffer.as_mut(), field::SRC, &a);
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Address) {
        set_bytes(self.buffer.as_mut(), field::DST, &a);
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        get_slice_mut(self.buffer.as_mut(), MIN_HEADER_LEN, hl)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, end) = (self.header_len(), self.packet_end());
        get_slice_mut(self.buffer.as_mut(), hl, end)
    }
}

/// The fields of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Address,
    pub dst_addr: Ipv4Address,
    pub next_header: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Parses a whole packet (built with `new_checked`) and checks its header checksum.
    /// Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self> {
        if !p.verify_checksum() {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.total_len())
                - p.header_len().min(usize::from(p.total_len())),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes a 20-byte header with a correct checksum. The view's buffer must hold at least
    /// the header (make it from a zeroed buffer with `0x45` in the first byte, or use
    /// [`Ipv4Repr::emit_into`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(MIN_HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len((MIN_HEADER_LEN + self.payload_len).min(0xffff) as u16);
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_next_header(self.next_header);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }

    /// Writes the header into the first 20 bytes of `buf` (whatever they held before).
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<()> {
        let hdr = buf.get_mut(..MIN_HEADER_LEN).ok_or(Error::Truncated)?;
        hdr.fill(0);
        hdr[0] = 0x45;
        hdr[2..4].copy_from_slice(&(MIN_HEADER_LEN as u16).to_be_bytes());
        let mut p = Ipv4Packet { buffer: hdr };
        self.emit(&mut p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF, TTL 64, checksum b861.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn header_fields() {
        let p = Ipv4Packet::new_checked_header(&HDR[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.src_addr(), [192, 168, 0, 1]);
        assert_eq!(p.dst_addr(), [192, 168, 0, 199]);
        assert!(p.verify_checksum());
        assert!(p.payload().is_empty());
        // The whole packet is not there.
        assert_eq!(Ipv4Packet::new_checked(&HDR[..]), Err(Error::Truncated));
    }

    #[test]
    fn repr_round_trip_and_options() {
        let mut buf = [0u8; 0x73];
        buf[..20].copy_from_slice(&HDR);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 0x73 - 20);
        let mut out = [0u8; 20];
        r.emit_into(&mut out).unwrap();
        assert_eq!(out, HDR);

        // IHL 6 with a 4-byte option (NOP NOP NOP EOL).
        let mut o = [0u8; 28];
        o[..20].copy_from_slice(&HDR);
        o[0] = 0x46;
        o[2..4].copy_from_slice(&28u16.to_be_bytes());
        o[20..24].copy_from_slice(&[1, 1, 1, 0]);
        o[24..28].copy_from_slice(&[9, 9, 9, 9]);
        let mut p = Ipv4Packet::new_checked(&mut o[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
    }

    #[test]
    fn fragments() {
        let mut h = HDR;
        let mut p = Ipv4Packet::new_checked_header(&mut h[..]).unwrap();
        p.set_frag(false, true, 1480);
        assert!(p.more_frags() && p.is_fragment() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.set_frag(false, false, 8);
        assert!(p.is_fragment());
    }

    #[test]
    fn malformed_and_truncated() {
        let mut h = HDR;
        h[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked_header(&h[..]),
            Err(Error::Malformed)
        );
        h[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked_header(&h[..]),
            Err(Error::Malformed)
        );
        h[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked_header(&h[..]),
            Err(Error::Truncated)
        );
        h[0] = 0x45;
        h[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked_header(&h[..]),
            Err(Error::Malformed)
        );
        for n in 0..20 {
            assert_eq!(
                Ipv4Packet::new_checked_header(&HDR[..n]),
                Err(Error::Truncated)
            );
        }
    }
}
