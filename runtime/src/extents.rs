//! Tables read from their extents: [`ExtentTable`], the table provider of a table (or
//! materialized view) of a cluster directory, and [`HotCache`], the decoded extents kept in
//! memory.
//!
//! Opening a cluster reads its metadata only. A query's scan of a table reads each extent from
//! the first place that has it: the request's own batches (a cluster in memory, or extents of
//! the change being committed), the hot cache, or its Parquet file through DataFusion's
//! Parquet source: only the projected columns, row groups and pages skipped by their
//! statistics, filters evaluated while decoding, batches streamed. Memory is then bounded by the
//! query, not by the database.
//!
//! What is hot follows Kusto's caching policy: an extent whose newest row was ingested within
//! the table's (or its database's) hot period, every extent when no policy is set. A scan that
//! reads a hot extent from its file loads it into the cache in the background (when the cache
//! has a budget: a one-shot command line process has none), least recently used extents going
//! first when the budget is exceeded. Extents never change, so a cached extent is never stale.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Result as DfResult, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemTable;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use crate::storage::{ExtentInfo, Storage};

/// Tables with fewer rows than this per partition are not split further: a small table gains
/// nothing from running on several cores, and one partition plans with no repartitioning and
/// no two-phase aggregation (a third of the planning time of a small query).
pub(crate) const MIN_ROWS_PER_PARTITION: usize = 64 * 1024;

/// Decoded extents in memory under a budget in bytes, least recently used first out.
pub struct HotCache {
    budget: u64,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct CacheState {
    lru: lru::LruCache<String, Arc<Vec<RecordBatch>>>,
    bytes: u64,
}

/// What the hot cache holds and how it has been used, for `.show cluster` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub budget: u64,
    pub bytes: u64,
    pub extents: usize,
    pub hits: u64,
    pub misses: u64,
}

impl HotCache {
    /// A cache of at most `budget` bytes of decoded data (0: caches nothing).
    pub fn new(budget: u64) -> HotCache {
        HotCache {
            budget,
            state: Mutex::new(CacheState { lru: lru::LruCache::unbounded(), bytes: 0 }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The extent's batches if cached (and marks it used).
    pub fn get(&self, id: &str) -> Option<Arc<Vec<RecordBatch>>> {
        let got = self.lock().lru.get(id).cloned();
        let counter = if got.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().lru.contains(id)
    }

    /// Caches an extent's batches, evicting the least recently used until they fit. An extent
    /// larger than the whole budget is not cached.
    pub fn insert(&self, id: &str, batches: Arc<Vec<RecordBatch>>) {
        let size: u64 = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
        if size > self.budget {
            return;
        }
        let mut st = self.lock();
        if let Some(old) = st.lru.put(id.to_string(), batches) {
            st.bytes -= old.iter().map(|b| b.get_array_memory_size() as u64).sum::<u64>();
        }
        st.bytes += size;
        while st.bytes > self.budget {
            let Some((_, gone)) = st.lru.pop_lru() else { break };
            st.bytes -= gone.iter().map(|b| b.get_array_memory_size() as u64).sum::<u64>();
        }
    }

    /// Drops the extents not in `live` (dropped or merged away).
    pub fn retain(&self, live: &HashSet<String>) {
        let mut st = self.lock();
        let gone: Vec<String> = st.lru.iter().filter(|(k, _)| !live.contains(*k)).map(|(k, _)| k.clone()).collect();
        for k in gone {
            if let Some(b) = st.lru.pop(&k) {
                st.bytes -= b.iter().map(|b| b.get_array_memory_size() as u64).sum::<u64>();
            }
        }
    }

    /// Empties the cache.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.lru.clear();
        st.bytes = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let st = self.lock();
        CacheStats {
            budget: self.budget,
            bytes: st.bytes,
            extents: st.lru.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// The extent files of a cluster directory as the scans of one process see them: the directory,
/// the hot cache, and which files were found readable.
pub(crate) struct ExtentFiles {
    storage: Storage,
    /// The cluster directory, absolute (the object store path of the files).
    root: PathBuf,
    pub cache: HotCache,
    /// Extents whose footer was read once: a corrupt file fails its table's queries with a
    /// message naming the table and the extent, before a scan starts.
    checked: Mutex<HashSet<String>>,
    /// Extents being loaded into the cache.
    loading: Mutex<HashSet<String>>,
}

impl ExtentFiles {
    pub(crate) fn new(storage: Storage, cache_budget: u64) -> ExtentFiles {
        let root = std::fs::canonicalize(storage.dir()).unwrap_or_else(|_| storage.dir().to_path_buf());
        ExtentFiles {
            storage,
            root,
            cache: HotCache::new(cache_budget),
            checked: Mutex::default(),
            loading: Mutex::default(),
        }
    }

    fn path(&self, e: &ExtentInfo) -> DfResult<PathBuf> {
        let rel = self.storage.extent_path(e).map_err(|err| DataFusionError::Execution(err.to_string()))?;
        let rel = rel.strip_prefix(self.storage.dir()).unwrap_or(&rel).to_path_buf();
        Ok(self.root.join(rel))
    }

    /// Reads the extent's footer once per process (a file never changes).
    fn check(&self, e: &ExtentInfo) -> std::result::Result<(), String> {
        if self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&e.id) {
            return Ok(());
        }
        let why = |m: String| format!("cannot read extent '{}' ('{}' in the cluster directory): {m}", e.id, e.file);
        let path = self.path(e).map_err(|err| why(err.to_string()))?;
        let file = File::open(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => format!("extent '{}' ('{}' in the cluster directory) is missing", e.id, e.file),
            _ => why(err.kind().to_string()),
        })?;
        let decryption = self.storage.decryption(e).map_err(|err| why(err.to_string()))?;
        let file = self.storage.layer_file(e, file).map_err(|err| why(err.to_string()))?;
        ParquetMetaDataReader::new().with_decryption_properties(decryption).parse_and_finish(&file).map_err(|err| why(err.to_string()))?;
        self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(e.id.clone());
        Ok(())
    }

    /// Reads a whole extent into memory.
    pub(crate) fn read(&self, e: &ExtentInfo) -> crate::error::Result<Vec<RecordBatch>> {
        self.storage.read_extent(e)
    }

    /// Loads hot extents into the cache in the background, one at a time per extent.
    fn warm(self: &Arc<Self>, extents: Vec<ExtentInfo>) {
        if !self.cache.enabled() || extents.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let mut todo = Vec::new();
        {
            let mut loading = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in extents {
                if !self.cache.contains(&e.id) && loading.insert(e.id.clone()) {
                    todo.push(e);
                }
            }
        }
        if todo.is_empty() {
            return;
        }
        let files = Arc::clone(self);
        handle.spawn_blocking(move || {
            for e in todo {
                // A file dropped meanwhile is simply not cached.
                if let Ok(batches) = files.read(&e) {
                    files.cache.insert(&e.id, Arc::new(batches));
                }
                files.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&e.id);
            }
        });
    }
}

/// The table provider of a table or materialized view whose extents may be on disk.
pub(crate) struct ExtentTable {
    schema: SchemaRef,
    /// `table 'T' in database 'Db'`, for errors.
    what: String,
    extents: Vec<ExtentInfo>,
    /// Batches of extents already in memory (a cluster in memory; extents being committed).
    memory: HashMap<String, Arc<Vec<RecordBatch>>>,
    files: Option<Arc<ExtentFiles>>,
    /// Extents whose newest row is at least this recent are hot (ns since the Unix epoch);
    /// `None`: every extent.
    hot_since: Option<i64>,
    partitions: usize,
}

impl std::fmt::Debug for ExtentTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtentTable").field("what", &self.what).field("extents", &self.extents.len()).finish()
    }
}

impl ExtentTable {
    pub(crate) fn new(
        schema: SchemaRef,
        what: String,
        extents: Vec<ExtentInfo>,
        memory: HashMap<String, Arc<Vec<RecordBatch>>>,
        files: Option<Arc<ExtentFiles>>,
        hot_since: Option<i64>,
        partitions: usize,
    ) -> ExtentTable {
        ExtentTable { schema, what, extents, memory, files, hot_since, partitions: partitions.max(1) }
    }

    pub(crate) fn rows(&self) -> u64 {
        self.extents.iter().map(|e| e.rows).sum()
    }

    fn is_hot(&self, e: &ExtentInfo) -> bool {
        self.hot_since.is_none_or(|since| e.max_created >= since)
    }

    fn memory_plan(
        &self,
        batches: Vec<RecordBatch>,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        n: usize,
    ) -> impl std::future::Future<Output = DfResult<Arc<dyn ExecutionPlan>>> + Send {
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n.max(1)];
        let len = parts.len();
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % len].push(b);
        }
        let table = MemTable::try_new(Arc::clone(&self.schema), parts);
        let projection = projection.cloned();
        let filters = filters.to_vec();
        async move { table?.scan(state, projection.as_ref(), &filters, limit).await }
    }

    async fn file_plan(
        &self,
        files: &ExtentFiles,
        cold: &[&ExtentInfo],
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
        n: usize,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Contiguous runs of extents of about equal rows, one per partition.
        let total: u64 = cold.iter().map(|e| e.rows).sum();
        // Double-encrypted extents are read through the layer store (paths relative to it).
        let layered = cold.iter().any(|e| e.layer_key.is_some());
        let mut store_url = ObjectStoreUrl::local_filesystem();
        if let Some(keys) = files.storage.keyring() {
            // The keyring learns each extent's wrapped keys; they are unwrapped when a file is
            // read (by its key metadata, or by the layer store), each once per process.
            keys.check_not_suspended().map_err(|err| DataFusionError::Execution(crate::storage::key_error(err).to_string()))?;
            for e in cold {
                if let Some(w) = &e.key {
                    keys.remember(&e.id, w);
                }
                if let Some(w) = &e.layer_key {
                    keys.remember_layer(&e.id, w);
                }
            }
        }
        if layered && let Some(keys) = files.storage.keyring() {
            let host = keys.config().identity.rsplit('/').next().unwrap_or("cluster").to_string();
            store_url = ObjectStoreUrl::parse(format!("kustodian://{host}"))?;
            let store = crate::keys::layer::LayerStore::new(&files.root, Arc::clone(keys))?;
            state.runtime_env().register_object_store(store_url.as_ref(), Arc::new(store));
        }
        let n = n.clamp(1, cold.len());
        let per = total.div_ceil(n as u64).max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new()];
        let mut in_group = 0u64;
        for e in cold {
            if in_group >= per && groups.len() < n {
                groups.push(Vec::new());
                in_group = 0;
            }
            let stats = Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(e.rows as usize));
            let path = if layered { PathBuf::from(&e.file) } else { files.path(e)? };
            let file = PartitionedFile::new(path.to_string_lossy().into_owned(), e.bytes).with_statistics(Arc::new(stats));
            if let Some(g) = groups.last_mut() {
                g.push(file);
            }
            in_group += e.rows;
        }
        let mut source = ParquetSource::new(Arc::clone(&self.schema));
        if let Some(keyring) = files.storage.keyring() {
            // Encrypted extents: each file's DEK, by the extent id in its key metadata.
            source = source.with_encryption_factory(Arc::new(crate::keys::ExtentEncryption(Arc::clone(keyring))));
        }
        let config = FileScanConfigBuilder::new(store_url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_statistics(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(total as usize)))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        // Through the Parquet format: it reads footers through the session's metadata cache and
        // applies the session's Parquet options (filter pushdown, page index).
        let format = ParquetFormat::new().with_options(state.table_options().parquet.clone());
        format.create_physical_plan(state, config).await
    }
}

#[async_trait]
impl TableProvider for ExtentTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut in_memory = Vec::new();
        let mut cold = Vec::new();
        for e in &self.extents {
            let held = self.memory.get(&e.id).cloned().or_else(|| self.files.as_ref().and_then(|f| f.cache.get(&e.id)));
            match held {
                Some(batches) => {
                    for b in batches.iter() {
                        in_memory.push(adapt(b, &self.schema)?);
                    }
                }
                None => cold.push(e),
            }
        }
        let mut plans = Vec::new();
        let n = self.partitions;
        if !in_memory.is_empty() || cold.is_empty() {
            let rows: usize = in_memory.iter().map(|b| b.num_rows()).sum();
            let parts = if n > 1 { n.min(rows / MIN_ROWS_PER_PARTITION).max(1) } else { 1 };
            plans.push(self.memory_plan(in_memory, state, projection, filters, limit, parts).await?);
        }
        if !cold.is_empty() {
            let Some(files) = &self.files else {
                return Err(DataFusionError::Execution(format!("{} cannot be read: its extents are neither in memory nor on disk", self.what)));
            };
            for e in &cold {
                files.check(e).map_err(|why| DataFusionError::Execution(format!("{} cannot be read: {why}", self.what)))?;
            }
            plans.push(self.file_plan(files, &cold, state, projection, limit, n).await?);
            files.warm(cold.iter().filter(|e| self.is_hot(e)).map(|e| (*e).clone()).collect());
        }
        UnionExec::try_new(plans)
    }

    /// Every filter may prune (statistics and the Parquet page index evaluate no expression on
    /// rows) and is evaluated again above the scan. Which filters reach a protected table's scan
    /// at all is decided above it: only its policy's and the total ones moved into its barrier.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(self.rows() as usize)))
    }
}

/// An extent's batch in the table's current schema: columns by name, a column the extent lacks
/// (added to the table after it was written) all null.
pub(crate) fn adapt(batch: &RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let same_shape = batch.num_columns() == schema.fields().len()
        && batch.schema_ref().fields().iter().zip(schema.fields()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    let columns: Vec<ArrayRef> = if same_shape {
        batch.columns().to_vec()
    } else {
        schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
                Some(c) => cast(c, f.data_type()).map_err(DataFusionError::from),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<DfResult<_>>()?
    };
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Whether `dir` holds the file of `e` (a cheap test at open: a missing file fails only its
/// table, naming it).
pub(crate) fn file_exists(storage: &Storage, e: &ExtentInfo) -> bool {
    storage.extent_path(e).map(|p| Path::new(&p).is_file()).unwrap_or(false)
}
