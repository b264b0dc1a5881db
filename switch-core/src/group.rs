//! OpenFlow 1.3 groups: all, select, indirect and fast-failover; group-mod with the spec's
//! checks; bucket choice (select by a hash of the flow with weights, fast-failover by
//! liveness); per-group and per-bucket counters.
//!
//! Removing the flows that use a deleted group is the pipeline's part (`Pipeline::group_mod`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::action::{Action, ActionContext, OFPG_ALL, OFPG_ANY, OFPG_MAX, validate_actions};
use crate::error::OfpError;
use crate::flow::{Field, FlowKey};
use crate::flow_match::{Match, eth_type, ip_proto};
use crate::port::{OFPP_ANY, OFPP_MAX, PortNo, PortTable};

/// Deepest chain of groups (a bucket sending to a group whose bucket sends to a group ...).
pub const MAX_GROUP_CHAIN: usize = 8;
/// Default limits.
pub const DEFAULT_MAX_GROUPS: usize = 65536;
pub const DEFAULT_MAX_BUCKETS: usize = 1024;
/// Most bucket liveness checks one group decision makes (see `bucket_live`).
pub const LIVENESS_BUDGET: u32 = 4096;

/// `ofp_group_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GroupType {
    All = 0,
    Select = 1,
    Indirect = 2,
    FastFailover = 3,
}

impl GroupType {
    /// Decodes the wire value (`BAD_TYPE` for others).
    pub fn from_u8(v: u8) -> Result<GroupType, OfpError> {
        match v {
            0 => Ok(GroupType::All),
            1 => Ok(GroupType::Select),
            2 => Ok(GroupType::Indirect),
            3 => Ok(GroupType::FastFailover),
            _ => Err(OfpError::GROUP_MOD_FAILED_BAD_TYPE),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
        }
    }
}

/// `ofp_group_mod_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

impl GroupModCommand {
    /// Decodes the wire value (`BAD_COMMAND` for others).
    pub fn from_u16(v: u16) -> Result<GroupModCommand, OfpError> {
        match v {
            0 => Ok(GroupModCommand::Add),
            1 => Ok(GroupModCommand::Modify),
            2 => Ok(GroupModCommand::Delete),
            _ => Err(OfpError::GROUP_MOD_FAILED_BAD_COMMAND),
        }
    }
}

/// A bucket as a group-mod carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Relative weight (select groups only; 0 elsewhere).
    pub weight: u16,
    /// Port whose liveness decides the bucket's (fast-failover), or `OFPP_ANY`.
    pub watch_port: PortNo,
    /// Group whose liveness decides the bucket's (fast-failover), or `OFPG_ANY`.
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    /// A bucket of an all/indirect group.
    pub fn new(actions: Vec<Action>) -> Bucket {
        Bucket {
            weight: 0,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions,
        }
    }

    /// A select-group bucket.
    pub fn weighted(weight: u16, actions: Vec<Action>) -> Bucket {
        Bucket {
            weight,
            ..Bucket::new(actions)
        }
    }

    /// A fast-failover bucket watching a port.
    pub fn watching(port: PortNo, actions: Vec<Action>) -> Bucket {
        Bucket {
            watch_port: port,
            ..Bucket::new(actions)
        }
    }

    fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.actions.iter().filter_map(|a| match a {
            Action::Group(g) => Some(*g),
            _ => None,
        })
    }
}

/// A group-mod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

/// Counters of one bucket.
#[derive(Clone, Debug, Default)]
pub struct BucketCounters {
    pub packets: Cell<u64>,
    pub bytes: Cell<u64>,
}

/// An installed group.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: u32,
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
    pub bucket_counters: Vec<BucketCounters>,
    pub packets: Cell<u64>,
    pub bytes: Cell<u64>,
    pub created_ms: u64,
}

/// Group statistics (`ofp_group_stats`, with the flow reference count filled by the pipeline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_ms: u64,
    /// `(packets, bytes)` per bucket.
    pub buckets: Vec<(u64, u64)>,
}

impl Group {
    pub(crate) fn count(&self, bytes: usize) {
        self.packets.set(self.packets.get() + 1);
        self.bytes.set(self.bytes.get() + bytes as u64);
    }

    pub(crate) fn count_bucket(&self, i: usize, bytes: usize) {
        if let Some(c) = self.bucket_counters.get(i) {
            c.packets.set(c.packets.get() + 1);
            c.bytes.set(c.bytes.get() + bytes as u64);
        }
    }
}

/// The group table of a bridge.
#[derive(Clone, Debug)]
pub struct GroupTable {
    groups: BTreeMap<u32, Group>,
    pub max_groups: usize,
    pub max_buckets: usize,
    generation: u64,
}

impl Default for GroupTable {
    fn default() -> Self {
        Self::new()
    }
}

/// A 64-bit mix (splitmix64 finalizer).
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash a select group spreads flows by: Ethernet addresses and type, VLAN, and for IP the
/// protocol, addresses and (TCP/UDP/SCTP) ports. ORs every field it reads into `wc`.
pub fn flow_hash(key: &FlowKey, wc: &mut FlowKey) -> u64 {
    let mut h = 0x5bd1_e995u64;
    let mut add = |f: Field, wc: &mut FlowKey| {
        wc.set_exact(f);
        let v = key.get(f);
        h = mix(h ^ (v as u64) ^ ((v >> 64) as u64).rotate_left(17));
    };
    for f in [Field::EthSrc, Field::EthDst, Field::EthType, Field::VlanVid] {
        add(f, wc);
    }
    let et = key.eth_type();
    let ip = match et {
        eth_type::IPV4 => {
            add(Field::Ipv4Src, wc);
            add(Field::Ipv4Dst, wc);
            true
        }
        eth_type::IPV6 => {
            add(Field::Ipv6Src, wc);
            add(Field::Ipv6Dst, wc);
            true
        }
        _ => false,
    };
    if ip {
        add(Field::IpProto, wc);
        if matches!(
            key.ip_proto(),
            ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP
        ) {
            add(Field::TcpSrc, wc);
            add(Field::TcpDst, wc);
        }
    }
    h
}

impl GroupTable {
    pub fn new() -> Self {
        GroupTable {
            groups: BTreeMap::new(),
            max_groups: DEFAULT_MAX_GROUPS,
            max_buckets: DEFAULT_MAX_BUCKETS,
            generation: 0,
        }
    }

    /// Changes on every modification.
    /// Sets every group's and bucket's counters to zero (see `Pipeline::zero_counters`).
    pub(crate) fn zero_counters(&mut self) {
        for g in self.groups.values_mut() {
            g.packets.set(0);
            g.bytes.set(0);
            for c in &mut g.bucket_counters {
                c.packets.set(0);
                c.bytes.set(0);
            }
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, id: u32) -> Option<&Group> {
        self.groups.get(&id)
    }

    pub fn contains(&self, id: u32) -> bool {
        self.groups.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Whether some other group's bucket sends to or watches `id`.
    pub fn is_referenced(&self, id: u32) -> bool {
        self.groups.values().any(|g| {
            g.id != id
                && g.buckets
                    .iter()
                    .any(|b| b.watch_group == id || b.groups().any(|x| x == id))
        })
    }

    /// Checks the group chains the table would have if group `id` had `buckets`: no loop
    /// (`LOOP`), none longer than [`MAX_GROUP_CHAIN`] groups (`CHAINING_UNSUPPORTED`). Linear in
    /// the number of group references (heights are memoized), so a controller cannot make it
    /// explode with wide chains.
    fn check_chains(&self, id: u32, buckets: &[Bucket]) -> Result<(), OfpError> {
        enum Mark {
            Visiting,
            Done(usize),
        }
        fn height(
            t: &GroupTable,
            id: u32,
            new: &[Bucket],
            g: u32,
            depth: usize,
            memo: &mut BTreeMap<u32, Mark>,
        ) -> Result<usize, OfpError> {
            if depth > MAX_GROUP_CHAIN {
                return Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED);
            }
            match memo.get(&g) {
                Some(Mark::Visiting) => return Err(OfpError::GROUP_MOD_FAILED_LOOP),
                Some(Mark::Done(h)) => return Ok(*h),
                None => {}
            }
            let buckets: &[Bucket] = if g == id {
                new
            } else {
                match t.groups.get(&g) {
                    Some(grp) => &grp.buckets,
                    None => return Ok(1),
                }
            };
            memo.insert(g, Mark::Visiting);
            let mut best = 1;
            for b in buckets {
                for next in b.groups() {
                    best = best.max(1 + height(t, id, new, next, depth + 1, memo)?);
                }
            }
            memo.insert(g, Mark::Done(best));
            Ok(best)
        }
        let mut memo = BTreeMap::new();
        let mut max = height(self, id, buckets, id, 1, &mut memo)?;
        for &g in self.groups.keys() {
            max = max.max(height(self, id, buckets, g, 1, &mut memo)?);
        }
        if max > MAX_GROUP_CHAIN {
            return Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED);
        }
        Ok(())
    }

    fn validate(&self, gm: &GroupMod) -> Result<(), OfpError> {
        if gm.group_id > OFPG_MAX {
            return Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP);
        }
        if gm.buckets.len() > self.max_buckets {
            return Err(OfpError::GROUP_MOD_FAILED_OUT_OF_BUCKETS);
        }
        if gm.group_type == GroupType::Indirect && gm.buckets.len() != 1 {
            return Err(OfpError::GROUP_MOD_FAILED_BAD_BUCKET);
        }
        for b in &gm.buckets {
            let watches = b.watch_port != OFPP_ANY || b.watch_group != OFPG_ANY;
            match gm.group_type {
                GroupType::Select => {}
                _ if b.weight != 0 => return Err(OfpError::GROUP_MOD_FAILED_WEIGHT_UNSUPPORTED),
                _ => {}
            }
            match gm.group_type {
                GroupType::FastFailover => {
                    if !watches
                        || b.watch_port == 0
                        || (b.watch_port >= OFPP_MAX && b.watch_port != OFPP_ANY)
                        || (b.watch_group > OFPG_MAX && b.watch_group != OFPG_ANY)
                    {
                        return Err(OfpError::GROUP_MOD_FAILED_BAD_WATCH);
                    }
                    if b.watch_group != OFPG_ANY && !self.groups.contains_key(&b.watch_group) {
                        return Err(OfpError::GROUP_MOD_FAILED_BAD_WATCH);
                    }
                }
                GroupType::All | GroupType::Indirect if watches => {
                    return Err(OfpError::GROUP_MOD_FAILED_WATCH_UNSUPPORTED);
                }
                _ => {}
            }
            if b.groups().any(|g| g == gm.group_id) || b.watch_group == gm.group_id {
                return Err(OfpError::GROUP_MOD_FAILED_LOOP);
            }
            let ctx = ActionContext {
                group_exists: &|g| self.groups.contains_key(&g),
                packet_out: false,
                check_prereqs: false,
            };
            validate_actions(&b.actions, &Match::ANY, &ctx)?;
        }
        self.check_chains(gm.group_id, &gm.buckets)
    }

    fn build(gm: &GroupMod, now_ms: u64) -> Group {
        Group {
            id: gm.group_id,
            group_type: gm.group_type,
            buckets: gm.buckets.clone(),
            bucket_counters: gm
                .buckets
                .iter()
                .map(|_| BucketCounters::default())
                .collect(),
            packets: Cell::new(0),
            bytes: Cell::new(0),
            created_ms: now_ms,
        }
    }

    /// Adds a group (`GROUP_EXISTS`, `OUT_OF_GROUPS` and the validation errors).
    pub(crate) fn add(&mut self, gm: &GroupMod, now_ms: u64) -> Result<(), OfpError> {
        if gm.group_id <= OFPG_MAX && self.groups.contains_key(&gm.group_id) {
            return Err(OfpError::GROUP_MOD_FAILED_GROUP_EXISTS);
        }
        self.validate(gm)?;
        if self.groups.len() >= self.max_groups {
            return Err(OfpError::GROUP_MOD_FAILED_OUT_OF_GROUPS);
        }
        self.groups.insert(gm.group_id, Self::build(gm, now_ms));
        self.generation += 1;
        Ok(())
    }

    /// Replaces a group's type and buckets (`UNKNOWN_GROUP` if absent); counters restart.
    pub(crate) fn modify(&mut self, gm: &GroupMod, now_ms: u64) -> Result<(), OfpError> {
        if gm.group_id > OFPG_MAX {
            return Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP);
        }
        let Some(old) = self.groups.get(&gm.group_id) else {
            return Err(OfpError::GROUP_MOD_FAILED_UNKNOWN_GROUP);
        };
        let created = old.created_ms;
        self.validate(gm)?;
        let _ = now_ms;
        self.groups.insert(gm.group_id, Self::build(gm, created));
        self.generation += 1;
        Ok(())
    }

    /// Removes group `id` (or all for `OFPG_ALL`); returns the ids removed. A group another
    /// group still refers to is not removed (`CHAINED_GROUP`).
    pub(crate) fn delete(&mut self, id: u32) -> Result<Vec<u32>, OfpError> {
        if id == OFPG_ALL {
            let ids: Vec<u32> = self.groups.keys().copied().collect();
            self.groups.clear();
            if !ids.is_empty() {
                self.generation += 1;
            }
            return Ok(ids);
        }
        if id > OFPG_MAX {
            return Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP);
        }
        if !self.groups.contains_key(&id) {
            return Ok(Vec::new());
        }
        if self.is_referenced(id) {
            return Err(OfpError::GROUP_MOD_FAILED_CHAINED_GROUP);
        }
        self.groups.remove(&id);
        self.generation += 1;
        Ok(alloc::vec![id])
    }

    /// Whether a group is live: it exists and (fast-failover, select) has a live bucket.
    pub fn group_live(&self, id: u32, ports: &PortTable) -> bool {
        let mut budget = LIVENESS_BUDGET;
        self.group_live_in(id, ports, 0, &mut budget)
    }

    fn group_live_in(&self, id: u32, ports: &PortTable, depth: usize, budget: &mut u32) -> bool {
        let Some(g) = self.groups.get(&id) else {
            return false;
        };
        if depth > MAX_GROUP_CHAIN {
            return false;
        }
        match g.group_type {
            GroupType::FastFailover | GroupType::Select => g
                .buckets
                .iter()
                .any(|b| self.bucket_live_in(b, ports, depth + 1, budget)),
            _ => true,
        }
    }

    /// Whether a bucket is live: its watched port is live and its watched group is live.
    pub fn bucket_live(&self, b: &Bucket, ports: &PortTable) -> bool {
        let mut budget = LIVENESS_BUDGET;
        self.bucket_live_in(b, ports, 0, &mut budget)
    }

    fn bucket_live_in(
        &self,
        b: &Bucket,
        ports: &PortTable,
        depth: usize,
        budget: &mut u32,
    ) -> bool {
        // Watch-group chains could make this exponential in their depth: a budget bounds the
        // work of one decision (a bucket beyond it counts as dead).
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        (b.watch_port == OFPP_ANY || ports.get(b.watch_port).is_some_and(|p| p.is_live()))
            && (b.watch_group == OFPG_ANY
                || self.group_live_in(b.watch_group, ports, depth, budget))
    }

    /// The buckets a packet with `key` goes through: `f(index, is_last)` for each, in order.
    pub fn choose(
        &self,
        g: &Group,
        key: &FlowKey,
        wc: &mut FlowKey,
        ports: &PortTable,
        mut f: impl FnMut(usize, bool),
    ) {
        if g.group_type == GroupType::All {
            let n = g.buckets.len();
            for i in 0..n {
                f(i, i + 1 == n);
            }
        } else if let Some(i) = self.select_bucket(g, key, wc, ports) {
            f(i, true);
        }
    }

    /// The one bucket of an indirect, select or fast-failover group a packet with `key` takes.
    /// Select hashes the flow (the fields it reads are ORed into `wc`) and picks among live
    /// buckets in proportion to their weights; fast-failover takes the first live bucket.
    /// `None` for all-groups and when no bucket is usable.
    pub fn select_bucket(
        &self,
        g: &Group,
        key: &FlowKey,
        wc: &mut FlowKey,
        ports: &PortTable,
    ) -> Option<usize> {
        match g.group_type {
            GroupType::All => None,
            GroupType::Indirect => (!g.buckets.is_empty()).then_some(0),
            GroupType::FastFailover => {
                let mut budget = LIVENESS_BUDGET;
                g.buckets
                    .iter()
                    .position(|b| self.bucket_live_in(b, ports, 0, &mut budget))
            }
            GroupType::Select => {
                // Two passes over the buckets in the same order with the same budget see the
                // same liveness.
                let live = |b: &Bucket, budget: &mut u32| {
                    b.weight > 0 && self.bucket_live_in(b, ports, 0, budget)
                };
                let mut budget = LIVENESS_BUDGET;
                let total: u64 = g
                    .buckets
                    .iter()
                    .filter(|b| live(b, &mut budget))
                    .map(|b| b.weight as u64)
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut point = flow_hash(key, wc) % total;
                let mut budget = LIVENESS_BUDGET;
                for (i, b) in g.buckets.iter().enumerate() {
                    if !live(b, &mut budget) {
                        continue;
                    }
                    if point < b.weight as u64 {
                        return Some(i);
                    }
                    point -= b.weight as u64;
                }
                None
            }
        }
    }

    pub(crate) fn stats(&self, g: &Group, ref_count: u32, now_ms: u64) -> GroupStats {
        GroupStats {
            group_id: g.id,
            ref_count,
            packet_count: g.packets.get(),
            byte_count: g.bytes.get(),
            duration_ms: now_ms.saturating_sub(g.created_ms),
            buckets: g
                .bucket_counters
                .iter()
                .map(|c| (c.packets.get(), c.bytes.get()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{Port, PortTable};
    use alloc::vec;

    fn gm(cmd: GroupModCommand, t: GroupType, id: u32, buckets: Vec<Bucket>) -> GroupMod {
        GroupMod {
            command: cmd,
            group_type: t,
            group_id: id,
            buckets,
        }
    }

    fn add(
        t: &mut GroupTable,
        ty: GroupType,
        id: u32,
        buckets: Vec<Bucket>,
    ) -> Result<(), OfpError> {
        t.add(&gm(GroupModCommand::Add, ty, id, buckets), 0)
    }

    fn out(p: u32) -> Vec<Action> {
        vec![Action::output(p)]
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            GroupType::from_u8(4),
            Err(OfpError::GROUP_MOD_FAILED_BAD_TYPE)
        );
        assert_eq!(GroupType::from_u8(3), Ok(GroupType::FastFailover));
        assert_eq!(
            GroupModCommand::from_u16(3),
            Err(OfpError::GROUP_MOD_FAILED_BAD_COMMAND)
        );
        assert_eq!(GroupModCommand::from_u16(1), Ok(GroupModCommand::Modify));
    }

    #[test]
    fn add_modify_delete_errors() {
        let mut t = GroupTable::new();
        assert_eq!(
            add(&mut t, GroupType::All, 1, vec![Bucket::new(out(1))]),
            Ok(())
        );
        assert_eq!(
            add(&mut t, GroupType::All, 1, vec![]),
            Err(OfpError::GROUP_MOD_FAILED_GROUP_EXISTS)
        );
        assert_eq!(
            add(&mut t, GroupType::All, OFPG_ALL, vec![]),
            Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP)
        );
        assert_eq!(
            add(&mut t, GroupType::Indirect, 2, vec![]),
            Err(OfpError::GROUP_MOD_FAILED_BAD_BUCKET)
        );
        assert_eq!(
            add(&mut t, GroupType::All, 2, vec![Bucket::weighted(3, out(1))]),
            Err(OfpError::GROUP_MOD_FAILED_WEIGHT_UNSUPPORTED)
        );
        assert_eq!(
            add(&mut t, GroupType::All, 2, vec![Bucket::watching(1, out(1))]),
            Err(OfpError::GROUP_MOD_FAILED_WATCH_UNSUPPORTED)
        );
        assert_eq!(
            add(
                &mut t,
                GroupType::FastFailover,
                2,
                vec![Bucket::new(out(1))]
            ),
            Err(OfpError::GROUP_MOD_FAILED_BAD_WATCH)
        );
        let mut b = Bucket::new(out(1));
        b.watch_group = 77;
        assert_eq!(
            add(&mut t, GroupType::FastFailover, 2, vec![b]),
            Err(OfpError::GROUP_MOD_FAILED_BAD_WATCH)
        );
        assert_eq!(
            add(
                &mut t,
                GroupType::All,
                2,
                vec![Bucket::new(vec![Action::Group(2)])]
            ),
            Err(OfpError::GROUP_MOD_FAILED_LOOP)
        );
        assert_eq!(
            add(
                &mut t,
                GroupType::All,
                2,
                vec![Bucket::new(vec![Action::Group(9)])]
            ),
            Err(OfpError::BAD_ACTION_BAD_OUT_GROUP)
        );
        assert_eq!(
            add(&mut t, GroupType::All, 2, vec![Bucket::new(out(0))]),
            Err(OfpError::BAD_ACTION_BAD_OUT_PORT)
        );
        t.max_buckets = 2;
        assert_eq!(
            add(&mut t, GroupType::All, 2, vec![Bucket::new(out(1)); 3]),
            Err(OfpError::GROUP_MOD_FAILED_OUT_OF_BUCKETS)
        );
        t.max_groups = 1;
        assert_eq!(
            add(&mut t, GroupType::All, 2, vec![]),
            Err(OfpError::GROUP_MOD_FAILED_OUT_OF_GROUPS)
        );
        t.max_groups = 100;
        // Modify.
        let m = |id, buckets| gm(GroupModCommand::Modify, GroupType::All, id, buckets);
        assert_eq!(
            t.modify(&m(5, vec![]), 0),
            Err(OfpError::GROUP_MOD_FAILED_UNKNOWN_GROUP)
        );
        assert_eq!(
            t.modify(&m(OFPG_ANY, vec![]), 0),
            Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP)
        );
        // 2 -> 1, then making 1 -> 2 is a loop.
        assert_eq!(
            add(
                &mut t,
                GroupType::All,
                2,
                vec![Bucket::new(vec![Action::Group(1)])]
            ),
            Ok(())
        );
        assert_eq!(
            t.modify(&m(1, vec![Bucket::new(vec![Action::Group(2)])]), 0),
            Err(OfpError::GROUP_MOD_FAILED_LOOP)
        );
        // Delete: 1 is chained from 2.
        assert_eq!(t.delete(1), Err(OfpError::GROUP_MOD_FAILED_CHAINED_GROUP));
        assert_eq!(
            t.delete(OFPG_ANY),
            Err(OfpError::GROUP_MOD_FAILED_INVALID_GROUP)
        );
        assert_eq!(t.delete(42), Ok(vec![]));
        assert_eq!(t.delete(2), Ok(vec![2]));
        assert_eq!(t.delete(1), Ok(vec![1]));
        add(&mut t, GroupType::All, 3, vec![]).unwrap();
        add(&mut t, GroupType::All, 4, vec![]).unwrap();
        let g = t.generation();
        assert_eq!(t.delete(OFPG_ALL), Ok(vec![3, 4]));
        assert!(t.is_empty());
        assert_ne!(t.generation(), g);
    }

    #[test]
    fn chains_deeper_than_the_limit_are_refused() {
        let mut t = GroupTable::new();
        add(&mut t, GroupType::All, 1, vec![Bucket::new(out(1))]).unwrap();
        for id in 2..=MAX_GROUP_CHAIN as u32 {
            add(
                &mut t,
                GroupType::All,
                id,
                vec![Bucket::new(vec![Action::Group(id - 1)])],
            )
            .unwrap();
        }
        let id = MAX_GROUP_CHAIN as u32 + 1;
        assert_eq!(
            add(
                &mut t,
                GroupType::All,
                id,
                vec![Bucket::new(vec![Action::Group(id - 1)])]
            ),
            Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED)
        );
    }

    #[test]
    fn select_spreads_by_weight_and_skips_dead_buckets() {
        let mut ports = PortTable::new();
        for p in 1..=3 {
            ports
                .add(Port::new(p, "p", [0, 0, 0, 0, 0, p as u8]))
                .unwrap();
        }
        let mut t = GroupTable::new();
        let mut b3 = Bucket::weighted(1, out(3));
        b3.watch_port = 3;
        add(
            &mut t,
            GroupType::Select,
            1,
            vec![Bucket::weighted(1, out(1)), Bucket::weighted(3, out(2)), b3],
        )
        .unwrap();
        let g = t.get(1).unwrap();
        let mut hits = [0usize; 3];
        for i in 0..5000u32 {
            let mut k = FlowKey::ZERO;
            k.set(Field::EthType, 0x0800);
            k.set(Field::IpProto, 6);
            k.set(Field::Ipv4Src, 0x0a00_0000 + i as u128);
            k.set(Field::TcpSrc, (i * 7) as u128 & 0xffff);
            let mut wc = FlowKey::ZERO;
            t.choose(g, &k, &mut wc, &ports, |b, _| hits[b] += 1);
            assert_eq!(wc.get(Field::Ipv4Src), 0xffff_ffff);
            assert_eq!(wc.get(Field::TcpSrc), 0xffff);
        }
        // Expected 1000 / 3000 / 1000.
        assert!((800..1200).contains(&hits[0]), "{hits:?}");
        assert!((2700..3300).contains(&hits[1]), "{hits:?}");
        assert!((800..1200).contains(&hits[2]), "{hits:?}");
        ports.set_link(3, false).unwrap();
        let mut hits = [0usize; 3];
        for i in 0..1000u32 {
            let mut k = FlowKey::ZERO;
            k.set(Field::EthSrc, i as u128);
            t.choose(g, &k, &mut FlowKey::default(), &ports, |b, _| hits[b] += 1);
        }
        assert_eq!(hits[2], 0);
        assert_eq!(hits[0] + hits[1], 1000);
    }

    #[test]
    fn fast_failover_and_watch_groups() {
        let mut ports = PortTable::new();
        for p in 1..=2 {
            ports
                .add(Port::new(p, "p", [0, 0, 0, 0, 0, p as u8]))
                .unwrap();
        }
        let mut t = GroupTable::new();
        add(
            &mut t,
            GroupType::FastFailover,
            1,
            vec![Bucket::watching(1, out(1)), Bucket::watching(2, out(2))],
        )
        .unwrap();
        let mut wg = Bucket::new(out(5));
        wg.watch_group = 1;
        add(&mut t, GroupType::FastFailover, 2, vec![wg]).unwrap();
        let pick = |t: &GroupTable, ports: &PortTable, id| {
            let mut r = None;
            t.choose(
                t.get(id).unwrap(),
                &FlowKey::ZERO,
                &mut FlowKey::default(),
                ports,
                |b, _| r = Some(b),
            );
            r
        };
        assert_eq!(pick(&t, &ports, 1), Some(0));
        ports.set_link(1, false).unwrap();
        assert_eq!(pick(&t, &ports, 1), Some(1));
        assert_eq!(pick(&t, &ports, 2), Some(0));
        ports.set_link(2, false).unwrap();
        assert_eq!(pick(&t, &ports, 1), None);
        assert_eq!(
            pick(&t, &ports, 2),
            None,
            "watched group has no live bucket"
        );
        assert!(!t.group_live(1, &ports));
        assert!(t.is_referenced(1));
    }

    #[test]
    fn watch_group_fan_out_is_bounded() {
        // G1 <- G2 <- ... <- G8, each with many buckets all watching the previous group, whose
        // only port is down: an unbounded evaluation would take buckets^depth steps.
        let mut ports = PortTable::new();
        ports.add(Port::new(1, "p", [0, 0, 0, 0, 0, 1])).unwrap();
        ports.set_link(1, false).unwrap();
        let mut t = GroupTable::new();
        add(
            &mut t,
            GroupType::FastFailover,
            1,
            vec![Bucket::watching(1, out(1))],
        )
        .unwrap();
        for id in 2..=8u32 {
            let mut b = Bucket::new(out(1));
            b.watch_group = id - 1;
            add(&mut t, GroupType::FastFailover, id, vec![b; 64]).unwrap();
        }
        assert!(!t.group_live(8, &ports));
        let g = t.get(8).unwrap();
        assert_eq!(
            t.select_bucket(g, &FlowKey::ZERO, &mut FlowKey::default(), &ports),
            None
        );
        ports.set_link(1, true).unwrap();
        assert!(t.group_live(8, &ports));
        assert_eq!(
            t.select_bucket(g, &FlowKey::ZERO, &mut FlowKey::default(), &ports),
            Some(0)
        );
    }

    #[test]
    fn wide_chains_validate_fast_and_modify_cannot_lengthen_chains_past_the_limit() {
        let mut t = GroupTable::new();
        t.max_buckets = 512;
        add(&mut t, GroupType::All, 1, vec![Bucket::new(out(1))]).unwrap();
        // 2..=8 each with 512 buckets all sending to the previous group: 512^7 paths.
        for id in 2..=MAX_GROUP_CHAIN as u32 {
            let b = Bucket::new(vec![Action::Group(id - 1)]);
            add(&mut t, GroupType::All, id, vec![b; 512]).unwrap();
        }
        // A new group on top is one too many.
        assert_eq!(
            add(
                &mut t,
                GroupType::All,
                100,
                vec![Bucket::new(vec![Action::Group(8)])]
            ),
            Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED)
        );
        // Group 1 (the bottom) pointing to a fresh group would lengthen every chain above it.
        add(&mut t, GroupType::All, 50, vec![Bucket::new(out(2))]).unwrap();
        let m = GroupMod {
            command: GroupModCommand::Modify,
            group_type: GroupType::All,
            group_id: 1,
            buckets: vec![Bucket::new(vec![Action::Group(50)])],
        };
        assert_eq!(
            t.modify(&m, 0),
            Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED)
        );
        // Pointing the bottom at the top is a loop.
        let m = GroupMod {
            buckets: vec![Bucket::new(vec![Action::Group(8)])],
            ..m
        };
        assert!(matches!(
            t.modify(&m, 0),
            Err(OfpError::GROUP_MOD_FAILED_LOOP)
                | Err(OfpError::GROUP_MOD_FAILED_CHAINING_UNSUPPORTED)
        ));
    }
}
