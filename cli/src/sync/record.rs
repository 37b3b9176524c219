//! Recording what a sync of one repository saw: one transaction, through the model's upserts
//! (the same ones events go through), so observations merge exactly like events: `GREATEST`
//! for times, the newest observation for a tag's digest (ties: the greater digest), the first
//! known content, the newest tombstone.

use super::diff::{Observation, RepositoryDiff, Source};
use chrono::{DateTime, Utc};
use regstat_store::model::{self, Changes};
use sqlx::PgPool;

/// Records what a sync of `repository` at `at` saw: the manifests and tags it found (seen at
/// `at`), and tombstones at `at` for the live tags and manifests the registry no longer has.
pub(super) async fn record(
    pool: &PgPool,
    registry: &str,
    repository: &str,
    at: DateTime<Utc>,
    seen: &Observation,
    diff: &RepositoryDiff,
) -> Result<(), sqlx::Error> {
    let mut changes = Changes::default();
    for (digest, manifest) in &seen.manifests {
        // Content is written where it is new to this repository.
        let content = manifest
            .content
            .as_ref()
            .filter(|_| matches!(manifest.source, Source::Cached | Source::Fetched));
        changes.observe_manifest(
            registry,
            repository,
            digest,
            at,
            manifest.media_type.as_deref(),
            manifest.size,
            content,
        );
    }
    for (tag, digest) in &seen.tags {
        changes.observe_tag(registry, repository, tag, digest, at);
    }
    for tag in &diff.gone_tags {
        changes.tag_deleted(registry, repository, tag, at);
    }
    for digest in &seen.missing {
        changes.digest_deleted(registry, repository, digest, at);
    }
    model::write(pool, &changes).await
}
