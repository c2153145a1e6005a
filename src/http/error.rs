//! The one HTTP error type. Every failure leaves the broker as `{"error":{"code","message","request_id"}}` with
//! the right status; internal details (SQL errors, token contents, PHI) are logged once and never sent.
//!
//! Error rule for the crate: domain modules return their own `thiserror` enums; `anyhow` is used only at the
//! edges (startup, `main`, background jobs); handlers convert domain errors into `ApiError` here and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::store::StoreError;
use crate::visit::service::{RecordingAccessError, VideoError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("bad request: {1}")]
    BadRequest(&'static str, String),
    #[error("not found")]
    NotFound,
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
    /// A rate limit (`[limits]`): 429 with `Retry-After`.
    #[error("{0}")]
    TooManyRequests(#[from] crate::limits::Limited),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn code_and_message(&self) -> (&str, String) {
        match self {
            ApiError::Unauthorized(code) => (code, "valid credentials are required".into()),
            ApiError::Forbidden(reason) => ("forbidden", reason.clone()),
            ApiError::BadRequest(code, message) => (code, message.clone()),
            ApiError::NotFound => ("not_found", "no such resource".into()),
            ApiError::Unavailable(code) => (code, "a dependency is unavailable; try again shortly".into()),
            ApiError::Internal(_) => ("internal", "internal error".into()),
            ApiError::TooManyRequests(l) => ("rate_limited", l.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    /// A refused JSON body. serde's messages quote what the client sent (field names, values), and a client
    /// may have typed PHI there, so the message names the kind of problem only.
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        let message = match e {
            R::MissingJsonContentType(_) => "send Content-Type: application/json",
            R::JsonSyntaxError(_) => "the body is not valid JSON",
            R::JsonDataError(_) => "the body's fields do not match this endpoint (see the OpenAPI document)",
            _ => "the body could not be read",
        };
        ApiError::BadRequest("invalid_body", message.into())
    }
}

/// A JSON error body; also used by the middleware that turns plain-text framework errors into JSON.
pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let (code, message) = self.code_and_message();
        let mut response = error_body(self.status(), code, &message);
        if let ApiError::TooManyRequests(l) = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, l.retry_after_seconds().into());
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::ProviderUnavailable => ApiError::Unavailable("provider_unavailable"),
            AuthError::Token(crate::auth::jwt::TokenError::ProviderUnavailable) => {
                ApiError::Unavailable("provider_unavailable")
            }
            AuthError::Store(s) => ApiError::from(s),
            AuthError::NoRole => ApiError::Forbidden("the account has no examroom role".into()),
            other => ApiError::Unauthorized(other.reason_code()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable("database_unavailable"),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::policy::Denial> for ApiError {
    fn from(d: crate::policy::Denial) -> Self {
        ApiError::Forbidden(d.reason)
    }
}

impl From<VideoError> for ApiError {
    /// The same codes the socket sends (`VideoError::code`), with the status each kind of refusal has.
    fn from(e: VideoError) -> Self {
        match e.code() {
            "forbidden" => ApiError::Forbidden(e.to_string()),
            "media_unavailable" => ApiError::Unavailable("media_unavailable"),
            "store_unavailable" => ApiError::Unavailable("store_unavailable"),
            "recording_failed" => ApiError::Internal(e.to_string()),
            code => ApiError::BadRequest(code, e.to_string()),
        }
    }
}

impl From<RecordingAccessError> for ApiError {
    fn from(e: RecordingAccessError) -> Self {
        match e.code() {
            "forbidden" => ApiError::Forbidden(e.to_string()),
            "internal" => ApiError::Internal(e.to_string()),
            "not_in_recording" => ApiError::NotFound,
            code => ApiError::BadRequest(code, e.to_string()),
        }
    }
}
