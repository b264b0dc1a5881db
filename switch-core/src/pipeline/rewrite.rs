//! The packet rewrites the pipeline's actions need, as one narrow seam over `packet`'s rewrite
//! functions. Failures (a header the packet does not have, a truncated frame) are not errors
//! for the pipeline: OpenFlow says a set-field on a packet without the header does nothing (to
//! the bytes, and to the key the later tables see: the caller updates the key only when a
//! rewrite returns true). They are logged at trace level.

use crate::flow::Field;
use crate::packet::{self, Frame, TtlOutcome};

/// Outcome of decrementing the IP TTL / hop limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Decremented; still positive.
    Ok,
    /// It was 0 or 1: the packet must not be forwarded.
    Expired,
    /// Not an IP packet (or too short): nothing done.
    NotIp,
}

/// Sets `field` in the frame's bytes (checksums kept right). `vlan_vid` takes the OpenFlow
/// value (with `OFPVID_PRESENT`).
pub fn set_field(frame: &mut dyn Frame, field: Field, value: u128) -> bool {
    match packet::set_field(frame, field, value) {
        Ok(()) => true,
        Err(e) => {
            log::trace!("set_field {field:?} not applied: {e:?}");
            false
        }
    }
}

/// Pushes an outer VLAN tag with `tpid`; its TCI is copied from the current outer tag, or 0.
pub fn push_vlan(frame: &mut dyn Frame, tpid: u16) -> bool {
    packet::push_vlan(frame, tpid).is_ok()
}

/// Removes the outer VLAN tag.
pub fn pop_vlan(frame: &mut dyn Frame) -> bool {
    packet::pop_vlan(frame).is_ok()
}

/// Decrements the IPv4 TTL / IPv6 hop limit.
pub fn dec_ttl(frame: &mut dyn Frame) -> Ttl {
    match packet::dec_ip_ttl(frame) {
        Ok(TtlOutcome::Decremented(_)) => Ttl::Ok,
        Ok(TtlOutcome::Expired) => Ttl::Expired,
        Err(_) => Ttl::NotIp,
    }
}

/// Sets the IPv4 TTL / IPv6 hop limit.
pub fn set_ttl(frame: &mut dyn Frame, ttl: u8) -> bool {
    packet::set_ip_ttl(frame, ttl).is_ok()
}
