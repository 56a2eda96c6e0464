//! Kusto-style ingestion of CSV (and other delimited formats), JSON and Parquet into a table of
//! a given [`KqlSchema`].
//!
//! Semantics (as Kusto's ingestion without a mapping):
//! - Delimited formats map fields to the table's columns **by position**. Missing trailing
//!   fields are null; fields beyond the table's columns are ignored. Blank lines are skipped.
//!   Quoting is CSV's: a field in double quotes may hold delimiters and newlines, `""` is a
//!   quote. CRLF and LF line ends and a leading UTF-8 BOM are accepted.
//! - JSON (`json`, `multijson`): a stream of JSON objects (one per line or spread over lines)
//!   or one top-level array of objects; properties map to columns **by name** (case-sensitive);
//!   missing properties are null, extra ones ignored. `dynamic` columns keep nested values as
//!   JSON text. A record that is not an object is an error.
//! - Parquet: columns map by name (exact, then case-insensitive) and are cast to the table's
//!   types; missing columns are null.
//! - A value that does not convert to its column's type is stored as null (one bad value does
//!   not fail the ingestion); an empty field is `""` for `string` columns and null otherwise.
//!   See [`convert`] for the accepted spellings of each type.
//!
//! Readers stream: the input is read once, in 64k-row batches handed to a sink, so a caller
//! can write extents as it goes ([`ingest_file_with`]); [`ingest_file`] collects them.

pub mod builder;
pub mod convert;
mod delimited;
mod json;
mod parquet;
pub mod roots;

pub use roots::IngestionRoots;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kustodian_planner::types::KqlSchema;

use crate::error::{Result, RuntimeError};

/// Inputs larger than this show a progress bar when [`IngestOptions::progress`] is set.
pub const PROGRESS_THRESHOLD_BYTES: u64 = 8 * 1024 * 1024;

/// An ingestion data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values.
    Csv,
    /// Tab-separated values (CSV quoting rules).
    Tsv,
    /// Pipe-separated values.
    Psv,
    /// Semicolon-separated values.
    Scsv,
    /// SOH (`\x01`)-separated values.
    Sohsv,
    /// JSON objects: JSON lines, objects spread over several lines, or one top-level array.
    Json,
    Parquet,
}

impl Format {
    /// Parses a Kusto format name (case-insensitive): `csv`, `tsv`, `psv`, `scsv`, `sohsv`,
    /// `json`, `multijson`, `parquet`.
    pub fn from_name(s: &str) -> Result<Format> {
        let name = s.trim().trim_matches(|c| c == '\'' || c == '"');
        Ok(match name.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "psv" => Format::Psv,
            "scsv" => Format::Scsv,
            "sohsv" => Format::Sohsv,
            "json" | "multijson" => Format::Json,
            "parquet" => Format::Parquet,
            "avro" | "apacheavro" | "orc" | "txt" | "raw" | "tsve" | "w3clogfile" | "singlejson" | "azmonstream" => {
                return Err(RuntimeError::bad_request(format!(
                    "ingestion format '{name}' is not supported; supported formats: {}",
                    SUPPORTED
                )));
            }
            _ => {
                return Err(RuntimeError::bad_request(format!(
                    "unknown ingestion format '{name}'; supported formats: {}",
                    SUPPORTED
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Psv => "psv",
            Format::Scsv => "scsv",
            Format::Sohsv => "sohsv",
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }

    fn delimiter(self) -> Option<u8> {
        match self {
            Format::Csv => Some(b','),
            Format::Tsv => Some(b'\t'),
            Format::Psv => Some(b'|'),
            Format::Scsv => Some(b';'),
            Format::Sohsv => Some(0x01),
            Format::Json | Format::Parquet => None,
        }
    }
}

const SUPPORTED: &str = "csv, tsv, psv, scsv, sohsv, json, multijson, parquet";

/// Options of one ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    pub format: Format,
    /// Skip the first record (a header line) of a delimited file.
    pub ignore_first_record: bool,
    /// Show a progress bar on stderr for large inputs (hidden when stderr is not a terminal).
    pub progress: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { format: Format::Csv, ignore_first_record: false, progress: false }
    }
}

/// Reads the `with (...)` properties of an ingestion command (names case-insensitive):
/// `format` (default `csv`) and `ignoreFirstRecord`. Mapping properties are rejected as not
/// supported; other Kusto properties (`tags`, `creationTime`, ...) are accepted and ignored.
pub fn options_from_properties(props: &[(String, String)]) -> Result<IngestOptions> {
    let mut opts = IngestOptions::default();
    for (name, value) in props {
        let value = unquote(value);
        match name.to_ascii_lowercase().as_str() {
            "format" => opts.format = Format::from_name(value)?,
            "ignorefirstrecord" => {
                opts.ignore_first_record = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(RuntimeError::bad_request(format!(
                            "ingestion property ignoreFirstRecord must be true or false, not '{value}'"
                        )));
                    }
                }
            }
            "ingestionmapping" | "ingestionmappingreference" | "csvmapping" | "jsonmapping" | "avromapping" => {
                return Err(RuntimeError::bad_request(format!(
                    "ingestion property '{name}' is not supported: columns map by position (delimited formats) or by name (json, parquet)"
                )));
            }
            _ => {}
        }
    }
    Ok(opts)
}

fn unquote(s: &str) -> &str {
    let t = s.trim();
    for q in ['\'', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return &t[1..t.len() - 1];
        }
    }
    t
}

/// `.ingest inline into table T <| ...`: CSV records (no header) into batches of `schema`.
pub fn ingest_inline(text: &str, schema: &KqlSchema) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    ingest_reader(text.as_bytes(), schema, &IngestOptions::default(), &mut |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Ingests a file, collecting all batches.
pub fn ingest_file(path: &Path, schema: &KqlSchema, opts: &IngestOptions) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    ingest_file_with(path, schema, opts, &mut |b| {
        out.push(b);
        Ok(())
    })?;
    Ok(out)
}

/// Ingests a file, streaming batches of about 64k rows into `sink` (e.g. an extent writer).
/// Returns the number of rows ingested.
pub fn ingest_file_with(
    path: &Path,
    schema: &KqlSchema,
    opts: &IngestOptions,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let file = File::open(path).map_err(|e| {
        RuntimeError::bad_request(format!("cannot open ingestion source '{}': {e}", path.display()))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(opts.progress, len, path);
    let result = if opts.format == Format::Parquet {
        parquet::read_parquet(file, schema, bar.as_ref(), sink)
    } else {
        match &bar {
            Some(b) => ingest_reader(b.wrap_read(file), schema, opts, sink),
            None => ingest_reader(file, schema, opts, sink),
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.map_err(|e| match e {
        RuntimeError::BadRequest(m) => RuntimeError::BadRequest(format!("ingesting '{}': {m}", path.display())),
        other => other,
    })
}

/// Ingests a delimited or JSON stream (not Parquet, which needs a seekable file).
pub fn ingest_reader<R: Read>(
    reader: R,
    schema: &KqlSchema,
    opts: &IngestOptions,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    match opts.format {
        Format::Json => json::read_json(reader, schema, sink),
        Format::Parquet => Err(RuntimeError::bad_request("parquet data can only be ingested from a file")),
        other => match other.delimiter() {
            Some(d) => delimited::read_delimited(reader, schema, d, opts.ignore_first_record, sink),
            None => Err(RuntimeError::Internal(format!("format {} has no delimiter", other.name()))),
        },
    }
}

fn progress_bar(enabled: bool, len: u64, path: &Path) -> Option<ProgressBar> {
    if !enabled || len <= PROGRESS_THRESHOLD_BYTES {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    bar.set_message(format!("ingesting {name}"));
    Some(bar)
}
