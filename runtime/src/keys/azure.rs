//! Azure Key Vault's REST API as a key vault: `GET keys/{name}[/{version}]`, `POST
//! keys/{name}/{version}/wrapkey|unwrapkey` with `RSA-OAEP-256`, authenticated by a managed
//! identity's token.
//!
//! A vault URI is the vault's (`https://name.vault.azure.net`; plain `http://` only for a
//! loopback address, a local stand-in). The token comes from the managed-identity endpoint:
//! `IDENTITY_ENDPOINT` with `IDENTITY_HEADER` (App Service, Arc, the stand-in) when set, else
//! the instance metadata service; a user-assigned identity is named by `userIdentity` (its
//! client id). Soft delete is a `recoveryLevel` with "Recoverable"; purge protection one
//! without "Purgeable". A 401 or 403 is a refused access (it suspends the cluster).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};

use super::{KeyError, KeyProperties, KeyProvider};

const API_VERSION: &str = "7.4";
const RESOURCE: &str = "https://vault.azure.net";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

#[derive(Debug, Clone)]
pub struct AzureKeyVault {
    base: String,
    /// A user-assigned identity's client id, or the cluster's own identity (system-assigned).
    identity: Option<String>,
}

fn is_loopback(host: &str) -> bool {
    let h = host.split(':').next().unwrap_or(host);
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || h == "[::1]"
}

impl AzureKeyVault {
    pub fn new(uri: &str, identity: &str) -> Result<AzureKeyVault, KeyError> {
        let base = uri.trim_end_matches('/');
        let ok = match (base.strip_prefix("https://"), base.strip_prefix("http://")) {
            (Some(h), _) => !h.is_empty() && !h.contains('/'),
            (_, Some(h)) => is_loopback(h) && !h.contains('/'),
            _ => false,
        };
        if !ok {
            return Err(KeyError::Invalid(format!(
                "'{uri}' is not a key vault URI (https://name.vault.azure.net; http:// only on a loopback address)"
            )));
        }
        // The cluster's own identity (`kustodian-cluster/...`) is the system-assigned one.
        let identity = (!identity.starts_with("kustodian-cluster/") && !identity.is_empty()).then(|| identity.to_string());
        Ok(AzureKeyVault { base: base.to_string(), identity })
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(std::time::Duration::from_secs(10))).build().into()
    }

    /// A token for Key Vault from the managed-identity endpoint.
    fn token(&self) -> Result<String, KeyError> {
        let agent = AzureKeyVault::agent();
        let (endpoint, header) = match std::env::var("IDENTITY_ENDPOINT") {
            Ok(e) => (e, std::env::var("IDENTITY_HEADER").ok().map(|h| ("X-IDENTITY-HEADER", h))),
            Err(_) => (IMDS.to_string(), Some(("Metadata", "true".to_string()))),
        };
        let mut url = format!("{endpoint}?api-version=2019-08-01&resource={}", url_escape(RESOURCE));
        if let Some(id) = &self.identity {
            url.push_str(&format!("&client_id={}", url_escape(id)));
        }
        let mut req = agent.get(&url);
        if let Some((name, value)) = header {
            req = req.header(name, &value);
        }
        let mut r = req.call().map_err(|e| KeyError::Unavailable(format!("the managed-identity endpoint cannot be reached: {e}")))?;
        let status = r.status().as_u16();
        let v: Value = r.body_mut().read_json().unwrap_or(Value::Null);
        match (status, v["access_token"].as_str()) {
            (200, Some(t)) => Ok(t.to_string()),
            _ => Err(KeyError::AccessDenied(format!("no token for Key Vault from the managed-identity endpoint ({status})"))),
        }
    }

    fn call(&self, path: &str, body: Option<Value>) -> Result<Value, KeyError> {
        let url = format!("{}/{path}?api-version={API_VERSION}", self.base);
        let token = self.token()?;
        let agent = AzureKeyVault::agent();
        let auth = format!("Bearer {token}");
        let r = match body {
            Some(b) => agent.post(&url).header("Authorization", &auth).send_json(b),
            None => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut r = r.map_err(|e| KeyError::Unavailable(format!("the key vault {} cannot be reached: {e}", self.base)))?;
        let status = r.status().as_u16();
        let v: Value = r.body_mut().read_json().unwrap_or(Value::Null);
        let message = v["error"]["message"].as_str().unwrap_or("").to_string();
        match status {
            200..=299 => Ok(v),
            401 | 403 => Err(KeyError::AccessDenied(format!("the key vault {} refuses '{path}': {message}", self.base))),
            404 => Err(KeyError::NotFound(format!("the key vault {} has no '{path}': {message}", self.base))),
            _ => Err(KeyError::Invalid(format!("the key vault {} answered {status} to '{path}': {message}", self.base))),
        }
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl KeyProvider for AzureKeyVault {
    fn uri(&self) -> String {
        self.base.clone()
    }

    fn properties(&self, name: &str, version: Option<&str>) -> Result<KeyProperties, KeyError> {
        let latest = self.call(&format!("keys/{name}"), None)?;
        let current = latest["key"]["kid"].as_str().and_then(|k| k.rsplit('/').next()).unwrap_or_default().to_string();
        let v = match version {
            Some(ver) if ver != current => self.call(&format!("keys/{name}/{ver}"), None)?,
            _ => latest,
        };
        let kty = v["key"]["kty"].as_str().unwrap_or_default();
        let n = v["key"]["n"].as_str().and_then(|n| B64URL.decode(n.trim_end_matches('=')).ok()).unwrap_or_default();
        let modulus = n.iter().skip_while(|b| **b == 0).count();
        let recovery = v["attributes"]["recoveryLevel"].as_str().unwrap_or_default();
        Ok(KeyProperties {
            kty: if kty.starts_with("RSA") { "RSA".into() } else { kty.to_string() },
            size_bits: modulus * 8,
            version: v["key"]["kid"].as_str().and_then(|k| k.rsplit('/').next()).unwrap_or_default().to_string(),
            current_version: current,
            enabled: v["attributes"]["enabled"].as_bool().unwrap_or(false),
            soft_delete: recovery.contains("Recoverable"),
            purge_protection: recovery.contains("Recoverable") && !recovery.contains("Purgeable"),
        })
    }

    fn wrap(&self, name: &str, version: &str, dek: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.call(&format!("keys/{name}/{version}/wrapkey"), Some(json!({"alg": "RSA-OAEP-256", "value": B64URL.encode(dek)})))?;
        v["value"]
            .as_str()
            .and_then(|s| B64URL.decode(s.trim_end_matches('=')).ok())
            .ok_or_else(|| KeyError::Invalid("the key vault's wrapkey answer has no value".into()))
    }

    fn unwrap(&self, name: &str, version: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.call(&format!("keys/{name}/{version}/unwrapkey"), Some(json!({"alg": "RSA-OAEP-256", "value": B64URL.encode(wrapped)})))?;
        v["value"]
            .as_str()
            .and_then(|s| B64URL.decode(s.trim_end_matches('=')).ok())
            .ok_or_else(|| KeyError::Invalid("the key vault's unwrapkey answer has no value".into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn vault_uris() {
        assert!(AzureKeyVault::new("https://kv1.vault.azure.net/", "kustodian-cluster/x").unwrap().identity.is_none());
        assert_eq!(AzureKeyVault::new("https://kv1.vault.azure.net", "client-id").unwrap().identity.as_deref(), Some("client-id"));
        assert!(AzureKeyVault::new("http://127.0.0.1:9000", "x").is_ok());
        for bad in ["http://kv1.vault.azure.net", "https://kv/keys", "ftp://x"] {
            assert!(AzureKeyVault::new(bad, "x").is_err(), "{bad}");
        }
        assert_eq!(url_escape("https://vault.azure.net"), "https%3A%2F%2Fvault.azure.net");
    }
}
