//! KQL string functions. Results of type string are never null (Kusto strings have no null);
//! bad input (out-of-range positions, unknown units) yields an empty string, null or -1 as
//! Kusto documents, never an error.

use std::cmp::Ordering;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;

use super::args::{all_to, arg_i64, arg_str, integer, long_arg, real, to, typed};
use super::conversion::lower_cast;
use super::json::{array_of, json_to_text, out_arr};
use super::operators::{check_regex_literal, is_stringish, to_string_operand};
use super::udf::{MAX_STRING, RowState, cap, row_call, s_i64, s_str, sv_f64, sv_i64, sv_str, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// Every argument as a string.
pub(super) fn strings(args: Vec<TypedExpr>) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| lower_cast(a, KqlType::String).map(|t| t.expr)).collect()
}

/// A string (or guid, or dynamic) argument.
pub(super) fn string_arg(a: TypedExpr, fname: &str) -> Result<Expr> {
    if !is_stringish(a.ty) {
        return Err(PlanError::semantic(format!("function '{fname}' expects a string argument, got {}", a.ty)));
    }
    Ok(to_string_operand(a)?.expr)
}

fn st(name: &str, f: super::udf::RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::String.arrow_type(), f, args), KqlType::String)
}

fn lg(name: &str, f: super::udf::RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::Long.arrow_type(), f, args), KqlType::Long)
}

fn dy(name: &str, f: super::udf::RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::Dynamic.arrow_type(), f, args), KqlType::Dynamic)
}

fn strcat_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    cap(args.iter().map(sv_str_or_empty).collect())
}

fn strcat_delim_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some((d, rest)) = args.split_first() else { return s_str(Some(String::new())) };
    cap(rest.iter().map(sv_str_or_empty).collect::<Vec<_>>().join(sv_str_or_empty(d)))
}

fn strlen_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(args.first().map(|s| sv_str_or_empty(s).chars().count() as i64))
}

fn substring_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let Some(start) = args.get(1).and_then(sv_i64) else { return s_str(Some(String::new())) };
    let n = s.chars().count() as i64;
    let start = if start < 0 { (n + start).max(0) } else { start.min(n) };
    let len = match args.get(2) {
        Some(l) => match sv_i64(l) {
            Some(l) if l >= 0 => l,
            Some(_) => return s_str(Some(String::new())),
            None => n,
        },
        None => n,
    };
    s_str(Some(s.chars().skip(start as usize).take(len.min(n) as usize).collect()))
}

fn tolower_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(args.first().map_or("", sv_str_or_empty).to_lowercase()))
}

fn toupper_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(args.first().map_or("", sv_str_or_empty).to_uppercase()))
}

fn split_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let d = args.get(1).map_or("", sv_str_or_empty);
    let parts: Vec<Json> = if d.is_empty() {
        vec![Json::String(s.to_string())]
    } else {
        s.split(d).map(|p| Json::String(p.to_string())).collect()
    };
    let out = match args.get(2) {
        Some(i) => match sv_i64(i) {
            Some(i) if i >= 0 => match parts.get(i as usize) {
                Some(p) => Json::Array(vec![p.clone()]),
                None => Json::Array(vec![]),
            },
            _ => return s_str(None),
        },
        None => Json::Array(parts),
    };
    s_str(Some(out.to_string()))
}

fn replace_string_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let t = args.first().map_or("", sv_str_or_empty);
    let l = args.get(1).map_or("", sv_str_or_empty);
    let r = args.get(2).map_or("", sv_str_or_empty);
    if l.is_empty() {
        return s_str(Some(t.to_string()));
    }
    cap(t.replace(l, r))
}

/// `indexof(source, lookup[, start[, length[, occurrence]]])` in characters; -1 if not found.
fn indexof_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s: Vec<char> = args.first().map_or("", sv_str_or_empty).chars().collect();
    let l: Vec<char> = args.get(1).map_or("", sv_str_or_empty).chars().collect();
    let n = s.len() as i64;
    let start = args.get(2).map_or(Some(0), sv_i64);
    let Some(mut start) = start else { return s_i64(None) };
    if start < 0 {
        start = (n + start).max(0);
    }
    if start > n {
        return s_i64(None);
    }
    // The documented examples examine characters start..=start+length (idx3 and idx8 on the
    // indexof() page only agree under that reading).
    let end = match args.get(3).map(sv_i64) {
        None | Some(Some(-1)) => n,
        Some(Some(len)) if len >= 0 => (start + len + 1).min(n),
        _ => return s_i64(None),
    };
    let occ = match args.get(4).map(sv_i64) {
        None => 1,
        Some(Some(o)) if o > 0 => o,
        _ => return s_i64(None),
    };
    let mut seen = 0;
    let mut i = start;
    while i + l.len() as i64 <= end {
        let from = i as usize;
        if s.get(from..from + l.len()) == Some(l.as_slice()) {
            seen += 1;
            if seen == occ {
                return s_i64(Some(i));
            }
        }
        i += 1;
    }
    s_i64(Some(-1))
}

fn countof_row(args: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    let t = args.first().map_or("", sv_str_or_empty);
    let p = args.get(1).map_or("", sv_str_or_empty);
    let kind = args.get(2).map_or("normal", sv_str_or_empty);
    if p.is_empty() {
        return s_i64(Some(0));
    }
    if kind == "regex" {
        return s_i64(st.regex(p).map(|re| re.find_iter(t).count() as i64));
    }
    // normal: overlapping matches
    let mut count = 0i64;
    let mut from = 0;
    while let Some(i) = t.get(from..).and_then(|x| x.find(p)) {
        count += 1;
        from += i + p.chars().next().map_or(1, char::len_utf8);
    }
    s_i64(Some(count))
}

fn reverse_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(args.first().map_or("", sv_str_or_empty).chars().rev().collect()))
}

fn strrep_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let Some(n) = args.get(1).and_then(sv_i64) else { return s_str(None) };
    let d = args.get(2).map_or("", sv_str_or_empty);
    if n <= 0 {
        return s_str(Some(String::new()));
    }
    let total = (s.len() + d.len()).saturating_mul(n as usize);
    if total > MAX_STRING || n > 1024 * 1024 {
        return s_str(None);
    }
    s_str(Some(vec![s; n as usize].join(d)))
}

pub(super) fn lower_strcat(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("strcat", strcat_row, strings(args)?))
}

pub(super) fn lower_strcat_delim(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("strcat_delim", strcat_delim_row, strings(args)?))
}

pub(super) fn lower_strlen(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(lg("strlen", strlen_row, strings(args)?))
}

pub(super) fn lower_substring(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let s = lower_cast(args.remove(0), KqlType::String)?.expr;
    let mut a = vec![s];
    for x in args {
        a.push(long_arg(x, name)?);
    }
    Ok(st("substring", substring_row, a))
}

pub(super) fn lower_tolower(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("tolower", tolower_row, strings(args)?))
}

pub(super) fn lower_toupper(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("toupper", toupper_row, strings(args)?))
}

pub(super) fn lower_split(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut a = vec![lower_cast(args.remove(0), KqlType::String)?.expr, string_arg(args.remove(0), name)?];
    if let Some(i) = args.pop() {
        a.push(long_arg(i, name)?);
    }
    Ok(dy("split", split_row, a))
}

pub(super) fn lower_replace_string(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("replace_string", replace_string_row, strings(args)?))
}

pub(super) fn lower_indexof(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let s = lower_cast(args.remove(0), KqlType::String)?.expr;
    let l = lower_cast(args.remove(0), KqlType::String)?.expr;
    let mut a = vec![s, l];
    for x in args {
        a.push(long_arg(x, name)?);
    }
    Ok(lg("indexof", indexof_row, a))
}

/// `countof(text, search[, kind])`, kind `"normal"` or `"regex"` (a constant).
pub(super) fn lower_countof(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    if args.len() == 3 {
        let kind = match &args[2].expr {
            Expr::Literal(v, _) => sv_str(v).map(str::to_string),
            _ => None,
        };
        match kind.as_deref() {
            Some("normal") => {}
            Some("regex") => check_regex_literal(&args[1].expr)?,
            _ => return Err(PlanError::semantic("countof: kind must be \"normal\" or \"regex\"")),
        }
    }
    Ok(lg("countof", countof_row, strings(args)?))
}

pub(super) fn lower_reverse(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("reverse", reverse_row, strings(args)?))
}

pub(super) fn lower_strrep(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let s = lower_cast(args.remove(0), KqlType::String)?.expr;
    let k = long_arg(args.remove(0), name)?;
    let mut a = vec![s, k];
    if let Some(d) = args.pop() {
        a.push(lower_cast(d, KqlType::String)?.expr);
    }
    Ok(st("strrep", strrep_row, a))
}

fn strcmp_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let x = a.first().and_then(sv_str).unwrap_or("");
    let y = a.get(1).and_then(sv_str).unwrap_or("");
    s_i64(Some(match x.cmp(y) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }))
}

/// Kusto's match order: the match that ends first wins, ties go to the earlier lookup.
fn replace_strings_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(text) = arg_str(a, 0) else { return s_str(None) };
    let (Some(lookups), Some(rewrites)) = (a.get(1).and_then(array_of), a.get(2).and_then(array_of)) else { return s_str(None) };
    let pairs: Vec<(&str, Option<&str>)> = lookups
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            Json::String(l) if !l.is_empty() => Some((l.as_str(), rewrites.get(i).and_then(Json::as_str))),
            _ => None,
        })
        .collect();
    let mut res = String::with_capacity(text.len());
    let mut cut = 0;
    for (e, _) in text.char_indices().skip(1).chain(std::iter::once((text.len(), ' '))) {
        for (l, r) in &pairs {
            if e >= cut + l.len() && text.is_char_boundary(e - l.len()) && &text[e - l.len()..e] == *l {
                res.push_str(&text[cut..e - l.len()]);
                res.push_str(r.unwrap_or(l));
                cut = e;
                break;
            }
        }
    }
    res.push_str(&text[cut..]);
    s_str(Some(res))
}

fn strcat_array_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let delim = arg_str(a, 1).unwrap_or("");
    let Some(x) = a.first().and_then(array_of) else { return s_str(Some(String::new())) };
    s_str(Some(x.iter().map(json_to_text).collect::<Vec<_>>().join(delim)))
}

fn codepoints_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = arg_str(a, 0).unwrap_or("");
    out_arr(s.chars().map(|c| Json::from(u32::from(c))).collect())
}

fn string_size_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(Some(arg_str(a, 0).unwrap_or("").len() as i64))
}

/// `translate(searchList, replacementList, source)`.
fn translate_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let search: Vec<char> = arg_str(a, 0).unwrap_or("").chars().collect();
    let repl: Vec<char> = arg_str(a, 1).unwrap_or("").chars().collect();
    let Some(src) = arg_str(a, 2) else { return s_str(None) };
    let mut res = String::with_capacity(src.len());
    for c in src.chars() {
        match search.iter().position(|s| *s == c) {
            None => res.push(c),
            Some(i) => {
                if let Some(r) = repl.get(i).or(repl.last()) {
                    res.push(*r);
                }
            }
        }
    }
    s_str(Some(res))
}

/// `format_bytes(size, precision, units)`.
fn format_bytes_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    const UNITS: [&str; 7] = ["Bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let Some(size) = a.first().and_then(sv_f64) else { return s_str(Some(String::new())) };
    let prec = arg_i64(a, 1).unwrap_or(0).clamp(0, 15) as usize;
    let unit = arg_str(a, 2).unwrap_or("");
    let idx = if unit.is_empty() {
        let mut i = 0;
        let mut v = size.abs();
        while v >= 1024.0 && i + 1 < UNITS.len() {
            v /= 1024.0;
            i += 1;
        }
        i
    } else {
        match UNITS.iter().position(|u| u.eq_ignore_ascii_case(unit)) {
            Some(i) => i,
            None => return s_str(Some(String::new())),
        }
    };
    let v = size / 1024f64.powi(idx as i32);
    let text = format!("{v:.prec$}");
    s_str(Some(format!("{text} {}", UNITS[idx])))
}

pub(super) fn lower_strcmp(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::String)?;
    Ok(typed("strcmp", KqlType::Long, strcmp_row, a))
}

pub(super) fn lower_replace_strings(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let t = to(args.remove(0), String)?;
    let l = to(args.remove(0), Dynamic)?;
    let r = to(args.remove(0), Dynamic)?;
    Ok(typed("replace_strings", String, replace_strings_row, vec![t, l, r]))
}

pub(super) fn lower_strcat_array(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let a = to(args.remove(0), Dynamic)?;
    let d = to(args.remove(0), String)?;
    Ok(typed("strcat_array", String, strcat_array_row, vec![a, d]))
}

pub(super) fn lower_unicode_codepoints_from_string(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("unicode_codepoints_from_string", Dynamic, codepoints_row, all_to(args, String)?))
}

pub(super) fn lower_string_size(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("string_size", Long, string_size_row, all_to(args, String)?))
}

pub(super) fn lower_translate(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("translate", String, translate_row, all_to(args, String)?))
}

/// `format_bytes(size[, precision[, units]])`.
pub(super) fn lower_format_bytes(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let mut a = vec![real(args.remove(0), name)?];
    if !args.is_empty() {
        a.push(integer(args.remove(0), name)?);
    } else {
        a.push(lit(0i64));
    }
    if let Some(u) = args.pop() {
        a.push(to(u, String)?);
    }
    Ok(typed("format_bytes", String, format_bytes_row, a))
}

// ---------- punycode ----------

fn punycode_from_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(a.first().and_then(sv_str).and_then(idna::punycode::encode_str))
}

fn punycode_to_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(a.first().and_then(sv_str).and_then(idna::punycode::decode_to_string))
}

/// `punycode_from_string(s)` and `punycode_to_string(s)` (RFC 3492, the `idna` crate's
/// codec); text that does not encode or decode gives null.
pub(super) fn lower_punycode(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: super::udf::RowFn = if name == "punycode_from_string" { punycode_from_row } else { punycode_to_row };
    Ok(super::args::typed(name, KqlType::String, f, super::args::all_to(args, KqlType::String)?))
}

// ---------- codepoints to string ----------

fn codepoints_to_string_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let mut out = String::new();
    for v in a {
        let Some(text) = sv_str(v) else { return s_str(None) };
        let values = match serde_json::from_str::<Json>(text) {
            Ok(Json::Array(items)) => items,
            Ok(other) => vec![other],
            Err(_) => return s_str(None),
        };
        for x in values {
            let Some(c) = x.as_i64().and_then(|c| u32::try_from(c).ok()).and_then(char::from_u32) else { return s_str(None) };
            out.push(c);
        }
    }
    cap(out)
}

/// `unicode_codepoints_to_string(c, ...)` (`make_string`): code points as numbers or dynamic
/// arrays of numbers; one that is no Unicode scalar value makes the result null.
pub(super) fn lower_codepoints_to_string(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(typed("unicode_codepoints_to_string", KqlType::String, codepoints_to_string_row, all_to(args, KqlType::Dynamic)?))
}


fn has_any_index_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(source), Some(values)) = (arg_str(args, 0), args.get(1).and_then(array_of)) else {
        return s_i64(None);
    };
    let found = values.iter().position(|v| {
        let term = json_to_text(v);
        !term.is_empty() && super::terms::has(source, &term)
    });
    s_i64(Some(found.map_or(-1, |i| i64::try_from(i).unwrap_or(-1))))
}

/// `has_any_index(source, values)`: the index in the array `values` of the first element that
/// `source` has as a term (the `has` operator's matching), or -1.
pub(super) fn lower_has_any_index(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let values = args.pop().map(|v| lower_cast(v, KqlType::Dynamic)).transpose()?;
    let source = string_arg(args.remove(0), name)?;
    let values = values.map(|v| v.expr).ok_or_else(|| PlanError::semantic(format!("function '{name}' expects 2 arguments")))?;
    Ok(lg(name, has_any_index_row, vec![source, values]))
}

fn isascii_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_bool(a.first().and_then(sv_str).map(str::is_ascii))
}

/// `isascii(s)`, `isutf8(s)` (Kusto strings are UTF-8: true for any string).
pub(super) fn lower_isascii(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let s = string_arg(args.remove(0), name)?;
    if name == "isutf8" {
        return Ok(TypedExpr::new(datafusion::logical_expr::Expr::IsNotNull(Box::new(s)), KqlType::Bool));
    }
    Ok(TypedExpr::new(row_call(name, KqlType::Bool.arrow_type(), isascii_row, vec![s]), KqlType::Bool))
}

fn regex_quote_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // .NET's Regex.Escape: \ * + ? | { [ ( ) ^ $ . # and white space.
    s_str(a.first().and_then(sv_str).map(|t| {
        let mut o = String::with_capacity(t.len());
        for c in t.chars() {
            match c {
                '\\' | '*' | '+' | '?' | '|' | '{' | '[' | '(' | ')' | '^' | '$' | '.' | '#' | ' ' => {
                    o.push('\\');
                    o.push(c);
                }
                '\t' => o.push_str("\\t"),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\x0c' => o.push_str("\\f"),
                _ => o.push(c),
            }
        }
        o
    }))
}

/// `regex_quote(s)`: `s` with the regex metacharacters escaped.
pub(super) fn lower_regex_quote(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st(name, regex_quote_row, vec![string_arg(args.remove(0), name)?]))
}

fn punycode_domain_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(t), Some(to_ascii)) = (a.first().and_then(sv_str), a.get(1).and_then(super::udf::sv_bool)) else { return s_str(None) };
    if to_ascii {
        s_str(idna::domain_to_ascii(t).ok())
    } else {
        let (u, r) = idna::domain_to_unicode(t);
        s_str(r.ok().map(|()| u))
    }
}

/// `punycode_domain_from_string(domain)` (to punycode, label by label) and
/// `punycode_domain_to_string`.
pub(super) fn lower_punycode_domain(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let t = string_arg(args.remove(0), name)?;
    Ok(st(name, punycode_domain_row, vec![t, lit(name == "punycode_domain_from_string")]))
}
