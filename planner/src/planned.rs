//! What planning a query produces ([`PlannedQuery`]): the bound plan and what authorizing,
//! verifying and explaining it need (the policies applied, the tables reached).

use datafusion::logical_expr::LogicalPlan;
use kustodian_parser::ast::{self, Span};

use crate::types::KqlSchema;

/// A policy applied to a table in this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// `[db].[table]`
    pub table: String,
    pub query: String,
    /// True when the policy is disabled and applied because of force mode.
    pub forced: bool,
}

/// A table the request reached, directly or through functions, lets, views or policies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableAccess {
    pub database: String,
    pub table: String,
    pub restricted_view_access: bool,
}

/// The result of planning a query.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    pub plan: LogicalPlan,
    pub schema: KqlSchema,
    /// The query's text and its substituted table references, from which
    /// [`PlannedQuery::effective_kql`] prints the effective query (only explain needs it: it
    /// costs a parse and a print of the whole query).
    pub(crate) effective: Option<(String, Vec<(Span, String)>)>,
    pub policies: Vec<AppliedPolicy>,
    pub tables: Vec<TableAccess>,
    /// Entity names of the tables whose scans must sit under a barrier.
    pub protected: Vec<String>,
    /// `validatepermissions` (request property or `set`): authorize, do not run.
    pub validate_permissions: bool,
    /// Whether the plan holds the request's clock (`now()`, `ago()`, in the query, a function
    /// or a policy): it answers for this request's instant only.
    pub reads_clock: bool,
}

impl PlannedQuery {
    /// The query with each table reference that had a policy substituted replaced by a view
    /// holding the policy, printed from the AST.
    pub fn effective_kql(&self) -> String {
        match &self.effective {
            Some((text, subs)) => effective_kql(text, subs, &self.policies),
            None => String::new(),
        }
    }
}

/// The table part of an entity name `[db].[table]`.
fn entity_table(entity: &str) -> &str {
    entity.rsplit_once("].[").map_or(entity, |(_, t)| t.strip_suffix(']').unwrap_or(t))
}

/// The query with each substituted table reference replaced by a view holding its policy,
/// re-parsed and printed canonically.
fn effective_kql(text: &str, subs: &[(Span, String)], policies: &[AppliedPolicy]) -> String {
    let mut lets = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for p in policies {
        if names.iter().any(|(e, _)| e == &p.table) {
            continue;
        }
        let view = format!("__rls_{}", p.table.replace(['[', ']'], "").replace('.', "_"));
        lets.push(format!("let {} = view () {{ {} }};", ast::quote_ident(&view), p.query));
        names.push((p.table.clone(), view));
    }
    let view_of = |entity: &str| names.iter().find(|(e, _)| e == entity).map(|(_, v)| ast::quote_ident(v).into_owned());
    let mut subs: Vec<&(Span, String)> = subs.iter().collect();
    // Stable: the tables of one pattern keep their order.
    subs.sort_by_key(|(s, _)| s.start);
    let mut out = String::new();
    let mut pos = 0;
    let mut i = 0;
    while let Some((span, entity)) = subs.get(i) {
        // Several entities at one span: a table pattern (`union *`, `union T*`) and the tables
        // it matched; the same entity twice: one reference bound twice. (`Span`'s `==` is
        // always true: compare the offsets.)
        let same: Vec<&str> = subs[i..]
            .iter()
            .take_while(|(s, _)| (s.start, s.end) == (span.start, span.end))
            .map(|(_, e)| e.as_str())
            .collect();
        i += same.len();
        let mut group: Vec<&str> = Vec::new();
        for e in same {
            if !group.contains(&e) {
                group.push(e);
            }
        }
        if span.start < pos || span.end > text.len() {
            continue;
        }
        out.push_str(&text[pos..span.start]);
        if group.len() > 1 {
            let items: Vec<String> = group.iter().map(|e| view_of(e).unwrap_or_else(|| ast::quote_ident(entity_table(e)).into_owned())).collect();
            out.push_str(&items.join(", "));
        } else if let Some(v) = view_of(entity) {
            out.push_str(&v);
        } else {
            out.push_str(&text[span.start..span.end]);
        }
        pos = span.end;
    }
    out.push_str(&text[pos..]);
    let full = if lets.is_empty() { out } else { format!("{}\n{}", lets.join("\n"), out) };
    match kustodian_parser::parse(&full) {
        Ok(ast) => ast.to_string(),
        Err(_) => full,
    }
}
