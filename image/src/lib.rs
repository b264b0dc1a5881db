//! Builds the bootable ironflow artefacts: the kernel ELF (PVH note + Multiboot2 header, for QEMU
//! `-kernel` and direct-boot hypervisors) and a hybrid BIOS/UEFI disk image made by `grub-mkrescue`
//! (boots from a disk or USB stick, with SeaBIOS and with OVMF).
//!
//! The command-line tool (`cargo run -p image`) is a thin wrapper around [`build`]; tests call
//! [`build`] with their own kernel command line and output folder.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel package and its binary, as the lead's `kernel/Cargo.toml` names them.
pub const KERNEL_PACKAGE: &str = "ironflow-kernel";
pub const KERNEL_BIN: &str = "ironflow";
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The hosted runner's package and binary (see `hosted/`).
pub const HOSTED_PACKAGE: &str = "hosted";
pub const HOSTED_BIN: &str = "ironflow-hosted";

/// File names inside the output folder.
pub const ELF_NAME: &str = "ironflow.elf";
pub const IMG_NAME: &str = "ironflow.img";

/// Debian packages that provide the image tools, for the error messages.
const APT_HINT: &str = "run tests/run as root, or: apt-get install -y grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools";

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

pub type Result<T> = std::result::Result<T, Error>;

/// What to build and where.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Kernel command line baked into `grub.cfg` (the PVH ELF gets its command line from the runner).
    pub cmdline: String,
    /// Output folder; default `<target dir>/image`.
    pub out_dir: Option<PathBuf>,
    /// Use this ELF instead of building the kernel (tests of the tools themselves; prebuilt kernels).
    pub kernel_elf: Option<PathBuf>,
    /// Skip the disk image (only build and copy the ELF).
    pub elf_only: bool,
    /// Capture cargo's and grub-mkrescue's output and show it only on failure.
    pub quiet: bool,
}

/// What [`build`] produced.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub out_dir: PathBuf,
    /// The kernel ELF, copied to `<out_dir>/ironflow.elf`.
    pub elf: PathBuf,
    /// The hybrid BIOS/UEFI image `<out_dir>/ironflow.img` (None with `elf_only`).
    pub img: Option<PathBuf>,
    /// The kernel command line baked into the image.
    pub cmdline: String,
}

impl Artifacts {
    pub fn elf_size(&self) -> u64 {
        file_size(&self.elf)
    }

    pub fn img_size(&self) -> Option<u64> {
        self.img.as_deref().map(file_size)
    }

    /// One line per artefact with its size, as the tool prints it.
    pub fn summary(&self) -> String {
        let mut s = format!("{}  {}\n", self.elf.display(), human_size(self.elf_size()));
        if let (Some(img), Some(size)) = (&self.img, self.img_size()) {
            s += &format!("{}  {}\n", img.display(), human_size(size));
        }
        s
    }
}

fn file_size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// `1234567` → `"1234567 bytes (1.18 MiB)"`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!(
            "{bytes} bytes ({:.2} MiB)",
            bytes as f64 / (1u64 << 20) as f64
        )
    } else {
        format!("{bytes} bytes ({:.1} KiB)", bytes as f64 / 1024.0)
    }
}

/// Builds the kernel (unless `opts.kernel_elf` is given), copies it to the output folder and makes the
/// disk image.
pub fn build(opts: &Options) -> Result<Artifacts> {
    let out_dir = match &opts.out_dir {
        Some(d) => d.clone(),
        None => target_dir()?.join("image"),
    };
    fs::create_dir_all(&out_dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", out_dir.display())))?;
    // Check the tools before a long kernel build, so a missing package is reported at once.
    if !opts.elf_only {
        check_image_tools()?;
    }
    let built = match &opts.kernel_elf {
        Some(p) => p.clone(),
        None => build_kernel(opts.quiet)?,
    };
    let elf = out_dir.join(ELF_NAME);
    copy_atomically(&built, &elf)?;
    let img = if opts.elf_only {
        None
    } else {
        let img = out_dir.join(IMG_NAME);
        make_disk_image(&elf, &opts.cmdline, &img)?;
        Some(img)
    };
    Ok(Artifacts {
        out_dir,
        elf,
        img,
        cmdline: opts.cmdline.clone(),
    })
}

/// The workspace root (this crate lives in `<root>/image`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn cargo() -> Command {
    // Inside `cargo run`/`cargo test`, CARGO is the cargo of the pinned toolchain.
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set, else what `cargo metadata` says (which also
/// honours `build.target-dir` in `.cargo/config.toml`), else `<workspace>/target`.
pub fn target_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return Ok(if d.is_absolute() {
            d
        } else {
            workspace_root().join(d)
        });
    }
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = out
        && out.status.success()
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        && let Some(d) = v.get("target_directory").and_then(|d| d.as_str())
    {
        return Ok(PathBuf::from(d));
    }
    Ok(workspace_root().join("target"))
}

/// `cargo build --release -p ironflow-kernel --target x86_64-unknown-none`; returns the ELF's path as
/// cargo reports it (so `CARGO_TARGET_DIR` and `.cargo/config.toml` are honoured).
pub fn build_kernel(quiet: bool) -> Result<PathBuf> {
    build_binary(KERNEL_PACKAGE, KERNEL_BIN, Some(KERNEL_TARGET), quiet)
}

/// `cargo build --release -p hosted`: the hosted runner (a Linux binary); returns its path.
pub fn build_hosted(quiet: bool) -> Result<PathBuf> {
    build_binary(HOSTED_PACKAGE, HOSTED_BIN, None, quiet)
}

fn build_binary(package: &str, bin: &str, target: Option<&str>, quiet: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", package]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    cmd.arg("--message-format=json-render-diagnostics");
    // RUSTFLAGS (e.g. `-D warnings` from a CI environment) would replace the kernel target's
    // rustflags in .cargo/config.toml (static relocation model), and the 32-bit boot code would
    // no longer link.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if target.is_some() && std::env::var_os(var).is_some() {
            if !quiet {
                eprintln!(
                    "image: ignoring {var} for the kernel build (the kernel's rustflags are in .cargo/config.toml)"
                );
            }
            cmd.env_remove(var);
        }
    }
    cmd.stdout(Stdio::piped());
    cmd.stderr(if quiet {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot run cargo: {e}")))?;
    // Drain stderr in a thread so neither pipe can fill up and block cargo.
    let stderr_thread = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        })
    });
    let mut executable = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg.get("reason").and_then(|r| r.as_str()) != Some("compiler-artifact") {
                continue;
            }
            let name = msg.pointer("/target/name").and_then(|n| n.as_str());
            if name != Some(bin) {
                continue;
            }
            if let Some(exe) = msg.get("executable").and_then(|e| e.as_str()) {
                executable = Some(PathBuf::from(exe));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("cargo: {e}")))?;
    let stderr = stderr_thread
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
    if !status.success() {
        return Err(Error::new(format!(
            "build failed ({status}): cargo build --release -p {package}{}\n{stderr}",
            target.map(|t| format!(" --target {t}")).unwrap_or_default()
        )));
    }
    executable.ok_or_else(|| {
        Error::new(format!(
            "cargo built {package} but reported no executable named {bin}"
        ))
    })
}

/// Finds `prog` in `PATH`.
pub fn find_in_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Checks that `grub-mkrescue` and what it needs are installed.
pub fn check_image_tools() -> Result<()> {
    let mut missing = Vec::new();
    for (prog, pkg) in [
        ("grub-mkrescue", "grub-common"),
        ("xorriso", "xorriso"),
        ("mformat", "mtools"),
    ] {
        if find_in_path(prog).is_none() {
            missing.push(format!("{prog} (package {pkg})"));
        }
    }
    for (dir, pkg) in [
        ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
        ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
    ] {
        if !Path::new(dir).is_dir() {
            missing.push(format!("{dir} (package {pkg})"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "cannot build the disk image, missing: {}\n{APT_HINT}",
            missing.join(", ")
        )))
    }
}

/// Characters that need no quoting in a GRUB command line word.
fn grub_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._,:/=+-@%".contains(c)
}

/// The `grub.cfg` that boots `/boot/ironflow.elf` with `cmdline` on the serial console (and the screen).
///
/// Words of the command line that contain characters special to GRUB's shell-like parser are
/// single-quoted; a single quote or a control character in the command line is an error.
pub fn grub_cfg(cmdline: &str) -> Result<String> {
    let mut words = Vec::new();
    for w in cmdline.split_whitespace() {
        if w.chars().any(|c| c == '\'' || c.is_control()) {
            return Err(Error::new(format!(
                "kernel command line word {w:?} contains a quote or control character"
            )));
        }
        if w.chars().all(grub_plain) {
            words.push(w.to_string());
        } else {
            words.push(format!("'{w}'"));
        }
    }
    let args = if words.is_empty() {
        String::new()
    } else {
        format!(" {}", words.join(" "))
    };
    Ok(format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=0\n\
         set default=0\n\
         \n\
         menuentry \"ironflow\" {{\n\
         \x20   multiboot2 /boot/{ELF_NAME}{args}\n\
         \x20   boot\n\
         }}\n"
    ))
}

/// Makes the hybrid BIOS/UEFI image `out` with `grub-mkrescue` (an ISO 9660 image with an MBR, an
/// El Torito BIOS entry and an EFI system partition; it boots from CD, disk or USB stick).
pub fn make_disk_image(elf: &Path, cmdline: &str, out: &Path) -> Result<()> {
    check_image_tools()?;
    let cfg = grub_cfg(cmdline)?;
    let parent = out.parent().unwrap_or(Path::new("."));
    let tag = format!("{}-{}", std::process::id(), unique());
    let root = parent.join(format!(".iso-root-{tag}"));
    let _ = fs::remove_dir_all(&root);
    let io = |e: std::io::Error| Error::new(format!("{}: {e}", root.display()));
    fs::create_dir_all(root.join("boot/grub")).map_err(io)?;
    fs::write(root.join("boot/grub/grub.cfg"), cfg).map_err(io)?;
    fs::copy(elf, root.join("boot").join(ELF_NAME)).map_err(io)?;
    let tmp = parent.join(format!(".{IMG_NAME}.{tag}"));
    let result = Command::new("grub-mkrescue")
        // No translations, fonts or themes: the console is serial, and the image shrinks by half.
        .args(["--locales=", "--fonts=", "--themes=", "-o"])
        .arg(&tmp)
        .arg(&root)
        .stdin(Stdio::null())
        .output();
    let _ = fs::remove_dir_all(&root);
    let output =
        result.map_err(|e| Error::new(format!("cannot run grub-mkrescue: {e}\n{APT_HINT}")))?;
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::new(format!(
            "grub-mkrescue failed ({}):\n{}{}\n{APT_HINT}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    fs::rename(&tmp, out)
        .map_err(|e| Error::new(format!("cannot move the image to {}: {e}", out.display())))
}

/// Copies through a temporary file and a rename, so concurrent readers never see half a file.
fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("tmp-{}-{}", std::process::id(), unique()));
    fs::copy(from, &tmp)
        .and_then(|_| fs::rename(&tmp, to))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::new(format!(
                "cannot copy {} to {}: {e}",
                from.display(),
                to.display()
            ))
        })
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_quotes_special_words() {
        let cfg = grub_cfg("exit_after_ready=1  controller=tcp:10.0.0.9:6653 x=a;b").unwrap();
        assert!(cfg.contains(
            "multiboot2 /boot/ironflow.elf exit_after_ready=1 controller=tcp:10.0.0.9:6653 'x=a;b'\n"
        ));
        assert!(cfg.contains("serial --unit=0 --speed=115200\n"));
        assert!(cfg.contains("terminal_output serial console\n"));
        assert!(cfg.contains("set timeout=0\n"));
        assert!(grub_cfg("a='b'").is_err());
        assert!(
            grub_cfg("")
                .unwrap()
                .contains("multiboot2 /boot/ironflow.elf\n")
        );
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(2048), "2048 bytes (2.0 KiB)");
        assert_eq!(human_size(3 << 20), "3145728 bytes (3.00 MiB)");
    }
}
