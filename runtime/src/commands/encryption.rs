//! The cluster's encryption key: `.show|.alter|.delete cluster policy encryption`.
//!
//! Setting a key checks it first (RSA of 2048 to 4096 bits, a vault with soft delete and purge
//! protection, and the cluster can wrap and unwrap with it), then re-wraps every extent's DEK
//! from the old key to the new one and commits the metadata, sealed by the new key, in one
//! commit. Extent files are not touched. Deleting the policy goes back to the platform key the
//! same way.

use serde_json::{Value, json};

use super::Cx;
use crate::error::{Result, RuntimeError};
use crate::keys::{DEK_LEN, EncryptionConfig, KeyError, KeyId, KeySource, Keyring, random};
use crate::output::{POLICY_COLS, QueryOutput, V, table};
use crate::storage::key_error;
use kustodian_parser::ast;

fn keyring<'a>(cx: &'a Cx<'_>) -> Result<&'a std::sync::Arc<Keyring>> {
    cx.cluster.storage.as_ref().and_then(|s| s.keyring()).ok_or_else(|| {
        RuntimeError::bad_request(
            "this cluster keeps no data at rest (an in-memory cluster, or one made before encryption at rest): it has no encryption key",
        )
    })
}

/// `.show cluster policy encryption`
pub(super) fn show(cx: &Cx<'_>) -> Result<QueryOutput> {
    let ring = keyring(cx)?;
    let config = ring.config();
    let in_use = ring.current_kek().ok();
    let policy = json!({
        "KeyVaultUri": if config.key.customer { Value::from(config.key.vault_uri.clone()) } else { Value::Null },
        "KeyName": if config.key.customer { Value::from(config.key.key_name.clone()) } else { Value::Null },
        "KeyVersion": config.key.key_version,
        "UserIdentity": config.key.identity,
        "ClusterIdentity": config.identity,
        "CustomerManagedKey": config.key.customer,
        "KeyVersionInUse": in_use.map(|k| k.version),
        "State": if ring.suspension().is_some() { "Suspended" } else { "Active" },
        "SuspensionReason": ring.suspension(),
        "DoubleEncryption": config.double_encryption,
    });
    table(
        POLICY_COLS,
        vec![vec![V::S("EncryptionPolicy".into()), V::S("Cluster".into()), V::S(policy.to_string()), V::S(String::new()), V::S("Cluster".into())]],
    )
}

/// The key a policy names: `keyVaultUri`, `keyName`, `keyVersion` (empty or absent: always the
/// key's current version), `userIdentity` (the identity the cluster reaches the vault as).
fn parse_policy(text: &str) -> Result<KeySource> {
    let v: Value = serde_json::from_str(text).map_err(|e| RuntimeError::bad_request(format!("the encryption policy is not valid JSON: {e}")))?;
    let field = |name: &str| -> Option<String> {
        v.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, x)| x.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(o) = v.as_object()
        && let Some(unknown) = o.keys().find(|k| !["keyvaulturi", "keyname", "keyversion", "useridentity"].contains(&k.to_ascii_lowercase().as_str()))
    {
        return Err(RuntimeError::bad_request(format!(
            "the encryption policy has an unknown property '{unknown}' (known: keyVaultUri, keyName, keyVersion, userIdentity)"
        )));
    }
    let vault_uri = field("keyVaultUri").ok_or_else(|| RuntimeError::bad_request("the encryption policy needs a keyVaultUri"))?;
    let key_name = field("keyName").ok_or_else(|| RuntimeError::bad_request("the encryption policy needs a keyName"))?;
    Ok(KeySource { vault_uri, key_name, key_version: field("keyVersion"), customer: true, identity: field("userIdentity") })
}

/// Refuses a key the cluster may not use: not RSA 2048–4096, no soft delete or purge
/// protection, disabled, or one it cannot wrap and unwrap with.
fn validate(ring: &Keyring, config: &EncryptionConfig, source: &KeySource) -> Result<KeyId> {
    let bad = |m: String| RuntimeError::bad_request(format!("cannot use key '{}' of '{}': {m}", source.key_name, source.vault_uri));
    let provider = ring.provider_as(&source.vault_uri, &config.identity_for(source)).map_err(|e| bad(e.to_string()))?;
    let p = provider.properties(&source.key_name, source.key_version.as_deref()).map_err(|e| bad(e.to_string()))?;
    if p.kty != "RSA" || !(2048..=4096).contains(&p.size_bits) {
        return Err(bad(format!("it is {} of {} bits; the key must be RSA of 2048, 3072 or 4096 bits", p.kty, p.size_bits)));
    }
    if !p.soft_delete || !p.purge_protection {
        return Err(bad("its vault must have soft delete and purge protection enabled".into()));
    }
    if !p.enabled {
        return Err(bad(format!("version '{}' is disabled", p.version)));
    }
    let probe: [u8; DEK_LEN] = random().map_err(key_error)?;
    let w = provider.wrap(&source.key_name, &p.version, &probe).map_err(|e| bad(e.to_string()))?;
    let back = provider.unwrap(&source.key_name, &p.version, &w).map_err(|e| bad(e.to_string()))?;
    if back != probe {
        return Err(bad("a key it wrapped did not unwrap to the same key".into()));
    }
    Ok(KeyId { vault: source.vault_uri.clone(), name: source.key_name.clone(), version: p.version })
}

/// Points the cluster at `source`: every DEK re-wrapped, one commit, then the configuration.
async fn switch(cx: &Cx<'_>, source: KeySource) -> Result<QueryOutput> {
    let ring = keyring(cx)?;
    ring.check_not_suspended().map_err(key_error)?;
    let old = ring.config();
    let mut new = old.clone();
    new.key = source.clone();
    let kek = validate(ring, &new, &source)?;
    // Unwrap every DEK with the keys that wrapped them (access to the old key is needed).
    let mut meta = cx.snap.meta.clone();
    let mut deks = Vec::new();
    for e in meta.extents() {
        if let Some(w) = &e.key {
            let dek = ring.unwrap(w).map_err(|err| {
                RuntimeError::bad_request(format!("cannot re-wrap the key of extent '{}': the key that wraps it refuses: {err}", e.id))
            })?;
            deks.push((e.id.clone(), dek));
        }
    }
    ring.set_config(new).map_err(key_error)?;
    let rewrap = |meta: &mut crate::meta::Meta| -> std::result::Result<(), KeyError> {
        for db in &mut meta.databases {
            let extents = db.tables.iter_mut().flat_map(|t| t.extents.iter_mut()).chain(db.materialized_views.iter_mut().flat_map(|v| v.extents.iter_mut()));
            for e in extents {
                if let Some((_, dek)) = deks.iter().find(|(id, _)| *id == e.id) {
                    let w = ring.wrap_with(&kek, dek)?;
                    ring.remember(&e.id, &w);
                    e.key = Some(w);
                }
            }
        }
        Ok(())
    };
    let result = rewrap(&mut meta).map_err(key_error).and_then(|()| cx.cluster.commit(meta, std::collections::HashMap::new()));
    let from = ring.resolve(&old.key).ok();
    if let Err(e) = result {
        // Nothing committed: the old key stays in use.
        let _ = ring.set_config(old);
        ring.audit("rotate", Some(&kek), from.as_ref().map(ToString::to_string).as_deref(), Err(&KeyError::Invalid(e.to_string())));
        return Err(e);
    }
    ring.audit("rotate", Some(&kek), from.as_ref().map(|k| format!("from {k}")).as_deref(), Ok(()));
    show(cx)
}

/// `.alter cluster policy encryption 'json'`
pub(super) async fn alter(cx: &Cx<'_>, policy: &ast::Literal) -> Result<QueryOutput> {
    let ast::LiteralKind::String(text) = &policy.kind else {
        return Err(RuntimeError::bad_request("the encryption policy is a JSON string"));
    };
    let source = parse_policy(text)?;
    switch(cx, source).await
}

/// `.delete cluster policy encryption`: back to the platform key.
pub(super) async fn delete(cx: &Cx<'_>) -> Result<QueryOutput> {
    let ring = keyring(cx)?;
    let platform = ring.config().platform;
    switch(cx, platform).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn policies_name_a_key() {
        let s = parse_policy(r#"{"keyVaultUri": "file:///v", "KeyName": "k", "keyVersion": ""}"#).unwrap();
        assert_eq!((s.vault_uri.as_str(), s.key_name.as_str(), s.key_version, s.customer), ("file:///v", "k", None, true));
        assert!(parse_policy(r#"{"keyName": "k"}"#).unwrap_err().to_string().contains("keyVaultUri"));
        assert!(parse_policy(r#"{"keyVaultUri": "file:///v", "keyName": "k", "color": 1}"#).unwrap_err().to_string().contains("'color'"));
        assert!(parse_policy("not json").is_err());
    }
}
