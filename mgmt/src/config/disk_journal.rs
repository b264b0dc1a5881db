//! The configuration disk as the OVSDB journal: every committed transaction is one store
//! record (a postcard-encoded [`ChangeSet`]), durable before the client hears of it;
//! compaction writes the whole database as one snapshot record; loading replays both.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::service::ConfigJournal;
use crate::ovsdb::{ChangeSet, Database, Journal};
use crate::store::{BlockDevice, Loaded, Store};

/// The journal on the configuration disk: every committed transaction is one record (a
/// postcard-encoded [`ChangeSet`]), durable before the client hears of it; compaction writes
/// the whole database as one snapshot record.
pub struct StoreJournal<D: BlockDevice> {
    store: Store<D>,
    pub commits: u64,
    pub bytes: u64,
    pub failures: u64,
    pub compactions: u64,
}

impl<D: BlockDevice> StoreJournal<D> {
    pub fn new(store: Store<D>) -> Self {
        StoreJournal {
            store,
            commits: 0,
            bytes: 0,
            failures: 0,
            compactions: 0,
        }
    }

    /// Compacts when the store asks for it (called from the slow path).
    pub fn maintain(&mut self, db: &Database) -> Result<bool, String> {
        if !self.store.should_compact() {
            return Ok(false);
        }
        let snap = postcard::to_allocvec(&db.snapshot()).map_err(|e| format!("encode: {e}"))?;
        self.store
            .compact(&snap)
            .map_err(|e| format!("compaction failed: {e}"))?;
        self.compactions += 1;
        Ok(true)
    }

    pub fn store(&self) -> &Store<D> {
        &self.store
    }
}

impl<D: BlockDevice> Journal for StoreJournal<D> {
    fn commit(&mut self, changes: &ChangeSet) -> Result<(), String> {
        let bytes = postcard::to_allocvec(changes).map_err(|e| format!("encode: {e}"))?;
        match self.store.append(&bytes) {
            Ok(()) => {
                self.commits += 1;
                self.bytes += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failures += 1;
                Err(format!("configuration disk: {e}"))
            }
        }
    }
}

impl<D: BlockDevice> ConfigJournal for StoreJournal<D> {
    fn maintain(&mut self, db: &Database) -> Result<bool, String> {
        StoreJournal::maintain(self, db)
    }
    fn describe(&self) -> String {
        format!(
            "config disk: {} commits, {} bytes, {} failures, {} compactions; {:?}",
            self.commits,
            self.bytes,
            self.failures,
            self.compactions,
            self.store.stats()
        )
    }
}

/// What loading found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub snapshot: bool,
    pub records: usize,
    /// Records that did not decode or apply (skipped; the console says so).
    pub bad_records: usize,
    pub errors: Vec<String>,
}

/// Replays what the store read into `db`: the snapshot, then every record after it.
pub fn load(db: &mut Database, loaded: &Loaded) -> LoadReport {
    let mut r = LoadReport::default();
    let mut one = |bytes: &[u8], r: &mut LoadReport| match postcard::from_bytes::<ChangeSet>(bytes)
    {
        Ok(cs) => {
            if let Err(e) = db.apply(&cs) {
                r.bad_records += 1;
                r.errors.push(format!("{e}"));
            }
        }
        Err(e) => {
            r.bad_records += 1;
            r.errors.push(format!("record does not decode: {e}"));
        }
    };
    if let Some(s) = &loaded.snapshot {
        r.snapshot = true;
        one(s, &mut r);
    }
    for rec in &loaded.records {
        r.records += 1;
        one(rec, &mut r);
    }
    r
}
