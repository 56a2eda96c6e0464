//! `kustodian gen` and `kustodian overhead` end to end, as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{kustodian, text};
use serde_json::Value;

fn ok(args: &[&str]) -> String {
    let out = kustodian(args, "");
    assert!(out.status.success(), "{args:?} failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn json_rows(args: &[&str]) -> Vec<Value> {
    let out = ok(args);
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    v["rows"].as_array().unwrap().clone()
}

#[test]
fn gen_is_deterministic_and_csv_equals_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    ok(&["gen", "--rows", "70000", "--out", a.to_str().unwrap()]);
    ok(&["gen", "--rows", "70000", "--out", b.to_str().unwrap(), "--format", "csv"]);
    let csv_a = std::fs::read(a.join("T.csv")).unwrap();
    assert_eq!(csv_a, std::fs::read(b.join("T.csv")).unwrap(), "same seed, same rows");
    assert!(!b.join("T.parquet").exists());
    let other = dir.path().join("c");
    ok(&["gen", "--rows", "70000", "--out", other.to_str().unwrap(), "--seed", "7", "--format", "csv"]);
    assert_ne!(csv_a, std::fs::read(other.join("T.csv")).unwrap(), "another seed, other rows");

    // Load the Parquet (ingest.kql) and the CSV into one cluster: the same table twice.
    let cluster = dir.path().join("cluster");
    let c = cluster.to_str().unwrap();
    ok(&["init", "--data", c, "--admin", "aaduser=admin@contoso.com"]);
    ok(&["run", "--data", c, "-c", ".create database Bench"]);
    let root = dir.path().to_str().unwrap();
    ok(&["run", "--data", c, "--db", "Bench", "--ingest-root", root, a.join("ingest.kql").to_str().unwrap()]);
    // Outside the ingestion roots (the working directory by default), the same script is refused.
    let refused = kustodian(&["run", "--data", c, "--db", "Bench", a.join("ingest.kql").to_str().unwrap()], "");
    assert!(!refused.status.success());
    assert!(text(&refused.stdout).contains("is not allowed") || text(&refused.stderr).contains("is not allowed"));
    let csv_path = a.join("T.csv");
    ok(&[
        "run", "--data", c, "--db", "Bench", "--ingest-root", root, "-c",
        &format!(
            ".create table C (Id: long, Region: string, Owner: string, Amount: real, Ts: datetime)\n\n\
             .ingest into table C ('{}') with (format='csv', ignoreFirstRecord=true)",
            csv_path.display()
        ),
    ]);
    let summary = "| summarize n = count(), regions = dcount(Region), owners = dcount(Owner), total = round(sum(Amount), 2), \
                   earliest = min(Ts), latest = max(Ts), ids = sum(Id)";
    let t = json_rows(&["run", "--data", c, "--db", "Bench", "--format", "json", "-c", &format!("T {summary}")]);
    let csv = json_rows(&["run", "--data", c, "--db", "Bench", "--format", "json", "-c", &format!("C {summary}")]);
    assert_eq!(t, csv);
    let row = t[0].as_array().unwrap();
    assert_eq!(row[0], 70000);
    assert_eq!(row[1], 10);
    assert_eq!(row[2], 1000);
    assert_eq!(row[6], 70000_i64 * 69999 / 2);
    assert!(row[4].as_str().unwrap().starts_with("2026-"), "{row:?}");
    let regions = json_rows(&["run", "--data", c, "--db", "Bench", "--format", "json", "-c", "UserRegions | summarize count(), dcount(User)"]);
    assert_eq!(regions, vec![serde_json::json!([2000, 1000])]);
}

fn overhead_json(args: &[&str]) -> Value {
    let mut all = vec!["overhead", "--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(ok(&all).trim()).unwrap()
}

#[test]
fn overhead_on_the_sample_reports_both_variants() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("overhead.svg");
    let q = "Sales | project SalesPersonAadUser, Amount";
    let alice = overhead_json(&[
        "--as", "aaduser=alice@contoso.com", "--by", "aaduser=admin@contoso.com", "--runs", "3", "--sizes", "50,100",
        "--chart", chart.to_str().unwrap(), "-c", q,
    ]);
    assert_eq!(alice["principal"], "aaduser=alice@contoso.com");
    let policies = alice["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0]["table"], "[ContosoSales].[Sales]");
    let ms = alice["measurements"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0]["fraction"], 0.5);
    assert_eq!(ms[1]["table_rows"], 400);
    assert_eq!(ms[1]["without_policies"]["rows"], 400);
    assert_eq!(ms[1]["with_policies"]["rows"], 73, "alice sees her own 73 sales");
    assert_eq!(ms[0]["without_policies"]["rows"], 200);
    assert!(ms[1]["ratio"].as_f64().unwrap() > 0.0);
    assert!(ms[1]["with_policies"]["median_ms"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("with policies"), "{}", &svg[..svg.len().min(200)]);

    // Another principal, another policy outcome: a manager sees every row.
    let dave = overhead_json(&[
        "--as", "aaduser=dave@contoso.com", "--group", "aadgroup=sales_managers@contoso.com", "--by", "aaduser=admin@contoso.com",
        "--runs", "1", "-c", q,
    ]);
    assert_eq!(dave["measurements"][0]["with_policies"]["rows"], 400);

    // A query that reaches no policy still measures, and says so.
    let table = ok(&["overhead", "--as", "aaduser=alice@contoso.com", "--runs", "1", "-c", "print 1"]);
    assert!(table.contains("none apply"), "{table}");
    assert!(table.contains("with policies") && table.contains("without policies"), "{table}");
}

#[test]
fn the_baseline_needs_table_admin_and_never_shows_rows() {
    // bob is a viewer, not an admin of Sales: he may not run the query without its policy.
    let out = kustodian(
        &["overhead", "--as", "aaduser=alice@contoso.com", "--by", "aaduser=bob@contoso.com", "-c", "Sales | count"],
        "",
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing is measured: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("aaduser=bob@contoso.com") && err.contains("Table Admin") && err.contains("'Sales'"), "{err}");

    // Without --by there is no baseline at all: no default measurer sees what alice's policy hides.
    let out = kustodian(&["overhead", "--as", "aaduser=alice@contoso.com", "-c", "Sales | count"], "");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing is measured: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("--by"), "{}", text(&out.stderr));

    // The measured principal must be allowed to run the query at all.
    let out = kustodian(&["overhead", "--as", "aaduser=nobody@contoso.com", "-c", "Sales | count"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("aaduser=nobody@contoso.com"), "{}", text(&out.stderr));
    // Restricted view access holds for the principal: no baseline around it.
    let out = kustodian(&["overhead", "--as", "aaduser=alice@contoso.com", "-c", "Secrets | count"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("restricted view access"), "{}", text(&out.stderr));

    // --as is required, one query only, and commands are not measured.
    for args in [
        &["overhead", "-c", "Sales | count"][..],
        &["overhead", "--as", "aaduser=alice@contoso.com", "-c", "Sales | count\n\nSales | take 1"],
        &["overhead", "--as", "aaduser=alice@contoso.com", "-c", ".show tables"],
        &["overhead", "--as", "aaduser=alice@contoso.com", "--runs", "0", "-c", "Sales"],
        &["overhead", "--as", "aaduser=alice@contoso.com", "--sizes", "0", "-c", "Sales"],
    ] {
        let out = kustodian(args, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn overhead_on_generated_data_with_an_own_rows_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&["gen", "--rows", "20000", "--out", data.to_str().unwrap(), "--format", "parquet"]);
    let cluster = dir.path().join("cluster");
    let c = cluster.to_str().unwrap();
    ok(&["init", "--data", c, "--admin", "aaduser=admin@contoso.com"]);
    ok(&["run", "--data", c, "-c", ".create database Bench"]);
    let root = dir.path().to_str().unwrap();
    ok(&["run", "--data", c, "--db", "Bench", "--ingest-root", root, data.join("ingest.kql").to_str().unwrap()]);
    let q = "T | where Amount > 500 | count";
    // Before the policy: every row (the policy does not exempt admins).
    let all = json_rows(&["run", "--data", c, "--db", "Bench", "--format", "json", "-c", q])[0][0].as_i64().unwrap();
    ok(&[
        "run", "--data", c, "--db", "Bench", "-c",
        ".add database Bench viewers ('aaduser=user0042@contoso.com', 'aaduser=user0007@contoso.com')\n\n\
         .alter table T policy row_level_security enable \"T | where Owner == current_principal()\"",
    ]);
    let mut counts = Vec::new();
    for user in ["aaduser=user0042@contoso.com", "aaduser=user0007@contoso.com"] {
        let r = overhead_json(&["--data", c, "--db", "Bench", "--as", user, "--by", "aaduser=admin@contoso.com", "--runs", "2", "-c", q]);
        assert_eq!(r["policies"][0]["table"], "[Bench].[T]");
        assert_eq!(r["measurements"][0]["table_rows"], 20000);
        // `count` returns one row either way; the rows themselves never appear in the report.
        assert_eq!(r["measurements"][0]["with_policies"]["rows"], 1);
        let own = json_rows(&["run", "--data", c, "--db", "Bench", "--as", user, "--format", "json", "-c", q]);
        counts.push(own[0][0].as_i64().unwrap());
    }
    assert!(counts.iter().all(|n| *n > 0 && *n < all / 100), "{counts:?} of {all}");
    assert_ne!(counts[0], counts[1]);
}
