//! Writing [`Changes`] with one set-based upsert per table.
//!
//! The SQL merges exactly as [`Changes`] coalesces: counts add up, first times take the
//! least, last times the greatest (`LEAST`/`GREATEST` ignore NULL), a tag follows its newest
//! push (and, apart, its newest sync observation) with ties broken by the greater digest,
//! content keeps its most informative source.

use super::changes::{Changes, TagRow};
use crate::db;
use regstat_shared::backoff::Policy;
use regstat_shared::content::{Content, Reference};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeMap;
use std::time::Duration;

type Tx<'c> = Transaction<'c, Postgres>;

/// Retries of a transaction of its own (see [`write`]) after a transient failure.
const WRITE_RETRIES: Policy =
    Policy::exponential(Duration::from_millis(100), Duration::from_secs(1)).with_retries(2);

/// Writes `changes` in a transaction of their own (a sync's observations of one repository),
/// trying again twice when the database answers with a transient error (a deadlock with a
/// worker's batch, a restart). The platform locks of the content it writes come first
/// (the model's `locks` module); rows are written in key order, tables in [`apply`]'s order,
/// and nothing is read and written back, so workers applying events at the same time lose
/// nothing.
pub async fn write(pool: &PgPool, changes: &Changes) -> Result<(), sqlx::Error> {
    WRITE_RETRIES
        .retry(
            || async {
                let mut tx = pool.begin().await?;
                let locks = changes
                    .platforms_decided()
                    .into_iter()
                    .map(|(registry, repository, digest)| {
                        super::locks::Lock::platform_decided(registry, repository, digest)
                    })
                    .collect();
                super::locks::take(&mut tx, locks).await?;
                apply(&mut tx, changes).await?;
                tx.commit().await
            },
            db::is_transient,
            |error, delay| {
                tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64, "writing changes; trying again");
            },
        )
        .await
}

/// Writes every change in the caller's transaction (the one that inserted the events into
/// the ledger, so an event's effects are applied exactly when it is recorded), which has taken
/// the locks the model's `locks` module names.
pub async fn apply(tx: &mut Tx<'_>, changes: &Changes) -> Result<(), sqlx::Error> {
    blobs(tx, changes).await?;
    manifests(tx, changes).await?;
    references(tx, changes).await?;
    tags(tx, changes).await?;
    digest_deletions(tx, changes).await?;
    deletions(tx, changes).await?;
    pull_metrics(tx, changes).await?;
    version_checks(tx, changes).await?;
    repositories(tx, changes).await?;
    repository_days(tx, changes).await?;
    registry_days(tx, changes).await?;
    actors(tx, changes).await?;
    // Last, so that the marks' row locks are held only until the commit that follows.
    crate::caches::mark_stale(tx, changes.repositories_touched()).await?;
    crate::caches::mark_pull_days_stale(
        tx,
        changes.pull_days_touched(),
        changes.platforms_decided(),
    )
    .await?;
    Ok(())
}

/// Collects one column of a map's entries.
fn column<'a, K: 'a, V: 'a, T>(
    map: impl IntoIterator<Item = (&'a K, &'a V)>,
    f: impl Fn(&'a K, &'a V) -> T,
) -> Vec<T> {
    map.into_iter().map(|(k, v)| f(k, v)).collect()
}

async fn blobs(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.blobs.is_empty() {
        return Ok(());
    }
    let m = &c.blobs;
    sqlx::query(
        "INSERT INTO regstat.blobs AS b (registry, repository, digest, size, first_pushed_at,
             last_pushed_at, via_push, via_mount, mounted_from, last_pulled_at, pull_count,
             pulled_bytes, system_pull_count)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[],
             $5::timestamptz[], $6::timestamptz[], $7::bool[], $8::bool[], $9::text[],
             $10::timestamptz[], $11::int8[], $12::int8[], $13::int8[])
         ON CONFLICT (registry, repository, digest) DO UPDATE SET
             size = GREATEST(b.size, EXCLUDED.size),
             first_pushed_at = LEAST(b.first_pushed_at, EXCLUDED.first_pushed_at),
             last_pushed_at = GREATEST(b.last_pushed_at, EXCLUDED.last_pushed_at),
             via_push = b.via_push OR EXCLUDED.via_push,
             via_mount = b.via_mount OR EXCLUDED.via_mount,
             mounted_from = GREATEST(b.mounted_from, EXCLUDED.mounted_from),
             last_pulled_at = GREATEST(b.last_pulled_at, EXCLUDED.last_pulled_at),
             pull_count = b.pull_count + EXCLUDED.pull_count,
             pulled_bytes = b.pulled_bytes + EXCLUDED.pulled_bytes,
             system_pull_count = b.system_pull_count + EXCLUDED.system_pull_count",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |_, v| v.size))
    .bind(column(m, |_, v| v.first_pushed_at))
    .bind(column(m, |_, v| v.last_pushed_at))
    .bind(column(m, |_, v| v.via_push))
    .bind(column(m, |_, v| v.via_mount))
    .bind(column(m, |_, v| v.mounted_from.as_deref()))
    .bind(column(m, |_, v| v.last_pulled_at))
    .bind(column(m, |_, v| v.pull_count))
    .bind(column(m, |_, v| v.pulled_bytes))
    .bind(column(m, |_, v| v.system_pull_count))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn manifests(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.manifests.is_empty() {
        return Ok(());
    }
    let m = &c.manifests;
    let content =
        |f: fn(&Content) -> Option<&str>| column(m, move |_, v| v.content.as_ref().and_then(f));
    sqlx::query(
        "INSERT INTO regstat.manifests AS m (registry, repository, digest, media_type, size,
             first_pushed_at, last_pushed_at, last_pulled_at, pull_count, system_pull_count,
             config_digest, os, architecture, variant, artifact_type, subject_digest,
             fetch_status, seen_at, first_seen_at, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
             $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::int8[],
             $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
             $17::text[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[])
         ON CONFLICT (registry, repository, digest) DO UPDATE SET
             media_type = GREATEST(m.media_type, EXCLUDED.media_type),
             size = GREATEST(m.size, EXCLUDED.size),
             first_pushed_at = LEAST(m.first_pushed_at, EXCLUDED.first_pushed_at),
             last_pushed_at = GREATEST(m.last_pushed_at, EXCLUDED.last_pushed_at),
             last_pulled_at = GREATEST(m.last_pulled_at, EXCLUDED.last_pulled_at),
             pull_count = m.pull_count + EXCLUDED.pull_count,
             system_pull_count = m.system_pull_count + EXCLUDED.system_pull_count,
             seen_at = GREATEST(m.seen_at, EXCLUDED.seen_at),
             first_seen_at = LEAST(m.first_seen_at, EXCLUDED.first_seen_at),
             config_digest = COALESCE(m.config_digest, EXCLUDED.config_digest),
             os = COALESCE(m.os, EXCLUDED.os),
             architecture = COALESCE(m.architecture, EXCLUDED.architecture),
             variant = COALESCE(m.variant, EXCLUDED.variant),
             artifact_type = COALESCE(m.artifact_type, EXCLUDED.artifact_type),
             subject_digest = COALESCE(m.subject_digest, EXCLUDED.subject_digest),
             created_at = COALESCE(m.created_at, EXCLUDED.created_at),
             fetch_status = CASE
                 WHEN regstat.fetch_rank(EXCLUDED.fetch_status) > regstat.fetch_rank(m.fetch_status)
                 THEN EXCLUDED.fetch_status ELSE m.fetch_status END",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |_, v| v.media_type.as_deref()))
    .bind(column(m, |_, v| v.size))
    .bind(column(m, |_, v| v.first_pushed_at))
    .bind(column(m, |_, v| v.last_pushed_at))
    .bind(column(m, |_, v| v.last_pulled_at))
    .bind(column(m, |_, v| v.pull_count))
    .bind(column(m, |_, v| v.system_pull_count))
    .bind(content(|c| c.config_digest.as_deref()))
    .bind(content(|c| c.os.as_deref()))
    .bind(content(|c| c.architecture.as_deref()))
    .bind(content(|c| c.variant.as_deref()))
    .bind(content(|c| c.artifact_type.as_deref()))
    .bind(content(|c| c.subject_digest.as_deref()))
    .bind(column(m, |_, v| {
        v.content.as_ref().map_or("unknown", |c| c.status.as_str())
    }))
    .bind(column(m, |_, v| v.seen_at))
    .bind(column(m, |_, v| v.first_seen_at))
    .bind(column(m, |_, v| v.content.as_ref().and_then(|c| c.created)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn references(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    let rows: Vec<ReferenceRow<'_>> = c
        .manifests
        .iter()
        .filter_map(|(k, v)| v.content.as_ref().map(|content| (k, content)))
        .flat_map(|(k, content)| {
            content
                .references
                .iter()
                .map(move |r| (k.0.as_str(), k.1.as_str(), k.2.as_str(), r))
        })
        .collect();
    upsert_references(tx, &rows).await
}

/// A reference with its manifest's key: registry, repository, manifest digest.
type ReferenceRow<'a> = (&'a str, &'a str, &'a str, &'a Reference);

/// Records references; content is immutable, so a known value is kept (platforms fill in
/// when a source that has them comes later).
async fn upsert_references(tx: &mut Tx<'_>, rows: &[ReferenceRow<'_>]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col =
        |f: fn(&Reference) -> Option<&str>| rows.iter().map(|(.., r)| f(r)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO regstat.manifest_references AS r (registry, repository, manifest_digest,
             role, position, digest, media_type, size, os, architecture, variant)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],
             $6::text[], $7::text[], $8::int8[], $9::text[], $10::text[], $11::text[])
         ON CONFLICT (registry, repository, manifest_digest, role, position) DO UPDATE SET
             media_type = COALESCE(r.media_type, EXCLUDED.media_type),
             size = COALESCE(r.size, EXCLUDED.size),
             os = COALESCE(r.os, EXCLUDED.os),
             architecture = COALESCE(r.architecture, EXCLUDED.architecture),
             variant = COALESCE(r.variant, EXCLUDED.variant)",
    )
    .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(.., r)| r.role.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(.., r)| r.position).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(.., r)| r.digest.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(col(|r| r.media_type.as_deref()))
    .bind(rows.iter().map(|(.., r)| r.size).collect::<Vec<_>>())
    .bind(col(|r| r.os.as_deref()))
    .bind(col(|r| r.architecture.as_deref()))
    .bind(col(|r| r.variant.as_deref()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn tags(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    // A pull credited and taken back in the same batch changes nothing.
    let m: BTreeMap<_, _> = c
        .tags
        .iter()
        .filter(|(_, v)| **v != TagRow::default())
        .collect();
    if m.is_empty() {
        return Ok(());
    }
    let m = &m;
    sqlx::query(
        "INSERT INTO regstat.tags AS t (registry, repository, tag, digest, pushed_at,
             first_pushed_at, deleted_at, last_pulled_at, pull_count, system_pull_count,
             seen_digest, seen_at, first_seen_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
             $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],
             $9::int8[], $10::int8[], $11::text[], $12::timestamptz[], $13::timestamptz[])
         ON CONFLICT (registry, repository, tag) DO UPDATE SET
             digest = CASE
                 WHEN EXCLUDED.pushed_at IS NOT NULL AND (t.pushed_at IS NULL
                      OR (EXCLUDED.pushed_at, EXCLUDED.digest) > (t.pushed_at, t.digest))
                 THEN EXCLUDED.digest ELSE t.digest END,
             pushed_at = GREATEST(t.pushed_at, EXCLUDED.pushed_at),
             seen_digest = CASE
                 WHEN EXCLUDED.seen_at IS NOT NULL AND (t.seen_at IS NULL
                      OR (EXCLUDED.seen_at, EXCLUDED.seen_digest) > (t.seen_at, t.seen_digest))
                 THEN EXCLUDED.seen_digest ELSE t.seen_digest END,
             seen_at = GREATEST(t.seen_at, EXCLUDED.seen_at),
             first_seen_at = LEAST(t.first_seen_at, EXCLUDED.first_seen_at),
             first_pushed_at = LEAST(t.first_pushed_at, EXCLUDED.first_pushed_at),
             deleted_at = GREATEST(t.deleted_at, EXCLUDED.deleted_at),
             last_pulled_at = GREATEST(t.last_pulled_at, EXCLUDED.last_pulled_at),
             pull_count = t.pull_count + EXCLUDED.pull_count,
             system_pull_count = t.system_pull_count + EXCLUDED.system_pull_count",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |_, v| v.push.as_ref().map(|(_, d)| d.as_str())))
    .bind(column(m, |_, v| v.push.as_ref().map(|(t, _)| *t)))
    .bind(column(m, |_, v| v.first_pushed_at))
    .bind(column(m, |_, v| v.deleted_at))
    .bind(column(m, |_, v| v.last_pulled_at))
    .bind(column(m, |_, v| v.pull_count))
    .bind(column(m, |_, v| v.system_pull_count))
    .bind(column(m, |_, v| v.seen.as_ref().map(|(_, d)| d.as_str())))
    .bind(column(m, |_, v| v.seen.as_ref().map(|(t, _)| *t)))
    .bind(column(m, |_, v| v.first_seen_at))
    .execute(&mut **tx)
    .await?;
    // A credit taken back (docs/MODEL.md, "Pulls and version checks") may leave a tag row that
    // only ever held it: removed, so the rows depend only on the final counts.
    let taken_back: Vec<_> = m
        .iter()
        .filter(|(_, v)| v.pull_count < 0 || v.system_pull_count < 0)
        .map(|(k, _)| *k)
        .collect();
    if !taken_back.is_empty() {
        sqlx::query(
            "DELETE FROM regstat.tags t
             USING UNNEST($1::text[], $2::text[], $3::text[]) AS k(registry, repository, tag)
             WHERE t.registry = k.registry AND t.repository = k.repository AND t.tag = k.tag
               AND t.digest IS NULL AND t.pushed_at IS NULL AND t.first_pushed_at IS NULL
               AND t.deleted_at IS NULL AND t.last_pulled_at IS NULL AND t.seen_at IS NULL
               AND t.pull_count = 0 AND t.system_pull_count = 0",
        )
        .bind(taken_back.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn digest_deletions(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.digest_deletions.is_empty() {
        return Ok(());
    }
    let m = &c.digest_deletions;
    sqlx::query(
        "INSERT INTO regstat.digest_deletions AS d (registry, repository, digest, deleted_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[])
         ON CONFLICT (registry, repository, digest) DO UPDATE SET
             deleted_at = GREATEST(d.deleted_at, EXCLUDED.deleted_at)",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |_, v| *v))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn deletions(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.deletions.is_empty() {
        return Ok(());
    }
    let m = &c.deletions;
    sqlx::query(
        "INSERT INTO regstat.deletions (event_id, registry, repository, digest, tag,
             deleted_at, actor, request_useragent, request_addr)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::timestamptz[], $7::text[], $8::text[], $9::text[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(column(m, |k, _| k.as_str()))
    .bind(column(m, |_, v| v.registry.as_str()))
    .bind(column(m, |_, v| v.repository.as_str()))
    .bind(column(m, |_, v| v.digest.as_deref()))
    .bind(column(m, |_, v| v.tag.as_deref()))
    .bind(column(m, |_, v| v.deleted_at))
    .bind(column(m, |_, v| v.actor.as_deref()))
    .bind(column(m, |_, v| v.useragent.as_deref()))
    .bind(column(m, |_, v| v.addr.as_deref()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn pull_metrics(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    // A pull credited to a tag in the same batch as its GET nets out to nothing for no tag.
    let m: BTreeMap<_, _> = c.pull_metrics.iter().filter(|(_, v)| **v != 0).collect();
    if m.is_empty() {
        return Ok(());
    }
    let m = &m;
    sqlx::query(
        "INSERT INTO regstat.pull_metrics AS p (day, registry, repository, tag, digest, system,
             pulls)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::bool[], $7::int8[])
         ON CONFLICT (day, registry, repository, tag, digest, system) DO UPDATE SET
             pulls = p.pulls + EXCLUDED.pulls",
    )
    .bind(column(m, |k, _| k.0))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |k, _| k.3.as_str()))
    .bind(column(m, |k, _| k.4.as_str()))
    .bind(column(m, |k, _| k.5))
    .bind(column(m, |_, v| *v))
    .execute(&mut **tx)
    .await?;
    // Pulls credited elsewhere since may leave rows at 0: removed, so the rows depend only on
    // the final counts (a 0 row would still show its day in `top_pulled`).
    let taken_back: Vec<_> = m
        .iter()
        .filter(|(_, v)| ***v < 0)
        .map(|(k, _)| *k)
        .collect();
    if !taken_back.is_empty() {
        sqlx::query(
            "DELETE FROM regstat.pull_metrics p
             USING UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
                   AS k(day, registry, repository, tag, digest, system)
             WHERE (p.day, p.registry, p.repository, p.tag, p.digest, p.system)
                 = (k.day, k.registry, k.repository, k.tag, k.digest, k.system)
               AND p.pulls = 0",
        )
        .bind(taken_back.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.3.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.4.as_str()).collect::<Vec<_>>())
        .bind(taken_back.iter().map(|k| k.5).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn version_checks(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.version_checks.is_empty() {
        return Ok(());
    }
    let m = &c.version_checks;
    sqlx::query(
        "INSERT INTO regstat.version_checks AS v (day, registry, repository, tag, digest, system,
             checks, last_checked_at)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::bool[], $7::int8[], $8::timestamptz[])
         ON CONFLICT (day, registry, repository, tag, digest, system) DO UPDATE SET
             checks = v.checks + EXCLUDED.checks,
             last_checked_at = GREATEST(v.last_checked_at, EXCLUDED.last_checked_at)",
    )
    .bind(column(m, |k, _| k.0))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |k, _| k.3.as_str()))
    .bind(column(m, |k, _| k.4.as_str()))
    .bind(column(m, |k, _| k.5))
    .bind(column(m, |_, v| v.0))
    .bind(column(m, |_, v| v.1))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn repositories(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.repositories.is_empty() {
        return Ok(());
    }
    let m = &c.repositories;
    sqlx::query(
        "INSERT INTO regstat.repository_stats AS s (registry, repository, pushes, pulls,
             system_pulls, first_push_at, last_push_at, first_pull_at, last_pull_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
             $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
         ON CONFLICT (registry, repository) DO UPDATE SET
             pushes = s.pushes + EXCLUDED.pushes,
             pulls = s.pulls + EXCLUDED.pulls,
             system_pulls = s.system_pulls + EXCLUDED.system_pulls,
             first_push_at = LEAST(s.first_push_at, EXCLUDED.first_push_at),
             last_push_at = GREATEST(s.last_push_at, EXCLUDED.last_push_at),
             first_pull_at = LEAST(s.first_pull_at, EXCLUDED.first_pull_at),
             last_pull_at = GREATEST(s.last_pull_at, EXCLUDED.last_pull_at)",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |_, v| v.pushes))
    .bind(column(m, |_, v| v.pulls))
    .bind(column(m, |_, v| v.system_pulls))
    .bind(column(m, |_, v| v.first_push_at))
    .bind(column(m, |_, v| v.last_push_at))
    .bind(column(m, |_, v| v.first_pull_at))
    .bind(column(m, |_, v| v.last_pull_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn repository_days(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.repository_days.is_empty() {
        return Ok(());
    }
    let m = &c.repository_days;
    sqlx::query(
        "INSERT INTO regstat.repository_pulls AS p (day, registry, repository, pulls,
             system_pulls)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::int8[], $5::int8[])
         ON CONFLICT (day, registry, repository) DO UPDATE SET
             pulls = p.pulls + EXCLUDED.pulls,
             system_pulls = p.system_pulls + EXCLUDED.system_pulls",
    )
    .bind(column(m, |k, _| k.0))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |_, v| v.0))
    .bind(column(m, |_, v| v.1))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The same image pull counts summed per day and registry.
async fn registry_days(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    let mut days: BTreeMap<(chrono::NaiveDate, &str), (i64, i64)> = BTreeMap::new();
    for ((day, registry, _), (pulls, system_pulls)) in &c.repository_days {
        let sums = days.entry((*day, registry.as_str())).or_default();
        sums.0 += pulls;
        sums.1 += system_pulls;
    }
    if days.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.registry_pulls AS p (day, registry, pulls, system_pulls)
         SELECT * FROM UNNEST($1::date[], $2::text[], $3::int8[], $4::int8[])
         ON CONFLICT (day, registry) DO UPDATE SET
             pulls = p.pulls + EXCLUDED.pulls,
             system_pulls = p.system_pulls + EXCLUDED.system_pulls",
    )
    .bind(column(&days, |k, _| k.0))
    .bind(column(&days, |k, _| k.1))
    .bind(column(&days, |_, v| v.0))
    .bind(column(&days, |_, v| v.1))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn actors(tx: &mut Tx<'_>, c: &Changes) -> Result<(), sqlx::Error> {
    if c.actors.is_empty() {
        return Ok(());
    }
    let m = &c.actors;
    sqlx::query(
        "INSERT INTO regstat.actors AS a (registry, repository, actor, action, events,
             first_at, last_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
             $6::timestamptz[], $7::timestamptz[])
         ON CONFLICT (registry, repository, actor, action) DO UPDATE SET
             events = a.events + EXCLUDED.events,
             first_at = LEAST(a.first_at, EXCLUDED.first_at),
             last_at = GREATEST(a.last_at, EXCLUDED.last_at)",
    )
    .bind(column(m, |k, _| k.0.as_str()))
    .bind(column(m, |k, _| k.1.as_str()))
    .bind(column(m, |k, _| k.2.as_str()))
    .bind(column(m, |k, _| k.3))
    .bind(column(m, |_, v| v.events))
    .bind(column(m, |_, v| v.first_at))
    .bind(column(m, |_, v| v.last_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
