//! Conversions between KQL types with Kusto semantics: null on failure, never an error.
//!
//! Values cross types through a small value model [`V`]; `tostring` follows Kusto's text forms
//! (datetime `2020-01-01T00:00:00Z`, timespan `[-][d.]hh:mm:ss[.fffffff]`, reals like .NET's
//! shortest round-trip form), dynamic values are compact JSON text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;
use super::{FunctionContext, TypedExpr};
use super::udf::{RowState, f64_to_i64, row_call, s_str, sv_i64, sv_str};
use crate::error::{PlanError, Result};
use crate::types::{DECIMAL_SCALE, KqlType};

/// 100-ns ticks between 0001-01-01 and the Unix epoch.
pub(crate) const TICKS_TO_UNIX_EPOCH: i64 = 621_355_968_000_000_000;

pub(crate) const DEC_ONE: i128 = 10_000_000_000; // 10^DECIMAL_SCALE

/// A KQL value detached from its Arrow carrier.
#[derive(Debug, Clone)]
pub(crate) enum V {
    Null,
    Bool(bool),
    Long(i64),
    Real(f64),
    Dec(i128),
    Str(String),
    Dt(i64),
    Ts(i64),
    Guid(String),
    Json(Json),
}

/// Reads a scalar whose KQL type is `ty`.
pub(crate) fn v_of(s: &ScalarValue, ty: KqlType) -> V {
    if s.is_null() {
        return V::Null;
    }
    match (ty, s) {
        (KqlType::Bool, ScalarValue::Boolean(Some(b))) => V::Bool(*b),
        (KqlType::Int | KqlType::Long, _) => super::udf::sv_i64(s).map_or(V::Null, V::Long),
        (KqlType::Real, ScalarValue::Float64(Some(f))) => V::Real(*f),
        (KqlType::Decimal, ScalarValue::Decimal128(Some(x), _, sc)) => V::Dec(rescale(*x, *sc)),
        (KqlType::Datetime, ScalarValue::TimestampNanosecond(Some(x), _)) => V::Dt(*x),
        (KqlType::Timespan, ScalarValue::DurationNanosecond(Some(x))) => V::Ts(*x),
        (KqlType::String, _) => sv_str(s).map_or(V::Null, |x| V::Str(x.to_string())),
        (KqlType::Guid, _) => sv_str(s).map_or(V::Null, |x| V::Guid(x.to_string())),
        (KqlType::Dynamic, _) => match sv_str(s).and_then(|x| serde_json::from_str::<Json>(x).ok()) {
            Some(Json::Null) | None => V::Null,
            Some(j) => V::Json(j),
        },
        _ => V::Null,
    }
}

fn rescale(x: i128, scale: i8) -> i128 {
    let d = i32::from(DECIMAL_SCALE) - i32::from(scale);
    if d >= 0 {
        10i128.checked_pow(d.unsigned_abs()).and_then(|p| x.checked_mul(p)).unwrap_or(0)
    } else {
        10i128.checked_pow(d.unsigned_abs()).map_or(0, |p| x / p)
    }
}

pub(crate) fn tag_type(s: &ScalarValue) -> Option<KqlType> {
    sv_str(s).and_then(KqlType::from_name)
}

// ---------- formatting ----------

/// .NET-like shortest round-trip formatting of a double (`1`, `1.5`, `1E+20`, `1E-05`).
pub(crate) fn format_real(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-5..1e15).contains(&a) {
        let s = format!("{f:E}");
        if let Some((m, e)) = s.split_once('E') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}E{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{f}")
}

pub(crate) fn format_decimal(x: i128) -> String {
    let neg = x < 0;
    let a = x.unsigned_abs();
    let one = DEC_ONE.unsigned_abs();
    let int = a / one;
    let frac = a % one;
    let mut s = if neg { format!("-{int}") } else { int.to_string() };
    if frac != 0 {
        let f = format!("{frac:010}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

pub(crate) fn dt_of_nanos(ns: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(ns)
}

/// Kusto's text form of a datetime: ISO 8601 UTC with 7 fractional digits.
pub(crate) fn format_datetime_iso(ns: i64) -> String {
    kustodian_parser::value_text::format_datetime_nanos(ns)
}

/// Kusto's (.NET "c") text form of a timespan: `[-][d.]hh:mm:ss[.fffffff]`.
pub(crate) fn format_timespan_c(ns: i64) -> String {
    kustodian_parser::value_text::format_timespan_nanos(ns)
}

pub(crate) fn v_to_string(v: &V) -> String {
    match v {
        V::Null => String::new(),
        V::Bool(b) => b.to_string(),
        V::Long(x) => x.to_string(),
        V::Real(f) => format_real(*f),
        V::Dec(x) => format_decimal(*x),
        V::Str(s) | V::Guid(s) => s.clone(),
        V::Dt(x) => format_datetime_iso(*x),
        V::Ts(x) => format_timespan_c(*x),
        V::Json(Json::String(s)) => s.clone(),
        V::Json(j) => j.to_string(),
    }
}

/// The JSON form of a value (what it becomes inside a dynamic).
pub(crate) fn v_to_json(v: &V) -> Json {
    match v {
        V::Null => Json::Null,
        V::Bool(b) => Json::Bool(*b),
        V::Long(x) => Json::from(*x),
        V::Real(f) => serde_json::Number::from_f64(*f).map_or_else(|| Json::String(format_real(*f)), Json::Number),
        V::Dec(x) => {
            let s = format_decimal(*x);
            s.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::String(s), Json::Number)
        }
        V::Str(s) | V::Guid(s) => Json::String(s.clone()),
        V::Dt(x) => Json::String(format_datetime_iso(*x)),
        V::Ts(x) => Json::String(format_timespan_c(*x)),
        V::Json(j) => j.clone(),
    }
}

pub(crate) fn json_text(j: &Json) -> Option<String> {
    if j.is_null() { None } else { Some(j.to_string()) }
}

// ---------- parsing ----------

pub(crate) fn parse_long(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok()
}

pub(crate) fn parse_real(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
        return None;
    }
    t.parse::<f64>().ok()
}

pub(crate) fn parse_decimal(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.contains(['e', 'E']) {
        return parse_real(t).and_then(real_to_dec);
    }
    let (ip, fp) = body.split_once('.').unwrap_or((body, ""));
    if (ip.is_empty() && fp.is_empty()) || !ip.bytes().all(|b| b.is_ascii_digit()) || !fp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = if ip.is_empty() { 0 } else { ip.parse::<i128>().ok()? };
    v = v.checked_mul(DEC_ONE)?;
    let scale = DECIMAL_SCALE as usize;
    let mut frac_digits: String = fp.chars().take(scale).collect();
    while frac_digits.len() < scale {
        frac_digits.push('0');
    }
    v = v.checked_add(frac_digits.parse::<i128>().ok()?)?;
    Some(if neg { -v } else { v })
}

pub(crate) fn real_to_dec(f: f64) -> Option<i128> {
    let x = (f * DEC_ONE as f64).round();
    if x.is_finite() && x.abs() < 1e37 { Some(x as i128) } else { None }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(t);
    // Dashes may sit anywhere (the toguid() page reads `0123456789ab-cdef-0123-456789abcdef`).
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

fn naive_to_nanos(n: NaiveDateTime) -> Option<i64> {
    n.and_utc().timestamp_nanos_opt()
}

/// Parses the datetime text forms Kusto accepts (ISO 8601 and RFC 822/2822 variants).
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    parse_datetime_utc(s).and_then(naive_to_nanos)
}

/// Whether `s` is a valid datetime that a nanosecond timestamp cannot hold: Kusto's range is
/// 0001-01-01 to 9999-12-31, ours [`MIN_DATETIME`] to [`MAX_DATETIME`]. Callers use it to say
/// so instead of calling the text invalid.
pub(crate) fn datetime_out_of_range(s: &str) -> bool {
    parse_datetime_utc(s).is_some_and(|n| naive_to_nanos(n).is_none())
}

/// The earliest datetime Kustodian holds (`i64::MIN` nanoseconds since 1970), as Kusto prints it.
pub(crate) const MIN_DATETIME: &str = "1677-09-21T00:12:43.1452242Z";

/// The latest datetime Kustodian holds (`i64::MAX` nanoseconds since 1970), as Kusto prints it.
pub(crate) const MAX_DATETIME: &str = "2262-04-11T23:47:16.8547758Z";

/// `year, month, day[, hour, minute[, second]]` (`datetime(2025, 6, 14)`), the parts as
/// `make_datetime` takes them; seconds may have a fraction.
fn comma_separated_datetime(t: &str) -> Option<NaiveDateTime> {
    let parts: Vec<&str> = t.split(',').map(str::trim).collect();
    if !matches!(parts.len(), 3 | 5 | 6) || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let int = |p: &str| -> Option<u32> { if p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) { p.parse().ok() } else { None } };
    let date = NaiveDate::from_ymd_opt(i32::try_from(int(parts[0])?).ok()?, int(parts[1])?, int(parts[2])?)?;
    let (h, m) = if parts.len() > 3 { (int(parts[3])?, int(parts[4])?) } else { (0, 0) };
    let (sec, nanos) = match parts.get(5) {
        Some(p) => {
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
            (int(whole)?, nanos)
        }
        None => (0, 0),
    };
    date.and_hms_nano_opt(h, m, sec, nanos)
}

/// The UTC date and time `s` names, in or out of the nanosecond range.
fn parse_datetime_utc(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    // ISO forms with a ` GMT`/` UTC` suffix (`2014-11-08 15:05 GMT`, the datetime page).
    if let Some(iso) = t.strip_suffix(" GMT").or_else(|| t.strip_suffix(" UTC"))
        && iso.as_bytes().get(4) == Some(&b'-')
        && let Some(n) = parse_datetime_utc(iso)
    {
        return Some(n);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.naive_utc());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Some(d.naive_utc());
        }
    }
    let u = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')).unwrap_or(t);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(u, f) {
            return Some(n);
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%m-%d-%Y", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(u, f) {
            return d.and_hms_opt(0, 0, 0);
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(t) {
        return Some(d.naive_utc());
    }
    if let Some(n) = comma_separated_datetime(t) {
        return Some(n);
    }
    // RFC 822, RFC 850 and the "sortable" forms, with or without a GMT/UTC suffix, as the
    // todatetime() page lists them (two-digit years are 19xx/20xx as .NET reads them).
    let g = t.strip_suffix(" GMT").or_else(|| t.strip_suffix(" UTC")).unwrap_or(t);
    // chrono wants two-digit days: `8 Nov 14` -> `08 Nov 14`.
    let g = g
        .split(' ')
        .map(|w| if w.len() == 1 && w.as_bytes()[0].is_ascii_digit() { format!("0{w}") } else { w.to_string() })
        .collect::<Vec<_>>()
        .join(" ");
    let g = g.as_str();
    let mut out_of_range = None;
    for f in [
        "%a, %d %b %Y %H:%M:%S",
        "%d %b %Y %H:%M:%S",
        "%a, %d %b %Y %H:%M",
        "%d %b %Y %H:%M",
        "%a, %d %b %y %H:%M:%S",
        "%a, %d %b %y %H:%M",
        "%d %b %y %H:%M:%S",
        "%d %b %y %H:%M",
        "%A, %d-%b-%y %H:%M:%S",
        "%A, %d-%b-%y %H:%M",
        "%d-%b-%y %H:%M:%S",
        "%d-%b-%y %H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        // A four-digit-year form can read `14` as the year 14, out of range: try the next.
        if let Ok(n) = NaiveDateTime::parse_from_str(g, f) {
            if naive_to_nanos(n).is_some() {
                return Some(n);
            }
            out_of_range.get_or_insert(n);
        }
    }
    out_of_range
}

/// Nanoseconds per KQL timespan unit suffix.
pub(crate) fn timespan_unit_nanos(unit: &str) -> Option<i64> {
    Some(match unit {
        "d" | "day" | "days" => 86_400_000_000_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
        "m" | "min" | "minute" | "minutes" => 60_000_000_000,
        "s" | "sec" | "second" | "seconds" => 1_000_000_000,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "microsecond" | "microseconds" => 1_000,
        "tick" | "ticks" => 100,
        "nanosecond" | "nanoseconds" => 1,
        _ => return None,
    })
}

/// Parses `[-][d.]hh:mm[:ss[.fffffff]]` or a KQL timespan literal body like `1.5h`, `30m`.
pub(crate) fn parse_timespan(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t),
    };
    let v = if body.contains(':') {
        let (days, rest) = match body.split_once('.') {
            Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<i64>().ok()?, r),
            _ => (0, body),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (h, m, sec) = match parts.as_slice() {
            [h, m] => (*h, *m, "0"),
            [h, m, s] => (*h, *m, *s),
            _ => return None,
        };
        let h: i64 = h.parse().ok()?;
        let m: i64 = m.parse().ok()?;
        let (si, sf) = sec.split_once('.').unwrap_or((sec, ""));
        let si: i64 = si.parse().ok()?;
        if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&si) || !sf.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut frac: String = sf.chars().take(9).collect();
        while frac.len() < 9 {
            frac.push('0');
        }
        let fr: i64 = frac.parse().ok()?;
        days.checked_mul(86_400_000_000_000)?
            .checked_add(h * 3_600_000_000_000 + m * 60_000_000_000 + si * 1_000_000_000 + fr)?
    } else {
        let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = body.split_at(split);
        let n: f64 = num.parse().ok()?;
        let unit_ns = timespan_unit_nanos(&unit.to_ascii_lowercase())?;
        f64_to_i64((n * unit_ns as f64).round())?
    };
    Some(if neg { -v } else { v })
}

/// Parses JSON as `todynamic`/`parse_json` do: invalid JSON becomes a JSON string.
pub(crate) fn parse_json_lenient(s: &str) -> Option<Json> {
    if s.trim().is_empty() {
        return None;
    }
    match serde_json::from_str::<Json>(s) {
        Ok(Json::Null) => None,
        Ok(j) => Some(j),
        Err(_) => Some(Json::String(s.to_string())),
    }
}

// ---------- conversion matrix ----------

fn v_to_long(v: &V) -> Option<i64> {
    match v {
        V::Bool(b) => Some(i64::from(*b)),
        V::Long(x) => Some(*x),
        V::Real(f) => f64_to_i64(*f),
        V::Dec(x) => i64::try_from(x / DEC_ONE).ok(),
        V::Str(s) => parse_long(s),
        V::Dt(x) => (x / 100).checked_add(TICKS_TO_UNIX_EPOCH),
        V::Ts(x) => Some(x / 100),
        V::Json(Json::Number(n)) => n.as_i64().or_else(|| n.as_f64().and_then(f64_to_i64)),
        V::Json(Json::String(s)) => parse_long(s),
        V::Json(Json::Bool(b)) => Some(i64::from(*b)),
        _ => None,
    }
}

fn v_to_real(v: &V) -> Option<f64> {
    match v {
        V::Bool(b) => Some(f64::from(u8::from(*b))),
        V::Long(x) => Some(*x as f64),
        V::Real(f) => Some(*f),
        V::Dec(x) => Some(*x as f64 / DEC_ONE as f64),
        V::Str(s) => parse_real(s),
        V::Dt(x) => Some((*x / 100) as f64 + TICKS_TO_UNIX_EPOCH as f64),
        V::Ts(x) => Some(*x as f64 / 100.0),
        V::Json(Json::Number(n)) => n.as_f64(),
        V::Json(Json::String(s)) => parse_real(s),
        V::Json(Json::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn v_to_dec(v: &V) -> Option<i128> {
    match v {
        V::Bool(b) => Some(i128::from(*b) * DEC_ONE),
        V::Long(x) => i128::from(*x).checked_mul(DEC_ONE),
        V::Real(f) => real_to_dec(*f),
        V::Dec(x) => Some(*x),
        V::Str(s) => parse_decimal(s),
        V::Json(Json::Number(n)) => parse_decimal(&n.to_string()),
        V::Json(Json::String(s)) => parse_decimal(s),
        _ => None,
    }
}

fn v_to_bool(v: &V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(*b),
        V::Long(x) => Some(*x != 0),
        V::Real(f) => Some(*f != 0.0),
        V::Dec(x) => Some(*x != 0),
        V::Str(s) => parse_bool(s),
        V::Json(Json::Bool(b)) => Some(*b),
        V::Json(Json::Number(n)) => n.as_f64().map(|f| f != 0.0),
        V::Json(Json::String(s)) => parse_bool(s),
        _ => None,
    }
}

fn v_to_dt(v: &V) -> Option<i64> {
    match v {
        V::Dt(x) => Some(*x),
        V::Str(s) | V::Json(Json::String(s)) => parse_datetime(s),
        _ => None,
    }
}

fn v_to_ts(v: &V) -> Option<i64> {
    match v {
        V::Ts(x) => Some(*x),
        V::Str(s) | V::Json(Json::String(s)) => parse_timespan(s),
        _ => None,
    }
}

/// Converts a value to a scalar of KQL type `to` (null on failure).
pub(crate) fn v_convert(v: &V, to: KqlType, parse_strings_as_json: bool) -> ScalarValue {
    if matches!(v, V::Null) {
        return match to {
            // Kusto strings are never null.
            KqlType::String => ScalarValue::Utf8(Some(String::new())),
            other => ScalarValue::try_from(&other.arrow_type()).unwrap_or(ScalarValue::Null),
        };
    }
    match to {
        KqlType::Bool => ScalarValue::Boolean(v_to_bool(v)),
        KqlType::Long => ScalarValue::Int64(v_to_long(v)),
        KqlType::Int => ScalarValue::Int32(v_to_long(v).and_then(|x| i32::try_from(x).ok())),
        KqlType::Real => ScalarValue::Float64(v_to_real(v)),
        KqlType::Decimal => ScalarValue::Decimal128(v_to_dec(v), crate::types::DECIMAL_PRECISION, DECIMAL_SCALE),
        KqlType::String => ScalarValue::Utf8(Some(v_to_string(v))),
        KqlType::Datetime => ScalarValue::TimestampNanosecond(v_to_dt(v), None),
        KqlType::Timespan => ScalarValue::DurationNanosecond(v_to_ts(v)),
        KqlType::Guid => ScalarValue::Utf8(match v {
            V::Guid(s) => Some(s.clone()),
            V::Str(s) | V::Json(Json::String(s)) => parse_guid(s),
            _ => None,
        }),
        KqlType::Dynamic => ScalarValue::Utf8(match v {
            V::Str(s) if parse_strings_as_json => parse_json_lenient(s).and_then(|j| json_text(&j)),
            other => json_text(&v_to_json(other)),
        }),
    }
}

/// Row function: `[value, from_type, to_type, parse_json_flag]`.
fn convert_row(args: &[ScalarValue], _st: &mut RowState) -> ScalarValue {
    let (Some(v), Some(from), Some(to)) =
        (args.first(), args.get(1).and_then(tag_type), args.get(2).and_then(tag_type))
    else {
        return ScalarValue::Null;
    };
    let parse = args.get(3).and_then(super::udf::sv_bool).unwrap_or(false);
    v_convert(&v_of(v, from), to, parse)
}

fn convert_call(e: TypedExpr, to: KqlType, parse_json: bool) -> TypedExpr {
    let name = if parse_json { "parse_json".to_string() } else { format!("to_{}", to.name()) };
    let expr = row_call(
        &name,
        to.arrow_type(),
        convert_row,
        vec![e.expr, lit(e.ty.name()), lit(to.name()), lit(parse_json)],
    );
    TypedExpr::new(expr, to)
}

/// `todynamic`/`parse_json`: strings are parsed as JSON; other values are wrapped.
pub fn lower_parse_json(e: TypedExpr) -> TypedExpr {
    match e.ty {
        KqlType::Dynamic => e,
        _ => convert_call(e, KqlType::Dynamic, true),
    }
}

fn cast(e: Expr, dt: DataType) -> Expr {
    Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(e), dt))
}

fn try_cast(e: Expr, dt: DataType) -> Expr {
    Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(e), dt))
}

/// Cast to a KQL type with Kusto semantics (null on failure).
pub fn lower_cast(e: TypedExpr, to: KqlType) -> Result<TypedExpr> {
    use KqlType as K;
    let from = e.ty;
    if from == to {
        return Ok(e);
    }
    let expr = match (from, to) {
        (K::Int, K::Long | K::Real) | (K::Long, K::Real) | (K::Bool, K::Int | K::Long | K::Real) => {
            cast(e.expr, to.arrow_type())
        }
        (K::Long, K::Int) | (K::Int | K::Long | K::Real | K::Decimal, K::Decimal) => try_cast(e.expr, to.arrow_type()),
        (K::Guid, K::String) => e.expr,
        (K::Int | K::Long | K::Real | K::Decimal, K::Datetime | K::Timespan)
        | (K::Datetime | K::Timespan | K::Bool | K::Guid, K::Datetime | K::Timespan | K::Guid | K::Decimal) => {
            return Err(PlanError::unsupported(format!("conversion from {from} to {to}")));
        }
        _ => return Ok(convert_call(e, to, false)),
    };
    Ok(TypedExpr::new(expr, to))
}

/// The type a conversion function (`tolong`, `toreal`/`todouble`, `todynamic`/`parse_json`...)
/// converts to.
fn conversion_target(name: &str) -> Option<KqlType> {
    Some(match name {
        "tolong" => KqlType::Long,
        "toint" => KqlType::Int,
        "toreal" | "todouble" => KqlType::Real,
        "tostring" => KqlType::String,
        "tobool" | "toboolean" => KqlType::Bool,
        "todatetime" | "todate" => KqlType::Datetime,
        "totimespan" | "totime" => KqlType::Timespan,
        "todecimal" => KqlType::Decimal,
        "toguid" => KqlType::Guid,
        "todynamic" | "toobject" | "parse_json" | "parsejson" => KqlType::Dynamic,
        _ => return None,
    })
}

/// The conversion functions (one argument): `tolong(x)`, `tostring(x)`, `parse_json(x)`...
pub(super) fn lower_to(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let to = conversion_target(name).ok_or_else(|| PlanError::Internal(format!("'{name}' converts to no type")))?;
    let a = args.remove(0);
    if to == KqlType::Dynamic {
        return Ok(lower_parse_json(a));
    }
    if to == KqlType::String && a.ty != KqlType::String {
        // tostring never yields null
        return Ok(convert_call(a, KqlType::String, false));
    }
    lower_cast(a, to)
}

/// A row-function call returning a string.
fn string_call(name: &str, f: super::udf::RowFn, args: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::String.arrow_type(), f, args), KqlType::String)
}

/// A numeric (or dynamic) argument as a long.
fn long_arg(a: TypedExpr, fname: &str) -> Result<Expr> {
    if !(a.ty.is_numeric() || a.ty == KqlType::Dynamic) {
        return Err(PlanError::semantic(format!("function '{fname}' expects a numeric argument, got {}", a.ty)));
    }
    Ok(lower_cast(a, KqlType::Long)?.expr)
}

fn gettype_dyn_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let t = match args.first().map(|v| v_of(v, KqlType::Dynamic)) {
        Some(super::conversion::V::Json(j)) => match j {
            Json::Array(_) => "array",
            Json::Object(_) => "dictionary",
            Json::String(_) => "string",
            Json::Bool(_) => "bool",
            Json::Number(n) if n.is_f64() => "real",
            // A dynamic integer that fits in 32 bits is an int (`gettype(parse_json('1'))`).
            Json::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => "int",
            Json::Number(_) => "long",
            Json::Null => "null",
        },
        _ => "null",
    };
    s_str(Some(t.to_string()))
}

fn tohex_int_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = args.first().and_then(sv_i64) else { return s_str(None) };
    let w = args.get(1).and_then(sv_i64).unwrap_or(0).clamp(0, 64) as usize;
    s_str(Some(format!("{:0w$x}", x as i32 as u32, w = w)))
}

fn tohex_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(x) = args.first().and_then(sv_i64) else { return s_str(None) };
    let w = args.get(1).and_then(sv_i64).unwrap_or(0).clamp(0, 64) as usize;
    s_str(Some(format!("{:0w$x}", x as u64, w = w)))
}

/// `gettype(x)`: a constant for a value of a fixed type, computed per row for a dynamic one.
pub(super) fn lower_gettype(_: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    if a.ty == KqlType::Dynamic {
        return Ok(string_call("gettype", gettype_dyn_row, vec![a.expr]));
    }
    let tn = match a.ty {
        KqlType::Timespan => "timespan",
        t => t.name(),
    };
    Ok(TypedExpr::new(lit(tn), KqlType::String))
}

pub(super) fn lower_tohex(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    // An int is printed as 32 bits (two's complement), a long as 64.
    let int = args.first().is_some_and(|a| a.ty == KqlType::Int);
    let mut a = Vec::new();
    for x in args {
        a.push(long_arg(x, name)?);
    }
    Ok(if int { string_call("tohex_int", tohex_int_row, a) } else { string_call("tohex", tohex_row, a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_real(1.0), "1");
        assert_eq!(format_real(1.5), "1.5");
        assert_eq!(format_real(1e20), "1E+20");
        assert_eq!(format_real(1e-7), "1E-07");
        assert_eq!(format_real(-0.25), "-0.25");
        assert_eq!(format_timespan_c(3_600_000_000_000), "01:00:00");
        assert_eq!(format_timespan_c(-(86_400_000_000_000 + 1_500_000_000)), "-1.00:00:01.5000000");
        assert_eq!(format_datetime_iso(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(format_datetime_iso(1_500_000_000), "1970-01-01T00:00:01.5000000Z");
        assert_eq!(format_decimal(15 * DEC_ONE / 10), "1.5");
        assert_eq!(format_decimal(-2 * DEC_ONE), "-2");
    }

    #[test]
    fn parses() {
        assert_eq!(parse_timespan("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_timespan("1.02:03:04.5"), Some(93_784_500_000_000));
        assert_eq!(parse_timespan("00:30:00"), Some(1_800_000_000_000));
        assert_eq!(parse_timespan("-1.5s"), Some(-1_500_000_000));
        assert_eq!(parse_timespan("abc"), None);
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_datetime("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_datetime("1970-01-01 00:00:00.5"), Some(500_000_000));
        assert_eq!(parse_datetime("Thu, 01 Jan 1970 00:00:10 GMT"), Some(10_000_000_000));
        assert_eq!(parse_datetime("nope"), None);
        assert_eq!(parse_decimal("1.25"), Some(125 * DEC_ONE / 100));
        assert_eq!(parse_decimal("x"), None);
        assert_eq!(parse_long(" 12 "), Some(12));
        assert_eq!(parse_long("1.9"), None);
        assert_eq!(parse_long("abc"), None);
        assert_eq!(parse_real("1e3"), Some(1000.0));
        assert_eq!(parse_real("1,5"), None);
        assert_eq!(parse_guid("{A1B2C3D4-0000-0000-0000-000000000000}").as_deref(), Some("a1b2c3d4-0000-0000-0000-000000000000"));
        assert_eq!(parse_guid("xyz"), None);
    }

    #[test]
    fn datetime_range() {
        // The bounds the error message names are themselves datetimes we hold.
        assert!(parse_datetime(MIN_DATETIME).is_some());
        assert!(parse_datetime(MAX_DATETIME).is_some());
        assert_eq!(parse_datetime(MAX_DATETIME).map(format_datetime_iso).as_deref(), Some(MAX_DATETIME));
        assert_eq!(parse_datetime(MIN_DATETIME).map(format_datetime_iso).as_deref(), Some(MIN_DATETIME));
        for s in ["1677-09-21T00:12:43.1452241Z", "2262-04-11T23:47:16.8547759Z", "0001-01-01", "9999-12-31 23:59:59.9999999"] {
            assert_eq!(parse_datetime(s), None, "{s}");
            assert!(datetime_out_of_range(s), "{s}");
        }
        for s in ["2024-01-01", "nope", "2024-13-01", ""] {
            assert!(!datetime_out_of_range(s), "{s}");
        }
        // A two-digit year still reads as 20xx, not as the year 14.
        assert!(parse_datetime("Sat, 8 Nov 14 15:05:02 GMT").is_some());
    }
}
