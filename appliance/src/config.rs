//! Configuration glue: opens the configuration disk (any `mgmt::store::BlockDevice`: virtio-blk
//! in the image, a file in the hosted runner), loads the OVSDB database from it (or bootstraps
//! it from the command line on first boot), and applies the plans the configuration service
//! produces to the bridge and the OpenFlow agent. The logic lives in `mgmt::config`; this file
//! owns the order of calls.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use mgmt::cmdline::BootSettings;
use mgmt::config::disk_journal::{StoreJournal, load};
use mgmt::config::ovsdb::{ControllerRuntime, InterfaceRuntime};
use mgmt::config::plan::{InterfaceStatus, Plan};
use mgmt::config::service::{ConfigJournal, ConfigService};
use mgmt::ovsdb::{Database, NoJournal, OvsdbServer, Schema, VSWITCH_SCHEMA};
use mgmt::store::{OpenError, Store};

use crate::bridge::Bridge;
use crate::management::Management;
use mgmt::store::BlockDevice;

/// The configuration service and what the switch last applied.
pub struct Config {
    pub service: ConfigService,
    /// The running bridge's name (a change of name, or none then one, resets the flows).
    running: Option<String>,
    next_status_ms: u64,
    next_stats_ms: u64,
}

/// How often status columns (link state, controller connections) are written back.
const STATUS_MS: u64 = 1_000;
/// How often `Interface.statistics` is written (Open vSwitch's default stats-update-interval).
const STATISTICS_MS: u64 = 5_000;

fn open_journal<D: BlockDevice + 'static>(
    settings: &BootSettings,
    disk: Option<D>,
    db: &mut Database,
) -> Box<dyn ConfigJournal> {
    let Some(dev) = disk else {
        log::warn!("config: no configuration disk: configuration is kept in memory only");
        return Box::new(NoJournal);
    };
    let format = |dev| match Store::format(dev) {
        Ok(store) => {
            log::info!("config: configuration disk formatted");
            Box::new(StoreJournal::new(store)) as Box<dyn ConfigJournal>
        }
        Err(e) => {
            log::error!(
                "config: cannot format the configuration disk: {e}; configuration is kept in memory only"
            );
            Box::new(NoJournal)
        }
    };
    match Store::open(dev) {
        Ok((store, loaded)) => {
            let r = load(db, &loaded);
            log::info!(
                "config: loaded {} from the configuration disk (snapshot {}, {} records{})",
                db.name(),
                if r.snapshot { "yes" } else { "no" },
                r.records,
                if loaded.dropped_tail {
                    ", a torn last write was dropped"
                } else {
                    ""
                }
            );
            for e in r.errors.iter().take(10) {
                log::error!("config: record skipped: {e}");
            }
            Box::new(StoreJournal::new(store))
        }
        Err(OpenError::Blank(dev)) => format(dev),
        Err(e) if settings.config_format => {
            log::warn!("config: {e}; config.format=1: formatting it");
            match e.into_device() {
                Some(dev) => format(dev),
                None => Box::new(NoJournal),
            }
        }
        Err(e) => {
            log::error!(
                "config: {e}; booting with an empty configuration kept in memory only. The disk is left untouched: boot with config.format=1 to overwrite it"
            );
            Box::new(NoJournal)
        }
    }
}

impl Config {
    /// Loads the database from `disk` (or starts empty when there is none or it cannot be
    /// used: see the console), and on first boot writes the command line's bootstrap bridge.
    pub fn boot<D: BlockDevice + 'static>(
        settings: &BootSettings,
        disk: Option<D>,
        bridge: &Bridge,
        now_ms: u64,
        seed: u64,
    ) -> Config {
        let schema = match Schema::from_json(VSWITCH_SCHEMA) {
            Ok(s) => s,
            // The schema is compiled in and tested on the host: this cannot fail at run time.
            Err(e) => panic!("the built-in Open_vSwitch schema does not load: {e}"),
        };
        let mut db = Database::new(schema, seed);
        let journal = open_journal(settings, disk, &mut db);
        let mut service = ConfigService::new(OvsdbServer::new(db), journal);
        match service.bootstrap(settings, &bridge.nic_infos(), now_ms) {
            Ok(true) => log::info!(
                "config: first boot: {}",
                match &settings.bootstrap_bridge {
                    Some(b) => alloc::format!("bridge {b} with every data NIC"),
                    None => "no bridge (bridge=none)".into(),
                }
            ),
            Ok(false) => {}
            Err(e) => log::error!("config: first-boot configuration failed: {e}"),
        }
        Config {
            service,
            running: None,
            next_status_ms: 0,
            next_stats_ms: 0,
        }
    }

    /// After a management poll: applies a changed configuration, writes status back.
    pub fn poll(&mut self, bridge: &mut Bridge, mut management: Option<&mut Management>, now: u64) {
        self.service.poll(now);
        let mut configured = false;
        if let Some(plan) = self.service.poll_config(&bridge.nic_infos()) {
            self.apply(bridge, management.as_deref_mut(), &plan, now);
            configured = true;
        }
        let due = now >= self.next_status_ms;
        if configured || due || self.service.cur_cfg_pending() {
            let stats = now >= self.next_stats_ms;
            self.write_status(bridge, management.as_deref(), stats, now);
            self.next_status_ms = now + STATUS_MS;
            if stats {
                self.next_stats_ms = now + STATISTICS_MS;
            }
        }
    }

    /// One console line: the server's counters and the journal's.
    pub fn stats_line(&self) -> String {
        alloc::format!(
            "ovsdb: {:?} status_errors={} | {}",
            self.service.server.stats(),
            self.service.status_errors,
            self.service.journal.describe()
        )
    }

    /// Slow path: journal compaction.
    pub fn housekeeping(&mut self) {
        match self.service.maintain() {
            Ok(true) => log::info!("config: journal compacted"),
            Ok(false) => {}
            Err(e) => log::error!("config: {e}"),
        }
    }

    fn apply(
        &mut self,
        bridge: &mut Bridge,
        management: Option<&mut Management>,
        plan: &Plan,
        now: u64,
    ) {
        for w in &plan.warnings {
            log::warn!("config: {w}");
        }
        bridge.reconfigure(plan);
        let name = plan.bridge.as_ref().map(|b| b.name.clone());
        let renewed = name != self.running;
        if renewed {
            log::info!(
                "config: running bridge {}",
                name.as_deref().unwrap_or("(none: nothing forwards)")
            );
        }
        self.running = name;
        let Some(m) = management else {
            return;
        };
        let (fail_mode, active, versions, dpid) = match &plan.bridge {
            Some(b) => (
                b.effective_fail_mode(),
                b.active_controllers(),
                b.versions,
                b.datapath_id,
            ),
            None => (mgmt::agent::FailMode::Standalone, Vec::new(), 0, None),
        };
        m.port.set_controllers(&active, now);
        m.agent.set_versions(versions);
        m.agent.set_datapath_id(dpid);
        let agent = &mut m.agent;
        bridge.with_ctx(now, |ctx| {
            agent.set_fail_mode(ctx, fail_mode);
            agent.set_has_controllers(ctx, !active.is_empty());
            if renewed {
                agent.reset_bridge(ctx);
            }
        });
    }

    fn write_status(
        &mut self,
        bridge: &Bridge,
        management: Option<&Management>,
        with_statistics: bool,
        now: u64,
    ) {
        let runtime = |st: &InterfaceStatus| -> Option<InterfaceRuntime> {
            let d = bridge.ports.get(st.nic?)?;
            let no = d.no?;
            let p = bridge.port_table.get(no)?;
            let n = d.nic.stats();
            Some(InterfaceRuntime {
                link_up: !p.state().contains(switch_core::port::PortState::LINK_DOWN),
                admin_up: !p
                    .config()
                    .contains(switch_core::port::PortConfig::PORT_DOWN),
                mac: d.nic.mac_address(),
                statistics: alloc::vec![
                    ("rx_packets", n.rx_packets),
                    ("rx_bytes", n.rx_bytes),
                    ("tx_packets", n.tx_packets),
                    ("tx_bytes", n.tx_bytes),
                    ("rx_dropped", n.rx_no_buffer),
                    ("tx_dropped", n.tx_full + d.tx_dropped),
                    ("rx_errors", n.rx_errors + d.rx_malformed),
                    ("tx_errors", n.tx_errors),
                ],
            })
        };
        let mut controllers = Vec::new();
        let mut dpid = None;
        let mut manager_connected = false;
        if let Some(m) = management {
            dpid = Some(m.agent.datapath_id());
            let conns = m.agent.connections();
            for (id, t) in m.port.controller_targets() {
                let conn = conns.iter().find(|c| {
                    c.kind == mgmt::netif::ConnKind::Active { target: id } && c.is_connected
                });
                controllers.push(ControllerRuntime {
                    target: alloc::format!(
                        "tcp:{}.{}.{}.{}:{}",
                        t.addr[0],
                        t.addr[1],
                        t.addr[2],
                        t.addr[3],
                        t.port
                    ),
                    is_connected: conn.is_some(),
                    role: match conn.map(|c| c.role) {
                        Some(2) => "master",
                        Some(3) => "slave",
                        _ => "other",
                    },
                });
            }
            manager_connected = self.service.server.stats().connections > 0;
        }
        if let Err(e) = self.service.write_status(
            &runtime,
            with_statistics,
            dpid,
            &controllers,
            manager_connected,
            true,
            now,
        ) {
            log::warn!("config: status write-back failed: {e}");
        }
    }
}
