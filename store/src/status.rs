//! What `regstat status` and the worker's gauges read of the ledger: its size and how fresh
//! it is per work queue.

use crate::ledger;
use chrono::{DateTime, Utc};
use regstat_shared::event::BLOB_MEDIA_TYPE;
use sqlx::PgConnection;

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
