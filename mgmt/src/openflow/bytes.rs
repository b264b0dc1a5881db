//! Bounds-checked big-endian reading and writing for the OpenFlow codec.
//!
//! `Reader` never panics: every accessor returns `None` past the end, and callers turn that into
//! the `OfpError` the spec names for the structure being parsed (usually `BAD_LEN`).

use alloc::vec::Vec;

/// A cursor over untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    /// Offset from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    /// Peeks a big-endian u16 at `off` bytes from the cursor without moving it.
    pub fn peek_u16(&self, off: usize) -> Option<u16> {
        let start = self.pos.checked_add(off)?;
        let b = self.buf.get(start..start.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A sub-reader over the next `n` bytes (the cursor moves past them).
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.bytes(n).map(Reader::new)
    }
}

/// Appends big-endian values to a `Vec<u8>`.
pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_zeros(&mut self, n: usize);
    /// Writes `s` into a fixed field of `n` bytes, truncated and NUL-padded (always NUL-terminated).
    fn put_str_fixed(&mut self, s: &str, n: usize);
    /// Pads with zeros to a multiple of 8 bytes, counting from `start`.
    fn pad8_from(&mut self, start: usize);
    /// Overwrites a big-endian u16 at `at`.
    fn set_u16(&mut self, at: usize, v: u16);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    fn put_str_fixed(&mut self, s: &str, n: usize) {
        let b = s.as_bytes();
        let mut k = b.len().min(n.saturating_sub(1));
        // Cut at a character boundary so the field stays valid UTF-8.
        while !s.is_char_boundary(k) {
            k -= 1;
        }
        self.extend_from_slice(&b[..k]);
        self.put_zeros(n - k);
    }
    fn pad8_from(&mut self, start: usize) {
        let len = self.len() - start;
        self.put_zeros((8 - len % 8) % 8);
    }
    fn set_u16(&mut self, at: usize, v: u16) {
        self[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// A NUL-terminated (or full-width) fixed string field as text; invalid UTF-8 is replaced.
pub fn fixed_str(b: &[u8]) -> alloc::string::String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    alloc::string::String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Rounds `n` up to a multiple of 8.
pub const fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
