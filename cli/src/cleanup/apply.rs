//! `regstat cleanup apply`: carries out a plan against the registry, safely.
//!
//! Every row is re-checked against the current state first ([`recheck`], a pure function):
//! a tag pulled, version-checked, pushed or moved since the plan, or gone, is skipped with the
//! reason. Distribution 2.8 deletes manifests by digest only, which removes every tag pointing
//! at it, so a digest is deleted only when every tag that points at it now is a candidate that
//! passed the re-check and no kept row of the plan needs it; a candidate tag whose manifest
//! stays is skipped, saying so. An index's children go only with it, referrers before their
//! subject. Deletions stop at `--max-deletions` and at the first the registry refuses. The
//! blobs are freed by the registry's garbage collection, which the operator runs.

use regstat_store::cleanup::decide::{RepositoryState, RowKind, Verdict};
use regstat_store::cleanup::plan::{Plan, PlanRow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One manifest to delete, and the tags that go with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// The manifest.
    pub digest: String,
    /// What it is (referrers go first, then indexes, then the rest).
    pub kind: RowKind,
    /// The tags pointing at it, all candidates.
    pub tags: Vec<String>,
}

/// A candidate row not carried out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// The tag, if the row is one.
    pub tag: Option<String>,
    /// The manifest.
    pub digest: String,
    /// Why it is not deleted.
    pub reason: String,
}

/// What applying a plan now would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Work {
    /// Manifests to delete, in order.
    pub deletions: Vec<Deletion>,
    /// Candidate rows skipped, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Re-checks `plan`'s candidates against `current` (the repositories now, from the same
/// inventory the plan was made from) and says what to delete.
pub fn recheck(plan: &Plan, current: &[RepositoryState]) -> Work {
    let mut rows: BTreeMap<(&str, &str), Vec<&PlanRow>> = BTreeMap::new();
    for row in &plan.rows {
        rows.entry((row.registry.as_str(), row.repository.as_str()))
            .or_default()
            .push(row);
    }
    let mut work = Work::default();
    for ((registry, repository), rows) in rows {
        let now = current
            .iter()
            .find(|r| r.registry == registry && r.repository == repository);
        recheck_repository(&rows, now, &mut work);
    }
    work.deletions.sort_by_key(|d| {
        let rank = match d.kind {
            RowKind::Referrer => 0,
            RowKind::Index => 1,
            RowKind::Image | RowKind::Untagged => 2,
            RowKind::Child => 3,
        };
        (
            rank,
            d.registry.clone(),
            d.repository.clone(),
            d.digest.clone(),
        )
    });
    work
}

fn recheck_repository(rows: &[&PlanRow], now: Option<&RepositoryState>, work: &mut Work) {
    let skip = |row: &PlanRow, reason: String| Skipped {
        registry: row.registry.clone(),
        repository: row.repository.clone(),
        tag: row.tag.clone(),
        digest: row.digest.clone(),
        reason,
    };
    let candidates: Vec<&PlanRow> = rows
        .iter()
        .copied()
        .filter(|r| r.decision == Verdict::Delete)
        .collect();
    let Some(now) = now else {
        work.skipped.extend(
            candidates
                .iter()
                .map(|r| skip(r, "the repository is gone since the plan".to_owned())),
        );
        return;
    };
    let kept: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.decision == Verdict::Keep)
        .map(|r| r.digest.as_str())
        .collect();
    let tags_now: BTreeMap<&str, &regstat_store::cleanup::decide::TagState> =
        now.tags.iter().map(|t| (t.tag.as_str(), t)).collect();

    // Tags: unchanged since the plan, or skipped.
    let mut ready_tags: BTreeSet<&str> = BTreeSet::new();
    for row in candidates.iter().filter(|r| r.tag.is_some()) {
        let tag = row.tag.as_deref().unwrap_or_default();
        let changed = match tags_now.get(tag) {
            None => Some("the tag is gone since the plan".to_owned()),
            Some(t) if t.digest != row.digest => {
                Some(format!("the tag moved to {} since the plan", t.digest))
            }
            Some(t) if t.pushed_at != row.pushed_at => {
                Some("the tag was pushed since the plan".to_owned())
            }
            Some(t) if t.last_used_at != row.last_used_at => Some(format!(
                "the tag was used since the plan (last used {})",
                t.last_used_at
                    .map_or_else(|| "?".to_owned(), |at| at.to_rfc3339())
            )),
            Some(_) => None,
        };
        match changed {
            Some(reason) => work.skipped.push(skip(row, reason)),
            None => {
                ready_tags.insert(tag);
            }
        }
    }

    // Digests: deleted only when nothing that stays needs them.
    let mut digests: BTreeMap<&str, Vec<&PlanRow>> = BTreeMap::new();
    for row in &candidates {
        if row.tag.as_deref().is_none_or(|t| ready_tags.contains(t)) {
            digests.entry(row.digest.as_str()).or_default().push(row);
        }
    }
    let live: BTreeSet<&str> = now.manifests.iter().map(|m| m.digest.as_str()).collect();
    let mut going: BTreeMap<&str, (RowKind, Vec<String>)> = BTreeMap::new();
    for (digest, digest_rows) in &digests {
        let blockers: Vec<&str> = now
            .tags
            .iter()
            .filter(|t| t.digest == *digest && !ready_tags.contains(t.tag.as_str()))
            .map(|t| t.tag.as_str())
            .collect();
        let reason = if kept.contains(digest) {
            Some(
                "its manifest stays (a kept row of the plan needs it), and distribution \
                 deletes tags only with their manifest"
                    .to_owned(),
            )
        } else if !blockers.is_empty() {
            Some(format!(
                "tag {} points at the same manifest and is not a candidate now",
                blockers.join(", ")
            ))
        } else if !live.contains(digest) {
            Some("the manifest is gone since the plan".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            work.skipped
                .extend(digest_rows.iter().map(|r| skip(r, reason.clone())));
            continue;
        }
        let kind = digest_rows
            .iter()
            .find(|r| r.tag.is_some())
            .unwrap_or(&digest_rows[0])
            .kind;
        let tags = digest_rows.iter().filter_map(|r| r.tag.clone()).collect();
        going.insert(digest, (kind, tags));
    }
    // A child goes only with every index that lists it now.
    let mut children_kept: Vec<&str> = Vec::new();
    for (digest, (kind, _)) in &going {
        if *kind != RowKind::Child {
            continue;
        }
        let parents_stay = now.manifests.iter().any(|m| {
            m.children.iter().any(|c| c == digest) && !going.contains_key(m.digest.as_str())
        });
        if parents_stay {
            children_kept.push(digest);
        }
    }
    for digest in children_kept {
        going.remove(digest);
        work.skipped.extend(
            digests[digest]
                .iter()
                .map(|r| skip(r, "an index that stays lists it".to_owned())),
        );
    }
    work.deletions
        .extend(going.into_iter().map(|(digest, (kind, tags))| Deletion {
            registry: now.registry.clone(),
            repository: now.repository.clone(),
            digest: digest.to_owned(),
            kind,
            tags,
        }));
}
