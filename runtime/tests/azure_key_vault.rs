//! A customer key in Azure Key Vault, through its REST API (`keys/{name}[/{version}]`,
//! `wrapkey`, `unwrapkey` with RSA-OAEP-256) and a managed identity's token, against a local
//! stand-in of both started by the test. The cluster is driven through the `kustodian` binary,
//! which finds the managed-identity endpoint as Azure's SDKs do (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rsa::{KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};

mod common;
use common::text;

const SECRET: &str = "identity-header-secret";
const TOKEN: &str = "stand-in-token";

/// A key's versions: (version, PKCS#8 DER).
type Versions = Vec<(String, Arc<Vec<u8>>)>;

/// The stand-in: keys with versions, a recovery level, and whether the cluster's identity
/// still has access.
#[derive(Default)]
struct Vault {
    keys: Mutex<HashMap<String, Versions>>,
    recovery: Mutex<HashMap<String, String>>,
    revoked: AtomicBool,
    base: Mutex<String>,
}

impl Vault {
    fn add(&self, name: &str, recovery: &str) -> String {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
        let version = format!("v{}", uuid::Uuid::new_v4().simple());
        self.keys.lock().unwrap().entry(name.into()).or_default().push((version.clone(), Arc::new(der.as_ref().to_vec())));
        self.recovery.lock().unwrap().insert(name.into(), recovery.into());
        version
    }

    fn key(&self, name: &str, version: Option<&str>) -> Option<(String, PrivateDecryptingKey)> {
        let keys = self.keys.lock().unwrap();
        let versions = keys.get(name)?;
        let (v, der) = match version {
            Some(want) => versions.iter().find(|(v, _)| v == want)?,
            None => versions.last()?,
        };
        Some((v.clone(), PrivateDecryptingKey::from_pkcs8(der).unwrap()))
    }
}

type Shared = Arc<Vault>;

fn denied(vault: &Vault, headers: &HeaderMap) -> Option<(StatusCode, Json<Value>)> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    if !bearer {
        return Some((StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "Unauthorized", "message": "no token"}}))));
    }
    if vault.revoked.load(Ordering::SeqCst) {
        return Some((StatusCode::FORBIDDEN, Json(json!({"error": {"code": "Forbidden", "message": "the access policy does not grant this identity"}}))));
    }
    None
}

fn key_bundle(vault: &Vault, name: &str, version: Option<&str>) -> (StatusCode, Json<Value>) {
    match vault.key(name, version) {
        None => (StatusCode::NOT_FOUND, Json(json!({"error": {"code": "KeyNotFound", "message": format!("key {name} not found")}}))),
        Some((v, key)) => {
            let n = B64URL.encode(vec![0xC5u8; key.key_size_bits() / 8]);
            let base = vault.base.lock().unwrap().clone();
            let recovery = vault.recovery.lock().unwrap().get(name).cloned().unwrap_or_default();
            (
                StatusCode::OK,
                Json(json!({
                    "key": {"kid": format!("{base}/keys/{name}/{v}"), "kty": "RSA", "n": n, "e": "AQAB", "key_ops": ["wrapKey", "unwrapKey"]},
                    "attributes": {"enabled": true, "recoveryLevel": recovery},
                })),
            )
        }
    }
}

async fn latest(State(v): State<Shared>, headers: HeaderMap, UrlPath(name): UrlPath<String>) -> (StatusCode, Json<Value>) {
    denied(&v, &headers).unwrap_or_else(|| key_bundle(&v, &name, None))
}

async fn version(State(v): State<Shared>, headers: HeaderMap, UrlPath((name, ver)): UrlPath<(String, String)>) -> (StatusCode, Json<Value>) {
    denied(&v, &headers).unwrap_or_else(|| key_bundle(&v, &name, Some(&ver)))
}

async fn operation(
    State(v): State<Shared>,
    headers: HeaderMap,
    UrlPath((name, ver, op)): UrlPath<(String, String, String)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Some(d) = denied(&v, &headers) {
        return d;
    }
    assert_eq!(body["alg"], "RSA-OAEP-256");
    let Some((_, key)) = v.key(&name, Some(&ver)) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": {"code": "KeyNotFound", "message": "no such version"}})));
    };
    let input = B64URL.decode(body["value"].as_str().unwrap()).unwrap();
    let out = match op.as_str() {
        "wrapkey" => {
            let public = OaepPublicEncryptingKey::new(key.public_key()).unwrap();
            let mut buf = vec![0u8; public.ciphertext_size()];
            public.encrypt(&OAEP_SHA256_MGF1SHA256, &input, &mut buf, None).unwrap().to_vec()
        }
        "unwrapkey" => {
            let private = OaepPrivateDecryptingKey::new(key).unwrap();
            let mut buf = vec![0u8; private.min_output_size()];
            match private.decrypt(&OAEP_SHA256_MGF1SHA256, &input, &mut buf, None) {
                Ok(p) => p.to_vec(),
                Err(_) => return (StatusCode::BAD_REQUEST, Json(json!({"error": {"code": "BadParameter", "message": "cannot unwrap"}}))),
            }
        }
        _ => return (StatusCode::NOT_FOUND, Json(json!({}))),
    };
    (StatusCode::OK, Json(json!({"kid": format!("{name}/{ver}"), "value": B64URL.encode(out)})))
}

async fn token(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if headers.get("x-identity-header").and_then(|v| v.to_str().ok()) != Some(SECRET) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad identity header"})));
    }
    (StatusCode::OK, Json(json!({"access_token": TOKEN, "expires_on": "4102444800", "resource": "https://vault.azure.net", "token_type": "Bearer"})))
}

fn kustodian(base: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kustodian"))
        .args(args)
        .env("IDENTITY_ENDPOINT", format!("{base}/identity/token"))
        .env("IDENTITY_HEADER", SECRET)
        .output()
        .unwrap()
}

fn ok(base: &str, dir: &Path, text: &str) -> String {
    let out = kustodian(base, &["run", "--data", dir.to_str().unwrap(), "--db", "D", "--format", "csv", "-c", text]);
    assert!(out.status.success(), "{text}: {}", crate::text(&out.stderr));
    crate::text(&out.stdout)
}

#[test]
fn an_azure_key_vault_key_through_its_rest_api_and_a_managed_identity() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let vault: Shared = Arc::default();
    let v1 = vault.add("cmk", "Recoverable");
    vault.add("loose", "Recoverable+Purgeable");
    let app = Router::new()
        .route("/identity/token", get(token))
        .route("/keys/{name}", get(latest))
        .route("/keys/{name}/{version}", get(version))
        .route("/keys/{name}/{version}/{op}", post(operation))
        .with_state(Arc::clone(&vault));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *vault.base.lock().unwrap() = base.clone();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    assert!(kustodian(&base, &["init", "--data", dir.to_str().unwrap(), "--admin", "aaduser=admin@contoso.com"]).status.success());
    let out = kustodian(&base, &["run", "--data", dir.to_str().unwrap(), "-c", ".create database D"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&base, &dir, ".create table T (Name:string, V:long)");
    ok(&base, &dir, ".ingest inline into table T <|\na,1\nb,2");

    let set = |key: &str| format!(".alter cluster policy encryption '{{\"keyVaultUri\": \"{base}\", \"keyName\": \"{key}\"}}'");
    let shown = ok(&base, &dir, &set("cmk"));
    assert!(shown.contains(&format!("\"\"KeyVersionInUse\"\":\"\"{v1}\"\"")), "{shown}");
    assert_eq!(ok(&base, &dir, "T | summarize sum(V)"), "sum_V\n3\n");

    // Rotation to a new version.
    let v2 = vault.add("cmk", "Recoverable");
    let shown = ok(&base, &dir, &set("cmk"));
    assert!(shown.contains(&v2), "{shown}");
    assert_eq!(ok(&base, &dir, "T | count"), "Count\n2\n");

    // Revoked: suspended, with Kusto's error; restored: back, nothing lost.
    vault.revoked.store(true, Ordering::SeqCst);
    let out = kustodian(&base, &["run", "--data", dir.to_str().unwrap(), "--db", "D", "-c", "T | count"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("error[ClusterSuspended]"), "{}", text(&out.stderr));
    vault.revoked.store(false, Ordering::SeqCst);
    assert_eq!(ok(&base, &dir, "T | summarize sum(V)"), "sum_V\n3\n");

    // A key whose vault has no purge protection is refused; nothing changes.
    let out = kustodian(&base, &["run", "--data", dir.to_str().unwrap(), "-c", &set("loose")]);
    assert!(text(&out.stderr).contains("purge protection"), "{}", text(&out.stderr));
    assert!(ok(&base, &dir, ".show cluster policy encryption").contains(&v2));
}
