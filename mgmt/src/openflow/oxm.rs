//! Matches: OXM TLVs (`ofp_match` of OpenFlow 1.2+) and the fixed OpenFlow 1.0 `ofp_match`,
//! both decoded into one `Match` of `switch_core::flow::Field`s.
//!
//! OXM parsing is strict like Open vSwitch's flow-mod parsing: lengths must agree with the field
//! and `has_mask` (`BAD_LEN`), a field may appear once (`DUP_FIELD`), unknown fields and classes
//! are `BAD_FIELD`, masks only on maskable fields (`BAD_MASK`), no value bit outside the field's
//! width (`BAD_VALUE`) or outside the mask (`BAD_WILDCARDS`), and prerequisites must be present
//! (`BAD_PREREQ`).

use alloc::vec::Vec;

use switch_core::flow::{Field, OFPVID_PRESENT};

use super::bytes::{Put, Reader};
use super::error::OfpError;
use super::port;

/// `OFPXMC_OPENFLOW_BASIC`.
pub const OXM_CLASS_BASIC: u16 = 0x8000;
/// `OFPMT_OXM`.
pub const OFPMT_OXM: u16 = 1;

/// One OXM TLV: a field, its value (right-aligned) and an optional mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OxmField {
    pub field: Field,
    pub value: u128,
    pub mask: Option<u128>,
}

impl OxmField {
    pub fn exact(field: Field, value: u128) -> OxmField {
        OxmField {
            field,
            value,
            mask: None,
        }
    }
    pub fn masked(field: Field, value: u128, mask: u128) -> OxmField {
        OxmField {
            field,
            value,
            mask: Some(mask),
        }
    }
    /// The 32-bit OXM header (`class:16 field:7 hasmask:1 length:8`).
    pub fn header(&self) -> u32 {
        oxm_header(self.field, self.mask.is_some())
    }
    /// Bytes this TLV takes on the wire.
    pub fn wire_len(&self) -> usize {
        let l = self.field.info().oxm_len as usize;
        4 + if self.mask.is_some() { 2 * l } else { l }
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.header());
        let l = self.field.info().oxm_len as usize;
        put_value(out, self.value, l);
        if let Some(m) = self.mask {
            put_value(out, m, l);
        }
    }
}

/// The OXM header of `field` (basic class).
pub fn oxm_header(field: Field, has_mask: bool) -> u32 {
    let l = field.info().oxm_len as u32;
    let len = if has_mask { 2 * l } else { l };
    ((OXM_CLASS_BASIC as u32) << 16) | ((field as u32) << 9) | ((has_mask as u32) << 8) | len
}

fn put_value(out: &mut Vec<u8>, v: u128, len: usize) {
    out.extend_from_slice(&v.to_be_bytes()[16 - len..]);
}

fn get_value(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |acc, &x| (acc << 8) | x as u128)
}

/// Whether Open vSwitch accepts a mask on `field` (the OpenFlow 1.3 maskable set plus the
/// transport ports and ND fields, which OVS also allows).
pub fn is_maskable(field: Field) -> bool {
    !matches!(
        field,
        Field::InPort
            | Field::InPhyPort
            | Field::EthType
            | Field::VlanPcp
            | Field::IpDscp
            | Field::IpEcn
            | Field::IpProto
            | Field::Icmpv4Type
            | Field::Icmpv4Code
            | Field::ArpOp
            | Field::Icmpv6Type
            | Field::Icmpv6Code
    )
}

/// Whether a `SET_FIELD` action may write `field`.
pub fn is_settable(field: Field) -> bool {
    !matches!(
        field,
        Field::InPhyPort | Field::EthType | Field::IpProto | Field::Ipv6Exthdr
    )
}

/// What was wrong with one OXM TLV; callers map it to the error of their context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OxmFault {
    /// Truncated, or the length disagrees with the field.
    Len,
    /// Unknown class or field.
    Field,
    /// Value has bits outside the field's width.
    Value,
    /// Mask on a field that cannot be masked, or mask bits outside the width.
    Mask,
    /// Value has bits that the mask clears.
    Wildcards,
}

impl OxmFault {
    fn match_error(self) -> OfpError {
        match self {
            OxmFault::Len => OfpError::BAD_MATCH_LEN,
            OxmFault::Field => OfpError::BAD_FIELD,
            OxmFault::Value => OfpError::BAD_VALUE,
            OxmFault::Mask => OfpError::BAD_MASK,
            OxmFault::Wildcards => OfpError::BAD_WILDCARDS,
        }
    }
}

/// Reads one OXM TLV.
pub fn parse_oxm(r: &mut Reader<'_>) -> Result<OxmField, OxmFault> {
    let header = r.u32().ok_or(OxmFault::Len)?;
    let class = (header >> 16) as u16;
    let has_mask = header & 0x100 != 0;
    let len = (header & 0xff) as usize;
    let payload = r.bytes(len).ok_or(OxmFault::Len)?;
    if class != OXM_CLASS_BASIC {
        return Err(OxmFault::Field);
    }
    let field = Field::from_oxm(((header >> 9) & 0x7f) as u8).ok_or(OxmFault::Field)?;
    let l = field.info().oxm_len as usize;
    if len != if has_mask { 2 * l } else { l } {
        return Err(OxmFault::Len);
    }
    let value = get_value(&payload[..l]);
    if value & !field.max() != 0 {
        return Err(OxmFault::Value);
    }
    let mask = if has_mask {
        if !is_maskable(field) {
            return Err(OxmFault::Mask);
        }
        let m = get_value(&payload[l..]);
        if m & !field.max() != 0 {
            return Err(OxmFault::Mask);
        }
        if value & !m != 0 {
            return Err(OxmFault::Wildcards);
        }
        Some(m)
    } else {
        None
    };
    Ok(OxmField { field, value, mask })
}

/// A flow match: OXM fields in wire order, each at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    pub fields: Vec<OxmField>,
}

impl Match {
    /// The match-everything match.
    pub fn any() -> Match {
        Match::default()
    }
    pub fn get(&self, field: Field) -> Option<&OxmField> {
        self.fields.iter().find(|f| f.field == field)
    }
    /// The exact value of `field`, if matched without a mask.
    pub fn exact(&self, field: Field) -> Option<u128> {
        self.get(field).and_then(|f| {
            if f.mask.is_none() {
                Some(f.value)
            } else {
                None
            }
        })
    }
    /// Adds a field (builder style; no duplicate check).
    pub fn with(mut self, f: OxmField) -> Match {
        self.fields.push(f);
        self
    }

    /// Parses the OXM TLVs of `body` (no `ofp_match` header), checking duplicates and prerequisites.
    pub fn parse_oxms(body: &[u8]) -> Result<Match, OfpError> {
        let mut r = Reader::new(body);
        let mut m = Match::default();
        let mut seen: u64 = 0;
        while !r.is_empty() {
            let f = parse_oxm(&mut r).map_err(OxmFault::match_error)?;
            let bit = 1u64 << (f.field as u8);
            if seen & bit != 0 {
                return Err(OfpError::DUP_FIELD);
            }
            seen |= bit;
            m.fields.push(f);
        }
        m.check_prereqs()?;
        Ok(m)
    }

    /// Parses an `ofp_match` (OpenFlow 1.2+: type, length, OXMs, padding to 8) from `r`.
    pub fn parse_ofp13(r: &mut Reader<'_>) -> Result<Match, OfpError> {
        let mtype = r.u16().ok_or(OfpError::BAD_LEN)?;
        let len = r.u16().ok_or(OfpError::BAD_LEN)? as usize;
        if mtype != OFPMT_OXM {
            return Err(OfpError::BAD_MATCH_TYPE);
        }
        if len < 4 {
            return Err(OfpError::BAD_MATCH_LEN);
        }
        let body = r.bytes(len - 4).ok_or(OfpError::BAD_MATCH_LEN)?;
        let pad = (8 - len % 8) % 8;
        r.skip(pad).ok_or(OfpError::BAD_MATCH_LEN)?;
        Match::parse_oxms(body)
    }

    /// Emits an `ofp_match` with OXMs, padded to a multiple of 8.
    pub fn emit_ofp13(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(OFPMT_OXM);
        out.put_u16(0);
        self.emit_oxms(out);
        let len = out.len() - start;
        out.set_u16(start + 2, len as u16);
        out.pad8_from(start);
    }

    /// Emits the OXM TLVs only.
    pub fn emit_oxms(&self, out: &mut Vec<u8>) {
        for f in &self.fields {
            f.emit(out);
        }
    }

    /// Bytes `emit_ofp13` writes.
    pub fn ofp13_len(&self) -> usize {
        super::bytes::round8(4 + self.fields.iter().map(|f| f.wire_len()).sum::<usize>())
    }

    /// Checks the OpenFlow 1.3 prerequisite table (`BAD_PREREQ`).
    pub fn check_prereqs(&self) -> Result<(), OfpError> {
        let eth = self.exact(Field::EthType).map(|v| v as u16);
        let proto = self.exact(Field::IpProto).map(|v| v as u8);
        let is_ip = matches!(eth, Some(0x0800) | Some(0x86dd));
        let icmp6 = self.exact(Field::Icmpv6Type).map(|v| v as u8);
        for f in &self.fields {
            let ok = match f.field {
                Field::InPhyPort => self.get(Field::InPort).is_some(),
                Field::VlanPcp => self.get(Field::VlanVid).is_some_and(|v| {
                    v.value & v.mask.unwrap_or(u128::MAX) & OFPVID_PRESENT as u128 != 0
                }),
                Field::IpDscp | Field::IpEcn | Field::IpProto => is_ip,
                Field::Ipv4Src | Field::Ipv4Dst => eth == Some(0x0800),
                Field::TcpSrc | Field::TcpDst => is_ip && proto == Some(6),
                Field::UdpSrc | Field::UdpDst => is_ip && proto == Some(17),
                Field::SctpSrc | Field::SctpDst => is_ip && proto == Some(132),
                Field::Icmpv4Type | Field::Icmpv4Code => eth == Some(0x0800) && proto == Some(1),
                Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
                    eth == Some(0x0806)
                }
                Field::Ipv6Src | Field::Ipv6Dst | Field::Ipv6Flabel | Field::Ipv6Exthdr => {
                    eth == Some(0x86dd)
                }
                Field::Icmpv6Type | Field::Icmpv6Code => eth == Some(0x86dd) && proto == Some(58),
                Field::Ipv6NdTarget => matches!(icmp6, Some(135) | Some(136)),
                Field::Ipv6NdSll => icmp6 == Some(135),
                Field::Ipv6NdTll => icmp6 == Some(136),
                _ => true,
            };
            if !ok {
                return Err(OfpError::BAD_PREREQ);
            }
        }
        Ok(())
    }

    /// Parses an OpenFlow 1.0 `ofp_match` (40 bytes). Fields whose prerequisites the match does
    /// not establish are ignored, as OpenFlow 1.0 and Open vSwitch do.
    pub fn parse_ofp10(r: &mut Reader<'_>) -> Result<Match, OfpError> {
        let b = r.bytes(OFP10_MATCH_LEN).ok_or(OfpError::BAD_LEN)?;
        let mut r = Reader::new(b);
        let rd = |o: Option<u32>| o.unwrap_or(0);
        let wc = rd(r.u32());
        let in_port = r.u16().unwrap_or(0);
        let dl_src = r.array::<6>().unwrap_or_default();
        let dl_dst = r.array::<6>().unwrap_or_default();
        let dl_vlan = r.u16().unwrap_or(0);
        let dl_vlan_pcp = r.u8().unwrap_or(0);
        r.skip(1);
        let dl_type = r.u16().unwrap_or(0);
        let nw_tos = r.u8().unwrap_or(0);
        let nw_proto = r.u8().unwrap_or(0);
        r.skip(2);
        let nw_src = rd(r.u32());
        let nw_dst = rd(r.u32());
        let tp_src = r.u16().unwrap_or(0);
        let tp_dst = r.u16().unwrap_or(0);

        let mut m = Match::default();
        let on = |bit: u32| wc & bit == 0;
        if on(OFPFW10_IN_PORT) {
            m.fields.push(OxmField::exact(
                Field::InPort,
                port::from_ofp10(in_port) as u128,
            ));
        }
        if on(OFPFW10_DL_SRC) {
            m.fields
                .push(OxmField::exact(Field::EthSrc, get_value(&dl_src)));
        }
        if on(OFPFW10_DL_DST) {
            m.fields
                .push(OxmField::exact(Field::EthDst, get_value(&dl_dst)));
        }
        let pcp = on(OFPFW10_DL_VLAN_PCP);
        if on(OFPFW10_DL_VLAN) {
            if dl_vlan == OFP10_VLAN_NONE {
                m.fields.push(OxmField::exact(Field::VlanVid, 0));
            } else {
                m.fields.push(OxmField::exact(
                    Field::VlanVid,
                    ((dl_vlan & 0x0fff) | OFPVID_PRESENT) as u128,
                ));
                if pcp {
                    m.fields
                        .push(OxmField::exact(Field::VlanPcp, (dl_vlan_pcp & 7) as u128));
                }
            }
        } else if pcp {
            let p = OFPVID_PRESENT as u128;
            m.fields.push(OxmField::masked(Field::VlanVid, p, p));
            m.fields
                .push(OxmField::exact(Field::VlanPcp, (dl_vlan_pcp & 7) as u128));
        }
        if !on(OFPFW10_DL_TYPE) {
            return Ok(m);
        }
        m.fields
            .push(OxmField::exact(Field::EthType, dl_type as u128));
        let nw_src_mask = prefix_mask(wc >> OFPFW10_NW_SRC_SHIFT);
        let nw_dst_mask = prefix_mask(wc >> OFPFW10_NW_DST_SHIFT);
        let push_ip = |m: &mut Match, field: Field, v: u32, mask: u32| {
            if mask == u32::MAX {
                m.fields.push(OxmField::exact(field, v as u128));
            } else if mask != 0 {
                m.fields
                    .push(OxmField::masked(field, (v & mask) as u128, mask as u128));
            }
        };
        match dl_type {
            0x0800 => {
                if on(OFPFW10_NW_TOS) {
                    m.fields
                        .push(OxmField::exact(Field::IpDscp, (nw_tos >> 2) as u128));
                }
                let proto = on(OFPFW10_NW_PROTO).then_some(nw_proto);
                if let Some(p) = proto {
                    m.fields.push(OxmField::exact(Field::IpProto, p as u128));
                }
                push_ip(&mut m, Field::Ipv4Src, nw_src, nw_src_mask);
                push_ip(&mut m, Field::Ipv4Dst, nw_dst, nw_dst_mask);
                let l4 = match proto {
                    Some(6) => Some((Field::TcpSrc, Field::TcpDst)),
                    Some(17) => Some((Field::UdpSrc, Field::UdpDst)),
                    Some(132) => Some((Field::SctpSrc, Field::SctpDst)),
                    Some(1) => Some((Field::Icmpv4Type, Field::Icmpv4Code)),
                    _ => None,
                };
                if let Some((s, d)) = l4 {
                    if on(OFPFW10_TP_SRC) {
                        m.fields.push(OxmField::exact(s, tp_src as u128 & s.max()));
                    }
                    if on(OFPFW10_TP_DST) {
                        m.fields.push(OxmField::exact(d, tp_dst as u128 & d.max()));
                    }
                }
            }
            0x0806 => {
                if on(OFPFW10_NW_PROTO) {
                    m.fields
                        .push(OxmField::exact(Field::ArpOp, nw_proto as u128));
                }
                push_ip(&mut m, Field::ArpSpa, nw_src, nw_src_mask);
                push_ip(&mut m, Field::ArpTpa, nw_dst, nw_dst_mask);
            }
            _ => {}
        }
        Ok(m)
    }

    /// Emits an OpenFlow 1.0 `ofp_match`. Fails with `BAD_FIELD` (or `BAD_MASK` /
    /// `BAD_WILDCARDS`) if the match uses something 1.0 cannot express.
    pub fn emit_ofp10(&self, out: &mut Vec<u8>) -> Result<(), OfpError> {
        // An absent IPv4 field wildcards 32 bits, as Open vSwitch writes it.
        let mut wc = (OFPFW10_ALL & !(OFPFW10_NW_SRC_MASK | OFPFW10_NW_DST_MASK))
            | (32 << OFPFW10_NW_SRC_SHIFT)
            | (32 << OFPFW10_NW_DST_SHIFT);
        let (mut in_port, mut dl_vlan, mut dl_vlan_pcp, mut dl_type) = (0u16, 0u16, 0u8, 0u16);
        let (mut dl_src, mut dl_dst) = ([0u8; 6], [0u8; 6]);
        let (mut nw_tos, mut nw_proto, mut nw_src, mut nw_dst) = (0u8, 0u8, 0u32, 0u32);
        let (mut tp_src, mut tp_dst) = (0u16, 0u16);
        let mac = |v: u128| {
            let b = v.to_be_bytes();
            let mut a = [0u8; 6];
            a.copy_from_slice(&b[10..]);
            a
        };
        for f in &self.fields {
            let exact = f.mask.is_none();
            let v = f.value;
            match f.field {
                Field::InPort if exact => {
                    in_port = port::to_ofp10(v as u32).ok_or(OfpError::BAD_VALUE)?;
                    wc &= !OFPFW10_IN_PORT;
                }
                Field::EthSrc if exact => {
                    dl_src = mac(v);
                    wc &= !OFPFW10_DL_SRC;
                }
                Field::EthDst if exact => {
                    dl_dst = mac(v);
                    wc &= !OFPFW10_DL_DST;
                }
                Field::VlanVid => {
                    let present = OFPVID_PRESENT as u128;
                    if exact && v == 0 {
                        dl_vlan = OFP10_VLAN_NONE;
                        wc &= !OFPFW10_DL_VLAN;
                    } else if exact && v & present != 0 {
                        dl_vlan = (v & 0xfff) as u16;
                        wc &= !OFPFW10_DL_VLAN;
                    } else if f.mask == Some(present) && v == present {
                        // "any tagged packet": only expressible together with a PCP match.
                        if self.get(Field::VlanPcp).is_none() {
                            return Err(OfpError::BAD_MASK);
                        }
                    } else {
                        return Err(OfpError::BAD_MASK);
                    }
                }
                Field::VlanPcp => {
                    dl_vlan_pcp = v as u8;
                    wc &= !OFPFW10_DL_VLAN_PCP;
                }
                Field::EthType => {
                    dl_type = v as u16;
                    wc &= !OFPFW10_DL_TYPE;
                }
                Field::IpDscp => {
                    nw_tos = (v as u8) << 2;
                    wc &= !OFPFW10_NW_TOS;
                }
                Field::IpProto | Field::ArpOp => {
                    nw_proto = v as u8;
                    wc &= !OFPFW10_NW_PROTO;
                }
                Field::Ipv4Src | Field::ArpSpa => {
                    let n = prefix_wildcards(f.mask)?;
                    nw_src = v as u32;
                    wc = (wc & !OFPFW10_NW_SRC_MASK) | (n << OFPFW10_NW_SRC_SHIFT);
                }
                Field::Ipv4Dst | Field::ArpTpa => {
                    let n = prefix_wildcards(f.mask)?;
                    nw_dst = v as u32;
                    wc = (wc & !OFPFW10_NW_DST_MASK) | (n << OFPFW10_NW_DST_SHIFT);
                }
                Field::TcpSrc | Field::UdpSrc | Field::SctpSrc | Field::Icmpv4Type if exact => {
                    tp_src = v as u16;
                    wc &= !OFPFW10_TP_SRC;
                }
                Field::TcpDst | Field::UdpDst | Field::SctpDst | Field::Icmpv4Code if exact => {
                    tp_dst = v as u16;
                    wc &= !OFPFW10_TP_DST;
                }
                _ => return Err(OfpError::BAD_FIELD),
            }
        }
        out.put_u32(wc);
        out.put_u16(in_port);
        out.extend_from_slice(&dl_src);
        out.extend_from_slice(&dl_dst);
        out.put_u16(dl_vlan);
        out.put_u8(dl_vlan_pcp);
        out.put_u8(0);
        out.put_u16(dl_type);
        out.put_u8(nw_tos);
        out.put_u8(nw_proto);
        out.put_u16(0);
        out.put_u32(nw_src);
        out.put_u32(nw_dst);
        out.put_u16(tp_src);
        out.put_u16(tp_dst);
        Ok(())
    }
}

/// Length of the OpenFlow 1.0 `ofp_match`.
pub const OFP10_MATCH_LEN: usize = 40;
/// OpenFlow 1.0 `dl_vlan` value meaning "no VLAN tag".
pub const OFP10_VLAN_NONE: u16 = 0xffff;
pub const OFPFW10_IN_PORT: u32 = 1 << 0;
pub const OFPFW10_DL_VLAN: u32 = 1 << 1;
pub const OFPFW10_DL_SRC: u32 = 1 << 2;
pub const OFPFW10_DL_DST: u32 = 1 << 3;
pub const OFPFW10_DL_TYPE: u32 = 1 << 4;
pub const OFPFW10_NW_PROTO: u32 = 1 << 5;
pub const OFPFW10_TP_SRC: u32 = 1 << 6;
pub const OFPFW10_TP_DST: u32 = 1 << 7;
pub const OFPFW10_NW_SRC_SHIFT: u32 = 8;
pub const OFPFW10_NW_SRC_MASK: u32 = 0x3f << 8;
pub const OFPFW10_NW_DST_SHIFT: u32 = 14;
pub const OFPFW10_NW_DST_MASK: u32 = 0x3f << 14;
pub const OFPFW10_DL_VLAN_PCP: u32 = 1 << 20;
pub const OFPFW10_NW_TOS: u32 = 1 << 21;
pub const OFPFW10_ALL: u32 = (1 << 22) - 1;

/// The IPv4 mask for a 1.0 "number of wildcarded low bits" count (6 bits; >= 32 is all).
fn prefix_mask(wc_bits: u32) -> u32 {
    let n = wc_bits & 0x3f;
    if n >= 32 { 0 } else { u32::MAX << n }
}

/// The 1.0 wildcard-bit count for an IPv4 mask, which must be a CIDR prefix.
fn prefix_wildcards(mask: Option<u128>) -> Result<u32, OfpError> {
    let m = match mask {
        None => return Ok(0),
        Some(m) => m as u32,
    };
    let n = m.trailing_zeros();
    if n < 32 && (m >> n) != (u32::MAX >> n) {
        return Err(OfpError::BAD_NW_ADDR_MASK);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxm_header_layout() {
        // OXM_OF_IN_PORT = 0x80000004, OXM_OF_ETH_DST_W = 0x8000070c.
        assert_eq!(oxm_header(Field::InPort, false), 0x8000_0004);
        assert_eq!(oxm_header(Field::EthDst, true), 0x8000_070c);
        assert_eq!(oxm_header(Field::Ipv6Src, false), 0x8000_3410);
    }

    #[test]
    fn strict_oxm_checks() {
        let parse = |b: &[u8]| Match::parse_oxms(b);
        // in_port=1
        assert!(parse(&[0x80, 0, 0, 4, 0, 0, 0, 1]).is_ok());
        // wrong length
        assert_eq!(
            parse(&[0x80, 0, 0, 3, 0, 0, 1]),
            Err(OfpError::BAD_MATCH_LEN)
        );
        // truncated
        assert_eq!(parse(&[0x80, 0, 0, 4, 0, 0]), Err(OfpError::BAD_MATCH_LEN));
        // duplicate
        assert_eq!(
            parse(&[0x80, 0, 0, 4, 0, 0, 0, 1, 0x80, 0, 0, 4, 0, 0, 0, 2]),
            Err(OfpError::DUP_FIELD)
        );
        // unknown field 34 (MPLS label is not supported)
        assert_eq!(
            parse(&[0x80, 0, 34 << 1, 4, 0, 0, 0, 1]),
            Err(OfpError::BAD_FIELD)
        );
        // NXM class
        assert_eq!(
            parse(&[0x00, 1, 0, 4, 0, 0, 0, 1]),
            Err(OfpError::BAD_FIELD)
        );
        // masked in_port
        assert_eq!(
            parse(&[0x80, 0, 1, 8, 0, 0, 0, 1, 0, 0, 0, 1]),
            Err(OfpError::BAD_MASK)
        );
        // vlan_pcp 8 is out of range (and needs vlan_vid)
        assert_eq!(parse(&[0x80, 0, 7 << 1, 1, 8]), Err(OfpError::BAD_VALUE));
        assert_eq!(parse(&[0x80, 0, 7 << 1, 1, 3]), Err(OfpError::BAD_PREREQ));
        // eth_dst value outside mask
        assert_eq!(
            parse(&[0x80, 0, 7, 12, 1, 1, 1, 1, 1, 1, 0xff, 0, 0, 0, 0, 0]),
            Err(OfpError::BAD_WILDCARDS)
        );
        // tcp_dst without ip_proto
        assert_eq!(
            parse(&[0x80, 0, 10, 2, 0, 1, 0x80, 0, 28, 2, 0, 80]),
            Err(OfpError::BAD_PREREQ)
        );
    }

    #[test]
    fn ofp10_match_round_trip() {
        let m = Match::any()
            .with(OxmField::exact(Field::InPort, 3))
            .with(OxmField::exact(Field::VlanVid, 0x1005))
            .with(OxmField::exact(Field::EthType, 0x0800))
            .with(OxmField::exact(Field::IpProto, 6))
            .with(OxmField::masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000))
            .with(OxmField::exact(Field::TcpDst, 80));
        let mut b = Vec::new();
        m.emit_ofp10(&mut b).unwrap();
        assert_eq!(b.len(), 40);
        let back = Match::parse_ofp10(&mut Reader::new(&b)).unwrap();
        assert_eq!(back, m);
    }
}
