//! Cluster directory storage: metadata commits, extents, crash recovery by GC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, DurationNanosecondArray, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampNanosecondArray,
};
use kustodian_planner::types::{KQL_TYPE_KEY, KqlColumn, KqlSchema, KqlType};
use kustodian_runtime::ErrorCode;
use kustodian_runtime::storage::{ExtentInfo, Storage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    version: u32,
    extents: Vec<ExtentInfo>,
}

fn all_types_schema() -> KqlSchema {
    KqlSchema::new(vec![
        KqlColumn::new("b", KqlType::Bool),
        KqlColumn::new("i", KqlType::Int),
        KqlColumn::new("l", KqlType::Long),
        KqlColumn::new("r", KqlType::Real),
        KqlColumn::new("d", KqlType::Decimal),
        KqlColumn::new("s", KqlType::String),
        KqlColumn::new("t", KqlType::Datetime),
        KqlColumn::new("ts", KqlType::Timespan),
        KqlColumn::new("g", KqlType::Guid),
        KqlColumn::new("dyn", KqlType::Dynamic),
    ])
}

fn all_types_batch() -> RecordBatch {
    let schema = all_types_schema().arrow_schema();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(Int32Array::from(vec![Some(1), None, Some(-3)])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(-1)])),
        Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN)])),
        Arc::new(
            Decimal128Array::from(vec![Some(15_000_000_000i128), None, Some(-1)])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec![Some("a"), None, Some("")])),
        Arc::new(TimestampNanosecondArray::from(vec![Some(1_700_000_000_123_456_789), None, Some(-1)])),
        Arc::new(DurationNanosecondArray::from(vec![Some(3_600_000_000_000), None, Some(-100)])),
        Arc::new(StringArray::from(vec![Some("0f8fad5b-d9cb-469f-a165-70867728950e"), None, None])),
        Arc::new(StringArray::from(vec![Some(r#"{"a":[1,2]}"#), None, Some("\"x\"")])),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn create_open_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let s = Storage::create(&dir).unwrap();
    assert_eq!(s.load_metadata::<Meta>().unwrap(), None);
    let again = Storage::create(&dir).unwrap_err();
    assert_eq!(again.code(), ErrorCode::BadRequest);
    assert!(again.to_string().contains("already holds"), "{again}");

    let not = Storage::open(tmp.path()).unwrap_err();
    assert_eq!(not.code(), ErrorCode::BadRequest);
    assert!(not.to_string().contains("not a Kustodian cluster directory"), "{not}");
    let missing = Storage::open(&tmp.path().join("nope")).unwrap_err();
    assert_eq!(missing.code(), ErrorCode::BadRequest);

    // A non-empty directory that is not a cluster is refused by create.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x.txt"), "x").unwrap();
    assert_eq!(Storage::create(&other).unwrap_err().code(), ErrorCode::BadRequest);
    Storage::open(&dir).unwrap();
}

#[test]
fn metadata_commit_replaces_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::create(tmp.path()).unwrap();
    let m1 = Meta { version: 1, extents: vec![] };
    s.commit_metadata(&m1).unwrap();
    assert_eq!(s.load_metadata::<Meta>().unwrap(), Some(m1.clone()));
    let m2 = Meta { version: 2, extents: vec![] };
    s.commit_metadata(&m2).unwrap();
    let reopened = Storage::open(tmp.path()).unwrap();
    assert_eq!(reopened.load_metadata::<Meta>().unwrap(), Some(m2));
    // No temporary files are left behind by a commit.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A crash in the middle of a commit leaves a temp file and the old metadata intact.
    std::fs::write(tmp.path().join(".tmp-deadbeef-metadata.json"), "{\"version\": 3, \"exte").unwrap();
    let reopened = Storage::open(tmp.path()).unwrap();
    assert_eq!(reopened.load_metadata::<Meta>().unwrap().map(|m| m.version), Some(2));
    assert_eq!(reopened.garbage_collect(&HashSet::new(), &reopened.lock_writer().unwrap()).unwrap(), 1);
}

#[test]
fn extents_round_trip_all_types_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::create(tmp.path()).unwrap();
    let batch = all_types_batch();
    let ext = s.write_extent(&[batch.clone(), batch.clone()], &batch.schema()).unwrap();
    assert_eq!(ext.rows, 6);
    assert!(ext.bytes > 0);
    assert_eq!(ext.file, format!("extents/{}.parquet", ext.id));
    assert!(s.extent_path(&ext).unwrap().is_file());
    let back = s.read_extent(&ext).unwrap();
    let rows: usize = back.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 6);
    let first = &back[0];
    assert_eq!(first.schema(), batch.schema());
    for (f, col) in first.schema().fields().iter().zip(all_types_schema().columns) {
        assert_eq!(f.metadata().get(KQL_TYPE_KEY).map(String::as_str), Some(col.ty.name()));
        assert_eq!(KqlType::of_field(f), Some(col.ty));
    }
    let got = first.slice(0, 3);
    for i in 0..batch.num_columns() {
        let (a, b) = (batch.column(i), got.column(i));
        assert_eq!(a.len(), b.len());
        assert_eq!(a.nulls(), b.nulls(), "column {i}");
        if i != 3 {
            assert_eq!(a.as_ref(), b.as_ref(), "column {i}");
        }
    }
    let reals = got.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(reals.value(0), 1.5);
    assert!(reals.value(2).is_nan());
    assert_eq!(s.extent_schema(&ext).unwrap(), batch.schema());
}

#[test]
fn crash_before_commit_is_undone_by_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let batch = all_types_batch();
    let committed = {
        let s = Storage::create(tmp.path()).unwrap();
        let ext = s.write_extent(std::slice::from_ref(&batch), &batch.schema()).unwrap();
        s.commit_metadata(&Meta { version: 1, extents: vec![ext.clone()] }).unwrap();
        // A second command writes an extent and a half-written one, then "crashes" before
        // committing metadata.
        let _orphan = s.write_extent(std::slice::from_ref(&batch), &batch.schema()).unwrap();
        let mut w = s.extent_writer(&batch.schema()).unwrap();
        w.write(&batch).unwrap();
        std::mem::forget(w); // a crash: no Drop, the temporary file stays
        ext
    };
    let s = Storage::open(tmp.path()).unwrap();
    let meta: Meta = s.load_metadata().unwrap().unwrap();
    assert_eq!(meta.extents, vec![committed.clone()]);
    let files = std::fs::read_dir(tmp.path().join("extents")).unwrap().count();
    assert_eq!(files, 3);
    let live: HashSet<String> = meta.extents.iter().map(|e| e.id.clone()).collect();
    assert_eq!(s.garbage_collect(&live, &s.lock_writer().unwrap()).unwrap(), 2);
    assert_eq!(std::fs::read_dir(tmp.path().join("extents")).unwrap().count(), 1);
    assert_eq!(s.garbage_collect(&live, &s.lock_writer().unwrap()).unwrap(), 0);
    let back = s.read_extent(&committed).unwrap();
    assert_eq!(back, vec![batch]);
}

#[test]
fn abandoned_writer_removes_its_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::create(tmp.path()).unwrap();
    let batch = all_types_batch();
    {
        let mut w = s.extent_writer(&batch.schema()).unwrap();
        w.write(&batch).unwrap();
        assert_eq!(w.rows(), 3);
    }
    assert_eq!(std::fs::read_dir(tmp.path().join("extents")).unwrap().count(), 0);
}

#[test]
fn extent_paths_cannot_escape_the_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::create(tmp.path()).unwrap();
    let bad = ExtentInfo::new("x".into(), "../x.parquet".into(), 0, 0, 0);
    assert!(s.read_extent(&bad).is_err());
    let abs = ExtentInfo::new("x".into(), "/etc/passwd".into(), 0, 0, 0);
    assert!(s.extent_path(&abs).is_err());
}

#[test]
fn empty_extent() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Storage::create(tmp.path()).unwrap();
    let schema = all_types_schema().arrow_schema();
    let ext = s.write_extent(&[], &schema).unwrap();
    assert_eq!(ext.rows, 0);
    assert!(s.read_extent(&ext).unwrap().is_empty());
    assert_eq!(s.extent_schema(&ext).unwrap(), schema);
}
