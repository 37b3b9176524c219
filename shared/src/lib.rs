//! Code shared by regstat's receiver, worker and CLI.
//!
//! # Layout
//! - [`event`]: the distribution notification model (envelope, event, routing).
//! - [`grammar`]: repository names, tags and digests as distribution defines them.
//! - [`content`]: what a manifest contains (config, layers, children, platform), whichever
//!   source told.
//! - [`backoff`]: the one retry delay policy (exponential, capped) every retry loop uses.
//! - [`export`]: report rows as CSV (the CLI and the console write the same).
//! - [`config`]: typed, layered settings with defaults in one embedded file.
//! - [`telemetry`]: tracing subscriber setup (human or JSON).
//! - [`topology`]: RabbitMQ exchanges, queues and bindings, declared by every process.
//! - [`amqp`]: opening broker connections.
//! - [`auth`]: bearer and basic credentials of the HTTP services, compared in constant time.
//! - [`healthcheck`]: the binaries' `healthcheck` subcommand (container images have no curl).
//! - [`metrics`]: the process-wide Prometheus recorder.
//! - `testkit` (feature `testkit`): isolated databases, vhost-free queue prefixes and a
//!   cuttable TCP proxy for the integration tests of the other crates.

pub mod amqp;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod content;
pub mod event;
pub mod export;
pub mod grammar;
pub mod healthcheck;
pub mod metrics;
pub mod telemetry;
pub mod topology;

#[cfg(feature = "testkit")]
pub mod testkit;

/// regstat's version, as sent in its User-Agent.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
