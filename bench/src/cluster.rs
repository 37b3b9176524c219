//! Scenario 7: a three-node RabbitMQ cluster (`deploy/rabbitmq-cluster.sh`, or one given with
//! `--cluster-url`), with 1, 2 and 4 shards and 1, 2 and 3 workers.
//!
//! For each shard count and worker count: a fresh stack (prefix, database) on the cluster, a
//! backlog posted to one receiver by 64 kept connections while no worker runs (the receiver's
//! rate on the cluster), then the workers started on it (the rate at which they apply it). The
//! CPU time each process spent (`/proc/<pid>/stat`: the receiver while the backlog was posted,
//! the workers and PostgreSQL while they applied it, the three broker nodes during both) is divided by the
//! events: the per-event cost that sizes a deployment (docs/SCALING.md). On two cores the
//! broker nodes, the workers, PostgreSQL and the load generator share the same CPUs, so the
//! figures say what binds rather than what a cluster of machines would do.

use crate::load;
use crate::scenarios::{Plan, exactly_once, simulated_registry, wait_rows};
use crate::sender::Sender;
use crate::stack::{Services, Stack, TOKEN};
use anyhow::{Context as _, bail};
use regstat_store::measure::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Shard counts measured.
pub const SHARDS: [u16; 3] = [1, 2, 4];
/// Worker counts measured.
pub const WORKERS: [usize; 3] = [1, 2, 3];

/// One measured combination.
#[derive(Debug, Clone)]
pub struct Run {
    /// `amqp.shards`.
    pub shards: u16,
    /// Worker processes.
    pub workers: usize,
    /// Events posted (and applied).
    pub events: u64,
    /// The receiver's accepted events/s while posting the backlog.
    pub accepted_rate: f64,
    /// Events/s the workers applied the backlog at.
    pub applied_rate: f64,
    /// CPU µs per event: receiver (posting), workers (applying, all together), broker nodes
    /// (posting and applying, all three together).
    pub receiver_us: f64,
    /// See [`Self::receiver_us`].
    pub workers_us: f64,
    /// See [`Self::receiver_us`].
    pub broker_us: f64,
    /// PostgreSQL's processes (all of them, while the workers applied the backlog).
    pub postgres_us: f64,
    /// PostgreSQL WAL bytes written per event while the workers applied the backlog.
    pub wal_bytes: f64,
    /// The largest shard's share of the backlog (1 / shards is an even spread).
    pub largest_shard: f64,
    /// Every event once in the ledger, counters exact.
    pub exactly_once: bool,
}

/// Scenario 7's figures.
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// Every combination, shards outer, workers inner.
    pub runs: Vec<Run>,
    /// Where the cluster came from.
    pub source: String,
}

/// A cluster started by the benchmark, taken down on drop.
struct Started {
    env: Vec<(String, String)>,
    script: PathBuf,
}

impl Started {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .with_context(|| format!("run {}", self.script.display()))?;
        if !output.status.success() {
            bail!(
                "{} {args:?} failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Runs scenario 7 on the cluster at `url`, or on one it starts with
/// `deploy/rabbitmq-cluster.sh` (looked for in the current directory).
pub async fn cluster(
    services: &Services,
    plan: &Plan,
    url: Option<&str>,
) -> anyhow::Result<ClusterFigures> {
    let mut started = None;
    let (url, source) = match url {
        Some(url) => (url.to_owned(), "given with --cluster-url".to_owned()),
        None => {
            let script = PathBuf::from("deploy/rabbitmq-cluster.sh");
            if !script.exists() {
                bail!(
                    "scenario 7 needs a RabbitMQ cluster: run regstat-bench from the repository \
                     root (it starts one with deploy/rabbitmq-cluster.sh) or pass --cluster-url"
                );
            }
            let name = format!(
                "regstat-bench-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let cluster = Started {
                env: vec![
                    ("REGSTAT_CLUSTER_NAME".into(), name.clone()),
                    ("REGSTAT_CLUSTER_PORT".into(), "35673".into()),
                ],
                script,
            };
            eprintln!("  starting a three-node cluster ({name}, ports 35673-35675)");
            cluster.run(&["up"])?;
            let url = cluster.run(&["url"])?.trim().to_owned();
            started = Some(cluster);
            (
                url,
                "started by regstat-bench with deploy/rabbitmq-cluster.sh".to_owned(),
            )
        }
    };
    let on_cluster = Services {
        amqp_url: url,
        ..services.clone()
    };
    let mut figures = ClusterFigures {
        runs: Vec::new(),
        source,
    };
    for shards in SHARDS {
        for workers in WORKERS {
            let run = measure(&on_cluster, plan, shards, workers).await?;
            eprintln!(
                "  {shards} shards, {workers} workers: {:.0} accepted/s, {:.0} applied/s; CPU µs \
                 per event: receiver {:.0}, workers {:.0}, broker {:.0}, PostgreSQL {:.0}; WAL {:.0} bytes per event",
                run.accepted_rate,
                run.applied_rate,
                run.receiver_us,
                run.workers_us,
                run.broker_us,
                run.postgres_us,
                run.wal_bytes
            );
            figures.runs.push(run);
        }
    }
    drop(started);
    Ok(figures)
}

/// One combination on a fresh stack.
async fn measure(
    services: &Services,
    plan: &Plan,
    shards: u16,
    workers: usize,
) -> anyhow::Result<Run> {
    let (registry, workload) = simulated_registry(plan, u64::from(shards) * 10 + workers as u64)?;
    let result = async {
        let mut stack = Stack::sharded(services, Some(registry.addr), shards).await?;
        let result = async {
            let sender = Sender::new(stack.start_receiver().await?, TOKEN);
            let (receiver, _) = stack.pids();
            let brokers = broker_pids();
            let (receiver_before, brokers_before) = (cpu(receiver), cpu_sum(&brokers));
            let posted = load::paced(
                &sender,
                workload.clone(),
                1e9,
                Duration::from_secs(plan.backlog_secs),
                64,
                true,
            )
            .await;
            let receiver_cpu = cpu(receiver) - receiver_before;
            let depths = shard_depths(&stack).await?;
            let largest = depths.iter().copied().max().unwrap_or_default();
            let total: u32 = depths.iter().sum();

            let started = Instant::now();
            stack.start_workers(workers, None).await?;
            let (_, worker_pids) = stack.pids();
            let workers_before = cpu_sum(&worker_pids);
            let postgres = processes_named("postgres");
            let postgres_before = cpu_sum(&postgres);
            let wal_before = wal_position(&stack.pool).await?;
            wait_rows(
                &stack.pool,
                Path::All,
                posted.accepted,
                Duration::from_secs(600),
            )
            .await?;
            let applied_rate = posted.accepted as f64 / started.elapsed().as_secs_f64();
            let workers_cpu = cpu_sum(&worker_pids) - workers_before;
            let postgres_cpu = cpu_sum(&postgres) - postgres_before;
            let wal = wal_position(&stack.pool).await? - wal_before;
            let broker_cpu = cpu_sum(&brokers) - brokers_before;
            let check = exactly_once(&stack.pool, &posted).await?;
            let per_event = |seconds: f64| seconds * 1e6 / (posted.accepted.max(1) as f64);
            Ok::<_, anyhow::Error>(Run {
                shards,
                workers,
                events: posted.accepted,
                accepted_rate: posted.rate(),
                applied_rate,
                receiver_us: per_event(receiver_cpu),
                workers_us: per_event(workers_cpu),
                broker_us: per_event(broker_cpu),
                postgres_us: per_event(postgres_cpu),
                wal_bytes: wal / posted.accepted.max(1) as f64,
                largest_shard: f64::from(largest) / f64::from(total.max(1)),
                exactly_once: check.is_ok(),
            })
        }
        .await;
        stack.close().await?;
        result
    }
    .await;
    registry.stop().await;
    result
}

/// The server's current WAL position in bytes (the whole cluster's WAL: nothing else writes
/// while the bench runs).
async fn wal_position(pool: &sqlx::PgPool) -> anyhow::Result<f64> {
    let bytes: f64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8")
            .fetch_one(pool)
            .await?;
    Ok(bytes)
}

/// Messages ready in each shard's queues (ingest and manifests together), before any worker.
async fn shard_depths(stack: &Stack) -> anyhow::Result<Vec<u32>> {
    let topology = &stack.topology;
    let mut depths = Vec::new();
    for shard in 0..topology.shards() {
        let mut depth = 0;
        for queue in [
            topology.ingest_queue_of(shard),
            topology.manifest_queue_of(shard),
        ] {
            depth += stack.depth(&queue).await?;
        }
        depths.push(depth);
    }
    Ok(depths)
}

/// The Erlang VMs of `deploy/rabbitmq-cluster.sh` nodes (their command line carries the
/// script's `-regstat_cluster_node` marker).
fn broker_pids() -> Vec<u32> {
    processes_where(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|line| line.windows(21).any(|w| w == b"-regstat_cluster_node"))
    })
}

/// The processes whose command is `name` (PostgreSQL's server and backends: `postgres`).
fn processes_named(name: &str) -> Vec<u32> {
    processes_where(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
    })
}

/// The running processes' ids that `wanted` accepts.
fn processes_where(wanted: impl Fn(u32) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| wanted(*pid))
        .collect()
}

/// CPU seconds (user + system) `pid` has used so far; 0 when it is gone or unknown.
fn cpu(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces, inside parentheses): state is the
    // first, utime the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn cpu_sum(pids: &[u32]) -> f64 {
    pids.iter().map(|pid| cpu(Some(*pid))).sum()
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}
