//! A local token issuer, so that Kustodian can be tried (and tested) without Microsoft Entra.
//!
//! Its RSA-2048 key is generated once per cluster directory (`DIR/dev-issuer/key.pk8`,
//! PKCS#8, mode 0600) and its tokens are shaped like Entra v2 access tokens: `iss`
//! `https://kustodian.local/dev/<tid>/v2.0`, `aud`, `tid`, `oid` (stable, derived from the
//! UPN or app id), `upn`/`preferred_username`, `groups`, `amr`, `iat`/`nbf`/`exp`, and a `kid`
//! (the key's RFC 7638 thumbprint) in the header. The validator trusts it when the config
//! says `dev_issuer = true`, with the key read from the directory: no network.
//!
//! Anyone who can read the key file can mint tokens for any principal: it is a development
//! tool, and the file is refused if other users can read it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::jwks::KeySet;

/// The dev issuer's tenant: tokens are minted for it unless another is asked for.
pub const DEV_TENANT: &str = "6b757374-6f64-4000-8000-646576746e74";
/// The dev issuer's `iss`, with `{tenantid}` standing for the token's `tid`.
pub const DEV_ISSUER_TEMPLATE: &str = "https://kustodian.local/dev/{tenantid}/v2.0";
/// The audience dev tokens carry unless another is asked for.
pub const DEV_AUDIENCE: &str = "https://kustodian.local";
/// The client the dev issuer pretends user tokens were requested by (`azp`/`appid`).
pub const DEV_CLIENT_ID: &str = "6b757374-6f64-4000-8000-636c69656e74";

/// The dev issuer's `iss` for a tenant.
pub fn dev_issuer_url(tenant: &str) -> String {
    DEV_ISSUER_TEMPLATE.replace("{tenantid}", tenant)
}

/// Errors of the dev issuer: its key file, or signing.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("dev issuer key {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("dev issuer key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("dev issuer: {0}")]
    Sign(String),
}

/// An RSA key that signs RS256 JWTs: the dev issuer's, and the tests' forged ones.
pub struct SigningKey {
    pair: RsaKeyPair,
    kid: String,
    /// The public key as a JWK (`kty`, `n`, `e`, `kid`, `use`, `alg`).
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key.
    pub fn generate() -> Result<SigningKey, DevIssuerError> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| DevIssuerError::Sign(format!("key generation failed: {e}")))?;
        SigningKey::from_pair(pair)
    }

    /// A key from its PKCS#8 DER encoding.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| format!("not an RSA PKCS#8 key: {e}"))?;
        SigningKey::from_pair(pair).map_err(|e| e.to_string())
    }

    fn from_pair(pair: RsaKeyPair) -> Result<SigningKey, DevIssuerError> {
        if pair.public_modulus_len() * 8 < super::jwks::MIN_RSA_BITS {
            return Err(DevIssuerError::Sign("RSA keys under 2048 bits are not used".into()));
        }
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        // RFC 7638: the thumbprint hashes the required members in lexicographic order.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Ok(SigningKey { pair, kid, jwk })
    }

    /// The PKCS#8 DER encoding of the private key.
    pub fn pkcs8(&self) -> Result<Vec<u8>, DevIssuerError> {
        self.pair
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| DevIssuerError::Sign(format!("cannot encode the key: {e}")))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// A JWKS document holding just this key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// Signs `header.claims` with RS256 and returns the compact JWT. The header is taken as
    /// given (tests forge headers); [`sign_claims`](Self::sign_claims) writes the usual one.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> Result<String, DevIssuerError> {
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut signature)
            .map_err(|e| DevIssuerError::Sign(format!("signing failed: {e}")))?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// Signs claims under `{"alg":"RS256","typ":"JWT","kid":<this key>}`.
    pub fn sign_claims(&self, claims: &Value) -> Result<String, DevIssuerError> {
        self.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims)
    }
}

/// Who a dev token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevSubject {
    /// A user, by UPN (`alice@contoso.com`).
    User(String),
    /// An application or managed identity, by application (client) id.
    App(String),
}

/// Everything a dev token can say; [`MintRequest::new`] gives Entra's usual shape.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub subject: DevSubject,
    /// Group claims: object ids (as Entra emits them), or group emails / names.
    pub groups: Vec<String>,
    /// Lifetime from now.
    pub expires_in: Duration,
    /// The tenant; default [`DEV_TENANT`].
    pub tenant: Option<String>,
    /// The audience; default [`DEV_AUDIENCE`].
    pub audience: Option<String>,
    /// Whether `amr` says multi-factor authentication was used.
    pub mfa: bool,
    /// The object id; default derived from the UPN or app id (stable).
    pub object_id: Option<String>,
    /// The display name (`name`); default the UPN's local part or the app id.
    pub name: Option<String>,
}

impl MintRequest {
    pub fn new(subject: DevSubject) -> MintRequest {
        MintRequest {
            subject,
            groups: Vec::new(),
            expires_in: Duration::from_secs(3600),
            tenant: None,
            audience: None,
            mfa: false,
            object_id: None,
            name: None,
        }
    }
}

/// A stable object id for a dev principal: a GUID-shaped digest of its kind and name, so the
/// same UPN gets the same `aaduser=<oid>;<tid>` in every token and every cluster.
pub fn dev_object_id(subject: &DevSubject) -> String {
    let (kind, name) = match subject {
        DevSubject::User(upn) => ("user", upn),
        DevSubject::App(id) => ("app", id),
    };
    let digest = Sha256::digest(format!("kustodian-dev-oid\0{kind}\0{}", name.trim().to_lowercase()).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    // RFC 9562 version 8 (custom), variant 10.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// The dev issuer of one cluster directory.
#[derive(Debug)]
pub struct DevIssuer {
    key: SigningKey,
    path: PathBuf,
}

impl DevIssuer {
    /// The key file's place in a cluster directory.
    pub fn key_path(cluster_dir: &Path) -> PathBuf {
        cluster_dir.join("dev-issuer").join("key.pk8")
    }

    /// Opens the dev issuer of a cluster directory, creating its key the first time. Safe
    /// when several processes do this at once: each writes a complete key to its own
    /// temporary file and links it into place only if no key is there yet, so all of them
    /// end up reading the same (first) key.
    pub fn open_or_create(cluster_dir: &Path) -> Result<DevIssuer, DevIssuerError> {
        let path = DevIssuer::key_path(cluster_dir);
        if !path.exists() {
            create_key_file(&path)?;
        }
        DevIssuer::open(&path)
    }

    /// Opens an existing key file.
    pub fn open(path: &Path) -> Result<DevIssuer, DevIssuerError> {
        let io = |source| DevIssuerError::Io { path: path.to_path_buf(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(DevIssuerError::Key {
                    path: path.to_path_buf(),
                    message: format!("other users can read it (mode {:o}); anyone who can read it can mint tokens: chmod 600 it", mode & 0o777),
                });
            }
        }
        let der = fs::read(path).map_err(io)?;
        let key = SigningKey::from_pkcs8(&der).map_err(|message| DevIssuerError::Key { path: path.to_path_buf(), message })?;
        Ok(DevIssuer { key, path: path.to_path_buf() })
    }

    /// A dev issuer over a given key (tests).
    pub fn with_key(key: SigningKey) -> DevIssuer {
        DevIssuer { key, path: PathBuf::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The JWKS of the dev issuer (what `/.well-known` would serve).
    pub fn jwks(&self) -> Value {
        self.key.jwks()
    }

    /// The dev issuer's keys, for the validator.
    pub fn key_set(&self) -> KeySet {
        KeySet::from_jwks(&self.jwks()).unwrap_or_default()
    }

    /// A token for a user or an app with groups, valid for `expires_in` from now.
    pub fn mint(&self, subject: DevSubject, groups: Vec<String>, expires_in: Duration) -> Result<String, DevIssuerError> {
        self.mint_with(&MintRequest { groups, expires_in, ..MintRequest::new(subject) })
    }

    /// The claims of a token, as [`mint_with`](Self::mint_with) signs them, at `now`.
    pub fn claims(&self, req: &MintRequest, now: i64) -> Value {
        let tenant = req.tenant.clone().unwrap_or_else(|| DEV_TENANT.to_string()).to_lowercase();
        let oid = req.object_id.clone().unwrap_or_else(|| dev_object_id(&req.subject));
        let exp = now.saturating_add(i64::try_from(req.expires_in.as_secs()).unwrap_or(i64::MAX));
        let mut claims = json!({
            "aud": req.audience.clone().unwrap_or_else(|| DEV_AUDIENCE.to_string()),
            "iss": dev_issuer_url(&tenant),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "tid": tenant,
            "oid": oid,
            "sub": oid,
            "ver": "2.0",
            "uti": uuid::Uuid::new_v4().simple().to_string(),
        });
        let Value::Object(map) = &mut claims else { return claims };
        match &req.subject {
            DevSubject::User(upn) => {
                let upn = upn.trim().to_string();
                let local = upn.split('@').next().unwrap_or(&upn).to_string();
                map.insert("idtyp".into(), json!("user"));
                map.insert("upn".into(), json!(upn));
                map.insert("preferred_username".into(), json!(upn));
                map.insert("name".into(), json!(req.name.clone().unwrap_or(local)));
                map.insert("azp".into(), json!(DEV_CLIENT_ID));
                map.insert("scp".into(), json!("user_impersonation"));
                let amr = if req.mfa { json!(["pwd", "mfa"]) } else { json!(["pwd"]) };
                map.insert("amr".into(), amr);
            }
            DevSubject::App(app_id) => {
                map.insert("idtyp".into(), json!("app"));
                map.insert("azp".into(), json!(app_id.trim()));
                map.insert("appid".into(), json!(app_id.trim()));
                if let Some(name) = &req.name {
                    map.insert("app_displayname".into(), json!(name));
                }
            }
        }
        if !req.groups.is_empty() {
            map.insert("groups".into(), json!(req.groups));
        }
        claims
    }

    /// A token as asked.
    pub fn mint_with(&self, req: &MintRequest) -> Result<String, DevIssuerError> {
        self.key.sign_claims(&self.claims(req, unix_now()))
    }
}

/// Writes a new key to `path` unless one appears there first.
fn create_key_file(path: &Path) -> Result<(), DevIssuerError> {
    let io = |source| DevIssuerError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)?;
    let key = SigningKey::generate()?;
    let der = key.pkcs8()?;
    let tmp = dir.join(format!(".key.pk8.{}.{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(&der)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    // A hard link never replaces an existing file: the first key linked stays the key.
    let linked = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A file system without hard links: rename, which is atomic but may replace a key
        // another process created in the same instant.
        Err(_) if !path.exists() => fs::rename(&tmp, path),
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&tmp);
    linked.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn key_is_created_once_with_private_permissions() -> R {
        let dir = tempfile::tempdir()?;
        let a = DevIssuer::open_or_create(dir.path())?;
        let b = DevIssuer::open_or_create(dir.path())?;
        assert_eq!(a.key().kid(), b.key().kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(DevIssuer::key_path(dir.path()))?.permissions().mode() & 0o777, 0o600);
        }
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("dev-issuer"))?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }

    #[test]
    fn concurrent_creation_agrees_on_one_key() -> R {
        let dir = tempfile::tempdir()?;
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6).map(|_| s.spawn(|| DevIssuer::open_or_create(dir.path()).map(|d| d.key().kid().to_string()))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect::<Result<Vec<_>, _>>()
        })?;
        assert_eq!(kids.len(), 6);
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_key_is_refused() -> R {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        DevIssuer::open_or_create(dir.path())?;
        let path = DevIssuer::key_path(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        let err = DevIssuer::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
        Ok(())
    }

    #[test]
    fn tokens_look_like_entra_v2_tokens() -> R {
        let issuer = DevIssuer::with_key(SigningKey::generate()?);
        let mut req = MintRequest::new(DevSubject::User("Alice@Contoso.com".into()));
        req.groups = vec!["sales@contoso.com".into()];
        req.mfa = true;
        let c = issuer.claims(&req, 1_000_000);
        assert_eq!(c["iss"], json!(format!("https://kustodian.local/dev/{DEV_TENANT}/v2.0")));
        assert_eq!(c["tid"], json!(DEV_TENANT));
        assert_eq!(c["aud"], json!(DEV_AUDIENCE));
        assert_eq!(c["exp"], json!(1_003_600));
        assert_eq!(c["nbf"], json!(1_000_000));
        assert_eq!(c["upn"], json!("Alice@Contoso.com"));
        assert_eq!(c["amr"], json!(["pwd", "mfa"]));
        assert_eq!(c["groups"], json!(["sales@contoso.com"]));
        // The object id is stable and case-insensitive in the UPN.
        assert_eq!(c["oid"], json!(dev_object_id(&DevSubject::User("alice@contoso.com".into()))));
        assert_ne!(dev_object_id(&DevSubject::User("bob@contoso.com".into())), dev_object_id(&DevSubject::User("alice@contoso.com".into())));
        let app = issuer.claims(&MintRequest::new(DevSubject::App("11111111-2222-3333-4444-555555555555".into())), 0);
        assert_eq!(app["idtyp"], json!("app"));
        assert_eq!(app["appid"], json!("11111111-2222-3333-4444-555555555555"));
        assert!(app.get("upn").is_none());
        let token = issuer.mint(DevSubject::User("a@b.c".into()), vec![], Duration::from_secs(60))?;
        assert_eq!(token.split('.').count(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap_or_default())?)?;
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": issuer.key().kid()}));
        Ok(())
    }

    #[test]
    fn the_jwks_verifies_the_signature() -> R {
        let issuer = DevIssuer::with_key(SigningKey::generate()?);
        let token = issuer.mint(DevSubject::User("a@b.c".into()), vec![], Duration::from_secs(60))?;
        let key = issuer.key_set().get(issuer.key().kid()).ok_or("no key")?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[DEV_AUDIENCE]);
        let data = jsonwebtoken::decode::<Value>(&token, &key, &v)?;
        assert_eq!(data.claims["upn"], json!("a@b.c"));
        Ok(())
    }
}
