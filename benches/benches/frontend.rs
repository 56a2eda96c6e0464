//! Parse, bind and plan latency for every query of `corpus/queries/` against the bundled
//! sample database: `parse` (text to AST), `bind` (parse + bind to a DataFusion logical plan,
//! RLS substitution and authorization included), `plan` (bind + DataFusion optimization +
//! physical planning: everything before execution), all with the plan cache off; and `cached`,
//! the same request repeated with the plan cache on (its optimized plan reused: only physical
//! planning runs). Cases that are meant to fail are skipped. After criterion's runs, prints the
//! distribution of each stage over the corpus (`KUSTODIAN_BENCH_LIST=1`: and every query's times).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kustodian_benches::{case_selected, corpus_cases};
use kustodian_runtime::Cluster;

fn frontend(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cluster = rt.block_on(Cluster::sample()).unwrap().with_plan_cache(false);
    let cached = rt.block_on(Cluster::sample()).unwrap();
    let cases = corpus_cases(&rt, &cluster);
    let mut group = c.benchmark_group("frontend");
    group.sample_size(10).warm_up_time(Duration::from_millis(50)).measurement_time(Duration::from_millis(200));
    for case in cases.iter().filter(|c| case_selected(&c.name)) {
        group.bench_with_input(BenchmarkId::new("parse", &case.name), &case.text, |b, t| {
            b.iter(|| kustodian_parser::parse(t).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("bind", &case.name), case, |b, c| {
            b.iter(|| cluster.bind(&c.text, &c.opts).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("plan", &case.name), case, |b, c| {
            b.iter(|| rt.block_on(cluster.prepare(&c.text, &c.opts)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("cached", &case.name), case, |b, c| {
            b.iter(|| rt.block_on(cached.prepare(&c.text, &c.opts)).unwrap())
        });
    }
    group.finish();

    // The distribution over the corpus, in one table for the README.
    let mut stats: Vec<(String, Duration, Duration, Duration, Duration)> = cases
        .iter()
        .map(|c| {
            let med = |f: &dyn Fn()| {
                let mut v: Vec<Duration> = (0..31)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed()
                    })
                    .collect();
                v.sort();
                v[15]
            };
            let p = med(&|| {
                kustodian_parser::parse(&c.text).unwrap();
            });
            let b = med(&|| {
                cluster.bind(&c.text, &c.opts).unwrap();
            });
            let q = med(&|| {
                rt.block_on(cluster.prepare(&c.text, &c.opts)).unwrap();
            });
            let r = med(&|| {
                rt.block_on(cached.prepare(&c.text, &c.opts)).unwrap();
            });
            (c.name.clone(), p, b, q, r)
        })
        .collect();
    stats.sort_by_key(|s| s.3);
    let pct = |f: fn(&(String, Duration, Duration, Duration, Duration)) -> Duration, q: f64| {
        let mut v: Vec<Duration> = stats.iter().map(f).collect();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).map(|d| d.as_secs_f64() * 1e6).unwrap_or(f64::NAN)
    };
    println!("\nfrontend latency over {} corpus queries (µs, median of 31 runs each):", stats.len());
    println!("{:<8} {:>8} {:>8} {:>8} {:>8}", "stage", "p50", "p90", "p99", "max");
    for (stage, f) in [
        ("parse", (|s: &(String, Duration, Duration, Duration, Duration)| s.1) as fn(&_) -> Duration),
        ("bind", |s| s.2),
        ("plan", |s| s.3),
        ("cached", |s| s.4),
    ] {
        println!(
            "{stage:<8} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            pct(f, 0.5),
            pct(f, 0.9),
            pct(f, 0.99),
            pct(f, 1.0)
        );
    }
    // `KUSTODIAN_BENCH_LIST=1` prints every query's times, fastest to plan first.
    if std::env::var_os("KUSTODIAN_BENCH_LIST").is_some() {
        for s in &stats {
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!("  {:<48} bind {:>8.1} plan {:>8.1} cached {:>8.1} µs", s.0, us(s.2), us(s.3), us(s.4));
        }
    }
    println!("slowest to plan:");
    for s in stats.iter().rev().take(5) {
        println!("  {:<48} {:>8.1} µs", s.0, s.3.as_secs_f64() * 1e6);
    }
}

criterion_group!(benches, frontend);
criterion_main!(benches);
