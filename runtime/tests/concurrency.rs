//! Many writers and readers on one cluster directory lose nothing: separate processes (the
//! `kustodian` binary), separate `Cluster`s over one directory (as two long-lived processes), and
//! concurrent requests inside one process. Bounded in count; run longer by hand with
//! `KUSTODIAN_STRESS_ROUNDS=200`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use common::text;
use kustodian_runtime::{Cluster, Identity, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";

fn rounds() -> usize {
    std::env::var("KUSTODIAN_STRESS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

fn opts(who: &str) -> RequestOptions {
    RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        properties: vec![],
        ..Default::default()
    }
}

fn cells(out: &kustodian_runtime::QueryOutput) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut v = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            v.push(b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect());
        }
    }
    v
}

fn run(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> Vec<Vec<String>> {
    cells(&rt.block_on(c.execute(text, &opts(ADMIN))).unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn setup(dir: &std::path::Path) {
    let rt = rt();
    let c = Cluster::init(dir, ADMIN).unwrap();
    for cmd in [".create database Db", ".create table S (Writer:string, I:long)"] {
        run(&rt, &c, cmd);
    }
}

/// Four processes at once: two ingest, one changes policies and roles, one reads. Every
/// reported success is there at the end, the policy and every role are, the reader never
/// failed and never saw the count go down, and the cluster opens.
#[test]
fn processes_sharing_a_directory_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    setup(&data);
    let n = rounds();
    let ingest = |w: &str| {
        (0..n).map(|i| format!(".ingest inline into table S <| {w},{i}")).collect::<Vec<_>>().join("\n\n")
    };
    let mut admin_script = Vec::new();
    for i in 0..n {
        admin_script.push(format!(".add database Db viewers ('aaduser=u{i}@contoso.com')"));
        // Policies that all keep every row, so the reader's counts only grow.
        admin_script.push(format!(".alter table S policy row_level_security enable \"S | where I > -{}\"", i + 1));
    }
    admin_script.push(".alter table S policy row_level_security enable \"S | where I >= 0\"".into());
    let reader = (0..n * 2).map(|_| "S | count".to_string()).collect::<Vec<_>>().join("\n\n");
    let scripts = [ingest("a"), ingest("b"), admin_script.join("\n\n"), reader];
    let started = std::time::Instant::now();
    let children: Vec<_> = scripts
        .iter()
        .map(|s| {
            Command::new(env!("CARGO_BIN_EXE_kustodian"))
                .args(["run", "--data", data.to_str().unwrap(), "--db", "Db", "--format", "json", "-c", s])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (i, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "process {i} failed:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    }
    eprintln!("4 processes, {} requests, {:?}", 4 * n + 2 * n + 1, started.elapsed());
    // The reader's counts never went down (each is a committed state, in commit order).
    let counts: Vec<i64> = text(&outputs[3].stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["rows"][0][0].as_i64().unwrap())
        .collect();
    assert_eq!(counts.len(), 2 * n);
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    // Every ingest is there, every role and the last policy.
    let rt = rt();
    let c = Cluster::open(&data).unwrap();
    assert_eq!(run(&rt, &c, "S | count"), vec![vec![(2 * n).to_string()]]);
    // The two writers' small extents were merged as they went (merges between ingests of the
    // other process), and no merge lost a row.
    let extents: usize = run(&rt, &c, ".show table S extents | count")[0][0].parse().unwrap();
    assert!(extents < 2 * n / 4, "{extents} extents for {} ingests: small extents were not merged", 2 * n);
    assert_eq!(run(&rt, &c, "S | summarize dcount(I) by Writer | order by Writer asc"), vec![vec!["a".to_string(), n.to_string()], vec!["b".to_string(), n.to_string()]]);
    let principals = run(&rt, &c, ".show database Db principals");
    for i in 0..n {
        assert!(principals.iter().any(|r| r[4] == format!("aaduser=u{i}@contoso.com")), "u{i} missing");
    }
    let policy = run(&rt, &c, ".show table S policy row_level_security");
    assert!(policy[0][2].contains("I >= 0") && policy[0][2].contains("\"IsEnabled\":true"), "{policy:?}");
}

/// Two long-lived handles on one directory (as a shell and another process): each sees the
/// other's commits at its next request, and neither write undoes the other's.
#[test]
fn a_long_lived_process_sees_and_keeps_other_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    setup(&data);
    let rt = rt();
    let one = Cluster::open(&data).unwrap();
    let two = Cluster::open(&data).unwrap();
    run(&rt, &one, ".ingest inline into table S <| one,1");
    assert_eq!(run(&rt, &two, "S | count"), vec![vec!["1".to_string()]]);
    run(&rt, &two, ".alter table S policy row_level_security enable \"S | where I > 1\"");
    // `one` ingests again over a state it had not seen: the policy stays.
    run(&rt, &one, ".ingest inline into table S <| one,2");
    for c in [&one, &two] {
        assert_eq!(run(&rt, c, "S | count"), vec![vec!["1".to_string()]]);
        let policy = run(&rt, c, ".show table S policy row_level_security");
        assert!(policy[0][2].contains("I > 1"), "{policy:?}");
    }
    run(&rt, &one, ".drop table S");
    let (code, _) = rt.block_on(two.execute("S | count", &opts(ADMIN))).map(|_| ((), ())).map_err(|e| e.code()).err().map(|c| (c, ())).unwrap();
    assert_eq!(code.as_str(), "SemanticError");
}

/// Concurrent requests of one process: commits are serialised, none is lost.
#[test]
fn concurrent_requests_in_one_process_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    setup(&data);
    let rt = rt();
    let c = Arc::new(Cluster::open(&data).unwrap());
    let n = rounds();
    let mut tasks = Vec::new();
    for w in 0..4 {
        for i in 0..n {
            let cw = Arc::clone(&c);
            tasks.push(rt.spawn(async move {
                let text = if w == 3 {
                    format!(".add database Db viewers ('aaduser=t{i}@contoso.com')")
                } else {
                    format!(".ingest inline into table S <| w{w},{i}")
                };
                cw.execute(&text, &opts(ADMIN)).await.map(|_| ()).map_err(|e| format!("{text}: {e}"))
            }));
            let cr = Arc::clone(&c);
            tasks.push(rt.spawn(async move { cr.execute("S | count", &opts(ADMIN)).await.map(|_| ()).map_err(|e| e.to_string()) }));
        }
    }
    for t in tasks {
        rt.block_on(t).unwrap().unwrap();
    }
    assert_eq!(run(&rt, &c, "S | count"), vec![vec![(3 * n).to_string()]]);
    let principals = run(&rt, &c, ".show database Db principals");
    assert_eq!(principals.iter().filter(|r| r[4].starts_with("aaduser=t")).count(), n);
    // And on disk, for the next process.
    let reopened = Cluster::open(&data).unwrap();
    assert_eq!(run(&rt, &reopened, "S | count"), vec![vec![(3 * n).to_string()]]);
}

/// Opening never insists on cleaning up: while another process holds the writer lock (or the
/// directory is read-only), a crash's leftovers stay and queries still answer; the next open
/// that may take the lock removes them.
#[test]
fn opening_reads_only_and_cleans_up_only_under_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    setup(&data);
    let rt = rt();
    run(&rt, &Cluster::open(&data).unwrap(), ".ingest inline into table S <| x,1");
    let leftover = data.join("extents").join(".tmp-crashed.parquet");
    std::fs::write(&leftover, "half an extent").unwrap();
    let storage = kustodian_runtime::storage::Storage::open(&data).unwrap();
    let held = storage.lock_writer().unwrap();
    let c = Cluster::open(&data).unwrap();
    assert_eq!(run(&rt, &c, "S | count"), vec![vec!["1".to_string()]]);
    assert!(leftover.exists(), "a reader must not clean up under another writer");
    drop(held);
    let c = Cluster::open(&data).unwrap();
    assert_eq!(run(&rt, &c, "S | count"), vec![vec!["1".to_string()]]);
    assert!(!leftover.exists());
}

/// kill -9 of a writer at any moment, while another process reads: the reader never fails, the
/// lock dies with the writer, every ingest the writer reported is there (and at most the one in
/// flight besides), and the next writer proceeds. The writer's ingests merge small extents
/// every few commits, so kills land in merges too: a merge is whole or not at all.
#[test]
fn a_killed_writer_loses_nothing_it_reported_and_blocks_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    setup(&data);
    let d = data.to_str().unwrap();
    for (round, delay_ms) in [15u64, 40, 80, 150, 300, 600].into_iter().enumerate() {
        // A table whose data is older than a second: the writer's retention policy drops it.
        {
            let rt = rt();
            let c = Cluster::open(&data).unwrap();
            run(&rt, &c, ".set-or-replace Old <| range I from 1 to 100 step 1");
            run(&rt, &c, ".append Old <| range I from 101 to 200 step 1");
            run(&rt, &c, ".delete table Old policy retention");
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // Every kind of commit: appends (and the merges they start), policy changes, role
        // changes, a replace of another table's data, retention dropping extents.
        let script = (0..400)
            .map(|i| match i % 4 {
                _ if i == 3 => ".alter table Old policy retention softdelete = 1s".to_string(),
                0 | 1 => format!(".ingest inline into table S <| k{round},{i}"),
                2 => format!(".alter table S policy row_level_security enable \"S | where I > -{}\"", i + 1),
                _ => format!(".set-or-replace R <| print Round = {round}, I = {i}\n\n.add database Db viewers ('aaduser=k{i}@contoso.com')"),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut writer = Command::new(env!("CARGO_BIN_EXE_kustodian"))
            .args(["run", "--data", d, "--db", "Db", "--format", "json", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let reader = Command::new(env!("CARGO_BIN_EXE_kustodian"))
            .args(["run", "--data", d, "--db", "Db", "-c", &(0..20).map(|_| "S | count").collect::<Vec<_>>().join("\n\n")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        writer.kill().unwrap();
        let out = writer.wait_with_output().unwrap();
        // `.ingest` results carry ItemLoaded; `.set-or-replace` results do not.
        let reported = text(&out.stdout).lines().filter(|l| l.contains("ItemLoaded")).count();
        let r = reader.wait_with_output().unwrap();
        assert!(r.status.success(), "the reader failed: {}", text(&r.stderr));
        let rt = rt();
        let c = Cluster::open(&data).unwrap();
        let got: usize = run(&rt, &c, &format!("S | where Writer == 'k{round}' | count"))[0][0].parse().unwrap();
        assert!(got == reported || got == reported + 1, "round {round}: {got} rows, {reported} reported");
        eprintln!("killed after {delay_ms} ms: {reported} ingests reported, {got} rows");
        // A replace is whole or not at all.
        if let Ok(out) = rt.block_on(c.execute("R | count", &opts(ADMIN))) {
            assert_eq!(cells(&out), vec![vec!["1".to_string()]], "round {round}");
        }
        // Retention dropped both of Old's extents or neither (and if its policy was committed,
        // opening applied it).
        let old: usize = run(&rt, &c, "Old | count")[0][0].parse().unwrap();
        assert!(old == 0 || old == 200, "round {round}: Old has {old} rows");
        // The lock died with the writer: the next change goes through at once.
        run(&rt, &c, &format!(".ingest inline into table S <| after{round},1"));
        // No temporary file survives a clean open.
        drop(c);
        let _ = Cluster::open(&data).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(data.join("extents"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
