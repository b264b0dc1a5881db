//! The meter table: meters set by `METER_MOD`, token buckets with drop bands, and the
//! statistics the meter multiparts report. It is the pipeline's `MeterHook`.
//!
//! Only drop bands are implemented (as in Open vSwitch's userspace datapath): a DSCP-remark band
//! is refused with `METER_MOD_FAILED/BAD_BAND`, and the meter features say so.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use switch_core::pipeline::MeterHook;

use crate::openflow::OfpError;
use crate::openflow::meter::{
    MeterBand, MeterCommand, MeterConfig, MeterFeatures, MeterMod, MeterStats, OFPM_ALL,
    OFPM_CONTROLLER, OFPM_MAX, OFPM_SLOWPATH, OFPMF_BURST, OFPMF_KBPS, OFPMF_PKTPS, OFPMF_STATS,
};

/// Bands per meter.
pub const MAX_BANDS: usize = 8;

#[derive(Clone, Debug)]
struct Band {
    rate: u32,
    burst: u32,
    /// Tokens: bits (kbps meters) or milli-packets (pktps meters).
    tokens: u64,
    capacity: u64,
    last_ms: u64,
    packets: u64,
    bytes: u64,
}

/// One meter.
#[derive(Clone, Debug)]
pub struct Meter {
    pub flags: u16,
    bands: Vec<Band>,
    pub packets: u64,
    pub bytes: u64,
    pub created_ms: u64,
}

impl Meter {
    fn new(mm: &MeterMod, now_ms: u64) -> Result<Meter, OfpError> {
        if mm.bands.len() > MAX_BANDS {
            return Err(OfpError::OUT_OF_BANDS);
        }
        let mut bands = Vec::with_capacity(mm.bands.len());
        for b in &mm.bands {
            let MeterBand::Drop { rate, burst_size } = *b else {
                return Err(OfpError::METER_BAD_BAND);
            };
            if rate == 0 {
                return Err(OfpError::METER_BAD_RATE);
            }
            if mm.flags & OFPMF_BURST != 0 && burst_size == 0 {
                return Err(OfpError::METER_BAD_BURST);
            }
            // Without OFPMF_BURST the bucket holds 100 ms worth of traffic at the rate.
            let burst = if mm.flags & OFPMF_BURST != 0 {
                burst_size
            } else {
                (rate / 10).max(1)
            };
            let capacity = burst as u64 * 1000;
            bands.push(Band {
                rate,
                burst: if mm.flags & OFPMF_BURST != 0 {
                    burst_size
                } else {
                    0
                },
                tokens: capacity,
                capacity,
                last_ms: now_ms,
                packets: 0,
                bytes: 0,
            });
        }
        Ok(Meter {
            flags: mm.flags,
            bands,
            packets: 0,
            bytes: 0,
            created_ms: now_ms,
        })
    }

    /// Charges one packet; false if a band drops it.
    fn charge(&mut self, len: usize, now_ms: u64) -> bool {
        self.packets += 1;
        self.bytes += len as u64;
        let pktps = self.flags & OFPMF_PKTPS != 0;
        let cost = if pktps { 1000 } else { len as u64 * 8 };
        // The band with the highest rate among those exceeded applies.
        let mut exceeded: Option<(usize, u32)> = None;
        for (i, b) in self.bands.iter_mut().enumerate() {
            let elapsed = now_ms.saturating_sub(b.last_ms);
            b.last_ms = b.last_ms.max(now_ms);
            // kbps: `rate` bits per ms; pktps: `rate` milli-packets per ms.
            b.tokens = b
                .tokens
                .saturating_add(elapsed.saturating_mul(b.rate as u64))
                .min(b.capacity);
            if b.tokens >= cost {
                b.tokens -= cost;
            } else if exceeded.is_none_or(|(_, r)| r < b.rate) {
                exceeded = Some((i, b.rate));
            }
        }
        match exceeded {
            Some((i, _)) => {
                let b = &mut self.bands[i];
                b.packets += 1;
                b.bytes += len as u64;
                false
            }
            None => true,
        }
    }

    pub fn config(&self, meter_id: u32) -> MeterConfig {
        MeterConfig {
            flags: self.flags,
            meter_id,
            bands: self
                .bands
                .iter()
                .map(|b| MeterBand::Drop {
                    rate: b.rate,
                    burst_size: b.burst,
                })
                .collect(),
        }
    }

    pub fn stats(&self, meter_id: u32, flow_count: u32, now_ms: u64) -> MeterStats {
        let age = now_ms.saturating_sub(self.created_ms);
        MeterStats {
            meter_id,
            flow_count,
            packet_in_count: self.packets,
            byte_in_count: self.bytes,
            duration_sec: (age / 1000) as u32,
            duration_nsec: ((age % 1000) * 1_000_000) as u32,
            bands: self.bands.iter().map(|b| (b.packets, b.bytes)).collect(),
        }
    }
}

/// The meters of one bridge.
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    meters: BTreeMap<u32, Meter>,
    /// Most meters accepted.
    pub max_meters: u32,
}

impl MeterTable {
    pub fn new(max_meters: u32) -> MeterTable {
        MeterTable {
            meters: BTreeMap::new(),
            max_meters,
        }
    }

    pub fn get(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id)
    }

    /// Whether a flow may refer to meter `id` (an existing meter or a virtual one).
    pub fn is_usable(&self, id: u32) -> bool {
        id == OFPM_CONTROLLER || id == OFPM_SLOWPATH || self.meters.contains_key(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Meter)> {
        self.meters.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    /// Applies a meter-mod; returns the ids of the meters deleted (their flows go too).
    pub fn apply(&mut self, mm: &MeterMod, now_ms: u64) -> Result<Vec<u32>, OfpError> {
        match mm.command {
            MeterCommand::Add => {
                if mm.meter_id > OFPM_MAX {
                    // The virtual meters cannot be configured here.
                    return Err(OfpError::INVALID_METER);
                }
                if self.meters.contains_key(&mm.meter_id) {
                    return Err(OfpError::METER_EXISTS);
                }
                if self.meters.len() >= self.max_meters as usize {
                    return Err(OfpError::OUT_OF_METERS);
                }
                let m = Meter::new(mm, now_ms)?;
                self.meters.insert(mm.meter_id, m);
                Ok(Vec::new())
            }
            MeterCommand::Modify => {
                let Some(old) = self.meters.get_mut(&mm.meter_id) else {
                    return Err(OfpError::UNKNOWN_METER);
                };
                let mut m = Meter::new(mm, now_ms)?;
                m.packets = old.packets;
                m.bytes = old.bytes;
                m.created_ms = old.created_ms;
                *old = m;
                Ok(Vec::new())
            }
            MeterCommand::Delete => {
                if mm.meter_id == OFPM_ALL {
                    let ids = self.meters.keys().copied().collect();
                    self.meters.clear();
                    Ok(ids)
                } else if self.meters.remove(&mm.meter_id).is_some() {
                    Ok(alloc::vec![mm.meter_id])
                } else {
                    // Deleting a meter that does not exist is not an error (as in OVS).
                    Ok(Vec::new())
                }
            }
        }
    }

    /// What the meter table supports.
    pub fn features(&self) -> MeterFeatures {
        MeterFeatures {
            max_meter: self.max_meters,
            band_types: 1 << 1, // OFPMBT_DROP
            capabilities: (OFPMF_KBPS | OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS) as u32,
            max_bands: MAX_BANDS as u8,
            max_color: 0,
        }
    }
}

impl MeterHook for MeterTable {
    fn meter(&mut self, meter_id: u32, packet_len: usize, now_ms: u64) -> bool {
        match self.meters.get_mut(&meter_id) {
            Some(m) => m.charge(packet_len, now_ms),
            // Virtual meters and meters deleted under a cached flow pass.
            None => true,
        }
    }
}
