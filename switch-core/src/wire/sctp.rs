//! SCTP (RFC 9260) common header: ports, verification tag, CRC32c checksum.

use super::checksum::{crc32c, crc32c_update};
use super::{Error, Result, get_array, get_slice, get_u16, get_u32, set_bytes, set_u16, set_u32};

/// Length of the common header.
pub const HEADER_LEN: usize = 12;
/// Offset of the CRC32c inside the header.
pub const CHECKSUM_OFFSET: usize = 8;

/// A view of an SCTP packet (common header and chunks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(SctpPacket { buffer })
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
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 4)
    }
    /// The CRC32c as stored (little-endian on the wire).
    #[inline]
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes(get_array(self.buffer.as_ref(), CHECKSUM_OFFSET))
    }
    /// The chunks.
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, HEADER_LEN, d.len())
    }
    /// The CRC32c of the packet computed with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let d = self.buffer.as_ref();
        // The header with a zeroed checksum field, then the chunks.
        let head: [u8; CHECKSUM_OFFSET] = get_array(d, 0);
        let c = crc32c_update(crc32c(&head), &[0; 4]);
        crc32c_update(c, get_slice(d, HEADER_LEN, d.len()))
    }
    pub fn verify_checksum(&self) -> bool {
        self.compute_checksum() == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 0, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), 2, v);
    }
    pub fn set_verification_tag(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), 4, v);
    }
    pub fn set_checksum(&mut self, v: u32) {
        set_bytes(self.buffer.as_mut(), CHECKSUM_OFFSET, &v.to_le_bytes());
    }
    /// Recomputes the CRC32c over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = crc32c(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_crc() {
        // INIT chunk from 5000 to 80, tag 0.
        let mut b = [
            0x13, 0x88, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, // common header
            0x01, 0x00, 0x00, 0x14, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a,
            0xff, 0xff, 0x12, 0x34, 0x56, 0x78,
        ];
        let mut p = SctpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src_port(), p.dst_port(), p.verification_tag()),
            (5000, 80, 0)
        );
        assert_eq!(p.payload().len(), 20);
        let c = p.checksum();
        p.set_dst_port(81);
        assert!(!p.verify_checksum());
        assert_ne!(p.compute_checksum(), c);
        assert_eq!(SctpPacket::new_checked(&b[..11]), Err(Error::Truncated));
    }
}
