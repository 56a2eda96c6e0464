//! Kusto's REST result bodies: the v2 frame array (`/v2/rest/query`) written table by table as
//! batches arrive, and the v1 `{"Tables": [...]}` body (`/v1/rest/mgmt`, `/v1/rest/query`).
//!
//! Keys are written in the service's order (`FrameType`, `TableId`, `TableKind`, `TableName`,
//! `Columns`, `Rows`): the official clients' streaming readers depend on it.

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::KqlType;
use serde_json::{Value, json};

use crate::encoding::json_value;

/// Kusto's CLR type name of a KQL type, the `DataType` of a v1 column.
pub fn clr_type(ty: KqlType) -> &'static str {
    match ty {
        KqlType::Bool => "Boolean",
        KqlType::Int => "Int32",
        KqlType::Long => "Int64",
        KqlType::Real => "Double",
        KqlType::Decimal => "Decimal",
        KqlType::String => "String",
        KqlType::Datetime => "DateTime",
        KqlType::Timespan => "TimeSpan",
        KqlType::Guid => "Guid",
        KqlType::Dynamic => "Object",
    }
}

/// The `Columns` array of a v2 table.
pub fn v2_columns(cols: &[(String, KqlType)]) -> Value {
    Value::Array(cols.iter().map(|(n, t)| json!({"ColumnName": n, "ColumnType": t.name()})).collect())
}

/// The `Columns` array of a v1 table.
pub fn v1_columns(cols: &[(String, KqlType)]) -> Value {
    Value::Array(cols.iter().map(|(n, t)| json!({"ColumnName": n, "DataType": clr_type(*t), "ColumnType": t.name()})).collect())
}

/// One row of a batch as v2 values (dynamic values embedded as JSON).
pub fn v2_row(batch: &RecordBatch, types: &[KqlType], row: usize) -> Value {
    Value::Array(batch.columns().iter().zip(types).map(|(a, t)| json_value(a.as_ref(), row, *t)).collect())
}

/// One row of a batch as v1 values: as v2, but dynamic values are JSON-encoded strings.
pub fn v1_row(batch: &RecordBatch, types: &[KqlType], row: usize) -> Value {
    Value::Array(
        batch
            .columns()
            .iter()
            .zip(types)
            .map(|(a, t)| match (json_value(a.as_ref(), row, *t), t) {
                (Value::Null, _) => Value::Null,
                (v, KqlType::Dynamic) => Value::String(v.to_string()),
                (v, _) => v,
            })
            .collect(),
    )
}

/// The opening of a v2 response: `[` and the `DataSetHeader` frame.
pub fn v2_header() -> String {
    let h = json!({
        "FrameType": "DataSetHeader",
        "IsProgressive": false,
        "Version": "v2.0",
        "IsFragmented": false,
        "ErrorReportingPlacement": "EndOfTable",
    });
    format!("[{h}")
}

/// The `@ExtendedProperties` table (TableId 0): the visualization Kusto reports for a query
/// without `render`.
pub fn v2_query_properties() -> String {
    let visualization = json!({
        "Visualization": null, "Title": null, "XColumn": null, "Series": null, "YColumns": null,
        "AnomalyColumns": null, "XTitle": null, "YTitle": null, "XAxis": null, "YAxis": null,
        "Legend": null, "YSplit": null, "Accumulate": false, "IsQuerySorted": false, "Kind": null,
        "Ymin": "NaN", "Ymax": "NaN", "Xmin": null, "Xmax": null,
    });
    let cols = v2_columns(&[("TableId".into(), KqlType::Int), ("Key".into(), KqlType::String), ("Value".into(), KqlType::Dynamic)]);
    let rows = json!([[1, "Visualization", visualization]]);
    format!(
        ",\n{{\"FrameType\":\"DataTable\",\"TableId\":0,\"TableKind\":\"QueryProperties\",\"TableName\":\"@ExtendedProperties\",\"Columns\":{cols},\"Rows\":{rows}}}"
    )
}

/// The start of the primary result table, up to and including `"Rows":[`.
pub fn v2_primary_start(cols: &[(String, KqlType)]) -> String {
    format!(
        ",\n{{\"FrameType\":\"DataTable\",\"TableId\":1,\"TableKind\":\"PrimaryResult\",\"TableName\":\"PrimaryResult\",\"Columns\":{},\"Rows\":[",
        v2_columns(cols)
    )
}

/// The end of the primary result table: an error found while rows were streaming out is a row
/// that is an object `{"OneApiErrors": [...]}`, as the service writes it.
pub fn v2_primary_end(error: Option<&Value>, any_rows: bool) -> String {
    match error {
        Some(e) => format!("{}{}]}}", if any_rows { ",\n" } else { "\n" }, json!({"OneApiErrors": [e]})),
        None => "]}".to_string(),
    }
}

/// One row of QueryCompletionInformation.
pub struct Completion<'a> {
    pub timestamp: String,
    pub client_request_id: &'a str,
    pub activity_id: &'a str,
    /// .NET `EventLevel`: 2 Error, 3 Warning, 4 Informational.
    pub level: i32,
    pub status_code: i64,
    pub status_name: &'a str,
    pub event_type: i32,
    pub event_name: &'a str,
    pub payload: Value,
}

/// The QueryCompletionInformation table (TableId 2).
pub fn v2_completion_table(rows: &[Completion<'_>]) -> String {
    let cols = v2_columns(&[
        ("Timestamp".into(), KqlType::Datetime),
        ("ClientRequestId".into(), KqlType::String),
        ("ActivityId".into(), KqlType::Guid),
        ("SubActivityId".into(), KqlType::Guid),
        ("ParentActivityId".into(), KqlType::Guid),
        ("Level".into(), KqlType::Int),
        ("LevelName".into(), KqlType::String),
        ("StatusCode".into(), KqlType::Int),
        ("StatusCodeName".into(), KqlType::String),
        ("EventType".into(), KqlType::Int),
        ("EventTypeName".into(), KqlType::String),
        ("Payload".into(), KqlType::String),
    ]);
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let level_name = match r.level {
                1 => "Critical",
                2 => "Error",
                3 => "Warning",
                _ => "Info",
            };
            json!([
                r.timestamp, r.client_request_id, r.activity_id, r.activity_id, r.activity_id, r.level, level_name,
                r.status_code, r.status_name, r.event_type, r.event_name, r.payload.to_string(),
            ])
        })
        .collect();
    format!(
        ",\n{{\"FrameType\":\"DataTable\",\"TableId\":2,\"TableKind\":\"QueryCompletionInformation\",\"TableName\":\"QueryCompletionInformation\",\"Columns\":{cols},\"Rows\":{}}}",
        Value::Array(rows)
    )
}

/// The closing `DataSetCompletion` frame and `]`.
pub fn v2_completion(errors: &[Value], cancelled: bool) -> String {
    let mut c = serde_json::Map::new();
    c.insert("FrameType".into(), "DataSetCompletion".into());
    c.insert("HasErrors".into(), (!errors.is_empty()).into());
    c.insert("Cancelled".into(), cancelled.into());
    if !errors.is_empty() {
        c.insert("OneApiErrors".into(), Value::Array(errors.to_vec()));
    }
    format!(",\n{}\n]", Value::Object(c))
}

/// A v1 table.
pub fn v1_table(name: &str, cols: &[(String, KqlType)], rows: Vec<Value>) -> Value {
    json!({"TableName": name, "Columns": v1_columns(cols), "Rows": rows})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn v2_frames_parse_as_one_json_array() {
        let cols = vec![("x".to_string(), KqlType::Long)];
        let mut body = v2_header();
        body.push_str(&v2_query_properties());
        body.push_str(&v2_primary_start(&cols));
        body.push_str("\n[1],\n[2]");
        body.push_str(&v2_primary_end(None, true));
        body.push_str(&v2_completion_table(&[Completion {
            timestamp: "2026-01-01T00:00:00.0000000Z".into(),
            client_request_id: "c",
            activity_id: "a",
            level: 4,
            status_code: 0,
            status_name: "S_OK (0)",
            event_type: 4,
            event_name: "QueryInfo",
            payload: json!({"Count": 1, "Text": "Query completed successfully"}),
        }]));
        body.push_str(&v2_completion(&[], false));
        let v: Value = serde_json::from_str(&body).unwrap();
        let frames = v.as_array().unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[2]["Rows"], json!([[1], [2]]));
        assert_eq!(frames[4]["HasErrors"], json!(false));
        // Key order the streaming clients need.
        let primary = body.find("\"TableKind\":\"PrimaryResult\"").unwrap();
        assert!(body[primary..].find("\"TableName\"").unwrap() < body[primary..].find("\"Columns\"").unwrap());
        assert!(body[primary..].find("\"Columns\"").unwrap() < body[primary..].find("\"Rows\"").unwrap());
    }

    #[test]
    fn an_error_mid_stream_is_a_row_object() {
        let cols = vec![("x".to_string(), KqlType::Long)];
        let e = json!({"error": {"code": "LimitsExceeded"}});
        let mut body = v2_header();
        body.push_str(&v2_primary_start(&cols));
        body.push_str("\n[1]");
        body.push_str(&v2_primary_end(Some(&e), true));
        body.push_str(&v2_completion(std::slice::from_ref(&e), false));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[1]["Rows"][1], json!({"OneApiErrors": [e]}));
        assert_eq!(v[2]["HasErrors"], json!(true));
        assert_eq!(v[2]["OneApiErrors"][0], e);
    }
}
