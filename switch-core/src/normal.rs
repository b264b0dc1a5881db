//! The NORMAL action: a VLAN-aware MAC-learning switch, as an Open vSwitch standalone bridge.
//!
//! [`NormalSwitch::process`] takes a packet's [`FlowKey`] and the [`PortTable`] and
//! 1. drops frames to reserved multicast addresses (01:80:c2:00:00:0x: STP, LACP, ...) unless
//!    `forward_bpdu` is set;
//! 2. finds the input port (it must exist and [`can_receive`](Port::can_receive)) and the
//!    packet's VLAN from the port's [`VlanMode`](crate::port::VlanMode) and the packet's tag;
//! 3. learns the source MAC (not group/zero sources) in that VLAN on the input port;
//! 4. forwards: a known unicast destination goes to its port (dropped if that is the input port
//!    or the port cannot forward); unknown unicast, broadcast and multicast flood the VLAN: every
//!    port that [`floods`](Port::floods) and carries the VLAN, except the input port.
//!
//! The result is a list of `(port, VlanOut)`: the tag each copy must carry. The caller (the
//! pipeline) makes each copy match it with push/pop/set-VLAN rewrites.
//!
//! ## Megaflows and the learning side effect
//!
//! `process` ORs the fields it consulted into a caller-supplied mask (OVS's `wc`): always
//! `in_port`, `eth_src`, `eth_dst` and `vlan_vid` (all bits), as OVS's `xlate_normal` does.
//! A megaflow built from that mask is correct for *forwarding* only as long as the MAC table and
//! the ports do not change: check [`NormalSwitch::generation`] and
//! [`PortTable::generation`] before trusting it. And learning is a side effect that a cache hit
//! must not skip: a datapath that serves a NORMAL flow from its cache must still call
//! [`NormalSwitch::learn_from`] for the packet (or cache NORMAL flows per exact
//! (in_port, eth_src, eth_dst, vlan) and refresh the entry on hits), or entries age out while
//! traffic flows and moves go unnoticed.
//!
//! Port changes (removal, link or admin down, blocked, VLAN mode) flush the affected entries:
//! `process` notices a new port-table generation and sweeps; [`NormalSwitch::sync_ports`] does
//! the same on demand (call it after port changes so `fdb/show` is right before traffic flows).

mod mac_table;
#[cfg(test)]
mod tests;

pub use mac_table::{
    DEFAULT_AGING_MS, DEFAULT_MAX_ENTRIES, LearnOutcome, MacEntry, MacHashBuilder, MacHasher,
    MacStats, MacTable, mac_is_multicast, mac_to_u64, u64_to_mac,
};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::flow::{Field, FlowKey};
use crate::port::{OFPP_LOCAL, Port, PortNo, PortState, PortTable, VlanOut};

/// Settings of the learning switch (OVS `other_config:mac-aging-time`, `mac-table-size`,
/// `forward-bpdu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormalConfig {
    /// How long a learned address lives after it was last seen, in milliseconds.
    pub aging_ms: u64,
    /// Most addresses the table holds; at the limit the least recently seen is evicted.
    pub max_entries: usize,
    /// Forward frames to reserved multicast addresses (01:80:c2:00:00:00-0f) instead of
    /// dropping them.
    pub forward_bpdu: bool,
}

impl Default for NormalConfig {
    fn default() -> Self {
        NormalConfig {
            aging_ms: DEFAULT_AGING_MS,
            max_entries: DEFAULT_MAX_ENTRIES,
            forward_bpdu: false,
        }
    }
}

/// Why NORMAL dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalDrop {
    /// Destination is a reserved multicast address (STP, LACP, LLDP...) and `forward_bpdu` is off.
    ReservedMulticast,
    /// The input port is not in the port table (e.g. a packet-out with `in_port=CONTROLLER`).
    UnknownInPort,
    /// The input port is down, blocked or `NO_RECV`.
    InPortCannotReceive,
    /// The input port's VLAN mode does not admit the packet's tag (or lack of one).
    VlanNotAllowed,
    /// The destination was learned on the input port.
    LearnedOnInPort,
    /// The destination's port is `NO_FWD` or blocked.
    OutPortCannotForward,
}

impl NormalDrop {
    /// A short explanation, for traces.
    pub fn reason(self) -> &'static str {
        match self {
            NormalDrop::ReservedMulticast => "destination is a reserved multicast address",
            NormalDrop::UnknownInPort => "input port is not a bridge port",
            NormalDrop::InPortCannotReceive => "input port is down, blocked or no-recv",
            NormalDrop::VlanNotAllowed => "input port does not admit the packet's VLAN",
            NormalDrop::LearnedOnInPort => "destination was learned on the input port",
            NormalDrop::OutPortCannotForward => "destination port is no-fwd or blocked",
        }
    }
}

impl core::fmt::Display for NormalDrop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

/// What NORMAL decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalOutcome {
    /// Known destination: one output.
    Unicast { vlan: u16, port: PortNo },
    /// Unknown unicast, broadcast or multicast: flooded in `vlan` (possibly to no port).
    Flood { vlan: u16 },
    /// No output.
    Drop(NormalDrop),
}

impl core::fmt::Display for NormalOutcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NormalOutcome::Unicast { vlan, port } => {
                write!(f, "learned destination on port {port} in VLAN {vlan}")
            }
            NormalOutcome::Flood { vlan } => write!(f, "flood in VLAN {vlan}"),
            NormalOutcome::Drop(d) => write!(f, "drop: {d}"),
        }
    }
}

/// The fields every NORMAL decision consults (as OVS's `xlate_normal`).
const CONSULTED: FlowKey = {
    const fn exact(mut k: FlowKey, f: Field) -> FlowKey {
        let i = f.info();
        // None of the consulted fields is 64 or 128 bits wide.
        k.w[i.word as usize] |= ((1u64 << i.bits) - 1) << i.shift;
        k
    }
    let k = exact(FlowKey::ZERO, Field::InPort);
    let k = exact(k, Field::EthSrc);
    let k = exact(k, Field::EthDst);
    exact(k, Field::VlanVid)
};

/// Whether a packed MAC is one of the IEEE 802.1D reserved addresses 01:80:c2:00:00:00-0f.
#[inline]
pub const fn mac_is_reserved(mac: u64) -> bool {
    mac & 0xffff_ffff_fff0 == 0x0180_c200_0000
}

/// The NORMAL learning switch of one bridge: its MAC table and settings.
#[derive(Clone, Debug)]
pub struct NormalSwitch {
    macs: MacTable,
    forward_bpdu: bool,
    /// Port-table generation the MAC table was last swept against.
    port_generation: Option<u64>,
    /// Bumped on settings changes that alter decisions (added to the MAC table's generation).
    config_generation: u64,
}

impl Default for NormalSwitch {
    fn default() -> Self {
        NormalSwitch::new(NormalConfig::default())
    }
}

impl NormalSwitch {
    /// A learning switch whose MAC table hashes with a fixed key; prefer
    /// [`with_hash_seed`](Self::with_hash_seed) on a switch that faces untrusted hosts.
    pub fn new(config: NormalConfig) -> NormalSwitch {
        NormalSwitch::with_table(config, MacTable::new(config.max_entries, config.aging_ms))
    }

    /// A learning switch whose MAC table hash is keyed by `seed` (a boot-time random value), so
    /// that hosts cannot precompute source MACs that collide in the table.
    pub fn with_hash_seed(config: NormalConfig, seed: u64) -> NormalSwitch {
        let macs = MacTable::with_hash_seed(config.max_entries, config.aging_ms, seed);
        NormalSwitch::with_table(config, macs)
    }

    fn with_table(config: NormalConfig, macs: MacTable) -> NormalSwitch {
        NormalSwitch {
            macs,
            forward_bpdu: config.forward_bpdu,
            port_generation: None,
            config_generation: 0,
        }
    }

    /// The current settings.
    pub fn config(&self) -> NormalConfig {
        NormalConfig {
            aging_ms: self.macs.aging_ms(),
            max_entries: self.macs.max_entries(),
            forward_bpdu: self.forward_bpdu,
        }
    }

    /// Applies new settings (shrinking the table evicts the least recently seen entries).
    pub fn set_config(&mut self, config: NormalConfig) {
        self.macs.set_aging_ms(config.aging_ms);
        self.macs.set_max_entries(config.max_entries);
        if config.forward_bpdu != self.forward_bpdu {
            self.forward_bpdu = config.forward_bpdu;
            self.config_generation = self.config_generation.wrapping_add(1);
        }
    }

    /// The MAC table, for introspection.
    pub fn mac_table(&self) -> &MacTable {
        &self.macs
    }

    /// The MAC table, for flushes and aging (`expire`) from timers and management.
    pub fn mac_table_mut(&mut self) -> &mut MacTable {
        &mut self.macs
    }

    /// Changes whenever a NORMAL decision for some packet could change (MAC table changes,
    /// settings), not when an entry is merely refreshed. Together with
    /// [`PortTable::generation`] it tells a cache when NORMAL results may be stale.
    ///
    /// Aging shows here only when expired entries are collected: run
    /// [`MacTable::expire`] from a timer (at [`MacTable::next_expiry_ms`], or every second).
    pub fn generation(&self) -> u64 {
        self.macs.generation().wrapping_add(self.config_generation)
    }

    /// As [`generation`](Self::generation), without the changes that only add addresses:
    /// enough for decisions about addresses that were known (see
    /// [`MacTable::removal_generation`]).
    pub fn removal_generation(&self) -> u64 {
        self.macs
            .removal_generation()
            .wrapping_add(self.config_generation)
    }

    /// Flushes the entries of ports that were removed, are down (link or admin), blocked, or no
    /// longer carry the entry's VLAN. Cheap when the port table did not change since the last
    /// sync. Returns the number of entries flushed.
    #[inline]
    pub fn sync_ports(&mut self, ports: &PortTable) -> usize {
        if self.port_generation == Some(ports.generation()) {
            return 0;
        }
        self.sweep_ports(ports)
    }

    #[cold]
    fn sweep_ports(&mut self, ports: &PortTable) -> usize {
        self.port_generation = Some(ports.generation());
        if self.macs.is_empty() {
            return 0;
        }
        self.macs.retain(|vlan, _, no| {
            ports.get(no).is_some_and(|p| {
                p.is_live()
                    && !p.state().contains(PortState::BLOCKED)
                    && p.vlan_mode().carries(vlan)
            })
        })
    }

    /// The input port and VLAN of a packet, or why it is not admitted.
    #[inline]
    fn admit<'p>(ports: &'p PortTable, key: &FlowKey) -> Result<(&'p Port, u16), NormalDrop> {
        let port = ports.get(key.in_port()).ok_or(NormalDrop::UnknownInPort)?;
        if !port.can_receive() {
            return Err(NormalDrop::InPortCannotReceive);
        }
        let vlan = port
            .vlan_mode()
            .input_vlan(key.vlan())
            .ok_or(NormalDrop::VlanNotAllowed)?;
        Ok((port, vlan))
    }

    /// Runs NORMAL for one packet at time `now_ms`.
    ///
    /// `out` is cleared, then receives one `(port, tag)` per copy to send, in ascending port order
    /// for floods. It is meant to be reused across packets: after warm-up no call allocates.
    /// `consulted` gets the bits of the fields the decision depended on ORed in (see the module
    /// documentation about caching the result).
    pub fn process(
        &mut self,
        ports: &PortTable,
        key: &FlowKey,
        now_ms: u64,
        consulted: &mut FlowKey,
        out: &mut Vec<(PortNo, VlanOut)>,
    ) -> NormalOutcome {
        out.clear();
        self.sync_ports(ports);
        for (c, m) in consulted.w.iter_mut().zip(CONSULTED.w) {
            *c |= m;
        }

        let dst = key.get(Field::EthDst) as u64;
        if !self.forward_bpdu && mac_is_reserved(dst) {
            return NormalOutcome::Drop(NormalDrop::ReservedMulticast);
        }
        let (in_port, vlan) = match Self::admit(ports, key) {
            Ok(x) => x,
            Err(d) => return NormalOutcome::Drop(d),
        };
        let in_no = in_port.no();

        self.macs
            .learn(vlan, key.get(Field::EthSrc) as u64, in_no, now_ms);

        if !mac_is_multicast(dst)
            && let Some(to) = self.macs.lookup(vlan, dst, now_ms)
        {
            if to == in_no {
                return NormalOutcome::Drop(NormalDrop::LearnedOnInPort);
            }
            // An entry whose port vanished or left the VLAN is stale (sync removes those);
            // fall back to flooding rather than trusting it.
            if let Some(p) = ports.get(to).filter(|p| p.vlan_mode().carries(vlan)) {
                if !p.can_forward() {
                    return NormalOutcome::Drop(NormalDrop::OutPortCannotForward);
                }
                out.push((to, p.vlan_mode().output_tag(vlan)));
                return NormalOutcome::Unicast { vlan, port: to };
            }
        }

        for p in ports.iter() {
            if p.no() != in_no && p.floods() && p.vlan_mode().carries(vlan) {
                out.push((p.no(), p.vlan_mode().output_tag(vlan)));
            }
        }
        NormalOutcome::Flood { vlan }
    }

    /// Only the learning half of [`process`](Self::process): for a datapath that served a NORMAL
    /// packet from its cache and must still keep the MAC table current.
    pub fn learn_from(&mut self, ports: &PortTable, key: &FlowKey, now_ms: u64) -> LearnOutcome {
        self.sync_ports(ports);
        if !self.forward_bpdu && mac_is_reserved(key.get(Field::EthDst) as u64) {
            return LearnOutcome::NotLearned;
        }
        match Self::admit(ports, key) {
            Ok((p, vlan)) => self
                .macs
                .learn(vlan, key.get(Field::EthSrc) as u64, p.no(), now_ms),
            Err(_) => LearnOutcome::NotLearned,
        }
    }

    /// The MAC table as `ovs-appctl fdb/show` prints it: a header line, then
    /// `port  VLAN  MAC  Age(s)` per entry, least recently seen first.
    pub fn fdb_show(&self, now_ms: u64) -> String {
        let mut s = String::from(" port  VLAN  MAC                Age\n");
        for e in self.macs.entries(now_ms) {
            let m = e.mac;
            let _ = if e.port == OFPP_LOCAL {
                write!(s, "{:>5}", "LOCAL")
            } else {
                write!(s, "{:>5}", e.port)
            };
            let _ = writeln!(
                s,
                "  {:>4}  {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  {:>3}",
                e.vlan,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                e.age_ms / 1000
            );
        }
        s
    }
}
