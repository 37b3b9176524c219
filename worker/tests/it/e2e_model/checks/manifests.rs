//! The manifests: what was fetched, with media types, platforms and references.

use super::Check;
use crate::e2e_model::drive::Images;
use crate::e2e_model::state::{Platform, Ref, owned_platform, reference};
use crate::support::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, Image, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_MANIFEST,
};
use std::collections::BTreeSet;

impl Check<'_> {
    /// Every manifest fetched by a callback, with its media type, platform and references,
    /// whether or not the events carried references.
    pub(in crate::e2e_model) fn manifests(&self) {
        let state = &self.seen.state;
        for (repository, digest, media_type, platform, references) in self.expected_manifests() {
            let row = state.manifest(repository, digest);
            let what = format!("{repository}@{digest}");
            assert_eq!(row.fetch_status, "fetched", "{what}");
            assert_eq!(row.media_type.as_deref(), Some(media_type), "{what}");
            assert_eq!(
                state.platform(repository, digest),
                platform.map(owned_platform),
                "platform of {what}"
            );
            let config = references
                .iter()
                .find(|r| r.role == "config")
                .map(|r| r.digest.clone());
            assert_eq!(row.config_digest, config, "config of {what}");
            assert_eq!(
                state.references(repository, digest),
                references,
                "references of {what}"
            );
        }
        let keys = self.manifest_keys();
        let recorded: BTreeSet<(String, String)> = state
            .manifests
            .iter()
            .map(|m| (m.repository.clone(), m.digest.clone()))
            .collect();
        assert_eq!(recorded, keys, "manifests recorded");

        // The events carry references only with includereferences.
        let pushes = self
            .seen
            .rows
            .iter()
            .filter(|r| r.action == "push" && r.is_manifest());
        for row in pushes {
            assert_eq!(
                row.has_references,
                self.variant.include_references,
                "references in {}",
                row.summary()
            );
        }
    }

    /// (repository, digest, media type, platform, references) of every manifest pushed.
    fn expected_manifests(&self) -> Vec<ExpectedManifest<'_>> {
        let Images {
            a,
            a2,
            b,
            m_amd64,
            m_arm64,
            m,
            ..
        } = self.images;
        let b_config = self.run.b_manifest["config"]["digest"]
            .as_str()
            .expect("B's config");
        let b_refs = vec![
            reference("config", 0, b_config, DOCKER_CONFIG, None),
            reference("layer", 0, &b.layer.digest, DOCKER_LAYER, None),
        ];
        let amd64 = Some(("linux", "amd64", None));
        let arm64 = Some(("linux", "arm64", None));
        let arm64_v8 = Some(("linux", "arm64", Some("v8")));
        let m_refs = vec![
            reference("manifest", 0, &m_amd64.manifest.digest, OCI_MANIFEST, amd64),
            reference(
                "manifest",
                1,
                &m_arm64.manifest.digest,
                OCI_MANIFEST,
                arm64_v8,
            ),
        ];
        fn image<'a>(
            repository: &'a str,
            image: &'a Image,
            platform: Option<Platform>,
        ) -> ExpectedManifest<'a> {
            let references = vec![
                reference("config", 0, &image.config.digest, OCI_CONFIG, None),
                reference("layer", 0, &image.layer.digest, OCI_LAYER, None),
            ];
            let digest = image.manifest.digest.as_str();
            (repository, digest, OCI_MANIFEST, platform, references)
        }
        vec![
            image("e2e/app", a, amd64),
            image("e2e/app", a2, amd64),
            image("e2e/copy", a, amd64),
            (
                "e2e/docker",
                self.run.b_digest.as_str(),
                DOCKER_MANIFEST,
                arm64,
                b_refs,
            ),
            ("e2e/multi", m.digest.as_str(), OCI_INDEX, None, m_refs),
            image("e2e/multi", m_amd64, amd64),
            image("e2e/multi", m_arm64, arm64_v8),
        ]
    }

    pub(super) fn manifest_keys(&self) -> BTreeSet<(String, String)> {
        self.expected_manifests()
            .iter()
            .map(|(r, d, ..)| ((*r).to_owned(), (*d).to_owned()))
            .collect()
    }
}

type ExpectedManifest<'a> = (&'a str, &'a str, &'a str, Option<Platform>, Vec<Ref>);
