use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn disk() -> RamDisk {
    RamDisk::new(512, 2 + 2 * 64)
}

fn reopen(d: RamDisk) -> (Store<RamDisk>, Loaded) {
    match Store::open(d) {
        Ok(x) => x,
        Err(e) => panic!("open: {e}"),
    }
}

#[test]
fn blank_format_append_reopen() {
    let d = disk();
    let d = match Store::open(d) {
        Err(OpenError::Blank(d)) => d,
        other => panic!("{:?}", other.map(|_| ())),
    };
    let mut s = Store::format(d).unwrap();
    s.append(b"one").unwrap();
    s.append(&[7u8; 1500]).unwrap();
    s.append(b"").unwrap();
    let (s, l) = reopen(s.into_device());
    assert_eq!(l.snapshot, None);
    assert_eq!(
        l.records,
        vec![b"one".to_vec(), vec![7u8; 1500], Vec::new()]
    );
    assert!(!l.dropped_tail);
    assert_eq!(s.stats().records, 3);
    assert_eq!(s.stats().bytes, 1503);
}

#[test]
fn compaction_replaces_records() {
    let mut s = Store::format(disk()).unwrap();
    for i in 0..5u8 {
        s.append(&[i; 100]).unwrap();
    }
    s.compact(b"snapshot").unwrap();
    s.append(b"after").unwrap();
    assert_eq!(s.stats().compactions, 1);
    assert_eq!(s.stats().generation, 2);
    let (mut s, l) = reopen(s.into_device());
    assert_eq!(l.snapshot.as_deref(), Some(&b"snapshot"[..]));
    assert_eq!(l.records, vec![b"after".to_vec()]);
    // Twice more: back to region A, whose old frames (generation 1) must not come back.
    s.compact(b"s2").unwrap();
    s.compact(b"s3").unwrap();
    let (_, l) = reopen(s.into_device());
    assert_eq!(l.snapshot.as_deref(), Some(&b"s3"[..]));
    assert!(l.records.is_empty());
}

#[test]
fn full_and_should_compact() {
    let mut s = Store::format(disk()).unwrap();
    assert!(!s.should_compact());
    let mut n = 0;
    loop {
        match s.append(&[1u8; 400]) {
            Ok(()) => n += 1,
            Err(StoreError::Full { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        if n == 50 {
            assert!(s.should_compact());
        }
    }
    assert_eq!(n, 64);
    s.compact(b"small").unwrap();
    s.append(&[1u8; 400]).unwrap();
    // A snapshot bigger than a region cannot be written.
    assert!(matches!(
        s.compact(&[0u8; 64 * 512 + 1]),
        Err(StoreError::Full { .. })
    ));
    let (_, l) = reopen(s.into_device());
    assert_eq!(l.records.len(), 1);
}

#[test]
fn foreign_and_corrupt() {
    let mut d = disk();
    d.bytes_mut()[510] = 0x55;
    d.bytes_mut()[511] = 0xaa;
    match Store::open(d) {
        Err(e @ OpenError::Foreign(..)) => {
            let m = alloc::format!("{e}");
            assert!(m.contains("not an ironflow configuration"), "{m}");
            assert!(m.contains("MBR"), "{m}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Damage in one superblock copy: the other one serves.
    let mut s = Store::format(disk()).unwrap();
    s.append(b"x").unwrap();
    s.compact(b"snap").unwrap();
    s.append(b"y").unwrap();
    let mut d = s.into_device();
    d.bytes_mut()[20] ^= 4;
    let (_, l) = reopen(d.clone());
    assert_eq!(l.records, vec![b"y".to_vec()]);
    // Both: corrupt.
    d.bytes_mut()[512 + 20] ^= 4;
    assert!(matches!(Store::open(d), Err(OpenError::Corrupt(..))));
}

#[test]
fn damaged_snapshot_is_corrupt_not_panic() {
    let mut s = Store::format(disk()).unwrap();
    s.compact(&[9u8; 700]).unwrap();
    let mut d = s.into_device();
    // Generation 2 lives in region B.
    let b = (2 + 64) * 512;
    d.bytes_mut()[b + 3] ^= 1;
    match Store::open(d) {
        Err(e @ OpenError::Corrupt(..)) => {
            assert!(alloc::format!("{e}").contains("snapshot"));
            assert!(e.into_device().is_some());
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_version_is_foreign() {
    let mut s = Store::format(disk()).unwrap();
    s.append(b"x").unwrap();
    let mut d = s.into_device();
    for c in 0..2 {
        let sec = &mut d.bytes_mut()[c * 512..c * 512 + 512];
        sec[12] = 2;
        let crc = layout::crc32(&sec[0..58]);
        sec[58..62].copy_from_slice(&crc.to_le_bytes());
    }
    match Store::open(d) {
        Err(e @ OpenError::Foreign(..)) => assert!(alloc::format!("{e}").contains("version 2")),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn format_clears_an_old_store() {
    let mut s = Store::format(disk()).unwrap();
    for i in 0..10u8 {
        s.append(&[i]).unwrap();
    }
    let mut d = s.into_device();
    // Superblocks lost: corrupt; formatting again must not bring the old records back.
    d.bytes_mut()[..1024].fill(0xff);
    let d = match Store::open(d) {
        Err(e) => e.into_device().unwrap(),
        Ok(_) => panic!("opened without superblocks"),
    };
    let s = Store::format(d).unwrap();
    let (_, l) = reopen(s.into_device());
    assert!(l.records.is_empty());
}

#[test]
fn tiny_devices() {
    assert!(matches!(
        Store::format(RamDisk::new(512, 9)),
        Err(StoreError::TooSmall { .. })
    ));
    assert!(Store::open(RamDisk::new(64, 100)).is_err());
    assert!(matches!(
        Store::open(RamDisk::new(512, 1)),
        Err(OpenError::Foreign(..))
    ));
    let s = Store::format(RamDisk::new(512, 10)).unwrap();
    assert!(reopen(s.into_device()).1.records.is_empty());
}
