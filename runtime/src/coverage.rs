//! Branch coverage of row-level-security policies (`kustodian test --coverage`).
//!
//! A policy's *branches* are the places where what it returns depends on who asks: each
//! `current_principal_is_member_of(...)` call, each condition of an `iff`/`case` and each
//! `where` predicate that depends on the caller's identity, and each leg of a `union` (the
//! masking pattern). [`Cluster::policy_branches`] finds them in the policy's text and in the
//! bodies of the parameterless stored functions it calls; [`Cluster::probe_branch`] tells, for
//! one principal, whether the branch was taken (true), not taken (false), or both (a predicate
//! true for some rows and false for others).
//!
//! A probe is a small query over the policy's own `let` statements, run as the principal with
//! the policy's table read raw, as it is inside its policy (every other table keeps its
//! policy). It sees rows the principal may not, so only a Table Admin of the policy's table
//! may ask for one, as `overhead` requires for its baseline.

use std::collections::{BTreeSet, HashSet};

use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::{self, Expr, ExprKind, Operator, OperatorKind, StatementKind};

use crate::auth::{Action, Needs, allows, check};
use crate::catalog::Unpoliced;
use crate::cluster::Cluster;
use crate::error::{Result, RuntimeError};
use crate::request::{Identity, RequestOptions, View};

/// The functions whose value is the caller's identity.
pub(crate) const IDENTITY_FUNCTIONS: [&str; 3] = ["current_principal", "current_principal_details", "current_principal_is_member_of"];

/// One text a policy's branches are found in: the policy itself, or a stored function it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchSource {
    /// `policy` or `function Name`.
    pub name: String,
    pub text: String,
}

/// What kind of decision a branch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BranchKind {
    /// A `current_principal_is_member_of(...)` call.
    MemberOf,
    /// The condition of an `iff` (or `iif`).
    Iff,
    /// One condition of a `case`.
    Case,
    /// A `where` predicate that depends on identity.
    Where,
    /// One leg of a `union`: true when it yields rows.
    UnionLeg,
}

impl BranchKind {
    pub fn describe(self) -> &'static str {
        match self {
            BranchKind::MemberOf => "current_principal_is_member_of",
            BranchKind::Iff => "iff condition",
            BranchKind::Case => "case condition",
            BranchKind::Where => "where predicate",
            BranchKind::UnionLeg => "union leg",
        }
    }

    /// What "true" and "false" mean for this kind, for reports.
    pub fn outcomes(self) -> (&'static str, &'static str) {
        match self {
            BranchKind::UnionLeg => ("yields rows", "yields no rows"),
            BranchKind::Where => ("keeps a row", "drops a row"),
            _ => ("true", "false"),
        }
    }
}

/// A place in a policy where the result depends on who asks.
#[derive(Debug, Clone)]
pub struct Branch {
    /// Index into [`PolicyBranches::sources`].
    pub source: usize,
    /// Byte offsets of the branch's expression in its source's text.
    pub start: usize,
    pub end: usize,
    pub kind: BranchKind,
    probe: Probe,
}

impl Branch {
    /// The branch's expression as written.
    pub fn text<'a>(&self, policy: &'a PolicyBranches) -> &'a str {
        policy.sources.get(self.source).and_then(|s| s.text.get(self.start..self.end)).unwrap_or("")
    }
}

/// How a branch is evaluated for one principal: the query text and how to read its answer.
#[derive(Debug, Clone)]
enum Probe {
    /// A one-row `print` of a boolean.
    Scalar(String),
    /// Two counts: of the rows a predicate keeps, and of those it drops (where a null
    /// predicate counts as neither). Filters, not `countif`, so that a predicate holding
    /// `in (subquery)` is evaluated where the engine evaluates it in the policy.
    Rows(String, String),
    /// A `count` of a union leg's rows.
    Leg(String),
}

/// The branches of one table's row-level-security policy.
#[derive(Debug, Clone)]
pub struct PolicyBranches {
    pub database: String,
    pub table: String,
    /// `[db].[table]`, as applied policies name their table.
    pub entity: String,
    pub enabled: bool,
    /// The policy's text first, then the bodies of the stored functions it calls.
    pub sources: Vec<BranchSource>,
    pub branches: Vec<Branch>,
    /// What could not be analysed (a called function with parameters, text that does not parse).
    pub not_analysed: Vec<String>,
}

/// Which ways a branch went for one principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub made_true: bool,
    pub made_false: bool,
}

impl Cluster {
    /// The branches of the row-level-security policies of `database` (enabled or not). `by`
    /// must be Table Admin of each table whose policy it asks about, as for
    /// `.show table T policy row_level_security` plus probing.
    pub fn policy_branches(&self, database: &str, by: &Identity) -> Result<Vec<PolicyBranches>> {
        self.refresh()?;
        let snap = self.snapshot();
        let opts = RequestOptions { database: Some(database.to_string()), identity: Some(by.clone()), ..Default::default() };
        let (caller, _) = self.request_context(&opts, database)?;
        // Forbidden before "does not exist", and before "has no policy": only a caller who may
        // see the database's metadata learns either.
        crate::auth::authorize(&snap.meta, &caller, &Action::ShowDatabase(database), &format!("show the policies of database '{database}'"))?;
        let Some(db) = snap.meta.db(database) else {
            return Err(RuntimeError::bad_request(format!("database '{database}' does not exist")));
        };
        let functions = stored_functions(db);
        let identity_fns = identity_functions(&functions);
        let mut out = Vec::new();
        for t in &db.tables {
            let Some(rls) = &t.rls else { continue };
            check(
                allows(&snap.meta, &caller, &Action::AdminTable(&db.name, &t.name)),
                &caller,
                &format!("analyse the row_level_security policy of table '{}' in database '{}'", t.name, db.name),
                Needs::TableAdmin,
            )?;
            out.push(analyse(&db.name, &t.name, rls.enabled, &rls.query, &functions, &identity_fns));
        }
        Ok(out)
    }

    /// Evaluates `branch` of `policy` as the caller of `opts` (its identity and request
    /// properties). `by` must be Table Admin of the policy's table: the probe reads the table
    /// without its policy. An error is the probe's (a branch inside a function with parameters,
    /// a principal who may not read the database), as text.
    pub async fn probe_branch(&self, policy: &PolicyBranches, branch: &Branch, opts: &RequestOptions, by: &Identity) -> Result<Outcome> {
        let snap = self.snapshot();
        let by_opts = RequestOptions { identity: Some(by.clone()), ..opts.clone() };
        let (measurer, _) = self.request_context(&by_opts, &policy.database)?;
        check(
            allows(&snap.meta, &measurer, &Action::AdminTable(&policy.database, &policy.table)),
            &measurer,
            &format!("probe the row_level_security policy of table '{}' in database '{}'", policy.table, policy.database),
            Needs::TableAdmin,
        )?;
        drop(snap);
        let opts = RequestOptions { database: Some(policy.database.clone()), ..opts.clone() };
        let view = View { without_rls: Unpoliced::Table(policy.database.clone(), policy.table.clone()), fraction: 1.0 };
        let value = |text: &str| self.probe_value(text.to_string(), &opts, &view);
        Ok(match &branch.probe {
            Probe::Scalar(q) => match value(q).await? {
                Some(v) => Outcome { made_true: v != 0, made_false: v == 0 },
                None => Outcome::default(),
            },
            Probe::Rows(kept, dropped) => Outcome {
                made_true: value(kept).await?.unwrap_or(0) > 0,
                made_false: value(dropped).await?.unwrap_or(0) > 0,
            },
            Probe::Leg(q) => {
                let n = value(q).await?.unwrap_or(0);
                Outcome { made_true: n > 0, made_false: n == 0 }
            }
        })
    }
}

impl Cluster {
    /// The first cell of a probe's answer, as a number (a boolean is 0 or 1).
    pub(crate) async fn probe_value(&self, text: String, opts: &RequestOptions, view: &View) -> Result<Option<i64>> {
        use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
        let prepared = self.prepare_view(&text, opts, view.clone()).await?;
        let out = self.run_prepared(&prepared).await?;
        let Some(c) = out.batches.iter().find(|b| b.num_rows() > 0).and_then(|b| b.columns().first().cloned()) else {
            return Ok(None);
        };
        if let Some(b) = c.as_any().downcast_ref::<BooleanArray>() {
            return Ok((!b.is_null(0)).then(|| i64::from(b.value(0))));
        }
        Ok(c.as_any().downcast_ref::<Int64Array>().and_then(|a| (!a.is_null(0)).then(|| a.value(0))))
    }
}

/// A database's stored functions as (name, parameters, body).
pub(crate) fn stored_functions(db: &crate::meta::DatabaseMeta) -> Vec<(String, String, String)> {
    db.functions.iter().map(|f| (f.name.clone(), f.parameters.clone(), f.body.clone())).collect()
}

/// The stored functions whose value depends on identity: their body calls an identity function
/// or one of them (by name, to a fixpoint).
pub(crate) fn identity_functions(functions: &[(String, String, String)]) -> HashSet<String> {
    let mut found: HashSet<String> = HashSet::new();
    loop {
        let before = found.len();
        for (name, _, body) in functions {
            if found.contains(&name.to_ascii_lowercase()) {
                continue;
            }
            let Ok(ast::Request::Query(q)) = kustodian_parser::parse(strip_braces(body)) else { continue };
            let mut names = Names::default();
            names.visit_query(&q);
            if names.0.iter().any(|n| IDENTITY_FUNCTIONS.contains(&n.as_str()) || found.contains(n)) {
                found.insert(name.to_ascii_lowercase());
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// `{ body }` → `body`.
pub(crate) fn strip_braces(body: &str) -> &str {
    let t = body.trim();
    t.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(t)
}

/// The branches of one policy and of the parameterless stored functions it calls.
pub(crate) fn analyse(
    database: &str,
    table: &str,
    enabled: bool,
    query: &str,
    functions: &[(String, String, String)],
    identity_fns: &HashSet<String>,
) -> PolicyBranches {
    let mut policy = PolicyBranches {
        database: database.to_string(),
        table: table.to_string(),
        entity: format!("[{database}].[{table}]"),
        enabled,
        sources: vec![BranchSource { name: "policy".into(), text: query.to_string() }],
        branches: Vec::new(),
        not_analysed: Vec::new(),
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut i = 0;
    while i < policy.sources.len() {
        let source = policy.sources[i].clone();
        let text = if i == 0 { source.text.as_str() } else { strip_braces(&source.text) };
        let offset = source.text.find(text).unwrap_or(0);
        match kustodian_parser::parse(text) {
            Ok(ast::Request::Query(q)) => {
                let mut finder = Finder::new(text, identity_fns);
                finder.query(&q);
                for b in finder.branches {
                    policy.branches.push(Branch { source: i, start: b.start + offset, end: b.end + offset, kind: b.kind, probe: b.probe });
                }
                let mut names = Names::default();
                names.visit_query(&q);
                for n in names.0 {
                    let Some((name, params, body)) = functions.iter().find(|(f, _, _)| f.eq_ignore_ascii_case(&n)) else { continue };
                    if !seen.insert(name.to_ascii_lowercase()) {
                        continue;
                    }
                    if params.trim().trim_start_matches('(').trim_end_matches(')').trim().is_empty() {
                        policy.sources.push(BranchSource { name: format!("function {name}"), text: body.clone() });
                    } else if identity_fns.contains(&name.to_ascii_lowercase()) {
                        policy.not_analysed.push(format!("function {name}{params} (it has parameters)"));
                    }
                }
            }
            Ok(ast::Request::Command(_)) => policy.not_analysed.push(format!("{}: a command, not a query", source.name)),
            Err(e) => policy.not_analysed.push(format!("{}: {e}", source.name)),
        }
        i += 1;
    }
    policy
}

/// Every name a query mentions (lower-cased): calls and identifiers.
#[derive(Default)]
pub(crate) struct Names(pub BTreeSet<String>);

impl<'ast> Visitor<'ast> for Names {
    fn visit_ident(&mut self, i: &'ast ast::Ident) {
        self.0.insert(i.name.to_ascii_lowercase());
    }
}

struct Found {
    start: usize,
    end: usize,
    kind: BranchKind,
    probe: Probe,
}

/// Finds the branches of one query text.
struct Finder<'a> {
    text: &'a str,
    identity_fns: &'a HashSet<String>,
    /// `let` names whose value depends on identity.
    tainted: HashSet<String>,
    /// The statements before the one being walked, as text, each ending with `;`.
    prefix: String,
    /// The inputs of the pipes being walked, innermost last: a row predicate's rows.
    inputs: Vec<ast::Span>,
    branches: Vec<Found>,
}

impl<'a> Finder<'a> {
    fn new(text: &'a str, identity_fns: &'a HashSet<String>) -> Self {
        Finder { text, identity_fns, tainted: HashSet::new(), prefix: String::new(), inputs: Vec::new(), branches: Vec::new() }
    }

    fn slice(&self, span: ast::Span) -> &'a str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    fn query(&mut self, q: &ast::Query) {
        for s in &q.statements {
            self.visit_statement(s);
            if let StatementKind::Let { name, value } = &s.kind
                && self.depends_on_identity(value)
            {
                self.tainted.insert(name.name.to_ascii_lowercase());
            }
            if !matches!(s.kind, StatementKind::Expr(_)) {
                self.prefix.push_str(self.slice(s.span));
                self.prefix.push_str(";\n");
            }
        }
    }

    fn depends_on_identity(&self, e: &Expr) -> bool {
        let mut names = Names::default();
        names.visit_expr(e);
        names.0.iter().any(|n| IDENTITY_FUNCTIONS.contains(&n.as_str()) || self.tainted.contains(n) || self.identity_fns.contains(n))
    }

    /// A condition: evaluated over the rows of the innermost pipe's input, or once.
    fn condition(&mut self, cond: &Expr, kind: BranchKind) {
        let c = self.slice(cond.span);
        let probe = match self.inputs.last() {
            Some(input) if !is_constant_membership(cond) => {
                let input = self.slice(*input);
                Probe::Rows(
                    format!("{}{input} | where tobool({c}) | count", self.prefix),
                    format!("{}{input} | where not(tobool({c})) | count", self.prefix),
                )
            }
            _ => Probe::Scalar(format!("{}print __value = tobool({c})", self.prefix)),
        };
        self.branches.push(Found { start: cond.span.start, end: cond.span.end, kind, probe });
    }

    fn legs(&mut self, legs: &[&Expr]) {
        for leg in legs {
            let probe = Probe::Leg(format!("{}{} | count", self.prefix, self.slice(leg.span)));
            self.branches.push(Found { start: leg.span.start, end: leg.span.end, kind: BranchKind::UnionLeg, probe });
        }
    }
}

/// `current_principal_is_member_of('a', 'b')` with constant arguments: one value per request.
fn is_constant_membership(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Call { name, args } => {
            name.name.eq_ignore_ascii_case("current_principal_is_member_of")
                && args.iter().all(|a| matches!(a.expr().kind, ExprKind::Literal(_)))
        }
        ExprKind::Paren(inner) => is_constant_membership(inner),
        _ => false,
    }
}

impl<'ast> Visitor<'ast> for Finder<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match &e.kind {
            ExprKind::Pipe { input, op } => {
                self.visit_expr(input);
                self.inputs.push(input.span);
                if let OperatorKind::Union(u) = &op.kind {
                    let legs: Vec<&Expr> = std::iter::once(input.as_ref()).chain(u.tables.iter()).collect();
                    self.legs(&legs);
                }
                self.visit_operator(op);
                self.inputs.pop();
                return;
            }
            ExprKind::Union(u) => {
                let legs: Vec<&Expr> = u.tables.iter().collect();
                self.legs(&legs);
            }
            ExprKind::Call { name, args } => {
                let n = name.name.to_ascii_lowercase();
                if n == "current_principal_is_member_of" {
                    self.condition(e, BranchKind::MemberOf);
                    // Its arguments are names, not branches.
                    return;
                }
                if (n == "iff" || n == "iif")
                    && let Some(c) = args.first()
                    && self.depends_on_identity(c.expr())
                    && !is_constant_membership(c.expr())
                {
                    self.condition(c.expr(), BranchKind::Iff);
                }
                if n == "case" && args.len() >= 3 {
                    for (i, a) in args.iter().enumerate() {
                        if i % 2 == 0 && i + 1 < args.len() && self.depends_on_identity(a.expr()) && !is_constant_membership(a.expr()) {
                            self.condition(a.expr(), BranchKind::Case);
                        }
                    }
                }
            }
            _ => {}
        }
        visit::walk_expr(self, e);
    }

    fn visit_operator(&mut self, o: &'ast Operator) {
        if let OperatorKind::Where(pred) = &o.kind
            && self.depends_on_identity(pred)
            && !is_constant_membership(pred)
        {
            self.condition(pred, BranchKind::Where);
        }
        visit::walk_operator(self, o);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn branches(query: &str, functions: &[(&str, &str, &str)]) -> Vec<(BranchKind, String, String)> {
        let functions: Vec<(String, String, String)> =
            functions.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
        let ids = identity_functions(&functions);
        let p = analyse("db", "T", true, query, &functions, &ids);
        p.branches
            .iter()
            .map(|b| {
                let probe = match &b.probe {
                    Probe::Scalar(q) | Probe::Leg(q) => q.clone(),
                    Probe::Rows(kept, dropped) => format!("{kept}\n{dropped}"),
                };
                (b.kind, b.text(&p).to_string(), probe)
            })
            .collect()
    }

    #[test]
    fn own_rows_policy() {
        let b = branches("T | where Owner == current_principal() or current_principal_is_member_of('aadgroup=g')", &[]);
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0].0, BranchKind::Where);
        assert_eq!(
            b[0].2,
            "T | where tobool(Owner == current_principal() or current_principal_is_member_of('aadgroup=g')) | count\nT | where not(tobool(Owner == current_principal() or current_principal_is_member_of('aadgroup=g'))) | count"
        );
        assert_eq!((b[1].0, b[1].1.as_str()), (BranchKind::MemberOf, "current_principal_is_member_of('aadgroup=g')"));
        assert_eq!(b[1].2, "print __value = tobool(current_principal_is_member_of('aadgroup=g'))");
    }

    #[test]
    fn masking_pattern_in_a_function() {
        let body = "{\n    let IsManager = current_principal_is_member_of('aadgroup=m');\n    let AllData = T | where IsManager;\n    let Partial = T | where not(IsManager) | extend C = 'x';\n    union AllData, Partial\n}";
        let b = branches("Policy", &[("Policy", "()", body), ("Unrelated", "()", "{ print 1 }")]);
        let kinds: Vec<_> = b.iter().map(|(k, t, _)| (*k, t.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (BranchKind::MemberOf, "current_principal_is_member_of('aadgroup=m')"),
                (BranchKind::Where, "IsManager"),
                (BranchKind::Where, "not(IsManager)"),
                (BranchKind::UnionLeg, "AllData"),
                (BranchKind::UnionLeg, "Partial"),
            ]
        );
        // Probes carry the statements before theirs.
        assert!(b[3].2.starts_with("let IsManager = current_principal_is_member_of('aadgroup=m');\nlet AllData"), "{}", b[3].2);
        assert!(b[3].2.ends_with("AllData | count"), "{}", b[3].2);
    }

    #[test]
    fn iff_and_case_on_identity_only() {
        let b = branches(
            "T | extend C = iff(current_principal_is_member_of('g'), C, 'x'), D = iff(A > 1, 1, 2), E = case(current_principal() == 'x', 1, A > 2, 2, 3)",
            &[],
        );
        let kinds: Vec<_> = b.iter().map(|(k, t, _)| (*k, t.as_str())).collect();
        assert_eq!(
            kinds,
            // A condition that is a membership test is reported once, as that test.
            [(BranchKind::MemberOf, "current_principal_is_member_of('g')"), (BranchKind::Case, "current_principal() == 'x'")]
        );
    }
}
