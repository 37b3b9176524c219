//! The reports behind `regstat report NAME`: each report is a view or function of schema
//! `regstat` (migration `..._reports.sql`), read as JSON rows so that table, JSON and CSV
//! output show the same data.
//!
//! JSON rows have the view's snake_case column names; times are RFC 3339 in UTC.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// Every report's name, as `regstat report NAME` and `/api/v1/reports/NAME` take it.
pub const NAMES: [&str; 16] = [
    "images",
    "repositories",
    "blobs",
    "stale",
    "unpulled",
    "orphaned-blobs",
    "undetermined-blobs",
    "missing-blobs",
    "most-tags",
    "top-pulled",
    "version-checks",
    "pulls",
    "architectures",
    "actors",
    "history",
    "deleted",
];

/// What a report can be asked, by name: the flags of `regstat report NAME` and the query
/// parameters of `/api/v1/reports/NAME`, one definition for both. Absent values take the
/// report's default ([`Report::from_params`]); a parameter the report does not take is
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A window or age in days (`stale`, `unpulled`: required, 0 or more; `top-pulled`,
    /// `version-checks`, `pulls`, `architectures`: default 30).
    pub days: Option<i32>,
    /// Most rows, the first in the report's order (`most-tags`, `top-pulled`,
    /// `version-checks`: default 20; `history`: 100; the others: all by default).
    pub limit: Option<i64>,
    /// Rows to skip first, in the report's order (0 by default): with `limit`, one page.
    pub offset: Option<i64>,
    /// `orphaned-blobs`: ignore blobs linked this recently, a duration such as `2h`
    /// (default).
    pub grace: Option<String>,
    /// Only this registry (canonical name).
    pub registry: Option<String>,
    /// Only repositories under this prefix (`lab` is `lab` and `lab/...`) or matching this
    /// glob (`lab/*-api`); for `history`, the repository (required).
    pub repository: Option<String>,
    /// `history`: only this tag.
    pub tag: Option<String>,
    /// `history`: only this actor.
    pub actor: Option<String>,
    /// `history`, `deleted`: only since, an RFC 3339 time or a duration ago (`7d`).
    pub since: Option<String>,
}

/// A parameter that cannot be used, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    /// The parameter (or `name` for the report's name).
    pub param: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ParamError {
    fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param,
            message: message.into(),
        }
    }
}

/// A duration such as `2h`, `30m` or `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 2h or 30m: {e}"))
}

/// An RFC 3339 time, or a duration ago (`7d`, `12h`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a duration like 7d"))?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}

/// One report with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Every live tag → digest, media type, platforms, size, pushed, last pulled, pulls.
    Images,
    /// Per repository: tags, manifests, pushes, pulls, first/last push and pull, actors.
    Repositories,
    /// Live blob count and bytes, per repository and per registry (each digest once); the
    /// registry's line is the refresher's count when it has one, as of `as_of` (empty: now).
    Blobs,
    /// Images older than `days` days: pushed, else first seen (`age_source`).
    Stale {
        /// Age threshold.
        days: i32,
    },
    /// Images not used for `days` days: the latest of pull, version check and push, else
    /// first seen (`last_used_source`).
    Unpulled {
        /// Age threshold.
        days: i32,
    },
    /// Blobs no live manifest references, linked more than `grace_secs` ago, in repositories
    /// whose live manifests all have known content.
    OrphanedBlobs {
        /// Grace window for layers whose manifest has not arrived yet.
        grace_secs: i64,
    },
    /// Blobs no manifest of known content references, in repositories where some live
    /// manifest's content is unknown: they may be used, so they are not orphans.
    UndeterminedBlobs,
    /// Live manifests referencing blobs their repository no longer has.
    MissingBlobs,
    /// Manifests with the most live tags.
    MostTags {
        /// Rows.
        limit: i64,
    },
    /// Tags by pulls in the last `days` days.
    TopPulled {
        /// Window.
        days: i32,
        /// Rows.
        limit: i64,
    },
    /// Tags by version checks (resolves no pull followed) in the last `days` days.
    VersionChecks {
        /// Window.
        days: i32,
        /// Rows.
        limit: i64,
    },
    /// Image pulls per day in the last `days` days.
    Pulls {
        /// Window.
        days: i32,
    },
    /// Image pulls per platform in the last `days` days.
    Architectures {
        /// Window.
        days: i32,
    },
    /// Who pushed and pulled what, how often, when last.
    Actors,
    /// Pushes, pulls, mounts and deletes from the ledger.
    History {
        /// Exact repository.
        repository: String,
        /// Only this tag.
        tag: Option<String>,
        /// Only this actor.
        actor: Option<String>,
        /// Only since then (RFC 3339).
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Rows.
        limit: i64,
    },
    /// The deletion audit trail.
    Deleted {
        /// Only since then.
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// What applies to every report: registry and repository filters (to the reports with those
/// columns) and a row limit (to the reports without one of their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Exact canonical registry name.
    pub registry: Option<String>,
    /// A repository prefix (`lab` matches `lab` and `lab/...`) or a glob (`lab/*-api`).
    pub repository: Option<String>,
    /// The first rows only, in the report's order (all by default).
    pub limit: Option<i64>,
    /// Rows skipped before them, in the report's order (none by default).
    pub offset: Option<i64>,
}

impl Report {
    /// The report called `name` with `params`, and the filters that apply to it.
    pub fn from_params(name: &str, params: &Params) -> Result<(Report, Filters), ParamError> {
        let days = |default: Option<i32>| {
            params
                .days
                .or(default)
                .ok_or_else(|| ParamError::new("days", "required"))
                .and_then(|days| {
                    if days > 0 {
                        Ok(days)
                    } else {
                        Err(ParamError::new("days", "must be above 0"))
                    }
                })
        };
        // An age: 0 is "as of now" (every image, by its age or last use).
        let age = || {
            params
                .days
                .ok_or_else(|| ParamError::new("days", "required"))
                .and_then(|days| {
                    if days >= 0 {
                        Ok(days)
                    } else {
                        Err(ParamError::new("days", "must be 0 or more"))
                    }
                })
        };
        let limit = |default: i64| match params.limit.unwrap_or(default) {
            limit if limit > 0 => Ok(limit),
            _ => Err(ParamError::new("limit", "must be above 0")),
        };
        let since = || {
            params
                .since
                .as_deref()
                .map(parse_since)
                .transpose()
                .map_err(|e| ParamError::new("since", e))
        };
        let report = match name {
            "images" => Report::Images,
            "repositories" => Report::Repositories,
            "blobs" => Report::Blobs,
            "stale" => Report::Stale { days: age()? },
            "unpulled" => Report::Unpulled { days: age()? },
            "orphaned-blobs" => {
                let grace = parse_duration(params.grace.as_deref().unwrap_or("2h"))
                    .map_err(|e| ParamError::new("grace", e))?;
                Report::OrphanedBlobs {
                    grace_secs: i64::try_from(grace.as_secs())
                        .map_err(|_| ParamError::new("grace", "too long"))?,
                }
            }
            "undetermined-blobs" => Report::UndeterminedBlobs,
            "missing-blobs" => Report::MissingBlobs,
            "most-tags" => Report::MostTags { limit: limit(20)? },
            "top-pulled" => Report::TopPulled {
                days: days(Some(30))?,
                limit: limit(20)?,
            },
            "version-checks" => Report::VersionChecks {
                days: days(Some(30))?,
                limit: limit(20)?,
            },
            "pulls" => Report::Pulls {
                days: days(Some(30))?,
            },
            "architectures" => Report::Architectures {
                days: days(Some(30))?,
            },
            "actors" => Report::Actors,
            "history" => Report::History {
                repository: params
                    .repository
                    .clone()
                    .ok_or_else(|| ParamError::new("repository", "history needs a repository"))?,
                tag: params.tag.clone(),
                actor: params.actor.clone(),
                since: since()?,
                limit: limit(100)?,
            },
            "deleted" => Report::Deleted { since: since()? },
            other => {
                return Err(ParamError::new(
                    "name",
                    format!(
                        "no report is called {other:?} (reports: {})",
                        NAMES.join(", ")
                    ),
                ));
            }
        };
        let filters = Filters {
            registry: params.registry.clone(),
            // History takes the repository as its exact subject, not as a filter.
            repository: match report {
                Report::History { .. } => None,
                _ => params.repository.clone(),
            },
            limit: match report.own_limit() {
                Some(_) => None,
                None => params.limit.map(|_| limit(1)).transpose()?,
            },
            offset: match params.offset {
                Some(offset) if offset < 0 => {
                    return Err(ParamError::new("offset", "must be 0 or more"));
                }
                offset => offset,
            },
        };
        Ok((report, filters))
    }
}

/// Runs a report and returns its rows as JSON objects, in the report's order.
pub async fn run(
    connection: &mut PgConnection,
    report: &Report,
    filters: &Filters,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT coalesce(json_agg(r ORDER BY ");
    query.push(order_by(report));
    query.push("), '[]'::json) FROM (");
    let limit = report.own_limit().or(filters.limit);
    // A top-N source reads only the rows the page shows, unless a filter drops some of them.
    let top = limit
        .filter(|_| filters.registry.is_none() && filters.repository.is_none())
        .map(|limit| limit.saturating_add(filters.offset.unwrap_or(0)));
    select(&mut query, report, filters, top);
    if limit.is_some() || filters.offset.is_some() {
        query.push(" ORDER BY ").push(order_by(report));
    }
    if let Some(limit) = limit {
        query.push(" LIMIT ").push_bind(limit);
    }
    if let Some(offset) = filters.offset {
        query.push(" OFFSET ").push_bind(offset);
    }
    query.push(") r");

    // Render times in UTC whatever the server's default.
    sqlx::query("SET TIME ZONE 'UTC'")
        .execute(&mut *connection)
        .await?;
    let rows: serde_json::Value = query
        .build_query_scalar()
        .fetch_one(&mut *connection)
        .await?;
    Ok(match rows {
        serde_json::Value::Array(rows) => rows,
        _ => Vec::new(),
    })
}

/// How many rows a report has, whatever its limit (what a page showing its first rows says
/// it leaves out).
pub async fn count(
    connection: &mut PgConnection,
    report: &Report,
    filters: &Filters,
) -> Result<i64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT count(*) FROM (");
    select(&mut query, report, filters, None);
    query.push(") r");
    query.build_query_scalar().fetch_one(connection).await
}

/// `SELECT * FROM` the report's source with its conditions and the filters, unordered; a top-N
/// report's source gives at least its first `top` rows in the report's order (all when
/// `None`).
fn select(
    query: &mut QueryBuilder<Postgres>,
    report: &Report,
    filters: &Filters,
    top: Option<i64>,
) {
    query.push("SELECT * FROM ");
    source(query, report, top);
    query.push(" WHERE true");
    conditions(query, report);
    if let Some(registry) = &filters.registry {
        query.push(" AND registry = ").push_bind(registry.clone());
    }
    if let (Some(pattern), true) = (&filters.repository, has_repository(report)) {
        push_repository_filter(query, pattern);
    }
}

fn source(query: &mut QueryBuilder<Postgres>, report: &Report, top: Option<i64>) {
    match report {
        Report::Images => {
            query.push("regstat.report_images");
        }
        Report::Repositories => {
            query.push("regstat.report_repositories");
        }
        Report::Blobs => {
            query.push("regstat.report_blobs");
        }
        Report::Stale { days } => {
            query
                .push("regstat.stale_images(")
                .push_bind(*days)
                .push(")");
        }
        Report::Unpulled { days } => {
            query
                .push("regstat.unpulled_images(")
                .push_bind(*days)
                .push(")");
        }
        Report::OrphanedBlobs { grace_secs } => {
            query
                .push("regstat.orphaned_blobs(make_interval(secs => ")
                .push_bind(*grace_secs as f64)
                .push("))");
        }
        Report::UndeterminedBlobs => {
            query.push("regstat.undetermined_blobs");
        }
        Report::MissingBlobs => {
            query.push("regstat.report_missing_blobs");
        }
        Report::MostTags { .. } => {
            query.push("regstat.most_tags(").push_bind(top).push(")");
        }
        Report::TopPulled { days, .. } => {
            query
                .push("regstat.top_pulled(")
                .push_bind(*days)
                .push(", ")
                .push_bind(top)
                .push(")");
        }
        Report::VersionChecks { days, .. } => {
            query
                .push("regstat.top_checked(")
                .push_bind(*days)
                .push(", ")
                .push_bind(top)
                .push(")");
        }
        Report::Pulls { days } => {
            query
                .push("regstat.pulls_per_day(")
                .push_bind(*days)
                .push(")");
        }
        Report::Architectures { days } => {
            query
                .push("regstat.pulls_by_platform(")
                .push_bind(*days)
                .push(")");
        }
        Report::Actors => {
            query.push("regstat.actors");
        }
        Report::History { .. } => {
            query.push("regstat.report_history");
        }
        Report::Deleted { .. } => {
            query.push("regstat.deletion_log");
        }
    }
}

/// Conditions that belong to a report's own parameters.
fn conditions(query: &mut QueryBuilder<Postgres>, report: &Report) {
    match report {
        Report::History {
            repository,
            tag,
            actor,
            since,
            ..
        } => {
            query
                .push(" AND repository = ")
                .push_bind(repository.clone());
            if let Some(tag) = tag {
                query.push(" AND tag = ").push_bind(tag.clone());
            }
            if let Some(actor) = actor {
                query.push(" AND actor = ").push_bind(actor.clone());
            }
            if let Some(since) = since {
                query.push(" AND occurred_at >= ").push_bind(*since);
            }
        }
        Report::Deleted { since: Some(since) } => {
            query.push(" AND deleted_at >= ").push_bind(*since);
        }
        _ => {}
    }
}

fn order_by(report: &Report) -> &'static str {
    match report {
        Report::Images | Report::Stale { .. } | Report::Unpulled { .. } => {
            "registry, repository, tag"
        }
        Report::Repositories | Report::Blobs => "registry, repository NULLS FIRST",
        Report::OrphanedBlobs { .. } | Report::UndeterminedBlobs => {
            "registry, repository, last_pushed_at"
        }
        Report::MissingBlobs => "registry, repository, manifest_digest, blob_digest",
        Report::MostTags { .. } => "tags DESC, registry, repository, digest",
        Report::TopPulled { .. } => "pulls DESC, registry, repository, tag",
        Report::VersionChecks { .. } => "checks DESC, registry, repository, tag, digest",
        Report::Pulls { .. } => "day, registry",
        Report::Architectures { .. } => "pulls DESC, registry, architecture",
        Report::Actors => "registry, repository, actor, action",
        Report::History { .. } => "occurred_at DESC, event_id",
        Report::Deleted { .. } => "deleted_at DESC, event_id",
    }
}

impl Report {
    /// The limit the report has of its own (a default, or the `limit` parameter); `None`
    /// for the reports that have every row unless [`Filters::limit`] says otherwise.
    pub fn own_limit(&self) -> Option<i64> {
        match self {
            Report::MostTags { limit }
            | Report::TopPulled { limit, .. }
            | Report::VersionChecks { limit, .. }
            | Report::History { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}

/// Whether the report's rows have a `repository` column to filter on.
fn has_repository(report: &Report) -> bool {
    !matches!(
        report,
        Report::Pulls { .. } | Report::Architectures { .. } | Report::History { .. }
    )
}

/// `text` with the characters special to `LIKE` (`\\`, `%`, `_`) escaped.
pub(crate) fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `lab` matches `lab` and everything under `lab/`; `*` and `?` make it a glob.
pub(crate) fn push_repository_filter(query: &mut QueryBuilder<Postgres>, pattern: &str) {
    let escaped = like_escaped(pattern);
    if pattern.contains(['*', '?']) {
        let like = escaped.replace('*', "%").replace('?', "_");
        query.push(" AND repository LIKE ").push_bind(like);
    } else {
        query
            .push(" AND (repository = ")
            .push_bind(pattern.to_owned())
            .push(" OR repository LIKE ")
            .push_bind(format!("{escaped}/%"))
            .push(")");
    }
}
