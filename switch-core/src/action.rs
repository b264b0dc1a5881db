//! OpenFlow 1.3 actions and instructions: the types, their validation against a flow's match
//! (as a switch does on flow-mod, group-mod and packet-out), and the action set with the
//! spec's execution order. Executing them on packets is `pipeline`'s job.

use alloc::vec::Vec;
use core::fmt;

use crate::error::OfpError;
use crate::flow::{Field, OFPVID_PRESENT};
use crate::flow_match::{Match, eth_type, field_name, write_value};
use crate::port::{
    OFPP_ALL, OFPP_ANY, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_LOCAL, OFPP_MAX,
    OFPP_NORMAL, OFPP_TABLE, PortNo,
};

/// Highest group id a group-mod may create (`OFPG_MAX`).
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// All groups (group-mod delete, flow-mod `out_group` wildcard is `OFPG_ANY`).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// Any group (a wildcard in filters).
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// Highest meter id (`OFPM_MAX`).
pub const OFPM_MAX: u32 = 0xffff_0000;
/// `max_len` asking for the whole packet (`OFPCML_NO_BUFFER`).
pub const OFPCML_NO_BUFFER: u16 = 0xffff;
/// Longest action list accepted in one instruction or bucket.
pub const MAX_ACTIONS: usize = 256;

/// One OpenFlow 1.3 action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `OFPAT_OUTPUT`: a port or reserved port; `max_len` only matters for CONTROLLER.
    Output { port: PortNo, max_len: u16 },
    /// `OFPAT_GROUP`.
    Group(u32),
    /// `OFPAT_SET_FIELD`. For `vlan_vid` the value carries `OFPVID_PRESENT`, as on the wire.
    SetField { field: Field, value: u128 },
    /// `OFPAT_PUSH_VLAN` with the tag's ethertype (0x8100 or 0x88a8).
    PushVlan(u16),
    /// `OFPAT_POP_VLAN`.
    PopVlan,
    /// `OFPAT_SET_QUEUE`.
    SetQueue(u32),
    /// `OFPAT_DEC_NW_TTL`.
    DecNwTtl,
    /// `OFPAT_SET_NW_TTL`.
    SetNwTtl(u8),
}

impl Action {
    /// Output to `port` (whole packet to the controller).
    pub const fn output(port: PortNo) -> Action {
        Action::Output {
            port,
            max_len: OFPCML_NO_BUFFER,
        }
    }

    /// Set `field` to `value`.
    pub const fn set_field(field: Field, value: u128) -> Action {
        Action::SetField { field, value }
    }
}

/// Writes a port number the way ovs-ofctl does (`IN_PORT`, `NORMAL`, ... or the number).
pub fn write_port(f: &mut fmt::Formatter<'_>, port: PortNo) -> fmt::Result {
    match port {
        OFPP_IN_PORT => f.write_str("IN_PORT"),
        OFPP_TABLE => f.write_str("TABLE"),
        OFPP_NORMAL => f.write_str("NORMAL"),
        OFPP_FLOOD => f.write_str("FLOOD"),
        OFPP_ALL => f.write_str("ALL"),
        OFPP_CONTROLLER => f.write_str("CONTROLLER"),
        OFPP_LOCAL => f.write_str("LOCAL"),
        OFPP_ANY => f.write_str("ANY"),
        p => write!(f, "{p}"),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Output {
                port: OFPP_CONTROLLER,
                max_len,
            } => write!(f, "CONTROLLER:{max_len}"),
            Action::Output { port, .. } => {
                f.write_str("output:")?;
                write_port(f, port)
            }
            Action::Group(g) => write!(f, "group:{g}"),
            Action::SetField { field, value } => {
                f.write_str("set_field:")?;
                write_value(f, field, value)?;
                write!(f, "->{}", field_name(field))
            }
            Action::PushVlan(t) => write!(f, "push_vlan:{t:#06x}"),
            Action::PopVlan => f.write_str("pop_vlan"),
            Action::SetQueue(q) => write!(f, "set_queue:{q}"),
            Action::DecNwTtl => f.write_str("dec_ttl"),
            Action::SetNwTtl(t) => write!(f, "mod_nw_ttl:{t}"),
        }
    }
}

/// Writes `a,b,c` (or `drop` for an empty list).
pub fn write_actions(f: &mut fmt::Formatter<'_>, actions: &[Action]) -> fmt::Result {
    if actions.is_empty() {
        return f.write_str("drop");
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{a}")?;
    }
    Ok(())
}

/// What action validation needs to know beyond the match.
#[derive(Clone, Copy)]
pub struct ActionContext<'a> {
    /// Whether a group exists.
    pub group_exists: &'a dyn Fn(u32) -> bool,
    /// Packet-out allows output to `TABLE`; flow entries and buckets do not.
    pub packet_out: bool,
    /// Check set-field/pop/TTL prerequisites against the match (flow entries, packet-out).
    /// Group buckets are shared by flows with different matches, so they are not checked.
    pub check_prereqs: bool,
}

/// Validates an output port number: the physical range or a reserved port usable in actions.
pub fn validate_out_port(port: PortNo, packet_out: bool) -> Result<(), OfpError> {
    match port {
        0 | OFPP_ANY => Err(OfpError::BAD_ACTION_BAD_OUT_PORT),
        OFPP_TABLE if !packet_out => Err(OfpError::BAD_ACTION_BAD_OUT_PORT),
        OFPP_IN_PORT | OFPP_TABLE | OFPP_NORMAL | OFPP_FLOOD | OFPP_ALL | OFPP_CONTROLLER
        | OFPP_LOCAL => Ok(()),
        p if p < OFPP_MAX => Ok(()),
        _ => Err(OfpError::BAD_ACTION_BAD_OUT_PORT),
    }
}

fn vlan_present(m: &Match) -> bool {
    matches!(m.get(Field::VlanVid), Some((v, mk)) if v & mk & OFPVID_PRESENT as u128 != 0)
}

fn is_ip(m: &Match) -> bool {
    m.is_exact(Field::EthType, eth_type::IPV4 as u128)
        || m.is_exact(Field::EthType, eth_type::IPV6 as u128)
}

/// Validates an action list executed in order, starting from a packet described by `m`.
/// Returns the match as the actions leave it (VLAN pushed or popped, fields set), which is
/// what later actions (for example Write-Actions after Apply-Actions) see.
pub fn validate_actions(
    actions: &[Action],
    m: &Match,
    ctx: &ActionContext<'_>,
) -> Result<Match, OfpError> {
    if actions.len() > MAX_ACTIONS {
        return Err(OfpError::BAD_ACTION_TOO_MANY);
    }
    let mut m = *m;
    for a in actions {
        match *a {
            Action::Output { port, .. } => validate_out_port(port, ctx.packet_out)?,
            Action::Group(g) => {
                if g > OFPG_MAX || !(ctx.group_exists)(g) {
                    return Err(OfpError::BAD_ACTION_BAD_OUT_GROUP);
                }
            }
            Action::SetField { field, value } => {
                // Not writable (as in Open vSwitch): pipeline fields other than tunnel_id (write-
                // metadata sets metadata), the fields that say what the headers are, and the
                // IPv6 extension-header pseudo field.
                if matches!(
                    field,
                    Field::InPort
                        | Field::InPhyPort
                        | Field::Metadata
                        | Field::EthType
                        | Field::IpProto
                        | Field::Ipv6Exthdr
                ) {
                    return Err(OfpError::BAD_ACTION_BAD_SET_TYPE);
                }
                if value > field.max()
                    || (field == Field::VlanVid && value & OFPVID_PRESENT as u128 == 0)
                {
                    return Err(OfpError::BAD_ACTION_BAD_SET_ARGUMENT);
                }
                if ctx.check_prereqs {
                    let ok = match field {
                        Field::VlanVid | Field::VlanPcp => vlan_present(&m),
                        f => m.prereqs_met(f),
                    };
                    if !ok {
                        return Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT);
                    }
                }
                m.force(field, value, field.max());
            }
            Action::PushVlan(tpid) => {
                if tpid != eth_type::VLAN && tpid != eth_type::QINQ {
                    return Err(OfpError::BAD_ACTION_BAD_ARGUMENT);
                }
                m.force(
                    Field::VlanVid,
                    OFPVID_PRESENT as u128,
                    OFPVID_PRESENT as u128,
                );
            }
            Action::PopVlan => {
                if ctx.check_prereqs && !vlan_present(&m) {
                    return Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT);
                }
                // An inner tag may or may not be there: nothing is known about the VLAN now.
                m.unset(Field::VlanVid);
                m.unset(Field::VlanPcp);
            }
            Action::SetQueue(_) => {}
            Action::DecNwTtl | Action::SetNwTtl(_) => {
                if ctx.check_prereqs && !is_ip(&m) {
                    return Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT);
                }
            }
        }
    }
    Ok(m)
}

/// One instruction as a decoder sees it (see [`Instructions::from_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    Meter(u32),
    /// `OFPIT_EXPERIMENTER` with its experimenter id: not supported.
    Experimenter(u32),
    /// An instruction type the spec does not define.
    Unknown(u16),
}

/// A flow entry's instructions, at most one of each type, executed in the spec's order:
/// meter, apply-actions, clear-actions, write-actions, write-metadata, goto-table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instructions {
    pub meter: Option<u32>,
    pub apply: Vec<Action>,
    pub clear: bool,
    pub write: Vec<Action>,
    /// `(metadata, mask)`.
    pub write_metadata: Option<(u64, u64)>,
    pub goto: Option<u8>,
}

impl Instructions {
    /// No instructions: matching packets are dropped.
    pub fn drop() -> Self {
        Instructions::default()
    }

    /// Just Apply-Actions.
    pub fn apply(actions: Vec<Action>) -> Self {
        Instructions {
            apply: actions,
            ..Default::default()
        }
    }

    /// Builder: add Goto-Table.
    pub fn with_goto(mut self, table: u8) -> Self {
        self.goto = Some(table);
        self
    }

    /// Builder: add Write-Actions.
    pub fn with_write(mut self, actions: Vec<Action>) -> Self {
        self.write = actions;
        self
    }

    /// Builder: add Write-Metadata.
    pub fn with_metadata(mut self, metadata: u64, mask: u64) -> Self {
        self.write_metadata = Some((metadata, mask));
        self
    }

    /// Builder: add Clear-Actions.
    pub fn with_clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// Builder: add Meter.
    pub fn with_meter(mut self, meter: u32) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Collects a decoded instruction list: each type at most once (`DUP_INST`), no
    /// experimenter (`UNSUP_INST`) or unknown (`UNKNOWN_INST`) instructions.
    pub fn from_list(list: Vec<Instruction>) -> Result<Self, OfpError> {
        let mut out = Instructions::default();
        let mut seen = 0u8;
        let mut once = |bit: u8| {
            if seen & bit != 0 {
                return Err(OfpError::BAD_INSTRUCTION_DUP_INST);
            }
            seen |= bit;
            Ok(())
        };
        for i in list {
            match i {
                Instruction::GotoTable(t) => {
                    once(1)?;
                    out.goto = Some(t);
                }
                Instruction::WriteMetadata { metadata, mask } => {
                    once(2)?;
                    out.write_metadata = Some((metadata, mask));
                }
                Instruction::WriteActions(a) => {
                    once(4)?;
                    out.write = a;
                }
                Instruction::ApplyActions(a) => {
                    once(8)?;
                    out.apply = a;
                }
                Instruction::ClearActions => {
                    once(16)?;
                    out.clear = true;
                }
                Instruction::Meter(m) => {
                    once(32)?;
                    out.meter = Some(m);
                }
                Instruction::Experimenter(_) => return Err(OfpError::BAD_INSTRUCTION_UNSUP_INST),
                Instruction::Unknown(_) => return Err(OfpError::BAD_INSTRUCTION_UNKNOWN_INST),
            }
        }
        Ok(out)
    }

    /// Validates the instructions of an entry in table `table_id` of a pipeline with
    /// `n_tables` tables, whose match is `m`.
    pub fn validate(
        &self,
        table_id: u8,
        n_tables: u8,
        m: &Match,
        ctx: &ActionContext<'_>,
    ) -> Result<(), OfpError> {
        if let Some(meter) = self.meter
            && (meter == 0 || meter > OFPM_MAX)
        {
            return Err(OfpError::METER_MOD_FAILED_INVALID_METER);
        }
        if let Some(t) = self.goto {
            // Goto-Table only goes forward.
            if t <= table_id || t >= n_tables {
                return Err(OfpError::BAD_INSTRUCTION_BAD_TABLE_ID);
            }
        }
        let after_apply = validate_actions(&self.apply, m, ctx)?;
        // Write-Actions: every action's own arguments, then the prerequisites in the order the
        // action set will execute them (pop, push, TTL, set-field, ...), not the list order.
        let lenient = ActionContext {
            check_prereqs: false,
            ..*ctx
        };
        validate_actions(&self.write, &after_apply, &lenient)?;
        let mut set = ActionSet::new();
        set.write(&self.write);
        validate_actions(&set.to_vec(), &after_apply, ctx)?;
        Ok(())
    }

    /// Whether any action (apply or write) outputs to `port` (flow-mod `out_port` filter).
    pub fn outputs_to(&self, port: PortNo) -> bool {
        self.apply
            .iter()
            .chain(self.write.iter())
            .any(|a| matches!(a, Action::Output { port: p, .. } if *p == port))
    }

    /// Whether any action (apply or write) sends to group `group`.
    pub fn uses_group(&self, group: u32) -> bool {
        self.apply
            .iter()
            .chain(self.write.iter())
            .any(|a| matches!(a, Action::Group(g) if *g == group))
    }

    /// Whether any action refers to a group.
    pub fn uses_any_group(&self) -> bool {
        self.apply
            .iter()
            .chain(self.write.iter())
            .any(|a| matches!(a, Action::Group(_)))
    }
}

impl fmt::Display for Instructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = 0;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            parts += 1;
            if parts > 1 { f.write_str(",") } else { Ok(()) }
        };
        if let Some(m) = self.meter {
            sep(f)?;
            write!(f, "meter:{m}")?;
        }
        if !self.apply.is_empty() {
            sep(f)?;
            f.write_str("apply_actions(")?;
            write_actions(f, &self.apply)?;
            f.write_str(")")?;
        }
        if self.clear {
            sep(f)?;
            f.write_str("clear_actions")?;
        }
        if !self.write.is_empty() {
            sep(f)?;
            f.write_str("write_actions(")?;
            write_actions(f, &self.write)?;
            f.write_str(")")?;
        }
        if let Some((v, m)) = self.write_metadata {
            sep(f)?;
            write!(f, "write_metadata:{v:#x}/{m:#x}")?;
        }
        if let Some(t) = self.goto {
            sep(f)?;
            write!(f, "goto_table:{t}")?;
        }
        if parts == 0 {
            f.write_str("drop")?;
        }
        Ok(())
    }
}

const N_FIELD_SLOTS: usize = 40;

/// The action set a packet carries through the tables (OF1.3 section 5.10): at most one action
/// of each type (one set-field per field), executed at the end in a fixed order.
#[derive(Clone, Debug)]
pub struct ActionSet {
    pop_vlan: bool,
    push_vlan: Option<u16>,
    dec_ttl: bool,
    set_ttl: Option<u8>,
    /// Bit `n`: set-field of OXM field `n` present, value in `values[n]`.
    set_fields: u64,
    values: [u128; N_FIELD_SLOTS],
    queue: Option<u32>,
    group: Option<u32>,
    output: Option<(PortNo, u16)>,
}

impl Default for ActionSet {
    fn default() -> Self {
        ActionSet {
            pop_vlan: false,
            push_vlan: None,
            dec_ttl: false,
            set_ttl: None,
            set_fields: 0,
            values: [0; N_FIELD_SLOTS],
            queue: None,
            group: None,
            output: None,
        }
    }
}

impl ActionSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Clear-Actions.
    pub fn clear(&mut self) {
        self.pop_vlan = false;
        self.push_vlan = None;
        self.dec_ttl = false;
        self.set_ttl = None;
        self.set_fields = 0;
        self.queue = None;
        self.group = None;
        self.output = None;
    }

    pub fn is_empty(&self) -> bool {
        !self.pop_vlan
            && self.push_vlan.is_none()
            && !self.dec_ttl
            && self.set_ttl.is_none()
            && self.set_fields == 0
            && self.queue.is_none()
            && self.group.is_none()
            && self.output.is_none()
    }

    /// Write-Actions: each action replaces the one of its type already in the set.
    pub fn write(&mut self, actions: &[Action]) {
        for a in actions {
            match *a {
                Action::Output { port, max_len } => self.output = Some((port, max_len)),
                Action::Group(g) => self.group = Some(g),
                Action::SetField { field, value } => {
                    let n = field as usize;
                    if n < N_FIELD_SLOTS {
                        self.set_fields |= 1 << n;
                        self.values[n] = value;
                    }
                }
                Action::PushVlan(t) => self.push_vlan = Some(t),
                Action::PopVlan => self.pop_vlan = true,
                Action::SetQueue(q) => self.queue = Some(q),
                Action::DecNwTtl => self.dec_ttl = true,
                Action::SetNwTtl(t) => self.set_ttl = Some(t),
            }
        }
    }

    /// Calls `f` with each action in execution order: pop, push-VLAN, dec-TTL, set (TTL and
    /// set-fields in OXM order), queue, then group, or output if there is no group. Stops early
    /// when `f` returns false; returns whether it went through.
    pub fn for_each(&self, mut f: impl FnMut(Action) -> bool) -> bool {
        if self.pop_vlan && !f(Action::PopVlan) {
            return false;
        }
        if let Some(t) = self.push_vlan
            && !f(Action::PushVlan(t))
        {
            return false;
        }
        if self.dec_ttl && !f(Action::DecNwTtl) {
            return false;
        }
        if let Some(t) = self.set_ttl
            && !f(Action::SetNwTtl(t))
        {
            return false;
        }
        let mut bits = self.set_fields;
        while bits != 0 {
            let n = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(field) = Field::from_oxm(n as u8)
                && !f(Action::SetField {
                    field,
                    value: self.values[n],
                })
            {
                return false;
            }
        }
        if let Some(q) = self.queue
            && !f(Action::SetQueue(q))
        {
            return false;
        }
        match (self.group, self.output) {
            (Some(g), _) => f(Action::Group(g)),
            (None, Some((port, max_len))) => f(Action::Output { port, max_len }),
            (None, None) => true,
        }
    }

    /// The set's actions in execution order.
    pub fn to_vec(&self) -> Vec<Action> {
        let mut v = Vec::new();
        self.for_each(|a| {
            v.push(a);
            true
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn ctx(groups: &[u32]) -> ActionContext<'_> {
        let _ = groups;
        ActionContext {
            group_exists: &|g| g == 1 || g == 2,
            packet_out: false,
            check_prereqs: true,
        }
    }

    fn ip_tcp() -> Match {
        Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 6)
    }

    #[test]
    fn output_ports() {
        let c = ctx(&[]);
        for p in [
            1,
            100,
            OFPP_IN_PORT,
            OFPP_NORMAL,
            OFPP_FLOOD,
            OFPP_ALL,
            OFPP_LOCAL,
        ] {
            assert!(validate_actions(&[Action::output(p)], &Match::ANY, &c).is_ok());
        }
        for p in [0, OFPP_ANY, OFPP_TABLE, OFPP_MAX, 0xffff_fff0] {
            assert_eq!(
                validate_actions(&[Action::output(p)], &Match::ANY, &c),
                Err(OfpError::BAD_ACTION_BAD_OUT_PORT),
                "{p:#x}"
            );
        }
        let po = ActionContext {
            packet_out: true,
            ..ctx(&[])
        };
        assert!(validate_actions(&[Action::output(OFPP_TABLE)], &Match::ANY, &po).is_ok());
    }

    #[test]
    fn groups_must_exist() {
        let c = ctx(&[]);
        assert!(validate_actions(&[Action::Group(1)], &Match::ANY, &c).is_ok());
        assert_eq!(
            validate_actions(&[Action::Group(7)], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_BAD_OUT_GROUP)
        );
        assert_eq!(
            validate_actions(&[Action::Group(OFPG_ALL)], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_BAD_OUT_GROUP)
        );
    }

    #[test]
    fn set_field_checks() {
        let c = ctx(&[]);
        let ok = validate_actions(&[Action::set_field(Field::TcpDst, 80)], &ip_tcp(), &c);
        assert!(ok.is_ok());
        assert_eq!(
            validate_actions(&[Action::set_field(Field::TcpDst, 80)], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        for f in [
            Field::InPort,
            Field::Metadata,
            Field::EthType,
            Field::IpProto,
        ] {
            assert_eq!(
                validate_actions(&[Action::set_field(f, 3)], &ip_tcp(), &c),
                Err(OfpError::BAD_ACTION_BAD_SET_TYPE),
                "{f:?}"
            );
        }
        assert_eq!(
            validate_actions(&[Action::set_field(Field::TcpDst, 1 << 16)], &ip_tcp(), &c),
            Err(OfpError::BAD_ACTION_BAD_SET_ARGUMENT)
        );
        // vlan_vid: needs a tag (matched or pushed) and OFPVID_PRESENT in the value.
        assert_eq!(
            validate_actions(
                &[Action::set_field(Field::VlanVid, 0x1005)],
                &Match::ANY,
                &c
            ),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        let pushed = [
            Action::PushVlan(0x8100),
            Action::set_field(Field::VlanVid, 0x1005),
        ];
        assert!(validate_actions(&pushed, &Match::ANY, &c).is_ok());
        assert_eq!(
            validate_actions(
                &[
                    Action::PushVlan(0x8100),
                    Action::set_field(Field::VlanVid, 5)
                ],
                &Match::ANY,
                &c
            ),
            Err(OfpError::BAD_ACTION_BAD_SET_ARGUMENT)
        );
        // Without prerequisite checks (group buckets) a set-field is accepted anywhere.
        let lenient = ActionContext {
            check_prereqs: false,
            ..ctx(&[])
        };
        assert!(
            validate_actions(
                &[Action::set_field(Field::TcpDst, 80)],
                &Match::ANY,
                &lenient
            )
            .is_ok()
        );
    }

    #[test]
    fn vlan_and_ttl_actions() {
        let c = ctx(&[]);
        assert_eq!(
            validate_actions(&[Action::PushVlan(0x0800)], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_BAD_ARGUMENT)
        );
        assert_eq!(
            validate_actions(&[Action::PopVlan], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        let tagged = Match::new().with_masked(Field::VlanVid, 0x1000, 0x1000);
        assert!(validate_actions(&[Action::PopVlan], &tagged, &c).is_ok());
        assert_eq!(
            validate_actions(&[Action::PopVlan, Action::PopVlan], &tagged, &c),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        assert_eq!(
            validate_actions(&[Action::DecNwTtl], &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        assert!(validate_actions(&[Action::DecNwTtl, Action::SetNwTtl(9)], &ip_tcp(), &c).is_ok());
        let many = vec![Action::SetQueue(1); MAX_ACTIONS + 1];
        assert_eq!(
            validate_actions(&many, &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_TOO_MANY)
        );
    }

    #[test]
    fn instruction_list_rules() {
        let i = Instructions::from_list(vec![
            Instruction::ApplyActions(vec![Action::output(1)]),
            Instruction::GotoTable(3),
            Instruction::Meter(5),
        ])
        .unwrap();
        assert_eq!(i.goto, Some(3));
        assert_eq!(i.meter, Some(5));
        assert_eq!(
            Instructions::from_list(vec![Instruction::ClearActions, Instruction::ClearActions]),
            Err(OfpError::BAD_INSTRUCTION_DUP_INST)
        );
        assert_eq!(
            Instructions::from_list(vec![Instruction::Experimenter(0x2320)]),
            Err(OfpError::BAD_INSTRUCTION_UNSUP_INST)
        );
        assert_eq!(
            Instructions::from_list(vec![Instruction::Unknown(42)]),
            Err(OfpError::BAD_INSTRUCTION_UNKNOWN_INST)
        );
    }

    #[test]
    fn instruction_validation() {
        let c = ctx(&[]);
        let go = |t| Instructions::drop().with_goto(t);
        assert!(go(3).validate(2, 10, &Match::ANY, &c).is_ok());
        for (t, from) in [(2, 2), (1, 2), (10, 2)] {
            assert_eq!(
                go(t).validate(from, 10, &Match::ANY, &c),
                Err(OfpError::BAD_INSTRUCTION_BAD_TABLE_ID)
            );
        }
        assert_eq!(
            Instructions::drop()
                .with_meter(0)
                .validate(0, 10, &Match::ANY, &c),
            Err(OfpError::METER_MOD_FAILED_INVALID_METER)
        );
        // Write-Actions are checked against the packet as Apply-Actions leave it.
        let i = Instructions::apply(vec![Action::PushVlan(0x8100)])
            .with_write(vec![Action::set_field(Field::VlanVid, 0x1002)]);
        assert!(i.validate(0, 10, &Match::ANY, &c).is_ok());
        let i = Instructions::drop().with_write(vec![Action::set_field(Field::VlanVid, 0x1002)]);
        assert_eq!(
            i.validate(0, 10, &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_MATCH_INCONSISTENT)
        );
        // In the action set, push-VLAN runs before set-field whatever the list order.
        let i = Instructions::drop().with_write(vec![
            Action::set_field(Field::VlanVid, 0x1002),
            Action::PushVlan(0x8100),
        ]);
        assert!(i.validate(0, 10, &Match::ANY, &c).is_ok());
        // An action overwritten in the set is still checked.
        let i = Instructions::drop().with_write(vec![Action::output(0), Action::output(1)]);
        assert_eq!(
            i.validate(0, 10, &Match::ANY, &c),
            Err(OfpError::BAD_ACTION_BAD_OUT_PORT)
        );
    }

    #[test]
    fn action_set_order_and_merge() {
        let mut s = ActionSet::new();
        assert!(s.is_empty());
        s.write(&[
            Action::output(1),
            Action::set_field(Field::Ipv4Dst, 5),
            Action::PushVlan(0x8100),
            Action::set_field(Field::EthDst, 9),
            Action::DecNwTtl,
            Action::SetQueue(3),
            Action::PopVlan,
        ]);
        s.write(&[Action::output(2), Action::set_field(Field::EthDst, 10)]);
        assert_eq!(
            s.to_vec(),
            vec![
                Action::PopVlan,
                Action::PushVlan(0x8100),
                Action::DecNwTtl,
                Action::set_field(Field::EthDst, 10),
                Action::set_field(Field::Ipv4Dst, 5),
                Action::SetQueue(3),
                Action::output(2),
            ]
        );
        // A group wins over output.
        s.write(&[Action::Group(4), Action::SetNwTtl(7)]);
        let v = s.to_vec();
        assert_eq!(v.last(), Some(&Action::Group(4)));
        assert!(v.contains(&Action::SetNwTtl(7)));
        assert!(!v.contains(&Action::output(2)));
        // Early stop.
        let mut n = 0;
        assert!(!s.for_each(|_| {
            n += 1;
            n < 2
        }));
        s.clear();
        assert!(s.is_empty());
        assert!(s.to_vec().is_empty());
    }

    #[test]
    fn display() {
        let i = Instructions::apply(vec![
            Action::set_field(Field::EthDst, 0x0000_0102_0304_0506),
            Action::output(3),
            Action::Output {
                port: OFPP_CONTROLLER,
                max_len: 128,
            },
        ])
        .with_metadata(1, 0xff)
        .with_goto(2);
        assert_eq!(
            i.to_string(),
            "apply_actions(set_field:01:02:03:04:05:06->dl_dst,output:3,CONTROLLER:128),write_metadata:0x1/0xff,goto_table:2"
        );
        assert_eq!(Instructions::drop().to_string(), "drop");
        assert!(i.outputs_to(3));
        assert!(!i.outputs_to(4));
        assert!(!i.uses_any_group());
    }
}
