//! OpenFlow error type/code pairs.
//!
//! `OfpError` carries the OpenFlow 1.3 numbering (1.4 and 1.5 only add types and codes), which
//! is what the codec returns. `OfpError::to_wire` translates it for a session that negotiated
//! OpenFlow 1.0, whose `ofp_error_type` numbering is different and smaller; an error that 1.0
//! cannot express becomes `BAD_REQUEST/EPERM`.

use super::{OFP10, OFP14};

/// An OpenFlow error (`ofp_error_msg` type and code), OpenFlow 1.3 numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfpError {
    pub type_: u16,
    pub code: u16,
}

const fn e(type_: u16, code: u16) -> OfpError {
    OfpError { type_, code }
}

/// `ofp_error_type` values (OpenFlow 1.3+).
pub mod error_type {
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
    /// OpenFlow 1.4+.
    pub const BAD_PROPERTY: u16 = 14;
    /// OpenFlow 1.4+.
    pub const ASYNC_CONFIG_FAILED: u16 = 15;
    pub const EXPERIMENTER: u16 = 0xffff;
}

impl OfpError {
    pub const HELLO_INCOMPATIBLE: OfpError = e(0, 0);
    pub const HELLO_EPERM: OfpError = e(0, 1);

    pub const BAD_VERSION: OfpError = e(1, 0);
    pub const BAD_TYPE: OfpError = e(1, 1);
    pub const BAD_MULTIPART: OfpError = e(1, 2);
    pub const BAD_EXPERIMENTER: OfpError = e(1, 3);
    pub const BAD_EXP_TYPE: OfpError = e(1, 4);
    pub const BAD_REQUEST_EPERM: OfpError = e(1, 5);
    pub const BAD_LEN: OfpError = e(1, 6);
    pub const BUFFER_EMPTY: OfpError = e(1, 7);
    pub const BUFFER_UNKNOWN: OfpError = e(1, 8);
    pub const BAD_TABLE_ID: OfpError = e(1, 9);
    pub const IS_SLAVE: OfpError = e(1, 10);
    pub const BAD_PORT: OfpError = e(1, 11);
    pub const BAD_PACKET: OfpError = e(1, 12);
    pub const MULTIPART_BUFFER_OVERFLOW: OfpError = e(1, 13);

    pub const BAD_ACTION_TYPE: OfpError = e(2, 0);
    pub const BAD_ACTION_LEN: OfpError = e(2, 1);
    pub const BAD_ACTION_EXPERIMENTER: OfpError = e(2, 2);
    pub const BAD_ACTION_EXP_TYPE: OfpError = e(2, 3);
    pub const BAD_OUT_PORT: OfpError = e(2, 4);
    pub const BAD_ACTION_ARGUMENT: OfpError = e(2, 5);
    pub const BAD_ACTION_EPERM: OfpError = e(2, 6);
    pub const TOO_MANY_ACTIONS: OfpError = e(2, 7);
    pub const BAD_QUEUE: OfpError = e(2, 8);
    pub const BAD_OUT_GROUP: OfpError = e(2, 9);
    pub const MATCH_INCONSISTENT: OfpError = e(2, 10);
    pub const UNSUPPORTED_ORDER: OfpError = e(2, 11);
    pub const BAD_ACTION_TAG: OfpError = e(2, 12);
    pub const BAD_SET_TYPE: OfpError = e(2, 13);
    pub const BAD_SET_LEN: OfpError = e(2, 14);
    pub const BAD_SET_ARGUMENT: OfpError = e(2, 15);

    pub const UNKNOWN_INST: OfpError = e(3, 0);
    pub const UNSUP_INST: OfpError = e(3, 1);
    pub const INST_BAD_TABLE_ID: OfpError = e(3, 2);
    pub const UNSUP_METADATA: OfpError = e(3, 3);
    pub const UNSUP_METADATA_MASK: OfpError = e(3, 4);
    pub const INST_BAD_EXPERIMENTER: OfpError = e(3, 5);
    pub const INST_BAD_EXP_TYPE: OfpError = e(3, 6);
    pub const INST_BAD_LEN: OfpError = e(3, 7);
    pub const INST_EPERM: OfpError = e(3, 8);
    /// OpenFlow 1.4+ (`OFPBIC_DUP_INST`); 1.3 sessions get `UNSUP_INST` instead.
    pub const DUP_INST: OfpError = e(3, 9);

    pub const BAD_MATCH_TYPE: OfpError = e(4, 0);
    pub const BAD_MATCH_LEN: OfpError = e(4, 1);
    pub const BAD_MATCH_TAG: OfpError = e(4, 2);
    pub const BAD_DL_ADDR_MASK: OfpError = e(4, 3);
    pub const BAD_NW_ADDR_MASK: OfpError = e(4, 4);
    pub const BAD_WILDCARDS: OfpError = e(4, 5);
    pub const BAD_FIELD: OfpError = e(4, 6);
    pub const BAD_VALUE: OfpError = e(4, 7);
    pub const BAD_MASK: OfpError = e(4, 8);
    pub const BAD_PREREQ: OfpError = e(4, 9);
    pub const DUP_FIELD: OfpError = e(4, 10);
    pub const BAD_MATCH_EPERM: OfpError = e(4, 11);

    pub const FLOW_MOD_UNKNOWN: OfpError = e(5, 0);
    pub const TABLE_FULL: OfpError = e(5, 1);
    pub const FLOW_MOD_BAD_TABLE_ID: OfpError = e(5, 2);
    pub const OVERLAP: OfpError = e(5, 3);
    pub const FLOW_MOD_EPERM: OfpError = e(5, 4);
    pub const BAD_TIMEOUT: OfpError = e(5, 5);
    pub const FLOW_MOD_BAD_COMMAND: OfpError = e(5, 6);
    pub const BAD_FLAGS: OfpError = e(5, 7);

    pub const GROUP_EXISTS: OfpError = e(6, 0);
    pub const INVALID_GROUP: OfpError = e(6, 1);
    pub const WEIGHT_UNSUPPORTED: OfpError = e(6, 2);
    pub const OUT_OF_GROUPS: OfpError = e(6, 3);
    pub const OUT_OF_BUCKETS: OfpError = e(6, 4);
    pub const CHAINING_UNSUPPORTED: OfpError = e(6, 5);
    pub const WATCH_UNSUPPORTED: OfpError = e(6, 6);
    pub const GROUP_LOOP: OfpError = e(6, 7);
    pub const UNKNOWN_GROUP: OfpError = e(6, 8);
    pub const CHAINED_GROUP: OfpError = e(6, 9);
    pub const BAD_GROUP_TYPE: OfpError = e(6, 10);
    pub const GROUP_BAD_COMMAND: OfpError = e(6, 11);
    pub const BAD_BUCKET: OfpError = e(6, 12);
    pub const BAD_WATCH: OfpError = e(6, 13);
    pub const GROUP_EPERM: OfpError = e(6, 14);

    pub const PORT_MOD_BAD_PORT: OfpError = e(7, 0);
    pub const PORT_MOD_BAD_HW_ADDR: OfpError = e(7, 1);
    pub const PORT_MOD_BAD_CONFIG: OfpError = e(7, 2);
    pub const PORT_MOD_BAD_ADVERTISE: OfpError = e(7, 3);
    pub const PORT_MOD_EPERM: OfpError = e(7, 4);

    pub const TABLE_MOD_BAD_TABLE: OfpError = e(8, 0);
    pub const TABLE_MOD_BAD_CONFIG: OfpError = e(8, 1);
    pub const TABLE_MOD_EPERM: OfpError = e(8, 2);

    pub const QUEUE_OP_BAD_PORT: OfpError = e(9, 0);
    pub const QUEUE_OP_BAD_QUEUE: OfpError = e(9, 1);
    pub const QUEUE_OP_EPERM: OfpError = e(9, 2);

    pub const SWITCH_CONFIG_BAD_FLAGS: OfpError = e(10, 0);
    pub const SWITCH_CONFIG_BAD_LEN: OfpError = e(10, 1);
    pub const SWITCH_CONFIG_EPERM: OfpError = e(10, 2);

    pub const ROLE_STALE: OfpError = e(11, 0);
    pub const ROLE_UNSUP: OfpError = e(11, 1);
    pub const BAD_ROLE: OfpError = e(11, 2);

    pub const METER_MOD_UNKNOWN: OfpError = e(12, 0);
    pub const METER_EXISTS: OfpError = e(12, 1);
    pub const INVALID_METER: OfpError = e(12, 2);
    pub const UNKNOWN_METER: OfpError = e(12, 3);
    pub const METER_BAD_COMMAND: OfpError = e(12, 4);
    pub const METER_BAD_FLAGS: OfpError = e(12, 5);
    pub const METER_BAD_RATE: OfpError = e(12, 6);
    pub const METER_BAD_BURST: OfpError = e(12, 7);
    pub const METER_BAD_BAND: OfpError = e(12, 8);
    pub const METER_BAD_BAND_VALUE: OfpError = e(12, 9);
    pub const OUT_OF_METERS: OfpError = e(12, 10);
    pub const OUT_OF_BANDS: OfpError = e(12, 11);

    pub const TABLE_FEATURES_BAD_TABLE: OfpError = e(13, 0);
    pub const TABLE_FEATURES_BAD_METADATA: OfpError = e(13, 1);
    pub const TABLE_FEATURES_BAD_TYPE: OfpError = e(13, 2);
    pub const TABLE_FEATURES_BAD_LEN: OfpError = e(13, 3);
    pub const TABLE_FEATURES_BAD_ARGUMENT: OfpError = e(13, 4);
    pub const TABLE_FEATURES_EPERM: OfpError = e(13, 5);

    /// `OFPBPC_BAD_TYPE` (1.4+ properties).
    pub const BAD_PROPERTY_TYPE: OfpError = e(14, 0);
    /// `OFPBPC_BAD_LEN` (1.4+ properties).
    pub const BAD_PROPERTY_LEN: OfpError = e(14, 1);

    /// The `(type, code)` to put on the wire for a session speaking `version`.
    pub fn to_wire(self, version: u8) -> (u16, u16) {
        use error_type::*;
        if version == OFP10 {
            return self.to_ofp10();
        }
        if version < OFP14 {
            if self == OfpError::DUP_INST {
                return (BAD_INSTRUCTION, 1);
            }
            if self.type_ >= BAD_PROPERTY && self.type_ != EXPERIMENTER {
                return (BAD_REQUEST, 5);
            }
        }
        (self.type_, self.code)
    }

    fn to_ofp10(self) -> (u16, u16) {
        // OpenFlow 1.0 types: HELLO_FAILED 0, BAD_REQUEST 1, BAD_ACTION 2, FLOW_MOD_FAILED 3,
        // PORT_MOD_FAILED 4, QUEUE_OP_FAILED 5.
        const FALLBACK: (u16, u16) = (1, 5);
        use error_type::*;
        match self.type_ {
            HELLO_FAILED if self.code <= 1 => (0, self.code),
            BAD_REQUEST if self.code <= 8 => (1, self.code),
            BAD_ACTION if self.code <= 8 => (2, self.code),
            BAD_ACTION => (2, 5), // the 1.1+ codes are all "bad argument" in 1.0
            FLOW_MOD_FAILED => match self.code {
                1 => (3, 0), // ALL_TABLES_FULL
                3 => (3, 1), // OVERLAP
                4 => (3, 2), // EPERM
                5 => (3, 3), // BAD_EMERG_TIMEOUT
                6 => (3, 4), // BAD_COMMAND
                _ => (3, 5), // UNSUPPORTED
            },
            PORT_MOD_FAILED if self.code <= 1 => (4, self.code),
            QUEUE_OP_FAILED if self.code <= 2 => (5, self.code),
            _ => FALLBACK,
        }
    }

    /// The numbering used by `to_wire` read back (for decoding errors a 1.0 peer sent).
    pub fn from_wire(version: u8, type_: u16, code: u16) -> OfpError {
        if version != OFP10 {
            return e(type_, code);
        }
        use error_type::*;
        match type_ {
            3 => match code {
                0 => OfpError::TABLE_FULL,
                1 => OfpError::OVERLAP,
                2 => OfpError::FLOW_MOD_EPERM,
                3 => OfpError::BAD_TIMEOUT,
                4 => OfpError::FLOW_MOD_BAD_COMMAND,
                _ => OfpError::FLOW_MOD_UNKNOWN,
            },
            4 => e(PORT_MOD_FAILED, code),
            5 => e(QUEUE_OP_FAILED, code),
            _ => e(type_, code),
        }
    }
}

impl core::fmt::Display for OfpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OpenFlow error type {} code {}", self.type_, self.code)
    }
}
