//! A PKCS#11 token (an HSM; SoftHSM2 in the tests) as a key vault, through `cryptoki`: the RSA
//! key pair stays in the token, which wraps with the public key and unwraps with the private
//! one (`CKM_RSA_PKCS_OAEP` with SHA-1 and MGF1-SHA1: what SoftHSM2 supports).
//!
//! A vault URI is `pkcs11:<module path>?token=<label>`; the identity is the token's user PIN,
//! `pin-file:/path` or `env:NAME`. A key is the key pairs labelled with its name; a version is
//! a pair's `CKA_ID` in hex, the current version the greatest. Soft delete and purge protection
//! are a private key that may not be destroyed (`CKA_DESTROYABLE` false). A refused login is a
//! refused access (it suspends the cluster).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use super::{KeyError, KeyProperties, KeyProvider};

#[derive(Debug, Clone)]
pub struct Pkcs11Token {
    module: PathBuf,
    token: String,
    identity: String,
    uri: String,
}

/// The loaded modules, each initialized once per process (a second `C_Initialize` fails).
fn module(path: &PathBuf) -> Result<Arc<Pkcs11>, KeyError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Pkcs11>>>> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(m) = modules.get(path) {
        return Ok(Arc::clone(m));
    }
    let m = Pkcs11::new(path).map_err(|e| KeyError::Unavailable(format!("cannot load the PKCS#11 module '{}': {e}", path.display())))?;
    m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| KeyError::Unavailable(format!("cannot initialize the PKCS#11 module '{}': {e}", path.display())))?;
    let m = Arc::new(m);
    modules.insert(path.clone(), Arc::clone(&m));
    Ok(m)
}

fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, PkcsOaepSource::empty()))
}

impl Pkcs11Token {
    /// The token `pkcs11:<module>?token=<label>`, used with the PIN `identity` names.
    pub fn new(uri: &str, identity: &str) -> Result<Pkcs11Token, KeyError> {
        let bad = || KeyError::Invalid(format!("'{uri}' is not a PKCS#11 URI (pkcs11:/path/to/module.so?token=LABEL)"));
        let rest = uri.strip_prefix("pkcs11:").ok_or_else(bad)?;
        let (module, query) = rest.split_once('?').ok_or_else(bad)?;
        let token = query.strip_prefix("token=").filter(|t| !t.is_empty()).ok_or_else(bad)?;
        Ok(Pkcs11Token { module: PathBuf::from(module), token: token.to_string(), identity: identity.to_string(), uri: uri.to_string() })
    }

    fn pin(&self) -> Result<String, KeyError> {
        super::secret(&self.identity, "pin-file:", "the token's PIN", &self.uri)
    }

    /// A logged-in session on the token.
    pub fn session(&self) -> Result<Session, KeyError> {
        let m = module(&self.module)?;
        let err = |e: cryptoki::error::Error| KeyError::Unavailable(format!("PKCS#11: {e}"));
        let slot = m
            .get_slots_with_initialized_token()
            .map_err(err)?
            .into_iter()
            .find(|s| m.get_token_info(*s).is_ok_and(|i| i.label().trim() == self.token))
            .ok_or_else(|| KeyError::NotFound(format!("no PKCS#11 token labelled '{}' in '{}'", self.token, self.module.display())))?;
        let session = m.open_rw_session(slot).map_err(err)?;
        session
            .login(UserType::User, Some(&AuthPin::from(self.pin()?)))
            .map_err(|e| KeyError::AccessDenied(format!("the PKCS#11 token '{}' refuses the cluster's login: {e}", self.token)))?;
        Ok(session)
    }

    /// The key pairs labelled `name`: (version, public, private), by version.
    fn pairs(&self, session: &Session, name: &str) -> Result<Vec<(String, ObjectHandle, ObjectHandle)>, KeyError> {
        let err = |e: cryptoki::error::Error| KeyError::Unavailable(format!("PKCS#11: {e}"));
        let find = |class| session.find_objects(&[Attribute::Class(class), Attribute::Label(name.as_bytes().to_vec())]).map_err(err);
        let id_of = |h: ObjectHandle| -> Result<String, KeyError> {
            let attrs = session.get_attributes(h, &[AttributeType::Id]).map_err(err)?;
            Ok(attrs.iter().find_map(|a| if let Attribute::Id(id) = a { Some(id.iter().map(|b| format!("{b:02x}")).collect()) } else { None }).unwrap_or_default())
        };
        let mut publics = HashMap::new();
        for h in find(ObjectClass::PUBLIC_KEY)? {
            publics.insert(id_of(h)?, h);
        }
        let mut out = Vec::new();
        for h in find(ObjectClass::PRIVATE_KEY)? {
            let id = id_of(h)?;
            if let Some(p) = publics.get(&id) {
                out.push((id, *p, h));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn pair(&self, session: &Session, name: &str, version: &str) -> Result<(ObjectHandle, ObjectHandle), KeyError> {
        self.pairs(session, name)?
            .into_iter()
            .find(|(v, _, _)| v == version)
            .map(|(_, p, s)| (p, s))
            .ok_or_else(|| KeyError::NotFound(format!("key '{name}' has no version '{version}' in the PKCS#11 token '{}'", self.token)))
    }

    /// Generates an RSA key pair labelled `name` with the next version (an admin's tool:
    /// `kustodian hsm add-key`); the private key may not be destroyed. Returns the version.
    pub fn create_key(&self, name: &str, bits: u64) -> Result<String, KeyError> {
        let session = self.session()?;
        let next = self.pairs(&session, name)?.last().and_then(|(v, _, _)| u8::from_str_radix(v, 16).ok()).map_or(1, |v| v + 1);
        let id = vec![next];
        let label = name.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Unwrap(true),
            Attribute::Destroyable(false),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Label(label),
            Attribute::Id(id),
        ];
        session
            .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
            .map_err(|e| KeyError::Invalid(format!("PKCS#11 key generation: {e}")))?;
        Ok(format!("{next:02x}"))
    }

    /// Changes the token's user PIN (an HSM admin revoking or restoring the cluster's access).
    pub fn set_pin(&self, new_pin: &str) -> Result<(), KeyError> {
        let session = self.session()?;
        session
            .set_pin(&AuthPin::from(self.pin()?), &AuthPin::from(new_pin.to_string()))
            .map_err(|e| KeyError::Invalid(format!("PKCS#11: cannot change the PIN: {e}")))
    }
}

impl KeyProvider for Pkcs11Token {
    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn properties(&self, name: &str, version: Option<&str>) -> Result<KeyProperties, KeyError> {
        let session = self.session()?;
        let pairs = self.pairs(&session, name)?;
        let current = pairs.last().map(|(v, _, _)| v.clone()).ok_or_else(|| KeyError::NotFound(format!("no key '{name}' in the PKCS#11 token '{}'", self.token)))?;
        let version = version.map(str::to_string).unwrap_or_else(|| current.clone());
        let (public, private) = self.pair(&session, name, &version)?;
        let err = |e: cryptoki::error::Error| KeyError::Unavailable(format!("PKCS#11: {e}"));
        let pa = session.get_attributes(public, &[AttributeType::ModulusBits, AttributeType::KeyType]).map_err(err)?;
        let sa = session.get_attributes(private, &[AttributeType::Destroyable, AttributeType::Decrypt]).map_err(err)?;
        let bits = pa.iter().find_map(|a| if let Attribute::ModulusBits(b) = a { Some(u64::from(*b) as usize) } else { None }).unwrap_or(0);
        let rsa = pa.iter().any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::RSA));
        let destroyable = sa.iter().find_map(|a| if let Attribute::Destroyable(d) = a { Some(*d) } else { None }).unwrap_or(true);
        let decrypt = sa.iter().find_map(|a| if let Attribute::Decrypt(d) = a { Some(*d) } else { None }).unwrap_or(false);
        Ok(KeyProperties {
            kty: if rsa { "RSA".into() } else { "other".into() },
            size_bits: bits,
            version,
            current_version: current,
            enabled: decrypt,
            soft_delete: !destroyable,
            purge_protection: !destroyable,
        })
    }

    fn wrap(&self, name: &str, version: &str, dek: &[u8]) -> Result<Vec<u8>, KeyError> {
        let session = self.session()?;
        let (public, _) = self.pair(&session, name, version)?;
        session.encrypt(&oaep(), public, dek).map_err(|e| KeyError::Invalid(format!("PKCS#11 wrap with key '{name}': {e}")))
    }

    fn unwrap(&self, name: &str, version: &str, wrapped: &[u8]) -> Result<Vec<u8>, KeyError> {
        let session = self.session()?;
        let (_, private) = self.pair(&session, name, version)?;
        session.decrypt(&oaep(), private, wrapped).map_err(|e| KeyError::Invalid(format!("PKCS#11 unwrap with key '{name}': {e}")))
    }
}
