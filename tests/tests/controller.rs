//! A real OpenFlow controller drives the booted appliance: os-ken (`osken-manager`, OpenFlow 1.3)
//! runs an L2 learning switch (`tests/controller/learning_switch_13.py`, the behaviour of Ryu's /
//! os-ken's `simple_switch_13`, which PyPI's os-ken no longer ships) on 127.0.0.1:<free port>, and
//! the appliance, booted with `controller=tcp:10.0.2.2:<port>`, connects out to it through QEMU's
//! user networking.
//!
//! - `secure_forwards_only_what_the_controller_installed`: `fail_mode=secure`: nothing forwards
//!   and the flow table is empty before the controller runs; once it runs, h1 <-> h2 pings work and
//!   `ovs-ofctl dump-flows` (passive port) shows its table-miss and learned flows; then the
//!   controller is killed: h1 <-> h2 keep working on the installed flows, while h1 -> h3 (a pair
//!   with no flows) fails and h2 sees no flooded ARP for 10.0.0.3.
//! - `standalone_falls_back_to_learning_and_back`: `fail_mode=standalone` with the controller up:
//!   no fail-open flow; the controller is killed: within 25 s the `priority=0 actions=NORMAL`
//!   flow with cookie 0x69726f6e6661696c appears and every host pair pings; a new controller on
//!   the same port: the fail-open flow is removed again.
//!
//! - `controller_connects_to_the_passive_port`: the other direction: `fail_mode=secure` and no
//!   `controller=`; os-ken dials the forwarded passive port (`--ofp-switch-address-list`), installs
//!   its table-miss flow and learns: h1 <-> h3 ping, dump-flows shows its flows. (As in Open
//!   vSwitch, a passive-port connection gets packet-ins only after a SET_CONFIG with a non-zero
//!   `miss_send_len`; the app sends one, os-ken itself does not.)
//!
//! One VM at a time. Needs root (taps, namespaces) and os-ken (`tests/deps.sh` installs it into
//! `target/osken-venv`; `IRONFLOW_OSKEN_MANAGER` overrides the path): SKIPPED without them
//! outside CI, a failure on CI.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One VM at a time: the guest busy-polls a host core, and these machines have two.
static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fail-open flow's cookie (`mgmt::agent::FAIL_OPEN_COOKIE`, "ironfail").
const FAIL_OPEN_COOKIE: &str = "cookie=0x69726f6e6661696c";

/// KVM where it runs guest code natively; TCG where `/dev/kvm` is the PVM software hypervisor
/// (`kvm_pvm`), which emulates every instruction of our ring-0 guest (see docs/benchmarks.md).
fn fast_accel() -> Accel {
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        Accel::Tcg
    } else {
        Accel::detect().unwrap_or(Accel::Tcg)
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `osken-manager`: `IRONFLOW_OSKEN_MANAGER`, else the venv `tests/deps.sh` makes.
fn osken_manager() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IRONFLOW_OSKEN_MANAGER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let p = workspace().join("target/osken-venv/bin/osken-manager");
    p.exists().then_some(p)
}

/// True if the test can run (root and os-ken); SKIPPED with why outside CI, a failure on CI.
fn can_run(test: &str) -> bool {
    let why = if !ironflow_qemu::is_root() {
        "needs root (taps, network namespaces)"
    } else if osken_manager().is_none() {
        "os-ken is missing (tests/deps.sh installs it into target/osken-venv)"
    } else {
        return true;
    };
    if on_ci() {
        panic!("{test}: {why}");
    }
    eprintln!("{test}: SKIPPED: {why}");
    false
}

/// A free TCP port on 127.0.0.1 (bound, then released for the controller).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// An `osken-manager` process with the learning switch, stopped (by PID) when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn start(test: &str, port: u16) -> Controller {
        Controller::start_with(test, port, &[])
    }

    /// With extra `osken-manager` options.
    fn start_with(test: &str, port: u16, extra: &[&str]) -> Controller {
        let log = ironflow_qemu::log_dir()
            .join(format!("{test}-osken-{}-{port}.log", std::process::id()));
        std::fs::create_dir_all(ironflow_qemu::log_dir()).ok();
        let out = std::fs::File::create(&log).expect("controller log");
        let err = out.try_clone().expect("controller log");
        let child = Command::new(osken_manager().expect("os-ken"))
            .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
            .arg(port.to_string())
            .args(extra)
            .arg(workspace().join("tests/controller/learning_switch_13.py"))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start osken-manager");
        Controller { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the switch has connected and the app has seen its features.
    fn wait_connected(&self, timeout: Duration, sw: &Switch) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains("switch connected") {
            assert!(
                Instant::now() < deadline,
                "the switch did not connect to the controller in {timeout:?}\ncontroller log:\n{}\n{}",
                self.log(),
                sw.vm.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL to our own child, by PID
        }
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Switch {
    vm: Vm,
    target: String,
}

impl Switch {
    /// Boots the appliance with 3 netns hosts and the management NIC (6653 forwarded) and waits
    /// until `ovs-ofctl show` answers on the passive port.
    fn boot(test: &str, cmdline: &str) -> Switch {
        let vm = pvh(test, &format!("on_panic=exit log=info {cmdline}"))
            .accel(fast_accel())
            .memory_mb(256)
            .data_ports(3)
            .port_net(PortNet::netns_unique())
            .mgmt_nic(&[(0, 6653)])
            .spawn()
            .expect("spawn QEMU");
        vm.wait_for_ready(BOOT_TIMEOUT).expect("boot to ready");
        let port = vm.mgmt_host_port(6653).expect("forwarded port");
        let sw = Switch {
            vm,
            target: format!("tcp:127.0.0.1:{port}"),
        };
        for n in 1..=3 {
            sw.sh(
                n,
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
                 net.ipv6.conf.eth0.disable_ipv6=1",
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, out) = sw.ofctl(&["show"]);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ovs-ofctl show never succeeded: {out}\n{}",
                sw.vm.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        sw
    }

    /// `ovs-ofctl -O OpenFlow13 <verb> <target> <rest>`: (success, stdout+stderr).
    fn ofctl(&self, args: &[&str]) -> (bool, String) {
        let (verb, rest) = args.split_first().expect("a command");
        match Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "--timeout=10", verb, &self.target])
            .args(rest)
            .output()
        {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run ovs-ofctl: {e}")),
        }
    }

    fn dump_flows(&self) -> String {
        let (ok, out) = self.ofctl(&["dump-flows"]);
        assert!(ok, "dump-flows failed: {out}\n{}", self.vm.diagnostics());
        out
    }

    fn sh(&self, n: usize, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.vm.netns(n).expect("netns host")])
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "h{n}: `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `count` pings from h`from` to 10.0.0.`to` all get answers.
    fn ping(&self, from: usize, to: usize, count: u32) -> bool {
        Command::new("ip")
            .args(["netns", "exec", self.vm.netns(from).expect("netns host")])
            .args(["ping", "-n", "-q", "-c", &count.to_string(), "-W", "1"])
            .args(["-i", "0.2", &format!("10.0.0.{to}")])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Pings until one round of `count` all succeeds, for at most `timeout`.
    fn ping_until(&self, from: usize, to: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ping(from, to, 2) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Frames matching `filter` that h`n` receives while `during` runs.
    fn capture(&self, n: usize, filter: &str, during: impl FnOnce()) -> Vec<String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.vm.netns(n).expect("netns host")])
            .args(["tcpdump", "-i", "eth0", "-n", "-l", "-Q", "in", filter])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        wait_stderr(&mut child, "listening on");
        during();
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: plain kill(2) of our own child (tcpdump flushes and exits on SIGINT).
        unsafe { libc_kill(child.id() as i32, 2) };
        let out = child.wait_with_output().expect("tcpdump exits");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty()) // tcpdump ends with an empty line on SIGINT
            .map(str::to_string)
            .collect()
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Reads `child`'s stderr until it contains `what` (or 10 s pass), then drains it in the
/// background so the child never blocks on a full pipe.
fn wait_stderr(child: &mut Child, what: &str) {
    use std::io::Read;
    let Some(mut stderr) = child.stderr.take() else {
        return;
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains(what) && Instant::now() < deadline {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => seen.extend_from_slice(&buf[..k]),
        }
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink);
    });
}

#[test]
fn secure_forwards_only_what_the_controller_installed() {
    let test = "ctl-secure";
    if !can_run(test) {
        return;
    }
    let _one = lock();
    let port = free_port();
    let sw = Switch::boot(
        test,
        &format!("fail_mode=secure controller=tcp:10.0.2.2:{port}"),
    );
    // No controller yet: secure adds no flow, nothing forwards.
    let flows = sw.dump_flows();
    assert!(
        !flows.contains("actions="),
        "secure mode with no controller must have no flows:\n{flows}"
    );
    assert!(
        !sw.ping(1, 2, 2),
        "h1 -> h2 forwarded before any controller"
    );

    let mut ctl = Controller::start(test, port);
    ctl.wait_connected(Duration::from_secs(40), &sw);
    assert!(
        sw.ping_until(1, 2, Duration::from_secs(20)),
        "h1 -> h2 with the learning controller\ncontroller log:\n{}\n{}",
        ctl.log(),
        sw.vm.diagnostics()
    );
    assert!(sw.ping(2, 1, 3), "h2 -> h1 with the learning controller");
    let flows = sw.dump_flows();
    assert!(
        flows.contains("priority=0 actions=CONTROLLER:65535"),
        "the controller's table-miss flow is missing:\n{flows}"
    );
    let mac = |n: usize| {
        sw.sh(n, "cat /sys/class/net/eth0/address")
            .trim()
            .to_string()
    };
    let (m1, m2) = (mac(1), mac(2));
    for (src, dst) in [(&m1, &m2), (&m2, &m1)] {
        assert!(
            flows.lines().any(|l| l.contains("priority=1")
                && l.contains(&format!("dl_src={src}"))
                && l.contains(&format!("dl_dst={dst}"))
                && l.contains("actions=output:")),
            "no learned flow {src} -> {dst}:\n{flows}"
        );
    }

    // The controller dies: the installed flows keep forwarding h1 <-> h2 ...
    ctl.stop();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        sw.ping(1, 2, 5),
        "h1 -> h2 on installed flows after the controller died"
    );
    assert!(
        sw.ping(2, 1, 3),
        "h2 -> h1 on installed flows after the controller died"
    );
    // ... even past the 15 s after which standalone would fall back: secure adds nothing.
    std::thread::sleep(Duration::from_secs(15));
    let flows = sw.dump_flows();
    assert!(
        !flows.contains(FAIL_OPEN_COOKIE) && !flows.contains("actions=NORMAL"),
        "secure mode added a fail-open flow:\n{flows}"
    );
    // ... and a pair with no flows gets nothing: h1's ARP for h3 is not flooded to h2 or h3.
    let mut h1_to_h3 = false;
    let seen_h3 = sw.capture(3, "arp or icmp", || {
        let seen_h2 = sw.capture(2, "arp and host 10.0.0.3", || {
            h1_to_h3 = sw.ping(1, 3, 3);
        });
        assert!(
            seen_h2.is_empty(),
            "h1's ARP for 10.0.0.3 was flooded to h2: {seen_h2:?}"
        );
    });
    assert!(!h1_to_h3, "h1 -> h3 (no flows) forwarded in secure mode");
    assert!(
        seen_h3.is_empty(),
        "h3 received traffic with no flows for it: {seen_h3:?}"
    );
    assert!(sw.ping(1, 2, 3), "h1 -> h2 still forwarded at the end");
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

#[test]
fn standalone_falls_back_to_learning_and_back() {
    let test = "ctl-standalone";
    if !can_run(test) {
        return;
    }
    let _one = lock();
    let port = free_port();
    let mut ctl = Controller::start(test, port);
    let sw = Switch::boot(
        test,
        &format!("fail_mode=standalone controller=tcp:10.0.2.2:{port}"),
    );
    ctl.wait_connected(Duration::from_secs(40), &sw);
    assert!(
        sw.ping_until(1, 2, Duration::from_secs(20)),
        "h1 -> h2 with the learning controller\ncontroller log:\n{}\n{}",
        ctl.log(),
        sw.vm.diagnostics()
    );
    let flows = sw.dump_flows();
    assert!(
        !flows.contains(FAIL_OPEN_COOKIE),
        "fail-open flow while the controller is connected:\n{flows}"
    );
    assert!(
        flows.contains("actions=CONTROLLER:65535"),
        "the controller's table-miss flow is missing:\n{flows}"
    );

    // The controller dies: within ~20 s the switch forwards like a learning switch.
    ctl.stop();
    let died = Instant::now();
    let mut flows;
    loop {
        flows = sw.dump_flows();
        if flows.contains(FAIL_OPEN_COOKIE) {
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(25),
            "no fail-open flow 25 s after the controller died:\n{flows}\n{}",
            sw.vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{test}: fail-open flow after {:.1?}", died.elapsed());
    assert!(
        flows
            .lines()
            .any(|l| l.contains(FAIL_OPEN_COOKIE) && l.contains("actions=NORMAL")),
        "the fail-open flow is not NORMAL:\n{flows}"
    );
    for (a, b) in [(1, 3), (3, 2), (2, 1), (3, 1)] {
        assert!(
            sw.ping_until(a, b, Duration::from_secs(10)),
            "h{a} -> h{b} after the fall-back to learning\n{flows}"
        );
    }

    // A controller comes back on the same address: the fail-open flow goes away.
    let ctl2 = Controller::start(test, port);
    ctl2.wait_connected(Duration::from_secs(40), &sw);
    let back = Instant::now();
    loop {
        flows = sw.dump_flows();
        if !flows.contains(FAIL_OPEN_COOKIE) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the fail-open flow stayed after a controller connected:\n{flows}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        sw.ping_until(1, 3, Duration::from_secs(20)),
        "h1 -> h3 through the new controller\ncontroller log:\n{}",
        ctl2.log()
    );
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}

#[test]
fn controller_connects_to_the_passive_port() {
    let test = "ctl-passive";
    if !can_run(test) {
        return;
    }
    let _one = lock();
    let sw = Switch::boot(test, "fail_mode=secure");
    let flows = sw.dump_flows();
    assert!(
        !flows.contains("actions="),
        "secure mode with no controller must have no flows:\n{flows}"
    );
    assert!(!sw.ping(1, 3, 2), "h1 -> h3 forwarded with no flows");
    let passive = sw.target.trim_start_matches("tcp:").to_string();
    // It listens too (on a free port nobody uses), and dials the switch's passive port.
    let ctl = Controller::start_with(
        test,
        free_port(),
        &[
            "--ofp-switch-address-list",
            &passive,
            "--ofp-switch-connect-interval",
            "1",
        ],
    );
    ctl.wait_connected(Duration::from_secs(40), &sw);
    assert!(
        sw.ping_until(1, 3, Duration::from_secs(20)),
        "h1 -> h3 with the controller on the passive port\ncontroller log:\n{}\n{}",
        ctl.log(),
        sw.vm.diagnostics()
    );
    assert!(sw.ping(3, 1, 3), "h3 -> h1");
    let flows = sw.dump_flows();
    assert!(
        flows.contains("priority=0 actions=CONTROLLER:65535")
            && flows
                .lines()
                .any(|l| l.contains("priority=1") && l.contains("actions=output:")),
        "the controller's flows are missing:\n{flows}"
    );
    let log = sw.vm.serial_log();
    assert!(
        !log.contains("PANIC") && !log.contains("EXCEPTION"),
        "{log}"
    );
}
