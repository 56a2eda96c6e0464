//! Kusto-style ingestion of CSV (and other delimited formats), JSON and Parquet into a table of
//! a given [`KqlSchema`].
//!
//! Semantics (as Kusto's ingestion without a mapping):
//! - The format is the `format` property's; without one, a file's format is told from its
//!   content: Parquet (starts and ends with the magic bytes `PAR1`), JSON (starts with `{` or
//!   `[` after a BOM and whitespace), else CSV. Inline data is CSV unless `format` says
//!   otherwise. A declared format the content contradicts (`csv` on a Parquet file, `parquet`
//!   on anything else) is refused with `BadRequest_InvalidBlob`.
//! - Delimited formats map fields to the table's columns **by position**: missing trailing
//!   fields are null, fields beyond the table's columns are ignored. Every record must have
//!   as many fields as the first (`Stream_WrongNumberOfFields`), unless the `validationPolicy`
//!   property says otherwise; an unclosed quote is `Stream_ClosingQuoteMissing`; see
//!   [`delimited`] for the quoting rules. Blank lines are skipped; CRLF and LF line ends and a
//!   leading UTF-8 BOM are accepted.
//! - JSON (`json`, `multijson`): a stream of JSON objects (one per line or spread over lines)
//!   or one top-level array of objects; properties map to columns **by name** (case-sensitive);
//!   missing properties are null, extra ones ignored. `dynamic` columns keep nested values as
//!   JSON text. A record that is not an object, or malformed JSON, is `BadRequest_InvalidBlob`.
//! - Parquet: columns map by name (exact, then case-insensitive) and are cast to the table's
//!   types; missing columns are null. A corrupt or truncated file is `BadRequest_InvalidBlob`.
//! - Text must be UTF-8: other bytes fail the ingestion (see [`errors::IngestErrorCode`]).
//! - A value that does not convert to its column's type is stored as null (one bad value does
//!   not fail the ingestion) and counted in the [`IngestSummary`], with the first examples; an
//!   empty field is `""` for `string` columns and null otherwise (not a failure). See
//!   [`convert`] for the accepted spellings of each type.
//! - A failed ingestion returns an error and hands nothing on: the caller commits nothing.
//!
//! Readers stream: the input is read once, in 64k-row batches handed to a sink, so a caller
//! can write extents as it goes ([`ingest_file_with`]); [`ingest_file`] collects them. How far
//! a file has got goes to the [`Progress`] callback of the options, if any (see [`progress`]).

pub mod builder;
pub mod convert;
mod delimited;
pub mod mapping;
pub mod errors;
mod json;
mod parquet;
pub mod progress;
pub mod roots;
pub mod summary;

pub use errors::{IngestErrorCode, IngestionFailure, error_code};
pub use progress::{Progress, ProgressEvent, ProgressUnit};
pub use roots::IngestionRoots;
pub use summary::{ConversionFailure, IngestSummary, MalformedRecord, command_result};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::types::KqlSchema;

use crate::error::{Result, RuntimeError};
use progress::{FileProgress, ProgressRead};

/// The magic bytes at both ends of a Parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

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
                return Err(IngestErrorCode::FormatNotSupported.error(format!(
                    "ingestion format '{name}' is not supported; supported formats: {SUPPORTED}"
                )));
            }
            _ => {
                return Err(IngestErrorCode::FormatNotSupported.error(format!(
                    "unknown ingestion format '{name}'; supported formats: {SUPPORTED}"
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

/// Which validation delimited records go through (Kusto's `ValidationOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationOptions {
    /// None: records map by position whatever their number of fields.
    DoNotValidate,
    /// Every record has as many fields as the first.
    #[default]
    ValidateCsvInputConstantColumns,
}

/// What a failed validation does (Kusto's `ValidationImplications`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationImplications {
    /// The ingestion fails.
    #[default]
    Fail,
    /// The record is ingested anyway (by position) and counted in the summary.
    BestEffort,
}

/// Kusto's `validationPolicy` ingestion property. The default validates constant field
/// counts and fails, which is what Kusto does to CSV with inconsistent numbers of fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidationPolicy {
    pub options: ValidationOptions,
    pub implications: ValidationImplications,
}

impl ValidationPolicy {
    /// Parses the property's JSON: `{"ValidationOptions": 1, "ValidationImplications": 0}`,
    /// values as numbers or names (case-insensitive keys and names), either key optional.
    pub fn parse(text: &str) -> Result<ValidationPolicy> {
        let bad = |why: &str| {
            RuntimeError::bad_request(format!(
                "ingestion property validationPolicy {why}: expected JSON such as {{\"ValidationOptions\": 1, \"ValidationImplications\": 0}} (ValidationOptions: 0 DoNotValidate, 1 ValidateCsvInputConstantColumns; ValidationImplications: 0 Fail, 1 BestEffort)"
            ))
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("is not JSON"))?;
        let obj = value.as_object().ok_or_else(|| bad("is not a JSON object"))?;
        let mut policy = ValidationPolicy::default();
        for (key, v) in obj {
            let code = match v {
                serde_json::Value::Number(n) => n.as_u64().map(|n| n.to_string()),
                serde_json::Value::String(s) => Some(s.to_ascii_lowercase()),
                _ => None,
            }
            .ok_or_else(|| bad(&format!("has a {key} that is neither a number nor a name")))?;
            match key.to_ascii_lowercase().as_str() {
                "validationoptions" => {
                    policy.options = match code.as_str() {
                        "0" | "donotvalidate" => ValidationOptions::DoNotValidate,
                        "1" | "validatecsvinputconstantcolumns" => ValidationOptions::ValidateCsvInputConstantColumns,
                        "2" | "validatecsvinputcolumnlevelonly" => {
                            return Err(RuntimeError::bad_request(
                                "ingestion property validationPolicy: ValidationOptions ValidateCsvInputColumnLevelOnly is not supported",
                            ));
                        }
                        _ => return Err(bad(&format!("has an unknown ValidationOptions '{code}'"))),
                    }
                }
                "validationimplications" => {
                    policy.implications = match code.as_str() {
                        "0" | "fail" => ValidationImplications::Fail,
                        "1" | "besteffort" => ValidationImplications::BestEffort,
                        _ => return Err(bad(&format!("has an unknown ValidationImplications '{code}'"))),
                    }
                }
                _ => return Err(bad(&format!("has an unknown key '{key}'"))),
            }
        }
        Ok(policy)
    }
}

/// Options of one ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOptions {
    /// The declared format (`format`); `None`: told from a file's content, CSV for inline data.
    pub format: Option<Format>,
    /// Skip the first record (a header line) of a delimited file.
    pub ignore_first_record: bool,
    /// Receives the progress of each file read (none by default); inline data reports none.
    pub progress: Option<Progress>,
    /// How delimited records are validated (`validationPolicy`).
    pub validation: ValidationPolicy,
    /// An inline mapping (`ingestionMapping`, `csvMapping`, `jsonMapping`): its JSON text.
    pub mapping_text: Option<String>,
    /// A mapping of the table by name (`ingestionMappingReference`).
    pub mapping_reference: Option<String>,
    /// The mapping's kind (`ingestionMappingKind`; else the format's).
    pub mapping_kind: Option<String>,
    /// Tags of the new extent (`tags`: a JSON array of strings).
    pub tags: Vec<String>,
    /// Skip the ingestion if the table has an extent tagged `ingest-by:` one of these
    /// (`ingestIfNotExists`: a JSON array of strings).
    pub ingest_if_not_exists: Vec<String>,
}

/// A JSON array of strings (`tags`, `ingestIfNotExists`).
fn string_list(name: &str, value: &str) -> Result<Vec<String>> {
    serde_json::from_str::<Vec<String>>(value)
        .map_err(|e| RuntimeError::bad_request(format!("ingestion property {name} must be a JSON array of strings: {e}")))
}

/// Reads the `with (...)` properties of an ingestion command (names case-insensitive):
/// `format`, `ignoreFirstRecord` and `validationPolicy`. Mapping properties are rejected as not
/// supported; other Kusto properties (`tags`, `creationTime`, ...) are accepted and ignored.
pub fn options_from_properties(props: &[(String, String)]) -> Result<IngestOptions> {
    let mut opts = IngestOptions::default();
    for (name, value) in props {
        let value = unquote(value);
        match name.to_ascii_lowercase().as_str() {
            "format" => opts.format = Some(Format::from_name(value)?),
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
            "validationpolicy" => opts.validation = ValidationPolicy::parse(value)?,
            "ingestionmapping" => opts.mapping_text = Some(value.to_string()),
            "csvmapping" => {
                opts.mapping_text = Some(value.to_string());
                opts.mapping_kind = Some("csv".into());
            }
            "jsonmapping" => {
                opts.mapping_text = Some(value.to_string());
                opts.mapping_kind = Some("json".into());
            }
            "ingestionmappingreference" | "csvmappingreference" | "jsonmappingreference" => opts.mapping_reference = Some(value.to_string()),
            "ingestionmappingkind" | "ingestionmappingtype" => opts.mapping_kind = Some(value.to_ascii_lowercase()),
            "avromapping" | "avromappingreference" => {
                return Err(RuntimeError::bad_request(format!("ingestion property '{name}' is not supported: Avro is not an ingestion format here")));
            }
            "tags" => opts.tags = string_list(name, value)?,
            "ingestifnotexists" => opts.ingest_if_not_exists = string_list(name, value)?,
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

/// The batches of an ingestion and what it did.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub batches: Vec<RecordBatch>,
    pub summary: IngestSummary,
}

/// The source name of inline data in summaries and failures.
pub const INLINE_SOURCE: &str = "inline";

/// `.ingest inline into table T [with (...)] <| ...`: the text as `opts.format` (CSV when
/// none: inline data is text, so it is never told from its content) into batches of `schema`.
pub fn ingest_inline(text: &str, schema: &KqlSchema, opts: &IngestOptions) -> Result<Ingested> {
    let format = opts.format.unwrap_or(Format::Csv);
    if format == Format::Parquet {
        return Err(IngestErrorCode::InvalidBlob.error("inline data is text and cannot be Parquet; use .ingest into with a Parquet file"));
    }
    let mut batches = Vec::new();
    let mut summary = IngestSummary::for_source(INLINE_SOURCE);
    let rows = read_text(text.as_bytes(), schema, format, opts, &mut summary, &mut |b| {
        batches.push(b);
        Ok(())
    })?;
    summary.finish_source(format.name(), rows);
    Ok(Ingested { batches, summary })
}

/// Ingests a file, collecting all batches.
pub fn ingest_file(path: &Path, schema: &KqlSchema, opts: &IngestOptions) -> Result<Ingested> {
    let mut batches = Vec::new();
    let summary = ingest_file_with(path, schema, opts, &mut |b| {
        batches.push(b);
        Ok(())
    })?;
    Ok(Ingested { batches, summary })
}

/// Ingests a file, streaming batches of about 64k rows into `sink` (e.g. an extent writer).
/// On error the batches already handed to `sink` must be discarded.
pub fn ingest_file_with(
    path: &Path,
    schema: &KqlSchema,
    opts: &IngestOptions,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<IngestSummary> {
    let mut summary = IngestSummary::for_source(&path.display().to_string());
    read_file(path, schema, opts, &mut summary, sink).map_err(|e| in_source(e, path))?;
    Ok(summary)
}

fn read_file(
    path: &Path,
    schema: &KqlSchema,
    opts: &IngestOptions,
    summary: &mut IngestSummary,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => IngestErrorCode::SourceNotFound.error("the ingestion source does not exist"),
        _ => RuntimeError::bad_request(format!("cannot open the ingestion source: {e}")),
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let format = resolve_format(opts.format, sniff(&mut file, len)?)?;
    file.seek(SeekFrom::Start(0))?;
    let progress = opts.progress.as_ref().map(|p| FileProgress::new(p, path, len));
    let result = if format == Format::Parquet {
        parquet::read_parquet(file, schema, progress.as_ref(), summary, sink)
    } else {
        match &progress {
            Some(p) => {
                p.start(ProgressUnit::Bytes, len);
                read_text(ProgressRead::new(file, p), schema, format, opts, summary, sink)
            }
            None => read_text(file, schema, format, opts, summary, sink),
        }
    };
    if let Some(p) = &progress {
        p.finish();
    }
    summary.finish_source(format.name(), result?);
    Ok(())
}

/// Names the source in a bad request's message, after its error code.
fn in_source(e: RuntimeError, path: &Path) -> RuntimeError {
    match e {
        RuntimeError::BadRequest(m) => {
            let code = errors::error_code(&RuntimeError::BadRequest(m.clone()));
            match m.strip_prefix(code).and_then(|r| r.strip_prefix(": ")) {
                Some(rest) => RuntimeError::BadRequest(format!("{code}: ingesting '{}': {rest}", path.display())),
                None => RuntimeError::BadRequest(format!("ingesting '{}': {m}", path.display())),
            }
        }
        other => other,
    }
}

/// What a file's first and last bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Starts with `PAR1`; `complete` when it also ends with it (else it is cut short).
    Parquet { complete: bool },
    /// Starts with `{` or `[` after a BOM and whitespace.
    Json,
    /// Anything else, an empty file included.
    Text,
}

/// Reads the start (up to the first non-blank byte) and the end of `file`.
fn sniff(file: &mut File, len: u64) -> Result<Content> {
    let mut buf = vec![0u8; 8192];
    let mut first = true;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(Content::Text);
        }
        let mut chunk = &buf[..n];
        if first {
            first = false;
            if chunk.starts_with(PARQUET_MAGIC) {
                let mut tail = [0u8; 4];
                let complete = len >= 8 && {
                    file.seek(SeekFrom::End(-4))?;
                    file.read_exact(&mut tail)?;
                    &tail == PARQUET_MAGIC
                };
                return Ok(Content::Parquet { complete });
            }
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        if let Some(&b) = chunk.iter().find(|b| !b.is_ascii_whitespace()) {
            return Ok(if b == b'{' || b == b'[' { Content::Json } else { Content::Text });
        }
    }
}

/// The format to read: the declared one when the content agrees, else the detected one.
fn resolve_format(declared: Option<Format>, content: Content) -> Result<Format> {
    match (declared, content) {
        (_, Content::Parquet { complete: false }) => Err(IngestErrorCode::InvalidBlob.error(
            "the file starts with the Parquet magic bytes PAR1 but does not end with them: a truncated Parquet file",
        )),
        (None | Some(Format::Parquet), Content::Parquet { complete: true }) => Ok(Format::Parquet),
        (Some(Format::Parquet), Content::Json | Content::Text) => Err(IngestErrorCode::InvalidBlob.error(
            "format 'parquet' was declared but the file is not Parquet (it does not start with the magic bytes PAR1)",
        )),
        (Some(f), Content::Parquet { complete: true }) => Err(IngestErrorCode::InvalidBlob.error(format!(
            "format '{}' was declared but the file is Parquet (it starts and ends with the magic bytes PAR1); declare format='parquet' or no format",
            f.name()
        ))),
        (Some(f), _) => Ok(f),
        (None, Content::Json) => Ok(Format::Json),
        (None, Content::Text) => Ok(Format::Csv),
    }
}

/// Reads delimited or JSON data (not Parquet, which needs a seekable file).
fn read_text<R: Read>(
    reader: R,
    schema: &KqlSchema,
    format: Format,
    opts: &IngestOptions,
    summary: &mut IngestSummary,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    match format {
        Format::Json => json::read_json(reader, schema, summary, sink),
        Format::Parquet => Err(RuntimeError::Internal("parquet data read as text".into())),
        other => match other.delimiter() {
            Some(delimiter) => {
                let d = delimited::DelimitedOptions {
                    delimiter,
                    ignore_first_record: opts.ignore_first_record,
                    validation: opts.validation,
                };
                delimited::read_delimited(reader, schema, &d, summary, sink)
            }
            None => Err(RuntimeError::Internal(format!("format {} has no delimiter", other.name()))),
        },
    }
}
