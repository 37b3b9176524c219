//! The pull counters: as the scenario expects them, and as the rules make them of the ledger.

use super::Check;
use crate::e2e_model::state::{ArchPull, LedgerRow};
use crate::e2e_model::{REPOSITORY_COUNTS, TAG_PULLS};
use crate::support::{DOCKER_LIST, OCI_INDEX};
use std::collections::BTreeMap;

impl Check<'_> {
    /// Pulls as the rules count them.
    pub(in crate::e2e_model) fn pulls(&self) {
        let (images, run, state) = (self.images, self.run, &self.seen.state);
        for (repository, tag, count) in TAG_PULLS {
            assert_eq!(
                state.tag(repository, tag).pull_count,
                count,
                "tags.pull_count of {repository}:{tag}\n{}",
                self.seen.dump()
            );
        }
        let manifest_pulls = [
            ("e2e/app", &images.a.manifest.digest, 3), // two copies, the pull of v2
            ("e2e/app", &images.a2.manifest.digest, 1), // by digest
            ("e2e/copy", &images.a.manifest.digest, 1), // skopeo delete's GET
            ("e2e/docker", &run.b_digest, 1),
            ("e2e/multi", &images.m.digest, 1),
            ("e2e/multi", &images.m_arm64.manifest.digest, 1), // the child pulled
            ("e2e/multi", &images.m_amd64.manifest.digest, 0),
        ];
        for (repository, digest, count) in manifest_pulls {
            assert_eq!(
                state.manifest(repository, digest).pull_count,
                count,
                "manifests.pull_count of {repository}@{digest}\n{}",
                self.seen.dump()
            );
        }
        for (repository, pushes, pulls) in REPOSITORY_COUNTS {
            assert_eq!(
                state.repository_stats[repository],
                (pushes, pulls, 0),
                "repository_stats (pushes, pulls, system pulls) of {repository}"
            );
        }

        // e2e/multi: one image pull, of arm64/v8; the index GET has no architecture.
        let multi: Vec<&ArchPull> = state
            .pulls_by_architecture
            .iter()
            .filter(|p| p.repository == "e2e/multi")
            .collect();
        let pulled: Vec<_> = multi
            .iter()
            .map(|p| {
                (
                    p.tag.as_str(),
                    p.digest.as_str(),
                    p.architecture.as_deref(),
                    p.variant.as_deref(),
                    p.pulls,
                )
            })
            .collect();
        let mut expected = vec![
            (
                "",
                images.m_arm64.manifest.digest.as_str(),
                Some("arm64"),
                Some("v8"),
                1,
            ),
            ("v1", images.m.digest.as_str(), None, None, 1),
        ];
        expected.sort();
        let mut pulled = pulled;
        pulled.sort();
        assert_eq!(pulled, expected, "pulls_by_architecture of e2e/multi");

        // Last pulled: e2e/app:v1 by its manifest's pull by digest (after the copies read the
        // tag); e2e/multi:v1 by its child's pull (after the index GET).
        let a2_pulled = state
            .manifest("e2e/app", &images.a2.manifest.digest)
            .last_pulled_at;
        assert!(a2_pulled.is_some());
        let app_v1 = state.live_tag("e2e/app", "v1");
        assert_eq!(app_v1.last_pulled_at, a2_pulled, "live_tags e2e/app:v1");
        let by_tag = state.tag("e2e/app", "v1").last_pulled_at;
        assert!(
            by_tag.is_some() && by_tag < a2_pulled,
            "the copies' pulls by tag came before the pull by digest"
        );
        let child_pulled = state
            .manifest("e2e/multi", &images.m_arm64.manifest.digest)
            .last_pulled_at;
        let index_pulled = state.tag("e2e/multi", "v1").last_pulled_at;
        assert_eq!(
            state.live_tag("e2e/multi", "v1").last_pulled_at,
            child_pulled.max(index_pulled),
            "live_tags e2e/multi:v1"
        );
    }

    /// Every counter is what the rules make of the ledger: regstat's own requests (its
    /// callbacks, User-Agent regstat/...) and HEADs count for nothing.
    pub(in crate::e2e_model) fn counters_against_the_ledger(&self) {
        let (rows, state) = (&self.seen.rows, &self.seen.state);
        let counted = |r: &&LedgerRow| r.action == "pull" && r.get() && !r.is_regstat();
        let mut by_manifest: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut by_tag: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut image_pulls: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_blob: BTreeMap<(String, String), i64> = BTreeMap::new();
        for r in rows.iter().filter(counted) {
            let key = (r.repo().to_owned(), r.digest.clone().unwrap_or_default());
            if !r.is_manifest() {
                *by_blob.entry(key).or_default() += 1;
                continue;
            }
            *by_manifest.entry(key).or_default() += 1;
            if let Some(tag) = &r.tag {
                *by_tag
                    .entry((r.repo().to_owned(), tag.clone()))
                    .or_default() += 1;
            }
            if !matches!(r.media_type.as_deref(), Some(OCI_INDEX | DOCKER_LIST)) {
                *image_pulls.entry(r.repo().to_owned()).or_default() += 1;
            }
        }
        let count = |map: &BTreeMap<(String, String), i64>, a: &str, b: &str| {
            map.get(&(a.to_owned(), b.to_owned()))
                .copied()
                .unwrap_or_default()
        };
        for m in &state.manifests {
            assert_eq!(
                m.pull_count,
                count(&by_manifest, &m.repository, &m.digest),
                "manifests.pull_count of {}@{} against the ledger\n{}",
                m.repository,
                m.digest,
                self.seen.dump()
            );
        }
        for t in &state.tags {
            assert_eq!(
                t.pull_count,
                count(&by_tag, &t.repository, &t.tag),
                "tags.pull_count of {}:{} against the ledger",
                t.repository,
                t.tag
            );
        }
        for (repository, (_, pulls, _)) in &state.repository_stats {
            assert_eq!(
                *pulls,
                image_pulls.get(repository).copied().unwrap_or_default(),
                "repository_stats.pulls of {repository} against the ledger"
            );
        }
        for b in &state.blobs {
            assert_eq!(
                b.pull_count,
                count(&by_blob, &b.repository, &b.digest),
                "blobs.pull_count of {}@{} against the ledger",
                b.repository,
                b.digest
            );
        }
        assert!(
            self.seen.callbacks().any(|r| r.get()),
            "regstat's callbacks are not in the ledger: did the registry stop notifying them?"
        );
    }
}
