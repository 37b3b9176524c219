//! Publishing events to RabbitMQ with publisher confirms, over a supervised connection.
//!
//! One connection and one confirm-mode channel serve every request (lapin pipelines the
//! publishes of concurrent requests on it). A supervisor task opens the connection, declares
//! the topology, and reconnects with capped exponential backoff whenever the connection or
//! channel fails; while it is down [`Publisher::publish`] fails at once, so the receiver
//! answers 503 and the registry retries.
//!
//! While the broker blocks publishers (a memory or disk alarm: RabbitMQ stops reading from
//! publishing connections and says `connection.blocked`), a publish fails at once too, with
//! nothing handed to the connection; a publish whose messages cannot be written within
//! `receiver.blocked_answer_ms` (the alarm not announced yet, a stalled socket) fails then. The
//! whole publish, writing and confirmation, is bounded by `amqp.confirm_timeout_ms`.

use futures_util::StreamExt;
use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use regstat_shared::amqp;
use regstat_shared::backoff::{self, Backoff, Policy};
use regstat_shared::config::AmqpSettings;
use regstat_shared::topology::{QUARANTINE_KEY, REASON_HEADER, RECEIVED_AT_HEADER, Topology};
use secrecy::SecretString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the supervisor checks the connection when nothing else wakes it.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The first reconnection delay; it doubles up to the configured maximum.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Why events could not be queued. Each means "answer 503, the registry will retry".
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No broker connection right now.
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker connection or channel failed while publishing.
    #[error("broker error")]
    Broker(#[from] lapin::Error),
    /// The broker refused to store a message.
    #[error("broker rejected message {message_id}")]
    Nacked {
        /// The refused message.
        message_id: String,
    },
    /// The message matched no queue (topology missing or changed).
    #[error("broker returned message {message_id} as unroutable: {reply}")]
    Returned {
        /// The returned message.
        message_id: String,
        /// The broker's reply text.
        reply: String,
    },
    /// No confirmation within `amqp.confirm_timeout_ms`.
    #[error("no broker confirmation within {0:?}")]
    ConfirmTimeout(Duration),
    /// The broker blocks publishers (memory or disk alarm); nothing was sent.
    #[error("the broker is blocking publishers (memory or disk alarm)")]
    Blocked,
    /// A message could not be written to the connection within `receiver.blocked_answer_ms`.
    #[error("events could not be written to the broker within {0:?}")]
    WriteTimeout(Duration),
}

/// One message to publish: an event's raw JSON and how to route it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Routing key (`push.manifest`, ..., or `quarantine`).
    pub routing_key: String,
    /// Message id: the event id (or a fresh id for a quarantined event without one).
    pub message_id: String,
    /// The event exactly as the registry sent it.
    pub body: &'a [u8],
    /// Why the event is quarantined, if it is.
    pub quarantine_reason: Option<String>,
}

impl<'a> Outgoing<'a> {
    /// A valid event routed by `routing_key`.
    pub fn event(routing_key: String, message_id: String, body: &'a [u8]) -> Self {
        Self {
            routing_key,
            message_id,
            body,
            quarantine_reason: None,
        }
    }

    /// An unusable event for the quarantine queue.
    pub fn quarantine(message_id: String, body: &'a [u8], reason: String) -> Self {
        Self {
            routing_key: QUARANTINE_KEY.to_owned(),
            message_id,
            body,
            quarantine_reason: Some(reason),
        }
    }
}

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    /// The confirm-mode channel while connected.
    channel: RwLock<Option<Channel>>,
    /// Set while the broker has blocked publishing (memory or disk alarm).
    blocked: AtomicBool,
    /// Wakes publishes waiting on the broker when it blocks publishing.
    became_blocked: Notify,
    /// Wakes the supervisor to check the link after a failed publish.
    suspect: Notify,
    exchange: String,
    /// Longest wait for the messages to be written (`receiver.blocked_answer_ms`).
    write_timeout: Duration,
    /// Longest wait for the whole publish (`amqp.confirm_timeout_ms`).
    confirm_timeout: Duration,
}

impl Publisher {
    /// Starts the supervisor; it runs until `shutdown` is cancelled, then closes the connection.
    /// A publish whose messages are not written within `write_timeout` fails.
    pub fn start(
        settings: &AmqpSettings,
        write_timeout: Duration,
        topology: Topology,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let confirm_timeout = settings.confirm_timeout();
        let inner = Arc::new(Inner {
            channel: RwLock::new(None),
            blocked: AtomicBool::new(false),
            became_blocked: Notify::new(),
            suspect: Notify::new(),
            exchange: topology.exchange(),
            write_timeout: write_timeout.min(confirm_timeout),
            confirm_timeout,
        });
        let supervisor = Supervisor {
            inner: inner.clone(),
            url: settings.url.clone(),
            topology,
            max_backoff: settings.reconnect_max_backoff(),
            shutdown,
        };
        let task = tokio::spawn(supervisor.run());
        (Self { inner }, task)
    }

    /// Whether events can be published now.
    pub fn is_ready(&self) -> bool {
        self.current_channel().is_some() && !self.inner.blocked.load(Ordering::Relaxed)
    }

    fn current_channel(&self) -> Option<Channel> {
        self.inner
            .channel
            .read()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }

    /// Publishes every message persistently and mandatorily, and returns once the broker has
    /// confirmed all of them. Any nack, return, error or timeout fails the whole call; while
    /// the broker blocks publishers it fails at once, sending nothing.
    pub async fn publish(
        &self,
        messages: &[Outgoing<'_>],
        correlation_id: &str,
        received_at_ms: i64,
    ) -> Result<(), PublishError> {
        let channel = self.current_channel().ok_or(PublishError::NotConnected)?;
        if self.inner.blocked.load(Ordering::Relaxed) {
            return Err(PublishError::Blocked);
        }
        let started = Instant::now();
        let result = self
            .publish_on(&channel, messages, correlation_id, received_at_ms)
            .await;
        metrics::histogram!("regstat_receiver_publish_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if matches!(
            result,
            Err(PublishError::Broker(_)
                | PublishError::ConfirmTimeout(_)
                | PublishError::WriteTimeout(_))
        ) {
            self.inner.suspect.notify_one();
        }
        result
    }

    /// Returns once the broker blocks publishing (at once if it does now).
    async fn blocked(&self) {
        let notified = self.inner.became_blocked.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.inner.blocked.load(Ordering::Relaxed) {
            return;
        }
        notified.await;
    }

    async fn publish_on(
        &self,
        channel: &Channel,
        messages: &[Outgoing<'_>],
        correlation_id: &str,
        received_at_ms: i64,
    ) -> Result<(), PublishError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let deadline = tokio::time::Instant::now() + self.inner.confirm_timeout;
        // A connection that stops taking messages is what the write timeout detects, so it
        // bounds each message, not the request: a request of many events on a busy machine
        // takes longer to write without anything being wrong. The whole request stays bounded
        // by the confirm timeout.
        let write = async {
            let mut confirms = Vec::with_capacity(messages.len());
            for message in messages {
                let publish = channel.basic_publish(
                    self.inner.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    options,
                    message.body,
                    properties(message, correlation_id, received_at_ms),
                );
                let confirm = tokio::time::timeout(self.inner.write_timeout, publish)
                    .await
                    .map_err(|_| PublishError::WriteTimeout(self.inner.write_timeout))??;
                confirms.push(confirm);
            }
            Ok::<_, PublishError>(confirms)
        };
        let confirms = tokio::select! {
            written = tokio::time::timeout_at(deadline, write) => written
                .map_err(|_| PublishError::ConfirmTimeout(self.inner.confirm_timeout))??,
            () = self.blocked() => return Err(PublishError::Blocked),
        };
        // RabbitMQ announces an alarm to a connection only once it publishes: the request
        // that meets the alarm first is answered when the broker says so, not after the
        // confirm timeout. Its messages may still be stored when the alarm clears; the
        // registry's retry of them is then a duplicate, which the worker recognises.
        let confirmations = tokio::select! {
            confirmed = tokio::time::timeout_at(deadline, join_all(confirms)) => confirmed
                .map_err(|_| PublishError::ConfirmTimeout(self.inner.confirm_timeout))?,
            () = self.blocked() => return Err(PublishError::Blocked),
        };
        for (message, confirmation) in messages.iter().zip(confirmations) {
            match confirmation? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(PublishError::Returned {
                        message_id: message.message_id.clone(),
                        reply: returned.reply_text.to_string(),
                    });
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(PublishError::Nacked {
                        message_id: message.message_id.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn properties(
    message: &Outgoing<'_>,
    correlation_id: &str,
    received_at_ms: i64,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        RECEIVED_AT_HEADER.into(),
        AMQPValue::LongLongInt(received_at_ms),
    );
    if let Some(reason) = &message.quarantine_reason {
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason.as_str())),
        );
    }
    BasicProperties::default()
        .with_message_id(short(&message.message_id))
        .with_correlation_id(short(correlation_id))
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(received_at_ms / 1000).unwrap_or_default())
        .with_app_id("regstat-receiver".into())
        .with_headers(headers)
}

/// An AMQP short string (at most 255 bytes). `ShortString::from` panics past that; ids are
/// checked before they get here (`Event::parse_checked`), and this cuts, at a character
/// boundary, whatever would still be too long rather than fail the request.
fn short(text: &str) -> ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&text[..end])
}

/// Keeps one healthy connection open.
struct Supervisor {
    inner: Arc<Inner>,
    url: SecretString,
    topology: Topology,
    max_backoff: Duration,
    shutdown: CancellationToken,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// Reading the broker's version (which decides queue arguments) failed.
    #[error(transparent)]
    Probe(#[from] amqp::ProbeError),
    /// Connecting or declaring failed.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
}

/// Why the supervisor stopped watching a connection.
enum Ended {
    Shutdown,
    Lost(String),
}

impl Supervisor {
    async fn run(self) {
        let mut reconnects = Backoff::new(Policy::exponential(INITIAL_BACKOFF, self.max_backoff));
        loop {
            let opened = tokio::select! {
                opened = self.open() => opened,
                () = self.shutdown.cancelled() => return,
            };
            match opened {
                Ok((connection, channel)) => {
                    reconnects.reset();
                    tracing::info!(exchange = %self.inner.exchange, "connected to the broker");
                    self.set_channel(Some(channel.clone()));
                    let ended = self.watch(&connection, &channel).await;
                    self.set_channel(None);
                    self.inner.blocked.store(false, Ordering::Relaxed);
                    close(&connection).await;
                    match ended {
                        Ended::Shutdown => {
                            tracing::info!("broker connection closed for shutdown");
                            return;
                        }
                        Ended::Lost(reason) => {
                            tracing::warn!(%reason, "broker connection lost; reconnecting");
                        }
                    }
                }
                Err(error) => {
                    let delay = reconnects.next_delay();
                    tracing::warn!(
                        error = %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot connect to the broker"
                    );
                    if !backoff::pause(delay, &self.shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            if !backoff::pause(reconnects.next_delay(), &self.shutdown).await {
                return;
            }
        }
    }

    async fn open(&self) -> Result<(Connection, Channel), OpenError> {
        let version = amqp::broker_version(&self.url).await?;
        let topology = self.topology.clone().on_broker(version);
        let connection = amqp::connect(&self.url, "regstat-receiver").await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((connection, channel))
    }

    fn set_channel(&self, channel: Option<Channel>) {
        metrics::gauge!("regstat_receiver_broker_connected").set(if channel.is_some() {
            1.0
        } else {
            0.0
        });
        if let Ok(mut guard) = self.inner.channel.write() {
            *guard = channel;
        }
    }

    async fn watch(&self, connection: &Connection, channel: &Channel) -> Ended {
        let mut events = connection.events_listener();
        let mut tick = tokio::time::interval(HEALTH_CHECK_INTERVAL);
        let healthy = || connection.status().connected() && channel.status().connected();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ended::Shutdown,
                event = events.next() => match event {
                    Some(lapin::Event::Error(error)) => return Ended::Lost(error.to_string()),
                    Some(lapin::Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(%reason, "broker blocked publishing; answering 503 until it unblocks");
                        self.inner.blocked.store(true, Ordering::Relaxed);
                        self.inner.became_blocked.notify_waiters();
                    }
                    Some(lapin::Event::ConnectionUnblocked) => {
                        tracing::info!("broker unblocked publishing");
                        self.inner.blocked.store(false, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => return Ended::Lost("connection event stream ended".to_owned()),
                },
                () = self.inner.suspect.notified() => if !healthy() {
                    return Ended::Lost("publish failed on a closed connection".to_owned());
                },
                _ = tick.tick() => if !healthy() {
                    return Ended::Lost("connection or channel closed".to_owned());
                },
            }
        }
    }
}

/// Closes a connection, not waiting long for a broker that is gone.
async fn close(connection: &Connection) {
    if connection.status().connected() {
        let closing = connection.close(200, "regstat-receiver stopping".into());
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}
