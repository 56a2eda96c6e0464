//! The runtime's catalog: a snapshot of the cluster's state (metadata and extent data) and
//! the view of it a request binds against ([`SnapshotCatalog`]), which refuses every lookup
//! its caller may not make (authorize before resolve).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use kustodian_parser::ast;
use kustodian_planner::{Catalog, FunctionInfo, KqlSchema, PartitionedTable, TableInfo};

use crate::auth::{self, Action, Caller};
use crate::error::{Result, RuntimeError};
use crate::extents::{ExtentFiles, ExtentTable};
use crate::meta::{Meta, RlsMeta};
use crate::storage::ExtentInfo;

/// Table data in memory: extent id → batches.
pub(crate) type ExtentData = HashMap<String, Arc<Vec<RecordBatch>>>;

pub(crate) struct State {
    pub meta: Meta,
    /// Extents held in memory: every extent of a cluster in memory; of a cluster directory,
    /// none (its extents are read from their files or the hot cache, see [`ExtentFiles`]),
    /// except those of a change being committed.
    pub data: ExtentData,
    /// The cluster directory's extent files, for a cluster on disk.
    pub files: Option<Arc<ExtentFiles>>,
    /// Extents whose file could not be read, with the reason: only the tables holding them
    /// fail (naming the table and the extent); every other table answers.
    pub broken: HashMap<String, String>,
    /// The table providers requests on this snapshot read through, built on first use (see
    /// [`SnapshotCatalog::provider`]).
    providers: Mutex<HashMap<ProviderKey, Arc<dyn TableProvider>>>,
}

/// A table or materialized view's provider: database, name, partition count, whether exact.
type ProviderKey = (String, String, usize, bool);

impl State {
    pub(crate) fn new(meta: Meta, data: ExtentData) -> Self {
        State { meta, data, files: None, broken: HashMap::new(), providers: Mutex::default() }
    }

    pub(crate) fn with_files(mut self, files: Option<Arc<ExtentFiles>>) -> Self {
        self.files = files;
        self
    }

    /// The state with its role assignments in canonical form (see `Meta::canonicalize`).
    pub(crate) fn canonical(mut self) -> Self {
        self.meta.canonicalize();
        self
    }

    pub(crate) fn with_broken(mut self, broken: HashMap<String, String>) -> Self {
        self.broken = broken;
        self
    }

    /// Why a table (or view) with these extents cannot be read, if one of them is unreadable.
    pub(crate) fn unreadable(&self, extents: &[ExtentInfo]) -> Option<&str> {
        extents.iter().find_map(|e| self.broken.get(&e.id)).map(String::as_str)
    }
}

/// On whose behalf a catalog answers lookups.
#[derive(Clone, Copy)]
pub(crate) enum Access<'a> {
    /// A request's caller: lookups in a database it may not read are refused, whether or not
    /// the name exists (authorize before resolve).
    Caller(&'a Caller),
    /// The cluster itself: materializing a view over its source, nothing a caller sees.
    System,
}

/// A read-only view of one state snapshot, implementing the planner's catalog.
/// Which tables a request sees without their row-level security policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Unpoliced {
    /// Every policy applies (every request but the two below).
    #[default]
    None,
    /// No policy applies: the baseline of an overhead measurement.
    All,
    /// The policy of this table (database, table) does not apply: what the table is inside its
    /// own policy, for probing that policy's branches (`kustodian test --coverage`).
    Table(String, String),
}

impl Unpoliced {
    fn covers(&self, database: &str, table: &str) -> bool {
        match self {
            Unpoliced::None => false,
            Unpoliced::All => true,
            Unpoliced::Table(d, t) => d == database && t == table,
        }
    }
}

pub(crate) struct SnapshotCatalog<'a> {
    pub state: &'a State,
    pub access: Access<'a>,
    /// The table whose policy is being validated: its Table Admin may bind the policy over it
    /// even where restricted view access keeps its rows from that admin (nothing is read).
    pub validating: Option<(&'a str, &'a str)>,
    /// Partitions of the in-memory table providers: at most this many, fewer for small tables
    /// unless `exact_partitions`.
    pub partitions: usize,
    pub exact_partitions: bool,
    /// Tables presented without their row-level security policies: only for the unfiltered
    /// baseline of an overhead measurement or a coverage probe of a policy, after the one who
    /// asks was checked to be an admin of every table whose policy is left out.
    pub without_rls: Unpoliced,
    /// Present only this fraction of each table's rows (its first rows), for measuring how a
    /// query scales with data size. 1.0 = all.
    pub fraction: f64,
    /// Runs the probes a caller's query needs while it is planned (see [`Catalog::probe`]);
    /// none where the binding is not a caller's query over the tables as they are.
    pub prober: Option<&'a dyn Prober>,
}

/// Runs a probe of a caller's query: authorized and executed as a query of that caller.
pub(crate) trait Prober: Sync {
    fn run_probe(
        &self,
        state: &State,
        caller: &Caller,
        planned: &kustodian_planner::PlannedQuery,
    ) -> kustodian_planner::Result<Vec<RecordBatch>>;
}

impl<'a> SnapshotCatalog<'a> {
    pub fn new(state: &'a State, access: Access<'a>, partitions: usize) -> Self {
        SnapshotCatalog {
            state,
            access,
            validating: None,
            partitions,
            exact_partitions: false,
            without_rls: Unpoliced::None,
            fraction: 1.0,
            prober: None,
        }
    }

    /// The provider of table (or materialized view) `name` of `database`. A snapshot's data never
    /// changes, so the provider of all its rows is built once per snapshot and shared by every
    /// request on it (its arrow schema, the partitioning of its batches); only a fraction of the
    /// rows (`overhead --sizes`) builds its own.
    fn provider(&self, database: &str, name: &str, schema: &KqlSchema, extents: &[ExtentInfo]) -> Option<Arc<dyn TableProvider>> {
        if self.fraction < 1.0 {
            return self.build_provider(schema, extents);
        }
        if let Some(files) = &self.state.files {
            // A table on disk: its provider reads the files, the cache and the data in memory
            // as each scan finds them; built per request (cheap: no data is touched).
            let what = format!("table '{name}' in database '{database}'");
            let memory = extents.iter().filter_map(|e| self.state.data.get(&e.id).map(|d| (e.id.clone(), Arc::clone(d)))).collect();
            let hot = self.state.meta.effective_policies(database, name).caching_hot;
            let hot_since = hot.map(|h| chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().saturating_sub(h));
            let rows: u64 = extents.iter().map(|e| e.rows).sum();
            let n = if self.exact_partitions { self.partitions } else { self.partitions.min(rows as usize / MIN_ROWS_PER_PARTITION).max(1) };
            let table = ExtentTable::new(schema.arrow_schema(), what, extents.to_vec(), memory, Some(Arc::clone(files)), hot_since, n);
            return Some(Arc::new(PartitionedTable::new(Arc::new(table), n)));
        }
        let key = (database.to_string(), name.to_string(), self.partitions, self.exact_partitions);
        if let Ok(cached) = self.state.providers.lock()
            && let Some(p) = cached.get(&key)
        {
            return Some(Arc::clone(p));
        }
        let built = self.build_provider(schema, extents)?;
        if let Ok(mut cached) = self.state.providers.lock() {
            cached.insert(key, Arc::clone(&built));
        }
        Some(built)
    }

    fn build_provider(&self, schema: &KqlSchema, extents: &[ExtentInfo]) -> Option<Arc<dyn TableProvider>> {
        let schema = schema.arrow_schema();
        let mut batches: Vec<RecordBatch> = Vec::new();
        for e in extents {
            if let Some(b) = self.state.data.get(&e.id) {
                batches.extend(b.iter().cloned());
            } else if let Some(files) = &self.state.files {
                // A fraction of a table on disk (`overhead --sizes`): read into memory.
                let read = files.cache.get(&e.id).map(|b| b.to_vec()).map_or_else(|| files.read(e), Ok).ok()?;
                for b in read {
                    batches.push(crate::output::conform_batch(b, &schema).ok()?);
                }
            }
        }
        if self.fraction < 1.0 {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            let mut keep = (total as f64 * self.fraction.max(0.0)).round() as usize;
            let mut kept = Vec::new();
            for b in batches {
                if keep == 0 {
                    break;
                }
                let n = b.num_rows().min(keep);
                kept.push(b.slice(0, n));
                keep -= n;
            }
            batches = kept;
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let n = if self.exact_partitions { self.partitions } else { self.partitions.min(rows / MIN_ROWS_PER_PARTITION).max(1) };
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n.max(1)];
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % n.max(1)].push(b);
        }
        MemTable::try_new(schema, parts).ok().map(|m| Arc::new(m) as Arc<dyn TableProvider>)
    }
}

pub(crate) use crate::extents::MIN_ROWS_PER_PARTITION;

impl SnapshotCatalog<'_> {
    /// Refuses a caller without the right to look names up in `database` (Forbidden, the same
    /// for a database that does not exist).
    fn may_look_up(&self, database: &str) -> kustodian_planner::Result<()> {
        let Access::Caller(caller) = self.access else { return Ok(()) };
        let meta = &self.state.meta;
        let db = meta.db(database).map(|d| d.name.as_str()).unwrap_or(database);
        auth::authorize(meta, caller, &Action::ReadDatabase(db), &format!("read database '{db}'")).map_err(forbidden_plan)
    }

    /// Refuses a caller who may not read this table (restricted view access, or no role).
    fn may_read(&self, database: &str, table: &str) -> kustodian_planner::Result<()> {
        let Access::Caller(caller) = self.access else { return Ok(()) };
        if let Some((d, t)) = self.validating
            && d.eq_ignore_ascii_case(database)
            && t == table
            && auth::allows(&self.state.meta, caller, &Action::AdminTable(database, table))
        {
            return Ok(());
        }
        auth::authorize(&self.state.meta, caller, &Action::ReadTable(database, table), &format!("read table '{table}' in database '{database}'"))
            .map_err(forbidden_plan)
    }
}

fn forbidden_plan(e: RuntimeError) -> kustodian_planner::PlanError {
    kustodian_planner::PlanError::Forbidden { message: e.to_string() }
}

impl Catalog for SnapshotCatalog<'_> {
    fn database(&self, name: &str) -> kustodian_planner::Result<Option<String>> {
        self.may_look_up(name)?;
        Ok(self.state.meta.db(name).map(|d| d.name.clone()))
    }

    fn table(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<TableInfo>> {
        // A Table Admin without a database role may read its own table and nothing else.
        if let Access::Caller(caller) = self.access
            && !auth::allows(&self.state.meta, caller, &Action::ReadDatabase(database))
        {
            self.may_read(database, name)?;
        } else {
            self.may_look_up(database)?;
        }
        let Some(db) = self.state.meta.db(database) else { return Ok(None) };
        let Some(t) = db.table(name) else {
            // A materialized view: read like a table, through the same choke point.
            let Some(mv) = db.materialized_view(name) else { return Ok(None) };
            if let Some(why) = self.state.unreadable(&mv.extents) {
                return Err(kustodian_planner::PlanError::Internal(format!(
                    "materialized view '{}' in database '{}' cannot be read: {why}",
                    mv.name, db.name
                )));
            }
            let Some(provider) = self.provider(&db.name, &mv.name, &mv.schema, &mv.extents) else { return Ok(None) };
            return Ok(Some(TableInfo {
                database: db.name.clone(),
                name: mv.name.clone(),
                schema: mv.schema.clone(),
                provider,
                rls: if self.without_rls.covers(&db.name, &mv.name) {
                    None
                } else {
                    mv.rls.as_ref().map(RlsMeta::policy)
                },
                restricted_view_access: false,
                materialized_view: true,
            }));
        };
        self.may_read(&db.name, &t.name)?;
        if let Some(why) = self.state.unreadable(&t.extents) {
            return Err(kustodian_planner::PlanError::Internal(format!("table '{}' in database '{}' cannot be read: {why}", t.name, db.name)));
        }
        let Some(provider) = self.provider(&db.name, &t.name, &t.schema, &t.extents) else { return Ok(None) };
        Ok(Some(TableInfo {
            database: db.name.clone(),
            name: t.name.clone(),
            schema: t.schema.clone(),
            provider,
            rls: if self.without_rls.covers(&db.name, &t.name) {
                None
            } else {
                t.rls.as_ref().map(RlsMeta::policy)
            },
            restricted_view_access: t.restricted_view_access,
            materialized_view: false,
        }))
    }

    fn function(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<FunctionInfo>> {
        self.may_look_up(database)?;
        let Some(db) = self.state.meta.db(database) else { return Ok(None) };
        let Some(f) = db.function(name) else { return Ok(None) };
        let Ok((params, body)) = parse_function(&f.name, &f.parameters, &f.body) else { return Ok(None) };
        Ok(Some(FunctionInfo { database: db.name.clone(), name: f.name.clone(), params, body, version: f.version() }))
    }

    fn table_names(&self, database: &str) -> kustodian_planner::Result<Vec<String>> {
        self.may_look_up(database)?;
        Ok(self.state.meta.db(database).map(|d| d.tables.iter().map(|t| t.name.clone()).collect()).unwrap_or_default())
    }

    fn probe(&self, planned: &kustodian_planner::PlannedQuery) -> kustodian_planner::Result<Vec<RecordBatch>> {
        // Only a caller's query over the tables as they are (not a policy being validated, a
        // materialized view, a measurement's unpoliced baseline or a fraction of the rows).
        match (self.prober, &self.access) {
            (Some(p), Access::Caller(caller)) if self.validating.is_none() && self.without_rls == Unpoliced::None && self.fraction >= 1.0 => {
                p.run_probe(self.state, caller, planned)
            }
            _ => Err(kustodian_planner::PlanError::unsupported(
                "running a query while planning (evaluate bag_unpack or pivot without an output schema, here)",
            )),
        }
    }
}

/// Re-parses a stored function's definition.
pub(crate) fn parse_function(name: &str, params: &str, body: &str) -> Result<(Vec<ast::Param>, Vec<ast::Statement>)> {
    let text = format!(".create function {} {params} {body}", ast::quote_ident(name));
    match kustodian_parser::parse(&text) {
        Ok(ast::Request::Command(ast::Command { kind: ast::CommandKind::CreateFunction { params, body, .. }, .. })) => {
            Ok((params, body))
        }
        Ok(_) => Err(RuntimeError::Internal(format!("stored function '{name}' did not parse as a function"))),
        Err(e) => Err(RuntimeError::Internal(format!("stored function '{name}' no longer parses: {e}"))),
    }
}
