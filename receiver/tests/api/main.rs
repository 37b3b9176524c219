//! The receiver's integration tests, on a real RabbitMQ.
#![allow(clippy::unwrap_used, missing_docs)]

mod blocked;
mod broker;
mod events;
mod helpers;
mod hostile;
mod rejects;
mod slow;
mod tls;
