//! The packet rewrites the pipeline's actions need, as one narrow seam over the frame.
//!
//! Engineer A's `packet` module owns the real rewrite functions (`set_field`, `push_vlan`,
//! `pop_vlan`, `dec_ip_ttl`, `set_ip_ttl`); until they land this module carries a minimal
//! private version (Ethernet addresses, the outer VLAN tag, IPv4 TTL) so the pipeline can be
//! built and tested. Every function reports whether it changed the bytes; failures are not
//! errors for the pipeline (the key is updated regardless, as OpenFlow tables see it).

use crate::flow::Field;
use crate::packet::Frame;

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

const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn put16(d: &mut [u8], at: usize, v: u16) -> bool {
    match d.get_mut(at..at + 2) {
        Some(s) => {
            s.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Offset of the L3 header and the EtherType after the VLAN tags.
fn l3(d: &[u8]) -> Option<(usize, u16)> {
    let mut at = 12;
    let mut et = be16(d, at)?;
    while VLAN_TPIDS.contains(&et) {
        at += 4;
        et = be16(d, at)?;
    }
    Some((at + 2, et))
}

fn has_tag(d: &[u8]) -> bool {
    be16(d, 12).is_some_and(|t| VLAN_TPIDS.contains(&t))
}

/// Sets `field` in the frame's bytes. `vlan_vid` takes the OpenFlow value (with
/// `OFPVID_PRESENT`); only the 12-bit VID is written.
pub fn set_field(frame: &mut dyn Frame, field: Field, value: u128) -> bool {
    let d = frame.data_mut();
    match field {
        Field::EthDst | Field::EthSrc => {
            let at = if field == Field::EthDst { 0 } else { 6 };
            match d.get_mut(at..at + 6) {
                Some(s) => {
                    s.copy_from_slice(&(value as u64).to_be_bytes()[2..]);
                    true
                }
                None => false,
            }
        }
        Field::VlanVid | Field::VlanPcp => {
            if !has_tag(d) {
                return false;
            }
            let Some(tci) = be16(d, 14) else { return false };
            let tci = if field == Field::VlanVid {
                (tci & 0xf000) | (value as u16 & 0x0fff)
            } else {
                (tci & 0x1fff) | ((value as u16 & 7) << 13)
            };
            put16(d, 14, tci)
        }
        _ => false,
    }
}

/// Pushes an outer VLAN tag with `tpid`; its TCI is copied from the current outer tag, or 0.
pub fn push_vlan(frame: &mut dyn Frame, tpid: u16) -> bool {
    if frame.data().len() < 14 {
        return false;
    }
    let tci = if has_tag(frame.data()) {
        be16(frame.data(), 14).unwrap_or(0)
    } else {
        0
    };
    if !frame.prepend(4) {
        return false;
    }
    let d = frame.data_mut();
    d.copy_within(4..16, 0);
    put16(d, 12, tpid) && put16(d, 14, tci)
}

/// Removes the outer VLAN tag.
pub fn pop_vlan(frame: &mut dyn Frame) -> bool {
    if !has_tag(frame.data()) || frame.data().len() < 18 {
        return false;
    }
    frame.data_mut().copy_within(0..12, 4);
    frame.trim_front(4)
}

fn ipv4_fix_checksum(d: &mut [u8], at: usize, old: u16, new: u16) {
    // RFC 1624 incremental update of the header checksum.
    if let Some(c) = be16(d, at + 10) {
        let mut sum = (!c as u32) + (!old as u32 & 0xffff) + new as u32;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        put16(d, at + 10, !(sum as u16));
    }
}

/// Decrements the IPv4 TTL / IPv6 hop limit.
pub fn dec_ttl(frame: &mut dyn Frame) -> Ttl {
    let d = frame.data_mut();
    let Some((at, et)) = l3(d) else {
        return Ttl::NotIp;
    };
    let ttl_at = match et {
        0x0800 => at + 8,
        0x86dd => at + 7,
        _ => return Ttl::NotIp,
    };
    let Some(&ttl) = d.get(ttl_at) else {
        return Ttl::NotIp;
    };
    if ttl <= 1 {
        return Ttl::Expired;
    }
    set_ttl_at(d, at, et, ttl - 1);
    Ttl::Ok
}

fn set_ttl_at(d: &mut [u8], at: usize, et: u16, ttl: u8) {
    if et == 0x0800 {
        let Some(old) = be16(d, at + 8) else { return };
        d[at + 8] = ttl;
        let new = (old & 0x00ff) | ((ttl as u16) << 8);
        ipv4_fix_checksum(d, at, old, new);
    } else if let Some(b) = d.get_mut(at + 7) {
        *b = ttl;
    }
}

/// Sets the IPv4 TTL / IPv6 hop limit.
pub fn set_ttl(frame: &mut dyn Frame, ttl: u8) -> bool {
    let d = frame.data_mut();
    match l3(d) {
        Some((at, et @ (0x0800 | 0x86dd))) if d.len() > at + 8 => {
            set_ttl_at(d, at, et, ttl);
            true
        }
        _ => false,
    }
}
