//! `regstat-console`: the web console and JSON API.

use regstat_console::Application;
use regstat_shared::config::{ConfigFile, Settings};
use regstat_shared::healthcheck::{self, ServiceArgs, ServiceCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = ServiceArgs::parse_for("regstat-console", env!("CARGO_PKG_DESCRIPTION"));
    let (settings, config) = Settings::load_located(service.config.as_deref())?;
    if let Some(ServiceCommand::Healthcheck { live }) = service.command {
        healthcheck::run(&settings.console.listen, live, false).await;
        return Ok(());
    }
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    let app = Application::build(&settings)?;
    tracing::info!(
        listen = %settings.console.listen,
        version = regstat_shared::VERSION,
        config = ConfigFile::describe(config.as_ref()),
        "console started"
    );
    let handle = app.handle();
    tokio::spawn(async move {
        regstat_shared::shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    tracing::info!("console stopped");
    Ok(())
}
