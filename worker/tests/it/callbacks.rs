//! Callbacks as the worker makes them: which registry is asked, and what each answer does to
//! the event (small test registries, for the behaviours a real registry cannot be made to show).

use crate::helpers::TestDb;
use crate::registry::fake::{Auth, Behaviour, FakeRegistry};
use regstat_worker::handler::{Context, Incoming, Outcome, handle_batch};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An image manifest and its config, served by `registry`; returns the manifest digest.
fn serve_image(registry: &FakeRegistry, architecture: &str) -> String {
    let config = json!({"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string();
    let config_digest = sha256(config.as_bytes());
    registry.state.add(
        &config_digest,
        "application/vnd.oci.image.config.v1+json",
        config.as_bytes(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{}", "ab".repeat(32)), "size": 1234}],
    })
    .to_string();
    let digest = sha256(manifest.as_bytes());
    registry.state.add(&digest, IMAGE, manifest.as_bytes());
    digest
}

fn push(id: &str, host: &str, repository: &str, digest: &str, url: &str) -> Incoming {
    let event = json!({
        "id": id,
        "timestamp": "2026-11-22T10:00:00Z",
        "action": "push",
        "target": {"mediaType": IMAGE, "size": 500, "digest": digest, "repository": repository,
                   "tag": "v1", "url": url},
        "request": {"method": "PUT", "host": host, "useragent": "skopeo/1.9.3"},
        "actor": {},
    });
    Incoming {
        body: event.to_string().into_bytes(),
        correlation_id: None,
        received_at: None,
    }
}

/// A context whose one configured registry `fake` is at `url` (extra TOML lines allowed).
fn context(db: &TestDb, url: &str, extra: &str) -> Context {
    let file = std::env::temp_dir().join(format!(
        "{}.toml",
        regstat_shared::testkit::unique_name("callbacks")
    ));
    std::fs::write(
        &file,
        format!("[[registries]]\nname = \"fake\"\nurl = \"{url}\"\n{extra}\n"),
    )
    .unwrap();
    let settings = regstat_shared::config::Settings::load_with_env(Some(&file), Vec::new());
    std::fs::remove_file(&file).unwrap();
    Context::new(db.pool.clone(), &settings.unwrap()).unwrap()
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("http://")
}

async fn fetch_status(db: &TestDb, registry: &str, digest: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT fetch_status FROM regstat.manifests WHERE registry = $1 AND digest = $2 LIMIT 1",
    )
    .bind(registry)
    .bind(digest)
    .fetch_optional(&db.pool)
    .await
    .unwrap()
}

/// Counts connections to a port nobody should call.
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}"), hits)
}

/// The event's `target.url` is built from the client's Host header: the worker asks the
/// configured URL, never that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_go_to_the_configured_url_never_the_events() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry, "arm64");
    let (trap_url, trap_hits) = trap().await;
    let ctx = context(&db, &registry.url(), "");
    let url = format!("{trap_url}/v2/lab/app/manifests/{digest}");
    let message = push("e1", host_of(&registry.url()), "lab/app", &digest, &url);

    let (outcomes, _) = handle_batch(&ctx, &[message]).await.unwrap();
    assert_eq!(outcomes, [Outcome::Ack]);
    assert_eq!(
        trap_hits.load(Ordering::SeqCst),
        0,
        "no request to the event's url"
    );
    let seen = registry.state.seen();
    assert!(
        seen.iter()
            .any(|s| s.path.ends_with(&format!("/manifests/{digest}")))
    );
    assert!(seen.iter().all(|s| {
        s.user_agent
            .as_deref()
            .is_some_and(|a| a.starts_with("regstat/"))
    }));
    assert_eq!(
        fetch_status(&db, "fake", &digest).await.as_deref(),
        Some("fetched")
    );
    let architecture: Option<String> =
        sqlx::query_scalar("SELECT architecture FROM regstat.manifests WHERE digest = $1")
            .bind(&digest)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(architecture.as_deref(), Some("arm64"));
}

/// An event from a host no registry is configured for is recorded under that host, and nobody
/// is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_unconfigured_registries_are_recorded_without_callbacks() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry, "amd64");
    let ctx = context(&db, &registry.url(), "");
    let message = push(
        "e1",
        "elsewhere.example:5000",
        "lab/app",
        &digest,
        "http://x/",
    );

    let (outcomes, _) = handle_batch(&ctx, &[message]).await.unwrap();
    assert_eq!(outcomes, [Outcome::Ack]);
    assert!(registry.state.seen().is_empty());
    assert_eq!(
        fetch_status(&db, "elsewhere.example:5000", &digest)
            .await
            .as_deref(),
        Some("no_registry")
    );
}

/// 5xx: the event is not recorded and comes back later; once the registry recovers it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registry_retries_the_event_until_it_recovers() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry, "amd64");
    let ctx = context(&db, &registry.url(), "");
    let message = push("e1", host_of(&registry.url()), "lab/app", &digest, "");

    registry.state.set_behaviour(Behaviour::Status(503));
    let (outcomes, summary) = handle_batch(&ctx, std::slice::from_ref(&message))
        .await
        .unwrap();
    assert!(
        matches!(&outcomes[0], Outcome::Retry(reason) if reason.contains("registry unavailable"))
    );
    assert_eq!(summary.retried, 1);
    assert_eq!(
        db.ledger_len().await,
        0,
        "nothing of a retried event is recorded"
    );

    registry.state.set_behaviour(Behaviour::Normal);
    let (outcomes, _) = handle_batch(&ctx, &[message]).await.unwrap();
    assert_eq!(outcomes, [Outcome::Ack]);
    assert_eq!(
        fetch_status(&db, "fake", &digest).await.as_deref(),
        Some("fetched")
    );
}

/// 404: deleted meanwhile. The push is recorded, the content marked gone, no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_deleted_meanwhile_is_recorded_as_gone() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::None);
    let ctx = context(&db, &registry.url(), "");
    let digest = sha256(b"never pushed");
    let message = push("e1", host_of(&registry.url()), "lab/app", &digest, "");
    let (outcomes, _) = handle_batch(&ctx, &[message]).await.unwrap();
    assert_eq!(outcomes, [Outcome::Ack]);
    assert_eq!(
        fetch_status(&db, "fake", &digest).await.as_deref(),
        Some("gone")
    );
    assert_eq!(db.ledger_len().await, 1);
}

/// Refused credentials and a manifest that lies about its digest can never succeed: the
/// events are dead-lettered with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_access_and_lying_manifests_are_dead_lettered() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::Basic {
        user: "regstat".into(),
        password: "right".into(),
    });
    let digest = serve_image(&registry, "amd64");
    let wrong = context(
        &db,
        &registry.url(),
        "username = \"regstat\"\npassword = \"wrong\"",
    );
    let message = push("e1", host_of(&registry.url()), "lab/app", &digest, "");
    let (outcomes, _) = handle_batch(&wrong, &[message]).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::DeadLetter(reason) if !reason.contains("wrong")));

    let liar = FakeRegistry::start(Auth::None);
    let claimed = sha256(b"what the event says");
    liar.state.add(&claimed, IMAGE, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:00","size":1},"layers":[]}"#);
    let ctx = context(&db, &liar.url(), "");
    let message = push("e2", host_of(&liar.url()), "lab/app", &claimed, "");
    let (outcomes, _) = handle_batch(&ctx, &[message]).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::DeadLetter(_)));
    assert_eq!(db.ledger_len().await, 0);
}

/// Content is immutable for a digest: once fetched, a push of the same digest elsewhere (even
/// by another worker process, with a cold cache) reuses it without asking the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_is_fetched_once() {
    let db = TestDb::new().await;
    let registry = FakeRegistry::start(Auth::None);
    let digest = serve_image(&registry, "amd64");
    let host = host_of(&registry.url()).to_owned();

    let first = context(&db, &registry.url(), "");
    handle_batch(&first, &[push("e1", &host, "lab/app", &digest, "")])
        .await
        .unwrap();
    let manifest_gets = || {
        registry
            .state
            .seen()
            .iter()
            .filter(|s| s.path.contains("/manifests/"))
            .count()
    };
    assert_eq!(manifest_gets(), 1);

    let second = context(&db, &registry.url(), "");
    handle_batch(&second, &[push("e2", &host, "lab/copy", &digest, "")])
        .await
        .unwrap();
    assert_eq!(
        manifest_gets(),
        1,
        "the second push reused the known content"
    );
    let references: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM regstat.manifest_references WHERE repository = 'lab/copy'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        references, 2,
        "config and layer copied to the second repository"
    );
}
