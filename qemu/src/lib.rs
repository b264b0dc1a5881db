//! Runs ironflow images in QEMU: the ELF by PVH (`-kernel`), or the hybrid disk image with SeaBIOS or
//! OVMF; KVM when `/dev/kvm` is usable, TCG otherwise; N virtio-net data ports (UDP `dgram` sockets
//! the caller can inject/capture frames on, or tap devices inside network namespaces when root); a
//! management NIC (user networking with host port forwards) that is always the first virtio-net device
//! in PCI order; the serial console captured line by line; exit status through `isa-debug-exit`.
//!
//! ```no_run
//! use ironflow_qemu::{ExitKind, Vm};
//! use std::time::Duration;
//! let mut vm = Vm::builder()
//!     .elf("target/image/ironflow.elf")
//!     .cmdline("exit_after_ready=1")
//!     .memory_mb(32)
//!     .data_ports(1)
//!     .spawn()?;
//! vm.wait_for_line("ironflow: ready", Duration::from_secs(60))?;
//! assert_eq!(vm.wait_exit(Duration::from_secs(10)), ExitKind::Success);
//! # Ok::<(), ironflow_qemu::Error>(())
//! ```

pub mod hosted;
mod net;
mod serial;

pub use hosted::{backend_is_hosted, hosted_binary};
pub use net::{DgramPort, PortNet, data_port_mac};
pub use regex::Regex;

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use net::{NetnsPort, PortSetup};
use serial::SerialCapture;

/// QEMU's exit status when the kernel writes 0x10 (success) / 0x11 (failure) to `isa-debug-exit`.
pub const EXIT_SUCCESS_STATUS: i32 = 33;
pub const EXIT_FAILURE_STATUS: i32 = 35;

/// The `isa-debug-exit` device the kernel uses to exit QEMU.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// PCI slot of the management NIC; data port N (1-based) sits at slot `MGMT_PCI_SLOT + N`, so the
/// management NIC is always the first virtio-net device in PCI order.
pub const MGMT_PCI_SLOT: u8 = 3;
/// PCI slot of the optional virtio-blk configuration disk.
pub const CONFIG_DISK_PCI_SLOT: u8 = 0x1e;
/// MAC of the management NIC; data port N gets `52:54:00:00:00:NN` (hex).
pub const MGMT_MAC: &str = "52:54:00:00:01:00";

/// OVMF as Debian 12's `ovmf` package ships it: split code/vars for pflash, or one combined file.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";
pub const OVMF_COMBINED: &str = "/usr/share/ovmf/OVMF.fd";

pub const QEMU_BINARY: &str = "qemu-system-x86_64";

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl From<image::Error> for Error {
    fn from(e: image::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Status 33: the kernel reported success through `isa-debug-exit`.
    Success,
    /// Status 35: the kernel reported failure (panic or exception with `on_panic=exit`).
    Failure,
    /// Any other status (QEMU error, triple fault with `-no-reboot` gives 0); killed by signal S
    /// gives `Other(128 + S)`.
    Other(i32),
    /// Still running when the timeout expired.
    Timeout,
}

impl ExitKind {
    pub fn from_status(status: std::process::ExitStatus) -> ExitKind {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(EXIT_SUCCESS_STATUS), _) => ExitKind::Success,
            (Some(EXIT_FAILURE_STATUS), _) => ExitKind::Failure,
            (Some(c), _) => ExitKind::Other(c),
            (None, Some(s)) => ExitKind::Other(128 + s),
            (None, None) => ExitKind::Other(-1),
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Success => write!(f, "success (status {EXIT_SUCCESS_STATUS})"),
            ExitKind::Failure => write!(f, "failure (status {EXIT_FAILURE_STATUS})"),
            ExitKind::Other(c) => write!(f, "error (status {c})"),
            ExitKind::Timeout => write!(f, "timeout"),
        }
    }
}

/// CPU virtualisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// `-accel kvm -cpu host,-arch-capabilities` (plain `-cpu host` aborts on these machines).
    Kvm,
    /// `-accel tcg`, QEMU's emulator.
    Tcg,
}

impl Accel {
    /// `IRONFLOW_ACCEL=kvm|tcg` if set, else KVM when `/dev/kvm` is usable and not `kvm_pvm`
    /// (see [`kvm_is_pvm`]), else TCG.
    pub fn detect() -> Result<Accel> {
        match std::env::var("IRONFLOW_ACCEL").ok().as_deref() {
            Some("kvm") => Ok(Accel::Kvm),
            Some("tcg") => Ok(Accel::Tcg),
            Some("") | None => Ok(if kvm_usable().is_ok() && !kvm_is_pvm() {
                Accel::Kvm
            } else {
                Accel::Tcg
            }),
            Some(other) => Err(Error::new(format!(
                "IRONFLOW_ACCEL={other:?}: expected kvm or tcg"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Ok if `/dev/kvm` can be opened for reading and writing; else why not.
pub fn kvm_usable() -> std::result::Result<(), String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm is not usable: {e}"))
}

/// True when `/dev/kvm` is provided by `kvm_pvm` (Pagetable-based Virtual Machine, a software
/// hypervisor for nested clouds): it runs a guest kernel that is not PVM-aware through its instruction
/// emulator, so firmware and the ironflow kernel run ~100x slower than under TCG (docs/benchmarks.md).
/// [`Accel::detect`] then picks TCG; `IRONFLOW_ACCEL=kvm` or [`VmBuilder::accel`] still force KVM.
pub fn kvm_is_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// True when running as root (taps, network namespaces).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// `-machine q35` (PCIe, AHCI; the default).
    Q35,
    /// `-machine pc` (i440FX, PIIX IDE).
    Pc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF (UEFI): pflash code + a private copy of the vars, or the combined `OVMF.fd` as `-bios`.
    Uefi,
}

#[derive(Clone, Debug)]
pub enum Boot {
    /// PVH direct boot of the ELF (`-kernel`, `-append cmdline`); needs SeaBIOS.
    Elf(PathBuf),
    /// The hybrid disk image as a hard disk (the command line is baked into its `grub.cfg`).
    Disk { image: PathBuf, firmware: Firmware },
}

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// Captured line by line (wait_for_line, serial_log) and written to the log file.
    Capture,
    /// Captured as above and also echoed to this process's stdout.
    CaptureEcho,
    /// Attached to the terminal (`-serial mon:stdio`; Ctrl-A X quits, Ctrl-A C is the monitor).
    Terminal,
}

/// Builds a [`Vm`]; see the crate example.
#[derive(Clone, Debug)]
pub struct VmBuilder {
    name: String,
    boot: Option<Boot>,
    cmdline: String,
    memory_mb: u32,
    smp: u32,
    machine: Machine,
    accel: Option<Accel>,
    data_ports: usize,
    data_port_queues: u16,
    port_net: PortNet,
    mgmt_forwards: Option<Vec<(u16, u16)>>,
    config_disk: Option<PathBuf>,
    console: Console,
    log_path: Option<PathBuf>,
    extra_args: Vec<String>,
    /// Run the hosted runner at this path instead of QEMU (see [`hosted`]).
    hosted: Option<PathBuf>,
}

impl Default for VmBuilder {
    fn default() -> Self {
        VmBuilder {
            name: "vm".into(),
            boot: None,
            cmdline: String::new(),
            memory_mb: 128,
            smp: 1,
            machine: Machine::Q35,
            accel: None,
            data_ports: 0,
            data_port_queues: 1,
            port_net: PortNet::Dgram,
            mgmt_forwards: None,
            config_disk: None,
            console: Console::Capture,
            log_path: None,
            extra_args: Vec::new(),
            hosted: None,
        }
    }
}

impl VmBuilder {
    /// A name for the log file and the QEMU process (`-name`); made unique per VM.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Boot this ELF through PVH.
    pub fn elf(mut self, path: impl AsRef<Path>) -> Self {
        self.boot = Some(Boot::Elf(path.as_ref().to_path_buf()));
        self
    }

    /// Boot this disk image with SeaBIOS or OVMF.
    pub fn disk(mut self, image: impl AsRef<Path>, firmware: Firmware) -> Self {
        self.boot = Some(Boot::Disk {
            image: image.as_ref().to_path_buf(),
            firmware,
        });
        self
    }

    /// Kernel command line for PVH boot (disk images carry theirs in `grub.cfg`).
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = cmdline.to_string();
        self
    }

    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// vCPUs (`-smp N`, default 1); under TCG, N > 1 also picks `-accel tcg,thread=multi`.
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    pub fn machine(mut self, m: Machine) -> Self {
        self.machine = m;
        self
    }

    /// Force an accelerator (default: [`Accel::detect`]).
    pub fn accel(mut self, a: Accel) -> Self {
        self.accel = Some(a);
        self
    }

    /// N virtio-net data ports, wired as set by [`VmBuilder::port_net`] (default: dgram sockets).
    pub fn data_ports(mut self, n: usize) -> Self {
        self.data_ports = n;
        self
    }

    /// Queue pairs per data port (default 1). With N > 1 each data port's device gets
    /// `mq=on,vectors=2N+2` and its tap netdev `queues=N` (a `multi_queue` tap); needs
    /// [`PortNet::Netns`] (QEMU's dgram netdev has one queue; `spawn` fails otherwise).
    pub fn data_port_queues(mut self, n: u16) -> Self {
        self.data_port_queues = n;
        self
    }

    pub fn port_net(mut self, net: PortNet) -> Self {
        self.port_net = net;
        self
    }

    /// A management NIC (user networking) forwarding `127.0.0.1:host` to guest TCP ports; a host
    /// port of 0 picks a free one (see [`Vm::mgmt_host_port`]). An empty list adds the NIC with no
    /// forwards.
    pub fn mgmt_nic(mut self, forwards: &[(u16, u16)]) -> Self {
        self.mgmt_forwards = Some(forwards.to_vec());
        self
    }

    /// A raw file as a virtio-blk configuration disk at PCI slot `CONFIG_DISK_PCI_SLOT` (after
    /// the NICs, so their addresses do not move); created (64 MiB, sparse) if missing.
    pub fn config_disk(mut self, path: impl AsRef<Path>) -> Self {
        self.config_disk = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn console(mut self, c: Console) -> Self {
        self.console = c;
        self
    }

    /// Serial log file (default: `<log dir>/<name>-<pid>-<n>.log`, see [`log_dir`]).
    pub fn log_path(mut self, p: impl AsRef<Path>) -> Self {
        self.log_path = Some(p.as_ref().to_path_buf());
        self
    }

    /// Runs the appliance natively with the hosted runner `bin` instead of the image in QEMU
    /// (see [`hosted`]); the ELF, the accelerator and QEMU arguments are then ignored.
    /// `IRONFLOW_BACKEND=hosted` does this for every VM that boots an ELF.
    pub fn hosted(mut self, bin: impl AsRef<Path>) -> Self {
        self.hosted = Some(bin.as_ref().to_path_buf());
        self
    }

    /// An extra QEMU argument, appended as is.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.to_string());
        self
    }

    /// Starts QEMU. With netns data ports (root) it also creates the taps and namespaces, and returns
    /// once they are wired.
    pub fn spawn(self) -> Result<Vm> {
        Vm::spawn(self)
    }
}

/// Where serial logs go by default: `$IRONFLOW_LOG_DIR`, else `<cargo target dir>/qemu-logs`.
pub fn log_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("IRONFLOW_LOG_DIR") {
        return PathBuf::from(d);
    }
    // `cargo metadata` once per process, not once per VM.
    static TARGET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TARGET
        .get_or_init(|| image::target_dir().unwrap_or_else(|_| std::env::temp_dir()))
        .join("qemu-logs")
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What a `ready` line said.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    /// `boot_us=` of the ready line: microseconds from the kernel's first instruction to ready.
    pub boot_us: u64,
    /// From QEMU's start to the arrival of the ready line on the serial console.
    pub wall: Duration,
}

/// What to wait for on the serial console: a substring or a regex.
#[derive(Clone, Debug)]
pub enum Pattern {
    Substring(String),
    Regex(Regex),
}

impl Pattern {
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Substring(s) => line.contains(s.as_str()),
            Pattern::Regex(r) => r.is_match(line),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Pattern::Substring(s.to_string())
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::Substring(s)
    }
}

impl From<Regex> for Pattern {
    fn from(r: Regex) -> Self {
        Pattern::Regex(r)
    }
}

impl From<&Regex> for Pattern {
    fn from(r: &Regex) -> Self {
        Pattern::Regex(r.clone())
    }
}

/// Strips the kernel's `[    0.001234] ` timestamp prefix, if any.
pub fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[')
        && let Some(end) = rest.find("] ")
        && rest[..end]
            .trim()
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
    {
        return &rest[end + 2..];
    }
    line
}

/// A running QEMU. Dropping it kills QEMU and removes its taps, namespaces and temporary files.
pub struct Vm {
    name: String,
    child: Option<Child>,
    exit: Option<ExitKind>,
    started: Instant,
    accel: Accel,
    args: Vec<String>,
    serial: Option<Arc<SerialCapture>>,
    /// QEMU's stdin, which `-serial stdio` reads as the serial input (captured consoles only).
    serial_in: Option<Mutex<ChildStdin>>,
    log_path: Option<PathBuf>,
    tmp_dir: PathBuf,
    dgram_ports: Vec<DgramPort>,
    netns_ports: Vec<NetnsPort>,
    mgmt_forwards: Vec<(u16, u16)>,
    /// Set when this is the hosted runner, not QEMU.
    hosted: Option<hosted::HostedState>,
}

impl Vm {
    pub fn builder() -> VmBuilder {
        VmBuilder::default()
    }

    fn spawn(b: VmBuilder) -> Result<Vm> {
        let hosted_bin = match &b.hosted {
            Some(p) => Some(p.clone()),
            None if hosted::backend_is_hosted() && matches!(b.boot, Some(Boot::Elf(_))) => {
                Some(hosted::hosted_binary()?)
            }
            None => None,
        };
        if let Some(bin) = hosted_bin {
            return Vm::spawn_hosted(b, &bin);
        }
        let boot = b
            .boot
            .clone()
            .ok_or_else(|| Error::new("VmBuilder: no image (call .elf() or .disk())"))?;
        let accel = match b.accel {
            Some(a) => a,
            None => Accel::detect()?,
        };
        if accel == Accel::Kvm
            && let Err(why) = kvm_usable()
        {
            return Err(Error::new(format!(
                "KVM requested but {why} (unset IRONFLOW_ACCEL or set IRONFLOW_ACCEL=tcg)"
            )));
        }
        let id = format!("{}-{}-{}", b.name, std::process::id(), unique());
        let tmp_dir = std::env::temp_dir().join(format!("ironflow-qemu-{id}"));
        fs::create_dir_all(&tmp_dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", tmp_dir.display())))?;

        let mut args: Vec<String> = Vec::new();
        let mut push = |a: &[&str]| args.extend(a.iter().map(|s| s.to_string()));
        push(&["-name", &format!("ironflow-{id}")]);
        push(&["-nodefaults", "-display", "none", "-no-reboot"]);
        push(&[
            "-machine",
            match b.machine {
                Machine::Q35 => "q35",
                Machine::Pc => "pc",
            },
        ]);
        match accel {
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
            // More than one vCPU: one host thread per vCPU (MTTCG), as the SMP kernel needs.
            Accel::Tcg if b.smp > 1 => push(&["-accel", "tcg,thread=multi"]),
            Accel::Tcg => push(&["-accel", "tcg"]),
        }
        push(&["-m", &b.memory_mb.to_string(), "-smp", &b.smp.to_string()]);
        push(&["-device", DEBUG_EXIT_DEVICE]);
        match b.console {
            Console::Terminal => match &b.log_path {
                // The terminal keeps the console (and the monitor); QEMU copies it to the log.
                Some(p) => push(&[
                    "-chardev",
                    &format!("stdio,id=con0,mux=on,logfile={}", p.display()),
                    "-serial",
                    "chardev:con0",
                    "-mon",
                    "chardev=con0,mode=readline",
                ]),
                None => push(&["-serial", "mon:stdio"]),
            },
            Console::Capture | Console::CaptureEcho => push(&["-serial", "stdio"]),
        }
        match &boot {
            Boot::Elf(elf) => {
                if !elf.is_file() {
                    return Err(Error::new(format!(
                        "no kernel ELF at {} (build it with `cargo run -p image`)",
                        elf.display()
                    )));
                }
                push(&["-kernel", &elf.to_string_lossy()]);
                if !b.cmdline.is_empty() {
                    push(&["-append", &b.cmdline]);
                }
            }
            Boot::Disk { image, firmware } => {
                if !b.cmdline.is_empty() {
                    return Err(Error::new(
                        "a disk image carries its command line in grub.cfg: build it with \
                         image::build(Options { cmdline, .. }) instead of VmBuilder::cmdline",
                    ));
                }
                if !image.is_file() {
                    return Err(Error::new(format!(
                        "no disk image at {} (build it with `cargo run -p image`)",
                        image.display()
                    )));
                }
                if *firmware == Firmware::Uefi {
                    if Path::new(OVMF_CODE).is_file() && Path::new(OVMF_VARS).is_file() {
                        let vars = tmp_dir.join("OVMF_VARS.fd");
                        fs::copy(OVMF_VARS, &vars)
                            .map_err(|e| Error::new(format!("cannot copy {OVMF_VARS}: {e}")))?;
                        push(&[
                            "-drive",
                            &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                            "-drive",
                            &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
                        ]);
                    } else if Path::new(OVMF_COMBINED).is_file() {
                        push(&["-bios", OVMF_COMBINED]);
                    } else {
                        return Err(Error::new(format!(
                            "no OVMF firmware ({OVMF_CODE} or {OVMF_COMBINED}): \
                             run tests/run or apt-get install -y ovmf"
                        )));
                    }
                }
                // snapshot=on: writes go to a temporary overlay, so parallel VMs can share the image.
                push(&[
                    "-drive",
                    &format!(
                        "file={},format=raw,if=none,id=bootdisk,snapshot=on",
                        image.display()
                    ),
                    "-device",
                    "ide-hd,drive=bootdisk,bootindex=0",
                ]);
            }
        }

        // Management NIC first in PCI order, then the data ports.
        let mut mgmt_forwards = Vec::new();
        if let Some(fwds) = &b.mgmt_forwards {
            let mut netdev = String::from("user,id=mgmt");
            for &(host, guest) in fwds {
                let host = if host == 0 {
                    net::free_tcp_port()?
                } else {
                    host
                };
                netdev += &format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}");
                mgmt_forwards.push((host, guest));
            }
            push(&["-netdev", &netdev]);
            push(&[
                "-device",
                &format!(
                    "virtio-net-pci,netdev=mgmt,mac={MGMT_MAC},addr={:#x}",
                    MGMT_PCI_SLOT
                ),
            ]);
        }
        let PortSetup {
            args: port_args,
            dgram,
            netns,
        } = net::setup_ports(b.data_ports, &b.port_net, MGMT_PCI_SLOT, b.data_port_queues)?;
        args.extend(port_args);
        if let Some(disk) = &b.config_disk {
            ensure_config_disk(disk)?;
            // cache=writeback: the guest's FLUSH becomes an fdatasync on the host, and a write
            // QEMU completed is in the host's page cache, which a SIGKILL of QEMU does not
            // lose; what the store acknowledges (written + flushed) survives both a killed
            // QEMU and a host power cut.
            args.extend([
                "-drive".to_string(),
                format!(
                    "file={},format=raw,if=none,id=cfgdisk,cache=writeback",
                    disk.display()
                ),
                "-device".to_string(),
                format!("virtio-blk-pci,drive=cfgdisk,addr={CONFIG_DISK_PCI_SLOT:#x}"),
            ]);
        }
        args.extend(b.extra_args.iter().cloned());

        let log_path = match b.console {
            Console::Terminal => b.log_path.clone(),
            _ => Some(match &b.log_path {
                Some(p) => p.clone(),
                None => log_dir().join(format!("{id}.log")),
            }),
        };

        let mut cmd = Command::new(QEMU_BINARY);
        cmd.args(&args);
        match b.console {
            Console::Terminal => {
                cmd.stdin(Stdio::inherit())
                    .stdout(Stdio::inherit())
                    .stderr(Stdio::inherit());
            }
            _ => {
                // A pipe (not /dev/null) so that `send_serial` can type on the console.
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
            }
        }
        // Open the log before QEMU starts, so a failure here leaves nothing running.
        let log_file = match (b.console, &log_path) {
            (Console::Terminal, _) | (_, None) => None,
            (_, Some(p)) => {
                if let Some(dir) = p.parent() {
                    let _ = fs::create_dir_all(dir);
                }
                match fs::File::create(p) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        net::teardown_netns(&netns);
                        let _ = fs::remove_dir_all(&tmp_dir);
                        return Err(Error::new(format!(
                            "cannot create the serial log {}: {e}",
                            p.display()
                        )));
                    }
                }
            }
        };
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                net::teardown_netns(&netns);
                let _ = fs::remove_dir_all(&tmp_dir);
                return Err(Error::new(format!(
                    "cannot start {QEMU_BINARY}: {e} (run tests/run or apt-get install -y qemu-system-x86)"
                )));
            }
        };
        let serial = match b.console {
            Console::Terminal => None,
            c => Some(SerialCapture::start(
                &mut child,
                log_file,
                c == Console::CaptureEcho,
            )),
        };
        let serial_in = child.stdin.take().map(Mutex::new);
        let mut vm = Vm {
            name: id,
            child: Some(child),
            exit: None,
            started,
            accel,
            args,
            serial,
            serial_in,
            log_path,
            tmp_dir,
            dgram_ports: dgram,
            netns_ports: netns,
            mgmt_forwards,
            hosted: None,
        };
        if !vm.netns_ports.is_empty() {
            let child = vm.child.as_mut().expect("just spawned");
            net::wire_netns(&vm.netns_ports, child)
                .map_err(|e| Error::new(format!("{e}\n{}", vm.diagnostics())))?;
        }
        Ok(vm)
    }

    /// The hosted runner in place of QEMU: the same console, hosts and forwards.
    fn spawn_hosted(b: VmBuilder, bin: &Path) -> Result<Vm> {
        if !is_root() {
            return Err(Error::new(
                "the hosted runner needs root (veth pairs, namespaces, a tap, raw sockets)",
            ));
        }
        let id = format!("{}-{}-{}", b.name, std::process::id(), unique());
        let tmp_dir = std::env::temp_dir().join(format!("ironflow-hosted-{id}"));
        fs::create_dir_all(&tmp_dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", tmp_dir.display())))?;
        let setup = hosted::setup(&b)?;
        let mut cmdline = b.cmdline.clone();
        if b.mgmt_forwards.is_some() && !cmdline.contains("mgmt.ip=") {
            cmdline += &format!(
                " mgmt.ip={}/24 mgmt.gw={}",
                hosted::MGMT_GUEST,
                hosted::MGMT_HOST
            );
        }
        let mut args = setup.args.clone();
        if let Some(disk) = &b.config_disk {
            ensure_config_disk(disk)?;
            args.push("--config".into());
            args.push(disk.to_string_lossy().into_owned());
        }
        args.push("--".into());
        args.extend(cmdline.split_ascii_whitespace().map(String::from));
        let log_path = b
            .log_path
            .clone()
            .unwrap_or_else(|| log_dir().join(format!("{id}.log")));
        if let Some(dir) = log_path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let fail = |e: String, setup: &hosted::HostedSetup| {
            net::teardown_netns(&setup.ports);
            setup.state.teardown();
            Error::new(e)
        };
        let log_file = fs::File::create(&log_path)
            .map_err(|e| fail(format!("cannot create {}: {e}", log_path.display()), &setup))?;
        let started = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.args(&args);
        if b.console == Console::Terminal {
            // `run --hosted` / `demo --hosted`: the terminal is the console.
            cmd.stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        } else {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", bin.display()), &setup))?;
        let serial = (b.console != Console::Terminal).then(|| {
            SerialCapture::start(
                &mut child,
                Some(log_file),
                b.console == Console::CaptureEcho,
            )
        });
        let serial_in = child.stdin.take().map(Mutex::new);
        let hosted::HostedSetup { ports, state, .. } = setup;
        let mut all_args = vec![bin.to_string_lossy().into_owned()];
        all_args.extend(args);
        let mut vm = Vm {
            name: id,
            child: Some(child),
            exit: None,
            started,
            accel: Accel::Tcg,
            args: all_args,
            serial,
            serial_in,
            log_path: Some(log_path),
            tmp_dir,
            dgram_ports: Vec::new(),
            netns_ports: ports,
            mgmt_forwards: Vec::new(),
            hosted: Some(state),
        };
        let fwds = b.mgmt_forwards.clone().unwrap_or_default();
        let (Some(state), Some(child)) = (vm.hosted.as_ref(), vm.child.as_mut()) else {
            unreachable!("set above");
        };
        match hosted::wire(state, &fwds, &cmdline, child) {
            Ok(f) => vm.mgmt_forwards = f,
            Err(e) => return Err(Error::new(format!("{e}\n{}", vm.diagnostics()))),
        }
        Ok(vm)
    }

    /// Whether this is the hosted runner rather than QEMU.
    pub fn is_hosted(&self) -> bool {
        self.hosted.is_some()
    }

    fn exit_kind(hosted: bool, status: std::process::ExitStatus) -> ExitKind {
        if hosted {
            return match status.code() {
                Some(0) => ExitKind::Success,
                Some(101) => ExitKind::Failure,
                _ => ExitKind::from_status(status),
            };
        }
        ExitKind::from_status(status)
    }

    /// The QEMU arguments (without the binary), for messages and reproducing a run by hand.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The QEMU command line as a shell-ish string.
    pub fn command_line(&self) -> String {
        let mut s = String::from(QEMU_BINARY);
        for a in &self.args {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,.:/+@%".contains(c))
            {
                s += &format!(" {a}");
            } else {
                s += &format!(" '{a}'");
            }
        }
        s
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The serial log file (None with [`Console::Terminal`] and no log path).
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The serial output so far (lines joined with `\n`, plus any unterminated last line).
    pub fn serial_log(&self) -> String {
        self.serial.as_ref().map(|s| s.text()).unwrap_or_default()
    }

    /// The complete serial lines so far.
    pub fn serial_lines(&self) -> Vec<String> {
        self.serial.as_ref().map(|s| s.lines()).unwrap_or_default()
    }

    /// Types `bytes` on the serial console (the guest's UART receives them), e.g. `b"s"` for a
    /// stats line. Only with a captured console ([`Console::Capture`]/[`Console::CaptureEcho`]),
    /// where QEMU reads its stdin as the serial input.
    pub fn send_serial(&self, bytes: &[u8]) -> Result<()> {
        let stdin = self.serial_in.as_ref().ok_or_else(|| {
            Error::new("the serial console is attached to the terminal, not captured")
        })?;
        let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
        stdin
            .write_all(bytes)
            .and_then(|_| stdin.flush())
            .map_err(|e| {
                Error::new(format!(
                    "{}: cannot write to the serial console: {e}",
                    self.name
                ))
            })
    }

    /// What QEMU printed on stderr so far.
    pub fn stderr_log(&self) -> String {
        self.serial.as_ref().map(|s| s.stderr()).unwrap_or_default()
    }

    /// Waits until a serial line (from the start of the log) matches, and returns it. Fails at the
    /// timeout or as soon as QEMU exits without printing it; the error carries the log's tail.
    pub fn wait_for_line(&self, pattern: impl Into<Pattern>, timeout: Duration) -> Result<String> {
        self.wait_for_line_from(0, pattern, timeout).map(|(_, l)| l)
    }

    /// As [`Vm::wait_for_line`], considering only lines with index ≥ `from`; returns the index too
    /// (pass index + 1 to wait for the next match).
    pub fn wait_for_line_from(
        &self,
        from: usize,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<(usize, String)> {
        let pattern = pattern.into();
        let serial = self.serial.as_ref().ok_or_else(|| {
            Error::new("the serial console is attached to the terminal, not captured")
        })?;
        match serial.wait_for(from, &pattern, timeout) {
            Ok((i, line, _)) => Ok((i, line)),
            Err(why) => Err(Error::new(format!(
                "{}: {why} waiting for {pattern} on the serial console\n{}",
                self.name,
                self.diagnostics()
            ))),
        }
    }

    /// Waits for `ironflow: ready boot_us=N`; returns N and the time from QEMU's start.
    pub fn wait_for_ready(&self, timeout: Duration) -> Result<Ready> {
        let re = Regex::new(r"ironflow: ready boot_us=(\d+)").expect("valid regex");
        let serial = self.serial.as_ref().ok_or_else(|| {
            Error::new("the serial console is attached to the terminal, not captured")
        })?;
        match serial.wait_for(0, &Pattern::Regex(re.clone()), timeout) {
            Ok((_, line, at)) => {
                let boot_us = re
                    .captures(&line)
                    .and_then(|c| c[1].parse().ok())
                    .ok_or_else(|| Error::new(format!("bad ready line {line:?}")))?;
                Ok(Ready {
                    boot_us,
                    wall: at.duration_since(self.started),
                })
            }
            Err(why) => Err(Error::new(format!(
                "{}: {why} waiting for the ready line\n{}",
                self.name,
                self.diagnostics()
            ))),
        }
    }

    /// Waits for QEMU to exit and maps its status; `Timeout` leaves it running (it is killed on
    /// drop). Returns the same answer again once QEMU has exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitKind {
        if let Some(k) = self.exit {
            return k;
        }
        let Some(child) = self.child.as_mut() else {
            return ExitKind::Other(-1);
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let k = Vm::exit_kind(self.hosted.is_some(), status);
                    self.exit = Some(k);
                    if let Some(s) = &self.serial {
                        // Let the reader threads drain the pipes so the log is complete.
                        s.wait_eof(Duration::from_secs(2));
                    }
                    return k;
                }
                Ok(None) => {}
                Err(_) => return ExitKind::Other(-1),
            }
            if Instant::now() >= deadline {
                return ExitKind::Timeout;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while QEMU runs.
    pub fn is_running(&mut self) -> bool {
        let hosted = self.hosted.is_some();
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.exit.get_or_insert(Vm::exit_kind(hosted, status));
                false
            }
            _ => false,
        }
    }

    /// Stops QEMU and reaps it: SIGTERM first (QEMU then restores the terminal it put in raw mode),
    /// SIGKILL if it is still running after 3 s.
    pub fn kill(&mut self) {
        let hosted = self.hosted.is_some();
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: plain kill(2) on our own, not yet reaped, child.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let deadline = Instant::now() + Duration::from_secs(3);
                while let Ok(None) = child.try_wait() {
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if let Ok(status) = child.wait() {
                self.exit.get_or_insert(Vm::exit_kind(hosted, status));
            }
        }
    }

    /// Data port `n` (1-based) when the ports are dgram sockets.
    pub fn dgram_port(&self, n: usize) -> Option<&DgramPort> {
        n.checked_sub(1).and_then(|i| self.dgram_ports.get(i))
    }

    /// The network namespace of data port `n` (1-based) when the ports are netns taps; its host has
    /// `eth0` with `10.0.0.n/24`.
    pub fn netns(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.netns_ports.get(i))
            .map(|p| p.netns.as_str())
    }

    /// The host port (on 127.0.0.1) that forwards to `guest_port` on the management NIC.
    pub fn mgmt_host_port(&self, guest_port: u16) -> Option<u16> {
        self.mgmt_forwards
            .iter()
            .find(|&&(_, g)| g == guest_port)
            .map(|&(h, _)| h)
    }

    /// The command line, the accelerator, the log file, QEMU's stderr and the last serial lines:
    /// what a failing test should print.
    pub fn diagnostics(&self) -> String {
        let mut s = match self.hosted {
            Some(_) => format!("  hosted runner: {}\n", self.args.join(" ")),
            None => format!("  qemu ({}): {}\n", self.accel.name(), self.command_line()),
        };
        if let Some(p) = &self.log_path {
            s += &format!("  serial log: {}\n", p.display());
        }
        let stderr = self.stderr_log();
        if !stderr.trim().is_empty() {
            s += &format!("  qemu stderr:\n{}\n", indent(stderr.trim_end(), "    "));
        }
        let lines = self.serial_lines();
        let tail = &lines[lines.len().saturating_sub(30)..];
        s += &format!(
            "  last {} of {} serial lines:\n{}",
            tail.len(),
            lines.len(),
            indent(&tail.join("\n"), "    ")
        );
        if let Some(e) = self.exit {
            s += &format!("\n  qemu exited: {e}");
        }
        s
    }
}

fn indent(s: &str, prefix: &str) -> String {
    s.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        net::teardown_netns(&self.netns_ports);
        if let Some(h) = &self.hosted {
            h.teardown();
        }
        let _ = fs::remove_dir_all(&self.tmp_dir);
    }
}

/// Size of a configuration disk the runner creates.
pub const CONFIG_DISK_BYTES: u64 = 64 << 20;

/// Creates `path` as an empty (sparse) configuration disk unless it exists.
pub fn ensure_config_disk(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::new(format!("create {}: {e}", dir.display())))?;
    }
    let f = std::fs::File::create(path)
        .map_err(|e| Error::new(format!("create {}: {e}", path.display())))?;
    f.set_len(CONFIG_DISK_BYTES)
        .map_err(|e| Error::new(format!("size {}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_stripped() {
        assert_eq!(
            strip_timestamp("[    0.001234] ironflow: ready"),
            "ironflow: ready"
        );
        assert_eq!(strip_timestamp("no stamp"), "no stamp");
        assert_eq!(strip_timestamp("[x] y"), "[x] y");
    }

    #[test]
    fn exit_status_mapping() {
        use std::os::unix::process::ExitStatusExt;
        let st = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        assert_eq!(ExitKind::from_status(st(33)), ExitKind::Success);
        assert_eq!(ExitKind::from_status(st(35)), ExitKind::Failure);
        assert_eq!(ExitKind::from_status(st(1)), ExitKind::Other(1));
        assert_eq!(
            ExitKind::from_status(std::process::ExitStatus::from_raw(9)),
            ExitKind::Other(137)
        );
    }
}
