//! The dead-letter queue: list, replay and purge without losing anything not asked for.
//!
//! [`DeadLetterQueue::open`] takes every message the queue holds at that moment with
//! `basic.get` and manual acknowledgement, and holds them unacknowledged on a channel of its
//! own. Then exactly one of:
//! - [`DeadLetterQueue::release`]: nothing is acked; closing the channel returns every message
//!   to the queue (`dlq list`, `dlq replay --dry-run`, a declined purge);
//! - [`DeadLetterQueue::replay`]: each selected message is republished to the events exchange
//!   and acked (removed) only after the broker confirmed the republish;
//! - [`DeadLetterQueue::purge`]: each selected message is acked (removed).
//!
//! Unselected messages are always returned. If the process dies midway, the broker returns
//! everything unacked as well. Returning a message counts as a delivery on a quorum queue;
//! the dead queue has no delivery limit, so that is harmless there.
//!
//! While a command holds the messages, another `dlq` command sees the queue without them.

use super::AdminError;
use super::letter::{DeadLetter, replay_headers};
use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use regstat_shared::event::Event;
use regstat_shared::topology::Topology;
use serde::Serialize;
use std::time::Duration;

/// Longest wait for the broker to show returned messages as ready again.
const RETURN_WAIT: Duration = Duration::from_secs(5);

/// How long the dead queue's count must hold still before returned copies are looked for.
const SETTLED_FOR: Duration = Duration::from_millis(500);

/// Rounds of taking back returned copies of removed dead letters (see [`resettle`]).
const RESETTLE_ROUNDS: usize = 5;

/// What identifies one dead letter exactly: its message id, headers (without the delivery
/// count, which a return increments) and body. A later dead letter of the same event differs
/// (its failure headers carry another time), so it is never taken for a returned copy.
type Fingerprint = (Option<String>, FieldTable, Vec<u8>);

fn fingerprint(delivery: &Delivery) -> Fingerprint {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let mut table = std::collections::BTreeMap::new();
    for (key, value) in headers.inner() {
        if key.as_str() != "x-delivery-count" {
            table.insert(key.clone(), value.clone());
        }
    }
    headers = FieldTable::from(table);
    (
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        headers,
        delivery.data.clone(),
    )
}

/// Which dead letters a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every dead letter.
    All,
    /// Dead letters with one of these event ids (every copy, if an id was dead-lettered
    /// twice).
    Ids(Vec<String>),
}

impl Selection {
    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        match self {
            Selection::All => true,
            Selection::Ids(ids) => letter.id.as_ref().is_some_and(|id| ids.contains(id)),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    /// Dead letters republished (and removed from the dead queue).
    pub replayed: Vec<DeadLetter>,
    /// Dead letters left in the dead queue (not selected, or not accepted by the broker).
    pub kept: usize,
    /// Requested ids that matched no dead letter.
    pub not_found: Vec<String>,
    /// Selected dead letters the broker did not accept (kept in the dead queue).
    pub failed: Vec<ReplayFailure>,
    /// Selected dead letters received before the dedupe horizon, kept in the dead queue: the
    /// worker would refuse them (their ids may have been forgotten).
    pub before_horizon: Vec<DeadLetter>,
}

/// A dead letter whose republish the broker refused.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayFailure {
    /// The event id.
    pub id: Option<String>,
    /// The routing key it was republished with.
    pub routing_key: String,
    /// What the broker said (nacked, or returned as unroutable).
    pub error: String,
}

/// What a purge did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeSummary {
    /// Dead letters deleted.
    pub deleted: Vec<DeadLetter>,
    /// Dead letters left in the queue.
    pub kept: usize,
    /// Requested ids that matched no dead letter.
    pub not_found: Vec<String>,
}

/// Every message in the dead queue, which keeps them all (see the module docs).
pub async fn list(
    connection: &Connection,
    topology: &Topology,
) -> Result<Vec<DeadLetter>, AdminError> {
    let queue = DeadLetterQueue::open(connection, topology).await?;
    let letters = queue.letters().cloned().collect();
    queue.release().await?;
    Ok(letters)
}

/// A message taken from the dead queue and not yet settled.
struct Held {
    delivery: Delivery,
    letter: DeadLetter,
}

/// The dead queue's messages, held unacknowledged until replayed, purged or released.
pub struct DeadLetterQueue<'c> {
    /// The connection, for taking back returned copies after closing.
    connection: &'c Connection,
    /// The topology, for the same.
    topology: Topology,
    /// The dead queue's name, for error messages.
    queue: String,
    /// Where replayed events go.
    exchange: String,
    /// The channel holding the messages; closing it returns the unacked ones.
    reader: Channel,
    /// Publishes replays, in confirm mode.
    publisher: Channel,
    /// The messages, in queue order.
    held: Vec<Held>,
    /// Messages ready in the queue when it was opened (what was taken, normally).
    ready_at_open: u32,
}

impl<'c> DeadLetterQueue<'c> {
    /// Takes the messages the dead queue holds now (not those dead-lettered meanwhile, so a
    /// busy queue cannot keep this going forever), unacknowledged.
    pub async fn open(connection: &'c Connection, topology: &Topology) -> Result<Self, AdminError> {
        let queue = topology.dead_queue();
        let Some((ready, _consumers)) = super::inspect_queue(connection, &queue).await? else {
            return Err(AdminError::MissingQueue { queue });
        };
        let reader = connection
            .create_channel()
            .await
            .map_err(AdminError::broker("open a channel"))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(AdminError::broker("open a channel"))?;
        let now = chrono::Utc::now();
        let mut held = Vec::new();
        while held.len() < ready as usize {
            let got = reader
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(AdminError::broker(format!("read queue {queue}")))?;
            let Some(message) = got else { break };
            let delivery = message.delivery;
            let letter = DeadLetter::read(
                delivery.routing_key.as_str(),
                &delivery.properties,
                &delivery.data,
                now,
            );
            held.push(Held { delivery, letter });
        }
        Ok(Self {
            connection,
            topology: topology.clone(),
            queue,
            exchange: topology.exchange(),
            reader,
            publisher,
            held,
            ready_at_open: ready,
        })
    }

    /// The dead letters, in queue order.
    pub fn letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.held.iter().map(|h| &h.letter)
    }

    /// The dead letters `selection` picks.
    pub fn selected<'a>(
        &'a self,
        selection: &'a Selection,
    ) -> impl Iterator<Item = &'a DeadLetter> {
        self.letters().filter(move |l| selection.matches(l))
    }

    /// Requested ids that match no dead letter.
    pub fn not_found(&self, selection: &Selection) -> Vec<String> {
        match selection {
            Selection::All => Vec::new(),
            Selection::Ids(ids) => ids
                .iter()
                .filter(|id| !self.letters().any(|l| l.id.as_ref() == Some(*id)))
                .cloned()
                .collect(),
        }
    }

    /// Returns every message to the queue, unchanged.
    pub async fn release(self) -> Result<(), AdminError> {
        self.close(0).await
    }

    /// Republishes the selected dead letters to the events exchange with their routing key
    /// (recomputed for the current shard count, see `replay_key`),
    /// body and properties (message id, correlation id...) but without the failure headers,
    /// persistent and mandatory; removes each from the dead queue once the broker confirmed
    /// its republish, and returns the rest. Repeating a replay is harmless: the worker
    /// deduplicates on the event id. Letters received before `horizon` (the dedupe horizon,
    /// [`regstat_store::retention::dedupe_horizon`]) are kept and listed instead: the worker
    /// would refuse them and dead-letter them again.
    pub async fn replay(
        self,
        selection: &Selection,
        horizon: Option<DateTime<Utc>>,
    ) -> Result<ReplaySummary, AdminError> {
        let not_found = self.not_found(selection);
        let replay_error = AdminError::broker(format!(
            "replay dead letters from {} to {}",
            self.queue, self.exchange
        ));
        self.publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(replay_error)?;
        let before_horizon: Vec<DeadLetter> = self
            .selected(selection)
            .filter(|letter| letter.before(horizon))
            .cloned()
            .collect();
        let mut pending = Vec::new();
        for held in self
            .held
            .iter()
            .filter(|h| selection.matches(&h.letter) && !h.letter.before(horizon))
        {
            let delivery = &held.delivery;
            let properties = delivery
                .properties
                .clone()
                .with_headers(replay_headers(delivery.properties.headers()))
                .with_delivery_mode(2);
            let published = self
                .publisher
                .basic_publish(
                    self.exchange.as_str().into(),
                    self.replay_key(delivery),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    properties,
                )
                .await;
            pending.push((held, published));
        }
        let mut replayed = Vec::new();
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for (held, published) in pending {
            let outcome = match published {
                Ok(confirm) => confirm.await,
                Err(error) => Err(error),
            };
            let error = match outcome {
                Ok(Confirmation::Ack(None)) => {
                    held.delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(self.interrupted(replayed.len()))?;
                    replayed.push(held.letter.clone());
                    removed.push(fingerprint(&held.delivery));
                    continue;
                }
                Ok(Confirmation::Ack(Some(returned))) => format!(
                    "returned as unroutable: {} (is routing key {:?} bound to {}?)",
                    returned.reply_text, held.letter.routing_key, self.exchange
                ),
                Ok(Confirmation::Nack(_)) => "nacked by the broker".to_owned(),
                Ok(Confirmation::NotRequested) => "not confirmed by the broker".to_owned(),
                Err(source) => return Err(self.interrupted(replayed.len())(source)),
            };
            failed.push(ReplayFailure {
                id: held.letter.id.clone(),
                routing_key: held.letter.routing_key.clone(),
                error,
            });
        }
        let kept = self.held.len() - replayed.len();
        let (connection, topology) = (self.connection, self.topology.clone());
        self.close(replayed.len()).await?;
        resettle(connection, &topology, removed).await?;
        Ok(ReplaySummary {
            replayed,
            kept,
            not_found,
            failed,
            before_horizon,
        })
    }

    /// Deletes the selected dead letters and returns the rest.
    pub async fn purge(self, selection: &Selection) -> Result<PurgeSummary, AdminError> {
        let not_found = self.not_found(selection);
        let mut deleted = Vec::new();
        let mut removed = Vec::new();
        for held in self.held.iter().filter(|h| selection.matches(&h.letter)) {
            held.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(AdminError::broker(format!(
                    "delete dead letters from {} (after {} were deleted)",
                    self.queue,
                    deleted.len()
                )))?;
            deleted.push(held.letter.clone());
            removed.push(fingerprint(&held.delivery));
        }
        let kept = self.held.len() - deleted.len();
        let (connection, topology) = (self.connection, self.topology.clone());
        self.close(deleted.len()).await?;
        resettle(connection, &topology, removed).await?;
        Ok(PurgeSummary {
            deleted,
            kept,
            not_found,
        })
    }

    /// The error for a replay cut short after `done` dead letters were replayed (those are
    /// settled; the rest return to the queue).
    /// The routing key a letter is replayed with: the one the receiver would give its event
    /// now (the same as it had, unless `amqp.shards` changed since), or, for a body that is
    /// no event, the one it had.
    fn replay_key(&self, delivery: &Delivery) -> lapin::types::ShortString {
        match Event::parse_checked(&delivery.data) {
            Ok(event) => self.topology.routing_key(&event).into(),
            Err(_) => delivery.routing_key.clone(),
        }
    }

    fn interrupted(&self, done: usize) -> impl FnOnce(lapin::Error) -> AdminError {
        AdminError::broker(format!(
            "replay dead letters from {} to {} (interrupted after {done} were replayed; \
             the others stay in the dead queue)",
            self.queue, self.exchange
        ))
    }

    /// Closes the reading channel, so the broker returns every unacked message to the queue
    /// (acks sent before are processed first: a channel is ordered), then waits up to
    /// [`RETURN_WAIT`] until the queue shows them ready again. A quorum queue takes them back
    /// asynchronously, after the channel is closed; without the wait, a command run right
    /// after this one could miss them.
    async fn close(self, removed: usize) -> Result<(), AdminError> {
        if self.reader.status().connected() {
            self.reader
                .close(200, "done".into())
                .await
                .map_err(AdminError::broker(format!(
                    "return messages to {} (they return anyway when the connection closes)",
                    self.queue
                )))?;
        }
        let removed = u32::try_from(removed).unwrap_or(u32::MAX);
        let expected = self.ready_at_open.saturating_sub(removed);
        let deadline = tokio::time::Instant::now() + RETURN_WAIT;
        while tokio::time::Instant::now() < deadline {
            match super::inspect_queue(self.connection, &self.queue).await {
                Ok(Some((ready, _))) if ready < expected => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // Back, or the queue is gone (nothing to wait for).
                _ => break,
            }
        }
        let _ = self.publisher.close(200, "done".into()).await;
        Ok(())
    }
}

/// A quorum queue can drop acknowledgements that are still in flight when their channel
/// closes (rabbitmq-server#10327): the acked messages come back. Takes back every returned
/// copy of a removed dead letter (same fingerprint) and acknowledges it again, round after
/// round, until none comes back. Everything else is returned untouched.
async fn resettle(
    connection: &Connection,
    topology: &Topology,
    removed: Vec<Fingerprint>,
) -> Result<(), AdminError> {
    if removed.is_empty() {
        return Ok(());
    }
    for _ in 0..RESETTLE_ROUNDS {
        wait_until_settled(connection, &topology.dead_queue()).await?;
        let mut queue = DeadLetterQueue::open(connection, topology).await?;
        // Each removed letter matches at most one copy per round.
        let mut wanted = removed.clone();
        let mut acked = 0;
        for held in std::mem::take(&mut queue.held) {
            let print = fingerprint(&held.delivery);
            if let Some(at) = wanted.iter().position(|r| *r == print) {
                wanted.swap_remove(at);
                held.delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(AdminError::broker(format!("settle {}", queue.queue)))?;
                acked += 1;
            } else {
                queue.held.push(held);
            }
        }
        if acked == 0 {
            queue.release().await?;
            return Ok(());
        }
        tracing::warn!(
            returned = acked,
            "the broker returned dead letters that were already removed; removed them again"
        );
        queue.close(acked).await?;
    }
    Ok(())
}

/// Waits until the queue's ready count has not changed for [`SETTLED_FOR`] (at most
/// [`RETURN_WAIT`]): returned messages reappear asynchronously after a channel closes, and
/// when every letter was removed there is no expected count to wait for.
async fn wait_until_settled(connection: &Connection, queue: &str) -> Result<(), AdminError> {
    let deadline = tokio::time::Instant::now() + RETURN_WAIT;
    let mut last = None;
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        let ready = super::inspect_queue(connection, queue)
            .await?
            .map(|(ready, _)| ready);
        if ready != last {
            last = ready;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= SETTLED_FOR {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
