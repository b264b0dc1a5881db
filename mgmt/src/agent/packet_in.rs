//! Packet-ins on their way from the datapath to the controllers: a bounded queue the kernel's
//! output sink fills while the bridge forwards, which the agent drains on its next poll.
//!
//! Nothing is dropped silently: a packet-in offered while a connection could want it counts in
//! `generated`, and then either leaves the queue for the connections (where a rate limiter,
//! see [`super::rate_limit`], may still pace or drop it), or counts in `dropped` (queue full)
//! or `cleared` (the last interested connection went away).

use alloc::collections::VecDeque;

use switch_core::action::OFPCML_NO_BUFFER;
use switch_core::flow::FlowKey;
use switch_core::pipeline::{PacketIn as CorePacketIn, PacketInReason};

use crate::openflow::PacketIn;

/// One queued packet-in: the message (data cut to the `max_len` the action asked for, or to
/// the largest `miss_send_len`), and whether each connection's `miss_send_len` applies.
#[derive(Clone, Debug)]
pub(crate) struct Queued {
    pub msg: PacketIn,
    /// The packet-in did not come from an output action with its own `max_len`, so the
    /// connection's `miss_send_len` cuts it (implicit table miss of OpenFlow 1.0, invalid TTL).
    pub use_miss_send_len: bool,
}

/// A bounded queue of packet-ins. `push` does nothing while no controller could want them.
#[derive(Debug)]
pub struct PacketInQueue {
    q: VecDeque<Queued>,
    capacity: usize,
    /// Set by the agent: some connection may receive packet-ins.
    pub(crate) active: bool,
    /// Set by the agent: an OpenFlow 1.0 controller is connected, so a packet the pipeline
    /// drops on a table miss should go to `push_miss` (see `OfAgent::wants_packet_in_on_miss`).
    pub miss_to_controller: bool,
    /// Packet-ins dropped because the queue was full.
    pub dropped: u64,
    /// Packet-ins offered while some connection could want them (queued or dropped).
    pub generated: u64,
    /// Queued packet-ins thrown away because no connection could take them any more (the
    /// last one that wanted packet-ins went away).
    pub cleared: u64,
}

impl PacketInQueue {
    pub fn new(capacity: usize) -> PacketInQueue {
        PacketInQueue {
            q: VecDeque::new(),
            capacity,
            active: false,
            miss_to_controller: false,
            dropped: 0,
            generated: 0,
            cleared: 0,
        }
    }

    /// Most packet-ins waiting for delivery (`packet_in.queue=`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the queue size; packet-ins beyond the new size are dropped (and counted).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.q.len() > capacity {
            self.q.pop_back();
            self.dropped += 1;
        }
    }

    /// Whether a packet-in pushed now would be kept (some controller is connected).
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Queues a packet-in from the pipeline (call from `OutputSink::controller`).
    pub fn push(&mut self, pi: &CorePacketIn<'_>) {
        self.push_inner(pi, pi.reason == PacketInReason::InvalidTtl);
    }

    fn push_inner(&mut self, pi: &CorePacketIn<'_>, use_miss_send_len: bool) {
        if !self.active {
            return;
        }
        self.generated += 1;
        if self.q.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        let mut msg = PacketIn::from_core(pi);
        if use_miss_send_len && pi.max_len != OFPCML_NO_BUFFER {
            // The pipeline's own max_len (invalid TTL) is only a default: keep the frame and
            // let each connection's miss_send_len decide.
            msg.data.clear();
            msg.data.extend_from_slice(pi.frame);
        }
        self.q.push_back(Queued {
            msg,
            use_miss_send_len,
        });
    }

    /// Queues a table-miss packet-in (reason `NO_MATCH`) for a packet the pipeline dropped,
    /// for controllers of OpenFlow 1.0, whose table miss goes to the controller (see
    /// `OfAgent::wants_packet_in_on_miss`).
    pub fn push_miss(&mut self, key: &FlowKey, frame: &[u8], table_id: u8) {
        let pi = CorePacketIn {
            reason: PacketInReason::NoMatch,
            table_id,
            cookie: u64::MAX,
            max_len: OFPCML_NO_BUFFER,
            key,
            frame,
        };
        self.push_inner(&pi, true);
    }

    pub(crate) fn pop(&mut self) -> Option<Queued> {
        self.q.pop_front()
    }

    pub(crate) fn clear(&mut self) {
        self.cleared += self.q.len() as u64;
        self.q.clear();
    }
}
