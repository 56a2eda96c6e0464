//! Property bags: `bag_pack` (and `pack_all()`), `bag_keys`, `bag_has_key`, `bag_merge`,
//! `bag_remove_keys`, `bag_zip`, `bag_set_key`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use serde_json::{Map, Value as Json};

use super::args::{all_to, arg_str, to, typed};
use super::conversion::{V, json_text, lower_cast, v_of, v_to_string};
use super::json::{array_of, json_of, json_path_keys, out};
use super::udf::{RowState, row_call, s_bool, s_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

fn pack_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut m = Map::new();
    for kv in args.chunks(2) {
        if let [k, v] = kv {
            let key = v_to_string(&v_of(k, KqlType::String));
            m.insert(key, json_of(v).unwrap_or(Json::Null));
        }
    }
    out(Some(Json::Object(m)))
}

fn bag_keys_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match args.first().and_then(json_of) {
        Some(Json::Object(m)) => out(Some(Json::Array(m.keys().map(|k| Json::String(k.clone())).collect()))),
        _ => s_str(None),
    }
}

/// A key of `bag_has_key`/`bag_remove_keys` is a key or a JSONPath (`$.key2.prop1`).
fn bag_has_key_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let key = args.get(1).map(|k| v_to_string(&v_of(k, KqlType::String))).unwrap_or_default();
    let Some(steps) = json_path_keys(&key) else { return s_bool(Some(false)) };
    let mut cur = args.first().and_then(json_of);
    for k in &steps {
        cur = match cur {
            Some(Json::Object(mut m)) => m.remove(k),
            _ => None,
        };
    }
    s_bool(Some(cur.is_some()))
}

/// Removes the value at `steps` from `v`, if there is one.
fn remove_path(v: &mut Json, steps: &[String]) {
    let Json::Object(m) = v else { return };
    match steps {
        [] => {}
        [last] => {
            m.remove(last);
        }
        [first, rest @ ..] => {
            if let Some(inner) = m.get_mut(first) {
                remove_path(inner, rest);
            }
        }
    }
}

fn bag_merge_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // The first bag holding a key wins.
    let mut m = Map::new();
    for v in a {
        if let Some(Json::Object(o)) = json_of(v) {
            for (k, x) in o {
                m.entry(k).or_insert(x);
            }
        }
    }
    out(Some(Json::Object(m)))
}

fn bag_remove_keys_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(mut o @ Json::Object(_)) = a.first().and_then(json_of) else { return s_str(None) };
    if let Some(Json::Array(keys)) = a.get(1).and_then(json_of) {
        for k in keys {
            if let Json::String(k) = k
                && let Some(steps) = json_path_keys(&k)
            {
                remove_path(&mut o, &steps);
            }
        }
    }
    out(Some(o))
}

fn bag_zip_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // Values that are not an array give null values (the bag_zip page).
    let Some(keys) = a.first().and_then(array_of) else { return s_str(None) };
    let vals = a.get(1).and_then(array_of).unwrap_or_default();
    let mut m = Map::new();
    for (i, k) in keys.into_iter().enumerate() {
        if let Json::String(k) = k {
            m.insert(k, vals.get(i).cloned().unwrap_or(Json::Null));
        }
    }
    out(Some(Json::Object(m)))
}

fn bag_set_key_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(Json::Object(mut bag)) = a.first().and_then(json_of) else { return s_str(None) };
    let Some(keys) = arg_str(a, 1).and_then(json_path_keys) else { return s_str(None) };
    let value = a.get(2).and_then(json_of).unwrap_or(Json::Null);
    let (last, init) = match keys.split_last() {
        Some(x) => x,
        None => return s_str(None),
    };
    let mut cur = &mut bag;
    for k in init {
        let slot = cur.entry(k.clone()).or_insert_with(|| Json::Object(Map::new()));
        if !slot.is_object() {
            *slot = Json::Object(Map::new());
        }
        cur = match slot {
            Json::Object(m) => m,
            _ => return s_str(None),
        };
    }
    cur.insert(last.clone(), value);
    out(Some(Json::Object(bag)))
}

/// `pack_all()`: names and values alternate; with `skip_empty` (the first argument), null
/// values and empty strings are left out.
fn pack_all_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let skip_empty = matches!(args.first(), Some(ScalarValue::Boolean(Some(true))));
    let mut m = Map::new();
    for kv in args.get(1..).unwrap_or_default().chunks(2) {
        if let [k, v] = kv {
            let key = match k {
                ScalarValue::Utf8(Some(s)) => s.clone(),
                _ => continue,
            };
            let j = match v_of(v, KqlType::Dynamic) {
                V::Json(j) => j,
                _ => Json::Null,
            };
            if skip_empty && (j.is_null() || j.as_str() == Some("")) {
                continue;
            }
            m.insert(key, j);
        }
    }
    ScalarValue::Utf8(json_text(&Json::Object(m)))
}

/// The `pack_all` call over `(name, value)` pairs.
pub(crate) fn pack_all_call(columns: Vec<(String, TypedExpr)>, skip_empty: bool) -> Result<TypedExpr> {
    let mut a = vec![datafusion::logical_expr::lit(skip_empty)];
    for (name, v) in columns {
        a.push(datafusion::logical_expr::lit(name));
        a.push(lower_cast(v, KqlType::Dynamic)?.expr);
    }
    Ok(TypedExpr::new(row_call("pack_all", DataType::Utf8, pack_all_row, a), KqlType::Dynamic))
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
    Ok(typed("pack", KqlType::Dynamic, pack_row, a))
}

/// `bag_pack_columns(c1, c2, ...)`: a bag of the named columns, each under its own name.
pub(super) fn lower_bag_pack_columns(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut a = Vec::with_capacity(args.len() * 2);
    for x in args {
        let datafusion::logical_expr::Expr::Column(c) = &x.expr else {
            return Err(PlanError::semantic(format!("function '{name}' expects column references")));
        };
        a.push(datafusion::logical_expr::lit(c.name.clone()));
        a.push(lower_cast(x, KqlType::Dynamic)?.expr);
    }
    Ok(typed("pack", KqlType::Dynamic, pack_row, a))
}

pub(super) fn lower_bag_keys(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("bag_keys", KqlType::Dynamic, bag_keys_row, all_to(args, KqlType::Dynamic)?))
}

pub(super) fn lower_bag_has_key(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let k = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(TypedExpr::new(row_call("bag_has_key", KqlType::Bool.arrow_type(), bag_has_key_row, vec![d, k]), KqlType::Bool))
}

pub(super) fn lower_bag_merge(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::Dynamic)?;
    Ok(typed("bag_merge", KqlType::Dynamic, bag_merge_row, a))
}

pub(super) fn lower_bag_remove_keys(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::Dynamic)?;
    Ok(typed("bag_remove_keys", KqlType::Dynamic, bag_remove_keys_row, a))
}

pub(super) fn lower_bag_zip(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("bag_zip", Dynamic, bag_zip_row, all_to(args, Dynamic)?))
}

pub(super) fn lower_bag_set_key(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let bag = to(args.remove(0), Dynamic)?;
    let key = to(args.remove(0), String)?;
    let v = to(args.remove(0), Dynamic)?;
    Ok(typed("bag_set_key", Dynamic, bag_set_key_row, vec![bag, key, v]))
}

/// Bytes of one value of a column of type `ty` (see [`estimate_data_size_call`]).
fn value_size(ty: i64, v: &ScalarValue) -> i64 {
    const FIXED: [i64; 8] = [1, 4, 8, 8, 16, 8, 8, 16];
    match usize::try_from(ty).ok().and_then(|t| FIXED.get(t)) {
        Some(n) => *n,
        // Strings and dynamic values: their UTF-8 text (a null is empty).
        None => super::udf::sv_str(v).map_or(0, |s| s.len() as i64),
    }
}

fn estimate_data_size_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let total = args.chunks(2).map(|p| value_size(p.first().and_then(super::udf::sv_i64).unwrap_or(-1), &p[1])).sum();
    ScalarValue::Int64(Some(total))
}

/// `estimate_data_size(c1, ...)` (or `*`): the estimated bytes of the values, as the
/// reference counts them: a long 8, a string its length (`'1234567890'` is 10); bool 1, int
/// 4, real, datetime and timespan 8, guid and decimal 16; a dynamic value its JSON text.
pub(crate) fn estimate_data_size_call(columns: Vec<TypedExpr>) -> TypedExpr {
    let mut a = Vec::with_capacity(columns.len() * 2);
    for c in columns {
        let code: i64 = match c.ty {
            KqlType::Bool => 0,
            KqlType::Int => 1,
            KqlType::Long => 2,
            KqlType::Real => 3,
            KqlType::Decimal => 4,
            KqlType::Datetime => 5,
            KqlType::Timespan => 6,
            KqlType::Guid => 7,
            _ => -1,
        };
        a.push(datafusion::logical_expr::lit(code));
        a.push(c.expr);
    }
    TypedExpr::new(row_call("estimate_data_size", DataType::Int64, estimate_data_size_row, a), KqlType::Long)
}
