//! RabbitMQ topology, declared idempotently by the receiver, the worker and the CLI.
//!
//! ```text
//!                      ┌──────────────── <p>.events (topic) ─────────────────┐
//!  receiver ──publish──┤ push.manifest            → <p>.manifests  (quorum)  │
//!                      │ push.blob, push.unknown,                            │
//!                      │ pull.*, mount.*, delete.*, other.* → <p>.ingest (quorum)
//!                      │ quarantine               → <p>.quarantine (quorum)  │
//!                      └─────────────────────────────────────────────────────┘
//!  <p>.ingest / <p>.manifests ──(delivery limit)──▶ <p>.dlx (topic, #) ──▶ <p>.dead
//!  worker ──(permanent failure, attempts exhausted: reason headers)──▶ <p>.dlx
//!  worker ──(registry unavailable)──▶ <p>.retry.<d>s (fanout) ──▶ <p>.retry.<d>s (TTL d)
//!                                        ──(expired, routing key kept)──▶ <p>.events
//! ```
//!
//! Pushed manifests get their own queue because they are the events that will need a registry
//! callback (slow); pulls and blob events only update rows (fast) and must never wait behind a
//! slow registry. `docs/ARCHITECTURE.md` explains the choice.
//!
//! With `amqp.shards = N > 1` each work queue is N quorum queues (`<p>.ingest.0 … N-1`, the same
//! for manifests), and the receiver appends the event's shard to its routing key
//! (`pull.blob.3`, bound as `pull.*.3`): the shard of its registry (`request.host`) and the
//! top-level namespace of its repository ([`Topology::shard_of`]), so one namespace's rows are
//! written through one shard. Retries and dead letters keep the routing key, and so the shard.

use crate::amqp::BrokerVersion;
use crate::event::Event;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// Routing key of quarantined events.
pub const QUARANTINE_KEY: &str = "quarantine";

/// Header carrying why a message was quarantined or dead-lettered.
pub const REASON_HEADER: &str = "x-regstat-reason";

/// Header carrying when the receiver accepted an event, in Unix milliseconds.
pub const RECEIVED_AT_HEADER: &str = "x-regstat-received-at-ms";

/// Header carrying the kind of failure of a dead-lettered or retried event.
pub const ERROR_KIND_HEADER: &str = "x-regstat-error-kind";

/// Header carrying how many times an event has been tried.
pub const ATTEMPTS_HEADER: &str = "x-regstat-attempts";

/// Header carrying the first failure time of an event, in Unix milliseconds.
pub const FIRST_FAILURE_HEADER: &str = "x-regstat-first-failure-ms";

/// Header carrying the last failure time of an event, in Unix milliseconds.
pub const LAST_FAILURE_HEADER: &str = "x-regstat-last-failure-ms";

/// Names and arguments of regstat's exchanges and queues under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    retry_delays_secs: Vec<u64>,
    /// The broker it is declared on, where that changes the arguments ([`Self::on_broker`]).
    broker: Option<BrokerVersion>,
    /// Work queues per path (1: unsharded, today's names).
    shards: u16,
    /// While the shard count changes: the previous count, whose queues are still consumed.
    previous_shards: Option<u16>,
    /// `x-quorum-initial-group-size`, when set.
    quorum_group_size: Option<u16>,
}

/// One queue: its name and the routing keys bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Full queue name.
    pub name: String,
    /// Exchange it is bound to.
    pub exchange: String,
    /// Binding keys.
    pub bindings: Vec<String>,
    /// What kind of queue it is (decides its arguments).
    pub role: QueueRole,
}

/// What a queue is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    /// Consumed by workers; dead-letters after the delivery limit.
    Work,
    /// Holds messages for a delay, then dead-letters them back to the events exchange.
    Retry {
        /// The delay.
        delay_secs: u64,
    },
    /// Terminal: quarantine and dead letters, read by operators.
    Terminal,
}

impl Topology {
    /// Topology under `prefix` with quorum-queue `delivery_limit` and retry queues of the
    /// given delays.
    pub fn new(prefix: impl Into<String>, delivery_limit: u32, retry_delays_secs: &[u64]) -> Self {
        Self {
            prefix: prefix.into(),
            delivery_limit,
            retry_delays_secs: retry_delays_secs.to_vec(),
            broker: None,
            shards: 1,
            previous_shards: None,
            quorum_group_size: None,
        }
    }

    /// The same topology with each work queue split into `shards` queues (1: unsharded).
    pub fn with_shards(mut self, shards: u16) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The same topology while the shard count changes from `previous` (0, or the current
    /// count: not changing): the previous count's work queues are declared as they were and
    /// consumed too, until they are drained.
    pub fn with_previous_shards(mut self, previous: u16) -> Self {
        self.previous_shards = Some(previous).filter(|p| *p != 0 && *p != self.shards);
        self
    }

    /// The same topology for the broker of `version` ([`crate::amqp::broker_version`]), whose
    /// quorum queue defaults its arguments must account for: RabbitMQ 4.0 and later give a
    /// quorum queue declared without `x-delivery-limit` a limit of 20, and the terminal queues
    /// (dead letters, quarantine) have no dead-letter exchange behind them, so a letter listed
    /// or returned 20 times would be dropped. There they are declared with `-1` (no limit).
    /// Before 4.0 a quorum queue has no limit unless given one, and `-1` would drop a message
    /// the first time it is returned: they are declared without it, as always. `None` (not
    /// known, or not RabbitMQ) declares them as before 4.0.
    pub fn on_broker(mut self, version: Option<BrokerVersion>) -> Self {
        self.broker = version;
        self
    }

    /// The topology the settings describe.
    pub fn from_settings(amqp: &crate::config::AmqpSettings) -> Self {
        let mut topology = Self::new(
            amqp.prefix.clone(),
            amqp.delivery_limit,
            &amqp.retry_delays_secs,
        )
        .with_shards(amqp.shards)
        .with_previous_shards(amqp.previous_shards);
        topology.quorum_group_size = Some(amqp.quorum_group_size).filter(|size| *size != 0);
        topology
    }

    /// Work queues per path.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard of an event: a stable hash (the first 8 bytes of SHA-256, the same in every
    /// version and on every machine) of its registry as the client named it (`request.host`,
    /// lower-cased) and the top-level namespace of its repository (`team` of `team/app/api`),
    /// modulo the shard count. 0 when unsharded.
    pub fn shard_of(&self, event: &Event) -> u16 {
        if self.shards <= 1 {
            return 0;
        }
        let host = event
            .request
            .host
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let repository = event.target.as_ref().and_then(|t| t.repository.as_deref());
        let namespace = repository
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("{host}\n{namespace}"));
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u16::try_from(u64::from_be_bytes(first) % u64::from(self.shards)).unwrap_or_default()
    }

    /// The routing key the receiver publishes `event` with: `<action>.<kind>`, and its shard
    /// appended when sharded (`pull.blob.3`).
    pub fn routing_key(&self, event: &Event) -> String {
        let key = event.routing_key();
        if self.shards <= 1 {
            key
        } else {
            format!("{key}.{}", self.shard_of(event))
        }
    }

    /// The retry exchange (and queue) for an event's `attempt`-th failure (1-based): the
    /// delays in order, the last one repeating.
    pub fn retry_exchange(&self, attempt: u32) -> String {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self
            .retry_delays_secs
            .get(index)
            .or(self.retry_delays_secs.last())
            .copied()
            .unwrap_or(1);
        self.retry_name(delay)
    }

    fn retry_name(&self, delay_secs: u64) -> String {
        format!("{}.retry.{delay_secs}s", self.prefix)
    }

    /// The retry queues.
    pub fn retry_queues(&self) -> Vec<String> {
        self.retry_delays_secs
            .iter()
            .map(|d| self.retry_name(*d))
            .collect()
    }

    /// The topic exchange events are published to.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// The exchange the work queues dead-letter to.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// Fast path: pulls, blob events, mounts, deletes, unknown actions (the unsharded queue;
    /// shard `n`'s is [`Self::ingest_queue_of`]).
    pub fn ingest_queue(&self) -> String {
        format!("{}.ingest", self.prefix)
    }

    /// Slow path: pushed manifests (the unsharded queue; shard `n`'s is
    /// [`Self::manifest_queue_of`]).
    pub fn manifest_queue(&self) -> String {
        format!("{}.manifests", self.prefix)
    }

    /// Whether `name` is a manifest queue (unsharded, or of any shard).
    pub fn is_manifest_queue(&self, name: &str) -> bool {
        let base = self.manifest_queue();
        name.strip_prefix(base.as_str()).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('.')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The ingest queue of `shard` (the unsharded one when unsharded).
    pub fn ingest_queue_of(&self, shard: u16) -> String {
        self.sharded(self.ingest_queue(), self.shards, shard)
    }

    /// The manifest queue of `shard` (the unsharded one when unsharded).
    pub fn manifest_queue_of(&self, shard: u16) -> String {
        self.sharded(self.manifest_queue(), self.shards, shard)
    }

    fn sharded(&self, base: String, shards: u16, shard: u16) -> String {
        if shards <= 1 {
            base
        } else {
            format!("{base}.{shard}")
        }
    }

    /// Events that failed processing for good.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Events that arrived unusable (no id, no action...), with the reason.
    pub fn quarantine_queue(&self) -> String {
        format!("{}.quarantine", self.prefix)
    }

    /// Every work queue: the ingest and manifest queue of each shard, then, while the shard
    /// count changes, those of the previous count not among them.
    pub fn work_queues(&self) -> Vec<String> {
        self.work_queue_specs()
            .into_iter()
            .map(|spec| spec.name)
            .collect()
    }

    /// The work queues of `shards` (all of them when empty), and those of the previous shard
    /// count, which every worker drains.
    pub fn work_queues_of(&self, shards: &[u16]) -> Vec<String> {
        if shards.is_empty() {
            return self.work_queues();
        }
        let mut queues: Vec<String> = shards
            .iter()
            .flat_map(|shard| [self.ingest_queue_of(*shard), self.manifest_queue_of(*shard)])
            .collect();
        for queue in self.work_queues() {
            if !self.is_current_queue(&queue) && !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        queues
    }

    fn is_current_queue(&self, name: &str) -> bool {
        (0..self.shards).any(|shard| {
            name == self.ingest_queue_of(shard) || name == self.manifest_queue_of(shard)
        })
    }

    /// The work queues with their bindings: the current shard count's, then the previous
    /// one's that differ (declared as they were, so workers can drain them).
    fn work_queue_specs(&self) -> Vec<QueueSpec> {
        let mut specs = self.work_queue_specs_of(self.shards);
        if let Some(previous) = self.previous_shards {
            for spec in self.work_queue_specs_of(previous) {
                if !specs.iter().any(|s| s.name == spec.name) {
                    specs.push(spec);
                }
            }
        }
        specs
    }

    fn work_queue_specs_of(&self, shards: u16) -> Vec<QueueSpec> {
        const INGEST: [&str; 6] = [
            "push.blob",
            "push.unknown",
            "pull.*",
            "mount.*",
            "delete.*",
            "other.*",
        ];
        const MANIFESTS: [&str; 1] = ["push.manifest"];
        let bind = |keys: &[&str], shard: u16| -> Vec<String> {
            keys.iter()
                .map(|key| {
                    if shards <= 1 {
                        (*key).to_owned()
                    } else {
                        format!("{key}.{shard}")
                    }
                })
                .collect()
        };
        (0..shards.max(1))
            .flat_map(|shard| {
                [
                    QueueSpec {
                        name: self.sharded(self.ingest_queue(), shards, shard),
                        exchange: self.exchange(),
                        bindings: bind(&INGEST, shard),
                        role: QueueRole::Work,
                    },
                    QueueSpec {
                        name: self.sharded(self.manifest_queue(), shards, shard),
                        exchange: self.exchange(),
                        bindings: bind(&MANIFESTS, shard),
                        role: QueueRole::Work,
                    },
                ]
            })
            .collect()
    }

    /// Every queue with its bindings.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let retries = self.retry_delays_secs.iter().map(|delay| QueueSpec {
            name: self.retry_name(*delay),
            exchange: self.retry_name(*delay),
            bindings: vec![String::new()],
            role: QueueRole::Retry { delay_secs: *delay },
        });
        let mut queues = self.work_queue_specs();
        queues.extend([
            QueueSpec {
                name: self.quarantine_queue(),
                exchange: self.exchange(),
                bindings: vec![QUARANTINE_KEY.to_owned()],
                role: QueueRole::Terminal,
            },
            QueueSpec {
                name: self.dead_queue(),
                exchange: self.dead_letter_exchange(),
                bindings: vec!["#".to_owned()],
                role: QueueRole::Terminal,
            },
        ]);
        queues.extend(retries);
        queues
    }

    /// Every exchange with its type.
    pub fn exchanges(&self) -> Vec<(String, ExchangeKind)> {
        let mut exchanges = vec![
            (self.exchange(), ExchangeKind::Topic),
            (self.dead_letter_exchange(), ExchangeKind::Topic),
        ];
        exchanges.extend(
            self.retry_queues()
                .into_iter()
                .map(|name| (name, ExchangeKind::Fanout)),
        );
        exchanges
    }

    /// Arguments of a queue: quorum; work queues get a delivery limit and dead-letter to the
    /// DLX, retry queues a message TTL and dead-letter back to the events exchange; both with
    /// at-least-once dead-lettering (which RabbitMQ requires to pair with `reject-publish`).
    pub fn queue_arguments(&self, spec: &QueueSpec) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        if let Some(size) = self.quorum_group_size {
            args.insert(
                "x-quorum-initial-group-size".into(),
                AMQPValue::LongLongInt(i64::from(size)),
            );
        }
        let target = match spec.role {
            QueueRole::Terminal => {
                if self
                    .broker
                    .is_some_and(BrokerVersion::limits_deliveries_by_default)
                {
                    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(-1));
                }
                return args;
            }
            QueueRole::Work => {
                args.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
                );
                self.dead_letter_exchange()
            }
            QueueRole::Retry { delay_secs } => {
                let ttl_ms = delay_secs.saturating_mul(1000);
                args.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
                );
                self.exchange()
            }
        };
        args.insert("x-dead-letter-exchange".into(), long_string(&target));
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
        args
    }

    /// Declares exchanges, queues and bindings. Safe to repeat; fails if a queue exists with
    /// other arguments (RabbitMQ's PRECONDITION_FAILED), which means a configuration change
    /// that needs the queue recreated.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        for (exchange, kind) in self.exchanges() {
            self.declare_exchange(channel, &exchange, kind).await?;
        }
        for spec in self.queues() {
            self.declare_queue(channel, &spec).await?;
            for key in &spec.bindings {
                channel
                    .queue_bind(
                        spec.name.clone().into(),
                        spec.exchange.clone().into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Declares one exchange of [`Self::exchanges`] as [`Self::declare`] does (durable, no
    /// arguments). On an exchange that exists this is a no-op when it was declared so, and a
    /// PRECONDITION_FAILED naming the difference (which closes the channel) when not.
    pub async fn declare_exchange(
        &self,
        channel: &Channel,
        name: &str,
        kind: ExchangeKind,
    ) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(name.into(), kind, durable, FieldTable::default())
            .await
    }

    /// Declares one queue of [`Self::queues`] as [`Self::declare`] does (durable,
    /// [`Self::queue_arguments`]), without its bindings, and returns its message and consumer
    /// counts. On a queue that exists this is a no-op when it was declared so, and a
    /// PRECONDITION_FAILED naming the difference (which closes the channel) when not.
    pub async fn declare_queue(
        &self,
        channel: &Channel,
        spec: &QueueSpec,
    ) -> lapin::Result<lapin::Queue> {
        channel
            .queue_declare(
                spec.name.clone().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                self.queue_arguments(spec),
            )
            .await
    }

    /// Deletes every exchange and queue of this prefix (tests, uninstall).
    pub async fn delete(&self, channel: &Channel) -> lapin::Result<()> {
        for spec in self.queues() {
            channel
                .queue_delete(spec.name.into(), QueueDeleteOptions::default())
                .await?;
        }
        for (exchange, _) in self.exchanges() {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Reads a string header of a message, if present.
pub fn header_str<'a>(headers: &'a Option<FieldTable>, name: &str) -> Option<&'a str> {
    match headers.as_ref()?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads an integer header of a message, if present.
pub fn header_i64(headers: &Option<FieldTable>, name: &str) -> Option<i64> {
    match headers.as_ref()?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Event, Kind, Target};

    /// Every routing key the receiver can produce is bound to exactly one work queue, so no
    /// well-formed event is ever unroutable (a 4xx/5xx loop with the registry).
    #[test]
    fn every_routing_key_has_exactly_one_queue() {
        for shards in [1, 4] {
            every_routing_key_has_exactly_one_queue_with(
                &Topology::new("t", 5, &[1, 10]).with_shards(shards),
            );
        }
    }

    fn every_routing_key_has_exactly_one_queue_with(topology: &Topology) {
        let actions = [
            Action::Push,
            Action::Pull,
            Action::Mount,
            Action::Delete,
            Action::Other("scan".into()),
        ];
        let targets = [
            (Some("application/octet-stream"), None, Kind::Blob),
            (
                Some("application/vnd.oci.image.manifest.v1+json"),
                None,
                Kind::Manifest,
            ),
            (None, Some("v1"), Kind::Manifest),
            (None, None, Kind::Unknown),
        ];
        for action in &actions {
            for (media_type, tag, kind) in &targets {
                for repository in ["team-a/app", "team-b/app", "library/x", "c"] {
                    let event = Event {
                        action: Some(action.clone()),
                        target: Some(Target {
                            media_type: media_type.map(str::to_owned),
                            tag: tag.map(str::to_owned),
                            repository: Some(repository.to_owned()),
                            ..Target::default()
                        }),
                        ..Event::default()
                    };
                    assert_eq!(event.kind(), *kind);
                    let key = topology.routing_key(&event);
                    let matching: Vec<_> = topology
                        .queues()
                        .into_iter()
                        .filter(|q| q.exchange == topology.exchange())
                        .filter(|q| q.bindings.iter().any(|b| topic_matches(b, &key)))
                        .map(|q| q.name)
                        .collect();
                    assert_eq!(matching.len(), 1, "{key} routes to {matching:?}");
                    let shard = topology.shard_of(&event);
                    assert_eq!(
                        matching[0],
                        if event.kind() == Kind::Manifest && matches!(action, Action::Push) {
                            topology.manifest_queue_of(shard)
                        } else {
                            topology.ingest_queue_of(shard)
                        }
                    );
                }
            }
        }
    }

    /// Nothing in the dead-letter and quarantine queues is ever dropped: on RabbitMQ 4.0 and
    /// later they are declared without a delivery limit (`-1`; the default there is 20), and
    /// before 4.0 without the argument (no limit; `-1` would drop a returned letter at once).
    #[test]
    fn terminal_queues_have_no_delivery_limit_on_any_broker() {
        let limit = |topology: &Topology, name: &str| {
            let spec = topology
                .queues()
                .into_iter()
                .find(|q| q.name == name)
                .expect(name);
            topology
                .queue_arguments(&spec)
                .inner()
                .get("x-delivery-limit")
                .cloned()
        };
        let base = Topology::new("t", 5, &[1]);
        let v3 = base.clone().on_broker(BrokerVersion::parse("3.10.8"));
        let v4 = base.clone().on_broker(BrokerVersion::parse("4.1.0"));
        for terminal in [base.dead_queue(), base.quarantine_queue()] {
            assert_eq!(limit(&v3, &terminal), None);
            assert_eq!(limit(&base, &terminal), None);
            assert_eq!(limit(&v4, &terminal), Some(AMQPValue::LongLongInt(-1)));
        }
        for work in [base.ingest_queue(), base.manifest_queue()] {
            assert_eq!(limit(&v3, &work), Some(AMQPValue::LongLongInt(5)));
            assert_eq!(limit(&v4, &work), Some(AMQPValue::LongLongInt(5)));
        }
    }

    /// The shard depends on the registry and the top-level namespace only, is stable (the
    /// same figures in every version: queues are named after it), and spreads namespaces.
    #[test]
    fn shards_follow_the_registry_and_the_top_level_namespace() {
        let topology = Topology::new("t", 5, &[1]).with_shards(4);
        let event = |host: &str, repository: &str| Event {
            action: Some(Action::Pull),
            request: crate::event::Request {
                host: Some(host.to_owned()),
                ..crate::event::Request::default()
            },
            target: Some(Target {
                repository: Some(repository.to_owned()),
                ..Target::default()
            }),
            ..Event::default()
        };
        let shard = |host: &str, repository: &str| topology.shard_of(&event(host, repository));
        assert_eq!(
            shard("r.example", "team/app"),
            shard("R.Example", "team/db/x")
        );
        let fixed: Vec<u16> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|namespace| shard("registry.example.com", namespace))
            .collect();
        assert_eq!(fixed, [0, 1, 2, 1, 2, 0, 3, 0], "stable across versions");
        let spread: std::collections::BTreeSet<u16> = (0..64)
            .map(|n| shard("registry.example.com", &format!("ns{n}/app")))
            .collect();
        assert_eq!(spread.len(), 4);
        assert_eq!(
            Topology::new("t", 5, &[1]).shard_of(&event("r", "team/app")),
            0
        );
        assert_eq!(
            topology.routing_key(&event("r.example", "team/app")),
            format!("pull.unknown.{}", shard("r.example", "team/app"))
        );
    }

    /// While the shard count changes the previous count's queues stay declared and consumed;
    /// a worker restricted to some shards consumes only those (and the previous ones).
    #[test]
    fn the_previous_shard_count_is_drained() {
        let mut settings = crate::config::Settings::load_with_env(None, Vec::new())
            .expect("the defaults are valid")
            .amqp;
        settings.shards = 2;
        settings.previous_shards = 1;
        let topology = Topology::from_settings(&settings);
        assert_eq!(
            topology.work_queues(),
            [
                "regstat.ingest.0",
                "regstat.manifests.0",
                "regstat.ingest.1",
                "regstat.manifests.1",
                "regstat.ingest",
                "regstat.manifests"
            ]
        );
        assert_eq!(
            topology.work_queues_of(&[1]),
            [
                "regstat.ingest.1",
                "regstat.manifests.1",
                "regstat.ingest",
                "regstat.manifests"
            ]
        );
        settings.previous_shards = 2;
        assert_eq!(Topology::from_settings(&settings).work_queues().len(), 4);
    }

    fn topic_matches(pattern: &str, key: &str) -> bool {
        let p: Vec<_> = pattern.split('.').collect();
        let k: Vec<_> = key.split('.').collect();
        p == ["#"] || (p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k))
    }
}
