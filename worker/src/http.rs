//! The worker's HTTP endpoint: `/healthz` (liveness), `/readyz` (consuming, retries and dead
//! letters confirmed in time, database reachable) and `/metrics` (Prometheus), plus the gauges only a poll can give: queue depths,
//! consumers and ledger size.

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use regstat_shared::amqp;
use regstat_shared::topology::{QueueRole, QueueSpec, Topology};
use regstat_store::status::{self, QueueRow};
use serde_json::json;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often queue depths and the ledger size are refreshed.
const POLL_INTERVAL: Duration = Duration::from_secs(15);

/// Longest wait for the database in a readiness check.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness is made of, shared by the consume loop and the endpoint; and the newest
/// event time committed per work queue, which the gauge poller records for the console.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Consumers are attached to every work queue.
    consuming: AtomicBool,
    /// Retries or dead letters have waited longer than `amqp.confirm_timeout_ms` for the
    /// broker's confirmation (it blocks publishers, or the link stalls): the batches holding
    /// them are not acknowledged meanwhile.
    stalled: AtomicBool,
    /// Work queue → the newest `received_at` committed from it by this worker.
    newest: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl Readiness {
    /// Records whether the worker is consuming.
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
        metrics::gauge!("regstat_worker_consuming").set(if consuming { 1.0 } else { 0.0 });
    }

    /// Whether consumers are attached.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// Records whether publishing retries or dead letters is stalled.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
        metrics::gauge!("regstat_worker_publish_stalled").set(if stalled { 1.0 } else { 0.0 });
    }

    /// Whether publishing retries or dead letters is stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Records that a batch received up to `at` was committed from `queue`.
    pub fn committed(&self, queue: &str, at: DateTime<Utc>) {
        if let Ok(mut newest) = self.newest.lock() {
            let entry = newest.entry(queue.to_owned()).or_insert(at);
            *entry = (*entry).max(at);
        }
    }

    fn newest(&self, queue: &str) -> Option<DateTime<Utc>> {
        self.newest.lock().ok()?.get(queue).copied()
    }
}

struct State {
    readiness: Arc<Readiness>,
    pool: PgPool,
}

/// Serves the endpoint on `listener` until stopped through the returned handle.
pub fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    pool: PgPool,
) -> std::io::Result<(Server, ServerHandle)> {
    regstat_shared::metrics::handle();
    let state = web::Data::new(State { readiness, pool });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(render_metrics))
    })
    .disable_signals()
    .workers(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    Ok((server, handle))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let consuming = state.readiness.is_consuming();
    let stalled = state.readiness.is_stalled();
    let database = regstat_store::db::ping(&state.pool, READY_DB_TIMEOUT).await;
    let ready = consuming && !stalled && database;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "broker": if consuming { "consuming" } else { "not consuming" },
        "publishing": if stalled { "stalled" } else { "confirmed" },
        "database": if database { "reachable" } else { "unreachable" },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn render_metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(regstat_shared::metrics::render())
}

/// Refreshes the queue and ledger gauges every 15 s on `channel` until it fails, and records
/// the queues in `regstat.queue_status` for the console.
pub async fn poll_gauges(
    channel: lapin::Channel,
    topology: Topology,
    pool: PgPool,
    readiness: Arc<Readiness>,
) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tick.tick().await;
        let mut rows = Vec::new();
        for QueueSpec { name, role, .. } in topology.queues() {
            let Ok((messages, consumers)) = amqp::queue_counts(&channel, &name).await else {
                return;
            };
            metrics::gauge!("regstat_queue_messages", "queue" => name.clone())
                .set(f64::from(messages));
            metrics::gauge!("regstat_queue_consumers", "queue" => name.clone())
                .set(f64::from(consumers));
            let role = match role {
                QueueRole::Work => "work",
                QueueRole::Retry { .. } => "retry",
                QueueRole::Terminal if name == topology.dead_queue() => "dead",
                QueueRole::Terminal => "quarantine",
            };
            rows.push(QueueRow {
                newest_received_at: readiness.newest(&name),
                queue: name,
                role: role.to_owned(),
                messages: i64::from(messages),
                consumers: i64::from(consumers),
                updated_at: Utc::now(),
            });
        }
        if let Err(error) = status::record_queues(&pool, &rows).await {
            tracing::debug!(%error, "cannot record the queue status; trying again at the next poll");
        }
        // The planner's estimate, summed over partitions: exact enough for a gauge, and free.
        let estimate = regstat_store::ledger::estimated_len(&pool).await;
        if let Ok(rows) = estimate {
            metrics::gauge!("regstat_ledger_events_estimate").set(rows.max(0) as f64);
        }
    }
}
