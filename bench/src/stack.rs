//! What a scenario runs against: regstat's real binaries (`regstat-receiver`,
//! `regstat-worker`, started as processes so that their memory can be read) on the local
//! RabbitMQ and PostgreSQL, each stack under its own queue prefix and database, removed at the
//! end.

use crate::sender;
use anyhow::{Context as _, bail};
use lapin::options::{ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use regstat_shared::topology::Topology;
use regstat_store::databases;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The bearer token the benchmark's receiver accepts.
pub const TOKEN: &str = "bench-token";

/// The local services and where regstat's binaries are.
#[derive(Debug, Clone)]
pub struct Services {
    /// RabbitMQ URL (default vhost).
    pub amqp_url: String,
    /// A PostgreSQL URL allowed to create databases.
    pub database_admin_url: String,
    /// Directory holding `regstat-receiver` and `regstat-worker`.
    pub bin_dir: PathBuf,
    /// Log every statement with its duration in the PostgreSQL server log.
    pub log_statements: bool,
    /// Leave each stack's database behind (its name is printed) to look into its queries.
    pub keep_database: bool,
}

impl Services {
    /// Fails, saying what to do, unless both services answer and the binaries exist.
    pub async fn check(&self) -> anyhow::Result<()> {
        for binary in ["regstat-receiver", "regstat-worker"] {
            let path = self.bin_dir.join(binary);
            if !path.exists() {
                bail!(
                    "{} not found: build the release binaries first \
                     (`cargo build --release --workspace --locked`)",
                    path.display()
                );
            }
        }
        Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .with_context(|| {
                format!(
                    "RabbitMQ at {} is not reachable: start it (`rabbitmq-server -detached`, \
                     or `deploy/dev.sh --services-only`) or pass --amqp-url",
                    self.amqp_url
                )
            })?;
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_admin_url)
            .await
            .with_context(|| {
                "PostgreSQL is not reachable: start it (`pg_ctlcluster --skip-systemctl-redirect \
                 $(ls /etc/postgresql) main start`, or `deploy/dev.sh --services-only`) or pass \
                 --database-url"
            })?;
        Ok(())
    }
}

/// A regstat installation of its own: queues under a fresh prefix, a fresh migrated database,
/// and the processes started on it.
pub struct Stack {
    services: Services,
    prefix: String,
    /// The queue topology (prefix `bench-<hex>`).
    pub topology: Topology,
    /// A channel for the benchmark's own publishing, purging and depth checks.
    pub channel: Channel,
    _connection: Connection,
    database: String,
    database_url: String,
    /// A pool on the stack's database.
    pub pool: PgPool,
    config_file: PathBuf,
    receiver: Option<Process>,
    workers: Vec<Process>,
}

impl Stack {
    /// Declares the topology, creates and migrates the database. Callbacks go to `registry`.
    pub async fn new(services: &Services, registry: Option<SocketAddr>) -> anyhow::Result<Self> {
        Self::sharded(services, registry, 1).await
    }

    /// [`Self::new`] with `shards` work queues per path (`amqp.shards`), on the broker of
    /// `services.amqp_url` (one node, or a cluster's list).
    pub async fn sharded(
        services: &Services,
        registry: Option<SocketAddr>,
        shards: u16,
    ) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let prefix = format!("bench-{id}");
        let database = format!("regstat_bench_{id}");
        let defaults = regstat_shared::config::Settings::load_with_env(None, Vec::new())?;
        let version =
            regstat_shared::amqp::broker_version(&services.amqp_url.clone().into()).await?;
        let topology = Topology::new(
            prefix.clone(),
            defaults.amqp.delivery_limit,
            &defaults.amqp.retry_delays_secs,
        )
        .with_shards(shards)
        .on_broker(version);
        let connection =
            regstat_shared::amqp::connect(&services.amqp_url.clone().into(), "regstat-bench")
                .await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;

        databases::create(
            &services.database_admin_url,
            &database,
            services.log_statements,
        )
        .await?;
        let database_url = databases::url_of(&services.database_admin_url, &database)
            .map_err(anyhow::Error::msg)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&database_url)
            .await?;
        regstat_store::db::migrate(&pool).await?;

        let config_file = std::env::temp_dir().join(format!("regstat-bench-{id}.toml"));
        let registries = registry.map_or_else(String::new, |addr| {
            format!(
                "[[registries]]\nname = \"bench\"\nurl = \"http://{addr}\"\naliases = [\"{}\"]\n",
                crate::workload::REGISTRY_HOST
            )
        });
        std::fs::write(&config_file, registries)?;
        Ok(Self {
            services: services.clone(),
            prefix,
            topology,
            channel,
            _connection: connection,
            database,
            database_url,
            pool,
            config_file,
            receiver: None,
            workers: Vec::new(),
        })
    }

    /// The configuration every process of this stack gets: its prefix, database, registry.
    fn command(&self, binary: &str, listen_key: &str, listen: SocketAddr) -> Command {
        let mut command = Command::new(self.services.bin_dir.join(binary));
        command
            .env("REGSTAT_CONFIG", &self.config_file)
            .env("REGSTAT__AMQP__URL", &self.services.amqp_url)
            .env("REGSTAT__AMQP__PREFIX", &self.prefix)
            .env("REGSTAT__AMQP__SHARDS", self.topology.shards().to_string())
            .env("REGSTAT__DATABASE__URL", &self.database_url)
            .env(listen_key, listen.to_string())
            .env("REGSTAT__TELEMETRY__FILTER", "warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The settings the stack's processes run with.
    pub fn settings(&self) -> anyhow::Result<regstat_shared::config::Settings> {
        Ok(regstat_shared::config::Settings::load_with_env(
            Some(&self.config_file),
            [
                (
                    "REGSTAT__AMQP__URL".to_owned(),
                    self.services.amqp_url.clone(),
                ),
                ("REGSTAT__AMQP__PREFIX".to_owned(), self.prefix.clone()),
                (
                    "REGSTAT__AMQP__SHARDS".to_owned(),
                    self.topology.shards().to_string(),
                ),
                (
                    "REGSTAT__DATABASE__URL".to_owned(),
                    self.database_url.clone(),
                ),
            ],
        )?)
    }

    /// Starts the receiver (bearer token [`TOKEN`]) and waits until it is ready.
    pub async fn start_receiver(&mut self) -> anyhow::Result<SocketAddr> {
        let listen = free_port()?;
        let mut command = self.command("regstat-receiver", "REGSTAT__RECEIVER__LISTEN", listen);
        command.env("REGSTAT__RECEIVER__TOKENS", TOKEN);
        // Keep-alive is off by default (registries open a connection per notification, and
        // only a connection's first head has a deadline); the kept-connection levels measure
        // clients that reuse connections, so they get it. New-connection levels are unchanged.
        command.env("REGSTAT__RECEIVER__KEEP_ALIVE_SECS", "5");
        let process = Process::spawn("receiver", command, listen).await?;
        self.receiver = Some(process);
        Ok(listen)
    }

    /// Starts `count` workers whose callbacks run `concurrency` at a time per registry (`None`:
    /// the default, `callbacks.concurrency`), and waits until they consume.
    pub async fn start_workers(
        &mut self,
        count: usize,
        concurrency: Option<usize>,
    ) -> anyhow::Result<()> {
        for n in 0..count {
            let listen = free_port()?;
            let mut command = self.command("regstat-worker", "REGSTAT__WORKER__LISTEN", listen);
            if let Some(concurrency) = concurrency {
                command.env("REGSTAT__CALLBACKS__CONCURRENCY", concurrency.to_string());
            }
            self.workers
                .push(Process::spawn(&format!("worker {n}"), command, listen).await?);
        }
        Ok(())
    }

    /// Stops the workers (SIGTERM, as an orchestrator does).
    pub async fn stop_workers(&mut self) -> anyhow::Result<()> {
        for worker in self.workers.drain(..) {
            worker.stop().await?;
        }
        Ok(())
    }

    /// The process ids of the receiver and of the workers.
    pub fn pids(&self) -> (Option<u32>, Vec<u32>) {
        (
            self.receiver.as_ref().and_then(|p| p.child.id()),
            self.workers.iter().filter_map(|p| p.child.id()).collect(),
        )
    }

    /// Peak resident memory of the receiver so far, MiB.
    pub fn receiver_peak_rss(&self) -> Option<f64> {
        self.receiver.as_ref().and_then(Process::peak_rss_mib)
    }

    /// Peak resident memory of the largest worker so far, MiB.
    pub fn worker_peak_rss(&self) -> Option<f64> {
        self.workers
            .iter()
            .filter_map(Process::peak_rss_mib)
            .reduce(f64::max)
    }

    /// A channel in confirm mode on the stack's broker connection (the raw limits).
    pub async fn confirm_channel(&self) -> anyhow::Result<Channel> {
        let channel = self._connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// Messages ready in the work queues.
    pub async fn queue_depth(&self) -> anyhow::Result<u32> {
        let mut depth = 0;
        for queue in self.topology.work_queues() {
            depth += self.depth(&queue).await?;
        }
        Ok(depth)
    }

    /// Messages ready in `queue`.
    pub async fn depth(&self, queue: &str) -> anyhow::Result<u32> {
        let (ready, _) = regstat_shared::amqp::queue_counts(&self.channel, queue).await?;
        Ok(ready)
    }

    /// Empties the work queues (between runs that only measure the receiver).
    pub async fn purge(&self) -> anyhow::Result<()> {
        for queue in self.topology.work_queues() {
            self.channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Deletes the stack's queues and exchanges. RabbitMQ 3.10 sometimes fails a quorum queue
    /// delete right after heavy traffic (its Ra log writer restarts: `wal_down`) and closes
    /// the connection; a fresh connection a moment later succeeds. A cleanup failure never
    /// fails the benchmark: it says what was left behind.
    async fn delete_topology(&self) {
        if self.topology.delete(&self.channel).await.is_ok() {
            return;
        }
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let Ok(connection) = regstat_shared::amqp::connect(
                &self.services.amqp_url.clone().into(),
                "regstat-bench",
            )
            .await
            else {
                continue;
            };
            let deleted = match connection.create_channel().await {
                Ok(channel) => self.topology.delete(&channel).await.is_ok(),
                Err(_) => false,
            };
            let _ = connection.close(200, "done".into()).await;
            if deleted {
                return;
            }
        }
        eprintln!(
            "warning: could not delete the queues and exchanges named {}.*; remove them with \
             `rabbitmqctl delete_queue`",
            self.prefix
        );
    }

    /// Stops every process, deletes the queues and drops the database.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.stop_workers().await?;
        if let Some(receiver) = self.receiver.take() {
            receiver.stop().await?;
        }
        self.delete_topology().await;
        self.pool.close().await;
        if self.services.keep_database {
            eprintln!("  kept the database {}", self.database_url);
        } else {
            databases::drop_database(&self.services.database_admin_url, &self.database).await?;
        }
        let _ = std::fs::remove_file(&self.config_file);
        Ok(())
    }
}

/// A running regstat binary.
struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `command` and waits until `GET /readyz` on `listen` answers 200.
    async fn spawn(name: &str, mut command: Command, listen: SocketAddr) -> anyhow::Result<Self> {
        let mut child = command
            .spawn()
            .with_context(|| format!("start the {name}"))?;
        let started = Instant::now();
        loop {
            if let Ok(200) = sender::get(listen, "/readyz").await {
                return Ok(Self {
                    name: name.to_owned(),
                    child,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!("the {name} exited at start ({status}); its log is above");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the {name} was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `VmHWM` (peak resident set) from `/proc`, MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// SIGTERM, then up to 60 s for a clean exit.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    eprintln!("warning: the {} exited with {status}", self.name);
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the {} did not stop within 60 s of SIGTERM", self.name)
            }
        }
    }
}

/// A free local port (bound and released: another process could take it, which would show as
/// a start failure).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The directory of the running benchmark binary (the other release binaries are beside it).
pub fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}
