//! Management commands: databases, tables, functions, ingestion, policies and principals,
//! each after its authorization check (Kusto's permission matrix).

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use kustodian_parser::ast::{self, CommandKind, PolicyTarget, PrincipalAction, SecurableEntity, TableWriteMode};
use kustodian_planner::{KqlColumn, KqlSchema, KqlType, Principal, RequestContext};

use crate::auth::{self, Action, Caller, Role, RoleAssignment, check, role_display};
use crate::catalog::State;
use crate::cluster::{Cluster, DatabaseMeta, FunctionMeta, Meta, RlsMeta, TableMeta};
use crate::error::{Result, RuntimeError};
use crate::ingest;
use crate::names::{self, EntityKind};
use crate::output::{QueryOutput, V, table};

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

/// Commands that only read the cluster's state (allowed under `request_readonly`).
pub(crate) fn is_read_only(kind: &CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::ShowTables { .. }
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
    )
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

/// Allows the command if the caller may do at least one of `actions` (a command whose
/// requirement depends on whether its target exists passes here with any of them, and is
/// checked exactly once existence may be told); refuses naming the first.
fn any_of(snap: &State, caller: &Caller, actions: &[Action], operation: &str) -> Result<()> {
    if actions.iter().any(|a| auth::allows(&snap.meta, caller, a)) {
        return Ok(());
    }
    match actions.first() {
        Some(a) => auth::authorize(&snap.meta, caller, a, operation),
        None => Ok(()),
    }
}

fn policy_entities(target: &PolicyTarget, ctx: &RequestContext, snap: &State) -> Vec<(String, String)> {
    match target {
        PolicyTarget::Table(q) | PolicyTarget::MaterializedView(q) => table_db(q, ctx, snap).into_iter().collect(),
        PolicyTarget::Tables(qs) => qs.iter().filter_map(|q| table_db(q, ctx, snap).ok()).collect(),
        PolicyTarget::AllTables => vec![(named_db(None, ctx, snap), "*".into())],
    }
}

/// The permission matrix applied to a command before it runs: decided from the command's
/// syntax and the caller's roles only, so a caller without the right gets Forbidden whether
/// or not what it names exists, and nothing is looked up, echoed or validated for it.
/// Exhaustive on purpose: a new command cannot run without a row here.
pub(crate) fn gate(snap: &State, caller: &Caller, ctx: &RequestContext, cmd: &ast::Command) -> Result<()> {
    let db = named_db(None, ctx, snap);
    let db = db.as_str();
    match &cmd.kind {
        CommandKind::CreateDatabase { name, .. } => any_of(snap, caller, &[Action::AdminCluster], &format!("create database '{}'", name.name)),
        CommandKind::DropDatabase { name, .. } => any_of(snap, caller, &[Action::AdminCluster], &format!("drop database '{}'", name.name)),
        CommandKind::CreateTable { table: def, .. } => {
            let (d, t) = table_db(&def.name, ctx, snap)?;
            any_of(snap, caller, &[Action::CreateInDatabase(&d)], &format!("create table '{t}' in database '{d}'"))
        }
        CommandKind::CreateTables { tables, .. } => {
            for def in tables {
                let (d, t) = table_db(&def.name, ctx, snap)?;
                any_of(snap, caller, &[Action::CreateInDatabase(&d)], &format!("create table '{t}' in database '{d}'"))?;
            }
            Ok(())
        }
        CommandKind::CreateTableBasedOn { name, .. } => {
            let (d, t) = table_db(name, ctx, snap)?;
            any_of(snap, caller, &[Action::AdminDatabase(&d)], &format!("create table '{t}' based on another in database '{d}'"))
        }
        CommandKind::DropTable { name, .. } => {
            let (d, t) = table_db(name, ctx, snap)?;
            any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("drop table '{t}' in database '{d}'"))
        }
        CommandKind::DropTables { names, .. } => {
            for q in names {
                let (d, t) = table_db(q, ctx, snap)?;
                any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("drop table '{t}' in database '{d}'"))?;
            }
            Ok(())
        }
        CommandKind::ShowTables { .. }
        | CommandKind::ShowFunctions
        | CommandKind::ShowFunction { .. }
        | CommandKind::ShowMaterializedViews
        | CommandKind::ShowMaterializedView { .. }
        | CommandKind::ShowIngestionFailures { .. } => {
            any_of(snap, caller, &[Action::ShowDatabase(db)], &format!("show the metadata of database '{db}'"))
        }
        CommandKind::ShowTablesSubset { names, .. } => {
            for q in names {
                let (d, _) = table_db(q, ctx, snap)?;
                any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show the tables of database '{d}'"))?;
            }
            Ok(())
        }
        CommandKind::ShowTable { name } | CommandKind::ShowTableSchema { name, .. } | CommandKind::ShowTableDetails { name } => {
            let (d, t) = table_db(name, ctx, snap)?;
            any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show table '{t}' of database '{d}'"))
        }
        // Lists only the databases the caller may see.
        CommandKind::ShowDatabases | CommandKind::ShowDatabasesSubset { .. } => Ok(()),
        CommandKind::ShowDatabaseSchema { name, .. } => {
            let d = named_db(name.as_ref(), ctx, snap);
            any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show the schema of database '{d}'"))
        }
        CommandKind::IngestInline { table: q, .. } | CommandKind::Ingest { table: q, .. } => {
            let (d, t) = table_db(q, ctx, snap)?;
            any_of(snap, caller, &[Action::IngestTable(&d, &t)], &format!("ingest into table '{t}' in database '{d}'"))
        }
        CommandKind::TableFromQuery { mode, table: q, .. } => {
            let (d, t) = table_db(q, ctx, snap)?;
            let op = format!("write to table '{t}' in database '{d}'");
            match mode {
                TableWriteMode::Set => any_of(snap, caller, &[Action::CreateInDatabase(&d)], &op),
                TableWriteMode::Append => any_of(snap, caller, &[Action::IngestTable(&d, &t)], &op),
                TableWriteMode::SetOrAppend => any_of(snap, caller, &[Action::IngestTable(&d, &t), Action::CreateInDatabase(&d)], &op),
                TableWriteMode::SetOrReplace => any_of(snap, caller, &[Action::AdminTable(&d, &t), Action::CreateInDatabase(&d)], &op),
            }
        }
        CommandKind::CreateFunction { mode, name, .. } => {
            let op = format!("create or alter function '{}' in database '{db}'", name.name);
            match mode {
                ast::FunctionWriteMode::Create => any_of(snap, caller, &[Action::CreateInDatabase(db)], &op),
                ast::FunctionWriteMode::Alter => any_of(snap, caller, &[Action::AdminFunction(db, &name.name)], &op),
                ast::FunctionWriteMode::CreateOrAlter => {
                    any_of(snap, caller, &[Action::CreateInDatabase(db), Action::AdminFunction(db, &name.name)], &op)
                }
            }
        }
        CommandKind::DropFunction { name, .. } => {
            any_of(snap, caller, &[Action::AdminFunction(db, &name.name)], &format!("drop function '{}' in database '{db}'", name.name))
        }
        CommandKind::DropFunctions { names, .. } => {
            for n in names {
                any_of(snap, caller, &[Action::AdminFunction(db, &n.name)], &format!("drop function '{}' in database '{db}'", n.name))?;
            }
            Ok(())
        }
        CommandKind::AlterRowLevelSecurity { target, .. } | CommandKind::DeleteRowLevelSecurity { target } => {
            let verb = if matches!(cmd.kind, CommandKind::AlterRowLevelSecurity { .. }) { "alter" } else { "delete" };
            for (d, t) in policy_entities(target, ctx, snap) {
                match target {
                    PolicyTarget::MaterializedView(_) => {
                        let op = format!("{verb} the row_level_security policy of materialized view '{t}'");
                        // Kusto: altering a view's policy needs Database Admin; deleting it, its admin.
                        let action = if verb == "alter" { Action::AdminDatabase(&d) } else { Action::AdminMaterializedView(&d, &t) };
                        any_of(snap, caller, &[action], &op)?
                    }
                    PolicyTarget::AllTables => {
                        any_of(snap, caller, &[Action::AdminDatabase(&d)], &format!("{verb} the row_level_security policies of database '{d}'"))?
                    }
                    PolicyTarget::Table(_) | PolicyTarget::Tables(_) => {
                        any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("{verb} the row_level_security policy of table '{t}'"))?
                    }
                }
            }
            Ok(())
        }
        CommandKind::AlterRestrictedViewAccess { target, .. } | CommandKind::DeleteRestrictedViewAccess { target } => {
            for (d, t) in policy_entities(target, ctx, snap) {
                let op = format!("change the restricted_view_access policy of '{t}' in database '{d}'");
                match target {
                    PolicyTarget::AllTables => any_of(snap, caller, &[Action::AdminDatabase(&d)], &op)?,
                    _ => any_of(snap, caller, &[Action::AdminTable(&d, &t)], &op)?,
                }
            }
            Ok(())
        }
        CommandKind::ShowRowLevelSecurity { target } | CommandKind::ShowRestrictedViewAccess { target } => {
            for (d, _) in policy_entities(target, ctx, snap) {
                any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show policies in database '{d}'"))?;
            }
            Ok(())
        }
        CommandKind::ChangePrincipals { entity, .. } => {
            let (actions, op) = entity_actions(entity, ctx, snap, false);
            any_of(snap, caller, &actions.iter().map(|(a, b, c)| a.action(b, c)).collect::<Vec<_>>(), &op)
        }
        CommandKind::ShowPrincipals { entity } => {
            let (actions, op) = entity_actions(entity, ctx, snap, true);
            any_of(snap, caller, &actions.iter().map(|(a, b, c)| a.action(b, c)).collect::<Vec<_>>(), &op)
        }
        CommandKind::ShowPrincipalRoles { entity, principal, .. } => {
            let other = match principal {
                Some(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => Principal::parse(s).map(|p| p != caller.principal).unwrap_or(true),
                Some(_) => true,
                None => false,
            };
            let entity = entity.clone().unwrap_or(SecurableEntity::Cluster);
            if other {
                let (actions, op) = entity_actions(&entity, ctx, snap, true);
                return any_of(snap, caller, &actions.iter().map(|(a, b, c)| a.action(b, c)).collect::<Vec<_>>(), &format!("{op} (another principal's roles)"));
            }
            // One's own roles: in a database the caller has some role in.
            match &entity {
                SecurableEntity::Cluster => Ok(()),
                SecurableEntity::Database(n) => {
                    let d = named_db(n.as_ref(), ctx, snap);
                    auth::check(auth::knows_database(&snap.meta, caller, &d), caller, &format!("show its roles in database '{d}'"), "Database Viewer")
                }
                SecurableEntity::Table(q) => {
                    let (d, _) = table_db(q, ctx, snap)?;
                    auth::check(auth::knows_database(&snap.meta, caller, &d), caller, &format!("show its roles in database '{d}'"), "Database Viewer")
                }
                SecurableEntity::Function(_) | SecurableEntity::MaterializedView(_) | SecurableEntity::ExternalTable(_) => {
                    auth::check(auth::knows_database(&snap.meta, caller, db), caller, &format!("show its roles in database '{db}'"), "Database Viewer")
                }
            }
        }
        CommandKind::ClearGroupMembershipCache { with } => {
            if prop(with, "principal").is_some() {
                any_of(snap, caller, &[Action::ShowCluster], "refresh another principal's group membership")
            } else {
                Ok(())
            }
        }
        CommandKind::CreateMaterializedView { name, .. } => {
            any_of(snap, caller, &[Action::AdminDatabase(db)], &format!("create materialized view '{}'", name.name))
        }
        CommandKind::DropMaterializedView { name, .. } => {
            any_of(snap, caller, &[Action::AdminMaterializedView(db, &name.name)], &format!("drop materialized view '{}'", name.name))
        }
        CommandKind::EnableMaterializedView { name, enable, .. } => {
            let verb = if *enable { "enable" } else { "disable" };
            any_of(snap, caller, &[Action::AdminMaterializedView(db, &name.name)], &format!("{verb} materialized view '{}'", name.name))
        }
    }
}

/// The kinds of [`Action`] on a securable entity, held by name so [`gate`] can build them.
#[derive(Clone, Copy)]
enum EntityAction {
    AdminCluster,
    ShowCluster,
    AdminDatabase,
    ShowDatabasePrincipals,
    AdminTable,
    AdminFunction,
    AdminMaterializedView,
}

impl EntityAction {
    fn action<'a>(&self, d: &'a str, n: &'a str) -> Action<'a> {
        match self {
            EntityAction::AdminCluster => Action::AdminCluster,
            EntityAction::ShowCluster => Action::ShowCluster,
            EntityAction::AdminDatabase => Action::AdminDatabase(d),
            EntityAction::ShowDatabasePrincipals => Action::ShowDatabasePrincipals(d),
            EntityAction::AdminTable => Action::AdminTable(d, n),
            EntityAction::AdminFunction => Action::AdminFunction(d, n),
            EntityAction::AdminMaterializedView => Action::AdminMaterializedView(d, n),
        }
    }
}

/// Who may manage (`show` false) or list (`show` true) the principals of an entity: its admins,
/// and for listing also the monitors of its database (spec 3.2's note on `.show principals`).
fn entity_actions(entity: &SecurableEntity, ctx: &RequestContext, snap: &State, show: bool) -> (Vec<(EntityAction, String, String)>, String) {
    let db = named_db(None, ctx, snap);
    let verb = if show { "show" } else { "manage" };
    let (mut v, d, what) = match entity {
        SecurableEntity::Cluster => {
            let v = vec![(EntityAction::AdminCluster, String::new(), String::new())];
            if show {
                return ([v, vec![(EntityAction::ShowCluster, String::new(), String::new())]].concat(), format!("{verb} the cluster's principals"));
            }
            return (v, format!("{verb} the cluster's principals"));
        }
        SecurableEntity::Database(n) => {
            let d = named_db(n.as_ref(), ctx, snap);
            (vec![(EntityAction::AdminDatabase, d.clone(), String::new())], d.clone(), format!("database '{d}'"))
        }
        SecurableEntity::Table(q) => {
            let (d, t) = table_db(q, ctx, snap).unwrap_or_else(|_| (db.clone(), q.name.name.clone()));
            (vec![(EntityAction::AdminTable, d.clone(), t.clone())], d.clone(), format!("table '{t}'"))
        }
        SecurableEntity::Function(f) => (vec![(EntityAction::AdminFunction, db.clone(), f.name.clone())], db.clone(), format!("function '{}'", f.name)),
        SecurableEntity::MaterializedView(m) => {
            (vec![(EntityAction::AdminMaterializedView, db.clone(), m.name.clone())], db.clone(), format!("materialized view '{}'", m.name))
        }
        SecurableEntity::ExternalTable(e) => {
            (vec![(EntityAction::AdminDatabase, db.clone(), String::new())], db.clone(), format!("external table '{}' in database '{db}'", e.name))
        }
    };
    if show {
        v.push((EntityAction::ShowDatabasePrincipals, d, String::new()));
    }
    (v, format!("{verb} the principals of {what}"))
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

fn new_table(name: &str, schema: KqlSchema, creator: &Principal, with: &[ast::Property]) -> TableMeta {
    TableMeta {
        name: name.to_string(),
        schema,
        extents: Vec::new(),
        rls: None,
        restricted_view_access: false,
        principals: vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: creator.fqn(), notes: "creator".into() }],
        docstring: prop(with, "docstring").unwrap_or_default(),
        folder: prop(with, "folder").unwrap_or_default(),
    }
}

fn policy_row(policy: &str, entity: String, json: Option<String>) -> Vec<V> {
    vec![V::S(policy.into()), V::S(entity), V::S(json.unwrap_or_else(|| "null".into())), V::S(String::new()), V::S(String::new())]
}

const POLICY_COLS: &[(&str, KqlType)] = &[
    ("PolicyName", KqlType::String),
    ("EntityName", KqlType::String),
    ("Policy", KqlType::String),
    ("ChildEntities", KqlType::String),
    ("EntityType", KqlType::String),
];

const PRINCIPAL_COLS: &[(&str, KqlType)] = &[
    ("Role", KqlType::String),
    ("PrincipalType", KqlType::String),
    ("PrincipalDisplayName", KqlType::String),
    ("PrincipalObjectId", KqlType::String),
    ("PrincipalFQN", KqlType::String),
    ("Notes", KqlType::String),
    ("RoleAssignmentIdentifier", KqlType::String),
];

/// The `with (...)` properties of `.alter table|materialized-view X policy row_level_security`.
/// The one Kusto documents, `allowMaterializedViewsWithoutRowLevelSecurity`, overrides the
/// materialized-view checks of spec 5.6 (see `materialized.rs`); returns its value.
fn rls_properties(with: &[(String, String)]) -> Result<bool> {
    let mut allow = false;
    for (k, v) in with {
        if !k.eq_ignore_ascii_case("allowMaterializedViewsWithoutRowLevelSecurity") {
            return Err(RuntimeError::bad_request(format!(
                "unknown property '{k}' of the row_level_security policy (known: allowMaterializedViewsWithoutRowLevelSecurity)"
            )));
        }
        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
            return Err(RuntimeError::bad_request(format!("property '{k}' must be true or false, not '{v}'")));
        }
        allow = v.eq_ignore_ascii_case("true");
    }
    Ok(allow)
}

fn rls_json(r: &Option<RlsMeta>) -> Option<String> {
    r.as_ref().map(|r| serde_json::json!({"IsEnabled": r.enabled, "Query": r.query}).to_string())
}

pub(crate) async fn execute(cluster: &Cluster, caller: &Caller, ctx: &RequestContext, cmd: &ast::Command, text: &str) -> Result<QueryOutput> {
    let snap = cluster.snapshot();
    gate(&snap, caller, ctx, cmd)?;
    let mut meta = snap.meta.clone();
    let db = ctx.database.clone();
    match &cmd.kind {
        CommandKind::CreateDatabase { name, if_not_exists, .. } => {
            check(is_cluster(caller, &meta, Role::AllDatabasesAdmins), caller, &format!("create database '{}'", name.name), "AllDatabasesAdmin")?;
            names::validate(EntityKind::Database, &name.name, false)?;
            if meta.db(&name.name).is_some() {
                if *if_not_exists {
                    return show_databases(cluster, caller);
                }
                return Err(RuntimeError::bad_request(format!("database '{}' already exists", name.name)));
            }
            meta.databases.push(DatabaseMeta {
                name: name.name.clone(),
                principals: vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: caller.principal.fqn(), notes: "creator".into() }],
                ..Default::default()
            });
            cluster.commit(meta, HashMap::new())?;
            show_databases(cluster, caller)
        }
        CommandKind::DropDatabase { .. } => Err(RuntimeError::bad_request(
            "dropping a database is a control-plane operation in Kusto; it is not available as a command",
        )),
        CommandKind::CreateTable { merge, table: def, with } => {
            create_tables(cluster, caller, ctx, &mut meta, *merge, std::slice::from_ref(def), with)?;
            let (d, t) = table_db(&def.name, ctx, &snap)?;
            show_schema(&cluster.snapshot(), &d, &[t])
        }
        CommandKind::CreateTables { merge, tables, with } => {
            create_tables(cluster, caller, ctx, &mut meta, *merge, tables, with)?;
            let names: Vec<String> = tables.iter().map(|t| t.name.name.name.clone()).collect();
            show_schema(&cluster.snapshot(), &db, &names)
        }
        CommandKind::DropTable { name, if_exists } => drop_tables(cluster, caller, ctx, meta, std::slice::from_ref(name), *if_exists),
        CommandKind::DropTables { names, if_exists } => drop_tables(cluster, caller, ctx, meta, names, *if_exists),
        CommandKind::ShowTables { .. } => {
            check(can_show(&snap, caller, &db), caller, &format!("show the tables of database '{db}'"), "Database Viewer")?;
            let d = meta.db(&db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
            let rows = d.tables.iter().map(|t| vec![V::S(t.name.clone()), V::S(d.name.clone()), V::S(t.folder.clone()), V::S(t.docstring.clone())]).collect();
            table(&[("TableName", KqlType::String), ("DatabaseName", KqlType::String), ("Folder", KqlType::String), ("DocString", KqlType::String)], rows)
        }
        CommandKind::ShowTable { name } | CommandKind::ShowTableDetails { name } => {
            let (d, t) = table_db(name, ctx, &snap)?;
            check(can_show(&snap, caller, &d), caller, &format!("show table '{t}'"), "Database Viewer")?;
            let tm = need_table(&meta, &d, &t)?;
            let rows = tm
                .schema
                .columns
                .iter()
                .map(|c| vec![V::S(c.name.clone()), V::S(c.ty.name().to_string())])
                .collect();
            table(&[("AttributeName", KqlType::String), ("AttributeType", KqlType::String)], rows)
        }
        CommandKind::ShowTableSchema { name, format } => {
            let (d, t) = table_db(name, ctx, &snap)?;
            check(can_show(&snap, caller, &d), caller, &format!("show the schema of table '{t}'"), "Database Viewer")?;
            let tm = need_table(&meta, &d, &t)?;
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
        CommandKind::ShowDatabases => show_databases(cluster, caller),
        CommandKind::ShowDatabaseSchema { name, format, with } => {
            let wanted = name.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| db.clone());
            let d = meta.db(&wanted).map(|d| d.name.clone()).ok_or_else(|| RuntimeError::bad_request(format!("database '{wanted}' does not exist")))?;
            crate::schema_script::show_database_schema(&snap, caller, &d, *format, &props(with))
        }
        CommandKind::ShowFunctions => {
            check(can_show(&snap, caller, &db), caller, &format!("show the functions of database '{db}'"), "Database Viewer")?;
            let d = meta.db(&db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
            let rows = d.functions.iter().map(function_row).collect();
            table(FUNCTION_COLS, rows)
        }
        CommandKind::ShowFunction { name } => {
            check(can_show(&snap, caller, &db), caller, &format!("show function '{}'", name.name), "Database Viewer")?;
            let d = meta.db(&db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?;
            let f = d.function(&name.name).ok_or_else(|| RuntimeError::bad_request(format!("function '{}' does not exist", name.name)))?;
            table(FUNCTION_COLS, vec![function_row(f)])
        }
        CommandKind::IngestInline { table: t, data, with } => {
            let (d, t) = table_db(t, ctx, &snap)?;
            check(can_ingest(&snap, caller, &d, &t), caller, &format!("ingest into table '{t}'"), "Table Ingestor")?;
            let tm = need_table(&meta, &d, &t)?;
            let started = std::time::Instant::now();
            let result = async {
                let opts = ingest::options_from_properties(&props(with))?;
                let ingested = ingest::ingest_inline(data, &tm.schema, &opts)?;
                let committed = append(cluster, meta.clone(), &d, &t, ingested.batches).await?;
                ingest::command_result(committed, &ingested.summary, started.elapsed())
            }
            .await;
            record_failure(cluster, caller, result, &d, &t, "inline", "DataIngestInline", with, 1)
        }
        CommandKind::Ingest { table: t, sources, with, .. } => {
            let (d, t) = table_db(t, ctx, &snap)?;
            check(can_ingest(&snap, caller, &d, &t), caller, &format!("ingest into table '{t}'"), "Table Ingestor")?;
            let tm = need_table(&meta, &d, &t)?;
            let started = std::time::Instant::now();
            let mut current = String::new();
            let result = async {
                let opts = ingest::IngestOptions {
                    progress: cluster.ingestion_progress.clone(),
                    ..ingest::options_from_properties(&props(with))?
                };
                let mut batches = Vec::new();
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
                    let ingested = ingest::ingest_file(&file, &tm.schema, &opts)?;
                    batches.extend(ingested.batches);
                    summary.merge(ingested.summary);
                }
                let committed = append(cluster, meta.clone(), &d, &t, batches).await?;
                ingest::command_result(committed, &summary, started.elapsed())
            }
            .await;
            record_failure(cluster, caller, result, &d, &t, &current, "DataIngestPull", with, sources.len())
        }
        CommandKind::ShowIngestionFailures { with } => show_ingestion_failures(&snap, caller, &db, with),
        CommandKind::TableFromQuery { mode, table: t, query, .. } => {
            let (d, tname) = table_db(t, ctx, &snap)?;
            let exists = meta.db(&d).and_then(|x| x.table(&tname)).is_some();
            match (mode, exists) {
                (TableWriteMode::Set, true) => return Err(RuntimeError::bad_request(format!("table '{tname}' already exists; use .append or .set-or-append"))),
                (TableWriteMode::Append, false) => return Err(RuntimeError::bad_request(format!("table '{tname}' does not exist; use .set or .set-or-append"))),
                (TableWriteMode::SetOrReplace, true) => check(is_table_admin(&snap, caller, &d, &tname), caller, &format!("replace the data of table '{tname}'"), "Table Admin")?,
                (_, true) => check(can_ingest(&snap, caller, &d, &tname), caller, &format!("append to table '{tname}'"), "Table Ingestor")?,
                (_, false) => check(is_db_user(&snap, caller, &d), caller, &format!("create table '{tname}'"), "Database User")?,
            }
            let planned = cluster.plan(&snap, caller, ctx, query, text)?;
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
                if *mode == TableWriteMode::SetOrReplace {
                    need_table_mut(&mut meta, &d, &tname)?.extents.clear();
                }
            }
            append(cluster, meta, &d, &tname, batches).await
        }
        CommandKind::CreateFunction { mode, if_not_exists, with, name, params: _, body: _, body_span } => {
            let exists = meta.db(&db).and_then(|d| d.function(&name.name)).is_some();
            let fadmin = is_db_admin(&snap, caller, &db)
                || meta.db(&db).and_then(|d| d.function(&name.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
            match (mode, exists) {
                (ast::FunctionWriteMode::Create, true) if *if_not_exists => {
                    let f = meta.db(&db).and_then(|d| d.function(&name.name)).ok_or_else(|| RuntimeError::Internal("function vanished".into()))?;
                    return table(FUNCTION_COLS, vec![function_row(f)]);
                }
                (ast::FunctionWriteMode::Create, true) => return Err(RuntimeError::bad_request(format!("function '{}' already exists", name.name))),
                (ast::FunctionWriteMode::Alter, false) => return Err(RuntimeError::bad_request(format!("function '{}' does not exist", name.name))),
                (_, true) => check(fadmin, caller, &format!("alter function '{}'", name.name), "Function Admin")?,
                (_, false) => check(is_db_user(&snap, caller, &db), caller, &format!("create function '{}'", name.name), "Database User")?,
            }
            if kustodian_planner::is_builtin_function(&name.name) {
                return Err(RuntimeError::bad_request(format!(
                    "'{}' is the name of a built-in function; a stored function may not shadow it",
                    name.name
                )));
            }
            if meta.db(&db).and_then(|d| d.table(&name.name)).is_some() {
                return Err(RuntimeError::bad_request(format!("a table named '{}' already exists", name.name)));
            }
            names::validate(EntityKind::Function, &name.name, false)?;
            crate::materialized::name_free(&meta, &db, &name.name)?;
            let body = text.get(body_span.start..body_span.end).unwrap_or_default().to_string();
            let params_text = function_params_text(text, name, body_span.start);
            // Validate by re-parsing the stored form.
            crate::catalog::parse_function(&name.name, &params_text, &body)?;
            let dbm = need_db_mut(&mut meta, &db)?;
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
        CommandKind::DropFunction { name, if_exists } => {
            let exists = meta.db(&db).and_then(|d| d.function(&name.name)).is_some();
            if !exists {
                if *if_exists {
                    return table(&[("Name", KqlType::String)], vec![]);
                }
                return Err(RuntimeError::bad_request(format!("function '{}' does not exist", name.name)));
            }
            let fadmin = is_db_admin(&snap, caller, &db)
                || meta.db(&db).and_then(|d| d.function(&name.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
            check(fadmin, caller, &format!("drop function '{}'", name.name), "Function Admin")?;
            need_db_mut(&mut meta, &db)?.functions.retain(|f| f.name != name.name);
            cluster.commit(meta, HashMap::new())?;
            table(&[("Name", KqlType::String)], vec![vec![V::S(name.name.clone())]])
        }
        CommandKind::AlterRowLevelSecurity { target: PolicyTarget::MaterializedView(q), enable, query, with } => {
            let allow = rls_properties(&props(with))?;
            let (d, v) = table_db(q, ctx, &snap)?;
            crate::materialized::alter_rls(cluster, caller, ctx, &snap, meta, &d, &v, *enable, allow, query)
        }
        CommandKind::ShowRowLevelSecurity { target: PolicyTarget::MaterializedView(q) } => {
            let (d, v) = table_db(q, ctx, &snap)?;
            crate::materialized::show_rls(&snap, caller, &d, &v)
        }
        CommandKind::DeleteRowLevelSecurity { target: PolicyTarget::MaterializedView(q) } => {
            let (d, v) = table_db(q, ctx, &snap)?;
            crate::materialized::delete_rls(cluster, caller, &snap, meta, &d, &v)
        }
        CommandKind::CreateMaterializedView { if_not_exists, with, name, source, query } => {
            crate::materialized::create(cluster, caller, &snap, meta, &db, *if_not_exists, &props(with), &name.name, &source.name, query, text).await
        }
        CommandKind::ShowMaterializedViews => crate::materialized::show(&snap, caller, &db, None),
        CommandKind::ShowMaterializedView { name } => crate::materialized::show(&snap, caller, &db, Some(&name.name)),
        CommandKind::DropMaterializedView { name, if_exists } => crate::materialized::drop(cluster, caller, &snap, meta, &db, &name.name, *if_exists),
        CommandKind::EnableMaterializedView { name, enable, with } => {
            crate::materialized::enable(cluster, caller, &snap, meta, &db, &name.name, *enable, &props(with)).await
        }
        CommandKind::AlterRowLevelSecurity { target, enable, query, with } => {
            let PolicyTarget::Table(q) = target else {
                return Err(RuntimeError::bad_request("row_level_security applies to one table or materialized view"));
            };
            let allow = rls_properties(&props(with))?;
            let (d, t) = table_db(q, ctx, &snap)?;
            check(is_table_admin(&snap, caller, &d, &t), caller, &format!("alter the row_level_security policy of table '{t}'"), "Table Admin")?;
            let tm = need_table(&meta, &d, &t)?;
            if *enable && tm.restricted_view_access {
                return Err(RuntimeError::bad_request(format!(
                    "table '{t}' has restricted view access; row level security cannot be enabled on it"
                )));
            }
            let functions = crate::policy::validate_policy(&snap, caller, ctx, &d, &t, query)?;
            if *enable {
                crate::materialized::check_source_rls(&mut meta, &d, &t, allow)?;
            }
            need_table_mut(&mut meta, &d, &t)?.rls = Some(RlsMeta { enabled: *enable, query: query.clone(), functions: Some(functions) });
            let json = rls_json(&need_table(&meta, &d, &t)?.rls);
            cluster.commit(meta, HashMap::new())?;
            table(POLICY_COLS, vec![policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), json)])
        }
        CommandKind::ShowRowLevelSecurity { target } => {
            let rows = policy_targets(target, ctx, &snap, caller)?
                .into_iter()
                .map(|(d, t)| {
                    let json = meta.db(&d).and_then(|x| x.table(&t)).and_then(|tm| rls_json(&tm.rls));
                    policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), json)
                })
                .collect();
            table(POLICY_COLS, rows)
        }
        CommandKind::DeleteRowLevelSecurity { target } => {
            let PolicyTarget::Table(q) = target else {
                return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported("row_level_security on materialized views")));
            };
            let (d, t) = table_db(q, ctx, &snap)?;
            check(is_table_admin(&snap, caller, &d, &t), caller, &format!("delete the row_level_security policy of table '{t}'"), "Table Admin")?;
            need_table_mut(&mut meta, &d, &t)?.rls = None;
            cluster.commit(meta, HashMap::new())?;
            table(POLICY_COLS, vec![policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), None)])
        }
        CommandKind::AlterRestrictedViewAccess { target, enable } => {
            let targets: Vec<ast::QualifiedName> = match target {
                PolicyTarget::Table(q) => vec![q.clone()],
                PolicyTarget::Tables(qs) => qs.clone(),
                _ => return Err(RuntimeError::bad_request("restricted_view_access applies to tables")),
            };
            let mut rows = Vec::new();
            for q in &targets {
                let (d, t) = table_db(q, ctx, &snap)?;
                check(is_table_admin(&snap, caller, &d, &t), caller, &format!("alter the restricted_view_access policy of table '{t}'"), "Table Admin")?;
                if *enable {
                    crate::materialized::check_source_rva(&meta, &d, &t)?;
                }
                let tm = need_table_mut(&mut meta, &d, &t)?;
                if *enable && tm.rls.as_ref().is_some_and(|r| r.enabled) {
                    return Err(RuntimeError::bad_request(format!(
                        "table '{t}' has an enabled row_level_security policy; restricted view access cannot be enabled on it"
                    )));
                }
                tm.restricted_view_access = *enable;
                rows.push(policy_row("RestrictedViewAccessPolicy", format!("[{d}].[{t}]"), Some(serde_json::json!({"IsEnabled": enable}).to_string())));
            }
            cluster.commit(meta, HashMap::new())?;
            table(POLICY_COLS, rows)
        }
        CommandKind::ShowRestrictedViewAccess { target } => {
            let rows = policy_targets(target, ctx, &snap, caller)?
                .into_iter()
                .map(|(d, t)| {
                    let on = meta.db(&d).and_then(|x| x.table(&t)).is_some_and(|tm| tm.restricted_view_access);
                    policy_row(
                        "RestrictedViewAccessPolicy",
                        format!("[{d}].[{t}]"),
                        on.then(|| serde_json::json!({"IsEnabled": true}).to_string()),
                    )
                })
                .collect();
            table(POLICY_COLS, rows)
        }
        CommandKind::DeleteRestrictedViewAccess { target } => {
            let PolicyTarget::Table(q) = target else {
                return Err(RuntimeError::bad_request("restricted_view_access applies to tables"));
            };
            let (d, t) = table_db(q, ctx, &snap)?;
            check(is_table_admin(&snap, caller, &d, &t), caller, &format!("delete the restricted_view_access policy of table '{t}'"), "Table Admin")?;
            need_table_mut(&mut meta, &d, &t)?.restricted_view_access = false;
            cluster.commit(meta, HashMap::new())?;
            table(POLICY_COLS, vec![policy_row("RestrictedViewAccessPolicy", format!("[{d}].[{t}]"), None)])
        }
        CommandKind::ChangePrincipals { action, entity, role, principals, none, skip_results, notes } => {
            change_principals(cluster, caller, ctx, &snap, meta, *action, entity, &role.name, principals, *none, *skip_results, notes.as_ref())
        }
        CommandKind::ShowPrincipals { entity } => {
            let (label, list) = entity_principals(&snap, caller, ctx, entity, true)?;
            principal_rows(&label, &list)
        }
        CommandKind::ShowPrincipalRoles { entity, principal, .. } => show_principal_roles(&snap, caller, ctx, entity.as_ref(), principal.as_ref()),
        CommandKind::CreateTableBasedOn { .. } => Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(".create table ... based-on"))),
        CommandKind::ShowTablesSubset { .. } => Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(".show tables (T1, T2)"))),
        CommandKind::ShowDatabasesSubset { .. } => Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(".show databases (D1, D2)"))),
        CommandKind::DropFunctions { names, if_exists } => {
            for n in names {
                let exists = meta.db(&db).and_then(|d| d.function(&n.name)).is_some();
                if !exists && !*if_exists {
                    return Err(RuntimeError::bad_request(format!("function '{}' does not exist", n.name)));
                }
                let fadmin = is_db_admin(&snap, caller, &db)
                    || meta.db(&db).and_then(|d| d.function(&n.name)).is_some_and(|f| caller.holds(&f.principals, Role::Admins));
                check(!exists || fadmin, caller, &format!("drop function '{}'", n.name), "Function Admin")?;
                need_db_mut(&mut meta, &db)?.functions.retain(|f| f.name != n.name);
            }
            cluster.commit(meta, HashMap::new())?;
            table(&[("Name", KqlType::String)], names.iter().map(|n| vec![V::S(n.name.clone())]).collect())
        }
        CommandKind::ClearGroupMembershipCache { .. } => table(&[("Result", KqlType::String)], vec![vec![V::S("Kustodian resolves groups from request claims; there is no cache".into())]]),
    }
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

fn show_databases(cluster: &Cluster, caller: &Caller) -> Result<QueryOutput> {
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

fn show_schema(snap: &State, db: &str, names: &[String]) -> Result<QueryOutput> {
    let mut rows = Vec::new();
    for n in names {
        let tm = need_table(&snap.meta, db, n)?;
        let schema = tm.schema.columns.iter().map(|c| format!("{}:{}", c.name, c.ty)).collect::<Vec<_>>().join(",");
        rows.push(vec![V::S(tm.name.clone()), V::S(schema), V::S(db.to_string()), V::S(tm.folder.clone()), V::S(tm.docstring.clone())]);
    }
    table(&[("TableName", KqlType::String), ("Schema", KqlType::String), ("DatabaseName", KqlType::String), ("Folder", KqlType::String), ("DocString", KqlType::String)], rows)
}

fn create_tables(cluster: &Cluster, caller: &Caller, ctx: &RequestContext, meta: &mut Meta, merge: bool, defs: &[ast::TableDef], with: &[ast::Property]) -> Result<()> {
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
                check(is_table_admin(&snap, caller, &d, &t), caller, &format!("extend the schema of table '{t}'"), "Table Admin")?;
                for c in schema.columns {
                    match existing.schema.get(&c.name) {
                        Some(e) if e.ty != c.ty => {
                            return Err(RuntimeError::bad_request(format!("column '{}' of table '{t}' is {} not {}", c.name, e.ty, c.ty)));
                        }
                        Some(_) => {}
                        None => {
                            if !existing.extents.is_empty() {
                                return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(
                                    "adding columns to a table that already holds data",
                                )));
                            }
                            existing.schema.columns.push(c);
                        }
                    }
                }
            }
            None => {
                check(is_db_user(&snap, caller, &d), caller, &format!("create table '{t}' in database '{d}'"), "Database User")?;
                dbm.tables.push(new_table(&t, schema, &caller.principal, with));
            }
        }
    }
    cluster.commit(meta.clone(), HashMap::new())
}

fn drop_tables(cluster: &Cluster, caller: &Caller, ctx: &RequestContext, mut meta: Meta, names: &[ast::QualifiedName], if_exists: bool) -> Result<QueryOutput> {
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
        check(is_table_admin(&snap, caller, &d, &t), caller, &format!("drop table '{t}'"), "Table Admin")?;
        crate::materialized::check_source_drop(&meta, &d, &t)?;
        need_db_mut(&mut meta, &d)?.tables.retain(|x| x.name != t);
        dropped.push((d, t));
    }
    cluster.commit(meta, HashMap::new())?;
    table(&[("TableName", KqlType::String), ("DatabaseName", KqlType::String)], dropped.into_iter().map(|(d, t)| vec![V::S(t), V::S(d)]).collect())
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
fn show_ingestion_failures(snap: &State, caller: &Caller, db: &str, with: &[ast::Property]) -> Result<QueryOutput> {
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

/// Appends to a table and re-materializes its materialized views, in one commit.
async fn append(cluster: &Cluster, mut meta: Meta, db: &str, t: &str, batches: Vec<RecordBatch>) -> Result<QueryOutput> {
    let schema = need_table(&meta, db, t)?.schema.arrow_schema();
    let mut new_data = HashMap::new();
    let mut rows = Vec::new();
    if let Some((info, data)) = cluster.new_extent(batches, &schema)? {
        rows.push(vec![V::S(info.id.clone()), V::L(info.rows as i64)]);
        new_data.insert(info.id.clone(), data);
        need_table_mut(&mut meta, db, t)?.extents.push(info);
    }
    crate::materialized::refresh(cluster, &mut meta, &mut new_data, db, t).await?;
    cluster.commit(meta, new_data)?;
    table(&[("ExtentId", KqlType::String), ("RowCount", KqlType::Long)], rows)
}

fn policy_targets(target: &PolicyTarget, ctx: &RequestContext, snap: &State, caller: &Caller) -> Result<Vec<(String, String)>> {
    let out = match target {
        PolicyTarget::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            need_table(&snap.meta, &d, &t)?;
            vec![(d, t)]
        }
        PolicyTarget::Tables(qs) => {
            let mut v = Vec::new();
            for q in qs {
                let (d, t) = table_db(q, ctx, snap)?;
                need_table(&snap.meta, &d, &t)?;
                v.push((d, t));
            }
            v
        }
        PolicyTarget::AllTables => snap
            .meta
            .db(&ctx.database)
            .map(|d| d.tables.iter().map(|t| (d.name.clone(), t.name.clone())).collect())
            .unwrap_or_default(),
        PolicyTarget::MaterializedView(_) => {
            return Err(RuntimeError::bad_request("restricted_view_access applies to tables, not materialized views"));
        }
    };
    for (d, _) in &out {
        check(can_show(snap, caller, d), caller, &format!("show policies in database '{d}'"), "Database Viewer")?;
    }
    Ok(out)
}

/// The label (`Database X`) and assignments of an entity, after the caller's permission check.
fn entity_principals(snap: &State, caller: &Caller, ctx: &RequestContext, entity: &SecurableEntity, show: bool) -> Result<(String, Vec<RoleAssignment>)> {
    let meta = &snap.meta;
    match entity {
        SecurableEntity::Cluster => {
            let ok = auth::allows(meta, caller, &Action::AdminCluster) || (show && auth::allows(meta, caller, &Action::ShowCluster));
            check(ok, caller, &format!("{} the cluster's principals", if show { "show" } else { "manage" }), "AllDatabasesAdmin")?;
            Ok(("Cluster".into(), meta.cluster_roles.clone()))
        }
        SecurableEntity::Database(name) => {
            let d = named_db(name.as_ref(), ctx, snap);
            let ok = auth::allows(meta, caller, &Action::AdminDatabase(&d))
                || (show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&d)));
            check(ok, caller, &format!("{} the principals of database '{d}'", if show { "show" } else { "manage" }), "Database Admin")?;
            let dbm = meta.db(&d).ok_or_else(|| RuntimeError::bad_request(format!("database '{d}' does not exist")))?;
            Ok((format!("Database {}", dbm.name), dbm.principals.clone()))
        }
        SecurableEntity::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            let monitor = show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&d));
            check(monitor || is_table_admin(snap, caller, &d, &t), caller, &format!("{} the principals of table '{t}'", if show { "show" } else { "manage" }), "Table Admin")?;
            let tm = need_table(meta, &d, &t)?;
            Ok((format!("Table {t}"), tm.principals.clone()))
        }
        SecurableEntity::Function(f) => {
            let ok = auth::allows(meta, caller, &Action::AdminFunction(&ctx.database, &f.name))
                || (show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&ctx.database)));
            check(ok, caller, &format!("{} the principals of function '{}'", if show { "show" } else { "manage" }, f.name), "Function Admin")?;
            let dbm = meta.db(&ctx.database).ok_or_else(|| RuntimeError::bad_request("no database in scope"))?;
            let fm = dbm.function(&f.name).ok_or_else(|| RuntimeError::bad_request(format!("function '{}' does not exist", f.name)))?;
            Ok((format!("Function {}", f.name), fm.principals.clone()))
        }
        SecurableEntity::MaterializedView(v) => crate::materialized::principals(snap, caller, &ctx.database, &v.name, show),
        SecurableEntity::ExternalTable(_) => Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported("external tables"))),
    }
}

fn principal_rows(label: &str, list: &[RoleAssignment]) -> Result<QueryOutput> {
    let rows = list
        .iter()
        .map(|a| {
            let p = a.principal();
            vec![
                V::S(format!("{label} {}", role_display(&a.role))),
                V::S(p.as_ref().map(|p| p.kind.display_type().to_string()).unwrap_or_default()),
                V::S(p.as_ref().map(|p| p.display_name()).unwrap_or_default()),
                V::S(p.as_ref().map(|p| p.id.clone()).unwrap_or_default()),
                V::S(a.principal.clone()),
                V::S(a.notes.clone()),
                V::S(format!("{}:{}", a.role, a.principal)),
            ]
        })
        .collect();
    table(PRINCIPAL_COLS, rows)
}

#[allow(clippy::too_many_arguments)]
fn change_principals(
    cluster: &Cluster,
    caller: &Caller,
    ctx: &RequestContext,
    snap: &State,
    mut meta: Meta,
    action: PrincipalAction,
    entity: &SecurableEntity,
    role: &str,
    principals: &[ast::Literal],
    none: bool,
    skip_results: bool,
    notes: Option<&ast::Literal>,
) -> Result<QueryOutput> {
    let role = role.to_ascii_lowercase();
    let allowed: &[Role] = match entity {
        SecurableEntity::ExternalTable(_) => &[],
        _ => Role::of(entity),
    };
    if !allowed.iter().any(|r| r.keyword() == role) {
        let names: Vec<&str> = allowed.iter().map(|r| r.keyword()).collect();
        return Err(RuntimeError::bad_request(format!("'{role}' is not a role of this entity; expected one of: {}", names.join(", "))));
    }
    if none && action != PrincipalAction::Set {
        return Err(RuntimeError::bad_request("'none' is only allowed with .set"));
    }
    let mut fqns = Vec::new();
    for l in principals {
        let s = match &l.kind {
            ast::LiteralKind::String(s) => s.clone(),
            _ => return Err(RuntimeError::bad_request("principals must be string literals")),
        };
        let p = Principal::parse(&s).map_err(RuntimeError::bad_request)?;
        fqns.push(p.fqn());
    }
    let notes = notes
        .map(|l| match &l.kind {
            ast::LiteralKind::String(s) => s.clone(),
            _ => String::new(),
        })
        .unwrap_or_default();
    let (label, _) = entity_principals(snap, caller, ctx, entity, false)?;
    // Table roles need database access first (spec 3.1).
    if let SecurableEntity::Table(q) = entity {
        let (d, _) = table_db(q, ctx, snap)?;
        for f in &fqns {
            let p = Principal::parse(f).map_err(RuntimeError::bad_request)?;
            let c = Caller::assignee(p);
            let has_db = can_read_database(snap, &c, &d)
                || meta.db(&d).is_some_and(|x| c.holds(&x.principals, Role::Ingestors));
            if !has_db {
                return Err(RuntimeError::bad_request(format!(
                    "principal '{f}' has no access to database '{d}'; grant a database role (for example users) before a table role"
                )));
            }
        }
    }
    if let SecurableEntity::MaterializedView(v) = entity {
        for f in &fqns {
            crate::materialized::check_admin_prerequisite(snap, &ctx.database, &v.name, f)?;
        }
    }
    let list: &mut Vec<RoleAssignment> = match entity {
        SecurableEntity::Cluster => &mut meta.cluster_roles,
        SecurableEntity::Database(name) => {
            let d = name.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| ctx.database.clone());
            &mut need_db_mut(&mut meta, &d)?.principals
        }
        SecurableEntity::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            &mut need_table_mut(&mut meta, &d, &t)?.principals
        }
        SecurableEntity::Function(f) => {
            let d = ctx.database.clone();
            &mut need_db_mut(&mut meta, &d)?
                .functions
                .iter_mut()
                .find(|x| x.name == f.name)
                .ok_or_else(|| RuntimeError::bad_request(format!("function '{}' does not exist", f.name)))?
                .principals
        }
        SecurableEntity::MaterializedView(v) => crate::materialized::principals_mut(&mut meta, &ctx.database, &v.name)?,
        SecurableEntity::ExternalTable(_) => return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported("external tables"))),
    };
    let same = |a: &RoleAssignment, f: &str| {
        a.role == role && matches!((Principal::parse(&a.principal), Principal::parse(f)), (Ok(x), Ok(y)) if x == y)
    };
    match action {
        PrincipalAction::Add => {
            for f in &fqns {
                if !list.iter().any(|a| same(a, f)) {
                    list.push(RoleAssignment { role: role.clone(), principal: f.clone(), notes: notes.clone() });
                }
            }
        }
        PrincipalAction::Drop => list.retain(|a| !fqns.iter().any(|f| same(a, f))),
        PrincipalAction::Set => {
            list.retain(|a| a.role != role);
            for f in &fqns {
                list.push(RoleAssignment { role: role.clone(), principal: f.clone(), notes: notes.clone() });
            }
        }
    }
    if matches!(entity, SecurableEntity::Cluster) && !list.iter().any(|a| a.role == Role::AllDatabasesAdmins.keyword()) {
        return Err(RuntimeError::bad_request("the cluster must keep at least one AllDatabasesAdmin"));
    }
    let result: Vec<RoleAssignment> = list.clone();
    cluster.commit(meta, HashMap::new())?;
    if skip_results {
        return table(PRINCIPAL_COLS, vec![]);
    }
    principal_rows(&label, &result)
}

fn show_principal_roles(snap: &State, caller: &Caller, ctx: &RequestContext, entity: Option<&SecurableEntity>, who: Option<&ast::Literal>) -> Result<QueryOutput> {
    let target = match who {
        Some(l) => match &l.kind {
            ast::LiteralKind::String(s) => {
                let p = Principal::parse(s).map_err(RuntimeError::bad_request)?;
                // `gate` checked the right to list the principals of the entity in scope.
                Caller::assignee(p)
            }
            _ => return Err(RuntimeError::bad_request("the principal must be a string literal")),
        },
        None => caller.clone(),
    };
    let mut rows = Vec::new();
    let mut push = |scope: String, list: &[RoleAssignment]| {
        for a in list {
            if target.is(&a.principal) {
                rows.push(vec![V::S(scope.clone()), V::S(target.principal.display_name()), V::S(target.principal.id.clone()), V::S(role_display(&a.role).to_string())]);
            }
        }
    };
    let all = entity.is_none() || matches!(entity, Some(SecurableEntity::Cluster));
    if all {
        push("Cluster".into(), &snap.meta.cluster_roles);
    }
    for d in &snap.meta.databases {
        let want_db = match entity {
            None | Some(SecurableEntity::Cluster) => true,
            Some(SecurableEntity::Database(n)) => n.as_ref().map(|n| n.name.eq_ignore_ascii_case(&d.name)).unwrap_or(d.name.eq_ignore_ascii_case(&ctx.database)),
            Some(SecurableEntity::Table(_)) | Some(SecurableEntity::Function(_)) | Some(SecurableEntity::MaterializedView(_)) => {
                d.name.eq_ignore_ascii_case(&ctx.database)
            }
            _ => false,
        };
        if !want_db {
            continue;
        }
        if matches!(entity, None | Some(SecurableEntity::Cluster) | Some(SecurableEntity::Database(_))) {
            push(format!("Database {}", d.name), &d.principals);
        }
        for t in &d.tables {
            if matches!(entity, Some(SecurableEntity::Table(q)) if q.name.name != t.name) {
                continue;
            }
            if matches!(entity, Some(SecurableEntity::Function(_)) | Some(SecurableEntity::MaterializedView(_))) {
                continue;
            }
            push(format!("Table {}.{}", d.name, t.name), &t.principals);
        }
        for f in &d.functions {
            if matches!(entity, Some(SecurableEntity::Function(n)) if n.name != f.name)
                || matches!(entity, Some(SecurableEntity::Table(_)) | Some(SecurableEntity::MaterializedView(_)))
            {
                continue;
            }
            push(format!("Function {}.{}", d.name, f.name), &f.principals);
        }
        for v in &d.materialized_views {
            if matches!(entity, Some(SecurableEntity::MaterializedView(n)) if n.name != v.name)
                || matches!(entity, Some(SecurableEntity::Table(_)) | Some(SecurableEntity::Function(_)))
            {
                continue;
            }
            push(format!("Materialized View {}.{}", d.name, v.name), &v.principals);
        }
    }
    table(&[("Scope", KqlType::String), ("DisplayName", KqlType::String), ("AADObjectID", KqlType::String), ("Role", KqlType::String)], rows)
}
