//! The worker's integration tests, on real PostgreSQL and RabbitMQ (and, for `e2e`, a real
//! distribution registry driven by skopeo).
#![allow(clippy::unwrap_used, missing_docs)]

mod admin;
mod callbacks;
mod cleanup;
mod console;
mod deploy;
mod doctor;
mod e2e;
mod e2e_model;
mod faults;
mod helpers;
mod ledger;
mod model;
mod pipeline;
mod pulls;
mod registry;
mod reports;
mod retention;
mod retries;
mod secrets;
mod shards;
mod support;
mod sync;
