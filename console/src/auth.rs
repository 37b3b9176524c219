//! The credentials check in front of the pages and the API: bearer tokens (scripts) or Basic
//! credentials (browsers: a 401 carries `WWW-Authenticate: Basic`, so the browser asks),
//! compared in constant time by [`regstat_shared::auth::Authenticator`].

use crate::error::ConsoleError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use regstat_shared::auth::Authenticator;

/// Lets a request through only with acceptable credentials (or when the console is open).
pub async fn require_credentials(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let accepted = request
        .app_data::<web::Data<Authenticator>>()
        .is_some_and(|auth| {
            let header = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            auth.accepts(header)
        });
    if accepted {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let response = ConsoleError::Unauthorized.error_response();
    Ok(request.into_response(response).map_into_right_body())
}
