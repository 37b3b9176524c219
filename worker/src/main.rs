//! `regstat-worker`: consumes queued registry events and records them in PostgreSQL.

use regstat_shared::config::{ConfigFile, Settings};
use regstat_shared::healthcheck::{self, ServiceArgs, ServiceCommand};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = ServiceArgs::parse_for("regstat-worker", env!("CARGO_PKG_DESCRIPTION"));
    let (settings, config) = Settings::load_located(service.config.as_deref())?;
    if let Some(ServiceCommand::Healthcheck { live }) = service.command {
        healthcheck::run(&settings.worker.listen, live, false).await;
        return Ok(());
    }
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    tracing::info!(
        version = regstat_shared::VERSION,
        prefix = %settings.amqp.prefix,
        config = ConfigFile::describe(config.as_ref()),
        "worker started"
    );
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
