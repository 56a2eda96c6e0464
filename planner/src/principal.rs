//! Principals in Kusto's FQN form (`aaduser=`, `aadgroup=`, `aadapp=`, `msauser=`) and the
//! request context the binder folds principal functions from.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrincipalKind {
    AadUser,
    AadGroup,
    AadApp,
    MsaUser,
}

impl PrincipalKind {
    pub fn prefix(self) -> &'static str {
        match self {
            PrincipalKind::AadUser => "aaduser",
            PrincipalKind::AadGroup => "aadgroup",
            PrincipalKind::AadApp => "aadapp",
            PrincipalKind::MsaUser => "msauser",
        }
    }

    /// Kusto's `current_principal_details()["Type"]` spelling.
    pub fn details_type(self) -> &'static str {
        match self {
            PrincipalKind::AadUser => "AadUser",
            PrincipalKind::AadGroup => "AadGroup",
            PrincipalKind::AadApp => "AadApplication",
            PrincipalKind::MsaUser => "MsaUser",
        }
    }

    /// The `PrincipalType` column of `.show ... principals`.
    pub fn display_type(self) -> &'static str {
        match self {
            PrincipalKind::AadUser => "AAD User",
            PrincipalKind::AadGroup => "AAD Group",
            PrincipalKind::AadApp => "AAD Application",
            PrincipalKind::MsaUser => "MSA User",
        }
    }
}

/// A principal FQN, normalised: prefix lower-cased, identifier and tenant kept as given
/// (compared case-insensitively).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: String,
    pub tenant: Option<String>,
}

impl Principal {
    /// Parses `kind=identifier[;tenant]` with a case-insensitive prefix.
    pub fn parse(fqn: &str) -> Result<Principal, String> {
        let fqn = fqn.trim();
        let (prefix, rest) = fqn
            .split_once('=')
            .ok_or_else(|| format!("'{fqn}' is not a principal FQN: expected 'aaduser=', 'aadgroup=', 'aadapp=' or 'msauser=' followed by an identifier"))?;
        let kind = match prefix.trim().to_ascii_lowercase().as_str() {
            "aaduser" => PrincipalKind::AadUser,
            "aadgroup" => PrincipalKind::AadGroup,
            "aadapp" => PrincipalKind::AadApp,
            "msauser" => PrincipalKind::MsaUser,
            other => return Err(format!("unknown principal kind '{other}' in '{fqn}': expected aaduser, aadgroup, aadapp or msauser")),
        };
        let (id, tenant) = match rest.split_once(';') {
            Some((id, tenant)) => (id.trim(), Some(tenant.trim())),
            None => (rest.trim(), None),
        };
        if id.is_empty() {
            return Err(format!("principal '{fqn}' has an empty identifier"));
        }
        if kind == PrincipalKind::MsaUser && tenant.is_some() {
            return Err(format!("principal '{fqn}': msauser principals take no tenant"));
        }
        let tenant = tenant.filter(|t| !t.is_empty()).map(str::to_string);
        if kind == PrincipalKind::AadApp && tenant.is_none() {
            return Err(format!("principal '{fqn}': aadapp principals need a tenant ('aadapp=<id>;<tenant>')"));
        }
        Ok(Principal { kind, id: id.to_string(), tenant })
    }

    /// The FQN as `current_principal()` returns it and `.show ... principals` lists it.
    pub fn fqn(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{}={};{}", self.kind.prefix(), self.id, t),
            None => format!("{}={}", self.kind.prefix(), self.id),
        }
    }

    /// Whether two principals denote the same identity: same kind, identifier compared
    /// case-insensitively, and tenants equal when both are given.
    pub fn matches(&self, other: &Principal) -> bool {
        self.kind == other.kind
            && self.id.eq_ignore_ascii_case(&other.id)
            && match (&self.tenant, &other.tenant) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            }
    }

    /// The user principal name, for users identified by UPN.
    pub fn upn(&self) -> Option<&str> {
        match self.kind {
            PrincipalKind::AadUser | PrincipalKind::MsaUser if self.id.contains('@') => Some(&self.id),
            _ => None,
        }
    }

    /// `DisplayName` as Kusto shows it: `name (upn: x)` for users, the id otherwise.
    pub fn display_name(&self) -> String {
        match self.upn() {
            Some(upn) => {
                let local = upn.split('@').next().unwrap_or(upn);
                format!("{local} (upn: {upn})")
            }
            None => self.id.clone(),
        }
    }

    /// The tenant: given, or inferred from the UPN's domain.
    pub fn authority(&self) -> Option<String> {
        self.tenant.clone().or_else(|| self.upn().and_then(|u| u.split('@').nth(1)).map(str::to_string))
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fqn())
    }
}

/// Everything a request carries that planning depends on.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    /// Group claims (`--group`), as principals.
    pub groups: Vec<Principal>,
    /// The database requests resolve unqualified names in.
    pub database: String,
    /// `query_force_row_level_security`: apply disabled policies too.
    pub force_rls: bool,
    /// `request_block_row_level_security`: fail on tables with an enabled policy.
    pub block_rls: bool,
    /// `validatepermissions`: check the request's permissions without running it.
    pub validate_permissions: bool,
    /// `now()` for this request (ns since the Unix epoch).
    pub now_nanos: i64,
}

impl RequestContext {
    /// `current_principal_is_member_of(...)`: the principal is one of them, or in one of the groups.
    pub fn is_member_of(&self, fqn: &str) -> bool {
        match Principal::parse(fqn) {
            Ok(p) => p == self.principal || self.groups.contains(&p),
            Err(_) => false,
        }
    }
}
