//! Signing keys of a token issuer: where they come from (OIDC discovery and the JWKS, or a
//! fixed set such as the dev issuer's) and the cache that serves them by `kid`.
//!
//! Key rollover: an issuer publishes its next key before signing with it. A token whose `kid`
//! is not in the cache makes the cache fetch the keys again, but at most once per cool-down,
//! so a stream of tokens with invented `kid`s cannot turn the server into a load generator
//! against the issuer. Keys are also fetched again once they are older than their maximum
//! age, so a removed (revoked) key stops being accepted; a failed fetch keeps the keys in
//! hand rather than refusing every token while the issuer is unreachable.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::outbound::{FetchError, OutboundClient};

/// RSA keys shorter than this are not used, whatever the issuer publishes.
pub const MIN_RSA_BITS: usize = 2048;
/// After a failed fetch, no new attempt for this long (or the cool-down, if shorter).
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// Usable signing keys by `kid`: RSA keys meant for signatures with RS256.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// One JWK as published; fields we do not use are ignored.
#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// The usable keys of a JWKS document (`{"keys": [...]}`). Keys of other types or uses,
    /// keys without a `kid`, keys for another algorithm and RSA keys under 2048 bits are
    /// skipped (an issuer may publish encryption keys next to signing keys); a document
    /// that is not a JWKS is an error.
    pub fn from_jwks(doc: &serde_json::Value) -> Result<KeySet, String> {
        let raw: RawJwks = serde_json::from_value(doc.clone()).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = HashMap::new();
        for k in raw.keys {
            let Ok(k) = serde_json::from_value::<RawJwk>(k) else { continue };
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else { continue };
            if k.kty.as_deref() != Some("RSA")
                || k.key_use.as_deref().is_some_and(|u| u != "sig")
                || k.alg.as_deref().is_some_and(|a| a != "RS256")
            {
                continue;
            }
            let (Ok(modulus), Ok(exponent)) = (base64_url(&n), base64_url(&e)) else { continue };
            // Big-endian integers: some issuers pad them with leading zero bytes.
            let modulus: Vec<u8> = modulus.into_iter().skip_while(|b| *b == 0).collect();
            let exponent: Vec<u8> = exponent.into_iter().skip_while(|b| *b == 0).collect();
            if modulus.len() * 8 < MIN_RSA_BITS || exponent.is_empty() {
                continue;
            }
            keys.insert(kid, Arc::new(DecodingKey::from_rsa_raw_components(&modulus, &exponent)));
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn base64_url(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
}

/// Where an issuer's keys come from. The cache calls [`fetch`](KeySource::fetch) for every
/// refresh; tests count those calls.
pub trait KeySource: Send + Sync + fmt::Debug {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>>;
}

/// A fixed key set (the dev issuer: no network).
#[derive(Debug, Clone)]
pub struct StaticKeys(pub KeySet);

impl KeySource for StaticKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}

/// OIDC discovery: `{issuer}/.well-known/openid-configuration` names the `jwks_uri`; or a
/// configured `jwks_uri` skips discovery. Every URL goes through the outbound policy.
#[derive(Debug, Clone)]
pub struct HttpKeySource {
    /// The `issuer` the discovery document must name (the configured issuer, `{tenantid}`
    /// included for Entra's multi-tenant endpoints, which is what their documents say).
    expected_issuer: String,
    discovery_url: String,
    jwks_uri: Option<String>,
    client: OutboundClient,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: Option<String>,
    jwks_uri: String,
}

/// Where OIDC discovery for `issuer` is. Entra's v1 issuer (`https://sts.windows.net/{tid}/`)
/// publishes its document on login.microsoftonline.com; a multi-tenant issuer's
/// `{tenantid}` is asked as `common`.
pub fn discovery_url(issuer: &str) -> String {
    let issuer = issuer.replace("{tenantid}", "common");
    if let Some(rest) = issuer.strip_prefix("https://sts.windows.net/") {
        let tenant = rest.trim_end_matches('/');
        return format!("https://login.microsoftonline.com/{tenant}/.well-known/openid-configuration");
    }
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

impl HttpKeySource {
    pub fn new(issuer: &str, jwks_uri: Option<String>, client: OutboundClient) -> HttpKeySource {
        HttpKeySource { expected_issuer: issuer.to_string(), discovery_url: discovery_url(issuer), jwks_uri, client }
    }

    async fn fetch_keys(&self) -> Result<KeySet, FetchError> {
        let jwks_uri = match &self.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let doc: Discovery = self.client.get_json(&self.discovery_url).await?;
                if let Some(iss) = &doc.issuer
                    && iss != &self.expected_issuer
                {
                    return Err(FetchError::Json {
                        url: self.discovery_url.clone(),
                        message: format!("the discovery document is for issuer '{iss}', not '{}'", self.expected_issuer),
                    });
                }
                doc.jwks_uri
            }
        };
        let doc: serde_json::Value = self.client.get_json(&jwks_uri).await?;
        KeySet::from_jwks(&doc).map_err(|message| FetchError::Json { url: jwks_uri, message })
    }
}

impl KeySource for HttpKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        Box::pin(self.fetch_keys())
    }
}

/// Why no key was found for a `kid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The issuer's keys (after a refresh, when one was allowed) have no such `kid`.
    #[error("the token's signing key (kid) is not one of the issuer's keys")]
    UnknownKid,
    /// No keys could be had from the issuer at all.
    #[error("the issuer's signing keys could not be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct CacheState {
    keys: Option<KeySet>,
    fetched_at: Option<Instant>,
    /// The last fetch attempt, successful or not.
    attempted_at: Option<Instant>,
}

/// The keys of one issuer, fetched lazily, refreshed on an unknown `kid` at most once per
/// cool-down and when older than their maximum age.
pub struct KeyCache {
    source: Arc<dyn KeySource>,
    state: RwLock<CacheState>,
    /// One refresh at a time: the others wait for it and then look again.
    refreshing: tokio::sync::Mutex<()>,
    cooldown: Duration,
    max_age: Duration,
    fetches: AtomicU64,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache").field("source", &self.source).field("fetches", &self.fetches()).finish()
    }
}

enum Need {
    /// Use this key.
    Have(Arc<DecodingKey>),
    /// Fetch (first time, unknown kid, or stale keys), then look again.
    Fetch,
    /// Unknown and no fetch allowed now.
    Refuse(KeyError),
}

impl KeyCache {
    pub fn new(source: Arc<dyn KeySource>, cooldown: Duration, max_age: Duration) -> KeyCache {
        KeyCache { source, state: RwLock::new(CacheState::default()), refreshing: tokio::sync::Mutex::new(()), cooldown, max_age, fetches: AtomicU64::new(0) }
    }

    /// How many times the source was asked for keys.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn assess(&self, kid: &str, now: Instant) -> Need {
        let Ok(state) = self.state.read() else { return Need::Refuse(KeyError::Unavailable("key cache poisoned".into())) };
        let since_attempt = state.attempted_at.map(|t| now.saturating_duration_since(t));
        let backoff = FAILURE_BACKOFF.min(self.cooldown);
        match &state.keys {
            None => match since_attempt {
                Some(d) if d < backoff => Need::Refuse(KeyError::Unavailable("the last attempt failed; retrying shortly".into())),
                _ => Need::Fetch,
            },
            Some(keys) => {
                let stale = state.fetched_at.is_none_or(|t| now.saturating_duration_since(t) >= self.max_age);
                match keys.get(kid) {
                    // Stale keys are refreshed first (a revoked key must go), but if that
                    // fails they are still used.
                    Some(_) if stale && since_attempt.is_none_or(|d| d >= backoff) => Need::Fetch,
                    Some(k) => Need::Have(k),
                    None if since_attempt.is_none_or(|d| d >= self.cooldown) => Need::Fetch,
                    None => Need::Refuse(KeyError::UnknownKid),
                }
            }
        }
    }

    /// The key for `kid`, fetching the issuer's keys when needed and allowed.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        match self.assess(kid, Instant::now()) {
            Need::Have(k) => return Ok(k),
            Need::Refuse(e) => return Err(e),
            Need::Fetch => {}
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Another task may have fetched while this one waited: look again, and fetch only
        // if that is still needed and allowed.
        match self.assess(kid, Instant::now()) {
            Need::Have(k) => return Ok(k),
            Need::Refuse(e) => return Err(e),
            Need::Fetch => {}
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.source.fetch().await;
        let now = Instant::now();
        let Ok(mut state) = self.state.write() else { return Err(KeyError::Unavailable("key cache poisoned".into())) };
        state.attempted_at = Some(now);
        match fetched {
            Ok(keys) => {
                state.keys = Some(keys);
                state.fetched_at = Some(now);
            }
            Err(e) => {
                tracing::warn!(target: "kustodian::auth", error = %e, "fetching an issuer's signing keys failed");
                if state.keys.is_none() {
                    return Err(KeyError::Unavailable(e.to_string()));
                }
            }
        }
        match state.keys.as_ref().and_then(|k| k.get(kid)) {
            Some(k) => Ok(k),
            None => Err(KeyError::UnknownKid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A key source whose answer the test changes, counting fetches.
    #[derive(Debug)]
    struct Scripted(Mutex<Result<KeySet, String>>);

    impl KeySource for Scripted {
        fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
            let r = self.0.lock().map(|g| g.clone()).unwrap_or_else(|_| Err("poisoned".into()));
            Box::pin(async move { r.map_err(|message| FetchError::Http { url: "test".into(), message }) })
        }
    }

    fn set(kids: &[&str]) -> KeySet {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let keys: Vec<serde_json::Value> =
            kids.iter().map(|k| serde_json::json!({"kty": "RSA", "kid": k, "use": "sig", "n": n, "e": "AQAB"})).collect();
        KeySet::from_jwks(&serde_json::json!({ "keys": keys })).unwrap_or_default()
    }

    #[test]
    fn jwks_parsing_keeps_only_rs256_signing_keys() {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB", "x5c": ["..."]},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "weak", "n": short, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            "garbage"
        ]});
        let keys = KeySet::from_jwks(&doc).unwrap_or_default();
        assert_eq!(keys.len(), 1);
        assert!(keys.get("good").is_some());
        assert!(KeySet::from_jwks(&serde_json::json!({"nokeys": []})).is_err());
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_once_per_cooldown() {
        let source = Arc::new(Scripted(Mutex::new(Ok(set(&["a"])))));
        let cache = KeyCache::new(source.clone(), Duration::from_secs(3600), Duration::from_secs(86400));
        assert!(cache.key("a").await.is_ok());
        assert_eq!(cache.fetches(), 1);
        assert!(cache.key("a").await.is_ok());
        assert_eq!(cache.fetches(), 1, "a known kid is served from the cache");
        // Unknown kid right after a fetch: inside the cool-down, refused without a fetch.
        assert_eq!(cache.key("b").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(cache.fetches(), 1);
        for _ in 0..20 {
            assert_eq!(cache.key("invented").await.err(), Some(KeyError::UnknownKid));
        }
        assert_eq!(cache.fetches(), 1);
    }

    #[tokio::test]
    async fn rollover_picks_up_the_new_key_after_the_cooldown() {
        let source = Arc::new(Scripted(Mutex::new(Ok(set(&["old"])))));
        let cache = KeyCache::new(source.clone(), Duration::from_millis(50), Duration::from_secs(86400));
        assert!(cache.key("old").await.is_ok());
        if let Ok(mut g) = source.0.lock() {
            *g = Ok(set(&["old", "new"]));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(cache.key("new").await.is_ok());
        assert_eq!(cache.fetches(), 2);
        // Still unknown after the refresh: refused, and no further fetch until the cool-down.
        assert_eq!(cache.key("other").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test]
    async fn stale_keys_are_refetched_and_removed_keys_refused() {
        let source = Arc::new(Scripted(Mutex::new(Ok(set(&["k1", "k2"])))));
        let cache = KeyCache::new(source.clone(), Duration::from_millis(1), Duration::from_millis(30));
        assert!(cache.key("k1").await.is_ok());
        if let Ok(mut g) = source.0.lock() {
            *g = Ok(set(&["k2"]));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.key("k1").await.err(), Some(KeyError::UnknownKid), "a key the issuer removed stops working");
        assert!(cache.key("k2").await.is_ok());
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_keys_in_hand() {
        let source = Arc::new(Scripted(Mutex::new(Ok(set(&["k"])))));
        let cache = KeyCache::new(source.clone(), Duration::from_millis(1), Duration::from_millis(10));
        assert!(cache.key("k").await.is_ok());
        if let Ok(mut g) = source.0.lock() {
            *g = Err("issuer down".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(cache.key("k").await.is_ok());
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test]
    async fn no_keys_at_all_is_unavailable_with_backoff() {
        let source = Arc::new(Scripted(Mutex::new(Err("down".into()))));
        let cache = KeyCache::new(source.clone(), Duration::from_secs(60), Duration::from_secs(60));
        assert!(matches!(cache.key("k").await, Err(KeyError::Unavailable(_))));
        assert!(matches!(cache.key("k").await, Err(KeyError::Unavailable(_))));
        assert_eq!(cache.fetches(), 1, "no second attempt inside the back-off");
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_fetch_once() {
        let source = Arc::new(Scripted(Mutex::new(Ok(set(&["a"])))));
        let cache = Arc::new(KeyCache::new(source, Duration::from_secs(3600), Duration::from_secs(3600)));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let c = cache.clone();
                tokio::spawn(async move { c.key(if i % 2 == 0 { "a" } else { "zz" }).await.is_ok() })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        assert_eq!(cache.fetches(), 1);
    }

    #[test]
    fn discovery_urls() {
        assert_eq!(
            discovery_url("https://login.microsoftonline.com/t1/v2.0"),
            "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(discovery_url("https://sts.windows.net/t1/"), "https://login.microsoftonline.com/t1/.well-known/openid-configuration");
        assert_eq!(
            discovery_url("https://login.microsoftonline.com/{tenantid}/v2.0"),
            "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(discovery_url("https://idp.example/realms/x/"), "https://idp.example/realms/x/.well-known/openid-configuration");
    }
}
