//! Syncs and events together: a tombstone written by a sync at T loses to a push after T and
//! wins over an older one, whichever is applied first, and a sync running while a worker
//! applies events loses nothing.

use super::{LiveTag, REGISTRY, Setup, live_tags, quiet, tag};
use crate::helpers::TestDb;
use chrono::{DateTime, Duration, Utc};
use regstat_cli::sync::sync;
use regstat_shared::config::Settings;
use regstat_worker::handler::{Context, Incoming, Outcome, handle_batch};
use serde_json::json;

/// A handler context where the test registry is configured, so events from its host are
/// recorded under [`REGISTRY`] and their manifests fetched from it.
fn context(db: &TestDb, host: &str) -> Context {
    let mut settings = Settings::load_with_env(None, Vec::new()).unwrap();
    settings.registries = vec![crate::support::settings(
        REGISTRY,
        &format!("http://{host}"),
    )];
    Context::new(db.pool.clone(), &settings).unwrap()
}

/// A manifest push event as distribution sends it, at `at`.
fn push(
    host: &str,
    repository: &str,
    tag: &str,
    digest: &str,
    size: u64,
    at: DateTime<Utc>,
) -> Incoming {
    let event = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "timestamp": at.to_rfc3339(),
        "action": "push",
        "target": {
            "mediaType": crate::support::OCI_MANIFEST,
            "size": size,
            "digest": digest,
            "length": size,
            "repository": repository,
            "url": format!("http://{host}/v2/{repository}/manifests/{digest}"),
            "tag": tag,
        },
        "request": {
            "id": uuid::Uuid::new_v4().to_string(),
            "addr": "127.0.0.1:40000",
            "host": host,
            "method": "PUT",
            "useragent": "skopeo/1.9.3",
        },
        "actor": {},
        "source": {"addr": "registry:5000", "instanceID": "sync-test"},
    });
    Incoming {
        body: event.to_string().into_bytes(),
        correlation_id: None,
        received_at: None,
    }
}

async fn apply(context: &Context, events: &[Incoming]) {
    let (outcomes, _) = handle_batch(context, events).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
}

async fn live_manifests(db: &TestDb) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT repository, digest FROM regstat.live_manifests WHERE registry = $1 ORDER BY 1, 2",
    )
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Live tags without the columns only pushes and pulls explain.
fn names(tags: Vec<LiveTag>) -> Vec<(String, String, String)> {
    tags.into_iter().map(|(r, t, d, ..)| (r, t, d)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_tombstone_loses_to_newer_pushes_and_wins_over_older_ones() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    let amd64 = setup.layout.amd64.clone();
    let arm64 = setup.layout.arm64.clone();
    // Database A holds sync/app:v1 → amd64 from a sync before the delete.
    setup.sync().await;
    // Deleted without an event; then two pushes of v1 arrive late, one from before the sync
    // that notices (an older in-flight event), one from after it.
    setup
        .delete(&format!("sync/app@{}", amd64.manifest.digest))
        .await;
    let now = Utc::now();
    let older = push(
        &setup.host,
        "sync/app",
        "v1",
        &amd64.manifest.digest,
        amd64.manifest.size,
        now - Duration::hours(1),
    );
    let newer = push(
        &setup.host,
        "sync/app",
        "v1",
        &arm64.manifest.digest,
        arm64.manifest.size,
        now + Duration::hours(1),
    );
    let a = context(&setup.db, &setup.host);

    // A: the sync marks v1 and amd64 gone; the older push does not revive them, the newer
    // push does, and a later sync's tombstone (still before it) does not undo it.
    let report = setup.sync().await;
    assert_eq!((report.tags_gone, report.manifests_gone), (1, 1));
    apply(&a, std::slice::from_ref(&older)).await;
    let gone = names(live_tags(&setup.db).await);
    assert!(!gone.iter().any(|(_, t, _)| t == "v1"), "{gone:?}");
    apply(&a, std::slice::from_ref(&newer)).await;
    setup.sync().await;
    let expected = vec![
        tag("sync/app", "latest", &arm64.manifest.digest),
        tag("sync/app", "v1", &arm64.manifest.digest),
        tag("sync/app", "v2", &arm64.manifest.digest),
        tag("sync/multi", "latest", &setup.layout.index.digest),
    ];
    assert_eq!(names(live_tags(&setup.db).await), names(expected.clone()));
    let v1 = &live_tags(&setup.db).await[1];
    assert!(!v1.3, "pushed_at is the newer push's");

    // B: the same events first, then one sync: the same state.
    let b = TestDb::new().await;
    apply(&context(&b, &setup.host), &[newer.clone(), older.clone()]).await;
    let report = sync(&b.pool, &setup.client, &quiet()).await.unwrap();
    assert!(report.is_complete());
    assert_eq!(names(live_tags(&b).await), names(expected.clone()));
    assert_eq!(live_manifests(&b).await, live_manifests(&setup.db).await);

    // C: a sync while a worker applies the events: nothing is lost either way.
    let c = TestDb::new().await;
    let worker = context(&c, &setup.host);
    let options = quiet();
    let (report, ()) = tokio::join!(sync(&c.pool, &setup.client, &options), async {
        apply(&worker, std::slice::from_ref(&newer)).await;
        apply(&worker, std::slice::from_ref(&older)).await;
    });
    assert!(report.unwrap().is_complete());
    // The sync may have read before or after the events: once more settles what it did not
    // see (an older push it had not seen yet is only tombstoned by a sync after it).
    setup_sync(&c, &setup).await;
    assert_eq!(names(live_tags(&c).await), names(expected));
    assert_eq!(live_manifests(&c).await, live_manifests(&setup.db).await);
}

async fn setup_sync(db: &TestDb, setup: &Setup) {
    let report = sync(&db.pool, &setup.client, &quiet()).await.unwrap();
    assert!(report.is_complete(), "{}", report.differences_text());
}
