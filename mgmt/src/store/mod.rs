//! The configuration store: a power-cut-safe append-only log of opaque records with
//! snapshots (compaction), on any [`BlockDevice`] (virtio-blk in the appliance, [`RamDisk`]
//! in tests and fuzzing).
//!
//! # On-disk format (version 1)
//!
//! All integers little-endian; `S` is the device's block (sector) size, at least 128 bytes.
//!
//! ```text
//! LBA 0            superblock copy 0
//! LBA 1            superblock copy 1
//! LBA 2 ..         region A (R sectors)
//! LBA 2+R ..       region B (R sectors)     R = min((blocks-2)/2, 16 MiB / S)
//! ```
//!
//! **Superblock** (one sector, rest zero): `"IRONFLOW-CFG"` (12 bytes), version u32 (= 1),
//! generation u64, block size u32, R u64, active region u8 (0 = A, 1 = B), has-snapshot u8,
//! snapshot length u64, snapshot CRC-32 u32, first record sequence u64, CRC-32 of the preceding
//! 58 bytes. Both copies normally hold the same superblock; on open the valid copy with the
//! highest generation wins (a copy whose checksum fails is ignored; if the winner's snapshot is
//! damaged, the other copy is tried).
//!
//! **Active region**: the snapshot (if any) from the region's first sector, zero-padded to whole
//! sectors, then the records, each starting on a fresh sector. A **record frame** is the
//! postcard encoding of `RecordHeader { len: u32, seq: u64, generation: u64 }`, the payload
//! (`len` bytes), the CRC-32 (IEEE) of header + payload, zero padding to whole sectors; a frame
//! may span any number of sectors. On open, records are read from after the snapshot while the
//! header decodes, its generation is the superblock's, its sequence is the next one (the first
//! is the superblock's `first_seq`), the frame fits in the region and its CRC matches. The
//! first frame that fails ends the log; if its header was right but the frame is cut short or
//! its CRC fails, it is a torn last write and `Loaded::dropped_tail` is set.
//!
//! # Durability and power cuts
//!
//! - **Append** encodes one frame, writes exactly the sectors it occupies (whole sectors, one
//!   `write`) and flushes; it returns Ok only after the flush. Because every record starts on a
//!   fresh sector, *no sector that holds acknowledged data is ever written again* while it is
//!   part of the log, so a torn append (any subset of its sectors persisted, in any order, or a
//!   sector half old/half new) can only damage the unacknowledged record itself, which the CRC
//!   (or the header check) rejects; the next append then overwrites it. The price is padding:
//!   a small record costs one sector (512 bytes), and a 16 MiB region holds tens of thousands
//!   of them between compactions — the configuration database is small, so simplicity wins
//!   over density (a ping-pong tail sector would save space but doubles the states to prove).
//! - **Compaction** writes the snapshot into the *inactive* region and flushes; then writes the
//!   new superblock (generation + 1, pointing at that region, `first_seq` = the next sequence)
//!   into one copy and flushes, then into the other copy and flushes. The copy written first is
//!   the one *not* holding the current generation, so at every instant one valid copy points at
//!   an intact region: a cut before the first superblock flush leaves the old state (the old
//!   region is untouched); after it, the new one. Stale frames left in a reused region carry an
//!   older generation and end the log.
//! - A write or flush error leaves the in-memory position unchanged (the record was not
//!   acknowledged; the next append overwrites what may have reached the disk). An error while
//!   writing the superblocks leaves the outcome on disk unknown: the store then rewrites them
//!   before doing anything else (appends fail until that succeeds).
//! - **Format** zeroes both regions (only sectors that are not already zero, last to first,
//!   superblocks first), then writes both superblocks (generation 1), so frames of an earlier
//!   store can never be mistaken for new ones.
//!
//! A disk is *blank* when its first 128 KiB (or all of it, if smaller) are zero, and *foreign*
//! when it has no superblock magic but other data there (or a format version this build does
//! not read); the caller decides whether to format either (never done implicitly).
//!
//! Known limit: after a torn append is dropped and a *shorter* record overwrites it, the sectors
//! beyond the new record still hold the torn record's tail; only a payload that itself embeds a
//! valid frame with the next sequence number, generation and CRC at a sector boundary could be
//! mistaken for a record there.

mod layout;
mod ram;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use layout::{MAGIC, VERSION};
use layout::{
    RecordHeader, SbParse, Superblock, crc32, decode_header, encode_frame, frame_payload,
    frame_sectors,
};
pub use ram::RamDisk;

/// A block device: `read`/`write` take buffers of whole blocks; a write is durable only after
/// a successful `flush`.
pub trait BlockDevice {
    fn block_size(&self) -> usize;
    fn num_blocks(&self) -> u64;
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// A failed block operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// Blocks `lba .. lba + blocks` are not all on the device.
    OutOfRange { lba: u64, blocks: u64 },
    /// A buffer that is not a whole number of blocks.
    BadLength(usize),
    /// The device reported an error (its words).
    Device(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { lba, blocks } => {
                write!(
                    f,
                    "blocks {lba}..{} are beyond the end of the disk",
                    lba + blocks
                )
            }
            Self::BadLength(n) => write!(f, "a transfer of {n} bytes is not whole blocks"),
            Self::Device(s) => write!(f, "device error: {s}"),
        }
    }
}

/// What [`Store::open`] read: the latest snapshot and every record appended after it, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub snapshot: Option<Vec<u8>>,
    pub records: Vec<Vec<u8>>,
    /// A torn last write (an unacknowledged record) was found after the records and ignored.
    pub dropped_tail: bool,
}

/// Why [`Store::open`] did not open the store. Every variant gives the device back.
pub enum OpenError<D> {
    /// Never formatted: the start of the disk is all zeros.
    Blank(D),
    /// Something that is not an ironflow configuration (what it looks like).
    Foreign(D, String),
    /// An ironflow configuration that cannot be loaded (what is wrong).
    Corrupt(D, String),
    /// The disk could not be read.
    Io(D, BlockError),
}

impl<D> OpenError<D> {
    pub fn into_device(self) -> Option<D> {
        match self {
            Self::Blank(d) | Self::Foreign(d, _) | Self::Corrupt(d, _) | Self::Io(d, _) => Some(d),
        }
    }
}

impl<D> fmt::Display for OpenError<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blank(_) => f.write_str("the configuration disk is blank (never formatted)"),
            Self::Foreign(_, what) => write!(
                f,
                "the configuration disk holds something that is not an ironflow configuration ({what})"
            ),
            Self::Corrupt(_, what) => {
                write!(
                    f,
                    "the configuration on the configuration disk is damaged: {what}"
                )
            }
            Self::Io(_, e) => write!(f, "the configuration disk cannot be read: {e}"),
        }
    }
}

impl<D> fmt::Debug for OpenError<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Blank(_) => "Blank",
            Self::Foreign(..) => "Foreign",
            Self::Corrupt(..) => "Corrupt",
            Self::Io(..) => "Io",
        };
        write!(f, "OpenError::{kind}({self})")
    }
}

/// A failed [`Store::format`], [`Store::append`] or [`Store::compact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    Io(BlockError),
    /// No room: the record (or snapshot) needs `need` bytes on disk, `free` are left. For an
    /// append, compaction may make room; for a compaction, nothing can.
    Full {
        need: u64,
        free: u64,
    },
    /// The device is too small or its blocks are (`blocks` of `block_size` bytes).
    TooSmall {
        blocks: u64,
        block_size: usize,
    },
}

impl From<BlockError> for StoreError {
    fn from(e: BlockError) -> Self {
        StoreError::Io(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Full { need, free } => {
                write!(
                    f,
                    "the configuration disk is full ({need} bytes needed, {free} free)"
                )
            }
            Self::TooSmall { blocks, block_size } => write!(
                f,
                "the configuration disk is too small ({blocks} blocks of {block_size} bytes)"
            ),
        }
    }
}

/// Counters for the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records after the snapshot.
    pub records: u64,
    /// Payload bytes of those records.
    pub bytes: u64,
    /// Compactions done since open.
    pub compactions: u64,
    /// Bytes left in the active region.
    pub free: u64,
    pub generation: u64,
    pub snapshot_bytes: u64,
}

/// Largest region.
pub const MAX_REGION_BYTES: u64 = 16 << 20;
const MIN_BLOCK_SIZE: usize = 128;
const MIN_REGION_SECTORS: u64 = 4;
const FIRST_REGION_LBA: u64 = 2;
/// Bytes at the start of the disk that must be zero for it to count as blank.
const BLANK_CHECK_BYTES: u64 = 128 << 10;
/// Bytes read (or zeroed) at a time.
const CHUNK_BYTES: u64 = 64 << 10;
/// Compaction is due when the log exceeds this many times the snapshot (or this floor).
const COMPACT_RATIO: u64 = 4;
const COMPACT_FLOOR: u64 = 64 << 10;

/// The store over its device.
pub struct Store<D: BlockDevice> {
    dev: D,
    bs: usize,
    sb: Superblock,
    /// What each superblock copy holds on disk as far as we know (`None`: invalid/unknown).
    copies: [Option<u64>; 2],
    /// Highest generation seen in any superblock with a valid checksum.
    max_generation: u64,
    next_lba: u64,
    next_seq: u64,
    records: u64,
    bytes: u64,
    compactions: u64,
    /// A compaction whose snapshot is durable but whose superblocks may not be.
    pending: Option<Superblock>,
}

fn region_start(sb: &Superblock, region: u8) -> u64 {
    FIRST_REGION_LBA + region as u64 * sb.region_sectors
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// What a non-ironflow disk looks like, from its first blocks.
fn describe_foreign(head: &[u8]) -> String {
    let at = |o: usize, n: usize| head.get(o..o + n);
    if at(512, 8) == Some(b"EFI PART") {
        return String::from("a GPT partition table");
    }
    if at(1080, 2) == Some(&[0x53, 0xef]) {
        return String::from("an ext2/3/4 file system");
    }
    if at(0, 4) == Some(b"XFSB") {
        return String::from("an XFS file system");
    }
    if at(510, 2) == Some(&[0x55, 0xaa]) {
        return String::from("an MBR partition table or boot sector");
    }
    let n = head.len().min(8);
    let mut s = String::from("unrecognized data, starting");
    for b in &head[..n] {
        s.push_str(&format!(" {b:02x}"));
    }
    s
}

/// Reads sectors through a window of up to [`CHUNK_BYTES`].
struct Reader {
    start: u64,
    data: Vec<u8>,
}

impl Reader {
    fn new() -> Self {
        Reader {
            start: 0,
            data: Vec::new(),
        }
    }

    /// Sectors `lba .. lba + n` (all below `end`).
    fn get<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        bs: usize,
        lba: u64,
        n: u64,
        end: u64,
    ) -> Result<&[u8], BlockError> {
        let have = (self.data.len() / bs) as u64;
        if lba < self.start || lba + n > self.start + have {
            let chunk = (CHUNK_BYTES / bs as u64).max(1);
            let count = n.max(chunk).min(end - lba).max(n);
            self.data.clear();
            self.data.resize(count as usize * bs, 0);
            dev.read(lba, &mut self.data)?;
            self.start = lba;
        }
        let off = (lba - self.start) as usize * bs;
        Ok(&self.data[off..off + n as usize * bs])
    }
}

enum Attempt {
    Loaded(Loaded, u64, u64, u64, u64),
    Bad(String),
}

impl<D: BlockDevice> Store<D> {
    /// Opens a formatted store and reads it; see [`OpenError`] for the alternatives.
    pub fn open(mut dev: D) -> Result<(Store<D>, Loaded), OpenError<D>> {
        let bs = dev.block_size();
        let blocks = dev.num_blocks();
        if bs < MIN_BLOCK_SIZE || blocks < 2 {
            return Err(OpenError::Foreign(
                dev,
                format!("a disk of {blocks} blocks of {bs} bytes"),
            ));
        }
        let mut head = alloc::vec![0u8; 2 * bs];
        if let Err(e) = dev.read(0, &mut head) {
            return Err(OpenError::Io(dev, e));
        }
        let parsed = [
            Superblock::decode(&head[..bs]),
            Superblock::decode(&head[bs..]),
        ];
        let mut good: Vec<(usize, Superblock)> = Vec::new();
        for (i, p) in parsed.iter().enumerate() {
            if let SbParse::Ok(sb) = p {
                good.push((i, *sb));
            }
        }
        if good.is_empty() {
            if parsed.iter().all(|p| *p == SbParse::NoMagic) {
                // Blank or foreign: look at the start of the disk.
                let n = (BLANK_CHECK_BYTES / bs as u64).max(1).min(blocks);
                let mut buf = alloc::vec![0u8; n as usize * bs];
                if let Err(e) = dev.read(0, &mut buf) {
                    return Err(OpenError::Io(dev, e));
                }
                if is_zero(&buf) {
                    return Err(OpenError::Blank(dev));
                }
                let what = describe_foreign(&buf);
                return Err(OpenError::Foreign(dev, what));
            }
            if let Some(v) = parsed.iter().find_map(|p| match p {
                SbParse::Version(v) => Some(*v),
                _ => None,
            }) {
                return Err(OpenError::Foreign(
                    dev,
                    format!(
                        "an ironflow configuration of format version {v}; this build reads version {VERSION}"
                    ),
                ));
            }
            return Err(OpenError::Corrupt(
                dev,
                String::from("both superblocks are damaged (checksum or field out of range)"),
            ));
        }
        let max_generation = good.iter().map(|(_, sb)| sb.generation).max().unwrap_or(0);
        // Newest first; the same superblock in both copies is tried once.
        good.sort_by_key(|g| core::cmp::Reverse(g.1.generation));
        let mut problems: Vec<String> = Vec::new();
        let mut tried: Vec<Superblock> = Vec::new();
        for (_, sb) in &good {
            if tried.contains(sb) {
                continue;
            }
            tried.push(*sb);
            match Self::try_load(&mut dev, bs, blocks, sb) {
                Err(e) => return Err(OpenError::Io(dev, e)),
                Ok(Attempt::Bad(why)) => {
                    problems.push(format!("generation {}: {why}", sb.generation));
                }
                Ok(Attempt::Loaded(loaded, next_lba, next_seq, records, bytes)) => {
                    if !problems.is_empty() {
                        log::warn!(
                            "config store: {}; fell back to generation {}",
                            problems.join("; "),
                            sb.generation
                        );
                    }
                    let mut copies = [None, None];
                    for (i, p) in parsed.iter().enumerate() {
                        if let SbParse::Ok(c) = p
                            && c == sb
                        {
                            copies[i] = Some(c.generation);
                        }
                    }
                    let store = Store {
                        dev,
                        bs,
                        sb: *sb,
                        copies,
                        max_generation,
                        next_lba,
                        next_seq,
                        records,
                        bytes,
                        compactions: 0,
                        pending: None,
                    };
                    return Ok((store, loaded));
                }
            }
        }
        Err(OpenError::Corrupt(dev, problems.join("; ")))
    }

    /// Loads the state one superblock describes; `Bad` when it does not hold together.
    fn try_load(
        dev: &mut D,
        bs: usize,
        blocks: u64,
        sb: &Superblock,
    ) -> Result<Attempt, BlockError> {
        if sb.block_size as usize != bs {
            return Ok(Attempt::Bad(format!(
                "formatted with {}-byte blocks, the disk has {bs}-byte blocks",
                sb.block_size
            )));
        }
        let fits = sb
            .region_sectors
            .checked_mul(2)
            .and_then(|r| r.checked_add(FIRST_REGION_LBA))
            .is_some_and(|end| end <= blocks);
        if sb.region_sectors < MIN_REGION_SECTORS || !fits {
            return Ok(Attempt::Bad(format!(
                "regions of {} blocks do not fit a disk of {blocks} blocks",
                sb.region_sectors
            )));
        }
        let start = region_start(sb, sb.active);
        let end = start + sb.region_sectors;
        let mut reader = Reader::new();
        let mut lba = start;
        let mut snapshot = None;
        if let Some((len, crc)) = sb.snapshot {
            let n = len.div_ceil(bs as u64);
            if n > sb.region_sectors {
                return Ok(Attempt::Bad(format!(
                    "a snapshot of {len} bytes does not fit its region"
                )));
            }
            let data = reader.get(dev, bs, start, n, end)?;
            let snap = &data[..len as usize];
            if crc32(snap) != crc {
                return Ok(Attempt::Bad(String::from(
                    "the snapshot fails its checksum",
                )));
            }
            snapshot = Some(snap.to_vec());
            lba += n;
        }
        let mut records = Vec::new();
        let mut seq = sb.first_seq;
        let mut bytes = 0u64;
        let mut dropped_tail = false;
        while lba < end {
            let first = reader.get(dev, bs, lba, 1, end)?;
            let Some((h, hl)) = decode_header(first) else {
                break;
            };
            if h.generation != sb.generation || h.seq != seq {
                break;
            }
            let n = frame_sectors(hl, h.len as u64, bs);
            if n > end - lba {
                dropped_tail = true;
                break;
            }
            let frame = reader.get(dev, bs, lba, n, end)?;
            let Some(payload) = frame_payload(frame, hl, h.len as usize) else {
                dropped_tail = true;
                break;
            };
            bytes += payload.len() as u64;
            records.push(payload.to_vec());
            lba += n;
            seq += 1;
        }
        let count = records.len() as u64;
        Ok(Attempt::Loaded(
            Loaded {
                snapshot,
                records,
                dropped_tail,
            },
            lba,
            seq,
            count,
            bytes,
        ))
    }

    /// Formats the device (everything on it is lost) and opens the empty store.
    pub fn format(mut dev: D) -> Result<Store<D>, StoreError> {
        let bs = dev.block_size();
        let blocks = dev.num_blocks();
        let too_small = StoreError::TooSmall {
            blocks,
            block_size: bs,
        };
        if bs < MIN_BLOCK_SIZE || blocks < FIRST_REGION_LBA {
            return Err(too_small);
        }
        let region_sectors = ((blocks - FIRST_REGION_LBA) / 2).min(MAX_REGION_BYTES / bs as u64);
        if region_sectors < MIN_REGION_SECTORS {
            return Err(too_small);
        }
        let zero = alloc::vec![0u8; bs];
        dev.write(0, &zero)?;
        dev.write(1, &zero)?;
        dev.flush()?;
        // Zero the regions, last chunk first (so a blank start means the rest is zero too).
        let chunk = (CHUNK_BYTES / bs as u64).max(1);
        let end = FIRST_REGION_LBA + 2 * region_sectors;
        let mut buf = Vec::new();
        let mut hi = end;
        while hi > FIRST_REGION_LBA {
            let lo = hi.saturating_sub(chunk).max(FIRST_REGION_LBA);
            buf.clear();
            buf.resize((hi - lo) as usize * bs, 0);
            dev.read(lo, &mut buf)?;
            if !is_zero(&buf) {
                buf.fill(0);
                dev.write(lo, &buf)?;
            }
            hi = lo;
        }
        dev.flush()?;
        let sb = Superblock {
            generation: 1,
            block_size: bs as u32,
            region_sectors,
            active: 0,
            snapshot: None,
            first_seq: 0,
        };
        let mut store = Store {
            dev,
            bs,
            sb,
            copies: [None, None],
            max_generation: 0,
            next_lba: FIRST_REGION_LBA,
            next_seq: 0,
            records: 0,
            bytes: 0,
            compactions: 0,
            pending: Some(sb),
        };
        store.settle()?;
        Ok(store)
    }

    /// Writes the pending superblock into both copies (the one not holding the current
    /// generation first), then adopts it.
    fn settle(&mut self) -> Result<(), StoreError> {
        let Some(new) = self.pending else {
            return Ok(());
        };
        let sector = new.encode(self.bs);
        let mut order = [0usize, 1];
        if self.copies[0] == Some(self.sb.generation) && self.copies[1] != Some(self.sb.generation)
        {
            order = [1, 0];
        }
        for i in order {
            if self.copies[i] == Some(new.generation) {
                continue;
            }
            self.copies[i] = None;
            self.dev.write(i as u64, &sector)?;
            self.dev.flush()?;
            self.copies[i] = Some(new.generation);
        }
        self.max_generation = self.max_generation.max(new.generation);
        let start = region_start(&new, new.active);
        let snap_sectors = new
            .snapshot
            .map_or(0, |(len, _)| len.div_ceil(self.bs as u64));
        self.next_lba = start + snap_sectors;
        self.next_seq = new.first_seq;
        self.records = 0;
        self.bytes = 0;
        if self.sb.generation != new.generation && new.snapshot.is_some() {
            self.compactions += 1;
        }
        self.sb = new;
        self.pending = None;
        Ok(())
    }

    fn region_end(&self) -> u64 {
        region_start(&self.sb, self.sb.active) + self.sb.region_sectors
    }

    fn free_bytes(&self) -> u64 {
        (self.region_end() - self.next_lba) * self.bs as u64
    }

    /// Appends one record; durable (written and flushed) when this returns Ok.
    pub fn append(&mut self, record: &[u8]) -> Result<(), StoreError> {
        self.settle()?;
        let header = RecordHeader {
            len: u32::try_from(record.len()).map_err(|_| StoreError::Full {
                need: record.len() as u64,
                free: self.free_bytes(),
            })?,
            seq: self.next_seq,
            generation: self.sb.generation,
        };
        let frame = encode_frame(&header, record, self.bs);
        let n = (frame.len() / self.bs) as u64;
        if n > self.region_end() - self.next_lba {
            return Err(StoreError::Full {
                need: frame.len() as u64,
                free: self.free_bytes(),
            });
        }
        self.dev.write(self.next_lba, &frame)?;
        self.dev.flush()?;
        self.next_lba += n;
        self.next_seq += 1;
        self.records += 1;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Replaces the snapshot and every record with `snapshot` (the whole state). A power cut
    /// at any point leaves either the old state or the new one.
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.settle()?;
        let bs = self.bs as u64;
        let n = (snapshot.len() as u64).div_ceil(bs);
        if n > self.sb.region_sectors {
            return Err(StoreError::Full {
                need: n * bs,
                free: self.sb.region_sectors * bs,
            });
        }
        let target = 1 - self.sb.active;
        let start = region_start(&self.sb, target);
        if n > 0 {
            let mut buf = Vec::with_capacity(n as usize * self.bs);
            buf.extend_from_slice(snapshot);
            buf.resize(n as usize * self.bs, 0);
            self.dev.write(start, &buf)?;
        }
        self.dev.flush()?;
        self.pending = Some(Superblock {
            generation: self.max_generation.max(self.sb.generation) + 1,
            block_size: self.sb.block_size,
            region_sectors: self.sb.region_sectors,
            active: target,
            snapshot: Some((snapshot.len() as u64, crc32(snapshot))),
            first_seq: self.next_seq,
        });
        self.settle()
    }

    /// Whether compaction is due: the log is large next to the snapshot, or the region is
    /// three-quarters full.
    pub fn should_compact(&self) -> bool {
        if self.pending.is_some() {
            return true;
        }
        if self.records == 0 {
            return false;
        }
        let bs = self.bs as u64;
        let start = region_start(&self.sb, self.sb.active);
        let snap = self.sb.snapshot.map_or(0, |(len, _)| len.div_ceil(bs) * bs);
        let log = (self.next_lba - start) * bs - snap;
        let region = self.sb.region_sectors * bs;
        log >= COMPACT_RATIO * snap.max(COMPACT_FLOOR) || self.free_bytes() * 4 < region
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            records: self.records,
            bytes: self.bytes,
            compactions: self.compactions,
            free: self.free_bytes(),
            generation: self.sb.generation,
            snapshot_bytes: self.sb.snapshot.map_or(0, |(len, _)| len),
        }
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn into_device(self) -> D {
        self.dev
    }
}

#[cfg(test)]
mod tests;
