//! virtio-net multiqueue on a data port: the image boots with `queues=2` and `queues=4` on a
//! tap data port (`mq=on,vectors=2N+2`, a `multi_queue` tap), and the driver reports the queue
//! pairs the device offers and the ones it uses on the console.

mod common;

use common::*;

#[test]
fn boots_with_multiqueue_data_ports() {
    if !ironflow_qemu::is_root() {
        assert!(!on_ci(), "multiqueue data ports need root (taps) on CI");
        eprintln!("boots_with_multiqueue_data_ports: SKIPPED: needs root (tap devices)");
        return;
    }
    for queues in [2u16, 4] {
        let mut vm = pvh("virtio_mq", "exit_after_ready=1 on_panic=exit log=info")
            .mgmt_nic(&[])
            .data_ports(2)
            .data_port_queues(queues)
            .port_net(PortNet::netns_unique())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let args = vm.command_line();
        assert!(
            args.contains(&format!("mq=on,vectors={}", 2 * queues + 2))
                && args.contains(&format!("queues={queues}")),
            "{args}"
        );
        check_boot(&mut vm, None, None);
        let diag = vm.diagnostics();
        // Each data port's driver says how many pairs the device has and how many it uses.
        let re = Regex::new(&format!(
            r"^virtio-net 00:0[45]\.0: (\d+) queue pairs? \(device max {queues}, requested (\d+)\)$"
        ))
        .unwrap();
        let reports: Vec<(u16, u16)> = lines(&vm)
            .iter()
            .filter_map(|l| {
                let c = re.captures(l)?;
                Some((c[1].parse().ok()?, c[2].parse().ok()?))
            })
            .collect();
        assert_eq!(reports.len(), 2, "one line per data port\n{diag}");
        for (used, requested) in reports {
            assert_eq!(used, requested.min(queues), "{diag}");
        }
        // The management NIC (user netdev, one queue) has no such line.
        assert!(
            !lines(&vm)
                .iter()
                .any(|l| l.starts_with("virtio-net 00:03.0: ") && l.contains("queue pair")),
            "{diag}"
        );
    }
}
