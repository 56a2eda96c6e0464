//! A local directory: users, applications and groups with their members, standing in for
//! Microsoft Graph where a token's claims are not enough:
//! * a user's groups when the token has no `groups` claim or it overflowed (Entra leaves it
//!   out past 200 groups and sets `_claim_names.groups` / `hasgroups`);
//! * group aliases: a role granted to `aadgroup=sales@contoso.com` or to
//!   `aadgroup=Sales;<tenant>` must hold for a token whose `groups` claim has the group's
//!   object id;
//! * canonical assignments: [`Directory::canonicalize`] turns a UPN or group email into the
//!   `aaduser=<oid>;<tid>` / `aadgroup=<id>;<tid>` form tokens produce.
//!
//! The file (JSON):
//!
//! ```json
//! {
//!   "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!   "users": [{"upn": "alice@contoso.com", "oid": "…", "name": "Alice"}],
//!   "apps": [{"app_id": "…", "name": "ingest-service"}],
//!   "groups": [
//!     {"name": "Sales", "email": "sales@contoso.com", "id": "…",
//!      "members": ["alice@contoso.com", "aadapp=…;…"], "groups": ["EMEA Sales"]}
//!   ]
//! }
//! ```
//!
//! `tenant` is the default tenant of entries that name none. A group's `members` are users
//! (UPN, object id or FQN) and applications (FQN); its `groups` are its member groups (by
//! name, email or id), whose members are its members too. Cycles are allowed and harmless.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use kustodian_planner::{Principal, PrincipalKind};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    apps: Vec<AppEntry>,
    #[serde(default)]
    groups: Vec<GroupEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    upn: String,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    app_id: String,
    #[serde(default)]
    object_id: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    /// For the file's readers: an application's name in tokens is `app_displayname`.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// A user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub upn: String,
    pub oid: Option<String>,
    pub tenant: Option<String>,
    pub name: Option<String>,
}

/// A group of the directory, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    pub name: Option<String>,
    pub email: Option<String>,
    pub id: Option<String>,
    pub tenant: Option<String>,
}

impl DirectoryGroup {
    /// The FQN tokens produce for the group (`aadgroup=<id>;<tid>`), or the best one the
    /// directory can give (email, then name).
    pub fn canonical(&self) -> Option<Principal> {
        match (&self.id, &self.tenant, &self.email, &self.name) {
            (Some(id), Some(t), _, _) => Principal::parse(&format!("aadgroup={id};{t}")).ok(),
            (Some(id), None, None, _) => Principal::parse(&format!("aadgroup={id}")).ok(),
            (_, _, Some(email), _) => Principal::parse(&format!("aadgroup={email}")).ok(),
            (_, Some(t), None, Some(name)) => Principal::parse(&format!("aadgroup={name};{t}")).ok(),
            (_, None, None, Some(name)) => Principal::parse(&format!("aadgroup={name}")).ok(),
            (None, _, None, None) => None,
        }
    }

    /// Every FQN that names the group: by id, by email, by display name (with its tenant).
    pub fn aliases(&self) -> Vec<Principal> {
        let mut fqns = Vec::new();
        if let Some(id) = &self.id {
            fqns.push(match &self.tenant {
                Some(t) => format!("aadgroup={id};{t}"),
                None => format!("aadgroup={id}"),
            });
        }
        if let Some(email) = &self.email {
            fqns.push(format!("aadgroup={email}"));
            if let Some(t) = &self.tenant {
                fqns.push(format!("aadgroup={email};{t}"));
            }
        }
        if let Some(name) = &self.name {
            fqns.push(match &self.tenant {
                Some(t) => format!("aadgroup={name};{t}"),
                None => format!("aadgroup={name}"),
            });
        }
        let mut out: Vec<Principal> = Vec::new();
        for p in fqns.iter().filter_map(|f| Principal::parse(f).ok()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

/// Why a directory file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the directory file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("directory file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The directory, indexed. Everything is lower-cased: Entra's names are case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    users: Vec<DirectoryUser>,
    groups: Vec<DirectoryGroup>,
    /// App id or object id → (app id, tenant).
    apps: HashMap<String, (String, Option<String>)>,
    user_by_upn: HashMap<String, usize>,
    user_by_oid: HashMap<String, usize>,
    group_by_id: HashMap<String, usize>,
    group_by_email: HashMap<String, usize>,
    /// Display names are not unique in Entra: a name shared by two groups resolves to none.
    group_by_name: HashMap<String, Option<usize>>,
    /// Direct member keys (`user:<oid|upn>`, `app:<appid>`) → groups.
    member_of: HashMap<String, Vec<usize>>,
    /// Group → the groups it is a member of.
    parents: Vec<Vec<usize>>,
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Directory {
    /// Reads a directory file.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read { path: path.to_path_buf(), source })?;
        Directory::parse(&text).map_err(|message| DirectoryError::Invalid { path: path.to_path_buf(), message })
    }

    /// Parses directory JSON.
    pub fn parse(text: &str) -> Result<Directory, String> {
        let file: DirectoryFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let default_tenant = file.tenant.as_deref().map(norm);
        let mut d = Directory::default();
        for u in &file.users {
            let upn = norm(&u.upn);
            if !upn.contains('@') {
                return Err(format!("user '{}': upn must be a user principal name (name@domain)", u.upn));
            }
            let idx = d.users.len();
            d.users.push(DirectoryUser {
                upn: upn.clone(),
                oid: u.oid.as_deref().map(norm),
                tenant: u.tenant.as_deref().map(norm).or_else(|| default_tenant.clone()),
                name: u.name.clone(),
            });
            if d.user_by_upn.insert(upn, idx).is_some() {
                return Err(format!("user '{}' is listed twice", u.upn));
            }
            if let Some(oid) = u.oid.as_deref().map(norm)
                && d.user_by_oid.insert(oid, idx).is_some()
            {
                return Err(format!("user object id of '{}' is listed twice", u.upn));
            }
        }
        for a in &file.apps {
            let id = norm(&a.app_id);
            let tenant = a.tenant.as_deref().map(norm).or_else(|| default_tenant.clone());
            if let Some(oid) = &a.object_id {
                d.apps.insert(norm(oid), (id.clone(), tenant.clone()));
            }
            d.apps.insert(id.clone(), (id, tenant));
        }
        for (idx, g) in file.groups.iter().enumerate() {
            let group = DirectoryGroup {
                name: g.name.as_deref().map(norm),
                email: g.email.as_deref().map(norm),
                id: g.id.as_deref().map(norm),
                tenant: g.tenant.as_deref().map(norm).or_else(|| default_tenant.clone()),
            };
            if group.name.is_none() && group.email.is_none() && group.id.is_none() {
                return Err(format!("group #{} has neither a name, an email nor an id", idx + 1));
            }
            if let Some(id) = &group.id
                && d.group_by_id.insert(id.clone(), idx).is_some()
            {
                return Err(format!("group id '{id}' is listed twice"));
            }
            if let Some(email) = &group.email
                && d.group_by_email.insert(email.clone(), idx).is_some()
            {
                return Err(format!("group email '{email}' is listed twice"));
            }
            if let Some(name) = &group.name {
                d.group_by_name.entry(name.clone()).and_modify(|e| *e = None).or_insert(Some(idx));
            }
            d.groups.push(group);
        }
        d.parents = vec![Vec::new(); d.groups.len()];
        for (idx, g) in file.groups.iter().enumerate() {
            for m in &g.members {
                let key = d.member_key(m).ok_or_else(|| format!("group #{}: member '{m}' is neither a user (UPN, object id, aaduser=) nor an application (aadapp=)", idx + 1))?;
                d.member_of.entry(key).or_default().push(idx);
            }
            for child in &g.groups {
                let c = d.find_group(child).ok_or_else(|| format!("group #{}: member group '{child}' is not in the directory", idx + 1))?;
                d.parents[c].push(idx);
            }
        }
        Ok(d)
    }

    /// The key a member is indexed under: users by object id when the directory knows it
    /// (so tokens, which carry the object id, find it), else by UPN; apps by app id.
    fn member_key(&self, m: &str) -> Option<String> {
        let m = m.trim();
        if m.contains('=') {
            let p = Principal::parse(m).ok()?;
            return match p.kind {
                PrincipalKind::AadUser | PrincipalKind::MsaUser => Some(self.user_key(&p.id)),
                PrincipalKind::AadApp => Some(format!("app:{}", self.apps.get(&p.id).map_or(p.id.clone(), |(id, _)| id.clone()))),
                PrincipalKind::AadGroup => None,
            };
        }
        Some(self.user_key(&norm(m)))
    }

    fn user_key(&self, id: &str) -> String {
        let id = norm(id);
        let user = self.user_by_upn.get(&id).or_else(|| self.user_by_oid.get(&id)).map(|i| &self.users[*i]);
        match user {
            Some(u) => format!("user:{}", u.oid.clone().unwrap_or_else(|| u.upn.clone())),
            None => format!("user:{id}"),
        }
    }

    /// A group by id, email or display name (a name two groups share finds none).
    fn find_group(&self, key: &str) -> Option<usize> {
        let k = norm(key);
        self.group_by_id
            .get(&k)
            .or_else(|| self.group_by_email.get(&k))
            .copied()
            .or_else(|| self.group_by_name.get(&k).copied().flatten())
    }

    /// A group named in a principal (`aadgroup=<id|email|name>[;tenant]`).
    pub fn group(&self, p: &Principal) -> Option<&DirectoryGroup> {
        if p.kind != PrincipalKind::AadGroup {
            return None;
        }
        let g = &self.groups[self.find_group(&p.id)?];
        // A tenant given must be the group's.
        match (&p.tenant, &g.tenant) {
            (Some(asked), Some(t)) if asked != t && g.email.as_deref().and_then(|e| e.split_once('@')).map(|(_, d)| d) != Some(asked.as_str()) => None,
            _ => Some(g),
        }
    }

    /// A user by object id or UPN.
    pub fn user(&self, id: &str) -> Option<&DirectoryUser> {
        let k = norm(id);
        self.user_by_oid.get(&k).or_else(|| self.user_by_upn.get(&k)).map(|i| &self.users[*i])
    }

    /// Every group a user belongs to, directly or through nested groups.
    pub fn groups_of_user(&self, oid: Option<&str>, upn: Option<&str>) -> Vec<&DirectoryGroup> {
        let mut start = Vec::new();
        for id in [oid, upn].into_iter().flatten() {
            if let Some(gs) = self.member_of.get(&self.user_key(id)) {
                start.extend(gs.iter().copied());
            }
        }
        self.closure(start)
    }

    /// Whether the directory lists an application (by app id or object id).
    pub fn knows_app(&self, id: &str) -> bool {
        self.apps.contains_key(&norm(id))
    }

    /// Every group an application belongs to, directly or through nested groups.
    pub fn groups_of_app(&self, app_id: &str) -> Vec<&DirectoryGroup> {
        let id = norm(app_id);
        let id = self.apps.get(&id).map_or(id, |(a, _)| a.clone());
        self.closure(self.member_of.get(&format!("app:{id}")).cloned().unwrap_or_default())
    }

    /// The groups named (by id, email or name) and every group they are nested in.
    pub fn with_ancestors(&self, names: &[String]) -> Vec<&DirectoryGroup> {
        self.closure(names.iter().filter_map(|n| self.find_group(n)).collect())
    }

    /// Breadth-first up the nesting, each group once (cycles end here).
    fn closure(&self, start: Vec<usize>) -> Vec<&DirectoryGroup> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<usize> = start.into();
        let mut out = Vec::new();
        while let Some(g) = queue.pop_front() {
            if !seen.insert(g) {
                continue;
            }
            out.push(&self.groups[g]);
            queue.extend(self.parents[g].iter().copied());
        }
        out
    }

    /// Every user and group as FQNs (users by UPN, then by object id; groups by every name),
    /// with the users of each group, directly or through nested groups: the principals
    /// `kustodian lint` knows.
    pub fn known(&self) -> crate::lint::Known {
        let user_fqns = |u: &DirectoryUser| {
            let mut f = vec![format!("aaduser={}", u.upn)];
            if let (Some(oid), Some(t)) = (&u.oid, &u.tenant) {
                f.push(format!("aaduser={oid};{t}"));
            }
            f
        };
        let users: Vec<Vec<String>> = self.users.iter().map(user_fqns).collect();
        let groups = self
            .groups
            .iter()
            .map(|g| crate::lint::KnownGroup {
                fqns: g.aliases().iter().map(Principal::fqn).collect(),
                members: self
                    .users
                    .iter()
                    .filter(|u| self.groups_of_user(u.oid.as_deref(), Some(&u.upn)).contains(&g))
                    .map(|u| format!("aaduser={}", u.upn))
                    .collect(),
            })
            .collect();
        crate::lint::Known { users, groups }
    }

    /// An assignment's principal in the form tokens produce, resolved through the directory:
    /// a user's UPN becomes `aaduser=<oid>;<tid>`, a group's email or name `aadgroup=<id>;<tid>`,
    /// an app's object id its app id. A principal the directory does not know keeps its
    /// canonical form ([`Principal::fqn`]), which still matches tokens through their `upn`.
    pub fn canonicalize(&self, fqn: &str) -> Result<String, String> {
        let p = Principal::parse(fqn)?;
        let resolved = match p.kind {
            PrincipalKind::AadUser => self.user(&p.id).and_then(|u| {
                let tenant_ok = match (&p.tenant, &u.tenant) {
                    (Some(asked), Some(t)) => asked == t || u.upn.split_once('@').is_some_and(|(_, d)| d == asked),
                    _ => true,
                };
                match (&u.oid, &u.tenant) {
                    (Some(oid), Some(t)) if tenant_ok => Principal::parse(&format!("aaduser={oid};{t}")).ok(),
                    _ => None,
                }
            }),
            PrincipalKind::AadGroup => self.group(&p).and_then(DirectoryGroup::canonical),
            PrincipalKind::AadApp => self.apps.get(&p.id).and_then(|(id, t)| {
                let t = t.clone().or_else(|| p.tenant.clone())?;
                Principal::parse(&format!("aadapp={id};{t}")).ok()
            }),
            PrincipalKind::MsaUser => None,
        };
        Ok(resolved.unwrap_or(p).fqn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn sample() -> Directory {
        let text = format!(
            r#"{{
  "tenant": "{T}",
  "users": [
    {{"upn": "Alice@Contoso.com", "oid": "aaaaaaaa-0000-0000-0000-000000000001"}},
    {{"upn": "bob@contoso.com", "oid": "bbbbbbbb-0000-0000-0000-000000000002"}},
    {{"upn": "carol@contoso.com"}}
  ],
  "apps": [{{"app_id": "11111111-0000-0000-0000-00000000000a", "object_id": "22222222-0000-0000-0000-00000000000b"}}],
  "groups": [
    {{"name": "Sales", "email": "sales@contoso.com", "id": "99999999-0000-0000-0000-000000000001",
      "members": ["alice@contoso.com", "aadapp=11111111-0000-0000-0000-00000000000a;{T}"], "groups": ["EMEA Sales"]}},
    {{"name": "EMEA Sales", "id": "99999999-0000-0000-0000-000000000002", "members": ["bbbbbbbb-0000-0000-0000-000000000002"], "groups": ["Everyone"]}},
    {{"name": "Everyone", "email": "everyone@contoso.com", "members": ["carol@contoso.com"], "groups": ["sales@contoso.com"]}},
    {{"name": "Dup", "id": "d1"}},
    {{"name": "Dup", "id": "d2"}}
  ]
}}"#
        );
        Directory::parse(&text).unwrap_or_default()
    }

    fn names(gs: Vec<&DirectoryGroup>) -> Vec<String> {
        let mut v: Vec<String> = gs.iter().filter_map(|g| g.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn transitive_membership_with_a_cycle() {
        let d = sample();
        // Sales ⊇ EMEA Sales ⊇ Everyone ⊇ Sales (a cycle).
        assert_eq!(names(d.groups_of_user(Some("aaaaaaaa-0000-0000-0000-000000000001"), None)), ["emea sales", "everyone", "sales"]);
        assert_eq!(names(d.groups_of_user(None, Some("BOB@contoso.com"))), ["emea sales", "everyone", "sales"]);
        assert_eq!(names(d.groups_of_user(None, Some("carol@contoso.com"))), ["emea sales", "everyone", "sales"]);
        assert!(d.groups_of_user(Some("unknown"), Some("nobody@contoso.com")).is_empty());
        assert_eq!(names(d.groups_of_app("22222222-0000-0000-0000-00000000000b")), ["emea sales", "everyone", "sales"]);
    }

    #[test]
    fn canonicalizes_assignments_through_the_directory() {
        let d = sample();
        assert_eq!(d.canonicalize("aaduser=alice@contoso.com"), Ok(format!("aaduser=aaaaaaaa-0000-0000-0000-000000000001;{T}")));
        assert_eq!(d.canonicalize(&format!("aaduser=alice@contoso.com;{T}")), Ok(format!("aaduser=aaaaaaaa-0000-0000-0000-000000000001;{T}")));
        assert_eq!(d.canonicalize("aadgroup=sales@contoso.com"), Ok(format!("aadgroup=99999999-0000-0000-0000-000000000001;{T}")));
        assert_eq!(d.canonicalize(&format!("aadgroup=EMEA Sales;{T}")), Ok(format!("aadgroup=99999999-0000-0000-0000-000000000002;{T}")));
        // A group without an id keeps its email form.
        assert_eq!(d.canonicalize("aadgroup=Everyone@contoso.com"), Ok("aadgroup=everyone@contoso.com".to_string()));
        assert_eq!(d.canonicalize(&format!("aadapp=22222222-0000-0000-0000-00000000000b;{T}")), Ok(format!("aadapp=11111111-0000-0000-0000-00000000000a;{T}")));
        // Unknown principals, a user without an object id, a wrong tenant, an ambiguous name:
        // their own canonical form.
        assert_eq!(d.canonicalize("aaduser=dave@contoso.com"), Ok("aaduser=dave@contoso.com".to_string()));
        assert_eq!(d.canonicalize("aaduser=carol@contoso.com"), Ok("aaduser=carol@contoso.com".to_string()));
        assert_eq!(d.canonicalize("aaduser=alice@contoso.com;fabrikam.com"), Ok("aaduser=alice@contoso.com;fabrikam.com".to_string()));
        assert_eq!(d.canonicalize(&format!("aadgroup=Dup;{T}")), Ok(format!("aadgroup=dup;{T}")));
        assert!(d.canonicalize("nonsense").is_err());
    }

    #[test]
    fn group_aliases() {
        let d = sample();
        let g = d.with_ancestors(&["99999999-0000-0000-0000-000000000001".to_string()]);
        assert_eq!(g.len(), 3);
        let fqns: Vec<String> = g[0].aliases().iter().map(Principal::fqn).collect();
        assert_eq!(
            fqns,
            [
                format!("aadgroup=99999999-0000-0000-0000-000000000001;{T}"),
                "aadgroup=sales@contoso.com".to_string(),
                format!("aadgroup=sales@contoso.com;{T}"),
                format!("aadgroup=sales;{T}"),
            ]
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let e = |t: &str| Directory::parse(t).err().unwrap_or_default();
        assert!(e(r#"{"users": [{"upn": "x"}]}"#).contains("user principal name"));
        assert!(e(r#"{"groups": [{"name": "a", "groups": ["missing"]}]}"#).contains("missing"));
        assert!(e(r#"{"groups": [{"name": "a", "members": ["aadgroup=b"]}]}"#).contains("aadgroup=b"));
        assert!(e(r#"{"groups": [{}]}"#).contains("neither"));
        assert!(e(r#"{"usrs": []}"#).contains("usrs"));
        assert!(e(r#"{"users": [{"upn": "a@b.c"}, {"upn": "A@b.c"}]}"#).contains("twice"));
    }
}
