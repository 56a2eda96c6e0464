//! Runs every `corpus/queries/*.kql` case against the bundled sample cluster and snapshots its result.
//!
//! A case is one request; leading `//` lines may hold directives:
//! `// db: NAME` (database in scope, default `ContosoSales`), `// expect: error` (the request
//! must fail), `// oracle: syntax-only | accepts` (read by `schema_oracle.rs`), and
//! `// kusto-result: <json rows>` (the result documented by Kusto, cross-checked here).
//! Snapshots live in `corpus/queries/snapshots/`: the schema line `(Name:type, ...)`, then one
//! JSON array per row, values encoded as in the v2 REST protocol; or `error[Code]: message`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::{Path, PathBuf};

use kustodian_parser::value_text::{format_datetime_nanos, format_timespan_nanos};
use kustodian_planner::KqlType;
use kustodian_runtime::{Cluster, QueryOutput, RequestOptions};
use serde_json::Value;

const DEFAULT_DB: &str = "ContosoSales";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/queries")
}

// ------------------------------------------------------------------------------------ cases

/// A corpus case: its text and the directives from its leading comment lines.
#[derive(Debug, Default)]
struct Case {
    text: String,
    db: Option<String>,
    expect_error: bool,
    kusto_result: Option<Value>,
}

fn parse_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut case = Case { text: text.clone(), ..Case::default() };
    for line in text.lines() {
        let Some(comment) = line.trim_start().strip_prefix("//") else { break };
        let Some((key, value)) = comment.trim().split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "db" => case.db = Some(value.to_string()),
            "expect" => {
                assert_eq!(value, "error", "{}: unknown expectation `{value}`", path.display());
                case.expect_error = true;
            }
            "kusto-result" => {
                let rows = serde_json::from_str(value)
                    .unwrap_or_else(|e| panic!("{}: bad kusto-result directive: {e}", path.display()));
                case.kusto_result = Some(rows);
            }
            _ => {}
        }
    }
    case
}

// ------------------------------------------------------------------------------------ async

/// Drives a future to completion on a tokio runtime (DataFusion executes on tokio).
fn block_on<F: Future>(fut: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    })
    .block_on(fut)
}

// ------------------------------------------------------------------------------------ encoding

/// A value read from an Arrow buffer, before it is given its KQL meaning.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// Nanoseconds since the Unix epoch (timestamp) or a nanosecond count (duration).
    Nanos(i128),
    Decimal(i128, u32),
}

fn le_bytes<const N: usize>(buf: &[u8], index: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[index * N..index * N + N]);
    out
}

fn unit_nanos(dt: &str) -> i128 {
    if dt.contains("Nanosecond") {
        1
    } else if dt.contains("Microsecond") {
        1_000
    } else if dt.contains("Millisecond") {
        1_000_000
    } else {
        1_000_000_000
    }
}

/// Reads row `row` of an Arrow array through its raw buffers: the test crate has no direct
/// arrow dependency, so it goes by the data type's `Debug` name and the documented layouts.
fn read_raw(data_type: &str, buffers: &[&[u8]], offset: usize, row: usize) -> Result<Raw, String> {
    let i = offset + row;
    let dt = data_type;
    Ok(match dt {
        "Null" => Raw::Null,
        "Boolean" => Raw::Bool(buffers[0][i / 8] & (1 << (i % 8)) != 0),
        "Int8" => Raw::Int(i8::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "Int16" => Raw::Int(i16::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "Int32" => Raw::Int(i32::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "Int64" => Raw::Int(i64::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "UInt8" => Raw::Int(u8::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "UInt16" => Raw::Int(u16::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "UInt32" => Raw::Int(u32::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "UInt64" => Raw::Int(u64::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "Float32" => Raw::Float(f32::from_le_bytes(le_bytes(buffers[0], i)).into()),
        "Float64" => Raw::Float(f64::from_le_bytes(le_bytes(buffers[0], i))),
        "Utf8" | "Binary" => {
            let start = i32::from_le_bytes(le_bytes(buffers[0], i)) as usize;
            let end = i32::from_le_bytes(le_bytes(buffers[0], i + 1)) as usize;
            Raw::Str(String::from_utf8_lossy(&buffers[1][start..end]).into_owned())
        }
        "LargeUtf8" | "LargeBinary" => {
            let start = i64::from_le_bytes(le_bytes(buffers[0], i)) as usize;
            let end = i64::from_le_bytes(le_bytes(buffers[0], i + 1)) as usize;
            Raw::Str(String::from_utf8_lossy(&buffers[1][start..end]).into_owned())
        }
        "Utf8View" | "BinaryView" => {
            // 16-byte views: length (u32), then either the inline bytes (length <= 12) or a
            // 4-byte prefix, the data buffer index (u32) and the offset in it (u32).
            let view: [u8; 16] = le_bytes(buffers[0], i);
            let len = u32::from_le_bytes(view[0..4].try_into().unwrap()) as usize;
            let bytes = if len <= 12 {
                view[4..4 + len].to_vec()
            } else {
                let buf = u32::from_le_bytes(view[8..12].try_into().unwrap()) as usize;
                let off = u32::from_le_bytes(view[12..16].try_into().unwrap()) as usize;
                buffers[1 + buf][off..off + len].to_vec()
            };
            Raw::Str(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ if dt.starts_with("Timestamp") => Raw::Nanos(
            i128::from(i64::from_le_bytes(le_bytes(buffers[0], i))) * unit_nanos(dt),
        ),
        _ if dt.starts_with("Duration") => Raw::Nanos(
            i128::from(i64::from_le_bytes(le_bytes(buffers[0], i))) * unit_nanos(dt),
        ),
        _ if dt.starts_with("Decimal128") => {
            let scale = dt
                .trim_end_matches(')')
                .rsplit(',')
                .next()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .ok_or_else(|| format!("cannot read the scale of {dt}"))?;
            Raw::Decimal(i128::from_le_bytes(le_bytes(buffers[0], i)), scale)
        }
        _ => return Err(format!("no encoder for Arrow type {dt}")),
    })
}

/// Nanoseconds as the engine holds them (every datetime and timespan column is nanoseconds).
fn nanos_i64(nanos: i128) -> Result<i64, String> {
    i64::try_from(nanos).map_err(|_| format!("{nanos} ns is out of the range of a KQL datetime or timespan"))
}

fn encode_decimal(value: i128, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("0", digits.as_str())
    };
    let frac = format!("{frac:0>scale$}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
}

fn encode_real(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(v)
    }
}

/// Gives a raw value its KQL meaning, encoded as the v2 REST protocol does.
fn encode(raw: Raw, ty: KqlType) -> Result<Value, String> {
    Ok(match (raw, ty) {
        (Raw::Null, _) => Value::Null,
        (Raw::Bool(b), _) => Value::Bool(b),
        (Raw::Int(v), KqlType::Real) => encode_real(v as f64),
        (Raw::Int(v), _) => i64::try_from(v).map(Value::from).unwrap_or_else(|_| Value::from(v.to_string())),
        (Raw::Float(v), _) => encode_real(v),
        (Raw::Nanos(n), KqlType::Timespan) => Value::from(format_timespan_nanos(nanos_i64(n)?)),
        (Raw::Nanos(n), _) => Value::from(format_datetime_nanos(nanos_i64(n)?)),
        (Raw::Decimal(v, s), _) => Value::from(encode_decimal(v, s)),
        (Raw::Str(s), KqlType::Dynamic) => {
            if s.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&s).map_err(|e| format!("dynamic value {s:?} is not JSON: {e}"))?
            }
        }
        (Raw::Str(s), _) => Value::from(s),
    })
}

/// The result rows, one `Vec<Value>` per row.
fn encode_rows(output: &QueryOutput) -> Result<Vec<Vec<Value>>, String> {
    let mut rows = Vec::new();
    for batch in &output.batches {
        if batch.num_columns() != output.schema.columns.len() {
            return Err(format!(
                "batch has {} columns, KQL schema {} has {}",
                batch.num_columns(),
                output.schema.to_kql(),
                output.schema.columns.len()
            ));
        }
        let mut columns = Vec::new();
        for (array, column) in batch.columns().iter().zip(&output.schema.columns) {
            let data = array.to_data();
            let dt = format!("{:?}", data.data_type());
            let buffers: Vec<&[u8]> = data.buffers().iter().map(|b| b.as_slice()).collect();
            let mut values = Vec::with_capacity(data.len());
            for row in 0..data.len() {
                let raw = if data.is_null(row) { Raw::Null } else { read_raw(&dt, &buffers, data.offset(), row)? };
                values.push(encode(raw, column.ty).map_err(|e| format!("column {}: {e}", column.name))?);
            }
            columns.push(values);
        }
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    Ok(rows)
}

fn render(output: &QueryOutput) -> Result<(String, Vec<Vec<Value>>), String> {
    let rows = encode_rows(output)?;
    let mut text = output.schema.to_kql();
    for row in &rows {
        text.push('\n');
        text.push_str(&serde_json::to_string(row).map_err(|e| e.to_string())?);
    }
    Ok((text, rows))
}

// ------------------------------------------------------------------------------------ checks

/// Compares two encoded values; numbers compare by value (1 == 1.0) with a relative tolerance.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

fn check_kusto_result(expected: &Value, rows: &[Vec<Value>]) -> Result<(), String> {
    let actual = Value::Array(rows.iter().map(|r| Value::Array(r.clone())).collect());
    if same_value(expected, &actual) {
        Ok(())
    } else {
        Err(format!("result differs from the documented Kusto result\n  kusto: {expected}\n  ours:  {actual}"))
    }
}

#[test]
fn queries_corpus() {
    let dir = corpus_dir();
    let count = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "kql"))
        .count();
    assert!(count > 0, "no .kql cases in {}", dir.display());

    let cluster = block_on(Cluster::sample()).unwrap_or_else(|e| panic!("cannot build the sample cluster: {e}"));

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir.join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let results: std::cell::RefCell<Vec<(String, Option<String>)>> = std::cell::RefCell::new(Vec::new());
    settings.bind(|| {
        insta::glob!("../../corpus/queries", "*.kql", |path| {
            let case = parse_case(path);
            let opts = RequestOptions {
                database: Some(case.db.clone().unwrap_or_else(|| DEFAULT_DB.to_string())),
                ..Default::default()
            };
            let result = block_on(cluster.execute(&case.text, &opts));
            let (rendered, outcome) = match &result {
                Ok(output) => match render(output) {
                    Ok((text, rows)) => (text, Ok(rows)),
                    Err(e) => panic!("{}: cannot encode the result: {e}", path.display()),
                },
                Err(e) => (format!("error[{}]: {e}", e.code().as_str()), Err(())),
            };
            insta::with_settings!({ description => case.text.trim_end() }, {
                insta::assert_snapshot!("result", rendered);
            });
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let failure = match (outcome, case.expect_error) {
                (Ok(_), true) => Some(format!("expected an error, got a result:\n{rendered}")),
                (Err(()), false) => Some(format!("unexpected error: {rendered}")),
                (Ok(rows), false) => case.kusto_result.as_ref().and_then(|expected| check_kusto_result(expected, &rows).err()),
                (Err(()), true) => None,
            };
            results.borrow_mut().push((name, failure));
        });
    });
    check_against_known_gaps(&dir, &results.into_inner());
}

/// The same cases over the sample with its tables on disk (read from their Parquet extents)
/// answer exactly as in memory.
#[test]
fn queries_corpus_on_disk() {
    let dir = corpus_dir();
    let memory = block_on(Cluster::sample()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let disk = block_on(Cluster::sample_in(&tmp.path().join("sample"))).unwrap();
    let mut differ = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "kql") {
            continue;
        }
        let case = parse_case(&path);
        let opts = RequestOptions { database: Some(case.db.clone().unwrap_or_else(|| DEFAULT_DB.to_string())), ..Default::default() };
        let show = |r: kustodian_runtime::Result<kustodian_runtime::QueryOutput>| match r {
            Ok(o) => render(&o).map(|(text, _)| text).unwrap_or_else(|e| format!("cannot encode: {e}")),
            Err(e) => format!("error[{}]", e.code().as_str()),
        };
        let a = show(block_on(memory.execute(&case.text, &opts)));
        let b = show(block_on(disk.execute(&case.text, &opts)));
        n += 1;
        if a != b {
            differ.push(format!("{}:\n  in memory: {a:.300}\n  on disk:   {b:.300}", path.display()));
        }
    }
    assert!(n > 100, "only {n} cases");
    assert!(differ.is_empty(), "{} of {n} cases answer differently on disk:\n{}", differ.len(), differ.join("\n"));
}

/// Cases listed in `corpus/queries/known-gaps.txt` (one file name per line, `#` comments) are
/// KQL that Kustodian does not get right yet. They are run like every other case: a listed case
/// must still fail (so a fix forces the list to shrink), and every unlisted case must pass.
fn check_against_known_gaps(dir: &std::path::Path, results: &[(String, Option<String>)]) {
    let gaps_file = dir.join("known-gaps.txt");
    let gaps: Vec<String> = std::fs::read_to_string(&gaps_file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut problems = Vec::new();
    for (name, failure) in results {
        let listed = gaps.contains(name);
        match (failure, listed) {
            (Some(f), false) => problems.push(format!("{name}: {f}")),
            (None, true) => problems.push(format!("{name}: passes now; remove it from known-gaps.txt")),
            _ => {}
        }
    }
    for g in &gaps {
        if !results.iter().any(|(n, _)| n == g) {
            problems.push(format!("{g}: listed in known-gaps.txt but no such case"));
        }
    }
    let failed = results.iter().filter(|(_, f)| f.is_some()).count();
    eprintln!("query corpus: {} cases, {} passing, {} known gaps", results.len(), results.len() - failed, gaps.len());
    assert!(problems.is_empty(), "{} problem(s) in the query corpus:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn encoders_follow_the_kusto_formats() {
    assert_eq!(format_datetime_nanos(0), "1970-01-01T00:00:00.0000000Z");
    assert_eq!(format_datetime_nanos(1_546_300_800_000_000_000), "2019-01-01T00:00:00.0000000Z");
    assert_eq!(format_datetime_nanos(-1), "1969-12-31T23:59:59.9999999Z");
    assert_eq!(format_datetime_nanos(951_782_400_123_456_700), "2000-02-29T00:00:00.1234567Z");
    assert_eq!(format_timespan_nanos(0), "00:00:00");
    assert_eq!(format_timespan_nanos(86_400_000_000_000 + 1_000_000_000), "1.00:00:01");
    assert_eq!(format_timespan_nanos(-5_400_000_000_000), "-01:30:00");
    assert_eq!(format_timespan_nanos(100_000_000), "00:00:00.1000000");
    assert_eq!(encode_decimal(12_500_000_000, 10), "1.25");
    assert_eq!(encode_decimal(-5, 1), "-0.5");
    assert_eq!(encode_decimal(30_000_000_000, 10), "3");
    assert!(same_value(&serde_json::json!([[1, 2.0]]), &serde_json::json!([[1.0, 2]])));
}
