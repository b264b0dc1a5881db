//! The `Open_vSwitch` database as the switch's configuration source: reading a
//! [`SwitchConfig`] out of it, the first-boot transaction built from the command line, and the
//! status the switch writes back (Interface ofport/error/link_state/statistics, Controller
//! is_connected/role, Bridge datapath_id, Open_vSwitch cur_cfg) as OVSDB operations.
//!
//! Only the columns that changed are written, so monitors see one update per real change.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde_json::{Value, json};

use super::plan::{InterfaceStatus, NicInfo};
use super::{
    BridgeConfig, InterfaceConfig, PortConfig, SwitchConfig, versions_from_protocols,
    vlan_mode_from_ovsdb,
};
use crate::agent::FailMode;
use crate::cmdline::{BootSettings, parse_vlan_mode};
use crate::ovsdb::{Database, Datum, Row, Uuid};
use switch_core::port::VlanMode;

/// The version string written to `Open_vSwitch.ovs_version` (shown by `ovs-vsctl show`).
pub const SWITCH_VERSION: &str = concat!("ironflow ", env!("CARGO_PKG_VERSION"));

fn str_of(row: &Row, col: &str) -> Option<String> {
    row.get(col).and_then(|d| d.as_str()).map(|s| s.to_string())
}

fn int_of(row: &Row, col: &str) -> Option<i64> {
    row.get(col).and_then(|d| d.as_integer())
}

fn ints_of(row: &Row, col: &str) -> Vec<i64> {
    row.get(col)
        .map(|d| d.atoms().iter().filter_map(|a| a.as_integer()).collect())
        .unwrap_or_default()
}

fn strs_of(row: &Row, col: &str) -> Vec<String> {
    row.get(col)
        .map(|d| {
            d.atoms()
                .iter()
                .filter_map(|a| a.as_str().map(|s| s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn uuids_of(row: &Row, col: &str) -> Vec<Uuid> {
    row.get(col)
        .map(|d| d.atoms().iter().filter_map(|a| a.as_uuid()).collect())
        .unwrap_or_default()
}

fn map_str(row: &Row, col: &str, key: &str) -> Option<String> {
    let d: &Datum = row.get(col)?;
    d.map_get_str(key).map(|s| s.to_string())
}

/// Reads the configuration out of `db` (an `Open_vSwitch` database). Bridges come from the
/// root row's `bridges` (rows no root row references are ignored, as Open vSwitch does).
pub fn read_config(db: &Database) -> SwitchConfig {
    let mut cfg = SwitchConfig::default();
    let (Some(root_t), Some(bridge_t), Some(port_t), Some(iface_t)) = (
        db.table("Open_vSwitch"),
        db.table("Bridge"),
        db.table("Port"),
        db.table("Interface"),
    ) else {
        return cfg;
    };
    let controller_t = db.table("Controller");
    let Some((_, root)) = root_t.rows().next() else {
        return cfg;
    };
    cfg.next_cfg = int_of(root, "next_cfg").unwrap_or(0);
    for b in uuids_of(root, "bridges") {
        let Some(brow) = bridge_t.get(&b) else {
            continue;
        };
        let mut bridge = BridgeConfig::new(&str_of(brow, "name").unwrap_or_default());
        bridge.fail_mode = str_of(brow, "fail_mode").and_then(|m| FailMode::from_name(&m));
        bridge.versions =
            versions_from_protocols(strs_of(brow, "protocols").iter().map(|s| s.as_str()));
        bridge.datapath_id = map_str(brow, "other_config", "datapath-id")
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
        if let Some(ct) = controller_t {
            for c in uuids_of(brow, "controller") {
                let Some(row) = ct.get(&c) else {
                    continue;
                };
                if let Some(t) = str_of(row, "target") {
                    let limit = crate::agent::RateLimit::from_columns(
                        int_of(row, "controller_rate_limit"),
                        int_of(row, "controller_burst_limit"),
                    );
                    bridge.controller_limits.push((t.clone(), limit));
                    bridge.controllers.push(t);
                }
            }
        }
        bridge.controllers.sort();
        bridge.controller_limits.sort_by(|a, b| a.0.cmp(&b.0));
        for p in uuids_of(brow, "ports") {
            let Some(prow) = port_t.get(&p) else {
                continue;
            };
            let (vlan, vlan_error) = match vlan_mode_from_ovsdb(
                int_of(prow, "tag"),
                &ints_of(prow, "trunks"),
                str_of(prow, "vlan_mode").as_deref(),
            ) {
                Ok(m) => (m, None),
                Err(e) => (VlanMode::default(), Some(e)),
            };
            let mut port = PortConfig {
                name: str_of(prow, "name").unwrap_or_default(),
                vlan,
                vlan_error,
                interfaces: Vec::new(),
            };
            for i in uuids_of(prow, "interfaces") {
                let Some(irow) = iface_t.get(&i) else {
                    continue;
                };
                let u32_of = |col: &str| {
                    int_of(irow, col)
                        .and_then(|v| u32::try_from(v).ok())
                        .filter(|v| *v != 0)
                };
                port.interfaces.push(InterfaceConfig {
                    uuid: i.0,
                    name: str_of(irow, "name").unwrap_or_default(),
                    kind: str_of(irow, "type").unwrap_or_default(),
                    ofport_request: u32_of("ofport_request"),
                    previous_ofport: u32_of("ofport"),
                    mtu_request: u32_of("mtu_request"),
                });
            }
            port.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
            bridge.ports.push(port);
        }
        bridge.ports.sort_by(|a, b| a.name.cmp(&b.name));
        cfg.bridges.push(bridge);
    }
    cfg.bridges.sort_by(|a, b| a.name.cmp(&b.name));
    cfg
}

/// The configuration minus what the switch itself writes back (`previous_ofport`): two
/// configurations with equal keys need no reconfiguration.
pub fn config_key(cfg: &SwitchConfig) -> SwitchConfig {
    let mut k = cfg.clone();
    k.next_cfg = 0;
    for b in k.bridges.iter_mut() {
        for p in b.ports.iter_mut() {
            for i in p.interfaces.iter_mut() {
                i.previous_ofport = None;
            }
        }
    }
    k
}

/// Whether `db` has its root row.
pub fn has_root(db: &Database) -> bool {
    db.table("Open_vSwitch")
        .is_some_and(|t| t.rows().next().is_some())
}

fn vlan_columns(mode: &VlanMode) -> serde_json::Map<String, Value> {
    let mut row = serde_json::Map::new();
    let set = |s: &switch_core::port::VlanSet| {
        let v: Vec<Value> = s.iter().map(|v| json!(v)).collect();
        json!(["set", v])
    };
    match mode {
        VlanMode::Access(v) => {
            row.insert("tag".into(), json!(v));
        }
        VlanMode::Trunk(s) => {
            row.insert("trunks".into(), set(s));
            row.insert("vlan_mode".into(), json!("trunk"));
        }
        VlanMode::NativeTagged(n, s) | VlanMode::NativeUntagged(n, s) => {
            if *mode == VlanMode::default() {
                return row;
            }
            row.insert("tag".into(), json!(n));
            if *s != switch_core::port::VlanSet::all() {
                row.insert("trunks".into(), set(s));
            }
            let name = if matches!(mode, VlanMode::NativeTagged(..)) {
                "native-tagged"
            } else {
                "native-untagged"
            };
            row.insert("vlan_mode".into(), json!(name));
        }
    }
    row
}

/// The first-boot transaction (operations of one `transact`, without the database name):
/// the root row and, unless `bridge=none`, a bridge with its internal port and every data NIC
/// as a port (`ofport_request` = the NIC's number, `port.N.vlan=` as tag/trunks/vlan_mode),
/// the command line's controllers and fail mode.
pub fn bootstrap_ops(settings: &BootSettings, nics: &[NicInfo]) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut root = json!({
        "next_cfg": 0,
        "cur_cfg": 0,
        "ovs_version": SWITCH_VERSION,
        "db_version": crate::ovsdb::vswitch_schema_version(),
        "system_type": "ironflow",
    });
    if let Some(name) = &settings.bootstrap_bridge {
        let mut ports = vec![json!(["named-uuid", "port_local"])];
        ops.push(json!({
            "op": "insert", "table": "Interface", "uuid-name": "iface_local",
            "row": { "name": name, "type": "internal" }
        }));
        ops.push(json!({
            "op": "insert", "table": "Port", "uuid-name": "port_local",
            "row": { "name": name, "interfaces": ["named-uuid", "iface_local"] }
        }));
        for (i, nic) in nics.iter().enumerate() {
            let no = i as u32 + 1;
            let (pn, iname) = (format!("port{no}"), format!("iface{no}"));
            ops.push(json!({
                "op": "insert", "table": "Interface", "uuid-name": iname,
                "row": { "name": nic.name, "ofport_request": no }
            }));
            let mut row = serde_json::Map::new();
            row.insert("name".into(), json!(nic.name));
            row.insert("interfaces".into(), json!(["named-uuid", iname]));
            if let Some((_, v)) = settings.port_vlans.iter().find(|(p, _)| *p == no)
                && let Some(mode) = parse_vlan_mode(v)
            {
                row.extend(vlan_columns(&mode));
            }
            ops.push(json!({ "op": "insert", "table": "Port", "uuid-name": pn, "row": row }));
            ports.push(json!(["named-uuid", pn]));
        }
        let mut controllers = Vec::new();
        for (i, t) in settings.controllers.iter().enumerate() {
            let cn = format!("controller{i}");
            let mut row = json!({ "target": t });
            if let Some(l) = settings.controller_rate_limit() {
                row["controller_rate_limit"] = json!(l.rate);
                row["controller_burst_limit"] = json!(l.burst);
            }
            ops.push(json!({
                "op": "insert", "table": "Controller", "uuid-name": cn, "row": row
            }));
            controllers.push(json!(["named-uuid", cn]));
        }
        let mut bridge = json!({
            "name": name,
            "ports": ["set", ports],
            "controller": ["set", controllers],
        });
        if settings.fail_mode == FailMode::Secure {
            bridge["fail_mode"] = json!("secure");
        }
        ops.push(json!({
            "op": "insert", "table": "Bridge", "uuid-name": "bridge", "row": bridge
        }));
        root["bridges"] = json!(["set", [["named-uuid", "bridge"]]]);
    }
    ops.push(json!({ "op": "insert", "table": "Open_vSwitch", "row": root }));
    ops
}

/// An interface's run-time state, for the write-back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceRuntime {
    pub link_up: bool,
    pub admin_up: bool,
    pub mac: [u8; 6],
    /// `(name, value)` pairs of `Interface.statistics`.
    pub statistics: Vec<(&'static str, u64)>,
}

/// A controller connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerRuntime {
    pub target: String,
    pub is_connected: bool,
    /// `master`, `slave` or `other`.
    pub role: &'static str,
}

/// Remembers what was written so that only changes are sent.
#[derive(Debug, Default)]
pub struct StatusWriter {
    written: BTreeMap<(String, [u8; 16]), serde_json::Map<String, Value>>,
}

fn mac_str(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn where_uuid(u: &[u8; 16]) -> Value {
    json!([["_uuid", "==", ["uuid", Uuid(*u).to_string()]]])
}

impl StatusWriter {
    pub fn new() -> StatusWriter {
        StatusWriter::default()
    }

    /// Forgets what was written (after a reload, or when rows may have been replaced).
    pub fn reset(&mut self) {
        self.written.clear();
    }

    fn update(
        &mut self,
        ops: &mut Vec<Value>,
        table: &str,
        uuid: [u8; 16],
        row: serde_json::Map<String, Value>,
    ) {
        let key = (table.to_string(), uuid);
        let old = self.written.get(&key);
        let mut changed = serde_json::Map::new();
        for (k, v) in &row {
            if old.and_then(|o| o.get(k)) != Some(v) {
                changed.insert(k.clone(), v.clone());
            }
        }
        if changed.is_empty() {
            return;
        }
        ops.push(
            json!({"op": "update", "table": table, "where": where_uuid(&uuid), "row": changed}),
        );
        let entry = self.written.entry(key).or_default();
        for (k, v) in row {
            entry.insert(k, v);
        }
    }

    /// Operations writing the plan's numbers and errors, and each bound interface's run-time
    /// state (`runtime(nic)`), for the rows that still exist in `db`.
    pub fn interface_ops(
        &mut self,
        db: &Database,
        interfaces: &[InterfaceStatus],
        runtime: &dyn Fn(&InterfaceStatus) -> Option<InterfaceRuntime>,
        with_statistics: bool,
    ) -> Vec<Value> {
        let mut ops = Vec::new();
        let Some(t) = db.table("Interface") else {
            return ops;
        };
        for st in interfaces {
            if t.get(&Uuid(st.uuid)).is_none() {
                continue;
            }
            let mut row = serde_json::Map::new();
            row.insert("ofport".into(), json!(st.ofport));
            row.insert(
                "error".into(),
                match &st.error {
                    Some(e) => json!(e),
                    None => json!(["set", []]),
                },
            );
            match runtime(st) {
                Some(rt) => {
                    let up = |b: bool| if b { "up" } else { "down" };
                    row.insert("link_state".into(), json!(up(rt.link_up)));
                    row.insert("admin_state".into(), json!(up(rt.admin_up)));
                    row.insert("mac_in_use".into(), json!(mac_str(rt.mac)));
                    if with_statistics {
                        let pairs: Vec<Value> =
                            rt.statistics.iter().map(|(k, v)| json!([k, v])).collect();
                        row.insert("statistics".into(), json!(["map", pairs]));
                    }
                }
                None if st.error.is_some() => {
                    row.insert("link_state".into(), json!(["set", []]));
                    row.insert("admin_state".into(), json!(["set", []]));
                }
                None => {}
            }
            self.update(&mut ops, "Interface", st.uuid, row);
        }
        ops
    }

    /// Controller rows: `is_connected` and `role` by target.
    pub fn controller_ops(
        &mut self,
        db: &Database,
        controllers: &[ControllerRuntime],
    ) -> Vec<Value> {
        let mut ops = Vec::new();
        let Some(t) = db.table("Controller") else {
            return ops;
        };
        let rows: Vec<([u8; 16], String)> = t
            .rows()
            .map(|(u, r)| (u.0, str_of(r, "target").unwrap_or_default()))
            .collect();
        for (uuid, target) in rows {
            let want = crate::netif::Target::parse(&target);
            let rt = controllers
                .iter()
                .find(|c| want.is_some() && crate::netif::Target::parse(&c.target) == want);
            let mut row = serde_json::Map::new();
            row.insert(
                "is_connected".into(),
                json!(rt.is_some_and(|c| c.is_connected)),
            );
            match rt.filter(|c| c.is_connected) {
                Some(c) => row.insert("role".into(), json!(c.role)),
                None => row.insert("role".into(), json!(["set", []])),
            };
            self.update(&mut ops, "Controller", uuid, row);
        }
        ops
    }

    /// Manager rows: `is_connected` (the OVSDB listener has connections).
    pub fn manager_ops(&mut self, db: &Database, connected: bool) -> Vec<Value> {
        let mut ops = Vec::new();
        let Some(t) = db.table("Manager") else {
            return ops;
        };
        let rows: Vec<[u8; 16]> = t.rows().map(|(u, _)| u.0).collect();
        for uuid in rows {
            let mut row = serde_json::Map::new();
            row.insert("is_connected".into(), json!(connected));
            self.update(&mut ops, "Manager", uuid, row);
        }
        ops
    }

    /// The running bridge's `datapath_id` (16 hex digits, as Open vSwitch writes it).
    pub fn bridge_ops(&mut self, db: &Database, bridge: &str, dpid: u64) -> Vec<Value> {
        let mut ops = Vec::new();
        let Some(t) = db.table("Bridge") else {
            return ops;
        };
        let found = t
            .rows()
            .find(|(_, r)| str_of(r, "name").as_deref() == Some(bridge))
            .map(|(u, _)| u.0);
        if let Some(uuid) = found {
            let mut row = serde_json::Map::new();
            row.insert("datapath_id".into(), json!(format!("{dpid:016x}")));
            self.update(&mut ops, "Bridge", uuid, row);
        }
        ops
    }

    /// `cur_cfg := next_cfg` once the switch has applied the configuration of `next_cfg`.
    pub fn cur_cfg_ops(&mut self, db: &Database, next_cfg: i64) -> Vec<Value> {
        let mut ops = Vec::new();
        let Some((uuid, root)) = db.table("Open_vSwitch").and_then(|t| t.rows().next()) else {
            return ops;
        };
        if int_of(root, "cur_cfg") == Some(next_cfg) {
            return ops;
        }
        ops.push(json!({
            "op": "update", "table": "Open_vSwitch", "where": where_uuid(&uuid.0),
            "row": { "cur_cfg": next_cfg }
        }));
        ops
    }
}
