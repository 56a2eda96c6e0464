//! Parquet files: columns mapped by name and cast to the table's types. A value that does not
//! convert is null and counted in the summary, as for the text formats.

use std::fs::File;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray, TimestampNanosecondArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use kustodian_planner::types::{KqlSchema, KqlType};

use super::builder::{BATCH_ROWS, ColumnBuilder};
use super::errors::IngestErrorCode;
use super::progress::{FileProgress, ProgressUnit};
use super::summary::IngestSummary;
use crate::error::{Result, RuntimeError};

pub(super) fn read_parquet(
    file: File,
    schema: &KqlSchema,
    progress: Option<&FileProgress<'_>>,
    summary: &mut IngestSummary,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| IngestErrorCode::InvalidBlob.error(format!("not a readable Parquet file: {e}")))?;
    let total_rows = builder.metadata().file_metadata().num_rows();
    let source = builder.schema().clone();
    if let Some(p) = progress {
        // Parquet is read by row groups: its progress counts rows.
        p.start(ProgressUnit::Rows, u64::try_from(total_rows).unwrap_or(0));
    }
    // Source column index per table column.
    let mapping: Vec<Option<usize>> = schema
        .columns
        .iter()
        .map(|c| {
            source
                .fields()
                .iter()
                .position(|f| f.name() == &c.name)
                .or_else(|| source.fields().iter().position(|f| f.name().eq_ignore_ascii_case(&c.name)))
        })
        .collect();
    for (c, m) in schema.columns.iter().zip(&mapping) {
        if let Some(i) = m {
            let dt = source.field(*i).data_type();
            if !convertible(dt, c.ty) {
                return Err(IngestErrorCode::InconsistentMapping.error(format!(
                    "Parquet column '{}' of type {dt} cannot be ingested into column '{}' of type {}",
                    source.field(*i).name(),
                    c.name,
                    c.ty
                )));
            }
        }
    }
    let target = schema.arrow_schema();
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| IngestErrorCode::InvalidBlob.error(format!("not a readable Parquet file: {e}")))?;
    let mut total = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| IngestErrorCode::InvalidBlob.error(format!("reading Parquet data: {e}")))?;
        let rows = batch.num_rows();
        let mut arrays = Vec::with_capacity(schema.columns.len());
        for (c, m) in schema.columns.iter().zip(&mapping) {
            arrays.push(match m {
                Some(i) => {
                    let source = batch.column(*i);
                    let (converted, failed) = convert_array(source, c.ty)?;
                    if !failed.is_empty() {
                        let shown = ArrayFormatter::try_new(source.as_ref(), &FormatOptions::default()).ok();
                        for row in failed {
                            let value = shown.as_ref().map(|f| f.value(row).to_string()).unwrap_or_default();
                            summary.conversion_failure(total + row as u64 + 1, None, c, &value);
                        }
                    }
                    converted
                }
                None => new_null_array(&c.ty.arrow_type(), rows),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let out = RecordBatch::try_new_with_options(target.clone(), arrays, &options)
            .map_err(|e| RuntimeError::Internal(format!("building ingested batch: {e}")))?;
        total += rows as u64;
        if let Some(p) = progress {
            p.advance(total);
        }
        sink(out)?;
    }
    Ok(total)
}

fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        || matches!(dt, DataType::Dictionary(_, v) if is_string(v))
}

fn is_nested(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(_, _)
    )
}

fn convertible(dt: &DataType, ty: KqlType) -> bool {
    if is_string(dt) || matches!(dt, DataType::Null) {
        return true;
    }
    match ty {
        KqlType::Dynamic => is_nested(dt) || can_cast_types(dt, &DataType::Utf8),
        KqlType::Datetime if matches!(dt, DataType::Timestamp(_, _)) => true,
        _ => can_cast_types(dt, &ty.arrow_type()),
    }
}

/// Converts a source column to the Arrow type of `ty`, Kusto style: unconvertible values are
/// null. Also returns the rows whose value did not convert (non-null in the source, null
/// after; blank text is null by rule, not a failure).
pub(crate) fn convert_array(array: &ArrayRef, ty: KqlType) -> Result<(ArrayRef, Vec<usize>)> {
    let target = ty.arrow_type();
    let dt = array.data_type();
    if dt == &target && !matches!(ty, KqlType::Guid | KqlType::Dynamic) {
        return Ok((array.clone(), Vec::new()));
    }
    let safe = CastOptions { safe: true, ..Default::default() };
    let cast = |a: &ArrayRef, to: &DataType| {
        cast_with_options(a, to, &safe).map_err(|e| RuntimeError::bad_request(format!("cannot convert {dt} to {ty}: {e}")))
    };
    if matches!(dt, DataType::Null) {
        return Ok((new_null_array(&target, array.len()), Vec::new()));
    }
    if is_string(dt) {
        let strings = cast(array, &DataType::Utf8)?;
        if ty == KqlType::String {
            return Ok((strings, Vec::new()));
        }
        return from_text(strings.as_string::<i32>(), ty, false);
    }
    let converted = match ty {
        KqlType::Dynamic if is_nested(dt) => nested_to_json(array)?,
        KqlType::Dynamic => {
            let strings = cast(array, &DataType::Utf8)?;
            return from_text(strings.as_string::<i32>(), ty, is_temporal(dt));
        }
        KqlType::Datetime => match dt {
            DataType::Timestamp(unit, _) => {
                // Timestamps with a time zone hold UTC instants: keep the instant, drop the zone.
                let raw = cast(array, &DataType::Int64)?;
                let per = match unit {
                    TimeUnit::Second => 1_000_000_000,
                    TimeUnit::Millisecond => 1_000_000,
                    TimeUnit::Microsecond => 1_000,
                    TimeUnit::Nanosecond => 1,
                };
                let values: TimestampNanosecondArray =
                    raw.as_primitive::<Int64Type>().iter().map(|v| v.and_then(|v| v.checked_mul(per))).collect();
                Arc::new(values)
            }
            _ => cast(array, &target)?,
        },
        _ => cast(array, &target)?,
    };
    let failed = (0..array.len()).filter(|&i| array.is_valid(i) && converted.is_null(i)).collect();
    Ok((converted, failed))
}

fn is_temporal(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Duration(_)
            | DataType::Interval(_)
    )
}

/// Builds a column of `ty` from text values, and the rows whose text did not convert.
/// `as_json_string` stores each text as a JSON string (for `dynamic` from non-JSON scalars
/// such as timestamps).
fn from_text(strings: &StringArray, ty: KqlType, as_json_string: bool) -> Result<(ArrayRef, Vec<usize>)> {
    let mut b = ColumnBuilder::new(ty, strings.len());
    let mut failed = Vec::new();
    for (i, v) in strings.iter().enumerate() {
        let ok = match v {
            None => {
                b.append_null();
                true
            }
            Some(s) if as_json_string => match serde_json::to_string(s) {
                Ok(j) => b.append_json(&j),
                Err(_) => {
                    b.append_null();
                    false
                }
            },
            Some(s) => b.append_text(s),
        };
        if !ok {
            failed.push(i);
        }
    }
    Ok((b.finish()?, failed))
}

/// Nested Arrow values (lists, structs, maps) as compact JSON text.
fn nested_to_json(array: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::json::LineDelimitedWriter;
    let field = Field::new("v", array.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])
        .map_err(|e| RuntimeError::Internal(format!("encoding nested values: {e}")))?;
    let mut buf = Vec::new();
    {
        let mut w = LineDelimitedWriter::new(&mut buf);
        w.write(&batch).map_err(|e| RuntimeError::Internal(format!("encoding nested values: {e}")))?;
        w.finish().map_err(|e| RuntimeError::Internal(format!("encoding nested values: {e}")))?;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut b = ColumnBuilder::new(KqlType::Dynamic, array.len());
    let mut lines = text.lines();
    for i in 0..array.len() {
        let line = lines.next().unwrap_or("");
        if array.is_null(i) {
            b.append_null();
            continue;
        }
        match serde_json::from_str::<std::collections::HashMap<String, &serde_json::value::RawValue>>(line) {
            Ok(m) => match m.get("v") {
                Some(v) => {
                    b.append_json(v.get());
                }
                None => b.append_null(),
            },
            Err(_) => b.append_null(),
        }
    }
    b.finish()
}
