//! Helpers for the grammar's actions: node builders and the checks that LR rules cannot express.

use crate::ast::*;
use crate::error::{ParseError, ParseErrorKind, clip};
use crate::lexer::StrLit;

pub(crate) fn sp(l: usize, r: usize) -> Span {
    Span::new(l, r)
}

pub(crate) fn expr(kind: ExprKind, l: usize, r: usize) -> Expr {
    Expr::new(kind, sp(l, r))
}

pub(crate) fn bin(op: BinaryOp, left: Expr, right: Expr, l: usize, r: usize) -> Expr {
    expr(
        ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
        l,
        r,
    )
}

pub(crate) fn string_literal(s: StrLit, l: usize, r: usize) -> Literal {
    let kind = if s.obfuscated {
        LiteralKind::ObfuscatedString(s.value)
    } else {
        LiteralKind::String(s.value)
    };
    Literal::new(kind, sp(l, r))
}

pub(crate) fn invalid_at(src: &str, msg: impl Into<String>, span: Span) -> ParseError {
    invalid(src, msg, span)
}

fn invalid(src: &str, msg: impl Into<String>, span: Span) -> ParseError {
    ParseError::new(ParseErrorKind::Invalid, msg, span, src)
}

/// `lhs = rhs` where `lhs` must be a name or a parenthesised name.
pub(crate) fn named_from_expr(
    src: &str,
    lhs: Expr,
    rhs: Expr,
    l: usize,
    r: usize,
) -> Result<NamedExpr, ParseError> {
    let name = match lhs.kind {
        ExprKind::Ident(i) => i,
        ExprKind::Paren(inner) => match inner.kind {
            ExprKind::Ident(i) => i,
            _ => return Err(invalid(src, "expected a column name before '='", lhs.span)),
        },
        _ => return Err(invalid(src, "expected a column name before '='", lhs.span)),
    };
    Ok(NamedExpr {
        names: vec![name],
        expr: rhs,
        span: sp(l, r),
    })
}

/// One item of a `with (...)` list: `name = value` or a further value of the previous name.
pub(crate) enum PropItem {
    Named(Ident, Expr, Span),
    Value(Expr),
}

pub(crate) fn fold_props(src: &str, items: Vec<PropItem>) -> Result<Vec<Property>, ParseError> {
    let mut out: Vec<Property> = Vec::new();
    for item in items {
        match item {
            PropItem::Named(name, value, span) => out.push(Property {
                name,
                values: vec![value],
                span,
            }),
            PropItem::Value(v) => match out.last_mut() {
                Some(p) => {
                    p.span = p.span.to(v.span);
                    p.values.push(v);
                }
                None => return Err(invalid(src, "expected 'name = value'", v.span)),
            },
        }
    }
    Ok(out)
}

/// Statements, with the last one optional (`a; b;` and `a; b` are both fine). The grammar
/// boxes large nonterminals so that the parser's stack symbols stay small.
#[allow(clippy::vec_box)]
pub(crate) fn statements(
    init: Vec<Box<Statement>>,
    last: Option<Box<Statement>>,
) -> Vec<Statement> {
    init.into_iter().chain(last).map(|s| *s).collect()
}

pub(crate) fn wildcard_or_star(pattern: String, l: usize, r: usize) -> Expr {
    if pattern == "*" {
        expr(ExprKind::Star, l, r)
    } else {
        expr(ExprKind::Wildcard(pattern), l, r)
    }
}

/// `(a:long, *, b:string)` items.
pub(crate) enum SchemaItem {
    Star,
    Column(ColumnDecl),
}

pub(crate) fn schema(
    src: &str,
    items: Vec<SchemaItem>,
    l: usize,
    r: usize,
) -> Result<Schema, ParseError> {
    let mut wildcard = false;
    let mut columns = Vec::new();
    for item in items {
        match item {
            SchemaItem::Star if !wildcard => wildcard = true,
            SchemaItem::Star => {
                return Err(invalid(
                    src,
                    "'*' may appear only once in a schema",
                    sp(l, r),
                ));
            }
            SchemaItem::Column(c) => columns.push(c),
        }
    }
    Ok(Schema {
        wildcard,
        columns,
        span: sp(l, r),
    })
}

pub(crate) fn param_value_ident(i: Ident) -> Expr {
    let span = i.span;
    Expr::new(ExprKind::Ident(i), span)
}

/// Builds `OpParam`s, checking that each name is used once.
pub(crate) fn op_param(name: String, value: Expr, l: usize, nr: usize, r: usize) -> OpParam {
    OpParam {
        name: Ident::new(name, sp(l, nr)),
        value,
        span: sp(l, r),
    }
}

/// Splits the `database [Name] [Role]` principal-command forms.
pub(crate) fn principal_db(first: Ident, second: Option<Ident>) -> (Option<Ident>, Ident) {
    match second {
        Some(role) => (Some(first), role),
        None => (None, first),
    }
}

/// RLS policies apply to one table or materialized view.
pub(crate) fn rls_target(
    src: &str,
    t: PolicyTarget,
    l: usize,
    r: usize,
) -> Result<PolicyTarget, ParseError> {
    match t {
        PolicyTarget::Table(_) | PolicyTarget::MaterializedView(_) => Ok(t),
        PolicyTarget::AllTables | PolicyTarget::Tables(_) | PolicyTarget::Database(_) => Err(invalid(
            src,
            "row_level_security can only be altered or deleted on one table or materialized-view",
            sp(l, r),
        )),
    }
}

/// RVA policies apply to tables: `alter` takes one table or `tables (...)`, `delete` one table.
pub(crate) fn rva_target(
    src: &str,
    t: PolicyTarget,
    l: usize,
    r: usize,
    alter: bool,
) -> Result<PolicyTarget, ParseError> {
    match t {
        PolicyTarget::Table(_) => Ok(t),
        PolicyTarget::Tables(_) if alter => Ok(t),
        _ => Err(invalid(
            src,
            if alter {
                "restricted_view_access can only be altered on 'table T' or 'tables (T1, ...)'"
            } else {
                "restricted_view_access can only be deleted on 'table T'"
            },
            sp(l, r),
        )),
    }
}

/// Only `.set` accepts `none` instead of a principal list.
pub(crate) fn set_none(
    src: &str,
    action: PrincipalAction,
    l: usize,
    r: usize,
) -> Result<PrincipalAction, ParseError> {
    match action {
        PrincipalAction::Set => Ok(action),
        PrincipalAction::Add | PrincipalAction::Drop => Err(invalid(
            src,
            "'none' is only valid with .set (to empty a role)",
            sp(l, r),
        )),
    }
}

/// Roles that each kind of entity has (the cluster's are left to the runtime).
pub(crate) fn check_role(
    src: &str,
    entity: &SecurableEntity,
    role: &Ident,
) -> Result<(), ParseError> {
    if matches!(entity, SecurableEntity::Cluster) {
        return Ok(());
    }
    let allowed: Vec<&str> = Role::of(entity).iter().map(|r| r.keyword()).collect();
    if allowed.contains(&role.name.as_str()) {
        Ok(())
    } else {
        let kind = match entity {
            SecurableEntity::Database(_) => "database",
            SecurableEntity::Table(_) => "table",
            SecurableEntity::Function(_) => "function",
            SecurableEntity::MaterializedView(_) => "materialized-view",
            SecurableEntity::ExternalTable(_) => "external table",
            SecurableEntity::Cluster => "cluster",
        };
        Err(invalid(
            src,
            format!(
                "unknown {kind} role '{}'; expected one of: {}",
                clip(&role.name),
                allowed.join(", ")
            ),
            role.span,
        ))
    }
}

/// Type names form a closed set (`long`, `string`, ...).
pub(crate) fn check_type_name(src: &str, t: Ident) -> Result<Ident, ParseError> {
    if crate::lexer::TYPE_NAMES.contains(&t.name.as_str()) {
        Ok(t)
    } else {
        Err(invalid(
            src,
            format!(
                "'{}' is not a type name; expected one of: {}",
                clip(&t.name),
                crate::lexer::TYPE_NAMES.join(", ")
            ),
            t.span,
        ))
    }
}

/// Functions that take an unparenthesised tabular argument: `toscalar(T | count)`.
pub(crate) const TABULAR_ARG_FUNCTIONS: &[&str] = &["toscalar", "materialize"];

/// Other functions need a pipe-level argument (`T | ...`, `print ...`, `range ...`: see
/// [`Expr::is_open_tabular`]) in parentheses: `f((T | where x))`. Other tables are ordinary
/// arguments: `f(T)`, `f(table('T'))`, `f(datatable(a:long)[1])`.
pub(crate) fn check_tabular_args(src: &str, name: &Ident, args: &[Arg]) -> Result<(), ParseError> {
    if let [Arg::Positional(e)] = args
        && e.is_open_tabular()
        && !TABULAR_ARG_FUNCTIONS.contains(&name.name.as_str())
    {
        return Err(invalid(
            src,
            format!(
                "a tabular argument of '{name}' must be parenthesised: {name}((...))",
                name = clip(&name.name)
            ),
            e.span,
        ));
    }
    Ok(())
}

/// `tags has 'x'` in `.show ... extents where ...`: `has`, `!has`, `contains` or `!contains`.
pub(crate) fn tag_filter(src: &str, op: BinaryOp, value: Literal, l: usize, r: usize) -> Result<TagFilter, ParseError> {
    match op {
        BinaryOp::Has | BinaryOp::NotHas | BinaryOp::Contains | BinaryOp::NotContains => Ok(TagFilter { op, value, span: sp(l, r) }),
        _ => Err(invalid(src, "extent tags are filtered with has, !has, contains or !contains", sp(l, r))),
    }
}

/// A word a command takes by its text (`from`, `to`, `all`, `where`, `and`, `tags`): an ordinary
/// name elsewhere in commands, so not a keyword.
pub(crate) fn word(src: &str, got: &str, want: &str, l: usize, r: usize) -> Result<(), ParseError> {
    if got.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(invalid(src, format!("expected '{want}', found '{got}'"), sp(l, r)))
    }
}
