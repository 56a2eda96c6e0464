//! Kusto's ingestion error codes, and the record of a failed ingestion (`.show ingestion failures`).
//!
//! An ingestion error is a [`RuntimeError::BadRequest`] whose message starts with the Kusto
//! error code, as Kusto's own messages do (`Stream_WrongNumberOfFields: ...`); [`error_code`]
//! reads it back, so callers keep one error type and `?` still works.

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The Kusto ingestion error codes this engine raises (names and meanings from Kusto's
/// "Ingestion error codes" and "Ingestion behavior of invalid data" pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestErrorCode {
    /// A delimited record whose number of fields differs from the first record's
    /// (Kusto's `ValidateCsvInputConstantColumns` validation; HRESULT 0x80DA0008).
    WrongNumberOfFields,
    /// A quoted field that is still open at the end of the data (HRESULT 0x80DA000B).
    ClosingQuoteMissing,
    /// The data is not of the declared (or detected) format: corrupt or truncated Parquet,
    /// Parquet declared on text or text declared on Parquet, malformed JSON.
    InvalidBlob,
    /// Bytes that are not UTF-8. Kusto documents no error code specific to encodings; this is
    /// the documented BadFormat code closest in meaning ("unexpected character in the input
    /// stream"), chosen over a code of our own so that clients matching Kusto's codes see one.
    UnexpectedCharacterInInputStream,
    /// A format name Kusto has but this engine does not read, or no format at all.
    FormatNotSupported,
    /// A source column whose type cannot convert to its table column's type.
    InconsistentMapping,
    /// A local source that does not exist.
    SourceNotFound,
}

impl IngestErrorCode {
    pub const ALL: [IngestErrorCode; 7] = [
        IngestErrorCode::WrongNumberOfFields,
        IngestErrorCode::ClosingQuoteMissing,
        IngestErrorCode::InvalidBlob,
        IngestErrorCode::UnexpectedCharacterInInputStream,
        IngestErrorCode::FormatNotSupported,
        IngestErrorCode::InconsistentMapping,
        IngestErrorCode::SourceNotFound,
    ];

    /// Kusto's spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestErrorCode::WrongNumberOfFields => "Stream_WrongNumberOfFields",
            IngestErrorCode::ClosingQuoteMissing => "Stream_ClosingQuoteMissing",
            IngestErrorCode::InvalidBlob => "BadRequest_InvalidBlob",
            IngestErrorCode::UnexpectedCharacterInInputStream => "BadRequest_UnexpectedCharacterInInputStream",
            IngestErrorCode::FormatNotSupported => "BadRequest_FormatNotSupported",
            IngestErrorCode::InconsistentMapping => "BadRequest_InconsistentMapping",
            IngestErrorCode::SourceNotFound => "Download_SourceNotFound",
        }
    }

    /// The error, as a bad request whose message starts with the code.
    pub fn error(self, details: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::BadRequest(format!("{}: {details}", self.as_str()))
    }

    fn of_message(message: &str) -> Option<IngestErrorCode> {
        let head = message.split(':').next()?;
        IngestErrorCode::ALL.into_iter().find(|c| c.as_str() == head)
    }
}

/// Kusto's code for a bad request that is not one of the ingestion codes above.
pub const GENERAL_BAD_REQUEST: &str = "General_BadRequest";
/// The code given to errors that are not the request's fault (I/O, internal errors). Kusto's
/// ingestion pages list no single code for these; this `General_` spelling follows
/// [`GENERAL_BAD_REQUEST`]'s family.
pub const GENERAL_INTERNAL_ERROR: &str = "General_InternalServerError";

/// The Kusto error code of an ingestion error: the code its message starts with, else
/// `Forbidden` for a refused permission, `General_BadRequest` for other bad requests and
/// [`GENERAL_INTERNAL_ERROR`] for the rest.
pub fn error_code(error: &RuntimeError) -> &'static str {
    match error {
        RuntimeError::BadRequest(m) => IngestErrorCode::of_message(m).map_or(GENERAL_BAD_REQUEST, IngestErrorCode::as_str),
        RuntimeError::Forbidden(_) => "Forbidden",
        RuntimeError::Plan(kustodian_planner::PlanError::Forbidden { .. }) => "Forbidden",
        RuntimeError::Plan(_) | RuntimeError::Conflict(_) => GENERAL_BAD_REQUEST,
        RuntimeError::Suspended(_) => "ClusterSuspended",
        RuntimeError::Io(_) | RuntimeError::DataFusion(_) | RuntimeError::Arrow(_) | RuntimeError::Internal(_) => {
            GENERAL_INTERNAL_ERROR
        }
    }
}

/// Whether retrying the same ingestion could succeed: not for bad data or a bad request.
pub fn is_transient(error: &RuntimeError) -> bool {
    matches!(error, RuntimeError::Io(_) | RuntimeError::Conflict(_) | RuntimeError::Internal(_) | RuntimeError::Suspended(_))
}

/// One failed ingestion, with the columns of Kusto's `.show ingestion failures` (serialized
/// with Kusto's column names). Build it with [`IngestionFailure::from_error`] when an
/// ingestion command fails, then fill in who ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngestionFailure {
    /// The ingestion operation's id (a GUID).
    pub operation_id: String,
    pub database: String,
    pub table: String,
    /// When the failure was registered, in nanoseconds since the Unix epoch (UTC).
    pub failed_on: i64,
    /// The source that failed (a path as written in the command, or `inline`).
    pub ingestion_source_path: String,
    /// The error message (it starts with the error code).
    pub details: String,
    /// `Permanent` or `Transient`.
    pub failure_kind: String,
    /// The id of the request that ran the command (a GUID).
    pub root_activity_id: String,
    /// The ingestion operation: `DataIngestPull` for `.ingest into`, `DataIngestInline` for
    /// `.ingest inline`.
    pub operation_kind: String,
    /// Whether the failure happened in an update policy (never, here).
    pub originates_from_update_policy: bool,
    /// The Kusto error code ([`error_code`]).
    pub error_code: String,
    /// The principal whose credentials did the ingestion (its FQN).
    pub principal: String,
    /// The user who ran the command (its FQN).
    pub user: String,
    /// The ingestion properties of the command, as a JSON object of strings.
    pub ingestion_properties: String,
    /// How many sources the command had.
    pub number_of_sources: i32,
    /// Whether a retry could succeed (only for transient failures).
    pub should_retry: bool,
}

impl IngestionFailure {
    /// A failure of `error`, registered now, with fresh operation and activity ids. The caller
    /// sets `principal`, `user`, `ingestion_properties` and `number_of_sources` (see
    /// [`properties_json`]) and may replace the ids with the request's.
    pub fn from_error(error: &RuntimeError, database: &str, table: &str, source: &str, operation_kind: &str) -> IngestionFailure {
        let transient = is_transient(error);
        IngestionFailure {
            operation_id: uuid::Uuid::new_v4().to_string(),
            database: database.to_string(),
            table: table.to_string(),
            failed_on: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
            ingestion_source_path: source.to_string(),
            details: error.to_string(),
            failure_kind: if transient { "Transient" } else { "Permanent" }.to_string(),
            root_activity_id: uuid::Uuid::new_v4().to_string(),
            operation_kind: operation_kind.to_string(),
            originates_from_update_policy: false,
            error_code: error_code(error).to_string(),
            principal: String::new(),
            user: String::new(),
            ingestion_properties: String::new(),
            number_of_sources: 1,
            should_retry: transient,
        }
    }
}

/// The `with (...)` properties of an ingestion command as the JSON object Kusto shows in
/// `IngestionProperties`.
pub fn properties_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        props.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_messages() {
        for c in IngestErrorCode::ALL {
            assert_eq!(error_code(&c.error("details: with a colon")), c.as_str());
        }
        assert_eq!(error_code(&RuntimeError::bad_request("table 'T' does not exist")), GENERAL_BAD_REQUEST);
        assert_eq!(error_code(&RuntimeError::Internal("x".into())), GENERAL_INTERNAL_ERROR);
    }

    #[test]
    fn failure_serializes_with_kusto_column_names() {
        let e = IngestErrorCode::WrongNumberOfFields.error("record 2");
        let f = IngestionFailure::from_error(&e, "Db", "T", "/data/a.csv", "DataIngestPull");
        assert_eq!(f.error_code, "Stream_WrongNumberOfFields");
        assert_eq!(f.failure_kind, "Permanent");
        assert!(!f.should_retry);
        let v = serde_json::to_value(&f).unwrap();
        for col in [
            "OperationId", "Database", "Table", "FailedOn", "IngestionSourcePath", "Details", "FailureKind",
            "RootActivityId", "OperationKind", "OriginatesFromUpdatePolicy", "ErrorCode", "Principal", "User",
            "IngestionProperties", "NumberOfSources", "ShouldRetry",
        ] {
            assert!(v.get(col).is_some(), "{col}");
        }
        let back: IngestionFailure = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        assert_eq!(properties_json(&[("format".into(), "csv".into())]), r#"{"format":"csv"}"#);
    }
}
