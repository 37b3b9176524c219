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
    #[derive(sqlx::FromRow)]
    struct Row {
        repository: String,
        digest: String,
        media_type: Option<String>,
        size: Option<i64>,
        config_digest: Option<String>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
        artifact_type: Option<String>,
        subject_digest: Option<String>,
    }
    #[derive(sqlx::FromRow)]
    struct RefRow {
        manifest_digest: String,
        role: String,
        position: i32,
        digest: String,
        media_type: Option<String>,
        size: Option<i64>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    if digests.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT DISTINCT ON (digest) repository, digest, media_type, size, config_digest, os,
                architecture, variant, artifact_type, subject_digest
         FROM regstat.manifests
         WHERE registry = $1 AND digest = ANY($2) AND fetch_status = 'fetched'
         ORDER BY digest, repository <> $3, repository",
    )
    .bind(registry)
    .bind(digests)
    .bind(repository)
    .fetch_all(pool)
    .await?;
    let (repositories, manifests): (Vec<&str>, Vec<&str>) = rows
        .iter()
        .map(|r| (r.repository.as_str(), r.digest.as_str()))
        .unzip();
    let references: Vec<RefRow> = sqlx::query_as(
        "SELECT r.manifest_digest, r.role, r.position, r.digest, r.media_type, r.size, r.os,
                r.architecture, r.variant
         FROM regstat.manifest_references r
         JOIN UNNEST($2::text[], $3::text[]) AS k(repository, digest)
           ON r.repository = k.repository AND r.manifest_digest = k.digest
         WHERE r.registry = $1
         ORDER BY r.manifest_digest, r.role, r.position",
    )
    .bind(registry)
    .bind(&repositories)
    .bind(&manifests)
    .fetch_all(pool)
    .await?;
    let mut known: HashMap<String, Known> = rows
        .into_iter()
        .map(|r| {
            let mut content = Content::empty(FetchStatus::Fetched);
            content.config_digest = r.config_digest;
            content.os = r.os;
            content.architecture = r.architecture;
            content.variant = r.variant;
            content.artifact_type = r.artifact_type;
            content.subject_digest = r.subject_digest;
            let known = Known {
                repository: r.repository,
                media_type: r.media_type,
                size: r.size,
                content,
            };
            (r.digest, known)
        })
        .collect();
    for r in references {
        let role = match r.role.as_str() {
            "config" => Role::Config,
            "layer" => Role::Layer,
            "manifest" => Role::Manifest,
            "subject" => Role::Subject,
            _ => continue,
        };
        if let Some(known) = known.get_mut(&r.manifest_digest) {
            known.content.references.push(Reference {
                role,
                position: r.position,
                digest: r.digest,
                media_type: r.media_type,
                size: r.size,
                os: r.os,
                architecture: r.architecture,
                variant: r.variant,
            });
        }
    }
    Ok(known)
}
