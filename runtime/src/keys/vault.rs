//! A local file key vault: RSA keys with versions, soft delete and purge protection, and an
//! access policy granting `get`, `wrapKey` and `unwrapKey` to identities. The default key
//! provider and the one tests use; the cluster's platform key lives in one inside the cluster
//! directory.
//!
//! One JSON file (`vault.json`) holds everything; every change replaces it atomically. Private
//! keys are PKCS#8 DER; they never leave the vault: callers wrap and unwrap through it, with
//! RSA-OAEP (SHA-256) from aws-lc-rs.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::{KeyError, KeyProperties, KeyProvider};

const VAULT_FILE: &str = "vault.json";

/// What an identity may do with the vault's keys (Azure Key Vault's key permissions).
pub const PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct VaultFile {
    /// Soft delete: a deleted key is kept (recoverable) until purged.
    #[serde(default = "yes")]
    soft_delete: bool,
    /// Purge protection: a deleted key cannot be purged before its retention ends (here:
    /// never, the vault has no clock of its own).
    #[serde(default = "yes")]
    purge_protection: bool,
    #[serde(default)]
    keys: Vec<KeyEntry>,
    #[serde(default)]
    access: Vec<AccessEntry>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEntry {
    name: String,
    #[serde(default)]
    deleted: bool,
    versions: Vec<KeyVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyVersion {
    version: String,
    created: String,
    #[serde(default = "yes")]
    enabled: bool,
    /// PKCS#8 DER, base64.
    private_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessEntry {
    identity: String,
    permissions: Vec<String>,
}

/// A vault directory.
#[derive(Debug, Clone)]
pub struct LocalVault {
    dir: PathBuf,
    /// Who uses the vault through this handle (checked against the access policy).
    identity: String,
}

impl LocalVault {
    /// Creates a new vault in `dir` (created if missing; fails if it holds one).
    pub fn create(dir: &Path, soft_delete: bool, purge_protection: bool) -> Result<(), KeyError> {
        fs::create_dir_all(dir).map_err(|e| KeyError::Unavailable(format!("cannot create the key vault '{}': {e}", dir.display())))?;
        let path = dir.join(VAULT_FILE);
        if path.exists() {
            return Err(KeyError::Invalid(format!("'{}' already holds a key vault", dir.display())));
        }
        write_atomically(&path, &VaultFile { soft_delete, purge_protection, keys: Vec::new(), access: Vec::new() })
    }

    /// The vault in `dir`, used as `identity`.
    pub fn open(dir: &Path, identity: &str) -> LocalVault {
        LocalVault { dir: dir.to_path_buf(), identity: identity.to_string() }
    }

    /// `file:///abs/dir`: how keys of this vault are named in the metadata.
    pub fn uri_of(dir: &Path) -> String {
        let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        format!("file://{}", abs.display())
    }

    /// The vault file, parsed once per version of it (a change replaces the file: its
    /// modification time and size are the version).
    fn load(&self) -> Result<VaultFile, KeyError> {
        type Parsed = HashMap<PathBuf, (Option<std::time::SystemTime>, u64, VaultFile)>;
        static PARSED: OnceLock<Mutex<Parsed>> = OnceLock::new();
        let path = self.dir.join(VAULT_FILE);
        let unreadable = |e: std::io::Error| KeyError::Unavailable(format!("cannot read the key vault '{}': {e}", self.dir.display()));
        let meta = fs::metadata(&path).map_err(unreadable)?;
        let stamp = (meta.modified().ok(), meta.len());
        let cache = PARSED.get_or_init(Mutex::default);
        if let Some((m, l, v)) = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&path)
            && (*m, *l) == stamp
            && m.is_some()
        {
            return Ok(v.clone());
        }
        let text = fs::read_to_string(&path).map_err(unreadable)?;
        let v: VaultFile =
            serde_json::from_str(&text).map_err(|e| KeyError::Invalid(format!("the key vault '{}' is corrupt: {e}", self.dir.display())))?;
        cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(path, (stamp.0, stamp.1, v.clone()));
        Ok(v)
    }

    fn save(&self, v: &VaultFile) -> Result<(), KeyError> {
        write_atomically(&self.dir.join(VAULT_FILE), v)
    }

    fn allowed(&self, v: &VaultFile, permission: &str) -> Result<(), KeyError> {
        let ok = v
            .access
            .iter()
            .any(|a| a.identity.eq_ignore_ascii_case(&self.identity) && a.permissions.iter().any(|p| p.eq_ignore_ascii_case(permission)));
        if ok {
            Ok(())
        } else {
            Err(KeyError::AccessDenied(format!(
                "the key vault '{}' does not grant '{permission}' to '{}'",
                LocalVault::uri_of(&self.dir),
                self.identity
            )))
        }
    }

    fn version<'a>(&self, v: &'a VaultFile, name: &str, version: Option<&str>) -> Result<(&'a KeyEntry, &'a KeyVersion), KeyError> {
        let key = v
            .keys
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| KeyError::NotFound(format!("key '{name}' is not in the key vault '{}'", LocalVault::uri_of(&self.dir))))?;
        if key.deleted {
            return Err(KeyError::NotFound(format!("key '{name}' of the key vault '{}' is deleted", LocalVault::uri_of(&self.dir))));
        }
        let ver = match version {
            Some(wanted) => key.versions.iter().find(|x| x.version == wanted),
            None => key.versions.iter().rev().find(|x| x.enabled),
        }
        .ok_or_else(|| KeyError::NotFound(format!("key '{name}' has no version '{}'", version.unwrap_or("(current)"))))?;
        if !ver.enabled {
            return Err(KeyError::AccessDenied(format!("version '{}' of key '{name}' is disabled", ver.version)));
        }
        Ok((key, ver))
    }

    /// Creates a key (or a new version of it): RSA of `bits` (2048, 3072 or 4096). Returns the
    /// version.
    pub fn create_key(&self, name: &str, bits: usize) -> Result<String, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(KeyError::Invalid(format!("an RSA key is 2048, 3072 or 4096 bits, not {bits}"))),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
        let der = key.as_der().map_err(|_| KeyError::Invalid("cannot encode the new key".into()))?;
        let mut v = self.load()?;
        let version = uuid::Uuid::new_v4().simple().to_string();
        let entry = KeyVersion {
            version: version.clone(),
            created: chrono::Utc::now().to_rfc3339(),
            enabled: true,
            private_key: B64.encode(der.as_ref()),
        };
        match v.keys.iter_mut().find(|k| k.name.eq_ignore_ascii_case(name)) {
            Some(k) if k.deleted => return Err(KeyError::Invalid(format!("key '{name}' is deleted: recover it first"))),
            Some(k) => k.versions.push(entry),
            None => v.keys.push(KeyEntry { name: name.to_string(), deleted: false, versions: vec![entry] }),
        }
        self.save(&v)?;
        Ok(version)
    }

    /// Grants `permissions` to `identity` (replacing what it had); an empty list revokes.
    pub fn set_access(&self, identity: &str, permissions: &[&str]) -> Result<(), KeyError> {
        for p in permissions {
            if !PERMISSIONS.iter().any(|k| k.eq_ignore_ascii_case(p)) {
                return Err(KeyError::Invalid(format!("unknown key permission '{p}' (known: {})", PERMISSIONS.join(", "))));
            }
        }
        let mut v = self.load()?;
        v.access.retain(|a| !a.identity.eq_ignore_ascii_case(identity));
        if !permissions.is_empty() {
            v.access.push(AccessEntry { identity: identity.to_string(), permissions: permissions.iter().map(|p| p.to_string()).collect() });
        }
        self.save(&v)
    }

    /// Soft-deletes a key (recoverable until purged).
    pub fn delete_key(&self, name: &str) -> Result<(), KeyError> {
        self.set_deleted(name, true)
    }

    /// Recovers a soft-deleted key.
    pub fn recover_key(&self, name: &str) -> Result<(), KeyError> {
        self.set_deleted(name, false)
    }

    fn set_deleted(&self, name: &str, deleted: bool) -> Result<(), KeyError> {
        let mut v = self.load()?;
        let Some(k) = v.keys.iter_mut().find(|k| k.name.eq_ignore_ascii_case(name)) else {
            return Err(KeyError::NotFound(format!("key '{name}' is not in the vault")));
        };
        k.deleted = deleted;
        self.save(&v)
    }

    /// Enables or disables one version of a key.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> Result<(), KeyError> {
        let mut v = self.load()?;
        let ver = v
            .keys
            .iter_mut()
            .find(|k| k.name.eq_ignore_ascii_case(name))
            .and_then(|k| k.versions.iter_mut().find(|x| x.version == version))
            .ok_or_else(|| KeyError::NotFound(format!("key '{name}' has no version '{version}'")))?;
        ver.enabled = enabled;
        self.save(&v)
    }

    fn private(&self, v: &VaultFile, name: &str, version: &str) -> Result<PrivateDecryptingKey, KeyError> {
        let (_, ver) = self.version(v, name, Some(version))?;
        let der = B64.decode(&ver.private_key).map_err(|e| KeyError::Invalid(format!("key '{name}' is corrupt: {e}")))?;
        PrivateDecryptingKey::from_pkcs8(&der).map_err(|e| KeyError::Invalid(format!("key '{name}' is corrupt: {e}")))
    }
}

impl KeyProvider for LocalVault {
    fn uri(&self) -> String {
        LocalVault::uri_of(&self.dir)
    }

    fn properties(&self, name: &str, version: Option<&str>) -> Result<KeyProperties, KeyError> {
        let v = self.load()?;
        self.allowed(&v, "get")?;
        let (key, ver) = self.version(&v, name, version)?;
        let der = B64.decode(&ver.private_key).map_err(|e| KeyError::Invalid(format!("key '{name}' is corrupt: {e}")))?;
        let private = PrivateDecryptingKey::from_pkcs8(&der).map_err(|e| KeyError::Invalid(format!("key '{name}' is corrupt: {e}")))?;
        let current = key.versions.iter().rev().find(|x| x.enabled).map(|x| x.version.clone()).unwrap_or_default();
        Ok(KeyProperties {
            kty: "RSA".into(),
            size_bits: private.key_size_bits(),
            version: ver.version.clone(),
            current_version: current,
            enabled: ver.enabled,
            soft_delete: v.soft_delete,
            purge_protection: v.purge_protection,
        })
    }

    fn wrap(&self, name: &str, version: &str, dek: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.load()?;
        self.allowed(&v, "wrapKey")?;
        let public = OaepPublicEncryptingKey::new(self.private(&v, name, version)?.public_key())
            .map_err(|_| KeyError::Invalid(format!("key '{name}' cannot encrypt")))?;
        let mut out = vec![0u8; public.ciphertext_size()];
        let n = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, dek, &mut out, None)
            .map_err(|_| KeyError::Invalid(format!("wrapping with key '{name}' failed")))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn unwrap(&self, name: &str, version: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.load()?;
        self.allowed(&v, "unwrapKey")?;
        let private = OaepPrivateDecryptingKey::new(self.private(&v, name, version)?)
            .map_err(|_| KeyError::Invalid(format!("key '{name}' cannot decrypt")))?;
        let mut out = vec![0u8; private.min_output_size()];
        let n = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut out, None)
            .map_err(|_| KeyError::Invalid(format!("unwrapping with version '{version}' of key '{name}' failed: not wrapped by it")))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

fn write_atomically(path: &Path, v: &VaultFile) -> Result<(), KeyError> {
    let text = serde_json::to_vec_pretty(v).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}-{VAULT_FILE}", uuid::Uuid::new_v4().simple()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| KeyError::Unavailable(format!("cannot write the key vault '{}': {e}", dir.display())))
}
