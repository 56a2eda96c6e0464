//! KQL binder, RLS substitution, the security barrier and lowering to DataFusion plans.
//!
//! Stages: `bind` resolves names and types against a [`Catalog`], substituting row-level
//! security policies at the single table-resolution choke point; `lower` produces a DataFusion
//! `LogicalPlan`; `security` holds the barrier (logical and physical), the total-predicate
//! pushdown and the plan verifier; `session` the DataFusion session plans are made with.

pub mod bind;
pub mod catalog;
pub mod direct;
pub mod error;
pub mod functions;
pub mod materialize_exec;
pub mod optimize;
pub mod physical_rules;
pub mod pipeline;
pub mod planned;
pub mod principal;
pub mod range_table;
pub mod scan_exec;
pub mod security;
pub mod serialize_exec;
pub mod session;
pub mod types;

pub use error::{PlanError, Result};
pub use types::{KqlColumn, KqlSchema, KqlType};
pub use bind::{AppliedPolicy, PlannedQuery, TableAccess, plan_pipe, plan_query, validate_policy};
pub use catalog::{Catalog, DepKind, PartitionedTable, PolicyDep, FunctionInfo, RlsPolicy, TableInfo};
pub use principal::{Principal, PrincipalDetails, PrincipalKind, RequestContext};
pub use functions::is_builtin_function;

/// Parses a datetime the way KQL's `datetime(...)` literal does (ns since the Unix epoch), for
/// request properties such as `query_now`.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let t = text.trim();
    let inner = t.strip_prefix("datetime(").and_then(|r| r.strip_suffix(')')).unwrap_or(t);
    functions::parse_datetime(inner)
}
