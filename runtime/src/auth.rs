//! Security roles and authorization: who holds which role on which entity, and the checks
//! every query and command passes (Kusto's permission matrix).

use kustodian_planner::{Principal, PrincipalKind};

use crate::error::{Result, RuntimeError};
use crate::meta::Meta;
pub use crate::meta::RoleAssignment;

pub use kustodian_parser::ast::Role;


/// The caller: a principal and its group claims, both canonical (see [`Principal`]). Only
/// `aadgroup=` principals are groups, and a group is never the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub groups: Vec<Principal>,
    /// The canonical FQNs of the principal and its groups: role assignments store canonical
    /// FQNs (`Meta::canonicalize`), so holding a role is a string comparison.
    fqns: Vec<String>,
}

impl Caller {
    /// A caller from an identity: refuses a group as the caller and anything but `aadgroup=`
    /// principals as group claims (a user FQN passed as a group claim would otherwise grant
    /// that user's roles).
    pub fn new(principal: Principal, groups: Vec<Principal>) -> Result<Caller> {
        if principal.kind == PrincipalKind::AadGroup {
            return Err(RuntimeError::bad_request(format!(
                "'{}' is a group: a request is made by a user or an application, never by a group (give groups as group claims)",
                principal.fqn()
            )));
        }
        if let Some(g) = groups.iter().find(|g| g.kind != PrincipalKind::AadGroup) {
            return Err(RuntimeError::bad_request(format!(
                "group claim '{}' is not a group: only aadgroup= principals can be group claims",
                g.fqn()
            )));
        }
        Ok(Caller::unchecked(principal, groups))
    }

    /// A caller that also answers to other FQNs, which its credentials or the cluster's
    /// directory give (see [`crate::Identity::aliases`]).
    pub fn with_aliases(principal: Principal, groups: Vec<Principal>, aliases: Vec<Principal>) -> Result<Caller> {
        let mut caller = Caller::new(principal, groups)?;
        caller.fqns.extend(aliases.iter().map(Principal::fqn));
        Ok(caller)
    }

    /// The principal a role is granted to, as a would-be caller (prerequisite checks): a group
    /// too, with no group claims.
    pub fn assignee(principal: Principal) -> Caller {
        Caller::unchecked(principal, Vec::new())
    }

    fn unchecked(principal: Principal, groups: Vec<Principal>) -> Caller {
        let fqns = std::iter::once(&principal).chain(groups.iter()).map(Principal::fqn).collect();
        Caller { principal, groups, fqns }
    }

    /// Whether an assignment's principal is the caller or one of its groups (canonical
    /// comparison: kind, id and tenant all equal).
    pub fn is(&self, fqn: &str) -> bool {
        self.fqns.iter().any(|f| f == fqn)
    }

    pub fn holds(&self, assignments: &[RoleAssignment], role: Role) -> bool {
        assignments.iter().any(|a| a.role == role.keyword() && self.is(&a.principal))
    }
}

/// Kusto's human-readable role name for a stored role keyword.
pub fn role_display(role: &str) -> &'static str {
    Role::from_keyword(role).map_or("Unknown", Role::display)
}

/// The role a denied operation needs, as the Forbidden error names it: a role at a scope. Its
/// name is the scope's and [`Role::display`]'s, so no role name is written anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    AllDatabasesAdmin,
    AllDatabasesMonitor,
    DatabaseAdmin,
    DatabaseUser,
    DatabaseViewer,
    /// A restricted-view-access table: UnrestrictedViewer on top of a reading role.
    DatabaseUnrestrictedViewer,
    TableAdmin,
    TableIngestor,
    FunctionAdmin,
    MaterializedViewAdmin,
}

impl std::fmt::Display for Needs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scope, role) = match self {
            Needs::AllDatabasesAdmin => ("", Role::AllDatabasesAdmins),
            Needs::AllDatabasesMonitor => ("", Role::AllDatabasesMonitors),
            Needs::DatabaseAdmin => ("Database ", Role::Admins),
            Needs::DatabaseUser => ("Database ", Role::Users),
            Needs::DatabaseViewer => ("Database ", Role::Viewers),
            Needs::DatabaseUnrestrictedViewer => {
                let (r, v, u, a) = (Role::UnrestrictedViewers, Role::Viewers, Role::Users, Role::Admins);
                return write!(f, "Database {} (with Database {}, {} or {})", r.display(), v.display(), u.display(), a.display());
            }
            Needs::TableAdmin => ("Table ", Role::Admins),
            Needs::TableIngestor => ("Table ", Role::Ingestors),
            Needs::FunctionAdmin => ("Function ", Role::Admins),
            Needs::MaterializedViewAdmin => ("Materialized View ", Role::Admins),
        };
        write!(f, "{scope}{}", role.display())
    }
}

/// A denial that names the principal, the operation and a role that would allow it, and says
/// nothing about the data.
pub fn forbidden(caller: &Caller, operation: &str, role: Needs) -> RuntimeError {
    RuntimeError::Forbidden(format!(
        "Principal '{}' is not authorized to {operation}. It requires the {role} role.",
        caller.principal.fqn()
    ))
}

pub fn check(ok: bool, caller: &Caller, operation: &str, role: Needs) -> Result<()> {
    if ok { Ok(()) } else { Err(forbidden(caller, operation, role)) }
}

/// What a request asks to do, at which entity: the rows of Kusto's permission matrix
/// (spec 3.2). Every query and command is decided by [`allows`] on one of these, before any
/// name in the entity's database is looked up for the caller. Reads (`Show*`, `Read*`) and
/// changes are separate actions, and no role implies one it does not contain: a monitor may
/// show, never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `.create database`, cluster role changes: AllDatabasesAdmin.
    AdminCluster,
    /// `.show cluster principals`: AllDatabasesAdmin or AllDatabasesMonitor.
    ShowCluster,
    /// Query the tables of a database (without restricted view access).
    ReadDatabase(&'a str),
    /// Query one table or materialized view: a reader of its database, or its Table Admin; a
    /// table with restricted view access also needs UnrestrictedViewer.
    ReadTable(&'a str, &'a str),
    /// `.show` the metadata of a database: tables, schemas, functions, policies, views.
    ShowDatabase(&'a str),
    /// `.show database X principals`: Database Admin or Monitor.
    ShowDatabasePrincipals(&'a str),
    /// Create tables and functions (Database User).
    CreateInDatabase(&'a str),
    /// Database Admin: principals, materialized views, scripts.
    AdminDatabase(&'a str),
    /// Table Admin: alter, drop, policies, table principals, replace data.
    AdminTable(&'a str, &'a str),
    /// Table Ingestor: append data.
    IngestTable(&'a str, &'a str),
    /// Function Admin: alter, drop, function principals.
    AdminFunction(&'a str, &'a str),
    /// Materialized View Admin: alter, drop, view principals.
    AdminMaterializedView(&'a str, &'a str),
}

impl Action<'_> {
    /// The least role that allows the action, as Forbidden errors name it.
    pub fn role(&self) -> Needs {
        match self {
            Action::AdminCluster => Needs::AllDatabasesAdmin,
            Action::ShowCluster => Needs::AllDatabasesMonitor,
            Action::ReadDatabase(_) | Action::ReadTable(..) => Needs::DatabaseViewer,
            Action::ShowDatabase(_) => Needs::DatabaseViewer,
            Action::ShowDatabasePrincipals(_) | Action::AdminDatabase(_) => Needs::DatabaseAdmin,
            Action::CreateInDatabase(_) => Needs::DatabaseUser,
            Action::AdminTable(..) => Needs::TableAdmin,
            Action::IngestTable(..) => Needs::TableIngestor,
            Action::AdminFunction(..) => Needs::FunctionAdmin,
            Action::AdminMaterializedView(..) => Needs::MaterializedViewAdmin,
        }
    }

    /// The database the action is in, if any.
    pub fn database(&self) -> Option<&str> {
        match *self {
            Action::AdminCluster | Action::ShowCluster => None,
            Action::ReadDatabase(d)
            | Action::ShowDatabase(d)
            | Action::ShowDatabasePrincipals(d)
            | Action::CreateInDatabase(d)
            | Action::AdminDatabase(d)
            | Action::ReadTable(d, _)
            | Action::AdminTable(d, _)
            | Action::IngestTable(d, _)
            | Action::AdminFunction(d, _)
            | Action::AdminMaterializedView(d, _) => Some(d),
        }
    }
}

fn cluster_holds(meta: &Meta, caller: &Caller, role: Role) -> bool {
    caller.holds(&meta.cluster_roles, role)
}

fn db_holds(meta: &Meta, caller: &Caller, db: &str, role: Role) -> bool {
    meta.db(db).is_some_and(|d| caller.holds(&d.principals, role))
}

/// Whether the caller may do `action`. Roles on an entity count only when it exists; roles
/// inherited from the database and cluster count either way, so a caller without them is
/// refused the same way whether or not the entity exists.
pub fn allows(meta: &Meta, caller: &Caller, action: &Action) -> bool {
    let all_admin = || cluster_holds(meta, caller, Role::AllDatabasesAdmins);
    match *action {
        Action::AdminCluster => all_admin(),
        Action::ShowCluster => all_admin() || cluster_holds(meta, caller, Role::AllDatabasesMonitors),
        Action::AdminDatabase(d) => all_admin() || db_holds(meta, caller, d, Role::Admins),
        Action::CreateInDatabase(d) => allows(meta, caller, &Action::AdminDatabase(d)) || db_holds(meta, caller, d, Role::Users),
        Action::ReadDatabase(d) => {
            all_admin()
                || cluster_holds(meta, caller, Role::AllDatabasesViewers)
                || [Role::Admins, Role::Users, Role::Viewers].into_iter().any(|r| db_holds(meta, caller, d, r))
        }
        Action::ShowDatabase(d) => {
            allows(meta, caller, &Action::ReadDatabase(d))
                || cluster_holds(meta, caller, Role::AllDatabasesMonitors)
                || db_holds(meta, caller, d, Role::Monitors)
        }
        Action::ShowDatabasePrincipals(d) => {
            allows(meta, caller, &Action::AdminDatabase(d))
                || cluster_holds(meta, caller, Role::AllDatabasesMonitors)
                || db_holds(meta, caller, d, Role::Monitors)
        }
        Action::AdminTable(d, t) => {
            allows(meta, caller, &Action::AdminDatabase(d))
                || meta.db(d).and_then(|x| x.table(t)).is_some_and(|tm| caller.holds(&tm.principals, Role::Admins))
        }
        Action::IngestTable(d, t) => {
            allows(meta, caller, &Action::AdminTable(d, t))
                || db_holds(meta, caller, d, Role::Ingestors)
                || meta.db(d).and_then(|x| x.table(t)).is_some_and(|tm| caller.holds(&tm.principals, Role::Ingestors))
        }
        Action::ReadTable(d, t) => {
            let reader = allows(meta, caller, &Action::ReadDatabase(d));
            let table = meta.db(d).and_then(|x| x.table(t));
            let table_admin = table.is_some_and(|tm| caller.holds(&tm.principals, Role::Admins));
            if table.is_some_and(|tm| tm.restricted_view_access) {
                reader && db_holds(meta, caller, d, Role::UnrestrictedViewers)
            } else {
                reader || table_admin
            }
        }
        Action::AdminFunction(d, f) => {
            allows(meta, caller, &Action::AdminDatabase(d))
                || meta.db(d).and_then(|x| x.function(f)).is_some_and(|fm| caller.holds(&fm.principals, Role::Admins))
        }
        Action::AdminMaterializedView(d, v) => {
            allows(meta, caller, &Action::AdminDatabase(d))
                || meta.db(d).and_then(|x| x.materialized_view(v)).is_some_and(|vm| caller.holds(&vm.principals, Role::Admins))
        }
    }
}

/// Whether the caller has any foothold in a database: a role there (any database role, or a
/// role on one of its entities) or a cluster role. Only such a caller may learn whether a
/// name exists in it.
pub fn knows_database(meta: &Meta, caller: &Caller, db: &str) -> bool {
    if Role::of(&kustodian_parser::ast::SecurableEntity::Cluster).iter().any(|r| cluster_holds(meta, caller, *r)) {
        return true;
    }
    let Some(d) = meta.db(db) else { return false };
    d.principals.iter().any(|a| caller.is(&a.principal))
        || d.tables.iter().any(|t| t.principals.iter().any(|a| caller.is(&a.principal)))
        || d.functions.iter().any(|f| f.principals.iter().any(|a| caller.is(&a.principal)))
        || d.materialized_views.iter().any(|v| v.principals.iter().any(|a| caller.is(&a.principal)))
}

/// Refuses the action unless [`allows`]: Forbidden naming the principal, `operation` and the
/// role that would allow it.
pub fn authorize(meta: &Meta, caller: &Caller, action: &Action, operation: &str) -> Result<()> {
    if allows(meta, caller, action) {
        return Ok(());
    }
    if let Action::ReadTable(d, t) = *action
        && allows(meta, caller, &Action::ReadDatabase(d))
        && meta.db(d).and_then(|x| x.table(t)).is_some_and(|tm| tm.restricted_view_access)
    {
        return Err(forbidden(
            caller,
            &format!("{operation}, which has restricted view access"),
            Needs::DatabaseUnrestrictedViewer,
        ));
    }
    Err(forbidden(caller, operation, action.role()))
}
