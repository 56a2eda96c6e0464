//! Entity names follow Kusto's rules, and an unreadable extent fails only its own table, naming
//! the table and the extent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::{Cluster, Identity, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const VIEWER: &str = "aaduser=viewer@contoso.com";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn exec(rt: &tokio::runtime::Runtime, c: &Cluster, who: &str, text: &str) -> Result<kustodian_runtime::QueryOutput, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        properties: vec![],
        ..Default::default()
    };
    rt.block_on(c.execute(text, &opts)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn ok(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> kustodian_runtime::QueryOutput {
    exec(rt, c, ADMIN, text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

#[test]
fn entity_names_follow_kustos_rules_and_a_bad_name_changes_nothing() {
    let rt = rt();
    let c = Cluster::in_memory(ADMIN, "admin").unwrap();
    ok(&rt, &c, ".create database Db");
    let long = "x".repeat(5000);
    for cmd in [
        format!(".create table ['{long}'] (a:long)"),
        ".create table ['a/b'] (a:long)".to_string(),
        ".create table ['..'] (a:long)".to_string(),
        ".create table ['x;y'] (a:long)".to_string(),
        ".create table ['__reserved'] (a:long)".to_string(),
        ".create table T (['a:b']:long)".to_string(),
        ".create database ['../escape']".to_string(),
        ".create function ['f/g']() { print 1 }".to_string(),
        ".set ['a/b'] <| print x = 1".to_string(),
    ] {
        let (code, msg) = exec(&rt, &c, ADMIN, &cmd).unwrap_err();
        assert_eq!(code, "BadRequest", "{cmd}: {msg}");
        assert!(msg.contains("is not a valid"), "{cmd}: {msg}");
        assert!(msg.len() < 400, "the error does not echo a 5000-character name: {}", msg.len());
    }
    let tables = ok(&rt, &c, ".show tables");
    assert_eq!(tables.row_count(), 0, "nothing was created");
    // Names Kusto allows.
    ok(&rt, &c, ".create table ['My Table-1.v2'] (['a b']:long)");
    ok(&rt, &c, &format!(".create table ['{}'] (a:long)", "y".repeat(1024)));
}

#[test]
fn an_unreadable_extent_fails_only_its_table_and_names_it() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let c = Cluster::init(&data, ADMIN).unwrap();
    ok(&rt, &c, ".create database Db");
    ok(&rt, &c, ".create table A (x:long)");
    ok(&rt, &c, ".create table B (x:long)");
    ok(&rt, &c, &format!(".add database Db viewers ('{VIEWER}')"));
    ok(&rt, &c, ".ingest inline into table A <| 1");
    ok(&rt, &c, ".ingest inline into table B <| 2");
    drop(c);
    let extents: Vec<_> = std::fs::read_dir(data.join("extents")).unwrap().map(|e| e.unwrap().path()).collect();
    // Find A's extent: the one holding the value 1 (a reopened cluster reads both).
    let meta: serde_json::Value = kustodian_runtime::storage::Storage::open(&data).unwrap().load_metadata().unwrap().unwrap();
    let a_id = meta["databases"][0]["tables"][0]["extents"][0]["id"].as_str().unwrap().to_string();
    let a_file = extents.iter().find(|p| p.to_string_lossy().contains(&a_id)).unwrap().clone();
    std::fs::write(&a_file, b"not parquet at all").unwrap();

    let c = Cluster::open(&data).unwrap();
    for who in [ADMIN, VIEWER] {
        assert_eq!(kustodian_tests_cells(&exec(&rt, &c, who, "B | count").unwrap()), "1");
        let (code, msg) = exec(&rt, &c, who, "A | count").unwrap_err();
        assert_eq!(code, "Internal", "{msg}");
        assert!(msg.contains("table 'A'") && msg.contains(&a_id) && msg.contains(&format!("extents/{a_id}.parquet")), "{msg}");
        assert!(!msg.contains(&data.display().to_string()), "the path is relative to the cluster: {msg}");
    }
    // A missing file too.
    std::fs::remove_file(&a_file).unwrap();
    let c = Cluster::open(&data).unwrap();
    let (_, msg) = exec(&rt, &c, VIEWER, "A | count").unwrap_err();
    assert!(msg.contains("table 'A'") && msg.contains("missing"), "{msg}");
    assert_eq!(kustodian_tests_cells(&exec(&rt, &c, VIEWER, "B | count").unwrap()), "1");
    // The table's admin repairs it by replacing its data.
    ok(&rt, &c, ".set-or-replace A <| print x = 5");
    assert_eq!(kustodian_tests_cells(&exec(&rt, &c, VIEWER, "A | count").unwrap()), "1");
}

fn kustodian_tests_cells(out: &kustodian_runtime::QueryOutput) -> String {
    use datafusion::arrow::util::display::array_value_to_string;
    array_value_to_string(out.batches[0].column(0), 0).unwrap()
}
