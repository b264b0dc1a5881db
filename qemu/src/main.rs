//! `ironflow-qemu`: runs the ironflow image in QEMU.
//!
//! - `run` (default): builds the image and boots it with the console attached.
//! - `demo`: 3 data ports whose hosts are network namespaces h1, h2, h3 (10.0.0.1-3/24) plus the
//!   management NIC (127.0.0.1:6653 and :6640 forwarded); needs root; cleans up on exit.
//! - `boot-bench`: boots the ELF N times with `exit_after_ready=1` and reports the medians.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ironflow_qemu::{Accel, Console, ExitKind, Firmware, Machine, PortNet, Vm, VmBuilder};

const USAGE: &str = "usage: ironflow-qemu [run|demo|boot-bench] [options]

  run          build the image and boot it, console attached (default)
  demo         3 data ports with hosts in network namespaces h1 h2 h3 (10.0.0.1-3/24) and the
               management NIC (127.0.0.1:6653 -> 6653, 127.0.0.1:6640 -> 6640); needs root
  boot-bench   boot the ELF N times with exit_after_ready=1; print the median kernel boot time
               (first instruction -> ready) and QEMU start -> ready, and the image sizes

options:
  --elf PATH          boot this ELF by PVH (default: build with `image`, boot target/image/ironflow.elf)
  --firmware bios|uefi  boot the disk image instead (built with --cmdline baked in)
  --disk PATH         boot this disk image (with --firmware, default bios)
  --cmdline S         kernel command line
  --memory MB         guest memory (default 128)
  --smp N             vCPUs (default 1; with datapath.cores=N-1 in --cmdline, N-1 datapath cores)
  --queues N          queue pairs per data port (mq=on; needs netns wiring, i.e. root)
  --machine q35|pc    (default q35)
  --accel kvm|tcg     (default: IRONFLOW_ACCEL, else kvm when /dev/kvm is usable)
  --ports N           data ports (run: default 0; demo: 3)
  --net dgram|netns   data port wiring for run (default: netns as root, else dgram)
  --mgmt              add the management NIC with the fixed forwards (run; demo always has it)
  --no-build          do not build; use the existing artefacts
  --config-disk PATH  the configuration disk (virtio-blk; created if missing;
                      default target/ironflow-config.img for run and demo)
  --no-config-disk    boot without one (configuration is then kept in memory only)
  --hosted            run/demo: the hosted runner (the appliance natively, AF_PACKET veth ports,
                      a tap management port) instead of the image in QEMU; needs root
  --runs N            boot-bench runs (default 10)
  --log PATH          write the serial log here (run: console still attached)";

struct Args {
    cmd: String,
    elf: Option<PathBuf>,
    disk: Option<PathBuf>,
    firmware: Option<Firmware>,
    cmdline: String,
    memory: u32,
    smp: u32,
    queues: u16,
    machine: Machine,
    accel: Option<Accel>,
    ports: Option<usize>,
    net: Option<String>,
    mgmt: bool,
    build: bool,
    runs: usize,
    log: Option<PathBuf>,
    config_disk: Option<PathBuf>,
    no_config_disk: bool,
    hosted: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        cmd: "run".into(),
        elf: None,
        disk: None,
        firmware: None,
        cmdline: String::new(),
        memory: 128,
        smp: 1,
        queues: 1,
        machine: Machine::Q35,
        accel: None,
        ports: None,
        net: None,
        mgmt: false,
        build: true,
        runs: 10,
        log: None,
        config_disk: None,
        no_config_disk: false,
        hosted: false,
    };
    let mut it = std::env::args().skip(1).peekable();
    if let Some(first) = it.peek()
        && !first.starts_with('-')
    {
        a.cmd = it.next().unwrap_or_default();
    }
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--elf" => a.elf = Some(val("--elf")?.into()),
            "--disk" => a.disk = Some(val("--disk")?.into()),
            "--firmware" => {
                a.firmware = Some(match val("--firmware")?.as_str() {
                    "bios" => Firmware::Bios,
                    "uefi" => Firmware::Uefi,
                    o => return Err(format!("--firmware {o}: expected bios or uefi")),
                })
            }
            "--cmdline" => a.cmdline = val("--cmdline")?,
            "--memory" => {
                a.memory = val("--memory")?
                    .parse()
                    .map_err(|e| format!("--memory: {e}"))?
            }
            "--smp" => a.smp = val("--smp")?.parse().map_err(|e| format!("--smp: {e}"))?,
            "--queues" => {
                a.queues = val("--queues")?
                    .parse()
                    .map_err(|e| format!("--queues: {e}"))?
            }
            "--machine" => {
                a.machine = match val("--machine")?.as_str() {
                    "q35" => Machine::Q35,
                    "pc" => Machine::Pc,
                    o => return Err(format!("--machine {o}: expected q35 or pc")),
                }
            }
            "--accel" => {
                a.accel = Some(match val("--accel")?.as_str() {
                    "kvm" => Accel::Kvm,
                    "tcg" => Accel::Tcg,
                    o => return Err(format!("--accel {o}: expected kvm or tcg")),
                })
            }
            "--ports" => {
                a.ports = Some(
                    val("--ports")?
                        .parse()
                        .map_err(|e| format!("--ports: {e}"))?,
                )
            }
            "--net" => a.net = Some(val("--net")?),
            "--mgmt" => a.mgmt = true,
            "--no-build" => a.build = false,
            "--runs" => a.runs = val("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--log" => a.log = Some(val("--log")?.into()),
            "--config-disk" => a.config_disk = Some(val("--config-disk")?.into()),
            "--no-config-disk" => a.no_config_disk = true,
            "--hosted" => a.hosted = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            o => return Err(format!("unknown argument {o:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ironflow-qemu: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match args.cmd.as_str() {
        "run" => run(&args, false),
        "demo" => run(&args, true),
        "boot-bench" => boot_bench(&args),
        o => Err(format!("unknown subcommand {o:?}\n\n{USAGE}")),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ironflow-qemu: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The artefacts to boot: built unless `--no-build` or given explicitly.
fn artifacts(args: &Args, disk: bool) -> Result<image::Artifacts, String> {
    let target = image::target_dir().map_err(|e| e.to_string())?;
    let mut opts = image::Options {
        cmdline: if disk {
            args.cmdline.clone()
        } else {
            String::new()
        },
        out_dir: Some(if disk && !args.cmdline.is_empty() {
            target.join("image/run")
        } else {
            target.join("image")
        }),
        kernel_elf: args.elf.clone(),
        elf_only: !disk,
        quiet: false,
    };
    if !args.build {
        let dir = opts.out_dir.take().unwrap_or_default();
        let elf = args.elf.clone().unwrap_or(dir.join(image::ELF_NAME));
        return Ok(image::Artifacts {
            img: Some(dir.join(image::IMG_NAME)).filter(|p| p.is_file()),
            out_dir: dir,
            elf,
            cmdline: opts.cmdline,
        });
    }
    image::build(&opts).map_err(|e| e.to_string())
}

fn exit_code(kind: ExitKind) -> ExitCode {
    match kind {
        ExitKind::Success => ExitCode::SUCCESS,
        ExitKind::Failure => ExitCode::from(1),
        ExitKind::Other(_) => ExitCode::from(2),
        ExitKind::Timeout => ExitCode::from(3),
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM/SIGHUP stop the VM through `Vm`'s drop (which removes the namespaces) instead of
/// killing this process outright.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn run(args: &Args, demo: bool) -> Result<ExitCode, String> {
    let disk_boot = args.firmware.is_some() || args.disk.is_some();
    let mut b: VmBuilder = Vm::builder()
        .name(if demo { "demo" } else { "run" })
        .memory_mb(args.memory)
        .smp(args.smp)
        .data_port_queues(args.queues)
        .machine(args.machine)
        .console(Console::Terminal);
    if let Some(a) = args.accel {
        b = b.accel(a);
    }
    if let Some(p) = &args.log {
        b = b.log_path(p);
    }
    let art;
    if args.hosted {
        // The appliance's main loop natively (hosted/): the same hosts, forwards and disk.
        let bin = ironflow_qemu::hosted_binary().map_err(|e| e.to_string())?;
        b = b.hosted(bin).cmdline(&args.cmdline);
    } else if disk_boot {
        let fw = args.firmware.unwrap_or(Firmware::Bios);
        let img = match &args.disk {
            Some(d) => d.clone(),
            None => {
                art = artifacts(args, true)?;
                art.img.clone().ok_or("no disk image was built")?
            }
        };
        b = b.disk(img, fw);
    } else {
        art = artifacts(args, false)?;
        b = b.elf(&art.elf).cmdline(&args.cmdline);
    }
    let root = ironflow_qemu::is_root();
    if demo {
        if !root {
            return Err("demo needs root (taps and network namespaces h1 h2 h3); \
                        as a normal user, use `ironflow-qemu run --ports 3 --net dgram --mgmt`"
                .into());
        }
        b = b
            .data_ports(args.ports.unwrap_or(3))
            .port_net(PortNet::Netns {
                prefix: String::new(),
            })
            .mgmt_nic(&[(6653, 6653), (6640, 6640)]);
    } else {
        let n = args.ports.unwrap_or(0);
        let net = match args.net.as_deref() {
            Some("dgram") => PortNet::Dgram,
            Some("netns") => PortNet::Netns {
                prefix: String::new(),
            },
            None if root => PortNet::Netns {
                prefix: String::new(),
            },
            None => PortNet::Dgram,
            Some(o) => return Err(format!("--net {o}: expected dgram or netns")),
        };
        b = b.data_ports(n).port_net(net);
        if args.mgmt {
            b = b.mgmt_nic(&[(6653, 6653), (6640, 6640)]);
        }
    }
    if !args.no_config_disk {
        let disk = match &args.config_disk {
            Some(p) => p.clone(),
            None => image::target_dir()
                .map_err(|e| e.to_string())?
                .join("ironflow-config.img"),
        };
        eprintln!("ironflow-qemu: configuration disk {}", disk.display());
        b = b.config_disk(disk);
    }
    catch_signals();
    let mut vm = b.spawn().map_err(|e| e.to_string())?;
    eprintln!(
        "ironflow-qemu: {} under {} (Ctrl-A X quits, Ctrl-A C is the QEMU monitor)\n  {}",
        if demo { "demo" } else { "run" },
        vm.accel().name(),
        vm.command_line()
    );
    if vm.accel() == Accel::Tcg && args.accel.is_none() && ironflow_qemu::kvm_is_pvm() {
        eprintln!(
            "  TCG: /dev/kvm is kvm_pvm here, which emulates the guest kernel (slower than TCG); \
             --accel kvm forces it"
        );
    }
    if demo || vm.netns(1).is_some() {
        eprintln!(
            "  data ports: port N is eth0 (10.0.0.N/24) in netns hN, e.g. `ip netns exec h1 ping 10.0.0.2`"
        );
    }
    if let Some(p) = vm.mgmt_host_port(6653) {
        eprintln!(
            "  management: OpenFlow 127.0.0.1:{p}, OVSDB 127.0.0.1:{}",
            vm.mgmt_host_port(6640).unwrap_or(0)
        );
    }
    let kind = loop {
        if STOP.load(Ordering::SeqCst) {
            vm.kill();
            break ExitKind::Other(130);
        }
        match vm.wait_exit(Duration::from_millis(100)) {
            ExitKind::Timeout => continue,
            k => break k,
        }
    };
    drop(vm);
    eprintln!("ironflow-qemu: QEMU exited: {kind}");
    Ok(exit_code(kind))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn boot_bench(args: &Args) -> Result<ExitCode, String> {
    let elf_art = artifacts(args, false)?;
    // The disk image only for its size; build it unless told not to.
    let img_size = if args.build {
        let opts = image::Options {
            kernel_elf: Some(elf_art.elf.clone()),
            out_dir: Some(
                image::target_dir()
                    .map_err(|e| e.to_string())?
                    .join("image/bench"),
            ),
            quiet: true,
            ..Default::default()
        };
        image::build(&opts).ok().and_then(|a| a.img_size())
    } else {
        elf_art.img_size()
    };
    let accel = match args.accel {
        Some(a) => a,
        None => Accel::detect().map_err(|e| e.to_string())?,
    };
    let cmdline = if args.cmdline.is_empty() {
        "exit_after_ready=1".to_string()
    } else {
        format!("exit_after_ready=1 {}", args.cmdline)
    };
    eprintln!(
        "boot-bench: {} runs, {} MiB, {}, -machine {}, cmdline {cmdline:?}",
        args.runs,
        args.memory,
        accel.name(),
        match args.machine {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        }
    );
    let mut kernel_us = Vec::new();
    let mut wall_ms = Vec::new();
    let mut exit_ms = Vec::new();
    for i in 0..args.runs {
        let t0 = Instant::now();
        let mut vm = Vm::builder()
            .name("boot-bench")
            .elf(&elf_art.elf)
            .cmdline(&cmdline)
            .memory_mb(args.memory)
            .machine(args.machine)
            .accel(accel)
            .spawn()
            .map_err(|e| e.to_string())?;
        let ready = vm
            .wait_for_ready(Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        let kind = vm.wait_exit(Duration::from_secs(30));
        if kind != ExitKind::Success {
            return Err(format!(
                "run {i}: QEMU exited with {kind}\n{}",
                vm.diagnostics()
            ));
        }
        let total = t0.elapsed();
        eprintln!(
            "  run {:2}: kernel {:8} us   qemu start -> ready {:8.1} ms   -> exit {:8.1} ms",
            i + 1,
            ready.boot_us,
            ready.wall.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
        kernel_us.push(ready.boot_us as f64);
        wall_ms.push(ready.wall.as_secs_f64() * 1e3);
        exit_ms.push(total.as_secs_f64() * 1e3);
    }
    println!("| what | value |");
    println!("|---|---|");
    println!(
        "| ELF (`ironflow.elf`) | {} |",
        image::human_size(elf_art.elf_size())
    );
    if let Some(s) = img_size {
        println!("| disk image (`ironflow.img`) | {} |", image::human_size(s));
    }
    println!(
        "| kernel first instruction → ready, median of {} | {:.0} µs |",
        args.runs,
        median(&mut kernel_us)
    );
    println!(
        "| QEMU start → ready line, median of {} | {:.1} ms |",
        args.runs,
        median(&mut wall_ms)
    );
    println!(
        "| QEMU start → QEMU exited, median of {} | {:.1} ms |",
        args.runs,
        median(&mut exit_ms)
    );
    Ok(ExitCode::SUCCESS)
}
