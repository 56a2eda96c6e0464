//! KQL string functions. Results of type string are never null (Kusto strings have no null);
//! bad input (invalid regex, out-of-range positions) yields an empty string, null or -1 as
//! Kusto documents, never an error.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;

use super::conversion::{lower_cast, v_of};
use super::operators::{check_regex_literal, is_stringish, to_string_operand};
use super::udf::{RowState, row_call, row_call_vol, s_bool, s_i64, s_str, sv_i64, sv_str, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// Largest string a string-building function may produce (bytes); beyond it the result is null.
const MAX_STRING: usize = 16 * 1024 * 1024;

fn strings(args: Vec<TypedExpr>) -> Result<Vec<Expr>> {
    args.into_iter().map(|a| lower_cast(a, KqlType::String).map(|t| t.expr)).collect()
}

fn string_arg(a: TypedExpr, fname: &str) -> Result<Expr> {
    if !is_stringish(a.ty) {
        return Err(PlanError::semantic(format!("function '{fname}' expects a string argument, got {}", a.ty)));
    }
    Ok(to_string_operand(a)?.expr)
}

fn long_arg(a: TypedExpr, fname: &str) -> Result<Expr> {
    if !(a.ty.is_numeric() || a.ty == KqlType::Dynamic) {
        return Err(PlanError::semantic(format!("function '{fname}' expects a numeric argument, got {}", a.ty)));
    }
    Ok(lower_cast(a, KqlType::Long)?.expr)
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

fn cap(s: String) -> ScalarValue {
    if s.len() > MAX_STRING { s_str(None) } else { s_str(Some(s)) }
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

/// `url_encode` (.NET `HttpUtility.UrlEncode`: space as `+`, lower-case hex) and
/// `url_encode_component` (space as `%20`; lower-case hex, as the function's doc example shows).
fn url_encode_with(args: &[ScalarValue], component: bool) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty);
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b'~' if component => out.push('~'),
            b'!' | b'*' | b'(' | b')' if !component => out.push(b as char),
            b' ' if !component => out.push('+'),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    s_str(Some(out))
}

fn url_encode_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    url_encode_with(args, false)
}

fn url_encode_component_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    url_encode_with(args, true)
}

fn url_decode_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = args.first().map_or("", sv_str_or_empty).as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s.get(i) {
            Some(b'%') => {
                let h = s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => return s_str(None),
                }
            }
            Some(b'+') => {
                out.push(b' ');
                i += 1;
            }
            Some(b) => {
                out.push(*b);
                i += 1;
            }
            None => break,
        }
    }
    s_str(String::from_utf8(out).ok())
}

fn isempty_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_bool(Some(args.first().is_none_or(|v| v.is_null() || sv_str(v) == Some(""))))
}

/// XXH64 (seed 0) of the value's text form, as a signed long: Kustodian's `hash()`.
pub(crate) fn xxh64(data: &[u8], seed: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
    }
    fn merge(acc: u64, val: u64) -> u64 {
        (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
    }
    let rd64 = |b: &[u8]| -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(a)
    };
    let rd32 = |b: &[u8]| -> u64 {
        let mut a = [0u8; 4];
        a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
        u64::from(u32::from_le_bytes(a))
    };
    let len = data.len();
    let mut rest = data;
    let mut h: u64;
    if len >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (k, vk) in v.iter_mut().enumerate() {
                *vk = round(*vk, rd64(rest.get(k * 8..).unwrap_or(&[])));
            }
            rest = rest.get(32..).unwrap_or(&[]);
        }
        h = v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7)).wrapping_add(v[2].rotate_left(12)).wrapping_add(v[3].rotate_left(18));
        for vk in v {
            h = merge(h, vk);
        }
    } else {
        h = seed.wrapping_add(P5);
    }
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= round(0, rd64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = rest.get(8..).unwrap_or(&[]);
    }
    if rest.len() >= 4 {
        h ^= rd32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = rest.get(4..).unwrap_or(&[]);
    }
    for b in rest {
        h ^= u64::from(*b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

fn hash_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(v) = args.first() else { return s_i64(None) };
    if v.is_null() {
        return s_i64(None);
    }
    let h = xxh64(sv_str_or_empty(v).as_bytes(), 0) as i64;
    match args.get(1).map(sv_i64) {
        None => s_i64(Some(h)),
        Some(Some(m)) if m > 0 => s_i64(Some(h.rem_euclid(m))),
        Some(_) => s_i64(None),
    }
}

fn hash_datetime_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // The argument is already the datetime's ticks (`tolong(datetime)`).
    let Some(ticks) = args.first().and_then(sv_i64) else { return s_i64(None) };
    let h = xxh64(&ticks.to_le_bytes(), 0) as i64;
    match args.get(1).map(sv_i64) {
        None => s_i64(Some(h)),
        Some(Some(m)) if m > 0 => s_i64(Some(h.rem_euclid(m))),
        Some(_) => s_i64(None),
    }
}

fn new_guid_row(_args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut halves = [0u64; 2];
    for (i, h) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(c);
        hasher.write_usize(i);
        *h = hasher.finish();
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&halves[0].to_le_bytes());
    b[8..].copy_from_slice(&halves[1].to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s_str(Some(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])))
}

fn gettype_dyn_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let t = match args.first().map(|v| v_of(v, KqlType::Dynamic)) {
        Some(super::conversion::V::Json(j)) => match j {
            Json::Array(_) => "array",
            Json::Object(_) => "dictionary",
            Json::String(_) => "string",
            Json::Bool(_) => "bool",
            Json::Number(n) if n.is_f64() => "real",
            Json::Number(_) => "long",
            Json::Null => "null",
        },
        _ => "null",
    };
    s_str(Some(t.to_string()))
}

fn tohex_int_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = args.first().and_then(sv_i64) else { return s_str(None) };
    let w = args.get(1).and_then(sv_i64).unwrap_or(0).clamp(0, 64) as usize;
    s_str(Some(format!("{:0w$x}", x as i32 as u32, w = w)))
}

fn tohex_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = args.first().and_then(sv_i64) else { return s_str(None) };
    let w = args.get(1).and_then(sv_i64).unwrap_or(0).clamp(0, 64) as usize;
    s_str(Some(format!("{:0w$x}", x as u64, w = w)))
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
    Ok(st("trim", trim_row, a))
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
    Ok(st("replace_regex", replace_regex_row, strings(vec![text, re, rw])?))
}

/// `extract(regex, group, text[, typeof(T)])`.
pub(super) fn lower_extract(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    check_regex_literal(&args[0].expr)?;
    let typ = if args.len() == 4 { Some(args.remove(3)) } else { None };
    let re = string_arg(args.remove(0), name)?;
    let g = long_arg(args.remove(0), name)?;
    let text = lower_cast(args.remove(0), KqlType::String)?.expr;
    let Some(t) = typ else { return Ok(st("extract", extract_row, vec![re, g, text])) };
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

/// `extract_all(regex, text)`; the form with a list of capture groups is not implemented.
pub(super) fn lower_extract_all(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    if args.len() == 3 {
        return Err(PlanError::unsupported("function 'extract_all' with capture-group list"));
    }
    check_regex_literal(&args[0].expr)?;
    let re = string_arg(args.remove(0), name)?;
    let text = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(dy("extract_all", extract_all_row, vec![re, text]))
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

pub(super) fn lower_url_encode(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("url_encode", url_encode_row, strings(args)?))
}

pub(super) fn lower_url_encode_component(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("url_encode_component", url_encode_component_row, strings(args)?))
}

pub(super) fn lower_url_decode(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(st("url_decode", url_decode_row, strings(args)?))
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
    Ok(TypedExpr::new(if name == "isempty" { e } else { Expr::Not(Box::new(e)) }, KqlType::Bool))
}

/// `isnull` / `isnotnull`.
pub(super) fn lower_isnull(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    // Kusto strings are never null.
    let e = if a.ty == KqlType::String {
        lit(name == "isnotnull")
    } else if name == "isnull" {
        Expr::IsNull(Box::new(a.expr))
    } else {
        Expr::IsNotNull(Box::new(a.expr))
    };
    Ok(TypedExpr::new(e, KqlType::Bool))
}

/// `hash(value[, mod])` (alias `hash_xxhash64`): XXH64 of the value's text form, or of a
/// datetime's ticks.
pub(super) fn lower_hash(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let v = args.remove(0);
    if v.ty == KqlType::Datetime {
        // Kusto hashes a datetime's ticks (100 ns since 0001-01-01), little-endian.
        let ticks = lower_cast(v, KqlType::Long)?.expr;
        let mut a = vec![ticks];
        if let Some(m) = args.pop() {
            a.push(long_arg(m, name)?);
        }
        return Ok(lg("hash_datetime", hash_datetime_row, a));
    }
    let v = if v.ty == KqlType::String { v.expr } else { lower_cast(v, KqlType::String)?.expr };
    let mut a = vec![v];
    if let Some(m) = args.pop() {
        a.push(long_arg(m, name)?);
    }
    Ok(lg("hash", hash_row, a))
}

pub(super) fn lower_new_guid(_: &str, _: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call_vol("new_guid", KqlType::Guid.arrow_type(), new_guid_row, vec![], datafusion::logical_expr::Volatility::Volatile);
    Ok(TypedExpr::new(e, KqlType::Guid))
}

/// `gettype(x)`: a constant for a value of a fixed type, computed per row for a dynamic one.
pub(super) fn lower_gettype(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    if a.ty == KqlType::Dynamic {
        return Ok(st("gettype", gettype_dyn_row, vec![a.expr]));
    }
    let tn = match a.ty {
        KqlType::Timespan => "timespan",
        t => t.name(),
    };
    Ok(TypedExpr::new(lit(tn), KqlType::String))
}

pub(super) fn lower_tohex(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    // An int is printed as 32 bits (two's complement), a long as 64.
    let int = args.first().is_some_and(|a| a.ty == KqlType::Int);
    let mut a = Vec::new();
    for x in args {
        a.push(long_arg(x, name)?);
    }
    Ok(if int { st("tohex_int", tohex_int_row, a) } else { st("tohex", tohex_row, a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_known_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn rewrite() {
        assert_eq!(rewrite_pattern(r"\1-\2$"), "${1}-${2}$$");
    }
}
