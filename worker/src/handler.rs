//! The worker's unit of work: a batch of messages in, one outcome per message out.
//!
//! It knows nothing of the broker: tests call [`handle_batch`] with plain [`Incoming`] values
//! and a [`Context`]. The consume loop only moves messages and applies the outcomes.
//!
//! Per batch: decode every message; learn the content of newly pushed manifests (callbacks,
//! concurrently); then, in one transaction, insert the events into the ledger and apply the
//! effects of those that were new to the registry model.

use crate::callbacks::{self, Failure};
use crate::db;
use crate::ledger::{self, LedgerRow};
use crate::model::{Changes, ClientKind, Content, Known, ModelEvent, Wanted};
use crate::registry::{Registries, Resolved};
use chrono::{DateTime, Utc};
use regstat_shared::config::Settings;
use regstat_shared::event::Event;
use sqlx::PgPool;
use std::collections::HashSet;

/// What handling needs besides the messages.
pub struct Context {
    /// The database.
    pub pool: PgPool,
    /// Configured registries: canonical names and callback clients.
    pub registries: Registries,
    /// `worker.system_user_agents`.
    pub system_agents: Vec<String>,
}

impl Context {
    /// Builds the context from settings.
    pub fn new(pool: PgPool, settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            registries: Registries::from_settings(&settings.registries, &settings.callbacks)?,
            system_agents: settings.worker.system_user_agents.clone(),
        })
    }
}

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
    /// Not recorded because something it needs is unavailable (the registry): try again later.
    Retry(Reason),
    /// Can never succeed (malformed, rejected by the database, refused by the registry).
    DeadLetter(Reason),
}

/// Why an event was not recorded: a stable kind (header `x-regstat-error-kind`, metric label)
/// and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `invalid_event`, `database_rejected`, `registry_unavailable`, `registry_refused` or
    /// `manifest_invalid`.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
}

impl Reason {
    /// A reason of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the message mentions `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.message.contains(text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What a batch did, for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// New ledger rows.
    pub stored: usize,
    /// Events already in the ledger (redeliveries, registry retries, duplicates in the batch).
    pub duplicates: usize,
    /// Messages to try again later.
    pub retried: usize,
    /// Messages that can never be processed.
    pub dead_lettered: usize,
}

/// The database is unavailable: nothing was committed; retry the whole batch later.
#[derive(Debug, thiserror::Error)]
#[error("database unavailable")]
pub struct Unavailable(#[from] pub sqlx::Error);

/// A decoded message on its way to the database.
struct Pending {
    position: usize,
    row: LedgerRow,
    event: Event,
    registry: String,
    content: Option<Content>,
}

/// Records a batch and says what to do with each message.
///
/// Malformed messages are dead-lettered without touching the database. If the database
/// rejects the batch for a reason other than unavailability, the events are retried one by one
/// so that a single bad event cannot hold up the others.
pub async fn handle_batch(
    ctx: &Context,
    messages: &[Incoming],
) -> Result<(Vec<Outcome>, BatchSummary), Unavailable> {
    let mut outcomes = vec![Outcome::Ack; messages.len()];
    let mut pending = Vec::with_capacity(messages.len());
    for (position, message) in messages.iter().enumerate() {
        match decode(message) {
            Ok((row, event)) => {
                let registry = ctx.registries.resolve(event.request.host.as_deref()).name;
                pending.push(Pending {
                    position,
                    row,
                    event,
                    registry,
                    content: None,
                });
            }
            Err(reason) => {
                tracing::error!(%reason, "malformed message; dead-lettering it");
                outcomes[position] = Outcome::DeadLetter(Reason::new("invalid_event", reason));
            }
        }
    }
    learn_contents(ctx, &mut pending, &mut outcomes).await?;
    pending.retain(|p| outcomes[p.position] == Outcome::Ack);

    let mut summary = BatchSummary::default();
    if !pending.is_empty() {
        match write(ctx, &pending).await {
            Ok(stored) => summary.stored = stored,
            Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
            Err(error) => {
                tracing::warn!(%error, events = pending.len(), "database rejected the batch; writing events one by one");
                for one in &pending {
                    match write(ctx, std::slice::from_ref(one)).await {
                        Ok(stored) => summary.stored += stored,
                        Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
                        Err(error) => {
                            tracing::error!(event.id = %one.row.id, %error, "database rejected the event; dead-lettering it");
                            outcomes[one.position] = Outcome::DeadLetter(Reason::new(
                                "database_rejected",
                                format!("database rejected the event: {error}"),
                            ));
                        }
                    }
                }
            }
        }
    }
    for outcome in &outcomes {
        match outcome {
            Outcome::Ack => {}
            Outcome::Retry(_) => summary.retried += 1,
            Outcome::DeadLetter(_) => summary.dead_lettered += 1,
        }
    }
    summary.duplicates = messages.len() - summary.stored - summary.retried - summary.dead_lettered;
    Ok((outcomes, summary))
}

/// Calls registries back for the manifests pushed in this batch that are not recorded yet.
async fn learn_contents(
    ctx: &Context,
    pending: &mut [Pending],
    outcomes: &mut [Outcome],
) -> Result<(), Unavailable> {
    let wanted: Vec<&str> = pending
        .iter()
        .filter(|p| callbacks::needs_content(&p.event))
        .map(|p| p.row.id.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let recorded: HashSet<String> = ledger::recorded(&ctx.pool, &wanted)
        .await
        .map_err(Unavailable)?
        .into_iter()
        .collect();
    let needed: Vec<(&Pending, Resolved<'_>)> = pending
        .iter()
        .filter(|p| callbacks::needs_content(&p.event) && !recorded.contains(&p.row.id))
        .map(|p| (p, ctx.registries.resolve(p.event.request.host.as_deref())))
        .collect();
    // Content already in the database, for the whole batch in one statement.
    let targets: Vec<(usize, Wanted<'_>)> = needed
        .iter()
        .enumerate()
        .filter_map(|(i, (p, registry))| {
            let (repository, digest) = callbacks::callback_target(&p.event, registry)?;
            Some((
                i,
                Wanted {
                    registry: registry.name.as_str(),
                    repository,
                    digest,
                },
            ))
        })
        .collect();
    let wanted: Vec<Wanted<'_>> = targets.iter().map(|(_, w)| *w).collect();
    let mut known: Vec<Option<Known>> = vec![None; needed.len()];
    let found = crate::model::known_contents_batch(&ctx.pool, &wanted)
        .await
        .map_err(Unavailable)?;
    for ((i, _), content) in targets.iter().zip(found) {
        known[*i] = content;
    }
    let lookups = needed
        .iter()
        .zip(known)
        .map(|((p, registry), known)| async move {
            (
                p.position,
                callbacks::content(&p.event, registry, known).await,
            )
        });
    let results = futures_util::future::join_all(lookups).await;
    for (position, result) in results {
        match result {
            Ok(content) => {
                if let Some(p) = pending.iter_mut().find(|p| p.position == position) {
                    p.content = content;
                }
            }
            Err(Failure::Retry(reason)) => {
                tracing::warn!(%reason, "manifest content unavailable; the event will be retried");
                outcomes[position] = Outcome::Retry(reason);
            }
            Err(Failure::Permanent(reason)) => {
                tracing::error!(%reason, "manifest content refused; dead-lettering the event");
                outcomes[position] = Outcome::DeadLetter(reason);
            }
        }
    }
    Ok(())
}

/// Writes events in one transaction: ledger rows, then the effects of the new ones. Returns
/// how many were new.
async fn write(ctx: &Context, pending: &[Pending]) -> Result<usize, sqlx::Error> {
    // Sorted by id, like the state tables by key, so concurrent workers take row locks in
    // the same order and cannot deadlock on overlapping batches.
    let mut rows: Vec<LedgerRow> = pending.iter().map(|p| p.row.clone()).collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let mut tx = ctx.pool.begin().await?;
    let inserted: HashSet<String> = ledger::insert(&mut tx, &rows).await?.into_iter().collect();
    let mut changes = Changes::default();
    let mut applied = HashSet::new();
    for p in pending {
        // Each new id once, even if the batch holds it twice.
        if inserted.contains(&p.row.id) && applied.insert(p.row.id.as_str()) {
            changes.record(&ModelEvent {
                id: &p.row.id,
                event: &p.event,
                registry: &p.registry,
                at: p.row.occurred_at,
                client: ClientKind::of(p.event.request.useragent.as_deref(), &ctx.system_agents),
                content: p.content.as_ref(),
            });
        }
    }
    crate::model::apply(&mut tx, &changes).await?;
    tx.commit().await?;
    for id in &inserted {
        tracing::debug!(event.id = %id, "event recorded");
    }
    Ok(inserted.len())
}

/// Turns a message into a ledger row and its parsed event, or says why it can never be one.
pub fn decode(message: &Incoming) -> Result<(LedgerRow, Event), String> {
    let raw = std::str::from_utf8(&message.body)
        .map_err(|e| format!("message body is not UTF-8: {e}"))?;
    let event = Event::parse_valid(raw.as_bytes()).map_err(|e| format!("invalid event: {e}"))?;
    let received_at = message.received_at.unwrap_or_else(Utc::now);
    let target = event.target.clone().unwrap_or_default();
    let size = target
        .size
        .map(i64::try_from)
        .transpose()
        .map_err(|_| "target.size is out of range".to_owned())?;
    let row = LedgerRow {
        id: event.id.clone().unwrap_or_default(),
        occurred_at: event.timestamp.unwrap_or(received_at),
        action: event
            .action
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        media_type: target.media_type,
        digest: target.digest,
        size,
        repository: target.repository,
        tag: target.tag,
        from_repository: target.from_repository,
        actor: event.actor.name.clone(),
        request_id: event.request.id.clone(),
        request_addr: event.request.addr.clone(),
        request_host: event.request.host.clone(),
        request_method: event.request.method.clone(),
        request_useragent: event.request.useragent.clone(),
        source_addr: event.source.addr.clone(),
        source_instance_id: event.source.instance_id.clone(),
        received_at,
        correlation_id: message.correlation_id.clone(),
        raw: raw.to_owned(),
    };
    Ok((row, event))
}
