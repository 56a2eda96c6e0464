//! A customer key in an HSM through PKCS#11: SoftHSM2 (Debian's `softhsm2`), a token made by the
//! test, an RSA key pair generated in it (`kustodian hsm add-key`), the cluster wrapping its DEKs
//! with RSA-OAEP (SHA-1, what SoftHSM2 supports); rotation to a second pair; the PIN changed
//! (access revoked: suspended) and changed back (resumed). Driven through the binary, whose
//! environment names the test's SoftHSM2 configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::text;

/// SoftHSM2's PKCS#11 module.
fn module() -> PathBuf {
    for p in ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("the PKCS#11 test needs SoftHSM2: apt-get install softhsm2 (.ci/run installs it)");
}

struct Hsm {
    conf: PathBuf,
    uri: String,
    pin: PathBuf,
}

fn hsm(dir: &Path) -> Hsm {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display())).unwrap();
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "kustodian", "--so-pin", "1234", "--pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "softhsm2-util: {}", text(&out.stderr));
    let pin = dir.join("pin");
    std::fs::write(&pin, "5678").unwrap();
    Hsm { conf, uri: format!("pkcs11:{}?token=kustodian", module().display()), pin }
}

fn kustodian(h: &Hsm, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kustodian")).args(args).env("SOFTHSM2_CONF", &h.conf).output().unwrap()
}

fn ok(h: &Hsm, args: &[&str]) -> String {
    let out = kustodian(h, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn an_hsm_key_wraps_rotates_revokes_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let h = hsm(tmp.path());
    let pin = h.pin.to_str().unwrap().to_string();
    let v1 = ok(&h, &["hsm", "add-key", "--uri", &h.uri, "--pin-file", &pin, "--name", "cmk"]).trim().to_string();
    assert_eq!(v1, "01");
    let dir = tmp.path().join("c");
    let data = dir.to_str().unwrap();
    ok(&h, &["init", "--data", data, "--admin", "aaduser=admin@contoso.com"]);
    ok(&h, &["run", "--data", data, "-c", ".create database D"]);
    let run = |text: &str| ok(&h, &["run", "--data", data, "--db", "D", "--format", "csv", "-c", text]);
    run(".create table T (Name:string, V:long)");
    run(".ingest inline into table T <|\na,1\nb,2");
    let set = format!(
        ".alter cluster policy encryption '{{\"keyVaultUri\": \"{}\", \"keyName\": \"cmk\", \"userIdentity\": \"pin-file:{pin}\"}}'",
        h.uri
    );
    assert!(run(&set).contains("\"\"KeyVersionInUse\"\":\"\"01\"\""));
    assert_eq!(run("T | summarize sum(V)"), "sum_V\n3\n");

    // Rotation: a second key pair under the same label.
    assert_eq!(ok(&h, &["hsm", "add-key", "--uri", &h.uri, "--pin-file", &pin, "--name", "cmk"]).trim(), "02");
    assert!(run(&set).contains("\"\"KeyVersionInUse\"\":\"\"02\"\""));
    assert_eq!(run("T | count"), "Count\n2\n");

    // The HSM's admin changes the PIN: the cluster's login fails, it is suspended.
    let new_pin = tmp.path().join("new-pin");
    std::fs::write(&new_pin, "8765").unwrap();
    ok(&h, &["hsm", "set-pin", "--uri", &h.uri, "--pin-file", &pin, "--new-pin-file", new_pin.to_str().unwrap()]);
    let out = kustodian(&h, &["run", "--data", data, "--db", "D", "-c", "T | count"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("error[ClusterSuspended]"), "{}", text(&out.stderr));
    // And back: resumed, nothing lost.
    ok(&h, &["hsm", "set-pin", "--uri", &h.uri, "--pin-file", new_pin.to_str().unwrap(), "--new-pin-file", &pin]);
    assert_eq!(run("T | summarize sum(V)"), "sum_V\n3\n");
}
