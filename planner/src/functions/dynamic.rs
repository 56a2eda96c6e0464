//! Functions over `dynamic` values (JSON text in Utf8) and dynamic indexing (`a.b`, `a[0]`).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use serde_json::{Map, Value as Json};

use super::conversion::{V, json_text, lower_cast, v_of, v_to_string};
use super::udf::{RowState, row_call, s_bool, s_f64, s_i64, s_str, sv_i64};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

fn json(v: &ScalarValue) -> Option<Json> {
    match v_of(v, KqlType::Dynamic) {
        V::Json(j) => Some(j),
        _ => None,
    }
}

fn arr(v: &ScalarValue) -> Option<Vec<Json>> {
    match json(v)? {
        Json::Array(a) => Some(a),
        _ => None,
    }
}

fn out(j: Option<Json>) -> ScalarValue {
    s_str(j.as_ref().and_then(json_text))
}

fn pack_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut m = Map::new();
    for kv in args.chunks(2) {
        if let [k, v] = kv {
            let key = v_to_string(&v_of(k, KqlType::String));
            m.insert(key, json(v).unwrap_or(Json::Null));
        }
    }
    out(Some(Json::Object(m)))
}

fn pack_array_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(Some(Json::Array(args.iter().map(|v| json(v).unwrap_or(Json::Null)).collect())))
}

fn array_length_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(args.first().and_then(arr).map(|a| a.len() as i64))
}

fn bag_keys_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match args.first().and_then(json) {
        Some(Json::Object(m)) => out(Some(Json::Array(m.keys().map(|k| Json::String(k.clone())).collect()))),
        _ => s_str(None),
    }
}

fn bag_has_key_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let key = args.get(1).map(|k| v_to_string(&v_of(k, KqlType::String))).unwrap_or_default();
    match args.first().and_then(json) {
        Some(Json::Object(m)) => s_bool(Some(m.contains_key(&key))),
        _ => s_bool(Some(false)),
    }
}

fn array_concat_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut all = Vec::new();
    for a in args {
        match arr(a) {
            Some(x) => all.extend(x),
            None => return s_str(None),
        }
    }
    out(Some(Json::Array(all)))
}

fn array_slice_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(a), Some(s), Some(e)) = (args.first().and_then(arr), args.get(1).and_then(sv_i64), args.get(2).and_then(sv_i64))
    else {
        return s_str(None);
    };
    let n = a.len() as i64;
    let s = if s < 0 { (n + s).max(0) } else { s };
    let e = if e < 0 { n + e } else { e.min(n - 1) };
    if s > e || s >= n {
        return out(Some(Json::Array(vec![])));
    }
    out(Some(Json::Array(a.get(s as usize..=e as usize).map(<[Json]>::to_vec).unwrap_or_default())))
}

fn dedup(items: impl IntoIterator<Item = Json>) -> Vec<Json> {
    let mut seen = std::collections::HashSet::new();
    let mut outv = Vec::new();
    for i in items {
        if seen.insert(i.to_string()) {
            outv.push(i);
        }
    }
    outv
}

/// `[kind, arrays...]` kind 0 union, 1 intersect, 2 difference.
fn set_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((k, rest)) = args.split_first() else { return s_str(None) };
    let mut arrays = Vec::new();
    for a in rest {
        match arr(a) {
            Some(x) => arrays.push(x),
            None => return s_str(None),
        }
    }
    let mut it = arrays.into_iter();
    let first = it.next().unwrap_or_default();
    let others: Vec<std::collections::HashSet<String>> =
        it.map(|a| a.iter().map(Json::to_string).collect()).collect();
    let r = match sv_i64(k) {
        Some(0) => {
            let mut all = first;
            for a in rest.iter().skip(1) {
                all.extend(arr(a).unwrap_or_default());
            }
            dedup(all)
        }
        Some(1) => dedup(first.into_iter().filter(|x| others.iter().all(|o| o.contains(&x.to_string())))),
        _ => dedup(first.into_iter().filter(|x| !others.iter().any(|o| o.contains(&x.to_string())))),
    };
    out(Some(Json::Array(r)))
}

/// Equality of a JSON element and a probe value (numbers compare numerically).
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn index_of_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(arr) else { return s_i64(None) };
    let probe = args.get(1).and_then(json).unwrap_or(Json::Null);
    s_i64(Some(a.iter().position(|x| json_eq(x, &probe)).map_or(-1, |p| p as i64)))
}

fn has_element_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(arr) else { return s_bool(None) };
    let probe = args.get(1).and_then(json).unwrap_or(Json::Null);
    s_bool(Some(a.iter().any(|x| json_eq(x, &probe))))
}

fn array_sum_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(arr) else { return s_f64(None) };
    let mut sum = 0.0;
    for x in a {
        match x.as_f64() {
            Some(f) => sum += f,
            None => return s_f64(None),
        }
    }
    s_f64(Some(sum))
}

fn index_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(v), Some(i)) = (args.first(), args.get(1)) else { return s_str(None) };
    let Some(j) = json(v) else { return s_str(None) };
    let r = match (j, i) {
        (Json::Object(m), ScalarValue::Utf8(Some(k))) => m.get(k).cloned(),
        (Json::Array(a), idx) => sv_i64(idx).and_then(|x| {
            let n = a.len() as i64;
            let x = if x < 0 { n + x } else { x };
            usize::try_from(x).ok().and_then(|x| a.get(x).cloned())
        }),
        _ => None,
    };
    out(r)
}

fn dynamic_args(args: Vec<TypedExpr>) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| lower_cast(a, KqlType::Dynamic).map(|t| t.expr)).collect()
}

fn dy(name: &str, f: super::udf::RowFn, a: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::Dynamic.arrow_type(), f, a), KqlType::Dynamic)
}

/// Dynamic indexing: `e[index]` (string key of a property bag, or array position; negative
/// positions count from the end). Missing elements are null.
pub fn lower_index(e: TypedExpr, index: TypedExpr) -> Result<TypedExpr> {
    if e.ty != KqlType::Dynamic {
        return Err(PlanError::semantic(format!("indexing requires a dynamic value, got {}", e.ty)));
    }
    let idx = match index.ty {
        KqlType::String => index.expr,
        KqlType::Int | KqlType::Long => lower_cast(index, KqlType::Long)?.expr,
        KqlType::Dynamic => lower_cast(index, KqlType::String)?.expr,
        t => return Err(PlanError::semantic(format!("a dynamic index must be a string or an integer, got {t}"))),
    };
    Ok(dy("dynamic_index", index_row, vec![e.expr, idx]))
}

/// `bag_pack(key1, value1, ...)` (aliases `pack`, `pack_dictionary`): an even number of
/// arguments.
pub(super) fn lower_bag_pack(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    if !args.len().is_multiple_of(2) {
        return Err(PlanError::semantic(format!("function '{name}' expects an even number of arguments")));
    }
    let mut a = Vec::with_capacity(args.len());
    for (i, x) in args.into_iter().enumerate() {
        a.push(if i % 2 == 0 { lower_cast(x, KqlType::String)?.expr } else { lower_cast(x, KqlType::Dynamic)?.expr });
    }
    Ok(dy("pack", pack_row, a))
}

pub(super) fn lower_pack_array(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(dy("pack_array", pack_array_row, dynamic_args(args)?))
}

/// `array_length` (alias `arraylength`).
pub(super) fn lower_array_length(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call("array_length", KqlType::Long.arrow_type(), array_length_row, dynamic_args(args)?);
    Ok(TypedExpr::new(e, KqlType::Long))
}

pub(super) fn lower_bag_keys(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(dy("bag_keys", bag_keys_row, dynamic_args(args)?))
}

pub(super) fn lower_bag_has_key(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let k = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(TypedExpr::new(row_call("bag_has_key", KqlType::Bool.arrow_type(), bag_has_key_row, vec![d, k]), KqlType::Bool))
}

pub(super) fn lower_array_concat(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(dy("array_concat", array_concat_row, dynamic_args(args)?))
}

pub(super) fn lower_array_slice(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let s = lower_cast(args.remove(0), KqlType::Long)?.expr;
    let e = lower_cast(args.remove(0), KqlType::Long)?.expr;
    Ok(dy("array_slice", array_slice_row, vec![d, s, e]))
}

/// `set_union`, `set_intersect`, `set_difference`.
pub(super) fn lower_set_op(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let k: i64 = match name {
        "set_union" => 0,
        "set_intersect" => 1,
        _ => 2,
    };
    let mut a = vec![datafusion::logical_expr::lit(k)];
    a.extend(dynamic_args(args)?);
    Ok(dy("set_op", set_row, a))
}

pub(super) fn lower_set_has_element(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call("set_has_element", KqlType::Bool.arrow_type(), has_element_row, dynamic_args(args)?);
    Ok(TypedExpr::new(e, KqlType::Bool))
}

pub(super) fn lower_array_index_of(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call("array_index_of", KqlType::Long.arrow_type(), index_of_row, dynamic_args(args)?);
    Ok(TypedExpr::new(e, KqlType::Long))
}

pub(super) fn lower_array_sum(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(TypedExpr::new(row_call("array_sum", KqlType::Real.arrow_type(), array_sum_row, dynamic_args(args)?), KqlType::Real))
}
