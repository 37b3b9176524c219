//! Building and running the console on a listener.

use crate::{api, assets, auth, pages};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use regstat_shared::auth::Authenticator;
use regstat_shared::config::Settings;
use serde_json::json;
use sqlx::PgPool;
use std::net::TcpListener;
use std::time::Duration;

/// What every request handler shares.
pub struct AppState {
    /// The database the console reads.
    pub pool: PgPool,
    /// `amqp.prefix`: which queues' status to show.
    pub prefix: String,
    /// `cleanup.policy_file`: the policy whose plan the candidates page shows (empty: none).
    pub policy_file: String,
}

/// Longest wait for the database in a readiness check.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// No inline script or style, nothing from elsewhere; charts draw on a canvas.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A built console, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
}

impl Application {
    /// Binds `console.listen` and builds the app.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let address = &settings.console.listen;
        let listener = TcpListener::bind(address)
            .with_context(|| format!("cannot listen on console.listen {address}"))?;
        Self::build_with_listener(settings, listener)
    }

    /// Builds the app on an already-bound listener (port 0 in tests). Refuses to build without
    /// credentials unless `console.allow_anonymous` is set.
    pub fn build_with_listener(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let console = &settings.console;
        if console.is_open() {
            if !console.allow_anonymous {
                bail!(
                    "the console has no credentials: set console.tokens or [[console.basic]] \
                     (or console.allow_anonymous = true to serve everyone)"
                );
            }
            tracing::warn!(
                "console.allow_anonymous is set and no credentials are configured: anyone who \
                 reaches the console can read it"
            );
        }
        let port = listener.local_addr()?.port();
        let pool = regstat_store::db::pool(&console.database(&settings.database))
            .context("invalid console.database_url (or database.url)")?;
        regstat_shared::metrics::handle();
        let auth = web::Data::new(Authenticator::new(&console.tokens, &console.basic));
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            prefix: settings.amqp.prefix.clone(),
            policy_file: settings.cleanup.policy_file.clone(),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(auth.clone())
                .wrap(
                    DefaultHeaders::new()
                        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY")),
                )
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
                .service(
                    web::scope("")
                        .wrap(from_fn(auth::require_credentials))
                        .route("/static/{name}", web::get().to(assets::serve))
                        .configure(api::routes)
                        .configure(pages::routes),
                )
        })
        .disable_signals();
        if console.http_workers > 0 {
            server = server.workers(console.http_workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self { port, server, pool })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (gracefully: in-flight requests finish).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Self::handle`].
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        self.pool.close().await;
        served.context("HTTP server failed")
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if regstat_store::db::ping(&state.pool, READY_DB_TIMEOUT).await {
        HttpResponse::Ok().json(json!({"status": "ready", "database": "reachable"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "database": "unreachable"}))
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(regstat_shared::metrics::render())
}
