//! ARP (RFC 826). The view handles any hardware/protocol length; the `Repr` and the typed
//! address accessors cover Ethernet/IPv4, the only kind a switch matches on.

use super::ethernet::{EthernetAddress, ether_type};
use super::ipv4::Ipv4Address;
use super::{Error, Result, get_array, get_slice, get_u8, get_u16, set_bytes, set_u8, set_u16};

/// Length of the fixed part (htype, ptype, hlen, plen, op).
pub const FIXED_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETH_IPV4_LEN: usize = 28;

pub const HTYPE_ETHERNET: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OP: usize = 6;
    pub const SHA: usize = 8;
}

/// A view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Checks the fixed part and that both address pairs (as long as `hlen`/`plen` say) fit.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let d = buffer.as_ref();
        if d.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let need = FIXED_LEN
            + 2 * (usize::from(get_u8(d, field::HLEN)) + usize::from(get_u8(d, field::PLEN)));
        if d.len() < need {
            return Err(Error::Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::HLEN)
    }
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::PLEN)
    }
    #[inline]
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OP)
    }

    /// Whether this is the Ethernet/IPv4 kind (the typed accessors below are meaningful).
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == ether_type::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    fn hlen(&self) -> usize {
        usize::from(self.hardware_len())
    }
    fn plen(&self) -> usize {
        usize::from(self.protocol_len())
    }
    /// Offsets of sha, spa, tha, tpa.
    fn offsets(&self) -> [usize; 4] {
        let (h, p) = (self.hlen(), self.plen());
        let sha = field::SHA;
        [sha, sha + h, sha + h + p, sha + 2 * h + p]
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        let o = self.offsets();
        get_slice(self.buffer.as_ref(), o[0], o[1])
    }
    pub fn source_protocol_addr(&self) -> &[u8] {
        let o = self.offsets();
        get_slice(self.buffer.as_ref(), o[1], o[2])
    }
    pub fn target_hardware_addr(&self) -> &[u8] {
        let o = self.offsets();
        get_slice(self.buffer.as_ref(), o[2], o[3])
    }
    pub fn target_protocol_addr(&self) -> &[u8] {
        let o = self.offsets();
        get_slice(self.buffer.as_ref(), o[3], o[3] + self.plen())
    }

    // Typed accessors for the Ethernet/IPv4 layout (fixed offsets 8, 14, 18, 24).
    #[inline]
    pub fn sha(&self) -> EthernetAddress {
        get_array(self.buffer.as_ref(), 8)
    }
    #[inline]
    pub fn spa(&self) -> Ipv4Address {
        get_array(self.buffer.as_ref(), 14)
    }
    #[inline]
    pub fn tha(&self) -> EthernetAddress {
        get_array(self.buffer.as_ref(), 18)
    }
    #[inline]
    pub fn tpa(&self) -> Ipv4Address {
        get_array(self.buffer.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::HTYPE, v);
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PTYPE, v);
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::HLEN, v);
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::PLEN, v);
    }
    pub fn set_operation(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::OP, v);
    }
    // Typed setters for the Ethernet/IPv4 layout.
    pub fn set_sha(&mut self, a: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), 8, &a);
    }
    pub fn set_spa(&mut self, a: Ipv4Address) {
        set_bytes(self.buffer.as_mut(), 14, &a);
    }
    pub fn set_tha(&mut self, a: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), 18, &a);
    }
    pub fn set_tpa(&mut self, a: Ipv4Address) {
        set_bytes(self.buffer.as_mut(), 24, &a);
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: u16,
    pub sha: EthernetAddress,
    pub spa: Ipv4Address,
    pub tha: EthernetAddress,
    pub tpa: Ipv4Address,
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet; any other kind is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        if !p.is_ethernet_ipv4() {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ETH_IPV4_LEN
    }

    /// Writes the packet; the view must be at least [`ETH_IPV4_LEN`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(ether_type::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_sha(self.sha);
        p.set_spa(self.spa);
        p.set_tha(self.tha);
        p.set_tpa(self.tpa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 192.168.1.2? Tell 192.168.1.1 (as captured).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0xc0, 0xa8, 0x01, 0x01, // sha, spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x02, // tha, tpa
    ];

    #[test]
    fn parse_emit_round_trip() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, OP_REQUEST);
        assert_eq!(r.sha, [0, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(r.spa, [192, 168, 1, 1]);
        assert_eq!(r.tpa, [192, 168, 1, 2]);
        assert_eq!(p.source_protocol_addr(), &[192, 168, 1, 1]);
        assert_eq!(p.target_hardware_addr(), &[0; 6]);
        let mut b = [0u8; 28];
        // A zeroed buffer has hlen = plen = 0, so new_checked passes.
        r.emit(&mut ArpPacket::new_checked(&mut b[..]).unwrap());
        assert_eq!(b, REQUEST);
    }

    #[test]
    fn truncated_and_other_kinds() {
        for n in 0..28 {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]),
                Err(Error::Truncated),
                "{n}"
            );
        }
        let mut other = REQUEST;
        other[4] = 8; // hlen 8: now needs 8 + 2 * 12 = 32 bytes
        assert_eq!(ArpPacket::new_checked(&other[..]), Err(Error::Truncated));
        other[4] = 2;
        let p = ArpPacket::new_checked(&other[..]).unwrap();
        assert!(!p.is_ethernet_ipv4());
        assert_eq!(ArpRepr::parse(&p), Err(Error::Malformed));
        assert_eq!(p.target_protocol_addr().len(), 4);
    }
}
