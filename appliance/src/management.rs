//! The management plane: the management NIC's IP stack (smoltcp) and the OpenFlow agent, with
//! OVSDB served by the configuration service over the same stack.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;

use drivers::dma::PacketPool;
use drivers::nic::Nic;
use mgmt::agent::{AgentConfig, OfAgent};
use mgmt::cmdline::BootSettings;
use mgmt::netif::{MgmtPort, NetifConfig};

use crate::Platform;
use crate::bridge::Bridge;
use crate::config::Config;
use crate::mgmt_dev::NicDevice;

/// The management NIC, its TCP/IP stack and the OpenFlow agent.
pub struct Management {
    dev: NicDevice,
    pub port: MgmtPort,
    pub agent: OfAgent,
    announced: Option<[u8; 4]>,
}

impl Management {
    pub fn new(
        settings: &BootSettings,
        nic: Box<dyn Nic>,
        pool: Rc<PacketPool>,
        now_ms: u64,
        seed: u64,
    ) -> Self {
        let mut dev = NicDevice::new(nic, pool);
        let agent = OfAgent::new(
            AgentConfig::from_settings(settings, settings.fail_mode),
            now_ms,
        );
        let mut config = NetifConfig::from_settings(settings, dev.mac(), seed);
        // Bound the OpenFlow work of one management poll (a flow-mod costs tens of µs): 4 KiB
        // per connection per poll keeps forwarding's pauses short during a bulk add-flows.
        config.read_budget = 4096;
        let port = MgmtPort::new(config, &mut dev, now_ms);
        log::info!(
            "mgmt: OpenFlow on tcp:6653 (fail_mode {:?}), {}",
            settings.fail_mode,
            match settings.mgmt_ip {
                Some(c) => alloc::format!(
                    "address {}.{}.{}.{}/{}",
                    c.addr[0],
                    c.addr[1],
                    c.addr[2],
                    c.addr[3],
                    c.prefix
                ),
                None => "address by DHCP".into(),
            }
        );
        Management {
            dev,
            port,
            agent,
            announced: None,
        }
    }

    pub fn stats_line(&self) -> String {
        let n = self.dev.stats();
        let p = self.port.stats();
        let a = self.agent.stats();
        alloc::format!(
            "mgmt: rx={} tx={} tx_full={} tx_dropped={} err={} kicks={} | tcp accepted={} closed={} bytes_in={} bytes_out={} | openflow connections={} {:?}",
            n.rx_packets,
            n.tx_packets,
            n.tx_full,
            self.dev.tx_dropped,
            n.rx_errors + n.tx_errors,
            n.notifications,
            p.accepted,
            p.closed,
            p.bytes_in,
            p.bytes_out,
            self.agent.connection_count(),
            a
        )
    }

    /// One bounded management pass: sockets, OpenFlow, OVSDB.
    pub fn poll<P: Platform>(
        &mut self,
        platform: &P,
        bridge: &mut Bridge,
        config: &mut Config,
        now: u64,
    ) {
        let t0 = platform.now_us();
        let mut ovsdb = config.service.streams();
        bridge.poll_management(
            now,
            &mut self.port,
            &mut self.dev,
            &mut self.agent,
            Some(&mut ovsdb),
        );
        let took = platform.now_us().saturating_sub(t0);
        if took > 20_000 {
            log::warn!(
                "mgmt: one management poll took {} ms (forwarding waited)",
                took / 1000
            );
        }
        let addr = self.port.ipv4_addr();
        if addr != self.announced {
            if let Some(a) = addr {
                log::info!("mgmt: address {}.{}.{}.{}", a[0], a[1], a[2], a[3]);
            }
            self.announced = addr;
        }
    }
}
