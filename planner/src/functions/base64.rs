//! Base64: of a string's UTF-8 bytes (`base64_encode_tostring`, `base64_decode_tostring`), of a
//! byte array (`base64_*_fromarray`/`_toarray`) and of a guid's bytes in .NET order
//! (`base64_*_fromguid`/`_toguid`). Undecodable input yields null.

use datafusion::common::ScalarValue;
use serde_json::Value as Json;

use super::args::{all_to, arg_str, typed};
use super::conversion::parse_guid;
use super::json::{array_of, out_arr};
use super::udf::{RowState, s_str, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

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

fn b64_toarray_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(s) = arg_str(a, 0) else { return s_str(None) };
    match base64_decode(s) {
        Some(b) => out_arr(b.into_iter().map(Json::from).collect()),
        None => s_str(None),
    }
}

fn b64_fromarray_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(array_of) else { return s_str(None) };
    let mut bytes = Vec::with_capacity(x.len());
    for e in x {
        match e.as_i64().and_then(|b| u8::try_from(b).ok()) {
            Some(b) => bytes.push(b),
            None => return s_str(None),
        }
    }
    s_str(Some(base64_encode(&bytes)))
}

/// .NET's `Guid.ToByteArray` order: the first three fields little-endian.
fn guid_bytes_order(b: &mut [u8; 16]) {
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
}

fn b64_toguid_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(bytes) = arg_str(a, 0).and_then(base64_decode) else { return s_str(None) };
    let Ok(mut b) = <[u8; 16]>::try_from(bytes.as_slice()) else { return s_str(None) };
    guid_bytes_order(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s_str(Some(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])))
}

fn b64_fromguid_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(g) = arg_str(a, 0).and_then(parse_guid) else { return s_str(None) };
    let hex: String = g.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
            Ok(v) => *x = v,
            Err(_) => return s_str(None),
        }
    }
    guid_bytes_order(&mut b);
    s_str(Some(base64_encode(&b)))
}

/// `base64_encode_tostring` (alias `base64_encodestring`).
pub(super) fn lower_base64_encode_tostring(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::String)?;
    Ok(typed("base64_encode_tostring", KqlType::String, b64_encode_row, a))
}

/// `base64_decode_tostring` (alias `base64_decodestring`).
pub(super) fn lower_base64_decode_tostring(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::String)?;
    Ok(typed("base64_decode_tostring", KqlType::String, b64_decode_row, a))
}

pub(super) fn lower_base64_decode_toarray(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("base64_decode_toarray", Dynamic, b64_toarray_row, all_to(args, String)?))
}

pub(super) fn lower_base64_encode_fromarray(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("base64_encode_fromarray", String, b64_fromarray_row, all_to(args, Dynamic)?))
}

pub(super) fn lower_base64_decode_toguid(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("base64_decode_toguid", Guid, b64_toguid_row, all_to(args, String)?))
}

pub(super) fn lower_base64_encode_fromguid(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    if !matches!(args[0].ty, Guid | String | Dynamic) {
        return Err(PlanError::semantic(format!("function '{name}' expects a guid, got {}", args[0].ty)));
    }
    Ok(typed("base64_encode_fromguid", String, b64_fromguid_row, all_to(args, String)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_encode(b"Kusto"), "S3VzdG8=");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_decode("S3VzdG8=").as_deref(), Some(&b"Kusto"[..]));
        assert_eq!(base64_decode("a$b"), None);
    }
}
