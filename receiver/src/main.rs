//! `regstat-receiver`: the webhook endpoint for registry notifications.

use clap::Parser;
use regstat_receiver::Application;
use regstat_shared::config::Settings;
use regstat_shared::healthcheck::{self, Probe};
use std::path::PathBuf;

/// Receives registry notifications and queues them in RabbitMQ.
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
    /// Exit 0 if the running receiver answers /readyz with 200 (container health checks).
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
        if let Err(reason) = healthcheck::probe(
            &settings.receiver.listen,
            probe,
            !settings.receiver.tls_cert_file.is_empty(),
        )
        .await
        {
            eprintln!("{reason}");
            std::process::exit(1);
        }
        return Ok(());
    }
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
