//! The ledger and the state, as the test reads them.

use super::REGISTRY;
use crate::helpers::TestDb;
use crate::support::BLOB_MEDIA_TYPE;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use std::collections::BTreeMap;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct LedgerRow {
    pub(super) id: String,
    pub(super) action: String,
    pub(super) media_type: Option<String>,
    pub(super) digest: Option<String>,
    repository: Option<String>,
    pub(super) tag: Option<String>,
    from_repository: Option<String>,
    pub(super) actor: Option<String>,
    pub(super) request_host: Option<String>,
    request_method: Option<String>,
    request_useragent: Option<String>,
    pub(super) has_references: bool,
}

impl LedgerRow {
    pub(super) fn repo(&self) -> &str {
        self.repository.as_deref().unwrap_or_default()
    }

    pub(super) fn agent(&self) -> &str {
        self.request_useragent.as_deref().unwrap_or_default()
    }

    pub(super) fn is_regstat(&self) -> bool {
        self.agent().starts_with("regstat/")
    }

    pub(super) fn get(&self) -> bool {
        self.request_method.as_deref() == Some("GET")
    }

    /// A manifest event, as the model tells: any media type but a blob's, or a tag.
    pub(super) fn is_manifest(&self) -> bool {
        match self.media_type.as_deref() {
            Some(BLOB_MEDIA_TYPE) => false,
            Some(_) => true,
            None => self.tag.is_some(),
        }
    }

    /// One line for failure messages.
    pub(super) fn summary(&self) -> String {
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "{} {} {} {} {} tag={} from={} actor={} {}",
            self.action,
            self.repo(),
            field(&self.request_method),
            field(&self.media_type),
            field(&self.digest),
            field(&self.tag),
            field(&self.from_repository),
            field(&self.actor),
            self.agent(),
        )
    }
}

pub(super) async fn ledger(db: &TestDb) -> Vec<LedgerRow> {
    sqlx::query_as(
        "SELECT regstat.event_id(e) AS id, action, media_type, digest, repository, tag, \
         from_repository, actor, \
         request_host, request_method, request_useragent, \
         (regstat.event_json(e) #> '{target,references}') IS NOT NULL AS has_references \
         FROM regstat.events e ORDER BY occurred_at, id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the ledger")
}

pub(super) type Platform = (&'static str, &'static str, Option<&'static str>);
type OwnedPlatform = (Option<String>, Option<String>, Option<String>);

pub(super) fn owned_platform((os, architecture, variant): Platform) -> OwnedPlatform {
    (
        Some(os.to_owned()),
        Some(architecture.to_owned()),
        variant.map(str::to_owned),
    )
}

/// A `manifest_references` row (registry, repository and manifest digest aside).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct Ref {
    pub(super) role: String,
    position: i32,
    pub(super) digest: String,
    media_type: Option<String>,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct RefRow {
    repository: String,
    manifest_digest: String,
    #[sqlx(flatten)]
    reference: Ref,
}

pub(super) fn reference(
    role: &str,
    position: i32,
    digest: &str,
    media_type: &str,
    platform: Option<Platform>,
) -> Ref {
    let (os, architecture, variant) = platform.map_or((None, None, None), owned_platform);
    Ref {
        role: role.to_owned(),
        position,
        digest: digest.to_owned(),
        media_type: Some(media_type.to_owned()),
        os,
        architecture,
        variant,
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct ManifestRow {
    pub(super) repository: String,
    pub(super) digest: String,
    pub(super) media_type: Option<String>,
    pub(super) fetch_status: String,
    pub(super) config_digest: Option<String>,
    pub(super) pull_count: i64,
    pub(super) last_pulled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct TagRow {
    pub(super) repository: String,
    pub(super) tag: String,
    pub(super) digest: String,
    pub(super) pull_count: i64,
    pub(super) last_pulled_at: Option<DateTime<Utc>>,
    pub(super) deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct BlobRow {
    pub(super) repository: String,
    pub(super) digest: String,
    pub(super) via_push: bool,
    pub(super) via_mount: bool,
    pub(super) mounted_from: Option<String>,
    pub(super) pull_count: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct ArchPull {
    pub(super) repository: String,
    pub(super) tag: String,
    pub(super) digest: String,
    pub(super) pulls: i64,
    pub(super) architecture: Option<String>,
    pub(super) variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub(super) struct Deletion {
    pub(super) repository: String,
    pub(super) digest: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) kind: String,
    pub(super) actor: String,
}

#[derive(sqlx::FromRow)]
struct PlatformRow {
    repository: String,
    digest: String,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

/// Rows of a query with `$1` = the registry's name.
async fn select<T>(pool: &PgPool, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .bind(REGISTRY)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The derived state of registry "e2e".
pub(super) struct State {
    pub(super) registries: Vec<String>,
    pub(super) manifests: Vec<ManifestRow>,
    platforms: BTreeMap<(String, String), OwnedPlatform>,
    references: Vec<RefRow>,
    pub(super) tags: Vec<TagRow>,
    pub(super) live_tags: Vec<TagRow>,
    pub(super) live_manifests: Vec<(String, String)>,
    pub(super) blobs: Vec<BlobRow>,
    pub(super) deletions: Vec<Deletion>,
    pub(super) pulls_by_architecture: Vec<ArchPull>,
    /// repository → (pushes, pulls, system pulls).
    pub(super) repository_stats: BTreeMap<String, (i64, i64, i64)>,
    /// (repository, actor, action) → events.
    pub(super) actors: BTreeMap<(String, String, String), i64>,
}

impl State {
    pub(super) async fn read(db: &TestDb) -> Self {
        let pool = &db.pool;
        let registries = sqlx::query_scalar(
            "SELECT registry FROM regstat.manifests UNION SELECT registry FROM regstat.blobs \
             UNION SELECT registry FROM regstat.tags UNION SELECT registry FROM regstat.deletions \
             UNION SELECT registry FROM regstat.pull_metrics ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .expect("registries");
        let platforms: Vec<PlatformRow> = select(
            pool,
            "SELECT repository, digest, os, architecture, variant \
             FROM regstat.manifest_platforms WHERE registry = $1",
        )
        .await;
        let stats: Vec<(String, i64, i64, i64)> = select(
            pool,
            "SELECT repository, pushes, pulls, system_pulls FROM regstat.repository_stats \
             WHERE registry = $1",
        )
        .await;
        let actors: Vec<(String, String, String, i64)> = select(
            pool,
            "SELECT repository, actor, action, events FROM regstat.actors WHERE registry = $1",
        )
        .await;
        Self {
            registries,
            manifests: select(
                pool,
                "SELECT repository, digest, media_type, fetch_status, config_digest, \
                 pull_count, last_pulled_at FROM regstat.manifests WHERE registry = $1",
            )
            .await,
            platforms: platforms
                .into_iter()
                .map(|p| ((p.repository, p.digest), (p.os, p.architecture, p.variant)))
                .collect(),
            references: select(
                pool,
                "SELECT repository, manifest_digest, role, position, digest, media_type, os, \
                 architecture, variant FROM regstat.manifest_references WHERE registry = $1 \
                 ORDER BY repository, manifest_digest, role, position",
            )
            .await,
            tags: select(
                pool,
                "SELECT repository, tag, COALESCE(digest, '') AS digest, pull_count, \
                 last_pulled_at, deleted_at FROM regstat.tags WHERE registry = $1",
            )
            .await,
            live_tags: select(
                pool,
                "SELECT repository, tag, digest, pull_count, last_pulled_at, \
                 NULL::timestamptz AS deleted_at FROM regstat.live_tags WHERE registry = $1 \
                 ORDER BY repository, tag",
            )
            .await,
            live_manifests: select(
                pool,
                "SELECT repository, digest FROM regstat.live_manifests WHERE registry = $1",
            )
            .await,
            blobs: select(
                pool,
                "SELECT repository, digest, via_push, via_mount, mounted_from, pull_count \
                 FROM regstat.blobs WHERE registry = $1",
            )
            .await,
            deletions: select(
                pool,
                "SELECT repository, digest, tag, kind, COALESCE(actor, '') AS actor \
                 FROM regstat.deletion_log WHERE registry = $1",
            )
            .await,
            pulls_by_architecture: select(
                pool,
                "SELECT repository, tag, digest, pulls, architecture, variant \
                 FROM regstat.pulls_by_architecture WHERE registry = $1 AND NOT system",
            )
            .await,
            repository_stats: stats
                .into_iter()
                .map(|(r, pushes, pulls, system)| (r, (pushes, pulls, system)))
                .collect(),
            actors: actors
                .into_iter()
                .map(|(r, actor, action, n)| ((r, actor, action), n))
                .collect(),
        }
    }

    pub(super) fn manifest(&self, repository: &str, digest: &str) -> &ManifestRow {
        self.manifests
            .iter()
            .find(|m| m.repository == repository && m.digest == digest)
            .unwrap_or_else(|| panic!("no manifests row for {repository}@{digest}"))
    }

    /// From `manifest_platforms`; `None` when it has none (an index).
    pub(super) fn platform(&self, repository: &str, digest: &str) -> Option<OwnedPlatform> {
        let platform = self
            .platforms
            .get(&(repository.to_owned(), digest.to_owned()))
            .unwrap_or_else(|| panic!("no manifest_platforms row for {repository}@{digest}"));
        (platform != &(None, None, None)).then(|| platform.clone())
    }

    pub(super) fn references(&self, repository: &str, digest: &str) -> Vec<Ref> {
        self.references
            .iter()
            .filter(|r| r.repository == repository && r.manifest_digest == digest)
            .map(|r| r.reference.clone())
            .collect()
    }

    pub(super) fn tag(&self, repository: &str, tag: &str) -> &TagRow {
        self.tags
            .iter()
            .find(|t| t.repository == repository && t.tag == tag)
            .unwrap_or_else(|| panic!("no tags row for {repository}:{tag}"))
    }

    pub(super) fn live_tag(&self, repository: &str, tag: &str) -> &TagRow {
        self.live_tags
            .iter()
            .find(|t| t.repository == repository && t.tag == tag)
            .unwrap_or_else(|| panic!("no live_tags row for {repository}:{tag}"))
    }

    pub(super) fn blob(&self, repository: &str, digest: &str) -> &BlobRow {
        self.blobs
            .iter()
            .find(|b| b.repository == repository && b.digest == digest)
            .unwrap_or_else(|| panic!("no blobs row for {repository}@{digest}"))
    }
}
