//! Generic scalar UDF machinery: a row-wise UDF over `ScalarValue`s for the long tail of KQL
//! functions, and a vectorized string-predicate UDF for the hot `has`/`contains` family.
//!
//! Every function here is total: bad input yields null (or `false` for predicates), never an
//! execution error, because user expressions must not fail on rows they cannot see.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, new_empty_array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

/// Per-batch scratch state for row functions: compiled regexes cached by pattern, and values
/// derived from an argument's text (a parsed GeoJSON polygon) cached by that text.
#[derive(Default)]
pub(crate) struct RowState {
    regexes: HashMap<String, Option<Regex>>,
    memo: HashMap<std::any::TypeId, HashMap<String, Option<Arc<dyn std::any::Any + Send + Sync>>>>,
}

/// How many derived values a batch keeps per type before starting afresh (values that differ
/// on every row gain nothing from the cache and must not grow it without bound).
const MEMO_LIMIT: usize = 64;

impl RowState {
    /// Compiles (once per batch) a regex; an invalid pattern yields `None`.
    pub(crate) fn regex(&mut self, pattern: &str) -> Option<&Regex> {
        if !self.regexes.contains_key(pattern) {
            // Bound the compiled size so hostile patterns cannot exhaust memory.
            let re = regex::RegexBuilder::new(pattern).size_limit(1 << 22).build().ok();
            self.regexes.insert(pattern.to_string(), re);
        }
        self.regexes.get(pattern).and_then(|r| r.as_ref())
    }

    /// The value `make` derives from `key`, computed once per batch (`None` is remembered too).
    pub(crate) fn memo<T: std::any::Any + Send + Sync>(&mut self, key: &str, make: impl FnOnce() -> Option<T>) -> Option<Arc<T>> {
        let cache = self.memo.entry(std::any::TypeId::of::<T>()).or_default();
        if let Some(v) = cache.get(key) {
            return v.clone().and_then(|a| a.downcast::<T>().ok());
        }
        if cache.len() >= MEMO_LIMIT {
            cache.clear();
        }
        let v = make().map(Arc::new);
        cache.insert(key.to_string(), v.clone().map(|a| a as Arc<dyn std::any::Any + Send + Sync>));
        v
    }
}

/// A row function: the evaluated arguments of one row to the result value.
pub(crate) type RowFn = fn(&[ScalarValue], &mut RowState) -> ScalarValue;

/// A scalar UDF evaluated row by row. Identified by name and return type.
#[derive(Debug)]
pub(crate) struct RowUdf {
    name: String,
    ret: DataType,
    signature: Signature,
    f: RowFn,
}

impl PartialEq for RowUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.ret == other.ret
    }
}
impl Eq for RowUdf {}
impl Hash for RowUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.ret.hash(state);
    }
}

impl ScalarUDFImpl for RowUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.ret.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { args.number_rows };
        let mut st = RowState::default();
        let mut out = Vec::with_capacity(n);
        let mut row = Vec::with_capacity(args.args.len());
        for i in 0..n {
            row.clear();
            for a in &args.args {
                match a {
                    ColumnarValue::Scalar(s) => row.push(s.clone()),
                    ColumnarValue::Array(arr) => row.push(ScalarValue::try_from_array(arr, i)?),
                }
            }
            let v = (self.f)(&row, &mut st);
            out.push(conform(v, &self.ret)?);
        }
        if all_scalar {
            let v = match out.pop() {
                Some(v) => v,
                None => ScalarValue::try_from(&self.ret)?,
            };
            return Ok(ColumnarValue::Scalar(v));
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(&self.ret)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// Makes a value have exactly the declared type (null of that type if it cannot).
fn conform(v: ScalarValue, ret: &DataType) -> DfResult<ScalarValue> {
    if &v.data_type() == ret {
        return Ok(v);
    }
    if v.is_null() {
        return ScalarValue::try_from(ret);
    }
    match v.cast_to(ret) {
        Ok(c) => Ok(c),
        Err(_) => ScalarValue::try_from(ret),
    }
}

/// Calls a row function as a UDF named `name` returning `ret`.
pub(crate) fn row_call(name: &str, ret: DataType, f: RowFn, args: Vec<Expr>) -> Expr {
    row_call_vol(name, ret, f, args, Volatility::Immutable)
}

pub(crate) fn row_call_vol(name: &str, ret: DataType, f: RowFn, args: Vec<Expr>, vol: Volatility) -> Expr {
    let signature = if args.is_empty() { Signature::nullary(vol) } else { Signature::variadic_any(vol) };
    let udf = RowUdf { name: format!("kql_{name}"), ret, signature, f };
    ScalarUDF::new_from_impl(udf).call(args)
}

// ---------- ScalarValue accessors ----------

pub(crate) fn sv_str(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.as_deref(),
        _ => None,
    }
}

/// A string operand as Kusto sees it: null strings are empty.
pub(crate) fn sv_str_or_empty(v: &ScalarValue) -> &str {
    sv_str(v).unwrap_or("")
}

pub(crate) fn sv_i64(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int64(x) => *x,
        ScalarValue::Int32(x) => x.map(i64::from),
        ScalarValue::Int16(x) => x.map(i64::from),
        ScalarValue::Int8(x) => x.map(i64::from),
        ScalarValue::UInt8(x) => x.map(i64::from),
        ScalarValue::UInt16(x) => x.map(i64::from),
        ScalarValue::UInt32(x) => x.map(i64::from),
        ScalarValue::UInt64(x) => x.and_then(|x| i64::try_from(x).ok()),
        ScalarValue::Float64(x) => x.and_then(f64_to_i64),
        ScalarValue::Boolean(x) => x.map(i64::from),
        ScalarValue::TimestampNanosecond(x, _) | ScalarValue::DurationNanosecond(x) => *x,
        _ => None,
    }
}

pub(crate) fn sv_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(x) => *x,
        ScalarValue::Float32(x) => x.map(f64::from),
        ScalarValue::Decimal128(Some(x), _, s) => Some(*x as f64 / 10f64.powi(i32::from(*s))),
        other => sv_i64(other).map(|x| x as f64),
    }
}

pub(crate) fn sv_bool(v: &ScalarValue) -> Option<bool> {
    match v {
        ScalarValue::Boolean(b) => *b,
        _ => None,
    }
}

/// Truncating float to i64 conversion; NaN, infinities and out-of-range values give `None`.
pub(crate) fn f64_to_i64(x: f64) -> Option<i64> {
    if x.is_finite() && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x) {
        Some(x.trunc() as i64)
    } else {
        None
    }
}

pub(crate) fn s_str(s: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(s)
}

/// Largest string a string-building function may produce (bytes); beyond it the result is null.
pub(crate) const MAX_STRING: usize = 16 * 1024 * 1024;

/// A built string, or null when it is larger than [`MAX_STRING`].
pub(crate) fn cap(s: String) -> ScalarValue {
    if s.len() > MAX_STRING { s_str(None) } else { s_str(Some(s)) }
}
pub(crate) fn s_i64(x: Option<i64>) -> ScalarValue {
    ScalarValue::Int64(x)
}
pub(crate) fn s_i32(x: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(x)
}
pub(crate) fn s_f64(x: Option<f64>) -> ScalarValue {
    ScalarValue::Float64(x)
}
pub(crate) fn s_bool(x: Option<bool>) -> ScalarValue {
    ScalarValue::Boolean(x)
}
pub(crate) fn s_ts(x: Option<i64>) -> ScalarValue {
    ScalarValue::TimestampNanosecond(x, None)
}
pub(crate) fn s_dur(x: Option<i64>) -> ScalarValue {
    ScalarValue::DurationNanosecond(x)
}

// ---------- vectorized string predicates ----------

/// A string predicate `f(haystack, needle)`; null strings are treated as empty.
pub(crate) type StrPred = fn(&str, &str) -> bool;

#[derive(Debug)]
pub(crate) struct StrPredUdf {
    name: String,
    signature: Signature,
    f: StrPred,
}

impl PartialEq for StrPredUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for StrPredUdf {}
impl Hash for StrPredUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

enum StrArg<'a> {
    Scalar(&'a str),
    Array(&'a StringArray),
}

impl StrArg<'_> {
    fn get(&self, i: usize) -> &str {
        match self {
            StrArg::Scalar(s) => s,
            StrArg::Array(a) => {
                if a.is_null(i) {
                    ""
                } else {
                    a.value(i)
                }
            }
        }
    }
}

fn str_arg(v: &ColumnarValue) -> DfResult<(StrArg<'_>, Option<ArrayRef>)> {
    match v {
        ColumnarValue::Scalar(s) => Ok((StrArg::Scalar(sv_str_or_empty(s)), None)),
        ColumnarValue::Array(a) => match a.as_any().downcast_ref::<StringArray>() {
            Some(sa) => Ok((StrArg::Array(sa), None)),
            None => Err(datafusion::error::DataFusionError::Internal(format!(
                "KQL string operator expects Utf8, got {}",
                a.data_type()
            ))),
        },
    }
}

impl ScalarUDFImpl for StrPredUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [h, n] = args.args.as_slice() else {
            return Err(datafusion::error::DataFusionError::Internal("string predicate needs 2 args".into()));
        };
        let (h, _) = str_arg(h)?;
        let (n, _) = str_arg(n)?;
        if let (StrArg::Scalar(h), StrArg::Scalar(n)) = (&h, &n) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some((self.f)(h, n)))));
        }
        let out: BooleanArray = (0..args.number_rows).map(|i| Some((self.f)(h.get(i), n.get(i)))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Calls a vectorized string predicate (both args must be Utf8 exprs).
pub(crate) fn str_pred_call(name: &str, f: StrPred, hay: Expr, needle: Expr) -> Expr {
    let udf = StrPredUdf { name: format!("kql_{name}"), signature: Signature::any(2, Volatility::Immutable), f };
    ScalarUDF::new_from_impl(udf).call(vec![hay, needle])
}
