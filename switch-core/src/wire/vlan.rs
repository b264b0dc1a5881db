//! 802.1Q / 802.1ad VLAN tags.
//!
//! A tag is 4 bytes: TPID (0x8100, 0x88a8 or 0x9100) and TCI. The TPID sits where the enclosing
//! header's EtherType sits, so a [`VlanTag`] view starts at the TCI and ends with the next
//! EtherType: `TCI (2) | EtherType (2) | payload`. This chains like any other header: an
//! Ethernet frame whose EtherType is a TPID has a `VlanTag` as its payload.

use super::{Error, Result, get_slice, get_slice_mut, get_u16, set_u16};

/// Length of the TCI plus the following EtherType.
pub const HEADER_LEN: usize = 4;

/// Largest VLAN id (4095 is reserved, 0 means "priority tag only").
pub const VID_MASK: u16 = 0x0fff;

/// A view of a VLAN tag, starting at its TCI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole Tag Control Information.
    #[inline]
    pub fn tci(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator (formerly CFI).
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// The EtherType (or next TPID) after the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, HEADER_LEN, d.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        set_u16(self.buffer.as_mut(), 0, tci);
    }

    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let t = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(t);
    }

    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let t = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(t);
    }

    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let t = (self.tci() & !VID_MASK) | (vid & VID_MASK);
        self.set_tci(t);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), 2, t);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let d = self.buffer.as_mut();
        let n = d.len();
        get_slice_mut(d, HEADER_LEN, n)
    }
}

/// The fields of a VLAN tag (the TPID belongs to the enclosing header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    pub ethertype: u16,
}

impl VlanRepr {
    pub fn parse<T: AsRef<[u8]>>(tag: &VlanTag<T>) -> Result<Self> {
        Ok(VlanRepr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanTag<T>) {
        tag.set_tci(
            (u16::from(self.pcp & 7) << 13)
                | if self.dei { 0x1000 } else { 0 }
                | (self.vid & VID_MASK),
        );
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        // PCP 5, DEI 1, VID 0x123, then IPv6.
        let b = [0xb1, 0x23, 0x86, 0xdd, 0x60];
        let t = VlanTag::new_checked(&b[..]).unwrap();
        assert_eq!(
            (t.pcp(), t.dei(), t.vid(), t.ethertype()),
            (5, true, 0x123, 0x86dd)
        );
        assert_eq!(t.payload(), &[0x60]);
        let r = VlanRepr::parse(&t).unwrap();
        let mut o = [0u8; 4];
        r.emit(&mut VlanTag::new_checked(&mut o[..]).unwrap());
        assert_eq!(o, b[..4]);
        let mut m = VlanTag::new_checked(o).unwrap();
        m.set_vid(0xfff);
        m.set_pcp(1);
        m.set_dei(false);
        assert_eq!(m.tci(), 0x2fff);
        assert_eq!(VlanTag::new_checked(&b[..3]), Err(Error::Truncated));
    }
}
