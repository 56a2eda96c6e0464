//! Errors as Kusto's REST API reports them: an HTTP status and a OneApi body
//! `{"error": {"code", "message", "@type", "@message", "@context", "@permanent"}}`.
//!
//! The official clients read `@message` as the error's text, and `"Semantic error:"` in it as
//! a semantic error; a body without the `error` key breaks them.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ErrorCode, RuntimeError};

/// An error answer of the REST API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OneApi `code` (`General_BadRequest`, `Forbidden`, `Unauthorized`, ...).
    pub code: &'static str,
    /// The exception type Kusto names in `@type`.
    pub kind: &'static str,
    /// The full text (`@message`).
    pub text: String,
    pub permanent: bool,
    /// Echoed in `@context`.
    pub activity_id: String,
    pub client_request_id: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, kind: &'static str, text: impl Into<String>, permanent: bool) -> Self {
        ApiError { status, code, kind, text: text.into(), permanent, activity_id: String::new(), client_request_id: String::new() }
    }

    /// 401: no usable credentials. The text says why, never echoing the token.
    pub fn unauthorized(why: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Kusto.DataNode.Exceptions.UnauthorizedAccessException",
            format!("Unauthorized: the request could not be authenticated: {why}"),
            true,
        )
    }

    /// 403 before authentication: the caller's network address is not allowed.
    pub fn network_refused(why: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Kusto.DataNode.Exceptions.NetworkAccessDeniedException",
            format!("Forbidden: {why}"),
            true,
        )
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "General_BadRequest", "Kusto.Data.Exceptions.KustoBadRequestException", text, true)
    }

    pub fn not_found(path: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", "Kusto.Data.Exceptions.KustoServiceException", format!("endpoint '{path}' does not exist"), true)
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "Kusto.Data.Exceptions.KustoRequestPayloadTooLargeException",
            format!("the request body exceeds the limit of {limit} bytes"),
            true,
        )
    }

    pub fn throttled(what: &str) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Kusto.DataNode.Exceptions.ThrottledException",
            format!("the request was throttled: {what}; retry later"),
            false,
        )
    }

    pub fn internal(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServiceError", "Kusto.Data.Exceptions.KustoServiceException", text, false)
    }

    /// An engine error, classified by its error code.
    pub fn from_runtime(e: &RuntimeError) -> Self {
        let text = e.to_string();
        match e.code() {
            ErrorCode::SyntaxError => ApiError::new(
                StatusCode::BAD_REQUEST,
                "General_BadRequest",
                "Kusto.Data.Exceptions.SyntaxException",
                format!("Syntax error: {text}"),
                true,
            ),
            ErrorCode::SemanticError => ApiError::new(
                StatusCode::BAD_REQUEST,
                "General_BadRequest",
                "Kusto.Data.Exceptions.SemanticException",
                format!("Semantic error: {text}"),
                true,
            ),
            ErrorCode::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Kusto.DataNode.Exceptions.UnauthorizedDatabaseAccessException",
                format!("Forbidden: {text}"),
                true,
            ),
            ErrorCode::BadRequest => ApiError::bad_request(format!("Request is invalid and cannot be processed: {text}")),
            ErrorCode::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "Kusto.Data.Exceptions.EntityConflictException",
                format!("Conflict: {text}"),
                false,
            ),
            ErrorCode::Suspended => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "Kusto.Data.Exceptions.ClusterSuspendedException",
                format!("Precondition failed: {text}"),
                false,
            ),
            ErrorCode::Internal => ApiError::internal(format!("Internal error: {text}")),
        }
    }

    pub fn with_ids(mut self, activity_id: &str, client_request_id: &str) -> Self {
        self.activity_id = activity_id.to_string();
        self.client_request_id = client_request_id.to_string();
        self
    }

    /// The OneApi body.
    pub fn body(&self) -> Value {
        let message = match self.status {
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            s if s.is_server_error() => "Internal service error",
            _ => "Request is invalid and cannot be executed.",
        };
        json!({"error": {
            "code": self.code,
            "message": message,
            "@type": self.kind,
            "@message": self.text,
            "@context": {
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "serviceAlias": "KUSTODIAN",
                "clientRequestId": self.client_request_id,
                "activityId": self.activity_id,
            },
            "@permanent": self.permanent,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.activity_id)
            && !self.activity_id.is_empty()
        {
            r.headers_mut().insert("x-ms-activity-id", v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        r
    }
}
