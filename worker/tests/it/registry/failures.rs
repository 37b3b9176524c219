//! What the client makes of failing registries: which failures are worth a retry, which are
//! not, and the bounds (time, size, concurrency) holding.

use super::fake::{Auth, Behaviour, FakeRegistry};
use super::support::{OCI_MANIFEST, callbacks, free_port, settings, sha256};
use regstat_registry::{FetchError, RegistryClient};
use regstat_shared::config::CallbackSettings;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A small, valid OCI manifest; `n` makes it unique. Returns (digest, bytes).
fn manifest(n: usize) -> (String, Vec<u8>) {
    let config = sha256(format!("config {n}").as_bytes());
    let bytes = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": 10},
        "layers": [],
        "annotations": {"n": n.to_string()},
    })
    .to_string()
    .into_bytes();
    (sha256(&bytes), bytes)
}

fn client_with(registry: &FakeRegistry, callbacks: &CallbackSettings) -> RegistryClient {
    RegistryClient::new(&settings("flaky", &registry.url()), callbacks).expect("registry client")
}

fn transient(result: Result<impl std::fmt::Debug, FetchError>) -> String {
    match result {
        Err(FetchError::Transient(message)) => message,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

fn invalid(result: Result<impl std::fmt::Debug, FetchError>) -> String {
    match result {
        Err(FetchError::Invalid(message)) => message,
        other => panic!("expected invalid content, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_transient_and_not_cached() {
    let registry = FakeRegistry::start(Auth::None);
    let (digest, bytes) = manifest(1);
    registry.state.add(&digest, OCI_MANIFEST, &bytes);
    let client = client_with(&registry, &callbacks());
    for status in [500, 502, 503, 429] {
        registry.state.set_behaviour(Behaviour::Status(status));
        let message = transient(client.manifest("lab/app", &digest).await);
        assert!(message.contains(&status.to_string()), "{message}");
    }
    // Recovered: the failure was not cached.
    registry.state.set_behaviour(Behaviour::Normal);
    let fetched = client
        .manifest("lab/app", &digest)
        .await
        .expect("recovered");
    assert!(!fetched.from_cache);
    // A client error that is not 401/403/404 will not get better.
    registry.state.set_behaviour(Behaviour::Status(400));
    let (other, _) = manifest(2);
    invalid(client.manifest("lab/app", &other).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_slower_than_the_timeout_is_transient() {
    let registry = FakeRegistry::start(Auth::None);
    let (digest, bytes) = manifest(1);
    registry.state.add(&digest, OCI_MANIFEST, &bytes);
    registry
        .state
        .set_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    let callbacks = CallbackSettings {
        timeout_ms: 300,
        ..callbacks()
    };
    let client = client_with(&registry, &callbacks);
    let started = Instant::now();
    let message = transient(client.manifest("lab/app", &digest).await);
    assert!(message.contains("timed out"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_transient() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let client = RegistryClient::new(&settings("down", &url), &callbacks()).expect("client");
    let (digest, _) = manifest(1);
    transient(client.manifest("lab/app", &digest).await);
    transient(client.config_platform("lab/app", &digest).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_is_not_what_its_digest_says_is_invalid() {
    let registry = FakeRegistry::start(Auth::None);
    let (digest, _) = manifest(1);
    let (_, other_bytes) = manifest(2);
    registry.state.add(&digest, OCI_MANIFEST, &other_bytes);
    let client = client_with(&registry, &callbacks());
    let message = invalid(client.manifest("lab/app", &digest).await);
    assert!(message.contains(&sha256(&other_bytes)), "{message}");
    invalid(client.config_platform("lab/app", &digest).await);

    // Right digest, not a manifest.
    let garbage = b"<html>surprise</html>".to_vec();
    let garbage_digest = sha256(&garbage);
    registry.state.add(&garbage_digest, "text/html", &garbage);
    invalid(client.manifest("lab/app", &garbage_digest).await);

    // Names that must never reach a URL: refused before any request.
    let before = registry.state.seen().len();
    invalid(client.manifest("../../etc", &digest).await);
    invalid(client.manifest("lab/app", "sha256:../../v2").await);
    invalid(client.manifest("lab/app?x=1", &digest).await);
    assert_eq!(registry.state.seen().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_invalid_with_or_without_a_length() {
    let registry = FakeRegistry::start(Auth::None);
    let big = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(b"c"), "size": 1},
        "layers": [],
        "annotations": {"padding": "x".repeat(8 * 1024)},
    })
    .to_string()
    .into_bytes();
    let digest = sha256(&big);
    registry.state.add(&digest, OCI_MANIFEST, &big);
    let callbacks = CallbackSettings {
        max_document_bytes: 4096,
        ..callbacks()
    };
    for behaviour in [Behaviour::Normal, Behaviour::Chunked] {
        registry.state.set_behaviour(behaviour);
        let client = client_with(&registry, &callbacks);
        let message = invalid(client.manifest("lab/app", &digest).await);
        assert!(message.contains("larger than 4096 bytes"), "{message}");
    }
    // Within the limit, chunked bodies are read whole.
    let loose = CallbackSettings {
        max_document_bytes: big.len(),
        ..callbacks
    };
    let fetched = client_with(&registry, &loose)
        .manifest("lab/app", &digest)
        .await
        .expect("a chunked manifest at the limit");
    assert_eq!(fetched.size, big.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_is_bounded_and_one_digest_is_fetched_once() {
    let registry = FakeRegistry::start(Auth::None);
    let manifests: Vec<(String, Vec<u8>)> = (0..6).map(manifest).collect();
    for (digest, bytes) in &manifests {
        registry.state.add(digest, OCI_MANIFEST, bytes);
    }
    registry
        .state
        .set_behaviour(Behaviour::Delay(Duration::from_millis(300)));
    let callbacks = CallbackSettings {
        concurrency: 2,
        ..callbacks()
    };
    let client = client_with(&registry, &callbacks);

    // Six different digests at once: never more than two requests in flight.
    let fetches = manifests
        .iter()
        .map(|(digest, _)| client.manifest("lab/app", digest));
    for result in futures_util::future::join_all(fetches).await {
        result.expect("a manifest");
    }
    assert_eq!(registry.state.seen().len(), 6);
    assert_eq!(registry.state.max_in_flight.load(Ordering::SeqCst), 2);

    // Five fetches of one new digest at once: one request, one fetch, four cache answers.
    let (digest, bytes) = manifest(99);
    registry.state.add(&digest, OCI_MANIFEST, &bytes);
    let fetches = (0..5).map(|_| client.manifest("lab/app", &digest));
    let results = futures_util::future::join_all(fetches).await;
    let fresh = results
        .into_iter()
        .map(|r| r.expect("a manifest"))
        .filter(|f| !f.from_cache)
        .count();
    assert_eq!(fresh, 1);
    assert_eq!(
        registry.state.seen().len(),
        7,
        "one request for the shared digest"
    );
}
