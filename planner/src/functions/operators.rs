//! KQL binary and unary operators, `in`, `has_any`/`has_all` and `between`. Binary operators
//! are the parser's `ast::BinaryOp`, lowered as they are written (`<>` as `!=`).
//!
//! Kusto semantics kept here: integer division/modulo by zero yields null; overflow wraps
//! (`+ - *` on longs) or yields null (everything computed in a KQL UDF); `==` of a null and a
//! non-null value is `false` and `!=` is `true`; strings are never null (a null string reads as
//! `""`); string comparison is ordinal, `=~` case-insensitive.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, Operator, binary_expr, lit, when};
use kustodian_parser::ast::BinaryOp;
use serde_json::Value as Json;

use super::conversion::{lower_cast, v_of};
use super::udf::{
    RowState, f64_to_i64, row_call, s_bool, s_dur, s_f64, s_i64, s_ts, str_pred_call, sv_i64, sv_str,
    sv_str_or_empty,
};
use super::{TypedExpr, terms};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// The string predicate behind a string operator and whether it is negated.
fn string_pred(op: BinaryOp) -> Option<(&'static str, terms::PredFn, bool)> {
    use BinaryOp::*;
    Some(match op {
        EqTilde => ("eq_ci", terms::eq_ci, false),
        NotEqTilde => ("eq_ci", terms::eq_ci, true),
        Has => ("has", terms::has, false),
        NotHas => ("has", terms::has, true),
        HasCs => ("has_cs", terms::has_cs, false),
        NotHasCs => ("has_cs", terms::has_cs, true),
        HasPrefix => ("hasprefix", terms::hasprefix, false),
        NotHasPrefix => ("hasprefix", terms::hasprefix, true),
        HasPrefixCs => ("hasprefix_cs", terms::hasprefix_cs, false),
        NotHasPrefixCs => ("hasprefix_cs", terms::hasprefix_cs, true),
        HasSuffix => ("hassuffix", terms::hassuffix, false),
        NotHasSuffix => ("hassuffix", terms::hassuffix, true),
        HasSuffixCs => ("hassuffix_cs", terms::hassuffix_cs, false),
        NotHasSuffixCs => ("hassuffix_cs", terms::hassuffix_cs, true),
        Contains => ("contains", terms::contains, false),
        NotContains => ("contains", terms::contains, true),
        ContainsCs => ("contains_cs", terms::contains_cs, false),
        NotContainsCs => ("contains_cs", terms::contains_cs, true),
        StartsWith => ("startswith", terms::startswith, false),
        NotStartsWith => ("startswith", terms::startswith, true),
        StartsWithCs => ("startswith_cs", terms::startswith_cs, false),
        NotStartsWithCs => ("startswith_cs", terms::startswith_cs, true),
        EndsWith => ("endswith", terms::endswith, false),
        NotEndsWith => ("endswith", terms::endswith, true),
        EndsWithCs => ("endswith_cs", terms::endswith_cs, false),
        NotEndsWithCs => ("endswith_cs", terms::endswith_cs, true),
        _ => return None,
    })
}

fn not_defined(op: &str, l: KqlType, r: KqlType) -> PlanError {
    PlanError::semantic(format!("The operator '{op}' is not defined for the operand types {l} and {r}."))
}

fn cannot_compare(l: KqlType, r: KqlType) -> PlanError {
    PlanError::semantic(format!("Cannot compare values of types {l} and {r}. Try adding explicit casts."))
}

pub(crate) fn is_stringish(t: KqlType) -> bool {
    matches!(t, KqlType::String | KqlType::Guid | KqlType::Dynamic)
}

/// Converts a string-like operand to `string` (dynamic via `tostring`).
pub(crate) fn to_string_operand(e: TypedExpr) -> Result<TypedExpr> {
    match e.ty {
        KqlType::String => Ok(e),
        KqlType::Guid => Ok(TypedExpr::new(e.expr, KqlType::String)),
        _ => lower_cast(e, KqlType::String),
    }
}

/// The common numeric type: decimal dominates, then real, then long (int only with int).
pub(crate) fn numeric_common(a: KqlType, b: KqlType) -> KqlType {
    use KqlType::*;
    if a == Decimal || b == Decimal {
        Decimal
    } else if a == Real || b == Real {
        Real
    } else if a == Int && b == Int {
        Int
    } else {
        Long
    }
}

fn bool_lit(b: bool) -> Expr {
    lit(ScalarValue::Boolean(Some(b)))
}

fn literal_of(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

// ---------- arithmetic ----------

const OP_ADD: i64 = 0;
const OP_SUB: i64 = 1;
const OP_MUL: i64 = 2;
const OP_DIV: i64 = 3;
const OP_MOD: i64 = 4;

fn int_op(op: i64, a: i64, b: i64) -> Option<i64> {
    match op {
        OP_ADD => Some(a.wrapping_add(b)),
        OP_SUB => Some(a.wrapping_sub(b)),
        OP_MUL => Some(a.wrapping_mul(b)),
        OP_DIV => a.checked_div(b),
        // Kusto's modulo is never negative: 0 <= N % D < abs(D).
        OP_MOD => (b != 0).then(|| a.wrapping_rem_euclid(b)),
        _ => None,
    }
}

fn real_op(op: i64, a: f64, b: f64) -> Option<f64> {
    match op {
        OP_ADD => Some(a + b),
        OP_SUB => Some(a - b),
        OP_MUL => Some(a * b),
        OP_DIV => Some(a / b),
        OP_MOD => Some(a.rem_euclid(b)),
        _ => None,
    }
}

fn dec_op(op: i64, a: i128, b: i128) -> Option<i128> {
    let one = super::conversion::DEC_ONE;
    match op {
        OP_ADD => a.checked_add(b),
        OP_SUB => a.checked_sub(b),
        OP_MUL => a.checked_mul(b).map(|p| p / one).or_else(|| (a / one).checked_mul(b)),
        OP_DIV => a.checked_mul(one).and_then(|x| x.checked_div(b)),
        OP_MOD => (b != 0).then(|| a.wrapping_rem_euclid(b)),
        _ => None,
    }
}

/// Row arithmetic over every supported operand combination (see `lower_arith`).
fn arith_row(args: &[ScalarValue], _st: &mut RowState) -> ScalarValue {
    use ScalarValue::*;
    let Some(op) = args.get(2).and_then(sv_i64) else { return Null };
    let (Some(a), Some(b)) = (args.first(), args.get(1)) else { return Null };
    match (a, b) {
        (Int64(x), Int64(y)) => s_i64(x.zip(*y).and_then(|(x, y)| int_op(op, x, y))),
        (Float64(x), Float64(y)) => s_f64(x.zip(*y).and_then(|(x, y)| real_op(op, x, y))),
        (Decimal128(x, p, s), Decimal128(y, _, _)) => {
            Decimal128(x.zip(*y).and_then(|(x, y)| dec_op(op, x, y)), *p, *s)
        }
        (TimestampNanosecond(x, _), TimestampNanosecond(y, _)) if op == OP_SUB => {
            s_dur(x.zip(*y).and_then(|(x, y)| x.checked_sub(y)))
        }
        (TimestampNanosecond(x, _), DurationNanosecond(y)) => s_ts(x.zip(*y).and_then(|(x, y)| match op {
            OP_ADD => x.checked_add(y),
            OP_SUB => x.checked_sub(y),
            _ => None,
        })),
        (DurationNanosecond(x), TimestampNanosecond(y, _)) if op == OP_ADD => {
            s_ts(x.zip(*y).and_then(|(x, y)| x.checked_add(y)))
        }
        (DurationNanosecond(x), DurationNanosecond(y)) => match op {
            OP_DIV => s_f64(x.zip(*y).map(|(x, y)| x as f64 / y as f64)),
            OP_ADD => s_dur(x.zip(*y).and_then(|(x, y)| x.checked_add(y))),
            OP_SUB => s_dur(x.zip(*y).and_then(|(x, y)| x.checked_sub(y))),
            OP_MOD => s_dur(x.zip(*y).and_then(|(x, y)| x.checked_rem_euclid(y))),
            _ => Null,
        },
        (DurationNanosecond(x), Int64(y)) => s_dur(x.zip(*y).and_then(|(x, y)| match op {
            OP_MUL => x.checked_mul(y),
            OP_DIV => x.checked_div(y),
            _ => None,
        })),
        (Int64(x), DurationNanosecond(y)) if op == OP_MUL => s_dur(x.zip(*y).and_then(|(x, y)| x.checked_mul(y))),
        (DurationNanosecond(x), Float64(y)) => s_dur(x.zip(*y).and_then(|(x, y)| match op {
            OP_MUL => f64_to_i64((x as f64 * y).round()),
            OP_DIV => f64_to_i64((x as f64 / y).round()),
            _ => None,
        })),
        (Float64(x), DurationNanosecond(y)) if op == OP_MUL => {
            s_dur(x.zip(*y).and_then(|(x, y)| f64_to_i64((x * y as f64).round())))
        }
        _ => Null,
    }
}

fn arith_call(op: i64, l: Expr, r: Expr, ty: KqlType) -> TypedExpr {
    TypedExpr::new(row_call("arith", ty.arrow_type(), arith_row, vec![l, r, lit(op)]), ty)
}

fn lower_arith(op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr> {
    use KqlType::*;
    let code = match op {
        BinaryOp::Add => OP_ADD,
        BinaryOp::Sub => OP_SUB,
        BinaryOp::Mul => OP_MUL,
        BinaryOp::Div => OP_DIV,
        _ => OP_MOD,
    };
    // A dynamic operand takes the other operand's type.
    let (l, r) = match (l.ty, r.ty) {
        (Dynamic, t) if t != Dynamic && t != String => (lower_cast(l, t)?, r),
        (t, Dynamic) if t != Dynamic && t != String => {
            let r = lower_cast(r, t)?;
            (l, r)
        }
        (Dynamic, Dynamic) => (lower_cast(l, Real)?, lower_cast(r, Real)?),
        _ => (l, r),
    };
    let (lt, rt) = (l.ty, r.ty);
    if lt.is_numeric() && rt.is_numeric() {
        let mut t = numeric_common(lt, rt);
        if t == Int {
            t = Long;
        }
        let l = lower_cast(l, t)?;
        let r = lower_cast(r, t)?;
        let native = match (t, code) {
            (Long, OP_ADD) | (Real, OP_ADD) => Some(Operator::Plus),
            (Long, OP_SUB) | (Real, OP_SUB) => Some(Operator::Minus),
            (Long, OP_MUL) | (Real, OP_MUL) => Some(Operator::Multiply),
            (Real, OP_DIV) => Some(Operator::Divide),
            _ => None,
        };
        return Ok(match native {
            Some(o) => TypedExpr::new(binary_expr(l.expr, o, r.expr), t),
            None => arith_call(code, l.expr, r.expr, t),
        });
    }
    let num = |t: KqlType| matches!(t, Int | Long | Real | Decimal);
    let result = match (lt, rt, code) {
        (Datetime, Datetime, OP_SUB) => Timespan,
        (Datetime, Timespan, OP_ADD | OP_SUB) | (Timespan, Datetime, OP_ADD) => Datetime,
        (Timespan, Timespan, OP_ADD | OP_SUB | OP_MOD) => Timespan,
        (Timespan, Timespan, OP_DIV) => Real,
        (Timespan, t, OP_MUL | OP_DIV) if num(t) => Timespan,
        (t, Timespan, OP_MUL) if num(t) => Timespan,
        _ => return Err(not_defined(op.as_str(), lt, rt)),
    };
    let norm = |e: TypedExpr| -> Result<TypedExpr> {
        match e.ty {
            Int => lower_cast(e, Long),
            Decimal => lower_cast(e, Real),
            _ => Ok(e),
        }
    };
    let l = norm(l)?;
    let r = norm(r)?;
    Ok(arith_call(code, l.expr, r.expr, result))
}

// ---------- comparisons ----------

/// Brings two operands to one comparable type; `ordering` restricts to ordered types.
fn comparable(op: BinaryOp, l: TypedExpr, r: TypedExpr, ordering: bool) -> Result<(TypedExpr, TypedExpr)> {
    use KqlType::*;
    let (lt, rt) = (l.ty, r.ty);
    if lt.is_numeric() && rt.is_numeric() {
        let t = numeric_common(lt, rt);
        return Ok((lower_cast(l, t)?, lower_cast(r, t)?));
    }
    match (lt, rt) {
        (Dynamic, Dynamic) if !ordering => Ok((l, r)),
        (Dynamic, t) if t != String && t != Guid => {
            let t2 = if t == Int { Long } else { t };
            let r = lower_cast(r, t2)?;
            Ok((lower_cast(l, t2)?, r))
        }
        (t, Dynamic) if t != String && t != Guid => {
            let t2 = if t == Int { Long } else { t };
            let l = lower_cast(l, t2)?;
            Ok((l, lower_cast(r, t2)?))
        }
        (a, b) if is_stringish(a) && is_stringish(b) => Ok((to_string_operand(l)?, to_string_operand(r)?)),
        (a, b) if a == b && matches!(a, Bool | Datetime | Timespan) => Ok((l, r)),
        _ if ordering => Err(not_defined(op.as_str(), lt, rt)),
        _ => Err(cannot_compare(lt, rt)),
    }
}

fn is_null(e: Expr) -> Expr {
    Expr::IsNull(Box::new(e))
}
fn is_not_null(e: Expr) -> Expr {
    Expr::IsNotNull(Box::new(e))
}

fn coalesce_empty(e: Expr) -> Expr {
    crate::functions::coalesce(vec![e, lit("")])
}

fn lower_equality(op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr> {
    // `<>` is `!=` written another way.
    let negated = matches!(op, BinaryOp::NotEq | BinaryOp::LtGt);
    let (l, r) = comparable(op, l, r, false)?;
    let dfop = if negated { Operator::NotEq } else { Operator::Eq };
    // Put a literal on the right.
    let (l, r) = if literal_of(&l.expr).is_some() && literal_of(&r.expr).is_none() { (r, l) } else { (l, r) };
    let expr = if l.ty == KqlType::String {
        match literal_of(&r.expr).map(|v| (v.is_null(), sv_str(v).unwrap_or(""))) {
            Some((_, s)) => {
                let cmp = binary_expr(l.expr.clone(), dfop, lit(s));
                // null reads as "": equal to "" only.
                match (s.is_empty(), negated) {
                    (false, false) => is_not_null(l.expr).and(cmp),
                    (false, true) => is_null(l.expr).or(cmp),
                    (true, false) => is_null(l.expr).or(cmp),
                    (true, true) => is_not_null(l.expr).and(cmp),
                }
            }
            None => binary_expr(coalesce_empty(l.expr), dfop, coalesce_empty(r.expr)),
        }
    } else {
        match literal_of(&r.expr) {
            Some(v) if !v.is_null() => {
                let cmp = binary_expr(l.expr.clone(), dfop, r.expr);
                if negated { is_null(l.expr).or(cmp) } else { is_not_null(l.expr).and(cmp) }
            }
            _ => {
                // Kusto: null vs non-null is false for == (true for !=); null vs null is null.
                let both_null = is_null(l.expr.clone()).and(is_null(r.expr.clone()));
                let one_null = is_null(l.expr.clone()).or(is_null(r.expr.clone()));
                when(both_null, lit(ScalarValue::Boolean(None)))
                    .when(one_null, bool_lit(negated))
                    .otherwise(binary_expr(l.expr, dfop, r.expr))?
            }
        }
    };
    Ok(TypedExpr::new(expr, KqlType::Bool))
}

fn lower_ordering(op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr> {
    let dfop = match op {
        BinaryOp::Lt => Operator::Lt,
        BinaryOp::LtEq => Operator::LtEq,
        BinaryOp::Gt => Operator::Gt,
        _ => Operator::GtEq,
    };
    let (l, r) = comparable(op, l, r, true)?;
    Ok(TypedExpr::new(binary_expr(l.expr, dfop, r.expr), KqlType::Bool))
}

// ---------- string operators ----------

fn regex_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let (Some(h), Some(p)) = (args.first(), args.get(1)) else { return s_bool(None) };
    let Some(p) = sv_str(p) else { return s_bool(Some(false)) };
    let h = sv_str_or_empty(h);
    s_bool(st.regex(p).map(|re| re.is_match(h)))
}

/// Rejects a constant regex that does not compile.
pub(crate) fn check_regex_literal(e: &Expr) -> Result<()> {
    if let Some(p) = literal_of(e).and_then(sv_str)
        && let Err(err) = regex::RegexBuilder::new(p).size_limit(1 << 22).build()
    {
        return Err(PlanError::semantic(format!("invalid regular expression '{p}': {err}")));
    }
    Ok(())
}

fn lower_string_op(op: BinaryOp, l: TypedExpr, r: TypedExpr) -> Result<TypedExpr> {
    if !is_stringish(l.ty) || !is_stringish(r.ty) {
        return Err(not_defined(op.as_str(), l.ty, r.ty));
    }
    let l = to_string_operand(l)?;
    let r = to_string_operand(r)?;
    if op == BinaryOp::MatchesRegex {
        check_regex_literal(&r.expr)?;
        return Ok(TypedExpr::new(
            row_call("matches_regex", KqlType::Bool.arrow_type(), regex_row, vec![l.expr, r.expr]),
            KqlType::Bool,
        ));
    }
    let Some((name, f, negated)) = string_pred(op) else {
        return Err(PlanError::unsupported(format!("operator '{}'", op.as_str())));
    };
    let e = str_pred_call(name, f, l.expr, r.expr);
    Ok(TypedExpr::new(if negated { Expr::Not(Box::new(e)) } else { e }, KqlType::Bool))
}

/// `e IS TRUE`: false where `e` is null, unless `e` cannot be null.
pub fn null_as_false(e: Expr) -> Expr {
    use datafusion::logical_expr::BinaryExpr;
    match &e {
        Expr::IsTrue(_) | Expr::IsNotNull(_) | Expr::IsNull(_) | Expr::IsFalse(_) | Expr::IsNotTrue(_) => e,
        Expr::Literal(v, _) if !v.is_null() => e,
        Expr::Literal(_, _) => lit(false),
        // An `and`/`or` of two operands that cannot be null cannot be null.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And | Operator::Or, right })
            if matches!(**left, Expr::IsTrue(_) | Expr::IsNotNull(_) | Expr::IsNull(_))
                && matches!(**right, Expr::IsTrue(_) | Expr::IsNotNull(_) | Expr::IsNull(_)) =>
        {
            e
        }
        _ => Expr::IsTrue(Box::new(e)),
    }
}

/// Lowers a binary operator.
pub fn lower_binary(op: BinaryOp, left: TypedExpr, right: TypedExpr) -> Result<TypedExpr> {
    use BinaryOp::*;
    match op {
        Add | Sub | Mul | Div | Mod => lower_arith(op, left, right),
        Eq | NotEq | LtGt => lower_equality(op, left, right),
        Lt | LtEq | Gt | GtEq => lower_ordering(op, left, right),
        And | Or => {
            if left.ty != KqlType::Bool || right.ty != KqlType::Bool {
                return Err(not_defined(op.as_str(), left.ty, right.ty));
            }
            // Kusto's `and`/`or` read a null operand as false: `bool(null) and true` is false,
            // `bool(null) or false` is false (a `where` drops the row either way; see `as_filter`,
            // which takes the `IS TRUE` off again in a filter, where it changes nothing).
            let (l, r) = (null_as_false(left.expr), null_as_false(right.expr));
            let e = if op == And { l.and(r) } else { l.or(r) };
            Ok(TypedExpr::new(e, KqlType::Bool))
        }
        Colon => Err(PlanError::unsupported("the ':' operator outside search/find")),
        EqTilde | NotEqTilde | Has | NotHas | HasCs | NotHasCs | HasPrefix | NotHasPrefix | HasPrefixCs | NotHasPrefixCs
        | HasSuffix | NotHasSuffix | HasSuffixCs | NotHasSuffixCs | Contains | NotContains | ContainsCs | NotContainsCs
        | StartsWith | NotStartsWith | StartsWithCs | NotStartsWithCs | EndsWith | NotEndsWith | EndsWithCs
        | NotEndsWithCs | MatchesRegex => lower_string_op(op, left, right),
    }
}

fn negate_row(args: &[ScalarValue], _st: &mut RowState) -> ScalarValue {
    match args.first() {
        Some(ScalarValue::Int64(x)) => s_i64(x.map(i64::wrapping_neg)),
        Some(ScalarValue::Int32(x)) => ScalarValue::Int32(x.map(i32::wrapping_neg)),
        Some(ScalarValue::Float64(x)) => s_f64(x.map(|v| -v)),
        Some(ScalarValue::Decimal128(x, p, s)) => ScalarValue::Decimal128(x.and_then(i128::checked_neg), *p, *s),
        Some(ScalarValue::DurationNanosecond(x)) => s_dur(x.map(i64::wrapping_neg)),
        _ => ScalarValue::Null,
    }
}

/// Unary minus.
pub fn lower_negate(e: TypedExpr) -> Result<TypedExpr> {
    let e = if e.ty == KqlType::Dynamic { lower_cast(e, KqlType::Real)? } else { e };
    match e.ty {
        KqlType::Int | KqlType::Long | KqlType::Real | KqlType::Decimal | KqlType::Timespan => {
            let ty = e.ty;
            // A negated literal stays a literal (`range x from -1 to 1 step 1` needs constants).
            if let Expr::Literal(v, _) = &e.expr
                && !v.is_null()
                && let ScalarValue::Float64(_) | ScalarValue::Int64(_) | ScalarValue::Int32(_) | ScalarValue::DurationNanosecond(_) = v
                && let Ok(n) = v.arithmetic_negate()
            {
                return Ok(TypedExpr::new(Expr::Literal(n, None), ty));
            }
            Ok(TypedExpr::new(row_call("negate", ty.arrow_type(), negate_row, vec![e.expr]), ty))
        }
        t => Err(PlanError::semantic(format!("The operator '-' is not defined for the operand type {t}."))),
    }
}

// ---------- in / has_any / between ----------

/// `x in (a, b)`, `!in`, `in~`, `!in~`.
pub fn lower_in_list(e: TypedExpr, list: Vec<TypedExpr>, negated: bool, case_insensitive: bool) -> Result<TypedExpr> {
    use KqlType::*;
    if list.is_empty() {
        return Ok(TypedExpr::new(bool_lit(negated), Bool));
    }
    let stringy = is_stringish(e.ty) && (e.ty != Dynamic || list.iter().all(|i| is_stringish(i.ty)));
    let (e, items) = if stringy || case_insensitive {
        if !is_stringish(e.ty) {
            return Err(not_defined(if negated { "!in~" } else { "in~" }, e.ty, list[0].ty));
        }
        let e = to_string_operand(e)?;
        let items = list.into_iter().map(|i| lower_cast(i, String)).collect::<Result<Vec<_>>>()?;
        (e, items)
    } else {
        let mut t = e.ty;
        if t == Dynamic {
            t = list[0].ty;
        }
        for i in &list {
            if t.is_numeric() && i.ty.is_numeric() {
                t = numeric_common(t, i.ty);
            } else if i.ty != t && i.ty != Dynamic {
                return Err(cannot_compare(e.ty, i.ty));
            }
        }
        let e = lower_cast(e, t)?;
        let items = list.into_iter().map(|i| lower_cast(i, t)).collect::<Result<Vec<_>>>()?;
        (e, items)
    };
    let fold = |x: Expr| -> Expr { datafusion::functions::expr_fn::lower(x) };
    let all_plain_literals = items.iter().all(|i| literal_of(&i.expr).is_some_and(|v| !v.is_null() && sv_str(v) != Some("")));
    let (mut target, mut exprs): (Expr, Vec<Expr>) = (e.expr, items.into_iter().map(|i| i.expr).collect());
    if e.ty == String && !all_plain_literals {
        target = coalesce_empty(target);
        exprs = exprs.into_iter().map(coalesce_empty).collect();
    }
    if case_insensitive {
        target = fold(target);
        exprs = exprs.into_iter().map(fold).collect();
    }
    let inl = target.clone().in_list(exprs, negated);
    let expr = if negated { is_null(target).or(inl) } else { is_not_null(target).and(inl) };
    Ok(TypedExpr::new(expr, Bool))
}

fn balanced(mut xs: Vec<Expr>, and: bool) -> Option<Expr> {
    while xs.len() > 1 {
        let mut next = Vec::with_capacity(xs.len().div_ceil(2));
        let mut it = xs.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => {
                    if and {
                        a.and(b)
                    } else {
                        a.or(b)
                    }
                }
                None => a,
            });
        }
        xs = next;
    }
    xs.pop()
}

fn has_json_row(args: &[ScalarValue], _st: &mut RowState) -> ScalarValue {
    let (Some(h), Some(j), Some(all)) = (args.first(), args.get(1), args.get(2)) else { return s_bool(None) };
    let h = sv_str_or_empty(h);
    let all = super::udf::sv_bool(all).unwrap_or(false);
    let needles: Vec<std::string::String> = match v_of(j, KqlType::Dynamic) {
        super::conversion::V::Json(Json::Array(a)) => a.iter().map(|x| super::conversion::v_to_string(&super::conversion::V::Json(x.clone()))).collect(),
        super::conversion::V::Null => vec![],
        other => vec![super::conversion::v_to_string(&other)],
    };
    s_bool(Some(if all { needles.iter().all(|n| terms::has(h, n)) } else { needles.iter().any(|n| terms::has(h, n)) }))
}

/// `has_any` (all = false) and `has_all` (all = true).
pub fn lower_has_any(e: TypedExpr, list: Vec<TypedExpr>, all: bool) -> Result<TypedExpr> {
    let name = if all { "has_all" } else { "has_any" };
    if !is_stringish(e.ty) {
        return Err(not_defined(name, e.ty, list.first().map_or(KqlType::String, |i| i.ty)));
    }
    let e = to_string_operand(e)?;
    let mut terms_e = Vec::with_capacity(list.len());
    for item in list {
        if item.ty == KqlType::Dynamic {
            terms_e.push(row_call(
                "has_json",
                KqlType::Bool.arrow_type(),
                has_json_row,
                vec![e.expr.clone(), item.expr, lit(all)],
            ));
        } else {
            let item = to_string_operand(lower_cast(item, KqlType::String)?)?;
            terms_e.push(str_pred_call("has", terms::has, e.expr.clone(), item.expr));
        }
    }
    let expr = balanced(terms_e, all).unwrap_or_else(|| bool_lit(all));
    Ok(TypedExpr::new(expr, KqlType::Bool))
}

/// `x between (lo .. hi)`; for datetimes `hi` may be a timespan (then `hi = lo + hi`).
pub fn lower_between(e: TypedExpr, lo: TypedExpr, hi: TypedExpr, negated: bool) -> Result<TypedExpr> {
    let hi = if matches!(e.ty, KqlType::Datetime) && hi.ty == KqlType::Timespan {
        lower_binary(BinaryOp::Add, lo.clone(), hi)?
    } else {
        hi
    };
    let (a, b) = if negated {
        (lower_binary(BinaryOp::Lt, e.clone(), lo)?, lower_binary(BinaryOp::Gt, e, hi)?)
    } else {
        (lower_binary(BinaryOp::GtEq, e.clone(), lo)?, lower_binary(BinaryOp::LtEq, e, hi)?)
    };
    let expr = if negated { a.expr.or(b.expr) } else { a.expr.and(b.expr) };
    Ok(TypedExpr::new(expr, KqlType::Bool))
}
