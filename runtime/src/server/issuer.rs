//! What an issuer's URL says: Microsoft Entra's issuer URLs (and the dev issuer's) name the
//! tenant whose tokens they sign, which is what a token's `tid` is checked against.

use super::dev_issuer::DEV_ISSUER_TEMPLATE;

/// Microsoft Entra's authority hosts (public and sovereign clouds), whose issuer URLs name
/// the tenant in their first path segment.
const ENTRA_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "sts.windows.net",
    "login.windows.net",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
    "sts.chinacloudapi.cn",
];

/// The tenant an issuer URL names: Entra's (`https://login.microsoftonline.com/{tid}/v2.0`,
/// `https://sts.windows.net/{tid}/`) and the dev issuer's; None for other issuers and for
/// templates.
pub fn issuer_tenant(issuer: &str) -> Option<String> {
    if issuer.contains("{tenantid}") {
        return None;
    }
    let rest = issuer.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let host = host.to_ascii_lowercase();
    let tenant = if ENTRA_HOSTS.contains(&host.as_str()) {
        segments.next()?
    } else if issuer.starts_with(DEV_ISSUER_TEMPLATE.split("{tenantid}").next().unwrap_or_default()) {
        segments.nth(1)?
    } else {
        return None;
    };
    Some(tenant.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_of_issuer_urls() {
        let t = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_eq!(issuer_tenant(&format!("https://login.microsoftonline.com/{t}/v2.0")).as_deref(), Some(t));
        assert_eq!(issuer_tenant(&format!("https://sts.windows.net/{t}/")).as_deref(), Some(t));
        assert_eq!(issuer_tenant(&format!("https://kustodian.local/dev/{t}/v2.0")).as_deref(), Some(t));
        assert_eq!(issuer_tenant("https://login.microsoftonline.com/{tenantid}/v2.0"), None);
        assert_eq!(issuer_tenant("https://idp.example/realms/x"), None);
        assert_eq!(issuer_tenant("http://login.microsoftonline.com/t/v2.0"), None);
    }
}
