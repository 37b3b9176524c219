//! `regstat doctor`, the real binary against real services: everything passing with a worker
//! running, then one failing check each (configuration, PostgreSQL, migrations, RabbitMQ,
//! missing or otherwise-declared queues, no consumer, registry credentials and reachability,
//! a health endpoint down). Every run must print no ERROR line: expected conditions are check
//! lines, not logs.

use crate::helpers::{TestDb, TestWorker, queue_state, settings};
use crate::support::{RegistryOptions, Scratch, free_port, require_tools};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use regstat_shared::testkit::{self, TestBroker, eventually};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// One `regstat doctor` invocation: settings through `REGSTAT__*` variables and a config file
/// of its own (always given with `--config`, so no file on the search path interferes),
/// removed on drop.
struct Doctor {
    config: PathBuf,
    env: Vec<(String, String)>,
}

impl Doctor {
    /// Pointed at `database_url` and the default broker under `prefix`, with an empty config
    /// file.
    fn new(database_url: &str, prefix: &str) -> Self {
        let config = std::env::temp_dir().join(format!("{}.toml", testkit::unique_name("doctor")));
        std::fs::write(&config, "").unwrap();
        Self {
            config,
            env: vec![
                ("REGSTAT__DATABASE__URL".into(), database_url.into()),
                ("REGSTAT__AMQP__URL".into(), testkit::amqp_url()),
                ("REGSTAT__AMQP__PREFIX".into(), prefix.into()),
            ],
        }
    }

    /// Against a test database and broker.
    fn on(db: &TestDb, broker: &TestBroker) -> Self {
        Self::new(&db.url, &broker.prefix)
    }

    fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes `text` as the config file.
    fn toml(self, text: &str) -> Self {
        std::fs::write(&self.config, text).unwrap();
        self
    }

    /// Runs `regstat --config <file> <args>` with these settings (and RUST_LOG unset).
    async fn regstat(&self, args: &[&str]) -> Output {
        let mut command = Command::new(testkit::workspace_binary("regstat"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("REGSTAT_CONFIG")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap()
    }

    async fn run(&self, format: &str) -> Outcome {
        let output = self.regstat(&["doctor", "--format", format]).await;
        Outcome::new(output, format == "json")
    }

    async fn json(&self) -> Outcome {
        self.run("json").await
    }
}

impl Drop for Doctor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// What the binary did.
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
    report: Value,
}

impl Outcome {
    fn new(output: Output, json: bool) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report = if json {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("doctor's JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
        } else {
            Value::Null
        };
        let outcome = Self {
            success: output.status.success(),
            stdout,
            stderr,
            report,
        };
        assert!(
            !outcome.stderr.lines().any(|line| line.contains("ERROR")),
            "doctor logged an ERROR:\n{}",
            outcome.stderr
        );
        if json {
            assert_eq!(
                outcome.success,
                outcome.report["ok"] == true,
                "the exit status follows `ok`"
            );
        }
        outcome
    }

    fn checks(&self) -> &Vec<Value> {
        self.report["checks"].as_array().unwrap()
    }

    fn names(&self) -> Vec<&str> {
        self.checks()
            .iter()
            .map(|check| check["name"].as_str().unwrap())
            .collect()
    }

    /// `(status, message)` of the check `name`; fails the test if it did not run.
    fn check(&self, name: &str) -> (&str, &str) {
        let check = self
            .checks()
            .iter()
            .find(|check| check["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in:\n{}", self.describe()));
        (
            check["status"].as_str().unwrap(),
            check["message"].as_str().unwrap(),
        )
    }

    /// Asserts that the check `name` failed with a message containing every one of `words`,
    /// and that the run failed.
    fn assert_fails(&self, name: &str, words: &[&str]) {
        let (status, message) = self.check(name);
        assert_eq!(status, "fail", "{name}: {}", self.describe());
        for word in words {
            assert!(
                message.contains(word),
                "{name}: {word:?} not in {message:?}"
            );
        }
        assert!(!self.success, "a failed check fails the run");
    }

    fn assert_absent(&self, name: &str) {
        assert!(
            !self.names().contains(&name),
            "{name} should not run: {}",
            self.describe()
        );
    }

    fn describe(&self) -> String {
        format!("{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Whether `queue` (or, with `exchange`, the exchange) exists, asked on a connection of its own.
async fn exists(name: &str, exchange: bool) -> bool {
    let connection = testkit::connect_broker(&testkit::amqp_url()).await;
    let channel = connection.create_channel().await.unwrap();
    let found = if exchange {
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                passive,
                FieldTable::default(),
            )
            .await
            .is_ok()
    } else {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), passive, FieldTable::default())
            .await
            .is_ok()
    };
    let _ = connection.close(200, "test done".into()).await;
    found
}

/// A port nothing listens on, as a URL of `scheme`.
fn nowhere(scheme: &str, path: &str) -> String {
    format!("{scheme}127.0.0.1:{}{path}", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_passes_with_a_worker_running() {
    require_tools();
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let mut scratch = Scratch::new();
    let registry = scratch.start_registry(&RegistryOptions::default()).await;
    let worker = TestWorker::spawn(&settings(&db, &broker, &[]));
    let client = reqwest::Client::new();
    eventually(DEADLINE, "the worker ready", || {
        let probe = client.get(format!("{}/readyz", worker.address)).send();
        async move { probe.await.ok()?.status().is_success().then_some(()) }
    })
    .await;
    for queue in broker.topology.work_queues() {
        eventually(DEADLINE, "a consumer on each work queue", || async {
            (queue_state(&broker, &queue).await.1 > 0).then_some(())
        })
        .await;
    }
    eventually(DEADLINE, "the worker's partitions", || async {
        let mut conn = db.pool.acquire().await.unwrap();
        let partitions = regstat_store::retention::partitions(&mut conn)
            .await
            .unwrap();
        (partitions.len() >= 2).then_some(())
    })
    .await;
    let doctor = Doctor::on(&db, &broker)
        .env("REGSTAT__DOCTOR__ENDPOINTS", worker.address.clone())
        .toml(&format!(
            "[[registries]]\nname = \"local\"\nurl = \"http://{registry}\"\n"
        ));

    let passed = doctor.json().await;
    assert!(passed.success, "{}", passed.describe());
    assert!(
        passed.checks().iter().all(|check| check["status"] == "ok"),
        "{}",
        passed.describe()
    );
    let topology = &broker.topology;
    let mut expected = vec![
        "config".to_owned(),
        "postgres".into(),
        "migrations".into(),
        "partitions".into(),
        "rabbitmq".into(),
    ];
    expected.extend(
        topology
            .exchanges()
            .into_iter()
            .map(|(name, _)| format!("exchange {name}")),
    );
    expected.extend(
        topology
            .queues()
            .into_iter()
            .map(|spec| format!("queue {}", spec.name)),
    );
    expected.extend(
        topology
            .work_queues()
            .iter()
            .map(|queue| format!("consumers {queue}")),
    );
    expected.extend([
        "dead letters".into(),
        "quarantine".into(),
        "registry local".into(),
        format!("endpoint {}", worker.address),
    ]);
    assert_eq!(passed.names(), expected);
    let table = doctor.run("table").await;
    assert!(table.success);
    println!("{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .skip(1)
            .all(|line| line.starts_with("OK ")),
        "{}",
        table.stdout
    );
    let (_, config) = passed.check("config");
    assert!(
        config.contains(&doctor.config.display().to_string()) && config.contains("--config"),
        "{config}"
    );

    // A dead letter is worth a look, not a failure.
    broker
        .channel
        .basic_publish(
            topology.dead_letter_exchange().into(),
            "pull.blob".into(),
            Default::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    eventually(DEADLINE, "the dead letter", || async {
        (queue_state(&broker, &topology.dead_queue()).await.0 == 1).then_some(())
    })
    .await;
    let warned = doctor.json().await;
    assert!(warned.success, "{}", warned.describe());
    let (status, message) = warned.check("dead letters");
    assert_eq!(status, "warn");
    assert!(message.contains("regstat dlq list"), "{message}");

    let table = doctor.run("table").await;
    assert!(table.success);
    println!("{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.starts_with("WARN") && line.contains("dead letters")),
        "{}",
        table.stdout
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_or_invalid_configuration_is_the_one_failing_check() {
    let doctor = Doctor::new("postgres://postgres@127.0.0.1:5432/x", "x");
    std::fs::remove_file(&doctor.config).unwrap();
    let missing = doctor.config.clone();
    let unreadable = doctor.json().await;
    unreadable.assert_fails("config", &[&missing.display().to_string(), "--config"]);
    assert_eq!(unreadable.names(), ["config"], "nothing else runs");

    let invalid = Doctor::new("postgres://postgres@127.0.0.1:5432/x", "x")
        .toml("[worker]\nmax_attempts = 0\n")
        .json()
        .await;
    invalid.assert_fails("config", &["worker.max_attempts"]);
    assert_eq!(invalid.names(), ["config"]);

    let table = Doctor::new("postgres://postgres@127.0.0.1:5432/x", "x")
        .toml("this is not toml")
        .run("table")
        .await;
    assert!(!table.success);
    println!("{}", table.stdout);
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with("FAIL"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_and_its_checks_are_skipped() {
    let broker = TestBroker::new().await;
    let url = nowhere("postgres://postgres@", "/regstat");
    let outcome = Doctor::new(&url, &broker.prefix).json().await;
    outcome.assert_fails("postgres", &[&url, "PostgreSQL"]);
    outcome.assert_absent("migrations");
    outcome.assert_absent("partitions");
    assert_eq!(
        outcome.check("rabbitmq").0,
        "ok",
        "the broker is checked all the same"
    );
}

/// A database without regstat's schema (an empty one of its own, dropped at the end).
struct EmptyDb {
    url: String,
    name: String,
}

impl EmptyDb {
    async fn new() -> Self {
        let admin = testkit::database_admin_url();
        let name = testkit::unique_name("empty").replace('-', "_");
        regstat_store::databases::create(&admin, &name, false)
            .await
            .unwrap();
        let url = regstat_store::databases::url_of(&admin, &name).unwrap();
        Self { url, name }
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        testkit::cleanup_on_drop(async move {
            let _ = regstat_store::databases::drop_database(&testkit::database_admin_url(), &name)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_migrations_fail_and_partitions_are_skipped() {
    let (empty, broker) = (EmptyDb::new().await, TestBroker::new().await);
    let outcome = Doctor::new(&empty.url, &broker.prefix).json().await;
    assert_eq!(outcome.check("postgres").0, "ok");
    let known = regstat_store::db::MIGRATOR.iter().count().to_string();
    outcome.assert_fails("migrations", &["run `regstat migrate`", &known]);
    outcome.assert_absent("partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_named_and_fails() {
    let db = TestDb::new().await;
    let url = nowhere("amqp://guest:guest@", "/%2f");
    let outcome = Doctor::new(&db.url, "regstat")
        .env("REGSTAT__AMQP__URL", url.clone())
        .json()
        .await;
    let shown = url.replace("guest:guest@", "guest:***@");
    outcome.assert_fails("rabbitmq", &["RabbitMQ", &shown]);
    assert!(
        !outcome.stdout.contains("guest:guest"),
        "the password is masked"
    );
    for name in outcome.names() {
        assert!(
            !name.starts_with("queue ") && !name.starts_with("consumers ") && name != "topology",
            "no queue check without a broker: {name}"
        );
    }
    assert_eq!(outcome.check("postgres").0, "ok");
    let table = Doctor::new(&db.url, "regstat")
        .env("REGSTAT__AMQP__URL", url.clone())
        .run("table")
        .await;
    println!("{}", table.stdout);
    assert!(!table.success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_queues_name_the_vhost_and_the_configuration() {
    let db = TestDb::new().await;
    let prefix = testkit::unique_name("never");
    let doctor = Doctor::new(&db.url, &prefix);
    let outcome = doctor.json().await;
    outcome.assert_fails(
        "topology",
        &[
            "vhost '/'",
            &format!("prefix '{prefix}'"),
            &doctor.config.display().to_string(),
        ],
    );
    for name in outcome.names() {
        assert!(
            !name.starts_with("consumers "),
            "no consumer check of a missing queue: {name}"
        );
    }
    assert!(
        !exists(&format!("{prefix}.ingest"), false).await
            && !exists(&format!("{prefix}.events"), true).await,
        "the doctor created nothing"
    );

    // `regstat status` says the same in its own words after its table, and logs no ERROR.
    let status = doctor.regstat(&["status"]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr),
    );
    assert!(status.status.success(), "{stderr}");
    let hint = stdout.lines().last().unwrap();
    assert!(
        hint.starts_with("regstat's queues are missing in vhost '/' at 127.0.0.1:")
            && hint.contains(&format!("prefix '{prefix}'"))
            && hint.contains(&doctor.config.display().to_string()),
        "{stdout}"
    );
    assert!(!stderr.contains("ERROR"), "{stderr}");
    let json = doctor.regstat(&["status", "--format", "json"]).await;
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(json["queues"].is_array(), "JSON is unchanged");

    // One queue missing of a topology otherwise there: that queue is named.
    let broker = TestBroker::new().await;
    let quarantine = broker.topology.quarantine_queue();
    broker
        .channel
        .queue_delete(quarantine.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let outcome = Doctor::on(&db, &broker).json().await;
    outcome.assert_fails(&format!("queue {quarantine}"), &["missing", "vhost '/'"]);
    outcome.assert_fails("topology", &["1 exchanges or queues are missing"]);
    assert_eq!(
        outcome
            .check(&format!("queue {}", broker.topology.ingest_queue()))
            .0,
        "ok"
    );
    outcome.assert_absent("quarantine");
    assert!(
        !exists(&quarantine, false).await,
        "the doctor created nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_with_other_arguments_fails() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let quarantine = broker.topology.quarantine_queue();
    broker
        .channel
        .queue_delete(quarantine.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    // A classic queue where the topology has a quorum queue.
    broker
        .channel
        .queue_declare(
            quarantine.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let outcome = Doctor::on(&db, &broker).json().await;
    outcome.assert_fails(
        &format!("queue {quarantine}"),
        &["PRECONDITION_FAILED", "x-queue-type"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_without_a_consumer_fails() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let outcome = Doctor::on(&db, &broker).json().await;
    for queue in broker.topology.work_queues() {
        outcome.assert_fails(
            &format!("consumers {queue}"),
            &[&format!("no worker consumes {queue}"), "regstat-worker"],
        );
    }
    assert_eq!(
        outcome
            .check(&format!("queue {}", broker.topology.ingest_queue()))
            .0,
        "ok"
    );
    assert_eq!(outcome.check("dead letters").0, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_with_wrong_credentials_or_unreachable_fail() {
    require_tools();
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let mut scratch = Scratch::new();
    let hash = bcrypt::hash("s3cret-pw", 4).unwrap();
    let htpasswd = scratch.write("htpasswd", format!("alice:{hash}\n"));
    let host = scratch
        .start_registry(&RegistryOptions {
            htpasswd: Some(htpasswd),
            tls: None,
            ..RegistryOptions::default()
        })
        .await;
    let unreachable = nowhere("http://", "");
    let toml = format!(
        "[[registries]]
name = \"right\"
url = \"http://{host}\"
username = \"alice\"
password = \"s3cret-pw\"

[[registries]]
name = \"wrong\"
url = \"http://{host}\"
username = \"alice\"
password = \"not-the-password\"

[[registries]]
name = \"gone\"
url = \"{unreachable}\"
"
    );
    // Debug logging on: proves the binary's log lines are captured (the registry client logs
    // each request at debug), so their lack of ERROR lines means something.
    let outcome = Doctor::on(&db, &broker)
        .env("REGSTAT__TELEMETRY__FILTER", "debug")
        .toml(&toml)
        .json()
        .await;
    assert!(
        outcome.stderr.contains("registry request"),
        "logs are captured: {}",
        outcome.stderr
    );
    assert_eq!(
        outcome.check("registry right").0,
        "ok",
        "{}",
        outcome.describe()
    );
    outcome.assert_fails("registry wrong", &["credentials refused", "401", "`wrong`"]);
    outcome.assert_fails("registry gone", &["unreachable", &unreachable]);
    assert!(!outcome.stdout.contains("s3cret-pw") && !outcome.stdout.contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_endpoint_that_is_down_fails() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let down = nowhere("http://", "");
    let outcome = Doctor::on(&db, &broker)
        .env("REGSTAT__DOCTOR__ENDPOINTS", down.clone())
        .json()
        .await;
    outcome.assert_fails(&format!("endpoint {down}"), &["/readyz", "no answer"]);
}
