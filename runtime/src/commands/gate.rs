//! The command gate: the permission matrix applied to every command before it runs, from its
//! syntax and the caller's roles alone.

use kustodian_parser::ast::{self, CommandKind, ExtentScope, ExtentSource, PolicyTarget, SecurableEntity, TableWriteMode};
use kustodian_planner::{Principal, RequestContext};

use super::{named_db, prop, table_db};
use crate::auth::{self, Action, Caller, Needs};
use crate::catalog::State;
use crate::error::Result;

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
                    PolicyTarget::AllTables | PolicyTarget::Database(_) => {
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
                    auth::check(auth::knows_database(&snap.meta, caller, &d), caller, &format!("show its roles in database '{d}'"), Needs::DatabaseViewer)
                }
                SecurableEntity::Table(q) => {
                    let (d, _) = table_db(q, ctx, snap)?;
                    auth::check(auth::knows_database(&snap.meta, caller, &d), caller, &format!("show its roles in database '{d}'"), Needs::DatabaseViewer)
                }
                SecurableEntity::Function(_) | SecurableEntity::MaterializedView(_) | SecurableEntity::ExternalTable(_) => {
                    auth::check(auth::knows_database(&snap.meta, caller, db), caller, &format!("show its roles in database '{db}'"), Needs::DatabaseViewer)
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
        CommandKind::ShowExtents { scope, .. } => match scope {
            ExtentScope::Table(q) => {
                let (d, t) = table_db(q, ctx, snap)?;
                any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show the extents of table '{t}' in database '{d}'"))
            }
            ExtentScope::Tables(qs) => {
                for q in qs {
                    let (d, t) = table_db(q, ctx, snap)?;
                    any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show the extents of table '{t}' in database '{d}'"))?;
                }
                Ok(())
            }
            ExtentScope::Database(n) => {
                let d = named_db(n.as_ref(), ctx, snap);
                any_of(snap, caller, &[Action::ShowDatabase(&d)], &format!("show the extents of database '{d}'"))
            }
            // Lists only the databases the caller may see.
            ExtentScope::Cluster => Ok(()),
        },
        CommandKind::DropExtents { table, .. } => match table {
            Some(q) => {
                let (d, t) = table_db(q, ctx, snap)?;
                any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("drop extents of table '{t}' in database '{d}'"))
            }
            // Without a table, extents of any table of the database: Kusto asks for its admin.
            None => any_of(snap, caller, &[Action::AdminDatabase(db)], &format!("drop extents in database '{db}'")),
        },
        // The source is a `.show ... extents` (its own row here) or a query (authorized as any
        // query); each listed extent's table is then checked for its admin before anything
        // is dropped.
        CommandKind::DropExtentsFrom { source, .. } => match source {
            ExtentSource::Command(c) => gate(snap, caller, ctx, c),
            ExtentSource::Query(_) => any_of(snap, caller, &[Action::ShowDatabase(db)], &format!("drop extents in database '{db}'")),
        },
        CommandKind::AlterCachingPolicy { target, .. } | CommandKind::AlterRetentionPolicy { target, .. } | CommandKind::DeleteDataPolicy { target, .. } => {
            data_policy_gate(snap, caller, ctx, target, true)
        }
        CommandKind::ShowDataPolicy { target, .. } => data_policy_gate(snap, caller, ctx, target, false),
        CommandKind::AlterEncryptionPolicy { .. } | CommandKind::DeleteEncryptionPolicy => {
            any_of(snap, caller, &[Action::AdminCluster], "change the cluster's encryption key")
        }
        CommandKind::ShowEncryptionPolicy => any_of(snap, caller, &[Action::ShowCluster], "show the cluster's encryption key"),
        CommandKind::RenameTable { name, .. } => {
            let (d, t) = table_db(name, ctx, snap)?;
            any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("rename table '{t}' in database '{d}'"))
        }
        CommandKind::AlterMergeTable { table: def, .. } => {
            let (d, t) = table_db(&def.name, ctx, snap)?;
            any_of(snap, caller, &[Action::AdminTable(&d, &t)], &format!("alter the schema of table '{t}' in database '{d}'"))
        }
        CommandKind::CreateIngestionMapping { table: q, .. } | CommandKind::DropIngestionMapping { table: q, .. } => {
            let (d, t) = table_db(q, ctx, snap)?;
            any_of(snap, caller, &[Action::IngestTable(&d, &t)], &format!("change the ingestion mappings of table '{t}' in database '{d}'"))
        }
        CommandKind::ShowIngestionMappings { table: q, .. } => {
            let (d, t) = table_db(q, ctx, snap)?;
            any_of(snap, caller, &[Action::ShowDatabase(&d), Action::IngestTable(&d, &t)], &format!("show the ingestion mappings of table '{t}' in database '{d}'"))
        }
    }
}

/// Who may change (`change`) or show a caching or retention policy: a table's admin, a
/// database's admin (for the database's policy or every table's), a materialized view's admin;
/// anyone who may show the database's metadata, to show one.
fn data_policy_gate(snap: &State, caller: &Caller, ctx: &RequestContext, target: &PolicyTarget, change: bool) -> Result<()> {
    let verb = if change { "change" } else { "show" };
    for (d, t) in policy_entities(target, ctx, snap) {
        let op = format!("{verb} the data policies of '{t}' in database '{d}'");
        if !change {
            any_of(snap, caller, &[Action::ShowDatabase(&d)], &op)?;
            continue;
        }
        match target {
            PolicyTarget::Table(_) | PolicyTarget::Tables(_) => any_of(snap, caller, &[Action::AdminTable(&d, &t)], &op)?,
            PolicyTarget::MaterializedView(_) => any_of(snap, caller, &[Action::AdminMaterializedView(&d, &t)], &op)?,
            PolicyTarget::AllTables | PolicyTarget::Database(_) => any_of(snap, caller, &[Action::AdminDatabase(&d)], &op)?,
        }
    }
    Ok(())
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
        PolicyTarget::Database(n) => vec![(named_db(Some(n), ctx, snap), "*".into())],
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
