//! What a plan decides about, read from the model: each repository's live tags (with their
//! push, last use and age, as the images report computes them) and its live manifests (with an
//! index's children and a referrer's subject).

use super::decide::{ManifestState, RepositoryState, TagState};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::BTreeMap;

/// Index media types (OCI and Docker).
const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(sqlx::FromRow)]
struct TagRow {
    registry: String,
    repository: String,
    tag: String,
    digest: String,
    pushed_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    age_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ManifestRow {
    registry: String,
    repository: String,
    digest: String,
    is_index: bool,
    children: Vec<String>,
    subject: Option<String>,
    age_at: Option<DateTime<Utc>>,
    blobs: Vec<String>,
    blob_sizes: Vec<Option<i64>>,
}

/// Every repository of `registry` (all registries when `None`) that has live tags or
/// manifests, in name order.
pub async fn repositories(
    pool: &PgPool,
    registry: Option<&str>,
) -> Result<Vec<RepositoryState>, sqlx::Error> {
    let tags: Vec<TagRow> = sqlx::query_as(
        "SELECT registry, repository, tag, digest, pushed_at, last_used_at, age_at
         FROM regstat.report_images
         WHERE $1::text IS NULL OR registry = $1
         ORDER BY registry, repository, tag",
    )
    .bind(registry)
    .fetch_all(pool)
    .await?;
    // A manifest's age: its newest push, else when it was built, else when regstat first saw
    // it (as a tag's, docs/MODEL.md "Ages and last use").
    let manifests: Vec<ManifestRow> = sqlx::query_as(
        "SELECT m.registry, m.repository, m.digest,
                (m.media_type = ANY($2) OR bool_or(r.role = 'manifest')) IS TRUE AS is_index,
                COALESCE(array_agg(r.digest ORDER BY r.position)
                         FILTER (WHERE r.role = 'manifest'), '{}') AS children,
                min(r.digest) FILTER (WHERE r.role = 'subject') AS subject,
                COALESCE(array_agg(r.digest ORDER BY r.role, r.position)
                         FILTER (WHERE r.role IN ('config', 'layer')), '{}') AS blobs,
                COALESCE(array_agg(r.size ORDER BY r.role, r.position)
                         FILTER (WHERE r.role IN ('config', 'layer')), '{}') AS blob_sizes,
                COALESCE(m.last_pushed_at, x.created_at,
                         LEAST(m.first_pushed_at, x.first_seen_at)) AS age_at
         FROM regstat.live_manifests m
         -- live_manifests predates these columns (a view's * is expanded when it is made).
         JOIN regstat.manifests x USING (registry, repository, digest)
         LEFT JOIN regstat.manifest_references r
           ON r.registry = m.registry AND r.repository = m.repository
          AND r.manifest_digest = m.digest
         WHERE $1::text IS NULL OR m.registry = $1
         GROUP BY m.registry, m.repository, m.digest, m.media_type, m.last_pushed_at,
                  x.created_at, m.first_pushed_at, x.first_seen_at
         ORDER BY m.registry, m.repository, m.digest",
    )
    .bind(registry)
    .bind(&INDEX_MEDIA_TYPES[..])
    .fetch_all(pool)
    .await?;

    let mut by_key: BTreeMap<(String, String), RepositoryState> = BTreeMap::new();
    for row in tags {
        by_key
            .entry((row.registry.clone(), row.repository.clone()))
            .or_insert_with(|| new_state(&row.registry, &row.repository))
            .tags
            .push(TagState {
                tag: row.tag,
                digest: row.digest,
                pushed_at: row.pushed_at,
                last_used_at: row.last_used_at,
                age_at: row.age_at,
            });
    }
    for row in manifests {
        by_key
            .entry((row.registry.clone(), row.repository.clone()))
            .or_insert_with(|| new_state(&row.registry, &row.repository))
            .manifests
            .push(ManifestState {
                digest: row.digest,
                is_index: row.is_index,
                children: row.children,
                subject: row.subject,
                age_at: row.age_at,
                blobs: row.blobs.into_iter().zip(row.blob_sizes).collect(),
            });
    }
    Ok(by_key.into_values().collect())
}

fn new_state(registry: &str, repository: &str) -> RepositoryState {
    RepositoryState {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        ..RepositoryState::default()
    }
}
