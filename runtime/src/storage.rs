//! On-disk cluster storage: serde-JSON metadata plus one Parquet file per extent.
//!
//! Layout of a cluster directory:
//!
//! ```text
//! DIR/kustodian-cluster.json   marker: format name and version (written by `create`)
//! DIR/encryption.json          the cluster's key configuration (no secret; `crate::keys`)
//! DIR/keys/platform/           the platform key's vault (the KEK without a customer key)
//! DIR/metadata.json            the committed cluster metadata, sealed (opaque to this module)
//! DIR/extents/<id>.parquet     table data, one immutable encrypted file per extent
//! DIR/**/.tmp-*                files being written; never referenced, removed by GC
//! ```
//!
//! Commit protocol: a command first writes its new extents (each atomically: temporary file,
//! fsync, rename, fsync of the directory), then commits the metadata that references them
//! (atomically, the same way). A crash or failure before the metadata rename leaves only
//! unreferenced extent files and temporary files. Readers never see a half-written table.
//!
//! Many processes may use one directory. Writers are serialised by an exclusive lock on
//! `DIR/writer.lock` ([`Storage::lock_writer`]), held from before a command reads the metadata
//! it changes until after it commits, so no commit is made over metadata older than the last
//! one (the owner also checks the metadata's version under the lock). Readers take no lock and
//! write nothing: they notice a new commit by [`Storage::metadata_stamp`] and reload. Garbage
//! collection ([`Storage::garbage_collect`]) runs only under the writer lock, when no other
//! writer can have a file in flight.
//!
//! Extents are immutable Parquet files carrying the Arrow schema (and so the `kusto.type`
//! field metadata). Large extents can be scanned lazily by DataFusion through
//! [`Storage::extent_path`] (e.g. a `ListingTable` or `ParquetSource` over the file).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;

use crate::error::{Result, RuntimeError};
use crate::keys::{KeyError, Keyring, WrappedKey};

const MARKER_FILE: &str = "kustodian-cluster.json";
const METADATA_FILE: &str = "metadata.json";
const WRITER_LOCK_FILE: &str = "writer.lock";
const EXTENTS_DIR: &str = "extents";
const TMP_PREFIX: &str = ".tmp-";
const EXTENT_EXT: &str = "parquet";
const FORMAT_NAME: &str = "kustodian";
const FORMAT_VERSION: u32 = 1;
/// Rows per batch when reading an extent back.
const READ_BATCH_ROWS: usize = 64 * 1024;
/// Rows per Parquet row group: the unit a scan skips by its statistics (min/max per column).
/// Ingestion order is kept (Kusto's extents are in ingestion-time order), so time-like and
/// sequential columns prune well at this granularity.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per data page at most: the page index (column and offset indexes) then lets a scan
/// skip pages within a row group.
const PAGE_ROWS: usize = 8 * 1024;
/// How long the file of a dropped extent is kept (see [`RetiredExtent`]), unless the
/// `KUSTODIAN_RETIRE_GRACE_SECS` environment variable says otherwise.
const DEFAULT_RETIRE_GRACE_SECS: u64 = 300;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
}

/// One immutable extent (data shard) of a table: a Parquet file in the cluster directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtentInfo {
    /// Unique id (a UUID v4 in hyphenated lower-case form).
    pub id: String,
    /// Path of the file relative to the cluster directory (`extents/<id>.parquet`).
    pub file: String,
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Size of the extent's data in memory, uncompressed (Kusto's `OriginalSize`).
    #[serde(default)]
    pub original_size: u64,
    /// When the extent's oldest and newest rows were ingested (ns since the Unix epoch); a
    /// merged extent spans those of its sources. The caching policy (what is hot) and the
    /// retention policy (what is deleted) compare them with the current time.
    #[serde(default)]
    pub min_created: i64,
    #[serde(default)]
    pub max_created: i64,
    /// Extent tags (`drop-by:...`, `ingest-by:...`, or any string).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The extent's data-encryption key, wrapped by a key-encryption key (None: a plaintext
    /// extent of a cluster made before encryption at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<WrappedKey>,
    /// With double encryption, the key of the second layer under Parquet's (see
    /// `crate::keys::layer`), wrapped by the platform key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_key: Option<WrappedKey>,
}

impl ExtentInfo {
    /// A new extent's description: created now, no tags.
    pub fn new(id: String, file: String, rows: u64, bytes: u64, original_size: u64) -> ExtentInfo {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        ExtentInfo { id, file, rows, bytes, original_size, min_created: now, max_created: now, tags: Vec::new(), key: None, layer_key: None }
    }
}

/// An extent no longer referenced by the metadata whose file is kept for a while: a reader of
/// another process (or a query still running here) may have planned over the metadata that
/// referenced it. Its file goes at the first commit after [`Storage::retire_grace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredExtent {
    pub id: String,
    pub file: String,
    /// When the commit that dropped it was made (ns since the Unix epoch).
    pub retired_at: i64,
}

/// A cluster directory.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    /// The cluster's keys (None: a cluster made before encryption at rest, read as it is).
    keyring: Option<Arc<Keyring>>,
}

/// What a caller is told of a suspension: not which vault, key or identity refused (that is
/// the cluster admins', in `.show cluster policy encryption`, and the audit logs').
pub const SUSPENDED: &str = "the cluster cannot use its encryption key (access to it was refused or it is gone); an AllDatabasesAdmin or \
                             AllDatabasesMonitor sees why with .show cluster policy encryption";

/// A key failure as the engine reports it to a caller: a refused or missing key suspends the
/// cluster, and says so without the key's details.
pub fn key_error(e: KeyError) -> RuntimeError {
    match e {
        KeyError::AccessDenied(_) | KeyError::NotFound(_) => RuntimeError::Suspended(SUSPENDED.into()),
        KeyError::Invalid(m) | KeyError::Unavailable(m) => RuntimeError::Internal(m),
    }
}

impl Storage {
    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Creates a new cluster in `dir` (created if missing). Fails if `dir` already holds a
    /// cluster or is a non-empty directory.
    pub fn create(dir: &Path) -> Result<Storage> {
        Storage::create_with(dir, false)
    }

    /// [`Storage::create`], with double encryption (a second layer under Parquet's) or not.
    pub fn create_with(dir: &Path, double_encryption: bool) -> Result<Storage> {
        if dir.join(MARKER_FILE).exists() {
            return Err(RuntimeError::bad_request(format!(
                "'{}' already holds a Kustodian cluster",
                dir.display()
            )));
        }
        if dir.exists() {
            if !dir.is_dir() {
                return Err(RuntimeError::bad_request(format!("'{}' is not a directory", dir.display())));
            }
            if fs::read_dir(dir)?.next().is_some() {
                return Err(RuntimeError::bad_request(format!(
                    "'{}' is not empty; a new cluster needs an empty or new directory",
                    dir.display()
                )));
            }
        }
        fs::create_dir_all(dir.join(EXTENTS_DIR))?;
        let keyring = Keyring::create(dir, double_encryption).map_err(key_error)?;
        let storage = Storage { root: dir.to_path_buf(), keyring: Some(Arc::new(keyring)) };
        let marker = Marker { format: FORMAT_NAME.to_string(), version: FORMAT_VERSION };
        storage.write_json_atomically(&dir.join(MARKER_FILE), &marker)?;
        if let Some(parent) = dir.parent() {
            // Make the new directory itself durable; best effort (the parent may be "").
            if !parent.as_os_str().is_empty() {
                let _ = sync_dir(parent);
            }
        }
        Ok(storage)
    }

    /// A new cluster directory whose files are NOT encrypted: only for benchmarks that measure
    /// what encryption costs against the same cluster without it.
    #[doc(hidden)]
    pub fn create_unencrypted_for_benchmarks(dir: &Path) -> Result<Storage> {
        let storage = Storage::create(dir)?;
        fs::remove_file(dir.join("encryption.json"))?;
        fs::remove_dir_all(dir.join("keys"))?;
        Ok(Storage { root: storage.root, keyring: None })
    }

    /// Opens an existing cluster directory.
    pub fn open(dir: &Path) -> Result<Storage> {
        let marker_path = dir.join(MARKER_FILE);
        if !dir.is_dir() || !marker_path.is_file() {
            return Err(RuntimeError::bad_request(format!(
                "'{}' is not a Kustodian cluster directory (create one with `kustodian init --data {}`)",
                dir.display(),
                dir.display()
            )));
        }
        let text = fs::read_to_string(&marker_path)?;
        let marker: Marker = serde_json::from_str(&text).map_err(|e| {
            RuntimeError::bad_request(format!("'{}' is not a valid cluster marker: {e}", marker_path.display()))
        })?;
        if marker.format != FORMAT_NAME || marker.version > FORMAT_VERSION {
            return Err(RuntimeError::bad_request(format!(
                "'{}' holds an unsupported cluster format ({} version {})",
                dir.display(),
                marker.format,
                marker.version
            )));
        }
        fs::create_dir_all(dir.join(EXTENTS_DIR))?;
        let keyring = Keyring::open(dir).map_err(key_error)?.map(Arc::new);
        Ok(Storage { root: dir.to_path_buf(), keyring })
    }

    /// The cluster's keys, when its data is encrypted.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The committed metadata, or `None` if none has been committed yet.
    pub fn load_metadata<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let path = self.root.join(METADATA_FILE);
        let bytes = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let text = match &self.keyring {
            Some(k) => k.open_sealed(&bytes).map_err(key_error)?,
            None if Keyring::sealed_by(&bytes).is_some() => {
                return Err(RuntimeError::Internal(format!(
                    "the cluster metadata '{}' is sealed, but the cluster's key configuration (encryption.json) is missing",
                    path.display()
                )));
            }
            None => bytes,
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| RuntimeError::Internal(format!("corrupt cluster metadata '{}': {e}", path.display())))
    }

    /// Takes the directory's writer lock, waiting for another writer (of this or another process)
    /// to finish. Released when the returned guard is dropped (or the process dies).
    pub fn lock_writer(&self) -> Result<WriterLock> {
        let file = self.open_lock_file()?;
        file.lock().map_err(|e| self.io_error("take the writer lock", WRITER_LOCK_FILE, e))?;
        Ok(WriterLock { _file: file })
    }

    /// Takes the writer lock if no one holds it; `None` if someone does or the directory is
    /// read-only.
    pub fn try_lock_writer(&self) -> Option<WriterLock> {
        let file = self.open_lock_file().ok()?;
        match file.try_lock() {
            Ok(()) => Some(WriterLock { _file: file }),
            Err(_) => None,
        }
    }

    fn open_lock_file(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.root.join(WRITER_LOCK_FILE))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => RuntimeError::bad_request(format!(
                    "the cluster directory '{}' is read-only: it can be queried, not changed",
                    self.root.display()
                )),
                _ => self.io_error("open the writer lock", WRITER_LOCK_FILE, e),
            })
    }

    fn io_error(&self, what: &str, rel: &str, e: std::io::Error) -> RuntimeError {
        RuntimeError::Internal(format!("cannot {what} ('{rel}' in cluster directory '{}'): {e}", self.root.display()))
    }

    /// What identifies the committed metadata file as it is now (a new commit replaces the file,
    /// so it changes): the cheap test a long-lived reader makes before each request.
    pub fn metadata_stamp(&self) -> Option<MetadataStamp> {
        let m = fs::metadata(self.root.join(METADATA_FILE)).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0u64;
        Some(MetadataStamp { ino, len: m.len(), modified: m.modified().ok() })
    }

    /// How long the files of dropped extents are kept (see [`RetiredExtent`]): five minutes,
    /// or `KUSTODIAN_RETIRE_GRACE_SECS`.
    pub fn retire_grace(&self) -> std::time::Duration {
        let secs = std::env::var("KUSTODIAN_RETIRE_GRACE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_RETIRE_GRACE_SECS);
        std::time::Duration::from_secs(secs)
    }

    /// Removes the files of retired extents whose grace period is over (after the commit that
    /// forgot them). Only under the writer lock; a missing file is not an error.
    pub fn remove_retired(&self, expired: &[RetiredExtent]) -> Result<()> {
        for r in expired {
            let path = self.extent_path(&ExtentInfo::new(r.id.clone(), r.file.clone(), 0, 0, 0))?;
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(self.io_error("remove a dropped extent", &r.file, err)),
            }
        }
        if !expired.is_empty() {
            sync_dir(&self.root.join(EXTENTS_DIR))?;
        }
        Ok(())
    }

    /// Atomically replaces the committed metadata (temporary file, fsync, rename, fsync dir).
    pub fn commit_metadata<T: Serialize>(&self, meta: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(meta).map_err(|e| RuntimeError::Internal(format!("cannot serialize metadata: {e}")))?;
        let bytes = match &self.keyring {
            Some(k) => k.seal(&text).map_err(key_error)?,
            None => text,
        };
        self.write_atomically(&self.root.join(METADATA_FILE), &bytes)
    }

    /// Writes `batches` as a new extent file, atomically. The extent is not part of any table
    /// until metadata referencing its id is committed.
    pub fn write_extent(&self, batches: &[RecordBatch], schema: &SchemaRef) -> Result<ExtentInfo> {
        let mut writer = self.extent_writer(schema)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()
    }

    /// Starts a streaming extent write: batches are encoded as they come, so a large ingestion
    /// does not hold the whole table in memory. Dropping the writer without `finish` removes
    /// the temporary file.
    pub fn extent_writer(&self, schema: &SchemaRef) -> Result<ExtentWriter> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let dir = self.root.join(EXTENTS_DIR);
        fs::create_dir_all(&dir).map_err(|e| self.io_error("create the extents directory", EXTENTS_DIR, e))?;
        let tmp_path = dir.join(format!("{TMP_PREFIX}{id}.{EXTENT_EXT}"));
        let final_rel = format!("{EXTENTS_DIR}/{id}.{EXTENT_EXT}");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| self.io_error("write a new extent", &format!("{EXTENTS_DIR}/{TMP_PREFIX}{id}.{EXTENT_EXT}"), e))?;
        let keys = match &self.keyring {
            Some(k) => k.new_extent_key(&id).and_then(|(props, wrapped)| Ok((Some(props), Some(wrapped), k.new_layer_key(&id)?))),
            None => Ok((None, None, None)),
        };
        let (encryption, key, layer) = match keys {
            Ok(x) => x,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(key_error(e));
            }
        };
        let (layer_cipher, layer_key) = match layer {
            Some((k, w)) => (Some(k), Some(w)),
            None => (None, None),
        };
        let props = extent_writer_properties(encryption);
        let file = crate::keys::layer::LayerWriter::new(file, layer_cipher);
        let writer = match ArrowWriter::try_new(file, schema.clone(), Some(props)) {
            Ok(w) => w,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(parquet_err(e));
            }
        };
        Ok(ExtentWriter {
            writer: Some(writer),
            tmp_path,
            final_path: self.root.join(&final_rel),
            dir,
            id,
            file: final_rel,
            rows: 0,
            original_size: 0,
            key,
            layer_key,
        })
    }

    /// Absolute path of an extent's file, for lazy scanning (validated to stay inside the
    /// cluster directory).
    pub fn extent_path(&self, ext: &ExtentInfo) -> Result<PathBuf> {
        let rel = Path::new(&ext.file);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(RuntimeError::Internal(format!("extent '{}' has an invalid file path '{}'", ext.id, ext.file)));
        }
        Ok(self.root.join(rel))
    }

    /// Reads a whole extent; fields keep their `kusto.type` metadata.
    /// Reads an extent's batches. A missing file is an `Io` error of kind NotFound (a commit of
    /// another process may just have dropped it); any other failure names the extent and its
    /// file relative to the cluster directory.
    pub fn read_extent(&self, ext: &ExtentInfo) -> Result<Vec<RecordBatch>> {
        let path = self.extent_path(ext)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e.into()),
            Err(e) => return Err(self.extent_error(ext, &e.to_string())),
        };
        let file = self.layer_file(ext, file)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, self.reader_options(ext)?)
            .map_err(|e| self.extent_error(ext, &e.to_string()))?
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| self.extent_error(ext, &e.to_string()))?;
        reader.map(|b| b.map_err(|e| self.extent_error(ext, &e.to_string()))).collect()
    }

    fn extent_error(&self, ext: &ExtentInfo, e: &str) -> RuntimeError {
        RuntimeError::Internal(format!("cannot read extent '{}' ('{}' in the cluster directory): {e}", ext.id, ext.file))
    }

    /// The Arrow schema stored in an extent (with field metadata), without reading its data.
    pub fn extent_schema(&self, ext: &ExtentInfo) -> Result<SchemaRef> {
        let file = self.layer_file(ext, File::open(self.extent_path(ext)?)?)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, self.reader_options(ext)?).map_err(parquet_err)?;
        Ok(builder.schema().clone())
    }

    /// How to open an extent: with its DEK when it is encrypted (the keyring learns its wrapped
    /// key from the extent's description).
    pub fn reader_options(&self, ext: &ExtentInfo) -> Result<ArrowReaderOptions> {
        let options = ArrowReaderOptions::new();
        Ok(match self.decryption(ext)? {
            Some(d) => options.with_file_decryption_properties(d),
            None => options,
        })
    }

    /// An extent's file read through its second layer, if it has one.
    pub fn layer_file(&self, ext: &ExtentInfo, file: File) -> Result<crate::keys::layer::LayerFile> {
        let key = match (&ext.layer_key, &self.keyring) {
            (None, _) => None,
            (Some(w), Some(k)) => {
                k.remember_layer(&ext.id, w);
                k.layer_key(&ext.id).map_err(key_error)?
            }
            (Some(_), None) => {
                return Err(RuntimeError::Internal(format!(
                    "extent '{}' is double-encrypted, but the cluster's key configuration (encryption.json) is missing",
                    ext.id
                )));
            }
        };
        crate::keys::layer::LayerFile::new(file, key).map_err(|e| self.extent_error(ext, &e.to_string()))
    }

    /// How to decrypt an extent (None: a plaintext extent); the keyring learns its wrapped key.
    pub fn decryption(&self, ext: &ExtentInfo) -> Result<Option<Arc<datafusion::parquet::encryption::decrypt::FileDecryptionProperties>>> {
        match (&ext.key, &self.keyring) {
            (None, _) => Ok(None),
            (Some(w), Some(k)) => {
                k.check_not_suspended().map_err(key_error)?;
                k.remember(&ext.id, w);
                Ok(Some(k.decryption().map_err(key_error)?))
            }
            (Some(_), None) => Err(RuntimeError::Internal(format!(
                "extent '{}' is encrypted, but the cluster's key configuration (encryption.json) is missing",
                ext.id
            ))),
        }
    }

    /// Removes extent files whose id is not in `live` and every leftover temporary file.
    /// Returns the number of files removed. Takes the writer lock it needs (`_lock`): no
    /// writer of any process can then have a file in flight.
    pub fn garbage_collect(&self, live: &HashSet<String>, _lock: &WriterLock) -> Result<usize> {
        let mut removed = 0;
        for dir in [self.root.clone(), self.root.join(EXTENTS_DIR)] {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let in_extents = dir != self.root;
            let mut changed = false;
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let stale = if name.starts_with(TMP_PREFIX) {
                    true
                } else if in_extents {
                    match name.strip_suffix(&format!(".{EXTENT_EXT}")) {
                        Some(id) => !live.contains(id),
                        None => false,
                    }
                } else {
                    false
                };
                if stale {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                    changed = true;
                }
            }
            if changed {
                sync_dir(&dir)?;
            }
        }
        Ok(removed)
    }

    fn write_json_atomically<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value)
            .map_err(|e| RuntimeError::Internal(format!("cannot serialize metadata: {e}")))?;
        self.write_atomically(path, &text)
    }

    fn write_atomically(&self, path: &Path, text: &[u8]) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{name}", uuid::Uuid::new_v4().simple()));
        let result = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(text)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, path)?;
            sync_dir_io(dir)
        })()
        .map_err(|e| self.io_error("commit", name, e));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// The directory's writer lock, held while the value lives.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

/// See [`Storage::metadata_stamp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataStamp {
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// A streaming write of one extent; see [`Storage::extent_writer`].
pub struct ExtentWriter {
    writer: Option<ArrowWriter<crate::keys::layer::LayerWriter>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    id: String,
    file: String,
    rows: u64,
    original_size: u64,
    key: Option<WrappedKey>,
    layer_key: Option<WrappedKey>,
}

impl ExtentWriter {
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| RuntimeError::Internal("extent writer already finished".into()))?;
        writer.write(batch).map_err(parquet_err)?;
        self.rows += batch.num_rows() as u64;
        self.original_size += batch.get_array_memory_size() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes, fsyncs and renames the file into place; returns the extent's description.
    pub fn finish(mut self) -> Result<ExtentInfo> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| RuntimeError::Internal("extent writer already finished".into()))?;
        let file = writer.into_inner().map_err(parquet_err)?.into_file();
        let io = |e: std::io::Error| RuntimeError::Internal(format!("cannot write extent '{}' ('{}' in the cluster directory): {e}", self.id, self.file));
        file.sync_all().map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        drop(file);
        fs::rename(&self.tmp_path, &self.final_path).map_err(io)?;
        sync_dir_io(&self.dir).map_err(io)?;
        let mut info = ExtentInfo::new(self.id.clone(), self.file.clone(), self.rows, bytes, self.original_size);
        info.key = self.key.take();
        info.layer_key = self.layer_key.take();
        Ok(info)
    }
}

impl Drop for ExtentWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Abandoned before `finish`: the temporary file was never referenced.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// How extents are encoded: zstd (level 1: fast to decode, a third of snappy's size on the
/// generated table), row groups of [`ROW_GROUP_ROWS`], statistics per page with the page
/// index, dictionary encoding (Parquet's default, which falls back to plain encoding for a
/// column whose dictionary grows past its limit: low-cardinality strings stay dictionaries).
/// With `encryption`, Parquet modular encryption: footer and columns under the extent's DEK.
fn extent_writer_properties(encryption: Option<Arc<datafusion::parquet::encryption::encrypt::FileEncryptionProperties>>) -> WriterProperties {
    let builder = WriterProperties::builder();
    let builder = match encryption {
        Some(e) => builder.with_file_encryption_properties(e),
        None => builder,
    };
    builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true)
        .set_created_by(format!("kustodian {}", env!("CARGO_PKG_VERSION")))
        .build()
}

fn sync_dir(dir: &Path) -> Result<()> {
    Ok(sync_dir_io(dir)?)
}

fn sync_dir_io(dir: &Path) -> std::io::Result<()> {
    // Directories can be opened read-only and fsynced on Unix; elsewhere this is best effort.
    match File::open(dir) {
        Ok(f) => {
            #[cfg(unix)]
            f.sync_all()?;
            #[cfg(not(unix))]
            drop(f);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn parquet_err(e: datafusion::parquet::errors::ParquetError) -> RuntimeError {
    RuntimeError::Internal(format!("parquet: {e}"))
}
