//! Hashes: `hash()` (XXH64 of the value's text form, or of a datetime's ticks), `hash_sha1`,
//! `hash_sha256`, `hash_md5` (lower-case hex digests of the UTF-8 text). The algorithms come
//! from `twox-hash` and RustCrypto's `sha1`, `sha2` and `md-5`.

use datafusion::common::ScalarValue;
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use twox_hash::XxHash64;

use super::args::{all_to, arg_str, long_arg, typed};
use super::conversion::lower_cast;
use super::udf::{RowState, s_i64, s_str, sv_i64, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

/// `[value, mod?]`: XXH64 (seed 0) of the value's text as a signed long, or its remainder by a
/// positive `mod`.
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

/// XXH64 with `seed`.
pub(super) fn xxh64(data: &[u8], seed: u64) -> u64 {
    XxHash64::oneshot(seed, data)
}

/// The lower-case hex digest of argument 0's UTF-8 text with hash `D`.
fn digest_row<D: Digest>(a: &[ScalarValue]) -> ScalarValue {
    s_str(arg_str(a, 0).map(|s| D::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()))
}

fn sha1_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    digest_row::<Sha1>(a)
}

fn sha256_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    digest_row::<Sha256>(a)
}

fn md5_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    digest_row::<Md5>(a)
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
        return Ok(typed("hash_datetime", KqlType::Long, hash_datetime_row, a));
    }
    let v = if v.ty == KqlType::String { v.expr } else { lower_cast(v, KqlType::String)?.expr };
    let mut a = vec![v];
    if let Some(m) = args.pop() {
        a.push(long_arg(m, name)?);
    }
    Ok(typed("hash", KqlType::Long, hash_row, a))
}

pub(super) fn lower_hash_sha1(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("hash_sha1", String, sha1_row, all_to(args, String)?))
}

pub(super) fn lower_hash_sha256(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::String)?;
    Ok(typed("hash_sha256", KqlType::String, sha256_row, a))
}

pub(super) fn lower_hash_md5(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = all_to(args, KqlType::String)?;
    Ok(typed("hash_md5", KqlType::String, md5_row, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.to_string()))
    }

    fn row(f: super::super::udf::RowFn, args: &[ScalarValue]) -> ScalarValue {
        f(args, &mut RowState::default())
    }

    #[test]
    fn hash_matches_kusto() {
        // The hash() page of the KQL reference.
        assert_eq!(row(hash_row, &[text("World")]), ScalarValue::Int64(Some(1_846_988_464_401_551_951)));
        assert_eq!(row(hash_row, &[text("World"), ScalarValue::Int64(Some(100))]), ScalarValue::Int64(Some(51)));
        assert_eq!(row(hash_row, &[ScalarValue::Utf8(None)]), ScalarValue::Int64(None));
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
    }

    #[test]
    fn digests_match_kusto() {
        // The hash_sha1, hash_sha256 and hash_md5 pages of the KQL reference.
        assert_eq!(row(sha1_row, &[text("World")]), text("70c07ec18ef89c5309bbb0937f3a6342411e1fdd"));
        assert_eq!(row(sha256_row, &[text("World")]), text("78ae647dc5544d227130a0682a51e30bc7777fbb6d8a8f17007463a3ecd1d524"));
        assert_eq!(row(md5_row, &[text("World")]), text("f5a7924e621e84c9280a9a27e1bcb7f6"));
        assert_eq!(row(sha256_row, &[text("")]), text("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assert_eq!(row(md5_row, &[text("The quick brown fox jumps over the lazy dog")]), text("9e107d9d372bb6826bd81d3542a419d6"));
        assert_eq!(row(sha1_row, &[text("abc")]), text("a9993e364706816aba3e25717850c26c9cd0d89d"));
        assert_eq!(row(md5_row, &[ScalarValue::Utf8(None)]), ScalarValue::Utf8(None));
    }
}
