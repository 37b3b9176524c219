//! Whole-ledger counts the benchmark checks its runs with (`regstat-bench`): how many events
//! are stored, how fast, how late, and whether each was recorded exactly once.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool};

/// Which events a count covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Every event.
    All,
    /// Events that are not manifest pushes: the ones that never wait for a registry callback.
    Pull,
}

impl Path {
    fn condition(self) -> &'static str {
        match self {
            Path::All => "true",
            Path::Pull => {
                "NOT (action = 'push' AND media_type IS DISTINCT FROM 'application/octet-stream')"
            }
        }
    }
}

/// Ledger rows of `path`.
pub async fn events(pool: &PgPool, path: Path) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM regstat.events WHERE {}",
        path.condition()
    )))
    .fetch_one(pool)
    .await
}

/// Ledger rows of `path` stored (committed) in `[from, to)`.
pub async fn stored_between(
    pool: &PgPool,
    path: Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM regstat.events WHERE stored_at >= $1 AND stored_at < $2 AND {}",
        path.condition()
    )))
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

/// Lag from the receiver's answer (`received_at`) to the row's transaction (`stored_at`) of
/// the events of `path` received since `since`: p50 and p99 in seconds (`None` without
/// events).
pub async fn lag(
    pool: &PgPool,
    path: Path,
    since: DateTime<Utc>,
) -> Result<(Option<f64>, Option<f64>), sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at)::float8),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at)::float8)
         FROM regstat.events WHERE received_at >= $1 AND {}",
        path.condition()
    )))
    .bind(since)
    .fetch_one(pool)
    .await
}

/// Ledger rows and distinct event ids (equal when every event was recorded once).
pub async fn rows_and_ids(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM regstat.events")
        .fetch_one(pool)
        .await
}

/// Image pulls (system ones included) and manifest pushes counted over every repository.
pub async fn pulls_and_pushes(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT coalesce(sum(pulls + system_pulls), 0)::int8, coalesce(sum(pushes), 0)::int8
         FROM regstat.repository_stats",
    )
    .fetch_one(pool)
    .await
}
