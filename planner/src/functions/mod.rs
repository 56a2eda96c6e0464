//! KQL scalar operators, scalar functions and aggregates, lowered to DataFusion expressions
//! with Kusto's semantics (null on bad input, case-insensitive operators, term matching).

use datafusion::logical_expr::Expr;

use crate::error::Result;
use crate::types::KqlType;

/// A DataFusion expression with the KQL type of its result.
#[derive(Debug, Clone)]
pub struct TypedExpr {
    pub expr: Expr,
    pub ty: KqlType,
}

impl TypedExpr {
    pub fn new(expr: Expr, ty: KqlType) -> Self {
        TypedExpr { expr, ty }
    }
}

/// Per-request constants the functions need (e.g. `now()` is one instant for the whole request).
#[derive(Debug, Clone)]
pub struct FunctionContext {
    /// `now()` for this request, nanoseconds since the Unix epoch (UTC).
    now_nanos: i64,
    /// Whether `now_nanos` was set by the query (`set query_now`) rather than the clock.
    now_fixed: bool,
    /// Whether a function read the request's clock: such a plan holds this request's instant
    /// and must not be reused for another request (the runtime's plan cache asks).
    clock_read: std::cell::Cell<bool>,
}

impl FunctionContext {
    /// The context of a request that started at `now_nanos` (by the clock).
    pub fn new(now_nanos: i64) -> Self {
        FunctionContext { now_nanos, now_fixed: false, clock_read: std::cell::Cell::new(false) }
    }

    /// Fixes `now()` to an instant the query chose (`set query_now = ...`).
    pub fn fix_now(&mut self, now_nanos: i64) {
        self.now_nanos = now_nanos;
        self.now_fixed = true;
    }

    /// `now()` for this request, recording a read of the clock.
    pub fn now(&self) -> i64 {
        if !self.now_fixed {
            self.clock_read.set(true);
        }
        self.now_nanos
    }

    /// Whether a function read the request's clock (not an instant the query fixed).
    pub fn clock_read(&self) -> bool {
        self.clock_read.get()
    }

    /// Records that `other` (a policy's own context) read the request's clock.
    pub fn absorb(&self, other: &FunctionContext) {
        if other.clock_read() {
            self.clock_read.set(true);
        }
    }
}

mod aggregate;
mod conversion;
mod datetime;
mod dynamic;
mod extra;
mod math;
mod more;
mod operators;
mod string;
pub mod terms;
mod udf;
mod weighted;
pub(crate) mod misc2;

#[cfg(test)]
mod tests;

pub use aggregate::{AggregateLowering, is_aggregate, is_multi_column_aggregate, lower_aggregate_call, lower_aggregate_columns};
pub use conversion::{lower_cast, lower_parse_json};
pub use dynamic::lower_index;
pub use extra::{mv_expand_call, mv_expand_type};
pub use operators::{BinaryOp, lower_between, lower_binary, lower_has_any, lower_in_list, lower_negate};

use crate::error::PlanError;

/// The first non-null argument, as the `CASE` DataFusion's `coalesce` stands for: its
/// `coalesce` cannot be evaluated, only simplified into this, which would keep every plan
/// holding one from being lowered directly (`crate::direct`).
pub(crate) fn coalesce(mut args: Vec<Expr>) -> Expr {
    let Some(last) = args.pop() else { return Expr::Literal(datafusion::common::ScalarValue::Null, None) };
    if args.is_empty() {
        return last;
    }
    let when_then = args.into_iter().map(|a| (Box::new(Expr::IsNotNull(Box::new(a.clone()))), Box::new(a))).collect();
    Expr::Case(datafusion::logical_expr::expr::Case::new(None, when_then, Some(Box::new(last))))
}

/// Checks an argument count.
pub(crate) fn arity(name: &str, n: usize, lo: usize, hi: usize) -> Result<()> {
    if n < lo || n > hi {
        let expect = if lo == hi { lo.to_string() } else { format!("{lo} to {hi}") };
        return Err(PlanError::semantic(format!("function '{name}' expects {expect} arguments, got {n}")));
    }
    Ok(())
}

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
            t = operators::numeric_common(t, *u);
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
    let exprs = args.into_iter().map(|a| conversion::lower_cast(a, t).map(|x| x.expr)).collect::<Result<Vec<_>>>()?;
    Ok((exprs, t))
}

fn bool_arg(e: TypedExpr, name: &str) -> Result<Expr> {
    match e.ty {
        KqlType::Bool => Ok(e.expr),
        KqlType::Dynamic => Ok(conversion::lower_cast(e, KqlType::Bool)?.expr),
        t => Err(PlanError::semantic(format!("function '{name}': a value of type bool expected, got {t}"))),
    }
}

fn extreme_row(args: &[datafusion::common::ScalarValue], _: &mut udf::RowState) -> datafusion::common::ScalarValue {
    // args[0] = 1 for max, 0 for min; nulls are ignored.
    let max = args.first().and_then(udf::sv_i64) == Some(1);
    let mut best: Option<&datafusion::common::ScalarValue> = None;
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
    best.cloned().unwrap_or(datafusion::common::ScalarValue::Null)
}

fn lower_logic_fn(name: &str, mut args: Vec<TypedExpr>) -> Option<Result<TypedExpr>> {
    use datafusion::logical_expr::{lit, when};
    let n = args.len();
    let r = (|| -> Result<TypedExpr> {
        match name {
            "iff" | "iif" => {
                arity(name, n, 3, 3)?;
                let c = bool_arg(args.remove(0), name)?;
                let (mut v, t) = to_common(name, args)?;
                let b = v.pop().ok_or_else(|| PlanError::Internal("iff".into()))?;
                let a = v.pop().ok_or_else(|| PlanError::Internal("iff".into()))?;
                Ok(TypedExpr::new(when(c, a).otherwise(b)?, t))
            }
            "case" => {
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
            "coalesce" => {
                arity(name, n, 1, 64)?;
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
                Ok(TypedExpr::new(coalesce(v), t))
            }
            "not" => {
                arity(name, n, 1, 1)?;
                Ok(TypedExpr::new(Expr::Not(Box::new(bool_arg(args.remove(0), name)?)), KqlType::Bool))
            }
            "min_of" | "max_of" => {
                arity(name, n, 1, 64)?;
                let (mut v, t) = to_common(name, args)?;
                if t == KqlType::Dynamic {
                    return Err(PlanError::semantic(format!("function '{name}' is not defined for dynamic values")));
                }
                v.insert(0, lit(i64::from(name == "max_of")));
                Ok(TypedExpr::new(udf::row_call(name, t.arrow_type(), extreme_row, v), t))
            }
            _ => Err(PlanError::Internal(String::new())),
        }
    })();
    match r {
        Err(PlanError::Internal(m)) if m.is_empty() => None,
        other => Some(other),
    }
}

/// Scalar function call by KQL name (case-sensitive, as Kusto). Anything not implemented is
/// `PlanError::Unsupported("function 'name'")`.
pub fn lower_scalar_call(name: &str, args: Vec<TypedExpr>, ctx: &FunctionContext) -> Result<TypedExpr> {
    if let Some(r) = conversion::lower_conversion_fn(name, args.clone()) {
        return r;
    }
    if string::NAMES.contains(&name) {
        return string::lower_string_fn(name, args);
    }
    if math::NAMES.contains(&name) {
        return math::lower_math_fn(name, args);
    }
    if datetime::NAMES.contains(&name) {
        return datetime::lower_datetime_fn(name, args, ctx);
    }
    if dynamic::NAMES.contains(&name) {
        return dynamic::lower_dynamic_fn(name, args);
    }
    if extra::NAMES.contains(&name) {
        return extra::lower_extra_fn(name, args);
    }
    if more::NAMES.contains(&name) {
        return more::lower_more_fn(name, args, ctx);
    }
    if misc2::NAMES.contains(&name) {
        return misc2::lower_misc2_fn(name, args);
    }
    if let Some(r) = lower_logic_fn(name, args) {
        return r;
    }
    if is_aggregate(name) {
        return Err(PlanError::semantic(format!("aggregate function '{name}' is only allowed in summarize")));
    }
    Err(PlanError::unsupported(format!("function '{name}'")))
}

/// Every function name of the KQL reference (scalar, aggregate and plugin), as the official
/// parser (Kusto.Language's `GlobalState.Default`) lists them, one per line.
const KUSTO_BUILTINS: &str = include_str!("kusto_builtins.txt");

/// Names the binder gives a meaning of its own (tabular functions, principal functions).
const BINDER_BUILTINS: &[&str] = &[
    "table", "database", "cluster", "materialize", "materialized_view", "external_table", "view", "toscalar", "assert",
    "current_principal", "current_principal_details", "current_principal_is_member_of", "current_database",
    "current_cluster_endpoint", "iff", "iif", "case", "coalesce", "not", "min_of", "max_of",
];

/// Whether `name` is a built-in function of KQL (implemented here or not): a stored function
/// may not take such a name, and a call of it always means the built-in, so that no function
/// defined later changes what a query, and above all a row-level security policy, computes.
pub fn is_builtin_function(name: &str) -> bool {
    BINDER_BUILTINS.contains(&name)
        || KUSTO_BUILTINS.lines().any(|l| l == name)
        || string::NAMES.contains(&name)
        || math::NAMES.contains(&name)
        || datetime::NAMES.contains(&name)
        || dynamic::NAMES.contains(&name)
        || extra::NAMES.contains(&name)
        || more::NAMES.contains(&name)
        || misc2::NAMES.contains(&name)
        || is_aggregate(name)
        || conversion::lower_conversion_fn(name, Vec::new()).is_some()
}

// Literal parsing and formatting shared with the binder (datetime/guid/decimal literals,
// dynamic literal values).
pub(crate) use conversion::{
    MAX_DATETIME, MIN_DATETIME, datetime_out_of_range, format_datetime_iso, format_timespan_c, parse_datetime, parse_decimal, parse_guid,
};
