//! Security roles and authorization: who holds which role on which entity, and the checks
//! every query and command passes (Kusto's permission matrix).

use kustodian_planner::Principal;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// One role assignment as stored and listed by `.show ... principals`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleAssignment {
    /// Role keyword as in the commands: `admins`, `users`, `viewers`, `unrestrictedviewers`,
    /// `ingestors`, `monitors`; cluster: `alldatabasesadmins`, `alldatabasesviewers`,
    /// `alldatabasesmonitors`.
    pub role: String,
    /// Normalised FQN.
    pub principal: String,
    #[serde(default)]
    pub notes: String,
}

impl RoleAssignment {
    pub fn principal(&self) -> Option<Principal> {
        Principal::parse(&self.principal).ok()
    }
}

pub const DATABASE_ROLES: &[&str] = &["admins", "users", "viewers", "unrestrictedviewers", "ingestors", "monitors"];
pub const TABLE_ROLES: &[&str] = &["admins", "ingestors"];
pub const FUNCTION_ROLES: &[&str] = &["admins"];
pub const CLUSTER_ROLES: &[&str] = &["alldatabasesadmins", "alldatabasesviewers", "alldatabasesmonitors"];

/// The caller: a principal and its group claims.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub groups: Vec<Principal>,
}

impl Caller {
    /// Whether an assignment's principal is the caller or one of its groups.
    pub fn is(&self, fqn: &str) -> bool {
        match Principal::parse(fqn) {
            Ok(p) => p == self.principal || self.groups.contains(&p),
            Err(_) => false,
        }
    }

    pub fn holds(&self, assignments: &[RoleAssignment], role: &str) -> bool {
        assignments.iter().any(|a| a.role == role && self.is(&a.principal))
    }
}

/// Kusto's human-readable role name for `.show ... principals`' `Role` column.
pub fn role_display(role: &str) -> &'static str {
    match role {
        "admins" => "Admin",
        "users" => "User",
        "viewers" => "Viewer",
        "unrestrictedviewers" => "UnrestrictedViewer",
        "ingestors" => "Ingestor",
        "monitors" => "Monitor",
        "alldatabasesadmins" => "AllDatabasesAdmin",
        "alldatabasesviewers" => "AllDatabasesViewer",
        "alldatabasesmonitors" => "AllDatabasesMonitor",
        _ => "Unknown",
    }
}

/// A denial that names the principal, the operation and a role that would allow it, and says
/// nothing about the data.
pub fn forbidden(caller: &Caller, operation: &str, role: &str) -> RuntimeError {
    RuntimeError::Forbidden(format!(
        "Principal '{}' is not authorized to {operation}. It requires the {role} role.",
        caller.principal.fqn()
    ))
}

pub fn check(ok: bool, caller: &Caller, operation: &str, role: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(forbidden(caller, operation, role)) }
}
