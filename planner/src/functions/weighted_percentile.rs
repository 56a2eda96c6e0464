//! Weighted nearest-rank percentiles: `percentilew`, `percentilesw`, `percentilesw_array`.
//! Each value counts as if repeated `weight` times; rows with a null value or a weight that is
//! null or not positive are ignored.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility};
use serde_json::Value as Json;

#[derive(Debug)]
struct KqlPercentileW {
    ps: Vec<f64>,
    /// The result is a JSON array of the percentiles.
    array: bool,
    /// The value type (Int64, Float64, timestamp or duration).
    ret: DataType,
    name: String,
    signature: Signature,
}

impl PartialEq for KqlPercentileW {
    fn eq(&self, o: &Self) -> bool {
        self.ps.iter().map(|p| p.to_bits()).eq(o.ps.iter().map(|p| p.to_bits())) && self.array == o.array && self.ret == o.ret
    }
}
impl Eq for KqlPercentileW {}
impl Hash for KqlPercentileW {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ps.iter().for_each(|p| p.to_bits().hash(state));
        self.array.hash(state);
        self.ret.hash(state);
    }
}

/// `percentilew(value, weight, p)` (one `p`, result in the value's type) or, with `array`,
/// `percentilesw_array(value, weight, ps..)` (JSON text). `ret` is the value's Arrow type.
pub(crate) fn percentile_w_call(value: Expr, weight: Expr, ps: Vec<f64>, array: bool, ret: DataType) -> Expr {
    let name = if array { format!("kql_percentilesw_array_{ps:?}") } else { format!("kql_percentilew_{ps:?}") };
    let udaf = KqlPercentileW { ps, array, ret, name, signature: Signature::any(2, Volatility::Immutable) };
    AggregateUDF::new_from_impl(udaf).call(vec![value, weight])
}

impl AggregateUDFImpl for KqlPercentileW {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.array { DataType::Utf8 } else { self.ret.clone() })
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(WeightedAcc { ps: self.ps.clone(), array: self.array, ret: self.ret.clone(), ints: Vec::new(), reals: Vec::new() }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[weighted]", args.name), DataType::Utf8, true))])
    }
}

#[derive(Debug)]
struct WeightedAcc {
    ps: Vec<f64>,
    array: bool,
    ret: DataType,
    ints: Vec<(i64, i64)>,
    reals: Vec<(f64, i64)>,
}

/// The value at weighted nearest rank `ceil(p/100 * W)` (at least 1) of values sorted
/// ascending with their weights.
fn weighted_pick<T: Copy>(sorted: &[(T, i64)], p: f64) -> Option<T> {
    let total: i128 = sorted.iter().map(|(_, w)| i128::from(*w)).sum();
    if total <= 0 {
        return None;
    }
    let r = ((p / 100.0) * total as f64).ceil();
    let r = if r.is_finite() { (r as i128).clamp(1, total) } else { total };
    let mut cum: i128 = 0;
    for (v, w) in sorted {
        cum += i128::from(*w);
        if cum >= r {
            return Some(*v);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

impl WeightedAcc {
    fn sort(&mut self) {
        self.reals.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.ints.sort_unstable_by_key(|x| x.0);
    }

    fn pick_scalar(&self, p: f64) -> ScalarValue {
        if self.ret == DataType::Float64 {
            return ScalarValue::Float64(weighted_pick(&self.reals, p));
        }
        let v = weighted_pick(&self.ints, p);
        match self.ret {
            DataType::Timestamp(_, _) => ScalarValue::TimestampNanosecond(v, None),
            DataType::Duration(_) => ScalarValue::DurationNanosecond(v),
            _ => ScalarValue::Int64(v),
        }
    }

    fn pick_json(&self, p: f64) -> Json {
        if self.ret == DataType::Float64 {
            weighted_pick(&self.reals, p).and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number)
        } else {
            weighted_pick(&self.ints, p).map_or(Json::Null, Json::from)
        }
    }
}

impl Accumulator for WeightedAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let (Some(a), Some(w)) = (values.first(), values.get(1)) else { return Ok(()) };
        for i in 0..a.len() {
            if a.is_null(i) || w.is_null(i) {
                continue;
            }
            let Some(weight) = super::udf::sv_i64(&ScalarValue::try_from_array(w, i)?) else { continue };
            if weight <= 0 {
                continue;
            }
            match ScalarValue::try_from_array(a, i)? {
                ScalarValue::Float64(Some(f)) if !f.is_nan() => self.reals.push((f, weight)),
                ScalarValue::Float64(_) => {}
                v => {
                    if let Some(x) = super::udf::sv_i64(&v) {
                        self.ints.push((x, weight));
                    }
                }
            }
        }
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.sort();
        if self.array {
            let items: Vec<Json> = self.ps.iter().map(|p| self.pick_json(*p)).collect();
            return Ok(ScalarValue::Utf8(Some(Json::Array(items).to_string())));
        }
        Ok(self.pick_scalar(self.ps.first().copied().unwrap_or(50.0)))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.ints.capacity() * 16 + self.reals.capacity() * 16
    }
    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let j = if self.ret == DataType::Float64 {
            Json::Array(
                self.reals
                    .iter()
                    .filter_map(|(f, w)| serde_json::Number::from_f64(*f).map(|n| Json::Array(vec![Json::Number(n), Json::from(*w)])))
                    .collect(),
            )
        } else {
            Json::Array(self.ints.iter().map(|(x, w)| Json::Array(vec![Json::from(*x), Json::from(*w)])).collect())
        };
        Ok(vec![ScalarValue::Utf8(Some(j.to_string()))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(sa) = states.first().and_then(|a| a.as_any().downcast_ref::<StringArray>()) else { return Ok(()) };
        for i in 0..sa.len() {
            if sa.is_null(i) {
                continue;
            }
            let Ok(Json::Array(items)) = serde_json::from_str::<Json>(sa.value(i)) else { continue };
            for it in items {
                let Json::Array(pair) = it else { continue };
                let (Some(v), Some(w)) = (pair.first(), pair.get(1).and_then(Json::as_i64)) else { continue };
                if self.ret == DataType::Float64 {
                    if let Some(f) = v.as_f64() {
                        self.reals.push((f, w));
                    }
                } else if let Some(x) = v.as_i64() {
                    self.ints.push((x, w));
                }
            }
        }
        Ok(())
    }
}
