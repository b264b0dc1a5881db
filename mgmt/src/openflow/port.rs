//! Port numbers, port descriptions (`ofp_phy_port` 1.0, `ofp_port` 1.3, `ofp_port` with
//! properties 1.4+), port statistics and `PORT_MOD` bodies.
//!
//! Port numbers are kept in the 32-bit numbering of OpenFlow 1.1+; 1.0's 16-bit reserved ports
//! (0xfff8..=0xffff) map onto 0xfffffff8..=0xffffffff, as Open vSwitch maps them.

use alloc::string::String;
use alloc::vec::Vec;

use super::bytes::{Put, Reader, fixed_str};
use super::error::OfpError;
use super::{OFP10, OFP14};

pub const OFPP_MAX: u32 = 0xffff_ff00;
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
pub const OFPP_TABLE: u32 = 0xffff_fff9;
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
pub const OFPP_ALL: u32 = 0xffff_fffc;
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// `OFPP_ANY` (1.1+) / `OFPP_NONE` (1.0).
pub const OFPP_ANY: u32 = 0xffff_ffff;

/// A 1.0 port number in 32-bit numbering.
pub fn from_ofp10(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | p as u32
    } else {
        p as u32
    }
}

/// A 32-bit port number as 1.0 writes it, if 1.0 can.
pub fn to_ofp10(p: u32) -> Option<u16> {
    if !(0xff00..OFPP_MAX).contains(&p) {
        Some(p as u16)
    } else {
        None
    }
}

/// Whether `p` may be an output port (a real port or a reserved port other than ANY).
pub fn is_valid_output(p: u32) -> bool {
    p != 0 && (p <= OFPP_MAX || (OFPP_IN_PORT..=OFPP_LOCAL).contains(&p))
}

/// A port description. Feature bits use the 1.1+ numbering (`OFPPF_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDesc {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// kbps (1.1+ only; 1.0 has no speed fields).
    pub curr_speed: u32,
    pub max_speed: u32,
}

/// 1.1+ port feature bits → 1.0 (drops 40G/100G/1T/OTHER, moves the medium bits down).
fn features_to_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f >> 4) & (0x1f << 7))
}
fn features_from_ofp10(f: u32) -> u32 {
    (f & 0x7f) | ((f & (0x1f << 7)) << 4)
}

/// Length of one port description in `version` (1.4+ with its ethernet property).
pub fn port_desc_len(version: u8) -> usize {
    match version {
        OFP10 => 48,
        v if v >= OFP14 => 72,
        _ => 64,
    }
}

impl PortDesc {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<PortDesc, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut p = PortDesc::default();
        if version == OFP10 {
            p.port_no = from_ofp10(r.u16().ok_or(e)?);
            p.hw_addr = r.array().ok_or(e)?;
            p.name = fixed_str(r.bytes(16).ok_or(e)?);
            p.config = r.u32().ok_or(e)?;
            p.state = r.u32().ok_or(e)?;
            p.curr = features_from_ofp10(r.u32().ok_or(e)?);
            p.advertised = features_from_ofp10(r.u32().ok_or(e)?);
            p.supported = features_from_ofp10(r.u32().ok_or(e)?);
            p.peer = features_from_ofp10(r.u32().ok_or(e)?);
            return Ok(p);
        }
        if version >= OFP14 {
            p.port_no = r.u32().ok_or(e)?;
            let len = r.u16().ok_or(e)? as usize;
            if len < 40 {
                return Err(e);
            }
            r.skip(2).ok_or(e)?;
            p.hw_addr = r.array().ok_or(e)?;
            r.skip(2).ok_or(e)?;
            p.name = fixed_str(r.bytes(16).ok_or(e)?);
            p.config = r.u32().ok_or(e)?;
            p.state = r.u32().ok_or(e)?;
            let mut props = r.sub(len - 40).ok_or(e)?;
            while !props.is_empty() {
                let ptype = props.u16().ok_or(e)?;
                let plen = props.u16().ok_or(e)? as usize;
                if plen < 4 {
                    return Err(OfpError::BAD_PROPERTY_LEN);
                }
                let mut body = props.sub(plen - 4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
                props.skip((8 - plen % 8) % 8).ok_or(e)?;
                if ptype == 0 {
                    body.skip(4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
                    let mut f = [0u32; 6];
                    for x in f.iter_mut() {
                        *x = body.u32().ok_or(OfpError::BAD_PROPERTY_LEN)?;
                    }
                    [
                        p.curr,
                        p.advertised,
                        p.supported,
                        p.peer,
                        p.curr_speed,
                        p.max_speed,
                    ] = f;
                }
            }
            return Ok(p);
        }
        p.port_no = r.u32().ok_or(e)?;
        r.skip(4).ok_or(e)?;
        p.hw_addr = r.array().ok_or(e)?;
        r.skip(2).ok_or(e)?;
        p.name = fixed_str(r.bytes(16).ok_or(e)?);
        p.config = r.u32().ok_or(e)?;
        p.state = r.u32().ok_or(e)?;
        p.curr = r.u32().ok_or(e)?;
        p.advertised = r.u32().ok_or(e)?;
        p.supported = r.u32().ok_or(e)?;
        p.peer = r.u32().ok_or(e)?;
        p.curr_speed = r.u32().ok_or(e)?;
        p.max_speed = r.u32().ok_or(e)?;
        Ok(p)
    }

    pub fn emit(&self, version: u8, out: &mut Vec<u8>) {
        if version == OFP10 {
            out.put_u16(to_ofp10(self.port_no).unwrap_or(0xffff));
            out.extend_from_slice(&self.hw_addr);
            out.put_str_fixed(&self.name, 16);
            out.put_u32(self.config);
            out.put_u32(self.state);
            out.put_u32(features_to_ofp10(self.curr));
            out.put_u32(features_to_ofp10(self.advertised));
            out.put_u32(features_to_ofp10(self.supported));
            out.put_u32(features_to_ofp10(self.peer));
            return;
        }
        out.put_u32(self.port_no);
        if version >= OFP14 {
            out.put_u16(72);
            out.put_u16(0);
        } else {
            out.put_u32(0);
        }
        out.extend_from_slice(&self.hw_addr);
        out.put_u16(0);
        out.put_str_fixed(&self.name, 16);
        out.put_u32(self.config);
        out.put_u32(self.state);
        if version >= OFP14 {
            out.put_u16(0); // OFPPDPT_ETHERNET
            out.put_u16(32);
            out.put_u32(0);
        }
        out.put_u32(self.curr);
        out.put_u32(self.advertised);
        out.put_u32(self.supported);
        out.put_u32(self.peer);
        out.put_u32(self.curr_speed);
        out.put_u32(self.max_speed);
    }
}

/// Counters of one port (`ofp_port_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    /// 1.3+ only.
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl PortStats {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<PortStats, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut s = PortStats::default();
        let read8 = |r: &mut Reader<'_>, n: usize| -> Result<[u64; 8], OfpError> {
            let mut a = [0u64; 8];
            for x in a.iter_mut().take(n) {
                *x = r.u64().ok_or(e)?;
            }
            Ok(a)
        };
        if version >= OFP14 {
            let len = r.u16().ok_or(e)? as usize;
            if len < 80 {
                return Err(e);
            }
            r.skip(2).ok_or(e)?;
            s.port_no = r.u32().ok_or(e)?;
            s.duration_sec = r.u32().ok_or(e)?;
            s.duration_nsec = r.u32().ok_or(e)?;
            let c = read8(r, 8)?;
            [s.rx_packets, s.tx_packets, s.rx_bytes, s.tx_bytes] = [c[0], c[1], c[2], c[3]];
            [s.rx_dropped, s.tx_dropped, s.rx_errors, s.tx_errors] = [c[4], c[5], c[6], c[7]];
            let mut props = r.sub(len - 80).ok_or(e)?;
            while !props.is_empty() {
                let ptype = props.u16().ok_or(e)?;
                let plen = props.u16().ok_or(e)? as usize;
                if plen < 4 {
                    return Err(OfpError::BAD_PROPERTY_LEN);
                }
                let mut body = props.sub(plen - 4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
                props.skip((8 - plen % 8) % 8).ok_or(e)?;
                if ptype == 0 {
                    body.skip(4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
                    let c = read8(&mut body, 4).map_err(|_| OfpError::BAD_PROPERTY_LEN)?;
                    [s.rx_frame_err, s.rx_over_err, s.rx_crc_err, s.collisions] =
                        [c[0], c[1], c[2], c[3]];
                }
            }
            return Ok(s);
        }
        if version == OFP10 {
            s.port_no = from_ofp10(r.u16().ok_or(e)?);
            r.skip(6).ok_or(e)?;
        } else {
            s.port_no = r.u32().ok_or(e)?;
            r.skip(4).ok_or(e)?;
        }
        let c = read8(r, 8)?;
        [s.rx_packets, s.tx_packets, s.rx_bytes, s.tx_bytes] = [c[0], c[1], c[2], c[3]];
        [s.rx_dropped, s.tx_dropped, s.rx_errors, s.tx_errors] = [c[4], c[5], c[6], c[7]];
        let c = read8(r, 4)?;
        [s.rx_frame_err, s.rx_over_err, s.rx_crc_err, s.collisions] = [c[0], c[1], c[2], c[3]];
        if version != OFP10 {
            s.duration_sec = r.u32().ok_or(e)?;
            s.duration_nsec = r.u32().ok_or(e)?;
        }
        Ok(s)
    }

    pub fn emit(&self, version: u8, out: &mut Vec<u8>) {
        let base = [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
        ];
        let eth = [
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ];
        if version >= OFP14 {
            out.put_u16(120);
            out.put_u16(0);
            out.put_u32(self.port_no);
            out.put_u32(self.duration_sec);
            out.put_u32(self.duration_nsec);
            base.iter().for_each(|&v| out.put_u64(v));
            out.put_u16(0); // OFPPSPT_ETHERNET
            out.put_u16(40);
            out.put_u32(0);
            eth.iter().for_each(|&v| out.put_u64(v));
            return;
        }
        if version == OFP10 {
            out.put_u16(to_ofp10(self.port_no).unwrap_or(0xffff));
            out.put_zeros(6);
        } else {
            out.put_u32(self.port_no);
            out.put_u32(0);
        }
        base.iter().for_each(|&v| out.put_u64(v));
        eth.iter().for_each(|&v| out.put_u64(v));
        if version != OFP10 {
            out.put_u32(self.duration_sec);
            out.put_u32(self.duration_nsec);
        }
    }
}

/// `PORT_MOD`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMod {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub mask: u32,
    /// Feature bits to advertise (1.1+ numbering); 0 = unchanged.
    pub advertise: u32,
}

impl PortMod {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<PortMod, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut p = PortMod::default();
        if version == OFP10 {
            p.port_no = from_ofp10(r.u16().ok_or(e)?);
            p.hw_addr = r.array().ok_or(e)?;
            p.config = r.u32().ok_or(e)?;
            p.mask = r.u32().ok_or(e)?;
            p.advertise = features_from_ofp10(r.u32().ok_or(e)?);
            r.skip(4).ok_or(e)?;
            return Ok(p);
        }
        p.port_no = r.u32().ok_or(e)?;
        r.skip(4).ok_or(e)?;
        p.hw_addr = r.array().ok_or(e)?;
        r.skip(2).ok_or(e)?;
        p.config = r.u32().ok_or(e)?;
        p.mask = r.u32().ok_or(e)?;
        if version >= OFP14 {
            while !r.is_empty() {
                let ptype = r.u16().ok_or(e)?;
                let plen = r.u16().ok_or(e)? as usize;
                if plen < 4 {
                    return Err(OfpError::BAD_PROPERTY_LEN);
                }
                let mut body = r.sub(plen - 4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
                r.skip((8 - plen % 8) % 8).ok_or(e)?;
                match ptype {
                    0 => p.advertise = body.u32().ok_or(OfpError::BAD_PROPERTY_LEN)?,
                    _ => return Err(OfpError::BAD_PROPERTY_TYPE),
                }
            }
        } else {
            p.advertise = r.u32().ok_or(e)?;
            r.skip(4).ok_or(e)?;
        }
        Ok(p)
    }

    pub fn emit(&self, version: u8, out: &mut Vec<u8>) {
        if version == OFP10 {
            out.put_u16(to_ofp10(self.port_no).unwrap_or(0xffff));
            out.extend_from_slice(&self.hw_addr);
            out.put_u32(self.config);
            out.put_u32(self.mask);
            out.put_u32(features_to_ofp10(self.advertise));
            out.put_u32(0);
            return;
        }
        out.put_u32(self.port_no);
        out.put_u32(0);
        out.extend_from_slice(&self.hw_addr);
        out.put_u16(0);
        out.put_u32(self.config);
        out.put_u32(self.mask);
        if version >= OFP14 {
            out.put_u16(0);
            out.put_u16(8);
            out.put_u32(self.advertise);
        } else {
            out.put_u32(self.advertise);
            out.put_u32(0);
        }
    }
}
