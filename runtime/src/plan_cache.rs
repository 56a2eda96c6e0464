//! The plan cache: a query request that repeats one already planned against the same state
//! snapshot reuses its verified, optimized logical plan and skips parsing, binding (row-level
//! security substitution and authorization included) and DataFusion's analyzer and logical
//! optimizer. Only physical planning and the physical barrier check run again: physical plans
//! hold per-execution state (scalar subquery results, dynamic filters) and are never shared.
//!
//! What a plan depends on is all in its key, so a reused plan is the plan the request would
//! have got:
//! - the request text, its database, and every request property;
//! - the caller: principal and group claims (`current_principal()`, membership checks, the
//!   policies' answers and every authorization decision depend on them);
//! - the state snapshot (metadata, roles, policies, functions and data): the cache belongs to
//!   one snapshot and empties when a command commits another. It holds a `Weak` to it, which
//!   keeps the snapshot's address from being reused while the entries exist.
//!
//! Not cached: plans that read the request's clock (`now()`, `ago()` anywhere, policies
//! included, unless the query fixed `query_now`), `validatepermissions` requests, and failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use kustodian_planner::{AppliedPolicy, KqlSchema, Principal, RequestContext, TableAccess};

use crate::catalog::State;

/// Entries kept per snapshot; past it the cache starts over (a workload of this many distinct
/// queries between two commands gains little from it).
const CAPACITY: usize = 1024;

/// Everything a query's plan depends on besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    text: String,
    database: String,
    /// FQNs exactly as given (`current_principal()` returns the caller's as given).
    principal: String,
    groups: Vec<String>,
    properties: Vec<(String, String)>,
    force_rls: bool,
    block_rls: bool,
    /// The rest of the identity a plan may hold as constants (`current_principal_details()`,
    /// `current_principal_is_member_of` through aliases) and the query parameters' values.
    aliases: Vec<String>,
    details: kustodian_planner::PrincipalDetails,
    parameters: Vec<(String, String)>,
}

impl PlanKey {
    pub(crate) fn new(text: &str, ctx: &RequestContext, properties: &[(String, String)]) -> Self {
        PlanKey {
            text: text.to_string(),
            database: ctx.database.clone(),
            principal: ctx.principal.fqn(),
            groups: ctx.groups.iter().map(Principal::fqn).collect(),
            properties: properties.to_vec(),
            force_rls: ctx.force_rls,
            block_rls: ctx.block_rls,
            aliases: ctx.aliases.iter().map(Principal::fqn).collect(),
            details: ctx.details.clone(),
            parameters: ctx.parameters.clone(),
        }
    }
}

/// A query planned, authorized, optimized and verified (barriers in place).
#[derive(Debug)]
pub(crate) struct OptimizedQuery {
    pub optimized: kustodian_planner::pipeline::Optimized,
    pub schema: KqlSchema,
    pub policies: Vec<AppliedPolicy>,
    pub tables: Vec<TableAccess>,
}

#[derive(Default)]
struct Inner {
    snapshot: Weak<State>,
    entries: HashMap<PlanKey, Arc<OptimizedQuery>>,
    hits: u64,
    misses: u64,
}

/// The cache of one cluster (see the module documentation).
pub(crate) struct PlanCache {
    enabled: bool,
    inner: Mutex<Inner>,
}

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache::new(true)
    }
}

impl PlanCache {
    pub(crate) fn new(enabled: bool) -> Self {
        PlanCache { enabled, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The plan of `key` made against `snapshot`, if there is one.
    pub(crate) fn get(&self, snapshot: &Arc<State>, key: &PlanKey) -> Option<Arc<OptimizedQuery>> {
        if !self.enabled {
            return None;
        }
        let mut inner = self.lock();
        if !std::ptr::eq(inner.snapshot.as_ptr(), Arc::as_ptr(snapshot)) {
            inner.misses += 1;
            return None;
        }
        let hit = inner.entries.get(key).cloned();
        if hit.is_some() {
            inner.hits += 1;
        } else {
            inner.misses += 1;
        }
        hit
    }

    /// Keeps the plan of `key` made against `snapshot`; entries of any other snapshot go.
    pub(crate) fn insert(&self, snapshot: &Arc<State>, key: PlanKey, plan: Arc<OptimizedQuery>) {
        if !self.enabled {
            return;
        }
        let mut inner = self.lock();
        if !std::ptr::eq(inner.snapshot.as_ptr(), Arc::as_ptr(snapshot)) {
            inner.entries.clear();
            inner.snapshot = Arc::downgrade(snapshot);
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key, plan);
    }

    /// Drops every entry (a command committed a new snapshot: the old plans hold its data).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.snapshot = Weak::new();
    }

    /// (hits, misses) since the cluster started.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.hits, inner.misses)
    }
}
