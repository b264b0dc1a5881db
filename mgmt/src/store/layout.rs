//! The on-disk structures: superblock (fixed little-endian layout) and record frames
//! (postcard header + payload + CRC-32). See the module documentation of `store`.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// First 12 bytes of a superblock.
pub const MAGIC: &[u8; 12] = b"IRONFLOW-CFG";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of a superblock that carry data (the rest of its sector is zero).
pub const SUPERBLOCK_LEN: usize = 62;
/// Largest postcard encoding of [`RecordHeader`] (three varints: 5 + 10 + 10 bytes).
pub const MAX_HEADER_LEN: usize = 25;
/// Trailing CRC-32 of a frame.
pub const CRC_LEN: usize = 4;

pub fn crc32(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

/// One superblock copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Incremented by every compaction; records carry it.
    pub generation: u64,
    /// The device's block size when formatted.
    pub block_size: u32,
    /// Sectors in each of the two regions (A starts at LBA 2, B right after A).
    pub region_sectors: u64,
    /// 0 = region A, 1 = region B.
    pub active: u8,
    /// Length and CRC-32 of the snapshot at the start of the active region (none after format).
    pub snapshot: Option<(u64, u32)>,
    /// Sequence number of the first record after the snapshot.
    pub first_seq: u64,
}

/// What a superblock sector holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbParse {
    NoMagic,
    BadCrc,
    /// Magic and checksum fine, but a format version this build does not read.
    Version(u32),
    /// Magic, checksum and version fine, but a field is out of range.
    BadField,
    Ok(Superblock),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Superblock {
    /// The whole sector (`block_size` bytes, at least [`SUPERBLOCK_LEN`]).
    pub fn encode(&self, block_size: usize) -> Vec<u8> {
        let mut s = alloc::vec![0u8; block_size];
        s[0..12].copy_from_slice(MAGIC);
        s[12..16].copy_from_slice(&VERSION.to_le_bytes());
        s[16..24].copy_from_slice(&self.generation.to_le_bytes());
        s[24..28].copy_from_slice(&self.block_size.to_le_bytes());
        s[28..36].copy_from_slice(&self.region_sectors.to_le_bytes());
        s[36] = self.active;
        let (has, len, crc) = match self.snapshot {
            Some((len, crc)) => (1, len, crc),
            None => (0, 0, 0),
        };
        s[37] = has;
        s[38..46].copy_from_slice(&len.to_le_bytes());
        s[46..50].copy_from_slice(&crc.to_le_bytes());
        s[50..58].copy_from_slice(&self.first_seq.to_le_bytes());
        let c = crc32(&s[0..58]);
        s[58..62].copy_from_slice(&c.to_le_bytes());
        s
    }

    pub fn decode(s: &[u8]) -> SbParse {
        if s.len() < SUPERBLOCK_LEN || &s[0..12] != MAGIC {
            return SbParse::NoMagic;
        }
        if crc32(&s[0..58]) != u32_at(s, 58) {
            return SbParse::BadCrc;
        }
        let version = u32_at(s, 12);
        if version != VERSION {
            return SbParse::Version(version);
        }
        let snapshot = match s[37] {
            0 => None,
            1 => Some((u64_at(s, 38), u32_at(s, 46))),
            _ => return SbParse::BadField,
        };
        if s[36] > 1 {
            return SbParse::BadField;
        }
        SbParse::Ok(Superblock {
            generation: u64_at(s, 16),
            block_size: u32_at(s, 24),
            region_sectors: u64_at(s, 28),
            active: s[36],
            snapshot,
            first_seq: u64_at(s, 50),
        })
    }
}

/// The postcard-encoded header in front of every record's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    pub len: u32,
    pub seq: u64,
    pub generation: u64,
}

/// Header + payload + CRC-32 (little-endian) over both, zero-padded to whole sectors.
pub fn encode_frame(header: &RecordHeader, payload: &[u8], block_size: usize) -> Vec<u8> {
    // Serializing three integers into a Vec cannot fail.
    let mut f: Vec<u8> = postcard::to_allocvec(header).unwrap_or_default();
    f.extend_from_slice(payload);
    let c = crc32(&f);
    f.extend_from_slice(&c.to_le_bytes());
    let padded = f.len().div_ceil(block_size) * block_size;
    f.resize(padded, 0);
    f
}

/// The header at the start of `sector` and its encoded length.
pub fn decode_header(sector: &[u8]) -> Option<(RecordHeader, usize)> {
    let head = &sector[..sector.len().min(MAX_HEADER_LEN)];
    let (h, rest) = postcard::take_from_bytes::<RecordHeader>(head).ok()?;
    Some((h, head.len() - rest.len()))
}

/// Sectors a frame with this header occupies.
pub fn frame_sectors(header_len: usize, payload_len: u64, block_size: usize) -> u64 {
    (header_len as u64 + payload_len + CRC_LEN as u64).div_ceil(block_size as u64)
}

/// Checks the CRC of a frame read whole (`frame` holds at least its sectors).
pub fn frame_payload(frame: &[u8], header_len: usize, payload_len: usize) -> Option<&[u8]> {
    let end = header_len + payload_len;
    let stored = frame.get(end..end + CRC_LEN)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(stored);
    if crc32(&frame[..end]) != u32::from_le_bytes(a) {
        return None;
    }
    Some(&frame[header_len..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_roundtrip_and_damage() {
        let sb = Superblock {
            generation: 7,
            block_size: 512,
            region_sectors: 100,
            active: 1,
            snapshot: Some((1234, 0xdead_beef)),
            first_seq: 42,
        };
        let mut s = sb.encode(512);
        assert_eq!(Superblock::decode(&s), SbParse::Ok(sb));
        s[20] ^= 1;
        assert_eq!(Superblock::decode(&s), SbParse::BadCrc);
        assert_eq!(Superblock::decode(&[0u8; 512]), SbParse::NoMagic);
    }

    #[test]
    fn frame_roundtrip() {
        let h = RecordHeader {
            len: 3,
            seq: u64::MAX,
            generation: u64::MAX,
        };
        let f = encode_frame(&h, b"abc", 128);
        assert_eq!(f.len(), 128);
        let (d, hl) = decode_header(&f).unwrap();
        assert_eq!(d, h);
        assert!(hl <= MAX_HEADER_LEN);
        assert_eq!(frame_payload(&f, hl, 3), Some(&b"abc"[..]));
        let mut g = f.clone();
        g[hl + 1] ^= 0x10;
        assert_eq!(frame_payload(&g, hl, 3), None);
    }
}
