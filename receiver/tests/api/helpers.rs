//! A receiver per test, on a free port, with its own queue prefix.

use regstat_receiver::Application;
use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker};
use std::net::TcpListener;
use std::time::Duration;
use tokio::task::JoinHandle;

pub const V1: &str = "application/vnd.docker.distribution.events.v1+json";
pub const TOKEN: &str = "test-token";

/// A running receiver and the broker topology it publishes to.
pub struct TestApp {
    pub address: String,
    pub broker: std::sync::Arc<TestBroker>,
    pub client: reqwest::Client,
    pub publisher: regstat_receiver::publisher::Publisher,
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Settings for a test receiver: defaults, the test broker, a bearer token, plus `extra`.
pub fn settings(prefix: &str, amqp_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("REGSTAT__AMQP__URL".into(), amqp_url.into()),
        ("REGSTAT__AMQP__PREFIX".into(), prefix.into()),
        (
            "REGSTAT__AMQP__RECONNECT_MAX_BACKOFF_MS".into(),
            "200".into(),
        ),
        ("REGSTAT__AMQP__CONFIRM_TIMEOUT_MS".into(), "2000".into()),
        ("REGSTAT__RECEIVER__TOKENS".into(), TOKEN.into()),
        ("REGSTAT__RECEIVER__HTTP_WORKERS".into(), "1".into()),
        (
            "REGSTAT__RECEIVER__SHUTDOWN_TIMEOUT_SECS".into(),
            "5".into(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Settings::load_with_env(None, env).expect("test settings are valid")
}

impl TestApp {
    /// A receiver connected to the test broker, ready to publish.
    pub async fn spawn(extra: &[(&str, &str)]) -> Self {
        let broker = TestBroker::new().await;
        let settings = settings(&broker.prefix, &testkit::amqp_url(), extra);
        let app = Self::start(broker, &settings);
        app.wait_ready().await;
        app
    }

    /// A receiver with the given settings, not waiting for the broker.
    pub fn start(broker: TestBroker, settings: &Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build_with_listener(settings, listener).unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let publisher = app.publisher();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            address,
            broker: std::sync::Arc::new(broker),
            client: reqwest::Client::new(),
            publisher,
            handle,
            task,
        }
    }

    pub async fn wait_ready(&self) {
        let publisher = self.publisher.clone();
        testkit::eventually(Duration::from_secs(15), "receiver connected", move || {
            let ready = publisher.is_ready();
            async move { ready.then_some(()) }
        })
        .await;
    }

    /// POSTs `body` to `path` as the registry does.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", V1)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// The test broker, to inspect queues after [`Self::stop`].
    pub fn broker_handle(&self) -> std::sync::Arc<TestBroker> {
        self.broker.clone()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.unwrap().unwrap();
    }
}

/// The fixture requests of `file`: their exact bodies.
pub fn fixture_bodies(file: &str) -> Vec<String> {
    let text = regstat_shared::testkit::fixture_text(file);
    text.lines()
        .map(|line| {
            let request: serde_json::Value = serde_json::from_str(line).unwrap();
            request["body_raw"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Every fixture file name.
pub const FIXTURES: [&str; 10] = [
    "01-push-oci-by-tag.jsonl",
    "03-pull-by-tag.jsonl",
    "04-pull-by-digest.jsonl",
    "06-push-multiarch-oci-index.jsonl",
    "07-pull-one-arch.jsonl",
    "12-delete-manifest-by-digest.jsonl",
    "a2-auth-push.jsonl",
    "r1-endpoint-500-first-5.jsonl",
    "r3-endpoint-slower-than-timeout.jsonl",
    "r6-no-references.jsonl",
];
