//! Runtime errors and the error codes the CLI and server report.

use kustodian_planner::PlanError;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The error classes of the command-line contract (`{"error":{"code":...}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    SyntaxError,
    SemanticError,
    Forbidden,
    BadRequest,
    /// A change raced another writer's (HTTP 409 in Kusto's REST API).
    Conflict,
    /// The cluster cannot use its encryption key (revoked, deleted, disabled): every query and
    /// ingest is refused until access returns (HTTP 412 in Kusto's REST API).
    Suspended,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SyntaxError => "SyntaxError",
            ErrorCode::SemanticError => "SemanticError",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Suspended => "ClusterSuspended",
            ErrorCode::Internal => "Internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Authorization failure: names the principal, the operation and a role that would allow it.
    #[error("{0}")]
    Forbidden(String),
    /// A well-formed request that cannot be carried out (unknown table, table exists, bad ingestion input).
    #[error("{0}")]
    BadRequest(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("execution error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("data error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A change made over metadata another writer has since replaced.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The cluster is suspended: its key vault refuses its key.
    #[error("the cluster is suspended: {0}")]
    Suspended(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        RuntimeError::BadRequest(message.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            // A valid Kusto command Kustodian does not implement is not the caller's syntax error.
            RuntimeError::Plan(PlanError::Parse(e)) => match e.kind {
                kustodian_parser::ParseErrorKind::Unsupported => ErrorCode::SemanticError,
                kustodian_parser::ParseErrorKind::Internal => ErrorCode::Internal,
                _ => ErrorCode::SyntaxError,
            },
            RuntimeError::Plan(PlanError::Semantic { .. }) | RuntimeError::Plan(PlanError::Unsupported { .. }) => {
                ErrorCode::SemanticError
            }
            RuntimeError::Plan(PlanError::Forbidden { .. }) | RuntimeError::Forbidden(_) => ErrorCode::Forbidden,
            RuntimeError::Plan(_) => ErrorCode::Internal,
            RuntimeError::BadRequest(_) => ErrorCode::BadRequest,
            RuntimeError::Conflict(_) => ErrorCode::Conflict,
            RuntimeError::Suspended(_) => ErrorCode::Suspended,
            RuntimeError::Io(_) | RuntimeError::Arrow(_) | RuntimeError::DataFusion(_) | RuntimeError::Internal(_) => ErrorCode::Internal,
        }
    }
}
