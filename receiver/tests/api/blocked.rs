//! A broker that blocks publishers (a RabbitMQ memory or disk alarm), on a private node so the
//! alarm disturbs no other test.

use crate::helpers::{TOKEN, TestApp, V1, fixture_bodies, settings};
use regstat_shared::testkit::private_node::PrivateNode;
use regstat_shared::testkit::{TestBroker, eventually};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A registry waits about a second for an answer before it gives up and retries.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(1);

fn event_id(body: &str) -> String {
    let envelope: Value = serde_json::from_str(body).unwrap();
    envelope["events"][0]["id"].as_str().unwrap().to_owned()
}

/// While the broker is blocked every request gets 503 with Retry-After before a registry's
/// timeout (with the production confirm timeout of 5 s), and nothing of a refused request is
/// left queued inside the receiver to be published later; once the alarm clears, requests get
/// 200 again and the queues hold the events answered 200, plus at most one copy of the event
/// whose publish made the broker announce the alarm (RabbitMQ tells a connection only when it
/// publishes; that copy is already in the broker's hands and is stored when the alarm clears).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_gets_503_within_a_registry_timeout_and_200_once_it_clears() {
    let node = PrivateNode::start().await;
    let broker = TestBroker::at(&node.url()).await;
    let settings = settings(
        &broker.prefix,
        &node.url(),
        &[("REGSTAT__AMQP__CONFIRM_TIMEOUT_MS", "5000")],
    );
    let app = TestApp::start(broker, &settings);
    app.wait_ready().await;
    let registry = reqwest::Client::builder()
        .timeout(REGISTRY_TIMEOUT)
        .build()
        .unwrap();
    let post = |body: String| {
        registry
            .post(format!("{}/events", app.address))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", V1)
            .body(body)
            .send()
    };

    let bodies = fixture_bodies("06-push-multiarch-oci-index.jsonl");
    assert_eq!(post(bodies[0].clone()).await.unwrap().status(), 200);

    node.raise_memory_alarm();
    let mut refused = 0;
    for body in &bodies[1..] {
        let started = Instant::now();
        let response = post(body.clone()).await.unwrap_or_else(|e| {
            panic!(
                "no answer within a registry's timeout while the broker is blocked \
                 ({:?}): {e}",
                started.elapsed()
            )
        });
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "unavailable");
        refused += 1;
    }
    assert!(refused > 0);
    assert_eq!(app.get("/readyz").await.status(), 503);

    node.clear_memory_alarm();
    for body in &bodies[1..] {
        eventually(
            Duration::from_secs(20),
            "the event to be accepted",
            || async {
                let status = post(body.clone()).await.map(|r| r.status().as_u16()).ok();
                (status == Some(200)).then_some(())
            },
        )
        .await;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);

    let broker = app.broker_handle();
    app.stop().await;
    let topology = &broker.topology;
    let queued: Vec<String> = broker
        .drain(&topology.ingest_queue())
        .await
        .into_iter()
        .chain(broker.drain(&topology.manifest_queue()).await)
        .map(|m| m.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = bodies.iter().map(|b| event_id(b)).collect();
    expected.sort();
    let mut distinct = queued.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, expected, "every event answered 200 is queued");
    assert!(
        queued.len() <= expected.len() + 1,
        "refused requests were published later: {} messages for {} events",
        queued.len(),
        expected.len()
    );
}
