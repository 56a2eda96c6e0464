//! The merge of `getschema` tables done by the `schema_merge` plugin: a list of
//! `[row number, ColumnName, ColumnOrdinal, DataType, ColumnType]` rows, taken in row-number
//! order, schema after schema (a schema starts where the ordinal goes back to 0), merged into
//! one schema as `getschema` rows.
//!
//! As the plugin's reference shows: with `PreserveOrder` (the default) columns keep the order in
//! which they first appear, and a column met again at another ordinal than its first is an
//! error row (ordinal -1, last); without it, columns take the order of the last schema that has
//! them. Ordinals are numbered anew. A column met with another type takes the common type when
//! there is one (`int` and `long` give `long`, numbers and `real` give `real`), else it is an
//! error row too.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, lit};
use serde_json::Value as Json;

use super::TypedExpr;
use super::json::{array_of, out};
use super::udf::{RowState, row_call, sv_bool};
use crate::types::KqlType;

struct Col {
    name: String,
    /// Its ordinal in the first schema that had it.
    first_ordinal: i64,
    /// Its ordinal in the last schema that had it.
    last_ordinal: i64,
    /// Which schema had it last.
    last_schema: usize,
    column_type: String,
    data_type: String,
    error: Option<String>,
}

/// The common type of two column types, with its .NET type name.
fn common(a: &str, b: &str) -> Option<(&'static str, &'static str)> {
    let rank = |t: &str| match t {
        "int" => Some(0),
        "long" => Some(1),
        "real" => Some(2),
        _ => None,
    };
    let r = rank(a)?.max(rank(b)?);
    Some(match r {
        0 => ("int", "System.Int32"),
        1 => ("long", "System.Int64"),
        _ => ("real", "System.Double"),
    })
}

fn merge_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let Some(mut rows) = a.first().and_then(array_of) else { return out(None) };
    rows.sort_by_key(|r| r.get(0).and_then(Json::as_i64).unwrap_or(i64::MAX));
    let preserve = a.get(1).and_then(sv_bool).unwrap_or(true);
    let mut cols: Vec<Col> = Vec::new();
    let mut schema = 0usize;
    let mut prev_ordinal = i64::MAX;
    for r in &rows {
        let Some([_, name, ordinal, data_type, column_type]) = r.as_array().and_then(|v| <&[Json; 5]>::try_from(v.as_slice()).ok()) else {
            return out(None);
        };
        let (Some(name), Some(ordinal), Some(data_type), Some(column_type)) = (name.as_str(), ordinal.as_i64(), data_type.as_str(), column_type.as_str())
        else {
            return out(None);
        };
        if ordinal <= prev_ordinal && ordinal == 0 {
            schema += 1;
        }
        prev_ordinal = ordinal;
        match cols.iter_mut().find(|c| c.name == name) {
            None => cols.push(Col {
                name: name.to_string(),
                first_ordinal: ordinal,
                last_ordinal: ordinal,
                last_schema: schema,
                column_type: column_type.to_string(),
                data_type: data_type.to_string(),
                error: None,
            }),
            Some(c) => {
                c.last_ordinal = ordinal;
                c.last_schema = schema;
                if preserve && ordinal != c.first_ordinal && c.error.is_none() {
                    c.error = Some("columns are out of order".to_string());
                }
                if c.column_type != column_type && c.error.is_none() {
                    match common(&c.column_type, column_type) {
                        Some((t, d)) => {
                            c.column_type = t.to_string();
                            c.data_type = d.to_string();
                        }
                        None => c.error = Some(format!("types {} and {column_type} cannot be reduced", c.column_type)),
                    }
                }
            }
        }
    }
    if !preserve {
        // The order of the last schema, then the columns only older schemas have.
        cols.sort_by_key(|c| (std::cmp::Reverse(c.last_schema), c.last_ordinal));
    }
    let (good, bad): (Vec<&Col>, Vec<&Col>) = cols.iter().partition(|c| c.error.is_none());
    let mut merged: Vec<Json> = good
        .iter()
        .enumerate()
        .map(|(i, c)| Json::Array(vec![Json::from(c.name.clone()), Json::from(i as i64), Json::from(c.data_type.clone()), Json::from(c.column_type.clone())]))
        .collect();
    merged.extend(bad.iter().map(|c| {
        let e = c.error.clone().unwrap_or_default();
        Json::Array(vec![
            Json::from(c.name.clone()),
            Json::from(-1),
            Json::from(format!("ERROR(unknown CSL type:ERROR({e}))")),
            Json::from(format!("ERROR({e})")),
        ])
    }));
    out(Some(Json::Array(merged)))
}

/// The merged schema of a list of `getschema` rows, as a list of rows.
pub(crate) fn schema_merge_call(rows: Expr, preserve_order: bool) -> TypedExpr {
    let e = row_call("schema_merge", KqlType::Dynamic.arrow_type(), merge_row, vec![rows, lit(preserve_order)]);
    TypedExpr::new(e, KqlType::Dynamic)
}
