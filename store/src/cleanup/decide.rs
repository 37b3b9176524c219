//! The decision: for one repository's tags and live manifests, which a policy keeps and which
//! are candidates, each with its reason. A pure function of the state and the time, so the plan
//! and its re-check at apply time decide alike, and tests can state every rule as a row.
//!
//! - A tag is a candidate only if no rule of its policy keeps it; nothing younger than
//!   `min_age` (or of unknown age) is ever a candidate.
//! - Everything a kept tag reaches is kept: an index's children, and the referrers of a kept
//!   manifest (OCI `subject`, or the `sha256-<hex>.sig|.att|.sbom` tag convention).
//! - A referrer goes only together with its subject; a child only with its index.
//! - A candidate tag whose manifest another kept tag points at is deleted as a tag only: its
//!   manifest stays.
//! - Untagged manifests follow the policy's `untagged`, once older than `min_age`.
//! - A repository no policy matches is kept whole.

use super::policy::{Policies, Policy, Untagged};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One live tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagState {
    /// The tag.
    pub tag: String,
    /// The manifest it points at.
    pub digest: String,
    /// Its newest push, if regstat saw one.
    pub pushed_at: Option<DateTime<Utc>>,
    /// The latest of its non-system pulls, version checks and push (docs/MODEL.md, "Ages and
    /// last use"), else when regstat first saw it; `None`: unknown.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Its age reference (pushed, else built, else first seen); `None`: unknown.
    pub age_at: Option<DateTime<Utc>>,
}

/// One live manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestState {
    /// Its digest.
    pub digest: String,
    /// An index (its children are in `children`).
    pub is_index: bool,
    /// The manifests an index lists.
    pub children: Vec<String>,
    /// The manifest it refers to (OCI `subject`): it is a signature, SBOM or attestation.
    pub subject: Option<String>,
    /// Its age reference; `None`: unknown.
    pub age_at: Option<DateTime<Utc>>,
    /// The blobs it references (config and layers) with their sizes, when known.
    pub blobs: Vec<(String, Option<i64>)>,
}

/// A repository as the plan sees it.
#[derive(Debug, Clone, Default)]
pub struct RepositoryState {
    /// Canonical registry name.
    pub registry: String,
    /// Repository name.
    pub repository: String,
    /// Its live tags.
    pub tags: Vec<TagState>,
    /// Its live manifests.
    pub manifests: Vec<ManifestState>,
}

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    /// A tag of an image manifest.
    Image,
    /// A tag of an index, or an untagged index.
    Index,
    /// A manifest an index lists (untagged).
    Child,
    /// A signature, SBOM or attestation (by `subject` or by tag convention).
    Referrer,
    /// An untagged image manifest.
    Untagged,
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Stays.
    Keep,
    /// A candidate for deletion.
    Delete,
}

/// One decision, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The tag, or `None` for an untagged manifest.
    pub tag: Option<String>,
    /// The manifest.
    pub digest: String,
    /// What it is.
    pub kind: RowKind,
    /// Keep or delete.
    pub verdict: Verdict,
    /// The rule that kept it, or why it is a candidate.
    pub reason: String,
}

/// `sha256-<hex>.sig|.att|.sbom`: the tag convention (cosign, notation's predecessors) that
/// names a referrer after its subject's digest; the subject's digest.
pub fn referrer_tag_subject(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = rest.split_once('.')?;
    let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex && matches!(suffix, "sig" | "att" | "sbom")).then(|| format!("sha256:{hex}"))
}

/// Decides every tag and untagged manifest of `state` under `policies` as of `now`.
pub fn decide(policies: &Policies, state: &RepositoryState, now: DateTime<Utc>) -> Vec<Decision> {
    let manifests: BTreeMap<&str, &ManifestState> = state
        .manifests
        .iter()
        .map(|m| (m.digest.as_str(), m))
        .collect();
    let Some(policy) = policies.for_repository(&state.repository) else {
        return keep_everything(state, &manifests);
    };
    let plain: Vec<&TagState> = state
        .tags
        .iter()
        .filter(|t| subject_of(t, &manifests).is_none())
        .collect();

    // Tags: kept by a rule, or candidates.
    let mut tag_reasons: BTreeMap<&str, (Verdict, String)> = BTreeMap::new();
    for tag in &plain {
        let verdict = match keeps(policy, tag, &plain, now) {
            Some(reason) => (Verdict::Keep, reason),
            None => (Verdict::Delete, candidate_reason(policy, tag)),
        };
        tag_reasons.insert(tag.tag.as_str(), verdict);
    }

    // Everything a kept tag reaches is kept: the manifest, an index's children.
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for tag in &plain {
        if tag_reasons[tag.tag.as_str()].0 == Verdict::Keep {
            reach(&tag.digest, &manifests, &mut kept);
        }
    }
    // Untagged manifests the policy keeps (untagged = keep, or too young) are kept with theirs.
    let tagged: BTreeSet<&str> = state.tags.iter().map(|t| t.digest.as_str()).collect();
    let listed: BTreeSet<&str> = state
        .manifests
        .iter()
        .flat_map(|m| m.children.iter().map(String::as_str))
        .collect();
    let mut untagged_reasons: BTreeMap<&str, (Verdict, String)> = BTreeMap::new();
    for manifest in &state.manifests {
        let digest = manifest.digest.as_str();
        if tagged.contains(digest) || listed.contains(digest) || manifest.subject.is_some() {
            continue;
        }
        let verdict = match (policy.untagged, young(policy, manifest.age_at, now)) {
            (Untagged::Keep, _) => (
                Verdict::Keep,
                format!(
                    "untagged, kept (policy[{}] untagged = \"keep\")",
                    policy.index
                ),
            ),
            (Untagged::Delete, Some(why)) => (Verdict::Keep, why),
            (Untagged::Delete, None) => (
                Verdict::Delete,
                format!("untagged (policy[{}] untagged = \"delete\")", policy.index),
            ),
        };
        if verdict.0 == Verdict::Keep {
            reach(digest, &manifests, &mut kept);
        }
        untagged_reasons.insert(digest, verdict);
    }

    let mut decisions = Vec::new();
    for tag in &state.tags {
        let kind = tag_kind(tag, &manifests);
        let (verdict, reason) = match subject_of(tag, &manifests) {
            Some(subject) => with_subject(&subject, &kept, &manifests),
            None => {
                let (verdict, reason) = tag_reasons[tag.tag.as_str()].clone();
                if verdict == Verdict::Delete && kept.contains(tag.digest.as_str()) {
                    let keeper = keeper_of(&tag.digest, state, &tag_reasons);
                    (
                        verdict,
                        format!("{reason}; the tag goes, its manifest stays ({keeper})"),
                    )
                } else {
                    (verdict, reason)
                }
            }
        };
        decisions.push(Decision {
            tag: Some(tag.tag.clone()),
            digest: tag.digest.clone(),
            kind,
            verdict,
            reason,
        });
    }
    for manifest in &state.manifests {
        let digest = manifest.digest.as_str();
        if tagged.contains(digest) {
            continue;
        }
        let (kind, (verdict, reason)) = if let Some(subject) = &manifest.subject {
            (RowKind::Referrer, with_subject(subject, &kept, &manifests))
        } else if let Some(decided) = untagged_reasons.get(digest) {
            (untagged_kind(manifest), decided.clone())
        } else if kept.contains(digest) {
            (
                RowKind::Child,
                (Verdict::Keep, "listed by a kept index".to_owned()),
            )
        } else {
            (
                RowKind::Child,
                (
                    Verdict::Delete,
                    "listed only by indexes that are candidates: goes with them".to_owned(),
                ),
            )
        };
        decisions.push(Decision {
            tag: None,
            digest: manifest.digest.clone(),
            kind,
            verdict,
            reason,
        });
    }
    decisions
}

/// A repository no policy matches: everything stays.
fn keep_everything(
    state: &RepositoryState,
    manifests: &BTreeMap<&str, &ManifestState>,
) -> Vec<Decision> {
    let reason = || "no policy matches the repository: kept whole".to_owned();
    let tagged: BTreeSet<&str> = state.tags.iter().map(|t| t.digest.as_str()).collect();
    let tags = state.tags.iter().map(|tag| Decision {
        tag: Some(tag.tag.clone()),
        digest: tag.digest.clone(),
        kind: tag_kind(tag, manifests),
        verdict: Verdict::Keep,
        reason: reason(),
    });
    let untagged = state
        .manifests
        .iter()
        .filter(|m| !tagged.contains(m.digest.as_str()))
        .map(|m| Decision {
            tag: None,
            digest: m.digest.clone(),
            kind: untagged_kind(m),
            verdict: Verdict::Keep,
            reason: reason(),
        });
    tags.chain(untagged).collect()
}

/// What a tag is: a referrer's, an index's or an image's.
fn tag_kind(tag: &TagState, manifests: &BTreeMap<&str, &ManifestState>) -> RowKind {
    if subject_of(tag, manifests).is_some() {
        RowKind::Referrer
    } else if manifests
        .get(tag.digest.as_str())
        .is_some_and(|m| m.is_index)
    {
        RowKind::Index
    } else {
        RowKind::Image
    }
}

/// What an untagged manifest is, unless an index lists it (then it is a child).
fn untagged_kind(manifest: &ManifestState) -> RowKind {
    if manifest.subject.is_some() {
        RowKind::Referrer
    } else if manifest.is_index {
        RowKind::Index
    } else {
        RowKind::Untagged
    }
}

/// The subject of a referrer tag: by the manifest's `subject`, or by the tag convention.
fn subject_of(tag: &TagState, manifests: &BTreeMap<&str, &ManifestState>) -> Option<String> {
    manifests
        .get(tag.digest.as_str())
        .and_then(|m| m.subject.clone())
        .or_else(|| referrer_tag_subject(&tag.tag))
}

/// A referrer's fate is its subject's.
fn with_subject(
    subject: &str,
    kept: &BTreeSet<&str>,
    manifests: &BTreeMap<&str, &ManifestState>,
) -> (Verdict, String) {
    if kept.contains(subject) {
        (Verdict::Keep, format!("refers to {subject}, which is kept"))
    } else if manifests.contains_key(subject) {
        (
            Verdict::Delete,
            format!("refers to {subject}, a candidate: goes with it"),
        )
    } else {
        (
            Verdict::Keep,
            format!("refers to {subject}, which regstat does not know here: kept"),
        )
    }
}

/// Marks `digest` and, for an index, its children as kept.
fn reach<'a>(
    digest: &'a str,
    manifests: &BTreeMap<&str, &'a ManifestState>,
    kept: &mut BTreeSet<&'a str>,
) {
    if !kept.insert(digest) {
        return;
    }
    if let Some(manifest) = manifests.get(digest) {
        for child in &manifest.children {
            reach(child, manifests, kept);
        }
    }
}

/// Why `age_at` keeps something under `min_age`, if it does.
fn young(policy: &Policy, age_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    let Some(age_at) = age_at else {
        return Some("age unknown: never a candidate".to_owned());
    };
    let min_age = chrono::Duration::from_std(policy.min_age).unwrap_or(chrono::Duration::MAX);
    (now - age_at < min_age).then(|| {
        format!(
            "younger than min_age {} (policy[{}])",
            humantime::format_duration(policy.min_age),
            policy.index
        )
    })
}

/// The first rule that keeps `tag`, as a reason; `None`: a candidate.
fn keeps(
    policy: &Policy,
    tag: &TagState,
    repository: &[&TagState],
    now: DateTime<Utc>,
) -> Option<String> {
    let rule = |name: &str| format!("policy[{}] keep.{name}", policy.index);
    if let Some(why) = young(policy, tag.age_at, now) {
        return Some(why);
    }
    if let Some(pattern) = policy.keep.tags.iter().find(|p| p.is_match(&tag.tag)) {
        return Some(format!("{} '{}'", rule("tags"), pattern.as_str()));
    }
    let within = |at: Option<DateTime<Utc>>, span: std::time::Duration| {
        let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
        at.is_some_and(|at| now - at <= span)
    };
    if let Some(span) = policy.keep.used_within {
        if tag.last_used_at.is_none() {
            return Some("last use unknown: never a candidate".to_owned());
        }
        if within(tag.last_used_at, span) {
            return Some(format!(
                "{} {}",
                rule("used_within"),
                humantime::format_duration(span)
            ));
        }
    }
    if let Some(span) = policy.keep.pushed_within
        && within(tag.pushed_at, span)
    {
        return Some(format!(
            "{} {}",
            rule("pushed_within"),
            humantime::format_duration(span)
        ));
    }
    if let Some(n) = policy.keep.most_recently_used
        && rank(repository, tag, |t| t.last_used_at) < n
    {
        return Some(format!("{} {n}", rule("most_recently_used")));
    }
    if let Some(n) = policy.keep.most_recently_pushed
        && rank(repository, tag, |t| t.pushed_at) < n
    {
        return Some(format!("{} {n}", rule("most_recently_pushed")));
    }
    None
}

/// How many of the repository's tags are more recent than `tag` by `at` (unknown counts as
/// oldest; ties by tag name, so the rank is stable).
fn rank(
    repository: &[&TagState],
    tag: &TagState,
    at: impl Fn(&TagState) -> Option<DateTime<Utc>>,
) -> usize {
    let key = |t: &TagState| (std::cmp::Reverse(at(t)), t.tag.clone());
    let mine = key(tag);
    repository.iter().filter(|t| key(t) < mine).count()
}

/// Why an unkept tag is a candidate.
fn candidate_reason(policy: &Policy, tag: &TagState) -> String {
    let at = |at: Option<DateTime<Utc>>| {
        at.map_or_else(
            || "unknown".to_owned(),
            |at| at.format("%Y-%m-%d").to_string(),
        )
    };
    format!(
        "no rule of policy[{}] keeps it (last used {}, pushed {})",
        policy.index,
        at(tag.last_used_at),
        at(tag.pushed_at)
    )
}

/// Names a kept tag pointing at `digest`, or says an index or referrer keeps it.
fn keeper_of(
    digest: &str,
    state: &RepositoryState,
    reasons: &BTreeMap<&str, (Verdict, String)>,
) -> String {
    state
        .tags
        .iter()
        .find(|t| {
            t.digest == digest
                && reasons
                    .get(t.tag.as_str())
                    .is_some_and(|(v, _)| *v == Verdict::Keep)
        })
        .map_or_else(
            || "a kept manifest reaches it".to_owned(),
            |t| format!("kept tag {} points at it", t.tag),
        )
}
