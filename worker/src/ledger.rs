//! The event ledger: `regstat.events`, one row per distinct event id.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

/// One ledger row, decoded from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    /// Event id (primary key).
    pub id: String,
    /// Event timestamp, or `received_at` when absent.
    pub occurred_at: DateTime<Utc>,
    /// Action as sent (`push`, `pull`, ... or unknown).
    pub action: String,
    /// `target.mediaType`.
    pub media_type: Option<String>,
    /// `target.digest`.
    pub digest: Option<String>,
    /// `target.size`.
    pub size: Option<i64>,
    /// `target.repository`.
    pub repository: Option<String>,
    /// `target.tag`.
    pub tag: Option<String>,
    /// `target.fromRepository` (mounts).
    pub from_repository: Option<String>,
    /// `actor.name`.
    pub actor: Option<String>,
    /// `request.id`.
    pub request_id: Option<String>,
    /// `request.addr`.
    pub request_addr: Option<String>,
    /// `request.host`.
    pub request_host: Option<String>,
    /// `request.method`.
    pub request_method: Option<String>,
    /// `request.useragent`.
    pub request_useragent: Option<String>,
    /// `source.addr`.
    pub source_addr: Option<String>,
    /// `source.instanceID`.
    pub source_instance_id: Option<String>,
    /// When the receiver accepted the event.
    pub received_at: DateTime<Utc>,
    /// The receiver's request id.
    pub correlation_id: Option<String>,
    /// The event JSON as received.
    pub raw: String,
}

/// Inserts rows whose id is not in the ledger yet, in one statement, and returns the ids that
/// were new. Ids already present (redeliveries, registry retries) are left untouched.
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[LedgerRow],
) -> Result<Vec<String>, sqlx::Error> {
    // Column arrays for UNNEST: one round trip whatever the batch size.
    sqlx::query_scalar(
        "INSERT INTO regstat.events (
             id, occurred_at, action, media_type, digest, size, repository, tag,
             from_repository, actor, request_id, request_addr, request_host, request_method,
             request_useragent, source_addr, source_instance_id, received_at, correlation_id, raw)
         SELECT id, occurred_at, action, media_type, digest, size, repository, tag,
                from_repository, actor, request_id, request_addr, request_host, request_method,
                request_useragent, source_addr, source_instance_id, received_at, correlation_id,
                raw::jsonb
         FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                     $17::text[], $18::timestamptz[], $19::text[], $20::text[])
              AS t(id, occurred_at, action, media_type, digest, size, repository, tag,
                   from_repository, actor, request_id, request_addr, request_host,
                   request_method, request_useragent, source_addr, source_instance_id,
                   received_at, correlation_id, raw)
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.media_type.as_deref()))
    .bind(texts(rows, |r| r.digest.as_deref()))
    .bind(rows.iter().map(|r| r.size).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.repository.as_deref()))
    .bind(texts(rows, |r| r.tag.as_deref()))
    .bind(texts(rows, |r| r.from_repository.as_deref()))
    .bind(texts(rows, |r| r.actor.as_deref()))
    .bind(texts(rows, |r| r.request_id.as_deref()))
    .bind(texts(rows, |r| r.request_addr.as_deref()))
    .bind(texts(rows, |r| r.request_host.as_deref()))
    .bind(texts(rows, |r| r.request_method.as_deref()))
    .bind(texts(rows, |r| r.request_useragent.as_deref()))
    .bind(texts(rows, |r| r.source_addr.as_deref()))
    .bind(texts(rows, |r| r.source_instance_id.as_deref()))
    .bind(rows.iter().map(|r| r.received_at).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.correlation_id.as_deref()))
    .bind(rows.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await
}

/// One optional text column of `rows`, borrowed.
fn texts<'a>(
    rows: &'a [LedgerRow],
    field: impl Fn(&'a LedgerRow) -> Option<&'a str>,
) -> Vec<Option<&'a str>> {
    rows.iter().map(field).collect()
}

/// Which of `ids` are already in the ledger.
pub async fn recorded(pool: &sqlx::PgPool, ids: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM regstat.events WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
}
