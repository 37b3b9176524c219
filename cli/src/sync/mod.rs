//! `regstat sync --registry NAME`: backfill and reconciliation.
//!
//! Walks a registry's `_catalog` and each repository's `tags/list`, and records what the
//! registry holds *now* as observations (docs/MODEL.md, "Backfill and reconciliation"): which
//! digest each tag names, which manifests exist (their content fetched by digest, once), and
//! tombstones for what the registry no longer has (after `garbage-collect`, or deletes whose
//! events never arrived). It never invents pushes or pulls. Observations merge like pushes
//! (newest wins, `GREATEST`), so a sync is idempotent, repeatable and safe while events flow.
//!
//! # Layout
//! - this file: [`SyncOptions`], [`sync`] (the walk over repositories) and [`run`] (from
//!   settings, for the CLI).
//! - `observe`: what the registry shows for one repository (tags, manifests, what is missing).
//! - `content`: manifest content, from the database when known, else fetched by digest.
//! - `record`: what a sync saw, recorded through the model's upserts
//!   ([`regstat_store::model::Changes`]), exactly as events are.
//! - `diff`: the differences between the two, as printed by `--dry-run`.
//! - `report`: [`SyncReport`], the summary the CLI prints and the tests assert.
//! - `progress`: a progress bar on a terminal, log lines otherwise.

mod content;
mod diff;
mod observe;
mod progress;
mod record;
mod report;

pub use diff::{MovedTag, RepositoryDiff};
pub use report::{RepositoryFailure, SyncReport};

use anyhow::Context;
use chrono::Utc;
use futures_util::StreamExt;
use regstat_registry::{FetchError, Registries, RegistryClient};
use regstat_shared::backoff::Policy;
use regstat_shared::config::Settings;
use regstat_store::sync as store;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Compute and report the differences, write nothing (and fetch no manifest content).
    pub dry_run: bool,
    /// How progress is shown.
    pub progress: Progress,
    /// Entries asked per page of `_catalog` and `tags/list` (`?n=`); registries cap it.
    pub page_size: u32,
    /// Repositories synced at once, each in its own transaction. Requests to the registry
    /// are bounded by its client (`callbacks.concurrency`) in any case.
    pub concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            progress: Progress::Auto,
            page_size: 1000,
            concurrency: 4,
        }
    }
}

/// How a sync shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// A progress bar on stderr.
    Bar,
    /// `tracing` info lines: every [`LOG_EVERY`] repositories and at the end.
    Log,
    /// Nothing (tests).
    Hidden,
}

/// Repositories between two progress log lines.
pub const LOG_EVERY: usize = 100;

/// `regstat sync`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The `[[registries]]` entry to walk, by its `name`.
    #[arg(long, value_name = "NAME")]
    pub registry: String,
    /// Print the differences (new, moved and gone tags, gone manifests, content to fetch)
    /// and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Entries asked per page of `_catalog` and `tags/list`.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub page_size: u32,
}

/// Runs `regstat sync` from settings: the registry's client as configured (credentials,
/// TLS), a database pool, and progress as [`Progress::Auto`].
pub async fn run(settings: &Settings, args: &SyncArgs) -> anyhow::Result<SyncReport> {
    let registries = Registries::from_settings(&settings.registries, &settings.callbacks)?;
    let client = registries.client(&args.registry).with_context(|| {
        let names: Vec<&str> = registries.clients().map(RegistryClient::name).collect();
        format!(
            "no [[registries]] entry is named `{}` (configured: {})",
            args.registry,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )
    })?;
    let pool = regstat_store::db::pool(&settings.database).context("invalid database.url")?;
    let options = SyncOptions {
        dry_run: args.dry_run,
        page_size: args.page_size,
        ..SyncOptions::default()
    };
    let report = sync(&pool, client, &options).await;
    pool.close().await;
    report
}

/// Syncs the registry `client` calls: every repository of its catalog, then the repositories
/// regstat holds live content for that the catalog no longer lists (all gone). A repository
/// that fails (registry unavailable, access denied) is reported in
/// [`SyncReport::failures`] and left unchanged; the others go on. Fails as a whole only when
/// the catalog cannot be listed or the database is unusable before any work.
pub async fn sync(
    pool: &PgPool,
    client: &RegistryClient,
    options: &SyncOptions,
) -> anyhow::Result<SyncReport> {
    let registry = client.name();
    // Repositories missing from the catalog are gone as of before it was read.
    let started = Utc::now();
    let catalog: BTreeSet<String> = retrying(|| client.catalog(options.page_size))
        .await
        .with_context(|| format!("listing the repositories of registry {registry}"))?
        .into_iter()
        .collect();
    let known = store::live_repositories(pool, registry)
        .await
        .context("reading the repositories regstat knows")?;
    let gone: Vec<&String> = known.difference(&catalog).collect();
    tracing::info!(
        %registry,
        repositories = catalog.len(),
        gone = gone.len(),
        dry_run = options.dry_run,
        "sync started"
    );
    let mut report = SyncReport::new(registry, options.dry_run, started);
    report.repositories = catalog.len();
    let mut progress = progress::Reporter::new(options.progress, catalog.len() + gone.len());

    let mut results = futures_util::stream::iter(&catalog)
        .map(|repository| async move {
            let outcome = observe::sync_repository(pool, client, options, repository).await;
            (repository, outcome)
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((repository, outcome)) = results.next().await {
        match outcome {
            Ok(outcome) => report.add(outcome),
            Err(error) => {
                progress.warn(&format!(
                    "sync of {registry}/{repository} failed; left unchanged: {error:#}"
                ));
                report.failures.push(RepositoryFailure {
                    repository: repository.clone(),
                    error,
                });
            }
        }
        progress.advance(repository, &report);
    }

    for repository in gone {
        match observe::repository_gone(pool, registry, repository, started, options).await {
            Ok(outcome) => {
                report.repositories_gone += 1;
                report.add(outcome);
            }
            Err(error) => report.failures.push(RepositoryFailure {
                repository: repository.clone(),
                error,
            }),
        }
        progress.advance(repository, &report);
    }
    report.sort();
    progress.finish(&report);
    Ok(report)
}

/// Retries of a registry request that failed transiently (5xx, 429, timeouts).
const REQUEST_RETRIES: Policy =
    Policy::exponential(Duration::from_millis(250), Duration::from_secs(4))
        .with_factor(4.0)
        .with_retries(2);

/// Runs a registry request, trying a transient failure (5xx, 429, timeouts) twice more.
async fn retrying<T, F, Fut>(request: F) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    REQUEST_RETRIES
        .retry(
            request,
            |error| matches!(error, FetchError::Transient(_)),
            |error, delay| {
                tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64, "registry unavailable; retrying");
            },
        )
        .await
}
