//! What an ingestion did: rows, values that did not convert (stored as null, as Kusto does,
//! but counted), records ignored under a best-effort validation policy; and the result table
//! of the ingestion commands.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, BooleanArray, DurationNanosecondArray, Int64Array, RecordBatch, StringArray};
use kustodian_planner::types::{KqlColumn, KqlSchema, KqlType};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::output::QueryOutput;

/// How many examples of each kind of problem a summary keeps (the counts are exact).
pub const MAX_EXAMPLES: usize = 10;
/// Values quoted in examples are cut to this many characters.
pub const MAX_VALUE_CHARS: usize = 100;

/// A value that did not convert to its column's type and was stored as null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConversionFailure {
    /// The source (path as given, or `inline`).
    pub source: String,
    /// 1-based number of the record in the source (for delimited data, counting a header
    /// skipped with `ignoreFirstRecord`; for Parquet, the row).
    pub record: u64,
    /// 1-based line where the record starts (delimited data only).
    pub line: Option<u64>,
    pub column: String,
    /// The column's KQL type.
    pub column_type: String,
    /// The value as it was in the source, cut to [`MAX_VALUE_CHARS`] characters.
    pub value: String,
}

/// A delimited record with the wrong number of fields, ingested anyway because the
/// validation policy said `BestEffort` (its fields map by position: missing ones are null,
/// extra ones dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MalformedRecord {
    pub source: String,
    pub record: u64,
    pub line: u64,
    pub fields: u64,
    pub expected_fields: u64,
}

/// One source of an ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngestedItem {
    pub source: String,
    /// The format read: the declared one, or the one detected from the content.
    pub format: String,
    pub rows: u64,
}

/// The outcome of a successful ingestion (a failed one returns an error and ingests nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngestSummary {
    /// Rows ingested.
    pub rows: u64,
    /// The sources read, in order.
    pub items: Vec<IngestedItem>,
    /// How many values did not convert to their column's type (each stored as null).
    pub failure_count: u64,
    /// The first [`MAX_EXAMPLES`] of them.
    pub conversion_failures: Vec<ConversionFailure>,
    /// How many records had the wrong number of fields and were ingested under `BestEffort`.
    pub malformed_count: u64,
    /// The first [`MAX_EXAMPLES`] of them.
    pub malformed_records: Vec<MalformedRecord>,
}

impl IngestSummary {
    pub(crate) fn for_source(source: &str) -> IngestSummary {
        IngestSummary { items: vec![IngestedItem { source: source.to_string(), format: String::new(), rows: 0 }], ..Default::default() }
    }

    fn source(&self) -> String {
        self.items.last().map(|i| i.source.clone()).unwrap_or_default()
    }

    /// Records a value of `column` in `record` that did not convert.
    pub(crate) fn conversion_failure(&mut self, record: u64, line: Option<u64>, column: &KqlColumn, value: &str) {
        self.failure_count += 1;
        if self.conversion_failures.len() < MAX_EXAMPLES {
            let source = self.source();
            self.conversion_failures.push(ConversionFailure {
                source,
                record,
                line,
                column: column.name.clone(),
                column_type: column.ty.name().to_string(),
                value: cut(value),
            });
        }
    }

    pub(crate) fn malformed(&mut self, record: u64, line: u64, fields: usize, expected: usize) {
        self.malformed_count += 1;
        if self.malformed_records.len() < MAX_EXAMPLES {
            let source = self.source();
            self.malformed_records.push(MalformedRecord {
                source,
                record,
                line,
                fields: fields as u64,
                expected_fields: expected as u64,
            });
        }
    }

    pub(crate) fn finish_source(&mut self, format: &str, rows: u64) {
        self.rows += rows;
        if let Some(item) = self.items.last_mut() {
            item.format = format.to_string();
            item.rows = rows;
        }
    }

    /// Adds the summary of a further source of the same command.
    pub fn merge(&mut self, other: IngestSummary) {
        self.rows += other.rows;
        self.items.extend(other.items);
        self.failure_count += other.failure_count;
        let room = MAX_EXAMPLES.saturating_sub(self.conversion_failures.len());
        self.conversion_failures.extend(other.conversion_failures.into_iter().take(room));
        self.malformed_count += other.malformed_count;
        let room = MAX_EXAMPLES.saturating_sub(self.malformed_records.len());
        self.malformed_records.extend(other.malformed_records.into_iter().take(room));
    }

    /// The examples as a JSON array (the `FailureDetails` column of the command result).
    pub fn details_json(&self) -> String {
        let mut out: Vec<serde_json::Value> = Vec::new();
        for f in &self.conversion_failures {
            out.push(serde_json::json!({
                "Kind": "ConversionFailure",
                "Source": f.source,
                "Record": f.record,
                "Line": f.line,
                "Column": f.column,
                "ColumnType": f.column_type,
                "Value": f.value,
            }));
        }
        for m in &self.malformed_records {
            out.push(serde_json::json!({
                "Kind": "WrongNumberOfFields",
                "Source": m.source,
                "Record": m.record,
                "Line": m.line,
                "Fields": m.fields,
                "ExpectedFields": m.expected_fields,
            }));
        }
        serde_json::Value::Array(out).to_string()
    }
}

/// `value` cut to [`MAX_VALUE_CHARS`] characters (with `...` when cut).
pub(crate) fn cut(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}...", &value[..at]),
        None => value.to_string(),
    }
}

/// The empty extent id Kusto returns when an ingestion produced no extent.
pub const EMPTY_EXTENT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The result of an ingestion command, from the table the commit returned (`ExtentId`,
/// `RowCount`, one row per new extent): those columns first, then Kusto's `.ingest into`
/// result columns `ItemLoaded` (the sources), `Duration`, `HasErrors` (false: a failed
/// ingestion returns an error) and `OperationId`, then ours: `ConversionFailures` (values
/// stored as null because they did not convert), `MalformedRecords` (records with the wrong
/// number of fields ingested under a `BestEffort` validation policy) and `FailureDetails` (a
/// JSON array of the first examples of both). With no new extent there is one row with the
/// empty extent id and 0 rows, as in Kusto.
pub fn command_result(committed: QueryOutput, summary: &IngestSummary, elapsed: Duration) -> Result<QueryOutput> {
    let mut columns = committed.schema.columns.clone();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut rows = 0;
    let batch = committed.batches.into_iter().find(|b| b.num_rows() > 0);
    match batch {
        Some(b) => {
            rows = b.num_rows();
            arrays.extend(b.columns().iter().cloned());
        }
        None => {
            for c in &columns {
                rows = 1;
                arrays.push(match c.ty {
                    KqlType::Long => Arc::new(Int64Array::from(vec![0i64])) as ArrayRef,
                    _ => Arc::new(StringArray::from(vec![EMPTY_EXTENT_ID])) as ArrayRef,
                });
            }
        }
    }
    let items = summary.items.iter().map(|i| i.source.as_str()).collect::<Vec<_>>().join(", ");
    let nanos = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
    let operation = uuid::Uuid::new_v4().to_string();
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let added: [(&str, KqlType, ArrayRef); 7] = [
        ("ItemLoaded", KqlType::String, Arc::new(StringArray::from(vec![items.as_str(); rows]))),
        ("Duration", KqlType::Timespan, Arc::new(DurationNanosecondArray::from(vec![nanos; rows]))),
        ("HasErrors", KqlType::Bool, Arc::new(BooleanArray::from(vec![false; rows]))),
        ("OperationId", KqlType::Guid, Arc::new(StringArray::from(vec![operation.as_str(); rows]))),
        ("ConversionFailures", KqlType::Long, Arc::new(Int64Array::from(vec![to_i64(summary.failure_count); rows]))),
        ("MalformedRecords", KqlType::Long, Arc::new(Int64Array::from(vec![to_i64(summary.malformed_count); rows]))),
        ("FailureDetails", KqlType::Dynamic, Arc::new(StringArray::from(vec![summary.details_json(); rows]))),
    ];
    for (name, ty, array) in added {
        columns.push(KqlColumn::new(name, ty));
        arrays.push(array);
    }
    let schema = KqlSchema::new(columns);
    let batch = RecordBatch::try_new(schema.arrow_schema(), arrays)
        .map_err(|e| RuntimeError::Internal(format!("building the ingestion result: {e}")))?;
    Ok(QueryOutput { schema, batches: vec![batch] })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_on_character_boundaries() {
        assert_eq!(cut("abc"), "abc");
        let long = "é".repeat(150);
        let c = cut(&long);
        assert_eq!(c.chars().count(), MAX_VALUE_CHARS + 3);
        assert!(c.ends_with("..."));
    }

    #[test]
    fn counts_are_exact_and_examples_bounded() {
        let col = KqlColumn::new("n", KqlType::Long);
        let mut s = IngestSummary::for_source("a.csv");
        for r in 0..25 {
            s.conversion_failure(r + 1, Some(r + 1), &col, "x");
        }
        let mut t = IngestSummary::for_source("b.csv");
        t.conversion_failure(1, None, &col, "y");
        s.merge(t);
        assert_eq!(s.failure_count, 26);
        assert_eq!(s.conversion_failures.len(), MAX_EXAMPLES);
        assert_eq!(s.items.len(), 2);
    }
}
