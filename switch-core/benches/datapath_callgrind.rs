//! Runs N packets of one datapath scenario, for instruction counts per packet:
//!
//! ```text
//! cargo bench -p switch-core --bench datapath_callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured_run*' \
//!     target/release/deps/datapath_callgrind-* l2_one_flow 100000 [pipeline_only|no_emc|always_emc]
//! ```
//!
//! Only `measured_run` (the N packets, after the scenario's warm-up) is counted, so callgrind's
//! total divided by N is the instruction count per packet (rx template copy and tx included).

mod scenarios;

use switch_core::datapath::DatapathConfig;

/// The measured part (a loop of its own, so that it is not merged with `Scenario::run`, which
/// the warm-up also calls).
#[inline(never)]
fn measured_run(s: &mut scenarios::Scenario, batches: u64) {
    for _ in 0..std::hint::black_box(batches) {
        s.run(std::hint::black_box(1));
    }
}

/// This thread's on-CPU time in ns (`/proc/thread-self/schedstat`; updated at scheduler ticks,
/// so measure long runs). 0 where unavailable.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let name = args.first().map(String::as_str).unwrap_or("l2_one_flow");
    let n: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let config = match args.get(2).map(String::as_str) {
        Some("pipeline_only") => DatapathConfig::pipeline_only(),
        Some("no_emc") => DatapathConfig {
            emc_entries: 0,
            ..DatapathConfig::default()
        },
        Some("always_emc") => DatapathConfig {
            emc_min_search: 0,
            ..DatapathConfig::default()
        },
        _ => DatapathConfig::default(),
    };
    let l2: u64 = std::env::var("L2_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let Some(mut s) = scenarios::by_name(name, scenarios::big(config), l2) else {
        eprintln!("unknown scenario {name}");
        std::process::exit(2);
    };
    let batches = n / scenarios::BATCH as u64;
    let (cpu0, wall0) = (cpu_ns(), std::time::Instant::now());
    measured_run(&mut s, batches);
    let (cpu, wall) = (cpu_ns() - cpu0, wall0.elapsed().as_nanos() as u64);
    let pkts = batches * scenarios::BATCH as u64;
    println!(
        "{name}: {pkts} packets measured, {:.1} ns/packet on-CPU ({:.2} Mpps), {:.1} ns/packet wall\n{}",
        cpu as f64 / pkts as f64,
        pkts as f64 * 1e3 / cpu.max(1) as f64,
        wall as f64 / pkts as f64,
        s.dp.show_stats()
    );
}
