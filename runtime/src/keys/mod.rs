//! Encryption at rest: envelope encryption, as Azure Data Explorer does it with customer-managed
//! keys. A key-encryption key (KEK, RSA, held by a key vault) wraps data-encryption keys (DEKs,
//! AES-256, one per extent file and one per metadata commit); only wrapped DEKs are stored.
//!
//! * Extents are Parquet files with modular encryption (AES-GCM, footer and every column
//!   encrypted with the extent's DEK); the file's key metadata is the extent id, and the
//!   extent's wrapped DEK is recorded in the cluster metadata (the extent's description, `key`).
//!   Rotating the KEK re-wraps the DEKs in one metadata commit; extent files never change.
//! * The metadata itself is sealed ([`Keyring::seal`]): AES-256-GCM under a fresh DEK wrapped
//!   by the KEK, in an envelope naming the KEK version, so a reader knows which key opens it.
//! * Without a customer key, a platform key kept by the cluster (a local vault in its directory)
//!   plays the KEK, so data is never plaintext at rest.
//! * An unwrap that the vault refuses suspends the cluster ([`Keyring::suspension`]): decrypted
//!   keys are dropped and every request is refused until access returns.

pub mod azure;
pub mod layer;
pub mod openbao;
pub mod pkcs11;
pub mod vault;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use datafusion::parquet::encryption::decrypt::{FileDecryptionProperties, KeyRetriever};
use datafusion::parquet::encryption::encrypt::FileEncryptionProperties;
use serde::{Deserialize, Serialize};

use vault::LocalVault;

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The vault refuses the cluster's identity (revoked access, disabled key version).
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The vault cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// What a vault says of a key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProperties {
    pub kty: String,
    pub size_bits: usize,
    pub version: String,
    /// The key's current (newest enabled) version.
    pub current_version: String,
    pub enabled: bool,
    pub soft_delete: bool,
    pub purge_protection: bool,
}

/// A key vault, as the cluster uses one: wrap and unwrap DEKs with a key version, read a key's
/// properties. The access check is `properties` (the vault's `get`).
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The vault's URI, as key ids name it.
    fn uri(&self) -> String;
    /// A version's properties (None: the current version).
    fn properties(&self, name: &str, version: Option<&str>) -> Result<KeyProperties, KeyError>;
    fn wrap(&self, name: &str, version: &str, dek: &[u8]) -> Result<Vec<u8>, KeyError>;
    fn unwrap(&self, name: &str, version: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// A KEK version: vault, key name, version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId {
    pub vault: String,
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/keys/{}/{}", self.vault, self.name, self.version)
    }
}

/// A DEK wrapped by a KEK version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub kek: KeyId,
    /// The wrapped DEK, base64.
    pub wrapped: String,
}

/// Which key wraps new DEKs: the cluster's platform key or a customer's (`keyVaultUri`,
/// `keyName`, `keyVersion` as ADX names them; no version: always the key's current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySource {
    pub vault_uri: String,
    pub key_name: String,
    #[serde(default)]
    pub key_version: Option<String>,
    /// A customer-managed key (false: the platform key).
    #[serde(default)]
    pub customer: bool,
    /// The identity the cluster reaches this key's vault as (a user-assigned identity); None:
    /// the cluster's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `DIR/encryption.json`: the cluster's identity toward its vaults and the key in use. It holds
/// no secret; the metadata and extents it unlocks name their own key versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionConfig {
    pub identity: String,
    pub key: KeySource,
    /// The platform key, kept whatever the customer key (it opens what it wrapped).
    pub platform: KeySource,
    /// Also encrypt under a second layer (infrastructure encryption).
    #[serde(default)]
    pub double_encryption: bool,
}

impl EncryptionConfig {
    /// The identity the cluster uses toward a key's vault.
    pub fn identity_for(&self, key: &KeySource) -> String {
        key.identity.clone().unwrap_or_else(|| self.identity.clone())
    }

    /// The identity for a vault, as the key in use or the platform key names it.
    fn identity_for_vault(&self, vault_uri: &str) -> String {
        if self.key.vault_uri == vault_uri {
            self.identity_for(&self.key)
        } else {
            self.identity.clone()
        }
    }
}

const CONFIG_FILE: &str = "encryption.json";
/// The key audit log, in the cluster directory.
pub const KEY_AUDIT_LOG: &str = "keys/audit.log";
const PLATFORM_VAULT: &str = "keys/platform";
const PLATFORM_KEY: &str = "platform";
/// The name of AES-256-GCM's key in bytes.
pub const DEK_LEN: usize = 32;

/// The cluster's keys: the configuration, the wrapped DEKs it knows (from the metadata), the
/// DEKs it unwrapped (dropped on suspension), and whether it is suspended.
pub struct Keyring {
    dir: PathBuf,
    config: RwLock<EncryptionConfig>,
    wrapped: RwLock<HashMap<String, WrappedKey>>,
    deks: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// The second layer's keys of double-encrypted extents: wrapped, and unwrapped once.
    layer_wrapped: RwLock<HashMap<String, WrappedKey>>,
    layer_keys: Mutex<HashMap<String, layer::LayerKey>>,
    suspended: RwLock<Option<String>>,
    /// How many times the keyring suspended: a holder of decrypted caches compares it with the
    /// count it last saw and drops them when it changed.
    suspensions: std::sync::atomic::AtomicU64,
    /// Serialises appends to the key audit log within the process (lines are single writes).
    audit_lock: Mutex<()>,
    /// Called when the keyring suspends (the cluster drops its decrypted caches).
    on_suspend: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Told of every key event (a server's audit log).
    on_event: Mutex<Vec<KeyEventSink>>,
}

/// Receives key events: (event, key version, what for, outcome: `Succeeded` or the error).
pub type KeyEventSink = Box<dyn Fn(&str, Option<&str>, Option<&str>, &str) + Send + Sync>;

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("config", &*read(&self.config)).field("suspended", &*read(&self.suspended)).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A secret an identity names: `<file_prefix>/path` (a file holding it, read at every use, so a
/// new one is picked up) or `env:NAME`. `what` names it in errors (`the OpenBao token`).
pub(crate) fn secret(identity: &str, file_prefix: &str, what: &str, vault: &str) -> Result<String, KeyError> {
    let s = if let Some(path) = identity.strip_prefix(file_prefix) {
        std::fs::read_to_string(path).map_err(|e| KeyError::AccessDenied(format!("cannot read {what} from '{path}': {e}")))?
    } else if let Some(var) = identity.strip_prefix("env:") {
        std::env::var(var).map_err(|_| KeyError::AccessDenied(format!("the environment variable '{var}' holding {what} is not set")))?
    } else {
        return Err(KeyError::Invalid(format!(
            "the identity toward '{vault}' must name {what}: userIdentity '{file_prefix}/path' or 'env:NAME'"
        )));
    };
    Ok(s.trim().to_string())
}

/// Random bytes from aws-lc's generator.
pub fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| KeyError::Invalid("the random generator failed".into()))?;
    Ok(b)
}

/// The sealed form of the metadata.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    /// Format marker.
    kustodian_envelope: u32,
    kek: KeyId,
    dek: String,
    nonce: String,
    ciphertext: String,
}

impl Keyring {
    /// A new cluster's keys: a platform vault in `dir` with a new RSA-3072 key, the cluster's
    /// identity, and the platform key in use.
    pub fn create(dir: &Path, double_encryption: bool) -> Result<Keyring, KeyError> {
        let identity = format!("kustodian-cluster/{}", uuid::Uuid::new_v4());
        let vault_dir = dir.join(PLATFORM_VAULT);
        LocalVault::create(&vault_dir, true, true)?;
        let vault = LocalVault::open(&vault_dir, &identity);
        vault.set_access(&identity, &vault::PERMISSIONS)?;
        vault.create_key(PLATFORM_KEY, 3072)?;
        let platform = KeySource { vault_uri: format!("platform:{PLATFORM_VAULT}"), key_name: PLATFORM_KEY.into(), key_version: None, customer: false, identity: None };
        let config = EncryptionConfig { identity, key: platform.clone(), platform, double_encryption };
        write_config(dir, &config)?;
        Ok(Keyring::new(dir, config))
    }

    /// The keys of the cluster in `dir`; None for a cluster made before encryption at rest
    /// (its files stay readable; [`Keyring::create`] starts encrypting).
    pub fn open(dir: &Path) -> Result<Option<Keyring>, KeyError> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(KeyError::Unavailable(format!("cannot read '{}': {e}", path.display()))),
        };
        let config: EncryptionConfig =
            serde_json::from_str(&text).map_err(|e| KeyError::Invalid(format!("'{}' is not valid: {e}", path.display())))?;
        Ok(Some(Keyring::new(dir, config)))
    }

    fn new(dir: &Path, config: EncryptionConfig) -> Keyring {
        Keyring {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            wrapped: RwLock::default(),
            deks: Mutex::default(),
            layer_wrapped: RwLock::default(),
            layer_keys: Mutex::default(),
            suspended: RwLock::default(),
            suspensions: std::sync::atomic::AtomicU64::new(0),
            audit_lock: Mutex::default(),
            on_suspend: Mutex::default(),
            on_event: Mutex::default(),
        }
    }

    pub fn config(&self) -> EncryptionConfig {
        read(&self.config).clone()
    }

    /// Replaces the configuration (after the commit whose DEKs it wraps).
    pub fn set_config(&self, config: EncryptionConfig) -> Result<(), KeyError> {
        write_config(&self.dir, &config)?;
        *write(&self.config) = config;
        Ok(())
    }

    /// Tells `sink` of every key event from now on (besides the key audit log).
    pub fn on_event(&self, sink: KeyEventSink) {
        lock(&self.on_event).push(sink);
    }

    /// Called (once per suspension) when the keyring suspends.
    pub fn on_suspend(&self, f: Box<dyn Fn() + Send + Sync>) {
        lock(&self.on_suspend).push(f);
    }

    /// The vault a URI names, used as the identity the configuration gives for it.
    pub fn provider(&self, vault_uri: &str) -> Result<Box<dyn KeyProvider>, KeyError> {
        let identity = read(&self.config).identity_for_vault(vault_uri);
        self.provider_as(vault_uri, &identity)
    }

    /// The vault a URI names, used as `identity`.
    pub fn provider_as(&self, vault_uri: &str, identity: &str) -> Result<Box<dyn KeyProvider>, KeyError> {
        let identity = identity.to_string();
        if let Some(rel) = vault_uri.strip_prefix("platform:") {
            return Ok(Box::new(LocalVault::open(&self.dir.join(rel), &identity)));
        }
        if let Some(path) = vault_uri.strip_prefix("file://") {
            return Ok(Box::new(LocalVault::open(Path::new(path), &identity)));
        }
        if vault_uri.starts_with("pkcs11:") {
            return Ok(Box::new(pkcs11::Pkcs11Token::new(vault_uri, &identity)?));
        }
        if vault_uri.starts_with("openbao+") {
            return Ok(Box::new(openbao::OpenBaoTransit::new(vault_uri, &identity)?));
        }
        if vault_uri.starts_with("https://") || vault_uri.starts_with("http://") {
            return Ok(Box::new(azure::AzureKeyVault::new(vault_uri, &identity)?));
        }
        Err(KeyError::Invalid(format!(
            "key vault '{vault_uri}' is not supported: a local vault is file:///path/to/vault, OpenBao's transit engine \
             openbao+http://host:port/mount, Azure Key Vault https://name.vault.azure.net, a PKCS#11 token \
             pkcs11:/path/to/module.so?token=LABEL"
        )))
    }

    /// The KEK version new DEKs are wrapped with.
    pub fn current_kek(&self) -> Result<KeyId, KeyError> {
        let key = read(&self.config).key.clone();
        self.resolve(&key)
    }

    /// The version a key source means now.
    pub fn resolve(&self, key: &KeySource) -> Result<KeyId, KeyError> {
        let version = match &key.key_version {
            Some(v) => v.clone(),
            None => self.provider(&key.vault_uri)?.properties(&key.key_name, None)?.version,
        };
        Ok(KeyId { vault: key.vault_uri.clone(), name: key.key_name.clone(), version })
    }

    /// Appends one line to the key audit log (`DIR/keys/audit.log`): every wrap, unwrap,
    /// rotation, refusal, suspension and resumption, with the key version and what it was for.
    /// Never a key. A failure to write is reported on stderr: the operation it records is done.
    pub fn audit(&self, event: &str, kek: Option<&KeyId>, subject: Option<&str>, outcome: Result<(), &KeyError>) {
        let outcome = match outcome {
            Ok(()) => "Succeeded".to_string(),
            Err(e) => e.to_string(),
        };
        let key = kek.map(ToString::to_string);
        for sink in lock(&self.on_event).iter() {
            sink(event, key.as_deref(), subject, &outcome);
        }
        let line = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "event": event,
            "key": key,
            "subject": subject,
            "outcome": outcome,
            "pid": std::process::id(),
        });
        let mut text = line.to_string();
        text.push('\n');
        let _guard = lock(&self.audit_lock);
        let path = self.dir.join(KEY_AUDIT_LOG);
        let result = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options.open(&path)?.write_all(text.as_bytes())
        })();
        if let Err(e) = result {
            eprintln!("kustodian: cannot write the key audit log {}: {e}", path.display());
        }
    }

    /// Wraps a DEK with a KEK version; a refusal suspends the cluster.
    pub fn wrap_with(&self, kek: &KeyId, dek: &[u8]) -> Result<WrappedKey, KeyError> {
        self.wrap_for(kek, dek, None)
    }

    fn wrap_for(&self, kek: &KeyId, dek: &[u8], subject: Option<&str>) -> Result<WrappedKey, KeyError> {
        let w = self.provider(&kek.vault).and_then(|p| p.wrap(&kek.name, &kek.version, dek));
        self.audit("wrapKey", Some(kek), subject, w.as_ref().map(|_| ()));
        let w = w.inspect_err(|e| self.refused(e, kek))?;
        Ok(WrappedKey { kek: kek.clone(), wrapped: B64.encode(w) })
    }

    /// Unwraps a DEK; a refusal suspends the cluster.
    pub fn unwrap(&self, w: &WrappedKey) -> Result<Vec<u8>, KeyError> {
        self.unwrap_for(w, None)
    }

    fn unwrap_for(&self, w: &WrappedKey, subject: Option<&str>) -> Result<Vec<u8>, KeyError> {
        self.check_not_suspended()?;
        let bytes = B64.decode(&w.wrapped).map_err(|e| KeyError::Invalid(format!("a wrapped key is corrupt: {e}")))?;
        let dek = self.provider(&w.kek.vault).and_then(|p| p.unwrap(&w.kek.name, &w.kek.version, &bytes));
        self.audit("unwrapKey", Some(&w.kek), subject, dek.as_ref().map(|_| ()));
        let dek = dek.inspect_err(|e| self.refused(e, &w.kek))?;
        if dek.len() != DEK_LEN {
            return Err(KeyError::Invalid(format!("a key wrapped by {} is not a 256-bit key", w.kek)));
        }
        Ok(dek)
    }

    fn refused(&self, e: &KeyError, kek: &KeyId) {
        if matches!(e, KeyError::AccessDenied(_) | KeyError::NotFound(_)) {
            self.suspend(format!("the cluster cannot use its key {kek}: {e}"));
        }
    }

    /// Suspends: drops every unwrapped DEK and tells the cluster to drop its decrypted caches.
    pub fn suspend(&self, why: String) {
        let mut s = write(&self.suspended);
        let first = s.is_none();
        *s = Some(why.clone());
        drop(s);
        if first {
            self.audit("suspend", None, None, Err(&KeyError::AccessDenied(why)));
        }
        lock(&self.deks).clear();
        lock(&self.layer_keys).clear();
        if first {
            self.suspensions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            for f in lock(&self.on_suspend).iter() {
                f();
            }
        }
    }

    /// How many times the keyring suspended so far.
    pub fn suspensions(&self) -> u64 {
        self.suspensions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Why the cluster is suspended, if it is.
    pub fn suspension(&self) -> Option<String> {
        read(&self.suspended).clone()
    }

    pub fn check_not_suspended(&self) -> Result<(), KeyError> {
        match self.suspension() {
            Some(why) => Err(KeyError::AccessDenied(why)),
            None => Ok(()),
        }
    }

    /// Checks that every key the cluster needs answers (`get`, then an unwrap of each KEK
    /// version in use when `in_use` names them): suspends when one refuses, resumes when all
    /// answer again.
    pub fn check_access(&self, in_use: &[KeyId]) -> Result<(), KeyError> {
        let result = (|| {
            let key = read(&self.config).key.clone();
            self.provider(&key.vault_uri)?.properties(&key.key_name, key.key_version.as_deref())?;
            for kek in in_use {
                let probe: [u8; DEK_LEN] = random()?;
                let w = self.provider(&kek.vault)?.wrap(&kek.name, &kek.version, &probe)?;
                self.provider(&kek.vault)?.unwrap(&kek.name, &kek.version, &w)?;
            }
            Ok(())
        })();
        match &result {
            Ok(()) => {
                if write(&self.suspended).take().is_some() {
                    self.audit("resume", None, None, Ok(()));
                }
            }
            Err(e @ (KeyError::AccessDenied(_) | KeyError::NotFound(_))) => self.suspend(format!("the cluster cannot use its keys: {e}")),
            Err(_) => {}
        }
        result
    }

    /// Records an extent's wrapped DEK (from its description in the metadata).
    pub fn remember(&self, extent_id: &str, w: &WrappedKey) {
        let known = read(&self.wrapped).get(extent_id) == Some(w);
        if !known {
            write(&self.wrapped).insert(extent_id.to_string(), w.clone());
            lock(&self.deks).remove(extent_id);
        }
    }

    /// Records the wrapped layer key of a double-encrypted extent.
    pub fn remember_layer(&self, extent_id: &str, w: &WrappedKey) {
        if read(&self.layer_wrapped).get(extent_id) != Some(w) {
            write(&self.layer_wrapped).insert(extent_id.to_string(), w.clone());
            lock(&self.layer_keys).remove(extent_id);
        }
    }

    /// A new extent's layer key, when the cluster double-encrypts: always wrapped by the
    /// platform key (the infrastructure's), whatever key wraps the DEKs.
    pub fn new_layer_key(&self, extent_id: &str) -> Result<Option<(layer::LayerKey, WrappedKey)>, KeyError> {
        let config = self.config();
        if !config.double_encryption {
            return Ok(None);
        }
        let key: [u8; DEK_LEN] = random()?;
        let kek = self.resolve(&config.platform)?;
        let wrapped = self.wrap_for(&kek, &key, Some(&format!("extent {extent_id} (layer)")))?;
        let k = layer::LayerKey::new(&key).ok_or_else(|| KeyError::Invalid("bad layer key".into()))?;
        lock(&self.layer_keys).insert(extent_id.to_string(), k.clone());
        Ok(Some((k, wrapped)))
    }

    /// An extent's layer key (None: the extent has one layer).
    pub fn layer_key(&self, extent_id: &str) -> Result<Option<layer::LayerKey>, KeyError> {
        let Some(w) = read(&self.layer_wrapped).get(extent_id).cloned() else { return Ok(None) };
        self.check_not_suspended()?;
        if let Some(k) = lock(&self.layer_keys).get(extent_id) {
            return Ok(Some(k.clone()));
        }
        let raw = self.unwrap_for(&w, Some(&format!("extent {extent_id} (layer)")))?;
        let k = layer::LayerKey::new(&raw).ok_or_else(|| KeyError::Invalid("a layer key is not 256 bits".into()))?;
        lock(&self.layer_keys).insert(extent_id.to_string(), k.clone());
        Ok(Some(k))
    }

    /// Whether an extent is encrypted (its DEK is known).
    pub fn knows(&self, extent_id: &str) -> bool {
        read(&self.wrapped).contains_key(extent_id)
    }

    /// An extent's DEK, unwrapped once and kept until suspension.
    pub fn dek(&self, extent_id: &str) -> Result<Arc<Vec<u8>>, KeyError> {
        self.check_not_suspended()?;
        if let Some(d) = lock(&self.deks).get(extent_id) {
            return Ok(Arc::clone(d));
        }
        let w = read(&self.wrapped)
            .get(extent_id)
            .cloned()
            .ok_or_else(|| KeyError::NotFound(format!("no key is recorded for extent '{extent_id}'")))?;
        let dek = Arc::new(self.unwrap_for(&w, Some(&format!("extent {extent_id}")))?);
        lock(&self.deks).insert(extent_id.to_string(), Arc::clone(&dek));
        Ok(dek)
    }

    /// A new extent's encryption: a fresh DEK, wrapped by the current KEK; the file's key
    /// metadata is the extent id.
    pub fn new_extent_key(&self, extent_id: &str) -> Result<(Arc<FileEncryptionProperties>, WrappedKey), KeyError> {
        self.check_not_suspended()?;
        let dek: [u8; DEK_LEN] = random()?;
        let kek = self.current_kek().inspect_err(|e| {
            if matches!(e, KeyError::AccessDenied(_)) {
                self.suspend(format!("the cluster cannot use its key: {e}"));
            }
        })?;
        let wrapped = self.wrap_for(&kek, &dek, Some(&format!("extent {extent_id}")))?;
        let props = FileEncryptionProperties::builder(dek.to_vec())
            .with_footer_key_metadata(extent_id.as_bytes().to_vec())
            .build()
            .map_err(|e| KeyError::Invalid(format!("parquet encryption: {e}")))?;
        lock(&self.deks).insert(extent_id.to_string(), Arc::new(dek.to_vec()));
        Ok((props, wrapped))
    }

    /// How to read an encrypted extent: its DEK is found by the file's key metadata (the
    /// extent id).
    pub fn decryption(self: &Arc<Self>) -> Result<Arc<FileDecryptionProperties>, KeyError> {
        FileDecryptionProperties::with_key_retriever(Arc::new(Retriever(Arc::clone(self))))
            .build()
            .map_err(|e| KeyError::Invalid(format!("parquet decryption: {e}")))
    }

    /// Seals the metadata: AES-256-GCM under a fresh DEK wrapped by the current KEK.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.check_not_suspended()?;
        let kek = self.current_kek()?;
        let dek: [u8; DEK_LEN] = random()?;
        let wrapped = self.wrap_for(&kek, &dek, Some("metadata"))?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).map_err(|_| KeyError::Invalid("bad key".into()))?);
        let mut data = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(b"kustodian-metadata"), &mut data)
            .map_err(|_| KeyError::Invalid("sealing the metadata failed".into()))?;
        let env = Envelope { kustodian_envelope: 1, kek, dek: wrapped.wrapped, nonce: B64.encode(nonce), ciphertext: B64.encode(&data) };
        serde_json::to_vec(&env).map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Opens sealed metadata. Anything else is refused: metadata written in plaintext into an
    /// encrypted cluster's directory is not the cluster's.
    pub fn open_sealed(&self, bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
        let Some(env) = envelope(bytes) else {
            return Err(KeyError::Invalid("the cluster metadata is not sealed by the cluster's keys: refused (tampered or replaced)".into()));
        };
        let dek = self.unwrap_for(&WrappedKey { kek: env.kek.clone(), wrapped: env.dek }, Some("metadata"))?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&env.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| KeyError::Invalid("the metadata's nonce is corrupt".into()))?;
        let mut data = B64.decode(&env.ciphertext).map_err(|e| KeyError::Invalid(format!("the metadata is corrupt: {e}")))?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).map_err(|_| KeyError::Invalid("bad key".into()))?);
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(b"kustodian-metadata"), &mut data)
            .map_err(|_| KeyError::Invalid("the metadata failed its integrity check (tampered or corrupt)".into()))?;
        Ok(plain.to_vec())
    }

    /// The KEK that sealed a metadata file, if it is sealed.
    pub fn sealed_by(bytes: &[u8]) -> Option<KeyId> {
        envelope(bytes).map(|e| e.kek)
    }
}

fn envelope(bytes: &[u8]) -> Option<Envelope> {
    serde_json::from_slice(bytes).ok()
}

fn write_config(dir: &Path, config: &EncryptionConfig) -> Result<(), KeyError> {
    let text = serde_json::to_vec_pretty(config).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let tmp = dir.join(format!(".tmp-{}-{CONFIG_FILE}", uuid::Uuid::new_v4().simple()));
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(CONFIG_FILE))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| KeyError::Unavailable(format!("cannot write '{CONFIG_FILE}': {e}")))
}

/// Finds an extent's DEK by the file's key metadata (the extent id).
struct Retriever(Arc<Keyring>);

impl KeyRetriever for Retriever {
    fn retrieve_key(&self, key_metadata: &[u8]) -> datafusion::parquet::errors::Result<Vec<u8>> {
        let id = std::str::from_utf8(key_metadata)
            .map_err(|_| datafusion::parquet::errors::ParquetError::General("an extent's key metadata is not an extent id".into()))?;
        self.0
            .dek(id)
            .map(|d| d.as_ref().clone())
            .map_err(|e| match e {
                // The reason is the admins' (`.show cluster policy encryption`), not the caller's.
                KeyError::AccessDenied(_) | KeyError::NotFound(_) => {
                    datafusion::parquet::errors::ParquetError::General(format!("the key of extent '{id}' is not available: the cluster is suspended"))
                }
                other => datafusion::parquet::errors::ParquetError::General(format!("the key of extent '{id}' is not available: {other}")),
            })
    }
}

/// DataFusion's hook for encrypted Parquet: every extent file known to be encrypted is read
/// with the keyring's retriever.
#[derive(Debug)]
pub struct ExtentEncryption(pub Arc<Keyring>);

#[async_trait::async_trait]
impl datafusion::execution::parquet_encryption::EncryptionFactory for ExtentEncryption {
    async fn get_file_encryption_properties(
        &self,
        _config: &datafusion::common::config::EncryptionFactoryOptions,
        _schema: &datafusion::arrow::datatypes::SchemaRef,
        _file_path: &datafusion::object_store::path::Path,
    ) -> datafusion::common::Result<Option<Arc<FileEncryptionProperties>>> {
        Err(datafusion::error::DataFusionError::Internal("extents are written by the storage layer, not DataFusion".into()))
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &datafusion::common::config::EncryptionFactoryOptions,
        file_path: &datafusion::object_store::path::Path,
    ) -> datafusion::common::Result<Option<Arc<FileDecryptionProperties>>> {
        let id = file_path.filename().and_then(|f| f.strip_suffix(".parquet")).unwrap_or_default();
        if !self.0.knows(id) {
            return Ok(None);
        }
        self.0.decryption().map(Some).map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_seal_open_and_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::create(dir.path(), false).unwrap();
        let kek = ring.current_kek().unwrap();
        let dek: [u8; DEK_LEN] = random().unwrap();
        let w = ring.wrap_with(&kek, &dek).unwrap();
        assert_eq!(ring.unwrap(&w).unwrap(), dek);
        let sealed = ring.seal(b"{\"secret\": \"policy text\"}").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("policy text"));
        assert_eq!(ring.open_sealed(&sealed).unwrap(), b"{\"secret\": \"policy text\"}");
        // One flipped byte of the ciphertext fails the integrity check.
        let mut env: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let mut ct = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
        ct[3] ^= 1;
        env["ciphertext"] = B64.encode(ct).into();
        let e = ring.open_sealed(&serde_json::to_vec(&env).unwrap()).unwrap_err();
        assert!(e.to_string().contains("integrity"), "{e}");
        // Plaintext metadata put in its place is refused, not read.
        let e = ring.open_sealed(b"{\"version\": 9, \"databases\": []}").unwrap_err();
        assert!(e.to_string().contains("not sealed"), "{e}");
        // Revoked: the unwrap fails, the ring suspends and refuses until access returns.
        let identity = ring.config().identity;
        let vault = LocalVault::open(&dir.path().join(PLATFORM_VAULT), &identity);
        vault.set_access(&identity, &[]).unwrap();
        assert!(matches!(ring.unwrap(&w), Err(KeyError::AccessDenied(_))));
        assert!(ring.suspension().is_some());
        vault.set_access(&identity, &vault::PERMISSIONS).unwrap();
        assert!(ring.unwrap(&w).is_err(), "still suspended until an access check");
        ring.check_access(std::slice::from_ref(&kek)).unwrap();
        assert_eq!(ring.suspension(), None);
        assert_eq!(ring.unwrap(&w).unwrap(), dek);
    }
}
