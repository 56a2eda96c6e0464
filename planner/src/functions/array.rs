//! Dynamic arrays: building (`pack_array`, `range`, `repeat`, `zip`), reading (`array_length`,
//! `array_index_of`, `array_sum`, `jaccard_index`), reshaping (`array_slice`, `array_sort_*`,
//! `array_shift_*`, `array_rotate_*`, `array_split`, `array_iff`...), the `set_*` functions and
//! the per-row expansion behind `mv-expand`.

use std::cmp::Ordering;
use std::collections::HashSet;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::{Map, Value as Json};

use super::args::{all_to, arg_i64, dynamic_arg, integer, to, typed};
use super::conversion::lower_cast;
use super::json::{array_of, json_of, out, out_arr};
use super::udf::{RowState, row_call, s_bool, s_f64, s_i64, s_str, sv_bool, sv_f64, sv_i64};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// Largest array `range()` builds.
const MAX_RANGE: usize = 1_048_576;

/// Largest array `repeat()` builds.
const MAX_REPEAT: i64 = 1_048_576;

fn pack_array_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(Some(Json::Array(args.iter().map(|v| json_of(v).unwrap_or(Json::Null)).collect())))
}

fn array_length_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(args.first().and_then(array_of).map(|a| a.len() as i64))
}

fn array_concat_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut all = Vec::new();
    for a in args {
        match array_of(a) {
            Some(x) => all.extend(x),
            None => return s_str(None),
        }
    }
    out(Some(Json::Array(all)))
}

fn array_slice_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(a), Some(s), Some(e)) = (args.first().and_then(array_of), args.get(1).and_then(sv_i64), args.get(2).and_then(sv_i64))
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
        match array_of(a) {
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
                all.extend(array_of(a).unwrap_or_default());
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

/// `array_index_of(array, value[, start[, length[, occurrence]]])`: a negative start counts
/// from the end, a length of -1 is unlimited; occurrence < 0 or length < -1 give null.
fn index_of_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(array_of) else { return s_i64(None) };
    let probe = args.get(1).and_then(json_of).unwrap_or(Json::Null);
    let opt = |i: usize, default: i64| match args.get(i) {
        None => Some(default),
        Some(v) => sv_i64(v),
    };
    let (Some(start), Some(length), Some(occurrence)) = (opt(2, 0), opt(3, -1), opt(4, 1)) else { return s_i64(None) };
    if occurrence < 0 || length < -1 {
        return s_i64(None);
    }
    let n = a.len() as i64;
    let from = if start < 0 { (n + start).max(0) } else { start };
    let to = if length == -1 { n } else { from.saturating_add(length).min(n) };
    if from >= n || occurrence == 0 {
        return s_i64(Some(-1));
    }
    let mut seen = 0;
    for i in from..to {
        if json_eq(&a[i as usize], &probe) {
            seen += 1;
            if seen == occurrence {
                return s_i64(Some(i));
            }
        }
    }
    s_i64(Some(-1))
}

fn has_element_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(array_of) else { return s_bool(None) };
    let probe = args.get(1).and_then(json_of).unwrap_or(Json::Null);
    s_bool(Some(a.iter().any(|x| json_eq(x, &probe))))
}

fn array_sum_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(a) = args.first().and_then(array_of) else { return s_f64(None) };
    let mut sum = 0.0;
    for x in a {
        match x.as_f64() {
            Some(f) => sum += f,
            None => return s_f64(None),
        }
    }
    s_f64(Some(sum))
}

/// `[cond, when_true, when_false]`: arrays are taken element-wise, anything else is broadcast.
fn array_iff_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(cond) = a.first().and_then(array_of) else { return s_str(None) };
    let pick = |v: Option<Json>, i: usize| -> Json {
        match v {
            Some(Json::Array(x)) => x.get(i).cloned().unwrap_or(Json::Null),
            Some(other) => other,
            None => Json::Null,
        }
    };
    let t = a.get(1).and_then(json_of);
    let f = a.get(2).and_then(json_of);
    let res = cond
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let b = match c {
                Json::Bool(b) => Some(*b),
                Json::Number(n) => n.as_f64().map(|x| x != 0.0),
                _ => None,
            };
            match b {
                Some(true) => pick(t.clone(), i),
                Some(false) => pick(f.clone(), i),
                None => Json::Null,
            }
        })
        .collect();
    out_arr(res)
}

fn array_reverse_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match a.first().and_then(array_of) {
        Some(mut x) => {
            x.reverse();
            out_arr(x)
        }
        None => s_str(None),
    }
}

/// `[array, count, fill, dir]`, dir 1 = left, -1 = right.
fn array_shift_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(x), Some(k), Some(dir)) = (a.first().and_then(array_of), arg_i64(a, 1), arg_i64(a, 3)) else { return s_str(None) };
    let fill = a.get(2).and_then(json_of).unwrap_or(Json::Null);
    let n = x.len() as i64;
    // A left shift by k: result[i] = x[i + k].
    let k = k.saturating_mul(dir);
    let res = (0..n)
        .map(|i| {
            let j = i.checked_add(k);
            match j {
                Some(j) if (0..n).contains(&j) => x[j as usize].clone(),
                _ => fill.clone(),
            }
        })
        .collect();
    out_arr(res)
}

/// `[array, count, dir]`, dir 1 = left, -1 = right.
fn array_rotate_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(mut x), Some(k), Some(dir)) = (a.first().and_then(array_of), arg_i64(a, 1), arg_i64(a, 2)) else { return s_str(None) };
    let n = x.len() as i64;
    if n > 0 {
        let k = (k.rem_euclid(n) * dir).rem_euclid(n) as usize;
        x.rotate_left(k);
    }
    out_arr(x)
}

fn array_split_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(array_of) else { return s_str(None) };
    let n = x.len() as i64;
    let idx: Vec<i64> = match a.get(1).and_then(json_of) {
        Some(Json::Array(v)) => {
            let mut out = Vec::new();
            for e in v {
                match e.as_i64() {
                    Some(i) => out.push(i),
                    None => return s_str(None),
                }
            }
            out
        }
        Some(Json::Number(i)) => match i.as_i64() {
            Some(i) => vec![i],
            None => return s_str(None),
        },
        _ => return s_str(None),
    };
    let mut parts = Vec::new();
    let mut prev = 0i64;
    for i in idx {
        let i = if i < 0 { n + i } else { i }.clamp(0, n).max(prev);
        parts.push(Json::Array(x[prev as usize..i as usize].to_vec()));
        prev = i;
    }
    parts.push(Json::Array(x[prev as usize..].to_vec()));
    out_arr(parts)
}

fn repeat_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(n) = arg_i64(a, 1) else { return s_str(None) };
    if !(0..=MAX_REPEAT).contains(&n) {
        return s_str(None);
    }
    let v = a.first().and_then(json_of).unwrap_or(Json::Null);
    out_arr(vec![v; n as usize])
}

fn json_set(v: Vec<Json>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter()
        .map(|j| match j {
            // 1 and 1.0 are the same element
            Json::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| format!("n:{f}")),
            other => other.to_string(),
        })
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

fn jaccard_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(x), Some(y)) = (a.first().and_then(array_of), a.get(1).and_then(array_of)) else { return s_f64(None) };
    let x = json_set(x);
    let y: HashSet<String> = json_set(y).into_iter().collect();
    let inter = x.iter().filter(|e| y.contains(*e)).count();
    let union = x.len() + y.len() - inter;
    if union == 0 {
        return s_f64(None);
    }
    s_f64(Some(inter as f64 / union as f64))
}

/// Kusto's order of array elements: numbers (by value), then strings, then the rest; nulls last.
fn cmp_json(a: &Json, b: &Json) -> Ordering {
    fn rank(j: &Json) -> u8 {
        match j {
            Json::Bool(_) => 0,
            Json::Number(_) => 1,
            Json::String(_) => 2,
            Json::Array(_) | Json::Object(_) => 3,
            Json::Null => 4,
        }
    }
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x.as_f64().unwrap_or(f64::NAN).partial_cmp(&y.as_f64().unwrap_or(f64::NAN)).unwrap_or(Ordering::Equal)
        }
        (Json::String(x), Json::String(y)) => x.cmp(y),
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn array_sort_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // args: array, desc (bool), nulls_last (bool)
    let Some(Json::Array(mut items)) = a.first().and_then(json_of) else { return s_str(None) };
    let desc = a.get(1).and_then(sv_bool).unwrap_or(false);
    let nulls_last = a.get(2).and_then(sv_bool).unwrap_or(true);
    let (mut nulls, mut vals): (Vec<Json>, Vec<Json>) = items.drain(..).partition(Json::is_null);
    vals.sort_by(|x, y| if desc { cmp_json(y, x) } else { cmp_json(x, y) });
    let mut res = Vec::new();
    if !nulls_last {
        res.append(&mut nulls);
    }
    res.append(&mut vals);
    res.append(&mut nulls);
    out(Some(Json::Array(res)))
}

/// `[desc, nulls_last, array1, array2, ...]`: every array reordered as sorting the first one
/// orders it, as a bag `{"0": sorted1, "1": sorted2, ...}`; null when the lengths differ.
fn array_sort_many_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let desc = a.first().and_then(sv_bool).unwrap_or(false);
    let nulls_last = a.get(1).and_then(sv_bool).unwrap_or(true);
    let mut arrays = Vec::new();
    for v in a.iter().skip(2) {
        match json_of(v) {
            Some(Json::Array(x)) => arrays.push(x),
            _ => return s_str(None),
        }
    }
    let Some(first) = arrays.first() else { return s_str(None) };
    if arrays.iter().any(|x| x.len() != first.len()) {
        return s_str(None);
    }
    let mut order: Vec<usize> = (0..first.len()).collect();
    order.sort_by(|&i, &j| {
        let (x, y) = (&first[i], &first[j]);
        match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => if nulls_last { Ordering::Greater } else { Ordering::Less },
            (false, true) => if nulls_last { Ordering::Less } else { Ordering::Greater },
            (false, false) => if desc { cmp_json(y, x) } else { cmp_json(x, y) },
        }
    });
    let mut bag = Map::new();
    for (k, arr) in arrays.iter().enumerate() {
        bag.insert(k.to_string(), Json::Array(order.iter().map(|&i| arr[i].clone()).collect()));
    }
    out(Some(Json::Object(bag)))
}

/// The values of a bag of sorted arrays (`{"0": a, "1": b}`), in key order, as an array.
fn bag_values_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match a.first().and_then(json_of) {
        Some(Json::Object(m)) => {
            let mut items: Vec<(usize, Json)> = m.into_iter().filter_map(|(k, v)| Some((k.parse().ok()?, v))).collect();
            items.sort_by_key(|(k, _)| *k);
            out(Some(Json::Array(items.into_iter().map(|(_, v)| v).collect())))
        }
        _ => s_str(None),
    }
}

/// `array_sort_asc(array1, array2, ...[, nulls_last])` with several arrays: the bag of the
/// sorted arrays under "0", "1"... (the binder makes them columns).
pub(crate) fn lower_array_sort_many(name: &str, arrays: Vec<TypedExpr>, nulls_last: Option<TypedExpr>) -> Result<TypedExpr> {
    let nulls_last = match nulls_last {
        Some(b) => lower_cast(b, KqlType::Bool)?.expr,
        None => lit(true),
    };
    let mut a = vec![lit(name == "array_sort_desc"), nulls_last];
    a.extend(arrays.into_iter().map(|x| x.expr));
    Ok(typed("array_sort_many", KqlType::Dynamic, array_sort_many_row, a))
}

fn zip_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut arrays = Vec::new();
    for v in a {
        match json_of(v) {
            Some(Json::Array(x)) => arrays.push(x),
            _ => return s_str(None),
        }
    }
    let n = arrays.iter().map(Vec::len).max().unwrap_or(0);
    let rows = (0..n).map(|i| Json::Array(arrays.iter().map(|x| x.get(i).cloned().unwrap_or(Json::Null)).collect())).collect();
    out(Some(Json::Array(rows)))
}

fn range_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let ints = a.iter().all(|v| matches!(v, ScalarValue::Int64(_)));
    let (Some(start), Some(stop)) = (a.first().and_then(sv_f64), a.get(1).and_then(sv_f64)) else { return s_str(None) };
    let step = a.get(2).and_then(sv_f64).unwrap_or(1.0);
    if step == 0.0 || !step.is_finite() {
        return s_str(None);
    }
    let mut items = Vec::new();
    let mut i = 0f64;
    loop {
        let x = start + i * step;
        if (step > 0.0 && x > stop) || (step < 0.0 && x < stop) || items.len() >= MAX_RANGE {
            break;
        }
        items.push(if ints {
            Json::from(x as i64)
        } else {
            serde_json::Number::from_f64(x).map(Json::Number).unwrap_or(Json::Null)
        });
        i += 1.0;
    }
    out(Some(Json::Array(items)))
}

/// `range(start, stop[, step])` over datetimes or timespans (the step a timespan, 1h by
/// default): the instants or durations as Kusto prints them in a dynamic array.
fn range_time_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let ns = |v: &ScalarValue| match v {
        ScalarValue::TimestampNanosecond(x, _) | ScalarValue::DurationNanosecond(x) => *x,
        _ => None,
    };
    let (Some(start), Some(stop)) = (a.first().and_then(ns), a.get(1).and_then(ns)) else { return s_str(None) };
    let step = a.get(2).and_then(ns).unwrap_or(3_600_000_000_000);
    if step == 0 {
        return s_str(None);
    }
    let datetime = matches!(a.first(), Some(ScalarValue::TimestampNanosecond(..)));
    let mut items = Vec::new();
    let mut x = start;
    while ((step > 0 && x <= stop) || (step < 0 && x >= stop)) && items.len() < MAX_RANGE {
        items.push(Json::String(if datetime {
            kustodian_parser::value_text::format_datetime_nanos(x)
        } else {
            kustodian_parser::value_text::format_timespan_nanos(x)
        }));
        let Some(next) = x.checked_add(step) else { break };
        x = next;
    }
    out(Some(Json::Array(items)))
}

/// The data type of [`mv_expand_call`]: a list of JSON texts.
pub fn mv_expand_type() -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::{DataType, Field};
    DataType::List(std::sync::Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// The elements of one `mv-expand` value: array elements; a property bag's properties as
/// single-property bags (`kind=bag`) or `[key, value]` pairs (`kind=array`); an empty
/// collection gives none; null gives one null element, as Kusto produces a single record for a
/// null value; any other value is one element.
fn mv_elements(v: &ScalarValue, bag_as_array: bool) -> Vec<Json> {
    match json_of(v) {
        None | Some(Json::Null) => vec![Json::Null],
        Some(Json::Array(a)) => a,
        Some(Json::Object(o)) => o
            .into_iter()
            .map(|(k, x)| {
                if bag_as_array {
                    Json::Array(vec![Json::String(k), x])
                } else {
                    let mut m = Map::new();
                    m.insert(k, x);
                    Json::Object(m)
                }
            })
            .collect(),
        Some(other) => vec![other],
    }
}

fn mv_expand_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // args: limit (-1: none), kind (1: array), then the expanded values.
    let limit = a.first().and_then(super::udf::sv_i64).filter(|l| *l >= 0).map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let as_array = a.get(1).and_then(super::udf::sv_i64) == Some(1);
    let cols: Vec<Vec<Json>> = a.iter().skip(2).map(|v| mv_elements(v, as_array)).collect();
    let mut n = cols.iter().map(Vec::len).max().unwrap_or(0);
    if let Some(l) = limit {
        n = n.min(l);
    }
    let rows: Vec<ScalarValue> = (0..n.min(MAX_RANGE))
        .map(|i| {
            let mut t = vec![Json::from(i as i64)];
            t.extend(cols.iter().map(|c| c.get(i).cloned().unwrap_or(Json::Null)));
            ScalarValue::Utf8(Some(Json::Array(t).to_string()))
        })
        .collect();
    ScalarValue::List(ScalarValue::new_list(&rows, &datafusion::arrow::datatypes::DataType::Utf8, true))
}

/// `mv-expand`: per row, a list of JSON arrays `[index, element1, element2, ...]` zipping the
/// elements of `values` (dynamic), at most `limit` of them; unnest it to get the rows.
pub fn mv_expand_call(values: Vec<TypedExpr>, bag_as_array: bool, limit: Option<i64>) -> Result<Expr> {
    let mut args = vec![lit(limit.unwrap_or(-1)), lit(i64::from(bag_as_array))];
    for v in values {
        args.push(to(v, KqlType::Dynamic)?);
    }
    Ok(row_call("mv_expand", mv_expand_type(), mv_expand_row, args))
}

pub(super) fn lower_pack_array(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("pack_array", KqlType::Dynamic, pack_array_row, all_to(args, KqlType::Dynamic)?))
}

/// `array_length` (alias `arraylength`).
pub(super) fn lower_array_length(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call("array_length", KqlType::Long.arrow_type(), array_length_row, all_to(args, KqlType::Dynamic)?);
    Ok(TypedExpr::new(e, KqlType::Long))
}

pub(super) fn lower_array_concat(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("array_concat", KqlType::Dynamic, array_concat_row, all_to(args, KqlType::Dynamic)?))
}

pub(super) fn lower_array_slice(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
    let s = lower_cast(args.remove(0), KqlType::Long)?.expr;
    let e = lower_cast(args.remove(0), KqlType::Long)?.expr;
    Ok(typed("array_slice", KqlType::Dynamic, array_slice_row, vec![d, s, e]))
}

/// `set_union`, `set_intersect`, `set_difference`.
pub(super) fn lower_set_op(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let k: i64 = match name {
        "set_union" => 0,
        "set_intersect" => 1,
        _ => 2,
    };
    let mut a = vec![datafusion::logical_expr::lit(k)];
    a.extend(all_to(args, KqlType::Dynamic)?);
    Ok(typed("set_op", KqlType::Dynamic, set_row, a))
}

pub(super) fn lower_set_has_element(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call("set_has_element", KqlType::Bool.arrow_type(), has_element_row, all_to(args, KqlType::Dynamic)?);
    Ok(TypedExpr::new(e, KqlType::Bool))
}

pub(super) fn lower_array_index_of(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut exprs = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        exprs.push(if i < 2 { super::args::to(a, KqlType::Dynamic)? } else { super::args::integer(a, name)? });
    }
    let e = row_call("array_index_of", KqlType::Long.arrow_type(), index_of_row, exprs);
    Ok(TypedExpr::new(e, KqlType::Long))
}

pub(super) fn lower_array_sum(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(TypedExpr::new(row_call("array_sum", KqlType::Real.arrow_type(), array_sum_row, all_to(args, KqlType::Dynamic)?), KqlType::Real))
}

/// `array_sort_asc` / `array_sort_desc` `(array[, nulls_last])`.
pub(super) fn lower_array_sort(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut it = args.into_iter();
    let arr = it.next().ok_or_else(|| PlanError::Internal("array_sort".into()))?;
    if arr.ty != KqlType::Dynamic {
        return Err(PlanError::semantic(format!("function '{name}' expects a dynamic array, got {}", arr.ty)));
    }
    let nulls_last = match it.next() {
        // Several arrays inside an expression: the array of the sorted arrays, so that
        // `array_sort_asc(timestamps, commands)[1]` is `commands` in timestamp order, as the
        // reference's example reads it (on its own in extend/project, the binder makes them
        // columns instead).
        Some(b) if b.ty == KqlType::Dynamic => {
            let mut arrays = vec![arr, b];
            let mut nulls_last = None;
            for x in it {
                match x.ty {
                    KqlType::Dynamic if nulls_last.is_none() => arrays.push(x),
                    _ => nulls_last = Some(x),
                }
            }
            let bag = lower_array_sort_many(name, arrays, nulls_last)?;
            return Ok(typed("array_sort_many_list", KqlType::Dynamic, bag_values_row, vec![bag.expr]));
        }
        Some(b) => lower_cast(b, KqlType::Bool)?.expr,
        None => lit(true),
    };
    Ok(typed("array_sort", KqlType::Dynamic, array_sort_row, vec![arr.expr, lit(name == "array_sort_desc"), nulls_last]))
}

pub(super) fn lower_zip(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::Dynamic)?;
    Ok(typed("zip", KqlType::Dynamic, zip_row, a))
}

/// The scalar `range(start, stop[, step])`: an array of longs when every argument is an
/// integer, of reals otherwise.
pub(super) fn lower_range(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let all_long = args.iter().all(|a| matches!(a.ty, Int | Long));
    let to = if all_long { Long } else { Real };
    if let [start, stop, rest @ ..] = args.as_slice()
        && matches!((start.ty, stop.ty), (Datetime, Datetime) | (Timespan, Timespan))
        && rest.iter().all(|s| s.ty == Timespan)
    {
        return Ok(typed("range_time", Dynamic, range_time_row, args.into_iter().map(|a| a.expr).collect()));
    }
    if !args.iter().all(|a| a.ty.is_numeric()) {
        return Err(PlanError::semantic("range() takes numbers, or datetimes or timespans with a timespan step"));
    }
    let a = args.into_iter().map(|a| lower_cast(a, to).map(|t| t.expr)).collect::<Result<Vec<_>>>()?;
    Ok(typed(if all_long { "range_long" } else { "range_real" }, Dynamic, range_row, a))
}

/// `array_iff(conditions, when_true, when_false)` (alias `array_iif`).
pub(super) fn lower_array_iff(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("array_iff", Dynamic, array_iff_row, all_to(args, Dynamic)?))
}

pub(super) fn lower_array_reverse(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("array_reverse", Dynamic, array_reverse_row, all_to(args, Dynamic)?))
}

/// `array_shift_left` / `array_shift_right` `(array, count[, fill])`.
pub(super) fn lower_array_shift(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let arr = dynamic_arg(args.remove(0), name)?;
    let k = integer(args.remove(0), name)?;
    let fill = match args.pop() {
        Some(f) => to(f, Dynamic)?,
        None => lit(ScalarValue::Utf8(None)),
    };
    let dir = lit(if name == "array_shift_left" { 1i64 } else { -1 });
    Ok(typed("array_shift", Dynamic, array_shift_row, vec![arr, k, fill, dir]))
}

/// `array_rotate_left` / `array_rotate_right` `(array, count)`.
pub(super) fn lower_array_rotate(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let arr = dynamic_arg(args.remove(0), name)?;
    let k = integer(args.remove(0), name)?;
    let dir = lit(if name == "array_rotate_left" { 1i64 } else { -1 });
    Ok(typed("array_rotate", Dynamic, array_rotate_row, vec![arr, k, dir]))
}

pub(super) fn lower_array_split(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("array_split", Dynamic, array_split_row, all_to(args, Dynamic)?))
}

pub(super) fn lower_repeat(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let v = to(args.remove(0), Dynamic)?;
    let k = integer(args.remove(0), name)?;
    Ok(typed("repeat", Dynamic, repeat_row, vec![v, k]))
}

pub(super) fn lower_jaccard_index(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("jaccard_index", Real, jaccard_row, all_to(args, Dynamic)?))
}
