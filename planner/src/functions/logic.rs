//! Conditionals and logic: `iff`/`iif`, `case`, `coalesce`, `not`, `min_of`/`max_of`; the
//! branches of a conditional are brought to one common type.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit, when};
use super::conversion::lower_cast;
use super::udf::{RowState, row_call, s_bool, sv_i64, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// The type both branches of a conditional are brought to.
fn common_type(name: &str, tys: &[KqlType]) -> Result<KqlType> {
    let mut t = match tys.first() {
        Some(t) => *t,
        None => return Err(PlanError::semantic(format!("function '{name}' expects arguments"))),
    };
    for u in &tys[1..] {
        if *u == t {
            continue;
        }
        if t.is_numeric() && u.is_numeric() {
            t = super::operators::numeric_common(t, *u);
        } else if matches!((t, *u), (KqlType::String, KqlType::Guid) | (KqlType::Guid, KqlType::String)) {
            t = KqlType::String;
        } else if t == KqlType::Dynamic || *u == KqlType::Dynamic {
            t = KqlType::Dynamic;
        } else {
            return Err(PlanError::semantic(format!(
                "function '{name}': arguments of types {t} and {u} have no common type"
            )));
        }
    }
    Ok(t)
}

fn to_common(name: &str, args: Vec<TypedExpr>) -> Result<(Vec<Expr>, KqlType)> {
    let tys: Vec<KqlType> = args.iter().map(|a| a.ty).collect();
    let t = common_type(name, &tys)?;
    let exprs = args.into_iter().map(|a| lower_cast(a, t).map(|x| x.expr)).collect::<Result<Vec<_>>>()?;
    Ok((exprs, t))
}

fn bool_arg(e: TypedExpr, name: &str) -> Result<Expr> {
    match e.ty {
        KqlType::Bool => Ok(e.expr),
        KqlType::Dynamic => Ok(lower_cast(e, KqlType::Bool)?.expr),
        t => Err(PlanError::semantic(format!("function '{name}': a value of type bool expected, got {t}"))),
    }
}

fn extreme_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // args[0] = 1 for max, 0 for min; nulls are ignored.
    let max = args.first().and_then(sv_i64) == Some(1);
    let mut best: Option<&ScalarValue> = None;
    for v in args.iter().skip(1).filter(|v| !v.is_null()) {
        best = match best {
            None => Some(v),
            Some(b) => match v.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) if max => Some(v),
                Some(std::cmp::Ordering::Less) if !max => Some(v),
                _ => Some(b),
            },
        };
    }
    best.cloned().unwrap_or(ScalarValue::Null)
}

/// `iff(predicate, then, else)` (alias `iif`).
pub(super) fn lower_iff(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let c = bool_arg(args.remove(0), name)?;
    let (mut v, t) = to_common(name, args)?;
    let b = v.pop().ok_or_else(|| PlanError::Internal("iff".into()))?;
    let a = v.pop().ok_or_else(|| PlanError::Internal("iff".into()))?;
    Ok(TypedExpr::new(when(c, a).otherwise(b)?, t))
}

/// `case(p1, v1, p2, v2, ..., else)`: pairs of predicate and value, then the else value.
pub(super) fn lower_case(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let n = args.len();
    if n < 3 || n.is_multiple_of(2) {
        return Err(PlanError::semantic("function 'case' expects pairs of predicate and value, then an else value"));
    }
    let mut preds = Vec::new();
    let mut vals = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        if i % 2 == 0 && i + 1 < n {
            preds.push(bool_arg(a, name)?);
        } else {
            vals.push(a);
        }
    }
    let (mut v, t) = to_common(name, vals)?;
    let els = v.pop().ok_or_else(|| PlanError::Internal("case".into()))?;
    let mut it = preds.into_iter().zip(v);
    let (p0, v0) = it.next().ok_or_else(|| PlanError::Internal("case".into()))?;
    let mut b = when(p0, v0);
    for (p, v) in it {
        b = b.when(p, v);
    }
    Ok(TypedExpr::new(b.otherwise(els)?, t))
}

/// `coalesce(a, b, ...)`: the first non-null value; of strings, the first non-empty one.
pub(super) fn lower_coalesce(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let (v, t) = to_common(name, args)?;
    if t == KqlType::String {
        // Kusto: the first non-empty string.
        let mut it = v.into_iter().rev();
        let mut acc = it.next().ok_or_else(|| PlanError::Internal("coalesce".into()))?;
        for e in it {
            let nonempty = Expr::IsNotNull(Box::new(e.clone())).and(e.clone().not_eq(lit("")));
            acc = when(nonempty, e).otherwise(acc)?;
        }
        return Ok(TypedExpr::new(acc, t));
    }
    Ok(TypedExpr::new(super::coalesce(v), t))
}

/// `not(e)`. Of `x in (subquery)` it is `x !in (subquery)`, as DataFusion's analyzer would
/// rewrite it (and the same under three-valued logic): a bound plan is what the analyzer makes
/// of it, and only the negated form is decorrelated into an anti join.
pub(super) fn lower_not(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let negated = match bool_arg(args.remove(0), name)? {
        Expr::InSubquery(mut s) => {
            s.negated = !s.negated;
            Expr::InSubquery(s)
        }
        Expr::Exists(mut e) => {
            e.negated = !e.negated;
            Expr::Exists(e)
        }
        e => Expr::Not(Box::new(e)),
    };
    Ok(TypedExpr::new(negated, KqlType::Bool))
}

/// `min_of(a, b, ...)` / `max_of(a, b, ...)`, nulls ignored.
pub(super) fn lower_min_max_of(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let (mut v, t) = to_common(name, args)?;
    if t == KqlType::Dynamic {
        return Err(PlanError::semantic(format!("function '{name}' is not defined for dynamic values")));
    }
    v.insert(0, lit(i64::from(name == "max_of")));
    Ok(TypedExpr::new(row_call(name, t.arrow_type(), extreme_row, v), t))
}

fn isempty_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_bool(Some(args.first().is_none_or(|v| v.is_null() || sv_str(v) == Some(""))))
}

/// `isempty` / `isnotempty`: a string or guid is empty when null or `""`, anything else when
/// null.
pub(super) fn lower_isempty(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    let e = if a.ty == KqlType::String || a.ty == KqlType::Guid {
        row_call("isempty", KqlType::Bool.arrow_type(), isempty_row, vec![a.expr])
    } else {
        Expr::IsNull(Box::new(a.expr))
    };
    // `notempty` is the deprecated name of `isnotempty`.
    Ok(TypedExpr::new(if name == "isempty" { e } else { Expr::Not(Box::new(e)) }, KqlType::Bool))
}

/// `isnull` / `isnotnull`.
pub(super) fn lower_isnull(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    // Kusto strings are never null.
    // `notnull` is the deprecated name of `isnotnull`.
    let e = if a.ty == KqlType::String {
        lit(name != "isnull")
    } else if name == "isnull" {
        Expr::IsNull(Box::new(a.expr))
    } else {
        Expr::IsNotNull(Box::new(a.expr))
    };
    Ok(TypedExpr::new(e, KqlType::Bool))
}
