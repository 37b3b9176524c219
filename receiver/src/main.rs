//! `regstat-receiver`: the webhook endpoint for registry notifications.

use regstat_receiver::Application;
use regstat_shared::config::{ConfigFile, Settings};
use regstat_shared::healthcheck::{self, ServiceArgs, ServiceCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = ServiceArgs::parse_for("regstat-receiver", env!("CARGO_PKG_DESCRIPTION"));
    let (settings, config) = Settings::load_located(service.config.as_deref())?;
    if let Some(ServiceCommand::Healthcheck { live }) = service.command {
        let tls = !settings.receiver.tls_cert_file.is_empty();
        healthcheck::run(&settings.receiver.listen, live, tls).await;
        return Ok(());
    }
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    let app = Application::build(&settings)?;
    tracing::info!(
        listen = %settings.receiver.listen,
        tls = !settings.receiver.tls_cert_file.is_empty(),
        version = regstat_shared::VERSION,
        config = ConfigFile::describe(config.as_ref()),
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
