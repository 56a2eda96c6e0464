//! Stored functions: `.create|.alter|.create-or-alter function`, `.drop function(s)`,
//! `.show functions` and `.show function F`.

use std::collections::HashMap;

use kustodian_parser::ast;
use kustodian_planner::KqlType;

use super::{Cx, can_show, is_db_admin, is_db_user, need_db_mut, prop};
use crate::auth::{Role, RoleAssignment, check, Needs};
use crate::cluster::FunctionMeta;
use crate::error::{Result, RuntimeError};
use crate::names::{self, EntityKind};
use crate::output::{QueryOutput, V, table};

/// `.create|.alter|.create-or-alter function [ifnotexists] F(params) { body }`: the function
/// as stored (its parameters and body as written).
pub(super) fn create(
    cx: &Cx<'_>,
    mode: ast::FunctionWriteMode,
    if_not_exists: bool,
    with: &[ast::Property],
    name: &ast::Ident,
    body_span: &ast::Span,
) -> Result<QueryOutput> {
    let Cx { cluster, caller, snap, db, text, .. } = *cx;
    let mut meta = snap.meta.clone();
    let exists = meta.db(db).and_then(|d| d.function(&name.name)).is_some();
    let fadmin = is_db_admin(snap, caller, db)
        || meta.db(db).and_then(|d| d.function(&name.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
    match (mode, exists) {
        (ast::FunctionWriteMode::Create, true) if if_not_exists => {
            let f = meta.db(db).and_then(|d| d.function(&name.name)).ok_or_else(|| RuntimeError::Internal("function vanished".into()))?;
            return table(FUNCTION_COLS, vec![function_row(f)]);
        }
        (ast::FunctionWriteMode::Create, true) => return Err(RuntimeError::bad_request(format!("function '{}' already exists", name.name))),
        (ast::FunctionWriteMode::Alter, false) => return Err(RuntimeError::bad_request(format!("function '{}' does not exist", name.name))),
        (_, true) => check(fadmin, caller, &format!("alter function '{}'", name.name), Needs::FunctionAdmin)?,
        (_, false) => check(is_db_user(snap, caller, db), caller, &format!("create function '{}'", name.name), Needs::DatabaseUser)?,
    }
    if kustodian_planner::is_builtin_function(&name.name) {
        return Err(RuntimeError::bad_request(format!(
            "'{}' is the name of a built-in function; a stored function may not shadow it",
            name.name
        )));
    }
    if meta.db(db).and_then(|d| d.table(&name.name)).is_some() {
        return Err(RuntimeError::bad_request(format!("a table named '{}' already exists", name.name)));
    }
    names::validate(EntityKind::Function, &name.name, false)?;
    crate::materialized::name_free(&meta, db, &name.name)?;
    let body = text.get(body_span.start..body_span.end).unwrap_or_default().to_string();
    let params_text = function_params_text(text, name, body_span.start);
    // Validate by re-parsing the stored form.
    crate::catalog::parse_function(&name.name, &params_text, &body)?;
    let dbm = need_db_mut(&mut meta, db)?;
    let principals = dbm.function(&name.name).map(|f| f.principals.clone()).unwrap_or_else(|| {
        vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: caller.principal.fqn(), notes: "creator".into() }]
    });
    dbm.functions.retain(|f| f.name != name.name);
    let f = FunctionMeta {
        name: name.name.clone(),
        parameters: params_text,
        body,
        docstring: prop(with, "docstring").unwrap_or_default(),
        folder: prop(with, "folder").unwrap_or_default(),
        principals,
    };
    let row = function_row(&f);
    dbm.functions.push(f);
    cluster.commit(meta, HashMap::new())?;
    table(FUNCTION_COLS, vec![row])
}

/// `.drop function F [ifexists]`.
pub(super) fn drop(cx: &Cx<'_>, name: &ast::Ident, if_exists: bool) -> Result<QueryOutput> {
    let Cx { cluster, caller, snap, db, .. } = *cx;
    let mut meta = snap.meta.clone();
    let exists = meta.db(db).and_then(|d| d.function(&name.name)).is_some();
    if !exists {
        if if_exists {
            return table(&[("Name", KqlType::String)], vec![]);
        }
        return Err(RuntimeError::bad_request(format!("function '{}' does not exist", name.name)));
    }
    let fadmin = is_db_admin(snap, caller, db)
        || meta.db(db).and_then(|d| d.function(&name.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
    check(fadmin, caller, &format!("drop function '{}'", name.name), Needs::FunctionAdmin)?;
    need_db_mut(&mut meta, db)?.functions.retain(|f| f.name != name.name);
    cluster.commit(meta, HashMap::new())?;
    table(&[("Name", KqlType::String)], vec![vec![V::S(name.name.clone())]])
}

/// `.drop functions (F1, F2) [ifexists]`.
pub(super) fn drop_many(cx: &Cx<'_>, names: &[ast::Ident], if_exists: bool) -> Result<QueryOutput> {
    let Cx { cluster, caller, snap, db, .. } = *cx;
    let mut meta = snap.meta.clone();
    for n in names {
        let exists = meta.db(db).and_then(|d| d.function(&n.name)).is_some();
        if !exists && !if_exists {
            return Err(RuntimeError::bad_request(format!("function '{}' does not exist", n.name)));
        }
        let fadmin = is_db_admin(snap, caller, db)
            || meta.db(db).and_then(|d| d.function(&n.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
        check(!exists || fadmin, caller, &format!("drop function '{}'", n.name), Needs::FunctionAdmin)?;
        need_db_mut(&mut meta, db)?.functions.retain(|f| f.name != n.name);
    }
    cluster.commit(meta, HashMap::new())?;
    table(&[("Name", KqlType::String)], names.iter().map(|n| vec![V::S(n.name.clone())]).collect())
}

/// `.show functions`.
pub(super) fn show_all(cx: &Cx<'_>) -> Result<QueryOutput> {
    let Cx { caller, snap, db, .. } = *cx;
    let meta = &snap.meta;
    check(can_show(snap, caller, db), caller, &format!("show the functions of database '{db}'"), Needs::DatabaseViewer)?;
    let d = meta.db(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
    let rows = d.functions.iter().map(function_row).collect();
    table(FUNCTION_COLS, rows)
}

/// `.show function F`.
pub(super) fn show(cx: &Cx<'_>, name: &ast::Ident) -> Result<QueryOutput> {
    let Cx { caller, snap, db, .. } = *cx;
    let meta = &snap.meta;
    check(can_show(snap, caller, db), caller, &format!("show function '{}'", name.name), Needs::DatabaseViewer)?;
    let d = meta.db(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
    let f = d.function(&name.name).ok_or_else(|| RuntimeError::bad_request(format!("function '{}' does not exist", name.name)))?;
    table(FUNCTION_COLS, vec![function_row(f)])
}

const FUNCTION_COLS: &[(&str, KqlType)] = &[
    ("Name", KqlType::String),
    ("Parameters", KqlType::String),
    ("Body", KqlType::String),
    ("Folder", KqlType::String),
    ("DocString", KqlType::String),
];

fn function_row(f: &FunctionMeta) -> Vec<V> {
    vec![V::S(f.name.clone()), V::S(f.parameters.clone()), V::S(f.body.clone()), V::S(f.folder.clone()), V::S(f.docstring.clone())]
}

/// `(params)` of a `.create function` command, as written: the text between the name and the body.
fn function_params_text(text: &str, name: &ast::Ident, body_start: usize) -> String {
    text.get(name.span.end..body_start).map(|s| s.trim().to_string()).filter(|s| s.starts_with('(')).unwrap_or_else(|| "()".into())
}

