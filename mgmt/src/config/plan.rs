//! Binding a [`SwitchConfig`] to the machine: which NIC each interface drives, which OpenFlow
//! port number it gets, and what is wrong with the interfaces that cannot be used.
//!
//! Naming: the appliance's data NICs (every NIC but the management one, in PCI order) are
//! `eth1`, `eth2`, ... — an `Interface` row of type `""` or `system` with that name binds that
//! NIC. An internal interface named like its bridge is the bridge's LOCAL port (number 65534,
//! no NIC: the appliance's own address lives on the management port). Anything else gets an
//! `Interface.error` in Open vSwitch's words and `ofport` -1.
//!
//! One bridge runs the datapath: the first by name. A second bridge's interfaces are reported
//! with an error instead of being half-run (ironflow has one datapath per appliance today).
//!
//! Port numbers follow Open vSwitch: `ofport_request` when valid and free, else the number the
//! interface had before (kept in `Interface.ofport`), else the lowest free number from 1.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{BridgeConfig, SwitchConfig};
use switch_core::port::VlanMode;

/// OpenFlow's LOCAL port number.
pub const OFPP_LOCAL: u32 = 0xfffe;
/// Largest regular OpenFlow port number (OFPP_MAX).
pub const OFPP_MAX: u32 = 0xff00;

/// A NIC the interfaces can bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicInfo {
    pub name: String,
    pub mac: [u8; 6],
}

/// A port of the running bridge, bound to a NIC.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedPort {
    pub ofport: u32,
    /// Index into the NIC list given to [`plan`].
    pub nic: usize,
    /// The interface's name (the OpenFlow port name).
    pub name: String,
    pub vlan: VlanMode,
}

/// What the switch writes back to one `Interface` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub uuid: [u8; 16],
    pub name: String,
    /// The OpenFlow port number, -1 when the interface cannot be used.
    pub ofport: i64,
    pub error: Option<String>,
    pub nic: Option<usize>,
    /// The bridge's LOCAL port.
    pub local: bool,
}

/// The result of binding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The running bridge (its ports are in `ports`), if any bridge exists.
    pub bridge: Option<BridgeConfig>,
    /// Bound ports of the running bridge, sorted by port number.
    pub ports: Vec<PlannedPort>,
    /// Every interface of every bridge, in configuration order.
    pub interfaces: Vec<InterfaceStatus>,
    /// Human-readable problems (also in `interfaces[..].error`), for the console.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The port bound to NIC `nic`.
    pub fn port_of_nic(&self, nic: usize) -> Option<&PlannedPort> {
        self.ports.iter().find(|p| p.nic == nic)
    }
}

/// Binds `config` to `nics`.
pub fn plan(config: &SwitchConfig, nics: &[NicInfo]) -> Plan {
    let mut out = Plan::default();
    let Some(first) = config.bridges.first() else {
        return out;
    };
    // Pass 1: which interfaces of the running bridge bind which NIC.
    let mut nic_taken: Vec<bool> = nics.iter().map(|_| false).collect();
    struct Pending {
        status: usize,
        nic: usize,
        port: usize,
        request: Option<u32>,
        previous: Option<u32>,
    }
    let mut pending: Vec<Pending> = Vec::new();
    for (bi, bridge) in config.bridges.iter().enumerate() {
        for (pi, port) in bridge.ports.iter().enumerate() {
            for iface in &port.interfaces {
                let mut st = InterfaceStatus {
                    uuid: iface.uuid,
                    name: iface.name.clone(),
                    ofport: -1,
                    error: None,
                    nic: None,
                    local: false,
                };
                let kind = iface.kind.as_str();
                if bi != 0 {
                    st.error = Some(format!(
                        "bridge {} is not running: ironflow runs one bridge per appliance ({} is running)",
                        bridge.name, first.name
                    ));
                } else if kind == "internal" && iface.name == bridge.name {
                    st.local = true;
                    st.ofport = OFPP_LOCAL as i64;
                } else if kind == "internal" {
                    st.error = Some(format!(
                        "could not add network device {} to ofproto (Operation not supported): internal ports other than the bridge's own are not supported",
                        iface.name
                    ));
                } else if !(kind.is_empty() || kind == "system") {
                    st.error = Some(format!(
                        "could not open network device {} (Address family not supported by protocol): interface type {kind} is not supported",
                        iface.name
                    ));
                } else if port.interfaces.len() > 1 {
                    st.error = Some(format!(
                        "port {} has {} interfaces: bonds are not supported",
                        port.name,
                        port.interfaces.len()
                    ));
                } else {
                    match nics.iter().position(|n| n.name == iface.name) {
                        None => {
                            st.error = Some(format!(
                                "could not open network device {} (No such device)",
                                iface.name
                            ))
                        }
                        Some(n) if nic_taken[n] => {
                            st.error = Some(format!(
                                "could not add network device {} to ofproto (File exists)",
                                iface.name
                            ))
                        }
                        Some(n) => {
                            nic_taken[n] = true;
                            pending.push(Pending {
                                status: out.interfaces.len(),
                                nic: n,
                                port: pi,
                                request: iface.ofport_request.filter(|p| (1..OFPP_MAX).contains(p)),
                                previous: iface
                                    .previous_ofport
                                    .filter(|p| (1..OFPP_MAX).contains(p)),
                            });
                        }
                    }
                }
                if let Some(e) = &st.error {
                    out.warnings.push(format!("interface {}: {e}", iface.name));
                }
                out.interfaces.push(st);
            }
        }
    }
    // Pass 2: numbers. Requests first (in order), then previous numbers, then the lowest free.
    let mut used: Vec<u32> = Vec::new();
    let mut number: Vec<Option<u32>> = pending.iter().map(|_| None).collect();
    for (i, p) in pending.iter().enumerate() {
        if let Some(r) = p.request.filter(|r| !used.contains(r)) {
            used.push(r);
            number[i] = Some(r);
        }
    }
    for (i, p) in pending.iter().enumerate() {
        if number[i].is_none()
            && let Some(r) = p.previous.filter(|r| !used.contains(r))
        {
            used.push(r);
            number[i] = Some(r);
        }
    }
    let mut next = 1;
    for n in number.iter_mut().filter(|n| n.is_none()) {
        while used.contains(&next) {
            next += 1;
        }
        used.push(next);
        *n = Some(next);
    }
    for (p, n) in pending.iter().zip(number) {
        let ofport = n.unwrap_or(0);
        let port = &first.ports[p.port];
        out.interfaces[p.status].ofport = ofport as i64;
        out.interfaces[p.status].nic = Some(p.nic);
        if let Some(e) = &port.vlan_error {
            out.warnings.push(format!("port {}: {e}", port.name));
        }
        out.ports.push(PlannedPort {
            ofport,
            nic: p.nic,
            name: out.interfaces[p.status].name.clone(),
            vlan: port.vlan.clone(),
        });
    }
    out.ports.sort_by_key(|p| p.ofport);
    let mut bridge = first.clone();
    bridge.ports.clear();
    out.bridge = Some(bridge);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InterfaceConfig, PortConfig};
    use alloc::string::ToString;
    use alloc::vec;

    fn nics(n: usize) -> Vec<NicInfo> {
        (1..=n)
            .map(|i| NicInfo {
                name: format!("eth{i}"),
                mac: [2, 0, 0, 0, 0, i as u8],
            })
            .collect()
    }

    fn port(name: &str, kind: &str, request: Option<u32>, previous: Option<u32>) -> PortConfig {
        PortConfig {
            name: name.into(),
            vlan: VlanMode::default(),
            vlan_error: None,
            interfaces: vec![InterfaceConfig {
                uuid: [0; 16],
                name: name.into(),
                kind: kind.into(),
                ofport_request: request,
                previous_ofport: previous,
                mtu_request: None,
            }],
        }
    }

    fn config(bridges: Vec<(&str, Vec<PortConfig>)>) -> SwitchConfig {
        SwitchConfig {
            bridges: bridges
                .into_iter()
                .map(|(n, ports)| BridgeConfig {
                    ports,
                    ..BridgeConfig::new(n)
                })
                .collect(),
            next_cfg: 0,
        }
    }

    #[test]
    fn numbers_requests_previous_then_lowest_free() {
        let c = config(vec![(
            "br0",
            vec![
                port("br0", "internal", None, None),
                port("eth1", "", None, None),
                port("eth2", "", Some(7), None),
                port("eth3", "system", None, Some(1)),
            ],
        )]);
        let p = plan(&c, &nics(3));
        let got: Vec<_> = p
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.ofport))
            .collect();
        assert_eq!(got, [("eth3", 1), ("eth1", 2), ("eth2", 7)]);
        assert!(p.interfaces[0].local && p.interfaces[0].ofport == 0xfffe);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.port_of_nic(1).map(|p| p.ofport), Some(7));
    }

    #[test]
    fn missing_nic_and_duplicates_and_second_bridge_are_errors() {
        let c = config(vec![
            (
                "br0",
                vec![
                    port("eth9", "", None, None),
                    port("vxlan0", "vxlan", None, None),
                ],
            ),
            ("br1", vec![port("eth1", "", None, None)]),
        ]);
        let p = plan(&c, &nics(2));
        assert!(p.ports.is_empty());
        assert_eq!(p.interfaces.len(), 3);
        assert!(
            p.interfaces
                .iter()
                .all(|i| i.ofport == -1 && i.error.is_some())
        );
        assert_eq!(
            p.interfaces[0].error.as_deref(),
            Some("could not open network device eth9 (No such device)")
        );
        assert!(
            p.interfaces[2]
                .error
                .as_ref()
                .unwrap()
                .contains("br1 is not running")
        );
        assert_eq!(
            p.bridge.as_ref().map(|b| b.name.to_string()),
            Some("br0".into())
        );
    }

    #[test]
    fn conflicting_requests_fall_back_to_free_numbers() {
        let c = config(vec![(
            "br0",
            vec![
                port("eth1", "", Some(5), None),
                port("eth2", "", Some(5), Some(5)),
            ],
        )]);
        let p = plan(&c, &nics(2));
        let got: Vec<_> = p
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.ofport))
            .collect();
        assert_eq!(got, [("eth2", 1), ("eth1", 5)]);
    }

    #[test]
    fn empty_config_runs_nothing() {
        let p = plan(&SwitchConfig::default(), &nics(2));
        assert!(p.bridge.is_none() && p.ports.is_empty());
    }
}
