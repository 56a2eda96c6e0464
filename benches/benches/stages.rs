//! Where planning time goes: for every corpus query that plans on the sample database, the
//! time of each stage (bind, then direct lowering, or each logical optimizer rule, physical
//! planning and each physical optimizer rule), summed over the corpus. Not a criterion bench:
//! it prints one table, to find what to make cheaper. Like the runtime, it runs the logical
//! rules with Kustodian's driver (`kustodian_planner::optimize`: rules that cannot apply are
//! skipped and not listed) and not DataFusion's analyzer (the binder's plans are already what
//! it would make of them).
//! `KUSTODIAN_PARTITIONS=n` sets the target partitions (1 by default, as
//! Kustodian plans the sample database's tables, which are all under 64K rows). Per stage it
//! prints the mean over the corpus and the median (p50) over the queries.
//! `KUSTODIAN_BENCH_CASES=s,t` keeps the queries whose name contains `s` or `t`;
//! `KUSTODIAN_BENCH_RUNS=n` sets the runs per query (11).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use kustodian_benches::{case_selected, corpus_cases};
use kustodian_runtime::Cluster;

fn main() {
    let runs: u32 = std::env::var("KUSTODIAN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(11);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cluster = rt.block_on(Cluster::sample()).unwrap();
    let cases: Vec<_> = corpus_cases(&rt, &cluster).into_iter().filter(|c| case_selected(&c.name)).collect();
    let partitions = std::env::var("KUSTODIAN_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let config = SessionConfig::new().with_target_partitions(partitions).with_round_robin_repartition(false).with_information_schema(false);
    let state = kustodian_planner::session::session_state(config);
    // The same state without physical optimizer rules: its physical plan is the planner's
    // initial plan, to which the rules are then applied one by one.
    let bare = SessionStateBuilder::new_from_existing(state.clone()).with_physical_optimizer_rules(vec![]).build();
    let mut totals: HashMap<String, Duration> = HashMap::new();
    // Per stage, per query: the stage's time summed over the runs.
    let mut per_case: HashMap<String, Vec<Duration>> = HashMap::new();
    for (i, case) in cases.iter().enumerate() {
        let mut add = |k: &str, d: Duration| {
            *totals.entry(k.to_string()).or_default() += d;
            let v = per_case.entry(k.to_string()).or_default();
            v.resize(cases.len(), Duration::ZERO);
            v[i] += d;
        };
        for _ in 0..runs {
            let t = Instant::now();
            let planned = cluster.bind(&case.text, &case.opts).unwrap();
            add("bind (parse, RLS, authorize, lower)", t.elapsed());

            // Plans of the shapes `kustodian_planner::direct` lowers skip DataFusion's stages,
            // as in the runtime (the sample tables are single partitions).
            if partitions == 1 && kustodian_planner::direct::applies(&planned.plan) {
                let t = Instant::now();
                let lowered = rt.block_on(kustodian_planner::direct::lower(&planned.plan, &state)).unwrap();
                add("direct: lowering", t.elapsed());
                if lowered.is_some() {
                    continue;
                }
            }
            let mut last = Instant::now();
            let optimized =
                kustodian_planner::optimize::optimize_with(planned.plan.clone(), &state.optimizer().rules, &state, |_, rule| {
                    let now = Instant::now();
                    add(&format!("optimizer: {}", rule.name()), now - last);
                    last = now;
                })
                .unwrap();
            let t = Instant::now();
            let mut physical = rt.block_on(bare.query_planner().create_physical_plan(&optimized, &bare)).unwrap();
            add("physical: initial plan", t.elapsed());
            for rule in state.physical_optimizers() {
                let t = Instant::now();
                physical = rule.optimize(physical, state.config_options()).unwrap();
                add(&format!("physical: {}", rule.name()), t.elapsed());
            }
            let _: Arc<_> = physical;
        }
    }
    let per_query = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(runs) / cases.len() as f64;
    let mut rows: Vec<(String, Duration)> = totals.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let all: Duration = rows.iter().map(|r| r.1).sum();
    println!("\nplanning time per query, mean over {} corpus queries x {runs} runs: {:.1} µs", cases.len(), per_query(all));
    let p50 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6 / f64::from(runs))
    };
    let whole: Vec<Duration> = (0..cases.len()).map(|i| per_case.values().map(|v| v.get(i).copied().unwrap_or_default()).sum()).collect();
    println!("median query: {:.1} µs", p50(&whole));
    println!("{:<60} {:>10} {:>7} {:>9}", "stage", "µs/query", "share", "p50 µs");
    for (k, d) in rows.iter().take(40) {
        let p = per_case.get(k).map_or(0.0, |v| p50(v));
        println!("{k:<60} {:>10.1} {:>6.1}% {:>9.1}", per_query(*d), 100.0 * d.as_secs_f64() / all.as_secs_f64(), p);
    }
}
