//! Result rendering for `run`, `shell` and `explain`: pretty tables, CSV and JSON lines.

use std::time::Duration;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use kustodian_planner::KqlType;
use datafusion::arrow::record_batch::RecordBatch;
use kustodian_runtime::encoding::{json_value, text_value};
use kustodian_runtime::{Explanation, QueryOutput};
use serde_json::{Value, json};

use super::report::Failure;

/// The result's columns, from the engine's encoding (also used by the streaming printer).
pub use kustodian_runtime::encoding::columns;

fn output_columns(output: &QueryOutput) -> Vec<(String, KqlType)> {
    columns(&output.schema, output.batches.first())
}

/// Calls `encode` for every cell of a batch, row by row.
fn rows<T>(
    batch: &RecordBatch,
    types: &[KqlType],
    encode: impl Fn(&dyn datafusion::arrow::array::Array, usize, KqlType) -> T,
) -> Vec<Vec<T>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .enumerate()
                .map(|(i, array)| {
                    encode(
                        array.as_ref(),
                        row,
                        types.get(i).copied().unwrap_or(KqlType::String),
                    )
                })
                .collect()
        })
        .collect()
}

/// A pretty table with a header row; numbers right-aligned. Ends with a newline.
pub fn table(output: &QueryOutput) -> String {
    let (cols, rows) = text_rows(output);
    table_of(&cols, rows)
}

/// A result's columns and its rows, each value in Kusto's text form.
pub fn text_rows(output: &QueryOutput) -> (Vec<(String, KqlType)>, Vec<Vec<String>>) {
    let cols = output_columns(output);
    let types: Vec<KqlType> = cols.iter().map(|c| c.1).collect();
    let rows = output.batches.iter().flat_map(|b| rows(b, &types, text_value)).collect();
    (cols, rows)
}

/// A pretty table of `rows` under a header of `cols`; numbers right-aligned. Ends with a
/// newline.
pub fn table_of(cols: &[(String, KqlType)], rows: Vec<Vec<String>>) -> String {
    let types: Vec<KqlType> = cols.iter().map(|c| c.1).collect();
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(cols.iter().map(|(name, _)| Cell::new(name)).collect::<Vec<_>>());
    for row in rows {
        table.add_row(
            row.into_iter()
                .zip(&types)
                .map(|(text, ty)| {
                    let cell = Cell::new(text);
                    if ty.is_numeric() { cell.set_alignment(CellAlignment::Right) } else { cell }
                })
                .collect::<Vec<_>>(),
        );
    }
    format!("{table}\n")
}

/// RFC 4180 CSV: a header line, then one line per row (`\n` line ends). Ends with a newline.
pub fn csv(output: &QueryOutput) -> String {
    let cols = output_columns(output);
    let types = types_of(&cols);
    let mut out = csv_header(&cols);
    for batch in &output.batches {
        out.push_str(&csv_rows(batch, &types));
    }
    out
}

pub fn types_of(cols: &[(String, KqlType)]) -> Vec<KqlType> {
    cols.iter().map(|c| c.1).collect()
}

/// The CSV header line.
pub fn csv_header(cols: &[(String, KqlType)]) -> String {
    csv_line(cols.iter().map(|(name, _)| name.as_str()))
}

/// The CSV lines of one batch.
pub fn csv_rows(batch: &RecordBatch, types: &[KqlType]) -> String {
    let mut out = String::new();
    for row in rows(batch, types, text_value) {
        out.push_str(&csv_line(row.iter().map(String::as_str)));
    }
    out
}

fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let fields: Vec<String> = fields
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect();
    format!("{}\n", fields.join(","))
}

fn elapsed_ms(elapsed: Duration) -> Value {
    // Microsecond precision is plenty, and keeps the number short.
    json!((elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// `{"columns":[{"name":..,"type":..}],"rows":[[..]]}` plus `"elapsed_ms"` when timed; one line.
pub fn json_result(output: &QueryOutput, elapsed: Option<Duration>) -> String {
    let cols = output_columns(output);
    let types = types_of(&cols);
    let mut line = json_head(&cols);
    let mut first = true;
    for batch in &output.batches {
        line.push_str(&json_rows(batch, &types, &mut first));
    }
    line.push_str(&json_tail(None, elapsed));
    line
}

/// The start of a JSON result line, up to the opening bracket of its rows (written piece by
/// piece to keep the documented key order).
pub fn json_head(cols: &[(String, KqlType)]) -> String {
    let columns: Vec<Value> = cols
        .iter()
        .map(|(name, ty)| json!({"name": name, "type": ty.name()}))
        .collect();
    format!("{{\"columns\":{},\"rows\":[", Value::Array(columns))
}

/// The rows of one batch as JSON arrays, comma-separated (`first`: no row written yet).
pub fn json_rows(batch: &RecordBatch, types: &[KqlType], first: &mut bool) -> String {
    let mut out = String::new();
    for row in rows(batch, types, json_value) {
        if !*first {
            out.push(',');
        }
        *first = false;
        out.push_str(&Value::Array(row).to_string());
    }
    out
}

/// The end of a JSON result line: closes the rows, adds an `"error"` if the result broke off
/// while its rows were being written, and `"elapsed_ms"` when timed.
pub fn json_tail(error: Option<&Failure>, elapsed: Option<Duration>) -> String {
    let mut tail = String::from("]");
    if let Some(failure) = error {
        tail.push_str(&format!(",\"error\":{}", json_error_value(failure)));
    }
    if let Some(elapsed) = elapsed {
        tail.push_str(&format!(",\"elapsed_ms\":{}", elapsed_ms(elapsed)));
    }
    tail.push_str("}\n");
    tail
}

fn json_error_value(failure: &Failure) -> Value {
    json!({"code": failure.code.as_str(), "message": failure.json_message()})
}

/// `{"error":{"code":..,"message":..}}` plus `"elapsed_ms"` when timed; one line.
pub fn json_error(failure: &Failure, elapsed: Option<Duration>) -> String {
    let mut line = format!("{{\"error\":{}", json_error_value(failure));
    if let Some(elapsed) = elapsed {
        line.push_str(&format!(",\"elapsed_ms\":{}", elapsed_ms(elapsed)));
    }
    line.push_str("}\n");
    line
}

/// `elapsed: 12.3 ms`, for stderr.
pub fn elapsed_text(elapsed: Duration) -> String {
    format!("elapsed: {:.1} ms\n", elapsed.as_secs_f64() * 1000.0)
}

/// The four sections of `kustodian explain`.
pub fn explanation(e: &Explanation) -> String {
    let policies = if e.policies.is_empty() {
        "(none)".to_string()
    } else {
        e.policies.join("\n")
    };
    // A directly lowered plan was not optimized: its logical plan is the bound one.
    let how = if e.lowered_directly { "(as bound: lowered directly, without DataFusion's optimizers)\n" } else { "" };
    let mut out = format!(
        "Effective query:\n{}\n\nPolicies applied:\n{}\n\nLogical plan:\n{how}{}\n\nPhysical plan:\n{}\n",
        e.effective_kql.trim_end(),
        policies,
        e.logical_plan.trim_end(),
        e.physical_plan.trim_end()
    );
    if let Some(a) = &e.analysis {
        out.push_str(&format!("\nRun:\n{}\nPhysical plan with metrics:\n{}\n", a.summary(), a.plan_with_metrics.trim_end()));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use kustodian_planner::{KqlColumn, KqlSchema};
    use kustodian_runtime::ErrorCode;

    use super::*;

    fn output() -> QueryOutput {
        let schema = KqlSchema::new(vec![
            KqlColumn::new("Region", KqlType::String),
            KqlColumn::new("count_", KqlType::Long),
            KqlColumn::new("Props", KqlType::Dynamic),
            KqlColumn::new("At", KqlType::Datetime),
        ]);
        let batch = |regions: Vec<Option<&str>>,
                     counts: Vec<Option<i64>>,
                     props: Vec<Option<&str>>,
                     at: Vec<Option<i64>>| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(regions)),
                Arc::new(Int64Array::from(counts)),
                Arc::new(StringArray::from(props)),
                Arc::new(TimestampNanosecondArray::from(at)),
            ];
            RecordBatch::try_new(schema.arrow_schema(), columns).unwrap()
        };
        QueryOutput {
            schema: schema.clone(),
            batches: vec![
                batch(
                    vec![Some("r1")],
                    vec![Some(3)],
                    vec![Some(r#"{"a": [1, 2]}"#)],
                    vec![Some(0)],
                ),
                batch(
                    vec![Some("west, \"north\""), None],
                    vec![Some(12), None],
                    vec![Some(r#""s""#), None],
                    vec![Some(1_500_000_000), None],
                ),
            ],
        }
    }

    #[test]
    fn json_line() {
        let line = json_result(&output(), None);
        assert_eq!(
            line,
            concat!(
                r#"{"columns":[{"name":"Region","type":"string"},{"name":"count_","type":"long"},"#,
                r#"{"name":"Props","type":"dynamic"},{"name":"At","type":"datetime"}],"#,
                r#""rows":[["r1",3,{"a":[1,2]},"1970-01-01T00:00:00.0000000Z"],"#,
                r#"["west, \"north\"",12,"s","1970-01-01T00:00:01.5000000Z"],[null,null,null,null]]}"#,
                "\n"
            )
        );
        let timed = json_result(&output(), Some(Duration::from_micros(12_345)));
        let v: Value = serde_json::from_str(&timed).unwrap();
        assert_eq!(v["elapsed_ms"], json!(12.345));
        assert!(timed.ends_with(",\"elapsed_ms\":12.345}\n"));
    }

    #[test]
    fn json_error_line() {
        let failure = Failure {
            position: Some((2, 3)),
            ..Failure::new(ErrorCode::SemanticError, "unknown table 'X'")
        };
        assert_eq!(
            json_error(&failure, None),
            "{\"error\":{\"code\":\"SemanticError\",\"message\":\"unknown table 'X' (line 2, column 3)\"}}\n"
        );
        let v: Value =
            serde_json::from_str(&json_error(&failure, Some(Duration::from_millis(2)))).unwrap();
        assert_eq!(v["elapsed_ms"], json!(2.0));
    }

    #[test]
    fn csv_block() {
        assert_eq!(
            csv(&output()),
            "Region,count_,Props,At\nr1,3,\"{\"\"a\"\":[1,2]}\",1970-01-01T00:00:00Z\n\"west, \"\"north\"\"\",12,\"\"\"s\"\"\",1970-01-01T00:00:01.5Z\n,,,\n"
        );
    }

    #[test]
    fn pretty_table() {
        assert_eq!(
            table(&output()),
            "\
┌───────────────┬────────┬─────────────┬────────────────────────┐
│ Region        ┆ count_ ┆ Props       ┆ At                     │
╞═══════════════╪════════╪═════════════╪════════════════════════╡
│ r1            ┆      3 ┆ {\"a\":[1,2]} ┆ 1970-01-01T00:00:00Z   │
│ west, \"north\" ┆     12 ┆ \"s\"         ┆ 1970-01-01T00:00:01.5Z │
│               ┆        ┆             ┆                        │
└───────────────┴────────┴─────────────┴────────────────────────┘
"
        );
    }

    #[test]
    fn empty_result_keeps_header() {
        let out = QueryOutput {
            schema: KqlSchema::new(vec![KqlColumn::new("x", KqlType::Long)]),
            batches: vec![],
        };
        assert_eq!(csv(&out), "x\n");
        assert_eq!(
            json_result(&out, None),
            "{\"columns\":[{\"name\":\"x\",\"type\":\"long\"}],\"rows\":[]}\n"
        );
        assert!(table(&out).contains("│ x │"));
    }

    #[test]
    fn explain_sections() {
        let e = Explanation {
            effective_kql: "T | where true".into(),
            policies: vec![],
            applied: vec![],
            logical_plan: "Filter\n  TableScan".into(),
            physical_plan: "FilterExec\n".into(),
            lowered_directly: false,
            analysis: None,
        };
        assert_eq!(
            explanation(&e),
            "Effective query:\nT | where true\n\nPolicies applied:\n(none)\n\nLogical plan:\nFilter\n  TableScan\n\nPhysical plan:\nFilterExec\n"
        );
        let direct = Explanation { lowered_directly: true, ..e };
        assert!(explanation(&direct).contains("Logical plan:\n(as bound: lowered directly, without DataFusion's optimizers)\nFilter\n"));
    }
}
