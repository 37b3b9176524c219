//! `regstat-worker`: consumes queued registry events and records them in PostgreSQL.

use clap::Parser;
use regstat_shared::config::Settings;
use regstat_shared::healthcheck::{self, Probe};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Consumes registry events from RabbitMQ into PostgreSQL. Run as many copies as needed.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (default: $REGSTAT_CONFIG, else built-in defaults + env).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Exit 0 if the running worker answers /readyz with 200 (container health checks).
    Healthcheck {
        /// Probe /healthz (the process serves HTTP) instead of /readyz.
        #[arg(long)]
        live: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    if let Some(Command::Healthcheck { live }) = cli.command {
        let probe = if live { Probe::Live } else { Probe::Ready };
        if let Err(reason) = healthcheck::probe(&settings.worker.listen, probe, false).await {
            eprintln!("{reason}");
            std::process::exit(1);
        }
        return Ok(());
    }
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    tracing::info!(version = regstat_shared::VERSION, prefix = %settings.amqp.prefix, "worker started");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        regstat_shared::shutdown_signal().await;
        tracing::info!("shutdown requested; finishing the batch in hand");
        signal.cancel();
    });
    regstat_worker::run(&settings, shutdown).await?;
    tracing::info!("worker stopped");
    Ok(())
}
