//! Databases: `.create database`, `.drop database` (refused), `.show databases` and
//! `.show database schema`.

use std::collections::HashMap;

use kustodian_parser::ast;
use kustodian_planner::KqlType;

use super::{Cx, can_show, is_cluster, props};
use crate::auth::{Caller, Role, RoleAssignment, check, Needs};
use crate::cluster::{Cluster, DatabaseMeta};
use crate::error::{Result, RuntimeError};
use crate::names::{self, EntityKind};
use crate::output::{QueryOutput, V, table};

/// `.create database Name [ifnotexists]`: the databases the caller may see.
pub(super) fn create(cx: &Cx<'_>, name: &ast::Ident, if_not_exists: bool) -> Result<QueryOutput> {
    let Cx { cluster, caller, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    check(is_cluster(caller, &meta, Role::AllDatabasesAdmins), caller, &format!("create database '{}'", name.name), Needs::AllDatabasesAdmin)?;
    names::validate(EntityKind::Database, &name.name, false)?;
    if meta.db(&name.name).is_some() {
        if if_not_exists {
            return show(cluster, caller);
        }
        return Err(RuntimeError::bad_request(format!("database '{}' already exists", name.name)));
    }
    meta.databases.push(DatabaseMeta {
        name: name.name.clone(),
        principals: vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: caller.principal.fqn(), notes: "creator".into() }],
        ..Default::default()
    });
    cluster.commit(meta, HashMap::new())?;
    show(cluster, caller)
}

/// `.drop database`: refused, as in Kusto.
pub(super) fn drop() -> Result<QueryOutput> {
    Err(RuntimeError::bad_request(
        "dropping a database is a control-plane operation in Kusto; it is not available as a command",
    ))
}

/// `.show database [Name] schema [as json|csl script]`.
pub(super) fn show_schema(cx: &Cx<'_>, name: Option<&ast::Ident>, format: ast::SchemaFormat, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { caller, snap, db, .. } = *cx;
    let meta = &snap.meta;
    let wanted = name.map(|n| n.name.clone()).unwrap_or_else(|| db.to_string());
    let d = meta.db(&wanted).map(|d| d.name.clone()).ok_or_else(|| RuntimeError::bad_request(format!("database '{wanted}' does not exist")))?;
    crate::schema_script::show_database_schema(snap, caller, &d, format, &props(with))
}

/// `.show databases`: the databases the caller may see.
pub(super) fn show(cluster: &Cluster, caller: &Caller) -> Result<QueryOutput> {
    let snap = cluster.snapshot();
    let rows = snap
        .meta
        .databases
        .iter()
        .filter(|d| can_show(&snap, caller, &d.name))
        .map(|d| {
            vec![
                V::S(d.name.clone()),
                V::S(if cluster.storage.is_some() { "persistent".into() } else { "in-memory".into() }),
                V::S("v1.0".into()),
                V::B(false),
                V::S("ReadWrite".into()),
                V::S(String::new()),
                V::B(caller.holds(&d.principals, Role::UnrestrictedViewers)),
            ]
        })
        .collect();
    table(
        &[
            ("DatabaseName", KqlType::String),
            ("PersistentStorage", KqlType::String),
            ("Version", KqlType::String),
            ("IsCurrent", KqlType::Bool),
            ("DatabaseAccessMode", KqlType::String),
            ("PrettyName", KqlType::String),
            ("CurrentUserIsUnrestrictedViewer", KqlType::Bool),
        ],
        rows,
    )
}
