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

#[test]
fn syntax_errors_print_their_message_once() {
    let out = kustodian(&["parse", "-c", "T | where x by"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error[SyntaxError]: unexpected 'by'\n  --> script:1:13\n  |\n1 | T | where x by\n  |             ^^ expected one of: '|', ';', 'or'\n"
    );
}

#[test]
fn kusto_commands_kustodian_lacks_are_named_not_syntax_errors() {
    for (command, name) in [
        (".clear table T data", ".clear table data"),
        (".alter table T docstring \"x\"", ".alter table docstring"),
        (".show cluster", ".show cluster"),
        (".show diagnostics", ".show diagnostics"),
        (".show queries", ".show queries"),
        (".show commands", ".show commands"),
    ] {
        let out = kustodian(&["parse", "-c", command], "");
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "error[SemanticError]: '{name}' is a Kusto command that Kustodian does not support"
            ),
            "{command}: {stderr}"
        );
        assert_eq!(
            stderr.matches("Kustodian does not support").count(),
            1,
            "{stderr}"
        );
        assert!(stderr.contains(&format!("1 | {command}\n")), "{stderr}");
    }
    // Text that is no Kusto command stays a syntax error.
    for command in [
        ".show extents",
        ".clear table T",
        ".show table db.T extents",
    ] {
        let out = kustodian(&["parse", "-c", command], "");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error[SyntaxError]: "),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn frames_of_huge_one_line_requests_stay_small() {
    // About 9 MB on one line, the error at its end: the frame shows a window around it.
    let script = format!("print s = '{}' by\n", "x".repeat(9_000_000));
    for args in [&["parse", "-"][..], &["run", "-"]] {
        let out = kustodian(args, &script);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.len() < 1_000,
            "{args:?}: {} bytes of stderr",
            stderr.len()
        );
        assert!(
            stderr
                .starts_with("error[SyntaxError]: unexpected 'by'\n  --> script:1:9000014\n"),
            "{stderr}"
        );
        assert!(stderr.contains("…xxx"), "{stderr}");
    }
}
