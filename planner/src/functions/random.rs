//! Volatile generators, a new value per row: `rand()` / `rand(N)` and `new_guid()`.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::conversion::lower_cast;
use super::udf::{RowState, row_call_vol, s_str};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

/// `rand()` (a real in [0, 1)) or `rand(N)` (a whole number in 0..N-1, as a real): volatile, a
/// new value per row.
pub(super) fn lower_rand(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let call_args = match args.pop() {
        Some(n) => vec![lower_cast(n, KqlType::Real)?.expr],
        None => vec![],
    };
    let sig = if call_args.is_empty() { Signature::nullary(Volatility::Volatile) } else { Signature::any(1, Volatility::Volatile) };
    Ok(TypedExpr::new(ScalarUDF::new_from_impl(RandUdf { signature: sig }).call(call_args), KqlType::Real))
}

/// A 64-bit generator state shared by all calls: SplitMix64 over a counter seeded once.
fn next_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
    });
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1).
fn next_f64() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RandUdf {
    signature: Signature,
}

impl ScalarUDFImpl for RandUdf {
    fn name(&self) -> &str {
        "kql_rand"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        // rand(N): a whole number in 0..N-1 (as real); N < 1 or null gives null.
        let bound = |i: usize| -> DfResult<Option<f64>> {
            match args.args.first() {
                None => Ok(None),
                Some(ColumnarValue::Scalar(s)) => Ok(Some(super::udf::sv_f64(s).unwrap_or(f64::NAN))),
                Some(ColumnarValue::Array(a)) => {
                    if a.is_null(i) {
                        Ok(Some(f64::NAN))
                    } else {
                        Ok(Some(super::udf::sv_f64(&ScalarValue::try_from_array(a, i)?).unwrap_or(f64::NAN)))
                    }
                }
            }
        };
        let mut out: Vec<Option<f64>> = Vec::with_capacity(n);
        for i in 0..n {
            out.push(match bound(i)? {
                None => Some(next_f64()),
                Some(b) if b.is_finite() && b.floor() >= 1.0 => Some((next_f64() * b.floor()).floor()),
                Some(_) => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
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

pub(super) fn lower_new_guid(_: &str, _: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let e = row_call_vol("new_guid", KqlType::Guid.arrow_type(), new_guid_row, vec![], datafusion::logical_expr::Volatility::Volatile);
    Ok(TypedExpr::new(e, KqlType::Guid))
}
