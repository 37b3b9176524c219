//! Shared set-up for the worker's integration tests: a database per test, a queue prefix per
//! test, and in-process receivers and workers on real services.

use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker};
pub use regstat_store::testkit::TestDb;
use std::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a graceful stop may take before the test fails.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

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
        ("REGSTAT__AMQP__URL".into(), broker.url().to_owned()),
        ("REGSTAT__AMQP__PREFIX".into(), broker.prefix.clone()),
        ("REGSTAT__AMQP__SHARDS".into(), broker.shards()),
        ("REGSTAT__RECEIVER__LISTEN".into(), "127.0.0.1:0".into()),
        ("REGSTAT__RECEIVER__HTTP_WORKERS".into(), "1".into()),
        // Most tests post without credentials; those that need them set receiver.tokens.
        ("REGSTAT__RECEIVER__ALLOW_ANONYMOUS".into(), "true".into()),
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

/// The messages of `events` (notification events as JSON), as the worker receives them.
pub fn messages(events: &[serde_json::Value]) -> Vec<regstat_worker::handler::Incoming> {
    events
        .iter()
        .map(|e| regstat_worker::handler::Incoming {
            body: e.to_string().into_bytes(),
            correlation_id: None,
            received_at: None,
        })
        .collect()
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

/// A console running in this process on a free port.
pub struct TestConsole {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestConsole {
    pub fn spawn(settings: &Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let app = regstat_console::Application::build_with_listener(settings, listener)
            .expect("build the console");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
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
            .expect("the console did not stop within the deadline")
            .expect("console task panicked")
            .expect("console failed");
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

/// Ready messages and consumers of `queue`.
pub async fn queue_state(broker: &TestBroker, queue: &str) -> (u32, u32) {
    let declared = broker
        .channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..lapin::options::QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("passive declare");
    (declared.message_count(), declared.consumer_count())
}

/// Runs the real `regstat` binary on `db` (and `broker`'s topology, if given) and returns its
/// output.
pub async fn regstat(
    db: &TestDb,
    broker: Option<&TestBroker>,
    args: &[&str],
) -> std::process::Output {
    let mut command = std::process::Command::new(testkit::workspace_binary("regstat"));
    command
        .args(args)
        .env_remove("REGSTAT_CONFIG")
        .env("REGSTAT__DATABASE__URL", &db.url)
        .env("REGSTAT__TELEMETRY__FILTER", "warn")
        .stdin(std::process::Stdio::null());
    if let Some(broker) = broker {
        command
            .env("REGSTAT__AMQP__URL", testkit::amqp_url())
            .env("REGSTAT__AMQP__PREFIX", &broker.prefix);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the regstat process")
        .expect("run regstat")
}
