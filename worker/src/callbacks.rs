//! Learning what a pushed manifest contains: from content already known, from the registry
//! (called back by digest at its configured URL), or from the event's references.

use crate::handler::Reason;
use crate::model::{Content, FetchStatus, Reference, Role};
use crate::registry::{FetchError, Fetched, ManifestKind, Platform, Resolved};
use regstat_shared::event::{Action, Event, Kind};
use sqlx::PgPool;

/// Why content could not be learned now.
#[derive(Debug)]
pub enum Failure {
    /// The database is unavailable: hold the batch.
    Database(sqlx::Error),
    /// The registry is unavailable: retry this event later.
    Retry(Reason),
    /// Will never work (access denied, a manifest that lies about its digest...).
    Permanent(Reason),
}

/// Whether an event is a manifest push, the only event that needs content.
pub fn needs_content(event: &Event) -> bool {
    event.action == Some(Action::Push) && event.kind() == Kind::Manifest
}

/// The content of the manifest a push event names. `None` for other events.
pub async fn content(
    pool: &PgPool,
    event: &Event,
    registry: &Resolved<'_>,
) -> Result<Option<Content>, Failure> {
    if !needs_content(event) {
        return Ok(None);
    }
    let Some(target) = &event.target else {
        return Ok(None);
    };
    let (Some(repository), Some(digest)) = (&target.repository, &target.digest) else {
        return Ok(None);
    };
    let from_event = Content::from_event(target.media_type.as_deref(), &target.references);
    let Some(client) = registry.client else {
        metrics::counter!("regstat_worker_unconfigured_registry_events_total").increment(1);
        return Ok(Some(
            from_event.unwrap_or_else(|| Content::empty(FetchStatus::NoRegistry)),
        ));
    };
    if let Some(known) = known_content(pool, &registry.name, digest)
        .await
        .map_err(Failure::Database)?
    {
        metrics::counter!("regstat_worker_manifest_content_total", "source" => "database")
            .increment(1);
        return Ok(Some(known));
    }
    match client.manifest(repository, digest).await {
        Ok(fetched) => {
            let source = if fetched.from_cache {
                "cache"
            } else {
                "registry"
            };
            metrics::counter!("regstat_worker_manifest_content_total", "source" => source)
                .increment(1);
            let platform = match (&fetched.manifest.kind, &fetched.manifest.config) {
                (ManifestKind::Image, Some(config)) => {
                    match client.config_platform(repository, &config.digest).await {
                        Ok(platform) => platform,
                        Err(FetchError::Gone) => None,
                        Err(error) => return Err(failure(error)),
                    }
                }
                // Schema1 states its architecture in the manifest itself.
                _ => fetched.manifest.platform.clone(),
            };
            Ok(Some(from_fetched(&fetched, platform)))
        }
        Err(FetchError::Gone) => {
            metrics::counter!("regstat_worker_manifest_content_total", "source" => "gone")
                .increment(1);
            Ok(Some(
                from_event.unwrap_or_else(|| Content::empty(FetchStatus::Gone)),
            ))
        }
        Err(error) => Err(failure(error)),
    }
}

fn failure(error: FetchError) -> Failure {
    match error {
        FetchError::Transient(reason) => Failure::Retry(Reason::new(
            "registry_unavailable",
            format!("registry unavailable: {reason}"),
        )),
        FetchError::Invalid(reason) => Failure::Permanent(Reason::new(
            "manifest_invalid",
            format!("registry served an unusable manifest: {reason}"),
        )),
        other => Failure::Permanent(Reason::new(
            "registry_refused",
            format!("registry callback failed: {other}"),
        )),
    }
}

/// Content of a manifest built from what the registry served.
pub fn from_fetched(fetched: &Fetched, platform: Option<Platform>) -> Content {
    let manifest = &fetched.manifest;
    let mut content = Content::empty(FetchStatus::Fetched);
    let (os, architecture, variant) =
        platform.map_or((None, None, None), |p| (p.os, p.architecture, p.variant));
    content.os = os;
    content.architecture = architecture;
    content.variant = variant;
    content.artifact_type = manifest.artifact_type.clone();
    content.config_digest = manifest.config.as_ref().map(|c| c.digest.clone());
    content.subject_digest = manifest.subject.as_ref().map(|s| s.digest.clone());
    let reference =
        |role, position: usize, d: &crate::registry::Descriptor, p: Option<&Platform>| Reference {
            role,
            position: i32::try_from(position).unwrap_or(i32::MAX),
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size.and_then(|s| i64::try_from(s).ok()),
            os: p.and_then(|p| p.os.clone()),
            architecture: p.and_then(|p| p.architecture.clone()),
            variant: p.and_then(|p| p.variant.clone()),
        };
    if let Some(config) = &manifest.config {
        content
            .references
            .push(reference(Role::Config, 0, config, None));
    }
    for (i, layer) in manifest.layers.iter().enumerate() {
        content
            .references
            .push(reference(Role::Layer, i, layer, None));
    }
    for (i, (child, platform)) in manifest.children.iter().enumerate() {
        content
            .references
            .push(reference(Role::Manifest, i, child, platform.as_ref()));
    }
    if let Some(subject) = &manifest.subject {
        content
            .references
            .push(reference(Role::Subject, 0, subject, None));
    }
    content
}

/// Content of a manifest with this digest already fetched in this registry (any repository):
/// content is immutable for a digest, so it is fetched at most once.
async fn known_content(
    pool: &PgPool,
    registry: &str,
    digest: &str,
) -> Result<Option<Content>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Known {
        repository: String,
        config_digest: Option<String>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
        artifact_type: Option<String>,
        subject_digest: Option<String>,
    }
    let known: Option<Known> = sqlx::query_as(
        "SELECT repository, config_digest, os, architecture, variant, artifact_type,
                subject_digest
         FROM regstat.manifests
         WHERE registry = $1 AND digest = $2 AND fetch_status = 'fetched'
         LIMIT 1",
    )
    .bind(registry)
    .bind(digest)
    .fetch_optional(pool)
    .await?;
    let Some(known) = known else {
        return Ok(None);
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        role: String,
        position: i32,
        digest: String,
        media_type: Option<String>,
        size: Option<i64>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT role, position, digest, media_type, size, os, architecture, variant
         FROM regstat.manifest_references
         WHERE registry = $1 AND repository = $2 AND manifest_digest = $3
         ORDER BY role, position",
    )
    .bind(registry)
    .bind(&known.repository)
    .bind(digest)
    .fetch_all(pool)
    .await?;
    let mut content = Content::empty(FetchStatus::Fetched);
    content.config_digest = known.config_digest;
    content.os = known.os;
    content.architecture = known.architecture;
    content.variant = known.variant;
    content.artifact_type = known.artifact_type;
    content.subject_digest = known.subject_digest;
    content.references = rows
        .into_iter()
        .filter_map(|r| {
            let role = match r.role.as_str() {
                "config" => Role::Config,
                "layer" => Role::Layer,
                "manifest" => Role::Manifest,
                "subject" => Role::Subject,
                _ => return None,
            };
            Some(Reference {
                role,
                position: r.position,
                digest: r.digest,
                media_type: r.media_type,
                size: r.size,
                os: r.os,
                architecture: r.architecture,
                variant: r.variant,
            })
        })
        .collect();
    Ok(Some(content))
}
