//! `.show database [X] schema [as json | as csl script] [with (IncludeSecuritySettings=...)]`.
//!
//! The script form replays the database: tables, functions, then (unless
//! `IncludeSecuritySettings=false`) row-level security and restricted view access policies and
//! the principals of the database, its tables and functions. Principals are listed only to
//! callers allowed to see them (Database Admin); policies are visible to every principal that
//! may show the database (as `.show table T policy ...` is).

use kustodian_parser::ast::{SchemaFormat, quote_ident, quote_string};
use kustodian_planner::KqlType;
use serde_json::json;

use crate::auth::{self, Action, Caller, RoleAssignment, check, Needs};
use crate::catalog::State;
use crate::meta::DatabaseMeta;
use crate::output::{V, table};
use crate::error::{Result, RuntimeError};
use crate::output::QueryOutput;

/// Runs the command for database `db` (already resolved to its stored name).
pub(crate) fn show_database_schema(
    snap: &State,
    caller: &Caller,
    db: &str,
    format: SchemaFormat,
    with: &[(String, String)],
) -> Result<QueryOutput> {
    let d = snap.meta.db(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
    check(auth::allows(&snap.meta, caller, &Action::ShowDatabase(&d.name)), caller, &format!("show the schema of database '{}'", d.name), Needs::DatabaseViewer)?;
    let mut security = true;
    for (k, v) in with {
        match k.to_ascii_lowercase().as_str() {
            "includesecuritysettings" => security = parse_bool(k, v)?,
            "showobfuscatedstrings" => {
                // Kustodian stores no obfuscated strings; the property is accepted for its
                // permission check only.
                let on = parse_bool(k, v)?;
                check(!on || auth::allows(&snap.meta, caller, &Action::AdminDatabase(&d.name)), caller, &format!("show the obfuscated strings of database '{}'", d.name), Needs::DatabaseAdmin)?;
            }
            _ => return Err(RuntimeError::bad_request(format!("unknown property '{k}' of .show database schema"))),
        }
    }
    match format {
        SchemaFormat::CslScript => {
            let principals = security && auth::allows(&snap.meta, caller, &Action::AdminDatabase(&d.name));
            let rows = script(d, security, principals).into_iter().map(|l| vec![V::S(l)]).collect();
            table(&[("DatabaseSchemaScript", KqlType::String)], rows)
        }
        SchemaFormat::Json => table(&[("DatabaseSchema", KqlType::String)], vec![vec![V::S(json_schema(d).to_string())]]),
        SchemaFormat::Default | SchemaFormat::Csl => rows(d),
    }
}

fn parse_bool(k: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(RuntimeError::bad_request(format!("property '{k}' must be true or false, not '{v}'"))),
    }
}

/// The commands that recreate the database's entities, one per row.
fn script(d: &DatabaseMeta, policies: bool, principals: bool) -> Vec<String> {
    let mut out = Vec::new();
    if principals {
        out.extend(add_principals("database", &quote_ident(&d.name), &d.principals));
    }
    for t in &d.tables {
        let cols: Vec<String> = t.schema.columns.iter().map(|c| format!("{}:{}", quote_ident(&c.name), c.ty.name())).collect();
        out.push(format!(
            ".create-merge table {} ({}){}",
            quote_ident(&t.name),
            cols.join(", "),
            with_folder(&t.folder, &t.docstring, false)
        ));
    }
    for f in &d.functions {
        out.push(format!(
            ".create-or-alter function{} {}{} {}",
            with_folder(&f.folder, &f.docstring, true),
            quote_ident(&f.name),
            f.parameters,
            f.body
        ));
    }
    if policies {
        for t in &d.tables {
            if let Some(r) = &t.rls {
                out.push(format!(
                    ".alter table {} policy row_level_security {} {}",
                    quote_ident(&t.name),
                    if r.enabled { "enable" } else { "disable" },
                    quote_string(&r.query)
                ));
            }
            if t.restricted_view_access {
                out.push(format!(".alter table {} policy restricted_view_access true", quote_ident(&t.name)));
            }
        }
    }
    // Views after their sources' policies: a view that copies the rows of an RLS-protected
    // source is created with the override it was given.
    for v in &d.materialized_views {
        let mut props = Vec::new();
        if v.allow_without_rls {
            props.push("allowMaterializedViewsWithoutRowLevelSecurity = true".to_string());
        }
        if !v.folder.is_empty() {
            props.push(format!("folder = {}", quote_string(&v.folder)));
        }
        if !v.docstring.is_empty() {
            props.push(format!("docString = {}", quote_string(&v.docstring)));
        }
        let with = if props.is_empty() { String::new() } else { format!(" with ({})", props.join(", ")) };
        out.push(format!(
            ".create materialized-view{with} {} on table {} {{ {} }}",
            quote_ident(&v.name),
            quote_ident(&v.source),
            v.query
        ));
        if !v.enabled {
            out.push(format!(".disable materialized-view {}", quote_ident(&v.name)));
        }
        if policies && let Some(r) = &v.rls {
            out.push(format!(
                ".alter materialized-view {} policy row_level_security {} {}",
                quote_ident(&v.name),
                if r.enabled { "enable" } else { "disable" },
                quote_string(&r.query)
            ));
        }
    }
    if principals {
        for t in &d.tables {
            out.extend(add_principals("table", &quote_ident(&t.name), &t.principals));
        }
        for f in &d.functions {
            out.extend(add_principals("function", &quote_ident(&f.name), &f.principals));
        }
        for v in &d.materialized_views {
            out.extend(add_principals("materialized-view", &quote_ident(&v.name), &v.principals));
        }
    }
    out
}

fn with_folder(folder: &str, docstring: &str, function: bool) -> String {
    let mut props = Vec::new();
    if !folder.is_empty() {
        props.push(format!("folder = {}", quote_string(folder)));
    }
    if !docstring.is_empty() {
        props.push(format!("docstring = {}", quote_string(docstring)));
    }
    if function {
        // Functions are replayed before the tables' policies that may call them.
        props.push("skipvalidation = \"true\"".to_string());
    }
    if props.is_empty() { String::new() } else { format!(" with ({})", props.join(", ")) }
}

/// `.add <kind> <name> <role> ('fqn') 'notes'`, one command per assignment.
fn add_principals(kind: &str, name: &str, list: &[RoleAssignment]) -> Vec<String> {
    list.iter()
        .map(|a| {
            let notes = if a.notes.is_empty() { String::new() } else { format!(" {}", quote_string(&a.notes)) };
            format!(".add {kind} {name} {} ({}){notes}", a.role, quote_string(&a.principal))
        })
        .collect()
}

fn json_schema(d: &DatabaseMeta) -> serde_json::Value {
    let tables: serde_json::Map<String, serde_json::Value> = d
        .tables
        .iter()
        .map(|t| {
            let cols: Vec<_> = t
                .schema
                .columns
                .iter()
                .map(|c| json!({"Name": c.name, "Type": c.ty.dotnet_name(), "CslType": c.ty.name()}))
                .collect();
            (t.name.clone(), json!({"Name": t.name, "Folder": t.folder, "DocString": t.docstring, "OrderedColumns": cols}))
        })
        .collect();
    let functions: serde_json::Map<String, serde_json::Value> = d
        .functions
        .iter()
        .map(|f| {
            (f.name.clone(), json!({"Name": f.name, "InputParameters": f.parameters, "Body": f.body, "Folder": f.folder, "DocString": f.docstring}))
        })
        .collect();
    json!({"Databases": {d.name.clone(): {"Name": d.name, "Tables": tables, "Functions": functions}}})
}

/// One row for the database, one per table, one per column (Kusto's default layout).
fn rows(d: &DatabaseMeta) -> Result<QueryOutput> {
    let row = |table: &str, column: &str, ty: &str, folder: &str, doc: &str| {
        vec![
            V::S(d.name.clone()),
            V::S(table.to_string()),
            V::S(column.to_string()),
            V::S(ty.to_string()),
            V::B(false),
            V::B(false),
            V::S(String::new()),
            V::S("v1.0".to_string()),
            V::S(folder.to_string()),
            V::S(doc.to_string()),
        ]
    };
    let mut rows = vec![row("", "", "", "", "")];
    for t in &d.tables {
        rows.push(row(&t.name, "", "", &t.folder, &t.docstring));
        for c in &t.schema.columns {
            rows.push(row(&t.name, &c.name, c.ty.dotnet_name(), "", ""));
        }
    }
    table(
        &[
            ("DatabaseName", KqlType::String),
            ("TableName", KqlType::String),
            ("ColumnName", KqlType::String),
            ("ColumnType", KqlType::String),
            ("IsDefaultTable", KqlType::Bool),
            ("IsDefaultColumn", KqlType::Bool),
            ("PrettyName", KqlType::String),
            ("Version", KqlType::String),
            ("Folder", KqlType::String),
            ("DocString", KqlType::String),
        ],
        rows,
    )
}

