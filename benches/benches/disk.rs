//! Tables on disk against DataFusion SQL over the same Parquet files, interleaved: Kustodian
//! run, DataFusion run, Kustodian run... (`N` pairs, default 21) and the medians' ratio; the
//! own-rows policy against its handwritten filter on disk; and what a selective query reads.
//!
//! The cluster: `DISK_DIR` (a cluster directory holding `Bench.T`, e.g. what
//! `benches/memory.sh` builds) or, without it, a new one of `ROWS` generated rows (default 1M)
//! in the temporary directory. DataFusion reads the cluster's extent files through a
//! `ListingTable` with the same session options (target partitions, Parquet filter pushdown).
//! Times cover planning and execution; both sides collect their results.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
use std::path::PathBuf;
use std::time::Instant;

use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{SessionConfig, SessionContext};
use kustodian_benches::{ADMIN, DB, PRINCIPAL, admin_options, data_dir, principal_options};
use kustodian_runtime::Cluster;

const PAIRS: &[(&str, &str, &str)] = &[
    (
        "Q1",
        "T | where Region == \"r3\" | summarize sum(Amount) by Owner",
        "SELECT \"Owner\", sum(\"Amount\") FROM t WHERE \"Region\" = 'r3' GROUP BY \"Owner\"",
    ),
    (
        "Q2",
        "T | summarize n = count(), total = sum(Amount) by Region, Owner",
        "SELECT \"Region\", \"Owner\", count(*), sum(\"Amount\") FROM t GROUP BY \"Region\", \"Owner\"",
    ),
    ("count", "T | count", "SELECT count(*) FROM t"),
    ("selective", "T | where Id == 123456 | project Amount", "SELECT \"Amount\" FROM t WHERE \"Id\" = 123456"),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(21);
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (dir, made) = match std::env::var("DISK_DIR") {
        Ok(d) => (PathBuf::from(d), false),
        Err(_) => {
            let dir = std::env::temp_dir().join(format!("kustodian-disk-bench-{}", std::process::id()));
            let c = Cluster::init(&dir, ADMIN).unwrap().with_ingestion_roots(&[data_dir(rows)]).unwrap();
            rt.block_on(c.execute(&format!(".create database {DB}"), &admin_options())).unwrap();
            let script = std::fs::read_to_string(data_dir(rows).join("ingest.kql")).unwrap();
            for req in kustodian_runtime::split_script(&script) {
                rt.block_on(c.execute(&req.text, &admin_options())).unwrap();
            }
            (dir, true)
        }
    };
    let cluster = Cluster::open(&dir).unwrap().with_plan_cache(false);
    rt.block_on(cluster.execute(&format!(".add database {DB} viewers ('{PRINCIPAL}')"), &admin_options())).unwrap();
    let extents = rt.block_on(cluster.execute(".show table T extents | summarize count(), sum(RowCount), sum(ExtentSize)", &admin_options())).unwrap();
    let b = &extents.batches[0];
    let cell = |i: usize| datafusion::arrow::util::display::array_value_to_string(b.column(i), 0).unwrap();
    println!("cluster {}: {} extents, {} rows, {} bytes", dir.display(), cell(0), cell(1), cell(2));

    let partitions = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    // DataFusion reads Parquet strings as `Utf8View` by default; Kustodian's strings are `Utf8`.
    // `DF_VIEW_TYPES=0` makes DataFusion read them as Kustodian does.
    if std::env::var("DF_VIEW_TYPES").is_ok_and(|v| v == "0") {
        config.options_mut().execution.parquet.schema_force_view_types = false;
    }
    let ctx = SessionContext::new_with_config(config);
    // T's extent files (the directory holds every table's).
    let ids = rt.block_on(cluster.execute(".show table T extents | project ExtentId", &admin_options())).unwrap();
    let mut urls = Vec::new();
    for b in &ids.batches {
        for r in 0..b.num_rows() {
            let id = datafusion::arrow::util::display::array_value_to_string(b.column(0), r).unwrap();
            urls.push(ListingTableUrl::parse(format!("{}/extents/{id}.parquet", dir.display())).unwrap());
        }
    }
    // The session's Parquet options (filter pushdown), as Kustodian's scans take them; the
    // extents are encrypted: DataFusion reads them with the cluster's keys (its first query
    // above taught the keyring every extent's wrapped key).
    let mut parquet = ctx.state().table_options().parquet.clone();
    if let Some(keys) = cluster.keyring() {
        ctx.runtime_env().register_parquet_encryption_factory("kustodian", Arc::new(kustodian_runtime::keys::ExtentEncryption(Arc::clone(keys))));
        parquet.crypto.factory_id = Some("kustodian".into());
        rt.block_on(cluster.execute("T | summarize count() by Region", &admin_options())).unwrap();
    }
    let format = ParquetFormat::default().with_options(parquet);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let table = rt.block_on(async {
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).infer_schema(&ctx.state()).await.unwrap();
        ListingTable::try_new(config).unwrap()
    });
    ctx.register_table("t", Arc::new(table)).unwrap();

    if let Ok(q) = std::env::var("EXPLAIN_SQL") {
        let out = rt.block_on(async { ctx.sql(&format!("EXPLAIN ANALYZE {q}")).await.unwrap().collect().await.unwrap() });
        println!("{}", datafusion::arrow::util::display::array_value_to_string(out[0].column(1), 0).unwrap());
        return;
    }
    let kusto = |q: &str| rt.block_on(async { cluster.execute(q, &admin_options()).await.unwrap() });
    let sql = |q: &str| rt.block_on(async { ctx.sql(q).await.unwrap().collect().await.unwrap() });
    for (name, kql, sqlq) in PAIRS {
        // Same answer size first.
        let a: usize = kusto(kql).batches.iter().map(|b| b.num_rows()).sum();
        let b: usize = sql(sqlq).iter().map(|b| b.num_rows()).sum();
        assert_eq!(a, b, "{name}: Kustodian and DataFusion disagree on the row count");
        let (mut ka, mut da) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let t = Instant::now();
            kusto(kql);
            ka.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            sql(sqlq);
            da.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (k, d) = (median(ka), median(da));
        println!("{name:<10} kustodian {k:9.2} ms  datafusion-sql {d:9.2} ms  ratio {:.3}", k / d);
    }

    // The own-rows policy against the same filter by hand, on disk.
    let own = "T | where Owner == current_principal()";
    let hand = format!("T | where Owner == \"{PRINCIPAL}\" | summarize sum(Amount) by Region");
    let with_policy = "T | summarize sum(Amount) by Region";
    let (mut pa, mut ha) = (Vec::new(), Vec::new());
    for _ in 0..n {
        rt.block_on(cluster.execute(&format!(".alter table T policy row_level_security enable \"{own}\""), &admin_options())).unwrap();
        let t = Instant::now();
        rt.block_on(cluster.execute(with_policy, &principal_options())).unwrap();
        pa.push(t.elapsed().as_secs_f64() * 1e3);
        rt.block_on(cluster.execute(".delete table T policy row_level_security", &admin_options())).unwrap();
        let t = Instant::now();
        rt.block_on(cluster.execute(&hand, &principal_options())).unwrap();
        ha.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p, h) = (median(pa), median(ha));
    println!("own_rows   policy {p:9.2} ms  handwritten {h:9.2} ms  ratio {:.3}", p / h);

    // What the selective query reads.
    let e = rt.block_on(cluster.explain_analyze("T | where Id == 123456 | project Amount", &admin_options())).unwrap();
    print!("selective query, explain --analyze:\n{}", e.analysis.unwrap().summary());
    drop(cluster);
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
