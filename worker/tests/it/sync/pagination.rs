//! Paginated listings, and registries that refuse or fail: a small fake registry API
//! (`_catalog` and `tags/list` paginated with `Link` headers, as distribution 3 does for
//! both; Debian's 2.8 paginates only the catalog), and the real registry's catalog.

use super::{REGISTRY, Setup, live_tags, quiet, snapshot};
use crate::helpers::TestDb;
use crate::support::{OCI_CONFIG, OCI_MANIFEST, callbacks, settings, sha256};
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use regstat_cli::sync::{SyncOptions, sync};
use regstat_registry::RegistryClient;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the fake registry serves, and how it misbehaves.
#[derive(Default)]
struct State {
    /// Repository → tag → digest.
    repositories: BTreeMap<String, BTreeMap<String, String>>,
    /// Digest → (content type, body): manifests and config blobs.
    docs: HashMap<String, (String, Vec<u8>)>,
    /// Answer this to `_catalog`.
    catalog_status: Option<u16>,
    /// Repositories whose `tags/list` answers 500.
    broken: HashSet<String>,
    /// Next-page links point at another host.
    foreign_links: bool,
    /// `METHOD path?query` of every request.
    requests: Vec<String>,
}

struct Fake {
    state: Arc<Mutex<State>>,
    url: String,
    handle: ServerHandle,
}

impl Fake {
    /// Serves one image (linux/amd64) under every tag of `repositories`.
    fn start(repositories: &[(&str, &[&str])]) -> Self {
        let config = json!({"architecture": "amd64", "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config.as_bytes()),
                       "size": config.len()},
            "layers": [],
        })
        .to_string();
        let digest = sha256(manifest.as_bytes());
        let mut state = State::default();
        state.docs.insert(
            sha256(config.as_bytes()),
            (OCI_CONFIG.into(), config.into_bytes()),
        );
        state
            .docs
            .insert(digest.clone(), (OCI_MANIFEST.into(), manifest.into_bytes()));
        for (repository, tags) in repositories {
            let tags = tags.iter().map(|t| ((*t).to_owned(), digest.clone()));
            state
                .repositories
                .insert((*repository).to_owned(), tags.collect());
        }
        let state = Arc::new(Mutex::new(state));
        let shared = web::Data::from(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(serve))
        })
        .listen(listener)
        .unwrap()
        .disable_signals()
        .workers(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { state, url, handle }
    }

    fn client(&self) -> RegistryClient {
        RegistryClient::new(&settings(REGISTRY, &self.url), &callbacks()).unwrap()
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// One page of `items` after `last`, and the link to the next one.
fn page(items: Vec<String>, query: &HashMap<String, String>) -> (Vec<String>, Option<String>) {
    let n: usize = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
    let after: Vec<String> = match query.get("last") {
        Some(last) => items.into_iter().filter(|i| i > last).collect(),
        None => items,
    };
    let next = (after.len() > n).then(|| after[n - 1].clone());
    (after.into_iter().take(n).collect(), next)
}

async fn serve(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let path = request.path().to_owned();
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(request.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    state.requests.push(format!(
        "{} {path}?{}",
        request.method(),
        request.query_string()
    ));
    let host = if state.foreign_links {
        "http://elsewhere.invalid"
    } else {
        ""
    };
    let listing = |items: Vec<String>, key: &str, extra: serde_json::Value| {
        let (items, next) = page(items, &query);
        let mut body = extra;
        body[key] = json!(items);
        let mut response = HttpResponse::Ok();
        if let Some(last) = next {
            let n = query.get("n").cloned().unwrap_or_default();
            response.insert_header((
                "Link",
                format!("<{host}{path}?last={last}&n={n}>; rel=\"next\""),
            ));
        }
        response.json(body)
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return HttpResponse::NotFound().finish();
    };
    if rest == "_catalog" {
        if let Some(status) = state.catalog_status {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .finish();
        }
        let names = state.repositories.keys().cloned().collect();
        return listing(names, "repositories", json!({}));
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        if state.broken.contains(name) {
            return HttpResponse::InternalServerError().finish();
        }
        let Some(tags) = state.repositories.get(name) else {
            return HttpResponse::NotFound().finish();
        };
        return listing(
            tags.keys().cloned().collect(),
            "tags",
            json!({"name": name}),
        );
    }
    let (name, reference) = match rest.split_once("/manifests/") {
        Some(split) => split,
        None => match rest.split_once("/blobs/") {
            Some(split) => split,
            None => return HttpResponse::NotFound().finish(),
        },
    };
    let digest = match state.repositories.get(name) {
        Some(tags) => tags.get(reference).cloned().unwrap_or(reference.to_owned()),
        None => return HttpResponse::NotFound().finish(),
    };
    match state.docs.get(&digest) {
        Some((content_type, body)) => {
            let mut response = HttpResponse::Ok();
            response
                .insert_header(("Content-Type", content_type.as_str()))
                .insert_header(("Docker-Content-Digest", digest.as_str()));
            if request.method() == actix_web::http::Method::HEAD {
                response.finish()
            } else {
                response.body(body.clone())
            }
        }
        None => HttpResponse::NotFound().finish(),
    }
}

fn small_pages() -> SyncOptions {
    SyncOptions {
        page_size: 2,
        ..quiet()
    }
}

#[tokio::test]
async fn catalogs_and_tag_lists_are_read_page_by_page() {
    let fake = Fake::start(&[
        ("fake/a", &["v1"]),
        ("fake/b", &["t1", "t2", "t3", "t4", "t5"]),
        ("fake/c", &["v1"]),
    ]);
    let client = fake.client();
    assert_eq!(
        client.tags("fake/b", 2).await.unwrap(),
        ["t1", "t2", "t3", "t4", "t5"]
    );
    assert_eq!(fake.requests("GET /v2/fake/b/tags/list").len(), 3);

    let db = TestDb::new().await;
    let report = sync(&db.pool, &client, &small_pages()).await.unwrap();
    assert!(report.is_complete(), "{}", report.differences_text());
    assert_eq!((report.repositories, report.tags_seen), (3, 7));
    assert_eq!(report.manifests_fetched, 1, "one digest everywhere");
    assert_eq!(
        fake.requests("GET /v2/_catalog"),
        ["GET /v2/_catalog?n=2", "GET /v2/_catalog?last=fake/b&n=2"]
    );
    assert_eq!(live_tags(&db).await.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_registry_paginates_its_catalog() {
    let setup = Setup::new().await;
    for repository in ["sync/a", "sync/b", "sync/c"] {
        setup
            .push(
                &setup.layout.reference("amd64"),
                &format!("{repository}:v1"),
                false,
            )
            .await;
    }
    assert_eq!(
        setup.client.catalog(1).await.unwrap(),
        ["sync/a", "sync/b", "sync/c"]
    );
    let report = setup
        .sync_with(SyncOptions {
            page_size: 1,
            ..quiet()
        })
        .await;
    assert_eq!((report.repositories, report.tags_seen), (3, 3));
}

#[tokio::test]
async fn a_registry_without_a_catalog_is_a_clear_error_and_changes_nothing() {
    let fake = Fake::start(&[("fake/a", &["v1"])]);
    fake.state.lock().unwrap().catalog_status = Some(404);
    let db = TestDb::new().await;
    let error = sync(&db.pool, &fake.client(), &quiet()).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("does not offer its catalog"), "{message}");
    assert!(message.contains(REGISTRY), "{message}");
    assert!(snapshot(&db, true).await.is_empty());

    fake.state.lock().unwrap().catalog_status = Some(401);
    let error = sync(&db.pool, &fake.client(), &quiet()).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("registry:catalog:*"), "{message}");
}

#[tokio::test]
async fn a_failing_repository_is_reported_and_left_alone() {
    let fake = Fake::start(&[("fake/a", &["v1"]), ("fake/b", &["v1"])]);
    let db = TestDb::new().await;
    sync(&db.pool, &fake.client(), &quiet()).await.unwrap();
    // fake/b: its tag list fails (after retries); fake/a: its tag is gone.
    {
        let mut state = fake.state.lock().unwrap();
        state.broken.insert("fake/b".into());
        state.repositories.get_mut("fake/a").unwrap().clear();
    }
    let report = sync(&db.pool, &fake.client(), &quiet()).await.unwrap();
    assert!(!report.is_complete());
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].repository, "fake/b");
    assert!(format!("{:#}", report.failures[0].error).contains("500"));
    assert_eq!(report.tags_gone, 1);
    let left: Vec<String> = live_tags(&db).await.into_iter().map(|t| t.0).collect();
    assert_eq!(left, ["fake/b"], "fake/b kept what it had");
    assert!(report.to_string().contains("fake/b failed"), "{report}");

    // Next pages that lead to another host are not followed.
    fake.state.lock().unwrap().foreign_links = true;
    let error = fake.client().catalog(1).await.unwrap_err();
    assert!(error.to_string().contains("leaves the endpoint"), "{error}");
}
