//! Planner errors: user errors carry a span into the request text; internal errors are kept apart.

pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// Where a user error points: the parser's byte range into the request text, the one span
/// type of the workspace (its `==` ignores positions; compare with [`Span::same_as`]).
pub use kustodian_parser::ast::Span;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Parse(#[from] kustodian_parser::ParseError),
    /// A semantic error in the user's query: unknown name, wrong type, bad argument.
    #[error("{message}")]
    Semantic { message: String, span: Option<Span> },
    /// A KQL feature that Kustodian does not implement; the message names it.
    #[error("{feature} is not supported by Kustodian")]
    Unsupported { feature: String, span: Option<Span> },
    /// The request is not allowed to see an entity (restrict statement, blocked RLS).
    #[error("{message}")]
    Forbidden { message: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("DataFusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl PlanError {
    pub fn semantic(message: impl Into<String>) -> Self {
        PlanError::Semantic { message: message.into(), span: None }
    }

    pub fn unsupported(feature: impl Into<String>) -> Self {
        PlanError::Unsupported { feature: feature.into(), span: None }
    }

    /// Attaches a span to a user error that has none yet.
    pub fn with_span(self, span: Span) -> Self {
        match self {
            PlanError::Semantic { message, span: None } => PlanError::Semantic { message, span: Some(span) },
            PlanError::Unsupported { feature, span: None } => PlanError::Unsupported { feature, span: Some(span) },
            other => other,
        }
    }

    pub fn span(&self) -> Option<Span> {
        match self {
            PlanError::Semantic { span, .. } | PlanError::Unsupported { span, .. } => *span,
            _ => None,
        }
    }
}
