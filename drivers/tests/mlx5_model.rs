//! The mlx5 driver against the software device model: bring-up, bursts with ring wrap-around,
//! VLAN frames unchanged, page requests and reclaims mid-run, teardown, and every injected
//! fault (delays, health errors, dead device, page requests, bad statuses, full CQs, send
//! errors) with the documented driver behaviour and no panic.

use std::rc::Rc;

use drivers::dma::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM, PacketBatch, PacketPool};
use drivers::mlx5::layouts::op;
use drivers::mlx5::model::{ModelConfig, ModelHandle};
use drivers::mlx5::port::PortFault;
use drivers::mlx5::{CmdError, HealthError, Mlx5Config, Mlx5Error, Mlx5Port};
use drivers::nic::Nic;
use switch_core::packet::Frame;

fn pool(model: &ModelHandle, n: usize) -> Rc<PacketPool> {
    PacketPool::with_allocator(model.dma(), n, DEFAULT_HEADROOM, DEFAULT_DATA_ROOM).unwrap()
}

fn config() -> Mlx5Config {
    Mlx5Config {
        log_rq_size: 6,
        log_sq_size: 6,
        ..Mlx5Config::default()
    }
}

fn up(model_config: ModelConfig) -> (ModelHandle, Rc<PacketPool>, Mlx5Port<ModelHandle>) {
    let model = ModelHandle::new(model_config);
    let pool = pool(&model, 512);
    let port = Mlx5Port::new(model.clone(), pool.clone(), "00:05.0", config()).unwrap();
    (model, pool, port)
}

fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    for (k, b) in f[14..].iter_mut().enumerate() {
        *b = (i as usize * 7 + k) as u8;
    }
    f
}

#[test]
fn bring_up_and_identity() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    assert_eq!(port.name(), "mlx5 00:05.0");
    assert_eq!(port.mac_address(), [0x24, 0x8a, 0x07, 0x11, 0x22, 0x33]);
    assert!(port.link_up(), "PAOS admin up brings the link up");
    assert_eq!(port.speed_mbps(), 100_000);
    assert_eq!(port.hw_mtu(), 1522);
    assert_eq!(port.rx_posted(), 64);
    assert_eq!((port.num_rx_queues(), port.num_tx_queues()), (1, 1));
    model.with(|m| {
        assert!(m.promisc);
        assert_eq!(m.vport_mtu, 1522);
        assert_eq!(m.admin_mtu, 1522);
        assert_eq!(
            m.mem
                .bad_accesses
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    });
    // boot 6 + init 16 + regular 2.
    assert_eq!(model.pages_held(), 24);
    let opcodes: Vec<u16> = model.with(|m| m.log.iter().map(|c| c.opcode).collect());
    assert_eq!(opcodes[0], op::ENABLE_HCA);
    assert!(opcodes.contains(&op::SET_FLOW_TABLE_ROOT));
}

#[test]
fn teardown_on_drop_frees_everything() {
    let model = ModelHandle::new(ModelConfig::default());
    let before = model.dma().pages_live();
    {
        let pool = pool(&model, 256);
        let port = Mlx5Port::new(model.clone(), pool.clone(), "x", config()).unwrap();
        drop(port);
        assert_eq!(pool.in_use(), 0, "posted buffers returned");
    }
    let last: Vec<u16> = model.with(|m| m.log.iter().rev().take(2).map(|c| c.opcode).collect());
    assert_eq!(last, [op::DISABLE_HCA, op::TEARDOWN_HCA]);
    assert_eq!(model.dma().pages_live(), before, "all DMA memory freed");
}

#[test]
fn tx_rx_bursts_wrap_many_times() {
    let (model, pool, mut port) = up(ModelConfig::default());
    let mut batch = PacketBatch::new();
    let mut sent = 0u32;
    let mut received = 0u32;
    // 64-entry rings, 200 bursts of 20 frames: both rings wrap ~60 times, CQ parity flips.
    for round in 0..200u32 {
        for k in 0..20 {
            let mut b = pool.alloc().unwrap();
            let len = 60 + ((round * 20 + k) % 1400) as usize;
            assert!(b.copy_from_slice(&frame(round * 20 + k, len)));
            batch.push(b).unwrap();
        }
        assert_eq!(port.tx_burst(0, &mut batch), 20);
        assert!(batch.is_empty());
        let wire = model.take_tx();
        assert_eq!(wire.len(), 20);
        for (k, f) in wire.iter().enumerate() {
            let i = round * 20 + k as u32;
            assert_eq!(f, &frame(i, 60 + (i % 1400) as usize), "tx frame {i}");
            assert!(model.inject(f));
        }
        sent += 20;
        let mut rx = PacketBatch::new();
        assert_eq!(port.rx_burst(0, &mut rx), 20);
        for (k, b) in rx.iter().enumerate() {
            let i = round * 20 + k as u32;
            assert_eq!(
                b.data(),
                &frame(i, 60 + (i % 1400) as usize)[..],
                "rx frame {i}"
            );
        }
        received += 20;
    }
    let s = port.stats();
    assert_eq!(
        (s.tx_packets, s.rx_packets),
        (u64::from(sent), u64::from(received))
    );
    assert_eq!((s.rx_errors, s.tx_errors), (0, 0));
    assert_eq!(s.notifications, 200, "one doorbell per burst");
    assert!(port.tx_reclaim(0) <= 20);
    assert_eq!(port.tx_in_flight(), 0);
    assert_eq!(pool.in_use(), 64, "only the posted receive buffers are out");
}

#[test]
fn tx_full_and_invalid_frames() {
    let (model, pool, mut port) = up(ModelConfig::default());
    // Frames smaller than the inline minimum and the exact boundaries.
    let mut batch = PacketBatch::new();
    for len in [1usize, 2, 3, 17, 18, 19, 1518] {
        let mut b = pool.alloc().unwrap();
        b.copy_from_slice(&frame(len as u32, len.max(14))[..len]);
        batch.push(b).unwrap();
    }
    let mut empty = pool.alloc().unwrap();
    empty.set_len(0);
    batch.push(empty).unwrap();
    let mut big = pool.alloc().unwrap();
    big.copy_from_slice(&vec![1u8; 1519]);
    batch.push(big).unwrap();
    assert_eq!(port.tx_burst(0, &mut batch), 7);
    assert_eq!(port.stats().tx_errors, 2);
    let wire = model.take_tx();
    assert_eq!(
        wire.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 2, 3, 17, 18, 19, 1518]
    );

    // Fill the SQ without reclaim: the rest stays in the batch, counted as tx_full.
    model.with(|m| m.faults.cq_full = false);
    let mut total = 0;
    for _ in 0..4 {
        let mut batch = PacketBatch::new();
        for k in 0..32 {
            let mut b = pool.alloc().unwrap();
            b.copy_from_slice(&frame(k, 64));
            batch.push(b).unwrap();
        }
        total += port.tx_burst(0, &mut batch);
    }
    assert_eq!(total, 128, "completions reclaim the ring between bursts");
}

#[test]
fn vlan_tagged_frames_arrive_unchanged() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    let mut f = frame(1, 100);
    f.splice(12..12, [0x81, 0x00, 0x20, 0x64]); // VID 100, PCP 1
    let mut qinq = frame(2, 90);
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14]);
    assert!(model.inject(&f));
    assert!(model.inject(&qinq));
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 2);
    assert_eq!(rx[0].data(), &f[..]);
    assert_eq!(rx[1].data(), &qinq[..]);
}

#[test]
fn rx_without_buffers_counts_and_recovers() {
    let model = ModelHandle::new(ModelConfig::default());
    let pool = pool(&model, 40);
    let mut port = Mlx5Port::new(model.clone(), pool.clone(), "x", config()).unwrap();
    assert_eq!(port.rx_posted(), 40, "pool smaller than the ring");
    assert!(port.stats().rx_no_buffer > 0);
    for i in 0..41 {
        model.inject(&frame(i, 64));
    }
    assert_eq!(model.with(|m| m.stats.rx_out_of_buffer), 1);
    let mut held = Vec::new();
    loop {
        let mut rx = PacketBatch::new();
        if port.rx_burst(0, &mut rx) == 0 {
            break;
        }
        held.extend(rx);
    }
    assert_eq!(held.len(), 40);
    assert_eq!(port.rx_posted(), 0, "nothing left to post");
    drop(held);
    let mut rx = PacketBatch::new();
    port.rx_burst(0, &mut rx);
    assert_eq!(port.rx_posted(), 40, "refilled once buffers came back");
}

#[test]
fn page_requests_and_reclaims_mid_run() {
    let (model, pool, mut port) = up(ModelConfig::default());
    let held = model.pages_held();
    assert!(model.request_pages(100));
    assert!(port.link_up(), "link_up services the event queue");
    assert_eq!(model.pages_held(), held + 100);
    // Traffic in between.
    let mut batch = PacketBatch::new();
    let mut b = pool.alloc().unwrap();
    b.copy_from_slice(&frame(0, 64));
    batch.push(b).unwrap();
    assert_eq!(port.tx_burst(0, &mut batch), 1);
    assert!(model.request_pages(-60));
    assert!(port.link_up());
    assert_eq!(model.pages_held(), held + 40);
    assert_eq!(port.hca().page_stats.reclaimed, 60);
    assert_eq!(port.hca().pages.len(), held + 40);
    // Many requests queued at once, and a reclaim of more than was given.
    for _ in 0..10 {
        model.request_pages(3);
    }
    model.request_pages(-10_000);
    assert!(port.link_up());
    assert_eq!(model.pages_held(), 0);
    assert_eq!(port.hca().pages.len(), 0);
    assert!(port.fault().is_none());
}

#[test]
fn page_requests_serviced_from_bursts() {
    let model = ModelHandle::new(ModelConfig::default());
    let pool = pool(&model, 256);
    let cfg = Mlx5Config {
        service_interval: 8,
        ..config()
    };
    let mut port = Mlx5Port::new(model.clone(), pool, "x", cfg).unwrap();
    let held = model.pages_held();
    model.request_pages(7);
    let mut rx = PacketBatch::new();
    for _ in 0..8 {
        port.rx_burst(0, &mut rx);
    }
    assert_eq!(model.pages_held(), held + 7);
}

#[test]
fn command_delays_are_polled() {
    let model = ModelHandle::new(ModelConfig {
        initializing_reads: 50,
        ..ModelConfig::default()
    });
    model.with(|m| m.faults.cmd_delay_us = 10_000); // 10 ms per command, as on CX4
    let pool = pool(&model, 256);
    let mut port = Mlx5Port::new(model.clone(), pool, "x", config()).unwrap();
    assert!(port.link_up());
    let commands = model.with(|m| m.stats.commands);
    assert!(model.with(|m| m.clock_us()) >= commands * 10_000);
}

#[test]
fn command_timeout_is_an_error_and_the_queue_stops() {
    let model = ModelHandle::new(ModelConfig::default());
    model.with(|m| m.faults.hang_opcode = Some(op::INIT_HCA));
    let pool = pool(&model, 64);
    let mut cfg = config();
    cfg.hca.cmd_timeout_us = 100_000;
    let err = Mlx5Port::new(model.clone(), pool, "x", cfg).unwrap_err();
    assert_eq!(
        err,
        Mlx5Error::Cmd(CmdError::Timeout {
            opcode: op::INIT_HCA
        })
    );
    // No TEARDOWN/DISABLE posted behind a stuck entry.
    let last = model.with(|m| m.log.last().map(|c| c.opcode));
    assert_eq!(last, Some(op::INIT_HCA));
}

#[test]
fn bad_status_is_decoded_and_bring_up_fails_cleanly() {
    let model = ModelHandle::new(ModelConfig::default());
    let before = model.dma().pages_live();
    model.with(|m| m.faults.fail_opcode = Some((op::CREATE_SQ, 0x05, 0x1234_5678)));
    let pool = pool(&model, 64);
    let err = Mlx5Port::new(model.clone(), pool.clone(), "x", config()).unwrap_err();
    assert_eq!(
        err,
        Mlx5Error::Cmd(CmdError::Status {
            opcode: op::CREATE_SQ,
            op_mod: 0,
            status: 0x05,
            syndrome: 0x1234_5678
        })
    );
    let text = err.to_string();
    assert!(
        text.contains("BAD_RESOURCE") && text.contains("0x12345678"),
        "{text}"
    );
    let last: Vec<u16> = model.with(|m| m.log.iter().rev().take(2).map(|c| c.opcode).collect());
    assert_eq!(
        last,
        [op::DISABLE_HCA, op::TEARDOWN_HCA],
        "torn down after the failure"
    );
    drop(pool);
    assert_eq!(model.dma().pages_live(), before);
}

#[test]
fn delivery_failure_is_decoded() {
    let model = ModelHandle::new(ModelConfig::default());
    model.with(|m| m.faults.delivery_fail = Some((op::QUERY_ISSI, 0x02)));
    let err = Mlx5Port::new(model.clone(), pool(&model, 64), "x", config()).unwrap_err();
    assert_eq!(
        err,
        Mlx5Error::Cmd(CmdError::Delivery {
            opcode: op::QUERY_ISSI,
            status: drivers::mlx5::DeliveryStatus::Token
        })
    );
}

#[test]
fn out_of_order_commands_get_bad_sys_state() {
    // The firmware under-reports its init pages: INIT_HCA says NO_RESOURCES.
    let model = ModelHandle::new(ModelConfig::default());
    model.with(|m| m.faults.underreport_pages = 5);
    let err = Mlx5Port::new(model.clone(), pool(&model, 64), "x", config()).unwrap_err();
    assert!(matches!(
        err,
        Mlx5Error::Cmd(CmdError::Status {
            opcode: op::INIT_HCA,
            status: 0x0f,
            ..
        })
    ));
}

#[test]
fn fatal_health_syndrome_takes_the_port_down() {
    let (model, pool, mut port) = up(ModelConfig::default());
    assert!(port.link_up());
    model.with(|m| m.faults.health_synd = 0x8);
    assert!(!port.link_up());
    assert!(matches!(
        port.fault(),
        Some(PortFault::Health(HealthError::FatalSyndrome {
            synd: 0x8,
            reset_requested: true,
            ..
        }))
    ));
    model.inject(&frame(0, 64));
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 0);
    let mut batch = PacketBatch::new();
    let mut b = pool.alloc().unwrap();
    b.copy_from_slice(&frame(0, 64));
    batch.push(b).unwrap();
    assert_eq!(port.tx_burst(0, &mut batch), 0);
    assert_eq!(batch.len(), 1, "left to the caller");
    let commands = model.with(|m| m.stats.commands);
    drop(port);
    assert_eq!(
        model.with(|m| m.stats.commands),
        commands,
        "no teardown on a failed device"
    );
}

#[test]
fn dead_device_is_detected() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    model.with(|m| m.faults.dead = true);
    assert!(!port.link_up());
    assert_eq!(
        port.fault(),
        Some(PortFault::Health(HealthError::DeviceGone))
    );
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 0);
    drop(port);
}

#[test]
fn dead_device_at_probe() {
    let model = ModelHandle::new(ModelConfig::default());
    model.with(|m| m.faults.dead = true);
    let err = Mlx5Port::new(model.clone(), pool(&model, 64), "x", config()).unwrap_err();
    assert_eq!(err, Mlx5Error::Health(HealthError::DeviceGone));
}

#[test]
fn dead_device_during_a_command() {
    let model = ModelHandle::new(ModelConfig::default());
    model.with(|m| m.faults.die_on_opcode = Some(op::ALLOC_UAR));
    let err = Mlx5Port::new(model.clone(), pool(&model, 64), "x", config()).unwrap_err();
    assert_eq!(err, Mlx5Error::Health(HealthError::DeviceGone));
    let log: Vec<u16> = model.with(|m| m.log.iter().map(|c| c.opcode).collect());
    assert!(
        !log.contains(&op::TEARDOWN_HCA),
        "nothing posted to a dead device: {log:x?}"
    );
}

#[test]
fn stalled_health_counter_is_fatal() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    model.with(|m| m.faults.counter_frozen = true);
    let mut downs = 0;
    for _ in 0..5 {
        if !port.link_up() {
            downs += 1;
        }
    }
    assert!(downs >= 2);
    assert_eq!(
        port.fault(),
        Some(PortFault::Health(HealthError::CounterStalled))
    );
}

#[test]
fn nic_interface_disabled_is_fatal() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    model.with(|m| m.faults.nic_interface = 7);
    assert!(!port.link_up());
    assert_eq!(
        port.fault(),
        Some(PortFault::Health(HealthError::InterfaceDown(7)))
    );
}

#[test]
fn full_cq_reports_cq_error_and_port_goes_down() {
    let (model, pool, mut port) = up(ModelConfig::default());
    model.with(|m| m.faults.cq_full = true);
    assert!(!model.inject(&frame(0, 64)));
    assert!(!port.link_up());
    assert!(matches!(
        port.fault(),
        Some(PortFault::CqError { syndrome: 1, .. })
    ));
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 0);
    drop(port);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn send_error_cqe_takes_the_port_down() {
    let (model, pool, mut port) = up(ModelConfig::default());
    model.with(|m| m.faults.tx_error_next = true);
    let mut batch = PacketBatch::new();
    let mut b = pool.alloc().unwrap();
    b.copy_from_slice(&frame(0, 64));
    batch.push(b).unwrap();
    assert_eq!(port.tx_burst(0, &mut batch), 1);
    assert_eq!(port.tx_reclaim(0), 0);
    assert!(matches!(
        port.fault(),
        Some(PortFault::SendError { syndrome: 4 })
    ));
    assert_eq!(port.stats().tx_errors, 1);
    assert!(!port.link_up());
}

#[test]
fn bogus_completions_are_counted_not_trusted() {
    let (model, _pool, mut port) = up(ModelConfig::default());
    // A receive CQE for a WQE the driver did not expect: the model's RQ consumer is moved.
    model.inject(&frame(0, 64));
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 1);
    // Oversized frame: the model reports a local length error CQE.
    assert!(!model.inject(&vec![0xaa; 3000]));
    let mut rx = PacketBatch::new();
    assert_eq!(port.rx_burst(0, &mut rx), 0);
    assert_eq!(port.stats().rx_errors, 1);
    // Runt frame (shorter than an Ethernet header).
    model.inject(&[1, 2, 3]);
    assert_eq!(port.rx_burst(0, &mut rx), 0);
    assert_eq!(port.stats().rx_errors, 2);
    assert!(port.fault().is_none());
    assert!(model.inject(&frame(5, 64)));
    assert_eq!(port.rx_burst(0, &mut rx), 1);
}

#[test]
fn out_of_dma_memory_fails_cleanly() {
    let model = ModelHandle::new(ModelConfig::default());
    let pool = pool(&model, 64);
    let live = model.dma().pages_live();
    model
        .dma()
        .page_limit
        .store(live + 10, std::sync::atomic::Ordering::Relaxed);
    let err = Mlx5Port::new(model.clone(), pool, "x", config()).unwrap_err();
    assert_eq!(err, Mlx5Error::OutOfDmaMemory);
}

#[test]
fn pci_probe_ids() {
    use drivers::pci::PciFunction;
    use virtio_drivers::transport::pci::bus::DeviceFunction;
    let f = |vendor, device| PciFunction {
        addr: DeviceFunction {
            bus: 0,
            device: 5,
            function: 0,
        },
        vendor,
        device,
        class: 2,
        subclass: 0,
        prog_if: 0,
        header_type: 0,
        bars: [None; 6],
    };
    for (id, name) in [
        (0x1013, "ConnectX-4"),
        (0x1015, "ConnectX-4 Lx"),
        (0x1017, "ConnectX-5"),
        (0x1019, "ConnectX-5 Ex"),
        (0x101b, "ConnectX-6"),
        (0x101d, "ConnectX-6 Dx"),
        (0x101f, "ConnectX-6 Lx"),
    ] {
        assert_eq!(drivers::mlx5::probe(&f(0x15b3, id)), Some(name));
    }
    assert_eq!(drivers::mlx5::probe(&f(0x15b3, 0x1014)), None, "CX4 VF");
    assert_eq!(drivers::mlx5::probe(&f(0x1af4, 0x1017)), None);
}

#[test]
fn absurd_page_request_is_refused_not_attempted() {
    let model = ModelHandle::new(ModelConfig {
        boot_pages: i32::MAX,
        ..ModelConfig::default()
    });
    let err = Mlx5Port::new(model.clone(), pool(&model, 64), "x", config()).unwrap_err();
    assert_eq!(err, Mlx5Error::BadDeviceValue("page count"));
}
