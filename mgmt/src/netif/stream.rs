//! The contract between the management port's TCP connections and the services behind them
//! (the OpenFlow agent, the OVSDB server): a connection is a handle and a byte pipe both ways.

/// How a connection came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// Accepted on a listening port (`ptcp:`): a "service" connection in Open vSwitch terms.
    Passive { local_port: u16 },
    /// Opened by the switch to a controller (`tcp:IP:PORT`); `target` identifies the target
    /// for as long as it stays configured.
    Active { target: usize },
}

/// A service that owns the protocol side of byte-stream connections.
///
/// The transport calls `open` when a connection is established, `receive` with the bytes that
/// arrive (only while `can_receive` holds: that is the back-pressure towards a peer that does
/// not read its answers), sends what `pending` shows and reports it with `consume`, closes the
/// connection once `wants_close` holds and `pending` is empty, and calls `closed` exactly once
/// when the connection is gone (either side).
pub trait StreamHandler {
    /// A new connection; `None` refuses it (it is closed at once).
    fn open(&mut self, kind: ConnKind, now_ms: u64) -> Option<u32>;
    /// Whether the handler takes more input on `conn` now.
    fn can_receive(&self, conn: u32) -> bool;
    /// Bytes from the peer.
    fn receive(&mut self, conn: u32, data: &[u8], now_ms: u64);
    /// Bytes waiting for the peer (may be empty).
    fn pending(&self, conn: u32) -> &[u8];
    /// The first `n` bytes of `pending` were sent.
    fn consume(&mut self, conn: u32, n: usize);
    /// The handler wants the connection closed once its pending bytes are sent.
    fn wants_close(&self, conn: u32) -> bool;
    /// The connection is gone.
    fn closed(&mut self, conn: u32, now_ms: u64);
}
