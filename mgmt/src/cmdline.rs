//! The kernel command line: bootstrap settings (`key=value` words separated by spaces).
//!
//! Unknown keys and bad values never stop the boot: they are reported as warnings and the
//! default is kept, so a typo on an appliance's boot line cannot brick it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::str::FromStr;
use switch_core::port::{VlanMode, VlanSet};

/// What the kernel does after a panic or fatal exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPanic {
    /// Exit QEMU with a failure status (isa-debug-exit); for tests.
    Exit,
    /// Print, wait a few seconds, reset the machine (the appliance default).
    Reboot,
    /// Print and stop.
    Halt,
}

/// A crash to trigger on purpose after boot (tests of the fault reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestCrash {
    PageFault,
    Panic,
}

/// An IPv4 address with prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: [u8; 4],
    pub prefix: u8,
}

/// The settings the kernel command line carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSettings {
    pub log_level: log::LevelFilter,
    pub exit_after_ready: bool,
    pub on_panic: OnPanic,
    pub test_crash: Option<TestCrash>,
    /// Static management address (`mgmt.ip=A.B.C.D/N`); DHCP when absent.
    pub mgmt_ip: Option<Ipv4Cidr>,
    pub mgmt_gw: Option<[u8; 4]>,
    /// PCI address (bus, device, function) of the management NIC (`mgmt.nic=BB:DD.F`).
    pub mgmt_nic: Option<(u8, u8, u8)>,
    /// Active controller targets (`controller=tcp:IP:PORT`, repeatable).
    pub controllers: Vec<String>,
    /// Per-port VLAN settings (`port.N.vlan=...`), raw; the switch parses the mode.
    pub port_vlans: Vec<(u32, String)>,
    /// Seconds between console statistics lines (`stats=N`, 0 = off).
    pub stats_interval_s: u32,
    /// What the bridge does without a controller (`fail_mode=secure|standalone`).
    pub fail_mode: crate::agent::FailMode,
    /// The bridge created at first boot (empty configuration database) with every data NIC
    /// as a port (`bridge=NAME`, default `br0`; `bridge=none` creates no bridge).
    pub bootstrap_bridge: Option<String>,
    /// Format the configuration disk even if it holds something that is not an ironflow
    /// configuration (`config.format=1`): without it a foreign or corrupt disk is left alone.
    pub config_format: bool,
    /// Packet-ins waiting for delivery to the controllers (`packet_in.queue=N`); more are
    /// dropped and counted.
    pub packet_in_queue: usize,
    /// Open vSwitch's controller rate limit, packet-ins per second per connection
    /// (`controller.rate_limit=N`, raised to 100 as OVS does; absent = no limit). Written into
    /// the `Controller` rows created at first boot and applied to connections without a row.
    pub controller_rate_limit: Option<u32>,
    /// The rate limiter's burst (`controller.burst_limit=N`; default rate/4, at least 25).
    pub controller_burst_limit: Option<u32>,
    /// Datapath cores (`datapath.cores=N`, 1..=63): with N and at least two CPUs, the boot
    /// CPU runs the management plane alone and N application processors (at most the ones
    /// online) each poll their own queue pair of every data port. 0 (the default): one
    /// loop on the boot CPU does both.
    pub datapath_cores: u16,
}

impl Default for BootSettings {
    fn default() -> Self {
        BootSettings {
            log_level: log::LevelFilter::Info,
            exit_after_ready: false,
            on_panic: OnPanic::Reboot,
            test_crash: None,
            mgmt_ip: None,
            mgmt_gw: None,
            mgmt_nic: None,
            controllers: Vec::new(),
            port_vlans: Vec::new(),
            stats_interval_s: 5,
            fail_mode: crate::agent::FailMode::Standalone,
            bootstrap_bridge: Some(String::from("br0")),
            config_format: false,
            packet_in_queue: crate::agent::DEFAULT_PACKET_IN_QUEUE,
            controller_rate_limit: None,
            controller_burst_limit: None,
            datapath_cores: 0,
        }
    }
}

fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in out.iter_mut() {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn parse_bdf(s: &str) -> Option<(u8, u8, u8)> {
    let (bus, rest) = s.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let dev = u8::from_str_radix(dev, 16).ok()?;
    let func = u8::from_str_radix(func, 16).ok()?;
    (dev < 32 && func < 8).then_some((bus, dev, func))
}

impl BootSettings {
    /// The controller rate limit the settings ask for (`None`: no limit).
    pub fn controller_rate_limit(&self) -> Option<crate::agent::RateLimit> {
        self.controller_rate_limit
            .map(|r| crate::agent::RateLimit::new(r, self.controller_burst_limit))
    }

    /// Parses a command line; returns the settings and a warning per word that was not understood.
    pub fn parse(cmdline: &str) -> (BootSettings, Vec<String>) {
        let mut s = BootSettings::default();
        let mut warnings = Vec::new();
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let ok = match key {
                "log" => log::LevelFilter::from_str(value)
                    .map(|l| s.log_level = l)
                    .is_ok(),
                "exit_after_ready" => parse_bool(value).map(|b| s.exit_after_ready = b).is_some(),
                "on_panic" => match value {
                    "exit" => Some(OnPanic::Exit),
                    "reboot" => Some(OnPanic::Reboot),
                    "halt" => Some(OnPanic::Halt),
                    _ => None,
                }
                .map(|p| s.on_panic = p)
                .is_some(),
                "test.crash" => match value {
                    "pagefault" => Some(TestCrash::PageFault),
                    "panic" => Some(TestCrash::Panic),
                    _ => None,
                }
                .map(|c| s.test_crash = Some(c))
                .is_some(),
                "mgmt.ip" => value
                    .split_once('/')
                    .and_then(|(a, p)| {
                        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
                        Some(Ipv4Cidr {
                            addr: parse_ipv4(a)?,
                            prefix,
                        })
                    })
                    .map(|c| s.mgmt_ip = Some(c))
                    .is_some(),
                "mgmt.gw" => parse_ipv4(value).map(|g| s.mgmt_gw = Some(g)).is_some(),
                "mgmt.nic" => parse_bdf(value).map(|b| s.mgmt_nic = Some(b)).is_some(),
                "controller" => {
                    let valid = value
                        .strip_prefix("tcp:")
                        .and_then(|r| r.rsplit_once(':'))
                        .is_some_and(|(ip, port)| {
                            parse_ipv4(ip).is_some() && port.parse::<u16>().is_ok()
                        });
                    if valid {
                        s.controllers.push(value.to_string());
                    }
                    valid
                }
                "stats" => value.parse().map(|n| s.stats_interval_s = n).is_ok(),
                "datapath.cores" => value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n <= 63)
                    .map(|n| s.datapath_cores = n)
                    .is_some(),
                "bridge" => match value {
                    "none" => {
                        s.bootstrap_bridge = None;
                        true
                    }
                    v if !v.is_empty()
                        && v.len() <= 15
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
                    {
                        s.bootstrap_bridge = Some(v.to_string());
                        true
                    }
                    _ => false,
                },
                "config.format" => parse_bool(value).map(|b| s.config_format = b).is_some(),
                "packet_in.queue" => value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1 << 20).contains(n))
                    .map(|n| s.packet_in_queue = n)
                    .is_some(),
                "controller.rate_limit" => value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(|n| s.controller_rate_limit = Some(n))
                    .is_some(),
                "controller.burst_limit" => value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(|n| s.controller_burst_limit = Some(n))
                    .is_some(),
                "fail_mode" => crate::agent::FailMode::from_name(value)
                    .map(|m| s.fail_mode = m)
                    .is_some(),
                _ => match key
                    .strip_prefix("port.")
                    .and_then(|r| r.strip_suffix(".vlan"))
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Some(port) if !value.is_empty() => {
                        s.port_vlans.push((port, value.to_string()));
                        true
                    }
                    _ => {
                        // GRUB and hypervisors add words of their own (BOOT_IMAGE=...): ignore
                        // words without '=' and a few well-known ones silently.
                        if !word.contains('=') || key == "BOOT_IMAGE" || key == "console" {
                            continue;
                        }
                        warnings.push(format!("unknown setting '{word}' ignored"));
                        continue;
                    }
                },
            };
            if !ok {
                warnings.push(format!("bad value in '{word}', default kept"));
            }
        }
        (s, warnings)
    }
}

/// Parses a `port.N.vlan=` value: `10` (access), `trunk:10,20`, `native-tagged:10:20,30`,
/// `native-untagged:10:20,30`.
pub fn parse_vlan_mode(s: &str) -> Option<VlanMode> {
    fn list(s: &str) -> Option<VlanSet> {
        let mut set = VlanSet::EMPTY;
        for v in s.split(',').filter(|v| !v.is_empty()) {
            set.insert(v.parse().ok().filter(|v| *v < 4095)?);
        }
        Some(set)
    }
    let mode = match s.split_once(':') {
        None => VlanMode::Access(s.parse().ok()?),
        Some(("trunk", l)) => VlanMode::Trunk(list(l)?),
        Some((kind, rest)) => {
            let (native, l) = rest.split_once(':').unwrap_or((rest, ""));
            let native = native.parse().ok()?;
            let allowed = if l.is_empty() {
                VlanSet::all()
            } else {
                list(l)?
            };
            match kind {
                "native-tagged" => VlanMode::NativeTagged(native, allowed),
                "native-untagged" => VlanMode::NativeUntagged(native, allowed),
                _ => return None,
            }
        }
    };
    mode.is_valid().then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_setting() {
        let (s, w) = BootSettings::parse(
            "log=debug exit_after_ready=1 on_panic=exit test.crash=pagefault mgmt.ip=10.0.2.15/24 \
             mgmt.gw=10.0.2.2 mgmt.nic=00:03.0 controller=tcp:10.0.2.2:6653 port.2.vlan=10 stats=0 fail_mode=secure \
             bridge=sw-1 config.format=1 datapath.cores=3",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.log_level, log::LevelFilter::Debug);
        assert!(s.exit_after_ready);
        assert_eq!(s.on_panic, OnPanic::Exit);
        assert_eq!(s.test_crash, Some(TestCrash::PageFault));
        assert_eq!(
            s.mgmt_ip,
            Some(Ipv4Cidr {
                addr: [10, 0, 2, 15],
                prefix: 24
            })
        );
        assert_eq!(s.mgmt_gw, Some([10, 0, 2, 2]));
        assert_eq!(s.mgmt_nic, Some((0, 3, 0)));
        assert_eq!(s.controllers, ["tcp:10.0.2.2:6653"]);
        assert_eq!(s.port_vlans, [(2, "10".to_string())]);
        assert_eq!(s.stats_interval_s, 0);
        assert_eq!(s.fail_mode, crate::agent::FailMode::Secure);
        assert_eq!(s.bootstrap_bridge.as_deref(), Some("sw-1"));
        assert!(s.config_format);
        assert_eq!(s.datapath_cores, 3);
        assert_eq!(BootSettings::parse("bridge=none").0.bootstrap_bridge, None);
    }

    #[test]
    fn packet_in_queue_and_rate_limit() {
        use crate::agent::RateLimit;
        let (s, w) = BootSettings::parse("packet_in.queue=1000");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.packet_in_queue, 1000);
        assert_eq!(s.controller_rate_limit(), None);
        assert_eq!(
            BootSettings::default().packet_in_queue,
            crate::agent::DEFAULT_PACKET_IN_QUEUE
        );
        let (s, w) = BootSettings::parse("controller.rate_limit=1000");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.controller_rate_limit(), Some(RateLimit::new(1000, None)));
        assert_eq!(s.controller_rate_limit().unwrap().burst, 250);
        let (s, _) = BootSettings::parse("controller.rate_limit=50 controller.burst_limit=10");
        // Open vSwitch's minimums: 100/s, burst 25.
        assert_eq!(
            s.controller_rate_limit(),
            Some(RateLimit {
                rate: 100,
                burst: 25
            })
        );
        let (s, w) = BootSettings::parse(
            "packet_in.queue=0 packet_in.queue=x controller.rate_limit=-1 controller.burst_limit=",
        );
        assert_eq!(s, BootSettings::default());
        assert_eq!(w.len(), 4, "{w:?}");
    }

    #[test]
    fn bad_words_warn_and_keep_defaults() {
        let (s, w) = BootSettings::parse(
            "log=loud on_panic=explode mgmt.ip=300.1.1.1/24 mgmt.ip=1.2.3.4/33 controller=udp:x \
             mgmt.nic=zz bridge=a/b frobnicate=1 quiet BOOT_IMAGE=/boot/x",
        );
        assert_eq!(s, BootSettings::default());
        assert_eq!(w.len(), 8, "{w:?}");
        assert!(w[7].contains("frobnicate"));
    }

    #[test]
    fn vlan_modes() {
        assert_eq!(parse_vlan_mode("10"), Some(VlanMode::Access(10)));
        assert_eq!(
            parse_vlan_mode("trunk:10,20"),
            Some(VlanMode::Trunk(VlanSet::from_vids(&[10, 20])))
        );
        assert_eq!(
            parse_vlan_mode("native-untagged:10:20,30"),
            Some(VlanMode::NativeUntagged(10, VlanSet::from_vids(&[20, 30])))
        );
        assert_eq!(
            parse_vlan_mode("native-tagged:10"),
            Some(VlanMode::NativeTagged(10, VlanSet::all()))
        );
        for bad in [
            "",
            "x",
            "5000",
            "trunk:1,x",
            "native-foo:1",
            "trunk:4095",
            "native-tagged:",
        ] {
            assert_eq!(parse_vlan_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_and_garbage_lines_do_not_panic() {
        for line in [
            "",
            "   ",
            "=",
            "==",
            "a=b=c",
            "port..vlan=1",
            "port.99999999999.vlan=1",
        ] {
            let _ = BootSettings::parse(line);
        }
    }
}
