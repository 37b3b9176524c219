//! The registry model (`docs/MODEL.md`) against a real registry: skopeo pushes, copies,
//! re-tags, pulls and deletes on Debian's `docker-registry` (distribution 2.8), which notifies
//! the receiver through the recording proxy; the worker calls the registry back for manifest
//! contents. The derived state must agree with what the registry itself serves (its tag lists
//! and `Docker-Content-Digest`s), and every counter with the rules applied to the ledger.
//!
//! What skopeo 1.9.3 does, measured, and what it means for the counters (every GET of a
//! manifest by a client other than regstat is a pull, MODEL.md):
//! - a registry-to-registry `skopeo copy` GETs the source manifest by tag: copying
//!   `e2e/app:v1` (to `e2e/copy:v1`, and to `e2e/app:v2` to re-tag it) pulls `e2e/app:v1` twice;
//! - `skopeo delete` GETs the manifest (for its digest) before the DELETE: one pull of
//!   `e2e/copy@<digest>`;
//! - `skopeo copy docker://... oci:...` GETs the manifest once (for an index: the index by tag,
//!   then the chosen child by digest).

use crate::helpers::{TestDb, TestReceiver, TestWorker, settings_with_file};
use crate::support::{
    BLOB_MEDIA_TYPE, Blob, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, Image,
    Notifications, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, OciLayout, RecordingProxy,
    RegistryOptions, Scratch, require_tools, sha256, skopeo,
};
use chrono::{DateTime, Utc};
use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::Duration;

/// The registry's canonical name in regstat's settings.
const REGISTRY: &str = "e2e";
/// The user skopeo pushes and pulls as (htpasswd variant).
const USER: &str = "alice";
const USER_PASSWORD: &str = "alice-pw-e2e";
/// The user regstat calls back as (htpasswd variant): must never show in `actors`.
const READER: &str = "regstat-reader";
const READER_PASSWORD: &str = "reader-pw-e2e";
/// The test's own requests to the registry API.
const CHECKER_AGENT: &str = "regstat-e2e-check/1";
/// The four manifest types: without them OCI content answers 404.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
const REPOSITORIES: [&str; 4] = ["e2e/app", "e2e/copy", "e2e/docker", "e2e/multi"];

/// What varies between the tests.
struct Variant {
    name: &'static str,
    /// htpasswd auth on the registry; skopeo and regstat authenticate (as different users).
    htpasswd: bool,
    /// `notifications.events.includereferences`.
    include_references: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_with_references() {
    scenario(Variant {
        name: "anonymous",
        htpasswd: false,
        include_references: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_htpasswd_auth() {
    scenario(Variant {
        name: "htpasswd",
        htpasswd: true,
        include_references: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_references() {
    scenario(Variant {
        name: "no-references",
        htpasswd: false,
        include_references: false,
    })
    .await;
}

/// `tags.pull_count`: GETs naming the tag (the module comment says what skopeo GETs).
const TAG_PULLS: [(&str, &str, i64); 5] = [
    ("e2e/app", "v1", 2),  // the two registry-to-registry copies read it by tag
    ("e2e/app", "v2", 1),  // pulled by tag
    ("e2e/copy", "v1", 0), // the delete read it by digest
    ("e2e/docker", "v1", 1),
    ("e2e/multi", "v1", 1), // the index, by tag
];

/// `repository_stats`: (repository, pushes (manifest PUTs), pulls (image-manifest GETs)); the
/// same numbers per actor in `actors`.
const REPOSITORY_COUNTS: [(&str, i64, i64); 4] = [
    ("e2e/app", 3, 4),  // A v1, A v2, A2 v1; the two copies, v2, A2 by digest
    ("e2e/copy", 1, 1), // the copy; skopeo delete's GET
    ("e2e/docker", 1, 1),
    ("e2e/multi", 3, 1), // two children and the index; the arm64 child (not the index)
];

async fn scenario(variant: Variant) {
    require_tools();
    let pipeline = Pipeline::start(&variant).await;
    let images = Images::build(&pipeline.scratch).await;
    let run = drive(&pipeline, &images, &variant).await;
    let seen = Seen::read(&pipeline).await;
    let check = Check {
        variant: &variant,
        images: &images,
        run: &run,
        seen: &seen,
        host: &pipeline.host,
    };
    check.registry_and_tags();
    check.manifests();
    check.deletes();
    check.pulls();
    check.counters_against_the_ledger();
    check.mount();
    check.clients();
    check.callbacks();
    pipeline.assert_broker_empty().await;
    check.summary();
    pipeline.stop().await;
}

/// Everything running for one test. Fields drop in order: on a panic the registry is killed
/// (and every file removed) first.
struct Pipeline {
    /// The registry's files (settings, layouts, storage) and process.
    scratch: Scratch,
    /// `127.0.0.1:<port>` of the registry.
    host: String,
    proxy: RecordingProxy,
    worker: TestWorker,
    receiver: TestReceiver,
    broker: TestBroker,
    db: TestDb,
}

impl Pipeline {
    async fn start(variant: &Variant) -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let db = TestDb::new().await;
        let broker = TestBroker::new().await;
        let mut scratch = Scratch::new();
        // The registry's URL is in regstat's settings, which the receiver needs before the
        // registry can be told where to send its events: hold its port until it starts.
        let reserved = TcpListener::bind("127.0.0.1:0").expect("reserve the registry's port");
        let port = reserved.local_addr().expect("reserved address").port();
        let host = format!("127.0.0.1:{port}");
        let settings = load_settings(&db, &broker, &host, &token, variant.htpasswd);
        let receiver = TestReceiver::spawn(&settings).await;
        let worker = TestWorker::spawn(&settings);
        let proxy = RecordingProxy::start(format!("{}/events", receiver.address));
        let mut options = RegistryOptions::default();
        if variant.htpasswd {
            let user = bcrypt::hash(USER_PASSWORD, 4).expect("bcrypt");
            let reader = bcrypt::hash(READER_PASSWORD, 4).expect("bcrypt");
            let file = format!("{USER}:{user}\n{READER}:{reader}\n");
            options.htpasswd = Some(scratch.write("htpasswd", file));
        }
        let notifications = Notifications {
            url: proxy.url(),
            token,
            include_references: variant.include_references,
        };
        drop(reserved);
        let started = scratch
            .start_registry_on(port, &options, Some(&notifications))
            .await;
        assert_eq!(started, host);
        Self {
            scratch,
            host,
            proxy,
            worker,
            receiver,
            broker,
            db,
        }
    }

    /// Nothing left behind in the broker: work and retry queues drained, nothing quarantined
    /// or dead.
    async fn assert_broker_empty(&self) {
        let topology = &self.broker.topology;
        let mut queues = topology.work_queues().to_vec();
        queues.extend(topology.retry_queues());
        queues.push(topology.quarantine_queue());
        queues.push(topology.dead_queue());
        for queue in &queues {
            assert_eq!(self.broker.depth(queue).await, 0, "{queue} is not empty");
        }
    }

    async fn stop(self) {
        let Self {
            scratch,
            proxy,
            worker,
            receiver,
            ..
        } = self;
        drop(scratch);
        proxy.stop().await;
        worker.stop().await;
        receiver.stop().await;
    }
}

/// The images, in an OCI layout: A and A2 (amd64), B (arm64, pushed as Docker v2s2), M (an
/// index of an amd64 and an arm64/v8 image).
struct Images {
    layout: OciLayout,
    a: Image,
    a2: Image,
    b: Image,
    m_amd64: Image,
    m_arm64: Image,
    m: Blob,
}

impl Images {
    async fn build(scratch: &Scratch) -> Self {
        let mut layout = OciLayout::new(scratch, "oci");
        let a = layout.image("amd64", None).await;
        let a2 = layout.image("amd64", None).await;
        let b = layout.image("arm64", None).await;
        let m_amd64 = layout.image("amd64", None).await;
        let m_arm64 = layout.image("arm64", Some("v8")).await;
        let m = layout.index(&[&m_amd64, &m_arm64]);
        layout.tag("a", &a.manifest);
        layout.tag("a2", &a2.manifest);
        layout.tag("b", &b.manifest);
        layout.tag("m", &m);
        Self {
            layout,
            a,
            a2,
            b,
            m_amd64,
            m_arm64,
            m,
        }
    }
}

/// What the registry served during the run.
struct Run {
    /// (repository, tag) → `Docker-Content-Digest`, before the delete.
    served: BTreeMap<(String, String), String>,
    /// B as skopeo converted it.
    b_digest: String,
    b_manifest: Value,
    /// The digest deleted from e2e/copy.
    copy_digest: String,
    /// repository → its tags, after the delete.
    tags: BTreeMap<String, Vec<String>>,
}

impl Run {
    fn served(&self, repository: &str, tag: &str) -> &str {
        &self.served[&(repository.to_owned(), tag.to_owned())]
    }
}

/// The scenario, then waits until regstat has seen all of it.
async fn drive(pipeline: &Pipeline, images: &Images, variant: &Variant) -> Run {
    let Images {
        layout, a, a2, m, ..
    } = images;
    let creds = format!("{USER}:{USER_PASSWORD}");
    let sk = Skopeo {
        scratch: &pipeline.scratch,
        host: pipeline.host.clone(),
        creds: variant.htpasswd.then_some(creds.as_str()),
    };
    // 1-3: push A, B (converted to Docker v2 schema 2), M with its children.
    sk.push(&layout.reference("a"), "e2e/app:v1", &[]).await;
    let v2s2 = ["--format", "v2s2"];
    sk.push(&layout.reference("b"), "e2e/docker:v1", &v2s2)
        .await;
    sk.push(&layout.reference("m"), "e2e/multi:v1", &["--all"])
        .await;
    // 4: copy into a second repository (skopeo mounts the layer from e2e/app).
    sk.copy("e2e/app:v1", "e2e/copy:v1").await;
    // 5: re-tag: the same manifest under a second tag.
    sk.copy("e2e/app:v1", "e2e/app:v2").await;
    // 6: v1 moves to A2; v2 stays on A.
    sk.push(&layout.reference("a2"), "e2e/app:v1", &[]).await;
    // 7: pulls: by tag, one platform of an index, by digest, a Docker image.
    sk.pull("e2e/app:v2", &[]).await;
    let arm64_v8 = ["--override-arch", "arm64", "--override-variant", "v8"];
    sk.pull("e2e/multi:v1", &arm64_v8).await;
    sk.pull(&format!("e2e/app@{}", a2.manifest.digest), &[])
        .await;
    sk.pull("e2e/docker:v1", &[]).await;

    // What the registry serves now (HEADs: in the ledger, no effect on the model).
    let api = RegistryApi::new(&pipeline.host, variant.htpasswd);
    let mut served = BTreeMap::new();
    for (repository, tag, _) in TAG_PULLS {
        let digest = api.digest(repository, tag).await;
        served.insert((repository.to_owned(), tag.to_owned()), digest);
    }
    let served_digest = |repository: &str, tag: &str| -> String {
        served[&(repository.to_owned(), tag.to_owned())].clone()
    };
    assert_eq!(served_digest("e2e/app", "v1"), a2.manifest.digest);
    assert_eq!(served_digest("e2e/app", "v2"), a.manifest.digest);
    assert_eq!(served_digest("e2e/copy", "v1"), a.manifest.digest);
    assert_eq!(served_digest("e2e/multi", "v1"), m.digest);
    // B's digest is of the bytes skopeo converted it to: read them from the registry's storage
    // (a GET would be one more pull).
    let b_digest = served_digest("e2e/docker", "v1");
    let b_manifest = stored_blob(&pipeline.scratch, &b_digest);
    assert_eq!(b_manifest["mediaType"], DOCKER_MANIFEST);

    // 8: delete e2e/copy's manifest by digest (and so its tag).
    let copy_digest = served_digest("e2e/copy", "v1");
    sk.delete(&format!("e2e/copy@{copy_digest}")).await;

    // The registry delivers one event at a time, in order: once the deletes are in, so is
    // everything before them.
    testkit::eventually(
        Duration::from_secs(30),
        "the registry to deliver the delete events",
        || {
            let events = pipeline.proxy.delivered_events();
            let deleted = |key: &str, value: &str| {
                events.iter().any(|e| {
                    e["action"] == "delete"
                        && e["target"]["repository"] == "e2e/copy"
                        && e["target"][key] == value
                })
            };
            let done = deleted("digest", &copy_digest) && deleted("tag", "v1");
            async move { done.then_some(()) }
        },
    )
    .await;
    settle(pipeline).await;

    let mut tags = BTreeMap::new();
    for repository in REPOSITORIES {
        tags.insert(repository.to_owned(), api.tags(repository).await);
    }
    Run {
        served,
        b_digest,
        b_manifest,
        copy_digest,
        tags,
    }
}

/// Waits until the ledger holds every event the registry delivered, the work queues are
/// empty, and nothing new arrived for a moment (regstat's callbacks are requests too).
async fn settle(pipeline: &Pipeline) {
    let Pipeline {
        proxy, db, broker, ..
    } = pipeline;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let work_queues = broker.topology.work_queues();
    loop {
        let requests = proxy.deliveries().len();
        let delivered = proxy.delivered_ids();
        let ids: BTreeSet<String> =
            sqlx::query_scalar::<_, String>("SELECT id FROM regstat.events")
                .fetch_all(&db.pool)
                .await
                .expect("read the ledger ids")
                .into_iter()
                .collect();
        let mut idle = delivered.is_subset(&ids);
        for queue in &work_queues {
            idle = idle && broker.depth(queue).await == 0;
        }
        if idle {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let rows = usize::try_from(db.ledger_len().await).expect("a row count");
            if proxy.deliveries().len() == requests && rows == ids.len() {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the ledger to hold every delivered event: missing {:?}",
            delivered.difference(&ids).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What regstat made of it.
struct Seen {
    /// Ids of the events the registry delivered.
    delivered: BTreeSet<String>,
    /// The registry's requests to the proxy: (all, answered 2xx).
    requests: (usize, usize),
    rows: Vec<LedgerRow>,
    state: State,
}

impl Seen {
    async fn read(pipeline: &Pipeline) -> Self {
        let deliveries = pipeline.proxy.deliveries();
        let seen = Self {
            delivered: pipeline.proxy.delivered_ids(),
            requests: (
                deliveries.len(),
                deliveries.iter().filter(|d| d.is_success()).count(),
            ),
            rows: ledger(&pipeline.db).await,
            state: State::read(&pipeline.db).await,
        };
        let ids: BTreeSet<String> = seen.rows.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, seen.delivered, "the ledger is what was delivered");
        assert_eq!(
            seen.rows.len(),
            ids.len(),
            "an event id twice in the ledger"
        );
        seen
    }

    /// The ledger, one line per row, for failure messages.
    fn dump(&self) -> String {
        self.rows
            .iter()
            .map(LedgerRow::summary)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn callbacks(&self) -> impl Iterator<Item = &LedgerRow> {
        self.rows.iter().filter(|r| r.is_regstat())
    }
}

struct Check<'a> {
    variant: &'a Variant,
    images: &'a Images,
    run: &'a Run,
    seen: &'a Seen,
    host: &'a str,
}

impl Check<'_> {
    /// The actor the model should record for skopeo's requests.
    fn actor(&self) -> &'static str {
        if self.variant.htpasswd { USER } else { "" }
    }

    /// Every event is from `127.0.0.1:<port>`, so of registry "e2e"; the live tags are what
    /// the registry lists, on the digests it serves.
    fn registry_and_tags(&self) {
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

    /// Every manifest fetched by a callback, with its media type, platform and references,
    /// whether or not the events carried references.
    fn manifests(&self) {
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

    fn manifest_keys(&self) -> BTreeSet<(String, String)> {
        self.expected_manifests()
            .iter()
            .map(|(r, d, ..)| ((*r).to_owned(), (*d).to_owned()))
            .collect()
    }

    /// e2e/copy's manifest is gone there (not from e2e/app); the audit trail names a manifest
    /// and a tag.
    fn deletes(&self) {
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

    /// Pulls as the rules count them.
    fn pulls(&self) {
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
    fn counters_against_the_ledger(&self) {
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

    /// Copying e2e/app:v1 to e2e/copy, skopeo knows from its blob info cache (written by the
    /// push to e2e/app) that the layer is there, and mounts it; the config it GETs from the
    /// source and uploads again.
    fn mount(&self) {
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
    fn clients(&self) {
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
    fn callbacks(&self) {
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

    fn summary(&self) {
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

type ExpectedManifest<'a> = (&'a str, &'a str, &'a str, Option<Platform>, Vec<Ref>);

/// Settings from a config file naming the registry (lists cannot come from the environment),
/// pointed at the test database and broker, accepting `token`.
fn load_settings(
    db: &TestDb,
    broker: &TestBroker,
    host: &str,
    token: &str,
    credentials: bool,
) -> Settings {
    let mut file = format!("[[registries]]\nname = \"{REGISTRY}\"\nurl = \"http://{host}\"\n");
    if credentials {
        file.push_str(&format!(
            "username = \"{READER}\"\npassword = \"{READER_PASSWORD}\"\n"
        ));
    }
    let settings = settings_with_file(db, broker, &file, &[("REGSTAT__RECEIVER__TOKENS", token)]);
    assert_eq!(settings.registries.len(), 1);
    assert_eq!(settings.registries[0].name, REGISTRY);
    assert_eq!(settings.registries[0].username.is_some(), credentials);
    settings
}

/// A manifest (or blob) as the registry stores it: read from its storage directory, not
/// over HTTP (a GET would be a pull).
fn stored_blob(scratch: &Scratch, digest: &str) -> Value {
    let hex = digest.trim_start_matches("sha256:");
    let path = scratch
        .dir
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(sha256(&bytes), digest, "stored bytes of {digest}");
    serde_json::from_slice(&bytes).expect("a JSON manifest")
}

// ---------------------------------------------------------------------------------------------
// The clients: skopeo, and the test's own requests to the registry API.

struct Skopeo<'a> {
    scratch: &'a Scratch,
    host: String,
    /// `user:password` for htpasswd.
    creds: Option<&'a str>,
}

impl Skopeo<'_> {
    fn docker(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host)
    }

    async fn run(&self, global: &[&str], args: &[String]) {
        let mut all: Vec<&str> = global.to_vec();
        all.extend(args.iter().map(String::as_str));
        skopeo(&all, self.scratch).await;
    }

    fn creds(&self, flag: &str) -> Vec<String> {
        self.creds
            .map(|c| vec![flag.to_owned(), c.to_owned()])
            .unwrap_or_default()
    }

    /// From the OCI layout to the registry.
    async fn push(&self, source: &str, destination: &str, flags: &[&str]) {
        let mut args = vec!["copy".to_owned(), "--dest-tls-verify=false".to_owned()];
        args.extend(self.creds("--dest-creds"));
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        args.extend([source.to_owned(), self.docker(destination)]);
        self.run(&[], &args).await;
    }

    /// Registry to registry.
    async fn copy(&self, source: &str, destination: &str) {
        let mut args = vec![
            "copy".to_owned(),
            "--src-tls-verify=false".to_owned(),
            "--dest-tls-verify=false".to_owned(),
        ];
        args.extend(self.creds("--src-creds"));
        args.extend(self.creds("--dest-creds"));
        args.extend([self.docker(source), self.docker(destination)]);
        self.run(&[], &args).await;
    }

    /// From the registry into a fresh OCI layout.
    async fn pull(&self, source: &str, global: &[&str]) {
        let into = self
            .scratch
            .dir
            .join(format!("pulled-{}", uuid::Uuid::new_v4().simple()));
        let mut args = vec!["copy".to_owned(), "--src-tls-verify=false".to_owned()];
        args.extend(self.creds("--src-creds"));
        args.extend([self.docker(source), format!("oci:{}:x", into.display())]);
        self.run(global, &args).await;
    }

    async fn delete(&self, reference: &str) {
        let mut args = vec!["delete".to_owned(), "--tls-verify=false".to_owned()];
        args.extend(self.creds("--creds"));
        args.push(self.docker(reference));
        self.run(&[], &args).await;
    }
}

/// The registry's own API, as the test reads it.
struct RegistryApi {
    base: String,
    client: reqwest::Client,
    auth: bool,
}

impl RegistryApi {
    fn new(host: &str, auth: bool) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(CHECKER_AGENT)
            .build()
            .expect("HTTP client");
        Self {
            base: format!("http://{host}/v2"),
            client,
            auth,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}/{path}", self.base));
        if self.auth {
            request.basic_auth(USER, Some(USER_PASSWORD))
        } else {
            request
        }
    }

    /// `GET /v2/<repository>/tags/list`, sorted; none when the repository has none.
    async fn tags(&self, repository: &str) -> Vec<String> {
        let response = self
            .request(reqwest::Method::GET, &format!("{repository}/tags/list"))
            .send()
            .await
            .expect("tags/list");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert!(response.status().is_success(), "{response:?}");
        let body: Value = response.json().await.expect("tags/list JSON");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|t| t.as_str().expect("a tag").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// `Docker-Content-Digest` of a HEAD of the manifest (a HEAD counts as no pull).
    async fn digest(&self, repository: &str, reference: &str) -> String {
        let response = self
            .request(
                reqwest::Method::HEAD,
                &format!("{repository}/manifests/{reference}"),
            )
            .header("Accept", ACCEPT)
            .send()
            .await
            .expect("HEAD manifest");
        assert!(
            response.status().is_success(),
            "HEAD {repository}:{reference}: {response:?}"
        );
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .expect("Docker-Content-Digest")
            .to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger and the state, as the test reads them.

#[derive(Debug, sqlx::FromRow)]
struct LedgerRow {
    id: String,
    action: String,
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    from_repository: Option<String>,
    actor: Option<String>,
    request_host: Option<String>,
    request_method: Option<String>,
    request_useragent: Option<String>,
    has_references: bool,
}

impl LedgerRow {
    fn repo(&self) -> &str {
        self.repository.as_deref().unwrap_or_default()
    }

    fn agent(&self) -> &str {
        self.request_useragent.as_deref().unwrap_or_default()
    }

    fn is_regstat(&self) -> bool {
        self.agent().starts_with("regstat/")
    }

    fn get(&self) -> bool {
        self.request_method.as_deref() == Some("GET")
    }

    /// A manifest event, as the model tells: any media type but a blob's, or a tag.
    fn is_manifest(&self) -> bool {
        match self.media_type.as_deref() {
            Some(BLOB_MEDIA_TYPE) => false,
            Some(_) => true,
            None => self.tag.is_some(),
        }
    }

    /// One line for failure messages.
    fn summary(&self) -> String {
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

async fn ledger(db: &TestDb) -> Vec<LedgerRow> {
    sqlx::query_as(
        "SELECT id, action, media_type, digest, repository, tag, from_repository, actor, \
         request_host, request_method, request_useragent, \
         (raw #> '{target,references}') IS NOT NULL AS has_references \
         FROM regstat.events ORDER BY occurred_at, id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the ledger")
}

type Platform = (&'static str, &'static str, Option<&'static str>);
type OwnedPlatform = (Option<String>, Option<String>, Option<String>);

fn owned_platform((os, architecture, variant): Platform) -> OwnedPlatform {
    (
        Some(os.to_owned()),
        Some(architecture.to_owned()),
        variant.map(str::to_owned),
    )
}

/// A `manifest_references` row (registry, repository and manifest digest aside).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Ref {
    role: String,
    position: i32,
    digest: String,
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

fn reference(
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
struct ManifestRow {
    repository: String,
    digest: String,
    media_type: Option<String>,
    fetch_status: String,
    config_digest: Option<String>,
    pull_count: i64,
    last_pulled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct TagRow {
    repository: String,
    tag: String,
    digest: String,
    pull_count: i64,
    last_pulled_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, sqlx::FromRow)]
struct BlobRow {
    repository: String,
    digest: String,
    via_push: bool,
    via_mount: bool,
    mounted_from: Option<String>,
    pull_count: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct ArchPull {
    repository: String,
    tag: String,
    digest: String,
    pulls: i64,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
struct Deletion {
    repository: String,
    digest: Option<String>,
    tag: Option<String>,
    kind: String,
    actor: String,
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
struct State {
    registries: Vec<String>,
    manifests: Vec<ManifestRow>,
    platforms: BTreeMap<(String, String), OwnedPlatform>,
    references: Vec<RefRow>,
    tags: Vec<TagRow>,
    live_tags: Vec<TagRow>,
    live_manifests: Vec<(String, String)>,
    blobs: Vec<BlobRow>,
    deletions: Vec<Deletion>,
    pulls_by_architecture: Vec<ArchPull>,
    /// repository → (pushes, pulls, system pulls).
    repository_stats: BTreeMap<String, (i64, i64, i64)>,
    /// (repository, actor, action) → events.
    actors: BTreeMap<(String, String, String), i64>,
}

impl State {
    async fn read(db: &TestDb) -> Self {
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

    fn manifest(&self, repository: &str, digest: &str) -> &ManifestRow {
        self.manifests
            .iter()
            .find(|m| m.repository == repository && m.digest == digest)
            .unwrap_or_else(|| panic!("no manifests row for {repository}@{digest}"))
    }

    /// From `manifest_platforms`; `None` when it has none (an index).
    fn platform(&self, repository: &str, digest: &str) -> Option<OwnedPlatform> {
        let platform = self
            .platforms
            .get(&(repository.to_owned(), digest.to_owned()))
            .unwrap_or_else(|| panic!("no manifest_platforms row for {repository}@{digest}"));
        (platform != &(None, None, None)).then(|| platform.clone())
    }

    fn references(&self, repository: &str, digest: &str) -> Vec<Ref> {
        self.references
            .iter()
            .filter(|r| r.repository == repository && r.manifest_digest == digest)
            .map(|r| r.reference.clone())
            .collect()
    }

    fn tag(&self, repository: &str, tag: &str) -> &TagRow {
        self.tags
            .iter()
            .find(|t| t.repository == repository && t.tag == tag)
            .unwrap_or_else(|| panic!("no tags row for {repository}:{tag}"))
    }

    fn live_tag(&self, repository: &str, tag: &str) -> &TagRow {
        self.live_tags
            .iter()
            .find(|t| t.repository == repository && t.tag == tag)
            .unwrap_or_else(|| panic!("no live_tags row for {repository}:{tag}"))
    }

    fn blob(&self, repository: &str, digest: &str) -> &BlobRow {
        self.blobs
            .iter()
            .find(|b| b.repository == repository && b.digest == digest)
            .unwrap_or_else(|| panic!("no blobs row for {repository}@{digest}"))
    }
}
