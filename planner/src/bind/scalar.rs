//! Scalar expressions: names, literals, operators, function calls, subqueries, and the
//! principal functions folded to literals.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr as DfExpr;
use kustodian_parser::ast::{self, BinaryOp, DynValue, ExprKind, LiteralKind};

use super::{Binder, Binding, Rel, Scope, did_you_mean};
use crate::error::{PlanError, Result};
use crate::functions::{self, TypedExpr};
use crate::types::KqlType;

fn typed(e: DfExpr, ty: KqlType) -> TypedExpr {
    TypedExpr::new(e, ty)
}

fn lit_ty(v: ScalarValue, ty: KqlType) -> TypedExpr {
    TypedExpr::new(DfExpr::Literal(v, None), ty)
}

pub(crate) fn null_of(ty: KqlType) -> Result<TypedExpr> {
    Ok(lit_ty(ScalarValue::try_from(&ty.arrow_type())?, ty))
}

/// The value of a constant expression, if it is a literal (possibly under casts/aliases).
pub(crate) fn const_value(e: &TypedExpr) -> Option<ScalarValue> {
    fn go(e: &DfExpr) -> Option<ScalarValue> {
        match e {
            DfExpr::Literal(v, _) => Some(v.clone()),
            DfExpr::Alias(a) => go(&a.expr),
            DfExpr::Cast(c) => go(&c.expr).and_then(|v| v.cast_to(c.field.data_type()).ok()),
            DfExpr::Negative(inner) => go(inner).and_then(|v| v.arithmetic_negate().ok()),
            _ => None,
        }
    }
    go(&e.expr)
}

pub(crate) fn const_string(e: &TypedExpr) -> Option<String> {
    match const_value(e)? {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// Integer-like constants (long, int, datetime and timespan in ns).
pub(crate) fn const_i128(e: &TypedExpr) -> Option<i128> {
    match const_value(e)? {
        ScalarValue::Int64(Some(v)) => Some(v as i128),
        ScalarValue::Int32(Some(v)) => Some(v as i128),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v as i128),
        ScalarValue::DurationNanosecond(Some(v)) => Some(v as i128),
        _ => None,
    }
}

pub(crate) fn const_f64(e: &TypedExpr) -> Option<f64> {
    match const_value(e)? {
        ScalarValue::Float64(Some(v)) => Some(v),
        ScalarValue::Int64(Some(v)) => Some(v as f64),
        ScalarValue::Int32(Some(v)) => Some(v as f64),
        _ => None,
    }
}

pub(crate) fn const_datetime_nanos(e: &TypedExpr) -> Option<i64> {
    match const_value(e)? {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v),
        _ => None,
    }
}

/// The text of a `datetime(...)` literal without the quotes it may be written with
/// (`datetime("2024-01-02 03:04:05")`).
fn unquote(s: &str) -> &str {
    let t = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = t.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    t
}

/// The JSON text of a `dynamic(...)` literal.
pub(crate) fn dyn_json(v: &DynValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        DynValue::Null => J::Null,
        DynValue::Bool(b) => J::Bool(*b),
        DynValue::Long(n) => J::from(*n),
        DynValue::Real(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
        DynValue::String(s) => J::String(s.clone()),
        DynValue::Datetime(s) => match functions::parse_datetime(unquote(s)) {
            Some(ns) => J::String(functions::format_datetime_iso(ns)),
            None => J::Null,
        },
        DynValue::Timespan(t) => J::String(functions::format_timespan_c(t.saturating_mul(100))),
        DynValue::Guid(g) => J::String(g.to_lowercase()),
        DynValue::Array(a) => J::Array(a.iter().map(dyn_json).collect()),
        DynValue::Object(o) => J::Object(o.iter().map(|(k, v)| (k.clone(), dyn_json(v))).collect()),
    }
}

/// The first `datetime(...)` in a dynamic literal that is valid but outside the range a
/// nanosecond timestamp holds.
fn out_of_range_datetime(v: &DynValue) -> Option<&str> {
    match v {
        DynValue::Datetime(s) => functions::datetime_out_of_range(unquote(s)).then_some(s.as_str()),
        DynValue::Array(a) => a.iter().find_map(out_of_range_datetime),
        DynValue::Object(o) => o.iter().find_map(|(_, v)| out_of_range_datetime(v)),
        _ => None,
    }
}

impl<'a> Binder<'a> {
    /// A valid datetime the physical type cannot hold: datetimes are Arrow nanosecond
    /// timestamps, so Kusto's years 0001 to 1677 and 2262 to 9999 are out of reach. Said as
    /// such, never read as null or as another instant.
    fn datetime_out_of_range(&self, text: &str, span: ast::Span) -> PlanError {
        self.unsupported(
            format!(
                "datetime({}): a datetime outside {} .. {} (Kusto allows 0001-01-01 to 9999-12-31)",
                unquote(text),
                functions::MIN_DATETIME,
                functions::MAX_DATETIME
            ),
            span,
        )
    }

    pub fn bind_literal(&self, l: &ast::Literal) -> Result<TypedExpr> {
        Ok(match &l.kind {
            LiteralKind::Long(v) => lit_ty(ScalarValue::Int64(Some(*v)), KqlType::Long),
            LiteralKind::Int(v) => lit_ty(ScalarValue::Int32(Some(*v)), KqlType::Int),
            LiteralKind::Real(v) => lit_ty(ScalarValue::Float64(Some(*v)), KqlType::Real),
            LiteralKind::Bool(v) => lit_ty(ScalarValue::Boolean(Some(*v)), KqlType::Bool),
            LiteralKind::String(s) | LiteralKind::ObfuscatedString(s) => lit_ty(ScalarValue::Utf8(Some(s.clone())), KqlType::String),
            LiteralKind::Decimal(s) => match functions::parse_decimal(s) {
                Some(v) => lit_ty(
                    ScalarValue::Decimal128(Some(v), crate::types::DECIMAL_PRECISION, crate::types::DECIMAL_SCALE),
                    KqlType::Decimal,
                ),
                None => return Err(self.semantic(format!("invalid decimal literal '{s}'"), l.span)),
            },
            // The reference writes some dates with spaces around the dashes (`datetime(2017 - 08 - 01)`).
            LiteralKind::Datetime(s) => match functions::parse_datetime(unquote(s)).or_else(|| functions::parse_datetime(&unquote(s).replace(" - ", "-"))) {
                Some(ns) => lit_ty(ScalarValue::TimestampNanosecond(Some(ns), None), KqlType::Datetime),
                None if functions::datetime_out_of_range(unquote(s)) => return Err(self.datetime_out_of_range(s, l.span)),
                None => return Err(self.semantic(format!("invalid datetime literal '{s}'"), l.span)),
            },
            LiteralKind::Timespan(ticks) => match ticks.checked_mul(100) {
                Some(ns) => lit_ty(ScalarValue::DurationNanosecond(Some(ns)), KqlType::Timespan),
                None => return Err(self.semantic("timespan literal out of range", l.span)),
            },
            LiteralKind::Guid(s) => match functions::parse_guid(s) {
                Some(g) => lit_ty(ScalarValue::Utf8(Some(g)), KqlType::Guid),
                None => return Err(self.semantic(format!("invalid guid literal '{s}'"), l.span)),
            },
            LiteralKind::Dynamic(v) => {
                // Refused rather than left out: dyn_json would make such a value null.
                if let Some(s) = out_of_range_datetime(v) {
                    return Err(self.datetime_out_of_range(s, l.span));
                }
                let j = dyn_json(v);
                if j.is_null() {
                    lit_ty(ScalarValue::Utf8(None), KqlType::Dynamic)
                } else {
                    lit_ty(ScalarValue::Utf8(Some(j.to_string())), KqlType::Dynamic)
                }
            }
            LiteralKind::TypedNull(t) => {
                let ty = KqlType::from_name(t).ok_or_else(|| self.semantic(format!("unknown type '{t}'"), l.span))?;
                null_of(ty)?
            }
        })
    }

    /// Binds a scalar expression in the context of the rows of `row` (None: no columns).
    pub fn bind_scalar(&mut self, e: &ast::Expr, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        self.bind_scalar_inner(e, row, scope).map_err(|err| err.with_span(self.err_span(e.span)))
    }

    fn bind_scalar_inner(&mut self, e: &ast::Expr, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        match &e.kind {
            ExprKind::Literal(l) => self.bind_literal(l),
            ExprKind::Ident(i) => self.bind_ident(&i.name, e.span, row, scope),
            ExprKind::Paren(inner) => {
                if self.is_tabular(inner, scope) {
                    return Err(self.semantic("a tabular expression is not allowed here; use toscalar(...)", e.span));
                }
                self.bind_scalar(inner, row, scope)
            }
            ExprKind::Binary { op, left, right } => {
                if matches!(left.kind, ExprKind::Star) {
                    return self.bind_star_binary(*op, right, row, scope, e.span, &[]);
                }
                let op = *op;
                if op == BinaryOp::Colon {
                    return Err(self.unsupported("the ':' operator outside search/find", e.span));
                }
                let l = self.bind_scalar(left, row, scope)?;
                let r = self.bind_scalar(right, row, scope)?;
                // Fold constant boolean connectives so `where IsManager` style lets disappear.
                if matches!(op, BinaryOp::And | BinaryOp::Or) {
                    let lc = const_value(&l);
                    let rc = const_value(&r);
                    let is = |v: &Option<ScalarValue>, b: bool| matches!(v, Some(ScalarValue::Boolean(Some(x))) if *x == b);
                    if op == BinaryOp::And {
                        if is(&lc, false) || is(&rc, false) {
                            return Ok(lit_ty(ScalarValue::Boolean(Some(false)), KqlType::Bool));
                        }
                        // `true and x` is x with a null read as false, as `and` reads it.
                        if is(&lc, true) && r.ty == KqlType::Bool {
                            return Ok(TypedExpr::new(functions::null_as_false(r.expr), KqlType::Bool));
                        }
                        if is(&rc, true) && l.ty == KqlType::Bool {
                            return Ok(TypedExpr::new(functions::null_as_false(l.expr), KqlType::Bool));
                        }
                    } else {
                        if is(&lc, true) || is(&rc, true) {
                            return Ok(lit_ty(ScalarValue::Boolean(Some(true)), KqlType::Bool));
                        }
                        if is(&lc, false) && r.ty == KqlType::Bool {
                            return Ok(TypedExpr::new(functions::null_as_false(r.expr), KqlType::Bool));
                        }
                        if is(&rc, false) && l.ty == KqlType::Bool {
                            return Ok(TypedExpr::new(functions::null_as_false(l.expr), KqlType::Bool));
                        }
                    }
                }
                functions::lower_binary(op, l, r)
            }
            ExprKind::Unary { op, expr } => {
                let v = self.bind_scalar(expr, row, scope)?;
                match op {
                    ast::UnaryOp::Neg => functions::lower_negate(v),
                    ast::UnaryOp::Plus => Ok(v),
                }
            }
            ExprKind::In { expr, negated, case_insensitive, list } => {
                let v = self.bind_scalar(expr, row, scope)?;
                if let Some(sub) = self.tabular_list(list, scope)? {
                    return self.in_subquery(v, sub, *negated, *case_insensitive, e.span);
                }
                let items = self.bind_list(list, row, scope)?;
                functions::lower_in_list(v, items, *negated, *case_insensitive)
            }
            ExprKind::HasAny { expr, list } | ExprKind::HasAll { expr, list } => {
                let all = matches!(e.kind, ExprKind::HasAll { .. });
                let v = self.bind_scalar(expr, row, scope)?;
                if self.tabular_list(list, scope)?.is_some() {
                    return Err(self.unsupported("has_any/has_all with a tabular argument", e.span));
                }
                let items = self.bind_list(list, row, scope)?;
                functions::lower_has_any(v, items, all)
            }
            ExprKind::Between { expr, negated, low, high } => {
                let v = self.bind_scalar(expr, row, scope)?;
                let lo = self.bind_scalar(low, row, scope)?;
                let hi = self.bind_scalar(high, row, scope)?;
                functions::lower_between(v, lo, hi, *negated)
            }
            ExprKind::Call { name, args } => self.bind_call(name, args, e, row, scope),
            ExprKind::Member { expr, name } => {
                if let ExprKind::JoinSide(_) = expr.kind {
                    return Err(self.semantic("$left/$right are only allowed in join conditions", e.span));
                }
                let v = self.bind_scalar(expr, row, scope)?;
                if v.ty != KqlType::Dynamic {
                    return Err(self.semantic(format!("'.{}' needs a dynamic value, not {}", name.name, v.ty), e.span));
                }
                functions::lower_index(v, lit_ty(ScalarValue::Utf8(Some(name.name.clone())), KqlType::String))
            }
            ExprKind::Index { expr, index } => {
                let v = self.bind_scalar(expr, row, scope)?;
                let i = self.bind_scalar(index, row, scope)?;
                functions::lower_index(v, i)
            }
            ExprKind::JoinSide(_) => Err(self.semantic("$left/$right are only allowed in join conditions", e.span)),
            ExprKind::Star => Err(self.semantic("'*' is not allowed here", e.span)),
            ExprKind::Wildcard(w) => Err(self.semantic(format!("wildcard '{w}' is not allowed here"), e.span)),
            ExprKind::TypeOf(_) => Err(self.semantic("typeof() is only allowed where a type is expected", e.span)),
            ExprKind::Lambda(_) => Err(self.semantic("a function definition is only allowed in a let statement", e.span)),
            ExprKind::MemberCall { .. } | ExprKind::MemberWildcard { .. } => {
                Err(self.semantic("expected a scalar expression", e.span))
            }
            ExprKind::Pipe { .. }
            | ExprKind::Datatable { .. }
            | ExprKind::Print(_)
            | ExprKind::Range { .. }
            | ExprKind::Union(_)
            | ExprKind::Find(_)
            | ExprKind::Search(_)
            | ExprKind::Evaluate(_)
            | ExprKind::Externaldata { .. } => {
                Err(self.semantic("a tabular expression is not allowed here; use toscalar(...)", e.span))
            }
        }
    }

    fn bind_list(&mut self, list: &[ast::Expr], row: Option<&Rel>, scope: &Scope) -> Result<Vec<TypedExpr>> {
        let mut out = Vec::new();
        for it in list {
            let v = self.bind_scalar(it, row, scope)?;
            // A dynamic array literal in a list contributes its elements (Kusto flattens them).
            if v.ty == KqlType::Dynamic
                && let Some(s) = const_string(&v)
                && let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(&s)
            {
                for j in items {
                    out.push(match j {
                        serde_json::Value::String(s) => lit_ty(ScalarValue::Utf8(Some(s)), KqlType::String),
                        serde_json::Value::Bool(b) => lit_ty(ScalarValue::Boolean(Some(b)), KqlType::Bool),
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => lit_ty(ScalarValue::Int64(Some(i)), KqlType::Long),
                            None => lit_ty(ScalarValue::Float64(n.as_f64()), KqlType::Real),
                        },
                        other => lit_ty(ScalarValue::Utf8(Some(other.to_string())), KqlType::Dynamic),
                    });
                }
                continue;
            }
            out.push(v);
        }
        Ok(out)
    }

    /// If a list holds exactly one tabular expression, binds it.
    fn tabular_list(&mut self, list: &[ast::Expr], scope: &Scope) -> Result<Option<Rel>> {
        match list {
            [one] if self.is_tabular(one, scope) => Ok(Some(self.bind_tabular(one, scope)?)),
            _ => Ok(None),
        }
    }

    fn in_subquery(&mut self, v: TypedExpr, sub: Rel, negated: bool, ci: bool, span: ast::Span) -> Result<TypedExpr> {
        let Some(first) = sub.schema.columns.first().cloned() else {
            return Err(self.semantic("the subquery of 'in' returns no columns", span));
        };
        let mut item = sub.col(&first.name)?;
        let mut needle = v;
        if ci {
            item = functions::lower_scalar_call("tolower", vec![functions::lower_cast(item, KqlType::String)?], &self.fctx)?;
            needle = functions::lower_scalar_call("tolower", vec![functions::lower_cast(needle, KqlType::String)?], &self.fctx)?;
        } else if item.ty != needle.ty {
            let target = if item.ty.is_numeric() && needle.ty.is_numeric() {
                if item.ty == KqlType::Real || needle.ty == KqlType::Real { KqlType::Real } else { KqlType::Long }
            } else {
                KqlType::String
            };
            item = functions::lower_cast(item, target)?;
            needle = functions::lower_cast(needle, target)?;
        }
        let plan = sub.builder().project(vec![item.expr.alias("__in")])?.build()?;
        let subquery = Arc::new(plan);
        let expr = if negated {
            datafusion::logical_expr::expr_fn::not_in_subquery(needle.expr, subquery)
        } else {
            datafusion::logical_expr::expr_fn::in_subquery(needle.expr, subquery)
        };
        Ok(typed(expr, KqlType::Bool))
    }

    fn bind_ident(&mut self, name: &str, span: ast::Span, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        if let Some(rel) = row
            && rel.schema.get(name).is_some()
        {
            return rel.col(name);
        }
        match scope.get(name).cloned() {
            Some(Binding::Scalar(v)) => return Ok(v),
            Some(Binding::Tabular(_)) => {
                return Err(self.semantic(format!("'{name}' is a table; use toscalar({name}) for its value"), span));
            }
            Some(Binding::Lambda(l)) => {
                let (rel, val) = self.call_lambda(&l, &[], scope, span, row)?;
                return match (rel, val) {
                    (_, Some(v)) => Ok(v),
                    _ => Err(self.semantic(format!("'{name}' is a tabular function, not a scalar"), span)),
                };
            }
            None => {}
        }
        let candidates: Vec<String> = row.map(|r| r.names()).unwrap_or_default();
        let hint = did_you_mean(name, candidates.iter().map(String::as_str));
        Err(self.semantic(
            format!(
                "unknown column or scalar '{name}'{}",
                hint.map(|h| format!("; did you mean '{h}'?")).unwrap_or_default()
            ),
            span,
        ))
    }

    fn bind_call(&mut self, name: &ast::Ident, args: &[ast::Arg], e: &ast::Expr, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        let n = name.name.as_str();
        match n {
            "current_principal" => {
                return Ok(lit_ty(ScalarValue::Utf8(Some(self.ctx.principal.fqn())), KqlType::String));
            }
            "current_principal_details" => {
                let p = &self.ctx.principal;
                let d = &self.ctx.details;
                let display = match (&d.display_name, self.ctx.upn()) {
                    (Some(name), Some(upn)) => format!("{name} (upn: {upn})"),
                    (Some(name), None) => name.clone(),
                    (None, Some(upn)) => format!("{} (upn: {upn})", upn.split('@').next().unwrap_or(upn)),
                    (None, None) => p.display_name(),
                };
                let details = serde_json::json!({
                    "UserPrincipalName": self.ctx.upn(),
                    "IdentityProvider": d.identity_provider.as_deref().unwrap_or("https://sts.windows.net"),
                    "Authority": p.authority(),
                    "Mfa": if d.mfa { "True" } else { "False" },
                    "Type": p.kind.details_type(),
                    "DisplayName": display,
                    "ObjectId": p.id,
                    "FQN": p.fqn(),
                    "Notes": serde_json::Value::Null,
                });
                return Ok(lit_ty(ScalarValue::Utf8(Some(details.to_string())), KqlType::Dynamic));
            }
            "current_principal_is_member_of" => {
                let mut member = false;
                if args.is_empty() {
                    return Err(self.semantic("current_principal_is_member_of() needs at least one principal", e.span));
                }
                for a in args {
                    match &a.expr().kind {
                        ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s), .. }) => {
                            member |= self.ctx.is_member_of(s);
                        }
                        ExprKind::Literal(ast::Literal { kind: LiteralKind::Dynamic(DynValue::Array(items)), .. }) if args.len() == 1 => {
                            for it in items {
                                match it {
                                    DynValue::String(s) => member |= self.ctx.is_member_of(s),
                                    _ => {
                                        return Err(self.semantic(
                                            "current_principal_is_member_of(): the dynamic array must hold only strings",
                                            e.span,
                                        ));
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err(self.semantic(
                                "current_principal_is_member_of() accepts only string literals or one dynamic array literal",
                                a.expr().span,
                            ));
                        }
                    }
                }
                return Ok(lit_ty(ScalarValue::Boolean(Some(member)), KqlType::Bool));
            }
            "current_database" => {
                return Ok(lit_ty(ScalarValue::Utf8(Some(self.database.clone())), KqlType::String));
            }
            "current_cluster_endpoint" => {
                return Ok(lit_ty(ScalarValue::Utf8(Some("kustodian.local".into())), KqlType::String));
            }
            "pack_all" => return self.bind_pack_all(args, e, row, scope),
            "estimate_data_size" => {
                if args.is_empty() {
                    return Err(self.semantic("estimate_data_size() expects one or more columns, or *", e.span));
                }
                let mut cols = Vec::new();
                for a in args {
                    if matches!(a.expr().kind, ExprKind::Star) {
                        if let Some(rel) = row {
                            for c in rel.schema.columns.iter().filter(|c| !c.name.starts_with("__kql")) {
                                cols.push(rel.col(&c.name)?);
                            }
                        }
                    } else {
                        cols.push(self.bind_scalar(a.expr(), row, scope)?);
                    }
                }
                return Ok(functions::estimate_data_size_call(cols));
            }
            // `column_ifexists(name, default)`: the row's column `name` when the row has it,
            // else the default, in the default's type. Only the caller's own row is consulted.
            "column_ifexists" | "columnifexists" => {
                let [c, d] = args else {
                    return Err(self.semantic("column_ifexists() takes two arguments: a column name and a default value", e.span));
                };
                let named = self.bind_scalar(c.expr(), row, scope)?;
                let Some(column) = const_string(&named) else {
                    return Err(self.semantic("column_ifexists(): the column name must be a constant string", c.expr().span));
                };
                // The result has the default's type (as the official parser types it).
                let default = self.bind_scalar(d.expr(), row, scope)?;
                if let Some(r) = row
                    && r.schema.get(&column).is_some()
                {
                    return functions::lower_cast(r.col(&column)?, default.ty);
                }
                return Ok(default);
            }
            // `column_names_of(T)`: the names of a table's columns, known when binding.
            "column_names_of" => {
                let [a] = args else {
                    return Err(self.semantic("column_names_of() takes one argument: a table", e.span));
                };
                let t = self.bind_tabular(a.expr(), scope)?;
                let names = serde_json::Value::Array(t.schema.columns.iter().map(|c| serde_json::Value::String(c.name.clone())).collect());
                return Ok(lit_ty(ScalarValue::Utf8(Some(names.to_string())), KqlType::Dynamic));
            }
            "toscalar" => {
                let [a] = args else {
                    return Err(self.semantic("toscalar() takes one argument", e.span));
                };
                if !self.is_tabular(a.expr(), scope) {
                    return self.bind_scalar(a.expr(), row, scope);
                }
                let rel = self.bind_tabular(a.expr(), scope)?;
                let Some(first) = rel.schema.columns.first().cloned() else {
                    return Err(self.semantic("toscalar(): the expression returns no columns", e.span));
                };
                let c = rel.col(&first.name)?;
                let plan = rel.builder().project(vec![c.expr.alias("__scalar")])?.limit(0, Some(1))?.build()?;
                return Ok(typed(datafusion::logical_expr::expr_fn::scalar_subquery(Arc::new(plan)), first.ty));
            }
            "row_number" | "prev" | "next" | "row_cumsum" | "row_rank_dense" | "row_rank_min" | "row_window_session" => {
                return Err(self.unsupported(format!("function '{n}' (window functions over serialized rows)"), e.span));
            }
            "assert" => {
                let vals = self.bind_args(args, row, scope)?;
                let [cond, msg] = vals.as_slice() else {
                    return Err(self.semantic("assert() takes a condition and a message", e.span));
                };
                return match (crate::functions::fold_constant(&cond.expr), const_string(msg)) {
                    (Some(ScalarValue::Boolean(Some(true))), _) => Ok(lit_ty(ScalarValue::Boolean(Some(true)), KqlType::Bool)),
                    (Some(ScalarValue::Boolean(_)), m) => Err(PlanError::semantic(format!(
                        "assertion failed: {}",
                        m.unwrap_or_default()
                    ))),
                    _ => Err(self.unsupported("assert() with a non-constant condition", e.span)),
                };
            }
            _ => {}
        }
        if let Some(Binding::Lambda(l)) = scope.get(n).cloned() {
            let (rel, v) = self.call_lambda(&l, args, scope, e.span, row)?;
            return match (rel, v) {
                (_, Some(v)) => Ok(v),
                _ => Err(self.semantic(format!("'{n}' returns a table; use toscalar({n}(...))"), e.span)),
            };
        }
        // A built-in's name always means the built-in (closed world): a stored function of the
        // same name, which can no longer be created, is never called in its place.
        if !functions::is_builtin_function(n)
            && let Some(f) = self.stored_function(n, e.span)?
        {
            let (rel, v) = self.call_lambda(&f, args, scope, e.span, row)?;
            return match (rel, v) {
                (_, Some(v)) => Ok(v),
                _ => Err(self.semantic(format!("'{n}' returns a table; use toscalar({n}(...))"), e.span)),
            };
        }
        if let Some(a) = args.iter().find(|a| matches!(a, ast::Arg::Named { .. })) {
            return Err(self.semantic(format!("function '{n}' takes no named arguments"), a.expr().span));
        }
        let vals = self.bind_args(args, row, scope)?;
        functions::lower_scalar_call(n, vals, &self.fctx).map_err(|err| err.with_span(self.err_span(name.span)))
    }

    fn bind_args(&mut self, args: &[ast::Arg], row: Option<&Rel>, scope: &Scope) -> Result<Vec<TypedExpr>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            let e = a.expr();
            if let ExprKind::TypeOf(ast::TypeSpec::Scalar(t)) = &e.kind {
                // `typeof(long)` argument (extract, parse_json...): passed as a typed null.
                let ty = self.type_name(t)?;
                out.push(null_of(ty)?);
                continue;
            }
            out.push(self.bind_scalar(e, row, scope)?);
        }
        Ok(out)
    }
}

impl Binder<'_> {
    /// `pack_all([ignore_null_empty])`: a property bag of every column of the row.
    pub(crate) fn bind_pack_all(&mut self, args: &[ast::Arg], e: &ast::Expr, row: Option<&Rel>, scope: &Scope) -> Result<TypedExpr> {
        let skip_empty = match args {
            [] => false,
            [a] => {
                let v = self.bind_scalar(a.expr(), row, scope)?;
                match const_value(&v) {
                    Some(ScalarValue::Boolean(Some(b))) => b,
                    _ => return Err(self.semantic("pack_all(): ignore_null_empty must be a constant bool", a.expr().span)),
                }
            }
            _ => return Err(self.semantic("pack_all() takes at most one argument", e.span)),
        };
        let mut cols = Vec::new();
        if let Some(rel) = row {
            // In an `extend`, the operator's input columns only: a row holding all of them is
            // the `extend`'s own (a subquery's row has other columns).
            let input = self.extend_input.as_ref().filter(|names| names.iter().all(|n| rel.schema.get(n).is_some()));
            for c in &rel.schema.columns {
                if c.name.starts_with("__kql") || input.is_some_and(|names| !names.contains(&c.name)) {
                    continue;
                }
                cols.push((c.name.clone(), rel.col(&c.name)?));
            }
        }
        crate::functions::pack_all_call(cols, skip_empty)
    }
}
