//! KQL math functions and `bin`/`floor`/`bin_at` over numbers, datetimes and timespans.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use super::conversion::{DEC_ONE, lower_cast};
use super::args::{arg_i64, integers, real, typed};
use super::udf::{RowFn, RowState, row_call, s_bool, s_dur, s_f64, s_i64, s_ts, sv_f64, sv_i64};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// 0001-01-01 in Unix nanoseconds (as i128; out of i64 range). Datetime bins align to it.
const NANOS_0001: i128 = -62_135_596_800_000_000_000;

fn numeric(a: &TypedExpr, f: &str) -> Result<()> {
    if a.ty.is_numeric() || a.ty == KqlType::Dynamic {
        Ok(())
    } else {
        Err(PlanError::semantic(format!("function '{f}' expects a numeric argument, got {}", a.ty)))
    }
}

fn real_fn(name: &str, f: super::udf::RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::Real.arrow_type(), f, args), KqlType::Real)
}

macro_rules! unary_real {
    ($fname:ident, $op:expr) => {
        fn $fname(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
            let op: fn(f64) -> f64 = $op;
            s_f64(args.first().and_then(sv_f64).map(op))
        }
    };
}

unary_real!(sqrt_row, f64::sqrt);

unary_real!(exp_row, f64::exp);

unary_real!(exp2_row, f64::exp2);

unary_real!(exp10_row, |x| 10f64.powf(x));

fn log_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    in_domain(a, |x| x >= 0.0, f64::ln)
}

fn log2_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    in_domain(a, |x| x >= 0.0, f64::log2)
}

fn log10_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    in_domain(a, |x| x >= 0.0, f64::log10)
}

unary_real!(sign_row, |x| if x > 0.0 {
    1.0
} else if x < 0.0 {
    -1.0
} else {
    x
});

fn pow_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(a), Some(b)) = (args.first().and_then(sv_f64), args.get(1).and_then(sv_f64)) else { return s_f64(None) };
    s_f64(Some(a.powf(b)))
}

fn fclass_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(x), Some(k)) = (args.first().and_then(sv_f64), args.get(1).and_then(sv_i64)) else {
        return s_bool(None);
    };
    s_bool(Some(match k {
        0 => x.is_nan(),
        1 => x.is_infinite(),
        _ => x.is_finite(),
    }))
}

fn abs_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match args.first() {
        Some(ScalarValue::Int64(x)) => s_i64(x.and_then(i64::checked_abs)),
        Some(ScalarValue::Float64(x)) => s_f64(x.map(f64::abs)),
        Some(ScalarValue::Decimal128(x, p, s)) => ScalarValue::Decimal128(x.and_then(i128::checked_abs), *p, *s),
        Some(ScalarValue::DurationNanosecond(x)) => s_dur(x.and_then(i64::checked_abs)),
        _ => ScalarValue::Null,
    }
}

fn round_half_away(x: f64, p: i64) -> f64 {
    let p = p.clamp(-300, 300) as i32;
    let m = 10f64.powi(p);
    let y = (x * m).round() / m;
    if y.is_finite() { y } else { x }
}

fn round_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let p = args.get(1).map_or(Some(0), sv_i64);
    let Some(p) = p else { return ScalarValue::Null };
    match args.first() {
        Some(ScalarValue::Float64(x)) => s_f64(x.map(|x| round_half_away(x, p))),
        Some(ScalarValue::Int64(x)) => s_i64(x.and_then(|x| {
            if p >= 0 {
                return Some(x);
            }
            let m = 10i64.checked_pow(u32::try_from(-p).ok()?)?;
            let q = (x as f64 / m as f64).round() as i64;
            q.checked_mul(m)
        })),
        Some(ScalarValue::Decimal128(x, pr, s)) => ScalarValue::Decimal128(
            x.and_then(|x| {
                let p = p.clamp(-27, 10);
                let m = 10i128.checked_pow(u32::try_from(10 - p).ok()?)?;
                let half = m / 2;
                let q = if x >= 0 { (x + half) / m } else { (x - half) / m };
                q.checked_mul(m)
            }),
            *pr,
            *s,
        ),
        _ => ScalarValue::Null,
    }
}

fn ceiling_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    match args.first() {
        Some(ScalarValue::Float64(x)) => s_f64(x.map(f64::ceil)),
        Some(ScalarValue::Int64(x)) => s_i64(*x),
        Some(ScalarValue::Decimal128(x, p, s)) => {
            ScalarValue::Decimal128(x.map(|x| x.div_euclid(DEC_ONE) * DEC_ONE + if x.rem_euclid(DEC_ONE) != 0 { DEC_ONE } else { 0 }), *p, *s)
        }
        _ => ScalarValue::Null,
    }
}

fn floor_i64(x: i64, size: i64, at: i64) -> Option<i64> {
    if size <= 0 {
        return None;
    }
    let d = i128::from(x) - i128::from(at);
    let b = d.div_euclid(i128::from(size)) * i128::from(size) + i128::from(at);
    i64::try_from(b).ok()
}

fn floor_f64(x: f64, size: f64, at: f64) -> Option<f64> {
    if size.is_nan() || size <= 0.0 {
        return None;
    }
    Some(((x - at) / size).floor() * size + at)
}

/// `[value, size, fixed_point]` — Kusto `bin_at`; `bin`/`floor` pass the type's default origin.
fn bin_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    use ScalarValue::*;
    let (Some(v), Some(size), at) = (args.first(), args.get(1), args.get(2)) else { return Null };
    match v {
        Int64(x) => s_i64(x.zip(sv_i64(size)).and_then(|(x, s)| floor_i64(x, s, at.and_then(sv_i64).unwrap_or(0)))),
        Float64(x) => s_f64(x.zip(sv_f64(size)).and_then(|(x, s)| floor_f64(x, s, at.and_then(sv_f64).unwrap_or(0.0)))),
        TimestampNanosecond(x, _) => s_ts(x.zip(sv_i64(size)).and_then(|(x, s)| {
            if s <= 0 {
                return None;
            }
            let origin = at.and_then(sv_i64).map_or(NANOS_0001, i128::from);
            let d = i128::from(x) - origin;
            i64::try_from(d.div_euclid(i128::from(s)) * i128::from(s) + origin).ok()
        })),
        DurationNanosecond(x) => {
            s_dur(x.zip(sv_i64(size)).and_then(|(x, s)| floor_i64(x, s, at.and_then(sv_i64).unwrap_or(0))))
        }
        Decimal128(x, p, sc) => {
            let r = x.and_then(|x| {
                let s = match size {
                    Decimal128(Some(s), _, _) => *s,
                    _ => return None,
                };
                if s <= 0 {
                    return None;
                }
                Some(x.div_euclid(s) * s)
            });
            Decimal128(r, *p, *sc)
        }
        _ => Null,
    }
}

/// `bin(value, size)` (alias `floor`) and `bin_at(value, size, fixed_point)`.
pub(super) fn lower_bin(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let v = args.remove(0);
    let size = args.remove(0);
    let at = args.pop();
    let v = if v.ty == Dynamic { lower_cast(v, Real)? } else { v };
    let (v, size, ty) = match (v.ty, size.ty) {
        (Datetime, Timespan) | (Timespan, Timespan) => {
            let t = v.ty;
            (v, size, t)
        }
        (a, b) if a.is_numeric() && (b.is_numeric() || b == Dynamic) => {
            let t = match (a, b) {
                (Decimal, _) | (_, Decimal) => Decimal,
                (Real, _) | (_, Real) | (_, Dynamic) => Real,
                _ => Long,
            };
            (lower_cast(v, t)?, lower_cast(size, t)?, t)
        }
        (a, b) => {
            return Err(PlanError::semantic(format!("function '{name}' is not defined for arguments of types {a} and {b}")));
        }
    };
    let mut a = vec![v.expr, size.expr];
    if let Some(at) = at {
        let at = match (ty, at.ty) {
            (Datetime, Datetime) | (Timespan, Timespan) => at,
            (Long | Real | Decimal, t) if t.is_numeric() => lower_cast(at, ty)?,
            (_, t) => return Err(PlanError::semantic(format!("bin_at: fixed point of type {t} does not match {ty}"))),
        };
        a.push(at.expr);
    } else if ty == Datetime {
        a.push(lit(ScalarValue::TimestampNanosecond(None, None)));
    }
    Ok(TypedExpr::new(row_call("bin", ty.arrow_type(), bin_row, a), ty))
}

/// `sqrt`, `exp`, `exp2`, `exp10`, `log`, `log2`, `log10`, `sign`: one real to a real.
pub(super) fn lower_unary_real(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: super::udf::RowFn = match name {
        "sqrt" => sqrt_row,
        "exp" => exp_row,
        "exp2" => exp2_row,
        "exp10" => exp10_row,
        "log" => log_row,
        "log2" => log2_row,
        "log10" => log10_row,
        "sign" => sign_row,
        _ => return Err(PlanError::Internal(format!("'{name}' is no unary real function"))),
    };
    let a = args.into_iter().map(|a| real(a, name)).collect::<Result<Vec<_>>>()?;
    Ok(real_fn(name, f, a))
}

pub(super) fn lower_pow(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(|a| real(a, name)).collect::<Result<Vec<_>>>()?;
    Ok(real_fn(name, pow_row, a))
}

pub(super) fn lower_pi(_: &str, _: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    Ok(TypedExpr::new(lit(std::f64::consts::PI), KqlType::Real))
}

/// `isnan`, `isinf`, `isfinite`.
pub(super) fn lower_fclass(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let k: i64 = match name {
        "isnan" => 0,
        "isinf" => 1,
        _ => 2,
    };
    let a = real(args.remove(0), name)?;
    Ok(TypedExpr::new(row_call("fclass", KqlType::Bool.arrow_type(), fclass_row, vec![a, lit(k)]), KqlType::Bool))
}

/// `abs` and `ceiling`: the result keeps the argument's numeric type (`abs` of a timespan too).
pub(super) fn lower_abs_ceiling(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let a = args.remove(0);
    let a = match a.ty {
        Int => lower_cast(a, Long)?,
        Dynamic => lower_cast(a, Real)?,
        Long | Real | Decimal => a,
        Timespan if name == "abs" => a,
        t => return Err(PlanError::semantic(format!("function '{name}' expects a numeric argument, got {t}"))),
    };
    let ty = a.ty;
    let f = if name == "abs" { abs_row } else { ceiling_row };
    Ok(TypedExpr::new(row_call(name, ty.arrow_type(), f, vec![a.expr]), ty))
}

pub(super) fn lower_round(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let a = args.remove(0);
    let a = match a.ty {
        Int => lower_cast(a, Long)?,
        Dynamic => lower_cast(a, Real)?,
        Long | Real | Decimal => a,
        t => return Err(PlanError::semantic(format!("function 'round' expects a numeric argument, got {t}"))),
    };
    let ty = a.ty;
    let mut v = vec![a.expr];
    if let Some(p) = args.pop() {
        numeric(&p, name)?;
        v.push(lower_cast(p, Long)?.expr);
    }
    Ok(TypedExpr::new(row_call("round", ty.arrow_type(), round_row, v), ty))
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

/// `f(x)` for `x` in its domain, null outside it (`acos(2)`, `log(-1)`), as the reference says.
fn in_domain(args: &[ScalarValue], domain: fn(f64) -> bool, op: fn(f64) -> f64) -> ScalarValue {
    s_f64(args.first().and_then(sv_f64).and_then(|x| (x.is_nan() || domain(x)).then(|| op(x))))
}

fn acos_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    in_domain(a, |x| (-1.0..=1.0).contains(&x), f64::acos)
}

fn asin_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    in_domain(a, |x| (-1.0..=1.0).contains(&x), f64::asin)
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

/// Γ(x) by the Lanczos approximation (g = 7), with reflection below 1/2.
fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    if x.fract() == 0.0 && x <= 171.0 {
        // exact factorials
        return (1..x as u64).fold(1.0, |acc, k| acc * k as f64);
    }
    let x = x - 1.0;
    let mut s = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        s += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * s
}

/// ln |Γ(x)|.
fn loggamma(x: f64) -> f64 {
    if x < 0.5 {
        let s = (std::f64::consts::PI * x).sin().abs();
        return std::f64::consts::PI.ln() - s.ln() - loggamma(1.0 - x);
    }
    if x < 100.0 {
        return gamma(x).abs().ln();
    }
    // Stirling series
    let x2 = x * x;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x2 * x2 * x)
}

fn finite(x: f64) -> Option<f64> {
    if x.is_nan() { None } else { Some(x) }
}

fn gamma_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64(a.first().and_then(sv_f64).and_then(|x| {
        if x <= 0.0 && x.fract() == 0.0 { None } else { finite(gamma(x)) }
    }))
}

fn loggamma_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64(a.first().and_then(sv_f64).and_then(|x| {
        if x <= 0.0 && x.fract() == 0.0 { None } else { finite(loggamma(x)) }
    }))
}

fn popcount_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i64(arg_i64(a, 0).map(|x| i64::from(x.count_ones())))
}

/// `[op, a, b]`: 0 and, 1 or, 2 xor, 3 not, 4 shift left, 5 shift right.
fn binary_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(op), Some(x)) = (arg_i64(a, 0), arg_i64(a, 1)) else { return s_i64(None) };
    if op == 3 {
        return s_i64(Some(!x));
    }
    let Some(y) = arg_i64(a, 2) else { return s_i64(None) };
    s_i64(match op {
        0 => Some(x & y),
        1 => Some(x | y),
        2 => Some(x ^ y),
        // The shift is taken modulo 64, as the reference says (`binary_shift_left(1, 66)` is 4).
        4 => u32::try_from(y.rem_euclid(64)).ok().map(|s| x << s),
        5 => u32::try_from(y.rem_euclid(64)).ok().map(|s| x >> s),
        _ => None,
    })
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

/// `gamma` and `loggamma`.
pub(super) fn lower_gamma(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let a = vec![real(args.remove(0), name)?];
    Ok(typed(name, Real, if name == "gamma" { gamma_row } else { loggamma_row }, a))
}

fn erf_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64(a.first().and_then(sv_f64).map(libm::erf))
}

fn erfc_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64(a.first().and_then(sv_f64).map(libm::erfc))
}

/// `erf` and `erfc`: the error function and its complement (libm's).
pub(super) fn lower_erf(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = vec![real(args.remove(0), name)?];
    Ok(typed(name, KqlType::Real, if name == "erf" { erf_row } else { erfc_row }, a))
}

/// The beta distribution of a row's `alpha` and `beta` arguments (1 and 2), if they are numbers
/// and Kusto takes them (0 < alpha, beta <= 10000); `Err(())` for numbers out of range.
fn beta_of(a: &[ScalarValue]) -> Option<std::result::Result<statrs::distribution::Beta, ()>> {
    let (alpha, beta) = (a.get(1).and_then(sv_f64)?, a.get(2).and_then(sv_f64)?);
    let ok = |p: f64| p > 0.0 && p <= 10_000.0;
    if !(ok(alpha) && ok(beta)) {
        return Some(Err(()));
    }
    Some(statrs::distribution::Beta::new(alpha, beta).map_err(|_| ()))
}

/// `beta_cdf(x, alpha, beta)` (`pdf` false) and `beta_pdf(x, alpha, beta)`: NaN for `x` outside
/// 0..1 or a parameter outside 0..10000 (exclusive of 0), as the reference says.
fn beta_dist_row(a: &[ScalarValue], pdf: bool) -> ScalarValue {
    use statrs::distribution::{Continuous, ContinuousCDF};
    let (Some(x), Some(dist)) = (a.first().and_then(sv_f64), beta_of(a)) else {
        return s_f64(None);
    };
    match dist {
        Ok(d) if (0.0..=1.0).contains(&x) => s_f64(Some(if pdf { d.pdf(x) } else { d.cdf(x) })),
        _ => s_f64(Some(f64::NAN)),
    }
}

fn beta_cdf_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    beta_dist_row(a, false)
}

fn beta_pdf_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    beta_dist_row(a, true)
}

/// `beta_inv(p, alpha, beta)`: the `x` with `beta_cdf(x) = p`. As the reference's example
/// answers: null for `p` outside (0, 1], NaN for a parameter out of range.
fn beta_inv_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    use statrs::distribution::ContinuousCDF;
    let (Some(p), Some(dist)) = (a.first().and_then(sv_f64), beta_of(a)) else {
        return s_f64(None);
    };
    match dist {
        Err(()) => s_f64(Some(f64::NAN)),
        Ok(_) if !(p > 0.0 && p <= 1.0) => s_f64(None),
        Ok(d) => s_f64(Some(d.inverse_cdf(p))),
    }
}

pub(super) fn lower_beta(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(|x| real(x, name)).collect::<Result<Vec<_>>>()?;
    let f: RowFn = match name {
        "beta_cdf" => beta_cdf_row,
        "beta_pdf" => beta_pdf_row,
        _ => beta_inv_row,
    };
    Ok(typed(name, KqlType::Real, f, a))
}

pub(super) fn lower_bitset_count_ones(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    Ok(typed("bitset_count_ones", Long, popcount_row, integers(args, name)?))
}

/// `binary_and`, `binary_or`, `binary_xor`, `binary_not`, `binary_shift_left`,
/// `binary_shift_right`.
pub(super) fn lower_binary_op(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let op = match name {
        "binary_and" => 0i64,
        "binary_or" => 1,
        "binary_xor" => 2,
        "binary_not" => 3,
        "binary_shift_left" => 4,
        _ => 5,
    };
    let mut a = vec![lit(op)];
    a.extend(integers(args, name)?);
    Ok(typed("binary_op", Long, binary_row, a))
}

// ---------- around ----------

fn around_f64_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(v), Some(c), Some(d)) = (a.first().and_then(sv_f64), a.get(1).and_then(sv_f64), a.get(2).and_then(sv_f64)) else { return s_bool(None) };
    s_bool(Some(v >= c - d && v <= c + d))
}

fn around_ns_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(v), Some(c), Some(d)) = (a.first().and_then(sv_i64), a.get(1).and_then(sv_i64), a.get(2).and_then(sv_i64)) else { return s_bool(None) };
    let (lo, hi) = (i128::from(c) - i128::from(d), i128::from(c) + i128::from(d));
    s_bool(Some((lo..=hi).contains(&i128::from(v))))
}

/// `around(value, center, delta)`: whether `value` is within `delta` of `center`, bounds
/// included. Numbers with numbers; a datetime around a datetime, or a timespan around a
/// timespan, within a timespan.
pub(super) fn lower_around(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let (v, c, d) = (args.remove(0), args.remove(0), args.remove(0));
    match v.ty {
        Datetime | Timespan => {
            if c.ty != v.ty || d.ty != Timespan {
                return Err(PlanError::semantic(format!(
                    "function '{name}' around a {} takes a {} center and a timespan delta, got {} and {}",
                    v.ty, v.ty, c.ty, d.ty
                )));
            }
            Ok(typed(name, Bool, around_ns_row, vec![v.expr, c.expr, d.expr]))
        }
        _ => Ok(typed(name, Bool, around_f64_row, vec![real(v, name)?, real(c, name)?, real(d, name)?])),
    }
}

/// `welch_test(mean1, variance1, count1, mean2, variance2, count2)`: the two-sided p-value of
/// Welch's t-test; null where the statistics do not define one (fewer than two values, no
/// variance).
fn welch_test_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let v: Option<Vec<f64>> = a.iter().take(6).map(sv_f64).collect();
    let Some([m1, v1, n1, m2, v2, n2]) = v.as_deref().and_then(|v| <[f64; 6]>::try_from(v).ok()) else { return s_f64(None) };
    if n1 < 2.0 || n2 < 2.0 || v1 < 0.0 || v2 < 0.0 {
        return s_f64(None);
    }
    let (s1, s2) = (v1 / n1, v2 / n2);
    let se = (s1 + s2).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return s_f64(None);
    }
    let t = (m1 - m2) / se;
    let df = (s1 + s2).powi(2) / (s1 * s1 / (n1 - 1.0) + s2 * s2 / (n2 - 1.0));
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => s_f64(Some(2.0 * d.sf(t.abs()))),
        Err(_) => s_f64(None),
    }
}

pub(super) fn lower_welch_test(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(|x| real(x, name)).collect::<Result<Vec<_>>>()?;
    Ok(typed(name, KqlType::Real, welch_test_row, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors() {
        assert_eq!(floor_i64(7, 5, 0), Some(5));
        assert_eq!(floor_i64(-1, 5, 0), Some(-5));
        assert_eq!(floor_i64(7, 0, 0), None);
        assert_eq!(floor_i64(7, 5, 1), Some(6));
        assert_eq!(floor_f64(7.5, 1.0, 0.0), Some(7.0));
        assert_eq!(floor_f64(7.5, -1.0, 0.0), None);
        assert_eq!(round_half_away(2.5, 0), 3.0);
        assert_eq!(round_half_away(-2.5, 0), -3.0);
        assert_eq!(round_half_away(2.15, 1), 2.2);
    }

    #[test]
    fn gamma_values() {
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-12);
        assert!((loggamma(10.0) - 362_880f64.ln()).abs() < 1e-9);
    }
}

