//! What `regstat status` and the worker's gauges read of the ledger (its size and how fresh it
//! is per work queue), and the queues as workers last polled them (for the console).

use crate::ledger;
use chrono::{DateTime, Utc};
use regstat_shared::event::BLOB_MEDIA_TYPE;
use sqlx::PgConnection;

/// Above this many rows (by the planner's estimate) the ledger is not counted exactly: a
/// `count(*)` scans the whole table (on the benchmark machine 100,000 ledger rows took 140 to
/// 220 ms, too long for the overview page; the estimate is shown as one).
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// The newest `received_at` of the events each work queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    /// Pushed manifests (the manifests queue).
    pub manifests: Option<DateTime<Utc>>,
    /// Everything else (the ingest queue).
    pub ingest: Option<DateTime<Utc>>,
}

/// The newest ledger event of each work queue.
pub async fn newest_per_queue(db: &mut PgConnection) -> Result<Newest, sqlx::Error> {
    // One pass over the table (there is no index on received_at). The manifests queue gets
    // routing key `push.manifest`: action `push` and a manifest target (a media type other
    // than a blob's, or no media type but a tag), as `Event::routing_key` decides; every
    // other event goes to the ingest queue. The condition is never NULL, so NOT is exact.
    let (manifests, ingest) = sqlx::query_as(
        "SELECT max(received_at) FILTER (WHERE is_manifest), max(received_at) FILTER (WHERE NOT is_manifest)
         FROM (SELECT received_at,
                      action = 'push' AND CASE WHEN media_type IS NULL THEN tag IS NOT NULL
                                               ELSE media_type <> $1 END AS is_manifest
               FROM regstat.events) AS e",
    )
    .bind(BLOB_MEDIA_TYPE)
    .fetch_one(&mut *db)
    .await?;
    Ok(Newest { manifests, ingest })
}

/// The number of ledger rows, and whether it is the planner's estimate
/// ([`ledger::estimated_len`], used when that is above `exact_limit`: a `count(*)` would scan
/// the whole table).
pub async fn ledger_size(
    db: &mut PgConnection,
    exact_limit: i64,
) -> Result<(i64, bool), sqlx::Error> {
    let estimate = ledger::estimated_len(&mut *db).await?;
    if estimate > exact_limit {
        return Ok((estimate, true));
    }
    let exact: i64 = sqlx::query_scalar("SELECT count(*) FROM regstat.events")
        .fetch_one(&mut *db)
        .await?;
    Ok((exact, false))
}

/// One queue as a worker last polled it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct QueueRow {
    /// Full queue name.
    pub queue: String,
    /// `work`, `retry`, `dead` or `quarantine`.
    pub role: String,
    /// Messages ready.
    pub messages: i64,
    /// Consumers attached.
    pub consumers: i64,
    /// For a work queue: the newest `received_at` a worker committed from it.
    pub newest_received_at: Option<DateTime<Utc>>,
    /// When a worker last polled it.
    pub updated_at: DateTime<Utc>,
}

/// Records what a worker polled of the broker (`regstat.queue_status`, which the console
/// reads: it never talks to the broker). The newest committed event time only moves forward.
pub async fn record_queues(pool: &sqlx::PgPool, rows: &[QueueRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.queue_status AS q (queue, role, messages, consumers,
             newest_received_at, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[],
             $5::timestamptz[], $6::timestamptz[])
         ON CONFLICT (queue) DO UPDATE SET
             role = EXCLUDED.role,
             messages = EXCLUDED.messages,
             consumers = EXCLUDED.consumers,
             newest_received_at = GREATEST(q.newest_received_at, EXCLUDED.newest_received_at),
             updated_at = EXCLUDED.updated_at",
    )
    .bind(rows.iter().map(|r| r.queue.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.role.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.messages).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.consumers).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.newest_received_at)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// The queues as workers last polled them, under `prefix` (`<prefix>.` names).
pub async fn queues(db: &mut PgConnection, prefix: &str) -> Result<Vec<QueueRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT queue, role, messages, consumers, newest_received_at, updated_at
         FROM regstat.queue_status WHERE starts_with(queue, $1) ORDER BY role, queue",
    )
    .bind(format!("{prefix}."))
    .fetch_all(&mut *db)
    .await
}
