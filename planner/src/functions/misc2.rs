//! `rand()` / `rand(N)` (volatile, one value per row) and the row function of `pack_all()`.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use serde_json::{Map, Value as Json};

use super::conversion::{V, json_text, lower_cast, v_of};
use super::udf::{RowState, row_call};
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

/// `pack_all()`: names and values alternate; with `skip_empty` (the first argument), null
/// values and empty strings are left out.
fn pack_all_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let skip_empty = matches!(args.first(), Some(ScalarValue::Boolean(Some(true))));
    let mut m = Map::new();
    for kv in args.get(1..).unwrap_or_default().chunks(2) {
        if let [k, v] = kv {
            let key = match k {
                ScalarValue::Utf8(Some(s)) => s.clone(),
                _ => continue,
            };
            let j = match v_of(v, KqlType::Dynamic) {
                V::Json(j) => j,
                _ => Json::Null,
            };
            if skip_empty && (j.is_null() || j.as_str() == Some("")) {
                continue;
            }
            m.insert(key, j);
        }
    }
    ScalarValue::Utf8(json_text(&Json::Object(m)))
}

/// The `pack_all` call over `(name, value)` pairs.
pub(crate) fn pack_all_call(columns: Vec<(String, TypedExpr)>, skip_empty: bool) -> Result<TypedExpr> {
    let mut a = vec![datafusion::logical_expr::lit(skip_empty)];
    for (name, v) in columns {
        a.push(datafusion::logical_expr::lit(name));
        a.push(lower_cast(v, KqlType::Dynamic)?.expr);
    }
    Ok(TypedExpr::new(row_call("pack_all", DataType::Utf8, pack_all_row, a), KqlType::Dynamic))
}
