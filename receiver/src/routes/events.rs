//! `POST /events`: the registry's notifications.
//!
//! Authenticate, check the content type, read the body within the limit, split the envelope
//! into events, publish each as its own message and answer 200 only once the broker has
//! confirmed every one of them.

use crate::error::ApiError;
use crate::publisher::Outgoing;
use crate::startup::AppState;
use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use regstat_shared::event::{Envelope, Event};
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Content types a registry sends (v1: distribution 2.x, v2: 3.x) plus plain JSON.
const ACCEPTED_CONTENT_TYPES: [&str; 3] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
];

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    quarantined: usize,
    request_id: String,
}

/// Handles one notification request.
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let request_id = uuid::Uuid::now_v7().to_string();
    let span = tracing::info_span!(
        "webhook",
        request.id = %request_id,
        http.path = %request.path(),
        events = tracing::field::Empty,
    );
    let result = accept(&request, payload, &state, &request_id)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let response = match result {
        Ok(accepted) => HttpResponse::Ok().json(accepted),
        Err(error) => {
            match &error {
                ApiError::Unavailable { source, .. } => {
                    tracing::error!(error = %source, cause = ?source, "events not queued; answering 503");
                }
                other => tracing::warn!(
                    status = other.status().as_u16(),
                    error = %other,
                    peer = ?request.peer_addr(),
                    "request rejected"
                ),
            }
            error.response(&request_id)
        }
    };
    metrics::counter!(
        "regstat_receiver_requests_total",
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}

async fn accept(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    request_id: &str,
) -> Result<Accepted, ApiError> {
    let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if !state.auth.accepts(authorization) {
        return Err(ApiError::Unauthorized);
    }
    check_content_type(request)?;
    let body = read_body(request, payload, state.body_limit).await?;
    let envelope = Envelope::parse(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body is not a notification envelope {{\"events\": [...]}}: {e}"
        ))
    })?;
    tracing::Span::current().record("events", envelope.events.len());

    let received_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let messages: Vec<Outgoing<'_>> = envelope
        .events
        .iter()
        .map(|raw| route(raw.get().as_bytes()))
        .collect();
    let quarantined = messages
        .iter()
        .filter(|m| m.quarantine_reason.is_some())
        .count();

    state
        .publisher
        .publish(&messages, request_id, received_at_ms)
        .await
        .map_err(|source| ApiError::Unavailable {
            source,
            retry_after_secs: state.retry_after_secs,
        })?;

    let accepted = messages.len() - quarantined;
    metrics::counter!("regstat_receiver_events_accepted_total").increment(accepted as u64);
    metrics::counter!("regstat_receiver_events_quarantined_total").increment(quarantined as u64);
    tracing::debug!(accepted, quarantined, "events queued");
    Ok(Accepted {
        accepted,
        quarantined,
        request_id: request_id.to_owned(),
    })
}

/// Turns one raw event into a message: routed by action and kind, or quarantined with the
/// reason it cannot be processed.
fn route(raw: &[u8]) -> Outgoing<'_> {
    let parsed = Event::parse(raw).and_then(|event| event.validate().map(|()| event));
    match parsed {
        Ok(event) => {
            let id = event.id.clone().unwrap_or_default();
            let key = event.routing_key();
            tracing::debug!(event.id = %id, routing_key = %key, "event accepted");
            Outgoing::event(key, id, raw)
        }
        Err(invalid) => {
            // Keep whatever id the event has, so a quarantined event can be traced.
            let id = Event::parse(raw)
                .ok()
                .and_then(|e| e.id)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            tracing::warn!(event.id = %id, reason = %invalid, "event quarantined");
            Outgoing::quarantine(id, raw, invalid.to_string())
        }
    }
}

fn check_content_type(request: &HttpRequest) -> Result<(), ApiError> {
    let value = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = value.split(';').next().unwrap_or_default().trim();
    if ACCEPTED_CONTENT_TYPES
        .iter()
        .any(|accepted| essence.eq_ignore_ascii_case(accepted))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(value.to_owned()))
    }
}

async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
