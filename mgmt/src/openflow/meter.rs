//! Meters: `METER_MOD`, bands, and the meter multipart bodies (OpenFlow 1.3+).

use alloc::vec::Vec;

use super::bytes::{Put, Reader};
use super::error::OfpError;

pub const OFPM_MAX: u32 = 0xffff_0000;
pub const OFPM_SLOWPATH: u32 = 0xffff_fffd;
pub const OFPM_CONTROLLER: u32 = 0xffff_fffe;
pub const OFPM_ALL: u32 = 0xffff_ffff;

pub const OFPMF_KBPS: u16 = 1;
pub const OFPMF_PKTPS: u16 = 2;
pub const OFPMF_BURST: u16 = 4;
pub const OFPMF_STATS: u16 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterCommand {
    Add,
    Modify,
    Delete,
}

/// A meter band. Only DROP and DSCP_REMARK exist in the standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterBand {
    Drop {
        rate: u32,
        burst_size: u32,
    },
    DscpRemark {
        rate: u32,
        burst_size: u32,
        prec_level: u8,
    },
}

impl MeterBand {
    fn parse(r: &mut Reader<'_>) -> Result<MeterBand, OfpError> {
        let e = OfpError::BAD_LEN;
        let btype = r.u16().ok_or(e)?;
        let len = r.u16().ok_or(e)?;
        if len != 16 {
            return Err(e);
        }
        let rate = r.u32().ok_or(e)?;
        let burst_size = r.u32().ok_or(e)?;
        let extra = r.array::<4>().ok_or(e)?;
        match btype {
            1 => Ok(MeterBand::Drop { rate, burst_size }),
            2 => Ok(MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level: extra[0],
            }),
            _ => Err(OfpError::METER_BAD_BAND),
        }
    }
    fn emit(&self, out: &mut Vec<u8>) {
        match *self {
            MeterBand::Drop { rate, burst_size } => {
                out.put_u16(1);
                out.put_u16(16);
                out.put_u32(rate);
                out.put_u32(burst_size);
                out.put_u32(0);
            }
            MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level,
            } => {
                out.put_u16(2);
                out.put_u16(16);
                out.put_u32(rate);
                out.put_u32(burst_size);
                out.put_u8(prec_level);
                out.put_zeros(3);
            }
        }
    }
}

fn parse_bands(r: &mut Reader<'_>) -> Result<Vec<MeterBand>, OfpError> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(MeterBand::parse(r)?);
    }
    Ok(v)
}

/// `METER_MOD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterMod {
    pub command: MeterCommand,
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterMod {
    pub fn parse(r: &mut Reader<'_>) -> Result<MeterMod, OfpError> {
        let e = OfpError::BAD_LEN;
        let command = match r.u16().ok_or(e)? {
            0 => MeterCommand::Add,
            1 => MeterCommand::Modify,
            2 => MeterCommand::Delete,
            _ => return Err(OfpError::METER_BAD_COMMAND),
        };
        let flags = r.u16().ok_or(e)?;
        let meter_id = r.u32().ok_or(e)?;
        let bands = parse_bands(r)?;
        if flags & !(OFPMF_KBPS | OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS) != 0
            || (command != MeterCommand::Delete
                && (flags & (OFPMF_KBPS | OFPMF_PKTPS)).count_ones() != 1)
        {
            return Err(OfpError::METER_BAD_FLAGS);
        }
        let id_ok = match command {
            MeterCommand::Delete => meter_id == OFPM_ALL || (1..=OFPM_MAX).contains(&meter_id),
            _ => {
                (1..=OFPM_MAX).contains(&meter_id)
                    || meter_id == OFPM_SLOWPATH
                    || meter_id == OFPM_CONTROLLER
            }
        };
        if !id_ok {
            return Err(OfpError::INVALID_METER);
        }
        Ok(MeterMod {
            command,
            flags,
            meter_id,
            bands,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16(match self.command {
            MeterCommand::Add => 0,
            MeterCommand::Modify => 1,
            MeterCommand::Delete => 2,
        });
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        self.bands.iter().for_each(|b| b.emit(out));
    }
}

/// One entry of a meter-config reply (`ofp_meter_config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterConfig {
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterConfig {
    pub fn parse(r: &mut Reader<'_>) -> Result<MeterConfig, OfpError> {
        let e = OfpError::BAD_LEN;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 8 {
            return Err(e);
        }
        let mut m = r.sub(len).ok_or(e)?;
        m.skip(2).ok_or(e)?;
        Ok(MeterConfig {
            flags: m.u16().ok_or(e)?,
            meter_id: m.u32().ok_or(e)?,
            bands: parse_bands(&mut m)?,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16((8 + 16 * self.bands.len()) as u16);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        self.bands.iter().for_each(|b| b.emit(out));
    }
}

/// One entry of a meter-statistics reply (`ofp_meter_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// (packet_band_count, byte_band_count) per band.
    pub bands: Vec<(u64, u64)>,
}

impl MeterStats {
    pub fn parse(r: &mut Reader<'_>) -> Result<MeterStats, OfpError> {
        let e = OfpError::BAD_LEN;
        let len = r.peek_u16(4).ok_or(e)? as usize;
        if len < 40 || !(len - 40).is_multiple_of(16) {
            return Err(e);
        }
        let mut m = r.sub(len).ok_or(e)?;
        let mut s = MeterStats {
            meter_id: m.u32().ok_or(e)?,
            ..Default::default()
        };
        m.skip(8).ok_or(e)?;
        s.flow_count = m.u32().ok_or(e)?;
        s.packet_in_count = m.u64().ok_or(e)?;
        s.byte_in_count = m.u64().ok_or(e)?;
        s.duration_sec = m.u32().ok_or(e)?;
        s.duration_nsec = m.u32().ok_or(e)?;
        while !m.is_empty() {
            s.bands.push((m.u64().ok_or(e)?, m.u64().ok_or(e)?));
        }
        Ok(s)
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.meter_id);
        out.put_u16((40 + 16 * self.bands.len()) as u16);
        out.put_zeros(6);
        out.put_u32(self.flow_count);
        out.put_u64(self.packet_in_count);
        out.put_u64(self.byte_in_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        for (p, b) in &self.bands {
            out.put_u64(*p);
            out.put_u64(*b);
        }
    }
}

/// Meter features (`ofp_meter_features`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterFeatures {
    pub max_meter: u32,
    /// Bitmap of `1 << OFPMBT_*`.
    pub band_types: u32,
    /// Bitmap of `OFPMF_*`.
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

impl MeterFeatures {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<MeterFeatures, OfpError> {
        let e = OfpError::BAD_LEN;
        let f = MeterFeatures {
            max_meter: r.u32().ok_or(e)?,
            band_types: r.u32().ok_or(e)?,
            capabilities: r.u32().ok_or(e)?,
            max_bands: r.u8().ok_or(e)?,
            max_color: r.u8().ok_or(e)?,
        };
        let _ = version; // same layout in 1.3 through 1.5 (as Open vSwitch encodes it)
        r.skip(2).ok_or(e)?;
        Ok(f)
    }
    pub fn emit(&self, version: u8, out: &mut Vec<u8>) {
        out.put_u32(self.max_meter);
        out.put_u32(self.band_types);
        out.put_u32(self.capabilities);
        out.put_u8(self.max_bands);
        out.put_u8(self.max_color);
        out.put_u16(0);
        let _ = version;
    }
}
