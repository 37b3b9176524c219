//! Reading a repository's live state, and recording a sync: one transaction per repository,
//! one set-based upsert per table, rows in key order and tables in the order the model's
//! `apply` writes them (manifests, references, tags, digest tombstones), with the model's
//! merges: `GREATEST` for times, the newest observation for a tag's digest (ties: the
//! greater digest), the first known content. Nothing is read and written back, so workers
//! applying events at the same time lose nothing.

use super::diff::{Current, Observation, RepositoryDiff, Source};
use crate::db;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};

type Tx<'c> = Transaction<'c, Postgres>;
type Time = DateTime<Utc>;

/// Attempts of a repository's transaction when the database answers with a transient error
/// (a deadlock with a worker's batch, a restart).
const ATTEMPTS: usize = 3;

/// Repositories of `registry` with a live tag or manifest.
pub(super) async fn live_repositories(
    pool: &PgPool,
    registry: &str,
) -> Result<BTreeSet<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT repository FROM regstat.live_tags WHERE registry = $1
         UNION
         SELECT repository FROM regstat.live_manifests WHERE registry = $1",
    )
    .bind(registry)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A repository's live tags and manifests.
pub(super) async fn current(
    pool: &PgPool,
    registry: &str,
    repository: &str,
) -> Result<Current, sqlx::Error> {
    let tags: Vec<(String, String)> = sqlx::query_as(
        "SELECT tag, digest FROM regstat.live_tags WHERE registry = $1 AND repository = $2",
    )
    .bind(registry)
    .bind(repository)
    .fetch_all(pool)
    .await?;
    let manifests: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM regstat.live_manifests WHERE registry = $1 AND repository = $2",
    )
    .bind(registry)
    .bind(repository)
    .fetch_all(pool)
    .await?;
    Ok(Current {
        tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
        manifests: manifests.into_iter().collect(),
    })
}

/// Records what a sync of `repository` at `at` saw: the manifests and tags it found (seen at
/// `at`), and tombstones at `at` for the live tags and manifests the registry no longer has.
pub(super) async fn record(
    pool: &PgPool,
    registry: &str,
    repository: &str,
    at: Time,
    seen: &Observation,
    diff: &RepositoryDiff,
) -> Result<(), sqlx::Error> {
    let mut attempt = 1;
    loop {
        let result = async {
            let mut tx = pool.begin().await?;
            manifests(&mut tx, registry, repository, at, seen).await?;
            references(&mut tx, registry, repository, seen).await?;
            tags(&mut tx, registry, repository, at, seen, &diff.gone_tags).await?;
            digest_deletions(&mut tx, registry, repository, at, &seen.missing).await?;
            tx.commit().await
        }
        .await;
        match result {
            Err(error) if attempt < ATTEMPTS && db::is_transient(&error) => {
                tracing::debug!(%error, repository, attempt, "recording a sync; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt as u64)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether a seen manifest's content is written (it is new to this repository).
fn writes_content(source: Source) -> bool {
    matches!(source, Source::Cached | Source::Fetched)
}

async fn manifests(
    tx: &mut Tx<'_>,
    registry: &str,
    repository: &str,
    at: Time,
    seen: &Observation,
) -> Result<(), sqlx::Error> {
    if seen.manifests.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = seen.manifests.iter().collect();
    let content = |f: fn(&crate::model::Content) -> Option<&str>| {
        rows.iter()
            .map(|(_, s)| {
                s.content
                    .as_ref()
                    .filter(|_| writes_content(s.source))
                    .and_then(f)
            })
            .collect::<Vec<_>>()
    };
    let status: Vec<&str> = rows
        .iter()
        .map(|(_, s)| match &s.content {
            Some(c) if writes_content(s.source) => c.status.as_str(),
            _ => "unknown",
        })
        .collect();
    sqlx::query(
        "INSERT INTO regstat.manifests AS m (registry, repository, digest, media_type, size,
             seen_at, config_digest, os, architecture, variant, artifact_type, subject_digest,
             fetch_status)
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::int8[], $6::timestamptz[],
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[])
         ON CONFLICT (registry, repository, digest) DO UPDATE SET
             media_type = GREATEST(m.media_type, EXCLUDED.media_type),
             size = GREATEST(m.size, EXCLUDED.size),
             seen_at = GREATEST(m.seen_at, EXCLUDED.seen_at),
             config_digest = COALESCE(m.config_digest, EXCLUDED.config_digest),
             os = COALESCE(m.os, EXCLUDED.os),
             architecture = COALESCE(m.architecture, EXCLUDED.architecture),
             variant = COALESCE(m.variant, EXCLUDED.variant),
             artifact_type = COALESCE(m.artifact_type, EXCLUDED.artifact_type),
             subject_digest = COALESCE(m.subject_digest, EXCLUDED.subject_digest),
             fetch_status = CASE
                 WHEN regstat.fetch_rank(EXCLUDED.fetch_status) > regstat.fetch_rank(m.fetch_status)
                 THEN EXCLUDED.fetch_status ELSE m.fetch_status END",
    )
    .bind(registry)
    .bind(repository)
    .bind(rows.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(_, s)| s.media_type.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|(_, s)| s.size).collect::<Vec<_>>())
    .bind(vec![at; rows.len()])
    .bind(content(|c| c.config_digest.as_deref()))
    .bind(content(|c| c.os.as_deref()))
    .bind(content(|c| c.architecture.as_deref()))
    .bind(content(|c| c.variant.as_deref()))
    .bind(content(|c| c.artifact_type.as_deref()))
    .bind(content(|c| c.subject_digest.as_deref()))
    .bind(status)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The references of newly recorded content, merged like the model's (first known value).
async fn references(
    tx: &mut Tx<'_>,
    registry: &str,
    repository: &str,
    seen: &Observation,
) -> Result<(), sqlx::Error> {
    let rows: Vec<crate::model::ReferenceRow<'_>> = seen
        .manifests
        .iter()
        .filter(|(_, s)| writes_content(s.source))
        .filter_map(|(digest, s)| s.content.as_ref().map(|c| (digest, c)))
        .flat_map(|(digest, c)| {
            c.references
                .iter()
                .map(move |r| (registry, repository, digest.as_str(), r))
        })
        .collect();
    crate::model::upsert_references(tx, &rows).await
}

/// Listed tags seen at `at` naming their digest, and tombstones at `at` for `gone` ones: one
/// upsert in tag order.
async fn tags(
    tx: &mut Tx<'_>,
    registry: &str,
    repository: &str,
    at: Time,
    seen: &Observation,
    gone: &[String],
) -> Result<(), sqlx::Error> {
    // tag → (seen digest, deleted at)
    let mut rows: BTreeMap<&str, (Option<&str>, Option<Time>)> = seen
        .tags
        .iter()
        .map(|(tag, digest)| (tag.as_str(), (Some(digest.as_str()), None)))
        .collect();
    for tag in gone {
        rows.entry(tag.as_str()).or_insert((None, Some(at)));
    }
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.tags AS t (registry, repository, tag, seen_digest, seen_at,
             deleted_at)
         SELECT $1, $2, o.tag, o.digest, CASE WHEN o.digest IS NOT NULL THEN $3 END,
                o.deleted_at
         FROM UNNEST($4::text[], $5::text[], $6::timestamptz[]) AS o(tag, digest, deleted_at)
         ON CONFLICT (registry, repository, tag) DO UPDATE SET
             seen_digest = CASE
                 WHEN EXCLUDED.seen_at IS NOT NULL AND (t.seen_at IS NULL
                      OR (EXCLUDED.seen_at, EXCLUDED.seen_digest) > (t.seen_at, t.seen_digest))
                 THEN EXCLUDED.seen_digest ELSE t.seen_digest END,
             seen_at = GREATEST(t.seen_at, EXCLUDED.seen_at),
             deleted_at = GREATEST(t.deleted_at, EXCLUDED.deleted_at)",
    )
    .bind(registry)
    .bind(repository)
    .bind(at)
    .bind(rows.keys().copied().collect::<Vec<_>>())
    .bind(rows.values().map(|(d, _)| *d).collect::<Vec<_>>())
    .bind(rows.values().map(|(_, g)| *g).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Digest tombstones at `at`, merged like delete events (the newest wins).
async fn digest_deletions(
    tx: &mut Tx<'_>,
    registry: &str,
    repository: &str,
    at: Time,
    missing: &BTreeSet<String>,
) -> Result<(), sqlx::Error> {
    if missing.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO regstat.digest_deletions AS d (registry, repository, digest, deleted_at)
         SELECT $1, $2, digest, $3 FROM UNNEST($4::text[]) AS o(digest)
         ON CONFLICT (registry, repository, digest) DO UPDATE SET
             deleted_at = GREATEST(d.deleted_at, EXCLUDED.deleted_at)",
    )
    .bind(registry)
    .bind(repository)
    .bind(at)
    .bind(missing.iter().map(String::as_str).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
