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
