//! Encryption at rest: every file of a cluster directory holding data is encrypted (extents
//! with Parquet modular encryption under per-extent DEKs, the metadata sealed), customer keys
//! in a local vault, rotation that re-wraps without touching a file, revocation that suspends
//! and restoration that resumes, tampered and truncated files, keys that must be refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kustodian_runtime::keys::vault::{LocalVault, PERMISSIONS};
use kustodian_runtime::{Cluster, ErrorCode, Identity, QueryOutput, RequestOptions};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

const ADMIN: &str = "aaduser=admin@contoso.com";
const SECRETS: [&str; 3] = ["ZebraSecretValue", "PolicySecretMarker", "FunctionBodyMarker"];

fn opts() -> RequestOptions {
    RequestOptions { database: Some("D".into()), identity: Some(Identity::new(ADMIN)), ..Default::default() }
}

fn run(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> kustodian_runtime::Result<QueryOutput> {
    rt.block_on(c.execute(text, &opts()))
}

fn rows(out: &QueryOutput) -> Vec<String> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut v: Vec<String> = out
        .batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |r| b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect::<Vec<_>>().join("|")))
        .collect();
    v.sort();
    v
}

/// A cluster directory with table T (twelve ingestions, merged), a function and a policy.
fn cluster(rt: &tokio::runtime::Runtime, dir: &Path) -> Cluster {
    let c = Cluster::init(dir, ADMIN).unwrap();
    for cmd in [
        ".create database D",
        ".create table T (Name:string, Owner:string, V:long)",
        ".create function Helper() { print FunctionBodyMarker = 1 }",
        ".alter table T policy row_level_security enable \"T | where Owner =~ current_principal() or Name != 'PolicySecretMarker'\"",
    ] {
        run(rt, &c, cmd).unwrap();
    }
    for i in 0..12 {
        run(rt, &c, &format!(".ingest inline into table T <|\nZebraSecretValue{i},aaduser=admin@contoso.com,{i}\nOther{i},aaduser=bob@contoso.com,{}", i + 100)).unwrap();
    }
    c
}

/// Every file below `dir`, by path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn assert_no_plaintext(dir: &Path) {
    for (path, bytes) in files(dir) {
        for s in SECRETS {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "'{s}' is in plaintext in {}", path.display());
        }
    }
}

fn identity(rt: &tokio::runtime::Runtime, c: &Cluster) -> String {
    let out = run(rt, c, ".show cluster policy encryption").unwrap();
    let policy: serde_json::Value = serde_json::from_str(rows(&out)[0].split('|').nth(2).unwrap()).unwrap();
    policy["ClusterIdentity"].as_str().unwrap().to_string()
}

fn policy_of(rt: &tokio::runtime::Runtime, c: &Cluster) -> serde_json::Value {
    let out = run(rt, c, ".show cluster policy encryption").unwrap();
    serde_json::from_str(rows(&out)[0].split('|').nth(2).unwrap()).unwrap()
}

/// A vault with key `cmk` that grants the cluster's identity what it needs.
fn vault(dir: &Path, identity: &str) -> (LocalVault, String) {
    LocalVault::create(dir, true, true).unwrap();
    let v = LocalVault::open(dir, "owner");
    let version = v.create_key("cmk", 2048).unwrap();
    v.set_access(identity, &PERMISSIONS).unwrap();
    (v, version)
}

fn use_key(rt: &tokio::runtime::Runtime, c: &Cluster, vault: &Path, version: Option<&str>) -> kustodian_runtime::Result<QueryOutput> {
    let v = version.map(|v| format!(", \"keyVersion\": \"{v}\"")).unwrap_or_default();
    run(rt, c, &format!(".alter cluster policy encryption '{{\"keyVaultUri\": \"{}\", \"keyName\": \"cmk\"{v}}}'", LocalVault::uri_of(vault)))
}

#[test]
fn nothing_is_plaintext_at_rest_and_rotation_touches_no_extent() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir);
    let extents = run(&rt, &c, ".show table T extents").unwrap();
    assert!(extents.row_count() < 12, "the small extents were merged: {}", extents.row_count());
    assert_no_plaintext(&dir);
    let before = rows(&run(&rt, &c, "T | order by V asc").unwrap());
    assert_eq!(before.len(), 24);

    // Rotate to a customer key: every extent file stays byte-identical, every answer equal.
    let id = identity(&rt, &c);
    let (v, version) = vault(&tmp.path().join("vault"), &id);
    let extent_files = |d: &Path| files(&d.join("extents"));
    let files_before = extent_files(&dir);
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    assert_eq!(extent_files(&dir), files_before, "rotation re-wraps, it does not re-encrypt");
    let p = policy_of(&rt, &c);
    assert_eq!((p["CustomerManagedKey"].as_bool(), p["KeyVersionInUse"].as_str()), (Some(true), Some(version.as_str())));
    assert_eq!(rows(&run(&rt, &c, "T | order by V asc").unwrap()), before);
    // A new process reads it with the customer key alone: the platform key's vault could go.
    let reopened = Cluster::open(&dir).unwrap();
    assert_eq!(rows(&run(&rt, &reopened, "T | order by V asc").unwrap()), before);

    // A new version, then the old one disabled: the DEKs were re-wrapped to the new one.
    let v2 = v.create_key("cmk", 3072).unwrap();
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    assert_eq!(policy_of(&rt, &c)["KeyVersionInUse"], v2.as_str());
    v.set_enabled("cmk", &version, false).unwrap();
    assert_eq!(rows(&run(&rt, &Cluster::open(&dir).unwrap(), "T | order by V asc").unwrap()), before);
    assert_eq!(extent_files(&dir), files_before);

    // Back to the platform key.
    run(&rt, &c, ".delete cluster policy encryption").unwrap();
    assert_eq!(policy_of(&rt, &c)["CustomerManagedKey"], false);
    assert_eq!(rows(&run(&rt, &Cluster::open(&dir).unwrap(), "T | order by V asc").unwrap()), before);
    assert_no_plaintext(&dir);
}

#[test]
fn revocation_suspends_and_restoring_access_resumes() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir).with_hot_cache(64 << 20);
    let id = identity(&rt, &c);
    let (v, _) = vault(&tmp.path().join("vault"), &id);
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    let before = rows(&run(&rt, &c, "T | summarize count(), sum(V)").unwrap());

    v.set_access(&id, &[]).unwrap();
    let e = c.check_keys().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Suspended, "{e}");
    assert_eq!(c.hot_cache().unwrap().stats().bytes, 0, "decrypted extents are dropped");
    for text in ["T | count", ".ingest inline into table T <|\nx,y,1", ".show tables"] {
        let e = run(&rt, &c, text).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Suspended, "{text}: {e}");
        // A caller learns that the cluster is suspended, not which vault or identity refused.
        assert!(!e.to_string().contains("vault") && !e.to_string().contains(&id), "{e}");
    }
    // The admin sees why; a viewer may not ask.
    let reason = policy_of(&rt, &c);
    assert_eq!(reason["State"], "Suspended");
    assert!(reason["SuspensionReason"].as_str().unwrap().contains("does not grant"), "{reason}");
    run(&rt, &c, ".show tables").unwrap_err();
    let bob = RequestOptions { identity: Some(Identity::new("aaduser=bob@contoso.com")), ..opts() };
    let e = rt.block_on(c.execute(".show cluster policy encryption", &bob)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
    // A restart while revoked stays suspended; whoever opens the directory is told why.
    let e = Cluster::open(&dir).err().unwrap();
    assert_eq!(e.code(), ErrorCode::Suspended);
    assert!(e.to_string().contains("does not grant"), "{e}");

    // Access restored: the next request resumes, nothing lost.
    v.set_access(&id, &PERMISSIONS).unwrap();
    assert_eq!(rows(&run(&rt, &c, "T | summarize count(), sum(V)").unwrap()), before);
    assert_eq!(policy_of(&rt, &c)["State"], "Active");
    assert_eq!(rows(&run(&rt, &Cluster::open(&dir).unwrap(), "T | summarize count(), sum(V)").unwrap()), before);

    // Every use of a key is in the key audit log, the refusals and the suspension too.
    let log = std::fs::read_to_string(dir.join("keys/audit.log")).unwrap();
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has = |event: &str, ok: bool| events.iter().any(|e| e["event"] == event && (e["outcome"] == "Succeeded") == ok);
    for (event, ok) in [("wrapKey", true), ("unwrapKey", true), ("unwrapKey", false), ("rotate", true), ("suspend", false), ("resume", true)] {
        assert!(has(event, ok), "no {event} ({ok}) in the key audit log:\n{log}");
    }
    assert!(events.iter().any(|e| e["subject"].as_str().is_some_and(|s| s.starts_with("extent "))), "{log}");
}

#[test]
fn tampered_and_truncated_extents_fail_with_the_extent_named() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir);
    // A live extent (the merged-away ones stay on disk for a while, unread).
    let live = rows(&run(&rt, &c, ".show table T extents | project ExtentId").unwrap());
    drop(c);
    let id = live[0].clone();
    let victim = &dir.join("extents").join(format!("{id}.parquet"));
    let original = std::fs::read(victim).unwrap();
    let mid = original.len() / 2;
    let every_column = "T | summarize sum(V), max(Name), max(Owner)";
    // A byte of the footer: its tag fails when the extent is first opened; the error names it.
    let mut bytes = original.clone();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();
    let c = Cluster::open(&dir).unwrap();
    let e = run(&rt, &c, every_column).unwrap_err();
    assert!(e.to_string().contains(&id), "the error names the extent: {e}");
    // A byte of the first column chunk (right after the magic): its page fails its tag when a
    // query decrypts it. (Each module is authenticated when it is read: a byte of the page
    // index goes unnoticed by a query that does not read the index.)
    let mut bytes = original.clone();
    bytes[20] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();
    let c = Cluster::open(&dir).unwrap();
    let e = run(&rt, &c, every_column).unwrap_err();
    assert!(e.to_string().contains("decrypting page header"), "{e}");
    assert!(e.to_string().contains(&format!("extent '{id}'")) && e.to_string().contains("tampered"), "the error names the extent: {e}");
    // Replaced by a valid plaintext Parquet file of the same schema: refused, not read.
    {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("Name", DataType::Utf8, true),
            Field::new("Owner", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ]));
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from(vec!["Forged"])),
                std::sync::Arc::new(StringArray::from(vec!["aaduser=admin@contoso.com"])),
                std::sync::Arc::new(Int64Array::from(vec![1_000_000])),
            ],
        )
        .unwrap();
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(std::fs::File::create(victim).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let c = Cluster::open(&dir).unwrap();
        let e = run(&rt, &c, every_column).expect_err("a forged plaintext extent must not be read");
        assert!(e.to_string().contains(&id), "{e}");
    }
    // Truncated: the footer is gone.
    std::fs::write(victim, &bytes[..mid]).unwrap();
    let c = Cluster::open(&dir).unwrap();
    let e = run(&rt, &c, "T | count | extend x = 1 | join kind=inner (T | summarize max(Name) | extend x = 1) on x").unwrap_err();
    assert!(e.to_string().contains(&id), "{e}");
}

#[test]
fn keys_the_cluster_may_not_use_are_refused_and_change_nothing() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir);
    let id = identity(&rt, &c);
    let before = policy_of(&rt, &c);
    // No purge protection.
    let weak = tmp.path().join("weak");
    LocalVault::create(&weak, true, false).unwrap();
    let w = LocalVault::open(&weak, "owner");
    w.create_key("cmk", 2048).unwrap();
    w.set_access(&id, &PERMISSIONS).unwrap();
    let e = use_key(&rt, &c, &weak, None).unwrap_err();
    assert!(e.to_string().contains("soft delete and purge protection"), "{e}");
    // No access; an unknown version; a disabled version; wrap but not unwrap.
    let (v, version) = vault(&tmp.path().join("vault"), "someone-else");
    assert!(use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap_err().to_string().contains("does not grant 'get'"));
    v.set_access(&id, &PERMISSIONS).unwrap();
    assert!(use_key(&rt, &c, &tmp.path().join("vault"), Some("0000")).unwrap_err().to_string().contains("no version '0000'"));
    v.set_enabled("cmk", &version, false).unwrap();
    assert!(use_key(&rt, &c, &tmp.path().join("vault"), Some(&version)).unwrap_err().to_string().contains("disabled"));
    v.set_enabled("cmk", &version, true).unwrap();
    v.set_access(&id, &["get", "wrapKey"]).unwrap();
    assert!(use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap_err().to_string().contains("'unwrapKey'"));
    // A deleted key.
    v.set_access(&id, &PERMISSIONS).unwrap();
    v.delete_key("cmk").unwrap();
    assert!(use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap_err().to_string().contains("deleted"));
    // Nothing changed, and the cluster was never suspended by a key it was only offered.
    assert_eq!(policy_of(&rt, &c), before);
    assert_eq!(run(&rt, &c, "T | count").unwrap().row_count(), 1);
    // Only an AllDatabasesAdmin may change the key; a viewer may not see it either.
    run(&rt, &c, ".add database D viewers ('aaduser=bob@contoso.com')").unwrap();
    let bob = RequestOptions { identity: Some(Identity::new("aaduser=bob@contoso.com")), ..opts() };
    for text in [".show cluster policy encryption", ".delete cluster policy encryption"] {
        let e = rt.block_on(c.execute(text, &bob)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
        assert!(e.to_string().contains("aaduser=bob@contoso.com"), "{e}");
    }
}

#[test]
fn a_dek_wrapped_by_an_unknown_key_version_fails_closed() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    drop(cluster(&rt, &dir));
    let storage = kustodian_runtime::storage::Storage::open(&dir).unwrap();
    let mut meta: serde_json::Value = storage.load_metadata().unwrap().unwrap();
    let extent = &mut meta["databases"][0]["tables"][0]["extents"][0];
    let id = extent["id"].as_str().unwrap().to_string();
    extent["key"]["kek"]["version"] = "ffffffffffffffffffffffffffffffff".into();
    storage.commit_metadata(&meta).unwrap();
    let c = Cluster::open(&dir).unwrap();
    let e = run(&rt, &c, "T | summarize sum(V)").unwrap_err();
    assert!(e.to_string().contains(&id) || e.to_string().contains("ffffffff"), "{e}");
}

#[test]
fn a_rotation_interrupted_between_its_steps_leaves_the_cluster_readable() {
    // A rotation writes the new key into encryption.json, then commits the re-wrapped DEKs and
    // the metadata sealed by the new key. Killed between the two, the configuration names the
    // new key while everything committed is wrapped by the old one: each wrapped key names its
    // key version, so the cluster reads with the old key and writes with the new.
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir);
    let before = rows(&run(&rt, &c, "T | order by V asc").unwrap());
    let id = identity(&rt, &c);
    let (_v, version) = vault(&tmp.path().join("vault"), &id);
    drop(c);
    let config_path = dir.join("encryption.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["key"] = serde_json::json!({"vault_uri": LocalVault::uri_of(&tmp.path().join("vault")), "key_name": "cmk", "key_version": null, "customer": true});
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let c = Cluster::open(&dir).unwrap();
    assert_eq!(rows(&run(&rt, &c, "T | order by V asc").unwrap()), before);
    run(&rt, &c, ".ingest inline into table T <|\nLate,aaduser=admin@contoso.com,999").unwrap();
    assert_eq!(run(&rt, &c, "T | count").unwrap().batches[0].num_rows(), 1);
    let storage = kustodian_runtime::storage::Storage::open(&dir).unwrap();
    let meta: serde_json::Value = storage.load_metadata().unwrap().unwrap();
    let keks: Vec<String> = meta["databases"][0]["tables"][0]["extents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"]["kek"]["version"].as_str().unwrap().to_string())
        .collect();
    assert!(keks.contains(&version), "the new extent is wrapped by the new key: {keks:?}");
    assert!(keks.iter().any(|k| k != &version), "the old ones still by the old key: {keks:?}");
    // Completing the rotation re-wraps the rest.
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    let meta: serde_json::Value = storage.load_metadata().unwrap().unwrap();
    assert!(meta["databases"][0]["tables"][0]["extents"].as_array().unwrap().iter().all(|e| e["key"]["kek"]["version"] == version.as_str()));
    assert_eq!(run(&rt, &Cluster::open(&dir).unwrap(), "T | count").unwrap().row_count(), 1);
}

#[test]
fn double_encryption_adds_a_second_layer_that_scans_read_through() {
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = Cluster::init_with(&dir, ADMIN, true).unwrap();
    for cmd in [".create database D", ".create table T (Name:string, Owner:string, V:long)"] {
        run(&rt, &c, cmd).unwrap();
    }
    for i in 0..3 {
        run(&rt, &c, &format!(".ingest inline into table T <|\nZebraSecretValue{i},aaduser=admin@contoso.com,{i}")).unwrap();
    }
    assert_eq!(policy_of(&rt, &c)["DoubleEncryption"], true);
    assert_no_plaintext(&dir);
    for (path, bytes) in files(&dir.join("extents")) {
        // Not even Parquet's magic bytes show: the whole file is under the second layer.
        assert!(!bytes.starts_with(b"PAR") && !bytes.ends_with(b"PARE") && !bytes.ends_with(b"PAR1"), "{}", path.display());
    }
    let c = Cluster::open(&dir).unwrap().with_hot_cache(16 << 20);
    assert_eq!(rows(&run(&rt, &c, "T | where V >= 1 | summarize n = count(), s = sum(V)").unwrap()), ["2|3"]);
    assert_eq!(rows(&run(&rt, &c, "T | where Name == 'ZebraSecretValue2' | project V").unwrap()), ["2"]);
    // A customer key wraps the DEKs; the layer keys stay with the platform key.
    let id = identity(&rt, &c);
    vault(&tmp.path().join("vault"), &id);
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    assert_eq!(rows(&run(&rt, &Cluster::open(&dir).unwrap(), "T | summarize sum(V)").unwrap()), ["3"]);
    // A flipped byte still fails (the inner layer's authentication), naming the extent.
    let live = rows(&run(&rt, &c, ".show table T extents | project ExtentId").unwrap());
    let victim = dir.join("extents").join(format!("{}.parquet", live[0]));
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x10;
    std::fs::write(&victim, &bytes).unwrap();
    let e = run(&rt, &Cluster::open(&dir).unwrap(), "T | summarize sum(V), max(Name), max(Owner)").unwrap_err();
    assert!(e.to_string().contains(&live[0]), "{e}");
}

/// Through the server: a revoked key answers 412 `PreconditionFailed` to every query, the
/// encryption policy still says why, a server started while revoked is suspended too, and
/// restoring access resumes both.
#[cfg(feature = "server")]
#[test]
fn the_server_answers_412_while_suspended_and_resumes() {
    use kustodian_runtime::server::config::ServerConfig;
    use kustodian_runtime::server::{ServeOptions, Server};
    let rt = rt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = cluster(&rt, &dir);
    let id = identity(&rt, &c);
    let (v, _) = vault(&tmp.path().join("vault"), &id);
    use_key(&rt, &c, &tmp.path().join("vault"), None).unwrap();
    drop(c);
    let serve = |cluster: std::sync::Arc<Cluster>| {
        let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), tmp.path().join("state"));
        opts.no_auth_as = Some(ADMIN.into());
        let server = rt.block_on(Server::start(cluster, opts)).unwrap();
        let url = format!("http://127.0.0.1:{}", server.local_addr.port());
        (server, url)
    };
    let query = |url: &str, csl: &str| {
        rt.block_on(async {
            let r = reqwest::Client::new().post(format!("{url}/v1/rest/mgmt")).json(&serde_json::json!({"db": "D", "csl": csl})).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let long_lived = std::sync::Arc::new(Cluster::open_or_suspended(&dir).unwrap());
    let (server, url) = serve(std::sync::Arc::clone(&long_lived));
    assert_eq!(query(&url, "T | count").0, 200);
    v.set_access(&id, &[]).unwrap();
    let (server2, url2) = serve(std::sync::Arc::new(Cluster::open_or_suspended(&dir).unwrap()));
    // The running server finds out at its periodic key check (`serve --key-check-interval`).
    assert_eq!(long_lived.check_keys().unwrap_err().code(), ErrorCode::Suspended);
    let other = Cluster::open(&dir).err().map(|e| e.code());
    assert_eq!(other, Some(ErrorCode::Suspended));
    for u in [&url, &url2] {
        let (status, body) = query(u, "T | summarize max(Name)");
        assert_eq!(status, 412, "{body}");
        assert!(body.contains("PreconditionFailed") && body.contains("ClusterSuspendedException"), "{body}");
        let (status, body) = query(u, ".show cluster policy encryption");
        if u == &url {
            // It knows its roles: the admin sees the state and why.
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("Suspended") && body.contains("does not grant"), "{body}");
        } else {
            // Started while revoked, it never read its roles: it only says it is suspended.
            assert_eq!(status, 412, "{body}");
        }
    }
    // The server started while revoked is suspended for sure.
    assert_eq!(query(&url2, "T | count").0, 412);
    v.set_access(&id, &PERMISSIONS).unwrap();
    let (status, body) = query(&url2, "T | summarize sum(V)");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("1332"), "{body}");
    assert_eq!(query(&url, "T | count").0, 200);
    drop((server, server2));
    // The server's audit log has the key events too: unwraps, the suspension, the resumption.
    let log = std::fs::read_to_string(tmp.path().join("state").join("audit.log")).unwrap();
    let keys: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|r| r["kind"] == "key").collect();
    assert!(keys.iter().any(|r| r["key_event"]["event"] == "unwrapKey" && r["outcome"]["status"] == 200), "{log}");
    assert!(keys.iter().any(|r| r["key_event"]["event"] == "suspend" && r["outcome"]["status"] == 412), "{log}");
    assert!(keys.iter().any(|r| r["key_event"]["event"] == "resume"), "{log}");
}
