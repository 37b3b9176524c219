//! A cleanup plan: every tag and untagged manifest in scope with its decision, its reason, what
//! it was used for lately and the bytes deleting it would free; totals per repository; and
//! what the plan was made from (the policy's hash, the newest ledger event it saw), so that
//! applying it later can tell what changed since. Reads only.

use super::decide::{self, Decision, RepositoryState, RowKind, Verdict};
use super::inventory;
use super::policy::Policies;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

/// Which repositories a plan covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One registry (canonical name); `None`: all.
    pub registry: Option<String>,
    /// Repositories matching this glob (`*` in a segment, `**` across); `None`: all.
    pub repository: Option<glob::Pattern>,
}

/// The newest ledger event a plan saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct NewestEvent {
    /// Its id.
    pub id: String,
    /// When the receiver accepted it.
    pub received_at: DateTime<Utc>,
}

/// One tag or untagged manifest of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRow {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// The tag; `None` for an untagged manifest.
    pub tag: Option<String>,
    /// The manifest.
    pub digest: String,
    /// What it is.
    pub kind: RowKind,
    /// Keep or delete.
    pub decision: Verdict,
    /// The rule that kept it, or why it is a candidate.
    pub reason: String,
    /// The tag's newest push (`None`: not seen, or untagged).
    pub pushed_at: Option<DateTime<Utc>>,
    /// The tag's last use: non-system pull, version check or push (`None`: untagged or unknown).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Non-system pulls in the 30 days before the plan (by tag; by digest for an untagged
    /// manifest).
    pub pulls_30d: i64,
    /// Bytes of the blobs that deleting it frees: those no kept manifest of the repository
    /// references (0 when its manifest stays; unknown sizes count as 0).
    pub bytes_freed: i64,
}

/// A repository's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryTotals {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Rows kept.
    pub kept: usize,
    /// Rows that are candidates.
    pub candidates: usize,
    /// Bytes freed by deleting every candidate (each blob once), once the registry's garbage
    /// collection runs.
    pub bytes_freed: i64,
}

/// A plan, as `regstat cleanup plan --output` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The policy file's path, if it came from one.
    pub policy_file: Option<String>,
    /// `sha256:` of the policy file's text.
    pub policy_hash: String,
    /// The newest ledger event it saw (`None`: an empty ledger).
    pub newest_event: Option<NewestEvent>,
    /// Every tag and untagged manifest in scope.
    pub rows: Vec<PlanRow>,
    /// Per repository.
    pub totals: Vec<RepositoryTotals>,
}

/// Makes the plan of `policies` for the repositories in `scope`, as of `now`.
pub async fn plan(
    pool: &PgPool,
    policies: &Policies,
    policy_file: Option<String>,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Plan, sqlx::Error> {
    let newest_event: Option<NewestEvent> = sqlx::query_as(
        "SELECT regstat.event_id(e) AS id, e.received_at FROM regstat.events e
         ORDER BY e.received_at DESC, e.id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let repositories = inventory::repositories(pool, scope.registry.as_deref()).await?;
    let pulls = pulls_30d(pool, scope.registry.as_deref(), now).await?;
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for state in repositories.iter().filter(|r| {
        scope
            .repository
            .as_ref()
            .is_none_or(|p| p.matches_with(&r.repository, super::policy::MATCH))
    }) {
        let decisions = decide::decide(policies, state, now);
        let (repository_rows, repository_totals) = describe(state, decisions, &pulls);
        rows.extend(repository_rows);
        totals.push(repository_totals);
    }
    Ok(Plan {
        created_at: now,
        policy_file,
        policy_hash: policies.hash.clone(),
        newest_event,
        rows,
        totals,
    })
}

/// Non-system pulls of the 30 days before `now`, by (registry, repository, tag or `''`,
/// digest).
type Pulls = BTreeMap<(String, String, String, String), i64>;

async fn pulls_30d(
    pool: &PgPool,
    registry: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Pulls, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT registry, repository, tag, digest, sum(pulls)::bigint
         FROM regstat.pull_metrics
         WHERE NOT system AND day > ($1::timestamptz - interval '30 days')::date
           AND ($2::text IS NULL OR registry = $2)
         GROUP BY registry, repository, tag, digest",
    )
    .bind(now)
    .bind(registry)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(registry, repository, tag, digest, pulls)| {
            ((registry, repository, tag, digest), pulls)
        })
        .collect())
}

/// The rows and totals of one repository's decisions.
fn describe(
    state: &RepositoryState,
    decisions: Vec<Decision>,
    pulls: &Pulls,
) -> (Vec<PlanRow>, RepositoryTotals) {
    // A manifest goes when every row that names it goes.
    let mut stays: BTreeSet<&str> = BTreeSet::new();
    for decision in &decisions {
        if decision.verdict == Verdict::Keep {
            stays.insert(decision.digest.as_str());
        }
    }
    let manifests: BTreeMap<&str, &decide::ManifestState> = state
        .manifests
        .iter()
        .map(|m| (m.digest.as_str(), m))
        .collect();
    let mut kept_blobs: BTreeSet<&str> = BTreeSet::new();
    for digest in &stays {
        for (blob, _) in blobs_of(digest, &manifests) {
            kept_blobs.insert(blob);
        }
    }
    let freed = |digest: &str| -> BTreeMap<&str, i64> {
        if stays.contains(digest) {
            return BTreeMap::new();
        }
        blobs_of(digest, &manifests)
            .into_iter()
            .filter(|(blob, _)| !kept_blobs.contains(blob))
            .map(|(blob, size)| (blob, size.unwrap_or(0)))
            .collect()
    };
    let tags: BTreeMap<&str, &decide::TagState> =
        state.tags.iter().map(|t| (t.tag.as_str(), t)).collect();
    let mut repository_freed: BTreeMap<&str, i64> = BTreeMap::new();
    let mut rows = Vec::new();
    for decision in &decisions {
        let tag = decision.tag.as_deref().and_then(|t| tags.get(t));
        let blobs = if decision.verdict == Verdict::Delete {
            freed(&decision.digest)
        } else {
            BTreeMap::new()
        };
        repository_freed.extend(blobs.iter().map(|(b, s)| (*b, *s)));
        let key = (
            state.registry.clone(),
            state.repository.clone(),
            decision.tag.clone().unwrap_or_default(),
            decision.digest.clone(),
        );
        rows.push(PlanRow {
            registry: state.registry.clone(),
            repository: state.repository.clone(),
            tag: decision.tag.clone(),
            digest: decision.digest.clone(),
            kind: decision.kind,
            decision: decision.verdict,
            reason: decision.reason.clone(),
            pushed_at: tag.and_then(|t| t.pushed_at),
            last_used_at: tag.and_then(|t| t.last_used_at),
            pulls_30d: pulls.get(&key).copied().unwrap_or(0),
            bytes_freed: blobs.values().sum(),
        });
    }
    let candidates = rows
        .iter()
        .filter(|r| r.decision == Verdict::Delete)
        .count();
    let totals = RepositoryTotals {
        registry: state.registry.clone(),
        repository: state.repository.clone(),
        kept: rows.len() - candidates,
        candidates,
        bytes_freed: repository_freed.values().sum(),
    };
    (rows, totals)
}

/// The blobs of a manifest, and of an index's children.
fn blobs_of<'a>(
    digest: &str,
    manifests: &BTreeMap<&str, &'a decide::ManifestState>,
) -> Vec<(&'a str, Option<i64>)> {
    let Some(manifest) = manifests.get(digest) else {
        return Vec::new();
    };
    let mut blobs: Vec<(&'a str, Option<i64>)> = manifest
        .blobs
        .iter()
        .map(|(blob, size)| (blob.as_str(), *size))
        .collect();
    for child in &manifest.children {
        if let Some(child) = manifests.get(child.as_str()) {
            blobs.extend(
                child
                    .blobs
                    .iter()
                    .map(|(blob, size)| (blob.as_str(), *size)),
            );
        }
    }
    blobs
}
