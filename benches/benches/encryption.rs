//! What encryption at rest costs a query: the same generated rows ingested into three cluster
//! directories, one encrypted (every cluster's default: Parquet modular encryption, a DEK per
//! extent wrapped by the platform key), one double-encrypted (`init --double-encryption`) and
//! one without encryption, and Q1 and Q2 run on each, interleaved (`N` rounds, default 21), in
//! a process that has opened all three (DEKs unwrapped once, as a server's are). Prints the
//! medians and their ratios to the plaintext cluster.
//!
//!   ROWS=10000000 cargo bench -p kustodian-benches --bench encryption
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
use std::path::{Path, PathBuf};
use std::time::Instant;

use kustodian_benches::{ADMIN, DB, admin_options, data_dir};
use kustodian_runtime::Cluster;

const QUERIES: &[(&str, &str)] = &[
    ("Q1", "T | where Region == \"r3\" | summarize sum(Amount) by Owner"),
    ("Q2", "T | summarize n = count(), total = sum(Amount) by Region, Owner"),
    ("count", "T | count"),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn load(rt: &tokio::runtime::Runtime, c: Cluster, rows: u64) {
    let c = c.with_ingestion_roots(&[data_dir(rows)]).unwrap();
    rt.block_on(c.execute(&format!(".create database {DB}"), &admin_options())).unwrap();
    let script = std::fs::read_to_string(data_dir(rows).join("ingest.kql")).unwrap();
    for req in kustodian_runtime::split_script(&script) {
        rt.block_on(c.execute(&req.text, &admin_options())).unwrap();
    }
}

fn size(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("extents")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(21);
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base: PathBuf = std::env::temp_dir().join(format!("kustodian-encryption-bench-{}", std::process::id()));
    let (enc, plain, double) = (base.join("encrypted"), base.join("plaintext"), base.join("double"));
    load(&rt, Cluster::init(&enc, ADMIN).unwrap(), rows);
    load(&rt, Cluster::init_unencrypted_for_benchmarks(&plain, ADMIN).unwrap(), rows);
    load(&rt, Cluster::init_with(&double, ADMIN, true).unwrap(), rows);
    println!(
        "{rows} rows: extents {} bytes encrypted, {} bytes double-encrypted, {} bytes plaintext",
        size(&enc),
        size(&double),
        size(&plain)
    );
    let a = Cluster::open(&enc).unwrap().with_plan_cache(false);
    let b = Cluster::open(&plain).unwrap().with_plan_cache(false);
    let d = Cluster::open(&double).unwrap().with_plan_cache(false);
    let run = |c: &Cluster, q: &str| rt.block_on(c.execute(q, &admin_options())).unwrap();
    for (name, q) in QUERIES {
        assert_eq!(run(&a, q).row_count(), run(&b, q).row_count(), "{name}: the clusters disagree");
        assert_eq!(run(&d, q).row_count(), run(&b, q).row_count(), "{name}: the clusters disagree");
        let (mut ta, mut tb, mut td) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            for (c, v) in [(&a, &mut ta), (&b, &mut tb), (&d, &mut td)] {
                let t = Instant::now();
                run(c, q);
                v.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let (x, y, z) = (median(ta), median(tb), median(td));
        println!(
            "{name:<6} plaintext {y:9.2} ms  encrypted {x:9.2} ms (ratio {:.3})  double {z:9.2} ms (ratio {:.3})",
            x / y,
            z / y
        );
    }
    drop((a, b, d));
    let _ = std::fs::remove_dir_all(&base);
}
