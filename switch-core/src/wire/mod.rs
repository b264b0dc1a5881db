//! Packet formats: zero-copy views over header bytes, in the style of smoltcp's `wire` module.
//!
//! Every header has a view `XxxPacket<T: AsRef<[u8]>>` (or `EthernetFrame`) that can only be
//! built through `new_checked()`, which does the one length check; after it, accessors never
//! panic (they are additionally written with `get()` so that they cannot panic at all). Setters
//! exist for `T: AsRef<[u8]> + AsMut<[u8]>`. Where building packets is useful (tests, packet-out,
//! the slow path) a `Repr` has `parse()` and `emit()`; `emit()` writes the header only, the
//! caller writes the payload and then fills checksums.
//!
//! Untrusted bytes always go through `new_checked()`. Headers whose payload length field may
//! point beyond a truncated buffer (IPv4, IPv6, UDP) also offer `new_checked_header()`, which
//! only requires the header itself and bounds the payload by the bytes present.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EthernetAddress, EthernetFrame, EthernetRepr, ether_type};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr, NdOption, NdOptionIter, NdPacket};
pub use ipv4::{Ipv4Address, Ipv4Packet, Ipv4Repr};
pub use ipv6::{ExtHeaderWalk, Ipv6Address, Ipv6Packet, Ipv6Repr, ip_proto};
pub use sctp::SctpPacket;
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vlan::{VlanRepr, VlanTag};

/// Why a view or a `Repr` could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// A field has a value the format does not allow (bad version, length field too small...).
    Malformed,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::Malformed => f.write_str("malformed packet"),
        }
    }
}

/// Result of parsing wire data.
pub type Result<T> = core::result::Result<T, Error>;

// Byte accessors that never panic: out-of-range reads give zero, out-of-range writes do
// nothing. Views check their length once in `new_checked()`, so in practice these always hit;
// the `get()` keeps the "never panics" promise unconditional and costs a predictable branch.

#[inline(always)]
pub(crate) fn get_u8(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn get_u16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes(get_array(d, i))
}

#[inline(always)]
pub(crate) fn get_u32(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(get_array(d, i))
}

#[inline(always)]
pub(crate) fn get_array<const N: usize>(d: &[u8], i: usize) -> [u8; N] {
    match d.get(i..i.wrapping_add(N)) {
        Some(s) => {
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            a
        }
        None => [0u8; N],
    }
}

#[inline(always)]
pub(crate) fn get_slice(d: &[u8], start: usize, end: usize) -> &[u8] {
    d.get(start..end.min(d.len())).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn get_slice_mut(d: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(d.len());
    d.get_mut(start..end).unwrap_or(&mut [])
}

#[inline(always)]
pub(crate) fn set_u8(d: &mut [u8], i: usize, v: u8) {
    if let Some(b) = d.get_mut(i) {
        *b = v;
    }
}

#[inline(always)]
pub(crate) fn set_u16(d: &mut [u8], i: usize, v: u16) {
    set_bytes(d, i, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_u32(d: &mut [u8], i: usize, v: u32) {
    set_bytes(d, i, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_bytes(d: &mut [u8], i: usize, v: &[u8]) {
    if let Some(s) = d.get_mut(i..i.wrapping_add(v.len())) {
        s.copy_from_slice(v);
    }
}
