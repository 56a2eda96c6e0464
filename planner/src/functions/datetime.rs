//! KQL datetime and timespan functions. Datetimes are UTC nanoseconds since the Unix epoch;
//! results outside the representable range are null.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Timelike, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use kustodian_parser::ast::BinaryOp;

use super::conversion::{dt_of_nanos, lower_cast};
use super::operators::lower_binary;
use super::udf::{RowState, f64_to_i64, row_call, s_dur, s_i32, s_i64, s_str, s_ts, sv_f64, sv_i64, sv_str_or_empty};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

const NS_DAY: i64 = 86_400_000_000_000;

fn naive_nanos(d: NaiveDateTime) -> Option<i64> {
    d.and_utc().timestamp_nanos_opt()
}

fn month_start(y: i32, m: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)
}

fn add_months(d: NaiveDateTime, k: i64) -> Option<NaiveDateTime> {
    let k32 = u32::try_from(k.unsigned_abs()).ok()?;
    if k >= 0 { d.checked_add_months(Months::new(k32)) } else { d.checked_sub_months(Months::new(k32)) }
}

/// `[dt, offset, unit]` unit: 0 day, 1 week, 2 month, 3 year; `end` variants subtract a tick.
fn start_of(ns: i64, unit: i64, offset: i64) -> Option<i64> {
    let d = dt_of_nanos(ns).naive_utc();
    let start = match unit {
        0 => d.date().and_hms_opt(0, 0, 0)?.checked_add_signed(Duration::try_days(offset)?)?,
        1 => {
            let back = i64::from(d.weekday().num_days_from_sunday());
            d.date().and_hms_opt(0, 0, 0)?.checked_add_signed(Duration::try_days(offset.checked_mul(7)? - back)?)?
        }
        2 => add_months(month_start(d.year(), d.month())?, offset)?,
        _ => {
            let y = i32::try_from(i64::from(d.year()).checked_add(offset)?).ok()?;
            month_start(y, 1)?
        }
    };
    naive_nanos(start)
}

fn start_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(ns), Some(unit)) = (args.first().and_then(sv_i64), args.get(1).and_then(sv_i64)) else {
        return s_ts(None);
    };
    let end = args.get(2).and_then(sv_i64).unwrap_or(0) == 1;
    let offset = match args.get(3) {
        Some(o) => match sv_i64(o) {
            Some(o) => o,
            None => return s_ts(None),
        },
        None => 0,
    };
    let r = if end {
        offset.checked_add(1).and_then(|o| start_of(ns, unit, o)).and_then(|x| x.checked_sub(100))
    } else {
        start_of(ns, unit, offset)
    };
    s_ts(r)
}

fn part_of(ns: i64, part: &str) -> Option<i64> {
    let d = dt_of_nanos(ns);
    Some(match part.to_ascii_lowercase().as_str() {
        "year" => i64::from(d.year()),
        "quarter" => i64::from((d.month() - 1) / 3 + 1),
        "month" => i64::from(d.month()),
        "week_of_year" | "weekofyear" | "week" => i64::from(d.iso_week().week()),
        "day" => i64::from(d.day()),
        "dayofyear" => i64::from(d.ordinal()),
        "hour" => i64::from(d.hour()),
        "minute" => i64::from(d.minute()),
        "second" => i64::from(d.second()),
        "millisecond" => i64::from(d.nanosecond() / 1_000_000),
        "microsecond" => i64::from(d.nanosecond() / 1_000),
        "nanosecond" => i64::from(d.nanosecond()),
        _ => return None,
    })
}

fn part_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let part = args.first().map_or("", sv_str_or_empty);
    let r = args.get(1).and_then(sv_i64).and_then(|ns| part_of(ns, part)).and_then(|x| i32::try_from(x).ok());
    s_i32(r)
}

fn unit_nanos(part: &str) -> Option<i64> {
    Some(match part {
        "week" => 7 * NS_DAY,
        "day" => NS_DAY,
        "hour" => 3_600_000_000_000,
        "minute" => 60_000_000_000,
        "second" => 1_000_000_000,
        "millisecond" => 1_000_000,
        "microsecond" => 1_000,
        "nanosecond" => 1,
        _ => return None,
    })
}

fn add_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let part = args.first().map_or("", sv_str_or_empty).to_ascii_lowercase();
    let (Some(k), Some(ns)) = (args.get(1).and_then(sv_i64), args.get(2).and_then(sv_i64)) else { return s_ts(None) };
    let r = match part.as_str() {
        "year" | "quarter" | "month" => {
            let m = match part.as_str() {
                "year" => k.checked_mul(12),
                "quarter" => k.checked_mul(3),
                _ => Some(k),
            };
            m.and_then(|m| add_months(dt_of_nanos(ns).naive_utc(), m)).and_then(naive_nanos)
        }
        p => unit_nanos(p).and_then(|u| k.checked_mul(u)).and_then(|d| ns.checked_add(d)),
    };
    s_ts(r)
}

fn diff_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let part = args.first().map_or("", sv_str_or_empty).to_ascii_lowercase();
    let (Some(a), Some(b)) = (args.get(1).and_then(sv_i64), args.get(2).and_then(sv_i64)) else { return s_i64(None) };
    let (da, db) = (dt_of_nanos(a), dt_of_nanos(b));
    let months = |d: &DateTime<Utc>| i64::from(d.year()) * 12 + i64::from(d.month0());
    let r = match part.as_str() {
        "year" => Some(i64::from(da.year()) - i64::from(db.year())),
        "quarter" => Some((i64::from(da.year()) * 4 + i64::from(da.month0() / 3)) - (i64::from(db.year()) * 4 + i64::from(db.month0() / 3))),
        "month" => Some(months(&da) - months(&db)),
        "week" => start_of(a, 1, 0).zip(start_of(b, 1, 0)).map(|(x, y)| (x - y) / (7 * NS_DAY)),
        p => unit_nanos(p).map(|u| {
            let fa = i128::from(a).div_euclid(i128::from(u));
            let fb = i128::from(b).div_euclid(i128::from(u));
            (fa - fb) as i64
        }),
    };
    s_i64(r)
}

fn dayofweek_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_dur(args.first().and_then(sv_i64).map(|ns| i64::from(dt_of_nanos(ns).weekday().num_days_from_sunday()) * NS_DAY))
}

fn unixtime_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(unit) = args.get(1).and_then(sv_i64) else { return s_ts(None) };
    let r = match args.first() {
        Some(ScalarValue::Float64(Some(x))) => f64_to_i64((x * unit as f64).round()),
        Some(v) => sv_i64(v).and_then(|x| x.checked_mul(unit)),
        None => None,
    };
    s_ts(r)
}

fn make_datetime_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let get = |i: usize| -> Option<i64> { args.get(i).map_or(Some(0), sv_i64) };
    let r = (|| {
        let y = i32::try_from(args.first().and_then(sv_i64)?).ok()?;
        let mo = u32::try_from(args.get(1).and_then(sv_i64)?).ok()?;
        let d = u32::try_from(args.get(2).and_then(sv_i64)?).ok()?;
        let h = u32::try_from(get(3)?).ok()?;
        let mi = u32::try_from(get(4)?).ok()?;
        let s = args.get(5).map_or(Some(0.0), sv_f64)?;
        if !(0.0..60.0).contains(&s) {
            return None;
        }
        let base = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_opt(h, mi, 0)?;
        naive_nanos(base)?.checked_add(f64_to_i64((s * 1e9).round())?)
    })();
    s_ts(r)
}

fn make_timespan_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let r = (|| {
        let vals: Vec<f64> = args.iter().map(sv_f64).collect::<Option<Vec<_>>>()?;
        let (d, h, m, s) = match vals.as_slice() {
            [h, m] => (0.0, *h, *m, 0.0),
            [h, m, s] => (0.0, *h, *m, *s),
            [d, h, m, s] => (*d, *h, *m, *s),
            _ => return None,
        };
        f64_to_i64(((d * 86_400.0 + h * 3_600.0 + m * 60.0 + s) * 1e9).round())
    })();
    s_dur(r)
}

/// Splits a Kusto format string into runs of the same character.
fn runs(fmt: &str) -> Vec<(char, usize)> {
    let mut out: Vec<(char, usize)> = Vec::new();
    for c in fmt.chars() {
        match out.last_mut() {
            Some((p, n)) if *p == c => *n += 1,
            _ => out.push((c, 1)),
        }
    }
    out
}

fn frac(sub_ns: u32, n: usize, trim: bool) -> String {
    let n = n.min(9);
    let s = format!("{sub_ns:09}");
    let mut t = s.get(..n).unwrap_or("").to_string();
    if trim {
        while t.ends_with('0') {
            t.pop();
        }
    }
    t
}

pub(crate) fn format_datetime_kusto(ns: i64, fmt: &str) -> Option<String> {
    let d = dt_of_nanos(ns);
    let mut out = String::new();
    for (c, n) in runs(fmt) {
        let piece = match (c, n) {
            ('y', 1) => (d.year() % 100).to_string(),
            ('y', 2) => format!("{:02}", d.year() % 100),
            ('y', 4) => format!("{:04}", d.year()),
            ('M', 1) => d.month().to_string(),
            ('M', 2) => format!("{:02}", d.month()),
            ('d', 1) => d.day().to_string(),
            ('d', 2) => format!("{:02}", d.day()),
            ('H', 1) => d.hour().to_string(),
            ('H', 2) => format!("{:02}", d.hour()),
            ('h', 1) => (if d.hour12().1 == 0 { 12 } else { d.hour12().1 }).to_string(),
            ('h', 2) => format!("{:02}", d.hour12().1),
            ('m', 1) => d.minute().to_string(),
            ('m', 2) => format!("{:02}", d.minute()),
            ('s', 1) => d.second().to_string(),
            ('s', 2) => format!("{:02}", d.second()),
            ('f', k) if k <= 9 => frac(d.nanosecond(), k, false),
            ('F', k) if k <= 9 => frac(d.nanosecond(), k, true),
            ('t', 2) => (if d.hour() < 12 { "AM" } else { "PM" }).to_string(),
            (c, k) if !c.is_ascii_alphabetic() => c.to_string().repeat(k),
            _ => return None,
        };
        out.push_str(&piece);
    }
    Some(out)
}

pub(crate) fn format_timespan_kusto(ns: i64, fmt: &str) -> Option<String> {
    let a = ns.unsigned_abs();
    let secs = a / 1_000_000_000;
    let sub = u32::try_from(a % 1_000_000_000).ok()?;
    let (days, h, m, s) = (secs / 86_400, (secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if ns < 0 {
        out.push('-');
    }
    for (c, n) in runs(fmt) {
        let piece = match (c, n) {
            ('d', k) => format!("{days:0k$}"),
            ('h' | 'H', 1) => h.to_string(),
            ('h' | 'H', 2) => format!("{h:02}"),
            ('m', 1) => m.to_string(),
            ('m', 2) => format!("{m:02}"),
            ('s', 1) => s.to_string(),
            ('s', 2) => format!("{s:02}"),
            ('f', k) if k <= 9 => frac(sub, k, false),
            ('F', k) if k <= 9 => frac(sub, k, true),
            (c, k) if !c.is_ascii_alphabetic() => c.to_string().repeat(k),
            _ => return None,
        };
        out.push_str(&piece);
    }
    Some(out)
}

fn format_dt_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let fmt = args.get(1).map_or("", sv_str_or_empty);
    s_str(Some(args.first().and_then(sv_i64).and_then(|ns| format_datetime_kusto(ns, fmt)).unwrap_or_default()))
}
fn format_ts_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let fmt = args.get(1).map_or("", sv_str_or_empty);
    s_str(Some(args.first().and_then(sv_i64).and_then(|ns| format_timespan_kusto(ns, fmt)).unwrap_or_default()))
}

fn expect(a: TypedExpr, ty: KqlType, f: &str) -> Result<Expr> {
    if a.ty == ty {
        return Ok(a.expr);
    }
    if a.ty == KqlType::Dynamic || (a.ty == KqlType::String && ty == KqlType::Datetime) {
        return Ok(lower_cast(a, ty)?.expr);
    }
    if ty.is_numeric() && a.ty.is_numeric() {
        return Ok(lower_cast(a, ty)?.expr);
    }
    Err(PlanError::semantic(format!("function '{f}' expects a {ty} argument, got {}", a.ty)))
}

fn part_literal(a: &TypedExpr, f: &str, allowed: &[&str]) -> Result<()> {
    if let Expr::Literal(v, _) = &a.expr {
        let p = super::udf::sv_str(v).unwrap_or("").to_ascii_lowercase();
        if !allowed.contains(&p.as_str()) {
            return Err(PlanError::semantic(format!("function '{f}': unknown part '{p}'")));
        }
    }
    Ok(())
}

const ADD_PARTS: &[&str] =
    &["year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond", "microsecond", "nanosecond"];
const PART_PARTS: &[&str] = &[
    "year", "quarter", "month", "week_of_year", "weekofyear", "week", "day", "dayofyear", "hour", "minute", "second",
    "millisecond", "microsecond", "nanosecond",
];

fn ts(name: &str, f: super::udf::RowFn, a: Vec<Expr>) -> TypedExpr {
    TypedExpr::new(row_call(name, KqlType::Datetime.arrow_type(), f, a), KqlType::Datetime)
}

fn now(ctx: &FunctionContext) -> TypedExpr {
    TypedExpr::new(lit(ScalarValue::TimestampNanosecond(Some(ctx.now()), None)), KqlType::Datetime)
}

/// `now([offset])`: the request's instant (one for the whole request).
pub(super) fn lower_now(_: &str, mut args: Vec<TypedExpr>, ctx: &FunctionContext) -> Result<TypedExpr> {
    match args.pop() {
        None => Ok(now(ctx)),
        Some(off) => lower_binary(BinaryOp::Add, now(ctx), off),
    }
}

pub(super) fn lower_ago(_: &str, mut args: Vec<TypedExpr>, ctx: &FunctionContext) -> Result<TypedExpr> {
    let a = args.remove(0);
    if a.ty != KqlType::Timespan {
        return Err(PlanError::semantic(format!("function 'ago' expects a timespan argument, got {}", a.ty)));
    }
    lower_binary(BinaryOp::Sub, now(ctx), a)
}

/// `startofday`...`startofyear` and `endofday`...`endofyear`, with an optional offset.
pub(super) fn lower_start_end_of(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let unit: i64 = if name.ends_with("day") {
        0
    } else if name.ends_with("week") {
        1
    } else if name.ends_with("month") {
        2
    } else {
        3
    };
    let end: i64 = i64::from(name.starts_with("end"));
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    let mut a = vec![d, lit(unit), lit(end)];
    if let Some(o) = args.pop() {
        a.push(expect(o, KqlType::Long, name)?);
    }
    Ok(ts("start_of", start_row, a))
}

/// `datetime_part(part, datetime)` (alias `datepart`).
pub(super) fn lower_datetime_part(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    part_literal(&args[0], name, PART_PARTS)?;
    let p = lower_cast(args.remove(0), KqlType::String)?.expr;
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    Ok(TypedExpr::new(row_call("datetime_part", KqlType::Int.arrow_type(), part_row, vec![p, d]), KqlType::Int))
}

/// `getyear`, `getmonth`/`monthofyear`, `dayofmonth`, `dayofyear`, `hourofday`,
/// `weekofyear`/`week_of_year`: one part of a datetime.
pub(super) fn lower_part_of(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let part = match name {
        "getyear" => "year",
        "getmonth" | "monthofyear" => "month",
        "dayofmonth" => "day",
        "dayofyear" => "dayofyear",
        "hourofday" => "hour",
        _ => "week_of_year",
    };
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    Ok(TypedExpr::new(row_call("datetime_part", KqlType::Int.arrow_type(), part_row, vec![lit(part), d]), KqlType::Int))
}

pub(super) fn lower_dayofweek(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    Ok(TypedExpr::new(row_call("dayofweek", KqlType::Timespan.arrow_type(), dayofweek_row, vec![d]), KqlType::Timespan))
}

pub(super) fn lower_datetime_add(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    part_literal(&args[0], name, ADD_PARTS)?;
    let p = lower_cast(args.remove(0), KqlType::String)?.expr;
    let k = expect(args.remove(0), KqlType::Long, name)?;
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    Ok(ts("datetime_add", add_row, vec![p, k, d]))
}

pub(super) fn lower_datetime_diff(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    part_literal(&args[0], name, ADD_PARTS)?;
    let p = lower_cast(args.remove(0), KqlType::String)?.expr;
    let a = expect(args.remove(0), KqlType::Datetime, name)?;
    let b = expect(args.remove(0), KqlType::Datetime, name)?;
    Ok(TypedExpr::new(row_call("datetime_diff", KqlType::Long.arrow_type(), diff_row, vec![p, a, b]), KqlType::Long))
}

/// `unixtime_{seconds,milliseconds,microseconds,nanoseconds}_todatetime`.
pub(super) fn lower_unixtime(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    use KqlType::*;
    let unit: i64 = match name {
        "unixtime_seconds_todatetime" => 1_000_000_000,
        "unixtime_milliseconds_todatetime" => 1_000_000,
        "unixtime_microseconds_todatetime" => 1_000,
        _ => 1,
    };
    let a = args.remove(0);
    let a = match a.ty {
        Int | Decimal => lower_cast(a, Long)?,
        Dynamic => lower_cast(a, Real)?,
        Long | Real => a,
        t => return Err(PlanError::semantic(format!("function '{name}' expects a numeric argument, got {t}"))),
    };
    Ok(ts("unixtime", unixtime_row, vec![a.expr, lit(unit)]))
}

pub(super) fn lower_make_datetime(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut a = Vec::new();
    for (i, x) in args.into_iter().enumerate() {
        a.push(expect(x, if i == 5 { KqlType::Real } else { KqlType::Long }, name)?);
    }
    Ok(ts("make_datetime", make_datetime_row, a))
}

pub(super) fn lower_make_timespan(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let a = args.into_iter().map(|x| expect(x, KqlType::Real, name)).collect::<Result<Vec<_>>>()?;
    Ok(TypedExpr::new(row_call("make_timespan", KqlType::Timespan.arrow_type(), make_timespan_row, a), KqlType::Timespan))
}

pub(super) fn lower_format_datetime(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    let f = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(TypedExpr::new(row_call("format_datetime", KqlType::String.arrow_type(), format_dt_row, vec![d, f]), KqlType::String))
}

pub(super) fn lower_format_timespan(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = expect(args.remove(0), KqlType::Timespan, name)?;
    let f = lower_cast(args.remove(0), KqlType::String)?.expr;
    Ok(TypedExpr::new(row_call("format_timespan", KqlType::String.arrow_type(), format_ts_row, vec![d, f]), KqlType::String))
}

// ---------- time zones ----------

/// A time zone by its IANA name (`US/Pacific`, `Europe/Paris`, `UTC`), as Kusto's `timezone`
/// arguments name them; case-insensitive.
fn zone(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    name.parse::<chrono_tz::Tz>().ok().or_else(|| chrono_tz::TZ_VARIANTS.iter().copied().find(|z| z.name().eq_ignore_ascii_case(name)))
}

fn utc_to_local_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let (Some(ns), Some(tz)) = (args.first().and_then(sv_i64), args.get(1).map(sv_str_or_empty).and_then(zone)) else { return s_ts(None) };
    let utc = DateTime::<Utc>::from_timestamp_nanos(ns);
    s_ts(naive_nanos(utc.with_timezone(&tz).naive_local()))
}

fn local_to_utc_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    use chrono::TimeZone;
    let (Some(ns), Some(tz)) = (args.first().and_then(sv_i64), args.get(1).map(sv_str_or_empty).and_then(zone)) else { return s_ts(None) };
    let local = DateTime::<Utc>::from_timestamp_nanos(ns).naive_utc();
    // A local time the clocks skip (spring forward) is read in the offset after the change, as
    // the reference documents (Brussels, 2022-03-27 02:00 local is 00:00 UTC); one they repeat
    // (fall back), as the earlier of the two instants.
    use chrono::Offset;
    let mapped = match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::None => tz.from_local_datetime(&(local - Duration::hours(1))).earliest().map(|before| {
            let guess = (local - before.offset().fix()).and_utc();
            let after = tz.offset_from_utc_datetime(&guess.naive_utc()).fix();
            (local - after).and_utc()
        }),
    };
    s_ts(mapped.and_then(|t| t.timestamp_nanos_opt()))
}

/// `datetime_utc_to_local(from, timezone)` and `datetime_local_to_utc(from, timezone)`; an
/// unknown time zone gives null.
pub(super) fn lower_time_zone(name: &str, mut args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let d = expect(args.remove(0), KqlType::Datetime, name)?;
    let z = lower_cast(args.remove(0), KqlType::String)?.expr;
    let f: super::udf::RowFn = if name == "datetime_utc_to_local" { utc_to_local_row } else { local_to_utc_row };
    Ok(ts(name, f, vec![d, z]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_508_108_400_000_000_000; // 2017-10-15T23:00:00Z (a Sunday)

    #[test]
    fn calendar() {
        assert_eq!(start_of(T, 0, 0), Some(1_508_025_600_000_000_000));
        assert_eq!(start_of(T, 1, 0), Some(1_508_025_600_000_000_000));
        assert_eq!(start_of(T, 2, 0).map(|x| format_datetime_kusto(x, "yyyy-MM-dd")), Some(Some("2017-10-01".into())));
        assert_eq!(start_of(T, 3, 1).map(|x| format_datetime_kusto(x, "yyyy-MM-dd")), Some(Some("2018-01-01".into())));
        assert_eq!(part_of(T, "week_of_year"), Some(41));
        assert_eq!(part_of(T, "dayofyear"), Some(288));
        assert_eq!(format_datetime_kusto(T + 123_000_000, "yy-M-d HH:mm:ss.fff tt").as_deref(), Some("17-10-15 23:00:00.123 PM"));
        assert_eq!(format_datetime_kusto(T, "yyyy q"), None);
        assert_eq!(format_timespan_kusto(93_784_500_000_000, "d.hh:mm:ss.ff").as_deref(), Some("1.02:03:04.50"));
    }
}
