//! The server's TOML configuration (`kustodian serve --config FILE`).
//!
//! ```toml
//! [[auth.issuers]]
//! issuer = "https://login.microsoftonline.com/<tenant>/v2.0"  # discovery at {issuer}/.well-known/openid-configuration
//! audiences = ["https://kusto.kusto.windows.net"]
//! # jwks_uri = "https://..."   # skips discovery
//! # tenant = "<tenant id>"     # for issuers whose URL does not name the tenant
//!
//! [auth]
//! trusted_tenants = ["*"]       # ADX's trustedExternalTenants; default: the issuers' own tenants
//! dev_issuer = false            # trust the local dev issuer (`kustodian token`)
//! leeway_seconds = 300          # clock skew allowed on exp and nbf
//!
//! [network]
//! public_network_access = "Enabled"   # or "Disabled": refuse every caller
//! allowed_ip_ranges = ["127.0.0.1/32", "::1"]   # absent: any address
//! service_tags_file = "ServiceTags_Public.json"
//! allowed_service_tags = ["AzureCloud.westeurope"]
//! trusted_proxies = []          # peers whose X-Forwarded-For is believed
//! restrict_outbound = false     # ADX's restrictOutboundNetworkAccess
//! allowed_fqdns = ["login.microsoftonline.com"]
//!
//! [directory]
//! path = "directory.json"       # groups and users by name, email, object id
//!
//! [audit]
//! path = "audit.log"            # default: audit.log in the cluster directory
//! ```
//!
//! Every table refuses keys it does not know (a misspelt `alowed_ip_ranges` must not silently
//! leave the server open), naming the key and its line. Relative paths are relative to the
//! config file's directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::outbound::{OutboundPolicy, host_pattern_is_valid};

/// Clock skew allowed on `exp` and `nbf` by default: five minutes, as Microsoft's token
/// libraries allow.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 300;
/// How long after a key refresh an unknown `kid` may trigger another one.
pub const DEFAULT_KEY_REFRESH_COOLDOWN_SECONDS: u64 = 300;
/// How long fetched signing keys are used before they are fetched again (key rollover).
pub const DEFAULT_KEYS_MAX_AGE_SECONDS: u64 = 24 * 3600;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub auth: AuthConfig,
    pub network: NetworkConfig,
    pub directory: DirectoryConfig,
    pub audit: AuditConfig,
}

/// `[auth]` and `[[auth.issuers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The token issuers the server trusts. Empty (and `dev_issuer` off): no token is valid.
    pub issuers: Vec<IssuerConfig>,
    /// Tenants whose tokens are accepted (ADX's `trustedExternalTenants`): tenant ids, or `"*"`
    /// for any. Empty (the default): only the tenants the issuers themselves name.
    pub trusted_tenants: Vec<String>,
    /// Trust the local development issuer whose keys live in the cluster directory.
    pub dev_issuer: bool,
    /// The audiences the dev issuer's tokens may carry; default `["https://kustodian.local"]`.
    pub dev_audiences: Vec<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf` (default 300).
    pub leeway_seconds: u64,
    /// Minimum seconds between two key refreshes caused by an unknown `kid` (default 300).
    pub key_refresh_cooldown_seconds: u64,
    /// Seconds fetched keys are used before they are fetched again (default 86400).
    pub keys_max_age_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuers: Vec::new(),
            trusted_tenants: Vec::new(),
            dev_issuer: false,
            dev_audiences: vec![super::dev_issuer::DEV_AUDIENCE.to_string()],
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            key_refresh_cooldown_seconds: DEFAULT_KEY_REFRESH_COOLDOWN_SECONDS,
            keys_max_age_seconds: DEFAULT_KEYS_MAX_AGE_SECONDS,
        }
    }
}

/// One `[[auth.issuers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` of its tokens. `{tenantid}` stands for the token's `tid` (Entra's
    /// multi-tenant form, `https://login.microsoftonline.com/{tenantid}/v2.0`); the
    /// tenant allow-list then decides which tenants are accepted.
    pub issuer: String,
    /// Accepted `aud` values: the cluster's URI, as clients request tokens for it.
    pub audiences: Vec<String>,
    /// Where the signing keys are; absent: from OIDC discovery at
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The tenant of the issuer's tokens when the URL does not name it.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `public_network_access`: ADX's `publicNetworkAccess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PublicNetworkAccess {
    #[default]
    Enabled,
    Disabled,
}

/// `[network]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub public_network_access: PublicNetworkAccess,
    /// Addresses and CIDR ranges allowed to call. Absent (and no service tags): any address;
    /// an empty list: none.
    #[serde(deserialize_with = "opt_nets")]
    pub allowed_ip_ranges: Option<Vec<IpNet>>,
    /// An offline copy of Azure's ServiceTags JSON (`values[].name`,
    /// `values[].properties.addressPrefixes`).
    pub service_tags_file: Option<PathBuf>,
    /// Service tags (names in the file) whose ranges may call.
    pub allowed_service_tags: Vec<String>,
    /// Direct peers (addresses or CIDRs) whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Outbound calls (OIDC discovery, JWKS, key vaults) only to `allowed_fqdns`.
    pub restrict_outbound: bool,
    /// Hosts outbound calls may reach when `restrict_outbound`; `*.example.com` matches
    /// every subdomain of example.com.
    pub allowed_fqdns: Vec<String>,
}

impl NetworkConfig {
    pub fn outbound_policy(&self) -> OutboundPolicy {
        OutboundPolicy::new(self.restrict_outbound, self.allowed_fqdns.clone())
    }
}

/// `[directory]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// The local directory file (see `server::directory`); absent: none.
    pub path: Option<PathBuf>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Where the audit log is appended; absent: `audit.log` in the cluster directory.
    pub path: Option<PathBuf>,
}

impl AuditConfig {
    /// The audit log's path for a cluster directory.
    pub fn path_in(&self, data_dir: &Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| data_dir.join("audit.log"))
    }
}

/// A configuration that cannot be used, with the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// TOML syntax, a wrong type, or an unknown key; the message names the key and its line.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// An address (`10.0.0.1`, a /32 or /128) or a CIDR range (`10.0.0.0/8`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{s}' is neither an IP address nor a CIDR range (like 10.0.0.0/8)"))
}

fn nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter().map(|s| parse_net(s).map_err(serde::de::Error::custom)).collect()
}

fn opt_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    nets(d).map(Some)
}

impl ServerConfig {
    /// Reads, parses and checks a config file, resolving its relative paths against the file's
    /// directory.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config = ServerConfig::parse(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        Ok(config)
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<ServerConfig, ConfigError> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config
            .check()
            .map_err(|message| ConfigError::Invalid { path: origin.to_path_buf(), message })?;
        Ok(config)
    }

    /// Makes relative paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.network.service_tags_file, &mut self.directory.path, &mut self.audit.path].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The checks serde cannot make: URLs, audiences, tenants, host patterns, and that the
    /// outbound restriction lets the server reach its own issuers.
    fn check(&self) -> Result<(), String> {
        let outbound = self.network.outbound_policy();
        for (i, iss) in self.auth.issuers.iter().enumerate() {
            let which = format!("auth.issuers[{i}] ({})", iss.issuer);
            if iss.audiences.iter().all(|a| a.trim().is_empty()) {
                return Err(format!("{which}: audiences must name at least one audience (the cluster's URI)"));
            }
            let url = reqwest::Url::parse(&iss.issuer.replace("{tenantid}", "common"))
                .map_err(|e| format!("{which}: issuer is not a URL: {e}"))?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(format!("{which}: issuer must be an https URL"));
            }
            if iss.tenant.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!("{which}: tenant is empty"));
            }
            if iss.tenant.is_none() && !iss.issuer.contains("{tenantid}") && super::issuer::issuer_tenant(&iss.issuer).is_none() {
                return Err(format!("{which}: the issuer's tenant cannot be told from its URL: set `tenant` (the tenant id its tokens carry in `tid`)"));
            }
            if let Some(j) = &iss.jwks_uri {
                reqwest::Url::parse(j).map_err(|e| format!("{which}: jwks_uri is not a URL: {e}"))?;
            }
            let fetched = iss.jwks_uri.clone().unwrap_or_else(|| iss.issuer.replace("{tenantid}", "common"));
            if let Err(refused) = outbound.check_quiet(&fetched) {
                return Err(format!("{which}: {refused}: add its host to network.allowed_fqdns"));
            }
        }
        if self.auth.trusted_tenants.iter().any(|t| t.trim().is_empty()) {
            return Err("auth.trusted_tenants: an entry is empty (use \"*\" for any tenant)".into());
        }
        if self.auth.dev_issuer && self.auth.dev_audiences.iter().all(|a| a.trim().is_empty()) {
            return Err("auth.dev_audiences: dev_issuer needs at least one audience".into());
        }
        if let Some(bad) = self.network.allowed_fqdns.iter().find(|h| !host_pattern_is_valid(h)) {
            return Err(format!("network.allowed_fqdns: '{bad}' is not a host name (or '*.domain')"));
        }
        if !self.network.allowed_service_tags.is_empty() && self.network.service_tags_file.is_none() {
            return Err("network.allowed_service_tags needs network.service_tags_file (Azure's ServiceTags JSON)".into());
        }
        Ok(())
    }
}

/// toml's message with the line and column of the offending key made explicit.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let key = text[start..span.end.min(text.len())].trim();
            if key.is_empty() || key.contains('\n') {
                format!("line {line}, column {column}: {message}")
            } else {
                format!("line {line}, column {column} ('{key}'): {message}")
            }
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn the_issue_example_parses() -> Result<(), ConfigError> {
        let c = parse(
            r#"
[[auth.issuers]]
issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
audiences = ["https://kusto.kusto.windows.net"]
[auth]
trusted_tenants = ["*"]
[network]
public_network_access = "Enabled"
allowed_ip_ranges = ["127.0.0.1/32"]
trusted_proxies = []
restrict_outbound = false
allowed_fqdns = ["login.microsoftonline.com"]
[directory]
path = "directory.json"
"#,
        )?;
        assert_eq!(c.auth.issuers.len(), 1);
        assert_eq!(c.auth.issuers[0].audiences, vec!["https://kusto.kusto.windows.net"]);
        assert_eq!(c.auth.trusted_tenants, vec!["*"]);
        assert_eq!(c.auth.leeway_seconds, DEFAULT_LEEWAY_SECONDS);
        assert_eq!(c.network.public_network_access, PublicNetworkAccess::Enabled);
        assert_eq!(c.network.allowed_ip_ranges, Some(vec![parse_net("127.0.0.1/32").map_err(|m| ConfigError::Invalid { path: PathBuf::new(), message: m })?]));
        assert_eq!(c.directory.path.as_deref(), Some(Path::new("directory.json")));
        Ok(())
    }

    #[test]
    fn defaults_of_an_empty_file() -> Result<(), ConfigError> {
        let c = parse("")?;
        assert!(c.auth.issuers.is_empty());
        assert!(!c.auth.dev_issuer);
        assert_eq!(c.auth.dev_audiences, vec![crate::server::dev_issuer::DEV_AUDIENCE]);
        assert_eq!(c.auth.key_refresh_cooldown_seconds, DEFAULT_KEY_REFRESH_COOLDOWN_SECONDS);
        assert_eq!(c.network.public_network_access, PublicNetworkAccess::Enabled);
        assert_eq!(c.network.allowed_ip_ranges, None);
        assert!(!c.network.restrict_outbound);
        assert_eq!(c.audit.path_in(Path::new("/data")), PathBuf::from("/data/audit.log"));
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_line() {
        let err = parse("[network]\npublic_network_access = \"Enabled\"\nalowed_ip_ranges = [\"10.0.0.0/8\"]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("alowed_ip_ranges"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = parse("[auth]\ndev_isuer = true\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("dev_isuer") && err.contains("line 2"), "{err}");
        let err = parse("[[auth.issuers]]\nissuer = \"https://a.example/\"\ntenant = \"t\"\naudiences = [\"x\"]\naudience = \"y\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("audience") && err.contains("line 5"), "{err}");
        let err = parse("[netwrk]\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("netwrk") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn addresses_and_cidrs() -> Result<(), ConfigError> {
        let c = parse("[network]\nallowed_ip_ranges = [\"10.1.2.3\", \"192.168.0.0/16\", \"::1\", \"2001:db8::/32\", \"10.9.9.9/8\"]\ntrusted_proxies = [\"127.0.0.1\"]\n")?;
        let r: Vec<String> = c.network.allowed_ip_ranges.unwrap_or_default().iter().map(ToString::to_string).collect();
        // A range written with host bits set is the network it names.
        assert_eq!(r, ["10.1.2.3/32", "192.168.0.0/16", "::1/128", "2001:db8::/32", "10.0.0.0/8"]);
        assert_eq!(c.network.trusted_proxies.len(), 1);
        let err = parse("[network]\nallowed_ip_ranges = [\"10.0.0.300\"]\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("10.0.0.300") && err.contains("line 2"), "{err}");
        Ok(())
    }

    #[test]
    fn public_network_access_values() {
        assert!(parse("[network]\npublic_network_access = \"Disabled\"\n").is_ok_and(|c| c.network.public_network_access == PublicNetworkAccess::Disabled));
        let err = parse("[network]\npublic_network_access = \"Off\"\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("Off") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn semantic_checks() {
        let no_aud = parse("[[auth.issuers]]\nissuer = \"https://a.example/\"\ntenant = \"t\"\naudiences = []\n");
        let no_tenant = parse("[[auth.issuers]]\nissuer = \"https://idp.example/realms/x\"\naudiences = [\"x\"]\n");
        assert!(no_tenant.err().map(|e| e.to_string()).unwrap_or_default().contains("tenant"));
        assert!(matches!(no_aud, Err(ConfigError::Invalid { .. })));
        let bad_url = parse("[[auth.issuers]]\nissuer = \"not a url\"\naudiences = [\"x\"]\n");
        assert!(matches!(bad_url, Err(ConfigError::Invalid { .. })));
        // The server could not reach its own issuer.
        let unreachable = parse(
            "[[auth.issuers]]\nissuer = \"https://login.microsoftonline.com/t/v2.0\"\naudiences = [\"x\"]\n[network]\nrestrict_outbound = true\nallowed_fqdns = [\"vault.azure.net\"]\n",
        );
        let msg = unreachable.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("login.microsoftonline.com") && msg.contains("allowed_fqdns"), "{msg}");
        let reachable = parse(
            "[[auth.issuers]]\nissuer = \"https://login.microsoftonline.com/t/v2.0\"\naudiences = [\"x\"]\n[network]\nrestrict_outbound = true\nallowed_fqdns = [\"login.microsoftonline.com\"]\n",
        );
        assert!(reachable.is_ok());
        let tags = parse("[network]\nallowed_service_tags = [\"AzureCloud\"]\n");
        assert!(matches!(tags, Err(ConfigError::Invalid { .. })));
        let bad_host = parse("[network]\nallowed_fqdns = [\"https://x.example\"]\n");
        assert!(matches!(bad_host, Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn relative_paths_follow_the_config_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("kustodian.toml");
        std::fs::write(&file, "[directory]\npath = \"directory.json\"\n[audit]\npath = \"/var/log/k.log\"\n")?;
        let c = ServerConfig::load(&file)?;
        assert_eq!(c.directory.path, Some(dir.path().join("directory.json")));
        assert_eq!(c.audit.path, Some(PathBuf::from("/var/log/k.log")));
        Ok(())
    }
}
