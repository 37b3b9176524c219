//! `regstat-bench`: measures regstat against the raw limits of its own components, in one run,
//! on the local RabbitMQ and PostgreSQL, and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo build --release --workspace --locked
//! target/release/regstat-bench            # every scenario, about 8 minutes
//! target/release/regstat-bench --quick    # a smoke run, about 2 minutes
//! ```
//!
//! It starts the release `regstat-receiver` and `regstat-worker` binaries found beside itself,
//! each stack under its own queue prefix and database, and removes them at the end.
//!
//! # Layout
//! - `scenarios`: the five scenarios, each a figure against the raw limit measured beside it.
//! - `stack`: a receiver and workers as processes, under their own prefix and database.
//! - `load`, `sender`, `workload`: the load generator (registry-style and kept connections)
//!   and the events it sends over a seeded registry of repositories and tags.
//! - `raw`: the raw limits (confirmed publishing, the worker's SQL issued directly).
//! - `fake_registry`: a stand-in registry answering manifest callbacks.
//! - `console`: scenario 6, the console's pages, API and reports at two sizes.
//! - `cluster`: scenario 7, a three-node RabbitMQ cluster with 1, 2, 4 shards and 1, 2, 3
//!   workers, and the CPU each process spends per event.
//! - `report`, `stats`: medians, percentiles, verdicts and `BENCHMARKS.md`.

mod cluster;
mod console;
mod fake_registry;
mod load;
mod raw;
mod report;
mod scenarios;
mod sender;
mod stack;
mod stats;
mod workload;

use clap::{Parser, ValueEnum};
use scenarios::{Memory, Plan};
use stack::Services;
use std::path::PathBuf;
use std::time::Duration;

/// Measures regstat's receiver and worker against the raw limits of RabbitMQ and PostgreSQL.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Scenarios to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Repetitions of the serial and concurrent scenarios (figures are medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Shorter runs, for a smoke test of the command (figures are rough).
    #[arg(long)]
    quick: bool,
    /// Target rate of the end-to-end and slow-registry loads, events/s.
    #[arg(long, default_value_t = 8000.0)]
    rate: f64,
    /// Seconds of the end-to-end load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Make the end-to-end and slow-registry loads open a new connection per request, as a
    /// single registry does (by default their 32 senders keep connections open, so that the
    /// pipeline is measured rather than TCP handshakes; scenario 2 measures both).
    #[arg(long)]
    new_connections: bool,
    /// Where to write the report (Markdown); `-` writes none. By default a full run (all
    /// scenarios, not --quick) writes BENCHMARKS.md and other runs write none.
    #[arg(long, conflicts_with = "update")]
    output: Option<String>,
    /// Put the tables of the scenarios run here (6 console, 7 cluster) in place of their old
    /// ones in an existing report such as BENCHMARKS.md, keeping the rest of it.
    #[arg(long, value_name = "REPORT")]
    update: Option<PathBuf>,
    /// RabbitMQ (the default vhost is used, under throw-away prefixes).
    #[arg(
        long,
        env = "REGSTAT_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// PostgreSQL, as a user allowed to create databases.
    #[arg(
        long,
        env = "REGSTAT_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Log every statement of the stacks' databases with its duration in the PostgreSQL server
    /// log (to profile the SQL; slows everything down).
    #[arg(long)]
    log_statements: bool,
    /// Leave the databases behind (their URLs are printed) to look into their queries, e.g.
    /// with `EXPLAIN ANALYZE` on the console scenario's seeded registry; drop them afterwards.
    #[arg(long)]
    keep_database: bool,
    /// A RabbitMQ cluster for scenario 7 (its nodes' URLs, comma-separated); by default the
    /// scenario starts one with `deploy/rabbitmq-cluster.sh` (run from the repository root).
    #[arg(long, env = "REGSTAT_BENCH_CLUSTER_URL")]
    cluster_url: Option<String>,
    /// Directory of the release binaries (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// The scenarios of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 1 and 2: the receiver alone, serial and concurrent (with 5: its memory).
    Receiver,
    /// 3: the realistic mix through everything (with 5: memory).
    EndToEnd,
    /// 4: manifest callbacks answered slowly.
    SlowRegistry,
    /// 6: the console's pages, API and the reports at 200,000 and 2,000,000 events.
    Console,
    /// 7: a three-node RabbitMQ cluster, 1/2/4 shards × 1/2/3 workers, CPU per event.
    Cluster,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.update.is_some()
        && (cli.only.is_empty()
            || cli
                .only
                .iter()
                .any(|s| !matches!(s, Scenario::Console | Scenario::Cluster)))
    {
        anyhow::bail!(
            "--update replaces only the tables of scenarios 6 and 7: add --only console,cluster or fewer"
        );
    }
    let services = Services {
        amqp_url: cli.amqp_url.clone(),
        database_admin_url: cli.database_url.clone(),
        bin_dir: match cli.bin_dir.clone() {
            Some(dir) => dir,
            None => stack::own_dir()?,
        },
        log_statements: cli.log_statements,
        keep_database: cli.keep_database,
    };
    services.check().await?;
    let plan = plan(&cli);
    let wanted = |scenario| cli.only.is_empty() || cli.only.contains(&scenario);

    let mut report = report::Report::new(&plan, &services).await;
    let mut memory = Memory::default();
    if wanted(Scenario::Receiver) {
        eprintln!("scenarios 1-2: the receiver alone");
        let (serial, raw_rate, concurrent) =
            scenarios::receiver_only(&services, &plan, &mut memory).await?;
        report.serial = Some(serial);
        report.raw_pipelined_rate = Some(raw_rate);
        report.concurrent = concurrent;
    }
    if wanted(Scenario::EndToEnd) {
        eprintln!("scenario 3: end to end with 2 workers");
        report.end_to_end = Some(scenarios::end_to_end(&services, &plan, &mut memory).await?);
    }
    if wanted(Scenario::SlowRegistry) {
        eprintln!("scenario 4: slow registry");
        report.slow_registry = Some(scenarios::slow_registry(&services, &plan).await?);
    }
    if wanted(Scenario::Console) {
        eprintln!("scenario 6: the console at size");
        report.console = Some(console::console(&services, &plan.console_sizes).await?);
    }
    if wanted(Scenario::Cluster) {
        eprintln!("scenario 7: a RabbitMQ cluster, shards and workers");
        report.cluster =
            Some(cluster::cluster(&services, &plan, cli.cluster_url.as_deref()).await?);
    }
    report.memory = memory;

    let text = report.render();
    println!("{text}");
    if let Some(path) = &cli.update {
        let existing = std::fs::read_to_string(path)?;
        std::fs::write(path, report.update(&existing)?)?;
        eprintln!("updated {}", path.display());
        return Ok(());
    }
    let full = cli.only.is_empty() && !cli.quick;
    let output = cli
        .output
        .clone()
        .or_else(|| full.then(|| "BENCHMARKS.md".to_owned()));
    match output.as_deref() {
        Some("-") => {}
        Some(path) => {
            std::fs::write(path, report.markdown(&text))?;
            eprintln!("wrote {path}");
        }
        None => eprintln!("a partial or --quick run: BENCHMARKS.md left as it was (see --output)"),
    }
    Ok(())
}

/// The sizes and durations the options ask for.
fn plan(cli: &Cli) -> Plan {
    let quick = cli.quick;
    Plan {
        runs: if quick { 1 } else { cli.runs.max(1) },
        serial_events: if quick { 1_000 } else { 5_000 },
        concurrent_secs: if quick { 3 } else { 10 },
        concurrency: vec![16, 64],
        rate: cli.rate,
        end_to_end_secs: if quick { 15 } else { cli.duration },
        end_to_end_senders: 32,
        keep_alive: !cli.new_connections,
        repositories: 1_000,
        tags_per_repository: 10,
        raw_sql_events: if quick { 20_000 } else { 100_000 },
        backlog_secs: if quick { 5 } else { 15 },
        slow_secs: if quick { 10 } else { 30 },
        slow_delay: Duration::from_millis(500),
        callback_concurrency: if quick {
            vec![1, 16]
        } else {
            vec![1, 4, 16, 64]
        },
        console_sizes: if quick {
            vec![20_000, 100_000]
        } else {
            vec![200_000, 2_000_000]
        },
    }
}
