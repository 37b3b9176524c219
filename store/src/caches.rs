//! Per-repository caches of what the reports and the console compute (migration
//! `20261202000009_repository_caches.sql` explains the scheme and why it misses no write).
//!
//! - [`mark_stale`], [`mark_pull_days_stale`]: every write of the model marks the repositories
//!   (and the days of pulls per platform) it touched, in its own transaction;
//! - [`refresh`], [`refresh_pull_days`]: the worker's refresher recomputes stale repositories'
//!   (and days') rows and unmarks them;
//!   [`refresh_registry_totals`] recomputes the registry-wide blob figures, which are "as of"
//!   the time it ran;
//! - readers (`report_images`, `repositories_now` and what is built on them) take cached rows
//!   for the rest and compute stale repositories from the model, so they are exact whether or
//!   not a refresher runs; it only makes them fast.

use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The row caches and the views they cache, per repository: images (one row per live tag),
/// blobs no live manifest references, and manifests referencing deleted blobs.
const ROW_CACHES: [(&str, &str); 3] = [
    ("image_rows", "images_live"),
    ("unreferenced_blob_rows", "unreferenced_blobs"),
    ("missing_blob_rows", "missing_blobs_live"),
];

/// Stale repositories one refresh takes (one transaction).
pub const REFRESH_BATCH: i64 = 100;

/// Marks `repositories` stale in the writer's transaction. An upsert rather than an insert
/// that ignores conflicts: it holds the mark's row lock until the writer commits, which is
/// what makes a refresher running at the same time wait for this write.
pub async fn mark_stale<'a>(
    tx: &mut Transaction<'_, Postgres>,
    repositories: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), sqlx::Error> {
    let (registries, names): (Vec<&str>, Vec<&str>) = repositories.into_iter().unzip();
    if registries.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.stale_repositories AS s (registry, repository, marked_at)
         SELECT registry, repository, now()
         FROM UNNEST($1::text[], $2::text[]) AS r(registry, repository)
         ON CONFLICT (registry, repository) DO UPDATE SET marked_at = EXCLUDED.marked_at",
    )
    .bind(registries)
    .bind(names)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks stale, in the writer's transaction (as [`mark_stale`] does, holding the marks' row
/// locks): the (repository, day)s of `days`, whose pulls change, and those on which a manifest
/// of `platforms` was pulled, whose platform the writer's content may decide. The writer
/// holds those manifests' platform locks, so the pulls this reads include every one committed
/// before it and any committed after it marks its own day.
pub async fn mark_pull_days_stale<'a>(
    tx: &mut Transaction<'_, Postgres>,
    days: impl IntoIterator<Item = (&'a str, &'a str, chrono::NaiveDate)>,
    platforms: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<(), sqlx::Error> {
    let mut registries = Vec::new();
    let mut repositories = Vec::new();
    let mut dates = Vec::new();
    for (registry, repository, day) in days {
        registries.push(registry);
        repositories.push(repository);
        dates.push(day);
    }
    let (mut by_registry, mut by_repository, mut by_digest) = (Vec::new(), Vec::new(), Vec::new());
    for (registry, repository, digest) in platforms {
        by_registry.push(registry);
        by_repository.push(repository);
        by_digest.push(digest);
    }
    if registries.is_empty() && by_digest.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.stale_pull_days AS s (registry, repository, day, marked_at)
         SELECT registry, repository, day, now() FROM (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[]) AS d(registry, repository, day)
             UNION
             SELECT p.registry, p.repository, p.day FROM regstat.pull_metrics p
             JOIN UNNEST($4::text[], $5::text[], $6::text[]) AS m(registry, repository, digest)
               ON p.registry = m.registry AND p.repository = m.repository
              AND p.digest = m.digest
         ) k
         ORDER BY registry, repository, day
         ON CONFLICT (registry, repository, day) DO UPDATE SET marked_at = EXCLUDED.marked_at",
    )
    .bind(registries)
    .bind(repositories)
    .bind(dates)
    .bind(by_registry)
    .bind(by_repository)
    .bind(by_digest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Recomputes the cached pulls per platform of up to `limit` stale (repository, day)s (the
/// longest stale first; those a writer holds are left for the next round) and unmarks them,
/// in one transaction. Returns how many were refreshed.
pub async fn refresh_pull_days(pool: &PgPool, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let taken: Vec<(String, String, chrono::NaiveDate)> = sqlx::query_as(
        "DELETE FROM regstat.stale_pull_days s
         USING (SELECT registry, repository, day FROM regstat.stale_pull_days
                ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED) t
         WHERE s.registry = t.registry AND s.repository = t.repository AND s.day = t.day
         RETURNING s.registry, s.repository, s.day",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let registries: Vec<&str> = taken.iter().map(|t| t.0.as_str()).collect();
    let repositories: Vec<&str> = taken.iter().map(|t| t.1.as_str()).collect();
    let days: Vec<chrono::NaiveDate> = taken.iter().map(|t| t.2).collect();
    sqlx::query(
        "DELETE FROM regstat.platform_pull_rows c
         USING UNNEST($1::text[], $2::text[], $3::date[]) AS k(registry, repository, day)
         WHERE c.registry = k.registry AND c.repository = k.repository AND c.day = k.day",
    )
    .bind(&registries)
    .bind(&repositories)
    .bind(&days)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO regstat.platform_pull_rows
             (registry, repository, day, os, architecture, variant, pulls)
         SELECT l.registry, l.repository, l.day, l.os, l.architecture, l.variant, l.pulls
         FROM UNNEST($1::text[], $2::text[], $3::date[]) AS k(registry, repository, day)
         CROSS JOIN LATERAL (SELECT * FROM regstat.platform_pulls_live v
                             WHERE v.registry = k.registry AND v.repository = k.repository
                               AND v.day = k.day
                             OFFSET 0) l",
    )
    .bind(&registries)
    .bind(&repositories)
    .bind(&days)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(taken.len())
}

/// Recomputes the cached rows of up to `limit` stale repositories (the longest stale first;
/// those a writer holds are left for the next round) and unmarks them, in one transaction.
/// Returns how many were refreshed.
pub async fn refresh(pool: &PgPool, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let taken: Vec<(String, String)> = sqlx::query_as(
        "DELETE FROM regstat.stale_repositories s
         USING (SELECT registry, repository FROM regstat.stale_repositories
                ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED) t
         WHERE s.registry = t.registry AND s.repository = t.repository
         RETURNING s.registry, s.repository",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let (registries, names): (Vec<&str>, Vec<&str>) = taken
        .iter()
        .map(|(registry, repository)| (registry.as_str(), repository.as_str()))
        .unzip();
    for (cache, live) in ROW_CACHES {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM regstat.{cache} c
             USING UNNEST($1::text[], $2::text[]) AS r(registry, repository)
             WHERE c.registry = r.registry AND c.repository = r.repository"
        )))
        .bind(&registries)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO regstat.{cache}
             SELECT l.* FROM UNNEST($1::text[], $2::text[]) AS r(registry, repository)
             CROSS JOIN LATERAL (SELECT * FROM regstat.{live} v
                                 WHERE v.registry = r.registry AND v.repository = r.repository
                                 OFFSET 0) l"
        )))
        .bind(&registries)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO regstat.repository_contents AS c (registry, repository, tags, manifests,
             blobs, blob_bytes, refreshed_at)
         SELECT r.registry, r.repository, l.tags, l.manifests, l.blobs, l.blob_bytes, now()
         FROM UNNEST($1::text[], $2::text[]) AS r(registry, repository)
         CROSS JOIN LATERAL regstat.contents_of(r.registry, r.repository) l
         ON CONFLICT (registry, repository) DO UPDATE SET
             tags = EXCLUDED.tags, manifests = EXCLUDED.manifests, blobs = EXCLUDED.blobs,
             blob_bytes = EXCLUDED.blob_bytes, refreshed_at = EXCLUDED.refreshed_at",
    )
    .bind(&registries)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(taken.len())
}

/// How often at most [`refresh_registry_totals`] recomputes a registry's totals while its
/// repositories change.
pub const REGISTRY_TOTALS_EVERY: Duration = Duration::from_secs(60);

/// Recomputes the registry-wide blob figures (`regstat.registry_contents`) of registries that
/// have none, or whose repositories were refreshed since and that are older than `every`.
/// One refresher at a time does it (the others skip it). Returns how many it recomputed.
pub async fn refresh_registry_totals(pool: &PgPool, every: Duration) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ours: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('regstat.registry_contents'))",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !ours {
        return Ok(0);
    }
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT c.registry FROM regstat.repository_contents c
         LEFT JOIN regstat.registry_contents g USING (registry)
         GROUP BY c.registry, g.refreshed_at
         HAVING g.refreshed_at IS NULL
             OR (max(c.refreshed_at) > g.refreshed_at
                 AND g.refreshed_at < now() - make_interval(secs => $1))",
    )
    .bind(every.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO regstat.registry_contents AS g (registry, blobs, blob_bytes, refreshed_at)
         SELECT r.registry, count(d.digest), COALESCE(sum(d.size), 0)::bigint, now()
         FROM UNNEST($1::text[]) AS r(registry)
         LEFT JOIN (SELECT DISTINCT ON (registry, digest) registry, digest, size
                    FROM regstat.live_blobs WHERE registry = ANY($1)
                    ORDER BY registry, digest) d USING (registry)
         GROUP BY r.registry
         ON CONFLICT (registry) DO UPDATE SET blobs = EXCLUDED.blobs,
             blob_bytes = EXCLUDED.blob_bytes, refreshed_at = EXCLUDED.refreshed_at",
    )
    .bind(&due)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due.len())
}

/// Refreshes until no repository is stale (or only ones a writer holds), then the registry
/// totals: a backlog at once. Returns the repositories refreshed.
pub async fn refresh_all(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let refreshed = refresh(pool, REFRESH_BATCH).await?;
        let days = refresh_pull_days(pool, REFRESH_BATCH * 10).await?;
        if refreshed == 0 && days == 0 {
            refresh_registry_totals(pool, Duration::ZERO).await?;
            return Ok(total);
        }
        total += refreshed;
    }
}

/// Repositories, and (repository, day)s of pulls, stale now.
pub async fn stale(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM regstat.stale_repositories),
                (SELECT count(*) FROM regstat.stale_pull_days)",
    )
    .fetch_one(pool)
    .await
}

/// The worker's refresher: refreshes stale repositories as they come, waiting `interval`
/// whenever none is left, until `stop`. A failure is logged and tried again after `interval`
/// (readers stay exact meanwhile, only slower).
pub async fn run_refresher(pool: PgPool, interval: Duration, stop: CancellationToken) {
    loop {
        let refreshed = async {
            let repositories = refresh(&pool, REFRESH_BATCH).await?;
            let days = refresh_pull_days(&pool, REFRESH_BATCH * 10).await?;
            if repositories + days == 0 {
                refresh_registry_totals(&pool, REGISTRY_TOTALS_EVERY).await?;
            }
            Ok::<_, sqlx::Error>(repositories + days)
        }
        .await;
        let wait = match refreshed {
            Ok(0) => interval,
            Ok(refreshed) => {
                tracing::debug!(refreshed, "repository caches refreshed");
                Duration::ZERO
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing the repository caches failed; trying again");
                interval
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
