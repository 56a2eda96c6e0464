//! Regular-expression functions: `trim`/`trim_start`/`trim_end`, `replace_regex` (and the legacy
//! `replace`), `extract`, `extract_all`, `indexof_regex`. A constant pattern that does not
//! compile is a planning error; a computed one that does not compile yields an empty string,
//! null or -1, as Kusto documents.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;

use super::args::{arg_i64, arg_str, integer, long_arg, to, typed};
use super::conversion::lower_cast;
use super::operators::check_regex_literal;
use super::string::{string_arg, strings};
use super::udf::{RowState, cap, row_call, s_i64, s_str, sv_i64, sv_str, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// `[regex, text, mode]` with mode 0 = both ends, 1 = start, 2 = end.
fn trim_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let pat = args.first().map_or("", sv_str_or_empty);
    let text = args.get(1).map_or("", sv_str_or_empty);
    let mode = args.get(2).and_then(sv_i64).unwrap_or(0);
    let mut out = text;
    if mode != 2 {
        let p = format!("^(?:{pat})+");
        match st.regex(&p) {
            Some(re) => {
                if let Some(m) = re.find(out) {
                    out = out.get(m.end()..).unwrap_or("");
                }
            }
            None => return s_str(Some(String::new())),
        }
    }
    if mode != 1 {
        let p = format!("(?:{pat})+$");
        match st.regex(&p) {
            Some(re) => {
                if let Some(m) = re.find(out) {
                    out = out.get(..m.start()).unwrap_or("");
                }
            }
            None => return s_str(Some(String::new())),
        }
    }
    s_str(Some(out.to_string()))
}

/// Kusto rewrite strings use `\1` for groups; the regex crate uses `${1}`.
fn rewrite_pattern(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

fn replace_regex_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let t = args.first().map_or("", sv_str_or_empty);
    let p = args.get(1).map_or("", sv_str_or_empty);
    let r = rewrite_pattern(args.get(2).map_or("", sv_str_or_empty));
    match st.regex(p) {
        Some(re) => cap(re.replace_all(t, r.as_str()).into_owned()),
        None => s_str(Some(t.to_string())),
    }
}

fn extract_str(args: &[ScalarValue], st: &mut RowState) -> Option<String> {
    let p = sv_str(args.first()?)?;
    let g = usize::try_from(sv_i64(args.get(1)?)?).ok()?;
    let t = sv_str_or_empty(args.get(2)?);
    let re = st.regex(p)?;
    let caps = re.captures(t)?;
    caps.get(g).map(|m| m.as_str().to_string())
}

fn extract_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_str(Some(extract_str(args, st).unwrap_or_default()))
}

/// `extract` with a result type: `[regex, group, text, type_name]`.
fn extract_typed_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let Some(to) = args.get(3).and_then(super::conversion::tag_type) else { return ScalarValue::Null };
    match extract_str(args, st) {
        Some(s) => super::conversion::v_convert(&super::conversion::V::Str(s), to, true),
        None => ScalarValue::try_from(&to.arrow_type()).unwrap_or(ScalarValue::Null),
    }
}

fn extract_all_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let (Some(p), Some(t)) = (args.first().and_then(sv_str), args.get(1)) else { return s_str(None) };
    let t = sv_str_or_empty(t);
    let Some(re) = st.regex(p) else { return s_str(None) };
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for c in re.captures_iter(t) {
        let item = match groups {
            0 => c.get(0).map_or(Json::Null, |m| Json::String(m.as_str().into())),
            1 => c.get(1).map_or(Json::Null, |m| Json::String(m.as_str().into())),
            _ => Json::Array((1..=groups).map(|i| c.get(i).map_or(Json::Null, |m| Json::String(m.as_str().into()))).collect()),
        };
        out.push(item);
    }
    if out.is_empty() { s_str(None) } else { s_str(Some(Json::Array(out).to_string())) }
}

/// `extract_all(regex, groups, text)`: per match, the listed capture groups (numbers, or names
/// of `(?P<name>...)` groups) as an array.
fn extract_all_groups_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let (Some(p), Some(groups), Some(t)) = (args.first().and_then(sv_str), args.get(1).and_then(super::json::array_of), args.get(2)) else {
        return s_str(None);
    };
    let t = sv_str_or_empty(t).to_string();
    let Some(re) = st.regex(p) else { return s_str(None) };
    let mut out = Vec::new();
    for c in re.captures_iter(&t) {
        let pick = |g: &Json| match g {
            Json::Number(n) => n.as_u64().and_then(|i| usize::try_from(i).ok()).and_then(|i| c.get(i)),
            Json::String(name) => c.name(name),
            _ => None,
        };
        out.push(Json::Array(groups.iter().map(|g| pick(g).map_or(Json::Null, |m| Json::String(m.as_str().into()))).collect()));
    }
    if out.is_empty() { s_str(None) } else { s_str(Some(Json::Array(out).to_string())) }
}

/// `[text, regex, start, length, occurrence]`; positions count characters.
fn indexof_regex_row(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let (Some(text), Some(pat)) = (a.first().and_then(sv_str), arg_str(a, 1)) else { return s_i64(None) };
    let (Some(start), Some(len), Some(occ)) = (arg_i64(a, 2), arg_i64(a, 3), arg_i64(a, 4)) else { return s_i64(None) };
    if start < 0 || occ < 0 || len < -1 {
        return s_i64(None);
    }
    let Some(re) = st.regex(pat) else { return s_i64(None) };
    let offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let nchars = offsets.len() - 1;
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    if start > nchars {
        return s_i64(Some(-1));
    }
    let end = if len == -1 { nchars } else { start.saturating_add(usize::try_from(len).unwrap_or(0)).min(nchars) };
    let hay = &text[offsets[start]..offsets[end]];
    let occ = usize::try_from(occ.max(1)).unwrap_or(1);
    match re.find_iter(hay).nth(occ - 1) {
        Some(m) => {
            let byte = offsets[start] + m.start();
            s_i64(Some(offsets.iter().position(|o| *o == byte).unwrap_or(0) as i64))
        }
        None => s_i64(Some(-1)),
    }
}

/// `trim`, `trim_start`, `trim_end`: `(regex, text)`.
pub(super) fn lower_trim(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    check_regex_literal(&args[0].expr)?;
    let mode = match name {
        "trim" => 0i64,
        "trim_start" => 1,
        _ => 2,
    };
    let mut a = vec![string_arg(args.remove(0), name)?, lower_cast(args.remove(0), KqlType::String)?.expr];
    a.push(lit(mode));
    Ok(typed("trim", KqlType::String, trim_row, a))
}

/// `replace_regex(text, regex, rewrite)` and the legacy `replace(regex, rewrite, text)`.
pub(super) fn lower_replace_regex(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let (text, re, rw) = if name == "replace" {
        let t = args.remove(2);
        let re = args.remove(0);
        (t, re, args.remove(0))
    } else {
        let t = args.remove(0);
        let re = args.remove(0);
        (t, re, args.remove(0))
    };
    check_regex_literal(&re.expr)?;
    Ok(typed("replace_regex", KqlType::String, replace_regex_row, strings(vec![text, re, rw])?))
}

/// `extract(regex, group, text[, typeof(T)])`.
pub(super) fn lower_extract(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    check_regex_literal(&args[0].expr)?;
    let typ = if args.len() == 4 { Some(args.remove(3)) } else { None };
    let re = string_arg(args.remove(0), name)?;
    let g = long_arg(args.remove(0), name)?;
    let text = lower_cast(args.remove(0), KqlType::String)?.expr;
    let Some(t) = typ else { return Ok(typed("extract", KqlType::String, extract_row, vec![re, g, text])) };
    let to = match &t.expr {
        // The binder passes `typeof(long)` as a null literal of that type.
        Expr::Literal(v, _) if v.is_null() => Some(t.ty),
        Expr::Literal(v, _) => sv_str(v).and_then(KqlType::from_name),
        _ => None,
    };
    let Some(to) = to else {
        return Err(PlanError::semantic("extract: the 4th argument must be typeof(<type>) (a constant type name)"));
    };
    let expr = row_call(&format!("extract_{}", to.name()), to.arrow_type(), extract_typed_row, vec![re, g, text, lit(to.name())]);
    Ok(TypedExpr::new(expr, to))
}

/// `extract_all(regex, [groups,] text)`.
pub(super) fn lower_extract_all(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    check_regex_literal(&args[0].expr)?;
    if args.len() == 3 {
        let re = string_arg(args.remove(0), name)?;
        let groups = lower_cast(args.remove(0), KqlType::Dynamic)?.expr;
        let text = lower_cast(args.remove(0), KqlType::String)?.expr;
        return Ok(typed("extract_all_groups", KqlType::Dynamic, extract_all_groups_row, vec![re, groups, text]));
    }
    let re = string_arg(args.remove(0), name)?;
    let text = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(typed("extract_all", KqlType::Dynamic, extract_all_row, vec![re, text]))
}

/// `indexof_regex(text, regex[, start[, length[, occurrence]]])`.
pub(super) fn lower_indexof_regex(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let mut a = vec![to(args.remove(0), String)?, to(args.remove(0), String)?];
    let defaults = [0i64, -1, 1];
    let mut rest = args.into_iter();
    for d in defaults {
        a.push(match rest.next() {
            Some(x) => integer(x, name)?,
            None => lit(d),
        });
    }
    Ok(typed("indexof_regex", Long, indexof_regex_row, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite() {
        assert_eq!(rewrite_pattern(r"\1-\2$"), "${1}-${2}$$");
    }
}
