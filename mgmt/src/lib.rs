//! ironflow's management plane: OpenFlow (codec, sessions, connections), OVSDB, the configuration
//! model and its persistence, and the smoltcp glue for the management port. `no_std` + `alloc`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod agent;
pub mod cmdline;
pub mod config;
pub mod netif;
pub mod openflow;
pub mod ovsdb;
pub mod store;
