//! `regstat`: the operator's command line. The work is done by the [`regstat_cli`] library
//! and the store; this file parses arguments, asks for confirmation and prints.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use regstat_cli::admin::dlq::{self, DeadLetterQueue, Selection};
use regstat_cli::admin::letter::DeadLetter;
use regstat_cli::admin::{self, output, status};
use regstat_cli::doctor;
use regstat_cli::render::{self, Format};
use regstat_shared::config::{ConfigFile, Settings};
use regstat_shared::topology::Topology;
use regstat_store::{db, retention};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Operate a regstat installation.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = "regstat's operator command line: check an installation (`doctor`), apply \
                  migrations, show queues and the ledger (`status`), inspect, replay or delete \
                  dead letters (`dlq`), answer questions about the registry (`report`), prune \
                  the ledger and sync from a registry's catalog.\n\n\
                  Every command reads the same configuration as the receiver and the worker: \
                  --config, else $REGSTAT_CONFIG, else the first of ./regstat.toml, \
                  .regstat-dev/regstat.toml and /etc/regstat/regstat.toml that exists, then \
                  REGSTAT__SECTION__KEY variables. `regstat doctor` says which it read."
)]
struct Cli {
    /// TOML configuration file (default: $REGSTAT_CONFIG, else the first of ./regstat.toml,
    /// .regstat-dev/regstat.toml and /etc/regstat/regstat.toml that exists, else built-in
    /// defaults + env).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check everything a running installation needs, one line per check: OK, WARN (passes,
    /// worth a look) or FAIL, with what is wrong and how to fix it.
    ///
    /// In order: the configuration loads (and from where); PostgreSQL answers, migrations are
    /// current, ledger partitions hold now and the next slot; RabbitMQ answers, every exchange
    /// and queue exists with this configuration's arguments, a worker consumes each work
    /// queue, dead letters and quarantined events (WARN when any); each configured registry
    /// answers, accepts its credentials and lists its catalog; each of `doctor.endpoints`
    /// answers /readyz. A check is skipped when one it needs failed. Changes nothing. Exit
    /// status 0 only when no check fails.
    Doctor {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Show queue depths and consumers, and the ledger's size and freshness.
    ///
    /// NEWEST RECORDED (JSON: newest_recorded_age_secs) is the time since the newest event of
    /// that work queue was received, among those in the ledger. Queues deliver in order, so
    /// while a queue has messages ready this bounds how long its oldest one has waited.
    /// (RabbitMQ cannot show a quorum queue's oldest message without delivering it, which
    /// would count towards its delivery limit.)
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Inspect, replay or delete dead letters (events that failed for good).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Answer a question about the registry (see `regstat report --help` for the list).
    Report(regstat_cli::report::ReportArgs),
    /// Manage the event ledger's retention.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Cleanup plans from real usage: what a policy keeps, what it would delete, and why.
    #[command(subcommand)]
    Cleanup(CleanupCommand),
    /// Record what a registry holds now: walk its catalog and tag lists, fetch the manifests
    /// regstat lacks, and mark what it no longer has as gone (backfill and reconciliation,
    /// docs/MODEL.md). Never records a push or a pull. Safe to repeat, and to run while events
    /// flow.
    Sync(regstat_cli::sync::SyncArgs),
}

#[derive(Subcommand)]
enum CleanupCommand {
    /// Decide every tag and untagged manifest in scope under the policy (README, "Cleaning
    /// up"): kind, pushed, last used, pulls in 30 days, keep or delete, the rule that kept it
    /// or why it is a candidate, and the bytes deleting it would free; totals per repository.
    /// Reads only.
    Plan(regstat_cli::cleanup::PlanArgs),
    /// Carry out a plan against the registry: re-check every row against the current state
    /// (a tag pulled, checked, pushed or moved since the plan is skipped), delete manifests by
    /// digest only where every tag pointing at them is a candidate, referrers and an index's
    /// children with it, at most --max-deletions, stopping at the first refusal. Without
    /// --yes, says what it would do.
    Apply(regstat_cli::cleanup::ApplyArgs),
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Drop ledger partitions older than --older-than and forget event ids past the dedupe
    /// window (ledger.dedupe_days). The derived state (tags, manifests, counts) is kept.
    Prune {
        /// Age in days, e.g. `90d`. Whole partitions go, so up to one interval more is kept.
        #[arg(long, value_name = "DAYS", value_parser = retention::parse_days)]
        older_than: u32,
        /// List what would go and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List every dead letter. They all stay in the queue.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send dead letters back to the events exchange with their original routing key,
    /// without their failure headers (attempts start over). Each is removed from the dead
    /// queue only once the broker confirmed its republish. Safe to repeat: the worker
    /// records an event id once.
    Replay {
        #[command(flatten)]
        select: Select,
        /// Show what would be replayed and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters, after asking for confirmation.
    Purge {
        #[command(flatten)]
        select: Select,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters: `--id` (repeatable) or `--all`, exactly one of them.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Select {
    /// Event id of a dead letter (repeat, or list several after one --id).
    #[arg(long = "id", value_name = "ID", num_args = 1..)]
    ids: Vec<String>,
    /// Every dead letter.
    #[arg(long)]
    all: bool,
}

impl Select {
    fn selection(self) -> Selection {
        if self.all {
            Selection::All
        } else {
            Selection::Ids(self.ids)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Command::Doctor { format } = cli.command {
        return doctor(cli.config.as_deref(), format).await;
    }
    let (settings, file) = Settings::load_located(cli.config.as_deref())?;
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    match cli.command {
        // Handled above: it loads the configuration itself, to report a failure as a check.
        Command::Doctor { .. } => {}
        Command::Migrate => {
            let pool = db::pool(&settings.database)?;
            db::migrate(&pool).await.context("applying migrations")?;
            let applied = db::MIGRATOR.iter().count();
            println!("database is up to date ({applied} migrations)");
        }
        Command::Status { format } => print_status(&settings, file.as_ref(), format).await?,
        Command::Dlq(command) => dead_letters(&settings, command).await?,
        Command::Report(args) => {
            let mut db = admin::connect_database(&settings.database)
                .await
                .context("running the report")?;
            let output = args.execute(&mut db).await.context("running the report")?;
            let _ = sqlx::Connection::close(db).await;
            print!("{output}");
        }
        Command::Cleanup(CleanupCommand::Plan(args)) => {
            print!("{}", regstat_cli::cleanup::plan(&settings, &args).await?);
        }
        Command::Cleanup(CleanupCommand::Apply(args)) => {
            let applied = regstat_cli::cleanup::apply(&settings, &args).await?;
            print!("{}", applied.report);
            if !applied.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Sync(args) => {
            let report = regstat_cli::sync::run(&settings, &args).await?;
            print!("{report}");
            if !report.is_complete() {
                anyhow::bail!(
                    "{} repositories could not be synced and were left unchanged",
                    report.failures.len()
                );
            }
        }
        Command::Ledger(LedgerCommand::Prune {
            older_than,
            dry_run,
        }) => {
            let pool = db::pool(&settings.database)?;
            let report = retention::prune(&pool, &settings.ledger, older_than, dry_run)
                .await
                .context("pruning the ledger")?;
            pool.close().await;
            print!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `regstat doctor`: prints the report; fails (status 1) when a check failed.
async fn doctor(config: Option<&Path>, format: Format) -> anyhow::Result<ExitCode> {
    let configuration = doctor::Configuration::load(config);
    if let Some(settings) = configuration.settings() {
        regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    }
    let report = configuration.examine().await;
    match format {
        Format::Table => print!("{}", report.table()),
        Format::Json => print!("{}", render::json(&report)?),
        Format::Csv => print!("{}", render::rows(&as_rows(&report.checks)?, Format::Csv)?),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn print_status(
    settings: &Settings,
    file: Option<&ConfigFile>,
    format: Format,
) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings.amqp);
    let mut db = admin::connect_database(&settings.database)
        .await
        .context("reading status")?;
    let connection = admin::connect_broker(&settings.amqp)
        .await
        .context("reading status")?;
    let report = status::collect(&connection, &topology, &mut db).await;
    admin::close_broker(&connection).await;
    let _ = sqlx::Connection::close(db).await;
    let report = report.context("reading status")?;
    match format {
        Format::Table => {
            print!("{}", output::status_table(&report));
            if report.queues.iter().any(|queue| !queue.exists) {
                println!("{}", admin::missing_queues_hint(&settings.amqp, file));
            }
        }
        Format::Json => print!("{}", render::json(&report)?),
        Format::Csv => print!("{}", render::rows(&as_rows(&report.queues)?, Format::Csv)?),
    }
    Ok(())
}

async fn dead_letters(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    // Refuse before touching anything.
    if let DlqCommand::Purge { yes: false, .. } = &command
        && !std::io::stdin().is_terminal()
    {
        bail!(
            "refusing to delete dead letters without confirmation: stdin is not a terminal; \
             pass --yes to delete without asking"
        );
    }
    let horizon = match &command {
        DlqCommand::Replay { .. } => dedupe_horizon(settings).await?,
        _ => None,
    };
    let topology = Topology::from_settings(&settings.amqp);
    let connection = admin::connect_broker(&settings.amqp)
        .await
        .context("opening the dead-letter queue")?;
    let result = run_dlq(&connection, &topology, command, horizon).await;
    admin::close_broker(&connection).await;
    result
}

/// The dedupe horizon, which `dlq replay` must respect (docs/MODEL.md, "Ledger retention").
async fn dedupe_horizon(settings: &Settings) -> anyhow::Result<Option<DateTime<Utc>>> {
    let pool = db::pool(&settings.database)?;
    let horizon = retention::dedupe_horizon(&pool).await.context(
        "reading the dedupe horizon from the database: a replay needs it, as dead letters \
             received before it would be refused by the worker",
    )?;
    pool.close().await;
    Ok(horizon)
}

async fn run_dlq(
    connection: &lapin::Connection,
    topology: &Topology,
    command: DlqCommand,
    horizon: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let queue = topology.dead_queue();
    match command {
        DlqCommand::List { format } => {
            let letters = dlq::list(connection, topology)
                .await
                .with_context(|| format!("listing {queue}"))?;
            match format {
                Format::Table => print!("{}", output::dead_letters_table(&letters)),
                Format::Json => print!("{}", render::json(&letters)?),
                Format::Csv => print!("{}", render::rows(&as_rows(&letters)?, Format::Csv)?),
            }
        }
        DlqCommand::Replay { select, dry_run } => {
            let selection = select.selection();
            let held = DeadLetterQueue::open(connection, topology)
                .await
                .with_context(|| format!("reading {queue}"))?;
            warn_not_found(&held.not_found(&selection));
            if dry_run {
                let (too_old, chosen): (Vec<_>, Vec<_>) = held
                    .selected(&selection)
                    .cloned()
                    .partition(|letter| letter.before(horizon));
                let total = held.letters().count();
                held.release().await.context("dry run")?;
                print!("{}", output::dead_letters_table(&chosen));
                warn_before_horizon(&too_old, horizon);
                println!(
                    "dry run: would replay {}, keep {}; nothing changed",
                    chosen.len(),
                    total - chosen.len()
                );
                return Ok(());
            }
            let summary = held
                .replay(&selection, horizon)
                .await
                .with_context(|| format!("replaying from {queue}"))?;
            warn_before_horizon(&summary.before_horizon, horizon);
            for failure in &summary.failed {
                eprintln!(
                    "not replayed (kept): {} ({}): {}",
                    failure.id.as_deref().unwrap_or("<no id>"),
                    failure.routing_key,
                    failure.error
                );
            }
            println!("replayed {}, kept {}", summary.replayed.len(), summary.kept);
            if !summary.failed.is_empty() {
                bail!(
                    "{} dead letters were not accepted by the broker",
                    summary.failed.len()
                );
            }
        }
        DlqCommand::Purge { select, yes } => {
            let selection = select.selection();
            let held = DeadLetterQueue::open(connection, topology)
                .await
                .with_context(|| format!("reading {queue}"))?;
            warn_not_found(&held.not_found(&selection));
            let chosen: Vec<_> = held.selected(&selection).cloned().collect();
            if chosen.is_empty() {
                held.release().await?;
                println!("nothing to delete");
                return Ok(());
            }
            if !yes {
                print!("{}", output::dead_letters_table(&chosen));
                if !confirm(&format!("Delete {} dead letters? [y/N] ", chosen.len())).await? {
                    held.release().await?;
                    println!("nothing deleted");
                    return Ok(());
                }
            }
            let summary = held
                .purge(&selection)
                .await
                .with_context(|| format!("deleting from {queue}"))?;
            println!("deleted {}, kept {}", summary.deleted.len(), summary.kept);
        }
    }
    Ok(())
}

/// Serialisable items as report rows (CSV of a list).
fn as_rows<T: serde::Serialize>(items: &[T]) -> anyhow::Result<Vec<serde_json::Value>> {
    items
        .iter()
        .map(|item| serde_json::to_value(item).context("rendering CSV"))
        .collect()
}

/// Says which selected dead letters are kept because they were received before the dedupe
/// horizon.
fn warn_before_horizon(letters: &[DeadLetter], horizon: Option<DateTime<Utc>>) {
    let (Some(horizon), false) = (horizon, letters.is_empty()) else {
        return;
    };
    eprintln!(
        "kept, not replayed: {} dead letters received before the dedupe horizon ({horizon}); \
         their ids may have been forgotten, so the worker would refuse them \
         (docs/MODEL.md, \"Replaying dead letters safely\"):",
        letters.len()
    );
    for letter in letters {
        eprintln!(
            "  {} received {}",
            letter.id.as_deref().unwrap_or("<no id>"),
            letter
                .received_at
                .map_or_else(|| "?".to_owned(), |at| at.to_string())
        );
    }
}

fn warn_not_found(ids: &[String]) {
    if !ids.is_empty() {
        eprintln!("no dead letter with id: {}", ids.join(", "));
    }
}

/// Asks `question` on stderr and reads the answer from stdin: yes only for `y` or `yes`.
async fn confirm(question: &str) -> anyhow::Result<bool> {
    let question = question.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        stderr.write_all(question.as_bytes())?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.trim().to_ascii_lowercase();
        Ok(answer == "y" || answer == "yes")
    })
    .await
    .context("reading the confirmation")?
}
