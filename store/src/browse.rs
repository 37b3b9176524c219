//! What the console shows besides the reports: totals, the repository list and one
//! repository, one digest, search, the activity of the ledger and the pipeline as workers last
//! saw it. Every row type here is also the JSON the console's API returns.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa::ToSchema;

/// The overview's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    /// Repositories with a live tag or manifest.
    pub repositories: i64,
    /// Live tags.
    pub tags: i64,
    /// Live manifests.
    pub manifests: i64,
    /// Live blobs, each digest once per registry.
    pub blobs: i64,
    /// Their bytes.
    pub blob_bytes: i64,
    /// When [`Self::blobs`] and [`Self::blob_bytes`] were counted, when they come from the
    /// refresher's figures (`null`: counted now).
    pub blobs_as_of: Option<DateTime<Utc>>,
    /// Ledger events.
    pub events: i64,
    /// Whether [`Self::events`] is the planner's estimate (a large ledger is not counted).
    pub events_estimated: bool,
}

/// Counts what is live now and estimates the ledger. The registry-wide blob figures are the
/// refresher's when it has them for every registry (a count over every live blob otherwise).
pub async fn totals(db: &mut PgConnection) -> Result<Totals, sqlx::Error> {
    let (repositories, tags, manifests): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE tags > 0 OR manifests > 0),
                COALESCE(sum(tags), 0)::bigint, COALESCE(sum(manifests), 0)::bigint
         FROM regstat.repositories_now",
    )
    .fetch_one(&mut *db)
    .await?;
    let cached: (i64, i64, Option<DateTime<Utc>>, bool) = sqlx::query_as(
        "SELECT COALESCE(sum(g.blobs), 0)::bigint, COALESCE(sum(g.blob_bytes), 0)::bigint,
                min(g.refreshed_at),
                COALESCE(bool_and(g.registry IS NOT NULL), false)
         FROM (SELECT DISTINCT registry FROM regstat.repository_contents) r
         LEFT JOIN regstat.registry_contents g USING (registry)",
    )
    .fetch_one(&mut *db)
    .await?;
    let (blobs, blob_bytes, blobs_as_of) = match cached {
        (blobs, bytes, Some(at), true) => (blobs, bytes, Some(at)),
        _ => {
            let (blobs, bytes): (i64, i64) = sqlx::query_as(
                "SELECT count(*), COALESCE(sum(size), 0)::bigint
                 FROM (SELECT DISTINCT ON (registry, digest) size FROM regstat.live_blobs
                       ORDER BY registry, digest) d",
            )
            .fetch_one(&mut *db)
            .await?;
            (blobs, bytes, None)
        }
    };
    let (events, events_estimated) =
        crate::status::ledger_size(&mut *db, crate::status::EXACT_COUNT_LIMIT).await?;
    Ok(Totals {
        repositories,
        tags,
        manifests,
        blobs,
        blob_bytes,
        blobs_as_of,
        events,
        events_estimated,
    })
}

/// One repository in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct RepositoryRow {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Live tags.
    pub tags: i64,
    /// Image pulls in the last 30 days (system clients apart).
    pub pulls_30d: i64,
    /// The last image pull (`null`: never pulled while regstat listened).
    pub last_pulled_at: Option<DateTime<Utc>>,
    /// The last push (`null`: none seen).
    pub last_pushed_at: Option<DateTime<Utc>>,
    /// Bytes of its live blobs (`null`: none known).
    pub size: Option<i64>,
}

/// How the repository list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepositorySort {
    /// Registry, then repository name.
    #[default]
    Name,
    /// Live tags.
    Tags,
    /// Image pulls in 30 days.
    Pulls,
    /// Last pull.
    LastPulled,
    /// Last push.
    LastPushed,
    /// Bytes.
    Size,
}

impl RepositorySort {
    fn column(self) -> &'static str {
        match self {
            Self::Name => "registry, repository",
            Self::Tags => "tags",
            Self::Pulls => "pulls_30d",
            Self::LastPulled => "last_pulled_at",
            Self::LastPushed => "last_pushed_at",
            Self::Size => "size",
        }
    }
}

/// Which repositories, in which order, which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryQuery {
    /// Repository names containing this text (case-insensitive).
    pub search: Option<String>,
    /// Only this registry.
    pub registry: Option<String>,
    /// Order.
    pub sort: RepositorySort,
    /// Descending.
    pub descending: bool,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// A page of the repository list, and how many repositories match in all.
pub async fn repositories(
    db: &mut PgConnection,
    query: &RepositoryQuery,
) -> Result<(Vec<RepositoryRow>, i64), sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "WITH matching AS (
             SELECT * FROM regstat.repositories_now WHERE true",
    );
    if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
        sql.push(" AND strpos(lower(repository), lower(")
            .push_bind(search.to_owned())
            .push(")) > 0");
    }
    if let Some(registry) = &query.registry {
        sql.push(" AND registry = ").push_bind(registry.clone());
    }
    sql.push(
        "), listed AS (
             SELECT k.registry, k.repository, k.tags,
                    -- The window cache's (migration 20261203000013), else from the model.
                    COALESCE((SELECT w.pulls_30d FROM regstat.window_cached w
                              WHERE w.registry = k.registry AND w.repository = k.repository),
                             (SELECT sum(p.pulls) FROM regstat.repository_pulls p
                              WHERE p.registry = k.registry AND p.repository = k.repository
                                AND p.day > (now() AT TIME ZONE 'UTC')::date - 30),
                             0)::bigint AS pulls_30d,
                    s.last_pull_at AS last_pulled_at, s.last_push_at AS last_pushed_at,
                    CASE WHEN k.blobs > 0 THEN k.blob_bytes END AS size
             FROM matching k
             LEFT JOIN regstat.repository_stats s USING (registry, repository)
         )
         SELECT *, count(*) OVER () AS total FROM listed ORDER BY ",
    );
    sql.push(query.sort.column());
    sql.push(if query.descending {
        " DESC NULLS LAST"
    } else {
        " ASC NULLS FIRST"
    });
    sql.push(", registry, repository LIMIT ")
        .push_bind(query.limit)
        .push(" OFFSET ")
        .push_bind(query.offset);
    #[derive(sqlx::FromRow)]
    struct Listed {
        #[sqlx(flatten)]
        row: RepositoryRow,
        total: i64,
    }
    let listed: Vec<Listed> = sql.build_query_as().fetch_all(&mut *db).await?;
    let total = match listed.first() {
        Some(first) => first.total,
        // Past the last page: count alone.
        None if query.offset > 0 => count_repositories(db, query).await?,
        None => 0,
    };
    Ok((listed.into_iter().map(|l| l.row).collect(), total))
}

async fn count_repositories(
    db: &mut PgConnection,
    query: &RepositoryQuery,
) -> Result<i64, sqlx::Error> {
    let mut first_page = query.clone();
    first_page.offset = 0;
    first_page.limit = 1;
    Box::pin(repositories(db, &first_page))
        .await
        .map(|(_, total)| total)
}

/// One tag of a repository, with its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct TagRow {
    /// Tag.
    pub tag: String,
    /// The digest it names.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: Option<String>,
    /// `os/architecture[/variant]` of the image or of an index's children.
    pub platforms: Vec<String>,
    /// Bytes of its blobs.
    pub size: Option<i64>,
    /// When it was pushed (`null`: not seen).
    pub pushed_at: Option<DateTime<Utc>>,
    /// Last pull of its content (`null`: never, while regstat listened).
    pub last_pulled_at: Option<DateTime<Utc>>,
    /// Pulls of the tag in 7 days.
    pub pulls_7d: i64,
    /// Pulls of the tag in 30 days.
    pub pulls_30d: i64,
    /// Pulls of the tag in all.
    pub pull_count: i64,
    /// Version checks in all.
    pub version_checks: i64,
    /// The last check.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// The latest of the last pull, the last check and the push, else when regstat first saw
    /// the tag.
    pub last_used_at: Option<DateTime<Utc>>,
    /// `pulled`, `checked`, `pushed` or `first_seen`: what [`Self::last_used_at`] is.
    pub last_used_source: Option<String>,
    /// Pushed, else built (as its config states), else first seen.
    pub age_at: Option<DateTime<Utc>>,
    /// `pushed`, `created` or `first_seen`: what [`Self::age_at`] is.
    pub age_source: Option<String>,
}

/// The pulls of one tag of a repository on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct DayPulls {
    /// UTC day.
    pub day: NaiveDate,
    /// The tag (`""`: pulls by digest).
    pub tag: String,
    /// Pulls (system clients apart).
    pub pulls: i64,
}

/// Who pushed and pulled a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ActorRow {
    /// User name (`""`: anonymous).
    pub actor: String,
    /// `push` or `pull`.
    pub action: String,
    /// How many.
    pub events: i64,
    /// First time.
    pub first_at: DateTime<Utc>,
    /// Last time.
    pub last_at: DateTime<Utc>,
}

/// One entry of the ledger, as the activity shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ActivityRow {
    /// Event time.
    pub occurred_at: DateTime<Utc>,
    /// The Host the client used.
    pub registry_host: Option<String>,
    /// Repository.
    pub repository: Option<String>,
    /// `push`, `pull`, `mount` or `delete`.
    pub action: String,
    /// Tag named.
    pub tag: Option<String>,
    /// Digest named.
    pub digest: Option<String>,
    /// Media type (`application/octet-stream`: a blob).
    pub media_type: Option<String>,
    /// User name.
    pub actor: Option<String>,
    /// HTTP method.
    pub request_method: Option<String>,
    /// Client User-Agent.
    pub request_useragent: Option<String>,
    /// Client address.
    pub request_addr: Option<String>,
    /// Event id (also the cursor of the next page).
    pub event_id: String,
}

/// Everything about one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RepositoryDetail {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Its live tags, by name.
    pub tags: Vec<TagRow>,
    /// Pulls per day of its most pulled tags (and by digest) in the last `days` days.
    pub pulls_per_day: Vec<DayPulls>,
    /// Who pushed and pulled it.
    pub actors: Vec<ActorRow>,
    /// Its newest ledger entries.
    pub history: Vec<ActivityRow>,
}

/// The tags chart's series: the most pulled tags, the rest under their own name too (a page
/// shows at most this many).
const TOP_TAG_SERIES: i64 = 5;

/// Everything about `repository` of `registry`; `None` when regstat knows nothing of it.
pub async fn repository(
    db: &mut PgConnection,
    registry: &str,
    repository: &str,
    days: i32,
) -> Result<Option<RepositoryDetail>, sqlx::Error> {
    let tags: Vec<TagRow> = sqlx::query_as(
        "SELECT i.tag, i.digest, i.media_type, i.platforms, i.size, i.pushed_at,
                i.last_pulled_at,
                COALESCE(p.pulls_7d, 0)::bigint AS pulls_7d,
                COALESCE(p.pulls_30d, 0)::bigint AS pulls_30d,
                i.pull_count, i.version_checks, i.last_checked_at, i.last_used_at,
                i.last_used_source, i.age_at, i.age_source
         FROM regstat.report_images i
         LEFT JOIN regstat.tag_pull_windows_of($1, $2) p USING (tag)
         WHERE i.registry = $1 AND i.repository = $2
         ORDER BY i.tag",
    )
    .bind(registry)
    .bind(repository)
    .fetch_all(&mut *db)
    .await?;
    let pulls_per_day: Vec<DayPulls> = sqlx::query_as(
        "WITH recent AS (
             SELECT day, tag, sum(pulls)::bigint AS pulls
             FROM regstat.pull_metrics
             WHERE registry = $1 AND repository = $2 AND NOT system
               AND day > (now() AT TIME ZONE 'UTC')::date - $3
             GROUP BY day, tag
         ), top AS (
             SELECT tag FROM recent GROUP BY tag ORDER BY sum(pulls) DESC, tag LIMIT $4
         )
         SELECT day, tag, pulls FROM recent JOIN top USING (tag) ORDER BY day, tag",
    )
    .bind(registry)
    .bind(repository)
    .bind(days)
    .bind(TOP_TAG_SERIES)
    .fetch_all(&mut *db)
    .await?;
    let actors: Vec<ActorRow> = sqlx::query_as(
        "SELECT actor, action, events, first_at, last_at FROM regstat.actors
         WHERE registry = $1 AND repository = $2 ORDER BY last_at DESC, actor, action",
    )
    .bind(registry)
    .bind(repository)
    .fetch_all(&mut *db)
    .await?;
    let history = activity(
        db,
        &ActivityQuery {
            repository: Some(repository.to_owned()),
            limit: 20,
            ..ActivityQuery::default()
        },
    )
    .await?;
    let known = !tags.is_empty()
        || !actors.is_empty()
        || !history.is_empty()
        || sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM regstat.manifests WHERE registry = $1 AND repository = $2)
                 OR EXISTS (SELECT 1 FROM regstat.repository_stats WHERE registry = $1 AND repository = $2)",
        )
        .bind(registry)
        .bind(repository)
        .fetch_one(&mut *db)
        .await?;
    Ok(known.then(|| RepositoryDetail {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        tags,
        pulls_per_day,
        actors,
        history,
    }))
}

/// Which ledger entries: filters and a keyset cursor, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityQuery {
    /// `push`, `pull`, `mount` or `delete`.
    pub action: Option<String>,
    /// A repository prefix (`lab` is `lab` and `lab/...`) or glob (`lab/*-api`).
    pub repository: Option<String>,
    /// Exact tag.
    pub tag: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Only since.
    pub since: Option<DateTime<Utc>>,
    /// Only before.
    pub until: Option<DateTime<Utc>>,
    /// The page after this entry: (its time, its event id).
    pub after: Option<(DateTime<Utc>, String)>,
    /// Page size.
    pub limit: i64,
}

/// A page of the ledger, newest first.
pub async fn activity(
    db: &mut PgConnection,
    query: &ActivityQuery,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT occurred_at, registry_host, repository, action, tag, digest, media_type, actor,
                request_method, request_useragent, request_addr, event_id
         FROM regstat.report_history WHERE true",
    );
    if let Some(action) = &query.action {
        sql.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(pattern) = &query.repository {
        crate::reports::push_repository_filter(&mut sql, pattern);
    }
    if let Some(tag) = &query.tag {
        sql.push(" AND tag = ").push_bind(tag.clone());
    }
    if let Some(actor) = &query.actor {
        sql.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(since) = query.since {
        sql.push(" AND occurred_at >= ").push_bind(since);
    }
    if let Some(until) = query.until {
        sql.push(" AND occurred_at < ").push_bind(until);
    }
    if let Some((at, id)) = &query.after {
        sql.push(" AND (occurred_at, event_id) < (")
            .push_bind(*at)
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    sql.push(" ORDER BY occurred_at DESC, event_id DESC LIMIT ")
        .push_bind(query.limit);
    sql.build_query_as().fetch_all(&mut *db).await
}

/// A tag naming a digest, anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct TagRef {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

/// A manifest related to a digest: a copy of it in a repository, an index holding it, a child
/// of it, a referrer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ManifestRef {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// OCI `artifactType` (referrers: signatures, SBOMs).
    pub artifact_type: Option<String>,
    /// `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// Bytes of its blobs.
    pub size: Option<i64>,
}

/// A blob a manifest references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct BlobRef {
    /// `config` or `layer`.
    pub role: String,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// Bytes.
    pub size: Option<i64>,
}

/// Pulls of a digest on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct DigestDay {
    /// UTC day.
    pub day: NaiveDate,
    /// Pulls (system clients apart).
    pub pulls: i64,
}

/// Everything about one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DigestDetail {
    /// The digest.
    pub digest: String,
    /// The manifest in each repository that has it.
    pub manifests: Vec<ManifestRef>,
    /// Live tags naming it.
    pub tags: Vec<TagRef>,
    /// Indexes holding it.
    pub parents: Vec<ManifestRef>,
    /// Its children, when it is an index.
    pub children: Vec<ManifestRef>,
    /// Manifests whose subject it is (signatures, SBOMs, attestations).
    pub referrers: Vec<ManifestRef>,
    /// Its config and layers.
    pub blobs: Vec<BlobRef>,
    /// Its pulls per day.
    pub pulls_per_day: Vec<DigestDay>,
}

const MANIFEST_REF: &str = "SELECT m.registry, m.repository, m.digest, m.media_type,
        m.artifact_type,
        CASE WHEN p.architecture IS NOT NULL THEN concat_ws('/', p.os, p.architecture, p.variant) END
            AS platform,
        s.size
    FROM regstat.manifests m
    LEFT JOIN regstat.manifest_platforms p USING (registry, repository, digest)
    LEFT JOIN LATERAL regstat.manifest_size_of(m.registry, m.repository, m.digest) s ON true";

/// Everything about `digest`; `None` when no manifest or blob of it is known.
pub async fn digest(
    db: &mut PgConnection,
    digest: &str,
) -> Result<Option<DigestDetail>, sqlx::Error> {
    let manifests: Vec<ManifestRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MANIFEST_REF} WHERE m.digest = $1 ORDER BY m.registry, m.repository"
    )))
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let tags: Vec<TagRef> = sqlx::query_as(
        "SELECT registry, repository, tag FROM regstat.current_tags
         WHERE digest = $1
           -- the tags that may name it, by index (the view's digest is computed)
           AND (registry, repository, tag) IN (
               SELECT registry, repository, tag FROM regstat.tags
               WHERE digest = $1 OR seen_digest = $1)
         ORDER BY registry, repository, tag",
    )
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let parents: Vec<ManifestRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MANIFEST_REF} JOIN regstat.manifest_references r
           ON r.registry = m.registry AND r.repository = m.repository
          AND r.manifest_digest = m.digest
         WHERE r.role = 'manifest' AND r.digest = $1
         ORDER BY m.registry, m.repository, m.digest"
    )))
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let children: Vec<ManifestRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MANIFEST_REF} JOIN regstat.manifest_references r
           ON r.registry = m.registry AND r.repository = m.repository AND r.digest = m.digest
         WHERE r.role = 'manifest' AND r.manifest_digest = $1
         ORDER BY m.registry, m.repository, r.position"
    )))
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let referrers: Vec<ManifestRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MANIFEST_REF} WHERE m.subject_digest = $1 ORDER BY m.registry, m.repository, m.digest"
    )))
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let blobs: Vec<BlobRef> = sqlx::query_as(
        "SELECT DISTINCT ON (role, position) role, digest, media_type, size
         FROM regstat.manifest_references
         WHERE manifest_digest = $1 AND role IN ('config', 'layer')
         ORDER BY role, position",
    )
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let pulls_per_day: Vec<DigestDay> = sqlx::query_as(
        "SELECT day, sum(pulls)::bigint AS pulls FROM regstat.pull_metrics
         WHERE digest = $1 AND NOT system GROUP BY day ORDER BY day",
    )
    .bind(digest)
    .fetch_all(&mut *db)
    .await?;
    let known = !manifests.is_empty()
        || sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM regstat.blobs WHERE digest = $1)",
        )
        .bind(digest)
        .fetch_one(&mut *db)
        .await?;
    Ok(known.then(|| DigestDetail {
        digest: digest.to_owned(),
        manifests,
        tags,
        parents,
        children,
        referrers,
        blobs,
        pulls_per_day,
    }))
}

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SearchResults {
    /// Repositories whose name contains the text.
    pub repositories: Vec<TagRef>,
    /// Live tags whose name contains the text (with their repository).
    pub tags: Vec<TagRef>,
    /// Manifests whose digest starts with the text (6 or more hex digits).
    pub digests: Vec<ManifestRef>,
    /// Actors whose name contains the text, with a repository they used.
    pub actors: Vec<ActorHit>,
}

/// An actor found by a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ActorHit {
    /// User name.
    pub actor: String,
    /// Canonical registry name.
    pub registry: String,
    /// A repository the actor pushed or pulled.
    pub repository: String,
    /// Their pushes and pulls there.
    pub events: i64,
}

/// At most this many results of each kind.
const SEARCH_LIMIT: i64 = 50;

/// Repositories, tags, digests (6+ hex digits, with or without `sha256:`) and actors
/// matching `text`.
pub async fn search(db: &mut PgConnection, text: &str) -> Result<SearchResults, sqlx::Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(SearchResults::default());
    }
    // Substrings, case-insensitive: `LIKE` on lower case, which the trigram indexes of tags
    // and actors answer (migration 20261203000014_search_indexes.sql).
    let contains = format!("%{}%", crate::reports::like_escaped(&text.to_lowercase()));
    // Every repository the model knows (cached, or stale): a row per repository.
    let repositories: Vec<TagRef> = sqlx::query_as(
        "SELECT registry, repository, '' AS tag FROM (
             SELECT registry, repository FROM regstat.repository_contents
             UNION SELECT registry, repository FROM regstat.stale_repositories) r
         WHERE lower(repository) LIKE $1
         ORDER BY registry, repository LIMIT $2",
    )
    .bind(&contains)
    .bind(SEARCH_LIMIT)
    .fetch_all(&mut *db)
    .await?;
    let tags: Vec<TagRef> = sqlx::query_as(
        "SELECT registry, repository, tag FROM regstat.current_tags
         WHERE lower(tag) LIKE $1
         ORDER BY registry, repository, tag LIMIT $2",
    )
    .bind(&contains)
    .bind(SEARCH_LIMIT)
    .fetch_all(&mut *db)
    .await?;
    let hex = text
        .strip_prefix("sha256:")
        .unwrap_or(text)
        .to_ascii_lowercase();
    let digests: Vec<ManifestRef> = if hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{MANIFEST_REF} WHERE m.digest ~>=~ $1 AND m.digest ~<~ $2
             ORDER BY m.digest, m.registry, m.repository LIMIT $3"
        )))
        // Every digest starting with the prefix sorts between it and the prefix followed by
        // a character above every hex digit (a range the pattern index answers).
        .bind(format!("sha256:{hex}"))
        .bind(format!("sha256:{hex}g"))
        .bind(SEARCH_LIMIT)
        .fetch_all(&mut *db)
        .await?
    } else {
        Vec::new()
    };
    let actors: Vec<ActorHit> = sqlx::query_as(
        "SELECT actor, registry, repository, sum(events)::bigint AS events
         FROM regstat.actors WHERE actor <> '' AND lower(actor) LIKE $1
         GROUP BY actor, registry, repository
         ORDER BY actor, registry, repository LIMIT $2",
    )
    .bind(&contains)
    .bind(SEARCH_LIMIT)
    .fetch_all(&mut *db)
    .await?;
    Ok(SearchResults {
        repositories,
        tags,
        digests,
        actors,
    })
}
