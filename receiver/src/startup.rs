//! Building and running the receiver on a listener.

use crate::publisher::Publisher;
use crate::routes::{events, health};
use crate::tls;
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use regstat_shared::auth::Authenticator;
use regstat_shared::config::Settings;
use regstat_shared::topology::Topology;
use std::net::TcpListener;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a connection being closed gets to take the last answer (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// `receiver.request_body_timeout_ms`.
    pub body_timeout: Duration,
    /// Names the routing key (and so the queue and shard) of each event.
    pub topology: Topology,
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
            topology.clone(),
            shutdown.clone(),
        );
        regstat_shared::metrics::handle();

        let state = web::Data::new(AppState {
            auth,
            publisher: publisher.clone(),
            body_limit: settings.receiver.body_limit_bytes,
            retry_after_secs: settings.receiver.retry_after_secs,
            body_timeout: Duration::from_millis(settings.receiver.request_body_timeout_ms),
            topology,
        });
        let receiver = &settings.receiver;
        let workers = match receiver.http_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let keep_alive = match receiver.keep_alive_secs {
            0 => KeepAlive::Disabled,
            secs => KeepAlive::Timeout(Duration::from_secs(secs)),
        };
        let server = HttpServer::new(move || {
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
        .shutdown_timeout(receiver.shutdown_timeout_secs)
        .workers(workers)
        .client_request_timeout(Duration::from_millis(receiver.request_head_timeout_ms))
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .keep_alive(keep_alive)
        // actix counts connections per worker thread.
        .max_connections(receiver.max_connections.div_ceil(workers));
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
