//! Connecting to RabbitMQ, and finding out which RabbitMQ it is.

use crate::config::{node_urls, redact_url};
use lapin::protocol::{AMQPClass, connection};
use lapin::tcp::{AMQPUriTcpExt, TLSConfig};
use lapin::types::AMQPValue;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest wait for one node to accept a connection before the next is tried (a node behind
/// a partition may never answer the TCP handshake).
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages ready and consumers of `queue`, by a passive declaration (which fails, closing
/// `channel`, when the queue does not exist).
pub async fn queue_counts(channel: &lapin::Channel, queue: &str) -> lapin::Result<(u32, u32)> {
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    Ok((declared.message_count(), declared.consumer_count()))
}

/// Opens a connection named `name` (shown in RabbitMQ's connection list) to a node of `url`
/// (one URI, or a cluster's nodes separated by commas): the first that accepts it, starting
/// one node further on each call (from a start that differs per process), so processes
/// started together spread over the cluster and one that lost its node tries another first.
pub async fn connect(url: &SecretString, name: &str) -> lapin::Result<Connection> {
    let nodes = nodes_in_turn(url);
    let mut failure = None;
    for (index, node) in nodes.iter().enumerate() {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let attempt = tokio::time::timeout(
            NODE_CONNECT_TIMEOUT,
            Connection::connect(node.expose_secret(), properties),
        )
        .await
        .unwrap_or_else(|_| {
            Err(lapin::Error::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        });
        match attempt {
            Ok(connection) => {
                if nodes.len() > 1 {
                    tracing::info!(
                        node = %redact_url(node.expose_secret()),
                        connection = name,
                        "connected to a broker node"
                    );
                }
                return Ok(connection);
            }
            Err(error) => {
                if index + 1 < nodes.len() {
                    tracing::warn!(
                        node = %redact_url(node.expose_secret()),
                        connection = name,
                        %error,
                        "broker node unreachable, trying the next"
                    );
                }
                failure = Some(error);
            }
        }
    }
    Err(failure
        .unwrap_or_else(|| lapin::Error::from(std::io::Error::other("amqp.url lists no node"))))
}

/// The nodes of `url` in the order to try them now: each call starts one node further (from a
/// start that differs per process), so processes started together spread over the cluster
/// and one that lost its node tries another first.
fn nodes_in_turn(url: &SecretString) -> Vec<SecretString> {
    static TURN: AtomicUsize = AtomicUsize::new(0);
    let mut nodes = node_urls(url);
    if nodes.is_empty() {
        nodes.push(url.clone());
    }
    let turn = TURN.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id() as usize).wrapping_add(turn) % nodes.len();
    nodes.rotate_left(start);
    nodes
}

/// A RabbitMQ version, as the broker announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerVersion {
    /// Major version (3, 4...).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl BrokerVersion {
    /// Reads `4.1.2`, `3.10.8`, `4.0.0-rc.1`...; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }

    /// Whether a quorum queue declared without `x-delivery-limit` gets a limit of 20 (RabbitMQ
    /// 4.0 and later; before, it has none). There, `-1` means no limit; before 4.0, `-1`
    /// makes a queue drop a message the first time it is returned.
    pub fn limits_deliveries_by_default(self) -> bool {
        self.major >= 4
    }
}

impl std::fmt::Display for BrokerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why the broker's version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// `amqp.url` is not an AMQP URI.
    #[error("amqp.url is not an AMQP URI: {0}")]
    Url(String),
    /// No connection, or it broke.
    #[error("cannot reach the broker: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the probe's deadline.
    #[error("the broker did not greet within {0:?}")]
    Timeout(Duration),
    /// The greeting was not AMQP 0-9-1's `connection.start` with a version.
    #[error("the broker's greeting carries no version: {0}")]
    Greeting(String),
}

/// Longest wait for the broker's greeting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest greeting read (RabbitMQ's is about 600 bytes).
const MAX_GREETING_BYTES: usize = 64 * 1024;

/// The version of the broker at `url` (of the first node that answers, for a cluster's list;
/// a cluster's nodes run one version, except during a rolling upgrade), from the `version` server property of its
/// `connection.start` greeting (lapin does not expose it). Opens a connection of its own with
/// the same TCP and TLS stack as lapin, sends the protocol header, reads the greeting and
/// closes, before any credential is sent.
pub async fn broker_version(url: &SecretString) -> Result<Option<BrokerVersion>, ProbeError> {
    let mut failure = None;
    for node in nodes_in_turn(url) {
        match node_version(&node).await {
            Ok(version) => return Ok(version),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or_else(|| ProbeError::Url("amqp.url lists no node".to_owned())))
}

/// [`broker_version`] of one node.
async fn node_version(url: &SecretString) -> Result<Option<BrokerVersion>, ProbeError> {
    let uri: AMQPUri = url.expose_secret().parse().map_err(ProbeError::Url)?;
    let probe = tokio::task::spawn_blocking(move || greeting(&uri));
    let properties = tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| ProbeError::Timeout(PROBE_TIMEOUT))?
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))??;
    Ok(match properties.inner().get("version") {
        Some(AMQPValue::LongString(text)) => BrokerVersion::parse(&text.to_string()),
        _ => None,
    })
}

/// Reads the server properties of the broker's `connection.start` (blocking).
fn greeting(uri: &AMQPUri) -> Result<lapin::types::FieldTable, ProbeError> {
    let mut stream = uri
        .connect_with_config(TLSConfig::default())
        .map_err(|e| ProbeError::Io(std::io::Error::other(e.to_string())))?;
    stream.set_nonblocking(false)?;
    stream.write_all(b"AMQP\x00\x00\x09\x01")?;
    stream.flush()?;
    // A frame: type (1 byte), channel (2), payload size (4), payload, end marker 0xCE.
    let mut header = [0u8; 7];
    stream.read_exact(&mut header)?;
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    if header[0] != 1 || size > MAX_GREETING_BYTES {
        return Err(ProbeError::Greeting(format!(
            "not a method frame (type {}, {size} bytes)",
            header[0]
        )));
    }
    let mut payload = vec![0u8; size];
    stream.read_exact(&mut payload)?;
    match lapin::protocol::parse_class(payload.as_slice()) {
        Ok((_, AMQPClass::Connection(connection::AMQPMethod::Start(start)))) => {
            Ok(start.server_properties)
        }
        Ok((_, other)) => Err(ProbeError::Greeting(format!("{other:?}"))),
        Err(error) => Err(ProbeError::Greeting(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_and_4_0_limits_deliveries() {
        let v = |text| BrokerVersion::parse(text).expect(text);
        assert_eq!(
            v("3.10.8"),
            BrokerVersion {
                major: 3,
                minor: 10
            }
        );
        assert_eq!(v("4.0.0-rc.1"), BrokerVersion { major: 4, minor: 0 });
        assert_eq!(BrokerVersion::parse("LavinMQ"), None);
        assert!(!v("3.13.7").limits_deliveries_by_default());
        assert!(v("4.0.0").limits_deliveries_by_default());
        assert!(v("4.1.2").limits_deliveries_by_default());
    }
}
