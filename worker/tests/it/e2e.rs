//! End to end: a real registry, skopeo, receiver, RabbitMQ, worker, Postgres.
//!
//! Debian's `docker-registry` (distribution 2.8) sends its notifications through a small
//! recording proxy to the receiver; skopeo pushes, copies, pulls and deletes an image. Every
//! event the registry delivered (the receiver answered 2xx) must end up in the ledger exactly
//! once, and nothing else may.

use crate::helpers::{TestDb, TestReceiver, TestWorker, settings};
use crate::support::{
    Notifications, OCI_MANIFEST, OciLayout, RecordingProxy, RegistryOptions, Scratch, free_port,
    require_tools, skopeo,
};
use regstat_shared::testkit::{self, TestBroker};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_events_land_in_the_ledger_exactly_once() {
    require_tools();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let settings = settings(&db, &broker, &[("REGSTAT__RECEIVER__TOKENS", &token)]);
    let receiver = TestReceiver::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings);
    let proxy = RecordingProxy::start(format!("{}/events", receiver.address));

    // Dropped first on a panic: kills the registry, then removes its files.
    let mut scratch = Scratch::new();
    let notifications = Notifications {
        url: proxy.url(),
        token: token.clone(),
        include_references: true,
    };
    let registry = scratch
        .start_registry_on(
            free_port(),
            &RegistryOptions::default(),
            Some(&notifications),
        )
        .await;
    let dir = scratch.dir.clone();
    let mut oci = OciLayout::new(&scratch, "oci");
    let image = oci.image("amd64", None).await;
    oci.tag("v1", &image.manifest);

    // Push, push again into a second repository (mounts), pull, delete by digest.
    let layout = oci.reference("v1");
    let app = format!("docker://{registry}/e2e/app:v1");
    let copy = format!("docker://{registry}/e2e/copy:v1");
    let pulled = format!("oci:{}:v1", dir.join("pulled").display());
    skopeo(
        &["copy", "--dest-tls-verify=false", &layout, &app],
        &scratch,
    )
    .await;
    let args = [
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &app,
        &copy,
    ];
    skopeo(&args, &scratch).await;
    skopeo(&["copy", "--src-tls-verify=false", &app, &pulled], &scratch).await;
    let inspected = skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &copy,
        ],
        &scratch,
    )
    .await;
    let digest = String::from_utf8(inspected)
        .expect("skopeo inspect prints UTF-8")
        .trim()
        .to_owned();
    assert_eq!(
        digest, image.manifest.digest,
        "e2e/copy:v1 is the manifest pushed"
    );
    let by_digest = format!("docker://{registry}/e2e/copy@{digest}");
    skopeo(&["delete", "--tls-verify=false", &by_digest], &scratch).await;

    // The registry sends one event per request, in order: once both deletes (the manifest by
    // digest, then its tag) are delivered, everything before them has been.
    testkit::eventually(
        Duration::from_secs(30),
        "the registry to deliver the delete events",
        || {
            let events = proxy.delivered_events();
            let deleted = |key: &str, value: &str| {
                events.iter().any(|e| {
                    e["action"] == "delete"
                        && e["target"]["repository"] == "e2e/copy"
                        && e["target"][key] == value
                })
            };
            let done = deleted("digest", &digest) && deleted("tag", "v1");
            async move { done.then_some(()) }
        },
    )
    .await;
    let delivered = proxy.delivered_ids();
    testkit::eventually(
        Duration::from_secs(30),
        "the ledger to hold every delivered event",
        || {
            let delivered = delivered.clone();
            let pool = db.pool.clone();
            async move {
                let ids: Vec<String> =
                    sqlx::query_scalar("SELECT regstat.event_id(e) FROM regstat.events e")
                        .fetch_all(&pool)
                        .await
                        .expect("read the ledger ids");
                // Every delivered id; the assertions below then say what differs, if anything.
                let ids: BTreeSet<String> = ids.into_iter().collect();
                delivered.is_subset(&ids).then_some(())
            }
        },
    )
    .await;

    // Exactly once: the same ids, each in one row.
    let rows: Vec<LedgerRow> = sqlx::query_as(
        "SELECT regstat.event_id(e) AS id, action, media_type, digest, repository, tag, \
         from_repository, request_method, request_useragent, correlation_id \
         FROM regstat.events e ORDER BY occurred_at, id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the ledger");
    let ledger_ids: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    let missing: Vec<_> = delivered.difference(&ledger_ids).collect();
    let extra: Vec<_> = ledger_ids.difference(&delivered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ledger differs from what was delivered: missing {missing:?}, extra {extra:?}"
    );
    let counts = db.ledger_counts().await;
    assert_eq!(counts.len(), delivered.len());
    assert!(
        counts.iter().all(|(_, n)| *n == 1),
        "an event id is in the ledger more than once: {counts:?}"
    );
    assert_eq!(db.ledger_len().await, i64::try_from(rows.len()).unwrap());
    let deliveries = proxy.deliveries();
    let answered_2xx = deliveries.iter().filter(|d| d.is_success()).count();
    assert!(
        answered_2xx >= delivered.len(),
        "{answered_2xx} requests answered 2xx carried {} distinct events",
        delivered.len()
    );

    // What skopeo did is in the ledger.
    let has = |what: &str, matches: &dyn Fn(&LedgerRow) -> bool| {
        assert!(
            rows.iter().any(matches),
            "no ledger row for {what}; rows:\n{}",
            rows.iter()
                .map(LedgerRow::summary)
                .collect::<Vec<_>>()
                .join("\n")
        );
    };
    has("the manifest pushed to e2e/app:v1", &|r| {
        r.action == "push"
            && r.repo() == "e2e/app"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.tag.as_deref() == Some("v1")
            && r.digest.as_deref() == Some(image.manifest.digest.as_str())
    });
    for blob in [&image.layer.digest, &image.config.digest] {
        has(&format!("the blob {blob} pushed to e2e/app"), &|r| {
            r.action == "push"
                && r.repo() == "e2e/app"
                && r.request_method.as_deref() == Some("PUT")
                && r.digest.as_deref() == Some(blob)
        });
    }
    // Copying into e2e/copy, skopeo knows from its blob info cache (written by the first push,
    // in /var/lib/containers/cache for root) that the layer is in e2e/app on the same registry:
    // it HEADs it there (a `pull` event) and mounts it instead of uploading it.
    let layer = Some(image.layer.digest.as_str());
    has("the layer HEAD in e2e/app before the mount", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.request_method.as_deref() == Some("HEAD")
            && r.digest.as_deref() == layer
    });
    has("the layer mounted into e2e/copy from e2e/app", &|r| {
        r.action == "mount"
            && r.repo() == "e2e/copy"
            && r.from_repository.as_deref() == Some("e2e/app")
            && r.digest.as_deref() == layer
    });
    // The config blob is never mounted: skopeo (containers/image) reads the config with a GET
    // and uploads it again, so it shows as a pull from e2e/app and a push to e2e/copy.
    let config = Some(image.config.digest.as_str());
    has("the config pulled from e2e/app", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.request_method.as_deref() == Some("GET")
            && r.digest.as_deref() == config
    });
    has("the config pushed again to e2e/copy", &|r| {
        r.action == "push"
            && r.repo() == "e2e/copy"
            && r.request_method.as_deref() == Some("PUT")
            && r.digest.as_deref() == config
    });
    assert!(
        !rows
            .iter()
            .any(|r| r.action == "mount" && r.digest.as_deref() == config),
        "the config blob was mounted: skopeo behaves differently from 1.9.3"
    );
    has("the manifest pushed to e2e/copy:v1", &|r| {
        r.action == "push"
            && r.repo() == "e2e/copy"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.tag.as_deref() == Some("v1")
    });
    has("the manifest pulled from e2e/app:v1", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.request_method.as_deref() == Some("GET")
    });
    has("the layer pulled from e2e/app", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.digest.as_deref() == Some(image.layer.digest.as_str())
            && r.request_method.as_deref() == Some("GET")
    });
    has("the manifest of e2e/copy deleted by digest", &|r| {
        r.action == "delete" && r.repo() == "e2e/copy" && r.digest.as_deref() == Some(&digest)
    });
    has("the tag e2e/copy:v1 deleted with its manifest", &|r| {
        r.action == "delete" && r.repo() == "e2e/copy" && r.tag.as_deref() == Some("v1")
    });
    for row in &rows {
        let agent = row.request_useragent.as_deref().unwrap_or_default();
        assert!(agent.contains("skopeo"), "not from skopeo: {row:?}");
        assert!(
            row.correlation_id.as_deref().is_some_and(|c| !c.is_empty()),
            "no correlation id: {row:?}"
        );
    }

    // Nothing left behind in the broker: the work queues drained, nothing quarantined or dead.
    let topology = &broker.topology;
    for queue in [topology.ingest_queue(), topology.manifest_queue()] {
        testkit::eventually(Duration::from_secs(10), "the work queues to drain", || {
            let broker = &broker;
            let queue = queue.clone();
            async move { (broker.depth(&queue).await == 0).then_some(()) }
        })
        .await;
    }
    assert_eq!(broker.depth(&topology.ingest_queue()).await, 0);
    assert_eq!(broker.depth(&topology.manifest_queue()).await, 0);
    assert_eq!(broker.depth(&topology.quarantine_queue()).await, 0);
    assert_eq!(broker.depth(&topology.dead_queue()).await, 0);

    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *by_action.entry(row.action.as_str()).or_default() += 1;
    }
    println!(
        "e2e: {} requests from the registry ({answered_2xx} answered 2xx), {} distinct events, \
         ledger rows by action {by_action:?}",
        deliveries.len(),
        delivered.len()
    );

    drop(scratch);
    proxy.stop().await;
    worker.stop().await;
    receiver.stop().await;
}

/// The ledger columns the test looks at.
#[derive(Debug, sqlx::FromRow)]
struct LedgerRow {
    id: String,
    action: String,
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    from_repository: Option<String>,
    request_method: Option<String>,
    request_useragent: Option<String>,
    correlation_id: Option<String>,
}

impl LedgerRow {
    fn repo(&self) -> &str {
        self.repository.as_deref().unwrap_or_default()
    }

    /// One line for failure messages.
    fn summary(&self) -> String {
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "{} {} {} {} {} tag={} from={} {}",
            self.action,
            self.repo(),
            field(&self.request_method),
            field(&self.media_type),
            field(&self.digest),
            field(&self.tag),
            field(&self.from_repository),
            field(&self.request_useragent),
        )
    }
}
