//! Kusto's value encoding: Arrow values as Kusto's v2 REST JSON values ([`json_value`]) and as
//! display text ([`text_value`]), the result columns with their KQL types ([`columns`], whose
//! Kusto type names are [`KqlType::name`]), and the text of Kusto's datetimes, timespans and
//! decimals. Part of the engine so that every front end encodes results the same way: the
//! `kustodian` binary renders its tables, CSV and JSON lines from it, and a REST server writes
//! its v2 frames from it.
//!
//! The Arrow type decides how a value is read; the KQL type only tells the `Utf8` columns
//! apart (`string`, `guid` or `dynamic` JSON text).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::{KqlSchema, KqlType};
use serde_json::Value;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Column names and KQL types of a result: the KQL schema, or (if the engine returned none)
/// the Arrow schema of the first batch, a column of an Arrow type KQL has no name for being
/// a `string`.
pub fn columns(schema: &KqlSchema, first: Option<&RecordBatch>) -> Vec<(String, KqlType)> {
    if !schema.columns.is_empty() {
        return schema.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
    }
    first
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        KqlType::of_field(f).unwrap_or(KqlType::String),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One cell read out of Arrow, before it is written as JSON or text.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Real(f64),
    /// A decimal already printed as text (`1.5`, `-2`).
    Decimal(String),
    Str(String),
    /// Nanoseconds since the Unix epoch.
    Datetime(i64),
    /// Nanoseconds.
    Timespan(i64),
    Dynamic(Value),
    /// A type Kusto has no name for: Arrow's own display text.
    Other(String),
}

/// The v2 REST JSON encoding of row `row` of `array`, whose KQL type is `ty`.
pub fn json_value(array: &dyn Array, row: usize, ty: KqlType) -> Value {
    match read_cell(array, row, ty) {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Bool(b),
        Cell::Int(i) => Value::from(i),
        Cell::UInt(u) => Value::from(u),
        Cell::Real(f) => real_json(f),
        Cell::Decimal(s) | Cell::Str(s) | Cell::Other(s) => Value::String(s),
        Cell::Datetime(ns) => Value::String(datetime_v2(ns)),
        Cell::Timespan(ns) => Value::String(timespan(ns)),
        Cell::Dynamic(v) => v,
    }
}

/// Display text of row `row` of `array` for tables and CSV: datetimes without a zero
/// fraction, timespans in Kusto's format, dynamic values as compact JSON, null as empty.
pub fn text_value(array: &dyn Array, row: usize, ty: KqlType) -> String {
    match read_cell(array, row, ty) {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(i) => i.to_string(),
        Cell::UInt(u) => u.to_string(),
        Cell::Real(f) => real_text(f),
        Cell::Decimal(s) | Cell::Str(s) | Cell::Other(s) => s,
        Cell::Datetime(ns) => datetime_text(ns),
        Cell::Timespan(ns) => timespan(ns),
        Cell::Dynamic(v) => v.to_string(),
    }
}

fn read_cell(array: &dyn Array, row: usize, ty: KqlType) -> Cell {
    if row >= array.len() || array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Null => Cell::Null,
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Cell::Int(i64::from(array.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Cell::Int(i64::from(array.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Cell::Int(i64::from(array.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Cell::UInt(u64::from(array.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Cell::UInt(u64::from(array.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Cell::UInt(u64::from(array.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => Cell::UInt(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => Cell::Real(f64::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => Cell::Real(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Cell::Real(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => Cell::Decimal(decimal_text(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale,
        )),
        DataType::Utf8 => utf8_cell(array.as_string::<i32>().value(row), ty),
        DataType::LargeUtf8 => utf8_cell(array.as_string::<i64>().value(row), ty),
        DataType::Utf8View => utf8_cell(array.as_string_view().value(row), ty),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            Cell::Datetime(to_nanos(v, *unit))
        }
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(row));
            Cell::Datetime(days.saturating_mul(86_400 * NANOS_PER_SECOND))
        }
        DataType::Date64 => Cell::Datetime(to_nanos(
            array.as_primitive::<Date64Type>().value(row),
            TimeUnit::Millisecond,
        )),
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            Cell::Timespan(to_nanos(v, *unit))
        }
        _ => other_cell(array, row),
    }
}

fn utf8_cell(text: &str, ty: KqlType) -> Cell {
    if ty != KqlType::Dynamic {
        return Cell::Str(text.to_string());
    }
    // Dynamic values are stored as JSON text; text that is not JSON (which the engine should
    // never produce) is passed on as a string rather than failing the whole result.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => Cell::Null,
        Ok(v) => Cell::Dynamic(v),
        Err(_) => Cell::Dynamic(Value::String(text.to_string())),
    }
}

fn other_cell(array: &dyn Array, row: usize) -> Cell {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => Cell::Other(f.value(row).to_string()),
        Err(e) => Cell::Other(format!("<{e}>")),
    }
}

fn to_nanos(v: i64, unit: TimeUnit) -> i64 {
    let factor = match unit {
        TimeUnit::Second => NANOS_PER_SECOND,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    v.saturating_mul(factor)
}

/// Kusto writes non-finite reals as strings.
fn real_json(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f == f64::INFINITY {
        Value::String("Infinity".into())
    } else if f == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn real_text(f: f64) -> String {
    match real_json(f) {
        Value::String(s) => s,
        // serde_json prints the shortest round-tripping form (`1.5`, `1e21`); drop a `.0` so
        // whole numbers read as Kusto prints them (`1`).
        v => {
            let s = v.to_string();
            s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
        }
    }
}

/// A Decimal128 with `scale` as plain text with trailing fractional zeros removed.
pub fn decimal_text(raw: i128, scale: i8) -> String {
    let negative = raw < 0;
    let digits = raw.unsigned_abs().to_string();
    let mut text = if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        if raw == 0 {
            "0".to_string()
        } else {
            format!("{digits}{zeros}")
        }
    } else {
        let scale = usize::from(scale.unsigned_abs());
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        let frac_part = frac_part.trim_end_matches('0');
        if frac_part.is_empty() {
            int_part.to_string()
        } else {
            format!("{int_part}.{frac_part}")
        }
    };
    if negative && text != "0" {
        text.insert(0, '-');
    }
    text
}

/// Kusto v2 datetime: ISO 8601 UTC with exactly 7 fractional digits (`2024-01-02T03:04:05.1234567Z`).
pub fn datetime_v2(ns: i64) -> String {
    kustodian_parser::value_text::format_datetime_nanos(ns)
}

/// Datetime for display: the fraction only when non-zero, without trailing zeros
/// (`2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.5Z`).
pub fn datetime_text(ns: i64) -> String {
    kustodian_parser::value_text::format_datetime_nanos_trimmed(ns)
}

/// Kusto timespan: `[-][d.]hh:mm:ss[.fffffff]`, the fraction (7 digits, 100 ns ticks) only
/// when non-zero, sub-tick nanoseconds truncated.
pub fn timespan(ns: i64) -> String {
    kustodian_parser::value_text::format_timespan_nanos(ns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Decimal128Array, DurationNanosecondArray, Float64Array, Int32Array,
        Int64Array, StringArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::record_batch::RecordBatch;
    use kustodian_planner::{KqlColumn, KqlSchema};
    use serde_json::json;

    use super::*;

    /// A batch with one column of every KQL type, built from the planner's own type mapping.
    fn batch() -> (KqlSchema, RecordBatch) {
        let schema = KqlSchema::new(vec![
            KqlColumn::new("b", KqlType::Bool),
            KqlColumn::new("i", KqlType::Int),
            KqlColumn::new("l", KqlType::Long),
            KqlColumn::new("r", KqlType::Real),
            KqlColumn::new("d", KqlType::Decimal),
            KqlColumn::new("s", KqlType::String),
            KqlColumn::new("dt", KqlType::Datetime),
            KqlColumn::new("ts", KqlType::Timespan),
            KqlColumn::new("g", KqlType::Guid),
            KqlColumn::new("dyn", KqlType::Dynamic),
        ]);
        let day = 86_400 * NANOS_PER_SECOND;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                None,
                None,
                None,
            ])),
            Arc::new(Int32Array::from(vec![
                Some(1),
                Some(-2),
                None,
                Some(i32::MAX),
                None,
                None,
            ])),
            Arc::new(Int64Array::from(vec![
                Some(3),
                Some(i64::MIN),
                None,
                Some(0),
                None,
                None,
            ])),
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(f64::NAN),
                None,
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(2.0),
            ])),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(15_000_000_000),
                    Some(-20_000_000_000),
                    None,
                    Some(1),
                    Some(0),
                    Some(-5_000_000_000),
                ])
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
            Arc::new(StringArray::from(vec![
                Some("r1"),
                Some(""),
                None,
                Some("a,\"b\"\nc"),
                None,
                None,
            ])),
            Arc::new(TimestampNanosecondArray::from(vec![
                Some(1_704_164_645_123_456_700),
                Some(-1),
                None,
                Some(0),
                Some(-86_400 * NANOS_PER_SECOND + 500_000_000),
                Some(1_704_164_645_500_000_000),
            ])),
            Arc::new(DurationNanosecondArray::from(vec![
                Some(
                    day + 2 * 3600 * NANOS_PER_SECOND
                        + 3 * 60 * NANOS_PER_SECOND
                        + 4 * NANOS_PER_SECOND
                        + 500_000_000,
                ),
                Some(10 * NANOS_PER_SECOND),
                None,
                Some(-(90 * NANOS_PER_SECOND)),
                Some(-(3 * day + 100)),
                Some(0),
            ])),
            Arc::new(StringArray::from(vec![
                Some("0b0e8bb6-6c1b-4f4c-9d7c-1f3c0a2d4e5f"),
                None,
                None,
                None,
                None,
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some(r#"[1, "two", {"three": 3}]"#),
                Some(r#"{"a": {"b": [true, null]}}"#),
                None,
                Some(r#""text""#),
                Some("null"),
                Some("4.5"),
            ])),
        ];
        let batch = RecordBatch::try_new(schema.arrow_schema(), columns).unwrap();
        (schema, batch)
    }

    fn json_rows() -> Vec<Vec<Value>> {
        let (schema, batch) = batch();
        (0..batch.num_rows())
            .map(|row| {
                schema
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| json_value(batch.column(i).as_ref(), row, c.ty))
                    .collect()
            })
            .collect()
    }

    fn text_rows() -> Vec<Vec<String>> {
        let (schema, batch) = batch();
        (0..batch.num_rows())
            .map(|row| {
                schema
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| text_value(batch.column(i).as_ref(), row, c.ty))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn json_encoding_of_every_type() {
        let rows = json_rows();
        assert_eq!(
            Value::from(rows[0].clone()),
            json!([
                true,
                1,
                3,
                1.5,
                "1.5",
                "r1",
                "2024-01-02T03:04:05.1234567Z",
                "1.02:03:04.5000000",
                "0b0e8bb6-6c1b-4f4c-9d7c-1f3c0a2d4e5f",
                [1, "two", {"three": 3}]
            ])
        );
        assert_eq!(
            Value::from(rows[1].clone()),
            json!([
                false,
                -2,
                i64::MIN,
                "NaN",
                "-2",
                "",
                "1969-12-31T23:59:59.9999999Z",
                "00:00:10",
                null,
                {"a": {"b": [true, null]}}
            ])
        );
        assert!(
            rows[2].iter().all(Value::is_null),
            "row of nulls: {:?}",
            rows[2]
        );
        assert_eq!(
            Value::from(rows[3].clone()),
            json!([
                null,
                i32::MAX,
                0,
                "Infinity",
                "0.0000000001",
                "a,\"b\"\nc",
                "1970-01-01T00:00:00.0000000Z",
                "-00:01:30",
                null,
                "text"
            ])
        );
        assert_eq!(rows[4][3], json!("-Infinity"));
        assert_eq!(rows[4][4], json!("0"));
        assert_eq!(rows[4][6], json!("1969-12-31T00:00:00.5000000Z"));
        assert_eq!(rows[4][7], json!("-3.00:00:00.0000001"));
        assert_eq!(rows[4][9], Value::Null, "dynamic JSON null is null");
        assert_eq!(rows[5][3], json!(2.0));
        assert_eq!(rows[5][4], json!("-0.5"));
        assert_eq!(rows[5][7], json!("00:00:00"));
        assert_eq!(rows[5][9], json!(4.5));
    }

    #[test]
    fn text_encoding_of_every_type() {
        let rows = text_rows();
        assert_eq!(
            rows[0],
            [
                "true",
                "1",
                "3",
                "1.5",
                "1.5",
                "r1",
                "2024-01-02T03:04:05.1234567Z",
                "1.02:03:04.5000000",
                "0b0e8bb6-6c1b-4f4c-9d7c-1f3c0a2d4e5f",
                r#"[1,"two",{"three":3}]"#
            ]
        );
        assert_eq!(
            rows[1],
            [
                "false",
                "-2",
                "-9223372036854775808",
                "NaN",
                "-2",
                "",
                "1969-12-31T23:59:59.9999999Z",
                "00:00:10",
                "",
                r#"{"a":{"b":[true,null]}}"#
            ]
        );
        assert!(
            rows[2].iter().all(String::is_empty),
            "row of nulls: {:?}",
            rows[2]
        );
        assert_eq!(rows[3][3], "Infinity");
        assert_eq!(rows[3][6], "1970-01-01T00:00:00Z");
        assert_eq!(rows[3][7], "-00:01:30");
        assert_eq!(rows[3][9], r#""text""#);
        assert_eq!(rows[4][3], "-Infinity");
        assert_eq!(rows[4][6], "1969-12-31T00:00:00.5Z");
        assert_eq!(rows[4][9], "");
        assert_eq!(rows[5][3], "2");
        assert_eq!(rows[5][6], "2024-01-02T03:04:05.5Z");
        assert_eq!(rows[5][9], "4.5");
    }

    #[test]
    fn timespan_format() {
        let s = NANOS_PER_SECOND;
        assert_eq!(timespan(0), "00:00:00");
        assert_eq!(timespan(10 * s), "00:00:10");
        assert_eq!(timespan(99), "00:00:00", "below one tick");
        assert_eq!(timespan(100), "00:00:00.0000001");
        assert_eq!(timespan(-100), "-00:00:00.0000001");
        assert_eq!(timespan(-99), "00:00:00", "no sign on a zero timespan");
        assert_eq!(timespan(86_400 * s), "1.00:00:00");
        assert_eq!(
            timespan(-(2 * 86_400 + 3600) * s - s / 4),
            "-2.01:00:00.2500000"
        );
        assert_eq!(timespan(i64::MIN), "-106751.23:47:16.8547758");
        assert_eq!(timespan(i64::MAX), "106751.23:47:16.8547758");
    }

    #[test]
    fn datetime_format() {
        assert_eq!(datetime_v2(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(
            datetime_v2(-NANOS_PER_SECOND * 86_400 * 365),
            "1969-01-01T00:00:00.0000000Z"
        );
        assert_eq!(datetime_v2(150), "1970-01-01T00:00:00.0000001Z");
        assert_eq!(datetime_v2(i64::MIN), "1677-09-21T00:12:43.1452241Z");
        assert_eq!(
            datetime_text(-NANOS_PER_SECOND / 2),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(
            datetime_text(1_704_164_645 * NANOS_PER_SECOND),
            "2024-01-02T03:04:05Z"
        );
    }

    #[test]
    fn decimal_format() {
        assert_eq!(decimal_text(15, 1), "1.5");
        assert_eq!(decimal_text(-15, 1), "-1.5");
        assert_eq!(decimal_text(-5, 1), "-0.5");
        assert_eq!(decimal_text(100, 2), "1");
        assert_eq!(decimal_text(0, 10), "0");
        assert_eq!(decimal_text(12, -2), "1200");
        assert_eq!(
            decimal_text(i128::MIN, 10),
            "-17014118346046923173168730371.5884105728"
        );
    }

    #[test]
    fn other_arrow_types_fall_back_to_arrow_display() {
        use datafusion::arrow::array::{Date32Array, UInt64Array};
        let dates = Date32Array::from(vec![Some(1), None]);
        assert_eq!(
            json_value(&dates, 0, KqlType::Datetime),
            json!("1970-01-02T00:00:00.0000000Z")
        );
        assert_eq!(json_value(&dates, 1, KqlType::Datetime), Value::Null);
        let big = UInt64Array::from(vec![u64::MAX]);
        assert_eq!(json_value(&big, 0, KqlType::Long), json!(u64::MAX));
        let list =
            datafusion::arrow::array::ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1), Some(2)]),
            ]);
        assert_eq!(text_value(&list, 0, KqlType::Dynamic), "[1, 2]");
        assert_eq!(
            json_value(&list, 5, KqlType::Dynamic),
            Value::Null,
            "row out of range"
        );
    }
}
