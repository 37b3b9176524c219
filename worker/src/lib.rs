//! regstat's worker daemon: consumes registry events from RabbitMQ, calls registries back for
//! the content of pushed manifests, and records both in PostgreSQL (through
//! [`regstat_store`]).
//!
//! # Layout
//! - [`consumer`]: the consume loop (connections, batching, settling: acks, retries, dead
//!   letters, each failed event logged once; reconnects).
//! - [`handler`]: the unit of work, one batch in, one [`Outcome`] per message out;
//!   broker-free, so tests call it directly.
//! - [`callbacks`]: learning a pushed manifest's content (known, fetched through
//!   [`regstat_registry`], or from the event).
//! - [`outcome`]: [`Outcome`] and [`outcome::Reason`], below both of the above.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, and the polled queue and ledger gauges.
//! - this file: [`run`], which migrates (when configured), maintains the ledger hourly,
//!   refreshes the store's per-repository caches as repositories go stale
//!   ([`regstat_store::caches`]) and consumes until shutdown.

pub mod callbacks;
pub mod consumer;
pub mod handler;
pub mod http;
pub mod outcome;

pub use outcome::Outcome;

use anyhow::Context;
use regstat_shared::config::Settings;
use regstat_store::{db, retention};
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
    if settings.database.migrate_on_start
        && !db::migrate_when_reachable(pool, &shutdown)
            .await
            .context("applying migrations")?
    {
        return Ok(());
    }
    let maintenance = tokio::spawn(maintain_ledger(
        pool.clone(),
        settings.ledger.clone(),
        shutdown.clone(),
    ));
    let refresher = tokio::spawn(regstat_store::caches::run_refresher(
        pool.clone(),
        settings.worker.cache_refresh(),
        shutdown.clone(),
    ));
    let ctx = handler::Context::new(pool.clone(), settings)?;
    consumer::run(settings, &ctx, &readiness, shutdown).await;
    maintenance.abort();
    refresher.abort();
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
