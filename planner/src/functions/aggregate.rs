//! KQL aggregate functions: DataFusion built-ins where their semantics match Kusto's, custom
//! UDAFs for `make_list`/`make_set`/`make_bag` (JSON text results) and `percentile(s)`
//! (nearest-rank, result in the input's type). `*if` variants use aggregate `FILTER`.
//!
//! Default column names follow Kusto (checked with the official parser): `count_`,
//! `sum_Amount`, `list_x`, `set_x`, `bag_x`, `percentile_x_50`, `percentile_x_99_9`,
//! `take_any(x)` -> `x`, `any(x)` -> `any_x`, `arg_max(ts, x)` -> `ts`, `x`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::functions_aggregate::{
    average::avg_udaf, count::count_udaf, first_last::first_value_udaf, min_max::max_udaf, min_max::min_udaf,
    bit_and_or_xor::{bit_and_udaf, bit_or_udaf, bit_xor_udaf}, stddev::stddev_pop_udaf, stddev::stddev_udaf, sum::sum_udaf,
    variance::var_pop_udaf, variance::var_samp_udaf, covariance::covar_pop_udaf, covariance::covar_samp_udaf,
};
use datafusion::logical_expr::expr::NullTreatment;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprFunctionExt, Signature, SortExpr, Volatility, lit,
};
use serde_json::{Map, Value as Json};

use super::TypedExpr;
use super::conversion::lower_cast;
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// An aggregate call lowered to DataFusion.
#[derive(Debug, Clone)]
pub struct AggregateLowering {
    /// The aggregate expression (unaliased) to put in an `Aggregate` node.
    pub expr: Expr,
    pub ty: KqlType,
    /// Kusto's default result column name (the caller de-duplicates: `sum_a1`).
    pub default_name: String,
}

fn build(b: datafusion::logical_expr::expr_fn::ExprFuncBuilder) -> Result<Expr> {
    Ok(b.build()?)
}

fn with_filter(e: Expr, filter: Option<Expr>) -> Result<Expr> {
    match filter {
        Some(f) => build(e.filter(f)),
        None => Ok(e),
    }
}

fn bool_pred(e: TypedExpr, fname: &str) -> Result<Expr> {
    match e.ty {
        KqlType::Bool => Ok(e.expr),
        KqlType::Dynamic => Ok(lower_cast(e, KqlType::Bool)?.expr),
        t => Err(PlanError::semantic(format!("function '{fname}': the predicate must be bool, got {t}"))),
    }
}

fn const_i64(e: &TypedExpr, fname: &str) -> Result<i64> {
    super::fold_constant(&e.expr)
        .as_ref()
        .and_then(super::udf::sv_i64)
    .ok_or_else(|| PlanError::semantic(format!("function '{fname}': expected a constant integer")))
}

fn const_f64(e: &TypedExpr, fname: &str) -> Result<f64> {
    super::fold_constant(&e.expr)
        .as_ref()
        .and_then(super::udf::sv_f64)
    .ok_or_else(|| PlanError::semantic(format!("function '{fname}': expected a constant number")))
}

fn orderable(e: &TypedExpr, fname: &str) -> Result<()> {
    if e.ty == KqlType::Dynamic {
        return Err(PlanError::semantic(format!(
            "function '{fname}': the argument value must be orderable: a number, timespan, datetime, string or boolean"
        )));
    }
    Ok(())
}

/// The result column name's suffix: the first argument's column name, if it is a column.
pub(super) fn suffix(arg_names: &[Option<String>]) -> String {
    arg_names.first().cloned().flatten().unwrap_or_default()
}

/// Whether `name` is the `*if` variant of an aggregate (`sumif`, `make_list_if`...; `countif`
/// has a form of its own).
fn is_if(name: &str) -> bool {
    name.ends_with("if") && name != "countif"
}

/// The value, the predicate of an `*if` variant and the remaining arguments of an aggregate
/// of the common form `f(value[, extra...])` / `fif(value, predicate[, extra...])` (the table
/// checked that they are there).
fn value_and_filter(name: &str, mut args: Vec<TypedExpr>) -> Result<(TypedExpr, Option<Expr>, Vec<TypedExpr>)> {
    let v = args.remove(0);
    if is_if(name) {
        let p = bool_pred(args.remove(0), name)?;
        return Ok((v, Some(p), args));
    }
    Ok((v, None, args))
}

/// `count()`, or `count(pred)` counting the rows where `pred` holds.
pub(super) fn lower_count(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    // `count(pred)` counts the rows where pred holds; `count(x)` of a non-bool value counts
    // every row, nulls included (the summarize page's documented output).
    let filter = match args.pop() {
        Some(p) if matches!(p.ty, KqlType::Bool | KqlType::Dynamic) => Some(bool_pred(p, name)?),
        Some(_) | None => None,
    };
    let expr = with_filter(count_udaf().call(vec![lit(1i64)]), filter)?;
    Ok(AggregateLowering { expr, ty: KqlType::Long, default_name: format!("count_{}", suffix(&arg_names)) })
}

pub(super) fn lower_countif(name: &str, mut args: Vec<TypedExpr>, _: Vec<Option<String>>) -> Result<AggregateLowering> {
    let p = bool_pred(args.remove(0), name)?;
    let expr = build(count_udaf().call(vec![lit(1i64)]).filter(p))?;
    Ok(AggregateLowering { expr, ty: KqlType::Long, default_name: "countif_".into() })
}

/// `percentile(value, p)`: nearest rank, in the value's type.
pub(super) fn lower_percentile(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let p = const_f64(&args[1], name)?;
    let v = args.remove(0);
    let (expr, ty) = percentile_expr(v, p)?;
    Ok(AggregateLowering { expr, ty, default_name: format!("percentile_{}_{}", suffix(&arg_names), pct_name(p)) })
}

/// `percentiles_array(value, p1, p2, ...)` or `percentiles_array(value, dynamic([p1, ...]))`.
pub(super) fn lower_percentiles_array(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    use KqlType::*;
    if args.len() < 2 {
        return Err(PlanError::semantic("function 'percentiles_array' expects a value and the percentiles"));
    }
    let v = args.remove(0);
    let mut ps = Vec::new();
    for a in &args {
        match (&a.expr, a.ty) {
            (Expr::Literal(ScalarValue::Utf8(Some(text)), _), KqlType::Dynamic) => {
                let Ok(Json::Array(items)) = serde_json::from_str::<Json>(text) else {
                    return Err(PlanError::semantic("function 'percentiles_array': expected an array of numbers"));
                };
                for i in items {
                    ps.push(i.as_f64().ok_or_else(|| PlanError::semantic("function 'percentiles_array': expected an array of numbers"))?);
                }
            }
            _ => ps.push(const_f64(a, name)?),
        }
    }
    let v = match v.ty {
        Int | Long | Bool => lower_cast(v, Long)?,
        Decimal | Dynamic | Real => lower_cast(v, Real)?,
        t => return Err(PlanError::unsupported(format!("percentiles_array of {t}"))),
    };
    if ps.iter().any(|p| !(0.0..=100.0).contains(p)) {
        return Err(PlanError::semantic("percentile must be between 0 and 100"));
    }
    let udaf = AggregateUDF::new_from_impl(KqlPercentile::array(ps, v.ty.arrow_type()));
    Ok(AggregateLowering { expr: udaf.call(vec![v.expr]), ty: Dynamic, default_name: format!("percentiles_{}", suffix(&arg_names)) })
}

/// `percentilew(value, weight, p)`.
pub(super) fn lower_percentilew(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let p = const_f64(&args[2], name)?;
    let w = args.remove(1);
    let v = args.remove(0);
    let (expr, ty) = percentile_w_expr(v, w, vec![p], false)?;
    Ok(AggregateLowering { expr, ty, default_name: format!("percentile_{}_{}", suffix(&arg_names), pct_name(p)) })
}

/// `percentilesw_array(value, weight, p1, ...)`.
pub(super) fn lower_percentilesw_array(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    if args.len() < 3 {
        return Err(PlanError::semantic("function 'percentilesw_array' expects a value, a weight and the percentiles"));
    }
    let v = args.remove(0);
    let w = args.remove(0);
    let ps = percentile_list(&args, name)?;
    let (expr, _) = percentile_w_expr(v, w, ps, true)?;
    Ok(AggregateLowering { expr, ty: KqlType::Dynamic, default_name: format!("percentiles_{}", suffix(&arg_names)) })
}

/// `make_list_with_nulls(value[, max])`.
pub(super) fn lower_make_list_with_nulls(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let max = match args.get(1) {
        Some(m) => usize::try_from(const_i64(m, name)?.max(0)).unwrap_or(0),
        None => 1_048_576,
    };
    let v = lower_cast(args.remove(0), KqlType::Dynamic)?;
    let udaf = AggregateUDF::new_from_impl(KqlCollect::with_nulls(max));
    Ok(AggregateLowering { expr: udaf.call(vec![v.expr]), ty: KqlType::Dynamic, default_name: format!("list_{}", suffix(&arg_names)) })
}

/// `sum(value)` / `sumif(value, predicate)`.
pub(super) fn lower_sum(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    use KqlType::*;
    let (value, filter, extra) = value_and_filter(name, args)?;
    if !extra.is_empty() {
        return Err(PlanError::semantic(format!("function '{name}': too many arguments")));
    }
    let v = match value.ty {
        Int | Bool => lower_cast(value, Long)?,
        Dynamic => lower_cast(value, Real)?,
        Long | Real | Decimal | Timespan => value,
        t => return Err(PlanError::semantic(format!("function '{name}' is not defined for {t}"))),
    };
    let ty = v.ty;
    let expr = with_filter(zero_default(sum_udaf(), ty, vec![v.expr]), filter)?;
    Ok(AggregateLowering { expr, ty, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `avg(value)` / `avgif(value, predicate)`.
pub(super) fn lower_avg(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    use KqlType::*;
    let (value, filter, _) = value_and_filter(name, args)?;
    let v = match value.ty {
        Int | Long | Bool | Dynamic => lower_cast(value, Real)?,
        Real | Timespan => value,
        Decimal => return Err(PlanError::unsupported("avg of decimal")),
        t => return Err(PlanError::semantic(format!("function '{name}' is not defined for {t}"))),
    };
    let ty = if v.ty == Timespan { Timespan } else { Real };
    // The average of no value is NaN (0/0), as the summarize reference shows for no rows.
    let avg = if ty == Real {
        with_default(avg_udaf(), "nan", ScalarValue::Float64(Some(f64::NAN)), vec![v.expr])
    } else {
        avg_udaf().call(vec![v.expr])
    };
    let expr = with_filter(avg, filter)?;
    Ok(AggregateLowering { expr, ty, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `min`, `max`, `minif`, `maxif`.
pub(super) fn lower_min_max(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let (value, filter, _) = value_and_filter(name, args)?;
    orderable(&value, name)?;
    let ty = value.ty;
    let f = if name.starts_with("min") { min_udaf() } else { max_udaf() };
    let expr = with_filter(f.call(vec![value.expr]), filter)?;
    Ok(AggregateLowering { expr, ty, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `stdev`, `variance`, `stdevp`, `variancep` and their `*if` variants.
pub(super) fn lower_stdev_variance(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let (value, filter, _) = value_and_filter(name, args)?;
    if !(value.ty.is_numeric() || value.ty == KqlType::Dynamic || value.ty == KqlType::Bool) {
        return Err(PlanError::semantic(format!("function '{name}' is not defined for {}", value.ty)));
    }
    let v = lower_cast(value, KqlType::Real)?;
    let f = match name.trim_end_matches("if") {
        "stdev" => stddev_udaf(),
        "variance" => var_samp_udaf(),
        "stdevp" => stddev_pop_udaf(),
        _ => var_pop_udaf(),
    };
    let expr = with_filter(zero_default(f, KqlType::Real, vec![v.expr]), filter)?;
    Ok(AggregateLowering { expr, ty: KqlType::Real, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `covariance(x, y)` (sample), `covariancep(x, y)` (population) and their `*if` variants
/// (`covarianceif(x, y, predicate)`): rows where either value is null are left out; like
/// `variance`, no rows give 0. The default column is named after the first argument
/// (`covariance_x`), as the official parser names it.
pub(super) fn lower_covariance(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let filter = if is_if(name) { Some(bool_pred(args.remove(2), name)?) } else { None };
    let mut values = Vec::with_capacity(2);
    for v in args {
        if !(v.ty.is_numeric() || v.ty == KqlType::Dynamic || v.ty == KqlType::Bool) {
            return Err(PlanError::semantic(format!("function '{name}' is not defined for {}", v.ty)));
        }
        values.push(lower_cast(v, KqlType::Real)?.expr);
    }
    let f = if name.starts_with("covariancep") { covar_pop_udaf() } else { covar_samp_udaf() };
    let expr = with_filter(zero_default(f, KqlType::Real, values), filter)?;
    Ok(AggregateLowering { expr, ty: KqlType::Real, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `dcount` / `count_distinct` and their `*if` variants; dcount's optional accuracy argument
/// is accepted, Kustodian counts exactly.
pub(super) fn lower_dcount(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let (value, filter, _) = value_and_filter(name, args)?;
    // The filter must be set on the same builder as DISTINCT: `Expr::filter` on an already-built
    // distinct aggregate loses it.
    let b = count_udaf().call(vec![value.expr]).distinct();
    let expr = match filter {
        Some(f) => build(b.filter(f))?,
        None => build(b)?,
    };
    Ok(AggregateLowering { expr, ty: KqlType::Long, default_name: format!("{name}_{}", suffix(&arg_names)) })
}

/// `make_list`, `make_set`, `make_bag` and their `*_if` variants, with an optional maximum
/// size.
pub(super) fn lower_make_collection(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let (value, filter, extra) = value_and_filter(name, args)?;
    let max = match extra.first() {
        Some(m) => usize::try_from(const_i64(m, name)?.max(0)).unwrap_or(0),
        None => 1_048_576,
    };
    let (kind, prefix) = if name.starts_with("make_list") {
        (CollectKind::List, "list")
    } else if name.starts_with("make_set") {
        (CollectKind::Set, "set")
    } else {
        (CollectKind::Bag, "bag")
    };
    let v = lower_cast(value, KqlType::Dynamic)?;
    let udaf = AggregateUDF::new_from_impl(KqlCollect::new(kind, max));
    let expr = with_filter(udaf.call(vec![v.expr]), filter)?;
    Ok(AggregateLowering { expr, ty: KqlType::Dynamic, default_name: format!("{prefix}_{}", suffix(&arg_names)) })
}

/// `binary_all_and`, `binary_all_or`, `binary_all_xor`.
pub(super) fn lower_binary_all(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    use KqlType::*;
    let (value, filter, _) = value_and_filter(name, args)?;
    let v = match value.ty {
        Int | Long | Bool => lower_cast(value, Long)?,
        t => return Err(PlanError::semantic(format!("function '{name}' is not defined for {t}"))),
    };
    let f = match name {
        "binary_all_and" => bit_and_udaf(),
        "binary_all_or" => bit_or_udaf(),
        _ => bit_xor_udaf(),
    };
    let suffix = suffix(&arg_names);
    let default_name = if suffix.is_empty() { format!("{name}_") } else { suffix };
    Ok(AggregateLowering { expr: with_filter(f.call(vec![v.expr]), filter)?, ty: Long, default_name })
}

/// `take_anyif(value, predicate)` (alias `anyif`).
pub(super) fn lower_take_anyif(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<AggregateLowering> {
    let (value, filter, _) = value_and_filter(name, args)?;
    let ty = value.ty;
    let b = first_value_udaf().call(vec![value.expr]).null_treatment(NullTreatment::IgnoreNulls);
    let expr = match filter {
        Some(f) => build(b.filter(f))?,
        None => build(b)?,
    };
    let suffix = suffix(&arg_names);
    let default_name = if name == "anyif" {
        format!("anyif_{suffix}")
    } else if suffix.is_empty() {
        "take_anyif_".into()
    } else {
        suffix
    };
    Ok(AggregateLowering { expr, ty, default_name })
}

fn pct_name(p: f64) -> String {
    super::conversion::format_real(p).replace(['.', '-'], "_")
}

fn percentile_expr(v: TypedExpr, p: f64) -> Result<(Expr, KqlType)> {
    use KqlType::*;
    if !(0.0..=100.0).contains(&p) {
        return Err(PlanError::semantic("percentile must be between 0 and 100"));
    }
    let v = match v.ty {
        Int => lower_cast(v, Long)?,
        Decimal | Dynamic => lower_cast(v, Real)?,
        Long | Real | Datetime | Timespan => v,
        t => return Err(PlanError::unsupported(format!("percentile of {t}"))),
    };
    let ty = v.ty;
    let udaf = AggregateUDF::new_from_impl(KqlPercentile::new(p, ty.arrow_type()));
    Ok((udaf.call(vec![v.expr]), ty))
}

/// The percentiles of `percentiles_array`-style calls: constants or constant dynamic arrays.
fn percentile_list(args: &[TypedExpr], name: &str) -> Result<Vec<f64>> {
    let mut ps = Vec::new();
    for a in args {
        match (&a.expr, a.ty) {
            (Expr::Literal(ScalarValue::Utf8(Some(text)), _), KqlType::Dynamic) => {
                let Ok(Json::Array(items)) = serde_json::from_str::<Json>(text) else {
                    return Err(PlanError::semantic(format!("function '{name}': expected an array of numbers")));
                };
                for i in items {
                    ps.push(i.as_f64().ok_or_else(|| PlanError::semantic(format!("function '{name}': expected an array of numbers")))?);
                }
            }
            _ => ps.push(const_f64(a, name)?),
        }
    }
    if ps.iter().any(|p| !(0.0..=100.0).contains(p)) {
        return Err(PlanError::semantic("percentile must be between 0 and 100"));
    }
    Ok(ps)
}

/// Weighted nearest-rank percentile(s) of `v` with weights `w` (see `weighted_percentile.rs`).
fn percentile_w_expr(v: TypedExpr, w: TypedExpr, ps: Vec<f64>, array: bool) -> Result<(Expr, KqlType)> {
    use KqlType::*;
    if ps.iter().any(|p| !(0.0..=100.0).contains(p)) {
        return Err(PlanError::semantic("percentile must be between 0 and 100"));
    }
    let v = match v.ty {
        Int | Bool => lower_cast(v, Long)?,
        Decimal | Dynamic => lower_cast(v, Real)?,
        Long | Real | Datetime | Timespan => v,
        t => return Err(PlanError::unsupported(format!("weighted percentile of {t}"))),
    };
    if array && !matches!(v.ty, Long | Real) {
        return Err(PlanError::unsupported(format!("percentilesw_array of {}", v.ty)));
    }
    let w = match w.ty {
        Long => w,
        Int | Real | Decimal | Dynamic | Bool => lower_cast(w, Long)?,
        t => return Err(PlanError::semantic(format!("the weight of a weighted percentile must be a number, not {t}"))),
    };
    let ty = v.ty;
    Ok((super::weighted_percentile::percentile_w_call(v.expr, w.expr, ps, array, ty.arrow_type()), ty))
}

/// `percentiles(value, p1, p2, ...)`: one column per percentile.
pub(super) fn lower_percentiles(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<Vec<AggregateLowering>> {
    if args.len() < 2 {
        return Err(PlanError::semantic("function 'percentiles' expects a value and at least one percentile"));
    }
    let v = args.remove(0);
    let mut out = Vec::new();
    for p in &args {
        let p = const_f64(p, name)?;
        let (expr, ty) = percentile_expr(v.clone(), p)?;
        out.push(AggregateLowering { expr, ty, default_name: format!("percentile_{}_{}", suffix(&arg_names), pct_name(p)) });
    }
    Ok(out)
}

/// `percentilesw(value, weight, p1, p2, ...)`: one column per percentile.
pub(super) fn lower_percentilesw(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<Vec<AggregateLowering>> {
    if args.len() < 3 {
        return Err(PlanError::semantic("function 'percentilesw' expects a value, a weight and at least one percentile"));
    }
    let v = args.remove(0);
    let w = args.remove(0);
    let mut out = Vec::new();
    for p in &args {
        let p = const_f64(p, name)?;
        let (expr, ty) = percentile_w_expr(v.clone(), w.clone(), vec![p], false)?;
        out.push(AggregateLowering { expr, ty, default_name: format!("percentile_{}_{}", suffix(&arg_names), pct_name(p)) });
    }
    Ok(out)
}

/// `take_any(a, b, ...)` (alias `any`): one column per argument, named after it (`any`'s
/// columns are `any_a`, ...).
pub(super) fn lower_take_any(name: &str, args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<Vec<AggregateLowering>> {
    let nm = |i: usize| arg_names.get(i).cloned().flatten();
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let ty = a.ty;
            let expr = build(first_value_udaf().call(vec![a.expr]).null_treatment(NullTreatment::IgnoreNulls))?;
            let default_name = match (name, nm(i)) {
                ("any", Some(c)) => format!("any_{c}"),
                ("any", None) => "any_".to_string(),
                (_, Some(c)) => c,
                (_, None) => format!("any_arg{i}"),
            };
            Ok(AggregateLowering { expr, ty, default_name })
        })
        .collect()
}

/// `arg_max(by, c1, c2, ...)` / `arg_min(...)`: the extreme of `by`, then the other columns of
/// a row holding it.
pub(super) fn lower_arg_extreme(name: &str, mut args: Vec<TypedExpr>, arg_names: Vec<Option<String>>) -> Result<Vec<AggregateLowering>> {
    let nm = |i: usize| arg_names.get(i).cloned().flatten();
    let by = args.remove(0);
    orderable(&by, name)?;
    let max = name == "arg_max";
    let f = if max { max_udaf() } else { min_udaf() };
    let mut out = vec![AggregateLowering {
        expr: f.call(vec![by.expr.clone()]),
        ty: by.ty,
        default_name: nm(0).unwrap_or_else(|| if max { "max_".into() } else { "min_".into() }),
    }];
    for (i, a) in args.into_iter().enumerate() {
        // Nulls last: the row with the extreme value, or (when every value is null) a row of
        // the group all the same, as Kusto does.
        let sort = SortExpr::new(by.expr.clone(), !max, false);
        let expr = build(first_value_udaf().call(vec![a.expr]).order_by(vec![sort]))?;
        out.push(AggregateLowering { expr, ty: a.ty, default_name: nm(i + 1).unwrap_or_else(|| format!("{name}_arg{}", i + 1)) });
    }
    Ok(out)
}

// ---------- make_list / make_set / make_bag ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CollectKind {
    List,
    Set,
    Bag,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KqlCollect {
    kind: CollectKind,
    max: usize,
    /// `make_list_with_nulls`: nulls are kept as `null` elements.
    nulls: bool,
    name: String,
    signature: Signature,
}

impl KqlCollect {
    fn new(kind: CollectKind, max: usize) -> Self {
        KqlCollect {
            kind,
            max,
            nulls: false,
            name: format!("kql_make_{kind:?}_{max}").to_lowercase(),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn with_nulls(max: usize) -> Self {
        KqlCollect { nulls: true, name: format!("kql_make_list_with_nulls_{max}"), ..KqlCollect::new(CollectKind::List, max) }
    }
}

impl AggregateUDFImpl for KqlCollect {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(CollectAcc {
            kind: self.kind,
            max: self.max,
            nulls: self.nulls,
            items: Vec::new(),
            seen: HashSet::new(),
            bag: Map::new(),
            bytes: 0,
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[items]", args.name), DataType::Utf8, true))])
    }
    fn default_value(&self, _data_type: &DataType) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(if self.kind == CollectKind::Bag { "{}".into() } else { "[]".into() })))
    }
}

#[derive(Debug)]
struct CollectAcc {
    kind: CollectKind,
    max: usize,
    nulls: bool,
    items: Vec<Json>,
    seen: HashSet<String>,
    bag: Map<String, Json>,
    bytes: usize,
}

impl CollectAcc {
    fn add(&mut self, j: Json) {
        match self.kind {
            CollectKind::List => {
                if self.items.len() < self.max {
                    self.bytes += 16;
                    self.items.push(j);
                }
            }
            CollectKind::Set => {
                if self.items.len() < self.max {
                    let key = j.to_string();
                    if !self.seen.contains(&key) {
                        self.bytes += key.len() * 2 + 32;
                        self.seen.insert(key);
                        self.items.push(j);
                    }
                }
            }
            CollectKind::Bag => {
                if let Json::Object(m) = j {
                    for (k, v) in m {
                        if self.bag.len() < self.max && !self.bag.contains_key(&k) {
                            self.bytes += k.len() + 32;
                            self.bag.insert(k, v);
                        }
                    }
                }
            }
        }
    }

    fn add_texts(&mut self, arr: &ArrayRef, unpack: bool) {
        let Some(sa) = arr.as_any().downcast_ref::<StringArray>() else { return };
        for i in 0..sa.len() {
            if sa.is_null(i) {
                if self.nulls && !unpack {
                    self.add(Json::Null);
                }
                continue;
            }
            let Ok(j) = serde_json::from_str::<Json>(sa.value(i)) else { continue };
            match (unpack, j) {
                (false, Json::Null) if self.nulls => self.add(Json::Null),
                (_, Json::Null) => {}
                (true, Json::Array(a)) if self.kind != CollectKind::Bag => a.into_iter().for_each(|x| self.add(x)),
                (_, j) => self.add(j),
            }
        }
    }

    fn text(&self) -> String {
        match self.kind {
            CollectKind::Bag => Json::Object(self.bag.clone()).to_string(),
            _ => Json::Array(self.items.clone()).to_string(),
        }
    }
}

impl Accumulator for CollectAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(a) = values.first() {
            // make_set and make_list unpack an array into its elements: the make_set reference
            // shows the set of an array column's elements, and make_list concatenates arrays
            // (the geo_point_in_polygon reference folds polygons into a multipolygon with
            // make_list(pack_array(coordinates))). make_list_with_nulls keeps every value.
            self.add_texts(a, !self.nulls);
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Utf8(Some(self.text())))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Utf8(Some(self.text()))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        if let Some(a) = states.first() {
            self.add_texts(a, true);
        }
        Ok(())
    }
}

// ---------- percentile ----------

#[derive(Debug)]
struct KqlPercentile {
    /// The percentiles; one unless `array`.
    ps: Vec<f64>,
    /// `percentiles_array`: the result is a JSON array of the percentiles.
    array: bool,
    ret: DataType,
    name: String,
    signature: Signature,
}

impl KqlPercentile {
    fn new(p: f64, ret: DataType) -> Self {
        KqlPercentile { ps: vec![p], array: false, name: format!("kql_percentile_{p}"), ret, signature: Signature::any(1, Volatility::Immutable) }
    }

    /// `ret` is the value type (Int64 or Float64); the aggregate returns JSON text.
    fn array(ps: Vec<f64>, ret: DataType) -> Self {
        let name = format!("kql_percentiles_array_{ps:?}");
        KqlPercentile { ps, array: true, name, ret, signature: Signature::any(1, Volatility::Immutable) }
    }
}
impl PartialEq for KqlPercentile {
    fn eq(&self, o: &Self) -> bool {
        self.ps.iter().map(|p| p.to_bits()).eq(o.ps.iter().map(|p| p.to_bits())) && self.array == o.array && self.ret == o.ret
    }
}
impl Eq for KqlPercentile {}
impl Hash for KqlPercentile {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ps.iter().for_each(|p| p.to_bits().hash(state));
        self.array.hash(state);
        self.ret.hash(state);
    }
}

impl AggregateUDFImpl for KqlPercentile {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.array { DataType::Utf8 } else { self.ret.clone() })
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(PercentileAcc { ps: self.ps.clone(), array: self.array, ret: self.ret.clone(), ints: Vec::new(), reals: Vec::new() }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[values]", args.name), DataType::Utf8, true))])
    }
}

#[derive(Debug)]
struct PercentileAcc {
    ps: Vec<f64>,
    array: bool,
    ret: DataType,
    ints: Vec<i64>,
    reals: Vec<f64>,
}

/// Nearest-rank index of percentile `p` among `n` sorted values.
fn rank(p: f64, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let r = (p / 100.0 * n as f64).ceil() as usize;
    Some(r.clamp(1, n) - 1)
}

impl PercentileAcc {
    fn rank(&self, n: usize) -> Option<usize> {
        rank(self.ps.first().copied().unwrap_or(50.0), n)
    }

    /// `percentiles_array`: the JSON array of the percentiles (`null` elements for no values).
    fn array_text(&mut self) -> String {
        let items: Vec<Json> = if self.ret == DataType::Float64 {
            self.reals.sort_by(f64::total_cmp);
            self.ps
                .iter()
                .map(|p| rank(*p, self.reals.len()).and_then(|r| self.reals.get(r)).map_or(Json::Null, |f| serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)))
                .collect()
        } else {
            self.ints.sort_unstable();
            self.ps.iter().map(|p| rank(*p, self.ints.len()).and_then(|r| self.ints.get(r)).map_or(Json::Null, |x| Json::from(*x))).collect()
        };
        Json::Array(items).to_string()
    }
}

impl Accumulator for PercentileAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(a) = values.first() else { return Ok(()) };
        for i in 0..a.len() {
            if a.is_null(i) {
                continue;
            }
            match ScalarValue::try_from_array(a, i)? {
                ScalarValue::Float64(Some(f)) if !f.is_nan() => self.reals.push(f),
                v => {
                    if let Some(x) = super::udf::sv_i64(&v) {
                        self.ints.push(x);
                    }
                }
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.array {
            return Ok(ScalarValue::Utf8(Some(self.array_text())));
        }
        if self.ret == DataType::Float64 {
            self.reals.sort_by(f64::total_cmp);
            let v = self.rank(self.reals.len()).and_then(|r| self.reals.get(r).copied());
            return Ok(ScalarValue::Float64(v));
        }
        self.ints.sort_unstable();
        let v = self.rank(self.ints.len()).and_then(|r| self.ints.get(r).copied());
        Ok(match self.ret {
            DataType::Timestamp(_, _) => ScalarValue::TimestampNanosecond(v, None),
            DataType::Duration(_) => ScalarValue::DurationNanosecond(v),
            _ => ScalarValue::Int64(v),
        })
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.ints.capacity() * 8 + self.reals.capacity() * 8
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let j = if self.ret == DataType::Float64 {
            Json::Array(self.reals.iter().filter_map(|f| serde_json::Number::from_f64(*f).map(Json::Number)).collect())
        } else {
            Json::Array(self.ints.iter().map(|x| Json::from(*x)).collect())
        };
        Ok(vec![ScalarValue::Utf8(Some(j.to_string()))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(sa) = states.first().and_then(|a| a.as_any().downcast_ref::<StringArray>()) else { return Ok(()) };
        for i in 0..sa.len() {
            if sa.is_null(i) {
                continue;
            }
            if let Ok(Json::Array(a)) = serde_json::from_str::<Json>(sa.value(i)) {
                for x in a {
                    if self.ret == DataType::Float64 {
                        if let Some(f) = x.as_f64() {
                            self.reals.push(f);
                        }
                    } else if let Some(v) = x.as_i64() {
                        self.ints.push(v);
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------- zero default (Kusto: sum/stdev/variance of no rows is 0) ----------

/// Wraps an aggregate so a null result (no input rows in the group) becomes `zero`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ZeroDefault {
    inner: AggregateUDF,
    name: String,
    zero: ScalarValue,
}

fn fill_nulls(a: ArrayRef, zero: &ScalarValue) -> DfResult<ArrayRef> {
    if a.null_count() == 0 || zero.data_type() != *a.data_type() {
        return Ok(a);
    }
    let mask = datafusion::arrow::compute::is_not_null(&a)?;
    let z = zero.to_scalar()?;
    Ok(datafusion::arrow::compute::kernels::zip::zip(&mask, &a, &z)?)
}

impl AggregateUDFImpl for ZeroDefault {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(ZeroAcc { inner: self.inner.accumulator(acc_args)?, zero: self.zero.clone() }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        Ok(Box::new(ZeroGroupsAcc { inner: self.inner.create_groups_accumulator(args)?, zero: self.zero.clone() }))
    }
    fn default_value(&self, _data_type: &DataType) -> DfResult<ScalarValue> {
        Ok(self.zero.clone())
    }
}

#[derive(Debug)]
struct ZeroAcc {
    inner: Box<dyn Accumulator>,
    zero: ScalarValue,
}

impl Accumulator for ZeroAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.update_batch(values)
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let v = self.inner.evaluate()?;
        Ok(if v.is_null() && v.data_type() == self.zero.data_type() { self.zero.clone() } else { v })
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.inner.state()
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.inner.merge_batch(states)
    }
}

struct ZeroGroupsAcc {
    inner: Box<dyn datafusion::logical_expr::GroupsAccumulator>,
    zero: ScalarValue,
}

impl datafusion::logical_expr::GroupsAccumulator for ZeroGroupsAcc {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&datafusion::arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.inner.update_batch(values, group_indices, opt_filter, total_num_groups)
    }
    fn evaluate(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> DfResult<ArrayRef> {
        fill_nulls(self.inner.evaluate(emit_to)?, &self.zero)
    }
    fn state(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> DfResult<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> DfResult<()> {
        self.inner.merge_batch(values, group_indices, total_num_groups)
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&datafusion::arrow::array::BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// Calls `udaf` so that an empty group yields Kusto's zero of `ty` instead of null.
fn zero_default(udaf: Arc<AggregateUDF>, ty: KqlType, args: Vec<Expr>) -> Expr {
    let zero = match ty {
        KqlType::Long => ScalarValue::Int64(Some(0)),
        KqlType::Real => ScalarValue::Float64(Some(0.0)),
        KqlType::Timespan => ScalarValue::DurationNanosecond(Some(0)),
        KqlType::Decimal => ScalarValue::Decimal128(Some(0), crate::types::DECIMAL_PRECISION, crate::types::DECIMAL_SCALE),
        _ => return udaf.call(args),
    };
    with_default(udaf, "", zero, args)
}

/// `udaf(args)` with a null result (no value in the group) replaced by `value`; `tag` tells
/// the wrapped function's name apart from the same function with another default.
fn with_default(udaf: Arc<AggregateUDF>, tag: &str, value: ScalarValue, args: Vec<Expr>) -> Expr {
    let name = if tag.is_empty() { format!("kql_{}", udaf.name()) } else { format!("kql_{}_{tag}", udaf.name()) };
    AggregateUDF::new_from_impl(ZeroDefault { inner: (*udaf).clone(), name, zero: value }).call(args)
}
