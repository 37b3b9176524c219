//! regstat's PostgreSQL store: everything that reads or writes the database. No other crate
//! holds SQL.
//!
//! # Layout
//! - [`db`]: connections, migrations (the workspace's `migrations/`), and which database errors
//!   are transient.
//! - [`browse`]: what the console shows besides the reports (totals, repositories, a digest,
//!   search, activity).
//! - [`databases`]: whole databases made and dropped by the test suites and the benchmark.
//! - [`keys`]: event ids and an event's other UUIDs as `uuid` columns, and the key of an id
//!   that is not one.
//! - [`ledger`]: `regstat.events`, one row per distinct event id, and recording a batch of
//!   events with their effects in one transaction.
//! - [`model`]: what each event, and each observation of `regstat sync`, changes in the derived
//!   registry state (tags, manifests, references, blobs, pulls, deletions, actors), coalesced
//!   and written with one set-based upsert per table; content already known.
//! - [`caches`]: per-repository caches of what the reports compute: writes mark repositories
//!   stale, the worker's refresher recomputes them, readers stay exact either way.
//! - [`retention`]: the ledger's partitions, retention and dedupe window.
//! - [`cleanup`]: cleanup policies and what they keep or make a candidate, with reasons.
//! - [`reports`]: the report views and functions behind `regstat report`.
//! - [`status`]: the ledger's size and freshness (`regstat status`).
//! - [`sync`]: what `regstat sync` reads of the state it reconciles.
//! - [`measure`]: whole-ledger counts for the benchmark's checks.
//! - `testkit` (feature `testkit`): a migrated database per test, dropped afterwards.

pub mod browse;
pub mod caches;
pub mod cleanup;
pub mod databases;
pub mod db;
pub mod keys;
pub mod ledger;
pub mod measure;
pub mod model;
pub mod reports;
pub mod retention;
pub mod status;
pub mod sync;

#[cfg(feature = "testkit")]
pub mod testkit;
