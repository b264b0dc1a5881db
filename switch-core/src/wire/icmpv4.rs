//! ICMPv4 (RFC 792): type, code, checksum and the 4 "rest of header" bytes.

use super::checksum;
use super::{Error, Result, get_array, get_slice, get_u8, get_u16, set_bytes, set_u8, set_u16};

/// Every ICMPv4 message has this 8-byte header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum inside the header.
pub const CHECKSUM_OFFSET: usize = 2;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 0)
    }
    #[inline]
    pub fn msg_code(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 1)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }
    /// Bytes 4..8 (identifier and sequence number for echo, unused/MTU for errors).
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), 4)
    }
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 4)
    }
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 6)
    }
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, HEADER_LEN, d.len())
    }
    /// The checksum covers the whole message (no pseudo-header).
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 0, v);
    }
    pub fn set_msg_code(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 1, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, v);
    }
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        set_bytes(self.buffer.as_mut(), 4, &v);
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// The header of an ICMPv4 message (the payload is the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Repr {
    pub msg_type: u8,
    pub msg_code: u8,
    pub rest_of_header: [u8; 4],
}

impl Icmpv4Repr {
    /// Parses a message and checks its checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) -> Result<Self> {
        if !p.verify_checksum() {
            return Err(Error::Malformed);
        }
        Ok(Icmpv4Repr {
            msg_type: p.msg_type(),
            msg_code: p.msg_code(),
            rest_of_header: p.rest_of_header(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and the checksum over the whole view (payload included).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Icmpv4Packet<T>) {
        p.set_msg_type(self.msg_type);
        p.set_msg_code(self.msg_code);
        p.set_rest_of_header(self.rest_of_header);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `ping -c1` echo request, id 0x1234 seq 1, payload "abcd": checksum by hand
    // !(0800 + 1234 + 0001 + 6162 + 6364) = !7f9b... computed below.
    #[test]
    fn echo_request() {
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"abcd");
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        Icmpv4Repr {
            msg_type: ECHO_REQUEST,
            msg_code: 0,
            rest_of_header: [0x12, 0x34, 0x00, 0x01],
        }
        .emit(&mut p);
        assert_eq!(
            p.checksum(),
            !(0x0800u16 + 0x1234 + 0x0001 + 0x6162 + 0x6364)
        );
        assert!(p.verify_checksum());
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        let r = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(r.msg_type, ECHO_REQUEST);
        assert_eq!(p.payload(), b"abcd");
        p.set_msg_code(1);
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Malformed));
        assert_eq!(Icmpv4Packet::new_checked(&b[..7]), Err(Error::Truncated));
    }
}
