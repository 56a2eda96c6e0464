//! Outbound network restriction (ADX's `restrictOutboundNetworkAccess` / `allowedFqdnList`)
//! and the one HTTP client every outbound call of the server goes through.
//!
//! With the restriction on, a URL whose host is not listed is refused before any connection
//! (and before any DNS lookup), the refusal is logged, and the caller fails closed. Redirects
//! are never followed: a redirect could lead to a host the list does not allow.

use std::time::Duration;

use reqwest::Url;

/// The most a discovery document or key set may weigh: Entra's are a few kilobytes.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long one outbound request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which hosts outbound calls may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    restrict: bool,
    /// Lower-cased, without a trailing dot; `*.x` entries match subdomains of x.
    allowed: Vec<String>,
}

/// An outbound call refused by policy (or a URL that cannot be called at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefused {
    #[error("outbound call to '{url}' refused: host '{host}' is not in allowed_fqdns (restrict_outbound = true)")]
    HostNotAllowed { url: String, host: String },
    #[error("outbound call to '{url}' refused: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Whether `pattern` is a host name, an IP address, or `*.` followed by a host name.
pub fn host_pattern_is_valid(pattern: &str) -> bool {
    let p = pattern.trim().trim_end_matches('.');
    let host = p.strip_prefix("*.").unwrap_or(p);
    if host.is_empty() {
        return false;
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return !p.starts_with("*.");
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

fn normalize_host(h: &str) -> String {
    h.trim().trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

impl OutboundPolicy {
    /// `restrict`: only `allowed` hosts; otherwise every host.
    pub fn new(restrict: bool, allowed: Vec<String>) -> OutboundPolicy {
        OutboundPolicy { restrict, allowed: allowed.iter().map(|h| normalize_host(h)).collect() }
    }

    /// No restriction.
    pub fn unrestricted() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    pub fn is_restricted(&self) -> bool {
        self.restrict
    }

    fn host_allowed(&self, host: &str) -> bool {
        if !self.restrict {
            return true;
        }
        let host = normalize_host(host);
        self.allowed.iter().any(|a| match a.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.'),
            None => *a == host,
        })
    }

    /// Whether the server may call `url`; a refusal is logged (`tracing` warn) with the URL.
    /// Key-vault and any later outbound code calls this before connecting.
    pub fn check(&self, url: &str) -> Result<Url, OutboundRefused> {
        self.check_quiet(url).inspect_err(|refused| {
            tracing::warn!(target: "kustodian::outbound", %refused, "outbound call refused");
        })
    }

    /// [`check`](Self::check) without the log line (configuration checks).
    pub fn check_quiet(&self, url: &str) -> Result<Url, OutboundRefused> {
        let parsed = Url::parse(url).map_err(|e| OutboundRefused::BadUrl { url: url.to_string(), reason: e.to_string() })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(OutboundRefused::BadUrl { url: url.to_string(), reason: format!("scheme '{}' is not https", parsed.scheme()) });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundRefused::BadUrl { url: url.to_string(), reason: "URLs with credentials are not called".into() });
        }
        let Some(host) = parsed.host_str() else {
            return Err(OutboundRefused::BadUrl { url: url.to_string(), reason: "no host".into() });
        };
        if !self.host_allowed(host) {
            return Err(OutboundRefused::HostNotAllowed { url: url.to_string(), host: normalize_host(host) });
        }
        Ok(parsed)
    }
}

/// Why an outbound fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Refused(#[from] OutboundRefused),
    #[error("GET {url}: {message}")]
    Http { url: String, message: String },
    #[error("GET {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the response is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: the response is not the expected JSON: {message}")]
    Json { url: String, message: String },
}

/// An HTTP client for the server's own outbound calls: the policy checked on every URL,
/// plain `http` only to loopback hosts, no redirects, bounded time and size.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl OutboundClient {
    pub fn new(policy: OutboundPolicy) -> Result<OutboundClient, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("kustodian/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Http { url: String::new(), message: e.to_string() })?;
        Ok(OutboundClient { client, policy })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// GETs `url` and parses its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let parsed = self.policy.check(url)?;
        if parsed.scheme() == "http" && !is_loopback_host(&parsed) {
            return Err(OutboundRefused::BadUrl { url: url.to_string(), reason: "plain http is only allowed to loopback addresses".into() }.into());
        }
        let http = |e: reqwest::Error| FetchError::Http { url: url.to_string(), message: e.to_string() };
        let mut response = self.client.get(parsed).header("accept", "application/json").send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
        }
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(FetchError::TooLarge { url: url.to_string() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(FetchError::TooLarge { url: url.to_string() });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| FetchError::Json { url: url.to_string(), message: e.to_string() })
    }
}

fn is_loopback_host(url: &Url) -> bool {
    let host = url.host_str().map(normalize_host).unwrap_or_default();
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrestricted_allows_any_host() {
        let p = OutboundPolicy::unrestricted();
        assert!(p.check("https://login.microsoftonline.com/x").is_ok());
        assert!(p.check("https://anything.example/").is_ok());
    }

    #[test]
    fn restricted_allows_only_listed_hosts() {
        let p = OutboundPolicy::new(true, vec!["login.microsoftonline.com".into(), "*.vault.azure.net".into(), "127.0.0.1".into()]);
        assert!(p.check("https://login.microsoftonline.com/t/v2.0").is_ok());
        assert!(p.check("https://LOGIN.microsoftonline.com./t").is_ok());
        assert!(p.check("https://kv1.vault.azure.net/keys/k").is_ok());
        assert!(p.check("http://127.0.0.1:8080/jwks").is_ok());
        for refused in [
            "https://evil.example/",
            "https://vault.azure.net/",
            "https://login.microsoftonline.com.evil.example/",
            "https://xlogin.microsoftonline.com/",
            "https://kv1.vault.azure.net.evil.example/",
            "https://127.0.0.2/",
        ] {
            assert!(matches!(p.check(refused), Err(OutboundRefused::HostNotAllowed { .. })), "{refused}");
        }
        assert!(matches!(p.check("file:///etc/passwd"), Err(OutboundRefused::BadUrl { .. })));
        assert!(matches!(p.check("https://user:pw@login.microsoftonline.com/"), Err(OutboundRefused::BadUrl { .. })));
        assert!(matches!(p.check("not a url"), Err(OutboundRefused::BadUrl { .. })));
    }

    #[test]
    fn host_patterns() {
        assert!(host_pattern_is_valid("login.microsoftonline.com"));
        assert!(host_pattern_is_valid("*.vault.azure.net"));
        assert!(host_pattern_is_valid("127.0.0.1"));
        assert!(host_pattern_is_valid("::1"));
        assert!(!host_pattern_is_valid("https://x"));
        assert!(!host_pattern_is_valid("*."));
        assert!(!host_pattern_is_valid("a..b"));
        assert!(!host_pattern_is_valid("*.127.0.0.1"));
    }

    #[tokio::test]
    async fn a_refused_fetch_fails_closed_without_connecting() -> Result<(), FetchError> {
        let client = OutboundClient::new(OutboundPolicy::new(true, vec!["allowed.example".into()]))?;
        let r = client.get_json::<serde_json::Value>("https://refused.example/.well-known/openid-configuration").await;
        assert!(matches!(r, Err(FetchError::Refused(OutboundRefused::HostNotAllowed { .. }))));
        Ok(())
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() -> Result<(), FetchError> {
        let client = OutboundClient::new(OutboundPolicy::unrestricted())?;
        let r = client.get_json::<serde_json::Value>("http://login.example/keys").await;
        assert!(matches!(r, Err(FetchError::Refused(OutboundRefused::BadUrl { .. }))));
        Ok(())
    }
}
