//! The consume loop: moves messages from RabbitMQ to [`handle_batch`](crate::handler::handle_batch) and back.
//!
//! Each work queue gets its own channel and consumer, so a slow queue never holds up the other
//! and, with one consumer per channel, acknowledging "everything up to tag N" is exact.
//! Batches: the first delivery starts a batch, which takes whatever else arrives within
//! `worker.batch_linger_ms`, up to `worker.batch_size`. A batch is committed, then acked.
//! While the database is down the batch is held and retried with backoff (and the prefetch
//! limit stops further deliveries); on shutdown an unfinished batch is left unacked, so the
//! broker redelivers it.
//!
//! Retries and dead letters are published on a connection of their own: RabbitMQ blocks a
//! connection that publishes during a memory or disk alarm (it stops reading from it, acks
//! included), and the consumers' connection must keep acknowledging the batches that need no
//! publish. A batch whose retries or dead letters are not confirmed within
//! `amqp.confirm_timeout_ms` keeps waiting for them (the broker confirms once the alarm
//! clears), unacknowledged, and readiness says the worker is stalled meanwhile.

use crate::handler::{self, Context, Incoming, Outcome};
use crate::http::{self, Readiness};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Confirmation, Connection, Consumer};
use regstat_shared::amqp;
use regstat_shared::backoff::{self, Backoff, Policy};
use regstat_shared::config::Settings;
use regstat_shared::topology::{
    ATTEMPTS_HEADER, ERROR_KIND_HEADER, FIRST_FAILURE_HEADER, LAST_FAILURE_HEADER, REASON_HEADER,
    RECEIVED_AT_HEADER, Topology, header_i64,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The first reconnection or database retry delay; it doubles up to the configured maximum.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Delays between database retries of a held batch.
const DB_RETRY: Policy = Policy::exponential(INITIAL_BACKOFF, Duration::from_secs(5));

/// Longest wait for the broker to confirm a consumer's cancel and its channel's close on
/// shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Consumes until `shutdown` is cancelled, reconnecting to the broker whenever the link fails.
pub async fn run(
    settings: &Settings,
    ctx: &Context,
    readiness: &Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let topology = Topology::from_settings(&settings.amqp);
    let mut reconnects = Backoff::new(Policy::exponential(
        INITIAL_BACKOFF,
        settings.amqp.reconnect_max_backoff(),
    ));
    loop {
        let session = Session {
            settings,
            topology: &topology,
            ctx,
            readiness,
            shutdown: &shutdown,
        };
        let Err(error) = session.run(&mut reconnects).await else {
            return;
        };
        let delay = reconnects.next_delay();
        tracing::warn!(
            %error,
            retry_in_ms = delay.as_millis() as u64,
            "broker link failed; reconnecting"
        );
        if !backoff::pause(delay, &shutdown).await {
            return;
        }
    }
}

/// Stops a consumer on shutdown before its connection closes: cancels it, so the broker
/// delivers nothing more, then closes its channel, so the broker requeues what was delivered
/// and not acked. Closing the connection while deliveries still arrive can end in a protocol
/// error, on which lapin 4.12 deadlocks its own threads (its consumer map and channel status
/// locks, taken in opposite orders), and the process never exits.
async fn stop_consuming(channel: &Channel, consumer: &Consumer) {
    let stop = async {
        channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await?;
        channel.close(200, "regstat-worker stopping".into()).await
    };
    match tokio::time::timeout(STOP_TIMEOUT, stop).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "stopping the consumer"),
        Err(_) => tracing::debug!("stopping the consumer: no answer from the broker"),
    }
}

/// Closes a connection, not waiting long for a broker that is gone.
async fn close(connection: &Connection) {
    if connection.status().connected() {
        let closing = connection.close(200, "regstat-worker stopping".into());
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

/// Aborts a background task when the session that started it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a broker session ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// The connection or a channel failed.
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    /// The broker's version (which decides queue arguments) could not be read.
    #[error(transparent)]
    Probe(#[from] amqp::ProbeError),
    /// The broker did not accept a retry or dead letter (nacked or unroutable).
    #[error("retry or dead letter not accepted by the broker: {0}")]
    NotConfirmed(String),
}

/// One broker connection's worth of consuming.
struct Session<'a> {
    settings: &'a Settings,
    topology: &'a Topology,
    ctx: &'a Context,
    readiness: &'a Arc<Readiness>,
    shutdown: &'a CancellationToken,
}

impl Session<'_> {
    /// Returns `Ok` on shutdown, `Err` when the broker link fails.
    async fn run(&self, reconnects: &mut Backoff) -> Result<(), LinkError> {
        let version = amqp::broker_version(&self.settings.amqp.url).await?;
        let topology = self.topology.clone().on_broker(version);
        let connection = amqp::connect(&self.settings.amqp.url, "regstat-worker").await?;
        let publishing =
            match amqp::connect(&self.settings.amqp.url, "regstat-worker-publisher").await {
                Ok(publishing) => publishing,
                Err(error) => {
                    close(&connection).await;
                    return Err(error.into());
                }
            };
        let result = self
            .consume_all(&topology, &connection, &publishing, reconnects)
            .await;
        self.readiness.set_consuming(false);
        self.readiness.set_stalled(false);
        close(&publishing).await;
        close(&connection).await;
        result
    }

    /// Declares `topology` (this session's: it accounts for the broker's version) and consumes.
    async fn consume_all(
        &self,
        topology: &Topology,
        connection: &Connection,
        publishing: &Connection,
        reconnects: &mut Backoff,
    ) -> Result<(), LinkError> {
        let publisher = publishing.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumers = Vec::new();
        topology.declare(&publisher).await?;
        for queue in self.topology.work_queues_of(&self.settings.worker.shards) {
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(self.settings.worker.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    format!("regstat-worker-{}", uuid::Uuid::new_v4()).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            consumers.push((queue, channel, consumer));
        }
        reconnects.reset();
        self.readiness.set_consuming(true);
        tracing::info!("connected to the broker; consuming");
        let gauges = connection.create_channel().await?;
        let poller = tokio::spawn(http::poll_gauges(
            gauges,
            self.topology.clone(),
            self.ctx.pool.clone(),
            self.readiness.clone(),
        ));
        let _poller = AbortOnDrop(poller);
        let publisher = &publisher;
        let loops = consumers.into_iter().map(|(queue, channel, consumer)| {
            let span = tracing::info_span!("consume", queue = %queue);
            async move {
                let result = self.consume(queue, consumer.clone(), publisher).await;
                if result.is_ok() {
                    stop_consuming(&channel, &consumer).await;
                }
                result
            }
            .instrument(span)
        });
        futures_util::future::try_join_all(loops).await.map(|_| ())
    }

    /// Batches deliveries from one consumer until shutdown or a broker error.
    async fn consume(
        &self,
        queue: String,
        mut consumer: Consumer,
        publisher: &Channel,
    ) -> Result<(), LinkError> {
        let worker = &self.settings.worker;
        loop {
            let first = tokio::select! {
                next = consumer.next() => next,
                () = self.shutdown.cancelled() => return Ok(()),
            };
            let Some(first) = first else {
                return Err(LinkError::Broker(lapin::Error::from(
                    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                )));
            };
            let mut batch = vec![first?];
            let deadline = tokio::time::Instant::now() + worker.batch_linger();
            while batch.len() < worker.batch_size {
                match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(Some(delivery)) => batch.push(delivery?),
                    Ok(None) | Err(_) => break,
                }
            }
            if !self.process(&queue, batch, publisher).await? {
                return Ok(());
            }
        }
    }

    /// Handles and settles one batch. Returns `false` if shutdown interrupted it (unsettled).
    async fn process(
        &self,
        queue: &str,
        mut batch: Vec<Delivery>,
        publisher: &Channel,
    ) -> Result<bool, LinkError> {
        let started = Instant::now();
        let messages: Vec<Incoming> = batch.iter_mut().map(incoming).collect();
        let mut db_retries = Backoff::new(DB_RETRY);
        let (outcomes, summary) = loop {
            match handler::handle_batch(self.ctx, &messages).await {
                Ok(result) => break result,
                Err(unavailable) => {
                    metrics::counter!("regstat_worker_db_retries_total").increment(1);
                    let delay = db_retries.next_delay();
                    tracing::warn!(
                        error = %unavailable.0,
                        held = messages.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "database unavailable; holding the batch"
                    );
                    if !backoff::pause(delay, self.shutdown).await {
                        return Ok(false);
                    }
                }
            }
        };
        if !self.settle(&batch, &messages, &outcomes, publisher).await? {
            return Ok(false);
        }
        let settled = chrono::Utc::now();
        if let Some(newest) = messages.iter().filter_map(|m| m.received_at).max() {
            self.readiness.committed(queue, newest);
        }
        for received in messages.iter().filter_map(|m| m.received_at) {
            let lag = (settled - received).num_microseconds().unwrap_or(i64::MAX);
            metrics::histogram!("regstat_worker_lag_seconds").record(lag as f64 / 1e6);
        }
        metrics::counter!("regstat_worker_events_total", "outcome" => "stored")
            .increment(summary.stored as u64);
        metrics::counter!("regstat_worker_events_total", "outcome" => "duplicate")
            .increment(summary.duplicates as u64);
        metrics::counter!("regstat_worker_events_total", "outcome" => "retried")
            .increment(summary.retried as u64);
        metrics::counter!("regstat_worker_events_total", "outcome" => "dead_lettered")
            .increment(summary.dead_lettered as u64);
        metrics::histogram!("regstat_worker_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            size = batch.len(),
            stored = summary.stored,
            duplicates = summary.duplicates,
            retried = summary.retried,
            dead_lettered = summary.dead_lettered,
            duration_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(true)
    }
}

impl Session<'_> {
    /// Sends retries to their retry queue and dead letters to the dead-letter exchange, with
    /// headers saying why, waits for the broker to confirm them, then acknowledges the whole
    /// batch with one `multiple` ack on its last delivery (exact: this channel has one consumer
    /// and batches are settled in order). If anything fails, nothing is acked and the broker
    /// redelivers the batch: duplicates are harmless, the ledger dedupes. Returns `false` if
    /// shutdown came while waiting for the broker (nothing acked).
    async fn settle(
        &self,
        batch: &[Delivery],
        messages: &[Incoming],
        outcomes: &[Outcome],
        publisher: &Channel,
    ) -> Result<bool, LinkError> {
        let published = self.publish_failures(batch, messages, outcomes, publisher);
        tokio::pin!(published);
        let timeout = self.settings.amqp.confirm_timeout();
        let confirmed = tokio::select! {
            confirmed = tokio::time::timeout(timeout, published.as_mut()) => confirmed.ok(),
            () = self.shutdown.cancelled() => return Ok(false),
        };
        let confirmed = match confirmed {
            Some(confirmed) => confirmed,
            None => {
                self.readiness.set_stalled(true);
                tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "retries or dead letters not confirmed in time (is the broker blocking \
                     publishers?); holding the batch until they are"
                );
                let confirmed = tokio::select! {
                    confirmed = published => confirmed,
                    () = self.shutdown.cancelled() => return Ok(false),
                };
                self.readiness.set_stalled(false);
                tracing::info!("retries or dead letters confirmed; the batch goes on");
                confirmed
            }
        };
        confirmed?;
        if let Some(last) = batch.last() {
            last.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(true)
    }

    /// Publishes the batch's retries and dead letters and waits for the broker's confirms.
    async fn publish_failures(
        &self,
        batch: &[Delivery],
        messages: &[Incoming],
        outcomes: &[Outcome],
        publisher: &Channel,
    ) -> Result<(), LinkError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut confirms = Vec::new();
        for ((delivery, incoming), outcome) in batch.iter().zip(messages).zip(outcomes) {
            let (reason, retry) = match outcome {
                Outcome::Ack => continue,
                Outcome::Retry(reason) => (reason, true),
                Outcome::DeadLetter(reason) => (reason, false),
            };
            let headers = delivery.properties.headers();
            let attempts = header_i64(headers, ATTEMPTS_HEADER).unwrap_or(0) + 1;
            let give_up = !retry || attempts >= i64::from(self.settings.worker.max_attempts);
            let exchange = if give_up {
                self.topology.dead_letter_exchange()
            } else {
                self.topology
                    .retry_exchange(u32::try_from(attempts).unwrap_or(u32::MAX))
            };
            let message = if retry && give_up {
                format!("{} (gave up after {attempts} attempts)", reason.message)
            } else {
                reason.message.clone()
            };
            // The one log line of a failed event, where it is settled.
            let span = tracing::info_span!(
                "event",
                event.id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str()),
                correlation.id = incoming.correlation_id.as_deref(),
            );
            span.in_scope(|| {
                if give_up {
                    metrics::counter!("regstat_worker_dead_letters_total", "kind" => reason.kind)
                        .increment(1);
                    tracing::error!(error.kind = reason.kind, error = %message, attempts, "dead-lettering event");
                } else {
                    metrics::counter!("regstat_worker_retries_total", "kind" => reason.kind)
                        .increment(1);
                    tracing::warn!(error.kind = reason.kind, error = %message, attempts, exchange = %exchange, "event will be retried");
                }
            });
            let mut table = headers.clone().unwrap_or_default();
            table.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts));
            table.insert(ERROR_KIND_HEADER.into(), long_string(reason.kind));
            table.insert(REASON_HEADER.into(), long_string(&message));
            let first = header_i64(headers, FIRST_FAILURE_HEADER).unwrap_or(now_ms);
            table.insert(FIRST_FAILURE_HEADER.into(), AMQPValue::LongLongInt(first));
            table.insert(LAST_FAILURE_HEADER.into(), AMQPValue::LongLongInt(now_ms));
            let properties = delivery
                .properties
                .clone()
                .with_headers(table)
                .with_delivery_mode(2);
            let confirm = publisher
                .basic_publish(
                    exchange.as_str().into(),
                    delivery.routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &incoming.body,
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirmation in futures_util::future::join_all(confirms).await {
            match confirmation? {
                Confirmation::Ack(None) => {}
                other => return Err(LinkError::NotConfirmed(format!("{other:?}"))),
            }
        }
        Ok(())
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Takes what the handler needs out of a delivery (the body is moved, not copied).
fn incoming(delivery: &mut Delivery) -> Incoming {
    let properties = &delivery.properties;
    Incoming {
        body: std::mem::take(&mut delivery.data),
        correlation_id: properties.correlation_id().as_ref().map(|c| c.to_string()),
        received_at: header_i64(properties.headers(), RECEIVED_AT_HEADER)
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}
