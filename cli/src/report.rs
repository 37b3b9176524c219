//! The `regstat report` subcommand: one sub-subcommand per report, each a query of
//! [`regstat_store::reports`] drawn by [`crate::render`].

use crate::render::{self, Format};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use regstat_store::reports::{Filters, Report, run};
use sqlx::PgConnection;

/// `regstat report NAME [options]`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub name: ReportName,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
    /// Only this registry (canonical name).
    #[arg(long, global = true)]
    pub registry: Option<String>,
    /// Only repositories under this prefix (`lab` is `lab` and `lab/...`) or matching this
    /// glob (`lab/*-api`).
    #[arg(long, global = true)]
    pub repository: Option<String>,
}

/// The reports.
#[derive(Debug, Subcommand)]
pub enum ReportName {
    /// Every tag: digest, media type, platforms, size, pushed, last pulled, pull count,
    /// version checks and the last one.
    Images,
    /// Per repository: tags, manifests, pushes, pulls, first/last push and pull, actors.
    Repositories,
    /// Blob count and bytes, per repository and per registry.
    Blobs,
    /// Images pushed more than N days ago.
    Stale {
        /// Age in days.
        #[arg(long)]
        days: i32,
    },
    /// Images not pulled for N days (never pulled: counted from their push).
    Unpulled {
        /// Age in days.
        #[arg(long)]
        days: i32,
    },
    /// Blobs no live manifest references.
    OrphanedBlobs {
        /// Ignore blobs linked this recently (their manifest may still come), e.g. `2h`.
        #[arg(long, default_value = "2h", value_parser = parse_duration)]
        grace: std::time::Duration,
    },
    /// Manifests that reference blobs the registry no longer has.
    MissingBlobs,
    /// Manifests with the most tags.
    MostTags {
        /// Rows.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// The most pulled tags in the last N days.
    TopPulled {
        /// Window in days.
        #[arg(long, default_value_t = 30)]
        days: i32,
        /// Rows.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Tags by version checks in the last N days: resolves (HEAD by tag) no pull followed,
    /// a client asking whether its image is current.
    VersionChecks {
        /// Window in days.
        #[arg(long, default_value_t = 30)]
        days: i32,
        /// Rows.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Image pulls per day.
    Pulls {
        /// Window in days.
        #[arg(long, default_value_t = 30)]
        days: i32,
    },
    /// Image pulls per platform.
    Architectures {
        /// Window in days.
        #[arg(long, default_value_t = 30)]
        days: i32,
    },
    /// Who pushed and pulled what, how often, when last.
    Actors,
    /// Pushes, pulls, mounts and deletes of a repository, newest first.
    History {
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only since: an RFC 3339 time or a duration ago (`7d`, `12h`).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Rows.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The deletion audit trail.
    Deleted {
        /// Only since: an RFC 3339 time or a duration ago (`7d`, `12h`).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
    },
}

impl ReportArgs {
    /// The report these arguments name, or why they do not name one.
    pub fn report(&self) -> anyhow::Result<Report> {
        Ok(match &self.name {
            ReportName::Images => Report::Images,
            ReportName::Repositories => Report::Repositories,
            ReportName::Blobs => Report::Blobs,
            ReportName::Stale { days } => Report::Stale { days: *days },
            ReportName::Unpulled { days } => Report::Unpulled { days: *days },
            ReportName::OrphanedBlobs { grace } => Report::OrphanedBlobs {
                grace_secs: i64::try_from(grace.as_secs())?,
            },
            ReportName::MissingBlobs => Report::MissingBlobs,
            ReportName::MostTags { limit } => Report::MostTags { limit: *limit },
            ReportName::TopPulled { days, limit } => Report::TopPulled {
                days: *days,
                limit: *limit,
            },
            ReportName::VersionChecks { days, limit } => Report::VersionChecks {
                days: *days,
                limit: *limit,
            },
            ReportName::Pulls { days } => Report::Pulls { days: *days },
            ReportName::Architectures { days } => Report::Architectures { days: *days },
            ReportName::Actors => Report::Actors,
            ReportName::History {
                tag,
                actor,
                since,
                limit,
            } => Report::History {
                repository: self
                    .repository
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("history needs --repository"))?,
                tag: tag.clone(),
                actor: actor.clone(),
                since: *since,
                limit: *limit,
            },
            ReportName::Deleted { since } => Report::Deleted { since: *since },
        })
    }

    /// Runs the report and renders it.
    pub async fn execute(&self, connection: &mut PgConnection) -> anyhow::Result<String> {
        let report = self.report()?;
        let filters = Filters {
            registry: self.registry.clone(),
            // History takes --repository as its exact subject, not as a filter.
            repository: match report {
                Report::History { .. } => None,
                _ => self.repository.clone(),
            },
        };
        let rows = run(connection, &report, &filters).await?;
        render::rows(&rows, self.format)
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 2h or 30m: {e}"))
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a duration like 7d"))?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}
