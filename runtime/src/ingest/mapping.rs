//! Ingestion mappings: which source field fills which table column.
//!
//! Kusto's mapping is a JSON array of `{"column": C, "Properties": {...}}` (older forms put the
//! properties at the top level: `{"Name": C, "Ordinal": "0"}`, `{"column": C, "path": "$.x"}`).
//! A delimited mapping picks fields by `Ordinal`; a JSON mapping by `Path` (`$.name` or
//! `$['name']`); either may set a column to a `ConstValue`. Columns the mapping does not name
//! are null.
//!
//! A mapping is applied around the readers, which stay as they are: the source is read against
//! a schema the mapping derives from the table's (for a delimited source, one column per
//! ordinal, of the type of the column it fills; for JSON, one column per path), and each batch
//! read is then projected onto the table's columns.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use kustodian_planner::{KqlColumn, KqlSchema, KqlType};

use crate::error::{Result, RuntimeError};

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The field at this position of a delimited record.
    Ordinal(usize),
    /// The top-level property of a JSON record.
    Property(String),
    /// A constant (its text, converted to the column's type).
    Const(String),
}

/// A parsed mapping: for each table column it names, where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    columns: Vec<(String, Source)>,
}

fn bad(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::bad_request(msg.into())
}

/// A JSON path of one property: `$.name`, `$['name']`, `$["name"]`.
fn property_of(path: &str) -> Result<String> {
    let p = path.trim();
    let rest = p.strip_prefix('$').ok_or_else(|| bad(format!("mapping path '{path}' does not start with '$'")))?;
    let name = if let Some(n) = rest.strip_prefix('.') {
        n.to_string()
    } else if let Some(n) = rest.strip_prefix("['").and_then(|n| n.strip_suffix("']")) {
        n.to_string()
    } else if let Some(n) = rest.strip_prefix("[\"").and_then(|n| n.strip_suffix("\"]")) {
        n.to_string()
    } else {
        return Err(bad(format!("mapping path '{path}' is not supported: a path names one top-level property ($.name)")));
    };
    if name.is_empty() || name.contains(['.', '[', ']']) {
        return Err(bad(format!("mapping path '{path}' is not supported: nested paths are not, only one top-level property ($.name)")));
    }
    Ok(name)
}

fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Mapping {
    /// Parses a mapping of `kind` (`csv`, `tsv`, `psv`, ..., `json`, `multijson`) for a table.
    pub fn parse(kind: &str, text: &str, schema: &KqlSchema) -> Result<Mapping> {
        let json = matches!(kind.to_ascii_lowercase().as_str(), "json" | "multijson");
        let delimited = matches!(kind.to_ascii_lowercase().as_str(), "csv" | "tsv" | "tsve" | "psv" | "scsv" | "sohsv" | "txt");
        if !json && !delimited {
            return Err(bad(format!("ingestion mappings of kind '{kind}' are not supported (csv-like and json are)")));
        }
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("the ingestion mapping is not valid JSON: {e}")))?;
        let items = v.as_array().ok_or_else(|| bad("an ingestion mapping is a JSON array"))?;
        let mut columns = Vec::new();
        for item in items {
            let obj = item.as_object().ok_or_else(|| bad("each entry of an ingestion mapping is a JSON object"))?;
            let get = |k: &str| obj.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v);
            let props = get("Properties").and_then(|p| p.as_object());
            let prop = |k: &str| props.and_then(|p| p.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v)).or_else(|| get(k));
            let column = get("column").or_else(|| get("Name")).and_then(|c| c.as_str()).ok_or_else(|| bad("an ingestion mapping entry names its column ('column')"))?;
            if schema.get(column).is_none() {
                return Err(bad(format!("the ingestion mapping names column '{column}', which the table does not have")));
            }
            if columns.iter().any(|(c, _)| c == column) {
                return Err(bad(format!("the ingestion mapping names column '{column}' twice")));
            }
            if prop("Transform").is_some() {
                return Err(bad(format!("the transformation of mapped column '{column}' is not supported")));
            }
            let source = if let Some(c) = prop("ConstValue").and_then(text_of) {
                Source::Const(c)
            } else if delimited {
                let ordinal = prop("Ordinal").and_then(text_of).ok_or_else(|| bad(format!("mapped column '{column}' has no Ordinal")))?;
                Source::Ordinal(ordinal.trim().parse().map_err(|_| bad(format!("the Ordinal '{ordinal}' of mapped column '{column}' is not a number")))?)
            } else {
                let path = prop("Path").and_then(|p| p.as_str()).ok_or_else(|| bad(format!("mapped column '{column}' has no Path")))?;
                Source::Property(property_of(path)?)
            };
            columns.push((column.to_string(), source));
        }
        if columns.is_empty() {
            return Err(bad("an ingestion mapping maps at least one column"));
        }
        Ok(Mapping { columns })
    }

    /// The schema the source is read against.
    pub fn source_schema(&self, table: &KqlSchema) -> KqlSchema {
        let ty = |c: &str| table.get(c).map(|x| x.ty).unwrap_or(KqlType::String);
        let ordinals: Vec<(usize, KqlType)> =
            self.columns.iter().filter_map(|(c, s)| if let Source::Ordinal(i) = s { Some((*i, ty(c))) } else { None }).collect();
        if let Some(width) = ordinals.iter().map(|(i, _)| i + 1).max() {
            // Fields no column takes are read as strings (never fail) and dropped.
            let cols = (0..width)
                .map(|i| KqlColumn::new(format!("Field{i}"), ordinals.iter().find(|(o, _)| *o == i).map_or(KqlType::String, |(_, t)| *t)))
                .collect();
            return KqlSchema::new(cols);
        }
        let mut cols: Vec<KqlColumn> = Vec::new();
        for (c, s) in &self.columns {
            if let Source::Property(p) = s
                && !cols.iter().any(|x| &x.name == p)
            {
                cols.push(KqlColumn::new(p.clone(), ty(c)));
            }
        }
        KqlSchema::new(cols)
    }

    /// A batch read against [`Mapping::source_schema`] as the table's columns.
    pub fn project(&self, batch: &RecordBatch, table: &KqlSchema) -> Result<RecordBatch> {
        let arrow = table.arrow_schema();
        let n = batch.num_rows();
        let source = batch.schema();
        let mut out: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
        for (col, field) in table.columns.iter().zip(arrow.fields()) {
            let array = match self.columns.iter().find(|(c, _)| c == &col.name).map(|(_, s)| s) {
                None => new_null_array(field.data_type(), n),
                Some(Source::Ordinal(i)) => Arc::clone(batch.column(*i)),
                Some(Source::Property(p)) => {
                    let i = source.index_of(p).map_err(|e| RuntimeError::Internal(format!("mapped property '{p}': {e}")))?;
                    Arc::clone(batch.column(i))
                }
                Some(Source::Const(text)) => {
                    let mut b = super::builder::ColumnBuilder::new(col.ty, 1);
                    if !b.append_text(text) {
                        return Err(bad(format!("the ConstValue '{text}' of mapped column '{}' is not a {}", col.name, col.ty)));
                    }
                    let one = b.finish()?;
                    let idx = datafusion::arrow::array::UInt32Array::from(vec![0u32; n]);
                    datafusion::arrow::compute::take(one.as_ref(), &idx, None)?
                }
            };
            out.push(array);
        }
        Ok(RecordBatch::try_new(arrow, out)?)
    }
}
