//! What the tests against a real registry share (`registry`, `e2e`, `e2e_model`): the tools,
//! a scratch directory with the registry process serving from it, OCI layouts of random
//! images, skopeo, and a recording proxy between the registry and the receiver.
//!
//! The registry is Debian's `docker-registry` (CNCF distribution 2.8); the tests fail, never
//! skip, when it or skopeo is missing.

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use regstat_shared::testkit;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub const INSTALL: &str = "install it: apt-get install -y docker-registry skopeo containerd (or run deploy/dev.sh --services-only)";
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The `created` time the config of every amd64 test image states (the others state none).
pub const AMD64_CREATED: &str = "2024-05-01T12:00:00Z";
/// What the registry says a blob is, in every event.
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";
/// Longest any one external command may run.
const COMMAND_TIMEOUT: &str = "120s";

/// Callback settings for tests: generous but finite.
pub fn callbacks() -> CallbackSettings {
    CallbackSettings {
        timeout_ms: 10_000,
        concurrency: 4,
        manifest_cache_entries: 100,
        max_document_bytes: 1 << 20,
        equiv_registries_file: String::new(),
    }
}

/// A registry named `name` at `url`, no credentials.
pub fn settings(name: &str, url: &str) -> RegistrySettings {
    RegistrySettings {
        name: name.into(),
        url: url.into(),
        aliases: vec![],
        docker_config: None,
        username: None,
        password: None,
        ca_file: None,
        insecure_skip_verify: false,
        token_realms: vec![],
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Fails (never skips) when the registry or skopeo is not installed.
pub fn require_tools() {
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

pub use regstat_shared::testkit::ports::free_port;

// ---------------------------------------------------------------------------------------------
// External commands.

/// Runs `program` (under coreutils' `timeout`) and returns its stdout, or why it failed.
pub async fn try_run(program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
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
    Ok(output.stdout)
}

/// Runs `program`, fails the test unless it succeeds, and returns its stdout.
pub async fn run(program: &str, args: &[&str]) -> Vec<u8> {
    try_run(program, args)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs skopeo; a failure also shows the registry's log.
pub async fn skopeo(args: &[&str], scratch: &Scratch) -> Vec<u8> {
    try_run("skopeo", args)
        .await
        .unwrap_or_else(|error| panic!("{error}\nregistry log:\n{}", scratch.registry_log()))
}

// ---------------------------------------------------------------------------------------------
// The scratch directory and the registry serving from it.

/// How to start the real registry.
#[derive(Default)]
pub struct RegistryOptions {
    /// htpasswd file: Basic auth with realm `test`.
    pub htpasswd: Option<PathBuf>,
    /// Certificate and key (PEM): serve https.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse deletions (`storage.delete.enabled: false`, the registry's default); tests
    /// enable them unless they say otherwise.
    pub deletes_disabled: bool,
}

/// Where the registry sends its notifications (one endpoint).
pub struct Notifications {
    /// The endpoint, e.g. `http://127.0.0.1:<port>/events`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// `notifications.events.includereferences`.
    pub include_references: bool,
}

/// A temporary directory and the registry serving from it: on drop (also after a panic) the
/// registry is killed and the directory removed.
pub struct Scratch {
    pub dir: PathBuf,
    registry: Option<Child>,
    /// `127.0.0.1:<port>` of the registry's debug server (`/debug/vars`).
    debug: Option<String>,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(testkit::unique_name("registry"));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self {
            dir,
            registry: None,
            debug: None,
        }
    }

    /// Events the registry holds for its notification endpoint, not yet delivered (the
    /// endpoint's `Pending` in the registry's expvar metrics): 0 once every event emitted so
    /// far was answered 2xx.
    pub async fn pending_notifications(&self) -> u64 {
        let debug = self.debug.as_deref().expect("the registry is running");
        let vars: Value = reqwest::get(format!("http://{debug}/debug/vars"))
            .await
            .expect("the registry's debug server answers")
            .json()
            .await
            .expect("the registry's /debug/vars is JSON");
        vars["registry"]["notifications"]["endpoints"]
            .as_array()
            .expect("a notification endpoint is configured")
            .iter()
            .map(|endpoint| endpoint["Metrics"]["Pending"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Writes `content` to `<dir>/<name>` and returns the path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("write a scratch file");
        path
    }

    /// The registry's own log (its stdout and stderr), for failure messages.
    pub fn registry_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the real registry on a free port, without notifications; returns its
    /// `host:port` once it answers.
    pub async fn start_registry(&mut self, options: &RegistryOptions) -> String {
        self.start_registry_on(free_port(), options, None).await
    }

    /// Starts the real registry on `127.0.0.1:<port>` (known beforehand when the settings of
    /// the code under test must name it), notifying `notifications` if given; returns its
    /// `host:port` once it answers.
    pub async fn start_registry_on(
        &mut self,
        port: u16,
        options: &RegistryOptions,
        notifications: Option<&Notifications>,
    ) -> String {
        assert!(
            self.registry.is_none(),
            "one registry per scratch directory"
        );
        let debug = format!("127.0.0.1:{}", free_port());
        let config = registry_config(&self.dir, port, &debug, options, notifications);
        let config_path = self.write("config.yml", config);
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
        self.debug = Some(debug);

        let address = format!("127.0.0.1:{port}");
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{address}/v2/");
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("probe client");
        testkit::eventually(Duration::from_secs(20), "the registry to answer", || {
            if let Some(child) = self.registry.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the registry exited ({status}):\n{}", self.registry_log());
            }
            let request = client.get(&url).send();
            async move {
                let response = request.await.ok()?;
                // 200, or 401 behind htpasswd: either way it is serving.
                let serving = [200, 401].contains(&response.status().as_u16());
                serving.then_some(())
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

/// The registry's `config.yml`.
fn registry_config(
    dir: &Path,
    port: u16,
    debug: &str,
    options: &RegistryOptions,
    notifications: Option<&Notifications>,
) -> String {
    let mut config = format!(
        "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {}/data
  delete:
    enabled: {}
http:
  addr: 127.0.0.1:{port}
  debug:
    addr: {debug}
",
        dir.display(),
        !options.deletes_disabled
    );
    if let Some((certificate, key)) = &options.tls {
        let _ = write!(
            config,
            "  tls:\n    certificate: {}\n    key: {}\n",
            certificate.display(),
            key.display()
        );
    }
    if let Some(htpasswd) = &options.htpasswd {
        let _ = write!(
            config,
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            htpasswd.display()
        );
    }
    if let Some(Notifications {
        url,
        token,
        include_references,
    }) = notifications
    {
        let _ = write!(
            config,
            "notifications:
  events:
    includereferences: {include_references}
  endpoints:
    - name: regstat
      url: {url}
      headers:
        Authorization: [Bearer {token}]
      timeout: 2s
      threshold: 3
      backoff: 200ms
"
        );
    }
    config
}

// ---------------------------------------------------------------------------------------------
// OCI image layouts.

/// A blob (or manifest) the test wrote.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
}

impl Blob {
    /// Its OCI descriptor.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A single-platform linux image of an [`OciLayout`].
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layer: Blob,
    pub architecture: String,
    pub variant: Option<String>,
}

/// An OCI image layout directory: images and indexes are added to its blobs, and tags to its
/// `index.json`.
pub struct OciLayout {
    pub dir: PathBuf,
    /// Scratch space for building layers.
    work: PathBuf,
    /// The `index.json` entries, one per tag.
    tags: Vec<Value>,
}

impl OciLayout {
    /// An empty layout in `<scratch>/<name>`.
    pub fn new(scratch: &Scratch, name: &str) -> Self {
        let dir = scratch.dir.join(name);
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("create the blobs directory");
        std::fs::write(
            dir.join("oci-layout"),
            json!({"imageLayoutVersion": "1.0.0"}).to_string(),
        )
        .expect("write oci-layout");
        let layout = Self {
            dir,
            work: scratch.dir.join(format!("{name}.work")),
            tags: Vec::new(),
        };
        layout.write_index();
        layout
    }

    /// A skopeo reference to one of the tags.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    fn add_blob(&self, bytes: &[u8], media_type: &'static str) -> Blob {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).expect("write a blob");
        Blob {
            digest,
            size: bytes.len() as u64,
            media_type,
        }
    }

    /// A linux image for `architecture` (and `variant`) with one layer: a gzip'd tar holding a
    /// file of random content (skopeo may inspect it when converting), so its digests differ
    /// from every other image's, in this run and any other.
    pub async fn image(&self, architecture: &str, variant: Option<&str>) -> Image {
        let work = self.work.join(uuid::Uuid::new_v4().simple().to_string());
        let rootfs = work.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("create the rootfs");
        let content = format!("regstat test {architecture} {}\n", uuid::Uuid::new_v4());
        std::fs::write(rootfs.join("hello.txt"), content).expect("write the file");
        let tar = work.join("layer.tar");
        let (tar_path, rootfs_path) = (
            tar.to_str().expect("utf-8"),
            rootfs.to_str().expect("utf-8"),
        );
        run("tar", &["cf", tar_path, "-C", rootfs_path, "hello.txt"]).await;
        let diff_id = sha256(&std::fs::read(&tar).expect("read the tar"));
        run("gzip", &["-n", tar_path]).await;
        let layer = self.add_blob(
            &std::fs::read(work.join("layer.tar.gz")).expect("read the layer"),
            OCI_LAYER,
        );
        let _ = std::fs::remove_dir_all(&work);

        let mut config = json!({
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        if let Some(variant) = variant {
            config["variant"] = json!(variant);
        }
        // amd64 images state when they were built, the others do not, as real images vary.
        if architecture == "amd64" {
            config["created"] = json!(AMD64_CREATED);
        }
        let config = self.add_blob(config.to_string().as_bytes(), OCI_CONFIG);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = self.add_blob(manifest.to_string().as_bytes(), OCI_MANIFEST);
        Image {
            manifest,
            config,
            layer,
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// An OCI index of `images`, each entry with its `platform`.
    pub fn index(&self, images: &[&Image]) -> Blob {
        let entries: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut entry = image.manifest.descriptor();
                entry["platform"] = json!({"os": "linux", "architecture": image.architecture});
                if let Some(variant) = &image.variant {
                    entry["platform"]["variant"] = json!(variant);
                }
                entry
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        });
        self.add_blob(index.to_string().as_bytes(), OCI_INDEX)
    }

    /// Names `blob` (a manifest or an index of this layout) `tag`.
    pub fn tag(&mut self, tag: &str, blob: &Blob) {
        let mut entry = blob.descriptor();
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.tags.push(entry);
        self.write_index();
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.tags});
        std::fs::write(self.dir.join("index.json"), index.to_string()).expect("write index.json");
    }
}

/// What [`build_oci_layout`] wrote: tag `amd64` (linux/amd64), tag `arm64` (linux/arm64/v8)
/// and tag `multi`, an OCI index of both.
pub struct Layout {
    pub dir: PathBuf,
    pub amd64: Image,
    pub arm64: Image,
    pub index: Blob,
}

impl Layout {
    /// A skopeo reference to one of the tags.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }
}

/// Writes an OCI image layout (`<scratch>/oci`) with two single-layer images and an index of
/// both.
pub async fn build_oci_layout(scratch: &Scratch) -> Layout {
    let mut layout = OciLayout::new(scratch, "oci");
    let amd64 = layout.image("amd64", None).await;
    let arm64 = layout.image("arm64", Some("v8")).await;
    let index = layout.index(&[&amd64, &arm64]);
    layout.tag("amd64", &amd64.manifest);
    layout.tag("arm64", &arm64.manifest);
    layout.tag("multi", &index);
    Layout {
        dir: layout.dir,
        amd64,
        arm64,
        index,
    }
}

// ---------------------------------------------------------------------------------------------
// The recording proxy between the registry and the receiver.

/// One request the registry made.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// What the receiver answered (502 when it could not be reached).
    pub status: u16,
    /// The envelope's events.
    pub events: Vec<Value>,
}

impl Delivery {
    pub fn is_success(&self) -> bool {
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
pub struct RecordingProxy {
    pub port: u16,
    log: Log,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl RecordingProxy {
    /// Forwards to `target` (the receiver's `/events` URL).
    pub fn start(target: String) -> Self {
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

    /// The URL to give the registry.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().expect("proxy log").clone()
    }

    /// Events in the requests the receiver answered 2xx, duplicates included.
    pub fn delivered_events(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(Delivery::is_success)
            .flat_map(|d| d.events)
            .collect()
    }

    /// Ids of the events the registry delivered.
    pub fn delivered_ids(&self) -> BTreeSet<String> {
        self.delivered_events()
            .iter()
            .map(|e| e["id"].as_str().expect("event id").to_owned())
            .collect()
    }

    pub async fn stop(self) {
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
