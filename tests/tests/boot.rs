//! Acceptance tests of booting: each one boots the real image in QEMU and checks the serial console
//! and QEMU's exit status. The image is built once per test binary (`common::artifacts`).
//!
//! Disk-image boots run under TCG on purpose: where `/dev/kvm` is `kvm_pvm` (the project's cloud
//! machines) firmware runs through PVM's instruction emulator (SeaBIOS + GRUB took ~60 s, OVMF did not
//! finish), while TCG boots them in 1-6 s. PVH boots run under both.

mod common;

use common::*;
use std::time::Duration;

/// PCI address of data port 1 (the management NIC, when present, is 00:03.0).
const PORT1_PCI: &str = "00:04.0";

fn boot_pvh(test: &str, accel: Option<Accel>, machine: Machine) {
    let cmdline = "exit_after_ready=1 on_panic=exit log=info";
    let mut b = pvh(test, cmdline)
        .machine(machine)
        .memory_mb(128)
        .data_ports(1);
    if let Some(a) = accel {
        b = b.accel(a);
    }
    let mut vm = b.spawn().expect("QEMU starts");
    let boot_us = check_boot(&mut vm, Some(PORT1_PCI), Some(cmdline));
    eprintln!(
        "{test}: ready, kernel boot_us={boot_us}, {} since QEMU start",
        format_args!("{:.2?}", vm.elapsed())
    );
}

#[test]
fn pvh_boots_under_kvm() {
    if !kvm_or_skip("pvh_boots_under_kvm") {
        return;
    }
    boot_pvh("pvh-kvm", Some(Accel::Kvm), Machine::Q35);
}

#[test]
fn pvh_boots_under_tcg() {
    boot_pvh("pvh-tcg", Some(Accel::Tcg), Machine::Q35);
}

#[test]
fn pvh_boots_on_pc_machine() {
    boot_pvh("pvh-pc", Some(Accel::Tcg), Machine::Pc);
}

fn boot_disk(test: &str, firmware: Firmware) {
    let mut vm = Vm::builder()
        .name(test)
        .disk(disk_image(), firmware)
        .accel(Accel::Tcg)
        .memory_mb(256)
        .data_ports(1)
        .spawn()
        .expect("QEMU starts");
    check_boot(&mut vm, Some(PORT1_PCI), Some(TEST_IMAGE_CMDLINE));
}

#[test]
fn disk_image_boots_with_seabios() {
    boot_disk("disk-seabios", Firmware::Bios);
}

#[test]
fn disk_image_boots_with_ovmf() {
    boot_disk("disk-ovmf", Firmware::Uefi);
}

#[test]
fn boots_with_32_mib() {
    let mut vm = pvh("mem-32m", "exit_after_ready=1 on_panic=exit")
        .memory_mb(32)
        .data_ports(1)
        .spawn()
        .expect("QEMU starts");
    check_boot(&mut vm, Some(PORT1_PCI), None);
    let (usable, _) = memory_totals(&vm).expect("totals");
    assert!(
        (24 * 1024..=32 * 1024).contains(&usable),
        "-m 32M: usable {usable} KiB\n{}",
        vm.diagnostics()
    );
}

#[test]
fn boots_with_4_gib() {
    let mut vm = pvh("mem-4g", "exit_after_ready=1 on_panic=exit")
        .memory_mb(4096)
        .data_ports(1)
        .spawn()
        .expect("QEMU starts");
    check_boot(&mut vm, Some(PORT1_PCI), None);
    let (usable, _) = memory_totals(&vm).expect("totals");
    let diag = vm.diagnostics();
    assert!(
        (3900 * 1024..=4096 * 1024).contains(&usable),
        "-m 4G: usable {usable} KiB\n{diag}"
    );
    // q35 puts the RAM beyond 2 GiB above 4 GiB: the map must say so.
    assert!(
        memory_map(&vm)
            .iter()
            .any(|r| r.kind == "usable" && r.end > 1 << 32),
        "-m 4G: no usable memory above 4 GiB\n{diag}"
    );
}

/// Boots with `test.crash=...` and `on_panic=exit`: expects the report, no ready line, and QEMU's
/// failure status. Returns the serial lines (timestamps stripped).
fn crash(test: &str, what: &str) -> (Vec<String>, String) {
    let mut vm = pvh(test, &format!("test.crash={what} on_panic=exit"))
        .memory_mb(64)
        .spawn()
        .expect("QEMU starts");
    let exit = vm.wait_exit(BOOT_TIMEOUT);
    let diag = vm.diagnostics();
    assert_eq!(
        exit,
        ExitKind::Failure,
        "on_panic=exit: failure status\n{diag}"
    );
    let lines = lines(&vm);
    assert!(
        !lines.iter().any(|l| l.contains("ironflow: ready")),
        "ready despite test.crash={what}\n{diag}"
    );
    (lines, diag)
}

#[test]
fn page_fault_is_reported_and_exits_with_failure() {
    let (lines, diag) = crash("crash-pagefault", "pagefault");
    let all = lines.join("\n");
    let header = Regex::new(r"EXCEPTION: page fault \(vector 14\) error=0x[0-9a-f]+").unwrap();
    assert!(header.is_match(&all), "no page fault report\n{diag}");
    let cr2 = Regex::new(r"cr2=0x([0-9a-f]+)").unwrap();
    let rip = Regex::new(r"rip=0x([0-9a-f]+)").unwrap();
    let rsp = Regex::new(r"rsp=0x[0-9a-f]+").unwrap();
    let cr2 = cr2
        .captures(&all)
        .map(|c| u64::from_str_radix(&c[1], 16).unwrap())
        .unwrap_or_else(|| panic!("no cr2 in the report\n{diag}"));
    let rip = rip
        .captures(&all)
        .map(|c| u64::from_str_radix(&c[1], 16).unwrap())
        .unwrap_or_else(|| panic!("no rip in the report\n{diag}"));
    assert!(rsp.is_match(&all), "no rsp in the report\n{diag}");
    assert_ne!(cr2, 0, "cr2 should hold the faulting address\n{diag}");
    // The kernel is linked at 1 MiB and runs identity-mapped below 4 GiB.
    assert!(
        (0x10_0000..1 << 32).contains(&rip),
        "rip {rip:#x} is not in the kernel\n{diag}"
    );
}

#[test]
fn panic_is_reported_and_exits_with_failure() {
    let (lines, diag) = crash("crash-panic", "panic");
    let re = Regex::new(r"PANIC at (\S+\.rs):(\d+): (.+)$").unwrap();
    let (file, line, msg) = lines
        .iter()
        .find_map(|l| {
            let c = re.captures(l)?;
            Some((c[1].to_string(), c[2].to_string(), c[3].to_string()))
        })
        .unwrap_or_else(|| panic!("no `PANIC at file:line: message` line\n{diag}"));
    assert!(line.parse::<u32>().unwrap() > 0, "{diag}");
    assert!(
        file.contains("kernel/") || file.contains("src/"),
        "{file}\n{diag}"
    );
    assert!(
        msg.contains("test.crash=panic"),
        "panic message {msg:?}\n{diag}"
    );
}

/// The runner itself: a VM that never reaches a pattern times out, and wait_for_line fails fast
/// once QEMU has exited.
#[test]
fn runner_reports_timeout_and_early_exit() {
    let mut vm = pvh("runner-exit", "exit_after_ready=1 on_panic=exit")
        .memory_mb(32)
        .spawn()
        .expect("QEMU starts");
    assert_eq!(
        vm.wait_exit(BOOT_TIMEOUT),
        ExitKind::Success,
        "{}",
        vm.diagnostics()
    );
    let t = std::time::Instant::now();
    let err = vm
        .wait_for_line("this line never appears", Duration::from_secs(30))
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "should fail at once: {err}"
    );
    assert!(err.to_string().contains("QEMU exited"), "{err}");
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// The ELF carries what both boot paths need: a PVH note (PT_NOTE, owner "Xen", type 18, an entry
/// below 4 GiB) for QEMU `-kernel`, and a Multiboot2 header (8-byte aligned, in the first 32 KiB,
/// checksum OK) for GRUB.
#[test]
fn elf_has_pvh_note_and_multiboot2_header() {
    let elf = std::fs::read(elf()).expect("read the ELF");
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF");
    assert_eq!(elf[4], 2, "not ELF64");
    let (phoff, phentsize, phnum) = (
        u64_at(&elf, 0x20) as usize,
        u16_at(&elf, 0x36) as usize,
        u16_at(&elf, 0x38) as usize,
    );
    let mut pvh_entry = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(&elf, ph) != 4 {
            continue; // not PT_NOTE
        }
        let (off, size) = (
            u64_at(&elf, ph + 8) as usize,
            u64_at(&elf, ph + 32) as usize,
        );
        let mut n = off;
        while n + 12 <= off + size {
            let (namesz, descsz, kind) = (
                u32_at(&elf, n) as usize,
                u32_at(&elf, n + 4) as usize,
                u32_at(&elf, n + 8),
            );
            let name = &elf[n + 12..n + 12 + namesz];
            let desc = n + 12 + namesz.div_ceil(4) * 4;
            if name == b"Xen\0" && kind == 18 {
                pvh_entry = Some(match descsz {
                    8 => u64_at(&elf, desc),
                    _ => u32_at(&elf, desc) as u64,
                });
            }
            n = desc + descsz.div_ceil(4) * 4;
        }
    }
    let entry = pvh_entry.expect("no PVH note (Xen, type 18) in a PT_NOTE segment");
    assert!(
        (0x10_0000..1 << 32).contains(&entry),
        "PVH entry {entry:#x} must be in the image below 4 GiB"
    );
    let header = (0..(32 * 1024usize).min(elf.len()))
        .step_by(8)
        .find(|&o| o + 16 <= elf.len() && u32_at(&elf, o) == 0xE852_50D6)
        .expect("no Multiboot2 header in the first 32 KiB");
    let sum = (0..4).fold(0u32, |s, i| s.wrapping_add(u32_at(&elf, header + 4 * i)));
    assert_eq!(sum, 0, "Multiboot2 header checksum");
    assert_eq!(
        u32_at(&elf, header + 4),
        0,
        "Multiboot2 architecture must be i386 (0)"
    );
}
