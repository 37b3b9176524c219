//! The worker's integration tests, on real PostgreSQL and RabbitMQ (and, for `e2e`, a real
//! distribution registry driven by skopeo).
#![allow(clippy::unwrap_used, missing_docs)]

mod callbacks;
mod e2e;
mod e2e_model;
mod helpers;
mod ledger;
mod model;
mod pipeline;
mod registry;
mod retries;
mod secrets;
mod support;
