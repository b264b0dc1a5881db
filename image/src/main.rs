//! `cargo run -p image [-- --cmdline "..." --out DIR --kernel ELF --elf-only]`: builds the kernel and
//! the hybrid BIOS/UEFI disk image, then prints what it built and the sizes.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo run -p image [-- [--cmdline \"k=v ...\"] [--out DIR] [--kernel ELF] [--elf-only]]

Builds the ironflow kernel (cargo build --release -p ironflow-kernel --target x86_64-unknown-none)
and writes <out>/ironflow.elf and <out>/ironflow.img (hybrid BIOS/UEFI, made by grub-mkrescue).
  --cmdline S   kernel command line baked into the image's grub.cfg (default: empty)
  --out DIR     output folder (default: <cargo target dir>/image)
  --kernel ELF  use this kernel ELF instead of building one
  --elf-only    skip the disk image";

fn main() -> ExitCode {
    let mut opts = image::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let r = match a.as_str() {
            "--cmdline" => value("--cmdline").map(|v| opts.cmdline = v),
            "--out" => value("--out").map(|v| opts.out_dir = Some(PathBuf::from(v))),
            "--kernel" => value("--kernel").map(|v| opts.kernel_elf = Some(PathBuf::from(v))),
            "--elf-only" => {
                opts.elf_only = true;
                Ok(())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = r {
            eprintln!("image: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    match image::build(&opts) {
        Ok(a) => {
            print!("{}", a.summary());
            if !a.cmdline.is_empty() {
                println!("kernel command line in the image: {}", a.cmdline);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("image: {e}");
            ExitCode::FAILURE
        }
    }
}
