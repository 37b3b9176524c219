//! Building and running the receiver on a listener.

use crate::publisher::Publisher;
use crate::routes::{events, health};
use crate::tls;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use regstat_shared::auth::Authenticator;
use regstat_shared::config::Settings;
use regstat_shared::topology::Topology;
use std::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every request handler shares.
pub struct AppState {
    /// Accepted credentials.
    pub auth: Authenticator,
    /// The broker link.
    pub publisher: Publisher,
    /// `receiver.body_limit_bytes`.
    pub body_limit: usize,
    /// `receiver.retry_after_secs`.
    pub retry_after_secs: u32,
}

/// A built receiver, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    publisher: Publisher,
    supervisor: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds `receiver.listen` and builds the app.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let address = settings.receiver_listen()?;
        let listener =
            TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
        Self::build_with_listener(settings, listener)
    }

    /// Builds the app on an already-bound listener (port 0 in tests). Must be called inside a
    /// Tokio runtime: it starts the broker supervisor. With `receiver.tls_cert_file` and
    /// `receiver.tls_key_file` set it serves HTTPS only; unusable TLS files fail here, before
    /// anything is started.
    pub fn build_with_listener(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let tls = tls::server_config(&settings.receiver)?;
        let auth = Authenticator::new(&settings.receiver.tokens, &settings.receiver.basic);
        if auth.is_open() {
            if !settings.receiver.allow_anonymous {
                anyhow::bail!(
                    "no receiver.tokens or receiver.basic configured: refusing to accept \
                     notifications from anyone; configure credentials (and the registry's \
                     Authorization header), or set receiver.allow_anonymous = true"
                );
            }
            tracing::warn!(
                "no receiver.tokens or receiver.basic configured and receiver.allow_anonymous \
                 is true: accepting unauthenticated notifications"
            );
        }
        let topology = Topology::from_settings(&settings.amqp);
        let shutdown = CancellationToken::new();
        let (publisher, supervisor) = Publisher::start(
            &settings.amqp,
            settings.receiver_blocked_answer(),
            topology,
            shutdown.clone(),
        );
        regstat_shared::metrics::handle();

        let state = web::Data::new(AppState {
            auth,
            publisher: publisher.clone(),
            body_limit: settings.receiver.body_limit_bytes,
            retry_after_secs: settings.receiver.retry_after_secs,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/events", web::post().to(events::receive))
                .route("/", web::post().to(events::receive))
                .route("/api/webhook/registry", web::post().to(events::receive))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(health::metrics))
                .default_service(web::to(health::not_found))
        })
        .disable_signals()
        .shutdown_timeout(settings.receiver.shutdown_timeout_secs);
        if settings.receiver.http_workers > 0 {
            server = server.workers(settings.receiver.http_workers);
        }
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Self {
            port,
            server,
            publisher,
            supervisor,
            shutdown,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (gracefully: in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The broker link (for readiness checks in tests).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Serves until stopped through [`Self::handle`], then closes the broker connection.
    /// In-flight requests finish first, so every answered 200 was confirmed by the broker.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        self.shutdown.cancel();
        self.supervisor
            .await
            .context("broker supervisor panicked")?;
        served.context("HTTP server failed")
    }
}
