//! Network access control, decided for every request before authentication is attempted:
//! * `public_network_access = "Disabled"` refuses everyone;
//! * `allowed_ip_ranges` (addresses and CIDRs, IPv4 and IPv6) and `allowed_service_tags`
//!   (ranges from an offline copy of Azure's ServiceTags JSON) say who may call; with neither,
//!   any address may;
//! * the caller's address is the TCP peer's, unless the peer is a trusted proxy: then it is
//!   the rightmost `X-Forwarded-For` hop that is not itself a trusted proxy. A client can
//!   write anything into the header, so hops left of the first untrusted one are never
//!   believed, and a peer that is not a trusted proxy has its header ignored altogether.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use super::config::{NetworkConfig, PublicNetworkAccess};

/// Why a [`NetworkPolicy`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot read the service tags file {path}: {message}")]
    ServiceTags { path: String, message: String },
    #[error("service tag '{0}' is not in the service tags file")]
    UnknownServiceTag(String),
}

/// Azure's ServiceTags JSON, the parts used.
#[derive(Debug, Deserialize)]
struct ServiceTagsFile {
    values: Vec<ServiceTag>,
}

#[derive(Debug, Deserialize)]
struct ServiceTag {
    name: String,
    #[serde(default)]
    properties: ServiceTagProperties,
}

#[derive(Debug, Default, Deserialize)]
struct ServiceTagProperties {
    #[serde(default, rename = "addressPrefixes")]
    address_prefixes: Vec<String>,
}

/// The ranges of the wanted service tags in a ServiceTags document. A tag asked for that the
/// document lacks is an error (a typo must not silently allow nobody, or be mistaken for
/// an allow-list that is in force).
pub fn service_tag_ranges(json: &str, wanted: &[String]) -> Result<Vec<(String, IpNet)>, NetworkError> {
    let file: ServiceTagsFile = serde_json::from_str(json).map_err(|e| NetworkError::ServiceTags { path: String::new(), message: e.to_string() })?;
    let mut out = Vec::new();
    for w in wanted {
        let tag = file
            .values
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(w.trim()))
            .ok_or_else(|| NetworkError::UnknownServiceTag(w.clone()))?;
        for p in &tag.properties.address_prefixes {
            let net = super::config::parse_net(p).map_err(|message| NetworkError::ServiceTags { path: String::new(), message: format!("tag {}: {message}", tag.name) })?;
            out.push((tag.name.clone(), net));
        }
    }
    Ok(out)
}

/// The address forms compared: IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack
/// listener reports for IPv4 peers) is the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Why a caller is allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkReason {
    /// No allow-list is configured.
    AnyAddress,
    /// In an allowed range.
    AllowedRange(IpNet),
    /// In a range of an allowed service tag.
    ServiceTag(String),
    /// Public network access is disabled.
    PublicAccessDisabled,
    /// Not in any allowed range or service tag.
    NotAllowed,
    /// A trusted proxy forwarded an `X-Forwarded-For` hop that is not an address.
    MalformedForwardedFor,
}

impl fmt::Display for NetworkReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkReason::AnyAddress => f.write_str("no address restriction"),
            NetworkReason::AllowedRange(n) => write!(f, "in allowed range {n}"),
            NetworkReason::ServiceTag(t) => write!(f, "in service tag {t}"),
            NetworkReason::PublicAccessDisabled => f.write_str("public network access is disabled"),
            NetworkReason::NotAllowed => f.write_str("the address is not in the allowed IP ranges or service tags"),
            NetworkReason::MalformedForwardedFor => f.write_str("a trusted proxy sent a malformed X-Forwarded-For header"),
        }
    }
}

/// The decision for one request, with what the audit log and the 403 need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDecision {
    /// The caller's address as determined (the peer, or a forwarded hop).
    pub client: IpAddr,
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the client address came from `X-Forwarded-For`.
    pub forwarded: bool,
    pub allowed: bool,
    pub reason: NetworkReason,
}

impl NetworkDecision {
    /// The text of the 403 for a refused caller: the address and why, not the allow-list.
    pub fn refusal_message(&self) -> String {
        format!("Request from client address {} is forbidden: {}.", self.client, self.reason)
    }
}

/// The network rules of the server.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    access: PublicNetworkAccess,
    /// None: any address.
    ranges: Option<Vec<IpNet>>,
    tags: Vec<(String, IpNet)>,
    trusted_proxies: Vec<IpNet>,
}

impl NetworkPolicy {
    /// The policy of the configuration, reading the service tags file if tags are allowed.
    pub fn from_config(config: &NetworkConfig) -> Result<NetworkPolicy, NetworkError> {
        let tags = match (&config.service_tags_file, config.allowed_service_tags.is_empty()) {
            (Some(path), false) => {
                let text = std::fs::read_to_string(path).map_err(|e| NetworkError::ServiceTags { path: path.display().to_string(), message: e.to_string() })?;
                service_tag_ranges(&text, &config.allowed_service_tags).map_err(|e| with_path(e, path))?
            }
            _ => Vec::new(),
        };
        Ok(NetworkPolicy::new(config.public_network_access, config.allowed_ip_ranges.clone(), tags, config.trusted_proxies.clone()))
    }

    pub fn new(access: PublicNetworkAccess, ranges: Option<Vec<IpNet>>, tags: Vec<(String, IpNet)>, trusted_proxies: Vec<IpNet>) -> NetworkPolicy {
        NetworkPolicy { access, ranges, tags, trusted_proxies }
    }

    /// No restriction at all.
    pub fn open() -> NetworkPolicy {
        NetworkPolicy::new(PublicNetworkAccess::Enabled, None, Vec::new(), Vec::new())
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The caller's address from the peer and the `X-Forwarded-For` header values (all of
    /// them, in order); Err when a trusted proxy forwarded a hop that is not an address.
    pub fn client_address<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> Result<(IpAddr, bool), IpAddr> {
        let peer = canonical_ip(peer);
        if !self.is_trusted_proxy(peer) {
            return Ok((peer, false));
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|h| !h.is_empty()).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { return Err(client) };
            client = canonical_ip(ip);
            if !self.is_trusted_proxy(client) {
                return Ok((client, true));
            }
        }
        // Every hop is a trusted proxy: the leftmost is as far as the chain goes.
        Ok((client, client != peer))
    }

    /// Allowed or refused, and why.
    pub fn decide<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> NetworkDecision {
        let peer = canonical_ip(peer);
        let (client, forwarded, malformed) = match self.client_address(peer, forwarded_for) {
            Ok((c, f)) => (c, f, false),
            Err(c) => (c, c != peer, true),
        };
        let decision = |allowed, reason| NetworkDecision { client, peer, forwarded, allowed, reason };
        if self.access == PublicNetworkAccess::Disabled {
            return decision(false, NetworkReason::PublicAccessDisabled);
        }
        if malformed {
            return decision(false, NetworkReason::MalformedForwardedFor);
        }
        if self.ranges.is_none() && self.tags.is_empty() {
            return decision(true, NetworkReason::AnyAddress);
        }
        if let Some(n) = self.ranges.iter().flatten().find(|n| n.contains(&client)) {
            return decision(true, NetworkReason::AllowedRange(*n));
        }
        if let Some((tag, _)) = self.tags.iter().find(|(_, n)| n.contains(&client)) {
            return decision(true, NetworkReason::ServiceTag(tag.clone()));
        }
        decision(false, NetworkReason::NotAllowed)
    }
}

fn with_path(e: NetworkError, path: &Path) -> NetworkError {
    match e {
        NetworkError::ServiceTags { message, .. } => NetworkError::ServiceTags { path: path.display().to_string(), message },
        other => other,
    }
}

/// One `X-Forwarded-For` hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::parse_net;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|s| parse_net(s).ok()).collect()
    }

    const NONE: [&str; 0] = [];

    #[test]
    fn allow_list_of_addresses_and_ranges() {
        let p = NetworkPolicy::new(PublicNetworkAccess::Enabled, Some(nets(&["127.0.0.2", "10.0.0.0/8", "2001:db8::/32"])), vec![], vec![]);
        let d = p.decide(ip("127.0.0.2"), NONE);
        assert!(d.allowed);
        assert_eq!(d.reason, NetworkReason::AllowedRange(nets(&["127.0.0.2/32"])[0]));
        assert!(p.decide(ip("10.200.3.4"), NONE).allowed);
        assert!(p.decide(ip("2001:db8:1::5"), NONE).allowed);
        let refused = p.decide(ip("127.0.0.3"), NONE);
        assert!(!refused.allowed);
        assert_eq!(refused.reason, NetworkReason::NotAllowed);
        assert!(refused.refusal_message().contains("127.0.0.3"));
        assert!(!p.decide(ip("2001:db9::1"), NONE).allowed);
        // An IPv4 peer seen through a dual-stack socket is its IPv4 address.
        assert!(p.decide(ip("::ffff:10.1.1.1"), NONE).allowed);
        assert_eq!(p.decide(ip("::ffff:10.1.1.1"), NONE).client, ip("10.1.1.1"));
    }

    #[test]
    fn no_allow_list_allows_any_and_an_empty_one_none() {
        assert_eq!(NetworkPolicy::open().decide(ip("203.0.113.9"), NONE).reason, NetworkReason::AnyAddress);
        let none = NetworkPolicy::new(PublicNetworkAccess::Enabled, Some(vec![]), vec![], vec![]);
        assert!(!none.decide(ip("127.0.0.1"), NONE).allowed);
    }

    #[test]
    fn disabled_refuses_everyone() {
        let p = NetworkPolicy::new(PublicNetworkAccess::Disabled, Some(nets(&["0.0.0.0/0", "::/0"])), vec![], vec![]);
        for a in ["127.0.0.1", "10.0.0.1", "::1"] {
            let d = p.decide(ip(a), NONE);
            assert!(!d.allowed);
            assert_eq!(d.reason, NetworkReason::PublicAccessDisabled);
        }
    }

    #[test]
    fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let p = NetworkPolicy::new(PublicNetworkAccess::Enabled, Some(nets(&["10.0.0.0/8"])), vec![], nets(&["192.168.1.1"]));
        let d = p.decide(ip("203.0.113.7"), ["10.0.0.5"]);
        assert!(!d.allowed);
        assert_eq!(d.client, ip("203.0.113.7"));
        assert!(!d.forwarded);
    }

    #[test]
    fn trusted_proxy_chain_takes_the_rightmost_untrusted_hop() {
        let p = NetworkPolicy::new(PublicNetworkAccess::Enabled, Some(nets(&["10.0.0.0/8"])), vec![], nets(&["192.168.1.0/24"]));
        // client -> proxy 192.168.1.2 -> proxy 192.168.1.1 (peer). The client's own claim
        // (leftmost, 10.9.9.9) is not believed: 198.51.100.4 is what the first proxy saw.
        let d = p.decide(ip("192.168.1.1"), ["10.9.9.9, 198.51.100.4", "192.168.1.2"]);
        assert_eq!(d.client, ip("198.51.100.4"));
        assert!(d.forwarded);
        assert!(!d.allowed);
        let d = p.decide(ip("192.168.1.1"), ["10.1.2.3, 192.168.1.2"]);
        assert_eq!(d.client, ip("10.1.2.3"));
        assert!(d.allowed);
        // Ports and brackets as some proxies write them.
        assert_eq!(p.decide(ip("192.168.1.1"), ["10.1.2.3:4567"]).client, ip("10.1.2.3"));
        assert_eq!(p.decide(ip("192.168.1.1"), ["[2001:db8::7]:443"]).client, ip("2001:db8::7"));
        // No header from a trusted proxy: the proxy itself is the caller.
        let d = p.decide(ip("192.168.1.1"), NONE);
        assert_eq!(d.client, ip("192.168.1.1"));
        assert!(!d.forwarded);
        // Only proxies in the chain: the leftmost.
        assert_eq!(p.decide(ip("192.168.1.1"), ["192.168.1.3, 192.168.1.2"]).client, ip("192.168.1.3"));
        // A garbage hop right of any untrusted one: refused, fail closed.
        let d = p.decide(ip("192.168.1.1"), ["10.1.2.3, garbage"]);
        assert!(!d.allowed);
        assert_eq!(d.reason, NetworkReason::MalformedForwardedFor);
        // Garbage left of the client hop is never read.
        assert!(p.decide(ip("192.168.1.1"), ["garbage, 10.1.2.3"]).allowed);
    }

    #[test]
    fn service_tags() -> Result<(), NetworkError> {
        let json = r#"{"changeNumber": 1, "cloud": "Public", "values": [
            {"name": "AzureCloud.westeurope", "id": "AzureCloud.westeurope", "properties": {"addressPrefixes": ["20.50.0.0/16", "2603:1020::/47"]}},
            {"name": "Storage", "id": "Storage", "properties": {"addressPrefixes": ["52.239.0.0/16"]}}
        ]}"#;
        let tags = service_tag_ranges(json, &["azurecloud.westeurope".to_string()])?;
        assert_eq!(tags.len(), 2);
        let p = NetworkPolicy::new(PublicNetworkAccess::Enabled, None, tags, vec![]);
        let d = p.decide(ip("20.50.1.2"), NONE);
        assert!(d.allowed);
        assert_eq!(d.reason, NetworkReason::ServiceTag("AzureCloud.westeurope".into()));
        assert!(p.decide(ip("2603:1020::9"), NONE).allowed);
        assert!(!p.decide(ip("52.239.1.1"), NONE).allowed, "a tag not allowed");
        assert!(matches!(service_tag_ranges(json, &["Nope".to_string()]), Err(NetworkError::UnknownServiceTag(_))));
        assert!(service_tag_ranges("{}", &["x".to_string()]).is_err());
        Ok(())
    }

    #[test]
    fn policy_from_config_reads_the_tags_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tags.json");
        std::fs::write(&file, r#"{"values": [{"name": "Tag1", "properties": {"addressPrefixes": ["198.51.100.0/24"]}}]}"#)?;
        let config = NetworkConfig {
            allowed_ip_ranges: Some(nets(&["127.0.0.1"])),
            service_tags_file: Some(file),
            allowed_service_tags: vec!["Tag1".into()],
            ..NetworkConfig::default()
        };
        let p = NetworkPolicy::from_config(&config)?;
        assert!(p.decide(ip("198.51.100.8"), NONE).allowed);
        assert!(p.decide(ip("127.0.0.1"), NONE).allowed);
        assert!(!p.decide(ip("127.0.0.2"), NONE).allowed);
        Ok(())
    }
}
