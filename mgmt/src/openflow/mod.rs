//! OpenFlow: the wire codec (1.0, 1.3, 1.4, 1.5) and the per-connection session state machine.
//!
//! - `header`: `ofp_header` view and the stream `Framer`.
//! - `message`: `Message`, one version-independent enum; `Message::decode` / `Message::encode`.
//! - `oxm`, `action`, `port`, `group`, `meter`, `multipart`: the structures messages carry.
//! - `error`: `OfpError` (type/code, 1.3 numbering, translated per version on the wire).
//! - `session`: HELLO negotiation, echo keep-alive, features/description/config answered from
//!   `SwitchInfo`, everything else handed to the caller as events.
//!
//! Untrusted bytes go through `Framer` then `Message::decode`; neither panics on any input.

pub mod action;
pub mod bytes;
pub mod convert;
pub mod error;
pub mod group;
pub mod header;
pub mod message;
pub mod meter;
pub mod multipart;
pub mod oxm;
pub mod port;
pub mod session;

pub use action::{Action, Instruction};
pub use error::OfpError;
pub use header::{FrameError, Framer, Header, OfpHeader};
pub use message::{ErrorMsg, FlowMod, FlowModCommand, Hello, Message, PacketIn, PacketOut};
pub use multipart::{MultipartReply, MultipartRequest};
pub use oxm::{Match, OxmField};
pub use session::{DisconnectReason, Request, Session, SessionConfig, SessionEvent, SwitchInfo};

/// OpenFlow 1.0 wire version.
pub const OFP10: u8 = 0x01;
/// OpenFlow 1.3 wire version.
pub const OFP13: u8 = 0x04;
/// OpenFlow 1.4 wire version.
pub const OFP14: u8 = 0x05;
/// OpenFlow 1.5 wire version.
pub const OFP15: u8 = 0x06;

/// Bitmap (bit `v` = version `v`) of every version the codec implements.
pub const SUPPORTED_VERSIONS: u32 = (1 << OFP10) | (1 << OFP13) | (1 << OFP14) | (1 << OFP15);

/// Whether the codec implements wire version `v`.
pub fn is_supported_version(v: u8) -> bool {
    v < 32 && SUPPORTED_VERSIONS & (1 << v) != 0
}
