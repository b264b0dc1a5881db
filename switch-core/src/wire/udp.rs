//! UDP (RFC 768) header.

use super::checksum;
use super::{Error, Result, get_slice, get_slice_mut, get_u16, set_u16};

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum inside the header.
pub const CHECKSUM_OFFSET: usize = 6;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Requires the header, a length field of at least 8 and the whole datagram.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_checked_header(buffer)?;
        let len = usize::from(p.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Requires only the 8-byte header.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 0)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }
    /// The length field (header + payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 4)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }
    /// The payload, bounded by the length field and the buffer.
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, HEADER_LEN, usize::from(self.len()))
    }
    /// Whether the checksum is right (a zero checksum means "none" and verifies).
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = self.buffer.as_ref();
        checksum::verify(pseudo, get_slice(d, 0, usize::from(self.len())))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 0, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 2, v);
    }
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 4, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, v);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        get_slice_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
    /// Computes the checksum over the datagram (as long as the length field says) plus
    /// `pseudo`; a computed zero is sent as 0xffff.
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let len = usize::from(self.len());
        let c = !checksum::combine(&[
            pseudo,
            checksum::data(get_slice(self.buffer.as_ref(), 0, len)),
        ]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self> {
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf[..8]`, with length `8 + payload_len` and a zero checksum;
    /// call [`UdpPacket::fill_checksum`] once the payload is in place.
    pub fn emit_into(&self, buf: &mut [u8], payload_len: usize) -> Result<()> {
        let hdr = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        let mut p = UdpPacket { buffer: hdr };
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + payload_len).min(0xffff) as u16);
        p.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_header_v4;

    // A DNS query header captured from the wire: 192.168.1.10:53000 -> 8.8.8.8:53.
    #[test]
    fn checksum_and_fields() {
        let mut d = [0u8; 12];
        UdpRepr {
            src_port: 53000,
            dst_port: 53,
        }
        .emit_into(&mut d, 4)
        .unwrap();
        d[8..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let ph = pseudo_header_v4(&[192, 168, 1, 10], &[8, 8, 8, 8], 17, 12);
        let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
        p.fill_checksum(ph);
        assert!(p.verify_checksum(ph));
        // By hand: cf08+0035+000c+dead+beef + c0a8+010a+0808+0808+0011+000c.
        let sum = 0xcf08u64
            + 0x0035
            + 0x000c
            + 0xdead
            + 0xbeef
            + 0xc0a8
            + 0x010a
            + 0x0808
            + 0x0808
            + 0x0011
            + 0x000c;
        assert_eq!(p.checksum(), !checksum::fold(sum));
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53000, 53, 12));
    }

    #[test]
    fn lengths() {
        let mut d = [0u8; 8];
        d[5] = 7;
        assert_eq!(UdpPacket::new_checked(&d[..]), Err(Error::Malformed));
        d[5] = 9;
        assert_eq!(UdpPacket::new_checked(&d[..]), Err(Error::Truncated));
        assert!(
            UdpPacket::new_checked_header(&d[..])
                .unwrap()
                .payload()
                .is_empty()
        );
        assert_eq!(
            UdpPacket::new_checked_header(&d[..7]),
            Err(Error::Truncated)
        );
    }
}
