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

/// A blob push event (a layer or config uploaded into `repository`), at `at`: a manifest push
/// without tag, with the media type distribution gives every blob.
fn blob_push(host: &str, repository: &str, digest: &str, size: i64, at: DateTime<Utc>) -> Incoming {
    let size = u64::try_from(size).unwrap();
    let mut event: serde_json::Value =
        serde_json::from_slice(&push(host, repository, "", digest, size, at).body).unwrap();
    let target = &mut event["target"];
    target["mediaType"] = json!(crate::support::BLOB_MEDIA_TYPE);
    target["url"] = json!(format!("http://{host}/v2/{repository}/blobs/{digest}"));
    target.as_object_mut().unwrap().remove("tag");
    Incoming {
        body: event.to_string().into_bytes(),
        correlation_id: None,
        received_at: None,
    }
}

/// The configs and layers, with their sizes, that the registry's own manifests of
/// `repository` name (`skopeo inspect --raw` of each digest), as (repository, digest, size).
async fn blobs_in_registry(
    setup: &Setup,
    repository: &str,
    manifests: &[&str],
) -> Vec<(String, String, i64)> {
    let mut blobs = std::collections::BTreeSet::new();
    for digest in manifests {
        let reference = format!("docker://{}/{repository}@{digest}", setup.host);
        let raw = crate::support::run(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &reference],
        )
        .await;
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let layers = manifest["layers"].as_array().unwrap().iter();
        for blob in std::iter::once(&manifest["config"]).chain(layers) {
            blobs.insert((
                repository.to_owned(),
                blob["digest"].as_str().unwrap().to_owned(),
                blob["size"].as_i64().unwrap(),
            ));
        }
    }
    blobs.into_iter().collect()
}

async fn live_blobs(db: &TestDb) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT repository, digest, size FROM regstat.live_blobs WHERE registry = $1
         ORDER BY 1, 2",
    )
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// (repository or "" for the registry's line, blobs, bytes) of `report blobs`.
async fn blobs_report(db: &TestDb) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT COALESCE(repository, ''), blobs, bytes FROM regstat.report_blobs
         WHERE registry = $1 ORDER BY 1",
    )
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_content_has_its_blobs_and_events_add_none_twice() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    setup.sync().await;
    let (amd64, arm64) = (
        setup.layout.amd64.manifest.digest.as_str(),
        setup.layout.arm64.manifest.digest.as_str(),
    );
    // sync/app holds both images by tag; sync/multi the index and, as its children, both.
    let mut expected = blobs_in_registry(&setup, "sync/app", &[amd64, arm64]).await;
    expected.extend(blobs_in_registry(&setup, "sync/multi", &[amd64, arm64]).await);
    assert_eq!(
        expected.len(),
        8,
        "a config and a layer per image, per repository"
    );
    assert_eq!(live_blobs(&setup.db).await, expected);
    let bytes = |repository: &str| -> i64 {
        expected
            .iter()
            .filter(|b| b.0 == repository)
            .map(|b| b.2)
            .sum()
    };
    let shared: i64 = bytes("sync/app"); // the same four digests in both repositories
    assert_eq!(
        blobs_report(&setup.db).await,
        [
            (String::new(), 4, shared),
            ("sync/app".to_owned(), 4, bytes("sync/app")),
            ("sync/multi".to_owned(), 4, bytes("sync/multi")),
        ],
        "each digest once per repository, and once for the registry"
    );
    // Every blob is referenced by known content: nothing orphaned, nothing undetermined.
    let orphaned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM regstat.orphaned_blobs(interval '0')")
            .fetch_one(&setup.db.pool)
            .await
            .unwrap();
    let undetermined: i64 = sqlx::query_scalar("SELECT count(*) FROM regstat.undetermined_blobs")
        .fetch_one(&setup.db.pool)
        .await
        .unwrap();
    assert_eq!((orphaned, undetermined), (0, 0));

    // Events flow: the push of a layer regstat knows from the sync, and of one it does not.
    let known = &expected[0];
    let context = context(&setup.db, &setup.host);
    let now = Utc::now();
    apply(
        &context,
        &[
            blob_push(&setup.host, &known.0, &known.1, known.2, now),
            blob_push(
                &setup.host,
                "sync/app",
                "sha256:0000000000000000000000000000000000000000000000000000000000000001",
                10,
                now,
            ),
        ],
    )
    .await;
    let mut merged = expected.clone();
    merged.push((
        "sync/app".to_owned(),
        "sha256:0000000000000000000000000000000000000000000000000000000000000001".to_owned(),
        10,
    ));
    merged.sort();
    assert_eq!(live_blobs(&setup.db).await, merged, "the known layer once");
    let pushed: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT last_pushed_at FROM regstat.live_blobs
         WHERE registry = $1 AND repository = $2 AND digest = $3",
    )
    .bind(REGISTRY)
    .bind(&known.0)
    .bind(&known.1)
    .fetch_one(&setup.db.pool)
    .await
    .unwrap();
    assert!(pushed.is_some(), "the pushed row, with its push time");
    // A sync again changes nothing of it.
    setup.sync().await;
    assert_eq!(live_blobs(&setup.db).await, merged);
}

/// A manifest pull by tag (GET, as skopeo makes it), at `at`.
fn pull(host: &str, repository: &str, tag: &str, digest: &str, at: DateTime<Utc>) -> Incoming {
    let mut event: serde_json::Value =
        serde_json::from_slice(&push(host, repository, tag, digest, 1, at).body).unwrap();
    event["action"] = json!("pull");
    event["request"]["method"] = json!("GET");
    Incoming {
        body: event.to_string().into_bytes(),
        correlation_id: None,
        received_at: None,
    }
}

/// (repository, tag, age source, last-use source) of `stale_images(days)` or
/// `unpulled_images(days)` for the test registry.
async fn aged(db: &TestDb, function: &str, days: i32) -> Vec<(String, String, String, String)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT repository, tag, age_source, last_used_source FROM regstat.{function}($1)
         WHERE registry = $2 ORDER BY 1, 2"
    )))
    .bind(days)
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_image_has_an_age_and_a_last_use_until_it_is_pulled() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    setup.sync().await;
    let row = |repository: &str, tag: &str, age: &str| {
        (
            repository.to_owned(),
            tag.to_owned(),
            age.to_owned(),
            "first_seen".to_owned(),
        )
    };
    // Never pushed nor pulled while regstat listened: unused since first seen; aged by the
    // build time the config states (amd64, and the index by its newest child), else since
    // first seen (arm64).
    let all = vec![
        row("sync/app", "latest", "first_seen"),
        row("sync/app", "v1", "created"),
        row("sync/app", "v2", "first_seen"),
        row("sync/multi", "latest", "created"),
    ];
    assert_eq!(aged(&setup.db, "stale_images", 0).await, all);
    assert_eq!(aged(&setup.db, "unpulled_images", 0).await, all);
    assert!(
        aged(&setup.db, "unpulled_images", 1).await.is_empty(),
        "first seen today"
    );
    assert_eq!(
        aged(&setup.db, "stale_images", 1).await,
        [all[1].clone(), all[3].clone()],
        "built in 2024 (crate::support::AMD64_CREATED)"
    );
    let created: DateTime<Utc> = sqlx::query_scalar(
        "SELECT age_at FROM regstat.report_images
         WHERE registry = $1 AND repository = 'sync/app' AND tag = 'v1'",
    )
    .bind(REGISTRY)
    .fetch_one(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(
        created,
        DateTime::parse_from_rfc3339(crate::support::AMD64_CREATED).unwrap()
    );

    // sync/app:v1 is pulled (an event from an hour ahead, so it is used "after now").
    let v1 = setup.layout.amd64.manifest.digest.clone();
    let at = Utc::now() + Duration::hours(1);
    apply(
        &context(&setup.db, &setup.host),
        &[pull(&setup.host, "sync/app", "v1", &v1, at)],
    )
    .await;
    let unpulled = aged(&setup.db, "unpulled_images", 0).await;
    assert_eq!(
        unpulled,
        [all[0].clone(), all[2].clone(), all[3].clone()],
        "v1 was used since"
    );
    let (source, used): (String, DateTime<Utc>) = sqlx::query_as(
        "SELECT last_used_source, last_used_at FROM regstat.report_images
         WHERE registry = $1 AND repository = 'sync/app' AND tag = 'v1'",
    )
    .bind(REGISTRY)
    .fetch_one(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(source, "pulled");
    assert_eq!(used.timestamp(), at.timestamp());
    // Its age is still the first sighting: a pull is not a push.
    let mut after = all.clone();
    after[1].3 = "pulled".to_owned();
    assert_eq!(aged(&setup.db, "stale_images", 0).await, after);
}
