//! `rabbitmq`, `exchange …`, `queue …`, `topology`, `consumers …`, `dead letters`,
//! `quarantine`: the broker answers; every exchange and queue of the topology exists
//! (passive declare) and was declared with this configuration's arguments (the topology's own
//! declare of an object that exists: a no-op when they match, PRECONDITION_FAILED when not);
//! a worker consumes each work queue; dead letters and quarantined events wait (WARN).

use super::{Report, STEP_TIMEOUT, bounded, chain};
use crate::admin;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ExchangeKind};
use regstat_shared::config::{ConfigFile, Settings};
use regstat_shared::topology::{QueueRole, QueueSpec, Topology};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::future::Future;

/// What the broker holds of one exchange or queue.
#[derive(Debug)]
enum Found {
    /// Declared as the topology declares it; a queue's ready messages and consumers.
    Matching(Option<(u32, u32)>),
    /// Does not exist.
    Missing,
    /// Exists with other properties or arguments: the broker's words.
    Differs(String),
    /// Could not be inspected.
    Unknown(String),
}

/// `rabbitmq`, each exchange and queue, `consumers …`, `dead letters`, `quarantine`.
pub(super) async fn check(report: &mut Report, settings: &Settings, file: Option<&ConfigFile>) {
    let url = admin::redact_url(settings.amqp.url.expose_secret());
    let connection = match bounded(admin::connect_broker(&settings.amqp)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            report.fail("rabbitmq", format!("{}: {}", chain(&error), BROKER_FIX));
            return;
        }
        Err(_) => {
            report.fail(
                "rabbitmq",
                format!(
                    "cannot connect to RabbitMQ at {url}: no answer within {} s: {BROKER_FIX}",
                    STEP_TIMEOUT.as_secs()
                ),
            );
            return;
        }
    };
    let version = match regstat_shared::amqp::broker_version(&settings.amqp.url).await {
        Ok(version) => version,
        Err(error) => {
            report.fail(
                "rabbitmq",
                format!("cannot read the broker's version: {error}"),
            );
            admin::close_broker(&connection).await;
            return;
        }
    };
    let described = version.map_or_else(
        || "a broker that does not say it is RabbitMQ 3 or 4".to_owned(),
        |v| format!("RabbitMQ {v}"),
    );
    report.ok("rabbitmq", format!("connected to {url} ({described})"));
    let topology = Topology::from_settings(&settings.amqp).on_broker(version);
    let (vhost, _) = admin::broker_location(settings.amqp.url.expose_secret());

    let mut found: Vec<(String, Found)> = Vec::new();
    for (name, kind) in topology.exchanges() {
        let state = exchange(&connection, &topology, &name, kind).await;
        found.push((format!("exchange {name}"), state));
    }
    let queues = topology.queues();
    let mut counts = BTreeMap::new();
    for spec in &queues {
        let state = queue(&connection, &topology, spec).await;
        if let Found::Matching(Some(queue_counts)) = state {
            counts.insert(spec.name.clone(), queue_counts);
        }
        found.push((format!("queue {}", spec.name), state));
    }
    admin::close_broker(&connection).await;

    let missing = found
        .iter()
        .filter(|(_, state)| matches!(state, Found::Missing))
        .count();
    let hint = admin::missing_queues_hint(&settings.amqp, file);
    if missing == found.len() {
        report.fail(
            "topology",
            format!(
                "none of the {missing} exchanges and queues exists: {hint}; start the receiver and \
                 worker with this configuration, or run regstat with theirs (--config or \
                 $REGSTAT_CONFIG)"
            ),
        );
        return;
    }
    for (name, state) in found {
        match state {
            Found::Matching(_) => report.ok(name, "declared as this configuration declares it"),
            Found::Missing => report.fail(name, format!("missing in vhost '{vhost}'")),
            Found::Differs(why) => report.fail(
                name,
                format!(
                    "declared with other settings than this configuration's: {why}: the \
                     services use other settings (amqp.*), or the configuration changed and the \
                     object must be recreated (docs/OPERATIONS.md, \"Upgrades and migrations\")"
                ),
            ),
            Found::Unknown(why) => report.fail(name, format!("cannot inspect it: {why}")),
        };
    }
    if missing > 0 {
        report.fail(
            "topology",
            format!("{missing} exchanges or queues are missing: {hint}"),
        );
    }

    for spec in queues.iter().filter(|spec| spec.role == QueueRole::Work) {
        let Some((_, consumers)) = counts.get(&spec.name) else {
            continue;
        };
        let name = format!("consumers {}", spec.name);
        if *consumers == 0 {
            report.fail(
                name,
                format!(
                    "no worker consumes {}: start regstat-worker with this configuration",
                    spec.name
                ),
            );
        } else {
            report.ok(name, super::count(*consumers, "consumer"));
        }
    }
    if let Some((messages, _)) = counts.get(&topology.dead_queue()) {
        if *messages > 0 {
            report.warn(
                "dead letters",
                format!(
                    "{} failed for good, kept in {}: see `regstat dlq list`, fix the cause, \
                     then `regstat dlq replay`",
                    super::count(*messages, "event"),
                    topology.dead_queue()
                ),
            );
        } else {
            report.ok("dead letters", "none");
        }
    }
    if let Some((messages, _)) = counts.get(&topology.quarantine_queue()) {
        if *messages > 0 {
            report.warn(
                "quarantine",
                format!(
                    "{} arrived unusable, kept in {}: inspect them in RabbitMQ's management \
                     UI, then purge them there (docs/OPERATIONS.md, \"Dead letters and replay\")",
                    super::count(*messages, "event"),
                    topology.quarantine_queue()
                ),
            );
        } else {
            report.ok("quarantine", "none");
        }
    }
}

/// What to check when the broker cannot be reached.
const BROKER_FIX: &str = "is RabbitMQ running, and is amqp.url right (host, port, user, and a \
                          vhost that exists and lets the user in)?";

/// An exchange of the topology: passive declare (existence), then the topology's own declare
/// (a no-op when it matches), each on a channel of its own since a failure closes it.
async fn exchange(
    connection: &Connection,
    topology: &Topology,
    name: &str,
    kind: ExchangeKind,
) -> Found {
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let passive_kind = kind.clone();
    let exists = on_channel(connection, |channel| async move {
        channel
            .exchange_declare(name.into(), passive_kind, passive, FieldTable::default())
            .await
    })
    .await;
    match exists {
        Ok(()) => {}
        Err(Inspect::Broker(error)) if admin::is_not_found(&error) => return Found::Missing,
        Err(error) => return Found::Unknown(error.to_string()),
    }
    let declared = on_channel(connection, |channel| async move {
        topology.declare_exchange(&channel, name, kind).await
    })
    .await;
    match declared {
        Ok(()) => Found::Matching(None),
        Err(error) => differs(error),
    }
}

/// A queue of the topology: passive declare (existence), then the topology's own declare (a
/// no-op when it matches, and its message and consumer counts).
async fn queue(connection: &Connection, topology: &Topology, spec: &QueueSpec) -> Found {
    match bounded(admin::inspect_queue(connection, &spec.name)).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return Found::Missing,
        Ok(Err(error)) => return Found::Unknown(chain(&error)),
        Err(elapsed) => return Found::Unknown(elapsed.to_string()),
    }
    let declared = on_channel(connection, |channel| async move {
        topology.declare_queue(&channel, spec).await
    })
    .await;
    match declared {
        Ok(queue) => Found::Matching(Some((queue.message_count(), queue.consumer_count()))),
        Err(error) => differs(error),
    }
}

/// An active declare's failure: PRECONDITION_FAILED says what differs.
fn differs(error: Inspect) -> Found {
    match error {
        Inspect::Broker(error) if matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 406) => {
            Found::Differs(error.to_string())
        }
        other => Found::Unknown(other.to_string()),
    }
}

/// Why an object could not be inspected.
#[derive(Debug, thiserror::Error)]
enum Inspect {
    /// The broker refused the operation or the connection failed.
    #[error("{}", chain(.0))]
    Broker(lapin::Error),
    /// No answer in time.
    #[error("no answer within {} s", STEP_TIMEOUT.as_secs())]
    Timeout,
}

/// Runs `operation` on a fresh channel, closed afterwards if the broker has not closed it.
async fn on_channel<T, F, Fut>(connection: &Connection, operation: F) -> Result<T, Inspect>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = lapin::Result<T>>,
{
    let channel = match bounded(connection.create_channel()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(error)) => return Err(Inspect::Broker(error)),
        Err(_) => return Err(Inspect::Timeout),
    };
    let result = match bounded(operation(channel.clone())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Inspect::Broker(error)),
        Err(_) => Err(Inspect::Timeout),
    };
    if channel.status().connected() {
        let _ = bounded(channel.close(200, "regstat doctor done".into())).await;
    }
    result
}
