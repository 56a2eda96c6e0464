//! Row-wise construction of record batches in a table's Arrow schema.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, DurationNanosecondBuilder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use kustodian_planner::types::{DECIMAL_PRECISION, DECIMAL_SCALE, KqlSchema, KqlType};

use super::convert;
use crate::error::{Result, RuntimeError};

/// Rows per produced batch.
pub const BATCH_ROWS: usize = 64 * 1024;

enum Inner {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Real(Float64Builder),
    Decimal(Decimal128Builder),
    Str(StringBuilder),
    Datetime(TimestampNanosecondBuilder),
    Timespan(DurationNanosecondBuilder),
}

/// Builds one column of a KQL type from text values.
pub struct ColumnBuilder {
    ty: KqlType,
    inner: Inner,
}

impl ColumnBuilder {
    pub fn new(ty: KqlType, capacity: usize) -> Self {
        let inner = match ty {
            KqlType::Bool => Inner::Bool(BooleanBuilder::with_capacity(capacity)),
            KqlType::Int => Inner::Int(Int32Builder::with_capacity(capacity)),
            KqlType::Long => Inner::Long(Int64Builder::with_capacity(capacity)),
            KqlType::Real => Inner::Real(Float64Builder::with_capacity(capacity)),
            KqlType::Decimal => Inner::Decimal(Decimal128Builder::with_capacity(capacity)),
            KqlType::String | KqlType::Guid | KqlType::Dynamic => {
                Inner::Str(StringBuilder::with_capacity(capacity, capacity * 8))
            }
            KqlType::Datetime => Inner::Datetime(TimestampNanosecondBuilder::with_capacity(capacity)),
            KqlType::Timespan => Inner::Timespan(DurationNanosecondBuilder::with_capacity(capacity)),
        };
        ColumnBuilder { ty, inner }
    }

    pub fn append_null(&mut self) {
        match &mut self.inner {
            Inner::Bool(b) => b.append_null(),
            Inner::Int(b) => b.append_null(),
            Inner::Long(b) => b.append_null(),
            Inner::Real(b) => b.append_null(),
            Inner::Decimal(b) => b.append_null(),
            Inner::Str(b) => b.append_null(),
            Inner::Datetime(b) => b.append_null(),
            Inner::Timespan(b) => b.append_null(),
        }
    }

    /// Appends a value given as text (a CSV field): empty text is `""` for `string` and null
    /// for every other type; text that does not convert is null. Returns false when the value
    /// was stored as null because it did not convert (so the caller can count it).
    pub fn append_text(&mut self, s: &str) -> bool {
        if self.ty != KqlType::String && s.trim().is_empty() {
            self.append_null();
            return true;
        }
        // Appends a converted value (None: null) and tells whether there was one.
        macro_rules! put {
            ($b:expr, $v:expr) => {{
                let v = $v;
                let ok = v.is_some();
                $b.append_option(v);
                ok
            }};
        }
        match &mut self.inner {
            Inner::Bool(b) => put!(b, convert::parse_bool(s)),
            Inner::Int(b) => put!(b, convert::parse_int(s)),
            Inner::Long(b) => put!(b, convert::parse_long(s)),
            Inner::Real(b) => put!(b, convert::parse_real(s)),
            Inner::Decimal(b) => put!(b, convert::parse_decimal(s, DECIMAL_PRECISION, DECIMAL_SCALE)),
            Inner::Datetime(b) => put!(b, convert::parse_datetime(s)),
            Inner::Timespan(b) => put!(b, convert::parse_timespan(s)),
            Inner::Str(b) => match self.ty {
                KqlType::Guid => put!(b, convert::parse_guid(s)),
                // Any text is a dynamic value (a JSON string when it is not JSON); only blank
                // text and `null` are null, and those are not conversion failures.
                KqlType::Dynamic => {
                    b.append_option(convert::to_dynamic(s));
                    true
                }
                _ => {
                    b.append_value(s);
                    true
                }
            },
        }
    }

    /// Appends a JSON value given as its raw text (from a JSON record): JSON strings convert
    /// like CSV text; other values convert from their JSON text; `dynamic` keeps the value.
    /// Returns false when the value was stored as null because it did not convert.
    pub fn append_json(&mut self, raw: &str) -> bool {
        let raw = raw.trim();
        if raw == "null" {
            self.append_null();
            return true;
        }
        if self.ty == KqlType::Dynamic {
            if let Inner::Str(b) = &mut self.inner {
                b.append_value(convert::minify_json(raw));
            }
            return true;
        }
        if raw.starts_with('"') {
            match serde_json::from_str::<String>(raw) {
                Ok(s) => self.append_text(&s),
                Err(_) => {
                    self.append_null();
                    false
                }
            }
        } else if self.ty == KqlType::String {
            if let Inner::Str(b) = &mut self.inner {
                b.append_value(convert::minify_json(raw));
            }
            true
        } else {
            self.append_text(raw)
        }
    }

    pub fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match &mut self.inner {
            Inner::Bool(b) => Arc::new(b.finish()),
            Inner::Int(b) => Arc::new(b.finish()),
            Inner::Long(b) => Arc::new(b.finish()),
            Inner::Real(b) => Arc::new(b.finish()),
            Inner::Decimal(b) => Arc::new(
                b.finish()
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                    .map_err(|e| RuntimeError::Internal(format!("decimal column: {e}")))?,
            ),
            Inner::Str(b) => Arc::new(b.finish()),
            Inner::Datetime(b) => Arc::new(b.finish()),
            Inner::Timespan(b) => Arc::new(b.finish()),
        })
    }
}

/// Accumulates rows for a table schema and emits batches of [`BATCH_ROWS`] rows.
pub struct BatchBuilder {
    schema: SchemaRef,
    pub columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: &KqlSchema) -> Self {
        BatchBuilder {
            schema: schema.arrow_schema(),
            columns: schema.columns.iter().map(|c| ColumnBuilder::new(c.ty, BATCH_ROWS)).collect(),
            rows: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Marks the end of a row whose columns were all appended; true when a batch is full.
    pub fn end_row(&mut self) -> bool {
        self.rows += 1;
        self.rows >= BATCH_ROWS
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The accumulated rows as a batch (None if there are none); the builder is reset.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| RuntimeError::Internal(format!("building ingested batch: {e}")))?;
        self.rows = 0;
        Ok(Some(batch))
    }
}
