//! Shared set-up for the worker's integration tests: a database per test, a queue prefix per
//! test, and in-process receivers and workers on real services.

use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, START_POSTGRES, TestBroker};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use std::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a graceful stop may take before the test fails.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// A database of its own, migrated, dropped when the test ends (also on failure).
pub struct TestDb {
    /// Pool on the test database.
    pub pool: PgPool,
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let admin_url = testkit::database_admin_url();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{START_POSTGRES} ({admin_url}: {e})"));
        let name = testkit::unique_name("db").replace('-', "_");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = database_url(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        regstat_worker::db::migrate(&pool).await.expect("migrate");
        Self { pool, url, name }
    }

    /// Ledger rows per event id.
    pub async fn ledger_counts(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT id, count(*) FROM regstat.events GROUP BY id ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("read the ledger")
    }

    /// Number of ledger rows.
    pub async fn ledger_len(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM regstat.events")
            .fetch_one(&self.pool)
            .await
            .expect("count the ledger")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: drop the database from a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&testkit::database_admin_url()).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `admin_url` with its database name replaced.
fn database_url(admin_url: &str, database: &str) -> String {
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("REGSTAT_TEST_DATABASE_URL must end in /<database>");
    let query = admin_url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{database}{query}")
}

/// Settings for code under test, like [`settings`], plus a config file with `toml` (for what
/// only a file can say, such as `[[registries]]`).
pub fn settings_with_file(
    db: &TestDb,
    broker: &TestBroker,
    toml: &str,
    extra: &[(&str, &str)],
) -> Settings {
    let file = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("config")));
    std::fs::write(&file, toml).expect("write the test config file");
    let loaded = Settings::load_with_env(Some(&file), env(db, broker, extra));
    let _ = std::fs::remove_file(&file);
    loaded.expect("test settings are valid")
}

/// Settings for code under test: the defaults, pointed at the test database and broker.
pub fn settings(db: &TestDb, broker: &TestBroker, extra: &[(&str, &str)]) -> Settings {
    Settings::load_with_env(None, env(db, broker, extra)).expect("test settings are valid")
}

fn env(db: &TestDb, broker: &TestBroker, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("REGSTAT__DATABASE__URL".into(), db.url.clone()),
        ("REGSTAT__AMQP__URL".into(), testkit::amqp_url()),
        ("REGSTAT__AMQP__PREFIX".into(), broker.prefix.clone()),
        ("REGSTAT__RECEIVER__LISTEN".into(), "127.0.0.1:0".into()),
        ("REGSTAT__RECEIVER__HTTP_WORKERS".into(), "1".into()),
        ("REGSTAT__TELEMETRY__FILTER".into(), "warn".into()),
        ("REGSTAT__WORKER__LISTEN".into(), "127.0.0.1:0".into()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// A handler context on the test database: default settings, no registries configured.
pub fn context(db: &TestDb) -> regstat_worker::handler::Context {
    let settings = Settings::load_with_env(None, Vec::new()).expect("defaults are valid");
    regstat_worker::handler::Context::new(db.pool.clone(), &settings).expect("context")
}

/// A worker running in this process, its health endpoint on a free port.
pub struct TestWorker {
    /// `http://127.0.0.1:<port>` of its health and metrics endpoint.
    pub address: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestWorker {
    pub fn spawn(settings: &Settings) -> Self {
        let shutdown = CancellationToken::new();
        let settings = settings.clone();
        let token = shutdown.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = format!("http://{}", listener.local_addr().expect("bound address"));
        let task = tokio::spawn(async move {
            regstat_worker::run_with_listener(&settings, listener, token).await
        });
        Self {
            address,
            shutdown,
            task,
        }
    }

    /// Graceful stop: the batch in hand is finished and acked. A worker that does not stop
    /// within [`STOP_DEADLINE`] fails the test (rather than hanging the suite).
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(STOP_DEADLINE, self.task)
            .await
            .expect("the worker did not stop within the deadline after shutdown was requested")
            .expect("worker task panicked")
            .expect("worker failed");
    }
}

/// A receiver running in this process on a free port.
pub struct TestReceiver {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestReceiver {
    pub async fn spawn(settings: &Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let app = regstat_receiver::Application::build_with_listener(settings, listener)
            .expect("build the receiver");
        let address = format!("http://127.0.0.1:{}", app.port());
        let publisher = app.publisher();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        testkit::eventually(std::time::Duration::from_secs(10), "receiver ready", || {
            let ready = publisher.is_ready();
            async move { ready.then_some(()) }
        })
        .await;
        Self {
            address,
            handle,
            task,
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        tokio::time::timeout(STOP_DEADLINE, self.task)
            .await
            .expect("the receiver did not stop within the deadline")
            .expect("receiver task panicked")
            .expect("receiver failed");
    }
}

/// Every fixture request body in `file` (a name in the fixtures directory).
pub fn fixture_bodies(file: &str) -> Vec<String> {
    let text = regstat_shared::testkit::fixture_text(file);
    text.lines()
        .map(|line| {
            let request: serde_json::Value = serde_json::from_str(line).expect("fixture line");
            request["body_raw"]
                .as_str()
                .expect("fixture body_raw")
                .to_owned()
        })
        .collect()
}
