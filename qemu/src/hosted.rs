//! The hosted backend of [`Vm`](crate::Vm): the same appliance main loop run natively by the
//! hosted runner (`ironflow-hosted`, see `hosted/`) instead of the image in QEMU, wired so that
//! a test cannot tell the difference (needs root):
//!
//! - data port N is a veth pair: `<prefix>vN` in the root namespace is the runner's port
//!   (AF_XDP or AF_PACKET), its peer is `eth0` in namespace `<prefix>hN` with `10.0.0.N/24`, as
//!   with QEMU's taps. The hosts' offloads (TSO, GSO, checksum) are turned off with ethtool: a
//!   software switch port sees frames as on a wire, not 64 KiB super-frames with partial
//!   checksums.
//! - the management port is a tap `<prefix>t` the runner's smoltcp stack drives, moved into
//!   namespace `<prefix>m` once attached, with `10.0.2.2/24` on the host side and `10.0.2.15/24`
//!   on the appliance: QEMU user networking's addresses. Forwards `127.0.0.1:H → :G` are proxies
//!   (a listener on 127.0.0.1 in the test's namespace, connections made inside `<prefix>m`), and
//!   `controller=tcp:10.0.2.2:P` on the command line gets a listener on 10.0.2.2:P inside
//!   `<prefix>m` that connects to 127.0.0.1:P outside, like QEMU's user networking does.
//! - the console is the runner's stdin/stdout; its exit status 0 is [`ExitKind::Success`] and a
//!   panic's 101 is [`ExitKind::Failure`].
//!
//! Select it per test with [`VmBuilder::hosted`](crate::VmBuilder::hosted), or for every test
//! that boots the ELF with `IRONFLOW_BACKEND=hosted` (tests/run runs the forwarding, OpenFlow and
//! controller tests both ways).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::net::{NetnsPort, ip};
use crate::{Error, Result};

/// The appliance's management address on the tap, and the host's (QEMU's user-net addresses).
pub const MGMT_GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const MGMT_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// Whether tests should use the hosted runner (`IRONFLOW_BACKEND=hosted`).
pub fn backend_is_hosted() -> bool {
    std::env::var("IRONFLOW_BACKEND").is_ok_and(|v| v == "hosted")
}

/// The hosted runner binary: `IRONFLOW_HOSTED_BIN`, else built once (`cargo build --release -p
/// hosted`).
pub fn hosted_binary() -> Result<PathBuf> {
    static BIN: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("IRONFLOW_HOSTED_BIN") {
            return Ok(PathBuf::from(p));
        }
        image::build_hosted(true).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Error::new)
}

/// What a hosted run owns besides the process: the management namespace and its proxies.
pub(crate) struct HostedState {
    pub(crate) mgmt_ns: Option<String>,
    pub(crate) mgmt_tap: Option<String>,
    stop: Arc<AtomicBool>,
}

impl HostedState {
    pub(crate) fn teardown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = &self.mgmt_tap {
            let _ = ip(&["link", "del", "dev", t]);
        }
        if let Some(ns) = &self.mgmt_ns {
            if let Some(t) = &self.mgmt_tap {
                let _ = ip(&["-n", ns, "link", "del", "dev", t]);
            }
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Everything set up before the runner starts.
pub(crate) struct HostedSetup {
    pub(crate) args: Vec<String>,
    pub(crate) ports: Vec<NetnsPort>,
    pub(crate) state: HostedState,
}

fn prefix_of(net: &crate::PortNet) -> String {
    match net {
        crate::PortNet::Netns { prefix } => prefix.clone(),
        crate::PortNet::Dgram => match crate::PortNet::netns_unique() {
            crate::PortNet::Netns { prefix } => prefix,
            crate::PortNet::Dgram => String::from("ih"),
        },
    }
}

fn ethtool_off(ns: Option<&str>, dev: &str) -> Result<()> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    };
    cmd.args([
        "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
    ]);
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::new(format!("cannot run ethtool: {e} (tests/run installs it)")))?;
    // ethtool exits non-zero when some feature cannot change (veth's "rx" on some kernels);
    // the ones that matter (tx checksum, TSO, GSO) are checked below.
    let _ = out;
    let mut show = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    };
    let shown = show
        .args(["-k", dev])
        .output()
        .map_err(|e| Error::new(format!("cannot run ethtool: {e}")))?;
    let text = String::from_utf8_lossy(&shown.stdout);
    for feature in ["tcp-segmentation-offload", "generic-segmentation-offload"] {
        if text
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{feature}: on")))
        {
            return Err(Error::new(format!(
                "ethtool could not turn {feature} off on {dev}"
            )));
        }
    }
    Ok(())
}

/// Creates the veth pairs, host namespaces and the management tap; returns the runner's
/// arguments. On error, what was created is removed.
pub(crate) fn setup(b: &crate::VmBuilder) -> Result<HostedSetup> {
    let prefix = prefix_of(&b.port_net);
    let mut ports = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut state = HostedState {
        mgmt_ns: None,
        mgmt_tap: None,
        stop,
    };
    let r = (|| -> Result<Vec<String>> {
        let mut args = Vec::new();
        for n in 1..=b.data_ports {
            let veth = format!("{prefix}v{n}");
            let ns = format!("{prefix}h{n}");
            let p = NetnsPort {
                netns: ns.clone(),
                tap: veth.clone(),
                addr: format!("10.0.0.{n}/24"),
            };
            ports.push(p);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            // The runner's end carries only the switch's frames: no IPv6 of the host's own
            // (router solicitations, MLD) may leave through it.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{veth}/disable_ipv6"), "1");
            // The port's MAC is the one QEMU gives data port N (`ovs-ofctl show` agrees).
            ip(&[
                "link",
                "set",
                &veth,
                "address",
                &crate::net::data_port_mac(n),
            ])?;
            ip(&["link", "set", "dev", &veth, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.0.0.{n}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "dev", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
            ethtool_off(Some(&ns), "eth0")?;
            ethtool_off(None, &veth)?;
            args.push("--port".into());
            args.push(veth);
        }
        // `IRONFLOW_HOSTED_PORT_KIND=packet|xdp|auto` picks the data ports' socket type.
        if let Ok(kind) = std::env::var("IRONFLOW_HOSTED_PORT_KIND")
            && !kind.is_empty()
        {
            args.push("--port-kind".into());
            args.push(kind);
        }
        if b.mgmt_forwards.is_some() {
            let tap = format!("{prefix}t");
            let ns = format!("{prefix}m");
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            state.mgmt_ns = Some(ns);
            let _ = ip(&["link", "del", "dev", &tap]); // a stale one from a killed run
            ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
            state.mgmt_tap = Some(tap.clone());
            // Up, so that its carrier shows when the runner attaches (a down link has none).
            ip(&["link", "set", "dev", &tap, "up"])?;
            args.push("--mgmt-tap".into());
            args.push(tap);
        }
        Ok(args)
    })();
    match r {
        Ok(args) => Ok(HostedSetup { args, ports, state }),
        Err(e) => {
            crate::net::teardown_netns(&ports);
            state.teardown();
            Err(e)
        }
    }
}

/// After the runner started: moves the management tap into its namespace once the runner has
/// attached, addresses it, and starts the proxies. Returns the (host, guest) forwards.
pub(crate) fn wire(
    state: &HostedState,
    forwards: &[(u16, u16)],
    cmdline: &str,
    child: &mut std::process::Child,
) -> Result<Vec<(u16, u16)>> {
    let (Some(tap), Some(ns)) = (&state.mgmt_tap, &state.mgmt_ns) else {
        return Ok(Vec::new());
    };
    // The carrier goes up when the runner's TUNSETIFF attaches it; the runner does all it
    // needs the tap's name for (set up, MAC) before that (`hosted/src/tap.rs`), since its
    // lookups by name fail once the tap is in the namespace.
    let carrier = format!("/sys/class/net/{tap}/carrier");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::fs::read_to_string(&carrier).is_ok_and(|s| s.trim() == "1") {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::new(format!(
                "the hosted runner exited ({status}) before attaching to tap {tap}"
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::new(format!(
                "the hosted runner did not attach to tap {tap} within 20 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    ip(&["link", "set", "dev", tap, "netns", ns])?;
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{MGMT_HOST}/24"),
        "dev",
        tap,
    ])?;
    ip(&["-n", ns, "link", "set", "dev", tap, "up"])?;
    ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
    let ns_path = Path::new("/run/netns").join(ns);
    let mut out = Vec::new();
    for &(host, guest) in forwards {
        // Port 0: the kernel picks a free one for this listener (no probe-then-bind window
        // in which a parallel test could take it).
        let listener = TcpListener::bind(("127.0.0.1", host))
            .map_err(|e| Error::new(format!("bind 127.0.0.1:{host}: {e}")))?;
        let host = listener
            .local_addr()
            .map_err(|e| Error::new(format!("bind 127.0.0.1:{host}: {e}")))?
            .port();
        let ns_path = ns_path.clone();
        let stop = state.stop.clone();
        std::thread::spawn(move || {
            forward_loop(listener, stop, move || {
                in_netns(&ns_path, move || {
                    TcpStream::connect_timeout(
                        &SocketAddr::from((MGMT_GUEST, guest)),
                        Duration::from_secs(5),
                    )
                })
            })
        });
        out.push((host, guest));
    }
    // Guest → host: `controller=tcp:10.0.2.2:P` reaches 127.0.0.1:P, as with QEMU's user net.
    for word in cmdline.split_ascii_whitespace() {
        let Some(port) = word
            .strip_prefix("controller=tcp:10.0.2.2:")
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let listener = in_netns(&ns_path, move || TcpListener::bind((MGMT_HOST, port)))
            .map_err(|e| Error::new(format!("bind {MGMT_HOST}:{port} in {ns}: {e}")))?;
        let stop = state.stop.clone();
        std::thread::spawn(move || {
            forward_loop(listener, stop, move || {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_secs(5),
                )
            })
        });
    }
    Ok(out)
}

/// Runs `f` on a fresh thread inside network namespace `ns` (a socket keeps the namespace it
/// was made in, so what `f` returns works anywhere).
fn in_netns<T: Send + 'static>(
    ns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        let file = File::open(&ns)?;
        // SAFETY: setns(2) on this thread only, with a namespace file we opened.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")))
}

fn forward_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    connect: impl Fn() -> std::io::Result<TcpStream> + Send + Sync + 'static,
) {
    let connect = Arc::new(connect);
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                let connect = connect.clone();
                std::thread::spawn(move || match connect() {
                    Ok(server) => splice(client, server),
                    Err(_) => {
                        let _ = client.shutdown(Shutdown::Both);
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies both ways until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || copy(a2, b2));
    copy(b, a);
    let _ = t.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
