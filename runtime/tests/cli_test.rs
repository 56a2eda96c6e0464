//! End-to-end: `kustodian test` on the bundled sample's policy tests and on suites made here:
//! snapshots, expectations, `--accept`, `--filter`, `--junit`, `--coverage`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::text;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/sample")
}

fn kustodian_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kustodian")).args(args).current_dir(dir).output().expect("run kustodian")
}

/// A copy of the sample (scripts, data, policy tests) in a new temporary directory.
fn sample_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let target = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &target);
            } else {
                std::fs::copy(&p, &target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy(&sample(), &tmp.path().join("sample"));
    tmp
}

#[test]
fn the_sample_policy_tests_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let out = kustodian_in(&sample(), &["test", "tests", "--junit", junit.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("  PASS      own_sales.kql"), "{stdout}");
    assert!(stdout.contains("passed, 0 failed"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase name=\"card_masking.kql\""), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn a_changed_policy_fails_with_a_diff_until_accepted() {
    let tmp = sample_copy();
    let root = tmp.path().join("sample");
    // The card-masking policy now shows the last five digits.
    let security = root.join("security.kql");
    let changed = std::fs::read_to_string(&security).unwrap().replace("substring(CreditCardNumber, 12, 4)", "substring(CreditCardNumber, 11, 5)");
    std::fs::write(&security, changed).unwrap();
    let junit = tmp.path().join("junit.xml");
    let out = kustodian_in(&root, &["test", "tests", "--color", "never", "--junit", junit.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("  FAIL      card_masking.kql"), "{stdout}");
    assert!(stdout.contains("-│          1 ┆ Olivia Novak   ┆ ************4894 │"), "{stdout}");
    assert!(stdout.contains("+│          1 ┆ Olivia Novak   ┆ ************54894 │"), "{stdout}");
    assert!(stdout.contains("  PASS      own_sales.kql"), "{stdout}");
    assert!(text(&std::fs::read(&junit).unwrap()).contains("failures=\"1\""));
    // Coloured on request.
    let coloured = kustodian_in(&root, &["test", "tests", "--color", "always", "--filter", "card"]);
    assert!(text(&coloured.stdout).contains("\x1b[31m-"), "{}", text(&coloured.stdout));

    let accepted = kustodian_in(&root, &["test", "tests", "--accept"]);
    let stdout = text(&accepted.stdout);
    assert_eq!(accepted.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ACCEPTED  card_masking.kql"), "{stdout}");
    let snap = std::fs::read_to_string(root.join("tests/card_masking.snap")).unwrap();
    assert!(snap.contains("************54894"), "{snap}");
    let again = kustodian_in(&root, &["test", "tests"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

/// Writes a suite of one table whose policy has an `iff` on identity, and returns its directory.
fn iff_suite(dir: &Path) -> PathBuf {
    let suite = dir.join("suite");
    std::fs::create_dir_all(&suite).unwrap();
    std::fs::write(
        suite.join("setup.kql"),
        "// database: Db\n\
         .create table Notes (Owner:string, Text:string)\n\n\
         .ingest inline into table Notes <|\n\
         aaduser=ann@x.com,hello\n\
         aaduser=ben@x.com,bye\n\n\
         .add database Db viewers ('aaduser=ann@x.com', 'aaduser=ben@x.com', 'aaduser=cid@x.com')\n\n\
         .alter table Notes policy row_level_security enable \"Notes | extend Text = iff(Owner =~ current_principal(), Text, '***') | where Owner != 'aaduser=nobody'\"\n",
    )
    .unwrap();
    std::fs::write(suite.join("mine.kql"), "// as: aaduser=ann@x.com\n// expect: rows 2\nNotes | project Owner, Text\n").unwrap();
    suite
}

#[test]
fn coverage_lists_the_branch_no_case_took_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = iff_suite(tmp.path());
    let out = kustodian_in(tmp.path(), &["test", "suite", "--accept", "--coverage"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("exercised by mine.kql (aaduser=ann@x.com)"), "{stdout}");
    // ann sees her note and ben's masked one: the iff went both ways over her rows.
    assert!(stdout.contains("[ok] suite/setup.kql:10:80  iff condition `Owner =~ current_principal()`"), "{stdout}");
    // The where predicate does not depend on identity: not a branch.
    assert!(!stdout.contains("where predicate"), "{stdout}");
    assert!(stdout.contains("1 of 1 branches taken both ways"), "{stdout}");

    // A policy whose only identity branch is a membership test no case made true.
    let setup = std::fs::read_to_string(suite.join("setup.kql")).unwrap().replace(
        "iff(Owner =~ current_principal(), Text, '***')",
        "iff(current_principal_is_member_of('aadgroup=editors@x.com'), Text, '***')",
    );
    std::fs::write(suite.join("setup.kql"), setup).unwrap();
    let out = kustodian_in(tmp.path(), &["test", "suite", "--accept", "--coverage"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("0 of 1 branches taken both ways"), "{stdout}");
    assert!(
        stdout.contains("uncovered branches:\n  suite/setup.kql:10:80: current_principal_is_member_of `current_principal_is_member_of('aadgroup=editors@x.com')` of the policy of [Db].[Notes]: never true"),
        "{stdout}"
    );
}

#[test]
fn expectations_fail_even_when_accepted_and_name_the_principal() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = iff_suite(tmp.path());
    std::fs::write(suite.join("wrong.kql"), "// as: aaduser=cid@x.com\n// expect: rows 5\n// as: aaduser=ben@x.com\n// expect: error Forbidden\nNotes\n").unwrap();
    let out = kustodian_in(tmp.path(), &["test", "suite", "--accept", "--filter", "wrong"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("as aaduser=cid@x.com: expected 5 rows, got 2"), "{stdout}");
    assert!(stdout.contains("as aaduser=ben@x.com: expected an error, got 2 rows"), "{stdout}");
    assert!(!stdout.contains("mine.kql"), "--filter runs only the matching case: {stdout}");
    assert!(stdout.contains("1 case in 1 test directory: 0 passed, 1 failed"), "{stdout}");
}

#[test]
fn a_new_case_without_a_snapshot_fails_and_bad_input_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = iff_suite(tmp.path());
    let out = kustodian_in(tmp.path(), &["test", "suite"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("no snapshot yet (suite/mine.snap): run with --accept to write it"), "{stdout}");
    assert!(!suite.join("mine.snap").exists());

    std::fs::write(suite.join("typo.kql"), "// expcet: rows 1\nNotes\n").unwrap();
    let out = kustodian_in(tmp.path(), &["test", "suite/typo.kql"]);
    assert!(text(&out.stdout).contains("typo.kql:1: unknown directive 'expcet'"), "{}", text(&out.stdout));

    std::fs::write(suite.join("setup.kql"), "// database: Db\n.create table Notes (Owner:string)\n\n.ingest into table Notes ('missing.csv')\n").unwrap();
    let out = kustodian_in(tmp.path(), &["test", "suite"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("setup failed: ") && stdout.contains("suite/setup.kql:4:1: setup request failed"), "{stdout}");

    let out = kustodian_in(tmp.path(), &["test", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read 'nowhere'"), "{}", text(&out.stderr));
}
