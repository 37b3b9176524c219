//! Retries through the broker's delay queues, and dead letters with the reason, end to end
//! through RabbitMQ (the registry is a small test server that can be made to fail).

use crate::helpers::{TestDb, TestWorker, settings_with_file};
use crate::registry::fake::{Auth, Behaviour, FakeRegistry};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use regstat_shared::testkit::private_node::PrivateNode;
use regstat_shared::testkit::{TestBroker, eventually};
use regstat_shared::topology::{
    ATTEMPTS_HEADER, ERROR_KIND_HEADER, FIRST_FAILURE_HEADER, LAST_FAILURE_HEADER, REASON_HEADER,
    header_i64, header_str,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn serve_image(registry: &FakeRegistry) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = sha256(config);
    registry.state.add(
        &config_digest,
        "application/vnd.oci.image.config.v1+json",
        config,
    );
    let manifest = json!({
        "schemaVersion": 2, "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
    })
    .to_string();
    let digest = sha256(manifest.as_bytes());
    registry.state.add(&digest, IMAGE, manifest.as_bytes());
    digest
}

async fn publish(broker: &TestBroker, routing_key: &str, id: &str, body: &[u8]) {
    broker
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = broker
        .channel
        .basic_publish(
            broker.topology.exchange().into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default()
                .with_message_id(id.into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack() && confirm.take_message().is_none());
}

fn manifest_push(id: &str, host: &str, digest: &str) -> Vec<u8> {
    json!({
        "id": id, "timestamp": "2026-11-22T10:00:00Z", "action": "push",
        "target": {"mediaType": IMAGE, "size": 300, "digest": digest, "repository": "lab/app", "tag": "v1"},
        "request": {"method": "PUT", "host": host, "useragent": "skopeo/1.9.3"},
    })
    .to_string()
    .into_bytes()
}

fn blob_pull(id: &str) -> Vec<u8> {
    json!({
        "id": id, "timestamp": "2026-11-22T10:00:00Z", "action": "pull",
        "target": {"mediaType": "application/octet-stream", "size": 10, "digest": "sha256:b", "repository": "lab/app"},
        "request": {"method": "GET", "useragent": "skopeo/1.9.3"},
    })
    .to_string()
    .into_bytes()
}

async fn recorded(db: &TestDb, id: &str) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM regstat.events WHERE id = regstat.event_key($1)",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
        == 1
}

fn registry_config(registry: &FakeRegistry) -> String {
    format!(
        "[[registries]]\nname = \"fake\"\nurl = \"{}\"\n",
        registry.url()
    )
}

/// A registry that fails for a while: the pushed manifest waits in the retry queue (the
/// worker holds nothing), pulls keep flowing meanwhile, and once the registry is back the
/// push is recorded with its content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_are_retried_through_the_broker_until_it_recovers() {
    let db = TestDb::new().await;
    let broker = TestBroker::with_retry_delays(&[1]).await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry);
    registry.state.set_behaviour(Behaviour::Status(503));
    let host = registry.url().trim_start_matches("http://").to_owned();
    let settings = settings_with_file(
        &db,
        &broker,
        &registry_config(&registry),
        &[
            ("REGSTAT__AMQP__RETRY_DELAYS_SECS", "1"),
            ("REGSTAT__WORKER__MAX_ATTEMPTS", "50"),
        ],
    );
    let worker = TestWorker::spawn(&settings);

    publish(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1", &host, &digest),
    )
    .await;
    publish(&broker, "pull.blob", "pull-1", &blob_pull("pull-1")).await;
    eventually(
        DEADLINE,
        "the pull recorded despite the failing registry",
        || async { recorded(&db, "pull-1").await.then_some(()) },
    )
    .await;
    eventually(DEADLINE, "a few callback attempts", || async {
        (registry.state.seen().len() >= 2).then_some(())
    })
    .await;
    assert!(!recorded(&db, "push-1").await);
    publish(&broker, "pull.blob", "pull-2", &blob_pull("pull-2")).await;
    eventually(DEADLINE, "a later pull recorded", || async {
        recorded(&db, "pull-2").await.then_some(())
    })
    .await;

    registry.state.set_behaviour(Behaviour::Normal);
    eventually(DEADLINE, "the push recorded after recovery", || async {
        recorded(&db, "push-1").await.then_some(())
    })
    .await;
    let status: String =
        sqlx::query_scalar("SELECT fetch_status FROM regstat.manifests WHERE digest = $1")
            .bind(&digest)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "fetched");
    worker.stop().await;
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 0);
    for queue in broker.topology.retry_queues() {
        assert_eq!(broker.depth(&queue).await, 0, "{queue}");
    }
}

/// A registry that never recovers, and a message that can never be an event: both end in the
/// dead-letter queue, with headers saying why, how often and since when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_and_permanent_failures_are_dead_lettered_with_the_reason() {
    let db = TestDb::new().await;
    let broker = TestBroker::with_retry_delays(&[1]).await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry);
    registry.state.set_behaviour(Behaviour::Status(500));
    let host = registry.url().trim_start_matches("http://").to_owned();
    let settings = settings_with_file(
        &db,
        &broker,
        &registry_config(&registry),
        &[
            ("REGSTAT__AMQP__RETRY_DELAYS_SECS", "1"),
            ("REGSTAT__WORKER__MAX_ATTEMPTS", "3"),
        ],
    );
    let worker = TestWorker::spawn(&settings);
    publish(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1", &host, &digest),
    )
    .await;
    publish(
        &broker,
        "pull.blob",
        "broken-1",
        b"{\"id\": \"broken-1\", \"action\": ",
    )
    .await;

    let dead = broker.topology.dead_queue();
    eventually(DEADLINE, "two dead letters", || async {
        (broker.depth(&dead).await == 2).then_some(())
    })
    .await;
    worker.stop().await;
    let mut letters = broker.drain(&dead).await;
    letters.sort_by_key(|m| m.properties.message_id().as_ref().map(|id| id.to_string()));
    let headers = |i: usize| letters[i].properties.headers().clone();

    assert_eq!(
        letters[0]
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "broken-1"
    );
    assert_eq!(
        header_str(&headers(0), ERROR_KIND_HEADER),
        Some("invalid_event")
    );
    assert_eq!(header_i64(&headers(0), ATTEMPTS_HEADER), Some(1));
    assert_eq!(letters[0].data, b"{\"id\": \"broken-1\", \"action\": ");

    assert_eq!(
        letters[1]
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "push-1"
    );
    assert_eq!(
        letters[1].routing_key.as_str(),
        "push.manifest",
        "kept for replay"
    );
    assert_eq!(
        header_str(&headers(1), ERROR_KIND_HEADER),
        Some("registry_unavailable")
    );
    assert_eq!(header_i64(&headers(1), ATTEMPTS_HEADER), Some(3));
    assert!(
        header_str(&headers(1), REASON_HEADER)
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    let first = header_i64(&headers(1), FIRST_FAILURE_HEADER).unwrap();
    let last = header_i64(&headers(1), LAST_FAILURE_HEADER).unwrap();
    assert!(
        last - first >= 1500,
        "two retry delays of 1 s lie between first and last failure"
    );
    assert_eq!(letters[1].data, manifest_push("push-1", &host, &digest));
    assert_eq!(db.ledger_len().await, 0);
}

/// An event the database cannot even look up (an id with a NUL byte, published straight to
/// the exchange) is dead-lettered with the database's reason; the rest of its batch is
/// recorded. It used to count as "database unavailable" while learning manifest contents and
/// held the whole batch, and the manifests queue behind it, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_in_the_callback_path_is_dead_lettered_alone() {
    use regstat_worker::handler::{Context, Incoming, Outcome, handle_batch};
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let settings = crate::helpers::settings(&db, &broker, &[]);
    let context = Context::new(db.pool.clone(), &settings).unwrap();
    let message = |body: Vec<u8>| Incoming {
        body,
        correlation_id: None,
        received_at: None,
    };
    let digest = format!("sha256:{}", "a".repeat(64));
    let poison = message(manifest_push("poison\u{0}id", "elsewhere:5000", &digest));
    let good = message(manifest_push("good-id", "elsewhere:5000", &digest));
    let (outcomes, summary) = handle_batch(&context, &[poison, good])
        .await
        .expect("not held as if the database were unavailable");
    match &outcomes[0] {
        Outcome::DeadLetter(reason) => assert_eq!(reason.kind, "database_rejected", "{reason:?}"),
        other => panic!("the poison event: {other:?}"),
    }
    assert_eq!(outcomes[1], Outcome::Ack);
    assert_eq!(summary.stored, 1);
    assert!(recorded(&db, "good-id").await);
}

/// Messages of `queue` on a private node, ready or unacknowledged, as the broker's statistics
/// say (refreshed every few seconds).
fn messages(node: &PrivateNode, queue: &str) -> (u64, u64) {
    let listed = node.ctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    let line = listed
        .lines()
        .find(|line| line.split('\t').next() == Some(queue))
        .unwrap_or_else(|| panic!("queue {queue} on the private node: {listed}"));
    let counts: Vec<u64> = line
        .split('\t')
        .skip(1)
        .map(|count| count.trim().parse().unwrap())
        .collect();
    (counts[0], counts[1])
}

/// A broker that blocks publishers (memory alarm, on a private node) while an event needs a
/// retry: the batch holding it waits for the broker's confirmation and readiness says the
/// worker is stalled, while batches that need no publish are still recorded and acknowledged
/// (retries go out on a connection of their own, so the alarm never blocks the consumers'
/// acks). Once the alarm clears, the retry is confirmed, the event recorded and the worker
/// ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_stalls_only_the_batches_with_retries_and_readiness_says_so() {
    let node = PrivateNode::start().await;
    let db = TestDb::new().await;
    let broker = TestBroker::at(&node.url()).await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry);
    registry.state.set_behaviour(Behaviour::Status(503));
    let host = registry.url().trim_start_matches("http://").to_owned();
    let url = node.url();
    let settings = settings_with_file(
        &db,
        &broker,
        &registry_config(&registry),
        &[
            ("REGSTAT__AMQP__URL", &url),
            ("REGSTAT__AMQP__RETRY_DELAYS_SECS", "1"),
            ("REGSTAT__AMQP__CONFIRM_TIMEOUT_MS", "1000"),
            ("REGSTAT__WORKER__MAX_ATTEMPTS", "50"),
        ],
    );
    publish(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1", &host, &digest),
    )
    .await;
    publish(&broker, "pull.blob", "pull-1", &blob_pull("pull-1")).await;
    node.raise_memory_alarm();
    let worker = TestWorker::spawn(&settings);
    let readyz = format!("{}/readyz", worker.address);
    eventually(DEADLINE, "readiness to report the stall", || async {
        let response = reqwest::get(&readyz).await.ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        (body["publishing"] == "stalled").then_some(())
    })
    .await;
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), 503);
    assert!(!recorded(&db, "push-1").await);
    // The push is held unacknowledged; the pull, queued before the alarm, is recorded and
    // acknowledged meanwhile.
    eventually(DEADLINE, "the push held, the pull acknowledged", || async {
        let held = messages(&node, &broker.topology.manifest_queue()) == (0, 1);
        let done = messages(&node, &broker.topology.ingest_queue()) == (0, 0);
        (held && done && recorded(&db, "pull-1").await).then_some(())
    })
    .await;

    registry.state.set_behaviour(Behaviour::Normal);
    node.clear_memory_alarm();
    eventually(
        DEADLINE,
        "the push recorded once the alarm cleared",
        || async { recorded(&db, "push-1").await.then_some(()) },
    )
    .await;
    eventually(DEADLINE, "the worker ready again", || async {
        let status = reqwest::get(&readyz).await.ok()?.status();
        (status == 200).then_some(())
    })
    .await;
    worker.stop().await;
}
