//! Kusto's text of timespan and datetime values, written once for the whole workspace: the
//! planner's `tostring`/`strcat`, the v2 encoding of results, and the CLI's tables all call
//! these, so a value reads the same wherever it is printed.
//!
//! Values arrive as nanoseconds (Arrow's `Duration(Nanosecond)` and `Timestamp(Nanosecond)`,
//! what the engine computes with); Kusto's unit is the 100 ns tick, so the text never shows
//! more than seven fractional digits. The two kinds round differently on purpose:
//!
//! * a **timespan** is a length: its sub-tick part is cut toward zero, as .NET's
//!   `TimeSpan.FromTicks(ns / 100)` does, so `-50ns` is the zero span `00:00:00` (never
//!   `-00:00:00`: .NET prints no sign on a zero span);
//! * a **datetime** is an instant: it shows the tick it falls in (rounded toward the past),
//!   so an instant 50 ns before the epoch is `1969-12-31T23:59:59.9999999Z`.
//!
//! (The KQL *literal* of a timespan, `1d` or `150ms` as the AST prints it back, is source
//! syntax, not a value's text, and stays with the AST's `Display`.)

use chrono::{DateTime, Utc};

/// Nanoseconds in one 100 ns tick, Kusto's unit of time.
pub const NANOS_PER_TICK: i64 = 100;

const TICKS_PER_SECOND: u64 = 10_000_000;
const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// Kusto's text of a timespan (.NET's constant format `c`): `[-][d.]hh:mm:ss[.fffffff]`.
/// Days only when there is at least one, the seven fractional digits only when the fraction
/// is not zero (Kusto prints `00:00:01.5000000`, never a shortened fraction), the sign only
/// on a span of at least one tick.
///
/// ```
/// use kustodian_parser::value_text::format_timespan_nanos;
/// assert_eq!(format_timespan_nanos(90 * 1_000_000_000), "00:01:30");
/// assert_eq!(format_timespan_nanos(-36 * 3_600 * 1_000_000_000), "-1.12:00:00");
/// assert_eq!(format_timespan_nanos(1_500_000_000), "00:00:01.5000000");
/// ```
pub fn format_timespan_nanos(ns: i64) -> String {
    // Toward zero: `unsigned_abs` first, so `i64::MIN` needs no special case.
    let ticks = ns.unsigned_abs() / NANOS_PER_TICK.unsigned_abs();
    let fraction = ticks % TICKS_PER_SECOND;
    let seconds = ticks / TICKS_PER_SECOND;
    let (days, second_of_day) = (seconds / SECONDS_PER_DAY, seconds % SECONDS_PER_DAY);
    let (h, m, s) = (
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    let sign = if ns < 0 && ticks != 0 { "-" } else { "" };
    let days = if days == 0 {
        String::new()
    } else {
        format!("{days}.")
    };
    let fraction = if fraction == 0 {
        String::new()
    } else {
        format!(".{fraction:07}")
    };
    format!("{sign}{days}{h:02}:{m:02}:{s:02}{fraction}")
}

/// Kusto's text of a datetime: ISO 8601 in UTC with all seven fractional digits,
/// `2024-01-02T03:04:05.1234500Z`. This is what `tostring`, `strcat`, datetimes inside
/// dynamic values, the hash functions, and the v2 REST encoding of results show.
///
/// ```
/// use kustodian_parser::value_text::format_datetime_nanos;
/// assert_eq!(format_datetime_nanos(0), "1970-01-01T00:00:00.0000000Z");
/// ```
pub fn format_datetime_nanos(ns: i64) -> String {
    let (seconds, fraction) = datetime_parts(ns);
    format!("{seconds}.{fraction:07}Z")
}

/// A datetime as a reader wants it in a table: [`format_datetime_nanos`] with the fraction's
/// trailing zeros dropped, and no fraction at all on a whole second (`2024-01-02T03:04:05Z`,
/// `2024-01-02T03:04:05.5Z`).
pub fn format_datetime_nanos_trimmed(ns: i64) -> String {
    let (seconds, fraction) = datetime_parts(ns);
    if fraction == 0 {
        format!("{seconds}Z")
    } else {
        let digits = format!("{fraction:07}");
        format!("{seconds}.{}Z", digits.trim_end_matches('0'))
    }
}

/// `yyyy-MM-ddTHH:mm:ss` of the instant and the tick within its second, both rounded toward
/// the past (an instant before 1970 keeps a positive fraction of its own second).
fn datetime_parts(ns: i64) -> (String, i64) {
    // Every i64 of nanoseconds (years 1677 to 2262) is a chrono instant.
    let instant = DateTime::<Utc>::from_timestamp_nanos(ns);
    let fraction = ns.rem_euclid(NANOS_PER_SECOND) / NANOS_PER_TICK;
    (instant.format("%Y-%m-%dT%H:%M:%S").to_string(), fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SECOND;
    const DAY: i64 = 86_400 * S;

    #[test]
    fn timespans() {
        assert_eq!(format_timespan_nanos(0), "00:00:00");
        assert_eq!(format_timespan_nanos(100), "00:00:00.0000001");
        assert_eq!(
            format_timespan_nanos(-100),
            "-00:00:00.0000001",
            "minus one tick"
        );
        assert_eq!(format_timespan_nanos(10 * S), "00:00:10");
        assert_eq!(format_timespan_nanos(DAY), "1.00:00:00");
        assert_eq!(format_timespan_nanos(-DAY), "-1.00:00:00");
        assert_eq!(format_timespan_nanos(-DAY - DAY / 2), "-1.12:00:00");
        assert_eq!(format_timespan_nanos(DAY - 100), "23:59:59.9999999");
        assert_eq!(
            format_timespan_nanos(-(2 * DAY + 3600 * S) - S / 4),
            "-2.01:00:00.2500000"
        );
        assert_eq!(
            format_timespan_nanos(S / 2),
            "00:00:00.5000000",
            "seven digits, not trimmed"
        );
        assert_eq!(format_timespan_nanos(1_234_567_800), "00:00:01.2345678");
    }

    #[test]
    fn sub_tick_timespans_are_cut_toward_zero() {
        assert_eq!(format_timespan_nanos(50), "00:00:00");
        assert_eq!(
            format_timespan_nanos(-50),
            "00:00:00",
            "a zero span has no sign"
        );
        assert_eq!(format_timespan_nanos(-99), "00:00:00");
        assert_eq!(format_timespan_nanos(-150), "-00:00:00.0000001");
        assert_eq!(format_timespan_nanos(199), "00:00:00.0000001");
    }

    #[test]
    fn timespan_extremes() {
        assert_eq!(format_timespan_nanos(i64::MAX), "106751.23:47:16.8547758");
        assert_eq!(format_timespan_nanos(i64::MIN), "-106751.23:47:16.8547758");
    }

    #[test]
    fn datetimes() {
        assert_eq!(format_datetime_nanos(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(format_datetime_nanos(150), "1970-01-01T00:00:00.0000001Z");
        assert_eq!(
            format_datetime_nanos(-365 * DAY),
            "1969-01-01T00:00:00.0000000Z"
        );
        assert_eq!(
            format_datetime_nanos(1_704_164_645 * S + 123_456_700),
            "2024-01-02T03:04:05.1234567Z"
        );
        assert_eq!(
            format_datetime_nanos(i64::MIN),
            "1677-09-21T00:12:43.1452241Z"
        );
        assert_eq!(
            format_datetime_nanos(i64::MAX),
            "2262-04-11T23:47:16.8547758Z"
        );
    }

    #[test]
    fn datetimes_before_the_epoch_show_the_tick_they_fall_in() {
        assert_eq!(format_datetime_nanos(-50), "1969-12-31T23:59:59.9999999Z");
        assert_eq!(format_datetime_nanos(-100), "1969-12-31T23:59:59.9999999Z");
        assert_eq!(format_datetime_nanos(-101), "1969-12-31T23:59:59.9999998Z");
        assert_eq!(
            format_datetime_nanos(-S / 2),
            "1969-12-31T23:59:59.5000000Z"
        );
    }

    #[test]
    fn trimmed_datetimes() {
        assert_eq!(format_datetime_nanos_trimmed(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_datetime_nanos_trimmed(-S / 2),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(
            format_datetime_nanos_trimmed(1_704_164_645 * S),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            format_datetime_nanos_trimmed(100),
            "1970-01-01T00:00:00.0000001Z"
        );
        assert_eq!(
            format_datetime_nanos_trimmed(-1),
            "1969-12-31T23:59:59.9999999Z"
        );
    }
}
