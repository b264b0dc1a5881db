//! OpenFlow 1.3 errors as values: `OfpError { type_, code }` with the numbers of the spec's
//! `ofp_error_type` and per-type code enums, so the management plane can put them on the wire
//! unchanged (`OFPT_ERROR`). The pipeline returns these for every bad flow-mod or group-mod.

/// An OpenFlow 1.3 error: `ofp_error_msg.type` and `.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfpError {
    pub type_: u16,
    pub code: u16,
}

/// `enum ofp_error_type`.
pub mod types {
    pub const HELLO_FAILED: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_ACTION: u16 = 2;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BAD_MATCH: u16 = 4;
    pub const FLOW_MOD_FAILED: u16 = 5;
    pub const GROUP_MOD_FAILED: u16 = 6;
    pub const PORT_MOD_FAILED: u16 = 7;
    pub const TABLE_MOD_FAILED: u16 = 8;
    pub const QUEUE_OP_FAILED: u16 = 9;
    pub const SWITCH_CONFIG_FAILED: u16 = 10;
    pub const ROLE_REQUEST_FAILED: u16 = 11;
    pub const METER_MOD_FAILED: u16 = 12;
    pub const TABLE_FEATURES_FAILED: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// `enum ofp_bad_action_code`.
pub mod bad_action {
    pub const BAD_TYPE: u16 = 0;
    pub const BAD_LEN: u16 = 1;
    pub const BAD_EXPERIMENTER: u16 = 2;
    pub const BAD_EXP_TYPE: u16 = 3;
    pub const BAD_OUT_PORT: u16 = 4;
    pub const BAD_ARGUMENT: u16 = 5;
    pub const EPERM: u16 = 6;
    pub const TOO_MANY: u16 = 7;
    pub const BAD_QUEUE: u16 = 8;
    pub const BAD_OUT_GROUP: u16 = 9;
    pub const MATCH_INCONSISTENT: u16 = 10;
    pub const UNSUPPORTED_ORDER: u16 = 11;
    pub const BAD_TAG: u16 = 12;
    pub const BAD_SET_TYPE: u16 = 13;
    pub const BAD_SET_LEN: u16 = 14;
    pub const BAD_SET_ARGUMENT: u16 = 15;
}

/// `enum ofp_bad_instruction_code`.
pub mod bad_instruction {
    pub const UNKNOWN_INST: u16 = 0;
    pub const UNSUP_INST: u16 = 1;
    pub const BAD_TABLE_ID: u16 = 2;
    pub const UNSUP_METADATA: u16 = 3;
    pub const UNSUP_METADATA_MASK: u16 = 4;
    pub const BAD_EXPERIMENTER: u16 = 5;
    pub const BAD_EXP_TYPE: u16 = 6;
    pub const BAD_LEN: u16 = 7;
    pub const EPERM: u16 = 8;
    pub const DUP_INST: u16 = 9;
}

/// `enum ofp_bad_match_code`.
pub mod bad_match {
    pub const BAD_TYPE: u16 = 0;
    pub const BAD_LEN: u16 = 1;
    pub const BAD_TAG: u16 = 2;
    pub const BAD_DL_ADDR_MASK: u16 = 3;
    pub const BAD_NW_ADDR_MASK: u16 = 4;
    pub const BAD_WILDCARDS: u16 = 5;
    pub const BAD_FIELD: u16 = 6;
    pub const BAD_VALUE: u16 = 7;
    pub const BAD_MASK: u16 = 8;
    pub const BAD_PREREQ: u16 = 9;
    pub const DUP_FIELD: u16 = 10;
    pub const EPERM: u16 = 11;
}

/// `enum ofp_flow_mod_failed_code`.
pub mod flow_mod_failed {
    pub const UNKNOWN: u16 = 0;
    pub const TABLE_FULL: u16 = 1;
    pub const BAD_TABLE_ID: u16 = 2;
    pub const OVERLAP: u16 = 3;
    pub const EPERM: u16 = 4;
    pub const BAD_TIMEOUT: u16 = 5;
    pub const BAD_COMMAND: u16 = 6;
    pub const BAD_FLAGS: u16 = 7;
}

/// `enum ofp_group_mod_failed_code`.
pub mod group_mod_failed {
    pub const GROUP_EXISTS: u16 = 0;
    pub const INVALID_GROUP: u16 = 1;
    pub const WEIGHT_UNSUPPORTED: u16 = 2;
    pub const OUT_OF_GROUPS: u16 = 3;
    pub const OUT_OF_BUCKETS: u16 = 4;
    pub const CHAINING_UNSUPPORTED: u16 = 5;
    pub const WATCH_UNSUPPORTED: u16 = 6;
    pub const LOOP: u16 = 7;
    pub const UNKNOWN_GROUP: u16 = 8;
    pub const CHAINED_GROUP: u16 = 9;
    pub const BAD_TYPE: u16 = 10;
    pub const BAD_COMMAND: u16 = 11;
    pub const BAD_BUCKET: u16 = 12;
    pub const BAD_WATCH: u16 = 13;
    pub const EPERM: u16 = 14;
}

/// `enum ofp_meter_mod_failed_code` (only what the meter hook needs for now).
pub mod meter_mod_failed {
    pub const UNKNOWN: u16 = 0;
    pub const METER_EXISTS: u16 = 1;
    pub const INVALID_METER: u16 = 2;
    pub const UNKNOWN_METER: u16 = 3;
}

macro_rules! ctors {
    ($($name:ident = $ty:expr, $code:expr;)*) => {
        impl OfpError {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: OfpError = OfpError { type_: $ty, code: $code };
            )*
        }
    };
}

ctors! {
    BAD_ACTION_BAD_TYPE = types::BAD_ACTION, bad_action::BAD_TYPE;
    BAD_ACTION_BAD_OUT_PORT = types::BAD_ACTION, bad_action::BAD_OUT_PORT;
    BAD_ACTION_BAD_ARGUMENT = types::BAD_ACTION, bad_action::BAD_ARGUMENT;
    BAD_ACTION_TOO_MANY = types::BAD_ACTION, bad_action::TOO_MANY;
    BAD_ACTION_BAD_QUEUE = types::BAD_ACTION, bad_action::BAD_QUEUE;
    BAD_ACTION_BAD_OUT_GROUP = types::BAD_ACTION, bad_action::BAD_OUT_GROUP;
    BAD_ACTION_MATCH_INCONSISTENT = types::BAD_ACTION, bad_action::MATCH_INCONSISTENT;
    BAD_ACTION_BAD_SET_TYPE = types::BAD_ACTION, bad_action::BAD_SET_TYPE;
    BAD_ACTION_BAD_SET_ARGUMENT = types::BAD_ACTION, bad_action::BAD_SET_ARGUMENT;

    BAD_INSTRUCTION_UNKNOWN_INST = types::BAD_INSTRUCTION, bad_instruction::UNKNOWN_INST;
    BAD_INSTRUCTION_UNSUP_INST = types::BAD_INSTRUCTION, bad_instruction::UNSUP_INST;
    BAD_INSTRUCTION_BAD_TABLE_ID = types::BAD_INSTRUCTION, bad_instruction::BAD_TABLE_ID;
    BAD_INSTRUCTION_DUP_INST = types::BAD_INSTRUCTION, bad_instruction::DUP_INST;

    BAD_MATCH_BAD_WILDCARDS = types::BAD_MATCH, bad_match::BAD_WILDCARDS;
    BAD_MATCH_BAD_FIELD = types::BAD_MATCH, bad_match::BAD_FIELD;
    BAD_MATCH_BAD_VALUE = types::BAD_MATCH, bad_match::BAD_VALUE;
    BAD_MATCH_BAD_MASK = types::BAD_MATCH, bad_match::BAD_MASK;
    BAD_MATCH_BAD_PREREQ = types::BAD_MATCH, bad_match::BAD_PREREQ;
    BAD_MATCH_DUP_FIELD = types::BAD_MATCH, bad_match::DUP_FIELD;

    FLOW_MOD_FAILED_TABLE_FULL = types::FLOW_MOD_FAILED, flow_mod_failed::TABLE_FULL;
    FLOW_MOD_FAILED_BAD_TABLE_ID = types::FLOW_MOD_FAILED, flow_mod_failed::BAD_TABLE_ID;
    FLOW_MOD_FAILED_OVERLAP = types::FLOW_MOD_FAILED, flow_mod_failed::OVERLAP;
    FLOW_MOD_FAILED_BAD_COMMAND = types::FLOW_MOD_FAILED, flow_mod_failed::BAD_COMMAND;
    FLOW_MOD_FAILED_BAD_FLAGS = types::FLOW_MOD_FAILED, flow_mod_failed::BAD_FLAGS;

    GROUP_MOD_FAILED_GROUP_EXISTS = types::GROUP_MOD_FAILED, group_mod_failed::GROUP_EXISTS;
    GROUP_MOD_FAILED_INVALID_GROUP = types::GROUP_MOD_FAILED, group_mod_failed::INVALID_GROUP;
    GROUP_MOD_FAILED_WEIGHT_UNSUPPORTED = types::GROUP_MOD_FAILED, group_mod_failed::WEIGHT_UNSUPPORTED;
    GROUP_MOD_FAILED_OUT_OF_GROUPS = types::GROUP_MOD_FAILED, group_mod_failed::OUT_OF_GROUPS;
    GROUP_MOD_FAILED_OUT_OF_BUCKETS = types::GROUP_MOD_FAILED, group_mod_failed::OUT_OF_BUCKETS;
    GROUP_MOD_FAILED_CHAINING_UNSUPPORTED = types::GROUP_MOD_FAILED, group_mod_failed::CHAINING_UNSUPPORTED;
    GROUP_MOD_FAILED_WATCH_UNSUPPORTED = types::GROUP_MOD_FAILED, group_mod_failed::WATCH_UNSUPPORTED;
    GROUP_MOD_FAILED_LOOP = types::GROUP_MOD_FAILED, group_mod_failed::LOOP;
    GROUP_MOD_FAILED_UNKNOWN_GROUP = types::GROUP_MOD_FAILED, group_mod_failed::UNKNOWN_GROUP;
    GROUP_MOD_FAILED_CHAINED_GROUP = types::GROUP_MOD_FAILED, group_mod_failed::CHAINED_GROUP;
    GROUP_MOD_FAILED_BAD_TYPE = types::GROUP_MOD_FAILED, group_mod_failed::BAD_TYPE;
    GROUP_MOD_FAILED_BAD_COMMAND = types::GROUP_MOD_FAILED, group_mod_failed::BAD_COMMAND;
    GROUP_MOD_FAILED_BAD_BUCKET = types::GROUP_MOD_FAILED, group_mod_failed::BAD_BUCKET;
    GROUP_MOD_FAILED_BAD_WATCH = types::GROUP_MOD_FAILED, group_mod_failed::BAD_WATCH;

    METER_MOD_FAILED_INVALID_METER = types::METER_MOD_FAILED, meter_mod_failed::INVALID_METER;
}

impl OfpError {
    /// An error of any type and code.
    pub const fn new(type_: u16, code: u16) -> OfpError {
        OfpError { type_, code }
    }

    /// The spec's name of the error type, for logs and traces.
    pub fn type_name(&self) -> &'static str {
        match self.type_ {
            types::HELLO_FAILED => "HELLO_FAILED",
            types::BAD_REQUEST => "BAD_REQUEST",
            types::BAD_ACTION => "BAD_ACTION",
            types::BAD_INSTRUCTION => "BAD_INSTRUCTION",
            types::BAD_MATCH => "BAD_MATCH",
            types::FLOW_MOD_FAILED => "FLOW_MOD_FAILED",
            types::GROUP_MOD_FAILED => "GROUP_MOD_FAILED",
            types::PORT_MOD_FAILED => "PORT_MOD_FAILED",
            types::TABLE_MOD_FAILED => "TABLE_MOD_FAILED",
            types::QUEUE_OP_FAILED => "QUEUE_OP_FAILED",
            types::SWITCH_CONFIG_FAILED => "SWITCH_CONFIG_FAILED",
            types::ROLE_REQUEST_FAILED => "ROLE_REQUEST_FAILED",
            types::METER_MOD_FAILED => "METER_MOD_FAILED",
            types::TABLE_FEATURES_FAILED => "TABLE_FEATURES_FAILED",
            types::EXPERIMENTER => "EXPERIMENTER",
            _ => "UNKNOWN",
        }
    }
}

impl core::fmt::Display for OfpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}(type {}, code {})",
            self.type_name(),
            self.type_,
            self.code
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_spec() {
        assert_eq!(OfpError::BAD_MATCH_BAD_PREREQ, OfpError::new(4, 9));
        assert_eq!(OfpError::FLOW_MOD_FAILED_OVERLAP, OfpError::new(5, 3));
        assert_eq!(OfpError::GROUP_MOD_FAILED_LOOP, OfpError::new(6, 7));
        assert_eq!(OfpError::BAD_ACTION_BAD_OUT_PORT, OfpError::new(2, 4));
        assert_eq!(OfpError::BAD_INSTRUCTION_UNSUP_INST, OfpError::new(3, 1));
        assert_eq!(
            OfpError::METER_MOD_FAILED_INVALID_METER,
            OfpError::new(12, 2)
        );
    }

    #[test]
    fn display_names_the_type() {
        let s = alloc::format!("{}", OfpError::FLOW_MOD_FAILED_TABLE_FULL);
        assert_eq!(s, "FLOW_MOD_FAILED(type 5, code 1)");
        assert_eq!(OfpError::new(77, 0).type_name(), "UNKNOWN");
    }
}
