//! Validation of a row-level security policy before it is stored: it binds as queries will
//! run it (with the rights of the admin who writes it), returns its table's schema, reads no
//! other RLS-enabled table and no other database, and is pinned to what its names resolved to.

use kustodian_planner::RequestContext;

use crate::auth::Caller;
use crate::catalog::{Access, SnapshotCatalog, State};
use crate::error::{Result, RuntimeError};

/// Validates a policy query before it is stored: it binds as queries will run it, returns the
/// table's schema, and references no other RLS-enabled table and no other database.
pub(crate) fn validate_policy(snap: &State, caller: &Caller, ctx: &RequestContext, db: &str, t: &str, query: &str) -> Result<Vec<kustodian_planner::PolicyDep>> {
    // Bound with the rights of the admin who writes it: validation errors must not describe
    // tables that admin cannot read.
    let catalog = SnapshotCatalog { validating: Some((db, t)), ..SnapshotCatalog::new(snap, Access::Caller(caller), 1) };
    let info = kustodian_planner::Catalog::table(&catalog, db, t)?.ok_or_else(|| RuntimeError::bad_request(format!("table '{t}' does not exist")))?;
    let mut vctx = ctx.clone();
    vctx.database = db.to_string();
    let (tables, functions) = kustodian_planner::validate_policy(&catalog, &vctx, &info, query).map_err(|e| match e {
        kustodian_planner::PlanError::Forbidden { .. } => RuntimeError::Plan(e),
        e => RuntimeError::bad_request(format!("the row_level_security policy query is not valid: {e}")),
    })?;
    for access in tables {
        if !access.database.eq_ignore_ascii_case(db) {
            return Err(RuntimeError::bad_request(format!(
                "the row_level_security policy query references table '{}' in another database ('{}')",
                access.table, access.database
            )));
        }
        if access.table != t && snap.meta.has_enabled_rls(db, &access.table) {
            return Err(RuntimeError::bad_request(format!(
                "the row_level_security policy query references table '{}', which has row level security enabled",
                access.table
            )));
        }
    }
    Ok(functions)
}

