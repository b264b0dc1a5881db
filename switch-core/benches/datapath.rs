//! Datapath benchmarks: named scenarios, batches of 32 packets of 64 bytes, one core; each
//! scenario runs through the datapath (EMC + megaflows) and through the pipeline alone (every
//! packet translated) in the same run, so the results are ratios. Throughput is in packets.
//!
//! `cargo bench -p switch-core --bench datapath` (add `-- --quick` or a scenario name filter).
//! `L2_FLOWS=n` sets the flow count of `l2_1m_flows` (default 1,000,000).

mod scenarios;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use switch_core::datapath::DatapathConfig;

use scenarios::{BATCH, Scenario};

fn bench_pair(
    c: &mut Criterion,
    name: &str,
    make: &dyn Fn(DatapathConfig) -> Scenario,
    variants: &[(&str, DatapathConfig)],
) {
    // Scenario setup is expensive (l2_1m_flows): skip groups a name filter excludes.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return;
    }
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    for (label, config) in variants {
        let mut s = make(*config);
        g.bench_function(*label, |b| {
            b.iter_batched_ref(|| (), |_| s.run(1), BatchSize::SmallInput)
        });
        eprintln!("{name}/{label}:\n{}", s.dp.show_stats());
    }
    g.finish();
}

fn l2_flows() -> u64 {
    std::env::var("L2_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn datapath(c: &mut Criterion) {
    let dp = DatapathConfig::default();
    let po = DatapathConfig::pipeline_only();
    let std_variants = [("datapath", dp), ("pipeline_only", po)];
    bench_pair(c, "l2_one_flow", &scenarios::l2_one_flow, &std_variants);
    let n = l2_flows();
    bench_pair(
        c,
        "l2_1m_flows",
        &|cfg| scenarios::l2_many_flows(n, cfg),
        &[
            ("datapath", scenarios::big(dp)),
            ("pipeline_only", scenarios::big(po)),
        ],
    );
    bench_pair(
        c,
        "acl_10k_rules_20_masks",
        &|cfg| scenarios::acl("acl_10k_rules_20_masks", 10_000, 20, 10_000, cfg),
        &std_variants,
    );
    bench_pair(
        c,
        "acl_100k_rules",
        &|cfg| scenarios::acl("acl_100k_rules", 100_000, 20, 10_000, cfg),
        &std_variants,
    );
    bench_pair(
        c,
        "many_masks_attack",
        &|cfg| scenarios::many_masks_attack(2048, cfg),
        &[
            ("datapath", dp),
            (
                "datapath_no_mask_cap",
                DatapathConfig {
                    max_masks_per_port: usize::MAX,
                    ..dp
                },
            ),
            ("pipeline_only", po),
        ],
    );
    bench_pair(
        c,
        "attack_tables_normal_traffic",
        &scenarios::attack_tables_normal_traffic,
        &std_variants,
    );
    bench_pair(c, "miss_rate", &scenarios::miss_rate, &std_variants);
}

criterion_group!(benches, datapath);
criterion_main!(benches);
