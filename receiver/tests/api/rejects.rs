//! Malformed requests get a clear 4xx with a JSON body, and publish nothing.

use crate::helpers::{TestApp, V1, fixture_bodies};
use base64::Engine;
use serde_json::Value;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["request_id"].as_str().is_some());
    body
}

async fn assert_nothing_published(app: &TestApp) {
    for queue in app.broker.topology.queues() {
        assert_eq!(app.broker.depth(&queue.name).await, 0, "{}", queue.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_credentials_get_401() {
    let app = TestApp::spawn(&[]).await;
    let body = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    let url = format!("{}/events", app.address);
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdDp0ZXN0"),
        Some(""),
    ] {
        let mut request = app.client.post(&url).header("Content-Type", V1);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.body(body.clone()).send().await.unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        assert_error(response, 401, "unauthorized").await;
    }
    assert_nothing_published(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_accepted() {
    let file = std::env::temp_dir().join(format!(
        "{}.toml",
        regstat_shared::testkit::unique_name("cfg")
    ));
    std::fs::write(
        &file,
        "[[receiver.basic]]\nusername = \"registry\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let broker = regstat_shared::testkit::TestBroker::new().await;
    let mut settings =
        crate::helpers::settings(&broker.prefix, &regstat_shared::testkit::amqp_url(), &[]);
    let from_file =
        regstat_shared::config::Settings::load_with_env(Some(&file), Vec::new()).unwrap();
    std::fs::remove_file(&file).unwrap();
    settings.receiver.basic = from_file.receiver.basic;
    let app = TestApp::start(broker, &settings);
    app.wait_ready().await;

    let credentials = base64::engine::general_purpose::STANDARD.encode("registry:hunter2");
    let response = app
        .client
        .post(format!("{}/events", app.address))
        .header("Authorization", format!("Basic {credentials}"))
        .header("Content-Type", V1)
        .body(fixture_bodies("03-pull-by-tag.jsonl")[0].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

/// Without credentials the receiver refuses to start: an open webhook lets anyone write the
/// registry's history. Allowed explicitly, it accepts anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_credentials_the_receiver_is_open_only_when_allowed() {
    let broker = regstat_shared::testkit::TestBroker::new().await;
    let mut settings =
        crate::helpers::settings(&broker.prefix, &regstat_shared::testkit::amqp_url(), &[]);
    settings.receiver.tokens.clear();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = regstat_receiver::Application::build_with_listener(&settings, listener)
        .err()
        .expect("no credentials and allow_anonymous false: refused");
    assert!(
        refused.to_string().contains("receiver.allow_anonymous"),
        "{refused}"
    );
    settings.receiver.allow_anonymous = true;
    let app = TestApp::start(broker, &settings);
    app.wait_ready().await;
    let response = app
        .client
        .post(format!("{}/events", app.address))
        .header("Content-Type", V1)
        .body(fixture_bodies("03-pull-by-tag.jsonl")[0].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_types_get_415() {
    let app = TestApp::spawn(&[]).await;
    let body = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let mut request = app
            .client
            .post(format!("{}/events", app.address))
            .header("Authorization", "Bearer test-token");
        if let Some(value) = content_type {
            request = request.header("Content-Type", value);
        }
        let response = request.body(body.clone()).send().await.unwrap();
        assert_error(response, 415, "unsupported_media_type").await;
    }
    assert_nothing_published(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let app = TestApp::spawn(&[("REGSTAT__RECEIVER__BODY_LIMIT_BYTES", "2048")]).await;
    let padding = "x".repeat(4096);
    let body = format!(
        r#"{{"events":[{{"id":"big","action":"pull","target":{{"repository":"{padding}"}}}}]}}"#
    );
    let response = app.post("/events", body.clone()).await;
    let error = assert_error(response, 413, "payload_too_large").await;
    assert!(error["message"].as_str().unwrap().contains("2048"));

    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(512)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app.post("/events", stream).await;
    assert_error(response, 413, "payload_too_large").await;
    assert_nothing_published(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_envelopes_get_400_saying_why() {
    let app = TestApp::spawn(&[]).await;
    let cases: [&[u8]; 8] = [
        b"",
        b"not json",
        b"{\"events\": [",
        b"[]",
        b"{}",
        b"{\"events\": null}",
        b"{\"events\": {\"id\": \"x\"}}",
        b"{\"events\": [\"\xff\xfe\"]}",
    ];
    for body in cases {
        let response = app.post("/events", body.to_vec()).await;
        let error = assert_error(response, 400, "bad_request").await;
        assert!(
            error["message"].as_str().unwrap().contains("envelope"),
            "{error}"
        );
    }
    assert_nothing_published(&app).await;
    app.stop().await;
}

/// An empty envelope is well-formed: 200, nothing published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_envelope_is_accepted() {
    let app = TestApp::spawn(&[]).await;
    let response = app.post("/events", r#"{"events": []}"#).await;
    assert_eq!(response.status(), 200);
    assert_nothing_published(&app).await;
    app.stop().await;
}
