//! `regstat status`, and the real binary's JSON output.

use super::{
    BLOB, DEADLINE, MANIFEST, assert_about, blob_pull, connect, manifest_push, publish, record,
    worker_dead_letter,
};
use crate::helpers::{TestDb, TestWorker};
use chrono::Duration as Age;
use lapin::BasicProperties;
use regstat_cli::admin::{output, status};
use regstat_shared::testkit::{TestBroker, eventually};
use regstat_shared::topology::Topology;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_queues_consumers_and_the_ledger() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let topology = &broker.topology;
    record(&db, "m", "push", Some(MANIFEST), Some("v1"), Age::hours(2)).await;
    record(&db, "p", "pull", Some(MANIFEST), None, Age::hours(1)).await;
    record(&db, "b", "push", Some(BLOB), None, Age::minutes(30)).await;
    record(&db, "t", "push", None, Some("v2"), Age::minutes(90)).await;
    for id in ["i1", "i2"] {
        publish(
            &broker,
            &topology.exchange(),
            "pull.blob",
            &blob_pull(id),
            BasicProperties::default(),
        )
        .await;
    }
    publish(
        &broker,
        &topology.exchange(),
        "push.manifest",
        &manifest_push("m2"),
        BasicProperties::default(),
    )
    .await;
    publish(
        &broker,
        &topology.exchange(),
        "quarantine",
        b"{}",
        BasicProperties::default(),
    )
    .await;
    worker_dead_letter(
        &broker,
        "pull.blob",
        "d",
        &blob_pull("d"),
        "invalid_event",
        1,
        Age::minutes(1),
    )
    .await;
    let (settings, connection) = connect(&db, &broker).await;

    let report = status::collect(&connection, topology, &mut db.pool.acquire().await.unwrap())
        .await
        .unwrap();
    let depth = |name: String| {
        let queue = report.queues.iter().find(|q| q.name == name).unwrap();
        assert!(queue.exists);
        (queue.messages.unwrap(), queue.consumers.unwrap())
    };
    assert_eq!(depth(topology.ingest_queue()), (2, 0));
    assert_eq!(depth(topology.manifest_queue()), (1, 0));
    assert_eq!(depth(topology.dead_queue()), (1, 0));
    assert_eq!(depth(topology.quarantine_queue()), (1, 0));
    for retry in topology.retry_queues() {
        assert_eq!(depth(retry), (0, 0));
    }
    assert_eq!(report.queues.len(), 4 + topology.retry_queues().len());
    let newest = |name: String| {
        let queue = report.queues.iter().find(|q| q.name == name).unwrap();
        queue.recorded.as_ref().unwrap().newest_recorded_age_secs
    };
    assert_about(newest(topology.manifest_queue()), 5400);
    assert_about(newest(topology.ingest_queue()), 1800);
    assert!(
        report
            .queues
            .iter()
            .all(|q| q.recorded.is_some() == (q.role == status::Role::Work)),
        "only work queues report the newest recorded event"
    );
    assert_eq!((report.ledger.events, report.ledger.estimated), (4, false));
    assert_about(report.ledger.recorded.newest_recorded_age_secs, 1800);
    assert!(output::status_table(&report).contains("ledger regstat.events: 4 events"));

    let worker = TestWorker::spawn(&settings);
    eventually(DEADLINE, "a consumer on each work queue", || async {
        let report = status::collect(&connection, topology, &mut db.pool.acquire().await.unwrap())
            .await
            .unwrap();
        let consuming = report
            .queues
            .iter()
            .filter(|q| q.consumers == Some(1))
            .map(|q| q.name.clone())
            .collect::<Vec<_>>();
        (consuming == topology.work_queues()).then_some(())
    })
    .await;
    worker.stop().await;

    let elsewhere = Topology::new(format!("{}-none", broker.prefix), 20, &[1]);
    let report = status::collect(
        &connection,
        &elsewhere,
        &mut db.pool.acquire().await.unwrap(),
    )
    .await
    .unwrap();
    assert!(
        report
            .queues
            .iter()
            .all(|q| !q.exists && q.messages.is_none())
    );
}

/// Above the limit the planner's estimate is reported (and said to be one), whether the
/// ledger is one table or partitioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_ledger_is_estimated_not_counted() {
    let db = TestDb::new().await;
    for id in ["a", "b", "c"] {
        record(&db, id, "pull", Some(BLOB), None, Age::minutes(1)).await;
    }
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        regstat_store::status::ledger_size(&mut conn, 2)
            .await
            .unwrap(),
        (3, false),
        "never analysed"
    );
    sqlx::query("ANALYZE regstat.events")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        regstat_store::status::ledger_size(&mut conn, 2)
            .await
            .unwrap(),
        (3, true)
    );
    assert_eq!(
        regstat_store::status::ledger_size(&mut conn, 3)
            .await
            .unwrap(),
        (3, false)
    );
}

/// Runs the real `regstat` binary against the test services.
async fn regstat(db: &TestDb, broker: &TestBroker, args: &[&str]) -> std::process::Output {
    crate::helpers::regstat(db, Some(broker), args).await
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_status_and_dead_letters_as_json() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    worker_dead_letter(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1"),
        "registry_unavailable",
        6,
        Age::minutes(3),
    )
    .await;
    record(&db, "p", "pull", Some(BLOB), None, Age::minutes(5)).await;

    let status = json_of(&regstat(&db, &broker, &["status", "--format", "json"]).await);
    let dead = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["role"] == "dead")
        .unwrap();
    assert_eq!(
        (dead["messages"].as_u64(), dead["consumers"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(status["ledger"]["events"], 1);
    let ingest = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == broker.topology.ingest_queue())
        .unwrap();
    assert!(ingest["newest_recorded_age_secs"].as_i64().unwrap() >= 300);

    let list = json_of(&regstat(&db, &broker, &["dlq", "list", "--format", "json"]).await);
    let letter = &list.as_array().unwrap()[0];
    assert_eq!(letter["id"], "push-1");
    assert_eq!(letter["action"], "push");
    assert_eq!(letter["repository"], "lab/app");
    assert_eq!(letter["error_kind"], "registry_unavailable");
    assert_eq!(letter["attempts"], 6);
    assert_eq!(letter["routing_key"], "push.manifest");
    assert!(letter["age_secs"].as_i64().unwrap() >= 180);

    let refused = regstat(&db, &broker, &["dlq", "purge", "--all"]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --yes"));
    let unselected = regstat(&db, &broker, &["dlq", "replay"]).await;
    assert_eq!(unselected.status.code(), Some(2), "a usage error");
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 1);
}

/// A dead letter received before the dedupe horizon would be refused by the worker (its id may
/// have been forgotten): `dlq replay` keeps it and says so, `--dry-run` first, and replays the
/// rest (docs/MODEL.md, "Replaying dead letters safely").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_keeps_dead_letters_received_before_the_dedupe_horizon() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    for (id, failed_ago) in [("old-1", Age::days(3)), ("new-1", Age::minutes(1))] {
        worker_dead_letter(
            &broker,
            "pull.blob",
            id,
            &blob_pull(id),
            "database_rejected",
            1,
            failed_ago,
        )
        .await;
    }
    sqlx::query("UPDATE regstat.dedupe_horizon SET forgotten_before = now() - interval '1 day'")
        .execute(&db.pool)
        .await
        .unwrap();

    let dry = regstat(&db, &broker, &["dlq", "replay", "--all", "--dry-run"]).await;
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr),
    );
    assert!(stdout.contains("would replay 1, keep 1"), "{stdout}");
    assert!(
        stderr.contains("before the dedupe horizon") && stderr.contains("old-1"),
        "{stderr}"
    );
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 2);

    let done = regstat(&db, &broker, &["dlq", "replay", "--all"]).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("replayed 1, kept 1"));
    assert!(String::from_utf8_lossy(&done.stderr).contains("old-1"));
    let replayed: Vec<String> = broker
        .drain(&broker.topology.ingest_queue())
        .await
        .iter()
        .map(|m| m.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert_eq!(replayed, ["new-1"]);
    let left = json_of(&regstat(&db, &broker, &["dlq", "list", "--format", "json"]).await);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], "old-1");
}
