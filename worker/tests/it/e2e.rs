//! End to end: a real registry, skopeo, receiver, RabbitMQ, worker, Postgres.
//!
//! Debian's `docker-registry` (distribution 2.8) sends its notifications through a small
//! recording proxy to the receiver; skopeo pushes, copies, pulls and deletes an image. Every
//! event the registry delivered (the receiver answered 2xx) must end up in the ledger exactly
//! once, and nothing else may.

use crate::helpers::{TestDb, TestReceiver, TestWorker, settings};
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use regstat_shared::testkit::{self, TestBroker};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const INSTALL: &str = "install it: apt-get install -y docker-registry skopeo";
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Longest any one external command may run.
const COMMAND_TIMEOUT: &str = "120s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_events_land_in_the_ledger_exactly_once() {
    require_tools();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let settings = settings(&db, &broker, &[("REGSTAT__RECEIVER__TOKENS", &token)]);
    let receiver = TestReceiver::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings);
    let proxy = RecordingProxy::start(format!("{}/events", receiver.address));

    // Dropped first on a panic: kills the registry, then removes its files.
    let mut scratch = Scratch::new();
    let registry = scratch.start_registry(proxy.port, &token).await;
    let dir = scratch.dir.clone();
    let image = build_oci_layout(&dir).await;

    // Push, push again into a second repository (mounts), pull, delete by digest.
    let layout = format!("oci:{}:v1", dir.join("oci").display());
    let app = format!("docker://{registry}/e2e/app:v1");
    let copy = format!("docker://{registry}/e2e/copy:v1");
    let pulled = format!("oci:{}:v1", dir.join("pulled").display());
    skopeo(
        &["copy", "--dest-tls-verify=false", &layout, &app],
        &scratch,
    )
    .await;
    let args = [
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &app,
        &copy,
    ];
    skopeo(&args, &scratch).await;
    skopeo(&["copy", "--src-tls-verify=false", &app, &pulled], &scratch).await;
    let inspected = skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &copy,
        ],
        &scratch,
    )
    .await;
    let digest = inspected.trim().to_owned();
    assert_eq!(
        digest, image.manifest_digest,
        "e2e/copy:v1 is the manifest pushed"
    );
    let by_digest = format!("docker://{registry}/e2e/copy@{digest}");
    skopeo(&["delete", "--tls-verify=false", &by_digest], &scratch).await;

    // The registry sends one event per request, in order: once both deletes (the manifest by
    // digest, then its tag) are delivered, everything before them has been.
    testkit::eventually(
        Duration::from_secs(30),
        "the registry to deliver the delete events",
        || {
            let events = proxy.delivered_events();
            let deleted = |key: &str, value: &str| {
                events.iter().any(|e| {
                    e["action"] == "delete"
                        && e["target"]["repository"] == "e2e/copy"
                        && e["target"][key] == value
                })
            };
            let done = deleted("digest", &digest) && deleted("tag", "v1");
            async move { done.then_some(()) }
        },
    )
    .await;
    let delivered = proxy.delivered_ids();
    testkit::eventually(
        Duration::from_secs(30),
        "the ledger to hold every delivered event",
        || {
            let delivered = delivered.clone();
            let pool = db.pool.clone();
            async move {
                let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM regstat.events")
                    .fetch_all(&pool)
                    .await
                    .expect("read the ledger ids");
                // Every delivered id; the assertions below then say what differs, if anything.
                let ids: BTreeSet<String> = ids.into_iter().collect();
                delivered.is_subset(&ids).then_some(())
            }
        },
    )
    .await;

    // Exactly once: the same ids, each in one row.
    let rows: Vec<LedgerRow> = sqlx::query_as(
        "SELECT id, action, media_type, digest, repository, tag, from_repository, \
         request_method, request_useragent, correlation_id \
         FROM regstat.events ORDER BY occurred_at, id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the ledger");
    let ledger_ids: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    let missing: Vec<_> = delivered.difference(&ledger_ids).collect();
    let extra: Vec<_> = ledger_ids.difference(&delivered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ledger differs from what was delivered: missing {missing:?}, extra {extra:?}"
    );
    let counts = db.ledger_counts().await;
    assert_eq!(counts.len(), delivered.len());
    assert!(
        counts.iter().all(|(_, n)| *n == 1),
        "an event id is in the ledger more than once: {counts:?}"
    );
    assert_eq!(db.ledger_len().await, i64::try_from(rows.len()).unwrap());
    let deliveries = proxy.deliveries();
    let answered_2xx = deliveries.iter().filter(|d| d.is_success()).count();
    assert!(
        answered_2xx >= delivered.len(),
        "{answered_2xx} requests answered 2xx carried {} distinct events",
        delivered.len()
    );

    // What skopeo did is in the ledger.
    let has = |what: &str, matches: &dyn Fn(&LedgerRow) -> bool| {
        assert!(
            rows.iter().any(matches),
            "no ledger row for {what}; rows:\n{}",
            rows.iter()
                .map(LedgerRow::summary)
                .collect::<Vec<_>>()
                .join("\n")
        );
    };
    has("the manifest pushed to e2e/app:v1", &|r| {
        r.action == "push"
            && r.repo() == "e2e/app"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.tag.as_deref() == Some("v1")
            && r.digest.as_deref() == Some(image.manifest_digest.as_str())
    });
    for blob in [&image.layer_digest, &image.config_digest] {
        has(&format!("the blob {blob} pushed to e2e/app"), &|r| {
            r.action == "push"
                && r.repo() == "e2e/app"
                && r.request_method.as_deref() == Some("PUT")
                && r.digest.as_deref() == Some(blob)
        });
    }
    // Copying into e2e/copy, skopeo knows from its blob info cache (written by the first push,
    // in /var/lib/containers/cache for root) that the layer is in e2e/app on the same registry:
    // it HEADs it there (a `pull` event) and mounts it instead of uploading it.
    let layer = Some(image.layer_digest.as_str());
    has("the layer HEAD in e2e/app before the mount", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.request_method.as_deref() == Some("HEAD")
            && r.digest.as_deref() == layer
    });
    has("the layer mounted into e2e/copy from e2e/app", &|r| {
        r.action == "mount"
            && r.repo() == "e2e/copy"
            && r.from_repository.as_deref() == Some("e2e/app")
            && r.digest.as_deref() == layer
    });
    // The config blob is never mounted: skopeo (containers/image) reads the config with a GET
    // and uploads it again, so it shows as a pull from e2e/app and a push to e2e/copy.
    let config = Some(image.config_digest.as_str());
    has("the config pulled from e2e/app", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.request_method.as_deref() == Some("GET")
            && r.digest.as_deref() == config
    });
    has("the config pushed again to e2e/copy", &|r| {
        r.action == "push"
            && r.repo() == "e2e/copy"
            && r.request_method.as_deref() == Some("PUT")
            && r.digest.as_deref() == config
    });
    assert!(
        !rows
            .iter()
            .any(|r| r.action == "mount" && r.digest.as_deref() == config),
        "the config blob was mounted: skopeo behaves differently from 1.9.3"
    );
    has("the manifest pushed to e2e/copy:v1", &|r| {
        r.action == "push"
            && r.repo() == "e2e/copy"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.tag.as_deref() == Some("v1")
    });
    has("the manifest pulled from e2e/app:v1", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.media_type.as_deref() == Some(OCI_MANIFEST)
            && r.request_method.as_deref() == Some("GET")
    });
    has("the layer pulled from e2e/app", &|r| {
        r.action == "pull"
            && r.repo() == "e2e/app"
            && r.digest.as_deref() == Some(image.layer_digest.as_str())
            && r.request_method.as_deref() == Some("GET")
    });
    has("the manifest of e2e/copy deleted by digest", &|r| {
        r.action == "delete" && r.repo() == "e2e/copy" && r.digest.as_deref() == Some(&digest)
    });
    has("the tag e2e/copy:v1 deleted with its manifest", &|r| {
        r.action == "delete" && r.repo() == "e2e/copy" && r.tag.as_deref() == Some("v1")
    });
    for row in &rows {
        let agent = row.request_useragent.as_deref().unwrap_or_default();
        assert!(agent.contains("skopeo"), "not from skopeo: {row:?}");
        assert!(
            row.correlation_id.as_deref().is_some_and(|c| !c.is_empty()),
            "no correlation id: {row:?}"
        );
    }

    // Nothing left behind in the broker: the work queues drained, nothing quarantined or dead.
    let topology = &broker.topology;
    for queue in [topology.ingest_queue(), topology.manifest_queue()] {
        testkit::eventually(Duration::from_secs(10), "the work queues to drain", || {
            let broker = &broker;
            let queue = queue.clone();
            async move { (broker.depth(&queue).await == 0).then_some(()) }
        })
        .await;
    }
    assert_eq!(broker.depth(&topology.ingest_queue()).await, 0);
    assert_eq!(broker.depth(&topology.manifest_queue()).await, 0);
    assert_eq!(broker.depth(&topology.quarantine_queue()).await, 0);
    assert_eq!(broker.depth(&topology.dead_queue()).await, 0);

    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *by_action.entry(row.action.as_str()).or_default() += 1;
    }
    println!(
        "e2e: {} requests from the registry ({answered_2xx} answered 2xx), {} distinct events, \
         ledger rows by action {by_action:?}",
        deliveries.len(),
        delivered.len()
    );

    drop(scratch);
    proxy.stop().await;
    worker.stop().await;
    receiver.stop().await;
}

/// The ledger columns the test looks at.
#[derive(Debug, sqlx::FromRow)]
struct LedgerRow {
    id: String,
    action: String,
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    from_repository: Option<String>,
    request_method: Option<String>,
    request_useragent: Option<String>,
    correlation_id: Option<String>,
}

impl LedgerRow {
    fn repo(&self) -> &str {
        self.repository.as_deref().unwrap_or_default()
    }

    /// One line for failure messages.
    fn summary(&self) -> String {
        let field = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "{} {} {} {} {} tag={} from={} {}",
            self.action,
            self.repo(),
            field(&self.request_method),
            field(&self.media_type),
            field(&self.digest),
            field(&self.tag),
            field(&self.from_repository),
            field(&self.request_useragent),
        )
    }
}

/// Fails (never skips) when the registry or skopeo is not installed.
fn require_tools() {
    assert!(
        Path::new(REGISTRY_BIN).is_file(),
        "{REGISTRY_BIN} is missing: {INSTALL}"
    );
    let skopeo = Command::new("skopeo").arg("--version").output();
    assert!(
        skopeo.is_ok_and(|output| output.status.success()),
        "skopeo is missing: {INSTALL}"
    );
}

// ---------------------------------------------------------------------------------------------
// The recording proxy between the registry and the receiver.

/// One request the registry made.
#[derive(Clone, Debug)]
struct Delivery {
    /// What the receiver answered (502 when it could not be reached).
    status: u16,
    /// The envelope's events.
    events: Vec<Value>,
}

impl Delivery {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

type Log = Arc<Mutex<Vec<Delivery>>>;

struct ProxyState {
    client: reqwest::Client,
    target: String,
    log: Log,
}

/// Forwards every request to the receiver and records what it answered.
struct RecordingProxy {
    port: u16,
    log: Log,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl RecordingProxy {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let log = Log::default();
        let shared = log.clone();
        let server = HttpServer::new(move || {
            // The client lives on the server's worker thread (and its runtime).
            let state = ProxyState {
                client: reqwest::Client::new(),
                target: target.clone(),
                log: shared.clone(),
            };
            App::new()
                .app_data(web::Data::new(state))
                .default_service(web::to(forward))
        })
        .listen(listener)
        .expect("listen")
        .disable_signals()
        .workers(1)
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Self {
            port,
            log,
            handle,
            task,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().expect("proxy log").clone()
    }

    /// Events in the requests the receiver answered 2xx, duplicates included.
    fn delivered_events(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(Delivery::is_success)
            .flat_map(|d| d.events)
            .collect()
    }

    /// Ids of the events the registry delivered.
    fn delivered_ids(&self) -> BTreeSet<String> {
        self.delivered_events()
            .iter()
            .map(|e| e["id"].as_str().expect("event id").to_owned())
            .collect()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.task
            .await
            .expect("proxy task panicked")
            .expect("proxy failed");
    }
}

async fn forward(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ProxyState>,
) -> HttpResponse {
    let events = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|envelope| envelope["events"].as_array().cloned())
        .unwrap_or_default();
    let method =
        reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("an HTTP method");
    let mut forwarded = state
        .client
        .request(method, &state.target)
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(value) = request.headers().get(name) {
            forwarded = forwarded.header(name, value.as_bytes());
        }
    }
    let (status, content_type, reply) = match forwarded.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.as_bytes().to_vec());
            let reply = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, content_type, reply)
        }
        Err(error) => (502, None, format!("proxy: {error}").into_bytes()),
    };
    state
        .log
        .lock()
        .expect("proxy log")
        .push(Delivery { status, events });
    let mut response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(content_type) = content_type {
        response.insert_header((CONTENT_TYPE, content_type));
    }
    response.body(reply)
}

// ---------------------------------------------------------------------------------------------
// The registry, its files and the image.

/// A temporary directory and the registry serving from it: on drop (also after a panic) the
/// registry is killed and the directory removed.
struct Scratch {
    dir: PathBuf,
    registry: Option<Child>,
}

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(testkit::unique_name("registry"));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self {
            dir,
            registry: None,
        }
    }

    /// The registry's own log (its stdout and stderr), for failure messages.
    fn registry_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the registry, notifying `http://127.0.0.1:<proxy_port>/events`; returns its
    /// `host:port` once it answers.
    async fn start_registry(&mut self, proxy_port: u16, token: &str) -> String {
        let port = free_port();
        let dir = self.dir.display();
        let config = format!(
            "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {dir}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: regstat
      url: http://127.0.0.1:{proxy_port}/events
      headers:
        Authorization: [Bearer {token}]
      timeout: 2s
      threshold: 3
      backoff: 200ms
"
        );
        let config_path = self.dir.join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let log = std::fs::File::create(self.dir.join("registry.log")).expect("registry log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("registry log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {REGISTRY_BIN} ({e}): {INSTALL}"));
        self.registry = Some(child);

        let address = format!("127.0.0.1:{port}");
        let url = format!("http://{address}/v2/");
        let client = reqwest::Client::new();
        testkit::eventually(Duration::from_secs(20), "the registry to answer", || {
            if let Some(child) = self.registry.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the registry exited ({status}):\n{}", self.registry_log());
            }
            let request = client.get(&url).send();
            async move {
                let response = request.await.ok()?;
                (response.status() == reqwest::StatusCode::OK).then_some(())
            }
        })
        .await;
        address
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut child) = self.registry.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Runs `program` (under coreutils' `timeout`) and returns its stdout, or why it failed.
async fn try_run(program: &str, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("timeout");
    command
        .arg("--kill-after=5s")
        .arg(COMMAND_TIMEOUT)
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    let line = format!("{program} {}", args.join(" "));
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("command thread")
        .map_err(|e| format!("could not run `{line}`: {e}"))?;
    if !output.status.success() {
        let timed_out = if output.status.code() == Some(124) {
            ", timed out"
        } else {
            ""
        };
        return Err(format!(
            "`{line}` failed ({}{timed_out}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("`{line}` printed non-UTF-8: {e}"))
}

/// Runs `program`, fails the test unless it succeeds, and returns its stdout.
async fn run(program: &str, args: &[&str]) -> String {
    try_run(program, args)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs skopeo; a failure also shows the registry's log.
async fn skopeo(args: &[&str], scratch: &Scratch) -> String {
    try_run("skopeo", args)
        .await
        .unwrap_or_else(|error| panic!("{error}\nregistry log:\n{}", scratch.registry_log()))
}

/// `sha256:<hex>` of a file, by `sha256sum`.
async fn sha256(path: &Path) -> String {
    let path = path.to_str().expect("utf-8 path");
    sha256_of(&run("sha256sum", &[path]).await)
}

fn sha256_of(sha256sum_output: &str) -> String {
    let hex = sha256sum_output
        .split_whitespace()
        .next()
        .expect("sha256sum output");
    assert_eq!(hex.len(), 64, "not a sha256: {sha256sum_output}");
    format!("sha256:{hex}")
}

/// The digests of the image written by [`build_oci_layout`].
struct Image {
    manifest_digest: String,
    config_digest: String,
    layer_digest: String,
}

/// Writes an OCI image layout with one random layer to `<dir>/oci` (tag `v1`).
async fn build_oci_layout(dir: &Path) -> Image {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("create the rootfs");
    let content = format!("regstat e2e {}\n", uuid::Uuid::new_v4());
    std::fs::write(rootfs.join("hello.txt"), content).expect("write the file");
    let layer = dir.join("layer.tar.gz");
    let layer_path = layer.to_str().expect("utf-8 path");
    let rootfs_path = rootfs.to_str().expect("utf-8 path");
    run("tar", &["czf", layer_path, "-C", rootfs_path, "hello.txt"]).await;
    let diff_id = sha256_of(
        &run(
            "sh",
            &["-c", r#"gzip -dc "$1" | sha256sum"#, "sh", layer_path],
        )
        .await,
    );

    let blobs = dir.join("oci/blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create the blobs directory");
    // Moves `file` into the blobs and returns its descriptor.
    let add_blob = |file: PathBuf, media_type: &'static str| {
        let blobs = blobs.clone();
        async move {
            let digest = sha256(&file).await;
            let size = std::fs::metadata(&file).expect("blob size").len();
            let hex = digest.trim_start_matches("sha256:");
            std::fs::rename(&file, blobs.join(hex)).expect("move the blob");
            json!({"mediaType": media_type, "digest": digest, "size": size})
        }
    };
    let layer = add_blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip").await;

    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config_file = dir.join("config.json");
    std::fs::write(&config_file, config.to_string()).expect("write the config");
    let config = add_blob(config_file, "application/vnd.oci.image.config.v1+json").await;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    });
    let manifest_file = dir.join("manifest.json");
    std::fs::write(&manifest_file, manifest.to_string()).expect("write the manifest");
    let mut manifest = add_blob(manifest_file, OCI_MANIFEST).await;
    manifest["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});

    let index = json!({"schemaVersion": 2, "manifests": [manifest]});
    std::fs::write(dir.join("oci/index.json"), index.to_string()).expect("write index.json");
    std::fs::write(
        dir.join("oci/oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"}).to_string(),
    )
    .expect("write oci-layout");

    let digest = |descriptor: &Value| descriptor["digest"].as_str().expect("digest").to_owned();
    Image {
        manifest_digest: digest(&manifest),
        config_digest: digest(&config),
        layer_digest: digest(&layer),
    }
}
