//! The fault suite: a known stream of real registry events (the distribution 2.8.2 fixtures
//! with fresh ids, plus re-sent duplicates) goes through receiver → RabbitMQ → workers →
//! PostgreSQL while one thing breaks, and at the end the ledger must hold exactly the stream's
//! ids and the derived state must equal the state the same events give when applied plainly
//! (one worker, in order, no broker) to a reference database.
//!
//! One test per fault, each with its own database, queue prefix and processes:
//! - [`killed_workers`]: three worker processes SIGKILLed one after another and restarted;
//! - [`broker_cut`]: the link to RabbitMQ cut for a few seconds (a TCP proxy), so the receiver
//!   answers 503 and the sender retries like a registry;
//! - [`database_cut`]: the link to PostgreSQL cut the same way, so workers hold their batches;
//! - [`registry_failures`]: the registry callback failing for a while (retried), and for good
//!   (dead-lettered, then `regstat dlq replay` once it works again);
//! - [`graceful_shutdown`]: receiver and workers stopped with SIGTERM-like shutdowns under load;
//! - [`blocked_broker`]: a memory alarm on a private RabbitMQ node blocks publishers for a few
//!   seconds; every request is answered (503) before the sender's timeout.
//! - [`cluster`]: a node of a three-node RabbitMQ cluster (`deploy/rabbitmq-cluster.sh`, four
//!   shards, two receivers, three workers) killed, then another stopped, under load.
//!
//! Each test prints one line of figures (`cargo test faults -- --nocapture` shows them).
//!
//! [`stream`] builds the events and the reference state, [`sender`] posts them like a registry,
//! [`processes`] runs workers as real processes, [`harness`] holds the rest.

mod blocked_broker;
mod broker_cut;
mod cluster;
mod database_cut;
mod graceful_shutdown;
mod harness;
mod killed_workers;
mod processes;
mod registry_failures;
mod sender;
mod stream;
