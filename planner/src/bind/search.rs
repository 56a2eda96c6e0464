//! The `search` operator and `*` predicates (`where * has "x"`).
//!
//! `search` is a union of its sources with a `$table` column naming each row's source,
//! filtered by the search predicate:
//! * `T | search ...`: the piped input (named after its table when it is one);
//! * `search in (T1, T2*, ...) ...`: the tables as `union` lists them;
//! * `search ...`: every table of the database in scope, except tables with restricted view
//!   access (Kusto searches the unrestricted tables) and those a `restrict access` statement
//!   leaves out.
//!
//! Every table is reached through the binder's ordinary table resolution, so row-level
//! security policies, restricted view access and authorization apply as for any other query.
//!
//! In the predicate, a bare string is a term searched in every column (`"x"`: `has`, `"x*"`:
//! `hasprefix`, `"*x"`: `hassuffix`, `"*x*"`: `contains`, `"a*b"`: a regex with word
//! boundaries), `Col:"x"` restricts the term to one column, `*` matches every row, and any
//! other boolean expression is evaluated as in `where`. `kind=case_sensitive` makes the string
//! operators case-sensitive.
//!
//! `* op value` (in `where` and `search`) is true when some column, converted to a string for
//! the string operators, satisfies `op value`; a negated operator (`* !has "x"`) holds when no
//! column satisfies the positive one.

use datafusion::logical_expr::{LogicalPlan, lit};
use kustodian_parser::ast::visit_mut::{self, VisitorMut};
use kustodian_parser::ast::{self, BinaryOp as AstOp, ExprKind, LiteralKind, Span};

use super::{Binder, Binding, Rel, Scope, glob_match};
use crate::security::barrier::SecurityBarrier;
use crate::error::Result;
use crate::functions::{self, BinaryOp, TypedExpr};
use crate::types::KqlType;

/// The column naming each row's source table.
const TABLE_COLUMN: &str = "$table";

fn bool_lit(b: bool) -> TypedExpr {
    TypedExpr::new(lit(b), KqlType::Bool)
}

/// The positive form of an operator and whether it was negated.
fn positive(op: AstOp) -> (AstOp, bool) {
    use AstOp::*;
    match op {
        NotHas => (Has, true),
        NotHasCs => (HasCs, true),
        NotHasPrefix => (HasPrefix, true),
        NotHasPrefixCs => (HasPrefixCs, true),
        NotHasSuffix => (HasSuffix, true),
        NotHasSuffixCs => (HasSuffixCs, true),
        NotContains => (Contains, true),
        NotContainsCs => (ContainsCs, true),
        NotStartsWith => (StartsWith, true),
        NotStartsWithCs => (StartsWithCs, true),
        NotEndsWith => (EndsWith, true),
        NotEndsWithCs => (EndsWithCs, true),
        NotEqTilde => (EqTilde, true),
        NotEq | LtGt => (Eq, true),
        other => (other, false),
    }
}

/// Operators that compare text: the column is converted to a string first.
fn is_string_op(op: AstOp) -> bool {
    use AstOp::*;
    matches!(
        op,
        Has | HasCs | HasPrefix | HasPrefixCs | HasSuffix | HasSuffixCs | Contains | ContainsCs | StartsWith | StartsWithCs | EndsWith
            | EndsWithCs | EqTilde | MatchesRegex
    )
}

/// The case-sensitive form of a string operator (`kind=case_sensitive`).
fn case_sensitive(op: AstOp) -> AstOp {
    use AstOp::*;
    match op {
        Has => HasCs,
        NotHas => NotHasCs,
        HasPrefix => HasPrefixCs,
        NotHasPrefix => NotHasPrefixCs,
        HasSuffix => HasSuffixCs,
        NotHasSuffix => NotHasSuffixCs,
        Contains => ContainsCs,
        NotContains => NotContainsCs,
        StartsWith => StartsWithCs,
        NotStartsWith => NotStartsWithCs,
        EndsWith => EndsWithCs,
        NotEndsWith => NotEndsWithCs,
        EqTilde => Eq,
        NotEqTilde => NotEq,
        other => other,
    }
}

/// A copy of an expression with its string operators in their case-sensitive forms (outside
/// its subqueries and lambdas, whose predicates are not the search's).
fn to_case_sensitive(e: &ast::Expr) -> ast::Expr {
    struct CaseSensitive;
    impl VisitorMut for CaseSensitive {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            if e.is_query_boundary() {
                return;
            }
            if let ExprKind::Binary { op, .. } = &mut e.kind {
                *op = case_sensitive(*op);
            }
            visit_mut::walk_expr(self, e);
        }
    }
    let mut out = e.clone();
    CaseSensitive.visit_expr(&mut out);
    out
}

/// How a search term is matched: an operator and its operand, or every row.
enum TermMatch {
    Op(AstOp, String),
    All,
}

/// A search term with `*` wildcards, as the operator the documentation lists for it.
fn term_match(term: &str, cs: bool) -> TermMatch {
    let lead = term.starts_with('*');
    let trail = term.ends_with('*');
    let core = term.trim_matches('*');
    if core.is_empty() {
        return TermMatch::All;
    }
    if core.contains('*') {
        let body: Vec<String> = core.split('*').filter(|p| !p.is_empty()).map(regex::escape).collect();
        let mut re = String::new();
        if !cs {
            re.push_str("(?i)");
        }
        if !lead {
            re.push_str(r"\b");
        }
        re.push_str(&body.join(".*"));
        if !trail {
            re.push_str(r"\b");
        }
        return TermMatch::Op(AstOp::MatchesRegex, re);
    }
    let op = match (lead, trail) {
        (true, true) => AstOp::Contains,
        (true, false) => AstOp::HasSuffix,
        (false, true) => AstOp::HasPrefix,
        (false, false) => AstOp::Has,
    };
    TermMatch::Op(if cs { case_sensitive(op) } else { op }, core.to_string())
}

fn string_lit(s: &str, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s.to_string()), span }), span)
}

fn tostring_of(e: ast::Expr, span: Span) -> ast::Expr {
    ast::Expr::new(
        ExprKind::Call { name: ast::Ident::new("tostring", span), args: vec![ast::Arg::Positional(e)] },
        span,
    )
}

fn string_literal(e: &ast::Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s) | LiteralKind::ObfuscatedString(s), .. }) => Some(s),
        _ => None,
    }
}

/// The table a piped input reads directly, if it is one (a scan or a policy barrier).
fn source_table(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::TableScan(ts) => Some(ts.table_name.table().to_string()),
        LogicalPlan::Extension(ext) => {
            let b = SecurityBarrier::of(ext.node.as_ref())?;
            let (_, t) = b.table.split_once("].[")?;
            Some(t.strip_suffix(']').unwrap_or(t).to_string())
        }
        _ => None,
    }
}

impl<'a> Binder<'a> {
    /// `* op right` over the columns of `row` (all but `exclude`): true when some column
    /// satisfies it; a negated operator holds when none satisfies its positive form.
    pub(super) fn bind_star_binary(
        &mut self,
        op: AstOp,
        right: &ast::Expr,
        row: Option<&Rel>,
        scope: &Scope,
        span: Span,
        exclude: &[&str],
    ) -> Result<TypedExpr> {
        let Some(rel) = row else {
            return Err(self.semantic("'*' needs the columns of a table here", span));
        };
        let (pos, negated) = positive(op);
        let comparison = matches!(pos, AstOp::Eq | AstOp::Lt | AstOp::LtEq | AstOp::Gt | AstOp::GtEq);
        if !is_string_op(pos) && !comparison {
            return Err(self.semantic(format!("'*' is not allowed with the operator '{}'", op_text(op)), span));
        }
        // The operand on its own, so its errors are reported rather than skipped per column.
        self.bind_scalar(right, Some(rel), scope)?;
        let mut any: Option<TypedExpr> = None;
        for c in rel.schema.columns.clone() {
            if exclude.contains(&c.name.as_str()) {
                continue;
            }
            let col = ast::Expr::new(ExprKind::Ident(ast::Ident::new(c.name.clone(), span)), span);
            let left = if is_string_op(pos) && c.ty != KqlType::String { tostring_of(col, span) } else { col };
            let cmp = ast::Expr::new(ExprKind::Binary { op: pos, left: Box::new(left), right: Box::new(right.clone()) }, span);
            // A column whose type the operator does not take cannot match.
            let Ok(v) = self.bind_scalar(&cmp, Some(rel), scope) else { continue };
            if v.ty != KqlType::Bool {
                continue;
            }
            any = Some(match any {
                None => v,
                Some(a) => functions::lower_binary(BinaryOp::Or, a, v)?,
            });
        }
        let any = any.unwrap_or_else(|| bool_lit(false));
        if negated {
            return functions::lower_scalar_call("not", vec![any], &self.fctx);
        }
        Ok(any)
    }

    /// The search predicate over `rel` (see the module documentation).
    fn bind_search_predicate(&mut self, e: &ast::Expr, rel: &Rel, scope: &Scope, cs: bool) -> Result<TypedExpr> {
        let exclude = [TABLE_COLUMN];
        match &e.kind {
            ExprKind::Star => Ok(bool_lit(true)),
            ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s) | LiteralKind::ObfuscatedString(s), .. }) => {
                match term_match(s, cs) {
                    TermMatch::All => Ok(bool_lit(true)),
                    TermMatch::Op(op, needle) => self.bind_star_binary(op, &string_lit(&needle, e.span), Some(rel), scope, e.span, &exclude),
                }
            }
            ExprKind::Paren(inner) => self.bind_search_predicate(inner, rel, scope, cs),
            ExprKind::Binary { op: AstOp::Colon, left, right } => {
                let Some(term) = string_literal(right) else {
                    return Err(self.semantic("search: 'Column:' must be followed by a string literal", right.span));
                };
                match (&left.kind, term_match(term, cs)) {
                    (_, TermMatch::All) => Ok(bool_lit(true)),
                    (ExprKind::Star, TermMatch::Op(op, needle)) => {
                        self.bind_star_binary(op, &string_lit(&needle, right.span), Some(rel), scope, e.span, &exclude)
                    }
                    (ExprKind::Ident(_), TermMatch::Op(op, needle)) => {
                        let col = self.bind_scalar(left, Some(rel), scope)?;
                        let col_expr = if col.ty == KqlType::String { (**left).clone() } else { tostring_of((**left).clone(), left.span) };
                        let cmp = ast::Expr::new(
                            ExprKind::Binary { op, left: Box::new(col_expr), right: Box::new(string_lit(&needle, right.span)) },
                            e.span,
                        );
                        self.bind_scalar(&cmp, Some(rel), scope)
                    }
                    _ => Err(self.semantic("search: expected 'Column:\"term\"'", e.span)),
                }
            }
            ExprKind::Binary { op: op @ (AstOp::And | AstOp::Or), left, right } => {
                let l = self.bind_search_predicate(left, rel, scope, cs)?;
                let r = self.bind_search_predicate(right, rel, scope, cs)?;
                functions::lower_binary(*op, l, r)
            }
            ExprKind::Binary { op, left, right } if matches!(left.kind, ExprKind::Star) => {
                let op = if cs { case_sensitive(*op) } else { *op };
                let right = if cs { to_case_sensitive(right) } else { (**right).clone() };
                self.bind_star_binary(op, &right, Some(rel), scope, e.span, &exclude)
            }
            ExprKind::Call { name, args } if name.name == "not" && args.len() == 1 => {
                let v = self.bind_search_predicate(args[0].expr(), rel, scope, cs)?;
                functions::lower_scalar_call("not", vec![v], &self.fctx)
            }
            _ => {
                let v = if cs { self.bind_scalar(&to_case_sensitive(e), Some(rel), scope)? } else { self.bind_scalar(e, Some(rel), scope)? };
                if v.ty != KqlType::Bool {
                    return Err(self.semantic(format!("the search predicate must be bool, not {}", v.ty), e.span));
                }
                Ok(v)
            }
        }
    }

    /// `[T |] search [kind=...] [in (tables)] predicate`
    pub(super) fn plan_search(&mut self, input: Option<Rel>, s: &ast::Search, scope: &Scope, span: Span) -> Result<Rel> {
        let mut cs = false;
        for p in &s.params {
            match p.name.name.to_ascii_lowercase().as_str() {
                "kind" => {
                    let w = super::sources::param_word(&p.value).unwrap_or_default().to_ascii_lowercase();
                    cs = match w.as_str() {
                        "case_sensitive" => true,
                        "default" | "case_insensitive" => false,
                        other => return Err(self.semantic(format!("unknown search kind '{other}'"), p.span)),
                    };
                }
                _ => return Err(self.semantic(format!("unknown search parameter '{}'", p.name.name), p.span)),
            }
        }
        let withsource = ast::OpParam {
            name: ast::Ident::new("withsource", span),
            value: ast::Expr::new(ExprKind::Ident(ast::Ident::new(TABLE_COLUMN, span)), span),
            span,
        };
        let union = match input {
            Some(rel) => {
                if !s.tables.is_empty() {
                    return Err(self.semantic("search: 'in (...)' cannot be used on a piped input", span));
                }
                let name = rel.alias.clone().or_else(|| source_table(&rel.plan)).unwrap_or_else(|| "union_arg0".to_string());
                let rel = Rel { alias: Some(name), ..rel };
                self.bind_union(Some(rel), &ast::Union { params: vec![withsource], tables: Vec::new() }, scope, span)?
            }
            None if !s.tables.is_empty() => {
                self.bind_union(None, &ast::Union { params: vec![withsource], tables: s.tables.clone() }, scope, span)?
            }
            None => {
                // Every unrestricted table of the database, each resolved like any table reference.
                let db = self.database.clone();
                let mut legs_scope = scope.clone();
                let mut tables = Vec::new();
                for (i, name) in self.catalog.table_names(&db)?.into_iter().enumerate() {
                    // Tables the caller may not read (restricted view access) are left out.
                    let Ok(Some(info)) = self.catalog.table(&db, &name) else { continue };
                    if info.restricted_view_access {
                        continue;
                    }
                    if let Some(r) = &self.restrict {
                        let listed = r.tables.iter().any(|(d, t)| d.eq_ignore_ascii_case(&info.database) && glob_match(t, &info.name));
                        if !listed {
                            continue;
                        }
                    }
                    let rel = self.resolve_table(&db, &name, span)?;
                    tables.push(named_leg(&mut legs_scope, format!("__search_leg_{i}"), rel, name, span));
                }
                // The query's views are searched too, as the let statement's reference shows.
                for (i, (name, view)) in scope.views_matching("*").into_iter().enumerate() {
                    let (Some(rel), _) = self.call_lambda(&view, &[], scope, span, None)? else { continue };
                    tables.push(named_leg(&mut legs_scope, format!("__search_view_{i}"), rel, name, span));
                }
                if tables.is_empty() {
                    return Err(self.semantic("search: the database has no tables to search", span));
                }
                self.bind_union(None, &ast::Union { params: vec![withsource], tables }, &legs_scope, span)?
            }
        };
        let pred = self.bind_search_predicate(&s.predicate, &union, scope, cs)?;
        if let Some(datafusion::common::ScalarValue::Boolean(Some(true))) = super::scalar::const_value(&pred) {
            return Ok(Rel::new(union.plan, union.schema));
        }
        let plan = union.builder().filter(pred.expr)?.build()?;
        Ok(Rel::new(plan, union.schema))
    }
}

/// `(leg | as name)`: `rel` bound in `scope` as `leg`, a union leg reported as `name`.
fn named_leg(scope: &mut Scope, leg: String, rel: Rel, name: String, span: Span) -> ast::Expr {
    scope.push(&leg, Binding::Tabular(rel));
    let leg_ref = ast::Expr::new(ExprKind::Ident(ast::Ident::new(leg, span)), span);
    let as_op = ast::Operator { kind: ast::OperatorKind::As { params: Vec::new(), name: ast::Ident::new(name, span) }, span };
    let pipe = ast::Expr::new(ExprKind::Pipe { input: Box::new(leg_ref), op: Box::new(as_op) }, span);
    ast::Expr::new(ExprKind::Paren(Box::new(pipe)), span)
}

fn op_text(op: AstOp) -> String {
    format!("{op:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_terms() {
        let op = |t: &str, cs: bool| match term_match(t, cs) {
            TermMatch::Op(op, n) => format!("{op:?} {n}"),
            TermMatch::All => "all".to_string(),
        };
        assert_eq!(op("err", false), "Has err");
        assert_eq!(op("err*", false), "HasPrefix err");
        assert_eq!(op("*err", false), "HasSuffix err");
        assert_eq!(op("*err*", false), "Contains err");
        assert_eq!(op("err", true), "HasCs err");
        assert_eq!(op("Lab*PC", false), r"MatchesRegex (?i)\bLab.*PC\b");
        assert_eq!(op("*", false), "all");
    }
}
