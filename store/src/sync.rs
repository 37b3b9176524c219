//! What `regstat sync` reads of a registry's state in regstat: the repositories with live
//! content and a repository's live tags and manifests. What it writes goes through the
//! model ([`crate::model::Changes::observe_manifest`] and the like, then
//! [`crate::model::write`]), so observations merge exactly like events.

use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

/// A repository as regstat holds it now: its live tags and live manifests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveState {
    /// Live tag → its current digest (view `live_tags`).
    pub tags: BTreeMap<String, String>,
    /// Digests of the live manifests (view `live_manifests`).
    pub manifests: BTreeSet<String>,
}

/// Repositories of `registry` with a live tag or manifest.
pub async fn live_repositories(
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
pub async fn live_state(
    pool: &PgPool,
    registry: &str,
    repository: &str,
) -> Result<LiveState, sqlx::Error> {
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
    Ok(LiveState {
        tags: tags.into_iter().collect(),
        manifests: manifests.into_iter().collect(),
    })
}
