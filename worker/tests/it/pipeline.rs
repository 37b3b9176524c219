//! The worker through a real broker: duplicates, crashes before ack, database outages and
//! graceful shutdown never lose or double-count an event.

use crate::helpers::{TestDb, TestWorker, context, settings};
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use regstat_shared::testkit::{self, TcpProxy, TestBroker, eventually};
use regstat_worker::handler::{Incoming, handle_batch};
use std::time::Duration;

/// How long a condition may take: generous, since the suite runs many tests at once on a
/// small machine (a deadline only matters when something is wrong).
const DEADLINE: Duration = Duration::from_secs(90);

fn pull_event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","timestamp":"2026-11-22T10:17:28.770756613Z","action":"pull",
            "target":{{"mediaType":"application/octet-stream","digest":"sha256:{id}","repository":"lab/app"}},
            "request":{{"method":"GET","useragent":"test"}}}}"#
    )
}

/// Publishes events as the receiver would (persistent, confirmed).
async fn publish(broker: &TestBroker, ids: &[String]) {
    broker
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for id in ids {
        let confirm = broker
            .channel
            .basic_publish(
                broker.topology.exchange().into(),
                "pull.blob".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                pull_event(id).as_bytes(),
                BasicProperties::default()
                    .with_message_id(id.as_str().into())
                    .with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack() && confirm.take_message().is_none());
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

async fn wait_for_ledger(db: &TestDb, expected: usize) {
    eventually(DEADLINE, &format!("{expected} ledger rows"), || async {
        (db.ledger_len().await == expected as i64).then_some(())
    })
    .await;
}

async fn assert_each_once(db: &TestDb, expected: &[String]) {
    let counts = db.ledger_counts().await;
    let mut expected = expected.to_vec();
    expected.sort();
    expected.dedup();
    assert_eq!(
        counts.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(counts.iter().all(|(_, n)| *n == 1));
}

async fn assert_queues_empty(broker: &TestBroker) {
    for queue in broker.topology.work_queues() {
        eventually(DEADLINE, &format!("{queue} empty"), || async {
            (broker.depth(&queue).await == 0).then_some(())
        })
        .await;
    }
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_events_make_one_row_each() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let ids = ids("dup", 50);
    // Every event twice, and the first ten a third time.
    let mut stream = ids.clone();
    stream.extend(ids.iter().cloned());
    stream.extend(ids[..10].iter().cloned());
    publish(&broker, &stream).await;

    let worker = TestWorker::spawn(&settings(&db, &broker, &[]));
    wait_for_ledger(&db, ids.len()).await;
    assert_queues_empty(&broker).await;
    worker.stop().await;
    assert_each_once(&db, &ids).await;
}

/// A worker that committed a batch and died before acking it: the broker redelivers the
/// messages and the next worker records nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_commit_and_ack_loses_and_duplicates_nothing() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let ids = ids("crash", 20);
    publish(&broker, &ids).await;

    // The doomed worker: takes every message without acking, commits them, then its
    // connection dies.
    let doomed = testkit::connect_broker(&testkit::amqp_url()).await;
    let channel = doomed.create_channel().await.unwrap();
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(
            broker.topology.ingest_queue().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
    {
        taken.push(Incoming {
            body: message.delivery.data.clone(),
            correlation_id: None,
            received_at: None,
        });
    }
    assert_eq!(taken.len(), ids.len());
    let (_, summary) = handle_batch(&context(&db), &taken).await.unwrap();
    assert_eq!(summary.stored, ids.len());
    // The connection dies with the messages unacknowledged.
    let _ = doomed.close(320, "simulated crash".into()).await;
    drop(channel);

    // Everything comes back, flagged as redelivered.
    eventually(DEADLINE, "messages requeued", || async {
        (broker.depth(&broker.topology.ingest_queue()).await == ids.len() as u32).then_some(())
    })
    .await;

    let worker = TestWorker::spawn(&settings(&db, &broker, &[]));
    assert_queues_empty(&broker).await;
    worker.stop().await;
    assert_each_once(&db, &ids).await;
}

/// The database goes away while events flow: the worker holds its batch, stops taking
/// more, and records everything once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_delays_work_and_loses_nothing() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = db.url.replace("127.0.0.1:5432", &proxy.addr().to_string());
    assert_ne!(
        via_proxy, db.url,
        "the test database must be on 127.0.0.1:5432"
    );
    let settings = settings(
        &db,
        &broker,
        &[
            ("REGSTAT__DATABASE__URL", &via_proxy),
            ("REGSTAT__DATABASE__ACQUIRE_TIMEOUT_MS", "300"),
        ],
    );

    let worker = TestWorker::spawn(&settings);
    let before = ids("before", 30);
    publish(&broker, &before).await;
    wait_for_ledger(&db, before.len()).await;

    proxy.cut();
    let during = ids("during", 30);
    publish(&broker, &during).await;
    // The worker takes them (none left ready in the queue) and finds the database cut off;
    // nothing can be written meanwhile, and nothing is lost.
    let ingest = broker.topology.ingest_queue();
    let readyz = format!("{}/readyz", worker.address);
    eventually(
        DEADLINE,
        "the worker holding the batch, database unreachable",
        || async {
            let held = broker.depth(&ingest).await == 0;
            let answer = reqwest::get(&readyz).await.ok()?.text().await.ok()?;
            (held && answer.contains(r#""database":"unreachable""#)).then_some(())
        },
    )
    .await;
    assert_eq!(db.ledger_len().await, before.len() as i64);

    proxy.restore();
    wait_for_ledger(&db, before.len() + during.len()).await;
    assert_queues_empty(&broker).await;
    worker.stop().await;
    let all: Vec<String> = before.into_iter().chain(during).collect();
    assert_each_once(&db, &all).await;
}

/// Workers stopped gracefully mid-stream, and replaced, record everything exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let ids = ids("load", 3000);
    publish(&broker, &ids).await;
    let settings = settings(&db, &broker, &[("REGSTAT__WORKER__BATCH_SIZE", "50")]);

    // Stop workers one after another while the queue drains, each as soon as it has recorded
    // something (mid-stream).
    let mut stops = 0;
    loop {
        let recorded = db.ledger_len().await;
        if recorded == ids.len() as i64 || stops == 50 {
            break;
        }
        let worker = TestWorker::spawn(&settings);
        eventually(DEADLINE, "the worker recording a batch", || async {
            (db.ledger_len().await > recorded).then_some(())
        })
        .await;
        worker.stop().await;
        stops += 1;
    }
    let worker = TestWorker::spawn(&settings);
    wait_for_ledger(&db, ids.len()).await;
    assert_queues_empty(&broker).await;
    worker.stop().await;
    assert_each_once(&db, &ids).await;
}

/// The worker's own endpoint: alive, ready once consuming with the database reachable, and
/// Prometheus metrics of what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reports_health_readiness_and_metrics() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let worker = TestWorker::spawn(&settings(&db, &broker, &[]));
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", worker.address)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    eventually(DEADLINE, "the worker ready", || async {
        (get("/readyz").await.ok()?.status() == 200).then_some(())
    })
    .await;
    publish(&broker, &ids("metric", 3)).await;
    wait_for_ledger(&db, 3).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "regstat_worker_events_total{outcome=\"stored\"}",
        "regstat_worker_batch_duration_seconds_bucket",
        // Present, whatever its value: the recorder is process-wide, so other tests' workers
        // stopping set it too (readiness above already proved this one consuming).
        "regstat_worker_consuming ",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    worker.stop().await;
}

/// `regstat-worker healthcheck`: 0 once the worker on `worker.listen` is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_probes_readiness() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let worker = TestWorker::spawn(&settings(&db, &broker, &[]));
    let listen = worker.address.trim_start_matches("http://").to_owned();
    let probe = |listen: String| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_regstat-worker"))
            .arg("healthcheck")
            .env("REGSTAT__WORKER__LISTEN", listen)
            .output()
            .unwrap();
        output.status.success()
    };
    eventually(DEADLINE, "the worker ready", || {
        let listen = listen.clone();
        async move { probe(listen).then_some(()) }
    })
    .await;
    worker.stop().await;
    assert!(!probe(listen));
}
