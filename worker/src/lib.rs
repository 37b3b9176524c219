//! regstat's worker: consumes registry events from RabbitMQ and records them in PostgreSQL.
//!
//! # Layout
//! - [`admin`]: the operator's tools behind the `regstat` command (dead letters, status).
//! - [`callbacks`]: learning a pushed manifest's content (known, fetched, or from the event).
//! - [`consumer`]: the consume loop (connections, batching, acks, reconnects).
//! - [`handler`]: the unit of work, one batch in, one [`handler::Outcome`] per message out;
//!   broker-free, so tests call it directly.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, and the polled queue and ledger gauges.
//! - [`ledger`]: the `regstat.events` table.
//! - [`retention`]: the ledger's partitions, retention and dedupe window (`regstat ledger
//!   prune`, and the worker's periodic maintenance).
//! - [`model`]: what each event changes in the derived registry state.
//! - [`db`]: the connection pool, migrations, and which database errors are transient.
//! - [`reports`]: `regstat report NAME`: the report views and functions, rendered.
//! - [`registry`]: calling registries back for manifests and image configs (auth, TLS,
//!   verification, caching), and resolving an event's host to a registry.
//! - [`sync`]: `regstat sync`: backfill and reconciliation from a registry's catalog and tag
//!   lists, recorded as observations and tombstones.

pub mod admin;
pub mod callbacks;
pub mod consumer;
pub mod db;
pub mod handler;
pub mod http;
pub mod ledger;
pub mod model;
pub mod registry;
pub mod reports;
pub mod retention;
pub mod sync;

use anyhow::Context;
use regstat_shared::config::Settings;
use tokio_util::sync::CancellationToken;

/// Runs a worker until `shutdown` is cancelled, serving health and metrics on
/// `worker.listen`: applies migrations (if configured; retried until the database answers),
/// then consumes. On shutdown the batch in hand is finished and acknowledged and everything
/// else stays in the queue.
pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(&settings.worker.listen)
        .with_context(|| format!("cannot listen on worker.listen {}", settings.worker.listen))?;
    run_with_listener(settings, listener, shutdown).await
}

/// [`run`] with the endpoint on an already-bound listener (port 0 in tests).
pub async fn run_with_listener(
    settings: &Settings,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = db::pool(&settings.database).context("invalid database.url")?;
    let readiness = std::sync::Arc::new(http::Readiness::default());
    let (server, server_handle) = http::serve(listener, readiness.clone(), pool.clone())
        .context("cannot serve the health endpoint")?;
    let server = tokio::spawn(server);
    let result = migrate_and_consume(settings, &pool, readiness, shutdown).await;
    server_handle.stop(true).await;
    let _ = server.await;
    pool.close().await;
    result
}

async fn migrate_and_consume(
    settings: &Settings,
    pool: &sqlx::PgPool,
    readiness: std::sync::Arc<http::Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if settings.database.migrate_on_start {
        let mut backoff = std::time::Duration::from_millis(200);
        loop {
            match db::migrate(pool).await {
                Ok(()) => break,
                Err(sqlx::migrate::MigrateError::Execute(error)) if db::is_transient(&error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "database unavailable; cannot migrate yet");
                }
                Err(error) => return Err(error).context("applying migrations"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    }
    let maintenance = tokio::spawn(maintain_ledger(
        pool.clone(),
        settings.ledger.clone(),
        shutdown.clone(),
    ));
    let ctx = handler::Context::new(pool.clone(), settings)?;
    consumer::run(settings, &ctx, &readiness, shutdown).await;
    maintenance.abort();
    Ok(())
}

/// Creates ledger partitions ahead and applies retention, hourly (workers take turns through
/// an advisory lock; an aborted run is safe, each step commits on its own).
async fn maintain_ledger(
    pool: sqlx::PgPool,
    ledger: regstat_shared::config::LedgerSettings,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(retention::MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = retention::maintain(&pool, &ledger).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "ledger maintenance failed; trying again in an hour"
            );
        }
    }
}
