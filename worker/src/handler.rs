//! The worker's unit of work: a batch of messages in, one outcome per message out.
//!
//! It knows nothing of the broker: tests call [`handle_batch`] with plain [`Incoming`] values
//! and a database pool. The consume loop only moves messages and applies the outcomes.

use crate::db;
use crate::ledger::{self, LedgerRow};
use chrono::{DateTime, Utc};
use regstat_shared::event::Event;
use sqlx::PgPool;

/// A message as the handler needs it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The event JSON exactly as the registry sent it.
    pub body: Vec<u8>,
    /// The receiver's request id (AMQP correlation id).
    pub correlation_id: Option<String>,
    /// When the receiver accepted the event.
    pub received_at: Option<DateTime<Utc>>,
}

/// What to do with one message once the batch is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durably recorded (or already recorded): acknowledge.
    Ack,
    /// Can never succeed (malformed, or rejected by the database): dead-letter it.
    DeadLetter(String),
}

/// What a batch did, for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// New ledger rows.
    pub stored: usize,
    /// Events already in the ledger (redeliveries, registry retries, duplicates in the batch).
    pub duplicates: usize,
    /// Messages that can never be processed.
    pub dead_lettered: usize,
}

/// The database is unavailable: nothing was committed; retry the whole batch later.
#[derive(Debug, thiserror::Error)]
#[error("database unavailable")]
pub struct Unavailable(#[from] pub sqlx::Error);

/// Records a batch in the ledger in one transaction and says what to do with each message.
///
/// Malformed messages are dead-lettered without touching the database. If the database
/// rejects the batch for a reason other than unavailability, the rows are retried one by one
/// so that a single bad event cannot hold up the others.
pub async fn handle_batch(
    pool: &PgPool,
    messages: &[Incoming],
) -> Result<(Vec<Outcome>, BatchSummary), Unavailable> {
    let mut outcomes = vec![Outcome::Ack; messages.len()];
    let mut rows = Vec::with_capacity(messages.len());
    let mut positions = Vec::with_capacity(messages.len());
    for (position, message) in messages.iter().enumerate() {
        match decode(message) {
            Ok(row) => {
                rows.push(row);
                positions.push(position);
            }
            Err(reason) => {
                tracing::error!(%reason, "malformed message; dead-lettering it");
                outcomes[position] = Outcome::DeadLetter(reason);
            }
        }
    }
    let mut summary = BatchSummary {
        dead_lettered: messages.len() - rows.len(),
        ..BatchSummary::default()
    };
    if rows.is_empty() {
        return Ok((outcomes, summary));
    }
    match write(pool, &rows).await {
        Ok(stored) => summary.stored = stored,
        Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
        Err(error) => {
            tracing::warn!(%error, rows = rows.len(), "database rejected the batch; writing events one by one");
            for (row, position) in rows.iter().zip(&positions) {
                match write(pool, std::slice::from_ref(row)).await {
                    Ok(stored) => summary.stored += stored,
                    Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
                    Err(error) => {
                        tracing::error!(event.id = %row.id, %error, "database rejected the event; dead-lettering it");
                        outcomes[*position] =
                            Outcome::DeadLetter(format!("database rejected the event: {error}"));
                        summary.dead_lettered += 1;
                    }
                }
            }
        }
    }
    summary.duplicates = messages.len() - summary.stored - summary.dead_lettered;
    Ok((outcomes, summary))
}

/// Writes rows in one transaction; returns how many were new.
async fn write(pool: &PgPool, rows: &[LedgerRow]) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = ledger::insert(&mut tx, rows).await?;
    tx.commit().await?;
    for id in &inserted {
        tracing::debug!(event.id = %id, "event recorded");
    }
    Ok(inserted.len())
}

/// Turns a message into a ledger row, or says why it can never become one.
pub fn decode(message: &Incoming) -> Result<LedgerRow, String> {
    let raw = std::str::from_utf8(&message.body)
        .map_err(|e| format!("message body is not UTF-8: {e}"))?;
    let event = Event::parse_valid(raw.as_bytes()).map_err(|e| format!("invalid event: {e}"))?;
    let received_at = message.received_at.unwrap_or_else(Utc::now);
    let target = event.target.unwrap_or_default();
    let size = target
        .size
        .map(i64::try_from)
        .transpose()
        .map_err(|_| "target.size is out of range".to_owned())?;
    Ok(LedgerRow {
        id: event.id.unwrap_or_default(),
        occurred_at: event.timestamp.unwrap_or(received_at),
        action: event
            .action
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        media_type: target.media_type,
        digest: target.digest,
        size,
        repository: target.repository,
        tag: target.tag,
        from_repository: target.from_repository,
        actor: event.actor.name,
        request_id: event.request.id,
        request_addr: event.request.addr,
        request_host: event.request.host,
        request_method: event.request.method,
        request_useragent: event.request.useragent,
        source_addr: event.source.addr,
        source_instance_id: event.source.instance_id,
        received_at,
        correlation_id: message.correlation_id.clone(),
        raw: raw.to_owned(),
    })
}
