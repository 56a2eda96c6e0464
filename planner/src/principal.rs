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

/// A principal in canonical form: one normalised (kind, id, tenant) for role checks, group
/// claims and `current_principal()` alike.
///
/// * the kind prefix is case-insensitive;
/// * identifiers (UPNs, group emails, object IDs, app IDs) are case-insensitive in Entra, so
///   they are kept lower-cased;
/// * the tenant is the one given, or inferred from the UPN's (or group email's) domain; a tenant
///   that cannot be inferred stays unknown and matches only another unknown tenant, never
///   anything (`aaduser=x@contoso.com;fabrikam.com` is not `aaduser=x@contoso.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: String,
    /// The tenant: given or inferred, lower-cased; None when neither.
    pub tenant: Option<String>,
    /// Whether the tenant was given explicitly and differs from the one the UPN implies
    /// (then the FQN shows it).
    #[serde(default)]
    explicit_tenant: bool,
}

impl Principal {
    /// Parses `kind=identifier[;tenant]` into the canonical form.
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
        if id.contains(|c: char| c == ';' || c == '=' || c.is_control()) {
            return Err(format!("principal '{fqn}': the identifier may not contain ';', '=' or control characters"));
        }
        if kind == PrincipalKind::MsaUser && tenant.is_some() {
            return Err(format!("principal '{fqn}': msauser principals take no tenant"));
        }
        let tenant = tenant.filter(|t| !t.is_empty()).map(str::to_ascii_lowercase);
        if tenant.as_deref().is_some_and(|t| t.contains(|c: char| c == ';' || c == '=' || c.is_whitespace())) {
            return Err(format!("principal '{fqn}': the tenant may not contain ';', '=' or spaces"));
        }
        if kind == PrincipalKind::AadApp && tenant.is_none() {
            return Err(format!("principal '{fqn}': aadapp principals need a tenant ('aadapp=<id>;<tenant>')"));
        }
        let id = id.to_lowercase();
        let inferred = match kind {
            PrincipalKind::AadUser | PrincipalKind::AadGroup => id.split_once('@').map(|(_, d)| d.to_string()).filter(|d| !d.is_empty()),
            _ => None,
        };
        let explicit_tenant = tenant.is_some() && tenant != inferred;
        Ok(Principal { kind, id, tenant: tenant.or(inferred), explicit_tenant })
    }

    /// The canonical FQN, as `current_principal()` returns it and `.show ... principals` lists
    /// it: the tenant is written only when it is not the one the UPN implies.
    pub fn fqn(&self) -> String {
        match &self.tenant {
            Some(t) if self.explicit_tenant => format!("{}={};{}", self.kind.prefix(), self.id, t),
            _ => format!("{}={}", self.kind.prefix(), self.id),
        }
    }

    /// Whether two principals denote the same identity (the canonical forms are equal).
    pub fn matches(&self, other: &Principal) -> bool {
        self.kind == other.kind && self.id == other.id && self.tenant == other.tenant
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
        self.tenant.clone()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fqn())
    }
}

/// What the caller's credentials say about it beyond its FQN: Kusto's
/// `current_principal_details()` (a token's UPN, display name, MFA; `None` where the
/// credentials do not say, and then the FQN tells what it can).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PrincipalDetails {
    pub upn: Option<String>,
    pub display_name: Option<String>,
    /// Whether the caller signed in with multi-factor authentication (a token's `amr`).
    pub mfa: bool,
    /// The token's issuer; Entra's `https://sts.windows.net` when not known.
    pub identity_provider: Option<String>,
}

/// Everything a request carries that planning depends on.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    /// Group claims (`--group`, a token's `groups`), as principals.
    pub groups: Vec<Principal>,
    /// Other names of the caller and of its groups, as its credentials and the cluster's
    /// directory give them: `aaduser=<upn>` for `aaduser=<oid>;<tid>`, a group's email for its
    /// object id. A role assignment or `current_principal_is_member_of` argument made with any
    /// of them means the caller.
    pub aliases: Vec<Principal>,
    pub details: PrincipalDetails,
    /// The database requests resolve unqualified names in.
    pub database: String,
    /// `query_force_row_level_security`: apply disabled policies too.
    pub force_rls: bool,
    /// `request_block_row_level_security`: fail on tables with an enabled policy.
    pub block_rls: bool,
    /// `validatepermissions`: check the request's permissions without running it.
    pub validate_permissions: bool,
    /// `now()` for this request (ns since the Unix epoch): the request's real clock, which is
    /// what row-level security policies always see.
    pub now_nanos: i64,
    /// `query_now` as a request property: the instant `now()` means in the request's own
    /// text (never inside a policy).
    pub query_now: Option<i64>,
    /// Values of `declare query_parameters` given with the request (REST `Parameters`), as
    /// text: a string parameter takes the text as it is, any other type parses it as a
    /// literal of that type.
    pub parameters: Vec<(String, String)>,
}

impl RequestContext {
    /// A context for `principal` with its group claims, in `database`, at `now_nanos`, with
    /// every option off.
    pub fn new(principal: Principal, groups: Vec<Principal>, database: impl Into<String>, now_nanos: i64) -> Self {
        RequestContext {
            principal,
            groups,
            aliases: Vec::new(),
            details: PrincipalDetails::default(),
            database: database.into(),
            force_rls: false,
            block_rls: false,
            validate_permissions: false,
            now_nanos,
            query_now: None,
            parameters: Vec::new(),
        }
    }

    /// `current_principal_is_member_of(...)`: the argument is the caller, one of its group
    /// claims, or another name of either. Compared in canonical form; an argument that is not a
    /// principal matches nothing.
    pub fn is_member_of(&self, fqn: &str) -> bool {
        match Principal::parse(fqn) {
            Ok(p) => p == self.principal || self.groups.contains(&p) || self.aliases.contains(&p),
            Err(_) => false,
        }
    }

    /// The user principal name `current_principal_details()` reports.
    pub fn upn(&self) -> Option<&str> {
        self.details.upn.as_deref().or_else(|| self.principal.upn())
    }
}
