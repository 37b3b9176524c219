//! What the receiver publishes for what it is sent.

use crate::helpers::{FIXTURES, TestApp, fixture_bodies};
use regstat_shared::topology::{REASON_HEADER, RECEIVED_AT_HEADER, header_i64, header_str};
use serde_json::Value;

/// Every real fixture request is answered 200 and each of its events becomes exactly one
/// persistent message, byte for byte, routed by action and kind, carrying the event id and
/// the receiver's request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_posted_event_is_published_exactly_once() {
    let app = TestApp::spawn(&[]).await;
    let mut expected = Vec::new();
    let mut request_ids = Vec::new();
    for file in FIXTURES {
        for body in fixture_bodies(file) {
            let response = app.post("/events", body.clone()).await;
            assert_eq!(response.status(), 200, "{file}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["accepted"], 1);
            assert_eq!(answer["quarantined"], 0);
            request_ids.push(answer["request_id"].as_str().unwrap().to_owned());
            let envelope: Value = serde_json::from_str(&body).unwrap();
            for event in envelope["events"].as_array().unwrap() {
                expected.push(event.clone());
            }
        }
    }

    let topology = &app.broker.topology;
    let mut published = app.broker.drain(&topology.ingest_queue()).await;
    let manifests = app.broker.drain(&topology.manifest_queue()).await;
    assert!(
        manifests
            .iter()
            .all(|m| m.routing_key.as_str() == "push.manifest")
    );
    assert!(!manifests.is_empty());
    assert!(
        published
            .iter()
            .all(|m| m.routing_key.as_str() != "push.manifest")
    );
    published.extend(manifests);
    assert_eq!(published.len(), expected.len());
    assert!(
        app.broker
            .drain(&topology.quarantine_queue())
            .await
            .is_empty()
    );

    // Same multiset of events, each message the raw event and keyed by its id.
    let mut got: Vec<(String, Value)> = published
        .iter()
        .map(|m| {
            let event: Value = serde_json::from_slice(&m.data).unwrap();
            let id = m.properties.message_id().as_ref().unwrap().to_string();
            assert_eq!(event["id"].as_str().unwrap(), id);
            assert_eq!(m.properties.delivery_mode(), &Some(2), "persistent");
            let correlation = m.properties.correlation_id().as_ref().unwrap().to_string();
            assert!(request_ids.contains(&correlation));
            assert!(header_i64(m.properties.headers(), RECEIVED_AT_HEADER).unwrap() > 0);
            let action = event["action"].as_str().unwrap();
            assert!(m.routing_key.as_str().starts_with(action));
            (id, event)
        })
        .collect();
    let mut want: Vec<(String, Value)> = expected
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    app.stop().await;
}

/// The body bytes of each event are forwarded untouched (no re-serialisation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_forwarded_byte_for_byte() {
    let app = TestApp::spawn(&[]).await;
    let body = &fixture_bodies("01-push-oci-by-tag.jsonl")[3];
    assert_eq!(app.post("/events", body.clone()).await.status(), 200);
    let message = app
        .broker
        .drain(&app.broker.topology.manifest_queue())
        .await
        .pop()
        .unwrap();
    let raw = std::str::from_utf8(&message.data).unwrap();
    assert!(
        body.contains(raw),
        "the message is a slice of the request body"
    );
    app.stop().await;
}

/// Events that cannot be keyed or routed go to quarantine with the reason; valid events in
/// the same request are still published, and the registry gets its 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_events_are_quarantined_with_the_reason() {
    let app = TestApp::spawn(&[]).await;
    let body = r#"{"events": [
        {"action": "push", "target": {"repository": "a", "digest": "sha256:1"}},
        {"id": "no-action", "target": {"repository": "a"}},
        {"id": "no-target", "action": "pull"},
        "not an object",
        {"id": "bad-time", "timestamp": "yesterday", "action": "pull", "target": {}},
        {"id": "fine", "action": "pull", "target": {"mediaType": "application/octet-stream", "repository": "a", "digest": "sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57"}},
        {"id": "future-action", "action": "scan", "target": {"repository": "a"}}
    ]}"#;
    let response = app.post("/events", body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["quarantined"], 5);

    let topology = &app.broker.topology;
    let quarantined = app.broker.drain(&topology.quarantine_queue()).await;
    let reasons: Vec<(String, String)> = quarantined
        .iter()
        .map(|m| {
            (
                m.properties.message_id().as_ref().unwrap().to_string(),
                header_str(m.properties.headers(), REASON_HEADER)
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 5);
    assert!(reasons[0].1.contains("no id"));
    assert_eq!(reasons[1].0, "no-action");
    assert!(reasons[1].1.contains("no action"));
    assert_eq!(reasons[2].0, "no-target");
    assert!(reasons[2].1.contains("no target"));
    assert!(reasons[3].1.contains("schema"));
    assert!(reasons[4].1.contains("timestamp"));

    // An unknown action is kept and routed as `other.*`, never refused.
    let ingested = app.broker.drain(&topology.ingest_queue()).await;
    let keys: Vec<&str> = ingested.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(keys, ["pull.blob", "other.unknown"]);
    app.stop().await;
}

/// The older receivers' paths are served by the same handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_paths_are_accepted() {
    let app = TestApp::spawn(&[]).await;
    let bodies = fixture_bodies("03-pull-by-tag.jsonl");
    assert_eq!(app.post("/", bodies[0].clone()).await.status(), 200);
    assert_eq!(
        app.post("/api/webhook/registry", bodies[1].clone())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.broker
            .drain(&app.broker.topology.ingest_queue())
            .await
            .len(),
        2
    );
    app.stop().await;
}

/// `application/json` and distribution 3.x's v2 type are accepted, with parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_content_type_is_accepted() {
    let app = TestApp::spawn(&[]).await;
    let body = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    for content_type in [
        "application/json",
        "application/vnd.docker.distribution.events.v2+json",
        "application/json; charset=utf-8",
    ] {
        let response = app
            .client
            .post(format!("{}/events", app.address))
            .header("Authorization", "Bearer test-token")
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{content_type}");
    }
    app.stop().await;
}
