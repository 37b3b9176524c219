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

/// The worker's writes without the broker: `count` events of the mix handed to
/// [`handler::handle_batch`] in batches of `worker.batch_size`, one batch after another, by
/// this one process (registry callbacks included, to the fast stand-in). Events per second.
pub async fn sql_writes(
    stack: &Stack,
    workload: &Arc<Mutex<Workload>>,
    count: usize,
) -> anyhow::Result<f64> {
    let settings = stack.settings()?;
    let context = Context::new(stack.pool.clone(), &settings)?;
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
    let started = Instant::now();
    for batch in messages.chunks(settings.worker.batch_size) {
        let (outcomes, _) = handler::handle_batch(&context, batch)
            .await
            .context("the database is unavailable")?;
        if let Some(outcome) = outcomes.iter().find(|o| **o != Outcome::Ack) {
            bail!("a raw write was not recorded: {outcome:?}");
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
