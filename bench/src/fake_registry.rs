//! A stand-in registry for the worker's callbacks: serves the benchmark's manifests and config
//! blobs by digest, optionally after a delay (scenario 4's slow registry). A real registry
//! cannot be made to hold 10,000 tags and answer in exactly 500 ms, so this is the one mock.

use crate::workload::Documents;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The running stand-in.
pub struct FakeRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    handle: ServerHandle,
}

struct State {
    documents: Documents,
    /// Delay of every manifest answer, in milliseconds (changeable while running).
    manifest_delay_ms: AtomicU64,
    requests: AtomicU64,
}

impl FakeRegistry {
    /// Starts serving `documents` on a free local port.
    pub fn start(documents: Documents) -> anyhow::Result<Self> {
        let state = Arc::new(State {
            documents,
            manifest_delay_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let shared = web::Data::from(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            addr,
            state,
            handle,
        })
    }

    /// Answers manifest requests after `delay` from now on.
    pub fn set_manifest_delay(&self, delay: Duration) {
        self.state
            .manifest_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// `GET /v2/` answers 200; `GET /v2/<name>/(manifests|blobs)/<digest>` the document or 404.
async fn serve(request: HttpRequest, state: web::Data<State>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let path = request.path();
    if path == "/v2/" {
        return HttpResponse::Ok().json(serde_json::json!({}));
    }
    let Some((_, digest)) = path.rsplit_once('/') else {
        return HttpResponse::NotFound().finish();
    };
    let document = state
        .documents
        .read()
        .ok()
        .and_then(|documents| documents.get(digest).cloned());
    let Some(document) = document else {
        return HttpResponse::NotFound().finish();
    };
    if path.contains("/manifests/") {
        let delay = state.manifest_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
    HttpResponse::Ok()
        .content_type(document.media_type)
        .insert_header(("Docker-Content-Digest", digest.to_owned()))
        .body(document.bytes.to_vec())
}
