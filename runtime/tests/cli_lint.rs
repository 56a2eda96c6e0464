//! End-to-end: `kustodian lint` finds nothing on the bundled sample and each rule's bug in the
//! deliberately broken copies of `corpus/lint`; text, JSON and SARIF; only a Database Admin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::text;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lint(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kustodian")).arg("lint").args(args).current_dir(root()).output().expect("run kustodian")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn the_sample_lints_clean() {
    let out = lint(&[]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout), "no findings\n");
    let sarif = json(&lint(&["--format", "sarif"]));
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 0);
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len(), 8);
}

#[test]
fn each_broken_copy_shows_its_rule_and_nothing_else() {
    let dir = root().join("corpus/lint");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "kql") {
            continue;
        }
        let script = std::fs::read_to_string(&path).unwrap();
        let want: BTreeSet<String> = script
            .lines()
            .find_map(|l| l.strip_prefix("// finds:"))
            .unwrap_or_else(|| panic!("{}: no `// finds:` line", path.display()))
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let rel = format!("corpus/lint/{}", path.file_name().unwrap().to_str().unwrap());
        let out = lint(&["--script", &rel, "--directory", "corpus/sample/directory.json", "--format", "json"]);
        assert_eq!(out.status.code(), Some(1), "{rel}: {}", text(&out.stderr));
        let report = json(&out);
        let findings = report["findings"].as_array().unwrap();
        let got: BTreeSet<String> = findings.iter().map(|f| f["code"].as_str().unwrap().to_string()).collect();
        assert_eq!(got, want, "{rel}: {report:#}");
        for f in findings {
            // Every finding points into the script that made the mistake.
            assert_eq!(f["file"], rel.as_str(), "{rel}: {f:#}");
            assert!(f["line"].as_u64().unwrap() > 5, "{rel}: {f:#}");
        }
        seen.extend(got);
    }
    let all: BTreeSet<String> = (1..=8).map(|i| format!("KL00{i}")).collect();
    assert_eq!(seen, all, "every rule has a broken copy that shows it");
}

#[test]
fn text_findings_carry_a_caret_and_the_reason() {
    let out = lint(&["--script", "corpus/lint/kl004_case_sensitive_identity.kql"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("warning[KL004 case-sensitive-identity]: `AadUser == tostring("), "{stdout}");
    assert!(stdout.contains("--> corpus/lint/kl004_case_sensitive_identity.kql:9:143"), "{stdout}");
    assert!(stdout.contains("^^^^^ a case-sensitive comparison of a principal"), "{stdout}");
    assert!(stdout.contains("= why: Principals compare case-insensitively"), "{stdout}");
    assert!(stdout.ends_with("1 finding: 0 errors, 1 warning\n"), "{stdout}");
}

#[test]
fn only_a_database_admin_may_lint() {
    for who in ["aaduser=bob@contoso.com", "aaduser=dave@contoso.com"] {
        let out = lint(&["--as", who]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("Principal '{who}' is not authorized to lint database 'ContosoSales'")), "{stderr}");
        assert!(stderr.contains("Database Admin"), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing of the policies is shown: {}", text(&out.stdout));
    }
}
