//! kill -9 in the middle of key rotations: a process switches the cluster's key back and forth
//! (a customer key, the platform key) and is killed at a random moment; the cluster must open
//! and answer as before, whichever step the rotation had reached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use kustodian_runtime::keys::vault::{LocalVault, PERMISSIONS};
use kustodian_runtime::{Cluster, Identity, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";

fn opts() -> RequestOptions {
    RequestOptions { database: Some("D".into()), identity: Some(Identity::new(ADMIN)), ..Default::default() }
}

#[test]
fn a_rotation_killed_at_any_moment_leaves_the_cluster_readable() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = Cluster::init(&dir, ADMIN).unwrap();
    for cmd in [".create database D", ".create table T (Name:string, V:long)"] {
        rt.block_on(c.execute(cmd, &opts())).unwrap();
    }
    for i in 0..5 {
        rt.block_on(c.execute(&format!(".ingest inline into table T <|\nx{i},{i}"), &opts())).unwrap();
    }
    let shown = rt.block_on(c.execute(".show cluster policy encryption", &opts())).unwrap();
    let policy = datafusion::arrow::util::display::array_value_to_string(shown.batches[0].column(2), 0).unwrap();
    let identity = serde_json::from_str::<serde_json::Value>(&policy).unwrap()["ClusterIdentity"].as_str().unwrap().to_string();
    drop(c);
    let vault = tmp.path().join("vault");
    LocalVault::create(&vault, true, true).unwrap();
    let v = LocalVault::open(&vault, "owner");
    v.create_key("cmk", 2048).unwrap();
    v.set_access(&identity, &PERMISSIONS).unwrap();
    let set = format!(".alter cluster policy encryption '{{\"keyVaultUri\": \"{}\", \"keyName\": \"cmk\"}}'", LocalVault::uri_of(&vault));
    let script: String = (0..60).map(|i| if i % 2 == 0 { format!("{set}\n\n") } else { ".delete cluster policy encryption\n\n".to_string() }).collect();
    let script_path = tmp.path().join("rotate.kql");
    std::fs::write(&script_path, script).unwrap();

    for (round, delay_ms) in [150u64, 400, 650, 900, 1200, 1700].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kustodian"))
            .args(["run", "--data", dir.to_str().unwrap(), "--format", "csv"])
            .arg(&script_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let c = Cluster::open(&dir).unwrap_or_else(|e| panic!("round {round}: the cluster does not open after the kill: {e}"));
        let out = rt.block_on(c.execute("T | summarize n = count(), s = sum(V)", &opts())).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let cell = |i: usize| datafusion::arrow::util::display::array_value_to_string(out.batches[0].column(i), 0).unwrap();
        assert_eq!((cell(0), cell(1)), ("5".to_string(), "10".to_string()), "round {round}");
        // And it can still change its key.
        rt.block_on(c.execute(if round % 2 == 0 { &set } else { ".delete cluster policy encryption" }, &opts()))
            .unwrap_or_else(|e| panic!("round {round}: rotating after the kill: {e}"));
    }
}
