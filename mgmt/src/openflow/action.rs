//! Actions (`ofp_action_*`, 1.0 and 1.1+ numbering), instructions (1.1+) and group buckets.
//!
//! OpenFlow 1.0's rewrite actions are decoded into `SetField` (`set_vlan_vid` →
//! `vlan_vid = vid | OFPVID_PRESENT`, `set_nw_tos` → `ip_dscp`, `set_tp_src` → `tcp_src`
//! (the transport port, whatever the protocol), `strip_vlan` → `PopVlan`), so the switch sees one
//! action set. Encoding back to 1.0 reverses that mapping.

use alloc::vec::Vec;

use switch_core::flow::{Field, OFPVID_PRESENT};

use super::OFP10;
use super::bytes::{Put, Reader};
use super::error::OfpError;
use super::oxm::{OxmFault, OxmField, is_settable, parse_oxm};
use super::port::{self, OFPP_IN_PORT, OFPP_MAX};

/// Nicira's vendor/experimenter id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;

/// One action, version independent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Output {
        port: u32,
        max_len: u16,
    },
    Group(u32),
    SetQueue(u32),
    /// OpenFlow 1.0 `ENQUEUE` (encoded as `SET_QUEUE` + `OUTPUT` for 1.1+).
    Enqueue {
        port: u32,
        queue_id: u32,
    },
    PushVlan(u16),
    PopVlan,
    PushMpls(u16),
    PopMpls(u16),
    SetMplsTtl(u8),
    DecMplsTtl,
    CopyTtlOut,
    CopyTtlIn,
    SetNwTtl(u8),
    DecNwTtl,
    /// `SET_FIELD` (never masked).
    SetField(OxmField),
}

// OpenFlow 1.1+ action types.
const AT_OUTPUT: u16 = 0;
const AT_COPY_TTL_OUT: u16 = 11;
const AT_COPY_TTL_IN: u16 = 12;
const AT_SET_MPLS_TTL: u16 = 15;
const AT_DEC_MPLS_TTL: u16 = 16;
const AT_PUSH_VLAN: u16 = 17;
const AT_POP_VLAN: u16 = 18;
const AT_PUSH_MPLS: u16 = 19;
const AT_POP_MPLS: u16 = 20;
const AT_SET_QUEUE: u16 = 21;
const AT_GROUP: u16 = 22;
const AT_SET_NW_TTL: u16 = 23;
const AT_DEC_NW_TTL: u16 = 24;
const AT_SET_FIELD: u16 = 25;
const AT_EXPERIMENTER: u16 = 0xffff;

// OpenFlow 1.0 action types.
const AT10_OUTPUT: u16 = 0;
const AT10_SET_VLAN_VID: u16 = 1;
const AT10_SET_VLAN_PCP: u16 = 2;
const AT10_STRIP_VLAN: u16 = 3;
const AT10_SET_DL_SRC: u16 = 4;
const AT10_SET_DL_DST: u16 = 5;
const AT10_SET_NW_SRC: u16 = 6;
const AT10_SET_NW_DST: u16 = 7;
const AT10_SET_NW_TOS: u16 = 8;
const AT10_SET_TP_SRC: u16 = 9;
const AT10_SET_TP_DST: u16 = 10;
const AT10_ENQUEUE: u16 = 11;

fn mac_of(b: [u8; 6]) -> u128 {
    b.iter().fold(0u128, |a, &x| (a << 8) | x as u128)
}

/// Parses an action list of exactly `body`'s length.
pub fn parse_actions(version: u8, body: &[u8]) -> Result<Vec<Action>, OfpError> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while !r.is_empty() {
        let atype = r.peek_u16(0).ok_or(OfpError::BAD_ACTION_LEN)?;
        let len = r.peek_u16(2).ok_or(OfpError::BAD_ACTION_LEN)? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(OfpError::BAD_ACTION_LEN);
        }
        let mut a = r.sub(len).ok_or(OfpError::BAD_ACTION_LEN)?;
        a.skip(4).ok_or(OfpError::BAD_ACTION_LEN)?;
        if version == OFP10 {
            parse_action10(atype, len, &mut a, &mut out)?;
        } else {
            out.push(parse_action11(atype, len, &mut a)?);
        }
    }
    Ok(out)
}

fn fixed(len: usize, want: usize) -> Result<(), OfpError> {
    if len == want {
        Ok(())
    } else {
        Err(OfpError::BAD_ACTION_LEN)
    }
}

fn check_output(p: u32) -> Result<u32, OfpError> {
    if port::is_valid_output(p) {
        Ok(p)
    } else {
        Err(OfpError::BAD_OUT_PORT)
    }
}

fn experimenter_error(a: &mut Reader<'_>) -> OfpError {
    match a.u32() {
        Some(NX_VENDOR_ID) => OfpError::BAD_ACTION_EXP_TYPE,
        _ => OfpError::BAD_ACTION_EXPERIMENTER,
    }
}

fn parse_action10(
    atype: u16,
    len: usize,
    a: &mut Reader<'_>,
    out: &mut Vec<Action>,
) -> Result<(), OfpError> {
    let e = OfpError::BAD_ACTION_LEN;
    let set = |f: Field, v: u128| Action::SetField(OxmField::exact(f, v));
    let act = match atype {
        AT10_OUTPUT => {
            fixed(len, 8)?;
            let port = check_output(port::from_ofp10(a.u16().ok_or(e)?))?;
            Action::Output {
                port,
                max_len: a.u16().ok_or(e)?,
            }
        }
        AT10_SET_VLAN_VID => {
            fixed(len, 8)?;
            let vid = a.u16().ok_or(e)?;
            if vid > 0x0fff {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            set(Field::VlanVid, (vid | OFPVID_PRESENT) as u128)
        }
        AT10_SET_VLAN_PCP => {
            fixed(len, 8)?;
            let pcp = a.u8().ok_or(e)?;
            if pcp > 7 {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            set(Field::VlanPcp, pcp as u128)
        }
        AT10_STRIP_VLAN => {
            fixed(len, 8)?;
            Action::PopVlan
        }
        AT10_SET_DL_SRC | AT10_SET_DL_DST => {
            fixed(len, 16)?;
            let f = if atype == AT10_SET_DL_SRC {
                Field::EthSrc
            } else {
                Field::EthDst
            };
            set(f, mac_of(a.array().ok_or(e)?))
        }
        AT10_SET_NW_SRC | AT10_SET_NW_DST => {
            fixed(len, 8)?;
            let f = if atype == AT10_SET_NW_SRC {
                Field::Ipv4Src
            } else {
                Field::Ipv4Dst
            };
            set(f, a.u32().ok_or(e)? as u128)
        }
        AT10_SET_NW_TOS => {
            fixed(len, 8)?;
            let tos = a.u8().ok_or(e)?;
            if tos & 3 != 0 {
                return Err(OfpError::BAD_ACTION_ARGUMENT);
            }
            set(Field::IpDscp, (tos >> 2) as u128)
        }
        AT10_SET_TP_SRC | AT10_SET_TP_DST => {
            fixed(len, 8)?;
            let f = if atype == AT10_SET_TP_SRC {
                Field::TcpSrc
            } else {
                Field::TcpDst
            };
            set(f, a.u16().ok_or(e)? as u128)
        }
        AT10_ENQUEUE => {
            fixed(len, 16)?;
            let p = port::from_ofp10(a.u16().ok_or(e)?);
            if p >= OFPP_MAX && p != OFPP_IN_PORT || p == 0 {
                return Err(OfpError::BAD_OUT_PORT);
            }
            a.skip(6).ok_or(e)?;
            Action::Enqueue {
                port: p,
                queue_id: a.u32().ok_or(e)?,
            }
        }
        AT_EXPERIMENTER => return Err(experimenter_error(a)),
        _ => return Err(OfpError::BAD_ACTION_TYPE),
    };
    out.push(act);
    Ok(())
}

fn parse_action11(atype: u16, len: usize, a: &mut Reader<'_>) -> Result<Action, OfpError> {
    let e = OfpError::BAD_ACTION_LEN;
    Ok(match atype {
        AT_OUTPUT => {
            fixed(len, 16)?;
            let port = check_output(a.u32().ok_or(e)?)?;
            Action::Output {
                port,
                max_len: a.u16().ok_or(e)?,
            }
        }
        AT_COPY_TTL_OUT => fixed(len, 8).map(|_| Action::CopyTtlOut)?,
        AT_COPY_TTL_IN => fixed(len, 8).map(|_| Action::CopyTtlIn)?,
        AT_SET_MPLS_TTL => fixed(len, 8).and_then(|_| Ok(Action::SetMplsTtl(a.u8().ok_or(e)?)))?,
        AT_DEC_MPLS_TTL => fixed(len, 8).map(|_| Action::DecMplsTtl)?,
        AT_PUSH_VLAN | AT_PUSH_MPLS | AT_POP_MPLS => {
            fixed(len, 8)?;
            let et = a.u16().ok_or(e)?;
            match atype {
                AT_PUSH_VLAN if et == 0x8100 || et == 0x88a8 => Action::PushVlan(et),
                AT_PUSH_MPLS if et == 0x8847 || et == 0x8848 => Action::PushMpls(et),
                AT_POP_MPLS => Action::PopMpls(et),
                _ => return Err(OfpError::BAD_ACTION_ARGUMENT),
            }
        }
        AT_POP_VLAN => fixed(len, 8).map(|_| Action::PopVlan)?,
        AT_SET_QUEUE => fixed(len, 8).and_then(|_| Ok(Action::SetQueue(a.u32().ok_or(e)?)))?,
        AT_GROUP => {
            fixed(len, 8)?;
            let g = a.u32().ok_or(e)?;
            if g > super::group::OFPG_MAX {
                return Err(OfpError::BAD_OUT_GROUP);
            }
            Action::Group(g)
        }
        AT_SET_NW_TTL => fixed(len, 8).and_then(|_| Ok(Action::SetNwTtl(a.u8().ok_or(e)?)))?,
        AT_DEC_NW_TTL => fixed(len, 8).map(|_| Action::DecNwTtl)?,
        AT_SET_FIELD => {
            let f = parse_oxm(a).map_err(|f| match f {
                OxmFault::Len => OfpError::BAD_SET_LEN,
                OxmFault::Field => OfpError::BAD_SET_TYPE,
                _ => OfpError::BAD_SET_ARGUMENT,
            })?;
            if f.mask.is_some() {
                return Err(OfpError::BAD_SET_ARGUMENT);
            }
            if !is_settable(f.field) {
                return Err(OfpError::BAD_SET_TYPE);
            }
            // What follows the OXM is padding to the action's 8-byte length.
            if a.remaining() >= 8 || a.rest().iter().any(|&b| b != 0) {
                return Err(OfpError::BAD_SET_LEN);
            }
            Action::SetField(f)
        }
        AT_EXPERIMENTER => return Err(experimenter_error(a)),
        _ => return Err(OfpError::BAD_ACTION_TYPE),
    })
}

/// Appends the actions in `version`'s encoding. Fails with `BAD_ACTION_TYPE` (or
/// `BAD_OUT_PORT`) for an action that version cannot carry.
pub fn emit_actions(version: u8, actions: &[Action], out: &mut Vec<u8>) -> Result<(), OfpError> {
    for a in actions {
        if version == OFP10 {
            emit_action10(a, out)?;
        } else {
            emit_action11(a, out);
        }
    }
    Ok(())
}

fn hdr(out: &mut Vec<u8>, t: u16, len: u16) {
    out.put_u16(t);
    out.put_u16(len);
}

fn emit_action11(a: &Action, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, t: u16| {
        hdr(out, t, 8);
        out.put_u32(0);
    };
    match *a {
        Action::Output { port, max_len } => {
            hdr(out, AT_OUTPUT, 16);
            out.put_u32(port);
            out.put_u16(max_len);
            out.put_zeros(6);
        }
        Action::Group(g) => {
            hdr(out, AT_GROUP, 8);
            out.put_u32(g);
        }
        Action::SetQueue(q) => {
            hdr(out, AT_SET_QUEUE, 8);
            out.put_u32(q);
        }
        Action::Enqueue { port, queue_id } => {
            emit_action11(&Action::SetQueue(queue_id), out);
            emit_action11(&Action::Output { port, max_len: 0 }, out);
        }
        Action::PushVlan(et) | Action::PushMpls(et) | Action::PopMpls(et) => {
            let t = match a {
                Action::PushVlan(_) => AT_PUSH_VLAN,
                Action::PushMpls(_) => AT_PUSH_MPLS,
                _ => AT_POP_MPLS,
            };
            hdr(out, t, 8);
            out.put_u16(et);
            out.put_u16(0);
        }
        Action::PopVlan => simple(out, AT_POP_VLAN),
        Action::SetMplsTtl(t) | Action::SetNwTtl(t) => {
            let at = if matches!(a, Action::SetMplsTtl(_)) {
                AT_SET_MPLS_TTL
            } else {
                AT_SET_NW_TTL
            };
            hdr(out, at, 8);
            out.put_u8(t);
            out.put_zeros(3);
        }
        Action::DecMplsTtl => simple(out, AT_DEC_MPLS_TTL),
        Action::CopyTtlOut => simple(out, AT_COPY_TTL_OUT),
        Action::CopyTtlIn => simple(out, AT_COPY_TTL_IN),
        Action::DecNwTtl => simple(out, AT_DEC_NW_TTL),
        Action::SetField(f) => {
            let start = out.len();
            hdr(out, AT_SET_FIELD, 0);
            OxmField { mask: None, ..f }.emit(out);
            out.pad8_from(start);
            let len = (out.len() - start) as u16;
            out.set_u16(start + 2, len);
        }
    }
}

fn emit_action10(a: &Action, out: &mut Vec<u8>) -> Result<(), OfpError> {
    let port10 = |p: u32| port::to_ofp10(p).ok_or(OfpError::BAD_OUT_PORT);
    match *a {
        Action::Output { port, max_len } => {
            hdr(out, AT10_OUTPUT, 8);
            out.put_u16(port10(port)?);
            out.put_u16(max_len);
        }
        Action::Enqueue { port, queue_id } => {
            hdr(out, AT10_ENQUEUE, 16);
            out.put_u16(port10(port)?);
            out.put_zeros(6);
            out.put_u32(queue_id);
        }
        Action::PopVlan => {
            hdr(out, AT10_STRIP_VLAN, 8);
            out.put_u32(0);
        }
        Action::SetField(f) => {
            let v = f.value;
            match f.field {
                Field::VlanVid if v & OFPVID_PRESENT as u128 != 0 => {
                    hdr(out, AT10_SET_VLAN_VID, 8);
                    out.put_u16((v & 0xfff) as u16);
                    out.put_u16(0);
                }
                Field::VlanPcp => {
                    hdr(out, AT10_SET_VLAN_PCP, 8);
                    out.put_u8(v as u8);
                    out.put_zeros(3);
                }
                Field::EthSrc | Field::EthDst => {
                    let t = if f.field == Field::EthSrc {
                        AT10_SET_DL_SRC
                    } else {
                        AT10_SET_DL_DST
                    };
                    hdr(out, t, 16);
                    out.extend_from_slice(&v.to_be_bytes()[10..]);
                    out.put_zeros(6);
                }
                Field::Ipv4Src | Field::Ipv4Dst => {
                    let t = if f.field == Field::Ipv4Src {
                        AT10_SET_NW_SRC
                    } else {
                        AT10_SET_NW_DST
                    };
                    hdr(out, t, 8);
                    out.put_u32(v as u32);
                }
                Field::IpDscp => {
                    hdr(out, AT10_SET_NW_TOS, 8);
                    out.put_u8((v as u8) << 2);
                    out.put_zeros(3);
                }
                Field::TcpSrc | Field::UdpSrc | Field::SctpSrc => {
                    hdr(out, AT10_SET_TP_SRC, 8);
                    out.put_u16(v as u16);
                    out.put_u16(0);
                }
                Field::TcpDst | Field::UdpDst | Field::SctpDst => {
                    hdr(out, AT10_SET_TP_DST, 8);
                    out.put_u16(v as u16);
                    out.put_u16(0);
                }
                _ => return Err(OfpError::BAD_SET_TYPE),
            }
        }
        _ => return Err(OfpError::BAD_ACTION_TYPE),
    }
    Ok(())
}

/// One instruction (OpenFlow 1.1+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata { metadata: u64, mask: u64 },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    Meter(u32),
}

const IT_GOTO_TABLE: u16 = 1;
const IT_WRITE_METADATA: u16 = 2;
const IT_WRITE_ACTIONS: u16 = 3;
const IT_APPLY_ACTIONS: u16 = 4;
const IT_CLEAR_ACTIONS: u16 = 5;
const IT_METER: u16 = 6;

impl Instruction {
    fn type_code(&self) -> u16 {
        match self {
            Instruction::GotoTable(_) => IT_GOTO_TABLE,
            Instruction::WriteMetadata { .. } => IT_WRITE_METADATA,
            Instruction::WriteActions(_) => IT_WRITE_ACTIONS,
            Instruction::ApplyActions(_) => IT_APPLY_ACTIONS,
            Instruction::ClearActions => IT_CLEAR_ACTIONS,
            Instruction::Meter(_) => IT_METER,
        }
    }
}

/// Parses an instruction list of exactly `body`'s length (`version` >= 1.1).
pub fn parse_instructions(version: u8, body: &[u8]) -> Result<Vec<Instruction>, OfpError> {
    let e = OfpError::INST_BAD_LEN;
    let mut r = Reader::new(body);
    let mut out: Vec<Instruction> = Vec::new();
    let mut seen = 0u32;
    while !r.is_empty() {
        let itype = r.peek_u16(0).ok_or(e)?;
        let len = r.peek_u16(2).ok_or(e)? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(e);
        }
        let mut i = r.sub(len).ok_or(e)?;
        i.skip(4).ok_or(e)?;
        let fixed = |want: usize| if len == want { Ok(()) } else { Err(e) };
        let inst = match itype {
            IT_GOTO_TABLE => {
                fixed(8)?;
                let t = i.u8().ok_or(e)?;
                if t == 0xff {
                    return Err(OfpError::INST_BAD_TABLE_ID);
                }
                Instruction::GotoTable(t)
            }
            IT_WRITE_METADATA => {
                fixed(24)?;
                i.skip(4).ok_or(e)?;
                Instruction::WriteMetadata {
                    metadata: i.u64().ok_or(e)?,
                    mask: i.u64().ok_or(e)?,
                }
            }
            IT_WRITE_ACTIONS | IT_APPLY_ACTIONS => {
                i.skip(4).ok_or(e)?;
                let acts = parse_actions(version, i.rest())?;
                if itype == IT_WRITE_ACTIONS {
                    Instruction::WriteActions(acts)
                } else {
                    Instruction::ApplyActions(acts)
                }
            }
            IT_CLEAR_ACTIONS => {
                fixed(8)?;
                Instruction::ClearActions
            }
            IT_METER => {
                fixed(8)?;
                Instruction::Meter(i.u32().ok_or(e)?)
            }
            0xffff => {
                return Err(match i.u32() {
                    Some(NX_VENDOR_ID) => OfpError::INST_BAD_EXP_TYPE,
                    _ => OfpError::INST_BAD_EXPERIMENTER,
                });
            }
            _ => return Err(OfpError::UNKNOWN_INST),
        };
        let bit = 1u32 << inst.type_code();
        if seen & bit != 0 {
            return Err(OfpError::DUP_INST);
        }
        seen |= bit;
        out.push(inst);
    }
    Ok(out)
}

/// Appends instructions (1.1+ encoding).
pub fn emit_instructions(version: u8, insts: &[Instruction], out: &mut Vec<u8>) {
    for inst in insts {
        let start = out.len();
        out.put_u16(inst.type_code());
        out.put_u16(0);
        match inst {
            Instruction::GotoTable(t) => {
                out.put_u8(*t);
                out.put_zeros(3);
            }
            Instruction::WriteMetadata { metadata, mask } => {
                out.put_u32(0);
                out.put_u64(*metadata);
                out.put_u64(*mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                out.put_u32(0);
                // 1.1+ encoding of every action exists, so this cannot fail.
                let _ = emit_actions(version.max(super::OFP13), a, out);
            }
            Instruction::ClearActions => out.put_u32(0),
            Instruction::Meter(m) => out.put_u32(*m),
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start + 2, len);
    }
}

/// OpenFlow 1.0 has only an action list: it must be a lone `ApplyActions` (or nothing).
pub fn ofp10_actions(insts: &[Instruction]) -> Result<&[Action], OfpError> {
    match insts {
        [] => Ok(&[]),
        [Instruction::ApplyActions(a)] => Ok(a),
        _ => Err(OfpError::UNSUP_INST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openflow::OFP13;
    use alloc::vec;

    #[test]
    fn ofp10_rewrites_map_to_set_field_and_back() {
        let acts = vec![
            Action::SetField(OxmField::exact(Field::VlanVid, 0x1007)),
            Action::PopVlan,
            Action::SetField(OxmField::exact(Field::EthSrc, 0x0102_0304_0506)),
            Action::SetField(OxmField::exact(Field::IpDscp, 10)),
            Action::SetField(OxmField::exact(Field::TcpDst, 8080)),
            Action::Enqueue {
                port: 2,
                queue_id: 1,
            },
            Action::Output {
                port: port::OFPP_CONTROLLER,
                max_len: 128,
            },
        ];
        let mut b = Vec::new();
        emit_actions(OFP10, &acts, &mut b).unwrap();
        assert_eq!(parse_actions(OFP10, &b).unwrap(), acts);
    }

    #[test]
    fn bad_actions() {
        // Unknown type 99, bad length 12, output to ANY.
        let p = |b: &[u8]| parse_actions(OFP13, b);
        assert_eq!(
            p(&[0, 99, 0, 8, 0, 0, 0, 0]),
            Err(OfpError::BAD_ACTION_TYPE)
        );
        assert_eq!(
            p(&[0, 18, 0, 12, 0, 0, 0, 0]),
            Err(OfpError::BAD_ACTION_LEN)
        );
        assert_eq!(
            p(&[0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(OfpError::BAD_OUT_PORT)
        );
        // set_field eth_type is not writable
        assert_eq!(
            p(&[0, 25, 0, 16, 0x80, 0, 10, 2, 8, 0, 0, 0, 0, 0, 0, 0]),
            Err(OfpError::BAD_SET_TYPE)
        );
        // Nicira vendor action
        assert_eq!(
            p(&[0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 1, 0, 0, 0, 0, 0, 0]),
            Err(OfpError::BAD_ACTION_EXP_TYPE)
        );
    }

    #[test]
    fn instructions_round_trip_and_dup() {
        let insts = vec![
            Instruction::Meter(3),
            Instruction::ApplyActions(vec![Action::PushVlan(0x8100), Action::DecNwTtl]),
            Instruction::WriteMetadata {
                metadata: 5,
                mask: 0xff,
            },
            Instruction::GotoTable(2),
        ];
        let mut b = Vec::new();
        emit_instructions(OFP13, &insts, &mut b);
        assert_eq!(parse_instructions(OFP13, &b).unwrap(), insts);
        let mut d = Vec::new();
        emit_instructions(
            OFP13,
            &[Instruction::ClearActions, Instruction::ClearActions],
            &mut d,
        );
        assert_eq!(parse_instructions(OFP13, &d), Err(OfpError::DUP_INST));
    }
}
