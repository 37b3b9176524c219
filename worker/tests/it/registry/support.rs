//! Settings, scratch directories, the real registry and the images pushed to it.

use regstat_shared::config::{CallbackSettings, RegistrySettings};
use regstat_shared::testkit;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const INSTALL: &str = "install it: apt-get install -y docker-registry skopeo";
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
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

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// How to start the real registry.
#[derive(Default)]
pub struct RegistryOptions {
    /// htpasswd file: Basic auth with realm `test`.
    pub htpasswd: Option<PathBuf>,
    /// Certificate and key (PEM): serve https.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A temporary directory and the registry serving from it: on drop (also after a panic) the
/// registry is killed and the directory removed.
pub struct Scratch {
    pub dir: PathBuf,
    registry: Option<Child>,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(testkit::unique_name("registry-client"));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self {
            dir,
            registry: None,
        }
    }

    /// Writes `content` to `<dir>/<name>` and returns the path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("write a scratch file");
        path
    }

    /// The registry's own log, for failure messages.
    pub fn registry_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the real registry; returns its `host:port` once it answers.
    pub async fn start_registry(&mut self, options: &RegistryOptions) -> String {
        let port = free_port();
        let dir = self.dir.display();
        let mut config = format!(
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
"
        );
        if let Some((certificate, key)) = &options.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ));
        }
        if let Some(htpasswd) = &options.htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
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
        return Err(format!(
            "`{line}` failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ));
    }
    Ok(output.stdout)
}

/// Runs skopeo; a failure also shows the registry's log.
pub async fn skopeo(args: &[&str], scratch: &Scratch) -> Vec<u8> {
    try_run("skopeo", args)
        .await
        .unwrap_or_else(|error| panic!("{error}\nregistry log:\n{}", scratch.registry_log()))
}

/// A descriptor the test wrote.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
}

/// One image of the layout.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layer: Blob,
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

/// Writes an OCI image layout with two single-layer images and an index of both.
pub async fn build_oci_layout(scratch: &Scratch) -> Layout {
    let dir = scratch.dir.join("oci");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create the blobs directory");
    let add_blob = |bytes: &[u8], media_type: &'static str| {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), bytes).expect("write a blob");
        Blob {
            digest,
            size: bytes.len() as u64,
            media_type,
        }
    };
    let descriptor = |blob: &Blob| json!({"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size});

    // A real gzip'd tar holding one random file: skopeo may inspect it when converting.
    let rootfs = scratch.dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("create the rootfs");
    let content = format!("regstat registry test {}\n", uuid::Uuid::new_v4());
    std::fs::write(rootfs.join("hello.txt"), content).expect("write the file");
    let tar = scratch.dir.join("layer.tar");
    let (tar_path, rootfs_path) = (
        tar.to_str().expect("utf-8"),
        rootfs.to_str().expect("utf-8"),
    );
    try_run("tar", &["cf", tar_path, "-C", rootfs_path, "hello.txt"])
        .await
        .expect("tar");
    let diff_id = sha256(&std::fs::read(&tar).expect("read the tar"));
    try_run("gzip", &["-n", tar_path]).await.expect("gzip");
    let layer = add_blob(
        &std::fs::read(scratch.dir.join("layer.tar.gz")).expect("read the layer"),
        OCI_LAYER,
    );

    let image = |architecture: &str, variant: Option<&str>| {
        let mut config = json!({
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        if let Some(variant) = variant {
            config["variant"] = json!(variant);
        }
        let config = add_blob(config.to_string().as_bytes(), OCI_CONFIG);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(&config),
            "layers": [descriptor(&layer)],
        });
        let manifest = add_blob(manifest.to_string().as_bytes(), OCI_MANIFEST);
        Image {
            manifest,
            config,
            layer: layer.clone(),
        }
    };
    let amd64 = image("amd64", None);
    let arm64 = image("arm64", Some("v8"));

    let mut amd64_entry = descriptor(&amd64.manifest);
    amd64_entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut arm64_entry = descriptor(&arm64.manifest);
    arm64_entry["platform"] = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [amd64_entry, arm64_entry],
    });
    let index = add_blob(index.to_string().as_bytes(), OCI_INDEX);

    let tagged = |blob: &Blob, tag: &str| -> Value {
        let mut entry = descriptor(blob);
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        entry
    };
    let layout_index = json!({
        "schemaVersion": 2,
        "manifests": [
            tagged(&amd64.manifest, "amd64"),
            tagged(&arm64.manifest, "arm64"),
            tagged(&index, "multi"),
        ],
    });
    std::fs::write(dir.join("index.json"), layout_index.to_string()).expect("write index.json");
    std::fs::write(
        dir.join("oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"}).to_string(),
    )
    .expect("write oci-layout");
    Layout {
        dir,
        amd64,
        arm64,
        index,
    }
}
