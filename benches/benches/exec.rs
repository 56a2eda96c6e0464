//! Execution at 1M and 10M rows (`KUSTODIAN_BENCH_ROWS` to change): Q1 and Q2 in plain
//! DataFusion SQL and in Kustodian without a policy, then for each row-level security pattern
//! the query as the restricted principal with the policy, and with the same filter written by
//! hand. Every measured time covers planning and execution, as `kustodian run --timing` does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use datafusion::physical_plan::collect;
use kustodian_benches::{Env, QUERIES, SQL, bench_rows, datafusion_session, patterns};

fn exec(c: &mut Criterion) {
    for rows in bench_rows() {
        let env = Env::new(rows);
        let df = datafusion_session(rows);
        let mut group = c.benchmark_group(format!("exec_{rows}"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        for ((name, rest), (_, sql)) in QUERIES.iter().zip(SQL) {
            let query = format!("T | {rest}");
            // Both engines must agree before their times mean anything.
            let ours = env.principal(&query).row_count();
            let theirs: usize = env
                .rt
                .block_on(async { df.sql(sql).await?.collect().await })
                .expect("datafusion")
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(ours, theirs, "{name}: row counts differ between Kustodian and DataFusion");
            group.bench_function(BenchmarkId::new(*name, "datafusion_sql"), |b| {
                b.iter(|| {
                    env.rt.block_on(async {
                        let plan = df.sql(sql).await?.create_physical_plan().await?;
                        collect(plan, df.task_ctx()).await
                    })
                })
            });
            group.bench_function(BenchmarkId::new(*name, "no_policy"), |b| b.iter(|| env.principal(&query)));
            for p in patterns() {
                let handwritten = format!("{} | {rest}", p.handwritten);
                env.set_policy(p.policy);
                let with_policy = env.principal(&query);
                group.bench_function(BenchmarkId::new(*name, format!("{}/policy", p.name)), |b| {
                    b.iter(|| env.principal(&query))
                });
                env.clear_policy();
                let by_hand = env.principal(&handwritten);
                assert_eq!(
                    with_policy.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                    by_hand.row_count(),
                    "{name}/{}: the policy and the handwritten filter disagree",
                    p.name
                );
                group.bench_function(BenchmarkId::new(*name, format!("{}/handwritten", p.name)), |b| {
                    b.iter(|| env.principal(&handwritten))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, exec);
criterion_main!(benches);
