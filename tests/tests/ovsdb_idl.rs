//! The Python `ovs` IDL (PyPI `ovs`, what ovsdbapp and OpenStack build on) against the booted
//! image's OVSDB server: `tests/ovsdb_idl.py` sees the initial contents and the switch's status
//! columns (ofport, link_state, datapath_id), commits IDL transactions that take effect
//! (cur_cfg catches up), sees `Controller.is_connected` once the switch connects to the script's
//! OpenFlow peer, and gets ERROR for a transaction the server must refuse.
//!
//! The library comes with os-ken in `target/osken-venv` (tests/deps.sh); without it the test
//! fails with the reason (on CI and elsewhere: it never skips silently). `IRONFLOW_OVS_PYTHON`
//! names another python with the library.

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

/// The venv's python with the `ovs` library, or why there is none.
fn python() -> Result<PathBuf, String> {
    let py = match std::env::var_os("IRONFLOW_OVS_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => workspace().join("target/osken-venv/bin/python"),
    };
    if !py.is_file() {
        return Err(format!(
            "{} is missing: tests/deps.sh makes the venv (os-ken brings the `ovs` library)",
            py.display()
        ));
    }
    let ok = Command::new(&py)
        .args(["-c", "import ovs.db.idl"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!(
            "{} cannot import ovs.db.idl: run tests/deps.sh",
            py.display()
        ));
    }
    Ok(py)
}

#[test]
fn python_ovs_idl_sees_the_switch() {
    const TEST: &str = "python_ovs_idl_sees_the_switch";
    if !ironflow_qemu::is_root() {
        assert!(!on_ci(), "{TEST}: needs root (CI runs as root)");
        eprintln!("{TEST}: SKIPPED: needs root for network namespaces");
        return;
    }
    let py = python().unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let dir = std::env::temp_dir().join("ironflow-ovsdb-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let disk = dir.join(format!("idl-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&disk);
    let vm = pvh("ovsdb-idl", "log=info")
        .accel(Accel::Tcg)
        .memory_mb(256)
        .data_ports(2)
        .port_net(PortNet::netns_unique())
        .mgmt_nic(&[(0, 6653), (0, 6640)])
        .config_disk(&disk)
        .spawn()
        .expect("spawn QEMU");
    vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
    let db = format!("tcp:127.0.0.1:{}", vm.mgmt_host_port(6640).expect("6640"));
    // The management address comes from DHCP: wait until OVSDB answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("ovsdb-client")
            .args(["--timeout=5", "list-dbs", &db])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "OVSDB never answered\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = Command::new(&py)
        .arg(workspace().join("tests/ovsdb_idl.py"))
        .arg(&db)
        .args(["--timeout", "90"])
        .output()
        .expect("run tests/ovsdb_idl.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let _ = std::fs::remove_file(&disk);
    assert!(
        out.status.success(),
        "tests/ovsdb_idl.py failed:\n{text}\n{}",
        vm.diagnostics()
    );
    assert!(
        text.contains("PASS") && !text.contains("FAIL"),
        "no PASS lines or a FAIL:\n{text}"
    );
}
