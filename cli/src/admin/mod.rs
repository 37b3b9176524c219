//! Operator tools behind the `regstat` command line: inspect, replay and purge dead letters,
//! and report queue depths and the ledger's size and freshness.
//!
//! Everything here returns data (serde `Serialize` structs); [`output`] lays out their tables
//! and [`crate::render`] draws them (or JSON, CSV), so tests call these functions directly and
//! the binary only parses arguments and prints.
//!
//! - [`dlq`]: the dead-letter queue, read without losing or consuming anything unless asked.
//! - [`letter`]: what a dead letter says about itself (our failure headers or the broker's
//!   `x-death`), and the headers a replay removes.
//! - [`status`]: queue depths and consumers, ledger size, newest recorded event per work queue.
//! - [`output`]: which columns the tables of `status` and `dlq` show.

pub mod dlq;
pub mod letter;
pub mod output;
pub mod status;

use lapin::Connection;
use regstat_shared::config::{AmqpSettings, ConfigFile, DatabaseSettings};
use secrecy::ExposeSecret;
use sqlx::PgConnection;

/// Name the CLI's broker connections carry in RabbitMQ's connection list.
const CONNECTION_NAME: &str = "regstat-cli";

/// What an admin operation could not do. Every message names the service (with its address,
/// password masked) or the queue involved.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The broker could not be reached or refused the login.
    #[error("cannot connect to RabbitMQ at {url}")]
    BrokerConnect {
        /// The broker URL, password masked.
        url: String,
        /// Why.
        #[source]
        source: lapin::Error,
    },
    /// A broker operation failed after connecting.
    #[error("RabbitMQ: cannot {action}")]
    Broker {
        /// What was being done, e.g. `read queue regstat.dead`.
        action: String,
        /// Why.
        #[source]
        source: lapin::Error,
    },
    /// A queue that must exist does not.
    #[error(
        "queue {queue} does not exist: is amqp.prefix right, and has a receiver or worker \
         with this prefix started once (they declare the queues)?"
    )]
    MissingQueue {
        /// The queue's name.
        queue: String,
    },
    /// The database could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {url}")]
    DatabaseConnect {
        /// The database URL, password masked.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A database query failed.
    #[error("PostgreSQL: cannot {action}")]
    Database {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

impl AdminError {
    fn broker(action: impl Into<String>) -> impl FnOnce(lapin::Error) -> Self {
        let action = action.into();
        move |source| Self::Broker { action, source }
    }
}

/// Opens a broker connection named `regstat-cli`.
pub async fn connect_broker(amqp: &AmqpSettings) -> Result<Connection, AdminError> {
    regstat_shared::amqp::connect(&amqp.url, CONNECTION_NAME)
        .await
        .map_err(|source| AdminError::BrokerConnect {
            url: redact_url(amqp.url.expose_secret()),
            source,
        })
}

/// Opens one database connection (all the CLI needs), within `database.acquire_timeout_ms`,
/// so that an unreachable database is reported with its cause.
pub async fn connect_database(database: &DatabaseSettings) -> Result<PgConnection, AdminError> {
    regstat_store::db::connect(database, CONNECTION_NAME)
        .await
        .map_err(|source| AdminError::DatabaseConnect {
            url: redact_url(database.url.expose_secret()),
            source,
        })
}

/// Closes a broker connection politely (unacknowledged messages return to their queues
/// either way).
pub async fn close_broker(connection: &Connection) {
    if connection.status().connected() {
        let _ = connection.close(200, "regstat-cli done".into()).await;
    }
}

/// Ready messages and consumers of `queue`, or `None` if it does not exist. A passive declare
/// that fails closes the channel, so each check uses a channel of its own.
pub(crate) async fn inspect_queue(
    connection: &Connection,
    queue: &str,
) -> Result<Option<(u32, u32)>, AdminError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(AdminError::broker("open a channel"))?;
    match regstat_shared::amqp::queue_counts(&channel, queue).await {
        Ok(counts) => {
            let _ = channel.close(200, "done".into()).await;
            Ok(Some(counts))
        }
        Err(error) if is_not_found(&error) => Ok(None),
        Err(source) => Err(AdminError::Broker {
            action: format!("inspect queue {queue}"),
            source,
        }),
    }
}

/// Whether the broker answered 404 NOT_FOUND (a passive declare of a missing queue or
/// exchange).
pub(crate) fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// The vhost and `host:port` of a broker URL (no credentials), for messages; the vhost is `?`
/// and the address the whole URL, password masked, when the URL does not parse.
pub fn broker_location(url: &str) -> (String, String) {
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(uri) => (
            uri.vhost,
            format!("{}:{}", uri.authority.host, uri.authority.port),
        ),
        Err(_) => ("?".to_owned(), redact_url(url)),
    }
}

/// What it means when regstat's queues are missing, in regstat's words (`regstat status` and
/// `regstat doctor` say it so): which vhost and broker, which prefix, and where this command's
/// configuration came from (the services may use another).
pub fn missing_queues_hint(amqp: &AmqpSettings, file: Option<&ConfigFile>) -> String {
    let (vhost, host) = broker_location(amqp.url.expose_secret());
    format!(
        "regstat's queues are missing in vhost '{vhost}' at {host}: no receiver or worker has \
         started against this broker with prefix '{}', or they use other settings (this \
         command's configuration: {})",
        amqp.prefix,
        ConfigFile::describe(file)
    )
}

pub use regstat_shared::config::redact_url;
