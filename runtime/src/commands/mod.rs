//! Management commands, one file per family: `databases`, `tables`, `functions`, `ingestion`
//! (ingestion and writes from queries), `policies` (row level security, restricted view
//! access) and `principals` (role assignments); materialized views are `crate::materialized`.
//!
//! Every command passes [`gate`] first (`gate.rs`: the permission matrix, decided from the
//! command's syntax before anything is looked up), then runs here. A changing command runs
//! under `Cluster::begin_write`, changes a copy of the metadata and commits it.

mod databases;
mod encryption;
mod extents;
mod functions;
mod gate;
mod ingestion;
mod mappings;
mod policies;
mod principals;
mod tables;

use kustodian_parser::ast::{self, CommandKind};
use kustodian_planner::RequestContext;

use crate::auth::{self, Action, Caller, Role};
use crate::catalog::State;
use crate::cluster::{Cluster, DatabaseMeta, Meta, TableMeta};
use crate::error::{Result, RuntimeError};
use crate::output::QueryOutput;
pub(crate) use gate::gate;

/// Runs a command: the gate, then the command of its family.
pub(crate) async fn execute(cluster: &Cluster, caller: &Caller, ctx: &RequestContext, cmd: &ast::Command, text: &str) -> Result<QueryOutput> {
    let snap = cluster.snapshot();
    gate(&snap, caller, ctx, cmd)?;
    let cx = Cx { cluster, caller, ctx, snap: &snap, db: &ctx.database, text };
    match &cmd.kind {
        // databases.rs
        CommandKind::CreateDatabase { name, if_not_exists, .. } => databases::create(&cx, name, *if_not_exists),
        CommandKind::DropDatabase { .. } => databases::drop(),
        CommandKind::ShowDatabases => databases::show(cluster, caller),
        CommandKind::ShowDatabasesSubset { .. } => Err(unsupported(".show databases (D1, D2)")),
        CommandKind::ShowDatabaseSchema { name, format, with } => databases::show_schema(&cx, name.as_ref(), *format, with),

        // tables.rs
        CommandKind::CreateTable { merge, table: def, with } => tables::create_table(&cx, *merge, def, with),
        CommandKind::CreateTables { merge, tables, with } => tables::create_tables(&cx, *merge, tables, with),
        CommandKind::CreateTableBasedOn { name, source, with } => tables::create_based_on(&cx, name, source, with),
        CommandKind::DropTable { name, if_exists } => tables::drop_tables(&cx, std::slice::from_ref(name), *if_exists),
        CommandKind::DropTables { names, if_exists } => tables::drop_tables(&cx, names, *if_exists),
        CommandKind::ShowTables { .. } => tables::show_tables(&cx),
        CommandKind::ShowTablesSubset { .. } => Err(unsupported(".show tables (T1, T2)")),
        CommandKind::ShowTable { name } => tables::show_table(&cx, name),
        CommandKind::ShowTableDetails { name } => tables::show_table_details(&cx, name),
        CommandKind::ShowTableSchema { name, format } => tables::show_table_schema(&cx, name, *format),

        // functions.rs
        CommandKind::CreateFunction { mode, if_not_exists, with, name, params: _, body: _, body_span } => {
            functions::create(&cx, *mode, *if_not_exists, with, name, body_span)
        }
        CommandKind::DropFunction { name, if_exists } => functions::drop(&cx, name, *if_exists),
        CommandKind::DropFunctions { names, if_exists } => functions::drop_many(&cx, names, *if_exists),
        CommandKind::ShowFunctions => functions::show_all(&cx),
        CommandKind::ShowFunction { name } => functions::show(&cx, name),

        // ingestion.rs
        CommandKind::IngestInline { table: t, data, with } => ingestion::ingest_inline(&cx, t, data, with).await,
        CommandKind::Ingest { table: t, sources, with, .. } => ingestion::ingest_files(&cx, t, sources, with).await,
        CommandKind::TableFromQuery { mode, table: t, query, .. } => ingestion::table_from_query(&cx, *mode, t, query).await,
        CommandKind::ShowIngestionFailures { with } => ingestion::show_ingestion_failures(&snap, caller, cx.db, with),

        // policies.rs
        CommandKind::AlterRowLevelSecurity { target, enable, query, with } => policies::alter_rls(&cx, target, *enable, query, with),
        CommandKind::ShowRowLevelSecurity { target } => policies::show_rls(&cx, target),
        CommandKind::DeleteRowLevelSecurity { target } => policies::delete_rls(&cx, target),
        CommandKind::AlterRestrictedViewAccess { target, enable } => policies::alter_rva(&cx, target, *enable),
        CommandKind::ShowRestrictedViewAccess { target } => policies::show_rva(&cx, target),
        CommandKind::DeleteRestrictedViewAccess { target } => policies::delete_rva(&cx, target),

        // principals.rs
        CommandKind::ChangePrincipals { action, entity, role, principals, none, skip_results, notes } => principals::change_principals(
            cluster,
            caller,
            ctx,
            &snap,
            snap.meta.clone(),
            *action,
            entity,
            &role.name,
            principals,
            *none,
            *skip_results,
            notes.as_ref(),
        ),
        CommandKind::ShowPrincipals { entity } => principals::show_principals(&cx, entity),
        CommandKind::ShowPrincipalRoles { entity, principal, .. } => {
            principals::show_principal_roles(&snap, caller, ctx, entity.as_ref(), principal.as_ref())
        }
        CommandKind::ClearGroupMembershipCache { .. } => principals::clear_group_membership_cache(),

        // crate::materialized
        CommandKind::CreateMaterializedView { if_not_exists, with, name, source, query } => {
            crate::materialized::create(cluster, caller, &snap, snap.meta.clone(), cx.db, *if_not_exists, &props(with), &name.name, &source.name, query, text).await
        }
        CommandKind::ShowMaterializedViews => crate::materialized::show(&snap, caller, cx.db, None),
        CommandKind::ShowMaterializedView { name } => crate::materialized::show(&snap, caller, cx.db, Some(&name.name)),
        CommandKind::DropMaterializedView { name, if_exists } => {
            crate::materialized::drop(cluster, caller, &snap, snap.meta.clone(), cx.db, &name.name, *if_exists)
        }
        CommandKind::EnableMaterializedView { name, enable, with } => {
            crate::materialized::enable(cluster, caller, &snap, snap.meta.clone(), cx.db, &name.name, *enable, &props(with)).await
        }

        // extents.rs
        CommandKind::ShowExtents { scope, hot, tags } => extents::show_extents(&cx, scope, *hot, tags),
        CommandKind::DropExtents { ids, table, all_tables, older } => extents::drop_extents(&cx, ids, table.as_ref(), *all_tables, older.as_ref()).await,
        CommandKind::DropExtentsFrom { whatif, source } => extents::drop_extents_from(&cx, *whatif, source).await,
        CommandKind::AlterCachingPolicy { target, hot } => extents::alter_caching(&cx, target, *hot),
        CommandKind::AlterRetentionPolicy { target, merge, softdelete, recoverability, json } => {
            extents::alter_retention(&cx, target, *merge, *softdelete, recoverability.as_ref(), json.as_ref()).await
        }
        CommandKind::ShowDataPolicy { target, kind } => extents::show_policy(&cx, target, *kind),

        // encryption.rs
        CommandKind::AlterEncryptionPolicy { policy } => encryption::alter(&cx, policy).await,
        CommandKind::ShowEncryptionPolicy => encryption::show(&cx),
        CommandKind::DeleteEncryptionPolicy => encryption::delete(&cx).await,
        CommandKind::DeleteDataPolicy { target, kind } => extents::delete_policy(&cx, target, *kind),

        // tables.rs
        CommandKind::RenameTable { name, new_name } => tables::rename(&cx, name, new_name),
        CommandKind::AlterMergeTable { table: def, with } => tables::alter_merge(&cx, def, with),

        // mappings.rs
        CommandKind::CreateIngestionMapping { or_alter, table: t, kind, name, mapping } => mappings::create(&cx, *or_alter, t, kind, name, mapping),
        CommandKind::ShowIngestionMappings { table: t, kind, name } => mappings::show(&cx, t, kind.as_ref(), name.as_ref()),
        CommandKind::DropIngestionMapping { table: t, kind, name } => mappings::drop(&cx, t, kind, name),
    }
}

/// Commands that only read the cluster's state (allowed under `request_readonly`).
pub(crate) fn is_read_only(kind: &CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::ShowTables { .. }
            | CommandKind::ShowEncryptionPolicy
            | CommandKind::ShowTablesSubset { .. }
            | CommandKind::ShowTable { .. }
            | CommandKind::ShowTableSchema { .. }
            | CommandKind::ShowTableDetails { .. }
            | CommandKind::ShowDatabases
            | CommandKind::ShowDatabasesSubset { .. }
            | CommandKind::ShowDatabaseSchema { .. }
            | CommandKind::ShowFunctions
            | CommandKind::ShowFunction { .. }
            | CommandKind::ShowRowLevelSecurity { .. }
            | CommandKind::ShowRestrictedViewAccess { .. }
            | CommandKind::ShowPrincipals { .. }
            | CommandKind::ShowPrincipalRoles { .. }
            | CommandKind::ShowMaterializedViews
            | CommandKind::ShowIngestionFailures { .. }
            | CommandKind::ShowMaterializedView { .. }
            | CommandKind::ShowExtents { .. }
            | CommandKind::ShowDataPolicy { .. }
            | CommandKind::ShowIngestionMappings { .. }
    )
}

/// What a command runs with: the cluster, the caller, the request, and the state the command
/// was authorized against (a changing command changes a copy of its metadata).
#[derive(Clone, Copy)]
struct Cx<'a> {
    cluster: &'a Cluster,
    caller: &'a Caller,
    ctx: &'a RequestContext,
    snap: &'a State,
    /// The request's database.
    db: &'a str,
    /// The request's text (a function's body is stored as written).
    text: &'a str,
}

// What the families share: the permission checks a command makes once it may tell whether
// what it names exists (the gate has already refused callers without any right to it), and
// the lookups of names and properties.

pub(crate) fn is_cluster(caller: &Caller, meta: &Meta, role: Role) -> bool {
    caller.holds(&meta.cluster_roles, role)
}

pub(crate) fn is_db_admin(snap: &State, caller: &Caller, db: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::AdminDatabase(db))
}

pub(crate) fn is_db_user(snap: &State, caller: &Caller, db: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::CreateInDatabase(db))
}

/// Roles that can query a database: cluster admin/viewer, database admin/user/viewer.
pub(crate) fn can_read_database(snap: &State, caller: &Caller, db: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::ReadDatabase(db))
}

pub(crate) fn can_show(snap: &State, caller: &Caller, db: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::ShowDatabase(db))
}

pub(crate) fn is_table_admin(snap: &State, caller: &Caller, db: &str, t: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::AdminTable(db, t))
}

fn can_ingest(snap: &State, caller: &Caller, db: &str, t: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::IngestTable(db, t))
}

fn prop(with: &[ast::Property], name: &str) -> Option<String> {
    with.iter().find(|p| p.name.name.eq_ignore_ascii_case(name)).and_then(|p| p.values.first()).map(|v| match &v.kind {
        ast::ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
        _ => v.to_string(),
    })
}

fn props(with: &[ast::Property]) -> Vec<(String, String)> {
    with.iter()
        .map(|p| {
            let v = p.values.first().map(|v| match &v.kind {
                ast::ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                _ => v.to_string(),
            });
            (p.name.name.clone(), v.unwrap_or_default())
        })
        .collect()
}

/// The database and table a qualified name denotes: the database's canonical name when it
/// exists, the name as written otherwise. It says nothing about existence: commands are
/// authorized first ([`gate`]), and only then told whether what they name exists.
fn table_db(q: &ast::QualifiedName, ctx: &RequestContext, snap: &State) -> Result<(String, String)> {
    let db = match &q.database {
        Some(d) => d.name.clone(),
        None => ctx.database.clone(),
    };
    let db = snap.meta.db(&db).map(|d| d.name.clone()).unwrap_or(db);
    Ok((db, q.name.name.clone()))
}

/// The database of a command that names no database: the request's.
fn named_db(name: Option<&ast::Ident>, ctx: &RequestContext, snap: &State) -> String {
    let db = name.map(|n| n.name.clone()).unwrap_or_else(|| ctx.database.clone());
    snap.meta.db(&db).map(|d| d.name.clone()).unwrap_or(db)
}

fn need_table<'m>(meta: &'m Meta, db: &str, t: &str) -> Result<&'m TableMeta> {
    meta.db(db)
        .and_then(|d| d.table(t))
        .ok_or_else(|| RuntimeError::bad_request(format!("table '{t}' does not exist in database '{db}'")))
}

fn need_db_mut<'m>(meta: &'m mut Meta, db: &str) -> Result<&'m mut DatabaseMeta> {
    meta.db_mut(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))
}

fn need_table_mut<'m>(meta: &'m mut Meta, db: &str, t: &str) -> Result<&'m mut TableMeta> {
    need_db_mut(meta, db)?
        .table_mut(t)
        .ok_or_else(|| RuntimeError::bad_request(format!("table '{t}' does not exist in database '{db}'")))
}

/// A feature Kusto has that Kustodian does not.
fn unsupported(what: &str) -> RuntimeError {
    RuntimeError::Plan(kustodian_planner::PlanError::unsupported(what))
}
