//! `kustodian lint`: the mistakes policy authors make, found in a database's row-level-security
//! policies, role assignments and materialized views before they ship.
//!
//! Each rule has a code, a severity and a reason ([`RULES`]). Some rules read the policy's text
//! (case-sensitive identity comparisons, identity that cannot be folded, unknown principals);
//! others run it, as each principal the cluster knows (role assignments and a directory): who
//! is locked out, who sees everything, whose rows appear in two legs of a union. Those runs see
//! rows the principals may not, so only a Database Admin may lint a database.

use std::collections::{BTreeSet, HashSet};

use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::{self, BinaryOp, Expr, ExprKind, OperatorKind, StatementKind};
use kustodian_planner::Principal;

use crate::auth::{Action, Needs, allows, check};
use crate::catalog::Unpoliced;
use crate::cluster::Cluster;
use crate::coverage::{IDENTITY_FUNCTIONS, Names, PolicyBranches, analyse, identity_functions, stored_functions, strip_braces};
use crate::error::Result;
use crate::meta::{DatabaseMeta, Meta, RoleAssignment};
use crate::request::{Identity, RequestOptions, View};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A lint rule: what it is called and why what it finds matters.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub why: &'static str,
}

pub const LOCK_OUT: Rule = Rule {
    code: "KL001",
    name: "lock-out",
    severity: Severity::Error,
    summary: "every principal holding an admin role sees no rows under the policy",
    why: "Kusto gives admins no way around a row_level_security policy: admins who see nothing cannot check what the policy \
          shows its readers, nor notice that it shows them nothing either.",
};
pub const GRANT_ALL: Rule = Rule {
    code: "KL002",
    name: "grant-all",
    severity: Severity::Warning,
    summary: "the policy returns the whole table for every principal",
    why: "A policy that hides nothing costs a security barrier on every query and usually means a condition was lost \
          (a constant `true`, an `or` that always holds, a filter on the wrong column).",
};
pub const UNKNOWN_PRINCIPAL: Rule = Rule {
    code: "KL003",
    name: "unknown-principal",
    severity: Severity::Warning,
    summary: "a principal that matches no principal known to the cluster",
    why: "A misspelt or stale principal never matches anyone: a membership test on it is always false, a role assigned to \
          it grants nothing, and nothing reports it.",
};
pub const CASE_SENSITIVE_IDENTITY: Rule = Rule {
    code: "KL004",
    name: "case-sensitive-identity",
    severity: Severity::Warning,
    summary: "a case-sensitive comparison of a principal",
    why: "Principals compare case-insensitively in Kusto (a token's UPN may be `Alice@Contoso.com` while the table holds \
          `alice@contoso.com`): `==`, `!=` and `in` silently drop the rows of a principal whose name differs in case. Use \
          `=~`, `!~` and `in~`.",
};
pub const OVERLAPPING_LEGS: Rule = Rule {
    code: "KL005",
    name: "overlapping-union-legs",
    severity: Severity::Error,
    summary: "a row passes the filters of two legs of the policy's union",
    why: "In the masking pattern (`union AllData, PartialData`) each row must come from one leg: a principal for whom both \
          legs keep a row sees it twice, and sees the unmasked copy beside the masked one.",
};
pub const NOT_FOLDABLE: Rule = Rule {
    code: "KL006",
    name: "identity-not-foldable",
    severity: Severity::Warning,
    summary: "identity used in a way that cannot be folded to a constant",
    why: "current_principal(), current_principal_details() and current_principal_is_member_of() are constants of a request: \
          with constant arguments they fold before the query runs. Indexed or called with a column, they are evaluated for \
          every row.",
};
pub const BLOCKED_TABLE: Rule = Rule {
    code: "KL007",
    name: "policy-reads-blocked-table",
    severity: Severity::Error,
    summary: "the policy reads a table whose own policy or restricted view access blocks the policy's readers",
    why: "A policy runs as the caller: a table it reads with restricted view access fails the query of every reader who is \
          not an UnrestrictedViewer, and a table it reads under a row_level_security policy of its own shows the caller \
          only that policy's rows.",
};
pub const VIEW_WITHOUT_POLICY: Rule = Rule {
    code: "KL008",
    name: "materialized-view-without-policy",
    severity: Severity::Error,
    summary: "a materialized view without a row_level_security policy over a table with one",
    why: "A materialized view holds copies of its source's rows: without a policy of its own, every reader of the view sees \
          what the source's policy hides from them.",
};

pub const RULES: [Rule; 8] =
    [LOCK_OUT, GRANT_ALL, UNKNOWN_PRINCIPAL, CASE_SENSITIVE_IDENTITY, OVERLAPPING_LEGS, NOT_FOLDABLE, BLOCKED_TABLE, VIEW_WITHOUT_POLICY];

/// One finding: the rule, what it found, and the text it points into.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: Rule,
    pub message: String,
    /// What the text is: `policy of [db].[T]`, `function F`, `role assignment`, `materialized view V`.
    pub source: String,
    /// The text: a policy's query, a function's body, or the command that made the assignment or
    /// view, as it would be written.
    pub text: String,
    /// Byte offsets of the marked part of `text`.
    pub start: usize,
    pub end: usize,
}

/// The principals a cluster knows beyond its role assignments: a directory's users and groups,
/// each with every FQN that names it, and the users in each group.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Each user's FQNs (by UPN first).
    pub users: Vec<Vec<String>>,
    pub groups: Vec<KnownGroup>,
}

#[derive(Debug, Clone, Default)]
pub struct KnownGroup {
    pub fqns: Vec<String>,
    /// Its users, directly or through nested groups (each by its first FQN).
    pub members: Vec<String>,
}

fn canonical(fqn: &str) -> Option<Principal> {
    Principal::parse(fqn).ok()
}

fn same(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a.matches(&b),
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Every role assignment of the cluster and of `db` (database, tables, functions, views).
fn assignments<'a>(meta: &'a Meta, db: &'a DatabaseMeta) -> Vec<(String, &'a RoleAssignment)> {
    let mut out: Vec<(String, &RoleAssignment)> = meta.cluster_roles.iter().map(|a| ("cluster".to_string(), a)).collect();
    out.extend(db.principals.iter().map(|a| (format!("database {}", db.name), a)));
    for t in &db.tables {
        out.extend(t.principals.iter().map(|a| (format!("table {}", t.name), a)));
    }
    for f in &db.functions {
        out.extend(f.principals.iter().map(|a| (format!("function {}", f.name), a)));
    }
    for v in &db.materialized_views {
        out.extend(v.principals.iter().map(|a| (format!("materialized-view {}", v.name), a)));
    }
    out
}

/// The command that makes an assignment, and the span of its principal in it.
fn assignment_command(scope: &str, a: &RoleAssignment) -> (String, usize, usize) {
    let head = if scope == "cluster" { ".add cluster".to_string() } else { format!(".add {scope}") };
    let prefix = format!("{head} {} ('", a.role);
    let text = format!("{prefix}{}')", a.principal);
    (text, prefix.len(), prefix.len() + a.principal.len())
}

/// Identities to evaluate policies as: each user of a role assignment or of the directory with
/// the directory's groups as claims, and a member of each group (a directory member, or a
/// stand-in carrying only that group's claim).
fn identities(meta: &Meta, db: &DatabaseMeta, known: &Known) -> Vec<Identity> {
    let groups_of = |user: &str| -> Vec<String> {
        known
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| same(m, user)))
            .flat_map(|g| g.fqns.iter().cloned())
            .collect()
    };
    let mut out: Vec<Identity> = Vec::new();
    let mut push = |id: Identity| {
        if !out.iter().any(|o| same(&o.principal, &id.principal)) {
            out.push(id);
        }
    };
    for (_, a) in assignments(meta, db) {
        let Some(p) = canonical(&a.principal) else { continue };
        if p.kind == kustodian_planner::PrincipalKind::AadGroup {
            let group = known.groups.iter().find(|g| g.fqns.iter().any(|f| same(f, &a.principal)));
            match group.filter(|g| !g.members.is_empty()) {
                Some(g) => {
                    for m in &g.members {
                        push(Identity { principal: m.clone(), groups: groups_of(m), ..Default::default() });
                    }
                }
                None => push(Identity {
                    principal: format!("aaduser=member-of-{}@lint.invalid", p.id.replace(['@', '.', ';'], "-")),
                    groups: vec![a.principal.clone()],
                    ..Default::default()
                }),
            }
        } else {
            push(Identity { principal: a.principal.clone(), groups: groups_of(&a.principal), ..Default::default() });
        }
    }
    for u in &known.users {
        if let Some(first) = u.first() {
            push(Identity { principal: first.clone(), groups: groups_of(first), ..Default::default() });
        }
    }
    out
}

/// Whether a caller with these claims holds one of `roles` on the table (cluster, database or
/// table scope).
fn is_admin(meta: &Meta, db: &DatabaseMeta, table: &str, id: &Identity) -> bool {
    let mine = |a: &RoleAssignment| same(&a.principal, &id.principal) || id.groups.iter().any(|g| same(&a.principal, g));
    meta.cluster_roles.iter().any(|a| a.role == ast::Role::AllDatabasesAdmins.keyword() && mine(a))
        || db.principals.iter().any(|a| a.role == ast::Role::Admins.keyword() && mine(a))
        || db.table(table).is_some_and(|t| t.principals.iter().any(|a| a.role == ast::Role::Admins.keyword() && mine(a)))
}

/// A parsed source of a policy: its query and where its text starts in the source's text.
struct Parsed {
    index: usize,
    query: ast::Query,
    offset: usize,
}

fn parse_sources(policy: &PolicyBranches) -> Vec<Parsed> {
    let mut out = Vec::new();
    for (index, s) in policy.sources.iter().enumerate() {
        let text = if index == 0 { s.text.as_str() } else { strip_braces(&s.text) };
        let offset = s.text.find(text).unwrap_or(0);
        if let Ok(ast::Request::Query(query)) = kustodian_parser::parse(text) {
            out.push(Parsed { index, query, offset });
        }
    }
    out
}

impl Cluster {
    /// Lints the row-level-security policies, role assignments and materialized views of
    /// `database`. `by` must be its Database Admin: the rules run the policies as every known
    /// principal and read the tables without them. `known` adds a directory's principals.
    pub async fn lint(&self, database: &str, by: &Identity, known: &Known) -> Result<Vec<Finding>> {
        self.refresh()?;
        let snap = self.snapshot();
        let opts = RequestOptions { database: Some(database.to_string()), identity: Some(by.clone()), ..Default::default() };
        let (caller, _) = self.request_context(&opts, database)?;
        check(
            allows(&snap.meta, &caller, &Action::AdminDatabase(database)),
            &caller,
            &format!("lint database '{database}' (its policies run as every principal)"),
            Needs::DatabaseAdmin,
        )?;
        let Some(db) = snap.meta.db(database) else {
            return Err(crate::error::RuntimeError::bad_request(format!("database '{database}' does not exist")));
        };
        let functions = stored_functions(db);
        let identity_fns = identity_functions(&functions);
        let people = identities(&snap.meta, db, known);
        let mut findings = Vec::new();
        let mut text_rules = TextRules { findings: &mut findings, known, meta: &snap.meta, db, identity_fns: &identity_fns };
        text_rules.role_assignments();
        let mut policies = Vec::new();
        for t in &db.tables {
            let Some(rls) = t.rls.as_ref() else { continue };
            let policy = analyse(&db.name, &t.name, rls.enabled, &rls.query, &functions, &identity_fns);
            let parsed = parse_sources(&policy);
            text_rules.policy(&policy, &parsed);
            policies.push((policy, parsed));
        }
        for (policy, parsed) in &policies {
            if !policy.enabled {
                continue;
            }
            self.lint_by_running(db, &snap.meta, policy, parsed, &people, by, &identity_fns, &mut findings).await;
        }
        for v in &db.materialized_views {
            let source_policy = db.table(&v.source).and_then(|t| t.rls.as_ref()).filter(|r| r.enabled);
            let own = v.rls.as_ref().is_some_and(|r| r.enabled);
            if source_policy.is_some() && !own {
                let text = format!(".create materialized-view {} on table {} {{ {} }}", v.name, v.source, v.query);
                let start = ".create materialized-view ".len();
                findings.push(Finding {
                    rule: VIEW_WITHOUT_POLICY,
                    message: format!(
                        "materialized view '{}' has no row_level_security policy, but its source table '{}' has one{}",
                        v.name,
                        v.source,
                        if v.allow_without_rls { " (allowed by allowMaterializedViewsWithoutRowLevelSecurity)" } else { "" }
                    ),
                    source: format!("materialized view {}", v.name),
                    text,
                    start,
                    end: start + v.name.len(),
                });
            }
        }
        findings.sort_by(|a, b| (a.rule.code, &a.source, a.start).cmp(&(b.rule.code, &b.source, b.start)));
        Ok(findings)
    }

    /// The first cell of a query's answer as a number, run as `who` seeing the tables `view`
    /// shows; None when the query fails (a principal who may not read the table).
    async fn lint_count(&self, text: &str, database: &str, who: &Identity, view: View) -> Option<i64> {
        let opts = RequestOptions { database: Some(database.to_string()), identity: Some(who.clone()), ..Default::default() };
        self.probe_value(text.to_string(), &opts, &view).await.ok().flatten()
    }

    /// The rows a query returns as `who`, as a fingerprint: their number and the sum of a hash
    /// of each row's values. Equal fingerprints: the same rows (up to a hash collision).
    async fn lint_fingerprint(&self, table: &str, database: &str, who: &Identity, view: View) -> Option<(i64, i64)> {
        use datafusion::arrow::array::{Array, Int64Array};
        let text = format!("{table} | summarize __n = count(), __h = sum(hash(tostring(pack_all())) % 1000000007)");
        let opts = RequestOptions { database: Some(database.to_string()), identity: Some(who.clone()), ..Default::default() };
        let prepared = self.prepare_view(&text, &opts, view).await.ok()?;
        let out = self.run_prepared(&prepared).await.ok()?;
        let batch = out.batches.iter().find(|b| b.num_rows() > 0)?;
        let cell = |i: usize| {
            batch.columns().get(i)?.as_any().downcast_ref::<Int64Array>().map(|a| if a.is_null(0) { 0 } else { a.value(0) })
        };
        Some((cell(0)?, cell(1)?))
    }

    #[allow(clippy::too_many_arguments)]
    async fn lint_by_running(
        &self,
        db: &DatabaseMeta,
        meta: &Meta,
        policy: &PolicyBranches,
        parsed: &[Parsed],
        people: &[Identity],
        by: &Identity,
        identity_fns: &HashSet<String>,
        findings: &mut Vec<Finding>,
    ) {
        let table = ast::quote_ident(&policy.table).into_owned();
        let count = format!("{table} | count");
        let raw_view = View { without_rls: Unpoliced::Table(policy.database.clone(), policy.table.clone()), fraction: 1.0 };
        let Some(raw) = self.lint_count(&count, &db.name, by, raw_view.clone()).await else { return };
        let policy_text = &policy.sources[0].text;
        let whole = |rule: Rule, message: String| Finding {
            rule,
            message,
            source: format!("policy of {}", policy.entity),
            text: policy_text.clone(),
            start: 0,
            end: policy_text.len(),
        };
        // What each principal who may read the table sees through the policy.
        let mut seen: Vec<(&Identity, i64)> = Vec::new();
        for who in people {
            if let Some(n) = self.lint_count(&count, &db.name, who, View::default()).await {
                seen.push((who, n));
            }
        }
        let admins: Vec<&(&Identity, i64)> = seen.iter().filter(|(who, _)| is_admin(meta, db, &policy.table, who)).collect();
        if raw > 0 && !admins.is_empty() && admins.iter().all(|(_, n)| *n == 0) {
            let names: Vec<String> = admins.iter().map(|(w, _)| w.principal.clone()).collect();
            findings.push(whole(
                LOCK_OUT,
                format!(
                    "every admin of {} sees none of its {raw} rows under its row_level_security policy (evaluated as {})",
                    policy.entity,
                    names.join(", ")
                ),
            ));
        }
        let mentions_identity = parsed.iter().any(|p| {
            let mut names = Names::default();
            names.visit_query(&p.query);
            names.0.iter().any(|n| IDENTITY_FUNCTIONS.contains(&n.as_str()) || identity_fns.contains(n))
        });
        // Grant-all: the table itself, every row and value, for every reader (a masking policy
        // returns every row, but not every value).
        if raw > 0 {
            let whole_table = self.lint_fingerprint(&table, &db.name, by, raw_view.clone()).await;
            let mut all = 0;
            let mut readers = 0;
            let everyone = if mentions_identity { people.iter().collect::<Vec<_>>() } else { vec![by] };
            for who in everyone {
                let Some(f) = self.lint_fingerprint(&table, &db.name, who, View::default()).await else { continue };
                readers += 1;
                if Some(f) == whole_table {
                    all += 1;
                }
            }
            if whole_table.is_some() && readers > 0 && all == readers && (readers >= 2 || !mentions_identity) {
                findings.push(whole(
                    GRANT_ALL,
                    if mentions_identity {
                        format!("every principal who may read {} sees all of its {raw} rows, unchanged ({readers} evaluated)", policy.entity)
                    } else {
                        format!("the policy of {} does not depend on who asks, and returns all of its {raw} rows unchanged", policy.entity)
                    },
                ));
            }
        }
        // Overlapping union legs: a row that passes both legs' filters.
        for p in parsed {
            let mut unions = Unions::default();
            unions.visit_query(&p.query);
            let lets: Vec<(&str, &Expr)> = p
                .query
                .statements
                .iter()
                .filter_map(|s| match &s.kind {
                    StatementKind::Let { name, value } => Some((name.name.as_str(), value)),
                    _ => None,
                })
                .collect();
            let source_text = if p.index == 0 { policy_text.as_str() } else { strip_braces(&policy.sources[p.index].text) };
            let prefix: String = p
                .query
                .statements
                .iter()
                .filter(|s| !matches!(s.kind, StatementKind::Expr(_)))
                .map(|s| format!("{};\n", source_text.get(s.span.start..s.span.end).unwrap_or("")))
                .collect();
            for legs in unions.0 {
                let filters: Vec<Option<Vec<String>>> =
                    legs.iter().map(|leg| leg_filters(leg, &lets, &policy.table, source_text)).collect();
                for i in 0..legs.len() {
                    for j in i + 1..legs.len() {
                        let (Some(a), Some(b)) = (&filters[i], &filters[j]) else { continue };
                        let both: Vec<String> = a.iter().chain(b).map(|f| format!("({f})")).collect();
                        let condition = if both.is_empty() { "true".to_string() } else { both.join(" and ") };
                        let probe = format!("{prefix}{table} | where {condition} | count");
                        let mut twice = Vec::new();
                        for who in people {
                            if self.lint_count(&probe, &db.name, who, raw_view.clone()).await.is_some_and(|n| n > 0) {
                                twice.push(who.principal.clone());
                            }
                        }
                        if !twice.is_empty() {
                            let (li, lj) = (&legs[i], &legs[j]);
                            findings.push(Finding {
                                rule: OVERLAPPING_LEGS,
                                message: format!(
                                    "legs `{}` and `{}` of the union both keep some rows of {} for {}",
                                    source_text.get(li.span.start..li.span.end).unwrap_or(""),
                                    source_text.get(lj.span.start..lj.span.end).unwrap_or(""),
                                    policy.entity,
                                    twice.join(", ")
                                ),
                                source: policy.sources[p.index].name.clone(),
                                text: policy.sources[p.index].text.clone(),
                                start: p.offset + li.span.start,
                                end: p.offset + lj.span.end,
                            });
                        }
                    }
                }
            }
        }
        // Tables the policy reads, other than its own.
        let mut read = BTreeSet::new();
        for p in parsed {
            let mut names = Names::default();
            names.visit_query(&p.query);
            for n in names.0 {
                if let Some(t) = db.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&n) && !t.name.eq_ignore_ascii_case(&policy.table)) {
                    read.insert(t.name.clone());
                }
            }
        }
        for other in read {
            let Some(t) = db.table(&other) else { continue };
            let at = policy_text.find(&other).map_or((0, policy_text.len()), |s| (s, s + other.len()));
            let readers: Vec<&Identity> = people
                .iter()
                .filter(|who| caller_of(who).is_some_and(|c| allows(meta, &c, &Action::ReadTable(&db.name, &policy.table))))
                .collect();
            if t.restricted_view_access {
                let blocked: Vec<String> = readers
                    .iter()
                    .filter(|who| caller_of(who).is_some_and(|c| !allows(meta, &c, &Action::ReadTable(&db.name, &other))))
                    .map(|w| w.principal.clone())
                    .collect();
                if !blocked.is_empty() {
                    findings.push(Finding {
                        rule: BLOCKED_TABLE,
                        message: format!(
                            "the policy of {} reads '{other}', which has restricted view access: the query fails for {}",
                            policy.entity,
                            blocked.join(", ")
                        ),
                        source: format!("policy of {}", policy.entity),
                        text: policy_text.clone(),
                        start: at.0,
                        end: at.1,
                    });
                }
            }
            if t.rls.as_ref().is_some_and(|r| r.enabled) {
                let q = format!("{} | count", ast::quote_ident(&other));
                let other_view = View { without_rls: Unpoliced::Table(db.name.clone(), other.clone()), fraction: 1.0 };
                let Some(other_raw) = self.lint_count(&q, &db.name, by, other_view).await else { continue };
                let mut emptied = Vec::new();
                for who in &readers {
                    if other_raw > 0 && self.lint_count(&q, &db.name, who, View::default()).await == Some(0) {
                        emptied.push(who.principal.clone());
                    }
                }
                if !emptied.is_empty() {
                    findings.push(Finding {
                        rule: BLOCKED_TABLE,
                        message: format!(
                            "the policy of {} reads '{other}' through the row_level_security policy of '{other}', which shows none of its rows to {}",
                            policy.entity,
                            emptied.join(", ")
                        ),
                        source: format!("policy of {}", policy.entity),
                        text: policy_text.clone(),
                        start: at.0,
                        end: at.1,
                    });
                }
            }
        }
    }
}

/// The caller an identity makes, for role checks (None when its FQNs do not parse).
fn caller_of(who: &Identity) -> Option<crate::auth::Caller> {
    let groups = who.groups.iter().map(|g| canonical(g)).collect::<Option<Vec<_>>>()?;
    crate::auth::Caller::new(canonical(&who.principal)?, groups).ok()
}

/// The `where` predicates a union leg keeps rows of its table by: the leg (or the `let` it
/// names) must be the policy's table under `where`s, then only operators that keep rows one for
/// one (`extend`, `project`...). None when it is anything else.
fn leg_filters(leg: &Expr, lets: &[(&str, &Expr)], table: &str, text: &str) -> Option<Vec<String>> {
    let mut e = leg;
    while let ExprKind::Paren(inner) = &e.kind {
        e = inner;
    }
    if let ExprKind::Ident(i) = &e.kind
        && let Some((_, v)) = lets.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(&i.name))
        && !i.name.eq_ignore_ascii_case(table)
    {
        return leg_filters(v, lets, table, text);
    }
    // Operators from the source up.
    let mut ops = Vec::new();
    while let ExprKind::Pipe { input, op } = &e.kind {
        ops.push(op.as_ref());
        e = input;
    }
    let ExprKind::Ident(source) = &e.kind else { return None };
    if !source.name.eq_ignore_ascii_case(table) {
        return None;
    }
    ops.reverse();
    let mut filters = Vec::new();
    let mut reshaped = false;
    for op in ops {
        match &op.kind {
            OperatorKind::Where(p) if !reshaped => filters.push(text.get(p.span.start..p.span.end)?.to_string()),
            OperatorKind::Extend(_)
            | OperatorKind::Project(_)
            | OperatorKind::ProjectAway(_)
            | OperatorKind::ProjectKeep(_)
            | OperatorKind::ProjectRename(_)
            | OperatorKind::ProjectReorder(_) => reshaped = true,
            _ => return None,
        }
    }
    Some(filters)
}

/// The legs of every `union` of a query.
#[derive(Default)]
struct Unions<'a>(Vec<Vec<&'a Expr>>);

impl<'a> Visitor<'a> for Unions<'a> {
    fn visit_expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Union(u) => self.0.push(u.tables.iter().collect()),
            ExprKind::Pipe { input, op } => {
                if let OperatorKind::Union(u) = &op.kind {
                    self.0.push(std::iter::once(input.as_ref()).chain(u.tables.iter()).collect());
                }
            }
            _ => {}
        }
        visit::walk_expr(self, e);
    }
}

/// The rules that read text: identity comparisons, foldability, unknown principals.
struct TextRules<'a> {
    findings: &'a mut Vec<Finding>,
    known: &'a Known,
    meta: &'a Meta,
    db: &'a DatabaseMeta,
    identity_fns: &'a HashSet<String>,
}

impl TextRules<'_> {
    /// Whether a principal is known: named by a role assignment or the directory.
    fn knows(&self, fqn: &str) -> bool {
        assignments(self.meta, self.db).iter().any(|(_, a)| same(&a.principal, fqn))
            || self.known.users.iter().flatten().any(|u| same(u, fqn))
            || self.known.groups.iter().flat_map(|g| &g.fqns).any(|g| same(g, fqn))
    }

    fn role_assignments(&mut self) {
        if self.known.users.is_empty() && self.known.groups.is_empty() {
            return;
        }
        for (scope, a) in assignments(self.meta, self.db) {
            let in_directory = self.known.users.iter().flatten().any(|u| same(u, &a.principal))
                || self.known.groups.iter().flat_map(|g| &g.fqns).any(|g| same(g, &a.principal));
            let is_app = canonical(&a.principal).is_some_and(|p| p.kind == kustodian_planner::PrincipalKind::AadApp);
            if !in_directory && !is_app {
                let (text, start, end) = assignment_command(&scope, a);
                self.findings.push(Finding {
                    rule: UNKNOWN_PRINCIPAL,
                    message: format!("role {} on {scope} is assigned to '{}', which the directory does not know", a.role, a.principal),
                    source: "role assignment".into(),
                    text,
                    start,
                    end,
                });
            }
        }
    }

    fn policy(&mut self, policy: &PolicyBranches, parsed: &[Parsed]) {
        for p in parsed {
            let source = &policy.sources[p.index];
            let text = if p.index == 0 { source.text.as_str() } else { strip_braces(&source.text) };
            let mut finder = TextFinder { text, identity_fns: self.identity_fns, tainted: HashSet::new(), hits: Vec::new() };
            for s in &p.query.statements {
                finder.visit_statement(s);
                if let StatementKind::Let { name, value } = &s.kind
                    && finder.identity(value)
                {
                    finder.tainted.insert(name.name.to_ascii_lowercase());
                }
            }
            for (rule, span, message) in finder.hits {
                let message = match rule.code {
                    "KL003" if self.knows(&message) => continue,
                    "KL003" => format!(
                        "current_principal_is_member_of('{message}') names a principal that no role assignment{} names",
                        if self.known.users.is_empty() && self.known.groups.is_empty() { "" } else { " and no directory entry" }
                    ),
                    _ => message,
                };
                self.findings.push(Finding {
                    rule,
                    message,
                    source: source.name.clone(),
                    text: source.text.clone(),
                    start: p.offset + span.start,
                    end: p.offset + span.end,
                });
            }
        }
        // Name findings after the policy they belong to.
        for f in self.findings.iter_mut() {
            if f.source == "policy" {
                f.source = format!("policy of {}", policy.entity);
            } else if f.source.starts_with("function ") && !f.source.contains(" (policy of ") {
                f.source = format!("{} (policy of {})", f.source, policy.entity);
            }
        }
    }
}

/// Finds the text rules' hits in one source.
struct TextFinder<'a> {
    text: &'a str,
    identity_fns: &'a HashSet<String>,
    tainted: HashSet<String>,
    /// (rule, span, message; for KL003 the principal)
    hits: Vec<(Rule, ast::Span, String)>,
}

/// Column names that hold principals or UPNs.
fn names_a_principal(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    ["upn", "principal", "aaduser", "aadgroup", "email"].iter().any(|k| c.contains(k))
}

impl TextFinder<'_> {
    fn identity(&self, e: &Expr) -> bool {
        let mut names = Names::default();
        names.visit_expr(e);
        names.0.iter().any(|n| IDENTITY_FUNCTIONS.contains(&n.as_str()) || self.tainted.contains(n) || self.identity_fns.contains(n))
    }

    /// A column that holds principals, or a string that is one.
    fn principal_valued(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Ident(i) => names_a_principal(&i.name),
            ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => {
                canonical(s).is_some() || (s.contains('@') && !s.contains(' '))
            }
            _ => false,
        }
    }

    fn slice(&self, s: ast::Span) -> &str {
        self.text.get(s.start..s.end).unwrap_or("")
    }
}

impl<'a> Visitor<'a> for TextFinder<'_> {
    fn visit_expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Binary { op: op @ (BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::LtGt), left, right } => {
                let on_identity = self.identity(left) || self.identity(right);
                let on_principals = (Self::principal_valued(left) && (Self::principal_valued(right) || self.identity(right)))
                    || (Self::principal_valued(right) && self.identity(left));
                if on_identity || on_principals {
                    let better = if *op == BinaryOp::Eq { "=~" } else { "!~" };
                    self.hits.push((
                        CASE_SENSITIVE_IDENTITY,
                        e.span,
                        format!("`{}` compares a principal case-sensitively: use `{better}`", self.slice(e.span)),
                    ));
                }
            }
            ExprKind::In { expr, case_insensitive: false, negated, list }
                if self.identity(expr) || (Self::principal_valued(expr) && list.iter().any(|l| self.identity(l))) =>
            {
                let better = if *negated { "!in~" } else { "in~" };
                self.hits.push((
                    CASE_SENSITIVE_IDENTITY,
                    e.span,
                    format!("`{}` compares a principal case-sensitively: use `{better}`", self.slice(e.span)),
                ));
            }
            ExprKind::Call { name, args } if name.name.eq_ignore_ascii_case("current_principal_is_member_of") => {
                for a in args {
                    match &a.expr().kind {
                        ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => {
                            self.hits.push((UNKNOWN_PRINCIPAL, a.expr().span, s.clone()));
                        }
                        ExprKind::Literal(_) => {}
                        _ => self.hits.push((
                            NOT_FOLDABLE,
                            a.expr().span,
                            format!("current_principal_is_member_of({}) is evaluated for every row", self.slice(a.expr().span)),
                        )),
                    }
                }
            }
            ExprKind::Index { expr, index } if self.identity(expr) && !matches!(index.kind, ExprKind::Literal(_)) => {
                self.hits.push((
                    NOT_FOLDABLE,
                    e.span,
                    format!("`{}` looks the caller's details up by a value of each row", self.slice(e.span)),
                ));
            }
            _ => {}
        }
        visit::walk_expr(self, e);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn hits(query: &str) -> Vec<(&'static str, String)> {
        let ast::Request::Query(q) = kustodian_parser::parse(query).unwrap() else { panic!() };
        let fns = HashSet::new();
        let mut f = TextFinder { text: query, identity_fns: &fns, tainted: HashSet::new(), hits: Vec::new() };
        for s in &q.statements {
            f.visit_statement(s);
            if let StatementKind::Let { name, value } = &s.kind
                && f.identity(value)
            {
                f.tainted.insert(name.name.to_ascii_lowercase());
            }
        }
        f.hits.into_iter().map(|(r, s, _)| (r.code, query[s.start..s.end].to_string())).collect()
    }

    #[test]
    fn case_sensitive_comparisons_of_principals() {
        assert_eq!(hits("T | where Owner == current_principal()"), [("KL004", "Owner == current_principal()".to_string())]);
        assert_eq!(hits("let me = current_principal(); T | where me != Owner"), [("KL004", "me != Owner".to_string())]);
        assert_eq!(hits("T | where OwnerUpn == 'alice@contoso.com'"), [("KL004", "OwnerUpn == 'alice@contoso.com'".to_string())]);
        assert_eq!(hits("T | where current_principal() in ('aaduser=a@b.c')"), [("KL004", "current_principal() in ('aaduser=a@b.c')".to_string())]);
        assert!(hits("T | where Owner =~ current_principal() and Region == 'East'").is_empty());
        assert!(hits("T | where current_principal() in~ ('aaduser=a@b.c')").is_empty());
    }

    #[test]
    fn identity_that_does_not_fold() {
        assert_eq!(hits("T | where isnotempty(tostring(current_principal_details()[Key]))"), [("KL006", "current_principal_details()[Key]".to_string())]);
        assert!(hits("T | where tostring(current_principal_details()['UserPrincipalName']) =~ Owner").is_empty());
        assert_eq!(hits("T | where current_principal_is_member_of('aadgroup=g@x.com')"), [("KL003", "'aadgroup=g@x.com'".to_string())]);
    }
}
