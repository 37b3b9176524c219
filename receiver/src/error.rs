//! The receiver's errors and the one place they become HTTP answers.
//!
//! Every error answer is JSON: `{"error": "<code>", "message": "...", "request_id": "..."}`.
//! Only malformed *requests* get a 4xx. The registry retries any non-2xx forever and holds
//! every later event behind it, so a well-formed event is never refused for its content.

use crate::publisher::PublishError;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Serialize;

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// A content type that is not a notification.
    #[error(
        "unsupported content type {0:?}: send application/vnd.docker.distribution.events.v1+json, ...v2+json or application/json"
    )]
    UnsupportedMediaType(String),
    /// A `Content-Encoding` other than `identity` (registries never compress notifications).
    #[error("unsupported content encoding {0:?}: send the body uncompressed")]
    UnsupportedEncoding(String),
    /// The body exceeds `receiver.body_limit_bytes`.
    #[error("body larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More events in one envelope than the receiver publishes per request (a registry sends
    /// one).
    #[error("{count} events in one request, over the limit of {limit}")]
    TooManyEvents {
        /// Events in the envelope.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive within `receiver.request_body_timeout_ms`.
    #[error("the body did not arrive within {after_ms} ms")]
    RequestTimeout {
        /// The deadline.
        after_ms: u64,
    },
    /// The body could not be read or is not an envelope.
    #[error("{0}")]
    BadRequest(String),
    /// The broker could not take the events; the registry should retry.
    #[error("events could not be queued, retry later")]
    Unavailable {
        /// What went wrong (logged, never sent).
        #[source]
        source: PublishError,
        /// Seconds for Retry-After.
        retry_after_secs: u32,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    request_id: &'a str,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyEvents { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::TooManyEvents { .. } => "too_many_events",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::Unavailable { .. } => "unavailable",
        }
    }

    /// The JSON answer. 5xx bodies say nothing internal.
    pub fn response(&self, request_id: &str) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((WWW_AUTHENTICATE, "Bearer realm=\"regstat\""));
            }
            ApiError::Unavailable {
                retry_after_secs, ..
            } => {
                response.insert_header((RETRY_AFTER, retry_after_secs.to_string()));
            }
            // The rest of the body may still come: the connection cannot serve another request.
            ApiError::RequestTimeout { .. } => {
                response.force_close();
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
            request_id,
        })
    }
}
