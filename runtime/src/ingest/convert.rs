//! Text-to-value conversions with Kusto ingestion semantics: a value that does not convert is
//! `None` (stored as null), never an error.

use chrono::{DateTime, NaiveDate};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// `true`/`false`/`1`/`0`, case-insensitive, surrounding whitespace ignored.
pub fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// A 64-bit integer: decimal (optionally signed), `0x` hexadecimal, or a real number with no
/// fractional part (`1.0`, `1e3`).
pub fn parse_long(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = i64::from_str_radix(hex, 16).ok()?;
        return if neg { v.checked_neg() } else { Some(v) };
    }
    // Only numeric spellings (not "inf"/"nan") reach the float fallback.
    if !s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    let f = s.parse::<f64>().ok()?;
    if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// A 32-bit integer; out-of-range values are `None`.
pub fn parse_int(s: &str) -> Option<i32> {
    parse_long(s).and_then(|v| i32::try_from(v).ok())
}

/// A 64-bit float, including `NaN`, `inf`, `-inf` (any case, also `Infinity`).
pub fn parse_real(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// A decimal as an `i128` scaled by `10^scale`; rounds half away from zero beyond `scale`
/// fractional digits; `None` if it does not fit `precision` digits.
pub fn parse_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut neg = false;
    if let Some(&c) = bytes.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        i = 1;
    }
    let mut digits: Vec<u8> = Vec::with_capacity(40);
    let mut frac_digits: i64 = 0;
    let mut seen_dot = false;
    let mut any_digit = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            any_digit = true;
            if !(digits.is_empty() && c == b'0') {
                digits.push(c - b'0');
            }
            if seen_dot {
                frac_digits += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any_digit {
        return None;
    }
    let mut exp: i64 = 0;
    if i < bytes.len() {
        if bytes[i] != b'e' && bytes[i] != b'E' {
            return None;
        }
        exp = s.get(i + 1..)?.parse::<i64>().ok()?;
        if exp.abs() > 1000 {
            return None;
        }
    }
    // value = digits * 10^(exp - frac_digits); want digits * 10^(exp - frac_digits + scale).
    let shift = exp - frac_digits + i64::from(scale);
    let mut value: i128 = 0;
    if shift >= 0 {
        for &d in &digits {
            value = value.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        for _ in 0..shift {
            value = value.checked_mul(10)?;
        }
    } else {
        let drop = usize::try_from(-shift).ok()?;
        let keep = digits.len().saturating_sub(drop);
        for &d in &digits[..keep] {
            value = value.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        let first_dropped = if drop <= digits.len() { digits.get(keep).copied().unwrap_or(0) } else { 0 };
        if first_dropped >= 5 {
            value = value.checked_add(1)?;
        }
    }
    let limit = 10i128.checked_pow(u32::from(precision))?;
    if value >= limit {
        return None;
    }
    Some(if neg { -value } else { value })
}

/// A datetime as nanoseconds since the Unix epoch (UTC). Accepts ISO 8601 and the common forms
/// of Kusto's `todatetime`: `2024-01-02`, `2024-01-02 03:04`, `2024-01-02T03:04:05.1234567Z`,
/// `2024/01/02 03:04:05`, offsets (`+02:00`, `+0200`, `-05`) converted to UTC, a trailing
/// ` UTC`/` GMT`, and RFC 822/1123 (`Thu, 01 Jan 2015 00:00:00 GMT`). Values outside the
/// nanosecond range (years 1677..2262) are `None`.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(v) = parse_iso_datetime(s) {
        return Some(v);
    }
    if s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) {
        let dt = DateTime::parse_from_rfc2822(s).ok()?;
        return dt.timestamp_nanos_opt();
    }
    None
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            v = v * 10 + i64::from(self.b[self.i] - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        if n < min { None } else { Some((v, n)) }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn parse_iso_datetime(s: &str) -> Option<i64> {
    let mut c = Cursor { b: s.as_bytes(), i: 0 };
    let (year, _) = c.digits(4, 4)?;
    let sep = c.peek()?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    c.i += 1;
    let (month, _) = c.digits(1, 2)?;
    if !c.eat(sep) {
        return None;
    }
    let (day, _) = c.digits(1, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, u32::try_from(month).ok()?, u32::try_from(day).ok()?)?;
    let days = date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();
    let mut secs = days.checked_mul(86_400)?;
    let mut nanos: i64 = 0;
    if c.peek() == Some(b'T') || c.peek() == Some(b't') || (c.peek() == Some(b' ') && c.b.get(c.i + 1).is_some_and(u8::is_ascii_digit)) {
        c.i += 1;
        let (h, _) = c.digits(1, 2)?;
        if !c.eat(b':') {
            return None;
        }
        let (m, _) = c.digits(2, 2)?;
        let mut sec = 0;
        if c.eat(b':') {
            sec = c.digits(2, 2)?.0;
            if c.eat(b'.') || c.eat(b',') {
                let (frac, n) = c.digits(1, 9)?;
                nanos = frac * 10i64.pow(u32::try_from(9 - n).ok()?);
                // Ignore digits beyond nanosecond precision.
                while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    c.i += 1;
                }
            }
        }
        if h > 24 || m > 59 || sec > 60 || (h == 24 && (m > 0 || sec > 0 || nanos > 0)) {
            return None;
        }
        secs = secs.checked_add(h * 3600 + m * 60 + sec)?;
    }
    // Zone designator.
    while c.peek() == Some(b' ') {
        c.i += 1;
    }
    if !c.done() {
        let rest = &s[c.i..];
        if rest.eq_ignore_ascii_case("z") || rest.eq_ignore_ascii_case("utc") || rest.eq_ignore_ascii_case("gmt") {
            c.i = c.b.len();
        } else {
            let sign = match c.peek()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            c.i += 1;
            let (oh, _) = c.digits(2, 2)?;
            c.eat(b':');
            let om = if c.done() { 0 } else { c.digits(2, 2)?.0 };
            if oh > 23 || om > 59 {
                return None;
            }
            secs = secs.checked_sub(sign * (oh * 3600 + om * 60))?;
        }
    }
    if !c.done() {
        return None;
    }
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// A timespan as nanoseconds: `[-][d.]hh:mm[:ss[.fffffff]]`, a number with a unit as in KQL
/// timespan literals (`1d`, `2h`, `30m`, `10s`, `100ms`, `5microseconds`, `10ticks`, `1.5h`,
/// long unit names too), or a bare integer (days, as .NET's `TimeSpan.Parse`).
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b.trim_start()),
        None => (false, s),
    };
    let v = if body.contains(':') { parse_clock_timespan(body)? } else { parse_unit_timespan(body)? };
    if neg { v.checked_neg() } else { Some(v) }
}

fn parse_clock_timespan(s: &str) -> Option<i64> {
    let mut c = Cursor { b: s.as_bytes(), i: 0 };
    let (first, _) = c.digits(1, 18)?;
    let (days, hours) = if c.eat(b'.') {
        (first, c.digits(1, 2)?.0)
    } else {
        (0, first)
    };
    if !c.eat(b':') {
        return None;
    }
    let (minutes, _) = c.digits(1, 2)?;
    let mut seconds = 0;
    let mut nanos = 0;
    if c.eat(b':') {
        seconds = c.digits(1, 2)?.0;
        if c.eat(b'.') {
            let (frac, n) = c.digits(1, 9)?;
            nanos = frac * 10i64.pow(u32::try_from(9 - n).ok()?);
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
        }
    }
    if !c.done() || minutes > 59 || seconds > 59 || (days > 0 && hours > 23) {
        return None;
    }
    let secs = days.checked_mul(86_400)?.checked_add(hours * 3600 + minutes * 60 + seconds)?;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

fn parse_unit_timespan(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let unit = unit.trim().to_ascii_lowercase();
    let per: f64 = match unit.as_str() {
        "" => {
            // A bare integer counts days.
            let d = num.parse::<i64>().ok()?;
            return d.checked_mul(86_400 * NANOS_PER_SEC);
        }
        "d" | "day" | "days" => 86_400e9,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600e9,
        "m" | "min" | "minute" | "minutes" => 60e9,
        "s" | "sec" | "second" | "seconds" => 1e9,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1e6,
        "micro" | "micros" | "microsecond" | "microseconds" => 1e3,
        "tick" | "ticks" => 100.0,
        "nanosecond" | "nanoseconds" => 1.0,
        _ => return None,
    };
    // Integers are exact; fractions go through f64 (rounded to the nearest nanosecond).
    if let Ok(n) = num.parse::<i64>() {
        return n.checked_mul(per as i64);
    }
    let f = num.parse::<f64>().ok()? * per;
    if f.is_finite() && f.abs() < 9.2e18 { Some(f.round() as i64) } else { None }
}

/// A GUID in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form (also braced or as 32 hex digits),
/// normalized to lower case with hyphens.
pub fn parse_guid(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(s);
    let b = s.as_bytes();
    let hex: Vec<u8> = match b.len() {
        36 => {
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            b.iter().copied().filter(|&c| c != b'-').collect()
        }
        32 => b.to_vec(),
        _ => return None,
    };
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = String::with_capacity(36);
    for (i, &c) in hex.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(c.to_ascii_lowercase()));
    }
    Some(out)
}

/// A `dynamic` value as compact JSON text: valid JSON is kept (whitespace removed, key order
/// preserved); any other text becomes a JSON string, as Kusto does. JSON `null` and blank text
/// are `None`.
pub fn to_dynamic(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t == "null" {
        return None;
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok() {
        Some(minify_json(t))
    } else {
        serde_json::to_string(s).ok()
    }
}

/// Removes insignificant whitespace from valid JSON text.
pub fn minify_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in s.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Option<String> {
        parse_datetime(s).map(|n| {
            let secs = n.div_euclid(NANOS_PER_SEC);
            let ns = n.rem_euclid(NANOS_PER_SEC);
            let d = DateTime::from_timestamp(secs, u32::try_from(ns).unwrap()).unwrap();
            d.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
        })
    }

    #[test]
    fn bools() {
        for t in ["true", "TRUE", "True", "1", " true "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "FALSE", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "2", "", "t"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_long("42"), Some(42));
        assert_eq!(parse_long(" -7 "), Some(-7));
        assert_eq!(parse_long("+7"), Some(7));
        assert_eq!(parse_long("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_long("9223372036854775808"), None);
        assert_eq!(parse_long("0x1F"), Some(31));
        assert_eq!(parse_long("1.0"), Some(1));
        assert_eq!(parse_long("1e3"), Some(1000));
        assert_eq!(parse_long("1.5"), None);
        assert_eq!(parse_long("abc"), None);
        assert_eq!(parse_long("inf"), None);
        assert_eq!(parse_int("2147483647"), Some(i32::MAX));
        assert_eq!(parse_int("2147483648"), None);
        assert_eq!(parse_int("-12"), Some(-12));
    }

    #[test]
    fn reals() {
        assert_eq!(parse_real("1.5"), Some(1.5));
        assert_eq!(parse_real("-2e-3"), Some(-0.002));
        assert_eq!(parse_real("10"), Some(10.0));
        assert!(parse_real("NaN").unwrap().is_nan());
        assert_eq!(parse_real("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_real("1,5"), None);
    }

    #[test]
    fn decimals() {
        let p = |s| parse_decimal(s, 38, 10);
        assert_eq!(p("1.5"), Some(15_000_000_000));
        assert_eq!(p("-0.25"), Some(-2_500_000_000));
        assert_eq!(p("3"), Some(30_000_000_000));
        assert_eq!(p(".5"), Some(5_000_000_000));
        assert_eq!(p("1e2"), Some(1_000_000_000_000));
        assert_eq!(p("0.00000000005"), Some(1)); // rounds half away from zero
        assert_eq!(p("0.00000000004"), Some(0));
        assert_eq!(p("1234567890123456789012345678"), Some(12_345_678_901_234_567_890_123_456_780_000_000_000));
        assert_eq!(p("1234567890123456789012345678901"), None); // over 38 digits at scale 10
        assert_eq!(p("abc"), None);
        assert_eq!(p("1.2.3"), None);
        assert_eq!(p("-"), None);
    }

    #[test]
    fn datetimes() {
        assert_eq!(dt("2024-01-02").unwrap(), "2024-01-02T00:00:00.000000000Z");
        assert_eq!(dt("2024-01-02 03:04:05").unwrap(), "2024-01-02T03:04:05.000000000Z");
        assert_eq!(dt("2024-01-02T03:04:05.123Z").unwrap(), "2024-01-02T03:04:05.123000000Z");
        assert_eq!(dt("2024-01-02T03:04:05.1234567Z").unwrap(), "2024-01-02T03:04:05.123456700Z");
        assert_eq!(dt("2024-01-02T03:04:05.123456789123Z").unwrap(), "2024-01-02T03:04:05.123456789Z");
        assert_eq!(dt("2024-01-02T03:04:05+02:00").unwrap(), "2024-01-02T01:04:05.000000000Z");
        assert_eq!(dt("2024-01-02T03:04:05-0530").unwrap(), "2024-01-02T08:34:05.000000000Z");
        assert_eq!(dt("2024-01-02 03:04").unwrap(), "2024-01-02T03:04:00.000000000Z");
        assert_eq!(dt("2024/01/02 03:04:05").unwrap(), "2024-01-02T03:04:05.000000000Z");
        assert_eq!(dt("2024-01-02 03:04:05 UTC").unwrap(), "2024-01-02T03:04:05.000000000Z");
        assert_eq!(dt("Thu, 01 Jan 2015 00:00:00 GMT").unwrap(), "2015-01-01T00:00:00.000000000Z");
        assert_eq!(dt("1960-06-30T12:00:00Z").unwrap(), "1960-06-30T12:00:00.000000000Z");
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        for bad in ["2024-13-01", "2024-02-30", "2024-01-02T25:00:00", "yesterday", "2024-01-02X", "12345", "3000-01-01"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn timespans() {
        const S: i64 = NANOS_PER_SEC;
        assert_eq!(parse_timespan("02:03:04"), Some((2 * 3600 + 3 * 60 + 4) * S));
        assert_eq!(parse_timespan("1.02:03:04.5"), Some((86_400 + 2 * 3600 + 3 * 60 + 4) * S + S / 2));
        assert_eq!(parse_timespan("-00:00:01"), Some(-S));
        assert_eq!(parse_timespan("00:00:00.0000001"), Some(100));
        assert_eq!(parse_timespan("02:03"), Some((2 * 3600 + 3 * 60) * S));
        assert_eq!(parse_timespan("1d"), Some(86_400 * S));
        assert_eq!(parse_timespan("2h"), Some(7200 * S));
        assert_eq!(parse_timespan("30m"), Some(1800 * S));
        assert_eq!(parse_timespan("10s"), Some(10 * S));
        assert_eq!(parse_timespan("100ms"), Some(100_000_000));
        assert_eq!(parse_timespan("5microseconds"), Some(5000));
        assert_eq!(parse_timespan("3ticks"), Some(300));
        assert_eq!(parse_timespan("1.5h"), Some(5400 * S));
        assert_eq!(parse_timespan("2 hours"), Some(7200 * S));
        assert_eq!(parse_timespan("3"), Some(3 * 86_400 * S));
        for bad in ["abc", "1x", "00:60:00", "1.25:00:00", "", "h"] {
            assert_eq!(parse_timespan(bad), None, "{bad}");
        }
    }

    #[test]
    fn guids() {
        let g = "0F8FAD5B-D9CB-469F-A165-70867728950E";
        assert_eq!(parse_guid(g).unwrap(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!(parse_guid(&format!("{{{g}}}")).unwrap(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!(parse_guid("0f8fad5bd9cb469fa16570867728950e").unwrap(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        for bad in ["0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950g", "0f8fad5bd-9cb-469f-a165-70867728950e", "x"] {
            assert_eq!(parse_guid(bad), None, "{bad}");
        }
    }

    #[test]
    fn dynamics() {
        assert_eq!(to_dynamic(r#"{ "b": 1, "a": [1, 2, "x y"] }"#).unwrap(), r#"{"b":1,"a":[1,2,"x y"]}"#);
        assert_eq!(to_dynamic("42").unwrap(), "42");
        assert_eq!(to_dynamic("\"s\"").unwrap(), "\"s\"");
        assert_eq!(to_dynamic("hello world").unwrap(), "\"hello world\"");
        assert_eq!(to_dynamic("{bad json").unwrap(), "\"{bad json\"");
        assert_eq!(to_dynamic(r#"["a\"b ", 1]"#).unwrap(), r#"["a\"b ",1]"#);
        assert_eq!(to_dynamic("null"), None);
        assert_eq!(to_dynamic("  "), None);
    }
}
