//! Content already fetched: immutable for a digest, so read back rather than fetched again.

use super::{Content, FetchStatus, Reference, Role};
use sqlx::PgPool;
use std::collections::HashMap;

/// Content of a manifest already fetched in the registry, and where.
#[derive(Debug, Clone)]
pub struct Known {
    /// The repository it was read from (this one when it has it).
    pub repository: String,
    /// Media type recorded with it.
    pub media_type: Option<String>,
    /// Size recorded with it.
    pub size: Option<i64>,
    /// The content.
    pub content: Content,
}

/// Fetched content of `digests` in `registry`, preferring `repository`'s own rows.
pub async fn known_contents(
    pool: &PgPool,
    registry: &str,
    repository: &str,
    digests: &[String],
) -> Result<HashMap<String, Known>, sqlx::Error> {
    let wanted: Vec<Wanted<'_>> = digests
        .iter()
        .map(|digest| Wanted {
            registry,
            repository,
            digest,
        })
        .collect();
    let found = known_contents_batch(pool, &wanted).await?;
    Ok(digests
        .iter()
        .cloned()
        .zip(found)
        .filter_map(|(digest, known)| Some((digest, known?)))
        .collect())
}

/// A manifest whose content is looked for: its digest in a registry, preferably as read from
/// this repository.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Canonical registry name.
    pub registry: &'a str,
    /// The repository whose own row is preferred.
    pub repository: &'a str,
    /// The manifest digest.
    pub digest: &'a str,
}

/// Fetched content of each of `wanted`, in the same order (`None`: never fetched in that
/// registry). One statement for the lot.
pub async fn known_contents_batch(
    pool: &PgPool,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Option<Known>>, sqlx::Error> {
    /// A manifest's row joined with one of its references (none: `role` is NULL).
    #[derive(sqlx::FromRow)]
    struct Row {
        key: i64,
        repository: String,
        media_type: Option<String>,
        size: Option<i64>,
        config_digest: Option<String>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
        artifact_type: Option<String>,
        subject_digest: Option<String>,
        created_at: Option<chrono::DateTime<chrono::Utc>>,
        role: Option<String>,
        position: Option<i32>,
        ref_digest: Option<String>,
        ref_media_type: Option<String>,
        ref_size: Option<i64>,
        ref_os: Option<String>,
        ref_architecture: Option<String>,
        ref_variant: Option<String>,
    }
    let mut known: Vec<Option<Known>> = vec![None; wanted.len()];
    if wanted.is_empty() {
        return Ok(known);
    }
    // One round trip for the lot, and index probes only: per digest, the best manifest row (LATERAL ...
    // LIMIT 1 on (registry, digest)), then its references (primary key prefix). The former
    // `digest = ANY($2)` and join-on-UNNEST forms let the planner scan every row of the
    // registry, or of the repository, whenever the statistics lagged behind the tables'
    // growth (a generic plan made on a young table): each manifest push then cost time
    // proportional to the manifests stored, the worker's hottest statements in the benchmark.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT k.key, m.repository, m.media_type, m.size, m.config_digest, m.os,
                m.architecture, m.variant, m.artifact_type, m.subject_digest, m.created_at,
                r.role, r.position, r.digest AS ref_digest, r.media_type AS ref_media_type,
                r.size AS ref_size, r.os AS ref_os, r.architecture AS ref_architecture,
                r.variant AS ref_variant
         FROM UNNEST($1::text[], $2::text[], $3::text[])
              WITH ORDINALITY AS k(registry, repository, digest, key)
         CROSS JOIN LATERAL (
             SELECT * FROM regstat.manifests m
             WHERE m.registry = k.registry AND m.digest = k.digest
               AND m.fetch_status = 'fetched'
             ORDER BY m.repository <> k.repository, m.repository
             LIMIT 1
         ) m
         LEFT JOIN LATERAL (
             SELECT * FROM regstat.manifest_references r
             WHERE r.registry = m.registry AND r.repository = m.repository
               AND r.manifest_digest = m.digest
             ORDER BY r.role, r.position
         ) r ON true
         ORDER BY k.key, r.role, r.position",
    )
    .bind(wanted.iter().map(|w| w.registry).collect::<Vec<_>>())
    .bind(wanted.iter().map(|w| w.repository).collect::<Vec<_>>())
    .bind(wanted.iter().map(|w| w.digest).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    for r in rows {
        let Some(slot) = usize::try_from(r.key - 1)
            .ok()
            .and_then(|i| known.get_mut(i))
        else {
            continue;
        };
        let entry = slot.get_or_insert_with(|| {
            let mut content = Content::empty(FetchStatus::Fetched);
            content.config_digest = r.config_digest;
            content.os = r.os;
            content.architecture = r.architecture;
            content.variant = r.variant;
            content.artifact_type = r.artifact_type;
            content.subject_digest = r.subject_digest;
            content.created = r.created_at;
            Known {
                repository: r.repository,
                media_type: r.media_type,
                size: r.size,
                content,
            }
        });
        let (Some(role), Some(position), Some(digest)) = (r.role, r.position, r.ref_digest) else {
            continue;
        };
        let role = match role.as_str() {
            "config" => Role::Config,
            "layer" => Role::Layer,
            "manifest" => Role::Manifest,
            "subject" => Role::Subject,
            _ => continue,
        };
        entry.content.references.push(Reference {
            role,
            position,
            digest,
            media_type: r.ref_media_type,
            size: r.ref_size,
            os: r.ref_os,
            architecture: r.ref_architecture,
            variant: r.ref_variant,
        });
    }
    Ok(known)
}
