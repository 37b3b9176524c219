//! Sharded work queues (`amqp.shards`): the receiver routes each event to the shard of its
//! registry and top-level namespace, workers consume every shard (or those of
//! `worker.shards`), and while the count changes the previous count's queues are drained.

use crate::helpers::{TestDb, TestReceiver, TestWorker, settings};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use regstat_shared::event::Event;
use regstat_shared::testkit::{self, TestBroker, eventually};
use std::collections::BTreeMap;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(90);

fn pull_event(id: &str, repository: &str) -> String {
    let digest = format!(
        "sha256:{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes())
    );
    format!(
        r#"{{"id":"{id}","timestamp":"2026-11-22T10:17:28.770756613Z","action":"pull",
            "target":{{"mediaType":"application/octet-stream","digest":"{digest}","repository":"{repository}"}},
            "request":{{"method":"GET","useragent":"test","host":"registry.example"}}}}"#
    )
}

/// Messages ready and consumers of `queue`.
async fn counts(broker: &TestBroker, queue: &str) -> (u32, u32) {
    regstat_shared::amqp::queue_counts(&broker.channel, queue)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_goes_to_its_shard_and_a_changed_count_is_drained() {
    let db = TestDb::new().await;
    // Four shards now, one (the unsharded queues) before.
    let broker = TestBroker::sharded(&testkit::amqp_url(), 4, 1).await;
    let topology = &broker.topology;
    let settings = settings(&db, &broker, &[("REGSTAT__AMQP__PREVIOUS_SHARDS", "1")]);

    // Events a receiver of the previous count left in the unsharded queue.
    broker
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let old: Vec<String> = (0..5).map(|i| format!("old-{i}")).collect();
    for id in &old {
        let confirm = broker
            .channel
            .basic_publish(
                topology.exchange().into(),
                "pull.blob".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                pull_event(id, "legacy/app").as_bytes(),
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

    // The receiver routes by registry and top-level namespace.
    let receiver = TestReceiver::spawn(&settings).await;
    let client = reqwest::Client::new();
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    let mut new = Vec::new();
    for n in 0..32 {
        let id = format!("new-{n:02}");
        let body = pull_event(&id, &format!("ns{}/app/{n}", n % 8));
        let event = Event::parse_checked(body.as_bytes()).unwrap();
        *expected
            .entry(topology.ingest_queue_of(topology.shard_of(&event)))
            .or_default() += 1;
        let envelope = format!(r#"{{"events":[{body}]}}"#);
        let response = client
            .post(format!("{}/events", receiver.address))
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(envelope)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        new.push(id);
    }
    assert!(
        expected.len() >= 2,
        "8 namespaces on 4 shards: {expected:?}"
    );
    for shard in 0..4 {
        let queue = topology.ingest_queue_of(shard);
        let want = expected.get(&queue).copied().unwrap_or_default();
        assert_eq!(counts(&broker, &queue).await.0, want, "{queue}");
    }
    assert_eq!(counts(&broker, &topology.ingest_queue()).await.0, 5);

    // A worker restricted to shard 1 consumes it and the previous count's queues only.
    let restricted = TestWorker::spawn(&crate::helpers::settings(
        &db,
        &broker,
        &[
            ("REGSTAT__AMQP__PREVIOUS_SHARDS", "1"),
            ("REGSTAT__WORKER__SHARDS", "1"),
        ],
    ));
    let shard1 = expected
        .get(&topology.ingest_queue_of(1))
        .copied()
        .unwrap_or_default();
    eventually(DEADLINE, "shard 1 and the old queue recorded", || async {
        (db.ledger_len().await == i64::from(shard1) + 5).then_some(())
    })
    .await;
    for shard in [0, 2, 3] {
        assert_eq!(counts(&broker, &topology.ingest_queue_of(shard)).await.1, 0);
    }
    assert_eq!(counts(&broker, &topology.ingest_queue_of(1)).await.1, 1);
    assert_eq!(counts(&broker, &topology.ingest_queue()).await.1, 1);

    // Every worker consumes every shard by default.
    let worker = TestWorker::spawn(&settings);
    eventually(DEADLINE, "every event recorded", || async {
        (db.ledger_len().await == 37).then_some(())
    })
    .await;
    let mut ids: Vec<String> = db
        .ledger_counts()
        .await
        .into_iter()
        .map(|(id, n)| {
            assert_eq!(n, 1, "{id} once");
            id
        })
        .collect();
    ids.sort();
    let mut all: Vec<String> = new.into_iter().chain(old).collect();
    all.sort();
    assert_eq!(ids, all);
    worker.stop().await;
    restricted.stop().await;
    receiver.stop().await;
}
