//! The checks of what regstat saw against the registry and the rules.

mod manifests;
mod pulls;

use super::drive::{Images, Run, Seen};
use super::state::{Deletion, LedgerRow};
use super::{CHECKER_AGENT, READER, REGISTRY, REPOSITORIES, REPOSITORY_COUNTS, USER, Variant};
use std::collections::{BTreeMap, BTreeSet};

pub(super) struct Check<'a> {
    pub(super) variant: &'a Variant,
    pub(super) images: &'a Images,
    pub(super) run: &'a Run,
    pub(super) seen: &'a Seen,
    pub(super) host: &'a str,
}

impl Check<'_> {
    /// The actor the model should record for skopeo's requests.
    fn actor(&self) -> &'static str {
        if self.variant.htpasswd { USER } else { "" }
    }

    /// Every event is from `127.0.0.1:<port>`, so of registry "e2e"; the live tags are what
    /// the registry lists, on the digests it serves.
    pub(super) fn registry_and_tags(&self) {
        let (run, state) = (self.run, &self.seen.state);
        for row in &self.seen.rows {
            assert_eq!(row.request_host.as_deref(), Some(self.host), "{row:?}");
        }
        assert_eq!(
            state.registries,
            vec![REGISTRY.to_owned()],
            "registries in the state"
        );

        let expected: BTreeMap<String, Vec<String>> = [
            ("e2e/app", vec!["v1", "v2"]),
            ("e2e/copy", vec![]),
            ("e2e/docker", vec!["v1"]),
            ("e2e/multi", vec!["v1"]),
        ]
        .into_iter()
        .map(|(r, t)| (r.to_owned(), t.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(run.tags, expected, "the registry's own tag lists");
        let mut live: BTreeMap<String, Vec<String>> = REPOSITORIES
            .iter()
            .map(|r| ((*r).to_owned(), Vec::new()))
            .collect();
        for tag in &state.live_tags {
            live.entry(tag.repository.clone())
                .or_default()
                .push(tag.tag.clone());
            assert_eq!(
                tag.digest,
                run.served(&tag.repository, &tag.tag),
                "live tag {}:{} is not on the digest the registry serves",
                tag.repository,
                tag.tag
            );
        }
        assert_eq!(live, run.tags, "live_tags against the registry");
        let deleted = state.tag("e2e/copy", "v1");
        assert!(
            deleted.deleted_at.is_some(),
            "no tombstone for the deleted tag"
        );
    }

    /// e2e/copy's manifest is gone there (not from e2e/app); the audit trail names a manifest
    /// and a tag.
    pub(super) fn deletes(&self) {
        let state = &self.seen.state;
        let live: BTreeSet<(String, String)> = state.live_manifests.iter().cloned().collect();
        let expected: BTreeSet<(String, String)> = self
            .manifest_keys()
            .into_iter()
            .filter(|(r, _)| r != "e2e/copy")
            .collect();
        assert_eq!(live, expected, "live_manifests");
        let deletion = |digest: Option<&str>, tag: Option<&str>, kind: &str| Deletion {
            repository: "e2e/copy".into(),
            digest: digest.map(str::to_owned),
            tag: tag.map(str::to_owned),
            kind: kind.into(),
            actor: self.actor().into(),
        };
        let mut expected = vec![
            deletion(Some(&self.run.copy_digest), None, "manifest"),
            deletion(None, Some("v1"), "tag"),
        ];
        expected.sort();
        let mut deletions = state.deletions.clone();
        deletions.sort();
        assert_eq!(deletions, expected, "deletion_log");
    }

    /// Copying e2e/app:v1 to e2e/copy, skopeo knows from its blob info cache (written by the
    /// push to e2e/app) that the layer is there, and mounts it; the config it GETs from the
    /// source and uploads again.
    pub(super) fn mount(&self) {
        let (a, state) = (&self.images.a, &self.seen.state);
        let layer = state.blob("e2e/copy", &a.layer.digest);
        assert!(
            layer.via_mount && layer.mounted_from.as_deref() == Some("e2e/app"),
            "e2e/copy's layer was not mounted from e2e/app: {layer:?}\n{}",
            self.seen.dump()
        );
        let config = state.blob("e2e/copy", &a.config.digest);
        assert!(config.via_push && !config.via_mount, "{config:?}");
    }

    /// Who: skopeo (and the test's HEADs) as the user, regstat as its own user, never counted.
    pub(super) fn clients(&self) {
        for row in &self.seen.rows {
            let agent = row.agent();
            assert!(
                agent.starts_with("skopeo/") || row.is_regstat() || agent == CHECKER_AGENT,
                "an unexpected client: {}",
                row.summary()
            );
            let expected = match (self.variant.htpasswd, row.is_regstat()) {
                (false, _) => None,
                (true, true) => Some(READER),
                (true, false) => Some(USER),
            };
            assert_eq!(row.actor.as_deref(), expected, "{}", row.summary());
        }
        let expected: BTreeMap<(String, String, String), i64> = REPOSITORY_COUNTS
            .iter()
            .flat_map(|(repository, pushes, pulls)| {
                [("push", *pushes), ("pull", *pulls)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(move |(action, n)| {
                        let key = (
                            (*repository).to_owned(),
                            self.actor().to_owned(),
                            action.to_owned(),
                        );
                        (key, n)
                    })
            })
            .collect();
        assert_eq!(self.seen.state.actors, expected, "actors");
    }

    /// Each digest's content fetched once, by digest (e2e/copy's and e2e/app:v2's reused).
    pub(super) fn callbacks(&self) {
        let fetched = self.fetched_digests();
        let calls: Vec<&LedgerRow> = self.seen.callbacks().filter(|r| r.is_manifest()).collect();
        let called: BTreeSet<&str> = calls.iter().filter_map(|r| r.digest.as_deref()).collect();
        assert_eq!(called, fetched, "a callback per fetched digest");
        assert_eq!(
            calls.len(),
            fetched.len(),
            "each digest fetched at most once\n{}",
            self.seen.dump()
        );
        for row in &calls {
            assert!(row.get() && row.tag.is_none(), "{}", row.summary());
        }
    }

    fn fetched_digests(&self) -> BTreeSet<&str> {
        self.seen
            .state
            .manifests
            .iter()
            .filter(|m| m.fetch_status == "fetched")
            .map(|m| m.digest.as_str())
            .collect()
    }

    pub(super) fn summary(&self) {
        let seen = self.seen;
        let fetched_rows = seen
            .state
            .manifests
            .iter()
            .filter(|m| m.fetch_status == "fetched")
            .count();
        let callbacks = seen.callbacks().count();
        let manifest_callbacks = seen.callbacks().filter(|r| r.is_manifest()).count();
        let from = |prefix: &str| {
            seen.rows
                .iter()
                .filter(|r| r.agent().starts_with(prefix))
                .count()
        };
        println!(
            "e2e_model[{}]: events in: {} requests from the registry ({} answered 2xx), {} \
             distinct; ledger rows: {} ({} from skopeo, {} from regstat's callbacks, {} from the \
             test's HEADs); manifests fetched: {fetched_rows} rows, {} digests; callbacks made: {} \
             manifest GETs + {} blob GETs; content reused without a callback: {}",
            self.variant.name,
            seen.requests.0,
            seen.requests.1,
            seen.delivered.len(),
            seen.rows.len(),
            from("skopeo/"),
            callbacks,
            from(CHECKER_AGENT),
            self.fetched_digests().len(),
            manifest_callbacks,
            callbacks - manifest_callbacks,
            fetched_rows - manifest_callbacks,
        );
    }
}
