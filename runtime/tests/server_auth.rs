//! Bearer-token attacks and the token → identity path of `kustodian serve`, without HTTP:
//! every refused token is refused with its own error, the key cache refreshes on an unknown
//! `kid` at most once per cool-down (counted through a mock key source), and the real
//! discovery + JWKS fetcher is exercised against a tiny HTTP server on loopback.
#![cfg(feature = "server")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use kustodian_runtime::server::config::ServerConfig;
use kustodian_runtime::server::dev_issuer::{DEV_AUDIENCE, DEV_TENANT, DevIssuer, DevSubject, MintRequest, SigningKey, dev_object_id};
use kustodian_runtime::server::directory::Directory;
use kustodian_runtime::server::jwks::{HttpKeySource, KeySet, KeySource};
use kustodian_runtime::server::outbound::{FetchError, OutboundClient, OutboundPolicy};
use kustodian_runtime::server::principal::identity_from_token;
use kustodian_runtime::server::token::{TenantTrust, TokenError, TokenValidator, TrustedIssuer, ValidatorOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT: &str = "33e01921-4d64-4f8c-a055-5bdaffd5e33d";
const AUD: &str = "https://kustodian.contoso.com";
const OID: &str = "aaaaaaaa-0000-0000-0000-000000000001";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn issuer_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

/// A valid Entra v2 user token's claims.
fn claims() -> Value {
    let n = now();
    json!({
        "aud": AUD, "iss": issuer_url(T), "tid": T, "oid": OID, "sub": OID,
        "upn": "alice@contoso.com", "name": "Alice", "scp": "user_impersonation", "azp": "c0ffee00-0000-0000-0000-000000000000",
        "amr": ["pwd", "mfa"], "iat": n - 10, "nbf": n - 10, "exp": n + 3600, "ver": "2.0"
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    if let Value::Object(m) = &mut c {
        if v.is_null() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), v);
        }
    }
    c
}

/// A key source serving a JWKS the test can change, counting fetches.
#[derive(Debug)]
struct MockKeys {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
}

impl MockKeys {
    fn new(keys: &[&SigningKey]) -> Arc<MockKeys> {
        Arc::new(MockKeys { jwks: Mutex::new(jwks(keys)), fetches: AtomicUsize::new(0) })
    }

    fn set(&self, keys: &[&SigningKey]) {
        if let Ok(mut g) = self.jwks.lock() {
            *g = jwks(keys);
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>() })
}

impl KeySource for MockKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let doc = self.jwks.lock().map(|g| g.clone()).unwrap_or_default();
        Box::pin(async move { KeySet::from_jwks(&doc).map_err(|message| FetchError::Json { url: "mock".into(), message }) })
    }
}

/// RSA key generation is slow in unoptimized builds: the tests share three keys.
fn test_keys() -> Result<&'static [SigningKey], Box<dyn std::error::Error + Send + Sync>> {
    static KEYS: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| (0..3).filter_map(|_| SigningKey::generate().ok()).collect());
    if keys.len() == 3 { Ok(keys) } else { Err("RSA key generation failed".into()) }
}

struct Fixture {
    key_a: &'static SigningKey,
    key_b: &'static SigningKey,
    keys: Arc<MockKeys>,
    validator: TokenValidator,
}

fn options(cooldown: Duration) -> ValidatorOptions {
    ValidatorOptions { leeway: Duration::from_secs(300), key_refresh_cooldown: cooldown, keys_max_age: Duration::from_secs(86400) }
}

fn fixture(cooldown: Duration, trust: &[&str]) -> Result<Fixture, Box<dyn std::error::Error + Send + Sync>> {
    let [key_a, key_b, _] = test_keys()? else { return Err("three keys".into()) };
    let keys = MockKeys::new(&[key_a]);
    let opts = options(cooldown);
    let exact = TrustedIssuer::new(&issuer_url(T), vec![AUD.into()], None, keys.clone(), &opts)?;
    // A multi-tenant issuer over the same keys (Entra's `common` endpoint).
    let multi = TrustedIssuer::new("https://login.microsoftonline.com/{tenantid}/v2.0", vec![AUD.into()], None, keys.clone(), &opts)?;
    let trust: Vec<String> = trust.iter().map(|s| s.to_string()).collect();
    let validator = TokenValidator::new(vec![exact, multi], TenantTrust::from_list(&trust), &opts);
    Ok(Fixture { key_a, key_b, keys, validator })
}

impl Fixture {
    fn sign(&self, claims: &Value) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.key_a.sign_claims(claims)?)
    }

    async fn refused(&self, token: &str) -> Option<TokenError> {
        let r = self.validator.validate(token).await;
        if let Err(e) = &r {
            // No error message carries any part of the token.
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!e.to_string().contains(part), "{e}");
            }
        }
        r.err()
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn a_valid_token_yields_the_user() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let v = f.validator.validate_header(Some(&format!("Bearer {}", f.sign(&claims())?))).await?;
    assert_eq!(v.tenant, T);
    assert_eq!(v.issuer, issuer_url(T));
    let id = identity_from_token(&v, None)?;
    assert_eq!(id.identity().principal, format!("aaduser={OID};{T}"));
    assert!(id.principal_fqns().contains(&"aaduser=alice@contoso.com".to_string()));
    assert!(id.details.mfa);
    assert_eq!(id.details.to_json()["UserPrincipalName"], json!("alice@contoso.com"));
    assert_eq!(f.keys.fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn no_token() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    assert_eq!(f.validator.validate_header(None).await.err(), Some(TokenError::NoToken));
    assert_eq!(f.validator.validate_header(Some("Bearer")).await.err(), Some(TokenError::NoToken));
    assert_eq!(f.validator.validate_header(Some("Basic YTpi")).await.err(), Some(TokenError::NotBearer));
    assert_eq!(f.keys.fetches(), 0, "nothing is fetched for a request without a token");
    Ok(())
}

#[tokio::test]
async fn alg_none() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let token = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": f.key_a.kid()})), b64(&claims()));
    assert_eq!(f.refused(&token).await, Some(TokenError::AlgorithmNotAllowed));
    let token = format!("{}.{}.", b64(&json!({"alg": "None", "kid": f.key_a.kid()})), b64(&claims()));
    assert_eq!(f.refused(&token).await, Some(TokenError::AlgorithmNotAllowed));
    let token = format!("{}.{}.", b64(&json!({"kid": f.key_a.kid()})), b64(&claims()));
    assert_eq!(f.refused(&token).await, Some(TokenError::AlgorithmNotAllowed));
    assert_eq!(f.keys.fetches(), 0, "refused before any key is looked at");
    Ok(())
}

#[tokio::test]
async fn hs256_signed_with_the_public_key() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    // The classic confusion attack: HMAC keyed with what the server knows as the public key
    // (its JWK, its modulus).
    let modulus = URL_SAFE_NO_PAD.decode(f.key_a.jwk()["n"].as_str().unwrap_or_default())?;
    for secret in [f.key_a.jwk().to_string().into_bytes(), modulus] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(f.key_a.kid().to_string());
        let token = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_secret(&secret)?)?;
        assert_eq!(f.refused(&token).await, Some(TokenError::AlgorithmNotAllowed));
    }
    Ok(())
}

#[tokio::test]
async fn wrong_audience_and_another_cluster() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let token = f.sign(&with(claims(), "aud", json!("https://management.azure.com")))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::WrongAudience));
    // A token for another Kusto cluster, with everything else right.
    let token = f.sign(&with(claims(), "aud", json!("https://othercluster.westeurope.kusto.windows.net")))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::WrongAudience));
    let token = f.sign(&with(claims(), "aud", json!(["https://a.example", "https://b.example"])))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::WrongAudience));
    // A list holding this cluster is accepted, as is a trailing slash.
    let token = f.sign(&with(claims(), "aud", json!(["https://a.example", AUD])))?;
    assert!(f.validator.validate(&token).await.is_ok());
    let token = f.sign(&with(claims(), "aud", json!(format!("{AUD}/"))))?;
    assert!(f.validator.validate(&token).await.is_ok());
    let token = f.sign(&with(claims(), "aud", Value::Null))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::MissingClaim("aud")));
    let token = f.sign(&with(claims(), "aud", json!(42)))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::ClaimFormat("aud")));
    Ok(())
}

#[tokio::test]
async fn wrong_issuer() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    for iss in ["https://evil.example/v2.0", "https://login.microsoftonline.com/x/y/v2.0", "https://login.microsoftonline.com//v2.0"] {
        let token = f.sign(&with(claims(), "iss", json!(iss)))?;
        assert_eq!(f.refused(&token).await, Some(TokenError::UntrustedIssuer), "{iss}");
    }
    let token = f.sign(&with(claims(), "iss", Value::Null))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::MissingClaim("iss")));
    let token = f.sign(&with(claims(), "iss", json!([issuer_url(T)])))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::ClaimFormat("iss")));
    Ok(())
}

#[tokio::test]
async fn tid_not_matching_the_issuer() -> R {
    let f = fixture(Duration::from_secs(300), &["*"])?;
    // Exact issuer naming tenant T, token claiming another tenant.
    let token = f.sign(&with(claims(), "tid", json!(OTHER_TENANT)))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::TenantMismatch));
    // The multi-tenant issuer: iss names one tenant, tid another.
    let c = with(with(claims(), "iss", json!(issuer_url(OTHER_TENANT))), "tid", json!("44444444-0000-0000-0000-000000000000"));
    assert_eq!(f.refused(&f.sign(&c)?).await, Some(TokenError::TenantMismatch));
    let c = with(with(claims(), "iss", json!(issuer_url(OTHER_TENANT))), "tid", Value::Null);
    assert_eq!(f.refused(&f.sign(&c)?).await, Some(TokenError::MissingClaim("tid")));
    Ok(())
}

#[tokio::test]
async fn untrusted_tenant() -> R {
    let other = with(with(claims(), "iss", json!(issuer_url(OTHER_TENANT))), "tid", json!(OTHER_TENANT));
    // Only the issuers' own tenant is trusted by default.
    let f = fixture(Duration::from_secs(300), &[])?;
    assert_eq!(f.refused(&f.sign(&other)?).await, Some(TokenError::UntrustedTenant));
    // A list without it.
    let f = fixture(Duration::from_secs(300), &["55555555-0000-0000-0000-000000000000"])?;
    assert_eq!(f.refused(&f.sign(&other)?).await, Some(TokenError::UntrustedTenant));
    // Listed, or "*".
    let f = fixture(Duration::from_secs(300), &[OTHER_TENANT])?;
    assert_eq!(f.validator.validate(&f.sign(&other)?).await?.tenant, OTHER_TENANT);
    let f = fixture(Duration::from_secs(300), &["*"])?;
    assert!(f.validator.validate(&f.sign(&other)?).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn expired_and_not_yet_valid() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let n = now();
    let token = f.sign(&with(claims(), "exp", json!(n - 301)))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::Expired));
    // Inside the leeway.
    let token = f.sign(&with(claims(), "exp", json!(n - 200)))?;
    assert!(f.validator.validate(&token).await.is_ok());
    let token = f.sign(&with(claims(), "nbf", json!(n + 400)))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::NotYetValid));
    let token = f.sign(&with(claims(), "nbf", json!(n + 200)))?;
    assert!(f.validator.validate(&token).await.is_ok());
    // Both are required.
    let token = f.sign(&with(claims(), "exp", Value::Null))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::MissingClaim("exp")));
    let token = f.sign(&with(claims(), "nbf", Value::Null))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::MissingClaim("nbf")));
    // validate_at uses the clock given.
    let token = f.sign(&claims())?;
    assert_eq!(f.validator.validate_at(&token, n + 3600 + 301).await.err(), Some(TokenError::Expired));
    Ok(())
}

#[tokio::test]
async fn exp_and_nbf_as_strings() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let n = now();
    let token = f.sign(&with(claims(), "exp", json!((n + 3600).to_string())))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::ClaimNotNumeric("exp")));
    let token = f.sign(&with(claims(), "nbf", json!((n - 10).to_string())))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::ClaimNotNumeric("nbf")));
    let token = f.sign(&with(claims(), "iat", json!("yesterday")))?;
    assert_eq!(f.refused(&token).await, Some(TokenError::ClaimNotNumeric("iat")));
    Ok(())
}

#[tokio::test]
async fn unknown_kid_refreshes_at_most_once_per_cooldown() -> R {
    let f = fixture(Duration::from_millis(500), &[])?;
    let key_c = &test_keys()?[2];
    let token_c = key_c.sign_claims(&claims())?;
    let forged: Vec<String> =
        (0..50).map(|i| key_c.sign_raw(&json!({"alg": "RS256", "kid": format!("invented-{i}")}), &claims())).collect::<Result<_, _>>()?;
    assert!(f.validator.validate(&f.sign(&claims())?).await.is_ok());
    assert_eq!(f.keys.fetches(), 1);
    // Inside the cool-down: refused without asking the issuer.
    assert_eq!(f.refused(&token_c).await, Some(TokenError::UnknownKey));
    assert_eq!(f.keys.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(550)).await;
    // After it: one refresh, still unknown, refused; a burst of invented kids costs nothing more.
    assert_eq!(f.refused(&token_c).await, Some(TokenError::UnknownKey));
    assert_eq!(f.keys.fetches(), 2);
    for token in &forged {
        assert_eq!(f.refused(token).await, Some(TokenError::UnknownKey));
    }
    assert_eq!(f.keys.fetches(), 2);
    // Rollover: the issuer publishes key C; after the cool-down its tokens are accepted.
    f.keys.set(&[f.key_a, key_c]);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(f.validator.validate(&token_c).await.is_ok());
    assert_eq!(f.keys.fetches(), 3);
    assert!(f.validator.validate(&f.sign(&claims())?).await.is_ok(), "the old key still works");
    assert_eq!(f.keys.fetches(), 3);
    Ok(())
}

#[tokio::test]
async fn a_jwks_modulus_padded_with_a_zero_byte_still_verifies() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let mut jwk = f.key_a.jwk().clone();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap_or_default())?;
    jwk["n"] = json!(URL_SAFE_NO_PAD.encode([&[0u8][..], &n].concat()));
    let keys = KeySet::from_jwks(&json!({ "keys": [jwk] }))?;
    let key = keys.get(f.key_a.kid()).ok_or("padded key skipped")?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[AUD]);
    assert!(jsonwebtoken::decode::<Value>(&f.sign(&claims())?, &key, &v).is_ok());
    Ok(())
}

#[tokio::test]
async fn kid_of_key_a_signed_by_key_b() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let token = f.key_b.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": f.key_a.kid()}), &claims())?;
    assert_eq!(f.refused(&token).await, Some(TokenError::BadSignature));
    Ok(())
}

#[tokio::test]
async fn tampered_payload() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let token = f.sign(&claims())?;
    let parts: Vec<&str> = token.split('.').collect();
    let forged = with(claims(), "oid", json!("bbbbbbbb-0000-0000-0000-000000000002"));
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    assert_eq!(f.refused(&tampered).await, Some(TokenError::BadSignature));
    // A flipped bit in the signature.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2])?;
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(f.refused(&flipped).await, Some(TokenError::BadSignature));
    // The header changed (a different typ) under the same signature.
    let header = b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": f.key_a.kid()}));
    assert_eq!(f.refused(&format!("{header}.{}.{}", parts[1], parts[2])).await, Some(TokenError::BadSignature));
    Ok(())
}

#[tokio::test]
async fn malformed_tokens_and_headers() -> R {
    let f = fixture(Duration::from_secs(300), &[])?;
    let good = f.sign(&claims())?;
    let parts: Vec<&str> = good.split('.').collect();
    assert!(matches!(f.refused("abc").await, Some(TokenError::Malformed(_))));
    assert!(matches!(f.refused(&format!("{}.{}", parts[0], parts[1])).await, Some(TokenError::Malformed(_))));
    assert!(matches!(f.refused(&format!("{good}.x")).await, Some(TokenError::Malformed(_))));
    assert!(matches!(f.refused(&format!("%%%.{}.{}", parts[1], parts[2])).await, Some(TokenError::Malformed(_))));
    assert!(matches!(f.refused(&format!("{}.%%%.{}", parts[0], parts[2])).await, Some(TokenError::Malformed(_))));
    assert!(matches!(f.refused(&"a".repeat(70_000)).await, Some(TokenError::Malformed(_))));
    let no_kid = f.key_a.sign_raw(&json!({"alg": "RS256"}), &claims())?;
    assert_eq!(f.refused(&no_kid).await, Some(TokenError::MissingKeyId));
    let crit = f.key_a.sign_raw(&json!({"alg": "RS256", "kid": f.key_a.kid(), "crit": ["exp"]}), &claims())?;
    assert_eq!(f.refused(&crit).await, Some(TokenError::UnsupportedCriticalHeader));
    assert!(f.validator.validate(&good).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn the_dev_issuer_from_the_config_needs_no_network() -> R {
    let dir = tempfile::tempdir()?;
    let dev = DevIssuer::open_or_create(dir.path())?;
    let config = ServerConfig::parse("[auth]\ndev_issuer = true\n[network]\nrestrict_outbound = true\n", std::path::Path::new("t.toml"))?;
    let validator = TokenValidator::from_config(&config.auth, config.network.outbound_policy(), Some(&dev))?;
    let mut req = MintRequest::new(DevSubject::User("alice@contoso.com".into()));
    req.groups = vec!["sales@contoso.com".into()];
    let token = dev.mint_with(&req)?;
    let v = validator.validate(&token).await?;
    assert!(v.dev);
    assert_eq!(v.tenant, DEV_TENANT);
    let id = identity_from_token(&v, None)?;
    let oid = dev_object_id(&DevSubject::User("alice@contoso.com".into()));
    assert_eq!(id.identity().principal, format!("aaduser={oid};{DEV_TENANT}"));
    assert_eq!(id.identity().groups, vec!["aadgroup=sales@contoso.com".to_string()]);
    assert!(id.principal_fqns().contains(&"aaduser=alice@contoso.com".to_string()));
    assert!(!id.details.mfa);
    // An app.
    let app = dev.mint(DevSubject::App("11111111-0000-0000-0000-00000000000a".into()), vec![], Duration::from_secs(60))?;
    let id = identity_from_token(&validator.validate(&app).await?, None)?;
    assert_eq!(id.identity().principal, format!("aadapp=11111111-0000-0000-0000-00000000000a;{DEV_TENANT}"));
    // Another tenant's dev token: not trusted by default.
    let mut other = MintRequest::new(DevSubject::User("eve@fabrikam.com".into()));
    other.tenant = Some(OTHER_TENANT.into());
    assert_eq!(validator.validate(&dev.mint_with(&other)?).await.err(), Some(TokenError::UntrustedTenant));
    // A dev token for another audience (cluster).
    let mut elsewhere = MintRequest::new(DevSubject::User("alice@contoso.com".into()));
    elsewhere.audience = Some("https://other.kusto.windows.net".into());
    assert_eq!(validator.validate(&dev.mint_with(&elsewhere)?).await.err(), Some(TokenError::WrongAudience));
    // Expired.
    let token = dev.key().sign_claims(&dev.claims(&MintRequest::new(DevSubject::User("a@b.c".into())), now() - 7200))?;
    assert_eq!(validator.validate(&token).await.err(), Some(TokenError::Expired));
    // Another cluster's dev issuer (another key): its tokens carry a kid this one lacks.
    let other_dir = tempfile::tempdir()?;
    let stranger = DevIssuer::open_or_create(other_dir.path())?;
    let token = stranger.mint(DevSubject::User("alice@contoso.com".into()), vec![], Duration::from_secs(60))?;
    assert_eq!(validator.validate(&token).await.err(), Some(TokenError::UnknownKey));
    let _ = DEV_AUDIENCE;
    Ok(())
}

#[tokio::test]
async fn directory_groups_and_aliases_through_a_dev_token() -> R {
    let dir = tempfile::tempdir()?;
    let dev = DevIssuer::open_or_create(dir.path())?;
    let oid = dev_object_id(&DevSubject::User("bob@contoso.com".into()));
    let directory = Directory::parse(&format!(
        r#"{{"tenant": "{DEV_TENANT}",
            "users": [{{"upn": "bob@contoso.com", "oid": "{oid}"}}],
            "groups": [{{"name": "Analysts", "email": "analysts@contoso.com", "id": "99999999-0000-0000-0000-000000000009", "members": ["bob@contoso.com"]}}]}}"#
    ))?;
    let validator = TokenValidator::new(
        vec![TokenValidator::dev_issuer(&dev, vec![DEV_AUDIENCE.into()], &ValidatorOptions::default())?],
        TenantTrust::from_list(&[]),
        &ValidatorOptions::default(),
    );
    // No groups claim: the directory says Bob is an analyst, in every spelling.
    let token = dev.mint(DevSubject::User("bob@contoso.com".into()), vec![], Duration::from_secs(60))?;
    let id = identity_from_token(&validator.validate(&token).await?, Some(&directory))?;
    let groups = id.identity().groups;
    assert!(groups.contains(&format!("aadgroup=99999999-0000-0000-0000-000000000009;{DEV_TENANT}")), "{groups:?}");
    assert!(groups.contains(&"aadgroup=analysts@contoso.com".to_string()), "{groups:?}");
    // Assignments written by UPN or group email canonicalize to what the token yields.
    assert_eq!(directory.canonicalize("aaduser=Bob@Contoso.com")?, id.identity().principal);
    assert!(groups.contains(&directory.canonicalize("aadgroup=analysts@contoso.com")?));
    Ok(())
}

// ---- the real fetcher against a local HTTP server ------------------------------------------

/// A tiny HTTP/1.1 server on loopback: the discovery document and a JWKS the test can change.
struct LocalIdp {
    base: String,
    jwks: Arc<Mutex<Value>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// What the discovery document says the issuer is (normally `{base}/{T}/v2.0`).
    issuer_in_doc: Arc<Mutex<String>>,
}

async fn local_idp(keys: &[&SigningKey]) -> Result<LocalIdp, Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let jwks_doc = Arc::new(Mutex::new(jwks(keys)));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let issuer_in_doc = Arc::new(Mutex::new(format!("{base}/{T}/v2.0")));
    let (j, r, i, b) = (jwks_doc.clone(), requests.clone(), issuer_in_doc.clone(), base.clone());
    tokio::spawn(async move {
        // Bounded: a test makes a handful of requests.
        for _ in 0..64 {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            while len < buf.len() {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            if let Ok(mut g) = r.lock() {
                g.push(path.clone());
            }
            let (status, body) = if path == format!("/{T}/v2.0/.well-known/openid-configuration") {
                let iss = i.lock().map(|g| g.clone()).unwrap_or_default();
                ("200 OK", json!({"issuer": iss, "jwks_uri": format!("{b}/{T}/discovery/v2.0/keys"), "id_token_signing_alg_values_supported": ["RS256"]}).to_string())
            } else if path == format!("/{T}/discovery/v2.0/keys") {
                ("200 OK", j.lock().map(|g| g.to_string()).unwrap_or_default())
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let response = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    Ok(LocalIdp { base, jwks: jwks_doc, requests, issuer_in_doc })
}

impl LocalIdp {
    fn issuer(&self) -> String {
        format!("{}/{T}/v2.0", self.base)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn validator(&self, policy: OutboundPolicy, cooldown: Duration) -> Result<TokenValidator, Box<dyn std::error::Error + Send + Sync>> {
        let opts = options(cooldown);
        let source = Arc::new(HttpKeySource::new(&self.issuer(), None, OutboundClient::new(policy)?));
        let issuer = TrustedIssuer::new(&self.issuer(), vec![AUD.into()], Some(T.into()), source, &opts)?;
        Ok(TokenValidator::new(vec![issuer], TenantTrust::from_list(&[]), &opts))
    }
}

#[tokio::test]
async fn discovery_and_jwks_over_http_with_rollover() -> R {
    let [key_a, key_b, key_c] = test_keys()? else { return Err("three keys".into()) };
    let idp = local_idp(&[key_a]).await?;
    let validator = idp.validator(OutboundPolicy::unrestricted(), Duration::from_millis(200))?;
    let c = with(claims(), "iss", json!(idp.issuer()));
    assert_eq!(validator.validate(&key_a.sign_claims(&c)?).await?.issuer, idp.issuer());
    assert_eq!(idp.requests(), [format!("/{T}/v2.0/.well-known/openid-configuration"), format!("/{T}/discovery/v2.0/keys")]);
    // Cached: no more requests.
    assert!(validator.validate(&key_a.sign_claims(&c)?).await.is_ok());
    assert_eq!(idp.requests().len(), 2);
    // Rollover to key C.
    if let Ok(mut g) = idp.jwks.lock() {
        *g = jwks(&[key_a, key_c]);
    }
    let token_c = key_c.sign_claims(&c)?;
    assert_eq!(validator.validate(&token_c).await.err(), Some(TokenError::UnknownKey), "inside the cool-down");
    assert_eq!(idp.requests().len(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(validator.validate(&token_c).await.is_ok());
    assert_eq!(idp.requests().len(), 4, "discovery and keys once more");
    // A key never published is refused.
    assert_eq!(validator.validate(&key_b.sign_claims(&c)?).await.err(), Some(TokenError::UnknownKey));
    Ok(())
}

#[tokio::test]
async fn restricted_outbound_refuses_the_issuer_and_fails_closed() -> R {
    let key_a = &test_keys()?[0];
    let idp = local_idp(&[key_a]).await?;
    let validator = idp.validator(OutboundPolicy::new(true, vec!["login.microsoftonline.com".into()]), Duration::from_secs(300))?;
    let token = key_a.sign_claims(&with(claims(), "iss", json!(idp.issuer())))?;
    assert_eq!(validator.validate(&token).await.err(), Some(TokenError::KeysUnavailable));
    assert!(idp.requests().is_empty(), "no connection was made");
    // Listed: allowed.
    let validator = idp.validator(OutboundPolicy::new(true, vec!["127.0.0.1".into()]), Duration::from_secs(300))?;
    assert!(validator.validate(&token).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() -> R {
    let key_a = &test_keys()?[0];
    let idp = local_idp(&[key_a]).await?;
    if let Ok(mut g) = idp.issuer_in_doc.lock() {
        *g = "https://evil.example/v2.0".into();
    }
    let validator = idp.validator(OutboundPolicy::unrestricted(), Duration::from_secs(300))?;
    let token = key_a.sign_claims(&with(claims(), "iss", json!(idp.issuer())))?;
    assert_eq!(validator.validate(&token).await.err(), Some(TokenError::KeysUnavailable));
    assert_eq!(idp.requests().len(), 1, "the keys of a mismatched document are not fetched");
    Ok(())
}

#[tokio::test]
async fn validator_from_a_config_file_with_a_local_issuer() -> R {
    let key_a = &test_keys()?[0];
    let idp = local_idp(&[key_a]).await?;
    let text = format!(
        "[[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\ntenant = \"{T}\"\n[auth]\nleeway_seconds = 60\n[network]\nrestrict_outbound = true\nallowed_fqdns = [\"127.0.0.1\"]\n",
        idp.issuer()
    );
    let config = ServerConfig::parse(&text, std::path::Path::new("t.toml"))?;
    let validator = TokenValidator::from_config(&config.auth, config.network.outbound_policy(), None)?;
    let c = with(claims(), "iss", json!(idp.issuer()));
    assert!(validator.validate(&key_a.sign_claims(&c)?).await.is_ok());
    // leeway_seconds = 60 from the file.
    let late = with(c, "exp", json!(now() - 90));
    assert_eq!(validator.validate(&key_a.sign_claims(&late)?).await.err(), Some(TokenError::Expired));
    // An issuer whose tenant cannot be known is a configuration error.
    let text = format!("[[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\n", idp.issuer());
    assert!(ServerConfig::parse(&text, std::path::Path::new("t.toml")).is_err());
    Ok(())
}
