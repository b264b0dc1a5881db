//! The one datapath interface every NIC driver implements (virtio-net now, mlx5 later): burst
//! receive and transmit of [`PacketBuf`]s on numbered queues, plus identity, link and counters.
//!
//! Buffers move by value and never get copied: [`Nic::rx_burst`] hands received buffers to the
//! caller in a [`PacketBatch`]; [`Nic::tx_burst`] takes buffers out of a batch and keeps them
//! until the device has sent them, then drops them (which returns them to their pool). A buffer
//! received on one port can be transmitted on another as it is.
//!
//! Polling model: nothing here blocks or waits for an interrupt. Call `rx_burst` on each queue
//! in the main loop; call `tx_burst` with whatever is ready. Drivers reclaim finished transmit
//! buffers at the start of every `tx_burst`, and in [`Nic::tx_reclaim`] for an idle loop.
//!
//! [`PacketBuf`]: crate::dma::PacketBuf

use crate::dma::PacketBatch;

/// Per-port counters, monotonically increasing since the port was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Frames handed to the caller by `rx_burst`.
    pub rx_packets: u64,
    /// Bytes of those frames (Ethernet header to end of payload, no FCS, no NIC header).
    pub rx_bytes: u64,
    /// Frames accepted by `tx_burst` (placed on a transmit queue).
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Receive buffers the driver could not post because the pool was empty. Each refill stops
    /// at the first failure and counts one, so this counts "polls that found the pool empty".
    /// A device with no posted buffers drops frames; virtio does not report how many, mlx5
    /// does (its out-of-buffer counter is added here).
    pub rx_no_buffer: u64,
    /// Completions the driver rejected and skipped: unknown or duplicate descriptor ids,
    /// lengths beyond the buffer, frames shorter than an Ethernet header, device error flags.
    /// The buffer, when one can be identified, is recycled; the frame is dropped.
    pub rx_errors: u64,
    /// Transmit-side faults: frames the driver dropped because they cannot be sent (empty or
    /// larger than the device accepts), and bogus transmit completions from the device.
    pub tx_errors: u64,
    /// Frames left in the caller's batch by `tx_burst` because the transmit queue was full.
    pub tx_full: u64,
    /// Device notifications ("kicks", doorbells) written. Under a hypervisor each one is a VM
    /// exit, so this should grow far slower than the packet counters.
    pub notifications: u64,
}

/// A network interface with one or more receive and transmit queues, driven by polling.
///
/// Queue numbers are dense from 0; a driver with one queue pair (virtio-net here) has queue 0
/// only. Each queue must be used from one core only (the driver is `&mut`).
pub trait Nic {
    /// A short name for logs and port listings, e.g. `"virtio-net 00:03.0"`.
    fn name(&self) -> &str;

    /// The device's permanent MAC address (the address a management port answers on; a switch
    /// port forwards every address regardless).
    fn mac_address(&self) -> [u8; 6];

    /// Whether the link is up. Devices that cannot report it (virtio-net without the STATUS
    /// feature) always say `true`. May read device registers or issue a device command (hence
    /// `&mut`): call it from the slow path, not per burst.
    fn link_up(&mut self) -> bool;

    /// Number of receive queues (valid `queue` arguments to [`rx_burst`](Self::rx_burst) are
    /// `0..num_rx_queues()`).
    fn num_rx_queues(&self) -> u16;

    /// Number of transmit queues.
    fn num_tx_queues(&self) -> u16;

    /// Moves up to `batch.free_capacity()` received frames from receive queue `queue` to the end
    /// of `batch`, in arrival order, and refills the queue with fresh buffers from the pool.
    /// Returns how many frames were appended.
    ///
    /// Each appended buffer holds exactly one Ethernet frame (no NIC header) and keeps the pool's
    /// headroom in front of it, so [`Frame::prepend`] works on it.
    ///
    /// Edges, none of which is an error to the caller:
    /// - nothing received, `batch` already full, or `queue` out of range: returns 0 and leaves
    ///   `batch` unchanged (an out-of-range queue does not touch the device);
    /// - a completion the driver cannot trust (see [`NicStats::rx_errors`]) is counted and
    ///   skipped, never returned and never a panic;
    /// - the pool cannot refill the queue: the frames already received are still returned, the
    ///   empty slots are counted in [`NicStats::rx_no_buffer`] and retried on the next call.
    ///
    /// [`Frame::prepend`]: switch_core::packet::Frame::prepend
    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize;

    /// Transmits packets from the front of `batch` on transmit queue `queue`. Returns how many
    /// were queued; those are removed from `batch` and owned by the driver until the device has
    /// sent them, then dropped (back to their pool). The device is notified at most once per
    /// call, and only if it asked to be (virtio EVENT_IDX).
    ///
    /// Edges:
    /// - transmit queue full: the packets that did not fit stay in `batch`, in their order, at
    ///   its front; they are counted in [`NicStats::tx_full`]. Retry later or drop them;
    /// - a packet the device cannot send (empty, or longer than the device's maximum): removed
    ///   from `batch`, dropped, counted in [`NicStats::tx_errors`], not in the return value;
    /// - `queue` out of range: returns 0, `batch` unchanged, nothing counted;
    /// - empty `batch`: returns 0 after reclaiming finished buffers.
    ///
    /// Buffers of finished transmissions are reclaimed at the start of each call; a bogus
    /// completion from the device is counted in [`NicStats::tx_errors`] and skipped.
    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize;

    /// Reclaims the buffers of finished transmissions on `queue` without sending anything
    /// (returns them to their pools). Returns how many were reclaimed; 0 for an out-of-range
    /// queue. `tx_burst` does this itself; call it when a port has been idle for a while so its
    /// buffers do not sit in the transmit ring.
    fn tx_reclaim(&mut self, queue: u16) -> usize;

    /// A snapshot of the port's counters.
    fn stats(&self) -> NicStats;
}
