//! Switch ports: OpenFlow port numbers (1.3 and the 1.0 16-bit forms), port config/state flags,
//! VLAN port modes (Open vSwitch's `vlan_mode`/`tag`/`trunks`), counters, and the `PortTable`.
//!
//! The fields that decide forwarding (`config`, `state`, `vlan_mode`) can only be changed through
//! [`PortTable`], which bumps its [`generation`](PortTable::generation) on every such change, so
//! the datapath cache and the MAC table can tell when a cached decision may be stale. Everything
//! else on a [`Port`] (name, counters, speeds) is plain data, writable through
//! [`PortTable::get_mut`].

use alloc::string::String;
use alloc::vec::Vec;

use bitflags::bitflags;

/// An OpenFlow 1.3 port number (32 bits). OpenFlow 1.0's 16-bit numbers convert with
/// [`port_from_of10`] / [`port_to_of10`].
pub type PortNo = u32;

/// Highest number a physical or logical port may have is `OFPP_MAX - 1`; numbers from
/// `OFPP_MAX` up are reserved.
pub const OFPP_MAX: PortNo = 0xffff_ff00;
/// Send the packet out the port it came in on.
pub const OFPP_IN_PORT: PortNo = 0xffff_fff8;
/// Submit the packet to the first flow table (packet-out only).
pub const OFPP_TABLE: PortNo = 0xffff_fff9;
/// Forward with the NORMAL learning switch ([`crate::normal`]).
pub const OFPP_NORMAL: PortNo = 0xffff_fffa;
/// Flood: every port that can forward and is not `NO_FLOOD`, except the input port.
pub const OFPP_FLOOD: PortNo = 0xffff_fffb;
/// Every port that can forward, except the input port.
pub const OFPP_ALL: PortNo = 0xffff_fffc;
/// Send to the controller.
pub const OFPP_CONTROLLER: PortNo = 0xffff_fffd;
/// The switch's local (in-band management) port.
pub const OFPP_LOCAL: PortNo = 0xffff_fffe;
/// Wildcard / "no port" (OpenFlow 1.0 calls it `OFPP_NONE`).
pub const OFPP_ANY: PortNo = 0xffff_ffff;
/// OpenFlow 1.0's name for [`OFPP_ANY`].
pub const OFPP_NONE: PortNo = OFPP_ANY;

/// OpenFlow 1.0: first reserved 16-bit port number.
pub const OFPP10_MAX: u16 = 0xff00;
/// OpenFlow 1.0 `OFPP_IN_PORT`.
pub const OFPP10_IN_PORT: u16 = 0xfff8;
/// OpenFlow 1.0 `OFPP_TABLE`.
pub const OFPP10_TABLE: u16 = 0xfff9;
/// OpenFlow 1.0 `OFPP_NORMAL`.
pub const OFPP10_NORMAL: u16 = 0xfffa;
/// OpenFlow 1.0 `OFPP_FLOOD`.
pub const OFPP10_FLOOD: u16 = 0xfffb;
/// OpenFlow 1.0 `OFPP_ALL`.
pub const OFPP10_ALL: u16 = 0xfffc;
/// OpenFlow 1.0 `OFPP_CONTROLLER`.
pub const OFPP10_CONTROLLER: u16 = 0xfffd;
/// OpenFlow 1.0 `OFPP_LOCAL`.
pub const OFPP10_LOCAL: u16 = 0xfffe;
/// OpenFlow 1.0 `OFPP_NONE`.
pub const OFPP10_NONE: u16 = 0xffff;

/// Distance between a 16-bit reserved number and its 32-bit twin (as Open vSwitch's
/// `OFPP11_OFFSET`): `0xfff8` ↔ `0xfffffff8`, and the reserved range `0xff00..` ↔ `0xffffff00..`.
const OF10_OFFSET: PortNo = 0xffff_0000;

/// An OpenFlow 1.0 port number as a 1.3 number. Never fails: ordinary numbers stay, the reserved
/// range `0xff00..=0xffff` maps onto `0xffffff00..=0xffffffff` (so `OFPP_NONE` becomes `OFPP_ANY`).
pub const fn port_from_of10(port: u16) -> PortNo {
    if port < OFPP10_MAX {
        port as PortNo
    } else {
        port as PortNo + OF10_OFFSET
    }
}

/// An OpenFlow 1.3 port number as a 1.0 number, or `None` when 1.0 cannot express it (ordinary
/// numbers from `0xff00` up to `OFPP_MAX - 1`).
pub const fn port_to_of10(port: PortNo) -> Option<u16> {
    if port < OFPP10_MAX as PortNo {
        Some(port as u16)
    } else if port >= OFPP_MAX {
        Some((port - OF10_OFFSET) as u16)
    } else {
        None
    }
}

/// Whether `port` is one of the reserved numbers (`OFPP_MAX` and up).
pub const fn is_reserved(port: PortNo) -> bool {
    port >= OFPP_MAX
}

/// Whether `port` may name a port in a [`PortTable`]: `1..OFPP_MAX`, or `OFPP_LOCAL`.
pub const fn is_valid_port_no(port: PortNo) -> bool {
    (port != 0 && port < OFPP_MAX) || port == OFPP_LOCAL
}

bitflags! {
    /// Administrative port configuration (`ofp_port_config`), OpenFlow 1.3 bit values, plus the
    /// OpenFlow 1.0 bits that Open vSwitch keeps (`NO_STP`, `NO_RECV_STP`, `NO_FLOOD`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PortConfig: u32 {
        /// Port is administratively down.
        const PORT_DOWN = 1 << 0;
        /// OpenFlow 1.0: disable 802.1D spanning tree on the port.
        const NO_STP = 1 << 1;
        /// Drop all packets received by the port.
        const NO_RECV = 1 << 2;
        /// OpenFlow 1.0: drop received 802.1D STP packets.
        const NO_RECV_STP = 1 << 3;
        /// OpenFlow 1.0 (kept by Open vSwitch): do not include the port when flooding.
        const NO_FLOOD = 1 << 4;
        /// Drop packets forwarded to the port.
        const NO_FWD = 1 << 5;
        /// Do not send packet-in messages for the port.
        const NO_PACKET_IN = 1 << 6;
    }
}

impl PortConfig {
    /// The bits OpenFlow 1.3 defines (what a 1.3 port-mod may change).
    pub const OF13_MASK: PortConfig = PortConfig::PORT_DOWN
        .union(PortConfig::NO_RECV)
        .union(PortConfig::NO_FWD)
        .union(PortConfig::NO_PACKET_IN);
}

bitflags! {
    /// Port state (`ofp_port_state`), OpenFlow 1.3 bit values. `LIVE` is maintained by
    /// [`PortTable`]: it is set exactly when [`Port::is_live`] holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PortState: u32 {
        /// No physical link present.
        const LINK_DOWN = 1 << 0;
        /// Port is blocked (by STP/RSTP or the operator).
        const BLOCKED = 1 << 1;
        /// Live for fast-failover groups.
        const LIVE = 1 << 2;
    }
}

/// Highest usable VLAN id; 4095 is reserved by 802.1Q.
pub const VLAN_MAX: u16 = 4094;

/// A set of VLAN ids (a 4096-bit bitmap), for a port's allowed (trunked) VLANs.
///
/// VLAN 0 stands for "untagged traffic": a trunk whose set contains 0 accepts untagged frames
/// into VLAN 0 (as Open vSwitch does with `trunks=0`). [`VlanSet::all`] is 1..=4094 (no 0).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VlanSet {
    bits: [u64; 64],
}

impl VlanSet {
    /// No VLAN.
    pub const EMPTY: VlanSet = VlanSet { bits: [0; 64] };

    /// Every usable VLAN, 1..=4094 (not 0, not 4095).
    pub const fn all() -> VlanSet {
        let mut bits = [u64::MAX; 64];
        bits[0] &= !1; // VLAN 0
        bits[63] &= !(1 << 63); // VLAN 4095
        VlanSet { bits }
    }

    /// The set holding `vids` (ids above 4095 are ignored).
    pub fn from_vids(vids: &[u16]) -> VlanSet {
        let mut s = VlanSet::EMPTY;
        for &v in vids {
            s.insert(v);
        }
        s
    }

    /// Whether `vid` is in the set (false for ids above 4095).
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let i = vid as usize >> 6;
        i < 64 && self.bits[i] & (1 << (vid & 63)) != 0
    }

    /// Adds `vid` (ignored above 4095).
    pub fn insert(&mut self, vid: u16) {
        let i = vid as usize >> 6;
        if i < 64 {
            self.bits[i] |= 1 << (vid & 63);
        }
    }

    /// Removes `vid`.
    pub fn remove(&mut self, vid: u16) {
        let i = vid as usize >> 6;
        if i < 64 {
            self.bits[i] &= !(1 << (vid & 63));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Number of VLANs in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The VLAN ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..4096u16).filter(|&v| self.contains(v))
    }
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet::EMPTY
    }
}

impl core::fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if *self == VlanSet::all() {
            return f.write_str("VlanSet(all)");
        }
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How a port takes part in VLANs, as Open vSwitch's `vlan_mode` with `tag` and `trunks`.
///
/// Inside the switch every packet belongs to one VLAN 0..=4094; VLAN 0 is the untagged domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VlanMode {
    /// Carries one VLAN, untagged. Untagged or priority-tagged (VID 0) frames enter the VLAN;
    /// frames tagged with a non-zero VID are dropped (even with the access VID, as in OVS).
    Access(u16),
    /// Carries the VLANs in the set, tagged. Tagged frames of other VLANs and untagged frames are
    /// dropped (untagged frames enter VLAN 0 only when the set contains 0).
    Trunk(VlanSet),
    /// Carries the native VLAN (first) and the set; untagged frames enter the native VLAN; the
    /// native VLAN leaves tagged.
    NativeTagged(u16, VlanSet),
    /// Carries the native VLAN (first) and the set; untagged frames enter the native VLAN; the
    /// native VLAN leaves untagged.
    NativeUntagged(u16, VlanSet),
}

impl Default for VlanMode {
    /// Open vSwitch's default for a port without `tag`/`trunks`: untagged frames stay untagged
    /// (VLAN 0) and every tagged VLAN passes tagged.
    fn default() -> Self {
        VlanMode::NativeUntagged(0, VlanSet::all())
    }
}

/// The tag a packet must carry when it leaves a port (the state to reach, not an action: the
/// caller pushes, pops or rewrites the tag as needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VlanOut {
    /// No 802.1Q tag.
    Untagged,
    /// One 802.1Q tag with this VID (12 bits, 1..=4094).
    Tagged(u16),
}

impl VlanMode {
    /// The VLAN a frame received on this port belongs to, given its outermost tag's VID (`None`
    /// for an untagged frame), or `None` if the port must drop it. VID 0 (priority tag) counts as
    /// untagged; VID 4095 is always dropped.
    #[inline]
    pub fn input_vlan(&self, tag: Option<u16>) -> Option<u16> {
        let tag = match tag {
            Some(v) if v & 0x0fff != 0 => Some(v & 0x0fff),
            _ => None,
        };
        let vlan = match (self, tag) {
            (_, Some(v)) if v > VLAN_MAX => None,
            (VlanMode::Access(a), None) => Some(*a),
            (VlanMode::Access(_), Some(_)) => None,
            (VlanMode::Trunk(s), None) => s.contains(0).then_some(0),
            (VlanMode::Trunk(s), Some(v)) => s.contains(v).then_some(v),
            (VlanMode::NativeTagged(n, _) | VlanMode::NativeUntagged(n, _), None) => Some(*n),
            (VlanMode::NativeTagged(n, s) | VlanMode::NativeUntagged(n, s), Some(v)) => {
                (v == *n || s.contains(v)).then_some(v)
            }
        };
        // A misconfigured access or native VID (above 4094) admits nothing.
        vlan.filter(|&v| v <= VLAN_MAX)
    }

    /// Whether every VID in the mode is usable (access and native VIDs 0..=4094; sets cannot
    /// hold more than 4095 and 4095 itself is never admitted). A mode that fails this still
    /// behaves safely: the bad VLAN is neither admitted nor carried.
    pub fn is_valid(&self) -> bool {
        match self {
            VlanMode::Access(v) | VlanMode::NativeTagged(v, _) | VlanMode::NativeUntagged(v, _) => {
                *v <= VLAN_MAX
            }
            VlanMode::Trunk(_) => true,
        }
    }

    /// Whether the port carries `vlan`.
    #[inline]
    pub fn carries(&self, vlan: u16) -> bool {
        if vlan > VLAN_MAX {
            return false;
        }
        match self {
            VlanMode::Access(a) => vlan == *a,
            VlanMode::Trunk(s) => s.contains(vlan),
            VlanMode::NativeTagged(n, s) | VlanMode::NativeUntagged(n, s) => {
                vlan == *n || s.contains(vlan)
            }
        }
    }

    /// The tag a packet of `vlan` carries when it leaves this port (assuming [`carries`]).
    /// VLAN 0 always leaves untagged.
    ///
    /// [`carries`]: VlanMode::carries
    #[inline]
    pub fn output_tag(&self, vlan: u16) -> VlanOut {
        match self {
            _ if vlan == 0 => VlanOut::Untagged,
            VlanMode::Access(_) => VlanOut::Untagged,
            VlanMode::NativeUntagged(n, _) if vlan == *n => VlanOut::Untagged,
            VlanMode::Trunk(_) | VlanMode::NativeTagged(..) | VlanMode::NativeUntagged(..) => {
                VlanOut::Tagged(vlan)
            }
        }
    }
}

/// Per-port packet counters (OpenFlow port stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Frames too short or inconsistent to parse (also counted in `rx_errors`).
    pub rx_malformed: u64,
}

impl PortCounters {
    /// Counts one received frame of `bytes` bytes.
    #[inline]
    pub fn record_rx(&mut self, bytes: usize) {
        self.rx_packets = self.rx_packets.wrapping_add(1);
        self.rx_bytes = self.rx_bytes.wrapping_add(bytes as u64);
    }

    /// Counts one transmitted frame of `bytes` bytes.
    #[inline]
    pub fn record_tx(&mut self, bytes: usize) {
        self.tx_packets = self.tx_packets.wrapping_add(1);
        self.tx_bytes = self.tx_bytes.wrapping_add(bytes as u64);
    }

    /// Counts one malformed received frame (an rx error too).
    #[inline]
    pub fn record_malformed(&mut self) {
        self.rx_malformed = self.rx_malformed.wrapping_add(1);
        self.rx_errors = self.rx_errors.wrapping_add(1);
    }
}

/// OpenFlow port feature bitmaps (`ofp_port_features`: `OFPPF_*`), carried as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortFeatures {
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
}

/// One switch port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    no: PortNo,
    /// Interface name (OpenFlow carries at most 15 bytes of it).
    pub name: String,
    pub hw_addr: [u8; 6],
    config: PortConfig,
    state: PortState,
    vlan_mode: VlanMode,
    pub counters: PortCounters,
    pub features: PortFeatures,
    pub curr_speed_kbps: u32,
    pub max_speed_kbps: u32,
    /// When the port was added (caller's clock, milliseconds), for stats durations.
    pub added_ms: u64,
}

impl Port {
    /// A port with link up, empty config and the default VLAN mode ([`VlanMode::default`]).
    pub fn new(no: PortNo, name: &str, hw_addr: [u8; 6]) -> Port {
        let mut p = Port {
            no,
            name: String::from(name),
            hw_addr,
            config: PortConfig::empty(),
            state: PortState::empty(),
            vlan_mode: VlanMode::default(),
            counters: PortCounters::default(),
            features: PortFeatures::default(),
            curr_speed_kbps: 0,
            max_speed_kbps: 0,
            added_ms: 0,
        };
        p.update_live();
        p
    }

    /// Builder: sets the config flags.
    pub fn with_config(mut self, config: PortConfig) -> Port {
        self.config = config;
        self.update_live();
        self
    }

    /// Builder: sets the VLAN mode.
    pub fn with_vlan_mode(mut self, mode: VlanMode) -> Port {
        self.vlan_mode = mode;
        self
    }

    /// Builder: sets whether the link is up.
    pub fn with_link_up(mut self, up: bool) -> Port {
        self.state.set(PortState::LINK_DOWN, !up);
        self.update_live();
        self
    }

    /// Builder: sets the `BLOCKED` state bit.
    pub fn with_blocked(mut self, blocked: bool) -> Port {
        self.state.set(PortState::BLOCKED, blocked);
        self
    }

    pub fn no(&self) -> PortNo {
        self.no
    }
    pub fn config(&self) -> PortConfig {
        self.config
    }
    /// The state bits, `LIVE` included.
    pub fn state(&self) -> PortState {
        self.state
    }
    pub fn vlan_mode(&self) -> &VlanMode {
        &self.vlan_mode
    }

    /// Link up and not administratively down (OpenFlow liveness, for fast-failover groups).
    #[inline]
    pub fn is_live(&self) -> bool {
        !self.state.contains(PortState::LINK_DOWN) && !self.config.contains(PortConfig::PORT_DOWN)
    }

    /// Whether packets may be sent out this port: live, not blocked, not `NO_FWD`.
    #[inline]
    pub fn can_forward(&self) -> bool {
        self.is_live()
            && !self.state.contains(PortState::BLOCKED)
            && !self.config.contains(PortConfig::NO_FWD)
    }

    /// Whether packets received on this port may be processed: live, not blocked, not `NO_RECV`.
    #[inline]
    pub fn can_receive(&self) -> bool {
        self.is_live()
            && !self.state.contains(PortState::BLOCKED)
            && !self.config.contains(PortConfig::NO_RECV)
    }

    /// Whether FLOOD (and NORMAL's flooding) sends out this port: [`can_forward`](Port::can_forward)
    /// and not `NO_FLOOD`.
    #[inline]
    pub fn floods(&self) -> bool {
        self.can_forward() && !self.config.contains(PortConfig::NO_FLOOD)
    }

    fn update_live(&mut self) {
        let live = self.is_live();
        self.state.set(PortState::LIVE, live);
    }
}

/// Why a [`PortTable`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// No port with that number.
    NoSuchPort,
    /// A port with that number already exists.
    Exists,
    /// The number is 0 or reserved (only `OFPP_LOCAL` of the reserved numbers may be a port).
    InvalidNumber,
}

/// The ports of a bridge, ordered by port number.
///
/// Lookups are binary searches over a sorted vector: bridges have tens to hundreds of ports and
/// flooding iterates them all, so contiguity beats a tree.
#[derive(Clone, Debug, Default)]
pub struct PortTable {
    ports: Vec<Port>,
    generation: u64,
}

impl PortTable {
    pub fn new() -> PortTable {
        PortTable::default()
    }

    /// Bumped on every change that can affect forwarding: add, remove, config, state and VLAN
    /// mode changes. Not bumped for counters, names or speeds.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    #[inline]
    fn index(&self, no: PortNo) -> Result<usize, usize> {
        self.ports.binary_search_by_key(&no, |p| p.no)
    }

    /// Adds `port`. Fails if its number is taken or invalid ([`is_valid_port_no`]).
    pub fn add(&mut self, mut port: Port) -> Result<(), PortError> {
        if !is_valid_port_no(port.no) {
            return Err(PortError::InvalidNumber);
        }
        match self.index(port.no) {
            Ok(_) => Err(PortError::Exists),
            Err(i) => {
                port.update_live();
                self.ports.insert(i, port);
                self.bump();
                Ok(())
            }
        }
    }

    /// Removes and returns port `no`.
    pub fn remove(&mut self, no: PortNo) -> Option<Port> {
        let i = self.index(no).ok()?;
        self.bump();
        Some(self.ports.remove(i))
    }

    #[inline]
    pub fn get(&self, no: PortNo) -> Option<&Port> {
        self.index(no).ok().map(|i| &self.ports[i])
    }

    /// The port, for its non-forwarding data (counters, name, speeds). Forwarding-relevant fields
    /// change through [`mod_config`](Self::mod_config), [`set_link`](Self::set_link),
    /// [`set_blocked`](Self::set_blocked) and [`set_vlan_mode`](Self::set_vlan_mode).
    #[inline]
    pub fn get_mut(&mut self, no: PortNo) -> Option<&mut Port> {
        self.index(no).ok().map(move |i| &mut self.ports[i])
    }

    pub fn contains(&self, no: PortNo) -> bool {
        self.index(no).is_ok()
    }

    /// The port named `name` (linear search; management path only).
    pub fn by_name(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The ports in ascending port-number order.
    #[inline]
    pub fn iter(&self) -> core::slice::Iter<'_, Port> {
        self.ports.iter()
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The lowest free ordinary port number (1 and up), as OVS assigns `ofport`.
    pub fn next_free_no(&self) -> Option<PortNo> {
        let mut want: PortNo = 1;
        for p in &self.ports {
            if p.no > want {
                break;
            }
            if p.no == want {
                want += 1;
            }
        }
        (want < OFPP_MAX).then_some(want)
    }

    fn modify(&mut self, no: PortNo, f: impl FnOnce(&mut Port) -> bool) -> Result<bool, PortError> {
        let i = self.index(no).map_err(|_| PortError::NoSuchPort)?;
        let p = &mut self.ports[i];
        let changed = f(p);
        p.update_live();
        if changed {
            self.bump();
        }
        Ok(changed)
    }

    /// OpenFlow port-mod: the bits in `mask` take their values from `config`, the others stay.
    /// Returns whether anything changed.
    pub fn mod_config(
        &mut self,
        no: PortNo,
        config: PortConfig,
        mask: PortConfig,
    ) -> Result<bool, PortError> {
        self.modify(no, |p| {
            let new = (p.config & !mask) | (config & mask);
            let changed = new != p.config;
            p.config = new;
            changed
        })
    }

    /// Link carrier up or down (from the driver). Returns whether it changed.
    pub fn set_link(&mut self, no: PortNo, up: bool) -> Result<bool, PortError> {
        self.modify(no, |p| {
            let changed = p.state.contains(PortState::LINK_DOWN) == up;
            p.state.set(PortState::LINK_DOWN, !up);
            changed
        })
    }

    /// Sets the `BLOCKED` state (STP/RSTP or operator). Returns whether it changed.
    pub fn set_blocked(&mut self, no: PortNo, blocked: bool) -> Result<bool, PortError> {
        self.modify(no, |p| {
            let changed = p.state.contains(PortState::BLOCKED) != blocked;
            p.state.set(PortState::BLOCKED, blocked);
            changed
        })
    }

    /// Sets the VLAN mode. Returns whether it changed.
    pub fn set_vlan_mode(&mut self, no: PortNo, mode: VlanMode) -> Result<bool, PortError> {
        self.modify(no, |p| {
            let changed = p.vlan_mode != mode;
            p.vlan_mode = mode;
            changed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of10_numbers_convert_both_ways() {
        assert_eq!(port_from_of10(1), 1);
        assert_eq!(port_from_of10(0xfeff), 0xfeff);
        assert_eq!(port_from_of10(OFPP10_NORMAL), OFPP_NORMAL);
        assert_eq!(port_from_of10(OFPP10_NONE), OFPP_ANY);
        assert_eq!(port_from_of10(OFPP10_MAX), OFPP_MAX);
        assert_eq!(port_from_of10(OFPP10_IN_PORT), OFPP_IN_PORT);
        assert_eq!(port_to_of10(OFPP_CONTROLLER), Some(OFPP10_CONTROLLER));
        assert_eq!(port_to_of10(OFPP_LOCAL), Some(OFPP10_LOCAL));
        assert_eq!(port_to_of10(7), Some(7));
        assert_eq!(port_to_of10(0xff00), None);
        assert_eq!(port_to_of10(0x1_0000), None);
        for p in 0..=u16::MAX {
            assert_eq!(port_to_of10(port_from_of10(p)), Some(p));
        }
    }

    #[test]
    fn reserved_and_valid_numbers() {
        assert!(is_reserved(OFPP_MAX));
        assert!(!is_reserved(OFPP_MAX - 1));
        assert!(!is_valid_port_no(0));
        assert!(is_valid_port_no(1));
        assert!(is_valid_port_no(OFPP_LOCAL));
        assert!(!is_valid_port_no(OFPP_CONTROLLER));
        assert!(!is_valid_port_no(OFPP_MAX));
    }

    #[test]
    fn config_bit_values_are_the_openflow_ones() {
        assert_eq!(PortConfig::PORT_DOWN.bits(), 1);
        assert_eq!(PortConfig::NO_RECV.bits(), 4);
        assert_eq!(PortConfig::NO_FLOOD.bits(), 16);
        assert_eq!(PortConfig::NO_FWD.bits(), 32);
        assert_eq!(PortConfig::NO_PACKET_IN.bits(), 64);
        assert_eq!(PortState::LINK_DOWN.bits(), 1);
        assert_eq!(PortState::BLOCKED.bits(), 2);
        assert_eq!(PortState::LIVE.bits(), 4);
    }

    #[test]
    fn vlan_set_basics() {
        let all = VlanSet::all();
        assert!(!all.contains(0));
        assert!(all.contains(1));
        assert!(all.contains(4094));
        assert!(!all.contains(4095));
        assert!(!all.contains(5000));
        assert_eq!(all.len(), 4094);
        let mut s = VlanSet::from_vids(&[10, 20, 9999]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [10, 20]);
        s.remove(10);
        assert!(!s.contains(10));
        assert!(VlanSet::EMPTY.is_empty());
    }

    #[test]
    fn access_port_vlans() {
        let m = VlanMode::Access(10);
        assert_eq!(m.input_vlan(None), Some(10));
        assert_eq!(m.input_vlan(Some(0)), Some(10), "priority-tagged");
        assert_eq!(
            m.input_vlan(Some(10)),
            None,
            "tagged, even with the access VID"
        );
        assert_eq!(m.input_vlan(Some(20)), None);
        assert!(m.carries(10));
        assert!(!m.carries(20));
        assert_eq!(m.output_tag(10), VlanOut::Untagged);
    }

    #[test]
    fn trunk_port_vlans() {
        let m = VlanMode::Trunk(VlanSet::from_vids(&[10, 20]));
        assert_eq!(m.input_vlan(None), None);
        assert_eq!(m.input_vlan(Some(0)), None);
        assert_eq!(m.input_vlan(Some(10)), Some(10));
        assert_eq!(m.input_vlan(Some(30)), None);
        assert_eq!(m.input_vlan(Some(4095)), None);
        assert_eq!(m.output_tag(20), VlanOut::Tagged(20));
        let with0 = VlanMode::Trunk(VlanSet::from_vids(&[0, 10]));
        assert_eq!(with0.input_vlan(None), Some(0));
        assert_eq!(with0.output_tag(0), VlanOut::Untagged);
        let all = VlanMode::Trunk(VlanSet::all());
        assert_eq!(all.input_vlan(Some(4094)), Some(4094));
        assert_eq!(all.input_vlan(Some(4095)), None);
        assert_eq!(all.input_vlan(None), None);
    }

    #[test]
    fn native_port_vlans() {
        let t = VlanMode::NativeTagged(5, VlanSet::from_vids(&[10]));
        let u = VlanMode::NativeUntagged(5, VlanSet::from_vids(&[10]));
        for m in [&t, &u] {
            assert_eq!(m.input_vlan(None), Some(5));
            assert_eq!(m.input_vlan(Some(0)), Some(5));
            assert_eq!(m.input_vlan(Some(5)), Some(5));
            assert_eq!(m.input_vlan(Some(10)), Some(10));
            assert_eq!(m.input_vlan(Some(11)), None);
            assert!(m.carries(5) && m.carries(10) && !m.carries(11));
            assert_eq!(m.output_tag(10), VlanOut::Tagged(10));
        }
        assert_eq!(t.output_tag(5), VlanOut::Tagged(5));
        assert_eq!(u.output_tag(5), VlanOut::Untagged);
        let bad = VlanMode::NativeUntagged(4096, VlanSet::all());
        assert!(!bad.is_valid());
        assert_eq!(bad.input_vlan(None), None);
        assert!(!bad.carries(4096) && !bad.carries(4095));
        assert!(!VlanMode::Access(4095).is_valid());
        assert_eq!(VlanMode::Access(4095).input_vlan(None), None);
        assert!(VlanMode::Access(4094).is_valid());
        assert!(!VlanMode::Trunk(VlanSet::from_vids(&[4095])).carries(4095));
        let d = VlanMode::default();
        assert_eq!(d.input_vlan(None), Some(0));
        assert_eq!(d.input_vlan(Some(100)), Some(100));
        assert_eq!(d.output_tag(0), VlanOut::Untagged);
        assert_eq!(d.output_tag(100), VlanOut::Tagged(100));
    }

    #[test]
    fn liveness_and_flags() {
        let p = Port::new(1, "p1", [0; 6]);
        assert!(p.is_live() && p.can_forward() && p.can_receive() && p.floods());
        assert!(p.state().contains(PortState::LIVE));
        let down = Port::new(1, "p1", [0; 6]).with_link_up(false);
        assert!(!down.is_live() && !down.can_forward() && !down.can_receive());
        assert!(!down.state().contains(PortState::LIVE));
        let admin = Port::new(1, "p1", [0; 6]).with_config(PortConfig::PORT_DOWN);
        assert!(!admin.is_live());
        let nofwd = Port::new(1, "p1", [0; 6]).with_config(PortConfig::NO_FWD);
        assert!(nofwd.is_live() && !nofwd.can_forward() && nofwd.can_receive() && !nofwd.floods());
        let norecv = Port::new(1, "p1", [0; 6]).with_config(PortConfig::NO_RECV);
        assert!(norecv.can_forward() && !norecv.can_receive());
        let noflood = Port::new(1, "p1", [0; 6]).with_config(PortConfig::NO_FLOOD);
        assert!(noflood.can_forward() && !noflood.floods());
        let blocked = Port::new(1, "p1", [0; 6]).with_blocked(true);
        assert!(blocked.is_live() && !blocked.can_forward() && !blocked.can_receive());
    }

    #[test]
    fn table_orders_counts_generations() {
        let mut t = PortTable::new();
        let g0 = t.generation();
        t.add(Port::new(3, "c", [0; 6])).unwrap();
        t.add(Port::new(1, "a", [0; 6])).unwrap();
        t.add(Port::new(OFPP_LOCAL, "br0", [0; 6])).unwrap();
        assert_eq!(t.add(Port::new(1, "x", [0; 6])), Err(PortError::Exists));
        assert_eq!(
            t.add(Port::new(0, "x", [0; 6])),
            Err(PortError::InvalidNumber)
        );
        assert_eq!(
            t.iter().map(|p| p.no()).collect::<Vec<_>>(),
            [1, 3, OFPP_LOCAL]
        );
        assert_eq!(t.next_free_no(), Some(2));
        assert_eq!(t.by_name("c").map(|p| p.no()), Some(3));
        let g1 = t.generation();
        assert_ne!(g0, g1);

        // Counters do not bump the generation.
        t.get_mut(1).unwrap().counters.record_rx(60);
        assert_eq!(t.generation(), g1);
        assert_eq!(t.get(1).unwrap().counters.rx_bytes, 60);

        // Port-mod: only masked bits change; no-op changes do not bump.
        assert_eq!(
            t.mod_config(1, PortConfig::NO_FWD, PortConfig::NO_FWD),
            Ok(true)
        );
        let g2 = t.generation();
        assert_ne!(g1, g2);
        assert_eq!(
            t.mod_config(1, PortConfig::NO_FWD, PortConfig::NO_FWD),
            Ok(false)
        );
        assert_eq!(t.generation(), g2);
        assert_eq!(
            t.mod_config(1, PortConfig::PORT_DOWN, PortConfig::empty()),
            Ok(false)
        );
        assert_eq!(t.get(1).unwrap().config(), PortConfig::NO_FWD);

        assert_eq!(t.set_link(3, false), Ok(true));
        assert!(!t.get(3).unwrap().state().contains(PortState::LIVE));
        assert_eq!(t.set_link(3, false), Ok(false));
        assert_eq!(t.set_link(3, true), Ok(true));
        assert!(t.get(3).unwrap().state().contains(PortState::LIVE));
        assert_eq!(t.set_blocked(3, true), Ok(true));
        assert_eq!(t.set_vlan_mode(3, VlanMode::Access(7)), Ok(true));
        assert_eq!(t.set_vlan_mode(3, VlanMode::Access(7)), Ok(false));
        assert_eq!(t.set_link(9, true), Err(PortError::NoSuchPort));

        let g3 = t.generation();
        assert!(t.remove(3).is_some());
        assert!(t.remove(3).is_none());
        assert_ne!(t.generation(), g3);
        assert!(!t.contains(3));
    }
}
