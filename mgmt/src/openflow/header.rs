//! `ofp_header` and the stream framer that cuts a TCP byte stream into OpenFlow messages.

use alloc::vec::Vec;

use super::error::OfpError;

/// Length of `ofp_header`.
pub const HEADER_LEN: usize = 8;
/// Largest message the `length` field can describe (and the framer's default bound).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// A zero-copy view of a buffer that starts with an `ofp_header`.
#[derive(Clone, Copy, Debug)]
pub struct OfpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> OfpHeader<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        OfpHeader { buffer }
    }
    /// Wraps `buffer` after checking that it holds a header whose `length` is sane and fits.
    pub fn new_checked(buffer: T) -> Result<Self, OfpError> {
        let h = OfpHeader { buffer };
        let b = h.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(OfpError::BAD_LEN);
        }
        let len = h.length() as usize;
        if len < HEADER_LEN || len > b.len() {
            return Err(OfpError::BAD_LEN);
        }
        Ok(h)
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
    pub fn xid(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    /// The message body (after the header, up to `length`).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.length() as usize]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The parsed header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// Reads the header of a complete message.
    pub fn parse(msg: &[u8]) -> Result<Header, OfpError> {
        let h = OfpHeader::new_checked(msg)?;
        Ok(Header {
            version: h.version(),
            msg_type: h.msg_type(),
            length: h.length(),
            xid: h.xid(),
        })
    }
    /// Writes the header into the first 8 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.version;
        buf[1] = self.msg_type;
        buf[2..4].copy_from_slice(&self.length.to_be_bytes());
        buf[4..8].copy_from_slice(&self.xid.to_be_bytes());
    }
}

/// Why the framer gave up on a stream. After an error the stream is out of sync and must be
/// closed (as Open vSwitch does); the header bytes are kept for the `OFPT_ERROR` echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// The offending header (version, type, length, xid as received).
    pub header: [u8; HEADER_LEN],
}

impl FrameError {
    pub fn version(&self) -> u8 {
        self.header[0]
    }
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ])
    }
    pub fn length(&self) -> u16 {
        u16::from_be_bytes([self.header[2], self.header[3]])
    }
}

/// Splits a byte stream into whole messages. Holds at most one partial message.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
    failed: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(MAX_MESSAGE_LEN)
    }
}

impl Framer {
    /// A framer that rejects messages longer than `max_len` (clamped to 8..=65535).
    pub fn new(max_len: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.clamp(HEADER_LEN, MAX_MESSAGE_LEN),
            failed: None,
        }
    }

    /// Appends received bytes. Ignored once the stream has failed.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `None` when more bytes are needed, or the error that broke
    /// the stream (returned again on every later call).
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if let Some(e) = self.failed {
            return Some(Err(e));
        }
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            return None;
        }
        let len = u16::from_be_bytes([avail[2], avail[3]]) as usize;
        if len < HEADER_LEN || len > self.max_len {
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&avail[..HEADER_LEN]);
            let e = FrameError { header };
            self.failed = Some(e);
            self.buf = Vec::new();
            self.start = 0;
            return Some(Err(e));
        }
        if avail.len() < len {
            return None;
        }
        let msg = avail[..len].to_vec();
        self.start += len;
        Some(Ok(msg))
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_splits_and_joins() {
        let hello = [1u8, 0, 0, 8, 0, 0, 0, 1];
        let echo = [1u8, 2, 0, 10, 0, 0, 0, 2, 0xaa, 0xbb];
        let mut stream = Vec::new();
        stream.extend_from_slice(&hello);
        stream.extend_from_slice(&echo);
        for cut in 0..stream.len() {
            let mut f = Framer::default();
            let mut out = Vec::new();
            f.push(&stream[..cut]);
            while let Some(m) = f.next_message() {
                out.push(m.unwrap());
            }
            f.push(&stream[cut..]);
            while let Some(m) = f.next_message() {
                out.push(m.unwrap());
            }
            assert_eq!(out, [hello.to_vec(), echo.to_vec()]);
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn framer_rejects_short_and_long() {
        let mut f = Framer::default();
        f.push(&[4, 0, 0, 7, 0, 0, 0, 9]);
        let e = f.next_message().unwrap().unwrap_err();
        assert_eq!(e.xid(), 9);
        assert!(f.has_failed());
        let mut f = Framer::new(100);
        f.push(&[4, 0, 0, 101, 0, 0, 0, 9]);
        assert!(f.next_message().unwrap().is_err());
    }

    #[test]
    fn header_view_checks() {
        assert!(OfpHeader::new_checked(&[1u8, 0, 0, 8, 0, 0, 0][..]).is_err());
        assert!(OfpHeader::new_checked(&[1u8, 0, 0, 9, 0, 0, 0, 0][..]).is_err());
        let h = OfpHeader::new_checked(&[4u8, 2, 0, 9, 0, 0, 0, 5, 7][..]).unwrap();
        assert_eq!(
            (h.version(), h.msg_type(), h.xid(), h.body()),
            (4, 2, 5, &[7u8][..])
        );
    }
}
