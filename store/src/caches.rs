//! Per-repository caches of what the reports and the console compute (migration
//! `20261202000009_repository_caches.sql` explains the scheme and why it misses no write).
//!
//! - [`mark_stale`], [`mark_pull_days_stale`]: every write of the model marks the repositories
//!   (and the days of pulls per platform) it touched, in its own transaction;
//! - [`run_refresher`] (the worker's) and [`refresh_all`] recompute the rows of marks stale for
//!   a while from one snapshot, then delete the marks no write has renewed since;
//!   [`refresh_registry_totals`] recomputes the registry-wide blob figures, which are "as of"
//!   the time it ran; [`roll_over_windows`] marks the repositories whose pulls and version
//!   checks per tag and pulls per platform over the windows ending today were cached on an
//!   earlier day (migration `20261203000013_pull_windows.sql`);
//! - readers (`report_images`, `repositories_now`, `pulls_by_platform`, `top_pulled`,
//!   `top_checked`, `most_tags` and what is built on them) take cached rows for the rest and
//!   compute stale keys from the model, so they are exact whether or not a refresher runs; it
//!   only makes them fast.

use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

type Tx<'c> = Transaction<'c, Postgres>;

/// The row caches and the views they cache, per repository: images (one row per live tag),
/// each digest's tags (most-tags),
/// blobs no live manifest references (orphaned, or undetermined where some live manifest's
/// content is unknown), manifests referencing deleted blobs, each tag's pulls
/// and version checks and each platform's image pulls over the windows ending today
/// (`windows_as_of`, see [`roll_over_windows`]).
const ROW_CACHES: [(&str, &str); 8] = [
    ("image_rows", "images_live"),
    ("digest_tag_rows", "digest_tags_live"),
    ("unreferenced_blob_rows", "unreferenced_blobs"),
    ("undetermined_blob_rows", "undetermined_blobs_live"),
    ("missing_blob_rows", "missing_blobs_live"),
    ("tag_pull_window_rows", "tag_pull_windows_live"),
    ("tag_check_window_rows", "tag_check_windows_live"),
    ("platform_pull_window_rows", "platform_pull_windows_live"),
];

/// Stale repositories one refresh takes (one transaction); ten times as many days.
pub const REFRESH_BATCH: i64 = 100;

/// Marks `repositories` stale in the writer's transaction, each with a new version. An
/// upsert, so it holds the mark's row lock until the writer commits: a refresher deleting the
/// mark meanwhile waits, then sees the new version and leaves the mark.
pub async fn mark_stale<'a>(
    tx: &mut Tx<'_>,
    repositories: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), sqlx::Error> {
    let (registries, names): (Vec<&str>, Vec<&str>) = repositories.into_iter().unzip();
    if registries.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.stale_repositories AS s (registry, repository, marked_at, version)
         SELECT registry, repository, now(), nextval('regstat.stale_marks')
         FROM UNNEST($1::text[], $2::text[]) AS r(registry, repository)
         ON CONFLICT (registry, repository) DO UPDATE SET version = EXCLUDED.version",
    )
    .bind(registries)
    .bind(names)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks stale, in the writer's transaction (as [`mark_stale`] does): the (repository, day)s
/// of `days`, whose pulls change, and those on which a manifest of `platforms` was pulled,
/// whose platform the writer's content may decide. The writer holds those manifests' platform
/// locks ([`crate::model`]'s `locks`), so the pulls this reads include every one committed
/// before it, and one committed after it marks its own day.
pub async fn mark_pull_days_stale<'a>(
    tx: &mut Tx<'_>,
    days: impl IntoIterator<Item = (&'a str, &'a str, NaiveDate)>,
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
        "INSERT INTO regstat.stale_pull_days AS s (registry, repository, day, marked_at, version)
         SELECT registry, repository, day, now(), nextval('regstat.stale_marks') FROM (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[]) AS d(registry, repository, day)
             UNION
             SELECT p.registry, p.repository, p.day FROM regstat.pull_metrics p
             JOIN UNNEST($4::text[], $5::text[], $6::text[]) AS m(registry, repository, digest)
               ON p.registry = m.registry AND p.repository = m.repository
              AND p.digest = m.digest
         ) k
         ORDER BY registry, repository, day
         ON CONFLICT (registry, repository, day) DO UPDATE SET version = EXCLUDED.version",
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

/// Starts a refresh: a REPEATABLE READ transaction (one snapshot for the marks' versions and
/// the rows computed from the model).
async fn begin_refresh(pool: &PgPool) -> Result<Tx<'static>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Which marks a pass of the refresher takes.
struct Due {
    /// Marked at least this long ago (the first mark since the last refresh).
    min_age: Duration,
    /// With a version no newer than this, the newest when the pass began: a mark renewed by a
    /// write during the pass waits for the next one, so a pass ends even under constant writes.
    through_version: i64,
}

impl Due {
    /// Marks stale for at least `min_age`, as of now.
    async fn now(pool: &PgPool, min_age: Duration) -> Result<Self, sqlx::Error> {
        let through_version = sqlx::query_scalar("SELECT last_value FROM regstat.stale_marks")
            .fetch_one(pool)
            .await?;
        Ok(Self {
            min_age,
            through_version,
        })
    }
}

/// Recomputes the cached rows of up to `limit` `due` repositories (the longest stale first;
/// one another refresher is on is left to it), then deletes the marks no write has renewed
/// since. Returns how many were recomputed.
async fn refresh(pool: &PgPool, limit: i64, due: &Due) -> Result<usize, sqlx::Error> {
    let mut tx = begin_refresh(pool).await?;
    let taken: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT registry, repository, version FROM (
             SELECT registry, repository, version FROM regstat.stale_repositories
             WHERE marked_at <= now() - make_interval(secs => $2) AND version <= $3
             ORDER BY marked_at LIMIT $1) s
         WHERE pg_try_advisory_xact_lock(
             hashtextextended('refresh' || chr(31) || registry || chr(31) || repository, 0))",
    )
    .bind(limit)
    .bind(due.min_age.as_secs_f64())
    .bind(due.through_version)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let registries: Vec<&str> = taken.iter().map(|t| t.0.as_str()).collect();
    let names: Vec<&str> = taken.iter().map(|t| t.1.as_str()).collect();
    let versions: Vec<i64> = taken.iter().map(|t| t.2).collect();
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
             blobs, blob_bytes, refreshed_at, windows_as_of, pulls_30d)
         SELECT r.registry, r.repository, l.tags, l.manifests, l.blobs, l.blob_bytes, now(),
                (now() AT TIME ZONE 'UTC')::date,
                (SELECT COALESCE(sum(p.pulls), 0)::bigint FROM regstat.repository_pulls p
                 WHERE p.registry = r.registry AND p.repository = r.repository
                   AND p.day > (now() AT TIME ZONE 'UTC')::date - 30)
         FROM UNNEST($1::text[], $2::text[]) AS r(registry, repository)
         CROSS JOIN LATERAL regstat.contents_of(r.registry, r.repository) l
         ON CONFLICT (registry, repository) DO UPDATE SET
             tags = EXCLUDED.tags, manifests = EXCLUDED.manifests, blobs = EXCLUDED.blobs,
             blob_bytes = EXCLUDED.blob_bytes, refreshed_at = EXCLUDED.refreshed_at,
             windows_as_of = EXCLUDED.windows_as_of, pulls_30d = EXCLUDED.pulls_30d",
    )
    .bind(&registries)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query(
        // Locked in key order, as writers lock marks, so the two never wait in a cycle.
        "WITH unchanged AS (
             SELECT s.ctid FROM regstat.stale_repositories s
             JOIN UNNEST($1::text[], $2::text[], $3::int8[]) AS k(registry, repository, version)
               ON s.registry = k.registry AND s.repository = k.repository
              AND s.version = k.version
             ORDER BY s.registry, s.repository
             FOR UPDATE OF s)
         DELETE FROM regstat.stale_repositories WHERE ctid IN (SELECT ctid FROM unchanged)",
    )
    .bind(&registries)
    .bind(&names)
    .bind(&versions)
    .execute(pool)
    .await?;
    Ok(taken.len())
}

/// [`refresh`] for the cached pulls per platform: up to `limit` `due` (repository, day)s.
async fn refresh_pull_days(pool: &PgPool, limit: i64, due: &Due) -> Result<usize, sqlx::Error> {
    let mut tx = begin_refresh(pool).await?;
    let taken: Vec<(String, String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT registry, repository, day, version FROM (
             SELECT registry, repository, day, version FROM regstat.stale_pull_days
             WHERE marked_at <= now() - make_interval(secs => $2) AND version <= $3
             ORDER BY marked_at LIMIT $1) s
         WHERE pg_try_advisory_xact_lock(hashtextextended(
             'refresh' || chr(31) || registry || chr(31) || repository || chr(31) || day, 0))",
    )
    .bind(limit)
    .bind(due.min_age.as_secs_f64())
    .bind(due.through_version)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(0);
    }
    let registries: Vec<&str> = taken.iter().map(|t| t.0.as_str()).collect();
    let repositories: Vec<&str> = taken.iter().map(|t| t.1.as_str()).collect();
    let days: Vec<NaiveDate> = taken.iter().map(|t| t.2).collect();
    let versions: Vec<i64> = taken.iter().map(|t| t.3).collect();
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
    sqlx::query(
        "WITH unchanged AS (
             SELECT s.ctid FROM regstat.stale_pull_days s
             JOIN UNNEST($1::text[], $2::text[], $3::date[], $4::int8[])
                 AS k(registry, repository, day, version)
               ON s.registry = k.registry AND s.repository = k.repository AND s.day = k.day
              AND s.version = k.version
             ORDER BY s.registry, s.repository, s.day
             FOR UPDATE OF s)
         DELETE FROM regstat.stale_pull_days WHERE ctid IN (SELECT ctid FROM unchanged)",
    )
    .bind(&registries)
    .bind(&repositories)
    .bind(&days)
    .bind(&versions)
    .execute(pool)
    .await?;
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

/// The tables the caches, their readers and the workers' writes plan queries on. A worker's
/// connection keeps a generic plan of each statement it runs often, made from the statistics
/// of that moment: the stored requests a batch of pulls looks up and reclassifies
/// (`manifest_requests`, see `model::pulls`) were scanned whole, batch after batch, by a plan
/// made while the table was nearly empty. Analyzing a table replans the statements on it.
const PLANNED_TABLES: [&str; 22] = [
    "manifest_requests",
    "tags",
    "manifests",
    "manifest_references",
    "blobs",
    "digest_deletions",
    "pull_metrics",
    "version_checks",
    "repository_stats",
    "actors",
    "stale_repositories",
    "stale_pull_days",
    "image_rows",
    "repository_contents",
    "unreferenced_blob_rows",
    "undetermined_blob_rows",
    "missing_blob_rows",
    "platform_pull_rows",
    "registry_contents",
    "tag_pull_window_rows",
    "tag_check_window_rows",
    "platform_pull_window_rows",
];

/// Analyzes the tables of `PLANNED_TABLES` changed by more than a fifth of their rows (and
/// 500) since their statistics were taken, and returns their names. With autovacuum on (as it
/// should be) it finds none, since autovacuum analyzes after a tenth; with autovacuum off, the
/// per-key plans of the caches would turn into scans of whole tables as they grow from empty,
/// so the refresher keeps the statistics they need.
pub async fn analyze_if_stale(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables
         WHERE schemaname = 'regstat' AND relname = ANY($1)
           AND n_mod_since_analyze > GREATEST(500, n_live_tup / 5)
         ORDER BY relname",
    )
    .bind(PLANNED_TABLES)
    .fetch_all(pool)
    .await?;
    for table in &stale {
        // A name of PLANNED_TABLES, as the query above only returns those.
        sqlx::query(AssertSqlSafe(format!("ANALYZE regstat.{table}")))
            .execute(pool)
            .await?;
    }
    Ok(stale)
}

/// Refreshes every stale repository and (repository, day), then the registry totals,
/// whatever their age: a backlog at once (as the benchmark and tests need). Returns the
/// repositories refreshed.
pub async fn refresh_all(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let repositories = refresh_stale(pool, Duration::ZERO).await?;
    refresh_registry_totals(pool, Duration::ZERO).await?;
    Ok(repositories)
}

/// Moves the cached window sums (pulls and version checks per tag, image pulls per platform,
/// over the 7, 30, 90 and 365 days ending today, UTC) to a new day: a repository whose windows were computed on an
/// earlier day (or never) is marked stale, so that the refresh recomputes it, unless it had
/// no row in any window (a day passing adds none), whose day is simply moved on. Readers
/// compute the windows of a repository from the model until then. Returns the repositories
/// marked stale.
pub async fn roll_over_windows(pool: &PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE regstat.repository_contents c SET windows_as_of = (now() AT TIME ZONE 'UTC')::date
         WHERE c.windows_as_of < (now() AT TIME ZONE 'UTC')::date
           AND NOT EXISTS (SELECT 1 FROM regstat.tag_pull_window_rows w
                           WHERE w.registry = c.registry AND w.repository = c.repository)
           AND NOT EXISTS (SELECT 1 FROM regstat.tag_check_window_rows w
                           WHERE w.registry = c.registry AND w.repository = c.repository)
           AND NOT EXISTS (SELECT 1 FROM regstat.platform_pull_window_rows w
                           WHERE w.registry = c.registry AND w.repository = c.repository)",
    )
    .execute(pool)
    .await?;
    let marked = sqlx::query(
        // In key order, as writers take marks.
        "INSERT INTO regstat.stale_repositories (registry, repository, marked_at, version)
         SELECT registry, repository, now(), nextval('regstat.stale_marks')
         FROM (SELECT registry, repository FROM regstat.repository_contents
               WHERE windows_as_of IS NULL
                  OR windows_as_of < (now() AT TIME ZONE 'UTC')::date
               ORDER BY registry, repository) r
         ON CONFLICT (registry, repository) DO NOTHING",
    )
    .execute(pool)
    .await?;
    Ok(marked.rows_affected())
}

/// One pass of the refresher: windows of a past day marked stale ([`roll_over_windows`]),
/// then repositories, then (repository, day)s, stale for at least `min_age`, batch after
/// batch until none is left. Returns the repositories refreshed.
async fn refresh_stale(pool: &PgPool, min_age: Duration) -> Result<usize, sqlx::Error> {
    roll_over_windows(pool).await?;
    let due = Due::now(pool, min_age).await?;
    let mut repositories = 0;
    loop {
        match refresh(pool, REFRESH_BATCH, &due).await? {
            0 => break,
            refreshed => repositories += refreshed,
        }
    }
    while refresh_pull_days(pool, REFRESH_BATCH * 10, &due).await? > 0 {}
    Ok(repositories)
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

/// The worker's refresher, until `stop`. One worker's at a time makes a pass: it analyzes
/// tables whose statistics lag far behind ([`analyze_if_stale`], a look at
/// `pg_stat_user_tables` when autovacuum keeps up), refreshes what has been stale for at least
/// `interval` (so a repository written all the time is recomputed at most once per pass, and
/// read from the model in between) and the registry totals when due; then it waits `interval`
/// or `PAUSE_PER_PASS` times as long as the pass took. A failure is logged and tried at the
/// next pass (readers stay exact meanwhile, only slower).
pub async fn run_refresher(pool: PgPool, interval: Duration, stop: CancellationToken) {
    loop {
        let started = std::time::Instant::now();
        match refresher_pass(&pool, interval).await {
            Ok(Some(0) | None) => {}
            Ok(Some(refreshed)) => tracing::debug!(refreshed, "repository caches refreshed"),
            // Another refresher recomputed the same key at the same time: the next pass.
            Err(error) if crate::db::is_transient(&error) => {
                tracing::debug!(%error, "refreshing the repository caches; trying again");
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing the repository caches failed; trying again");
            }
        }
        let pause = interval.max(started.elapsed() * PAUSE_PER_PASS);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// After a pass, the refresher waits this many times as long as the pass took (at least
/// `worker.cache_refresh_ms`): under a heavy write load, when every repository is stale again
/// within the interval, it takes at most a fifth of one connection's time, and readers
/// compute what is stale meanwhile.
const PAUSE_PER_PASS: u32 = 4;

/// One pass of the refresher, if no other worker's refresher is in one (a session advisory
/// lock): statistics, stale keys, registry totals. Returns the repositories refreshed.
async fn refresher_pass(pool: &PgPool, interval: Duration) -> Result<Option<usize>, sqlx::Error> {
    let mut session = pool.acquire().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('regstat.caches.refresh'))")
            .fetch_one(&mut *session)
            .await?;
    if !ours {
        return Ok(None);
    }
    let pass = async {
        let analyzed = analyze_if_stale(pool).await?;
        if !analyzed.is_empty() {
            tracing::info!(
                tables = analyzed.join(","),
                "analyzed tables whose statistics were stale (is autovacuum off?)"
            );
        }
        let refreshed = refresh_stale(pool, interval).await?;
        refresh_registry_totals(pool, REGISTRY_TOTALS_EVERY).await?;
        Ok(refreshed)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('regstat.caches.refresh'))")
        .execute(&mut *session)
        .await?;
    pass.map(Some)
}
