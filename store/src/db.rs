//! Connections, migrations, and which database errors are transient.

use regstat_shared::backoff::{self, Backoff, Policy};
use regstat_shared::config::DatabaseSettings;
use secrecy::ExposeSecret;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The workspace's `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The connection options of `settings` as every regstat process uses them: named
/// `application_name`, and without PostgreSQL's JIT compiler. regstat's statements are index
/// lookups and small aggregates; on them JIT's compile time (100 to 300 ms on a report over a
/// few thousand tags) is many times what it saves, and the planner turns it on by cost, not by
/// rows read, so it would strike at random as tables grow.
pub fn connect_options(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = settings.url.expose_secret().parse()?;
    Ok(options
        .application_name(application_name)
        .options([("jit", "off")]))
}

/// A pool that connects on demand, so a database that is down at start delays work instead of
/// stopping the process.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy_with(connect_options(settings, "regstat")?))
}

/// One connection named `application_name` (what a command line needs), within
/// `database.acquire_timeout_ms`, so that an unreachable database is reported with its cause
/// instead of hanging.
pub async fn connect(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<PgConnection, sqlx::Error> {
    let options = connect_options(settings, application_name)?;
    let timeout = settings.acquire_timeout();
    match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
        Ok(connected) => connected,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} ms", timeout.as_millis()),
        ))),
    }
}

/// Whether the database answers a trivial query within `timeout` (readiness checks).
pub async fn ping(pool: &PgPool, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool))
        .await
        .is_ok_and(|result| result.is_ok())
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// Delays between attempts to migrate while the database is unavailable.
const MIGRATE_RETRY: Policy =
    Policy::exponential(Duration::from_millis(200), Duration::from_secs(5));

/// Applies pending migrations, waiting for the database as long as it is unavailable (a
/// worker started before its database). Returns `Ok(false)` if `cancel` fired first.
pub async fn migrate_when_reachable(
    pool: &PgPool,
    cancel: &CancellationToken,
) -> Result<bool, MigrateError> {
    let mut delays = Backoff::new(MIGRATE_RETRY);
    loop {
        match migrate(pool).await {
            Ok(()) => return Ok(true),
            Err(MigrateError::Execute(error)) if is_transient(&error) => {
                let delay = delays.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database unavailable; cannot migrate yet");
                if !backoff::pause(delay, cancel).await {
                    return Ok(false);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether a database error is worth retrying (the database or the network to it is down,
/// overloaded, or restarting) rather than a problem with the data.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception, 53: insufficient resources, 57P0x: shutdown/restart,
            // 40001/40P01: serialization failure/deadlock.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}
