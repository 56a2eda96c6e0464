//! More KQL scalar functions: trigonometry, `strcmp`, base64, digests, array sorting, bag
//! merging and `zip`, and the scalar `range(start, stop, step)`.

use std::cmp::Ordering;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::{Map, Value as Json};

use super::conversion::{V, json_text, lower_cast, v_of};
use super::udf::{RowFn, RowState, row_call, s_f64, s_i64, s_str, sv_bool, sv_f64, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// Largest array `range()` builds.
const MAX_RANGE: usize = 1_048_576;

fn real(a: TypedExpr, f: &str) -> Result<Expr> {
    if !(a.ty.is_numeric() || a.ty == KqlType::Dynamic) {
        return Err(PlanError::semantic(format!("function '{f}' expects a numeric argument, got {}", a.ty)));
    }
    Ok(lower_cast(a, KqlType::Real)?.expr)
}

fn unary_f64(args: &[ScalarValue], op: fn(f64) -> f64) -> ScalarValue {
    s_f64(args.first().and_then(sv_f64).map(op))
}

fn cos_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::cos)
}
fn sin_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::sin)
}
fn tan_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::tan)
}
fn acos_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::acos)
}
fn asin_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::asin)
}
fn atan_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::atan)
}
fn cot_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, |x| 1.0 / x.tan())
}
fn degrees_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::to_degrees)
}
fn radians_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary_f64(a, f64::to_radians)
}
fn atan2_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // Kusto: atan2(y, x).
    match (a.first().and_then(sv_f64), a.get(1).and_then(sv_f64)) {
        (Some(y), Some(x)) => s_f64(Some(y.atan2(x))),
        _ => s_f64(None),
    }
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

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn b64_encode_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(base64_encode(a.first().and_then(sv_str).unwrap_or("").as_bytes())))
}

fn b64_decode_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let s = a.first().and_then(sv_str).unwrap_or("");
    // Kusto: an invalid input or a result that is not UTF-8 gives null.
    match base64_decode(s).map(String::from_utf8) {
        Some(Ok(t)) => s_str(Some(t)),
        _ => s_str(None),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (FIPS 180-4).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate().take(16) {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// MD5 (RFC 1321).
pub(crate) fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for block in msg.chunks(64) {
        let mut m = [0u32; 16];
        for (i, word) in block.chunks(4).enumerate().take(16) {
            m[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f2 = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f2.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

fn sha256_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match a.first().and_then(sv_str) {
        Some(s) => s_str(Some(hex(&sha256(s.as_bytes())))),
        None => s_str(None),
    }
}

fn md5_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match a.first().and_then(sv_str) {
        Some(s) => s_str(Some(hex(&md5(s.as_bytes())))),
        None => s_str(None),
    }
}

fn json_of(v: &ScalarValue) -> Option<Json> {
    match v_of(v, KqlType::Dynamic) {
        V::Json(j) => Some(j),
        _ => None,
    }
}

fn out(j: Option<Json>) -> ScalarValue {
    s_str(j.as_ref().and_then(json_text))
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
    let Some(Json::Object(mut o)) = a.first().and_then(json_of) else { return s_str(None) };
    if let Some(Json::Array(keys)) = a.get(1).and_then(json_of) {
        for k in keys {
            if let Json::String(k) = k {
                o.remove(&k);
            }
        }
    }
    out(Some(Json::Object(o)))
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

/// The data type of [`mv_expand_call`]: a list of JSON texts.
pub fn mv_expand_type() -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::{DataType, Field};
    DataType::List(std::sync::Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// The elements of one `mv-expand` value: array elements; a property bag's properties as
/// single-property bags (`kind=bag`) or `[key, value]` pairs (`kind=array`); null or an empty
/// collection gives none; any other value is one element.
fn mv_elements(v: &ScalarValue, bag_as_array: bool) -> Vec<Json> {
    match json_of(v) {
        None | Some(Json::Null) => Vec::new(),
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
        args.push(dynamic(v)?);
    }
    Ok(row_call("mv_expand", mv_expand_type(), mv_expand_row, args))
}

fn typed(name: &str, ty: KqlType, f: RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, ty.arrow_type(), f, args), ty)
}

fn dynamic(a: TypedExpr) -> Result<Expr> {
    Ok(lower_cast(a, KqlType::Dynamic)?.expr)
}

fn string(a: TypedExpr) -> Result<Expr> {
    Ok(lower_cast(a, KqlType::String)?.expr)
}

/// `cos`, `sin`, `tan`, `acos`, `asin`, `atan`, `cot`, `degrees`, `radians`: one real to a real.
pub(super) fn lower_trig(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: RowFn = match name {
        "cos" => cos_row,
        "sin" => sin_row,
        "tan" => tan_row,
        "acos" => acos_row,
        "asin" => asin_row,
        "atan" => atan_row,
        "cot" => cot_row,
        "degrees" => degrees_row,
        "radians" => radians_row,
        _ => return Err(PlanError::Internal(format!("'{name}' is no trigonometric function"))),
    };
    let a = args.into_iter().map(|a| real(a, name)).collect::<Result<Vec<_>>>()?;
    Ok(typed(name, KqlType::Real, f, a))
}

pub(super) fn lower_atan2(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(|a| real(a, name)).collect::<Result<Vec<_>>>()?;
    Ok(typed(name, KqlType::Real, atan2_row, a))
}

pub(super) fn lower_strcmp(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(string).collect::<Result<Vec<_>>>()?;
    Ok(typed("strcmp", KqlType::Long, strcmp_row, a))
}

/// `base64_encode_tostring` (alias `base64_encodestring`).
pub(super) fn lower_base64_encode_tostring(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(string).collect::<Result<Vec<_>>>()?;
    Ok(typed("base64_encode_tostring", KqlType::String, b64_encode_row, a))
}

/// `base64_decode_tostring` (alias `base64_decodestring`).
pub(super) fn lower_base64_decode_tostring(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(string).collect::<Result<Vec<_>>>()?;
    Ok(typed("base64_decode_tostring", KqlType::String, b64_decode_row, a))
}

pub(super) fn lower_hash_sha256(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(string).collect::<Result<Vec<_>>>()?;
    Ok(typed("hash_sha256", KqlType::String, sha256_row, a))
}

pub(super) fn lower_hash_md5(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(string).collect::<Result<Vec<_>>>()?;
    Ok(typed("hash_md5", KqlType::String, md5_row, a))
}

/// `array_sort_asc` / `array_sort_desc` `(array[, nulls_last])`.
pub(super) fn lower_array_sort(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut it = args.into_iter();
    let arr = it.next().ok_or_else(|| PlanError::Internal("array_sort".into()))?;
    if arr.ty != KqlType::Dynamic {
        return Err(PlanError::semantic(format!("function '{name}' expects a dynamic array, got {}", arr.ty)));
    }
    let nulls_last = match it.next() {
        Some(b) => lower_cast(b, KqlType::Bool)?.expr,
        None => lit(true),
    };
    Ok(typed("array_sort", KqlType::Dynamic, array_sort_row, vec![arr.expr, lit(name == "array_sort_desc"), nulls_last]))
}

pub(super) fn lower_bag_merge(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(dynamic).collect::<Result<Vec<_>>>()?;
    Ok(typed("bag_merge", KqlType::Dynamic, bag_merge_row, a))
}

pub(super) fn lower_bag_remove_keys(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(dynamic).collect::<Result<Vec<_>>>()?;
    Ok(typed("bag_remove_keys", KqlType::Dynamic, bag_remove_keys_row, a))
}

pub(super) fn lower_zip(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(dynamic).collect::<Result<Vec<_>>>()?;
    Ok(typed("zip", KqlType::Dynamic, zip_row, a))
}

/// The scalar `range(start, stop[, step])`: an array of longs when every argument is an
/// integer, of reals otherwise.
pub(super) fn lower_range(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let all_long = args.iter().all(|a| matches!(a.ty, Int | Long));
    let to = if all_long { Long } else { Real };
    if !args.iter().all(|a| a.ty.is_numeric()) {
        return Err(PlanError::unsupported("range() over non-numeric values"));
    }
    let a = args.into_iter().map(|a| lower_cast(a, to).map(|t| t.expr)).collect::<Result<Vec<_>>>()?;
    Ok(typed(if all_long { "range_long" } else { "range_real" }, Dynamic, range_row, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors() {
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"The quick brown fox jumps over the lazy dog")), "9e107d9d372bb6826bd81d3542a419d6");
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_encode(b"Kusto"), "S3VzdG8=");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_decode("S3VzdG8=").as_deref(), Some(&b"Kusto"[..]));
        assert_eq!(base64_decode("a$b"), None);
    }
}
