//! Shared helpers of the integration tests: the image, built once per test binary, and the checks
//! every boot test makes on the serial log.

#![allow(dead_code, unused_imports)] // each test binary uses its own subset

use std::sync::OnceLock;
use std::time::Duration;

pub use ironflow_qemu::{Accel, ExitKind, Firmware, Machine, PortNet, Regex, Vm, VmBuilder};

/// Boot timeout: TCG is slow, and so is SeaBIOS under `kvm_pvm` (~6 s before the kernel runs).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long QEMU may take to exit after the line that precedes its exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The command line baked into the test disk image (`<target>/image/test-exit/ironflow.img`).
pub const TEST_IMAGE_CMDLINE: &str = "exit_after_ready=1 on_panic=exit log=info";

/// The kernel ELF and a disk image with [`TEST_IMAGE_CMDLINE`], built once per test binary.
pub fn artifacts() -> &'static image::Artifacts {
    static ART: OnceLock<Result<image::Artifacts, String>> = OnceLock::new();
    let r = ART.get_or_init(|| {
        let out = image::target_dir()
            .map_err(|e| e.to_string())?
            .join("image/test-exit");
        image::build(&image::Options {
            cmdline: TEST_IMAGE_CMDLINE.into(),
            out_dir: Some(out),
            quiet: true,
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    });
    match r {
        Ok(a) => a,
        Err(e) => panic!("building the image failed:\n{e}"),
    }
}

/// The kernel ELF. Under `IRONFLOW_BACKEND=hosted` the hosted runner stands in for the image
/// (see `ironflow_qemu::hosted`), so nothing is built and the path is only a placeholder.
pub fn elf() -> &'static std::path::Path {
    if ironflow_qemu::backend_is_hosted() {
        return std::path::Path::new("/nonexistent/ironflow.elf (hosted backend)");
    }
    &artifacts().elf
}

pub fn disk_image() -> &'static std::path::Path {
    artifacts()
        .img
        .as_deref()
        .expect("the test image includes the disk image")
}

/// True on CI (`CI=true`), where a missing capability is a failure, not a skip.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a KVM test can run: true if `/dev/kvm` is usable; on CI a missing KVM fails the test,
/// elsewhere the test says why it skips and returns false.
pub fn kvm_or_skip(test: &str) -> bool {
    match ironflow_qemu::kvm_usable() {
        Ok(()) => true,
        Err(why) if on_ci() => panic!(
            "{test}: KVM is required on CI (CI=true) but {why}; give the runner /dev/kvm \
             (e.g. a KVM-enabled machine or `--device /dev/kvm`)"
        ),
        Err(why) => {
            eprintln!("{test}: SKIPPED: {why}");
            false
        }
    }
}

/// A builder with the test's name (for the log file) and the kernel ELF.
pub fn pvh(test: &str, cmdline: &str) -> VmBuilder {
    Vm::builder().name(test).elf(elf()).cmdline(cmdline)
}

/// Text of a serial line without the timestamp.
pub fn text(line: &str) -> &str {
    ironflow_qemu::strip_timestamp(line)
}

/// Serial lines, timestamps stripped.
pub fn lines(vm: &Vm) -> Vec<String> {
    vm.serial_lines()
        .iter()
        .map(|l| text(l).to_string())
        .collect()
}

/// A memory map line `mem: 0xSTART-0xEND type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemRange {
    pub start: u64,
    pub end: u64,
    pub kind: String,
}

pub fn memory_map(vm: &Vm) -> Vec<MemRange> {
    let re = Regex::new(r"^mem: 0x([0-9a-f]{16})-0x([0-9a-f]{16}) (\w+)$").unwrap();
    lines(vm)
        .iter()
        .filter_map(|l| {
            let c = re.captures(l)?;
            Some(MemRange {
                start: u64::from_str_radix(&c[1], 16).ok()?,
                end: u64::from_str_radix(&c[2], 16).ok()?,
                kind: c[3].to_string(),
            })
        })
        .collect()
}

/// `mem: total usable N KiB, heap N KiB` → (usable KiB, heap KiB).
pub fn memory_totals(vm: &Vm) -> Option<(u64, u64)> {
    let re = Regex::new(r"^mem: total usable (\d+) KiB, heap (\d+) KiB$").unwrap();
    lines(vm).iter().find_map(|l| {
        let c = re.captures(l)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?))
    })
}

/// A PCI line `pci BB:DD.F VVVV:DDDD class CC.SS.PP ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciFunction {
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub class: String,
    pub rest: String,
}

pub fn pci_functions(vm: &Vm) -> Vec<PciFunction> {
    let re = Regex::new(
        r"^pci ([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}):([0-9a-f]{4}) class ([0-9a-f]{2}\.[0-9a-f]{2}\.[0-9a-f]{2})(.*)$",
    )
    .unwrap();
    lines(vm)
        .iter()
        .filter_map(|l| {
            let c = re.captures(l)?;
            Some(PciFunction {
                address: c[1].to_string(),
                vendor: u16::from_str_radix(&c[2], 16).ok()?,
                device: u16::from_str_radix(&c[3], 16).ok()?,
                class: c[4].to_string(),
                rest: c[5].trim().to_string(),
            })
        })
        .collect()
}

/// The checks every successful boot must pass, with the log in the message when one fails:
/// the ready line, a memory map with usable RAM and its total, the PCI list with a virtio-net device
/// (1af4:1000 or 1af4:1041, class 02.00.00) at `virtio_net_at` if given, and the command line.
/// Returns the ready line's `boot_us`.
pub fn check_boot(vm: &mut Vm, virtio_net_at: Option<&str>, cmdline: Option<&str>) -> u64 {
    let ready = match vm.wait_for_ready(BOOT_TIMEOUT) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    let diag = vm.diagnostics();
    assert_eq!(
        exit,
        ExitKind::Success,
        "exit_after_ready=1: QEMU should exit with success\n{diag}"
    );

    let map = memory_map(vm);
    assert!(
        map.iter().any(|r| r.kind == "usable" && r.end > r.start),
        "no usable memory map entry\n{diag}"
    );
    assert!(
        map.iter().all(|r| r.end > r.start),
        "empty or inverted memory map entry\n{diag}"
    );
    let (usable_kib, heap_kib) =
        memory_totals(vm).unwrap_or_else(|| panic!("no `mem: total usable` line\n{diag}"));
    let summed: u64 = map
        .iter()
        .filter(|r| r.kind == "usable")
        .map(|r| (r.end - r.start) / 1024)
        .sum();
    assert!(
        usable_kib > 0 && heap_kib > 0 && heap_kib <= usable_kib,
        "implausible totals usable={usable_kib} heap={heap_kib}\n{diag}"
    );
    // The kernel may leave out what it cannot use (below 1 MiB, its own image), never more than
    // the map says.
    assert!(
        usable_kib <= summed && summed - usable_kib <= (8 * 1024).max(summed / 20),
        "total usable {usable_kib} KiB does not fit the usable entries ({summed} KiB)\n{diag}"
    );

    let pci = pci_functions(vm);
    let virtio_net: Vec<_> = pci
        .iter()
        .filter(|f| f.vendor == 0x1af4 && (f.device == 0x1000 || f.device == 0x1041))
        .collect();
    assert!(
        !virtio_net.is_empty(),
        "no virtio-net device (1af4:1000/1041) in the PCI list\n{diag}"
    );
    for f in &virtio_net {
        assert_eq!(f.class, "02.00.00", "virtio-net class\n{diag}");
    }
    if let Some(at) = virtio_net_at {
        assert!(
            virtio_net.iter().any(|f| f.address == at),
            "no virtio-net device at {at}\n{diag}"
        );
    }
    if let Some(cmdline) = cmdline {
        let got = lines(vm)
            .into_iter()
            .find_map(|l| l.strip_prefix("cmdline: ").map(str::to_string))
            .unwrap_or_else(|| panic!("no `cmdline:` line\n{diag}"));
        // Exactly the words given (GRUB 2.06 passes the words after the kernel's path, PVH the
        // -append string); whitespace may differ.
        let words: Vec<&str> = got.split_whitespace().collect();
        let want: Vec<&str> = cmdline.split_whitespace().collect();
        assert_eq!(words, want, "kernel command line\n{diag}");
    }
    ready.boot_us
}
