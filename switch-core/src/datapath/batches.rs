//! Per-port output batches: the piece of a [`DatapathSink`](super::DatapathSink) that gathers the
//! frames the datapath hands out into one batch per output port, for the driver's `tx_burst`.

use alloc::vec::Vec;

use super::BATCH_SIZE;
use crate::port::PortNo;

/// Frames waiting for transmission, one batch of at most [`BATCH_SIZE`] per port. Allocates only
/// when a port is seen for the first time.
#[derive(Debug)]
pub struct OutputBatches<F> {
    ports: Vec<(PortNo, heapless::Vec<F, BATCH_SIZE>)>,
}

impl<F> Default for OutputBatches<F> {
    fn default() -> Self {
        OutputBatches { ports: Vec::new() }
    }
}

impl<F> OutputBatches<F> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `frame` on `port`. When the port's batch is full it is passed to `flush` first
    /// (which must empty it, e.g. `tx_burst` and drop what the queue did not take).
    #[inline]
    pub fn push(
        &mut self,
        port: PortNo,
        frame: F,
        mut flush: impl FnMut(PortNo, &mut heapless::Vec<F, BATCH_SIZE>),
    ) {
        let i = match self.ports.iter().position(|(p, _)| *p == port) {
            Some(i) => i,
            None => {
                self.ports.push((port, heapless::Vec::new()));
                self.ports.len() - 1
            }
        };
        let (p, batch) = &mut self.ports[i];
        if batch.is_full() {
            flush(*p, batch);
            batch.clear();
        }
        // Cannot fail: the batch was just emptied if it was full.
        let _ = batch.push(frame);
    }

    /// Passes every non-empty batch to `flush` (in the order ports were first seen) and empties
    /// them: call after each `process_batch` (or after polling all ports).
    pub fn flush_all(&mut self, mut flush: impl FnMut(PortNo, &mut heapless::Vec<F, BATCH_SIZE>)) {
        for (p, batch) in self.ports.iter_mut() {
            if !batch.is_empty() {
                flush(*p, batch);
                batch.clear();
            }
        }
    }

    /// Frames waiting on `port`.
    pub fn pending(&self, port: PortNo) -> usize {
        self.ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or(0, |(_, b)| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_batches_flush_and_flush_all_empties() {
        let mut b = OutputBatches::new();
        let mut sent: Vec<(PortNo, usize)> = Vec::new();
        for i in 0..(BATCH_SIZE + 3) {
            b.push(2, i, |p, batch| sent.push((p, batch.len())));
            b.push(3, i, |p, batch| sent.push((p, batch.len())));
        }
        assert_eq!(sent, alloc::vec![(2, BATCH_SIZE), (3, BATCH_SIZE)]);
        assert_eq!(b.pending(2), 3);
        b.flush_all(|p, batch| sent.push((p, batch.len())));
        assert_eq!(&sent[2..], &[(2, 3), (3, 3)]);
        assert_eq!(b.pending(2), 0);
    }
}
