//! Tables on disk and Kusto's extent and data-policy commands: `.show ... extents`, `.drop
//! extents` in every form, extent tags and `ingestIfNotExists`, the caching policy (what is hot,
//! what the hot cache holds), the retention policy (applied by the command and on open),
//! `.rename table`, `.alter-merge table`, `.create table based-on`, ingestion mappings, merges,
//! and who may do each (an admin, a viewer, a stranger).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::{Cluster, Identity, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const VIEWER: &str = "aaduser=viewer@contoso.com";
const STRANGER: &str = "aaduser=stranger@contoso.com";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn exec(rt: &tokio::runtime::Runtime, c: &Cluster, who: &str, text: &str) -> Result<Vec<Vec<String>>, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        properties: vec![],
        ..Default::default()
    };
    rt.block_on(c.execute(text, &opts)).map(|o| cells(&o)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn ok(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> Vec<Vec<String>> {
    exec(rt, c, ADMIN, text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
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

fn count(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> i64 {
    ok(rt, c, text)[0][0].parse().unwrap()
}

/// A cluster on disk with table T(a:long, b:string), the viewer a database viewer.
fn setup(dir: &std::path::Path) -> (tokio::runtime::Runtime, Cluster) {
    let rt = rt();
    let c = Cluster::init(dir, ADMIN).unwrap();
    for cmd in [".create database Db", ".create table T (a:long, b:string)", &format!(".add database Db viewers ('{VIEWER}')")] {
        ok(&rt, &c, cmd);
    }
    (rt, c)
}

#[test]
fn show_extents_lists_kustos_columns_and_filters_by_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".ingest inline into table T with (tags='[\"drop-by:first\", \"batch 1\"]') <| 1,x\n2,y");
    ok(&rt, &c, ".ingest inline into table T with (tags='[\"drop-by:second\"]') <| 3,z");
    let all = ok(&rt, &c, ".show table T extents | project ExtentId, TableName, RowCount, Tags, Kind | order by RowCount desc");
    assert_eq!(all.len(), 2);
    assert_eq!((all[0][1].as_str(), all[0][2].as_str(), all[0][4].as_str()), ("T", "2", "StorageV3"));
    assert!(all[0][3].contains("drop-by:first") && all[0][3].contains("batch 1"), "{all:?}");
    let columns = ok(&rt, &c, ".show table T extents | getschema | project ColumnName");
    let names: Vec<&str> = columns.iter().map(|r| r[0].as_str()).collect();
    for want in ["ExtentId", "DatabaseName", "TableName", "MaxCreatedOn", "OriginalSize", "ExtentSize", "CompressedSize", "RowCount", "MinCreatedOn", "Tags"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    // Sizes: the file on disk and the data in memory.
    let sizes = ok(&rt, &c, ".show table T extents | where RowCount == 2 | project ExtentSize, OriginalSize");
    assert!(sizes[0][0].parse::<f64>().unwrap() > 0.0 && sizes[0][1].parse::<f64>().unwrap() > 0.0, "{sizes:?}");
    // Tag filters, as Kusto writes them.
    assert_eq!(ok(&rt, &c, ".show table T extents where tags has 'drop-by:second' | count"), vec![vec!["1".to_string()]]);
    assert_eq!(ok(&rt, &c, ".show table T extents where tags contains 'batch' and tags !has 'drop-by:second' | count"), vec![vec!["1".to_string()]]);
    assert_eq!(ok(&rt, &c, ".show table T extents where tags !contains 'drop-by' | count"), vec![vec!["0".to_string()]]);
    // The database and cluster forms.
    assert_eq!(count(&rt, &c, ".show database Db extents | count"), 2);
    assert_eq!(count(&rt, &c, ".show cluster extents | count"), 2);
    // The viewer may look; a stranger learns nothing, not even whether the table exists.
    assert_eq!(exec(&rt, &c, VIEWER, ".show table T extents | count").unwrap(), vec![vec!["2".to_string()]]);
    for cmd in [".show table T extents", ".show table Nope extents", ".show database Db extents"] {
        let (code, msg) = exec(&rt, &c, STRANGER, cmd).unwrap_err();
        assert_eq!(code, "Forbidden", "{cmd}: {msg}");
        assert!(msg.contains(STRANGER) && !msg.contains("does not exist"), "{cmd}: {msg}");
    }
    assert_eq!(exec(&rt, &c, STRANGER, ".show cluster extents | count").unwrap(), vec![vec!["0".to_string()]], "only databases the caller may see");
}

#[test]
fn drop_extents_in_every_form_and_only_by_the_tables_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    for i in 0..4 {
        ok(&rt, &c, &format!(".ingest inline into table T with (tags='[\"drop-by:k{i}\"]') <| {i},v{i}"));
    }
    // The viewer may not drop; the refusal names the principal, the operation and the role.
    let (code, msg) = exec(&rt, &c, VIEWER, ".drop extents from T").unwrap_err();
    assert_eq!(code, "Forbidden");
    assert!(msg.contains(VIEWER) && msg.contains("drop extents") && msg.contains("Admin"), "{msg}");
    let (code, msg) = exec(&rt, &c, VIEWER, ".drop extents <| .show table T extents where tags has 'drop-by:k0'").unwrap_err();
    assert_eq!(code, "Forbidden", "{msg}");
    assert_eq!(count(&rt, &c, "T | count"), 4, "nothing was dropped");

    // whatif lists and keeps.
    let would = ok(&rt, &c, ".drop extents whatif <| .show table T extents where tags has 'drop-by:k0'");
    assert_eq!(would.len(), 1);
    assert_eq!(count(&rt, &c, "T | count"), 4);
    // By tag, through a .show command and a pipe.
    let dropped = ok(&rt, &c, ".drop extents <| .show table T extents | where Tags has 'drop-by:k0'");
    assert_eq!((dropped.len(), dropped[0][1].as_str()), (1, "T"));
    assert_eq!(count(&rt, &c, "T | count"), 3);
    // By id, unquoted as Kusto writes it, and by a list.
    let ids = ok(&rt, &c, ".show table T extents where tags has 'drop-by:k1' | project ExtentId");
    ok(&rt, &c, &format!(".drop extent {} from T", ids[0][0]));
    assert_eq!(count(&rt, &c, "T | count"), 2);
    let ids = ok(&rt, &c, ".show table T extents | project ExtentId");
    let (code, msg) = exec(&rt, &c, ADMIN, ".drop extents ('00000000-0000-0000-0000-000000000000') from T").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("does not exist"), "{msg}");
    assert_eq!(count(&rt, &c, "T | count"), 2, "a failed drop changes nothing");
    ok(&rt, &c, &format!(".drop extents ('{}') from T", ids[0][0]));
    assert_eq!(count(&rt, &c, "T | count"), 1);
    // By a query listing ExtentIds.
    ok(&rt, &c, ".drop extents <| print ExtentId = 'no-such-extent'");
    assert_eq!(count(&rt, &c, "T | count"), 1, "an id that matches nothing drops nothing");
    // By age: nothing is older than a day; everything is dropped from the table.
    assert_eq!(ok(&rt, &c, ".drop extents older 1 days from T").len(), 0);
    assert_eq!(ok(&rt, &c, ".drop extents from T").len(), 1);
    assert_eq!(count(&rt, &c, "T | count"), 0);
    assert_eq!(count(&rt, &c, ".show table T extents | count"), 0);
}

#[test]
fn ingest_if_not_exists_skips_an_ingestion_tagged_before() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    let cmd = ".ingest inline into table T with (tags='[\"ingest-by:2026-12-07\"]', ingestIfNotExists='[\"2026-12-07\"]') <| 1,x";
    ok(&rt, &c, cmd);
    ok(&rt, &c, cmd);
    assert_eq!(count(&rt, &c, "T | count"), 1, "the second ingestion was skipped");
    ok(&rt, &c, ".ingest inline into table T with (tags='[\"ingest-by:other\"]', ingestIfNotExists='[\"2026-12-08\"]') <| 2,y");
    assert_eq!(count(&rt, &c, "T | count"), 2);
    let (code, msg) = exec(&rt, &c, ADMIN, ".ingest inline into table T with (tags='not json') <| 3,z").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("tags"), "{msg}");
}

#[test]
fn caching_policy_decides_what_is_hot_and_what_the_cache_holds() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let c = Cluster::init(dir.path(), ADMIN).unwrap().with_hot_cache(64 << 20);
    for cmd in [".create database Db", ".create table T (a:long, b:string)", &format!(".add database Db viewers ('{VIEWER}')")] {
        ok(&rt, &c, cmd);
    }
    ok(&rt, &c, ".ingest inline into table T <| 1,x");
    // No policy: everything is hot, and a new extent enters the cache at its commit.
    assert_eq!(count(&rt, &c, ".show table T extents hot | count"), 1);
    assert_eq!(c.hot_cache().unwrap().stats().extents, 1);
    let shown = ok(&rt, &c, ".show table T policy caching");
    assert_eq!((shown[0][0].as_str(), shown[0][1].as_str(), shown[0][2].as_str()), ("CachingPolicy", "[Db].[T]", "null"));
    // The viewer may show but not change it.
    assert!(exec(&rt, &c, VIEWER, ".show table T policy caching").is_ok());
    let (code, msg) = exec(&rt, &c, VIEWER, ".alter table T policy caching hot = 1d").unwrap_err();
    assert!(code == "Forbidden" && msg.contains(VIEWER), "{msg}");
    // A hot period of zero: nothing is hot, the cache lets the extent go, queries read the file.
    let shown = ok(&rt, &c, ".alter table T policy caching hot = 0s");
    assert!(shown[0][2].contains("\"DataHotSpan\"") && shown[0][2].contains("00:00:00"), "{shown:?}");
    assert_eq!(count(&rt, &c, ".show table T extents hot | count"), 0);
    assert_eq!(count(&rt, &c, ".show table T extents | count"), 1);
    assert_eq!(c.hot_cache().unwrap().stats().extents, 0);
    assert_eq!(ok(&rt, &c, "T | project b"), vec![vec!["x".to_string()]]);
    // The database's policy applies to tables without their own.
    ok(&rt, &c, ".delete table T policy caching");
    ok(&rt, &c, ".alter database Db policy caching hot = 7d");
    assert_eq!(count(&rt, &c, ".show table T extents hot | count"), 1);
    assert!(ok(&rt, &c, ".show database Db policy caching")[0][2].contains("7.00:00:00"));
    let details = ok(&rt, &c, ".show table T details | project TableName, TotalExtents, HotExtents, TotalRowCount, CachingPolicy");
    assert_eq!(details[0][..4], ["T", "1", "1", "1"]);
    assert!(details[0][4].contains("7.00:00:00"), "{details:?}");
    // A stranger cannot touch the database's policy.
    let (code, _) = exec(&rt, &c, STRANGER, ".alter database Db policy caching hot = 1d").unwrap_err();
    assert_eq!(code, "Forbidden");
}

#[test]
fn retention_drops_old_extents_on_the_command_and_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".ingest inline into table T <| 1,old");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    ok(&rt, &c, ".ingest inline into table T <| 2,new");
    // Older than a second goes at once.
    let shown = ok(&rt, &c, ".alter table T policy retention softdelete = 1s");
    assert!(shown[0][2].contains("\"SoftDeletePeriod\":\"00:00:01\"") && shown[0][2].contains("Enabled"), "{shown:?}");
    assert_eq!(ok(&rt, &c, "T | project b"), vec![vec!["new".to_string()]]);
    // The viewer cannot change retention.
    let (code, msg) = exec(&rt, &c, VIEWER, ".alter table T policy retention softdelete = 1d").unwrap_err();
    assert!(code == "Forbidden" && msg.contains(VIEWER), "{msg}");
    // On open: what aged past the period while the cluster was closed is gone when it opens.
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let c = Cluster::open(dir.path()).unwrap();
    assert_eq!(count(&rt, &c, "T | count"), 0);
    // The JSON form and alter-merge; delete restores "keep forever".
    ok(&rt, &c, ".alter table T policy retention '{\"SoftDeletePeriod\": \"30.00:00:00\", \"Recoverability\": \"Disabled\"}'");
    ok(&rt, &c, ".alter-merge table T policy retention softdelete = 10d");
    let shown = ok(&rt, &c, ".show table T policy retention");
    assert!(shown[0][2].contains("10.00:00:00") && shown[0][2].contains("Disabled"), "{shown:?}");
    ok(&rt, &c, ".delete table T policy retention");
    assert_eq!(ok(&rt, &c, ".show table T policy retention")[0][2], "null");
    let (code, msg) = exec(&rt, &c, ADMIN, ".alter table T policy retention softdelete = 0s").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("positive"), "{msg}");
}

#[test]
fn rename_alter_merge_and_based_on() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".ingest inline into table T <| 1,x");
    // A column added to a table holding data: its old extents read it as null.
    ok(&rt, &c, ".alter-merge table T (c:real)");
    ok(&rt, &c, ".ingest inline into table T <| 2,y,2.5");
    assert_eq!(ok(&rt, &c, "T | order by a asc | project a, isnull(c)"), vec![vec!["1".to_string(), "true".to_string()], vec!["2".to_string(), "false".to_string()]]);
    let (code, msg) = exec(&rt, &c, ADMIN, ".alter-merge table T (c:string)").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("column 'c'"), "{msg}");
    let (code, _) = exec(&rt, &c, ADMIN, ".alter-merge table Nope (c:real)").unwrap_err();
    assert_eq!(code, "BadRequest");
    // based-on: the schema, no data.
    ok(&rt, &c, ".create table U based-on T");
    assert_eq!(ok(&rt, &c, "U | getschema | project ColumnName"), vec![vec!["a".to_string()], vec!["b".to_string()], vec!["c".to_string()]]);
    assert_eq!(count(&rt, &c, "U | count"), 0);
    // rename keeps the data and the roles; the old name is gone.
    ok(&rt, &c, ".rename table T to T2");
    assert_eq!(count(&rt, &c, "T2 | count"), 2);
    assert!(exec(&rt, &c, ADMIN, "T | count").is_err());
    let (code, _) = exec(&rt, &c, ADMIN, ".rename table T2 to U").unwrap_err();
    assert_eq!(code, "BadRequest", "a name in use");
    let (code, msg) = exec(&rt, &c, VIEWER, ".rename table T2 to T3").unwrap_err();
    assert!(code == "Forbidden" && msg.contains(VIEWER), "{msg}");
    // A Table Admin whose database role shows no metadata (an ingestor) learns nothing of the
    // database's other names.
    let owner = "aaduser=owner@contoso.com";
    ok(&rt, &c, &format!(".add database Db ingestors ('{owner}')"));
    ok(&rt, &c, &format!(".add table T2 admins ('{owner}')"));
    let (code, msg) = exec(&rt, &c, owner, ".rename table T2 to U").unwrap_err();
    assert!(code == "Forbidden" && msg.contains(owner) && !msg.contains("exists"), "{msg}");
    // A table a policy names is not renamed (the policy would fail closed).
    ok(&rt, &c, ".alter table T2 policy row_level_security enable \"T2 | where a > 1\"");
    let (code, msg) = exec(&rt, &c, ADMIN, ".rename table T2 to T3").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("row_level_security"), "{msg}");
}

#[test]
fn ingestion_mappings_by_reference_and_inline() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".alter-merge table T (src:string)");
    let created = ok(
        &rt,
        &c,
        r#".create table T ingestion csv mapping "ByPos" '[{"column":"a","Properties":{"Ordinal":"1"}},{"column":"b","Properties":{"Ordinal":"0"}},{"column":"src","Properties":{"ConstValue":"csv"}}]'"#,
    );
    assert_eq!((created[0][0].as_str(), created[0][1].as_str()), ("ByPos", "csv"));
    ok(&rt, &c, r#".create table T ingestion json mapping "ByPath" '[{"column":"a","Properties":{"Path":"$.n"}},{"column":"b","Properties":{"Path":"$.s"}}]'"#);
    assert_eq!(count(&rt, &c, ".show table T ingestion mappings | count"), 2);
    assert_eq!(count(&rt, &c, ".show table T ingestion csv mappings | count"), 1);
    ok(&rt, &c, ".ingest inline into table T with (format='csv', ingestionMappingReference='ByPos') <| hello,7");
    ok(&rt, &c, ".ingest inline into table T with (format='json', ingestionMappingReference='ByPath') <| {\"n\": 8, \"s\": \"json\", \"extra\": 1}");
    ok(&rt, &c, r#".ingest inline into table T with (format='csv', ingestionMapping='[{"column":"b","Properties":{"Ordinal":"0"}}]') <| only-b"#);
    assert_eq!(
        ok(&rt, &c, "T | order by b asc | project a, b, src"),
        vec![
            vec!["7".to_string(), "hello".to_string(), "csv".to_string()],
            vec!["8".to_string(), "json".to_string(), String::new()],
            vec![String::new(), "only-b".to_string(), String::new()],
        ]
    );
    // Errors: an unknown reference, a mapping naming a column the table lacks, a duplicate.
    let (code, msg) = exec(&rt, &c, ADMIN, ".ingest inline into table T with (ingestionMappingReference='Nope') <| 1").unwrap_err();
    assert!(code == "BadRequest" && msg.contains("Nope"), "{msg}");
    let (code, msg) = exec(&rt, &c, ADMIN, r#".create table T ingestion csv mapping "Bad" '[{"column":"zz","Properties":{"Ordinal":"0"}}]'"#).unwrap_err();
    assert!(code == "BadRequest" && msg.contains("zz"), "{msg}");
    let (code, _) = exec(&rt, &c, ADMIN, r#".create table T ingestion csv mapping "ByPos" '[{"column":"a","Properties":{"Ordinal":"0"}}]'"#).unwrap_err();
    assert_eq!(code, "BadRequest");
    ok(&rt, &c, r#".create-or-alter table T ingestion csv mapping "ByPos" '[{"column":"a","Properties":{"Ordinal":"0"}}]'"#);
    // The viewer may list but not change mappings.
    assert!(exec(&rt, &c, VIEWER, ".show table T ingestion mappings").is_ok());
    let (code, msg) = exec(&rt, &c, VIEWER, r#".drop table T ingestion csv mapping "ByPos""#).unwrap_err();
    assert!(code == "Forbidden" && msg.contains(VIEWER), "{msg}");
    ok(&rt, &c, r#".drop table T ingestion csv mapping "ByPos""#);
    assert_eq!(count(&rt, &c, ".show table T ingestion mappings | count"), 1);
}

#[test]
fn small_extents_merge_and_the_data_stays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    for i in 0..7 {
        ok(&rt, &c, &format!(".ingest inline into table T <| {i},v{i}"));
    }
    assert_eq!(count(&rt, &c, ".show table T extents | count"), 7, "below the merge threshold");
    ok(&rt, &c, ".ingest inline into table T <| 7,v7");
    let extents = ok(&rt, &c, ".show table T extents | project RowCount, MinCreatedOn, MaxCreatedOn");
    assert_eq!(extents.len(), 1, "eight small extents merged into one: {extents:?}");
    assert_eq!(extents[0][0], "8");
    assert!(extents[0][1] < extents[0][2], "the merged extent spans its sources' creation times: {extents:?}");
    assert_eq!(ok(&rt, &c, "T | summarize count(), sum(a), dcount(b)"), vec![vec!["8".to_string(), "28".to_string(), "8".to_string()]]);
    // Differently tagged extents merge only with their own kind.
    for i in 0..8 {
        ok(&rt, &c, &format!(".ingest inline into table T with (tags='[\"drop-by:x\"]') <| {i},t{i}"));
    }
    assert_eq!(count(&rt, &c, ".show table T extents where tags has 'drop-by:x' | count"), 1);
    assert_eq!(count(&rt, &c, ".show table T extents | count"), 2);
    assert_eq!(ok(&rt, &c, ".drop extents <| .show table T extents where tags has 'drop-by:x'").len(), 1);
    assert_eq!(count(&rt, &c, "T | count"), 8);
    // Reopened (nothing loaded at open): the same answers.
    drop(c);
    let c = Cluster::open(dir.path()).unwrap();
    assert_eq!(ok(&rt, &c, "T | summarize count(), sum(a), dcount(b)"), vec![vec!["8".to_string(), "28".to_string(), "8".to_string()]]);
}

#[test]
fn dropped_extent_files_outlive_readers_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".ingest inline into table T <| 1,x");
    // Another process's handle, planned over the version that has the extent.
    let other = Cluster::open(dir.path()).unwrap();
    assert_eq!(count(&rt, &other, "T | count"), 1);
    ok(&rt, &c, ".drop extents from T");
    let files = || std::fs::read_dir(dir.path().join("extents")).unwrap().count();
    assert_eq!(files(), 1, "the dropped extent's file is kept for the grace period");
    let meta: serde_json::Value = kustodian_runtime::storage::Storage::open(dir.path()).unwrap().load_metadata().unwrap().unwrap();
    assert_eq!(meta["retired"].as_array().map(Vec::len), Some(1), "and recorded as retired");
    assert_eq!(count(&rt, &other, "T | count"), 0, "the other handle sees the drop at its next request");
}

#[test]
fn explain_analyze_reports_what_a_selective_query_read_and_only_to_a_tables_admin() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    // Four extents with disjoint ranges of `a`: a filter on `a` reads one of them.
    for k in 0..4 {
        let rows: Vec<String> = (0..500).map(|i| format!("{},v{}", k * 1000 + i, i % 7)).collect();
        ok(&rt, &c, &format!(".ingest inline into table T <| {}", rows.join("\n")));
    }
    let opts = |who: &str| RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        ..Default::default()
    };
    let e = rt.block_on(c.explain_analyze("T | where a == 2042 | project b", &opts(ADMIN))).unwrap();
    let a = e.analysis.expect("an analysis");
    assert_eq!(a.rows, 1);
    assert!(a.row_groups_pruned >= 3, "{a:?}");
    assert!(a.bytes_scanned < a.bytes_in_tables / 2, "{a:?}");
    assert!(a.plan_with_metrics.contains("bytes_scanned"), "{}", a.plan_with_metrics);
    assert!(a.summary().contains("pruned by statistics"));
    // Without a policy the viewer may ask too.
    assert!(rt.block_on(c.explain_analyze("T | where a == 2042", &opts(VIEWER))).is_ok());
    // With one, the metrics would describe hidden rows: the table's admin only.
    ok(&rt, &c, ".alter table T policy row_level_security enable \"T | where b == 'v1'\"");
    let err = rt.block_on(c.explain_analyze("T | where a == 2042", &opts(VIEWER))).unwrap_err();
    assert_eq!(err.code().as_str(), "Forbidden");
    assert!(err.to_string().contains(VIEWER) && err.to_string().contains("Table Admin"), "{err}");
    assert!(rt.block_on(c.explain_analyze("T | where a == 2042", &opts(ADMIN))).is_ok());
    // A plain explain runs nothing and stays open to the viewer.
    assert!(rt.block_on(c.explain("T | where a == 2042", &opts(VIEWER))).unwrap().analysis.is_none());
}

#[test]
fn retention_applies_as_time_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, c) = setup(dir.path());
    ok(&rt, &c, ".ingest inline into table T <| 1,x");
    ok(&rt, &c, ".alter table T policy retention softdelete = 1s");
    assert_eq!(count(&rt, &c, "T | count"), 1, "fresh data is kept");
    assert!(rt.block_on(c.enforce_retention()).unwrap().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // What `kustodian serve` runs every minute.
    assert_eq!(rt.block_on(c.enforce_retention()).unwrap(), vec![("Db".to_string(), "T".to_string())]);
    assert_eq!(count(&rt, &c, "T | count"), 0);
    assert_eq!(exec(&rt, &c, VIEWER, "T | count").unwrap(), vec![vec!["0".to_string()]]);
}
