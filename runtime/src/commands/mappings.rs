//! Ingestion mappings: `.create[-or-alter] table T ingestion KIND mapping "Name" '[...]'`,
//! `.show table T ingestion [KIND] mappings`, `.drop table T ingestion KIND mapping "Name"`.
//! An ingestion uses one with `ingestionMappingReference` (see `ingestion.rs` and
//! `crate::ingest::mapping`).

use std::collections::HashMap;

use kustodian_parser::ast;
use kustodian_planner::KqlType;

use super::{Cx, need_table, need_table_mut, table_db};
use crate::error::{Result, RuntimeError};
use crate::ingest::mapping::Mapping;
use crate::meta::IngestionMappingMeta;
use crate::output::{QueryOutput, V, table};

fn text(l: &ast::Literal, what: &str) -> Result<String> {
    match &l.kind {
        ast::LiteralKind::String(s) => Ok(s.clone()),
        _ => Err(RuntimeError::bad_request(format!("the {what} is a string"))),
    }
}

const MAPPING_COLS: &[(&str, KqlType)] = &[
    ("Name", KqlType::String),
    ("Kind", KqlType::String),
    ("Mapping", KqlType::String),
    ("LastUpdatedOn", KqlType::Datetime),
    ("Database", KqlType::String),
    ("Table", KqlType::String),
];

fn rows<'m>(d: &str, t: &str, mappings: impl Iterator<Item = &'m IngestionMappingMeta>) -> Vec<Vec<V>> {
    mappings
        .map(|m| {
            vec![
                V::S(m.name.clone()),
                V::S(m.kind.clone()),
                V::S(m.mapping.clone()),
                V::D(Some(m.last_updated)),
                V::S(d.to_string()),
                V::S(t.to_string()),
            ]
        })
        .collect()
}

/// Creates (or, `or_alter`, replaces) a mapping, after checking it against the table's columns.
pub(super) fn create(cx: &Cx<'_>, or_alter: bool, q: &ast::QualifiedName, kind: &ast::Ident, name: &ast::Literal, mapping: &ast::Literal) -> Result<QueryOutput> {
    let Cx { cluster, ctx, snap, .. } = *cx;
    let (d, t) = table_db(q, ctx, snap)?;
    let name = text(name, "mapping's name")?;
    let mapping = text(mapping, "mapping")?;
    let kind = kind.name.to_ascii_lowercase();
    let tm = need_table(&snap.meta, &d, &t)?;
    Mapping::parse(&kind, &mapping, &tm.schema)?;
    // Kept as given, minified.
    let mapping = crate::ingest::convert::minify_json(&mapping);
    let mut meta = snap.meta.clone();
    let tm = need_table_mut(&mut meta, &d, &t)?;
    let entry = IngestionMappingMeta { name: name.clone(), kind: kind.clone(), mapping, last_updated: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() };
    match tm.mappings.iter_mut().find(|m| m.name == name && m.kind == kind) {
        Some(_) if !or_alter => {
            return Err(RuntimeError::bad_request(format!("table '{t}' already has a {kind} ingestion mapping named '{name}'; use .create-or-alter")));
        }
        Some(existing) => *existing = entry,
        None => tm.mappings.push(entry),
    }
    cluster.commit(meta, HashMap::new())?;
    let snap = cluster.snapshot();
    let tm = need_table(&snap.meta, &d, &t)?;
    table(MAPPING_COLS, rows(&d, &t, tm.mappings.iter().filter(|m| m.name == name && m.kind == kind)))
}

/// Lists a table's mappings (of a kind; or one by name).
pub(super) fn show(cx: &Cx<'_>, q: &ast::QualifiedName, kind: Option<&ast::Ident>, name: Option<&ast::Literal>) -> Result<QueryOutput> {
    let Cx { ctx, snap, .. } = *cx;
    let (d, t) = table_db(q, ctx, snap)?;
    let tm = need_table(&snap.meta, &d, &t)?;
    let name = name.map(|n| text(n, "mapping's name")).transpose()?;
    let kind = kind.map(|k| k.name.to_ascii_lowercase());
    let found: Vec<&IngestionMappingMeta> = tm
        .mappings
        .iter()
        .filter(|m| kind.as_ref().is_none_or(|k| &m.kind == k) && name.as_ref().is_none_or(|n| &m.name == n))
        .collect();
    if let (Some(n), true) = (&name, found.is_empty()) {
        return Err(RuntimeError::bad_request(format!("table '{t}' has no {} ingestion mapping named '{n}'", kind.unwrap_or_default())));
    }
    table(MAPPING_COLS, rows(&d, &t, found.into_iter()))
}

/// Drops a mapping.
pub(super) fn drop(cx: &Cx<'_>, q: &ast::QualifiedName, kind: &ast::Ident, name: &ast::Literal) -> Result<QueryOutput> {
    let Cx { cluster, ctx, snap, .. } = *cx;
    let (d, t) = table_db(q, ctx, snap)?;
    let name = text(name, "mapping's name")?;
    let kind = kind.name.to_ascii_lowercase();
    need_table(&snap.meta, &d, &t)?;
    let mut meta = snap.meta.clone();
    let tm = need_table_mut(&mut meta, &d, &t)?;
    let before = tm.mappings.len();
    tm.mappings.retain(|m| !(m.name == name && m.kind == kind));
    if tm.mappings.len() == before {
        return Err(RuntimeError::bad_request(format!("table '{t}' has no {kind} ingestion mapping named '{name}'")));
    }
    cluster.commit(meta, HashMap::new())?;
    let snap = cluster.snapshot();
    let tm = need_table(&snap.meta, &d, &t)?;
    table(MAPPING_COLS, rows(&d, &t, tm.mappings.iter()))
}
