//! The Python `ovs` IDL (PyPI `ovs`, what ovsdbapp and OpenStack build on) against the booted
//! image's OVSDB server: `tests/ovsdb_idl.py` connects to the forwarded port 6640, waits for the
//! initial contents, changes the configuration through IDL transactions (del-port, add-port with
//! a tag and ofport_request, a controller) and sees the status the switch writes back
//! (Interface ofport/link_state, cur_cfg catching up with next_cfg, Controller.is_connected);
//! a transaction the server must refuse ends with an error and changes nothing.
//!
//! The library comes from the venv `tests/deps.sh` makes (`target/osken-venv`, shared with
//! os-ken, which depends on it; `IRONFLOW_OVS_PYTHON` overrides the interpreter). If it is
//! missing, the test runs `ironflow_install_ovs_python` from tests/deps.sh, and fails with the
//! reason if that does not work: it never skips. Needs no root (the data ports are UDP sockets).

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Whether `python` imports the IDL; the error output if not.
fn imports_idl(python: &PathBuf) -> Result<(), String> {
    match Command::new(python)
        .args(["-W", "ignore", "-c", "import ovs.db.idl, ovs.version"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Err(format!("cannot run {}: {e}", python.display())),
    }
}

/// The venv's python with `ovs` importable, installing it (tests/deps.sh) if needed.
fn ovs_python() -> PathBuf {
    if let Some(p) = std::env::var_os("IRONFLOW_OVS_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if let Err(e) = imports_idl(&p) {
            panic!(
                "IRONFLOW_OVS_PYTHON={}: cannot import ovs.db.idl:\n{e}",
                p.display()
            );
        }
        return p;
    }
    let root = workspace();
    let python = root.join("target/osken-venv/bin/python");
    if imports_idl(&python).is_ok() {
        return python;
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg("source tests/deps.sh && ironflow_install_ovs_python")
        .env("IRONFLOW_ROOT", &root)
        .current_dir(&root)
        .output();
    let log = match out {
        Ok(o) => format!(
            "exit {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("cannot run bash: {e}"),
    };
    if let Err(e) = imports_idl(&python) {
        panic!(
            "the Python ovs library is not usable in {} and tests/deps.sh \
             (ironflow_install_ovs_python) could not install it:\n{log}\nimport error:\n{e}",
            python.display()
        );
    }
    python
}

#[test]
fn python_ovs_idl_configures_the_switch_and_sees_its_status() {
    const T: &str = "ovsdb-idl";
    let python = ovs_python();
    let dir = std::env::temp_dir().join("ironflow-ovsdb-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let disk = dir.join(format!("{T}-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&disk);
    let mut vm = pvh(T, "log=info stats=0")
        .accel(Accel::Tcg)
        .memory_mb(256)
        .data_ports(2)
        .mgmt_nic(&[(0, 6640)])
        .config_disk(&disk)
        .spawn()
        .expect("spawn QEMU");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
    let db = format!("tcp:127.0.0.1:{}", vm.mgmt_host_port(6640).expect("6640"));
    // The management address comes from DHCP: wait until OVSDB answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("ovs-vsctl")
            .args([&format!("--db={db}"), "--no-wait", "--timeout=5", "show"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "OVSDB never answered on {db}\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let script = workspace().join("tests/ovsdb_idl.py");
    let out = Command::new(&python)
        .arg("-W")
        .arg("ignore")
        .arg(&script)
        .arg(&db)
        .args(["--timeout", "60"])
        .output()
        .expect("run tests/ovsdb_idl.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success() && text.contains("ALL PASSED"),
        "tests/ovsdb_idl.py failed ({}):\n{text}\n{}",
        out.status,
        vm.diagnostics()
    );
    let serial = vm.serial_log();
    assert!(!serial.contains("PANIC"), "the switch panicked:\n{serial}");
    vm.kill();
    let _ = std::fs::remove_file(disk);
}
