//! Principals and roles: `.add|.drop|.set <entity> <role> (...)`, `.show <entity> principals`,
//! `.show principal roles` and `.clear cluster cache groupmembership`.

use std::collections::HashMap;

use kustodian_parser::ast::{self, PrincipalAction, SecurableEntity};
use kustodian_planner::{KqlType, Principal, RequestContext};

use super::{Cx, can_read_database, is_table_admin, named_db, need_db_mut, need_table, need_table_mut, table_db};
use crate::auth::{self, Action, Caller, Role, RoleAssignment, check, role_display, Needs};
use crate::catalog::State;
use crate::cluster::{Cluster, Meta};
use crate::error::{Result, RuntimeError};
use crate::output::{QueryOutput, V, table};

/// `.show <entity> principals`.
pub(super) fn show_principals(cx: &Cx<'_>, entity: &SecurableEntity) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let (label, list) = entity_principals(snap, caller, ctx, entity, true)?;
    principal_rows(&label, &list)
}

/// `.clear cluster cache groupmembership`: there is no cache to clear.
pub(super) fn clear_group_membership_cache() -> Result<QueryOutput> {
    table(&[("Result", KqlType::String)], vec![vec![V::S("Kustodian resolves groups from request claims; there is no cache".into())]])
}

const PRINCIPAL_COLS: &[(&str, KqlType)] = &[
    ("Role", KqlType::String),
    ("PrincipalType", KqlType::String),
    ("PrincipalDisplayName", KqlType::String),
    ("PrincipalObjectId", KqlType::String),
    ("PrincipalFQN", KqlType::String),
    ("Notes", KqlType::String),
    ("RoleAssignmentIdentifier", KqlType::String),
];

/// The label (`Database X`) and assignments of an entity, after the caller's permission check.
fn entity_principals(snap: &State, caller: &Caller, ctx: &RequestContext, entity: &SecurableEntity, show: bool) -> Result<(String, Vec<RoleAssignment>)> {
    let meta = &snap.meta;
    match entity {
        SecurableEntity::Cluster => {
            let ok = auth::allows(meta, caller, &Action::AdminCluster) || (show && auth::allows(meta, caller, &Action::ShowCluster));
            check(ok, caller, &format!("{} the cluster's principals", if show { "show" } else { "manage" }), Needs::AllDatabasesAdmin)?;
            Ok(("Cluster".into(), meta.cluster_roles.clone()))
        }
        SecurableEntity::Database(name) => {
            let d = named_db(name.as_ref(), ctx, snap);
            let ok = auth::allows(meta, caller, &Action::AdminDatabase(&d))
                || (show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&d)));
            check(ok, caller, &format!("{} the principals of database '{d}'", if show { "show" } else { "manage" }), Needs::DatabaseAdmin)?;
            let dbm = meta.db(&d).ok_or_else(|| RuntimeError::bad_request(format!("database '{d}' does not exist")))?;
            Ok((format!("Database {}", dbm.name), dbm.principals.clone()))
        }
        SecurableEntity::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            let monitor = show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&d));
            check(monitor || is_table_admin(snap, caller, &d, &t), caller, &format!("{} the principals of table '{t}'", if show { "show" } else { "manage" }), Needs::TableAdmin)?;
            let tm = need_table(meta, &d, &t)?;
            Ok((format!("Table {t}"), tm.principals.clone()))
        }
        SecurableEntity::Function(f) => {
            let ok = auth::allows(meta, caller, &Action::AdminFunction(&ctx.database, &f.name))
                || (show && auth::allows(meta, caller, &Action::ShowDatabasePrincipals(&ctx.database)));
            check(ok, caller, &format!("{} the principals of function '{}'", if show { "show" } else { "manage" }, f.name), Needs::FunctionAdmin)?;
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
pub(super) fn change_principals(
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

pub(super) fn show_principal_roles(snap: &State, caller: &Caller, ctx: &RequestContext, entity: Option<&SecurableEntity>, who: Option<&ast::Literal>) -> Result<QueryOutput> {
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
