//! Ingestion of CSV, JSON and Parquet with Kusto semantics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Int16Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, DurationNanosecondType, Field, Float64Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampNanosecondType,
};
use datafusion::parquet::arrow::ArrowWriter;
use kustodian_planner::types::{KQL_TYPE_KEY, KqlColumn, KqlSchema, KqlType};
use kustodian_runtime::ErrorCode;
use kustodian_runtime::ingest::{self, Format, IngestOptions, Progress, ProgressEvent, ProgressUnit};
use kustodian_runtime::storage::Storage;

fn schema(cols: &[(&str, KqlType)]) -> KqlSchema {
    KqlSchema::new(cols.iter().map(|(n, t)| KqlColumn::new(*n, *t)).collect())
}

/// A progress event without its source.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Unit, size, total.
    Started(ProgressUnit, u64, u64),
    Advanced(u64),
    Finished,
}

/// A progress callback that records the events it receives.
fn recorder() -> (Progress, Arc<std::sync::Mutex<Vec<Step>>>) {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let progress = Progress::new(move |e| {
        let step = match e {
            ProgressEvent::Started { unit, size, total, .. } => Step::Started(unit, size, total),
            ProgressEvent::Advanced { done, .. } => Step::Advanced(done),
            ProgressEvent::Finished { .. } => Step::Finished,
        };
        sink.lock().unwrap().push(step);
    });
    (progress, events)
}

fn one(batches: &[RecordBatch], s: &KqlSchema) -> RecordBatch {
    concat_batches(&s.arrow_schema(), batches).unwrap()
}

fn strings(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
    b.column(i).as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

fn longs(b: &RecordBatch, i: usize) -> Vec<Option<i64>> {
    b.column(i).as_primitive::<Int64Type>().iter().collect()
}

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const TS_2024: i64 = 1_704_164_645_000_000_000; // 2024-01-02T03:04:05Z

#[test]
fn inline_csv_all_types() {
    let s = schema(&[
        ("b", KqlType::Bool),
        ("i", KqlType::Int),
        ("l", KqlType::Long),
        ("r", KqlType::Real),
        ("d", KqlType::Decimal),
        ("s", KqlType::String),
        ("t", KqlType::Datetime),
        ("ts", KqlType::Timespan),
        ("g", KqlType::Guid),
        ("dyn", KqlType::Dynamic),
    ]);
    let text = "true,1,10,1.5,2.25,hello,2024-01-02T03:04:05Z,01:00:00,0F8FAD5B-D9CB-469F-A165-70867728950E,\"{\"\"a\"\": 1}\"\n\
                FALSE,x,,abc,bad,,not a date,nope,not-a-guid,plain text\n\
                ,,,,,,,,,\n";
    let batches = ingest::ingest_inline(text, &s, &IngestOptions::default()).unwrap().batches;
    let b = one(&batches, &s);
    assert_eq!(b.num_rows(), 3);
    // Fields carry the KQL type metadata.
    for (f, c) in b.schema().fields().iter().zip(&s.columns) {
        assert_eq!(f.metadata().get(KQL_TYPE_KEY).map(String::as_str), Some(c.ty.name()));
    }
    let bools: Vec<_> = b.column(0).as_boolean().iter().collect();
    assert_eq!(bools, vec![Some(true), Some(false), None]);
    let ints: Vec<_> = b.column(1).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(ints, vec![Some(1), None, None]);
    assert_eq!(longs(&b, 2), vec![Some(10), None, None]);
    let reals: Vec<_> = b.column(3).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(reals, vec![Some(1.5), None, None]);
    let decs: Vec<_> = b.column(4).as_primitive::<Decimal128Type>().iter().collect();
    assert_eq!(decs, vec![Some(22_500_000_000), None, None]);
    // Empty string field is "" for string columns (and null elsewhere).
    assert_eq!(strings(&b, 5), vec![Some("hello".into()), Some(String::new()), Some(String::new())]);
    let ts: Vec<_> = b.column(6).as_primitive::<TimestampNanosecondType>().iter().collect();
    assert_eq!(ts, vec![Some(TS_2024), None, None]);
    let spans: Vec<_> = b.column(7).as_primitive::<DurationNanosecondType>().iter().collect();
    assert_eq!(spans, vec![Some(3_600_000_000_000), None, None]);
    assert_eq!(strings(&b, 8), vec![Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()), None, None]);
    assert_eq!(strings(&b, 9), vec![Some(r#"{"a":1}"#.into()), Some("\"plain text\"".into()), None]);
}

#[test]
fn csv_quoting_crlf_bom_and_field_counts() {
    let s = schema(&[("a", KqlType::String), ("n", KqlType::Long), ("c", KqlType::String)]);
    // BOM, CRLF, quoted comma, quoted newline, "" escape, empty trailing field, blank line.
    let text = "\u{feff}\"x,y\",1,\"line1\nline2\"\r\n\"say \"\"hi\"\"\",2,\r\n\r\nz,3,c\r\n";
    let b = one(&ingest::ingest_inline(text, &s, &IngestOptions::default()).unwrap().batches, &s);
    assert_eq!(b.num_rows(), 3);
    assert_eq!(strings(&b, 0), vec![Some("x,y".into()), Some("say \"hi\"".into()), Some("z".into())]);
    assert_eq!(longs(&b, 1), vec![Some(1), Some(2), Some(3)]);
    assert_eq!(strings(&b, 2), vec![Some("line1\nline2".into()), Some(String::new()), Some("c".into())]);
    // Records whose number of fields varies are refused (Kusto's default validation), unless
    // the validation policy says not to validate: then fields map by position.
    let ragged = "x,1,a\ny,2\nz,3,c,extra\n";
    let e = ingest::ingest_inline(ragged, &s, &IngestOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("Stream_WrongNumberOfFields: record 2 (line 2) has 2 fields"), "{e}");
    let lax = ingest::options_from_properties(&[("validationPolicy".into(), r#"{"ValidationOptions":0}"#.into())]).unwrap();
    let b = one(&ingest::ingest_inline(ragged, &s, &lax).unwrap().batches, &s);
    assert_eq!(strings(&b, 2), vec![Some("a".into()), None, Some("c".into())]);
}

#[test]
fn csv_bom_before_plain_first_field() {
    let s = schema(&[("n", KqlType::Long)]);
    let b = one(&ingest::ingest_inline("\u{feff}5\n6\n", &s, &IngestOptions::default()).unwrap().batches, &s);
    assert_eq!(longs(&b, 0), vec![Some(5), Some(6)]);
}

#[test]
fn csv_file_with_header_and_tsv() {
    let tmp = tempfile::tempdir().unwrap();
    let s = schema(&[("name", KqlType::String), ("n", KqlType::Long)]);
    let p = write(tmp.path(), "a.csv", b"name,n\nalpha,1\nbeta,2\n");
    let opts = ingest::options_from_properties(&[
        ("Format".into(), "'CSV'".into()),
        ("IGNOREFIRSTRECORD".into(), "true".into()),
    ])
    .unwrap();
    assert_eq!(opts, IngestOptions { format: Some(Format::Csv), ignore_first_record: true, ..Default::default() });
    let b = one(&ingest::ingest_file(&p, &s, &opts).unwrap().batches, &s);
    assert_eq!(strings(&b, 0), vec![Some("alpha".into()), Some("beta".into())]);
    // Without ignoreFirstRecord the header is a row whose 'n' does not convert.
    let all = ingest::ingest_file(&p, &s, &IngestOptions::default()).unwrap();
    assert_eq!(longs(&one(&all.batches, &s), 1), vec![None, Some(1), Some(2)]);
    assert_eq!(all.summary.failure_count, 1, "the header's 'n' is counted as a conversion failure");

    let t = write(tmp.path(), "a.tsv", b"a b\t7\n\"q\tq\"\t8\n");
    let opts = IngestOptions { format: Some(Format::Tsv), ..Default::default() };
    let b = one(&ingest::ingest_file(&t, &s, &opts).unwrap().batches, &s);
    assert_eq!(strings(&b, 0), vec![Some("a b".into()), Some("q\tq".into())]);
    assert_eq!(longs(&b, 1), vec![Some(7), Some(8)]);
}

#[test]
fn large_csv_is_batched() {
    let s = schema(&[("n", KqlType::Long)]);
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&format!("{i}\n"));
    }
    let batches = ingest::ingest_inline(&text, &s, &IngestOptions::default()).unwrap().batches;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![65_536, 65_536, 18_928]);
    let b = one(&batches, &s);
    assert_eq!(b.column(0).as_primitive::<Int64Type>().value(149_999), 149_999);
}

#[test]
fn formats_and_properties() {
    for (name, f) in [
        ("csv", Format::Csv),
        ("TSV", Format::Tsv),
        ("json", Format::Json),
        ("MultiJson", Format::Json),
        ("parquet", Format::Parquet),
        ("psv", Format::Psv),
    ] {
        assert_eq!(Format::from_name(name).unwrap(), f);
    }
    let e = Format::from_name("xml").unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(e.to_string().contains("unknown ingestion format 'xml'"), "{e}");
    assert!(Format::from_name("avro").unwrap_err().to_string().contains("not supported"));
    assert_eq!(ingest::options_from_properties(&[]).unwrap(), IngestOptions::default());
    let e = ingest::options_from_properties(&[("ignoreFirstRecord".into(), "maybe".into())]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let o = ingest::options_from_properties(&[("ingestionMappingReference".into(), "m".into())]).unwrap();
    assert_eq!(o.mapping_reference.as_deref(), Some("m"));
    let e = ingest::options_from_properties(&[("avroMapping".into(), "[]".into())]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let e = ingest::options_from_properties(&[("tags".into(), "drop-by:x".into())]).unwrap_err();
    assert!(e.to_string().contains("JSON array"), "{e}");
    // Unknown Kusto properties are ignored.
    let o = ingest::options_from_properties(&[("tags".into(), "[\"a\"]".into()), ("format".into(), "json".into())])
        .unwrap();
    assert_eq!(o.format, Some(Format::Json));
}

#[test]
fn missing_file_is_bad_request() {
    let s = schema(&[("n", KqlType::Long)]);
    let e = ingest::ingest_file(Path::new("/nonexistent/x.csv"), &s, &IngestOptions::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(e.to_string().contains("/nonexistent/x.csv"), "{e}");
}

fn json_schema() -> KqlSchema {
    schema(&[
        ("name", KqlType::String),
        ("n", KqlType::Long),
        ("t", KqlType::Datetime),
        ("props", KqlType::Dynamic),
        ("ok", KqlType::Bool),
    ])
}

fn check_json(b: &RecordBatch) {
    assert_eq!(b.num_rows(), 3);
    assert_eq!(strings(b, 0), vec![Some("a".into()), Some("{\"x\":1}".into()), None]);
    assert_eq!(longs(b, 1), vec![Some(1), Some(2), None]);
    let ts: Vec<_> = b.column(2).as_primitive::<TimestampNanosecondType>().iter().collect();
    assert_eq!(ts, vec![Some(TS_2024), None, None]);
    assert_eq!(strings(b, 3), vec![Some(r#"{"z":[1,{"y":null}],"a":"s p"}"#.into()), Some("5".into()), None]);
    let oks: Vec<_> = b.column(4).as_boolean().iter().collect();
    assert_eq!(oks, vec![Some(true), Some(false), None]);
}

#[test]
fn json_lines_and_array() {
    let tmp = tempfile::tempdir().unwrap();
    let s = json_schema();
    let records = [
        "{\"name\":\"a\",\"n\":1,\"t\":\"2024-01-02T03:04:05Z\",\"props\":{\"z\": [1, {\"y\": null}], \"a\": \"s p\"},\"ok\":true,\"extra\":0}",
        "{\"name\":{\"x\": 1},\"n\":\"2\",\"t\":\"garbage\",\"props\":5,\"ok\":\"false\"}",
        "{\"Name\":\"case matters\",\"n\":1.5,\"props\":null}",
    ];
    let lines = format!("{}\n{}\r\n\n{}\n", records[0], records[1], records[2]);
    let opts = IngestOptions { format: Some(Format::Json), ..Default::default() };
    let p = write(tmp.path(), "a.json", lines.as_bytes());
    check_json(&one(&ingest::ingest_file(&p, &s, &opts).unwrap().batches, &s));

    let array = format!("\u{feff} [\n{}\n]\n", records.join(",\n"));
    let p = write(tmp.path(), "b.json", array.as_bytes());
    check_json(&one(&ingest::ingest_file(&p, &s, &opts).unwrap().batches, &s));

    // Multi-line objects (multijson).
    let multi = "{\n \"name\": \"a\",\n \"n\": 1\n}\n{\"name\": \"b\"}";
    let p = write(tmp.path(), "c.json", multi.as_bytes());
    let b = one(&ingest::ingest_file(&p, &s, &opts).unwrap().batches, &s);
    assert_eq!(strings(&b, 0), vec![Some("a".into()), Some("b".into())]);
}

#[test]
fn json_errors_are_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = json_schema();
    let opts = IngestOptions { format: Some(Format::Json), ..Default::default() };
    for (name, text) in [("a.json", "{\"n\":1}\n{\"n\":"), ("b.json", "[{\"n\":1}, 5]"), ("c.json", "[1]"), ("d.json", "7")] {
        let p = write(tmp.path(), name, text.as_bytes());
        let e = ingest::ingest_file(&p, &s, &opts).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest, "{name}: {e}");
    }
    let p = write(tmp.path(), "e.json", b"   ");
    assert!(ingest::ingest_file(&p, &s, &opts).unwrap().batches.is_empty());
}

#[test]
fn parquet_by_name_with_casts_and_storage_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    // A foreign Parquet file: different column order, other Arrow types, an unknown column.
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None, Some(vec![])]);
    let src_schema = Arc::new(Schema::new(vec![
        Field::new("when", DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())), true),
        Field::new("small", DataType::Int16, true),
        Field::new("F", DataType::Float32, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("tags", DataType::List(item), true),
        Field::new("ignored", DataType::Int64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![Some(1_704_164_645_000), None, Some(0)]).with_timezone("+02:00")),
        Arc::new(Int16Array::from(vec![Some(1), Some(-2), None])),
        Arc::new(Float32Array::from(vec![Some(0.5), None, Some(2.0)])),
        Arc::new(StringArray::from(vec![Some("12"), Some("x"), None])),
        Arc::new(list),
        Arc::new(Int64Array::from(vec![Some(9), Some(9), Some(9)])),
    ];
    let src = RecordBatch::try_new(src_schema.clone(), cols).unwrap();
    let path = tmp.path().join("in.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), src_schema, None).unwrap();
    w.write(&src).unwrap();
    w.close().unwrap();

    let s = schema(&[
        ("small", KqlType::Long),
        ("when", KqlType::Datetime),
        ("f", KqlType::Real),
        ("text", KqlType::Int),
        ("tags", KqlType::Dynamic),
        ("missing", KqlType::String),
        ("small2", KqlType::Timespan),
    ]);
    let (progress, events) = recorder();
    let opts = IngestOptions { format: Some(Format::Parquet), progress: Some(progress), ..Default::default() };
    let batches = ingest::ingest_file(&path, &s, &opts).unwrap().batches;
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        *events.lock().unwrap(),
        [Step::Started(ProgressUnit::Rows, size, 3), Step::Advanced(3), Step::Finished],
        "Parquet progress counts rows"
    );
    let b = one(&batches, &s);
    assert_eq!(b.schema(), s.arrow_schema());
    assert_eq!(longs(&b, 0), vec![Some(1), Some(-2), None]);
    let ts: Vec<_> = b.column(1).as_primitive::<TimestampNanosecondType>().iter().collect();
    assert_eq!(ts, vec![Some(TS_2024), None, Some(0)], "timestamps keep their UTC instant");
    let f: Vec<_> = b.column(2).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(f, vec![Some(0.5), None, Some(2.0)]);
    let ints: Vec<_> = b.column(3).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(ints, vec![Some(12), None, None]);
    assert_eq!(strings(&b, 4), vec![Some("[1,2]".into()), None, Some("[]".into())]);
    assert_eq!(b.column(5).null_count(), 3);
    assert_eq!(b.column(6).null_count(), 3);

    // Through storage and back. The stored extent is encrypted: not Parquet anyone can read.
    let st = Storage::create(&tmp.path().join("c")).unwrap();
    let ext = st.write_extent(&batches, &s.arrow_schema()).unwrap();
    let back = one(&st.read_extent(&ext).unwrap(), &s);
    assert_eq!(back, b);
    let e = ingest::ingest_file(&st.extent_path(&ext).unwrap(), &s, &opts).unwrap_err();
    assert!(e.to_string().contains("not Parquet"), "{e}");
}

#[test]
fn parquet_incompatible_column_is_bad_request() {
    let tmp = tempfile::tempdir().unwrap();
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let src_schema = Arc::new(Schema::new(vec![Field::new("l", DataType::List(item), true)]));
    let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)])]);
    let src = RecordBatch::try_new(src_schema.clone(), vec![Arc::new(list)]).unwrap();
    let path = tmp.path().join("in.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), src_schema, None).unwrap();
    w.write(&src).unwrap();
    w.close().unwrap();
    let s = schema(&[("l", KqlType::Long)]);
    let opts = IngestOptions { format: Some(Format::Parquet), ..Default::default() };
    let e = ingest::ingest_file(&path, &s, &opts).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let not_parquet = write(tmp.path(), "x.parquet", b"a,b\n");
    assert_eq!(ingest::ingest_file(&not_parquet, &s, &opts).unwrap_err().code(), ErrorCode::BadRequest);
}

#[test]
fn streaming_ingest_into_extent_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let s = schema(&[("n", KqlType::Long), ("s", KqlType::String)]);
    let mut text = String::new();
    for i in 0..70_000 {
        text.push_str(&format!("{i},v{i}\n"));
    }
    let p = write(tmp.path(), "big.csv", text.as_bytes());
    let st = Storage::create(&tmp.path().join("c")).unwrap();
    let mut w = st.extent_writer(&s.arrow_schema()).unwrap();
    let (progress, events) = recorder();
    let rows = ingest::ingest_file_with(&p, &s, &IngestOptions { progress: Some(progress), ..Default::default() }, &mut |b| {
        w.write(&b)
    })
    .unwrap();
    assert_eq!(rows.rows, 70_000);
    let len = std::fs::metadata(&p).unwrap().len();
    let events = events.lock().unwrap().clone();
    assert_eq!(events.first(), Some(&Step::Started(ProgressUnit::Bytes, len, len)));
    assert_eq!(events.iter().rev().nth(1), Some(&Step::Advanced(len)), "every byte is counted");
    assert_eq!(events.last(), Some(&Step::Finished));
    let ext = w.finish().unwrap();
    assert_eq!(ext.rows, 70_000);
    let back = one(&st.read_extent(&ext).unwrap(), &s);
    assert_eq!(back.column(1).as_string::<i32>().value(69_999), "v69999");
}
