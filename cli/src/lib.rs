//! `regstat`, the operator's command line, as a library: each command's work returns data, so
//! tests call it directly and `main.rs` only parses arguments, asks for confirmation and
//! prints.
//!
//! # Layout
//! - [`admin`]: dead letters (list, replay, purge) and `status` (queues and ledger).
//! - [`cleanup`]: `regstat cleanup plan`, what a cleanup policy would delete and why.
//! - [`doctor`]: `regstat doctor`, every check a running installation needs, OK/WARN/FAIL.
//! - [`report`]: `regstat report NAME`, the arguments of each report.
//! - [`sync`]: `regstat sync`, backfill and reconciliation from a registry's catalog and tag
//!   lists, recorded as observations and tombstones.
//! - [`render`]: the one renderer of everything the command prints (tables, JSON, CSV).
//! - `main.rs`: arguments, `migrate` and `ledger prune` (one call each into the store).

pub mod admin;
pub mod cleanup;
pub mod doctor;
pub mod render;
pub mod report;
pub mod sync;
