//! Ports as OpenFlow describes them: descriptions, statistics, and the datapath id.

use alloc::string::String;

use switch_core::port::{OFPP_MAX, Port, PortTable};

use crate::openflow::port::{PortDesc, PortStats};

/// The OpenFlow description of a port (the name cut to the 15 bytes OpenFlow carries).
pub fn port_desc(p: &Port) -> PortDesc {
    let mut name = String::new();
    for ch in p.name.chars() {
        if name.len() + ch.len_utf8() > 15 {
            break;
        }
        name.push(ch);
    }
    PortDesc {
        port_no: p.no(),
        hw_addr: p.hw_addr,
        name,
        config: p.config().bits(),
        state: p.state().bits(),
        curr: p.features.curr,
        advertised: p.features.advertised,
        supported: p.features.supported,
        peer: p.features.peer,
        curr_speed: p.curr_speed_kbps,
        max_speed: p.max_speed_kbps,
    }
}

/// The statistics of a port at `now_ms`.
pub fn port_stats(p: &Port, now_ms: u64) -> PortStats {
    let c = &p.counters;
    let age = now_ms.saturating_sub(p.added_ms);
    PortStats {
        port_no: p.no(),
        rx_packets: c.rx_packets,
        tx_packets: c.tx_packets,
        rx_bytes: c.rx_bytes,
        tx_bytes: c.tx_bytes,
        rx_dropped: c.rx_dropped,
        tx_dropped: c.tx_dropped,
        rx_errors: c.rx_errors + c.rx_malformed,
        tx_errors: c.tx_errors,
        duration_sec: (age / 1000) as u32,
        duration_nsec: ((age % 1000) * 1_000_000) as u32,
        ..PortStats::default()
    }
}

/// The datapath id Open vSwitch would pick: the lowest Ethernet address of the bridge's data
/// ports (multicast and zero addresses skipped) as a 48-bit number. Without one, a fixed
/// locally administered id.
pub fn datapath_id_from_ports(ports: &PortTable) -> u64 {
    ports
        .iter()
        .filter(|p| p.no() < OFPP_MAX)
        .map(|p| p.hw_addr)
        .filter(|m| m[0] & 1 == 0 && *m != [0; 6])
        .min()
        .map_or(0x0000_0200_0000_0001, |m| {
            m.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64)
        })
}
