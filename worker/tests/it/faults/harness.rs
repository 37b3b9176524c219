//! What the fault tests share besides the stream and the sender: settings, a receiver that can
//! be stopped and started again on the same port, TCP proxies in front of the real services,
//! the end-of-test checks, and the figures line.

use super::sender::{Stats, TOKEN};
use super::stream::Stream;
use crate::helpers::TestDb;
pub use crate::helpers::queue_state;
use crate::model::snapshot;
use regstat_shared::config::Settings;
use regstat_shared::testkit::{TcpProxy, TestBroker, eventually};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Deadline for anything that must eventually happen (never an assertion on speed).
pub const DEADLINE: Duration = Duration::from_secs(90);

/// How long each outage lasts.
pub const OUTAGE: Duration = Duration::from_secs(3);

/// Settings every service under test gets besides database, broker and prefix: the sender's
/// token, and a reconnect backoff capped at 500 ms instead of 5 s.
pub const COMMON: [(&str, &str); 2] = [
    ("REGSTAT__RECEIVER__TOKENS", TOKEN),
    ("REGSTAT__AMQP__RECONNECT_MAX_BACKOFF_MS", "500"),
];

/// `COMMON` plus `extra`, for `helpers::settings`.
pub fn with_common<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    COMMON
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// The environment of a worker process on `db` and `broker`.
pub fn worker_env(db: &TestDb, broker: &TestBroker) -> Vec<(String, String)> {
    let amqp_url = broker.url().to_owned();
    let shards = broker.shards();
    [
        ("REGSTAT__DATABASE__URL", db.url.as_str()),
        // Three workers of eight connections each would crowd the shared test server.
        ("REGSTAT__DATABASE__MAX_CONNECTIONS", "4"),
        ("REGSTAT__AMQP__URL", amqp_url.as_str()),
        ("REGSTAT__AMQP__PREFIX", broker.prefix.as_str()),
        ("REGSTAT__AMQP__SHARDS", shards.as_str()),
        ("REGSTAT__WORKER__LISTEN", "127.0.0.1:0"),
        ("REGSTAT__TELEMETRY__FILTER", "warn"),
    ]
    .into_iter()
    .chain(COMMON)
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A TCP proxy in front of the service `url` points at, and `url` pointed at the proxy.
pub async fn proxy_for(url: &str) -> (TcpProxy, String) {
    let mut parsed = reqwest::Url::parse(url).expect("a service URL");
    let host = parsed.host_str().expect("a host").to_owned();
    let port = parsed.port().expect("an explicit port");
    let upstream: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve the service")
        .next()
        .expect("an address");
    let proxy = TcpProxy::start(upstream).await;
    parsed
        .set_host(Some(&proxy.addr().ip().to_string()))
        .expect("set the proxy host");
    parsed
        .set_port(Some(proxy.addr().port()))
        .expect("set the proxy port");
    (proxy, parsed.to_string())
}

/// A receiver in this process on a port it keeps across restarts, as a real one keeps its
/// address (the registry's endpoint URL is fixed).
pub struct Receiver {
    settings: Settings,
    port: u16,
    running: Option<(actix_web::dev::ServerHandle, JoinHandle<anyhow::Result<()>>)>,
    /// Starts, the first included.
    pub starts: usize,
}

impl Receiver {
    pub async fn start(settings: &Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("bound address").port();
        let mut receiver = Self {
            settings: settings.clone(),
            port,
            running: None,
            starts: 0,
        };
        receiver.serve(listener).await;
        receiver
    }

    /// Where the registry posts.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    /// Graceful stop, as on SIGTERM: stop accepting, finish in-flight requests (their
    /// publishes included), then close the broker connection.
    pub async fn stop(&mut self) {
        let (handle, task) = self.running.take().expect("a running receiver");
        handle.stop(true).await;
        task.await
            .expect("receiver task panicked")
            .expect("receiver failed");
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "the receiver is running");
        let address = format!("127.0.0.1:{}", self.port);
        // The old socket may take a moment to go.
        let listener = eventually(DEADLINE, "the receiver's port free again", || {
            let bound = TcpListener::bind(&address).ok();
            async move { bound }
        })
        .await;
        self.serve(listener).await;
    }

    async fn serve(&mut self, listener: TcpListener) {
        let app = regstat_receiver::Application::build_with_listener(&self.settings, listener)
            .expect("build the receiver");
        let publisher = app.publisher();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        eventually(DEADLINE, "the receiver connected to the broker", || {
            let ready = publisher.is_ready();
            async move { ready.then_some(()) }
        })
        .await;
        self.running = Some((handle, task));
        self.starts += 1;
    }
}

/// The HTTP status `url` answers, if it answers.
pub async fn status(url: &str) -> Option<u16> {
    let response = reqwest::get(url).await.ok()?;
    Some(response.status().as_u16())
}

/// Waits until `url` answers `expected`; returns how long that took from `since`.
pub async fn until_status(url: &str, expected: u16, since: Instant) -> Duration {
    eventually(DEADLINE, &format!("{url} answering {expected}"), || async {
        (status(url).await == Some(expected)).then_some(())
    })
    .await;
    since.elapsed()
}

/// Ready messages in both work queues.
pub async fn work_backlog(broker: &TestBroker) -> u32 {
    let mut ready = 0;
    for queue in broker.topology.work_queues() {
        ready += queue_state(broker, &queue).await.0;
    }
    ready
}

/// Waits until each work queue has `consumers` consumers.
pub async fn until_consumers(broker: &TestBroker, consumers: u32) {
    eventually(
        DEADLINE,
        &format!("{consumers} consumers per work queue"),
        || async {
            for queue in broker.topology.work_queues() {
                if queue_state(broker, &queue).await.1 != consumers {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Waits until the ledger has `rows` rows.
pub async fn until_ledger(db: &TestDb, rows: usize) {
    eventually(DEADLINE, &format!("{rows} ledger rows"), || async {
        (db.ledger_len().await == rows as i64).then_some(())
    })
    .await;
}

/// Waits until the work, retry and quarantine queues are empty, and checks that nothing was
/// dead-lettered.
pub async fn until_queues_drained(broker: &TestBroker) {
    let mut queues: Vec<String> = broker.topology.work_queues();
    queues.extend(broker.topology.retry_queues());
    queues.push(broker.topology.quarantine_queue());
    eventually(
        DEADLINE,
        "work, retry and quarantine queues empty",
        || async {
            for queue in &queues {
                if queue_state(broker, queue).await.0 != 0 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let dead = queue_state(broker, &broker.topology.dead_queue()).await.0;
    assert_eq!(dead, 0, "nothing may be dead-lettered");
}

/// The ledger holds exactly the stream's ids and the derived state is the reference state.
pub async fn assert_converged(db: &TestDb, stream: &Stream, expected: &Value) {
    let ids: BTreeSet<String> =
        sqlx::query_scalar("SELECT regstat.event_id(e) FROM regstat.events e")
            .fetch_all(&db.pool)
            .await
            .expect("read the ledger ids")
            .into_iter()
            .collect();
    let missing: Vec<&String> = stream.ids.difference(&ids).take(5).collect();
    let unexpected: Vec<&String> = ids.difference(&stream.ids).take(5).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "the ledger holds {} ids for {} sent; missing e.g. {missing:?}, unexpected e.g. {unexpected:?}",
        ids.len(),
        stream.ids.len()
    );
    let actual = snapshot(db).await;
    assert!(
        actual == *expected,
        "the derived state differs from the reference run's:\n{}",
        difference(expected, &actual)
    );
}

/// Per table: rows only in the reference and rows only in the state under test (a few each).
fn difference(expected: &Value, actual: &Value) -> String {
    let rows = |state: &Value, table: &str| -> BTreeSet<String> {
        state[table]
            .as_array()
            .map(|rows| rows.iter().map(Value::to_string).collect())
            .unwrap_or_default()
    };
    let mut out = String::new();
    for table in expected.as_object().expect("a snapshot").keys() {
        let (want, got) = (rows(expected, table), rows(actual, table));
        if want == got {
            continue;
        }
        let _ = writeln!(
            out,
            "{table}: {} rows expected, {} found",
            want.len(),
            got.len()
        );
        for row in want.difference(&got).take(3) {
            let _ = writeln!(out, "  expected only: {row}");
        }
        for row in got.difference(&want).take(3) {
            let _ = writeln!(out, "  found only:    {row}");
        }
    }
    out
}

/// Asserts that the receiver answered nothing but 2xx, 503 or no connection.
pub fn assert_only_2xx_or_503(stats: &Stats) {
    let other = stats.other();
    assert!(
        other.is_empty(),
        "the receiver answered statuses a registry would retry forever: {other:?}"
    );
}

/// The figures of one fault run, printed as one line.
#[derive(Default)]
pub struct Figures {
    pub fault: &'static str,
    /// Distinct events in the stream.
    pub events: usize,
    /// Bodies to send: events plus re-sent duplicates.
    pub sent: usize,
    pub requests: u64,
    pub accepted: u64,
    pub answered_503: u64,
    pub unreachable: u64,
    pub ledger_rows: i64,
    /// Rows in the derived state tables (each compared with the reference run's).
    pub state_rows: usize,
    pub worker_kills: usize,
    pub worker_sigterms: usize,
    pub worker_restarts: usize,
    pub receiver_restarts: usize,
    pub callback_failures: usize,
    pub dead_letters: u32,
    pub replayed: u32,
    /// (what, time from the end of the fault).
    pub recovery: Vec<(&'static str, Duration)>,
    /// The median and longest 503 answer.
    pub unavailable_latency: Option<(Duration, Duration)>,
}

impl Figures {
    /// The sender's, the ledger's and the state's figures.
    pub fn new(
        fault: &'static str,
        stream: &Stream,
        stats: &Stats,
        ledger_rows: i64,
        state: &Value,
    ) -> Self {
        let state_rows = state
            .as_object()
            .expect("a snapshot")
            .iter()
            .filter(|(table, _)| *table != "events")
            .map(|(_, rows)| rows.as_array().map_or(0, Vec::len))
            .sum();
        Self {
            fault,
            events: stream.events.len(),
            sent: stream.bodies.len(),
            requests: stats.requests(),
            accepted: stats.accepted(),
            answered_503: stats.unavailable(),
            unreachable: stats.unreachable(),
            ledger_rows,
            state_rows,
            unavailable_latency: stats.unavailable_latency(),
            ..Self::default()
        }
    }

    pub fn print(&self) {
        let mut line = format!(
            "fault[{}]: events={} sent={} (duplicates {}) requests={} accepted={} 503s={} \
             unreachable={} sender_retries={} ledger_rows={} lost={} state_rows={} duplicates_suppressed={} \
             worker_kills={} worker_sigterms={} worker_restarts={} receiver_restarts={} \
             callback_failures={} dead_letters={} replayed={}",
            self.fault,
            self.events,
            self.sent,
            self.sent - self.events,
            self.requests,
            self.accepted,
            self.answered_503,
            self.unreachable,
            self.requests - self.sent as u64,
            self.ledger_rows,
            // Every accepted event is in the ledger (checked by assert_converged before).
            self.events as i64 - self.ledger_rows,
            self.state_rows,
            // Every accepted message was either stored or recognised as a duplicate.
            self.accepted as i64 - self.ledger_rows,
            self.worker_kills,
            self.worker_sigterms,
            self.worker_restarts,
            self.receiver_restarts,
            self.callback_failures,
            self.dead_letters,
            self.replayed,
        );
        if let Some((median, longest)) = self.unavailable_latency {
            let _ = write!(
                line,
                " 503_answer_p50_ms={:.1} 503_answer_max_ms={:.1}",
                median.as_secs_f64() * 1e3,
                longest.as_secs_f64() * 1e3
            );
        }
        for (what, took) in &self.recovery {
            let _ = write!(line, " recovery.{what}_ms={}", took.as_millis());
        }
        println!("{line}");
    }
}

/// Waits until `done` and returns the time since `since`.
pub async fn time_until<F, Fut>(since: Instant, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(DEADLINE, what, || {
        let check = done();
        async move { check.await.then_some(()) }
    })
    .await;
    since.elapsed()
}
