//! The switch's configuration model: what bridges exist, which ports and interfaces they have,
//! their VLAN modes, controllers, fail mode and OpenFlow versions. It does not care who changed
//! it: the OVSDB database (`ovs-vsctl`), the kernel command line (bootstrap values on first
//! boot) and the tests all produce a [`SwitchConfig`]; the switch applies one through
//! [`plan::Plan`], which binds interfaces to NICs and assigns OpenFlow port numbers.
//!
//! - [`ovsdb`] reads a [`SwitchConfig`] out of an `Open_vSwitch` database, builds the
//!   first-boot transaction from the command line, and the status write-back (ofport,
//!   link_state, statistics, is_connected, cur_cfg) as OVSDB operations.
//! - [`plan`] is the pure binding step (host-tested): interface names to NICs, `ofport_request`
//!   and previous numbers honoured, errors as Open vSwitch words them in `Interface.error`.

pub mod disk_journal;
pub mod ovsdb;
pub mod plan;
pub mod service;

use alloc::string::String;
use alloc::vec::Vec;

use crate::agent::{FailMode, RateLimit};
use switch_core::port::{VlanMode, VlanSet};

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwitchConfig {
    /// Bridges sorted by name (the first one is the one the appliance runs; see [`plan`]).
    pub bridges: Vec<BridgeConfig>,
    /// Value of `Open_vSwitch.next_cfg` (the generation ovs-vsctl waits for).
    pub next_cfg: i64,
}

/// One bridge.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeConfig {
    pub name: String,
    /// `None`: Open vSwitch's default (standalone).
    pub fail_mode: Option<FailMode>,
    /// Controller targets (`tcp:IP:PORT` active, `ptcp:PORT` passive), sorted.
    pub controllers: Vec<String>,
    /// Each controller target's rate limit (`Controller.controller_rate_limit` and
    /// `controller_burst_limit`, with Open vSwitch's minimums; `None`: the row sets no rate),
    /// in the order of `controllers`. Give it to `OfAgent::set_controller_limits_by_target`.
    pub controller_limits: Vec<(String, Option<RateLimit>)>,
    /// OpenFlow versions allowed (`Bridge.protocols`), as a wire-version bitmap; 0 = default
    /// (every version the switch speaks).
    pub versions: u32,
    /// `other_config:datapath-id` (16 hex digits), if set.
    pub datapath_id: Option<u64>,
    /// Ports sorted by name.
    pub ports: Vec<PortConfig>,
}

/// One port (a bridge member: one interface here, bonds are not supported).
#[derive(Clone, Debug, PartialEq)]
pub struct PortConfig {
    pub name: String,
    pub vlan: VlanMode,
    /// A VLAN setting that could not be honoured (logged; the port keeps the default mode).
    pub vlan_error: Option<String>,
    pub interfaces: Vec<InterfaceConfig>,
}

/// One interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The row's UUID (status is written back to it); zero when not from a database.
    pub uuid: [u8; 16],
    pub name: String,
    /// `Interface.type` ("" = system).
    pub kind: String,
    pub ofport_request: Option<u32>,
    /// The number the interface had before (`Interface.ofport`), kept across restarts.
    pub previous_ofport: Option<u32>,
    /// `Interface.admin_state` is not configuration in OVS; `mtu_request` is ignored for now.
    pub mtu_request: Option<u32>,
}

impl BridgeConfig {
    pub fn new(name: &str) -> BridgeConfig {
        BridgeConfig {
            name: name.into(),
            fail_mode: None,
            controllers: Vec::new(),
            controller_limits: Vec::new(),
            versions: 0,
            datapath_id: None,
            ports: Vec::new(),
        }
    }

    /// The fail mode in force (Open vSwitch's default is standalone).
    pub fn effective_fail_mode(&self) -> FailMode {
        self.fail_mode.unwrap_or(FailMode::Standalone)
    }

    /// Active controller targets (`tcp:`), the ones the switch dials.
    pub fn active_controllers(&self) -> Vec<String> {
        self.controllers
            .iter()
            .filter(|t| t.starts_with("tcp:"))
            .cloned()
            .collect()
    }
}

/// The VLAN mode of an OVSDB port from its `tag`, `trunks` and `vlan_mode` columns, with Open
/// vSwitch's rules: without `vlan_mode`, a port with a tag is an access port, else a trunk
/// (all VLANs when `trunks` is empty, untagged frames in VLAN 0). `native-*` use `tag` as the
/// native VLAN (0 without one) and `trunks` as the other VLANs (all when empty).
pub fn vlan_mode_from_ovsdb(
    tag: Option<i64>,
    trunks: &[i64],
    mode: Option<&str>,
) -> Result<VlanMode, String> {
    let vid = |v: i64| -> Result<u16, String> {
        u16::try_from(v)
            .ok()
            .filter(|v| *v < 4095)
            .ok_or_else(|| alloc::format!("VLAN {v} out of range"))
    };
    let tag = tag.map(vid).transpose()?;
    let mut set = VlanSet::EMPTY;
    for t in trunks {
        set.insert(vid(*t)?);
    }
    let all_or = |s: VlanSet| if s.is_empty() { VlanSet::all() } else { s };
    let m = match mode {
        None | Some("") => match tag {
            Some(t) => VlanMode::Access(t),
            None if trunks.is_empty() => VlanMode::NativeUntagged(0, VlanSet::all()),
            None => VlanMode::Trunk(set),
        },
        Some("access") => VlanMode::Access(tag.unwrap_or(0)),
        Some("trunk") => {
            if trunks.is_empty() {
                VlanMode::NativeUntagged(0, VlanSet::all())
            } else {
                VlanMode::Trunk(set)
            }
        }
        Some("native-tagged") => VlanMode::NativeTagged(tag.unwrap_or(0), all_or(set)),
        Some("native-untagged") => VlanMode::NativeUntagged(tag.unwrap_or(0), all_or(set)),
        Some(other) => return Err(alloc::format!("vlan_mode {other} is not supported")),
    };
    if m.is_valid() {
        Ok(m)
    } else {
        Err(alloc::format!("VLAN settings {m:?} are not valid"))
    }
}

/// `Bridge.protocols` names to a wire-version bitmap (unknown names are ignored, as OVS
/// warns and ignores them).
pub fn versions_from_protocols<'a>(protocols: impl IntoIterator<Item = &'a str>) -> u32 {
    let mut bits = 0;
    for p in protocols {
        bits |= match p {
            "OpenFlow10" => 1 << 1,
            "OpenFlow11" => 1 << 2,
            "OpenFlow12" => 1 << 3,
            "OpenFlow13" => 1 << 4,
            "OpenFlow14" => 1 << 5,
            "OpenFlow15" => 1 << 6,
            _ => 0,
        };
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovs_vlan_rules() {
        assert_eq!(
            vlan_mode_from_ovsdb(Some(10), &[], None),
            Ok(VlanMode::Access(10))
        );
        assert_eq!(
            vlan_mode_from_ovsdb(None, &[], None),
            Ok(VlanMode::NativeUntagged(0, VlanSet::all()))
        );
        assert_eq!(
            vlan_mode_from_ovsdb(None, &[10, 20], None),
            Ok(VlanMode::Trunk(VlanSet::from_vids(&[10, 20])))
        );
        assert_eq!(
            vlan_mode_from_ovsdb(None, &[10, 20], Some("trunk")),
            Ok(VlanMode::Trunk(VlanSet::from_vids(&[10, 20])))
        );
        assert_eq!(
            vlan_mode_from_ovsdb(Some(5), &[10], Some("native-tagged")),
            Ok(VlanMode::NativeTagged(5, VlanSet::from_vids(&[10])))
        );
        assert!(vlan_mode_from_ovsdb(Some(5000), &[], None).is_err());
        assert!(vlan_mode_from_ovsdb(None, &[], Some("dot1q-tunnel")).is_err());
    }

    #[test]
    fn protocols() {
        assert_eq!(
            versions_from_protocols(["OpenFlow10", "OpenFlow13"]),
            0b10010
        );
        assert_eq!(versions_from_protocols(["bogus"]), 0);
    }
}
