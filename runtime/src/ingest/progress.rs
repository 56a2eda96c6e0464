//! How far an ingestion has got, reported to a callback its caller chooses. The library draws
//! nothing: the `kustodian` binary turns these events into a progress bar on stderr, a server
//! could send them to its client, and a caller that sets no callback pays nothing.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// What a file's progress is counted in: bytes for the text formats (read as a stream),
/// rows for Parquet (read by row groups, whose total the file's footer gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    Bytes,
    Rows,
}

/// One step of the ingestion of one file. Files are read one after the other, each
/// `Started`, then `Advanced` any number of times, then `Finished` (also when it failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// Reading `source` starts: `total` units to read. `size` is the file's length in bytes
    /// whatever the unit, so a caller can leave small files alone.
    Started { source: &'a Path, size: u64, unit: ProgressUnit, total: u64 },
    /// `done` (never decreasing) of the `total` units of `source` are read.
    Advanced { source: &'a Path, done: u64 },
    /// `source` is read, or its reading failed.
    Finished { source: &'a Path },
}

/// The callback that receives an ingestion's [`ProgressEvent`]s (set in
/// [`IngestOptions::progress`](super::IngestOptions::progress), or for every `.ingest` of a
/// cluster with `Cluster::with_ingestion_progress`). It is called on the ingesting thread,
/// often (once per read of a text file), so it should return quickly.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(ProgressEvent<'_>) + Send + Sync>);

impl Progress {
    pub fn new(report: impl Fn(ProgressEvent<'_>) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(report))
    }

    pub fn report(&self, event: ProgressEvent<'_>) {
        (self.0)(event)
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Two callbacks are equal when they are the same one (options compare by what they hold).
impl PartialEq for Progress {
    fn eq(&self, other: &Progress) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Progress {}

/// The progress of one file: sends `Finished` only for a file that was `Started` (a file
/// refused before its reading starts reports nothing).
pub(super) struct FileProgress<'a> {
    progress: &'a Progress,
    source: &'a Path,
    size: u64,
    started: Cell<bool>,
}

impl<'a> FileProgress<'a> {
    pub(super) fn new(progress: &'a Progress, source: &'a Path, size: u64) -> Self {
        FileProgress { progress, source, size, started: Cell::new(false) }
    }

    pub(super) fn start(&self, unit: ProgressUnit, total: u64) {
        self.started.set(true);
        self.progress.report(ProgressEvent::Started { source: self.source, size: self.size, unit, total });
    }

    pub(super) fn advance(&self, done: u64) {
        self.progress.report(ProgressEvent::Advanced { source: self.source, done });
    }

    pub(super) fn finish(&self) {
        if self.started.replace(false) {
            self.progress.report(ProgressEvent::Finished { source: self.source });
        }
    }
}

/// A reader that reports the bytes read through it.
pub(super) struct ProgressRead<'a, R> {
    inner: R,
    progress: &'a FileProgress<'a>,
    done: u64,
}

impl<'a, R> ProgressRead<'a, R> {
    pub(super) fn new(inner: R, progress: &'a FileProgress<'a>) -> Self {
        ProgressRead { inner, progress, done: 0 }
    }
}

impl<R: Read> Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.advance(self.done);
        Ok(n)
    }
}
