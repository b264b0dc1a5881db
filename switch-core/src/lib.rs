//! ironflow's switching logic: packets and flow keys, the OpenFlow 1.3 pipeline (tables, groups,
//! meters hook), NORMAL learning switch, ports and counters, and the datapath cache (EMC +
//! megaflows) in front of the pipeline. `no_std` + `alloc`, host-testable.
#![no_std]
// `unsafe` is denied everywhere but in `prefetch` (one audited intrinsic, allowed there).
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod flow;

// Packet formats and key extraction.
pub mod extract;
pub mod packet;
pub mod wire;

// The OpenFlow pipeline.
pub mod action;
pub mod classifier;
pub mod error;
pub mod flow_match;
pub mod group;
pub mod pipeline;
pub mod table;
pub mod trace;

// The NORMAL action and ports.
pub mod normal;
pub mod port;

// The datapath cache in front of the pipeline.
pub mod datapath;
mod prefetch;

// The multi-core datapath: per-core workers fed by epoch publication.
pub mod mcore;
