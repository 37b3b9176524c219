//! Small in-process servers for what a real registry cannot be made to do on demand: a token
//! server, a registry that trusts it, blob storage behind a redirect, and misbehaviour (5xx,
//! slowness, lies about digests, oversized bodies).

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// An actix server on 127.0.0.1:0, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    handle: ServerHandle,
    _task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn start<F>(configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
        let addr = listener.local_addr().expect("test server address");
        let server = HttpServer::new(move || App::new().configure(configure.clone()))
            .listen(listener)
            .expect("listen")
            .disable_signals()
            .workers(2)
            .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Self {
            addr,
            handle,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `stop` sends the command when called; waiting for completion is not needed.
        drop(self.handle.stop(false));
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn header_value(request: &HttpRequest, name: header::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// The registry.

/// How the fake registry authenticates.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// htpasswd-style.
    Basic { user: String, password: String },
    /// Token auth: tokens issued by a token server, whose set this shares.
    Bearer {
        realm: String,
        service: String,
        tokens: Arc<Mutex<HashSet<String>>>,
    },
}

/// How the fake registry misbehaves.
#[derive(Clone, Default)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Answer this status to every request.
    Status(u16),
    /// Wait this long before answering.
    Delay(Duration),
    /// Send bodies in chunks, without Content-Length.
    Chunked,
}

/// One request the fake registry saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
}

/// A document served by digest.
#[derive(Clone)]
pub struct Doc {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct RegistryState {
    /// By the digest in the request path (which need not be the content's: tests lie).
    pub docs: Mutex<HashMap<String, Doc>>,
    pub auth: Mutex<Auth>,
    pub behaviour: Mutex<Behaviour>,
    /// Blob GETs redirect to `<this>/<digest>` when set.
    pub blob_redirect: Mutex<Option<String>>,
    pub seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl RegistryState {
    pub fn add(&self, digest: &str, content_type: &str, bytes: &[u8]) {
        self.docs.lock().unwrap().insert(
            digest.to_owned(),
            Doc {
                content_type: content_type.to_owned(),
                bytes: bytes.to_vec(),
            },
        );
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

/// A registry API (`GET /v2/<repo>/{manifests,blobs}/<digest>`) over [`RegistryState`].
pub struct FakeRegistry {
    pub state: Arc<RegistryState>,
    pub server: Server,
}

impl FakeRegistry {
    pub fn start(auth: Auth) -> Self {
        let state = Arc::new(RegistryState::default());
        *state.auth.lock().unwrap() = auth;
        let shared = web::Data::from(state.clone());
        let server = Server::start(move |config| {
            config
                .app_data(shared.clone())
                .default_service(web::to(registry_handler));
        });
        Self { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// Decrements the in-flight count when the request ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn registry_handler(request: HttpRequest, state: web::Data<RegistryState>) -> HttpResponse {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(&state.in_flight);
    let path = request.path().to_owned();
    let authorization = header_value(&request, header::AUTHORIZATION);
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization: authorization.clone(),
        user_agent: header_value(&request, header::USER_AGENT),
        accept: header_value(&request, header::ACCEPT),
    });

    let behaviour = state.behaviour.lock().unwrap().clone();
    match behaviour {
        Behaviour::Status(code) => {
            let status = actix_web::http::StatusCode::from_u16(code).expect("a status");
            return HttpResponse::build(status).body("misbehaving on purpose");
        }
        Behaviour::Delay(delay) => tokio::time::sleep(delay).await,
        Behaviour::Normal | Behaviour::Chunked => {}
    }

    let Some(rest) = path.strip_prefix("/v2/") else {
        return HttpResponse::NotFound().finish();
    };
    let (repository, kind, digest) = if let Some((repo, digest)) = rest.rsplit_once("/manifests/") {
        (repo, "manifests", digest)
    } else if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        (repo, "blobs", digest)
    } else {
        return HttpResponse::NotFound().finish();
    };

    let auth = state.auth.lock().unwrap().clone();
    let authorised = match &auth {
        Auth::None => true,
        Auth::Basic { user, password } => authorization.as_deref() == Some(&basic(user, password)),
        Auth::Bearer { tokens, .. } => authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|token| tokens.lock().unwrap().contains(token)),
    };
    if !authorised {
        let challenge = match &auth {
            Auth::Bearer { realm, service, .. } => format!(
                r#"Bearer realm="{realm}",service="{service}",scope="repository:{repository}:pull""#
            ),
            _ => r#"Basic realm="test""#.to_owned(),
        };
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, challenge))
            .body(r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#);
    }

    if kind == "blobs"
        && let Some(storage) = state.blob_redirect.lock().unwrap().clone()
    {
        return HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, format!("{storage}/{digest}?sig=s3cr3t")))
            .finish();
    }
    let Some(doc) = state.docs.lock().unwrap().get(digest).cloned() else {
        return HttpResponse::NotFound().body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#);
    };
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CONTENT_TYPE, doc.content_type));
    if matches!(behaviour, Behaviour::Chunked) {
        let chunks: Vec<Result<web::Bytes, std::convert::Infallible>> = doc
            .bytes
            .chunks(1024)
            .map(|c| Ok(web::Bytes::copy_from_slice(c)))
            .collect();
        response.streaming(futures_util::stream::iter(chunks))
    } else {
        response.body(doc.bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// Blob storage behind a redirect.

/// Serves `/storage/<digest>` and records each request's Authorization header.
pub struct Storage {
    pub docs: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub authorizations: Arc<Mutex<Vec<Option<String>>>>,
    pub server: Server,
}

impl Storage {
    pub fn start() -> Self {
        let docs: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let authorizations: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (d, a) = (docs.clone(), authorizations.clone());
        let server = Server::start(move |config| {
            let (docs, authorizations) = (d.clone(), a.clone());
            config.route(
                "/storage/{digest}",
                web::get().to(move |request: HttpRequest, path: web::Path<String>| {
                    let (docs, authorizations) = (docs.clone(), authorizations.clone());
                    async move {
                        authorizations
                            .lock()
                            .unwrap()
                            .push(header_value(&request, header::AUTHORIZATION));
                        match docs.lock().unwrap().get(path.as_str()) {
                            Some(bytes) => HttpResponse::Ok()
                                .content_type("application/octet-stream")
                                .body(bytes.clone()),
                            None => HttpResponse::NotFound().finish(),
                        }
                    }
                }),
            );
        });
        Self {
            docs,
            authorizations,
            server,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The token server.

/// One token request.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub method: String,
    pub params: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl TokenRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the token server answers.
#[derive(Clone, Default)]
pub struct TokenPolicy {
    /// Basic credentials required for GET; `None`: anonymous tokens for everyone.
    pub credentials: Option<(String, String)>,
    /// The refresh token accepted by POST (`grant_type=refresh_token`).
    pub refresh_token: Option<String>,
    /// Answer `access_token` instead of `token`.
    pub access_token_field: bool,
    /// Issue tokens the registry does not know (it will refuse them).
    pub issue_unknown_tokens: bool,
    /// Answer every request with a 307 redirect to this URL (method and body kept).
    pub redirect_to: Option<String>,
    /// The `expires_in` of the tokens issued (default 300 s).
    pub expires_in: Option<u64>,
}

pub struct TokenServer {
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    /// Tokens issued; the registry accepts exactly these.
    pub tokens: Arc<Mutex<HashSet<String>>>,
    pub server: Server,
}

impl TokenServer {
    pub fn start(policy: TokenPolicy) -> Self {
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let tokens: Arc<Mutex<HashSet<String>>> = Arc::default();
        let shared = web::Data::new(TokenShared {
            policy,
            requests: requests.clone(),
            tokens: tokens.clone(),
        });
        let server = Server::start(move |config| {
            config
                .app_data(shared.clone())
                .route("/token", web::route().to(token_handler));
        });
        Self {
            requests,
            tokens,
            server,
        }
    }

    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// A registry that trusts this server's tokens.
    pub fn registry_auth(&self) -> Auth {
        Auth::Bearer {
            realm: self.realm(),
            service: "test".into(),
            tokens: self.tokens.clone(),
        }
    }
}

struct TokenShared {
    policy: TokenPolicy,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    tokens: Arc<Mutex<HashSet<String>>>,
}

async fn token_handler(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<TokenShared>,
) -> HttpResponse {
    let method = request.method().as_str().to_owned();
    let encoded = if method == "POST" {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        request.query_string().to_owned()
    };
    let params: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .expect("urlencoded parameters")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let authorization = header_value(&request, header::AUTHORIZATION);
    let token_request = TokenRequest {
        method: method.clone(),
        params,
        authorization: authorization.clone(),
    };
    shared.requests.lock().unwrap().push(token_request.clone());

    let policy = &shared.policy;
    if let Some(target) = &policy.redirect_to {
        return HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, target.as_str()))
            .finish();
    }
    let allowed = if method == "POST" {
        token_request.param("grant_type") == Some("refresh_token")
            && token_request.param("refresh_token").is_some()
            && token_request.param("refresh_token") == policy.refresh_token.as_deref()
    } else {
        match &policy.credentials {
            None => true,
            Some((user, password)) => authorization.as_deref() == Some(&basic(user, password)),
        }
    };
    if !allowed {
        return HttpResponse::Unauthorized()
            .body(r#"{"details":"incorrect username or password"}"#);
    }
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    if !policy.issue_unknown_tokens {
        shared.tokens.lock().unwrap().insert(token.clone());
    }
    let field = if policy.access_token_field {
        "access_token"
    } else {
        "token"
    };
    let expires_in = policy.expires_in.unwrap_or(300);
    HttpResponse::Ok().json(serde_json::json!({field: token, "expires_in": expires_in}))
}
