//! Per-repository caches of what the reports and the console compute (migration
//! `20261202000009_repository_caches.sql` explains the scheme and why it misses no write).
//!
//! - [`mark_stale`]: every write of the model marks the repositories it touched, in its own
//!   transaction;
//! - [`refresh`]: the worker's refresher recomputes stale repositories' rows and unmarks them;
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
                                 WHERE v.registry = r.registry AND v.repository = r.repository) l"
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

/// Refreshes until no repository is stale (or only ones a writer holds): a backlog at once.
pub async fn refresh_all(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let refreshed = refresh(pool, REFRESH_BATCH).await?;
        if refreshed == 0 {
            return Ok(total);
        }
        total += refreshed;
    }
}

/// Repositories stale now.
pub async fn stale(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM regstat.stale_repositories")
        .fetch_one(pool)
        .await
}

/// The worker's refresher: refreshes stale repositories as they come, waiting `interval`
/// whenever none is left, until `stop`. A failure is logged and tried again after `interval`
/// (readers stay exact meanwhile, only slower).
pub async fn run_refresher(pool: PgPool, interval: Duration, stop: CancellationToken) {
    loop {
        let wait = match refresh(&pool, REFRESH_BATCH).await {
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
