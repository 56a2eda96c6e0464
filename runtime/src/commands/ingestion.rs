//! Ingestion and writes from queries: `.ingest inline`, `.ingest into` (local files below the
//! ingestion roots), `.set|.append|.set-or-append|.set-or-replace` and
//! `.show ingestion failures`. Every change of a table's data goes through [`append`], which
//! also recomputes the table's materialized views in the same commit.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use kustodian_parser::ast::{self, TableWriteMode};
use kustodian_planner::KqlType;

use super::tables::new_table;
use super::{Cx, can_ingest, is_db_user, is_table_admin, need_db_mut, need_table, need_table_mut, prop, props, table_db};
use crate::auth::{self, Action, Caller, check, Needs};
use crate::catalog::State;
use crate::cluster::{Cluster, Meta};
use crate::error::{Result, RuntimeError};
use crate::ingest;
use crate::names::{self, EntityKind};
use crate::output::{QueryOutput, V, table};

/// `.ingest inline into table T [with (...)] <| data`.
pub(super) async fn ingest_inline(cx: &Cx<'_>, t: &ast::QualifiedName, data: &str, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let meta = &snap.meta;
    let (d, t) = table_db(t, ctx, snap)?;
    check(can_ingest(snap, caller, &d, &t), caller, &format!("ingest into table '{t}'"), Needs::TableIngestor)?;
    let tm = need_table(meta, &d, &t)?;
    let started = std::time::Instant::now();
    let result = async {
        let opts = ingest::options_from_properties(&props(with))?;
        if already_ingested(tm, &opts) {
            return ingest::command_result(table(APPENDED_COLS, Vec::new())?, &ingest::IngestSummary::default(), started.elapsed());
        }
        let mapping = resolve_mapping(tm, &opts, opts.format.unwrap_or(ingest::Format::Csv))?;
        let read_schema = mapping.as_ref().map_or_else(|| tm.schema.clone(), |m| m.source_schema(&tm.schema));
        let ingested = ingest::ingest_inline(data, &read_schema, &opts)?;
        let mut sink = cluster.extent_sink(&tm.schema.arrow_schema(), &opts.tags);
        for b in ingested.batches {
            sink.push(map_batch(mapping.as_ref(), b, &tm.schema)?)?;
        }
        let committed = append(cluster, meta.clone(), &d, &t, sink).await?;
        ingest::command_result(committed, &ingested.summary, started.elapsed())
    }
    .await;
    record_failure(cluster, caller, result, &d, &t, "inline", "DataIngestInline", with, 1)
}

/// `.ingest into table T ('path', ...) [with (...)]`: local files, below the ingestion roots.
pub(super) async fn ingest_files(cx: &Cx<'_>, t: &ast::QualifiedName, sources: &[ast::Literal], with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let meta = &snap.meta;
    let (d, t) = table_db(t, ctx, snap)?;
    check(can_ingest(snap, caller, &d, &t), caller, &format!("ingest into table '{t}'"), Needs::TableIngestor)?;
    let tm = need_table(meta, &d, &t)?;
    let started = std::time::Instant::now();
    let mut current = String::new();
    let result = async {
        let opts = ingest::IngestOptions {
            progress: cluster.ingestion_progress.clone(),
            ..ingest::options_from_properties(&props(with))?
        };
        if already_ingested(tm, &opts) {
            return ingest::command_result(table(APPENDED_COLS, Vec::new())?, &ingest::IngestSummary::default(), started.elapsed());
        }
        // Batches are written into extents as they are read: a large file never sits in memory.
        let mut sink = cluster.extent_sink(&tm.schema.arrow_schema(), &opts.tags);
        let mut summary = ingest::IngestSummary::default();
        for s in sources {
            let path = match &s.kind {
                ast::LiteralKind::String(p) => {
                    current = p.clone();
                    p.clone()
                }
                // An obfuscated source is never written down in the clear.
                ast::LiteralKind::ObfuscatedString(p) => {
                    current = "h'****'".into();
                    p.clone()
                }
                _ => return Err(RuntimeError::bad_request("ingestion sources must be string literals")),
            };
            let file = cluster.ingestion_roots.resolve(&path, cluster.storage.as_ref().map(|s| s.dir()))?;
            // The mapping's kind, when neither the format nor the kind is given: JSON for a
            // `.json` file, delimited otherwise.
            let by_name = file.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("jsonl"));
            let format = opts.format.unwrap_or(if by_name { ingest::Format::Json } else { ingest::Format::Csv });
            let mapping = resolve_mapping(tm, &opts, format)?;
            let read_schema = mapping.as_ref().map_or_else(|| tm.schema.clone(), |m| m.source_schema(&tm.schema));
            let one = ingest::ingest_file_with(&file, &read_schema, &opts, &mut |b| sink.push(map_batch(mapping.as_ref(), b, &tm.schema)?))?;
            summary.merge(one);
        }
        let committed = append(cluster, meta.clone(), &d, &t, sink).await?;
        ingest::command_result(committed, &summary, started.elapsed())
    }
    .await;
    record_failure(cluster, caller, result, &d, &t, &current, "DataIngestPull", with, sources.len())
}

/// `.set|.append|.set-or-append|.set-or-replace T <| query`.
pub(super) async fn table_from_query(cx: &Cx<'_>, mode: TableWriteMode, t: &ast::QualifiedName, query: &ast::Query) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, text, .. } = *cx;
    let mut meta = snap.meta.clone();
    let (d, tname) = table_db(t, ctx, snap)?;
    let exists = meta.db(&d).and_then(|x| x.table(&tname)).is_some();
    match (mode, exists) {
        (TableWriteMode::Set, true) => return Err(RuntimeError::bad_request(format!("table '{tname}' already exists; use .append or .set-or-append"))),
        (TableWriteMode::Append, false) => return Err(RuntimeError::bad_request(format!("table '{tname}' does not exist; use .set or .set-or-append"))),
        (TableWriteMode::SetOrReplace, true) => check(is_table_admin(snap, caller, &d, &tname), caller, &format!("replace the data of table '{tname}'"), Needs::TableAdmin)?,
        (_, true) => check(can_ingest(snap, caller, &d, &tname), caller, &format!("append to table '{tname}'"), Needs::TableIngestor)?,
        (_, false) => check(is_db_user(snap, caller, &d), caller, &format!("create table '{tname}'"), Needs::DatabaseUser)?,
    }
    let planned = cluster.plan(snap, caller, ctx, query, text)?;
    let (_, physical) = cluster.physical(&planned).await?;
    let batches = physical.collect().await?;
    if !exists {
        names::validate(EntityKind::Table, &tname, false)?;
        for c in &planned.schema.columns {
            names::validate(EntityKind::Column, &c.name, true)?;
        }
        crate::materialized::name_free(&meta, &d, &tname)?;
        let dbm = need_db_mut(&mut meta, &d)?;
        dbm.tables.push(new_table(&tname, planned.schema.clone(), &caller.principal, &[]));
    } else {
        let tm = need_table(&meta, &d, &tname)?;
        if tm.schema.columns.iter().map(|c| c.ty).ne(planned.schema.columns.iter().map(|c| c.ty)) {
            return Err(RuntimeError::bad_request(format!(
                "the query's schema {} does not match table '{tname}' {}",
                planned.schema.to_kql(),
                tm.schema.to_kql()
            )));
        }
        if mode == TableWriteMode::SetOrReplace {
            need_table_mut(&mut meta, &d, &tname)?.extents.clear();
        }
    }
    let schema = need_table(&meta, &d, &tname)?.schema.arrow_schema();
    let mut sink = cluster.extent_sink(&schema, &[]);
    for b in batches {
        sink.push(b)?;
    }
    append(cluster, meta, &d, &tname, sink).await
}

const APPENDED_COLS: &[(&str, KqlType)] = &[("ExtentId", KqlType::String), ("RowCount", KqlType::Long)];

/// `ingestIfNotExists`: whether the table already has an extent tagged `ingest-by:` one of the
/// given values (the ingestion is then skipped).
fn already_ingested(tm: &crate::meta::TableMeta, opts: &ingest::IngestOptions) -> bool {
    opts.ingest_if_not_exists.iter().any(|v| {
        let tag = format!("ingest-by:{v}");
        tm.extents.iter().any(|e| e.tags.iter().any(|t| t == &tag))
    })
}

/// The ingestion's mapping: inline (`ingestionMapping`), or the table's by name
/// (`ingestionMappingReference`, of the mapping kind or the format's kind).
fn resolve_mapping(tm: &crate::meta::TableMeta, opts: &ingest::IngestOptions, format: ingest::Format) -> Result<Option<ingest::mapping::Mapping>> {
    let kind = opts.mapping_kind.clone().unwrap_or_else(|| format.name().to_ascii_lowercase());
    if let Some(text) = &opts.mapping_text {
        return ingest::mapping::Mapping::parse(&kind, text, &tm.schema).map(Some);
    }
    let Some(name) = &opts.mapping_reference else { return Ok(None) };
    let m = tm
        .mappings
        .iter()
        .find(|m| &m.name == name && m.kind.eq_ignore_ascii_case(&kind))
        .ok_or_else(|| RuntimeError::bad_request(format!("table '{}' has no {kind} ingestion mapping named '{name}'", tm.name)))?;
    ingest::mapping::Mapping::parse(&m.kind, &m.mapping, &tm.schema).map(Some)
}

fn map_batch(mapping: Option<&ingest::mapping::Mapping>, b: RecordBatch, schema: &kustodian_planner::KqlSchema) -> Result<RecordBatch> {
    match mapping {
        Some(m) => m.project(&b, schema),
        None => Ok(b),
    }
}

/// An ingestion's result, and on failure (other than a refusal) a record of it for
/// `.show ingestion failures`, committed in place of the change that failed: the table stays as
/// it was, the failure is kept (Kusto's behaviour).
#[allow(clippy::too_many_arguments)]
fn record_failure(
    cluster: &Cluster,
    caller: &Caller,
    result: Result<QueryOutput>,
    db: &str,
    table: &str,
    source: &str,
    kind: &str,
    with: &[ast::Property],
    sources: usize,
) -> Result<QueryOutput> {
    let e = match result {
        Ok(out) => return Ok(out),
        Err(e @ (RuntimeError::Forbidden(_) | RuntimeError::Plan(kustodian_planner::PlanError::Forbidden { .. }))) => return Err(e),
        Err(e) => e,
    };
    let mut f = ingest::IngestionFailure::from_error(&e, db, table, source, kind);
    f.principal = caller.principal.fqn();
    f.user = caller.principal.fqn();
    f.ingestion_properties = ingest::errors::properties_json(&props(with));
    f.number_of_sources = i32::try_from(sources).unwrap_or(i32::MAX);
    let mut meta = cluster.snapshot().meta.clone();
    meta.ingestion_failures.push(f);
    let excess = meta.ingestion_failures.len().saturating_sub(crate::meta::MAX_INGESTION_FAILURES);
    meta.ingestion_failures.drain(..excess);
    // The failure is what the caller must hear about, even if keeping its record failed.
    let _ = cluster.commit(meta, HashMap::new());
    Err(e)
}

const INGESTION_FAILURE_COLS: &[(&str, KqlType)] = &[
    ("OperationId", KqlType::Guid),
    ("Database", KqlType::String),
    ("Table", KqlType::String),
    ("FailedOn", KqlType::Datetime),
    ("IngestionSourcePath", KqlType::String),
    ("Details", KqlType::String),
    ("FailureKind", KqlType::String),
    ("RootActivityId", KqlType::Guid),
    ("OperationKind", KqlType::String),
    ("OriginatesFromUpdatePolicy", KqlType::Bool),
    ("ErrorCode", KqlType::String),
    ("Principal", KqlType::String),
    ("ShouldRetry", KqlType::Bool),
    ("User", KqlType::String),
    ("IngestionProperties", KqlType::String),
    ("NumberOfSources", KqlType::Long),
];

/// `.show ingestion failures [with (OperationId = '...')]`: the failures of the database in
/// scope (whose metadata the caller may show), newest last.
pub(super) fn show_ingestion_failures(snap: &State, caller: &Caller, db: &str, with: &[ast::Property]) -> Result<QueryOutput> {
    let operation = prop(with, "OperationId");
    let rows = snap
        .meta
        .ingestion_failures
        .iter()
        .filter(|f| f.database.eq_ignore_ascii_case(db) && auth::allows(&snap.meta, caller, &Action::ShowDatabase(&f.database)))
        .filter(|f| operation.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(&f.operation_id)))
        .map(|f| {
            vec![
                V::S(f.operation_id.clone()),
                V::S(f.database.clone()),
                V::S(f.table.clone()),
                V::D(Some(f.failed_on)),
                V::S(f.ingestion_source_path.clone()),
                V::S(f.details.clone()),
                V::S(f.failure_kind.clone()),
                V::S(f.root_activity_id.clone()),
                V::S(f.operation_kind.clone()),
                V::B(f.originates_from_update_policy),
                V::S(f.error_code.clone()),
                V::S(f.principal.clone()),
                V::B(f.should_retry),
                V::S(f.user.clone()),
                V::S(f.ingestion_properties.clone()),
                V::L(i64::from(f.number_of_sources)),
            ]
        })
        .collect();
    table(INGESTION_FAILURE_COLS, rows)
}

/// Appends the sink's extents to a table and re-materializes its materialized views, in one
/// commit.
async fn append(cluster: &Cluster, mut meta: Meta, db: &str, t: &str, sink: crate::cluster::ExtentSink<'_>) -> Result<QueryOutput> {
    let mut new_data = HashMap::new();
    let mut rows = Vec::new();
    for (info, data) in sink.finish()? {
        rows.push(vec![V::S(info.id.clone()), V::L(info.rows as i64)]);
        if let Some(data) = data {
            new_data.insert(info.id.clone(), data);
        }
        need_table_mut(&mut meta, db, t)?.extents.push(info);
    }
    crate::materialized::refresh(cluster, &mut meta, &mut new_data, db, t).await?;
    cluster.commit(meta, new_data)?;
    // Small extents merge once there are enough of them: a separate commit, so the
    // ingestion stands whatever happens to the merge. A failed merge changes nothing (its
    // files are never referenced; an unreadable extent fails its table's queries anyway) and
    // the next ingestion tries again.
    let _ = cluster.merge_small_extents(db, t);
    table(APPENDED_COLS, rows)
}
