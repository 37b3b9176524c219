//! The broker link: 503 while it is down, recovery by itself, readiness and metrics.

use crate::helpers::{TestApp, fixture_bodies, settings};
use regstat_shared::testkit::{self, TcpProxy, TestBroker, eventually};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

fn rabbitmq() -> std::net::SocketAddr {
    let url = testkit::amqp_url();
    let host = url
        .split('@')
        .next_back()
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host)
        .unwrap()
        .next()
        .unwrap()
}

fn via(proxy: &TcpProxy) -> String {
    let url = testkit::amqp_url();
    let (credentials, rest) = url.rsplit_once('@').unwrap();
    let vhost = rest.split_once('/').map(|(_, v)| v).unwrap_or("%2f");
    format!("{credentials}@{}/{vhost}", proxy.addr())
}

/// A broker that was never reachable: 503 with Retry-After, never 200, and not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gets_503_and_retry_after() {
    let broker = TestBroker::new().await;
    let settings = settings(
        &broker.prefix,
        "amqp://guest:guest@127.0.0.1:1/%2f",
        &[("REGSTAT__RECEIVER__RETRY_AFTER_SECS", "7")],
    );
    let app = TestApp::start(broker, &settings);
    for body in fixture_bodies("01-push-oci-by-tag.jsonl") {
        let response = app.post("/events", body).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "7");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "unavailable");
        assert!(
            !error["message"].as_str().unwrap().contains("127.0.0.1"),
            "5xx bodies say nothing internal"
        );
    }
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

/// The link is cut while running: requests get 503 meanwhile (never a 200 for an event that
/// was not confirmed), the receiver reconnects by itself, and a sender that retries like the
/// registry gets every event in exactly once per successful answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_broker_link_gets_503_then_recovers_by_itself() {
    let proxy = TcpProxy::start(rabbitmq()).await;
    let broker = TestBroker::new().await;
    let settings = settings(&broker.prefix, &via(&proxy), &[]);
    let app = TestApp::start(broker, &settings);
    app.wait_ready().await;

    let bodies = fixture_bodies("06-push-multiarch-oci-index.jsonl");
    assert_eq!(app.post("/events", bodies[0].clone()).await.status(), 200);

    proxy.cut();
    eventually(DEADLINE, "readiness to drop", || async {
        (app.get("/readyz").await.status() == 503).then_some(())
    })
    .await;
    let response = app.post("/events", bodies[1].clone()).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    proxy.restore();
    // Retry every remaining event like the registry does: until it is accepted.
    for body in &bodies[1..] {
        eventually(DEADLINE, "the event to be accepted", || async {
            (app.post("/events", body.clone()).await.status() == 200).then_some(())
        })
        .await;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);

    let topology = &app.broker.topology;
    let mut ids: Vec<String> = app
        .broker
        .drain(&topology.ingest_queue())
        .await
        .into_iter()
        .chain(app.broker.drain(&topology.manifest_queue()).await)
        .map(|m| m.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            v["events"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    app.stop().await;
}

/// `amqp.url` as a cluster's list of nodes: one that does not answer is passed over, and when
/// the node the receiver is on goes away it moves to another (here two proxies in front of one
/// broker stand for two nodes: each cut in turn, every event is still accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_nodes_connects_to_one_that_answers_and_moves_when_it_goes() {
    let first = TcpProxy::start(rabbitmq()).await;
    let second = TcpProxy::start(rabbitmq()).await;
    let broker = TestBroker::new().await;
    let url = format!(
        "amqp://guest:guest@127.0.0.1:1/%2f,{},{}",
        via(&first),
        via(&second)
    );
    let settings = settings(&broker.prefix, &url, &[]);
    let app = TestApp::start(broker, &settings);
    app.wait_ready().await;

    let bodies = fixture_bodies("06-push-multiarch-oci-index.jsonl");
    let accepted = |body: String| {
        let app = &app;
        async move {
            eventually(DEADLINE, "the event to be accepted", || async {
                (app.post("/events", body.clone()).await.status() == 200).then_some(())
            })
            .await;
        }
    };
    accepted(bodies[0].clone()).await;
    first.cut();
    accepted(bodies[1].clone()).await;
    first.restore();
    second.cut();
    accepted(bodies[2].clone()).await;
    second.restore();
    let topology = &app.broker.topology;
    let ids: std::collections::BTreeSet<String> = app
        .broker
        .drain(&topology.ingest_queue())
        .await
        .into_iter()
        .chain(app.broker.drain(&topology.manifest_queue()).await)
        .map(|m| m.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = bodies[..3]
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            v["events"][0]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, expected);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn(&[]).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["broker"], "connected");

    app.post("/events", fixture_bodies("03-pull-by-tag.jsonl")[0].clone())
        .await;
    app.post("/events", "nonsense").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "regstat_receiver_requests_total{status=\"200\"}",
        "regstat_receiver_requests_total{status=\"400\"}",
        "regstat_receiver_events_accepted_total",
        "regstat_receiver_publish_duration_seconds_bucket",
        "regstat_receiver_broker_connected",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let missing = app.get("/nope").await;
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["error"], "not_found");
    app.stop().await;
}

/// Stopping the receiver while requests are in flight: every request answered 200 has its
/// event in the queue; the others were refused or failed and the registry would retry them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_no_answered_event() {
    let app = TestApp::spawn(&[]).await;
    let url = format!("{}/events", app.address);
    let template = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    let original_id = serde_json::from_str::<Value>(&template).unwrap()["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_answers = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..200)
        .map(|i| {
            let client = app.client.clone();
            let url = url.clone();
            let id = format!("shutdown-{i:04}");
            let body = template.replace(&original_id, &id);
            let first_answers = first_answers.clone();
            tokio::spawn(async move {
                let status = client
                    .post(url)
                    .header("Authorization", "Bearer test-token")
                    .header("Content-Type", crate::helpers::V1)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .ok();
                if status == Some(200) {
                    first_answers.fetch_add(1, Ordering::Relaxed);
                }
                (id, status)
            })
        })
        .collect();
    // Stop once the first requests are answered (not after a fixed pause, which a busy machine
    // can outlast before answering any): the rest are still in flight.
    eventually(Duration::from_secs(30), "a first answer", || {
        let answered = first_answers.load(Ordering::Relaxed);
        async move { (answered > 0).then_some(()) }
    })
    .await;
    let broker = app.broker_handle();
    app.stop().await;

    let mut answered = Vec::new();
    for sender in senders {
        let (id, status) = sender.await.unwrap();
        if status == Some(200) {
            answered.push(id);
        }
    }
    let queued: std::collections::HashSet<String> = broker
        .drain(&broker.topology.ingest_queue())
        .await
        .into_iter()
        .map(|m| m.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert!(
        !answered.is_empty(),
        "some requests finished before the stop"
    );
    for id in &answered {
        assert!(
            queued.contains(id),
            "{id} was answered 200 but is not queued"
        );
    }
}

/// `regstat-receiver healthcheck` (what container health checks run): 0 when the receiver on
/// `receiver.listen` is ready, 1 with the reason otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_probes_readiness() {
    let app = TestApp::spawn(&[]).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let run = |listen: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_regstat-receiver"))
            .arg("healthcheck")
            .env("REGSTAT__RECEIVER__LISTEN", listen)
            .output()
            .unwrap()
    };
    let ready = run(format!("0.0.0.0:{port}"));
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    app.stop().await;
    let down = run(format!("127.0.0.1:{port}"));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz"));
}

/// The broker's version, read from its greeting (it decides the terminal queues' arguments):
/// the installed RabbitMQ's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_version_is_read_from_its_greeting() {
    let version = regstat_shared::amqp::broker_version(&testkit::amqp_url().into())
        .await
        .unwrap()
        .expect("RabbitMQ says its version");
    let installed = std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .expect("rabbitmqctl is installed with RabbitMQ");
    let installed = String::from_utf8_lossy(&installed.stdout).trim().to_owned();
    assert!(
        installed.starts_with(&format!("{version}.")),
        "read {version}, installed {installed}"
    );
}
