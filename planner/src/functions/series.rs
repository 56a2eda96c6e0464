//! Time series: the row functions behind `make-series` (filling each series' array from its
//! bins, and the axis array) and the `series_*` functions over dynamic arrays of numbers.
//!
//! A series is a dynamic array. Element-wise functions take numbers (and nulls, which stay
//! null); anything else in an array is null in the result, as Kusto treats a non-numeric
//! element. Every function returns null, never an error, on input it cannot use.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use serde_json::Value as Json;

use super::TypedExpr;
use super::json::{array_of, json_of, out, out_arr};
use super::udf::{RowState, row_call, sv_f64, sv_i64};
use crate::types::KqlType;

/// The most elements `make-series` gives a series (Kusto's limit, 2^20).
pub(crate) const MAX_SERIES: i64 = 1 << 20;

// ---------- make-series ----------

/// `(pairs, index, start, n, default)`: the series of value `index` (1-based) of `pairs`, an
/// array of `[position, value1, value2, ...]`, over positions `start .. start + n`; a position
/// without a pair gets `default`.
fn series_fill_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(pairs), Some(index), Some(start), Some(n)) =
        (a.first().and_then(array_of), a.get(1).and_then(sv_i64), a.get(2).and_then(sv_i64), a.get(3).and_then(sv_i64))
    else {
        return out(None);
    };
    let default = a.get(4).and_then(json_of).unwrap_or(Json::Null);
    let n = n.clamp(0, MAX_SERIES);
    let mut series = vec![default; usize::try_from(n).unwrap_or(0)];
    let index = usize::try_from(index).unwrap_or(usize::MAX);
    for p in pairs {
        let Json::Array(p) = p else { continue };
        let Some(pos) = p.first().and_then(Json::as_f64) else { continue };
        // Positions are whole numbers of steps (rounded when they were computed).
        #[allow(clippy::cast_possible_truncation)]
        let k = pos.round() as i64 - start;
        if let (Ok(k), Some(v)) = (usize::try_from(k), p.get(index))
            && k < series.len()
        {
            series[k] = v.clone();
        }
    }
    out_arr(series)
}

/// The call filling the series of value `index` of `pairs` (see [`series_fill_row`]).
pub(crate) fn series_fill(pairs: Expr, index: i64, start: Expr, n: Expr, default: Expr) -> TypedExpr {
    let e = row_call("__make_series_fill", KqlType::Dynamic.arrow_type(), series_fill_row, vec![pairs, datafusion::logical_expr::lit(index), start, n, default]);
    TypedExpr::new(e, KqlType::Dynamic)
}

/// `(anchor, step, start, n)`: the axis `anchor + (start + k) * step` for `k` in `0 .. n`, in
/// the anchor's type (datetime, timespan, long or real).
fn series_axis_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(anchor), Some(step), Some(start), Some(n)) = (a.first(), a.get(1), a.get(2).and_then(sv_i64), a.get(3).and_then(sv_i64)) else {
        return out(None);
    };
    let n = n.clamp(0, MAX_SERIES);
    let ns = |v: &ScalarValue| match v {
        ScalarValue::TimestampNanosecond(Some(x), _) | ScalarValue::DurationNanosecond(Some(x)) | ScalarValue::Int64(Some(x)) => Some(*x),
        _ => None,
    };
    let mut axis = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for k in 0..n {
        let i = start + k;
        let v = match (anchor, step) {
            (ScalarValue::TimestampNanosecond(..) | ScalarValue::DurationNanosecond(..), _) => {
                let (Some(a0), Some(s)) = (ns(anchor), ns(step)) else { return out(None) };
                let Some(x) = s.checked_mul(i).and_then(|d| a0.checked_add(d)) else { return out(None) };
                if matches!(anchor, ScalarValue::TimestampNanosecond(..)) {
                    Json::String(kustodian_parser::value_text::format_datetime_nanos(x))
                } else {
                    Json::String(kustodian_parser::value_text::format_timespan_nanos(x))
                }
            }
            (ScalarValue::Int64(Some(a0)), ScalarValue::Int64(Some(s))) => match s.checked_mul(i).and_then(|d| a0.checked_add(d)) {
                Some(x) => Json::from(x),
                None => return out(None),
            },
            _ => {
                let (Some(a0), Some(s)) = (sv_f64(anchor), sv_f64(step)) else { return out(None) };
                #[allow(clippy::cast_precision_loss)]
                let x = a0 + (i as f64) * s;
                serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
            }
        };
        axis.push(v);
    }
    out_arr(axis)
}

/// The call building the axis array (see [`series_axis_row`]).
pub(crate) fn series_axis(anchor: Expr, step: Expr, start: Expr, n: Expr) -> TypedExpr {
    let e = row_call("__make_series_axis", KqlType::Dynamic.arrow_type(), series_axis_row, vec![anchor, step, start, n]);
    TypedExpr::new(e, KqlType::Dynamic)
}

// ---------- series_* ----------

/// An element as a number: integers stay integers (so `series_add` of longs gives longs).
#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn of(j: &Json) -> Option<Num> {
        match j {
            Json::Number(n) => n.as_i64().map(Num::I).or_else(|| n.as_f64().map(Num::F)),
            Json::Bool(b) => Some(Num::I(i64::from(*b))),
            _ => None,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn real(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// The elements of a series argument as numbers (`None` where an element is not one), or a
/// scalar number as a series of `len` copies; `None` when the argument is neither.
fn numbers(v: &ScalarValue, len: Option<usize>) -> Option<Vec<Option<Num>>> {
    if let Some(a) = array_of(v) {
        return Some(a.iter().map(Num::of).collect());
    }
    let x = match v {
        ScalarValue::Int64(Some(i)) => Num::I(*i),
        ScalarValue::Int32(Some(i)) => Num::I(i64::from(*i)),
        ScalarValue::Boolean(Some(b)) => Num::I(i64::from(*b)),
        other => match json_of(other).as_ref().and_then(Num::of) {
            Some(n) => n,
            None => Num::F(sv_f64(other)?),
        },
    };
    Some(vec![Some(x); len?])
}

fn unary(a: &[ScalarValue], f: fn(Num) -> Option<Json>) -> ScalarValue {
    match a.first().and_then(array_of) {
        Some(xs) => out_arr(xs.iter().map(|x| Num::of(x).and_then(f).unwrap_or(Json::Null)).collect()),
        None => out(None),
    }
}

macro_rules! unary_real {
    ($($row:ident => $f:expr;)*) => {$(
        fn $row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
            unary(a, |x| Some(real(($f)(x.f()))))
        }
    )*};
}

unary_real! {
    acos_row => f64::acos;
    asin_row => f64::asin;
    atan_row => f64::atan;
    cos_row => f64::cos;
    sin_row => f64::sin;
    tan_row => f64::tan;
    exp_row => f64::exp;
    log_row => f64::ln;
}

fn abs_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary(a, |x| Some(match x {
        Num::I(i) => i.checked_abs().map_or(Json::Null, Json::from),
        Num::F(f) => real(f.abs()),
    }))
}

fn ceiling_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary(a, |x| Some(match x {
        Num::I(i) => Json::from(i),
        Num::F(f) => real(f.ceil()),
    }))
}

fn floor_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary(a, |x| Some(match x {
        Num::I(i) => Json::from(i),
        Num::F(f) => real(f.floor()),
    }))
}

fn sign_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    unary(a, |x| Some(match x {
        Num::I(i) => Json::from(i.signum()),
        // 0 and NaN keep their value; `signum` would make 0 into 1.
        Num::F(f) if f == 0.0 || f.is_nan() => real(f),
        Num::F(f) => real(f.signum()),
    }))
}

/// Element-wise `f` of two series (or a series and a number); a missing or non-numeric element
/// on either side gives null; the result is as long as the longer series.
fn binary(a: &[ScalarValue], f: fn(Num, Num) -> Option<Json>) -> ScalarValue {
    let (Some(l), Some(r)) = (a.first(), a.get(1)) else { return out(None) };
    let len = array_of(l).map(|x| x.len()).or_else(|| array_of(r).map(|x| x.len()));
    let (Some(xs), Some(ys)) = (numbers(l, len), numbers(r, len)) else { return out(None) };
    let n = xs.len().max(ys.len());
    let at = |v: &Vec<Option<Num>>, i: usize| v.get(i).copied().flatten();
    out_arr((0..n).map(|i| match (at(&xs, i), at(&ys, i)) {
        (Some(x), Some(y)) => f(x, y).unwrap_or(Json::Null),
        _ => Json::Null,
    }).collect())
}

fn arith(x: Num, y: Num, i: fn(i64, i64) -> Option<i64>, r: fn(f64, f64) -> f64) -> Option<Json> {
    Some(match (x, y) {
        (Num::I(a), Num::I(b)) => i(a, b).map_or(Json::Null, Json::from),
        _ => real(r(x.f(), y.f())),
    })
}

fn add_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    binary(a, |x, y| arith(x, y, i64::checked_add, |a, b| a + b))
}

fn subtract_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    binary(a, |x, y| arith(x, y, i64::checked_sub, |a, b| a - b))
}

fn multiply_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    binary(a, |x, y| arith(x, y, i64::checked_mul, |a, b| a * b))
}

fn divide_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    binary(a, |x, y| Some(real(x.f() / y.f())))
}

fn pow_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    binary(a, |x, y| Some(real(x.f().powf(y.f()))))
}

macro_rules! compare {
    ($($row:ident => $op:tt;)*) => {$(
        fn $row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
            binary(a, |x, y| Some(Json::Bool(match (x, y) {
                (Num::I(a), Num::I(b)) => a $op b,
                _ => x.f() $op y.f(),
            })))
        }
    )*};
}

compare! {
    greater_row => >;
    greater_equals_row => >=;
    less_row => <;
    less_equals_row => <=;
    equals_row => ==;
    not_equals_row => !=;
}

/// The numeric elements of a series, non-numeric ones left out.
fn values(v: &ScalarValue) -> Option<Vec<f64>> {
    Some(array_of(v)?.iter().filter_map(Num::of).map(Num::f).collect())
}

fn sum_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_f64(a.first().and_then(values).map(|v| v.iter().sum()))
}

fn product_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_f64(a.first().and_then(values).map(|v| v.iter().product()))
}

fn magnitude_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_f64(a.first().and_then(values).map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt()))
}

/// Pairs of two series' elements where both are numbers; null unless both are arrays.
fn pairs(a: &[ScalarValue]) -> Option<Vec<(f64, f64)>> {
    let (x, y) = (array_of(a.first()?)?, array_of(a.get(1)?)?);
    Some(x.iter().zip(y.iter()).filter_map(|(p, q)| Some((Num::of(p)?.f(), Num::of(q)?.f()))).collect())
}

fn dot_product_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    // A number on either side multiplies every element of the other.
    let (Some(l), Some(r)) = (a.first(), a.get(1)) else { return super::udf::s_f64(None) };
    let len = array_of(l).map(|x| x.len()).or_else(|| array_of(r).map(|x| x.len()));
    let (Some(xs), Some(ys)) = (numbers(l, len), numbers(r, len)) else { return super::udf::s_f64(None) };
    super::udf::s_f64(Some(xs.iter().zip(&ys).filter_map(|(x, y)| Some(x.as_ref()?.f() * y.as_ref()?.f())).sum()))
}

fn cosine_similarity_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_f64(pairs(a).map(|p| {
        let dot: f64 = p.iter().map(|(x, y)| x * y).sum();
        let nx = p.iter().map(|(x, _)| x * x).sum::<f64>().sqrt();
        let ny = p.iter().map(|(_, y)| y * y).sum::<f64>().sqrt();
        dot / (nx * ny)
    }))
}

fn pearson_correlation_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    super::udf::s_f64(pairs(a).and_then(|p| {
        if p.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = p.len() as f64;
        let (mx, my) = (p.iter().map(|q| q.0).sum::<f64>() / n, p.iter().map(|q| q.1).sum::<f64>() / n);
        let sxy: f64 = p.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let sxx: f64 = p.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
        let syy: f64 = p.iter().map(|(_, y)| (y - my) * (y - my)).sum();
        Some(sxy / (sxx * syy).sqrt())
    }))
}

/// `series_stats_dynamic(series[, ignore_nonfinite])`: min, min_idx, max, max_idx, avg,
/// stdev and variance (sample), sum of the numeric elements, and the series' length.
fn stats_dynamic_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(xs) = a.first().and_then(array_of) else { return out(None) };
    let skip_nonfinite = a.get(1).and_then(super::udf::sv_bool).unwrap_or(false);
    let vals: Vec<(usize, f64)> =
        xs.iter().enumerate().filter_map(|(i, x)| Some((i, Num::of(x)?.f()))).filter(|(_, x)| !skip_nonfinite || x.is_finite()).collect();
    let mut m = serde_json::Map::new();
    if vals.is_empty() {
        for k in ["min", "min_idx", "max", "max_idx", "avg", "stdev", "variance", "sum"] {
            m.insert(k.into(), Json::Null);
        }
        m.insert("len".into(), Json::from(xs.len()));
        return out(Some(Json::Object(m)));
    }
    let (mut lo, mut hi) = (vals[0], vals[0]);
    for &(i, x) in &vals {
        if x < lo.1 {
            lo = (i, x);
        }
        if x > hi.1 {
            hi = (i, x);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let n = vals.len() as f64;
    let avg = vals.iter().map(|v| v.1).sum::<f64>() / n;
    let var = if vals.len() > 1 { vals.iter().map(|v| (v.1 - avg) * (v.1 - avg)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    m.insert("min".into(), real(lo.1));
    m.insert("min_idx".into(), Json::from(lo.0));
    m.insert("max".into(), real(hi.1));
    m.insert("max_idx".into(), Json::from(hi.0));
    m.insert("avg".into(), real(avg));
    m.insert("stdev".into(), real(var.sqrt()));
    m.insert("variance".into(), real(var));
    m.insert("sum".into(), real(vals.iter().map(|v| v.1).sum()));
    m.insert("len".into(), Json::from(xs.len()));
    out(Some(Json::Object(m)))
}

/// `series_fit_line_dynamic(series)`: least squares over x = 1..n: rsquare, slope, variance
/// (of the input), rvariance (of the residuals), interception and line_fit.
fn fit_line_dynamic_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(xs) = a.first().and_then(array_of) else { return out(None) };
    let pts: Vec<(f64, f64)> = xs.iter().enumerate().filter_map(|(i, y)| Some((pos(i), Num::of(y)?.f()))).collect();
    if pts.len() < 2 {
        return out(None);
    }
    let (slope, icpt, rss) = line(&pts);
    let ss = sum_sq_dev(&pts.iter().map(|p| p.1).collect::<Vec<_>>());
    #[allow(clippy::cast_precision_loss)]
    let n1 = (pts.len() - 1) as f64;
    let fit: Vec<f64> = (0..xs.len()).map(|i| slope * pos(i) + icpt).collect();
    let mut m = serde_json::Map::new();
    m.insert("rsquare".into(), real(if ss == 0.0 { 1.0 } else { 1.0 - rss / ss }));
    m.insert("slope".into(), real(slope));
    m.insert("variance".into(), real(ss / n1));
    m.insert("rvariance".into(), real(rss / n1));
    m.insert("interception".into(), real(icpt));
    m.insert("line_fit".into(), reals(&fit));
    out(Some(Json::Object(m)))
}

/// A constant argument as a JSON value: numbers and bools as such, dynamic values parsed.
fn jval(v: &ScalarValue) -> Option<Json> {
    match v {
        ScalarValue::Int64(Some(i)) => Some(Json::from(*i)),
        ScalarValue::Int32(Some(i)) => Some(Json::from(*i)),
        ScalarValue::Float64(Some(f)) => Some(real(*f)),
        ScalarValue::Boolean(Some(b)) => Some(Json::Bool(*b)),
        other => json_of(other),
    }
}

/// Whether element `x` of a series is missing: null, not a number, or the placeholder.
/// With a placeholder only elements equal to it are missing; without one, nulls and
/// non-numbers.
fn missing(x: &Json, placeholder: Option<&Json>) -> bool {
    match placeholder {
        Some(p) if !p.is_null() => Num::of(x).zip(Num::of(p)).is_some_and(|(a, b)| a.f() == b.f()),
        _ => Num::of(x).is_none(),
    }
}

/// `series_fill_const(series[, constant = 0[, missing_value_placeholder]])`.
fn fill_const_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(xs) = a.first().and_then(array_of) else { return out(None) };
    let c = a.get(1).and_then(jval).unwrap_or(Json::from(0));
    let ph = a.get(2).and_then(jval);
    out_arr(xs.into_iter().map(|x| if missing(&x, ph.as_ref()) { c.clone() } else { x }).collect())
}

/// `series_fill_forward(series[, missing_value_placeholder])` (`forward` true) and
/// `series_fill_backward`: a missing element takes the last (next) present one.
fn fill_direction(a: &[ScalarValue], forward: bool) -> ScalarValue {
    let Some(mut xs) = a.first().and_then(array_of) else { return out(None) };
    let ph = a.get(1).and_then(jval);
    let mut last: Option<Json> = None;
    let idx: Vec<usize> = if forward { (0..xs.len()).collect() } else { (0..xs.len()).rev().collect() };
    for i in idx {
        if missing(&xs[i], ph.as_ref()) {
            if let Some(l) = &last {
                xs[i] = l.clone();
            }
        } else {
            last = Some(xs[i].clone());
        }
    }
    out_arr(xs)
}

fn fill_forward_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    fill_direction(a, true)
}

fn fill_backward_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    fill_direction(a, false)
}

/// `series_fill_linear(series[, missing_value_placeholder[, fill_edges = true[,
/// constant_value]]])`: missing elements between present ones interpolated linearly; at the
/// edges the nearest present value (when `fill_edges`); a series with no present element is
/// filled with `constant_value` when one is given.
fn fill_linear_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(xs) = a.first().and_then(array_of) else { return out(None) };
    let ph = a.get(1).and_then(jval);
    let edges = a.get(2).and_then(super::udf::sv_bool).unwrap_or(true);
    let constant = a.get(3).and_then(jval).filter(|c| !c.is_null());
    let present: Vec<(usize, f64)> = xs.iter().enumerate().filter(|(_, x)| !missing(x, ph.as_ref())).filter_map(|(i, x)| Some((i, Num::of(x)?.f()))).collect();
    if present.is_empty() {
        // Nothing to interpolate from: the constant (0 by default) everywhere.
        return out_arr(vec![constant.unwrap_or(real(0.0)); xs.len()]);
    }
    // A series of integers stays integer: interpolated values are truncated, as Kusto does.
    let integers = xs.iter().all(|x| missing(x, ph.as_ref()) || matches!(Num::of(x), Some(Num::I(_))));
    let mut ys: Vec<Json> = xs.clone();
    for w in present.windows(2) {
        let ((i0, y0), (i1, y1)) = (w[0], w[1]);
        for (k, y) in ys.iter_mut().enumerate().take(i1).skip(i0 + 1) {
            #[allow(clippy::cast_precision_loss)]
            let t = (k - i0) as f64 / (i1 - i0) as f64;
            let v = y0 + (y1 - y0) * t;
            #[allow(clippy::cast_possible_truncation)]
            let j = if integers { Json::from(v.trunc() as i64) } else { real(v) };
            *y = j;
        }
    }
    if edges {
        let (first, last) = (present[0], present[present.len() - 1]);
        for y in ys.iter_mut().take(first.0) {
            *y = xs[first.0].clone();
        }
        for y in ys.iter_mut().skip(last.0 + 1) {
            *y = xs[last.0].clone();
        }
    }
    out_arr(ys)
}

/// `series_fir(series, filter[, normalize = true[, center = false]])`: `y[i] = sum_j f[j] *
/// x[i - j]` (elements outside the series, and non-numeric ones, count as 0), the filter
/// divided by its sum when normalizing, shifted by half its length when centered.
fn fir_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(xs), Some(f)) = (a.first().and_then(array_of), a.get(1).and_then(values)) else { return out(None) };
    let normalize = a.get(2).and_then(super::udf::sv_bool).unwrap_or(true);
    let center = a.get(3).and_then(super::udf::sv_bool).unwrap_or(false);
    let total: f64 = f.iter().sum();
    let f: Vec<f64> = if normalize && total != 0.0 { f.iter().map(|c| c / total).collect() } else { f };
    let x: Vec<f64> = xs.iter().map(|v| Num::of(v).map_or(0.0, Num::f)).collect();
    let shift = if center { (f.len().saturating_sub(1)) / 2 } else { 0 };
    let n = x.len();
    let at = |i: isize| -> f64 { usize::try_from(i).ok().and_then(|i| x.get(i)).copied().unwrap_or(0.0) };
    let ys = (0..n).map(|i| {
        let i = isize::try_from(i + shift).unwrap_or(isize::MAX);
        let v: f64 = f.iter().enumerate().map(|(j, c)| c * at(i - isize::try_from(j).unwrap_or(0))).sum();
        real(v)
    });
    out_arr(ys.collect())
}

/// `series_iir(series, numerators, denominators)`: `y[n] = (sum_k b[k] x[n-k] - sum_{k>=1}
/// a[k] y[n-k]) / a[0]`; null when `a[0]` is 0.
fn iir_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(xs), Some(b), Some(den)) = (a.first().and_then(array_of), a.get(1).and_then(values), a.get(2).and_then(values)) else {
        return out(None);
    };
    let Some(&a0) = den.first().filter(|a0| **a0 != 0.0) else { return out(None) };
    let x: Vec<f64> = xs.iter().map(|v| Num::of(v).map_or(0.0, Num::f)).collect();
    let mut y: Vec<f64> = Vec::with_capacity(x.len());
    for n in 0..x.len() {
        let fwd: f64 = b.iter().enumerate().filter(|(k, _)| *k <= n).map(|(k, c)| c * x[n - k]).sum();
        let back: f64 = den.iter().enumerate().skip(1).filter(|(k, _)| *k <= n).map(|(k, c)| c * y[n - k]).sum();
        y.push((fwd - back) / a0);
    }
    out_arr(y.into_iter().map(real).collect())
}

// ---------- fits, decomposition, periods, outliers, FFT ----------

fn reals(v: &[f64]) -> Json {
    Json::Array(v.iter().map(|x| real(*x)).collect())
}

/// A series' elements as reals, missing ones as NaN.
fn series_f64(v: &ScalarValue) -> Option<Vec<f64>> {
    Some(array_of(v)?.iter().map(|x| Num::of(x).map_or(f64::NAN, Num::f)).collect())
}

/// Least squares line through `(x, y)`: slope, interception, residual sum of squares.
fn line(points: &[(f64, f64)]) -> (f64, f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    let icpt = my - slope * mx;
    let rss = points.iter().map(|(x, y)| (y - (slope * x + icpt)).powi(2)).sum();
    (slope, icpt, rss)
}

fn sum_sq_dev(ys: &[f64]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let m = ys.iter().sum::<f64>() / ys.len() as f64;
    ys.iter().map(|y| (y - m) * (y - m)).sum()
}

/// Sample variance (0 for fewer than two values).
fn variance(ys: &[f64]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    if ys.len() < 2 { 0.0 } else { sum_sq_dev(ys) / (ys.len() - 1) as f64 }
}

#[allow(clippy::cast_precision_loss)]
fn pos(i: usize) -> f64 {
    (i + 1) as f64
}

/// `series_fit_2lines(series)`: the split into two lines (each of at least two points) with the
/// least total squared residual, over x = 1..n.
fn fit_2lines_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(ys) = a.first().and_then(series_f64) else { return out(None) };
    let n = ys.len();
    if n < 4 || ys.iter().any(|y| !y.is_finite()) {
        return out(None);
    }
    let pts: Vec<(f64, f64)> = ys.iter().enumerate().map(|(i, y)| (pos(i), *y)).collect();
    let mut best: Option<(usize, f64)> = None;
    for k in 2..=n - 2 {
        let rss = line(&pts[..k]).2 + line(&pts[k..]).2;
        if best.is_none_or(|(_, b)| rss < b) {
            best = Some((k, rss));
        }
    }
    let Some((k, rss)) = best else { return out(None) };
    let ss = sum_sq_dev(&ys);
    let mut m = serde_json::Map::new();
    let (ls, li, lr) = line(&pts[..k]);
    let (rs, ri, rr) = line(&pts[k..]);
    let fit: Vec<f64> = pts.iter().enumerate().map(|(i, (x, _))| if i < k { ls * x + li } else { rs * x + ri }).collect();
    let part_r2 = |ys: &[f64], rss: f64| {
        let ss = sum_sq_dev(ys);
        if ss == 0.0 { 1.0 } else { 1.0 - rss / ss }
    };
    #[allow(clippy::cast_precision_loss)]
    let rvar = |rss: f64, len: usize| if len < 2 { 0.0 } else { rss / (len - 1) as f64 };
    m.insert("rsquare".into(), real(if ss == 0.0 { 1.0 } else { 1.0 - rss / ss }));
    m.insert("split_idx".into(), Json::from(k - 1));
    m.insert("variance".into(), real(variance(&ys)));
    m.insert("rvariance".into(), real(rvar(rss, n)));
    m.insert("line_fit".into(), reals(&fit));
    m.insert("right_rsquare".into(), real(part_r2(&ys[k..], rr)));
    m.insert("right_slope".into(), real(rs));
    m.insert("right_interception".into(), real(ri));
    m.insert("right_variance".into(), real(variance(&ys[k..])));
    m.insert("right_rvariance".into(), real(rvar(rr, n - k)));
    m.insert("left_rsquare".into(), real(part_r2(&ys[..k], lr)));
    m.insert("left_slope".into(), real(ls));
    m.insert("left_interception".into(), real(li));
    m.insert("left_variance".into(), real(variance(&ys[..k])));
    m.insert("left_rvariance".into(), real(rvar(lr, k)));
    out(Some(Json::Object(m)))
}

/// `series_fit_poly(y[, x[, degree = 1]])`: least squares polynomial (x = 1..n when no x
/// series is given); rsquare, coefficients (highest degree first), variance, rvariance,
/// poly_fit.
fn fit_poly_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(ys) = a.first().and_then(series_f64) else { return out(None) };
    let xs = match a.get(1).and_then(series_f64) {
        Some(x) if x.len() == ys.len() => x,
        _ => (0..ys.len()).map(pos).collect(),
    };
    let degree = a.get(2).and_then(sv_i64).unwrap_or(1);
    let Ok(degree) = usize::try_from(degree) else { return out(None) };
    if degree == 0 || degree > 6 || ys.len() <= degree || ys.iter().chain(&xs).any(|v| !v.is_finite()) {
        return out(None);
    }
    // Normal equations (A^T A) c = A^T y, A[i][j] = x_i^j, solved by Gaussian elimination.
    let k = degree + 1;
    let mut m = vec![vec![0.0; k + 1]; k];
    for (x, y) in xs.iter().zip(&ys) {
        let powers: Vec<f64> = (0..k).map(|j| x.powi(i32::try_from(j).unwrap_or(0))).collect();
        for r in 0..k {
            for c in 0..k {
                m[r][c] += powers[r] * powers[c];
            }
            m[r][k] += powers[r] * y;
        }
    }
    for col in 0..k {
        let Some(piv) = (col..k).max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs())) else { return out(None) };
        if m[piv][col].abs() < 1e-300 {
            return out(None);
        }
        m.swap(col, piv);
        let pivot_row = m[col].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let coef: Vec<f64> = (0..k).map(|j| m[j][k] / m[j][j]).collect();
    let fit: Vec<f64> = xs.iter().map(|x| coef.iter().enumerate().map(|(j, c)| c * x.powi(i32::try_from(j).unwrap_or(0))).sum()).collect();
    let ss = sum_sq_dev(&ys);
    let rss: f64 = ys.iter().zip(&fit).map(|(y, f)| (y - f).powi(2)).sum();
    #[allow(clippy::cast_precision_loss)]
    let n1 = (ys.len() - 1) as f64;
    let mut o = serde_json::Map::new();
    o.insert("rsquare".into(), real(if ss == 0.0 { 1.0 } else { 1.0 - rss / ss }));
    o.insert("coefficients".into(), reals(&coef.iter().rev().copied().collect::<Vec<_>>()));
    o.insert("variance".into(), real(ss / n1));
    o.insert("rvariance".into(), real(rss / n1));
    o.insert("poly_fit".into(), reals(&fit));
    out(Some(Json::Object(o)))
}

/// The median of the finite values (`None` when there are none).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The autocorrelation of `x` (mean removed, finite values only) at lag `p`, in [-1, 1].
fn autocorrelation(x: &[f64], p: usize) -> f64 {
    let vals: Vec<f64> = x.iter().map(|v| if v.is_finite() { *v } else { 0.0 }).collect();
    #[allow(clippy::cast_precision_loss)]
    let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
    let den: f64 = vals.iter().map(|v| (v - m) * (v - m)).sum();
    if den == 0.0 || p >= vals.len() {
        return 0.0;
    }
    let num: f64 = (0..vals.len() - p).map(|i| (vals[i] - m) * (vals[i + p] - m)).sum();
    num / den
}

/// Periods between `lo` and `hi` (in bins) whose autocorrelation is a local maximum, best
/// first, at most `count`; scores are the autocorrelations (0 to 1).
fn detect_periods(x: &[f64], lo: usize, hi: usize, count: usize) -> Vec<(usize, f64)> {
    let hi = hi.min(x.len() / 2);
    let lo = lo.max(2);
    if lo > hi {
        return Vec::new();
    }
    let scores: Vec<f64> = (lo.saturating_sub(1)..=hi + 1).map(|p| autocorrelation(x, p)).collect();
    let mut peaks: Vec<(usize, f64)> = Vec::new();
    for p in lo..=hi {
        let i = p - lo.saturating_sub(1);
        let s = scores[i];
        if s > 0.0 && s >= scores[i - 1] && s >= scores.get(i + 1).copied().unwrap_or(f64::MIN) {
            peaks.push((p, s));
        }
    }
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    peaks.truncate(count);
    peaks
}

fn periods_bag(found: &[(usize, f64)]) -> ScalarValue {
    let mut m = serde_json::Map::new();
    m.insert("periods".into(), Json::Array(found.iter().map(|(p, _)| Json::from(*p)).collect()));
    m.insert("scores".into(), reals(&found.iter().map(|(_, s)| *s).collect::<Vec<_>>()));
    out(Some(Json::Object(m)))
}

/// `series_periods_detect(series, min_period, max_period, num_periods)`.
fn periods_detect_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(x), Some(lo), Some(hi), Some(k)) = (a.first().and_then(series_f64), a.get(1).and_then(sv_f64), a.get(2).and_then(sv_f64), a.get(3).and_then(sv_i64)) else {
        return out(None);
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (lo, hi) = (lo.max(0.0).ceil() as usize, hi.max(0.0).floor() as usize);
    periods_bag(&detect_periods(&x, lo, hi, usize::try_from(k).unwrap_or(0)))
}

/// `series_periods_validate(series, period1[, period2...])`: each period's score.
fn periods_validate_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(series_f64) else { return out(None) };
    let found: Vec<(usize, f64)> = a[1..]
        .iter()
        .filter_map(sv_f64)
        .filter(|p| *p >= 1.0)
        .map(|p| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let p = p as usize;
            (p, autocorrelation(&x, p).max(0.0))
        })
        .collect();
    periods_bag(&found)
}

/// The seasonal period for decomposition: `seasonality` when positive, none for 0, else
/// detected (the best period between 4 and a third of the learning points scoring at least
/// `threshold`).
fn season_period(x: &[f64], seasonality: i64, threshold: f64) -> Option<usize> {
    match seasonality {
        0 => None,
        p if p > 0 => usize::try_from(p).ok().filter(|p| *p < x.len()),
        _ => detect_periods(x, 4, x.len() / 3, 1).first().filter(|(_, s)| *s >= threshold).map(|(p, _)| *p),
    }
}

/// The seasonal component: per phase, the median of the learning points of that phase.
fn seasonal_of(x: &[f64], learn: usize, period: Option<usize>) -> Vec<f64> {
    let Some(p) = period else { return vec![0.0; x.len()] };
    let medians: Vec<f64> = (0..p).map(|ph| median((ph..learn).step_by(p).map(|i| x[i]).collect()).unwrap_or(0.0)).collect();
    (0..x.len()).map(|i| medians[i % p]).collect()
}

/// `(baseline, seasonal, trend, residual)` of a decomposition: the seasonal medians, then the
/// trend of the deseasoned learning points (`avg`: their average; `linefit`: their regression
/// line over x = 1..n, extended to the test points; `none`), baseline = seasonal + trend,
/// residual = x - baseline.
fn decompose(x: &[f64], seasonality: i64, trend: &str, test_points: usize, threshold: f64) -> Option<[Vec<f64>; 4]> {
    let n = x.len();
    let learn = n.saturating_sub(test_points);
    if learn == 0 {
        return None;
    }
    let period = season_period(&x[..learn], seasonality, threshold);
    let seasonal = seasonal_of(x, learn, period);
    let deseasoned: Vec<(f64, f64)> = (0..learn).filter(|i| x[*i].is_finite()).map(|i| (pos(i), x[i] - seasonal[i])).collect();
    let trend: Vec<f64> = match trend {
        "none" => vec![0.0; n],
        "linefit" if deseasoned.len() >= 2 => {
            let (slope, icpt, _) = line(&deseasoned);
            (0..n).map(|i| slope * pos(i) + icpt).collect()
        }
        _ => {
            #[allow(clippy::cast_precision_loss)]
            let avg = deseasoned.iter().map(|p| p.1).sum::<f64>() / deseasoned.len().max(1) as f64;
            vec![avg; n]
        }
    };
    let baseline: Vec<f64> = seasonal.iter().zip(&trend).map(|(s, t)| s + t).collect();
    let residual: Vec<f64> = x.iter().zip(&baseline).map(|(v, b)| v - b).collect();
    Some([baseline, seasonal, trend, residual])
}

fn arg_str_at(a: &[ScalarValue], i: usize) -> Option<&str> {
    a.get(i).and_then(super::udf::sv_str)
}

fn components_bag(c: [Vec<f64>; 4]) -> ScalarValue {
    let [baseline, seasonal, trend, residual] = c;
    let mut m = serde_json::Map::new();
    m.insert("baseline".into(), reals(&baseline));
    m.insert("seasonal".into(), reals(&seasonal));
    m.insert("trend".into(), reals(&trend));
    m.insert("residual".into(), reals(&residual));
    out(Some(Json::Object(m)))
}

/// `series_decompose(series[, seasonality = -1[, trend = 'avg'[, test_points = 0[,
/// seasonality_threshold = 0.6]]]])`.
fn decompose_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(series_f64) else { return out(None) };
    let seasonality = a.get(1).and_then(sv_i64).unwrap_or(-1);
    let trend = arg_str_at(a, 2).unwrap_or("avg");
    let test_points = a.get(3).and_then(sv_i64).and_then(|t| usize::try_from(t).ok()).unwrap_or(0);
    let threshold = a.get(4).and_then(sv_f64).unwrap_or(0.6);
    decompose(&x, seasonality, trend, test_points, threshold).map_or(out(None), components_bag)
}

/// `series_decompose_forecast(series, points[, seasonality = -1[, trend = 'linefit'[,
/// seasonality_threshold = 0.6]]])`: the last `points` are forecast, not learnt.
fn decompose_forecast_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(x), Some(points)) = (a.first().and_then(series_f64), a.get(1).and_then(sv_i64)) else { return out(None) };
    let seasonality = a.get(2).and_then(sv_i64).unwrap_or(-1);
    let trend = arg_str_at(a, 3).unwrap_or("linefit");
    let threshold = a.get(4).and_then(sv_f64).unwrap_or(0.6);
    decompose(&x, seasonality, trend, usize::try_from(points).unwrap_or(0), threshold).map_or(out(None), components_bag)
}

/// A percentile of the finite values, linearly interpolated.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss)]
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let f = rank - rank.floor();
    sorted[lo] + (sorted[hi.min(sorted.len() - 1)] - sorted[lo]) * f
}

/// Tukey scores: 0 inside the [low, high] percentiles, else the distance beyond them in units
/// of their range (positive above, negative below); missing values score 0.
fn outlier_scores(x: &[f64], kind: &str, lo_pct: f64, hi_pct: f64) -> Vec<f64> {
    let (lo_pct, hi_pct) = if kind == "tukey" { (25.0, 75.0) } else { (lo_pct, hi_pct) };
    let mut sorted: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (percentile(&sorted, lo_pct), percentile(&sorted, hi_pct));
    // A range of zero width (most values equal) would make every other value infinitely
    // far out: measure against a tiny width instead, so such values still score high.
    let iqr = (q3 - q1).max(1e-9 * q1.abs().max(q3.abs()).max(1.0));
    x.iter()
        .map(|v| {
            if !v.is_finite() {
                0.0
            } else if *v > q3 {
                (v - q3) / iqr
            } else if *v < q1 {
                (v - q1) / iqr
            } else {
                0.0
            }
        })
        .collect()
}

/// `series_outliers(series[, kind = 'ctukey'[, ignore_val[, min_percentile = 10[,
/// max_percentile = 90]]]])`.
fn outliers_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(mut x) = a.first().and_then(series_f64) else { return out(None) };
    if let Some(ignore) = a.get(2).and_then(sv_f64) {
        for v in &mut x {
            if *v == ignore {
                *v = f64::NAN;
            }
        }
    }
    let kind = arg_str_at(a, 1).unwrap_or("ctukey").to_ascii_lowercase();
    let (lo, hi) = (a.get(3).and_then(sv_f64).unwrap_or(10.0), a.get(4).and_then(sv_f64).unwrap_or(90.0));
    if !(2.0..=98.0).contains(&lo) || !(2.0..=98.0).contains(&hi) || lo >= hi {
        return out(None);
    }
    out_arr(outlier_scores(&x, &kind, lo, hi).into_iter().map(real).collect())
}

/// `series_decompose_anomalies(series[, threshold = 1.5[, seasonality = -1[, trend = 'avg'[,
/// test_points = 0[, method = 'ctukey'[, seasonality_threshold = 0.6]]]]]])`: the residual's
/// outlier scores (ad_score), +1/-1 where they pass the threshold (ad_flag), and the baseline.
fn decompose_anomalies_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(series_f64) else { return out(None) };
    let threshold = a.get(1).and_then(sv_f64).unwrap_or(1.5);
    let seasonality = a.get(2).and_then(sv_i64).unwrap_or(-1);
    let trend = arg_str_at(a, 3).unwrap_or("avg");
    let test_points = a.get(4).and_then(sv_i64).and_then(|t| usize::try_from(t).ok()).unwrap_or(0);
    let kind = arg_str_at(a, 5).unwrap_or("ctukey").to_ascii_lowercase();
    let season_threshold = a.get(6).and_then(sv_f64).unwrap_or(0.6);
    let Some([baseline, _, _, residual]) = decompose(&x, seasonality, trend, test_points, season_threshold) else { return out(None) };
    let scores = outlier_scores(&residual, &kind, 10.0, 90.0);
    let flags: Vec<Json> = scores.iter().map(|s| Json::from(if *s > threshold { 1 } else if *s < -threshold { -1 } else { 0 })).collect();
    let mut m = serde_json::Map::new();
    m.insert("ad_flag".into(), Json::Array(flags));
    m.insert("ad_score".into(), reals(&scores));
    m.insert("baseline".into(), reals(&baseline));
    out(Some(Json::Object(m)))
}

/// `series_seasonal(series[, period = -1])`: the seasonal component (per-phase medians).
fn seasonal_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = a.first().and_then(series_f64) else { return out(None) };
    let period = season_period(&x, a.get(1).and_then(sv_i64).unwrap_or(-1), 0.6);
    out_arr(seasonal_of(&x, x.len(), period).into_iter().map(real).collect())
}

/// The discrete Fourier transform (`inverse`: its inverse, scaled by 1/n) of a real and an
/// optional imaginary series.
fn fourier(a: &[ScalarValue], inverse: bool) -> ScalarValue {
    use rustfft::num_complex::Complex;
    let Some(re) = a.first().and_then(series_f64) else { return out(None) };
    let im = a.get(1).and_then(series_f64).unwrap_or_else(|| vec![0.0; re.len()]);
    if im.len() != re.len() || re.iter().chain(&im).any(|v| !v.is_finite()) {
        return out(None);
    }
    let mut buf: Vec<Complex<f64>> = re.iter().zip(&im).map(|(r, i)| Complex::new(*r, *i)).collect();
    let mut planner = rustfft::FftPlanner::new();
    let fft = if inverse { planner.plan_fft_inverse(buf.len()) } else { planner.plan_fft_forward(buf.len()) };
    fft.process(&mut buf);
    #[allow(clippy::cast_precision_loss)]
    let scale = if inverse && !buf.is_empty() { 1.0 / buf.len() as f64 } else { 1.0 };
    let mut m = serde_json::Map::new();
    m.insert("real".into(), reals(&buf.iter().map(|c| c.re * scale).collect::<Vec<_>>()));
    m.insert("imag".into(), reals(&buf.iter().map(|c| c.im * scale).collect::<Vec<_>>()));
    out(Some(Json::Object(m)))
}

fn fft_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    fourier(a, false)
}

fn ifft_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    fourier(a, true)
}

use KqlType::{Dynamic as D, Long as L, Real as R};

/// The functions that give several columns (`extend (a, b) = f(x)`, or `f_x_field` names),
/// each with its row function (a bag of the fields) and its fields in order.
/// A function that gives several columns: its name, its row function, its fields.
type MultiColumn = (&'static str, super::udf::RowFn, &'static [(&'static str, KqlType)]);

static MULTI: &[MultiColumn] = &[
    ("series_stats", stats_dynamic_row, &[("min", R), ("min_idx", L), ("max", R), ("max_idx", L), ("avg", R), ("stdev", R), ("variance", R)]),
    ("series_fit_line", fit_line_dynamic_row, &[("rsquare", R), ("slope", R), ("variance", R), ("rvariance", R), ("interception", R), ("line_fit", D)]),
    (
        "series_fit_2lines",
        fit_2lines_row,
        &[
            ("rsquare", R),
            ("split_idx", L),
            ("variance", R),
            ("rvariance", R),
            ("line_fit", D),
            ("right_rsquare", R),
            ("right_slope", R),
            ("right_interception", R),
            ("right_variance", R),
            ("right_rvariance", R),
            ("left_rsquare", R),
            ("left_slope", R),
            ("left_interception", R),
            ("left_variance", R),
            ("left_rvariance", R),
        ],
    ),
    ("series_fit_poly", fit_poly_row, &[("rsquare", R), ("coefficients", D), ("variance", R), ("rvariance", R), ("poly_fit", D)]),
    ("series_decompose", decompose_row, &[("baseline", D), ("seasonal", D), ("trend", D), ("residual", D)]),
    ("series_decompose_forecast", decompose_forecast_row, &[("baseline", D), ("seasonal", D), ("trend", D), ("residual", D)]),
    ("series_decompose_anomalies", decompose_anomalies_row, &[("ad_flag", D), ("ad_score", D), ("baseline", D)]),
    ("series_periods_detect", periods_detect_row, &[("periods", D), ("scores", D)]),
    ("series_periods_validate", periods_validate_row, &[("periods", D), ("scores", D)]),
    ("series_fft", fft_row, &[("real", D), ("imag", D)]),
    ("series_ifft", ifft_row, &[("real", D), ("imag", D)]),
];

/// The fields of a function that gives several columns, if `name` is one.
pub(crate) fn multi_column(name: &str) -> Option<&'static [(&'static str, KqlType)]> {
    MULTI.iter().find(|m| m.0 == name).map(|m| m.2)
}

/// A call of a function that gives several columns, as the bag of its fields.
pub(crate) fn lower_multi(name: &str, args: Vec<TypedExpr>) -> crate::error::Result<TypedExpr> {
    let Some(&(_, f, _)) = MULTI.iter().find(|m| m.0 == name) else {
        return Err(crate::error::PlanError::semantic(format!("function '{name}' is not supported by Kustodian")));
    };
    let exprs = series_args(name, args)?;
    Ok(TypedExpr::new(row_call(name, KqlType::Dynamic.arrow_type(), f, exprs), KqlType::Dynamic))
}

/// The row function of `series_*` function `name` and its result type.
fn series_row(name: &str) -> Option<(super::udf::RowFn, KqlType)> {
    use KqlType::{Dynamic, Real};
    Some(match name {
        "series_abs" => (abs_row, Dynamic),
        "series_acos" => (acos_row, Dynamic),
        "series_asin" => (asin_row, Dynamic),
        "series_atan" => (atan_row, Dynamic),
        "series_ceiling" => (ceiling_row, Dynamic),
        "series_cos" => (cos_row, Dynamic),
        "series_exp" => (exp_row, Dynamic),
        "series_floor" => (floor_row, Dynamic),
        "series_log" => (log_row, Dynamic),
        "series_sign" => (sign_row, Dynamic),
        "series_sin" => (sin_row, Dynamic),
        "series_tan" => (tan_row, Dynamic),
        "series_add" => (add_row, Dynamic),
        "series_subtract" => (subtract_row, Dynamic),
        "series_multiply" => (multiply_row, Dynamic),
        "series_divide" => (divide_row, Dynamic),
        "series_pow" => (pow_row, Dynamic),
        "series_greater" => (greater_row, Dynamic),
        "series_greater_equals" => (greater_equals_row, Dynamic),
        "series_less" => (less_row, Dynamic),
        "series_less_equals" => (less_equals_row, Dynamic),
        "series_equals" => (equals_row, Dynamic),
        "series_not_equals" => (not_equals_row, Dynamic),
        "series_sum" => (sum_row, Real),
        "series_product" => (product_row, Real),
        "series_magnitude" => (magnitude_row, Real),
        "series_dot_product" => (dot_product_row, Real),
        "series_cosine_similarity" => (cosine_similarity_row, Real),
        "series_pearson_correlation" => (pearson_correlation_row, Real),
        "series_stats_dynamic" => (stats_dynamic_row, Dynamic),
        "series_fit_line_dynamic" => (fit_line_dynamic_row, Dynamic),
        "series_fill_const" => (fill_const_row, Dynamic),
        "series_fill_forward" => (fill_forward_row, Dynamic),
        "series_fill_backward" => (fill_backward_row, Dynamic),
        "series_fill_linear" => (fill_linear_row, Dynamic),
        "series_fir" => (fir_row, Dynamic),
        "series_iir" => (iir_row, Dynamic),
        "series_outliers" => (outliers_row, Dynamic),
        "series_seasonal" => (seasonal_row, Dynamic),
        "series_fit_2lines_dynamic" => (fit_2lines_row, Dynamic),
        _ => return None,
    })
}

/// A `series_*` call: series arguments as dynamic, flags as bool, numbers as numbers.
pub(super) fn lower_series(name: &str, args: Vec<TypedExpr>, _: &super::FunctionContext) -> crate::error::Result<TypedExpr> {
    let Some((f, ty)) = series_row(name) else {
        return Err(crate::error::PlanError::semantic(format!("function '{name}' is not supported by Kustodian")));
    };
    let exprs = series_args(name, args)?;
    Ok(TypedExpr::new(row_call(name, ty.arrow_type(), f, exprs), ty))
}

/// A series function's arguments: arrays, numbers, flags and names as they are.
fn series_args(name: &str, args: Vec<TypedExpr>) -> crate::error::Result<Vec<Expr>> {
    let mut exprs = Vec::with_capacity(args.len());
    for a in args {
        let e = match a.ty {
            KqlType::Bool | KqlType::Dynamic | KqlType::Long | KqlType::Real | KqlType::Int | KqlType::String => a.expr,
            KqlType::Decimal => super::lower_cast(a, KqlType::Real)?.expr,
            t => return Err(crate::error::PlanError::semantic(format!("function '{name}' expects numbers or numeric arrays, got {t}"))),
        };
        exprs.push(e);
    }
    Ok(exprs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.to_string()))
    }

    fn l(v: i64) -> ScalarValue {
        ScalarValue::Int64(Some(v))
    }

    #[test]
    fn fill_places_values_by_position_with_defaults() {
        let pairs = s("[[3, 4.0, 1], [5, 10.5, 2], [9, 1.0, 3]]");
        let row = |i: i64, start: i64, n: i64| series_fill_row(&[pairs.clone(), l(i), l(start), l(n), s("0")], &mut RowState::default());
        assert_eq!(row(1, 3, 4), s("[4.0,0,10.5,0]"));
        assert_eq!(row(2, 2, 3), s("[0,1,0]"));
        // Out-of-range positions are left out; a null argument gives null.
        assert_eq!(row(1, 6, 2), s("[0,0]"));
        assert_eq!(series_fill_row(&[ScalarValue::Utf8(None), l(1), l(0), l(1), s("0")], &mut RowState::default()), ScalarValue::Utf8(None));
    }

    #[test]
    fn axis_in_the_anchor_type() {
        let day = 86_400_000_000_000i64;
        let a = series_axis_row(&[ScalarValue::TimestampNanosecond(Some(0), None), ScalarValue::DurationNanosecond(Some(day)), l(1), l(2)], &mut RowState::default());
        assert_eq!(a, s(r#"["1970-01-02T00:00:00.0000000Z","1970-01-03T00:00:00.0000000Z"]"#));
        assert_eq!(series_axis_row(&[l(10), l(5), l(-1), l(3)], &mut RowState::default()), s("[5,10,15]"));
        assert_eq!(series_axis_row(&[ScalarValue::Float64(Some(0.0)), ScalarValue::Float64(Some(0.5)), l(0), l(3)], &mut RowState::default()), s("[0.0,0.5,1.0]"));
    }
}
