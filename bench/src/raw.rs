//! The raw limits regstat is compared with, measured on the same services in the same run:
//! confirmed publishing straight to RabbitMQ, and the worker's SQL writes issued directly.

use crate::stack::Stack;
use crate::workload::{FixtureShapes, Workload};
use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use regstat_shared::event::Event;
use regstat_worker::handler::{self, Context, Incoming, Outcome};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Confirms outstanding at once in the pipelined limit.
const WINDOW: usize = 1024;

/// A fixture-shaped event, as the receiver would publish it: body, routing key, message id.
fn message(shapes: &mut FixtureShapes) -> anyhow::Result<(Vec<u8>, String, String)> {
    let body = shapes.next_event();
    let event = Event::parse(body.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = event.id.clone().unwrap_or_default();
    Ok((body.into_bytes(), event.routing_key(), id))
}

async fn publish(
    channel: &Channel,
    stack: &Stack,
    (body, key, id): (Vec<u8>, String, String),
) -> anyhow::Result<PublisherConfirm> {
    Ok(channel
        .basic_publish(
            stack.topology.exchange().into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(id.into()),
        )
        .await?)
}

fn confirmed(confirmation: Confirmation) -> anyhow::Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("the broker did not take a message: {other:?}"),
    }
}

/// One confirmed publish at a time (the receiver's serial case without HTTP): latencies.
/// `channel` must be in confirm mode ([`Stack::confirm_channel`]).
pub async fn serial_publish(
    channel: &Channel,
    stack: &Stack,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut shapes = FixtureShapes::default();
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let message = message(&mut shapes)?;
        let started = Instant::now();
        confirmed(publish(channel, stack, message).await?.await?)?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Pipelined confirmed publishing on one channel ([`WINDOW`] in flight) for `duration`:
/// messages confirmed per second.
pub async fn pipelined_publish(stack: &Stack, duration: Duration) -> anyhow::Result<f64> {
    let channel = stack.confirm_channel().await?;
    let mut shapes = FixtureShapes::default();
    let mut in_flight = FuturesUnordered::new();
    let mut confirmed_count = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        while in_flight.len() < WINDOW {
            in_flight.push(publish(&channel, stack, message(&mut shapes)?).await?);
        }
        if let Some(confirmation) = in_flight.next().await {
            confirmed(confirmation?)?;
            confirmed_count += 1;
        }
    }
    while let Some(confirmation) = in_flight.next().await {
        confirmed(confirmation?)?;
        confirmed_count += 1;
    }
    let rate = confirmed_count as f64 / started.elapsed().as_secs_f64();
    let _ = channel.close(200, "done".into()).await;
    Ok(rate)
}

/// What the worker's writes of one event cost PostgreSQL, from its own statistics.
#[derive(Debug, Clone, Default)]
pub struct WriteCost {
    /// WAL bytes (the WAL position's advance).
    pub wal_bytes: f64,
    /// Of the WAL records, full-page images (a page's first change after a checkpoint).
    pub full_page_images: f64,
    /// Table rows inserted, updated or deleted.
    pub rows: f64,
    /// Index entries written: every index of a table gets one per row inserted and per
    /// update that is not HOT.
    pub index_entries: f64,
    /// Every table written, with its rows and index entries per event, most entries first.
    pub tables: Vec<(String, f64, f64)>,
}

/// The worker's SQL writes by one process: events per second, and what each cost.
#[derive(Debug, Clone, Default)]
pub struct SqlWrites {
    /// Events per second.
    pub rate: f64,
    /// Per event.
    pub cost: WriteCost,
}

/// Cumulative figures of the stack's database and the server's WAL.
struct Counters {
    wal_position: f64,
    full_page_images: f64,
    /// Per table: rows written, index entries written.
    tables: Vec<(String, f64, f64)>,
}

async fn counters(pool: &sqlx::PgPool) -> anyhow::Result<Counters> {
    let (wal_position, full_page_images): (f64, f64) = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, wal_fpi::float8
         FROM pg_stat_wal",
    )
    .fetch_one(pool)
    .await?;
    let tables = sqlx::query_as(
        "SELECT t.relname::text,
                (t.n_tup_ins + t.n_tup_upd + t.n_tup_del)::float8,
                ((t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd)
                 * (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid))::float8
         FROM pg_stat_user_tables t",
    )
    .fetch_all(pool)
    .await?;
    Ok(Counters {
        wal_position,
        full_page_images,
        tables,
    })
}

impl WriteCost {
    /// From `before` to `after`, per event of `events`.
    fn between(before: &Counters, after: &Counters, events: f64) -> Self {
        let mut tables: Vec<(String, f64, f64)> = after
            .tables
            .iter()
            .map(|(name, rows, entries)| {
                let (rows_before, entries_before) = before
                    .tables
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map_or((0.0, 0.0), |(_, r, e)| (*r, *e));
                (
                    name.clone(),
                    (rows - rows_before) / events,
                    (entries - entries_before) / events,
                )
            })
            .filter(|(_, rows, _)| *rows > 0.0)
            .collect();
        tables.sort_by(|a, b| b.2.total_cmp(&a.2));
        Self {
            wal_bytes: (after.wal_position - before.wal_position) / events,
            full_page_images: (after.full_page_images - before.full_page_images) / events,
            rows: tables.iter().map(|t| t.1).sum(),
            index_entries: tables.iter().map(|t| t.2).sum(),
            tables,
        }
    }
}

/// The worker's writes without the broker: `count` events of the mix handed to
/// [`handler::handle_batch`] in batches of `worker.batch_size`, one batch after another, by
/// this one process (registry callbacks included, to the fast stand-in): events per second,
/// and the WAL, rows and index entries each cost (read from PostgreSQL's statistics once the
/// writing connections have closed, as a backend reports its statistics when it ends).
pub async fn sql_writes(
    stack: &Stack,
    workload: &Arc<Mutex<Workload>>,
    count: usize,
) -> anyhow::Result<SqlWrites> {
    let settings = stack.settings()?;
    // A pool of its own, made as the worker makes it, closed when done (see below).
    let writers = regstat_store::db::pool(&settings.database)?;
    let context = Context::new(writers.clone(), &settings)?;
    let now = chrono::Utc::now();
    let messages: Vec<Incoming> = {
        let mut workload = workload
            .lock()
            .map_err(|_| anyhow::anyhow!("workload lock poisoned"))?;
        (0..count)
            .map(|_| Incoming {
                body: workload.next_event().1.into_bytes(),
                correlation_id: Some(uuid::Uuid::new_v4().to_string()),
                received_at: Some(now),
            })
            .collect()
    };
    let before = counters(&stack.pool).await?;
    let started = Instant::now();
    for batch in messages.chunks(settings.worker.batch_size) {
        let (outcomes, _) = handler::handle_batch(&context, batch)
            .await
            .context("the database is unavailable")?;
        if let Some(outcome) = outcomes.iter().find(|o| **o != Outcome::Ack) {
            bail!("a raw write was not recorded: {outcome:?}");
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    drop(context);
    writers.close().await;
    // A backend's statistics reach the shared ones when it ends; wait for every writer's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = counters(&stack.pool).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = counters(&stack.pool).await?;
        let settled = again.tables == after.tables;
        after = again;
        if settled || Instant::now() > deadline {
            break;
        }
    }
    Ok(SqlWrites {
        rate,
        cost: WriteCost::between(&before, &after, count as f64),
    })
}
