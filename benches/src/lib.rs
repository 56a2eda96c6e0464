//! Benchmark helpers: the generated table `T` loaded into an in-memory cluster, the queries and
//! the row-level security policy patterns measured by `benches/benches/exec.rs`, and the same
//! data as a plain DataFusion table for the SQL baseline.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use kustodian_runtime::datagen::{self, Formats, Generator};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

/// The cluster's first admin.
pub const ADMIN: &str = "aaduser=admin@contoso.com";
/// The database the benches run in.
pub const DB: &str = "Bench";
/// The restricted principal: one of the 1000 owners, a viewer, not a manager.
pub const PRINCIPAL: &str = "aaduser=user0042@contoso.com";
/// The group whose members the masking policy lets see everything.
pub const MANAGERS: &str = "aadgroup=managers@contoso.com";
/// Seed of the generated data.
pub const SEED: u64 = 42;

/// The two measured queries, both of the form `T | <rest>`.
pub const QUERIES: &[(&str, &str)] = &[
    ("q1", "where Region == \"r3\" | summarize sum(Amount) by Owner"),
    ("q2", "where Amount > 500 | count"),
];

/// The same queries in DataFusion SQL over the same table (`t`).
pub const SQL: &[(&str, &str)] = &[
    ("q1", "SELECT \"Owner\", sum(\"Amount\") AS \"sum_Amount\" FROM t WHERE \"Region\" = 'r3' GROUP BY \"Owner\""),
    ("q2", "SELECT count(*) AS \"Count\" FROM t WHERE \"Amount\" > 500"),
];

/// A row-level security pattern: the policy query, and the same filter as the restricted
/// principal would write it by hand (its principal functions folded to literals).
pub struct Pattern {
    pub name: &'static str,
    pub policy: &'static str,
    pub handwritten: String,
}

pub fn patterns() -> Vec<Pattern> {
    vec![
        Pattern {
            name: "own_rows",
            policy: "T | where Owner == current_principal()",
            handwritten: format!("T | where Owner == \"{PRINCIPAL}\""),
        },
        Pattern {
            name: "masking_union",
            policy: "let IsManager = current_principal_is_member_of('aadgroup=managers@contoso.com');\n\
                     union (T | where IsManager), (T | where not(IsManager) | extend Owner = \"hidden\")",
            handwritten: "T | extend Owner = \"hidden\"".to_string(),
        },
        Pattern {
            name: "mapping_in",
            policy: "T | where Region in ((UserRegions | where User == current_principal() | project Region))",
            handwritten: format!("T | where Region in ((UserRegions | where User == \"{PRINCIPAL}\" | project Region))"),
        },
        Pattern {
            name: "join_entitlement",
            policy: "T | join kind=leftsemi (UserRegions | where User == current_principal()) on Region",
            handwritten: format!("T | join kind=leftsemi (UserRegions | where User == \"{PRINCIPAL}\") on Region"),
        },
    ]
}

/// The generated data files for `rows` rows, written once into the system temp directory and
/// reused by later runs.
pub fn data_dir(rows: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kustodian-bench-{rows}-{SEED}"));
    if !dir.join("ingest.kql").exists() {
        datagen::generate(&dir, rows, SEED, Formats { csv: false, parquet: true }).expect("generate bench data");
    }
    dir
}

/// A cluster holding `T` (`rows` rows) and `UserRegions` in database `Bench`, with
/// [`PRINCIPAL`] a viewer, and the tokio runtime that drives it: in memory, or with `DISK=1` in
/// a new cluster directory (tables scanned from their extent files; no hot cache).
pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub cluster: Cluster,
    pub rows: u64,
    /// The cluster directory, removed when the environment is dropped.
    pub dir: Option<PathBuf>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Whether benchmarks run on a cluster directory (`DISK=1`).
pub fn on_disk() -> bool {
    std::env::var("DISK").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl Env {
    pub fn new(rows: u64) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        // Every request planned in full, as the peers (DataFusion SQL, duckdb-kql) do: the
        // figures include parsing, binding the policies and optimizing.
        let (cluster, dir) = if on_disk() {
            let dir = std::env::temp_dir().join(format!("kustodian-bench-cluster-{}-{rows}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            (Cluster::init(&dir, ADMIN).expect("cluster directory"), Some(dir))
        } else {
            (Cluster::in_memory(ADMIN, "bench admin").expect("cluster"), None)
        };
        let cluster = cluster.with_plan_cache(false).with_ingestion_roots(&[data_dir(rows)]).expect("ingestion root");
        let env = Env { rt, cluster, rows, dir };
        env.admin(&format!(".create database {DB}"));
        let script = std::fs::read_to_string(data_dir(rows).join("ingest.kql")).expect("ingest.kql");
        for req in kustodian_runtime::split_script(&script) {
            env.admin(&req.text);
        }
        env.admin(&format!(".add database {DB} viewers ('{PRINCIPAL}')"));
        env
    }

    fn run(&self, text: &str, opts: &RequestOptions) -> QueryOutput {
        self.rt
            .block_on(self.cluster.execute(text, opts))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Runs a request as the admin.
    pub fn admin(&self, text: &str) -> QueryOutput {
        self.run(text, &admin_options())
    }

    /// Runs a request as the restricted principal.
    pub fn principal(&self, text: &str) -> QueryOutput {
        self.run(text, &principal_options())
    }

    /// Enables `policy` as T's row-level security policy.
    pub fn set_policy(&self, policy: &str) {
        let escaped = policy.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ");
        self.admin(&format!(".alter table T policy row_level_security enable \"{escaped}\""));
    }

    /// Removes T's row-level security policy.
    pub fn clear_policy(&self) {
        self.admin(".delete table T policy row_level_security");
    }
}

pub fn admin_options() -> RequestOptions {
    RequestOptions { database: Some(DB.into()), identity: None, properties: Vec::new(), ..Default::default() }
}

pub fn principal_options() -> RequestOptions {
    RequestOptions {
        database: Some(DB.into()),
        identity: Some(Identity { principal: PRINCIPAL.into(), groups: Vec::new(), ..Default::default() }),
        properties: Vec::new(),
        ..Default::default()
    }
}

/// The same rows as the cluster's `T`, as a plain DataFusion session with table `t`: batches of
/// the same size, spread over the same number of partitions.
pub fn datafusion_session(rows: u64) -> SessionContext {
    let batches: Vec<RecordBatch> = Generator::new(rows, SEED).collect::<Result<_, _>>().expect("generate");
    let schema = batches.first().map(|b| b.schema()).expect("at least one batch");
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut parts = vec![Vec::new(); n];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    let table = MemTable::try_new(schema, parts).expect("memtable");
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(n));
    ctx.register_table("t", Arc::new(table)).expect("register");
    ctx
}

/// Row counts (and sizes) the execution benches run at: `KUSTODIAN_BENCH_ROWS` (comma-separated),
/// default 1,000,000 and 10,000,000.
pub fn bench_rows() -> Vec<u64> {
    match std::env::var("KUSTODIAN_BENCH_ROWS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().replace('_', "").parse().ok()).collect(),
        Err(_) => vec![1_000_000, 10_000_000],
    }
}

/// A query of `corpus/queries/` that plans against the bundled sample database.
pub struct Case {
    pub name: String,
    pub text: String,
    pub opts: RequestOptions,
}

/// Whether a case is selected by `KUSTODIAN_BENCH_CASES`: a comma-separated list of
/// substrings of case names (all cases when unset).
pub fn case_selected(name: &str) -> bool {
    match std::env::var("KUSTODIAN_BENCH_CASES") {
        Ok(v) => v.split(',').map(str::trim).filter(|s| !s.is_empty()).any(|s| name.contains(s)),
        Err(_) => true,
    }
}

/// The corpus queries that plan on the sample cluster: cases meant to fail, management
/// commands and known gaps are not frontend latency.
pub fn corpus_cases(rt: &tokio::runtime::Runtime, cluster: &Cluster) -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/queries");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus/queries")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kql"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("case");
        let mut db = None;
        let mut expect_error = false;
        for line in text.lines() {
            let Some(comment) = line.trim_start().strip_prefix("//") else { break };
            match comment.trim().split_once(':') {
                Some(("db", v)) => db = Some(v.trim().to_string()),
                Some(("expect", _)) => expect_error = true,
                _ => {}
            }
        }
        if expect_error || text.trim_start().starts_with('.') {
            continue;
        }
        let opts = RequestOptions { database: Some(db.unwrap_or_else(|| "ContosoSales".into())), ..RequestOptions::default() };
        if rt.block_on(cluster.prepare(&text, &opts)).is_err() {
            continue;
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        out.push(Case { name, text, opts });
    }
    out
}
