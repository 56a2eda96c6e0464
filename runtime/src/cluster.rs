//! The cluster: databases, tables, functions, policies and principals, and request execution.
//!
//! State changes are transactional: a command works on a copy of the metadata, writes any new
//! extents, commits the metadata atomically (when the cluster has a directory) and only then
//! swaps the copy in. A failed command leaves the cluster as it was.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, displayable, execute_stream};
use datafusion::execution::{SessionState, TaskContext};
use datafusion::prelude::SessionConfig;
use kustodian_parser::ast;
use kustodian_planner::{
    AppliedPolicy, Catalog, FunctionInfo, KqlSchema, PlannedQuery, TableAccess, Principal, RequestContext, TableInfo, plan_pipe,
    plan_query,
};

use crate::auth::{self, Action, Caller, RoleAssignment, check};
pub use crate::meta::{DatabaseMeta, FunctionMeta, Meta, RlsMeta, TableMeta};
use crate::commands;
use crate::error::{Result, RuntimeError};
use crate::output::{QueryOutput, QueryStream};
use crate::plan_cache::{OptimizedQuery, PlanCache, PlanKey};
use crate::storage::{ExtentInfo, MetadataStamp, Storage, WriterLock};

/// Who is making a request: a principal FQN plus its group claims (`--as`, `--group`).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub principal: String,
    pub groups: Vec<String>,
}

/// Per-request options: database in scope, identity (None = the cluster's first admin),
/// request properties (`--set name[=value]`).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    pub database: Option<String>,
    pub identity: Option<Identity>,
    pub properties: Vec<(String, String)>,
}

/// A query planned down to its physical plan ([`Cluster::prepare`]), ready to run.
pub struct Prepared {
    task: Arc<TaskContext>,
    physical: Arc<dyn ExecutionPlan>,
    /// The KQL schema of the result.
    pub schema: KqlSchema,
    /// The row-level security policies substituted into the query.
    pub policies: Vec<AppliedPolicy>,
    /// Every table the query reads, including through functions and policies.
    pub tables: Vec<TableAccess>,
    /// Whether the plan was lowered directly, without DataFusion's optimizers and planner
    /// (`kustodian_planner::direct`).
    pub lowered_directly: bool,
}

/// How a request sees the tables (see [`SnapshotCatalog`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub without_rls: bool,
    pub fraction: f64,
}

impl Default for View {
    fn default() -> Self {
        View { without_rls: false, fraction: 1.0 }
    }
}

/// What `kustodian explain` prints.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The effective KQL with policies substituted, printed from the AST.
    pub effective_kql: String,
    /// Policies applied, one line each.
    pub policies: Vec<String>,
    /// The optimized logical plan, or the bound plan when it was lowered directly.
    pub logical_plan: String,
    pub physical_plan: String,
    /// Whether the bound plan was lowered directly, without DataFusion's optimizers and
    /// physical planner (`kustodian_planner::direct`).
    pub lowered_directly: bool,
}

/// Table data in memory: extent id → batches.
pub(crate) type ExtentData = HashMap<String, Arc<Vec<RecordBatch>>>;

pub(crate) struct State {
    pub meta: Meta,
    pub data: ExtentData,
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
        State { meta, data, broken: HashMap::new(), providers: Mutex::default() }
    }

    fn with_broken(mut self, broken: HashMap<String, String>) -> Self {
        self.broken = broken;
        self
    }

    /// Why a table (or view) with these extents cannot be read, if one of them is unreadable.
    fn unreadable(&self, extents: &[ExtentInfo]) -> Option<&str> {
        extents.iter().find_map(|e| self.broken.get(&e.id)).map(String::as_str)
    }
}

pub struct Cluster {
    pub(crate) state: RwLock<Arc<State>>,
    pub(crate) storage: Option<Storage>,
    /// The first admin: requests without an identity run as this principal.
    pub(crate) admin: Principal,
    pub(crate) partitions: usize,
    /// Split every table into exactly `partitions` (tests, [`Cluster::with_partitions`]) rather
    /// than only tables large enough to gain from it (see [`MIN_ROWS_PER_PARTITION`]).
    pub(crate) exact_partitions: bool,
    /// Session states requests plan with, built once each (registering DataFusion's functions
    /// and rules costs about a millisecond, and even cloning one costs a tenth of planning a
    /// typical query): see [`Cluster::session`].
    sessions: Sessions,
    /// Optimized plans of repeated query requests, for the current snapshot.
    plans: PlanCache,
    /// Lower small plans directly (`kustodian_planner::direct`); on by default.
    direct: bool,
    /// Serialises this process's writers (the directory's writer lock serialises processes).
    writer: tokio::sync::Mutex<()>,
    /// The committed metadata file this process last loaded (see [`Cluster::refresh`]).
    stamp: Mutex<Option<MetadataStamp>>,
    /// Where `.ingest` may read local files: nowhere unless configured
    /// ([`Cluster::with_ingestion_roots`]; the CLI configures its working directory).
    pub(crate) ingestion_roots: crate::ingest::IngestionRoots,
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
    /// Present tables without their row-level security policies: only for the unfiltered
    /// baseline of an overhead measurement, after its caller was checked to be an admin of
    /// every table whose policy is left out.
    pub without_rls: bool,
    /// Present only this fraction of each table's rows (its first rows), for measuring how a
    /// query scales with data size. 1.0 = all.
    pub fraction: f64,
}

impl<'a> SnapshotCatalog<'a> {
    pub fn new(state: &'a State, access: Access<'a>, partitions: usize) -> Self {
        SnapshotCatalog { state, access, validating: None, partitions, exact_partitions: false, without_rls: false, fraction: 1.0 }
    }

    /// The provider of table (or materialized view) `name` of `database`. A snapshot's data never
    /// changes, so the provider of all its rows is built once per snapshot and shared by every
    /// request on it (its arrow schema, the partitioning of its batches); only a fraction of the
    /// rows (`overhead --sizes`) builds its own.
    fn provider(&self, database: &str, name: &str, schema: &KqlSchema, extents: &[ExtentInfo]) -> Option<Arc<dyn TableProvider>> {
        if self.fraction < 1.0 {
            return self.build_provider(schema, extents);
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

/// Tables with fewer rows than this per partition are not split further: a small table gains
/// nothing from running on several cores, and one partition plans with no repartitioning and
/// no two-phase aggregation (a third of the planning time of a small query).
pub(crate) const MIN_ROWS_PER_PARTITION: usize = 64 * 1024;

/// The most partitions any table scan of a plan has (1 when it reads no table): the target
/// partition count to plan it with.
fn input_partitions(plan: &LogicalPlan) -> usize {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut n = 1;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
        {
            // A policy's own scan reads its table through the protected marker.
            let provider = match provider.downcast_ref::<kustodian_planner::security::protected::ProtectedTable>() {
                Some(p) => Arc::clone(p.inner()),
                None => provider,
            };
            n = n.max(provider.downcast_ref::<MemTable>().map_or(1, |m| m.batches.len()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

/// Sessions by kind: `[(partitions > 1) as usize]`.
#[derive(Default)]
struct Sessions([std::sync::OnceLock<(SessionState, Arc<TaskContext>)>; 2]);

pub(crate) fn num_partitions() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

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
                rls: if self.without_rls {
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
            rls: if self.without_rls {
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
}

/// A change in progress ([`Cluster::begin_write`]): this process's writer mutex and the
/// directory's writer lock.
pub(crate) struct WriteGuard<'a> {
    _mem: tokio::sync::MutexGuard<'a, ()>,
    _file: Option<WriterLock>,
}

/// The committed metadata and the data of its extents (reusing those already in `loaded`),
/// with the extents that could not be read. A commit of another process may drop an extent
/// between reading the metadata and its files: then it starts again on the newer metadata.
fn load_committed(storage: &Storage, loaded: &ExtentData) -> Result<Committed> {
    let mut attempt = 0;
    loop {
        let stamp = storage.metadata_stamp();
        let meta: Meta = storage
            .load_metadata()?
            .ok_or_else(|| RuntimeError::bad_request(format!("{} holds no cluster metadata", storage.dir().display())))?;
        let mut data = HashMap::new();
        let mut broken = HashMap::new();
        let mut missing = false;
        for e in meta.extents() {
            if let Some(d) = loaded.get(&e.id) {
                data.insert(e.id.clone(), Arc::clone(d));
                continue;
            }
            match storage.read_extent(e) {
                Ok(batches) => {
                    data.insert(e.id.clone(), Arc::new(batches));
                }
                Err(RuntimeError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                    missing = true;
                    broken.insert(e.id.clone(), format!("extent '{}' ('{}' in the cluster directory) is missing", e.id, e.file));
                }
                Err(err) => {
                    broken.insert(e.id.clone(), err.to_string());
                }
            }
        }
        if missing && attempt < 20 && storage.metadata_stamp() != stamp {
            attempt += 1;
            continue;
        }
        return Ok(Committed { meta, data, broken, stamp });
    }
}

struct Committed {
    meta: Meta,
    data: ExtentData,
    broken: HashMap<String, String>,
    stamp: Option<MetadataStamp>,
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

/// Casts batches to a table's Arrow schema (types and field metadata), by position; drops
/// empty batches.
pub(crate) fn conform(batches: Vec<RecordBatch>, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    batches.into_iter().filter(|b| b.num_rows() > 0).map(|b| conform_batch(b, schema)).collect()
}

/// Casts one batch to a table's Arrow schema (types and field metadata), by position.
pub(crate) fn conform_batch(b: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if b.num_columns() != schema.fields().len() {
        return Err(RuntimeError::bad_request(format!(
            "the data has {} columns but the table has {}",
            b.num_columns(),
            schema.fields().len()
        )));
    }
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) })
        .collect::<std::result::Result<_, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

impl Cluster {
    fn from_parts(state: State, storage: Option<Storage>, admin: Principal) -> Cluster {
        Cluster {
            state: RwLock::new(Arc::new(state)),
            storage,
            admin,
            partitions: num_partitions(),
            exact_partitions: false,
            sessions: Sessions::default(),
            plans: PlanCache::default(),
            direct: true,
            ingestion_roots: crate::ingest::IngestionRoots::default(),
            writer: tokio::sync::Mutex::new(()),
            stamp: Mutex::new(None),
        }
    }

    /// Creates a new empty cluster directory whose first admin (AllDatabasesAdmin) is `admin`.
    pub fn init(dir: &Path, admin: &str) -> Result<Cluster> {
        let admin = Principal::parse(admin).map_err(RuntimeError::bad_request)?;
        let storage = Storage::create(dir)?;
        let meta = Meta {
            cluster_roles: vec![RoleAssignment {
                role: "alldatabasesadmins".into(),
                principal: admin.fqn(),
                notes: "first admin (kustodian init)".into(),
            }],
            databases: Vec::new(),
            version: 0,
        };
        storage.commit_metadata(&meta)?;
        Ok(Cluster::from_parts(State::new(meta, HashMap::new()), Some(storage), admin))
    }

    /// Opens an existing cluster directory. Reads only: leftovers of a crashed writer are
    /// removed only when the writer lock is free and the directory writable.
    pub fn open(dir: &Path) -> Result<Cluster> {
        let storage = Storage::open(dir)?;
        let Committed { meta, data, broken, stamp } = load_committed(&storage, &HashMap::new())?;
        if let Some(lock) = storage.try_lock_writer() {
            let live = meta.extents().map(|e| e.id.clone()).collect();
            // Best effort: a directory we may lock but not clean is still readable.
            let _ = storage.garbage_collect(&live, &lock);
        }
        let admin = meta
            .cluster_roles
            .iter()
            .find(|r| r.role == "alldatabasesadmins")
            .and_then(|r| r.principal())
            .ok_or_else(|| RuntimeError::Internal("the cluster has no AllDatabasesAdmin".into()))?;
        let cluster = Cluster::from_parts(State::new(meta, data).with_broken(broken), Some(storage), admin);
        cluster.set_stamp(stamp);
        Ok(cluster)
    }

    /// An in-memory cluster holding the bundled sample database.
    pub async fn sample() -> Result<Cluster> {
        let cluster = Cluster::in_memory(crate::sample::SAMPLE_ADMIN, "built-in admin of the in-memory sample")?;
        crate::sample::load(&cluster).await?;
        Ok(cluster)
    }

    /// A new empty in-memory cluster (nothing is persisted) whose first admin is `admin`.
    pub fn in_memory(admin: &str, notes: &str) -> Result<Cluster> {
        let admin = Principal::parse(admin).map_err(RuntimeError::bad_request)?;
        let meta = Meta {
            cluster_roles: vec![RoleAssignment {
                role: "alldatabasesadmins".into(),
                principal: admin.fqn(),
                notes: notes.into(),
            }],
            databases: Vec::new(),
            version: 0,
        };
        Ok(Cluster::from_parts(State::new(meta, HashMap::new()), None, admin))
    }

    /// The database requests run in when none is named (the only or the first database).
    pub fn default_database(&self) -> Option<String> {
        self.snapshot().meta.databases.first().map(|d| d.name.clone())
    }

    /// Sets the number of partitions tables are split into and queries run with (default:
    /// the machine's cores). Tests use it to run the same query on one and several partitions.
    pub fn with_partitions(mut self, n: usize) -> Cluster {
        self.partitions = n.max(1);
        self.exact_partitions = true;
        // The cached session states were built for the old partition count.
        self.sessions = Sessions::default();
        self
    }

    /// Turns the plan cache on (the default) or off: with it off every request is parsed,
    /// bound and optimized (benchmarks of planning use it).
    pub fn with_plan_cache(mut self, enabled: bool) -> Cluster {
        self.plans = PlanCache::new(enabled);
        self
    }

    /// Turns direct lowering of small plans on (the default) or off: with it off, every plan
    /// goes through DataFusion's optimizers and physical planner (tests compare the two).
    /// Lets `.ingest` read local files below these directories (and never in the cluster
    /// directory). Without it, local ingestion is refused.
    pub fn with_ingestion_roots(mut self, dirs: &[std::path::PathBuf]) -> Result<Cluster> {
        self.ingestion_roots = crate::ingest::IngestionRoots::new(dirs)?;
        Ok(self)
    }

    pub fn with_direct_lowering(mut self, enabled: bool) -> Cluster {
        self.direct = enabled;
        self
    }

    /// The plan cache's hits and misses since the cluster started.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.plans.stats()
    }

    /// A catalog over a snapshot, with this cluster's partitioning.
    pub(crate) fn catalog<'s>(&self, snap: &'s State, access: Access<'s>) -> SnapshotCatalog<'s> {
        SnapshotCatalog { exact_partitions: self.exact_partitions, ..SnapshotCatalog::new(snap, access, self.partitions) }
    }

    /// The principal requests run as when no identity is given.
    pub fn admin(&self) -> String {
        self.admin.fqn()
    }

    pub(crate) fn snapshot(&self) -> Arc<State> {
        match self.state.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn set_stamp(&self, stamp: Option<MetadataStamp>) {
        *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
    }

    /// Catches up with commits of other processes: a cheap look at the metadata file, and a
    /// reload when it changed. Every request starts with it, so a long-lived process (a shell,
    /// a server) answers over the latest committed state.
    pub(crate) fn refresh(&self) -> Result<()> {
        let Some(storage) = &self.storage else { return Ok(()) };
        let stamp = storage.metadata_stamp();
        if stamp.is_some() && stamp == *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Ok(());
        }
        let current = self.snapshot();
        let Committed { meta, data, broken, stamp } = load_committed(storage, &current.data)?;
        let mut guard = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if meta.version != guard.meta.version || broken != guard.broken {
            *guard = Arc::new(State::new(meta, data).with_broken(broken));
            self.plans.clear();
        }
        drop(guard);
        self.set_stamp(stamp);
        Ok(())
    }

    /// Starts a change: waits for this process's other writers and then for the directory's
    /// writer lock, and reloads the committed state, so the change is made over the latest
    /// commit. Held until the command has committed.
    pub(crate) async fn begin_write(&self) -> Result<WriteGuard<'_>> {
        let mem = self.writer.lock().await;
        let file = match &self.storage {
            Some(s) => {
                let s = s.clone();
                let lock = tokio::task::spawn_blocking(move || s.lock_writer())
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("the writer lock task failed: {e}")))??;
                // Under the lock, compare versions rather than trust the file's stamp.
                self.set_stamp(None);
                self.refresh()?;
                Some(lock)
            }
            None => None,
        };
        Ok(WriteGuard { _mem: mem, _file: file })
    }

    /// Applies a metadata change and new extents atomically. Only under [`Cluster::begin_write`]:
    /// the change must be made over the committed version it read, or it is refused.
    pub(crate) fn commit(&self, mut meta: Meta, new_data: ExtentData) -> Result<()> {
        if self.writer.try_lock().is_ok() {
            return Err(RuntimeError::Internal("a commit outside of a write (Cluster::begin_write)".into()));
        }
        let mut guard = match self.state.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(s) = &self.storage {
            let on_disk = s.load_metadata::<Meta>()?.map(|m| m.version).unwrap_or_default();
            if on_disk != meta.version || guard.meta.version != meta.version {
                return Err(RuntimeError::Conflict(format!(
                    "the cluster changed while the command ran (version {} became {on_disk}); nothing was changed, run it again",
                    meta.version
                )));
            }
        }
        meta.version += 1;
        let live: std::collections::HashSet<String> = meta.extents().map(|e| e.id.clone()).collect();
        let dropped: Vec<ExtentInfo> = guard.meta.extents().filter(|e| !live.contains(&e.id)).cloned().collect();
        if let Some(s) = &self.storage {
            s.commit_metadata(&meta)?;
            self.set_stamp(s.metadata_stamp());
            // The files of dropped extents go now, under the writer lock (a reader loading the
            // previous version retries on the newer one).
            s.remove_extents(&dropped)?;
        }
        let mut data = guard.data.clone();
        data.extend(new_data);
        data.retain(|k, _| live.contains(k));
        let mut broken = guard.broken.clone();
        broken.retain(|k, _| live.contains(k));
        *guard = Arc::new(State::new(meta, data).with_broken(broken));
        // Cached plans belong to the old snapshot (and hold its data): drop them now rather
        // than at the next query.
        self.plans.clear();
        Ok(())
    }

    /// Writes batches as a new extent (a file when persistent) and returns its info and data.
    pub(crate) fn new_extent(&self, batches: Vec<RecordBatch>, schema: &SchemaRef) -> Result<Option<(ExtentInfo, Arc<Vec<RecordBatch>>)>> {
        let batches = conform(batches, schema)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if rows == 0 {
            return Ok(None);
        }
        let info = match &self.storage {
            Some(s) => s.write_extent(&batches, schema)?,
            None => ExtentInfo { id: new_id(), file: String::new(), rows, bytes: 0 },
        };
        Ok(Some((info, Arc::new(batches))))
    }

    /// The caller of a request and its request context.
    pub(crate) fn request_context(&self, opts: &RequestOptions, database: &str) -> Result<(Caller, RequestContext)> {
        let (principal, groups) = match &opts.identity {
            Some(id) => {
                let p = Principal::parse(&id.principal).map_err(RuntimeError::bad_request)?;
                let mut gs = Vec::new();
                for g in &id.groups {
                    // A bare group name is taken as an aadgroup principal.
                    let fqn = if g.contains('=') { g.clone() } else { format!("aadgroup={g}") };
                    gs.push(Principal::parse(&fqn).map_err(RuntimeError::bad_request)?);
                }
                gs.dedup();
                (p, gs)
            }
            None => (self.admin.clone(), Vec::new()),
        };
        let force = property_on(opts, "query_force_row_level_security");
        let block = property_on(opts, "request_block_row_level_security");
        let validate_permissions = property_on(opts, "validatepermissions");
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let query_now = match opts.properties.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case("query_now")) {
            Some((_, v)) => Some(kustodian_planner::parse_datetime(v).ok_or_else(|| {
                RuntimeError::bad_request(format!("request property query_now: '{v}' is not a datetime"))
            })?),
            None => None,
        };
        let caller = Caller::new(principal.clone(), groups.clone())?;
        let ctx = RequestContext {
            principal: principal.clone(),
            groups: groups.clone(),
            database: database.to_string(),
            force_rls: force,
            block_rls: block,
            validate_permissions,
            now_nanos: now,
            query_now,
        };
        Ok((caller, ctx))
    }

    pub(crate) fn database_for(&self, opts: &RequestOptions) -> Result<String> {
        let snap = self.snapshot();
        match &opts.database {
            // A database that does not exist yet is kept as named: `.create database` may be
            // what the request does; queries and other commands check for it.
            Some(d) => Ok(snap.meta.db(d).map(|d| d.name.clone()).unwrap_or_else(|| d.clone())),
            None => Ok(snap.meta.databases.first().map(|d| d.name.clone()).unwrap_or_default()),
        }
    }

    /// Runs one request (a query or a management command).
    pub async fn execute(&self, text: &str, opts: &RequestOptions) -> Result<QueryOutput> {
        self.execute_stream(text, opts).await?.collect().await
    }

    /// Runs a request and returns its result as a stream of batches: a query's rows come out
    /// as the engine produces them (a command's result is complete when it returns).
    pub async fn execute_stream(&self, text: &str, opts: &RequestOptions) -> Result<QueryStream> {
        self.refresh()?;
        let snap = self.snapshot();
        let context = self.resolve(opts);
        // A query this caller already ran against this snapshot: its plan, without parsing.
        let key = context.as_ref().ok().map(|(_, _, ctx)| PlanKey::new(text, ctx, &opts.properties));
        if let Some(hit) = key.as_ref().and_then(|k| self.plans.get(&snap, k)) {
            return self.stream_optimized(&hit).await;
        }
        // A syntax error is reported before a bad identity.
        let request = kustodian_parser::parse(text).map_err(kustodian_planner::PlanError::from)?;
        let (database, caller, ctx) = context?;
        match &request {
            ast::Request::Query(q) => {
                let planned = self.plan_request(&snap, q, text, &database, &caller, &ctx, View::default())?;
                if planned.validate_permissions {
                    // Authorized (planning checked every table it reaches); nothing runs.
                    return Ok(QueryStream::ready(validation_result()?));
                }
                let optimized = self.optimize_and_keep(&snap, key, planned)?;
                self.stream_optimized(&optimized).await
            }
            ast::Request::Command(cmd) => {
                if request_readonly(opts) && !commands::is_read_only(&cmd.kind) {
                    return Err(RuntimeError::bad_request(
                        "request_readonly is set: the request may not run a command that changes the cluster",
                    ));
                }
                let out = if commands::is_read_only(&cmd.kind) {
                    commands::execute(self, &caller, &ctx, cmd, text).await?
                } else {
                    // Over the latest commit of any process, and alone until committed.
                    let _write = self.begin_write().await?;
                    commands::execute(self, &caller, &ctx, cmd, text).await?
                };
                if cmd.pipe.is_empty() {
                    return Ok(QueryStream::ready(out));
                }
                let snap = self.snapshot();
                let provider = MemTable::try_new(out.schema.arrow_schema(), vec![conform(out.batches, &out.schema.arrow_schema())?])?;
                let scan = datafusion::logical_expr::LogicalPlanBuilder::scan(
                    "command_result",
                    datafusion::datasource::provider_as_source(Arc::new(provider)),
                    None,
                )?
                .build()?;
                let catalog = self.catalog(&snap, Access::Caller(&caller));
                let planned = plan_pipe(&catalog, &ctx, scan, out.schema, &cmd.pipe)?;
                self.authorize_tables(&snap, &caller, &planned)?;
                self.stream_plan(&planned).await
            }
        }
    }

    /// Parses, authorizes and binds a query to its DataFusion logical plan (before optimization).
    pub fn bind(&self, text: &str, opts: &RequestOptions) -> Result<PlannedQuery> {
        self.refresh()?;
        // Always binds: the result is the plan before optimization, which the cache does not keep.
        let (q, _, caller, ctx) = self.query_request(text, opts, "only a query can be bound, not a management command")?;
        self.plan(&self.snapshot(), &caller, &ctx, &q, text)
    }

    /// Parses, authorizes and plans a query down to its physical plan, without running it.
    /// A query this caller already prepared or ran against the same snapshot reuses its
    /// optimized plan (see [`crate::plan_cache`]).
    pub async fn prepare(&self, text: &str, opts: &RequestOptions) -> Result<Prepared> {
        self.refresh()?;
        let snap = self.snapshot();
        let context = self.resolve(opts);
        let key = context.as_ref().ok().map(|(_, _, ctx)| PlanKey::new(text, ctx, &opts.properties));
        if let Some(hit) = key.as_ref().and_then(|k| self.plans.get(&snap, k)) {
            return self.prepared(&hit).await;
        }
        let q = parse_query(text, "only a query can be prepared, not a management command")?;
        let (database, caller, ctx) = context?;
        let planned = self.plan_request(&snap, &q, text, &database, &caller, &ctx, View::default())?;
        let optimized = self.optimize_and_keep(&snap, key, planned)?;
        self.prepared(&optimized).await
    }

    /// Prepares a query under a view of the tables, always planning it in full: `overhead`
    /// measures what a request costs, planning the policies included.
    pub(crate) async fn prepare_view(&self, text: &str, opts: &RequestOptions, view: View) -> Result<Prepared> {
        let (q, database, caller, ctx) =
            self.query_request(text, opts, "only a query can be prepared, not a management command")?;
        self.prepare_query(&q, text, &database, &caller, &ctx, view).await
    }

    /// Plans an optimized query physically and starts it.
    async fn stream_optimized(&self, optimized: &OptimizedQuery) -> Result<QueryStream> {
        let (task, physical, _) = self.physical_of(&optimized.optimized, optimized.direct).await?;
        Ok(QueryStream::engine(optimized.schema.clone(), ordered_stream(physical, task)?))
    }

    /// Plans an optimized query physically, ready to run.
    async fn prepared(&self, optimized: &OptimizedQuery) -> Result<Prepared> {
        let (task, physical, lowered_directly) = self.physical_of(&optimized.optimized, optimized.direct).await?;
        Ok(Prepared {
            lowered_directly,
            task,
            physical,
            schema: optimized.schema.clone(),
            policies: optimized.policies.clone(),
            tables: optimized.tables.clone(),
        })
    }

    /// Parses a request that must be a query (`not_query` is the error otherwise) and resolves
    /// its database, caller and request context.
    fn query_request(&self, text: &str, opts: &RequestOptions, not_query: &str) -> Result<(ast::Query, String, Caller, RequestContext)> {
        let q = parse_query(text, not_query)?;
        let (database, caller, ctx) = self.resolve(opts)?;
        Ok((q, database, caller, ctx))
    }

    /// A request's database, caller and request context.
    fn resolve(&self, opts: &RequestOptions) -> Result<(String, Caller, RequestContext)> {
        let database = self.database_for(opts)?;
        let (caller, ctx) = self.request_context(opts, &database)?;
        Ok((database, caller, ctx))
    }

    /// Plans a query of a request against a view of the current snapshot and authorizes it.
    #[allow(clippy::too_many_arguments)]
    fn plan_request(
        &self,
        snap: &State,
        q: &ast::Query,
        text: &str,
        database: &str,
        caller: &Caller,
        ctx: &RequestContext,
        view: View,
    ) -> Result<PlannedQuery> {
        if !database.is_empty() && snap.meta.db(database).is_none() {
            return Err(RuntimeError::bad_request(format!("database '{database}' does not exist")));
        }
        let catalog = SnapshotCatalog { without_rls: view.without_rls, fraction: view.fraction, ..self.catalog(snap, Access::Caller(caller)) };
        self.plan_in(&catalog, caller, ctx, q, text)
    }

    async fn prepare_query(
        &self,
        q: &ast::Query,
        text: &str,
        database: &str,
        caller: &Caller,
        ctx: &RequestContext,
        view: View,
    ) -> Result<Prepared> {
        let planned = self.plan_request(&self.snapshot(), q, text, database, caller, ctx, view)?;
        let (task, _, physical, lowered_directly) = self.physical(&planned).await?;
        Ok(Prepared { task, physical, schema: planned.schema, policies: planned.policies, tables: planned.tables, lowered_directly })
    }

    /// Runs a prepared query to completion.
    pub async fn run_prepared(&self, prepared: &Prepared) -> Result<QueryOutput> {
        let stream = ordered_stream(Arc::clone(&prepared.physical), Arc::clone(&prepared.task))?;
        QueryStream::engine(prepared.schema.clone(), stream).collect().await
    }

    /// Plans a query and authorizes every table it reaches.
    pub(crate) fn plan(&self, snap: &State, caller: &Caller, ctx: &RequestContext, q: &ast::Query, text: &str) -> Result<PlannedQuery> {
        self.plan_in(&self.catalog(snap, Access::Caller(caller)), caller, ctx, q, text)
    }

    /// Plans a query against a catalog view of a snapshot and authorizes every table it reaches.
    pub(crate) fn plan_in(
        &self,
        catalog: &SnapshotCatalog<'_>,
        caller: &Caller,
        ctx: &RequestContext,
        q: &ast::Query,
        text: &str,
    ) -> Result<PlannedQuery> {
        let snap = catalog.state;
        if !ctx.database.is_empty() {
            self.authorize_database_read(snap, caller, &ctx.database)?;
        }
        let planned = plan_query(catalog, ctx, q, text)?;
        self.authorize_tables(snap, caller, &planned)?;
        Ok(planned)
    }

    /// A query needs a role that can read the database (or admin of every table it reads).
    fn authorize_database_read(&self, snap: &State, caller: &Caller, database: &str) -> Result<()> {
        if crate::commands::can_read_database(snap, caller, database) {
            return Ok(());
        }
        // Table admins may query their own tables: checked per table.
        let Some(db) = snap.meta.db(database) else { return Ok(()) };
        if db.tables.iter().any(|t| caller.holds(&t.principals, "admins")) {
            return Ok(());
        }
        check(false, caller, &format!("query database '{}'", db.name), "Database Viewer")
    }

    fn authorize_tables(&self, snap: &State, caller: &Caller, planned: &PlannedQuery) -> Result<()> {
        for t in &planned.tables {
            let Some(db) = snap.meta.db(&t.database) else { continue };
            let table_admin = db.table(&t.table).is_some_and(|tm| caller.holds(&tm.principals, "admins"));
            let readable = crate::commands::can_read_database(snap, caller, &db.name) || table_admin;
            check(readable, caller, &format!("read table '{}' in database '{}'", t.table, db.name), "Database Viewer")?;
            if t.restricted_view_access {
                let unrestricted = caller.holds(&db.principals, "unrestrictedviewers")
                    && crate::commands::can_read_database(snap, caller, &db.name);
                check(
                    unrestricted,
                    caller,
                    &format!("read table '{}' in database '{}', which has restricted view access", t.table, db.name),
                    "Database UnrestrictedViewer (with Database Viewer, User or Admin)",
                )?;
            }
        }
        Ok(())
    }

    /// The session state (and a task context to run its plans with) for a plan: one
    /// partition when every table it reads fits in one. Built once per kind and shared by all
    /// requests, never cloned: the binder fixes `now()` for the request, so nothing per
    /// request lives in the state.
    fn session(&self, partitions: usize) -> &(SessionState, Arc<TaskContext>) {
        let slot = &self.sessions.0[usize::from(partitions > 1)];
        slot.get_or_init(|| {
            // No round-robin repartitioning: tables are already split into partitions, and
            // spreading a single-partition input (`range`, `datatable`, a sorted or serialized
            // result) over several would lose the row order KQL keeps for them.
            let mut config = SessionConfig::new()
                .with_target_partitions(if partitions > 1 { self.partitions.max(1) } else { 1 })
                .with_round_robin_repartition(false)
                .with_information_schema(false);
            // One pass of the logical optimizer: the binder's plans are already simple, and
            // DataFusion's second and third passes cost about a fifth of planning time
            // (benches/stages) for plans that came out the same. Under a security barrier a
            // user's total predicate reaches the barrier and moves inside it in that pass (the
            // barrier rule runs after PushDownFilter); `physical` then sinks it into the
            // policy's plan with PushDownFilter alone.
            config.options_mut().optimizer.max_passes = 1;
            let state = kustodian_planner::session::session_state(config);
            let task = Arc::new(TaskContext::from(&state));
            (state, task)
        })
    }

    /// Verifies (barriers in place) a query's logical plan and returns the plan to plan
    /// physically, and whether it is lowered directly: a plan over single-partition tables, of
    /// the shapes `kustodian_planner::direct` lowers, skips DataFusion's optimizers and physical
    /// planner (they cost far more than such queries take to run); any other plan is optimized
    /// and verified again.
    fn optimize(&self, planned: &PlannedQuery) -> Result<(LogicalPlan, bool)> {
        let partitions = input_partitions(&planned.plan);
        let (state, _) = self.session(partitions);
        kustodian_planner::security::verify::verify_logical(&planned.plan, &planned.protected)?;
        // The logical optimizer's rules (one pass, each only where it applies: see
        // `kustodian_planner::optimize`) without DataFusion's analyzer: the binder types every
        // expression and builds unions with their coerced schema, so type coercion (a tenth of
        // planning time) would rebuild the plan unchanged. Debug builds check that it would.
        #[cfg(debug_assertions)]
        {
            let analyzed = state.analyzer().execute_and_check(planned.plan.clone(), state.config_options(), |_, _| {})?;
            if analyzed != planned.plan {
                // Not the plans themselves: they hold policy predicates.
                return Err(RuntimeError::Internal(
                    "the bound plan is not what DataFusion's analyzer makes of it (compare `planned.plan` with the analyzer's output)".into(),
                ));
            }
        }
        if self.direct && partitions == 1 && kustodian_planner::direct::applies(&planned.plan) {
            return Ok((planned.plan.clone(), true));
        }
        let mut optimized = kustodian_planner::optimize::optimize_with(planned.plan.clone(), &state.optimizer().rules, state, |_, _| {})?;
        if !planned.protected.is_empty() {
            optimized = kustodian_planner::security::pushdown::sink_into_policies(optimized, state)?;
        }
        kustodian_planner::security::verify::verify_logical(&optimized, &planned.protected)?;
        Ok((optimized, false))
    }

    /// Optimizes a planned request and, when its plan can serve the same request again (it
    /// does not hold the request's clock), keeps it in the plan cache under `key`.
    fn optimize_and_keep(&self, snap: &Arc<State>, key: Option<PlanKey>, planned: PlannedQuery) -> Result<Arc<OptimizedQuery>> {
        let (optimized, direct) = self.optimize(&planned)?;
        let optimized = Arc::new(OptimizedQuery {
            optimized,
            direct,
            schema: planned.schema,
            policies: planned.policies,
            tables: planned.tables,
        });
        if let Some(key) = key
            && !planned.reads_clock
            && !planned.validate_permissions
        {
            self.plans.insert(snap, key, Arc::clone(&optimized));
        }
        Ok(optimized)
    }

    /// Plans an optimized, verified logical plan physically and checks its barriers.
    /// Also says whether the plan was lowered directly.
    async fn physical_of(&self, optimized: &LogicalPlan, direct: bool) -> Result<(Arc<TaskContext>, Arc<dyn ExecutionPlan>, bool)> {
        let (state, task) = self.session(input_partitions(optimized));
        let lowered = if direct { kustodian_planner::direct::lower(optimized, state).await? } else { None };
        // The query planner itself, not `SessionState::create_physical_plan`, which would run
        // the analyzer and the logical optimizer again: the plan planned physically is the
        // very plan `verify_logical` checked. A direct plan whose lowering declined (it needs
        // physical rules) is planned unoptimized: still the plan the binder made.
        let lowered_directly = lowered.is_some();
        let physical = match lowered {
            Some(physical) => physical,
            None => state.query_planner().create_physical_plan(optimized, state).await?,
        };
        kustodian_planner::security::verify::verify_physical(optimized, &physical)?;
        Ok((Arc::clone(task), physical, lowered_directly))
    }

    /// Optimizes, verifies (barriers in place) and plans a query physically.
    /// Also says whether the plan was lowered directly.
    pub(crate) async fn physical(&self, planned: &PlannedQuery) -> Result<(Arc<TaskContext>, LogicalPlan, Arc<dyn ExecutionPlan>, bool)> {
        let (optimized, direct) = self.optimize(planned)?;
        let (task, physical, lowered) = self.physical_of(&optimized, direct).await?;
        Ok((task, optimized, physical, lowered))
    }

    async fn stream_plan(&self, planned: &PlannedQuery) -> Result<QueryStream> {
        let (task, _, physical, _) = self.physical(planned).await?;
        let stream = ordered_stream(physical, task)?;
        Ok(QueryStream::engine(planned.schema.clone(), stream))
    }

    /// Plans a query without running it and describes the plan.
    pub async fn explain(&self, text: &str, opts: &RequestOptions) -> Result<Explanation> {
        self.refresh()?;
        let (q, _, caller, ctx) = self.query_request(text, opts, "explain takes a query, not a management command")?;
        let snap = self.snapshot();
        let planned = self.plan(&snap, &caller, &ctx, &q, text)?;
        let (_, optimized, physical, lowered_directly) = self.physical(&planned).await?;
        let policies = planned
            .policies
            .iter()
            .map(|p| {
                format!(
                    "RowLevelSecurity on {}{}: {}",
                    p.table,
                    if p.forced { " (disabled, applied by query_force_row_level_security)" } else { "" },
                    p.query
                )
            })
            .collect();
        Ok(Explanation {
            effective_kql: planned.effective_kql(),
            policies,
            logical_plan: optimized.display_indent().to_string(),
            physical_plan: displayable(physical.as_ref()).indent(false).to_string(),
            lowered_directly,
        })
    }
}

/// Parses a request that must be a query (`not_query` is the error otherwise).
fn parse_query(text: &str, not_query: &str) -> Result<ast::Query> {
    match kustodian_parser::parse(text).map_err(kustodian_planner::PlanError::from)? {
        ast::Request::Query(q) => Ok(q),
        ast::Request::Command(_) => Err(RuntimeError::bad_request(not_query)),
    }
}

/// Runs a physical plan and returns its output as one stream. When the plan ends in several
/// partitions (the legs of a `union`, the slices of a table), they all run at once, each into a
/// small buffer, and their batches come out partition after partition: the same request gives
/// its rows in the same order every time (`union` legs in the order written), where
/// DataFusion's coalescing would interleave them as they finish.
fn ordered_stream(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;
    let partitions = plan.properties().output_partitioning().partition_count();
    if partitions <= 1 {
        return Ok(execute_stream(plan, task)?);
    }
    let schema = plan.schema();
    let mut receivers = Vec::with_capacity(partitions);
    for i in 0..partitions {
        let mut stream = plan.execute(i, Arc::clone(&task))?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                // The reader is gone (the request was dropped): stop.
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        receivers.push(rx);
    }
    let batches = futures::stream::iter(receivers).flat_map(tokio_stream_of);
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

fn tokio_stream_of<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Whether a boolean request property is set (given without a value, or `true`).
fn property_on(opts: &RequestOptions, name: &str) -> bool {
    opts.properties.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).is_some_and(|(_, v)| v.is_empty() || v.eq_ignore_ascii_case("true"))
}

/// `request_readonly` / `request_readonly_hardline`: the request may not change anything.
fn request_readonly(opts: &RequestOptions) -> bool {
    property_on(opts, "request_readonly") || property_on(opts, "request_readonly_hardline")
}

/// The answer to a `validatepermissions` request that passed authorization.
fn validation_result() -> Result<QueryOutput> {
    use datafusion::arrow::array::StringArray;
    let schema = KqlSchema::new(vec![kustodian_planner::KqlColumn::new("Result", kustodian_planner::KqlType::String)]);
    let batch = RecordBatch::try_new(schema.arrow_schema(), vec![Arc::new(StringArray::from(vec!["OK"]))])?;
    Ok(QueryOutput { schema, batches: vec![batch] })
}

pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("mem-{t:x}-{n}")
}
