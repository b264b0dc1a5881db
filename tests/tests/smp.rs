//! SMP bring-up: boots the real image with `-smp 1`, `2` and `4` on every boot path the boot tests
//! cover (PVH on q35 and on pc, the disk image under SeaBIOS and under OVMF), under TCG (the
//! runner adds `thread=multi` for more than one vCPU), plus `-smp 4` under KVM where usable,
//! and checks on the console that
//! - the MADT lists N CPUs and every AP came up (`smp: cpu K (apic A) up`), each once;
//! - the summary says `smp: N cpus online` before `ironflow: ready`, with no SMP warning;
//! - the cross-CPU check passed: each AP ran work handed through its mailbox, saw its own CPU
//!   number through GS and its own APIC ID, and bumped a shared counter (N-1, mask of APs).
//!
//! Each test prints its `boot_us`, so `-smp 1` and `-smp 4` can be compared from the output
//! (`cargo test -p tests --test smp -- --nocapture`).

mod common;

use common::*;
use std::collections::BTreeSet;

/// PCI address of data port 1 (the management NIC is absent: no mgmt in these boots).
const PORT1_PCI: &str = "00:04.0";
const CMDLINE: &str = "exit_after_ready=1 on_panic=exit log=info";

#[derive(Clone, Copy, Debug)]
enum Path {
    Pvh(Machine),
    Disk(Firmware),
}

fn boot(test: &str, path: Path, cpus: usize) {
    boot_with(test, path, cpus, Accel::Tcg);
}

fn boot_with(test: &str, path: Path, cpus: usize, accel: Accel) {
    if matches!(path, Path::Pvh(_)) && ironflow_qemu::backend_is_hosted() {
        // IRONFLOW_BACKEND=hosted runs ELF boots as the Linux runner: there is no kernel SMP.
        eprintln!("{test}: SKIPPED: IRONFLOW_BACKEND=hosted (SMP bring-up is the kernel's)");
        return;
    }
    let b = match path {
        Path::Pvh(m) => pvh(test, CMDLINE).machine(m).memory_mb(128),
        Path::Disk(fw) => Vm::builder()
            .name(test)
            .disk(disk_image(), fw)
            .memory_mb(256),
    };
    let mut vm = b
        .accel(accel)
        .smp(cpus as u32)
        .data_ports(1)
        .spawn()
        .expect("QEMU starts");
    let boot_us = check_boot(&mut vm, Some(PORT1_PCI), Some(TEST_IMAGE_CMDLINE));
    check_smp(&vm, cpus);
    eprintln!(
        "{test}: {path:?} {accel:?} -smp {cpus}: all cpus online, kernel boot_us={boot_us}, {:.2?} since QEMU start",
        vm.elapsed()
    );
}

fn check_smp(vm: &Vm, n: usize) {
    let diag = vm.diagnostics();
    let lines = lines(vm);
    let find = |re: &str| {
        let re = Regex::new(re).unwrap();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| re.captures(l).map(|c| (i, c)))
            .map(|(i, c)| {
                let v: Vec<String> = c
                    .iter()
                    .skip(1)
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect();
                (i, v)
            })
            .collect::<Vec<_>>()
    };

    // The MADT as the kernel read it.
    let madt = find(r"^acpi: madt: local apic at 0x[0-9a-f]+, (\d+) cpus \(apic ids([ 0-9]*)\)");
    assert_eq!(madt.len(), 1, "one MADT summary line\n{diag}");
    let listed: usize = madt[0].1[0].parse().unwrap();
    let madt_ids: Vec<u32> = madt[0]
        .1
        .get(1)
        .map(|s| s.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .unwrap_or_default();
    assert_eq!(listed, n, "-smp {n}: the MADT should list {n} cpus\n{diag}");
    assert_eq!(madt_ids.len(), n, "{diag}");

    // Every AP up, once, numbered 1..n in MADT order, with distinct APIC IDs from the MADT.
    let up = find(r"^smp: cpu (\d+) \(apic (\d+)\) up in (\d+) us$");
    let cpus: Vec<usize> = up.iter().map(|(_, v)| v[0].parse().unwrap()).collect();
    let apics: Vec<u32> = up.iter().map(|(_, v)| v[1].parse().unwrap()).collect();
    assert_eq!(
        cpus,
        (1..n).collect::<Vec<_>>(),
        "-smp {n}: each AP's `smp: cpu K (apic A) up` line\n{diag}"
    );
    let distinct: BTreeSet<u32> = apics.iter().copied().collect();
    assert_eq!(distinct.len(), apics.len(), "duplicate APIC IDs\n{diag}");
    assert!(
        apics.iter().all(|a| madt_ids.contains(a)),
        "AP APIC IDs {apics:?} not all in the MADT {madt_ids:?}\n{diag}"
    );
    // The boot CPU is the MADT's one ID no AP has.
    assert_eq!(
        madt_ids.iter().filter(|a| !apics.contains(a)).count(),
        1,
        "{diag}"
    );

    // The summary, before ready, and no SMP warning.
    let online = find(r"^smp: (\d+) cpus online");
    assert_eq!(online.len(), 1, "one `smp: N cpus online` line\n{diag}");
    let count: usize = online[0].1[0].parse().unwrap();
    assert_eq!(count, n, "-smp {n}: cpus online\n{diag}");
    let ready = find(r"^ironflow: ready boot_us=(\d+)$");
    assert!(
        ready.len() == 1 && ready[0].0 > online[0].0,
        "`smp: N cpus online` must come before `ironflow: ready`\n{diag}"
    );
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.starts_with("WARN smp") || l.starts_with("WARN acpi") || l.starts_with("WARN apic")
        })
        .collect();
    assert!(warnings.is_empty(), "SMP warnings {warnings:?}\n{diag}");

    // The cross-CPU proof: work handed to each AP ran there.
    let check = find(
        r"^smp: cross-cpu check ok: (\d+) of (\d+) APs ran work \(mask (0x[0-9a-f]+), 0 mismatches\), ap apic ids \[([0-9,]*)\]",
    );
    if n == 1 {
        assert!(check.is_empty(), "no APs, no cross-cpu check\n{diag}");
        return;
    }
    assert_eq!(check.len(), 1, "-smp {n}: the cross-cpu check line\n{diag}");
    let v = &check[0].1;
    assert_eq!(
        v[0].parse::<usize>().unwrap(),
        n - 1,
        "APs that ran work\n{diag}"
    );
    assert_eq!(v[1].parse::<usize>().unwrap(), n - 1, "APs asked\n{diag}");
    let mask = u64::from_str_radix(v[2].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(
        mask,
        ((1u64 << n) - 1) & !1,
        "mask of the APs that ran work\n{diag}"
    );
    let seen: Vec<u32> = v[3].split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        seen, apics,
        "the APIC IDs the APs read from their own APICs\n{diag}"
    );
}

#[test]
fn pvh_smp_1() {
    boot("smp-pvh-1", Path::Pvh(Machine::Q35), 1);
}

#[test]
fn pvh_smp_2() {
    boot("smp-pvh-2", Path::Pvh(Machine::Q35), 2);
}

#[test]
fn pvh_smp_4() {
    boot("smp-pvh-4", Path::Pvh(Machine::Q35), 4);
}

/// KVM's local APIC (where `/dev/kvm` is `kvm_pvm` this takes ~10 s: PVM emulates the kernel).
#[test]
fn pvh_kvm_smp_4() {
    if !kvm_or_skip("pvh_kvm_smp_4") {
        return;
    }
    boot_with("smp-pvh-kvm-4", Path::Pvh(Machine::Q35), 4, Accel::Kvm);
}

#[test]
fn pvh_pc_machine_smp_4() {
    boot("smp-pvh-pc-4", Path::Pvh(Machine::Pc), 4);
}

#[test]
fn seabios_disk_smp_1() {
    boot("smp-seabios-1", Path::Disk(Firmware::Bios), 1);
}

#[test]
fn seabios_disk_smp_2() {
    boot("smp-seabios-2", Path::Disk(Firmware::Bios), 2);
}

#[test]
fn seabios_disk_smp_4() {
    boot("smp-seabios-4", Path::Disk(Firmware::Bios), 4);
}

#[test]
fn ovmf_disk_smp_1() {
    boot("smp-ovmf-1", Path::Disk(Firmware::Uefi), 1);
}

#[test]
fn ovmf_disk_smp_2() {
    boot("smp-ovmf-2", Path::Disk(Firmware::Uefi), 2);
}

#[test]
fn ovmf_disk_smp_4() {
    boot("smp-ovmf-4", Path::Disk(Firmware::Uefi), 4);
}
