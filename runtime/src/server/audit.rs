//! The audit log: one JSON line per request, appended to a file.
//!
//! A line says who asked what, from where, and how it ended: time, activity id, client
//! address, principal, database, the SHA-256 of the request text (not the text: it may hold
//! literals as sensitive as the data), kind, the tables read, the row-level security
//! policies applied, the outcome and the duration. Never rows, never the token.
//!
//! Appends are safe from many tasks and many processes: the file is opened with `O_APPEND`
//! and each line is one `write` of the whole line, so lines never interleave; a write that
//! would be short is reported, not continued (a continuation could land after another
//! writer's line).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Whether the request was a query or a management command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    Query,
    Command,
    /// A use of an encryption key (wrap, unwrap, rotation, suspension...): `text_sha256` is
    /// of the event's description, `outcome.code` the event or the error.
    Key,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The HTTP status sent.
    pub status: u16,
    /// `Succeeded`, or the error code (`Forbidden`, `Unauthorized`, `BadRequest_SyntaxError`...).
    pub code: String,
}

impl Outcome {
    pub fn succeeded() -> Outcome {
        Outcome { status: 200, code: "Succeeded".into() }
    }

    pub fn failed(status: u16, code: impl Into<String>) -> Outcome {
        Outcome { status, code: code.into() }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub activity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// The caller's address as the network policy determined it.
    pub client_address: Option<IpAddr>,
    /// The caller's canonical FQN; None when authentication failed or was not reached.
    pub principal: Option<String>,
    pub database: Option<String>,
    /// SHA-256 of the request text, hex.
    pub text_sha256: String,
    pub kind: RequestKind,
    /// `database.table` for every table read, policies included.
    pub tables: Vec<String>,
    /// `database.table` for every table whose row-level security policy was applied.
    pub policies: Vec<String>,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// Set when the record was too long for one line and its lists were dropped.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// For a key event: the event, the key version, what it was for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_event: Option<KeyEvent>,
}

/// A use of an encryption key, as an audit record holds it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEvent {
    pub event: String,
    pub key: Option<String>,
    pub subject: Option<String>,
}

/// Lower-case hex SHA-256 of a request's text.
pub fn text_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditRecord {
    /// A record of a request, stamped now; the remaining fields are the caller's to fill.
    pub fn new(activity_id: impl Into<String>, text: &str, kind: RequestKind, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            activity_id: activity_id.into(),
            client_request_id: None,
            client_address: None,
            principal: None,
            database: None,
            text_sha256: text_digest(text),
            kind,
            tables: Vec::new(),
            policies: Vec::new(),
            outcome,
            duration_ms: 0,
            truncated: false,
            key_event: None,
        }
    }

    /// The record cut down to fit a line: lists dropped, caller-supplied strings shortened.
    fn shrunk(&self) -> AuditRecord {
        let cut = |s: &Option<String>, n: usize| s.as_ref().map(|s| s.chars().take(n).collect());
        AuditRecord {
            client_request_id: cut(&self.client_request_id, 256),
            principal: cut(&self.principal, 512),
            database: cut(&self.database, 256),
            tables: Vec::new(),
            policies: Vec::new(),
            outcome: Outcome { status: self.outcome.status, code: self.outcome.code.chars().take(256).collect() },
            truncated: true,
            ..self.clone()
        }
    }
}

/// An append-only audit log file.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
}

/// The longest line written: a longer record is written shrunk (its table and policy lists
/// dropped), so that a line stays one small write that no file system splits.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

impl AuditLog {
    /// Opens (creating, mode 0600) the log for appending.
    pub fn open(path: &Path) -> io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(AuditLog { file: options.open(path)?, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line with one write. Blocking (a small local write): from
    /// async code it is fine inline or in `spawn_blocking`.
    pub fn append(&self, record: &AuditRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        if line.len() >= MAX_LINE_BYTES {
            line = serde_json::to_vec(&record.shrunk()).map_err(io::Error::other)?;
        }
        line.push(b'\n');
        // `&File` writes need no lock: O_APPEND positions each write at the end atomically.
        let written = (&self.file).write(&line)?;
        if written != line.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short audit write: {written} of {} bytes", line.len())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type R = Result<(), Box<dyn std::error::Error>>;

    fn record(i: usize) -> AuditRecord {
        let mut r = AuditRecord::new(format!("act-{i}"), "SecretTable | where Password == 'hunter2'", RequestKind::Query, Outcome::succeeded());
        r.client_address = Some(IpAddr::from([127, 0, 0, 1]));
        r.principal = Some("aaduser=alice@contoso.com".into());
        r.database = Some("Samples".into());
        r.tables = vec!["Samples.SecretTable".into()];
        r.policies = vec!["Samples.SecretTable".into()];
        r.duration_ms = i as u64;
        r
    }

    #[test]
    fn one_line_per_record_without_the_text() -> R {
        let dir = tempfile::tempdir()?;
        let log = AuditLog::open(&dir.path().join("sub").join("audit.log"))?;
        log.append(&record(1))?;
        let mut failed = AuditRecord::new("act-2", ".show tables", RequestKind::Command, Outcome::failed(403, "Forbidden"));
        failed.client_request_id = Some("KPC.execute;1".into());
        log.append(&failed)?;
        let text = std::fs::read_to_string(log.path())?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0])?;
        assert_eq!(first["activity_id"], "act-1");
        assert_eq!(first["kind"], "query");
        assert_eq!(first["client_address"], "127.0.0.1");
        assert_eq!(first["outcome"]["code"], "Succeeded");
        assert_eq!(first["text_sha256"], text_digest("SecretTable | where Password == 'hunter2'"));
        assert_eq!(first["text_sha256"].as_str().map(str::len), Some(64));
        assert!(!text.contains("hunter2"), "the request text is never logged");
        let second: serde_json::Value = serde_json::from_str(lines[1])?;
        assert_eq!(second["outcome"]["status"], 403);
        assert_eq!(second["kind"], "command");
        assert!(second["principal"].is_null());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(log.path())?.permissions().mode() & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn concurrent_writers_never_interleave() -> R {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        // Separate opens stand for separate processes (each has its own file description);
        // threads share one of them as tasks would.
        let logs: Vec<Arc<AuditLog>> = (0..4).map(|_| AuditLog::open(&path).map(Arc::new)).collect::<io::Result<_>>()?;
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = logs[t % logs.len()].clone();
                s.spawn(move || {
                    for i in 0..250 {
                        let mut r = record(t * 1000 + i);
                        // Vary the length so that torn writes would show.
                        r.tables = (0..(i % 7)).map(|k| format!("Db.Table{k}")).collect();
                        let _ = log.append(&r);
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path)?;
        let mut ids = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            ids.insert(v["activity_id"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(ids.len(), 8 * 250);
        assert_eq!(text.lines().count(), 8 * 250);
        Ok(())
    }

    #[test]
    fn oversized_records_are_shrunk_not_lost() -> R {
        let dir = tempfile::tempdir()?;
        let log = AuditLog::open(&dir.path().join("a.log"))?;
        let mut r = record(0);
        r.tables = vec!["x".repeat(MAX_LINE_BYTES)];
        r.client_request_id = Some("y".repeat(MAX_LINE_BYTES));
        log.append(&r)?;
        let text = std::fs::read_to_string(log.path())?;
        assert!(text.len() < 2048, "{}", text.len());
        let v: serde_json::Value = serde_json::from_str(text.trim_end())?;
        assert_eq!(v["truncated"], true);
        assert_eq!(v["activity_id"], "act-0");
        assert_eq!(v["tables"], serde_json::json!([]));
        Ok(())
    }
}
