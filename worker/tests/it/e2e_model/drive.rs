//! Running the scenario: the pipeline (database, broker, receiver, worker, recording proxy,
//! registry), the images, skopeo's steps, waiting for regstat to settle, and what it saw.

use super::clients::{RegistryApi, Skopeo};
use super::state::{LedgerRow, State, ledger};
use super::{
    READER, READER_PASSWORD, REGISTRY, REPOSITORIES, TAG_PULLS, USER, USER_PASSWORD, Variant,
};
use crate::helpers::{TestDb, TestReceiver, TestWorker, settings_with_file};
use crate::support::{
    Blob, DOCKER_MANIFEST, Image, Notifications, OciLayout, RecordingProxy, RegistryOptions,
    Scratch, sha256,
};
use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker, ports};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::Duration;

/// Everything running for one test. Fields drop in order: on a panic the registry is killed
/// (and every file removed) first.
pub(super) struct Pipeline {
    /// The registry's files (settings, layouts, storage) and process.
    pub(super) scratch: Scratch,
    /// `127.0.0.1:<port>` of the registry.
    pub(super) host: String,
    proxy: RecordingProxy,
    worker: TestWorker,
    receiver: TestReceiver,
    pub(super) broker: TestBroker,
    pub(super) db: TestDb,
}

impl Pipeline {
    pub(super) async fn start(variant: &Variant) -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let db = TestDb::new().await;
        let broker = TestBroker::new().await;
        let mut scratch = Scratch::new();
        // The registry's URL is in regstat's settings, which the receiver needs before the
        // registry can be told where to send its events: hold its port until it starts.
        let reserved = TcpListener::bind(("127.0.0.1", ports::free_port()))
            .expect("reserve the registry's port");
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
    pub(super) async fn assert_broker_empty(&self) {
        let topology = &self.broker.topology;
        let mut queues = topology.work_queues().to_vec();
        queues.extend(topology.retry_queues());
        queues.push(topology.quarantine_queue());
        queues.push(topology.dead_queue());
        for queue in &queues {
            assert_eq!(self.broker.depth(queue).await, 0, "{queue} is not empty");
        }
    }

    pub(super) async fn stop(self) {
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
pub(super) struct Images {
    pub(super) layout: OciLayout,
    pub(super) a: Image,
    pub(super) a2: Image,
    pub(super) b: Image,
    pub(super) m_amd64: Image,
    pub(super) m_arm64: Image,
    pub(super) m: Blob,
}

impl Images {
    pub(super) async fn build(scratch: &Scratch) -> Self {
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
pub(super) struct Run {
    /// (repository, tag) → `Docker-Content-Digest`, before the delete.
    served: BTreeMap<(String, String), String>,
    /// B as skopeo converted it.
    pub(super) b_digest: String,
    pub(super) b_manifest: Value,
    /// The digest deleted from e2e/copy.
    pub(super) copy_digest: String,
    /// repository → its tags, after the delete.
    pub(super) tags: BTreeMap<String, Vec<String>>,
}

impl Run {
    pub(super) fn served(&self, repository: &str, tag: &str) -> &str {
        &self.served[&(repository.to_owned(), tag.to_owned())]
    }
}

/// The scenario, then waits until regstat has seen all of it.
pub(super) async fn drive(pipeline: &Pipeline, images: &Images, variant: &Variant) -> Run {
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

/// Waits until the ledger holds every event the registry emitted (regstat's callbacks are
/// requests too, and make events of their own): exactly, without waiting "for a moment".
///
/// Checked in this order: the delivered ids (t1); every one of them recorded and the work
/// queues empty (t2), so every callback they cause was made; the registry holds no
/// undelivered event (t3); and no delivery arrived since t1 (t4). Then every event emitted
/// before t3, callbacks' included, was delivered before t1 and is recorded.
pub(super) async fn settle(pipeline: &Pipeline) {
    let Pipeline {
        scratch,
        proxy,
        db,
        broker,
        ..
    } = pipeline;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let work_queues = broker.topology.work_queues();
    loop {
        let requests = proxy.deliveries().len();
        let delivered = proxy.delivered_ids();
        let ids: BTreeSet<String> =
            sqlx::query_scalar::<_, String>("SELECT regstat.event_id(e) FROM regstat.events e")
                .fetch_all(&db.pool)
                .await
                .expect("read the ledger ids")
                .into_iter()
                .collect();
        let mut settled = delivered.is_subset(&ids);
        for queue in &work_queues {
            settled = settled && broker.depth(queue).await == 0;
        }
        if settled
            && scratch.pending_notifications().await == 0
            && proxy.deliveries().len() == requests
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the ledger to hold every event the registry emitted: \
             missing {:?}, registry pending {}",
            delivered.difference(&ids).collect::<Vec<_>>(),
            scratch.pending_notifications().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What regstat made of it.
pub(super) struct Seen {
    /// Ids of the events the registry delivered.
    pub(super) delivered: BTreeSet<String>,
    /// The registry's requests to the proxy: (all, answered 2xx).
    pub(super) requests: (usize, usize),
    pub(super) rows: Vec<LedgerRow>,
    pub(super) state: State,
}

impl Seen {
    pub(super) async fn read(pipeline: &Pipeline) -> Self {
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
    pub(super) fn dump(&self) -> String {
        self.rows
            .iter()
            .map(LedgerRow::summary)
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(super) fn callbacks(&self) -> impl Iterator<Item = &LedgerRow> {
        self.rows.iter().filter(|r| r.is_regstat())
    }
}

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
