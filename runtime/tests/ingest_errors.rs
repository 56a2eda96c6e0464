//! Ingestion refuses malformed input as Kusto does (error code, record and line), changes
//! nothing when it fails, tells formats apart by content, and reports values that did not
//! convert. The malformed inputs are in `corpus/ingest` (see `cases.txt` there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use kustodian_runtime::ingest::{self, IngestionFailure};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions, RuntimeError};

const ADMIN: &str = "aaduser=admin@contoso.com";
/// T's schema; every ingestion below goes into it.
const CREATE_T: &str = ".create table T (s:string, n:long, t:datetime)";
/// Rows T holds before each malformed ingestion.
const SEED: &str = ".ingest inline into table T <|\nseed1,1,2024-01-01\nseed2,2,2024-01-02";

struct Env {
    rt: tokio::runtime::Runtime,
    cluster: Cluster,
    /// A directory the test writes files to (an ingestion root).
    scratch: tempfile::TempDir,
    data: tempfile::TempDir,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/ingest").canonicalize().unwrap()
}

fn env() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let roots = [corpus(), scratch.path().canonicalize().unwrap()];
    let cluster = Cluster::init(&data.path().join("cluster"), ADMIN).unwrap().with_ingestion_roots(&roots).unwrap();
    let e = Env { rt, cluster, scratch, data };
    e.ok(".create database Db");
    e.ok(CREATE_T);
    e
}

impl Env {
    fn exec(&self, text: &str) -> Result<QueryOutput, RuntimeError> {
        let opts = RequestOptions {
            database: Some("Db".into()),
            identity: Some(Identity { principal: ADMIN.into(), groups: vec![], ..Default::default() }),
            properties: vec![],
            ..Default::default()
        };
        self.rt.block_on(self.cluster.execute(text, &opts))
    }

    fn ok(&self, text: &str) -> QueryOutput {
        self.exec(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(&self, text: &str) -> RuntimeError {
        match self.exec(text) {
            Ok(out) => panic!("{text}: succeeded with {} result rows", out.row_count()),
            Err(e) => e,
        }
    }

    fn count(&self) -> i64 {
        let out = self.ok("T | count");
        out.batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    /// The extent files in the cluster directory (a failed ingestion writes none).
    fn extents(&self) -> usize {
        match std::fs::read_dir(self.data.path().join("cluster/extents")) {
            Ok(dir) => dir.count(),
            Err(_) => 0,
        }
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.scratch.path().canonicalize().unwrap().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// `.ingest into table T ('path') with`, which must fail with `code` and leave T as it was.
    fn refused(&self, path: &Path, with: &str, code: &str, fragment: &str) -> RuntimeError {
        let (rows, extents) = (self.count(), self.extents());
        let cmd = format!(".ingest into table T ('{}') {with}", path.display());
        let e = self.err(&cmd);
        let msg = e.to_string();
        assert_eq!(ingest::error_code(&e), code, "{cmd}: {msg}");
        assert!(msg.starts_with(&format!("{code}: ingesting '")), "{cmd}: the message starts with the code and names the source: {msg}");
        assert!(msg.contains(fragment), "{cmd}: '{fragment}' not in: {msg}");
        assert_eq!(e.code(), kustodian_runtime::ErrorCode::BadRequest, "{cmd}");
        assert_eq!((self.count(), self.extents()), (rows, extents), "{cmd}: a failed ingestion changes nothing");
        e
    }
}

fn column<'a>(out: &'a QueryOutput, name: &str) -> &'a ArrayRef {
    let i = out.schema.columns.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("no column {name}"));
    out.batches[0].column(i)
}

fn long_at(out: &QueryOutput, name: &str) -> i64 {
    column(out, name).as_primitive::<Int64Type>().value(0)
}

fn string_at(out: &QueryOutput, name: &str) -> String {
    column(out, name).as_string::<i32>().value(0).to_string()
}

#[test]
fn every_malformed_input_of_the_corpus_fails_with_its_code_and_changes_nothing() {
    let e = env();
    e.ok(SEED);
    let manifest = std::fs::read_to_string(corpus().join("cases.txt")).unwrap();
    let mut seen = Vec::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [file, with, code, fragment] = parts[..] else { panic!("bad line in cases.txt: {line}") };
        e.refused(&corpus().join(file), with, code, fragment);
        seen.push(file.to_string());
    }
    // Every input file has its case.
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "cases.txt" {
            assert!(seen.contains(&name), "{name} has no line in cases.txt");
        }
    }
    assert_eq!(e.count(), 2);
}

#[test]
fn inline_records_with_the_wrong_number_of_fields_or_an_open_quote_are_refused() {
    let e = env();
    e.ok(SEED);
    for (text, code, fragment) in [
        ("a,1,2024-01-01\nb,2", "Stream_WrongNumberOfFields", "record 2 (line 2) has 2 fields"),
        ("a,1,2024-01-01\nb,2,2024-01-02,x", "Stream_WrongNumberOfFields", "record 2 (line 2) has 4 fields"),
        ("a,1,2024-01-01\n\"b,2,2024-01-02", "Stream_ClosingQuoteMissing", "record 2 (line 2)"),
    ] {
        let cmd = format!(".ingest inline into table T <|\n{text}");
        let err = e.err(&cmd);
        assert_eq!(ingest::error_code(&err), code, "{cmd}: {err}");
        assert!(err.to_string().contains(fragment), "{cmd}: {err}");
        assert_eq!(e.count(), 2, "{cmd}");
    }
}

#[test]
fn a_failing_source_fails_the_whole_command() {
    let e = env();
    e.ok(SEED);
    let good = e.write("good.csv", b"g,7,2024-02-01\n");
    let bad = corpus().join("csv_fewer_fields.csv");
    let cmd = format!(".ingest into table T ('{}', '{}')", good.display(), bad.display());
    let err = e.err(&cmd);
    assert_eq!(ingest::error_code(&err), "Stream_WrongNumberOfFields", "{err}");
    assert_eq!(e.count(), 2, "the good source's rows are not committed either");
    // The failure, as `.show ingestion failures` would keep it.
    let f = IngestionFailure::from_error(&err, "Db", "T", &bad.display().to_string(), "DataIngestPull");
    assert_eq!(f.error_code, "Stream_WrongNumberOfFields");
    assert_eq!(f.failure_kind, "Permanent");
    assert!(f.details.contains("csv_fewer_fields.csv"), "{}", f.details);
}

fn parquet_bytes(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Vec<u8> {
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

fn sample_parquet() -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
    parquet_bytes(schema, vec![Arc::new(StringArray::from(vec!["p1", "p2", "p3"])), Arc::new(Int64Array::from(vec![10, 20, 30]))])
}

#[test]
fn parquet_is_told_by_its_magic_bytes_and_a_contradicting_format_is_refused() {
    let e = env();
    e.ok(SEED);
    let bytes = sample_parquet();
    // No format, and a name that says nothing: read as Parquet, columns by name.
    let p = e.write("data.bin", &bytes);
    let out = e.ok(&format!(".ingest into table T ('{}')", p.display()));
    assert_eq!(long_at(&out, "RowCount"), 3);
    let rows = e.ok("T | where s startswith 'p' | order by n asc | project s, n");
    assert_eq!(rows.row_count(), 3);
    let s: Vec<_> = rows.batches.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()).collect();
    assert_eq!(s, ["p1", "p2", "p3"]);
    assert_eq!(e.count(), 5);

    // Declared as text.
    for f in ["csv", "tsv", "json"] {
        e.refused(&p, &format!("with (format='{f}')"), "BadRequest_InvalidBlob", &format!("format '{f}' was declared but the file is Parquet"));
    }
    // Truncated: the footer (and its closing magic) is gone.
    let cut = e.write("cut.parquet", &bytes[..bytes.len() - 10]);
    for with in ["", "with (format='parquet')"] {
        e.refused(&cut, with, "BadRequest_InvalidBlob", "truncated Parquet file");
    }
    // Both magics but a corrupt footer.
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    corrupt[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let corrupt = e.write("corrupt.parquet", &corrupt);
    e.refused(&corrupt, "", "BadRequest_InvalidBlob", "not a readable Parquet file");
    // A column whose type cannot become the table column's.
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let list_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::List(item), true)]));
    let list = datafusion::arrow::array::ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)])]);
    let lists = e.write("lists.parquet", &parquet_bytes(list_schema, vec![Arc::new(list)]));
    e.refused(&lists, "", "BadRequest_InconsistentMapping", "cannot be ingested into column 'n' of type long");
    assert_eq!(e.count(), 5);
}

#[test]
fn json_is_told_from_its_first_character_and_inline_data_honors_format() {
    let e = env();
    let p = e.write("records", b"\xEF\xBB\xBF \n[{\"n\": 5, \"s\": \"j1\"}, {\"s\": \"j2\", \"t\": \"2024-03-01\"}]");
    let out = e.ok(&format!(".ingest into table T ('{}')", p.display()));
    assert_eq!(long_at(&out, "RowCount"), 2);
    assert_eq!(e.ok("T | where s == 'j1' | project n").batches[0].column(0).as_primitive::<Int64Type>().value(0), 5);
    // Text that does not start like JSON is CSV.
    let p = e.write("records2", b"c1,6,2024-03-02\n");
    e.ok(&format!(".ingest into table T ('{}')", p.display()));
    // Inline data is CSV unless `format` says otherwise.
    e.ok(".ingest inline into table T with (format='json') <| {\"s\": \"j3\", \"n\": 7}");
    let t = e.ok("T | where s == 'j3' | project n, t");
    assert_eq!(t.batches[0].column(0).as_primitive::<Int64Type>().value(0), 7);
    assert!(t.batches[0].column(1).is_null(0));
    let err = e.err(".ingest inline into table T with (format='parquet') <| PAR1");
    assert_eq!(ingest::error_code(&err), "BadRequest_InvalidBlob", "{err}");
    assert_eq!(e.count(), 4);
}

#[test]
fn values_that_do_not_convert_are_null_counted_and_shown() {
    let e = env();
    let long_value = "x".repeat(300);
    let out = e.ok(&format!(".ingest inline into table T <|\na,1,2024-01-01\nb,two,yesterday\nc,{long_value},2024-01-03\nd,,"));
    let names: Vec<&str> = out.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["ExtentId", "RowCount", "ItemLoaded", "Duration", "HasErrors", "OperationId", "ConversionFailures", "MalformedRecords", "FailureDetails"]
    );
    assert_eq!(long_at(&out, "RowCount"), 4);
    // `two`, `yesterday` and the long value; empty fields are null by rule, not failures.
    assert_eq!(long_at(&out, "ConversionFailures"), 3);
    assert_eq!(string_at(&out, "ItemLoaded"), "inline");
    assert!(!column(&out, "HasErrors").as_boolean().value(0));
    let details: serde_json::Value = serde_json::from_str(&string_at(&out, "FailureDetails")).unwrap();
    let details = details.as_array().unwrap();
    assert_eq!(details.len(), 3);
    assert_eq!(details[0]["Record"], 2);
    assert_eq!(details[0]["Line"], 2, "the line break right after `<|` is not data");
    assert_eq!(details[0]["Column"], "n");
    assert_eq!(details[0]["ColumnType"], "long");
    assert_eq!(details[0]["Value"], "two");
    assert_eq!(details[1]["Column"], "t");
    assert_eq!(details[1]["Value"], "yesterday");
    let shown = details[2]["Value"].as_str().unwrap();
    assert_eq!(shown.len(), 103, "cut to 100 characters and '...'");
    // The rows are there, the bad values null.
    let nulls = e.ok("T | where isnull(n) | count");
    assert_eq!(nulls.batches[0].column(0).as_primitive::<Int64Type>().value(0), 3);
}

#[test]
fn parquet_values_that_do_not_convert_are_counted() {
    let e = env();
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, true), Field::new("t", DataType::Utf8, true)]));
    let bytes = parquet_bytes(
        schema,
        vec![
            Arc::new(StringArray::from(vec![Some("1"), Some("nope"), None, Some("")])),
            Arc::new(StringArray::from(vec![Some("2024-01-01"), Some("2024-01-02"), Some("never"), None])),
        ],
    );
    let p = e.write("strings.parquet", &bytes);
    let out = e.ok(&format!(".ingest into table T ('{}') with (format='parquet')", p.display()));
    assert_eq!(long_at(&out, "RowCount"), 4);
    assert_eq!(long_at(&out, "ConversionFailures"), 2);
    let details: serde_json::Value = serde_json::from_str(&string_at(&out, "FailureDetails")).unwrap();
    assert_eq!(details[0]["Record"], 2);
    assert_eq!(details[0]["Value"], "nope");
    assert_eq!(details[1]["Record"], 3);
    assert_eq!(details[1]["Column"], "t");
    let ts = e.ok("T | where isnotnull(t) | count");
    assert_eq!(ts.batches[0].column(0).as_primitive::<Int64Type>().value(0), 2);
}

#[test]
fn headers_and_validation_policy() {
    let e = env();
    // ignoreFirstRecord skips the header (which is not counted as a failure).
    let p = e.write("h.csv", b"s,n,t\r\nh1,1,2024-01-01\r\nh2,2,2024-01-02\r\n");
    let out = e.ok(&format!(".ingest into table T ('{}') with (format='csv', ignoreFirstRecord=true)", p.display()));
    assert_eq!((long_at(&out, "RowCount"), long_at(&out, "ConversionFailures")), (2, 0));
    // A best-effort policy ingests ragged records by position and counts them.
    let ragged = corpus().join("csv_fewer_fields.csv");
    let out = e.ok(&format!(
        ".ingest into table T ('{}') with (validationPolicy='{{\"ValidationOptions\":1,\"ValidationImplications\":1}}')",
        ragged.display()
    ));
    assert_eq!((long_at(&out, "RowCount"), long_at(&out, "MalformedRecords")), (3, 1));
    let details: serde_json::Value = serde_json::from_str(&string_at(&out, "FailureDetails")).unwrap();
    assert_eq!(details[0]["Kind"], "WrongNumberOfFields");
    assert_eq!(details[0]["Line"], 2);
    // Not validating at all: by position, nothing counted.
    let out = e.ok(&format!(".ingest into table T ('{}') with (validationPolicy='{{\"ValidationOptions\":\"DoNotValidate\"}}')", ragged.display()));
    assert_eq!((long_at(&out, "RowCount"), long_at(&out, "MalformedRecords")), (3, 0));
    assert_eq!(e.count(), 8);
    let err = e.err(&format!(".ingest into table T ('{}') with (validationPolicy='{{\"ValidationOptions\":7}}')", ragged.display()));
    assert!(err.to_string().contains("unknown ValidationOptions"), "{err}");
}

#[test]
fn an_ingestion_of_no_records_returns_the_empty_extent_id() {
    let e = env();
    let p = e.write("blank.csv", b"\n\r\n\n");
    let out = e.ok(&format!(".ingest into table T ('{}')", p.display()));
    assert_eq!(out.row_count(), 1);
    assert_eq!(string_at(&out, "ExtentId"), ingest::summary::EMPTY_EXTENT_ID);
    assert_eq!(long_at(&out, "RowCount"), 0);
    assert_eq!(e.count(), 0);
}

impl Env {
    fn exec_as(&self, who: &str, text: &str) -> Result<QueryOutput, RuntimeError> {
        let opts = RequestOptions {
            database: Some("Db".into()),
            identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
            properties: vec![],
            ..Default::default()
        };
        self.rt.block_on(self.cluster.execute(text, &opts))
    }
}

/// `.show ingestion failures`: every failed ingestion is kept (the table unchanged), with
/// Kusto's columns; the database's monitors see them, a principal without a role there does not.
#[test]
fn failed_ingestions_are_listed_for_those_who_may_see_the_database() {
    let e = env();
    e.ok(SEED);
    e.ok(".add database Db monitors ('aaduser=mon@contoso.com')");
    std::fs::write(e.scratch.path().join("ragged.csv"), "a,1,2024-01-01\nb\n").unwrap();
    let path = e.scratch.path().join("ragged.csv").display().to_string();
    e.err(&format!(".ingest into table T ('{path}')"));
    e.err(".ingest inline into table T <| \"never,closed");
    assert_eq!(e.count(), 2, "the table is unchanged");
    let out = e.exec_as("aaduser=mon@contoso.com", ".show ingestion failures").unwrap();
    let names: Vec<&str> = out.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "OperationId", "Database", "Table", "FailedOn", "IngestionSourcePath", "Details", "FailureKind", "RootActivityId",
            "OperationKind", "OriginatesFromUpdatePolicy", "ErrorCode", "Principal", "ShouldRetry", "User",
            "IngestionProperties", "NumberOfSources"
        ]
    );
    assert_eq!(out.row_count(), 2);
    let codes = out.batches[0].column(10).as_string::<i32>();
    assert_eq!((codes.value(0), codes.value(1)), ("Stream_WrongNumberOfFields", "Stream_ClosingQuoteMissing"));
    let sources = out.batches[0].column(4).as_string::<i32>();
    assert_eq!((sources.value(0), sources.value(1)), (path.as_str(), "inline"));
    assert_eq!(out.batches[0].column(11).as_string::<i32>().value(0), ADMIN);
    // Filtering by operation id, as Kusto's `with (OperationId = ...)`.
    let id = out.batches[0].column(0).as_string::<i32>().value(1).to_string();
    assert_eq!(e.ok(&format!(".show ingestion failures with (OperationId = '{id}')")).row_count(), 1);
    // Someone with no role in the database is refused, and a refused ingestion is no failure.
    let refused = e.exec_as("aaduser=nobody@contoso.com", ".show ingestion failures").err().unwrap();
    assert_eq!(refused.code().as_str(), "Forbidden");
    let refused = e.exec_as("aaduser=nobody@contoso.com", ".ingest inline into table T <| x,1,2024-01-01").err().unwrap();
    assert_eq!(refused.code().as_str(), "Forbidden");
    assert_eq!(e.ok(".show ingestion failures").row_count(), 2);
    // They survive a reopen.
    let reopened = Cluster::open(&e.data.path().join("cluster")).unwrap();
    let opts = RequestOptions { database: Some("Db".into()), identity: None, properties: vec![], ..Default::default() };
    assert_eq!(e.rt.block_on(reopened.execute(".show ingestion failures", &opts)).unwrap().row_count(), 2);
}
