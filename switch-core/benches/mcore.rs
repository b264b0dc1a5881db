//! The multi-core datapath (`switch_core::mcore`) on the host, threads standing in for cores.
//!
//! ```text
//! cargo bench -p switch-core --bench mcore                       # scaling + flowmod
//! cargo bench -p switch-core --bench mcore -- scaling [secs] [reps]
//! cargo bench -p switch-core --bench mcore -- flowmod [flows]
//! cargo bench -p switch-core --bench mcore --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured_*' \
//!     target/release/deps/mcore-* callgrind l2_one_flow 100000 [worker|single] [threads]
//! ```
//!
//! `scaling`: for each scenario (the datapath bench's, `benches/scenarios`), 1, 2 and 4
//! worker threads, each with its own copy of the scenario's traffic generator and buffer pool
//! and its own [`Worker`] (replica, NORMAL, EMC + megaflows), all from one [`Publisher`]; every
//! worker syncs at every batch boundary. Reported: aggregate Mpps (all threads' packets over the
//! wall time), per-thread on-CPU ns/packet (`/proc/thread-self/schedstat`), and the ratio of the
//! aggregate to the 1-thread case of the same repetition; plus the single-core `Datapath` on one
//! thread (no `mcore` wrapper) as the baseline. Repetitions alternate thread counts; medians.
//!
//! `flowmod`: the publication costs with a 100k-flow table: adds, a deep clone of the pipeline
//! (what an immutable snapshot per publish would cost without structural sharing), modify
//! replayed by a worker, flow-mod + barrier round trips (same thread, and with a forwarding
//! worker thread).
//!
//! `callgrind`: N packets through one worker (or the single-core datapath) in `measured_*`, for
//! instructions per packet (perf's instruction counter is not available on this machine).

mod scenarios;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use switch_core::action::Instructions;
use switch_core::datapath::DatapathConfig;
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::mcore::{Publisher, Worker};
use switch_core::pipeline::{Action, FlowMod, FlowModCommand, Pipeline};

/// This thread's on-CPU time in ns (0 where unavailable).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

const SCENARIOS: [&str; 3] = ["l2_one_flow", "acl_10k_rules_20_masks", "l2_1m_flows"];

fn l2_flows() -> u64 {
    std::env::var("L2_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn config() -> DatapathConfig {
    scenarios::big(DatapathConfig::default())
}

fn scenario(name: &str) -> scenarios::Scenario {
    scenarios::by_name(name, config(), l2_flows()).expect("scenario")
}

/// One timed run: `rigs.len()` workers (threads) for `secs`. Returns per thread (packets,
/// on-CPU ns) and the wall time.
fn timed(
    template: &scenarios::Scenario,
    rigs: &mut [scenarios::Scenario],
    secs: f64,
) -> (Vec<(u64, u64)>, f64) {
    let (_publisher, workers) = Publisher::new(
        template.pipeline.clone(),
        template.ports.clone(),
        template.normal.clone(),
        config(),
        rigs.len(),
    );
    let n = rigs.len();
    let start = Barrier::new(n + 1);
    let stop = AtomicBool::new(false);
    let mut wall = 0.0;
    let per_thread = std::thread::scope(|sc| {
        let hs: Vec<_> = rigs
            .iter_mut()
            .zip(workers)
            .map(|(rig, mut w)| {
                let (start, stop) = (&start, &stop);
                sc.spawn(move || {
                    // Warm this core's caches: every flow of the scenario twice.
                    let warm = (2 * l2_flows() / 32 + 200).min(20_000);
                    rig.run_worker(&mut w, warm);
                    start.wait();
                    let (p0, c0) = (rig.next, cpu_ns());
                    while !stop.load(Ordering::Relaxed) {
                        rig.run_worker(&mut w, 64);
                    }
                    (rig.next - p0, cpu_ns() - c0)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let r: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        wall = t0.elapsed().as_secs_f64();
        r
    });
    (per_thread, wall)
}

/// The single-core datapath (no `mcore`) on this thread for `secs`: (packets, on-CPU ns, wall).
fn timed_single(rig: &mut scenarios::Scenario, secs: f64) -> (u64, u64, f64) {
    rig.run(2000);
    let (p0, c0, t0) = (rig.next, cpu_ns(), Instant::now());
    while t0.elapsed().as_secs_f64() < secs {
        rig.run(64);
    }
    (rig.next - p0, cpu_ns() - c0, t0.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn scaling(secs: f64, reps: usize) {
    let threads = [1usize, 2, 4];
    println!(
        "host: {} CPUs online; {secs} s per run, {reps} repetitions (thread counts alternate), medians",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<24} {:>8} {:>10} {:>8} {:>12} {:>12}",
        "scenario", "threads", "agg Mpps", "ratio", "ns/pkt cpu", "ns/pkt wall"
    );
    for name in SCENARIOS {
        let template = scenario(name);
        let mut rigs: Vec<_> = (0..4).map(|_| scenario(name)).collect();
        let mut single_rig = scenario(name);
        let mut agg: Vec<Vec<f64>> = vec![Vec::new(); threads.len()];
        let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); threads.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); threads.len()];
        let mut wallpp: Vec<Vec<f64>> = vec![Vec::new(); threads.len()];
        let (mut s_mpps, mut s_cpu) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let (p, c, w) = timed_single(&mut single_rig, secs);
            s_mpps.push(p as f64 / w / 1e6);
            s_cpu.push(c as f64 / p as f64);
            let mut one = 0.0;
            for (i, &n) in threads.iter().enumerate() {
                let (per, wall) = timed(&template, &mut rigs[..n], secs);
                let total: u64 = per.iter().map(|x| x.0).sum();
                let mpps = total as f64 / wall / 1e6;
                if n == 1 {
                    one = mpps;
                }
                agg[i].push(mpps);
                ratio[i].push(mpps / one);
                let c: f64 = per.iter().map(|(p, c)| *c as f64 / *p as f64).sum::<f64>() / n as f64;
                cpu[i].push(c);
                let wpp: f64 =
                    per.iter().map(|(p, _)| wall * 1e9 / *p as f64).sum::<f64>() / n as f64;
                wallpp[i].push(wpp);
            }
        }
        println!(
            "{:<24} {:>8} {:>10.2} {:>8} {:>12.1} {:>12.1}",
            name,
            "single",
            median(&mut s_mpps),
            "",
            median(&mut s_cpu),
            1e3 / median(&mut s_mpps.clone())
        );
        for (i, &n) in threads.iter().enumerate() {
            println!(
                "{:<24} {:>8} {:>10.2} {:>8.2} {:>12.1} {:>12.1}",
                name,
                n,
                median(&mut agg[i]),
                median(&mut ratio[i]),
                median(&mut cpu[i]),
                median(&mut wallpp[i])
            );
        }
    }
}

fn acl_rule(i: u32) -> FlowMod {
    let m = Match::new()
        .with(Field::EthType, 0x0800)
        .with(Field::Ipv4Dst, 0x0a00_0000 | i as u128);
    let out = Action::Output {
        port: 2 + i % 2,
        max_len: 0,
    };
    FlowMod::add(0, 100, m, Instructions::apply(vec![out]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn flowmod(flows: u32) {
    println!("flow table: {flows} flows in table 0 (ipv4_dst exact, output)");
    let mut p = Pipeline::default();
    let t = Instant::now();
    for i in 0..flows {
        p.flow_mod(&acl_rule(i), 0).unwrap();
    }
    let add = t.elapsed();
    println!(
        "  add {flows} flows: {:.1} ms ({:.2} us/flow-mod)",
        ms(add),
        add.as_secs_f64() * 1e6 / flows as f64
    );
    let mut clones = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let c = std::hint::black_box(p.clone());
        clones.push(ms(t.elapsed()));
        drop(c);
    }
    println!(
        "  deep clone of the pipeline (a full snapshot per publish): {:.1} ms (median of 5)",
        median(&mut clones)
    );
    let template = scenario("l2_one_flow");
    let (mut publisher, mut workers) = Publisher::new(
        p,
        template.ports.clone(),
        template.normal.clone(),
        config(),
        1,
    );
    let mut w = workers.pop().unwrap();
    // A burst: modify every flow, one publish, one worker replays it.
    let t = Instant::now();
    for i in 0..flows {
        let fm = acl_rule(i).with_command(FlowModCommand::ModifyStrict);
        publisher.flow_mod(&fm, 1).unwrap();
    }
    let writer = t.elapsed();
    let t = Instant::now();
    let e = publisher.publish();
    let publish = t.elapsed();
    let t = Instant::now();
    w.sync(1);
    let replay = t.elapsed();
    assert!(publisher.passed(e));
    println!(
        "  burst of {flows} modify-strict: writer {:.1} ms ({:.2} us each), publish {:.3} ms, \
         worker replay {:.1} ms ({:.2} us each: the core's forwarding pause)",
        ms(writer),
        writer.as_secs_f64() * 1e6 / flows as f64,
        ms(publish),
        ms(replay),
        replay.as_secs_f64() * 1e6 / flows as f64
    );
    // One flow-mod + barrier at a time, worker on the same thread.
    let n = 10_000u32;
    let t = Instant::now();
    for i in 0..n {
        let fm = acl_rule(i % flows).with_command(FlowModCommand::ModifyStrict);
        publisher.flow_mod(&fm, 2).unwrap();
        let e = publisher.barrier();
        w.sync(2);
        assert!(publisher.passed(e));
    }
    let d = t.elapsed();
    println!(
        "  flow-mod + barrier + worker switch, one at a time (one thread): {:.2} us each",
        d.as_secs_f64() * 1e6 / n as f64
    );
    drop(w);
    // With forwarding worker threads: the barrier's wall latency.
    for threads in [1usize, 2, 4] {
        let (mut publisher, workers) = Publisher::new(
            publisher.pipeline().clone(),
            template.ports.clone(),
            template.normal.clone(),
            config(),
            threads,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = workers
            .into_iter()
            .map(|mut w| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rig = scenario("l2_one_flow");
                    while !stop.load(Ordering::Relaxed) {
                        rig.run_worker(&mut w, 1);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let n = 2000u32;
        let mut lat = Vec::with_capacity(n as usize);
        for i in 0..n {
            let fm = acl_rule(i % flows).with_command(FlowModCommand::ModifyStrict);
            let t = Instant::now();
            publisher.flow_mod(&fm, 3).unwrap();
            let e = publisher.barrier();
            while !publisher.passed(e) {
                std::thread::yield_now();
            }
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            h.join().unwrap();
        }
        let med = median(&mut lat);
        let p99 = lat[lat.len() * 99 / 100];
        println!(
            "  flow-mod + barrier with {threads} forwarding worker thread(s) (+ this one, \
             yielding while it waits): median {med:.1} us, p99 {p99:.1} us"
        );
    }
}

#[inline(never)]
fn measured_worker(s: &mut scenarios::Scenario, w: &mut Worker, batches: u64) {
    for _ in 0..std::hint::black_box(batches) {
        s.run_worker(w, 1);
    }
}

#[inline(never)]
fn measured_single(s: &mut scenarios::Scenario, batches: u64) {
    for _ in 0..std::hint::black_box(batches) {
        s.run(1);
    }
}

fn callgrind(name: &str, n: u64, mode: &str, threads: usize) {
    let batches = n / 32;
    if mode == "single" {
        let mut s = scenario(name);
        s.run(2000);
        measured_single(&mut s, batches);
        println!("{name} single: {} packets", batches * 32);
        return;
    }
    let template = scenario(name);
    let (_publisher, workers) = Publisher::new(
        template.pipeline.clone(),
        template.ports.clone(),
        template.normal.clone(),
        config(),
        threads,
    );
    let mut rigs: Vec<_> = (0..threads).map(|_| scenario(name)).collect();
    std::thread::scope(|sc| {
        for (rig, mut w) in rigs.iter_mut().zip(workers) {
            sc.spawn(move || {
                rig.run_worker(&mut w, 2000);
                measured_worker(rig, &mut w, batches);
            });
        }
    });
    println!(
        "{name} worker x{threads}: {} packets per thread ({} in all)",
        batches * 32,
        batches * 32 * threads as u64
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("scaling") => scaling(
            arg(1).and_then(|v| v.parse().ok()).unwrap_or(1.0),
            arg(2).and_then(|v| v.parse().ok()).unwrap_or(3),
        ),
        Some("flowmod") => flowmod(arg(1).and_then(|v| v.parse().ok()).unwrap_or(100_000)),
        Some("callgrind") => callgrind(
            arg(1).unwrap_or("l2_one_flow"),
            arg(2).and_then(|v| v.parse().ok()).unwrap_or(100_000),
            arg(3).unwrap_or("worker"),
            arg(4).and_then(|v| v.parse().ok()).unwrap_or(1),
        ),
        _ => {
            flowmod(100_000);
            scaling(1.0, 3);
        }
    }
}
