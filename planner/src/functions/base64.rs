//! Base64: of a string's UTF-8 bytes (`base64_encode_tostring`, `base64_decode_tostring`), of a
//! byte array (`base64_*_fromarray`/`_toarray`) and of a guid's bytes in .NET order
//! (`base64_*_fromguid`/`_toguid`). Undecodable input yields null. The codec is the `base64`
//! crate's.

use ::base64::Engine as _;
use ::base64::alphabet;
use ::base64::engine::general_purpose::STANDARD;
use ::base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use datafusion::common::ScalarValue;
use serde_json::Value as Json;

use super::args::{all_to, arg_str, typed};
use super::conversion::parse_guid;
use super::json::{array_of, out_arr};
use super::udf::{RowState, s_str, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// Standard base64 with canonical padding, leaving non-zero trailing bits alone (as .NET does):
/// the decoder behind [`base64_decode`].
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true).with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64 as Kusto (.NET's `Convert.FromBase64String`) reads it: white space ignored,
/// the standard alphabet, padding to a multiple of four characters required (the reference's
/// `base64_decode_toarray("U3RyaW5n0KHR0tGA0L7Rh9C60LA")`, 27 characters, decodes to nothing).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let t: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if !t.len().is_multiple_of(4) {
        return None;
    }
    STRICT.decode(t).ok()
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
    // As the official parser: "A value of type guid expected", for strings and dynamic too.
    if args[0].ty != Guid {
        return Err(PlanError::semantic(format!("function '{name}' expects a guid, got {}", args[0].ty)));
    }
    Ok(typed("base64_encode_fromguid", String, b64_fromguid_row, all_to(args, String)?))
}

// ---------- compressed base64 ----------

/// Inflates gzip (`gzip` true: the mandatory header fields checked, flags zero, no optional
/// fields, as Kusto requires) or zlib data into UTF-8 text; anything invalid gives `None`.
fn inflate(bytes: &[u8], gzip: bool) -> Option<String> {
    use std::io::Read;
    let mut out = Vec::new();
    if gzip {
        if bytes.len() < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b || bytes[2] != 8 || bytes[3] != 0 {
            return None;
        }
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    } else {
        flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out).ok()?;
    }
    String::from_utf8(out).ok()
}

fn gzip_decompress_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let text = arg_str(a, 0).and_then(base64_decode).and_then(|b| inflate(&b, true));
    s_str(Some(text.unwrap_or_default()))
}

fn zlib_decompress_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let text = arg_str(a, 0).and_then(base64_decode).and_then(|b| inflate(&b, false));
    s_str(Some(text.unwrap_or_default()))
}

/// `gzip_decompress_from_base64_string(s)` and `zlib_decompress_from_base64_string(s)`: the
/// text, or an empty string when the input does not decode or inflate (Kusto's rule).
pub(super) fn lower_decompress(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: super::udf::RowFn = if name.starts_with("gzip") { gzip_decompress_row } else { zlib_decompress_row };
    Ok(typed(name, KqlType::String, f, all_to(args, KqlType::String)?))
}

/// Deflates `text` as gzip (`gzip` true) or zlib the way Kusto writes them: stored blocks,
/// as the reference's examples show (`H4sIAAAAAAAA/wEUAOv/...` and `eAEBFADr/...`: a final
/// stored block of 20 bytes), and a gzip header with no name, no time, no extra flags and the
/// OS unknown.
fn deflate(text: &str, gzip: bool) -> Option<Vec<u8>> {
    use std::io::Write;
    let level = flate2::Compression::none();
    if gzip {
        let mut e = flate2::GzBuilder::new().operating_system(255).write(Vec::new(), level);
        e.write_all(text.as_bytes()).ok()?;
        let mut out = e.finish().ok()?;
        // XFL: flate2 marks level 0 "fastest" (4); Kusto writes 0. The header has no CRC.
        if let Some(x) = out.get_mut(8) {
            *x = 0;
        }
        Some(out)
    } else {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
        e.write_all(text.as_bytes()).ok()?;
        e.finish().ok()
    }
}

fn gzip_compress_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(arg_str(a, 0).and_then(|t| deflate(t, true)).map(|b| base64_encode(&b)).unwrap_or_default()))
}

fn zlib_compress_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_str(Some(arg_str(a, 0).and_then(|t| deflate(t, false)).map(|b| base64_encode(&b)).unwrap_or_default()))
}

/// `gzip_compress_to_base64_string(s)` and `zlib_compress_to_base64_string(s)`: the text's
/// UTF-8 bytes compressed and base64-encoded; empty for a null.
pub(super) fn lower_compress(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: super::udf::RowFn = if name.starts_with("gzip") { gzip_compress_row } else { zlib_compress_row };
    Ok(typed(name, KqlType::String, f, all_to(args, KqlType::String)?))
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
        // .NET's rules: padding required, white space ignored, no URL-safe characters.
        assert_eq!(base64_decode("S3VzdG8"), None);
        assert_eq!(base64_decode("U3RyaW5n0KHR0tGA0L7Rh9C60LA"), None);
        assert_eq!(base64_decode("S3Vz dG8=").as_deref(), Some(&b"Kusto"[..]));
        assert_eq!(base64_decode("-_8="), None);
        assert_eq!(base64_decode("YWJj$"), None);
        assert_eq!(base64_decode("YW=Jj"), None);
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
    }
}
