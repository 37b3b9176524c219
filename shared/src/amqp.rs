//! Connecting to RabbitMQ.

use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

/// Opens a connection named `name` (shown in RabbitMQ's connection list).
pub async fn connect(url: &SecretString, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.expose_secret(), properties).await
}
