//! Runs the shared parse corpus: every `corpus/parse/ok` case parses and round-trips through
//! `Display`; every `corpus/parse/err` case is rejected with a positioned error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kustodian_parser::parse;

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/parse")
        .join(dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "kql"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn ok_cases_parse_and_round_trip() {
    let mut failures = Vec::new();
    let files = cases("ok");
    for path in &files {
        let text = read(path);
        match parse(&text) {
            Err(e) => failures.push(format!("{}: {}\n{}", path.display(), e, e.frame(&text))),
            Ok(ast) => {
                let printed = ast.to_string();
                match parse(&printed) {
                    Ok(again) if again == ast => {}
                    Ok(again) => failures.push(format!(
                        "{}: round trip changed the AST\n  printed: {printed}\n  reprinted: {again}",
                        path.display()
                    )),
                    Err(e) => failures.push(format!(
                        "{}: printed text does not parse: {e}\n  printed: {printed}",
                        path.display()
                    )),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} ok cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn err_cases_are_rejected() {
    let mut failures = Vec::new();
    let files = cases("err");
    for path in &files {
        let text = read(path);
        match parse(&text) {
            Ok(ast) => failures.push(format!("{}: parsed but should fail: {ast}", path.display())),
            Err(e) => {
                let shown = e.to_string();
                if !shown.contains(&format!("line {}, column {}", e.line, e.column)) {
                    failures.push(format!("{}: error lacks position: {shown}", path.display()));
                }
                if e.span.end > text.len() || e.span.start > e.span.end {
                    failures.push(format!("{}: bad span {:?}", path.display(), e.span));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} err cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
