//! Conversions between the codec's wire-shaped types and `switch_core`'s pipeline types:
//! OXM `Match` ⇄ `flow_match::Match`, `Action`/`Instruction` ⇄ `action::{Action, Instructions}`,
//! `FlowMod`/`GroupMod` requests → the pipeline's, and pipeline results (flow entries, removed
//! flows, packet-ins, table stats) → messages.
//!
//! Actions the pipeline does not implement (MPLS push/pop/TTL, copy-TTL) are refused here with
//! `BAD_ACTION/BAD_TYPE`, as Open vSwitch refuses actions it does not support.

use alloc::vec::Vec;

use switch_core::action as core_action;
use switch_core::error::OfpError as CoreError;
use switch_core::flow::Field;
use switch_core::flow_match::Match as CoreMatch;
use switch_core::group as core_group;
use switch_core::pipeline as core_pipe;
use switch_core::table as core_table;

use super::action::{Action, Instruction};
use super::error::OfpError;
use super::group::{Bucket, GroupCommand, GroupMod};
use super::message::{FlowMod, FlowModCommand, FlowRemoved, PacketIn};
use super::multipart::{FlowStats, OFPTT_ALL, TableStats};
use super::oxm::{Match, OxmField};

impl From<CoreError> for OfpError {
    fn from(e: CoreError) -> OfpError {
        OfpError {
            type_: e.type_,
            code: e.code,
        }
    }
}

impl From<OfpError> for CoreError {
    fn from(e: OfpError) -> CoreError {
        CoreError::new(e.type_, e.code)
    }
}

impl Match {
    /// The pipeline's match, validated (`BAD_MATCH/*`).
    pub fn to_core(&self) -> Result<CoreMatch, OfpError> {
        let mut m = CoreMatch::new();
        for f in &self.fields {
            match f.mask {
                Some(mask) => m.set_masked(f.field, f.value, mask),
                None => m.set(f.field, f.value),
            };
        }
        m.validate()?;
        Ok(m)
    }

    /// The OXM form of a pipeline match (an all-ones mask becomes an exact field).
    pub fn from_core(m: &CoreMatch) -> Match {
        let fields = m
            .fields()
            .filter_map(|field| {
                let (value, mask) = m.get(field)?;
                Some(if mask == field.max() {
                    OxmField::exact(field, value)
                } else {
                    OxmField::masked(field, value & mask, mask)
                })
            })
            .collect();
        Match { fields }
    }
}

impl Action {
    /// Appends the pipeline's form of this action to `out` (`Enqueue` becomes set-queue +
    /// output).
    pub fn to_core(&self, out: &mut Vec<core_action::Action>) -> Result<(), OfpError> {
        use core_action::Action as C;
        let a = match *self {
            Action::Output { port, max_len } => C::Output { port, max_len },
            Action::Group(g) => C::Group(g),
            Action::SetQueue(q) => C::SetQueue(q),
            Action::Enqueue { port, queue_id } => {
                out.push(C::SetQueue(queue_id));
                C::Output { port, max_len: 0 }
            }
            Action::PushVlan(t) => C::PushVlan(t),
            Action::PopVlan => C::PopVlan,
            Action::SetNwTtl(t) => C::SetNwTtl(t),
            Action::DecNwTtl => C::DecNwTtl,
            Action::SetField(f) => C::SetField {
                field: f.field,
                value: f.value,
            },
            Action::PushMpls(_)
            | Action::PopMpls(_)
            | Action::SetMplsTtl(_)
            | Action::DecMplsTtl
            | Action::CopyTtlOut
            | Action::CopyTtlIn => return Err(OfpError::BAD_ACTION_TYPE),
        };
        out.push(a);
        Ok(())
    }

    pub fn from_core(a: &core_action::Action) -> Action {
        use core_action::Action as C;
        match *a {
            C::Output { port, max_len } => Action::Output { port, max_len },
            C::Group(g) => Action::Group(g),
            C::SetField { field, value } => Action::SetField(OxmField::exact(field, value)),
            C::PushVlan(t) => Action::PushVlan(t),
            C::PopVlan => Action::PopVlan,
            C::SetQueue(q) => Action::SetQueue(q),
            C::DecNwTtl => Action::DecNwTtl,
            C::SetNwTtl(t) => Action::SetNwTtl(t),
        }
    }
}

/// The pipeline's form of an action list.
pub fn actions_to_core(actions: &[Action]) -> Result<Vec<core_action::Action>, OfpError> {
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        a.to_core(&mut out)?;
    }
    Ok(out)
}

/// The codec's form of a pipeline action list.
pub fn actions_from_core(actions: &[core_action::Action]) -> Vec<Action> {
    actions.iter().map(Action::from_core).collect()
}

/// The pipeline's instructions (`DUP_INST` if a type repeats).
pub fn instructions_to_core(insts: &[Instruction]) -> Result<core_action::Instructions, OfpError> {
    use core_action::Instruction as C;
    let mut list = Vec::with_capacity(insts.len());
    for i in insts {
        list.push(match i {
            Instruction::GotoTable(t) => C::GotoTable(*t),
            Instruction::WriteMetadata { metadata, mask } => C::WriteMetadata {
                metadata: *metadata,
                mask: *mask,
            },
            Instruction::WriteActions(a) => C::WriteActions(actions_to_core(a)?),
            Instruction::ApplyActions(a) => C::ApplyActions(actions_to_core(a)?),
            Instruction::ClearActions => C::ClearActions,
            Instruction::Meter(m) => C::Meter(*m),
        });
    }
    Ok(core_action::Instructions::from_list(list)?)
}

/// The codec's instruction list for pipeline instructions, in execution order.
pub fn instructions_from_core(i: &core_action::Instructions) -> Vec<Instruction> {
    let mut v = Vec::new();
    if let Some(m) = i.meter {
        v.push(Instruction::Meter(m));
    }
    if !i.apply.is_empty() {
        v.push(Instruction::ApplyActions(actions_from_core(&i.apply)));
    }
    if i.clear {
        v.push(Instruction::ClearActions);
    }
    if !i.write.is_empty() {
        v.push(Instruction::WriteActions(actions_from_core(&i.write)));
    }
    if let Some((metadata, mask)) = i.write_metadata {
        v.push(Instruction::WriteMetadata { metadata, mask });
    }
    if let Some(t) = i.goto {
        v.push(Instruction::GotoTable(t));
    }
    v
}

impl FlowMod {
    /// The pipeline's flow-mod. An OpenFlow 1.0 add or modify without a table id
    /// (`OFPTT_ALL`) goes to table 0, as in Open vSwitch. The buffer id is the caller's
    /// business (apply the flow, then release the buffer).
    pub fn to_core(&self) -> Result<core_pipe::FlowMod, OfpError> {
        use core_pipe::FlowModCommand as C;
        let command = match self.command {
            FlowModCommand::Add => C::Add,
            FlowModCommand::Modify => C::Modify,
            FlowModCommand::ModifyStrict => C::ModifyStrict,
            FlowModCommand::Delete => C::Delete,
            FlowModCommand::DeleteStrict => C::DeleteStrict,
        };
        let table_id = match (self.table_id, command) {
            (OFPTT_ALL, C::Add | C::Modify | C::ModifyStrict) => 0,
            (t, _) => t,
        };
        Ok(core_pipe::FlowMod {
            command,
            table_id,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            priority: self.priority,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            flags: core_pipe::flow_mod_flags(self.flags)?,
            out_port: self.out_port,
            out_group: self.out_group,
            match_: self.match_.to_core()?,
            instructions: instructions_to_core(&self.instructions)?,
        })
    }
}

impl GroupMod {
    /// The pipeline's group-mod.
    pub fn to_core(&self) -> Result<core_group::GroupMod, OfpError> {
        let command = match self.command {
            GroupCommand::Add => core_group::GroupModCommand::Add,
            GroupCommand::Modify => core_group::GroupModCommand::Modify,
            GroupCommand::Delete => core_group::GroupModCommand::Delete,
        };
        let group_type = match (command, core_group::GroupType::from_u8(self.group_type)) {
            (_, Ok(t)) => t,
            // A delete's type is irrelevant.
            (core_group::GroupModCommand::Delete, Err(_)) => core_group::GroupType::All,
            (_, Err(e)) => return Err(e.into()),
        };
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                Ok(core_group::Bucket {
                    weight: b.weight,
                    watch_port: b.watch_port,
                    watch_group: b.watch_group,
                    actions: actions_to_core(&b.actions)?,
                })
            })
            .collect::<Result<Vec<_>, OfpError>>()?;
        Ok(core_group::GroupMod {
            command,
            group_type,
            group_id: self.group_id,
            buckets,
        })
    }
}

impl Bucket {
    pub fn from_core(b: &core_group::Bucket) -> Bucket {
        Bucket {
            weight: b.weight,
            watch_port: b.watch_port,
            watch_group: b.watch_group,
            actions: actions_from_core(&b.actions),
        }
    }
}

impl FlowStats {
    /// The flow-statistics entry of a pipeline flow entry at `now_ms`.
    pub fn from_entry(table_id: u8, e: &core_table::FlowEntry, now_ms: u64) -> FlowStats {
        let age = now_ms.saturating_sub(e.created_ms);
        FlowStats {
            table_id,
            duration_sec: (age / 1000) as u32,
            duration_nsec: ((age % 1000) * 1_000_000) as u32,
            priority: e.priority,
            idle_timeout: e.idle_timeout,
            hard_timeout: e.hard_timeout,
            flags: e.flags.bits(),
            importance: 0,
            cookie: e.cookie,
            packet_count: e.packets.get(),
            byte_count: e.bytes.get(),
            match_: Match::from_core(&e.match_),
            instructions: instructions_from_core(&e.instructions),
        }
    }
}

impl FlowRemoved {
    pub fn from_core(r: &core_table::FlowRemoved) -> FlowRemoved {
        FlowRemoved {
            cookie: r.cookie,
            priority: r.priority,
            reason: r.reason as u8,
            table_id: r.table_id,
            duration_sec: (r.duration_ms / 1000) as u32,
            duration_nsec: ((r.duration_ms % 1000) * 1_000_000) as u32,
            idle_timeout: r.idle_timeout,
            hard_timeout: r.hard_timeout,
            packet_count: r.packet_count,
            byte_count: r.byte_count,
            match_: Match::from_core(&r.match_),
        }
    }
}

impl TableStats {
    pub fn from_core(t: &core_table::TableStats) -> TableStats {
        TableStats {
            table_id: t.table_id,
            active_count: t.active_count,
            lookup_count: t.lookup_count,
            matched_count: t.matched_count,
            ..Default::default()
        }
    }
}

impl PacketIn {
    /// A packet-in for a pipeline packet: the match carries in_port, metadata (if non-zero) and
    /// tunnel id (if non-zero), as OpenFlow 1.3 asks; the frame is cut to `max_len`
    /// (no buffering: `buffer_id` is `OFP_NO_BUFFER`).
    pub fn from_core(p: &core_pipe::PacketIn<'_>) -> PacketIn {
        let mut m = Match::any().with(OxmField::exact(Field::InPort, p.key.get(Field::InPort)));
        for f in [Field::Metadata, Field::TunnelId] {
            let v = p.key.get(f);
            if v != 0 {
                m.fields.push(OxmField::exact(f, v));
            }
        }
        let keep = if p.max_len == core_action::OFPCML_NO_BUFFER {
            p.frame.len()
        } else {
            p.frame.len().min(p.max_len as usize)
        };
        PacketIn {
            buffer_id: super::message::NO_BUFFER,
            total_len: p.frame.len().min(u16::MAX as usize) as u16,
            reason: p.reason as u8,
            table_id: p.table_id,
            cookie: p.cookie,
            match_: m,
            data: p.frame[..keep].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn match_round_trips_through_core() {
        let m = Match::any()
            .with(OxmField::exact(Field::InPort, 1))
            .with(OxmField::exact(Field::EthType, 0x0800))
            .with(OxmField::masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000));
        let c = m.to_core().unwrap();
        assert_eq!(Match::from_core(&c), m);
        let bad = Match::any().with(OxmField::exact(Field::TcpDst, 80));
        assert_eq!(bad.to_core(), Err(OfpError::BAD_PREREQ));
    }

    #[test]
    fn flow_mod_to_core() {
        let fm = FlowMod {
            table_id: 1,
            priority: 7,
            match_: Match::any().with(OxmField::exact(Field::InPort, 3)),
            instructions: vec![
                Instruction::ApplyActions(vec![
                    Action::Enqueue {
                        port: 2,
                        queue_id: 4,
                    },
                    Action::SetField(OxmField::exact(Field::VlanVid, 0x1005)),
                ]),
                Instruction::GotoTable(2),
            ],
            ..Default::default()
        };
        let c = fm.to_core().unwrap();
        assert_eq!(c.table_id, 1);
        assert_eq!(c.instructions.apply.len(), 3);
        assert_eq!(c.instructions.goto, Some(2));
        let back = instructions_from_core(&c.instructions);
        assert_eq!(back.len(), 2);
        let mpls = FlowMod {
            instructions: vec![Instruction::ApplyActions(vec![Action::DecMplsTtl])],
            ..Default::default()
        };
        assert_eq!(mpls.to_core().unwrap_err(), OfpError::BAD_ACTION_TYPE);
    }
}
