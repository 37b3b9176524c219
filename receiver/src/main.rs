//! `regstat-receiver`: the webhook endpoint for registry notifications.

use clap::Parser;
use regstat_receiver::Application;
use regstat_shared::config::Settings;
use std::path::PathBuf;

/// Receives registry notifications and queues them in RabbitMQ.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (default: $REGSTAT_CONFIG, else built-in defaults + env).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    let app = Application::build(&settings)?;
    tracing::info!(
        listen = %settings.receiver.listen,
        tls = !settings.receiver.tls_cert_file.is_empty(),
        version = regstat_shared::VERSION,
        "receiver started"
    );
    let handle = app.handle();
    tokio::spawn(async move {
        regstat_shared::shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    tracing::info!("receiver stopped");
    Ok(())
}
