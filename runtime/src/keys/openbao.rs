//! OpenBao's transit secrets engine as a key vault: RSA keys held by the server, which wraps
//! and unwraps DEKs (`encrypt` / `decrypt`, RSA-OAEP) without the private key ever leaving it.
//!
//! A vault URI is `openbao+http://host:port/<mount>` (the transit mount, e.g. `transit`). The
//! identity the cluster reaches it as is a token: `token-file:/path` (a file holding it, read
//! at every call, so a new token is picked up) or `env:NAME`. Key properties map as follows:
//! the type `rsa-2048|3072|4096`; purge protection and soft delete are a key that may not be
//! deleted (`deletion_allowed` false, OpenBao's default) and is not soft-deleted; a version is
//! enabled at or above `min_decryption_version` (and, to wrap, `min_encryption_version`).
//! A 403 is a refused access (it suspends the cluster), a 404 a missing key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{KeyError, KeyProperties, KeyProvider};

#[derive(Debug, Clone)]
pub struct OpenBaoTransit {
    /// `http://host:port`
    base: String,
    mount: String,
    identity: String,
    uri: String,
}

impl OpenBaoTransit {
    /// The vault `openbao+http://host:port/mount`, used with the token `identity` names.
    pub fn new(uri: &str, identity: &str) -> Result<OpenBaoTransit, KeyError> {
        let rest = uri
            .strip_prefix("openbao+http://")
            .ok_or_else(|| KeyError::Invalid(format!("'{uri}' is not an OpenBao transit URI (openbao+http://host:port/mount)")))?;
        let (host, mount) = rest.split_once('/').unwrap_or((rest, "transit"));
        let mount = mount.trim_matches('/');
        if host.is_empty() || mount.is_empty() || mount.contains(['?', '#']) {
            return Err(KeyError::Invalid(format!("'{uri}' is not an OpenBao transit URI (openbao+http://host:port/mount)")));
        }
        Ok(OpenBaoTransit { base: format!("http://{host}"), mount: mount.to_string(), identity: identity.to_string(), uri: uri.to_string() })
    }

    fn token(&self) -> Result<String, KeyError> {
        super::secret(&self.identity, "token-file:", "the OpenBao token", &self.uri)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, KeyError> {
        let url = format!("{}/v1/{}/{path}", self.base, self.mount);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        let token = self.token()?;
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).header("X-Vault-Token", &token).call(),
            (_, Some(b)) => agent.post(&url).header("X-Vault-Token", &token).send_json(b),
            (_, None) => agent.post(&url).header("X-Vault-Token", &token).send_empty(),
        };
        let mut response = response.map_err(|e| KeyError::Unavailable(format!("OpenBao at {} cannot be reached: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let errors = v["errors"].as_array().map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")).unwrap_or_default();
        match status {
            200..=299 => Ok(v),
            403 => Err(KeyError::AccessDenied(format!("OpenBao refuses '{path}' to the cluster's token: {errors}"))),
            404 => Err(KeyError::NotFound(format!("OpenBao has no '{path}' under '{}'", self.mount))),
            _ if errors.contains("not found") => Err(KeyError::NotFound(format!("OpenBao: {errors}"))),
            _ => Err(KeyError::Invalid(format!("OpenBao answered {status} to '{path}': {errors}"))),
        }
    }

    fn key(&self, name: &str) -> Result<Value, KeyError> {
        Ok(self.call("GET", &format!("keys/{name}"), None)?["data"].clone())
    }
}

fn version_number(v: &str) -> Result<u64, KeyError> {
    v.parse().map_err(|_| KeyError::NotFound(format!("an OpenBao key has no version '{v}' (versions are numbers)")))
}

impl KeyProvider for OpenBaoTransit {
    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn properties(&self, name: &str, version: Option<&str>) -> Result<KeyProperties, KeyError> {
        let k = self.key(name)?;
        let kty = k["type"].as_str().unwrap_or_default();
        let (kty, size_bits) = match kty.strip_prefix("rsa-").and_then(|b| b.parse::<usize>().ok()) {
            Some(bits) => ("RSA".to_string(), bits),
            None => (kty.to_string(), 0),
        };
        let latest = k["latest_version"].as_u64().unwrap_or(0);
        let version = match version {
            Some(v) => version_number(v)?,
            None => latest,
        };
        if version == 0 || version > latest || k["keys"].get(version.to_string()).is_none() {
            return Err(KeyError::NotFound(format!("key '{name}' has no version '{version}'")));
        }
        let min_decrypt = k["min_decryption_version"].as_u64().unwrap_or(1);
        let protected = !k["deletion_allowed"].as_bool().unwrap_or(true) && !k["soft_deleted"].as_bool().unwrap_or(false);
        Ok(KeyProperties {
            kty,
            size_bits,
            version: version.to_string(),
            current_version: latest.to_string(),
            enabled: version >= min_decrypt,
            soft_delete: protected,
            purge_protection: protected,
        })
    }

    fn wrap(&self, name: &str, version: &str, dek: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.call("POST", &format!("encrypt/{name}"), Some(json!({"plaintext": B64.encode(dek), "key_version": version_number(version)?})))?;
        v["data"]["ciphertext"]
            .as_str()
            .map(|c| c.as_bytes().to_vec())
            .ok_or_else(|| KeyError::Invalid("OpenBao's encrypt answer has no ciphertext".into()))
    }

    fn unwrap(&self, name: &str, version: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError> {
        let ciphertext = std::str::from_utf8(wrapped).map_err(|_| KeyError::Invalid("an OpenBao ciphertext is not text".into()))?;
        if !ciphertext.starts_with(&format!("vault:v{version}:")) {
            return Err(KeyError::Invalid(format!("the wrapped key was not wrapped by version {version} of key '{name}'")));
        }
        let v = self.call("POST", &format!("decrypt/{name}"), Some(json!({"ciphertext": ciphertext})))?;
        let p = v["data"]["plaintext"].as_str().ok_or_else(|| KeyError::Invalid("OpenBao's decrypt answer has no plaintext".into()))?;
        B64.decode(p).map_err(|e| KeyError::Invalid(format!("OpenBao's plaintext is not base64: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_identities() {
        let b = OpenBaoTransit::new("openbao+http://127.0.0.1:8200/transit", "token-file:/nowhere").unwrap();
        assert_eq!((b.base.as_str(), b.mount.as_str()), ("http://127.0.0.1:8200", "transit"));
        assert!(OpenBaoTransit::new("http://x/transit", "env:T").is_err());
        let e = OpenBaoTransit::new("openbao+http://x:1/transit", "kustodian-cluster/1").unwrap().token().unwrap_err();
        assert!(e.to_string().contains("token-file:"), "{e}");
        assert!(matches!(b.token(), Err(KeyError::AccessDenied(_))));
    }
}
