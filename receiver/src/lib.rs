//! regstat's webhook receiver.
//!
//! It authenticates and validates each notification request from a registry, publishes every
//! event to RabbitMQ as its own persistent message (message id = event id), waits for the
//! broker's confirms, then answers. It never calls the registry and never touches Postgres.
//!
//! # Layout
//! - [`startup`]: builds the HTTP server on a listener and runs it.
//! - [`routes`]: `POST /events` (and its aliases), `/healthz`, `/readyz`, `/metrics`.
//! - [`publisher`]: confirmed publishing over a supervised, self-healing broker connection.
//! - [`error`]: the one place errors become HTTP answers.
//! - [`tls`]: the HTTPS configuration from the certificate and key files.

pub mod error;
pub mod publisher;
pub mod routes;
pub mod startup;
pub mod tls;

pub use startup::Application;
