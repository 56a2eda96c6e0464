//! End-to-end: `run`, `explain`, `shell` and `init` against the engine.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use serde_json::{Value, json};

mod common;
use common::{kustodian, text};

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn run_prints_a_table() {
    let out = kustodian(&["run", "-c", "print Greeting = 'hello', n = 42"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for part in ["Greeting", "n", "hello", "42"] {
        assert!(stdout.contains(part), "{part} in {stdout}");
    }
}

#[test]
fn run_json_encodes_values_as_kusto_v2() {
    let query = "print l = 3, r = real(nan), s = 'x', b = true, dt = datetime(2024-01-02 03:04:05.1234567), \
                 ts = 1d + 2h + 3m + 4s + 500ms, d = dynamic({\"a\": [1, 2]}), n = long(null)";
    let out = kustodian(&["run", "--format", "json", "-c", query], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["columns"],
        json!([
            {"name": "l", "type": "long"}, {"name": "r", "type": "real"}, {"name": "s", "type": "string"},
            {"name": "b", "type": "bool"}, {"name": "dt", "type": "datetime"}, {"name": "ts", "type": "timespan"},
            {"name": "d", "type": "dynamic"}, {"name": "n", "type": "long"}
        ])
    );
    assert_eq!(
        lines[0]["rows"],
        json!([[3, "NaN", "x", true, "2024-01-02T03:04:05.1234567Z", "1.02:03:04.5000000", {"a": [1, 2]}, null]])
    );
    assert!(lines[0].get("elapsed_ms").is_none());
}

#[test]
fn run_stops_at_the_first_failure_unless_keep_going() {
    let script = "print a = 1\n\nprint b = no_such_column\n\nprint c = 3\n";
    let out = kustodian(&["run", "--format", "json", "-"], script);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["rows"], json!([[1]]));
    assert_eq!(lines[1]["error"]["code"], "SemanticError");
    let message = lines[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 3"),
        "position counted in the script: {message}"
    );

    let out = kustodian(&["run", "--format", "json", "--keep-going", "-"], script);
    assert_eq!(out.status.code(), Some(1), "a failure still fails the run");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["rows"], json!([[3]]));
}

#[test]
fn run_table_errors_go_to_stderr_with_a_frame() {
    let out = kustodian(&["run", "-c", "print 1\n\n\nprint x = no_such_column"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error[SemanticError]"), "{stderr}");
    assert!(stderr.contains(" --> script:4:11\n"), "{stderr}");
    assert!(stderr.contains("^^^"), "{stderr}");
}

#[test]
fn syntax_errors_have_their_code() {
    let out = kustodian(
        &["run", "--format", "json", "-c", "print 1\n\nT | where"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines[1]["error"]["code"], "SyntaxError");
}

#[test]
fn unsupported_kusto_commands_have_their_own_code() {
    let script = ".show diagnostics\n\n.clear table StormEvents data\n\n.show extents\n\nprint 1";
    let out = kustodian(
        &["run", "--format", "json", "--keep-going", "-c", script],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{}", text(&out.stdout));
    assert_eq!(lines[0]["error"]["code"], "SemanticError");
    assert_eq!(
        lines[0]["error"]["message"],
        "'.show diagnostics' is a Kusto command that Kustodian does not support (line 1, column 1)"
    );
    assert_eq!(lines[1]["error"]["code"], "SemanticError");
    assert_eq!(
        lines[1]["error"]["message"],
        "'.clear table data' is a Kusto command that Kustodian does not support (line 3, column 1)"
    );
    // Not a command of Kusto's either (the official parser rejects it).
    assert_eq!(lines[2]["error"]["code"], "SyntaxError");
    assert_eq!(lines[3]["rows"], json!([[1]]));
    // In table mode, the message once and the frame under it.
    let out = kustodian(
        &["run", "-c", "print 1\n\n.clear table StormEvents data"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error[SemanticError]: '.clear table data' is a Kusto command that Kustodian does not support\n  \
         --> script:3:1\n  |\n3 | .clear table StormEvents data\n  | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    );
}

#[test]
fn csv_and_timing() {
    let out = kustodian(
        &[
            "run",
            "--format",
            "csv",
            "--timing",
            "-c",
            "print a = 'x,y', b = 2\n\nprint c = 3",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a,b\n\"x,y\",2\n\nc\n3\n");
    assert_eq!(text(&out.stderr).matches("elapsed: ").count(), 2);

    let out = kustodian(
        &["run", "--format", "json", "--timing", "-c", "print 1"],
        "",
    );
    let lines = json_lines(&out);
    assert!(lines[0]["elapsed_ms"].is_number(), "{lines:?}");
}

#[test]
fn explain_prints_its_sections() {
    let out = kustodian(&["explain", "-c", "print 1"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut at = 0;
    for section in [
        "Effective query:",
        "Policies applied:",
        "Logical plan:",
        "Physical plan:",
    ] {
        let found = stdout[at..].find(section).map(|i| i + at);
        assert!(found.is_some(), "{section} after byte {at} in {stdout}");
        at = found.unwrap_or(at);
    }
}

#[test]
fn shell_reads_requests_from_a_pipe() {
    let out = kustodian(
        &["shell"],
        "help\nprint a = 1\n\nprint b = 2;;\n#timing\nprint c =\n  3\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for column in ["a", "b", "c"] {
        assert!(
            stdout.contains(&format!(" {column} ")),
            "{column} in {stdout}"
        );
    }
    assert!(stdout.contains("#db NAME"), "help text: {stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("elapsed: "),
        "timing after #timing: {stderr}"
    );
}

#[test]
fn init_then_reopen_and_run_as_other_principals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("cluster");
    let data = data.to_str().expect("utf-8 path");
    let admin = "aaduser=admin@contoso.com";
    let out = kustodian(&["init", "--data", data, "--admin", admin], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(admin));

    let setup = ".create database Sales\n\n.create table Orders (Id:long, Region:string)\n\n\
                 .ingest inline into table Orders <| 1,west\n2,east\n";
    let out = kustodian(
        &["run", "--data", data, "--db", "Sales", "--keep-going", "-"],
        setup,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A new process sees the data.
    let out = kustodian(
        &[
            "run",
            "--data",
            data,
            "--db",
            "Sales",
            "--format",
            "json",
            "-c",
            "Orders | count",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out)[0]["rows"], json!([[2]]));

    // A principal with no role is refused, and told why.
    let out = kustodian(
        &[
            "run",
            "--data",
            data,
            "--db",
            "Sales",
            "--as",
            "aaduser=eve@contoso.com",
            "--format",
            "json",
            "-c",
            "Orders",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let error = &json_lines(&out)[0]["error"];
    assert_eq!(error["code"], "Forbidden");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("eve@contoso.com"),
        "{error}"
    );

    // init refuses an existing cluster.
    let out = kustodian(&["init", "--data", data, "--admin", admin], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn csv_and_json_results_stream_across_batches() {
    // 100,000 rows come out of the engine in many batches; every row is written once, in order.
    let query = "range x from 1 to 100000 step 1 | extend y = x * 2";
    let out = kustodian(&["run", "--format", "csv", "-c", query], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 100_001);
    assert_eq!(lines[0], "x,y");
    assert_eq!(lines[1], "1,2");
    assert_eq!(lines[100_000], "100000,200000");
    let out = kustodian(&["run", "--format", "json", "--timing", "-c", query], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let rows = lines[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 100_000);
    assert!(rows.iter().enumerate().all(|(i, r)| r == &json!([i + 1, 2 * (i + 1)])));
    assert!(lines[0]["elapsed_ms"].as_f64().is_some());
    // An empty result still has its header (CSV) and columns (JSON).
    let out = kustodian(&["run", "--format", "csv", "-c", "range x from 1 to 0 step 1"], "");
    assert_eq!(text(&out.stdout), "x\n");
    let out = kustodian(&["run", "--format", "json", "-c", "range x from 1 to 0 step 1"], "");
    assert_eq!(json_lines(&out)[0], json!({"columns": [{"name": "x", "type": "long"}], "rows": []}));
}

#[test]
fn union_star_reads_every_table_the_caller_may_read() {
    let tables = |out: &Output| -> Value {
        assert!(out.status.success(), "{}", text(&out.stderr));
        json_lines(out).last().expect("a result")["rows"].clone()
    };
    let query = "union withsource=T * | distinct T | sort by T asc";
    // The admin (an unrestricted viewer) reads all six tables; a materialized view is no table.
    let script = format!(
        ".create materialized-view MV on table Products {{ Products | summarize N = count() by Category }}\n\n{query}\n"
    );
    let out = kustodian(&["run", "--format", "json", "-"], &script);
    assert_eq!(
        tables(&out),
        json!([["Customers"], ["Products"], ["Sales"], ["SalesPeople"], ["Secrets"], ["UserRegions"]])
    );
    // A viewer without the unrestricted viewer role: the restricted view access table is left
    // out, not a reason to refuse the whole query.
    let out = kustodian(&["run", "--format", "json", "--as", "aaduser=alice@contoso.com", "-c", query], "");
    assert_eq!(tables(&out), json!([["Customers"], ["Products"], ["Sales"], ["SalesPeople"], ["UserRegions"]]));
    // Nor does it reach what a restrict statement hides.
    let restricted = format!("restrict access to (Sales, Products); {query}");
    let out = kustodian(&["run", "--format", "json", "-c", &restricted], "");
    assert_eq!(tables(&out), json!([["Products"], ["Sales"]]));
    // The effective query lists the tables the pattern stood for, policies substituted.
    let out = kustodian(&["explain", "--as", "aaduser=alice@contoso.com", "-c", "union * | count"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "union __rls_ContosoSales_Customers, Products, __rls_ContosoSales_Sales, \
             __rls_ContosoSales_SalesPeople, UserRegions | count"
        ),
        "{stdout}"
    );
}

#[test]
fn ingest_inline_data_starts_at_its_first_character() {
    // Spaces and line breaks right after `<|` are not data (not `" a"`, not a record `" "`);
    // spaces that start a later line or a later field are; the last line break ends a record.
    let script = ".create table S (s:string, t:string)\n\n\
                  .ingest inline into table S <| a, b\n  c,d\n\n\
                  .ingest inline into table S <| \ne,f\n\n\
                  S | extend n = strlen(s) | sort by t asc\n";
    let out = kustodian(&["run", "--format", "json", "-"], script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines[1]["rows"][0][1], json!(2), "two records: {:?}", lines[1]);
    assert_eq!(lines[2]["rows"][0][1], json!(1), "one record: {:?}", lines[2]);
    assert_eq!(lines[3]["rows"], json!([["a", " b", 1], ["  c", "d", 3], ["e", "f", 1]]));
}
