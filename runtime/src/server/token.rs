//! Bearer token validation: the `Authorization: Bearer` JWT of every request.
//!
//! The rules, each refused with its own [`TokenError`] (all HTTP 401):
//! * RS256 only, chosen here: the token's `alg` header is compared with it, never used to
//!   pick a verifier (`alg: none` and HS256 signed with the public key are refused);
//! * the issuer (`iss`) must be configured; its keys come from OIDC discovery (see `jwks`)
//!   and the header's `kid` picks one, an unknown `kid` refreshing the keys at most once per
//!   cool-down;
//! * the signature is verified (jsonwebtoken, aws-lc-rs) before any claim is believed;
//! * `exp`, `nbf`, `iss`, `aud` are required; `exp` and `nbf` must be numbers (not strings),
//!   checked with leeway; `aud` must be one of the issuer's audiences;
//! * `tid` must be the issuer's tenant (Entra issuer URLs name it:
//!   `https://login.microsoftonline.com/{tid}/v2.0`, `https://sts.windows.net/{tid}/`), and
//!   the tenant must be trusted (ADX's `trustedExternalTenants`).
//!
//! Error messages say what is wrong and never contain the token or values taken from it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::config::AuthConfig;
use super::dev_issuer::{DEV_ISSUER_TEMPLATE, DEV_TENANT, DevIssuer};
use super::issuer::issuer_tenant;
use super::jwks::{HttpKeySource, KeyCache, KeyError, KeySource, StaticKeys};
use super::outbound::{FetchError, OutboundClient, OutboundPolicy};

/// Tokens longer than this are refused unread (Entra's, with group claims, stay under 16 KB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a request's credentials were refused. Every variant is an HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token: the request has no Authorization header")]
    NoToken,
    #[error("the Authorization header is not a bearer token ('Bearer <token>')")]
    NotBearer,
    #[error("the bearer token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    #[error("the token's signing algorithm is not accepted: only RS256 is")]
    AlgorithmNotAllowed,
    #[error("the token header has critical extensions this server does not understand")]
    UnsupportedCriticalHeader,
    #[error("the token header has no key id (kid)")]
    MissingKeyId,
    #[error("the token's issuer is not trusted by this cluster")]
    UntrustedIssuer,
    #[error("the token's signing key (kid) is not one of its issuer's keys")]
    UnknownKey,
    #[error("the token issuer's signing keys are unavailable")]
    KeysUnavailable,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has no '{0}' claim")]
    MissingClaim(&'static str),
    #[error("the token's '{0}' claim must be a number (NumericDate)")]
    ClaimNotNumeric(&'static str),
    #[error("the token's '{0}' claim has the wrong type")]
    ClaimFormat(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is not for this cluster (aud)")]
    WrongAudience,
    #[error("the token's tenant (tid) is not its issuer's tenant")]
    TenantMismatch,
    #[error("the token's tenant is not trusted by this cluster")]
    UntrustedTenant,
}

impl TokenError {
    /// The HTTP status: always 401 Unauthorized.
    pub fn status(&self) -> u16 {
        401
    }

    /// A `WWW-Authenticate` header value (RFC 6750).
    pub fn www_authenticate(&self) -> String {
        match self {
            TokenError::NoToken | TokenError::NotBearer => "Bearer".to_string(),
            other => format!("Bearer error=\"invalid_token\", error_description=\"{other}\""),
        }
    }
}

/// The token out of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let h = header.map(str::trim).filter(|h| !h.is_empty() && !h.eq_ignore_ascii_case("bearer")).ok_or(TokenError::NoToken)?;
    let (scheme, token) = h.split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::NoToken);
    }
    Ok(token)
}

/// A validated token: its issuer and tenant as checked, and its claims.
#[derive(Debug, Clone)]
pub struct ValidatedToken {
    /// The `iss` claim (a configured issuer).
    pub issuer: String,
    /// The tenant the token is for, lower-cased: its `tid`, checked against the issuer.
    pub tenant: String,
    /// Whether the dev issuer signed it.
    pub dev: bool,
    pub claims: Map<String, Value>,
}

/// Which tenants are trusted beyond the issuers' own.
#[derive(Debug, Clone)]
pub enum TenantTrust {
    Any,
    Listed(HashSet<String>),
}

impl TenantTrust {
    /// From `trusted_tenants`: `"*"` anywhere means any tenant.
    pub fn from_list(list: &[String]) -> TenantTrust {
        if list.iter().any(|t| t.trim() == "*") {
            TenantTrust::Any
        } else {
            TenantTrust::Listed(list.iter().map(|t| t.trim().to_lowercase()).collect())
        }
    }
}

/// A token issuer the server trusts.
#[derive(Debug)]
pub struct TrustedIssuer {
    /// The exact `iss`, or a template with `{tenantid}`.
    issuer: String,
    audiences: Vec<String>,
    /// The issuer's own tenant, which its tokens' `tid` must be (None for templates).
    tenant: Option<String>,
    keys: KeyCache,
    dev: bool,
}

impl TrustedIssuer {
    /// An issuer with its audiences and key source. `tenant` overrides the tenant its URL
    /// names; an issuer with neither (and not a `{tenantid}` template) is refused: its tokens'
    /// `tid` could not be checked.
    pub fn new(issuer: &str, audiences: Vec<String>, tenant: Option<String>, source: Arc<dyn KeySource>, options: &ValidatorOptions) -> Result<TrustedIssuer, String> {
        let tenant = tenant.map(|t| t.trim().to_lowercase()).or_else(|| issuer_tenant(issuer));
        if tenant.is_none() && !issuer.contains("{tenantid}") {
            return Err(format!(
                "issuer '{issuer}': its tenant cannot be told from its URL; set `tenant` (the tenant id its tokens carry in `tid`)"
            ));
        }
        if issuer.matches("{tenantid}").count() > 1 {
            return Err(format!("issuer '{issuer}': '{{tenantid}}' may appear once"));
        }
        let audiences: Vec<String> = audiences.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if audiences.is_empty() {
            return Err(format!("issuer '{issuer}': no audiences"));
        }
        Ok(TrustedIssuer {
            issuer: issuer.to_string(),
            audiences,
            tenant,
            keys: KeyCache::new(source, options.key_refresh_cooldown, options.keys_max_age),
            dev: false,
        })
    }

    /// The key cache (tests count its fetches).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether `iss` is this issuer's, and the tenant the `iss` names when it is a template.
    fn matches(&self, iss: &str) -> Option<Option<String>> {
        match self.issuer.split_once("{tenantid}") {
            None => (self.issuer == iss).then_some(None),
            Some((prefix, suffix)) => {
                let middle = iss.strip_prefix(prefix)?.strip_suffix(suffix)?;
                (!middle.is_empty() && !middle.contains(['/', '?', '#'])).then(|| Some(middle.to_lowercase()))
            }
        }
    }

    fn accepts_audience(&self, aud: &str) -> bool {
        let aud = aud.trim_end_matches('/');
        self.audiences.iter().any(|a| a.trim_end_matches('/') == aud)
    }
}

/// Tunables of validation.
#[derive(Debug, Clone)]
pub struct ValidatorOptions {
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    pub key_refresh_cooldown: Duration,
    pub keys_max_age: Duration,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        ValidatorOptions {
            leeway: Duration::from_secs(super::config::DEFAULT_LEEWAY_SECONDS),
            key_refresh_cooldown: Duration::from_secs(super::config::DEFAULT_KEY_REFRESH_COOLDOWN_SECONDS),
            keys_max_age: Duration::from_secs(super::config::DEFAULT_KEYS_MAX_AGE_SECONDS),
        }
    }
}

impl ValidatorOptions {
    pub fn from_config(auth: &AuthConfig) -> ValidatorOptions {
        ValidatorOptions {
            leeway: Duration::from_secs(auth.leeway_seconds),
            key_refresh_cooldown: Duration::from_secs(auth.key_refresh_cooldown_seconds),
            keys_max_age: Duration::from_secs(auth.keys_max_age_seconds),
        }
    }
}

/// Validates bearer tokens against the trusted issuers.
#[derive(Debug)]
pub struct TokenValidator {
    issuers: Vec<TrustedIssuer>,
    trust: TenantTrust,
    /// The issuers' own tenants: always trusted.
    home_tenants: HashSet<String>,
    leeway: i64,
}

/// Why a validator could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("{0}")]
    Issuer(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl TokenValidator {
    pub fn new(issuers: Vec<TrustedIssuer>, trust: TenantTrust, options: &ValidatorOptions) -> TokenValidator {
        let mut home_tenants: HashSet<String> = issuers.iter().filter_map(|i| i.tenant.clone()).collect();
        if issuers.iter().any(|i| i.dev) {
            home_tenants.insert(DEV_TENANT.to_string());
        }
        TokenValidator { issuers, trust, home_tenants, leeway: i64::try_from(options.leeway.as_secs()).unwrap_or(i64::MAX) }
    }

    /// The validator the configuration describes: its issuers with OIDC discovery through the
    /// outbound policy, and the dev issuer (when `dev_issuer = true`) from its key, without
    /// any network.
    pub fn from_config(auth: &AuthConfig, outbound: OutboundPolicy, dev: Option<&DevIssuer>) -> Result<TokenValidator, ValidatorError> {
        let options = ValidatorOptions::from_config(auth);
        let client = OutboundClient::new(outbound)?;
        let mut issuers = Vec::new();
        for i in &auth.issuers {
            let source = Arc::new(HttpKeySource::new(&i.issuer, i.jwks_uri.clone(), client.clone()));
            issuers.push(TrustedIssuer::new(&i.issuer, i.audiences.clone(), i.tenant.clone(), source, &options).map_err(ValidatorError::Issuer)?);
        }
        if auth.dev_issuer {
            let dev = dev.ok_or_else(|| ValidatorError::Issuer("dev_issuer = true but the dev issuer's key was not loaded".into()))?;
            issuers.push(TokenValidator::dev_issuer(dev, auth.dev_audiences.clone(), &options)?);
        }
        Ok(TokenValidator::new(issuers, TenantTrust::from_list(&auth.trusted_tenants), &options))
    }

    /// The dev issuer as a trusted issuer: a `{tenantid}` template over its fixed keys.
    pub fn dev_issuer(dev: &DevIssuer, audiences: Vec<String>, options: &ValidatorOptions) -> Result<TrustedIssuer, ValidatorError> {
        let mut issuer = TrustedIssuer::new(DEV_ISSUER_TEMPLATE, audiences, None, Arc::new(StaticKeys(dev.key_set())), options)
            .map_err(ValidatorError::Issuer)?;
        issuer.dev = true;
        Ok(issuer)
    }

    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Validates the value of an `Authorization` header.
    pub async fn validate_header(&self, authorization: Option<&str>) -> Result<ValidatedToken, TokenError> {
        self.validate(bearer(authorization)?).await
    }

    /// Validates a token now.
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
        self.validate_at(token, now).await
    }

    /// Validates a token at `now` (seconds since the Unix epoch).
    pub async fn validate_at(&self, token: &str, now: i64) -> Result<ValidatedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("a JWT has three dot-separated parts"));
        };
        let header = decode_object(header).ok_or(TokenError::Malformed("the header is not base64url JSON"))?;
        // The algorithm is ours: anything else in the header is refused before a key is
        // looked at.
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        if header.contains_key("crit") {
            return Err(TokenError::UnsupportedCriticalHeader);
        }
        let kid = match header.get("kid") {
            Some(Value::String(k)) if !k.is_empty() => k.as_str(),
            _ => return Err(TokenError::MissingKeyId),
        };
        // Claims read before the signature is checked only choose the issuer (and so the
        // keys); nothing else is believed until the signature verifies.
        let unverified = decode_object(payload).ok_or(TokenError::Malformed("the payload is not base64url JSON"))?;
        let iss = match unverified.get("iss") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(TokenError::ClaimFormat("iss")),
            None => return Err(TokenError::MissingClaim("iss")),
        };
        let (issuer, iss_tenant) = self
            .issuers
            .iter()
            .find_map(|i| i.matches(iss).map(|t| (i, t)))
            .ok_or(TokenError::UntrustedIssuer)?;
        let key = issuer.keys.key(kid).await.map_err(|e| match e {
            KeyError::UnknownKid => TokenError::UnknownKey,
            KeyError::Unavailable(_) => TokenError::KeysUnavailable,
        })?;
        let claims = verify_signature(token, &key)?;
        self.check_claims(issuer, iss_tenant, &claims, now)?;
        let tenant = effective_tenant(issuer, &claims)?;
        self.check_tenant_trusted(&tenant)?;
        Ok(ValidatedToken { issuer: issuer.issuer.clone(), tenant, dev: issuer.dev, claims })
    }

    fn check_claims(&self, issuer: &TrustedIssuer, iss_tenant: Option<String>, claims: &Map<String, Value>, now: i64) -> Result<(), TokenError> {
        // The signed `iss` is the one the issuer was chosen by (the payload verified is the
        // payload read), so it needs no second comparison.
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        if claims.contains_key("iat") {
            numeric_date(claims, "iat")?;
        }
        if now > exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if nbf > now.saturating_add(self.leeway) {
            return Err(TokenError::NotYetValid);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => issuer.accepts_audience(a),
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => list.iter().filter_map(Value::as_str).any(|a| issuer.accepts_audience(a)),
            Some(_) => return Err(TokenError::ClaimFormat("aud")),
            None => return Err(TokenError::MissingClaim("aud")),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        // A template issuer's `iss` names the tenant: `tid` must be that tenant.
        if let Some(named) = iss_tenant {
            match claims.get("tid") {
                Some(Value::String(tid)) if tid.to_lowercase() == named => {}
                Some(Value::String(_)) => return Err(TokenError::TenantMismatch),
                Some(_) => return Err(TokenError::ClaimFormat("tid")),
                None => return Err(TokenError::MissingClaim("tid")),
            }
        }
        Ok(())
    }

    fn check_tenant_trusted(&self, tenant: &str) -> Result<(), TokenError> {
        let trusted = self.home_tenants.contains(tenant)
            || match &self.trust {
                TenantTrust::Any => true,
                TenantTrust::Listed(l) => l.contains(tenant),
            };
        if trusted { Ok(()) } else { Err(TokenError::UntrustedTenant) }
    }
}

/// The token's tenant: its `tid`, which must be the issuer's own tenant when the issuer has
/// one; an issuer that is not Entra's may leave `tid` out, and then its configured tenant is
/// the token's.
fn effective_tenant(issuer: &TrustedIssuer, claims: &Map<String, Value>) -> Result<String, TokenError> {
    let tid = match claims.get("tid") {
        Some(Value::String(t)) if !t.trim().is_empty() => Some(t.trim().to_lowercase()),
        Some(_) => return Err(TokenError::ClaimFormat("tid")),
        None => None,
    };
    match (&issuer.tenant, tid) {
        (Some(home), Some(tid)) if *home == tid => Ok(tid),
        (Some(_), Some(_)) => Err(TokenError::TenantMismatch),
        (Some(home), None) => Ok(home.clone()),
        (None, Some(tid)) => Ok(tid),
        (None, None) => Err(TokenError::MissingClaim("tid")),
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A required NumericDate claim: a JSON number (RFC 7519), never a string.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<i64, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(TokenError::MissingClaim(name)),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.floor() as i64))
            .ok_or(TokenError::ClaimFormat(name)),
        Some(_) => Err(TokenError::ClaimNotNumeric(name)),
    }
}

/// Verifies the RS256 signature with jsonwebtoken (aws-lc-rs) and returns the claims. Only
/// the signature is checked here; the claims are checked by the caller, with its clock.
fn verify_signature(token: &str, key: &jsonwebtoken::DecodingKey) -> Result<Map<String, Value>, TokenError> {
    let mut v = Validation::new(Algorithm::RS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map(|d| d.claims).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => TokenError::AlgorithmNotAllowed,
        ErrorKind::Base64(_) => TokenError::Malformed("a part is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenError::Malformed("a part is not JSON"),
        _ => TokenError::BadSignature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(None), Err(TokenError::NoToken));
        assert_eq!(bearer(Some("  ")), Err(TokenError::NoToken));
        assert_eq!(bearer(Some("Bearer ")), Err(TokenError::NoToken));
        assert_eq!(bearer(Some("Basic dXNlcjpwdw==")), Err(TokenError::NotBearer));
        assert_eq!(bearer(Some("eyJhbGciOi")), Err(TokenError::NotBearer));
        assert_eq!(bearer(Some("bearer a.b.c")), Ok("a.b.c"));
        assert_eq!(bearer(Some("Bearer  a.b.c ")), Ok("a.b.c"));
    }

    #[test]
    fn error_messages_are_401_without_token_material() {
        for e in [TokenError::NoToken, TokenError::BadSignature, TokenError::ClaimNotNumeric("exp"), TokenError::UntrustedTenant] {
            assert_eq!(e.status(), 401);
            assert!(!e.to_string().contains("eyJ"));
        }
        assert_eq!(TokenError::NoToken.www_authenticate(), "Bearer");
        assert!(TokenError::Expired.www_authenticate().contains("invalid_token"));
    }

    #[test]
    fn numeric_dates() {
        let m = |v: Value| match serde_json::json!({ "exp": v }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        assert_eq!(numeric_date(&m(serde_json::json!(5)), "exp"), Ok(5));
        assert_eq!(numeric_date(&m(serde_json::json!(5.7)), "exp"), Ok(5));
        assert_eq!(numeric_date(&m(serde_json::json!("5")), "exp"), Err(TokenError::ClaimNotNumeric("exp")));
        assert_eq!(numeric_date(&m(serde_json::json!(true)), "exp"), Err(TokenError::ClaimNotNumeric("exp")));
        assert_eq!(numeric_date(&m(Value::Null), "exp"), Err(TokenError::MissingClaim("exp")));
        assert_eq!(numeric_date(&m(serde_json::json!(1e300)), "exp"), Err(TokenError::ClaimFormat("exp")));
    }
}
