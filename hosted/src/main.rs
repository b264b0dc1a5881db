//! `ironflow-hosted`: the appliance's main loop (the `appliance` crate, the same code the image
//! runs) on a Linux host, for development, benchmarks and CI speed. The image stays the product.
//!
//! ```text
//! ironflow-hosted [--port IFNAME]... [--port-kind auto|xdp|packet] [--mgmt-tap NAME]
//!                 [--config FILE] [--busy-poll] [--] [KEY=VALUE]...
//! ```
//!
//! - `--port IFNAME`: a data port, in order (`eth1`, `eth2`, ... in the configuration), driven
//!   through AF_XDP when the interface allows it, else AF_PACKET (`--port-kind` forces one).
//! - `--mgmt-tap NAME`: the management port, a tap device (created if missing) on which the
//!   appliance's own smoltcp stack answers OpenFlow (6653) and OVSDB (6640): the same
//!   management code path as the image. Give the host side an address (`ip addr add
//!   10.0.2.2/24 dev NAME`) and the appliance one with `mgmt.ip=10.0.2.15/24`.
//! - `--config FILE`: the configuration disk (created, 64 MiB sparse, if missing).
//! - `--busy-poll`: never wait when idle (by default, after 1,024 passes that received nothing,
//!   each pass waits in `poll(2)` for a frame on any port, at most 1 ms).
//! - `KEY=VALUE`: the kernel command line's settings (`mgmt.ip=`, `controller=`, `fail_mode=`,
//!   `bridge=`, `port.N.vlan=`, `log=`, `stats=`, `exit_after_ready=1`, `on_panic=exit`, ...).
//!
//! Console keys on stdin as on the serial console: `s` stats, `m` MAC table, `d` megaflows,
//! `p` cache statistics, `h` memory, `q` quit (with `on_panic=exit`).

mod disk;
mod platform;

use std::path::PathBuf;

use drivers::nic::Nic;
use hosted::PortKind;
use mgmt::cmdline::BootSettings;
use std::os::fd::AsRawFd;

const USAGE: &str = "usage: ironflow-hosted [--port IFNAME]... [--port-kind auto|xdp|packet] \
                     [--mgmt-tap NAME] [--config FILE] [--busy-poll] [--] [KEY=VALUE]...";

struct Args {
    ports: Vec<String>,
    kind: PortKind,
    mgmt_tap: Option<String>,
    config: Option<PathBuf>,
    busy_poll: bool,
    settings: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        ports: Vec::new(),
        kind: PortKind::Auto,
        mgmt_tap: None,
        config: None,
        busy_poll: false,
        settings: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let mut rest = false;
    while let Some(arg) = it.next() {
        if rest || arg.contains('=') && !arg.starts_with("--") {
            a.settings.push(arg);
            continue;
        }
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--" => rest = true,
            "--port" => a.ports.push(value("--port")?),
            "--port-kind" => {
                a.kind = match value("--port-kind")?.as_str() {
                    "auto" => PortKind::Auto,
                    "xdp" => PortKind::Xdp,
                    "packet" => PortKind::Packet,
                    k => return Err(format!("--port-kind {k}: expected auto, xdp or packet")),
                }
            }
            "--mgmt-tap" => a.mgmt_tap = Some(value("--mgmt-tap")?),
            "--config" => a.config = Some(PathBuf::from(value("--config")?)),
            "--busy-poll" => a.busy_poll = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ironflow-hosted: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let (settings, warnings) = BootSettings::parse(&args.settings.join(" "));
    platform::init_logger(settings.log_level);
    log::info!(
        "ironflow {} hosted on {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "Linux".into()),
        std::process::id()
    );
    log::info!("cmdline: {}", args.settings.join(" "));
    for w in &warnings {
        log::warn!("cmdline: {w}");
    }
    // A panic is the image's `on_panic`: with `exit` the process ends with status 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        platform::line(format_args!("PANIC: {info}"));
        default_hook(info);
    }));

    // Per port: AF_XDP keeps 1,024 buffers in its fill ring and up to 2,048 in flight on
    // transmit; plus the management port and bursts.
    let pool = match hosted::dma::host_pool(args.ports.len() * 4096 + 1024) {
        Ok(p) => p,
        Err(e) => fail(&format!("cannot allocate the packet pool: {e}")),
    };
    log::info!("pool: {} packet buffers", pool.num_bufs());
    let mut ports: Vec<Box<dyn Nic>> = Vec::new();
    let mut fds = Vec::new();
    for name in &args.ports {
        match hosted::open_port(name, args.kind, &pool) {
            Ok((p, fd)) => {
                ports.push(p);
                fds.push(fd);
            }
            Err(e) => fail(&format!("port {name}: {e}")),
        }
    }
    let mgmt_nic: Option<Box<dyn Nic>> = match &args.mgmt_tap {
        Some(name) => match hosted::tap::TapPort::open(name, pool.clone()) {
            Ok(t) => {
                log::info!("mgmt: tap {name} is the management port");
                fds.push(t.as_raw_fd());
                Some(Box::new(t))
            }
            Err(e) => fail(&format!("mgmt tap {name}: {e}")),
        },
        None => None,
    };
    let disk = match &args.config {
        Some(path) => match disk::FileDisk::open(path, 64) {
            Ok(d) => {
                log::info!("config disk: {}", path.display());
                Some(d)
            }
            Err(e) => fail(&format!("config disk {}: {e}", path.display())),
        },
        None => None,
    };
    let mut host = platform::HostPlatform::new(
        settings.on_panic == mgmt::cmdline::OnPanic::Exit,
        if args.busy_poll { 0 } else { 1024 },
        &fds,
    );
    let mut switch = appliance::Appliance::new(&host, &settings, pool, ports, mgmt_nic, disk);
    let ready_us = appliance::Platform::now_us(&host);
    platform::line(format_args!("ironflow: ready boot_us={ready_us}"));
    if settings.exit_after_ready {
        platform::line(format_args!("{}", switch.bridge.stats_line()));
        return;
    }
    switch.run(&mut host)
}

fn fail(msg: &str) -> ! {
    log::error!("{msg}");
    eprintln!("ironflow-hosted: {msg}");
    std::process::exit(1)
}
