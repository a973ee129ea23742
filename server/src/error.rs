//! The one error type of the HTTP API.
//!
//! Every handler returns `Result<_, ApiError>`, and every extractor reports bad input as an
//! `ApiError`, so clients always see the same shape: a status code and a JSON body
//! `{"StatusCode": 400, "Message": "..."}`. Client errors (4xx) carry a message written for the
//! person reading it. Server errors (5xx) carry a generic message; their cause (a database or
//! filesystem error) is logged inside the request's span and never sent to the client.

use std::fmt;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::store::StoreError;

/// A boxed cause of a server error, kept for the log only.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad id, bad JSON, missing header field, bad parameter.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No valid token, or a wrong password.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (another user's data without being an administrator).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing asked for does not exist (or the caller may not know it exists).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with existing state (a user name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request body is larger than the server accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Too many attempts (failed logins, QuickConnect, open sockets); retry after the given
    /// number of seconds.
    #[error("too many requests, retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until the next attempt may succeed (sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// A byte range outside the file (`416`, with `Content-Range: bytes */size`).
    #[error("range not satisfiable (size {size})")]
    RangeNotSatisfiable {
        /// Size of the whole file in bytes.
        size: u64,
    },
    /// A dependency (the database) is saturated or unreachable; the client may retry.
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// This replica is saturated (every password slot busy); retry after the given seconds
    /// (503 with `Retry-After`).
    #[error("busy, retry after {retry_after_secs} s")]
    Busy {
        /// Seconds to wait before retrying (sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// The database connection broke or leads to a server that is not (or no longer) the
    /// primary: 503 with `Retry-After`. The response carries [`DatabaseFailure`], so the
    /// failover layer recycles the pool and repeats an idempotent request once.
    #[error("the database is unreachable")]
    DatabaseUnreachable(#[source] StoreError),
    /// Anything else: a bug or an unexpected database/filesystem failure. Logged, never shown.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl ApiError {
    /// A bad request with a message for the client.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// Not found, naming what was looked for (never a path on disk).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    /// 401 with a message.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(message.into())
    }

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    /// A server error whose cause is logged and hidden from the client.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unavailable(_) | ApiError::Busy { .. } | ApiError::DatabaseUnreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client.
    fn public_message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m) => m.clone(),
            ApiError::PayloadTooLarge => "The request body is too large.".to_owned(),
            ApiError::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts. Try again in {retry_after_secs} seconds.")
            }
            ApiError::RangeNotSatisfiable { .. } => {
                "The requested range is outside the file.".to_owned()
            }
            ApiError::Unavailable(m) => (*m).to_owned(),
            ApiError::DatabaseUnreachable(_) => "The database is unreachable.".to_owned(),
            ApiError::Busy { retry_after_secs } => {
                format!("The server is busy. Try again in {retry_after_secs} s.")
            }
            ApiError::Internal(_) => "Error processing request.".to_owned(),
        }
    }
}

/// The error body, the same for every error.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    status_code: u16,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Logged inside the request span, so the route and request id come along.
            tracing::error!(error = %DisplayChain(&self), "request failed");
        }
        let body = ErrorBody {
            status_code: status.as_u16(),
            message: self.public_message(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Busy { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::DatabaseUnreachable(_) => {
                // A failover takes seconds; a client that honours this comes back after it.
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(DatabaseFailure);
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PoolExhausted => {
                ApiError::Unavailable("The database is busy or unreachable, try again.")
            }
            e @ (StoreError::Unreachable(_) | StoreError::ReadOnly) => {
                ApiError::DatabaseUnreachable(e)
            }
            other => ApiError::internal(other),
        }
    }
}

/// Marks a response that failed because the database connection broke or led to a standby
/// (see [`ApiError::DatabaseUnreachable`]).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseFailure;

/// Formats an error with its chain of causes, for logs.
#[derive(Debug)]
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_hide_their_cause_from_the_client() {
        let err = ApiError::internal(std::io::Error::other("disk /secret/path exploded"));
        assert_eq!(err.public_message(), "Error processing request.");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_failover_error_is_a_503_to_retry_marked_for_the_failover_layer() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let response = ApiError::from(StoreError::from(io)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert!(response.extensions().get::<DatabaseFailure>().is_some());
        // Saturation is not a failover: no retry marker.
        let exhausted = ApiError::from(StoreError::PoolExhausted).into_response();
        assert_eq!(exhausted.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(exhausted.extensions().get::<DatabaseFailure>().is_none());
    }

    #[test]
    fn an_unsatisfiable_range_names_the_file_size() {
        let response = ApiError::RangeNotSatisfiable { size: 1234 }.into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */1234");
    }
}
