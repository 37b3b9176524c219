//! `POST /events`: the registry's notifications.
//!
//! Authenticate, check the content type and encoding, read the body within the limit, split
//! the envelope into events, publish each as its own message and answer 200 only once the broker
//! has confirmed every one of them.
//!
//! Only a malformed *request* gets a 4xx (the registry would retry it forever, holding every
//! later event): an envelope that parses is answered 200 (or 503), and each of its events that
//! fails [`Event::parse_checked`] goes to the quarantine queue with the reason, while the
//! valid ones are published as usual.

use crate::error::ApiError;
use crate::publisher::Outgoing;
use crate::startup::AppState;
use actix_web::http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT,
};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use regstat_shared::event::{Envelope, Event};
use regstat_shared::topology::Topology;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// Content types a registry sends (v1: distribution 2.x, v2: 3.x) plus plain JSON.
const ACCEPTED_CONTENT_TYPES: [&str; 3] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
];

/// Most events one request may carry. A registry sends exactly one per request; without a cap
/// a 1 MiB envelope of `{}` would become 350,000 quarantined messages, again on every retry.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// Most bytes reserved for a body before any of it arrived.
const INITIAL_BODY_CAPACITY: usize = 8192;

/// Longest piece of a request header echoed in an answer or a log line.
const MAX_ECHO_CHARS: usize = 128;

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
                // Once per rejected request, with what an operator needs to find the sender;
                // never a credential (only the scheme is named) and never the body.
                other => tracing::warn!(
                    status = other.status().as_u16(),
                    error.code = other.code(),
                    error = %other,
                    auth.scheme = auth_scheme(&request),
                    http.user_agent = %echo(header(&request, USER_AGENT)),
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
    check_content_encoding(request)?;
    let body = tokio::time::timeout(
        state.body_timeout,
        read_body(request, payload, state.body_limit),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout {
        after_ms: u64::try_from(state.body_timeout.as_millis()).unwrap_or(u64::MAX),
    })??;
    let envelope = Envelope::parse(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body is not a notification envelope {{\"events\": [...]}}: {e}"
        ))
    })?;
    if envelope.events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::TooManyEvents {
            count: envelope.events.len(),
            limit: MAX_EVENTS_PER_REQUEST,
        });
    }
    tracing::Span::current().record("events", envelope.events.len());

    let received_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let messages: Vec<Outgoing<'_>> = envelope
        .events
        .iter()
        .map(|raw| route(&state.topology, raw.get().as_bytes()))
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

/// Turns one raw event into a message: routed by action and kind (and shard), or quarantined
/// with the reason it cannot be processed.
fn route<'a>(topology: &Topology, raw: &'a [u8]) -> Outgoing<'a> {
    match Event::parse_checked(raw) {
        Ok(event) => {
            let id = event.id.clone().unwrap_or_default();
            let key = topology.routing_key(&event);
            tracing::debug!(event.id = %id, routing_key = %key, "event accepted");
            Outgoing::event(key, id, raw)
        }
        Err(invalid) => {
            let id = quarantine_id(raw);
            let reason = invalid.to_string();
            tracing::warn!(event.id = ?id, %reason, "event quarantined");
            Outgoing::quarantine(id, raw, reason)
        }
    }
}

/// The message id of a quarantined event: its own id when it has a string one that fits a
/// message id (so it can be traced, even when the rest of the event is broken), else a fresh one.
fn quarantine_id(raw: &[u8]) -> String {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(raw)
        .ok()
        .and_then(|event| event.id)
        .filter(|id| !id.is_empty() && id.len() <= regstat_shared::event::MAX_ID_BYTES)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn header(request: &HttpRequest, name: actix_web::http::header::HeaderName) -> &str {
    request
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or("<not visible ASCII>"))
}

/// A header value cut to [`MAX_ECHO_CHARS`] characters for an answer or a log line.
fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}...", &value[..cut]),
    }
}

/// The scheme of the `Authorization` header, for logs: never the credential.
fn auth_scheme(request: &HttpRequest) -> &'static str {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return "none";
    };
    let scheme = value
        .as_bytes()
        .split(|b| *b == b' ')
        .next()
        .unwrap_or_default();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        "bearer"
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        "basic"
    } else {
        "other"
    }
}

/// Registries never compress notifications; a compressed body would only read as "not JSON".
fn check_content_encoding(request: &HttpRequest) -> Result<(), ApiError> {
    for value in request.headers().get_all(CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("<not visible ASCII>");
        let identity = text
            .split(',')
            .map(str::trim)
            .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(ApiError::UnsupportedEncoding(echo(text)));
        }
    }
    Ok(())
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
        Err(ApiError::UnsupportedMediaType(echo(value)))
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
    // Grown as the body arrives: a declared length is only a promise, and reserving it would
    // let stalled connections that declare large bodies hold that much memory each.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(INITIAL_BODY_CAPACITY));
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
