//! Differential parse test against the official Kusto parser (`shared/tools/kql-oracle`):
//! every `corpus/parse/ok` case must be accepted by it, every `corpus/parse/err` case rejected,
//! `kustodian_parser::parse` must give the same verdict on every case, and the canonical KQL
//! that kustodian prints for every ok case must be accepted by the official parser as well.
//!
//! The oracle is a Node.js wrapper around the npm package `@kusto/language-service-next`; it
//! installs that package on first use. All cases go to ONE oracle process, one JSON-encoded
//! string per stdin line, one JSON verdict (`syntax_ok`) per stdout line.
//!
//! When node, npm or the oracle script is missing (or the npm install fails), the test FAILS
//! if the environment variable `CI` is set, and otherwise prints a loud warning and returns
//! early (passing), so a laptop without node can still run the rest of the suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIN_OK_CASES: usize = 330;
const MIN_ERR_CASES: usize = 60;

/// Exit code of `kql-oracle` when `npm install` of the language service failed.
const ORACLE_INSTALL_FAILED: i32 = 3;

fn oracle_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/kql-oracle/kql-oracle")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/parse")
}

struct Case {
    /// `ok/<file>` or `err/<file>`
    name: String,
    text: String,
    expect_ok: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (kind, expect_ok) in [("ok", true), ("err", false)] {
        let dir = corpus_dir().join(kind);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read corpus directory {}: {e}", dir.display()));
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "kql"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let file = path.file_name().unwrap().to_string_lossy();
            out.push(Case {
                name: format!("{kind}/{file}"),
                text,
                expect_ok,
            });
        }
    }
    out
}

/// The oracle cannot run here: fail under CI, otherwise warn loudly and skip.
fn unavailable(reason: &str) {
    let message = format!(
        "kql-oracle unavailable: {reason}\n\
         The differential check against the official Kusto parser did NOT run.\n\
         Install node and npm (the oracle installs @kusto/language-service-next itself) \
         and make sure {} exists.",
        oracle_path().display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    // Written to the real stderr, not through `eprintln!`, so libtest's output capture does not
    // hide the warning of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED: {message}\n{bar}\n",
        bar = "!".repeat(78)
    );
}

fn tool_runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs all texts through one oracle process; `Err` means the oracle is unavailable.
fn oracle_verdicts(texts: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let oracle = oracle_path();
    if !oracle.is_file() {
        return Err(format!("{} not found", oracle.display()));
    }
    for tool in ["node", "npm"] {
        if !tool_runs(tool) {
            return Err(format!("`{tool} --version` does not run"));
        }
    }
    let mut input = String::new();
    for text in texts {
        input.push_str(&serde_json::to_string(text).unwrap());
        input.push('\n');
    }
    let mut child = Command::new(&oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", oracle.display()))?;
    // Write from a thread: the oracle answers while it reads, so writing everything before
    // reading could fill both pipes and deadlock.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("oracle failed: {e}"))?;
    writer
        .join()
        .unwrap()
        .map_err(|e| format!("cannot write to the oracle: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(ORACLE_INSTALL_FAILED) {
        return Err(format!("npm install failed: {stderr}"));
    }
    // Exit code 1 only means "some text has an error", which the err cases guarantee.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdicts: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("oracle printed a non-JSON line ({e}): {line}"))
        })
        .collect();
    assert_eq!(
        verdicts.len(),
        texts.len(),
        "oracle returned {} verdicts for {} cases (exit {:?}); stderr:\n{stderr}",
        verdicts.len(),
        texts.len(),
        output.status.code()
    );
    Ok(verdicts)
}

/// Short, human-readable summary of the oracle's syntax diagnostics for one case.
fn oracle_messages(verdict: &serde_json::Value, text: &str) -> String {
    let Some(diagnostics) = verdict["syntax"].as_array() else {
        return verdict["exception"].as_str().unwrap_or("").to_owned();
    };
    diagnostics
        .iter()
        .map(|d| {
            let start = d["start"].as_u64().unwrap_or(0) as usize;
            let near: String = text.get(start..).unwrap_or("").chars().take(20).collect();
            format!(
                "{} (at {start}: {near:?})",
                d["message"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Our parser's view of one case: `Ok(printed canonical KQL)`, `Err(error frame)`, or a panic.
enum Ours {
    Accepts(String),
    Rejects(String),
    Panics,
}

fn run_ours(text: &str) -> Ours {
    match catch_unwind(AssertUnwindSafe(|| {
        kustodian_parser::parse(text).map(|ast| ast.to_string())
    })) {
        Ok(Ok(printed)) => Ours::Accepts(printed),
        Ok(Err(e)) => Ours::Rejects(e.frame(text)),
        Err(_) => Ours::Panics,
    }
}

#[test]
fn corpus_agrees_with_official_parser() {
    let cases = cases();
    let n_ok = cases.iter().filter(|c| c.expect_ok).count();
    let n_err = cases.len() - n_ok;
    assert!(
        n_ok >= MIN_OK_CASES,
        "corpus/parse/ok has {n_ok} cases, expected {MIN_OK_CASES}+"
    );
    assert!(
        n_err >= MIN_ERR_CASES,
        "corpus/parse/err has {n_err} cases, expected {MIN_ERR_CASES}+"
    );

    let ours: Vec<Ours> = cases.iter().map(|c| run_ours(&c.text)).collect();
    // The oracle also checks our canonical printing of every ok case (one process for all).
    let printed: Vec<(usize, &str)> = cases
        .iter()
        .zip(&ours)
        .enumerate()
        .filter_map(|(i, (case, ours))| match ours {
            Ours::Accepts(printed) if case.expect_ok => Some((i, printed.as_str())),
            _ => None,
        })
        .collect();
    let texts: Vec<&str> = cases
        .iter()
        .map(|c| c.text.as_str())
        .chain(printed.iter().map(|(_, p)| *p))
        .collect();
    let verdicts = match oracle_verdicts(&texts) {
        Ok(verdicts) => verdicts,
        Err(reason) => return unavailable(&reason),
    };
    let (case_verdicts, printed_verdicts) = verdicts.split_at(cases.len());

    // 1. The corpus itself is right: the official parser accepts ok/ and rejects err/.
    let mut corpus_wrong = Vec::new();
    // 2. Our parser gives the official verdict on every case.
    let mut disagreements = Vec::new();
    for ((case, verdict), ours) in cases.iter().zip(case_verdicts).zip(&ours) {
        let official_ok = verdict["syntax_ok"]
            .as_bool()
            .unwrap_or_else(|| panic!("no syntax_ok for {}: {verdict}", case.name));
        if official_ok != case.expect_ok {
            corpus_wrong.push(format!(
                "{}: official parser says syntax_ok={official_ok} (kind {}) {}\n{}",
                case.name,
                verdict["kind"],
                oracle_messages(verdict, &case.text),
                case.text.trim_end()
            ));
        }
        let (agree, our_verdict) = match ours {
            Ours::Accepts(_) => (official_ok, "accepts".to_owned()),
            Ours::Rejects(frame) => (!official_ok, format!("rejects:\n{frame}")),
            Ours::Panics => (false, "PANICS".to_owned()),
        };
        if !agree {
            disagreements.push(format!(
                "{}: official parser {} ({}), kustodian {our_verdict}\n{}",
                case.name,
                if official_ok { "accepts" } else { "rejects" },
                oracle_messages(verdict, &case.text),
                case.text.trim_end()
            ));
        }
    }
    // 3. Our canonical printing of every ok case is valid KQL for the official parser too.
    let mut bad_printing = Vec::new();
    for ((i, printed), verdict) in printed.iter().zip(printed_verdicts) {
        if verdict["syntax_ok"].as_bool() != Some(true) {
            bad_printing.push(format!(
                "{}: official parser rejects our printed form ({})\n--- source ---\n{}\n--- printed ---\n{printed}",
                cases[*i].name,
                oracle_messages(verdict, printed),
                cases[*i].text.trim_end()
            ));
        }
    }

    let mut report = String::new();
    for (problems, what) in [
        (
            &corpus_wrong,
            "corpus case(s) are misfiled (fix the case or move it between ok/ and err/)",
        ),
        (
            &disagreements,
            "case(s) where kustodian_parser disagrees with the official parser",
        ),
        (
            &bad_printing,
            "ok case(s) whose printed KQL the official parser rejects",
        ),
    ] {
        if !problems.is_empty() {
            report.push_str(&format!(
                "{} {what}:\n\n{}\n\n",
                problems.len(),
                problems.join("\n\n")
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}
