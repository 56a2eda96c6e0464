//! The cluster: databases, tables, functions, policies and principals, and request execution.
//!
//! State changes are transactional: a command works on a copy of the metadata, writes any new
//! extents, commits the metadata atomically (when the cluster has a directory) and only then
//! swaps the copy in. A failed command leaves the cluster as it was.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use kustodian_parser::ast;
use kustodian_planner::{PlannedQuery, Principal, RequestContext, plan_query};

use crate::auth::{self, Action, Caller, Role, RoleAssignment, check, Needs};
pub use crate::meta::{DatabaseMeta, FunctionMeta, Meta, RlsMeta, TableMeta};
use crate::catalog::{Access, ExtentData, SnapshotCatalog, State};
use crate::extents::{ExtentFiles, HotCache};
use crate::error::{Result, RuntimeError};
use crate::output::{QueryStream, conform, ordered_stream};
use crate::plan_cache::{OptimizedQuery, PlanCache, PlanKey};
use kustodian_planner::pipeline::{Optimized, Physical, Pipeline};
use crate::storage::{ExtentInfo, MetadataStamp, RetiredExtent, Storage, WriterLock};

pub struct Cluster {
    pub(crate) state: RwLock<Arc<State>>,
    pub(crate) storage: Option<Storage>,
    /// The extent files of the cluster directory and the hot cache (a cluster on disk).
    pub(crate) files: Option<Arc<ExtentFiles>>,
    /// The first admin: requests without an identity run as this principal.
    pub(crate) admin: Principal,
    pub(crate) partitions: usize,
    /// Split every table into exactly `partitions` (tests, [`Cluster::with_partitions`]) rather
    /// than only tables large enough to gain from it (see [`MIN_ROWS_PER_PARTITION`]).
    pub(crate) exact_partitions: bool,
    /// The planner's pipeline (its sessions are built once each: registering DataFusion's
    /// functions and rules costs about a millisecond, and even cloning one costs a tenth of
    /// planning a typical query).
    pub(crate) pipeline: Pipeline,
    /// Lower small plans directly (`kustodian_planner::direct`); on by default.
    direct: bool,
    /// Optimized plans of repeated query requests, for the current snapshot.
    pub(crate) plans: PlanCache,
    /// Serialises this process's writers (the directory's writer lock serialises processes).
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// The committed metadata file this process last loaded (see [`Cluster::refresh`]).
    pub(crate) stamp: Mutex<Option<MetadataStamp>>,
    /// Where `.ingest` may read local files: nowhere unless configured
    /// ([`Cluster::with_ingestion_roots`]; the CLI configures its working directory).
    pub(crate) ingestion_roots: crate::ingest::IngestionRoots,
    /// Receives the progress of every file `.ingest` reads ([`Cluster::with_ingestion_progress`];
    /// the CLI draws a bar from it).
    pub(crate) ingestion_progress: Option<crate::ingest::Progress>,
    /// The keyring's suspension count this process last saw (see [`Cluster::refresh`]).
    suspensions_seen: std::sync::atomic::AtomicU64,
}

pub(crate) fn num_partitions() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A change in progress ([`Cluster::begin_write`]): this process's writer mutex and the
/// directory's writer lock.
pub(crate) struct WriteGuard<'a> {
    _mem: tokio::sync::MutexGuard<'a, ()>,
    _file: Option<WriterLock>,
}

/// The committed metadata, with the extents whose file is missing. Reads no extent: scans read
/// the files (see `crate::extents`), so opening costs the same whatever the data's size. A
/// commit of another process may drop an extent between reading the metadata and looking for
/// its file: then it starts again on the newer metadata.
fn load_committed(storage: &Storage) -> Result<Committed> {
    let mut attempt = 0;
    loop {
        let stamp = storage.metadata_stamp();
        let meta: Meta = storage
            .load_metadata()?
            .ok_or_else(|| RuntimeError::bad_request(format!("{} holds no cluster metadata", storage.dir().display())))?;
        let mut broken = HashMap::new();
        for e in meta.extents() {
            if !crate::extents::file_exists(storage, e) {
                broken.insert(e.id.clone(), format!("extent '{}' ('{}' in the cluster directory) is missing", e.id, e.file));
            }
        }
        if !broken.is_empty() && attempt < 20 && storage.metadata_stamp() != stamp {
            attempt += 1;
            continue;
        }
        return Ok(Committed { meta, broken, stamp });
    }
}

struct Committed {
    meta: Meta,
    broken: HashMap<String, String>,
    pub(crate) stamp: Option<MetadataStamp>,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

impl Cluster {
    pub(crate) fn from_parts(state: State, storage: Option<Storage>, admin: Principal) -> Cluster {
        let files = storage.as_ref().map(|s| Arc::new(ExtentFiles::new(s.clone(), 0)));
        if let (Some(keys), Some(f)) = (storage.as_ref().and_then(|s| s.keyring()), &files) {
            // Suspension drops the decrypted extents at once (the rest at the next request).
            let f = Arc::clone(f);
            keys.on_suspend(Box::new(move || f.cache.clear()));
        }
        let state = state.canonical().with_files(files.clone());
        Cluster {
            state: RwLock::new(Arc::new(state)),
            storage,
            files,
            admin,
            partitions: num_partitions(),
            exact_partitions: false,
            pipeline: Pipeline::new(num_partitions(), true),
            plans: PlanCache::default(),
            direct: true,
            ingestion_roots: crate::ingest::IngestionRoots::default(),
            ingestion_progress: None,
            writer: tokio::sync::Mutex::new(()),
            stamp: Mutex::new(None),
            suspensions_seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Creates a new empty cluster directory whose first admin (AllDatabasesAdmin) is `admin`.
    pub fn init(dir: &Path, admin: &str) -> Result<Cluster> {
        Cluster::init_with(dir, admin, false)
    }

    /// [`Cluster::init`], with double encryption (Azure's infrastructure encryption: a second
    /// layer, another key and cipher, under Parquet's) when `double_encryption`. Chosen at
    /// creation, as in Azure: it cannot be turned on or off later.
    pub fn init_with(dir: &Path, admin: &str, double_encryption: bool) -> Result<Cluster> {
        Principal::parse(admin).map_err(RuntimeError::bad_request)?;
        Cluster::init_in(Storage::create_with(dir, double_encryption)?, admin)
    }

    fn init_in(storage: Storage, admin: &str) -> Result<Cluster> {
        let admin = Principal::parse(admin).map_err(RuntimeError::bad_request)?;
        let meta = Meta {
            cluster_roles: vec![RoleAssignment {
                role: Role::AllDatabasesAdmins.keyword().into(),
                principal: admin.fqn(),
                notes: "first admin (kustodian init)".into(),
            }],
            databases: Vec::new(),
            version: 0,
            ingestion_failures: Vec::new(),
            retired: Vec::new(),
        };
        storage.commit_metadata(&meta)?;
        Ok(Cluster::from_parts(State::new(meta, HashMap::new()), Some(storage), admin))
    }

    /// A new cluster directory whose files are NOT encrypted, for benchmarks that measure what
    /// encryption costs (`benches/encryption`); never for data.
    #[doc(hidden)]
    pub fn init_unencrypted_for_benchmarks(dir: &Path, admin: &str) -> Result<Cluster> {
        let storage = Storage::create_unencrypted_for_benchmarks(dir)?;
        Cluster::init_in(storage, admin)
    }

    /// The cluster's keys, when its data is encrypted at rest.
    pub fn keyring(&self) -> Option<&Arc<crate::keys::Keyring>> {
        self.storage.as_ref().and_then(|s| s.keyring())
    }

    /// Opens an existing cluster directory. Reads only: leftovers of a crashed writer are
    /// removed only when the writer lock is free and the directory writable.
    pub fn open(dir: &Path) -> Result<Cluster> {
        let storage = Storage::open(dir)?;
        if let Some(lock) = storage.try_lock_writer() {
            // What is live is what is committed now, read under the lock: metadata loaded
            // before it may already be older than another process's last commit, whose
            // extents must not be taken for leftovers.
            if let Ok(Some(mut current)) = storage.load_metadata::<Meta>() {
                // Retention: extents past their table's soft-delete period are dropped (retired:
                // their files go after the grace period, like any dropped extent's).
                let now = now_ns();
                let before: Vec<ExtentInfo> = current.extents().cloned().collect();
                if !current.apply_retention(now).is_empty() {
                    let after: std::collections::HashSet<&str> = current.extents().map(|e| e.id.as_str()).collect();
                    let gone: Vec<RetiredExtent> = before
                        .iter()
                        .filter(|e| !after.contains(e.id.as_str()))
                        .map(|e| RetiredExtent { id: e.id.clone(), file: e.file.clone(), retired_at: now })
                        .collect();
                    current.retired.extend(gone);
                    current.version += 1;
                    // Best effort: a directory we may lock but not write is still readable.
                    let _ = storage.commit_metadata(&current);
                }
                let live = current.extents().map(|e| e.id.clone()).chain(current.retired.iter().map(|r| r.id.clone())).collect();
                let _ = storage.garbage_collect(&live, &lock);
            }
        }
        // Whoever opens the directory is its operator: a suspension says why.
        let Committed { meta, broken, stamp } = load_committed(&storage).map_err(|e| match e {
            RuntimeError::Suspended(generic) => {
                RuntimeError::Suspended(storage.keyring().and_then(|k| k.suspension()).unwrap_or(generic))
            }
            other => other,
        })?;
        let admin = meta
            .cluster_roles
            .iter()
            .find(|r| r.role == Role::AllDatabasesAdmins.keyword())
            .and_then(|r| r.principal())
            .ok_or_else(|| RuntimeError::Internal("the cluster has no AllDatabasesAdmin".into()))?;
        let cluster = Cluster::from_parts(State::new(meta, HashMap::new()).with_broken(broken), Some(storage), admin);
        cluster.set_stamp(stamp);
        Ok(cluster)
    }

    /// [`Cluster::open`] for a long-lived process (a server): a cluster whose key is refused
    /// opens suspended instead of failing, refuses every request with `ClusterSuspended`, and
    /// loads its metadata at the first request after access returns.
    pub fn open_or_suspended(dir: &Path) -> Result<Cluster> {
        match Cluster::open(dir) {
            Err(RuntimeError::Suspended(why)) => {
                let storage = Storage::open(dir)?;
                if let Some(keys) = storage.keyring() {
                    keys.suspend(why);
                }
                let admin = Principal::parse("aaduser=suspended-cluster@kustodian.invalid").map_err(RuntimeError::Internal)?;
                // No stamp, and a version no commit has: the first refresh after resumption
                // loads the committed metadata in its place.
                let placeholder = Meta { version: u64::MAX, ..Meta::default() };
                Ok(Cluster::from_parts(State::new(placeholder, HashMap::new()), Some(storage), admin))
            }
            other => other,
        }
    }

    /// A new empty in-memory cluster (nothing is persisted) whose first admin is `admin`.
    pub fn in_memory(admin: &str, notes: &str) -> Result<Cluster> {
        let admin = Principal::parse(admin).map_err(RuntimeError::bad_request)?;
        let meta = Meta {
            cluster_roles: vec![RoleAssignment {
                role: Role::AllDatabasesAdmins.keyword().into(),
                principal: admin.fqn(),
                notes: notes.into(),
            }],
            databases: Vec::new(),
            version: 0,
            ingestion_failures: Vec::new(),
            retired: Vec::new(),
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
        // The pipeline's sessions were built for the old partition count.
        self.pipeline = Pipeline::new(self.partitions, self.direct);
        self
    }

    /// Turns the plan cache on (the default) or off: with it off every request is parsed,
    /// bound and optimized (benchmarks of planning use it).
    pub fn with_plan_cache(mut self, enabled: bool) -> Cluster {
        self.plans = PlanCache::new(enabled);
        self
    }

    /// Lets `.ingest` read local files below these directories (and never in the cluster
    /// directory). Without it, local ingestion is refused.
    pub fn with_ingestion_roots(mut self, dirs: &[std::path::PathBuf]) -> Result<Cluster> {
        self.ingestion_roots = crate::ingest::IngestionRoots::new(dirs)?;
        Ok(self)
    }

    /// Reports the progress of every file `.ingest` reads to `progress` (the library draws
    /// nothing itself).
    pub fn with_ingestion_progress(mut self, progress: crate::ingest::Progress) -> Cluster {
        self.ingestion_progress = Some(progress);
        self
    }

    /// Turns direct lowering of small plans on (the default) or off: with it off, every plan
    /// goes through DataFusion's optimizers and physical planner (tests compare the two).
    pub fn with_direct_lowering(mut self, enabled: bool) -> Cluster {
        self.direct = enabled;
        self.pipeline = Pipeline::new(self.partitions, enabled);
        self
    }

    /// Keeps up to `bytes` of decoded hot extents in memory (a cluster on disk; default 0: every
    /// scan reads the files, as a one-shot command line process should). Long-lived processes
    /// (`serve`, the shell) set a budget.
    pub fn with_hot_cache(mut self, bytes: u64) -> Cluster {
        if let Some(s) = &self.storage {
            let files = Some(Arc::new(ExtentFiles::new(s.clone(), bytes)));
            if let (Some(keys), Some(f)) = (s.keyring(), &files) {
                let f = Arc::clone(f);
                keys.on_suspend(Box::new(move || f.cache.clear()));
            }
            self.files = files.clone();
            let mut guard = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let old = Arc::clone(&guard);
            *guard = Arc::new(State::new(old.meta.clone(), old.data.clone()).with_broken(old.broken.clone()).with_files(files));
        }
        self
    }

    /// The hot cache, for a cluster on disk.
    pub fn hot_cache(&self) -> Option<&HotCache> {
        self.files.as_ref().map(|f| &f.cache)
    }

    /// The plan cache's hits and misses since the cluster started.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.plans.stats()
    }

    /// A catalog over a snapshot, with this cluster's partitioning.
    pub(crate) fn catalog<'s>(&'s self, snap: &'s State, access: Access<'s>) -> SnapshotCatalog<'s> {
        SnapshotCatalog { exact_partitions: self.exact_partitions, prober: Some(self), ..SnapshotCatalog::new(snap, access, self.partitions) }
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

    pub(crate) fn set_stamp(&self, stamp: Option<MetadataStamp>) {
        *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
    }

    /// Catches up with commits of other processes: a cheap look at the metadata file, and a
    /// reload when it changed. Every request starts with it, so a long-lived process (a shell,
    /// a server) answers over the latest committed state.
    pub(crate) fn refresh(&self) -> Result<()> {
        let Some(storage) = &self.storage else { return Ok(()) };
        if let Some(keys) = storage.keyring() {
            // A suspension since the last request: what was decrypted goes.
            let n = keys.suspensions();
            if self.suspensions_seen.swap(n, std::sync::atomic::Ordering::SeqCst) != n {
                if let Some(files) = &self.files {
                    files.cache.clear();
                }
                self.plans.clear();
                self.pipeline.clear_file_caches();
            }
        }
        if let Some(keys) = storage.keyring()
            && keys.suspension().is_some()
        {
            // Suspended: refused until the vault answers again, then resumed on its own.
            let kek = keys.current_kek().map_err(crate::storage::key_error)?;
            keys.check_access(&[kek]).map_err(crate::storage::key_error)?;
        }
        let stamp = storage.metadata_stamp();
        if stamp.is_some() && stamp == *self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Ok(());
        }
        let Committed { meta, broken, stamp } = load_committed(storage)?;
        let mut guard = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if meta.version != guard.meta.version || broken != guard.broken {
            if let Some(files) = &self.files {
                files.cache.retain(&meta.hot_extents(now_ns()));
            }
            *guard = Arc::new(State::new(meta, HashMap::new()).with_broken(broken).with_files(self.files.clone()).canonical());
            self.plans.clear();
        }
        drop(guard);
        self.set_stamp(stamp);
        Ok(())
    }

    /// What names the damaged extent when a scan of these tables fails to decrypt a page: reads
    /// their extents again, one by one, and names the first that fails.
    pub(crate) fn diagnose(&self, tables: &[kustodian_planner::TableAccess]) -> Option<crate::output::Diagnose> {
        // Cheap here (an Arc and the table names): the extents are looked at only on failure.
        let files = Arc::clone(self.files.as_ref()?);
        let snap = self.snapshot();
        let tables: Vec<(String, String)> = tables.iter().map(|t| (t.database.clone(), t.table.clone())).collect();
        Some(Arc::new(move || {
            tables.iter().find_map(|(d, t)| {
                let db = snap.meta.db(d)?;
                let extents = db.table(t).map(|tm| &tm.extents).or_else(|| db.materialized_view(t).map(|v| &v.extents))?;
                extents.iter().find_map(|e| {
                    files.read(e).err().map(|err| format!("extent '{}' ('{}' in the cluster directory) is damaged or was tampered with ({err})", e.id, e.file))
                })
            })
        }))
    }

    /// Checks that the cluster can still use every key its data needs (the current key and the
    /// keys that wrapped its extents' DEKs): a refusal suspends it (and this returns the
    /// suspension), an answer resumes it. A server calls it periodically; every request of a
    /// suspended cluster calls it too.
    pub fn check_keys(&self) -> Result<()> {
        let Some(keys) = self.storage.as_ref().and_then(|s| s.keyring()) else { return Ok(()) };
        let mut in_use: Vec<crate::keys::KeyId> = Vec::new();
        for e in self.snapshot().meta.extents() {
            if let Some(w) = &e.key
                && !in_use.contains(&w.kek)
            {
                in_use.push(w.kek.clone());
            }
        }
        let current = match keys.current_kek() {
            Ok(k) => k,
            Err(e) => {
                if matches!(e, crate::keys::KeyError::AccessDenied(_) | crate::keys::KeyError::NotFound(_)) {
                    keys.suspend(format!("the cluster cannot use its key: {e}"));
                }
                return Err(crate::storage::key_error(e));
            }
        };
        if !in_use.contains(&current) {
            in_use.push(current);
        }
        keys.check_access(&in_use).map_err(crate::storage::key_error)
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
        meta.canonicalize();
        let live: std::collections::HashSet<String> = meta.extents().map(|e| e.id.clone()).collect();
        let dropped: Vec<ExtentInfo> = guard.meta.extents().filter(|e| !live.contains(&e.id)).cloned().collect();
        let mut data = guard.data.clone();
        if let Some(s) = &self.storage {
            // Dropped extents are retired, not deleted: a query of this or another process
            // may still be reading the previous version. Their files go once the grace period
            // is over, at a later commit (under the writer lock, as this one).
            let now = now_ns();
            meta.retired.extend(dropped.iter().map(|e| RetiredExtent { id: e.id.clone(), file: e.file.clone(), retired_at: now }));
            let grace = i64::try_from(s.retire_grace().as_nanos()).unwrap_or(i64::MAX);
            let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut meta.retired).into_iter().partition(|r| now.saturating_sub(r.retired_at) >= grace);
            meta.retired = kept;
            s.commit_metadata(&meta)?;
            self.set_stamp(s.metadata_stamp());
            // Committed: a file left behind by a failure here is removed by the next open.
            let _ = s.remove_retired(&expired);
            // New extents are on disk; hot ones go into the cache if it has room, the others
            // are read from their files.
            if let Some(files) = &self.files {
                let hot = meta.hot_extents(now);
                files.cache.retain(&hot);
                if files.cache.enabled() {
                    for (id, batches) in new_data.into_iter().filter(|(id, _)| hot.contains(id)) {
                        files.cache.insert(&id, batches);
                    }
                }
            }
        } else {
            data.extend(new_data);
        }
        data.retain(|k, _| live.contains(k));
        let mut broken = guard.broken.clone();
        broken.retain(|k, _| live.contains(k));
        *guard = Arc::new(State::new(meta, data).with_broken(broken).with_files(self.files.clone()));
        // Cached plans belong to the old snapshot (and hold its data): drop them now rather
        // than at the next query.
        self.plans.clear();
        Ok(())
    }

    /// A sink that writes batches as new extents of at most [`EXTENT_MAX_ROWS`] rows each (files
    /// when persistent, streamed as the batches come), with `tags`.
    pub(crate) fn extent_sink(&self, schema: &SchemaRef, tags: &[String]) -> ExtentSink<'_> {
        ExtentSink {
            cluster: self,
            schema: Arc::clone(schema),
            tags: tags.to_vec(),
            writer: None,
            pending: Vec::new(),
            pending_bytes: 0,
            overflow: false,
            rows: 0,
            done: Vec::new(),
        }
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
            None => {
                let size = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
                ExtentInfo::new(new_id(), String::new(), rows, 0, size)
            }
        };
        Ok(Some((info, Arc::new(batches))))
    }

    /// Runs a probe on a thread of its own with a runtime of its own: binding is synchronous
    /// and may itself run on an async runtime's thread, which must not block on its own tasks.
    fn run_probe_plan(&self, planned: &PlannedQuery) -> kustodian_planner::Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        let pipeline = &self.pipeline;
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| kustodian_planner::PlanError::Internal(format!("cannot start a runtime for a probe: {e}")))?;
                rt.block_on(async {
                    let optimized = pipeline.optimize(planned)?;
                    pipeline.physical(&optimized).await?.collect().await
                })
            })
            .join()
            .unwrap_or_else(|_| Err(kustodian_planner::PlanError::Internal("a probe's thread panicked".into())))
        })
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
    pub(crate) fn authorize_database_read(&self, snap: &State, caller: &Caller, database: &str) -> Result<()> {
        if auth::allows(&snap.meta, caller, &Action::ReadDatabase(database)) {
            return Ok(());
        }
        // Table admins may query their own tables: checked per table.
        let Some(db) = snap.meta.db(database) else { return Ok(()) };
        if db.tables.iter().any(|t| caller.holds(&t.principals, Role::Admins)) {
            return Ok(());
        }
        check(false, caller, &format!("query database '{}'", db.name), Needs::DatabaseViewer)
    }

    pub(crate) fn authorize_tables(&self, snap: &State, caller: &Caller, planned: &PlannedQuery) -> Result<()> {
        for t in &planned.tables {
            let Some(db) = snap.meta.db(&t.database) else { continue };
            let table_admin = db.table(&t.table).is_some_and(|tm| caller.holds(&tm.principals, Role::Admins));
            let readable = auth::allows(&snap.meta, caller, &Action::ReadDatabase(&db.name)) || table_admin;
            check(readable, caller, &format!("read table '{}' in database '{}'", t.table, db.name), Needs::DatabaseViewer)?;
            if t.restricted_view_access {
                let unrestricted = caller.holds(&db.principals, Role::UnrestrictedViewers)
                    && auth::allows(&snap.meta, caller, &Action::ReadDatabase(&db.name));
                check(
                    unrestricted,
                    caller,
                    &format!("read table '{}' in database '{}', which has restricted view access", t.table, db.name),
                    Needs::DatabaseUnrestrictedViewer,
                )?;
            }
        }
        Ok(())
    }

    /// Optimizes a planned request and, when its plan can serve the same request again (it
    /// does not hold the request's clock), keeps it in the plan cache under `key`.
    pub(crate) fn optimize_and_keep(&self, snap: &Arc<State>, key: Option<PlanKey>, planned: PlannedQuery) -> Result<Arc<OptimizedQuery>> {
        let optimized = Arc::new(OptimizedQuery {
            optimized: self.pipeline.optimize(&planned)?,
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

    /// Optimizes, verifies (barriers in place) and plans a query physically, through the
    /// planner's pipeline.
    pub(crate) async fn physical(&self, planned: &PlannedQuery) -> Result<(Optimized, Physical)> {
        let optimized = self.pipeline.optimize(planned)?;
        let physical = self.pipeline.physical(&optimized).await?;
        Ok((optimized, physical))
    }

    pub(crate) async fn stream_plan(&self, planned: &PlannedQuery) -> Result<QueryStream> {
        let (_, physical) = self.physical(planned).await?;
        let stream = ordered_stream(Arc::clone(physical.plan()), Arc::clone(physical.task()))?;
        Ok(QueryStream::engine(planned.schema.clone(), stream).reading(&planned.tables, &planned.policies).diagnosing(self.diagnose(&planned.tables)))
    }

}

/// Merge policy: once a table (of a cluster on disk) has this many small extents (under half
/// of [`EXTENT_MAX_ROWS`]) with the same tags, they are merged into extents of up to
/// [`EXTENT_MAX_ROWS`] rows.
pub(crate) const MERGE_MIN_EXTENTS: usize = 8;

impl Cluster {
    /// Merges the small extents of table `t` (Kusto's merge policy, simplified: see
    /// [`MERGE_MIN_EXTENTS`]). Only under [`Cluster::begin_write`]: the merged extents are
    /// written, then one commit replaces their sources, which readers of the previous version
    /// keep reading until the grace period ends. A crash before the commit leaves only the
    /// new files, unreferenced. Returns the number of extents merged away.
    pub(crate) fn merge_small_extents(&self, db: &str, t: &str) -> Result<usize> {
        let (Some(_), Some(files)) = (&self.storage, &self.files) else { return Ok(0) };
        let snap = self.snapshot();
        let Some(tm) = snap.meta.db(db).and_then(|d| d.table(t)) else { return Ok(0) };
        let mut groups: Vec<(Vec<String>, Vec<&ExtentInfo>)> = Vec::new();
        for e in tm.extents.iter().filter(|e| e.rows < EXTENT_MAX_ROWS / 2) {
            let mut tags = e.tags.clone();
            tags.sort();
            match groups.iter_mut().find(|(t, _)| *t == tags) {
                Some((_, g)) => g.push(e),
                None => groups.push((tags, vec![e])),
            }
        }
        let schema = tm.schema.arrow_schema();
        let mut replaced: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut merged: Vec<ExtentInfo> = Vec::new();
        for (_, group) in groups.into_iter().filter(|(_, g)| g.len() >= MERGE_MIN_EXTENTS) {
            let mut sink = self.extent_sink(&schema, &group[0].tags);
            for e in &group {
                let batches = match files.cache.get(&e.id) {
                    Some(b) => b.to_vec(),
                    None => files.read(e)?,
                };
                for b in batches {
                    sink.push(crate::extents::adapt(&b, &schema)?)?;
                }
            }
            let min = group.iter().map(|e| e.min_created).min().unwrap_or_default();
            let max = group.iter().map(|e| e.max_created).max().unwrap_or_default();
            for (mut info, _) in sink.finish()? {
                info.min_created = min;
                info.max_created = max;
                merged.push(info);
            }
            replaced.extend(group.iter().map(|e| e.id.clone()));
        }
        if replaced.is_empty() {
            return Ok(0);
        }
        let mut meta = snap.meta.clone();
        if let Some(tm) = meta.db_mut(db).and_then(|d| d.table_mut(t)) {
            // The merged extents take the place of their first source (ingestion order kept).
            let first = tm.extents.iter().position(|e| replaced.contains(&e.id)).unwrap_or(tm.extents.len());
            tm.extents.retain(|e| !replaced.contains(&e.id));
            let at = first.min(tm.extents.len());
            tm.extents.splice(at..at, merged);
        }
        self.commit(meta, HashMap::new())?;
        Ok(replaced.len())
    }
}

/// Rows per extent at most: a large ingestion becomes several extents (the unit a scan splits
/// over partitions and skips by its statistics), small ones are merged up to this size.
pub(crate) const EXTENT_MAX_ROWS: u64 = 1 << 20;

/// New extents being written (see [`Cluster::extent_sink`]). Dropping it before
/// [`ExtentSink::finish`] leaves only files no metadata references (removed at the next open).
pub(crate) struct ExtentSink<'c> {
    cluster: &'c Cluster,
    schema: SchemaRef,
    tags: Vec<String>,
    writer: Option<crate::storage::ExtentWriter>,
    /// A cluster in memory: the current extent's batches; on disk, those the hot cache takes.
    pending: Vec<RecordBatch>,
    pending_bytes: u64,
    /// The current extent is too large for the hot cache.
    overflow: bool,
    rows: u64,
    done: Vec<NewExtent>,
}

/// An extent an [`ExtentSink`] wrote, with its batches when they are kept in memory (a cluster
/// in memory; on disk, for the hot cache).
pub(crate) type NewExtent = (ExtentInfo, Option<Arc<Vec<RecordBatch>>>);

impl ExtentSink<'_> {
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = crate::output::conform_batch(batch, &self.schema)?;
        self.rows += batch.num_rows() as u64;
        match &self.cluster.storage {
            Some(s) => {
                if self.writer.is_none() {
                    self.writer = Some(s.extent_writer(&self.schema)?);
                }
                if let Some(w) = self.writer.as_mut() {
                    w.write(&batch)?;
                }
                // New data is hot: with a hot cache, the extent's batches go into it at the
                // commit, as long as they fit in it (a large ingestion streams through).
                if let Some(files) = &self.cluster.files
                    && files.cache.enabled()
                    && !self.overflow
                {
                    self.pending_bytes += batch.get_array_memory_size() as u64;
                    if self.pending_bytes > files.cache.budget() {
                        self.overflow = true;
                        self.pending.clear();
                    } else {
                        self.pending.push(batch);
                    }
                }
            }
            None => self.pending.push(batch),
        }
        if self.rows >= EXTENT_MAX_ROWS {
            self.cut()?;
        }
        Ok(())
    }

    /// Ends the current extent.
    fn cut(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut info = match self.writer.take() {
            Some(w) => w.finish()?,
            None => {
                let size = self.pending.iter().map(|b| b.get_array_memory_size() as u64).sum();
                ExtentInfo::new(new_id(), String::new(), self.rows, 0, size)
            }
        };
        info.tags = self.tags.clone();
        let pending = std::mem::take(&mut self.pending);
        let data = if pending.is_empty() {
            None
        } else if self.cluster.storage.is_some() {
            // For the hot cache: one batch of exactly sized buffers (the ingestion builders'
            // are sized for more rows than a small extent has).
            let one = datafusion::arrow::compute::concat_batches(&self.schema, &pending)?;
            let all = datafusion::arrow::array::UInt32Array::from_iter_values(0..u32::try_from(one.num_rows()).unwrap_or(u32::MAX));
            Some(Arc::new(vec![datafusion::arrow::compute::take_record_batch(&one, &all)?]))
        } else {
            Some(Arc::new(pending))
        };
        self.done.push((info, data));
        self.rows = 0;
        self.pending_bytes = 0;
        self.overflow = false;
        Ok(())
    }

    /// The extents written, with their batches when the cluster is in memory.
    pub(crate) fn finish(mut self) -> Result<Vec<NewExtent>> {
        self.cut()?;
        Ok(std::mem::take(&mut self.done))
    }
}

pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("mem-{t:x}-{n}")
}

impl crate::catalog::Prober for Cluster {
    fn run_probe(&self, state: &State, caller: &Caller, planned: &PlannedQuery) -> kustodian_planner::Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        self.authorize_tables(state, caller, planned).map_err(|e| match e {
            RuntimeError::Plan(p) => p,
            other => kustodian_planner::PlanError::Forbidden { message: other.to_string() },
        })?;
        self.run_probe_plan(planned)
    }
}
