//! Tables: `.create[-merge] table(s)`, `.drop table(s)`, `.show tables`, `.show table T`
//! (details, schema).

use std::collections::HashMap;

use kustodian_parser::ast;
use kustodian_planner::{KqlColumn, KqlSchema, KqlType, Principal, RequestContext};

use super::{Cx, can_show, is_db_user, is_table_admin, need_db_mut, need_table, prop, table_db};
use crate::auth::{Caller, Role, RoleAssignment, check, Needs};
use crate::catalog::State;
use crate::cluster::{Cluster, Meta, TableMeta};
use crate::error::{Result, RuntimeError};
use crate::names::{self, EntityKind};
use crate::output::{QueryOutput, V, table};

/// `.create[-merge] table T (cols)`: the table's schema.
pub(super) fn create_table(cx: &Cx<'_>, merge: bool, def: &ast::TableDef, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    create_or_merge(cluster, caller, ctx, &mut meta, merge, std::slice::from_ref(def), with)?;
    let (d, t) = table_db(&def.name, ctx, snap)?;
    show_schema(&cluster.snapshot(), &d, &[t])
}

/// `.create[-merge] tables T1 (cols), T2 (cols)`: their schemas.
pub(super) fn create_tables(cx: &Cx<'_>, merge: bool, tables: &[ast::TableDef], with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, db, .. } = *cx;
    let mut meta = snap.meta.clone();
    create_or_merge(cluster, caller, ctx, &mut meta, merge, tables, with)?;
    let names: Vec<String> = tables.iter().map(|t| t.name.name.name.clone()).collect();
    show_schema(&cluster.snapshot(), db, &names)
}

/// `.show tables`.
pub(super) fn show_tables(cx: &Cx<'_>) -> Result<QueryOutput> {
    let Cx { caller, snap, db, .. } = *cx;
    check(can_show(snap, caller, db), caller, &format!("show the tables of database '{db}'"), Needs::DatabaseViewer)?;
    let d = snap.meta.db(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
    let rows = d.tables.iter().map(|t| vec![V::S(t.name.clone()), V::S(d.name.clone()), V::S(t.folder.clone()), V::S(t.docstring.clone())]).collect();
    table(&[("TableName", KqlType::String), ("DatabaseName", KqlType::String), ("Folder", KqlType::String), ("DocString", KqlType::String)], rows)
}

/// `.show table T` and `.show table T details`: its columns and their types.
pub(super) fn show_table(cx: &Cx<'_>, name: &ast::QualifiedName) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(name, ctx, snap)?;
    check(can_show(snap, caller, &d), caller, &format!("show table '{t}'"), Needs::DatabaseViewer)?;
    let tm = need_table(&snap.meta, &d, &t)?;
    let rows = tm
        .schema
        .columns
        .iter()
        .map(|c| vec![V::S(c.name.clone()), V::S(c.ty.name().to_string())])
        .collect();
    table(&[("AttributeName", KqlType::String), ("AttributeType", KqlType::String)], rows)
}

/// `.show table T details`: Kusto's columns (extents, sizes and rows, in all and hot; the
/// principals; the retention and caching policies as JSON; the extents' creation times).
pub(super) fn show_table_details(cx: &Cx<'_>, name: &ast::QualifiedName) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(name, ctx, snap)?;
    check(can_show(snap, caller, &d), caller, &format!("show table '{t}'"), Needs::DatabaseViewer)?;
    let tm = need_table(&snap.meta, &d, &t)?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let sum = |hot: bool| -> (i64, f64, f64, i64) {
        let es: Vec<_> = tm.extents.iter().filter(|e| !hot || snap.meta.is_hot(&d, &t, e, now)).collect();
        (
            es.len() as i64,
            es.iter().map(|e| e.bytes as f64).sum(),
            es.iter().map(|e| e.original_size as f64).sum(),
            es.iter().map(|e| e.rows as i64).sum(),
        )
    };
    let (n, size, orig, rows) = sum(false);
    let (hn, hsize, horig, hrows) = sum(true);
    let principals = serde_json::Value::Array(
        tm.principals.iter().map(|p| serde_json::json!({"Role": p.role, "PrincipalFQN": p.principal, "Notes": p.notes})).collect(),
    )
    .to_string();
    let policies = snap.meta.effective_policies(&d, &t);
    let retention = policies.retention_json().unwrap_or_else(|| "null".into());
    let caching = policies.caching_json().unwrap_or_else(|| "null".into());
    let min_created = tm.extents.iter().map(|e| e.min_created).min();
    let max_created = tm.extents.iter().map(|e| e.max_created).max();
    let row = vec![
        V::S(tm.name.clone()),
        V::S(d.clone()),
        V::S(tm.folder.clone()),
        V::S(tm.docstring.clone()),
        V::L(n),
        V::R(size),
        V::R(orig),
        V::L(rows),
        V::L(hn),
        V::R(hsize),
        V::R(horig),
        V::L(hrows),
        V::S(principals),
        V::S(retention),
        V::S(caching),
        V::D(min_created),
        V::D(max_created),
    ];
    table(
        &[
            ("TableName", KqlType::String),
            ("DatabaseName", KqlType::String),
            ("Folder", KqlType::String),
            ("DocString", KqlType::String),
            ("TotalExtents", KqlType::Long),
            ("TotalExtentSize", KqlType::Real),
            ("TotalOriginalSize", KqlType::Real),
            ("TotalRowCount", KqlType::Long),
            ("HotExtents", KqlType::Long),
            ("HotExtentSize", KqlType::Real),
            ("HotOriginalSize", KqlType::Real),
            ("HotRowCount", KqlType::Long),
            ("AuthorizedPrincipals", KqlType::String),
            ("RetentionPolicy", KqlType::String),
            ("CachingPolicy", KqlType::String),
            ("MinExtentsCreationTime", KqlType::Datetime),
            ("MaxExtentsCreationTime", KqlType::Datetime),
        ],
        vec![row],
    )
}

/// `.show table T schema as json` and `.show table T cslschema`.
pub(super) fn show_table_schema(cx: &Cx<'_>, name: &ast::QualifiedName, format: ast::SchemaFormat) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(name, ctx, snap)?;
    check(can_show(snap, caller, &d), caller, &format!("show the schema of table '{t}'"), Needs::DatabaseViewer)?;
    let tm = need_table(&snap.meta, &d, &t)?;
    let schema = match format {
        ast::SchemaFormat::Json => serde_json::json!({
            "Name": tm.name,
            "OrderedColumns": tm.schema.columns.iter().map(|c| serde_json::json!({"Name": c.name, "Type": c.ty.dotnet_name(), "CslType": c.ty.name()})).collect::<Vec<_>>(),
        })
        .to_string(),
        _ => tm.schema.columns.iter().map(|c| format!("{}:{}", c.name, c.ty)).collect::<Vec<_>>().join(","),
    };
    table(
        &[("TableName", KqlType::String), ("Schema", KqlType::String), ("DatabaseName", KqlType::String), ("Folder", KqlType::String), ("DocString", KqlType::String)],
        vec![vec![V::S(tm.name.clone()), V::S(schema), V::S(d.clone()), V::S(tm.folder.clone()), V::S(tm.docstring.clone())]],
    )
}

fn schema_of(cols: &[ast::ColumnDecl]) -> Result<KqlSchema> {
    let mut out: Vec<KqlColumn> = Vec::new();
    for c in cols {
        names::validate(EntityKind::Column, &c.name.name, false)?;
        let ty = KqlType::from_name(&c.ty.name).ok_or_else(|| RuntimeError::bad_request(format!("unknown type '{}'", c.ty.name)))?;
        if out.iter().any(|o| o.name == c.name.name) {
            return Err(RuntimeError::bad_request(format!("column '{}' is declared twice", c.name.name)));
        }
        out.push(KqlColumn::new(c.name.name.clone(), ty));
    }
    Ok(KqlSchema::new(out))
}

/// A new table's metadata; its creator is its admin.
pub(super) fn new_table(name: &str, schema: KqlSchema, creator: &Principal, with: &[ast::Property]) -> TableMeta {
    TableMeta {
        name: name.to_string(),
        schema,
        extents: Vec::new(),
        rls: None,
        restricted_view_access: false,
        principals: vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: creator.fqn(), notes: "creator".into() }],
        docstring: prop(with, "docstring").unwrap_or_default(),
        folder: prop(with, "folder").unwrap_or_default(),
        policies: Default::default(),
        mappings: Vec::new(),
    }
}

fn show_schema(snap: &State, db: &str, names: &[String]) -> Result<QueryOutput> {
    let mut rows = Vec::new();
    for n in names {
        let tm = need_table(&snap.meta, db, n)?;
        let schema = tm.schema.columns.iter().map(|c| format!("{}:{}", c.name, c.ty)).collect::<Vec<_>>().join(",");
        rows.push(vec![V::S(tm.name.clone()), V::S(schema), V::S(db.to_string()), V::S(tm.folder.clone()), V::S(tm.docstring.clone())]);
    }
    table(&[("TableName", KqlType::String), ("Schema", KqlType::String), ("DatabaseName", KqlType::String), ("Folder", KqlType::String), ("DocString", KqlType::String)], rows)
}

/// Creates the tables, or (`merge`) adds the columns they lack, and commits.
fn create_or_merge(cluster: &Cluster, caller: &Caller, ctx: &RequestContext, meta: &mut Meta, merge: bool, defs: &[ast::TableDef], with: &[ast::Property]) -> Result<()> {
    let snap = cluster.snapshot();
    for def in defs {
        let (d, t) = table_db(&def.name, ctx, &snap)?;
        names::validate(EntityKind::Table, &t, false)?;
        let schema = schema_of(&def.columns)?;
        let dbm = need_db_mut(meta, &d)?;
        if dbm.function(&t).is_some() {
            return Err(RuntimeError::bad_request(format!("a function named '{t}' already exists")));
        }
        if dbm.materialized_view(&t).is_some() {
            return Err(RuntimeError::bad_request(format!("a materialized view named '{t}' already exists in database '{d}'")));
        }
        match dbm.table_mut(&t) {
            Some(existing) => {
                if !merge {
                    if existing.schema == schema {
                        continue;
                    }
                    return Err(RuntimeError::bad_request(format!("table '{t}' already exists with a different schema; use .create-merge table")));
                }
                check(is_table_admin(&snap, caller, &d, &t), caller, &format!("extend the schema of table '{t}'"), Needs::TableAdmin)?;
                for c in schema.columns {
                    match existing.schema.get(&c.name) {
                        Some(e) if e.ty != c.ty => {
                            return Err(RuntimeError::bad_request(format!("column '{}' of table '{t}' is {} not {}", c.name, e.ty, c.ty)));
                        }
                        Some(_) => {}
                        // Extents written before read the new column as null.
                        None => existing.schema.columns.push(c),
                    }
                }
            }
            None => {
                check(is_db_user(&snap, caller, &d), caller, &format!("create table '{t}' in database '{d}'"), Needs::DatabaseUser)?;
                dbm.tables.push(new_table(&t, schema, &caller.principal, with));
            }
        }
    }
    cluster.commit(meta.clone(), HashMap::new())
}

/// `.drop table(s)`: the tables dropped.
pub(super) fn drop_tables(cx: &Cx<'_>, names: &[ast::QualifiedName], if_exists: bool) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, .. } = *cx;
    let mut meta = cx.snap.meta.clone();
    let snap = cluster.snapshot();
    let mut dropped = Vec::new();
    for q in names {
        let (d, t) = table_db(q, ctx, &snap)?;
        if meta.db(&d).and_then(|x| x.table(&t)).is_none() {
            if if_exists {
                continue;
            }
            return Err(RuntimeError::bad_request(format!("table '{t}' does not exist in database '{d}'")));
        }
        check(is_table_admin(&snap, caller, &d, &t), caller, &format!("drop table '{t}'"), Needs::TableAdmin)?;
        crate::materialized::check_source_drop(&meta, &d, &t)?;
        need_db_mut(&mut meta, &d)?.tables.retain(|x| x.name != t);
        dropped.push((d, t));
    }
    cluster.commit(meta, HashMap::new())?;
    table(&[("TableName", KqlType::String), ("DatabaseName", KqlType::String)], dropped.into_iter().map(|(d, t)| vec![V::S(t), V::S(d)]).collect())
}

/// `.alter-merge table T (cols)`: adds the columns the table lacks (its extents read them as
/// null); a column of another type is refused. The table must exist.
pub(super) fn alter_merge(cx: &Cx<'_>, def: &ast::TableDef, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(&def.name, ctx, snap)?;
    need_table(&snap.meta, &d, &t)?;
    let mut meta = snap.meta.clone();
    create_or_merge(cluster, caller, ctx, &mut meta, true, std::slice::from_ref(def), with)?;
    show_schema(&cluster.snapshot(), &d, &[t])
}

/// `.create table T based-on U [with (docstring, folder)]`: a new empty table with U's schema
/// (not its data, policies or principals); nothing happens if T exists with that schema.
pub(super) fn create_based_on(cx: &Cx<'_>, name: &ast::QualifiedName, source: &ast::QualifiedName, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(name, ctx, snap)?;
    let (sd, st) = table_db(source, ctx, snap)?;
    if !sd.eq_ignore_ascii_case(&d) {
        return Err(RuntimeError::bad_request("a table is based on another table of the same database"));
    }
    let schema = need_table(&snap.meta, &sd, &st)?.schema.clone();
    let mut meta = snap.meta.clone();
    names::validate(EntityKind::Table, &t, false)?;
    match meta.db(&d).and_then(|x| x.table(&t)) {
        Some(existing) if existing.schema == schema => {}
        Some(_) => return Err(RuntimeError::bad_request(format!("table '{t}' already exists with a different schema"))),
        None => {
            crate::materialized::name_free(&meta, &d, &t)?;
            let dbm = need_db_mut(&mut meta, &d)?;
            if dbm.function(&t).is_some() {
                return Err(RuntimeError::bad_request(format!("a function named '{t}' already exists")));
            }
            dbm.tables.push(new_table(&t, schema, &caller.principal, with));
            cluster.commit(meta, HashMap::new())?;
        }
    }
    show_schema(&cluster.snapshot(), &d, &[t])
}

/// `.rename table T to U`. A table that a row-level-security policy names (its own or another
/// table's) or that a materialized view reads is not renamed: the policy or view would then
/// name a table that no longer exists (and fail closed); delete or drop it first.
pub(super) fn rename(cx: &Cx<'_>, name: &ast::QualifiedName, new_name: &ast::Ident) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let (d, t) = table_db(name, ctx, snap)?;
    let to = new_name.name.clone();
    names::validate(EntityKind::Table, &to, false)?;
    need_table(&snap.meta, &d, &t)?;
    // Whether the new name is taken tells what else the database holds: only to a caller who
    // may see its metadata (a Table Admin without a database role may not).
    check(can_show(snap, caller, &d), caller, &format!("rename table '{t}' in database '{d}'"), Needs::DatabaseViewer)?;
    let mut meta = snap.meta.clone();
    let dbm = need_db_mut(&mut meta, &d)?;
    if dbm.table(&to).is_some() || dbm.function(&to).is_some() || dbm.materialized_view(&to).is_some() {
        return Err(RuntimeError::bad_request(format!("an entity named '{to}' already exists in database '{d}'")));
    }
    if dbm.materialized_views.iter().any(|v| v.source == t) {
        return Err(RuntimeError::bad_request(format!("table '{t}' is the source of a materialized view; drop the view before renaming the table")));
    }
    let named_by_policy = dbm.tables.iter().filter_map(|x| x.rls.as_ref().map(|r| (x, r))).any(|(x, r)| {
        x.name == t || r.functions.as_ref().is_none_or(|deps| deps.iter().any(|dep| dep.kind == kustodian_planner::DepKind::Table && dep.name == t))
    });
    if named_by_policy {
        return Err(RuntimeError::bad_request(format!(
            "table '{t}' is named by a row_level_security policy; delete the policy, rename the table, and set the policy again"
        )));
    }
    if let Some(tm) = dbm.table_mut(&t) {
        tm.name = to.clone();
    }
    cluster.commit(meta, HashMap::new())?;
    show_schema(&cluster.snapshot(), &d, &[to])
}
