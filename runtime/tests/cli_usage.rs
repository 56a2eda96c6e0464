//! End-to-end: command-line usage errors exit 2, help and version exit 0, unreadable input exits 1.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn kustodian(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kustodian"))
        .args(args)
        .output()
        .expect("run kustodian")
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["run"],
        &["run", "-c", "print 1", "script.kql"],
        &["run", "--group", "g", "-c", "print 1"],
        &["run", "--format", "xml", "-c", "print 1"],
        &["run", "--set", "=x", "-c", "print 1"],
        &["run", "--no-such-flag", "-c", "print 1"],
        &["init", "--data", "somewhere"],
        &["init", "--admin", "aaduser=a@contoso.com"],
        &["parse"],
        &["explain"],
        &["shell", "-c", "print 1"],
    ] {
        let out = kustodian(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} explains itself");
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = kustodian(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["init", "run", "shell", "parse", "explain"] {
        assert!(help.contains(sub), "{sub} in {help}");
    }
    let out = kustodian(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data",
        "--db",
        "--as",
        "--group",
        "--set",
        "--format",
        "--timing",
        "--keep-going",
        "-c",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    assert_eq!(kustodian(&["--version"]).status.code(), Some(0));
}

#[test]
fn unreadable_script_exits_1() {
    for args in [
        &["run", "/no/such/script.kql"][..],
        &["parse", "/no/such/script.kql"],
        &["explain", "/no/such/script.kql"],
    ] {
        let out = kustodian(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("/no/such/script.kql"), "{stderr}");
    }
}
