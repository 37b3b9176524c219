//! The worker's unit of work: a batch of messages in, one outcome per message out.
//!
//! It knows nothing of the broker: tests call [`handle_batch`] with plain [`Incoming`] values
//! and a [`Context`]. The consume loop only moves messages and applies the outcomes.
//!
//! Per batch: decode every message; learn the content of newly pushed manifests (callbacks,
//! concurrently); then, in one transaction, insert the events into the ledger and apply the
//! effects of those that were new to the registry model.
//!
//! It decides outcomes and logs nothing about single events: a message that is retried or
//! dead-lettered is logged once, where the consume loop settles it, in a span carrying its
//! event id and correlation id.

use crate::callbacks::{self, Failure};
pub use crate::outcome::{Outcome, Reason};
use chrono::{DateTime, Utc};
use regstat_registry::{Registries, Resolved};
use regstat_shared::config::Settings;
use regstat_shared::event::Event;
use regstat_store::db;
use regstat_store::ledger::{self, Entry, LedgerRow};
use regstat_store::model::{ClientKind, Content, Known, Wanted};
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
    /// `worker.pull_window_secs`.
    pub pull_window: std::time::Duration,
}

impl Context {
    /// Builds the context from settings.
    pub fn new(pool: PgPool, settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            registries: Registries::from_settings(&settings.registries, &settings.callbacks)?,
            system_agents: settings.worker.system_user_agents.clone(),
            pull_window: settings.worker.pull_window(),
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
/// Only real unavailability holds the batch: if the database rejects the lookups for another
/// reason (an event it cannot even look up, such as an id with a NUL byte), they are made
/// event by event, and an event whose own lookup is rejected is dead-lettered with the reason.
async fn learn_contents(
    ctx: &Context,
    pending: &mut [Pending],
    outcomes: &mut [Outcome],
) -> Result<(), Unavailable> {
    match learn(ctx, pending, outcomes).await {
        Ok(()) => return Ok(()),
        Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
        Err(error) => {
            tracing::warn!(%error, events = pending.len(), "database rejected the content lookups; making them event by event");
        }
    }
    for i in 0..pending.len() {
        match learn(ctx, &mut pending[i..=i], outcomes).await {
            Ok(()) => {}
            Err(error) if db::is_transient(&error) => return Err(Unavailable(error)),
            Err(error) => {
                outcomes[pending[i].position] = Outcome::DeadLetter(Reason::new(
                    "database_rejected",
                    format!("database rejected the event: {error}"),
                ));
            }
        }
    }
    Ok(())
}

/// [`learn_contents`] for `pending`, failing with the database's error.
async fn learn(
    ctx: &Context,
    pending: &mut [Pending],
    outcomes: &mut [Outcome],
) -> Result<(), sqlx::Error> {
    let wanted: Vec<&str> = pending
        .iter()
        .filter(|p| callbacks::needs_content(&p.event))
        .map(|p| p.row.id.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let recorded: HashSet<String> = ledger::recorded(&ctx.pool, &wanted)
        .await?
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
    let found = regstat_store::model::known_contents_batch(&ctx.pool, &wanted).await?;
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
            Err(Failure::Retry(reason)) => outcomes[position] = Outcome::Retry(reason),
            Err(Failure::Permanent(reason)) => outcomes[position] = Outcome::DeadLetter(reason),
        }
    }
    Ok(())
}

/// Records events with their effects in one transaction; returns how many were new.
async fn write(ctx: &Context, pending: &[Pending]) -> Result<usize, sqlx::Error> {
    let entries: Vec<Entry<'_>> = pending
        .iter()
        .map(|p| Entry {
            row: &p.row,
            event: &p.event,
            registry: &p.registry,
            client: ClientKind::of(p.event.request.useragent.as_deref(), &ctx.system_agents),
            content: p.content.as_ref(),
        })
        .collect();
    ledger::record(&ctx.pool, &entries, ctx.pull_window).await
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
