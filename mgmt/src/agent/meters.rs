//! The meter table: meters set by `METER_MOD`, token buckets with drop bands, and the
//! statistics the meter multiparts report. It is the pipeline's `MeterHook`.
//!
//! Only drop bands are implemented (as in Open vSwitch's userspace datapath): a DSCP-remark band
//! is refused with `METER_MOD_FAILED/BAD_BAND`, and the meter features say so.
//!
//! One meter limits the bridge as a whole, whichever core a packet arrives on: its token
//! buckets and counters are atomics (a band's refill and charge are one compare-and-swap loop,
//! no lock), shared by the management core's table and every datapath core's [`MeterReader`].
//! A reader holds a snapshot of the meter map and takes a new one at a batch boundary when the
//! table's generation moved (a meter-mod); the snapshot's lock is taken only then, never per
//! packet. The worker refreshes right after it synced to the newest epoch, so a barrier reply
//! (sent once every core passed the barrier's epoch) also means every core meters with the new
//! configuration.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use switch_core::pipeline::MeterHook;

use crate::openflow::OfpError;
use crate::openflow::meter::{
    MeterBand, MeterCommand, MeterConfig, MeterFeatures, MeterMod, MeterStats, OFPM_ALL,
    OFPM_CONTROLLER, OFPM_MAX, OFPM_SLOWPATH, OFPMF_BURST, OFPMF_KBPS, OFPMF_PKTPS, OFPMF_STATS,
};

/// Bands per meter.
pub const MAX_BANDS: usize = 8;

#[derive(Debug)]
struct Band {
    rate: u32,
    burst: u32,
    capacity: u64,
    /// Tokens: bits (kbps meters) or milli-packets (pktps meters).
    tokens: AtomicU64,
    last_ms: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl Band {
    /// Refills for the time since the last charge and takes `cost` if it is there.
    #[inline]
    fn take(&self, cost: u64, now_ms: u64) -> bool {
        // Exactly one charger gets each elapsed millisecond's refill.
        let prev = self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        // kbps: `rate` bits per ms; pktps: `rate` milli-packets per ms.
        let refill = now_ms.saturating_sub(prev).saturating_mul(self.rate as u64);
        let mut cur = self.tokens.load(Ordering::Relaxed);
        loop {
            let avail = cur.saturating_add(refill).min(self.capacity);
            let (new, pass) = if avail >= cost {
                (avail - cost, true)
            } else {
                (avail, false)
            };
            match self
                .tokens
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return pass,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// A meter's packet and byte counts, kept across modifications (one per meter id).
#[derive(Debug, Default)]
struct Counts {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// One meter.
#[derive(Debug)]
pub struct Meter {
    pub flags: u16,
    bands: Vec<Band>,
    counts: Arc<Counts>,
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
                tokens: AtomicU64::new(capacity),
                capacity,
                last_ms: AtomicU64::new(now_ms),
                packets: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            });
        }
        Ok(Meter {
            flags: mm.flags,
            bands,
            counts: Arc::new(Counts::default()),
            created_ms: now_ms,
        })
    }

    /// Packets the meter has seen (passed or dropped).
    pub fn packets(&self) -> u64 {
        self.counts.packets.load(Ordering::Relaxed)
    }

    /// Bytes the meter has seen.
    pub fn bytes(&self) -> u64 {
        self.counts.bytes.load(Ordering::Relaxed)
    }

    /// Charges one packet; false if a band drops it. Safe to call from several cores at once.
    fn charge(&self, len: usize, now_ms: u64) -> bool {
        self.counts.packets.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let pktps = self.flags & OFPMF_PKTPS != 0;
        let cost = if pktps { 1000 } else { len as u64 * 8 };
        // The band with the highest rate among those exceeded applies.
        let mut exceeded: Option<(usize, u32)> = None;
        for (i, b) in self.bands.iter().enumerate() {
            if !b.take(cost, now_ms) && exceeded.is_none_or(|(_, r)| r < b.rate) {
                exceeded = Some((i, b.rate));
            }
        }
        match exceeded {
            Some((i, _)) => {
                let b = &self.bands[i];
                b.packets.fetch_add(1, Ordering::Relaxed);
                b.bytes.fetch_add(len as u64, Ordering::Relaxed);
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
            packet_in_count: self.packets(),
            byte_in_count: self.bytes(),
            duration_sec: (age / 1000) as u32,
            duration_nsec: ((age % 1000) * 1_000_000) as u32,
            bands: self
                .bands
                .iter()
                .map(|b| {
                    (
                        b.packets.load(Ordering::Relaxed),
                        b.bytes.load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }
}

type MeterMap = BTreeMap<u32, Arc<Meter>>;

/// What a [`MeterTable`] shares with the datapath cores' [`MeterReader`]s.
#[derive(Debug, Default)]
pub struct MeterShare {
    /// Bumped (release) after every change of `map`.
    generation: AtomicU64,
    map: spin::Mutex<Arc<MeterMap>>,
}

/// The meters of one bridge.
#[derive(Debug, Default)]
pub struct MeterTable {
    meters: MeterMap,
    /// Most meters accepted.
    pub max_meters: u32,
    share: Arc<MeterShare>,
}

impl MeterTable {
    pub fn new(max_meters: u32) -> MeterTable {
        MeterTable {
            meters: BTreeMap::new(),
            max_meters,
            share: Arc::default(),
        }
    }

    /// A reader for a datapath core (charges the same buckets as this table).
    pub fn reader(&self) -> MeterReader {
        MeterReader {
            share: self.share.clone(),
            generation: u64::MAX,
            map: Arc::default(),
        }
    }

    /// Publishes the map to the readers (after a change).
    fn publish(&self) {
        *self.share.map.lock() = Arc::new(self.meters.clone());
        self.share.generation.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id).map(|m| &**m)
    }

    /// Whether a flow may refer to meter `id` (an existing meter or a virtual one).
    pub fn is_usable(&self, id: u32) -> bool {
        id == OFPM_CONTROLLER || id == OFPM_SLOWPATH || self.meters.contains_key(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Meter)> {
        self.meters.iter().map(|(k, v)| (*k, &**v))
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    /// Removes every meter (the readers see an empty table at their next refresh).
    pub fn clear(&mut self) {
        self.meters.clear();
        self.publish();
    }

    /// Applies a meter-mod; returns the ids of the meters deleted (their flows go too).
    pub fn apply(&mut self, mm: &MeterMod, now_ms: u64) -> Result<Vec<u32>, OfpError> {
        let r = self.apply_here(mm, now_ms);
        if r.is_ok() {
            self.publish();
        }
        r
    }

    fn apply_here(&mut self, mm: &MeterMod, now_ms: u64) -> Result<Vec<u32>, OfpError> {
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
                self.meters.insert(mm.meter_id, Arc::new(m));
                Ok(Vec::new())
            }
            MeterCommand::Modify => {
                let Some(old) = self.meters.get_mut(&mm.meter_id) else {
                    return Err(OfpError::UNKNOWN_METER);
                };
                let mut m = Meter::new(mm, now_ms)?;
                // The counts go on (a core still charging the old version adds to them too);
                // the bands start full, with counts of their own.
                m.counts = old.counts.clone();
                m.created_ms = old.created_ms;
                *old = Arc::new(m);
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
        match self.meters.get(&meter_id) {
            Some(m) => m.charge(packet_len, now_ms),
            // Virtual meters and meters deleted under a cached flow pass.
            None => true,
        }
    }
}

/// A datapath core's view of the bridge's meters (see the module documentation). `Send`, so
/// it can be built on the management core and moved to the worker's CPU.
#[derive(Debug)]
pub struct MeterReader {
    share: Arc<MeterShare>,
    generation: u64,
    map: Arc<MeterMap>,
}

impl MeterReader {
    /// Takes the newest meter map if it changed (call at a batch boundary, after syncing to
    /// the newest epoch).
    #[inline]
    pub fn refresh(&mut self) {
        let g = self.share.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.map = self.share.map.lock().clone();
            self.generation = g;
        }
    }
}

impl MeterHook for MeterReader {
    fn meter(&mut self, meter_id: u32, packet_len: usize, now_ms: u64) -> bool {
        match self.map.get(&meter_id) {
            Some(m) => m.charge(packet_len, now_ms),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::vec;

    /// A meter-mod with one drop band.
    fn drop_band(command: MeterCommand, id: u32, flags: u16, rate: u32, burst: u32) -> MeterMod {
        MeterMod {
            command,
            flags,
            meter_id: id,
            bands: vec![MeterBand::Drop {
                rate,
                burst_size: burst,
            }],
        }
    }

    fn add(t: &mut MeterTable, id: u32, flags: u16, rate: u32, burst: u32) {
        t.apply(&drop_band(MeterCommand::Add, id, flags, rate, burst), 0)
            .unwrap();
    }

    #[test]
    fn cores_share_one_bucket_and_counts_are_exact() {
        // 1000 packets/s with a burst of 500: at a standing clock exactly 500 pass, whichever
        // of four cores charges them, and every packet is counted.
        let mut t = MeterTable::new(16);
        add(
            &mut t,
            1,
            OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS,
            1000,
            500,
        );
        let passed: u64 = thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let mut r = t.reader();
                    s.spawn(move || {
                        r.refresh();
                        (0..10_000).filter(|_| r.meter(1, 100, 5)).count() as u64
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 500);
        let st = t.get(1).unwrap().stats(1, 0, 5);
        assert_eq!(st.packet_in_count, 40_000);
        assert_eq!(st.byte_in_count, 4_000_000);
        assert_eq!(st.bands, vec![(39_500, 3_950_000)]);
    }

    #[test]
    fn refill_is_given_once_per_elapsed_millisecond() {
        // 1000 packets/s, burst 1: one packet per millisecond, over 100 ms on two cores whose
        // clocks interleave.
        let mut t = MeterTable::new(16);
        add(&mut t, 7, OFPMF_PKTPS | OFPMF_BURST, 1000, 1);
        let (mut a, mut b) = (t.reader(), t.reader());
        a.refresh();
        b.refresh();
        let mut passed = 0;
        for ms in 1..=100u64 {
            for _ in 0..3 {
                passed += a.meter(7, 64, ms) as u32;
                passed += b.meter(7, 64, ms) as u32;
            }
        }
        // The bucket (one packet) is full at 0, so it cannot take millisecond 1's refill: one
        // packet per millisecond, not one more and not one per core.
        assert_eq!(passed, 100);
    }

    #[test]
    fn readers_follow_meter_mods_at_refresh() {
        let mut t = MeterTable::new(16);
        let mut r = t.reader();
        r.refresh();
        // No meter yet: passes.
        assert!(r.meter(3, 64, 0));
        add(&mut t, 3, OFPMF_PKTPS | OFPMF_BURST, 1, 1);
        // Not refreshed: still the old (empty) map.
        assert!(r.meter(3, 64, 0) && r.meter(3, 64, 0));
        r.refresh();
        assert!(r.meter(3, 64, 0));
        assert!(!r.meter(3, 64, 0));
        // Modify: fresh bands, the meter's counts go on (the old version's charge included).
        let mm = drop_band(MeterCommand::Modify, 3, OFPMF_PKTPS | OFPMF_BURST, 1, 5);
        t.apply(&mm, 0).unwrap();
        assert!(!r.meter(3, 64, 0), "the old version until refresh");
        r.refresh();
        assert_eq!((0..10).filter(|_| r.meter(3, 64, 0)).count(), 5);
        assert_eq!(t.get(3).unwrap().packets(), 13);
        // Clear (an agent reset): the reader sees no meter, so it passes.
        t.clear();
        r.refresh();
        assert!(r.meter(3, 64, 0));
    }
}
