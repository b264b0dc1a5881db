//! Power cuts and I/O errors under the configuration store (`mgmt::store`).
//!
//! `FaultDisk` keeps what is durable apart from what was written since the last flush. A
//! power cut at write/flush number `k` kills the device at that call (it and everything after
//! fail); the disk found at the next boot is the durable image plus any subset of the pending
//! sector writes (the interrupted write's included), applied in any order, optionally with one
//! sector torn (half old, half new). Every append that returned Ok must be there, in order,
//! and nothing else but possibly the one record in flight; open must never fail.

use mgmt::store::{BlockDevice, BlockError, Loaded, OpenError, RamDisk, Store, StoreError};
use proptest::prelude::*;

const BS: usize = 512;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone)]
struct FaultDisk {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Sector writes since the last flush, in order.
    pending: Vec<(u64, Vec<u8>)>,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
    /// This write/flush fails with an error (a failed write may still reach some sectors).
    fail_at: Option<u64>,
}

impl FaultDisk {
    fn new(blocks: u64) -> FaultDisk {
        let n = blocks as usize * BS;
        FaultDisk {
            durable: vec![0; n],
            volatile: vec![0; n],
            pending: Vec::new(),
            ops: 0,
            cut_at: None,
            dead: false,
            fail_at: None,
        }
    }

    fn from_image(image: Vec<u8>) -> FaultDisk {
        FaultDisk {
            durable: image.clone(),
            volatile: image,
            pending: Vec::new(),
            ops: 0,
            cut_at: None,
            dead: false,
            fail_at: None,
        }
    }

    fn check(&self, lba: u64, len: usize) -> Result<usize, BlockError> {
        if self.dead {
            return Err(BlockError::Device("power is off".into()));
        }
        if !len.is_multiple_of(BS) {
            return Err(BlockError::BadLength(len));
        }
        let blocks = (len / BS) as u64;
        if (lba + blocks) as usize * BS > self.durable.len() {
            return Err(BlockError::OutOfRange { lba, blocks });
        }
        Ok(lba as usize * BS)
    }

    fn tick(&mut self) -> u64 {
        let k = self.ops;
        self.ops += 1;
        k
    }

    /// The disk found after the power cut.
    fn crash(&self, variant: u64, rng: &mut Rng) -> Vec<u8> {
        let mut img = self.durable.clone();
        let mut chosen: Vec<&(u64, Vec<u8>)> = match variant {
            0 => Vec::new(),
            1 => self.pending.iter().collect(),
            _ => self.pending.iter().filter(|_| rng.below(2) == 0).collect(),
        };
        if variant >= 2 {
            // Any order.
            for i in (1..chosen.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                chosen.swap(i, j);
            }
        }
        for (lba, data) in &chosen {
            let at = *lba as usize * BS;
            img[at..at + BS].copy_from_slice(data);
        }
        if variant >= 5 && !self.pending.is_empty() {
            // One sector torn: a prefix of the new contents over the old.
            let (lba, data) = &self.pending[rng.below(self.pending.len() as u64) as usize];
            let at = *lba as usize * BS;
            let cut = 1 + rng.below(BS as u64 - 1) as usize;
            img[at..at + cut].copy_from_slice(&data[..cut]);
        }
        img
    }

    /// Clean shutdown: everything written is durable.
    fn settle(&mut self) -> Vec<u8> {
        self.volatile.clone()
    }
}

impl BlockDevice for FaultDisk {
    fn block_size(&self) -> usize {
        BS
    }
    fn num_blocks(&self) -> u64 {
        (self.durable.len() / BS) as u64
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let at = self.check(lba, buf.len())?;
        buf.copy_from_slice(&self.volatile[at..at + buf.len()]);
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let at = self.check(lba, buf.len())?;
        let k = self.tick();
        let cut = self.cut_at == Some(k);
        let fail = self.fail_at == Some(k);
        for (i, s) in buf.chunks(BS).enumerate() {
            // A failing write reaches only every other sector.
            if fail && i % 2 == 1 {
                continue;
            }
            self.pending.push((lba + i as u64, s.to_vec()));
            self.volatile[at + i * BS..at + (i + 1) * BS].copy_from_slice(s);
        }
        if cut {
            self.dead = true;
            return Err(BlockError::Device("power cut".into()));
        }
        if fail {
            return Err(BlockError::Device("injected write error".into()));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.check(0, 0)?;
        let k = self.tick();
        if self.cut_at == Some(k) {
            self.dead = true;
            return Err(BlockError::Device("power cut".into()));
        }
        if self.fail_at == Some(k) {
            return Err(BlockError::Device("injected flush error".into()));
        }
        for (lba, data) in self.pending.drain(..) {
            let at = lba as usize * BS;
            self.durable[at..at + BS].copy_from_slice(&data);
        }
        Ok(())
    }
}

/// The logical state: a list of records; a snapshot is that list, length-prefixed.
fn encode_snapshot(records: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in records {
        v.extend_from_slice(&(r.len() as u32).to_le_bytes());
        v.extend_from_slice(r);
    }
    v
}

fn state_of(loaded: &Loaded) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(s) = &loaded.snapshot {
        let mut i = 0;
        while i < s.len() {
            let n = u32::from_le_bytes(s[i..i + 4].try_into().unwrap()) as usize;
            out.push(s[i + 4..i + 4 + n].to_vec());
            i += 4 + n;
        }
    }
    out.extend(loaded.records.iter().cloned());
    out
}

/// A distinct record of `len` bytes.
fn record(n: usize, len: usize) -> Vec<u8> {
    let mut r = vec![(n % 251) as u8; len];
    if len >= 4 {
        r[..4].copy_from_slice(&(n as u32).to_le_bytes());
    }
    r
}

#[derive(Clone, Copy)]
enum Op {
    Append(usize),
    Compact,
}

fn workload(seed: u64, n: usize, max_len: usize) -> Vec<Op> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            if rng.below(9) == 0 {
                Op::Compact
            } else {
                let len = match rng.below(4) {
                    0 => rng.below(8) as usize,
                    1 => rng.below(200) as usize,
                    2 => 400 + rng.below(300) as usize,
                    _ => rng.below(max_len as u64) as usize,
                };
                Op::Append(len)
            }
        })
        .collect()
}

struct Outcome {
    acked: Vec<Vec<u8>>,
    in_flight: Option<Vec<u8>>,
}

/// Runs `ops` on `store`; compacts when the store asks or an append finds it full. Stops at the
/// first error when `stop_on_error`, else goes on (failed appends are not acknowledged).
/// Returns the record of the last append that failed (if nothing was acknowledged after it).
fn run(
    store: &mut Store<FaultDisk>,
    ops: &[Op],
    acked: &mut Vec<Vec<u8>>,
    stop_on_error: bool,
) -> Option<Vec<u8>> {
    let mut last_failed = None;
    for (i, op) in ops.iter().enumerate() {
        let r = match *op {
            Op::Compact => store.compact(&encode_snapshot(acked)),
            Op::Append(len) => {
                let rec = record(acked.len() * 1000 + i, len);
                let mut r = store.append(&rec);
                if let Err(StoreError::Full { .. }) = r {
                    r = store
                        .compact(&encode_snapshot(acked))
                        .and_then(|()| store.append(&rec));
                }
                match r {
                    Ok(()) => {
                        acked.push(rec);
                        last_failed = None;
                    }
                    Err(_) => last_failed = Some(rec),
                }
                r
            }
        };
        let r = r.and_then(|()| {
            if store.should_compact() {
                store.compact(&encode_snapshot(acked))
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {}
            Err(StoreError::Full { .. }) => panic!("full even after compaction"),
            Err(_) if stop_on_error => return last_failed,
            Err(_) => {}
        }
    }
    last_failed
}

fn open_ok(image: Vec<u8>) -> (Store<FaultDisk>, Loaded) {
    match Store::open(FaultDisk::from_image(image)) {
        Ok(x) => x,
        Err(e) => panic!("open failed after a power cut: {e}"),
    }
}

fn check_state(got: &[Vec<u8>], o: &Outcome, what: &str) {
    if got == o.acked.as_slice() {
        return;
    }
    if let Some(f) = &o.in_flight
        && got.len() == o.acked.len() + 1
        && got[..o.acked.len()] == o.acked[..]
        && &got[o.acked.len()] == f
    {
        return;
    }
    panic!(
        "{what}: recovered {} records, acknowledged {} (in flight: {})",
        got.len(),
        o.acked.len(),
        o.in_flight.is_some()
    );
}

/// A small disk (48-sector regions: compaction and full regions are frequent) and a larger
/// one (1024-sector regions) for the workloads whose whole state must fit a snapshot.
const BLOCKS: u64 = 2 + 2 * 48;
const BIG: u64 = 2 + 2 * 1024;

fn formatted(blocks: u64) -> FaultDisk {
    let s = Store::format(FaultDisk::new(blocks)).unwrap();
    s.into_device()
}

/// One run cut at `cut`, checked for each crash variant; returns the number of device ops the
/// run reached (to know when the sweep is done).
fn cut_and_check(blocks: u64, ops: &[Op], cut: u64, variants: &[u64], seed: u64) -> bool {
    let mut dev = formatted(blocks);
    let base = dev.ops;
    dev.cut_at = Some(base + cut);
    let mut store = match Store::open(dev) {
        Ok((s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    let mut acked = Vec::new();
    let in_flight = run(&mut store, ops, &mut acked, true);
    let dev = store.into_device();
    if !dev.dead {
        return false;
    }
    let o = Outcome { acked, in_flight };
    let mut rng = Rng(seed ^ (cut << 20) | 1);
    for &v in variants {
        let img = dev.crash(v, &mut rng);
        let (mut s, loaded) = open_ok(img);
        let got = state_of(&loaded);
        check_state(&got, &o, &format!("cut at op {cut}, variant {v}"));
        // The store goes on working after the recovery.
        let mut acked2 = got.clone();
        for k in 0..3 {
            let rec = record(900_000 + k, 300 * k);
            if s.append(&rec).is_err() {
                s.compact(&encode_snapshot(&acked2)).unwrap();
                s.append(&rec).unwrap();
            }
            acked2.push(rec);
        }
        let mut d = s.into_device();
        let (_, l2) = open_ok(d.settle());
        assert_eq!(state_of(&l2), acked2, "after recovery from cut {cut}/{v}");
    }
    true
}

fn sweep(blocks: u64, seed: u64, n: usize, max_len: usize) -> u64 {
    let ops = workload(seed, n, max_len);
    let variants = [0, 1, 2, 3, 4, 5, 6, 7];
    let mut cut = 0;
    while cut_and_check(blocks, &ops, cut, &variants, seed) {
        cut += 1;
    }
    assert!(cut > 50, "the workload reached only {cut} device ops");
    cut
}

#[test]
fn power_cut_at_every_write_small_records() {
    let cuts = sweep(BLOCKS, 1, 120, 300);
    eprintln!("{cuts} cut points x 8 variants");
}

#[test]
fn power_cut_at_every_write_large_records() {
    let cuts = sweep(BIG, 2, 80, 4000);
    eprintln!("{cuts} cut points x 8 variants");
}

#[test]
fn power_cut_at_every_write_mixed() {
    let cuts = sweep(BIG, 3, 150, 1200);
    eprintln!("{cuts} cut points x 8 variants");
}

#[test]
fn io_error_at_every_write_then_clean_shutdown() {
    let ops = workload(4, 100, 1500);
    let mut k = 0;
    loop {
        let mut dev = formatted(BIG);
        dev.fail_at = Some(dev.ops + k);
        let (mut store, _) = Store::open(dev).unwrap_or_else(|e| panic!("{e}"));
        let mut acked = Vec::new();
        let last_failed = run(&mut store, &ops, &mut acked, false);
        let mut dev = store.into_device();
        let reached = dev.fail_at.is_some_and(|f| dev.ops > f);
        let (_, l) = open_ok(dev.settle());
        let o = Outcome {
            acked,
            in_flight: last_failed,
        };
        check_state(&state_of(&l), &o, &format!("I/O error at op {k}"));
        if !reached {
            break;
        }
        k += 1;
    }
    assert!(k > 50);
}

#[test]
fn open_is_read_only_and_reads_errors_are_io() {
    let dev = formatted(BLOCKS);
    let before = dev.durable.clone();
    let (s, _) = Store::open(dev).unwrap_or_else(|e| panic!("{e}"));
    let mut dev = s.into_device();
    assert_eq!(dev.durable, before);
    assert!(dev.pending.is_empty());
    dev.dead = true;
    match Store::open(dev) {
        Err(e @ OpenError::Io(..)) => assert!(e.into_device().is_some()),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

fn sample_image() -> Vec<u8> {
    let mut s = Store::format(RamDisk::new(BS, BLOCKS)).unwrap();
    for i in 0..6 {
        s.append(&record(i, 100 * i)).unwrap();
    }
    s.compact(&encode_snapshot(&[record(0, 10), record(1, 20)]))
        .unwrap();
    for i in 0..4 {
        s.append(&record(10 + i, 700)).unwrap();
    }
    s.into_device().bytes().to_vec()
}

#[test]
fn every_flipped_bit_in_metadata_is_handled() {
    let img = sample_image();
    let (_, good) = match Store::open(RamDisk::from_bytes(BS, &img)) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    // Superblocks: every bit of their data; the other copy serves.
    for bit in 0..62 * 8 {
        for copy in 0..2 {
            let mut d = img.clone();
            d[copy * BS + bit / 8] ^= 1 << (bit % 8);
            match Store::open(RamDisk::from_bytes(BS, &d)) {
                Ok((_, l)) => assert_eq!(l, good, "bit {bit} of copy {copy}"),
                Err(e) => panic!("bit {bit} of copy {copy}: {e}"),
            }
        }
    }
    // The snapshot (generation 2, region B): a clear error, never a panic.
    let b = (2 + 48) * BS;
    for bit in (0..38 * 8).step_by(7) {
        let mut d = img.clone();
        d[b + bit / 8] ^= 1 << (bit % 8);
        match Store::open(RamDisk::from_bytes(BS, &d)) {
            Err(e @ OpenError::Corrupt(..)) => {
                assert!(format!("{e}").contains("snapshot"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a damaged snapshot loaded"),
        }
    }
    // Records: a flipped bit ends the log there (earlier records stay).
    let rec0 = b + BS;
    for bit in (0..4 * 2 * BS * 8).step_by(61) {
        let mut d = img.clone();
        d[rec0 + bit / 8] ^= 1 << (bit % 8);
        let (_, l) = match Store::open(RamDisk::from_bytes(BS, &d)) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        assert!(good.records.starts_with(&l.records));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..8192), magic in any::<bool>()) {
        let mut d = data;
        if magic && d.len() >= 12 {
            d[..12].copy_from_slice(mgmt::store::MAGIC);
        }
        let _ = Store::open(RamDisk::from_bytes(BS, &d)).map(|_| ());
    }

    #[test]
    fn random_sizes_survive_a_random_cut(
        sizes in proptest::collection::vec(0usize..5000, 1..40),
        compact_every in 2usize..12,
        cut in 0u64..400,
        variant in 0u64..8,
        seed in any::<u64>(),
    ) {
        let ops: Vec<Op> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| if i % compact_every == compact_every - 1 { Op::Compact } else { Op::Append(s) })
            .collect();
        cut_and_check(BIG, &ops, cut, &[variant], seed);
    }
}
