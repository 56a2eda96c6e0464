//! Parse corpus runner: every `corpus/parse/ok` case parses, prints and re-parses to the same
//! AST (snapshots of the printed KQL and the JSON AST); every `corpus/parse/err` case is
//! rejected (snapshot of the error frame).
//!
//! Layout: one request per `.kql` file, named `<topic>_<nn>.kql`. Snapshots live in
//! `corpus/parse/snapshots/` next to the cases, named
//! `parse_corpus__{printed,ast,error}@<case>.kql.snap`; each snapshot's `description` holds the
//! case's source so a review shows input and output together. The AST snapshot is the serde
//! JSON without `span` fields and with bare `{"kind": ...}` wrappers collapsed (see
//! `ast_snapshot_value`); spans are covered by the error frames and the parser's unit tests.
//!
//! The pass/fail checks (`ok_cases_*`, `err_cases_*`) do not depend on snapshots and report every
//! failing case at once; the `*_snapshots` tests only compare snapshots (cases that fail to
//! parse are left to the checks, so a parser bug never writes a bogus snapshot).
//!
//! Run `INSTA_UPDATE=always cargo test -p kustodian-tests --test parse_corpus` (or
//! `cargo insta test --review`) after reading the new snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The corpus must never silently shrink: a missing or emptied directory is a failure, not a skip.
const MIN_OK_CASES: usize = 330;
const MIN_ERR_CASES: usize = 60;

/// Snapshot directory, relative to this file's directory (insta's rule for `snapshot_path`).
const SNAPSHOT_PATH: &str = "../../corpus/parse/snapshots";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/parse")
}

/// `(file name, source)` of every `*.kql` case in `corpus/parse/<kind>`, sorted by name.
fn cases(kind: &str) -> Vec<(String, String)> {
    let dir = corpus_dir().join(kind);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus directory {}: {e}", dir.display()));
    let mut out: Vec<(String, String)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "kql"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (name, text)
        })
        .collect();
    out.sort();
    out
}

fn read_case(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Pretty JSON of an AST for failure messages, in the snapshot form (no spans); a macro, so
/// this crate needs no direct `serde` dependency.
macro_rules! to_json {
    ($value:expr) => {
        serde_json::to_value($value)
            .map(ast_snapshot_value)
            .and_then(|json| serde_json::to_string_pretty(&json))
            .unwrap_or_else(|e| format!("<not serializable: {e}>"))
    };
}

/// The AST as JSON for snapshots, without the noise: `span` fields are dropped (spans never
/// affect AST equality) and a `{"kind": X}` wrapper left with no other field collapses to `X`.
fn ast_snapshot_value(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter(|(key, _)| key != "span")
                .map(|(key, value)| (key, ast_snapshot_value(value)))
                .collect();
            if map.len() == 1
                && let Some(kind) = map.remove("kind")
            {
                return kind;
            }
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(ast_snapshot_value).collect()),
        other => other,
    }
}

/// Runs `f`, turning a panic into an `Err` so one bad case does not hide the others.
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".to_owned())
    })
}

fn fail_with(failures: &[String], total: usize, what: &str) {
    if !failures.is_empty() {
        panic!(
            "{} of {total} {what}:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

#[test]
fn corpus_is_populated() {
    let ok = cases("ok");
    let err = cases("err");
    assert!(
        ok.len() >= MIN_OK_CASES,
        "corpus/parse/ok has {} cases, expected at least {MIN_OK_CASES}",
        ok.len()
    );
    assert!(
        err.len() >= MIN_ERR_CASES,
        "corpus/parse/err has {} cases, expected at least {MIN_ERR_CASES}",
        err.len()
    );
    for (name, text) in ok.iter().chain(err.iter()) {
        assert!(!text.trim().is_empty(), "{name} is empty");
    }
}

/// Every ok case parses, and `parse(print(ast)) == ast`; printing is also a fixed point
/// (`print(parse(print(ast))) == print(ast)`), so the canonical form is stable.
#[test]
fn ok_cases_parse_and_round_trip() {
    let all = cases("ok");
    assert!(
        all.len() >= MIN_OK_CASES,
        "corpus/parse/ok is missing or too small"
    );
    let mut failures = Vec::new();
    for (name, text) in &all {
        let outcome = no_panic(|| -> Result<(), String> {
            let ast = kustodian_parser::parse(text)
                .map_err(|e| format!("parse failed:\n{}", e.frame(text)))?;
            let printed = ast.to_string();
            let reparsed = kustodian_parser::parse(&printed).map_err(|e| {
                format!(
                    "printed KQL does not parse:\n--- printed ---\n{printed}\n--- error ---\n{}",
                    e.frame(&printed)
                )
            })?;
            if reparsed != ast {
                return Err(format!(
                    "round trip changed the AST\n--- printed ---\n{printed}\n--- original AST ---\n{}\n--- re-parsed AST ---\n{}",
                    to_json!(&ast),
                    to_json!(&reparsed)
                ));
            }
            let reprinted = reparsed.to_string();
            if reprinted != printed {
                return Err(format!(
                    "printing is not stable\n--- first print ---\n{printed}\n--- second print ---\n{reprinted}"
                ));
            }
            Ok(())
        });
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => failures.push(format!("=== ok/{name}\n{}\n{msg}", text.trim_end())),
            Err(panic) => failures.push(format!(
                "=== ok/{name}\n{}\nPANIC: {panic}",
                text.trim_end()
            )),
        }
    }
    fail_with(&failures, all.len(), "ok cases failed");
}

/// Every err case is rejected with an in-bounds position and a non-empty frame; the parser
/// never panics.
#[test]
fn err_cases_are_rejected() {
    let all = cases("err");
    assert!(
        all.len() >= MIN_ERR_CASES,
        "corpus/parse/err is missing or too small"
    );
    let mut failures = Vec::new();
    for (name, text) in &all {
        let outcome = no_panic(|| match kustodian_parser::parse(text) {
            Ok(ast) => Err(format!(
                "accepted invalid KQL; printed as:\n{ast}\n--- AST ---\n{}",
                to_json!(&ast)
            )),
            Err(e) => {
                // Positions are 1-based and inside the text (a trailing newline allows one
                // more line, where an "unexpected end" error may point).
                let lines = text.split('\n').count();
                if e.line == 0 || e.column == 0 || e.line > lines {
                    Err(format!(
                        "error position {}:{} is outside the text",
                        e.line, e.column
                    ))
                } else if e.frame(text).trim().is_empty() {
                    Err("error frame is empty".to_owned())
                } else {
                    Ok(())
                }
            }
        });
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => failures.push(format!("=== err/{name}\n{}\n{msg}", text.trim_end())),
            Err(panic) => failures.push(format!(
                "=== err/{name}\n{}\nPANIC: {panic}",
                text.trim_end()
            )),
        }
    }
    fail_with(&failures, all.len(), "err cases failed");
}

#[test]
fn ok_snapshots() {
    insta::glob!("../../corpus/parse", "ok/*.kql", |path| {
        let text = read_case(path);
        // Parse failures are reported by `ok_cases_parse_and_round_trip`.
        let Ok(ast) = no_panic(|| kustodian_parser::parse(&text)) else {
            return;
        };
        let Ok(ast) = ast else { return };
        insta::with_settings!({
            snapshot_path => SNAPSHOT_PATH,
            description => text.trim_end(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!("printed", ast.to_string());
            let json = serde_json::to_value(&ast)
                .unwrap_or_else(|e| panic!("AST does not serialize: {e}"));
            insta::assert_json_snapshot!("ast", ast_snapshot_value(json));
        });
    });
}

#[test]
fn err_snapshots() {
    insta::glob!("../../corpus/parse", "err/*.kql", |path| {
        let text = read_case(path);
        // Accepted cases and panics are reported by `err_cases_are_rejected`.
        let Ok(Err(error)) = no_panic(|| kustodian_parser::parse(&text)) else {
            return;
        };
        let frame = error.frame(&text);
        insta::with_settings!({
            snapshot_path => SNAPSHOT_PATH,
            description => text.trim_end(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!("error", frame);
        });
    });
}
