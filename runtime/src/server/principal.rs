//! A validated token's claims → the caller's identity, as Azure Data Explorer maps them:
//! * users: `aaduser=<oid>;<tid>`, with the UPN kept for `current_principal_details()`;
//! * applications and managed identities (`idtyp=app`, or a token with no user claims but
//!   an `appid`/`azp`): `aadapp=<appid>;<tid>`;
//! * Microsoft accounts (tenant `9188040d-6c67-4c5b-b112-36a304b66dad`): `msauser=<email>`;
//! * `Mfa` from `amr` containing `mfa`;
//! * groups from the `groups` claim (`aadgroup=<id>;<tid>`), or from the local directory when
//!   the claim is absent or overflowed (`_claim_names.groups`, `hasgroups`).
//!
//! Role assignments may name a user by UPN and a group by email or name. The identity
//! therefore carries the other spellings of the same principal (`aliases`: `aaduser=<upn>`
//! from the signed `upn` claim, never from `preferred_username`, which users can change) and
//! every spelling of each group the directory knows.

use kustodian_planner::{Principal, PrincipalKind};
use serde_json::{Map, Value, json};

use super::directory::{Directory, DirectoryGroup};
use super::token::ValidatedToken;
use crate::request::Identity;

/// The tenant of Microsoft (consumer) accounts.
pub const MSA_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Why a validated token yields no identity (HTTP 401 as well).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the token names no user (oid) or application (appid/azp)")]
    NoSubject,
    #[error("the token has no '{0}' claim, which a {1} token needs")]
    MissingClaim(&'static str, &'static str),
    #[error("the token's '{0}' claim is not a valid identifier")]
    BadClaim(&'static str),
    /// The token says the caller is in more groups than it lists, and the directory cannot
    /// say which: without them, policies that exclude members of a group would not apply.
    #[error("the caller's group memberships are not in the token (group overage) and the directory does not know the caller")]
    GroupsUnavailable,
}

/// What `current_principal_details()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalDetails {
    pub user_principal_name: Option<String>,
    /// The token's issuer.
    pub identity_provider: String,
    /// The tenant id.
    pub authority: String,
    pub mfa: bool,
    pub kind: PrincipalKind,
    pub display_name: String,
    pub object_id: Option<String>,
    pub fqn: String,
}

impl PrincipalDetails {
    /// The property bag, with Kusto's key names and its string `"True"`/`"False"` for `Mfa`.
    pub fn to_json(&self) -> Value {
        json!({
            "UserPrincipalName": self.user_principal_name,
            "IdentityProvider": self.identity_provider,
            "Authority": self.authority,
            "Mfa": if self.mfa { "True" } else { "False" },
            "Type": self.kind.details_type(),
            "DisplayName": self.display_name,
            "ObjectId": self.object_id,
            "FQN": self.fqn,
            "Notes": Value::Null,
        })
    }
}

/// The caller a token identifies.
#[derive(Debug, Clone)]
pub struct AuthenticatedIdentity {
    /// Canonical: `aaduser=<oid>;<tid>`, `aadapp=<appid>;<tid>` or `msauser=<email>`.
    pub principal: Principal,
    /// Other FQNs of the same principal that role assignments may use (`aaduser=<upn>`...).
    pub aliases: Vec<Principal>,
    /// Every group, each in every spelling known (id, email, name).
    pub groups: Vec<Principal>,
    /// Whether the groups came from the directory rather than the token.
    pub groups_from_directory: bool,
    pub details: PrincipalDetails,
}

impl AuthenticatedIdentity {
    /// The engine's request identity: the canonical principal and the group FQNs.
    pub fn identity(&self) -> Identity {
        Identity {
            principal: self.principal.fqn(),
            groups: self.groups.iter().map(Principal::fqn).collect(),
            aliases: self.aliases.iter().map(Principal::fqn).collect(),
            details: kustodian_planner::PrincipalDetails {
                upn: self.details.user_principal_name.clone(),
                display_name: Some(self.details.display_name.clone()),
                mfa: self.details.mfa,
                identity_provider: Some(self.details.identity_provider.clone()),
            },
        }
    }

    /// Every FQN that names the caller: the principal and its aliases.
    pub fn principal_fqns(&self) -> Vec<String> {
        std::iter::once(&self.principal).chain(&self.aliases).map(Principal::fqn).collect()
    }
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// An identifier usable in an FQN: no separators, no control characters.
fn identifier(s: &str, claim: &'static str) -> Result<String, IdentityError> {
    if s.contains(|c: char| c == ';' || c == '=' || c.is_control()) || s.len() > 256 {
        return Err(IdentityError::BadClaim(claim));
    }
    Ok(s.to_lowercase())
}

fn parse(fqn: &str, claim: &'static str) -> Result<Principal, IdentityError> {
    Principal::parse(fqn).map_err(|_| IdentityError::BadClaim(claim))
}

fn push_unique(list: &mut Vec<Principal>, p: Principal) {
    if !list.contains(&p) {
        list.push(p);
    }
}

/// Whether `groups` is missing because there were too many (Entra's group overage).
fn groups_overflowed(claims: &Map<String, Value>) -> bool {
    let named = claims.get("_claim_names").and_then(Value::as_object).is_some_and(|m| m.contains_key("groups"));
    let has = matches!(claims.get("hasgroups"), Some(Value::Bool(true)) | Some(Value::String(_)));
    named || has
}

/// The identity a validated token stands for, with groups from its claim or the directory.
pub fn identity_from_token(token: &ValidatedToken, directory: Option<&Directory>) -> Result<AuthenticatedIdentity, IdentityError> {
    let c = &token.claims;
    let tid = token.tenant.as_str();
    let idtyp = str_claim(c, "idtyp").map(str::to_ascii_lowercase);
    let user_claims = ["scp", "upn", "preferred_username", "unique_name"].iter().any(|k| c.contains_key(*k));
    let app_id = str_claim(c, "appid").or_else(|| str_claim(c, "azp"));
    let is_app = match idtyp.as_deref() {
        Some("app") => true,
        Some("user") => false,
        _ => !user_claims && app_id.is_some(),
    };
    let oid = str_claim(c, "oid").map(|o| identifier(o, "oid")).transpose()?;
    let upn = str_claim(c, "upn").map(|u| identifier(u, "upn")).transpose()?;
    let preferred = str_claim(c, "preferred_username").or_else(|| str_claim(c, "unique_name")).or_else(|| str_claim(c, "email"));
    let mfa = c.get("amr").and_then(Value::as_array).is_some_and(|a| a.iter().any(|m| m.as_str() == Some("mfa")));
    let mut aliases = Vec::new();

    let (principal, kind, display, upn_detail) = if is_app {
        let app = identifier(app_id.ok_or(IdentityError::MissingClaim("appid", "application"))?, "appid")?;
        let principal = parse(&format!("aadapp={app};{tid}"), "appid")?;
        // A managed identity may be granted a role by its object id.
        if let Some(o) = &oid
            && *o != app
        {
            push_unique(&mut aliases, parse(&format!("aadapp={o};{tid}"), "oid")?);
        }
        let display = str_claim(c, "app_displayname").map_or_else(|| app.clone(), |n| format!("{n} (app id: {app})"));
        (principal, PrincipalKind::AadApp, display, None)
    } else if tid == MSA_TENANT {
        let email = upn.clone().or_else(|| str_claim(c, "email").map(str::to_lowercase)).or_else(|| preferred.map(str::to_lowercase));
        let email = email.filter(|e| e.contains('@')).ok_or(IdentityError::MissingClaim("email", "Microsoft account"))?;
        let principal = parse(&format!("msauser={}", identifier(&email, "email")?), "email")?;
        let display = principal.display_name();
        (principal, PrincipalKind::MsaUser, display, Some(email))
    } else {
        let Some(oid) = oid.clone() else {
            return Err(if app_id.is_some() || user_claims { IdentityError::MissingClaim("oid", "user") } else { IdentityError::NoSubject });
        };
        let principal = parse(&format!("aaduser={oid};{tid}"), "oid")?;
        if let Some(u) = upn.as_deref().filter(|u| u.contains('@')) {
            push_unique(&mut aliases, parse(&format!("aaduser={u}"), "upn")?);
            push_unique(&mut aliases, parse(&format!("aaduser={u};{tid}"), "upn")?);
        }
        // The directory's UPN for this object id (the token may carry none).
        if let Some(u) = directory.and_then(|d| d.user(&oid)).filter(|u| u.oid.as_deref() == Some(oid.as_str())) {
            push_unique(&mut aliases, parse(&format!("aaduser={}", u.upn), "oid")?);
            push_unique(&mut aliases, parse(&format!("aaduser={};{tid}", u.upn), "oid")?);
        }
        let shown_upn = upn.clone().or_else(|| preferred.map(str::to_lowercase));
        let name = str_claim(c, "name");
        let display = match (name, &shown_upn) {
            (Some(n), Some(u)) => format!("{n} (upn: {u})"),
            (None, Some(u)) => format!("{} (upn: {u})", u.split('@').next().unwrap_or(u)),
            (Some(n), None) => n.to_string(),
            (None, None) => oid.clone(),
        };
        (principal, PrincipalKind::AadUser, display, shown_upn)
    };
    aliases.retain(|a| *a != principal);

    // Groups: the claim when present and complete; otherwise the directory.
    let mut groups = Vec::new();
    let mut from_directory = false;
    let claim = c.get("groups").and_then(Value::as_array);
    let overflowed = groups_overflowed(c);
    match (claim, overflowed) {
        (Some(list), false) => {
            let names: Vec<String> = list.iter().filter_map(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            for g in &names {
                let lower = identifier(g, "groups")?;
                let fqn = if lower.contains('@') { format!("aadgroup={lower}") } else { format!("aadgroup={lower};{tid}") };
                push_unique(&mut groups, parse(&fqn, "groups")?);
            }
            if let Some(d) = directory {
                // The claim is already transitive; the directory adds other spellings and
                // any nesting it knows of.
                add_group_aliases(&mut groups, d.with_ancestors(&names));
            }
        }
        _ => {
            let found = match directory {
                Some(d) if kind == PrincipalKind::AadApp => {
                    let app = principal.id.clone();
                    let known = d.groups_of_app(&app);
                    (!known.is_empty() || d.knows_app(&app)).then_some(known)
                }
                Some(d) => {
                    let known = d.groups_of_user(oid.as_deref(), upn.as_deref());
                    let in_directory = oid.as_deref().and_then(|o| d.user(o)).is_some() || upn.as_deref().and_then(|u| d.user(u)).is_some();
                    (!known.is_empty() || in_directory).then_some(known)
                }
                None => None,
            };
            match found {
                Some(gs) => {
                    from_directory = true;
                    add_group_aliases(&mut groups, gs);
                }
                None if overflowed => return Err(IdentityError::GroupsUnavailable),
                None => {}
            }
        }
    }

    let details = PrincipalDetails {
        user_principal_name: upn_detail,
        identity_provider: token.issuer.clone(),
        authority: tid.to_string(),
        mfa,
        kind,
        display_name: display,
        object_id: oid.or_else(|| (kind == PrincipalKind::AadApp).then(|| principal.id.clone())),
        fqn: principal.fqn(),
    };
    Ok(AuthenticatedIdentity { principal, aliases, groups, groups_from_directory: from_directory, details })
}

fn add_group_aliases(groups: &mut Vec<Principal>, found: Vec<&DirectoryGroup>) {
    for g in found {
        for a in g.aliases() {
            push_unique(groups, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const OID: &str = "aaaaaaaa-0000-0000-0000-000000000001";

    fn token(claims: Value) -> ValidatedToken {
        let tenant = claims.get("tid").and_then(Value::as_str).unwrap_or(T).to_string();
        ValidatedToken {
            issuer: format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            tenant,
            dev: false,
            claims: match claims {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    fn fqns(ps: &[Principal]) -> Vec<String> {
        ps.iter().map(Principal::fqn).collect()
    }

    fn directory() -> Directory {
        Directory::parse(&format!(
            r#"{{"tenant": "{T}",
                "users": [{{"upn": "alice@contoso.com", "oid": "{OID}"}}, {{"upn": "nogroups@contoso.com", "oid": "cccccccc-0000-0000-0000-000000000003"}}],
                "groups": [
                  {{"name": "Sales", "email": "sales@contoso.com", "id": "99999999-0000-0000-0000-000000000001", "members": ["alice@contoso.com"]}},
                  {{"name": "Staff", "id": "99999999-0000-0000-0000-000000000002", "members": ["aadapp=11111111-0000-0000-0000-00000000000a;{T}"], "groups": ["Sales"]}}
                ]}}"#
        ))
        .unwrap_or_default()
    }

    #[test]
    fn user_with_upn_and_mfa() -> Result<(), IdentityError> {
        let id = identity_from_token(
            &token(json!({"tid": T, "oid": OID.to_uppercase(), "upn": "Alice@Contoso.com", "name": "Alice", "amr": ["pwd", "mfa"], "scp": "user_impersonation", "azp": "c"})),
            None,
        )?;
        assert_eq!(id.principal.fqn(), format!("aaduser={OID};{T}"));
        assert_eq!(fqns(&id.aliases), ["aaduser=alice@contoso.com".to_string(), format!("aaduser=alice@contoso.com;{T}")]);
        assert!(id.details.mfa);
        assert_eq!(id.details.user_principal_name.as_deref(), Some("alice@contoso.com"));
        assert_eq!(id.details.display_name, "Alice (upn: alice@contoso.com)");
        let j = id.details.to_json();
        assert_eq!(j["Mfa"], json!("True"));
        assert_eq!(j["Type"], json!("AadUser"));
        assert_eq!(j["Authority"], json!(T));
        assert_eq!(j["FQN"], json!(format!("aaduser={OID};{T}")));
        assert_eq!(id.identity().principal, format!("aaduser={OID};{T}"));
        assert!(id.identity().groups.is_empty());
        Ok(())
    }

    #[test]
    fn preferred_username_is_shown_but_never_an_alias() -> Result<(), IdentityError> {
        let id = identity_from_token(&token(json!({"tid": T, "oid": OID, "preferred_username": "boss@contoso.com", "amr": ["pwd"]})), None)?;
        assert!(id.aliases.is_empty());
        assert!(!id.details.mfa);
        assert_eq!(id.details.user_principal_name.as_deref(), Some("boss@contoso.com"));
        Ok(())
    }

    #[test]
    fn applications_and_managed_identities() -> Result<(), IdentityError> {
        let app = "11111111-0000-0000-0000-00000000000a";
        let sp = "22222222-0000-0000-0000-00000000000b";
        // v2 app token: idtyp=app, azp.
        let id = identity_from_token(&token(json!({"tid": T, "idtyp": "app", "azp": app, "oid": sp})), None)?;
        assert_eq!(id.principal.fqn(), format!("aadapp={app};{T}"));
        assert_eq!(fqns(&id.aliases), [format!("aadapp={sp};{T}")]);
        assert_eq!(id.details.kind, PrincipalKind::AadApp);
        assert_eq!(id.details.to_json()["Type"], json!("AadApplication"));
        // v1 app token (managed identity): no idtyp, no user claims, appid.
        let id = identity_from_token(&token(json!({"tid": T, "appid": app, "oid": sp})), None)?;
        assert_eq!(id.principal.fqn(), format!("aadapp={app};{T}"));
        // A user token also names its client (azp), but is a user's.
        let id = identity_from_token(&token(json!({"tid": T, "azp": app, "oid": OID, "scp": "x"})), None)?;
        assert_eq!(id.principal.kind, PrincipalKind::AadUser);
        assert_eq!(identity_from_token(&token(json!({"tid": T, "idtyp": "app"})), None).err(), Some(IdentityError::MissingClaim("appid", "application")));
        assert_eq!(identity_from_token(&token(json!({"tid": T})), None).err(), Some(IdentityError::NoSubject));
        assert_eq!(identity_from_token(&token(json!({"tid": T, "upn": "a@b.c"})), None).err(), Some(IdentityError::MissingClaim("oid", "user")));
        Ok(())
    }

    #[test]
    fn microsoft_accounts() -> Result<(), IdentityError> {
        let id = identity_from_token(&token(json!({"tid": MSA_TENANT, "oid": OID, "email": "Someone@Outlook.com", "preferred_username": "someone@outlook.com"})), None)?;
        assert_eq!(id.principal.fqn(), "msauser=someone@outlook.com");
        assert_eq!(id.details.to_json()["Type"], json!("MsaUser"));
        Ok(())
    }

    #[test]
    fn bad_identifiers_are_refused() {
        assert_eq!(identity_from_token(&token(json!({"tid": T, "oid": "x;y", "scp": "s"})), None).err(), Some(IdentityError::BadClaim("oid")));
        assert_eq!(identity_from_token(&token(json!({"tid": T, "oid": OID, "groups": ["a=b"]})), None).err(), Some(IdentityError::BadClaim("groups")));
    }

    #[test]
    fn groups_from_the_claim() -> Result<(), IdentityError> {
        let g = "99999999-0000-0000-0000-000000000001";
        let id = identity_from_token(&token(json!({"tid": T, "oid": OID, "scp": "s", "groups": [g, "Team@Contoso.com"]})), None)?;
        assert_eq!(fqns(&id.groups), [format!("aadgroup={g};{T}"), "aadgroup=team@contoso.com".to_string()]);
        assert!(!id.groups_from_directory);
        // With the directory: the group's email and name, and the group it is nested in.
        let id = identity_from_token(&token(json!({"tid": T, "oid": OID, "scp": "s", "groups": [g]})), Some(&directory()))?;
        let got = fqns(&id.groups);
        for want in [
            format!("aadgroup={g};{T}"),
            "aadgroup=sales@contoso.com".to_string(),
            format!("aadgroup=sales;{T}"),
            format!("aadgroup=99999999-0000-0000-0000-000000000002;{T}"),
            format!("aadgroup=staff;{T}"),
        ] {
            assert!(got.contains(&want), "{want} not in {got:?}");
        }
        assert_eq!(id.identity().groups, got);
        Ok(())
    }

    #[test]
    fn group_overage_falls_back_to_the_directory() -> Result<(), IdentityError> {
        let overage = json!({"tid": T, "oid": OID, "scp": "s",
            "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/x/getMemberObjects"}}});
        let id = identity_from_token(&token(overage.clone()), Some(&directory()))?;
        assert!(id.groups_from_directory);
        let got = fqns(&id.groups);
        assert!(got.contains(&"aadgroup=sales@contoso.com".to_string()), "{got:?}");
        assert!(got.contains(&format!("aadgroup=staff;{T}")), "{got:?}");
        // The UPN alias comes from the directory when the token has no upn.
        assert!(fqns(&id.aliases).contains(&"aaduser=alice@contoso.com".to_string()));
        // Overage without a directory, or for a caller it does not know: refused, because
        // the caller's groups cannot be known.
        assert_eq!(identity_from_token(&token(overage), None).err(), Some(IdentityError::GroupsUnavailable));
        let stranger = json!({"tid": T, "oid": "dddddddd-0000-0000-0000-000000000004", "scp": "s", "hasgroups": true});
        assert_eq!(identity_from_token(&token(stranger), Some(&directory())).err(), Some(IdentityError::GroupsUnavailable));
        // A user the directory knows with no groups: none, and that is complete.
        let known = json!({"tid": T, "oid": "cccccccc-0000-0000-0000-000000000003", "scp": "s", "hasgroups": true});
        assert!(identity_from_token(&token(known), Some(&directory()))?.groups.is_empty());
        Ok(())
    }

    #[test]
    fn absent_groups_claim_uses_the_directory_when_it_knows_the_caller() -> Result<(), IdentityError> {
        let id = identity_from_token(&token(json!({"tid": T, "oid": OID, "upn": "alice@contoso.com"})), Some(&directory()))?;
        assert!(id.groups_from_directory);
        assert!(fqns(&id.groups).contains(&format!("aadgroup=99999999-0000-0000-0000-000000000001;{T}")));
        // Not in the directory and no overage: simply no groups.
        let id = identity_from_token(&token(json!({"tid": T, "oid": "eeeeeeee-0000-0000-0000-000000000005", "scp": "s"})), Some(&directory()))?;
        assert!(id.groups.is_empty());
        // An app's groups.
        let id = identity_from_token(&token(json!({"tid": T, "idtyp": "app", "appid": "11111111-0000-0000-0000-00000000000a"})), Some(&directory()))?;
        assert_eq!(fqns(&id.groups), [format!("aadgroup=99999999-0000-0000-0000-000000000002;{T}"), format!("aadgroup=staff;{T}")]);
        Ok(())
    }
}
