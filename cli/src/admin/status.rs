//! `regstat status`: queue depths and consumers, the ledger's size, and how fresh the ledger
//! is per work queue.
//!
//! **Why no "oldest waiting message".** RabbitMQ cannot show the head of a quorum queue
//! without delivering it, and a delivery counts towards the work queues' delivery limit (the
//! message would eventually be dead-lettered by peeking alone). So instead, per work queue,
//! [`Recorded::newest_recorded_age_secs`] is now minus the greatest `received_at` among the
//! ledger's events of that queue. Queues deliver in order, so every message still waiting
//! arrived after that event: when the queue is not empty, this is an upper bound of how long
//! its oldest message has waited. (Retries and redeliveries break strict order; then it is
//! an estimate.)

use super::AdminError;
use chrono::{DateTime, Utc};
use lapin::Connection;
use regstat_shared::topology::Topology;
use regstat_store::status;
use serde::Serialize;
use sqlx::PgConnection;

/// The ledger table.
pub const LEDGER_TABLE: &str = "regstat.events";

pub use regstat_store::status::EXACT_COUNT_LIMIT;

/// Everything `regstat status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Work queues, retry queues, the dead queue and the quarantine queue, in that order.
    pub queues: Vec<QueueStatus>,
    /// The event ledger.
    pub ledger: LedgerStatus,
}

/// What a queue is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Consumed by workers.
    Work,
    /// Holds events for a delay before they go back to the events exchange.
    Retry,
    /// Events that failed for good (`regstat dlq`).
    Dead,
    /// Events that arrived unusable.
    Quarantine,
}

/// One queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    /// Full name.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// Whether it exists (a receiver or worker with this prefix declares it at start).
    pub exists: bool,
    /// Messages ready for delivery (not counting those delivered and not yet acked); `None`
    /// if the queue does not exist.
    pub messages: Option<u32>,
    /// Consumers attached (workers, for work queues); `None` if the queue does not exist.
    pub consumers: Option<u32>,
    /// For work queues only: the newest event of this queue in the ledger.
    #[serde(flatten)]
    pub recorded: Option<Recorded>,
}

/// The newest ledger event of a work queue, or of the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The greatest `received_at` (when the receiver accepted the event); `None` if no such
    /// event is recorded.
    pub newest_recorded_at: Option<DateTime<Utc>>,
    /// Seconds from [`Self::newest_recorded_at`] to now: an upper bound of how long the
    /// oldest message waiting in a FIFO queue has waited (see the module docs).
    pub newest_recorded_age_secs: Option<i64>,
}

impl Recorded {
    fn at(newest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        Self {
            newest_recorded_at: newest,
            newest_recorded_age_secs: newest.map(|at| (now - at).num_seconds().max(0)),
        }
    }
}

/// The event ledger.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    /// The table.
    pub table: &'static str,
    /// Number of events (distinct ids).
    pub events: i64,
    /// Whether [`Self::events`] is the planner's estimate (`pg_class.reltuples`, above
    /// [`EXACT_COUNT_LIMIT`]) rather than an exact count.
    pub estimated: bool,
    /// The newest event in the whole ledger.
    #[serde(flatten)]
    pub recorded: Recorded,
}

/// Reads every queue's depth and consumers (passive declares: nothing is created or
/// delivered) and the ledger's size and freshness.
pub async fn collect(
    connection: &Connection,
    topology: &Topology,
    db: &mut PgConnection,
) -> Result<Status, AdminError> {
    let newest = status::newest_per_queue(db).await.map_err(database(
        "read the newest events of regstat.events (has `regstat migrate` run?)",
    ))?;
    let now = Utc::now();
    let mut names: Vec<(String, Role)> = Vec::new();
    names.extend(topology.work_queues().into_iter().map(|q| (q, Role::Work)));
    names.extend(
        topology
            .retry_queues()
            .into_iter()
            .map(|q| (q, Role::Retry)),
    );
    names.push((topology.dead_queue(), Role::Dead));
    names.push((topology.quarantine_queue(), Role::Quarantine));
    let mut queues = Vec::new();
    for (name, role) in names {
        let counts = super::inspect_queue(connection, &name).await?;
        let recorded = (role == Role::Work).then(|| {
            let at = if topology.is_manifest_queue(&name) {
                newest.manifests
            } else {
                newest.ingest
            };
            Recorded::at(at, now)
        });
        queues.push(QueueStatus {
            name,
            role,
            exists: counts.is_some(),
            messages: counts.map(|c| c.0),
            consumers: counts.map(|c| c.1),
            recorded,
        });
    }
    let (events, estimated) = status::ledger_size(db, EXACT_COUNT_LIMIT)
        .await
        .map_err(database("count the events in regstat.events"))?;
    Ok(Status {
        queues,
        ledger: LedgerStatus {
            table: LEDGER_TABLE,
            events,
            estimated,
            recorded: Recorded::at(newest.manifests.max(newest.ingest), now),
        },
    })
}

fn database(action: &'static str) -> impl FnOnce(sqlx::Error) -> AdminError {
    move |source| AdminError::Database { action, source }
}
