//! The switch's side of OVSDB (the part ovs-vswitchd plays in Open vSwitch): the database
//! server on the management port, its durable journal on the configuration disk, and the
//! loop that turns committed configuration into a [`Plan`] for the switch and writes the
//! switch's status back.
//!
//! Order of events for `ovs-vsctl add-port br0 eth3` (without `--no-wait`): the client's
//! transaction (which also increments `next_cfg`) is appended to the journal and flushed, then
//! answered; the next [`ConfigService::poll_config`] sees the new configuration and returns a
//! plan; the switch applies it and calls [`ConfigService::applied`], which writes the new
//! interface's `ofport` and `cur_cfg = next_cfg` in one transaction; ovs-vsctl, monitoring
//! `cur_cfg`, returns.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

use super::SwitchConfig;
use super::ovsdb::{
    ControllerRuntime, InterfaceRuntime, StatusWriter, bootstrap_ops, config_key, has_root,
    read_config,
};
use super::plan::{InterfaceStatus, NicInfo, Plan, plan};
use crate::cmdline::BootSettings;
use crate::netif::{ConnKind, StreamHandler};
use crate::ovsdb::{Database, Journal, NoJournal, OvsdbServer};

/// A journal as the switch keeps it: durable commits plus slow-path maintenance.
pub trait ConfigJournal: Journal {
    /// Compaction and the like; `Ok(true)` when something was done.
    fn maintain(&mut self, _db: &Database) -> Result<bool, String> {
        Ok(false)
    }
    /// One line for the console.
    fn describe(&self) -> String;
}

impl ConfigJournal for NoJournal {
    fn describe(&self) -> String {
        String::from("no config disk: configuration is kept in memory only")
    }
}

/// The OVSDB server wired to the switch.
pub struct ConfigService {
    pub server: OvsdbServer,
    pub journal: Box<dyn ConfigJournal>,
    status: StatusWriter,
    /// The configuration the switch runs (its key, see `config_key`).
    applied: Option<SwitchConfig>,
    seen_generation: Option<u64>,
    /// The last plan (its interface statuses are written back).
    pub plan: Plan,
    /// `next_cfg` of the configuration read last.
    next_cfg: i64,
    /// Internal transactions that failed (status write-back).
    pub status_errors: u64,
}

impl ConfigService {
    pub fn new(server: OvsdbServer, journal: Box<dyn ConfigJournal>) -> ConfigService {
        ConfigService {
            server,
            journal,
            status: StatusWriter::new(),
            applied: None,
            seen_generation: None,
            plan: Plan::default(),
            next_cfg: 0,
            status_errors: 0,
        }
    }

    pub fn db(&self) -> &Database {
        self.server.db()
    }

    /// First boot: creates the root row and the bootstrap bridge from the command line when
    /// the database has no root row. Returns whether it did.
    pub fn bootstrap(
        &mut self,
        settings: &BootSettings,
        nics: &[NicInfo],
        now_ms: u64,
    ) -> Result<bool, String> {
        if has_root(self.server.db()) {
            return Ok(false);
        }
        let ops = bootstrap_ops(settings, nics);
        self.transact(ops, now_ms)?;
        Ok(true)
    }

    fn transact(&mut self, ops: Vec<Value>, now_ms: u64) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(Value::String(self.server.db().name().into()));
        params.extend(ops);
        match self
            .server
            .transact_internal(Value::Array(params), now_ms, &mut *self.journal)
        {
            Ok(_) => Ok(()),
            Err(e) => {
                self.status_errors += 1;
                Err(format!("{e}"))
            }
        }
    }

    /// The transport's handler for OVSDB connections.
    pub fn streams(&mut self) -> OvsdbStreams<'_> {
        OvsdbStreams {
            server: &mut self.server,
            journal: &mut *self.journal,
        }
    }

    /// Timers of the server (wait timeouts, blocked waits) and the journal's maintenance.
    pub fn poll(&mut self, now_ms: u64) {
        self.server.poll(now_ms, &mut *self.journal);
    }

    /// Slow path: compaction of the journal.
    pub fn maintain(&mut self) -> Result<bool, String> {
        self.journal.maintain(self.server.db())
    }

    /// A new plan when the configuration changed since the last call (`None`: nothing to do).
    pub fn poll_config(&mut self, nics: &[NicInfo]) -> Option<Plan> {
        let generation = self.server.db().generation();
        if self.seen_generation == Some(generation) {
            return None;
        }
        self.seen_generation = Some(generation);
        let cfg = read_config(self.server.db());
        self.next_cfg = cfg.next_cfg;
        let key = config_key(&cfg);
        if self.applied.as_ref() == Some(&key) {
            return None;
        }
        let p = plan(&cfg, nics);
        self.applied = Some(key);
        self.plan = p.clone();
        Some(p)
    }

    /// Whether `cur_cfg` lags `next_cfg` (ovs-vsctl is waiting).
    pub fn cur_cfg_pending(&self) -> bool {
        let root = self
            .server
            .db()
            .table("Open_vSwitch")
            .and_then(|t| t.rows().next().map(|(_, r)| r))
            .and_then(|r| r.get("cur_cfg"))
            .and_then(|d| d.as_integer());
        root != Some(self.next_cfg)
    }

    /// Writes the plan's interface numbers and errors, the run-time state of the bound
    /// interfaces, the bridge's datapath id, controller and manager state and, when
    /// `configured`, `cur_cfg = next_cfg` — in one internal transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn write_status(
        &mut self,
        runtime: &dyn Fn(&InterfaceStatus) -> Option<InterfaceRuntime>,
        with_statistics: bool,
        datapath_id: Option<u64>,
        controllers: &[ControllerRuntime],
        manager_connected: bool,
        configured: bool,
        now_ms: u64,
    ) -> Result<(), String> {
        // The generation we are about to cause must not look like a configuration change.
        let db = self.server.db();
        let mut ops =
            self.status
                .interface_ops(db, &self.plan.interfaces, runtime, with_statistics);
        if let (Some(b), Some(dpid)) = (&self.plan.bridge, datapath_id) {
            ops.extend(self.status.bridge_ops(db, &b.name, dpid));
        }
        ops.extend(self.status.controller_ops(db, controllers));
        ops.extend(self.status.manager_ops(db, manager_connected));
        if configured {
            ops.extend(self.status.cur_cfg_ops(db, self.next_cfg));
        }
        let before = self.server.db().generation();
        let r = self.transact(ops, now_ms);
        if self.seen_generation == Some(before) {
            // Our own write: re-reading would find the same configuration (the key ignores
            // what the switch writes), so skip the re-read.
            self.seen_generation = Some(self.server.db().generation());
        }
        if r.is_err() {
            // Rows may have changed under us: write everything again next time.
            self.status.reset();
        }
        r
    }
}

/// [`OvsdbServer`] plus the journal, as the management port's [`StreamHandler`].
pub struct OvsdbStreams<'a> {
    server: &'a mut OvsdbServer,
    journal: &'a mut dyn ConfigJournal,
}

impl StreamHandler for OvsdbStreams<'_> {
    fn open(&mut self, _kind: ConnKind, now_ms: u64) -> Option<u32> {
        Some(self.server.open(now_ms))
    }

    fn can_receive(&self, conn: u32) -> bool {
        self.server.can_receive(conn)
    }

    fn receive(&mut self, conn: u32, data: &[u8], now_ms: u64) {
        self.server.receive(conn, data, now_ms, self.journal);
    }

    fn pending(&self, conn: u32) -> &[u8] {
        self.server.pending(conn)
    }

    fn consume(&mut self, conn: u32, n: usize) {
        self.server.consume(conn, n);
    }

    fn wants_close(&self, conn: u32) -> bool {
        self.server.wants_close(conn)
    }

    fn closed(&mut self, conn: u32, _now_ms: u64) {
        self.server.closed(conn);
    }
}
