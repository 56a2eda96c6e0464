//! End-to-end: `kustodian parse` exit codes, output, and script splitting with positions
//! counted in the whole file.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{kustodian, text};

#[test]
fn parse_ok_prints_canonical_kql() {
    let out = kustodian(
        &[
            "parse",
            "-c",
            "StormEvents | where State == 'TEXAS' | take 10",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("StormEvents") && printed.contains("take"),
        "{printed}"
    );
    // Canonical text parses again to the same canonical text.
    let again = kustodian(&["parse", "-c", printed.trim_end()], "");
    assert_eq!(text(&again.stdout), printed);
}

#[test]
fn parse_json_prints_the_ast() {
    let out = kustodian(&["parse", "--json", "-c", "print 1"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ast: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(ast.is_object() || ast.is_array(), "{ast}");
}

#[test]
fn parse_error_exits_1_with_a_frame() {
    let out = kustodian(&["parse", "-c", "T | where"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error[SyntaxError]"), "{stderr}");
    assert!(
        stderr.contains("T | where"),
        "frame shows the line: {stderr}"
    );
    assert!(stderr.contains('^'), "frame has a caret: {stderr}");
}

#[test]
fn script_from_stdin_is_split_on_blank_lines() {
    let script = "// header comment only\n\nprint a = 1\n// a comment in the request\n| project a\n\n\n  \nprint b = ```\nx\n\ny```\n\nprint c = 3\n";
    let out = kustodian(&["parse", "--json", "-"], script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let documents: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("a stream of JSON documents");
    assert_eq!(
        documents.len(),
        3,
        "three requests, the multi-line string kept whole: {}",
        text(&out.stdout)
    );
    let out = kustodian(&["parse", "-"], script);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("project") && stdout.contains("3"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("header comment only"),
        "comment-only chunk dropped: {stdout}"
    );
}

#[test]
fn error_positions_count_from_the_start_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script.kql");
    std::fs::write(&path, "print 1\n\n// second\nprint 2\n\nprint 3\n| where\n")
        .expect("write script");
    let out = kustodian(&["parse", path.to_str().expect("utf-8 path")], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 7") || stderr.contains("7:"),
        "error on line 7 of the file: {stderr}"
    );
    assert_eq!(
        text(&out.stdout).matches("print").count(),
        2,
        "the good requests are still printed"
    );
}
