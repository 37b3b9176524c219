//! The `regstat report` subcommand: one sub-subcommand per report. Its flags are the report's
//! [`Params`] (the console's `/api/v1/reports/NAME` takes the same as query parameters), the
//! report is [`Report::from_params`] and its rows are [`regstat_store::reports::run`]'s,
//! drawn by [`crate::render`].

use crate::render::{self, Format};
use clap::{Args, Subcommand};
use regstat_store::reports::{Params, Report, parse_duration, parse_since, run};
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
    /// Blob count and bytes, per repository and per registry (AS_OF: when the registry's
    /// line was counted by the workers' refresher; empty: now).
    Blobs,
    /// Images older than N days: pushed, else first seen (AGE_SOURCE says which; 0: every
    /// image).
    Stale {
        /// Age in days.
        #[arg(long)]
        days: i32,
    },
    /// Images not used for N days: the latest of pull, version check and push, else first
    /// seen (LAST_USED_SOURCE says which; 0: every image).
    Unpulled {
        /// Age in days.
        #[arg(long)]
        days: i32,
    },
    /// Blobs no live manifest references, in repositories whose live manifests all have known
    /// content (others: undetermined-blobs).
    OrphanedBlobs {
        /// Ignore blobs linked this recently (their manifest may still come), e.g. `2h`
        /// [default: 2h].
        #[arg(long, value_parser = check(parse_duration))]
        grace: Option<String>,
    },
    /// Blobs that may or may not be used: no manifest of known content references them, and
    /// their repository has live manifests of unknown content (why: the reason column).
    UndeterminedBlobs,
    /// Manifests that reference blobs the registry no longer has.
    MissingBlobs,
    /// Manifests with the most tags.
    MostTags {
        /// Rows [default: 20].
        #[arg(long)]
        limit: Option<i64>,
    },
    /// The most pulled tags in the last N days.
    TopPulled {
        /// Window in days [default: 30].
        #[arg(long)]
        days: Option<i32>,
        /// Rows [default: 20].
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Tags by version checks in the last N days: resolves (HEAD by tag) no pull followed,
    /// a client asking whether its image is current.
    VersionChecks {
        /// Window in days [default: 30].
        #[arg(long)]
        days: Option<i32>,
        /// Rows [default: 20].
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Image pulls per day.
    Pulls {
        /// Window in days [default: 30].
        #[arg(long)]
        days: Option<i32>,
    },
    /// Image pulls per platform.
    Architectures {
        /// Window in days [default: 30].
        #[arg(long)]
        days: Option<i32>,
    },
    /// Who pushed and pulled what, how often, when last.
    Actors,
    /// Pushes, pulls, mounts and deletes of a repository (--repository), newest first.
    History {
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only since: an RFC 3339 time or a duration ago (`7d`, `12h`).
        #[arg(long, value_parser = check(parse_since))]
        since: Option<String>,
        /// Rows [default: 100].
        #[arg(long)]
        limit: Option<i64>,
    },
    /// The deletion audit trail.
    Deleted {
        /// Only since: an RFC 3339 time or a duration ago (`7d`, `12h`).
        #[arg(long, value_parser = check(parse_since))]
        since: Option<String>,
        /// Only the newest rows [default: all].
        #[arg(long)]
        limit: Option<i64>,
    },
}

/// A clap value parser that keeps the text once `parse` accepts it (the report parses it
/// again, where the console's API does too).
fn check<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static
where
    T: 'static,
{
    move |text: &str| parse(text).map(|_| text.to_owned())
}

impl ReportArgs {
    /// The report's name and parameters, as the console's API would take them.
    pub fn params(&self) -> (&'static str, Params) {
        let mut params = Params {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            ..Params::default()
        };
        let name = match &self.name {
            ReportName::Images => "images",
            ReportName::Repositories => "repositories",
            ReportName::Blobs => "blobs",
            ReportName::Stale { days } => {
                params.days = Some(*days);
                "stale"
            }
            ReportName::Unpulled { days } => {
                params.days = Some(*days);
                "unpulled"
            }
            ReportName::OrphanedBlobs { grace } => {
                params.grace.clone_from(grace);
                "orphaned-blobs"
            }
            ReportName::UndeterminedBlobs => "undetermined-blobs",
            ReportName::MissingBlobs => "missing-blobs",
            ReportName::MostTags { limit } => {
                params.limit = *limit;
                "most-tags"
            }
            ReportName::TopPulled { days, limit } => {
                (params.days, params.limit) = (*days, *limit);
                "top-pulled"
            }
            ReportName::VersionChecks { days, limit } => {
                (params.days, params.limit) = (*days, *limit);
                "version-checks"
            }
            ReportName::Pulls { days } => {
                params.days = *days;
                "pulls"
            }
            ReportName::Architectures { days } => {
                params.days = *days;
                "architectures"
            }
            ReportName::Actors => "actors",
            ReportName::History {
                tag,
                actor,
                since,
                limit,
            } => {
                params.tag.clone_from(tag);
                params.actor.clone_from(actor);
                params.since.clone_from(since);
                params.limit = *limit;
                "history"
            }
            ReportName::Deleted { since, limit } => {
                params.since.clone_from(since);
                params.limit = *limit;
                "deleted"
            }
        };
        (name, params)
    }

    /// Runs the report and renders it (a table of orphaned blobs ends with
    /// [`ORPHANED_BLOBS_NOTE`]).
    pub async fn execute(&self, connection: &mut PgConnection) -> anyhow::Result<String> {
        let (name, params) = self.params();
        let (report, filters) = Report::from_params(name, &params)?;
        let rows = run(connection, &report, &filters).await?;
        let mut output = render::rows(&rows, self.format)?;
        if matches!(report, Report::OrphanedBlobs { .. }) && self.format == Format::Table {
            output.push_str(ORPHANED_BLOBS_NOTE);
        }
        Ok(output)
    }
}

/// What a table of orphaned blobs cannot show, said under it.
pub const ORPHANED_BLOBS_NOTE: &str = "\nOnly blobs that events reported can be orphans: a registry's API cannot list blobs no \
manifest references, so `regstat sync` finds none. Blobs of repositories with manifests of \
unknown content: `regstat report undetermined-blobs`.\n";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        report: ReportArgs,
    }

    fn params(args: &[&str]) -> (&'static str, Params) {
        let cli = Cli::try_parse_from(std::iter::once("report").chain(args.iter().copied()))
            .expect("valid arguments");
        cli.report.params()
    }

    #[test]
    fn every_report_the_store_knows_is_a_subcommand() {
        for name in regstat_store::reports::NAMES {
            let args: Vec<&str> = match name {
                "stale" | "unpulled" => vec![name, "--days", "3"],
                "history" => vec![name, "--repository", "lab/app"],
                _ => vec![name],
            };
            let (parsed, params) = params(&args);
            assert_eq!(parsed, name);
            assert!(Report::from_params(parsed, &params).is_ok(), "{name}");
        }
    }

    #[test]
    fn flags_become_the_same_parameters_the_api_takes() {
        let (name, p) = params(&["top-pulled", "--days", "7", "--registry", "main"]);
        assert_eq!(name, "top-pulled");
        assert_eq!(
            (p.days, p.limit, p.registry.as_deref()),
            (Some(7), None, Some("main"))
        );
        let (report, _) = Report::from_params(name, &p).expect("a report");
        assert_eq!(report, Report::TopPulled { days: 7, limit: 20 });
    }
}
