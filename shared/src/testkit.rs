//! Test helpers: real services, isolated per test, cleaned up on drop.
//!
//! Tests never skip when a service is missing: they fail and say how to start it.

pub mod ports;
pub mod private_node;

use crate::topology::Topology;
use lapin::options::{BasicGetOptions, BasicQosOptions, QueuePurgeOptions};
use lapin::{Channel, Connection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Admin URL of the test PostgreSQL (`REGSTAT_TEST_DATABASE_URL`, default local trust auth).
pub fn database_admin_url() -> String {
    std::env::var("REGSTAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// URL of the test RabbitMQ (`REGSTAT_TEST_AMQP_URL`, default guest on localhost).
pub fn amqp_url() -> String {
    std::env::var("REGSTAT_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The captured notification fixtures: `$REGSTAT_FIXTURES`, else `../shared/fixtures/
/// distribution-2.8.2` beside the project.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("REGSTAT_FIXTURES").map_or_else(
        || {
            std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/distribution-2.8.2"
            ))
        },
        std::path::PathBuf::from,
    )
}

/// The text of fixture `file` (one captured request per line); fails the test, saying where it
/// looked, if it cannot be read.
pub fn fixture_text(file: &str) -> String {
    let path = fixtures_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} cannot be read ({e}); set REGSTAT_FIXTURES to the fixtures directory",
            path.display()
        )
    })
}

/// The path of the workspace binary `name`, built beside the running test binary
/// (`target/<profile>/<name>`): for a test that runs another package's binary (Cargo sets
/// `CARGO_BIN_EXE_*` for a package's own binaries only). `cargo test --workspace` builds every
/// package's binaries before running any test (each binary package has an integration test).
/// Fails, saying how to build it, if it is not there.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = test
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test binary is in target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is not built: run the tests with `cargo test --workspace`, or `cargo build --bins` \
         first",
        path.display()
    );
    path
}

/// Runs `cleanup` to completion from a `Drop` (which cannot await, and also runs after a
/// panic, maybe inside a runtime): on a thread of its own with its own runtime.
pub fn cleanup_on_drop(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(cleanup);
        }
    });
    let _ = thread.join();
}

/// What to tell someone whose RabbitMQ is not running.
pub const START_RABBITMQ: &str = "RabbitMQ is not reachable. Start it (`rabbitmq-server -detached`, \
or `deploy/dev.sh` which starts everything) or point REGSTAT_TEST_AMQP_URL at one.";

/// What to tell someone whose PostgreSQL is not running.
pub const START_POSTGRES: &str = "PostgreSQL is not reachable. Start it (`pg_ctlcluster \
--skip-systemctl-redirect $(ls /etc/postgresql) main start`, or `deploy/dev.sh`) or point \
REGSTAT_TEST_DATABASE_URL at one.";

/// A fresh prefix for names that must not collide with other tests: `test-<12 hex>`.
pub fn unique_name(kind: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("test-{kind}-{}", &id[..12])
}

/// Opens a connection to the test broker (a node of it, for a cluster's comma-separated
/// list) or fails the test with instructions.
pub async fn connect_broker(url: &str) -> Connection {
    match crate::amqp::connect(&url.to_owned().into(), "regstat-test").await {
        Ok(connection) => connection,
        Err(error) => panic!("{START_RABBITMQ} ({url}: {error})"),
    }
}

/// regstat's topology under a prefix of its own, deleted when dropped.
pub struct TestBroker {
    /// The isolated topology.
    pub topology: Topology,
    /// The prefix (for the code under test's settings).
    pub prefix: String,
    /// A channel for the test's own publishing and inspection.
    pub channel: Channel,
    /// The broker it is declared on.
    url: String,
    _connection: Connection,
}

impl TestBroker {
    /// Declares a fresh topology with the default settings.
    pub async fn new() -> Self {
        Self::at(&amqp_url()).await
    }

    /// Declares a fresh topology whose retry queues have these delays (settings under test
    /// must say the same: `REGSTAT__AMQP__RETRY_DELAYS_SECS`).
    pub async fn with_retry_delays(retry_delays_secs: &[u64]) -> Self {
        Self::declare(&amqp_url(), retry_delays_secs, 1, 0).await
    }

    /// Declares a fresh topology with `shards` work queues per path (and those of
    /// `previous_shards`, being drained; 0: none) on the broker at `url` (one node, or a
    /// cluster's comma-separated list); settings made from it must say the same
    /// (`REGSTAT__AMQP__SHARDS`: [`Self::shards`]; `REGSTAT__AMQP__PREVIOUS_SHARDS`).
    pub async fn sharded(url: &str, shards: u16, previous_shards: u16) -> Self {
        let defaults = crate::config::Settings::load_with_env(None, Vec::new())
            .expect("the built-in defaults are valid");
        Self::declare(
            url,
            &defaults.amqp.retry_delays_secs,
            shards,
            previous_shards,
        )
        .await
    }

    /// Opens a new connection and channel (to a node that answers, for a cluster), for a test
    /// whose node went away.
    pub async fn reconnect(&mut self) {
        let connection = connect_broker(&self.url).await;
        self.channel = connection
            .create_channel()
            .await
            .expect("open a channel on the test broker");
        self.channel
            .basic_qos(1000, BasicQosOptions::default())
            .await
            .expect("set qos");
        self._connection = connection;
    }

    /// The broker's URL (one node, or a cluster's list).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The topology's shard count, for settings.
    pub fn shards(&self) -> String {
        self.topology.shards().to_string()
    }

    /// Declares a fresh topology with the default settings on the broker at `url` (a
    /// [`private_node::PrivateNode`]).
    pub async fn at(url: &str) -> Self {
        let defaults = crate::config::Settings::load_with_env(None, Vec::new())
            .expect("the built-in defaults are valid");
        Self::declare(url, &defaults.amqp.retry_delays_secs, 1, 0).await
    }

    async fn declare(url: &str, retry_delays_secs: &[u64], shards: u16, previous: u16) -> Self {
        let prefix = unique_name("q");
        let version = crate::amqp::broker_version(&url.to_owned().into())
            .await
            .unwrap_or_else(|e| panic!("{START_RABBITMQ} ({url}: {e})"));
        let topology = Topology::new(prefix.clone(), 20, retry_delays_secs)
            .with_shards(shards)
            .with_previous_shards(previous)
            .on_broker(version);
        let connection = connect_broker(url).await;
        let channel = connection
            .create_channel()
            .await
            .expect("open a channel on the test broker");
        topology
            .declare(&channel)
            .await
            .expect("declare the test topology");
        channel
            .basic_qos(1000, BasicQosOptions::default())
            .await
            .expect("set qos");
        Self {
            topology,
            prefix,
            channel,
            url: url.to_owned(),
            _connection: connection,
        }
    }

    /// Takes every message currently in `queue` (without waiting for more).
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            messages.push(message.delivery);
        }
        messages
    }

    /// Number of messages ready in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        crate::amqp::queue_counts(&self.channel, queue)
            .await
            .expect("passive declare")
            .0
    }

    /// Empties `queue`.
    pub async fn purge(&self, queue: &str) {
        self.channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .expect("purge");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let url = self.url.clone();
        cleanup_on_drop(async move {
            if let Ok(connection) = crate::amqp::connect(&url.into(), "regstat-test").await
                && let Ok(channel) = connection.create_channel().await
            {
                let _ = topology.delete(&channel).await;
                let _ = connection.close(200, "test done".into()).await;
            }
        });
    }
}

/// A TCP proxy in front of a real service that a test can cut and restore, to show what
/// happens when the network to the broker or the database fails.
pub struct TcpProxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(listener, upstream, open.clone(), cuts.clone()));
        Self {
            addr,
            open,
            cuts,
            task,
        }
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        if !open.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let mut cut = cuts.subscribe();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `deadline` passes (then panics with
/// `what`). For waiting on asynchronous effects, never for asserting speed.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
