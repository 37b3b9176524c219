//! `/healthz` (liveness), `/readyz` (readiness: the broker link) and `/metrics`.

use crate::startup::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when events can be published: connected to the broker and not blocked by it.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.publisher.is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready", "broker": "connected"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "broker": "unavailable"}))
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(regstat_shared::metrics::render())
}

/// JSON 404 for every other path.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": "not_found",
        "message": "no such endpoint: POST notifications to /events",
    }))
}
