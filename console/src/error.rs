//! The console's errors and the one place they become HTTP answers: JSON
//! `{"error": "<code>", "message": "...", "parameter": "..."}` for the API, the same on an HTML
//! page for pages ([`PageError`]). 5xx answers say nothing internal; each error is logged once,
//! here.

use actix_web::http::StatusCode;
use actix_web::http::header::{ContentType, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use regstat_store::reports::ParamError;
use serde::Serialize;

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// A query parameter that cannot be used.
    #[error("{parameter}: {message}")]
    BadParameter {
        /// The parameter.
        parameter: String,
        /// What is wrong with it.
        message: String,
    },
    /// Nothing is known of what the path names.
    #[error("{0}")]
    NotFound(String),
    /// The database is unreachable or overloaded: try again.
    #[error("the database is unavailable, try again")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ConsoleError {
    /// A parameter error.
    pub fn parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self::BadParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }

    /// The stable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadParameter { .. } => "bad_parameter",
            Self::NotFound(_) => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: self.code(),
            message: self.to_string(),
            parameter: match self {
                Self::BadParameter { parameter, .. } => Some(parameter),
                _ => None,
            },
        }
    }

    fn log(&self) {
        match self {
            Self::Unavailable(source) => {
                tracing::warn!(error = %source, "console request failed: database unavailable");
            }
            Self::Internal(source) => {
                tracing::error!(error = format!("{source:#}"), "console request failed");
            }
            other => tracing::debug!(error = %other, "console request refused"),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        if regstat_store::db::is_transient(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<ParamError> for ConsoleError {
    fn from(error: ParamError) -> Self {
        if error.param == "name" {
            Self::NotFound(error.message)
        } else {
            Self::parameter(error.param, error.message)
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(error: askama::Error) -> Self {
        Self::Internal(anyhow::anyhow!("rendering a page: {error}"))
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            response.insert_header((
                WWW_AUTHENTICATE,
                r#"Basic realm="regstat", charset="UTF-8""#,
            ));
        }
        response.json(self.body())
    }
}

/// A [`ConsoleError`] answered as an HTML page (for the pages).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub ConsoleError);

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        Self(error.into())
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        Self(error.into())
    }
}

impl From<ParamError> for PageError {
    fn from(error: ParamError) -> Self {
        Self(error.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let status = self.status_code();
        let page = crate::pages::error_page(status, &self.0.to_string());
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(page)
    }
}
