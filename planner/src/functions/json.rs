//! Dynamic values (JSON text in Utf8 columns): reading them in row functions, dynamic indexing
//! (`a.b`, `a[0]`), JSONPath (`$.a['b'][1]`) and `extract_json`.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;

use super::{FunctionContext, TypedExpr};
use super::args::{arg_str, to, typed};
use super::conversion::{V, json_text, lower_cast, v_convert, v_of};
use super::udf::{RowState, row_call, s_str, sv_i64, sv_str};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// A dynamic value as JSON (`None` for null or text that is not JSON).
pub(super) fn json_of(v: &ScalarValue) -> Option<Json> {
    match v_of(v, KqlType::Dynamic) {
        V::Json(j) => Some(j),
        _ => None,
    }
}

/// The elements of a dynamic array (`None` for anything else).
pub(super) fn array_of(v: &ScalarValue) -> Option<Vec<Json>> {
    match json_of(v)? {
        Json::Array(a) => Some(a),
        _ => None,
    }
}

/// Each non-null element of a JSON-text column (an aggregate's input or partial states) that
/// parses, in order.
pub(super) fn each_json(a: &datafusion::arrow::array::ArrayRef, mut f: impl FnMut(Json)) {
    use datafusion::arrow::array::{Array, StringArray};
    let Some(sa) = a.as_any().downcast_ref::<StringArray>() else { return };
    for i in 0..sa.len() {
        if !sa.is_null(i)
            && let Ok(j) = serde_json::from_str::<Json>(sa.value(i))
        {
            f(j);
        }
    }
}

/// A dynamic result: JSON text, or null.
pub(super) fn out(j: Option<Json>) -> ScalarValue {
    s_str(j.as_ref().and_then(json_text))
}

/// A dynamic array result.
pub(super) fn out_arr(a: Vec<Json>) -> ScalarValue {
    out(Some(Json::Array(a)))
}

/// A JSON element as a string (strings unquoted, other values as JSON text).
pub(super) fn json_to_text(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// One step of a JSONPath: a property name or an array position.
pub(super) enum PathStep {
    Key(String),
    Index(i64),
}

/// The steps of a JSONPath after its `$`: `.name`, `['name']`, `["name"]`, `[index]`.
pub(super) fn json_path(mut s: &str) -> Option<Vec<PathStep>> {
    let mut steps = Vec::new();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            steps.push(PathStep::Key(r[..end].to_string()));
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let r = r.trim_start();
            if let Some(q) = r.chars().next().filter(|c| *c == '\'' || *c == '"') {
                let body = &r[1..];
                let end = body.find(q)?;
                steps.push(PathStep::Key(body[..end].to_string()));
                let after = body[end + 1..].trim_start();
                s = after.strip_prefix(']')?;
            } else {
                let end = r.find(']')?;
                steps.push(PathStep::Index(r[..end].trim().parse().ok()?));
                s = &r[end + 1..];
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

/// A `bag_set_key` key: a root key name, or a JSONPath of property names (`$.a.b`, `$['a']`).
pub(super) fn json_path_keys(key: &str) -> Option<Vec<String>> {
    let Some(rest) = key.strip_prefix('$') else { return Some(vec![key.to_string()]) };
    let steps = json_path(rest)?;
    let mut keys = Vec::new();
    for s in steps {
        match s {
            PathStep::Key(k) => keys.push(k),
            PathStep::Index(_) => return None,
        }
    }
    if keys.is_empty() { None } else { Some(keys) }
}

/// `[value, key or position]`.
fn index_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(v), Some(i)) = (args.first(), args.get(1)) else { return s_str(None) };
    let Some(j) = json_of(v) else { return s_str(None) };
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
    Ok(typed("dynamic_index", KqlType::Dynamic, index_row, vec![e.expr, idx]))
}

/// `[path, json text, type name]`.
fn extract_json_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let ty = a.get(2).and_then(super::conversion::tag_type).unwrap_or(KqlType::String);
    let null = ScalarValue::try_from(&ty.arrow_type()).unwrap_or(ScalarValue::Null);
    let (Some(path), Some(text)) = (arg_str(a, 0), arg_str(a, 1)) else { return null };
    let Some(steps) = path.trim().strip_prefix('$').and_then(json_path) else { return null };
    let Ok(mut j) = serde_json::from_str::<Json>(text) else { return null };
    for s in steps {
        j = match (s, j) {
            (PathStep::Key(k), Json::Object(mut m)) => match m.remove(&k) {
                Some(x) => x,
                None => return null,
            },
            (PathStep::Index(i), Json::Array(mut v)) => {
                let n = v.len() as i64;
                let i = if i < 0 { n + i } else { i };
                if !(0..n).contains(&i) {
                    return null;
                }
                v.swap_remove(i as usize)
            }
            _ => return null,
        };
    }
    if j.is_null() {
        return null;
    }
    match ty {
        KqlType::Dynamic => out(Some(j)),
        KqlType::String => s_str(Some(json_to_text(&j))),
        _ => v_convert(&V::Json(j), ty, true),
    }
}

/// The type a `typeof(T)` argument names (the binder passes it as a null literal of `T`).
pub(super) fn type_of_typeof(t: &TypedExpr, name: &str) -> Result<KqlType> {
    match &t.expr {
        Expr::Literal(v, _) if v.is_null() => Ok(t.ty),
        Expr::Literal(v, _) => sv_str(v)
            .and_then(KqlType::from_name)
            .ok_or_else(|| PlanError::semantic(format!("{name}: the last argument must be typeof(<type>)"))),
        _ => Err(PlanError::semantic(format!("{name}: the last argument must be typeof(<type>)"))),
    }
}

/// `extract_json(path, text[, typeof(T)])` (alias `extractjson`).
pub(super) fn lower_extract_json(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let ty = match args.get(2) {
        Some(t) => type_of_typeof(t, name)?,
        None => String,
    };
    let path = to(args.remove(0), String)?;
    let text = to(args.remove(0), String)?;
    let ret = if ty == Int { Long } else { ty };
    let e = row_call(&format!("extract_json_{}", ret.name()), ret.arrow_type(), extract_json_row, vec![path, text, lit(ret.name())]);
    let e = TypedExpr::new(e, ret);
    if ty == Int { lower_cast(e, Int) } else { Ok(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(json_path(".a['b'][1]").is_some());
        assert!(json_path("a").is_none());
    }
}
