//! Pulls as containerd and skopeo really make them (docs/MODEL.md, "Pulls and version
//! checks"): captured notifications (`store/fixtures/containerd-1.6.20`) replayed through the
//! worker's handler in any order and batching, then read back through the reports.

use crate::helpers::{TestDb, context, messages};
use regstat_store::reports::{Filters, Report, run};
use regstat_worker::handler::{Outcome, handle_batch};
use serde_json::Value;
use sqlx::Connection;

/// No registry is configured, so events keep the Host their clients used.
const REGISTRY: &str = "127.0.0.1:5301";

/// The captures have fixed dates: "the last N days" reaches them whatever today is.
const ALL_DAYS: i32 = 100_000;

const FILES: [&str; 6] = [
    "c0-skopeo-push.jsonl",
    "c1-ctr-pull-single.jsonl",
    "c2-ctr-pull-multi-arm64.jsonl",
    "c3-ctr-pull-by-digest.jsonl",
    "c4-ctr-pull-again.jsonl",
    "c5-skopeo-pull.jsonl",
];

/// The events of the captured run, in the order the registry sent them.
fn captured() -> Vec<Value> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/fixtures/containerd-1.6.20"
    );
    FILES
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            text.lines()
                .flat_map(|line| {
                    let request: Value = serde_json::from_str(line).unwrap();
                    let body: Value =
                        serde_json::from_str(request["body_raw"].as_str().unwrap()).unwrap();
                    body["events"].as_array().unwrap().clone()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn replay(db: &TestDb, events: &[Value], batch: usize) {
    let ctx = context(db);
    for chunk in events.chunks(batch) {
        let (outcomes, _) = handle_batch(&ctx, &messages(chunk)).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
    }
}

async fn report(db: &TestDb, report: Report) -> Vec<Value> {
    let mut connection = db.pool.acquire().await.unwrap();
    run(&mut connection, &report, &Filters::default())
        .await
        .unwrap()
}

/// (repository, tag) → the row's `field`.
fn by_tag(rows: &[Value], field: &str) -> Vec<(String, String, Value)> {
    rows.iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_owned(),
                r["tag"].as_str().unwrap().to_owned(),
                r[field].clone(),
            )
        })
        .collect()
}

fn row(repository: &str, tag: &str, value: Value) -> (String, String, Value) {
    (repository.to_owned(), tag.to_owned(), value)
}

#[tokio::test]
async fn containerd_and_skopeo_pulls_count_once_each_and_repeated_resolves_as_checks() {
    let db = TestDb::new().await;
    replay(&db, &captured(), 1).await;

    // lab/app:v1: ctr's HEAD + GET by digest, and skopeo's GET by tag (ctr's pull by digest
    // is no pull of the tag). lab/multi:v1: ctr's HEAD + GET of the index, and skopeo's GET.
    let top = report(
        &db,
        Report::TopPulled {
            days: ALL_DAYS,
            limit: 10,
        },
    )
    .await;
    assert_eq!(
        by_tag(&top, "pulls"),
        [
            row("lab/app", "v1", 2.into()),
            row("lab/multi", "v1", 2.into())
        ]
    );
    assert!(top.iter().all(|r| r["registry"] == REGISTRY));

    let images = report(&db, Report::Images).await;
    assert_eq!(
        by_tag(&images, "pull_count"),
        [
            row("lab/app", "v1", 2.into()),
            row("lab/multi", "v1", 2.into())
        ]
    );
    // The second ctr pull found both images present: one resolve each, no fetch.
    assert_eq!(
        by_tag(&images, "version_checks"),
        [
            row("lab/app", "v1", 1.into()),
            row("lab/multi", "v1", 1.into())
        ]
    );
    assert!(images.iter().all(|r| r["last_checked_at"].is_string()));
    let checks = report(
        &db,
        Report::VersionChecks {
            days: ALL_DAYS,
            limit: 10,
        },
    )
    .await;
    assert_eq!(
        by_tag(&checks, "checks"),
        [
            row("lab/app", "v1", 1.into()),
            row("lab/multi", "v1", 1.into())
        ]
    );

    // Image pulls (GETs of image manifests) are what they were: ctr single, ctr by digest,
    // skopeo single (amd64); ctr and skopeo arm64 from the index.
    let pulls = report(&db, Report::Pulls { days: ALL_DAYS }).await;
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["pulls"], 5);
}

#[tokio::test]
async fn the_counts_do_not_depend_on_order_or_batching() {
    let events = captured();
    let in_order = TestDb::new().await;
    replay(&in_order, &events, 1).await;
    let expected = crate::model::snapshot(&in_order).await;

    let reversed = TestDb::new().await;
    let backwards: Vec<Value> = events.iter().rev().cloned().collect();
    replay(&reversed, &backwards, 3).await;
    assert_eq!(crate::model::snapshot(&reversed).await, expected);

    let interleaved = TestDb::new().await;
    let (even, odd): (Vec<_>, Vec<_>) = events.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let mixed: Vec<Value> = odd
        .into_iter()
        .chain(even)
        .map(|(_, e)| e.clone())
        .collect();
    replay(&interleaved, &mixed, 5).await;
    assert_eq!(crate::model::snapshot(&interleaved).await, expected);
}

/// `event` as another client sent it: its own id and address.
fn from_client(event: &Value, n: u8) -> Value {
    let mut event = event.clone();
    let id = format!("{}-client-{n}", event["id"].as_str().unwrap());
    event["id"] = Value::String(id);
    event["request"]["addr"] = Value::String(format!("10.0.0.{n}:40000"));
    event
}

/// Waits until `wanted` of the test database's backends wait for a lock of `kind` (`advisory`,
/// `relation`), polling; fails with what they wait for after 10 s.
async fn wait_for_waiters(db: &TestDb, kind: &str, wanted: i64) {
    let waiting = || async {
        sqlx::query_as::<_, (Option<String>, Option<String>)>(
            "SELECT wait_event_type, wait_event FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = waiting().await;
        let count = now
            .iter()
            .filter(|(t, e)| t.as_deref() == Some("Lock") && e.as_deref() == Some(kind))
            .count() as i64;
        if count == wanted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {wanted} backends waiting for a lock of kind {kind}; they wait for {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Two workers' batches pulling one manifest are written side by side (a popular image is
/// pulled in nearly every batch; when each took its platform lock alone, workers wrote one
/// batch at a time), while a batch writing content that decides the manifest's platform waits
/// for them (the cache of pulls per platform relies on it, see regstat_store's model::locks).
#[tokio::test]
async fn pulls_of_one_manifest_are_written_side_by_side_and_its_content_waits_for_them() {
    let db = TestDb::new().await;
    let events = captured();
    let is = |e: &Value, action: &str, method: &str, digest_prefix: &str| {
        e["action"] == action
            && e["request"]["method"] == method
            && e["target"]["repository"] == "lab/app"
            && e["target"]["digest"]
                .as_str()
                .unwrap_or_default()
                .starts_with(digest_prefix)
            && e["target"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    };
    let push = events
        .iter()
        .find(|e| is(e, "push", "PUT", "sha256:"))
        .unwrap()
        .clone();
    let digest = push["target"]["digest"].as_str().unwrap().to_owned();
    let pull: Vec<Value> = events
        .iter()
        .filter(|e| is(e, "pull", "HEAD", &digest) || is(e, "pull", "GET", &digest))
        .take(2)
        .cloned()
        .collect();
    assert_eq!(pull.len(), 2, "ctr's resolve and fetch of {digest}");

    // Every batch writes the ledger right after taking its locks: holding the ledger's table
    // stops each batch there, with its locks taken.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE regstat.event_ids IN EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();

    let ctx = std::sync::Arc::new(context(&db));
    let batch = |events: Vec<Value>| {
        let ctx = ctx.clone();
        tokio::spawn(async move { handle_batch(&ctx, &messages(&events)).await.unwrap() })
    };
    let first = batch(pull.iter().map(|e| from_client(e, 1)).collect());
    let second = batch(pull.iter().map(|e| from_client(e, 2)).collect());
    wait_for_waiters(&db, "relation", 2).await;
    let content = batch(vec![push]);
    wait_for_waiters(&db, "advisory", 1).await;

    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    for task in [first, second, content] {
        let (outcomes, _) = task.await.unwrap();
        assert!(outcomes.iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
    }
    assert_eq!(db.ledger_len().await, 5);
}
